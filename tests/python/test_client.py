#!/usr/bin/env python3
"""The Python client (clients/python/spikeserve.py) against the real server: every operation,
the answers' meaning (t advances, retries do not step twice, snapshots roll back exactly,
events arrive in order), and the errors."""
import os
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
import spikefix  # noqa: E402
from spikeserve import Client, SpikeserveError  # noqa: E402

srv = None


def setUpModule():
    global srv
    srv = spikefix.Server().start()


def tearDownModule():
    rc = srv.stop()
    assert rc == 0, f"server exited with {rc} on SIGTERM:\n{srv.server_log()}"


def batch(seed, steps, n_in, density=0.05):
    import random
    rng = random.Random(seed)
    return [[t, j] for t in range(steps) for j in range(n_in) if rng.random() < density]


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Client(srv.url, timeout=30)
        cls.m = cls.c.model(srv.model)
        cls.n_in = cls.m["n_in"]

    @classmethod
    def tearDownClass(cls):
        cls.c.close()

    def test_health_and_metrics(self):
        self.assertTrue(self.c.healthz())
        self.assertTrue(self.c.readyz())
        text = self.c.metrics()
        self.assertIn("# TYPE", text)

    def test_models(self):
        names = [m["name"] for m in self.c.models()]
        self.assertIn(srv.model, names)
        self.assertEqual(self.m["name"], srv.model)
        self.assertGreater(self.n_in, 0)
        self.assertGreater(len(self.m["layers"]), 0)
        with self.assertRaises(SpikeserveError) as e:
            self.c.model("no-such-model")
        self.assertEqual(e.exception.status, 404)

    def test_session_lifecycle_and_seq(self):
        s = self.c.open_session(srv.model, idle_timeout_s=120)
        self.assertGreaterEqual(len(s.id), 22)  # >= 128 random bits in any text encoding
        self.assertEqual(s.info["model"], srv.model)
        self.assertEqual(s.get()["t"], 0)
        ev = batch(1, 20, self.n_in)
        r1 = s.step(steps=20, events=ev, seq=1)
        self.assertEqual((r1["t0"], r1["steps"], r1["seq"]), (0, 20, 1))
        for st, neuron, value in r1["spikes"]:
            self.assertTrue(0 <= st < 20 and neuron >= 0 and value > 0)
        info = s.get()
        self.assertEqual((info["t"], info["last_seq"]), (20, 1))
        # a retry of the last seq answers the same without stepping again
        again = s.step(steps=20, events=ev, seq=1)
        self.assertEqual(again["spikes"], r1["spikes"])
        self.assertEqual(s.get()["t"], 20)
        with self.assertRaises(SpikeserveError) as e:
            s.step(steps=20, events=ev, seq=5)
        self.assertEqual(e.exception.status, 409)
        r2 = s.step(steps=10, events=[], seq=2)
        self.assertEqual(r2["t0"], 20)
        s.reset()
        self.assertEqual(s.get()["t"], 0)
        s.close()
        with self.assertRaises(SpikeserveError) as e:
            s.get()
        self.assertEqual(e.exception.status, 404)

    def test_bad_input_is_400_with_place(self):
        with self.c.open_session(srv.model) as s:
            with self.assertRaises(SpikeserveError) as e:
                s.step(steps=5, events=[[0, 1], [0, self.n_in + 100]])
            self.assertEqual(e.exception.status, 400)
            self.assertEqual(e.exception.code, "invalid_argument")
            self.assertIn("events[1]", e.exception.message)
            with self.assertRaises(SpikeserveError) as e:
                s.step(steps=0)
            self.assertEqual(e.exception.status, 400)

    def test_determinism_infer_dense(self):
        ev = batch(2, 15, self.n_in)
        a = self.c.open_session(srv.model)
        b = self.c.open_session(srv.model)
        try:
            ra, rb = a.step(15, ev), b.step(15, ev)
            self.assertEqual(ra["spikes"], rb["spikes"])
            ri = self.c.infer(srv.model, 15, ev)
            self.assertEqual(ri["spikes"], ra["spikes"])
            dense = [[0.0] * self.n_in for _ in range(15)]
            for t, j in ev:
                dense[t][j] += 1.0
            rd = self.c.infer(srv.model, 15, dense=dense)
            self.assertEqual(rd["spikes"], ra["spikes"])
        finally:
            a.close()
            b.close()

    def test_snapshot_restore_rolls_back_exactly(self):
        with self.c.open_session(srv.model) as s:
            s.step(20, batch(3, 20, self.n_in), seq=1)
            snap = s.snapshot()
            self.assertGreater(len(snap), 0)
            nxt = batch(4, 20, self.n_in)
            first = s.step(20, nxt, seq=2)
            s.restore(snap)
            info = s.get()
            self.assertEqual((info["t"], info["last_seq"]), (20, 1))
            second = s.step(20, nxt, seq=2)
            self.assertEqual(second["spikes"], first["spikes"])
            self.assertEqual(second.get("readout"), first.get("readout"))

    def test_events_in_order(self):
        with self.c.open_session(srv.model) as s:
            got = []
            sub = Client(srv.url).events(s.id, timeout=30)  # live once it returns

            def watch():
                for ev in sub:
                    if ev.type == "step":
                        got.append(ev.data)
                        if len(got) == 3:
                            return

            th = threading.Thread(target=watch, daemon=True)
            th.start()
            for seq in (1, 2, 3):
                s.step(10, batch(seq, 10, self.n_in), seq=seq)
            th.join(30)
            self.assertEqual([e["seq"] for e in got], [1, 2, 3])
            self.assertEqual([e["t0"] for e in got], [0, 10, 20])

    def test_stream_upload(self):
        with self.c.open_session(srv.model) as s:
            def gen():
                for seq in range(1, 6):
                    yield {"seq": seq, "steps": 8, "events": batch(seq, 8, self.n_in)}
                    time.sleep(0.05)  # lines arrive one by one, as from a live source

            summary = s.stream(gen())
            self.assertEqual((summary["lines"], summary["ok"], summary["failed"]), (5, 5, 0))
            info = s.get()
            self.assertEqual((info["t"], info["last_seq"]), (40, 5))
            # the streamed batches computed what the same batches sent one by one compute:
            # the next step of both sessions agrees
            probe = batch(99, 8, self.n_in)
            with self.c.open_session(srv.model) as ref:
                for seq in range(1, 6):
                    ref.step(8, batch(seq, 8, self.n_in), seq=seq)
                want = ref.step(8, probe, seq=6)
            got = s.step(8, probe, seq=6)
            self.assertEqual(got["t0"], 40)
            self.assertEqual(got["spikes"], want["spikes"])
            self.assertEqual(got.get("readout"), want.get("readout"))

    def test_stream_error_line(self):
        with self.c.open_session(srv.model) as s:
            with self.assertRaises(SpikeserveError) as e:
                s.stream([{"steps": 4, "events": [[0, 1]]}, {"steps": 4, "events": [[9, 1]]}])
            self.assertIn("line 2", e.exception.message)
            self.assertIn("events[0]", e.exception.message)
            self.assertEqual(e.exception.summary["ok"], 1)
            self.assertEqual(s.get()["t"], 4)

    def test_classify(self):
        if self.m.get("encoding", {}).get("kind") in (None, 0, "none", "NONE"):
            self.skipTest("model has no input encoding")
        r = self.c.classify(srv.model, [0.5] * self.n_in, seed=3)
        p = r["prediction"]
        self.assertTrue(0 <= p["index"] < self.m["n_out"])
        if self.m.get("labels"):
            self.assertEqual(p["label"], self.m["labels"][p["index"]])
        with self.assertRaises(SpikeserveError) as e:
            self.c.classify(srv.model, [0.5] * (self.n_in - 1))
        self.assertEqual(e.exception.status, 400)

    def test_example_program(self):
        import subprocess
        ex = os.path.join(HERE, "..", "..", "clients", "python", "example.py")
        p = subprocess.run([sys.executable, ex, srv.url, srv.model], capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        self.assertIn("events seen for seqs [1, 2, 3]", p.stdout)
        self.assertIn("restored: t=60", p.stdout)


class ApiKeyTest(unittest.TestCase):
    """The client's Bearer key against a server with --api-keys."""

    def test_keys(self):
        with spikefix.Server(extra_args=["--api-keys", "key-one,key-two"]) as ks:
            with self.assertRaises(SpikeserveError) as e:
                Client(ks.url).models()
            self.assertEqual(e.exception.status, 401)
            one, two = Client(ks.url, api_key="key-one"), Client(ks.url, api_key="key-two")
            self.assertTrue(one.healthz())
            s = one.open_session(ks.model)
            self.assertEqual(s.step(4, [[0, 1]], seq=1)["t0"], 0)
            with self.assertRaises(SpikeserveError) as e:
                two.session(s.id)
            self.assertEqual(e.exception.status, 404)
            with self.assertRaises(SpikeserveError) as e:
                Client(ks.url, api_key="key-three").session(s.id)
            self.assertEqual(e.exception.status, 401)
            s.close()
            one.close()
            two.close()



class VersionsTest(unittest.TestCase):
    """Model versions (NAME/VERSION.spk): metadata of a given version, sessions pinned to one."""

    def test_versions(self):
        import subprocess
        import tempfile
        make = os.path.join(HERE, "..", "e2e", "make_model.py")
        with tempfile.TemporaryDirectory() as d:
            os.mkdir(os.path.join(d, "tiny"))
            for rel, args in (("flat.spk", ["--name", "flat"]),
                              ("tiny/1.spk", ["--name", "tiny", "--seed", "41"]),
                              ("tiny/2.spk", ["--name", "tiny", "--seed", "42"])):
                subprocess.run([sys.executable, make, os.path.join(d, rel)] + args, check=True)
            with spikefix.Server(model_dir=d) as vs:
                c = Client(vs.url)
                self.assertEqual(c.model("tiny")["version"], 2)
                self.assertEqual(c.model("tiny", version=1)["version"], 1)
                with self.assertRaises(SpikeserveError) as e:
                    c.model("tiny", version=3)
                self.assertEqual(e.exception.status, 404)
                s1, s2 = c.open_session("tiny", version=1), c.open_session("tiny")
                self.assertEqual((s1.info["model_version"], s2.info["model_version"]), (1, 2))
                ev = [[t, (3 * t + k) % 20] for t in range(20) for k in range(5)]
                a, b = s1.step(20, ev), s2.step(20, ev)
                self.assertNotEqual((a["spikes"], a.get("readout")), (b["spikes"], b.get("readout")))
                s1.close()
                s2.close()
                c.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
