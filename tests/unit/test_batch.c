/* test_batch.c: spike batch decoders (JSON, protobuf) and step result encoders (batch.h).
 *
 * Two tiny models are built here with protobuf-c and loaded with spk_model_load_bytes: one
 * with a readout and labels, one without. Every kind of bad input is checked with its exact
 * message; JSON and protobuf forms of the same batches must decode to identical batches;
 * the encoders are checked against known text and by round trips. */
#include <float.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "api.pb-c.h"
#include "batch.h"
#include "codec.h"
#include "model.pb-c.h"

#define N_IN 4

/* A 4-input, one-layer (3 neurons) model, optionally with a 2-output readout and labels. */
static spk_model *tiny_model(const char *name, int readout) {
    float w[3 * N_IN], bh[3] = {-6, -6, -6}, wo[2 * 3], bo[2] = {0, 0};
    for (int i = 0; i < 3 * N_IN; i++)
        w[i] = 0.5f + 0.25f * (float)(i % 5);
    for (int i = 0; i < 2 * 3; i++)
        wo[i] = 0.1f * (float)(i + 1);
    Spikeserve__SrcLayer layer;
    spikeserve__src_layer__init(&layer);
    layer.n_in = N_IN;
    layer.n = 3;
    layer.n_weights = 3 * N_IN;
    layer.weights = w;
    layer.n_b_h = 3;
    layer.b_h = bh;
    layer.alpha = 0.9f;
    layer.rho = 3;
    layer.r = 2;
    layer.r_s = -7;
    layer.z_hyp = 0.9f;
    layer.z_dep = 0;
    layer.theta = 0.5f;
    Spikeserve__SrcLayer *layers[1] = {&layer};
    Spikeserve__Readout ro;
    spikeserve__readout__init(&ro);
    ro.n_in = 3;
    ro.n = 2;
    ro.n_weights = 6;
    ro.weights = wo;
    ro.n_bias = 2;
    ro.bias = bo;
    ro.alpha = 0.8f;
    char *labels[2] = {"zero", "one"};
    Spikeserve__Model pm;
    spikeserve__model__init(&pm);
    pm.name = (char *)(uintptr_t)name;
    pm.version = 1;
    pm.n_in = N_IN;
    pm.n_layers = 1;
    pm.layers = layers;
    if (readout) {
        pm.readout = &ro;
        pm.n_labels = 2;
        pm.labels = labels;
    }
    size_t n = spikeserve__model__get_packed_size(&pm);
    uint8_t *buf = malloc(n);
    spikeserve__model__pack(&pm, buf);
    spk_model *m = NULL;
    char err[256];
    if (spk_model_load_bytes(buf, n, &m, err, sizeof err)) diag("model %s: %s", name, err);
    free(buf);
    return m;
}

static spk_model *M, *M_NORO; /* with and without readout */
static const ss_limits LIM = {10000, 1000, 0};
static const ss_limits SMALL = {10000, 8, 0};

/* want: the exact message, or a prefix when it ends with '*'. */
static int msg_matches(const char *got, const char *want) {
    size_t n = strlen(want);
    if (n && want[n - 1] == '*') return strncmp(got, want, n - 1) == 0;
    return strcmp(got, want) == 0;
}

static void check_rc_msg(const char *what, int rc, const char *err, int want_rc, const char *want) {
    if (!ok(rc == want_rc && msg_matches(err, want), "%s -> %d \"%s\"", what, want_rc, want))
        diag("got %d \"%s\"", rc, err);
}

static void bad_json(const spk_model *m, const ss_limits *lim, const char *json, int want_rc,
                     const char *want) {
    ss_batch b;
    char err[256] = "";
    int rc = ss_batch_from_json(json, strlen(json), m, lim, &b, err, sizeof err);
    check_rc_msg(json, rc, err, want_rc, want);
    if (!rc) ss_batch_free(&b);
}

/* ---- protobuf batches built in the test ---- */

typedef struct {
    Spikeserve__SpikeBatch b;
    Spikeserve__InputEvent ev[16], *evp[16];
    Spikeserve__DenseRow rows[8], *rowp[8];
    float dense[8][N_IN + 1];
    char *outputs[4];
} pbb;

static void pbb_init(pbb *p, uint32_t steps) {
    memset(p, 0, sizeof *p);
    spikeserve__spike_batch__init(&p->b);
    p->b.has_steps = 1;
    p->b.steps = steps;
    p->b.events = p->evp;
    p->b.dense = p->rowp;
    p->b.outputs = p->outputs;
}

static Spikeserve__InputEvent *pbb_event(pbb *p, uint32_t step, uint32_t input) {
    Spikeserve__InputEvent *e = &p->ev[p->b.n_events];
    spikeserve__input_event__init(e);
    e->has_step = e->has_input = 1;
    e->step = step;
    e->input = input;
    p->evp[p->b.n_events++] = e;
    return e;
}

