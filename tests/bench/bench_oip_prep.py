#!/usr/bin/env python3
"""bench_oip_prep.py WORKDIR N_SEQUENCES MODEL PORT: for tests/bench/bench_oip.sh.

Turns WORKDIR/bodies.ndjson (bench_server_prep.py's one-step batches) into WORKDIR/bodies.oip
(the same batches as OIP infer requests for tests/bench/oip.lua: a JSON header with a {SEQ}
placeholder, a tab, the hex of the binary FP32 [k, 3] events), then starts the sequences
1..N_SEQUENCES on the server at 127.0.0.1:PORT (one request each with sequence_start) and
checks that one of the benchmark's requests answers 200 with binary outputs. Also writes
WORKDIR/bodies.oipgrpc (the same batches as gRPC ModelInferRequests, hex, one a line, without
sequence_id: tests/bench/bench_grpc.c --oip appends it) and WORKDIR/seqs.txt (1..N_SEQUENCES),
so the gRPC row steps the same sequences with the same batches.
"""
import http.client
import json
import os
import struct
import sys


def header(n_events, seq="{SEQ}", start=False):
    return json.dumps({
        "parameters": {"sequence_id": 0, "sequence_start": start, "sequence_end": False,
                       "steps": 1, "binary_data_output": True},
        "inputs": [{"name": "events", "datatype": "FP32", "shape": [n_events, 3],
                    "parameters": {"binary_data_size": 12 * n_events}}],
        "outputs": [{"name": "output_spikes"}, {"name": "readout"}, {"name": "prediction"}],
    }, separators=(",", ":")).replace('"sequence_id":0', '"sequence_id":' + seq)


def write_grpc(work, model, lines, nseq):
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    sys.path.insert(0, os.path.join(root, "proto"))
    import grpc_service_pb2 as pb
    with open(os.path.join(work, "bodies.oipgrpc"), "w") as f:
        for h, tail in lines:
            q = pb.ModelInferRequest(model_name=model)
            q.parameters["sequence_start"].bool_param = False
            q.parameters["sequence_end"].bool_param = False
            q.parameters["steps"].int64_param = 1
            q.inputs.add(name="events", datatype="FP32", shape=[len(tail) // 12, 3])
            for name in ("output_spikes", "readout", "prediction"):
                q.outputs.add(name=name)
            q.raw_input_contents.append(tail)
            f.write(q.SerializeToString().hex() + "\n")
    with open(os.path.join(work, "seqs.txt"), "w") as f:
        f.write("".join("%d\n" % s for s in range(1, nseq + 1)))


def main():
    work, nseq, model, port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    lines = []
    with open(os.path.join(work, "bodies.ndjson")) as f:
        for line in f:
            b = json.loads(line)
            ev = [(e[0], e[1], e[2] if len(e) > 2 else 1.0) for e in b["events"]]
            tail = b"".join(struct.pack("<3f", *e) for e in ev)
            lines.append((header(len(ev)), tail))
    with open(os.path.join(work, "bodies.oip"), "w") as f:
        for h, t in lines:
            f.write(h + "\t" + t.hex() + "\n")
    write_grpc(work, model, lines, nseq)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h0, t0 = lines[0]
    for s in range(1, nseq + 1):
        h = header(len(t0) // 12, str(s), True).encode()
        c.request("POST", "/v2/models/%s/infer" % model, h + t0,
                  {"Inference-Header-Content-Length": str(len(h))})
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            sys.exit("sequence %d: %d %s" % (s, r.status, body[:300]))
    h = h0.replace("{SEQ}", "1").encode()
    c.request("POST", "/v2/models/%s/infer" % model, h + t0,
              {"Inference-Header-Content-Length": str(len(h))})
    r = c.getresponse()
    body = r.read()
    hl = r.getheader("Inference-Header-Content-Length")
    if r.status != 200 or hl is None:
        sys.exit("sample request: %d %s" % (r.status, body[:300]))
    print(len(body), body[:int(hl)].decode()[:160])


if __name__ == "__main__":
    main()
