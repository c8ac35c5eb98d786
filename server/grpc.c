/* grpc.c: the gRPC adapter. See grpc.h.
 *
 * A call's state (gcall) is the transport's call data, freed when the last reference to the
 * call goes (on_free). A job in a worker's queue holds a reference to its call; on_end marks
 * the call's queued jobs cancelled, so a worker drops those that have not started.
 */
#include "grpc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.pb-c.h"
#include "app.h"
#include "h2.h"
#include "health.pb-c.h"
#include "log.h"
#include "oip_grpc.h"
#include "ops.h"

enum { G_UNARY, G_STREAM_STEPS, G_EVENTS, G_HEALTH_CHECK, G_HEALTH_WATCH, G_OIP_STREAM };
enum { T_NONE, T_MODEL, T_SESSION }; /* what the request's string field names */

typedef struct {
    const char *path;
    ss_op_fn op;
    int kind;
    int target;     /* T_*: the operation's model or sid */
    unsigned field; /* the request's field holding it */
    int open;       /* no API key needed (health) */
} gmethod;

#define SVC "/spikeserve.v1.Spikeserve/"
static const gmethod methods[] = {
    {SVC "ListModels", ss_op_models, G_UNARY, T_NONE, 0, 0},
    {SVC "GetModel", ss_op_model, G_UNARY, T_MODEL, 1, 0},
    {SVC "OpenSession", ss_op_open, G_UNARY, T_MODEL, 2, 0},
    {SVC "GetSession", ss_op_session_get, G_UNARY, T_SESSION, 1, 0},
    {SVC "CloseSession", ss_op_close, G_UNARY, T_SESSION, 1, 0},
    {SVC "ResetSession", ss_op_reset, G_UNARY, T_SESSION, 1, 0},
    {SVC "Step", ss_op_step, G_UNARY, T_SESSION, 6, 0},
    {SVC "StreamSteps", NULL, G_STREAM_STEPS, T_SESSION, 6, 0},
    {SVC "Events", NULL, G_EVENTS, T_SESSION, 1, 0},
    {SVC "GetState", ss_op_state_get, G_UNARY, T_SESSION, 1, 0},
    {SVC "PutState", ss_op_state_put, G_UNARY, T_SESSION, 1, 0},
    {SVC "Infer", ss_op_infer, G_UNARY, T_MODEL, 7, 0},
    {SVC "Classify", ss_op_classify, G_UNARY, T_MODEL, 4, 0},
    {"/grpc.health.v1.Health/Check", NULL, G_HEALTH_CHECK, T_NONE, 0, 1},
    {"/grpc.health.v1.Health/Watch", NULL, G_HEALTH_WATCH, T_NONE, 0, 1},
#define OIP "/inference.GRPCInferenceService/" /* oip_grpc.h */
    {OIP "ServerLive", ss_oipg_live, G_UNARY, T_NONE, 0, 1},
    {OIP "ServerReady", ss_oipg_ready, G_UNARY, T_NONE, 0, 1},
    {OIP "ModelReady", ss_oipg_model_ready, G_UNARY, T_NONE, 0, 0},
    {OIP "ServerMetadata", ss_oipg_server, G_UNARY, T_NONE, 0, 0},
    {OIP "ModelMetadata", ss_oipg_model, G_UNARY, T_NONE, 0, 0},
    {OIP "ModelInfer", ss_oipg_infer, G_UNARY, T_NONE, 0, 0},
    {OIP "ModelStreamInfer", ss_oipg_infer, G_OIP_STREAM, T_NONE, 0, 0},
    {OIP "ModelConfig", ss_oipg_config, G_UNARY, T_NONE, 0, 0},
    {OIP "ModelStatistics", ss_oipg_stats, G_UNARY, T_NONE, 0, 0},
    {OIP "RepositoryIndex", ss_oipg_index, G_UNARY, T_NONE, 0, 0},
};
#define N_METHODS (sizeof methods / sizeof methods[0])

static const char *labels[N_METHODS];

const char *const *ss_grpc_labels(size_t *n) {
    for (size_t i = 0; i < N_METHODS; i++)
        labels[i] = methods[i].path + 1;
    *n = N_METHODS;
    return labels;
}

typedef struct {
    int ready;
    uint8_t *buf;
    size_t len;
} slot;

