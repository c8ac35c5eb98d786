/* ring.c: nginx's `hash $key consistent`, point for point (ngx_http_upstream_hash_module.c,
 * nginx 1.22 in Debian 12, the judge in tests/e2e/test_ring_nginx.c; the module dates from 1.7.2).
 *
 * Each peer "host:port" gets 160 points (weight 1). The name splits at the last ':' when only
 * digits follow it (else the whole name is the host and the port is empty; a "unix:" prefix is
 * dropped and there is no port). Point 0 is crc32(host "\0" port u32le(0)) and point j is
 * crc32(host "\0" port u32le(point j-1)): the previous point's 4 bytes, little-endian, appended
 * to the same prefix. All points are sorted by value; where two share a value, nginx keeps the
 * one that came first (glibc's qsort is a stable merge sort and nginx adds peers in the order
 * of the upstream block), so we sort by (value, peer, j) and keep the first. A key goes to the
 * first point >= crc32(key), wrapping past the last point to the first.
 *
 * A point is stored as two parallel arrays (values, owners) so the binary search reads only
 * the values. */
#include "ring.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#define RING_POINTS_PER_PEER 160

struct ss_ring {
    size_t n;        /* peers */
    char **peers;    /* copies of the names, in the order given */
    size_t npoints;  /* distinct points */
    uint32_t *hash;  /* point values, ascending */
    uint32_t *owner; /* peer index of each point */
};

/* zlib's crc32 of a NULL buffer is 0 whatever the running value: an empty part is skipped */
static uint32_t crc(uint32_t c, const void *p, size_t n) {
    return n ? (uint32_t)crc32_z(c, (const unsigned char *)p, n) : c;
}

/* nginx's split of a server name into the host and port it hashes. */
static void split_name(const char *s, size_t len, const char **host, size_t *hlen,
                       const char **port, size_t *plen) {
    *port = NULL;
    *plen = 0;
    if (len >= 5 && strncasecmp(s, "unix:", 5) == 0) {
        *host = s + 5;
        *hlen = len - 5;
        return;
    }
    *host = s;
    *hlen = len;
    for (size_t j = 0; j < len; j++) {
        char c = s[len - j - 1];
        if (c == ':') {
            *hlen = len - j - 1;
            *port = s + len - j;
            *plen = j;
            return;
        }
        if (c < '0' || c > '9') return;
    }
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void ss_ring_free(ss_ring *r) {
    if (!r) return;
    if (r->peers)
        for (size_t i = 0; i < r->n; i++)
            free(r->peers[i]);
    free(r->peers);
    free(r->hash);
    free(r->owner);
    free(r);
}

static int check_name(const char *p, size_t i, char *err, size_t errlen) {
    size_t len = strnlen(p, SS_RING_MAX_NAME + 1);
    if (len == 0 || len > SS_RING_MAX_NAME) {
        snprintf(err, errlen, "ring: peer %zu: a name of 1 to %d bytes expected", i + 1,
                 SS_RING_MAX_NAME);
        return -1;
    }
    for (size_t k = 0; k < len; k++) {
        unsigned char c = (unsigned char)p[k];
        if (c <= ' ' || c == 0x7f) {
            snprintf(err, errlen, "ring: peer %zu (%.*s): a space or control byte at %zu", i + 1,
                     (int)len, p, k + 1);
            return -1;
        }
    }
    return 0;
}

int ss_ring_new(ss_ring **out, const char *const *peers, size_t n, char *err, size_t errlen) {
    ss_ring *r = NULL;
    uint64_t *keys = NULL;
    char **sorted = NULL;
    *out = NULL;
    if (n == 0 || n > SS_RING_MAX_PEERS) {
        snprintf(err, errlen, "ring: 1 to %d peers expected, got %zu", SS_RING_MAX_PEERS, n);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (!peers[i] || check_name(peers[i], i, err, errlen) != 0) {
            if (!peers[i]) snprintf(err, errlen, "ring: peer %zu: no name", i + 1);
            return -1;
        }
    r = calloc(1, sizeof *r);
    if (!r) goto nomem;
    r->peers = calloc(n, sizeof *r->peers);
    sorted = malloc(n * sizeof *sorted);
    size_t total = n * RING_POINTS_PER_PEER;
    keys = malloc(total * sizeof *keys);
    r->hash = malloc(total * sizeof *r->hash);
    r->owner = malloc(total * sizeof *r->owner);
    if (!r->peers || !sorted || !keys || !r->hash || !r->owner) goto nomem;
    for (size_t i = 0; i < n; i++) {
        r->peers[i] = strdup(peers[i]);
        if (!r->peers[i]) goto nomem;
        r->n = i + 1;
        sorted[i] = r->peers[i];
    }
    qsort(sorted, n, sizeof *sorted, cmp_name);
    for (size_t i = 1; i < n; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0) {
            snprintf(err, errlen, "ring: peer %s is listed twice", sorted[i]);
            goto fail;
        }

    /* key = value << 32 | (peer * 160 + j): sorting the keys sorts by (value, peer, j) */
    for (size_t i = 0; i < n; i++) {
        const char *host, *port;
        size_t hlen, plen;
        split_name(r->peers[i], strlen(r->peers[i]), &host, &hlen, &port, &plen);
        uint32_t base = crc(0, host, hlen);
        base = crc(base, "", 1);
        base = crc(base, port, plen);
        uint32_t prev = 0;
        for (uint32_t j = 0; j < RING_POINTS_PER_PEER; j++) {
            unsigned char le[4] = {(unsigned char)prev, (unsigned char)(prev >> 8),
                                   (unsigned char)(prev >> 16), (unsigned char)(prev >> 24)};
            uint32_t h = crc(base, le, 4);
            keys[i * RING_POINTS_PER_PEER + j] =
                (uint64_t)h << 32 | (uint64_t)(i * RING_POINTS_PER_PEER + j);
            prev = h;
        }
    }
    qsort(keys, total, sizeof *keys, cmp_u64);
    size_t m = 0;
    for (size_t k = 0; k < total; k++) {
        uint32_t h = (uint32_t)(keys[k] >> 32);
        if (m > 0 && r->hash[m - 1] == h) continue; /* nginx keeps the first of equal points */
        r->hash[m] = h;
        r->owner[m] = (uint32_t)((keys[k] & 0xffffffffu) / RING_POINTS_PER_PEER);
        m++;
    }
    r->npoints = m;
    free(keys);
    free(sorted);
    *out = r;
    return 0;
nomem:
    snprintf(err, errlen, "ring: out of memory for %zu peers", n);
fail:
    free(keys);
    free(sorted);
    ss_ring_free(r);
    return -1;
}

size_t ss_ring_size(const ss_ring *r) {
    return r->n;
}

const char *ss_ring_peer(const ss_ring *r, size_t i) {
    return i < r->n ? r->peers[i] : NULL;
}

long ss_ring_find(const ss_ring *r, const char *name) {
    if (!name) return -1;
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->peers[i], name) == 0) return (long)i;
    return -1;
}

size_t ss_ring_owner(const ss_ring *r, const char *key, size_t len) {
    uint32_t h = crc(0, key, len);
    size_t lo = 0, hi = r->npoints; /* the first point >= h */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->hash[mid] < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return r->owner[lo == r->npoints ? 0 : lo];
}
