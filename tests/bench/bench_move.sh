#!/usr/bin/env bash
# make bench-move: what moving one session between two replicas costs through the snapshot
# API (GET state on the old owner, PUT on the new one, DELETE on the old), for each model of
# models/zoo: snapshot bytes and time per move (BUILD/bench/bench_move), so that an operator
# can size a scale event or a rolling update (sessions moved x time per move; deploy/README.md).
# Two servers on free loopback ports; SESSIONS (default 1000) sessions per model; sequential.
#   tests/bench/bench_move.sh [BUILD]
set -euo pipefail
cd "$(dirname "$0")/../.."
me=bench_move
source tests/bench/lib.sh
need_programs "$server" "$build/bench/bench_move"
mkdir -p "$work/models"
models=()
for f in models/zoo/*.spk; do
    [ -e "$f" ] || continue
    ln -s "$PWD/$f" "$work/models/"
    models+=("$(basename "$f" .spk)")
done
[ ${#models[@]} -gt 0 ] || { echo "$me: no models in models/zoo" >&2; exit 1; }
start_server a --workers 1 --max-sessions 100000; port_a=$srv_port
start_server b --workers 1 --max-sessions 100000; port_b=$srv_port
echo
echo "| model | sessions | snapshot bytes | GET state ms | PUT state ms | DELETE ms | move p50 ms | move p99 ms | moves/s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for m in "${models[@]}"; do
    "$build/bench/bench_move" "http://127.0.0.1:$port_a" "http://127.0.0.1:$port_b" "$m" "$sessions"
done
