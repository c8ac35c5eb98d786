/* Every error status of SPEC section 3 that the server sends (400, 404, 405, 406, 409, 413,
 * 415, 429, 503), each with a body {"error":{"code","message"}} (spikeserve.Error in
 * protobuf) that says what was wrong; limits refuse before buffering. */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"
#include "../tap.h"
#include "api.pb-c.h"

#define PB "application/x-protobuf"
static ts_server s;

/* status and message (or "" ) of a JSON error answer */
static int check(const ts_resp *r, long status, const char *code, const char *msg_part,
                 const char *name) {
    json_t *j = json_loads(r->body, 0, NULL);
    json_t *e = json_object_get(j, "error");
    const char *c = json_string_value(json_object_get(e, "code"));
    const char *m = json_string_value(json_object_get(e, "message"));
    int good = r->status == status && c && m && (!code || !strcmp(c, code)) &&
               (!msg_part || strstr(m, msg_part));
    if (!ok(good, "%s", name))
        diag("got %ld %.300s (want %ld, code %s, message with \"%s\")", r->status, r->body, status,
             code ? code : "any", msg_part ? msg_part : "");
    json_decref(j);
    return good;
}

static void req(const char *method, const char *path, const char *ctype, const char *body,
                const char *accept, long status, const char *code, const char *part,
                const char *name) {
    ts_resp r;
    ts_http(&s, method, path, ctype, body, body ? strlen(body) : 0,
            accept ? accept : "application/json", &r);
    check(&r, status, code, part, name);
    ts_resp_free(&r);
}

static char steps[200];
static int n429, n200, n_ra;

static void *hammer(void *arg) {
    (void)arg;
    ts_resp r;
    char body[64];
    snprintf(body, sizeof body, "{\"steps\":20000,\"events\":[[0,1]]}");
    for (int i = 0; i < 3; i++) {
        ts_http(&s, "POST", "/v1/models/tiny/infer", "application/json", body, strlen(body), NULL,
                &r);
        char ra[16];
        if (r.status == 429) {
            __atomic_fetch_add(&n429, 1, __ATOMIC_RELAXED);
            if (ts_header(&r, "Retry-After", ra, sizeof ra) == 0 && atoi(ra) >= 1 &&
                strstr(r.body, "--queue-depth"))
                __atomic_fetch_add(&n_ra, 1, __ATOMIC_RELAXED);
        } else if (r.status == 200) {
            __atomic_fetch_add(&n200, 1, __ATOMIC_RELAXED);
        }
        ts_resp_free(&r);
    }
    return NULL;
}

