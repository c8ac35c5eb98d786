#!/usr/bin/python3
"""The PyTorch SRC module (models/srcnet.py) and the C engine compute the same network.

Random small models (varied constants, random initial states, a readout) are built with
SRCNet, exported with models/export.save_model, loaded by the C engine through ctypes
($SPIKESERVE_BUILD/libspkengine.so), and driven with the same 500 steps of graded input
events. Every layer's outputs and the readout must agree to 1e-5 at every step (SPEC.md
section 1), and so must the final i, h, h_s of every layer. The inputs are strong enough
that every layer spikes, and the test asserts that it does (a silent layer would make the
comparison vacuous). The PyTorch side runs with net.engine_numerics(True), the
engine's order of float operations (models/srcnet.py); the training path is compared too.
"""
import ctypes as C
import os
import sys
import tempfile

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "models"))
from export import load_model, save_model  # noqa: E402
from srcnet import SRCNet  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine_ctypes import Event, Input, Output, Spike, SpikeBuf  # noqa: E402,F401

TOL = 1e-5
STEPS = 500
n_checks = n_failed = 0


def ok(cond, name, detail=""):
    global n_checks, n_failed
    n_checks += 1
    print(f"{'' if cond else 'not '}ok {n_checks} - {name}")
    if not cond:
        n_failed += 1
        if detail:
            print("#   " + detail.replace("\n", "\n#   "))
    sys.stdout.flush()
    return cond


def engine():
    build = os.environ.get("SPIKESERVE_BUILD", os.path.join(ROOT, "build"))
    lib = C.CDLL(os.path.join(build, "libspkengine.so"))
    vp, fp = C.c_void_p, C.POINTER(C.c_float)
    lib.spk_model_load_file.argtypes = [C.c_char_p, C.POINTER(vp), C.c_char_p, C.c_size_t]
    lib.spk_model_load_file.restype = C.c_int
    lib.spk_model_free.argtypes = [vp]
    lib.spk_state_create.argtypes = [vp]
    lib.spk_state_create.restype = vp
    lib.spk_state_free.argtypes = [vp]
    lib.spk_scratch_create.argtypes = [vp]
    lib.spk_scratch_create.restype = vp
    lib.spk_scratch_free.argtypes = [vp]
    for f in ("spk_state_i", "spk_state_h", "spk_state_hs"):
        getattr(lib, f).argtypes = [vp, C.c_uint32]
        getattr(lib, f).restype = fp
    lib.spk_step.argtypes = [vp, C.POINTER(Input), C.POINTER(Output), vp, C.c_char_p, C.c_size_t]
    lib.spk_step.restype = C.c_int
    lib.spk_set_kernels.argtypes = [C.c_char_p]
    lib.spk_set_kernels.restype = C.c_int
    return lib


def random_net(seed, n_in, hidden, n_out):
    """A random SRCNet with varied constants, b_h, initial states and strong weights."""
    g = np.random.default_rng(seed)
    consts = []
    for _ in hidden:
        consts.append(dict(alpha=g.uniform(0.7, 0.95), rho=g.uniform(1.5, 4.0),
                           r=g.uniform(1.0, 2.5), r_s=g.uniform(-8.0, -5.0),
                           z_hyp=g.uniform(0.8, 0.95), z_dep=g.uniform(0.0, 0.2),
                           theta=g.uniform(0.3, 0.7)))
    torch.manual_seed(seed)
    net = SRCNet(n_in, hidden, n_out, constants=consts, readout_alpha=g.uniform(0.5, 0.95))
    with torch.no_grad():
        prev = n_in
        for L in net.layers:
            # Positive-leaning weights, so that activity reaches every layer.
            w = g.normal(1.5 / prev, 2.0 / np.sqrt(prev), size=(L.n, prev)) * 3.0
            L.weight.copy_(torch.tensor(w, dtype=torch.float32))
            L.b_h.copy_(torch.tensor(g.uniform(-6.5, -4.5, L.n), dtype=torch.float32))
            L.init_i.copy_(torch.tensor(g.uniform(-0.5, 0.5, L.n), dtype=torch.float32))
            L.init_h.copy_(torch.tensor(g.uniform(-1.0, 0.0, L.n), dtype=torch.float32))
            L.init_hs.copy_(torch.tensor(g.uniform(-1.0, -0.5, L.n), dtype=torch.float32))
            prev = L.n
        net.readout.init_o.copy_(torch.tensor(g.uniform(-1, 1, n_out), dtype=torch.float32))
    return net


