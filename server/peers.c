/* peers.c: the peers file, the current and previous rings, and the swap.
 *
 * Three rings: `cur` (the file as last read), `prev` (the ring before the last change,
 * used until `prev_until_ms`), and `heirs` (cur without this replica: where a drain sends
 * each session, built with cur so a SIGTERM needs no allocation). A reload builds all of
 * them first and swaps under the write lock, so a refused file changes nothing. */
#include "peers.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"
#include "util.h"

#define PEERS_FILE_MAX (1u << 20)

struct ss_peers {
    char path[1024];
    char self[SS_PEER_MAX + 1];
    int64_t window_ms;
    pthread_rwlock_t lock;
    ss_ring *cur, *prev, *heirs; /* prev, heirs may be NULL */
    char **names;                /* cur's peers, as read, to compare a reload with */
    size_t n;
    int64_t prev_until_ms;
    uint64_t gen;
};

void ss_peers_names_free(char **names, size_t n) {
    if (!names) return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* A peer name: host ":" port, no blanks, port 1..65535. 0 or -1 with what is wrong. */
static int check_name(const char *s, size_t len, const char **why) {
    if (len > SS_PEER_MAX) return *why = "longer than 255 bytes", -1;
    for (size_t i = 0; i < len; i++)
        if (isspace((unsigned char)s[i]) || !isprint((unsigned char)s[i]))
            return *why = "a blank or control character inside the name", -1;
    const char *colon = NULL;
    for (size_t i = len; i-- > 0 && !colon;)
        if (s[i] == ':') colon = s + i;
    if (!colon || colon == s) return *why = "not host:port", -1;
    size_t pl = len - (size_t)(colon + 1 - s);
    if (pl == 0 || pl > 5) return *why = "the port is not a number 1..65535", -1;
    unsigned long port = 0;
    for (const char *c = colon + 1; c < s + len; c++) {
        if (*c < '0' || *c > '9') return *why = "the port is not a number 1..65535", -1;
        port = port * 10 + (unsigned long)(*c - '0');
    }
    if (port == 0 || port > 65535) return *why = "the port is not a number 1..65535", -1;
    return 0;
}

int ss_peers_read(const char *path, const char *self, char ***names, size_t *n, char *err,
                  size_t errlen) {
    uint8_t *buf = NULL;
    size_t len = 0, k = 0, cap = 0;
    char **out = NULL;
    char e[256];
    *names = NULL;
    *n = 0;
    if (ss_util_read_file(path, PEERS_FILE_MAX, &buf, &len, e, sizeof e) != 0) {
        snprintf(err, errlen, "peers %s: %s", path, e);
        return -1;
    }
    const char *p = (const char *)buf, *end = p + len;
    int found_self = self == NULL;
    for (unsigned line = 1; p < end; line++) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        const char *q = p, *qe = eol;
        const char *hash = memchr(q, '#', (size_t)(qe - q));
        if (hash) qe = hash;
        while (q < qe && isspace((unsigned char)*q))
            q++;
        while (qe > q && isspace((unsigned char)qe[-1]))
            qe--;
        p = eol + 1;
        if (q == qe) continue;
        const char *why = NULL;
        if (memchr(q, 0, (size_t)(qe - q)))
            why = "a NUL byte";
        else if (check_name(q, (size_t)(qe - q), &why) == 0) {
            for (size_t i = 0; i < k && !why; i++)
                if (strlen(out[i]) == (size_t)(qe - q) && !memcmp(out[i], q, (size_t)(qe - q)))
                    why = "listed twice";
            if (!why && k == SS_PEERS_MAX) why = "more than 4096 peers";
        }
        if (why) {
            snprintf(err, errlen, "peers %s line %u: %.*s: %s", path, line,
                     (int)(qe - q > 80 ? 80 : qe - q), q, why);
            goto fail;
        }
        if ((k + 1) * sizeof *out > cap) { /* cap in bytes */
            char **g = ss_util_grow(out, &cap, (k + 1) * sizeof *out, 16 * sizeof *out);
            if (!g) goto nomem;
            out = g;
        }
        if (!(out[k] = strndup(q, (size_t)(qe - q)))) goto nomem;
        if (self && !strcmp(out[k], self)) found_self = 1;
        k++;
    }
    if (k == 0) {
        snprintf(err, errlen, "peers %s: no peers (one host:port per line)", path);
        goto fail;
    }
    if (!found_self) {
        snprintf(err, errlen, "peers %s: --self %s is not listed", path, self);
        goto fail;
    }
    free(buf);
    *names = out;
    *n = k;
    return 0;
nomem:
    snprintf(err, errlen, "peers %s: out of memory", path);
fail:
    free(buf);
    ss_peers_names_free(out, k);
    return -1;
}

/* The ring of names without this replica: NULL in *out when it is the only one. 0 or -1. */
static int without_self(const ss_peers *p, char **names, size_t n, ss_ring **out, char *err,
                        size_t errlen) {
    *out = NULL;
    if (n < 2) return 0;
    const char **others = malloc((n - 1) * sizeof *others);
    if (!others) {
        snprintf(err, errlen, "peers: out of memory");
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < n && k < n - 1; i++)
        if (strcmp(names[i], p->self)) others[k++] = names[i];
    int rc = ss_ring_new(out, (const char *const *)others, k, err, errlen);
    free(others);
    return rc;
}