typedef struct gcall {
    ss_app *app;
    ss_h2_call *c;
    const gmethod *m;
    uint64_t owner;
    pthread_mutex_t mu;
    int ended, finished, got, half_closed, paused;
    ss_job *job; /* unary: queued on a worker */
    ss_sse *sub; /* Events: the subscription (one reference) */
    /* StreamSteps */
    ss_sess *sess;
    uint64_t next_in, next_out;
    uint64_t cur; /* ModelStreamInfer: the place of the request being queued */
    slot slots[SS_GRPC_WINDOW];
    ss_job *inflight[SS_GRPC_WINDOW];
} gcall;

/* ---- a little protobuf wire reading: one string field of a request ---- */

static int varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    *v = 0;
    for (int sh = 0; sh < 64 && *p < end; sh += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << sh;
        if (!(b & 0x80)) return 0;
    }
    return -1;
}

/* The last occurrence of string field `field` of msg into out ("" when absent). 0, or -1
 * when the message is malformed or the string too long. */
static int field_str(const uint8_t *msg, size_t len, unsigned field, char *out, size_t cap) {
    const uint8_t *p = msg, *end = msg + len;
    out[0] = 0;
    while (p < end) {
        uint64_t tag, v;
        if (varint(&p, end, &tag)) return -1;
        switch (tag & 7) {
        case 0:
            if (varint(&p, end, &v)) return -1;
            break;
        case 1:
            if (end - p < 8) return -1;
            p += 8;
            break;
        case 5:
            if (end - p < 4) return -1;
            p += 4;
            break;
        case 2:
            if (varint(&p, end, &v) || v > (uint64_t)(end - p)) return -1;
            if ((tag >> 3) == field) {
                if (v >= cap) return -1;
                memcpy(out, p, (size_t)v);
                out[v] = 0;
            }
            p += v;
            break;
        default:
            return -1;
        }
    }
    return 0;
}

/* ---- answers ---- */

static void finish(gcall *g, int status, const char *msg) {
    if (g->finished) return;
    g->finished = 1;
    ss_h2_finish(g->c, status, msg);
    ss_metrics_grpc_call(g->app->metrics, (size_t)(g->m - methods), status);
}

/* A unary call's answer: the body as its one message, or the error as its status. */
static void answer(gcall *g, ss_reply *rep) {
    pthread_mutex_lock(&g->mu);
    if (rep->err) {
        finish(g, ss_err_info_of(rep->err)->grpc, rep->msg);
    } else if (ss_h2_send(g->c, rep->body ? rep->body : (const uint8_t *)"", rep->len) == -1) {
        finish(g, 8, "out of memory for the answer");
    } else {
        finish(g, 0, NULL);
    }
    pthread_mutex_unlock(&g->mu);
}

static void unary_queuing(ss_op *o) {
    gcall *g = o->ctx;
    ss_h2_call_ref(g->c); /* the job holds the call */
    pthread_mutex_lock(&g->mu);
    g->job = o->job;
    pthread_mutex_unlock(&g->mu);
}

static void unary_done(ss_job *j) {
    gcall *g = j->ctx;
    pthread_mutex_lock(&g->mu);
    g->job = NULL;
    pthread_mutex_unlock(&g->mu);
    answer(g, &j->reply);
    ss_h2_call *c = g->c;
    ss_job_free(j);
    ss_h2_call_unref(c);
}

/* An operation's request from a message: the model or session its field names. 0, or -1
 * (answered: a malformed message). */
static int op_init(gcall *g, ss_op *o, const uint8_t *msg, size_t len) {
    memset(o, 0, sizeof *o);
    o->app = g->app;
    o->owner = g->owner;
    o->in = o->out = &ss_codec_pb;
    o->body = msg;
    o->len = len;
    o->ctx = g;
    char *dst = g->m->target == T_MODEL ? o->model : g->m->target == T_SESSION ? o->sid : NULL;
    size_t cap = g->m->target == T_MODEL ? sizeof o->model : sizeof o->sid;
    if (dst && field_str(msg, len, g->m->field, dst, cap) != 0) {
        pthread_mutex_lock(&g->mu);
        finish(g, 3, "the request message does not decode (or names too long an id)");
        pthread_mutex_unlock(&g->mu);
        return -1;
    }
    return 0;
}

