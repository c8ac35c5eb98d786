#!/usr/bin/python3
"""measure_f64.py: SPEC.md section 1 (2) for the numerics modes of issue 14 (a measurement,
not a pass/fail test).

For random models quantised to int8 (tests/engine/ref_src.quantize_model), with the exact and
with the float32 tanh, driven by 1,000 steps of sparse binary input: the first step at which
a state (i, h, h_s of any layer, readout) differs by more than 1e-4 from a float64 evaluation
of the equations with the *dequantized* weights, for
  - the C engine on the int8 model (its int8 sums, its tanh mode), and
  - a plain float32 evaluation with the same dequantized weights (ref_src.RefNet on the float
    model: float32 weights, one column at a time, the correctly rounded tanh).
SPEC (2) asks the engine to stay within 1e-4 at least as long as the plain float32 one does.

    /usr/bin/python3 tests/engine/measure_f64.py [N_MODELS]
"""
import sys

import numpy as np

sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
from engine_ctypes import Engine, load_lib  # noqa: E402
from ref_src import RefNet, model_pb2, quantize_model, random_model  # noqa: E402

STEPS, TOL = 1000, 1e-4


def dequantized(pq):
    """The float32 model whose weights are the int8 model's q * scale (exact tanh)."""
    pf = model_pb2.Model()
    pf.CopyFrom(pq)
    mats = list(pf.layers) + ([pf.readout] if pf.HasField("readout") else [])
    for p in mats:
        q = np.frombuffer(p.weights_q8, np.int8).reshape(p.n, p.n_in).astype(np.float32)
        sc = np.asarray(p.weight_scales, np.float32)
        w = q * (sc.reshape(-1, 1) if len(sc) > 1 else sc[0])
        p.weights_q8 = b""
        del p.weight_scales[:]
        p.weights.extend(w.astype(np.float32).ravel().tolist())
    pf.tanh = model_pb2.Model.TANH_EXACT
    return pf


class F64:
    """The equations of SPEC section 1 in float64 (np.tanh), weights as given."""

    def __init__(self, pf):
        self.L = []
        for p in pf.layers:
            w = np.asarray(p.weights, np.float64).reshape(p.n, p.n_in)
            z = lambda v, n: np.asarray(v, np.float64) if len(v) else np.zeros(n)  # noqa: E731
            self.L.append(dict(w=w, b=np.asarray(p.b_h, np.float64), a=p.alpha, rho=p.rho,
                               r=p.r, rs=p.r_s, zh=p.z_hyp, zd=p.z_dep, th=p.theta,
                               i=z(p.init_i, p.n), h=z(p.init_h, p.n), hs=z(p.init_hs, p.n)))
        self.ro = None
        if pf.HasField("readout"):
            r = pf.readout
            self.ro = dict(w=np.asarray(r.weights, np.float64).reshape(r.n, r.n_in),
                           b=np.asarray(r.bias, np.float64), a=r.alpha,
                           o=np.asarray(r.init_o, np.float64) if len(r.init_o) else np.zeros(r.n))

    def step(self, s):
        s = s.astype(np.float64)
        for L in self.L:
            L["i"] = L["a"] * L["i"] + L["w"] @ s
            x = L["rho"] * np.tanh(L["i"] / L["rho"])
            h = np.tanh(x + L["r"] * L["h"] + L["rs"] * L["hs"] + L["b"])
            z = L["zh"] + (L["zd"] - L["zh"]) * (h > L["th"])
            L["hs"] = z * L["hs"] + (1 - z) * L["h"]
            L["h"] = h
            s = np.maximum(h, 0)
        if self.ro:
            self.ro["o"] = self.ro["a"] * self.ro["o"] + self.ro["w"] @ s + self.ro["b"]

    def states(self):
        v = [np.concatenate([L["i"], L["h"], L["hs"]]) for L in self.L]
        return np.concatenate(v + ([self.ro["o"]] if self.ro else []))


def states_of(obj):
    v = [np.concatenate([obj.i[k], obj.h[k], obj.hs[k]]) for k in range(len(obj.i))]
    o = getattr(obj, "o", None)
    return np.concatenate(v + ([o] if o is not None else [])).astype(np.float64)


def main():
    n_models = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    lib = load_lib()
    lib.spk_set_kernels(b"auto")
    rows = []
    for k in range(n_models):
        rng = np.random.default_rng(7000 + k)
        n_in = int(rng.integers(20, 200))
        widths = [int(rng.integers(20, 257)) for _ in range(1 + k % 3)]
        n_ro = 10
        pm = random_model(rng, n_in, widths, readout_n=n_ro, name=f"f64-{k}")
        for tanh32 in (False, True):
            pq = quantize_model(pm, per_layer=False, tanh_float32=tanh32)
            pf = dequantized(pq)
            eng = Engine(lib, pq.SerializeToString(), widths, n_ro)
            plain, ref = RefNet(pf), F64(pf)
            h_eng = h_plain = None
            for t in range(STEPS):
                s = (rng.random(n_in) < 0.15).astype(np.float32)
                ev = [(0, int(j), 1.0) for j in np.flatnonzero(s)]
                eng.step(1, events=ev)
                plain.step(s)
                ref.step(s)
                r = ref.states()
                if h_eng is None and np.max(np.abs(states_of(eng) - r)) > TOL:
                    h_eng = t
                if h_plain is None and np.max(np.abs(states_of(plain) - r)) > TOL:
                    h_plain = t
                if h_eng is not None and h_plain is not None:
                    break
            eng.close()
            rows.append((k, widths, "float32" if tanh32 else "exact", h_eng, h_plain))
            print(f"model {k} {n_in}-{'-'.join(map(str, widths))}-{n_ro}, int8, "
                  f"{'float32' if tanh32 else 'exact'} tanh: within 1e-4 of float64 until step "
                  f"{h_eng if h_eng is not None else '>' + str(STEPS)} (engine), "
                  f"{h_plain if h_plain is not None else '>' + str(STEPS)} (plain float32)",
                  flush=True)
    for mode in ("exact", "float32"):
        sel = [r for r in rows if r[2] == mode]
        h = lambda v: STEPS if v is None else v  # noqa: E731
        at_least = sum(h(r[3]) >= h(r[4]) for r in sel)
        print(f"{mode} tanh: engine at least as long as plain float32 on {at_least} of "
              f"{len(sel)} models; median horizon engine {np.median([h(r[3]) for r in sel]):.0f}, "
              f"plain {np.median([h(r[4]) for r in sel]):.0f} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
