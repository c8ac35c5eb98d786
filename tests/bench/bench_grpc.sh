#!/usr/bin/env bash
# bench_grpc.sh: `make bench-grpc`. gRPC against HTTP/1.1 on one spikeserve (models/zoo's
# fmnist, else bench_model.py's random model), the batches of `make bench-server`
# (bench_server_prep.py: one-step sparse batches of rate-coded Fashion-MNIST images), in one
# run, loopback only:
#  1. unary: wrk (steps.lua, -t THREADS -c CONNECTIONS) POSTing /v1/sessions/{id}/steps in
#     JSON and in protobuf, against BUILD/bench/bench_grpc unary: Step calls over
#     GRPC_CONNS HTTP/2 connections per thread with GRPC_STREAMS calls in flight each (as
#     many requests in flight as wrk's connections), and over one connection with 64 calls
#     in flight, over the same 1,000 sessions;
#  2. one session, pipelined: one StreamSteps call (at most WINDOW batches unanswered), one
#     HTTP/1.1 keep-alive connection POSTing /steps (protobuf) back to back, and one
#     chunked /stream upload (NDJSON) whose answers are read from /events (at most WINDOW
#     lines unanswered): each first as fast as it goes (batches/s), then paced at half that
#     rate for the answer latency (p50, p99: from a batch's scheduled send time to its
#     answer, so a late client or server counts);
#  3. for each: the server's CPU time (utime + stime of /proc/PID/stat) per batch.
# The phases are interleaved in ROUNDS rounds; the table shows each figure's median over
# the rounds and every round follows it. Never fails on timing; exits non-zero only when
# something could not run.
#   tests/bench/bench_grpc.sh [BUILD]   (env: DURATION=10 ROUNDS=3 THREADS=2 CONNECTIONS=64
#                                        GRPC_CONNS=1 GRPC_STREAMS=32 WINDOW=64 SERVER_ARGS=)
set -euo pipefail
cd "$(dirname "$0")/../.."
gconns=${GRPC_CONNS:-1}
gstreams=${GRPC_STREAMS:-32}
window=${WINDOW:-64}
me=bench_grpc.sh
. tests/bench/lib.sh "$@"
gen="$build/bench/bench_grpc"
need_programs "$server" "$gen" "$opener"
need_tools wrk curl

load0=$(cut -d' ' -f1 /proc/loadavg)
echo "== load average before: $load0 (2 cores; other work on the machine skews the figures)"
echo "== preparing (model, request bodies) in $work"
read -r model_name model_path model_kind < <("$py" tests/bench/bench_server_prep.py "$work" 1000)
[ -n "${model_name:-}" ] || { echo "$me: preparing the model failed" >&2; exit 1; }
echo "model: $model_name ($model_path, $model_kind)"

args=()
[ -n "${SERVER_ARGS:-}" ] && read -r -a args <<<"$SERVER_ARGS"
start_server serve "${args[@]}" --workers 2 --max-sessions 200000 --idle-timeout 86400 \
    --access-log 0 --checkpoint-interval 0 --grpc-port any --grpc-port-file "$work/grpc.port"
grpc_port=$(tr -dc 0-9 <"$work/grpc.port")
echo "spikeserve pid $srv_pid: HTTP on 127.0.0.1:$srv_port, gRPC on 127.0.0.1:$grpc_port"
"$opener" "$srv_port" "$model_name" 1000 "$work/ids.txt" 4
"$opener" "$srv_port" "$model_name" 3 "$work/one.txt" 1
s_stream=$(sed -n 1p "$work/one.txt")
s_ka=$(sed -n 2p "$work/one.txt")
s_sse=$(sed -n 3p "$work/one.txt")