static void pbb_dense_rows(pbb *p, uint32_t rows, size_t width) {
    for (uint32_t t = 0; t < rows; t++) {
        spikeserve__dense_row__init(&p->rows[t]);
        for (size_t j = 0; j < width; j++)
            p->dense[t][j] = (float)(t * 10 + j) * 0.5f;
        p->rows[t].n_values = width;
        p->rows[t].values = p->dense[t];
        p->rowp[t] = &p->rows[t];
    }
    p->b.n_dense = rows;
}

static int pbb_decode(pbb *p, const spk_model *m, const ss_limits *lim, ss_batch *out, char *err,
                      size_t errlen) {
    size_t n = spikeserve__spike_batch__get_packed_size(&p->b);
    uint8_t *buf = malloc(n ? n : 1);
    spikeserve__spike_batch__pack(&p->b, buf);
    int rc = ss_batch_from_pb(buf, n, m, lim, out, err, errlen);
    free(buf);
    return rc;
}

static void bad_pb(const char *what, pbb *p, const spk_model *m, const ss_limits *lim, int want_rc,
                   const char *want) {
    ss_batch b;
    char err[256] = "";
    int rc = pbb_decode(p, m, lim, &b, err, sizeof err);
    check_rc_msg(what, rc, err, want_rc, want);
    if (!rc) ss_batch_free(&b);
}

static int same_batch(const ss_batch *a, const ss_batch *b, uint32_t n_in) {
    if (a->has_seq != b->has_seq || a->seq != b->seq || a->steps != b->steps ||
        a->n_events != b->n_events || a->outputs != b->outputs || !a->dense != !b->dense)
        return 0;
    for (size_t i = 0; i < a->n_events; i++)
        if (a->events[i].step != b->events[i].step || a->events[i].input != b->events[i].input ||
            a->events[i].value != b->events[i].value)
            return 0;
    return !a->dense || memcmp(a->dense, b->dense, (size_t)a->steps * n_in * sizeof(float)) == 0;
}

static void test_json_valid(void) {
    const char *j = "{\"seq\": 3, \"steps\": 5, \"events\": [[4, 1], [0, 3, 0.5], [2, 0, -2], "
                    "[0, 3, 7]], \"outputs\": [\"spikes\", \"readout_all\"]}";
    ss_batch b;
    char err[256] = "";
    int rc = ss_batch_from_json(j, strlen(j), M, &LIM, &b, err, sizeof err);
    is_int(rc, 0, "valid JSON batch decodes");
    if (rc) {
        diag("%s", err);
        return;
    }
    ok(b.has_seq && b.seq == 3, "seq 3");
    is_int(b.steps, 5, "steps 5");
    is_int(b.n_events, 4, "4 events");
    int sorted = 1;
    for (size_t i = 1; i < b.n_events; i++)
        sorted &= b.events[i - 1].step <= b.events[i].step;
    ok(sorted, "events sorted by step");
    ok(b.events[3].step == 4 && b.events[3].input == 1 && b.events[3].value == 1.0f,
       "[4, 1] has the default value 1.0");
    is_int(b.events[2].value, -2, "[2, 0, -2]: an integer value is accepted");
    float v0 = b.events[0].value, v1 = b.events[1].value;
    ok(b.events[0].step == 0 && b.events[1].step == 0 &&
           ((v0 == 0.5f && v1 == 7.0f) || (v0 == 7.0f && v1 == 0.5f)),
       "both step-0 events kept");
    ok(b.dense == NULL, "no dense");
    is_int(b.outputs, SS_OUT_SPIKES | SS_OUT_READOUT_ALL, "outputs as asked");
    spk_input in = ss_batch_input(&b);
    ok(in.steps == 5 && in.events == b.events && in.n_events == 4 && in.dense == NULL,
       "ss_batch_input borrows the arrays");
    ss_batch_free(&b);
    ss_batch_free(&b); /* idempotent */
    ss_batch_free(NULL);

    const char *d = "{\"steps\": 2, \"dense\": [[0, 0.5, 1, 2], [1e-3, -1, 0, 3]]}";
    rc = ss_batch_from_json(d, strlen(d), M, &LIM, &b, err, sizeof err);
    is_int(rc, 0, "dense batch decodes");
    if (!rc) {
        ok(b.dense && b.dense[1] == 0.5f && b.dense[4] == 1e-3f && b.dense[7] == 3,
           "dense values row-major");
        ok(!b.has_seq && b.n_events == 0 && b.events == NULL, "no seq, no events");
        is_int(b.outputs, SS_OUT_SPIKES | SS_OUT_READOUT, "default outputs with a readout");
        ss_batch_free(&b);
    }
    const char *e = "{\"steps\": 1, \"outputs\": []}";
    rc = ss_batch_from_json(e, strlen(e), M_NORO, &LIM, &b, err, sizeof err);
    ok(rc == 0 && b.outputs == 0, "\"outputs\": [] asks for nothing");
    if (!rc) ss_batch_free(&b);
    is_int(ss_outputs_default(M_NORO), SS_OUT_SPIKES, "default outputs without a readout");
    is_int(ss_outputs_default(M), SS_OUT_SPIKES | SS_OUT_READOUT, "default outputs, readout");
}

