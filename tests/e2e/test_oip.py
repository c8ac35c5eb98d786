#!/usr/bin/env python3
"""test_oip.py: the Open Inference Protocol (KServe v2 / Triton) REST routes of the real server.

The client here is written from the protocol documents (the KServe "predict protocol v2"
REST spec and Triton's extensions: binary_data, sequence, classification,
model_configuration, statistics, model_repository), with http.client only: it builds
requests the way Triton's HTTP client does (no Content-Type on infer,
Inference-Header-Content-Length with binary tensors, sequence_start/sequence_end always sent
with a sequence_id) and reads answers by the spec's rules, not by our implementation.
Results are checked against the v1 API on the same server (same batch, same numbers).

Models: a small random classifier (tests/python/spikefix.py, 784 inputs) for the protocol,
and the shipped Fashion-MNIST models (models/zoo/*.spk) for accuracy: the first
OIP_ACCURACY_N (default 2000) test images, rate-coded here as engine/encode.c does
(p = min(1, gain * pixel) per step and input, Bernoulli, Python's RNG), sent as binary FP32
[k, 3] events; the accuracy must be within 2.5 points of the card's C-engine figure (the
binomial sd of 2000 images is ~0.75 points; the card's seeds vary by ~0.3).
"""
import glob
import gzip
import http.client
import json
import math
import os
import random
import re
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
import spikefix  # noqa: E402

failures = []
checks = 0


def check(cond, what, detail=""):
    global checks
    checks += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (checks, what))
    if not cond:
        failures.append(what)
        if detail:
            print("#   " + str(detail)[:2000].replace("\n", "\n#   "))


# ---- a small OIP client (from the spec) ----

DTYPES = {"FP32": "f", "FP64": "d", "INT32": "i", "INT64": "q", "INT8": "b", "UINT8": "B",
          "BOOL": "?", "INT16": "h", "UINT16": "H", "UINT32": "I", "UINT64": "Q"}


class Client:
    def __init__(self, url):
        m = re.match(r"http://([^:/]+):(\d+)", url)
        self.host, self.port = m.group(1), int(m.group(2))
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)

    def request(self, method, path, body=None, headers=None):
        """(status, headers dict lower-case, body bytes); one keep-alive connection."""
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                if attempt:
                    raise

    def get_json(self, path):
        st, h, b = self.request("GET", path)
        return st, (json.loads(b) if b else None)

    def infer(self, model, inputs, outputs=None, params=None, rid=None, binary_in=True,
              version=None, raw_headers=None):
        """inputs: [(name, datatype, shape, flat values)]. Returns (status, answer) where
        answer is the JSON header with every output's values in "values" (decoded from
        binary or JSON data), or the error body."""
        req = {"inputs": []}
        if rid is not None:
            req["id"] = rid
        if params:
            req["parameters"] = params
        tail = b""
        for name, dt, shape, vals in inputs:
            t = {"name": name, "datatype": dt, "shape": shape}
            if binary_in:
                data = struct.pack("<%d%s" % (len(vals), DTYPES[dt]), *vals)
                t["parameters"] = {"binary_data_size": len(data)}
                tail += data
            else:
                t["data"] = vals
            req["inputs"].append(t)
        if outputs is not None:
            req["outputs"] = outputs
        head = json.dumps(req).encode()
        headers = {}  # like tritonclient.http: no Content-Type
        if tail:
            headers["Inference-Header-Content-Length"] = str(len(head))
        if raw_headers:
            headers.update(raw_headers)
        path = "/v2/models/%s%s/infer" % (model, "/versions/%s" % version if version else "")
        st, h, body = self.request("POST", path, head + tail, headers)
        return st, decode_answer(h, body)


