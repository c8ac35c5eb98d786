#!/usr/bin/env python3
"""test_cluster_keys.py: replicas with --peers and --api-keys (issue 15).

Every replica has the same keys. A session belongs to the key that opened it, wherever it
lives: a forwarded request carries the client's key to the owner, and a move presents the
session's owner key to the new owner, so a moved session keeps its owner (visible to its key,
404 to another key, 401 without one). Checked through two ring changes (a third replica
added with SIGHUP, one removed with SIGTERM's handoff), with seq retries answered from the
stored answer after each move.
"""
import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
import cluster as C  # noqa: E402

KEYS = {"alpha": "alpha-key-0123456789", "beta": "beta-key-9876543210"}
N_ALPHA, N_BETA = 12, 6


def auth(who):
    return {"Authorization": "Bearer " + KEYS[who]}


def holds(rep, sid, who):
    """1 when rep holds sid itself (a previous-owner lookup: answered from its own table)."""
    st, _, _ = C.request(rep.port, "GET", "/v1/sessions/" + sid,
                         headers=dict(auth(who), **{"X-Spikeserve-Forwarded-By": "test",
                                                    "X-Spikeserve-Lookup": "previous"}))
    return st == 200


def open_as(port, model, who):
    for _ in range(200):
        st, _, body = C.request(port, "POST", "/v1/models/%s/sessions" % model, {},
                                headers=auth(who))
        if st == 201:
            return json.loads(body)["session_id"]
        time.sleep(0.02)
    raise RuntimeError("open as %s: %d %s" % (who, st, body[:200]))


def step(port, sid, k, seq, who, deadline):
    """The answer of batch seq (retrying retryable refusals), or (status, body)."""
    while True:
        st, _, body = C.request(port, "POST", "/v1/sessions/%s/steps" % sid, C.batch(k, seq),
                                headers=auth(who))
        if st not in C.RETRYABLE or time.time() > deadline:
            return st, body
        time.sleep(0.05)


def main():
    root = C.tmpdir("cluster-keys")
    model_dir = os.path.join(root, "models")
    model = C.make_model(model_dir)
    keys_file = os.path.join(root, "keys")
    with open(keys_file, "w") as f:
        f.write("# the same keys on every replica\n%s\n%s\n" % (KEYS["alpha"], KEYS["beta"]))
    peers = os.path.join(root, "peers")
    reps = [C.Replica(root, i, model_dir, peers, extra=["--api-keys", "@" + keys_file,
                                                        "--rebalance-interval", "0"])
            for i in range(3)]
    r0, r1, r2 = reps
    C.write_peers(peers, [r0, r1], "two replicas")
    r0.start()
    r1.start()
    ring = [r0, r1]
    owner = {}
    for i in range(N_ALPHA):
        owner[open_as(ring[i % 2].port, model, "alpha")] = "alpha"
    for i in range(N_BETA):
        owner[open_as(ring[i % 2].port, model, "beta")] = "beta"
    sids = list(owner)
    C.check(all([r.name for r in ring if holds(r, s, owner[s])] == [C.owner_name(ring, s)]
                for s in sids), "opens with a key land on their owner")

    # round 1 through the replica that is not the owner: forwarded with the client's key
    answers = {}
    bad = []
    for k, s in enumerate(sids):
        other = [r for r in ring if r.name != C.owner_name(ring, s)][0]
        st, body = step(other.port, s, k, 1, owner[s], time.time() + 30)
        if st != 200:
            bad.append((s, st, body[:200]))
        answers[(s, 1)] = body
    C.check(not bad, "forwarded steps carry the client's key: 200 for the session's owner", bad[:3])
    s0 = sids[0]
    other = [r for r in ring if r.name != C.owner_name(ring, s0)][0]
    st_none, _, _ = C.request(other.port, "POST", "/v1/sessions/%s/steps" % s0, C.batch(0, 2))
    st_beta, _, _ = C.request(other.port, "POST", "/v1/sessions/%s/steps" % s0, C.batch(0, 2),
                              headers=auth("beta"))
    C.check((st_none, st_beta) == (401, 404),
            "through a non-owner: no key 401, another key's session 404", (st_none, st_beta))

    def moved_ok(ring, what):
        bad = []
        for s in sids:
            want = C.owner_name(ring, s)
            held = [r.name for r in ring if r.alive() and holds(r, s, owner[s])]
            foreign = "beta" if owner[s] == "alpha" else "alpha"
            seen = [r.name for r in ring if r.alive() and holds(r, s, foreign)]
            if held != [want] or seen:
                bad.append((s, held, want, seen))
        C.check(not bad, "%s: each session on its owner, visible to its key only" % what, bad[:3])

    # (a) a third replica: SIGHUP moves what it now owns, each with its owner's key
    C.write_peers(peers, reps, "three replicas")
    r2.start()
    ring = reps
    for r in (r0, r1):
        r.signal(signal.SIGHUP)
    for r in (r0, r1):
        C.check(C.wait_log(r, "ring change: moved"), "%s: SIGHUP moves done" % r.name, r.tail(5))
    owned2 = [s for s in sids if C.owner_name(ring, s) == r2.name]
    m2 = r2.metrics()
    C.note("third replica: %d of %d sessions moved" % (m2.get("spikeserve_sessions_moved_in_total", 0),
                                                        len(sids)))
    C.check(len(owned2) > 0 and m2.get("spikeserve_sessions_moved_in_total") == len(owned2),
            "the third replica received exactly the sessions it owns (%d)" % len(owned2), m2)
    C.check(not any("API key" in r.tail(200) for r in (r0, r1)), "no move refused for its key",
            [r.tail(5) for r in (r0, r1)])
    moved_ok(ring, "after adding a third")

    # a retry of the last batch after the move: the stored answer, from the new owner
    same = [s for s in owned2 if step(r2.port, s, sids.index(s), 1, owner[s],
                                      time.time() + 30) == (200, answers[(s, 1)])]
    C.check(same == owned2, "a retried seq 1 on the new owner returns the stored answer, bit for bit",
            (len(same), len(owned2)))

    bad = []
    for k, s in enumerate(sids):
        st, body = step(ring[k % 3].port, s, k, 2, owner[s], time.time() + 30)
        t = json.loads(body).get("t0") if st == 200 else None
        if st != 200 or t != 4:
            bad.append((s, st, body[:200]))
    C.check(not bad, "round 2 on every session (any replica, its key): 200, t0 = 4", bad[:3])

    # (b) SIGTERM r1: its handoff presents each session's key
    r1.signal(signal.SIGTERM)
    rc = r1.wait(60)
    C.check(rc == 0 and "0 left here" in r1.tail(10), "SIGTERM: every session handed off, exit 0",
            r1.tail(5))
    ring = [r0, r2]
    C.write_peers(peers, ring, "r1 removed")
    for r in ring:
        r.signal(signal.SIGHUP)
    for r in ring:
        C.wait_log(r, "2 peers now")
    moved_ok(ring, "after SIGTERM of one")
    bad = []
    for k, s in enumerate(sids):
        st, _, body = C.request(ring[k % 2].port, "GET", "/v1/sessions/" + s, headers=auth(owner[s]))
        info = json.loads(body) if st == 200 else {}
        if info.get("t") != 8 or info.get("last_seq") != 2:
            bad.append((s, st, info))
    C.check(not bad, "every session at t = 8, last_seq = 2 after two ring changes", bad[:3])
    for r in reps:
        r.stop()
    C.check_logs_and_clean(reps, root)
    C.finish()


if __name__ == "__main__":
    main()
