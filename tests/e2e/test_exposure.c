/* Exposure and API keys (issue 5, items 6 and 7): the default bind address is loopback;
 * --metrics-auth puts /metrics behind the keys while /healthz and /readyz stay open; keys
 * never appear in the server's log, whatever is sent; a key matches only exactly (not a
 * prefix, not an extension, not another case); session ids are checked before any
 * --state-dir path is built, and the connection and header limits are in effect. */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"
#include "../tap.h"
#include "api.pb-c.h"
#include "auth.h"
#include "config.h"

#define KEY1 "k3y-alpha-0123456789abcdef"
#define KEY2 "k3y-beta-fedcba9876543210"

static ts_server s;

static long call(const char *method, const char *path, const char *hdr) {
    ts_resp r;
    ts_http_h(&s, method, path, NULL, NULL, 0, NULL, hdr, &r);
    long st = r.status;
    if (st == 401 && !strstr(r.ctype, "application/json")) st = -401;
    ts_resp_free(&r);
    return st;
}

static int log_has(const char *needle) {
    FILE *f = fopen(s.log, "r");
    if (!f) return -1;
    static char buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return strstr(buf, needle) != NULL;
}

int main(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    /* ---- defaults, from the configuration itself ---- */
    ss_config c;
    char err[256];
    char arg0[] = "spikeserve";
    char *argv[] = {arg0, NULL};
    ok(ss_config_parse(&c, 1, argv, err, sizeof err) == 0 && !strcmp(c.bind, "127.0.0.1"),
       "the default bind address is 127.0.0.1");
    ok(c.max_connections > 0 && c.max_header_bytes > 0 && c.connection_timeout > 0 &&
           c.max_subscribers > 0 && c.metrics_auth == 0,
       "connections, header bytes, silence and SSE subscribers are bounded by default");

    /* ---- exact key matching (the constant-time compare) ---- */
    ss_auth *a;
    ok(ss_auth_load(KEY1 "," KEY2, &a, err, sizeof err) == 0 && ss_auth_count(a) == 2,
       "two keys load");
    uint64_t o1 = 0, o2 = 0, ox;
    const char *wrong[] = {
        "Bearer k3y-alpha-0123456789abcde",  "Bearer k3y-alpha-0123456789abcdef0",
        "Bearer K3Y-ALPHA-0123456789ABCDEF", "Bearer ",
        "Bearer k3y-alpha-0123456789abcdeg", "Bearer \x01"};
    int bad = 0;
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++)
        if (ss_auth_check(a, wrong[i], &ox) == 0) bad++, printf("# accepted: %s\n", wrong[i]);
    is_int(bad, 0, "a prefix, an extension, another case or one changed byte of a key: refused");
    ok(ss_auth_check(a, "Bearer " KEY1, &o1) == 0 && ss_auth_check(a, "bearer  " KEY2, &o2) == 0 &&
           o1 && o2 && o1 != o2,
       "each key matches exactly and has its own owner id");
    ok(ss_auth_check(a, NULL, &ox) == -1 && ss_auth_check(a, "Basic " KEY1, &ox) == -1,
       "no header or another scheme: -1 (401)");
    ss_auth_free(a);

    /* ---- the server with --metrics-auth ---- */
    char dir[256];
    if (ts_tmpdir(dir, sizeof dir, "models") || ts_make_model(dir, "tiny", "--seed 2")) return 1;
    const char *extra[] = {"--api-keys", KEY1 "," KEY2, "--metrics-auth", "1", NULL};
    if (!ok(ts_server_start(&s, dir, extra) == 0, "server starts with --metrics-auth 1"))
        return done_testing();
    is_int(call("GET", "/healthz", NULL), 200, "/healthz needs no key");
    is_int(call("GET", "/readyz", NULL), 200, "/readyz needs no key");
    is_int(call("GET", "/metrics", NULL), 401, "/metrics without a key: 401 with a JSON error");
    is_int(call("GET", "/metrics", "Authorization: Bearer wrong"), 401, "/metrics, wrong key: 401");
    is_int(call("GET", "/metrics", "Authorization: Bearer " KEY2), 200, "/metrics with a key: 200");
    /* keys sent in every place a log line could pick them up */
    call("GET", "/v1/models", "Authorization: Bearer " KEY1);
    call("GET", "/v1/models", "Authorization: Bearer " KEY1 "x");
    call("GET", "/v1/sessions/" KEY1, "Authorization: Bearer " KEY1);
    call("GET", "/v1/models", "Authorization: Bearer " KEY2);
    ts_resp r;
    ts_http_h(&s, "POST", "/v1/models/tiny/sessions", "application/json", "{}", 2, NULL,
              "Authorization: Bearer " KEY2, &r);
    is_int(r.status, 201, "a session opens with a key");
    ts_resp_free(&r);
    int status;
    ts_server_stop(&s, SIGTERM, &status);
    is_int(status, 0, "SIGTERM: exit 0");
    /* the path itself is logged (and 404s); the header never is */
    FILE *f = fopen(s.log, "r");
    static char text[1 << 22];
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f) fclose(f);
    text[n] = 0;
    int in_header = 0;
    for (char *p = text; (p = strstr(p, KEY1)); p++)
        if ((p < text + 13 || strncmp(p - 13, "/v1/sessions/", 13) != 0) &&
            (p < text + 8 || strncmp(p - 8, "session=", 8) != 0))
            in_header = 1;
    ok(n > 0 && !in_header && log_has(KEY2) == 0,
       "no API key from an Authorization header appears in the server's log");

    /* ---- without --metrics-auth, /metrics is open ---- */
    const char *extra2[] = {"--api-keys", KEY1, NULL};
    if (!ok(ts_server_start(&s, dir, extra2) == 0, "server starts without --metrics-auth"))
        return done_testing();
    is_int(call("GET", "/metrics", NULL), 200, "/metrics is open by default");
    is_int(call("GET", "/v1/models", NULL), 401, "/v1 routes still need a key");
    ts_server_stop(&s, SIGTERM, &status);

    /* ---- a state file whose name is not a valid id is not restored ---- */
    char state[256], sid[80], path[4096];
    if (ts_tmpdir(state, sizeof state, "state")) return 1;
    const char *extra3[] = {"--state-dir", state, NULL};
    if (!ok(ts_server_start(&s, dir, extra3) == 0, "server starts with --state-dir"))
        return done_testing();
    ts_open_session(&s, "tiny", sid, sizeof sid);
    snprintf(path, sizeof path, "/v1/sessions/%s/state", sid);
    ts_http(&s, "GET", path, NULL, NULL, 0, "application/x-protobuf", &r);
    Spikeserve__SessionSnapshot *m =
        r.status == 200 ? spikeserve__session_snapshot__unpack(NULL, r.len, (uint8_t *)r.body)
                        : NULL;
    ts_resp_free(&r);
    ts_server_stop(&s, SIGTERM, &status);
    int written = 0;
    if (m) { /* without an id inside, the file name would be the id */
        char empty[] = "", *orig = m->session_id;
        m->session_id = empty;
        size_t plen = spikeserve__session_snapshot__get_packed_size(m);
        uint8_t *buf = malloc(plen);
        spikeserve__session_snapshot__pack(m, buf);
        const char *names[] = {"bad id.session", "x%2e.session", "ok_id.session"};
        for (int i = 0; i < 3; i++) {
            snprintf(path, sizeof path, "%s/%s", state, names[i]);
            FILE *out = fopen(path, "wb");
            if (out && fwrite(buf, 1, plen, out) == plen) written++;
            if (out) fclose(out);
        }
        free(buf);
        m->session_id = orig;
        spikeserve__session_snapshot__free_unpacked(m, NULL);
    }
    is_int(written, 3, "three id-less session files written (two oddly named)");
    if (!ok(ts_server_start(&s, dir, extra3) == 0, "server restarts")) return done_testing();
    is_int(call("GET", "/v1/sessions/ok_id", NULL), 200, "the well-named file is restored");
    ok(log_has("\"bad id\" not restored") == 1 && log_has("\"x%2e\" not restored") == 1,
       "the oddly named ones are refused, by name");
    ts_server_stop(&s, SIGTERM, &status);
    return done_testing();
}
