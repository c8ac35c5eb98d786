/* scwire.c: the client's bodies in JSON (jansson) and protobuf (proto/api.proto).
 *
 * Decoders are lenient where the server may grow (unknown fields are ignored, a missing
 * number reads as 0) and strict where a caller would be misled (a session without an id, a
 * result that is not an object): those are -1, and the caller reports an SC_EPROTO.
 */
#include "scwire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.pb-c.h"

uint64_t scw_u64(json_t *o, const char *k, int *has) {
    json_t *v = json_object_get(o, k);
    if (has) *has = json_is_integer(v);
    if (json_is_integer(v)) return (uint64_t)json_integer_value(v);
    if (json_is_real(v)) return (uint64_t)json_real_value(v);
    return 0;
}
static void jstr(json_t *o, const char *k, char *dst, size_t cap) {
    const char *s = json_string_value(json_object_get(o, k));
    snprintf(dst, cap, "%s", s ? s : "");
}
static char *jdup(json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? strdup(s) : NULL;
}

/* ---- models ---- */

void sc_model_free(sc_model *m) {
    if (!m) return;
    free(m->name);
    free(m->description);
    free(m->layers);
    for (size_t i = 0; i < m->n_labels; i++)
        free(m->labels[i]);
    free(m->labels);
    memset(m, 0, sizeof *m);
}

void sc_models_free(sc_model *ms, size_t n) {
    for (size_t i = 0; ms && i < n; i++)
        sc_model_free(&ms[i]);
    free(ms);
}

static int enc_kind(json_t *v) {
    if (json_is_integer(v)) return (int)json_integer_value(v);
    const char *s = json_string_value(v);
    if (!s) return SC_ENC_NONE;
    if (strcasecmp(s, "rate") == 0) return SC_ENC_RATE;
    if (strcasecmp(s, "latency") == 0) return SC_ENC_LATENCY;
    return SC_ENC_NONE;
}

static int model_from_json(json_t *o, sc_model *m) {
    memset(m, 0, sizeof *m);
    if (!json_is_object(o)) return -1;
    m->name = jdup(o, "name");
    m->description = jdup(o, "description");
    m->version = (uint32_t)scw_u64(o, "version", NULL);
    m->n_in = (uint32_t)scw_u64(o, "n_in", NULL);
    m->n_out = (uint32_t)scw_u64(o, "n_out", NULL);
    json_t *ls = json_object_get(o, "layers"), *lb = json_object_get(o, "labels");
    if (json_array_size(ls)) {
        if (!(m->layers = calloc(json_array_size(ls), sizeof *m->layers))) return -1;
        for (size_t i = 0; i < json_array_size(ls); i++) {
            json_t *l = json_array_get(ls, i);
            jstr(l, "kind", m->layers[i].kind, sizeof m->layers[i].kind);
            m->layers[i].n_in = (uint32_t)scw_u64(l, "n_in", NULL);
            m->layers[i].n = (uint32_t)scw_u64(l, "n", NULL);
            m->n_layers++;
        }
    }
    if (json_array_size(lb)) {
        if (!(m->labels = calloc(json_array_size(lb), sizeof *m->labels))) return -1;
        for (size_t i = 0; i < json_array_size(lb); i++) {
            const char *s = json_string_value(json_array_get(lb, i));
            if (!(m->labels[i] = strdup(s ? s : ""))) return -1;
            m->n_labels++;
        }
    }
    json_t *e = json_object_get(o, "encoding");
    if (json_is_object(e)) {
        m->enc_kind = enc_kind(json_object_get(e, "kind"));
        m->enc_steps = (uint32_t)scw_u64(e, "steps", NULL);
        m->enc_warmup_steps = (uint32_t)scw_u64(e, "warmup_steps", NULL);
        m->enc_gain = (float)json_number_value(json_object_get(e, "gain"));
        m->enc_threshold = (float)json_number_value(json_object_get(e, "threshold"));
    }
    return m->name ? 0 : -1;
}