static void test_json_invalid(void) {
    const int B = SS_E_INVALID, L = SS_E_LIMIT;
    bad_json(M, &LIM, "", B, "invalid JSON at line 1*");
    bad_json(M, &LIM, "{\"steps\": 1", B, "invalid JSON*");
    bad_json(M, &LIM, "{\"steps\": 1} x", B, "invalid JSON*");
    bad_json(M, &LIM, "[1]", B, "body: must be a JSON object, got an array");
    bad_json(M, &LIM, "3", B, "body: must be a JSON object, got an integer");
    bad_json(M, &LIM, "{\"steps\": 1, \"steps\": 2}", B,
             "invalid JSON at line 1, column 20: duplicate object key*");
    bad_json(M, &LIM, "{\"steps\": 1, \"stpes\": 2}", B,
             "stpes: unknown field (expected seq, steps, events, dense, outputs)");
    bad_json(M, &LIM, "{\"a\\u0001b\": 1}", B,
             "a?b: unknown field (expected seq, steps, events, dense, outputs)");
    bad_json(M, &LIM, "{\"seq\": -1, \"steps\": 1}", B, "seq: must be a non-negative integer");
    bad_json(M, &LIM, "{\"seq\": \"4\", \"steps\": 1}", B, "seq: must be a non-negative integer");
    bad_json(M, &LIM, "{\"seq\": 1.0, \"steps\": 1}", B, "seq: must be a non-negative integer");
    bad_json(M, &LIM, "{\"seq\": 9223372036854775808, \"steps\": 1}", B,
             "invalid JSON at line 1, column 27: too big integer*");
    bad_json(M, &LIM, "{}", B, "steps: required");
    bad_json(M, &LIM, "{\"steps\": 1.5}", B, "steps: must be an integer, got a real number");
    bad_json(M, &LIM, "{\"steps\": null}", B, "steps: must be an integer, got null");
    bad_json(M, &LIM, "{\"steps\": 0}", B, "steps: must be >= 1, got 0");
    bad_json(M, &LIM, "{\"steps\": -3}", B, "steps: must be >= 1, got -3");
    bad_json(M, &LIM, "{\"steps\": 20000}", L,
             "steps: 20000 exceeds the limit 10000 (--max-steps)");
    bad_json(M, &LIM, "{\"steps\": 9223372036854775807}", L,
             "steps: 9223372036854775807 exceeds the limit 10000 (--max-steps)");
    bad_json(M, &LIM, "{\"steps\": 2, \"events\": {}}", B,
             "events: must be an array, got an object");
    bad_json(M, &SMALL,
             "{\"steps\": 2, \"events\": [[0,0],[0,0],[0,0],[0,0],[0,0],[0,0],[0,0],"
             "[0,0],[0,0]]}",
             L, "events: 9 events exceed the limit 8 (--max-events)");
    bad_json(M, &LIM, "{\"steps\": 2, \"events\": [[0]]}", B,
             "events[0]: must be [step, input] or [step, input, value]");
    bad_json(M, &LIM, "{\"steps\": 2, \"events\": [[0, 1], [0, 1, 1, 1]]}", B,
             "events[1]: must be [step, input] or [step, input, value]");
    bad_json(M, &LIM, "{\"steps\": 2, \"events\": [5]}", B,
             "events[0]: must be [step, input] or [step, input, value]");
    bad_json(M, &LIM, "{\"steps\": 2, \"events\": [[0.5, 1]]}", B,
             "events[0][0]: step must be an integer, got a real number");
    bad_json(M, &LIM, "{\"steps\": 2, \"events\": [[\"0\", 1]]}", B,
             "events[0][0]: step must be an integer, got a string");
    bad_json(M, &LIM, "{\"steps\": 2, \"events\": [[0, 1], [0, true]]}", B,
             "events[1][1]: input must be an integer, got a boolean");
    bad_json(M, &LIM, "{\"steps\": 2, \"events\": [[2, 1]]}", B,
             "events[0]: step 2 out of range [0, 2)");
    bad_json(M, &LIM, "{\"steps\": 2, \"events\": [[-1, 1]]}", B,
             "events[0]: step -1 out of range [0, 2)");
    bad_json(M, &LIM, "{\"steps\": 2, \"events\": [[0, 1], [1, 2], [1, 900]]}", B,
             "events[2]: input 900 out of range [0, 4)");
    bad_json(M, &LIM, "{\"steps\": 2, \"events\": [[0, -4]]}", B,
             "events[0]: input -4 out of range [0, 4)");
    bad_json(M, &LIM, "{\"steps\": 2, \"events\": [[0, 1], [1, 2], [0, 0, \"x\"]]}", B,
             "events[2][2]: value must be a finite number");
    bad_json(M, &LIM, "{\"steps\": 2, \"events\": [[0, 0, 1e300]]}", B,
             "events[0][2]: value must be a finite number");
    bad_json(M, &LIM, "{\"steps\": 2, \"events\": [[0, 0, 1000000.01], [0, 0, 2e6]]}", B,
             "events[1][2]: value 2000000 exceeds the limit 1000000 in magnitude");
    bad_json(M, &LIM, "{\"steps\": 1, \"dense\": [[1, 2, 3, -1e6], [0, 1, 2]]}", B,
             "dense: 2 rows, expected 1 (one per step)");
    bad_json(M, &LIM, "{\"steps\": 1, \"dense\": [[1, 2, 3, -1000001]]}", B,
             "dense[0][3]: value -1000001 exceeds the limit 1000000 in magnitude");
    bad_json(M, &LIM, "{\"steps\": 2, \"events\": [[0, 0, null]]}", B,
             "events[0][2]: value must be a finite number");
    bad_json(M, &LIM, "{\"steps\": 2, \"events\": [[0, 0, NaN]]}", B, "invalid JSON*");
    bad_json(M, &LIM, "{\"steps\": 2, \"dense\": 5}", B,
             "dense: must be an array of rows, got an integer");
    bad_json(M, &LIM, "{\"steps\": 2, \"dense\": [[1, 2, 3, 4]]}", B,
             "dense: 1 rows, expected 2 (one per step)");
    bad_json(M, &LIM, "{\"steps\": 2, \"dense\": [[1, 2, 3, 4], [1, 2, 3]]}", B,
             "dense[1]: 3 values, expected 4");
    bad_json(M, &LIM, "{\"steps\": 2, \"dense\": [[1, 2, 3, 4], 5]}", B,
             "dense[1]: must be an array of 4 numbers, got an integer");
    bad_json(M, &LIM, "{\"steps\": 2, \"dense\": [[1, 2, 3, 4], [1, 2, \"a\", 4]]}", B,
             "dense[1][2]: value must be a finite number");
    bad_json(M, &LIM, "{\"steps\": 2, \"dense\": [[1, 2, 3, 4], [1, 2, 3, -1e39]]}", B,
             "dense[1][3]: value must be a finite number");
    bad_json(M, &SMALL, "{\"steps\": 3, \"dense\": [[1,2,3,4],[1,2,3,4],[1,2,3,4]]}", L,
             "dense: 12 values (3 x 4) exceed the limit 8 (--max-events)");
    bad_json(M, &SMALL, "{\"steps\": 2, \"events\": [[0, 1]], \"dense\": [[1,2,3,4],[1,2,3,4]]}", L,
             "dense: 8 values (2 x 4) and 1 events exceed the limit 8 (--max-events)");
    bad_json(M, &LIM, "{\"steps\": 1, \"outputs\": \"spikes\"}", B,
             "outputs: must be an array of strings, got a string");
    bad_json(M, &LIM, "{\"steps\": 1, \"outputs\": [1]}", B,
             "outputs[0]: must be a string, got an integer");
    bad_json(M, &LIM, "{\"steps\": 1, \"outputs\": [\"spikes\", \"foo\"]}", B,
             "outputs[1]: unknown output \"foo\" (expected spikes, readout, readout_all, layers)");
    bad_json(M, &LIM, "{\"steps\": 1, \"outputs\": [\"spi\\u0000kes\"]}", B, "invalid JSON*");
    bad_json(M_NORO, &LIM, "{\"steps\": 1, \"outputs\": [\"readout\"]}", B,
             "outputs[0]: \"readout\" needs a readout layer; model \"noro\" has none");
    bad_json(M_NORO, &LIM, "{\"steps\": 1, \"outputs\": [\"layers\", \"readout_all\"]}", B,
             "outputs[1]: \"readout_all\" needs a readout layer; model \"noro\" has none");
}

