#!/usr/bin/env bash
# The C client library (through build/spikeclient-example) and the CLI (build/spikectl)
# against the real server on a free loopback port: every spikectl command, JSON and protobuf
# transports, the live stream, events, snapshot/restore, eval; then SIGTERM must exit 0.
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${SPIKESERVE_BUILD:-build}
PY=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
n=0 failed=0
ok() { # cond-exit-status description
    n=$((n + 1))
    if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi
}
is() { [ "$1" = "$2" ]; ok $? "$3 (got '$1', want '$2')"; }

if compgen -G "models/zoo/*.spk" >/dev/null && [ "${SPIKESERVE_TEST_ZOO:-1}" != 0 ]; then
    mdir=models/zoo
else
    mdir=$tmp/models
    "$PY" tests/python/spikefix.py "$mdir" >/dev/null || { echo "cannot write the test model"; exit 1; }
fi
"$B/spikeserve" --model-dir "$mdir" --bind 127.0.0.1 --port 0 --port-file "$tmp/port" --grpc-port 0 \
    --state-dir "$tmp/state" --workers 2 >"$tmp/server.log" 2>&1 &
spid=$!
trap 'kill -9 $spid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 1 300); do [ -s "$tmp/port" ] && break; sleep 0.05; done
URL="http://127.0.0.1:$(cat "$tmp/port")"
export SPIKESERVE_URL=$URL
ctl() { "$B/spikectl" -t 30000 "$@"; }
for _ in $(seq 1 100); do ctl ready >/dev/null 2>&1 && break; sleep 0.1; done
echo "# server at $URL, models from $mdir"

ctl health >/dev/null; ok $? "health"
ctl ready >/dev/null; ok $? "ready"
ctl models >"$tmp/models.txt"; ok $? "models"
model=$(awk 'NR==1{print $1}' "$tmp/models.txt")
for m in $(awk '{print $1}' "$tmp/models.txt"); do case $m in *fmnist*|*fashion*) model=$m ;; esac; done
echo "# model $model"
ctl models "$model" >"$tmp/model"; ok $? "models $model"
n_in=$(sed -n 's/.* in=\([0-9]*\).*/\1/p' "$tmp/model" | head -1)
grep -q "encoding:" "$tmp/model"; ok $? "model details show the encoding"
ctl models no-such-model 2>"$tmp/err"; [ $? != 0 ] && grep -q "404" "$tmp/err"; ok $? "unknown model: 404"

# the example program: the library end to end
"$B/spikeclient-example" "$URL" "$model" >"$tmp/example" 2>&1; ok $? "spikeclient-example"
grep -q "^seq 3: t0=40" "$tmp/example"; ok $? "example stepped three batches"
grep -q "restored: t=60" "$tmp/example"; ok $? "example rolled back to its snapshot"
"$B/spikeclient-example" "$URL" "$model" protobuf >"$tmp/example.pb" 2>&1; ok $? "spikeclient-example over protobuf"
diff <(grep -v '^session' "$tmp/example") <(grep -v '^session' "$tmp/example.pb") >&2
ok $? "protobuf and JSON transports give the same results"