static int model_from_pb(const Spikeserve__ModelInfo *p, sc_model *m) {
    memset(m, 0, sizeof *m);
    m->name = strdup(p->name ? p->name : "");
    m->description = p->description ? strdup(p->description) : NULL;
    m->version = p->version;
    m->n_in = p->n_in;
    m->n_out = p->n_out;
    if (p->n_layers && !(m->layers = calloc(p->n_layers, sizeof *m->layers))) return -1;
    for (size_t i = 0; i < p->n_layers; i++, m->n_layers++) {
        snprintf(m->layers[i].kind, sizeof m->layers[i].kind, "%s",
                 p->layers[i]->kind ? p->layers[i]->kind : "");
        m->layers[i].n_in = p->layers[i]->n_in;
        m->layers[i].n = p->layers[i]->n;
    }
    if (p->n_labels && !(m->labels = calloc(p->n_labels, sizeof *m->labels))) return -1;
    for (size_t i = 0; i < p->n_labels; i++, m->n_labels++)
        if (!(m->labels[i] = strdup(p->labels[i]))) return -1;
    if (p->encoding) {
        m->enc_kind = (int)p->encoding->kind;
        m->enc_steps = p->encoding->steps;
        m->enc_warmup_steps = p->encoding->warmup_steps;
        m->enc_gain = p->encoding->gain;
        m->enc_threshold = p->encoding->threshold;
    }
    return m->name ? 0 : -1;
}

