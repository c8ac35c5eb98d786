/* Malformed bytes never crash the server or reach a 5xx: random and truncated bodies on
 * every body route in JSON and protobuf, deep nesting, garbage that is not HTTP at all.
 * Afterwards it still answers, and a SIGTERM still drains to exit 0. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../support/batchgen.h"
#include "../support/harness.h"
#include "../tap.h"

static ts_server s;

static void raw(const void *buf, size_t len) {
    int fd = ts_dial(&s, 0);
    if (fd >= 0) {
        struct timeval tv = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (write(fd, buf, len) < 0) {
        }
        shutdown(fd, SHUT_WR);
        char tmp[4096];
        while (read(fd, tmp, sizeof tmp) > 0) {
        }
    }
    if (fd >= 0) close(fd);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    char dir[256];
    if (ts_tmpdir(dir, sizeof dir, "models") || ts_make_model(dir, "tiny", NULL)) return 1;
    if (!ok(ts_server_start(&s, dir, NULL) == 0, "server starts")) return done_testing();
    char sid[80], p_steps[160], p_stream[160], p_state[160];
    ts_open_session(&s, "tiny", sid, sizeof sid);
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
    ts_http(&s, "POST", p_steps, "application/json", deep, dn, NULL, &r);
    is_int(r.status, 400, "200000 nested brackets: 400");
    ts_resp_free(&r);
    free(deep);

    /* not HTTP at all, broken HTTP, a huge header */
    raw("\x00\x01\x02garbage\r\n\r\n", 14);
    const char *texts[] = {
        "GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        "POST /v1/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"st",
        "POST /v1/models/tiny/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
        "chunked\r\n\r\nzz\r\n"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        raw(texts[i], strlen(texts[i]));
    char *hdr = malloc(70000);
    int hn = snprintf(hdr, 70000, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(hdr + hn, 'a', 60000);
    memcpy(hdr + hn + 60000, "\r\n\r\n", 4);
    raw(hdr, (size_t)hn + 60004);
    free(hdr);
    ok(1, "sent non-HTTP bytes, a bad version, a cut body, a bad chunk, a 60 KB header");

    /* a stream upload whose client goes away while its lines are still running */
    size_t cap = 200 * 80 + 512, n = 0;
    char *up = malloc(cap);
    n += (size_t)snprintf(up + n, cap - n,
                          "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n",
                          p_stream);
    for (int i = 0; i < 200; i++) {
        char line[64];
        int ln = snprintf(line, sizeof line, "{\"steps\":3000,\"events\":[[0,%d]]}\n", i % 20);
        n += (size_t)snprintf(up + n, cap - n, "%x\r\n%s\r\n", ln, line);
    }
    raw(up, n); /* no terminating chunk: the upload is cut off */
    free(up);
    ok(1, "a stream upload abandoned mid-way");

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
