/* wire.c: encoders build a jansson tree or a protobuf-c message on the stack and pack it;
 * nothing here keeps state. */
#include "wire.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.pb-c.h"
#include "batch.h"

void ss_reply_clear(ss_reply *r) {
    free(r->body);
    memset(r, 0, sizeof *r);
}

void ss_reply_set(ss_reply *r, unsigned status, const char *ctype, void *body, size_t len) {
    free(r->body);
    r->status = status;
    r->ctype = ctype;
    r->body = body;
    r->len = len;
}

const char *ss_wire_code(unsigned status) {
    switch (status) {
    case 400:
        return "invalid_argument";
    case 401:
        return "unauthenticated";
    case 403:
        return "permission_denied";
    case 404:
        return "not_found";
    case 405:
        return "method_not_allowed";
    case 406:
        return "not_acceptable";
    case 409:
        return "conflict";
    case 413:
        return "too_large";
    case 415:
        return "unsupported_media_type";
    case 429:
        return "resource_exhausted";
    case 503:
        return "unavailable";
    default:
        return "internal";
    }
}

static void set_json(ss_reply *r, unsigned status, json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(7));
    json_decref(j);
    if (!s) {
        ss_reply_set(r, 500, "text/plain", NULL, 0);
        return;
    }
    ss_reply_set(r, status, SS_CT_JSON, s, strlen(s));
}

static void set_pb(ss_reply *r, unsigned status, const ProtobufCMessage *m) {
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(n ? n : 1);
    if (!b) {
        ss_reply_set(r, 500, "text/plain", NULL, 0);
        return;
    }
    protobuf_c_message_pack(m, b);
    ss_reply_set(r, status, SS_CT_PB, b, n);
}

void ss_reply_error(ss_reply *r, int pb, unsigned status, const char *code, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!code) code = ss_wire_code(status);
    if (pb) {
        Spikeserve__ErrorDetail d = SPIKESERVE__ERROR_DETAIL__INIT;
        Spikeserve__Error e = SPIKESERVE__ERROR__INIT;
        d.code = ss_pbstr(code);
        d.message = msg;
        e.error = &d;
        set_pb(r, status, &e.base);
    } else {
        set_json(r, status, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
    }
}

int ss_wire_session(ss_reply *r, int pb, unsigned status, ss_sess *s) {
    char created[40], active[40];
    pthread_mutex_lock(&s->mu);
    uint64_t t = s->t, last_seq = s->last_seq;
    uint32_t idle = s->idle_timeout_s;
    ss_util_rfc3339(s->created_ms, created, sizeof created);
    ss_util_rfc3339(s->active_ms, active, sizeof active);
    pthread_mutex_unlock(&s->mu);
    if (pb) {
        Spikeserve__SessionInfo i = SPIKESERVE__SESSION_INFO__INIT;
        i.session_id = s->id;
        i.model = ss_pbstr(s->model->name);
        i.has_model_version = i.has_idle_timeout_s = i.has_t = i.has_last_seq = i.has_worker = 1;
        i.model_version = s->model->version;
        i.idle_timeout_s = idle;
        i.t = t;
        i.last_seq = last_seq;
        i.created_at = created;
        i.last_active_at = active;
        i.worker = s->worker;
        set_pb(r, status, &i.base);
    } else {
        set_json(r, status,
                 json_pack("{s:s,s:s,s:i,s:i,s:I,s:I,s:s,s:s,s:i}", "session_id", s->id, "model",
                           s->model->name, "model_version", (json_int_t)s->model->version,
                           "idle_timeout_s", (json_int_t)idle, "t", (json_int_t)t, "last_seq",
                           (json_int_t)last_seq, "created_at", created, "last_active_at", active,
                           "worker", (json_int_t)s->worker));
    }
    return r->status == status ? 0 : -1;
}

static const char *enc_name(spk_encoding_kind k) {
    return k == SPK_ENC_RATE ? "rate" : k == SPK_ENC_LATENCY ? "latency" : "none";
}

/* JSON numbers must be finite; model constants are (the loader checks). */
static json_t *model_json(const spk_model *m) {
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
    return json_pack("{s:s,s:i,s:i,s:i,s:o,s:o,s:{s:s,s:i,s:i,s:f,s:f},s:s}", "name", m->name,
                     "version", (json_int_t)m->version, "n_in", (json_int_t)m->n_in, "n_out",
                     (json_int_t)spk_model_n_out(m), "layers", layers, "labels", labels, "encoding",
                     "kind", enc_name(e->kind), "steps", (json_int_t)e->steps, "warmup_steps",
                     (json_int_t)e->warmup_steps, "gain", (double)e->gain, "threshold",
                     (double)e->threshold, "description", m->description ? m->description : "");
}

