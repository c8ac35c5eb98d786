"""ref_src.py: a numpy float32 reference of SPEC.md section 1 (the SRC cell).

Every operation is a float32 operation, in the order the equations are written:

  (5a) i   = alpha * i  +  sum over non-zero inputs j (ascending) of s_in[j] * W[:, j]
  (5b) x   = rho * tanh(i / rho)
  (5d) h   = tanh(((x + r * h_prev) + r_s * hs_prev) + b_h)
  (5c) z   = z_hyp + (z_dep - z_hyp) * H(h - theta)
  (5e) hs  = z * hs_prev + (1 - z) * h_prev
  (5f) s   = max(h, 0)
  readout: o = alpha_o * o + sum over non-zero s_j (ascending) of s_j * W_o[:, j], then + b_o

tanh is computed in float64 and rounded to float32 (the correctly rounded float tanh but for
rare near-ties), and the synaptic sum adds one weight column at a time in ascending input
order, as the C engine documents (engine/step.c). Keeping the reference this close to exact
matters because the gate H(h - theta) turns a one-ulp difference of h near theta into a
different z_s; with both sides near-exact the comparison stays meaningful over 1000 steps.
Inputs given as events are first summed into a dense row (np.add.at, in order).
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "proto"))
import model_pb2  # noqa: E402

f32 = np.float32


def tanh32(x):
    return np.tanh(x.astype(np.float64)).astype(f32)


class RefLayer:
    def __init__(self, pl):
        self.n_in, self.n = pl.n_in, pl.n
        w = np.asarray(pl.weights, dtype=f32).reshape(self.n, self.n_in)
        self.wt = np.ascontiguousarray(w.T)  # row j: the weights out of input j
        self.b_h = np.asarray(pl.b_h, dtype=f32)
        self.alpha, self.rho, self.r, self.r_s = f32(pl.alpha), f32(pl.rho), f32(pl.r), f32(pl.r_s)
        self.z_hyp, self.z_dep, self.theta = f32(pl.z_hyp), f32(pl.z_dep), f32(pl.theta)
        z = lambda v: np.asarray(v, dtype=f32) if len(v) else np.zeros(self.n, f32)  # noqa: E731
        self.i0, self.h0, self.hs0 = z(pl.init_i), z(pl.init_h), z(pl.init_hs)


def synaptic(acc, wt, s):
    """acc + W s, one column at a time, ascending non-zero inputs (float32 throughout)."""
    for j in np.flatnonzero(s):
        acc = acc + s[j] * wt[j]
    return acc


class RefNet:
    def __init__(self, pm):
        self.layers = [RefLayer(pl) for pl in pm.layers]
        self.has_readout = pm.HasField("readout")
        if self.has_readout:
            ro = pm.readout
            w = np.asarray(ro.weights, dtype=f32).reshape(ro.n, ro.n_in)
            self.wo = np.ascontiguousarray(w.T)
            self.bo = np.asarray(ro.bias, dtype=f32)
            self.alpha_o = f32(ro.alpha)
            self.o0 = np.asarray(ro.init_o, dtype=f32) if len(ro.init_o) else np.zeros(ro.n, f32)
        self.n_in = pm.n_in
        self.reset()

    def reset(self):
        self.i = [L.i0.copy() for L in self.layers]
        self.h = [L.h0.copy() for L in self.layers]
        self.hs = [L.hs0.copy() for L in self.layers]
        self.o = self.o0.copy() if self.has_readout else None

    def step(self, s_in):
        """One time step with dense input s_in (float32, n_in). Returns every layer's s_out."""
        s = np.asarray(s_in, dtype=f32)
        outs = []
        for k, L in enumerate(self.layers):
            i = synaptic(L.alpha * self.i[k], L.wt, s)                     # (5a)
            x = L.rho * tanh32(i / L.rho)                                  # (5b)
            h_prev, hs_prev = self.h[k], self.hs[k]
            h = tanh32(((x + L.r * h_prev) + L.r_s * hs_prev) + L.b_h)     # (5d)
            gate = (h > L.theta).astype(f32)                               # H(h - theta)
            z = L.z_hyp + (L.z_dep - L.z_hyp) * gate                       # (5c)
            hs = z * hs_prev + (f32(1) - z) * h_prev                       # (5e)
            s = np.maximum(h, f32(0))                                      # (5f)
            self.i[k], self.h[k], self.hs[k] = i, h, hs
            outs.append(s)
        if self.has_readout:
            self.o = synaptic(self.alpha_o * self.o, self.wo, s) + self.bo
        for a in self.i + self.h + self.hs + ([self.o] if self.has_readout else []):
            assert a.dtype == f32
        return outs


def events_to_dense(steps, n_in, events):
    """[(step, input, value)] -> steps x n_in float32, values at the same place summed in order."""
    d = np.zeros((steps, n_in), f32)
    if len(events):
        ev = np.asarray(events, dtype=np.float64)
        np.add.at(d, (ev[:, 0].astype(int), ev[:, 1].astype(int)), ev[:, 2].astype(f32))
    return d


def random_model(rng, n_in, widths, readout_n=0, name="rand", vary=True, init_state=False,
                 drive=2.5):
    """A random SRC model (model_pb2.Model) whose layers spike under inputs of the given
    per-step drive. Constants vary around the defaults of SPEC.md when vary is set."""
    pm = model_pb2.Model(name=name, version=1, n_in=n_in)
    prev = n_in
    for n in widths:
        pl = pm.layers.add()
        pl.n_in, pl.n = prev, n
        j = (lambda lo, hi: rng.uniform(lo, hi)) if vary else (lambda lo, hi: (lo + hi) / 2)
        pl.alpha = j(0.85, 0.95)
        pl.rho = j(2.5, 3.5)
        pl.r = j(1.7, 2.3)
        pl.r_s = j(-8.0, -6.0)
        pl.z_hyp = j(0.85, 0.95)
        pl.z_dep = j(0.0, 0.1)
        pl.theta = j(0.4, 0.6)
        # Excitatory-leaning weights scaled by the expected number of active inputs, so that
        # i settles around a few units and neurons cross threshold at different times.
        # Deeper layers see sparser inputs (a few per cent of the previous layer is on).
        active = 0.25 if len(pm.layers) == 1 else 0.08
        w = rng.uniform(-0.6, 1.4, size=(n, prev)) * (drive / (active * prev + 1.0))
        pl.weights.extend(w.astype(f32).ravel().tolist())
        pl.b_h.extend(rng.uniform(-6.5, -5.5, size=n).astype(f32).tolist())
        if init_state:
            pl.init_i.extend(rng.uniform(0, 2, size=n).astype(f32).tolist())
            pl.init_h.extend(rng.uniform(-1, 1, size=n).astype(f32).tolist())
            pl.init_hs.extend(rng.uniform(-1, 1, size=n).astype(f32).tolist())
        prev = n
    if readout_n:
        ro = pm.readout
        ro.n_in, ro.n = prev, readout_n
        ro.weights.extend(rng.normal(0, 0.5, size=readout_n * prev).astype(f32).tolist())
        ro.bias.extend(rng.normal(0, 0.1, size=readout_n).astype(f32).tolist())
        ro.alpha = rng.uniform(0.8, 0.95) if vary else 0.9
        if init_state:
            ro.init_o.extend(rng.uniform(-1, 1, size=readout_n).astype(f32).tolist())
    return pm
