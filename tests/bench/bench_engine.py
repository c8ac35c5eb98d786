#!/usr/bin/env python3
"""bench_engine.py: `make bench-engine`. Runs the C engine benchmark (BUILD/bench/bench_engine)
and the same model on the same spikes in PyTorch (models/srcnet.py, eager, torch.no_grad),
and prints one table with the ratios. Never fails on timing: it exits non-zero only when
something could not run.

  bench_engine.py --build build [--quick] [--model FILE]

The model: models/zoo's 784-256-256-10 model when it exists, else a random one with the
default constants (tests/bench/bench_model.py). Inputs: Fashion-MNIST test images rate-coded
by the engine's spk_encode with the model's encoding; the C side writes the spike sequences
to BUILD/bench/inputs.bin and PyTorch reads the same spikes from there.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_model  # noqa: E402

IMAGES = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
THREADS = 2  # the C side's many-session threads (this machine has 2 cores)


def parse_kv(text):
    """'key value' lines (and 'key v key v ...' lines) of the C benchmark into a dict."""
    kv = {}
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] in ("encoding", "model", "many_sessions"):
            kv[parts[0]] = " ".join(parts[1:])
        elif len(parts) == 2:
            kv[parts[0]] = parts[1]
        elif parts and parts[0] == "activity":
            for k in range(1, len(parts) - 1, 2):
                kv[parts[k]] = parts[k + 1]
        elif parts and parts[0] == "rows_per_step":
            for k in range(0, len(parts) - 1, 2):
                kv[parts[k]] = parts[k + 1]
    return kv


def read_inputs(path):
    """inputs.bin -> dense float32 [T, nseq, n_in] (events at the same (step, input) add)."""
    with open(path, "rb") as f:
        magic, nseq, T, n_in = np.frombuffer(f.read(16), np.uint32)
        assert magic == 0x314B5053, "inputs.bin: bad magic"
        x = np.zeros((T, nseq, n_in), np.float32)
        for k in range(nseq):
            (n,) = np.frombuffer(f.read(4), np.uint32)
            ev = np.frombuffer(f.read(12 * int(n)), np.uint32).reshape(-1, 3)
            val = ev[:, 2].copy().view(np.float32)
            np.add.at(x[:, k, :], (ev[:, 0], ev[:, 1]), val)
    return x


def fmt_ns(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.0f} ns"


def torch_bench(model, workdir, T, quick):
    """PyTorch (SRCNet, eager, no_grad) on the spikes of workdir/inputs.bin: returns
    (results, agree, nz_torch, nseq). results[(name, threads)]: b1_seq / b1_step /
    b1_step_p99 in ns per step, b256_seq / b256_step in session-steps/s."""
    import torch

    x = torch.from_numpy(read_inputs(os.path.join(workdir, "inputs.bin")))
    nseq = x.shape[1]
    net = bench_model.load_torch(model)
    reps1 = 5 if quick else 20

    def fwd(xb, state=None):
        return net(xb, state)

    with torch.no_grad():
        # Same network, same spikes? C's readout after T steps vs PyTorch's: with the
        # engine's order of float operations (SRCNet.engine_numerics, slow: a subset of
        # the sequences) it must be equal; with the fast path (the one timed) rounding
        # differences grow at spike onsets, so only the activity is comparable.
        torch.set_num_threads(2)
        out = fwd(x)
        nz_torch = [float((l > 0).float().sum() / (T * nseq)) for l in out["layers"]]
        c_ro = np.fromfile(os.path.join(workdir, "readout.bin"), np.float32)
        agree = None
        if "readout" in out and c_ro.size:
            t_ro = out["readout"][-1].numpy()
            c_ro = c_ro.reshape(t_ro.shape)
            agree = {"fast": float(np.abs(t_ro - c_ro).max()), "n_exact": 0}
            if hasattr(net, "engine_numerics"):
                n_ex = min(nseq, 16 if quick else 64)
                net.engine_numerics(True)
                e_ro = fwd(x[:, :n_ex])["readout"][-1].numpy()
                net.engine_numerics(False)
                agree["exact"] = float(np.abs(e_ro - c_ro[:n_ex]).max())
                agree["n_exact"] = n_ex

        # Each figure in wall-clock time and in process CPU time (all of torch's threads):
        # on a busy machine the wall clock counts other processes' time too.
        clock = lambda: (time.perf_counter_ns(), time.process_time_ns())  # noqa: E731
        results = {}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            # Batch 1, whole sequence per forward (SRCNet does W s for all T steps in one
            # matmul, then the element-wise recurrence step by step): ns per step.
            fwd(x[:, :1])
            ts, cpu = [], 0
            for k in range(reps1):
                xb = x[:, k % nseq:k % nseq + 1].contiguous()
                w0, c0 = clock()
                fwd(xb)
                w1, c1 = clock()
                ts.append((w1 - w0) / T)
                cpu += c1 - c0
            results[("b1_seq", threads)] = float(np.median(ts))
            results[("b1_seq_cpu", threads)] = cpu / (reps1 * T)
            # Batch 1, one step per forward with the state carried (a streaming session).
            ts, cpu = [], 0
            for k in range(max(1, reps1 // 4)):
                xb = x[:, k % nseq:k % nseq + 1].contiguous()
                st = None
                for t in range(T):
                    w0, c0 = clock()
                    o = fwd(xb[t:t + 1], st)
                    w1, c1 = clock()
                    ts.append(w1 - w0)
                    cpu += c1 - c0
                    st = o["state"]
            results[("b1_step", threads)] = float(np.median(ts))
            results[("b1_step_p99", threads)] = float(np.percentile(ts, 99))
            results[("b1_step_cpu", threads)] = cpu / len(ts)
            # Batch 256, whole sequence: session-steps/s (wall) and per CPU-second.
            B = min(256, nseq)
            xb = x[:, :B].contiguous()
            fwd(xb)
            wt, ct = [], []
            for _ in range(2 if quick else 5):
                w0, c0 = clock()
                fwd(xb)
                w1, c1 = clock()
                wt.append(w1 - w0)
                ct.append(c1 - c0)
            results[("b256_seq", threads)] = B * T / (min(wt) * 1e-9)
            results[("b256_seq_cpu", threads)] = B * T / (min(ct) * 1e-9)
            # Batch 256, one step per forward with the state carried.
            st = None
            w0, c0 = clock()
            for t in range(T):
                st = fwd(xb[t:t + 1], st)["state"]
            w1, c1 = clock()
            results[("b256_step", threads)] = B * T / ((w1 - w0) * 1e-9)
            results[("b256_step_cpu", threads)] = B * T / ((c1 - c0) * 1e-9)

    return results, agree, nz_torch, nseq


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--model", help="model file (default: zoo model, else a random one)")
    ap.add_argument("--quick", action="store_true", help="small counts (a smoke run)")
    ap.add_argument("--sessions", type=int, default=10000)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--q8-model", help="int8 model file (default: models/zoo/fmnist-q8.spk if "
                    "it exists; 'none': skip)")
    args = ap.parse_args()

    import torch

    workdir = os.path.join(args.build, "bench")
    os.makedirs(workdir, exist_ok=True)
    if args.model:
        model, kind = args.model, "given"
    else:
        model, kind = bench_model.choose_model(workdir)
    exe = os.path.join(args.build, "bench", "bench_engine")
    if not os.path.exists(exe):
        sys.exit(f"bench_engine.py: {exe} missing (make {exe})")

    T = args.steps
    sessions = 1000 if args.quick else args.sessions
    cmd = [exe, model, IMAGES, workdir, "--steps", str(T), "--sessions", str(sessions),
           "--seqs", "256", "--threads", str(THREADS), "--group", "256",
           "--single-steps", "2000" if args.quick else "20000", "--reps", "1" if args.quick else "3"]
    load0 = os.getloadavg()[0]
    print(f"# load average before: {load0:.2f} (2 cores; other work on the machine skews timings)")
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.time()
    res = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    sys.stdout.write(res.stdout)
    if res.returncode != 0:
        sys.exit(f"bench_engine.py: {exe} exited {res.returncode}")
    c = parse_kv(res.stdout)
    print(f"# C side took {time.time() - t0:.1f} s", flush=True)
    zoo_q8 = os.path.join(HERE, "..", "..", "models", "zoo", "fmnist-q8.spk")
    q8_model = args.q8_model or (zoo_q8 if os.path.exists(zoo_q8) else None)
    if q8_model == "none":
        q8_model = None
    cq = None
    if q8_model:
        qdir = os.path.join(workdir, "q8")
        os.makedirs(qdir, exist_ok=True)
        qcmd = [exe, q8_model, IMAGES, qdir] + cmd[4:]
        print("$ " + " ".join(qcmd), flush=True)
        res = subprocess.run(qcmd, stdout=subprocess.PIPE, text=True)
        sys.stdout.write(res.stdout)
        if res.returncode != 0:
            sys.exit(f"bench_engine.py: {exe} exited {res.returncode} on {q8_model}")
        cq = parse_kv(res.stdout)

    results, agree, nz_torch, nseq = torch_bench(model, workdir, T, args.quick)

    def best(key, fastest):
        """The torch figure over 1 and 2 threads most favourable to PyTorch."""
        vals = [results[(key, th)] for th in (1, 2)]
        return min(vals) if fastest == "time" else max(vals)

    f = lambda k: float(c[k])  # noqa: E731
    cm, cp99, c_cpu = f("single_median_ns"), f("single_p99_ns"), f("single_cpu_mean_ns")
    rm, r_cpu = f("read_median_ns"), f("read_cpu_mean_ns")
    b1 = {k: best(k, "time") for k in ("b1_seq", "b1_step", "b1_seq_cpu", "b1_step_cpu")}
    b1_p99 = best("b1_step_p99", "time")
    b256 = {k: best(k, "rate") for k in ("b256_seq", "b256_step", "b256_seq_cpu",
                                           "b256_step_cpu")}
    b1_wall, b1_cpu = min(b1["b1_seq"], b1["b1_step"]), min(b1["b1_seq_cpu"], b1["b1_step_cpu"])
    b256_wall = max(b256["b256_seq"], b256["b256_step"])
    b256_cpu = max(b256["b256_seq_cpu"], b256["b256_step_cpu"])
    lock, lock_cpu = f("many_lockstep_rate"), f("many_lockstep_cpu_rate")
    batch, batch_cpu = f("many_batch_rate"), f("many_batch_cpu_rate")
    lock1 = f("many_lockstep_rate_1thread")
    grp, grp_cpu = f("many_group_rate"), f("many_group_cpu_rate")

    W = 100
    print()
    print("=" * W)
    print(f"engine benchmark: model {model} ({kind}), kernels {c.get('kernels')}")
    print(f"  inputs: {nseq} Fashion-MNIST test images rate-coded by spk_encode "
          f"({c.get('encoding', '?')}), {T} steps per sequence")
    acts = [f"input events {f('input_events_per_step'):.1f}"]
    for l in range(len(nz_torch)):
        key = f"layer{l}_nonzero_per_step"
        if key in c:
            acts.append(f"layer {l + 1} non-zero {f(key):.1f} (torch {nz_torch[l]:.1f})")
    print("  activity per step: " + ", ".join(acts))
    if agree and agree["n_exact"]:
        print(f"  C vs PyTorch readout after {T} steps: max |diff| {agree['exact']:.2e} on "
              f"{agree['n_exact']} sequences with SRCNet.engine_numerics (the engine's\n  float "
              f"order); {agree['fast']:.2e} on {nseq} with the fast path timed below (rounding "
              "differences grow\n  at spike onsets)")
    elif agree:
        print(f"  C vs PyTorch readout after {T} steps, {nseq} sequences: max |diff| "
              f"{agree['fast']:.2e}")
    print(f"  torch {torch.__version__}, eager, no_grad, 1 and 2 threads tried: the better is "
          "shown; C: 2 threads")
    print(f"  load average (1 min) before / after: {load0:.2f} / {os.getloadavg()[0]:.2f}; "
          "'cpu' rows use CPU time, which\n  a busy machine skews much less than the wall clock")
    print("-" * W)
    print(f"{'measure':60s} {'C engine':>12s} {'PyTorch':>12s} {'ratio':>10s}")
    print("-" * W)

    def row(name, a, b="", r=""):
        print(f"{name:60s} {a:>12s} {b:>12s} {r:>10s}")

    M = lambda v: f"{v / 1e6:.3f} M"  # noqa: E731
    row("one session, per step: C median | torch b1 whole-seq median", fmt_ns(cm),
        fmt_ns(b1["b1_seq"]), f"{b1['b1_seq'] / cm:.0f}x")
    row("one session, per step: C median | torch b1 step-by-step median", fmt_ns(cm),
        fmt_ns(b1["b1_step"]), f"{b1['b1_step'] / cm:.0f}x")
    row("one session, per step: C p99 | torch b1 step-by-step p99", fmt_ns(cp99),
        fmt_ns(b1_p99), f"{b1_p99 / cp99:.0f}x")
    row("one session, per step, cpu: C mean | torch b1 best", fmt_ns(c_cpu), fmt_ns(b1_cpu),
        f"{b1_cpu / c_cpu:.0f}x")
    row(f"one session, {T} steps per call, per step (C, median call / {T})",
        fmt_ns(f("single_batch_ns_per_step")))
    row(f"{sessions} sessions x {T} steps: session-steps/s, lock-step | b256",
        M(lock), M(b256_wall), f"{lock / b256_wall:.1f}x")
    row(f"{sessions} sessions x {T} steps: {T} steps per call | b256", M(batch),
        M(b256_wall), f"{batch / b256_wall:.1f}x")
    row("  per CPU-second: lock-step | b256", M(lock_cpu), M(b256_cpu),
        f"{lock_cpu / b256_cpu:.1f}x")
    row(f"  per CPU-second: {T} steps per call | b256", M(batch_cpu), M(b256_cpu),
        f"{batch_cpu / b256_cpu:.1f}x")
    row("  lock-step on 2 threads over 1 thread (wall)", f"{lock / lock1:.2f}x")
    row("  lock-step with the group step on (wall) | b256", M(grp), M(b256_wall),
        f"{grp / b256_wall:.1f}x")
    row("  lock-step with the group step on, per CPU-second | b256", M(grp_cpu), M(b256_cpu),
        f"{grp_cpu / b256_cpu:.1f}x")
    row("one-session step vs reading its weight rows: median", fmt_ns(cm), fmt_ns(rm),
        f"{cm / rm:.2f}x")
    row("one-session step vs reading its weight rows: cpu mean", fmt_ns(c_cpu), fmt_ns(r_cpu),
        f"{c_cpu / r_cpu:.2f}x")
    if cq:
        q = lambda k: float(cq[k])  # noqa: E731
        qm, qc, qr, qrc = (q("single_median_ns"), q("single_cpu_mean_ns"), q("read_median_ns"),
                           q("read_cpu_mean_ns"))
        print("-" * W)
        print(f"int8 model {os.path.relpath(q8_model)} ({cq.get('model', '?')}); PyTorch: the "
              "float model above")
        row("int8, one session, per step: C median | torch b1 best", fmt_ns(qm), fmt_ns(b1_wall),
            f"{b1_wall / qm:.0f}x")
        row("int8, one session, per step, cpu: C mean | torch b1 best", fmt_ns(qc),
            fmt_ns(b1_cpu), f"{b1_cpu / qc:.0f}x")
        row(f"int8, {sessions} sessions: session-steps/s, lock-step | b256",
            M(q("many_lockstep_rate")), M(b256_wall), f"{q('many_lockstep_rate') / b256_wall:.1f}x")
        row("  per CPU-second: lock-step | b256", M(q("many_lockstep_cpu_rate")), M(b256_cpu),
            f"{q('many_lockstep_cpu_rate') / b256_cpu:.1f}x")
        row("  group step on (wall) | b256", M(q("many_group_rate")), M(b256_wall),
            f"{q('many_group_rate') / b256_wall:.1f}x")
        row("  group step on, per CPU-second | b256", M(q("many_group_cpu_rate")), M(b256_cpu),
            f"{q('many_group_cpu_rate') / b256_cpu:.1f}x")
        row(f"int8 step vs reading its int8 rows ({q('bytes_per_step') / 1024:.1f} KiB): median",
            fmt_ns(qm), fmt_ns(qr), f"{qm / qr:.2f}x")
        row("int8 step vs reading its int8 rows: cpu mean", fmt_ns(qc), fmt_ns(qrc),
            f"{qc / qrc:.2f}x")
    print("-" * W)

    def verdict(v, goal, higher):
        ok = v >= goal if higher else v <= goal
        return "met" if ok else f"missed by {goal / v if higher else v / goal:.2f}x"

    print("goals (PyTorch: its faster variant and thread count):")
    g = (b1_wall / cm, b1_cpu / c_cpu)
    print(f"  one-session step >= 100x faster than PyTorch batch 1: wall {g[0]:.0f}x "
          f"({verdict(g[0], 100, True)}), cpu {g[1]:.0f}x ({verdict(g[1], 100, True)})")
    g = (lock / b256_wall, lock_cpu / b256_cpu)
    print(f"  many-session throughput >= 10x PyTorch batch 256: wall {g[0]:.1f}x "
          f"({verdict(g[0], 10, True)}), cpu {g[1]:.1f}x ({verdict(g[1], 10, True)})")
    g = (cm / rm, c_cpu / r_cpu)
    print(f"  one-session step <= 3x the time to read its weight rows: median {g[0]:.2f}x "
          f"({verdict(g[0], 3, False)}), cpu {g[1]:.2f}x ({verdict(g[1], 3, False)})")
    g = (max(lock, grp) / b256_wall, max(lock_cpu, grp_cpu) / b256_cpu)
    print(f"  issue 14: float32 many sessions (better of group step on/off) >= 6x PyTorch b256: "
          f"wall {g[0]:.1f}x ({verdict(g[0], 6, True)}), cpu {g[1]:.1f}x "
          f"({verdict(g[1], 6, True)})")
    if cq:
        g = (b1_wall / qm, b1_cpu / qc)
        print(f"  issue 14: int8 one session >= 100x PyTorch b1 (float model): wall {g[0]:.0f}x "
              f"({verdict(g[0], 100, True)}), cpu {g[1]:.0f}x ({verdict(g[1], 100, True)})")
        ql = max(q("many_lockstep_rate"), q("many_group_rate"))
        qlc = max(q("many_lockstep_cpu_rate"), q("many_group_cpu_rate"))
        g = (ql / b256_wall, qlc / b256_cpu)
        print(f"  issue 14: int8 many sessions >= 10x PyTorch b256: wall {g[0]:.1f}x "
              f"({verdict(g[0], 10, True)}), cpu {g[1]:.1f}x ({verdict(g[1], 10, True)})")
        g = (qm / qr, qc / qrc)
        print(f"  issue 14: int8 one-session step <= 2x reading its int8 rows: median {g[0]:.2f}x "
              f"({verdict(g[0], 2, False)}), cpu {g[1]:.2f}x ({verdict(g[1], 2, False)})")
    # What the reads alone allow: a step that did nothing but read its weight rows (the
    # baseline below), on one core; and on both cores (each has its own L2) for many sessions.
    read_many = THREADS * 1e9 / r_cpu
    print(f"  ceiling set by the weight reads alone (a step that only read its rows): one session "
          f"{b1_wall / rm:.0f}x PyTorch b1,\n  many sessions {M(read_many)} session-steps/s on "
          f"{THREADS} cores = {read_many / b256_wall:.1f}x PyTorch b256 (no update, no overhead)")
    print("how the weight-read time is estimated: the same steps are replayed recording every "
          "layer's outputs;\n  a step reads one row of layer 1's W^T per input event, one row "
          "of layer l's per non-zero output of\n  layer l-1 and one readout row per non-zero "
          f"output of the last layer ({f('rows_per_step'):.1f} rows, "
          f"{f('bytes_per_step') / 1024:.1f} KiB per\n  step on average). A plain vectorised "
          "loop (16-float vectors, 4 accumulators, AVX-512/AVX2/SSE picked at\n  run time) "
          "sums exactly those rows step by step, timed like the engine's steps; the ratio is "
          "the\n  engine's cost over a pure read of the same weights from the same cache level "
          "(the rest is the\n  per-neuron update, the output scan and the call's overhead).")
    print("=" * W)


if __name__ == "__main__":
    main()
