/* spikeclient.c: the spikeserve client over libcurl.
 *
 * One CURL easy handle per client, reset between requests, so keep-alive connections are
 * reused. Every request goes through do_request(), which collects the answer into a growable
 * buffer (or hands it, as it arrives, to a line splitter for the NDJSON stream and SSE) and
 * turns an error status into the handle's err/errstr from the server's error body.
 * Bodies are built and parsed with jansson (JSON) or protobuf-c (proto/api.proto).
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

/* ---- JSON helpers ---- */

static uint64_t ju64(json_t *o, const char *k, int *has) {
    json_t *v = json_object_get(o, k);
    if (has) *has = json_is_integer(v);
    if (json_is_integer(v)) return (uint64_t)json_integer_value(v);
    if (json_is_real(v)) return (uint64_t)json_real_value(v);
    return 0;
}
static void jstr(json_t *o, const char *k, char *dst, size_t cap) {
    const char *s = json_string_value(json_object_get(o, k));
    snprintf(dst, cap, "%s", s ? s : "");
}
static char *jdup(json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? strdup(s) : NULL;
}

/* ---- models ---- */

void sc_model_free(sc_model *m) {
    if (!m) return;
    free(m->name);
    free(m->description);
    free(m->layers);
    for (size_t i = 0; i < m->n_labels; i++)
        free(m->labels[i]);
    free(m->labels);
    memset(m, 0, sizeof *m);
}

void sc_models_free(sc_model *ms, size_t n) {
    for (size_t i = 0; ms && i < n; i++)
        sc_model_free(&ms[i]);
    free(ms);
}

static int enc_kind(json_t *v) {
    if (json_is_integer(v)) return (int)json_integer_value(v);
    const char *s = json_string_value(v);
    if (!s) return SC_ENC_NONE;
    if (strcasecmp(s, "rate") == 0) return SC_ENC_RATE;
    if (strcasecmp(s, "latency") == 0) return SC_ENC_LATENCY;
    return SC_ENC_NONE;
}

static int model_from_json(json_t *o, sc_model *m) {
    memset(m, 0, sizeof *m);
    if (!json_is_object(o)) return -1;
    m->name = jdup(o, "name");
    m->description = jdup(o, "description");
    m->version = (uint32_t)ju64(o, "version", NULL);
    m->n_in = (uint32_t)ju64(o, "n_in", NULL);
    m->n_out = (uint32_t)ju64(o, "n_out", NULL);
    json_t *ls = json_object_get(o, "layers"), *lb = json_object_get(o, "labels");
    if (json_array_size(ls)) {
        if (!(m->layers = calloc(json_array_size(ls), sizeof *m->layers))) return -1;
        for (size_t i = 0; i < json_array_size(ls); i++) {
            json_t *l = json_array_get(ls, i);
            jstr(l, "kind", m->layers[i].kind, sizeof m->layers[i].kind);
            m->layers[i].n_in = (uint32_t)ju64(l, "n_in", NULL);
            m->layers[i].n = (uint32_t)ju64(l, "n", NULL);
            m->n_layers++;
        }
    }
    if (json_array_size(lb)) {
        if (!(m->labels = calloc(json_array_size(lb), sizeof *m->labels))) return -1;
        for (size_t i = 0; i < json_array_size(lb); i++) {
            const char *s = json_string_value(json_array_get(lb, i));
            if (!(m->labels[i] = strdup(s ? s : ""))) return -1;
            m->n_labels++;
        }
    }
    json_t *e = json_object_get(o, "encoding");
    if (json_is_object(e)) {
        m->enc_kind = enc_kind(json_object_get(e, "kind"));
        m->enc_steps = (uint32_t)ju64(e, "steps", NULL);
        m->enc_warmup_steps = (uint32_t)ju64(e, "warmup_steps", NULL);
        m->enc_gain = (float)json_number_value(json_object_get(e, "gain"));
        m->enc_threshold = (float)json_number_value(json_object_get(e, "threshold"));
    }
    return m->name ? 0 : -1;
}

