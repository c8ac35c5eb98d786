"""srcnet: the Spiking Recurrent Cell (SRC) network in PyTorch (SPEC.md section 1).

One SRC layer, per neuron and per step t, in this order (float32):

    (5a) i[t]   = alpha * i[t-1] + W s_in[t]
    (5b) x[t]   = rho * tanh(i[t] / rho)
    (5d) h[t]   = tanh(x[t] + r * h[t-1] + r_s * h_s[t-1] + b_h)
    (5c) z_s[t] = z_hyp + (z_dep - z_hyp) * H(h[t] - theta)
    (5e) h_s[t] = z_s[t] * h_s[t-1] + (1 - z_s[t]) * h[t-1]
    (5f) s[t]   = max(h[t], 0)

and an optional leaky readout o[t] = alpha_o * o[t-1] + W_o s[t] + b_o. The prediction of
a classifier is argmax o at the last step.

Design: a layer's input at step t is the previous layer's output at the same step, and a
layer's recurrence never looks at the layers above it, so the network is evaluated layer by
layer: one matrix product over all T steps at once (W applied to [T*B, n_in]), then the
cheap element-wise recurrence over t. That is the same arithmetic as the engine's
step-by-step order, just scheduled so that the matrix work is one large GEMM.

Training conventions (SPEC.md): h[t-1] and h_s[t-1] enter step t detached, so gradients
flow in time only through the linear leak of i (and of the readout); the ReLU of 5f is
straight-through (its backward is the identity); the Heaviside gate carries no gradient.
Learned: W of every layer, optionally b_h, and the readout.
"""
import math

import torch
import torch.nn as nn

# Defaults of the reference design (SPEC.md section 1).
DEFAULTS = dict(alpha=0.9, rho=3.0, r=2.0, r_s=-7.0, z_hyp=0.9, z_dep=0.0, theta=0.5)
DEFAULT_BH = -6.0
CONSTANTS = ("alpha", "rho", "r", "r_s", "z_hyp", "z_dep", "theta")


class _StraightThroughReLU(torch.autograd.Function):
    """max(h, 0) forward, identity backward."""

    @staticmethod
    def forward(ctx, h):
        return h.clamp_min(0.0)

    @staticmethod
    def backward(ctx, g):
        return g


QMAX = 127  # int8 weights: values in [-127, 127] (-128 unused, so the range is symmetric)
QUANT_MODES = ("layer", "neuron")


def quant_scales(w, mode):
    """float32 scales of an int8 quantisation of w [n, n_in]: one (mode "layer", [1]) or one
    per output neuron (mode "neuron", [n], a row of w), max |w| / 127 (1 where that is 0)."""
    w = w.detach().float()
    if mode == "layer":
        a = w.abs().max().reshape(1)
    elif mode == "neuron":
        a = w.abs().amax(dim=1)
    else:
        raise ValueError(f"quantisation mode {mode!r}, expected one of {QUANT_MODES}")
    s = a / QMAX
    return torch.where(s > 0, s, torch.ones_like(s))


def quantize(w, scales):
    """int8 values of w [n, n_in] for scales [1] or [n]: round half to even, clamped."""
    return torch.round(w.detach().float() / scales.view(-1, 1)).clamp(-QMAX, QMAX).to(torch.int8)


def dequantize(q, scales):
    """float32 weights q * scale (row by row): what the engine's int8 sums equal."""
    return q.float() * scales.view(-1, 1)


class _FakeQuant(torch.autograd.Function):
    """Quantise-dequantise forward, identity backward (straight-through)."""

    @staticmethod
    def forward(ctx, w, mode):
        s = quant_scales(w, mode)
        return dequantize(quantize(w, s), s)

    @staticmethod
    def backward(ctx, g):
        return g, None


def fake_quant(w, mode):
    return w if mode is None else _FakeQuant.apply(w, mode)


def _tanh_exact(v):
    """float32 tanh rounded from double: what the engine computes."""
    return torch.tanh(v.double()).float()


def st_relu(h):
    return _StraightThroughReLU.apply(h)