def decode_answer(h, body):
    hl = h.get("inference-header-content-length")
    n = int(hl) if hl is not None else len(body)
    try:
        ans = json.loads(body[:n])
    except ValueError:
        return {"_raw": body}
    off = n
    for o in ans.get("outputs", []) if isinstance(ans, dict) else []:
        p = o.get("parameters") or {}
        count = 1
        for d in o["shape"]:
            count *= d
        if "binary_data_size" in p:
            size = p["binary_data_size"]
            raw = body[off:off + size]
            off += size
            if o["datatype"] == "BYTES":
                vals, k = [], 0
                while k < len(raw):
                    ln = struct.unpack_from("<I", raw, k)[0]
                    vals.append(raw[k + 4:k + 4 + ln].decode())
                    k += 4 + ln
            else:
                fmt = DTYPES[o["datatype"]]
                vals = list(struct.unpack("<%d%s" % (count, fmt), raw))
            o["values"] = vals
            o["_binary"] = True
        else:
            o["values"] = flatten(o.get("data", []))
    if isinstance(ans, dict) and "outputs" in ans:
        ans["_tail_used"] = off == len(body)
    return ans


def flatten(x):
    if isinstance(x, list):
        out = []
        for e in x:
            out.extend(flatten(e))
        return out
    return [x]


def out(ans, name):
    for o in ans.get("outputs", []):
        if o["name"] == name:
            return o
    return None


def close(a, b, tol=1e-5):
    return len(a) == len(b) and all(abs(x - y) <= tol * max(1.0, abs(y)) for x, y in zip(a, b))


def v1(cl, method, path, obj=None):
    body = json.dumps(obj).encode() if obj is not None else None
    st, h, b = cl.request(method, path, body, {"Content-Type": "application/json"} if body else {})
    return st, (json.loads(b) if b else None)


def is_oip_error(st, ans):
    return 400 <= st < 500 and isinstance(ans, dict) and isinstance(ans.get("error"), str) \
        and len(ans) == 1


# ---- the tests ----

def test_routes(cl, model, n_in):
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/%s/ready" % model,
                 "/v2/models/%s/versions/1/ready" % model):
        st, h, b = cl.request("GET", path)
        check(st == 200, "GET %s: 200" % path, st)
    st, meta = cl.get_json("/v2")
    check(st == 200 and meta.get("name") == "spikeserve" and isinstance(meta.get("version"), str),
          "server metadata: name, version", meta)
    ext = set(meta.get("extensions", []))
    check({"binary_tensor_data", "classification", "sequence", "model_configuration",
           "statistics"} <= ext, "server metadata lists the extensions", ext)
    st, m = cl.get_json("/v2/models/%s" % model)
    check(st == 200 and m["name"] == model and m["versions"] == ["1"] and m.get("platform"),
          "model metadata: name, versions, platform", m)
    ins = {t["name"]: t for t in m.get("inputs", [])}
    outs = {t["name"]: t for t in m.get("outputs", [])}
    check(ins.get("spikes", {}).get("shape") == [-1, n_in] and ins["spikes"]["datatype"] == "FP32"
          and ins.get("events", {}).get("shape") == [-1, 3], "model metadata: inputs spikes, events",
          ins)
    check(set(outs) == {"output_spikes", "readout", "readout_all", "prediction"}
          and outs["readout"]["shape"] == [10] and outs["prediction"]["datatype"] == "INT32",
          "model metadata: outputs", outs)
    st, m2 = cl.get_json("/v2/models/%s/versions/1" % model)
    check(st == 200 and m2 == m, "model metadata by version", m2)
    st, e = cl.get_json("/v2/models/%s/versions/7" % model)
    check(st == 404 and is_oip_error(st, e), "unknown version: 404 {\"error\": string}", (st, e))
    st, e = cl.get_json("/v2/models/no-such-model")
    check(st == 404 and is_oip_error(st, e), "unknown model: 404 {\"error\": string}", (st, e))
    st, h, b = cl.request("GET", "/v2/models/no-such-model/ready")
    check(st != 200, "unknown model is not ready", st)
    st, e = cl.get_json("/v2/models/%s/infer" % model)
    check(st == 405 and is_oip_error(st, e), "GET on infer: 405 {\"error\": string}", (st, e))
    st, e = cl.get_json("/v2/no/such/route")
    check(st == 404 and is_oip_error(st, e), "unknown /v2 route: 404 {\"error\": string}", (st, e))
    st, c = cl.get_json("/v2/models/%s/config" % model)
    check(st == 200 and c["name"] == model and [i["name"] for i in c["input"]] == ["spikes", "events"]
          and "readout" in [o["name"] for o in c["output"]] and c["max_batch_size"] == 0,
          "model configuration", c)
    st, c2 = cl.get_json("/v2/models/%s/versions/1/config" % model)
    check(st == 200 and c2 == c, "model configuration by version")
    for body in (None, b'{"ready": true}', b"{}"):
        st, h, b = cl.request("POST", "/v2/repository/index", body)
        idx = json.loads(b) if st == 200 else b
        check(st == 200 and isinstance(idx, list) and any(
            e["name"] == model and e["state"] == "READY" and e["version"] == "1" for e in idx),
            "repository index (body %r)" % body, idx)
    st, h, b = cl.request("POST", "/v2/repository/index", b"[1,")
    check(st == 400 and is_oip_error(st, json.loads(b)), "repository index: bad body 400")


