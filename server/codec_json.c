/* codec_json.c: the JSON codec (SPEC.md section 3).
 *
 * Step results are written straight into a growing buffer: a jansson tree for a result with
 * 10^5 spikes costs several allocations per spike. Floats are printed with the fewest
 * significant digits (1 to 9) that read back to the same float32, as strtof and as a double
 * rounded to float (what numpy/JavaScript clients do). The small bodies (sessions, models,
 * errors, requests) use jansson. Batches are batch.c's (a one-pass scanner first, jansson
 * for everything it declines and for every error message).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "registry.h"

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

/* One [step, index, value] (after a comma unless first). */
static void jb_triple(jbuf *b, int first, uint32_t step, uint32_t idx, float v) {
    if (jb_reserve(b, 80)) return;
    if (!first) JB_LIT(b, ",");
    JB_LIT(b, "[");
    jb_u64(b, step);
    JB_LIT(b, ",");
    jb_u64(b, idx);
    JB_LIT(b, ",");
    jb_float(b, v);
    JB_LIT(b, "]");
}

static void jb_spikes(jbuf *b, const spk_spike_buf *sb) {
    JB_LIT(b, "[");
    for (size_t i = 0; i < sb->len; i++)
        jb_triple(b, i == 0, sb->buf[i].step, sb->buf[i].neuron, sb->buf[i].value);
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

/* A batch's input as events: its events, then its dense rows' non-zero values (each step's
 * events first, as the engine adds them). */
static void jb_inputs(jbuf *b, const ss_batch *in, uint32_t n_in) {
    size_t e = 0;
    int first = 1;
    JB_LIT(b, "[");
    for (uint32_t st = 0; st < in->steps; st++) {
        for (; e < in->n_events && in->events[e].step == st; e++) {
            jb_triple(b, first, st, in->events[e].input, in->events[e].value);
            first = 0;
        }
        for (uint32_t k = 0; in->dense && k < n_in; k++) {
            float v = in->dense[(size_t)st * n_in + k];
            if (v == 0) continue;
            jb_triple(b, first, st, k, v);
            first = 0;
        }
    }
    JB_LIT(b, "]");
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
    const float *last = ss_result_last_readout(r);
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
    if (r->input) {
        JB_LIT(&b, ",\"inputs\":");
        jb_inputs(&b, r->input, m->n_in);
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

/* ---- the small bodies (jansson) ---- */

static uint8_t *dump(json_t *j, size_t *len) {
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(7)) : NULL;
    json_decref(j);
    if (s) *len = strlen(s);
    return (uint8_t *)s;
}

static uint8_t *json_error(const char *code, const char *message, size_t *len) {
    return dump(json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message), len);
}

static uint8_t *json_session(const ss_sess_info *s, size_t *len) {
    return dump(json_pack("{s:s,s:s,s:i,s:i,s:I,s:I,s:s,s:s,s:i}", "session_id", s->id, "model",
                          s->model, "model_version", (json_int_t)s->model_version, "idle_timeout_s",
                          (json_int_t)s->idle_timeout_s, "t", (json_int_t)s->t, "last_seq",
                          (json_int_t)s->last_seq, "created_at", s->created_at, "last_active_at",
                          s->last_active_at, "worker", (json_int_t)s->worker),
                len);
}

static const char *enc_name(spk_encoding_kind k) {
    return k == SPK_ENC_RATE ? "rate" : k == SPK_ENC_LATENCY ? "latency" : "none";
}

/* JSON numbers must be finite; model constants are (the loader checks). */
static json_t *model_tree(const spk_model *m) {
    json_t *layers = json_array();
    for (uint32_t l = 0; l < m->n_layers; l++) {
        const spk_layer *L = &m->layers[l];
        json_array_append_new(layers,
                              json_pack("{s:s,s:i,s:i,s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "kind", "src",
                                        "n_in", (json_int_t)L->n_in, "n", (json_int_t)L->n, "alpha",
                                        (double)L->alpha, "rho", (double)L->rho, "r", (double)L->r,
                                        "r_s", (double)L->r_s, "z_hyp", (double)L->z_hyp, "z_dep",
                                        (double)L->z_dep, "theta", (double)L->theta));
    }
    if (m->has_readout)
        json_array_append_new(layers,
                              json_pack("{s:s,s:i,s:i,s:f}", "kind", "readout", "n_in",
                                        (json_int_t)m->readout.n_in, "n", (json_int_t)m->readout.n,
                                        "alpha", (double)m->readout.alpha));
    json_t *labels = json_array();
    for (uint32_t i = 0; i < m->n_labels; i++)
        json_array_append_new(labels, json_string(m->labels[i]));
    const spk_encoding *e = &m->encoding;
    return json_pack("{s:s,s:i,s:i,s:i,s:o,s:o,s:{s:s,s:i,s:i,s:f,s:f},s:s,s:s}", "name", m->name,
                     "version", (json_int_t)m->version, "n_in", (json_int_t)m->n_in, "n_out",
                     (json_int_t)spk_model_n_out(m), "layers", layers, "labels", labels, "encoding",
                     "kind", enc_name(e->kind), "steps", (json_int_t)e->steps, "warmup_steps",
                     (json_int_t)e->warmup_steps, "gain", (double)e->gain, "threshold",
                     (double)e->threshold, "description", m->description ? m->description : "",
                     "numerics", m->numerics);
}

static uint8_t *json_model(const spk_model *m, size_t *len) {
    return dump(model_tree(m), len);
}

static uint8_t *json_models(spk_model *const *ms, size_t n, size_t *len) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, model_tree(ms[i]));
    return dump(json_pack("{s:o}", "models", a), len);
}

