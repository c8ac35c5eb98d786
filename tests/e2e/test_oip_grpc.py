#!/usr/bin/env python3
"""test_oip_grpc.py: the Open Inference Protocol over gRPC (inference.GRPCInferenceService)
of the real server, with Debian's python3-grpcio and the stubs generated from
proto/grpc_service.proto (make proto).

Requests are built the way Triton's gRPC client builds them (sequence_id as int64_param or
string_param, sequence_start and sequence_end always sent with it, raw_input_contents), and
every answer is held to an independent reference on the same server: the REST route of the
same request (test_oip.py's client, written from the spec) and the v1 API for the same
batches. Raw outputs must be bit-identical to REST's binary outputs and to v1's own gRPC
answers (float32 on the wire: Infer, and Step of a v1 session for sequences); v1's JSON
within 1e-5. Covered: every method, raw and typed tensors, output selection and classification,
sequences over ModelInfer and ModelStreamInfer (start, steps, end, continuity, interleaving,
retries by id, an error answered in its place in the stream), the status codes of errors
with REST's message text, statistics that move, API keys in metadata, and the accuracy of a
shipped Fashion-MNIST model through ModelInfer (OIP_GRPC_ACCURACY_N images, default 2000;
0 skips).
"""
import glob
import json
import os
import random
import struct
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
sys.path.insert(0, os.path.join(ROOT, "proto"))
sys.path.insert(0, HERE)
import grpc  # noqa: E402
import grpc_service_pb2 as pb  # noqa: E402
import grpc_service_pb2_grpc as pbg  # noqa: E402
import model_config_pb2  # noqa: E402
import api_pb2  # noqa: E402
import service_pb2  # noqa: E402
import service_pb2_grpc  # noqa: E402
import spikefix  # noqa: E402
import test_oip as rest  # noqa: E402  (the REST client and its helpers)

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
    return cond


FMT = rest.DTYPES


def param(v):
    p = pb.InferParameter()
    if isinstance(v, bool):
        p.bool_param = v
    elif isinstance(v, int):
        p.int64_param = v
    elif isinstance(v, float):
        p.double_param = v
    else:
        p.string_param = v
    return p


def infer_req(model, inputs, outputs=None, params=None, rid=None, raw=True, version=""):
    """inputs: [(name, datatype, shape, flat values)]; outputs: [(name, {params})]."""
    q = pb.ModelInferRequest(model_name=model, model_version=version)
    if rid is not None:
        q.id = rid
    for k, v in (params or {}).items():
        q.parameters[k].CopyFrom(param(v))
    for name, dt, shape, vals in inputs:
        t = q.inputs.add(name=name, datatype=dt, shape=shape)
        if raw:
            q.raw_input_contents.append(struct.pack("<%d%s" % (len(vals), FMT[dt]), *vals))
        else:
            field = {"FP32": "fp32_contents", "FP64": "fp64_contents", "BOOL": "bool_contents",
                     "INT64": "int64_contents", "UINT64": "uint64_contents",
                     "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
                     "UINT8": "uint_contents", "UINT16": "uint_contents",
                     "UINT32": "uint_contents"}[dt]
            getattr(t.contents, field).extend(vals)
    for name, ps in outputs or []:
        o = q.outputs.add(name=name)
        for k, v in ps.items():
            o.parameters[k].CopyFrom(param(v))
    return q


def outputs(r):
    """{name: (datatype, shape, raw bytes, values)} of a ModelInferResponse."""
    res = {}
    for i, o in enumerate(r.outputs):
        raw = r.raw_output_contents[i] if i < len(r.raw_output_contents) else None
        vals = None
        if raw is not None and o.datatype == "BYTES":
            vals, k = [], 0
            while k < len(raw):
                n = struct.unpack_from("<I", raw, k)[0]
                vals.append(raw[k + 4:k + 4 + n].decode())
                k += 4 + n
        elif raw is not None:
            vals = list(struct.unpack("<%d%s" % (len(raw) // struct.calcsize(FMT[o.datatype]),
                                                FMT[o.datatype]), raw))
        res[o.name] = (o.datatype, list(o.shape), raw, vals)
    return res


def rest_raw(ans):
    """{name: (datatype, shape, raw bytes)} of a REST binary answer (rest.decode_answer)."""
    res = {}
    for o in ans.get("outputs", []):
        vals = o["values"]
        if o["datatype"] == "BYTES":
            raw = b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in vals)
        else:
            raw = struct.pack("<%d%s" % (len(vals), FMT[o["datatype"]]), *vals)
        res[o["name"]] = (o["datatype"], o["shape"], raw)
    return res


def call(fn, req, **kw):
    """(response, None) or (None, grpc.RpcError)."""
    try:
        return fn(req, timeout=60, **kw), None
    except grpc.RpcError as e:
        return None, e


def rest_error(cl, model, head, tail=b""):
    hdr = {"Inference-Header-Content-Length": str(len(head))} if tail else {}
    st, h, b = cl.request("POST", "/v2/models/%s/infer" % model, head + tail, hdr)
    return st, rest.decode_answer(h, b)


# ---- the tests ----

