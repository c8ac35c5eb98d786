#!/usr/bin/env python3
"""bench_ring_change.py: the cost of moving sessions between replicas (issue 15), for sizing a
rolling update. Two real replicas with --peers hold SESSIONS sessions of MODEL (each stepped
once, so its snapshot carries a stored answer); a third joins and the two are sent SIGHUP;
the replicas' own log lines give the sessions moved, the snapshot bytes and the time.

    /usr/bin/python3 tests/bench/bench_ring_change.py [SESSIONS] [MODEL]   (defaults 2000, fmnist)

Runs with --wal 1 (every received session is fsync'd before the 2xx) and --wal 0.
A benchmark: it prints figures and never fails on time.
"""
import os
import re
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
import cluster as C  # noqa: E402

SESSIONS = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
MODEL = sys.argv[2] if len(sys.argv) > 2 else "fmnist"


def run(wal):
    root = C.tmpdir("bench-move")
    model_dir = os.path.join(root, "models")
    os.makedirs(model_dir)
    os.symlink(os.path.join(C.ROOT, "models", "zoo", MODEL + ".spk"),
               os.path.join(model_dir, MODEL + ".spk"))
    peers = os.path.join(root, "peers")
    reps = [C.Replica(root, i, model_dir, peers, extra=["--wal", str(wal)]) for i in range(3)]
    C.write_peers(peers, reps[:2])
    for r in reps[:2]:
        r.start()
    for k in range(SESSIONS):
        sid = C.open_session(reps[k % 2].port, MODEL, time.time() + 30)
        st, _, body = C.request(reps[k % 2].port, "POST", "/v1/sessions/%s/steps" % sid,
                                {"seq": 1, "steps": 10, "events": [[0, k % 700], [3, 5]]})
        assert st == 200, body
    C.write_peers(peers, reps)
    reps[2].start()
    t0 = time.time()
    for r in reps[:2]:
        r.signal(signal.SIGHUP)
    moved = nbytes = 0
    for r in reps[:2]:
        while "ring change: moved" not in r.tail(50):
            time.sleep(0.02)
        m = re.findall(r"moves: (\d+) sessions, (\d+) snapshot bytes", r.tail(50))
        if m:
            moved += int(m[-1][0])
            nbytes += int(m[-1][1])
    wall = time.time() - t0
    ms = [r.metrics() for r in reps[:2]]
    busy = sum(x.get("spikeserve_session_move_seconds_sum", 0) for x in ms)
    print("wal=%d model=%s sessions=%d moved=%d (%.3f) snapshot=%d bytes/session "
          "wall=%.2f s (%.2f ms/session, both replicas moving at once, 4 movers each) "
          "busy=%.2f ms/session" % (wal, MODEL, SESSIONS, moved, moved / SESSIONS,
                                    nbytes // max(moved, 1), wall, 1000 * wall / max(moved, 1),
                                    1000 * busy / max(moved, 1)), flush=True)
    for r in reps:
        r.stop()


if __name__ == "__main__":
    for wal in (0, 1):
        run(wal)