# gen NAME MODE ARGS...: one bench_grpc run; its RESULT line in $work/gen-NAME.txt, fields
# read with res NAME KEY
gen() {
    local name=$1
    shift
    local cmd=("$gen" "$@" --duration "$duration" --pid "$srv_pid")
    echo "\$ ${cmd[*]}"
    timeout $((duration * 2 + 60)) "${cmd[@]}" >"$work/gen-$name.txt" 2>"$work/gen-$name.err" || {
        cat "$work/gen-$name.txt" "$work/gen-$name.err"
        echo "$me: bench_grpc $name failed" >&2
        exit 1
    }
    sed 's/^/    /' "$work/gen-$name.txt" "$work/gen-$name.err"
}
res() { sed -n 's/.* '"$2"'=\([^ ]*\).*/\1/p' "$work/gen-$1.txt"; }
half() { awk -v r="$1" 'BEGIN { printf "%.0f", r / 2 }'; }
ms() { # wrk's latency (850.00us, 1.51ms, 1.02s) in ms
    awk -v x="$1" 'BEGIN { v = x + 0; if (x ~ /us$/) v /= 1000; else if (x ~ /[^m]s$/) v *= 1000
                           printf "%.3fms", v }'
}
us_per() { # CPU microseconds per request from wrk's requests per CPU-second
    awk -v r="$1" 'BEGIN { if (r + 0 > 0) printf "%.1f", 1e6 / r; else print "n/a" }'
}

# warm-up, not counted (a session's first steps have no spikes)
run_wrk warmup "$srv_port" "$work/bodies.ndjson" json "$srv_pid" >/dev/null
rows=() # per round: name value pairs
for r in $(seq "$rounds"); do
    echo "== round $r of $rounds (load average $(cut -d' ' -f1 /proc/loadavg))"
    row=""
    run_wrk "json-$r" "$srv_port" "$work/bodies.ndjson" json "$srv_pid"
    row+=" wrk_json_rps=$rps wrk_json_p50=$(ms "$p50") wrk_json_p99=$(ms "$p99") wrk_json_cpu=$(us_per "$rpc") wrk_json_bad=$non2xx"
    run_wrk "pb-$r" "$srv_port" "$work/bodies.pbhex" pb "$srv_pid"
    row+=" wrk_pb_rps=$rps wrk_pb_p50=$(ms "$p50") wrk_pb_p99=$(ms "$p99") wrk_pb_cpu=$(us_per "$rpc") wrk_pb_bad=$non2xx"
    gen "unary-$r" unary --port "$grpc_port" --ids "$work/ids.txt" --bodies "$work/bodies.pbhex" \
        --threads "$threads" --conns "$gconns" --streams "$gstreams"
    row+=" unary_rps=$(res "unary-$r" rate) unary_p50=$(res "unary-$r" p50_ms)ms"
    row+=" unary_p99=$(res "unary-$r" p99_ms)ms unary_cpu=$(res "unary-$r" cpu_us_per_batch)"
    row+=" unary_err=$(res "unary-$r" errors)"
    gen "unary1-$r" unary --port "$grpc_port" --ids "$work/ids.txt" --bodies "$work/bodies.pbhex" \
        --threads 1 --conns 1 --streams 64
    row+=" unary1_rps=$(res "unary1-$r" rate) unary1_p50=$(res "unary1-$r" p50_ms)ms"
    row+=" unary1_p99=$(res "unary1-$r" p99_ms)ms unary1_cpu=$(res "unary1-$r" cpu_us_per_batch)"
    row+=" unary1_err=$(res "unary1-$r" errors)"
    for m in stream keepalive sse; do
        case $m in
        stream) a=(--port "$grpc_port" --session "$s_stream" --bodies "$work/bodies.pbhex" --window "$window") ;;
        keepalive) a=(--port "$srv_port" --session "$s_ka" --bodies "$work/bodies.pbhex" --pb) ;;
        sse) a=(--port "$srv_port" --session "$s_sse" --bodies "$work/bodies.ndjson" --window "$window") ;;
        esac
        gen "$m-$r" "$m" "${a[@]}"
        rate=$(res "$m-$r" rate)
        gen "$m-paced-$r" "$m" "${a[@]}" --rate "$(half "$rate")"
        row+=" ${m}_bps=$rate ${m}_cpu=$(res "$m-$r" cpu_us_per_batch) ${m}_err=$(res "$m-$r" errors)"
        row+=" ${m}_half=$(res "$m-paced-$r" rate) ${m}_p50=$(res "$m-paced-$r" p50_ms)ms"
        row+=" ${m}_p99=$(res "$m-paced-$r" p99_ms)ms ${m}_hcpu=$(res "$m-paced-$r" cpu_us_per_batch)"
        row+=" ${m}_herr=$(res "$m-paced-$r" errors) ${m}_late=$(res "$m-paced-$r" send_late_p99_ms)ms"
    done
    row+=" load=$(cut -d' ' -f1 /proc/loadavg)"
    rows+=("$row")
done
stop_pid "$srv_pid"

