"""make_golden.py: writes the golden test data of a small fixed model (tests/data/golden/)
from the numpy reference (ref_src.py). tests/unit/test_step.c checks the C engine against
the stored files; run this only when the reference itself changes, and say why.

  model.pb      the model (8 inputs, SRC layers of 12 and 6, readout of 3, default constants)
  inputs.txt    "steps N", then "e step input value" events and "d step v0 .. v7" dense rows
  expected.txt  "s step layer neuron value" outputs of every layer, "o step o0 o1 o2"
                readout at every step, and the final state: "i|h|hs layer v..", "of o0 o1 o2"
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_src import ROOT, RefNet, events_to_dense, random_model  # noqa: E402

OUT = os.path.join(ROOT, "tests", "data", "golden")
STEPS = 60


def g(v):
    return "%.9g" % float(v)


def main():
    rng = np.random.default_rng(20261128)
    pm = random_model(rng, 8, [12, 6], readout_n=3, name="golden", vary=False, drive=3.0)
    pm.labels.extend(["zero", "one", "two"])
    pm.description = "golden test model of the engine tests (tests/engine/make_golden.py)"
    events, dense_rows = [], {}
    for t in range(40):
        for j in range(8):
            if rng.random() < 0.35:
                v = 1.0 if t < 20 else float(np.float32(rng.uniform(-0.5, 2.0)))
                events.append((t, j, v))
                if t % 7 == 3 and j % 3 == 0:
                    events.append((t, j, 0.25))  # same (step, input): values add up
    for t in range(40, 50):
        dense_rows[t] = np.where(rng.random(8) < 0.6, rng.uniform(0, 1.5, 8), 0).astype(np.float32)
    events.append((45, 2, 0.5))  # an event on top of a dense row
    d = events_to_dense(STEPS, 8, events)
    for t, row in dense_rows.items():
        d[t] = row + d[t]  # the engine adds a step's events into its dense row, in order
    ref = RefNet(pm)
    lines, nz = [], [0, 0]
    for t in range(STEPS):
        outs = ref.step(d[t])
        for l, s in enumerate(outs):
            for k in np.flatnonzero(s):
                lines.append("s %d %d %d %s" % (t, l, k, g(s[k])))
                nz[l] += 1
        lines.append("o %d %s" % (t, " ".join(g(v) for v in ref.o)))
    for l in range(2):
        for name, arr in (("i", ref.i[l]), ("h", ref.h[l]), ("hs", ref.hs[l])):
            lines.append("%s %d %s" % (name, l, " ".join(g(v) for v in arr)))
    lines.append("of %s" % " ".join(g(v) for v in ref.o))
    assert nz[0] > 50 and nz[1] > 20, nz
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "model.pb"), "wb") as f:
        f.write(pm.SerializeToString())
    with open(os.path.join(OUT, "inputs.txt"), "w") as f:
        f.write("steps %d\n" % STEPS)
        for t, j, v in events:
            f.write("e %d %d %s\n" % (t, j, g(np.float32(v))))
        for t, row in sorted(dense_rows.items()):
            f.write("d %d %s\n" % (t, " ".join(g(v) for v in row)))
    with open(os.path.join(OUT, "expected.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("golden: %d outputs in layer 0, %d in layer 1, written to %s" % (nz[0], nz[1], OUT))


if __name__ == "__main__":
    main()