/* Fills info and its arrays (layers/linfo/lptr: SPK_MAX_LAYERS + 1 entries). */
static void model_pb(const spk_model *m, Spikeserve__ModelInfo *info, Spikeserve__LayerInfo *linfo,
                     Spikeserve__LayerInfo **lptr, Spikeserve__Encoding *enc) {
    spikeserve__model_info__init(info);
    spikeserve__encoding__init(enc);
    info->name = ss_pbstr(m->name);
    info->has_version = info->has_n_in = info->has_n_out = 1;
    info->version = m->version;
    info->n_in = m->n_in;
    info->n_out = spk_model_n_out(m);
    size_t k = 0;
    for (uint32_t l = 0; l < m->n_layers; l++, k++) {
        const spk_layer *L = &m->layers[l];
        Spikeserve__LayerInfo *li = &linfo[k];
        spikeserve__layer_info__init(li);
        li->kind = "src";
        li->has_n_in = li->has_n = li->has_alpha = li->has_rho = li->has_r = li->has_r_s = 1;
        li->has_z_hyp = li->has_z_dep = li->has_theta = 1;
        li->n_in = L->n_in;
        li->n = L->n;
        li->alpha = L->alpha;
        li->rho = L->rho;
        li->r = L->r;
        li->r_s = L->r_s;
        li->z_hyp = L->z_hyp;
        li->z_dep = L->z_dep;
        li->theta = L->theta;
        lptr[k] = li;
    }
    if (m->has_readout) {
        Spikeserve__LayerInfo *li = &linfo[k];
        spikeserve__layer_info__init(li);
        li->kind = "readout";
        li->has_n_in = li->has_n = li->has_alpha = 1;
        li->n_in = m->readout.n_in;
        li->n = m->readout.n;
        li->alpha = m->readout.alpha;
        lptr[k++] = li;
    }
    info->n_layers = k;
    info->layers = lptr;
    info->n_labels = m->n_labels;
    info->labels = m->labels;
    enc->kind = (Spikeserve__Encoding__Kind)m->encoding.kind;
    enc->steps = m->encoding.steps;
    enc->warmup_steps = m->encoding.warmup_steps;
    enc->gain = m->encoding.gain;
    enc->threshold = m->encoding.threshold;
    info->encoding = enc;
    info->description = m->description ? m->description : "";
}

typedef struct {
    Spikeserve__ModelInfo info;
    Spikeserve__LayerInfo linfo[SPK_MAX_LAYERS + 1];
    Spikeserve__LayerInfo *lptr[SPK_MAX_LAYERS + 1];
    Spikeserve__Encoding enc;
} model_pb_buf;

int ss_wire_model(ss_reply *r, int pb, const spk_model *m) {
    if (!pb) {
        set_json(r, 200, model_json(m));
    } else {
        model_pb_buf *b = malloc(sizeof *b);
        if (!b) return -1;
        model_pb(m, &b->info, b->linfo, b->lptr, &b->enc);
        set_pb(r, 200, &b->info.base);
        free(b);
    }
    return r->status == 200 ? 0 : -1;
}

int ss_wire_models(ss_reply *r, int pb, spk_model *const *ms, size_t n) {
    if (!pb) {
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(a, model_json(ms[i]));
        set_json(r, 200, json_pack("{s:o}", "models", a));
        return r->status == 200 ? 0 : -1;
    }
    model_pb_buf *b = calloc(n ? n : 1, sizeof *b);
    Spikeserve__ModelInfo **ptrs = calloc(n ? n : 1, sizeof *ptrs);
    if (!b || !ptrs) {
        free(b);
        free(ptrs);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        model_pb(ms[i], &b[i].info, b[i].linfo, b[i].lptr, &b[i].enc);
        ptrs[i] = &b[i].info;
    }
    Spikeserve__ModelList list = SPIKESERVE__MODEL_LIST__INIT;
    list.n_models = n;
    list.models = ptrs;
    set_pb(r, 200, &list.base);
    free(b);
    free(ptrs);
    return r->status == 200 ? 0 : -1;
}

