/* http.c: the HTTP/1.1 front end: daemon setup, the walk of the route table, content
 * negotiation, bodies, replies and the access log.
 *
 * Request life: first call (headers) -> route (routes.h), negotiate, authenticate, check
 * Content-Type and Content-Length against the row (413 at once, before any byte is read);
 * body calls -> appended while under the limit, counted and dropped past it (chunked
 * uploads), or handed to a streaming handler; last call -> the row's operation. An
 * operation that queued a job has suspended the connection (ss_op's queuing hook); the
 * worker's done callback resumes it, and the next call sends the job's reply.
 */
#include "http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "cluster.h"
#include "log.h"
#include "oip.h"

/* ---- negotiation ---- */

static int media_is(const char *s, size_t n, const char *type) {
    return strlen(type) == n && !strncasecmp(s, type, n);
}

/* The codec for an Accept header among the formats a route answers (routes.h), or NULL
 * when nothing acceptable. Without Accept: JSON, or protobuf for a protobuf-only route. */
static const ss_codec *negotiate(const char *accept, unsigned out) {
    if (out & SS_FMT_ANY) return &ss_codec_json; /* for its errors */
    int pb_only = !(out & SS_FMT_JSON);
    if (!accept || !*accept) return pb_only ? &ss_codec_pb : &ss_codec_json;
    const char *p = accept;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p) break;
        const char *e = p + strcspn(p, ",");
        size_t n = strcspn(p, ";,");
        while (n && p[n - 1] == ' ')
            n--;
        const char *q = strstr(p, "q=");
        int zero = q && q < e && atof(q + 2) <= 0;
        if (!zero) {
            int any = media_is(p, n, "*/*"), app = media_is(p, n, "application/*");
            int pb = (out & SS_FMT_PB) &&
                     (media_is(p, n, "application/x-protobuf") ||
                      media_is(p, n, "application/protobuf") ||
                      (pb_only && (any || app || media_is(p, n, "application/octet-stream"))));
            if (pb) return &ss_codec_pb;
            if ((out & SS_FMT_JSON) && (any || app || media_is(p, n, "application/json")))
                return &ss_codec_json;
            if ((out & SS_FMT_TEXT) && (media_is(p, n, "text/event-stream") ||
                                        media_is(p, n, "text/plain") || media_is(p, n, "text/*")))
                return &ss_codec_json;
        }
        p = e;
    }
    return NULL;
}

/* The codec of a Content-Type among the formats a route takes, or NULL (415). */
static const ss_codec *content_type(const char *ct, unsigned in) {
    if (!ct || !*ct) return (in & SS_FMT_BYTES) ? &ss_codec_pb : &ss_codec_json;
    size_t n = strcspn(ct, "; ");
    if (media_is(ct, n, "application/x-protobuf") || media_is(ct, n, "application/protobuf"))
        return (in & SS_FMT_PB) ? &ss_codec_pb : NULL;
    if (in & SS_FMT_BYTES) return media_is(ct, n, "application/octet-stream") ? &ss_codec_pb : NULL;
    if (media_is(ct, n, "application/json")) return (in & SS_FMT_JSON) ? &ss_codec_json : NULL;
    if (media_is(ct, n, "application/x-ndjson") || media_is(ct, n, "application/jsonl") ||
        media_is(ct, n, "text/plain"))
        return (in & SS_FMT_NDJSON) ? &ss_codec_json : NULL;
    return NULL;
}

/* ---- replies ---- */