static int model_from_pb(const Spikeserve__ModelInfo *p, sc_model *m) {
    memset(m, 0, sizeof *m);
    m->name = strdup(p->name ? p->name : "");
    m->description = p->description ? strdup(p->description) : NULL;
    m->version = p->version;
    m->n_in = p->n_in;
    m->n_out = p->n_out;
    if (p->n_layers && !(m->layers = calloc(p->n_layers, sizeof *m->layers))) return -1;
    for (size_t i = 0; i < p->n_layers; i++, m->n_layers++) {
        snprintf(m->layers[i].kind, sizeof m->layers[i].kind, "%s",
                 p->layers[i]->kind ? p->layers[i]->kind : "");
        m->layers[i].n_in = p->layers[i]->n_in;
        m->layers[i].n = p->layers[i]->n;
    }
    if (p->n_labels && !(m->labels = calloc(p->n_labels, sizeof *m->labels))) return -1;
    for (size_t i = 0; i < p->n_labels; i++, m->n_labels++)
        if (!(m->labels[i] = strdup(p->labels[i]))) return -1;
    if (p->encoding) {
        m->enc_kind = (int)p->encoding->kind;
        m->enc_steps = p->encoding->steps;
        m->enc_warmup_steps = p->encoding->warmup_steps;
        m->enc_gain = p->encoding->gain;
        m->enc_threshold = p->encoding->threshold;
    }
    return m->name ? 0 : -1;
}

int sc_models(sc_client *c, sc_model **out, size_t *n) {
    sbuf b = {0};
    *out = NULL;
    *n = 0;
    int rc = call(c, "GET", "/v1/models", NULL, NULL, 0, &b);
    if (rc < 0) return rc;
    rc = 0;
    if (strcmp(c->ctype, CT_PB) == 0) {
        Spikeserve__ModelList *l = spikeserve__model_list__unpack(NULL, b.len, (uint8_t *)b.p);
        if (!l)
            rc = -1;
        else {
            if (l->n_models && !(*out = calloc(l->n_models, sizeof **out))) rc = -1;
            for (size_t i = 0; rc == 0 && i < l->n_models; i++, (*n)++)
                rc = model_from_pb(l->models[i], &(*out)[i]);
            spikeserve__model_list__free_unpacked(l, NULL);
        }
    } else {
        json_t *j = json_loadb(b.p, b.len, 0, NULL);
        json_t *arr = json_is_array(j) ? j : json_object_get(j, "models");
        if (!json_is_array(arr))
            rc = -1;
        else {
            size_t m = json_array_size(arr);
            if (m && !(*out = calloc(m, sizeof **out))) rc = -1;
            for (size_t i = 0; rc == 0 && i < m; i++, (*n)++)
                rc = model_from_json(json_array_get(arr, i), &(*out)[i]);
        }
        json_decref(j);
    }
    free(b.p);
    if (rc < 0) {
        sc_models_free(*out, *n);
        *out = NULL;
        *n = 0;
        return seterr(c, SC_EPROTO, "GET /v1/models: unexpected answer");
    }
    return 0;
}

int sc_model_get(sc_client *c, const char *name, sc_model *out) {
    char path[256];
    sbuf b = {0};
    memset(out, 0, sizeof *out);
    int rc = path_of(c, path, sizeof path, "/v1/models/%s%s", name, NULL);
    if (rc < 0 || (rc = call(c, "GET", path, NULL, NULL, 0, &b)) < 0) return rc;
    if (strcmp(c->ctype, CT_PB) == 0) {
        Spikeserve__ModelInfo *p = spikeserve__model_info__unpack(NULL, b.len, (uint8_t *)b.p);
        rc = p ? model_from_pb(p, out) : -1;
        if (p) spikeserve__model_info__free_unpacked(p, NULL);
    } else {
        json_t *j = json_loadb(b.p, b.len, 0, NULL);
        rc = model_from_json(j, out);
        json_decref(j);
    }
    free(b.p);
    if (rc < 0) {
        sc_model_free(out);
        return seterr(c, SC_EPROTO, "GET %s: unexpected answer", path);
    }
    return 0;
}

/* ---- sessions ---- */

