/* batch.c: spike batches in (JSON, protobuf) and step results out (JSON, protobuf).
 *
 * Both decoders end in the same checks with the same messages, so a batch means the same
 * thing in either format: fields are checked in a fixed order (unknown keys, seq, steps,
 * events, dense, outputs) and the first problem is reported with its path. Limits are
 * checked on declared sizes before anything is allocated from them.
 *
 * Differences that follow from the formats: JSON rejects unknown keys and duplicate keys
 * (a typo must not silently change a request); protobuf ignores unknown fields as
 * protobuf does, and cannot tell an empty "outputs" from an absent one (both mean the
 * default), whereas JSON "outputs": [] asks for no outputs at all. A protobuf seq is
 * held to 2^63 - 1 like a JSON one, so that every answer can be given in JSON too.
 * Input values are held to the engine's bound (SPK_MAX_VALUE), so an accepted batch never
 * fails in spk_step().
 *
 * JSON batches go first through a one-pass scanner (jsonscan.c) that handles the common
 * well-formed batch without a tree; whatever it declines is decoded here with jansson, which
 * also gives every error message.
 *
 * The JSON result is written straight into a growing buffer: a jansson tree for a result
 * with 10^5 spikes costs several allocations per spike. Floats are printed with the fewest
 * significant digits (1 to 9) that read back to the same float32, as strtof and as a
 * double rounded to float (what numpy/JavaScript clients do).
 */
#include "batch.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.pb-c.h"
#include "jsonscan.h"
#include "pbbatch.h"

