#!/usr/bin/env bash
# The worker pool under ThreadSanitizer: builds spikeserve and the concurrency-heavy
# end-to-end tests with SANITIZER=thread (into build-thread/) and runs them; fails on a test
# failure or on any ThreadSanitizer report in a server log. test_durable runs the
# write-ahead log (appends from workers and HTTP threads, group commit, checkpoints) under
# load with kills and restarts, shortened to 5 s of load. test_reload swaps model versions
# (registry.c: read-write lock, reference counts) under concurrent clients.
set -u
cd "$(dirname "$0")/../.."
tests=(test_pool test_h2 test_concurrency test_stream test_events test_drain test_expiry
       test_durable test_versions test_model_control test_reload)
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
# the gRPC front end (transport loop, workers answering calls, event sinks) with real clients,
# the OIP over it (ModelStreamInfer's ordered window, the per-server OIP state), and replicas
# with --peers (the forwarder thread, movers, the rebalancer, SIGHUP swaps)
for py in test_grpc test_oip_grpc test_cluster; do
    if TMPDIR="$logs" SPIKESERVE_BUILD=build-thread SPIKESERVE_KEEP_TMP=1 OIP_GRPC_ACCURACY_N=0 \
        TSAN_OPTIONS="halt_on_error=0 exitcode=66" \
        "${PYTHON:-/usr/bin/python3}" "tests/e2e/$py.py" >"$logs/$py.out" 2>&1; then
        echo "ok - $py.py under ThreadSanitizer"
    else
        echo "not ok - $py.py under ThreadSanitizer"
        grep -E "^not ok" "$logs/$py.out" | sed 's/^/#   /'
        fail=1
    fi
done
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
