/* model.c: the model loader.
 *
 * protobuf-c parses the file into a message tree; every field is then checked against the
 * others and against the limits of model.h (messages name the field and the numbers), and
 * the parameters are copied into one 64-byte aligned block owned by the model (W stored
 * transposed so that an input event reads one contiguous row). The message tree is freed
 * before returning, so a loaded model holds only what the engine reads.
 */
#include "model.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model.pb-c.h"
#include "pbscan.h"

#define ALIGN_FLOATS 16 /* 64 bytes */

typedef struct {
    float *block;   /* every parameter array, each 64-byte aligned */
    int8_t *qblock; /* the int8 weights (transposed), each 64-byte aligned; NULL if none */
} model_priv;

int spk_fail(char *err, size_t errlen, int rc, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static size_t round_up(size_t n) {
    return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
}

/* Every float of an array finite and within SPK_MAX_VALUE; field names e.g. "layers[1].b_h". */
static int check_floats(const float *v, size_t n, const char *field, char *err, size_t errlen) {
    for (size_t k = 0; k < n; k++) {
        if (!isfinite(v[k]))
            return spk_fail(err, errlen, SPK_EFORMAT, "%s[%zu]: %g is not finite", field, k,
                            (double)v[k]);
        if (fabsf(v[k]) > SPK_MAX_VALUE)
            return spk_fail(err, errlen, SPK_EFORMAT,
                            "%s[%zu]: %g exceeds the limit %g in magnitude", field, k, (double)v[k],
                            (double)SPK_MAX_VALUE);
    }
    return 0;
}

static int check_const(float v, float lo, float hi, int lo_open, const char *field, char *err,
                       size_t errlen) {
    if (!isfinite(v) || v < lo || v > hi || (lo_open && v == lo))
        return spk_fail(err, errlen, SPK_EFORMAT, "%s: %g out of range %c%g, %g]", field, (double)v,
                        lo_open ? '(' : '[', (double)lo, (double)hi);
    return 0;
}

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
static int utf8_valid(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p, need, min;
        if (c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            need = 1, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF)
            need = 2, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4)
            need = 3, min = 0x10000;
        else
            return 0;
        unsigned cp = c & (0x3F >> need);
        for (unsigned k = 1; k <= need; k++) {
            if ((p[k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (p[k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        p += need + 1;
    }
    return 1;
}

static int check_counts(size_t got, size_t n, int optional, const char *field, char *err,
                        size_t errlen) {
    if (got == n || (optional && got == 0)) return 0;
    if (optional)
        return spk_fail(err, errlen, SPK_EFORMAT, "%s: %zu values, expected 0 or %zu", field, got,
                        n);
    return spk_fail(err, errlen, SPK_EFORMAT, "%s: %zu values, expected %zu", field, got, n);
}

/* The weights of a layer or the readout (f: "layers[2]" or "readout"): float32 `weights`, or
 * int8 `weights_q8` with `weight_scales`, never both, n x n_in of them. */
static int check_weights(const char *f, uint32_t n, uint32_t n_in, size_t n_weights,
                         const float *weights, ProtobufCBinaryData q8, size_t n_scales,
                         const float *scales, char *err, size_t errlen) {
    char g[64];
    size_t nw = (size_t)n * n_in;
    if (q8.len && n_weights)
        return spk_fail(err, errlen, SPK_EFORMAT,
                        "%s: both weights (%zu values) and weights_q8 (%zu bytes); a layer has "
                        "one of them",
                        f, n_weights, q8.len);
    if (!q8.len) {
        if (n_scales)
            return spk_fail(err, errlen, SPK_EFORMAT,
                            "%s.weight_scales: %zu values without weights_q8", f, n_scales);
        if (n_weights != nw)
            return spk_fail(err, errlen, SPK_EFORMAT,
                            "%s.weights: %zu values, expected %zu (%u x %u)", f, n_weights, nw, n,
                            n_in);
        snprintf(g, sizeof g, "%s.weights", f);
        return check_floats(weights, n_weights, g, err, errlen);
    }
    if (q8.len != nw)
        return spk_fail(err, errlen, SPK_EFORMAT,
                        "%s.weights_q8: %zu bytes, expected %zu (%u x %u)", f, q8.len, nw, n, n_in);
    const uint8_t *b = q8.data;
    if (!b) return spk_fail(err, errlen, SPK_EFORMAT, "%s.weights_q8: no data", f);
    if (memchr(b, 0x80, q8.len)) {
        size_t at = (size_t)((const uint8_t *)memchr(b, 0x80, q8.len) - b);
        return spk_fail(err, errlen, SPK_EFORMAT,
                        "%s.weights_q8[%zu]: -128 out of range [-127, 127]", f, at);
    }
    if (n_scales != 1 && n_scales != n)
        return spk_fail(err, errlen, SPK_EFORMAT,
                        "%s.weight_scales: %zu values, expected 1 (per layer) or %u (per neuron)",
                        f, n_scales, n);
    const float smax = SPK_MAX_VALUE / 127.0f;
    for (size_t k = 0; k < n_scales; k++)
        if (!isfinite(scales[k]) || !(scales[k] > 0.0f) || scales[k] > smax)
            return spk_fail(err, errlen, SPK_EFORMAT,
                            "%s.weight_scales[%zu]: %g out of range (0, %g]", f, k,
                            (double)scales[k], (double)smax);
    return 0;
}

static int check_layer(const Spikeserve__SrcLayer *L, uint32_t k, uint32_t want_in, char *err,
                       size_t errlen) {
    char f[64];
    int rc;
    if (L->n_in != want_in) {
        if (k == 0)
            return spk_fail(err, errlen, SPK_EFORMAT, "layers[0].n_in: %u, expected %u (n_in)",
                            L->n_in, want_in);
        return spk_fail(err, errlen, SPK_EFORMAT, "layers[%u].n_in: %u, expected %u (layers[%u].n)",
                        k, L->n_in, want_in, k - 1);
    }
    if (L->n < 1 || L->n > SPK_MAX_NEURONS)
        return spk_fail(err, errlen, SPK_EFORMAT, "layers[%u].n: %u out of range [1, %u]", k, L->n,
                        (unsigned)SPK_MAX_NEURONS);
    snprintf(f, sizeof f, "layers[%u]", k);
    if ((rc = check_weights(f, L->n, L->n_in, L->n_weights, L->weights, L->weights_q8,
                            L->n_weight_scales, L->weight_scales, err, errlen)))
        return rc;
    static const char *const vec_names[] = {"b_h", "init_i", "init_h", "init_hs"};
    const size_t vec_n[] = {L->n_b_h, L->n_init_i, L->n_init_h, L->n_init_hs};
    const float *const vec_v[] = {L->b_h, L->init_i, L->init_h, L->init_hs};
    for (int v = 0; v < 4; v++) {
        snprintf(f, sizeof f, "layers[%u].%s", k, vec_names[v]);
        if ((rc = check_counts(vec_n[v], L->n, v > 0, f, err, errlen))) return rc;
        if ((rc = check_floats(vec_v[v], vec_n[v], f, err, errlen))) return rc;
    }
    struct {
        const char *name;
        float v, lo, hi;
        int lo_open;
    } c[] = {
        {"alpha", L->alpha, 0.f, 1.f, 0},
        {"rho", L->rho, 0.f, SPK_MAX_VALUE, 1},
        {"r", L->r, -SPK_MAX_VALUE, SPK_MAX_VALUE, 0},
        {"r_s", L->r_s, -SPK_MAX_VALUE, SPK_MAX_VALUE, 0},
        {"z_hyp", L->z_hyp, 0.f, 1.f, 0},
        {"z_dep", L->z_dep, 0.f, 1.f, 0},
        {"theta", L->theta, -SPK_MAX_VALUE, SPK_MAX_VALUE, 0},
    };
    for (size_t v = 0; v < sizeof c / sizeof c[0]; v++) {
        snprintf(f, sizeof f, "layers[%u].%s", k, c[v].name);
        if ((rc = check_const(c[v].v, c[v].lo, c[v].hi, c[v].lo_open, f, err, errlen))) return rc;
    }
    return 0;
}

static int check_readout(const Spikeserve__Readout *R, uint32_t want_in, uint32_t last, char *err,
                         size_t errlen) {
    int rc;
    if (R->n_in != want_in)
        return spk_fail(err, errlen, SPK_EFORMAT, "readout.n_in: %u, expected %u (layers[%u].n)",
                        R->n_in, want_in, last);
    if (R->n < 1 || R->n > SPK_MAX_NEURONS)
        return spk_fail(err, errlen, SPK_EFORMAT, "readout.n: %u out of range [1, %u]", R->n,
                        (unsigned)SPK_MAX_NEURONS);
    if ((rc = check_weights("readout", R->n, R->n_in, R->n_weights, R->weights, R->weights_q8,
                            R->n_weight_scales, R->weight_scales, err, errlen)))
        return rc;
    if ((rc = check_counts(R->n_bias, R->n, 0, "readout.bias", err, errlen))) return rc;
    if ((rc = check_floats(R->bias, R->n_bias, "readout.bias", err, errlen))) return rc;
    if ((rc = check_counts(R->n_init_o, R->n, 1, "readout.init_o", err, errlen))) return rc;
    if ((rc = check_floats(R->init_o, R->n_init_o, "readout.init_o", err, errlen))) return rc;
    return check_const(R->alpha, 0.f, 1.f, 0, "readout.alpha", err, errlen);
}

static int check_encoding(const Spikeserve__Encoding *e, char *err, size_t errlen) {
    if (e->kind != SPIKESERVE__ENCODING__KIND__NONE &&
        e->kind != SPIKESERVE__ENCODING__KIND__RATE &&
        e->kind != SPIKESERVE__ENCODING__KIND__LATENCY)
        return spk_fail(err, errlen, SPK_EFORMAT, "encoding.kind: %d is not NONE, RATE or LATENCY",
                        (int)e->kind);
    if (e->kind != SPIKESERVE__ENCODING__KIND__NONE && e->steps < 1)
        return spk_fail(err, errlen, SPK_EFORMAT, "encoding.steps: 0, must be >= 1 for %s",
                        e->kind == SPIKESERVE__ENCODING__KIND__RATE ? "RATE" : "LATENCY");
    if (e->steps > SPK_MAX_ENC_STEPS)
        return spk_fail(err, errlen, SPK_EFORMAT, "encoding.steps: %u exceeds the limit %u",
                        e->steps, (unsigned)SPK_MAX_ENC_STEPS);
    if (e->warmup_steps > SPK_MAX_ENC_STEPS)
        return spk_fail(err, errlen, SPK_EFORMAT, "encoding.warmup_steps: %u exceeds the limit %u",
                        e->warmup_steps, (unsigned)SPK_MAX_ENC_STEPS);
    if (!isfinite(e->gain) || e->gain < 0 || e->gain > SPK_MAX_VALUE)
        return spk_fail(err, errlen, SPK_EFORMAT, "encoding.gain: %g out of range [0, %g]",
                        (double)e->gain, (double)SPK_MAX_VALUE);
    if (!isfinite(e->threshold) || fabsf(e->threshold) > SPK_MAX_VALUE)
        return spk_fail(err, errlen, SPK_EFORMAT,
                        "encoding.threshold: %g is not a finite value within %g",
                        (double)e->threshold, (double)SPK_MAX_VALUE);
    return 0;
}

static int check_model(const Spikeserve__Model *pm, char *err, size_t errlen) {
    int rc;
    size_t len = strlen(pm->name);
    if (len < 1 || len > SPK_MAX_NAME)
        return spk_fail(err, errlen, SPK_EFORMAT, "name: %zu characters, expected 1..%d", len,
                        SPK_MAX_NAME);
    for (size_t k = 0; k < len; k++) {
        unsigned char c = (unsigned char)pm->name[k];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return spk_fail(err, errlen, SPK_EFORMAT,
                            "name: character 0x%02x at %zu is not in [A-Za-z0-9._-]", c, k);
    }
    if (pm->version < 1) return spk_fail(err, errlen, SPK_EFORMAT, "version: 0, must be >= 1");
    if (pm->n_in < 1 || pm->n_in > SPK_MAX_INPUTS)
        return spk_fail(err, errlen, SPK_EFORMAT, "n_in: %u out of range [1, %u]", pm->n_in,
                        (unsigned)SPK_MAX_INPUTS);
    if (pm->n_layers < 1 || pm->n_layers > SPK_MAX_LAYERS)
        return spk_fail(err, errlen, SPK_EFORMAT, "layers: %zu layers, expected 1..%d",
                        pm->n_layers, SPK_MAX_LAYERS);
    uint32_t want = pm->n_in;
    uint64_t params = 0;
    /* The total is checked on the declared sizes first, so that a file declaring a huge
     * network is refused by that total before anything else is looked at. */
    for (uint32_t k = 0; k <= pm->n_layers; k++) {
        if (k < pm->n_layers)
            params += (uint64_t)pm->layers[k]->n * pm->layers[k]->n_in;
        else if (pm->readout)
            params += (uint64_t)pm->readout->n * pm->readout->n_in;
    }
    if (params > SPK_MAX_PARAMS)
        return spk_fail(err, errlen, SPK_EFORMAT, "weights: %llu parameters in total, limit %u",
                        (unsigned long long)params, (unsigned)SPK_MAX_PARAMS);
    for (uint32_t k = 0; k < pm->n_layers; k++) {
        if ((rc = check_layer(pm->layers[k], k, want, err, errlen))) return rc;
        want = pm->layers[k]->n;
    }
    uint32_t n_out = want;
    if (pm->readout) {
        if ((rc = check_readout(pm->readout, want, (uint32_t)pm->n_layers - 1, err, errlen)))
            return rc;
        n_out = pm->readout->n;
    }
    if (pm->n_labels != 0 && pm->n_labels != n_out)
        return spk_fail(err, errlen, SPK_EFORMAT, "labels: %zu labels, expected 0 or %u (%s)",
                        pm->n_labels, n_out, pm->readout ? "readout.n" : "last layer's n");
    for (size_t k = 0; k < pm->n_labels; k++) {
        size_t ll = strlen(pm->labels[k]);
        if (ll > SPK_MAX_LABEL)
            return spk_fail(err, errlen, SPK_EFORMAT, "labels[%zu]: %zu bytes, limit %d", k, ll,
                            SPK_MAX_LABEL);
        if (!utf8_valid(pm->labels[k]))
            return spk_fail(err, errlen, SPK_EFORMAT, "labels[%zu]: not valid UTF-8", k);
    }
    if (strlen(pm->description) > SPK_MAX_DESCRIPTION)
        return spk_fail(err, errlen, SPK_EFORMAT, "description: %zu bytes, limit %d",
                        strlen(pm->description), SPK_MAX_DESCRIPTION);
    if (!utf8_valid(pm->description))
        return spk_fail(err, errlen, SPK_EFORMAT, "description: not valid UTF-8");
    if (pm->encoding && (rc = check_encoding(pm->encoding, err, errlen))) return rc;
    if (pm->tanh != SPIKESERVE__MODEL__TANH__TANH_EXACT &&
        pm->tanh != SPIKESERVE__MODEL__TANH__TANH_FLOAT32)
        return spk_fail(err, errlen, SPK_EFORMAT, "tanh: %d is not TANH_EXACT or TANH_FLOAT32",
                        (int)pm->tanh);
    return 0;
}

/* ---- checksum (byte order documented in model.h) ---- */

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t fnv_u32(uint64_t h, uint32_t v) {
    for (int b = 0; b < 4; b++) {
        h ^= (v >> (8 * b)) & 0xFF;
        h *= FNV_PRIME;
    }
    return h;
}
static uint64_t fnv_f32(uint64_t h, float f) {
    uint32_t v;
    memcpy(&v, &f, 4);
    return fnv_u32(h, v);
}
static uint64_t fnv_floats(uint64_t h, const float *v, size_t n) {
    for (size_t k = 0; k < n; k++)
        h = fnv_f32(h, v[k]);
    return h;
}
static uint64_t fnv_opt(uint64_t h, const float *v, size_t got, size_t n) {
    if (got) return fnv_floats(h, v, n);
    for (size_t k = 0; k < n; k++)
        h = fnv_f32(h, 0.f);
    return h;
}

/* Weights as the checksum takes them (model.h): float32 values, or int8 bytes and scales. */
static uint64_t fnv_weights(uint64_t h, const float *w, size_t nw, ProtobufCBinaryData q8,
                            const float *scales, size_t ns) {
    if (!q8.len) return fnv_floats(h, w, nw);
    for (size_t k = 0; k < q8.len; k++) {
        h ^= q8.data[k];
        h *= FNV_PRIME;
    }
    h = fnv_u32(h, (uint32_t)ns);
    return fnv_floats(h, scales, ns);
}

static uint64_t checksum(const Spikeserve__Model *pm) {
    uint64_t h = FNV_OFFSET;
    h = fnv_u32(h, pm->n_in);
    h = fnv_u32(h, (uint32_t)pm->n_layers);
    for (size_t k = 0; k < pm->n_layers; k++) {
        const Spikeserve__SrcLayer *L = pm->layers[k];
        h = fnv_u32(h, L->n_in);
        h = fnv_u32(h, L->n);
        h = fnv_weights(h, L->weights, L->n_weights, L->weights_q8, L->weight_scales,
                        L->n_weight_scales);
        h = fnv_floats(h, L->b_h, L->n_b_h);
        const float c[] = {L->alpha, L->rho, L->r, L->r_s, L->z_hyp, L->z_dep, L->theta};
        h = fnv_floats(h, c, 7);
        h = fnv_opt(h, L->init_i, L->n_init_i, L->n);
        h = fnv_opt(h, L->init_h, L->n_init_h, L->n);
        h = fnv_opt(h, L->init_hs, L->n_init_hs, L->n);
    }
    const Spikeserve__Readout *R = pm->readout;
    h = fnv_u32(h, R ? 1u : 0u);
    if (R) {
        h = fnv_u32(h, R->n_in);
        h = fnv_u32(h, R->n);
        h = fnv_weights(h, R->weights, R->n_weights, R->weights_q8, R->weight_scales,
                        R->n_weight_scales);
        h = fnv_floats(h, R->bias, R->n_bias);
        h = fnv_f32(h, R->alpha);
        h = fnv_opt(h, R->init_o, R->n_init_o, R->n);
    }
    if (pm->tanh == SPIKESERVE__MODEL__TANH__TANH_FLOAT32) h = fnv_u32(h, 1u);
    return h;
}

/* ---- building the immutable model ---- */

/* dst (n_in x n) = src (n x n_in) transposed, in cache-sized tiles. */
static void transpose(float *dst, const float *src, uint32_t n, uint32_t n_in) {
    enum { T = 32 };
    for (uint32_t r0 = 0; r0 < n; r0 += T)
        for (uint32_t c0 = 0; c0 < n_in; c0 += T) {
            uint32_t r1 = r0 + T < n ? r0 + T : n, c1 = c0 + T < n_in ? c0 + T : n_in;
            for (uint32_t r = r0; r < r1; r++)
                for (uint32_t c = c0; c < c1; c++)
                    dst[(size_t)c * n + r] = src[(size_t)r * n_in + c];
        }
}

/* dst (n_in x n) = src (n x n_in) transposed, bytes. */
static void transpose_q8(int8_t *dst, const uint8_t *src, uint32_t n, uint32_t n_in) {
    enum { T = 64 };
    for (uint32_t r0 = 0; r0 < n; r0 += T)
        for (uint32_t c0 = 0; c0 < n_in; c0 += T) {
            uint32_t r1 = r0 + T < n ? r0 + T : n, c1 = c0 + T < n_in ? c0 + T : n_in;
            for (uint32_t r = r0; r < r1; r++)
                for (uint32_t c = c0; c < c1; c++)
                    dst[(size_t)c * n + r] = (int8_t)src[(size_t)r * n_in + c];
        }
}

/* The int8 weights of a layer or the readout into the model: rows (transposed) and n scales
 * (a per-layer scale repeated). */
static void take_q8(int8_t **qcur, float *scale_dst, ProtobufCBinaryData q8, const float *scales,
                    size_t ns, uint32_t n, uint32_t n_in, const int8_t **wq) {
    transpose_q8(*qcur, q8.data, n, n_in);
    *wq = *qcur;
    *qcur += (q8.len + 63) / 64 * 64;
    for (uint32_t k = 0; k < n; k++)
        scale_dst[k] = scales[ns == 1 ? 0 : k];
}

static float *take(float **cur, size_t n) {
    float *p = *cur;
    *cur += round_up(n);
    return p;
}

static void copy_or_zero(float *dst, const float *src, size_t got, size_t n) {
    if (got)
        memcpy(dst, src, n * sizeof(float));
    else
        memset(dst, 0, n * sizeof(float));
}

static int build(const Spikeserve__Model *pm, spk_model **out, char *err, size_t errlen) {
    spk_model *m = calloc(1, sizeof *m);
    model_priv *priv = calloc(1, sizeof *priv);
    if (!m || !priv) goto nomem;
    m->priv = priv;

    /* float32 weights go in the float block, int8 ones in the byte block (plus n scales) */
    size_t floats = 0, bytes = 0;
    for (size_t k = 0; k < pm->n_layers; k++) {
        const Spikeserve__SrcLayer *L = pm->layers[k];
        size_t nw = (size_t)L->n * L->n_in;
        floats += (L->weights_q8.len ? round_up(L->n) : round_up(nw)) + 4 * round_up(L->n);
        bytes += L->weights_q8.len ? (nw + 63) / 64 * 64 : 0;
        if (k == 0 && L->weights_q8.len) /* the quad layout of layer 0 */
            bytes += ((size_t)(L->n_in + 3) / 4 * 4 * L->n + 63) / 64 * 64;
    }
    if (pm->readout) {
        const Spikeserve__Readout *R = pm->readout;
        size_t nw = (size_t)R->n * R->n_in;
        floats += (R->weights_q8.len ? round_up(R->n) : round_up(nw)) + 2 * round_up(R->n);
        bytes += R->weights_q8.len ? (nw + 63) / 64 * 64 : 0;
    }
    priv->block = aligned_alloc(64, (floats ? floats : ALIGN_FLOATS) * sizeof(float));
    if (!priv->block) goto nomem;
    if (bytes && !(priv->qblock = aligned_alloc(64, bytes))) goto nomem;
    int8_t *qcur = priv->qblock;
    int scale_layer = 0, scale_neuron = 0;

    memcpy(m->name, pm->name, strlen(pm->name) + 1);
    m->version = pm->version;
    m->n_in = pm->n_in;
    m->n_layers = (uint32_t)pm->n_layers;
    float *cur = priv->block;
    for (uint32_t k = 0; k < m->n_layers; k++) {
        const Spikeserve__SrcLayer *P = pm->layers[k];
        spk_layer *L = &m->layers[k];
        L->n_in = P->n_in;
        L->n = P->n;
        L->alpha = P->alpha, L->rho = P->rho, L->r = P->r, L->r_s = P->r_s;
        L->z_hyp = P->z_hyp, L->z_dep = P->z_dep, L->theta = P->theta;
        L->tanh = (spk_tanh_mode)pm->tanh;
        float *wt = take(&cur, P->weights_q8.len ? P->n : (size_t)P->n * P->n_in),
              *b = take(&cur, P->n), *i0 = take(&cur, P->n), *h0 = take(&cur, P->n),
              *hs0 = take(&cur, P->n);
        if (P->weights_q8.len) {
            take_q8(&qcur, wt, P->weights_q8, P->weight_scales, P->n_weight_scales, P->n, P->n_in,
                    &L->wq);
            if (k == 0) {
                size_t nq = ((size_t)P->n_in + 3) / 4;
                int8_t *w4 = qcur;
                memset(w4, 0, nq * 4 * P->n);
                for (uint32_t r = 0; r < P->n; r++)
                    for (uint32_t c = 0; c < P->n_in; c++)
                        w4[((size_t)(c / 4) * P->n + r) * 4 + c % 4] =
                            (int8_t)P->weights_q8.data[(size_t)r * P->n_in + c];
                L->wq4 = w4;
                qcur += (nq * 4 * P->n + 63) / 64 * 64;
            }
            L->wscale = wt;
            wt = NULL;
            m->int8_layers++;
            if (P->n_weight_scales == 1)
                scale_layer = 1;
            else
                scale_neuron = 1;
        } else {
            transpose(wt, P->weights, P->n, P->n_in);
        }
        memcpy(b, P->b_h, P->n * sizeof(float));
        copy_or_zero(i0, P->init_i, P->n_init_i, P->n);
        copy_or_zero(h0, P->init_h, P->n_init_h, P->n);
        copy_or_zero(hs0, P->init_hs, P->n_init_hs, P->n);
        L->wt = wt, L->b_h = b, L->i0 = i0, L->h0 = h0, L->hs0 = hs0;
        m->state_floats += 3 * (size_t)P->n;
        if (P->n > m->max_n) m->max_n = P->n;
    }
    if (pm->readout) {
        const Spikeserve__Readout *P = pm->readout;
        spk_readout *R = &m->readout;
        m->has_readout = 1;
        R->n_in = P->n_in, R->n = P->n, R->alpha = P->alpha;
        float *wt = take(&cur, P->weights_q8.len ? P->n : (size_t)P->n * P->n_in),
              *b = take(&cur, P->n), *o0 = take(&cur, P->n);
        if (P->weights_q8.len) {
            take_q8(&qcur, wt, P->weights_q8, P->weight_scales, P->n_weight_scales, P->n, P->n_in,
                    &R->wq);
            R->wscale = wt;
            wt = NULL;
            m->int8_layers++;
            if (P->n_weight_scales == 1)
                scale_layer = 1;
            else
                scale_neuron = 1;
        } else {
            transpose(wt, P->weights, P->n, P->n_in);
        }
        memcpy(b, P->bias, P->n * sizeof(float));
        copy_or_zero(o0, P->init_o, P->n_init_o, P->n);
        R->wt = wt, R->b = b, R->o0 = o0;
        m->state_floats += P->n;
        if (P->n > m->max_n) m->max_n = P->n;
    }
    m->n_labels = (uint32_t)pm->n_labels;
    if (m->n_labels) {
        m->labels = calloc(m->n_labels, sizeof *m->labels);
        if (!m->labels) goto nomem;
        for (uint32_t k = 0; k < m->n_labels; k++)
            if (!(m->labels[k] = strdup(pm->labels[k]))) goto nomem;
    }
    if (!(m->description = strdup(pm->description))) goto nomem;
    if (pm->encoding) {
        m->encoding.kind = (spk_encoding_kind)pm->encoding->kind;
        m->encoding.steps = pm->encoding->steps;
        m->encoding.warmup_steps = pm->encoding->warmup_steps;
        m->encoding.gain = pm->encoding->gain;
        m->encoding.threshold = pm->encoding->threshold;
    }
    m->checksum = checksum(pm);
    m->tanh = (spk_tanh_mode)pm->tanh;
    {
        uint32_t total = m->n_layers + (uint32_t)m->has_readout;
        const char *w = m->int8_layers == 0       ? "float32 weights"
                        : m->int8_layers == total ? "int8 weights"
                                                  : "mixed float32/int8 weights";
        const char *sc = !m->int8_layers               ? ""
                         : scale_layer && scale_neuron ? " (scales per layer and per neuron)"
                         : scale_layer                 ? " (scale per layer)"
                                                       : " (scale per neuron)";
        const char *t = m->tanh == SPK_TANH_FLOAT32 ? "float32 tanh" : "exact tanh";
        if (!m->int8_layers && m->tanh == SPK_TANH_EXACT)
            snprintf(m->numerics, sizeof m->numerics, "float32");
        else
            snprintf(m->numerics, sizeof m->numerics, "%s%s, %s", w, sc, t);
    }
    *out = m;
    return 0;
nomem:
    if (m) {
        m->priv = priv;
        spk_model_free(m);
    } else {
        free(priv);
    }
    return spk_fail(err, errlen, SPK_ENOMEM, "out of memory loading the model");
}

int spk_model_load_bytes(const uint8_t *buf, size_t len, spk_model **out, char *err,
                         size_t errlen) {
    int rc;
    if (!out) return spk_fail(err, errlen, SPK_EINVAL, "out: NULL");
    *out = NULL;
    if (!buf && len) return spk_fail(err, errlen, SPK_EINVAL, "buf: NULL");
    if (len > SPK_MAX_FILE)
        return spk_fail(err, errlen, SPK_EFORMAT, "file: %zu bytes, limit %u", len,
                        (unsigned)SPK_MAX_FILE);
    static const uint8_t empty[1];
    long layers = buf ? pb_count_field(buf, len, 4) : 0,
         labels = buf ? pb_count_field(buf, len, 6) : 0;
    if (layers > SPK_MAX_LAYERS) /* refused before protobuf-c allocates a struct for each */
        return spk_fail(err, errlen, SPK_EFORMAT, "layers: %ld layers, expected 1..%d", layers,
                        SPK_MAX_LAYERS);
    if (labels > SPK_MAX_NEURONS)
        return spk_fail(err, errlen, SPK_EFORMAT, "labels: %ld labels, limit %d", labels,
                        SPK_MAX_NEURONS);
    Spikeserve__Model *pm = spikeserve__model__unpack(NULL, len, buf ? buf : empty);
    if (!pm)
        return spk_fail(
            err, errlen, SPK_EFORMAT,
            "file: not a valid spikeserve.Model message (truncated or corrupt, %zu bytes)", len);
    if ((rc = check_model(pm, err, errlen)) == 0) rc = build(pm, out, err, errlen);
    spikeserve__model__free_unpacked(pm, NULL);
    return rc;
}

int spk_model_load_file(const char *path, spk_model **out, char *err, size_t errlen) {
    int rc;
    struct stat st;
    uint8_t *buf = NULL;
    if (!out) return spk_fail(err, errlen, SPK_EINVAL, "out: NULL");
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return spk_fail(err, errlen, SPK_EIO, "%s: %s", path, strerror(errno));
    if (fstat(fileno(f), &st) != 0) {
        rc = spk_fail(err, errlen, SPK_EIO, "%s: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = spk_fail(err, errlen, SPK_EIO, "%s: not a regular file", path);
        goto done;
    }
    if ((uint64_t)st.st_size > SPK_MAX_FILE) {
        rc = spk_fail(err, errlen, SPK_EFORMAT, "%s: %lld bytes, limit %u", path,
                      (long long)st.st_size, (unsigned)SPK_MAX_FILE);
        goto done;
    }
    size_t len = (size_t)st.st_size;
    if (!(buf = malloc(len ? len : 1))) {
        rc = spk_fail(err, errlen, SPK_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    if (fread(buf, 1, len, f) != len) {
        rc = spk_fail(err, errlen, SPK_EIO, "%s: short read", path);
        goto done;
    }
    rc = spk_model_load_bytes(buf, len, out, err, errlen);
    if (rc && err && errlen) { /* prefix the path */
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s", err);
        snprintf(err, errlen, "%s: %s", path, tmp);
    }
done:
    free(buf);
    fclose(f);
    return rc;
}

void spk_model_free(spk_model *m) {
    if (!m) return;
    model_priv *priv = m->priv;
    if (priv) {
        free(priv->block);
        free(priv->qblock);
    }
    free(priv);
    m->priv = NULL;
    if (m->labels)
        for (uint32_t k = 0; k < m->n_labels; k++)
            free(m->labels[k]);
    free(m->labels);
    free(m->description);
    free(m);
}

uint32_t spk_model_n_out(const spk_model *m) {
    return m->has_readout ? m->readout.n : m->layers[m->n_layers - 1].n;
}

uint32_t spk_argmax(const float *o, uint32_t n) {
    uint32_t best = 0;
    for (uint32_t k = 1; k < n; k++)
        if (o[k] > o[best]) best = k;
    return best;
}
