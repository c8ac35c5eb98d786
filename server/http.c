/* http.c: daemon setup, routing, content negotiation, bodies, replies and the access log.
 *
 * Request life: first call (headers) -> route, negotiate, check Content-Length against
 * --max-body-bytes (413 at once, before any byte is read); body calls -> appended while
 * under the limit, counted and dropped past it (chunked uploads); last call -> handler.
 * A handler that needs the session's worker suspends the connection (ss_http_submit); the
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

/* ---- routing ---- */

static int seg(const char **p, char *out, size_t cap) {
    const char *s = *p;
    if (*s != '/') return -1;
    s++;
    size_t n = strcspn(s, "/");
    if (n == 0 || n >= cap) return -1;
    memcpy(out, s, n);
    out[n] = 0;
    *p = s + n;
    return 0;
}

/* 0 (route set), 404, or 405 (allow set). */
static int route(const char *method, const char *url, ss_req *r, char *allow, size_t alen) {
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    const char *p = url;
    char a[80], b[80];
#define ONLY(m, ok, rt)                                                                            \
    do {                                                                                           \
        if (!(ok)) {                                                                               \
            snprintf(allow, alen, "%s", m);                                                        \
            return 405;                                                                            \
        }                                                                                          \
        r->route = rt;                                                                             \
        return 0;                                                                                  \
    } while (0)
    if (!strcmp(url, "/healthz")) ONLY("GET", get, SS_R_HEALTHZ);
    if (!strcmp(url, "/readyz")) ONLY("GET", get, SS_R_READYZ);
    if (!strcmp(url, "/metrics")) ONLY("GET", get, SS_R_METRICS);
    /* ui.c: the raster page and its test images (ss_ui_page, ss_ui_image) */
    if (!strcmp(url, "/") || !strcmp(url, "/ui") || !strcmp(url, "/ui/"))
        ONLY("GET", get, SS_R_UI_PAGE);
    if (!strncmp(url, "/ui/fmnist/", 11) && url[11] && !strchr(url + 11, '/'))
        ONLY("GET", get, SS_R_UI_IMAGE);
    if (!strcmp(url, "/v1/models") || !strcmp(url, "/v1/models/")) ONLY("GET", get, SS_R_MODELS);
    if (!strncmp(url, "/v1/models/", 11)) {
        p = url + 10;
        if (seg(&p, r->model, sizeof r->model)) return 404;
        if (!*p) ONLY("GET", get, SS_R_MODEL);
        if (seg(&p, a, sizeof a) || *p) return 404;
        if (!strcmp(a, "sessions")) ONLY("POST", post, SS_R_OPEN);
        if (!strcmp(a, "infer")) ONLY("POST", post, SS_R_INFER);
        if (!strcmp(a, "classify")) ONLY("POST", post, SS_R_CLASSIFY);
        return 404;
    }
    if (!strncmp(url, "/v1/sessions/", 13)) {
        p = url + 12;
        if (seg(&p, b, sizeof b)) return 404;
        if (strlen(b) > SS_ID_MAX) return 404;
        snprintf(r->sid, sizeof r->sid, "%.64s", b);
        if (!*p) {
            if (get) {
                r->route = SS_R_SESSION_GET;
                return 0;
            }
            if (!strcmp(method, "DELETE")) {
                r->route = SS_R_SESSION_DELETE;
                return 0;
            }
            snprintf(allow, alen, "GET, DELETE");
            return 405;
        }
        if (seg(&p, a, sizeof a) || *p) return 404;
        if (!strcmp(a, "reset")) ONLY("POST", post, SS_R_RESET);
        if (!strcmp(a, "steps")) ONLY("POST", post, SS_R_STEPS);
        if (!strcmp(a, "stream")) ONLY("POST", post, SS_R_STREAM);
        if (!strcmp(a, "events")) ONLY("GET", get, SS_R_EVENTS);
        if (!strcmp(a, "state")) {
            if (get) {
                r->route = SS_R_STATE_GET;
                return 0;
            }
            if (!strcmp(method, "PUT")) {
                r->route = SS_R_STATE_PUT;
                return 0;
            }
            snprintf(allow, alen, "GET, PUT");
            return 405;
        }
        return 404;
    }
#undef ONLY
    return 404;
}

/* ---- negotiation ---- */

static int media_is(const char *s, size_t n, const char *type) {
    return strlen(type) == n && !strncasecmp(s, type, n);
}

/* Accept -> 1 protobuf, 0 JSON, -1 nothing acceptable. For /state the body is always
 * protobuf, for /events and /metrics text. */
