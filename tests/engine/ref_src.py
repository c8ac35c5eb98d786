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

int8 layers (issue 14): i = alpha * i + scale * acc, acc = the float32 sum of s_j * q_j over
the non-zero inputs in ascending order (q_j: the int8 row j as floats, scale per neuron), as
engine/step.c. Models with Model.tanh = TANH_FLOAT32 use tanh_f32 below: the engine's float32
tanh, operation for operation (float32 numpy arithmetic, nothing fused).
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


_T32 = dict(clamp=f32(10.0), inv_ln2=f32(1.44269504088896341), shift=f32(12582912.0),
            hi=f32(0.693145751953125), lo=f32(1.42860682030941723212e-6),
            c=[f32(1.0), f32(1.0 / 2.0), f32(1.0 / 6.0), f32(1.0 / 24.0), f32(1.0 / 120.0),
               f32(1.0 / 720.0), f32(1.0 / 5040.0), f32(1.0 / 40320.0)])


def tanh_f32(x):
    """The engine's SPK_TANH_FLOAT32 tanh (engine/kernels.c tanh32_scalar1), in float32."""
    x = np.asarray(x, dtype=f32)
    T = _T32
    ax = np.minimum(np.abs(x), T["clamp"])
    y = ax + ax
    kp = y * T["inv_ln2"]
    kp = kp + T["shift"]
    k = kp - T["shift"]
    r = y - k * T["hi"]
    r = r - k * T["lo"]
    c = T["c"]
    q = c[7] * r + c[6]
    for j in (5, 4, 3, 2, 1, 0):
        q = q * r + c[j]
    e = r * q
    sb = ((kp.view(np.uint32) - np.uint32(0x4B400000)) + np.uint32(127)) << np.uint32(23)
    S = sb.astype(np.uint32).view(f32)
    m = S * e + (S - f32(1.0))
    t = m / (m + f32(2.0))
    return np.copysign(t, x).astype(f32)


def _weights(p, n, n_in):
    """(wt, q8 scales or None): row j of wt holds the weights out of input j; for an int8
    layer the rows are the int8 values as floats and the scales are per neuron."""
    if len(p.weights_q8):
        q = np.frombuffer(p.weights_q8, dtype=np.int8).reshape(n, n_in).astype(f32)
        sc = np.asarray(p.weight_scales, dtype=f32)
        sc = np.full(n, sc[0], f32) if len(sc) == 1 else sc
        return np.ascontiguousarray(q.T), sc
    w = np.asarray(p.weights, dtype=f32).reshape(n, n_in)
    return np.ascontiguousarray(w.T), None


def quantize_model(pm, per_layer=False, tanh_float32=False):
    """An int8 copy of a model_pb2.Model (as models/export.py --int8 quantises: max |w| / 127
    per neuron or per layer, round half to even)."""
    out = model_pb2.Model()
    out.CopyFrom(pm)
    mats = [(p, p.n, p.n_in) for p in out.layers]
    if out.HasField("readout"):
        mats.append((out.readout, out.readout.n, out.readout.n_in))
    for p, n, n_in in mats:
        w = np.asarray(p.weights, dtype=f32).reshape(n, n_in)
        a = np.abs(w).max(keepdims=True).reshape(1) if per_layer else np.abs(w).max(axis=1)
        sc = (a / f32(127)).astype(f32)
        sc = np.where(sc > 0, sc, f32(1)).astype(f32)
        q = np.clip(np.round(w / sc.reshape(-1, 1)), -127, 127).astype(np.int8)
        del p.weights[:]
        p.weights_q8 = q.tobytes()
        p.weight_scales.extend(sc.tolist())
    if tanh_float32:
        out.tanh = model_pb2.Model.TANH_FLOAT32
    return out


class RefLayer:
    def __init__(self, pl):
        self.n_in, self.n = pl.n_in, pl.n
        self.wt, self.scale = _weights(pl, self.n, self.n_in)  # row j: weights out of input j
        self.b_h = np.asarray(pl.b_h, dtype=f32)
        self.alpha, self.rho, self.r, self.r_s = f32(pl.alpha), f32(pl.rho), f32(pl.r), f32(pl.r_s)
        self.z_hyp, self.z_dep, self.theta = f32(pl.z_hyp), f32(pl.z_dep), f32(pl.theta)
        z = lambda v: np.asarray(v, dtype=f32) if len(v) else np.zeros(self.n, f32)  # noqa: E731
        self.i0, self.h0, self.hs0 = z(pl.init_i), z(pl.init_h), z(pl.init_hs)


def synaptic(acc, wt, s, scale=None, alpha=None):
    """acc + W s, one column at a time, ascending non-zero inputs (float32 throughout).
    int8 (scale given): alpha * acc + scale * (the same sum of int8 rows from zero)."""
    if scale is not None:
        q = np.zeros(wt.shape[1], f32)
        for j in np.flatnonzero(s):
            q = q + s[j] * wt[j]
        return alpha * acc + scale * q
    for j in np.flatnonzero(s):
        acc = acc + s[j] * wt[j]
    return acc


class RefNet:
    def __init__(self, pm):
        self.layers = [RefLayer(pl) for pl in pm.layers]
        self.has_readout = pm.HasField("readout")
        if self.has_readout:
            ro = pm.readout
            self.wo, self.so = _weights(ro, ro.n, ro.n_in)
            self.bo = np.asarray(ro.bias, dtype=f32)
            self.alpha_o = f32(ro.alpha)
            self.o0 = np.asarray(ro.init_o, dtype=f32) if len(ro.init_o) else np.zeros(ro.n, f32)
        self.n_in = pm.n_in
        self.tanh = tanh_f32 if pm.tanh == model_pb2.Model.TANH_FLOAT32 else tanh32
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
            if L.scale is None:
                i = synaptic(L.alpha * self.i[k], L.wt, s)                 # (5a)
            else:
                i = synaptic(self.i[k], L.wt, s, L.scale, L.alpha)
            x = L.rho * self.tanh(i / L.rho)                               # (5b)
            h_prev, hs_prev = self.h[k], self.hs[k]
            h = self.tanh(((x + L.r * h_prev) + L.r_s * hs_prev) + L.b_h)  # (5d)
            gate = (h > L.theta).astype(f32)                               # H(h - theta)
            z = L.z_hyp + (L.z_dep - L.z_hyp) * gate                       # (5c)
            hs = z * hs_prev + (f32(1) - z) * h_prev                       # (5e)
            s = np.maximum(h, f32(0))                                      # (5f)
            self.i[k], self.h[k], self.hs[k] = i, h, hs
            outs.append(s)
        if self.has_readout:
            if self.so is None:
                self.o = synaptic(self.alpha_o * self.o, self.wo, s) + self.bo
            else:
                self.o = synaptic(self.o, self.wo, s, self.so, self.alpha_o) + self.bo
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