def rand_events(rng, steps, n_in, k):
    ev = sorted((rng.randrange(steps), rng.randrange(n_in), round(rng.uniform(0.5, 2), 3))
                for _ in range(k))
    return ev


def test_infer(cl, model, n_in):
    rng = random.Random(5)
    steps = 12
    ev = rand_events(rng, steps, n_in, 300)
    st, ref = v1(cl, "POST", "/v1/models/%s/infer" % model,
                 {"steps": steps, "events": [list(e) for e in ev],
                  "outputs": ["spikes", "readout", "readout_all"]})
    check(st == 200, "v1 infer reference", ref)
    flat = [x for e in ev for x in e]
    # JSON data, flat and nested
    for nested in (False, True):
        data = [list(e) for e in ev] if nested else flat
        req = {"parameters": {"steps": steps},
               "inputs": [{"name": "events", "datatype": "FP32", "shape": [len(ev), 3],
                           "data": data}]}
        st, h, b = cl.request("POST", "/v2/models/%s/infer" % model, json.dumps(req).encode())
        ans = decode_answer(h, b)
        ro = out(ans, "readout")
        check(st == 200 and h.get("content-type", "").startswith("application/json")
              and "inference-header-content-length" not in h,
              "infer JSON (%s data), no Content-Type: 200 JSON" % ("nested" if nested else "flat"),
              (st, b[:300]))
        check(ro and ro["datatype"] == "FP32" and ro["shape"] == [10]
              and close(ro["values"], ref["readout"]), "readout equals v1's", (ro, ref["readout"]))
        sp = out(ans, "output_spikes")
        check(sp and sp["shape"] == [len(ref["spikes"]), 3]
              and close(sp["values"], [x for s in ref["spikes"] for x in s]),
              "output_spikes equal v1's spikes", sp and sp["shape"])
        ra = out(ans, "readout_all")
        check(ra and ra["shape"] == [steps, 10] and close(ra["values"], flatten(ref["readout_steps"])),
              "readout_all equals v1's", ra and ra["shape"])
        pr = out(ans, "prediction")
        check(pr and pr["values"] == [ref["prediction"]["index"]], "prediction = v1's index", pr)
    # binary in, binary out (binary_data_output), INT32 events [k, 3] need integral values
    st, ans = cl.infer(model, [("events", "FP32", [len(ev), 3], flat)],
                       params={"steps": steps, "binary_data_output": True}, rid="req-7")
    check(st == 200 and all(o.get("_binary") for o in ans["outputs"]) and ans["_tail_used"]
          and ans.get("id") == "req-7" and ans["model_name"] == model and ans["model_version"] == "1",
          "binary in and out: every output binary, tail fully used, id echoed", ans)
    check(close(out(ans, "readout")["values"], ref["readout"]), "binary readout equals v1's")
    # requested outputs: only those, binary per output
    st, ans = cl.infer(model, [("events", "FP32", [len(ev), 3], flat)], params={"steps": steps},
                       outputs=[{"name": "prediction", "parameters": {"binary_data": True}},
                                {"name": "readout", "parameters": {"binary_data": False}}])
    check(st == 200 and [o["name"] for o in ans["outputs"]] == ["prediction", "readout"]
          and out(ans, "prediction").get("_binary") and not out(ans, "readout").get("_binary")
          and out(ans, "prediction")["values"] == [ref["prediction"]["index"]],
          "requested outputs only, binary_data per output", ans)
    # events [k, 2] (value 1) and INT32
    ev2 = sorted({(s, i) for s, i, _ in ev})
    st, r2 = v1(cl, "POST", "/v1/models/%s/infer" % model,
                {"steps": steps, "events": [list(e) for e in ev2], "outputs": ["readout"]})
    for dt in ("INT32", "FP64", "INT64", "UINT16"):
        st, ans = cl.infer(model, [("events", dt, [len(ev2), 2], [x for e in ev2 for x in e])],
                           params={"steps": steps}, outputs=[{"name": "readout"}])
        check(st == 200 and close(out(ans, "readout")["values"], r2["readout"]),
              "events [k, 2] as %s" % dt, ans)
    # dense spikes in every datatype a client may send
    dsteps = 6
    dense = [[1.0 if rng.random() < 0.1 else 0.0 for _ in range(n_in)] for _ in range(dsteps)]
    st, rd = v1(cl, "POST", "/v1/models/%s/infer" % model,
                {"steps": dsteps, "dense": dense, "outputs": ["readout"]})
    dflat = [x for row in dense for x in row]
    for dt, conv in (("FP32", float), ("FP64", float), ("INT32", int), ("BOOL", bool),
                     ("UINT8", int), ("INT8", int)):
        for binary in (True, False):
            st, ans = cl.infer(model, [("spikes", dt, [dsteps, n_in], [conv(x) for x in dflat])],
                               outputs=[{"name": "readout"}], binary_in=binary)
            check(st == 200 and close(out(ans, "readout")["values"], rd["readout"]),
                  "dense spikes %s (%s)" % (dt, "binary" if binary else "JSON"), ans)
    # a leading batch dimension of 1, and both inputs at once
    st, ans = cl.infer(model, [("spikes", "FP32", [1, dsteps, n_in], dflat)],
                       outputs=[{"name": "readout"}])
    check(st == 200 and close(out(ans, "readout")["values"], rd["readout"]), "spikes [1, steps, n]")
    # version route
    st, ans = cl.infer(model, [("spikes", "FP32", [dsteps, n_in], dflat)],
                       outputs=[{"name": "readout"}], version="1")
    check(st == 200 and close(out(ans, "readout")["values"], rd["readout"]), "infer by version")
    # classification
    k = 3
    for binary in (False, True):
        st, ans = cl.infer(model, [("events", "FP32", [len(ev), 3], flat)], params={"steps": steps},
                           outputs=[{"name": "readout",
                                     "parameters": {"classification": k, "binary_data": binary}}])
        c = out(ans, "readout")
        ok = st == 200 and c and c["datatype"] == "BYTES" and c["shape"] == [k]
        parts = [v.split(":") for v in c["values"]] if ok else []
        want = sorted(range(10), key=lambda i: -ref["readout"][i])[:k]
        labels = spikefix.LABELS
        check(ok and [int(p[1]) for p in parts] == want
              and all(abs(float(p[0]) - ref["readout"][int(p[1])]) < 1e-5 for p in parts)
              and all(p[2] == labels[int(p[1])] for p in parts),
              "classification top-%d \"score:index:label\" (%s)" % (k, "binary" if binary else "JSON"),
              (c, ref["readout"]))
    # Content-Type is not required, and any given one is taken too
    st, ans = cl.infer(model, [("events", "FP32", [len(ev), 3], flat)], params={"steps": steps},
                       raw_headers={"Content-Type": "application/octet-stream"},
                       outputs=[{"name": "prediction"}])
    check(st == 200, "infer with Content-Type application/octet-stream", ans)