def _f32(v):
    """A Python float rounded to float32, so constants match the model file exactly."""
    return float(torch.tensor(float(v), dtype=torch.float32).item())


class SRCLayer(nn.Module):
    """One SRC layer of n neurons fed by n_in inputs.

    Parameters: weight [n, n_in] (nn.Linear layout, as in the model file), b_h [n] (a
    Parameter when learn_bh, else a buffer). Buffers: init_i, init_h, init_hs [n].
    Constants are plain float attributes (float32 values).
    """

    def __init__(self, n_in, n, b_h=DEFAULT_BH, learn_bh=False, **constants):
        super().__init__()
        unknown = set(constants) - set(CONSTANTS)
        if unknown:
            raise ValueError(f"unknown SRC constant(s): {sorted(unknown)}")
        self.n_in, self.n = int(n_in), int(n)
        for k in CONSTANTS:
            setattr(self, k, _f32(constants.get(k, DEFAULTS[k])))
        self.weight = nn.Parameter(torch.empty(self.n, self.n_in))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Linear's default
        bh = torch.full((self.n,), float(b_h)) if not torch.is_tensor(b_h) else b_h.float().clone()
        if learn_bh:
            self.b_h = nn.Parameter(bh)
        else:
            self.register_buffer("b_h", bh)
        for name in ("init_i", "init_h", "init_hs"):
            self.register_buffer(name, torch.zeros(self.n))

    exact = False  # see SRCNet.engine_numerics()
    qat = None  # None, or a QUANT_MODES entry: fake-quantised int8 weights (SRCNet.set_qat)

    def qweight(self):
        """The weights the forward pass uses (fake-quantised under QAT)."""
        return fake_quant(self.weight, self.qat)

    def constants(self):
        return {k: getattr(self, k) for k in CONSTANTS}

    def extra_repr(self):
        c = ", ".join(f"{k}={getattr(self, k):g}" for k in CONSTANTS)
        return f"n_in={self.n_in}, n={self.n}, {c}"

    @torch.no_grad()
    def rest_state(self, steps=300):
        """The state the layer settles to with no input (i = 0): iterate 5d, 5c, 5e."""
        h = torch.zeros(self.n)
        hs = torch.zeros(self.n)
        b = self.b_h.detach()
        for _ in range(steps):
            hn = torch.tanh(self.r * h + self.r_s * hs + b)
            z = self.z_hyp + (self.z_dep - self.z_hyp) * (hn > self.theta).float()
            hs = z * hs + (1.0 - z) * h
            h = hn
        return torch.zeros(self.n), h, hs

    def run(self, u, state=None):
        """Run the recurrence on the projected input u = W s_in, [T, B, n].

        state: None (the layer's initial state) or a tuple (i, h, hs) of [B, n].
        Returns (s [T, B, n], final state)."""
        T, B, _ = u.shape
        if state is None:
            i = self.init_i.expand(B, self.n)
            h = self.init_h.expand(B, self.n)
            hs = self.init_hs.expand(B, self.n)
        else:
            i, h, hs = state
        a, rho, r, r_s = self.alpha, self.rho, self.r, self.r_s
        z_hyp, dz, theta = self.z_hyp, self.z_dep - self.z_hyp, self.theta
        b = self.b_h
        out = []
        for t in range(T):
            i = a * i + u[t]  # 5a
            x = rho * torch.tanh(i / rho)  # 5b
            hd, hsd = h.detach(), hs.detach()
            hn = torch.tanh(x + r * hd + r_s * hsd + b)  # 5d
            z = z_hyp + dz * (hn.detach() > theta).to(hn.dtype)  # 5c
            hs = z * hsd + (1.0 - z) * hd  # 5e
            h = hn
            out.append(st_relu(hn))  # 5f
        return torch.stack(out), (i, h, hs)

    @torch.no_grad()
    def run_exact(self, s_in, state=None):
        """The engine's float order (engine/step.c): i = alpha * i, then the inputs are
        added one by one in ascending order, i = i + s_j * W[:, j]; tanh is computed in
        double and rounded to float. Same results bit for bit, but slow: for checks only."""
        T, B, _ = s_in.shape
        if state is None:
            i = self.init_i.expand(B, self.n).clone()
            h = self.init_h.expand(B, self.n)
            hs = self.init_hs.expand(B, self.n)
        else:
            i, h, hs = (v.clone() for v in state)
        wt = self.qweight().detach().t().contiguous()
        dz = _f32(self.z_dep - self.z_hyp)
        z_on = _f32(self.z_hyp + dz)
        out = []
        for t in range(T):
            i = self.alpha * i
            st = s_in[t]
            for j in torch.nonzero(st.ne(0).any(0)).flatten().tolist():
                i = i + st[:, j:j + 1] * wt[j]
            x = self.rho * _tanh_exact(i / self.rho)
            a = x + self.r * h
            a = a + self.r_s * hs
            a = a + self.b_h
            hn = _tanh_exact(a)
            z = torch.where(hn > self.theta, torch.tensor(z_on), torch.tensor(self.z_hyp))
            hs = z * hs + (1.0 - z) * h
            h = hn
            out.append(hn.clamp_min(0.0))
        return torch.stack(out), (i, h, hs)

    def forward(self, s_in, state=None):
        """s_in [T, B, n_in] -> (s [T, B, n], final state)."""
        T, B, _ = s_in.shape
        if self.exact:
            return self.run_exact(s_in, state)
        u = torch.matmul(s_in.reshape(T * B, self.n_in), self.qweight().t()).reshape(T, B, self.n)
        return self.run(u, state)