static int session_parse(sc_client *c, const sbuf *b, sc_session *s) {
    memset(s, 0, sizeof *s);
    if (strcmp(c->ctype, CT_PB) == 0) {
        Spikeserve__SessionInfo *p =
            spikeserve__session_info__unpack(NULL, b->len, (uint8_t *)b->p);
        if (!p || !p->session_id) {
            if (p) spikeserve__session_info__free_unpacked(p, NULL);
            return seterr(c, SC_EPROTO, "session: unexpected protobuf answer");
        }
        snprintf(s->session_id, sizeof s->session_id, "%s", p->session_id);
        snprintf(s->model, sizeof s->model, "%s", p->model ? p->model : "");
        snprintf(s->created_at, sizeof s->created_at, "%s", p->created_at ? p->created_at : "");
        snprintf(s->last_active_at, sizeof s->last_active_at, "%s",
                 p->last_active_at ? p->last_active_at : "");
        s->model_version = p->model_version;
        s->idle_timeout_s = p->idle_timeout_s;
        s->t = p->t;
        s->has_last_seq = p->has_last_seq;
        s->last_seq = p->last_seq;
        spikeserve__session_info__free_unpacked(p, NULL);
        return 0;
    }
    json_t *j = json_loadb(b->p, b->len, 0, NULL);
    if (!json_is_string(json_object_get(j, "session_id"))) {
        json_decref(j);
        return seterr(c, SC_EPROTO, "session: answer without a session_id");
    }
    jstr(j, "session_id", s->session_id, sizeof s->session_id);
    jstr(j, "model", s->model, sizeof s->model);
    jstr(j, "created_at", s->created_at, sizeof s->created_at);
    jstr(j, "last_active_at", s->last_active_at, sizeof s->last_active_at);
    s->model_version = (uint32_t)ju64(j, "model_version", NULL);
    s->idle_timeout_s = (uint32_t)ju64(j, "idle_timeout_s", NULL);
    s->t = ju64(j, "t", NULL);
    s->last_seq = ju64(j, "last_seq", &s->has_last_seq);
    json_decref(j);
    return 0;
}

int sc_session_open(sc_client *c, const char *model, uint32_t idle_timeout_s, sc_session *out) {
    char path[256];
    sbuf b = {0};
    int rc = path_of(c, path, sizeof path, "/v1/models/%s/sessions%s", model, NULL);
    if (rc < 0) return rc;
    if (c->pb) {
        Spikeserve__OpenSessionRequest r = SPIKESERVE__OPEN_SESSION_REQUEST__INIT;
        uint8_t buf[16];
        r.has_idle_timeout_s = idle_timeout_s > 0;
        r.idle_timeout_s = idle_timeout_s;
        size_t n = spikeserve__open_session_request__pack(&r, buf);
        rc = call(c, "POST", path, CT_PB, buf, n, &b);
    } else {
        char body[64] = "{}";
        if (idle_timeout_s) snprintf(body, sizeof body, "{\"idle_timeout_s\": %u}", idle_timeout_s);
        rc = call(c, "POST", path, CT_JSON, body, strlen(body), &b);
    }
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

void sc_result_free(sc_result *r) {
    if (!r) return;
    free(r->spikes);
    free(r->readout);
    free(r->label);
    memset(r, 0, sizeof *r);
}

static json_t *outputs_json(unsigned o) {
    static const char *names[] = {"spikes", "readout", "readout_all", "layers"};
    json_t *a = json_array();
    for (int i = 0; i < 4; i++)
        if (o & (1u << i)) json_array_append_new(a, json_string(names[i]));
    return a;
}

static json_t *batch_to_json(const sc_batch *b) {
    json_t *j = json_object();
    if (b->has_seq) json_object_set_new(j, "seq", json_integer((json_int_t)b->seq));
    json_object_set_new(j, "steps", json_integer(b->steps));
    if (b->dense) {
        json_t *rows = json_array();
        for (uint32_t t = 0; t < b->steps; t++) {
            json_t *row = json_array();
            for (uint32_t i = 0; i < b->dense_n; i++)
                json_array_append_new(row, json_real(b->dense[(size_t)t * b->dense_n + i]));
            json_array_append_new(rows, row);
        }
        json_object_set_new(j, "dense", rows);
    } else {
        json_t *ev = json_array();
        for (size_t i = 0; i < b->n_events; i++) {
            const sc_event *e = &b->events[i];
            json_t *x = json_pack("[II]", (json_int_t)e->step, (json_int_t)e->input);
            if (e->value != 1.0f) json_array_append_new(x, json_real(e->value));
            json_array_append_new(ev, x);
        }
        json_object_set_new(j, "events", ev);
    }
    if (b->outputs) json_object_set_new(j, "outputs", outputs_json(b->outputs));
    return j;
}

char *sc_batch_json(sc_client *c, const sc_batch *b) {
    json_t *j = batch_to_json(b);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s) seterr(c, SC_ENOMEM, "out of memory encoding a batch");
    return s;
}