static void unary(gcall *g, const uint8_t *msg, size_t len) {
    if (g->got++) {
        pthread_mutex_lock(&g->mu);
        finish(g, 12, "a unary method takes one request message");
        pthread_mutex_unlock(&g->mu);
        return;
    }
    ss_op o;
    if (op_init(g, &o, msg, len) != 0) return;
    o.queuing = unary_queuing;
    o.done = unary_done;
    if (g->m->op(&o) == SS_OP_NOW) answer(g, &o.reply);
    ss_reply_clear(&o.reply);
}

/* ---- StreamSteps ---- */

/* Send the answers that are next in order (under g->mu); end the call after the last. */
static void emit(gcall *g) {
    while (!g->finished && g->next_out < g->next_in) {
        slot *s = &g->slots[g->next_out % SS_GRPC_WINDOW];
        if (!s->ready) break;
        int rc = ss_h2_send(g->c, s->buf, s->len);
        if (rc == SS_H2_EFULL) break; /* the client does not read: on_drained goes on */
        free(s->buf);
        s->buf = NULL;
        s->ready = 0;
        g->next_out++;
        if (rc == SS_H2_ECLOSED) g->finished = 1;
    }
    if (g->paused && g->next_in - g->next_out < SS_GRPC_WINDOW) {
        g->paused = 0;
        ss_h2_resume(g->c);
    }
    if (g->half_closed && g->next_out == g->next_in) finish(g, 0, NULL);
}

/* Batch idx's answer (under g->mu): a result, or its refusal as a StepResult with status and
 * error. */
static void settle(gcall *g, uint64_t idx, ss_reply *rep, const ss_batch *b) {
    slot *s = &g->slots[idx % SS_GRPC_WINDOW];
    if (rep->err) {
        Spikeserve__ErrorDetail d = SPIKESERVE__ERROR_DETAIL__INIT;
        Spikeserve__StepResult r = SPIKESERVE__STEP_RESULT__INIT;
        d.code = ss_pbstr(rep->code);
        d.message = rep->msg;
        r.session_id = g->sess ? g->sess->id : NULL;
        r.has_seq = b && b->has_seq;
        r.seq = b ? b->seq : 0;
        r.has_status = 1;
        r.status = rep->status;
        r.error = &d;
        s->len = spikeserve__step_result__get_packed_size(&r);
        if ((s->buf = malloc(s->len + 1))) spikeserve__step_result__pack(&r, s->buf);
    } else {
        s->buf = rep->body; /* the result, in the protobuf codec */
        s->len = rep->len;
        rep->body = NULL;
        rep->len = 0;
    }
    if (!s->buf) s->len = 0; /* out of memory: an empty message keeps the order */
    s->ready = 1;
}

static void stream_queuing(ss_op *o) {
    gcall *g = o->ctx;
    ss_h2_call_ref(g->c);
    pthread_mutex_lock(&g->mu);
    g->inflight[o->job->tag % SS_GRPC_WINDOW] = o->job;
    pthread_mutex_unlock(&g->mu);
}

static void oip_settle(gcall *g, uint64_t idx, const ss_reply *rep);

/* A StreamSteps batch or a ModelStreamInfer request has run: its answer in its slot. */
static void stream_done(ss_job *j) {
    gcall *g = j->ctx;
    pthread_mutex_lock(&g->mu);
    g->inflight[j->tag % SS_GRPC_WINDOW] = NULL;
    if (g->m->kind == G_OIP_STREAM)
        oip_settle(g, j->tag, &j->reply);
    else
        settle(g, j->tag, &j->reply, &j->batch);
    emit(g);
    pthread_mutex_unlock(&g->mu);
    ss_h2_call *c = g->c;
    ss_job_free(j);
    ss_h2_call_unref(c);
}

/* After a message: pause the call when its window is full (1), else 0. */
static int window_full(gcall *g) {
    pthread_mutex_lock(&g->mu);
    int pause = g->next_in - g->next_out >= SS_GRPC_WINDOW && !g->finished;
    if (pause) g->paused = 1;
    pthread_mutex_unlock(&g->mu);
    return pause;
}