static void test_pb(void) {
    const int B = SS_E_INVALID, L = SS_E_LIMIT;
    pbb p;
    ss_batch b;
    char err[256] = "";

    pbb_init(&p, 3);
    pbb_event(&p, 2, 1);
    Spikeserve__InputEvent *e = pbb_event(&p, 0, 3);
    e->has_value = 1;
    e->value = 0.25f;
    int rc = pbb_decode(&p, M, &LIM, &b, err, sizeof err);
    is_int(rc, 0, "valid protobuf batch decodes");
    if (!rc) {
        ok(!b.has_seq && b.steps == 3 && b.n_events == 2, "steps 3, 2 events, no seq");
        ok(b.events[0].step == 0 && b.events[0].value == 0.25f, "sorted, value 0.25");
        ok(b.events[1].step == 2 && b.events[1].input == 1 && b.events[1].value == 1.0f,
           "absent value is 1.0");
        is_int(b.outputs, SS_OUT_SPIKES | SS_OUT_READOUT, "default outputs");
        ss_batch_free(&b);
    }

    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0x01};
    rc = ss_batch_from_pb(garbage, sizeof garbage, M, &LIM, &b, err, sizeof err);
    check_rc_msg("protobuf garbage", rc, err, B,
                 "invalid protobuf: not a spikeserve.SpikeBatch message (4 bytes)");
    rc = ss_batch_from_pb(garbage, 0, M, &LIM, &b, err, sizeof err);
    check_rc_msg("protobuf empty", rc, err, B, "steps: required");

    pbb_init(&p, 1);
    p.b.has_seq = 1;
    p.b.seq = (uint64_t)INT64_MAX + 1;
    bad_pb("pb seq past 2^63 - 1", &p, M, &LIM, B,
           "seq: 9223372036854775808 exceeds the largest seq 9223372036854775807");
    p.b.seq = INT64_MAX;
    rc = pbb_decode(&p, M, &LIM, &b, err, sizeof err);
    ok(rc == 0 && b.seq == INT64_MAX, "pb seq 2^63 - 1 accepted");
    if (!rc) ss_batch_free(&b);
    pbb_init(&p, 0);
    bad_pb("pb steps 0", &p, M, &LIM, B, "steps: must be >= 1, got 0");
    pbb_init(&p, 20000);
    bad_pb("pb steps over", &p, M, &LIM, L, "steps: 20000 exceeds the limit 10000 (--max-steps)");
    pbb_init(&p, 2);
    for (int i = 0; i < 9; i++)
        pbb_event(&p, 0, 0);
    bad_pb("pb events over", &p, M, &SMALL, L,
           "events: 9 events exceed the limit 8 (--max-events)");
    pbb_init(&p, 2);
    pbb_event(&p, 0, 0);
    pbb_event(&p, 2, 0);
    bad_pb("pb step out of range", &p, M, &LIM, B, "events[1]: step 2 out of range [0, 2)");
    pbb_init(&p, 2);
    pbb_event(&p, 1, 900);
    bad_pb("pb input out of range", &p, M, &LIM, B, "events[0]: input 900 out of range [0, 4)");
    pbb_init(&p, 2);
    pbb_event(&p, 1, 1);
    e = pbb_event(&p, 1, 1);
    e->has_value = 1;
    e->value = NAN;
    bad_pb("pb NaN value", &p, M, &LIM, B, "events[1].value: must be a finite number");
    e->value = -INFINITY;
    bad_pb("pb -inf value", &p, M, &LIM, B, "events[1].value: must be a finite number");
    e->value = 3e6f;
    bad_pb("pb large value", &p, M, &LIM, B,
           "events[1].value: 3000000 exceeds the limit 1000000 in magnitude");
    pbb_init(&p, 2);
    pbb_dense_rows(&p, 2, N_IN);
    p.dense[1][0] = -2e6f;
    bad_pb("pb dense large", &p, M, &LIM, B,
           "dense[1][0]: value -2000000 exceeds the limit 1000000 in magnitude");
    pbb_init(&p, 2);
    pbb_dense_rows(&p, 1, N_IN);
    bad_pb("pb dense rows", &p, M, &LIM, B, "dense: 1 rows, expected 2 (one per step)");
    pbb_init(&p, 2);
    pbb_dense_rows(&p, 2, N_IN);
    p.rows[1].n_values = 3;
    bad_pb("pb dense row width", &p, M, &LIM, B, "dense[1]: 3 values, expected 4");
    pbb_init(&p, 2);
    pbb_dense_rows(&p, 2, N_IN);
    p.dense[1][2] = INFINITY;
    bad_pb("pb dense inf", &p, M, &LIM, B, "dense[1][2]: value must be a finite number");
    pbb_init(&p, 3);
    pbb_dense_rows(&p, 3, N_IN);
    bad_pb("pb dense over", &p, M, &SMALL, L,
           "dense: 12 values (3 x 4) exceed the limit 8 (--max-events)");
    pbb_init(&p, 1);
    p.outputs[p.b.n_outputs++] = "layers";
    p.outputs[p.b.n_outputs++] = "readouts";
    bad_pb("pb unknown output", &p, M, &LIM, B,
           "outputs[1]: unknown output \"readouts\" (expected spikes, readout, readout_all, "
           "layers)");
    pbb_init(&p, 1);
    p.outputs[p.b.n_outputs++] = "readout";
    bad_pb("pb readout without readout", &p, M_NORO, &LIM, B,
           "outputs[0]: \"readout\" needs a readout layer; model \"noro\" has none");
}