static uint8_t *batch_to_pb(const sc_batch *b, size_t *len) {
    static const char *names[] = {"spikes", "readout", "readout_all", "layers"};
    Spikeserve__SpikeBatch m = SPIKESERVE__SPIKE_BATCH__INIT;
    Spikeserve__InputEvent *ev = NULL, **evp = NULL;
    Spikeserve__DenseRow *rows = NULL, **rowp = NULL;
    char *outs[4];
    uint8_t *buf = NULL;
    m.has_seq = b->has_seq;
    m.seq = b->seq;
    m.has_steps = 1;
    m.steps = b->steps;
    if (b->dense) {
        rows = calloc(b->steps ? b->steps : 1, sizeof *rows);
        rowp = calloc(b->steps ? b->steps : 1, sizeof *rowp);
        if (!rows || !rowp) goto done;
        for (uint32_t t = 0; t < b->steps; t++) {
            spikeserve__dense_row__init(&rows[t]);
            rows[t].n_values = b->dense_n;
            rows[t].values = (float *)(uintptr_t)(b->dense + (size_t)t * b->dense_n);
            rowp[t] = &rows[t];
        }
        m.n_dense = b->steps;
        m.dense = rowp;
    } else if (b->n_events) {
        ev = calloc(b->n_events, sizeof *ev);
        evp = calloc(b->n_events, sizeof *evp);
        if (!ev || !evp) goto done;
        for (size_t i = 0; i < b->n_events; i++) {
            spikeserve__input_event__init(&ev[i]);
            ev[i].has_step = ev[i].has_input = 1;
            ev[i].step = b->events[i].step;
            ev[i].input = b->events[i].input;
            ev[i].has_value = b->events[i].value != 1.0f;
            ev[i].value = b->events[i].value;
            evp[i] = &ev[i];
        }
        m.n_events = b->n_events;
        m.events = evp;
    }
    for (int i = 0; i < 4; i++)
        if (b->outputs & (1u << i)) outs[m.n_outputs++] = (char *)(uintptr_t)names[i];
    m.outputs = outs;
    *len = spikeserve__spike_batch__get_packed_size(&m);
    if ((buf = malloc(*len ? *len : 1))) spikeserve__spike_batch__pack(&m, buf);
done:
    free(ev);
    free(evp);
    free(rows);
    free(rowp);
    return buf;
}

int sc_result_parse_json(sc_client *c, const char *json, size_t len, sc_result *r) {
    json_error_t je;
    memset(r, 0, sizeof *r);
    json_t *j = json_loadb(json, len, 0, &je);
    if (!json_is_object(j)) {
        json_decref(j);
        return seterr(c, SC_EPROTO, "step result: not a JSON object (%s)", je.text);
    }
    json_t *e = json_object_get(j, "error");
    if (e) {
        const char *code = json_string_value(json_object_get(e, "code"));
        const char *m = json_string_value(json_object_get(e, "message"));
        snprintf(c->ecode, sizeof c->ecode, "%s", code ? code : "");
        seterr(c, SC_EHTTP, "%s: %s", code ? code : "error", m ? m : "(no message)");
        json_decref(j);
        return SC_EHTTP;
    }
    jstr(j, "session_id", r->session_id, sizeof r->session_id);
    r->seq = ju64(j, "seq", &r->has_seq);
    r->t0 = ju64(j, "t0", NULL);
    r->steps = (uint32_t)ju64(j, "steps", NULL);
    json_t *sp = json_object_get(j, "spikes"), *ro = json_object_get(j, "readout");
    size_t n = json_array_size(sp);
    if (n && !(r->spikes = malloc(n * sizeof *r->spikes))) goto nomem;
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_array_get(sp, i);
        sc_spike *s = &r->spikes[r->n_spikes];
        if (json_array_size(x) < 3) continue;
        s->step = (uint32_t)json_integer_value(json_array_get(x, 0));
        s->neuron = (uint32_t)json_integer_value(json_array_get(x, 1));
        s->value = (float)json_number_value(json_array_get(x, 2));
        r->n_spikes++;
    }
    n = json_array_size(ro);
    if (n && !(r->readout = malloc(n * sizeof *r->readout))) goto nomem;
    for (size_t i = 0; i < n; i++)
        r->readout[r->n_readout++] = (float)json_number_value(json_array_get(ro, i));
    json_t *p = json_object_get(j, "prediction");
    if (json_is_object(p)) {
        r->has_prediction = 1;
        r->prediction = (uint32_t)ju64(p, "index", NULL);
        r->label = jdup(p, "label");
    }
    json_decref(j);
    return 0;
