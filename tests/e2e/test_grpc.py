#!/usr/bin/env python3
"""gRPC end to end with a real, independent client: Debian's python3-grpcio and the stubs
generated from proto/service.proto (make proto), against the real build/spikeserve.

Every RPC of spikeserve.v1.Spikeserve, grpc.health.v1, the status mapping of SPEC section 5
(with the HTTP message text), a session crossing both protocols (opened over HTTP, stepped
over gRPC, its SSE subscriber sees those batches), StreamSteps with many batches in flight
answered in order (a refused one answered in its place, the call going on), cancellation
mid-stream, deadlines, 1,000 concurrent calls, API keys, /metrics.
"""
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "proto"))
BUILD = os.path.join(ROOT, os.environ.get("SPIKESERVE_BUILD", "build"))
PY = os.environ.get("PYTHON", sys.executable)

import grpc  # noqa: E402
import api_pb2  # noqa: E402
import health_pb2  # noqa: E402
import health_pb2_grpc  # noqa: E402
import service_pb2  # noqa: E402
import service_pb2_grpc  # noqa: E402

failures = []
count = [0]


def check(cond, what):
    count[0] += 1
    print(("ok %d - " if cond else "not ok %d - ") % count[0] + what)
    if not cond:
        failures.append(what)
    return cond


class Server:
    def __init__(self, models, *extra):
        self.dir = tempfile.mkdtemp(prefix="spikeserve-grpc-")
        pf, gf = os.path.join(self.dir, "port"), os.path.join(self.dir, "grpc-port")
        self.log = open(os.path.join(self.dir, "server.log"), "w+")
        self.proc = subprocess.Popen(
            [os.path.join(BUILD, "spikeserve"), "--model-dir", models, "--bind", "127.0.0.1",
             "--port", "0", "--port-file", pf, "--grpc-port", "any", "--grpc-port-file", gf,
             "--access-log", "0", *extra], stderr=self.log)
        for _ in range(300):
            if os.path.exists(pf) and os.path.exists(gf):
                break
            time.sleep(0.05)
        self.port = int(open(pf).read())
        self.gport = int(open(gf).read())
        self.url = "http://127.0.0.1:%d" % self.port
        self.target = "127.0.0.1:%d" % self.gport

    def http(self, method, path, body=None, key=None):
        req = urllib.request.Request(self.url + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        if body is not None:
            req.add_header("Content-Type", "application/json")
        if key:
            req.add_header("Authorization", "Bearer " + key)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(60)
        self.log.seek(0)
        text = self.log.read()
        if not os.environ.get("SPIKESERVE_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        return rc, text


def code_of(fn):
    try:
        fn()
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details()


def batch(sid, seq, steps=3, events=((0, 1), (1, 2)), **kw):
    b = api_pb2.SpikeBatch(session_id=sid, steps=steps, **kw)
    if seq:
        b.seq = seq
    for st, i in events:
        b.events.add(step=st, input=i, value=1.0)
    return b


def rss_kb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def noread_bounded(srv, sid):
    """python3-h2 on a raw socket: StreamSteps batches asking for every layer's spikes and
    the readout at every step, sent as fast as flow control allows, the answers never read
    (no WINDOW_UPDATE given back). The server must stop taking batches and its memory stay
    bounded."""
    import socket
    import h2.config
    import h2.connection
    import h2.exceptions
    before = rss_kb(srv.proc.pid)
    s = socket.create_connection(("127.0.0.1", srv.gport))
    s.settimeout(2)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":authority", "x"),
                       (":path", "/spikeserve.v1.Spikeserve/StreamSteps"),
                       ("content-type", "application/grpc"), ("te", "trailers"),
                       ("spikeserve-session-id", sid)])
    s.sendall(c.data_to_send())
    sent, blocked_at = 0, None
    end = time.time() + 20
    while time.time() < end and sent < 20000:
        b = api_pb2.SpikeBatch(steps=200, outputs=["spikes", "layers", "readout_all"])
        for i in range(400):
            b.events.add(step=i % 200, input=i % 20, value=1.0)
        m = b.SerializeToString()
        msg = b"\0" + len(m).to_bytes(4, "big") + m
        try:
            if c.local_flow_control_window(1) < len(msg):
                raise h2.exceptions.FlowControlError("window")
            c.send_data(1, msg)
            s.sendall(c.data_to_send())
            sent += 1
        except (h2.exceptions.FlowControlError, socket.timeout, BlockingIOError):
            blocked_at = sent
            break
        s.setblocking(False)
        try:  # read frames (settings, window updates) but never acknowledge data
            d = s.recv(1 << 20)
            if d:
                c.receive_data(d)
                s.sendall(c.data_to_send())
        except (socket.timeout, BlockingIOError):
            pass
        s.settimeout(2)
        if c.local_flow_control_window(1) < len(msg):
            time.sleep(0.5)  # the server may still give window back: wait, then look again
            s.setblocking(False)
            try:
                d = s.recv(1 << 20)
                if d:
                    c.receive_data(d)
            except (socket.timeout, BlockingIOError):
                pass
            s.settimeout(2)
    time.sleep(1)
    grown = rss_kb(srv.proc.pid) - before
    check(blocked_at is not None and blocked_at < 20000,
          "a client that never reads is held by flow control after %s batches" % blocked_at)
    check(grown < 100 * 1024, "server memory grew %d kB (< 100 MB)" % grown)
    s.close()


