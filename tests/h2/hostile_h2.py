#!/usr/bin/python3
"""hostile_h2.py PORT CASE...: hostile HTTP/2 against build/tests/test_h2's echo service,
hand-built frames on raw sockets (hpack from Debian's python3-hpack for valid header
blocks, python3-h2 for the well-behaved client). After each case a fresh connection makes
one good call: "CASE.fresh=HELLO" says the server still serves others. Prints "key=value"
lines that test_h2.c checks.

Cases: bad_preface, oversized, malformed, headers_stream0, headers_flood, continuation,
headers_stall, ping_flood, empty_data, rapid_reset, hpack_bomb, hpack_size, deadline_raw, bad_requests, short_body, huge_prefix, bidi_noread, window0, noread.
"""
import socket
import struct
import sys
import time

import h2.config
import h2.connection
import h2.events
import hpack

PORT = int(sys.argv[1])
# Against the real server (tests/e2e/test_grpc.py): HOSTILE_PATH names a unary method that
# takes an empty message, and a fresh call that succeeds prints "served".
import os  # noqa: E402
REAL_PATH = os.environ.get("HOSTILE_PATH")
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, END_HEADERS, ACK = 1, 4, 1


def out(k, v):
    print("%s=%s" % (k, v), flush=True)


def frame(typ, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([typ, flags]) + struct.pack(">I", sid) + payload


def settings(**kv):
    ids = {"header_table_size": 1, "max_concurrent_streams": 3, "initial_window_size": 4,
           "max_frame_size": 5}
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", ids[k], v) for k, v in kv.items()))


def dial(rcvbuf=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", PORT))
    s.settimeout(5)
    return s


def open_conn(rcvbuf=0, **kv):
    s = dial(rcvbuf)
    s.sendall(PREFACE + settings(**kv) + frame(SETTINGS, ACK, 0))
    return s


def req_headers(path=None):
    path = path or REAL_PATH or "/test.Echo/Unary"
    return [(":method", "POST"), (":scheme", "http"), (":path", path),
            (":authority", "127.0.0.1"), ("content-type", "application/grpc"), ("te", "trailers")]


def grpc_msg(b):
    return b"\0" + struct.pack(">I", len(b)) + b


class Reader:
    """Frames from a socket until it closes or a time passes."""

    def __init__(self, s):
        self.s, self.buf, self.closed = s, b"", False

    def frames(self, seconds, stop=None):
        end = time.time() + seconds
        got = []
        while time.time() < end and not self.closed:
            while len(self.buf) >= 9:
                n = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) < 9 + n:
                    break
                f = (self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF,
                     self.buf[9:9 + n])
                self.buf = self.buf[9 + n:]
                got.append(f)
                if stop and stop(f):
                    return got
            try:
                self.s.settimeout(max(0.05, end - time.time()))
                d = self.s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                d = b""
            if not d:
                self.closed = True
            self.buf += d
        return got


def goaway_code(frames):
    for t, _, _, p in frames:
        if t == GOAWAY:
            return int.from_bytes(p[4:8], "big")
    return -1


def rst_codes(frames, sid=None):
    return [int.from_bytes(p[:4], "big") for t, _, s, p in frames if t == RST and sid in (None, s)]


def fresh(case):
    """One good unary call over python3-h2 on a new connection: HELLO and status 0."""
    try:
        s = dial()
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        c.initiate_connection()
        c.send_headers(1, req_headers())
        c.send_data(1, grpc_msg(b"" if REAL_PATH else b"hello"), end_stream=True)
        s.sendall(c.data_to_send())
        body, status, done = b"", None, False
        end = time.time() + 5
        while not done and time.time() < end:
            d = s.recv(65536)
            if not d:
                break
            for e in c.receive_data(d):
                if isinstance(e, h2.events.DataReceived):
                    body += e.data
                    c.acknowledge_received_data(e.flow_controlled_length, 1)
                elif isinstance(e, h2.events.TrailersReceived):
                    status = dict(e.headers).get(b"grpc-status")
                elif isinstance(e, h2.events.StreamEnded):
                    done = True
            s.sendall(c.data_to_send())
        s.close()
        ok = status == b"0" and body[:1] == b"\0"
        if REAL_PATH:
            out(case + ".fresh", "served" if ok else "status %r" % status)
        else:
            out(case + ".fresh", body[5:].decode() if ok else "status %r" % status)
    except Exception as e:
        out(case + ".fresh", "error %r" % e)


enc = hpack.Encoder()


def c_bad_preface():
    s = dial()
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    r = Reader(s)
    r.frames(3)
    out("bad_preface.closed", int(r.closed))


def c_oversized():
    s = open_conn()
    s.sendall(frame(HEADERS, END_HEADERS, 1, b"\0" * 20000))  # over SETTINGS_MAX_FRAME_SIZE
    r = Reader(s)
    out("oversized.goaway", goaway_code(r.frames(3)))


def c_malformed():
    s = open_conn()
    s.sendall(frame(SETTINGS, 0, 0, b"\0" * 5))  # not a multiple of 6
    out("malformed.goaway", goaway_code(Reader(s).frames(3)))


def c_headers_stream0():
    s = open_conn()
    s.sendall(frame(HEADERS, END_HEADERS | END_STREAM, 0, hpack.Encoder().encode(req_headers())))
    out("headers_stream0.goaway", goaway_code(Reader(s).frames(3)))


def c_headers_flood():
    s = open_conn()
    e = hpack.Encoder()
    r = Reader(s)
    r.frames(0.3)  # the server's SETTINGS; our ACK of them went with the preface
    buf = b"".join(frame(HEADERS, END_HEADERS, 2 * i + 1, e.encode(req_headers()))
                   for i in range(2000))
    try:
        s.sendall(buf)
    except OSError:
        pass
    fr = r.frames(3)
    refused = sum(1 for c in rst_codes(fr) if c == 7)  # REFUSED_STREAM
    out("headers_flood.refused_streams", refused)
    out("headers_flood.goaway", goaway_code(fr))
    out("headers_flood.stopped", int(refused > 0 or goaway_code(fr) > 0))


def c_continuation():
    s = open_conn()
    e = hpack.Encoder()
    block = e.encode(req_headers() + [("x-pad", "p%039d" % i) for i in range(200)])
    parts = [block[i:i + 50] for i in range(0, len(block), 50)]
    buf = frame(HEADERS, 0, 1, parts[0]) + b"".join(frame(CONTINUATION, 0, 1, p) for p in parts[1:-1])
    try:
        s.sendall(buf)
    except OSError:
        pass
    r = Reader(s)
    fr = r.frames(3)
    out("continuation.goaway", goaway_code(fr))
    out("continuation.stopped", int(goaway_code(fr) > 0 or r.closed))


def c_headers_stall():
    """A header block begun and never finished (slowloris inside HTTP/2)."""
    s = open_conn()
    block = hpack.Encoder().encode(req_headers())
    s.sendall(frame(HEADERS, 0, 1, block[:10]))
    r = Reader(s)
    fr = r.frames(6)
    out("headers_stall.closed", int(r.closed))


def c_ping_flood():
    """PINGs sent without ever reading the ACKs (CVE-2019-9512)."""
    s = open_conn(rcvbuf=4096)
    burst = frame(PING, 0, 0, b"12345678") * 1000
    s.settimeout(1)
    end, blocked = time.time() + 10, 0
    try:
        while time.time() < end:
            s.sendall(burst)
    except socket.timeout:  # the server stopped reading: its ACKs have nowhere to go
        blocked = 1
    except OSError:
        pass
    out("ping_flood.blocked", blocked)
    time.sleep(4)  # past the server's 2 s write stall timeout, still not reading
    r = Reader(s)
    r.frames(8)
    out("ping_flood.closed", int(r.closed))


def c_empty_data():
    """Empty DATA frames on an open stream, endlessly (CVE-2019-9518)."""
    s = open_conn()
    s.sendall(frame(HEADERS, END_HEADERS, 1, hpack.Encoder().encode(req_headers())))
    try:
        s.sendall(frame(DATA, 0, 1) * 5000)
    except OSError:
        pass
    out("empty_data.goaway", goaway_code(Reader(s).frames(3, stop=lambda f: f[0] == GOAWAY)))


def c_rapid_reset():
    s = open_conn()
    e = hpack.Encoder()
    r = Reader(s)
    sent = 0
    try:
        for i in range(2000):
            sid = 2 * i + 1
            s.sendall(frame(HEADERS, END_HEADERS, sid, e.encode(req_headers())) +
                      frame(RST, 0, sid, struct.pack(">I", 8)))
            sent += 1
    except OSError:
        pass
    fr = r.frames(3, stop=lambda f: f[0] == GOAWAY)
    out("rapid_reset.goaway", goaway_code(fr))


def hpack_int(prefix_bits, first, v):
    m = (1 << prefix_bits) - 1
    if v < m:
        return bytes([first | v])
    b = [first | m]
    v -= m
    while v >= 128:
        b.append(v % 128 + 128)
        v //= 128
    b.append(v)
    return bytes(b)


def hpack_str(s):
    return hpack_int(7, 0, len(s)) + s


def c_hpack_bomb():
    s = open_conn()
    plain = hpack.Encoder()
    base = plain.encode(req_headers())
    # one 4 KB header into the dynamic table (62), then referenced 40 times: 160 KB of headers
    big = bytes([0x40]) + hpack_str(b"x-bomb") + hpack_str(b"a" * 4000)
    block = base + big + bytes([0xBE]) * 40
    s.sendall(frame(HEADERS, END_HEADERS | END_STREAM, 1, block) + frame(PING, 0, 0, b"12345678"))
    r = Reader(s)
    fr = r.frames(2)  # the PING ACK may come before the RST_STREAM: read both
    codes = rst_codes(fr, 1)
    out("hpack_bomb.reset", int(bool(codes)))
    out("hpack_bomb.alive", int(any(t == PING and f & ACK for t, f, _, _ in fr)))


def c_hpack_size():
    s = open_conn()
    block = hpack_int(5, 0x20, 1 << 20) + hpack.Encoder().encode(req_headers())
    s.sendall(frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
    out("hpack_size.goaway", goaway_code(Reader(s).frames(3)))


def trailers_status(fr, sid):
    d = hpack.Decoder()
    st = None
    for t, f, s_, p in fr:
        if t == HEADERS and s_ == sid:
            for k, v in d.decode(p):
                if k in (b"grpc-status", "grpc-status"):
                    st = v.decode() if isinstance(v, bytes) else v
    return st


def ended(f):
    return f[0] in (HEADERS, DATA) and f[1] & END_STREAM


def c_deadline_raw():
    """grpc-timeout enforced by the server alone (this client keeps no timer)."""
    s = open_conn()
    hs = req_headers("/test.Echo/Sleep") + [("grpc-timeout", "200m")]
    s.sendall(frame(HEADERS, END_HEADERS, 1, hpack.Encoder().encode(hs)) +
              frame(DATA, END_STREAM, 1, grpc_msg(b"3000")))
    out("deadline_raw.status", trailers_status(Reader(s).frames(3, stop=ended), 1))


def headers_by_stream(fr):
    """Every HEADERS block in order through one HPACK decoder: {stream: {name: value}}."""
    d, got = hpack.Decoder(), {}
    for t, _, sid, p in fr:
        if t == HEADERS:
            got.setdefault(sid, {}).update(dict(d.decode(p)))
    return got


def c_bad_requests():
    """Requests the transport refuses before the service sees them."""
    s = open_conn()
    e = hpack.Encoder()

    def hs(sid, k, v):  # the request with header k set to v (in place, or added last)
        h = [(n, v if n == k else x) for n, x in req_headers()]
        h += [] if any(n == k for n, _ in h) else [(k, v)]
        return frame(HEADERS, END_HEADERS | END_STREAM, sid, e.encode(h))
    s.sendall(hs(1, "content-type", "text/plain") + hs(3, "grpc-encoding", "br") +
              hs(5, "grpc-timeout", "soon") + hs(7, ":method", "GET") +
              hs(9, "content-type", "application/grpc+proto"))
    got = headers_by_stream(Reader(s).frames(2))
    out("bad_requests.content_type", got.get(1, {}).get(":status"))
    out("bad_requests.encoding", got.get(3, {}).get("grpc-status"))
    out("bad_requests.accept_encoding", got.get(3, {}).get("grpc-accept-encoding"))
    out("bad_requests.timeout", got.get(5, {}).get("grpc-status"))
    out("bad_requests.method", got.get(7, {}).get(":status"))
    out("bad_requests.proto_suffix", got.get(9, {}).get("grpc-status"))


def c_short_body():
    s = open_conn()
    msg = b"\0" + struct.pack(">I", 1000) + b"x" * 10  # the prefix says 1000, 10 follow
    s.sendall(frame(HEADERS, END_HEADERS, 1, hpack.Encoder().encode(req_headers())) +
              frame(DATA, END_STREAM, 1, msg))
    out("short_body.status", trailers_status(Reader(s).frames(3, stop=ended), 1))


def c_huge_prefix():
    s = open_conn()
    msg = b"\0" + struct.pack(">I", 0xFFFFFFF0) + b"x" * 10
    s.sendall(frame(HEADERS, END_HEADERS, 1, hpack.Encoder().encode(req_headers())) +
              frame(DATA, 0, 1, msg))
    out("huge_prefix.status", trailers_status(Reader(s).frames(3, stop=ended), 1))


def c_window0():
    s = open_conn(initial_window_size=0)
    s.sendall(frame(HEADERS, END_HEADERS, 1, hpack.Encoder().encode(req_headers("/test.Echo/ServerStream"))) +
              frame(DATA, END_STREAM, 1, grpc_msg(b"100000 1000")))
    fr = Reader(s).frames(8, stop=lambda f: f[0] == RST)
    out("window0.data_frames", sum(1 for t, _, _, p in fr if t == DATA and p))
    out("window0.rst", (rst_codes(fr, 1) or [-1])[0])


def c_bidi_noread():
    """A bidi client that sends and never takes the replies (never credits the server's
    window): the server's queue for the call fills, it stops taking the call's messages,
    and the client's own sends block on flow control."""
    s = dial()
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.send_headers(1, req_headers("/test.Echo/Bidi"))
    s.sendall(c.data_to_send())
    msg = grpc_msg(b"x" * 1000)
    sent, last, end = 0, time.time(), time.time() + 20
    s.settimeout(0.2)
    while sent < 5000 and time.time() < end and time.time() - last < 2:
        while sent < 5000 and c.local_flow_control_window(1) >= len(msg):
            c.send_data(1, msg)
            sent += 1
            last = time.time()
        s.sendall(c.data_to_send())
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        if not d:
            break
        c.receive_data(d)  # WINDOW_UPDATEs are applied; the replies are never acknowledged
        s.sendall(c.data_to_send())
    out("bidi_noread.sent", sent)
    s.close()


def c_window0_deadline():
    """A deadline passes while the window is shut: the trailers cannot get out either."""
    s = open_conn(initial_window_size=0)
    hs = req_headers("/test.Echo/ServerStream") + [("grpc-timeout", "500m")]
    s.sendall(frame(HEADERS, END_HEADERS, 1, hpack.Encoder().encode(hs)) +
              frame(DATA, END_STREAM, 1, grpc_msg(b"100000 1000")))
    fr = Reader(s).frames(8, stop=lambda f: f[0] == RST)
    out("window0_deadline.rst", (rst_codes(fr, 1) or [-1])[0])


def c_window0_two():
    """Two server streams on one connection whose windows never open."""
    s = open_conn(initial_window_size=0)
    e = hpack.Encoder()
    for sid in (1, 3):
        s.sendall(frame(HEADERS, END_HEADERS, sid, e.encode(req_headers("/test.Echo/ServerStream"))) +
                  frame(DATA, END_STREAM, sid, grpc_msg(b"100000 1000")))
    seen = set()
    fr = Reader(s).frames(8, stop=lambda f: f[0] == RST and (seen.add(f[2]) or len(seen) == 2))
    out("window0_two.rsts", len({sid for t, _, sid, _ in fr if t == RST}))


def c_noread():
    # big windows so only the socket holds the server back; then never read
    s = open_conn(rcvbuf=4096, initial_window_size=(1 << 31) - 1)
    s.sendall(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", (1 << 31) - 1 - 65535)) +
              frame(HEADERS, END_HEADERS, 1, hpack.Encoder().encode(req_headers("/test.Echo/ServerStream"))) +
              frame(DATA, END_STREAM, 1, grpc_msg(b"100000 1000")))
    out("noread.sent", 1)
    time.sleep(float(sys.argv[-1]) if sys.argv[-1].replace(".", "").isdigit() else 5)
    r = Reader(s)
    r.frames(10)
    out("noread.closed", int(r.closed))


for name in sys.argv[2:]:
    if name.replace(".", "").isdigit():
        continue
    globals()["c_" + name]()
    fresh(name)
