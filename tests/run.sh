#!/usr/bin/env bash
# Runs the test tiers and prints one closing line "N passed, N failed".
#   tests/run.sh BUILD PYTHON [unit|engine|e2e|python|deploy|cluster|fuzz]...
# Tiers: unit (build/tests/test_* from tests/unit), engine (tests/engine/test_*.py: numpy
# and PyTorch references against the C engine), e2e (build/tests/test_* from tests/e2e and
# tests/e2e/test_*.sh|py: the real server on a free loopback port), python (tests/python),
# deploy (tests/deploy/test_*.sh: deploy/kubernetes against the Kubernetes schemas),
# cluster (tests/cluster/test_*.py: replicas behind the real nginx and HAProxy, issue 15),
# fuzz (build-fuzz/fuzz_*: libFuzzer harnesses, FUZZ_SMOKE_SECONDS each).
# Each test program is one case: it passes when it exits 0. Its output goes to
# BUILD/test-logs/NAME.log and is printed when it fails.
set -u
build=${1:-build}; py=${2:-/usr/bin/python3}; shift 2 || true
tiers=("$@"); [ ${#tiers[@]} -eq 0 ] && tiers=(unit engine e2e python deploy cluster fuzz)
logs="$build/test-logs"; mkdir -p "$logs"
pass=0; fail=0; failed=()
export SPIKESERVE_BUILD="$build" PYTHON="$py"

run_case() { # name command...
    local name=$1; shift
    local log="$logs/$name.log" t0=$SECONDS
    mkdir -p "$(dirname "$log")"
    if "$@" >"$log" 2>&1; then
        pass=$((pass + 1)); echo "PASS $name ($((SECONDS - t0))s)"
    else
        fail=$((fail + 1)); failed+=("$name"); echo "FAIL $name ($((SECONDS - t0))s)"
        tail -n 60 "$log" | sed 's/^/    /'
    fi
}

for tier in "${tiers[@]}"; do
    case $tier in
    unit)
        for f in tests/unit/test_*.c; do
            [ -e "$f" ] || continue
            n=$(basename "$f" .c); run_case "unit/$n" "$build/tests/$n"
        done ;;
    engine)
        for f in tests/engine/test_*.py; do
            [ -e "$f" ] || continue
            run_case "engine/$(basename "$f" .py)" "$py" "$f"
        done ;;
    e2e)
        for f in tests/e2e/test_*.c; do
            [ -e "$f" ] || continue
            n=$(basename "$f" .c); run_case "e2e/$n" "$build/tests/$n"
        done
        # The same server under the other event loop (--event-loop poll): the routes,
        # suspended uploads and event streams, hostile clients, many threads at once, model
        # versions swapped under load.
        for n in test_routes test_stream test_events test_hostile test_concurrency test_reload; do
            [ -x "$build/tests/$n" ] || continue
            run_case "e2e/poll/$n" env SPIKESERVE_EVENT_LOOP=poll "$build/tests/$n"
        done
        for f in tests/e2e/test_*.sh tests/e2e/test_*.py; do
            [ -e "$f" ] || continue
            case $f in *.py) run_case "e2e/$(basename "$f")" "$py" "$f" ;;
                        *) run_case "e2e/$(basename "$f")" bash "$f" ;; esac
        done ;;
    python)
        for f in tests/python/test_*.py; do
            [ -e "$f" ] || continue
            run_case "python/$(basename "$f" .py)" "$py" "$f"
        done ;;
    cluster)
        for f in tests/cluster/test_*.py; do
            [ -e "$f" ] || continue
            run_case "cluster/$(basename "$f" .py)" "$py" "$f"
        done ;;
    deploy)
        for f in tests/deploy/test_*.sh; do
            [ -e "$f" ] || continue
            run_case "deploy/$(basename "$f")" bash "$f"
        done ;;
    fuzz)
        # A bounded libFuzzer run of every harness on its seed corpus (make fuzz runs longer).
        for b in build-fuzz/fuzz_*; do
            [ -x "$b" ] || continue
            n=$(basename "$b"); mkdir -p "build-fuzz/corpus/$n"
            run_case "fuzz/$n" "$b" -max_total_time="${FUZZ_SMOKE_SECONDS:-20}" \
                "build-fuzz/corpus/$n" "tests/fuzz/corpus/$n"
        done ;;
    *) echo "unknown tier $tier" >&2; exit 2 ;;
    esac
done
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
