#!/usr/bin/env bash
# The worker pool under ThreadSanitizer: builds spikeserve and the concurrency-heavy
# end-to-end tests with SANITIZER=thread (into build-thread/) and runs them; fails on a test
# failure or on any ThreadSanitizer report in a server log. test_durable runs the
# write-ahead log (appends from workers and HTTP threads, group commit, checkpoints) under
# load with kills and restarts, shortened to 5 s of load.
set -u
cd "$(dirname "$0")/../.."
tests=(test_pool test_h2 test_concurrency test_stream test_events test_drain test_expiry
       test_durable)
targets=(build-thread/spikeserve)
for t in "${tests[@]}"; do targets+=("build-thread/tests/$t"); done
mkdir -p build-thread
if ! make -j2 SANITIZER=thread "${targets[@]}" >build-thread/tsan-build.log 2>&1; then
    tail -n 40 build-thread/tsan-build.log
    echo "not ok - ThreadSanitizer build"
    exit 1
fi
echo "ok - ThreadSanitizer build"
logs=$(mktemp -d "${TMPDIR:-/tmp}/spikeserve-tsan-XXXXXX")
trap 'rm -rf "$logs"' EXIT
fail=0
for t in "${tests[@]}"; do
    # keep the servers' logs (TMPDIR) to look for reports after the run
    if TMPDIR="$logs" SPIKESERVE_BUILD=build-thread SPIKESERVE_KEEP_TMP=1 SPIKESERVE_DURABLE_SECONDS=5 \
        TSAN_OPTIONS="halt_on_error=0 exitcode=66" "build-thread/tests/$t" >"$logs/$t.out" 2>&1; then
        echo "ok - $t under ThreadSanitizer"
    else
        echo "not ok - $t under ThreadSanitizer"
        # the failed checks first (with what they printed), then the end of the run
        grep -E -A 4 "^not ok" "$logs/$t.out" | head -n 40 | sed 's/^/#   /'
        tail -n 30 "$logs/$t.out" | sed 's/^/#   /'
        fail=1
    fi
done
# the gRPC front end (transport loop, workers answering calls, event sinks) with real clients
if TMPDIR="$logs" SPIKESERVE_BUILD=build-thread TSAN_OPTIONS="halt_on_error=0 exitcode=66" \
    "${PYTHON:-/usr/bin/python3}" tests/e2e/test_grpc.py >"$logs/test_grpc.out" 2>&1; then
    echo "ok - test_grpc.py under ThreadSanitizer"
else
    echo "not ok - test_grpc.py under ThreadSanitizer"
    grep -E "^not ok" "$logs/test_grpc.out" | sed 's/^/#   /'
    fail=1
fi
# replicas with --peers: the forwarder thread, movers, the rebalancer, SIGHUP swaps
if TMPDIR="$logs" SPIKESERVE_BUILD=build-thread TSAN_OPTIONS="halt_on_error=0 exitcode=66" \
    "${PYTHON:-/usr/bin/python3}" tests/e2e/test_cluster.py >"$logs/test_cluster.out" 2>&1; then
    echo "ok - test_cluster.py under ThreadSanitizer"
else
    echo "not ok - test_cluster.py under ThreadSanitizer"
    grep -E "^not ok" "$logs/test_cluster.out" | sed 's/^/#   /'
    fail=1
fi
reports=$(grep -l "WARNING: ThreadSanitizer" "$logs"/*/server.log "$logs"/*/r*/stderr.log \
          "$logs"/*.out 2>/dev/null)
if [ -n "$reports" ]; then
    echo "not ok - ThreadSanitizer reports:"
    for f in $reports; do grep -A 30 "WARNING: ThreadSanitizer" "$f" | head -n 60 | sed 's/^/#   /'; done
    fail=1
else
    echo "ok - no ThreadSanitizer report in any server log"
fi
exit $fail
