#!/usr/bin/env python3
"""test_cluster_lb.py (make test-cluster): spikeserve replicas behind the REAL nginx
(Debian's nginx-light, deploy/nginx.conf) and the REAL HAProxy (deploy/haproxy.cfg when
shipped, else a minimal config hashing the session id), issue 15.

For each balancer: 3 replicas (--peers, --wal 1), 200 sessions opened through the balancer
and stepped with seq by 8 client threads, retrying a retryable answer (0/429/502/503/504)
with the same seq, while the test
  (a) adds a 4th replica (peers file + SIGHUP to the others, balancer reloaded),
  (b) removes one with SIGTERM (its handoff), then drops it from the peers and the balancer,
  (c) SIGKILLs one and restarts it on its state directory (WAL replay).
At the end: every session at t = ROUNDS * STEPS and last_seq = ROUNDS; every answer (each
retry's too) bit-identical to a single plain server's answer to the same batch; no 409 (a
lost or doubled step would be one), no 404; every session held by exactly one replica, the
owner in the ring; the fraction of sessions moved by each change is printed.
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cluster as C  # noqa: E402

N = int(os.environ.get("CLUSTER_SESSIONS", "200"))
ROUNDS = int(os.environ.get("CLUSTER_ROUNDS", "24"))
STEPS = 4
THREADS = 8
# seconds each client thread rests between rounds, so that the three changes happen while
# the sessions are being stepped (not after the last round)
PACE = float(os.environ.get("CLUSTER_PACE", "0.4"))

HAPROXY_MIN = """# minimal HAProxy config of test_cluster_lb.py (deploy/haproxy.cfg not shipped yet)
global
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    retries 1
frontend spikeserve_in
    bind :8080                                          #@bind
    default_backend spikeserve
backend spikeserve
    http-request set-var(txn.ss_key) path,field(4,/) if { path_beg /v1/sessions/ }
    balance hash var(txn.ss_key)
    hash-type consistent
    # BEGIN PEERS
    # END PEERS