# sessions
id=$(ctl open "$model" 120); ok $? "open"
# pinned to a version (the one served: flat files are their own version); JSON and protobuf
ver=$(sed -n 's/^[^ ]* *v\([0-9]*\) .*/\1/p' "$tmp/model" | head -1)
vid=$(ctl open "$model@$ver"); ok $? "open $model@$ver"
ctl info "$vid" | grep -q "^model: $model (v$ver)"; ok $? "the session is on version $ver"
vid2=$(ctl -p open "$model@$ver"); ok $? "open $model@$ver over protobuf"
ctl info "$vid2" | grep -q "^model: $model (v$ver)"; ok $? "... on version $ver"
ctl open "$model@$((ver + 100))" 2>"$tmp/err"; [ $? != 0 ] && grep -q "404" "$tmp/err"
ok $? "a version not loaded: 404 ($(head -c 120 "$tmp/err"))"
ctl open "$model@x" 2>"$tmp/err"; [ $? = 2 ] && grep -q "positive integer" "$tmp/err"
ok $? "a bad version: refused before any request"
ctl close "$vid" && ctl close "$vid2"; ok $? "close the pinned sessions"
[ ${#id} -ge 22 ]; ok $? "session id has at least 128 bits of text ($id)"
ctl info "$id" >"$tmp/info"; ok $? "info"
is "$(sed -n 's/^t: //p' "$tmp/info")" 0 "new session at t=0"
cat >"$tmp/batches" <<EOF
{"seq": 1, "steps": 10, "events": [[0, 1], [0, 2], [3, 5, 0.5]]}
# a comment line is skipped
{"seq": 2, "steps": 5, "dense": $("$PY" -c "import json; print(json.dumps([[0.5] * $n_in] * 5))")}
{"seq": 3, "steps": 7, "events": []}
EOF
ctl send "$id" "$tmp/batches" >"$tmp/sent"; ok $? "send a file of batches"
is "$(wc -l <"$tmp/sent")" 3 "one result per batch"
is "$("$PY" -c 'import json,sys; print(" ".join(str(json.loads(l)["t0"]) for l in open(sys.argv[1])))' "$tmp/sent")" "0 10 15" "results' t0"
is "$(ctl info "$id" | sed -n 's/^t: //p')" 22 "session at t=22"
echo '{"seq": 9, "steps": 1}' | ctl send "$id" - 2>"$tmp/err"; [ $? != 0 ] && grep -q 409 "$tmp/err"; ok $? "out-of-order seq: 409"
echo "{\"steps\": 2, \"events\": [[0, $n_in]]}" | ctl send "$id" - 2>"$tmp/err"
[ $? != 0 ] && grep -q "events\[0\]" "$tmp/err"; ok $? "bad input names the event: $(head -c 160 "$tmp/err")"

# snapshot, step, restore: the same step again gives the same answer
ctl snapshot "$id" "$tmp/snap" 2>/dev/null; ok $? "snapshot"
[ -s "$tmp/snap" ]; ok $? "snapshot file is not empty"
probe='{"seq": 4, "steps": 12, "events": [[0, 3], [1, 4], [2, 3]]}'
echo "$probe" | ctl send "$id" - >"$tmp/a"
ctl restore "$id" "$tmp/snap" 2>/dev/null; ok $? "restore"
is "$(ctl info "$id" | sed -n 's/^t: //p')" 22 "restored to t=22"
echo "$probe" | ctl send "$id" - >"$tmp/b"
[ -s "$tmp/a" ] && cmp -s "$tmp/a" "$tmp/b"; ok $? "the same batch after restore answers the same"

# protobuf transport
ctl -p models >"$tmp/pmodels.txt"; cmp -s "$tmp/models.txt" "$tmp/pmodels.txt"; ok $? "models over protobuf match JSON"
ctl -p info "$id" | grep -q "^t: 34"; ok $? "info over protobuf"
pid2=$(ctl -p open "$model"); ok $? "open over protobuf"
ctl -p reset "$id"; ok $? "reset over protobuf"
is "$(ctl info "$id" | sed -n 's/^t: //p')" 0 "reset to t=0"

# stream: batches typed slowly into stdin; results printed while the input is still open
(
    for s in 1 2 3; do echo "{\"seq\": $s, \"steps\": 4, \"events\": [[0, $s]]}"; sleep 0.3; done
) | ctl stream "$pid2" >"$tmp/streamed" 2>"$tmp/err"; ok $? "stream $(head -c 200 "$tmp/err")"
is "$("$PY" -c 'import json,sys; print(" ".join(str(json.loads(l)["t0"]) for l in open(sys.argv[1])))' "$tmp/streamed")" "0 4 8" "streamed results in order"
is "$(ctl info "$pid2" | sed -n 's/^t: //p')" 12 "stream advanced the session to t=12"
# results come out while stdin is still open: feed a fifo line by line, and only send the
# second batch once the first result has been printed
mkfifo "$tmp/fifo"
ctl stream "$pid2" <"$tmp/fifo" >"$tmp/live" 2>"$tmp/live.err" &
sp=$!
exec 7<>"$tmp/fifo"  # read-write: never blocks, even if the reader is gone
echo '{"seq": 4, "steps": 2}' >&7
for _ in $(seq 1 300); do [ "$(wc -l <"$tmp/live")" -ge 1 ] && break; sleep 0.1; done
is "$(head -1 "$tmp/live" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["seq"])' 2>&1)" 4 \
    "first streamed result printed while stdin is still open"
echo '{"seq": 5, "steps": 2}' >&7
exec 7>&-
wait $sp; ok $? "second stream"
is "$(wc -l <"$tmp/live")" 2 "second stream printed both results"

# events: a subscriber sees one step event per batch
ctl events "$pid2" >"$tmp/events" 2>&1 &
ep=$!
sleep 0.5
echo '{"seq": 6, "steps": 3}' | ctl send "$pid2" - >/dev/null
sleep 0.5
ctl close "$pid2"; ok $? "close"
for _ in $(seq 1 50); do kill -0 $ep 2>/dev/null || break; sleep 0.1; done
kill $ep 2>/dev/null
grep -q '^event: step' "$tmp/events"; ok $? "events: step event"
grep -q '"seq":6' "$tmp/events"; ok $? "events: the step event carries seq 6"
ctl info "$pid2" 2>"$tmp/err"; [ $? != 0 ] && grep -q 404 "$tmp/err"; ok $? "closed session: 404"
ctl metrics >"$tmp/metrics"; ok $? "metrics"
grep -q '^# TYPE spikeserve_' "$tmp/metrics"; ok $? "metrics are Prometheus text"

# eval: Fashion-MNIST through /classify (any 784-input model classifies; accuracy is printed)
if [ "$n_in" = 784 ] && [ -e /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
    ctl eval "$model" 200 -j 2 >"$tmp/eval" 2>"$tmp/evalerr"; ok $? "eval 200 images"
    is "$(sed -n 's/^images: //p' "$tmp/eval")" 200 "eval classified 200 images"
    grep -q '^accuracy: [0-9.]*%' "$tmp/eval"; ok $? "eval prints the accuracy"
    grep -q '^throughput_img_s: [0-9.]*' "$tmp/eval"; ok $? "eval prints the throughput"
    grep -q '200/200' "$tmp/evalerr"; ok $? "eval progress bar reached 200/200"
    sed 's/^/# /' "$tmp/eval"
    ctl eval "$model" 50 -j 1 --seed 7 >"$tmp/eval.json" 2>/dev/null
    ctl -p eval "$model" 50 -j 3 --seed 7 >"$tmp/eval.pb" 2>/dev/null; ok $? "eval over protobuf"
    is "$(grep '^correct' "$tmp/eval.pb")" "$(grep '^correct' "$tmp/eval.json")" \
        "same predictions over protobuf and JSON"
fi
ctl close "$id"; ok $? "close the first session"

kill -TERM $spid
wait $spid; ok $? "server exits 0 on SIGTERM"
trap 'rm -rf "$tmp"' EXIT
[ $failed = 0 ] || { echo "# server log:"; tail -n 30 "$tmp/server.log" | sed 's/^/#   /'; }
echo "1..$n"
[ $failed = 0 ]