/* cur and heirs of names. 0 or -1 with err. */
static int build(const ss_peers *p, char **names, size_t n, ss_ring **cur, ss_ring **heirs,
                 char *err, size_t errlen) {
    *heirs = NULL;
    if (ss_ring_new(cur, (const char *const *)names, n, err, errlen) != 0) return -1;
    if (without_self(p, names, n, heirs, err, errlen) != 0) {
        ss_ring_free(*cur);
        *cur = NULL;
        return -1;
    }
    return 0;
}

int ss_peers_create(ss_peers **out, const char *path, const char *self, int64_t window_ms,
                    char *err, size_t errlen) {
    *out = NULL;
    ss_peers *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "peers: out of memory");
        return -1;
    }
    pthread_rwlock_init(&p->lock, NULL);
    snprintf(p->path, sizeof p->path, "%s", path);
    snprintf(p->self, sizeof p->self, "%s", self);
    p->window_ms = window_ms;
    if (strlen(self) > SS_PEER_MAX) {
        snprintf(err, errlen, "--self: longer than %d bytes", SS_PEER_MAX);
        goto fail;
    }
    if (ss_peers_read(path, self, &p->names, &p->n, err, errlen) != 0) goto fail;
    if (build(p, p->names, p->n, &p->cur, &p->heirs, err, errlen) != 0) goto fail;
    /* at start the previous ring is the others' ring without us: a replica that just joined
     * (or came back) finds sessions still on the peers that held them */
    if (without_self(p, p->names, p->n, &p->prev, err, errlen) != 0) goto fail;
    p->prev_until_ms = ss_util_now_ms() + window_ms;
    *out = p;
    return 0;
fail:
    ss_peers_free(p);
    return -1;
}

void ss_peers_free(ss_peers *p) {
    if (!p) return;
    ss_ring_free(p->cur);
    ss_ring_free(p->prev);
    ss_ring_free(p->heirs);
    ss_peers_names_free(p->names, p->n);
    pthread_rwlock_destroy(&p->lock);
    free(p);
}

static int same(char **a, size_t na, char **b, size_t nb) {
    if (na != nb) return 0;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i])) return 0;
    return 1;
}

int ss_peers_reload(ss_peers *p, char *err, size_t errlen) {
    char **names;
    size_t n;
    ss_ring *cur, *heirs;
    if (ss_peers_read(p->path, p->self, &names, &n, err, errlen) != 0) return -1;
    pthread_rwlock_rdlock(&p->lock);
    int unchanged = same(p->names, p->n, names, n);
    pthread_rwlock_unlock(&p->lock);
    if (unchanged) {
        ss_peers_names_free(names, n);
        return 0;
    }
    if (build(p, names, n, &cur, &heirs, err, errlen) != 0) {
        ss_peers_names_free(names, n);
        return -1;
    }
    pthread_rwlock_wrlock(&p->lock);
    ss_ring_free(p->prev);
    ss_ring_free(p->heirs);
    ss_peers_names_free(p->names, p->n);
    p->prev = p->cur;
    p->cur = cur;
    p->heirs = heirs;
    p->names = names;
    p->n = n;
    p->prev_until_ms = ss_util_now_ms() + p->window_ms;
    p->gen++;
    pthread_rwlock_unlock(&p->lock);
    return 1;
}

const char *ss_peers_self(const ss_peers *p) {
    return p->self;
}

size_t ss_peers_count(ss_peers *p) {
    pthread_rwlock_rdlock(&p->lock);
    size_t n = p->n;
    pthread_rwlock_unlock(&p->lock);
    return n;
}

uint64_t ss_peers_generation(ss_peers *p) {
    pthread_rwlock_rdlock(&p->lock);
    uint64_t g = p->gen;
    pthread_rwlock_unlock(&p->lock);
    return g;
}

/* The owner of key in r, copied into owner: 1 when it is this replica. */
static int owner_in(const ss_peers *p, const ss_ring *r, const char *key, size_t len, char *owner,
                    size_t cap) {
    const char *name = ss_ring_peer(r, ss_ring_owner(r, key, len));
    snprintf(owner, cap, "%s", name);
    return !strcmp(name, p->self);
}

int ss_peers_owns(ss_peers *p, const char *key, size_t len, char *owner, size_t cap) {
    pthread_rwlock_rdlock(&p->lock);
    int mine = owner_in(p, p->cur, key, len, owner, cap);
    pthread_rwlock_unlock(&p->lock);
    return mine;
}

int ss_peers_prev_owner(ss_peers *p, const char *key, size_t len, char *owner, size_t cap) {
    int other = 0;
    pthread_rwlock_rdlock(&p->lock);
    if (p->prev && ss_util_now_ms() < p->prev_until_ms)
        other = !owner_in(p, p->prev, key, len, owner, cap);
    pthread_rwlock_unlock(&p->lock);
    return other;
}

int ss_peers_heir(ss_peers *p, const char *key, size_t len, char *owner, size_t cap) {
    int found = 0;
    pthread_rwlock_rdlock(&p->lock);
    if (p->heirs) {
        owner_in(p, p->heirs, key, len, owner, cap);
        found = 1;
    }
    pthread_rwlock_unlock(&p->lock);
    return found;
}