static int stream_message(gcall *g, const uint8_t *msg, size_t len) {
    ss_op o;
    if (op_init(g, &o, msg, len) != 0) return 0;
    if (!g->sess) {
        const char *h = ss_h2_header(g->c, "spikeserve-session-id");
        if (!o.sid[0] && h) snprintf(o.sid, sizeof o.sid, "%s", h);
        if (!(g->sess = ss_op_session(&o))) {
            pthread_mutex_lock(&g->mu);
            finish(g, ss_err_info_of(o.reply.err)->grpc, o.reply.msg);
            pthread_mutex_unlock(&g->mu);
            ss_reply_clear(&o.reply);
            return 0;
        }
    } else if (o.sid[0] && strcmp(o.sid, g->sess->id) != 0) {
        ss_reply_fail(&o.reply, SS_E_INVALID, "session_id %s: this call steps session %s", o.sid,
                      g->sess->id);
    }
    pthread_mutex_lock(&g->mu);
    uint64_t idx = g->next_in++;
    pthread_mutex_unlock(&g->mu);
    ss_job *j = o.reply.err ? NULL : ss_op_step_job(&o, g->sess, msg, len, &o.reply);
    if (!j) { /* refused before it ran: answered in its place */
        pthread_mutex_lock(&g->mu);
        settle(g, idx, &o.reply, NULL);
        emit(g);
        pthread_mutex_unlock(&g->mu);
    } else {
        j->tag = idx;
        o.queuing = stream_queuing;
        o.done = stream_done;
        ss_op_submit(&o, j, g->sess->worker);
    }
    ss_reply_clear(&o.reply);
    return window_full(g);
}

/* ---- ModelStreamInfer: StreamSteps' ordered window, each message a ModelInfer ---- */

/* Request idx's answer (under g->mu): a ModelStreamInferResponse (oip_grpc.h). */
static void oip_settle(gcall *g, uint64_t idx, const ss_reply *rep) {
    slot *s = &g->slots[idx % SS_GRPC_WINDOW];
    if (!(s->buf = ss_oipg_stream_answer(rep, &s->len))) s->len = 0;
    s->ready = 1;
}

static void oip_queuing(ss_op *o) {
    gcall *g = o->ctx;
    o->job->tag = g->cur; /* the loop thread queues one message at a time */
    stream_queuing(o);
}

static int oip_stream_message(gcall *g, const uint8_t *msg, size_t len) {
    ss_op o;
    if (op_init(g, &o, msg, len) != 0) return 0;
    pthread_mutex_lock(&g->mu);
    uint64_t idx = g->cur = g->next_in++;
    pthread_mutex_unlock(&g->mu);
    o.queuing = oip_queuing;
    o.done = stream_done;
    if (g->m->op(&o) == SS_OP_NOW) { /* refused before it ran: answered in its place */
        pthread_mutex_lock(&g->mu);
        oip_settle(g, idx, &o.reply);
        emit(g);
        pthread_mutex_unlock(&g->mu);
    }
    ss_reply_clear(&o.reply);
    return window_full(g);
}

/* ---- Events: a subscriber whose events go to the call (sse.h's sink) ---- */

/* A SessionEvent {name = 1, step = 2 (StepResult bytes), reason = 3}, written by hand so
 * the step's bytes are not decoded and encoded again. */
static uint8_t *session_event(const char *name, const uint8_t *step, size_t step_len,
                              const char *reason, size_t *len) {
    size_t nn = strlen(name), rn = reason ? strlen(reason) : 0;
    uint8_t *b = malloc(nn + step_len + rn + 32), *p = b;
    if (!b) return NULL;
    const struct {
        uint8_t tag;
        const void *v;
        size_t n;
        int present;
    } f[3] = {{0x0a, name, nn, 1},
              {0x12, step, step_len, step != NULL},
              {0x1a, reason, rn, reason != NULL}};
    for (int i = 0; i < 3; i++) {
        if (!f[i].present) continue;
        *p++ = f[i].tag;
        for (uint64_t v = f[i].n;; v >>= 7) { /* varint length */
            *p++ = (uint8_t)(v & 0x7f) | (v >= 0x80 ? 0x80 : 0);
            if (v < 0x80) break;
        }
        memcpy(p, f[i].v, f[i].n);
        p += f[i].n;
    }
    *len = (size_t)(p - b);
    return b;
}

static int sink_event(void *arg, const char *name, const uint8_t *pb, size_t len) {
    gcall *g = arg;
    size_t n;
    uint8_t *msg = session_event(name, pb, len, NULL, &n);
    int rc = msg ? ss_h2_send(g->c, msg, n) : -1;
    free(msg);
    return rc == 0 ? 0 : -1; /* EFULL: a slow consumer, dropped like an SSE one */
}

