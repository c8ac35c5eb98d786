/* oip.c: the OIP routes' operations, the answer codec and the infer flow (oip.h). The
 * request decoder is oip_decode.c. */
#include "oip.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../engine/encode.h"
#include "http.h"
#include "pool.h"

#define SERVER_VERSION "0.13.0"
#define HEAD_HEADER "Inference-Header-Content-Length"

/* ---- a server's OIP state: statistics (the statistics extension) and retry records ----
 * statistics are per model version, atomics indexed by the version's slot (registry.h); gen
 * says which version the counts are of, so a version that takes a freed slot starts from 0 */

typedef struct {
    uint64_t gen, ok, ok_ns, fail, fail_ns, last_ms;
} oip_stat;

#define REC_BUCKETS 256
struct rec;

struct ss_oip {
    oip_stat stats[SS_OIP_MAX_MODELS]; /* atomics, per model version slot */
    pthread_mutex_t mu;                /* guards recs */
    struct rec *recs[REC_BUCKETS];
};

ss_oip *ss_oip_create(void) {
    ss_oip *o = calloc(1, sizeof *o);
    if (o) pthread_mutex_init(&o->mu, NULL);
    return o;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void stat_add(ss_oip *oip, uint32_t mi, uint64_t gen, int ok, int64_t ns) {
    if (mi >= SS_OIP_MAX_MODELS) return;
    oip_stat *s = &oip->stats[mi];
    uint64_t was = __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE);
    if (was != gen &&
        __atomic_compare_exchange_n(&s->gen, &was, gen, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        __atomic_store_n(&s->ok, 0, __ATOMIC_RELAXED); /* the slot's earlier tenant's */
        __atomic_store_n(&s->ok_ns, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s->fail, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s->fail_ns, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s->last_ms, 0, __ATOMIC_RELAXED);
    }
    __atomic_fetch_add(ok ? &s->ok : &s->fail, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(ok ? &s->ok_ns : &s->fail_ns, (uint64_t)(ns > 0 ? ns : 0), __ATOMIC_RELAXED);
    if (ok) __atomic_store_n(&s->last_ms, (uint64_t)ss_util_now_ms(), __ATOMIC_RELAXED);
}

/* ---- a growing output buffer ---- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
    int oom;
} obuf;

static void ob_put(obuf *b, const void *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

/* Room for cap bytes in one allocation (a hint: ob_put still grows past it). */
static void ob_reserve(obuf *b, size_t cap) {
    if (b->oom || cap <= b->cap) return;
    uint8_t *p = realloc(b->p, cap);
    if (!p) return;
    b->p = p;
    b->cap = cap;
}

static void ob_printf(obuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ob_printf(obuf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        ob_put(b, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    ob_put(b, big, (size_t)n);
    free(big);
}

static void ob_s(obuf *b, const char *s) {
    ob_put(b, s, strlen(s));
}

static void ob_float(obuf *b, float f) {
    if (!isfinite(f))
        ob_put(b, "null", 4);
    else
        ob_printf(b, "%.9g", (double)f);
}

static void ob_str(obuf *b, const char *s) {
    size_t n = 0;
    while (s[n] && s[n] >= 0x20 && s[n] < 0x7f && s[n] != '"' && s[n] != '\\')
        n++;
    if (!s[n]) { /* plain ASCII: as it is */
        ob_put(b, "\"", 1);
        ob_put(b, s, n);
        ob_put(b, "\"", 1);
        return;
    }
    json_t *j = json_string(s); /* NULL for bad UTF-8 */
    char *e = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (!e) {
        ob_put(b, "\"\"", 2);
        return;
    }
    ob_put(b, e, strlen(e));
    free(e);
}

static void ob_u64(obuf *b, uint64_t v) {
    char tmp[24];
    size_t k = sizeof tmp;
    do {
        tmp[--k] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    ob_put(b, tmp + k, sizeof tmp - k);
}

static uint8_t *ob_take(obuf *b, size_t *len) {
    if (b->oom) {
        free(b->p);
        return NULL;
    }
    if (!b->p) ob_put(b, "", 0);
    *len = b->len;
    return b->p;
}

/* ---- the answer codec ---- */

static void ob_sink(void *b, const void *s, size_t n) {
    ob_put(b, s, n);
}

/* One output tensor as JSON: data, or binary in tail with its size in parameters. */
typedef struct {
    ss_oip_sink sink;
    obuf h, tail;
    unsigned k;
} json_sink;

static void put_tensor(ss_oip_sink *sk, const ss_oip_tensor *t) {
    json_sink *js = (json_sink *)sk;
    obuf *h = &js->h, *tail = &js->tail;
    if (js->k++) ob_put(h, ",", 1);
    ob_s(h, "{\"name\":\"");
    ob_s(h, t->name);
    ob_s(h, "\",\"datatype\":\"");
    ob_s(h, t->dt);
    ob_s(h, "\",\"shape\":[");
    for (int k = 0; k < t->nd; k++) {
        if (k) ob_put(h, ",", 1);
        ob_u64(h, t->dims[k]);
    }
    ob_put(h, "]", 1);
    if (t->binary) {
        size_t before = tail->len;
        ss_oip_tensor_bytes(t, ob_sink, tail);
        ob_s(h, ",\"parameters\":{\"binary_data_size\":");
        ob_u64(h, tail->len - before);
        ob_put(h, "}}", 2);
        return;
    }
    ob_put(h, ",\"data\":[", 9);
    for (size_t k = 0; k < t->n; k++) {
        if (k) ob_put(h, ",", 1);
        if (t->f) ob_float(h, t->f[k]);
        if (t->i32) ob_printf(h, "%d", t->i32[k]);
        if (t->strs) ob_str(h, t->strs[k]);
    }
    ob_put(h, "]}", 2);
}

void ss_oip_tensor_bytes(const ss_oip_tensor *t, void (*put)(void *ctx, const void *p, size_t n),
                         void *ctx) {
    if (t->f) put(ctx, t->f, t->n * sizeof *t->f); /* little-endian host, as the wire */
    if (t->i32) put(ctx, t->i32, t->n * sizeof *t->i32);
    for (size_t k = 0; t->strs && k < t->n; k++) {
        uint32_t l = (uint32_t)strlen(t->strs[k]);
        put(ctx, &l, 4);
        put(ctx, t->strs[k], l);
    }
}

/* Top-k "score:index:label" strings of the readout row v (n values). */
static char **classes(const spk_model *m, const float *v, uint32_t n, uint32_t k) {
    char **s = calloc(k ? k : 1, sizeof *s);
    uint8_t *used = calloc(n ? n : 1, 1);
    if (!s || !used) goto fail;
    for (uint32_t r = 0; r < k; r++) {
        uint32_t best = UINT32_MAX;
        for (uint32_t i = 0; i < n; i++)
            if (!used[i] && (best == UINT32_MAX || v[i] > v[best])) best = i;
        used[best] = 1;
        char tmp[256];
        if (m->n_labels)
            snprintf(tmp, sizeof tmp, "%.6f:%u:%s", (double)v[best], best, m->labels[best]);
        else
            snprintf(tmp, sizeof tmp, "%.6f:%u", (double)v[best], best);
        if (!(s[r] = strdup(tmp))) goto fail;
    }
    free(used);
    return s;
fail:
    if (s)
        for (uint32_t r = 0; r < k; r++)
            free(s[r]);
    free(s);
    free(used);
    return NULL;
}

int ss_oip_tensors(const ss_result *r, const ss_oip_fmt *f, ss_oip_sink *sink) {
    const spk_model *m = r->model;
    const float *last = ss_result_last_readout(r);
    uint32_t no = m->has_readout ? m->readout.n : 0;
    for (unsigned k = 0; k < f->n_out; k++) {
        ss_oip_tensor t = {0};
        t.binary = f->out[k].binary;
        t.name = f->out[k].which == SS_OIP_SPIKES        ? "output_spikes"
                 : f->out[k].which == SS_OIP_READOUT     ? "readout"
                 : f->out[k].which == SS_OIP_READOUT_ALL ? "readout_all"
                                                         : "prediction";
        if (f->out[k].klass && last) {
            char **s = classes(m, last, no, f->out[k].klass);
            if (!s) return -1;
            t.dt = "BYTES";
            t.dims[0] = f->out[k].klass;
            t.nd = 1;
            t.strs = s;
            t.n = f->out[k].klass;
            sink->tensor(sink, &t);
            for (uint32_t i = 0; i < f->out[k].klass; i++)
                free(s[i]);
            free(s);
            continue;
        }
        t.dt = "FP32";
        switch (f->out[k].which) {
        case SS_OIP_SPIKES: {
            const spk_spike_buf *sb = &r->out->spikes;
            size_t n = sb->buf ? sb->len : 0;
            float *v = malloc((n ? n : 1) * 3 * sizeof *v);
            if (!v) return -1;
            for (size_t i = 0; i < n; i++) {
                v[3 * i] = (float)sb->buf[i].step;
                v[3 * i + 1] = (float)sb->buf[i].neuron;
                v[3 * i + 2] = sb->buf[i].value;
            }
            t.dims[0] = n;
            t.dims[1] = 3;
            t.nd = 2;
            t.f = v;
            t.n = n * 3;
            sink->tensor(sink, &t);
            free(v);
            break;
        }
        case SS_OIP_READOUT:
            t.dims[0] = last ? no : 0;
            t.nd = 1;
            t.f = last;
            t.n = last ? no : 0;
            sink->tensor(sink, &t);
            break;
        case SS_OIP_READOUT_ALL: {
            int every = r->out->readout && r->out->readout_every_step;
            t.dims[0] = every ? r->steps : 0;
            t.dims[1] = no;
            t.nd = 2;
            t.f = r->out->readout;
            t.n = every ? (size_t)r->steps * no : 0;
            sink->tensor(sink, &t);
            break;
        }
        default: {
            int32_t p = last ? (int32_t)spk_argmax(last, no) : -1;
            t.dt = "INT32";
            t.dims[0] = 1;
            t.nd = 1;
            t.i32 = &p;
            t.n = 1;
            sink->tensor(sink, &t);
        }
        }
    }
    return 0;
}

static uint8_t *oip_result(const ss_result *r, size_t *len) {
    const ss_oip_fmt *f = r->fmt;
    ss_oip_fmt all;
    if (!f) { /* no request options: every output, JSON */
        memset(&all, 0, sizeof all);
        all.head = &all.head_len;
        int last = r->model->has_readout ? SS_OIP_PREDICTION : SS_OIP_SPIKES;
        for (int w = 0; w <= last; w++)
            all.out[all.n_out++].which = w;
        f = &all;
    }
    const spk_model *m = r->model;
    json_sink js = {{put_tensor}, {0}, {0}, 0};
    obuf *h = &js.h;
    /* the binary outputs' bytes at most, so that neither buffer grows while it is written */
    size_t bin = 64 + (r->out->spikes.buf ? r->out->spikes.len * 12 : 0) +
                 (m->has_readout ? (size_t)m->readout.n * 4 * ((size_t)r->steps + 1) : 0);
    for (unsigned k = 0; k < f->n_out; k++)
        if (f->out[k].binary) {
            ob_reserve(&js.tail, bin);
            break;
        }
    ob_reserve(h, 1024 + bin);
    ob_put(h, "{\"model_name\":", 14);
    ob_str(h, m->name);
    ob_s(h, ",\"model_version\":\"");
    ob_u64(h, m->version);
    ob_put(h, "\"", 1);
    if (f->id[0]) {
        ob_put(h, ",\"id\":", 6);
        ob_str(h, f->id);
    }
    ob_put(h, ",\"outputs\":[", 12);
    if (ss_oip_tensors(r, f, &js.sink) != 0) h->oom = 1;
    ob_put(h, "]}", 2);
    *f->head = h->len;
    if (js.tail.oom) h->oom = 1;
    if (js.tail.len) ob_put(h, js.tail.p, js.tail.len);
    free(js.tail.p);
    return ob_take(h, len);
}

static uint8_t *oip_error(const char *code, const char *message, size_t *len) {
    (void)code;
    obuf b = {0};
    ob_put(&b, "{\"error\":", 9);
    ob_str(&b, message);
    ob_put(&b, "}", 1);
    return ob_take(&b, len);
}

static uint8_t *oip_session(const ss_sess_info *s, size_t *len) {
    return ss_codec_json.session(s, len);
}

static uint8_t *oip_model(const spk_model *m, size_t *len);
static uint8_t *oip_models(spk_model *const *ms, size_t n, size_t *len) {
    return ss_codec_json.models(ms, n, len);
}

const ss_codec ss_codec_oip = {
    "oip", SS_CT_JSON, NULL, NULL, NULL, oip_result, oip_error, oip_session, oip_model, oip_models,
};

/* ---- metadata ---- */

static const char *const in_desc[] = {"spikes", "events"};

static uint8_t *oip_model(const spk_model *m, size_t *len) {
    obuf b = {0};
    ob_put(&b, "{\"name\":", 8);
    ob_str(&b, m->name);
    ob_printf(&b, ",\"versions\":[\"%u\"],\"platform\":\"spikeserve_src\",\"inputs\":[",
              m->version);
    ob_printf(&b, "{\"name\":\"%s\",\"datatype\":\"FP32\",\"shape\":[-1,%u]},", in_desc[0],
              m->n_in);
    ob_printf(&b, "{\"name\":\"%s\",\"datatype\":\"FP32\",\"shape\":[-1,3]}]", in_desc[1]);
    ob_s(&b, ",\"outputs\":[{\"name\":\"output_spikes\",\"datatype\":\"FP32\",\"shape\":[-1,3]}");
    if (m->has_readout)
        ob_printf(&b,
                  ",{\"name\":\"readout\",\"datatype\":\"FP32\",\"shape\":[%u]}"
                  ",{\"name\":\"readout_all\",\"datatype\":\"FP32\",\"shape\":[-1,%u]}"
                  ",{\"name\":\"prediction\",\"datatype\":\"INT32\",\"shape\":[1]}",
                  m->readout.n, m->readout.n);
    ob_put(&b, "]}", 2);
    return ob_take(&b, len);
}

static int now_fail(ss_op *o, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int now_fail(ss_op *o, int err, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ss_reply_fail(&o->reply, err, "%s", msg);
    return SS_OP_NOW;
}

static int now_body(ss_op *o, unsigned status, uint8_t *body, size_t len) {
    ss_codec_reply(&o->reply, &ss_codec_oip, status, body, len);
    return SS_OP_NOW;
}

/* The model {model} (at version {v} when given, else its latest): a reference, or NULL
 * with o->reply set. */
static ss_mver *find_model(ss_op *o) {
    uint32_t version = 0;
    if (o->sid[0] && !(version = ss_reg_parse_version(o->sid))) {
        ss_reply_fail(&o->reply, SS_E_NOT_FOUND,
                      "Request for unknown model: '%s' version %.20s is not found", o->model,
                      o->sid);
        return NULL;
    }
    ss_mver *v = ss_app_model(o->app, o->model, version);
    if (v) return v;
    ss_mver *any = version ? ss_app_model(o->app, o->model, 0) : NULL;
    if (any)
        ss_reply_fail(&o->reply, SS_E_NOT_FOUND,
                      "Request for unknown model: '%s' version %s is not found (latest %u)",
                      o->model, o->sid, any->version);
    else
        ss_reply_fail(&o->reply, SS_E_NOT_FOUND, "Request for unknown model: '%s' is not found",
                      o->model);
    ss_reg_unref(any);
    return NULL;
}

static int draining(ss_op *o) {
    return __atomic_load_n(&o->app->draining, __ATOMIC_RELAXED);
}

int ss_oip_op_live(ss_op *o) {
    ss_reply_set(&o->reply, 200, NULL, NULL, 0);
    return SS_OP_NOW;
}

int ss_oip_op_ready(ss_op *o) {
    if (draining(o) || ss_reg_count(o->app->reg) == 0)
        return now_fail(o, SS_E_UNAVAILABLE, "server is not ready (%s)",
                        draining(o) ? "shutting down" : "no models");
    ss_reply_set(&o->reply, 200, NULL, NULL, 0);
    return SS_OP_NOW;
}

int ss_oip_op_server(ss_op *o) {
    const char *b = "{\"name\":\"spikeserve\",\"version\":\"" SERVER_VERSION
                    "\",\"extensions\":[\"binary_tensor_data\",\"classification\",\"sequence\","
                    "\"model_configuration\",\"statistics\",\"model_repository\"]}";
    char *c = strdup(b);
    return now_body(o, 200, (uint8_t *)c, c ? strlen(c) : 0);
}

int ss_oip_op_model(ss_op *o) {
    ss_mver *v = find_model(o);
    if (!v) return SS_OP_NOW;
    size_t len = 0;
    uint8_t *b = oip_model(v->model, &len);
    ss_reg_unref(v);
    return now_body(o, 200, b, len);
}

int ss_oip_op_model_ready(ss_op *o) {
    ss_mver *v = find_model(o);
    if (!v) return SS_OP_NOW;
    ss_reg_unref(v);
    if (draining(o)) return now_fail(o, SS_E_UNAVAILABLE, "server is shutting down");
    ss_reply_set(&o->reply, 200, NULL, NULL, 0);
    return SS_OP_NOW;
}

int ss_oip_op_config(ss_op *o) {
    ss_mver *v = find_model(o);
    if (!v) return SS_OP_NOW;
    const spk_model *m = v->model;
    obuf b = {0};
    ob_put(&b, "{\"name\":", 8);
    ob_str(&b, m->name);
    ob_printf(
        &b,
        ",\"platform\":\"spikeserve_src\",\"backend\":\"spikeserve\",\"version_policy\":"
        "{\"specific\":{\"versions\":[%u]}},\"max_batch_size\":0,\"input\":["
        "{\"name\":\"spikes\",\"data_type\":\"TYPE_FP32\",\"dims\":[-1,%u],\"optional\":true},"
        "{\"name\":\"events\",\"data_type\":\"TYPE_FP32\",\"dims\":[-1,3],\"optional\":true}],"
        "\"output\":[{\"name\":\"output_spikes\",\"data_type\":\"TYPE_FP32\",\"dims\":[-1,3]}",
        m->version, m->n_in);
    if (m->has_readout) {
        ob_printf(&b, ",{\"name\":\"readout\",\"data_type\":\"TYPE_FP32\",\"dims\":[%u]",
                  m->readout.n);
        if (m->n_labels) ob_s(&b, ",\"label_filename\":\"labels\"");
        ob_printf(&b,
                  "},{\"name\":\"readout_all\",\"data_type\":\"TYPE_FP32\",\"dims\":[-1,%u]}"
                  ",{\"name\":\"prediction\",\"data_type\":\"TYPE_INT32\",\"dims\":[1]}",
                  m->readout.n);
    }
    ob_printf(
        &b,
        "],\"sequence_batching\":{\"max_sequence_idle_microseconds\":%llu,"
        "\"control_input\":[]},\"instance_group\":[{\"count\":%u,\"kind\":\"KIND_CPU\"}],"
        "\"parameters\":{\"n_in\":{\"string_value\":\"%u\"},\"layers\":{\"string_value\":\"%u\"}",
        (unsigned long long)o->app->cfg.idle_timeout * 1000000ull, o->app->cfg.workers, m->n_in,
        m->n_layers);
    if (m->encoding.kind != SPK_ENC_NONE)
        ob_printf(&b, ",\"encoding_steps\":{\"string_value\":\"%u\"}",
                  spk_encode_steps(&m->encoding));
    ob_put(&b, "}}", 2);
    ss_reg_unref(v);
    size_t len = 0;
    uint8_t *body = ob_take(&b, &len);
    return now_body(o, 200, body, len);
}

static void stat_json(obuf *b, const ss_oip *oip, const spk_model *m, uint32_t mi, uint64_t gen) {
    oip_stat s = {0};
    const oip_stat *stats = oip->stats;
    if (mi < SS_OIP_MAX_MODELS && __atomic_load_n(&stats[mi].gen, __ATOMIC_ACQUIRE) == gen) {
        s.ok = __atomic_load_n(&stats[mi].ok, __ATOMIC_RELAXED);
        s.ok_ns = __atomic_load_n(&stats[mi].ok_ns, __ATOMIC_RELAXED);
        s.fail = __atomic_load_n(&stats[mi].fail, __ATOMIC_RELAXED);
        s.fail_ns = __atomic_load_n(&stats[mi].fail_ns, __ATOMIC_RELAXED);
        s.last_ms = __atomic_load_n(&stats[mi].last_ms, __ATOMIC_RELAXED);
    }
    ob_put(b, "{\"name\":", 8);
    ob_str(b, m->name);
    ob_printf(b,
              ",\"version\":\"%u\",\"last_inference\":%llu,\"inference_count\":%llu,"
              "\"execution_count\":%llu,\"inference_stats\":{",
              m->version, (unsigned long long)s.last_ms, (unsigned long long)s.ok,
              (unsigned long long)s.ok);
    ob_printf(b, "\"success\":{\"count\":%llu,\"ns\":%llu},", (unsigned long long)s.ok,
              (unsigned long long)s.ok_ns);
    ob_printf(b, "\"fail\":{\"count\":%llu,\"ns\":%llu},", (unsigned long long)s.fail,
              (unsigned long long)s.fail_ns);
    ob_printf(b, "\"queue\":{\"count\":0,\"ns\":0},\"compute_input\":{\"count\":0,\"ns\":0},"
                 "\"compute_infer\":{\"count\":0,\"ns\":0},\"compute_output\":{\"count\":0,"
                 "\"ns\":0},\"cache_hit\":{\"count\":0,\"ns\":0},\"cache_miss\":{\"count\":0,"
                 "\"ns\":0}},\"batch_stats\":[]}");
}

int ss_oip_op_stats(ss_op *o) {
    obuf b = {0};
    ob_put(&b, "{\"model_stats\":[", 16);
    if (o->model[0]) {
        ss_mver *v = find_model(o);
        if (!v) {
            free(b.p);
            return SS_OP_NOW;
        }
        stat_json(&b, o->app->oip, v->model, v->slot, v->gen);
        ss_reg_unref(v);
    } else {
        ss_mver **vs;
        size_t n;
        if (ss_reg_list(o->app->reg, 0, &vs, &n) != 0) {
            free(b.p);
            return now_fail(o, SS_E_NOMEM, "out of memory");
        }
        for (size_t i = 0; i < n; i++) {
            if (i) ob_put(&b, ",", 1);
            stat_json(&b, o->app->oip, vs[i]->model, vs[i]->slot, vs[i]->gen);
        }
        ss_reg_list_free(vs, n);
    }
    ob_put(&b, "]}", 2);
    size_t len = 0;
    uint8_t *body = ob_take(&b, &len);
    return now_body(o, 200, body, len);
}

int ss_oip_op_index(ss_op *o) {
    /* body: optional {"ready": bool}: true lists only what is loaded */
    int want_ready = -1;
    if (o->len) {
        json_error_t je;
        json_t *r = json_loadb((const char *)o->body, o->len, 0, &je);
        int ok = r && json_is_object(r) &&
                 (!json_object_get(r, "ready") || json_is_boolean(json_object_get(r, "ready")));
        if (ok && json_is_true(json_object_get(r, "ready"))) want_ready = 1;
        json_decref(r);
        if (!ok)
            return now_fail(o, SS_E_INVALID,
                            "repository index: the body must be {\"ready\": true|false} or empty");
    }
    ss_reg_row *rows;
    size_t n;
    if (ss_reg_index(o->app->reg, &rows, &n) != 0) return now_fail(o, SS_E_NOMEM, "out of memory");
    obuf b = {0};
    ob_put(&b, "[", 1);
    for (size_t i = 0; i < n; i++) { /* every version: listed ones, refused files, unloaded */
        if (want_ready >= 0 && rows[i].ready != want_ready) continue;
        ob_put(&b, b.len > 1 ? ",{\"name\":" : "{\"name\":", b.len > 1 ? 9 : 8);
        ob_str(&b, rows[i].name);
        if (rows[i].version) ob_printf(&b, ",\"version\":\"%u\"", rows[i].version);
        ob_printf(&b, ",\"state\":\"%s\",\"reason\":", rows[i].ready ? "READY" : "UNAVAILABLE");
        ob_str(&b, rows[i].reason);
        ob_put(&b, "}", 1);
    }
    free(rows);
    ob_put(&b, "]", 1);
    size_t len = 0;
    uint8_t *body = ob_take(&b, &len);
    return now_body(o, 200, body, len);
}

/* ---- infer ---- */

/* Retries by request id. A sequence request with an "id" runs with a v1 seq number (so its
 * answer is kept): the next one of its session, or, when the id repeats the session's last
 * id, that one again, which the worker answers from the stored answer without stepping
 * (apply.h). Requests without an id carry no seq and do not move the count. The records
 * are keyed by session id (and the session's address, so a new session of that id starts
 * afresh); one per open sequence, pruned when their session is gone. */
typedef struct rec {
    char sid[SS_ID_MAX + 1];
    const ss_sess *s;
    char rid[SS_OIP_ID_MAX + 1];
    uint64_t seq;
    struct rec *next;
} rec;

static unsigned rec_hash(const char *sid) {
    unsigned h = 2166136261u;
    for (; *sid; sid++)
        h = (h ^ (unsigned char)*sid) * 16777619u;
    return h % REC_BUCKETS;
}

/* Set b's seq for request id rid on s (start: a fresh count). 0, or -1 out of memory.
 * Called with a->oip->mu held. */
static int rec_seq(ss_app *a, ss_sess *s, int start, const char *rid, ss_batch *b) {
    rec **recs = a->oip->recs;
    rec **pp = &recs[rec_hash(s->id)], *r = NULL;
    while (*pp) { /* find ours; drop records of sessions that are gone */
        rec *e = *pp;
        if (!strcmp(e->sid, s->id) && e->s == s) {
            r = e;
            pp = &e->next;
            continue;
        }
        ss_sess *live = ss_table_get(a->table, e->sid);
        int gone = live != e->s;
        ss_sess_unref(live);
        if (gone) {
            *pp = e->next;
            free(e);
        } else {
            pp = &e->next;
        }
    }
    if (!r) {
        if (!(r = calloc(1, sizeof *r))) return -1;
        snprintf(r->sid, sizeof r->sid, "%s", s->id);
        r->s = s;
        pthread_mutex_lock(&s->mu);
        r->seq = s->last_seq;
        pthread_mutex_unlock(&s->mu);
        r->next = recs[rec_hash(s->id)];
        recs[rec_hash(s->id)] = r;
    }
    if (start) {
        r->seq = 0; /* a new session, or a RESET queued before this batch */
        r->rid[0] = 0;
    }
    b->has_seq = 1;
    if (r->rid[0] && !strcmp(r->rid, rid)) {
        b->seq = r->seq; /* a retry: the stored answer */
        return 0;
    }
    b->seq = ++r->seq;
    snprintf(r->rid, sizeof r->rid, "%s", rid);
    return 0;
}

/* A batch with seq that did not run (refused, failed): its number is free again. */
static void rec_undo(ss_oip *oip, const ss_sess *s, uint64_t seq) {
    pthread_mutex_lock(&oip->mu);
    for (rec *e = oip->recs[rec_hash(s->id)]; e; e = e->next)
        if (e->s == s && !strcmp(e->sid, s->id) && e->seq == seq) {
            e->seq--;
            e->rid[0] = 0;
        }
    pthread_mutex_unlock(&oip->mu);
}

void ss_oip_free(ss_oip *o) {
    if (!o) return;
    for (size_t i = 0; i < REC_BUCKETS; i++)
        for (rec *e = o->recs[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    pthread_mutex_destroy(&o->mu);
    free(o);
}

/* The answer is ready (the worker's thread, or at once for a refusal): its headers, the
 * statistics, then the front end's done. */
static void answered(ss_job *j) {
    ss_oip_fmt *f = j->fmt;
    ss_reply *r = &j->reply;
    int ok = r->status == 200 && !r->err;
    if (ok && f->head_len < r->len) {
        r->ctype = "application/octet-stream";
        r->hname = HEAD_HEADER;
        snprintf(r->hvalue, sizeof r->hvalue, "%zu", f->head_len);
    }
    stat_add(f->app->oip, f->model_idx, f->model_gen, ok, now_ns() - f->t0_ns);
    f->done(j);
}

/* After the CLOSE of a sequence_end: the step's answer goes out. */
static void closed(ss_job *c) {
    ss_job *j = c->ctx;
    ss_job_free(c);
    answered(j);
}

static void step_done(ss_job *j) {
    ss_oip_fmt *f = j->fmt;
    if (j->sess && j->batch.has_seq && (j->reply.status != 200 || j->reply.err) &&
        j->reply.err != SS_E_SEQ)
        rec_undo(f->app->oip, j->sess, j->batch.seq);
    if (f->close_after && j->reply.status == 200 && !j->reply.err) {
        ss_job *c = ss_job_new(SS_JOB_CLOSE);
        if (c) {
            ss_sess_ref(j->sess);
            c->sess = j->sess;
            c->codec = &ss_codec_json;
            c->done = closed;
            c->ctx = j;
            if (ss_pool_submit(f->app->pool, j->sess->worker, c, 1) == 0) return;
            c->done = NULL;
            ss_job_free(c);
        }
    }
    answered(j);
}

static void no_reply(ss_job *j) {
    ss_job_free(j);
}

static ss_limits limits(const ss_app *a) {
    ss_limits lim = {a->cfg.max_steps, a->cfg.max_events, a->cfg.max_output_bytes};
    return lim;
}

/* The sequence's session for this request: a reference (reset queued first when a start
 * finds it open), or NULL with o->reply set. */
static ss_sess *sequence(ss_op *o, ss_mver *v, const ss_oip_seq *q) {
    char id[SS_ID_MAX + 1];
    if (ss_oip_session_id(o->model, q, id, sizeof id) != 0) {
        ss_reply_fail(&o->reply, SS_E_INVALID,
                      "sequence_id: the session name oip-%s-... must be at most %d characters "
                      "of [A-Za-z0-9_-]",
                      o->model, SS_ID_MAX);
        return NULL;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        ss_sess *s = ss_table_get(o->app->table, id);
        if (s) {
            pthread_mutex_lock(&s->mu);
            int gone = s->closed;
            pthread_mutex_unlock(&s->mu);
            if (gone || !ss_sess_visible(s, o->owner) || strcmp(s->model->name, v->name) != 0) {
                ss_sess_unref(s);
                s = NULL;
            }
        }
        /* a sequence stays on the version it started on; a request naming another one, or
         * one whose input size differs from the latest's, is refused */
        if (s && s->mv != v && (o->sid[0] || q->start || s->model->n_in != v->model->n_in)) {
            ss_reply_fail(&o->reply, SS_E_CONFLICT,
                          "sequence session %s runs model '%s' version %u, not version %u; end "
                          "it first (sequence_end)",
                          id, s->model->name, s->model->version, v->version);
            ss_sess_unref(s);
            return NULL;
        }
        if (s && q->start) { /* a new sequence on this id: from the initial state */
            ss_job *r = ss_job_new(SS_JOB_RESET);
            if (!r) {
                ss_sess_unref(s);
                ss_reply_fail(&o->reply, SS_E_NOMEM, "out of memory");
                return NULL;
            }
            ss_sess_ref(s);
            r->sess = s;
            r->codec = &ss_codec_json;
            r->done = no_reply;
            int rc = ss_pool_submit(o->app->pool, s->worker, r, 0);
            if (rc != 0) {
                r->done = NULL;
                ss_job_free(r);
                ss_sess_unref(s);
                if (rc == SS_POOL_EFULL)
                    ss_reply_fail(&o->reply, SS_E_QUEUE_FULL, "worker queue is full; retry later");
                else
                    ss_reply_fail(&o->reply, SS_E_UNAVAILABLE, "server is shutting down");
                return NULL;
            }
        }
        if (s) {
            ss_sess_touch(s);
            return s;
        }
        if (!q->start) {
            if (q->is_str)
                ss_reply_fail(&o->reply, SS_E_INVALID,
                              "inference request for sequence %s to model '%s' must specify the "
                              "START flag on the first request of the sequence",
                              q->str, o->model);
            else
                ss_reply_fail(&o->reply, SS_E_INVALID,
                              "inference request for sequence %llu to model '%s' must specify "
                              "the START flag on the first request of the sequence",
                              (unsigned long long)q->num, o->model);
            return NULL;
        }
        int taken = 0;
        s = ss_op_open_named(o, v, id, &taken);
        if (s || !taken) return s;
        ss_reply_clear(&o->reply); /* opened meanwhile: look it up again */
    }
    ss_reply_fail(&o->reply, SS_E_CONFLICT,
                  "sequence session %s is open under another API key, or busy; retry", id);
    return NULL;
}

int ss_oip_infer(ss_op *o, size_t head_len) {
    int64_t t0 = now_ns();
    ss_mver *v = find_model(o);
    if (!v) return SS_OP_NOW;
    const spk_model *m = v->model;
    uint32_t mi = v->slot;
    if (head_len > o->len) {
        ss_reg_unref(v);
        return now_fail(o, SS_E_INVALID, HEAD_HEADER " %zu passes the end of the body (%zu bytes)",
                        head_len, o->len);
    }
    ss_oip_fmt *f = malloc(sizeof *f);
    ss_job *j = ss_job_new(SS_JOB_INFER);
    if (!f || !j) {
        free(f);
        ss_job_free(j);
        ss_reg_unref(v);
        return now_fail(o, SS_E_NOMEM, "out of memory");
    }
    j->mv = v; /* the job holds the reference from here on (ss_job_free drops it) */
    j->fmt = f;
    j->fmt_free = free;
    ss_limits lim = limits(o->app);
    ss_oip_seq q;
    char err[512];
    int rc = ss_oip_decode(o->body, head_len, o->body + head_len, o->len - head_len, m, &lim,
                           &j->batch, f, &q, err, sizeof err);
    f->head = &f->head_len;
    f->t0_ns = t0;
    f->model_idx = mi;
    f->model_gen = v->gen;
    f->app = o->app;
    f->done = o->done;
    if (rc != 0) {
        stat_add(o->app->oip, mi, v->gen, 0,
                 now_ns() - t0); /* before the job (and v's reference) goes */
        ss_job_free(j);
        return now_fail(o, rc, "%s", err);
    }
    o->done = step_done;
    if (!q.has_id) {
        j->model = m;
        j->model_idx = mi;
        return ss_op_submit(o, j, ss_app_pick_worker(o->app));
    }
    ss_sess *s = sequence(o, v, &q);
    if (!s) {
        o->done = f->done;
        ss_job_free(j);
        return SS_OP_NOW;
    }
    j->kind = SS_JOB_STEP;
    j->sess = s; /* the reference from sequence() */
    ss_reg_unref(j->mv);
    j->mv = NULL; /* the session's version runs it */
    f->close_after = q.end;
    if (f->id[0]) {
        pthread_mutex_lock(&o->app->oip->mu);
        int rc2 = rec_seq(o->app, s, q.start, f->id, &j->batch);
        pthread_mutex_unlock(&o->app->oip->mu);
        if (rc2 != 0) {
            o->done = f->done;
            ss_job_free(j);
            return now_fail(o, SS_E_NOMEM, "out of memory");
        }
    }
    return ss_op_submit(o, j, s->worker);
}

/* ---- HTTP ---- */

int ss_oip_http_infer(ss_req *r) {
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, HEAD_HEADER);
    size_t head = r->len;
    if (h) {
        char *end;
        unsigned long long v = strtoull(h, &end, 10);
        if (!*h || *end || h[0] == '-')
            return ss_http_fail(r, SS_E_INVALID, HEAD_HEADER ": %.40s is not a byte count", h);
        if (v > r->len)
            return ss_http_fail(r, SS_E_INVALID,
                                HEAD_HEADER " %llu passes the end of the body (%zu bytes)", v,
                                r->len);
        head = (size_t)v;
    }
    if (ss_oip_infer(&r->op, head) == SS_OP_QUEUED) return MHD_YES;
    return ss_http_send(r, &r->op.reply);
}
