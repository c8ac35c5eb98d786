/* --model-control explicit (issue 16): Triton's repository routes load, reload and unload
 * versions without a restart. A file added on disk is served only after POST .../load; a
 * bad file is refused with the loader's message (file and field) while the old versions
 * keep serving, and the metrics count it; unloading a version that sessions are pinned to
 * is refused (409) unless asked to drain, which closes them and ends their event streams
 * with a reason; the index shows what is unloaded. */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../support/harness.h"
#include "../tap.h"

static long post(const ts_server *s, const char *path, const char *body, char *out,
                 size_t out_len) {
    ts_resp r;
    if (ts_json(s, "POST", path, body, &r) != 0) return -1;
    long st = r.status;
    if (out) snprintf(out, out_len, "%s", r.body ? r.body : "");
    ts_resp_free(&r);
    return st;
}

static long get(const ts_server *s, const char *path, char *out, size_t out_len) {
    ts_resp r;
    if (ts_json(s, "GET", path, NULL, &r) != 0) return -1;
    long st = r.status;
    if (out) snprintf(out, out_len, "%s", r.body ? r.body : "");
    ts_resp_free(&r);
    return st;
}

static double metric(const ts_server *s, const char *name) {
    ts_resp r;
    if (ts_http(s, "GET", "/metrics", NULL, NULL, 0, NULL, &r) != 0) return -1;
    double v = ts_metric(r.body, name);
    ts_resp_free(&r);
    return v;
}

/* Open a session on tiny with body: the id (0) or -1. */
static int open_tiny(const ts_server *s, const char *body, char *id) {
    char text[1024];
    if (post(s, "/v1/models/tiny/sessions", body, text, sizeof text) != 201) return -1;
    const char *p = strstr(text, "\"session_id\":\"");
    if (!p) return -1;
    p += 14;
    size_t n = strcspn(p, "\"");
    memcpy(id, p, n);
    id[n] = 0;
    return 0;
}

/* A truncated copy of from at to (the first half of its bytes). */
static int truncated_copy(const char *from, const char *to) {
    FILE *f = fopen(from, "rb");
    if (!f) return -1;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    FILE *g = fopen(to, "wb");
    if (!g) return -1;
    int rc = fwrite(buf, 1, n / 2, g) == n / 2 ? 0 : -1;
    return fclose(g) == 0 ? rc : -1;
}

