/* codec.h: a wire format. Every body spikeserve reads or writes (spike batches, step
 * results, sessions, models, errors, open and classify requests) exists in JSON and in
 * protobuf (proto/api.proto) with the same meaning (SPEC.md section 3). Content negotiation
 * picks one codec per request, once; nothing else in the server asks which format it is.
 * A new format is one more ss_codec in one file.
 *
 * Decoders check everything and say what and where (batch.h); they return 0 or an ss_err
 * with a message. Encoders return a malloc'd body and its length, NULL when out of memory.
 * Thread-safety: every function is reentrant; codecs are constant.
 */
#ifndef SS_CODEC_H
#define SS_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "reply.h"
#include "session.h"

typedef struct {
    int has_timeout;
    uint32_t idle_timeout_s;
    uint32_t version; /* the model version to pin the session to; 0: the latest */
} ss_open_req;

typedef struct {
    float *values; /* malloc'd, n_in values in [0, 1] */
    uint32_t n_values;
    uint64_t seed;
    unsigned outputs;
} ss_classify_req;

typedef struct ss_codec {
    const char *name;  /* "json", "protobuf" */
    const char *ctype; /* Content-Type of what it writes */
    int (*batch)(const uint8_t *buf, size_t len, const spk_model *m, const ss_limits *lim,
                 ss_batch *out, char *err, size_t errlen);
    int (*open_req)(const uint8_t *buf, size_t len, ss_open_req *out, char *err, size_t errlen);
    int (*classify_req)(const uint8_t *buf, size_t len, const spk_model *m, ss_classify_req *out,
                        char *err, size_t errlen);
    uint8_t *(*result)(const ss_result *r, size_t *len);
    uint8_t *(*error)(const char *code, const char *message, size_t *len);
    uint8_t *(*session)(const ss_sess_info *s, size_t *len);
    uint8_t *(*model)(const spk_model *m, size_t *len);
    uint8_t *(*models)(spk_model *const *ms, size_t n, size_t *len);
} ss_codec;

/* protobuf-c's generated structs take `char *` for strings they only read; this hands them
 * a const string without a cast. */
static inline char *ss_pbstr(const char *s) {
    union {
        const char *c;
        char *m;
    } u = {s};
    return u.m;
}

extern const ss_codec ss_codec_json; /* codec_json.c */
extern const ss_codec ss_codec_pb;   /* codec_pb.c */

/* The step result encoders by name (the JSON one is NUL-terminated): also used for event
 * streams (JSON) and stored answers in snapshots (protobuf). */
char *ss_result_json(const ss_result *r, size_t *len);
uint8_t *ss_result_pb(const ss_result *r, size_t *len);

/* A protobuf StepResult (a stored answer from a snapshot) back into an answer of model m
 * (answer.h); codec_pb.c. NULL when the bytes do not decode or memory is short. */
struct ss_answer;
struct ss_answer *ss_answer_from_pb(const uint8_t *buf, size_t len, const spk_model *m,
                                    unsigned outputs);

/* Checks shared by the classify decoders: n values, each finite in [0, 1]. 0 or
 * SS_E_INVALID with a message. */
int ss_classify_check(const float *v, size_t n, const spk_model *m, char *err, size_t errlen);

/* Set r to status with body encoded by enc from the codec c (or a 503 when out of memory). */
void ss_codec_reply(ss_reply *r, const ss_codec *c, unsigned status, uint8_t *body, size_t len);

/* The session's info (ss_sess_info_get) as r's body. */
void ss_codec_session_reply(ss_reply *r, const ss_codec *c, unsigned status, ss_sess *s);

#endif
