/* GET /events: several subscribers see every step in order, from /steps and /stream alike;
 * `end` carries the reason (reset, restored, closed); a subscriber that does not read is
 * dropped with `end` (slow_consumer) instead of growing the server's buffer. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../support/harness.h"
#include "../tap.h"

static ts_server s;

static ts_sse *sub(const char *sid) {
    char path[160];
    snprintf(path, sizeof path, "/v1/sessions/%s/events", sid);
    return ts_sse_open(&s, path, NULL);
}

static long post(const char *method, const char *sid, const char *tail, const char *body) {
    char path[200];
    snprintf(path, sizeof path, "/v1/sessions/%s%s", sid, tail);
    ts_resp r;
    ts_json(&s, method, path, body, &r);
    long st = r.status;
    ts_resp_free(&r);
    return st;
}

int main(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    char dir[256];
    if (ts_tmpdir(dir, sizeof dir, "models") || ts_make_model(dir, "tiny", NULL)) return 1;
    const char *extra[] = {"--sse-buffer-bytes", "262144", "--keepalive", "1", NULL};
    if (!ok(ts_server_start(&s, dir, extra) == 0, "server starts (--sse-buffer-bytes 262144)"))
        return done_testing();
    char sid[80];
    ts_open_session(&s, "tiny", sid, sizeof sid);
    ts_sse *a = sub(sid), *b = sub(sid);
    ok(a && b, "two subscribers");
    for (int i = 1; i <= 5; i++) {
        char body[64];
        snprintf(body, sizeof body, "{\"seq\":%d,\"steps\":2}", i);
        post("POST", sid, "/steps", body);
    }
    char path[160];
    snprintf(path, sizeof path, "/v1/sessions/%s/stream", sid);
    const char *lines = "{\"seq\":6,\"steps\":1}\n{\"seq\":7,\"steps\":1}\n";
    ts_resp r;
    ts_http_chunked(&s, "POST", path, "application/x-ndjson", lines, strlen(lines), NULL, &r);
    ts_resp_free(&r);
    ok(a && ts_sse_wait(a, "event: step", 7, 10000) == 7,
       "subscriber 1: 7 step events (steps and stream)");
    ok(b && ts_sse_wait(b, "event: step", 7, 10000) == 7, "subscriber 2: 7 step events");
    char *t = a ? ts_sse_text(a) : strdup("");
    int order = 1, want = 1;
    for (const char *p = t; (p = strstr(p, "event: step\ndata: ")); p++) {
        const char *q = strstr(p, "\"seq\":");
        if (!q || atoi(q + 6) != want++) order = 0;
    }
    ok(order && want == 8, "in order");
    free(t);
    ok(a && ts_sse_wait(a, ": keep-alive", 1, 10000) >= 1, "keep-alive comments arrive");
    is_int(post("POST", sid, "/reset", NULL), 200, "reset");
    ok(a && ts_sse_wait(a, "\"reason\":\"reset\"", 1, 10000) == 1, "subscriber 1: end, reset");
    ok(b && ts_sse_wait(b, "\"reason\":\"reset\"", 1, 10000) == 1, "subscriber 2: end, reset");
    ts_sse_close(a);
    ts_sse_close(b);

    a = sub(sid);
    snprintf(path, sizeof path, "/v1/sessions/%s/state", sid);
    ts_resp snap;
    ts_http(&s, "GET", path, NULL, NULL, 0, NULL, &snap);
    ts_http(&s, "PUT", path, "application/x-protobuf", snap.body, snap.len, NULL, &r);
    is_int(r.status, 200, "PUT state over the session");
    ts_resp_free(&r);
    ts_resp_free(&snap);
    ok(a && ts_sse_wait(a, "\"reason\":\"restored\"", 1, 10000) == 1, "end, restored");
    ts_sse_close(a);
    a = sub(sid);
    is_int(post("DELETE", sid, "", NULL), 204, "delete");
    ok(a && ts_sse_wait(a, "\"reason\":\"closed\"", 1, 10000) == 1, "end, closed");
    ts_sse_close(a);

    /* a subscriber that never reads */
    ts_open_session(&s, "tiny", sid, sizeof sid);
    int fd = ts_dial(&s, 4096); /* a small receive buffer: it fills up early */
    ok(fd >= 0, "a raw subscriber connects");
    char req[256];
    int n =
        snprintf(req, sizeof req, "GET /v1/sessions/%s/events HTTP/1.1\r\nHost: x\r\n\r\n", sid);
    if (write(fd, req, (size_t)n) != n) diag("short write");
    ts_sse *reader = sub(sid); /* a reading subscriber alongside it */
    double dropped = 0;
    size_t sent = 0; /* answer bytes so far: each step event carries as many and more */
    int behind = 0;
    for (int i = 0; i < 400 && dropped < 1; i++) {
        char url[200];
        snprintf(url, sizeof url, "/v1/sessions/%s/steps", sid);
        ts_json(&s, "POST", url, "{\"steps\":1000,\"outputs\":[\"readout_all\"]}", &r);
        sent += r.status == 200 ? r.len : 0;
        ts_resp_free(&r);
        /* the reader keeps up (however busy the machine), the raw subscriber never reads */
        if (reader && ts_sse_wait_bytes(reader, sent, 20000) < sent) behind++;
        if (i % 20 == 19) {
            ts_http(&s, "GET", "/metrics", NULL, NULL, 0, NULL, &r);
            dropped = ts_metric(r.body, "spikeserve_sse_subscribers_dropped_total");
            ts_resp_free(&r);
        }
    }
    ok(dropped >= 1, "the subscriber that does not read is dropped");
    is_int(behind, 0, "the reading subscriber got each step event within 20 s");
    /* now read what it was sent: the buffered events, then end (slow_consumer) */
    size_t cap = 1 << 20, len = 0;
    char *all = malloc(cap);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    for (;;) {
        if (len + 65536 > cap) all = realloc(all, cap *= 2);
        ssize_t k = read(fd, all + len, 65536);
        if (k <= 0) break;
        len += (size_t)k;
        all[len] = 0;
        if (strstr(all + (len > 70000 ? len - 70000 : 0), "slow_consumer")) break;
    }
    all[len] = 0;
    ok(strstr(all, "\"reason\":\"slow_consumer\"") != NULL, "it got end (slow_consumer)");
    free(all);
    close(fd);
    ok(reader && !ts_sse_ended(reader) && ts_sse_count(reader, "slow_consumer") == 0,
       "the reading subscriber is still connected");
    ts_sse_close(reader);
    int status = -1;
    ts_server_stop(&s, SIGTERM, &status);
    is_int(status, 0, "SIGTERM: exit 0");
    return done_testing();
}