static void sink_end(void *arg, const char *reason) {
    gcall *g = arg;
    size_t n;
    uint8_t *msg = session_event("end", NULL, 0, reason, &n);
    if (msg) ss_h2_send(g->c, msg, n);
    free(msg);
    pthread_mutex_lock(&g->mu);
    finish(g, 0, NULL);
    pthread_mutex_unlock(&g->mu);
}

static void sink_release(void *arg) {
    gcall *g = arg;
    ss_h2_call_unref(g->c);
}

static void events(gcall *g, const uint8_t *msg, size_t len) {
    ss_op o;
    if (op_init(g, &o, msg, len) != 0) return;
    ss_h2_call_ref(g->c); /* the subscriber's, dropped by sink_release */
    ss_sse_sink sink = {sink_event, sink_end, sink_release, g};
    ss_sse *sub = ss_sse_create_sink(&sink);
    if (!sub) {
        ss_h2_call_unref(g->c);
        ss_reply_fail(&o.reply, SS_E_NOMEM, "out of memory");
    } else if (ss_op_subscribe(&o, sub) != 0) {
        ss_sse_unref(sub); /* both references: nothing holds it */
        ss_sse_unref(sub);
    } else {
        pthread_mutex_lock(&g->mu);
        g->sub = sub;
        pthread_mutex_unlock(&g->mu);
    }
    if (o.reply.err) {
        pthread_mutex_lock(&g->mu);
        finish(g, ss_err_info_of(o.reply.err)->grpc, o.reply.msg);
        pthread_mutex_unlock(&g->mu);
    }
    ss_reply_clear(&o.reply);
}

/* ---- health ---- */

static void health(gcall *g, const uint8_t *msg, size_t len) {
    Grpc__Health__V1__HealthCheckRequest *q =
        grpc__health__v1__health_check_request__unpack(NULL, len, msg);
    pthread_mutex_lock(&g->mu);
    if (!q) {
        finish(g, 3, "not a grpc.health.v1.HealthCheckRequest");
    } else if (q->service[0] && strcmp(q->service, "spikeserve.v1.Spikeserve") != 0) {
        finish(g, 5, "unknown service");
    } else {
        Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
        r.status = __atomic_load_n(&g->app->draining, __ATOMIC_RELAXED)
                       ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
                       : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
        uint8_t buf[16];
        size_t n = grpc__health__v1__health_check_response__pack(&r, buf);
        ss_h2_send(g->c, buf, n);
        if (g->m->kind == G_HEALTH_CHECK) finish(g, 0, NULL); /* Watch stays open */
    }
    pthread_mutex_unlock(&g->mu);
    if (q) grpc__health__v1__health_check_request__free_unpacked(q, NULL);
}

/* ---- transport callbacks ---- */

static int on_call(void *ctx, ss_h2_call *c, char *msg, size_t msglen) {
    ss_app *a = ctx;
    const char *path = ss_h2_path(c);
    const gmethod *m = NULL;
    for (size_t i = 0; i < N_METHODS; i++)
        if (!strcmp(path, methods[i].path)) m = &methods[i];
    if (!m) {
        snprintf(msg, msglen, "no method %.200s", path);
        return 12;
    }
    uint64_t owner = 0;
    if (!m->open) {
        ss_op o = {.app = a};
        if (ss_op_authenticate(&o, ss_h2_header(c, "authorization")) != 0) {
            snprintf(msg, msglen, "%s", o.reply.msg);
            return ss_err_info_of(o.reply.err)->grpc;
        }
        owner = o.owner;
        if (__atomic_load_n(&a->draining, __ATOMIC_RELAXED)) {
            snprintf(msg, msglen, "server is shutting down");
            return 14;
        }
    }
    gcall *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(msg, msglen, "out of memory");
        return 8;
    }
    g->app = a;
    g->c = c;
    g->m = m;
    g->owner = owner;
    pthread_mutex_init(&g->mu, NULL);
    ss_h2_set_call_data(c, g);
    ss_metrics_grpc_streams(a->metrics, 1);
    return 0;
}

static int on_message(void *ctx, ss_h2_call *c, const uint8_t *msg, size_t len) {
    (void)ctx;
    gcall *g = ss_h2_call_data(c);
    if (g->finished) return 0;
    switch (g->m->kind) {
    case G_STREAM_STEPS:
        return stream_message(g, msg, len);
    case G_OIP_STREAM:
        return oip_stream_message(g, msg, len);
    case G_UNARY:
        unary(g, msg, len);
        return 0;
    case G_EVENTS:
        if (!g->got++) events(g, msg, len);
        return 0;
    default:
        health(g, msg, len);
        return 0;
    }
}

