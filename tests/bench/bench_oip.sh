#!/usr/bin/env bash
# bench_oip.sh: `make bench-oip`. The Open Inference Protocol's REST infer against v1's
# /steps, in one run on this machine, loopback only, with the batches of `make bench-server`
# (one step of a rate-coded Fashion-MNIST image each, tests/bench/bench_server_prep.py):
#  - v1 JSON and v1 protobuf: wrk (tests/bench/steps.lua) POSTs them to
#    /v1/sessions/{id}/steps over SESSIONS sessions;
#  - v2 binary: wrk (tests/bench/oip.lua) POSTs them to /v2/models/{m}/infer as Triton's
#    HTTP client does (binary FP32 [k, 3] events after the JSON header, binary outputs
#    output_spikes, readout, prediction), each in one of SESSIONS sequences (sequence_id,
#    started beforehand by tests/bench/bench_oip_prep.py): the same work per request, a
#    session stepped by one batch;
#  - v2 gRPC: BUILD/bench/bench_grpc unary --oip sends the same batches as
#    inference.GRPCInferenceService/ModelInfer calls (raw_input_contents, the same three
#    outputs, sequence_id of the same sequences), GRPC_CONNS HTTP/2 connections per thread
#    with GRPC_STREAMS calls in flight each (THREADS x GRPC_CONNS x GRPC_STREAMS = wrk's
#    CONNECTIONS by default).
# One server; the runs are interleaved in ROUNDS rounds so a change in the machine's load
# hits all four alike; the median round (by the v2 / v1 protobuf ratio) is reported.
# Prints requests/s, p50, p99 and requests per CPU-second of the server. Never fails on
# timing; exits non-zero only when something could not run.
#   tests/bench/bench_oip.sh [BUILD]   (env: DURATION=10 ROUNDS=3 THREADS=2 CONNECTIONS=64
#                                       SESSIONS=1000 GRPC_CONNS=1 GRPC_STREAMS=32 SERVER_ARGS=)
set -euo pipefail
cd "$(dirname "$0")/../.."
me=bench_oip.sh
gconns=${GRPC_CONNS:-1}
gstreams=${GRPC_STREAMS:-32}
. tests/bench/lib.sh "$@"
gen="$build/bench/bench_grpc"
need_programs "$server" "$opener" "$gen"
need_tools wrk curl

args=()
[ -n "${SERVER_ARGS:-}" ] && read -r -a args <<<"$SERVER_ARGS"
args+=(--workers 2 --max-sessions $((sessions * 2 + 1000)) --idle-timeout 86400 --access-log 0
       --checkpoint-interval 0 --grpc-port any --grpc-port-file "$work/grpc.port")

load0=$(cut -d' ' -f1 /proc/loadavg)
echo "== load average before: $load0 (2 cores; other work on the machine skews the figures)"
echo "== preparing (model, request bodies) in $work"
read -r model_name model_path model_kind < <("$py" tests/bench/bench_server_prep.py "$work" 1000)
[ -n "${model_name:-}" ] || { echo "$me: preparing the model failed" >&2; exit 1; }
echo "model: $model_name ($model_path, $model_kind)"
start_server serve "${args[@]}"
grpc_port=$(tr -dc 0-9 <"$work/grpc.port")
echo "spikeserve pid $srv_pid on 127.0.0.1:$srv_port, gRPC on 127.0.0.1:$grpc_port"
"$opener" "$srv_port" "$model_name" "$sessions" "$work/ids.txt" 4
echo "== $sessions OIP sequences"
sample=$("$py" tests/bench/bench_oip_prep.py "$work" "$sessions" "$model_name" "$srv_port")
echo "sample v2 answer (bytes, header): $sample"

