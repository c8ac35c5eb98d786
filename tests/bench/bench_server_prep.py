#!/usr/bin/env python3
"""bench_server_prep.py: inputs of tests/bench/bench_server.sh.

  bench_server_prep.py WORKDIR N_BODIES

Puts the benchmark model (models/zoo's 784-256-256-10 model if present, else the random one
of bench_model.py) alone in WORKDIR/models, writes WORKDIR/bodies.ndjson: N_BODIES one-step
sparse spike batches, {"steps": 1, "events": [[0, input], ...]}, each one step of a
Fashion-MNIST test image rate-coded with the model's encoding (Bernoulli, p = min(1,
gain * x)), and WORKDIR/bodies.pbhex: the same batches as protobuf spikeserve.SpikeBatch
messages (proto/api.proto), hex-encoded, one per line (wrk's Lua decodes them). Prints
"MODEL_NAME MODEL_PATH KIND" on stdout.
"""
import gzip
import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_model  # noqa: E402
import api_pb2  # noqa: E402  (bench_model put proto/ on the path)

IMAGES = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"


def main():
    workdir, n_bodies = sys.argv[1], int(sys.argv[2])
    os.makedirs(os.path.join(workdir, "models"), exist_ok=True)
    path, kind = bench_model.choose_model(workdir)
    m = bench_model.read_model(path)
    shutil.copy(path, os.path.join(workdir, "models", os.path.basename(path)))
    gain = m.encoding.gain if m.encoding.kind == 1 and m.encoding.gain > 0 else 1.0
    with gzip.open(IMAGES) as f:
        raw = f.read()
    x = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 784)[:n_bodies] / 255.0
    rng = np.random.default_rng(7)
    with open(os.path.join(workdir, "bodies.ndjson"), "w") as f, \
            open(os.path.join(workdir, "bodies.pbhex"), "w") as fp:
        for k in range(n_bodies):
            img = x[k % len(x)]
            fire = np.nonzero(rng.random(784) < np.minimum(1.0, gain * img))[0]
            body = {"steps": 1, "events": [[0, int(j)] for j in fire]}
            f.write(json.dumps(body, separators=(",", ":")) + "\n")
            pb = api_pb2.SpikeBatch(steps=1)
            for j in fire:
                pb.events.add(step=0, input=int(j))
            fp.write(pb.SerializeToString().hex() + "\n")
    print(m.name, path, kind)  # the shell reads the kind as the rest of the line


if __name__ == "__main__":
    main()