def test_health_metadata(stub, cl, model, n_in):
    r, e = call(stub.ServerLive, pb.ServerLiveRequest())
    check(r is not None and r.live, "ServerLive: live", e)
    r, e = call(stub.ServerReady, pb.ServerReadyRequest())
    check(r is not None and r.ready, "ServerReady: ready", e)
    r, e = call(stub.ModelReady, pb.ModelReadyRequest(name=model))
    check(r is not None and r.ready, "ModelReady %s: ready" % model, e)
    r, e = call(stub.ModelReady, pb.ModelReadyRequest(name=model, version="1"))
    check(r is not None and r.ready, "ModelReady %s version 1: ready" % model, e)
    for name, v in (("no-such-model", ""), (model, "9")):
        r, e = call(stub.ModelReady, pb.ModelReadyRequest(name=name, version=v))
        check(r is not None and not r.ready, "ModelReady %s version %r: not ready (OK, as Triton)"
              % (name, v), e)
    st, sm = cl.get_json("/v2")
    r, e = call(stub.ServerMetadata, pb.ServerMetadataRequest())
    check(r is not None and r.name == sm["name"] == "spikeserve" and r.version == sm["version"]
          and list(r.extensions) == sm["extensions"] and "sequence" in r.extensions,
          "ServerMetadata equals GET /v2", (r, sm))
    st, mm = cl.get_json("/v2/models/%s" % model)
    r, e = call(stub.ModelMetadata, pb.ModelMetadataRequest(name=model))

    def tensors(ts):
        return [(t.name, t.datatype, list(t.shape)) for t in ts]

    check(r is not None and r.name == model and list(r.versions) == mm["versions"]
          and r.platform == mm["platform"]
          and tensors(r.inputs) == [(t["name"], t["datatype"], t["shape"]) for t in mm["inputs"]]
          and tensors(r.outputs) == [(t["name"], t["datatype"], t["shape"]) for t in mm["outputs"]]
          and ("spikes", "FP32", [-1, n_in]) in tensors(r.inputs)
          and ("prediction", "INT32", [1]) in tensors(r.outputs),
          "ModelMetadata equals GET /v2/models/%s (inputs, outputs, shapes)" % model, (r, mm))
    r, e = call(stub.ModelMetadata, pb.ModelMetadataRequest(name="no-such-model"))
    st, ans = cl.get_json("/v2/models/no-such-model")
    check(e is not None and e.code() == grpc.StatusCode.NOT_FOUND and e.details() == ans["error"],
          "ModelMetadata of an unknown model: NOT_FOUND with REST's message", e)
    r, e = call(stub.ModelMetadata, pb.ModelMetadataRequest(name=model, version="2"))
    check(e is not None and e.code() == grpc.StatusCode.NOT_FOUND, "an unknown version: NOT_FOUND",
          e)
    st, cfg = cl.get_json("/v2/models/%s/config" % model)
    r, e = call(stub.ModelConfig, pb.ModelConfigRequest(name=model))
    c = r.config if r else None
    check(c is not None and c.name == model and c.platform == cfg["platform"]
          and c.backend == "spikeserve" and c.max_batch_size == 0
          and list(c.version_policy.specific.versions) == [1]
          and [(i.name, model_config_pb2.DataType.Name(i.data_type), list(i.dims), i.optional)
               for i in c.input] == [(i["name"], i["data_type"], i["dims"], i["optional"])
                                     for i in cfg["input"]]
          and [o.name for o in c.output] == [o["name"] for o in cfg["output"]]
          and c.sequence_batching.max_sequence_idle_microseconds
          == cfg["sequence_batching"]["max_sequence_idle_microseconds"]
          and c.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
          and c.parameters["n_in"].string_value == str(n_in),
          "ModelConfig equals GET /v2/models/%s/config" % model, (r, cfg))
    r, e = call(stub.ModelConfig, pb.ModelConfigRequest(name="nope"))
    check(e is not None and e.code() == grpc.StatusCode.NOT_FOUND, "ModelConfig unknown: NOT_FOUND")
    st, idx = cl.request("POST", "/v2/repository/index", b"{}")[::2]
    idx = json.loads(idx)
    r, e = call(stub.RepositoryIndex, pb.RepositoryIndexRequest(ready=True))
    check(r is not None and [(m.name, m.version, m.state) for m in r.models]
          == [(m["name"], m["version"], m["state"]) for m in idx] and len(r.models) >= 2,
          "RepositoryIndex equals POST /v2/repository/index (%d models)" % len(idx), (r, idx))


