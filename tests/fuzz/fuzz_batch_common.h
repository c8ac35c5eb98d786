/* fuzz_batch_common.h: shared by fuzz_batch_json.c and fuzz_batch_pb.c.
 *
 * A fixed small model (6 inputs, SRC layers of 5 and 4 neurons, a 3-output readout with
 * labels) is built in-process once. Every input the decoder accepts is then stepped on a
 * fresh state and encoded both ways; the step must succeed (the decoder promised a valid
 * input), the JSON must parse and the protobuf must unpack. Anything else aborts. */
#ifndef FUZZ_BATCH_COMMON_H
#define FUZZ_BATCH_COMMON_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.pb-c.h"
#include "batch.h"
#include "codec.h"
#include "model.pb-c.h"
#include "registry.h"
#include "state.h"
#include "step.h"

static spk_model *fz_model;
static ss_reg *fz_reg; /* lists fz_model (sessions and snapshots need a version) */
static ss_mver *fz_mv;
static spk_state *fz_state;
static spk_scratch *fz_scratch;
static const ss_limits fz_limits = {64, 512};

static void fz_die(const char *what, const char *detail) {
    fprintf(stderr, "fuzz_batch: %s: %s\n", what, detail ? detail : "");
    abort();
}

static void fz_init(void) {
    if (fz_model) return;
    enum { NI = 6, N0 = 5, N1 = 4, NO = 3 };
    float w0[N0 * NI], w1[N1 * N0], wo[NO * N1], b0[N0], b1[N1], bo[NO] = {0.1f, 0, -0.1f};
    for (int i = 0; i < N0 * NI; i++)
        w0[i] = 1.5f + 0.5f * (float)(i % 3);
    for (int i = 0; i < N1 * N0; i++)
        w1[i] = 2.0f - 0.25f * (float)(i % 4);
    for (int i = 0; i < NO * N1; i++)
        wo[i] = 0.3f * (float)(i % 5) - 0.5f;
    for (int i = 0; i < N0; i++)
        b0[i] = -6;
    for (int i = 0; i < N1; i++)
        b1[i] = -6;
    Spikeserve__SrcLayer l0, l1;
    Spikeserve__SrcLayer *ls[2] = {&l0, &l1};
    float *ws[2] = {w0, w1}, *bs[2] = {b0, b1};
    uint32_t nin[2] = {NI, N0}, n[2] = {N0, N1};
    for (int k = 0; k < 2; k++) {
        spikeserve__src_layer__init(ls[k]);
        ls[k]->n_in = nin[k];
        ls[k]->n = n[k];
        ls[k]->n_weights = (size_t)n[k] * nin[k];
        ls[k]->weights = ws[k];
        ls[k]->n_b_h = n[k];
        ls[k]->b_h = bs[k];
        ls[k]->alpha = 0.9f;
        ls[k]->rho = 3;
        ls[k]->r = 2;
        ls[k]->r_s = -7;
        ls[k]->z_hyp = 0.9f;
        ls[k]->z_dep = 0;
        ls[k]->theta = 0.5f;
    }
    Spikeserve__Readout ro;
    spikeserve__readout__init(&ro);
    ro.n_in = N1;
    ro.n = NO;
    ro.n_weights = NO * N1;
    ro.weights = wo;
    ro.n_bias = NO;
    ro.bias = bo;
    ro.alpha = 0.8f;
    char l_a[] = "a", l_b[] = "b\"quoted\"", l_c[] = "c\xc3\xa9";
    char *labels[NO] = {l_a, l_b, l_c};
    char name[] = "fuzz";
    Spikeserve__Model pm;
    spikeserve__model__init(&pm);
    pm.name = name;
    pm.version = 1;
    pm.n_in = NI;
    pm.n_layers = 2;
    pm.layers = ls;
    pm.readout = &ro;
    pm.n_labels = NO;
    pm.labels = labels;
    size_t len = spikeserve__model__get_packed_size(&pm);
    uint8_t *buf = malloc(len);
    spikeserve__model__pack(&pm, buf);
    char err[256];
    if (spk_model_load_bytes(buf, len, &fz_model, err, sizeof err)) fz_die("model", err);
    free(buf);
    fz_state = spk_state_create(fz_model);
    fz_scratch = spk_scratch_create(fz_model);
    if (!fz_state || !fz_scratch) fz_die("state", "out of memory");
    fz_reg = ss_reg_create(".");
    fz_mv = fz_reg ? ss_reg_adopt(fz_reg, fz_model) : NULL;
    if (!fz_mv) fz_die("registry", "out of memory");
}

