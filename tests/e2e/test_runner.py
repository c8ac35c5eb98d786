"""test_runner.py: build/spikeserve-run end to end.

A small model (8 inputs, SRC layers of 16 and 12 neurons, a 3-class readout) is written with
proto/model_pb2.py. The same random input is run as one batch and as several lines; the
lines must continue each other exactly (t0, spikes shifted by t0, readout per step), and the
run must really spike in every layer. Bad lines must be reported with their line number and
field while the good lines around them still run.
"""
import json
import os
import random
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "proto"))
import model_pb2  # noqa: E402

BUILD = os.environ.get("SPIKESERVE_BUILD", os.path.join(ROOT, "build"))
RUNNER = os.path.join(BUILD, "spikeserve-run")
N_IN, STEPS = 8, 90
failures = 0
checks = 0


def check(cond, what, detail=""):
    global failures, checks
    checks += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (checks, what))
    if not cond:
        failures += 1
        if detail:
            print("#   " + str(detail).replace("\n", "\n#   "))


def make_model(path):
    rnd = random.Random(7)
    m = model_pb2.Model(name="runner-test", version=3, n_in=N_IN)
    sizes = [N_IN, 16, 12]
    for k in range(2):
        n_in, n = sizes[k], sizes[k + 1]
        layer = m.layers.add(n_in=n_in, n=n, alpha=0.9, rho=3, r=2, r_s=-7, z_hyp=0.9,
                             z_dep=0, theta=0.5)
        layer.weights.extend(rnd.uniform(-0.5, 3.0) for _ in range(n * n_in))
        layer.b_h.extend([-6.0] * n)
    ro = m.readout
    ro.n_in, ro.n, ro.alpha = 12, 3, 0.9
    ro.weights.extend(rnd.uniform(-1, 1) for _ in range(3 * 12))
    ro.bias.extend([0.0, 0.1, -0.1])
    m.labels.extend(["cat", "dog", "bird"])
    with open(path, "wb") as f:
        f.write(m.SerializeToString())