"""


def render(template, peer_lines, subs):
    out, skip, seen = [], False, set()
    for line in template.splitlines():
        if "# BEGIN PEERS" in line:
            out.append(line)
            out.extend(peer_lines)
            skip = True
            continue
        if "# END PEERS" in line:
            skip = False
        if skip:
            continue
        for marker, repl in subs.items():
            if marker in line:
                line = repl
                seen.add(marker)
        out.append(line)
    missing = set(subs) - seen
    if missing:
        raise RuntimeError("template: markers not found: %s" % missing)
    return "\n".join(out) + "\n"


def tail(path):
    try:
        with open(path) as f:
            return f.read()[-2000:]
    except OSError:
        return ""


def stop_proc(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


class Nginx:
    name = "nginx"

    def __init__(self, root):
        self.dir = os.path.join(root, "nginx")
        for d in ("logs", "tmp"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.port = C.free_port()
        with open(os.path.join(C.ROOT, "deploy", "nginx.conf")) as f:
            self.template = f.read()

    def write(self, replicas):
        text = render(self.template, ["        server %s;" % r.name for r in replicas],
                      {"#@listen": "        listen 127.0.0.1:%d;" % self.port,
                       "#@daemon": "daemon off;"})
        if os.geteuid() == 0:
            text = "user root;\n" + text  # the workers read our temp dirs
        with open(self.conf, "w") as f:
            f.write(text)

    def start(self, replicas):
        self.write(replicas)
        self.log = open(os.path.join(self.dir, "stderr.log"), "ab")
        self.proc = subprocess.Popen(
            ["/usr/sbin/nginx", "-e", os.path.join(self.dir, "logs", "error.log"), "-p",
             self.dir, "-c", self.conf], stdout=self.log, stderr=self.log)
        if not C.wait_port(self.port, self.proc):
            raise RuntimeError("nginx did not start: %s" % self.errors())

    def reload(self, replicas):
        self.write(replicas)
        self.proc.send_signal(signal.SIGHUP)  # new workers with the new upstream block
        time.sleep(0.5)

    def errors(self):
        return tail(os.path.join(self.dir, "logs", "error.log"))

    def stop(self):
        stop_proc(self.proc)


class HAProxy:
    name = "haproxy"

    def __init__(self, root):
        self.dir = os.path.join(root, "haproxy")
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "haproxy.cfg")
        self.port = C.free_port()
        shipped = os.path.join(C.ROOT, "deploy", "haproxy.cfg")
        self.shipped = os.path.exists(shipped)
        if self.shipped:
            with open(shipped) as f:
                self.template = f.read()
        else:
            self.template = HAPROXY_MIN

    def write(self, replicas):
        subs = {"#@bind": "    bind 127.0.0.1:%d" % self.port}
        if "#@maxconn" in self.template:
            subs["#@maxconn"] = "    maxconn 4000"
        lines = ["    server r%d %s check inter 1s" % (r.idx, r.name) for r in replicas]
        with open(self.conf, "w") as f:
            f.write(render(self.template, lines, subs))

    def start(self, replicas):
        self.write(replicas)
        self.log = open(os.path.join(self.dir, "stderr.log"), "ab")
        # master-worker: SIGUSR2 reloads the file
        self.proc = subprocess.Popen(["/usr/sbin/haproxy", "-W", "-db", "-f", self.conf],
                                     stdout=self.log, stderr=self.log)
        if not C.wait_port(self.port, self.proc):
            raise RuntimeError("haproxy did not start: %s" % self.errors())

    def reload(self, replicas):
        self.write(replicas)
        self.proc.send_signal(signal.SIGUSR2)
        time.sleep(1.0)

    def errors(self):
        return tail(os.path.join(self.dir, "stderr.log"))

    def stop(self):
        stop_proc(self.proc)


def moved_out(replicas):
    return sum(r.metrics().get("spikeserve_sessions_moved_out_total", 0) for r in replicas
               if r.alive())


def run(lb_cls, root, model_dir, model, ref):
    tag = lb_cls.name
    base = os.path.join(root, tag)
    os.makedirs(base)
    peers = os.path.join(base, "peers")
    reps = [C.Replica(base, i, model_dir, peers) for i in range(4)]
    r0, r1, r2, r3 = reps
    C.write_peers(peers, reps[:3], "three replicas")
    for r in reps[:3]:
        r.start()
    lb = lb_cls(base)
    lb.start(reps[:3])
    if tag == "haproxy":
        C.note("haproxy config: %s" % ("deploy/haproxy.cfg" if lb.shipped else "the test's own"))
    sids = [C.open_session(lb.port, model, time.time() + 60) for _ in range(N)]
    ring = reps[:3]
    placed = sum(1 for s in sids if any(r.name == C.owner_name(ring, s) and r.holds(s)
                                        for r in ring))
    C.check(placed == N, "%s: %d/%d sessions opened through the balancer are on their owner"
            % (tag, placed, N))

    st = C.Stepper(lambda: lb.port)
    progress = [0] * THREADS
    stop = threading.Event()

    def worker(t):
        mine = [k for k in range(N) if k % THREADS == t]
        for seq in range(1, ROUNDS + 1):
            for k in mine:
                if stop.is_set():
                    return
                st.step(k, sids[k], seq, time.time() + 90)
            progress[t] = seq
            time.sleep(PACE)

    def wait_progress(seq):
        while min(progress) < seq and any(th.is_alive() for th in threads):
            time.sleep(0.05)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    t0 = time.time()
    for th in threads:
        th.start()
    fractions = {}
    try:
        # (a) a 4th replica
        wait_progress(ROUNDS // 4)
        C.write_peers(peers, reps, "four replicas")
        r3.start()
        m0 = moved_out(ring)
        for r in ring:
            r.signal(signal.SIGHUP)
        ok = all(C.wait_log(r, "ring change: moved") for r in ring)
        lb.reload(reps)
        ring = reps[:4]
        fractions["add a 4th"] = (moved_out(ring) - m0) / N
        C.check(ok, "%s (a): SIGHUP moves finished on the three" % tag)

        # (b) SIGTERM r1
        wait_progress(ROUNDS // 2)
        m0 = r1.metrics().get("spikeserve_sessions_moved_out_total", 0)
        r1.signal(signal.SIGTERM)
        rc = r1.wait(60)
        handed = re.findall(r"handoff: (\d+) sessions moved .* (\d+) left here", r1.tail(20))
        C.check(rc == 0 and handed and handed[-1][1] == "0",
                "%s (b): SIGTERM hands every session off and exits 0" % tag, r1.tail(5))
        if handed:
            fractions["SIGTERM one"] = int(handed[-1][0]) / N
        ring = [r0, r2, r3]
        C.write_peers(peers, ring, "r1 removed")
        m1 = moved_out(ring)
        for r in ring:
            r.signal(signal.SIGHUP)
        for r in ring:
            C.wait_log(r, "3 peers now")
        lb.reload(ring)
        time.sleep(0.3)
        extra = moved_out(ring) - m1
        C.check(extra == 0, "%s (b): dropping the drained peer moves nothing more" % tag, extra)

        # (c) SIGKILL r2, restart it on its state dir
        wait_progress(3 * ROUNDS // 4)
        n_before = dict(st.refusals)
        r2.signal(signal.SIGKILL)
        r2.wait(10)
        time.sleep(1.5)
        r2.start()
        fractions["SIGKILL + restart"] = 0.0
        refused = {k: v - n_before.get(k, 0) for k, v in st.refusals.items()
                   if v - n_before.get(k, 0)}
        C.note("%s (c): refusals while r2 was down: %s" % (tag, refused))
        C.check(min(progress) < ROUNDS and refused,
                "%s (c): the clients were stepping while r2 was down, and were refused "
                "(retryable) meanwhile" % tag, (progress, refused))
    finally:
        for th in threads:
            th.join(600)
        stop.set()
    C.note("%s: %d steps in %.1f s" % (tag, N * ROUNDS, time.time() - t0))

    bad = []
    for k, sid in enumerate(sids):
        info = st.get(sid, time.time() + 30)
        if not info or info.get("t") != ROUNDS * STEPS or info.get("last_seq") != ROUNDS:
            bad.append((sid, info))
    C.check(not bad, "%s: every session at t=%d, last_seq=%d (0 lost, 0 doubled steps)"
            % (tag, ROUNDS * STEPS, ROUNDS), bad[:5])
    diff = [(k, q) for (k, q), v in st.answers.items() if v != {ref[(k, q)]}]
    C.check(len(st.answers) == N * ROUNDS and not diff,
            "%s: every answer (%d, retries included) bit-identical to one server's"
            % (tag, len(st.answers)), diff[:5])
    C.check(not st.errors, "%s: no 404, no 409, no other failure" % tag, st.errors[:5])
    two, wrong = [], []
    for sid in sids:
        h = [r.name for r in ring if r.holds(sid)]
        if len(h) != 1:
            two.append((sid, h))
        elif h[0] != C.owner_name(ring, sid):
            wrong.append((sid, h))
    C.check(not two, "%s: every session on exactly one replica" % tag, two[:5])
    C.check(not wrong, "%s: ... its owner in the ring" % tag, wrong[:5])
    opened = sum(r.metrics().get("spikeserve_sessions_open", 0) for r in ring)
    C.check(opened == N, "%s: sessions_open over the replicas = %d" % (tag, N), opened)
    for what, f in fractions.items():
        C.note("%s: fraction of sessions moved by '%s': %.3f" % (tag, what, f))
    C.note("%s: refusals retried by the clients: %s" % (tag, st.refusals))
    lb.stop()
    for r in reps:
        r.stop()
    return reps


def main():
    for b in ("/usr/sbin/nginx", "/usr/sbin/haproxy"):
        if not os.path.exists(b):
            C.check(False, "%s is installed (.ci/packages: nginx-light, haproxy)" % b)
            C.finish()
    root = C.tmpdir("cluster-lb")
    model_dir = os.path.join(root, "models")
    model = C.make_model(model_dir)
    ref = C.reference(model_dir, model, N, ROUNDS, root)
    C.note("reference: %d answers from one plain server" % len(ref))
    only = os.environ.get("CLUSTER_LB")
    reps = []
    for cls in (Nginx, HAProxy):
        if only and only != cls.name:
            continue
        reps += run(cls, root, model_dir, model, ref)
    C.check_logs_and_clean(reps, root)
    C.finish()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        import traceback
        traceback.print_exc()
        C.check(False, "test ran to its end", e)
        C.finish()
