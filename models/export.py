#!/usr/bin/python3
"""export: SRCNet <-> model file (protobuf spikeserve.Model, proto/model.proto).

    save_model(net, path, name, version=1, labels=None, encoding=None, description="")
    load_model(path) -> SRCNet      (net.spk_meta holds name, version, labels, encoding)
    load_checkpoint(path) -> (SRCNet, checkpoint dict)   (a models/train.py checkpoint)

Command line (a training checkpoint to a model file):

    /usr/bin/python3 models/export.py models/runs/NAME/best.pt models/zoo/NAME.spk \\
        --name NAME [--version 1] [--description TEXT] [--int8 neuron|layer] [--tanh float32]

--int8 stores every SRC layer's and the readout's weights as int8 with float32 scales (one
per output neuron or one per layer; srcnet.quantize, the quantiser of QAT fine-tuning), and
--tanh float32 names the faster float32 tanh as the model's numerics (proto Model.tanh).

The exporter checks the network against the schema and the loader's limits
(engine/model.h) before writing anything, and refuses with an ExportError that names the
field, e.g. "layers[1].weight: shape [100, 256], expected [100, 100] (n x n_in)". The
file is written to PATH.tmp and renamed, so a failed export never leaves a half file.
An imported model can be trained again: load_model() gives back the same network
(weights, b_h, constants, initial states, readout) bit for bit.
"""
import argparse
import math
import os
import re
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "proto"))
import model_pb2  # noqa: E402
from srcnet import CONSTANTS, QUANT_MODES, SRCNet, dequantize, quant_scales, quantize  # noqa: E402

# Limits of the C loader (engine/model.h).
MAX_LAYERS = 16
MAX_NEURONS = 65536
MAX_INPUTS = 1 << 20
MAX_PARAMS = 64 << 20
MAX_NAME = 64
MAX_LABEL = 128
NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

FMNIST_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"]

_KINDS = {"none": model_pb2.Encoding.NONE, "rate": model_pb2.Encoding.RATE,
          "latency": model_pb2.Encoding.LATENCY}


class ExportError(ValueError):
    """The network, checkpoint or file does not fit the model schema."""


def _tensor(field, t, shape):
    if not torch.is_tensor(t):
        raise ExportError(f"{field}: not a tensor ({type(t).__name__})")
    if list(t.shape) != list(shape):
        raise ExportError(f"{field}: shape {list(t.shape)}, expected {list(shape)}")
    t = t.detach().to("cpu", torch.float32).contiguous()
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).nonzero()[0][0]) if t.dim() == 1 else \
            tuple(int(v) for v in (~torch.isfinite(t)).nonzero()[0])
        raise ExportError(f"{field}: non-finite value at {bad}")
    return t.reshape(-1).tolist()