class Readout(nn.Module):
    """Leaky integrator o[t] = alpha * o[t-1] + W s[t] + b (no spikes)."""

    def __init__(self, n_in, n, alpha=0.9):
        super().__init__()
        self.n_in, self.n = int(n_in), int(n)
        self.alpha = _f32(alpha)
        lin = nn.Linear(self.n_in, self.n)
        self.weight = nn.Parameter(lin.weight.detach().clone())
        self.bias = nn.Parameter(lin.bias.detach().clone())
        self.register_buffer("init_o", torch.zeros(self.n))

    def extra_repr(self):
        return f"n_in={self.n_in}, n={self.n}, alpha={self.alpha:g}"

    exact = False
    qat = None

    def qweight(self):
        return fake_quant(self.weight, self.qat)

    @torch.no_grad()
    def run_exact(self, s, state=None):
        """The engine's order: o = alpha * o, + s_j * W_o[:, j] in ascending j, + b."""
        T, B, _ = s.shape
        o = self.init_o.expand(B, self.n).clone() if state is None else state.clone()
        wt = self.qweight().detach().t().contiguous()
        out = []
        for t in range(T):
            o = self.alpha * o
            st = s[t]
            for j in torch.nonzero(st.ne(0).any(0)).flatten().tolist():
                o = o + st[:, j:j + 1] * wt[j]
            o = o + self.bias.detach()
            out.append(o)
        return torch.stack(out), o

    def forward(self, s, state=None):
        T, B, _ = s.shape
        if self.exact:
            return self.run_exact(s, state)
        u = (torch.matmul(s.reshape(T * B, self.n_in), self.qweight().t()) + self.bias).reshape(
            T, B, self.n)
        o = self.init_o.expand(B, self.n) if state is None else state
        out = []
        for t in range(T):
            o = self.alpha * o + u[t]
            out.append(o)
        return torch.stack(out), o


