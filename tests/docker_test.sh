#!/usr/bin/env bash
# make docker-test: build the image with docker-build.sh (podman, local Debian 12 base), check
# its configuration (non-root user, port, volume, health check, exec-form entrypoint, stop
# signal, a model inside, no compiler), run its command on a free loopback port, wait for
# /healthz, open a session and step it, run the HEALTHCHECK command, SIGTERM the server and
# check that it exits 0 having saved the session, then start it again on the same state and
# find the session where it was.
#   tests/docker_test.sh [TAG]      (SHARED: folder of docker-build.sh, default ../shared)
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-localhost/spikeserve:test}
shared=${SHARED:-../shared}
[ -x "$shared/docker-build.sh" ] || shared=/work/shared
db="$shared/docker-build.sh"
fails=0 passes=0
check() { # description command...
    local d=$1; shift
    if "$@"; then echo "ok - $d"; passes=$((passes + 1)); else echo "not ok - $d"; fails=$((fails + 1)); fi
}

echo "# building $tag"
"$db" build "$tag"

cfg=$(podman image inspect "$tag" --format '{{json .Config}}')
echo "# config: $cfg"
check "runs as a non-root user" test "$(jq -r '.User' <<<"$cfg" | cut -d: -f1)" != "" -a \
    "$(jq -r '.User' <<<"$cfg" | cut -d: -f1)" != 0 -a "$(jq -r '.User' <<<"$cfg")" != root
has() { jq -e "$1" >/dev/null <<<"$2"; } # jq-filter json: true when the filter holds
check "exposes 8080/tcp" has '.ExposedPorts["8080/tcp"]' "$cfg"
check "declares the state volume" has '.Volumes["/var/lib/spikeserve"]' "$cfg"
check "exec-form entrypoint is the server" \
    test "$(jq -r '.Entrypoint[0]' <<<"$cfg")" = /usr/local/bin/spikeserve
check "stops with SIGTERM" test "$(jq -r '.StopSignal' <<<"$cfg")" = SIGTERM
check "listens on 0.0.0.0" has '.Env | index("SPIKESERVE_BIND=0.0.0.0")' "$cfg"
check "exposes the HTTP and gRPC ports" has '.ExposedPorts | has("8080/tcp") and has("8081/tcp")' "$cfg"
check "gRPC on 8081 by default" has '.Env | index("SPIKESERVE_GRPC_PORT=8081")' "$cfg"
hc=$(podman image inspect "$tag" | jq -c '.[0] | .Healthcheck // .Config.Healthcheck')
echo "# healthcheck: $hc"
check "has a HEALTHCHECK" has '.Test | length > 1' "$hc"
size=$(podman image inspect "$tag" | jq '.[0].Size')
echo "# image size: $((size / 1024 / 1024)) MiB"
mnt=$(podman image mount "$tag")
check "ships at least one model" compgen -G "$mnt/usr/share/spikeserve/models/*.spk"
check "runtime stage has no compiler" test ! -e "$mnt/usr/bin/cc"
podman image unmount "$tag" >/dev/null || true

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
gport=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
user=$(jq -r '.User' <<<"$cfg")
# docker-build.sh runs the image read-only: the state volume is emulated by a writable folder
# that the chroot sees (/dev is bind-mounted), owned by the image's user
state=$(mktemp -d /dev/shm/spikeserve-docker-test.XXXXXX)
chown "$user" "$state"
log=$(mktemp)
pid=
cleanup() {
    [ -n "$pid" ] && kill -TERM "$(pgrep -P "$pid" | head -1)" 2>/dev/null
    rm -rf "$state"
}
trap cleanup EXIT
start() {
    echo "# running $tag on port $port"
    "$db" run "$tag" SPIKESERVE_PORT="$port" SPIKESERVE_GRPC_PORT="$gport" \
        SPIKESERVE_STATE_DIR="$state" >>"$log" 2>&1 &
    pid=$!
    local up=0
    for _ in $(seq 1 300); do
        if curl -fsS "$url/healthz" >/dev/null 2>&1; then up=1; break; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    check "answers /healthz" test $up = 1
}
# SIGTERM to the server itself, as a container runtime sends it to PID 1: env, chroot and sh
# exec into it, so it is the script's child; the script then exits with the server's status.
stop() {
    local spid rc=0
    spid=$(pgrep -P "$pid" | head -1)
    echo "# SIGTERM to the server (pid $spid)"
    kill -TERM "$spid"
    wait "$pid" || rc=$?
    pid=
    check "exits 0 on SIGTERM (got $rc)" test "$rc" = 0
}

start
model=$(curl -fsS "$url/v1/models" | jq -r '.models[0].name')
n_in=$(curl -fsS "$url/v1/models/$model" | jq -r '.n_in')
echo "# model $model, $n_in inputs"
sid=$(curl -fsS -X POST "$url/v1/models/$model/sessions" | jq -r '.session_id')
check "opens a session" test -n "$sid" -a "$sid" != null
r=$(curl -fsS -X POST "$url/v1/sessions/$sid/steps" -H 'Content-Type: application/json' \
    -d '{"seq": 1, "steps": 20, "events": [[0, 1], [0, 2], [5, 3, 0.5]]}')
echo "# step: ${r:0:200}"
check "steps it" test "$(jq -r '.t0, .steps' <<<"$r" | tr '\n' ' ')" = "0 20 "
check "session is at t=20" test "$(curl -fsS "$url/v1/sessions/$sid" | jq -r .t)" = 20
# gRPC from outside the container: health (what a Kubernetes gRPC probe asks), then the same
# session over spikeserve.v1.Spikeserve
grpc_out=$(cd "$(dirname "$0")/.." && /usr/bin/python3 - "$gport" "$sid" <<'PY'
import sys
sys.path.insert(0, "proto")
import grpc, health_pb2, health_pb2_grpc, service_pb2, service_pb2_grpc
ch = grpc.insecure_channel("127.0.0.1:" + sys.argv[1])
h = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
s = service_pb2_grpc.SpikeserveStub(ch).GetSession(service_pb2.SessionRef(session_id=sys.argv[2]), timeout=10)
print(health_pb2.HealthCheckResponse.ServingStatus.Name(h.status), s.t)
PY
)
echo "# grpc: $grpc_out"
check "gRPC health SERVING and the session at t=20 over gRPC" test "$grpc_out" = "SERVING 20"
# the image's HEALTHCHECK command, as the runtime would run it (inside the image, as its user)
hmnt=$(podman image mount "$tag")
mapfile -t hcmd < <(jq -r '.Test[]' <<<"$hc")
case ${hcmd[0]} in
CMD) hcmd=("${hcmd[@]:1}") ;;
CMD-SHELL) hcmd=(/bin/sh -c "${hcmd[1]}") ;;
esac
mapfile -t envs < <(jq -r '(.Env // [])[]' <<<"$cfg")
check "HEALTHCHECK command passes" env -i "${envs[@]}" SPIKESERVE_PORT="$port" \
    /usr/sbin/chroot --userspec="$user" "$hmnt" "${hcmd[@]}"
stop
check "the drain saved the session to the state volume" test -n "$(ls "$state")"
# a new container on the same volume continues the session
start
check "the session is back after a restart, at t=20" \
    test "$(curl -fsS "$url/v1/sessions/$sid" | jq -r .t)" = 20
stop
trap - EXIT
cleanup
echo "# server log (tail):"
tail -n 12 "$log" | sed 's/^/#   /'
rm -f "$log"
echo "docker-test: $passes of $((passes + fails)) checks ok"
[ $fails = 0 ]