def _const(field, v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ExportError(f"{field}: {v!r} is not a number") from None
    if not math.isfinite(f):
        raise ExportError(f"{field}: {f} is not finite")
    return f


def _encoding(enc):
    e = model_pb2.Encoding()
    if enc is None:
        return e
    if not isinstance(enc, dict):
        raise ExportError(f"encoding: expected a dict, got {type(enc).__name__}")
    kind = str(enc.get("kind", "none")).lower()
    if kind not in _KINDS:
        raise ExportError(f"encoding.kind: {kind!r}, expected one of {sorted(_KINDS)}")
    e.kind = _KINDS[kind]
    unknown = set(enc) - {"kind", "steps", "warmup_steps", "gain", "threshold"}
    if unknown:
        raise ExportError(f"encoding: unknown field(s) {sorted(unknown)}")
    steps = enc.get("steps", 0)
    warm = enc.get("warmup_steps", 0)
    for f, v in (("steps", steps), ("warmup_steps", warm)):
        if not isinstance(v, int) or v < 0 or v >= 1 << 32:
            raise ExportError(f"encoding.{f}: {v!r} is not an unsigned 32-bit integer")
    if kind != "none" and steps < 1:
        raise ExportError(f"encoding.steps: {steps}, must be >= 1 for {kind} coding")
    e.steps, e.warmup_steps = steps, warm
    e.gain = _const("encoding.gain", enc.get("gain", 1.0 if kind == "rate" else 0.0))
    if kind == "rate" and not e.gain > 0:
        raise ExportError(f"encoding.gain: {e.gain}, must be > 0")
    e.threshold = _const("encoding.threshold", enc.get("threshold", 0.0))
    return e


def _decode_encoding(e):
    kind = {v: k for k, v in _KINDS.items()}.get(e.kind, "none")
    d = {"kind": kind, "steps": e.steps, "warmup_steps": e.warmup_steps}
    if kind == "rate":
        d["gain"] = e.gain
    if kind == "latency":
        d["threshold"] = e.threshold
    return d


def _q8(field, mod, mode):
    """(int8 bytes, scales list) of a layer's weight: the values the model file it came from
    held when they still give this weight exactly (so an int8 file is re-exported bit for
    bit), else quantised afresh."""
    w = mod.weight.detach().float()
    got = getattr(mod, "q8_file", None)
    if got is not None:
        q, sc = got
        if (len(sc) == 1) == (mode == "layer") and torch.equal(dequantize(q, sc), w):
            return q.numpy().tobytes(), sc.tolist()
    sc = quant_scales(w, mode)
    if not bool(torch.isfinite(sc).all()):
        raise ExportError(f"{field}: non-finite weights")
    return quantize(w, sc).numpy().tobytes(), sc.tolist()


def to_proto(net, name, version=1, labels=None, encoding=None, description="", int8=None,
             tanh="exact"):
    """Build (and check) the spikeserve.Model message of an SRCNet. int8: None (float32
    weights) or "neuron" / "layer" (int8 weights, a scale per output neuron / per layer);
    tanh: "exact" or "float32"."""
    if int8 is not None and int8 not in QUANT_MODES:
        raise ExportError(f"int8: {int8!r}, expected None or one of {list(QUANT_MODES)}")
    if tanh not in ("exact", "float32"):
        raise ExportError(f"tanh: {tanh!r}, expected 'exact' or 'float32'")
    if not isinstance(net, SRCNet):
        raise ExportError(f"net: expected an SRCNet, got {type(net).__name__}")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ExportError(f"name: {name!r} must be 1..{MAX_NAME} characters of [A-Za-z0-9._-]")
    if not isinstance(version, int) or not 1 <= version < 1 << 32:
        raise ExportError(f"version: {version!r}, must be an integer >= 1")
    m = model_pb2.Model(name=name, version=version, n_in=net.n_in,
                        description=description or "")
    if not 1 <= net.n_in <= MAX_INPUTS:
        raise ExportError(f"n_in: {net.n_in} not in [1, {MAX_INPUTS}]")
    if not 1 <= len(net.layers) <= MAX_LAYERS:
        raise ExportError(f"layers: {len(net.layers)} layers, the limit is {MAX_LAYERS}")
    prev, params = net.n_in, 0
    for k, L in enumerate(net.layers):
        f = f"layers[{k}]"
        if L.n_in != prev:
            raise ExportError(f"{f}.n_in: {L.n_in}, expected {prev} (the previous layer's n)")
        if not 1 <= L.n <= MAX_NEURONS:
            raise ExportError(f"{f}.n: {L.n} not in [1, {MAX_NEURONS}]")
        pl = m.layers.add(n_in=L.n_in, n=L.n)
        wv = _tensor(f"{f}.weight", L.weight, (L.n, L.n_in))
        if int8:
            pl.weights_q8, sc = _q8(f"{f}.weight", L, int8)
            pl.weight_scales.extend(sc)
        else:
            pl.weights.extend(wv)
        pl.b_h.extend(_tensor(f"{f}.b_h", L.b_h, (L.n,)))
        for c in CONSTANTS:
            setattr(pl, c, _const(f"{f}.{c}", getattr(L, c)))
        if not pl.rho > 0:
            raise ExportError(f"{f}.rho: {pl.rho}, must be > 0")
        for src, dst in (("init_i", pl.init_i), ("init_h", pl.init_h), ("init_hs", pl.init_hs)):
            v = _tensor(f"{f}.{src}", getattr(L, src), (L.n,))
            if any(v):  # all zeros: leave empty (the loader's default)
                dst.extend(v)
        params += L.n * L.n_in
        prev = L.n
    n_out = prev
    if net.readout is not None:
        R = net.readout
        if R.n_in != prev:
            raise ExportError(f"readout.n_in: {R.n_in}, expected {prev} (the last layer's n)")
        if not 1 <= R.n <= MAX_NEURONS:
            raise ExportError(f"readout.n: {R.n} not in [1, {MAX_NEURONS}]")
        m.readout.n_in, m.readout.n = R.n_in, R.n
        wv = _tensor("readout.weight", R.weight, (R.n, R.n_in))
        if int8:
            m.readout.weights_q8, sc = _q8("readout.weight", R, int8)
            m.readout.weight_scales.extend(sc)
        else:
            m.readout.weights.extend(wv)
        m.readout.bias.extend(_tensor("readout.bias", R.bias, (R.n,)))
        m.readout.alpha = _const("readout.alpha", R.alpha)
        v = _tensor("readout.init_o", R.init_o, (R.n,))
        if any(v):
            m.readout.init_o.extend(v)
        params += R.n * R.n_in
        n_out = R.n
    if params > MAX_PARAMS:
        raise ExportError(f"weights: {params} parameters, the limit is {MAX_PARAMS}")
    labels = list(labels or [])
    if labels and len(labels) != n_out:
        raise ExportError(f"labels: {len(labels)} labels for {n_out} outputs")
    for k, lab in enumerate(labels):
        if not isinstance(lab, str) or not 1 <= len(lab.encode()) <= MAX_LABEL:
            raise ExportError(f"labels[{k}]: {lab!r} must be a string of 1..{MAX_LABEL} bytes")
    m.labels.extend(labels)
    m.encoding.CopyFrom(_encoding(encoding))
    m.tanh = model_pb2.Model.TANH_FLOAT32 if tanh == "float32" else model_pb2.Model.TANH_EXACT
    return m


def save_model(net, path, name, version=1, labels=None, encoding=None, description="",
               int8=None, tanh="exact"):
    """Write net as a model file; returns the number of bytes written."""
    data = to_proto(net, name, version, labels, encoding, description, int8,
                    tanh).SerializeToString()
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return len(data)


def _vec(field, vals, n, default=0.0):
    if len(vals) == 0:
        return torch.full((n,), default)
    if len(vals) != n:
        raise ExportError(f"{field}: {len(vals)} values, expected {n}")
    return torch.from_numpy(np.asarray(vals, dtype=np.float32))


def _weights(field, P, mod):
    """A layer's weight [n, n_in] from the file: float32 values, or int8 values times their
    scales (then kept as mod.q8_file, so that export writes the same bytes again).
    Returns the int8 mode ("neuron" / "layer") or None."""
    nw = P.n * P.n_in
    if len(P.weights_q8):
        if len(P.weights):
            raise ExportError(f"{field}: both weights and weights_q8")
        if len(P.weights_q8) != nw:
            raise ExportError(f"{field}.weights_q8: {len(P.weights_q8)} bytes, expected {nw} "
                              f"({P.n} x {P.n_in})")
        if len(P.weight_scales) not in (1, P.n):
            raise ExportError(f"{field}.weight_scales: {len(P.weight_scales)} values, expected "
                              f"1 or {P.n}")
        q = torch.from_numpy(np.frombuffer(P.weights_q8, dtype=np.int8).copy()).view(P.n, P.n_in)
        sc = torch.from_numpy(np.asarray(P.weight_scales, dtype=np.float32))
        mod.weight.copy_(dequantize(q, sc))
        mod.q8_file = (q, sc)
        return "layer" if len(sc) == 1 else "neuron"
    if len(P.weights) != nw:
        raise ExportError(f"{field}.weights: {len(P.weights)} values, expected "
                          f"{nw} ({P.n} x {P.n_in})")
    mod.weight.copy_(torch.from_numpy(np.asarray(P.weights, dtype=np.float32)).view(P.n, P.n_in))
    return None


def from_proto(m, learn_bh=False):
    """An SRCNet from a spikeserve.Model message (checked like the C loader does). Its
    spk_meta also says the numerics: "int8" (None, "neuron" or "layer") and "tanh"."""
    if not m.layers:
        raise ExportError("layers: the model has no SRC layer")
    consts = [{c: getattr(L, c) for c in CONSTANTS} for L in m.layers]
    has_ro = m.HasField("readout") and m.readout.n > 0
    net = SRCNet(m.n_in, [L.n for L in m.layers], m.readout.n if has_ro else None,
                 constants=consts, learn_bh=learn_bh,
                 readout_alpha=m.readout.alpha if has_ro else 0.9)
    prev = m.n_in
    modes = []
    with torch.no_grad():
        for k, (L, P) in enumerate(zip(net.layers, m.layers)):
            f = f"layers[{k}]"
            if P.n_in != prev:
                raise ExportError(f"{f}.n_in: {P.n_in}, expected {prev}")
            modes.append(_weights(f, P, L))
            L.b_h.copy_(_vec(f"{f}.b_h", P.b_h, P.n))
            L.init_i.copy_(_vec(f"{f}.init_i", P.init_i, P.n))
            L.init_h.copy_(_vec(f"{f}.init_h", P.init_h, P.n))
            L.init_hs.copy_(_vec(f"{f}.init_hs", P.init_hs, P.n))
            prev = P.n
        if has_ro:
            R, P = net.readout, m.readout
            if P.n_in != prev:
                raise ExportError(f"readout.n_in: {P.n_in}, expected {prev}")
            modes.append(_weights("readout", P, R))
            R.bias.copy_(_vec("readout.bias", P.bias, P.n))
            R.init_o.copy_(_vec("readout.init_o", P.init_o, P.n))
    if len(set(modes)) > 1:
        raise ExportError(f"weights: mixed float32 / int8 layers ({modes}) are not supported here")
    net.spk_meta = {"name": m.name, "version": m.version, "labels": list(m.labels),
                    "encoding": _decode_encoding(m.encoding), "description": m.description,
                    "int8": modes[0] if modes else None,
                    "tanh": "float32" if m.tanh == model_pb2.Model.TANH_FLOAT32 else "exact"}
    return net


def load_model(path, learn_bh=False):
    """Read a model file back into an SRCNet (ready to evaluate or to train again)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ExportError(f"{path}: cannot read: {e.strerror}") from None
    m = model_pb2.Model()
    try:
        m.ParseFromString(data)
    except Exception as e:  # google.protobuf.message.DecodeError
        raise ExportError(f"{path}: not a spikeserve.Model file ({e})") from None
    return from_proto(m, learn_bh)


def load_checkpoint(path):
    """A models/train.py checkpoint as (SRCNet, checkpoint dict), with clear errors."""
    if not os.path.exists(path):
        raise ExportError(f"{path}: no such checkpoint")
    try:
        ck = torch.load(path, map_location="cpu")
    except Exception as e:
        raise ExportError(f"{path}: not a PyTorch checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ck, dict):
        raise ExportError(f"{path}: checkpoint is a {type(ck).__name__}, expected a dict")
    for key in ("config", "state_dict"):
        if key not in ck:
            raise ExportError(f"{path}: checkpoint has no '{key}' (not written by models/train.py)")
    try:
        net = SRCNet.from_config(ck["config"])
    except (TypeError, ValueError) as e:
        raise ExportError(f"{path}: config: {e}") from None
    sd = ck["state_dict"]
    want = net.state_dict()
    missing = sorted(set(want) - set(sd))
    extra = sorted(set(sd) - set(want))
    if missing or extra:
        raise ExportError(f"{path}: state_dict does not match the config: missing {missing}, "
                          f"unexpected {extra}")
    for k, v in sd.items():
        if not torch.is_tensor(v) or list(v.shape) != list(want[k].shape):
            got = list(v.shape) if torch.is_tensor(v) else type(v).__name__
            raise ExportError(f"{path}: state_dict[{k!r}]: shape {got}, expected "
                              f"{list(want[k].shape)}")
    net.load_state_dict(sd)
    return net, ck


def main(argv=None):
    ap = argparse.ArgumentParser(description="Export a models/train.py checkpoint to a model file.")
    ap.add_argument("checkpoint")
    ap.add_argument("out", help="model file to write (e.g. models/zoo/NAME.spk)")
    ap.add_argument("--name", required=True)
    ap.add_argument("--version", type=int, default=1)
    ap.add_argument("--description", default="")
    ap.add_argument("--int8", choices=list(QUANT_MODES),
                    help="int8 weights, a scale per output neuron or per layer")
    ap.add_argument("--tanh", choices=["exact", "float32"], default="exact")
    a = ap.parse_args(argv)
    try:
        net, ck = load_checkpoint(a.checkpoint)
        qat = ck.get("args", {}).get("qat", "none")
        if qat != "none" and a.int8 != qat:
            raise ExportError(f"{a.checkpoint}: trained with --qat {qat}; export it with "
                              f"--int8 {qat}")
        n = save_model(net, a.out, a.name, a.version, ck.get("labels", FMNIST_LABELS),
                       ck.get("encoding"), a.description, a.int8, a.tanh)
    except ExportError as e:
        print(f"export: {e}", file=sys.stderr)
        return 1
    print(f"wrote {a.out}: {n} bytes, {' -> '.join(map(str, net.arch()))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
