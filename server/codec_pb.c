/* codec_pb.c: the protobuf codec (proto/api.proto). Messages are built on the stack or in
 * one allocation pointing into the caller's data, packed, and dropped: nothing is copied
 * but the packed bytes. Batches are batch.c's (a one-pass reader first, protobuf-c for
 * everything it declines and for every error message). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer.h"
#include "api.pb-c.h"
#include "codec.h"

/* ---- protobuf result ---- */

/* protobuf-c's structs take mutable pointers to what they only read */
static float *unconst_f(const float *f) {
    union {
        const float *c;
        float *m;
    } u = {f};
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

    res.session_id = r->session_id ? ss_pbstr(r->session_id) : NULL;
    res.has_seq = r->has_seq;
    res.seq = r->seq;
    res.has_t0 = res.has_steps = 1;
    res.t0 = r->t0;
    res.steps = r->steps;
    if (r->outputs & SS_OUT_SPIKES) {
        if (!(res.spikes = pb_spikes(&o->spikes))) goto fail;
        res.n_spikes = o->spikes.len;
    }
    const float *last = ss_result_last_readout(r);
    if ((r->outputs & SS_OUT_READOUT) && last) {
        res.readout = unconst_f(last);
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
            rows[t].values = unconst_f(o->readout) + (size_t)t * m->readout.n;
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

/* ---- a stored answer back from a snapshot ---- */

ss_answer *ss_answer_from_pb(const uint8_t *buf, size_t len, const spk_model *m, unsigned outputs) {
    Spikeserve__StepResult *r = spikeserve__step_result__unpack(NULL, len, buf);
    if (!r) return NULL;
    unsigned outs = outputs;
    if (!outs) /* a snapshot from before masks were kept: what the answer holds */
        outs = SS_OUT_SPIKES | (r->n_readout ? SS_OUT_READOUT : 0) |
               (r->n_readout_steps ? SS_OUT_READOUT_ALL : 0) | (r->n_layers ? SS_OUT_LAYERS : 0);
    size_t total = r->n_spikes, nro = m->has_readout ? m->readout.n : 0;
    for (size_t l = 0; l < r->n_layers; l++)
        total += r->layers[l]->n_spikes;
    size_t ro_n = !nro ? 0 : r->n_readout_steps ? nro * r->n_readout_steps : r->n_readout ? nro : 0;
    int layers = (outs & SS_OUT_LAYERS) != 0;
    ss_answer head = {
        .has_seq = r->has_seq, .seq = r->seq, .t0 = r->t0, .steps = r->steps, .outputs = outs};
    ss_answer *a = ss_answer_alloc(&head, total, layers ? m->n_layers : 0, ro_n);
    if (!a) goto done;
    spk_spike *sp = a->out.spikes.buf;
    for (size_t i = 0; i < r->n_spikes; i++)
        sp[i] = (spk_spike){r->spikes[i]->step, r->spikes[i]->neuron, r->spikes[i]->value};
    a->out.spikes.len = a->out.spikes.cap = r->n_spikes;
    sp += r->n_spikes;
    for (size_t l = 0; layers && l < r->n_layers; l++) {
        uint32_t li = r->layers[l]->layer;
        if (li >= m->n_layers) continue;
        spk_spike_buf *lb = &a->out.layers[li];
        lb->buf = sp;
        for (size_t i = 0; i < r->layers[l]->n_spikes; i++) {
            Spikeserve__OutputSpike *q = r->layers[l]->spikes[i];
            *sp++ = (spk_spike){q->step, q->neuron, q->value};
        }
        lb->len = lb->cap = (size_t)(sp - lb->buf);
    }
    if (ro_n && r->n_readout_steps) {
        for (size_t st = 0; st < r->n_readout_steps; st++)
            for (size_t i = 0; i < nro && i < r->readout_steps[st]->n_values; i++)
                a->out.readout[st * nro + i] = r->readout_steps[st]->values[i];
        a->out.readout_every_step = 1;
        if (a->steps != r->n_readout_steps) { /* not a shape this server writes */
            ss_answer_free(a);
            a = NULL;
        }
    } else if (ro_n) {
        for (size_t i = 0; i < nro && i < r->n_readout; i++)
            a->out.readout[i] = r->readout[i];
    }
done:
    spikeserve__step_result__free_unpacked(r, NULL);
    return a;
}

/* ---- the small bodies ---- */

static uint8_t *pack(const ProtobufCMessage *m, size_t *len) {
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(n ? n : 1);
    if (!b) return NULL;
    protobuf_c_message_pack(m, b);
    *len = n;
    return b;
}

static uint8_t *pb_error(const char *code, const char *message, size_t *len) {
    Spikeserve__ErrorDetail d = SPIKESERVE__ERROR_DETAIL__INIT;
    Spikeserve__Error e = SPIKESERVE__ERROR__INIT;
    d.code = ss_pbstr(code);
    d.message = ss_pbstr(message);
    e.error = &d;
    return pack(&e.base, len);
}

static uint8_t *pb_session(const ss_sess_info *s, size_t *len) {
    Spikeserve__SessionInfo i = SPIKESERVE__SESSION_INFO__INIT;
    i.session_id = ss_pbstr(s->id);
    i.model = ss_pbstr(s->model);
    i.has_model_version = i.has_idle_timeout_s = i.has_t = i.has_last_seq = i.has_worker = 1;
    i.model_version = s->model_version;
    i.idle_timeout_s = s->idle_timeout_s;
    i.t = s->t;
    i.last_seq = s->last_seq;
    i.created_at = ss_pbstr(s->created_at);
    i.last_active_at = ss_pbstr(s->last_active_at);
    i.worker = s->worker;
    return pack(&i.base, len);
}

typedef struct {
    Spikeserve__ModelInfo info;
    Spikeserve__LayerInfo linfo[SPK_MAX_LAYERS + 1];
    Spikeserve__LayerInfo *lptr[SPK_MAX_LAYERS + 1];
    Spikeserve__Encoding enc;
} model_msg;

/* b's message points into m (nothing copied). */
static void model_fill(const spk_model *m, model_msg *b) {
    Spikeserve__ModelInfo *info = &b->info;
    spikeserve__model_info__init(info);
    spikeserve__encoding__init(&b->enc);
    info->name = ss_pbstr(m->name);
    info->has_version = info->has_n_in = info->has_n_out = 1;
    info->version = m->version;
    info->n_in = m->n_in;
    info->n_out = spk_model_n_out(m);
    size_t k = 0;
    for (uint32_t l = 0; l < m->n_layers; l++, k++) {
        const spk_layer *L = &m->layers[l];
        Spikeserve__LayerInfo *li = &b->linfo[k];
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
        b->lptr[k] = li;
    }
    if (m->has_readout) {
        Spikeserve__LayerInfo *li = &b->linfo[k];
        spikeserve__layer_info__init(li);
        li->kind = "readout";
        li->has_n_in = li->has_n = li->has_alpha = 1;
        li->n_in = m->readout.n_in;
        li->n = m->readout.n;
        li->alpha = m->readout.alpha;
        b->lptr[k++] = li;
    }
    info->n_layers = k;
    info->layers = b->lptr;
    info->n_labels = m->n_labels;
    info->labels = m->labels;
    b->enc.kind = (Spikeserve__Encoding__Kind)m->encoding.kind;
    b->enc.steps = m->encoding.steps;
    b->enc.warmup_steps = m->encoding.warmup_steps;
    b->enc.gain = m->encoding.gain;
    b->enc.threshold = m->encoding.threshold;
    info->encoding = &b->enc;
    info->description = m->description ? m->description : "";
    info->numerics = ss_pbstr(m->numerics);
}

static uint8_t *pb_model(const spk_model *m, size_t *len) {
    model_msg *b = malloc(sizeof *b);
    if (!b) return NULL;
    model_fill(m, b);
    uint8_t *out = pack(&b->info.base, len);
    free(b);
    return out;
}

static uint8_t *pb_models(spk_model *const *ms, size_t n, size_t *len) {
    model_msg *b = calloc(n ? n : 1, sizeof *b);
    Spikeserve__ModelInfo **ptrs = calloc(n ? n : 1, sizeof *ptrs);
    uint8_t *out = NULL;
    if (b && ptrs) {
        for (size_t i = 0; i < n; i++) {
            model_fill(ms[i], &b[i]);
            ptrs[i] = &b[i].info;
        }
        Spikeserve__ModelList list = SPIKESERVE__MODEL_LIST__INIT;
        list.n_models = n;
        list.models = ptrs;
        out = pack(&list.base, len);
    }
    free(b);
    free(ptrs);
    return out;
}

static int pb_open_req(const uint8_t *buf, size_t len, ss_open_req *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (len == 0) return 0;
    Spikeserve__OpenSessionRequest *q = spikeserve__open_session_request__unpack(NULL, len, buf);
    if (!q) {
        snprintf(err, errlen, "body: not a valid spikeserve.OpenSessionRequest");
        return SS_E_INVALID;
    }
    out->has_timeout = q->has_idle_timeout_s;
    out->idle_timeout_s = q->idle_timeout_s;
    out->version = q->has_model_version ? q->model_version : 0;
    int bad = q->has_model_version && q->model_version == 0;
    spikeserve__open_session_request__free_unpacked(q, NULL);
    if (bad) {
        snprintf(err, errlen, "model_version: must be a model version, an integer >= 1");
        return SS_E_INVALID;
    }
    return 0;
}

static int pb_classify_req(const uint8_t *buf, size_t len, const spk_model *m, ss_classify_req *out,
                           char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    out->outputs = ss_outputs_default(m);
    Spikeserve__ClassifyRequest *q = spikeserve__classify_request__unpack(NULL, len, buf);
    if (!q) {
        snprintf(err, errlen, "body: not a valid spikeserve.ClassifyRequest");
        return SS_E_INVALID;
    }
    unsigned outs = 0;
    int rc = ss_classify_check(q->values, q->n_values, m, err, errlen);
    for (size_t i = 0; rc == 0 && i < q->n_outputs; i++) {
        unsigned f = ss_output_bit(q->outputs[i], strlen(q->outputs[i]));
        if (!f) {
            snprintf(err, errlen, "outputs[%zu]: unknown output \"%.40s\"", i, q->outputs[i]);
            rc = SS_E_INVALID;
        }
        outs |= f;
    }
    if (rc == 0 && !(out->values = malloc(q->n_values * sizeof(float) + 1))) {
        snprintf(err, errlen, "out of memory");
        rc = SS_E_NOMEM;
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

static int pb_batch(const uint8_t *buf, size_t len, const spk_model *m, const ss_limits *lim,
                    ss_batch *out, char *err, size_t errlen) {
    return ss_batch_from_pb(buf ? buf : (const uint8_t *)"", len, m, lim, out, err, errlen);
}

const ss_codec ss_codec_pb = {
    "protobuf",   SS_CT_PB, pb_batch,   pb_open_req, pb_classify_req,
    ss_result_pb, pb_error, pb_session, pb_model,    pb_models,
};