enum MHD_Result ss_http_send(ss_req *r, ss_reply *rep) {
    ss_reply_render(rep, r->op.out); /* out of memory: an empty body, the status stays */
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(rep->len, rep->body ? (void *)rep->body : (void *)"",
                                        rep->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        ss_reply_clear(rep);
        return MHD_NO;
    }
    rep->body = NULL; /* the response owns it now */
    if (rep->ctype) MHD_add_response_header(resp, "Content-Type", rep->ctype);
    if (rep->allow[0]) MHD_add_response_header(resp, "Allow", rep->allow);
    if (rep->location[0]) MHD_add_response_header(resp, "Location", rep->location);
    if (rep->hname) MHD_add_response_header(resp, rep->hname, rep->hvalue);
    if (rep->status == 401)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"spikeserve\"");
    if (r->owner_hdr[0]) MHD_add_response_header(resp, SS_HDR_OWNER, r->owner_hdr);
    if (rep->retry_after) {
        char ra[16];
        snprintf(ra, sizeof ra, "%u", rep->retry_after);
        MHD_add_response_header(resp, "Retry-After", ra);
    }
    r->status = rep->status;
    enum MHD_Result ok = MHD_queue_response(r->conn, rep->status, resp);
    MHD_destroy_response(resp);
    ss_reply_clear(rep);
    return ok;
}

enum MHD_Result ss_http_fail(ss_req *r, int err, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ss_reply rep;
    memset(&rep, 0, sizeof rep);
    ss_reply_fail(&rep, err, "%s", msg);
    return ss_http_send(r, &rep);
}

/* ---- operations ---- */

static void queuing(ss_op *o) {
    ss_req *r = o->ctx;
    r->job = o->job;
    MHD_suspend_connection(r->conn); /* before the worker can resume it */
}

static void job_done(ss_job *j) {
    ss_req *r = j->ctx;
    MHD_resume_connection(r->conn);
}

/* ---- cluster.h: forwarding to the owner ---- */

static void fwd_done(ss_fwd_call *c) {
    ss_req *r = c->ctx;
    MHD_resume_connection(r->conn);
}

static void copy_header(ss_req *r, ss_fwd_call *c, const char *name) {
    const char *v = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
    if (v) ss_fwd_header(c, name, v);
}

/* Hand the request to r->peer on the forwarder's thread; the connection waits suspended. */
static enum MHD_Result forward(ss_req *r) {
    ss_app *a = r->app;
    ss_fwd_call *c = calloc(1, sizeof *c);
    if (!c) return ss_http_fail(r, SS_E_NOMEM, "out of memory");
    r->call = c;
    snprintf(c->url, sizeof c->url, "http://%s%s", r->peer, r->path);
    /* HEAD goes as GET: libmicrohttpd drops the body of a HEAD answer */
    snprintf(c->method, sizeof c->method, "%s", strcmp(r->method, "HEAD") ? r->method : "GET");
    c->body = r->body;
    c->len = r->len;
    c->timeout_ms = (long)a->cfg.forward_timeout * 1000;
    c->max_bytes = a->cfg.forward_max_bytes;
    c->done = fwd_done;
    c->ctx = r;
    c->refs = 1;
    if (r->rt->http == ss_http_events) { /* an event stream: relayed as it comes */
        if (!(c->relay = ss_sse_create_relay(a->cfg.sse_buffer_bytes)))
            return ss_http_fail(r, SS_E_NOMEM, "out of memory");
        c->refs = 2; /* ours and the forwarder's */
    }
    copy_header(r, c, "Content-Type");
    copy_header(r, c, "Accept");
    copy_header(r, c, "Authorization");
    copy_header(r, c, "X-Sequence-Id");
    if ((r->fwd == SS_CL_PREV && ss_fwd_header(c, SS_HDR_LOOKUP, "previous") != 0) ||
        ss_fwd_header(c, SS_HDR_FORWARDED, ss_cluster_self(a->cluster)) != 0)
        return ss_http_fail(r, SS_E_NOMEM, "out of memory");
    ss_cluster_count_forward(a);
    MHD_suspend_connection(r->conn); /* before the forwarder can resume it */
    ss_fwd_submit(ss_cluster_fwd(a->cluster), c);
    return MHD_YES;
}

static enum MHD_Result dispatch(ss_req *r);

/* The forward came back: its answer, as the owner gave it; or, from a previous owner that
 * says the session is not there and is ours, our own answer. */