nomem:
    json_decref(j);
    sc_result_free(r);
    return seterr(c, SC_ENOMEM, "out of memory");
}

static int result_parse_pb(sc_client *c, const sbuf *b, sc_result *r) {
    memset(r, 0, sizeof *r);
    Spikeserve__StepResult *p = spikeserve__step_result__unpack(NULL, b->len, (uint8_t *)b->p);
    if (!p) return seterr(c, SC_EPROTO, "step result: bad protobuf");
    snprintf(r->session_id, sizeof r->session_id, "%s", p->session_id ? p->session_id : "");
    r->has_seq = p->has_seq;
    r->seq = p->seq;
    r->t0 = p->t0;
    r->steps = p->steps;
    if (p->n_spikes && !(r->spikes = malloc(p->n_spikes * sizeof *r->spikes))) goto nomem;
    for (size_t i = 0; i < p->n_spikes; i++, r->n_spikes++)
        r->spikes[i] = (sc_spike){p->spikes[i]->step, p->spikes[i]->neuron, p->spikes[i]->value};
    if (p->n_readout && !(r->readout = malloc(p->n_readout * sizeof *r->readout))) goto nomem;
    if (p->n_readout) memcpy(r->readout, p->readout, p->n_readout * sizeof *r->readout);
    r->n_readout = p->n_readout;
    if (p->prediction) {
        r->has_prediction = 1;
        r->prediction = p->prediction->index;
        r->label = p->prediction->label ? strdup(p->prediction->label) : NULL;
    }
    spikeserve__step_result__free_unpacked(p, NULL);
    return 0;
nomem:
    spikeserve__step_result__free_unpacked(p, NULL);
    sc_result_free(r);
    return seterr(c, SC_ENOMEM, "out of memory");
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
        body = batch_to_pb(b, &len);
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
    if (c->pb) {
        Spikeserve__ClassifyRequest m = SPIKESERVE__CLASSIFY_REQUEST__INIT;
        m.n_values = n;
        m.values = (float *)(uintptr_t)x;
        m.has_seed = 1;
        m.seed = seed;
        len = spikeserve__classify_request__get_packed_size(&m);
        if ((body = malloc(len ? len : 1))) spikeserve__classify_request__pack(&m, body);
    } else {
        json_t *v = json_array();
        for (uint32_t i = 0; i < n; i++)
            json_array_append_new(v, json_real(x[i]));
        json_t *j = json_pack("{s:o, s:I}", "values", v, "seed", (json_int_t)seed);
        body = j ? json_dumps(j, JSON_COMPACT) : NULL;
        if (body) len = strlen(body);
        json_decref(j);
    }
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
    sum.lines = ju64(j, "lines", NULL);
    sum.ok = ju64(j, "ok", NULL);
    sum.failed = ju64(j, "failed", NULL);
    sum.t = ju64(j, "t", NULL);
    sum.last_seq = ju64(j, "last_seq", NULL);
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
                    (unsigned long long)ju64(e, "line", NULL),
                    (unsigned long long)ju64(e, "status", NULL), code ? code : "",
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
