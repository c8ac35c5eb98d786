#!/usr/bin/env python3
"""test_cluster.py: three real replicas with a --peers file, no balancer (issue 15).

 - opens land on their owner (the ring of tests/unit/ring_ref.py, nginx's rule), whichever
   replica they are sent to; every session is held by exactly one replica;
 - a request sent to a non-owner is forwarded and answered exactly as the owner answers
   (bit for bit the answer of a single plain server running the same batches);
 - a forwarded request reaching a non-owner is refused: 503 not_owner, Retry-After,
   X-Spikeserve-Owner; event streams and uploads are not proxied (503 not_owner + owner);
 - a bad peers file on SIGHUP is refused (the log names the line), the ring stays;
 - SIGHUP with a 4th peer moves the sessions it now owns (about 1/4), state intact;
 - SIGTERM of a replica hands all its sessions to the others and it exits 0;
 - SIGKILL of a replica: its sessions are refused with a retryable 503 (never 404, never
   recreated), and after a restart on its state dir + WAL they continue;
 - forwards are bounded (--forward-max-bytes, --forward-timeout against a SIGSTOPped owner);
 - a rolling restart (SIGTERM, start again under the same name): its sessions are served
   meanwhile and come back to it (--rebalance-interval);
 - at the end every session is at the right t and last_seq, every answer equals the
   reference, no session is on two replicas.
"""
import http.client
import json
import os
import random
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
import cluster as C  # noqa: E402

N = 48
ROUNDS = 12
STEPS = 4


def placement_ok(replicas, sids, what):
    bad = []
    for sid in sids:
        h = C.holders(replicas, sid)
        want = C.owner_name(replicas, sid)
        if h != [want]:
            bad.append((sid, h, want))
    C.check(not bad, "%s: every session held by exactly one replica, its owner" % what, bad[:5])


def grpc_checks(ring, model):
    sys.path.insert(0, os.path.join(C.ROOT, "proto"))
    import grpc
    import api_pb2
    import service_pb2_grpc
    ch = grpc.insecure_channel(ring[0].grpc_target())
    stub = service_pb2_grpc.SpikeserveStub(ch)
    opened = [stub.OpenSession(api_pb2.OpenSessionRequest(model=model), timeout=10).session_id
              for _ in range(6)]
    C.check(all(C.holders(ring, s_) == [ring[0].name] for s_ in opened),
            "gRPC OpenSession: the ids are the called replica's own")
    other = C.open_session(ring[1].port, model, time.time() + 10)
    b = api_pb2.SpikeBatch(session_id=other, steps=2, seq=1)
    try:
        stub.Step(b, timeout=10)
        code, det = grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        code, det = e.code(), e.details()
    C.check(code == grpc.StatusCode.UNAVAILABLE and ring[1].name in det,
            "gRPC Step on a session of another replica: UNAVAILABLE naming the owner",
            (code, det))
    ch.close()
    return opened + [other]


def sse_open(port, sid):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/v1/sessions/%s/events" % sid)
    return c, c.getresponse()


def sse_next(resp, kind):
    """The data line of the next `event: kind`, or None."""
    want = False
    while True:
        line = resp.readline()
        if not line:
            return None
        line = line.decode().rstrip("\n")
        if line == "event: " + kind:
            want = True
        elif want and line.startswith("data: "):
            return line[6:]


def events_checks(ring, model):
    """/events on a non-owner is the owner's stream, relayed byte for byte as it comes."""
    owner = ring[1]
    sid = C.open_session(owner.port, model, time.time() + 10)
    other = ring[2]
    rc, rr = sse_open(other.port, sid)
    dc, dr = sse_open(owner.port, sid)
    first = rr.readline()
    C.check(rr.status == 200 and rr.getheader("Content-Type") == "text/event-stream" and
            first.startswith(b": spikeserve events"),
            "/events at a non-owner: 200 text/event-stream, the owner's greeting once",
            (rr.status, first))
    b = {"seq": 1, "steps": 3, "events": [[0, 1], [1, 2]]}
    st, _, _ = C.request(owner.port, "POST", "/v1/sessions/%s/steps" % sid, b)
    relayed, direct = sse_next(rr, "step"), sse_next(dr, "step")
    C.check(st == 200 and relayed and relayed == direct,
            "a step shows on the relayed stream exactly as on the owner's", (relayed, direct))
    st, _, _ = C.request(owner.port, "DELETE", "/v1/sessions/" + sid)
    end = sse_next(rr, "end")
    C.check(end == '{"reason":"closed"}', "the owner's end event is relayed, then the stream ends",
            end)
    C.check(rr.readline() in (b"", b"\n"), "the relayed stream closes after it")
    rc.close()
    dc.close()
    # a client that leaves a relayed stream: the replica goes on
    sid2 = C.open_session(owner.port, model, time.time() + 10)
    c2, r2 = sse_open(other.port, sid2)
    r2.readline()
    c2.close()
    st, _, _ = C.request(other.port, "GET", "/v1/sessions/" + sid2)
    C.check(st == 200, "a client leaving a relayed stream: the replica goes on", st)
    return [sid2]


