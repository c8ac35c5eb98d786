/* spikeclient.c: the spikeserve client over libcurl.
 *
 * One CURL easy handle per client, reset between requests, so keep-alive connections are
 * reused. Every request goes through do_request(), which collects the answer into a growable
 * buffer (or hands it, as it arrives, to a line splitter for the NDJSON stream and SSE) and
 * turns an error status into the handle's err/errstr from the server's error body.
 * The bodies themselves (JSON and protobuf) are scwire.c's.
 */
#include "spikeclient.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "api.pb-c.h"
#include "scwire.h"

#define CT_JSON "application/json"
#define CT_PB "application/x-protobuf"

struct sc_client {
    char *url;
    char *auth; /* "Authorization: Bearer ..." or NULL */
    int pb;
    long timeout_ms;
    CURL *curl;
    int err;
    char errstr[512];
    long status;
    char ecode[64];
    long retry_after;
    char ctype[64];    /* Content-Type of the last answer */
    atomic_int cancel; /* set by sc_cancel() from any thread */
};

typedef struct {
    char *p;
    size_t len, cap;
} sbuf;

static int sbuf_add(sbuf *b, const void *d, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int seterr(sc_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int seterr(sc_client *c, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errstr, sizeof c->errstr, fmt, ap);
    va_end(ap);
    c->err = code;
    return code;
}

static void clearerr_(sc_client *c) {
    c->err = 0;
    c->errstr[0] = '\0';
    c->ecode[0] = '\0';
    c->retry_after = -1;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

sc_client *sc_client_new(const sc_params *p) {
    if (!p || !p->url || !*p->url) return NULL;
    pthread_once(&curl_once, curl_init_once);
    sc_client *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    size_t n = strlen(p->url);
    while (n > 0 && p->url[n - 1] == '/')
        n--;
    if (!(c->url = strndup(p->url, n))) goto fail;
    if (p->api_key && *p->api_key) {
        size_t len = strlen(p->api_key) + 32;
        if (!(c->auth = malloc(len))) goto fail;
        snprintf(c->auth, len, "Authorization: Bearer %s", p->api_key);
    }
    c->pb = p->protobuf;
    c->timeout_ms = p->timeout_ms;
    if (!(c->curl = curl_easy_init())) goto fail;
    clearerr_(c);
    return c;
fail:
    sc_client_free(c);
    return NULL;
}

void sc_client_free(sc_client *c) {
    if (!c) return;
    if (c->curl) curl_easy_cleanup(c->curl);
    free(c->url);
    free(c->auth);
    free(c);
}

int sc_err(const sc_client *c) {
    return c->err;
}
const char *sc_errstr(const sc_client *c) {
    return c->errstr;
}
long sc_http_status(const sc_client *c) {
    return c->status;
}
const char *sc_error_code(const sc_client *c) {
    return c->ecode;
}
long sc_retry_after(const sc_client *c) {
    return c->retry_after;
}

/* ---- the request engine ---- */

/* How an answer's bytes are consumed: collected (line == NULL) or split into lines, each
 * passed to line() as soon as it is complete (NDJSON, SSE). */
typedef struct {
    sc_client *c;
    sbuf body;
    int (*line)(void *ud, char *s, size_t n); /* nonzero: stop */
    void *line_ud;
    int stopped;
    void (*on_open)(void *ud);
    int opened;
} sink;

static size_t on_header(char *h, size_t size, size_t n, void *ud) {
    sink *k = ud;
    size_t len = size * n;
    if (len > 9 && strncasecmp(h, "HTTP/", 5) == 0) {
        /* a new response (after 100-continue or a redirect): forget the previous headers */
        k->c->ctype[0] = '\0';
        k->c->retry_after = -1;
    } else if (len > 13 && strncasecmp(h, "Content-Type:", 13) == 0) {
        const char *v = h + 13;
        while (*v == ' ')
            v++;
        size_t m = 0;
        while (v + m < h + len && v[m] != '\r' && v[m] != '\n' && v[m] != ';' &&
               m + 1 < sizeof k->c->ctype)
            m++;
        memcpy(k->c->ctype, v, m);
        k->c->ctype[m] = '\0';
    } else if (len > 12 && strncasecmp(h, "Retry-After:", 12) == 0) {
        k->c->retry_after = strtol(h + 12, NULL, 10);
    } else if (len <= 2 && !k->opened) {
        /* end of a header block: a final 2xx answer means the subscription is live */
        long st = 0;
        curl_easy_getinfo(k->c->curl, CURLINFO_RESPONSE_CODE, &st);
        if (st >= 200 && st < 300) {
            k->opened = 1;
            if (k->on_open) k->on_open(k->line_ud);
        }
    }
    return len;
}

static size_t on_body(char *d, size_t size, size_t n, void *ud) {
    sink *k = ud;
    size_t len = size * n;
    if (!k->opened) {
        k->opened = 1;
        long st = 0;
        curl_easy_getinfo(k->c->curl, CURLINFO_RESPONSE_CODE, &st);
        if (st >= 300)
            k->line = NULL; /* an error body: collect it whole */
        else if (k->on_open)
            k->on_open(k->line_ud);
    }
    if (sbuf_add(&k->body, d, len) < 0) return 0;
    if (!k->line) return len;
    /* hand out every complete line; keep the tail */
    size_t start = 0;
    for (size_t i = 0; i < k->body.len; i++) {
        if (k->body.p[i] != '\n') continue;
        size_t e = i;
        if (e > start && k->body.p[e - 1] == '\r') e--;
        k->body.p[e] = '\0';
        if (k->line(k->line_ud, k->body.p + start, e - start)) {
            k->stopped = 1;
            return 0;
        }
        start = i + 1;
    }
    memmove(k->body.p, k->body.p + start, k->body.len - start);
    k->body.len -= start;
    k->body.p[k->body.len] = '\0';
    return len;
}

/* The server's error body -> the handle's error. */
static void http_error(sc_client *c, const char *body, size_t len) {
    char msg[400] = "";
    c->ecode[0] = '\0';
    if (strcmp(c->ctype, CT_PB) == 0) {
        Spikeserve__Error *e = spikeserve__error__unpack(NULL, len, (const uint8_t *)body);
        if (e && e->error) {
            snprintf(c->ecode, sizeof c->ecode, "%s", e->error->code ? e->error->code : "");
            snprintf(msg, sizeof msg, "%s", e->error->message ? e->error->message : "");
        }
        if (e) spikeserve__error__free_unpacked(e, NULL);
    } else if (len) {
        json_t *j = json_loadb(body, len, 0, NULL), *e = json_object_get(j, "error");
        const char *code = json_string_value(json_object_get(e, "code"));
        const char *m = json_string_value(json_object_get(e, "message"));
        if (code) snprintf(c->ecode, sizeof c->ecode, "%s", code);
        if (m)
            snprintf(msg, sizeof msg, "%s", m);
        else if (!j)
            snprintf(msg, sizeof msg, "%.200s", body);
        json_decref(j);
    }
    seterr(c, SC_EHTTP, "HTTP %ld%s%s: %s", c->status, c->ecode[0] ? " " : "", c->ecode,
           msg[0] ? msg : "(no message)");
}

typedef struct {
    sc_read_cb read;
    void *ud;
    int aborted;
} upload;

static size_t on_read(char *buf, size_t size, size_t n, void *ud) {
    upload *u = ud;
    long got = u->read(u->ud, buf, size * n);
    if (got < 0) {
        u->aborted = 1;
        return CURL_READFUNC_ABORT;
    }
    return (size_t)got;
}

void sc_cancel(sc_client *c) {
    atomic_store(&c->cancel, 1);
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    (void)dt, (void)dn, (void)ut, (void)un;
    return atomic_load(&((sc_client *)ud)->cancel) ? 1 : 0;
}

/* Returns the HTTP status (>= 100) or a negative SC_E* code. The body is left in k->body. */
static long do_request(sc_client *c, const char *method, const char *path, const char *ctype,
                       const void *body, size_t len, upload *up, sink *k, int no_timeout,
                       const char *extra_hdr) {
    char url[2048];
    clearerr_(c);
    c->status = 0;
    c->ctype[0] = '\0';
    if (snprintf(url, sizeof url, "%s%s", c->url, path) >= (int)sizeof url)
        return seterr(c, SC_EINVAL, "URL too long");
    CURL *h = c->curl;
    curl_easy_reset(h);
    struct curl_slist *hdr = NULL;
    char line[128];
    snprintf(line, sizeof line, "Accept: %s", k->line ? "*/*" : c->pb ? CT_PB : CT_JSON);
    hdr = curl_slist_append(hdr, line);
    /* no body, no type (curl would otherwise claim a form for an empty POST) */
    snprintf(line, sizeof line, "Content-Type:%s%s", ctype ? " " : "", ctype ? ctype : "");
    hdr = curl_slist_append(hdr, line);
    if (c->auth) hdr = curl_slist_append(hdr, c->auth);
    if (extra_hdr) hdr = curl_slist_append(hdr, extra_hdr);
    hdr = curl_slist_append(hdr, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, k);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, k);
    if (c->timeout_ms > 0 && !no_timeout) curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
    if (up) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, up);
        hdr = curl_slist_append(hdr, "Transfer-Encoding: chunked");
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        if (body || strcmp(method, "DELETE") != 0) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
        }
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    if (atomic_exchange(&c->cancel, 0)) {
        curl_slist_free_all(hdr);
        return seterr(c, SC_EABORTED, "cancelled");
    }
    CURLcode rc = curl_easy_perform(h);
    curl_slist_free_all(hdr);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
    if (rc != CURLE_OK) {
        if (k->stopped) return c->status ? c->status : 200;
        if (atomic_exchange(&c->cancel, 0)) return seterr(c, SC_EABORTED, "cancelled");
        if (up && up->aborted) return seterr(c, SC_EABORTED, "upload aborted by its reader");
        return seterr(c, SC_ETRANSPORT, "%s %s: %s", method, url, curl_easy_strerror(rc));
    }
    if (c->status >= 400) http_error(c, k->body.p ? k->body.p : "", k->body.len);
    return c->status;
}