oip_wrk() { # NAME: like run_wrk (lib.sh) with oip.lua; sets the same variables
    local name=$1 out="$work/wrk-$1.txt"
    local cmd=(wrk -t"$threads" -c"$conns" -d"${duration}s" --timeout 5s --latency
               -s tests/bench/oip.lua "http://127.0.0.1:$srv_port/" -- "$sessions"
               "$work/bodies.oip" "$model_name")
    echo "\$ ${cmd[*]}"
    local c0 c1 nreq
    c0=$(cpu_ticks "$srv_pid")
    timeout $((duration + 30)) "${cmd[@]}" >"$out" 2>&1 || { cat "$out"; echo "$me: wrk failed" >&2; exit 1; }
    c1=$(cpu_ticks "$srv_pid")
    sed 's/^/    /' "$out"
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    p50=$(awk '$1 == "50%" {print $2}' "$out")
    p99=$(awk '$1 == "99%" {print $2}' "$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
    non2xx=${non2xx:-0}
    nreq=$(awk '/ requests in / {print $1}' "$out")
    rpc=$(awk -v n="$nreq" -v t=$((c1 - c0)) -v hz="$hz" \
        'BEGIN { if (t > 0) printf "%.0f", n / (t / hz); else print "n/a" }')
    echo "    server CPU: $(( (c1 - c0) * 1000 / hz )) ms for $nreq requests: $rpc requests per CPU-second"
}

grpc_run() { # NAME: one bench_grpc --oip run; sets rps p50 p99 non2xx (errors) rpc
    local name=$1 out="$work/gen-$1.txt"
    local cmd=("$gen" unary --oip --port "$grpc_port" --ids "$work/seqs.txt"
               --bodies "$work/bodies.oipgrpc" --threads "$threads" --conns "$gconns"
               --streams "$gstreams" --duration "$duration" --pid "$srv_pid")
    echo "\$ ${cmd[*]}"
    timeout $((duration * 2 + 60)) "${cmd[@]}" >"$out" 2>"$work/gen-$1.err" || {
        cat "$out" "$work/gen-$1.err"
        echo "$me: bench_grpc failed" >&2
        exit 1
    }
    sed 's/^/    /' "$out" "$work/gen-$1.err"
    res() { sed -n 's/.* '"$1"'=\([^ ]*\).*/\1/p' "$out"; }
    rps=$(res rate)
    p50="$(res p50_ms)ms"
    p99="$(res p99_ms)ms"
    non2xx=$(res errors)
    rpc=$(awk -v u="$(res cpu_us_per_batch)" 'BEGIN { if (u + 0 > 0) printf "%.0f", 1e6 / u; else print "n/a" }')
    echo "    requests/s $rps, server CPU $(res cpu_us_per_batch) us per request: $rpc requests per CPU-second"
}

# warm-up, not counted (a session's first steps have no spikes yet)
run_wrk warmup "$srv_port" "$work/bodies.ndjson" json "$srv_pid" >/dev/null
oip_wrk warmup-oip >/dev/null
grpc_run warmup-grpc >/dev/null

rows=()
for r in $(seq "$rounds"); do
    echo "== round $r of $rounds"
    run_wrk "v1-json-$r" "$srv_port" "$work/bodies.ndjson" json "$srv_pid"
    row="$rps $p50 $p99 $non2xx $rpc"
    run_wrk "v1-pb-$r" "$srv_port" "$work/bodies.pbhex" pb "$srv_pid"
    row="$row $rps $p50 $p99 $non2xx $rpc"
    oip_wrk "v2-$r"
    row="$row $rps $p50 $p99 $non2xx $rpc"
    grpc_run "v2-grpc-$r"
    row="$row $rps $p50 $p99 $non2xx $rpc"
    rows+=("$row")
done
stop_pid "$srv_pid"
median_row=$(printf '%s\n' "${rows[@]}" | awk '{ print $11 / $6, $0 }' | sort -g |
    awk -v n="${#rows[@]}" 'NR == int((n + 1) / 2) { $1 = ""; print }')
read -r j_rps j_p50 j_p99 j_non2xx j_rpc p_rps p_p50 p_p99 p_non2xx p_rpc \
    o_rps o_p50 o_p99 o_non2xx o_rpc g_rps g_p50 g_p99 g_non2xx g_rpc <<<"$median_row"
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", 100 * a / b; else print "n/a" }'; }
echo
echo "================================================================================"
echo "OIP benchmark: model $model_name ($model_kind), one-step sparse batches of a rate-coded"
echo "Fashion-MNIST image over $sessions sessions / sequences"
echo "wrk -t$threads -c$conns -d${duration}s (gRPC: $threads x $gconns connections x $gstreams calls in flight) x $rounds"
echo "interleaved rounds, loopback; 2 workers, no access log"
printf '%-34s %12s %10s %10s %8s %12s\n' "route" "requests/s" "p50" "p99" "non-2xx" "req/CPU-s"
printf '%-34s %12s %10s %10s %8s %12s\n' "v1 /steps (JSON)" "$j_rps" "$j_p50" "$j_p99" "$j_non2xx" "$j_rpc"
printf '%-34s %12s %10s %10s %8s %12s\n' "v1 /steps (protobuf)" "$p_rps" "$p_p50" "$p_p99" "$p_non2xx" "$p_rpc"
printf '%-34s %12s %10s %10s %8s %12s\n' "v2 /infer (binary, sequences)" "$o_rps" "$o_p50" "$o_p99" "$o_non2xx" "$o_rpc"
printf '%-34s %12s %10s %10s %8s %12s\n' "v2 gRPC ModelInfer (raw, sequences)" "$g_rps" "$g_p50" "$g_p99" "$g_non2xx" "$g_rpc"
echo "(the median of $rounds rounds, by v2 REST / v1 protobuf requests/s; every round's v2 REST and"
echo " v2 gRPC share of v1 protobuf, requests/s / per CPU-s:"
for row in "${rows[@]}"; do
    read -r _ _ _ _ _ b _ _ _ bc c _ _ _ cc g _ _ _ gc <<<"$row"
    echo "   REST $(pct "$c" "$b") % / $(pct "$cc" "$bc") %, gRPC $(pct "$g" "$b") % / $(pct "$gc" "$bc") %"
done
echo ")"
echo "v2 REST binary / v1 protobuf: $(pct "$o_rps" "$p_rps") % of requests/s, $(pct "$o_rpc" "$p_rpc") % per server CPU-second (goal >= 80 %)"
echo "v2 REST binary / v1 JSON:     $(pct "$o_rps" "$j_rps") % of requests/s, $(pct "$o_rpc" "$j_rpc") % per server CPU-second"
echo "v2 gRPC raw / v1 protobuf:     $(pct "$g_rps" "$p_rps") % of requests/s, $(pct "$g_rpc" "$p_rpc") % per server CPU-second"
echo "v2 gRPC raw / v2 REST binary:  $(pct "$g_rps" "$o_rps") % of requests/s, $(pct "$g_rpc" "$o_rpc") % per server CPU-second"
echo "load average (1 min) before / after: $load0 / $(cut -d' ' -f1 /proc/loadavg)"
echo "================================================================================"