int main(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    char dir[256], sub[300], path[400], text[2048];
    if (ts_tmpdir(dir, sizeof dir, "control")) return 1;
    snprintf(sub, sizeof sub, "%s/tiny", dir);
    mkdir(sub, 0700);
    if (ts_make_model(dir, "tiny/1", "--name tiny --seed 21")) return 1;
    ts_server s;
    const char *extra[] = {"--model-control", "explicit", NULL};
    if (!ok(ts_server_start(&s, dir, extra) == 0, "server starts (--model-control explicit)"))
        return done_testing();

    /* a new version on disk is not served until it is loaded */
    if (ts_make_model(dir, "tiny/2", "--name tiny --seed 22")) return 1;
    ok(get(&s, "/v1/models/tiny", text, sizeof text) == 200 && strstr(text, "\"version\":1"),
       "tiny/2.spk written: the latest is still 1 (nothing polls)");
    ok(post(&s, "/v2/repository/models/tiny/load", NULL, text, sizeof text) == 200 &&
           strstr(text, "\"versions\":[\"1\",\"2\"]"),
       "POST /v2/repository/models/tiny/load: versions 1 and 2 (%s)", text);
    ok(get(&s, "/v1/models/tiny", text, sizeof text) == 200 && strstr(text, "\"version\":2"),
       "the latest is 2 now");
    ok(post(&s, "/v2/repository/models/nosuch/load", NULL, text, sizeof text) == 404 &&
           strstr(text, "nosuch"),
       "load of a model without files: 404 naming it");

    /* a bad file: refused with the loader's message, the loaded versions keep serving */
    char from[400], bad[400];
    snprintf(from, sizeof from, "%s/tiny/2.spk", dir);
    snprintf(bad, sizeof bad, "%s/tiny/3.spk", dir);
    ok(truncated_copy(from, bad) == 0, "a truncated tiny/3.spk");
    long st = post(&s, "/v2/repository/models/tiny/load", NULL, text, sizeof text);
    ok(st == 400 && strstr(text, "tiny/3.spk"), "load: 400 naming the file (%ld: %.300s)", st,
       text);
    ok(get(&s, "/v1/models/tiny", text, sizeof text) == 200 && strstr(text, "\"version\":2"),
       "version 2 still serves as the latest");
    ok(metric(&s, "spikeserve_model_load_failures_total") == 1, "the failure is counted");
    ok(post(&s, "/v2/repository/index", NULL, text, sizeof text) == 200 &&
           strstr(text, "\"version\":\"3\",\"state\":\"UNAVAILABLE\"") &&
           strstr(text, "tiny/3.spk"),
       "the index shows version 3 UNAVAILABLE with the loader's reason");
    unlink(bad);

    /* unload with and without sessions */
    char a[80], b[80];
    ok(open_tiny(&s, "{\"version\":1}", a) == 0 && open_tiny(&s, "{\"version\":2}", b) == 0,
       "sessions on versions 1 and 2");
    snprintf(path, sizeof path, "/v1/sessions/%s/events", a);
    ts_sse *ev = ts_sse_open(&s, path, NULL);
    ok(ev != NULL, "an event stream on the version 1 session");
    st = post(&s, "/v2/repository/models/tiny/unload", "{\"parameters\":{\"version\":\"1\"}}", text,
              sizeof text);
    ok(st == 409 && strstr(text, a) && strstr(text, "drain"),
       "unload version 1 with a session on it: 409 naming the session and drain (%ld)", st);
    diag("%s", text);
    snprintf(path, sizeof path, "/v1/sessions/%s/steps", a);
    ok(post(&s, path, "{\"steps\":3,\"events\":[[0,1]]}", NULL, 0) == 200,
       "after the refusal the session still steps");
    st = post(&s, "/v2/repository/models/tiny/unload",
              "{\"parameters\":{\"version\":1,\"drain\":true}}", text, sizeof text);
    ok(st == 200 && strstr(text, "\"sessions_closed\":1"),
       "unload version 1 with drain: 200, one session closed (%s)", text);
    ok(ev && ts_sse_wait(ev, "\"reason\":\"model version unloaded\"", 1, 10000) == 1,
       "its event stream ends with the reason");
    ts_sse_close(ev);
    snprintf(path, sizeof path, "/v1/sessions/%s", a);
    ok(get(&s, path, NULL, 0) == 404, "the drained session is gone");
    snprintf(path, sizeof path, "/v1/sessions/%s", b);
    ok(get(&s, path, NULL, 0) == 200, "the version 2 session is untouched");
    ok(get(&s, "/v1/models/tiny/versions/1", NULL, 0) == 404, "version 1 is not served");
    ok(post(&s, "/v2/repository/index", NULL, text, sizeof text) == 200 &&
           strstr(text, "{\"name\":\"tiny\",\"version\":\"1\",\"state\":\"UNAVAILABLE\","
                        "\"reason\":\"unloaded\"}"),
       "the index: version 1 UNAVAILABLE, unloaded");
    ok(post(&s, "/v2/repository/models/tiny/unload", "{\"parameters\":{\"drain\":\"yes\"}}", text,
            sizeof text) == 400,
       "a drain that is not a boolean: 400");

    /* close the last session: the whole model unloads without drain */
    snprintf(path, sizeof path, "/v1/sessions/%s", b);
    ts_resp r;
    ts_json(&s, "DELETE", path, NULL, &r);
    is_int(r.status, 204, "close the version 2 session");
    ts_resp_free(&r);
    ok(post(&s, "/v2/repository/models/tiny/unload", NULL, text, sizeof text) == 200 &&
           strstr(text, "\"sessions_closed\":0"),
       "unload every version of tiny, no session: 200");
    ok(get(&s, "/v1/models/tiny", NULL, 0) == 404, "tiny is not served");
    ok(post(&s, "/v2/repository/models/tiny/unload", NULL, text, sizeof text) == 404,
       "unload again: 404");
    ok(metric(&s, "spikeserve_model_unloads_total") == 2, "two versions unloaded (counted)");

    /* and back */
    ok(post(&s, "/v2/repository/models/tiny/load", NULL, text, sizeof text) == 200 &&
           strstr(text, "\"versions\":[\"1\",\"2\"]"),
       "load brings both versions back from disk");
    ok(open_tiny(&s, "{\"version\":1}", a) == 0, "a session on version 1 again");
    ok(metric(&s, "spikeserve_model_loads_total") == 4,
       "loads counted: 1 at start, version 2, both again (4)");

    int status = -1;
    ts_server_stop(&s, SIGTERM, &status);
    is_int(status, 0, "SIGTERM: exit 0");
    return done_testing();
}
