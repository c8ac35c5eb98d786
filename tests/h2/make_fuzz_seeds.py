#!/usr/bin/python3
"""make_fuzz_seeds.py DIR: seed inputs for tests/fuzz/fuzz_h2.c (first byte: bit 0 = the
harness prepends the client preface and SETTINGS, bits 1-3 = feed piece size). Uses
Debian's python3-hpack for the header blocks."""
import gzip
import os
import struct
import sys

import hpack

DATA, HEADERS, RST, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
ES, EH = 1, 4


def frame(t, fl, sid, p=b""):
    return struct.pack(">I", len(p))[1:] + bytes([t, fl]) + struct.pack(">I", sid) + p


def msg(b, flag=0):
    return bytes([flag]) + struct.pack(">I", len(b)) + b


def req(path, extra=()):
    return hpack.Encoder().encode([(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "f"),
            ("content-type", "application/grpc"), ("te", "trailers")] + list(extra))


def main(d):
    os.makedirs(d, exist_ok=True)
    seeds = {
        "unary": frame(HEADERS, EH, 1, req("/f.S/U")) +
                 frame(DATA, ES, 1, msg(b"hello")),
        "pause": frame(HEADERS, EH, 3, req("/f.S/P")) +
                 frame(DATA, 0, 3, msg(b"a") + msg(b"b") + msg(b"c")) + frame(DATA, ES, 3, b""),
        "stream": frame(HEADERS, EH, 5, req("/f.S/S", [("grpc-timeout", "1n")])) +
                  frame(DATA, ES, 5, msg(b"x" * 300)),
        "gzip": frame(HEADERS, EH, 7, req("/f.S/U", [("grpc-encoding", "gzip")])) +
                frame(DATA, ES, 7, msg(gzip.compress(b"zz" * 100, mtime=0), 1)),
        "bomb": frame(HEADERS, EH, 9, req("/f.S/U", [("grpc-encoding", "gzip")])) +
                frame(DATA, ES, 9, msg(gzip.compress(b"\0" * 100000, mtime=0), 1)),
        "cancel": frame(HEADERS, EH, 11, req("/f.S/S")) +
                  frame(DATA, 0, 11, msg(b"q")) + frame(RST, 0, 11, struct.pack(">I", 8)),
        "refused": frame(HEADERS, EH | ES, 13, req("/nope")) +
                   frame(PING, 0, 0, b"12345678") +
                   frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1000)),
        "short": frame(HEADERS, EH, 15, req("/f.S/U")) +
                 frame(DATA, ES, 15, b"\0\0\0\x03\xe8abc"),
    }
    for i, (name, body) in enumerate(seeds.items()):
        # piece sizes vary: 0 -> 4 bytes at a time, 7 -> 512
        with open(os.path.join(d, name), "wb") as f:
            f.write(bytes([1 | (i % 8) << 1]) + body)
    with open(os.path.join(d, "raw-preface"), "wb") as f:
        f.write(b"\x0e" + b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(SETTINGS, 0, 0) +
                frame(HEADERS, EH, 1, req("/f.S/U")) + frame(DATA, ES, 1, msg(b"r")))


main(sys.argv[1])
