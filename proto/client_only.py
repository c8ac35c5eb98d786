#!/usr/bin/env python3
"""client_only.py FILE...: keep only the client side of grpc_tools' *_pb2_grpc.py files.

The server is C (server/grpc.c); Python only ever calls it (tests, benchmarks, examples).
grpc_tools also writes a servicer base class whose every method answers UNIMPLEMENTED and an
add_*Servicer_to_server() for a Python server: placeholders for a server we do not have, so
`make proto` drops them and keeps the *Stub classes (and anything else) unchanged.
"""
import re
import sys


def strip(text):
    out, skip = [], False
    for line in text.splitlines(keepends=True):
        top = re.match(r"(class|def) (\w+)", line)
        if top:
            name = top.group(2)
            skip = name.endswith("Servicer") or (name.startswith("add_") and
                                                name.endswith("Servicer_to_server"))
        elif line.strip() and not line[0].isspace() and not line.startswith("#"):
            skip = False
        if not skip:
            out.append(line)
    return re.sub(r"\n{3,}", "\n\n\n", "".join(out)).rstrip("\n") + "\n"


for path in sys.argv[1:]:
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(strip(text))