def bounds_checks(root, model_dir, model):
    """A forward is bounded: an answer over --forward-max-bytes, an owner that does not answer
    within --forward-timeout (stopped with SIGSTOP): 503 not_owner, retryable."""
    peers = os.path.join(root, "peers-bounds")
    a = C.Replica(root, 10, model_dir, peers, extra=["--forward-max-bytes", "64",
                                                     "--forward-timeout", "1"])
    b = C.Replica(root, 11, model_dir, peers)
    C.write_peers(peers, [a, b], "bounds")
    a.start()
    b.start()
    sid = C.open_session(b.port, model, time.time() + 10)
    st, hd, body = C.request(a.port, "GET", "/v1/sessions/" + sid)
    C.check(st == 503 and b"not_owner" in body and b"64 bytes" in body and hd.get("retry-after"),
            "an owner's answer over --forward-max-bytes: 503 not_owner", (st, body[:300]))
    b.signal(signal.SIGSTOP)
    t0 = time.time()
    st, hd, body = C.request(a.port, "POST", "/v1/sessions/%s/steps" % sid, C.batch(0, 1))
    dt = time.time() - t0
    b.signal(signal.SIGCONT)
    C.check(st == 503 and b"not_owner" in body and hd.get("x-spikeserve-owner") == b.name,
            "an owner that does not answer within --forward-timeout: 503 not_owner + owner",
            (st, body[:300]))
    C.note("the stopped owner's forward gave up after %.2f s (--forward-timeout 1)" % dt)
    st, _, body = C.request(b.port, "GET", "/v1/sessions/" + sid)
    C.check(st == 200 and json.loads(body)["last_seq"] in (0, 1),
            "the owner goes on after SIGCONT", (st, body[:200]))
    for r in (a, b):
        r.stop()
    return [a, b]