static enum MHD_Result forwarded(ss_req *r) {
    ss_fwd_call *c = r->call;
    r->call = NULL;
    if (c->streaming) { /* the owner's event stream, relayed as it arrives */
        r->relay_call = c;
        struct MHD_Response *resp = ss_sse_response(c->relay, r->conn);
        if (!resp) return MHD_NO;
        c->relay_given = 1; /* the response holds the relay's second reference now */
        r->status = 200;
        enum MHD_Result ok = MHD_queue_response(r->conn, 200, resp);
        MHD_destroy_response(resp);
        return ok;
    }
    if (r->fwd == SS_CL_PREV && ss_cluster_prev_says_mine(r->app, c)) {
        ss_fwd_call_release(c);
        r->fwd = 0;
        return dispatch(r);
    }
    if (c->status == 0) {
        snprintf(r->owner_hdr, sizeof r->owner_hdr, "%s", r->peer);
        enum MHD_Result ok =
            ss_http_fail(r, SS_E_NOT_OWNER, "session %s: its owner %s did not answer (%s); retry",
                         r->op.sid, r->peer, c->err);
        ss_fwd_call_release(c);
        return ok;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(c->resp_len, c->resp ? (void *)c->resp : (void *)"",
                                        c->resp ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        ss_fwd_call_release(c);
        return MHD_NO;
    }
    c->resp = NULL; /* the response owns it */
    if (c->ctype[0]) MHD_add_response_header(resp, "Content-Type", c->ctype);
    if (c->retry_after[0]) MHD_add_response_header(resp, "Retry-After", c->retry_after);
    if (c->location[0]) MHD_add_response_header(resp, "Location", c->location);
    if (c->allow[0]) MHD_add_response_header(resp, "Allow", c->allow);
    if (c->owner[0]) MHD_add_response_header(resp, SS_HDR_OWNER, c->owner);
    if (c->status == 401)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"spikeserve\"");
    r->status = (unsigned)c->status;
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)c->status, resp);
    MHD_destroy_response(resp);
    ss_fwd_call_release(c);
    return ok;
}

/* An OIP infer's routing key: the session name of its parameters.sequence_id (the body is
 * the truth; the X-Sequence-Id header is for the balancer). 1 with key, 0 none (no sequence,
 * or a body the operation will refuse). */
static int oip_body_key(ss_req *r, char *key, size_t cap) {
    size_t head = r->len;
    const char *h =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Inference-Header-Content-Length");
    if (h && strtoull(h, NULL, 10) < head) head = (size_t)strtoull(h, NULL, 10);
    json_error_t e;
    json_t *root = r->body ? json_loadb((const char *)r->body, head, 0, &e) : NULL;
    if (!root) return 0;
    json_t *v = json_object_get(json_object_get(root, "parameters"), "sequence_id");
    ss_oip_seq seq;
    memset(&seq, 0, sizeof seq);
    if (json_is_integer(v) && json_integer_value(v) > 0) {
        seq.num = (uint64_t)json_integer_value(v);
        seq.has_id = 1;
    } else if (json_is_string(v) && json_string_length(v) > 0 &&
               json_string_length(v) <= SS_OIP_ID_MAX) {
        seq.is_str = 1;
        snprintf(seq.str, sizeof seq.str, "%s", json_string_value(v));
        seq.has_id = 1;
    }
    json_decref(root);
    return seq.has_id && ss_oip_session_id(r->op.model, &seq, key, cap) == 0;
}