/* The same batches as JSON and as protobuf decode to identical ss_batch values. */
static void test_same_meaning(void) {
    pbb p;
    char err[256];

    /* 1: seq, events with and without values, outputs */
    pbb_init(&p, 7);
    p.b.has_seq = 1;
    p.b.seq = 41;
    pbb_event(&p, 6, 2);
    pbb_event(&p, 0, 1)->has_value = 1;
    p.ev[1].value = -0.75f;
    pbb_event(&p, 3, 3);
    pbb_event(&p, 0, 0);
    p.outputs[p.b.n_outputs++] = "readout";
    p.outputs[p.b.n_outputs++] = "layers";
    const char *j1 = "{\"seq\": 41, \"steps\": 7, \"events\": [[6, 2], [0, 1, -0.75], [3, 3, 1], "
                     "[0, 0]], \"outputs\": [\"readout\", \"layers\"]}";
    ss_batch a, b;
    int ra = ss_batch_from_json(j1, strlen(j1), M, &LIM, &a, err, sizeof err);
    int rb = pbb_decode(&p, M, &LIM, &b, err, sizeof err);
    ok(ra == 0 && rb == 0 && same_batch(&a, &b, N_IN), "events batch: JSON == protobuf");
    if (!ra) ss_batch_free(&a);
    if (!rb) ss_batch_free(&b);

    /* 2: dense rows plus events, default outputs */
    pbb_init(&p, 2);
    pbb_dense_rows(&p, 2, N_IN); /* values (t * 10 + j) * 0.5 */
    pbb_event(&p, 1, 0);
    const char *j2 = "{\"events\": [[1, 0]], \"dense\": [[0, 0.5, 1, 1.5], [5, 5.5, 6, 6.5]], "
                     "\"steps\": 2}";
    ra = ss_batch_from_json(j2, strlen(j2), M, &LIM, &a, err, sizeof err);
    rb = pbb_decode(&p, M, &LIM, &b, err, sizeof err);
    ok(ra == 0 && rb == 0 && same_batch(&a, &b, N_IN), "dense batch: JSON == protobuf");
    if (!ra) ss_batch_free(&a);
    if (!rb) ss_batch_free(&b);
}