/* A plain request whose whole answer is wanted; fails on statuses >= 400. */
static int call(sc_client *c, const char *method, const char *path, const char *ctype,
                const void *body, size_t len, sbuf *out) {
    sink k = {.c = c};
    long st = do_request(c, method, path, ctype, body, len, NULL, &k, 0, NULL);
    if (st < 0 || st >= 400) {
        free(k.body.p);
        return st < 0 ? (int)st : SC_EHTTP;
    }
    *out = k.body;
    if (!out->p) out->p = calloc(1, 1);
    return 0;
}

long sc_request(sc_client *c, const char *method, const char *path, const char *content_type,
                const void *body, size_t len, char **resp, size_t *resp_len) {
    sink k = {.c = c};
    long st = do_request(c, method, path, content_type, body, len, NULL, &k, 0, NULL);
    if (st < 0) {
        free(k.body.p);
        return st;
    }
    if (!k.body.p) k.body.p = calloc(1, 1);
    if (resp)
        *resp = k.body.p;
    else
        free(k.body.p);
    if (resp_len) *resp_len = k.body.len;
    return st;
}

static int path_of(sc_client *c, char *buf, size_t cap, const char *fmt, const char *a,
                   const char *b) {
    if (!a || !*a) return seterr(c, SC_EINVAL, "missing model name or session id");
    for (const char *s = a; *s; s++)
        if (*s == '/' || *s == '?' || *s == '#' || *s == '%' || *s <= ' ')
            return seterr(c, SC_EINVAL, "bad character in \"%s\"", a);
    if (snprintf(buf, cap, fmt, a, b ? b : "") >= (int)cap)
        return seterr(c, SC_EINVAL, "name too long");
    return 0;
}