static int negotiate(const char *accept, ss_route rt) {
    int pb_only = rt == SS_R_STATE_GET,
        text = rt == SS_R_EVENTS || rt == SS_R_METRICS || rt == SS_R_HEALTHZ || rt == SS_R_READYZ;
    if (!accept || !*accept) return pb_only;
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
            int pb = media_is(p, n, "application/x-protobuf") ||
                     media_is(p, n, "application/protobuf") ||
                     (pb_only && (any || app || media_is(p, n, "application/octet-stream")));
            if (pb && rt != SS_R_STREAM) return 1; /* /stream's summary is JSON only */
            if (!pb_only && (any || app || media_is(p, n, "application/json"))) return 0;
            if (text && (media_is(p, n, "text/event-stream") || media_is(p, n, "text/plain") ||
                         media_is(p, n, "text/*")))
                return 0;
        }
        p = e;
    }
    return -1;
}

/* Content-Type -> 1 protobuf, 0 JSON, -1 unsupported. */
static int content_type(const char *ct, ss_route rt) {
    if (!ct || !*ct) return rt == SS_R_STATE_PUT;
    size_t n = strcspn(ct, "; ");
    if (media_is(ct, n, "application/x-protobuf") || media_is(ct, n, "application/protobuf"))
        return rt == SS_R_STREAM ? -1 : 1;
    if (rt == SS_R_STATE_PUT) return media_is(ct, n, "application/octet-stream") ? 1 : -1;
    if (media_is(ct, n, "application/json")) return 0;
    if (rt == SS_R_STREAM &&
        (media_is(ct, n, "application/x-ndjson") || media_is(ct, n, "application/jsonl") ||
         media_is(ct, n, "text/plain")))
        return 0;
    return -1;
}

/* ---- replies ---- */

enum MHD_Result ss_http_send(ss_req *r, ss_reply *rep) {
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
    if (rep->status == 401)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"spikeserve\"");
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

enum MHD_Result ss_http_error(ss_req *r, unsigned status, const char *code, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ss_reply rep;
    memset(&rep, 0, sizeof rep);
    ss_reply_error(&rep, r->out_pb, status, code, "%s", msg);
    if (status == 429 || status == 503) rep.retry_after = 1;
    return ss_http_send(r, &rep);
}

static void job_done(ss_job *j) {
    ss_req *r = j->ctx;
    MHD_resume_connection(r->conn);
}

enum MHD_Result ss_http_submit(ss_req *r, ss_job *j, uint32_t w) {
    j->out_pb = r->out_pb;
    j->done = job_done;
    j->ctx = r;
    r->job = j;
    MHD_suspend_connection(r->conn); /* before the worker can resume it */
    int rc = ss_pool_submit(r->app->pool, w, j, j->kind == SS_JOB_CLOSE);
    if (rc == 0) return MHD_YES;
    if (rc == SS_POOL_EFULL) {
        ss_reply_error(&j->reply, r->out_pb, 429, NULL,
                       "worker %u queue is full (--queue-depth %u); retry later", w,
                       r->app->cfg.queue_depth);
    } else {
        ss_reply_error(&j->reply, r->out_pb, 503, NULL, "server is shutting down");
    }
    j->reply.retry_after = 1;
    MHD_resume_connection(r->conn); /* the next call sends j->reply */
    return MHD_YES;
}

/* ---- the access handler ---- */

