"""cluster.py: real spikeserve replicas (and a single reference server) on loopback for the
cluster tests (issue 15), and a client that steps sessions with seq and retries.

Nothing here is a mock: every replica is build/spikeserve with --peers/--self on its own
free 127.0.0.1 port, its own --state-dir and --wal 1; the reference is the same binary
without --peers. Tests import this module (tests/e2e/test_cluster.py,
tests/cluster/test_cluster_lb.py).
"""
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("SPIKESERVE_BUILD", os.path.join(ROOT, "build"))
if not os.path.isabs(BUILD):
    BUILD = os.path.join(ROOT, BUILD)
SERVER = os.path.join(BUILD, "spikeserve")
PY = "/usr/bin/python3"
sys.path.insert(0, os.path.join(ROOT, "tests", "unit"))
import ring_ref  # noqa: E402  nginx's consistent hash, the ring test's Python reference

failures = []
checks = 0


def check(cond, what, detail=""):
    global checks
    checks += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (checks, what), flush=True)
    if not cond:
        failures.append(what)
        if detail:
            print("#   " + str(detail)[:3000].replace("\n", "\n#   "), flush=True)
    return cond


def note(msg):
    print("# " + msg, flush=True)


def finish():
    print("1..%d" % checks)
    if failures:
        print("# FAILED: %d of %d: %s" % (len(failures), checks, "; ".join(failures[:10])))
        sys.exit(1)
    sys.exit(0)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def make_model(dirpath, name="tiny"):
    os.makedirs(dirpath, exist_ok=True)
    subprocess.run([PY, os.path.join(ROOT, "tests", "e2e", "make_model.py"),
                    os.path.join(dirpath, name + ".spk"), "--name", name, "--n-in", "20",
                    "--hidden", "24,16", "--classes", "4", "--seed", "7"],
                   check=True, stdout=subprocess.DEVNULL)
    return name


def wait_port(port, proc=None, timeout=15.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Replica:
    """One spikeserve process; the peers name is 127.0.0.1:PORT."""

    def __init__(self, root, idx, model_dir, peers_file=None, port=None, extra=(), grpc=False):
        self.idx = idx
        self.port = port or free_port()
        self.name = "127.0.0.1:%d" % self.port
        self.dir = os.path.join(root, "r%d" % idx)
        os.makedirs(self.dir, exist_ok=True)
        self.state = os.path.join(self.dir, "state")
        self.log = os.path.join(self.dir, "stderr.log")
        self.model_dir = model_dir
        self.peers_file = peers_file
        self.extra = list(extra)
        self.grpc_file = os.path.join(self.dir, "grpc.port") if grpc else None
        self.proc = None

    def start(self):
        args = [SERVER, "--model-dir", self.model_dir, "--bind", "127.0.0.1",
                "--port", str(self.port), "--grpc-port", "0", "--workers", "1",
                "--http-threads", "2", "--state-dir", self.state, "--wal", "1",
                "--access-log", "0", "--checkpoint-interval", "0"] + self.extra
        if self.peers_file:
            args += ["--peers", self.peers_file, "--self", self.name]
        if self.grpc_file:
            args += ["--grpc-port", "any", "--grpc-port-file", self.grpc_file]
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=self.logf)
        if not wait_port(self.port, self.proc):
            raise RuntimeError("replica %s did not start:\n%s" % (self.name, self.tail()))
        return self

    def grpc_target(self):
        with open(self.grpc_file) as f:
            return "127.0.0.1:%d" % int(f.read())

    def tail(self, n=30):
        try:
            with open(self.log, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
        except OSError:
            return ""

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=60):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            self.wait(60)

    def metrics(self):
        st, _, body = request(self.port, "GET", "/metrics")
        out = {}
        if st != 200:
            return out
        for line in body.decode().splitlines():
            m = re.match(r"^(spikeserve_[a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$", line)
            if m and not m.group(2):
                out[m.group(1)] = float(m.group(3))
        return out

    def holds(self, sid):
        """1 when this replica holds sid itself: asked as a previous-owner lookup, which a
        replica answers from its own table, never passing it on."""
        st, _, _ = request(self.port, "GET", "/v1/sessions/" + sid,
                           headers={"X-Spikeserve-Forwarded-By": "test",
                                    "X-Spikeserve-Lookup": "previous"})
        return st == 200


def owner_name(replicas, sid):
    """The owner of sid among replicas by nginx's rule (tests/unit/ring_ref.py)."""
    names = [r.name for r in replicas]
    return names[ring_ref.owner(ring_ref.ring(names), sid.encode())]


def holders(replicas, sid):
    """Names of the live replicas that hold sid themselves."""
    return [r.name for r in replicas if r.alive() and r.holds(sid)]


