#!/usr/bin/python3
"""card: measure a Fashion-MNIST model file with PyTorch and with the C engine, and write
its card (models/zoo/NAME.md).

    /usr/bin/python3 models/card.py models/zoo/NAME.spk --checkpoint models/runs/RUN/best.pt \\
        [--notes NOTES.md] [--build build]

The C engine figure is measured exactly as tests/unit/test_zoo_accuracy.c does it (the
model's encoding via spk_encode, one xoshiro stream seeded with 20261128 over the 10,000
test images in order, argmax of the readout at the last step), through ctypes on
build/libspkengine.so; the card's `accuracy_c:` line is what that test checks. The PyTorch
figure uses the training script's evaluation (its own Bernoulli stream), so the two differ
by the noise of the encoding only.
"""
import argparse
import ctypes as C
import os
import shlex
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import train  # noqa: E402
from export import load_checkpoint, load_model  # noqa: E402

SEED = 20261128  # tests/unit/test_zoo_accuracy.c
OTHER_SEEDS = range(1, 8)  # the spread over encodings


class Event(C.Structure):
    _fields_ = [("step", C.c_uint32), ("input", C.c_uint32), ("value", C.c_float)]


class Input(C.Structure):
    _fields_ = [("steps", C.c_uint32), ("events", C.POINTER(Event)), ("n_events", C.c_size_t),
                ("dense", C.POINTER(C.c_float))]


class SpikeBuf(C.Structure):
    _fields_ = [("buf", C.POINTER(Event)), ("cap", C.c_size_t), ("len", C.c_size_t)]


class Output(C.Structure):
    _fields_ = [("spikes", SpikeBuf), ("layers", C.POINTER(SpikeBuf)),
                ("readout", C.POINTER(C.c_float)), ("readout_every_step", C.c_int),
                ("nonzero", C.POINTER(C.c_uint64))]


class Encoding(C.Structure):
    _fields_ = [("kind", C.c_int), ("steps", C.c_uint32), ("warmup_steps", C.c_uint32),
                ("gain", C.c_float), ("threshold", C.c_float)]


def engine_accuracy(model_path, build, net, seed=None):
    """(accuracy %, non-zero fraction per layer) of the C engine on the test set, the images
    encoded by spk_encode from seed (default SEED)."""
    lib = C.CDLL(os.path.join(build, "libspkengine.so"))
    vp = C.c_void_p
    lib.spk_model_load_file.argtypes = [C.c_char_p, C.POINTER(vp), C.c_char_p, C.c_size_t]
    for f, a, r in (("spk_state_create", [vp], vp), ("spk_scratch_create", [vp], vp),
                    ("spk_state_reset", [vp], None), ("spk_encode_steps", [vp], C.c_uint32),
                    ("spk_encode_max_events", [vp, C.c_uint32], C.c_size_t),
                    ("spk_rng_seed", [vp, C.c_uint64], None),
                    ("spk_model_n_out", [vp], C.c_uint32)):
        getattr(lib, f).argtypes, getattr(lib, f).restype = a, r
    lib.spk_encode.argtypes = [vp, C.POINTER(C.c_float), C.c_uint32, vp, C.POINTER(Event),
                               C.c_size_t, C.POINTER(C.c_size_t), C.c_char_p, C.c_size_t]
    lib.spk_step.argtypes = [vp, C.POINTER(Input), C.POINTER(Output), vp, C.c_char_p, C.c_size_t]
    err = C.create_string_buffer(512)
    m = vp()
    if lib.spk_model_load_file(model_path.encode(), C.byref(m), err, 512):
        raise RuntimeError(f"{model_path}: {err.value.decode()}")
    e = net.spk_meta["encoding"]
    kinds = {"none": 0, "rate": 1, "latency": 2}
    E = Encoding(kinds[e["kind"]], e["steps"], e["warmup_steps"], e.get("gain", 0.0),
                 e.get("threshold", 0.0))
    enc = C.byref(E)
    steps = lib.spk_encode_steps(enc)
    cap = lib.spk_encode_max_events(enc, net.n_in)
    n_out = lib.spk_model_n_out(m)
    nl = len(net.layers)
    last_n = net.layers[-1].n
    ev = (Event * cap)()
    sp = (Event * (last_n * steps))()
    ro = (C.c_float * n_out)()
    nz = (C.c_uint64 * nl)()
    st, sc = lib.spk_state_create(m), lib.spk_scratch_create(m)
    rng = (C.c_uint64 * 4)()
    lib.spk_rng_seed(rng, SEED if seed is None else seed)
    img = train.read_idx(os.path.join(train.DATA, "t10k-images-idx3-ubyte.gz"))
    lab = train.read_idx(os.path.join(train.DATA, "t10k-labels-idx1-ubyte.gz"))
    x = img.reshape(len(img), -1).astype(np.float32) / np.float32(255.0)
    correct = 0
    n_ev = C.c_size_t()
    for k in range(len(x)):
        xk = np.ascontiguousarray(x[k])
        rc = lib.spk_encode(enc, xk.ctypes.data_as(C.POINTER(C.c_float)), net.n_in, rng, ev, cap,
                            C.byref(n_ev), err, 512)
        if rc:
            raise RuntimeError(f"spk_encode: {err.value.decode()}")
        lib.spk_state_reset(st)
        inp = Input(steps, ev, n_ev.value, None)
        out = Output(SpikeBuf(sp, last_n * steps, 0), None, ro, 0, nz)
        if lib.spk_step(st, C.byref(inp), C.byref(out), sc, err, 512):
            raise RuntimeError(f"spk_step: {err.value.decode()}")
        correct += int(np.argmax(np.ctypeslib.as_array(ro)) == lab[k])
    frac = [nz[k] / (len(x) * steps * net.layers[k].n) for k in range(nl)]
    return 100.0 * correct / len(x), frac


