# tests/bench/lib.sh: what the server benchmarks share (sourced, bash; bench_server.sh,
# bench_wal.sh, bench_grpc.sh, bench_oip.sh): their settings, the work directory and the
# processes they start (stopped on exit, bounded), spikeserve on a free 127.0.0.1 port, and
# one wrk run of tests/bench/steps.lua with its figures.
# The caller sets `me` (its name, for messages) and sources this with its arguments ([BUILD]);
# after: build, py, duration, rounds, threads, conns, sessions (from DURATION, ROUNDS, THREADS,
# CONNECTIONS, SESSIONS, PYTHON), server (BUILD/spikeserve), opener (BUILD/bench/bench_open)
# and work (a new temporary directory).
build=${1:-build}
py=${PYTHON:-/usr/bin/python3}
duration=${DURATION:-10}
rounds=${ROUNDS:-3}
threads=${THREADS:-2}
conns=${CONNECTIONS:-64}
sessions=${SESSIONS:-1000}
server="$build/spikeserve"
opener="$build/bench/bench_open"
work=$(mktemp -d "/tmp/spikeserve-$me.XXXXXX")
pids=()
cleanup_dirs=("$work")
bench_cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do # bounded: 10 s each at most, then SIGKILL
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "${cleanup_dirs[@]}"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# need_programs FILE...: each built (executable), else a message and exit 1.
need_programs() {
    local f
    for f in "$@"; do
        [ -x "$f" ] || { echo "$me: $f missing (run make)" >&2; exit 1; }
    done
}

# need_tools TOOL...: each on PATH or in /usr/sbin, else a message and exit 1.
need_tools() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] ||
            { echo "$me: $t not installed (apt-get install $*)" >&2; exit 1; }
    done
}

# start_server NAME ARGS...: spikeserve with the model directory $work/models on a free
# loopback port (--port 0, --port-file) plus ARGS; waits until /readyz answers; sets srv_pid
# and srv_port. Its stderr goes to $work/NAME.log (printed if it exits early).
start_server() {
    local name=$1 log="$work/$1.log" pf="$work/$1.port"
    shift
    rm -f "$pf"
    local args=(--model-dir "$work/models" --bind 127.0.0.1 --port 0 --port-file "$pf" --grpc-port 0 "$@")
    echo "\$ $server ${args[*]}"
    "$server" "${args[@]}" 2>"$log" &
    srv_pid=$!
    pids+=("$srv_pid")
    for _ in $(seq 300); do # 30 s to load the models and listen
        [ -s "$pf" ] && break
        kill -0 "$srv_pid" 2>/dev/null || { cat "$log" >&2; echo "$me: spikeserve exited" >&2; exit 1; }
        sleep 0.1
    done
    [ -s "$pf" ] || { echo "$me: no port file after 30 s" >&2; exit 1; }
    srv_port=$(tr -dc 0-9 <"$pf")
    for _ in $(seq 100); do
        curl -sf -o /dev/null "http://127.0.0.1:$srv_port/readyz" && return 0
        sleep 0.1
    done
    echo "$me: spikeserve not ready after 10 s" >&2
    exit 1
}

stop_pid() { # bounded stop of one process we started; off the exit list (its pid may be reused)
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 200); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    local p left=()
    for p in "${pids[@]}"; do [ "$p" = "$1" ] || left+=("$p"); done
    pids=("${left[@]}")
}

# CPU time (user + system, clock ticks) of processes (all their threads), 0 for gone ones.
hz=$(getconf CLK_TCK)
cpu_ticks() {
    local p t=0
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] && t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
    done
    echo "$t"
}

# run_wrk NAME PORT BODIES MODE PIDS...: wrk with steps.lua over the session ids in
# $work/ids.txt; prints its output; sets rps, p50, p99, non2xx, errors, and rpc (requests per
# CPU-second of PIDS during the run).
run_wrk() {
    local name=$1 port=$2 bodies=$3 mode=$4
    shift 4
    local out="$work/wrk-$name.txt"
    local cmd=(wrk -t"$threads" -c"$conns" -d"${duration}s" --timeout 5s --latency
               -s tests/bench/steps.lua "http://127.0.0.1:$port/" -- "$work/ids.txt" "$bodies" "$mode")
    echo "\$ ${cmd[*]}"
    local c0 c1
    c0=$(cpu_ticks "$@")
    timeout $((duration + 30)) "${cmd[@]}" >"$out" 2>&1 || { cat "$out"; echo "$me: wrk failed" >&2; exit 1; }
    c1=$(cpu_ticks "$@")
    sed 's/^/    /' "$out"
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    p50=$(awk '$1 == "50%" {print $2}' "$out")
    p99=$(awk '$1 == "99%" {print $2}' "$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
    errors=$(grep -E '^ +Socket errors:' "$out" | sed 's/^ *//' || true)
    non2xx=${non2xx:-0}
    local nreq
    nreq=$(awk '/ requests in / {print $1}' "$out")
    rpc=$(awk -v n="$nreq" -v t=$((c1 - c0)) -v hz="$hz" \
        'BEGIN { if (t > 0) printf "%.0f", n / (t / hz); else print "n/a" }')
    echo "    server CPU: $(( (c1 - c0) * 1000 / hz )) ms for $nreq requests: $rpc requests per CPU-second"
}
