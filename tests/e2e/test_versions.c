/* Model versions side by side (issue 16): NAME/VERSION.spk next to a flat NAME.spk; sessions
 * pinned to the version they were opened on, with bit-exact outputs per version (the same
 * weights in a flat file of another name answer the same bytes); GET /v1/models/{m} is the
 * latest, /versions/{v} a given one; snapshots carry the version and a different version's
 * snapshot is refused; OIP's /versions/{v} paths reach the same registry; the repository
 * index lists versions; metrics per version. With --model-control none the repository's
 * load and unload are refused. */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../support/harness.h"
#include "../tap.h"
#include "api.pb-c.h"

static char batch[2048];

/* A batch that makes the test models spike: 5 inputs a step over 20 steps. */
static void make_batch(void) {
    size_t k = (size_t)snprintf(batch, sizeof batch, "{\"steps\":20,\"events\":[");
    for (int t = 0; t < 20; t++)
        for (int i = 0; i < 5; i++)
            k += (size_t)snprintf(batch + k, sizeof batch - k, "%s[%d,%d]", t || i ? "," : "", t,
                                  (t * 3 + i) % 20);
    snprintf(batch + k, sizeof batch - k, "],\"outputs\":[\"spikes\",\"readout\"]}");
}

/* Open a session on model with body; its id into id (and 0), or -1. */
static int open_on(const ts_server *s, const char *model, const char *body, char *id, long *status,
                   char *text, size_t text_len) {
    char path[200];
    ts_resp r;
    snprintf(path, sizeof path, "/v1/models/%s/sessions", model);
    if (ts_json(s, "POST", path, body, &r) != 0) return -1;
    *status = r.status;
    snprintf(text, text_len, "%s", r.body ? r.body : "");
    const char *p = r.body ? strstr(r.body, "\"session_id\":\"") : NULL;
    int rc = -1;
    if (r.status == 201 && p) {
        p += 14;
        size_t n = strcspn(p, "\"");
        if (n < 80) {
            memcpy(id, p, n);
            id[n] = 0;
            rc = 0;
        }
    }
    ts_resp_free(&r);
    return rc;
}

/* The outputs of one step on session id (the body from "t0" on: no session id), malloc'd. */
static char *step_outputs(const ts_server *s, const char *id) {
    char path[200];
    ts_resp r;
    snprintf(path, sizeof path, "/v1/sessions/%s/steps", id);
    if (ts_json(s, "POST", path, batch, &r) != 0) return NULL;
    char *out = NULL;
    const char *p = r.body ? strstr(r.body, "\"t0\"") : NULL;
    if (r.status == 200 && p) out = strdup(p);
    ts_resp_free(&r);
    return out;
}

static long get(const ts_server *s, const char *path, const char *needle) {
    ts_resp r;
    if (ts_json(s, "GET", path, NULL, &r) != 0) return -1;
    long st = r.status;
    if (needle && (!r.body || !strstr(r.body, needle))) {
        diag("%s: %s", path, r.body ? r.body : "");
        st = -st;
    }
    ts_resp_free(&r);
    return st;
}

