/* harness.c: process control with fork/exec and waitpid, HTTP with one libcurl easy
 * handle per request (so any number of test threads can call ts_http at once). */
#include "harness.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *ts_build_dir(void) {
    const char *b = getenv("SPIKESERVE_BUILD");
    return b && *b ? b : "build";
}

const char *ts_python(void) {
    const char *p = getenv("PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Temporary directories are removed at exit unless SPIKESERVE_KEEP_TMP is set. */
static char *tmpdirs[64];
static int n_tmpdirs;

static void remove_tmpdirs(void) {
    const char *keep = getenv("SPIKESERVE_KEEP_TMP");
    for (int i = 0; i < n_tmpdirs; i++) {
        if (!(keep && *keep)) {
            char cmd[600];
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdirs[i]);
            if (system(cmd)) {
            }
        }
        free(tmpdirs[i]);
    }
    n_tmpdirs = 0;
}

int ts_tmpdir(char *out, size_t len, const char *tag) {
    const char *t = getenv("TMPDIR");
    snprintf(out, len, "%s/spikeserve-%s-XXXXXX", t && *t ? t : "/tmp", tag);
    if (!mkdtemp(out)) {
        printf("# mkdtemp %s: %s\n", out, strerror(errno));
        return -1;
    }
    if (n_tmpdirs == 0) atexit(remove_tmpdirs);
    if (n_tmpdirs < 64) tmpdirs[n_tmpdirs++] = strdup(out);
    return 0;
}

int ts_make_model(const char *dir, const char *name, const char *args) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s tests/e2e/make_model.py '%s/%s.spk' --name '%s' %s", ts_python(),
             dir, name, name, args ? args : "");
    int rc = system(cmd);
    if (rc != 0) printf("# make_model failed (%d): %s\n", rc, cmd);
    return rc == 0 ? 0 : -1;
}

static size_t sink(char *p, size_t size, size_t n, void *arg) {
    ts_resp *r = arg;
    size_t k = size * n;
    char *b = realloc(r->body, r->len + k + 1);
    if (!b) return 0;
    memcpy(b + r->len, p, k);
    r->body = b;
    r->len += k;
    r->body[r->len] = 0;
    return k;
}

typedef struct {
    char *buf;
    size_t len;
} hbuf;

static size_t hsink(char *p, size_t size, size_t n, void *arg) {
    hbuf *h = arg;
    size_t k = size * n;
    char *b = realloc(h->buf, h->len + k + 1);
    if (!b) return 0;
    memcpy(b + h->len, p, k);
    h->buf = b;
    h->len += k;
    h->buf[h->len] = 0;
    return k;
}

typedef struct {
    const char *p;
    size_t left;
} rsrc;

static size_t rfeed(char *buf, size_t size, size_t n, void *arg) {
    rsrc *s = arg;
    size_t k = size * n;
    if (k > s->left) k = s->left;
    memcpy(buf, s->p, k);
    s->p += k;
    s->left -= k;
    return k;
}

static int request(const ts_server *s, const char *method, const char *path, const char *ctype,
                   const void *body, size_t len, const char *accept, int chunked, const char *extra,
                   ts_resp *out) {
    memset(out, 0, sizeof *out);
    CURL *c = curl_easy_init();
    if (!c) return -1;
    char url[512], h1[256], h2[256];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    struct curl_slist *hdr = NULL;
    snprintf(h1, sizeof h1, "Content-Type: %s", ctype ? ctype : "");
    hdr = curl_slist_append(hdr, ctype ? h1 : "Content-Type:");
    snprintf(h2, sizeof h2, "Accept: %s", accept ? accept : "");
    hdr = curl_slist_append(hdr, accept ? h2 : "Accept:");
    hdr = curl_slist_append(hdr, "Expect:");
    if (chunked) hdr = curl_slist_append(hdr, "Transfer-Encoding: chunked");
    if (extra) hdr = curl_slist_append(hdr, extra);
    hbuf hb = {NULL, 0};
    rsrc src = {body, len};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, hsink);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &hb);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (!strcmp(method, "HEAD")) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        if (chunked) {
            curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(c, CURLOPT_READFUNCTION, rfeed);
            curl_easy_setopt(c, CURLOPT_READDATA, &src);
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        } else {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        }
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
        char *ct = NULL;
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
        if (ct) snprintf(out->ctype, sizeof out->ctype, "%s", ct);
    } else {
        printf("# %s %s: %s\n", method, path, curl_easy_strerror(rc));
    }
    if (!out->body) out->body = calloc(1, 1);
    out->headers = hb.buf ? hb.buf : calloc(1, 1);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    return rc == CURLE_OK ? 0 : -1;
}

int ts_http(const ts_server *s, const char *method, const char *path, const char *ctype,
            const void *body, size_t len, const char *accept, ts_resp *out) {
    return request(s, method, path, ctype, body, len, accept, 0, NULL, out);
}