static enum MHD_Result start(ss_req *r, const char *url, const char *method) {
    ss_app *a = r->app;
    char allow[48] = "";
    int rc = route(method, url, r, allow, sizeof allow);
    const char *accept = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Accept");
    int neg = r->route == SS_R_UI_PAGE || r->route == SS_R_UI_IMAGE /* ui.c: HTML, JSON */
                  ? 0
                  : negotiate(accept, r->route);
    r->out_pb = neg == 1;
    if (rc == 404) return ss_http_error(r, 404, NULL, "no route %s %s", method, url);
    if (rc == 405) {
        ss_reply rep;
        memset(&rep, 0, sizeof rep);
        ss_reply_error(&rep, r->out_pb, 405, NULL, "%s is not allowed on %s (allowed: %s)", method,
                       url, allow);
        snprintf(rep.allow, sizeof rep.allow, "%s", allow);
        return ss_http_send(r, &rep);
    }
    if (neg < 0)
        return ss_http_error(r, 406, NULL, "cannot answer in any type of Accept: %.200s", accept);
    if (r->route != SS_R_HEALTHZ && r->route != SS_R_READYZ && r->route != SS_R_UI_PAGE &&
        (r->route != SS_R_METRICS || a->cfg.metrics_auth)) {
        const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
        int rc_auth = ss_auth_check(a->auth, h, &r->owner);
        if (rc_auth == -1)
            return ss_http_error(r, 401, NULL, "an API key is needed: Authorization: Bearer KEY");
        if (rc_auth == -2) return ss_http_error(r, 401, NULL, "unknown API key");
    }
    int has_body = !strcmp(method, "POST") || !strcmp(method, "PUT");
    if (has_body) {
        const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
        int in = content_type(ct, r->route);
        if (in < 0)
            return ss_http_error(r, 415, NULL, "Content-Type %.100s is not supported here",
                                 ct ? ct : "(none)");
        r->in_pb = in;
        const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && r->route != SS_R_STREAM && strtoull(cl, NULL, 10) > a->cfg.max_body_bytes)
            return ss_http_error(r, 413, "body_too_large",
                                 "body of %s bytes exceeds the limit %llu (--max-body-bytes)", cl,
                                 (unsigned long long)a->cfg.max_body_bytes);
    }
    if (__atomic_load_n(&a->draining, __ATOMIC_RELAXED) && r->route != SS_R_HEALTHZ &&
        r->route != SS_R_METRICS)
        return ss_http_error(r, 503, NULL, "server is shutting down");
    if (r->route == SS_R_STREAM && ss_stream_begin(r) != 0) return MHD_YES; /* answered */
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
        r->route = SS_R_OTHER;
        r->t0_us = ss_util_mono_us();
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->path, sizeof r->path, "%s", url);
        __atomic_fetch_add(&a->inflight, 1, __ATOMIC_RELAXED);
        return start(r, url, method);
    }
    if (r->status) { /* answered early (413, 415...): drop what still arrives */
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->job && !r->stream) { /* resumed: the worker is done */
        ss_job *j = r->job;
        r->job = NULL;
        enum MHD_Result ok = ss_http_send(r, &j->reply);
        ss_job_free(j);
        return ok;
    }
    if (r->route == SS_R_STREAM) {
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
            size_t cap = r->cap ? r->cap : 4096;
            while (cap < r->len + n)
                cap *= 2;
            uint8_t *b = realloc(r->body, cap);
            if (!b) return MHD_NO;
            r->body = b;
            r->cap = cap;
        }
        memcpy(r->body + r->len, upload, n);
        r->len += n;
        return MHD_YES;
    }
    if (r->too_big)
        return ss_http_error(r, 413, "body_too_large",
                             "body of %zu bytes exceeds the limit %llu (--max-body-bytes)", r->len,
                             (unsigned long long)a->cfg.max_body_bytes);
    return ss_api_dispatch(r);
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
    ss_metrics_request(a->metrics, r->route, r->status, us);
    if (a->cfg.access_log) {
        char ts[40];
        ss_util_rfc3339(ss_util_now_ms(), ts, sizeof ts);
        fprintf(stderr, "%s %s %s %u %.3fms session=%s\n", ts, r->method, r->path, r->status,
                (double)us / 1000.0, r->sid[0] ? r->sid : "-");
    }
    if (r->stream) ss_stream_free(r->stream);
    ss_job_free(r->job);
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
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_TURBO | MHD_USE_ERROR_LOG | v6 |
                     (strcmp(a->cfg.event_loop, "poll") ? MHD_USE_EPOLL : MHD_USE_POLL);
    a->daemon =
        MHD_start_daemon(flags, (uint16_t)a->cfg.port, NULL, NULL, handler, a, MHD_OPTION_SOCK_ADDR,
                         sa, MHD_OPTION_NOTIFY_COMPLETED, completed, a, MHD_OPTION_THREAD_POOL_SIZE,
                         (unsigned)a->cfg.http_threads, MHD_OPTION_CONNECTION_LIMIT,
                         (unsigned)a->cfg.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                         (unsigned)a->cfg.connection_timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                         (size_t)a->cfg.max_header_bytes + 4096,
                         MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)a->cfg.max_conn_per_ip,
                         MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_END);
    if (!a->daemon) {
        snprintf(err, errlen, "cannot listen on %s:%u (port in use?)", a->cfg.bind, a->cfg.port);
        return -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(a->daemon, MHD_DAEMON_INFO_BIND_PORT);
    a->port = di ? di->port : (uint16_t)a->cfg.port;
    return 0;
}
