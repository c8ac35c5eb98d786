/* oipscan.c: one-pass decoder of the common OIP infer header (see oipscan.h).
 *
 * jansson built a tree of ~40 nodes per Triton-style header (a json_t per key, value and
 * shape entry): its parse and the malloc/free of the tree were ~21 % of the server's CPU
 * per v2 request. This scanner reads the header once into a few fixed fields, then applies
 * the reference decoder's checks (oip_decode.c) in any order; whatever fails, it declines,
 * so every error message stays the reference's. JSON "data" is validated while scanning
 * and converted in a second walk once the datatype is known (keys come in any order).
 */
#include "oipscan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"

#define MAX_DIMS 4 /* as oip_decode.c */
#define MAX_NEST 8

enum { K_F = SS_OIP_K_F, K_I = SS_OIP_K_I, K_U = SS_OIP_K_U, K_B = SS_OIP_K_B };

typedef ss_oip_dtype dtype;

/* What the leaves of a "data" value were. */
enum { L_BOOL = 1, L_INT = 2, L_NEG = 4, L_REAL = 8 };

typedef struct {
    const char *name, *dt;
    size_t name_len, dt_len;
    uint64_t dims[MAX_DIMS];
    int nd;
    int has_size;
    uint64_t size;
    const char *data, *data_end; /* the "data" value's text, or NULL */
    size_t leaves;
    unsigned kinds; /* L_* */
} in_raw;

typedef struct {
    const char *name;
    size_t name_len;
    int has_binary, binary;
    int has_class;
    uint64_t klass;
} out_raw;

static int word(ss_jscan *s, const char *w, size_t n) {
    ss_jscan_ws(s);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n)) return 0;
    s->p += n;
    return 1;
}

static int boolean(ss_jscan *s, int *v) {
    if (word(s, "true", 4)) return *v = 1;
    if (word(s, "false", 5)) return !(*v = 0);
    return 0;
}

/* A non-negative integer token (a real, a negative or an inexact one: 0). */
static int natural(ss_jscan *s, uint64_t *v) {
    int64_t iv;
    double d;
    if (ss_jscan_number(s, &iv, &d) != SS_JNUM_INT || iv < 0) return 0;
    *v = (uint64_t)iv;
    return 1;
}

/* The key of the next member, one of keys[0..n): its index (a bit not yet in *seen), or -1. */
static int key(ss_jscan *s, const char *const *keys, int n, unsigned *seen) {
    const char *k;
    size_t len;
    if (!ss_jscan_string(s, &k, &len) || !ss_jscan_eat(s, ':')) return -1;
    for (int i = 0; i < n; i++)
        if (strlen(keys[i]) == len && !memcmp(keys[i], k, len)) {
            if (*seen & (1u << i)) return -1; /* a duplicate: the reference refuses it */
            *seen |= 1u << i;
            return i;
        }
    return -1;
}

/* An object's members, each read by member(ctx, index); 0 on anything else. */
static int object(ss_jscan *s, const char *const *keys, int n,
                  int (*member)(ss_jscan *, int, void *), void *ctx) {
    unsigned seen = 0;
    if (!ss_jscan_eat(s, '{')) return 0;
    if (ss_jscan_eat(s, '}')) return 1;
    do {
        int k = key(s, keys, n, &seen);
        if (k < 0 || !member(s, k, ctx)) return 0;
    } while (ss_jscan_eat(s, ','));
    return ss_jscan_eat(s, '}');
}

/* A "data" value: counts its leaves (at most cap) and notes their kinds, or fills dst. */
static int data(ss_jscan *s, int depth, size_t cap, size_t *n, unsigned *kinds, double *dst) {
    ss_jscan_ws(s);
    if (s->p < s->end && *s->p == '[') {
        if (depth >= MAX_NEST) return 0;
        s->p++;
        if (ss_jscan_eat(s, ']')) return 1;
        do
            if (!data(s, depth + 1, cap, n, kinds, dst)) return 0;
        while (ss_jscan_eat(s, ','));
        return ss_jscan_eat(s, ']');
    }
    if (*n >= cap) return 0;
    int b;
    int64_t iv;
    double d;
    if (boolean(s, &b)) {
        *kinds |= L_BOOL;
        d = b;
    } else {
        int t = ss_jscan_number(s, &iv, &d);
        if (t == SS_JNUM_NONE) return 0;
        *kinds |= t == SS_JNUM_REAL ? L_REAL : iv < 0 ? L_NEG | L_INT : L_INT;
    }
    if (dst) dst[*n] = d;
    (*n)++;
    return 1;
}