def random_input(seed, n_in, steps):
    """Sparse graded input events (sorted by step), some repeated at the same (step, input),
    and the same input as a dense [steps, n_in] tensor."""
    g = np.random.default_rng(seed + 1000)
    evs = []
    for t in range(steps):
        k = g.integers(0, max(2, n_in // 2))
        for j in g.integers(0, n_in, size=k):
            evs.append((t, int(j), float(np.float32(g.uniform(0.2, 1.5)))))
    # Sorted by (step, input), so that repeats of one (step, input) are adjacent: the engine
    # sums those first, as the dense tensor does (engine/step.c on the order of sums).
    evs.sort(key=lambda e: (e[0], e[1]))
    dense = np.zeros((steps, n_in), np.float32)
    for t, j, v in evs:
        dense[t, j] += np.float32(v)
    return evs, torch.from_numpy(dense)


def run_engine(lib, path, net, evs, steps):
    """Returns per-layer dense outputs [steps, n], readout [steps, n_out], final states."""
    err = C.create_string_buffer(512)
    model = C.c_void_p()
    rc = lib.spk_model_load_file(path.encode(), C.byref(model), err, 512)
    if rc != 0:
        raise RuntimeError(f"spk_model_load_file: {rc}: {err.value.decode()}")
    st = lib.spk_state_create(model)
    sc = lib.spk_scratch_create(model)
    nl = len(net.layers)
    ev = (Event * max(1, len(evs)))(*[Event(t, j, v) for t, j, v in evs])
    inp = Input(steps, ev, len(evs), None)
    bufs = (SpikeBuf * nl)()
    keep = []
    for k, L in enumerate(net.layers):
        cap = L.n * steps
        arr = (Spike * cap)()
        keep.append(arr)
        bufs[k] = SpikeBuf(arr, cap, 0)
    last = (Spike * (net.layers[-1].n * steps))()
    ro = (C.c_float * (steps * net.n_out))()
    out = Output(SpikeBuf(last, net.layers[-1].n * steps, 0), bufs, ro, 1, None)
    rc = lib.spk_step(st, C.byref(inp), C.byref(out), sc, err, 512)
    if rc != 0:
        raise RuntimeError(f"spk_step: {rc}: {err.value.decode()}")
    layers = []
    for k, L in enumerate(net.layers):
        d = np.zeros((steps, L.n), np.float32)
        for q in range(bufs[k].len):
            s = keep[k][q]
            d[s.step, s.neuron] += s.value
        layers.append(d)
    readout = np.ctypeslib.as_array(ro).reshape(steps, net.n_out).copy()
    states = []
    for k, L in enumerate(net.layers):
        states.append(tuple(np.ctypeslib.as_array(f(st, k), shape=(L.n,)).copy()
                            for f in (lib.spk_state_i, lib.spk_state_h, lib.spk_state_hs)))
    lib.spk_scratch_free(sc)
    lib.spk_state_free(st)
    lib.spk_model_free(model)
    return layers, readout, states


def check_model(lib, case, seed, n_in, hidden, n_out, tmp):
    net = random_net(seed, n_in, hidden, n_out)
    path = os.path.join(tmp, "parity.spk")
    save_model(net, path, "parity-" + case.replace("/", "-"), 1, None, {"kind": "none"})
    evs, dense = random_input(seed, n_in, STEPS)
    with torch.no_grad():
        fast = net(dense.unsqueeze(1))
        res = net.engine_numerics(True)(dense.unsqueeze(1))
        net.engine_numerics(False)
    layers, readout, states = run_engine(lib, path, net, evs, STEPS)
    # The training path (one GEMM per layer, float32 tanh) rounds differently; spike onsets
    # amplify that over time, so it is held to the engine order on the first steps only.
    d = max(float((a - b).abs()[:20].max()) for a, b in zip(fast["layers"], res["layers"]))
    ok(d <= 1e-4, f"model {case}: training path = engine order on the first 20 steps",
       f"max |diff| {d:.3g}")
    name = f"model {case} {n_in}-{'-'.join(map(str, hidden))}-{n_out}"
    for k, L in enumerate(net.layers):
        ts = res["layers"][k][:, 0, :].numpy()
        frac = float((ts > 0).mean())
        steps_active = int((ts > 0).any(axis=1).sum())
        ok(frac > 0.01 and steps_active > STEPS // 10,
           f"{name}: layer {k} spikes ({100 * frac:.1f}% non-zero, {steps_active} active steps)")
        diff = np.abs(ts - layers[k])
        t_bad = int(np.argmax(diff.max(axis=1)))
        ok(diff.max() <= TOL, f"{name}: layer {k} outputs agree on all {STEPS} steps",
           f"max |diff| {diff.max():.3g} first at step {int(np.argmax(diff.max(axis=1) > TOL))}, "
           f"worst step {t_bad}")
        ok(((ts > 0) == (layers[k] > 0)).all(), f"{name}: layer {k} same non-zero pattern")
        ti, th, ths = (v[0].numpy() for v in res["state"]["layers"][k])
        ci, ch, chs = states[k]
        dmax = max(np.abs(ti - ci).max(), np.abs(th - ch).max(), np.abs(ths - chs).max())
        ok(dmax <= TOL, f"{name}: layer {k} final i, h, h_s agree", f"max |diff| {dmax:.3g}")
    to = res["readout"][:, 0, :].numpy()
    diff = np.abs(to - readout)
    ok(diff.max() <= TOL, f"{name}: readout agrees on all {STEPS} steps",
       f"max |diff| {diff.max():.3g} at step {int(np.argmax(diff.max(axis=1)))}")
    # The file read back by the importer is the same network.
    net2 = load_model(path)
    with torch.no_grad():
        res2 = net2(dense.unsqueeze(1))
    ok(torch.equal(res2["readout"], fast["readout"]),
       f"{name}: the imported model reproduces the readout exactly")


def main():
    torch.set_num_threads(1)
    lib = engine()
    cases = [(1, 12, [16], 4), (2, 20, [24, 16], 5), (3, 30, [32, 24, 16], 3),
             (4, 8, [10, 10, 10, 10], 6)]
    with tempfile.TemporaryDirectory() as tmp:
        for kernels in ("auto", "scalar"):
            ok(lib.spk_set_kernels(kernels.encode()) == 0, f"spk_set_kernels({kernels})")
            for case, n_in, hidden, n_out in cases:
                check_model(lib, f"{case}/{kernels}", case, n_in, hidden, n_out, tmp)
    print(f"1..{n_checks}")
    if n_failed:
        print(f"# {n_failed} of {n_checks} checks failed")
    return 1 if n_failed else 0


if __name__ == "__main__":
    sys.exit(main())