/* ---- health, metrics ---- */

static int get_ok(sc_client *c, const char *path) {
    sbuf b = {0};
    int rc = call(c, "GET", path, NULL, NULL, 0, &b);
    free(b.p);
    return rc;
}
int sc_healthz(sc_client *c) {
    return get_ok(c, "/healthz");
}
int sc_readyz(sc_client *c) {
    return get_ok(c, "/readyz");
}
char *sc_metrics(sc_client *c) {
    sbuf b = {0};
    return call(c, "GET", "/metrics", NULL, NULL, 0, &b) == 0 ? b.p : NULL;
}

/* ---- models ---- */

int sc_models(sc_client *c, sc_model **out, size_t *n) {
    sbuf b = {0};
    *out = NULL;
    *n = 0;
    int rc = call(c, "GET", "/v1/models", NULL, NULL, 0, &b);
    if (rc < 0) return rc;
    rc = scw_models(strcmp(c->ctype, CT_PB) == 0, b.p, b.len, out, n);
    free(b.p);
    if (rc == -2) return seterr(c, SC_ENOMEM, "out of memory");
    if (rc < 0) return seterr(c, SC_EPROTO, "GET /v1/models: unexpected answer");
    return 0;
}

int sc_model_get(sc_client *c, const char *name, sc_model *out) {
    char path[256];
    sbuf b = {0};
    memset(out, 0, sizeof *out);
    int rc = path_of(c, path, sizeof path, "/v1/models/%s%s", name, NULL);
    if (rc < 0 || (rc = call(c, "GET", path, NULL, NULL, 0, &b)) < 0) return rc;
    rc = scw_model(strcmp(c->ctype, CT_PB) == 0, b.p, b.len, out);
    free(b.p);
    if (rc == -2) return seterr(c, SC_ENOMEM, "out of memory");
    if (rc < 0) return seterr(c, SC_EPROTO, "GET %s: unexpected answer", path);
    return 0;
}