def train_command(args, ckpt):
    cmd = ["/usr/bin/python3 models/train.py"]
    keys = ["steps", "warmup", "gain", "epochs", "batch", "lr", "seed", "loss_steps", "threads"]
    keys += [k for k in ("val",) if k in args]
    if args.get("qat", "none") != "none":
        keys.append("qat")
    if not args.get("init_from"):
        keys = ["hidden"] + keys + ["b_h", "readout_alpha", "init", "init_rate", "rest_init"]
    for k in keys:
        cmd.append(f"--{k.replace('_', '-')} {args[k]}")
    if args["learn_bh"]:
        cmd.append("--learn-bh")
    if args.get("init_from"):
        cmd.append(f"--init-from {args['init_from']}")
    cmd.append(f"--out {os.path.relpath(os.path.dirname(ckpt))}")
    return cmd


def main(argv=None):
    ap = argparse.ArgumentParser(description="Measure a model file and write its card.")
    ap.add_argument("model")
    ap.add_argument("--checkpoint", required=True, help="the training checkpoint it came from")
    ap.add_argument("--notes", help="a Markdown file appended to the card")
    ap.add_argument("--build", default=os.environ.get("SPIKESERVE_BUILD", "build"))
    ap.add_argument("--out", help="card path (default: the model path with .md)")
    ap.add_argument("--float-model", help="a quantised model's float32 model (its name): "
                    "test_zoo_accuracy holds the two within 0.5 points of each other")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    net = load_model(a.model)
    meta = net.spk_meta
    _, ck = load_checkpoint(a.checkpoint)
    xte, yte = train.load_fmnist(split="test")
    acc_t, frac_t = train.evaluate(net, xte, yte, meta["encoding"], ck["args"]["eval_seed"],
                                   progress=False)
    acc_c, frac_c = engine_accuracy(a.model, a.build, net)
    # The encoding is random: the same model over other encodings of the test set.
    other = [engine_accuracy(a.model, a.build, net, seed=s)[0] for s in OTHER_SEEDS]
    spread = [acc_c] + other
    args = ck["args"]
    # The chain of runs: a fine-tuning run (--init-from CHECKPOINT) follows its base run.
    chain = []
    path = a.checkpoint
    while path:
        c = ck if path == a.checkpoint else load_checkpoint(path)[1]
        last = os.path.join(os.path.dirname(path), "last.pt")
        run = load_checkpoint(last)[1] if os.path.exists(last) else c
        chain.insert(0, (path, c["args"], run))
        nxt = c["args"].get("init_from")
        path = nxt if nxt and nxt.endswith(".pt") and os.path.exists(nxt) else None
    cmds = [train_command(r_args, p) for p, r_args, _ in chain]
    wall = sum(r["wall_s"] for _, _, r in chain)
    threads = sorted({r_args.get("threads", 1) for _, r_args, _ in chain})
    threads_text = " or ".join(str(t) for t in threads) + (" thread" if threads == [1] else " threads")
    run = chain[-1][2]  # this checkpoint's own run
    L0 = net.layers[0]
    consts = ", ".join(f"{k} = {v:g}" for k, v in L0.constants().items())
    bh = torch.cat([L.b_h.detach() for L in net.layers])
    hist = [dict(r, run=k + 1) for k, (_, _, rr) in enumerate(chain) for r in rr["history"]]
    enc = meta["encoding"]
    honest = all("val_acc" in r for r in hist)
    n_val = args.get("val", 0)
    n_train = 60000 - n_val if honest else 60000
    if meta.get("int8"):
        numerics = (f"int8 weights (scale per {meta['int8']}), "
                    + ("float32 tanh" if meta["tanh"] == "float32" else "exact tanh")
                    + "; PyTorch evaluates the dequantized weights with its own tanh")
    else:
        numerics = "float32" if meta.get("tanh", "exact") == "exact" else "float32 weights, float32 tanh"
    if honest:
        selection = (f"shipped: the checkpoint with the best validation accuracy (epoch "
                     f"{ck['epoch']} of the last run, {ck['val_acc']:.2f} %) on the last "
                     f"{n_val:,} of the 60,000 training images, held out from training; the "
                     f"test set measured once, at the end")
    else:
        selection = (f"shipped: the best test accuracy checkpoint (epoch {ck['epoch']} of the "
                     f"last run): selected on the test set, which inflates the figure")
    lines = [
        f"# {meta['name']} (version {meta['version']})",
        "",
        meta["description"] or "A Fashion-MNIST classifier.",
        "",
        "| | |", "|---|---|",
        f"| architecture | {' - '.join(map(str, net.arch()))} ({len(net.layers)} SRC layers + "
        f"readout, alpha_o = {net.readout.alpha:g}) |",
        f"| parameters | {sum(p.numel() for p in net.parameters())} |",
        f"| file | `{os.path.basename(a.model)}`, {os.path.getsize(a.model)} bytes |",
        f"| SRC constants | {consts} (every layer) |",
        f"| b_h | {'learned' if args['learn_bh'] else 'fixed'}: mean {bh.mean():.3f}, "
        f"range [{bh.min():.3f}, {bh.max():.3f}] |",
        f"| initial state | {'the no-input rest state of each layer' if chain[0][1]['rest_init'] else 'zeros'} |",
        f"| encoding | {enc['kind']}: p = min(1, {enc.get('gain', 1):g} * pixel) per step, "
        f"{enc['steps']} steps after {enc['warmup_steps']} silent warm-up steps |",
        f"| labels | {', '.join(meta['labels'])} |",
        f"| prediction | argmax of the readout at the last step ({enc['steps'] + enc['warmup_steps']}) |",
        f"| numerics | {numerics} |",
        f"| training | {len(hist)} epochs of {n_train:,} images"
        + (f" in {len(chain)} runs (the last fine-tunes the best checkpoint of the one "
           f"before)" if len(chain) > 1 else "")
        + f", {wall / 60:.1f} min wall-clock on {threads_text} of a shared 2-core machine; "
        f"{selection} |",
        f"| test accuracy, PyTorch | {acc_t:.2f} % (10,000 test images) |",
        f"| test accuracy, C engine | {acc_c:.2f} % (10,000 test images, spk_encode seed {SEED}) |",
        f"| same, over {len(spread)} encodings of the test set | mean {np.mean(spread):.2f} %, "
        f"sd {np.std(spread, ddof=1):.2f}, range {min(spread):.2f} to {max(spread):.2f} % "
        f"(spk_encode seeds {SEED}, {OTHER_SEEDS.start} to {OTHER_SEEDS.stop - 1}) |",
        f"| non-zero outputs per layer (C engine) | "
        + ", ".join(f"{100 * f:.2f} %" for f in frac_c) + " of (neuron, step) pairs |",
        f"| non-zero outputs per layer (PyTorch) | "
        + ", ".join(f"{100 * f:.2f} %" for f in frac_t) + " |",
        "",
        "Machine-readable (tests/unit/test_zoo_accuracy.c checks `accuracy_c` to 0.5 points"
        + (", and this model against its float model's" if a.float_model else "") + "):",
        "",
        f"    accuracy_c: {acc_c:.2f}",
        f"    accuracy_torch: {acc_t:.2f}",
    ] + ([f"    float_model: {a.float_model}"] if a.float_model else []) + [
        "",
        "## Training command",
        "",
        "```sh",
        "\n".join(" \\\n    ".join(c) for c in cmds),
        f"/usr/bin/python3 models/export.py {os.path.relpath(a.checkpoint)} {a.model} "
        f"--name {meta['name']}"
        + (f" --version {meta['version']}" if meta["version"] != 1 else "")
        + (f" --description {shlex.quote(meta['description'])}" if meta["description"] else "")
        + (f" --int8 {meta['int8']}" if meta.get("int8") else "")
        + (" --tanh float32" if meta.get("tanh") == "float32" else ""),
        f"/usr/bin/python3 models/card.py {a.model} --checkpoint {os.path.relpath(a.checkpoint)}"
        + (f" --notes {a.notes}" if a.notes else "")
        + (f" --float-model {a.float_model}" if a.float_model else ""),
        "```",
        "",
        "## " + ("Validation" if honest else "Test") + " accuracy by epoch (PyTorch)",
        "",
        "| run | epoch | train loss | train acc | " + ("validation acc" if honest else "test acc")
        + " | non-zero per layer | wall (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in hist:
        lines.append(f"| {r['run']} | {r['epoch']} | {r['train_loss']:.4f} | {r['train_acc']:.2f} | "
                     f"{r['val_acc'] if honest else r['test_acc']:.2f} | "
                     + " ".join(f"{100 * f:.1f}%" for f in r["nonzero"]) + f" | {r['wall_s']:.0f} |")
    if a.notes:
        with open(a.notes) as f:
            lines += ["", f.read().rstrip()]
    out = a.out or os.path.splitext(a.model)[0] + ".md"
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {out}: torch {acc_t:.2f}%, engine {acc_c:.2f}%", file=sys.stderr)


if __name__ == "__main__":
    main()
