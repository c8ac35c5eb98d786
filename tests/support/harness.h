/* harness.h: end-to-end test support. Starts the real build/spikeserve on a free loopback
 * port (--port 0 --port-file), waits for /readyz, talks to it with libcurl, stops it with a
 * signal and reports its exit status. Also makes small random models with
 * tests/e2e/make_model.py. Every function returns 0 or -1 (with a diagnostic on stdout as
 * a TAP comment). Not thread-safe except ts_http*, which may run on many threads at once.
 */
#ifndef TS_HARNESS_H
#define TS_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct {
    pid_t pid;
    unsigned port;
    char base[64]; /* "http://127.0.0.1:PORT" */
    char dir[256]; /* scratch directory of this server (port file, log) */
    char log[300]; /* the server's stderr */
} ts_server;

typedef struct {
    long status;
    char *body; /* NUL-terminated, malloc'd */
    size_t len;
    char *headers; /* raw response headers, NUL-terminated */
    char ctype[128];
} ts_resp;

/* A fresh temporary directory (under $TMPDIR or /tmp) into out. */
int ts_tmpdir(char *out, size_t len, const char *tag);
/* Run make_model.py DIR/NAME.spk ARGS (args may be NULL). */
int ts_make_model(const char *dir, const char *name, const char *args);
/* Start the server: argv gets --model-dir model_dir --port 0 --port-file ... plus extra
 * (NULL-terminated, may be NULL). Waits up to 30 s for /readyz. */
int ts_server_start(ts_server *s, const char *model_dir, const char *const *extra);
/* Send sig (SIGTERM usually), wait up to 30 s; *status gets the exit code (or 128+signal). */
int ts_server_stop(ts_server *s, int sig, int *status);
/* Print the server's log as TAP comments. */
void ts_server_dump_log(const ts_server *s);

/* One request. ctype/body/accept may be NULL. chunked: send the body with
 * Transfer-Encoding: chunked instead of Content-Length. */
int ts_http(const ts_server *s, const char *method, const char *path, const char *ctype,
            const void *body, size_t len, const char *accept, ts_resp *out);
int ts_http_chunked(const ts_server *s, const char *method, const char *path, const char *ctype,
                    const void *body, size_t len, const char *accept, ts_resp *out);
/* With one extra request header ("Authorization: Bearer k"). */
int ts_http_h(const ts_server *s, const char *method, const char *path, const char *ctype,
              const void *body, size_t len, const char *accept, const char *header, ts_resp *out);
void ts_resp_free(ts_resp *r);
/* Value of a response header (case-insensitive name) into buf; 0 or -1 when absent. */
int ts_header(const ts_resp *r, const char *name, char *buf, size_t len);

/* Shortcuts for JSON: POST/GET with Content-Type application/json. */
int ts_json(const ts_server *s, const char *method, const char *path, const char *json,
            ts_resp *out);
/* Open a session on model; id into out (at least 65 bytes). */
int ts_open_session(const ts_server *s, const char *model, char *out, size_t len);

/* The value of the sample line "NAME VALUE" (name with labels, exactly as written) in a
 * Prometheus text body; -1 when absent. */
double ts_metric(const char *text, const char *name);
/* A raw TCP connection to s on loopback (rcvbuf > 0: that SO_RCVBUF, set before connecting);
 * the socket, or -1. */
int ts_dial(const ts_server *s, int rcvbuf);
/* VmRSS of a process in kB, or -1. */
long ts_rss_kb(pid_t pid);

/* A Server-Sent Events reader on its own thread. open returns once the response headers
 * and the server's first comment arrived (so the subscription is live), or NULL. */
typedef struct ts_sse ts_sse;
ts_sse *ts_sse_open(const ts_server *s, const char *path, long *status);
/* Wait until needle occurs at least count times (or the stream ended, or timeout_ms);
 * returns how many times it occurs. */
int ts_sse_wait(ts_sse *e, const char *needle, int count, int timeout_ms);
int ts_sse_count(ts_sse *e, const char *needle);
/* Waits until at least n bytes have arrived (or the stream ended, or timeout); the bytes so far. */
size_t ts_sse_wait_bytes(ts_sse *e, size_t n, int timeout_ms);
int ts_sse_ended(ts_sse *e);  /* the server closed the stream */
char *ts_sse_text(ts_sse *e); /* a copy of everything received */
void ts_sse_close(ts_sse *e);

/* The build directory ($SPIKESERVE_BUILD or "build") and the Python interpreter. */
const char *ts_build_dir(void);
const char *ts_python(void);

#endif
