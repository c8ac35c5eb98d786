/* fuzz_lines.c: libFuzzer harness for the NDJSON splitter of POST /stream (server/lines.c).
 * The first bytes choose the line limit, the piece sizes and where the consumer pauses; the
 * rest is the upload. However it is cut and paused, the lines must be exactly those of a
 * plain reference split of the whole upload (trimmed, blanks skipped, stopping at the first
 * line over the limit), and the carry buffer must stay within the limit. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lines.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_lines: check failed: %s (line %d)\n", #c, __LINE__);             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct {
    char *text; /* lines joined by '\n' */
    size_t len, cap, count;
    uint32_t pause_mask, calls;
} sink;

static void add(sink *k, const char *p, size_t n) {
    if (k->len + n + 1 > k->cap) {
        k->cap = 2 * (k->len + n + 1) + 64;
        k->text = realloc(k->text, k->cap);
        CHECK(k->text);
    }
    memcpy(k->text + k->len, p, n);
    k->len += n;
    k->text[k->len++] = '\n';
    k->count++;
}

static int on_line(void *arg, const char *p, size_t n) {
    sink *k = arg;
    CHECK(n > 0);
    CHECK(p[0] != ' ' && p[0] != '\t' && p[n - 1] != ' ' && p[n - 1] != '\t' && p[n - 1] != '\r');
    CHECK(memchr(p, '\n', n) == NULL);
    add(k, p, n);
    return (k->pause_mask >> (k->calls++ % 32)) & 1;
}

static int is_blank(char c) {
    return c == ' ' || c == '\t';
}

/* The reference: the whole upload at once. */
static int reference(const char *d, size_t n, size_t max, sink *k) {
    size_t i = 0;
    while (i < n) {
        const char *nl = memchr(d + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - d) : n, len = e - i;
        if (len > max) return 1; /* too long */
        size_t a = i, b = e;
        while (b > a && (is_blank(d[b - 1]) || d[b - 1] == '\r'))
            b--;
        while (a < b && is_blank(d[a]))
            a++;
        if (a < b) add(k, d + a, b - a);
        i = e + 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 6) return 0;
    size_t max = 1 + data[0] % 64, piece = 1 + data[1] % 17;
    uint32_t pause = (uint32_t)data[2] | (uint32_t)data[3] << 8 | (uint32_t)data[4] << 16 |
                     (uint32_t)data[5] << 24;
    const char *body = (const char *)data + 6;
    size_t n = size - 6;
    sink want = {0}, got = {0};
    got.pause_mask = pause;
    int too_long = reference(body, n, max, &want);
    ss_lines l;
    ss_lines_init(&l, max);
    size_t off = 0, rounds = 0;
    while (off < n) {
        size_t k = n - off < piece ? n - off : piece, used;
        /* a paused consumer gets the rest of the piece again, as MHD does */
        CHECK(ss_lines_feed(&l, body + off, k, &used, on_line, &got) == 0);
        CHECK(used <= k);
        CHECK(l.len <= l.max);
        CHECK(used > 0 || k == 0); /* progress: a pause comes after a whole line */
        off += used;
        CHECK(++rounds <= 2 * n + 2);
    }
    ss_lines_end(&l, on_line, &got);
    CHECK(l.too_long == too_long);
    if (!too_long) {
        CHECK(got.count == want.count);
        CHECK(got.len == want.len && (got.len == 0 || !memcmp(got.text, want.text, got.len)));
    } else {
        /* what came before the long line came out, nothing after it */
        CHECK(got.count <= want.count && got.len <= want.len);
        CHECK(got.len == 0 || !memcmp(got.text, want.text, got.len));
    }
    ss_lines_free(&l);
    free(want.text);
    free(got.text);
    return 0;
}
