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

        results = {}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            # Batch 1, whole sequence per forward (SRCNet does W s for all T steps in one
            # matmul, then the element-wise recurrence step by step).
            fwd(x[:, :1])
            ts = []
            for k in range(reps1):
                xb = x[:, k % nseq:k % nseq + 1].contiguous()
                t1 = time.perf_counter_ns()
                fwd(xb)
                ts.append((time.perf_counter_ns() - t1) / T)
            results[("b1_seq", threads)] = float(np.median(ts))
            # Batch 1, one step per forward with the state carried (a streaming session).
            ts = []
            for k in range(max(1, reps1 // 4)):
                xb = x[:, k % nseq:k % nseq + 1].contiguous()
                st = None
                for t in range(T):
                    t1 = time.perf_counter_ns()
                    o = fwd(xb[t:t + 1], st)
                    ts.append(time.perf_counter_ns() - t1)
                    st = o["state"]
            results[("b1_step", threads)] = float(np.median(ts))
            results[("b1_step_p99", threads)] = float(np.percentile(ts, 99))
            # Batch 256, whole sequence.
            B = min(256, nseq)
            xb = x[:, :B].contiguous()
            fwd(xb)
            ts = []
            for _ in range(2 if quick else 5):
                t1 = time.perf_counter_ns()
                fwd(xb)
                ts.append(time.perf_counter_ns() - t1)
            results[("b256_seq", threads)] = B * T / (min(ts) * 1e-9)
            # Batch 256, one step per forward with the state carried.
            st = None
            t1 = time.perf_counter_ns()
            for t in range(T):
                st = fwd(xb[t:t + 1], st)["state"]
            results[("b256_step", threads)] = B * T / ((time.perf_counter_ns() - t1) * 1e-9)

    return results, agree, nz_torch, nseq


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--model", help="model file (default: zoo model, else a random one)")
    ap.add_argument("--quick", action="store_true", help="small counts (a smoke run)")
    ap.add_argument("--sessions", type=int, default=10000)
    ap.add_argument("--steps", type=int, default=100)
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
           "--seqs", "256", "--threads", "2", "--group", "256",
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

    results, agree, nz_torch, nseq = torch_bench(model, workdir, T, args.quick)

    def best_time(key):
        return min((results[(key, th)], th) for th in (1, 2))

    def best_rate(key):
        return max((results[(key, th)], th) for th in (1, 2))

    # ---- the table ----
    cm = float(c["single_median_ns"])
    cp99 = float(c["single_p99_ns"])
    cbatch = float(c["single_batch_ns_per_step"])
    rm = float(c["read_median_ns"])
    many_lock = float(c["many_lockstep_rate"])
    many_batch = float(c["many_batch_rate"])
    many_1t = float(c["many_lockstep_rate_1thread"])
    b1s, b1s_th = best_time("b1_seq")
    b1t, b1t_th = best_time("b1_step")
    b256s, b256s_th = best_rate("b256_seq")
    b256t, b256t_th = best_rate("b256_step")
    b1_best = min(b1s, b1t)
    b256_best = max(b256s, b256t)

    print()
    print("=" * 96)
    print(f"engine benchmark: model {model} ({kind}), kernels {c.get('kernels')}")
    print(f"  inputs: {nseq} Fashion-MNIST test images rate-coded by spk_encode "
          f"(encoding: {c.get('encoding', '?')}), {T} steps per sequence")
    acts = [f"input events {float(c['input_events_per_step']):.1f}"]
    for l in range(len(nz_torch)):
        key = f"layer{l}_nonzero_per_step"
        if key in c:
            acts.append(f"layer {l + 1} non-zero {float(c[key]):.1f} (torch {nz_torch[l]:.1f})")
    print("  activity per step: " + ", ".join(acts))
    if agree and agree["n_exact"]:
        print(f"  C vs PyTorch readout after {T} steps: max |diff| {agree['exact']:.2e} on "
              f"{agree['n_exact']} sequences with SRCNet.engine_numerics (the engine's float "
              f"order);\n  {agree['fast']:.2e} on {nseq} with the fast path timed below "
              "(rounding differences grow at spike onsets)")
    elif agree:
        print(f"  C vs PyTorch readout after {T} steps, {nseq} sequences: max |diff| "
              f"{agree['fast']:.2e}")
    print(f"  torch {torch.__version__}, eager, no_grad; threads 1 and 2 tried, best shown")
    print(f"  load average (1 min) before / after: {load0:.2f} / {os.getloadavg()[0]:.2f}")
    print("-" * 96)
    print(f"{'measure':58s} {'C engine':>12s} {'PyTorch':>12s} {'ratio':>9s}")
    print("-" * 96)
    row = lambda name, a, b, r: print(f"{name:58s} {a:>12s} {b:>12s} {r:>9s}")  # noqa: E731
    row("one session, time per step: C median vs torch batch 1 (seq)", fmt_ns(cm),
        fmt_ns(b1s), f"{b1s / cm:.0f}x")
    row("one session, time per step: C median vs torch batch 1 (step)", fmt_ns(cm),
        fmt_ns(b1t), f"{b1t / cm:.0f}x")
    row("one session, time per step: C p99 vs torch batch 1 step p99", fmt_ns(cp99),
        fmt_ns(results[("b1_step_p99", b1t_th)]), "")
    row(f"one session, {T} steps per call, per step (C)", fmt_ns(cbatch), "", "")
    row(f"{sessions} sessions x {T} steps, session-steps/s, lock-step vs b256 seq",
        f"{many_lock / 1e6:.2f} M", f"{b256s / 1e6:.3f} M", f"{many_lock / b256s:.1f}x")
    row(f"{sessions} sessions x {T} steps, session-steps/s, lock-step vs b256 step",
        f"{many_lock / 1e6:.2f} M", f"{b256t / 1e6:.3f} M", f"{many_lock / b256t:.1f}x")
    row(f"{sessions} sessions x {T} steps, session-steps/s, {T} steps per call",
        f"{many_batch / 1e6:.2f} M", f"{b256_best / 1e6:.3f} M",
        f"{many_batch / b256_best:.1f}x")
    row("  (lock-step on 1 thread, for the scaling over 2 cores)", f"{many_1t / 1e6:.2f} M", "",
        f"{many_lock / many_1t:.2f}x")
    row("one-session step vs reading its weight rows (median)", fmt_ns(cm), fmt_ns(rm),
        f"{cm / rm:.2f}x")
    print("-" * 96)
    g1 = b1_best / cm
    g2 = many_lock / b256_best
    g3 = cm / rm
    print("goals (against the faster PyTorch variant):")
    print(f"  one-session step >= 100x faster than PyTorch batch 1 per step: {g1:.0f}x "
          f"({'met' if g1 >= 100 else f'missed by {100 / g1:.2f}x'})")
    print(f"  many-session throughput >= 10x PyTorch batch 256 (lock-step): {g2:.1f}x "
          f"({'met' if g2 >= 10 else f'missed by {10 / g2:.2f}x'})")
    print(f"  one-session step <= 3x the time to read its weight rows: {g3:.2f}x "
          f"({'met' if g3 <= 3 else f'missed by {g3 / 3:.2f}x'})")
    print("how the weight-read time is estimated: the same steps are replayed recording every "
          "layer's outputs;\n  each step reads one row of layer 1's W^T per input event, one "
          "row of layer l's per non-zero\n  output of layer l-1 and one readout row per non-zero "
          f"output of the last layer ({float(c['rows_per_step']):.1f} rows,\n  "
          f"{float(c['bytes_per_step']) / 1024:.1f} KiB per step on average). A plain "
          "vectorised loop (16-float vectors, 4 accumulators,\n  AVX-512/AVX2/SSE picked at run "
          "time) sums exactly those rows step by step, timed per step like the\n  engine; the "
          "ratio of the two medians is the engine's cost over a pure read of the same "
          "weights\n  from the same cache level (the per-neuron update and the output "
          "scan are the rest).")
    print("=" * 96)


if __name__ == "__main__":
    main()