def run(model, lines, *opts):
    p = subprocess.run([RUNNER, *opts, model], input="".join(lines), capture_output=True,
                       text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def results(stdout):
    return [json.loads(line) for line in stdout.splitlines()]


def main():
    tmp = tempfile.mkdtemp(prefix="spikeserve-run-")
    model = os.path.join(tmp, "model.pb")
    make_model(model)
    rnd = random.Random(11)
    events = sorted({(t, rnd.randrange(N_IN)) for t in range(STEPS) for _ in range(3)
                     if rnd.random() < 0.6})
    events = [[t, i, round(rnd.uniform(0.2, 1.5), 3)] if (t + i) % 3 == 0 else [t, i]
              for t, i in events]
    outputs = ["spikes", "readout", "readout_all", "layers"]

    # One batch of STEPS steps.
    whole = json.dumps({"steps": STEPS, "events": events, "outputs": outputs}) + "\n"
    rc, out, err = run(model, [whole])
    check(rc == 0 and err == "", "one batch runs", err)
    one = results(out)
    check(len(one) == 1, "one result line")
    one = one[0]
    check(one["t0"] == 0 and one["steps"] == STEPS and "session_id" not in one,
          "t0 0, steps, no session_id")
    check(len(one["readout_steps"]) == STEPS and one["readout"] == one["readout_steps"][-1],
          "readout is the last row of readout_steps")
    pred = max(range(3), key=lambda k: one["readout"][k])
    check(one["prediction"] == {"index": pred, "label": ["cat", "dog", "bird"][pred]},
          "prediction is the argmax with its label", one["prediction"])
    check(one["spikes"] == one["layers"][1]["spikes"], "spikes are the last layer's")
    for layer in one["layers"]:
        steps_spiking = {s[0] for s in layer["spikes"]}
        check(len(steps_spiking) >= 10, "layer %d spikes on %d of %d steps"
              % (layer["layer"], len(steps_spiking), STEPS))
    check(all(s[2] > 0 for s in one["spikes"]), "spike values are positive")

    # The same input as lines of 1, 10, 29 and 50 steps, with seq 1..4 and a blank line.
    cuts = [0, 1, 11, 40, STEPS]
    lines = []
    for k in range(len(cuts) - 1):
        a, b = cuts[k], cuts[k + 1]
        ev = [[e[0] - a] + e[1:] for e in events if a <= e[0] < b]
        lines.append(json.dumps({"seq": k + 1, "steps": b - a, "events": ev,
                                 "outputs": outputs}) + "\n")
        if k == 1:
            lines.append("   \n")
    rc, out, err = run(model, lines)
    check(rc == 0 and err == "", "split run exits 0", err)
    parts = results(out)
    check(len(parts) == 4, "one result per non-blank line", out)
    check([p["t0"] for p in parts] == cuts[:-1] and [p["seq"] for p in parts] == [1, 2, 3, 4],
          "t0 continues across lines, seq echoed")

    def shifted(key):
        return [[s[0] + p["t0"]] + s[1:] for p in parts for s in p[key]]

    check(shifted("spikes") == one["spikes"], "spikes of the lines == spikes of one batch",
          "%d vs %d spikes" % (len(shifted("spikes")), len(one["spikes"])))
    for l in range(2):
        got = [[s[0] + p["t0"]] + s[1:] for p in parts for s in p["layers"][l]["spikes"]]
        check(got == one["layers"][l]["spikes"], "layer %d spikes equal" % l)
    rows = [row for p in parts for row in p["readout_steps"]]
    check(rows == one["readout_steps"], "readout of every step equal")
    check(parts[-1]["readout"] == one["readout"] and parts[-1]["prediction"] == one["prediction"],
          "final readout and prediction equal")

    # Dense rows carry the same input (events at one (step, input) add up).
    dense = [[0.0] * N_IN for _ in range(STEPS)]
    for e in events:
        dense[e[0]][e[1]] += e[2] if len(e) == 3 else 1.0
    rc, out, err = run(model, [json.dumps({"steps": STEPS, "dense": dense,
                                           "outputs": ["readout_all"]}) + "\n"])
    d = results(out)
    ok_dense = rc == 0 and len(d) == 1 and all(
        abs(x - y) <= 1e-5 for r1, r2 in zip(d[0]["readout_steps"], one["readout_steps"])
        for x, y in zip(r1, r2))
    check(ok_dense and "spikes" not in d[0], "dense input: same readout within 1e-5", err)

    # Scalar kernels agree with the default ones within the SPEC tolerance.
    rc, out, err = run(model, [whole], "--kernels", "scalar")
    s = results(out)[0] if rc == 0 else {}
    check(rc == 0 and all(abs(x - y) <= 1e-5 for r1, r2 in
                          zip(s.get("readout_steps", []), one["readout_steps"])
                          for x, y in zip(r1, r2)) and len(s["readout_steps"]) == STEPS,
          "--kernels scalar: same readout within 1e-5", err)

    # Bad lines: each named with its line and field; good lines still run, state unmoved.
    good = json.dumps({"seq": 1, "steps": 5, "events": events[:4]}) + "\n"
    bad_lines = [
        good,                                                                   # 1
        json.dumps({"steps": 5, "events": [[0, 900]]}) + "\n",                  # 2
        '{"steps": 5, "events": [[0, 1]\n',                                     # 3
        json.dumps({"steps": 5, "stpes": 1}) + "\n",                            # 4
        json.dumps({"seq": 3, "steps": 5}) + "\n",                              # 5
        "\n",                                                                   # 6
        json.dumps({"steps": 5, "events": [[0, 1, "x"]]}) + "\n",               # 7
        json.dumps({"steps": 5, "dense": [[0] * N_IN] * 4}) + "\n",             # 8
        json.dumps({"steps": 5, "outputs": ["spikes", "voltage"]}) + "\n",      # 9
        json.dumps({"seq": 2, "steps": 5, "events": events[:4]}) + "\n",        # 10
    ]
    rc, out, err = run(model, bad_lines)
    check(rc == 1, "exit status 1 when a line failed", rc)
    want = [
        "line 2: events[0]: input 900 out of range [0, 8)",
        "line 3: invalid JSON at line 1, column ",
        "line 4: stpes: unknown field (expected seq, steps, events, dense, outputs)",
        "line 5: seq: 3 is not last seq + 1 (last seq 1)",
        "line 7: events[0][2]: value must be a finite number",
        "line 8: dense: 4 rows, expected 5 (one per step)",
        "line 9: outputs[1]: unknown output \"voltage\" (expected spikes, readout, "
        "readout_all, layers)",
        "spikeserve-run: 7 of 10 lines failed",
    ]
    got = err.splitlines()
    check(len(got) == len(want) and all(g.startswith(w) for g, w in zip(got, want)),
          "stderr names line and field of each bad line", err)
    r = results(out)
    check(len(r) == 2 and r[0]["seq"] == 1 and r[1]["seq"] == 2 and r[1]["t0"] == 5,
          "the good lines ran; failed lines did not move the state", out)

    # Limits and usage.
    rc, out, err = run(model, [json.dumps({"steps": 6}) + "\n"], "--max-steps", "5")
    check(rc == 1 and err.startswith("line 1: steps: 6 exceeds the limit 5 (--max-steps)"),
          "--max-steps", err)
    rc, out, err = run(model, [json.dumps({"steps": 2, "events": [[0, 1]] * 4}) + "\n"],
                       "--max-events", "3")
    check(rc == 1 and err.startswith(
        "line 1: events: 4 events exceed the limit 3 (--max-events)"), "--max-events", err)
    rc, out, err = run(model, ["{\"steps\": 1, \"events\": [" + "[0, 1]," * 40 + "[0, 1]]}\n",
                               json.dumps({"steps": 1}) + "\n"], "--max-line", "100")
    check(rc == 1 and err.startswith("line 1: longer than 100 bytes (--max-line)")
          and len(results(out)) == 1, "--max-line: the long line is skipped, the next runs", err)
    p = subprocess.run([RUNNER, "--help"], capture_output=True, text=True)
    check(p.returncode == 0 and all(o in p.stdout for o in
                                    ["--kernels", "--max-steps", "--max-events", "--max-line",
                                     "continues"]), "--help lists the options")
    rc, out, err = run(os.path.join(tmp, "missing.pb"), [])
    check(rc == 2 and "missing.pb" in err, "a missing model: exit 2 with its path", err)
    with open(os.path.join(tmp, "bad.pb"), "wb") as f:
        f.write(open(model, "rb").read()[:50])
    rc, out, err = run(os.path.join(tmp, "bad.pb"), [])
    check(rc == 2 and "bad.pb" in err, "a truncated model: exit 2", err)
    rc, out, err = run(model, [], "--bogus")
    check(rc == 2 and "--bogus" in err, "unknown option: exit 2", err)

    print("1..%d" % checks)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