int scw_models(int pb, const char *buf, size_t len, sc_model **out, size_t *n) {
    int rc = 0;
    *out = NULL;
    *n = 0;
    if (pb) {
        Spikeserve__ModelList *l = spikeserve__model_list__unpack(NULL, len, (const uint8_t *)buf);
        if (!l) return -1;
        if (l->n_models && !(*out = calloc(l->n_models, sizeof **out))) rc = -2;
        for (size_t i = 0; rc == 0 && i < l->n_models; i++, (*n)++)
            rc = model_from_pb(l->models[i], &(*out)[i]);
        spikeserve__model_list__free_unpacked(l, NULL);
    } else {
        json_t *j = json_loadb(buf, len, 0, NULL);
        json_t *arr = json_is_array(j) ? j : json_object_get(j, "models");
        if (!json_is_array(arr)) rc = -1;
        size_t m = json_array_size(arr);
        if (rc == 0 && m && !(*out = calloc(m, sizeof **out))) rc = -2;
        for (size_t i = 0; rc == 0 && i < m; i++, (*n)++)
            rc = model_from_json(json_array_get(arr, i), &(*out)[i]);
        json_decref(j);
    }
    if (rc < 0) {
        sc_models_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int scw_model(int pb, const char *buf, size_t len, sc_model *out) {
    int rc;
    memset(out, 0, sizeof *out);
    if (pb) {
        Spikeserve__ModelInfo *p = spikeserve__model_info__unpack(NULL, len, (const uint8_t *)buf);
        rc = p ? model_from_pb(p, out) : -1;
        if (p) spikeserve__model_info__free_unpacked(p, NULL);
    } else {
        json_t *j = json_loadb(buf, len, 0, NULL);
        rc = model_from_json(j, out);
        json_decref(j);
    }
    if (rc < 0) sc_model_free(out);
    return rc;
}

/* ---- sessions ---- */

int scw_session(int pb, const char *buf, size_t len, sc_session *s) {
    memset(s, 0, sizeof *s);
    if (pb) {
        Spikeserve__SessionInfo *p =
            spikeserve__session_info__unpack(NULL, len, (const uint8_t *)buf);
        if (!p || !p->session_id) {
            if (p) spikeserve__session_info__free_unpacked(p, NULL);
            return -1;
        }
        snprintf(s->session_id, sizeof s->session_id, "%s", p->session_id);
        snprintf(s->model, sizeof s->model, "%s", p->model ? p->model : "");
        snprintf(s->created_at, sizeof s->created_at, "%s", p->created_at ? p->created_at : "");
        snprintf(s->last_active_at, sizeof s->last_active_at, "%s",
                 p->last_active_at ? p->last_active_at : "");
        s->model_version = p->model_version;
        s->idle_timeout_s = p->idle_timeout_s;
        s->t = p->t;
        s->has_last_seq = p->has_last_seq;
        s->last_seq = p->last_seq;
        spikeserve__session_info__free_unpacked(p, NULL);
        return 0;
    }
    json_t *j = json_loadb(buf, len, 0, NULL);
    if (!json_is_string(json_object_get(j, "session_id"))) {
        json_decref(j);
        return -1;
    }
    jstr(j, "session_id", s->session_id, sizeof s->session_id);
    jstr(j, "model", s->model, sizeof s->model);
    jstr(j, "created_at", s->created_at, sizeof s->created_at);
    jstr(j, "last_active_at", s->last_active_at, sizeof s->last_active_at);
    s->model_version = (uint32_t)scw_u64(j, "model_version", NULL);
    s->idle_timeout_s = (uint32_t)scw_u64(j, "idle_timeout_s", NULL);
    s->t = scw_u64(j, "t", NULL);
    s->last_seq = scw_u64(j, "last_seq", &s->has_last_seq);
    json_decref(j);
    return 0;
}

/* ---- batches and results ---- */

void sc_result_free(sc_result *r) {
    if (!r) return;
    free(r->spikes);
    free(r->readout);
    free(r->label);
    memset(r, 0, sizeof *r);
}

static json_t *outputs_json(unsigned o) {
    static const char *names[] = {"spikes", "readout", "readout_all", "layers"};
    json_t *a = json_array();
    for (int i = 0; i < 4; i++)
        if (o & (1u << i)) json_array_append_new(a, json_string(names[i]));
    return a;
}

static json_t *batch_to_json(const sc_batch *b) {
    json_t *j = json_object();
    if (b->has_seq) json_object_set_new(j, "seq", json_integer((json_int_t)b->seq));
    json_object_set_new(j, "steps", json_integer(b->steps));
    if (b->dense) {
        json_t *rows = json_array();
        for (uint32_t t = 0; t < b->steps; t++) {
            json_t *row = json_array();
            for (uint32_t i = 0; i < b->dense_n; i++)
                json_array_append_new(row, json_real(b->dense[(size_t)t * b->dense_n + i]));
            json_array_append_new(rows, row);
        }
        json_object_set_new(j, "dense", rows);
    } else {
        json_t *ev = json_array();
        for (size_t i = 0; i < b->n_events; i++) {
            const sc_event *e = &b->events[i];
            json_t *x = json_pack("[II]", (json_int_t)e->step, (json_int_t)e->input);
            if (e->value != 1.0f) json_array_append_new(x, json_real(e->value));
            json_array_append_new(ev, x);
        }
        json_object_set_new(j, "events", ev);
    }
    if (b->outputs) json_object_set_new(j, "outputs", outputs_json(b->outputs));
    return j;
}

char *scw_batch_json(const sc_batch *b) {
    json_t *j = batch_to_json(b);
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(j);
    return s;
}

uint8_t *scw_batch_pb(const sc_batch *b, size_t *len) {
    static const char *names[] = {"spikes", "readout", "readout_all", "layers"};
    Spikeserve__SpikeBatch m = SPIKESERVE__SPIKE_BATCH__INIT;
    Spikeserve__InputEvent *ev = NULL, **evp = NULL;
    Spikeserve__DenseRow *rows = NULL, **rowp = NULL;
    char *outs[4];
    uint8_t *buf = NULL;
    m.has_seq = b->has_seq;
    m.seq = b->seq;
    m.has_steps = 1;
    m.steps = b->steps;
    if (b->dense) {
        rows = calloc(b->steps ? b->steps : 1, sizeof *rows);
        rowp = calloc(b->steps ? b->steps : 1, sizeof *rowp);
        if (!rows || !rowp) goto done;
        for (uint32_t t = 0; t < b->steps; t++) {
            spikeserve__dense_row__init(&rows[t]);
            rows[t].n_values = b->dense_n;
            rows[t].values = (float *)(uintptr_t)(b->dense + (size_t)t * b->dense_n);
            rowp[t] = &rows[t];
        }
        m.n_dense = b->steps;
        m.dense = rowp;
    } else if (b->n_events) {
        ev = calloc(b->n_events, sizeof *ev);
        evp = calloc(b->n_events, sizeof *evp);
        if (!ev || !evp) goto done;
        for (size_t i = 0; i < b->n_events; i++) {
            spikeserve__input_event__init(&ev[i]);
            ev[i].has_step = ev[i].has_input = 1;
            ev[i].step = b->events[i].step;
            ev[i].input = b->events[i].input;
            ev[i].has_value = b->events[i].value != 1.0f;
            ev[i].value = b->events[i].value;
            evp[i] = &ev[i];
        }
        m.n_events = b->n_events;
        m.events = evp;
    }
    for (int i = 0; i < 4; i++)
        if (b->outputs & (1u << i)) outs[m.n_outputs++] = (char *)(uintptr_t)names[i];
    m.outputs = outs;
    *len = spikeserve__spike_batch__get_packed_size(&m);
    if ((buf = malloc(*len ? *len : 1))) spikeserve__spike_batch__pack(&m, buf);
done:
    free(ev);
    free(evp);
    free(rows);
    free(rowp);
    return buf;
}

int scw_result_json(const char *json, size_t len, sc_result *r, char *code, size_t codelen,
                    char *msg, size_t msglen) {
    json_error_t je;
    memset(r, 0, sizeof *r);
    json_t *j = json_loadb(json, len, 0, &je);
    if (!json_is_object(j)) {
        json_decref(j);
        snprintf(msg, msglen, "step result: not a JSON object (%s)", je.text);
        return -1;
    }
    json_t *e = json_object_get(j, "error");
    if (e) {
        const char *c = json_string_value(json_object_get(e, "code"));
        const char *m = json_string_value(json_object_get(e, "message"));
        snprintf(code, codelen, "%s", c ? c : "");
        snprintf(msg, msglen, "%s: %s", c ? c : "error", m ? m : "(no message)");
        json_decref(j);
        return -3;
    }
    jstr(j, "session_id", r->session_id, sizeof r->session_id);
    r->seq = scw_u64(j, "seq", &r->has_seq);
    r->t0 = scw_u64(j, "t0", NULL);
    r->steps = (uint32_t)scw_u64(j, "steps", NULL);
    json_t *sp = json_object_get(j, "spikes"), *ro = json_object_get(j, "readout");
    size_t n = json_array_size(sp);
    if (n && !(r->spikes = malloc(n * sizeof *r->spikes))) goto nomem;
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_array_get(sp, i);
        sc_spike *s = &r->spikes[r->n_spikes];
        if (json_array_size(x) < 3) continue;
        s->step = (uint32_t)json_integer_value(json_array_get(x, 0));
        s->neuron = (uint32_t)json_integer_value(json_array_get(x, 1));
        s->value = (float)json_number_value(json_array_get(x, 2));
        r->n_spikes++;
    }
    n = json_array_size(ro);
    if (n && !(r->readout = malloc(n * sizeof *r->readout))) goto nomem;
    for (size_t i = 0; i < n; i++)
        r->readout[r->n_readout++] = (float)json_number_value(json_array_get(ro, i));
    json_t *p = json_object_get(j, "prediction");
    if (json_is_object(p)) {
        r->has_prediction = 1;
        r->prediction = (uint32_t)scw_u64(p, "index", NULL);
        r->label = jdup(p, "label");
    }
    json_decref(j);
    return 0;
nomem:
    json_decref(j);
    sc_result_free(r);
    snprintf(msg, msglen, "out of memory");
    return -2;
}

int scw_result_pb(const uint8_t *buf, size_t len, sc_result *r) {
    memset(r, 0, sizeof *r);
    Spikeserve__StepResult *p = spikeserve__step_result__unpack(NULL, len, buf);
    if (!p) return -1;
    snprintf(r->session_id, sizeof r->session_id, "%s", p->session_id ? p->session_id : "");
    r->has_seq = p->has_seq;
    r->seq = p->seq;
    r->t0 = p->t0;
    r->steps = p->steps;
    if (p->n_spikes && !(r->spikes = malloc(p->n_spikes * sizeof *r->spikes))) goto nomem;
    for (size_t i = 0; i < p->n_spikes; i++, r->n_spikes++)
        r->spikes[i] = (sc_spike){p->spikes[i]->step, p->spikes[i]->neuron, p->spikes[i]->value};
    if (p->n_readout && !(r->readout = malloc(p->n_readout * sizeof *r->readout))) goto nomem;
    if (p->n_readout) memcpy(r->readout, p->readout, p->n_readout * sizeof *r->readout);
    r->n_readout = p->n_readout;
    if (p->prediction) {
        r->has_prediction = 1;
        r->prediction = p->prediction->index;
        r->label = p->prediction->label ? strdup(p->prediction->label) : NULL;
    }
    spikeserve__step_result__free_unpacked(p, NULL);
    return 0;
nomem:
    spikeserve__step_result__free_unpacked(p, NULL);
    sc_result_free(r);
    return -2;
}

/* ---- requests ---- */

void *scw_open(int pb, uint32_t idle_timeout_s, uint32_t version, size_t *len) {
    if (pb) {
        Spikeserve__OpenSessionRequest r = SPIKESERVE__OPEN_SESSION_REQUEST__INIT;
        r.has_idle_timeout_s = idle_timeout_s > 0;
        r.idle_timeout_s = idle_timeout_s;
        r.has_model_version = version > 0;
        r.model_version = version;
        *len = spikeserve__open_session_request__get_packed_size(&r);
        uint8_t *buf = malloc(*len ? *len : 1);
        if (buf) spikeserve__open_session_request__pack(&r, buf);
        return buf;
    }
    char *body = malloc(64);
    if (!body) return NULL;
    int n = snprintf(body, 64, "{");
    if (idle_timeout_s) n += snprintf(body + n, 64 - n, "\"idle_timeout_s\": %u", idle_timeout_s);
    if (version)
        n += snprintf(body + n, 64 - n, "%s\"version\": %u", idle_timeout_s ? ", " : "", version);
    snprintf(body + n, 64 - n, "}");
    *len = strlen(body);
    return body;
}

void *scw_classify(int pb, const float *x, uint32_t n, uint64_t seed, size_t *len) {
    void *body = NULL;
    if (pb) {
        Spikeserve__ClassifyRequest m = SPIKESERVE__CLASSIFY_REQUEST__INIT;
        m.n_values = n;
        m.values = (float *)(uintptr_t)x;
        m.has_seed = 1;
        m.seed = seed;
        *len = spikeserve__classify_request__get_packed_size(&m);
        if ((body = malloc(*len ? *len : 1))) spikeserve__classify_request__pack(&m, body);
        return body;
    }
    json_t *v = json_array();
    for (uint32_t i = 0; i < n; i++)
        json_array_append_new(v, json_real(x[i]));
    json_t *j = json_pack("{s:o, s:I}", "values", v, "seed", (json_int_t)seed);
    body = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    if (body) *len = strlen(body);
    json_decref(j);
    return body;
}
