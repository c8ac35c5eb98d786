/* ring_sim.c: the session ring (server/ring.c, nginx's `hash $key consistent`) at scale.
 *
 * For 10, 100 and 1,000 replicas named like a StatefulSet's pods
 * (spikeserve-K.spikeserve-peers.default.svc.cluster.local:8080) and 10 million session ids
 * (32 random hex digits, like the ids the server mints), it reports:
 *  - load: sessions per replica, max/mean, min/mean and the standard deviation over mean;
 *  - scale out (+1: spikeserve-N joins) and scale in (-1: the highest ordinal leaves, as a
 *    StatefulSet scales in): the fraction of sessions whose owner changed, against the ideal
 *    1/(N+1) and 1/N, and whether any session moved between two replicas that both stayed
 *    (consistent hashing says none may);
 *  - the cost of one owner lookup (ns; crc32 plus a binary search over 160*N points) and of
 *    building a ring.
 *   ring_sim [SESSIONS] [REPLICAS...]   (default 10000000 10 100 1000)
 * One thread; prints a Markdown table for deploy/README.md. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ring.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* the i-th session id: 32 hex digits from a fixed seed (the same ids in every ring) */
static void session_id(uint64_t i, char out[33]) {
    uint64_t s = i * 2 + 1, a = splitmix(&s), b = splitmix(&s);
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
}

static char **names(size_t n) {
    char **v = malloc(n * sizeof *v);
    if (!v) return NULL;
    for (size_t i = 0; i < n; i++) {
        v[i] = malloc(80);
        if (!v[i]) return NULL;
        snprintf(v[i], 80, "spikeserve-%zu.spikeserve-peers.default.svc.cluster.local:8080", i);
    }
    return v;
}

static ss_ring *build(char **peers, size_t n, double *secs) {
    char err[256];
    ss_ring *r = NULL;
    double t0 = now_s();
    if (ss_ring_new(&r, (const char *const *)peers, n, err, sizeof err) != 0) {
        fprintf(stderr, "ring_sim: %s\n", err);
        exit(1);
    }
    if (secs) *secs = now_s() - t0;
    return r;
}

static void simulate(size_t n, uint64_t sessions) {
    char **peers = names(n + 1);
    if (!peers) {
        fprintf(stderr, "ring_sim: out of memory\n");
        exit(1);
    }
    double build_s;
    ss_ring *base = build(peers, n, &build_s), *plus = build(peers, n + 1, NULL),
            *minus = n > 1 ? build(peers, n - 1, NULL) : NULL;
    uint64_t *count = calloc(n, sizeof *count);
    uint64_t moved_out = 0, moved_in = 0, bad_out = 0, bad_in = 0;
    char id[33];
    for (uint64_t i = 0; i < sessions; i++) {
        session_id(i, id);
        size_t o = ss_ring_owner(base, id, 32);
        count[o]++;
        size_t p = ss_ring_owner(plus, id, 32);
        if (p != o) {
            moved_out++;
            if (p != n) bad_out++; /* may only move to the new replica */
        }
        if (minus) {
            size_t m = ss_ring_owner(minus, id, 32);
            if (m != o) {
                moved_in++;
                if (o != n - 1) bad_in++; /* only the leaving replica's sessions move */
            }
        }
    }
    /* the lookup alone: 1M ids prepared beforehand, looked up 4 times */
    enum { NLOOK = 1 << 20 };
    char *ids = malloc((size_t)NLOOK * 32);
    double lookup_ns = 0;
    if (ids) {
        for (uint64_t i = 0; i < NLOOK; i++) {
            session_id(i, id);
            memcpy(ids + i * 32, id, 32);
        }
        size_t sink = 0;
        double t0 = now_s();
        for (int rep = 0; rep < 4; rep++)
            for (uint64_t i = 0; i < NLOOK; i++)
                sink += ss_ring_owner(base, ids + i * 32, 32);
        lookup_ns = (now_s() - t0) / (4.0 * NLOOK) * 1e9;
        if (sink == (size_t)-1) printf("#\n"); /* keeps the loop */
        free(ids);
    }
    double mean = (double)sessions / (double)n, var = 0;
    uint64_t mx = 0, mn = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        if (count[i] > mx) mx = count[i];
        if (count[i] < mn) mn = count[i];
        var += ((double)count[i] - mean) * ((double)count[i] - mean);
    }
    double sd = sqrt(var / (double)n);
    printf("| %zu | %llu | %.0f | %.3f | %.3f | %.3f | %.4f (%.4f) | %.4f (%.4f) | %llu | %.0f | "
           "%.1f |\n",
           n, (unsigned long long)sessions, mean, (double)mx / mean, (double)mn / mean, sd / mean,
           (double)moved_out / (double)sessions, 1.0 / (double)(n + 1),
           minus ? (double)moved_in / (double)sessions : 0.0, 1.0 / (double)n,
           (unsigned long long)(bad_out + bad_in), lookup_ns, build_s * 1e3);
    fflush(stdout);
    ss_ring_free(base);
    ss_ring_free(plus);
    ss_ring_free(minus);
    free(count);
    for (size_t i = 0; i < n + 1; i++)
        free(peers[i]);
    free(peers);
}

int main(int argc, char **argv) {
    uint64_t sessions = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000ull;
    if (sessions == 0) {
        fprintf(stderr, "usage: ring_sim [SESSIONS] [REPLICAS...]\n");
        return 2;
    }
    printf("| replicas | sessions | mean per replica | max/mean | min/mean | stddev/mean | moved "
           "on +1 (ideal) | moved on -1 (ideal) | moved between staying replicas | ns per lookup "
           "| ms to build |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    if (argc > 2) {
        for (int i = 2; i < argc; i++) {
            long n = strtol(argv[i], NULL, 10);
            if (n < 1 || n >= SS_RING_MAX_PEERS) {
                fprintf(stderr, "ring_sim: replicas %s: 1 to %d\n", argv[i], SS_RING_MAX_PEERS - 1);
                return 2;
            }
            simulate((size_t)n, sessions);
        }
    } else {
        simulate(10, sessions);
        simulate(100, sessions);
        simulate(1000, sessions);
    }
    return 0;
}