def test_infer(stub, cl, model, n_in):
    rng = random.Random(5)
    steps = 12
    ev = rest.rand_events(rng, steps, n_in, 300)
    flat = [float(x) for e in ev for x in e]
    st, ref = rest.v1(cl, "POST", "/v1/models/%s/infer" % model,
                      {"steps": steps, "events": [list(e) for e in ev],
                       "outputs": ["spikes", "readout", "readout_all"]})
    st, ra = cl.infer(model, [("events", "FP32", [len(ev), 3], flat)],
                      params={"steps": steps, "binary_data_output": True})
    rref = rest_raw(ra)
    for raw in (True, False):
        how = "raw_input_contents" if raw else "typed fp32_contents"
        r, e = call(stub.ModelInfer, infer_req(model, [("events", "FP32", [len(ev), 3], flat)],
                                               params={"steps": steps}, rid="g-1", raw=raw))
        if not check(r is not None, "ModelInfer (%s): OK" % how, e):
            continue
        o = outputs(r)
        check(r.model_name == model and r.model_version == "1" and r.id == "g-1"
              and list(o) == ["output_spikes", "readout", "readout_all", "prediction"]
              and len(r.raw_output_contents) == 4 and all(not t.HasField("contents")
                                                          for t in r.outputs),
              "every output, in raw_output_contents, id echoed (%s)" % how, r)
        check(all(o[k][:3] == rref[k] for k in rref),
              "outputs bit-identical to REST's binary outputs (%s)" % how,
              [(k, o[k][:2], rref[k][:2]) for k in rref])
        check(rest.close(o["readout"][3], ref["readout"])
              and rest.close(o["output_spikes"][3], [x for s in ref["spikes"] for x in s])
              and o["output_spikes"][1] == [len(ref["spikes"]), 3]
              and rest.close(o["readout_all"][3], rest.flatten(ref["readout_steps"]))
              and o["prediction"][3] == [ref["prediction"]["index"]],
              "outputs equal v1 /infer's for the same batch (%s)" % how)
    # v1's own gRPC Infer (float32 on the wire too): bit for bit
    b = api_pb2.SpikeBatch(model=model, steps=steps, outputs=["spikes", "readout", "readout_all"])
    for st_, inp, val in ev:
        b.events.add(step=int(st_), input=int(inp), value=float(val))
    v1g = service_pb2_grpc.SpikeserveStub(CHANNEL).Infer(b, timeout=60)
    r, e = call(stub.ModelInfer, infer_req(model, [("events", "FP32", [len(ev), 3], flat)],
                                           params={"steps": steps}))
    o = outputs(r) if r else {}
    sp = [x for s_ in v1g.spikes for x in (float(s_.step), float(s_.neuron), s_.value)]
    check(r is not None
          and o["readout"][2] == struct.pack("<%df" % len(v1g.readout), *v1g.readout)
          and o["readout_all"][2] == b"".join(struct.pack("<%df" % len(row.values), *row.values)
                                              for row in v1g.readout_steps)
          and o["output_spikes"][2] == struct.pack("<%df" % len(sp), *sp)
          and o["prediction"][3] == [v1g.prediction.index],
          "outputs bit-identical to v1's gRPC Infer (spikeserve.v1.Spikeserve) for the batch", e)
    # requested outputs, classification (BYTES raw), version
    r, e = call(stub.ModelInfer, infer_req(model, [("events", "FP32", [len(ev), 3], flat)],
                                           params={"steps": steps}, version="1",
                                           outputs=[("prediction", {}),
                                                    ("readout", {"classification": 3})]))
    o = outputs(r) if r else {}
    want = sorted(range(10), key=lambda i: -ref["readout"][i])[:3]
    parts = [v.split(":") for v in o["readout"][3]] if "readout" in o else []
    check(r is not None and list(o) == ["prediction", "readout"]
          and o["readout"][0] == "BYTES" and o["readout"][1] == [3]
          and [int(p[1]) for p in parts] == want
          and all(p[2] == spikefix.LABELS[int(p[1])] for p in parts)
          and o["prediction"][3] == [ref["prediction"]["index"]],
          "requested outputs only; classification top-3 as raw BYTES", (r, e))
    # REST's binary switches sent by a client over gRPC change nothing: outputs stay raw
    q = infer_req(model, [("events", "FP32", [len(ev), 3], flat)],
                  params={"steps": steps, "binary_data_output": False},
                  outputs=[("readout", {"binary_data": False})])
    q.inputs[0].parameters["binary_data_size"].int64_param = 7
    r, e = call(stub.ModelInfer, q)
    check(r is not None and outputs(r)["readout"][2] == rref["readout"][2],
          "binary_data_output / binary_data / binary_data_size parameters are ignored: raw", e)
    # dense spikes in datatypes, raw and typed
    dsteps = 6
    dense = [[1.0 if rng.random() < 0.1 else 0.0 for _ in range(n_in)] for _ in range(dsteps)]
    st, rd = rest.v1(cl, "POST", "/v1/models/%s/infer" % model,
                     {"steps": dsteps, "dense": dense, "outputs": ["readout"]})
    dflat = [x for row in dense for x in row]
    first = None
    for dt, conv in (("FP32", float), ("FP64", float), ("INT32", int), ("BOOL", bool),
                     ("UINT8", int), ("INT8", int), ("INT64", int), ("UINT16", int)):
        for raw in (True, False):
            r, e = call(stub.ModelInfer, infer_req(model, [("spikes", dt, [dsteps, n_in],
                                                            [conv(x) for x in dflat])],
                                                   outputs=[("readout", {})], raw=raw))
            got = outputs(r)["readout"][2] if r else None
            first = first or got
            check(r is not None and got == first
                  and rest.close(outputs(r)["readout"][3], rd["readout"]),
                  "dense spikes %s (%s): readout equals v1's, bytes equal FP32 raw's"
                  % (dt, "raw" if raw else "typed"), e)


def seq_params(sid, start, end, steps):
    return {"sequence_id": sid, "sequence_start": start, "sequence_end": end, "steps": steps}