/* Where a request on key goes: MHD_YES to go on (here, or r->fwd set), or the refusal sent. */
static enum MHD_Result cluster_route(ss_req *r, const char *key) {
    ss_app *a = r->app;
    int hop = SS_HOP_CLIENT;
    if (MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, SS_HDR_FORWARDED))
        hop = SS_HOP_FORWARDED;
    if (MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, SS_HDR_LOOKUP)) hop = SS_HOP_LOOKUP;
    if (!strcmp(r->rt->method, "PUT") &&
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, SS_HDR_MOVE)) {
        r->moved_in = r->op.move = 1; /* a move lands where it is sent */
        return MHD_YES;
    }
    ss_reply rep;
    memset(&rep, 0, sizeof rep);
    int d = ss_cluster_route(a, key, hop, r->peer, sizeof r->peer, &rep);
    if (d == SS_CL_LOCAL) return MHD_YES;
    if (d == SS_CL_REFUSE) {
        snprintf(r->owner_hdr, sizeof r->owner_hdr, "%s", r->peer);
        return ss_http_send(r, &rep);
    }
    if (r->rt->body == SS_BODY_STREAMED) {
        /* uploads are not proxied: the client goes to the owner */
        snprintf(r->owner_hdr, sizeof r->owner_hdr, "%s", r->peer);
        return ss_http_fail(r, SS_E_NOT_OWNER,
                            "session %s: %s is served by its owner %s (not forwarded); retry "
                            "there or through the load balancer",
                            key, r->rt->pattern, r->peer);
    }
    r->fwd = d;
    return MHD_YES;
}

/* At the headers: routes on the session id now, or on an OIP body once it is read. */
static enum MHD_Result cluster_start(ss_req *r) {
    if (!strncmp(r->rt->pattern, "/v1/sessions/{id}", 17)) return cluster_route(r, r->op.sid);
    if (r->rt->http == ss_oip_http_infer) r->route_body = 1;
    return MHD_YES;
}

static enum MHD_Result dispatch(ss_req *r) {
    r->op.body = r->body;
    r->op.len = r->len;
    if (r->route_body) {
        char key[SS_ID_MAX + 1];
        r->route_body = 0;
        if (oip_body_key(r, key, sizeof key)) {
            enum MHD_Result ok = cluster_route(r, key);
            if (ok != MHD_YES || r->status) return ok;
        }
    }
    if (r->fwd) return forward(r);
    if (!r->rt->op) return (enum MHD_Result)r->rt->http(r);
    if (r->rt->op(&r->op) == SS_OP_QUEUED) return MHD_YES;
    return ss_http_send(r, &r->op.reply);
}

int ss_http_events(ss_req *r) {
    ss_sse *sub = ss_sse_create(r->app->cfg.sse_buffer_bytes);
    if (!sub) return ss_http_fail(r, SS_E_NOMEM, "out of memory");
    if (ss_op_subscribe(&r->op, sub) != 0) {
        ss_sse_unref(sub); /* both references: nothing holds it */
        ss_sse_unref(sub);
        return ss_http_send(r, &r->op.reply);
    }
    struct MHD_Response *resp = ss_sse_response(sub, r->conn);
    if (!resp) {
        ss_sse_end(sub, "error");
        ss_sse_unref(sub);
        return MHD_NO;
    }
    r->status = 200;
    enum MHD_Result ok = MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
    return ok;
}

/* ---- the access handler ---- */