def seq_req(cl, model, sid, start, end, ev, steps, rid=None):
    # like tritonclient: sequence_start and sequence_end always sent with a sequence_id
    return cl.infer(model, [("events", "FP32", [len(ev), 3], [x for e in ev for x in e])],
                    params={"sequence_id": sid, "sequence_start": start, "sequence_end": end,
                            "steps": steps}, outputs=[{"name": "readout"}], rid=rid)


def test_sequences(cl, model, n_in):
    rng = random.Random(9)
    steps = 8
    batches = [rand_events(rng, steps, n_in, 120) for _ in range(4)]
    # reference: a v1 session over the same batches
    st, s = v1(cl, "POST", "/v1/models/%s/sessions" % model, {})
    refs = []
    for b in batches:
        st, r = v1(cl, "POST", "/v1/sessions/%s/steps" % s["session_id"],
                   {"steps": steps, "events": [list(e) for e in b], "outputs": ["readout"]})
        refs.append(r["readout"])
    v1(cl, "DELETE", "/v1/sessions/%s" % s["session_id"])
    # a sequence that is not open, without start: refused (Triton's 400)
    st, ans = seq_req(cl, model, 4242, False, False, batches[0], steps)
    check(st == 400 and is_oip_error(st, ans) and "START" in ans["error"],
          "sequence not started: 400 naming the START flag", (st, ans))
    # two sequences interleaved on one connection: 101 (integer) and "alpha" (string)
    ids = [101, "alpha"]
    for i, b in enumerate(batches):
        for sid in ids:
            st, ans = seq_req(cl, model, sid, i == 0, i == len(batches) - 1, b, steps)
            check(st == 200 and close(out(ans, "readout")["values"], refs[i]),
                  "sequence %r batch %d (start=%s end=%s) continues the state" %
                  (sid, i, i == 0, i == len(batches) - 1), (st, ans))
            if i == 1:
                name = "oip-%s-%s" % (model, sid if isinstance(sid, int) else "s-" + sid)
                st, info = v1(cl, "GET", "/v1/sessions/%s" % name)
                check(st == 200 and info["t"] == 2 * steps and info["model"] == model,
                      "v1 sees sequence %r as session %s (t = %d)" % (sid, name, 2 * steps), info)
    for sid in ids:
        name = "oip-%s-%s" % (model, sid if isinstance(sid, int) else "s-" + sid)
        st, info = v1(cl, "GET", "/v1/sessions/%s" % name)
        check(st == 404, "sequence %r closed after sequence_end" % sid, (st, info))
        st, ans = seq_req(cl, model, sid, False, False, batches[0], steps)
        check(st == 400, "sequence %r: a request after the end needs a start again" % sid)
    # start on an open sequence restarts it from the initial state
    st, a = seq_req(cl, model, 77, True, False, batches[0], steps)
    st, a = seq_req(cl, model, 77, False, False, batches[1], steps)
    st, a = seq_req(cl, model, 77, True, False, batches[0], steps)
    check(st == 200 and close(out(a, "readout")["values"], refs[0]),
          "sequence_start on an open sequence restarts from the initial state", a)
    st, a = seq_req(cl, model, 77, False, True, batches[1], steps)
    check(st == 200 and close(out(a, "readout")["values"], refs[1]), "and continues from there")
    # a repeated request id is answered again without stepping twice (v1's seq underneath)
    name = "/v1/sessions/oip-%s-301" % model
    st, a1 = seq_req(cl, model, 301, True, False, batches[0], steps, rid="a1")
    st, a2 = seq_req(cl, model, 301, False, False, batches[1], steps, rid="a2")
    st2, again = seq_req(cl, model, 301, False, False, batches[1], steps, rid="a2")
    t = v1(cl, "GET", name)[1]["t"]
    check(st2 == 200 and again.get("id") == "a2"
          and out(again, "readout")["values"] == out(a2, "readout")["values"] and t == 2 * steps,
          "a repeated id gets the stored answer, the sequence does not step twice (t = %d)" % t,
          (again, t))
    st, a3 = seq_req(cl, model, 301, False, False, batches[2], steps)  # no id: no seq
    st, a4 = seq_req(cl, model, 301, False, True, batches[3], steps, rid="a4")
    check(close(out(a3, "readout")["values"], refs[2]) and close(out(a4, "readout")["values"],
                                                                refs[3]),
          "after the retry the sequence continues (requests with and without ids)", (a3, a4))
    # sequence_id 0 and "" mean no sequence: stateless, twice the same answer
    for sid in (0, ""):
        r1 = seq_req(cl, model, sid, False, False, batches[1], steps)
        r2 = seq_req(cl, model, sid, False, False, batches[1], steps)
        st0, inf = v1(cl, "GET", "/v1/models/%s" % model)
        check(r1[0] == 200 and r2[0] == 200
              and out(r1[1], "readout")["values"] == out(r2[1], "readout")["values"],
              "sequence_id %r is stateless" % (sid,), (r1, r2))
    st, ans = cl.infer(model, [("events", "FP32", [1, 3], [0, 1, 1])],
                       params={"sequence_id": -3, "steps": 2})
    check(st == 400 and is_oip_error(st, ans), "negative sequence_id: 400", ans)
    st, ans = cl.infer(model, [("events", "FP32", [1, 3], [0, 1, 1])],
                       params={"sequence_id": 5, "sequence_start": "yes", "steps": 2})
    check(st == 400 and is_oip_error(st, ans), "sequence_start not a boolean: 400", ans)


