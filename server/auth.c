/* auth.c: a small list of keys compared in constant time per key, so a timing probe
 * learns nothing about how much of a key matched. */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

struct ss_auth {
    char **keys;
    size_t n;
};

static uint64_t owner_of(const char *k) {
    uint64_t h = 1469598103934665603ull;
    for (; *k; k++)
        h = (h ^ (uint8_t)*k) * 1099511628211ull;
    return h ? h : 1;
}

static int add(ss_auth *a, const char *k, size_t len, char *err, size_t errlen) {
    while (len && (k[len - 1] == ' ' || k[len - 1] == '\r' || k[len - 1] == '\t'))
        len--;
    while (len && (*k == ' ' || *k == '\t'))
        k++, len--;
    if (len == 0 || *k == '#') return 0;
    if (len > 512) {
        snprintf(err, errlen, "api-keys: a key is longer than 512 characters");
        return -1;
    }
    char **nk = realloc(a->keys, (a->n + 1) * sizeof *nk);
    if (!nk) goto oom;
    a->keys = nk;
    if (!(a->keys[a->n] = strndup(k, len))) goto oom;
    a->n++;
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

int ss_auth_load(const char *spec, ss_auth **out, char *err, size_t errlen) {
    *out = NULL;
    if (!spec || !*spec) return 0;
    ss_auth *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    uint8_t *file = NULL;
    size_t flen = 0;
    const char *text = spec, *sep = ",";
    if (spec[0] == '@') {
        char msg[512];
        if (ss_util_read_file(spec + 1, 1u << 20, &file, &flen, msg, sizeof msg) != 0) {
            snprintf(err, errlen, "api-keys: %s", msg);
            ss_auth_free(a);
            return -1;
        }
        char *t = realloc(file, flen + 1);
        if (!t) {
            free(file);
            ss_auth_free(a);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        file = (uint8_t *)t;
        t[flen] = 0;
        text = t;
        sep = "\n";
    }
    int rc = 0;
    for (const char *p = text; rc == 0 && *p;) {
        size_t n = strcspn(p, sep);
        rc = add(a, p, n, err, errlen);
        p += n;
        if (*p) p++;
    }
    free(file);
    if (rc == 0 && a->n == 0) {
        snprintf(err, errlen, "api-keys: no key in \"%.100s\"", spec);
        rc = -1;
    }
    if (rc) {
        ss_auth_free(a);
        return -1;
    }
    *out = a;
    return 0;
}

void ss_auth_free(ss_auth *a) {
    if (!a) return;
    for (size_t i = 0; i < a->n; i++)
        free(a->keys[i]);
    free(a->keys);
    free(a);
}

size_t ss_auth_count(const ss_auth *a) {
    return a ? a->n : 0;
}

static int same(const char *a, size_t alen, const char *b) {
    size_t blen = strlen(b);
    unsigned diff = (unsigned)(alen ^ blen);
    for (size_t i = 0; i < blen; i++)
        diff |= (unsigned)((uint8_t)b[i] ^ (uint8_t)(i < alen ? a[i] : 0));
    return diff == 0;
}

int ss_auth_check(const ss_auth *a, const char *h, uint64_t *owner) {
    *owner = 0;
    if (!a) return 0;
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return -1;
    const char *k = h + 7;
    while (*k == ' ')
        k++;
    size_t len = strlen(k);
    while (len && k[len - 1] == ' ')
        len--;
    if (!len) return -1;
    int found = -1;
    for (size_t i = 0; i < a->n; i++)
        if (same(k, len, a->keys[i])) found = (int)i;
    if (found < 0) return -2;
    *owner = owner_of(a->keys[found]);
    return 0;
}

const char *ss_auth_key(const ss_auth *a, uint64_t owner) {
    if (!a || !owner) return NULL;
    for (size_t i = 0; i < a->n; i++)
        if (owner_of(a->keys[i]) == owner) return a->keys[i];
    return NULL;
}