/* ---- sessions ---- */

static int session_parse(sc_client *c, const sbuf *b, sc_session *s) {
    if (scw_session(strcmp(c->ctype, CT_PB) == 0, b->p, b->len, s) < 0)
        return seterr(c, SC_EPROTO, "session: unexpected answer (no session_id)");
    return 0;
}

int sc_session_open(sc_client *c, const char *model, uint32_t idle_timeout_s, sc_session *out) {
    return sc_session_open_version(c, model, 0, idle_timeout_s, out);
}

int sc_session_open_version(sc_client *c, const char *model, uint32_t version,
                            uint32_t idle_timeout_s, sc_session *out) {
    char path[256];
    sbuf b = {0};
    int rc = path_of(c, path, sizeof path, "/v1/models/%s/sessions%s", model, NULL);
    if (rc < 0) return rc;
    size_t len = 0;
    void *body = scw_open(c->pb, idle_timeout_s, version, &len);
    if (!body) return seterr(c, SC_ENOMEM, "out of memory");
    rc = call(c, "POST", path, c->pb ? CT_PB : CT_JSON, body, len, &b);
    free(body);
    if (rc == 0) rc = session_parse(c, &b, out);
    free(b.p);
    return rc;
}

int sc_session_get(sc_client *c, const char *id, sc_session *out) {
    char path[256];
    sbuf b = {0};
    int rc = path_of(c, path, sizeof path, "/v1/sessions/%s%s", id, NULL);
    if (rc < 0 || (rc = call(c, "GET", path, NULL, NULL, 0, &b)) < 0) return rc;
    rc = session_parse(c, &b, out);
    free(b.p);
    return rc;
}

static int simple(sc_client *c, const char *method, const char *fmt, const char *id,
                  const char *ctype, const void *body, size_t len) {
    char path[256];
    sbuf b = {0};
    int rc = path_of(c, path, sizeof path, fmt, id, NULL);
    if (rc < 0 || (rc = call(c, method, path, ctype, body, len, &b)) < 0) return rc;
    free(b.p);
    return 0;
}

int sc_session_close(sc_client *c, const char *id) {
    return simple(c, "DELETE", "/v1/sessions/%s%s", id, NULL, NULL, 0);
}
int sc_session_reset(sc_client *c, const char *id) {
    return simple(c, "POST", "/v1/sessions/%s/reset%s", id, NULL, NULL, 0);
}

/* ---- batches and results ---- */

char *sc_batch_json(sc_client *c, const sc_batch *b) {
    char *s = scw_batch_json(b);
    if (!s) seterr(c, SC_ENOMEM, "out of memory encoding a batch");
    return s;
}

int sc_result_parse_json(sc_client *c, const char *json, size_t len, sc_result *r) {
    char msg[400];
    int rc = scw_result_json(json, len, r, c->ecode, sizeof c->ecode, msg, sizeof msg);
    if (rc == 0) return 0;
    return seterr(c, rc == -3 ? SC_EHTTP : rc == -2 ? SC_ENOMEM : SC_EPROTO, "%s", msg);
}

static int result_parse_pb(sc_client *c, const sbuf *b, sc_result *r) {
    int rc = scw_result_pb((const uint8_t *)b->p, b->len, r);
    if (rc == -2) return seterr(c, SC_ENOMEM, "out of memory");
    if (rc < 0) return seterr(c, SC_EPROTO, "step result: bad protobuf");
    return 0;
}

static int post_result(sc_client *c, const char *path, const void *body, size_t len,
                       sc_result *out) {
    sbuf b = {0};
    memset(out, 0, sizeof *out);
    int rc = call(c, "POST", path, c->pb ? CT_PB : CT_JSON, body, len, &b);
    if (rc == 0)
        rc = strcmp(c->ctype, CT_PB) == 0 ? result_parse_pb(c, &b, out)
                                          : sc_result_parse_json(c, b.p, b.len, out);
    free(b.p);
    return rc;
}