int ts_http_h(const ts_server *s, const char *method, const char *path, const char *ctype,
              const void *body, size_t len, const char *accept, const char *header, ts_resp *out) {
    return request(s, method, path, ctype, body, len, accept, 0, header, out);
}

int ts_http_chunked(const ts_server *s, const char *method, const char *path, const char *ctype,
                    const void *body, size_t len, const char *accept, ts_resp *out) {
    return request(s, method, path, ctype, body, len, accept, 1, NULL, out);
}

void ts_resp_free(ts_resp *r) {
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof *r);
}

int ts_header(const ts_resp *r, const char *name, char *buf, size_t len) {
    size_t n = strlen(name);
    for (const char *p = r->headers; p && *p;) {
        const char *e = strchr(p, '\n');
        if (!strncasecmp(p, name, n) && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            size_t k = (size_t)((e ? e : v + strlen(v)) - v);
            while (k && (v[k - 1] == '\r' || v[k - 1] == '\n'))
                k--;
            snprintf(buf, len, "%.*s", (int)k, v);
            return 0;
        }
        p = e ? e + 1 : NULL;
    }
    return -1;
}

int ts_json(const ts_server *s, const char *method, const char *path, const char *json,
            ts_resp *out) {
    return ts_http(s, method, path, json ? "application/json" : NULL, json, json ? strlen(json) : 0,
                   "application/json", out);
}

int ts_open_session(const ts_server *s, const char *model, char *out, size_t len) {
    char path[256];
    snprintf(path, sizeof path, "/v1/models/%s/sessions", model);
    ts_resp r;
    if (ts_json(s, "POST", path, NULL, &r) != 0 || r.status != 201) {
        printf("# open session: status %ld %s\n", r.status, r.body ? r.body : "");
        ts_resp_free(&r);
        return -1;
    }
    json_t *j = json_loads(r.body, 0, NULL);
    const char *id = json_string_value(json_object_get(j, "session_id"));
    int rc = id ? 0 : -1;
    if (id) snprintf(out, len, "%s", id);
    json_decref(j);
    ts_resp_free(&r);
    return rc;
}

int ts_server_start(ts_server *s, const char *model_dir, const char *const *extra) {
    memset(s, 0, sizeof *s);
    if (ts_tmpdir(s->dir, sizeof s->dir, "server") != 0) return -1;
    char port_file[300], bin[300];
    snprintf(port_file, sizeof port_file, "%s/port", s->dir);
    snprintf(s->log, sizeof s->log, "%s/server.log", s->dir);
    snprintf(bin, sizeof bin, "%s/spikeserve", ts_build_dir());
    char *argv[64];
    int n = 0;
    /* gRPC off unless a test asks (extra "--grpc-port any"): servers of one test run side
     * by side, and the default port is fixed */
    const char *fixed[] = {bin,      "--model-dir", model_dir,     "--bind",      "127.0.0.1",
                           "--port", "0",           "--port-file", port_file,     "--grpc-port",
                           "0"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        argv[n++] = strdup(fixed[i]);
    for (int i = 0; extra && extra[i] && n < 62; i++)
        argv[n++] = strdup(extra[i]);
    argv[n] = NULL;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        execv(bin, argv);
        _exit(127);
    }
    for (int i = 0; i < n; i++)
        free(argv[i]);
    s->pid = pid;
    for (int i = 0; i < 3000; i++) { /* 30 s */
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            printf("# server exited during start (status %d)\n", st);
            s->pid = 0;
            ts_server_dump_log(s);
            return -1;
        }
        FILE *f = fopen(port_file, "r");
        if (f) {
            unsigned port = 0;
            if (fscanf(f, "%u", &port) == 1 && port) s->port = port;
            fclose(f);
        }
        if (s->port) {
            snprintf(s->base, sizeof s->base, "http://127.0.0.1:%u", s->port);
            ts_resp r;
            if (ts_http(s, "GET", "/readyz", NULL, NULL, 0, NULL, &r) == 0 && r.status == 200) {
                ts_resp_free(&r);
                return 0;
            }
            ts_resp_free(&r);
        }
        sleep_ms(10);
    }
    printf("# server did not become ready\n");
    ts_server_stop(s, SIGKILL, NULL);
    return -1;
}

int ts_server_stop(ts_server *s, int sig, int *status) {
    if (!s->pid) return -1;
    kill(s->pid, sig);
    int st = 0;
    for (int i = 0; i < 3000; i++) {
        pid_t w = waitpid(s->pid, &st, WNOHANG);
        if (w == s->pid) {
            s->pid = 0;
            int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            if (status) *status = code;
            if (code != 0 && sig != SIGKILL) {
                printf("# server exited with %d; its log:\n", code);
                ts_server_dump_log(s);
            }
            return 0;
        }
        sleep_ms(10);
    }
    printf("# server %d did not stop in 30 s; killing it\n", (int)s->pid);
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &st, 0);
    s->pid = 0;
    if (status) *status = -1;
    return -1;
}

