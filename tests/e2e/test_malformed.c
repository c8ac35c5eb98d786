/* Malformed bytes never crash the server or reach a 5xx: random and truncated bodies on
 * every body route in JSON and protobuf, deep nesting, garbage that is not HTTP at all.
 * Every raw request's answer is read and checked against what is expected of it (a 4xx
 * status line, or a close without a reply where no request could be parsed or the body
 * never arrived); the one 5xx is libmicrohttpd's 505 for an HTTP major version it does not
 * speak (RFC 9110 section 15.6.6). After each, the server still answers a normal request,
 * and a SIGTERM still drains to exit 0. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../support/batchgen.h"
#include "../support/harness.h"
#include "../tap.h"

static ts_server s;

/* What the server did with one raw request. */
typedef struct {
    int sent;   /* every byte was written (a server may close before reading them all) */
    int closed; /* the server closed the connection (EOF or reset) before the deadline */
    size_t n;   /* bytes of reply */
    int status; /* the status code of its status line, 0 when there is none */
    char head[128];
} raw_reply;

/* The integer field name of a JSON object body into *v (-1 when absent). */
static void json_int_field(const char *body, const char *name, long long *v) {
    *v = -1;
    json_t *j = body ? json_loads(body, 0, NULL) : NULL;
    json_t *f = j ? json_object_get(j, name) : NULL;
    if (json_is_integer(f)) *v = (long long)json_integer_value(f);
    json_decref(j);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The server runs with --connection-timeout 5, so even a connection it keeps waiting on is
 * closed well before this (a liveness bound, not a timing check). */
#define RAW_DEADLINE_MS 30000

/* Send buf on a fresh connection, half-close it (the client is done), and read the answer
 * until the server closes the connection. */
static raw_reply raw(const void *buf, size_t len) {
    raw_reply r;
    memset(&r, 0, sizeof r);
    int fd = ts_dial(&s, 0);
    if (fd < 0) return r;
    size_t off = 0;
    while (off < len) {
        ssize_t k = send(fd, (const char *)buf + off, len - off, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        off += (size_t)k;
    }
    r.sent = off == len;
    shutdown(fd, SHUT_WR);
    int64_t end = now_ms() + RAW_DEADLINE_MS;
    for (;;) {
        int64_t left = end - now_ms();
        if (left <= 0) break;
        struct pollfd p = {fd, POLLIN, 0};
        int pr = poll(&p, 1, (int)left);
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) break;
        char tmp[4096];
        ssize_t k = recv(fd, tmp, sizeof tmp, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            r.closed = 1; /* EOF, or a reset after what was queued was read */
            break;
        }
        if (r.n < sizeof r.head - 1) {
            size_t room = sizeof r.head - 1 - r.n;
            memcpy(r.head + r.n, tmp, (size_t)k < room ? (size_t)k : room);
        }
        r.n += (size_t)k;
    }
    close(fd);
    int code;
    if (sscanf(r.head, "HTTP/1.%*1[01] %3d ", &code) == 1) r.status = code;
    return r;
}

/* Send one raw request, check the answer, then check the server still answers. want: a
 * status code, or 0 for "closed without a byte of reply". */
static void raw_case(const char *name, const void *buf, size_t len, int want) {
    raw_reply r = raw(buf, len);
    int pass = want ? ok(r.closed && r.status == want, "%s: answered %d and closed", name, want)
                    : ok(r.closed && r.n == 0, "%s: closed without a reply", name);
    if (!pass)
        diag("  sent all %d, closed %d, %zu bytes of reply: \"%.*s\"", r.sent, r.closed, r.n,
             (int)strcspn(r.head, "\r\n"), r.head);
    ts_resp h;
    ts_http(&s, "GET", "/healthz", NULL, NULL, 0, NULL, &h);
    if (!ok(h.status == 200, "after %s: /healthz answers 200", name)) diag("  got %ld", h.status);
    ts_resp_free(&h);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    char dir[256];
    if (ts_tmpdir(dir, sizeof dir, "models") || ts_make_model(dir, "tiny", NULL)) return 1;
    /* a connection the server keeps waiting on is closed after 5 s of silence (with the epoll
     * loop, a half-closed request whose body was cut short is sometimes dropped only then) */
    const char *extra[] = {"--connection-timeout", "5", NULL};
    if (!ok(ts_server_start(&s, dir, extra) == 0, "server starts")) return done_testing();
    char sid[80], p_steps[160], p_stream[160], p_state[160];
    if (!ok(ts_open_session(&s, "tiny", sid, sizeof sid) == 0, "a session opens"))
        return done_testing();
    snprintf(p_steps, sizeof p_steps, "/v1/sessions/%s/steps", sid);
    snprintf(p_stream, sizeof p_stream, "/v1/sessions/%s/stream", sid);
    snprintf(p_state, sizeof p_state, "/v1/sessions/%s/state", sid);
    const char *routes[] = {p_steps, "/v1/models/tiny/infer", "/v1/models/tiny/classify",
                            "/v1/models/tiny/sessions", p_stream};
    const char *types[] = {"application/json", "application/x-protobuf"};
    uint64_t rng = 99;
    int bad = 0, sent = 0;
    unsigned char buf[512];
    for (int it = 0; it < 60; it++)
        for (size_t ri = 0; ri < sizeof routes / sizeof *routes; ri++)
            for (int ti = 0; ti < 2; ti++) {
                size_t len = tb_rand(&rng) % sizeof buf;
                for (size_t i = 0; i < len; i++) {
                    uint64_t x = tb_rand(&rng);
                    /* half the time mostly JSON-ish characters */
                    buf[i] = (it & 1)
                                 ? (unsigned char)x
                                 : (unsigned char)"{}[],:0123456789\"steps events-.e\n"[x % 34];
                }
                ts_resp r;
                int rc = ts_http(&s, "POST", routes[ri], types[ti], buf, len, NULL, &r);
                sent++;
                if (rc != 0 || r.status >= 500 || r.status < 200) {
                    if (bad++ < 5)
                        diag("%s %s (%zu bytes): %ld", routes[ri], types[ti], len, r.status);
                }
                ts_resp_free(&r);
            }
    diag("%d random bodies sent", sent);
    is_int(bad, 0, "random bodies: every answer is 2xx/4xx, none 5xx, no dropped connection");

    /* every truncation of a valid protobuf batch */
    tb_batch b;
    tb_random(&b, &rng, 5, 20, 0.5);
    size_t len;
    uint8_t *pb = tb_pb(&b, -1, &len);
    bad = 0;
    for (size_t cut = 0; cut < len; cut++) {
        ts_resp r;
        ts_http(&s, "POST", "/v1/models/tiny/infer", "application/x-protobuf", pb, cut, NULL, &r);
        if (r.status != 200 && r.status != 400) bad++;
        ts_resp_free(&r);
    }
    is_int(bad, 0, "every truncation of a protobuf batch: 200 or 400");
    free(pb);
    tb_free(&b);
    /* a snapshot cut short */
    ts_resp snap;
    ts_http(&s, "GET", p_state, NULL, NULL, 0, NULL, &snap);
    ok(snap.status == 200 && snap.len > 20, "a snapshot to cut (%zu bytes)", snap.len);
    bad = 0;
    for (size_t cut = 0; cut < snap.len; cut += 7) {
        ts_resp r;
        ts_http(&s, "PUT", "/v1/sessions/cut/state", "application/x-protobuf", snap.body, cut, NULL,
                &r);
        if (r.status != 400 && r.status != 201 && r.status != 200) bad++;
        ts_resp_free(&r);
    }
    is_int(bad, 0, "truncated snapshots: 400 (never a crash)");
    ts_resp_free(&snap);

    /* deep nesting */
    size_t dn = 200000;
    char *deep = malloc(dn + 1);
    memset(deep, '[', dn);
    deep[dn] = 0;
    ts_resp r;
    long long t0;
    ts_http(&s, "POST", p_steps, "application/json", deep, dn, NULL, &r);
    is_int(r.status, 400, "200000 nested brackets: 400");
    ts_resp_free(&r);
    free(deep);

    /* not HTTP at all, broken HTTP, a huge header: each raw request's answer */
    static const struct {
        const char *name, *bytes;
        int want; /* status, or 0: closed without a reply */
    } cases[] = {
        {"bytes that are not HTTP", "\x01\x02\x03garbage\r\n\r\n", 0},
        {"blank lines only", "\r\n\r\n\r\n", 0},
        {"HTTP/9.9", "GET / HTTP/9.9\r\nHost: x\r\n\r\n", 505},
        {"a request line without a version", "GET /healthz\r\n\r\n", 400},
        {"a header line without a colon", "GET /healthz HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
         400},
        {"Content-Length: abc",
         "POST /v1/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}", 400},
        {"Content-Length: -5",
         "POST /v1/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}", 400},
        {"two different Content-Lengths",
         "POST /v1/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
         "Content-Length: 3\r\n\r\n{}",
         400},
        {"a 23-digit Content-Length",
         "POST /v1/models/tiny/infer HTTP/1.1\r\nHost: x\r\n"
         "Content-Length: 99999999999999999999999\r\n\r\n{}",
         413},
        {"a body cut short (Content-Length 100, 4 bytes, then the client is done)",
         "POST /v1/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"st", 0},
        {"a chunk size that is not hex",
         "POST /v1/models/tiny/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
         "chunked\r\n\r\nzz\r\n",
         400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        raw_case(cases[i].name, cases[i].bytes, strlen(cases[i].bytes), cases[i].want);
    /* a NUL byte before a valid request (strlen cannot measure it) */
    static const char nul[] = "\0GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    raw_case("a NUL byte before the request line", nul, sizeof nul - 1, 400);
    char *hdr = malloc(70000);
    int hn = snprintf(hdr, 70000, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(hdr + hn, 'a', 60000);
    memcpy(hdr + hn + 60000, "\r\n\r\n", 4);
    raw_case("a 60 KB header (--max-header-bytes 16384)", hdr, (size_t)hn + 60004, 431);
    free(hdr);

    /* a stream upload whose client goes away while its lines are still running: the upload
     * never ended, so there is no summary to answer with; the lines that were queued run
     * whole (each 3000 steps), none half */
    char sid2[80], p_stream2[160], p_steps2[160];
    ok(ts_open_session(&s, "tiny", sid2, sizeof sid2) == 0, "a second session opens");
    snprintf(p_stream2, sizeof p_stream2, "/v1/sessions/%s/stream", sid2);
    snprintf(p_steps2, sizeof p_steps2, "/v1/sessions/%s/steps", sid2);
    size_t cap = 200 * 80 + 512, n = 0;
    char *up = malloc(cap);
    n += (size_t)snprintf(up + n, cap - n,
                          "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n",
                          p_stream2);
    for (int i = 0; i < 200; i++) {
        char line[64];
        int ln = snprintf(line, sizeof line, "{\"steps\":3000,\"events\":[[0,%d]]}\n", i % 20);
        n += (size_t)snprintf(up + n, cap - n, "%x\r\n%s\r\n", ln, line);
    }
    raw_case("a stream upload abandoned mid-way (no last chunk)", up, n, 0);
    free(up);
    /* the session's worker runs its jobs in order, so this batch starts where the abandoned
     * upload's lines left the session */
    ts_json(&s, "POST", p_steps2, "{\"steps\":2,\"events\":[[0,1]]}", &r);
    is_int(r.status, 200, "the abandoned upload's session still steps");
    json_int_field(r.body, "t0", &t0);
    ok(t0 >= 0 && t0 % 3000 == 0 && t0 <= 200 * 3000,
       "its lines ran whole: t0 = %lld is a multiple of 3000, at most 200 lines", t0);
    ts_resp_free(&r);

    ts_http(&s, "GET", "/healthz", NULL, NULL, 0, NULL, &r);
    is_int(r.status, 200, "still healthy");
    ts_resp_free(&r);
    ts_json(&s, "POST", p_steps, "{\"steps\":2,\"events\":[[0,1]]}", &r);
    is_int(r.status, 200, "and still stepping");
    ts_resp_free(&r);
    int status = -1;
    ts_server_stop(&s, SIGTERM, &status);
    is_int(status, 0, "SIGTERM: exit 0");
    return done_testing();
}