static void on_half_close(void *ctx, ss_h2_call *c) {
    (void)ctx;
    gcall *g = ss_h2_call_data(c);
    pthread_mutex_lock(&g->mu);
    g->half_closed = 1;
    if (g->m->kind == G_STREAM_STEPS || g->m->kind == G_OIP_STREAM)
        emit(g);
    else if (!g->got && g->m->kind != G_HEALTH_WATCH && g->m->kind != G_EVENTS)
        finish(g, 12, "a unary method takes one request message");
    pthread_mutex_unlock(&g->mu);
}

static void on_writable(void *ctx, ss_h2_call *c) {
    (void)ctx;
    gcall *g = ss_h2_call_data(c);
    pthread_mutex_lock(&g->mu);
    if (g->m->kind == G_STREAM_STEPS || g->m->kind == G_OIP_STREAM) emit(g);
    pthread_mutex_unlock(&g->mu);
}

static void on_end(void *ctx, ss_h2_call *c, int reason) {
    ss_app *a = ctx;
    gcall *g = ss_h2_call_data(c);
    pthread_mutex_lock(&g->mu);
    g->ended = 1;
    if (g->job) __atomic_store_n(&g->job->cancelled, 1, __ATOMIC_RELAXED);
    for (size_t i = 0; i < SS_GRPC_WINDOW; i++)
        if (g->inflight[i]) __atomic_store_n(&g->inflight[i]->cancelled, 1, __ATOMIC_RELAXED);
    if (!g->finished && reason) { /* ended by the client, a deadline or the connection */
        g->finished = 1;
        ss_metrics_grpc_call(a->metrics, (size_t)(g->m - methods), reason);
    }
    g->finished = 1;
    ss_sse *sub = g->sub;
    g->sub = NULL;
    pthread_mutex_unlock(&g->mu);
    if (sub) { /* outside g->mu: the sink takes it under the subscriber's lock */
        ss_sse_end(sub, "cancelled");
        ss_sse_unref(sub); /* the session drops its own when it next looks */
    }
    ss_metrics_grpc_streams(a->metrics, -1);
}

static void on_free(void *ctx, ss_h2_call *c) {
    (void)ctx;
    gcall *g = ss_h2_call_data(c);
    if (!g) return;
    for (size_t i = 0; i < SS_GRPC_WINDOW; i++)
        free(g->slots[i].buf);
    ss_sess_unref(g->sess);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

/* ---- life ---- */

int ss_grpc_start(ss_app *a, char *err, size_t errlen) {
    if (!strcmp(a->cfg.grpc_port, "0")) return 0;
    uint32_t port = 0;
    if (strcmp(a->cfg.grpc_port, "any") != 0) {
        char *end;
        unsigned long v = strtoul(a->cfg.grpc_port, &end, 10);
        if (*end || v > 65535 || a->cfg.grpc_port[0] < '0' || a->cfg.grpc_port[0] > '9') {
            snprintf(err, errlen, "--grpc-port %s: a port 1..65535, 0 (off) or any",
                     a->cfg.grpc_port);
            return -1;
        }
        port = (uint32_t)v;
    }
    ss_h2_params p = {0};
    p.bind = a->cfg.bind;
    p.port = (uint16_t)port;
    p.max_connections = a->cfg.grpc_max_connections;
    p.max_streams_per_conn = a->cfg.grpc_max_streams;
    p.max_message_bytes = a->cfg.max_body_bytes;
    p.idle_timeout_s = a->cfg.connection_timeout;
    p.ctx = a;
    p.on_call = on_call;
    p.on_message = on_message;
    p.on_half_close = on_half_close;
    p.on_writable = on_writable;
    p.on_end = on_end;
    p.on_free = on_free;
    if (ss_h2_start(&a->h2, &p, err, errlen) != 0) return -1;
    a->grpc_port = ss_h2_port(a->h2);
    return 0;
}

void ss_grpc_stop_accepting(ss_app *a) {
    if (a->h2) ss_h2_stop_accepting(a->h2);
}

void ss_grpc_drain(ss_app *a, uint32_t timeout_ms) {
    if (a->h2) ss_h2_drain(a->h2, timeout_ms);
}

void ss_grpc_free(ss_app *a) {
    ss_h2_free(a->h2);
    a->h2 = NULL;
}