void ts_server_dump_log(const ts_server *s) {
    FILE *f = fopen(s->log, "r");
    if (!f) return;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f) && n++ < 200)
        printf("#   | %s", line);
    fclose(f);
}

double ts_metric(const char *text, const char *name) {
    size_t n = strlen(name);
    for (const char *p = text; p && *p;) {
        if (!strncmp(p, name, n) && p[n] == ' ') return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p) p++;
    }
    return -1;
}

struct ts_sse {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char url[512];
    char *buf;
    size_t len;
    long status;
    int ended, stop, got_headers;
};

static size_t sse_sink(char *p, size_t size, size_t n, void *arg) {
    ts_sse *e = arg;
    size_t k = size * n;
    pthread_mutex_lock(&e->mu);
    char *b = realloc(e->buf, e->len + k + 1);
    if (b) {
        memcpy(b + e->len, p, k);
        e->buf = b;
        e->len += k;
        e->buf[e->len] = 0;
    }
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return b ? k : 0;
}

static int sse_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d) {
    (void)a, (void)b, (void)c, (void)d;
    ts_sse *e = arg;
    return __atomic_load_n(&e->stop, __ATOMIC_RELAXED);
}

static void *sse_main(void *arg) {
    ts_sse *e = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Accept: text/event-stream");
    curl_easy_setopt(c, CURLOPT_URL, e->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sse_sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, e);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, sse_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, e);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L);
    curl_easy_perform(c);
    long st = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    pthread_mutex_lock(&e->mu);
    e->status = st;
    e->ended = 1;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

static int count_in(const char *hay, const char *needle) {
    int n = 0;
    size_t k = strlen(needle);
    for (const char *p = hay; p && (p = strstr(p, needle)); p += k)
        n++;
    return n;
}

static void deadline_in(struct timespec *ts, int ms) {
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) ts->tv_sec++, ts->tv_nsec -= 1000000000L;
}

ts_sse *ts_sse_open(const ts_server *s, const char *path, long *status) {
    ts_sse *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    snprintf(e->url, sizeof e->url, "%s%s", s->base, path);
    if (pthread_create(&e->th, NULL, sse_main, e) != 0) {
        free(e);
        return NULL;
    }
    struct timespec dl;
    deadline_in(&dl, 10000);
    pthread_mutex_lock(&e->mu);
    while (!e->ended && !(e->buf && strstr(e->buf, ": spikeserve events")))
        if (pthread_cond_timedwait(&e->cv, &e->mu, &dl) != 0) break;
    int live = !e->ended && e->buf && strstr(e->buf, ": spikeserve events");
    pthread_mutex_unlock(&e->mu);
    if (!live) {
        ts_sse_close(e);
        if (status) *status = 0;
        /* the caller may want the status of a refused subscription: run it once more */
        return NULL;
    }
    if (status) *status = 200;
    return e;
}

int ts_sse_wait(ts_sse *e, const char *needle, int count, int timeout_ms) {
    struct timespec dl;
    deadline_in(&dl, timeout_ms);
    pthread_mutex_lock(&e->mu);
    int n;
    while ((n = count_in(e->buf, needle)) < count && !e->ended)
        if (pthread_cond_timedwait(&e->cv, &e->mu, &dl) != 0) break;
    n = count_in(e->buf, needle);
    pthread_mutex_unlock(&e->mu);
    return n;
}

size_t ts_sse_wait_bytes(ts_sse *e, size_t n, int timeout_ms) {
    struct timespec dl;
    deadline_in(&dl, timeout_ms);
    pthread_mutex_lock(&e->mu);
    while (e->len < n && !e->ended)
        if (pthread_cond_timedwait(&e->cv, &e->mu, &dl) != 0) break;
    size_t len = e->len;
    pthread_mutex_unlock(&e->mu);
    return len;
}

int ts_sse_count(ts_sse *e, const char *needle) {
    pthread_mutex_lock(&e->mu);
    int n = count_in(e->buf, needle);
    pthread_mutex_unlock(&e->mu);
    return n;
}

int ts_sse_ended(ts_sse *e) {
    pthread_mutex_lock(&e->mu);
    int d = e->ended;
    pthread_mutex_unlock(&e->mu);
    return d;
}

char *ts_sse_text(ts_sse *e) {
    pthread_mutex_lock(&e->mu);
    char *t = strdup(e->buf ? e->buf : "");
    pthread_mutex_unlock(&e->mu);
    return t;
}

void ts_sse_close(ts_sse *e) {
    if (!e) return;
    __atomic_store_n(&e->stop, 1, __ATOMIC_RELAXED);
    pthread_join(e->th, NULL);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e->buf);
    free(e);
}

int ts_dial(const ts_server *s, int rcvbuf) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)s->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

long ts_rss_kb(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = atol(line + 6);
    if (f) fclose(f);
    return kb;
}