static enum MHD_Result start(ss_req *r, const char *url, const char *method) {
    ss_app *a = r->app;
    char allow[48];
    int i = ss_route_match(method, url, r->op.model, sizeof r->op.model, r->op.sid,
                           sizeof r->op.sid, allow, sizeof allow);
    const ss_route_def *rt = i >= 0 ? &ss_routes[i] : NULL;
    const char *accept = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Accept");
    const ss_codec *out = rt && rt->codec ? rt->codec
                                          : negotiate(accept, rt ? rt->out : SS_FMT_JSON | SS_FMT_PB);
    r->op.out = out ? out : &ss_codec_json;
    if (!rt && ss_route_codec(url)) r->op.out = ss_route_codec(url);
    if (i == -404) return ss_http_fail(r, SS_E_NOT_FOUND, "no route %s %s", method, url);
    if (i == -405) {
        ss_reply rep;
        memset(&rep, 0, sizeof rep);
        ss_reply_fail(&rep, SS_E_METHOD, "%s is not allowed on %s (allowed: %s)", method, url,
                      allow);
        snprintf(rep.allow, sizeof rep.allow, "%s", allow);
        return ss_http_send(r, &rep);
    }
    r->rt = rt;
    if (!out)
        return ss_http_fail(r, SS_E_NOT_ACCEPTABLE, "cannot answer in any type of Accept: %.200s",
                            accept);
    if (rt->auth == SS_AUTH_KEY || (rt->auth == SS_AUTH_METRICS && a->cfg.metrics_auth)) {
        const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
        if (ss_op_authenticate(&r->op, h) != 0) return ss_http_send(r, &r->op.reply);
    }
    if (rt->body != SS_BODY_NONE) {
        const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
        if (!(r->op.in = rt->codec ? rt->codec : content_type(ct, rt->in)))
            return ss_http_fail(r, SS_E_MEDIA_TYPE, "Content-Type %.100s is not supported here",
                                ct ? ct : "(none)");
        const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && rt->body == SS_BODY_BUFFERED && strtoull(cl, NULL, 10) > a->cfg.max_body_bytes)
            return ss_http_fail(r, SS_E_BODY_TOO_LARGE,
                                "body of %s bytes exceeds the limit %llu (--max-body-bytes)", cl,
                                (unsigned long long)a->cfg.max_body_bytes);
    }
    if (__atomic_load_n(&a->draining, __ATOMIC_RELAXED) && !(rt->flags & SS_RF_DRAINING))
        return ss_http_fail(r, SS_E_UNAVAILABLE, "server is shutting down");
    if (a->cluster) {
        enum MHD_Result ok = cluster_start(r);
        if (ok != MHD_YES || r->status) return ok;
    }
    if (rt->body == SS_BODY_STREAMED) rt->http(r); /* begins, or answers a refusal */
    return MHD_YES;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls) {
    (void)version;
    ss_app *a = cls;
    ss_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        *con_cls = r;
        r->app = a;
        r->conn = conn;
        r->t0_us = ss_util_mono_us();
        r->op.app = a;
        r->op.in = &ss_codec_json;
        r->op.queuing = queuing;
        r->op.done = job_done;
        r->op.ctx = r;
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->path, sizeof r->path, "%s", url);
        __atomic_fetch_add(&a->inflight, 1, __ATOMIC_RELAXED);
        return start(r, url, method);
    }
    if (r->status) { /* answered early (413, 415...): drop what still arrives */
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->call) return forwarded(r); /* resumed: the owner answered */
    if (r->job && !r->stream) { /* resumed: the worker is done */
        ss_job *j = r->job;
        r->job = NULL;
        enum MHD_Result ok = ss_http_send(r, &j->reply);
        ss_job_free(j);
        return ok;
    }
    if (r->rt->body == SS_BODY_STREAMED) {
        if (*upload_size) return ss_stream_data(r, upload, upload_size);
        return ss_stream_end(r);
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->too_big || r->len + n > a->cfg.max_body_bytes) {
            /* libmicrohttpd (0.9.75) cannot answer in the middle of an upload: the rest is
             * counted and dropped, and the 413 goes out at its end. A client that keeps
             * sending far past the limit is cut off. */
            r->too_big = 1;
            r->len += n;
            if (r->len / 4 > a->cfg.max_body_bytes + (1u << 20)) {
                r->status = 413; /* for the log: the connection is closed without an answer */
                return MHD_NO;
            }
            return MHD_YES;
        }
        if (r->len + n > r->cap) {
            uint8_t *b = ss_util_grow(r->body, &r->cap, r->len + n, 4096);
            if (!b) return MHD_NO;
            r->body = b;
        }
        memcpy(r->body + r->len, upload, n);
        r->len += n;
        return MHD_YES;
    }
    if (r->too_big)
        return ss_http_fail(r, SS_E_BODY_TOO_LARGE,
                            "body of %zu bytes exceeds the limit %llu (--max-body-bytes)", r->len,
                            (unsigned long long)a->cfg.max_body_bytes);
    return dispatch(r);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    (void)conn;
    (void)toe;
    ss_app *a = cls;
    ss_req *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    int64_t us = ss_util_mono_us() - r->t0_us;
    ss_metrics_request(a->metrics, r->rt ? (size_t)(r->rt - ss_routes) : ss_route_count, r->status,
                       us);
    if (a->cfg.access_log) {
        char ts[40];
        ss_util_rfc3339(ss_util_now_ms(), ts, sizeof ts);
        ss_log(SS_LOG_INFO, "%s %s %s %u %.3fms session=%s", ts, r->method, r->path, r->status,
               (double)us / 1000.0, r->op.sid[0] ? r->op.sid : "-");
    }
    if (r->moved_in && r->status >= 200 && r->status < 300) ss_metrics_moved_in(a->metrics);
    if (r->stream) ss_stream_free(r->stream);
    ss_job_free(r->job);
    ss_fwd_call_release(r->call);       /* ours: the forwarder resumed us, or never had it */
    ss_fwd_call_release(r->relay_call); /* a relayed stream: the forwarder may still hold it */
    ss_reply_clear(&r->op.reply);
    free(r->body);
    free(r);
    __atomic_fetch_sub(&a->inflight, 1, __ATOMIC_RELAXED);
}