int main(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    char dir[256], path[256];
    if (ts_tmpdir(dir, sizeof dir, "models") || ts_make_model(dir, "tiny", NULL) ||
        ts_make_model(dir, "other", "--seed 4 --hidden 8"))
        return 1;
    const char *extra[] = {"--max-body-bytes",
                           "65536",
                           "--max-steps",
                           "20000",
                           "--max-events",
                           "100",
                           "--max-sessions",
                           "4",
                           "--max-subscribers",
                           "1",
                           "--workers",
                           "1",
                           "--queue-depth",
                           "1",
                           "--max-output-bytes",
                           "8388608",
                           NULL};
    if (!ok(ts_server_start(&s, dir, extra) == 0, "server starts with tight limits"))
        return done_testing();
    char sid[80], sid_other[80];
    ts_open_session(&s, "tiny", sid, sizeof sid);
    snprintf(steps, sizeof steps, "/v1/sessions/%s/steps", sid);
    const char *J = "application/json";

    /* 400 */
    req("POST", steps, J, "{\"steps\":", NULL, 400, "invalid_argument", "JSON",
        "400: truncated JSON");
    req("POST", steps, J, "{\"steps\":2,\"events\":[[0,25]]}", NULL, 400, "invalid_argument",
        "events[0]", "400: input out of range names events[0]");
    req("POST", steps, J, "{\"steps\":0}", NULL, 400, "invalid_argument", "steps", "400: steps 0");
    req("POST", steps, J, "{\"steps\":2,\"events\":[[5,1]]}", NULL, 400, NULL, "events[0]",
        "400: event step outside the batch");
    req("POST", "/v1/models/tiny/classify", J, "{\"values\":[0.5]}", NULL, 400, NULL, "values",
        "400: classify with the wrong number of values");
    req("POST", "/v1/models/tiny/classify", J,
        "{\"values\":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,7]}", NULL, 400, NULL, "values[19]",
        "400: classify value out of [0, 1]");
    req("PUT", "/v1/sessions/abc/state", PB, "garbage", NULL, 400, NULL, "SessionSnapshot",
        "400: PUT state with bad bytes");
    req("PUT", "/v1/sessions/bad.id/state", PB, "", NULL, 400, NULL, "id",
        "400: PUT state to a bad id");
    req("POST", "/v1/models/tiny/sessions", J, "{\"idle_timeout_s\":\"x\"}", NULL, 400, NULL,
        "idle_timeout_s", "400: open with a bad idle_timeout_s");
    /* 400 in protobuf */
    ts_resp r;
    ts_http(&s, "POST", steps, PB, "\xff\xff\xff", 3, PB, &r);
    Spikeserve__Error *pe = spikeserve__error__unpack(NULL, r.len, (uint8_t *)r.body);
    ok(r.status == 400 && !strcmp(r.ctype, PB) && pe && pe->error && pe->error->code &&
           !strcmp(pe->error->code, "invalid_argument") && pe->error->message &&
           *pe->error->message,
       "400 in protobuf: a spikeserve.Error");
    if (pe) spikeserve__error__free_unpacked(pe, NULL);
    ts_resp_free(&r);

    /* 404 */
    req("GET", "/nope", NULL, NULL, NULL, 404, "not_found", NULL, "404: unknown path");
    req("GET", "/v1/models/nope", NULL, NULL, NULL, 404, "not_found", "nope", "404: unknown model");
    req("POST", "/v1/models/nope/sessions", NULL, NULL, NULL, 404, NULL, "nope",
        "404: open on an unknown model");
    req("GET", "/v1/sessions/0123456789abcdef0123456789abcdef", NULL, NULL, NULL, 404, NULL, NULL,
        "404: unknown session");
    req("GET", "/v1/sessions/0123456789abcdef0123456789abcdef/events", NULL, NULL, NULL, 404, NULL,
        NULL, "404: events of an unknown session");
    ts_http(&s, "DELETE", "/v1/sessions/0123456789abcdef0123456789abcdef", NULL, NULL, 0, PB, &r);
    pe = spikeserve__error__unpack(NULL, r.len, (uint8_t *)r.body);
    ok(r.status == 404 && pe && pe->error && !strcmp(pe->error->code, "not_found"),
       "404 in protobuf");
    if (pe) spikeserve__error__free_unpacked(pe, NULL);
    ts_resp_free(&r);

    /* 405 with Allow */
    char allow[64] = "";
    ts_http(&s, "PUT", steps, J, "{}", 2, NULL, &r);
    ts_header(&r, "Allow", allow, sizeof allow);
    ok(r.status == 405 && !strcmp(allow, "POST"), "405 on PUT steps, Allow: POST");
    ts_resp_free(&r);
    ts_http(&s, "DELETE", "/v1/models", NULL, NULL, 0, NULL, &r);
    ts_header(&r, "Allow", allow, sizeof allow);
    ok(r.status == 405 && !strcmp(allow, "GET"), "405 on DELETE /v1/models, Allow: GET");
    ts_resp_free(&r);
    snprintf(path, sizeof path, "/v1/sessions/%s/state", sid);
    ts_http(&s, "POST", path, PB, "", 0, NULL, &r);
    ts_header(&r, "Allow", allow, sizeof allow);
    ok(r.status == 405 && !strcmp(allow, "GET, PUT"), "405 on POST state, Allow: GET, PUT");
    ts_resp_free(&r);

    /* 406 */
    ts_http(&s, "GET", "/v1/models", NULL, NULL, 0, "text/html", &r);
    is_int(r.status, 406, "406: Accept text/html on /v1/models");
    ts_resp_free(&r);
    ts_http(&s, "GET", path, NULL, NULL, 0, "application/json", &r);
    is_int(r.status, 406, "406: Accept application/json on GET state (protobuf only)");
    ts_resp_free(&r);
    ts_http(&s, "GET", "/v1/models", NULL, NULL, 0, "text/html, application/x-protobuf;q=0.5", &r);
    ok(r.status == 200 && !strcmp(r.ctype, PB), "an Accept list picks the type it can meet");
    ts_resp_free(&r);

    /* 409 */
    req("POST", steps, J, "{\"seq\":4,\"steps\":1}", NULL, 409, "seq_conflict", "expected 1",
        "409: seq gap");
    ts_open_session(&s, "other", sid_other, sizeof sid_other);
    snprintf(path, sizeof path, "/v1/sessions/%s/state", sid_other);
    ts_resp snap;
    ts_http(&s, "GET", path, NULL, NULL, 0, NULL, &snap);
    snprintf(path, sizeof path, "/v1/sessions/%s/state", sid);
    ts_http(&s, "PUT", path, PB, snap.body, snap.len, NULL, &r);
    check(&r, 409, NULL, "other", "409: PUT a snapshot of another model over a session");
    ts_resp_free(&r);
    ts_resp_free(&snap);

    /* 413: declared length, chunked length, steps, events */
    char *big = malloc(100001);
    memset(big, ' ', 100000);
    big[0] = '{';
    big[99999] = '}';
    big[100000] = 0;
    req("POST", steps, J, big, NULL, 413, NULL, "65536",
        "413: Content-Length over --max-body-bytes");
    ts_http_chunked(&s, "POST", steps, J, big, 100000, "application/json", &r);
    check(&r, 413, NULL, "--max-body-bytes", "413: chunked body over --max-body-bytes");
    ts_resp_free(&r);
    free(big);
    req("POST", steps, J, "{\"steps\":20001}", NULL, 413, NULL, "20000",
        "413: steps over --max-steps names it");
    char ev[4096];
    size_t k = (size_t)snprintf(ev, sizeof ev, "{\"steps\":1,\"events\":[");
    for (int i = 0; i < 101; i++)
        k += (size_t)snprintf(ev + k, sizeof ev - k, "%s[0,1]", i ? "," : "");
    snprintf(ev + k, sizeof ev - k, "]}");
    req("POST", steps, J, ev, NULL, 413, NULL, "100", "413: events over --max-events names it");

    /* worst-case output size: 20000 steps x every layer's neurons, over 8 MB */
    req("POST", steps, J, "{\"steps\":20000,\"outputs\":[\"layers\",\"readout_all\"]}", NULL, 413,
        NULL, "--max-output-bytes", "413: worst-case outputs over --max-output-bytes name it");

    /* 415 */
    req("POST", steps, "text/plain", "{}", NULL, 415, "unsupported_media_type", "text/plain",
        "415: text/plain on steps");
    req("POST", steps, "application/x-www-form-urlencoded", "a=b", NULL, 415, NULL, NULL,
        "415: a form on steps");
    req("PUT", "/v1/sessions/x/state", J, "{}", NULL, 415, NULL, NULL, "415: JSON on PUT state");

    /* 429: subscriber limit, and a full worker queue */
    snprintf(path, sizeof path, "/v1/sessions/%s/events", sid);
    ts_sse *e1 = ts_sse_open(&s, path, NULL);
    ok(e1 != NULL, "first subscriber accepted");
    ts_http(&s, "GET", path, NULL, NULL, 0, NULL, &r);
    char ra[16] = "";
    ts_header(&r, "Retry-After", ra, sizeof ra);
    check(&r, 429, NULL, "--max-subscribers", "429: a second subscriber over --max-subscribers 1");
    ok(atoi(ra) >= 1, "429 carries Retry-After");
    ts_resp_free(&r);
    ts_sse_close(e1);
    pthread_t th[24];
    for (int i = 0; i < 24; i++)
        pthread_create(&th[i], NULL, hammer, NULL);
    for (int i = 0; i < 24; i++)
        pthread_join(th[i], NULL);
    diag("72 heavy requests on 1 worker with queue depth 1: %d answered, %d refused", n200, n429);
    ok(n429 > 0 && n_ra == n429,
       "429 with Retry-After naming --queue-depth when the queue is full");
    ok(n200 > 0 && n200 + n429 == 72, "every other request was answered");

    /* 503: session limit */
    char extra_ids[4][80];
    int opened = 0;
    for (int i = 0; i < 4; i++)
        opened += ts_open_session(&s, "tiny", extra_ids[i], 80) == 0;
    ts_json(&s, "POST", "/v1/models/tiny/sessions", NULL, &r);
    ra[0] = 0;
    ts_header(&r, "Retry-After", ra, sizeof ra);
    check(&r, 503, NULL, "--max-sessions", "503 over --max-sessions names it");
    ok(opened == 2 && atoi(ra) >= 1, "exactly the limit was opened; 503 carries Retry-After");
    ts_resp_free(&r);

    ts_http(&s, "GET", "/healthz", NULL, NULL, 0, NULL, &r);
    is_int(r.status, 200, "still healthy after all that");
    ts_resp_free(&r);
    int status = -1;
    ts_server_stop(&s, SIGTERM, &status);
    is_int(status, 0, "SIGTERM: exit 0");
    return done_testing();
}
