/* batch.h: spike batches and step results on the wire, in JSON (jansson) and protobuf
 * (proto/api.proto), with the same meaning (SPEC.md section 3). Shared by the server and
 * the command-line runner (spikeserve-run).
 *
 * Decoding checks everything against the model and the limits, and says what and where:
 *   "events[3]: input 900 out of range [0, 784)", "steps: 20000 exceeds the limit 10000
 *   (--max-steps)". Nothing from the client reaches an assert.
 * Thread-safety: functions are reentrant; a ss_batch belongs to its caller.
 */
#ifndef SS_BATCH_H
#define SS_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/model.h"
#include "../engine/step.h"

/* Which outputs a batch asks for ("outputs": [...]). Absent: spikes, plus readout and
 * prediction when the model has a readout. */
enum {
    SS_OUT_SPIKES = 1u << 0,      /* "spikes": last SRC layer's events */
    SS_OUT_READOUT = 1u << 1,     /* "readout": readout at the last step (+ prediction) */
    SS_OUT_READOUT_ALL = 1u << 2, /* "readout_all": readout at every step */
    SS_OUT_LAYERS = 1u << 3,      /* "layers": every layer's events */
    SS_OUT_ALL = 0xfu,
};

/* Decoding errors: SS_EBAD is a 400, SS_ELIMIT a 413 (the message names the limit). */
enum { SS_EBAD = -1, SS_ELIMIT = -2, SS_ENOMEM = -3 };

typedef struct {
    uint32_t max_steps;  /* steps per batch */
    uint32_t max_events; /* events per batch (dense rows count steps x n_in values) */
} ss_limits;

typedef struct {
    int has_seq;
    uint64_t seq;
    uint32_t steps;
    spk_event *events; /* sorted by step */
    size_t n_events;
    float *dense;      /* steps x n_in, or NULL */
    unsigned outputs;  /* SS_OUT_* */
} ss_batch;

int ss_batch_from_json(const char *buf, size_t len, const spk_model *m, const ss_limits *lim,
                       ss_batch *out, char *err, size_t errlen);
int ss_batch_from_pb(const uint8_t *buf, size_t len, const spk_model *m, const ss_limits *lim,
                     ss_batch *out, char *err, size_t errlen);
void ss_batch_free(ss_batch *b); /* frees the arrays, not b; NULL-safe */
/* The engine's view of a decoded batch (borrows b's arrays). */
spk_input ss_batch_input(const ss_batch *b);
/* Default output mask for a model when the request names none. */
unsigned ss_outputs_default(const spk_model *m);
/* The SS_OUT_* bit of an output name ("spikes", "readout", "readout_all", "layers";
 * len bytes, not NUL-terminated), or 0 when it names none. */
unsigned ss_output_bit(const char *name, size_t len);

/* A step result to encode (SPEC.md section 3, "Step result"). */
typedef struct {
    const char *session_id; /* NULL for /infer and /classify */
    int has_seq;
    uint64_t seq;
    uint64_t t0;
    uint32_t steps;
    unsigned outputs;
    const spk_model *model;
    const spk_output *out;  /* as filled by spk_step() */
} ss_result;

/* Encoders return a malloc'd buffer (JSON: NUL-terminated) and its length, NULL when out of
 * memory. */
char *ss_result_json(const ss_result *r, size_t *len);
uint8_t *ss_result_pb(const ss_result *r, size_t *len);

#endif