/* A request body that must be a JSON object: the object, or NULL with a message. */
static json_t *object(const uint8_t *buf, size_t len, char *err, size_t errlen) {
    json_error_t je;
    json_t *j = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!j || !json_is_object(j)) {
        snprintf(err, errlen, "body: invalid JSON object%s%s", j ? "" : ": ", j ? "" : je.text);
        json_decref(j);
        return NULL;
    }
    return j;
}

static int json_open_req(const uint8_t *buf, size_t len, ss_open_req *out, char *err,
                         size_t errlen) {
    memset(out, 0, sizeof *out);
    if (len == 0) return 0;
    json_t *j = object(buf, len, err, errlen);
    if (!j) return SS_E_INVALID;
    json_t *t = json_object_get(j, "idle_timeout_s");
    int rc = 0;
    if (t) {
        if (!json_is_integer(t) || json_integer_value(t) < 0 ||
            json_integer_value(t) > UINT32_MAX) {
            snprintf(err, errlen, "idle_timeout_s: must be an integer in [0, 4294967295]");
            rc = SS_E_INVALID;
        } else {
            out->has_timeout = 1;
            out->idle_timeout_s = (uint32_t)json_integer_value(t);
        }
    }
    json_t *v = json_object_get(j, "version"); /* 2 or "2" (OIP writes versions as strings) */
    if (rc == 0 && v) {
        json_int_t x = json_is_integer(v) ? json_integer_value(v) : 0;
        if (json_is_string(v)) x = ss_reg_parse_version(json_string_value(v));
        if (x < 1 || x > UINT32_MAX) {
            snprintf(err, errlen, "version: must be a model version, an integer >= 1");
            rc = SS_E_INVALID;
        } else {
            out->version = (uint32_t)x;
        }
    }
    json_decref(j);
    return rc;
}

static int json_classify_req(const uint8_t *buf, size_t len, const spk_model *m,
                             ss_classify_req *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    out->outputs = ss_outputs_default(m);
    unsigned outs = 0;
    json_t *j = object(buf, len, err, errlen);
    if (!j) return SS_E_INVALID;
    int rc = 0;
    json_t *v = json_object_get(j, "values"), *seed = json_object_get(j, "seed"),
           *o = json_object_get(j, "outputs");
    if (!json_is_array(v)) {
        snprintf(err, errlen, "values: missing or not an array");
        rc = SS_E_INVALID;
    }
    size_t n = rc ? 0 : json_array_size(v);
    if (rc == 0 && n != m->n_in) {
        snprintf(err, errlen, "values: %zu values, expected %u (the model's input size)", n,
                 m->n_in);
        rc = SS_E_INVALID;
    }
    if (rc == 0 && !(out->values = malloc(n * sizeof(float) + 1))) {
        snprintf(err, errlen, "out of memory");
        rc = SS_E_NOMEM;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *x = json_array_get(v, i);
        if (!json_is_number(x)) {
            snprintf(err, errlen, "values[%zu]: not a number", i);
            rc = SS_E_INVALID;
        } else {
            out->values[i] = (float)json_number_value(x);
        }
    }
    if (rc == 0) rc = ss_classify_check(out->values, n, m, err, errlen);
    if (rc == 0 && seed) {
        if (!json_is_integer(seed) || json_integer_value(seed) < 0) {
            snprintf(err, errlen, "seed: must be a non-negative integer");
            rc = SS_E_INVALID;
        } else {
            out->seed = (uint64_t)json_integer_value(seed);
        }
    }
    if (rc == 0 && o) {
        if (!json_is_array(o)) {
            snprintf(err, errlen, "outputs: not an array");
            rc = SS_E_INVALID;
        }
        for (size_t i = 0; rc == 0 && i < json_array_size(o); i++) {
            const char *s = json_string_value(json_array_get(o, i));
            unsigned f = s ? ss_output_bit(s, strlen(s)) : 0;
            if (!f) {
                snprintf(err, errlen, "outputs[%zu]: unknown output", i);
                rc = SS_E_INVALID;
            }
            outs |= f;
        }
        if (rc == 0 && outs) out->outputs = outs;
    }
    out->n_values = (uint32_t)n;
    json_decref(j);
    if (rc) {
        free(out->values);
        out->values = NULL;
    }
    return rc;
}

static int json_batch(const uint8_t *buf, size_t len, const spk_model *m, const ss_limits *lim,
                      ss_batch *out, char *err, size_t errlen) {
    return ss_batch_from_json(buf ? (const char *)buf : "", len, m, lim, out, err, errlen);
}

static uint8_t *json_result(const ss_result *r, size_t *len) {
    return (uint8_t *)ss_result_json(r, len);
}

const ss_codec ss_codec_json = {
    "json",      SS_CT_JSON, json_batch,   json_open_req, json_classify_req,
    json_result, json_error, json_session, json_model,    json_models,
};