static int fail(int code, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(int code, char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* A client's string made safe to quote in a message: printable ASCII only, bounded. */
static const char *shown(const char *s, size_t len, char *tmp, size_t tmplen) {
    size_t k = 0;
    for (size_t i = 0; i < len && k + 4 < tmplen; i++)
        tmp[k++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (len > 0 && k + 4 >= tmplen && k < len) {
        memcpy(tmp + k, "...", 3);
        k += 3;
    }
    tmp[k] = '\0';
    return tmp;
}

unsigned ss_outputs_default(const spk_model *m) {
    return SS_OUT_SPIKES | (m->has_readout ? SS_OUT_READOUT : 0u);
}

void ss_batch_free(ss_batch *b) {
    if (!b) return;
    free(b->events);
    free(b->dense);
    b->events = NULL;
    b->dense = NULL;
    b->n_events = 0;
}

spk_input ss_batch_input(const ss_batch *b) {
    spk_input in = {b->steps, b->events, b->n_events, b->dense};
    return in;
}

/* ---- checks shared by both decoders ---- */

static int check_steps(uint64_t steps, const ss_limits *lim, char *err, size_t errlen) {
    if (steps < 1) return fail(SS_EBAD, err, errlen, "steps: must be >= 1, got 0");
    if (steps > lim->max_steps)
        return fail(SS_ELIMIT, err, errlen, "steps: %llu exceeds the limit %u (--max-steps)",
                    (unsigned long long)steps, lim->max_steps);
    return 0;
}

static int check_n_events(size_t n, const ss_limits *lim, char *err, size_t errlen) {
    if (n > lim->max_events)
        return fail(SS_ELIMIT, err, errlen, "events: %zu events exceed the limit %u (--max-events)",
                    n, lim->max_events);
    return 0;
}

static int check_dense_size(size_t rows, uint32_t steps, size_t n_events, const spk_model *m,
                            const ss_limits *lim, char *err, size_t errlen) {
    uint64_t values = (uint64_t)steps * m->n_in;
    if (values + n_events > lim->max_events) {
        if (n_events)
            return fail(SS_ELIMIT, err, errlen,
                        "dense: %llu values (%u x %u) and %zu events exceed the limit %u "
                        "(--max-events)",
                        (unsigned long long)values, steps, m->n_in, n_events, lim->max_events);
        return fail(SS_ELIMIT, err, errlen,
                    "dense: %llu values (%u x %u) exceed the limit %u (--max-events)",
                    (unsigned long long)values, steps, m->n_in, lim->max_events);
    }
    if (rows != steps)
        return fail(SS_EBAD, err, errlen, "dense: %zu rows, expected %u (one per step)", rows,
                    steps);
    return 0;
}

/* A number from the client as an input value: a finite float32 within the engine's bound
 * SPK_MAX_VALUE. The message names the place (path) and, in JSON, says "value". */
static int take_value(int is_number, double d, float *out, const char *label, char *err,
                      size_t errlen, const char *path_fmt, ...)
    __attribute__((format(printf, 7, 8)));
static int take_value(int is_number, double d, float *out, const char *label, char *err,
                      size_t errlen, const char *path_fmt, ...) {
    float f = is_number && isfinite(d) ? (float)d : NAN;
    if (isfinite(f) && fabsf(f) <= SPK_MAX_VALUE) {
        *out = f;
        return 0;
    }
    char path[64];
    va_list ap;
    va_start(ap, path_fmt);
    vsnprintf(path, sizeof path, path_fmt, ap);
    va_end(ap);
    if (!isfinite(f))
        return fail(SS_EBAD, err, errlen, "%s: %smust be a finite number", path, label);
    return fail(SS_EBAD, err, errlen, "%s: %s%.9g exceeds the limit %.9g in magnitude", path, label,
                d, (double)SPK_MAX_VALUE);
}

static int check_event(size_t i, int64_t step, int64_t input, uint32_t steps, const spk_model *m,
                       char *err, size_t errlen) {
    if (step < 0 || step >= (int64_t)steps)
        return fail(SS_EBAD, err, errlen, "events[%zu]: step %lld out of range [0, %u)", i,
                    (long long)step, steps);
    if (input < 0 || input >= (int64_t)m->n_in)
        return fail(SS_EBAD, err, errlen, "events[%zu]: input %lld out of range [0, %u)", i,
                    (long long)input, m->n_in);
    return 0;
}

static const struct {
    const char *name;
    unsigned bit;
} output_names[] = {
    {"spikes", SS_OUT_SPIKES},
    {"readout", SS_OUT_READOUT},
    {"readout_all", SS_OUT_READOUT_ALL},
    {"layers", SS_OUT_LAYERS},
};

unsigned ss_output_bit(const char *name, size_t len) {
    for (size_t k = 0; k < sizeof output_names / sizeof output_names[0]; k++)
        if (strlen(output_names[k].name) == len && memcmp(output_names[k].name, name, len) == 0)
            return output_names[k].bit;
    return 0;
}

static int parse_output(size_t i, const char *s, size_t len, const spk_model *m, unsigned *mask,
                        char *err, size_t errlen) {
    char tmp[72];
    unsigned bit = ss_output_bit(s, len);
    if (bit) {
        if ((bit & (SS_OUT_READOUT | SS_OUT_READOUT_ALL)) && !m->has_readout)
            return fail(SS_EBAD, err, errlen,
                        "outputs[%zu]: \"%s\" needs a readout layer; model \"%s\" has none", i,
                        shown(s, len, tmp, sizeof tmp), m->name);
        *mask |= bit;
        return 0;
    }
    return fail(SS_EBAD, err, errlen,
                "outputs[%zu]: unknown output \"%s\" (expected spikes, readout, readout_all, "
                "layers)",
                i, shown(s, len, tmp, sizeof tmp));
}

static int alloc_arrays(ss_batch *out, size_t n_events, int dense, const spk_model *m, char *err,
                        size_t errlen) {
    if (n_events) {
        out->events = malloc(n_events * sizeof *out->events);
        if (!out->events) return fail(SS_ENOMEM, err, errlen, "out of memory");
    }
    if (dense) {
        out->dense = malloc((size_t)out->steps * m->n_in * sizeof *out->dense);
        if (!out->dense) return fail(SS_ENOMEM, err, errlen, "out of memory");
    }
    return 0;
}

/* ---- JSON ---- */

static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

static int json_events(const json_t *ev, const spk_model *m, const ss_limits *lim, ss_batch *out,
                       char *err, size_t errlen) {
    if (!json_is_array(ev))
        return fail(SS_EBAD, err, errlen, "events: must be an array, got %s", json_kind(ev));
    size_t n = json_array_size(ev);
    int rc = check_n_events(n, lim, err, errlen);
    if (rc) return rc;
    if ((rc = alloc_arrays(out, n, 0, m, err, errlen))) return rc;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(ev, i);
        size_t k = json_is_array(e) ? json_array_size(e) : 0;
        if (k != 2 && k != 3)
            return fail(SS_EBAD, err, errlen,
                        "events[%zu]: must be [step, input] or [step, input, value]", i);
        const json_t *js = json_array_get(e, 0), *ji = json_array_get(e, 1);
        if (!json_is_integer(js))
            return fail(SS_EBAD, err, errlen, "events[%zu][0]: step must be an integer, got %s", i,
                        json_kind(js));
        if (!json_is_integer(ji))
            return fail(SS_EBAD, err, errlen, "events[%zu][1]: input must be an integer, got %s", i,
                        json_kind(ji));
        json_int_t step = json_integer_value(js), input = json_integer_value(ji);
        if ((rc = check_event(i, step, input, out->steps, m, err, errlen))) return rc;
        float value = 1.0f;
        if (k == 3) {
            const json_t *jv = json_array_get(e, 2);
            rc = take_value(json_is_number(jv), json_number_value(jv), &value, "value ", err,
                            errlen, "events[%zu][2]", i);
            if (rc) return rc;
        }
        out->events[i] = (spk_event){(uint32_t)step, (uint32_t)input, value};
    }
    out->n_events = n;
    return 0;
}

static int json_dense(const json_t *dn, const spk_model *m, const ss_limits *lim, ss_batch *out,
                      char *err, size_t errlen) {
    if (!json_is_array(dn))
        return fail(SS_EBAD, err, errlen, "dense: must be an array of rows, got %s", json_kind(dn));
    int rc = check_dense_size(json_array_size(dn), out->steps, out->n_events, m, lim, err, errlen);
    if (rc || (rc = alloc_arrays(out, 0, 1, m, err, errlen))) return rc;
    for (uint32_t t = 0; t < out->steps; t++) {
        const json_t *row = json_array_get(dn, t);
        if (!json_is_array(row))
            return fail(SS_EBAD, err, errlen, "dense[%u]: must be an array of %u numbers, got %s",
                        t, m->n_in, json_kind(row));
        if (json_array_size(row) != m->n_in)
            return fail(SS_EBAD, err, errlen, "dense[%u]: %zu values, expected %u", t,
                        json_array_size(row), m->n_in);
        float *dst = out->dense + (size_t)t * m->n_in;
        for (uint32_t j = 0; j < m->n_in; j++) {
            const json_t *v = json_array_get(row, j);
            rc = take_value(json_is_number(v), json_number_value(v), &dst[j], "value ", err, errlen,
                            "dense[%u][%u]", t, j);
            if (rc) return rc;
        }
    }
    return 0;
}

int ss_batch_from_json(const char *buf, size_t len, const spk_model *m, const ss_limits *lim,
                       ss_batch *out, char *err, size_t errlen) {
    int rc = ss_batch_json_fast(buf, len, m, lim, out);
    return rc == SS_JSON_DECLINED ? ss_batch_json_ref(buf, len, m, lim, out, err, errlen) : rc;
}

int ss_batch_json_ref(const char *buf, size_t len, const spk_model *m, const ss_limits *lim,
                      ss_batch *out, char *err, size_t errlen) {
    static const char *const known[] = {"seq", "steps", "events", "dense", "outputs"};
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!root)
        return fail(SS_EBAD, err, errlen, "invalid JSON at line %d, column %d: %s", je.line,
                    je.column, je.text);
    int rc = 0;
    const char *key;
    json_t *v;
    if (!json_is_object(root)) {
        rc = fail(SS_EBAD, err, errlen, "body: must be a JSON object, got %s", json_kind(root));
        goto out;
    }
    json_object_foreach(root, key, v) {
        size_t k = 0;
        while (k < sizeof known / sizeof known[0] && strcmp(known[k], key) != 0)
            k++;
        if (k == sizeof known / sizeof known[0]) {
            char tmp[72];
            rc = fail(SS_EBAD, err, errlen,
                      "%s: unknown field (expected seq, steps, events, dense, outputs)",
                      shown(key, strlen(key), tmp, sizeof tmp));
            goto out;
        }
    }
    if ((v = json_object_get(root, "seq"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            rc = fail(SS_EBAD, err, errlen, "seq: must be a non-negative integer");
            goto out;
        }
        out->has_seq = 1;
        out->seq = (uint64_t)json_integer_value(v);
    }
    v = json_object_get(root, "steps");
    if (!v) {
        rc = fail(SS_EBAD, err, errlen, "steps: required");
        goto out;
    }
    if (!json_is_integer(v)) {
        rc = fail(SS_EBAD, err, errlen, "steps: must be an integer, got %s", json_kind(v));
        goto out;
    }
    if (json_integer_value(v) < 1) {
        rc = fail(SS_EBAD, err, errlen, "steps: must be >= 1, got %lld",
                  (long long)json_integer_value(v));
        goto out;
    }
    if ((rc = check_steps((uint64_t)json_integer_value(v), lim, err, errlen))) goto out;
    out->steps = (uint32_t)json_integer_value(v);
    if ((v = json_object_get(root, "events")) && (rc = json_events(v, m, lim, out, err, errlen)))
        goto out;
    if ((v = json_object_get(root, "dense")) && (rc = json_dense(v, m, lim, out, err, errlen)))
        goto out;
    out->outputs = ss_outputs_default(m);
    if ((v = json_object_get(root, "outputs"))) {
        if (!json_is_array(v)) {
            rc = fail(SS_EBAD, err, errlen, "outputs: must be an array of strings, got %s",
                      json_kind(v));
            goto out;
        }
        out->outputs = 0;
        for (size_t i = 0; i < json_array_size(v); i++) {
            const json_t *s = json_array_get(v, i);
            if (!json_is_string(s)) {
                rc = fail(SS_EBAD, err, errlen, "outputs[%zu]: must be a string, got %s", i,
                          json_kind(s));
                goto out;
            }
            rc = parse_output(i, json_string_value(s), json_string_length(s), m, &out->outputs, err,
                              errlen);
            if (rc) goto out;
        }
    }
    spk_events_sort(out->events, out->n_events);
out:
    json_decref(root);
    if (rc) ss_batch_free(out);
    return rc;
}

/* ---- protobuf ---- */

/* protobuf-c allocates every sub-message (one per event) separately. An unpacked batch
 * lives only inside ss_batch_from_pb, so its allocations come from a bump arena: a buffer on
 * the caller's stack, then malloc'd chunks that double in size, all released at once
 * (a one-step batch of a few hundred events costs no malloc at all). */
typedef struct pb_chunk {
    struct pb_chunk *next;
    size_t cap;
    _Alignas(16) unsigned char data[];
} pb_chunk;

typedef struct {
    unsigned char *p;
    size_t used, cap;
    pb_chunk *chunks;
} pb_arena;

static void *pb_arena_alloc(void *ad, size_t size) {
    pb_arena *a = ad;
    size = (size + 15) & ~(size_t)15;
    if (size > a->cap - a->used) {
        size_t cap = a->cap * 2 > size ? a->cap * 2 : size;
        pb_chunk *c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->next = a->chunks;
        c->cap = cap;
        a->chunks = c;
        a->p = c->data;
        a->used = 0;
        a->cap = cap;
    }
    void *r = a->p + a->used;
    a->used += size;
    return r;
}

static void pb_arena_free(void *ad, void *ptr) {
    (void)ad, (void)ptr;
}

static void pb_arena_release(pb_arena *a) {
    while (a->chunks) {
        pb_chunk *c = a->chunks;
        a->chunks = c->next;
        free(c);
    }
}

int ss_batch_from_pb(const uint8_t *buf, size_t len, const spk_model *m, const ss_limits *lim,
                     ss_batch *out, char *err, size_t errlen) {
    int rc = ss_batch_pb_fast(buf, len, m, lim, out);
    return rc == SS_PB_DECLINED ? ss_batch_pb_ref(buf, len, m, lim, out, err, errlen) : rc;
}

int ss_batch_pb_ref(const uint8_t *buf, size_t len, const spk_model *m, const ss_limits *lim,
                    ss_batch *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    _Alignas(16) unsigned char first[32768];
    pb_arena arena = {first, 0, sizeof first, NULL};
    ProtobufCAllocator alloc = {pb_arena_alloc, pb_arena_free, &arena};
    Spikeserve__SpikeBatch *pb = spikeserve__spike_batch__unpack(&alloc, len, buf);
    if (!pb) {
        pb_arena_release(&arena);
        return fail(SS_EBAD, err, errlen,
                    "invalid protobuf: not a spikeserve.SpikeBatch message (%zu bytes)", len);
    }
    int rc = 0;
    if (pb->has_seq) {
        if (pb->seq > INT64_MAX) { /* JSON (jansson, JavaScript) cannot carry it back */
            rc = fail(SS_EBAD, err, errlen, "seq: %llu exceeds the largest seq %lld",
                      (unsigned long long)pb->seq, (long long)INT64_MAX);
            goto out;
        }
        out->has_seq = 1;
        out->seq = pb->seq;
    }
    if (!pb->has_steps) {
        rc = fail(SS_EBAD, err, errlen, "steps: required");
        goto out;
    }
    if ((rc = check_steps(pb->steps, lim, err, errlen))) goto out;
    out->steps = pb->steps;
    if ((rc = check_n_events(pb->n_events, lim, err, errlen))) goto out;
    if ((rc = alloc_arrays(out, pb->n_events, 0, m, err, errlen))) goto out;
    for (size_t i = 0; i < pb->n_events; i++) {
        const Spikeserve__InputEvent *e = pb->events[i];
        /* Absent step/input are 0 and an absent value is 1.0, as protobuf defines. */
        if ((rc = check_event(i, e->step, e->input, out->steps, m, err, errlen))) goto out;
        float value;
        rc = take_value(1, e->value, &value, "", err, errlen, "events[%zu].value", i);
        if (rc) goto out;
        out->events[i] = (spk_event){e->step, e->input, value};
    }
    out->n_events = pb->n_events;
    if (pb->n_dense) {
        rc = check_dense_size(pb->n_dense, out->steps, out->n_events, m, lim, err, errlen);
        if (rc || (rc = alloc_arrays(out, 0, 1, m, err, errlen))) goto out;
        for (uint32_t t = 0; t < out->steps; t++) {
            const Spikeserve__DenseRow *row = pb->dense[t];
            if (row->n_values != m->n_in) {
                rc = fail(SS_EBAD, err, errlen, "dense[%u]: %zu values, expected %u", t,
                          row->n_values, m->n_in);
                goto out;
            }
            float *dst = out->dense + (size_t)t * m->n_in;
            for (uint32_t j = 0; j < m->n_in; j++) {
                rc = take_value(1, row->values[j], &dst[j], "value ", err, errlen, "dense[%u][%u]",
                                t, j);
                if (rc) goto out;
            }
        }
    }
    out->outputs = ss_outputs_default(m);
    if (pb->n_outputs) {
        out->outputs = 0;
        for (size_t i = 0; i < pb->n_outputs; i++) {
            const char *s = pb->outputs[i];
            if ((rc = parse_output(i, s, strlen(s), m, &out->outputs, err, errlen))) goto out;
        }
    }
    spk_events_sort(out->events, out->n_events);
out:
    pb_arena_release(&arena); /* the whole unpacked message */
    if (rc) ss_batch_free(out);
    return rc;
}

/* ---- JSON result ---- */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} jbuf;

static int jb_reserve(jbuf *b, size_t extra) {
    if (b->oom) return -1;
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static void jb_put(jbuf *b, const char *s, size_t n) {
    if (jb_reserve(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}
#define JB_LIT(b, s) jb_put((b), (s), sizeof(s) - 1)

static void jb_u64(jbuf *b, uint64_t v) {
    char tmp[24];
    int k = sizeof tmp;
    do {
        tmp[--k] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    jb_put(b, tmp + k, sizeof tmp - (size_t)k);
}

/* Floats: the fewest significant digits (1 to 9; 9 always do) whose decimal value reads
 * back as f, both directly as a float and through a double. printf + strtof per candidate
 * costs ~600 ns a number, more than a step of the engine, so candidates are made and
 * checked in double arithmetic: a float's rounding interval has exact bounds in double,
 * and a candidate clearly inside it (by a margin far above the few ulps of double error)
 * is correct. The rare candidate near a bound goes through the exact printf/strtof test.
 * Layout follows %g with at least 6 digits of precision (0.1, 100, 1e-07, 12345678). */
static double pow10i(int k) {
    static const double t[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                               1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                               1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    static const double n[] = {1e0,   1e-1,  1e-2,  1e-3,  1e-4,  1e-5,  1e-6,  1e-7,
                               1e-8,  1e-9,  1e-10, 1e-11, 1e-12, 1e-13, 1e-14, 1e-15,
                               1e-16, 1e-17, 1e-18, 1e-19, 1e-20, 1e-21, 1e-22};
    unsigned up = (unsigned)k, down = 0u - (unsigned)k;
    if (up <= 22) return t[up];
    if (down <= 22) return n[down];
    return pow(10, k);
}

/* nearbyint() for 0 <= x < 2^52, inline: adding and taking away 2^52 rounds to an integer
 * in the current (round-to-nearest-even) mode, without nearbyint's save and restore of the
 * floating-point environment. */
static double round_even(double x) {
    const double big = 4503599627370496.0;
    return x < big ? (x + big) - big : x;
}

static int format_slow(char *dst, size_t cap, float f) {
    int n = 0;
    for (int p = 1; p <= 9; p++) {
        n = snprintf(dst, cap, "%.*g", p, (double)f);
        for (int i = 0; i < n; i++)
            if (dst[i] == ',') dst[i] = '.'; /* a locale with a decimal comma */
        if (strtof(dst, NULL) == f && (float)strtod(dst, NULL) == f) break;
    }
    return n;
}

/* Writes sign, digits of c (p of them, trailing zeros dropped) and decimal exponent x. */
static int layout(char *dst, int neg, uint64_t c, int p, int x) {
    char dig[20];
    for (int i = p - 1; i >= 0; i--, c /= 10)
        dig[i] = (char)('0' + c % 10);
    int nd = p;
    while (nd > 1 && dig[nd - 1] == '0')
        nd--;
    char *d = dst;
    if (neg) *d++ = '-';
    if (x < -4 || x >= (p > 6 ? p : 6)) {
        *d++ = dig[0];
        if (nd > 1) {
            *d++ = '.';
            memcpy(d, dig + 1, (size_t)nd - 1);
            d += nd - 1;
        }
        d += sprintf(d, "e%c%02d", x < 0 ? '-' : '+', x < 0 ? -x : x);
    } else if (x >= 0) {
        for (int i = 0; i <= x; i++)
            *d++ = i < nd ? dig[i] : '0';
        if (nd > x + 1) {
            *d++ = '.';
            memcpy(d, dig + x + 1, (size_t)(nd - x - 1));
            d += nd - x - 1;
        }
    } else {
        *d++ = '0';
        *d++ = '.';
        for (int i = 0; i < -x - 1; i++)
            *d++ = '0';
        memcpy(d, dig, (size_t)nd);
        d += nd;
    }
    *d = '\0';
    return (int)(d - dst);
}

static int format_float(char *dst, size_t cap, float f) {
    if (!isfinite(f)) return snprintf(dst, cap, "null");
    if (f == 0) /* "-0" would read back as the integer 0 in most JSON libraries */
        return snprintf(dst, cap, signbit(f) ? "-0.0" : "0");
    float a = fabsf(f);
    double v = a, below = nextafterf(a, 0), above = nextafterf(a, INFINITY);
    double lo = (v + below) / 2, hi = isinf(above) ? v + (v - below) / 2 : (v + above) / 2;
    int b;
    frexp(v, &b); /* v in [2^(b-1), 2^b): the decimal exponent is about (b - 1) log10(2) */
    int e = (int)floor((b - 1) * 0.30102999566398120);
    while (pow10i(e) > v)
        e--;
    while (pow10i(e + 1) <= v)
        e++;
    /* The nearest p-digit decimal is never farther from v than the nearest (p-1)-digit one
     * (which is also a p-digit decimal), so "inside the interval" is monotone in p: a binary
     * search over 1..9 finds the fewest digits in 4 probes instead of up to 9. */
    int lo_p = 1, hi_p = 9, best_x = 0;
    uint64_t best_c = 0;
    int found = 0;
    while (lo_p <= hi_p) {
        int p = (lo_p + hi_p) / 2;
        int k = p - 1 - e, x = e;
        double sc = k >= 0 ? v * pow10i(k) : v / pow10i(-k), c = round_even(sc);
        int inside = 0;
        /* Clearly outside: |back - v| > 2 (hi - lo), which the checks below would also find
         * (their margin is ~1e-14 v, the interval ~6e-8 v), without their division. */
        if (!(fabs(c - sc) * v > 2 * (hi - lo) * sc)) {
            if (c >= pow10i(p)) { /* 9.99.. rounded up to 10.0.. */
                c /= 10;
                x++;
                k--;
            }
            double back = k >= 0 ? c / pow10i(k) : c * pow10i(-k);
            double margin = back * 1e-14;
            if (back - margin > lo && back + margin < hi)
                inside = 1;
            else if (back + margin > lo && back - margin < hi)
                return format_slow(dst, cap, f); /* too close to call */
        }
        if (inside) {
            found = p, best_c = (uint64_t)c, best_x = x;
            hi_p = p - 1;
        } else {
            lo_p = p + 1;
        }
    }
    if (found) return layout(dst, f < 0, best_c, found, best_x);
    return format_slow(dst, cap, f);
}

static void jb_float(jbuf *b, float f) {
    if (jb_reserve(b, 32)) return;
    b->len += (size_t)format_float(b->p + b->len, 32, f);
}

/* A JSON string; bytes that are not valid UTF-8 become U+FFFD. */
static void jb_str(jbuf *b, const char *s) {
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s);
    if (jb_reserve(b, 6 * n + 2)) return;
    char *d = b->p + b->len;
    *d++ = '"';
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        if (c == '"' || c == '\\') {
            *d++ = '\\';
            *d++ = (char)c;
            i++;
        } else if (c < 0x20) {
            d += sprintf(d, "\\u%04x", c);
            i++;
        } else if (c < 0x80) {
            *d++ = (char)c;
            i++;
        } else {
            size_t k = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
            int valid = k > 0 && c < 0xf5 && i + k <= n;
            for (size_t j = 1; valid && j < k; j++)
                valid = (u[i + j] & 0xc0) == 0x80;
            if (valid && k == 3) /* no overlongs, no surrogates */
                valid = !(c == 0xe0 && u[i + 1] < 0xa0) && !(c == 0xed && u[i + 1] >= 0xa0);
            if (valid && k == 4)
                valid = !(c == 0xf0 && u[i + 1] < 0x90) && !(c == 0xf4 && u[i + 1] >= 0x90);
            if (valid) {
                memcpy(d, u + i, k);
                d += k;
                i += k;
            } else {
                memcpy(d, "\\ufffd", 6);
                d += 6;
                i++;
            }
        }
    }
    *d++ = '"';
    b->len = (size_t)(d - b->p);
}

static void jb_spikes(jbuf *b, const spk_spike_buf *sb) {
    JB_LIT(b, "[");
    for (size_t i = 0; i < sb->len; i++) {
        if (jb_reserve(b, 80)) return;
        if (i) JB_LIT(b, ",");
        JB_LIT(b, "[");
        jb_u64(b, sb->buf[i].step);
        JB_LIT(b, ",");
        jb_u64(b, sb->buf[i].neuron);
        JB_LIT(b, ",");
        jb_float(b, sb->buf[i].value);
        JB_LIT(b, "]");
    }
    JB_LIT(b, "]");
}

static void jb_floats(jbuf *b, const float *v, size_t n) {
    JB_LIT(b, "[");
    for (size_t i = 0; i < n; i++) {
        if (i) JB_LIT(b, ",");
        jb_float(b, v[i]);
    }
    JB_LIT(b, "]");
}

/* The readout row of the last step, or NULL when the result carries none. */
static float *last_readout(const ss_result *r) {
    const spk_output *o = r->out;
    if (!r->model->has_readout || !o->readout || r->steps < 1) return NULL;
    return o->readout_every_step ? o->readout + (size_t)(r->steps - 1) * r->model->readout.n
                                 : o->readout;
}

char *ss_result_json(const ss_result *r, size_t *len) {
    const spk_model *m = r->model;
    const spk_output *o = r->out;
    jbuf b = {0};
    jb_reserve(&b, 128 + (r->outputs & SS_OUT_SPIKES ? o->spikes.len * 24 : 0));
    JB_LIT(&b, "{");
    if (r->session_id) {
        JB_LIT(&b, "\"session_id\":");
        jb_str(&b, r->session_id);
        JB_LIT(&b, ",");
    }
    if (r->has_seq) {
        JB_LIT(&b, "\"seq\":");
        jb_u64(&b, r->seq);
        JB_LIT(&b, ",");
    }
    JB_LIT(&b, "\"t0\":");
    jb_u64(&b, r->t0);
    JB_LIT(&b, ",\"steps\":");
    jb_u64(&b, r->steps);
    if (r->outputs & SS_OUT_SPIKES) {
        JB_LIT(&b, ",\"spikes\":");
        jb_spikes(&b, &o->spikes);
    }
    const float *last = last_readout(r);
    if ((r->outputs & SS_OUT_READOUT) && last) {
        JB_LIT(&b, ",\"readout\":");
        jb_floats(&b, last, m->readout.n);
    }
    if ((r->outputs & SS_OUT_READOUT_ALL) && last && o->readout_every_step) {
        JB_LIT(&b, ",\"readout_steps\":[");
        for (uint32_t t = 0; t < r->steps; t++) {
            if (t) JB_LIT(&b, ",");
            jb_floats(&b, o->readout + (size_t)t * m->readout.n, m->readout.n);
        }
        JB_LIT(&b, "]");
    }
    if ((r->outputs & SS_OUT_READOUT) && last) {
        uint32_t k = spk_argmax(last, m->readout.n);
        JB_LIT(&b, ",\"prediction\":{\"index\":");
        jb_u64(&b, k);
        if (k < m->n_labels) {
            JB_LIT(&b, ",\"label\":");
            jb_str(&b, m->labels[k]);
        }
        JB_LIT(&b, "}");
    }
    if ((r->outputs & SS_OUT_LAYERS) && o->layers) {
        JB_LIT(&b, ",\"layers\":[");
        for (uint32_t l = 0; l < m->n_layers; l++) {
            if (l) JB_LIT(&b, ",");
            JB_LIT(&b, "{\"layer\":");
            jb_u64(&b, l);
            JB_LIT(&b, ",\"spikes\":");
            jb_spikes(&b, &o->layers[l]);
            JB_LIT(&b, "}");
        }
        JB_LIT(&b, "]");
    }
    JB_LIT(&b, "}");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    b.p[b.len] = '\0';
    if (len) *len = b.len;
    return b.p;
}

/* ---- protobuf result ---- */

static char *unconst(const char *s) {
    union {
        const char *c;
        char *m;
    } u = {.c = s};
    return u.m;
}

/* Message structs point into r (nothing is copied) and live only until packed. */
static Spikeserve__OutputSpike **pb_spikes(const spk_spike_buf *sb) {
    size_t n = sb->len;
    Spikeserve__OutputSpike **pp = malloc(n * sizeof *pp + n * sizeof **pp + 1);
    if (!pp) return NULL;
    Spikeserve__OutputSpike *s = (Spikeserve__OutputSpike *)(pp + n);
    for (size_t i = 0; i < n; i++) {
        spikeserve__output_spike__init(&s[i]);
        s[i].has_step = s[i].has_neuron = s[i].has_value = 1;
        s[i].step = sb->buf[i].step;
        s[i].neuron = sb->buf[i].neuron;
        s[i].value = sb->buf[i].value;
        pp[i] = &s[i];
    }
    return pp;
}

uint8_t *ss_result_pb(const ss_result *r, size_t *len) {
    const spk_model *m = r->model;
    const spk_output *o = r->out;
    Spikeserve__StepResult res = SPIKESERVE__STEP_RESULT__INIT;
    Spikeserve__Prediction pred = SPIKESERVE__PREDICTION__INIT;
    Spikeserve__DenseRow *rows = NULL, **rowp = NULL;
    Spikeserve__LayerSpikes *ls = NULL, **lsp = NULL;
    uint8_t *buf = NULL;
    uint32_t n_layers_done = 0;

    res.session_id = r->session_id ? unconst(r->session_id) : NULL;
    res.has_seq = r->has_seq;
    res.seq = r->seq;
    res.has_t0 = res.has_steps = 1;
    res.t0 = r->t0;
    res.steps = r->steps;
    if (r->outputs & SS_OUT_SPIKES) {
        if (!(res.spikes = pb_spikes(&o->spikes))) goto fail;
        res.n_spikes = o->spikes.len;
    }
    float *last = last_readout(r);
    if ((r->outputs & SS_OUT_READOUT) && last) {
        res.readout = last;
        res.n_readout = m->readout.n;
        pred.has_index = 1;
        pred.index = spk_argmax(last, m->readout.n);
        if (pred.index < m->n_labels) pred.label = m->labels[pred.index];
        res.prediction = &pred;
    }
    if ((r->outputs & SS_OUT_READOUT_ALL) && last && o->readout_every_step) {
        rows = malloc(r->steps * sizeof *rows);
        rowp = malloc(r->steps * sizeof *rowp);
        if (!rows || !rowp) goto fail;
        for (uint32_t t = 0; t < r->steps; t++) {
            spikeserve__dense_row__init(&rows[t]);
            rows[t].n_values = m->readout.n;
            rows[t].values = o->readout + (size_t)t * m->readout.n;
            rowp[t] = &rows[t];
        }
        res.readout_steps = rowp;
        res.n_readout_steps = r->steps;
    }
    if ((r->outputs & SS_OUT_LAYERS) && o->layers && m->n_layers) {
        ls = calloc(m->n_layers, sizeof *ls);
        lsp = calloc(m->n_layers, sizeof *lsp);
        if (!ls || !lsp) goto fail;
        for (; n_layers_done < m->n_layers; n_layers_done++) {
            uint32_t l = n_layers_done;
            spikeserve__layer_spikes__init(&ls[l]);
            ls[l].has_layer = 1;
            ls[l].layer = l;
            if (!(ls[l].spikes = pb_spikes(&o->layers[l]))) goto fail;
            ls[l].n_spikes = o->layers[l].len;
            lsp[l] = &ls[l];
        }
        res.layers = lsp;
        res.n_layers = m->n_layers;
    }
    size_t n = spikeserve__step_result__get_packed_size(&res);
    if (!(buf = malloc(n ? n : 1))) goto fail;
    spikeserve__step_result__pack(&res, buf);
    if (len) *len = n;
fail:
    free(res.spikes);
    free(rows);
    free(rowp);
    for (uint32_t l = 0; l < n_layers_done; l++)
        free(ls[l].spikes);
    free(ls);
    free(lsp);
    return buf;
}
