"""test_numpy_parity.py: the C engine against the numpy reference of SPEC.md section 1.

24 random models (1 to 4 SRC layers, 1 to 300 neurons, constants varied around the
defaults, with and without readout, some with initial states), 1000 steps each of random
inputs: sparse events (values 1, graded, negative, duplicated at the same (step, input)),
dense rows, dense rows plus events, and silence. C engines run in lock step with the
reference: the scalar kernels, the automatic kernels and any other table this CPU runs, one
step per call (every state i, h, hs, o compared at every step, and every layer's output
events); then the automatic kernels with random batches of 1 to 25 steps (per-step outputs
and readout, states at the end of each batch). Tolerance: 1e-5 absolute (SPEC.md). The test also asserts that the
inputs make every layer spike, repeatedly: a parity test on silent networks proves nothing.
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine_ctypes import Engine, load_lib  # noqa: E402
from ref_src import RefNet, quantize_model, random_model  # noqa: E402

TOL = 1e-5
STEPS = 1000
N_MODELS = 24
N_Q8 = 6  # then int8 copies of models 0..5 (issue 14): scales per neuron / per layer,
#           the exact tanh and the float32 tanh

failures = []
stats = {"max_diff": 0.0, "compared": 0, "models": 0, "steps": 0}


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg)


def model_shape(k, rng):
    n_layers = 1 + k % 4
    widths = [int(rng.integers(1, 301)) for _ in range(n_layers)]
    if k == 0:
        widths = [1]          # the smallest network
    if k == 3:
        widths[-1] = 300      # the widest layer
    if k == 5:
        widths = [300, 1]
    n_in = int(rng.integers(1, 121)) if k != 1 else 1
    readout = int(rng.integers(1, 13)) if k % 2 == 1 else 0
    return n_in, widths, readout


def make_inputs(rng, n_in):
    """A list of STEPS (events, dense_row or None) with modes changing every 20..100 steps."""
    plan = []
    while len(plan) < STEPS:
        seg = int(rng.integers(20, 101))
        mode = rng.choice(["sparse", "sparse", "graded", "dense", "dense_events", "silent"])
        p = rng.uniform(0.05, 0.4)
        for _ in range(seg):
            events, dense = [], None
            if mode in ("sparse", "graded", "dense_events"):
                on = np.flatnonzero(rng.random(n_in) < p)
                for j in on:
                    if mode == "sparse":
                        v = 1.0
                    else:
                        v = float(np.float32(rng.uniform(-0.5, 2.0)))
                    if rng.random() < 0.1:  # same (step, input) twice: values add up
                        events.append((0, int(j), v / 2))
                        events.append((0, int(j), v / 2))
                    else:
                        events.append((0, int(j), v))
            if mode in ("dense", "dense_events"):
                dense = np.where(rng.random(n_in) < p + 0.2,
                                 rng.uniform(0.0, 1.5, n_in), 0.0).astype(np.float32)
            plan.append((events, dense))
    return plan[:STEPS]


def dense_of(n_in, events, dense):
    row = dense.copy() if dense is not None else np.zeros(n_in, np.float32)
    for _, j, v in events:  # in order, like np.add.at / the engine
        row[j] = row[j] + np.float32(v)
    return row


def layer_dense(spikes, n, steps):
    d = np.zeros((steps, n), np.float32)
    d[spikes["step"], spikes["neuron"]] = spikes["value"]
    return d


def run_model(lib, k, q8=False):
    rng = np.random.default_rng(1000 + k)
    n_in, widths, n_ro = model_shape(k, rng)
    pm = random_model(rng, n_in, widths, readout_n=n_ro, name="parity%d" % k,
                      init_state=(k % 3 == 2))
    if q8:
        pm = quantize_model(pm, per_layer=k % 2 == 1, tanh_float32=k % 3 != 0)
    blob = pm.SerializeToString()
    ref = RefNet(pm)
    engines = {name: Engine(lib, blob, widths, n_ro) for name in KERNELS}
    batched = Engine(lib, blob, widths, n_ro)
    plan = make_inputs(rng, n_in)
    L = len(widths)
    nz = np.zeros(L, np.int64)
    onsets = np.zeros(L, np.int64)
    active_steps = np.zeros(L, np.int64)
    prev_out = [np.zeros(n, np.float32) for n in widths]
    ref_out_hist = [[] for _ in range(L)]
    ref_o_hist = []
    label = "model %d (n_in %d, layers %s, readout %d%s)" % (
        k, n_in, widths, n_ro, ", int8" + (" + float32 tanh" if pm.tanh else "") if q8 else "")
    maxd = 0.0

    def compare(eng, what, t):
        nonlocal maxd
        d = 0.0
        for l in range(L):
            d = max(d, float(np.max(np.abs(ref.i[l] - eng.i[l]))),
                    float(np.max(np.abs(ref.h[l] - eng.h[l]))),
                    float(np.max(np.abs(ref.hs[l] - eng.hs[l]))))
        if n_ro:
            d = max(d, float(np.max(np.abs(ref.o - eng.o))))
        stats["compared"] += 1
        maxd = max(maxd, d)
        if not d <= TOL:  # also catches NaN
            check(False, "%s, %s kernels: states differ by %g at step %d" % (label, what, d, t))
            return False
        return True

    for t in range(STEPS):
        events, dense = plan[t]
        outs = ref.step(dense_of(n_in, events, dense))
        for l in range(L):
            ref_out_hist[l].append(outs[l])
            on = outs[l] > 0
            nz[l] += int(on.sum())
            onsets[l] += int((on & ~(prev_out[l] > 0)).sum())
            active_steps[l] += int(on.any())
            prev_out[l] = outs[l]
        if n_ro:
            ref_o_hist.append(ref.o.copy())
        for name, eng in engines.items():
            lib.spk_set_kernels(name.encode())
            per_layer, last, _ = eng.step(1, events=events,
                                          dense=None if dense is None else dense[None, :])
            for l in range(L):
                got = layer_dense(per_layer[l], widths[l], 1)[0]
                if not np.max(np.abs(got - outs[l])) <= TOL:
                    check(False, "%s, %s kernels: layer %d outputs differ at step %d" % (label, name, l, t))
            if not np.array_equal(last, per_layer[-1]):
                check(False, "%s: spikes differ from layers[last] at step %d" % (label, t))
            if not compare(eng, name, t):
                return None
    # The batched engine replays the same plan in batches of 1..25 steps.
    lib.spk_set_kernels(b"auto")
    t = 0
    while t < STEPS:
        nb = min(int(rng.integers(1, 26)), STEPS - t)
        evs, rows, any_dense = [], np.zeros((nb, n_in), np.float32), False
        for b in range(nb):
            events, dense = plan[t + b]
            evs += [(b, j, v) for _, j, v in events]
            if dense is not None:
                rows[b] = dense
                any_dense = True
        per_layer, _, ro = batched.step(nb, events=evs, dense=rows if any_dense else None,
                                        readout_every_step=True)
        for l in range(L):
            got = layer_dense(per_layer[l], widths[l], nb)
            want = np.array(ref_out_hist[l][t:t + nb])
            if not np.max(np.abs(got - want)) <= TOL:
                check(False, "%s, batched: layer %d outputs differ in steps %d..%d" % (label, l, t, t + nb))
                return None
        if n_ro:
            want = np.array(ref_o_hist[t:t + nb])
            if not np.max(np.abs(ro - want)) <= TOL:
                check(False, "%s, batched: readout differs in steps %d..%d" % (label, t, t + nb))
                return None
        t += nb
    # final states of the batched run equal the reference's final states
    compare(batched, "batched", STEPS - 1)
    for e in list(engines.values()) + [batched]:
        e.close()

    # Every layer must spike, repeatedly, and with many of its neurons.
    for l in range(L):
        n = widths[l]
        need_onsets = max(20, n // 2)
        check(onsets[l] >= need_onsets,
              "%s: layer %d has %d spike onsets, want >= %d" % (label, l, onsets[l], need_onsets))
        check(active_steps[l] >= 100,
              "%s: layer %d spikes in %d steps of %d, want >= 100" % (label, l, active_steps[l], STEPS))
    print("%s: max |diff| %.3g, non-zero outputs per layer %s, onsets %s, active steps %s"
          % (label, maxd, nz.tolist(), onsets.tolist(), active_steps.tolist()))
    stats["max_diff"] = max(stats["max_diff"], maxd)
    stats["models"] += 1
    stats["steps"] += STEPS
    return maxd


KERNELS = ["scalar", "auto"]


def main():
    lib = load_lib()
    t0 = time.time()
    lib.spk_set_kernels(b"auto")
    best = lib.spk_kernels_name().decode()
    print("auto kernels on this CPU:", best)
    # every other table this CPU runs is held to the reference too (auto is the best one)
    for name in ("avx2", "avx512"):
        if name != best and lib.spk_set_kernels(name.encode()) == 0:
            KERNELS.append(name)
    print("kernels compared every step:", ", ".join(KERNELS))
    for k in range(N_MODELS):
        run_model(lib, k)
    for k in range(N_Q8):
        run_model(lib, k, q8=True)
    print("%d models x %d steps, %d state comparisons, max |diff| %.3g, %.1fs"
          % (stats["models"], STEPS, stats["compared"], stats["max_diff"], time.time() - t0))
    if failures or stats["models"] != N_MODELS + N_Q8:
        print("%d failures" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