int ss_http_start(ss_app *a, char *err, size_t errlen) {
    struct sockaddr_in sa4;
    struct sockaddr_in6 sa6;
    struct sockaddr *sa;
    unsigned v6 = 0;
    memset(&sa4, 0, sizeof sa4);
    memset(&sa6, 0, sizeof sa6);
    if (inet_pton(AF_INET, a->cfg.bind, &sa4.sin_addr) == 1) {
        sa4.sin_family = AF_INET;
        sa4.sin_port = htons((uint16_t)a->cfg.port);
        sa = (struct sockaddr *)&sa4;
    } else if (inet_pton(AF_INET6, a->cfg.bind, &sa6.sin6_addr) == 1) {
        sa6.sin6_family = AF_INET6;
        sa6.sin6_port = htons((uint16_t)a->cfg.port);
        sa = (struct sockaddr *)&sa6;
        v6 = MHD_USE_IPv6;
    } else {
        snprintf(err, errlen, "--bind %s: not an IPv4 or IPv6 address", a->cfg.bind);
        return -1;
    }
    /* TURBO: optimistic reads and writes on the non-blocking sockets before asking the
     * event loop, no shutdown() before close. The pool holds the request line and headers
     * plus a little for the body's read buffer; MHD clears all of it on every request. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO |
                     MHD_USE_ERROR_LOG | v6 |
                     (strcmp(a->cfg.event_loop, "poll") ? MHD_USE_EPOLL : MHD_USE_POLL);
    a->daemon =
        MHD_start_daemon(flags, (uint16_t)a->cfg.port, NULL, NULL, handler, a, MHD_OPTION_SOCK_ADDR,
                         sa, MHD_OPTION_NOTIFY_COMPLETED, completed, a, MHD_OPTION_THREAD_POOL_SIZE,
                         (unsigned)a->cfg.http_threads, MHD_OPTION_CONNECTION_LIMIT,
                         (unsigned)a->cfg.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                         (unsigned)a->cfg.connection_timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                         (size_t)a->cfg.max_header_bytes + 4096, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                         (unsigned)a->cfg.max_conn_per_ip, MHD_OPTION_LISTEN_BACKLOG_SIZE,
                         (unsigned)1024, MHD_OPTION_END);
    if (!a->daemon) {
        snprintf(err, errlen, "cannot listen on %s:%u (port in use?)", a->cfg.bind, a->cfg.port);
        return -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(a->daemon, MHD_DAEMON_INFO_BIND_PORT);
    a->port = di ? di->port : (uint16_t)a->cfg.port;
    return 0;
}