class SRCNet(nn.Module):
    """A stack of SRC layers with an optional readout.

    SRCNet(n_in, hidden, n_out=None, constants=None, b_h=-6, learn_bh=False,
           readout_alpha=0.9)
      hidden: list of layer widths; n_out: readout size (None: no readout);
      constants: a dict of SRC constants for every layer, or a list of dicts (one per
      layer); b_h: a number, or a list (one number or tensor per layer).

    forward(x) with x float [T, B, n_in] returns a dict:
      "readout": [T, B, n_out] (only with a readout), "layers": list of [T, B, n] outputs,
      "out": the readout if any, else the last layer's outputs.
    """

    def __init__(self, n_in, hidden, n_out=None, constants=None, b_h=DEFAULT_BH,
                 learn_bh=False, readout_alpha=0.9):
        super().__init__()
        hidden = [int(n) for n in hidden]
        # What it takes to build this network again (checkpoints store it).
        self.config = dict(n_in=int(n_in), hidden=hidden, n_out=n_out,
                           constants=constants, b_h=float(b_h) if isinstance(b_h, (int, float)) else DEFAULT_BH,
                           learn_bh=bool(learn_bh), readout_alpha=float(readout_alpha))
        if not hidden:
            raise ValueError("SRCNet needs at least one SRC layer")
        if constants is None or isinstance(constants, dict):
            constants = [dict(constants or {}) for _ in hidden]
        if len(constants) != len(hidden):
            raise ValueError(f"{len(constants)} constant sets for {len(hidden)} layers")
        if not isinstance(b_h, (list, tuple)):
            b_h = [b_h] * len(hidden)
        self.n_in = int(n_in)
        layers, prev = [], self.n_in
        for n, c, b in zip(hidden, constants, b_h):
            layers.append(SRCLayer(prev, n, b_h=b, learn_bh=learn_bh, **c))
            prev = n
        self.layers = nn.ModuleList(layers)
        self.readout = Readout(prev, n_out, readout_alpha) if n_out else None

    @classmethod
    def from_config(cls, cfg):
        return cls(**cfg)

    @property
    def n_out(self):
        return self.readout.n if self.readout is not None else self.layers[-1].n

    def arch(self):
        return [self.n_in] + [l.n for l in self.layers] + ([self.readout.n] if self.readout else [])

    def engine_numerics(self, on=True):
        """on: evaluate with the engine's order of float operations (run_exact), so that
        outputs equal the C engine's bit for bit instead of to rounding (spiking dynamics
        amplify rounding differences at spike onsets). Slow; no gradients. Returns self."""
        for m in list(self.layers) + ([self.readout] if self.readout is not None else []):
            m.exact = bool(on)
        return self

    def set_qat(self, mode):
        """Fake-quantised int8 weights in every layer and the readout (mode "layer" or
        "neuron": the scale granularity; None: float32 again). Returns self."""
        if mode is not None and mode not in QUANT_MODES:
            raise ValueError(f"quantisation mode {mode!r}, expected one of {QUANT_MODES}")
        for m in list(self.layers) + ([self.readout] if self.readout is not None else []):
            m.qat = mode
        return self

    @torch.no_grad()
    def set_rest_init(self):
        """Start every layer from its no-input rest state instead of zeros (saves warm-up)."""
        for l in self.layers:
            i, h, hs = l.rest_state()
            l.init_i.copy_(i)
            l.init_h.copy_(h)
            l.init_hs.copy_(hs)

    def forward(self, x, state=None):
        if x.dim() != 3 or x.shape[2] != self.n_in:
            raise ValueError(f"input must be [T, B, {self.n_in}], got {list(x.shape)}")
        s, outs, finals = x, [], []
        for k, layer in enumerate(self.layers):
            s, st = layer(s, None if state is None else state["layers"][k])
            outs.append(s)
            finals.append(st)
        res = {"layers": outs, "state": {"layers": finals}}
        if self.readout is not None:
            o, of = self.readout(s, None if state is None else state.get("readout"))
            res["readout"] = o
            res["state"]["readout"] = of
            res["out"] = o
        else:
            res["out"] = s
        return res


def rate_encode(x, steps, warmup=0, gain=1.0, generator=None):
    """Bernoulli rate coding (engine/encode.h): x [B, n] in [0, 1] -> [warmup + steps, B, n]
    of 0/1 floats; warm-up steps are silent, then input j fires with p = min(1, gain * x_j).
    (Same distribution as the engine's spk_encode, not the same random stream.)"""
    p = (gain * x).clamp(0.0, 1.0)
    r = torch.rand((steps,) + tuple(x.shape), generator=generator, device=x.device)
    spikes = (r < p.unsqueeze(0)).to(torch.float32)
    if warmup:
        spikes = torch.cat([torch.zeros((warmup,) + tuple(x.shape)), spikes], 0)
    return spikes