typedef struct {
    in_raw *in;
    uint64_t cap; /* leaves */
} in_ctx;

static int in_param(ss_jscan *s, int k, void *ctx) {
    (void)k; /* binary_data_size */
    in_raw *in = ctx;
    in->has_size = 1;
    return natural(s, &in->size);
}

static int in_member(ss_jscan *s, int k, void *ctx) {
    static const char *const pkeys[] = {"binary_data_size"};
    in_ctx *c = ctx;
    in_raw *in = c->in;
    switch (k) {
    case 0:
        return ss_jscan_string(s, &in->name, &in->name_len);
    case 1:
        return ss_jscan_string(s, &in->dt, &in->dt_len);
    case 2:
        if (!ss_jscan_eat(s, '[')) return 0;
        do {
            if (in->nd == MAX_DIMS || !natural(s, &in->dims[in->nd])) return 0;
            in->nd++;
        } while (ss_jscan_eat(s, ','));
        return ss_jscan_eat(s, ']');
    case 3:
        return object(s, pkeys, 1, in_param, in);
    default:
        ss_jscan_ws(s);
        in->data = s->p;
        if (!data(s, 0, c->cap, &in->leaves, &in->kinds, NULL)) return 0;
        in->data_end = s->p;
        return 1;
    }
}

static int out_param(ss_jscan *s, int k, void *ctx) {
    out_raw *o = ctx;
    if (k == 0) return (o->has_binary = 1) && boolean(s, &o->binary);
    return (o->has_class = 1) && natural(s, &o->klass);
}

static int out_member(ss_jscan *s, int k, void *ctx) {
    static const char *const pkeys[] = {"binary_data", "classification"};
    out_raw *o = ctx;
    if (k == 0) return ss_jscan_string(s, &o->name, &o->name_len);
    return object(s, pkeys, 2, out_param, o);
}

typedef struct {
    const char *id;
    size_t id_len;
    int has_seq_id;
    int seq_is_str;
    uint64_t seq_num;
    const char *seq_str;
    size_t seq_len;
    int start, end, bin_out, has_steps;
    uint64_t steps;
    int has_inputs, has_outputs;
    in_raw in[2];
    int n_in;
    out_raw out[SS_OIP_MAX_OUTPUTS];
    int n_out;
    uint64_t leaf_cap;
} head_raw;

static int param_member(ss_jscan *s, int k, void *ctx) {
    head_raw *h = ctx;
    switch (k) {
    case 0:
        h->has_seq_id = 1;
        ss_jscan_ws(s);
        if (s->p < s->end && *s->p == '"') {
            h->seq_is_str = 1;
            return ss_jscan_string(s, &h->seq_str, &h->seq_len) && h->seq_len <= SS_OIP_ID_MAX;
        }
        return natural(s, &h->seq_num);
    case 1:
        return boolean(s, &h->start);
    case 2:
        return boolean(s, &h->end);
    case 3:
        return boolean(s, &h->bin_out);
    default:
        return (h->has_steps = 1) && natural(s, &h->steps) && h->steps >= 1;
    }
}

