#!/usr/bin/env python3
"""The Python client end to end: list the models, open a session, watch its events in a
thread while stepping it with random spikes, take a snapshot and roll back to it, and (for a
model with 784 inputs) classify a few Fashion-MNIST test images.

    python3 clients/python/example.py [URL [MODEL]]
"""
import gzip
import os
import random
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spikeserve import Client  # noqa: E402

FMNIST = "/usr/share/datasets/fashion-mnist"


def main():
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
    c = Client(url)
    models = c.models()
    for m in models:
        print(f"model {m['name']} v{m['version']}: {m['n_in']} inputs, {m['n_out']} outputs")
    name = sys.argv[2] if len(sys.argv) > 2 else models[0]["name"]
    n_in = c.model(name)["n_in"]

    rng = random.Random(42)
    with c.open_session(name, idle_timeout_s=60) as s:
        print("session", s.id)
        seen = []
        sub = s.events(timeout=30)  # a connection of its own, live once it returns

        def watch():
            for ev in sub:
                if ev.type == "step":
                    seen.append(ev.data["seq"])
                    if len(seen) == 3:
                        return

        t = threading.Thread(target=watch)
        t.start()
        for seq in (1, 2, 3):
            events = [[st, j] for st in range(20) for j in range(n_in) if rng.random() < 0.05]
            r = s.step(steps=20, events=events, seq=seq)
            print(f"seq {seq}: t0={r['t0']}, {len(events)} input events -> "
                  f"{len(r['spikes'])} output spikes", r.get("prediction", ""))
        t.join(30)
        print("events seen for seqs", seen)

        snap = s.snapshot()
        s.step(steps=20, events=[[0, 0]])
        s.restore(snap)
        print(f"snapshot of {len(snap)} bytes restored: t={s.get()['t']}")

    if n_in == 784 and os.path.exists(f"{FMNIST}/t10k-images-idx3-ubyte.gz"):
        with gzip.open(f"{FMNIST}/t10k-images-idx3-ubyte.gz") as f:
            images = f.read()[16:16 + 5 * 784]
        with gzip.open(f"{FMNIST}/t10k-labels-idx1-ubyte.gz") as f:
            labels = f.read()[8:8 + 5]
        for i in range(5):
            x = [p / 255.0 for p in images[i * 784:(i + 1) * 784]]
            r = c.classify(name, x, seed=i)
            print(f"image {i}: label {labels[i]}, predicted {r['prediction']}")


if __name__ == "__main__":
    main()