int main(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    make_batch();
    char dir[256], sub[300];
    if (ts_tmpdir(dir, sizeof dir, "versions")) return 1;
    snprintf(sub, sizeof sub, "%s/tiny", dir);
    mkdir(sub, 0700);
    /* tiny versions 1 and 2 (other weights); ref1 and ref2: the same weights, flat files */
    if (ts_make_model(dir, "tiny/1", "--name tiny --seed 11") ||
        ts_make_model(dir, "tiny/2", "--name tiny --seed 12") ||
        ts_make_model(dir, "ref1", "--seed 11") || ts_make_model(dir, "ref2", "--seed 12"))
        return 1;
    ts_server s;
    if (!ok(ts_server_start(&s, dir, NULL) == 0, "server starts on NAME/VERSION.spk and NAME.spk"))
        return done_testing();

    ok(get(&s, "/v1/models/tiny", "\"version\":2") == 200, "GET /v1/models/tiny: the latest, 2");
    ok(get(&s, "/v1/models/tiny/versions/1", "\"version\":1") == 200,
       "GET /v1/models/tiny/versions/1: version 1");
    ok(get(&s, "/v1/models/tiny/versions/3", "version 3 not loaded") == 404,
       "GET /v1/models/tiny/versions/3: 404 naming the version");
    ok(get(&s, "/v1/models/tiny/versions/x", NULL) == 404, "a version that is not a number: 404");
    ok(get(&s, "/v1/models/ref1", "\"version\":1") == 200,
       "a flat file serves the version inside it (1)");

    char v1[80], v2[80], r1[80], r2[80], text[1024];
    long st = 0;
    ok(open_on(&s, "tiny", "{\"version\":1}", v1, &st, text, sizeof text) == 0 &&
           strstr(text, "\"model_version\":1"),
       "open a session on version 1 (JSON \"version\": 1): model_version 1");
    ok(open_on(&s, "tiny", "{\"version\":\"2\"}", v2, &st, text, sizeof text) == 0 &&
           strstr(text, "\"model_version\":2"),
       "open a session on version \"2\": model_version 2");
    char latest[80];
    ok(open_on(&s, "tiny", "{}", latest, &st, text, sizeof text) == 0 &&
           strstr(text, "\"model_version\":2"),
       "open without a version: the latest (2)");
    int opened = open_on(&s, "tiny", "{\"version\":7}", r1, &st, text, sizeof text) == 0;
    ok(!opened && st == 404 && strstr(text, "version 7"), "open on version 7: 404 naming it (%ld)",
       st);
    opened = open_on(&s, "tiny", "{\"version\":0}", r1, &st, text, sizeof text) == 0;
    ok(!opened && st == 400, "open on version 0: 400 (%ld)", st);
    /* protobuf (and so gRPC): OpenSessionRequest.model_version */
    Spikeserve__OpenSessionRequest q = SPIKESERVE__OPEN_SESSION_REQUEST__INIT;
    q.has_model_version = 1;
    q.model_version = 1;
    uint8_t qb[64];
    size_t ql = spikeserve__open_session_request__pack(&q, qb);
    ts_resp pr;
    ts_http(&s, "POST", "/v1/models/tiny/sessions", "application/x-protobuf", qb, ql,
            "application/json", &pr);
    ok(pr.status == 201 && pr.body && strstr(pr.body, "\"model_version\":1"),
       "open with a protobuf OpenSessionRequest{model_version: 1}: version 1 (%ld)", pr.status);
    ts_resp_free(&pr);
    ok(open_on(&s, "ref1", NULL, r1, &st, text, sizeof text) == 0 &&
           open_on(&s, "ref2", NULL, r2, &st, text, sizeof text) == 0,
       "sessions on ref1 and ref2 (the same weights as versions 1 and 2)");

    /* two steps each: outputs per version are those of its weights, bit for bit */
    int same1 = 1, same2 = 1, differ = 0;
    for (int k = 0; k < 2; k++) {
        char *a = step_outputs(&s, v1), *b = step_outputs(&s, v2), *c = step_outputs(&s, r1),
             *d = step_outputs(&s, r2);
        same1 &= a && c && !strcmp(a, c);
        same2 &= b && d && !strcmp(b, d);
        differ |= a && b && strcmp(a, b) != 0;
        if (k == 0 && a) diag("version 1, step 1: %.160s", a);
        if (k == 0 && b) diag("version 2, step 1: %.160s", b);
        free(a), free(b), free(c), free(d);
    }
    ok(same1, "version 1's outputs are ref1's, byte for byte (two batches)");
    ok(same2, "version 2's outputs are ref2's, byte for byte (two batches)");
    ok(differ, "versions 1 and 2 answer differently (other weights)");

    char path[300];
    snprintf(path, sizeof path, "/v1/sessions/%s", v1);
    ok(get(&s, path, "\"model_version\":1") == 200, "session info carries its version (1)");

    /* snapshots carry the version; another version's snapshot is refused */
    ts_resp r;
    snprintf(path, sizeof path, "/v1/sessions/%s/state", v1);
    ts_http(&s, "GET", path, NULL, NULL, 0, "application/x-protobuf", &r);
    ok(r.status == 200 && r.len > 0, "GET state of the version 1 session");
    snprintf(path, sizeof path, "/v1/sessions/%s/state", v2);
    ts_resp p2;
    ts_http(&s, "PUT", path, "application/x-protobuf", r.body, r.len, NULL, &p2);
    ok(p2.status == 409 && p2.body && strstr(p2.body, "version 2") && strstr(p2.body, "version 1"),
       "PUT a version 1 snapshot into a version 2 session: 409 naming both (%ld)", p2.status);
    diag("%s", p2.body ? p2.body : "");
    ts_resp_free(&p2);
    ts_http(&s, "PUT", "/v1/sessions/moved-v1/state", "application/x-protobuf", r.body, r.len, NULL,
            &p2);
    ok(p2.status == 201 && p2.body && strstr(p2.body, "\"model_version\":1"),
       "PUT it under a new id: a session on version 1 (%ld)", p2.status);
    ts_resp_free(&p2);
    ts_resp_free(&r);
    char *a = step_outputs(&s, "moved-v1"), *c = step_outputs(&s, r1);
    ok(a && c && !strcmp(a, c), "the restored session steps on version 1's weights");
    free(a), free(c);

    /* OIP reaches the same registry */
    ok(get(&s, "/v2/models/tiny/versions/1", "\"versions\":[\"1\"]") == 200,
       "GET /v2/models/tiny/versions/1");
    ok(get(&s, "/v2/models/tiny", "\"versions\":[\"2\"]") == 200,
       "GET /v2/models/tiny: the latest");
    ok(get(&s, "/v2/models/tiny/versions/9/ready", NULL) == 404, "version 9 is not ready: 404");
    const char *infer = "{\"inputs\":[{\"name\":\"events\",\"datatype\":\"FP32\",\"shape\":[3,3],"
                        "\"data\":[0,1,1,0,2,1,1,3,1]}],\"parameters\":{\"steps\":4}}";
    ts_resp o1, o2, o3;
    ts_json(&s, "POST", "/v2/models/tiny/versions/1/infer", infer, &o1);
    ts_json(&s, "POST", "/v2/models/ref1/infer", infer, &o2);
    ts_json(&s, "POST", "/v2/models/tiny/versions/2/infer", infer, &o3);
    const char *x1 = o1.body ? strstr(o1.body, "\"outputs\"") : NULL;
    const char *x2 = o2.body ? strstr(o2.body, "\"outputs\"") : NULL;
    const char *x3 = o3.body ? strstr(o3.body, "\"outputs\"") : NULL;
    ok(o1.status == 200 && x1 && x2 && !strcmp(x1, x2),
       "OIP infer on /versions/1: ref1's outputs (%ld)", o1.status);
    ok(o3.status == 200 && x3 && strcmp(x1 ? x1 : "", x3) != 0, "and /versions/2 differs");
    if (o1.status != 200) diag("%s", o1.body ? o1.body : "");
    ts_resp_free(&o1), ts_resp_free(&o2), ts_resp_free(&o3);

    ok(get(&s, "/v2/models/tiny/versions/1/stats", "\"inference_count\":1,") == 200 &&
           get(&s, "/v2/models/ref1/stats", "\"inference_count\":1,") == 200 &&
           get(&s, "/v2/models/ref2/stats", "\"inference_count\":0,") == 200,
       "OIP statistics per version: one inference on tiny 1, one on ref1, none on ref2");
    ts_json(&s, "POST", "/v2/repository/index", NULL, &r);
    ok(r.status == 200 && r.body &&
           strstr(r.body, "{\"name\":\"tiny\",\"version\":\"1\",\"state\":\"READY\"") &&
           strstr(r.body, "{\"name\":\"tiny\",\"version\":\"2\",\"state\":\"READY\""),
       "the repository index lists both versions, READY");
    ts_resp_free(&r);
    ts_json(&s, "POST", "/v2/repository/models/tiny/load", NULL, &r);
    ok(r.status == 400 && r.body && strstr(r.body, "--model-control none"),
       "--model-control none: load is refused (400, saying why)");
    ts_resp_free(&r);
    ts_json(&s, "POST", "/v2/repository/models/tiny/unload", NULL, &r);
    ok(r.status == 400, "and unload too");
    ts_resp_free(&r);

    ts_http(&s, "GET", "/metrics", NULL, NULL, 0, NULL, &r);
    double b1 = ts_metric(r.body, "spikeserve_model_batches_total{model=\"tiny\",version=\"1\"}");
    double b2 = ts_metric(r.body, "spikeserve_model_batches_total{model=\"tiny\",version=\"2\"}");
    double s1 = ts_metric(r.body, "spikeserve_model_sessions_open{model=\"tiny\",version=\"1\"}");
    double s2 = ts_metric(r.body, "spikeserve_model_sessions_open{model=\"tiny\",version=\"2\"}");
    ok(b1 == 4 && b2 == 3, "batches per version: 1 ran %g (2 + 1 restored + 1 OIP), 2 ran %g", b1,
       b2);
    ok(s1 == 3 && s2 == 2, "sessions per version: %g on 1 (JSON, protobuf, restored), %g on 2", s1,
       s2);
    ok(ts_metric(r.body, "spikeserve_model_loads_total") == 4 &&
           ts_metric(r.body, "spikeserve_model_load_failures_total") == 0,
       "four versions loaded, none refused");
    ts_resp_free(&r);

    int status = -1;
    ts_server_stop(&s, SIGTERM, &status);
    is_int(status, 0, "SIGTERM: exit 0");
    return done_testing();
}