static int post_batch(sc_client *c, const char *path, const sc_batch *b, sc_result *out) {
    size_t len = 0;
    void *body;
    memset(out, 0, sizeof *out);
    if (!b || b->steps == 0) return seterr(c, SC_EINVAL, "batch: steps must be >= 1");
    if (c->pb)
        body = scw_batch_pb(b, &len);
    else if ((body = sc_batch_json(c, b)))
        len = strlen(body);
    if (!body) return seterr(c, SC_ENOMEM, "out of memory encoding a batch");
    int rc = post_result(c, path, body, len, out);
    free(body);
    return rc;
}

int sc_step(sc_client *c, const char *id, const sc_batch *b, sc_result *out) {
    char path[256];
    int rc = path_of(c, path, sizeof path, "/v1/sessions/%s/steps%s", id, NULL);
    return rc < 0 ? rc : post_batch(c, path, b, out);
}

int sc_infer(sc_client *c, const char *model, const sc_batch *b, sc_result *out) {
    char path[256];
    int rc = path_of(c, path, sizeof path, "/v1/models/%s/infer%s", model, NULL);
    return rc < 0 ? rc : post_batch(c, path, b, out);
}

int sc_classify(sc_client *c, const char *model, const float *x, uint32_t n, uint64_t seed,
                sc_result *out) {
    char path[256];
    void *body = NULL;
    size_t len = 0;
    memset(out, 0, sizeof *out);
    int rc = path_of(c, path, sizeof path, "/v1/models/%s/classify%s", model, NULL);
    if (rc < 0) return rc;
    body = scw_classify(c->pb, x, n, seed, &len);
    if (!body) return seterr(c, SC_ENOMEM, "out of memory encoding a classify request");
    rc = post_result(c, path, body, len, out);
    free(body);
    return rc;
}

/* ---- streaming: NDJSON upload ---- */

int sc_stream(sc_client *c, const char *id, sc_read_cb read, void *read_ud,
              sc_stream_summary *summary) {
    char path[256];
    sc_stream_summary sum = {0};
    if (summary) *summary = sum;
    int rc = path_of(c, path, sizeof path, "/v1/sessions/%s/stream%s", id, NULL);
    if (rc < 0) return rc;
    upload up = {.read = read, .ud = read_ud};
    sink k = {.c = c};
    long st = do_request(c, "POST", path, "application/x-ndjson", NULL, 0, &up, &k, 1, NULL);
    if (st < 0 || st >= 400) {
        free(k.body.p);
        return st < 0 ? (int)st : SC_EHTTP;
    }
    json_t *j = json_loadb(k.body.p ? k.body.p : "", k.body.len, 0, NULL);
    free(k.body.p);
    if (!json_is_object(j)) {
        json_decref(j);
        return seterr(c, SC_EPROTO, "stream: the answer is not a JSON summary");
    }
    sum.lines = scw_u64(j, "lines", NULL);
    sum.ok = scw_u64(j, "ok", NULL);
    sum.failed = scw_u64(j, "failed", NULL);
    sum.t = scw_u64(j, "t", NULL);
    sum.last_seq = scw_u64(j, "last_seq", NULL);
    if (summary) *summary = sum;
    rc = 0;
    if (sum.failed) {
        json_t *e = json_array_get(json_object_get(j, "errors"), 0);
        json_t *d = json_object_get(e, "error");
        const char *code = json_string_value(json_object_get(d, "code"));
        const char *m = json_string_value(json_object_get(d, "message"));
        snprintf(c->ecode, sizeof c->ecode, "%s", code ? code : "");
        rc = seterr(c, SC_EHTTP, "%llu of %llu lines failed; line %llu: HTTP %llu %s: %s",
                    (unsigned long long)sum.failed, (unsigned long long)sum.lines,
                    (unsigned long long)scw_u64(e, "line", NULL),
                    (unsigned long long)scw_u64(e, "status", NULL), code ? code : "",
                    m ? m : "(no message)");
    }
    json_decref(j);
    return rc;
}

static long read_fd(void *ud, char *buf, size_t cap) {
    int fd = *(int *)ud;
    for (;;) {
        ssize_t n = read(fd, buf, cap);
        if (n >= 0) return (long)n;
        if (errno != EINTR) return -1;
    }
}

int sc_stream_file(sc_client *c, const char *id, FILE *f, sc_stream_summary *summary) {
    int fd = fileno(f);
    if (fd < 0) return seterr(c, SC_EINVAL, "stream: not a file descriptor");
    return sc_stream(c, id, read_fd, &fd, summary);
}