def test_sequences(stub, cl, model, n_in):
    rng = random.Random(9)
    steps = 8
    batches = [rest.rand_events(rng, steps, n_in, 120) for _ in range(4)]
    st, s = rest.v1(cl, "POST", "/v1/models/%s/sessions" % model, {})
    refs = []
    for b in batches:
        st, r = rest.v1(cl, "POST", "/v1/sessions/%s/steps" % s["session_id"],
                        {"steps": steps, "events": [list(e) for e in b], "outputs": ["readout"]})
        refs.append(r["readout"])
    rest.v1(cl, "DELETE", "/v1/sessions/%s" % s["session_id"])

    def req(sid, i, start, end, rid=None):
        b = batches[i]
        return infer_req(model, [("events", "FP32", [len(b), 3], [float(x) for e in b for x in e])],
                         params=seq_params(sid, start, end, steps), outputs=[("readout", {})],
                         rid=rid)

    r, e = call(stub.ModelInfer, req(4242, 0, False, False))
    check(e is not None and e.code() == grpc.StatusCode.INVALID_ARGUMENT and "START" in e.details(),
          "a sequence not started: INVALID_ARGUMENT naming the START flag", e)
    ids = [501, "beta"]
    rest_answers = {}
    for i in range(len(batches)):
        for sid in ids:
            r, e = call(stub.ModelInfer, req(sid, i, i == 0, i == len(batches) - 1))
            check(r is not None and rest.close(outputs(r)["readout"][3], refs[i]),
                  "ModelInfer sequence %r batch %d (start=%s end=%s) continues the state"
                  % (sid, i, i == 0, i == len(batches) - 1), e)
            if r is not None:
                rest_answers[(sid, i)] = outputs(r)["readout"][2]
            if i == 1:
                name = "oip-%s-%s" % (model, sid if isinstance(sid, int) else "s-" + sid)
                st, info = rest.v1(cl, "GET", "/v1/sessions/%s" % name)
                check(st == 200 and info["t"] == 2 * steps,
                      "v1 sees gRPC sequence %r as session %s" % (sid, name), info)
    # the same sequence over REST: bit-identical readouts
    for i in range(len(batches)):
        st, ans = rest.seq_req(cl, model, 601, i == 0, i == len(batches) - 1, batches[i], steps)
        if st == 200:
            raw = struct.pack("<%df" % len(rest.out(ans, "readout")["values"]),
                              *rest.out(ans, "readout")["values"])
        check(st == 200 and raw == rest_answers.get((501, i)),
              "REST sequence batch %d: readout bit-identical to gRPC's" % i, ans)
    # the same batches through a v1 session over v1's gRPC Step: bit for bit
    v1s = service_pb2_grpc.SpikeserveStub(CHANNEL)
    sess = v1s.OpenSession(api_pb2.OpenSessionRequest(model=model), timeout=30)
    same = True
    for i, b in enumerate(batches):
        sb = api_pb2.SpikeBatch(session_id=sess.session_id, steps=steps, outputs=["readout"])
        for st_, inp, val in b:
            sb.events.add(step=int(st_), input=int(inp), value=float(val))
        res = v1s.Step(sb, timeout=30)
        same = same and struct.pack("<%df" % len(res.readout), *res.readout) \
            == rest_answers.get((501, i))
    v1s.CloseSession(service_pb2.SessionRef(session_id=sess.session_id), timeout=30)
    check(same, "gRPC sequence readouts bit-identical to a v1 session's gRPC Step answers")
    for sid in ids:
        r, e = call(stub.ModelInfer, req(sid, 0, False, False))
        check(e is not None and e.code() == grpc.StatusCode.INVALID_ARGUMENT,
              "sequence %r after its end: INVALID_ARGUMENT" % sid, e)
    # retry by id: the stored answer, no second step
    r1, _ = call(stub.ModelInfer, req(701, 0, True, False, rid="x1"))
    r2, _ = call(stub.ModelInfer, req(701, 1, False, False, rid="x2"))
    r2b, e = call(stub.ModelInfer, req(701, 1, False, False, rid="x2"))
    st, info = rest.v1(cl, "GET", "/v1/sessions/oip-%s-701" % model)
    check(r2b is not None and r2b.id == "x2" and r2 is not None
          and r2b.raw_output_contents == r2.raw_output_contents and info.get("t") == 2 * steps,
          "a repeated id: the stored answer, the sequence steps once (t = %s)" % info.get("t"), e)
    r3, e = call(stub.ModelInfer, req(701, 2, False, True, rid="x3"))
    check(r3 is not None and rest.close(outputs(r3)["readout"][3], refs[2]),
          "after the retry the sequence continues and ends", e)
    # ModelStreamInfer: two sequences interleaved on one call, a bad request in the middle
    msgs, want = [], []
    for i in range(len(batches)):
        for sid in (801, "gamma"):
            msgs.append(req(sid, i, i == 0, i == len(batches) - 1, rid="%s-%d" % (sid, i)))
            want.append(("%s-%d" % (sid, i), refs[i]))
        if i == 1:
            msgs.append(infer_req("no-such-model", [("events", "FP32", [1, 3], [0.0, 1.0, 1.0])],
                                  params={"steps": 2}, rid="bad"))
            want.append(("bad", None))
    try:
        answers = list(stub.ModelStreamInfer(iter(msgs), timeout=60))
        err = None
    except grpc.RpcError as ex:
        answers, err = [], ex
    check(err is None and len(answers) == len(msgs),
          "ModelStreamInfer: one answer per request (%d), the call ends OK" % len(msgs), err)
    ok = True
    for a, (rid, ref) in zip(answers, want):
        if ref is None:
            ok = ok and a.error_message != "" and "no-such-model" in a.error_message \
                and not a.HasField("infer_response")
        else:
            ok = ok and a.error_message == "" and a.infer_response.id == rid \
                and rest.close(outputs(a.infer_response)["readout"][3], ref)
    check(ok and len(answers) == len(want),
          "ModelStreamInfer: in order, each sequence continues, the error in its place", answers)
    for sid in (801, "gamma"):
        name = "oip-%s-%s" % (model, sid if isinstance(sid, int) else "s-" + sid)
        st, info = rest.v1(cl, "GET", "/v1/sessions/%s" % name)
        check(st == 404, "streamed sequence %r closed by sequence_end" % sid, info)
    # a stream cancelled by the client with requests in flight: the server goes on
    import threading
    stop = threading.Event()

    def slow():
        for i in range(1000):
            if stop.is_set():
                return
            yield req(901, i % len(batches), i == 0, False)

    it = stub.ModelStreamInfer(slow(), timeout=60)
    got = []
    for a in it:
        got.append(a)
        if len(got) == 5:
            it.cancel()
            stop.set()
            break
    r, e = call(stub.ServerLive, pb.ServerLiveRequest())
    st, info = rest.v1(cl, "GET", "/v1/sessions/oip-%s-901" % model)
    check(len(got) == 5 and all(a.error_message == "" for a in got) and r is not None and r.live
          and st == 200 and info["t"] >= 5 * steps,
          "ModelStreamInfer cancelled after 5 answers: the server lives, the sequence keeps "
          "what ran (t = %s)" % info.get("t"), (e, info))
    rest.v1(cl, "DELETE", "/v1/sessions/oip-%s-901" % model)
    # many messages in flight on one stream (past the window), stateless
    b = batches[0]
    one = infer_req(model, [("events", "FP32", [len(b), 3], [float(x) for e in b for x in e])],
                    params={"steps": steps}, outputs=[("readout", {})])
    n = 150
    try:
        many = list(stub.ModelStreamInfer(iter([one] * n), timeout=120))
    except grpc.RpcError as ex:
        many = [ex]
    check(len(many) == n and all(isinstance(a, pb.ModelStreamInferResponse)
                                 and a.error_message == ""
                                 and a.infer_response.raw_output_contents
                                 == many[0].infer_response.raw_output_contents for a in many)
          and rest.close(outputs(many[0].infer_response)["readout"][3], refs[0]),
          "ModelStreamInfer: %d stateless requests, all answered, identical" % n, many[:1])


