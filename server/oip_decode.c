/* oip_decode.c: OIP infer requests (oip.h) into a spike batch. Three passes: the header's
 * fields and every input's name, datatype and shape (checked against the body and the
 * limits, nothing allocated); the step count and outputs (ss_batch_check_limits); then the
 * values, from JSON "data" (flat or nested) or the binary tail. This is the reference
 * (ss_oip_decode_ref, oipscan.h); ss_oip_decode asks the one-pass scanner (oipscan.c) first
 * and this decoder only for what the scanner declines. */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oip.h"
#include "oipscan.h"

static int fail(int rc, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(int rc, char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

enum { K_F = SS_OIP_K_F, K_I = SS_OIP_K_I, K_U = SS_OIP_K_U, K_B = SS_OIP_K_B, K_NO = SS_OIP_K_NO };

typedef ss_oip_dtype dtype;

const ss_oip_dtype ss_oip_dtypes[] = {
    {"FP32", 4, K_F},   {"FP64", 8, K_F},   {"INT8", 1, K_I},  {"INT16", 2, K_I},
    {"INT32", 4, K_I},  {"INT64", 8, K_I},  {"UINT8", 1, K_U}, {"UINT16", 2, K_U},
    {"UINT32", 4, K_U}, {"UINT64", 8, K_U}, {"BOOL", 1, K_B},  {"FP16", 2, K_NO},
    {"BF16", 2, K_NO},  {"BYTES", 0, K_NO},
};
const size_t ss_oip_n_dtypes = sizeof ss_oip_dtypes / sizeof ss_oip_dtypes[0];

#define MAX_DIMS 4
#define MAX_NEST 8

typedef struct {
    int which; /* 0 spikes, 1 events */
    const dtype *dt;
    uint64_t dims[MAX_DIMS];
    int nd;
    size_t n; /* elements */
    json_t *data;
    const uint8_t *bin; /* binary_data_size: its bytes in the tail */
} tensor;

/* Elements of a shape, or fails when a dimension is negative, not an integer, or the
 * product passes cap. */
static int shape_of(json_t *sh, const char *name, tensor *t, uint64_t cap, char *err,
                    size_t errlen) {
    if (!json_is_array(sh) || json_array_size(sh) == 0 || json_array_size(sh) > MAX_DIMS)
        return fail(SS_E_INVALID, err, errlen,
                    "inputs %s: shape must be an array of 1..%d integers", name, MAX_DIMS);
    t->nd = (int)json_array_size(sh);
    uint64_t n = 1;
    for (int i = 0; i < t->nd; i++) {
        json_t *d = json_array_get(sh, (size_t)i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return fail(SS_E_INVALID, err, errlen,
                        "inputs %s: shape[%d] must be a non-negative integer", name, i);
        t->dims[i] = (uint64_t)json_integer_value(d);
        if (t->dims[i] > cap || (t->dims[i] && n > cap / t->dims[i]))
            return fail(SS_E_LIMIT, err, errlen,
                        "inputs %s: shape has more than %llu elements (--max-events)", name,
                        (unsigned long long)cap);
        n *= t->dims[i];
    }
    t->n = (size_t)n;
    return 0;
}

/* Leaves of nested data (depth-limited), or -1 when it is not an array of arrays/values. */
static int count_leaves(json_t *d, int depth, size_t cap, size_t *n) {
    if (!json_is_array(d)) {
        if (++*n > cap) return -1;
        return 0;
    }
    if (depth >= MAX_NEST) return -1;
    for (size_t i = 0; i < json_array_size(d); i++)
        if (count_leaves(json_array_get(d, i), depth + 1, cap, n) != 0) return -1;
    return 0;
}

static int json_value(json_t *v, const dtype *dt, double *out) {
    switch (dt->kind) {
    case K_B:
        if (!json_is_boolean(v)) return -1;
        *out = json_is_true(v);
        return 0;
    case K_F:
        if (!json_is_number(v)) return -1;
        *out = json_number_value(v);
        return 0;
    default:
        if (!json_is_integer(v)) return -1;
        if (dt->kind == K_U && json_integer_value(v) < 0) return -1;
        *out = (double)json_integer_value(v);
        return 0;
    }
}

static int fill_json(json_t *d, const dtype *dt, double *dst, size_t *k, int depth) {
    if (!json_is_array(d)) return json_value(d, dt, &dst[(*k)++]);
    if (depth >= MAX_NEST) return -1;
    for (size_t i = 0; i < json_array_size(d); i++)
        if (fill_json(json_array_get(d, i), dt, dst, k, depth + 1) != 0) return -1;
    return 0;
}

/* n little-endian values of type T at p into v (a constant-size copy per element). */
#define BIN_LOOP(T)                                                                                \
    for (size_t i = 0; i < n; i++) {                                                               \
        T x;                                                                                       \
        memcpy(&x, p + i * sizeof(T), sizeof(T));                                                  \
        v[i] = (double)x;                                                                          \
    }

static void bin_values(const uint8_t *p, size_t n, const dtype *dt, double *v) {
    /* little-endian host (x86-64, aarch64), as the protocol's binary data is */
    if (dt->kind == K_F) {
        if (dt->size == 4) {
            BIN_LOOP(float)
        } else {
            BIN_LOOP(double)
        }
    } else if (dt->kind == K_B) {
        for (size_t i = 0; i < n; i++)
            v[i] = p[i] != 0;
    } else if (dt->kind == K_I) {
        if (dt->size == 1) {
            BIN_LOOP(int8_t)
        } else if (dt->size == 2) {
            BIN_LOOP(int16_t)
        } else if (dt->size == 4) {
            BIN_LOOP(int32_t)
        } else {
            BIN_LOOP(int64_t)
        }
    } else {
        if (dt->size == 1) {
            BIN_LOOP(uint8_t)
        } else if (dt->size == 2) {
            BIN_LOOP(uint16_t)
        } else if (dt->size == 4) {
            BIN_LOOP(uint32_t)
        } else {
            BIN_LOOP(uint64_t)
        }
    }
}

/* The values of t as doubles (malloc'd, t->n of them). */
static int values(const tensor *t, const char *name, double **out, char *err, size_t errlen) {
    double *v = malloc((t->n ? t->n : 1) * sizeof *v);
    if (!v) return fail(SS_E_NOMEM, err, errlen, "out of memory");
    if (t->bin) {
        bin_values(t->bin, t->n, t->dt, v);
    } else {
        size_t k = 0;
        if (fill_json(t->data, t->dt, v, &k, 0) != 0 || k != t->n) {
            free(v);
            return fail(SS_E_INVALID, err, errlen,
                        "inputs %s: data must hold %zu values of datatype %s", name, t->n,
                        t->dt->name);
        }
    }
    *out = v;
    return 0;
}

const char *const ss_oip_out_names[4] = {"output_spikes", "readout", "readout_all", "prediction"};

static int get_bool(json_t *v, const char *what, int *out, char *err, size_t errlen) {
    if (!json_is_boolean(v)) return fail(SS_E_INVALID, err, errlen, "%s must be a boolean", what);
    *out = json_is_true(v);
    return 0;
}

static int parse_params(json_t *p, ss_oip_seq *seq, int *has_steps, uint64_t *steps, int *bin_out,
                        char *err, size_t errlen) {
    if (!p) return 0;
    if (!json_is_object(p)) return fail(SS_E_INVALID, err, errlen, "parameters must be an object");
    json_t *v;
    int rc;
    if ((v = json_object_get(p, "sequence_id"))) {
        if (json_is_integer(v) && json_integer_value(v) >= 0) {
            seq->num = (uint64_t)json_integer_value(v);
            seq->has_id = seq->num != 0;
        } else if (json_is_string(v)) {
            if (json_string_length(v) > SS_OIP_ID_MAX)
                return fail(SS_E_INVALID, err, errlen,
                            "parameters.sequence_id: longer than %d characters", SS_OIP_ID_MAX);
            snprintf(seq->str, sizeof seq->str, "%s", json_string_value(v));
            seq->is_str = 1;
            seq->has_id = seq->str[0] != 0;
        } else {
            return fail(SS_E_INVALID, err, errlen,
                        "parameters.sequence_id must be an unsigned integer or a string");
        }
    }
    if ((v = json_object_get(p, "sequence_start")) &&
        (rc = get_bool(v, "parameters.sequence_start", &seq->start, err, errlen)))
        return rc;
    if ((v = json_object_get(p, "sequence_end")) &&
        (rc = get_bool(v, "parameters.sequence_end", &seq->end, err, errlen)))
        return rc;
    if ((v = json_object_get(p, "binary_data_output")) &&
        (rc = get_bool(v, "parameters.binary_data_output", bin_out, err, errlen)))
        return rc;
    if ((v = json_object_get(p, "steps"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 1)
            return fail(SS_E_INVALID, err, errlen, "parameters.steps must be an integer >= 1");
        *has_steps = 1;
        *steps = (uint64_t)json_integer_value(v);
    }
    return 0;
}

/* One entry of "inputs" (pass 1): name, datatype, shape, where its values are. */
static int parse_input(json_t *in, size_t idx, const spk_model *m, const ss_limits *lim,
                       const uint8_t *bin, size_t bin_len, size_t *bin_off, tensor *ts, int *have,
                       char *err, size_t errlen) {
    if (!json_is_object(in))
        return fail(SS_E_INVALID, err, errlen, "inputs[%zu] must be an object", idx);
    const char *name = json_string_value(json_object_get(in, "name"));
    if (!name) return fail(SS_E_INVALID, err, errlen, "inputs[%zu]: name must be a string", idx);
    int which = !strcmp(name, "spikes") ? 0 : !strcmp(name, "events") ? 1 : -1;
    if (which < 0)
        return fail(SS_E_INVALID, err, errlen,
                    "inputs[%zu]: unknown input %.64s (model %s takes spikes, events)", idx, name,
                    m->name);
    if (have[which]) return fail(SS_E_INVALID, err, errlen, "inputs: %s given twice", name);
    have[which] = 1;
    tensor *t = &ts[which];
    t->which = which;
    const char *dn = json_string_value(json_object_get(in, "datatype"));
    if (!dn) return fail(SS_E_INVALID, err, errlen, "inputs %s: datatype must be a string", name);
    t->dt = NULL;
    for (size_t i = 0; i < ss_oip_n_dtypes; i++)
        if (!strcmp(dn, ss_oip_dtypes[i].name)) t->dt = &ss_oip_dtypes[i];
    if (!t->dt)
        return fail(SS_E_INVALID, err, errlen, "inputs %s: unknown datatype %.32s", name, dn);
    if (t->dt->kind == K_NO)
        return fail(SS_E_INVALID, err, errlen,
                    "inputs %s: datatype %s is not supported (use FP32, FP64, INT8..INT64, "
                    "UINT8..UINT64 or BOOL)",
                    name, dn);
    uint64_t cap = which == 0 ? lim->max_events : (uint64_t)lim->max_events * 3;
    int rc = shape_of(json_object_get(in, "shape"), name, t, cap, err, errlen);
    if (rc) return rc;
    /* a leading batch dimension of 1 is accepted */
    if (t->nd == 3 && t->dims[0] == 1) {
        t->dims[0] = t->dims[1];
        t->dims[1] = t->dims[2];
        t->nd = 2;
    }
    if (which == 0 && (t->nd != 2 || t->dims[1] != m->n_in || t->dims[0] == 0))
        return fail(SS_E_INVALID, err, errlen,
                    "inputs spikes: shape must be [steps, %u] with steps >= 1 (model %s)", m->n_in,
                    m->name);
    if (which == 1 && (t->nd != 2 || (t->dims[1] != 3 && t->dims[1] != 2)))
        return fail(SS_E_INVALID, err, errlen,
                    "inputs events: shape must be [k, 3] (step, input, value) or [k, 2]");
    json_t *p = json_object_get(in, "parameters");
    json_t *bs = p ? json_object_get(p, "binary_data_size") : NULL;
    t->data = json_object_get(in, "data");
    t->bin = NULL;
    if (bs) {
        if (!json_is_integer(bs) || json_integer_value(bs) < 0)
            return fail(SS_E_INVALID, err, errlen,
                        "inputs %s: binary_data_size must be a non-negative integer", name);
        uint64_t sz = (uint64_t)json_integer_value(bs);
        if (t->data)
            return fail(SS_E_INVALID, err, errlen,
                        "inputs %s: both data and binary_data_size are given", name);
        if (sz != (uint64_t)t->n * (uint64_t)t->dt->size)
            return fail(SS_E_INVALID, err, errlen,
                        "inputs %s: binary_data_size %llu, but shape and %s need %llu bytes", name,
                        (unsigned long long)sz, t->dt->name,
                        (unsigned long long)t->n * (uint64_t)t->dt->size);
        if (sz > bin_len - *bin_off)
            return fail(SS_E_INVALID, err, errlen,
                        "inputs %s: binary_data_size %llu passes the end of the body (%zu bytes "
                        "of binary data left)",
                        name, (unsigned long long)sz, bin_len - *bin_off);
        t->bin = bin + *bin_off;
        *bin_off += (size_t)sz;
    } else {
        if (!t->data)
            return fail(SS_E_INVALID, err, errlen, "inputs %s: needs data or binary_data_size",
                        name);
        size_t n = 0;
        if (count_leaves(t->data, 0, t->n, &n) != 0 || n != t->n)
            return fail(SS_E_INVALID, err, errlen,
                        "inputs %s: data does not match shape (%zu values expected)", name, t->n);
    }
    return 0;
}

static int parse_outputs(json_t *outs, const spk_model *m, int bin_default, ss_oip_fmt *fmt,
                         char *err, size_t errlen) {
    fmt->n_out = 0;
    if (!outs) { /* every output of the model */
        int last = m->has_readout ? SS_OIP_PREDICTION : SS_OIP_SPIKES;
        for (int w = SS_OIP_SPIKES; w <= last; w++) {
            fmt->out[fmt->n_out].which = w;
            fmt->out[fmt->n_out].binary = bin_default;
            fmt->out[fmt->n_out++].klass = 0;
        }
        return 0;
    }
    if (!json_is_array(outs)) return fail(SS_E_INVALID, err, errlen, "outputs must be an array");
    if (json_array_size(outs) > SS_OIP_MAX_OUTPUTS)
        return fail(SS_E_INVALID, err, errlen, "outputs: at most %d", SS_OIP_MAX_OUTPUTS);
    for (size_t i = 0; i < json_array_size(outs); i++) {
        json_t *o = json_array_get(outs, i);
        const char *name = json_is_object(o) ? json_string_value(json_object_get(o, "name")) : NULL;
        if (!name) return fail(SS_E_INVALID, err, errlen, "outputs[%zu]: name must be a string", i);
        int w = -1;
        for (int k = 0; k < 4; k++)
            if (!strcmp(name, ss_oip_out_names[k])) w = k;
        if (w < 0 || (w != SS_OIP_SPIKES && !m->has_readout))
            return fail(SS_E_INVALID, err, errlen, "outputs[%zu]: unknown output %.64s of model %s",
                        i, name, m->name);
        for (unsigned k = 0; k < fmt->n_out; k++)
            if (fmt->out[k].which == w)
                return fail(SS_E_INVALID, err, errlen, "outputs: %s requested twice", name);
        int binary = bin_default;
        uint32_t klass = 0;
        json_t *p = json_object_get(o, "parameters"), *v;
        if (p && !json_is_object(p))
            return fail(SS_E_INVALID, err, errlen, "outputs %s: parameters must be an object",
                        name);
        int rc;
        if (p && (v = json_object_get(p, "binary_data")) &&
            (rc = get_bool(v, "outputs parameters.binary_data", &binary, err, errlen)))
            return rc;
        if (p && (v = json_object_get(p, "classification"))) {
            if (!json_is_integer(v) || json_integer_value(v) < 1)
                return fail(SS_E_INVALID, err, errlen,
                            "outputs %s: classification must be an integer >= 1", name);
            if (w != SS_OIP_READOUT && w != SS_OIP_PREDICTION)
                return fail(SS_E_INVALID, err, errlen,
                            "outputs %s: classification applies to readout or prediction", name);
            uint64_t k = (uint64_t)json_integer_value(v);
            klass = k > m->readout.n ? m->readout.n : (uint32_t)k;
        }
        fmt->out[fmt->n_out].which = w;
        fmt->out[fmt->n_out].binary = binary;
        fmt->out[fmt->n_out++].klass = klass;
    }
    return 0;
}

/* Pass 3: the values into out's arrays. */
static int fill(const tensor *ts, const int *have, const spk_model *m, ss_batch *out, char *err,
                size_t errlen) {
    double *v = NULL;
    int rc;
    if (have[0]) {
        if ((rc = values(&ts[0], "spikes", &v, err, errlen))) return rc;
        out->dense = malloc(ts[0].n * sizeof *out->dense);
        if (!out->dense) {
            free(v);
            return fail(SS_E_NOMEM, err, errlen, "out of memory");
        }
        for (size_t i = 0; i < ts[0].n; i++) {
            double x = v[i];
            if (!(fabs(x) <= SPK_MAX_VALUE)) {
                free(v);
                return fail(SS_E_INVALID, err, errlen,
                            "inputs spikes: value [%zu][%zu] %g is not finite with magnitude <= %g",
                            i / m->n_in, i % m->n_in, x, (double)SPK_MAX_VALUE);
            }
            out->dense[i] = (float)v[i];
        }
        free(v);
    }
    if (have[1]) {
        const tensor *t = &ts[1];
        size_t k = (size_t)t->dims[0], w = (size_t)t->dims[1];
        if ((rc = values(t, "events", &v, err, errlen))) return rc;
        out->events = malloc((k ? k : 1) * sizeof *out->events);
        if (!out->events) {
            free(v);
            return fail(SS_E_NOMEM, err, errlen, "out of memory");
        }
        for (size_t i = 0; i < k; i++) {
            double st = v[i * w], in = v[i * w + 1], val = w == 3 ? v[i * w + 2] : 1.0;
            if (!(st >= 0 && st < out->steps && st == floor(st))) {
                free(v);
                return fail(SS_E_INVALID, err, errlen,
                            "inputs events[%zu]: step %g is not an integer in [0, %u)", i, st,
                            out->steps);
            }
            if (!(in >= 0 && in < m->n_in && in == floor(in))) {
                free(v);
                return fail(SS_E_INVALID, err, errlen,
                            "inputs events[%zu]: input %g is not an integer in [0, %u)", i, in,
                            m->n_in);
            }
            if (!(fabs(val) <= SPK_MAX_VALUE)) {
                free(v);
                return fail(SS_E_INVALID, err, errlen,
                            "inputs events[%zu]: value %g is not finite with magnitude <= %g", i,
                            val, (double)SPK_MAX_VALUE);
            }
            out->events[i] = (spk_event){(uint32_t)st, (uint32_t)in, (float)val};
        }
        out->n_events = k;
        free(v);
        spk_events_sort(out->events, out->n_events);
    }
    return 0;
}

int ss_oip_decode_ref(const uint8_t *head, size_t head_len, const uint8_t *bin, size_t bin_len,
                      const spk_model *m, const ss_limits *lim, ss_batch *out, ss_oip_fmt *fmt,
                      ss_oip_seq *seq, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    memset(fmt, 0, sizeof *fmt);
    memset(seq, 0, sizeof *seq);
    fmt->head = &fmt->head_len;
    json_error_t je;
    json_t *root = json_loadb((const char *)head, head_len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return fail(SS_E_INVALID, err, errlen, "request header is not JSON: %s (position %d)",
                    je.text, je.position);
    int rc = SS_E_INVALID;
    tensor ts[2];
    int have[2] = {0, 0};
    memset(ts, 0, sizeof ts);
    if (!json_is_object(root)) {
        rc = fail(SS_E_INVALID, err, errlen, "request header must be a JSON object");
        goto done;
    }
    json_t *id = json_object_get(root, "id");
    if (id) {
        if (!json_is_string(id) || json_string_length(id) > SS_OIP_ID_MAX) {
            rc = fail(SS_E_INVALID, err, errlen, "id must be a string of at most %d bytes",
                      SS_OIP_ID_MAX);
            goto done;
        }
        snprintf(fmt->id, sizeof fmt->id, "%s", json_string_value(id));
    }
    int has_steps = 0, bin_out = 0;
    uint64_t steps = 0;
    if ((rc = parse_params(json_object_get(root, "parameters"), seq, &has_steps, &steps, &bin_out,
                           err, errlen)))
        goto done;
    json_t *ins = json_object_get(root, "inputs");
    if (!json_is_array(ins) || json_array_size(ins) == 0 || json_array_size(ins) > 2) {
        rc = fail(SS_E_INVALID, err, errlen,
                  "inputs must be an array of 1 or 2 tensors (spikes, events)");
        goto done;
    }
    size_t off = 0;
    for (size_t i = 0; i < json_array_size(ins); i++)
        if ((rc = parse_input(json_array_get(ins, i), i, m, lim, bin, bin_len, &off, ts, have, err,
                              errlen)))
            goto done;
    if (off != bin_len) {
        rc = fail(SS_E_INVALID, err, errlen,
                  "%zu bytes of binary data follow the header, the inputs use %zu", bin_len, off);
        goto done;
    }
    if (have[0]) {
        if (has_steps && steps != ts[0].dims[0]) {
            rc = fail(SS_E_INVALID, err, errlen,
                      "parameters.steps %llu disagrees with inputs spikes (%llu rows)",
                      (unsigned long long)steps, (unsigned long long)ts[0].dims[0]);
            goto done;
        }
        steps = ts[0].dims[0];
    } else if (!has_steps) {
        rc = fail(SS_E_INVALID, err, errlen,
                  "parameters.steps is needed with inputs events alone (the step count)");
        goto done;
    }
    if (steps > lim->max_steps) {
        rc = fail(SS_E_LIMIT, err, errlen, "steps: %llu exceeds the limit %u (--max-steps)",
                  (unsigned long long)steps, lim->max_steps);
        goto done;
    }
    out->steps = (uint32_t)steps;
    size_t n_ev = have[1] ? (size_t)ts[1].dims[0] : 0;
    uint64_t dense_vals = have[0] ? (uint64_t)steps * m->n_in : 0;
    if (dense_vals + n_ev > lim->max_events) {
        rc = fail(SS_E_LIMIT, err, errlen,
                  "inputs: %llu dense values and %zu events exceed the limit %u (--max-events)",
                  (unsigned long long)dense_vals, n_ev, lim->max_events);
        goto done;
    }
    if ((rc = parse_outputs(json_object_get(root, "outputs"), m, bin_out, fmt, err, errlen)))
        goto done;
    for (unsigned k = 0; k < fmt->n_out; k++) {
        int w = fmt->out[k].which;
        out->outputs |= w == SS_OIP_SPIKES        ? SS_OUT_SPIKES
                        : w == SS_OIP_READOUT_ALL ? SS_OUT_READOUT_ALL
                                                  : SS_OUT_READOUT;
    }
    if ((rc = ss_batch_check_limits(m, out, lim, err, errlen))) goto done;
    rc = fill(ts, have, m, out, err, errlen);
done:
    json_decref(root);
    if (rc) ss_batch_free(out);
    return rc;
}

int ss_oip_decode(const uint8_t *head, size_t head_len, const uint8_t *bin, size_t bin_len,
                  const spk_model *m, const ss_limits *lim, ss_batch *out, ss_oip_fmt *fmt,
                  ss_oip_seq *seq, char *err, size_t errlen) {
    if (ss_oip_decode_fast(head, head_len, bin, bin_len, m, lim, out, fmt, seq) == 0) return 0;
    return ss_oip_decode_ref(head, head_len, bin, bin_len, m, lim, out, fmt, seq, err, errlen);
}

int ss_oip_session_id(const char *model, const ss_oip_seq *seq, char *out, size_t cap) {
    int n = seq->is_str ? snprintf(out, cap, "oip-%s-s-%s", model, seq->str)
                        : snprintf(out, cap, "oip-%s-%llu", model, (unsigned long long)seq->num);
    if (n < 0 || (size_t)n >= cap || !ss_util_valid_id(out, (size_t)n)) return -1;
    return 0;
}
