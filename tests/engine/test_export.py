#!/usr/bin/python3
"""models/export.py: import(export(net)) gives the same network bit for bit, and a bad
checkpoint or a network that does not fit the schema gets a clear error (ExportError with
the field and the numbers), from the functions and from the command line.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "models"))
from export import ExportError, load_checkpoint, load_model, save_model  # noqa: E402
from srcnet import CONSTANTS, SRCNet  # noqa: E402

n_checks = n_failed = 0


def ok(cond, name, detail=""):
    global n_checks, n_failed
    n_checks += 1
    print(f"{'' if cond else 'not '}ok {n_checks} - {name}")
    if not cond:
        n_failed += 1
        if detail:
            print("#   " + str(detail).replace("\n", "\n#   "))
    return cond


def raises(fn, *words):
    """The ExportError message of fn(), checked to contain every word; None if no error."""
    try:
        fn()
    except ExportError as e:
        msg = str(e)
        return msg if all(w in msg for w in words) else f"WRONG MESSAGE: {msg}"
    except Exception as e:  # any other exception is a failure of the exporter
        return f"WRONG EXCEPTION {type(e).__name__}: {e}"
    return None


def expect_error(name, fn, *words):
    msg = raises(fn, *words)
    ok(msg is not None and not msg.startswith("WRONG"), f"{name}: {msg}",
       f"expected an ExportError containing {words}, got {msg!r}")


def net_example(seed=3):
    torch.manual_seed(seed)
    consts = [dict(alpha=0.8, rho=2.5, r=1.5, r_s=-6.0, z_hyp=0.85, z_dep=0.1, theta=0.4),
              dict()]
    net = SRCNet(6, [5, 4], 3, constants=consts, b_h=[-5.5, -6.0], readout_alpha=0.95)
    net.set_rest_init()
    with torch.no_grad():
        net.layers[0].init_i.uniform_(-1, 1)
        net.readout.init_o.uniform_(-1, 1)
    return net


def main():
    torch.set_num_threads(1)
    tmp = tempfile.mkdtemp()
    p1, p2 = os.path.join(tmp, "a.spk"), os.path.join(tmp, "b.spk")
    net = net_example()
    enc = {"kind": "rate", "steps": 20, "warmup_steps": 3, "gain": 0.75}
    labels = ["a", "b", "c"]
    save_model(net, p1, "tiny-1", 7, labels, enc, "a test model")
    back = load_model(p1)
    sd, sb = net.state_dict(), back.state_dict()
    ok(set(sd) == set(sb) and all(torch.equal(sd[k], sb[k]) for k in sd),
       "round trip: every parameter and initial state is identical")
    ok(all(L.constants() == M.constants() for L, M in zip(net.layers, back.layers))
       and net.readout.alpha == back.readout.alpha, "round trip: constants identical")
    ok(back.spk_meta == {"name": "tiny-1", "version": 7, "labels": labels,
                         "encoding": enc, "description": "a test model", "int8": None,
                         "tanh": "exact"},
       "round trip: name, version, labels, encoding, description", back.spk_meta)
    save_model(back, p2, "tiny-1", 7, labels, enc, "a test model")
    ok(open(p1, "rb").read() == open(p2, "rb").read(), "export(import(file)) == file, byte for byte")
    x = (torch.rand(40, 2, 6) < 0.5).float()
    with torch.no_grad():
        ok(torch.equal(net(x)["readout"], back(x)["readout"]), "the imported net computes the same")
    # An imported model can be trained again.
    back2 = load_model(p1, learn_bh=True)
    loss = back2(x)["readout"][-1].sum()
    loss.backward()
    ok(back2.layers[0].weight.grad is not None and back2.layers[0].b_h.grad is not None,
       "the imported net has gradients (fine-tuning)")

    # int8 (issue 14): the file holds int8 values and scales; import gives the dequantized
    # weights, which are what QAT's fake quantisation computes; export(import) is the file.
    for mode in ("neuron", "layer"):
        q1, q2 = os.path.join(tmp, f"q1-{mode}.spk"), os.path.join(tmp, f"q2-{mode}.spk")
        save_model(net, q1, "tiny-q8", 1, labels, enc, "", int8=mode, tanh="float32")
        qb = load_model(q1)
        ok(qb.spk_meta["int8"] == mode and qb.spk_meta["tanh"] == "float32",
           f"int8 ({mode}): the numerics come back", qb.spk_meta)
        save_model(qb, q2, "tiny-q8", 1, labels, enc, "", int8=mode, tanh="float32")
        ok(open(q1, "rb").read() == open(q2, "rb").read(),
           f"int8 ({mode}): export(import(file)) == file, byte for byte")
        net.set_qat(mode)
        with torch.no_grad():
            same = all(torch.equal(L.qweight(), M.weight) for L, M in
                       zip(list(net.layers) + [net.readout], list(qb.layers) + [qb.readout]))
            ok(same and torch.equal(net(x)["readout"], qb(x)["readout"]),
               f"int8 ({mode}): the imported weights are QAT's fake-quantised ones")
        net.set_qat(None)
        qf = os.path.getsize(q1)
        ok(qf < os.path.getsize(p1), f"int8 ({mode}): the file is smaller ({qf} bytes vs "
           f"{os.path.getsize(p1)})")
    # QAT: gradients pass straight through the fake quantisation
    net.set_qat("neuron")
    net.zero_grad()
    net(x)["readout"][-1].sum().backward()
    ok(net.layers[0].weight.grad is not None and net.layers[0].weight.grad.abs().sum() > 0,
       "QAT: the float weights get gradients (straight-through)")
    net.set_qat(None)

    # Schema errors from the exporter.
    bad = net_example()
    bad.layers[1].weight = torch.nn.Parameter(torch.zeros(4, 6))
    expect_error("wrong weight shape", lambda: save_model(bad, p2, "x"),
                 "layers[1].weight", "[4, 6]", "[4, 5]")
    bad = net_example()
    with torch.no_grad():
        bad.layers[0].weight[2, 1] = float("nan")
    expect_error("NaN weight", lambda: save_model(bad, p2, "x"), "layers[0].weight", "non-finite")
    bad = net_example()
    bad.layers[0].rho = float("inf")
    expect_error("infinite constant", lambda: save_model(bad, p2, "x"), "layers[0].rho")
    bad = net_example()
    bad.layers[1].n_in = 7
    expect_error("layer sizes", lambda: save_model(bad, p2, "x"), "layers[1].n_in", "7")
    expect_error("bad name", lambda: save_model(net, p2, "no spaces"), "name")
    expect_error("bad version", lambda: save_model(net, p2, "x", 0), "version")
    expect_error("labels count", lambda: save_model(net, p2, "x", 1, ["a"]), "labels", "1", "3")
    expect_error("encoding kind", lambda: save_model(net, p2, "x", 1, None, {"kind": "morse"}),
                 "encoding.kind")
    expect_error("encoding steps", lambda: save_model(net, p2, "x", 1, None,
                                                      {"kind": "rate", "steps": 0}),
                 "encoding.steps")
    ok(not os.path.exists(p2 + ".tmp"), "no half-written file is left behind")

    # Checkpoint errors.
    ck_ok = os.path.join(tmp, "ok.pt")
    torch.save({"config": net.config, "state_dict": net.state_dict()}, ck_ok)
    n2, _ = load_checkpoint(ck_ok)
    ok(torch.equal(n2.layers[1].weight, net.layers[1].weight), "a good checkpoint loads")
    expect_error("missing checkpoint", lambda: load_checkpoint(os.path.join(tmp, "nope.pt")),
                 "nope.pt", "no such checkpoint")
    junk = os.path.join(tmp, "junk.pt")
    with open(junk, "wb") as f:
        f.write(b"this is not a checkpoint")
    expect_error("garbage checkpoint", lambda: load_checkpoint(junk), "not a PyTorch checkpoint")
    nokey = os.path.join(tmp, "nokey.pt")
    torch.save({"state_dict": net.state_dict()}, nokey)
    expect_error("checkpoint without config", lambda: load_checkpoint(nokey), "config")
    sd = net.state_dict()
    sd["layers.1.weight"] = torch.zeros(4, 9)
    shape = os.path.join(tmp, "shape.pt")
    torch.save({"config": net.config, "state_dict": sd}, shape)
    expect_error("checkpoint with a wrong shape", lambda: load_checkpoint(shape),
                 "layers.1.weight", "[4, 9]", "[4, 5]")
    # Bad model files for the importer.
    data = open(p1, "rb").read()
    trunc = os.path.join(tmp, "trunc.spk")
    with open(trunc, "wb") as f:
        f.write(data[:len(data) // 2])
    expect_error("truncated model file", lambda: load_model(trunc), "trunc.spk")

    # The command line reports the error and exits 1.
    r = subprocess.run([sys.executable, os.path.join(ROOT, "models", "export.py"), junk,
                        os.path.join(tmp, "out.spk"), "--name", "x"],
                       capture_output=True, text=True)
    ok(r.returncode == 1 and "not a PyTorch checkpoint" in r.stderr,
       "export.py CHECKPOINT: a clear error and exit status 1", r.stderr)
    shutil.rmtree(tmp)
    print(f"1..{n_checks}")
    return 1 if n_failed else 0


if __name__ == "__main__":
    sys.exit(main())
