#!/usr/bin/env bash
# bench_server.sh: `make bench-server`. In one run on this machine, loopback only:
#  1. spikeserve (BUILD/spikeserve) on a free 127.0.0.1 port with the benchmark model
#     (models/zoo's 784-256-256-10 model, else a random one: tests/bench/bench_model.py);
#     1,000 sessions opened; wrk (tests/bench/steps.lua) POSTs one-step sparse spike batches
#     (one step of a rate-coded Fashion-MNIST image each) spread over the 1,000 sessions to
#     /v1/sessions/{id}/steps;
#  2. nginx (its own temporary prefix and config) on another free 127.0.0.1 port answering
#     every request with a static body of the same size as spikeserve's answers; the same wrk
#     run against it;
#  3. memory per idle session: a fresh spikeserve with --max-sessions above 100,000, VmRSS
#     before and after opening 100,000 sessions (tests/bench/bench_open.c).
# Both servers run side by side and the wrk runs are interleaved in ROUNDS rounds (spikeserve
# JSON, spikeserve protobuf, nginx), so that a change in the machine's load (it is shared; a
# VM with stolen time) hits all three alike; the share of nginx is taken within each round
# and the median round is reported.
# Prints requests/s, p50 and p99 latency for both, our share of nginx's requests/s, and bytes
# per idle session. Never fails on timing; exits non-zero only when something could not run.
#   tests/bench/bench_server.sh [BUILD]   (env: DURATION=10 ROUNDS=3 THREADS=2 CONNECTIONS=64
#                                          SESSIONS=1000 IDLE_SESSIONS=100000 SERVER_ARGS=)
set -euo pipefail
cd "$(dirname "$0")/../.."
idle_sessions=${IDLE_SESSIONS:-100000}
me=bench_server.sh
. tests/bench/lib.sh "$@"
need_programs "$server" "$opener"
need_tools wrk nginx curl
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

