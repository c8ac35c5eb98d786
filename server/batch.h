/* batch.h: spike batches decoded from JSON (jansson) and protobuf (proto/api.proto) with
 * the same meaning (SPEC.md section 3), the limits a batch is held to, and the step result
 * the codecs (codec.h) encode. Shared by the server and the command-line runner
 * (spikeserve-run).
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
#include "../engine/output.h"
#include "../engine/step.h"
#include "err.h"

/* Which outputs a batch asks for ("outputs": [...]). Absent: spikes, plus readout and
 * prediction when the model has a readout. */
enum {
    SS_OUT_SPIKES = 1u << 0,      /* "spikes": last SRC layer's events */
    SS_OUT_READOUT = 1u << 1,     /* "readout": readout at the last step (+ prediction) */
    SS_OUT_READOUT_ALL = 1u << 2, /* "readout_all": readout at every step */
    SS_OUT_LAYERS = 1u << 3,      /* "layers": every layer's events */
    SS_OUT_ALL = 0xfu,
};

/* Decoders return 0 or an ss_err (err.h): SS_E_INVALID (400), SS_E_LIMIT (413, the message
 * names the limit) or SS_E_NOMEM. */
typedef struct {
    uint32_t max_steps;        /* steps per batch */
    uint32_t max_events;       /* events per batch (dense rows count steps x n_in values) */
    uint64_t max_output_bytes; /* worst-case output memory of the batch; 0: no limit */
} ss_limits;

typedef struct {
    int has_seq;
    uint64_t seq;
    uint32_t steps;
    spk_event *events; /* sorted by step */
    size_t n_events;
    float *dense;     /* steps x n_in, or NULL */
    unsigned outputs; /* SS_OUT_* */
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
    const spk_output *out; /* as filled by spk_step() */
    const ss_batch *input; /* NULL, or the batch whose input events the JSON also lists
                              ("inputs": [[step, input, value], ...]; event streams) */
    const void *fmt;       /* the request's options for its codec (OIP: names, binary, id), or
                              NULL */
} ss_result;

/* The readout row of the last step, or NULL when the result carries none. */
const float *ss_result_last_readout(const ss_result *r);

/* The engine's output plan flags (output.h) for an output mask, and the bytes a batch's
 * outputs need. */
unsigned ss_batch_plan(unsigned outputs);
size_t ss_batch_out_bytes(const spk_model *m, const ss_batch *b);
/* The limits every decoded batch is held to after its fields are read (steps and outputs
 * against max_output_bytes): 0 or SS_E_LIMIT with a message naming the flag. Decoders call
 * it; so does write-ahead log replay. */
int ss_batch_check_limits(const spk_model *m, const ss_batch *b, const ss_limits *lim, char *err,
                          size_t errlen);

#endif
