/* wire.h: the server's own bodies in JSON and protobuf (proto/api.proto): errors, session
 * info, model metadata, open-session and classify requests. Spike batches and step results
 * are batch.h's. A ss_reply is a finished HTTP answer: status, headers and body.
 * Thread-safety: reentrant. */
#ifndef SS_WIRE_H
#define SS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/model.h"
#include "session.h"

#define SS_CT_JSON "application/json"
#define SS_CT_PB "application/x-protobuf"

typedef struct {
    unsigned status;
    uint8_t *body; /* malloc'd, owned by the reply */
    size_t len;
    const char *ctype;
    char allow[48];       /* Allow header (405) */
    unsigned retry_after; /* Retry-After seconds (429/503), 0: none */
    char location[128];   /* Location header (201) */
} ss_reply;

void ss_reply_clear(ss_reply *r); /* frees the body, zeroes the reply */
/* An error body {"error":{"code","message"}} or spikeserve.Error. */
void ss_reply_error(ss_reply *r, int pb, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Take ownership of body. */
void ss_reply_set(ss_reply *r, unsigned status, const char *ctype, void *body, size_t len);
/* protobuf-c's generated structs take `char *` for strings they only read; this hands them
 * a const string without a cast. */
static inline char *ss_pbstr(const char *s) {
    union {
        const char *c;
        char *m;
    } u = {s};
    return u.m;
}

/* The error code string for a status ("invalid_argument" for 400, ...). */
const char *ss_wire_code(unsigned status);

/* Session info (GET /v1/sessions/{id}, open, reset, PUT state). Reads s's metadata under
 * its lock. */
int ss_wire_session(ss_reply *r, int pb, unsigned status, ss_sess *s);
int ss_wire_model(ss_reply *r, int pb, const spk_model *m);
int ss_wire_models(ss_reply *r, int pb, spk_model *const *ms, size_t n);

/* Requests. 0, or -1 with a message (a 400). */
int ss_wire_open_req(const uint8_t *buf, size_t len, int pb, int *has_timeout, uint32_t *timeout,
                     char *err, size_t errlen);
typedef struct {
    float *values;
    uint32_t n_values;
    uint64_t seed;
    unsigned outputs;
} ss_classify_req;
int ss_wire_classify_req(const uint8_t *buf, size_t len, int pb, const spk_model *m,
                         ss_classify_req *out, char *err, size_t errlen);

#endif