def raw(cl, model, head, tail=b"", hlen=None, extra=None):
    hdr = {}
    if hlen is not None:
        hdr["Inference-Header-Content-Length"] = str(hlen)
    if extra:
        hdr.update(extra)
    body = (head if isinstance(head, bytes) else json.dumps(head).encode()) + tail
    st, h, b = cl.request("POST", "/v2/models/%s/infer" % model, body, hdr)
    try:
        return st, json.loads(b)
    except ValueError:
        return st, b


def test_hostile(cl, model, n_in):
    ev = {"name": "events", "datatype": "FP32", "shape": [2, 3], "data": [0, 1, 1, 1, 2, 1]}
    P = {"steps": 3}

    def req(inputs, params=P, **kw):
        r = {"inputs": inputs, "parameters": params}
        r.update(kw)
        return r

    cases = [
        ("not JSON", b"{nope", b"", None),
        ("not an object", b"[1,2]", b"", None),
        ("no inputs", req([]), b"", None),
        ("unknown input name", req([dict(ev, name="pixels")]), b"", None),
        ("shape disagrees with data", req([dict(ev, shape=[3, 3])]), b"", None),
        ("nested data of the wrong shape", req([dict(ev, data=[[0, 1, 1], [1, 2]])]), b"", None),
        ("unknown datatype", req([dict(ev, datatype="FLOAT")]), b"", None),
        ("FP16 refused", req([dict(ev, datatype="FP16")]), b"", None),
        ("BYTES refused", req([dict(ev, datatype="BYTES")]), b"", None),
        ("negative dimension", req([dict(ev, shape=[-2, 3])]), b"", None),
        ("overflowing shape", req([dict(ev, shape=[2 ** 62, 2 ** 62, 3])]), b"", None),
        ("huge shape, no data", req([dict(ev, shape=[10 ** 12, 3], data=[])]), b"", None),
        ("huge dense shape", req([{"name": "spikes", "datatype": "FP32",
                                   "shape": [10 ** 9, n_in], "parameters": {"binary_data_size": 4}}]),
         b"\0" * 4, None),
        ("dense of the wrong width", req([{"name": "spikes", "datatype": "FP32", "shape": [2, 10],
                                           "data": [0.0] * 20}], params={}), b"", None),
        ("binary size past the body",
         req([{"name": "events", "datatype": "FP32", "shape": [2, 3],
               "parameters": {"binary_data_size": 24}}]), b"\0" * 12, "H"),
        ("binary size disagrees with the shape",
         req([{"name": "events", "datatype": "FP32", "shape": [2, 3],
               "parameters": {"binary_data_size": 20}}]), b"\0" * 20, "H"),
        ("binary data left over", req([ev]), b"\0" * 8, "H"),
        ("header length past the body", req([ev]), b"", 10 ** 6),
        ("header length not a number", req([ev]), b"", "12x"),
        ("header length cuts the JSON", req([ev]), b"", 5),
        ("event step out of range", req([dict(ev, data=[0, 1, 1, 3, 2, 1])]), b"", None),
        ("event input out of range", req([dict(ev, data=[0, 1, 1, 1, n_in, 1])]), b"", None),
        ("event step not an integer", req([dict(ev, data=[0.5, 1, 1, 1, 2, 1])]), b"", None),
        ("events without steps", req([ev], params={}), b"", None),
        ("steps disagree with spikes", req([{"name": "spikes", "datatype": "FP32",
                                             "shape": [2, n_in], "data": [0.0] * (2 * n_in)}],
                                           params={"steps": 3}), b"", None),
        ("INT32 data with a fraction", req([dict(ev, datatype="INT32",
                                                 data=[0, 1, 1.5, 1, 2, 1])]), b"", None),
        ("BOOL data with numbers", req([{"name": "spikes", "datatype": "BOOL", "shape": [1, n_in],
                                         "data": [1] * n_in}], params={}), b"", None),
        ("unknown output", req([ev], outputs=[{"name": "logits"}]), b"", None),
        ("classification on spikes", req([ev], outputs=[{"name": "output_spikes",
                                                         "parameters": {"classification": 2}}]),
         b"", None),
        ("steps over --max-steps", req([ev], params={"steps": 10 ** 7}), b"", None),
        ("input given twice", req([ev, ev]), b"", None),
        ("id not a string", req([ev], id=7), b"", None),
        ("event value past the engine's bound", req([dict(ev, data=[0, 1, 1e9, 1, 2, 1])]), b"",
         None),
        ("dense value past the engine's bound",
         req([{"name": "spikes", "datatype": "FP64", "shape": [1, n_in],
               "data": [1e300] + [0.0] * (n_in - 1)}], params={}), b"", None),
    ]
    for what, head, tail, hl in cases:
        hb = head if isinstance(head, bytes) else json.dumps(head).encode()
        hlen = len(hb) if hl == "H" else hl
        t0 = time.time()
        st, ans = raw(cl, model, hb, tail, hlen)
        check(400 <= st < 500 and is_oip_error(st, ans),
              "hostile: %s -> %d %s" % (what, st, ans.get("error", "")[:90] if isinstance(ans, dict)
                                        else ans[:60]), (st, ans))
    st, h, b = cl.request("GET", "/v2/health/live")
    check(st == 200, "server alive after the hostile bodies")