static int head_member(ss_jscan *s, int k, void *ctx) {
    static const char *const pkeys[] = {"sequence_id", "sequence_start", "sequence_end",
                                        "binary_data_output", "steps"};
    static const char *const ikeys[] = {"name", "datatype", "shape", "parameters", "data"};
    static const char *const okeys[] = {"name", "parameters"};
    head_raw *h = ctx;
    switch (k) {
    case 0:
        return ss_jscan_string(s, &h->id, &h->id_len) && h->id_len <= SS_OIP_ID_MAX;
    case 1:
        return object(s, pkeys, 5, param_member, h);
    case 2:
        h->has_inputs = 1;
        if (!ss_jscan_eat(s, '[')) return 0;
        do {
            if (h->n_in == 2) return 0;
            in_ctx c = {&h->in[h->n_in++], h->leaf_cap};
            if (!object(s, ikeys, 5, in_member, &c)) return 0;
        } while (ss_jscan_eat(s, ','));
        return ss_jscan_eat(s, ']');
    default:
        h->has_outputs = 1;
        if (!ss_jscan_eat(s, '[')) return 0;
        if (ss_jscan_eat(s, ']')) return 1;
        do {
            if (h->n_out == SS_OIP_MAX_OUTPUTS) return 0;
            if (!object(s, okeys, 2, out_member, &h->out[h->n_out++])) return 0;
        } while (ss_jscan_eat(s, ','));
        return ss_jscan_eat(s, ']');
    }
}

static int is(const char *s, size_t n, const char *lit) {
    return strlen(lit) == n && !memcmp(s, lit, n);
}

/* Element i of a binary tensor as a double (little-endian, as oip_decode.c reads it). */
static double bin_at(const uint8_t *p, size_t i, const dtype *dt) {
    p += i * (size_t)dt->size;
    switch (dt->kind * 16 + dt->size) {
    case K_F * 16 + 4: {
        float x;
        memcpy(&x, p, 4);
        return x;
    }
    case K_F * 16 + 8: {
        double x;
        memcpy(&x, p, 8);
        return x;
    }
    case K_B * 16 + 1:
        return p[0] != 0;
    case K_I * 16 + 1:
        return (int8_t)p[0];
    case K_I * 16 + 2: {
        int16_t x;
        memcpy(&x, p, 2);
        return x;
    }
    case K_I * 16 + 4: {
        int32_t x;
        memcpy(&x, p, 4);
        return x;
    }
    case K_I * 16 + 8: {
        int64_t x;
        memcpy(&x, p, 8);
        return (double)x;
    }
    case K_U * 16 + 1:
        return p[0];
    case K_U * 16 + 2: {
        uint16_t x;
        memcpy(&x, p, 2);
        return x;
    }
    case K_U * 16 + 4: {
        uint32_t x;
        memcpy(&x, p, 4);
        return x;
    }
    default: {
        uint64_t x;
        memcpy(&x, p, 8);
        return (double)x;
    }
    }
}

typedef struct {
    const dtype *dt;
    uint64_t dims[2];
    size_t n;
    const uint8_t *bin;
    double *v; /* the JSON data's values */
} tensor;

/* The reference's pass 1 for one input, declining where it would refuse. */
static int check_input(const in_raw *in, const spk_model *m, const ss_limits *lim, size_t bin_len,
                       size_t *off, tensor *ts, int *have, const uint8_t *bin) {
    if (!in->name || !in->dt) return 0;
    int which = is(in->name, in->name_len, "spikes")   ? 0
                : is(in->name, in->name_len, "events") ? 1
                                                       : -1;
    if (which < 0 || have[which]) return 0;
    have[which] = 1;
    tensor *t = &ts[which];
    t->dt = NULL;
    for (size_t i = 0; i < ss_oip_n_dtypes; i++)
        if (is(in->dt, in->dt_len, ss_oip_dtypes[i].name)) t->dt = &ss_oip_dtypes[i];
    if (!t->dt || t->dt->kind == SS_OIP_K_NO || in->nd == 0) return 0;
    uint64_t cap = which == 0 ? lim->max_events : (uint64_t)lim->max_events * 3, n = 1;
    for (int i = 0; i < in->nd; i++) {
        if (in->dims[i] > cap || (in->dims[i] && n > cap / in->dims[i])) return 0;
        n *= in->dims[i];
    }
    t->n = (size_t)n;
    uint64_t d[MAX_DIMS];
    int nd = in->nd;
    memcpy(d, in->dims, sizeof d);
    if (nd == 3 && d[0] == 1) {
        d[0] = d[1];
        d[1] = d[2];
        nd = 2;
    }
    if (nd != 2) return 0;
    if (which == 0 && (d[1] != m->n_in || d[0] == 0)) return 0;
    if (which == 1 && d[1] != 3 && d[1] != 2) return 0;
    t->dims[0] = d[0];
    t->dims[1] = d[1];
    if (in->has_size) {
        if (in->data || in->size != n * (uint64_t)t->dt->size || in->size > bin_len - *off)
            return 0;
        t->bin = bin + *off;
        *off += (size_t)in->size;
        return 1;
    }
    if (!in->data || in->leaves != n) return 0;
    /* the leaves' kinds the reference takes for this datatype */
    unsigned ok = t->dt->kind == K_B   ? L_BOOL
                  : t->dt->kind == K_F ? L_INT | L_NEG | L_REAL
                  : t->dt->kind == K_I ? L_INT | L_NEG
                                       : L_INT;
    return (in->kinds & ~ok) == 0;
}

