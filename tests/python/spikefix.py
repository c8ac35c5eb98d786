"""spikefix: start the real build/spikeserve on a free loopback port for the client tests.

    with spikefix.Server() as srv:     # srv.url, srv.model (a model name it serves)
        ...

The model directory is models/zoo when it holds models (the shipped, trained ones), else a
temporary directory with a small random classifier written with proto/model_pb2 (784 inputs,
rate encoding, 10 labels: enough to drive every route). SPIKESERVE_TEST_ZOO=0 forces the
small model. The server is stopped with SIGTERM at the end and must exit 0.
Also runnable: `python3 tests/python/spikefix.py DIR` writes the small model into DIR.
"""
import glob
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "proto"))
BUILD = os.path.join(ROOT, os.environ.get("SPIKESERVE_BUILD", "build"))

LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
          "Bag", "Ankle boot"]
TINY = "tiny"


def write_tiny_model(path, name=TINY, n_in=784, hidden=32, n_out=10, seed=7):
    """A random SRC classifier n_in -> hidden -> readout n_out, rate encoded."""
    import model_pb2

    rng = random.Random(seed)
    m = model_pb2.Model(name=name, version=1, n_in=n_in,
                        description="random test model (tests/python/spikefix.py)")
    layer = m.layers.add()
    layer.n_in, layer.n = n_in, hidden
    layer.weights.extend(rng.gauss(0.0, 1.5) for _ in range(hidden * n_in))
    layer.b_h.extend([-1.0] * hidden)
    (layer.alpha, layer.rho, layer.r, layer.r_s, layer.z_hyp, layer.z_dep, layer.theta) = (
        0.9, 3.0, 2.0, -7.0, 0.9, 0.0, 0.5)
    m.readout.n_in, m.readout.n, m.readout.alpha = hidden, n_out, 0.9
    m.readout.weights.extend(rng.gauss(0.0, 0.5) for _ in range(n_out * hidden))
    m.readout.bias.extend([0.0] * n_out)
    m.labels.extend(LABELS[:n_out])
    m.encoding.kind = model_pb2.Encoding.RATE
    m.encoding.steps, m.encoding.warmup_steps, m.encoding.gain = 20, 0, 0.5
    with open(path, "wb") as f:
        f.write(m.SerializeToString())


class Server:
    def __init__(self, extra_args=(), use_zoo=None, state_dir=None, model_dir=None):
        self.extra_args = list(extra_args)
        zoo = sorted(glob.glob(os.path.join(ROOT, "models", "zoo", "*.spk")))
        if use_zoo is None:
            use_zoo = os.environ.get("SPIKESERVE_TEST_ZOO", "1") != "0"
        self.tmp = tempfile.mkdtemp(prefix="spikefix-")
        if model_dir:
            self.model_dir = model_dir
            self.model = os.path.basename(sorted(glob.glob(os.path.join(model_dir, "*.spk")))[0])[:-4]
        elif use_zoo and zoo:
            self.model_dir = os.path.join(ROOT, "models", "zoo")
            self.model = os.path.basename(zoo[0])[:-4]
            for p in zoo:  # prefer the Fashion-MNIST classifier
                if "fmnist" in os.path.basename(p) or "fashion" in os.path.basename(p):
                    self.model = os.path.basename(p)[:-4]
                    break
        else:
            self.model_dir = os.path.join(self.tmp, "models")
            os.mkdir(self.model_dir)
            write_tiny_model(os.path.join(self.model_dir, TINY + ".spk"))
            self.model = TINY
        self.state_dir = state_dir or os.path.join(self.tmp, "state")
        os.makedirs(self.state_dir, exist_ok=True)
        self.proc = None

    def start(self):
        port_file = os.path.join(self.tmp, "port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        self.log = open(os.path.join(self.tmp, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [os.path.join(BUILD, "spikeserve"), "--model-dir", self.model_dir, "--bind",
             "127.0.0.1", "--port", "0", "--port-file", port_file, "--grpc-port", "0", "--state-dir",
             self.state_dir, "--workers", "2"] + self.extra_args,
            stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"spikeserve exited with {self.proc.returncode}:\n"
                                   + self.server_log())
            try:
                with open(port_file) as f:
                    port = int(f.read().strip() or 0)
                if port:
                    self.url = f"http://127.0.0.1:{port}"
                    urllib.request.urlopen(self.url + "/readyz", timeout=2).read()
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("spikeserve did not become ready in 30 s:\n" + self.server_log())

    def server_log(self):
        try:
            with open(os.path.join(self.tmp, "server.log"), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        """SIGTERM, wait; returns the exit code (-9 when it had to be killed)."""
        rc = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                rc = -9
        elif self.proc:
            rc = self.proc.returncode
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None
        return rc

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        rc = self.stop()
        if exc[0] is None and rc != 0:
            raise RuntimeError(f"spikeserve exited with {rc} on SIGTERM:\n" + self.server_log())
        if os.environ.get("SPIKESERVE_KEEP_TMP") != "1":
            shutil.rmtree(self.tmp, ignore_errors=True)


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    write_tiny_model(os.path.join(out, TINY + ".spk"))
    print(os.path.join(out, TINY + ".spk"))