def main():
    root = C.tmpdir("cluster")
    model_dir = os.path.join(root, "models")
    model = C.make_model(model_dir)
    ref = C.reference(model_dir, model, N, ROUNDS, root)
    C.note("reference: %d answers from one plain server" % len(ref))

    peers = os.path.join(root, "peers")
    reps = [C.Replica(root, i, model_dir, peers, grpc=True, extra=["--rebalance-interval", "1"])
            for i in range(4)]
    r0, r1, r2, r3 = reps
    C.write_peers(peers, reps[:3], "three replicas")
    for r in reps[:3]:
        r.start()
    ring = reps[:3]

    # ---- opens land on owners ----
    sids = [C.open_session(ring[k % 3].port, model, time.time() + 30) for k in range(N)]
    placement_ok(ring, sids, "opens")
    m = [r.metrics() for r in ring]
    C.check(all(x.get("spikeserve_ring_peers") == 3 for x in m), "spikeserve_ring_peers is 3")

    # ---- forwarding: round 1 through a non-owner, identical to the reference ----
    stepper_port = {"p": None}
    st = C.Stepper(lambda: stepper_port["p"])
    deadline = time.time() + 120
    for k, sid in enumerate(sids):
        own = C.owner_name(ring, sid)
        other = [r for r in ring if r.name != own][k % 2]
        stepper_port["p"] = other.port
        st.step(k, sid, 1, deadline)
    fwd = sum(r.metrics().get("spikeserve_forwarded_requests_total", 0) for r in ring)
    C.check(fwd >= N, "forwarded requests counted (%d >= %d)" % (fwd, N))
    same = [k for k in range(N) if st.answers.get((k, 1)) == {ref[(k, 1)]}]
    C.check(len(same) == N, "forwarded answers identical to a single server's (%d/%d)" % (len(same), N))
    sid = sids[0]
    own = C.owner_name(ring, sid)
    other = [r for r in ring if r.name != own][0]
    a = C.request(other.port, "GET", "/v1/sessions/" + sid)
    b = C.request([r for r in ring if r.name == own][0].port, "GET", "/v1/sessions/" + sid)
    # the same session as the owner says (last_active_at moves with every GET)
    ja = json.loads(a[2]) if a[0] == 200 else {}
    jb = json.loads(b[2]) if b[0] == 200 else {}
    ja.pop("last_active_at", None)
    jb.pop("last_active_at", None)
    C.check(a[0] == 200 and ja == jb, "GET through a non-owner = GET on the owner",
            (a[0], a[2][:200], b[2][:200]))

    # ---- refusals ----
    s, hd, body = C.request(other.port, "POST", "/v1/sessions/%s/steps" % sid, C.batch(0, 2),
                            headers={"X-Spikeserve-Forwarded-By": "elsewhere"})
    C.check(s == 503 and b"not_owner" in body and hd.get("x-spikeserve-owner") == own and
            hd.get("retry-after"), "a forwarded request at a non-owner: 503 not_owner, owner, "
            "Retry-After", (s, hd, body[:200]))
    s, hd, body = C.request(other.port, "POST", "/v1/sessions/%s/stream" % sid, b"",
                            headers={"Content-Type": "application/x-ndjson"})
    C.check(s == 503 and b"not_owner" in body and hd.get("x-spikeserve-owner") == own,
            "/stream at a non-owner: 503 not_owner with the owner (uploads are not proxied)",
            (s, hd, body[:200]))
    extra = events_checks(ring, model)
    s, hd, body = C.request(other.port, "GET", "/v1/sessions/%s" % ("z" * 40))
    C.check(s == 404 or (s == 503 and b"not_owner" in body),
            "an unknown session through a non-owner: 404 (or not_owner while the ring is new)",
            (s, body[:200]))

    # ---- OIP sequences (with and without X-Sequence-Id): any replica sends them to the owner ----
    right, answers, oip_names = 0, set(), []
    for q in range(12):
        seq_id = str(500 + q) if q % 2 else "seq_%d" % q
        name = ("oip-%s-%s" if q % 2 else "oip-%s-s-%s") % (model, seq_id)
        body = {"parameters": {"sequence_id": int(seq_id) if q % 2 else seq_id,
                               "sequence_start": True, "steps": 3},
                "inputs": [{"name": "events", "datatype": "FP32", "shape": [1, 3],
                            "data": [0, 1, 1]}]}
        # the header is for the balancer; a replica routes on the body's sequence_id
        hdr = {"X-Sequence-Id": seq_id} if q % 4 < 2 else {}
        s, _, out = C.request(ring[q % 3].port, "POST", "/v2/models/%s/infer" % model, body,
                              headers=hdr)
        answers.add((s, out.replace(name.encode(), b"").replace(seq_id.encode(), b"")))
        if s == 200:
            oip_names.append(name)
        if s == 200 and C.holders(ring, name) == [C.owner_name(ring, name)]:
            right += 1
    C.check(right == 12, "OIP: 12/12 sequences (sent to any replica) on their owner (%d)" % right)
    C.check(len(answers) == 1, "OIP: the same first answer wherever it was sent",
            list(answers)[:3])

    # ---- gRPC: opens land on the replica called, a session elsewhere is UNAVAILABLE + owner ----
    grpc_sids = grpc_checks(ring, model)

    # ---- a bad peers file is refused, the ring stays ----
    with open(peers, "w") as f:
        f.write("# broken\n%s\n%s\nnot a peer\n" % (r0.name, r1.name))
    r0.signal(signal.SIGHUP)
    C.check(C.wait_log(r0, "line 4"), "SIGHUP with a bad file: the log names line 4", r0.tail(5))
    C.check(r0.metrics().get("spikeserve_ring_peers") == 3, "the ring stays at 3 peers")

    # ---- (a) a 4th replica: SIGHUP moves about 1/4 ----
    C.write_peers(peers, reps, "four replicas")
    r3.start()
    before = {r.name: r.metrics().get("spikeserve_sessions_moved_out_total", 0) for r in ring}
    for r in ring:
        r.signal(signal.SIGHUP)
    for r in ring:
        C.check(C.wait_log(r, "ring change: moved"), "%s: SIGHUP moves done" % r.name, r.tail(5))
    ring = reps[:4]
    moved = sum(r.metrics().get("spikeserve_sessions_moved_out_total", 0) - before.get(r.name, 0)
                for r in ring[:3])
    owned4 = sum(1 for s_ in sids + oip_names + grpc_sids + extra if C.owner_name(ring, s_) == r3.name)
    total = len(sids) + len(oip_names) + len(grpc_sids) + len(extra)
    C.note("4th replica: %d of %d sessions moved (%.2f; ring says %d)" % (moved, total, moved / total, owned4))
    C.check(moved == owned4 and 0 < moved < total, "only the sessions the 4th now owns moved",
            (moved, owned4))
    m3 = r3.metrics()
    C.check(m3.get("spikeserve_sessions_moved_in_total") == owned4 and
            m3.get("spikeserve_sessions_open") == owned4 and
            m3.get("spikeserve_sessions_created_total") == 0,
            "the 4th counted them in: moved in and open, not created", m3)
    placement_ok(ring, sids + oip_names + grpc_sids + extra, "after adding a 4th")
    ms = [r.metrics() for r in ring[:3]]
    cnt = sum(x.get("spikeserve_session_move_seconds_count", 0) for x in ms)
    sm = sum(x.get("spikeserve_session_move_seconds_sum", 0) for x in ms)
    if cnt:
        C.note("move cost: %.3f ms per session (snapshot, PUT, close)" % (1000 * sm / cnt))

    rnd = random.Random(1)

    def rounds(lo, hi, live):
        for seq in range(lo, hi + 1):
            for k, sid_ in enumerate(sids):
                stepper_port["p"] = rnd.choice(live).port
                st.step(k, sid_, seq, time.time() + 60)

    rounds(2, 4, ring)

    # ---- (b) SIGTERM r1: hands everything to the others ----
    n1 = r1.metrics().get("spikeserve_sessions_open", 0)
    r1.signal(signal.SIGTERM)
    rc = r1.wait(60)
    C.check(rc == 0, "SIGTERM: exit 0 after the handoff", r1.tail(5))
    C.check("0 left here" in r1.tail(10), "handoff: every session handed off (%d)" % n1, r1.tail(5))
    ring = [r0, r2, r3]
    C.write_peers(peers, ring, "r1 removed")
    for r in ring:
        r.signal(signal.SIGHUP)
    for r in ring:
        C.wait_log(r, "3 peers now")
    time.sleep(0.5)
    placement_ok(ring, sids, "after SIGTERM of one")
    rounds(5, 7, ring)

    # ---- (c) SIGKILL the replica holding the most sessions, then restart it ----
    victim = max(ring, key=lambda r: r.metrics().get("spikeserve_sessions_open", 0))
    victim_sids = [s_ for s_ in sids if C.owner_name(ring, s_) == victim.name]
    victim.signal(signal.SIGKILL)
    victim.wait(10)
    live = [r for r in ring if r is not victim]
    codes = {}
    for s_ in victim_sids[:10]:
        for r in live:
            s, hd, body = C.request(r.port, "POST", "/v1/sessions/%s/steps" % s_,
                                    C.batch(sids.index(s_), 8))
            codes[(s, hd.get("retry-after") is not None, b"not_owner" in body)] = \
                codes.get((s, hd.get("retry-after") is not None, b"not_owner" in body), 0) + 1
    C.check(list(codes) == [(503, True, True)],
            "while its owner is down a session is refused: 503 not_owner with Retry-After", codes)
    victim.start()
    rounds(8, 10, ring)

    # ---- (d) a rolling restart: SIGTERM r0 (it stays in the peers file), start it again ----
    n0 = sum(1 for s_ in sids if C.owner_name(ring, s_) == r0.name)
    r0.signal(signal.SIGTERM)
    C.check(r0.wait(60) == 0 and "0 left here" in r0.tail(10),
            "rolling restart: SIGTERM hands r0's %d sessions to the others" % n0, r0.tail(5))
    r0.start()
    rounds(11, ROUNDS, ring)  # at once: r0 finds them on their holders meanwhile
    t0 = time.time()
    while time.time() - t0 < 20 and any(not r0.holds(s_) for s_ in sids
                                        if C.owner_name(ring, s_) == r0.name):
        time.sleep(0.2)
    back = sum(1 for s_ in sids if C.owner_name(ring, s_) == r0.name and r0.holds(s_))
    C.note("rolling restart: %d/%d sessions back on r0 after %.1f s" % (back, n0, time.time() - t0))
    C.check(back == n0, "rolling restart: the rebalancer brings r0's sessions back (%d/%d)"
            % (back, n0))

    # ---- the end state ----
    bad = []
    for k, sid_ in enumerate(sids):
        stepper_port["p"] = ring[k % 3].port
        info = st.get(sid_, time.time() + 30)
        if not info or info.get("t") != ROUNDS * STEPS or info.get("last_seq") != ROUNDS:
            bad.append((sid_, info))
    C.check(not bad, "every session at t=%d, last_seq=%d" % (ROUNDS * STEPS, ROUNDS), bad[:5])
    diff = [(k, q) for (k, q), v in st.answers.items() if v != {ref[(k, q)]}]
    C.check(len(st.answers) == N * ROUNDS and not diff,
            "every answer (%d) bit-identical to the single server's" % len(st.answers), diff[:5])
    C.check(not st.errors, "no unexpected answer (no 404, no 409)", st.errors[:5])
    placement_ok(ring, sids, "at the end")
    C.note("refusals seen while stepping (retried): %s" % st.refusals)
    C.check(set(st.refusals) <= {(503, "not_owner"), (503, "unavailable"), (0, "")},
            "the only refusals were retryable (not_owner, unavailable)", st.refusals)
    for r in reps:
        r.stop()
    reps += bounds_checks(root, model_dir, model)
    C.check_logs_and_clean(reps, root)
    C.finish()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a crash is a failure with its story
        import traceback
        traceback.print_exc()
        C.check(False, "test ran to its end", e)
        C.finish()
