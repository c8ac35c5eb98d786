#!/usr/bin/env python3
"""An independent implementation of nginx's `hash $key consistent` (the rule server/ring.c
reproduces), written from nginx's ngx_http_upstream_hash_module.c with Python's zlib.crc32.
It prints the golden owners that tests/unit/test_ring.c checks:

    /usr/bin/python3 tests/unit/ring_ref.py
"""
import bisect
import struct
import zlib


def split(name):
    """nginx's split of a server name: host and port (digits after the last ':')."""
    if name[:5].lower() == "unix:":
        return name[5:], ""
    j = len(name)
    while j > 0 and name[j - 1].isdigit():
        j -= 1
    if j > 0 and name[j - 1] == ":":
        return name[: j - 1], name[j:]
    return name, ""


def ring(peers):
    points = []
    for i, p in enumerate(peers):
        host, port = split(p)
        prefix = (host + "\0" + port).encode()
        prev = 0
        for j in range(160):
            v = zlib.crc32(prefix + struct.pack("<I", prev))
            points.append((v, i, j))
            prev = v
    points.sort()  # stable like glibc's qsort in nginx: equal values keep peer order
    out = []
    for v, i, _ in points:
        if not out or out[-1][0] != v:
            out.append((v, i))
    return out


def owner(r, key):
    values = [v for v, _ in r]
    k = bisect.bisect_left(values, zlib.crc32(key))
    return r[k % len(r)][1]


def main():
    r = ring(["127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003"])
    for k in ["s-0", "s-1", "session-abc", "seq-42", "", "0123456789abcdef0123456789abcdef",
              "w-1847", "w-2906", "z-147"]:
        print(repr(k), owner(r, k.encode()))
    cnt, dig = [0, 0, 0], 0
    for k in range(20000):
        o = owner(r, b"g-%d" % k)
        cnt[o] += 1
        dig = (dig * 31 + o) % 1000000007
    print("20000 keys:", cnt, "digest", dig)
    r2 = ring(["spikeserve-0.spikeserve-peers.default.svc.cluster.local:8080",
               "spikeserve-1.spikeserve-peers.default.svc.cluster.local:8080",
               "backend", "unix:/tmp/x.sock", "[::1]:9000"])
    print("mixed:", [owner(r2, c.encode()) for c in "abcdefgh"])


if __name__ == "__main__":
    main()
