/* test_ring.c: the session ring (server/ring.h).
 *
 * Golden owners: computed by an independent implementation of nginx's rule in Python
 * (tests/unit/ring_ref.py: zlib.crc32, struct.pack, sort, bisect), so a slip in the
 * C (a point chained wrong, the port split, the wrap) changes them. The real nginx is the
 * judge in tests/e2e/test_ring_nginx.c. Properties: bad peer lists are refused with the peer
 * named; the same peers give the same owners whatever their order; adding a peer moves keys
 * only to it (about 1/N of them), removing one moves only its keys; load is balanced. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "ring.h"

static ss_ring *make(const char *const *peers, size_t n) {
    char err[256] = "";
    ss_ring *r = NULL;
    if (ss_ring_new(&r, peers, n, err, sizeof err) != 0) {
        printf("# setup failed: %s\n", err);
        exit(2);
    }
    return r;
}

static size_t owner_s(const ss_ring *r, const char *key) {
    return ss_ring_owner(r, key, strlen(key));
}

static void refusals(void) {
    char err[256];
    ss_ring *r = (ss_ring *)1;
    const char *dup[] = {"a:1", "b:2", "a:1"};
    ok(ss_ring_new(&r, dup, 3, err, sizeof err) == -1 && r == NULL && strstr(err, "a:1"),
       "a peer listed twice is refused and named (%s)", err);
    const char *sp[] = {"a:1", "b 2"};
    ok(ss_ring_new(&r, sp, 2, err, sizeof err) == -1 && strstr(err, "peer 2"),
       "a name with a space is refused, its place named (%s)", err);
    const char *empty[] = {""};
    ok(ss_ring_new(&r, empty, 1, err, sizeof err) == -1 && strstr(err, "peer 1"),
       "an empty name is refused (%s)", err);
    ok(ss_ring_new(&r, empty, 0, err, sizeof err) == -1 && strstr(err, "got 0"),
       "no peers is refused (%s)", err);
    char longname[SS_RING_MAX_NAME + 2];
    memset(longname, 'h', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    const char *lng[] = {"a:1", longname};
    ok(ss_ring_new(&r, lng, 2, err, sizeof err) == -1 && strstr(err, "peer 2"),
       "a name over %d bytes is refused (%s)", SS_RING_MAX_NAME, err);
    longname[SS_RING_MAX_NAME] = '\0';
    ok(ss_ring_new(&r, lng, 2, err, sizeof err) == 0 && r, "a name of exactly %d bytes is taken",
       SS_RING_MAX_NAME);
    ss_ring_free(r);
    const char *nul[] = {"a:1", NULL};
    ok(ss_ring_new(&r, nul, 2, err, sizeof err) == -1 && strstr(err, "peer 2"),
       "a NULL name is refused (%s)", err);
    ss_ring_free(NULL);
}

static void golden(void) {
    const char *three[] = {"127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003"};
    ss_ring *r = make(three, 3);
    is_int(ss_ring_size(r), 3, "three peers");
    is_str(ss_ring_peer(r, 1), "127.0.0.1:8002", "the peers as given");
    ok(ss_ring_peer(r, 3) == NULL, "past the last peer: NULL");
    is_int(ss_ring_find(r, "127.0.0.1:8003"), 2, "find a peer");
    is_int(ss_ring_find(r, "127.0.0.1:800"), -1, "find: a prefix is not a peer");
    is_int(ss_ring_find(r, NULL), -1, "find: NULL");
    static const struct {
        const char *key;
        size_t owner;
    } want[] = {{"s-0", 2},
                {"s-1", 1},
                {"session-abc", 0},
                {"seq-42", 2},
                {"", 0},
                {"0123456789abcdef0123456789abcdef", 1},
                /* crc32 above the last point: wraps to the first point */
                {"w-1847", 0},
                {"w-2906", 0},
                {"z-147", 0}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        is_int(owner_s(r, want[i].key), want[i].owner, want[i].key);
    /* 20,000 keys "g-K": the count per peer and a digest of the owners in order (d = d * 31 +
     * owner mod 1e9+7), so one point out of place in 480 shows */
    long cnt[3] = {0}, dig = 0;
    for (int k = 0; k < 20000; k++) {
        char key[32];
        snprintf(key, sizeof key, "g-%d", k);
        size_t o = owner_s(r, key);
        cnt[o]++;
        dig = (dig * 31 + (long)o) % 1000000007L;
    }
    ok(cnt[0] == 6299 && cnt[1] == 7241 && cnt[2] == 6460,
       "20,000 keys: %ld %ld %ld per peer (Python: 6299 7241 6460)", cnt[0], cnt[1], cnt[2]);
    is_int(dig, 615229343, "20,000 keys: the digest of their owners");
    ss_ring_free(r);

    /* names without a port, with a unix: prefix, an IPv6 literal */
    const char *mixed[] = {"spikeserve-0.spikeserve-peers.default.svc.cluster.local:8080",
                           "spikeserve-1.spikeserve-peers.default.svc.cluster.local:8080",
                           "backend", "unix:/tmp/x.sock", "[::1]:9000"};
    r = make(mixed, 5);
    const char *keys = "abcdefgh";
    const size_t owners[] = {1, 2, 2, 0, 0, 4, 3, 1};
    for (size_t i = 0; i < 8; i++) {
        char name[32];
        snprintf(name, sizeof name, "mixed names: key %c", keys[i]);
        is_int(ss_ring_owner(r, keys + i, 1), owners[i], name);
    }
    ss_ring_free(r);
}

