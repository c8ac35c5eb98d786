/* lines.c: a line is passed straight from the piece it arrived in when it is whole there,
 * and copied into the carry buffer only when it spans pieces. */
#include "lines.h"

#include <stdlib.h>
#include <string.h>

void ss_lines_init(ss_lines *l, size_t max) {
    memset(l, 0, sizeof *l);
    l->max = max;
}

void ss_lines_free(ss_lines *l) {
    free(l->buf);
    l->buf = NULL;
    l->len = l->cap = 0;
}

static int carry(ss_lines *l, const char *p, size_t n) {
    if (l->len + n > l->cap) {
        size_t cap = l->cap ? l->cap : 4096;
        while (cap < l->len + n)
            cap *= 2;
        char *b = realloc(l->buf, cap);
        if (!b) return -1;
        l->buf = b;
        l->cap = cap;
    }
    memcpy(l->buf + l->len, p, n);
    l->len += n;
    return 0;
}

static int emit(const char *p, size_t n, ss_lines_fn fn, void *arg) {
    while (n && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    if (i == n) return 0; /* blank */
    return fn(arg, p + i, n - i);
}

int ss_lines_feed(ss_lines *l, const char *data, size_t n, size_t *used, ss_lines_fn fn,
                  void *arg) {
    const char *p = data, *end = data + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t k = (size_t)((nl ? nl : end) - p);
        if (l->too_long || l->len + k > l->max) {
            l->too_long = 1; /* discard the rest of the input */
            l->len = 0;
            p = end;
            break;
        }
        if (!nl) { /* partial line: keep it (bounded by max) */
            if (carry(l, p, k) != 0) return -1;
            p = end;
            break;
        }
        int stop;
        if (l->len) {
            if (carry(l, p, k) != 0) return -1;
            size_t total = l->len;
            l->len = 0;
            stop = emit(l->buf, total, fn, arg);
        } else {
            stop = emit(p, k, fn, arg);
        }
        p = nl + 1;
        if (stop) break;
    }
    *used = (size_t)(p - data);
    return 0;
}

void ss_lines_end(ss_lines *l, ss_lines_fn fn, void *arg) {
    if (!l->too_long && l->len) {
        size_t n = l->len;
        l->len = 0;
        emit(l->buf, n, fn, arg);
    }
}