free_port() {
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Flags this spikeserve knows (the option list may grow; pass only known ones).
help=$("$server" --help 2>&1 || true)
has_flag() { grep -q -- "--$1\b" <<<"$help"; }

# serve LOGNAME MAX_SESSIONS: spikeserve as this benchmark runs it (start_server in lib.sh).
serve() {
    local args=()
    # SERVER_ARGS: extra spikeserve options for experiments (e.g. SERVER_ARGS="--http-threads 1")
    [ -n "${SERVER_ARGS:-}" ] && read -r -a args <<<"$SERVER_ARGS"
    has_flag workers && args+=(--workers 2)
    has_flag max-sessions && args+=(--max-sessions "$2")
    has_flag idle-timeout && args+=(--idle-timeout 86400)
    has_flag access-log && args+=(--access-log 0)
    has_flag checkpoint-interval && args+=(--checkpoint-interval 0)
    start_server "$1" "${args[@]}"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

load0=$(cut -d' ' -f1 /proc/loadavg)
s_err=""
echo "== load average before: $load0 (2 cores; other work on the machine skews the figures)"
echo "== preparing (model, request bodies) in $work"
read -r model_name model_path model_kind < <("$py" tests/bench/bench_server_prep.py "$work" 1000)
[ -n "${model_name:-}" ] || { echo "$me: preparing the model failed" >&2; exit 1; }
echo "model: $model_name ($model_path, $model_kind)"

# ---- 1. spikeserve under wrk ----
echo "== spikeserve: $sessions sessions, wrk ${duration}s, $threads threads, $conns connections"
serve serve 200000
echo "spikeserve pid $srv_pid on 127.0.0.1:$srv_port"
"$opener" "$srv_port" "$model_name" "$sessions" "$work/ids.txt" 4
sample_id=$(head -n1 "$work/ids.txt")
head -n1 "$work/bodies.ndjson" >"$work/sample.body"
read -r code size < <(curl -s -o "$work/sample.out" -w '%{http_code} %{size_download}\n' \
    -H 'Content-Type: application/json' --data-binary "@$work/sample.body" \
    "http://127.0.0.1:$srv_port/v1/sessions/$sample_id/steps")
echo "sample step answer: HTTP $code, $size bytes: $(head -c 160 "$work/sample.out")..."
[ "$code" = 200 ] || { echo "$me: a step answered $code" >&2; exit 1; }
# Warm-up (a session's first steps have no spikes yet), not counted.
run_wrk warmup "$srv_port" "$work/bodies.ndjson" json "$srv_pid" >/dev/null
# The answers' size once the sessions are warm (a session's first steps have no spikes):
# the mean over 50 steps of as many sessions, after the run; nginx answers that many bytes.
total=0
for k in $(seq 50); do
    id=$(sed -n "$((k * 7 % sessions + 1))p" "$work/ids.txt")
    sed -n "$((k + 1))p" "$work/bodies.ndjson" >"$work/sample.body"
    n=$(curl -s -o /dev/null -w '%{size_download}' -H 'Content-Type: application/json' \
        --data-binary "@$work/sample.body" "http://127.0.0.1:$srv_port/v1/sessions/$id/steps")
    total=$((total + n))
done
size=$((total / 50))
echo "mean answer after the run: $size bytes"

# ---- 2. nginx, same requests, a static answer of the same size ----
nport=$(free_port)
mkdir -p "$work/nginx/logs" "$work/nginx/tmp"
"$py" - "$size" >"$work/nginx/answer.txt" <<'EOF'
import sys
n = int(sys.argv[1])
pad = max(0, n - len('{"pad":""}'))
sys.stdout.write('{"pad":"' + "x" * pad + '"}')
EOF
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/nginx/tmp/body;
    proxy_temp_path $work/nginx/tmp/proxy;
    fastcgi_temp_path $work/nginx/tmp/fastcgi;
    uwsgi_temp_path $work/nginx/tmp/uwsgi;
    scgi_temp_path $work/nginx/tmp/scgi;
    keepalive_requests 100000000;
    client_body_buffer_size 64k;
    server {
        listen 127.0.0.1:$nport;
        location / {
            default_type application/json;
            return 200 '$(cat "$work/nginx/answer.txt")';
        }
    }
}
EOF
echo "== nginx on 127.0.0.1:$nport (static $size-byte answer)"
echo "\$ $nginx_bin -p $work/nginx -c $work/nginx/nginx.conf"
"$nginx_bin" -p "$work/nginx" -c "$work/nginx/nginx.conf" 2>"$work/nginx/logs/stderr.log" &
ng_pid=$!
pids+=("$ng_pid")
for _ in $(seq 100); do
    curl -sf -o /dev/null -X POST --data-binary "@$work/sample.body" "http://127.0.0.1:$nport/" && break
    kill -0 "$ng_pid" 2>/dev/null || { cat "$work/nginx/logs/"*; echo "nginx exited" >&2; exit 1; }
    sleep 0.1
done
nsize=$(curl -s -o /dev/null -w '%{size_download}' -X POST -H 'Content-Type: application/json' \
    --data-binary "@$work/sample.body" "http://127.0.0.1:$nport/v1/sessions/x/steps")
echo "nginx answer: $nsize bytes"
ng_workers=$(ps -o pid= --ppid "$ng_pid" | tr -d ' ' | tr '\n' ' ')

# ---- rounds: spikeserve JSON, spikeserve protobuf (Content-Type and Accept
# application/x-protobuf), nginx; the same request bodies ----
rows=()
for r in $(seq "$rounds"); do
    echo "== round $r of $rounds"
    run_wrk "spikeserve-$r" "$srv_port" "$work/bodies.ndjson" json "$srv_pid"
    row="$rps $p50 $p99 $non2xx $rpc"
    [ -n "$errors" ] && s_err=$errors
    run_wrk "spikeserve-pb-$r" "$srv_port" "$work/bodies.pbhex" pb "$srv_pid"
    row="$row $rps $p50 $p99 $non2xx $rpc"
    run_wrk "nginx-$r" "$nport" "$work/bodies.ndjson" json "$ng_pid" $ng_workers
    row="$row $rps $p50 $p99 $non2xx $rpc"
    rows+=("$row")
done
stop_pid "$srv_pid"
stop_pid "$ng_pid"
# The median round by the JSON share of nginx's requests/s; its figures are the ones shown.
median_row=$(printf '%s\n' "${rows[@]}" | awk '{ print $1 / $11, $0 }' | sort -g |
    awk -v n="${#rows[@]}" 'NR == int((n + 1) / 2) { $1 = ""; print }')
read -r s_rps s_p50 s_p99 s_non2xx s_rpc p_rps p_p50 p_p99 p_non2xx p_rpc \
    n_rps n_p50 n_p99 n_non2xx n_rpc <<<"$median_row"

# ---- 3. memory per idle session ----
echo "== memory: $idle_sessions idle sessions"
serve mem $((idle_sessions + 50000))
sleep 1
rss0=$(rss_kb "$srv_pid")
"$opener" "$srv_port" "$model_name" "$idle_sessions" - 4
sleep 1
rss1=$(rss_kb "$srv_pid")
stop_pid "$srv_pid"

pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", 100 * a / b; else print "n/a" }'; }
share=$(pct "$s_rps" "$n_rps")
per=$(awk -v a="$rss0" -v b="$rss1" -v n="$idle_sessions" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')
echo
echo "================================================================================"
echo "server benchmark: model $model_name ($model_kind), one-step sparse batches of a"
echo "rate-coded Fashion-MNIST image (~$(( $(wc -c <"$work/bodies.ndjson") / 1000 )) bytes each), answers of $size bytes"
echo "wrk -t$threads -c$conns -d${duration}s x $rounds interleaved rounds, loopback; both servers 2 workers, no access log"
printf '%-26s %12s %10s %10s %8s %14s\n' "server" "requests/s" "p50" "p99" "non-2xx" "req/CPU-s"
printf '%-26s %12s %10s %10s %8s %14s\n' "spikeserve (JSON)" "$s_rps" "$s_p50" "$s_p99" "$s_non2xx" "$s_rpc"
printf '%-26s %12s %10s %10s %8s %14s\n' "spikeserve (protobuf)" "$p_rps" "$p_p50" "$p_p99" "$p_non2xx" "$p_rpc"
printf '%-26s %12s %10s %10s %8s %14s\n' "nginx (static, same size)" "$n_rps" "$n_p50" "$n_p99" "$n_non2xx" "$n_rpc"
[ -n "$s_err" ] && echo "spikeserve wrk: $s_err"
echo "(the median of $rounds interleaved rounds of ${duration}s; every round's share of nginx, JSON / protobuf:"
for row in "${rows[@]}"; do
    read -r a _ _ _ _ b _ _ _ _ c _ <<<"$row"
    awk -v a="$a" -v b="$b" -v c="$c" 'BEGIN { printf "   %.1f %% / %.1f %%\n", 100 * a / c, 100 * b / c }'
done
echo ")"
echo "req/CPU-s: requests per second of the server's own CPU time (robust to a busy machine)"
echo "load average (1 min) before / after: $load0 / $(cut -d' ' -f1 /proc/loadavg)"
echo "our share of nginx's requests/s: $share % with JSON, $(pct "$p_rps" "$n_rps") % with protobuf (goal >= 50 %);"
echo "  per CPU-second: $(pct "$s_rpc" "$n_rpc") % with JSON, $(pct "$p_rpc" "$n_rpc") % with protobuf"
echo "memory: VmRSS $rss0 kB with 0 sessions, $rss1 kB with $idle_sessions sessions:" \
     "$per bytes per idle session (goal <= 8192)"
echo "================================================================================"
