/* stream.c: POST /v1/sessions/{id}/stream, chunked NDJSON in.
 *
 * Each complete line is decoded and queued on the session's worker as soon as it has
 * arrived. When the worker's queue is full the rest of the upload stays in
 * libmicrohttpd's buffer, the connection is suspended, and the worker wakes it when it
 * takes jobs off the queue: the upload is paused, never buffered without bound. A line is
 * limited to --max-body-bytes (413 at the end of the upload; the rest is discarded).
 *
 * Per-line results go to GET /events as `step` events (as for /steps). When the upload
 * ends and every line has run, the response is one JSON summary:
 *   {"session_id", "lines", "ok", "failed", "t", "last_seq",
 *    "errors": [{"line": 3, "status": 409, "error": {"code", "message"}}, ...]}
 * (the first 16 failed lines; line numbers count from 1, blank lines are skipped).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "lines.h"

#define MAX_ERRORS 16

typedef struct ss_stream {
    pthread_mutex_t mu;
    ss_req *req;
    ss_sess *sess;
    ss_lines split; /* the NDJSON splitter */
    int ended;
    uint64_t lines, ok, failed;
    json_t *errors;
    uint32_t outstanding;
    int wait_done, wait_space;
    ss_job *blocked; /* a decoded line waiting for room in the queue */
    ss_pool_waiter waiter;
} ss_stream;