def wait_log(rep, text, timeout=60):
    """1 when text appears in the last 400 lines of rep's log within timeout seconds."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if text in rep.tail(400):
            return True
        time.sleep(0.1)
    return False


def write_peers(path, replicas, comment="peers"):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("# %s\n" % comment)
        for r in replicas:
            f.write(r.name + "\n")
        f.write("\n")
    os.replace(tmp, path)


_local = threading.local()


def request(port, method, path, body=None, headers=None, timeout=30):
    """(status, headers dict (lower-case), body bytes); status 0 on a connection error.
    One kept-alive connection per thread and port."""
    conns = getattr(_local, "conns", None)
    if conns is None:
        conns = _local.conns = {}
    h = {"Content-Type": "application/json"} if body is not None else {}
    h.update(headers or {})
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    for attempt in range(2):
        c = conns.get(port)
        if c is None:
            c = conns[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            b = r.read()
            hd = {k.lower(): v for k, v in r.getheaders()}
            if hd.get("connection", "").lower() == "close":
                c.close()
                conns.pop(port, None)
            return r.status, hd, b
        except (OSError, http.client.HTTPException):
            c.close()
            conns.pop(port, None)
            if attempt == 1:
                return 0, {}, b""
    return 0, {}, b""


RETRYABLE = (0, 429, 502, 503, 504)


def batch(sid_index, seq, n_in=20, steps=4):
    """The seq-th batch of session number sid_index: deterministic."""
    rng = random.Random(sid_index * 100003 + seq)
    ev = sorted({(rng.randrange(steps), rng.randrange(n_in)) for _ in range(rng.randint(1, 8))})
    return {"seq": seq, "steps": steps, "events": [list(e) for e in ev],
            "outputs": ["spikes", "readout"]}


def canon(body, sid):
    """An answer's bytes with its session id blanked (ids differ from the reference's)."""
    return body.replace(sid.encode(), b"SID")


class Stepper:
    """Steps sessions with seq through one port, retrying what is retryable with the same seq.
    Counts refusals by (status, code) and keeps every 2xx answer per (session, seq)."""

    def __init__(self, port_fn):
        self.port_fn = port_fn  # () -> the port to send to now
        self.lock = threading.Lock()
        self.refusals = {}
        self.answers = {}  # (k, seq) -> set of canonical bodies
        self.errors = []   # unexpected answers
        self.retry_sleep = 0.02

    def count(self, st, body):
        code = ""
        try:
            code = json.loads(body)["error"]["code"]
        except Exception:
            pass
        with self.lock:
            self.refusals[(st, code)] = self.refusals.get((st, code), 0) + 1

    def step(self, k, sid, seq, deadline):
        b = batch(k, seq)
        while time.time() < deadline:
            st, hd, body = request(self.port_fn(), "POST", "/v1/sessions/%s/steps" % sid, b)
            if st == 200:
                with self.lock:
                    self.answers.setdefault((k, seq), set()).add(canon(body, sid))
                return True
            self.count(st, body)
            if st in RETRYABLE:
                time.sleep(self.retry_sleep)
                continue
            with self.lock:
                self.errors.append((k, sid, seq, st, body[:300]))
            return False
        with self.lock:
            self.errors.append((k, sid, seq, "timeout", b""))
        return False

    def get(self, sid, deadline):
        while time.time() < deadline:
            st, _, body = request(self.port_fn(), "GET", "/v1/sessions/" + sid)
            if st == 200:
                return json.loads(body)
            self.count(st, body)
            if st not in RETRYABLE:
                return {"status": st, "body": body[:300]}
            time.sleep(self.retry_sleep)
        return None


def open_session(port, model, deadline):
    while time.time() < deadline:
        st, _, body = request(port, "POST", "/v1/models/%s/sessions" % model, {})
        if st == 201:
            return json.loads(body)["session_id"]
        if st not in RETRYABLE:
            raise RuntimeError("open: %d %s" % (st, body[:200]))
        time.sleep(0.02)
    raise RuntimeError("open: timed out")


def reference(model_dir, model, n_sessions, rounds, root):
    """Every (k, seq) answer of a single plain server (no --peers), canonical."""
    r = Replica(root, 99, model_dir).start()
    ref = {}
    try:
        for k in range(n_sessions):
            sid = open_session(r.port, model, time.time() + 30)
            for seq in range(1, rounds + 1):
                st, _, body = request(r.port, "POST", "/v1/sessions/%s/steps" % sid,
                                      batch(k, seq))
                if st != 200:
                    raise RuntimeError("reference step: %d %s" % (st, body[:200]))
                ref[(k, seq)] = canon(body, sid)
    finally:
        r.stop()
    return ref


SANITIZER_PAT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|"
                           r"WARNING: ThreadSanitizer")


def check_logs_and_clean(replicas, root):
    """After the replicas stopped: a check that no sanitizer report is in their logs (for the
    sanitized builds, test_asan.sh / test_tsan.sh), then the temporary directory goes unless
    something failed or SPIKESERVE_KEEP_TMP is set."""
    found = []
    for r in replicas:
        try:
            with open(r.log, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        m = SANITIZER_PAT.search(text)
        if m:
            found.append((r.name, text[m.start():m.start() + 1500]))
    check(not found, "no sanitizer report in the replicas' logs", found[:2])
    if not failures and not os.environ.get("SPIKESERVE_KEEP_TMP"):
        shutil.rmtree(root, ignore_errors=True)


def tmpdir(tag):
    return tempfile.mkdtemp(prefix="spikeserve-%s-" % tag)