#define NKEYS 100000

static void key_of(char *buf, size_t cap, long i) {
    snprintf(buf, cap, "sess-%08lx", i * 7919);
}

static void properties(void) {
    char names[12][32];
    const char *p[12];
    for (int i = 0; i < 12; i++) {
        snprintf(names[i], sizeof names[i], "10.0.0.%d:8080", i + 1);
        p[i] = names[i];
    }
    ss_ring *r10 = make(p, 10), *r11 = make(p, 11);
    const char *rev[10];
    for (int i = 0; i < 10; i++)
        rev[i] = p[9 - i];
    ss_ring *r10rev = make(rev, 10);
    const char *drop[9]; /* the ten without 10.0.0.4 */
    for (int i = 0, k = 0; i < 10; i++)
        if (i != 3) drop[k++] = p[i];
    ss_ring *r9 = make(drop, 9);

    long count[10] = {0}, moved_add = 0, bad_add = 0, moved_rm = 0, bad_rm = 0, order = 0;
    char key[32];
    for (long i = 0; i < NKEYS; i++) {
        key_of(key, sizeof key, i);
        size_t o10 = owner_s(r10, key), o11 = owner_s(r11, key);
        count[o10]++;
        if (o10 != o11) {
            moved_add++;
            if (o11 != 10) bad_add++; /* a key may only move to the new peer */
        }
        if (strcmp(ss_ring_peer(r10rev, owner_s(r10rev, key)), p[o10]) != 0) order++;
        const char *o9 = ss_ring_peer(r9, owner_s(r9, key));
        if (strcmp(o9, p[o10]) != 0) {
            moved_rm++;
            if (o10 != 3) bad_rm++; /* only the removed peer's keys move */
        }
    }
    is_int(order, 0, "the owner (by name) does not depend on the order of the peers");
    is_int(bad_add, 0, "adding an 11th peer moves keys only to it");
    double f = (double)moved_add / NKEYS;
    ok(f > 0.5 / 11 && f < 2.0 / 11, "adding an 11th peer moves %.4f of the keys (1/11 = %.4f)", f,
       1.0 / 11);
    is_int(bad_rm, 0, "removing a peer moves only its own keys");
    is_int(moved_rm, count[3], "removing a peer moves all of its keys");
    long max = 0, min = NKEYS;
    for (int i = 0; i < 10; i++) {
        if (count[i] > max) max = count[i];
        if (count[i] < min) min = count[i];
    }
    double mean = NKEYS / 10.0;
    ok(max / mean < 1.35 && min / mean > 0.65,
       "10 peers, %d keys: the busiest holds %.3f of the mean, the idlest %.3f", NKEYS, max / mean,
       min / mean);
    /* two builds of the same list are the same ring */
    ss_ring *again = make(p, 10);
    long diff = 0;
    for (long i = 0; i < 10000; i++) {
        key_of(key, sizeof key, i);
        diff += owner_s(again, key) != owner_s(r10, key);
    }
    is_int(diff, 0, "the same peers give the same ring");
    ss_ring_free(again);
    ss_ring_free(r10);
    ss_ring_free(r11);
    ss_ring_free(r10rev);
    ss_ring_free(r9);
}

static void one_peer(void) {
    const char *one[] = {"solo:1"};
    ss_ring *r = make(one, 1);
    long other = 0;
    char key[32];
    for (long i = 0; i < 1000; i++) {
        key_of(key, sizeof key, i);
        other += owner_s(r, key) != 0;
    }
    is_int(other, 0, "one peer owns every key");
    /* any bytes: a NUL inside a key is hashed, not a terminator */
    ok(ss_ring_owner(r, "a\0b", 3) == 0, "a key with a NUL byte");
    ss_ring_free(r);
}

int main(void) {
    refusals();
    golden();
    properties();
    one_peer();
    return done_testing();
}