def test_stats(cl, model, n_in):
    def stats():
        st, s = cl.get_json("/v2/models/%s/stats" % model)
        return st, s["model_stats"][0]
    st, a = stats()
    check(st == 200 and a["name"] == model and a["version"] == "1"
          and set(a["inference_stats"]) >= {"success", "fail", "queue", "compute_infer"},
          "statistics: model_stats shape", a)
    for _ in range(3):
        cl.infer(model, [("events", "FP32", [1, 3], [0, 1, 1])], params={"steps": 2})
    cl.infer(model, [("events", "FP32", [1, 3], [5, 1, 1])], params={"steps": 2})  # a failure
    st, b = stats()
    sa, sb = a["inference_stats"], b["inference_stats"]
    check(sb["success"]["count"] == sa["success"]["count"] + 3
          and sb["success"]["ns"] > sa["success"]["ns"]
          and sb["fail"]["count"] == sa["fail"]["count"] + 1
          and b["inference_count"] == a["inference_count"] + 3 and b["last_inference"] > 0,
          "statistics move: 3 successes, 1 failure", (a, b))
    st, all_ = cl.get_json("/v2/models/stats")
    check(st == 200 and model in [m["name"] for m in all_["model_stats"]], "statistics of every model")


def test_expiry():
    with spikefix.Server(extra_args=["--idle-timeout", "1"], use_zoo=False) as srv:
        cl = Client(srv.url)
        st, a = seq_req(cl, srv.model, 5, True, False, [(0, 1, 1.0)], 2)
        check(st == 200, "expiry: sequence started", a)
        name = "/v1/sessions/oip-%s-5" % srv.model
        check(v1(cl, "GET", name)[0] == 200, "expiry: the session is open")
        time.sleep(3.5)  # idle 1 s; the janitor looks twice a second (a GET is activity)
        check(v1(cl, "GET", name)[0] == 404, "an idle sequence expires like a session")
        st, a = seq_req(cl, srv.model, 5, False, False, [(0, 1, 1.0)], 2)
        check(st == 400 and "START" in a.get("error", ""), "after expiry it needs a start", a)