# med KEY: the median over the rounds of one figure (units kept: ms, us)
med() {
    local u
    u=$(printf '%s\n' "${rows[@]}" | tr ' ' '\n' | sed -n "s/^$1=[0-9.]*//p" | head -n1)
    printf '%s\n' "${rows[@]}" | tr ' ' '\n' | sed -n "s/^$1=\([0-9.]*\).*/\1/p" | sort -g |
        awk -v u="$u" '{ v[NR] = $1 }
             END { n = NR; if (!n) { print "n/a"; exit }
                   x = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
                   if (x >= 100) printf "%.0f%s\n", x, u; else printf "%.3g%s\n", x, u }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2fx", a / b; else print "n/a" }'; }
echo
echo "================================================================================"
echo "gRPC benchmark: model $model_name ($model_kind), one-step sparse batches of a rate-coded"
echo "Fashion-MNIST image (bench_server_prep.py); one spikeserve, 2 workers, no access log;"
echo "median of $rounds interleaved rounds of ${duration}s per phase; loopback"
printf '%-44s %12s %10s %10s %12s\n' "unary (64 requests in flight)" "requests/s" "p50" "p99" "CPU us/req"
printf '%-44s %12s %10s %10s %12s\n' "HTTP/1.1 /steps JSON (wrk -t$threads -c$conns)" \
    "$(med wrk_json_rps)" "$(med wrk_json_p50)" "$(med wrk_json_p99)" "$(med wrk_json_cpu)"
printf '%-44s %12s %10s %10s %12s\n' "HTTP/1.1 /steps protobuf (same)" \
    "$(med wrk_pb_rps)" "$(med wrk_pb_p50)" "$(med wrk_pb_p99)" "$(med wrk_pb_cpu)"
printf '%-44s %12s %10s %10s %12s\n' "gRPC Step ($threads thr x $gconns conn x $gstreams calls)" \
    "$(med unary_rps)" "$(med unary_p50)" "$(med unary_p99)" "$(med unary_cpu)"
printf '%-44s %12s %10s %10s %12s\n' "gRPC Step (1 thr x 1 conn x 64 calls)" \
    "$(med unary1_rps)" "$(med unary1_p50)" "$(med unary1_p99)" "$(med unary1_cpu)"
echo "  gRPC Step / wrk protobuf: $(ratio "$(med unary_rps)" "$(med wrk_pb_rps)")," \
    "/ wrk JSON: $(ratio "$(med unary_rps)" "$(med wrk_json_rps)") (goal >= 1x)"
echo
printf '%-44s %10s %10s %9s %9s %10s %13s\n' "one session, pipelined" "batches/s" "half rate" "p50" "p99" "late p99" "CPU us/batch"
for m in stream keepalive sse; do
    case $m in
    stream) label="gRPC StreamSteps (window $window)" ;;
    keepalive) label="HTTP/1.1 keep-alive /steps back to back" ;;
    sse) label="HTTP/1.1 /stream + /events (window $window)" ;;
    esac
    printf '%-44s %10s %10s %9s %9s %10s %13s\n' "$label" "$(med ${m}_bps)" "$(med ${m}_half)" \
        "$(med ${m}_p50)" "$(med ${m}_p99)" "$(med ${m}_late)" "$(med ${m}_cpu)/$(med ${m}_hcpu)"
done
echo "  StreamSteps / keep-alive: $(ratio "$(med stream_bps)" "$(med keepalive_bps)") (goal >= 5x)," \
    "/ (/stream + /events): $(ratio "$(med stream_bps)" "$(med sse_bps)")"
echo "(p50, p99: answer latency at half the rate, from the scheduled send; late p99: how late"
echo " the generator itself sent (the machine's load delays it too); CPU us/batch: the server's"
echo " CPU per batch at full rate / at half rate)"
echo "every round:"
for row in "${rows[@]}"; do echo " $row"; done | sed 's/ \([a-z_]*\)=/ \1=/g' | fold -s -w 120
errs=$(printf '%s\n' "${rows[@]}" | tr ' ' '\n' | grep -E '_(err|herr|bad)=' | grep -v '=0$' || true)
[ -n "$errs" ] && echo "ERRORS (see the bench_grpc lines above): $(echo $errs)"
echo "load average (1 min) before / after: $load0 / $(cut -d' ' -f1 /proc/loadavg)"
echo "================================================================================"
