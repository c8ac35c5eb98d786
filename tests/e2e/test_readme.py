#!/usr/bin/env python3
"""The README's examples, run against the real server so the README cannot rot.

Rules (the README follows them):
- Every ```sh block that talks to http://127.0.0.1:8080 is run, in order, in one bash
  process (so SID=... set in one block is seen by the next), with `set -euo pipefail`, in a
  scratch directory where proto/ and build/ point into the repository. The URL is replaced by
  the test server's, and the README's model name by the served model's when they differ.
- A command starting with `curl -N` (an event stream that runs until the session ends) is
  started in the background; once the flow is over it must have printed a `step` event.
- A ```json block right after a run block shows that block's (last) answer: the real answer
  must be JSON with the same keys (recursively through objects; values may differ).
- Every ```python block that talks to http://127.0.0.1:8080 is run too (clients/python on the
  path), after the sh blocks; every such ```c block is compiled as the body of main() against
  build/libspikeclient.a and run.
- Every route of SPEC.md section 3 appears in at least one run block.
- The configuration table matches `spikeserve --help`, the metrics table `/metrics`.
- The ```sh block with models/train.py (a small training run and its export) is run with its
  output paths moved to a scratch folder, and a server must load and serve the model.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
import spikefix  # noqa: E402

README_URL = "http://127.0.0.1:8080"
ROUTES = [  # (method, path regex) of SPEC.md section 3
    ("GET", r"/healthz"), ("GET", r"/readyz"), ("GET", r"/metrics"), ("GET", r"/v1/models"),
    ("GET", r"/v1/models/[^/]+"), ("POST", r"/v1/models/[^/]+/sessions"),
    ("GET", r"/v1/sessions/[^/]+"), ("DELETE", r"/v1/sessions/[^/]+"),
    ("POST", r"/v1/sessions/[^/]+/reset"), ("POST", r"/v1/sessions/[^/]+/steps"),
    ("POST", r"/v1/sessions/[^/]+/stream"), ("GET", r"/v1/sessions/[^/]+/events"),
    ("GET", r"/v1/sessions/[^/]+/state"), ("PUT", r"/v1/sessions/[^/]+/state"),
    ("POST", r"/v1/models/[^/]+/infer"), ("POST", r"/v1/models/[^/]+/classify"),
]

failures = []


def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what)
    if not cond:
        failures.append(what)


def blocks(text):
    """[(lang, body)] of the fenced blocks, in order."""
    return [(m.group(1), m.group(2))
            for m in re.finditer(r"^```(\w*)\n(.*?)^```\s*$", text, re.S | re.M)]


def same_keys(want, got, where="$"):
    """Differences in keys between two JSON values (recursively through objects)."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{where}: expected an object, got {json.dumps(got)[:80]}"]
        out = []
        if set(want) != set(got):
            out.append(f"{where}: keys {sorted(got)} != documented {sorted(want)}")
        for k in set(want) & set(got):
            out += same_keys(want[k], got[k], f"{where}.{k}")
        return out
    if isinstance(want, list) and want and isinstance(want[0], dict):
        if not isinstance(got, list) or not got:
            return [f"{where}: expected a non-empty list"]
        return same_keys(want[0], got[0], f"{where}[0]")
    return []


def routes_in(cmd):
    """(method, path) pairs of the curl commands in a shell block."""
    out = []
    for line in re.sub(r"\\\n", " ", cmd).splitlines():
        for m in re.finditer(r"curl\b([^|;&]*)", line):
            args = m.group(1)
            u = re.search(re.escape(README_URL) + r"(/[^\s'\"]*)?", args)
            if not u:
                continue
            method = re.search(r"-X\s*(\w+)", args)
            method = method.group(1) if method else (
                "POST" if re.search(r"\s(-d|--data\S*|-T|-F)\s", args) else "GET")
            out.append((method, (u.group(1) or "/").split("?")[0]))
    return out