def load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n = struct.unpack_from(">II", data, 0)
    if magic == 2051:
        rows, cols = struct.unpack_from(">II", data, 8)
        return [data[16 + i * rows * cols:16 + (i + 1) * rows * cols] for i in range(n)]
    return list(data[8:8 + n])


def test_accuracy(cl, models):
    d = "/usr/share/datasets/fashion-mnist"
    if not os.path.exists(os.path.join(d, "t10k-images-idx3-ubyte.gz")):
        check(False, "Fashion-MNIST test set in %s" % d)
        return
    images = load_idx(os.path.join(d, "t10k-images-idx3-ubyte.gz"))
    labels = load_idx(os.path.join(d, "t10k-labels-idx1-ubyte.gz"))
    n = int(os.environ.get("OIP_ACCURACY_N", "2000"))
    for name in models:
        card = open(os.path.join(ROOT, "models", "zoo", name + ".md")).read()
        m = re.search(r"accuracy_c:\s*([0-9.]+)", card)
        st, meta = v1(cl, "GET", "/v1/models/%s" % name)
        enc = meta["encoding"]
        if not m or enc["kind"] != "rate":
            check(False, "%s: card accuracy and rate encoding" % name, enc)
            continue
        want = float(m.group(1))
        rng = random.Random(20261204)
        steps = enc["warmup_steps"] + enc["steps"]
        right = 0
        t0 = time.time()
        for i in range(n):
            px = images[i]
            ev = []
            for s in range(enc["steps"]):
                for j in range(784):
                    p = min(1.0, enc["gain"] * px[j] / 255.0)
                    if rng.random() < p:
                        ev.extend((enc["warmup_steps"] + s, j, 1.0))
            st, ans = cl.infer(name, [("events", "FP32", [len(ev) // 3, 3], ev)],
                               params={"steps": steps, "binary_data_output": True},
                               outputs=[{"name": "prediction"}])
            if st != 200:
                check(False, "%s: image %d infers" % (name, i), ans)
                break
            right += out(ans, "prediction")["values"][0] == labels[i]
        acc = 100.0 * right / n
        check(abs(acc - want) <= 2.5,
              "%s: accuracy through /v2 binary infer %.2f %% on %d test images, card %.2f %% "
              "(+-2.5 points; %.0f s)" % (name, acc, n, want, time.time() - t0))


def main():
    import tempfile
    tmp = tempfile.mkdtemp(prefix="oip-")
    spikefix.write_tiny_model(os.path.join(tmp, "tiny.spk"))
    zoo = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(ROOT, "models", "zoo",
                                                                         "*.spk")))
    for z in zoo:
        os.symlink(os.path.join(ROOT, "models", "zoo", z + ".spk"), os.path.join(tmp, z + ".spk"))
    with spikefix.Server(model_dir=tmp) as srv:
        cl = Client(srv.url)
        test_routes(cl, "tiny", 784)
        test_infer(cl, "tiny", 784)
        test_sequences(cl, "tiny", 784)
        test_hostile(cl, "tiny", 784)
        test_stats(cl, "tiny", 784)
        if os.environ.get("OIP_ACCURACY_N", "1") != "0":
            test_accuracy(cl, [z for z in zoo if z.startswith("fmnist")])
    test_expiry()
    print("1..%d" % checks)
    if failures:
        print("# %d failed: %s" % (len(failures), "; ".join(failures[:20])))
        sys.exit(1)


if __name__ == "__main__":
    main()
