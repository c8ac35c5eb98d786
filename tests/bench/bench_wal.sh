#!/usr/bin/env bash
# bench_wal.sh: what the write-ahead log costs (`make bench` runs it; issue 5).
# The same wrk load as bench_server.sh (tests/bench/steps.lua: one-step sparse batches of the
# benchmark model over SESSIONS sessions, POST /v1/sessions/{id}/steps) against three
# spikeserve configurations started one after the other on free 127.0.0.1 ports:
#   memory:      no --state-dir
#   checkpoints: --state-dir (on disk, under BUILD/) --checkpoint-interval 60
#   wal:         the same plus --wal 1 (every answer waits for its batch's fdatasync; one
#                sync covers everything a worker took off its queue)
# Prints requests/s, p50 and p99 of each and the WAL's share of the memory figure, and the
# file system the state directory is on (fsync costs what that device makes it cost).
# Never fails on timing; exits non-zero only when something could not run.
#   tests/bench/bench_wal.sh [BUILD]   (env: DURATION=10 THREADS=2 CONNECTIONS=64 SESSIONS=1000)
set -euo pipefail
cd "$(dirname "$0")/../.."
me=bench_wal.sh
. tests/bench/lib.sh "$@"
need_programs "$server" "$opener"
need_tools wrk curl
state_root=$(mktemp -d "$(pwd)/$build/bench-wal-state.XXXXXX")
cleanup_dirs+=("$state_root")

declare -A RPS P50 P99 NON2XX
run() { # NAME ARGS...
    local name=$1
    shift
    echo "== $name: spikeserve $*"
    start_server "$name" --workers 2 --max-sessions 200000 --idle-timeout 86400 --access-log 0 "$@"
    "$opener" "$srv_port" "$model_name" "$sessions" "$work/ids.txt" 4 >/dev/null
    run_wrk "$name" "$srv_port" "$work/bodies.ndjson" json "$srv_pid"
    RPS[$name]=$rps P50[$name]=$p50 P99[$name]=$p99 NON2XX[$name]=$non2xx
    stop_pid "$srv_pid"
    if [ "$name" = wal ]; then # after the stop: a running server's checkpoints come and go
        du -sh "$2" | sed 's/^/    state dir after the run: /' || true
    fi
}

echo "== load average before: $(cut -d' ' -f1 /proc/loadavg) (other work on the machine skews the figures)"
read -r model_name model_path model_kind < <("$py" tests/bench/bench_server_prep.py "$work" 1000)
[ -n "${model_name:-}" ] || { echo "$me: preparing the model failed" >&2; exit 1; }
echo "model: $model_name ($model_kind); state directory on: $(df -T "$state_root" | awk 'NR == 2 {print $2 " " $1}')"
mkdir -p "$state_root/ckpt" "$state_root/wal"
run memory
run checkpoints --state-dir "$state_root/ckpt" --checkpoint-interval 60
run wal --state-dir "$state_root/wal" --wal 1 --checkpoint-interval 60

echo
echo "== /steps, $sessions sessions, wrk ${duration}s, $threads threads, $conns connections"
printf '%-12s %12s %10s %10s %8s\n' config requests/s p50 p99 non-2xx
for n in memory checkpoints wal; do
    printf '%-12s %12s %10s %10s %8s\n' "$n" "${RPS[$n]}" "${P50[$n]}" "${P99[$n]}" "${NON2XX[$n]:-0}"
done
awk -v m="${RPS[memory]}" -v w="${RPS[wal]}" 'BEGIN { if (m > 0) printf "--wal keeps %.0f%% of the requests/s without a state directory\n", 100 * w / m }'