def main():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    bl = blocks(readme)
    runnable = [i for i, (lang, body) in enumerate(bl) if lang == "sh" and README_URL in body]
    pyblocks = [body for lang, body in bl if lang == "python" and README_URL in body]
    # what the prose right after a python block says it prints last ("... then `X`")
    pylast = []
    for body in pyblocks:
        after = readme[readme.index(body) + len(body):][:400]
        m = re.search(r"then `([^`]+)`", after)
        pylast.append(m.group(1) if m else None)
    cblocks = [body for lang, body in bl if lang == "c" and README_URL in body]
    check(len(runnable) >= 10, f"README has curl examples ({len(runnable)} run blocks)")

    seen = [r for i in runnable for r in routes_in(bl[i][1])]
    for method, rx in ROUTES:
        check(any(m == method and re.fullmatch(rx, p) for m, p in seen),
              f"README shows {method} {rx}")

    readme_models = set(re.findall(r"/v1/models/([A-Za-z0-9._-]+)/", readme))
    with spikefix.Server() as srv, tempfile.TemporaryDirectory() as work:
        build = os.path.join(ROOT, os.environ.get("SPIKESERVE_BUILD", "build"))
        for d in ("proto", "clients", "models"):
            os.symlink(os.path.join(ROOT, d), os.path.join(work, d))
        os.symlink(build, os.path.join(work, "build"))

        def adapt(body):
            body = body.replace(README_URL, srv.url)
            for m in readme_models:
                if m != srv.model:
                    body = re.sub(r"\b%s\b" % re.escape(m), srv.model, body)
            return body

        script = ["set -euo pipefail", "bgpids=()"]
        outs = {}
        for k, i in enumerate(runnable):
            out = os.path.join(work, f"out{k}.txt")
            outs[i] = out
            lines, body = [], adapt(bl[i][1])
            for line in re.sub(r"\\\n\s*", " ", body).splitlines():
                if line.lstrip().startswith("curl -N"):
                    ev = os.path.join(work, f"events{k}.txt")
                    outs[("events", i)] = ev
                    lines.append(f"( {line} ) > {ev} 2>&1 & bgpids+=($!)")
                    # wait until the subscription is live (the server's first comment arrived)
                    lines.append(f"for _ in $(seq 100); do [ -s {ev} ] && break; sleep 0.1; done")
                else:
                    lines.append(line)
            script.append(f"echo '### block {k}' >&2")
            script.append("{\n" + "\n".join(lines) + f"\n}} > {out}")
        # the event streams end when their session is closed (the flow closes it)
        script.append('for p in "${bgpids[@]}"; do for _ in $(seq 50); do kill -0 $p 2>/dev/null '
                      '|| break; sleep 0.1; done; kill $p 2>/dev/null || true; done')
        with open(os.path.join(work, "readme.sh"), "w") as f:
            f.write("\n".join(script) + "\n")
        env = dict(os.environ, PATH=build + ":" + os.environ["PATH"])
        p = subprocess.run(["bash", "readme.sh"], cwd=work, env=env, capture_output=True,
                           text=True, timeout=300)
        check(p.returncode == 0, f"README shell examples run (exit {p.returncode})")
        if p.returncode != 0:
            print(p.stderr[-3000:])

        for i in runnable:
            out = open(outs[i]).read() if os.path.exists(outs[i]) else ""
            if os.environ.get("README_VERBOSE"):
                print(f"--- block {i}:\n{bl[i][1]}--- output:\n{out[:1500]}")
            if ("events", i) in outs:
                ev = open(outs[("events", i)]).read()
                check("event: step" in ev, f"block {i}: the event stream printed a step event")
            nxt = bl[i + 1] if i + 1 < len(bl) else None
            if not nxt or nxt[0] != "json":
                continue
            want = json.loads(nxt[1])
            last = out.strip().splitlines()[-1] if out.strip() else ""
            try:  # one JSON document, or the block's last answer (its last line)
                got = json.loads(out)
            except ValueError:
                try:
                    got = json.loads(last)
                except ValueError:
                    got = None
            diffs = same_keys(want, got) if got is not None else ["answer is not JSON: " + out[:200]]
            cmd = bl[i][1].strip().splitlines()[-1][:70]
            check(not diffs, f"block {i} ({cmd}): answer has the documented shape "
                  + "; ".join(diffs)[:400])

        # the configuration table is the server's --help, the metrics table its /metrics
        helptext = subprocess.run([os.path.join(build, "spikeserve"), "--help"],
                                  capture_output=True, text=True).stdout
        rows = {m.group(1): (m.group(2), m.group(3).strip("`")) for m in re.finditer(
            r"^\|\s*`--([\w-]+)`\s*\|\s*`(\w+)`\s*\|\s*(.*?)\s*\|", readme, re.M)}
        opts = re.findall(r"^  --([\w-]+) \S+.*\n\s+\[default: \"([^\"]*)\"; env (\w+)\]",
                          helptext, re.M)
        check(len(opts) >= 10, f"spikeserve --help lists its options ({len(opts)})")
        for name, default, env_name in opts:
            check(rows.get(name) == (env_name, default),
                  f"README configuration row for --{name}: {rows.get(name)} "
                  f"== ({env_name!r}, {default!r})")
        for name in rows:
            check(any(o[0] == name for o in opts), f"README option --{name} exists")
        import urllib.request
        metrics = urllib.request.urlopen(srv.url + "/metrics", timeout=10).read().decode()
        families = set(re.findall(r"^# TYPE (\w+) ", metrics, re.M))
        # families that exist only with --wal, from a second server that has one
        with tempfile.TemporaryDirectory() as wal_dir, \
                spikefix.Server(extra_args=["--wal", "1"], state_dir=wal_dir) as wsrv:
            wal_metrics = urllib.request.urlopen(wsrv.url + "/metrics", timeout=10).read().decode()
        families |= set(re.findall(r"^# TYPE (\w+) ", wal_metrics, re.M))
        documented = set(re.findall(r"^\| `(spikeserve_\w+)` \|", readme, re.M))
        check(families and families == documented,
              f"README metrics table == /metrics families (missing {sorted(families - documented)}, "
              f"extra {sorted(documented - families)})")

        for k, body in enumerate(cblocks):
            src = os.path.join(work, f"example{k}.c")
            with open(src, "w") as f:
                f.write("#include <stdio.h>\n#include \"spikeclient.h\"\nint main(void) {\n"
                        + adapt(body) + "    return 0;\n}\n")
            exe = src[:-2]
            # a sanitizer build's library needs the same sanitizer at link time
            san = os.path.basename(build.rstrip("/"))
            san = ["-fsanitize=" + san[len("build-"):].replace("-", ",")] if san.startswith(
                "build-") and san != "build-fuzz" else []
            p = subprocess.run(["cc"] + san + ["-std=c11", "-Wall", "-Werror", "-I",
                                os.path.join(ROOT, "clients", "c"), src,
                                os.path.join(build, "libspikeclient.a"), "-ljansson", "-lcurl",
                                "-lprotobuf-c", "-lpthread", "-o", exe],
                               capture_output=True, text=True)
            check(p.returncode == 0, f"README C example {k} compiles" + ("" if p.returncode == 0
                                                                       else ": " + p.stderr[-800:]))
            if p.returncode == 0:
                p = subprocess.run([exe], capture_output=True, text=True, timeout=60)
                check(p.returncode == 0 and "spikes, prediction" in p.stdout,
                      f"README C example {k} runs: {(p.stdout + p.stderr).strip()[:300]}")

        for k, body in enumerate(pyblocks):
            path = os.path.join(work, f"example{k}.py")
            with open(path, "w") as f:
                f.write(adapt(body))
            env2 = dict(env, PYTHONPATH=os.path.join(ROOT, "clients", "python"))
            p = subprocess.run([sys.executable, path], cwd=work, env=env2, capture_output=True,
                               text=True, timeout=120)
            if os.environ.get("README_VERBOSE"):
                print(f"--- python example {k} output:\n{p.stdout[:1500]}")
            check(p.returncode == 0, f"README python example {k} runs"
                  + ("" if p.returncode == 0 else ": " + p.stderr[-800:]))
            if pylast[k]:
                lines = p.stdout.strip().splitlines()
                check(lines and lines[-1] == pylast[k],
                      f"README python example {k} prints {pylast[k]} last (got {lines[-1:]})")
    # every shipped model has a card, and the README links every card
    zoo = os.path.join(ROOT, "models", "zoo")
    shipped = sorted(f[:-4] for f in os.listdir(zoo) if f.endswith(".spk")) if os.path.isdir(zoo) else []
    for name in shipped:
        check(os.path.exists(os.path.join(zoo, name + ".md")), f"models/zoo/{name}.md exists")
        check(f"(models/zoo/{name}.md)" in readme, f"README links the card of {name}")
    for link in re.findall(r"\]\((models/zoo/[^)]+)\)", readme):
        check(os.path.exists(os.path.join(ROOT, link)), f"README link {link} exists")

    # the training example: a small run, exported, served
    trainblocks = [body for lang, body in bl if lang == "sh" and "models/train.py" in body]
    check(len(trainblocks) == 1, "README has one training example")
    with tempfile.TemporaryDirectory() as work:
        body = trainblocks[0].replace("models/runs/", f"{work}/runs/").replace(
            "models/zoo/", f"{work}/zoo/")
        os.mkdir(os.path.join(work, "zoo"))
        p = subprocess.run(["bash", "-euo", "pipefail", "-c", body], cwd=ROOT,
                           capture_output=True, text=True, timeout=900)
        check(p.returncode == 0, "the training example trains and exports"
              + ("" if p.returncode == 0 else ": " + (p.stdout + p.stderr)[-1500:]))
        names = [f[:-4] for f in os.listdir(os.path.join(work, "zoo")) if f.endswith(".spk")]
        check(len(names) == 1, f"it wrote one model file ({names})")
        if names:
            sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
            from spikeserve import Client
            with spikefix.Server(model_dir=os.path.join(work, "zoo")) as srv:
                c = Client(srv.url)
                info = c.model(names[0])
                check(info["n_in"] == 784 and info["labels"], "the server loads the new model")
                r = c.classify(names[0], [0.0] * 392 + [1.0] * 392, seed=1)
                check(0 <= r["prediction"]["index"] < 10, "and classifies with it")

    print(f"# {len(failures)} failed: " + "; ".join(failures)[:2000] if failures
          else "# all README examples pass")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
