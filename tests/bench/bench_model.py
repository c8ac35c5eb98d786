"""bench_model: the model the benchmarks run, and its PyTorch twin.

choose_model(): models/zoo's 784-256-256-10 Fashion-MNIST model when it exists, otherwise a
random 784-256-256-10 model with the default SRC constants (SPEC.md section 1), written once
with proto/model_pb2.py. Its weights are scaled so that every layer spikes on rate-coded
Fashion-MNIST images (about 9 % and 7 % of the neurons of layers 1 and 2 are non-zero per
step, and over 90 % of them fire at least once in 100 steps): a benchmark of a silent
network would measure nothing but the per-neuron update.

load_torch(path): the same model as a models/srcnet.py SRCNet (through models/export.py's
load_model when it exists, else by copying the protobuf fields into an SRCNet here).
"""
import glob
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "proto"))
sys.path.insert(0, os.path.join(ROOT, "models"))

import model_pb2  # noqa: E402

ARCH = (784, 256, 256, 10)
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
          "Bag", "Ankle boot"]


def read_model(path):
    m = model_pb2.Model()
    with open(path, "rb") as f:
        m.ParseFromString(f.read())
    return m


def arch_of(m):
    a = [m.n_in] + [l.n for l in m.layers]
    if m.readout.n:
        a.append(m.readout.n)
    return tuple(a)


def zoo_model():
    """$SPIKESERVE_BENCH_MODEL when set (e.g. models/zoo/fmnist-q8.spk for `make bench-server`
    with the int8 model), else the first models/zoo/*.spk with float32 weights whose
    architecture is 784-256-256-10, or None."""
    if os.environ.get("SPIKESERVE_BENCH_MODEL"):
        return os.environ["SPIKESERVE_BENCH_MODEL"]
    for p in sorted(glob.glob(os.path.join(ROOT, "models", "zoo", "*.spk"))):
        try:
            m = read_model(p)
            if arch_of(m) == ARCH and not any(len(L.weights_q8) for L in m.layers):
                return p
        except Exception:  # a file being written right now, or not a model: skip it
            continue
    return None


def _rest_state(b_h, steps=300):
    """Rest state with no input (i = 0) of a layer with the default constants."""
    h = np.zeros_like(b_h)
    hs = np.zeros_like(b_h)
    for _ in range(steps):
        hn = np.tanh(2.0 * h - 7.0 * hs + b_h).astype(np.float32)
        z = np.where(hn > 0.5, 0.0, 0.9).astype(np.float32)
        hs = (z * hs + (1.0 - z) * h).astype(np.float32)
        h = hn
    return h, hs


def write_random_model(path, seed=1):
    rng = np.random.default_rng(seed)
    m = model_pb2.Model(name="bench-random", version=1, n_in=ARCH[0],
                        description="random 784-256-256-10 SRC model for the benchmarks")
    scale = [(0.005, 0.08), (0.01, 0.3)]  # (mean, std) of W per layer, see the docstring
    n_in = ARCH[0]
    for (mu, sd), n in zip(scale, ARCH[1:3]):
        w = rng.normal(mu, sd, size=(n, n_in)).astype(np.float32)
        b_h = np.full(n, -6.0, np.float32)
        h0, hs0 = _rest_state(b_h)
        m.layers.add(n_in=n_in, n=n, weights=w.ravel().tolist(), b_h=b_h.tolist(), alpha=0.9,
                     rho=3.0, r=2.0, r_s=-7.0, z_hyp=0.9, z_dep=0.0, theta=0.5,
                     init_i=np.zeros(n, np.float32).tolist(), init_h=h0.tolist(),
                     init_hs=hs0.tolist())
        n_in = n
    wo = rng.normal(0.0, 0.1, size=(ARCH[3], n_in)).astype(np.float32)
    m.readout.n_in = n_in
    m.readout.n = ARCH[3]
    m.readout.weights.extend(wo.ravel().tolist())
    m.readout.bias.extend([0.0] * ARCH[3])
    m.readout.alpha = 0.9
    m.labels.extend(LABELS)
    m.encoding.kind = model_pb2.Encoding.RATE
    m.encoding.steps = 100
    m.encoding.warmup_steps = 0
    m.encoding.gain = 0.5
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(m.SerializeToString())
    os.replace(tmp, path)
    return path


def choose_model(workdir):
    """(path, kind): the zoo model if present, else the random one (written on demand)."""
    p = zoo_model()
    if p:
        return p, "models/zoo (trained)"
    p = os.path.join(workdir, "bench-random.spk")
    if not os.path.exists(p):
        write_random_model(p)
    return p, "random (tests/bench/bench_model.py)"


def load_torch(path):
    """The model as an SRCNet in eval mode."""
    try:
        from export import load_model  # models/export.py, when it exists
    except ImportError:
        load_model = None
    if load_model is not None:
        net = load_model(path)
        net.eval()
        return net
    import torch
    from srcnet import SRCNet, CONSTANTS

    m = read_model(path)
    consts = [{k: getattr(l, k) for k in CONSTANTS} for l in m.layers]
    net = SRCNet(m.n_in, [l.n for l in m.layers], m.readout.n or None, constants=consts,
                 readout_alpha=m.readout.alpha if m.readout.n else 0.9)
    t = lambda v, *shape: torch.tensor(np.asarray(v, np.float32).reshape(shape))  # noqa: E731
    with torch.no_grad():
        for l, pl in zip(net.layers, m.layers):
            l.weight.copy_(t(pl.weights, pl.n, pl.n_in))
            l.b_h.copy_(t(pl.b_h, pl.n))
            for name, field in (("init_i", pl.init_i), ("init_h", pl.init_h),
                                ("init_hs", pl.init_hs)):
                if len(field):
                    getattr(l, name).copy_(t(field, pl.n))
        if net.readout is not None:
            r = m.readout
            net.readout.weight.copy_(t(r.weights, r.n, r.n_in))
            net.readout.bias.copy_(t(r.bias, r.n))
            if len(r.init_o):
                net.readout.init_o.copy_(t(r.init_o, r.n))
    net.eval()
    return net