/* ---- encoders ---- */

static spk_spike SP[] = {{0, 1, 0.5f}, {1, 0, 0.1f}, {1, 2, 0.33333334f}};
static float RO[] = {1.5f, -2.25f, 0.25f, 3.0f}; /* 2 steps x 2 outputs */

static void test_result_json(void) {
    spk_spike_buf layers[1] = {{SP, 3, 3}};
    spk_output o = {{SP, 3, 3}, layers, RO, 1, NULL};
    ss_result r = {"abc\"d", 1, 7,
                   100,      2, SS_OUT_SPIKES | SS_OUT_READOUT | SS_OUT_READOUT_ALL | SS_OUT_LAYERS,
                   M,        &o, NULL, NULL};
    size_t len = 0;
    char *j = ss_result_json(&r, &len);
    is_str(j,
           "{\"session_id\":\"abc\\\"d\",\"seq\":7,\"t0\":100,\"steps\":2,"
           "\"spikes\":[[0,1,0.5],[1,0,0.1],[1,2,0.33333334]],\"readout\":[0.25,3],"
           "\"readout_steps\":[[1.5,-2.25],[0.25,3]],\"prediction\":{\"index\":1,"
           "\"label\":\"one\"},\"layers\":[{\"layer\":0,\"spikes\":[[0,1,0.5],[1,0,0.1],"
           "[1,2,0.33333334]]}]}",
           "full JSON result");
    ok(j && len == strlen(j), "length returned");
    free(j);

    /* last-step readout only (readout_every_step 0), no session, no seq, labels absent */
    spk_output o2 = {{SP, 3, 0}, NULL, RO + 2, 0, NULL};
    ss_result r2 = {NULL, 0, 0, 0, 1, SS_OUT_SPIKES | SS_OUT_READOUT, M, &o2, NULL, NULL};
    j = ss_result_json(&r2, &len);
    is_str(j,
           "{\"t0\":0,\"steps\":1,\"spikes\":[],\"readout\":[0.25,3],"
           "\"prediction\":{\"index\":1,\"label\":\"one\"}}",
           "readout at the last step, empty spikes");
    free(j);
    r2.outputs = 0;
    j = ss_result_json(&r2, &len);
    is_str(j, "{\"t0\":0,\"steps\":1}", "no outputs asked");
    free(j);
    /* a model without a readout never gets readout/prediction, even if asked */
    spk_output o3 = {{SP, 3, 1}, NULL, NULL, 0, NULL};
    ss_result r3 = {"\x01\xff\xc3\xa9\xed\xa0\x80", 1,      UINT64_MAX, 5, 1,
                    SS_OUT_SPIKES | SS_OUT_READOUT, M_NORO, &o3, NULL, NULL};
    j = ss_result_json(&r3, &len);
    is_str(j,
           "{\"session_id\":\"\\u0001\\ufffd\xc3\xa9\\ufffd\\ufffd\\ufffd\","
           "\"seq\":18446744073709551615,\"t0\":5,\"steps\":1,\"spikes\":[[0,1,0.5]]}",
           "escaping, invalid UTF-8 replaced, u64 seq, no readout on a readout-less model");
    free(j);
    r3.seq = 5; /* jansson reads integers up to 2^63 - 1 only */
    j = ss_result_json(&r3, &len);
    json_error_t je;
    json_t *parsed = j ? json_loads(j, 0, &je) : NULL;
    ok(parsed && !strcmp(json_string_value(json_object_get(parsed, "session_id")),
                         "\x01\xef\xbf\xbd\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"),
       "escaped result is valid JSON and reads back");
    json_decref(parsed);
    free(j);
}