/* ---- Server-Sent Events ---- */

typedef struct {
    sc_client *c;
    sc_event_cb cb;
    void *ud;
    void (*on_open)(void *);
    char type[64];
    char id[128];
    sbuf data;
    int ended;
} sse_ctx;

static int sse_dispatch(sse_ctx *x) {
    int stop = 0;
    if (x->data.len || x->type[0]) {
        sc_sse_event ev = {x->type[0] ? x->type : "message", x->id, x->data.p ? x->data.p : "",
                           NULL};
        sc_result r;
        int parsed = strcmp(ev.type, "step") == 0 &&
                     sc_result_parse_json(x->c, ev.data, x->data.len, &r) == 0;
        if (parsed) ev.result = &r;
        stop = x->cb ? x->cb(x->ud, &ev) : 0;
        if (parsed) sc_result_free(&r);
        if (strcmp(ev.type, "end") == 0) x->ended = 1;
    }
    x->type[0] = '\0';
    x->data.len = 0;
    if (x->data.p) x->data.p[0] = '\0';
    return stop;
}

static int sse_line(void *ud, char *s, size_t n) {
    sse_ctx *x = ud;
    if (n == 0) return sse_dispatch(x);
    if (s[0] == ':') return 0; /* comment, keep-alive */
    char *colon = memchr(s, ':', n);
    const char *v = colon ? colon + 1 : s + n;
    if (colon) *colon = '\0';
    if (*v == ' ') v++;
    if (strcmp(s, "event") == 0)
        snprintf(x->type, sizeof x->type, "%s", v);
    else if (strcmp(s, "id") == 0)
        snprintf(x->id, sizeof x->id, "%s", v);
    else if (strcmp(s, "data") == 0) {
        if (x->data.len && sbuf_add(&x->data, "\n", 1) < 0) return 1;
        if (sbuf_add(&x->data, v, strlen(v)) < 0) return 1;
    }
    return 0;
}

static void sse_open(void *ud) {
    sse_ctx *x = ud;
    if (x->on_open) x->on_open(x->ud);
}

int sc_events(sc_client *c, const char *id, const char *last_event_id, sc_event_cb on_event,
              void (*on_open)(void *ud), void *ud) {
    char path[256];
    int rc = path_of(c, path, sizeof path, "/v1/sessions/%s/events%s", id, NULL);
    if (rc < 0) return rc;
    sse_ctx x = {.c = c, .cb = on_event, .ud = ud, .on_open = on_open};
    sink k = {.c = c, .line = sse_line, .line_ud = &x, .on_open = sse_open};
    char hdr[160] = "", *extra = NULL;
    if (last_event_id && *last_event_id) {
        for (const char *s = last_event_id; *s; s++)
            if (*s < ' ' || *s > '~') return seterr(c, SC_EINVAL, "last_event_id: bad character");
        if (snprintf(hdr, sizeof hdr, "Last-Event-ID: %s", last_event_id) >= (int)sizeof hdr)
            return seterr(c, SC_EINVAL, "last_event_id: too long");
        extra = hdr;
    }
    long st = do_request(c, "GET", path, NULL, NULL, 0, NULL, &k, 1, extra);
    if (st >= 0 && st < 400 && !k.stopped && k.body.len) {
        sse_line(&x, k.body.p, k.body.len);
        sse_dispatch(&x);
    }
    free(k.body.p);
    free(x.data.p);
    if (st < 0) return (int)st;
    if (st >= 400) return SC_EHTTP;
    clearerr_(c);
    return 0;
}

/* ---- snapshots ---- */

int sc_snapshot_get(sc_client *c, const char *id, uint8_t **buf, size_t *len) {
    char path[256];
    sbuf b = {0};
    *buf = NULL;
    *len = 0;
    int rc = path_of(c, path, sizeof path, "/v1/sessions/%s/state%s", id, NULL);
    if (rc < 0) return rc;
    /* a snapshot is protobuf whatever the transport */
    int pb = c->pb;
    c->pb = 1;
    rc = call(c, "GET", path, NULL, NULL, 0, &b);
    c->pb = pb;
    if (rc < 0) return rc;
    *buf = (uint8_t *)b.p;
    *len = b.len;
    return 0;
}

int sc_snapshot_put(sc_client *c, const char *id, const uint8_t *buf, size_t len) {
    return simple(c, "PUT", "/v1/sessions/%s/state%s", id, CT_PB, buf, len);
}
