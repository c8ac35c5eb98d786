#!/usr/bin/python3
"""Train an SRC network on Fashion-MNIST (rate-coded pixels) and keep the best checkpoint.

    /usr/bin/python3 models/train.py --hidden 256,256 --steps 25 --epochs 8 \\
        --out models/runs/fmnist-256 [--resume]

Input: each pixel x in [0, 1] fires with p = min(1, gain * x) per step for --steps steps,
after --warmup silent steps (the engine's RATE encoding, engine/encode.h). The network's
prediction is argmax of the readout at the last step, and that is what the test accuracy
measures. The loss is the cross-entropy of the readout averaged over the last --loss-steps
steps (1: the last step only).

Initialisation (--init fire, the default): layer by layer, on one batch of training data,
W is scaled so that the layer's fraction of non-zero outputs reaches --init-rate. With the
reference constants (b_h = -6) a neuron only fires when its input current is large, and
nn.Linear's default scale leaves every layer after the first silent, so nothing propagates
and nothing learns; see models/zoo/*.md. The layers also start from their no-input rest
state (--rest-init), so no warm-up steps are needed to settle them.

Model selection is honest: the last --val images (default 6,000) of the 60,000 training
images are held out as a validation split (never trained on; the training set is the first
54,000), the checkpoint kept as OUT/best.pt is the one with the best validation accuracy,
and the test set is measured once, at the end of the run, on that checkpoint (its
"test_acc"). Earlier runs of this script selected on the test set; see models/zoo/*.md.

Quantisation-aware fine-tuning (--qat layer|neuron, with --init-from): the forward pass
uses fake-quantised int8 weights (W = round(W / scale) * scale, scale = max |W| / 127 per
layer or per output neuron), the gradient passes straight through to the float weights;
export.py --int8 then stores the int8 values and scales (the same quantiser).

Reproducible: the run is a function of --seed (shuffling and encoding use generators seeded
from (seed, epoch)), and a --resume from the checkpoint of epoch k continues exactly as the
uninterrupted run would. Checkpoints: OUT/last.pt after every epoch, OUT/best.pt for the
best validation accuracy; OUT/log.jsonl has one line per epoch (and a last line with the
test accuracy of best.pt).
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srcnet import SRCNet, rate_encode  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
          "Bag", "Ankle boot"]


def read_idx(path):
    """An IDX file (gzip or plain) as a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        d = f.read()
    if len(d) < 4 or d[0] != 0 or d[1] != 0 or d[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    nd = d[3]
    dims = [int.from_bytes(d[4 + 4 * k:8 + 4 * k], "big") for k in range(nd)]
    off = 4 + 4 * nd
    if len(d) - off != int(np.prod(dims)):
        raise ValueError(f"{path}: {len(d) - off} bytes of data, expected {int(np.prod(dims))}")
    return np.frombuffer(d, np.uint8, offset=off).reshape(dims)


def load_fmnist(root=DATA, split="train"):
    pre = "train" if split == "train" else "t10k"
    x = read_idx(os.path.join(root, f"{pre}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(root, f"{pre}-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / 255.0)
    return x, torch.from_numpy(y.astype(np.int64))


class Progress:
    """A plain one-line progress bar on stderr."""

    def __init__(self, total, label, stream=sys.stderr):
        self.total, self.label, self.stream = total, label, stream
        self.t0 = time.time()
        self.last = 0.0

    def update(self, k, **vals):
        now = time.time()
        if k < self.total and now - self.last < 0.5:
            return
        self.last = now
        frac = k / max(1, self.total)
        bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
        el = now - self.t0
        eta = el / frac - el if frac > 0 else 0.0
        v = " ".join(f"{key} {val}" for key, val in vals.items())
        self.stream.write(f"\r{self.label} [{bar}] {k}/{self.total} {v} "
                          f"{el:.0f}s eta {eta:.0f}s  ")
        if k >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def encoding_of(args):
    return {"kind": "rate", "steps": args.steps, "warmup_steps": args.warmup, "gain": args.gain}


def encode(x, enc, gen):
    return rate_encode(x, enc["steps"], enc["warmup_steps"], enc["gain"], generator=gen)


@torch.no_grad()
def evaluate(net, x, y, enc, seed, batch=500, progress=True):
    """Accuracy (%) of argmax readout at the last step, and the fraction of non-zero
    outputs per layer."""
    net.eval()
    gen = torch.Generator().manual_seed(seed)
    correct, nz, cnt = 0, None, 0
    bar = Progress(len(x), "  test") if progress else None
    for k in range(0, len(x), batch):
        xb = encode(x[k:k + batch], enc, gen)
        r = net(xb)
        correct += (r["out"][-1].argmax(1) == y[k:k + batch]).sum().item()
        f = [(s > 0).sum().item() for s in r["layers"]]
        nz = f if nz is None else [a + b for a, b in zip(nz, f)]
        cnt += xb.shape[0] * xb.shape[1]
        if bar:
            bar.update(min(k + batch, len(x)), acc=f"{100.0 * correct / min(k + batch, len(x)):.2f}%")
    net.train()
    frac = [n / (cnt * l.n) for n, l in zip(nz, net.layers)]
    return 100.0 * correct / len(x), frac


@torch.no_grad()
def fire_init(net, x, enc, rate, gen, lo=0.25, hi=256.0, iters=14):
    """Scale each layer's W (in order) so that its fraction of non-zero outputs on the
    batch x is `rate` (bisection on log scale). Returns the scales."""
    s = encode(x, enc, gen)
    scales = []
    for layer in net.layers:
        w0 = layer.weight.detach().clone()
        a, b = math.log(lo), math.log(hi)
        for _ in range(iters):
            m = 0.5 * (a + b)
            layer.weight.copy_(w0 * math.exp(m))
            out, _ = layer(s)
            if (out > 0).float().mean().item() < rate:
                a = m
            else:
                b = m
        g = math.exp(0.5 * (a + b))
        layer.weight.copy_(w0 * g)
        s, _ = layer(s)
        scales.append(g)
    return scales


@torch.no_grad()
def neuron_init(net, x, enc, rate, gen, lo=-9.0, hi=-3.0, iters=12):
    """Per neuron, set b_h (and the rest state that follows from it) so that every neuron
    fires on a fraction `rate` of (image, step) pairs of the batch x: no neuron starts dead
    or saturated. Layer by layer, a vectorised bisection. Returns (min, max) b_h per layer."""
    s = encode(x, enc, gen)
    ranges = []
    for layer in net.layers:
        a = torch.full((layer.n,), lo)
        b = torch.full((layer.n,), hi)
        for _ in range(iters):
            m = 0.5 * (a + b)
            layer.b_h.copy_(m)
            _set_rest(layer)
            out, _ = layer(s)
            low = (out > 0).float().mean(dim=(0, 1)) < rate
            a = torch.where(low, m, a)
            b = torch.where(low, b, m)
        layer.b_h.copy_(0.5 * (a + b))
        _set_rest(layer)
        s, _ = layer(s)
        ranges.append((float(layer.b_h.min()), float(layer.b_h.max())))
    return ranges


def _set_rest(layer):
    i, h, hs = layer.rest_state()
    layer.init_i.copy_(i)
    layer.init_h.copy_(h)
    layer.init_hs.copy_(hs)


def build(args):
    hidden = [int(v) for v in args.hidden.split(",") if v]
    net = SRCNet(784, hidden, 10, b_h=args.b_h, learn_bh=args.learn_bh,
                 readout_alpha=args.readout_alpha)
    if args.rest_init:
        net.set_rest_init()
    return net


def lr_at(args, epoch, k, n):
    """Cosine decay from lr to lr * 0.05 over the run, one value per batch."""
    p = (epoch + k / n) / args.epochs
    return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", default="256,256", help="hidden SRC layer widths, e.g. 100,100,100,100")
    ap.add_argument("--steps", type=int, default=25, help="steps the image is presented")
    ap.add_argument("--warmup", type=int, default=0, help="silent steps before the image")
    ap.add_argument("--gain", type=float, default=1.0, help="rate coding: p = min(1, gain * x)")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--b-h", type=float, default=-6.0, help="initial b_h of every neuron")
    ap.add_argument("--learn-bh", action="store_true", help="learn b_h too")
    ap.add_argument("--readout-alpha", type=float, default=0.9)
    ap.add_argument("--loss-steps", type=int, default=5,
                    help="cross-entropy averaged over the readout of the last K steps")
    ap.add_argument("--init", choices=["fire", "fire-bh", "default"], default="fire")
    ap.add_argument("--init-rate", type=float, default=0.05,
                    help="--init fire: target fraction of non-zero outputs per layer")
    ap.add_argument("--rest-init", type=int, default=1,
                    help="1: layers start from their no-input rest state; 0: zeros")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-limit", type=int, default=0, help="use only N training images")
    ap.add_argument("--test-limit", type=int, default=0, help="evaluate on N test images")
    ap.add_argument("--val", type=int, default=6000,
                    help="hold out the last N training images for checkpoint selection")
    ap.add_argument("--qat", choices=["none", "layer", "neuron"], default="none",
                    help="fake-quantised int8 weights (scale per layer or per output neuron)")
    ap.add_argument("--eval-seed", type=int, default=12345)
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--out", required=True, help="run directory (checkpoints, log)")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    ap.add_argument("--init-from", metavar="MODEL",
                    help="fine-tune: start from a model file (.spk) or a checkpoint (.pt)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    xtr, ytr = load_fmnist(args.data, "train")
    xte, yte = load_fmnist(args.data, "test")
    if not 0 < args.val < len(xtr):
        sys.exit(f"train: --val {args.val}: must be in [1, {len(xtr) - 1}]")
    xva, yva = xtr[-args.val:], ytr[-args.val:]  # the validation split: never trained on
    xtr, ytr = xtr[:-args.val], ytr[:-args.val]
    if args.train_limit:
        xtr, ytr = xtr[:args.train_limit], ytr[:args.train_limit]
    if args.test_limit:
        xte, yte = xte[:args.test_limit], yte[:args.test_limit]
    enc = encoding_of(args)

    if args.init_from:
        # Fine-tuning: the network (sizes, constants, weights, initial states) comes from a
        # model file or a checkpoint; --hidden and the init options are not used.
        from export import ExportError, load_checkpoint, load_model
        try:
            if args.init_from.endswith(".pt"):
                net = load_checkpoint(args.init_from)[0]
                if args.learn_bh and not isinstance(net.layers[0].b_h, torch.nn.Parameter):
                    sys.exit("train: --learn-bh with a checkpoint trained without it")
            else:
                net = load_model(args.init_from, learn_bh=args.learn_bh)
        except ExportError as e:
            sys.exit(f"train: --init-from: {e}")
        if net.n_in != 784 or net.n_out != 10 or net.readout is None:
            sys.exit(f"train: --init-from: {args.init_from} is not a 784-input, 10-class model")
        args.hidden = ",".join(str(L.n) for L in net.layers)
        args.readout_alpha = net.readout.alpha
    else:
        net = build(args)
    if args.qat != "none":
        net.set_qat(args.qat)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    start, best, hist, wall = 0, -1.0, [], 0.0
    last = os.path.join(args.out, "last.pt")
    if args.resume:
        if not os.path.exists(last):
            sys.exit(f"train: --resume: {last} does not exist")
        ck = torch.load(last)
        if ck["args"]["hidden"] != args.hidden:
            sys.exit(f"train: --resume: checkpoint has --hidden {ck['args']['hidden']}, "
                     f"not {args.hidden}")
        net.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        start, best, hist, wall = ck["epoch"], ck["best_acc"], ck["history"], ck["wall_s"]
        print(f"resumed from {last} at epoch {start} (best {best:.2f}%)", file=sys.stderr)
    elif not args.init_from:
        g = torch.Generator().manual_seed(args.seed * 1000 + 999)
        idx = torch.randperm(len(xtr), generator=g)[:512]
        if args.init in ("fire", "fire-bh"):
            sc = fire_init(net, xtr[idx], enc, args.init_rate, g)
            print("fire init: W scales " + ", ".join(f"{v:.2f}" for v in sc), file=sys.stderr)
        if args.init == "fire-bh":
            if not args.rest_init:
                sys.exit("train: --init fire-bh needs --rest-init 1")
            rg = neuron_init(net, xtr[idx], enc, args.init_rate, g)
            print("b_h per neuron: " + ", ".join(f"[{a:.2f}, {b:.2f}]" for a, b in rg),
                  file=sys.stderr)
        acc, frac = evaluate(net, xva[:1000], yva[:1000], enc, args.eval_seed, progress=False)
        print(f"init: acc {acc:.2f}% (1000 validation images), non-zero "
              + " ".join(f"{f:.4f}" for f in frac), file=sys.stderr)

    n = len(xtr)
    nb = (n + args.batch - 1) // args.batch
    for epoch in range(start, args.epochs):
        t0 = time.time()
        g = torch.Generator().manual_seed(args.seed * 1000 + epoch)
        perm = torch.randperm(n, generator=g)
        bar = None if args.quiet else Progress(nb, f"epoch {epoch + 1}/{args.epochs}")
        tl, tc, tn = 0.0, 0, 0
        for k in range(nb):
            for pg in opt.param_groups:
                pg["lr"] = lr_at(args, epoch, k, nb)
            sel = perm[k * args.batch:(k + 1) * args.batch]
            xb, yb = encode(xtr[sel], enc, g), ytr[sel]
            o = net(xb)["out"]
            K = max(1, min(args.loss_steps, o.shape[0]))
            last_o = o[-K:]
            loss = F.cross_entropy(last_o.reshape(-1, o.shape[2]), yb.repeat(K))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tl += loss.item() * len(sel)
            tc += (o[-1].argmax(1) == yb).sum().item()
            tn += len(sel)
            if bar:
                bar.update(k + 1, loss=f"{tl / tn:.4f}", acc=f"{100.0 * tc / tn:.2f}%")
        acc, frac = evaluate(net, xva, yva, enc, args.eval_seed, progress=not args.quiet)
        wall += time.time() - t0
        rec = {"epoch": epoch + 1, "train_loss": tl / tn, "train_acc": 100.0 * tc / tn,
               "val_acc": acc, "nonzero": frac, "wall_s": round(wall, 1)}
        hist.append(rec)
        print(json.dumps(rec), file=sys.stderr)
        with open(os.path.join(args.out, "log.jsonl"), "a") as f:
            f.write(json.dumps(rec) + "\n")
        ck = {"args": vars(args), "config": net.config, "encoding": enc, "labels": LABELS,
              "state_dict": net.state_dict(), "optimizer": opt.state_dict(),
              "epoch": epoch + 1, "best_acc": max(best, acc), "val_acc": acc,
              "nonzero": frac, "history": hist, "wall_s": wall}
        if acc > best:
            best = acc
            torch.save(ck, os.path.join(args.out, "best.pt.tmp"))
            os.replace(os.path.join(args.out, "best.pt.tmp"), os.path.join(args.out, "best.pt"))
        torch.save(ck, last + ".tmp")
        os.replace(last + ".tmp", last)
    # The test set, once: the selected checkpoint (best validation accuracy).
    bp = os.path.join(args.out, "best.pt")
    ck = torch.load(bp)
    if "test_acc" not in ck:
        net.load_state_dict(ck["state_dict"])
        acc, _ = evaluate(net, xte, yte, enc, args.eval_seed, progress=not args.quiet)
        ck["test_acc"] = acc
        torch.save(ck, bp + ".tmp")
        os.replace(bp + ".tmp", bp)
        with open(os.path.join(args.out, "log.jsonl"), "a") as f:
            f.write(json.dumps({"selected_epoch": ck["epoch"], "val_acc": ck["val_acc"],
                                "test_acc": acc}) + "\n")
    print(f"done: best validation accuracy {best:.2f}% (epoch {ck['epoch']}), its test "
          f"accuracy {ck['test_acc']:.2f}%, {wall:.0f}s of training", file=sys.stderr)


if __name__ == "__main__":
    main()
