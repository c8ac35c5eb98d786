#!/usr/bin/env python3
"""Write a small random SRC model (spikeserve.Model protobuf) for the end-to-end tests.

    make_model.py OUT.spk [--name NAME] [--seed N] [--n-in N] [--hidden N,N] [--classes N]
                          [--encoding rate|latency|none]

Weights are large enough that random inputs make the hidden layers spike. The model is
deterministic for a given seed.
"""
import argparse
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto"))
import model_pb2  # noqa: E402


def layer(rng, n_in, n, gain):
    L = model_pb2.SrcLayer()
    L.n_in, L.n = n_in, n
    L.weights.extend(rng.gauss(0.0, gain) + 0.5 * gain for _ in range(n * n_in))
    L.b_h.extend(-6.0 + rng.uniform(-0.5, 0.5) for _ in range(n))
    L.alpha, L.rho, L.r, L.r_s = 0.9, 3.0, 2.0, -7.0
    L.z_hyp, L.z_dep, L.theta = 0.9, 0.0, 0.5
    return L


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--name", default="tiny")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--n-in", type=int, default=20)
    ap.add_argument("--hidden", default="32,16")
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--encoding", default="rate", choices=["rate", "latency", "none"])
    a = ap.parse_args()
    rng = random.Random(a.seed)
    m = model_pb2.Model()
    m.name, m.version, m.n_in = a.name, 1, a.n_in
    m.description = "random test model (tests/e2e/make_model.py, seed %d)" % a.seed
    n_prev = a.n_in
    for n in [int(x) for x in a.hidden.split(",") if x]:
        m.layers.append(layer(rng, n_prev, n, 3.0 / max(1, n_prev) ** 0.5 * 2))
        n_prev = n
    if a.classes:
        m.readout.n_in, m.readout.n = n_prev, a.classes
        m.readout.weights.extend(rng.gauss(0, 1) for _ in range(a.classes * n_prev))
        m.readout.bias.extend(rng.uniform(-0.1, 0.1) for _ in range(a.classes))
        m.readout.alpha = 0.8
        m.labels.extend("class%d" % i for i in range(a.classes))
    kinds = {"rate": model_pb2.Encoding.RATE, "latency": model_pb2.Encoding.LATENCY,
             "none": model_pb2.Encoding.NONE}
    m.encoding.kind = kinds[a.encoding]
    if a.encoding != "none":
        m.encoding.steps, m.encoding.warmup_steps = 20, 2
        m.encoding.gain, m.encoding.threshold = 0.5, 0.1
    with open(a.out, "wb") as f:
        f.write(m.SerializeToString())


if __name__ == "__main__":
    main()
