/* ops.h: the operations of the v1 API, knowing no transport (SPEC.md section 3).
 *
 * A front end (HTTP/1.1 in http.c; gRPC and OIP next) routes a request, authenticates the
 * caller, picks the codecs, fills an ss_op and calls the operation. The operation decides
 * every rule once (session lookup and ownership, seq, limits, model lookup) and either
 * answers at once (o->reply; SS_OP_NOW) or hands a self-contained job to the session's
 * worker (SS_OP_QUEUED): the worker then calls o->done(job) with job->reply set, on the
 * worker's thread. A job the pool refuses (queue full: 429, draining: 503) is answered the
 * same way, through o->done, at once. Errors are replies with an ss_err (reply.h), which
 * the front end renders (HTTP status and body, or gRPC status and message).
 *
 * Thread-safety: operations run on the front end's thread and may run concurrently.
 */
#ifndef SS_OPS_H
#define SS_OPS_H

#include "app.h"
#include "codec.h"
#include "exec.h"
#include "sse.h"

enum { SS_OP_NOW = 0, SS_OP_QUEUED = 1 };

typedef struct ss_op {
    ss_app *app;
    uint64_t owner;      /* the caller's API key hash (0: no keys) */
    const ss_codec *in;  /* the body's format */
    const ss_codec *out; /* the answer's format */
    const uint8_t *body; /* the request body (may be NULL when len is 0) */
    size_t len;
    char model[SPK_MAX_NAME + 1]; /* {model} of the request */
    char sid[SS_ID_MAX + 1];      /* {id} of the request */
    ss_reply reply;               /* SS_OP_NOW: the answer */
    ss_job *job;                  /* SS_OP_QUEUED: the job (set before queuing is called) */
    /* SS_OP_QUEUED: called before the job is queued (a front end that must pause its
     * connection does it here), then done(job) on the worker's thread with job->ctx = ctx */
    void (*queuing)(struct ss_op *o);
    void (*done)(ss_job *j);
    void *ctx;
    int move; /* a PUT .../state of a move between replicas (cluster.h): not a creation */
} ss_op;

typedef int (*ss_op_fn)(ss_op *o);

int ss_op_healthz(ss_op *o);
int ss_op_readyz(ss_op *o);
int ss_op_metrics(ss_op *o);
int ss_op_models(ss_op *o);
int ss_op_model(ss_op *o);
int ss_op_open(ss_op *o);
int ss_op_session_get(ss_op *o);
int ss_op_close(ss_op *o);
int ss_op_reset(ss_op *o);
int ss_op_step(ss_op *o); /* o->body: one spike batch */
int ss_op_state_get(ss_op *o);
int ss_op_state_put(ss_op *o);
int ss_op_infer(ss_op *o);
int ss_op_classify(ss_op *o);

/* Who is calling: the value of its Authorization header (HTTP) or authorization metadata
 * (gRPC), NULL when absent. 0 with o->owner set, or SS_E_UNAUTHENTICATED with o->reply set
 * (no key, or an unknown one, when --api-keys is set). */
int ss_op_authenticate(ss_op *o, const char *authorization);
/* The session {id} as the caller may see it: open, visible to o->owner; it counts as
 * activity. A reference, or NULL with o->reply set (404). */
ss_sess *ss_op_session(ss_op *o);
/* Open a session of model version v under a name a protocol derives (an OIP sequence:
 * ops.c logs it like PUT's chosen ids), idle timeout --idle-timeout: a reference, or NULL
 * with o->reply set (*taken = 1 and 409 when the id is open already: look it up again).
 * v stays the caller's. */
ss_sess *ss_op_open_named(ss_op *o, struct ss_mver *v, const char *id, int *taken);
/* The model {model} at version (0: the latest): a reference, or NULL with o->reply set
 * (404 naming what is missing). */
struct ss_mver *ss_op_model_version(ss_op *o, uint32_t version);
/* A stateless job runs version v: j takes v's reference. */
void ss_op_job_model(ss_job *j, struct ss_mver *v);
/* Subscribe sub to the session {id}'s events (it takes one reference of sub on success):
 * 0, or an ss_err with o->reply set. */
int ss_op_subscribe(ss_op *o, ss_sse *sub);
/* A step job for one batch of body bytes on session s (for uploads of many batches): the
 * job, or NULL with the refusal in *reply (400/413/503). */
ss_job *ss_op_step_job(ss_op *o, ss_sess *s, const uint8_t *buf, size_t len, ss_reply *reply);
/* Queue j on worker w: o->queuing(o), then the pool; a refusal is answered through
 * o->done at once. Returns SS_OP_QUEUED. Takes j. */
int ss_op_submit(ss_op *o, ss_job *j, uint32_t w);

#endif