def fp16_req(model):
    q = pb.ModelInferRequest(model_name=model)
    q.parameters["steps"].int64_param = 2
    q.inputs.add(name="events", datatype="FP16", shape=[2, 3])
    q.raw_input_contents.append(b"\0" * 12)
    return q


def test_errors(stub, cl, model, n_in):
    ev = [0.0, 1.0, 1.0, 1.0, 2.0, 1.0]
    cases = [
        ("unknown model", infer_req("no-such", [("events", "FP32", [2, 3], ev)],
                                    params={"steps": 2}),
         grpc.StatusCode.NOT_FOUND,
         {"inputs": [{"name": "events", "datatype": "FP32", "shape": [2, 3], "data": ev}],
          "parameters": {"steps": 2}}, "no-such"),
        ("unknown input", infer_req(model, [("pixels", "FP32", [2, 3], ev)], params={"steps": 2}),
         grpc.StatusCode.INVALID_ARGUMENT,
         {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [2, 3], "data": ev}],
          "parameters": {"steps": 2}}, model),
        ("bad shape", infer_req(model, [("spikes", "FP32", [2, 5], [0.0] * 10)]),
         grpc.StatusCode.INVALID_ARGUMENT,
         {"inputs": [{"name": "spikes", "datatype": "FP32", "shape": [2, 5], "data": [0.0] * 10}]},
         model),
        ("unsupported datatype FP16", fp16_req(model), grpc.StatusCode.INVALID_ARGUMENT,
         {"inputs": [{"name": "events", "datatype": "FP16", "shape": [2, 3], "data": ev}],
          "parameters": {"steps": 2}}, model),
        ("unknown datatype", infer_req(model, [("events", "FP32", [2, 3], ev)],
                                       params={"steps": 2}), grpc.StatusCode.INVALID_ARGUMENT,
         {"inputs": [{"name": "events", "datatype": "FLOAT32", "shape": [2, 3], "data": ev}],
          "parameters": {"steps": 2}}, model),
        ("missing inputs", infer_req(model, [], params={"steps": 2}),
         grpc.StatusCode.INVALID_ARGUMENT,
         {"inputs": [], "parameters": {"steps": 2}}, model),
        ("events without steps", infer_req(model, [("events", "FP32", [2, 3], ev)]),
         grpc.StatusCode.INVALID_ARGUMENT,
         {"inputs": [{"name": "events", "datatype": "FP32", "shape": [2, 3], "data": ev}]}, model),
        ("negative dimension", infer_req(model, [("events", "FP32", [-2, 3], [])],
                                         params={"steps": 2}, raw=False),
         grpc.StatusCode.INVALID_ARGUMENT,
         {"inputs": [{"name": "events", "datatype": "FP32", "shape": [-2, 3], "data": []}],
          "parameters": {"steps": 2}}, model),
        ("steps over --max-steps", infer_req(model, [("events", "FP32", [2, 3], ev)],
                                             params={"steps": 10 ** 9}),
         grpc.StatusCode.RESOURCE_EXHAUSTED,
         {"inputs": [{"name": "events", "datatype": "FP32", "shape": [2, 3], "data": ev}],
          "parameters": {"steps": 10 ** 9}}, model),
        ("negative sequence_id", infer_req(model, [("events", "FP32", [2, 3], ev)],
                                           params={"steps": 2, "sequence_id": -3}),
         grpc.StatusCode.INVALID_ARGUMENT,
         {"inputs": [{"name": "events", "datatype": "FP32", "shape": [2, 3], "data": ev}],
          "parameters": {"steps": 2, "sequence_id": -3}}, model),
    ]
    cases[4][1].inputs[0].datatype = "FLOAT32"
    for what, q, code, rest_req, rest_model in cases:
        r, e = call(stub.ModelInfer, q)
        st, ans = rest_error(cl, rest_model, json.dumps(rest_req).encode())
        check(e is not None and e.code() == code and isinstance(ans, dict)
              and e.details() == ans.get("error"),
              "%s: %s with REST's message (%d)" % (what, code.name, st), (e, ans))
    # byte-level errors: their REST twin uses binary_data_size
    q = infer_req(model, [("events", "FP32", [2, 3], ev)], params={"steps": 2})
    q.raw_input_contents[0] = q.raw_input_contents[0][:-4]
    r, e = call(stub.ModelInfer, q)
    check(e is not None and e.code() == grpc.StatusCode.INVALID_ARGUMENT and "24" in e.details()
          and "20" in e.details() and "byte size of the contents" in e.details()
          and "binary_data_size" not in e.details(),
          "raw_input_contents of the wrong size: INVALID_ARGUMENT naming both sizes in gRPC's "
          "words", e)
    q = infer_req(model, [("events", "FP32", [2, 3], ev[:3])], params={"steps": 2}, raw=False)
    r, e = call(stub.ModelInfer, q)
    check(e is not None and e.code() == grpc.StatusCode.INVALID_ARGUMENT and "12" in e.details()
          and "24" in e.details(), "typed contents with too few values: INVALID_ARGUMENT", e)
    q = infer_req(model, [("events", "FP32", [2, 3], ev)], params={"steps": 2})
    q.raw_input_contents.append(b"\0\0\0\0")
    r, e = call(stub.ModelInfer, q)
    check(e is not None and e.code() == grpc.StatusCode.INVALID_ARGUMENT
          and "raw_input_contents" in e.details(), "more raw_input_contents than inputs", e)
    q = infer_req(model, [("events", "FP32", [2, 3], ev)], params={"steps": 2}, raw=False)
    q.raw_input_contents.append(struct.pack("<6f", *ev))
    r, e = call(stub.ModelInfer, q)
    check(e is not None and e.code() == grpc.StatusCode.INVALID_ARGUMENT,
          "contents and raw_input_contents together: INVALID_ARGUMENT", e)
    q = infer_req(model, [("events", "FP32", [2, 3], ev)], params={"steps": 2}, raw=False)
    q.inputs[0].contents.int_contents.append(1)
    r, e = call(stub.ModelInfer, q)
    check(e is not None and e.code() == grpc.StatusCode.INVALID_ARGUMENT,
          "typed contents in a field of another datatype: INVALID_ARGUMENT", e)
    q = infer_req(model, [("spikes", "INT8", [1, n_in], [0] * n_in)], raw=False)
    q.inputs[0].contents.int_contents[0] = 300
    r, e = call(stub.ModelInfer, q)
    check(e is not None and e.code() == grpc.StatusCode.INVALID_ARGUMENT and "INT8" in e.details(),
          "int_contents out of range of INT8: INVALID_ARGUMENT", e)
    q = infer_req(model, [("events", "FP32", [2, 3], [0.0, 1.0, float("nan"), 1, 2, 1])],
                  params={"steps": 2})
    r, e = call(stub.ModelInfer, q)
    check(e is not None and e.code() == grpc.StatusCode.INVALID_ARGUMENT,
          "a NaN value: INVALID_ARGUMENT", e)
    q = infer_req(model, [("events", "FP32", [2, 3], ev)], params={"steps": 2},
                  outputs=[("nothing", {})])
    r, e = call(stub.ModelInfer, q)
    check(e is not None and e.code() == grpc.StatusCode.INVALID_ARGUMENT
          and "nothing" in e.details(), "an unknown output: INVALID_ARGUMENT", e)
    q = infer_req(model, [("events", "FP32", [2, 3], ev)], params={"steps": 2,
                                                                   "sequence_id": "a b"})
    q.parameters["sequence_start"].bool_param = True
    r, e = call(stub.ModelInfer, q)
    check(e is not None and e.code() == grpc.StatusCode.INVALID_ARGUMENT,
          "a sequence_id that makes no session name: INVALID_ARGUMENT", e)
    # a message that is not a ModelInferRequest
    ch = CHANNEL
    f = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                       request_serializer=lambda b: b, response_deserializer=lambda b: b)
    try:
        f(b"\xff\xff\xff", timeout=30)
        e = None
    except grpc.RpcError as ex:
        e = ex
    check(e is not None and e.code() == grpc.StatusCode.INVALID_ARGUMENT,
          "bytes that are not a ModelInferRequest: INVALID_ARGUMENT", e)
    f = ch.unary_unary("/inference.GRPCInferenceService/RepositoryModelLoad",
                       request_serializer=lambda b: b, response_deserializer=lambda b: b)
    try:
        f(b"", timeout=30)
        e = None
    except grpc.RpcError as ex:
        e = ex
    check(e is not None and e.code() == grpc.StatusCode.UNIMPLEMENTED,
          "a method spikeserve does not offer: UNIMPLEMENTED", e)
    # a map key twice on the wire: the last entry counts, as protobuf reads maps
    q = infer_req(model, [("events", "FP32", [2, 3], ev)], params={"steps": 2},
                  outputs=[("readout_all", {})])
    extra = pb.ModelInferRequest()
    extra.parameters["steps"].int64_param = 5
    r, e = call(ch.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                               request_serializer=lambda b: b,
                               response_deserializer=pb.ModelInferResponse.FromString),
                q.SerializeToString() + extra.SerializeToString())
    check(r is not None and outputs(r)["readout_all"][1] == [5, 10],
          "parameters with a key twice on the wire: the last one counts (steps 5)", e)
    # random bytes and truncated real requests to every method: an error or an answer, never
    # a dead server (the ASan tier runs this against the sanitized server)
    rng = random.Random(13)
    good = infer_req(model, [("events", "FP32", [2, 3], ev)], params={"steps": 2,
                                                                       "sequence_id": "fz"}
                     ).SerializeToString()
    codes = set()
    for name in ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata",
                 "ModelInfer", "ModelConfig", "ModelStatistics", "RepositoryIndex"):
        f = ch.unary_unary("/inference.GRPCInferenceService/" + name,
                           request_serializer=lambda b: b, response_deserializer=lambda b: b)
        for k in range(40):
            if k % 2:
                msg = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
            else:
                msg = good[:rng.randrange(len(good))]
                if rng.random() < 0.5 and msg:
                    i = rng.randrange(len(msg))
                    msg = msg[:i] + bytes([rng.randrange(256)]) + msg[i + 1:]
            try:
                f(msg, timeout=30)
                codes.add("OK")
            except grpc.RpcError as ex:
                codes.add(ex.code().name)
    r, e = call(stub.ServerLive, pb.ServerLiveRequest())
    check(r is not None and r.live and codes <= {"OK", "INVALID_ARGUMENT", "NOT_FOUND",
                                                  "RESOURCE_EXHAUSTED"},
          "360 random and mangled messages to every method: OK or a 4xx-like status, the "
          "server lives (%s)" % sorted(codes), e)