static void test_result_pb(void) {
    spk_spike_buf layers[1] = {{SP, 3, 2}};
    spk_output o = {{SP, 3, 3}, layers, RO, 1, NULL};
    ss_result r = {"sess-1", 1, 9,
                   40,       2, SS_OUT_SPIKES | SS_OUT_READOUT | SS_OUT_READOUT_ALL | SS_OUT_LAYERS,
                   M,        &o, NULL, NULL};
    size_t len = 0;
    uint8_t *buf = ss_result_pb(&r, &len);
    ok(buf != NULL, "protobuf result encodes");
    Spikeserve__StepResult *res = buf ? spikeserve__step_result__unpack(NULL, len, buf) : NULL;
    ok(res != NULL, "protobuf result unpacks");
    if (res) {
        ok(res->session_id && !strcmp(res->session_id, "sess-1"), "session_id");
        ok(res->has_seq && res->seq == 9 && res->has_t0 && res->t0 == 40 && res->steps == 2,
           "seq, t0, steps");
        int spikes_ok = res->n_spikes == 3;
        for (size_t i = 0; spikes_ok && i < 3; i++)
            spikes_ok = res->spikes[i]->step == SP[i].step &&
                        res->spikes[i]->neuron == SP[i].neuron &&
                        res->spikes[i]->value == SP[i].value;
        ok(spikes_ok, "spikes round-trip");
        ok(res->n_readout == 2 && res->readout[0] == 0.25f && res->readout[1] == 3.0f,
           "readout at the last step");
        ok(res->n_readout_steps == 2 && res->readout_steps[0]->n_values == 2 &&
               res->readout_steps[0]->values[1] == -2.25f &&
               res->readout_steps[1]->values[0] == 0.25f,
           "readout_steps");
        ok(res->prediction && res->prediction->has_index && res->prediction->index == 1 &&
               res->prediction->label && !strcmp(res->prediction->label, "one"),
           "prediction");
        ok(res->n_layers == 1 && res->layers[0]->has_layer && res->layers[0]->layer == 0 &&
               res->layers[0]->n_spikes == 2 && res->layers[0]->spikes[1]->value == 0.1f,
           "layers");
        spikeserve__step_result__free_unpacked(res, NULL);
    }
    free(buf);

    ss_result r2 = {NULL, 0, 0, 0, 1, 0, M_NORO, &o, NULL, NULL};
    buf = ss_result_pb(&r2, &len);
    res = buf ? spikeserve__step_result__unpack(NULL, len, buf) : NULL;
    ok(res && !res->session_id && !res->has_seq && res->has_t0 && res->t0 == 0 && res->steps == 1 &&
           res->n_spikes == 0 && !res->prediction && res->n_layers == 0,
       "minimal protobuf result");
    if (res) spikeserve__step_result__free_unpacked(res, NULL);
    free(buf);
}

/* Float output: every float reads back exactly (as a float and through a double), with at
 * most 9 significant digits, and with no more digits than needed for simple values. */
