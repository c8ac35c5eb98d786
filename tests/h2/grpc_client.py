#!/usr/bin/python3
"""grpc_client.py PORT SCENARIO...: drives build/tests/test_h2's echo service with
python3-grpcio (Debian), generic calls carrying raw bytes. Prints one "key=value" line per
observation; test_h2.c reads them and holds them to what they must be. Exits 0 unless a
scenario raised something unexpected (printed as error=...).

Scenarios: unary, bidi, sstream, sstream_big, deadline, cancel, gzip, zipbomb, toobig, refused, many,
slowcall, goaway (waits for "go" on stdin between starting its calls and checking them).
"""
import sys
import threading
import time

import grpc

PORT = int(sys.argv[1])
TARGET = "127.0.0.1:%d" % PORT


def out(k, v):
    print("%s=%s" % (k, v), flush=True)


def chan(i=0):
    # a channel option that differs per i gives each its own connection
    return grpc.insecure_channel(TARGET, options=[("grpc.use_local_subchannel_pool", 1),
                                                  ("test.conn", i)])


def unary(ch, path="/test.Echo/Unary"):
    return ch.unary_unary(path, request_serializer=None, response_deserializer=None)


def code_of(fn):
    try:
        fn()
        return "OK", ""
    except grpc.RpcError as e:
        return e.code().name, e.details()


def s_unary():
    ch = chan()
    out("unary.reply", unary(ch)(b"hello", timeout=10).decode())
    big = bytes(range(97, 123)) * 2000  # 52,000 bytes
    r = unary(ch)(big, timeout=10)
    out("unary.big_ok", int(r == big.upper()))
    out("unary.empty_len", len(unary(ch)(b"", timeout=10)))


def s_bidi():
    ch = chan()
    f = ch.stream_stream("/test.Echo/Bidi", request_serializer=None,
                         response_deserializer=None)
    replies = [r.decode() for r in f(iter([b"m%d" % i for i in range(5)]), timeout=10)]
    out("bidi.replies", ",".join(replies))


def s_sstream():
    ch = chan()
    f = ch.unary_stream("/test.Echo/ServerStream", request_serializer=None,
                        response_deserializer=None)
    n = total = ok = 0
    for r in f(b"50 1000", timeout=20):
        n += 1
        total += len(r)
        ok += r == (b"%d" % (n - 1)).ljust(1000, b".")
    out("sstream.count", n)
    out("sstream.bytes", total)
    out("sstream.in_order", int(ok == n))


def s_sstream_big():
    ch = chan()
    f = ch.unary_stream("/test.Echo/ServerStream", request_serializer=None,
                        response_deserializer=None)
    n = ok = 0
    for r in f(b"2000 1000", timeout=60):
        ok += r == (b"%d" % n).ljust(1000, b".")
        n += 1
    out("sstream_big.count", n)
    out("sstream_big.in_order", int(ok == n))


def s_deadline():
    ch = chan()
    c, _ = code_of(lambda: unary(ch, "/test.Echo/Sleep")(b"3000", timeout=0.3))
    out("deadline.code", c)


def s_cancel():
    ch = chan()
    fut = unary(ch, "/test.Echo/Sleep").future(b"5000", timeout=30)
    time.sleep(0.5)
    out("cancel.cancelled", int(fut.cancel()))
    time.sleep(0.5)


def s_gzip():
    ch = chan()
    r = unary(ch)(b"hello gzip " * 100, timeout=10, compression=grpc.Compression.Gzip)
    out("gzip.ok", int(r == b"HELLO GZIP " * 100))


def s_zipbomb():
    ch = chan()
    c, d = code_of(lambda: unary(ch)(b"\0" * (8 << 20), timeout=20,
                                         compression=grpc.Compression.Gzip))
    out("zipbomb.code", c)
    out("zipbomb.after", unary(ch)(b"still", timeout=10).decode())


def s_toobig():
    ch = chan()
    c, d = code_of(lambda: unary(ch)(b"x" * 100000, timeout=10))
    out("toobig.code", c)
    out("toobig.after", unary(ch)(b"fine", timeout=10).decode())


def s_refused():
    ch = chan()
    c, d = code_of(lambda: unary(ch, "/test.Echo/Nope")(b"x", timeout=10))
    out("refused.nope", c)
    c, d = code_of(lambda: unary(ch, "/test.Echo/Fail")(b"x", timeout=10))
    out("refused.fail", c)
    out("refused.details", d.encode("unicode_escape").decode())


def s_many():
    chans = [chan(i) for i in range(4)]
    futs = [unary(chans[i % 4], "/test.Echo/Sleep").future(b"w1000 %d" % i, timeout=90)
            for i in range(1000)]
    good = sum(f.result() == b"DONE %d" % i for i, f in enumerate(futs))
    out("many.ok", good)


def s_goaway():
    ch = chan()
    futs = [unary(ch, "/test.Echo/Sleep").future(b"800 %d" % i, timeout=30) for i in range(5)]
    out("goaway.started", 5)
    sys.stdin.readline()  # the test has called ss_h2_stop_accepting
    good = 0
    for i, f in enumerate(futs):
        try:
            good += f.result() == b"DONE %d" % i
        except grpc.RpcError as e:
            out("goaway.error", e.code().name)
    out("goaway.completed", good)
    c, _ = code_of(lambda: unary(chan(9))(b"late", timeout=3))
    out("goaway.late", c)


def s_slowcall():
    ch = chan()
    fut = unary(ch, "/test.Echo/Sleep").future(b"8000", timeout=30)
    out("slowcall.started", 1)
    try:
        fut.result()
        out("slowcall.code", "OK")
    except grpc.RpcError as e:
        out("slowcall.code", e.code().name)


for name in sys.argv[2:]:
    try:
        globals()["s_" + name]()
    except Exception as e:  # reported, and the C side fails the missing keys
        out("error", "%s: %r" % (name, e))
        sys.exit(1)
