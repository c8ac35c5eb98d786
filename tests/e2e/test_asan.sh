#!/usr/bin/env bash
# The server under AddressSanitizer and LeakSanitizer: builds spikeserve and the end-to-end
# tests with SANITIZER=address (into build-address/) and runs them; fails on a test failure
# or on any memory error or leak report in a server log (a leak also makes the server's exit
# status non-zero, which the tests check after SIGTERM).
set -u
cd "$(dirname "$0")/../.."
tests=(test_routes test_errors test_malformed test_stream test_events test_restart test_seq
       test_auth test_concurrency)
targets=(build-address/spikeserve)
for t in "${tests[@]}"; do targets+=("build-address/tests/$t"); done
mkdir -p build-address
if ! make -j2 SANITIZER=address "${targets[@]}" >build-address/asan-build.log 2>&1; then
    tail -n 40 build-address/asan-build.log
    echo "not ok - AddressSanitizer build"
    exit 1
fi
echo "ok - AddressSanitizer build"
logs=$(mktemp -d "${TMPDIR:-/tmp}/spikeserve-asan-XXXXXX")
trap 'rm -rf "$logs"' EXIT
fail=0
for t in "${tests[@]}"; do
    # keep the servers' logs (TMPDIR) to look for reports after the run
    if TMPDIR="$logs" SPIKESERVE_BUILD=build-address SPIKESERVE_KEEP_TMP=1 \
        ASAN_OPTIONS="detect_leaks=1" "build-address/tests/$t" >"$logs/$t.out" 2>&1; then
        echo "ok - $t under AddressSanitizer"
    else
        echo "not ok - $t under AddressSanitizer"
        tail -n 30 "$logs/$t.out" | sed 's/^/#   /'
        fail=1
    fi
done
reports=$(grep -lE "ERROR: (AddressSanitizer|LeakSanitizer)" "$logs"/*/server.log "$logs"/*.out 2>/dev/null)
if [ -n "$reports" ]; then
    echo "not ok - AddressSanitizer reports:"
    for f in $reports; do grep -E -A 30 "ERROR: (AddressSanitizer|LeakSanitizer)" "$f" | head -n 60 | sed 's/^/#   /'; done
    fail=1
else
    echo "ok - no AddressSanitizer report in any server log"
fi
exit $fail
