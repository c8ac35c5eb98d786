/* Optional API keys (SPEC section 4): with --api-keys every /v1 route needs a Bearer key
 * (401 otherwise); a session belongs to the key that opened it, other keys get 404 (403
 * when they try to overwrite it with PUT state); ownership survives a restart; health and
 * metrics stay open. */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"
#include "../tap.h"
#include "api.pb-c.h"

#define A "Authorization: Bearer alpha-key-1"
#define B "Authorization: Bearer beta-key-2"
static ts_server s;

static long call(const char *method, const char *path, const char *body, const char *auth,
                 ts_resp *keep) {
    ts_resp r;
    ts_http_h(&s, method, path, body ? "application/json" : NULL, body, body ? strlen(body) : 0,
              NULL, auth, &r);
    long st = r.status;
    if (keep)
        *keep = r;
    else
        ts_resp_free(&r);
    return st;
}

int main(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    char dir[256], state[256], keys[300];
    if (ts_tmpdir(dir, sizeof dir, "models") || ts_make_model(dir, "tiny", NULL) ||
        ts_tmpdir(state, sizeof state, "state"))
        return 1;
    snprintf(keys, sizeof keys, "%s/keys.txt", state);
    FILE *f = fopen(keys, "w");
    fputs("# spikeserve keys\nalpha-key-1\n\n  beta-key-2  \n", f);
    fclose(f);
    char at[310];
    snprintf(at, sizeof at, "@%s", keys);
    const char *extra[] = {"--api-keys", at, "--state-dir", state, NULL};
    if (!ok(ts_server_start(&s, dir, extra) == 0, "server starts with --api-keys @FILE"))
        return done_testing();
    ts_resp r;
    is_int(call("GET", "/healthz", NULL, NULL, NULL), 200, "/healthz needs no key");
    is_int(call("GET", "/metrics", NULL, NULL, NULL), 200, "/metrics needs no key");
    char www[80] = "";
    call("GET", "/v1/models", NULL, NULL, &r);
    ts_header(&r, "WWW-Authenticate", www, sizeof www);
    ok(r.status == 401 && strstr(www, "Bearer") && strstr(r.body, "unauthenticated"),
       "no key: 401 with WWW-Authenticate: Bearer");
    ts_resp_free(&r);
    is_int(call("GET", "/v1/models", NULL, "Authorization: Bearer nope", NULL), 401,
           "unknown key: 401");
    is_int(call("GET", "/v1/models", NULL, "Authorization: Basic YWxwaGE=", NULL), 401,
           "not Bearer: 401");
    is_int(call("GET", "/v1/models", NULL, A, NULL), 200, "key alpha: 200");
    is_int(call("GET", "/v1/models", NULL, B, NULL), 200, "key beta: 200");

    call("POST", "/v1/models/tiny/sessions", NULL, A, &r);
    const char *p = strstr(r.body, "\"session_id\":\"");
    char sid[80] = "";
    if (p) sscanf(p + 14, "%64[^\"]", sid);
    is_int(r.status, 201, "alpha opens a session");
    ts_resp_free(&r);
    char path[200];
    snprintf(path, sizeof path, "/v1/sessions/%s", sid);
    is_int(call("GET", path, NULL, A, NULL), 200, "alpha sees it");
    is_int(call("GET", path, NULL, B, NULL), 404, "beta gets 404");
    is_int(call("GET", path, NULL, NULL, NULL), 401, "no key: 401");
    snprintf(path, sizeof path, "/v1/sessions/%s/steps", sid);
    is_int(call("POST", path, "{\"steps\":2}", B, NULL), 404, "beta cannot step it");
    is_int(call("POST", path, "{\"steps\":2}", A, NULL), 200, "alpha steps it");
    snprintf(path, sizeof path, "/v1/sessions/%s/events", sid);
    is_int(call("GET", path, NULL, B, NULL), 404, "beta cannot subscribe");
    snprintf(path, sizeof path, "/v1/sessions/%s/reset", sid);
    is_int(call("POST", path, NULL, B, NULL), 404, "beta cannot reset");
    snprintf(path, sizeof path, "/v1/sessions/%s/stream", sid);
    ts_http_h(&s, "POST", path, "application/x-ndjson", "{\"steps\":1}\n", 12, NULL, B, &r);
    is_int(r.status, 404, "beta cannot stream");
    ts_resp_free(&r);
    snprintf(path, sizeof path, "/v1/sessions/%s/state", sid);
    ts_resp snap;
    ts_http_h(&s, "GET", path, NULL, NULL, 0, NULL, A, &snap);
    Spikeserve__SessionSnapshot *m =
        spikeserve__session_snapshot__unpack(NULL, snap.len, (uint8_t *)snap.body);
    ok(snap.status == 200 && m && !m->has_owner, "alpha's snapshot does not carry the owner");
    if (m) spikeserve__session_snapshot__free_unpacked(m, NULL);
    ts_http_h(&s, "PUT", path, "application/x-protobuf", snap.body, snap.len, NULL, B, &r);
    is_int(r.status, 403, "beta cannot PUT state over alpha's session: 403");
    ts_resp_free(&r);
    ts_http_h(&s, "PUT", "/v1/sessions/beta-copy/state", "application/x-protobuf", snap.body,
              snap.len, NULL, B, &r);
    is_int(r.status, 201, "beta may restore the snapshot into its own id");
    ts_resp_free(&r);
    ts_resp_free(&snap);
    is_int(call("GET", "/v1/sessions/beta-copy", NULL, A, NULL), 404, "which alpha cannot see");

    int status = -1;
    ts_server_stop(&s, SIGTERM, &status);
    is_int(status, 0, "SIGTERM: exit 0");
    ok(ts_server_start(&s, dir, extra) == 0, "restart");
    snprintf(path, sizeof path, "/v1/sessions/%s", sid);
    is_int(call("GET", path, NULL, A, NULL), 200, "after the restart alpha still sees its session");
    is_int(call("GET", path, NULL, B, NULL), 404, "and beta still does not");
    is_int(call("GET", "/v1/sessions/beta-copy", NULL, B, NULL), 200, "beta's copy is beta's");
    snprintf(path, sizeof path, "/v1/sessions/%s", sid);
    is_int(call("DELETE", path, NULL, B, NULL), 404, "beta cannot delete alpha's session");
    is_int(call("DELETE", path, NULL, A, NULL), 204, "alpha can");
    ts_server_stop(&s, SIGTERM, &status);
    is_int(status, 0, "SIGTERM: exit 0");

    const char *bad[] = {"--api-keys", "@/nonexistent/keys", NULL};
    ok(ts_server_start(&s, dir, bad) != 0, "an unreadable key file stops the start");
    return done_testing();
}
