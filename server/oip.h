/* oip.h: the Open Inference Protocol (KServe v2 / Triton) over REST, under /v2 (SPEC.md
 * section 5). Where the KServe document and Triton differ, this follows Triton.
 *
 * Tensors. Inputs (both optional, at least one): "spikes", dense [steps, n_in] (FP32, FP64,
 * BOOL, INT8..INT64, UINT8..UINT64), and "events", [k, 3] (step, input, value) or [k, 2]
 * (value 1), with the step count in the request parameter "steps" (or from "spikes").
 * Outputs: "output_spikes" FP32 [k, 3] (the last SRC layer's spikes), and with a readout
 * "readout" FP32 [n_out] (last step), "readout_all" FP32 [steps, n_out], "prediction"
 * INT32 [1]; the classification extension on "readout" or "prediction" gives BYTES [k]
 * "score:index:label". JSON "data" (flat or nested, row-major) and the binary tensor
 * extension (Inference-Header-Content-Length, binary_data_size, binary_data) both ways.
 *
 * A request decodes into the ss_batch the v1 decoders produce (held to the same limits) and
 * runs as the same jobs: stateless as an INFER job; with a sequence_id as a STEP job of the
 * session "oip-{model}-{id}" (sequence_start opens or resets it, sequence_end closes it
 * after the batch, before the answer goes out). The answer is encoded by ss_codec_oip from
 * the step result, with the request's options (ss_result.fmt).
 *
 * A sequence request with an "id" is numbered with v1's seq, so that a repeat of the
 * sequence's last id is answered from the stored answer without stepping twice.
 *
 * Thread-safety: reentrant. A server's OIP state (ss_app.oip: the per-model statistics,
 * atomic counters, and the retry records of sequences, under a mutex) is its own, so two
 * servers in one process (the tests) do not share counters.
 */
#ifndef SS_OIP_H
#define SS_OIP_H

#include <stddef.h>
#include <stdint.h>

#include "ops.h"

struct ss_req;

#define SS_OIP_MAX_OUTPUTS 4
#define SS_OIP_ID_MAX 128
#define SS_OIP_MAX_MODELS 256 /* models with statistics; later ones are served, not counted */

/* A server's OIP state (statistics, retry records): ss_app_init creates it, ss_app_free
 * frees it (after the workers are joined). NULL when out of memory; free(NULL) a no-op. */
typedef struct ss_oip ss_oip;
ss_oip *ss_oip_create(void);
void ss_oip_free(ss_oip *o);

enum { SS_OIP_SPIKES, SS_OIP_READOUT, SS_OIP_READOUT_ALL, SS_OIP_PREDICTION };

/* What a request asks of its answer (the codec's per-request options, ss_result.fmt). */
typedef struct ss_oip_fmt {
    char id[SS_OIP_ID_MAX + 1]; /* the request's "id" ("": none) */
    unsigned n_out;
    struct {
        int which;      /* SS_OIP_* */
        int binary;     /* binary_data */
        uint32_t klass; /* classification top-k, 0: none */
    } out[SS_OIP_MAX_OUTPUTS];
    size_t head_len; /* written by the encoder: JSON bytes before the binary tail */
    size_t *head;    /* &head_len (the encoder sees the options const) */
    /* the request's life (set by ss_oip_infer) */
    int64_t t0_ns;
    uint32_t model_idx;
    uint64_t model_gen; /* the version's generation (registry.h): its statistics slot */
    int close_after; /* sequence_end */
    struct ss_app *app;
    void (*done)(ss_job *j); /* the front end's done */
} ss_oip_fmt;

/* The sequence parameters of a request. */
typedef struct {
    int has_id; /* sequence_id set, not 0 or "" */
    int is_str;
    uint64_t num;
    char str[SS_OIP_ID_MAX + 1];
    int start, end;
} ss_oip_seq;

/* Decode an infer request: head[0..head_len) the JSON header, bin[0..bin_len) the binary
 * tail (binary_data_size inputs in order). out gets the batch (ss_batch_check_limits
 * applied), fmt the answer's options, seq the sequence parameters. 0, or an ss_err with a
 * message naming the field (SS_E_INVALID, SS_E_LIMIT, SS_E_NOMEM). Nothing is allocated
 * before the shapes are checked against the body and the limits. */
int ss_oip_decode(const uint8_t *head, size_t head_len, const uint8_t *bin, size_t bin_len,
                  const spk_model *m, const ss_limits *lim, ss_batch *out, ss_oip_fmt *fmt,
                  ss_oip_seq *seq, char *err, size_t errlen);

/* The session id of a sequence of model m into out: 0, or -1 when it is not a usable id. */
int ss_oip_session_id(const char *model, const ss_oip_seq *seq, char *out, size_t cap);

extern const ss_codec ss_codec_oip; /* answers and {"error": "message"} */

/* An answer's output tensors, for an encoder of another wire format (oip_grpc.c): the
 * codec's result walks the outputs fmt asks for and hands each to a sink. */
typedef struct {
    const char *name, *dt; /* "readout", "FP32" */
    uint64_t dims[2];
    int nd;
    int binary;         /* the request asked for it as binary data */
    size_t n;           /* elements */
    const float *f;     /* FP32 values, or */
    const int32_t *i32; /* INT32 values, or */
    char *const *strs;  /* BYTES strings (classification) */
} ss_oip_tensor;

typedef struct ss_oip_sink {
    void (*tensor)(struct ss_oip_sink *s, const ss_oip_tensor *t);
} ss_oip_sink;

/* Each output tensor of r that f asks for, in order, to sink: 0, or -1 out of memory. */
int ss_oip_tensors(const ss_result *r, const ss_oip_fmt *f, ss_oip_sink *sink);
/* A tensor's binary form (little-endian values; BYTES: 4-byte length, then the bytes) as
 * calls put(ctx, bytes, n). */
void ss_oip_tensor_bytes(const ss_oip_tensor *t, void (*put)(void *ctx, const void *p, size_t n),
                         void *ctx);

/* Operations (ops.h); {id} of a /versions/{v} route is the version. */
int ss_oip_op_live(ss_op *o);
int ss_oip_op_ready(ss_op *o);
int ss_oip_op_server(ss_op *o);
int ss_oip_op_model(ss_op *o);
int ss_oip_op_model_ready(ss_op *o);
int ss_oip_op_config(ss_op *o);
int ss_oip_op_stats(ss_op *o); /* every model when {model} is empty */
int ss_oip_op_index(ss_op *o);
/* Infer: o->body holds head_len bytes of JSON and the binary tail. */
int ss_oip_infer(ss_op *o, size_t head_len);
/* HTTP: POST .../infer (reads Inference-Header-Content-Length). */
int ss_oip_http_infer(struct ss_req *r);

#endif