static void destroy(ss_stream *s) {
    ss_job_free(s->blocked);
    ss_sess_unref(s->sess);
    json_decref(s->errors);
    ss_lines_free(&s->split);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* The request is over (answered, or the client went away). Lines still on the worker keep
 * the stream alive; the last one to finish frees it. */
void ss_stream_free(ss_stream *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->req = NULL;
    int last = s->outstanding == 0;
    pthread_mutex_unlock(&s->mu);
    if (last) destroy(s);
}

/* A failed line (rep holds its error); under s->mu. */
static void record_error(ss_stream *s, uint64_t line, const ss_reply *rep) {
    s->failed++;
    if (json_array_size(s->errors) >= MAX_ERRORS) return;
    json_array_append_new(s->errors, json_pack("{s:I,s:i,s:{s:s,s:s}}", "line", (json_int_t)line,
                                               "status", (int)rep->status, "error", "code",
                                               rep->code ? rep->code : "", "message", rep->msg));
}

/* Worker thread: one line has run. */
static void line_done(ss_job *j) {
    ss_stream *s = j->ctx;
    pthread_mutex_lock(&s->mu);
    if (j->reply.status == 200)
        s->ok++;
    else
        record_error(s, j->tag, &j->reply);
    s->outstanding--;
    int orphan_done = !s->req && s->outstanding == 0;
    if (s->req && s->wait_done && s->outstanding == 0) {
        s->wait_done = 0;
        MHD_resume_connection(s->req->conn);
    }
    pthread_mutex_unlock(&s->mu);
    ss_job_free(j);
    if (orphan_done) destroy(s);
}

/* Worker thread: there is room in the queue again (or the pool is closing). */
static void space_wake(void *arg) {
    ss_stream *s = arg;
    pthread_mutex_lock(&s->mu);
    if (s->wait_space && s->req) {
        s->wait_space = 0;
        MHD_resume_connection(s->req->conn);
    }
    pthread_mutex_unlock(&s->mu);
}

int ss_stream_begin(ss_req *r) {
    ss_sess *sess = ss_op_session(&r->op); /* the same lookup as every route: it is activity */
    if (!sess) {
        ss_http_send(r, &r->op.reply);
        return -1;
    }
    ss_stream *s = calloc(1, sizeof *s);
    if (!s || !(s->errors = json_array())) {
        free(s);
        ss_sess_unref(sess);
        ss_http_fail(r, SS_E_NOMEM, "out of memory");
        return -1;
    }
    pthread_mutex_init(&s->mu, NULL);
    s->req = r;
    s->sess = sess;
    ss_lines_init(&s->split, r->app->cfg.max_body_bytes);
    s->waiter.wake = space_wake;
    s->waiter.arg = s;
    r->stream = s;
    return 0;
}

/* Queue s->blocked. 0 queued; 1 paused (connection suspended, waiting for room). */
static int push_blocked(ss_stream *s) {
    ss_req *r = s->req;
    ss_job *j = s->blocked;
    pthread_mutex_lock(&s->mu);
    s->outstanding++;
    pthread_mutex_unlock(&s->mu);
    int rc = ss_pool_submit(r->app->pool, s->sess->worker, j, 0);
    if (rc == SS_POOL_EFULL) {
        pthread_mutex_lock(&s->mu);
        s->wait_space = 1;
        MHD_suspend_connection(r->conn);
        pthread_mutex_unlock(&s->mu);
        rc = ss_pool_submit_or_wait(r->app->pool, s->sess->worker, j, &s->waiter);
        if (rc == 1) { /* the worker wakes us; the line is not queued yet */
            ss_metrics_stream_paused(r->app->metrics);
            pthread_mutex_lock(&s->mu);
            s->outstanding--;
            pthread_mutex_unlock(&s->mu);
            return 1;
        }
        pthread_mutex_lock(&s->mu);
        if (s->wait_space) { /* not woken: undo the pause ourselves */
            s->wait_space = 0;
            MHD_resume_connection(r->conn);
        }
        pthread_mutex_unlock(&s->mu);
    }
    s->blocked = NULL;
    if (rc != 0) { /* closed: the line fails */
        ss_reply_fail(&j->reply, SS_E_UNAVAILABLE, "server is shutting down");
        pthread_mutex_lock(&s->mu);
        s->outstanding--;
        record_error(s, j->tag, &j->reply);
        pthread_mutex_unlock(&s->mu);
        ss_job_free(j);
    }
    return 0;
}

/* One non-blank, trimmed line (lines.h). */
static void take_line(ss_stream *s, const char *p, size_t n) {
    uint64_t no = ++s->lines;
    ss_reply refusal;
    memset(&refusal, 0, sizeof refusal);
    ss_job *j = ss_op_step_job(&s->req->op, s->sess, (const uint8_t *)p, n, &refusal);
    if (!j) {
        pthread_mutex_lock(&s->mu);
        record_error(s, no, &refusal);
        pthread_mutex_unlock(&s->mu);
        ss_reply_clear(&refusal);
        return;
    }
    j->codec = &ss_codec_json;
    j->tag = no;
    j->done = line_done;
    j->ctx = s;
    s->blocked = j;
}

static int on_line(void *arg, const char *p, size_t n) {
    ss_stream *s = arg;
    take_line(s, p, n);
    return s->blocked && push_blocked(s); /* paused: the rest waits in MHD's buffer */
}

static int on_last_line(void *arg, const char *p, size_t n) {
    take_line(arg, p, n);
    return 0;
}

enum MHD_Result ss_stream_data(ss_req *r, const char *data, size_t *size) {
    ss_stream *s = r->stream;
    if (s->blocked && push_blocked(s)) return MHD_YES; /* still paused; data kept */
    size_t used;
    if (ss_lines_feed(&s->split, data, *size, &used, on_line, s) != 0) return MHD_NO;
    *size -= used;
    return MHD_YES;
}

enum MHD_Result ss_stream_end(ss_req *r) {
    ss_stream *s = r->stream;
    if (!s->ended) {
        s->ended = 1;
        ss_lines_end(&s->split, on_last_line, s); /* nothing when too long: a 413 below */
    }
    if (s->blocked && push_blocked(s)) return MHD_YES;
    pthread_mutex_lock(&s->mu);
    if (s->outstanding) {
        s->wait_done = 1;
        MHD_suspend_connection(r->conn);
        pthread_mutex_unlock(&s->mu);
        return MHD_YES;
    }
    pthread_mutex_unlock(&s->mu);
    if (s->split.too_long)
        return ss_http_fail(r, SS_E_LINE_TOO_LARGE,
                            "a line exceeds the limit %llu bytes (--max-body-bytes)",
                            (unsigned long long)r->app->cfg.max_body_bytes);
    ss_sess *ss = s->sess;
    pthread_mutex_lock(&ss->mu);
    uint64_t t = ss->t, last_seq = ss->last_seq;
    pthread_mutex_unlock(&ss->mu);
    json_t *j =
        json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:O}", "session_id", ss->id, "lines",
                  (json_int_t)s->lines, "ok", (json_int_t)s->ok, "failed", (json_int_t)s->failed,
                  "t", (json_int_t)t, "last_seq", (json_int_t)last_seq, "errors", s->errors);
    char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!txt) return ss_http_fail(r, SS_E_NOMEM, "out of memory");
    ss_reply rep;
    memset(&rep, 0, sizeof rep);
    ss_reply_set(&rep, 200, SS_CT_JSON, txt, strlen(txt));
    return ss_http_send(r, &rep);
}
