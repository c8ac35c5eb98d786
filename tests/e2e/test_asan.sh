#!/usr/bin/env bash
# The unit tests and the server under AddressSanitizer + LeakSanitizer + UndefinedBehavior-
# Sanitizer: builds everything with SANITIZER=address,undefined (into
# build-address-undefined/) and runs every unit test and the end-to-end tests below; fails
# on a test failure or on any memory error, leak or undefined behaviour (UBSan halts the
# process, and its "runtime error" is looked for in every log too).
set -u
cd "$(dirname "$0")/../.."
b=build-address-undefined
units=()
for f in tests/unit/test_*.c; do units+=("$(basename "$f" .c)"); done
e2e=(test_routes test_errors test_malformed test_hostile test_stream test_events test_restart
     test_seq test_auth test_concurrency test_drain test_expiry test_continuity test_metrics
     test_durable test_exposure test_refusals test_ui_images test_versions test_model_control
     test_reload)
targets=("$b/spikeserve")
for t in "${units[@]}" "${e2e[@]}"; do targets+=("$b/tests/$t"); done
mkdir -p "$b"
t0=$SECONDS
if ! make -j2 SANITIZER=address,undefined "${targets[@]}" >"$b/asan-build.log" 2>&1; then
    tail -n 40 "$b/asan-build.log"
    echo "not ok - AddressSanitizer + UndefinedBehaviorSanitizer build"
    exit 1
fi
echo "ok - AddressSanitizer + UndefinedBehaviorSanitizer build ($((SECONDS - t0)) s)"
logs=$(mktemp -d "${TMPDIR:-/tmp}/spikeserve-asan-XXXXXX")
trap 'rm -rf "$logs"' EXIT
# allocator_may_return_null: an allocation the machine cannot give (test_refusals asks for
# terabytes of outputs) returns NULL, as malloc does, so the server's refusal path runs
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export SPIKESERVE_DURABLE_SECONDS=6
fail=0
for t in "${units[@]}" "${e2e[@]}"; do
    t1=$SECONDS
    # keep the servers' logs (TMPDIR) to look for reports after the run
    if TMPDIR="$logs" SPIKESERVE_BUILD=$b SPIKESERVE_KEEP_TMP=1 "$b/tests/$t" >"$logs/$t.out" 2>&1; then
        echo "ok - $t under ASan+UBSan ($((SECONDS - t1)) s)"
    else
        echo "not ok - $t under ASan+UBSan"
        # the failed checks first (with what they printed), then the end of the run
        grep -E -A 4 "^not ok" "$logs/$t.out" | head -n 40 | sed 's/^/#   /'
        tail -n 30 "$logs/$t.out" | sed 's/^/#   /'
        fail=1
    fi
done
# the gRPC and OIP front ends with real clients (python3-grpcio, grpc-js, hostile HTTP/2, an
# OIP client from the protocol documents, replicas with --peers forwarding and moving
# sessions) against the sanitized server
for py in test_grpc test_oip test_oip_grpc test_cluster test_cluster_keys; do
    t1=$SECONDS
    # SPIKESERVE_KEEP_TMP: the servers' logs stay in $logs for the reports below
    if TMPDIR="$logs" SPIKESERVE_BUILD=$b SPIKESERVE_KEEP_TMP=1 "${PYTHON:-/usr/bin/python3}" "tests/e2e/$py.py" \
        >"$logs/$py.out" 2>&1; then
        echo "ok - $py.py under ASan+UBSan ($((SECONDS - t1)) s)"
    else
        echo "not ok - $py.py under ASan+UBSan"
        grep -E "^not ok" "$logs/$py.out" | sed 's/^/#   /'
        fail=1
    fi
done
pat="ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:"
# (test_cluster's replicas log into spikeserve-cluster-*/r*/stderr.log)
reports=$(grep -lE "$pat" "$logs"/*/server.log "$logs"/*/r*/stderr.log "$logs"/*.out 2>/dev/null)
if [ -n "$reports" ]; then
    echo "not ok - sanitizer reports:"
    for f in $reports; do grep -E -A 30 "$pat" "$f" | head -n 60 | sed 's/^/#   /'; done
    fail=1
else
    echo "ok - no sanitizer report in any log (${#units[@]} unit, ${#e2e[@]} end-to-end tests)"
fi
echo "# $((SECONDS - t0)) s in all"
exit $fail
