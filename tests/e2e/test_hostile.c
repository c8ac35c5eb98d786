/* Hostile clients against the real server (issue 5, items 3 and 7). Every bad request gets
 * its precise 4xx with a JSON error body; slow clients that trickle headers or bodies, and
 * a crowd of them, do not stop other clients from being served; silent connections are
 * closed after --connection-timeout; --max-connections-per-ip holds; no request path
 * reaches the file system outside --state-dir; the server's memory stays bounded. */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../support/harness.h"
#include "../tap.h"

static ts_server s;
static char sid[80];

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int send_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len) {
        ssize_t k = send(fd, p, len, MSG_NOSIGNAL);
        if (k <= 0) return -1;
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

/* Read until the server closes or timeout_ms passes; returns bytes read into buf
 * (NUL-terminated), -1 when nothing came before the timeout and the socket is still open.
 * *closed tells whether the server closed the connection. */
static long slurp(int fd, char *buf, size_t cap, int timeout_ms, int *closed) {
    size_t n = 0;
    *closed = 0;
    int waited = 0;
    while (n + 1 < cap) {
        struct pollfd p = {fd, POLLIN, 0};
        int rc = poll(&p, 1, 100);
        if (rc == 0) {
            waited += 100;
            if (waited >= timeout_ms) break;
            /* a whole response with Content-Length: stop there */
            buf[n] = 0;
            char *cl = strcasestr(buf, "Content-Length:"), *end = strstr(buf, "\r\n\r\n");
            if (cl && end && (size_t)(end + 4 - buf) + (size_t)atol(cl + 15) <= n) break;
            continue;
        }
        ssize_t k = recv(fd, buf + n, cap - 1 - n, 0);
        if (k <= 0) {
            *closed = 1;
            break;
        }
        n += (size_t)k;
    }
    buf[n] = 0;
    return n ? (long)n : (*closed ? 0 : -1);
}

static long raw_status(const char *resp) {
    if (strncmp(resp, "HTTP/1.", 7) != 0) return 0;
    return atol(resp + 9);
}

/* One raw exchange: send req, read the answer; its status (0: none, connection closed). */
static long raw(const char *req, size_t len, char *out, size_t cap) {
    int fd = ts_dial(&s, 0);
    if (fd < 0) return -1;
    send_all(fd, req, len);
    int closed;
    slurp(fd, out, cap, 3000, &closed);
    close(fd);
    return raw_status(out);
}

/* A JSON error body {"error":{"code":STR,"message":STR}}. */
static int json_error(const ts_resp *r) {
    if (!strstr(r->ctype, "application/json")) return 0;
    json_t *j = json_loadb(r->body ? r->body : "", r->len, 0, NULL);
    json_t *e = json_object_get(j, "error");
    int okk =
        json_is_string(json_object_get(e, "code")) && json_is_string(json_object_get(e, "message"));
    json_decref(j);
    return okk;
}

static int healthy(void) {
    ts_resp r;
    int okk = ts_http(&s, "GET", "/healthz", NULL, NULL, 0, NULL, &r) == 0 && r.status == 200;
    ts_resp_free(&r);
    return okk;
}

typedef struct {
    const char *name, *body;
    long want;
} body_case;

static int n_cases, n_failed;

static void check_body(const char *path, const char *ctype, const void *body, size_t len, long want,
                       const char *name) {
    ts_resp r;
    ts_http(&s, "POST", path, ctype, body, len, NULL, &r);
    n_cases++;
    int good = r.status == want && json_error(&r);
    if (!good) {
        n_failed++;
        printf("# %s: status %ld (want %ld), body %.200s\n", name, r.status, want,
               r.body ? r.body : "");
    }
    ts_resp_free(&r);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    char dir[256], state[256], parent_probe[600];
    if (ts_tmpdir(dir, sizeof dir, "models") || ts_make_model(dir, "tiny", "--seed 3") ||
        ts_tmpdir(state, sizeof state, "state"))
        return 1;
    const char *extra[] = {"--state-dir",
                           state,
                           "--max-body-bytes",
                           "65536",
                           "--max-steps",
                           "1000",
                           "--connection-timeout",
                           "2",
                           "--max-connections-per-ip",
                           "40",
                           "--access-log",
                           "0",
                           NULL};
    if (!ok(ts_server_start(&s, dir, extra) == 0, "server starts")) return done_testing();
    if (ts_open_session(&s, "tiny", sid, sizeof sid) != 0) return 1;
    long rss0 = ts_rss_kb(s.pid);
    char steps[200];
    snprintf(steps, sizeof steps, "/v1/sessions/%s/steps", sid);

    /* ---- bodies: each a precise 4xx with a JSON error ---- */
    static char deep[300000];
    for (int i = 0; i < 30000; i++)
        deep[i] = '[';
    snprintf(deep + 30000, 100, "]");
    const body_case cases[] = {
        {"truncated JSON", "{\"steps\": 3, \"events\": [[0, 1", 400},
        {"empty body", "", 400},
        {"not an object", "[1, 2, 3]", 400},
        {"steps a string", "{\"steps\": \"3\"}", 400},
        {"steps a float", "{\"steps\": 2.5}", 400},
        {"steps negative", "{\"steps\": -1}", 400},
        {"steps zero", "{\"steps\": 0}", 400},
        {"steps over --max-steps", "{\"steps\": 5000}", 413},
        {"steps past 2^64", "{\"steps\": 184467440737095516160}", 400},
        {"steps 1e400", "{\"steps\": 1e400}", 400},
        {"events an object", "{\"steps\": 3, \"events\": {\"a\": 1}}", 400},
        {"event input a string", "{\"steps\": 3, \"events\": [[0, \"x\", 1]]}", 400},
        {"event of four numbers", "{\"steps\": 3, \"events\": [[0, 1, 1, 1]]}", 400},
        {"event input out of range", "{\"steps\": 3, \"events\": [[0, 99999, 1]]}", 400},
        {"event input negative", "{\"steps\": 3, \"events\": [[0, -1, 1]]}", 400},
        {"event step past steps", "{\"steps\": 3, \"events\": [[3, 0, 1]]}", 400},
        {"event value 1e39 (float overflow)", "{\"steps\": 3, \"events\": [[0, 1, 1e39]]}", 400},
        {"event value NaN", "{\"steps\": 3, \"events\": [[0, 1, NaN]]}", 400},
        {"event value Infinity", "{\"steps\": 3, \"events\": [[0, 1, Infinity]]}", 400},
        {"duplicated key", "{\"steps\": 1, \"steps\": 2}", 400},
        {"unknown output", "{\"steps\": 1, \"outputs\": [\"passwd\"]}", 400},
        {"invalid UTF-8", "{\"steps\": 1, \"outputs\": [\"\xff\xfe\"]}", 400},
        {"overlong UTF-8 NUL", "{\"steps\": 1, \"outputs\": [\"\xc0\x80\"]}", 400},
        {"escaped NUL in a string", "{\"steps\": 1, \"outputs\": [\"spikes\\u0000\"]}", 400},
        {"seq negative", "{\"seq\": -5, \"steps\": 1}", 400},
        {"seq a string", "{\"seq\": \"1\", \"steps\": 1}", 400},
        {"30000 nested arrays", deep, 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_body(steps, "application/json", cases[i].body, strlen(cases[i].body), cases[i].want,
                   cases[i].name);
    static char big[100000];
    memset(big, ' ', sizeof big);
    memcpy(big, "{\"steps\": 1}", 12);
    check_body(steps, "application/json", big, sizeof big, 413, "100 KB body over 64 KB");
    check_body(steps, "text/html", "{\"steps\": 1}", 12, 415, "Content-Type text/html");
    check_body(steps, "application/x-protobuf", "\xff\xff\xff\xff", 4, 400, "protobuf garbage");
    check_body("/v1/models/tiny/sessions", "application/json", "{\"idle_timeout_s\": \"x\"}", 23,
               400, "open: idle_timeout_s a string");
    check_body("/v1/models/tiny/sessions", "application/json", "{\"idle_timeout_s\": 1e20}", 24,
               400, "open: idle_timeout_s 1e20");
    check_body("/v1/models/tiny/classify", "application/json", "{\"values\": [0.5]}", 17, 400,
               "classify: wrong number of values");
    check_body("/v1/models/nosuch/sessions", "application/json", "{}", 2, 404,
               "open on an unknown model");
    is_int(n_failed, 0,
           "every malformed, mistyped, out-of-range or oversized body: its 4xx "
           "with a JSON error");
    printf("# %d body cases\n", n_cases);

    /* ---- odd paths and methods ---- */
    struct {
        const char *method, *path;
        long want;
    } paths[] = {
        {"GET", "/v1/sessions/../../../etc/passwd", 404},
        {"GET", "/v1/sessions/..%2f..%2fetc%2fpasswd/state", 404},
        {"PUT", "/v1/sessions/..%2Fescape/state", 404}, /* MHD decodes %2F: 3 segments */
        {"PUT", "/v1/sessions/a.b/state", 400},
        {"GET", "/v1/sessions/abc%00def", 404},
        {"GET", "/v1/models/..%2f..%2fetc", 404},
        {"GET", "/v1//sessions", 404},
        {"GET", "/v1/sessions/", 404},
        {"GET", "/nothing-here", 404}, /* "/" is the raster page (ui.c) */
        {"POST", "/", 405},
        {"GET", "/ui/fmnist/1/2", 404},
        {"GET", "/ui/fmnist/-1", 400},
        {"BREW", "/healthz", 405},
        {"DELETE", "/v1/models", 405},
        {"POST", "/healthz", 405},
        {"PATCH", "/v1/sessions/x", 405},
    };
    int bad_paths = 0;
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        ts_resp r;
        const char *body = !strcmp(paths[i].method, "PUT") ? "x" : NULL;
        ts_http(&s, paths[i].method, paths[i].path, body ? "application/x-protobuf" : NULL, body,
                body ? 1 : 0, NULL, &r);
        if (r.status != paths[i].want || !json_error(&r)) {
            bad_paths++;
            printf("# %s %s: %ld (want %ld) %.200s\n", paths[i].method, paths[i].path, r.status,
                   paths[i].want, r.body ? r.body : "");
        }
        ts_resp_free(&r);
    }
    static char longpath[9000];
    snprintf(longpath, sizeof longpath, "/v1/sessions/");
    memset(longpath + 13, 'a', 8000);
    ts_resp lr;
    ts_http(&s, "GET", longpath, NULL, NULL, 0, NULL, &lr);
    if (lr.status != 404 || !json_error(&lr)) {
        bad_paths++;
        printf("# 8 KB path: %ld\n", lr.status);
    }
    ts_resp_free(&lr);
    is_int(bad_paths, 0, "odd paths (.., %2f, %00, //, 8 KB) and methods: 400/404/405 with JSON");
    /* nothing was created next to the state directory, and in it only session files */
    snprintf(parent_probe, sizeof parent_probe, "%s/../escape.session", state);
    struct stat stt;
    ok(stat(parent_probe, &stt) != 0, "no file written outside --state-dir");

    /* ---- HTTP-level garbage: the connection ends with a 4xx or is closed ---- */
    char resp[65536];
    int bad_raw = 0;
    static char hugeh[70000];
    int k = snprintf(hugeh, sizeof hugeh, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(hugeh + k, 'h', 60000);
    memcpy(hugeh + k + 60000, "\r\n\r\n", 5);
    long st = raw(hugeh, strlen(hugeh), resp, sizeof resp);
    if (st != 0 && st != 413 && st != 431) bad_raw++, printf("# 60 KB header: %ld\n", st);
    char chunk[512];
    snprintf(chunk, sizeof chunk,
             "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Transfer-Encoding: chunked\r\n\r\nZZZ\r\n{\"steps\":1}\r\n0\r\n\r\n",
             steps);
    st = raw(chunk, strlen(chunk), resp, sizeof resp);
    if (st != 0 && st != 400) bad_raw++, printf("# bad chunk size: %ld\n", st);
    snprintf(chunk, sizeof chunk,
             "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n{\"steps\":1}\r\n",
             steps);
    st = raw(chunk, strlen(chunk), resp, sizeof resp);
    if (st != 0 && st != 400 && st != 413) bad_raw++, printf("# huge chunk size: %ld\n", st);
    snprintf(chunk, sizeof chunk,
             "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
             steps);
    st = raw(chunk, strlen(chunk), resp, sizeof resp);
    if (st >= 500 || st == 200) bad_raw++, printf("# Content-Length and chunked: %ld\n", st);
    const char *garbage = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS hello\r\n\r\n";
    st = raw(garbage, strlen(garbage), resp, sizeof resp);
    if (st != 0 && st != 400) bad_raw++, printf("# TLS hello: %ld\n", st);
    is_int(bad_raw, 0, "huge header, broken chunked encoding, TLS bytes: 4xx or closed, no 5xx");
    ok(healthy(), "still healthy after the garbage");

    /* ---- slow clients: 30 connections trickle headers and bodies; others are served ---- */
    enum { NSLOW = 30 };
    int slow[NSLOW];
    char slow_req[NSLOW][512];
    for (int i = 0; i < NSLOW; i++) {
        slow[i] = ts_dial(&s, 0);
        if (i % 2)
            snprintf(slow_req[i], sizeof slow_req[i],
                     "GET /v1/sessions/%s HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n\r\n", sid);
        else
            snprintf(slow_req[i], sizeof slow_req[i],
                     "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: 12\r\n\r\n{\"steps\": 1}",
                     steps);
    }
    /* GETs trickle their request line and headers, POSTs send their headers at once and
     * trickle the body: one byte per connection every 100 ms */
    size_t off[NSLOW];
    for (int i = 0; i < NSLOW; i++) {
        off[i] = 0;
        if (i % 2 == 0 && slow[i] >= 0) {
            off[i] = strlen(slow_req[i]) - 12;
            send_all(slow[i], slow_req[i], off[i]);
        }
    }
    int served = 0, tried = 0;
    for (int round = 0; round < 11; round++) {
        for (int i = 0; i < NSLOW; i++)
            if (slow[i] >= 0 && off[i] < strlen(slow_req[i]))
                send_all(slow[i], slow_req[i] + off[i]++, 1);
        ts_resp r;
        tried++;
        if (ts_http(&s, "GET", "/v1/models", NULL, NULL, 0, NULL, &r) == 0 && r.status == 200)
            served++;
        ts_resp_free(&r);
        sleep_ms(100);
    }
    is_int(served, tried,
           "while 30 clients trickle headers or bodies, one byte per 100 ms, others are served");
    /* the rest of each slow request arrives at once: every one is answered */
    int answered = 0;
    for (int i = 0; i < NSLOW; i++)
        if (slow[i] >= 0 && off[i] < strlen(slow_req[i]))
            send_all(slow[i], slow_req[i] + off[i], strlen(slow_req[i]) - off[i]);
    for (int i = 0; i < NSLOW; i++) {
        if (slow[i] < 0) continue;
        int closed;
        slurp(slow[i], resp, sizeof resp, 3000, &closed);
        if (raw_status(resp) == 200) answered++;
        close(slow[i]);
    }
    is_int(answered, NSLOW, "every trickled request is answered 200 once complete");

    /* ---- a connection that goes silent is closed after --connection-timeout ---- */
    int fd = ts_dial(&s, 0);
    send_all(fd, "GET /healthz HTTP/1.1\r\nHo", 25);
    int closed = 0;
    long got = slurp(fd, resp, sizeof resp, 15000, &closed);
    ok(closed && got <= 0, "a half-sent request is dropped once silent for --connection-timeout");
    close(fd);

    /* ---- --max-connections-per-ip 40 ---- */
    int conns[45], refused = 0;
    for (int i = 0; i < 45; i++)
        conns[i] = ts_dial(&s, 0);
    sleep_ms(300);
    for (int i = 0; i < 45; i++) {
        if (conns[i] < 0) {
            refused++;
            continue;
        }
        send_all(conns[i], "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 35);
    }
    int ok200 = 0;
    for (int i = 0; i < 45; i++) {
        if (conns[i] < 0) continue;
        slurp(conns[i], resp, sizeof resp, 2000, &closed);
        if (raw_status(resp) == 200)
            ok200++;
        else
            refused++;
        close(conns[i]);
    }
    ok(ok200 <= 40 && ok200 >= 30 && refused >= 5,
       "45 connections from one address with --max-connections-per-ip 40: the extra ones are "
       "refused");
    printf("# per-ip: %d answered, %d refused\n", ok200, refused);
    sleep_ms(200);
    ok(healthy(), "served again once they are closed");

    /* ---- memory ---- */
    long rss1 = ts_rss_kb(s.pid);
    printf("# server RSS %ld kB before, %ld kB after\n", rss0, rss1);
    ok(rss1 > 0 && rss1 < rss0 + 64 * 1024, "RSS grew by less than 64 MB through all of it");
    ts_resp r;
    ts_json(&s, "POST", steps, "{\"steps\": 2}", &r);
    is_int(r.status, 200, "and the session still steps");
    ts_resp_free(&r);
    int status;
    ts_server_stop(&s, SIGTERM, &status);
    is_int(status, 0, "SIGTERM: exit 0");
    DIR *d = opendir(state);
    int others = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.' && !strstr(e->d_name, ".session")) {
            others++;
            printf("# unexpected file in --state-dir: %s\n", e->d_name);
        }
    if (d) closedir(d);
    is_int(others, 0, "--state-dir holds session files only");
    return done_testing();
}
