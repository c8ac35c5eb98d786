/* batch.c: spike batches in (JSON, protobuf); the encoders are the codecs' (codec_json.c,
 * codec_pb.c).
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
    if (steps < 1) return fail(SS_E_INVALID, err, errlen, "steps: must be >= 1, got 0");
    if (steps > lim->max_steps)
        return fail(SS_E_LIMIT, err, errlen, "steps: %llu exceeds the limit %u (--max-steps)",
                    (unsigned long long)steps, lim->max_steps);
    return 0;
}

static int check_n_events(size_t n, const ss_limits *lim, char *err, size_t errlen) {
    if (n > lim->max_events)
        return fail(SS_E_LIMIT, err, errlen,
                    "events: %zu events exceed the limit %u (--max-events)", n, lim->max_events);
    return 0;
}

static int check_dense_size(size_t rows, uint32_t steps, size_t n_events, const spk_model *m,
                            const ss_limits *lim, char *err, size_t errlen) {
    uint64_t values = (uint64_t)steps * m->n_in;
    if (values + n_events > lim->max_events) {
        if (n_events)
            return fail(SS_E_LIMIT, err, errlen,
                        "dense: %llu values (%u x %u) and %zu events exceed the limit %u "
                        "(--max-events)",
                        (unsigned long long)values, steps, m->n_in, n_events, lim->max_events);
        return fail(SS_E_LIMIT, err, errlen,
                    "dense: %llu values (%u x %u) exceed the limit %u (--max-events)",
                    (unsigned long long)values, steps, m->n_in, lim->max_events);
    }
    if (rows != steps)
        return fail(SS_E_INVALID, err, errlen, "dense: %zu rows, expected %u (one per step)", rows,
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
        return fail(SS_E_INVALID, err, errlen, "%s: %smust be a finite number", path, label);
    return fail(SS_E_INVALID, err, errlen, "%s: %s%.9g exceeds the limit %.9g in magnitude", path,
                label, d, (double)SPK_MAX_VALUE);
}

static int check_event(size_t i, int64_t step, int64_t input, uint32_t steps, const spk_model *m,
                       char *err, size_t errlen) {
    if (step < 0 || step >= (int64_t)steps)
        return fail(SS_E_INVALID, err, errlen, "events[%zu]: step %lld out of range [0, %u)", i,
                    (long long)step, steps);
    if (input < 0 || input >= (int64_t)m->n_in)
        return fail(SS_E_INVALID, err, errlen, "events[%zu]: input %lld out of range [0, %u)", i,
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
            return fail(SS_E_INVALID, err, errlen,
                        "outputs[%zu]: \"%s\" needs a readout layer; model \"%s\" has none", i,
                        shown(s, len, tmp, sizeof tmp), m->name);
        *mask |= bit;
        return 0;
    }
    return fail(SS_E_INVALID, err, errlen,
                "outputs[%zu]: unknown output \"%s\" (expected spikes, readout, readout_all, "
                "layers)",
                i, shown(s, len, tmp, sizeof tmp));
}

static int alloc_arrays(ss_batch *out, size_t n_events, int dense, const spk_model *m, char *err,
                        size_t errlen) {
    if (n_events) {
        out->events = malloc(n_events * sizeof *out->events);
        if (!out->events) return fail(SS_E_NOMEM, err, errlen, "out of memory");
    }
    if (dense) {
        out->dense = malloc((size_t)out->steps * m->n_in * sizeof *out->dense);
        if (!out->dense) return fail(SS_E_NOMEM, err, errlen, "out of memory");
    }
    return 0;
}

unsigned ss_batch_plan(unsigned outputs) {
    return ((outputs & SS_OUT_LAYERS) ? SPK_OUT_LAYERS : 0u) |
           ((outputs & SS_OUT_READOUT_ALL) ? SPK_OUT_READOUT_ALL : 0u);
}

size_t ss_batch_out_bytes(const spk_model *m, const ss_batch *b) {
    return spk_output_bytes(m, b->steps, ss_batch_plan(b->outputs));
}

int ss_batch_check_limits(const spk_model *m, const ss_batch *b, const ss_limits *lim, char *err,
                          size_t errlen) {
    int rc = check_steps(b->steps, lim, err, errlen);
    if (rc) return rc;
    size_t need = ss_batch_out_bytes(m, b);
    if (lim->max_output_bytes && need > lim->max_output_bytes)
        return fail(SS_E_LIMIT, err, errlen,
                    "outputs: %u steps of the outputs asked need up to %zu bytes, over the limit "
                    "%llu (--max-output-bytes)",
                    b->steps, need, (unsigned long long)lim->max_output_bytes);
    return 0;
}

/* A decoded batch, held to the limits that need all its fields; freed when it fails. */
static int limits_done(const spk_model *m, ss_batch *b, const ss_limits *lim, char *err,
                       size_t errlen) {
    int rc = ss_batch_check_limits(m, b, lim, err, errlen);
    if (rc) ss_batch_free(b);
    return rc;
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
        return fail(SS_E_INVALID, err, errlen, "events: must be an array, got %s", json_kind(ev));
    size_t n = json_array_size(ev);
    int rc = check_n_events(n, lim, err, errlen);
    if (rc) return rc;
    if ((rc = alloc_arrays(out, n, 0, m, err, errlen))) return rc;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(ev, i);
        size_t k = json_is_array(e) ? json_array_size(e) : 0;
        if (k != 2 && k != 3)
            return fail(SS_E_INVALID, err, errlen,
                        "events[%zu]: must be [step, input] or [step, input, value]", i);
        const json_t *js = json_array_get(e, 0), *ji = json_array_get(e, 1);
        if (!json_is_integer(js))
            return fail(SS_E_INVALID, err, errlen,
                        "events[%zu][0]: step must be an integer, got %s", i, json_kind(js));
        if (!json_is_integer(ji))
            return fail(SS_E_INVALID, err, errlen,
                        "events[%zu][1]: input must be an integer, got %s", i, json_kind(ji));
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
        return fail(SS_E_INVALID, err, errlen, "dense: must be an array of rows, got %s",
                    json_kind(dn));
    int rc = check_dense_size(json_array_size(dn), out->steps, out->n_events, m, lim, err, errlen);
    if (rc || (rc = alloc_arrays(out, 0, 1, m, err, errlen))) return rc;
    for (uint32_t t = 0; t < out->steps; t++) {
        const json_t *row = json_array_get(dn, t);
        if (!json_is_array(row))
            return fail(SS_E_INVALID, err, errlen,
                        "dense[%u]: must be an array of %u numbers, got %s", t, m->n_in,
                        json_kind(row));
        if (json_array_size(row) != m->n_in)
            return fail(SS_E_INVALID, err, errlen, "dense[%u]: %zu values, expected %u", t,
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
    if (rc == SS_JSON_DECLINED) rc = ss_batch_json_ref(buf, len, m, lim, out, err, errlen);
    return rc ? rc : limits_done(m, out, lim, err, errlen);
}

int ss_batch_json_ref(const char *buf, size_t len, const spk_model *m, const ss_limits *lim,
                      ss_batch *out, char *err, size_t errlen) {
    static const char *const known[] = {"seq", "steps", "events", "dense", "outputs"};
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!root)
        return fail(SS_E_INVALID, err, errlen, "invalid JSON at line %d, column %d: %s", je.line,
                    je.column, je.text);
    int rc = 0;
    const char *key;
    json_t *v;
    if (!json_is_object(root)) {
        rc =
            fail(SS_E_INVALID, err, errlen, "body: must be a JSON object, got %s", json_kind(root));
        goto out;
    }
    json_object_foreach(root, key, v) {
        size_t k = 0;
        while (k < sizeof known / sizeof known[0] && strcmp(known[k], key) != 0)
            k++;
        if (k == sizeof known / sizeof known[0]) {
            char tmp[72];
            rc = fail(SS_E_INVALID, err, errlen,
                      "%s: unknown field (expected seq, steps, events, dense, outputs)",
                      shown(key, strlen(key), tmp, sizeof tmp));
            goto out;
        }
    }
    if ((v = json_object_get(root, "seq"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            rc = fail(SS_E_INVALID, err, errlen, "seq: must be a non-negative integer");
            goto out;
        }
        out->has_seq = 1;
        out->seq = (uint64_t)json_integer_value(v);
    }
    v = json_object_get(root, "steps");
    if (!v) {
        rc = fail(SS_E_INVALID, err, errlen, "steps: required");
        goto out;
    }
    if (!json_is_integer(v)) {
        rc = fail(SS_E_INVALID, err, errlen, "steps: must be an integer, got %s", json_kind(v));
        goto out;
    }
    if (json_integer_value(v) < 1) {
        rc = fail(SS_E_INVALID, err, errlen, "steps: must be >= 1, got %lld",
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
            rc = fail(SS_E_INVALID, err, errlen, "outputs: must be an array of strings, got %s",
                      json_kind(v));
            goto out;
        }
        out->outputs = 0;
        for (size_t i = 0; i < json_array_size(v); i++) {
            const json_t *s = json_array_get(v, i);
            if (!json_is_string(s)) {
                rc = fail(SS_E_INVALID, err, errlen, "outputs[%zu]: must be a string, got %s", i,
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
    size = spk_align16(size);
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
    if (rc == SS_PB_DECLINED) rc = ss_batch_pb_ref(buf, len, m, lim, out, err, errlen);
    return rc ? rc : limits_done(m, out, lim, err, errlen);
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
        return fail(SS_E_INVALID, err, errlen,
                    "invalid protobuf: not a spikeserve.SpikeBatch message (%zu bytes)", len);
    }
    int rc = 0;
    if (pb->has_seq) {
        if (pb->seq > INT64_MAX) { /* JSON (jansson, JavaScript) cannot carry it back */
            rc = fail(SS_E_INVALID, err, errlen, "seq: %llu exceeds the largest seq %lld",
                      (unsigned long long)pb->seq, (long long)INT64_MAX);
            goto out;
        }
        out->has_seq = 1;
        out->seq = pb->seq;
    }
    if (!pb->has_steps) {
        rc = fail(SS_E_INVALID, err, errlen, "steps: required");
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
                rc = fail(SS_E_INVALID, err, errlen, "dense[%u]: %zu values, expected %u", t,
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

/* ---- results ---- */

/* The readout row of the last step, or NULL when the result carries none. */
const float *ss_result_last_readout(const ss_result *r) {
    const spk_output *o = r->out;
    if (!r->model->has_readout || !o->readout || r->steps < 1) return NULL;
    return o->readout_every_step ? o->readout + (size_t)(r->steps - 1) * r->model->readout.n
                                 : o->readout;
}