/* Step an accepted batch on a fresh state and encode the result both ways. */
static void fz_exercise(const ss_batch *b) {
    const spk_model *m = fz_model;
    spk_spike_buf layers[2] = {{0}};
    float *readout = NULL;
    spk_output out = {{0}, NULL, NULL, 0, NULL};
    char err[256];
    out.spikes.cap = spk_max_spikes(m->layers[m->n_layers - 1].n, b->steps);
    out.spikes.buf = malloc(out.spikes.cap * sizeof(spk_spike));
    if (b->outputs & SS_OUT_LAYERS) {
        for (uint32_t l = 0; l < m->n_layers; l++) {
            layers[l].cap = spk_max_spikes(m->layers[l].n, b->steps);
            layers[l].buf = malloc(layers[l].cap * sizeof(spk_spike));
        }
        out.layers = layers;
    }
    if (b->outputs & (SS_OUT_READOUT | SS_OUT_READOUT_ALL)) {
        out.readout_every_step = (b->outputs & SS_OUT_READOUT_ALL) != 0;
        readout = malloc((size_t)m->readout.n * b->steps * sizeof(float));
        out.readout = readout;
    }
    spk_state_reset(fz_state);
    spk_input in = ss_batch_input(b);
    if (spk_step(fz_state, &in, &out, fz_scratch, err, sizeof err)) fz_die("step", err);
    ss_result r = {"fuzz-session", b->has_seq, b->seq, 0, b->steps, b->outputs, m, &out, NULL};
    size_t len;
    char *j = ss_result_json(&r, &len);
    if (!j) fz_die("json encoder", "NULL");
    json_error_t je;
    json_t *doc = json_loadb(j, len, 0, &je);
    if (!doc) fz_die("encoded JSON does not parse", je.text);
    json_decref(doc);
    free(j);
    uint8_t *pb = ss_result_pb(&r, &len);
    if (!pb) fz_die("pb encoder", "NULL");
    Spikeserve__StepResult *res = spikeserve__step_result__unpack(NULL, len, pb);
    if (!res || res->steps != b->steps) fz_die("encoded protobuf does not unpack", NULL);
    spikeserve__step_result__free_unpacked(res, NULL);
    free(pb);
    free(out.spikes.buf);
    for (uint32_t l = 0; l < m->n_layers; l++)
        free(layers[l].buf);
    free(readout);
}

static int same_batch(const ss_batch *a, const ss_batch *b) {
    if (a->has_seq != b->has_seq || a->seq != b->seq || a->steps != b->steps ||
        a->n_events != b->n_events || a->outputs != b->outputs || !a->dense != !b->dense ||
        !a->events != !b->events)
        return 0;
    if (a->n_events && memcmp(a->events, b->events, a->n_events * sizeof *a->events)) return 0;
    if (a->dense &&
        memcmp(a->dense, b->dense, (size_t)a->steps * fz_model->n_in * sizeof *a->dense))
        return 0;
    return 1;
}

/* The three decoders of one format must agree: the combined decoder (rc, err, b) with the
 * reference (ref_rc, ref_err, ref) on code, message and batch; the fast path (fast_rc, fast)
 * either declines (leaving nothing) or decodes exactly what the reference does. Frees fast. */
static void fz_differential(const char *name, int rc, const char *err, const ss_batch *b,
                            int ref_rc, const char *ref_err, const ss_batch *ref, int fast_rc,
                            int declined, ss_batch *fast) {
    if (rc != ref_rc || (rc && strcmp(err, ref_err)))
        fz_die(name, ref_err); /* the combined decoder and the reference disagree */
    if (rc == 0 && !same_batch(b, ref))
        fz_die("the combined decoder and the reference decode different batches", name);
    if (fast_rc != 0 && fast_rc != declined) fz_die("fast path: bad code", name);
    if (fast_rc == 0) {
        if (ref_rc != 0) fz_die("fast path accepts what the reference rejects", ref_err);
        if (!same_batch(fast, ref)) fz_die("fast path and reference decode differently", name);
        ss_batch_free(fast);
    } else if (fast->events || fast->dense || fast->n_events || fast->steps) {
        fz_die("fast path declined but left a batch", name);
    }
}

static void fz_check_rc(int rc, const char *err) {
    if (rc != 0 && rc != SS_E_INVALID && rc != SS_E_LIMIT) fz_die("unexpected return code", err);
    if (rc != 0 && err[0] == '\0') fz_die("error without a message", NULL);
}

#endif