def test_stats(stub, cl, model, n_in):
    def get():
        r, e = call(stub.ModelStatistics, pb.ModelStatisticsRequest(name=model))
        return r.model_stats[0] if r and len(r.model_stats) == 1 else None

    s0 = get()
    ev = [0.0, 1.0, 1.0]
    for _ in range(3):
        call(stub.ModelInfer, infer_req(model, [("events", "FP32", [1, 3], ev)],
                                        params={"steps": 2}))
    call(stub.ModelInfer, infer_req(model, [("events", "FP32", [1, 3], ev)]))  # no steps
    s1 = get()
    check(s0 is not None and s1 is not None and s1.name == model and s1.version == "1"
          and s1.inference_count == s0.inference_count + 3
          and s1.inference_stats.success.count == s0.inference_stats.success.count + 3
          and s1.inference_stats.fail.count == s0.inference_stats.fail.count + 1
          and s1.inference_stats.success.ns > s0.inference_stats.success.ns
          and s1.last_inference > 0,
          "ModelStatistics: 3 successes and 1 failure over gRPC counted", (s0, s1))
    st, js = cl.get_json("/v2/models/%s/stats" % model)
    j = js["model_stats"][0]
    check(j["inference_count"] == s1.inference_count
          and j["inference_stats"]["fail"]["count"] == s1.inference_stats.fail.count,
          "ModelStatistics equals GET /v2/models/%s/stats" % model, (j, s1))
    r, e = call(stub.ModelStatistics, pb.ModelStatisticsRequest())
    check(r is not None and len(r.model_stats) >= 2, "ModelStatistics of every model", e)
    # /metrics counts the calls by method and status
    st, h, body = cl.request("GET", "/metrics")
    text = body.decode()

    def count(method, code):
        pre = 'spikeserve_grpc_calls_total{method="inference.GRPCInferenceService/%s",code="%d"} ' \
            % (method, code)
        return sum(int(line[len(pre):]) for line in text.splitlines() if line.startswith(pre))

    check(st == 200 and count("ModelInfer", 0) >= 3 and count("ModelInfer", 3) >= 1
          and count("ModelStreamInfer", 0) >= 1 and count("ModelStatistics", 0) >= 2,
          "/metrics counts OIP gRPC calls by method and code (ModelInfer OK %d, "
          "INVALID_ARGUMENT %d)" % (count("ModelInfer", 0), count("ModelInfer", 3)))