/* The JSON data of every input into doubles (after the checks: the sizes are bounded). */
static int json_values(const head_raw *h, tensor *ts) {
    for (int i = 0; i < h->n_in; i++) {
        const in_raw *in = &h->in[i];
        if (!in->data) continue;
        tensor *t = &ts[is(in->name, in->name_len, "spikes") ? 0 : 1];
        t->v = malloc((t->n ? t->n : 1) * sizeof *t->v);
        if (!t->v) return 0;
        ss_jscan s = {in->data, in->data_end};
        size_t n = 0;
        unsigned kinds = 0;
        if (!data(&s, 0, t->n, &n, &kinds, t->v) || n != t->n) return 0;
    }
    return 1;
}

int ss_oip_decode_fast(const uint8_t *head, size_t head_len, const uint8_t *bin, size_t bin_len,
                       const spk_model *m, const ss_limits *lim, ss_batch *out, ss_oip_fmt *fmt,
                       ss_oip_seq *seq) {
    static const char *const keys[] = {"id", "parameters", "inputs", "outputs"};
    memset(out, 0, sizeof *out);
    memset(fmt, 0, sizeof *fmt);
    memset(seq, 0, sizeof *seq);
    fmt->head = &fmt->head_len;
    head_raw h;
    memset(&h, 0, sizeof h);
    tensor ts[2];
    memset(ts, 0, sizeof ts);
    int have[2] = {0, 0};
    /* the reference counts leaves up to the shape's elements, at most max_events * 3 */
    h.leaf_cap = (uint64_t)lim->max_events * 3;
    ss_jscan s = {(const char *)head, (const char *)head + head_len};
    if (!object(&s, keys, 4, head_member, &h)) goto declined;
    ss_jscan_ws(&s);
    if (s.p != s.end || !h.has_inputs || h.n_in == 0) goto declined;
    /* parameters */
    if (h.has_seq_id) {
        if (h.seq_is_str) {
            memcpy(seq->str, h.seq_str, h.seq_len);
            seq->is_str = 1;
            seq->has_id = h.seq_len != 0;
        } else {
            seq->num = h.seq_num;
            seq->has_id = h.seq_num != 0;
        }
    }
    seq->start = h.start;
    seq->end = h.end;
    if (h.id) memcpy(fmt->id, h.id, h.id_len);
    /* inputs */
    size_t off = 0;
    for (int i = 0; i < h.n_in; i++)
        if (!check_input(&h.in[i], m, lim, bin_len, &off, ts, have, bin)) goto declined;
    if (off != bin_len) goto declined;
    uint64_t steps = h.steps;
    if (have[0]) {
        if (h.has_steps && steps != ts[0].dims[0]) goto declined;
        steps = ts[0].dims[0];
    } else if (!h.has_steps) {
        goto declined;
    }
    if (steps > lim->max_steps) goto declined;
    out->steps = (uint32_t)steps;
    size_t n_ev = have[1] ? (size_t)ts[1].dims[0] : 0;
    uint64_t dense_vals = have[0] ? steps * m->n_in : 0;
    if (dense_vals + n_ev > lim->max_events) goto declined;
    /* outputs */
    if (!h.has_outputs) {
        int last = m->has_readout ? SS_OIP_PREDICTION : SS_OIP_SPIKES;
        for (int w = SS_OIP_SPIKES; w <= last; w++) {
            fmt->out[fmt->n_out].which = w;
            fmt->out[fmt->n_out++].binary = h.bin_out;
        }
    }
    for (int i = 0; i < h.n_out; i++) {
        const out_raw *o = &h.out[i];
        int w = -1;
        for (int k = 0; k < 4 && o->name; k++)
            if (is(o->name, o->name_len, ss_oip_out_names[k])) w = k;
        if (w < 0 || (w != SS_OIP_SPIKES && !m->has_readout)) goto declined;
        for (unsigned k = 0; k < fmt->n_out; k++)
            if (fmt->out[k].which == w) goto declined;
        uint32_t klass = 0;
        if (o->has_class) {
            if (o->klass < 1 || (w != SS_OIP_READOUT && w != SS_OIP_PREDICTION)) goto declined;
            klass = o->klass > m->readout.n ? m->readout.n : (uint32_t)o->klass;
        }
        fmt->out[fmt->n_out].which = w;
        fmt->out[fmt->n_out].binary = o->has_binary ? o->binary : h.bin_out;
        fmt->out[fmt->n_out++].klass = klass;
    }
    for (unsigned k = 0; k < fmt->n_out; k++) {
        int w = fmt->out[k].which;
        out->outputs |= w == SS_OIP_SPIKES        ? SS_OUT_SPIKES
                        : w == SS_OIP_READOUT_ALL ? SS_OUT_READOUT_ALL
                                                  : SS_OUT_READOUT;
    }
    char err[8];
    if (ss_batch_check_limits(m, out, lim, err, sizeof err)) goto declined;
    if (!json_values(&h, ts)) goto declined;
    /* values (the reference's pass 3) */
    if (have[0]) {
        const tensor *t = &ts[0];
        out->dense = malloc(t->n * sizeof *out->dense);
        if (!out->dense) goto declined;
        for (size_t i = 0; i < t->n; i++) {
            double x = t->bin ? bin_at(t->bin, i, t->dt) : t->v[i];
            if (!(fabs(x) <= SPK_MAX_VALUE)) goto declined;
            out->dense[i] = (float)x;
        }
    }
    if (have[1]) {
        const tensor *t = &ts[1];
        size_t k = (size_t)t->dims[0], w = (size_t)t->dims[1];
        out->events = malloc((k ? k : 1) * sizeof *out->events);
        if (!out->events) goto declined;
        for (size_t i = 0; i < k; i++) {
            double st, in, val = 1.0;
            if (t->bin && t->dt->kind == K_F && t->dt->size == 4 && w == 3) {
                float x[3]; /* what Triton's clients send: FP32 [k, 3] */
                memcpy(x, t->bin + i * sizeof x, sizeof x);
                st = x[0];
                in = x[1];
                val = x[2];
            } else if (t->bin) {
                st = bin_at(t->bin, i * w, t->dt);
                in = bin_at(t->bin, i * w + 1, t->dt);
                if (w == 3) val = bin_at(t->bin, i * w + 2, t->dt);
            } else {
                st = t->v[i * w];
                in = t->v[i * w + 1];
                if (w == 3) val = t->v[i * w + 2];
            }
            /* in [0, 2^32): st == floor(st) exactly when the integer cast is exact */
            if (!(st >= 0 && st < out->steps && st == (double)(uint32_t)st)) goto declined;
            if (!(in >= 0 && in < m->n_in && in == (double)(uint32_t)in)) goto declined;
            if (!(fabs(val) <= SPK_MAX_VALUE)) goto declined;
            out->events[i] = (spk_event){(uint32_t)st, (uint32_t)in, (float)val};
        }
        out->n_events = k;
        spk_events_sort(out->events, out->n_events);
    }
    free(ts[0].v);
    free(ts[1].v);
    return 0;
declined:
    free(ts[0].v);
    free(ts[1].v);
    ss_batch_free(out);
    memset(out, 0, sizeof *out);
    memset(fmt, 0, sizeof *fmt);
    memset(seq, 0, sizeof *seq);
    fmt->head = &fmt->head_len;
    return SS_OIP_DECLINED;
}