int ss_wire_open_req(const uint8_t *buf, size_t len, int pb, int *has_timeout, uint32_t *timeout,
                     char *err, size_t errlen) {
    *has_timeout = 0;
    if (len == 0) return 0;
    if (pb) {
        Spikeserve__OpenSessionRequest *q =
            spikeserve__open_session_request__unpack(NULL, len, buf);
        if (!q) {
            snprintf(err, errlen, "body: not a valid spikeserve.OpenSessionRequest");
            return -1;
        }
        if (q->has_idle_timeout_s) {
            *has_timeout = 1;
            *timeout = q->idle_timeout_s;
        }
        spikeserve__open_session_request__free_unpacked(q, NULL);
        return 0;
    }
    json_error_t je;
    json_t *j = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!j || !json_is_object(j)) {
        snprintf(err, errlen, "body: invalid JSON object%s%s", j ? "" : ": ", j ? "" : je.text);
        json_decref(j);
        return -1;
    }
    json_t *t = json_object_get(j, "idle_timeout_s");
    int rc = 0;
    if (t) {
        if (!json_is_integer(t) || json_integer_value(t) < 0 ||
            json_integer_value(t) > UINT32_MAX) {
            snprintf(err, errlen, "idle_timeout_s: must be an integer in [0, 4294967295]");
            rc = -1;
        } else {
            *has_timeout = 1;
            *timeout = (uint32_t)json_integer_value(t);
        }
    }
    json_decref(j);
    return rc;
}

static int check_values(const float *v, size_t n, const spk_model *m, char *err, size_t errlen) {
    if (n != m->n_in) {
        snprintf(err, errlen, "values: %zu values, expected %u (the model's input size)", n,
                 m->n_in);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]) || v[i] < 0 || v[i] > 1) {
            snprintf(err, errlen, "values[%zu]: %g not in [0, 1]", i, (double)v[i]);
            return -1;
        }
    return 0;
}

int ss_wire_classify_req(const uint8_t *buf, size_t len, int pb, const spk_model *m,
                         ss_classify_req *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    out->outputs = ss_outputs_default(m);
    unsigned outs = 0;
    if (pb) {
        Spikeserve__ClassifyRequest *q = spikeserve__classify_request__unpack(NULL, len, buf);
        if (!q) {
            snprintf(err, errlen, "body: not a valid spikeserve.ClassifyRequest");
            return -1;
        }
        int rc = check_values(q->values, q->n_values, m, err, errlen);
        for (size_t i = 0; rc == 0 && i < q->n_outputs; i++) {
            unsigned f = ss_output_bit(q->outputs[i], strlen(q->outputs[i]));
            if (!f) {
                snprintf(err, errlen, "outputs[%zu]: unknown output \"%.40s\"", i, q->outputs[i]);
                rc = -1;
            }
            outs |= f;
        }
        if (rc == 0) {
            out->values = malloc(q->n_values * sizeof(float) + 1);
            if (!out->values) rc = -1, snprintf(err, errlen, "out of memory");
        }
        if (rc == 0) {
            memcpy(out->values, q->values, q->n_values * sizeof(float));
            out->n_values = (uint32_t)q->n_values;
            out->seed = q->has_seed ? q->seed : 0;
            if (outs) out->outputs = outs;
        }
        spikeserve__classify_request__free_unpacked(q, NULL);
        return rc;
    }
    json_error_t je;
    json_t *j = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!j || !json_is_object(j)) {
        snprintf(err, errlen, "body: invalid JSON object%s%s", j ? "" : ": ", j ? "" : je.text);
        json_decref(j);
        return -1;
    }
    int rc = 0;
    json_t *v = json_object_get(j, "values"), *seed = json_object_get(j, "seed"),
           *o = json_object_get(j, "outputs");
    if (!json_is_array(v)) {
        snprintf(err, errlen, "values: missing or not an array");
        rc = -1;
    }
    size_t n = rc ? 0 : json_array_size(v);
    if (rc == 0 && n != m->n_in) {
        snprintf(err, errlen, "values: %zu values, expected %u (the model's input size)", n,
                 m->n_in);
        rc = -1;
    }
    if (rc == 0 && !(out->values = malloc(n * sizeof(float) + 1))) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *x = json_array_get(v, i);
        if (!json_is_number(x)) {
            snprintf(err, errlen, "values[%zu]: not a number", i);
            rc = -1;
        } else {
            out->values[i] = (float)json_number_value(x);
        }
    }
    if (rc == 0) rc = check_values(out->values, n, m, err, errlen);
    if (rc == 0 && seed) {
        if (!json_is_integer(seed) || json_integer_value(seed) < 0) {
            snprintf(err, errlen, "seed: must be a non-negative integer");
            rc = -1;
        } else {
            out->seed = (uint64_t)json_integer_value(seed);
        }
    }
    if (rc == 0 && o) {
        if (!json_is_array(o)) {
            snprintf(err, errlen, "outputs: not an array");
            rc = -1;
        }
        for (size_t i = 0; rc == 0 && i < json_array_size(o); i++) {
            const char *s = json_string_value(json_array_get(o, i));
            unsigned f = s ? ss_output_bit(s, strlen(s)) : 0;
            if (!f) {
                snprintf(err, errlen, "outputs[%zu]: unknown output", i);
                rc = -1;
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