def test_accuracy(stub, model):
    n = int(os.environ.get("OIP_GRPC_ACCURACY_N", "2000"))
    if n == 0:
        return
    d = "/usr/share/datasets/fashion-mnist"
    images = rest.load_idx(os.path.join(d, "t10k-images-idx3-ubyte.gz"))
    labels = rest.load_idx(os.path.join(d, "t10k-labels-idx1-ubyte.gz"))
    import re
    card = open(os.path.join(ROOT, "models", "zoo", model + ".md")).read()
    want = float(re.search(r"accuracy_c:\s*([0-9.]+)", card).group(1))
    r, e = call(STUB.ModelConfig, pb.ModelConfigRequest(name=model))
    enc_steps = int(r.config.parameters["encoding_steps"].string_value)
    import urllib.request
    meta = json.loads(urllib.request.urlopen(URL + "/v1/models/" + model).read())
    enc = meta["encoding"]
    rng = random.Random(20261204)
    right = 0
    for i in range(n):
        px = images[i]
        ev = []
        for s in range(enc["steps"]):
            for j in range(784):
                if rng.random() < min(1.0, enc["gain"] * px[j] / 255.0):
                    ev.extend((float(enc["warmup_steps"] + s), float(j), 1.0))
        r, e = call(stub.ModelInfer, infer_req(model, [("events", "FP32", [len(ev) // 3, 3], ev)],
                                               params={"steps": enc_steps},
                                               outputs=[("prediction", {})]))
        if r is None:
            check(False, "%s: image %d infers" % (model, i), e)
            return
        right += outputs(r)["prediction"][3][0] == labels[i]
    acc = 100.0 * right / n
    check(abs(acc - want) <= 2.5, "%s: accuracy through gRPC ModelInfer %.2f %% on %d test images, "
          "card %.2f %% (+-2.5 points, as test_oip.py)" % (model, acc, n, want))


def test_keys(models_dir):
    key, key2 = "k-oip-0123456789abcdef", "k-oip-other-fedcba9876543210"
    gf = os.path.join(tempfile.mkdtemp(prefix="oipg-"), "gport")
    with spikefix.Server(model_dir=models_dir, extra_args=[
            "--grpc-port", "any", "--grpc-port-file", gf, "--api-keys", key + "," + key2]) as srv:
        ch = grpc.insecure_channel("127.0.0.1:%d" % int(open(gf).read()))
        st = pbg.GRPCInferenceServiceStub(ch)
        good = (("authorization", "Bearer " + key),)
        bad = (("authorization", "Bearer nope"),)
        r, e = call(st.ServerLive, pb.ServerLiveRequest())
        check(r is not None and r.live, "with --api-keys: ServerLive needs no key (REST: open)", e)
        for name, q in (("ModelMetadata", pb.ModelMetadataRequest(name=srv.model)),
                        ("ModelInfer", infer_req(srv.model, [("events", "FP32", [1, 3],
                                                              [0.0, 1.0, 1.0])],
                                                 params={"steps": 2}))):
            fn = getattr(st, name)
            r, e = call(fn, q)
            check(e is not None and e.code() == grpc.StatusCode.UNAUTHENTICATED,
                  "%s without a key: UNAUTHENTICATED" % name, e)
            r, e = call(fn, q, metadata=bad)
            check(e is not None and e.code() == grpc.StatusCode.UNAUTHENTICATED,
                  "%s with an unknown key: UNAUTHENTICATED" % name, e)
            r, e = call(fn, q, metadata=good)
            check(r is not None, "%s with the key in authorization metadata: OK" % name, e)
        cl = rest.Client(srv.url)
        st_, h, b = cl.request("GET", "/v2/models/%s" % srv.model)
        check(st_ == 401, "REST /v2/models/%s without a key: 401" % srv.model, b)
        st_, h, b = cl.request("GET", "/v2/models/%s" % srv.model,
                               headers={"Authorization": "Bearer " + key})
        check(st_ == 200, "REST /v2/models/%s with the key: 200" % srv.model, b)
        st_, h, b = cl.request("GET", "/v2/health/ready")
        check(st_ == 200, "REST /v2/health/ready needs no key", b)
        # a sequence belongs to the key that started it, over gRPC and REST alike
        other = (("authorization", "Bearer " + key2),)
        ev = [0.0, 1.0, 1.0]

        def seq(start, md):
            return call(st.ModelInfer, infer_req(srv.model, [("events", "FP32", [1, 3], ev)],
                                                 params={"steps": 2, "sequence_id": 55,
                                                         "sequence_start": start,
                                                         "sequence_end": False}), metadata=md)

        r1, e1 = seq(True, good)
        r2, e2 = seq(False, other)
        r3, e3 = seq(True, other)
        r4, e4 = seq(False, good)
        check(r1 is not None and e2 is not None
              and e2.code() == grpc.StatusCode.INVALID_ARGUMENT and e3 is not None
              and e3.code() == grpc.StatusCode.FAILED_PRECONDITION and r4 is not None,
              "another key cannot step (INVALID_ARGUMENT: not started for it) nor restart "
              "(FAILED_PRECONDITION) a key's sequence; its owner goes on", (e1, e2, e3, e4))
        hdr = {"Authorization": "Bearer " + key2}
        body = json.dumps({"parameters": {"steps": 2, "sequence_id": 55, "sequence_start": False},
                           "inputs": [{"name": "events", "datatype": "FP32", "shape": [1, 3],
                                       "data": ev}]}).encode()
        st_, h, b = cl.request("POST", "/v2/models/%s/infer" % srv.model, body, hdr)
        check(st_ == 400, "REST /v2 infer with the other key: not its sequence (400)", b)
        hdr = {"Authorization": "Bearer " + key}
        st_, h, b = cl.request("POST", "/v2/models/%s/infer" % srv.model, body, hdr)
        check(st_ == 200, "REST /v2 infer with the owner's key steps the gRPC-started sequence",
              b)
        ch.close()


def test_readme_example(gport):
    import subprocess
    readme = open(os.path.join(ROOT, "README.md")).read()
    mark = readme.find("<!-- oip-grpc-example")
    start = readme.find("```python\n", mark) + 10
    code = readme[start:readme.find("```", start)].replace("127.0.0.1:8081", "127.0.0.1:%d" % gport)
    ex = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                        timeout=60)
    lines = ex.stdout.split("\n")[:-1]
    check(mark > 0 and ex.returncode == 0 and len(lines) == 5 and lines[0] == "True"
          and lines[1].split()[0] == "prediction" and 0 <= int(lines[1].split()[1]) < 10
          and lines[2:] == ["ok 10"] * 3,
          "the README's OIP gRPC example runs: ready, a prediction, a 3-request sequence streamed",
          (lines, ex.stderr[-500:]))


CHANNEL = None
STUB = None
URL = None


def main():
    global CHANNEL, STUB, URL
    tmp = tempfile.mkdtemp(prefix="oipg-")
    spikefix.write_tiny_model(os.path.join(tmp, "tiny.spk"))
    zoo = sorted(os.path.basename(p)[:-4]
                 for p in glob.glob(os.path.join(ROOT, "models", "zoo", "*.spk")))
    for z in zoo:
        os.symlink(os.path.join(ROOT, "models", "zoo", z + ".spk"), os.path.join(tmp, z + ".spk"))
    gf = os.path.join(tmp, "grpc-port")
    with spikefix.Server(model_dir=tmp, extra_args=["--grpc-port", "any",
                                                    "--grpc-port-file", gf]) as srv:
        URL = srv.url
        CHANNEL = grpc.insecure_channel("127.0.0.1:%d" % int(open(gf).read()))
        STUB = stub = pbg.GRPCInferenceServiceStub(CHANNEL)
        cl = rest.Client(srv.url)
        test_health_metadata(stub, cl, "tiny", 784)
        test_infer(stub, cl, "tiny", 784)
        test_sequences(stub, cl, "tiny", 784)
        test_errors(stub, cl, "tiny", 784)
        test_stats(stub, cl, "tiny", 784)
        if "fmnist" in zoo:
            test_readme_example(int(open(gf).read()))
            test_accuracy(stub, "fmnist")
        CHANNEL.close()
    test_keys(tmp)
    print("1..%d" % checks)
    if failures:
        print("# %d failed: %s" % (len(failures), "; ".join(failures[:20])))
        sys.exit(1)


if __name__ == "__main__":
    main()