def main():
    models = tempfile.mkdtemp(prefix="spikeserve-grpc-models-")
    subprocess.run([PY, os.path.join(HERE, "make_model.py"), os.path.join(models, "tiny.spk")],
                   check=True)
    subprocess.run([PY, os.path.join(HERE, "make_model.py"), os.path.join(models, "tiny2.spk"),
                    "--name", "tiny2", "--seed", "2"], check=True)
    srv = Server(models, "--max-steps", "5000")
    ch = grpc.insecure_channel(srv.target)
    stub = service_pb2_grpc.SpikeserveStub(ch)
    health = health_pb2_grpc.HealthStub(ch)

    # health
    h = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    check(h.status == health_pb2.HealthCheckResponse.SERVING, "Health/Check: SERVING")
    h = health.Check(health_pb2.HealthCheckRequest(service="spikeserve.v1.Spikeserve"), timeout=10)
    check(h.status == health_pb2.HealthCheckResponse.SERVING, "Health/Check of the service: SERVING")
    c, _ = code_of(lambda: health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=10))
    check(c == grpc.StatusCode.NOT_FOUND, "Health/Check of an unknown service: NOT_FOUND")
    w = health.Watch(health_pb2.HealthCheckRequest(), timeout=10)
    first = next(w)
    w.cancel()
    check(first.status == health_pb2.HealthCheckResponse.SERVING, "Health/Watch: SERVING first")

    # models
    ml = stub.ListModels(service_pb2.ListModelsRequest(), timeout=10)
    check([m.name for m in ml.models] == ["tiny", "tiny2"], "ListModels: the two models")
    mi = stub.GetModel(service_pb2.ModelRef(model="tiny"), timeout=10)
    check(mi.name == "tiny" and mi.n_in == 20, "GetModel: name and input size")
    c, d = code_of(lambda: stub.GetModel(service_pb2.ModelRef(model="nope"), timeout=10))
    check(c == grpc.StatusCode.NOT_FOUND and d == "model nope: not found",
          "GetModel of an unknown model: NOT_FOUND, the HTTP message (%s, %r)" % (c, d))

    # sessions, steps, seq
    si = stub.OpenSession(api_pb2.OpenSessionRequest(model="tiny", idle_timeout_s=60), timeout=10)
    sid = si.session_id
    check(len(sid) == 32 and si.model == "tiny" and si.t == 0, "OpenSession: an id, t 0")
    r1 = stub.Step(batch(sid, 1), timeout=10)
    check(r1.seq == 1 and r1.t0 == 0 and r1.steps == 3 and r1.session_id == sid,
          "Step seq 1: t0 0, 3 steps")
    r1b = stub.Step(batch(sid, 1), timeout=10)
    check(r1b.SerializeToString() == r1.SerializeToString(), "a retry of seq 1: the same answer")
    c, d = code_of(lambda: stub.Step(batch(sid, 5), timeout=10))
    check(c == grpc.StatusCode.ABORTED and "expected 2" in d, "seq 5: ABORTED, expected 2")
    c, d = code_of(lambda: stub.Step(batch(sid, 2, events=((0, 900),)), timeout=10))
    check(c == grpc.StatusCode.INVALID_ARGUMENT and "input 900 out of range" in d,
          "an input out of range: INVALID_ARGUMENT naming it (%r)" % d)
    c, d = code_of(lambda: stub.Step(batch(sid, 2, steps=6000), timeout=10))
    check(c == grpc.StatusCode.RESOURCE_EXHAUSTED and "--max-steps" in d,
          "steps over --max-steps: RESOURCE_EXHAUSTED naming the flag")
    c, d = code_of(lambda: stub.Step(batch("0" * 32, 1), timeout=10))
    check(c == grpc.StatusCode.NOT_FOUND, "an unknown session: NOT_FOUND")
    gs = stub.GetSession(service_pb2.SessionRef(session_id=sid), timeout=10)
    check(gs.t == 3 and gs.last_seq == 1, "GetSession: t 3, last_seq 1")
    snap = stub.GetState(service_pb2.SessionRef(session_id=sid), timeout=10)
    check(snap.model == "tiny" and snap.last_seq == 1, "GetState: a snapshot at last_seq 1")
    rs = stub.ResetSession(service_pb2.SessionRef(session_id=sid), timeout=10)
    check(rs.t == 0 and rs.last_seq == 0, "ResetSession: t 0")
    snap.session_id = "copy-of-" + sid[:8]
    ps = stub.PutState(snap, timeout=10)
    check(ps.session_id == snap.session_id and ps.t == 3, "PutState: a new session at t 3")
    bad = api_pb2.SessionSnapshot()
    bad.CopyFrom(snap)
    bad.session_id = sid
    bad.model = "nope"
    c, d = code_of(lambda: stub.PutState(bad, timeout=10))
    check(c == grpc.StatusCode.NOT_FOUND and "nope" in d, "PutState of an unknown model: NOT_FOUND")
    t2 = stub.OpenSession(api_pb2.OpenSessionRequest(model="tiny2"), timeout=10).session_id
    other = stub.GetState(service_pb2.SessionRef(session_id=t2), timeout=10)
    other.session_id = sid
    c, d = code_of(lambda: stub.PutState(other, timeout=10))
    check(c == grpc.StatusCode.FAILED_PRECONDITION and "runs model tiny" in d,
          "PutState of another model's snapshot over a session: FAILED_PRECONDITION (%s)" % d)
    inf = stub.Infer(batch("", 0, model="tiny"), timeout=10)
    check(inf.steps == 3 and not inf.session_id, "Infer: a stateless run")
    cl = stub.Classify(api_pb2.ClassifyRequest(model="tiny", values=[0.5] * 20, seed=3), timeout=10)
    check(cl.HasField("prediction"), "Classify: a prediction")
    c, d = code_of(lambda: stub.Classify(api_pb2.ClassifyRequest(model="tiny", values=[0.5]),
                                         timeout=10))
    check(c == grpc.StatusCode.INVALID_ARGUMENT and "values" in d, "Classify, wrong size: INVALID_ARGUMENT")
    stub.CloseSession(service_pb2.SessionRef(session_id=snap.session_id), timeout=10)
    c, _ = code_of(lambda: stub.GetSession(service_pb2.SessionRef(session_id=snap.session_id),
                                           timeout=10))
    check(c == grpc.StatusCode.NOT_FOUND, "CloseSession: then NOT_FOUND")
    c, d = code_of(lambda: grpc.insecure_channel(srv.target).unary_unary(
        "/spikeserve.v1.Spikeserve/Nope")(b"", timeout=10))
    check(c == grpc.StatusCode.UNIMPLEMENTED, "an unknown method: UNIMPLEMENTED")

    # a session crossing both protocols: opened over HTTP, stepped over gRPC, seen by SSE
    st, body = srv.http("POST", "/v1/models/tiny/sessions", {})
    hsid = json.loads(body)["session_id"]
    events = []
    seen = threading.Event()

    def sse():
        with urllib.request.urlopen(srv.url + "/v1/sessions/%s/events" % hsid, timeout=30) as r:
            for line in r:
                events.append(line.decode())
                if line.startswith(b"data:") and b'"seq":2' in line:
                    seen.set()
                    return
    t = threading.Thread(target=sse, daemon=True)
    t.start()
    time.sleep(0.5)
    stub.Step(batch(hsid, 1), timeout=10)
    stub.Step(batch(hsid, 2), timeout=10)
    check(seen.wait(10) and sum(1 for e in events if e.startswith("event: step")) == 2,
          "an HTTP session stepped over gRPC: its SSE subscriber sees both batches")
    st, body = srv.http("GET", "/v1/sessions/" + hsid)
    check(json.loads(body)["t"] == 6 and json.loads(body)["last_seq"] == 2,
          "and HTTP sees t 6, last_seq 2")

    # Events: the session's events over gRPC, step results in protobuf, then `end`
    evs = []
    ev_call = stub.Events(service_pb2.SessionRef(session_id=hsid), timeout=60)

    def read_events():
        for e in ev_call:
            evs.append(e)
    te = threading.Thread(target=read_events, daemon=True)
    te.start()
    time.sleep(0.5)
    stub.Step(batch(hsid, 3), timeout=10)
    srv.http("POST", "/v1/sessions/%s/steps" % hsid, {"seq": 4, "steps": 2})
    time.sleep(0.5)
    srv.http("DELETE", "/v1/sessions/" + hsid)
    te.join(10)
    names = [e.name for e in evs]
    check(names == ["step", "step", "end"], "Events: two steps (gRPC and HTTP), then end (%s)" % names)
    check(len(evs) == 3 and evs[0].step.seq == 3 and evs[1].step.seq == 4 and
          evs[1].step.t0 == 9 and evs[2].reason == "closed",
          "with their results (seq 3, seq 4 from t0 9) and the reason closed")
    check(ev_call.code() == grpc.StatusCode.OK, "the Events call ends OK")
    c, _ = code_of(lambda: list(stub.Events(service_pb2.SessionRef(session_id="nope"), timeout=10)))
    check(c == grpc.StatusCode.NOT_FOUND, "Events of an unknown session: NOT_FOUND")

    # StreamSteps: 300 batches in flight, answered in order; a refused one in its place
    sid2 = stub.OpenSession(api_pb2.OpenSessionRequest(model="tiny"), timeout=10).session_id
    N, BAD = 300, 150

    def gen():
        for i in range(1, N + 1):
            if i == BAD:
                yield batch(sid2, 0, events=((0, 999),))  # no seq: refused, the call goes on
            else:
                yield batch(sid2, i if i < BAD else i - 1)
    answers = list(stub.StreamSteps(gen(), timeout=60))
    ok_seqs = [a.seq for a in answers if not a.HasField("error")]
    errs = [(k, a) for k, a in enumerate(answers) if a.HasField("error")]
    check(len(answers) == N, "StreamSteps: %d answers for %d batches" % (len(answers), N))
    check(ok_seqs == list(range(1, N)), "in order: seq 1..%d" % (N - 1))
    check(len(errs) == 1 and errs[0][0] == BAD - 1 and errs[0][1].status == 400 and
          "input 999" in errs[0][1].error.message,
          "the refused batch answered in its place with status 400 and its message")
    check([a.t0 for a in answers if not a.HasField("error")] == [3 * k for k in range(N - 1)],
          "t0 advances by 3 per batch")
    md = (("spikeserve-session-id", sid2),)
    more = list(stub.StreamSteps(iter([batch("", N)]), metadata=md, timeout=30))
    check(len(more) == 1 and more[0].seq == N, "the session named by metadata instead")
    st, body = srv.http("GET", "/v1/sessions/" + sid2)
    check(json.loads(body)["last_seq"] == N, "HTTP sees last_seq %d" % N)

    # cancellation mid-stream, then the server still serves
    def slow():
        for i in range(N + 1, N + 100000):
            yield batch(sid2, i)
            time.sleep(0.001)
    call = stub.StreamSteps(slow(), timeout=60)
    got = 0
    for a in call:
        got += 1
        if got == 20:
            call.cancel()
            break
    time.sleep(0.5)
    check(got == 20, "a stream cancelled after 20 answers")
    r = stub.GetSession(service_pb2.SessionRef(session_id=sid2), timeout=10)
    check(r.last_seq >= N + 20, "the session kept what ran (last_seq %d)" % r.last_seq)

    # deadlines: a call that cannot finish in time
    c, _ = code_of(lambda: stub.Step(batch(sid2, 0, steps=5000), timeout=0.0005))
    check(c == grpc.StatusCode.DEADLINE_EXCEEDED, "a 0.5 ms deadline: DEADLINE_EXCEEDED")
    check(stub.GetSession(service_pb2.SessionRef(session_id=sid2), timeout=10).session_id == sid2,
          "the server serves after it")

    # 1,000 concurrent calls (asyncio client, two channels)
    async def many():
        chans = [grpc.aio.insecure_channel(srv.target) for _ in range(2)]
        stubs = [service_pb2_grpc.SpikeserveStub(c) for c in chans]
        sids = []
        for k in range(50):
            si = await stubs[k % 2].OpenSession(api_pb2.OpenSessionRequest(model="tiny"))
            sids.append(si.session_id)

        async def one(k):
            call = stubs[k % 2].StreamSteps()
            await call.write(batch(sids[k % 50], 0))
            r = await call.read()
            await call.done_writing()
            rest = await call.read()
            return r.steps == 3 and rest == grpc.aio.EOF
        res = await asyncio.gather(*[one(k) for k in range(1000)], return_exceptions=True)
        for c in chans:
            await c.close()
        return sum(1 for x in res if x is True)
    n_ok = asyncio.run(many())
    check(n_ok == 1000, "1,000 concurrent StreamSteps calls answered (%d)" % n_ok)

    # a second, independent implementation: @grpc/grpc-js (npm) on StreamSteps
    gdir = os.path.join(ROOT, "tests", "grpc")
    if not os.path.exists(os.path.join(gdir, "node_modules", "@grpc", "grpc-js")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=gdir,
                       check=False)
    js = subprocess.run(["node", os.path.join(gdir, "stream_steps.mjs"), srv.target],
                        capture_output=True, text=True, timeout=120)
    for line in js.stdout.splitlines():
        print("# grpc-js: " + line)
    check(js.returncode == 0 and "not ok" not in js.stdout and "ok 6 -" in js.stdout,
          "grpc-js: StreamSteps in order, a refusal in its place, cancellation (%s)"
          % js.stderr.strip()[-300:])

    # the README's gRPC example, as written (its model and port replaced by this server's)
    readme = open(os.path.join(ROOT, "README.md")).read()
    mark = readme.find("<!-- grpc-example")
    block = readme[readme.find("```python\n", mark) + 10:readme.find("```", readme.find("```python\n", mark) + 10)]
    code = block.replace("127.0.0.1:8081", srv.target).replace('"fmnist"', '"tiny"')
    ex = subprocess.run([PY, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    lines = ex.stdout.split("\n")[:-1]
    check(mark > 0 and ex.returncode == 0 and [l.split()[:2] for l in lines] ==
          [["1", "0"], ["2", "10"], ["3", "20"]],
          "the README's Python example runs: seq 1..3 from t0 0, 10, 20 (%s)" % (ex.stderr[-300:],))

    # hostile HTTP/2 against the real server (tests/h2/hostile_h2.py's raw frames): each case
    # gets a connection or stream error, and a fresh connection is served after it
    cases = ["bad_preface", "oversized", "malformed", "headers_stream0", "headers_flood",
             "continuation", "ping_flood", "empty_data", "rapid_reset", "hpack_bomb",
             "hpack_size", "short_body", "huge_prefix"]
    env = dict(os.environ, HOSTILE_PATH="/spikeserve.v1.Spikeserve/ListModels")
    ho = subprocess.run([PY, os.path.join(ROOT, "tests", "h2", "hostile_h2.py"), str(srv.gport)] +
                        cases, capture_output=True, text=True, timeout=300, env=env)
    kv = dict(l.split("=", 1) for l in ho.stdout.splitlines() if "=" in l)
    for cs in cases:
        check(kv.get(cs + ".fresh") == "served",
              "hostile %s: the server serves a fresh connection after it (%s)" % (cs, kv.get(cs + ".fresh")))
    check(stub.GetSession(service_pb2.SessionRef(session_id=sid2), timeout=10).session_id == sid2,
          "and the existing channel still works")

    # /metrics
    st, text = srv.http("GET", "/metrics")
    line = 'spikeserve_grpc_calls_total{method="spikeserve.v1.Spikeserve/Step",code="0"}'
    check(st == 200 and line in text, "/metrics counts gRPC calls by method and code")
    check('spikeserve_grpc_calls_total{method="spikeserve.v1.Spikeserve/Step",code="10"}' in text,
          "and the ABORTED one")
    opened = [l for l in text.splitlines() if l.startswith("spikeserve_grpc_streams_open ")]
    check(opened == ["spikeserve_grpc_streams_open 0"], "no stream open at the end (%s)" % opened)
    # a client that never reads: StreamSteps with big answers, no window given back
    noread_bounded(srv, sid2)

    # SIGTERM with a StreamSteps call in flight: GOAWAY, the call's batches are answered,
    # the server exits 0
    sid3 = stub.OpenSession(api_pb2.OpenSessionRequest(model="tiny"), timeout=10).session_id
    call = stub.StreamSteps(iter([batch(sid3, k) for k in range(1, 21)]), timeout=60)
    first = next(call)
    srv.proc.send_signal(signal.SIGTERM)
    rest = [a for a in call]
    seqs = [first.seq] + [a.seq for a in rest if not a.HasField("error")]
    check(seqs[:len(seqs)] == list(range(1, len(seqs) + 1)) and call.code() == grpc.StatusCode.OK,
          "SIGTERM mid-call: the call ends OK with its answers in order (%d ran)" % len(seqs))
    ch.close()
    rc = srv.proc.wait(60)
    srv.proc.send_signal(0) if srv.proc.poll() is None else None
    rc, log = srv.stop() if srv.proc.poll() is None else (srv.proc.returncode, "")
    check(rc == 0, "the server exits 0 on SIGTERM")

    # API keys
    srv = Server(models, "--api-keys", "k1,k2")
    ch = grpc.insecure_channel(srv.target)
    stub = service_pb2_grpc.SpikeserveStub(ch)
    c, d = code_of(lambda: stub.ListModels(service_pb2.ListModelsRequest(), timeout=10))
    check(c == grpc.StatusCode.UNAUTHENTICATED, "no key: UNAUTHENTICATED")
    c, d = code_of(lambda: stub.ListModels(service_pb2.ListModelsRequest(), timeout=10,
                                           metadata=(("authorization", "Bearer nope"),)))
    check(c == grpc.StatusCode.UNAUTHENTICATED and "unknown" in d, "a wrong key: UNAUTHENTICATED")
    k1, k2 = (("authorization", "Bearer k1"),), (("authorization", "Bearer k2"),)
    s1 = stub.OpenSession(api_pb2.OpenSessionRequest(model="tiny"), metadata=k1, timeout=10)
    c, _ = code_of(lambda: stub.Step(batch(s1.session_id, 1), metadata=k2, timeout=10))
    check(c == grpc.StatusCode.NOT_FOUND, "another key's session: NOT_FOUND")
    check(stub.Step(batch(s1.session_id, 1), metadata=k1, timeout=10).seq == 1, "its key steps it")
    sn = stub.GetState(service_pb2.SessionRef(session_id=s1.session_id), metadata=k1, timeout=10)
    c, d = code_of(lambda: stub.PutState(sn, metadata=k2, timeout=10))
    check(c == grpc.StatusCode.PERMISSION_DENIED, "PutState over another key's session: PERMISSION_DENIED")
    h = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
    check(h.status == health_pb2.HealthCheckResponse.SERVING, "health needs no key (probes)")
    ch.close()
    rc, log = srv.stop()
    check(rc == 0, "exit 0")

    shutil.rmtree(models, ignore_errors=True)
    print("1..%d" % count[0])
    if failures:
        print("# %d failed" % len(failures))
        sys.exit(1)


main()