static void test_float_format(void) {
    enum { N = 20000 };
    static spk_spike sp[N];
    static const float special[] = {0.1f,        1.0f / 3, 0.5f,      1e-7f, FLT_MIN,
                                    FLT_MAX,     -FLT_MAX, 1e-45f,    -0.0f, 100.0f,
                                    16777216.0f, 3.4e38f,  0.999999f, 0.81f, 2.5e-40f};
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < N; i++) {
        float f;
        if (i < (int)(sizeof special / sizeof special[0])) {
            f = special[i];
        } else {
            do {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
                uint32_t bits = (uint32_t)(x >> 32);
                if (i % 2) /* magnitudes around 1e-8 .. 1e8 */
                    bits = (bits & 0x807fffffu) | (uint32_t)(100 + x % 56) << 23;
                memcpy(&f, &bits, sizeof f);
            } while (!isfinite(f));
        }
        sp[i] = (spk_spike){(uint32_t)i, 0, f};
    }
    spk_output o = {{sp, N, N}, NULL, NULL, 0, NULL};
    ss_result r = {NULL, 0, 0, 0, 1, SS_OUT_SPIKES, M_NORO, &o, NULL, NULL};
    size_t len;
    char *j = ss_result_json(&r, &len);
    json_error_t je;
    json_t *doc = j ? json_loads(j, 0, &je) : NULL;
    ok(doc != NULL, "%d floats: valid JSON", N);
    json_t *arr = json_object_get(doc, "spikes");
    int exact = json_array_size(arr) == N;
    for (int i = 0; exact && i < N; i++) {
        double d = json_number_value(json_array_get(json_array_get(arr, (size_t)i), 2));
        exact = (float)d == sp[i].value && !signbit(d) == !signbit(sp[i].value);
        if (!exact) diag("spike %d: %.9g read back as %.17g", i, (double)sp[i].value, d);
    }
    ok(exact, "every float reads back bit-exact");
    json_decref(doc);
    /* Significant digits of every value, from the text; no value may have a shorter
     * decimal form that reads back as the same float. */
    int max_digits = 0, not_shortest = 0, idx = 0;
    const char *s = j ? strstr(j, "\"spikes\":[") : NULL;
    for (s = s ? s + 10 : NULL; s && *s == '[' && idx < N; idx++) {
        s = strchr(strchr(s, ',') + 1, ',') + 1; /* past step and neuron */
        const char *end = strchr(s, ']');
        char dig[32];
        int nd = 0;
        for (; s < end && *s != 'e' && nd < 31; s++)
            if (*s >= '0' && *s <= '9' && (nd || *s != '0')) dig[nd++] = *s;
        while (nd > 0 && dig[nd - 1] == '0')
            nd--;
        if (nd > max_digits) max_digits = nd;
        char shorter[40];
        snprintf(shorter, sizeof shorter, "%.*g", nd - 1, (double)sp[idx].value);
        if (nd > 1 && strtof(shorter, NULL) == sp[idx].value) {
            if (not_shortest++ < 5)
                diag("%.9g: %d digits, but %s reads back", (double)sp[idx].value, nd, shorter);
        }
        s = end + 1;
        if (*s == ',') s++;
    }
    is_int(idx, N, "every value scanned");
    is_int(not_shortest, 0, "no value has a shorter exact form");
    ok(max_digits <= 9 && max_digits >= 7, "at most 9 significant digits (max seen %d)",
       max_digits);
    ok(j && strstr(j, "[0,0,0.1]") && strstr(j, "[1,0,0.33333334]") && strstr(j, "[2,0,0.5]") &&
           strstr(j, "[3,0,1e-07]") && strstr(j, "[8,0,-0.0]") && strstr(j, "[9,0,100]") &&
           strstr(j, "[13,0,0.81]") && strstr(j, "[7,0,1e-45]"),
       "shortest forms of simple values");
    free(j);

    float bad[3] = {NAN, INFINITY, 1.0f};
    spk_spike bs[3] = {{0, 0, NAN}, {0, 1, -INFINITY}, {0, 2, 2.0f}};
    spk_output o2 = {{bs, 3, 3}, NULL, bad, 0, NULL};
    ss_result r2 = {NULL, 0, 0, 0, 1, SS_OUT_SPIKES | SS_OUT_READOUT, M, &o2, NULL, NULL};
    j = ss_result_json(&r2, &len);
    json_t *nb = j ? json_loads(j, 0, &je) : NULL;
    ok(nb && !strstr(j, "nan") && !strstr(j, "inf"),
       "NaN and infinity never appear (null instead): %s", j ? j : "");
    json_decref(nb);
    free(j);
}

int main(void) {
    M = tiny_model("tiny", 1);
    M_NORO = tiny_model("noro", 0);
    ok(M && M_NORO, "test models load");
    if (!M || !M_NORO) return done_testing();
    test_json_valid();
    test_json_invalid();
    test_pb();
    test_same_meaning();
    test_result_json();
    test_result_pb();
    test_float_format();
    spk_model_free(M);
    spk_model_free(M_NORO);
    return done_testing();
}
