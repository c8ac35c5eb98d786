/* Every route of SPEC section 3 in JSON and in protobuf, with the answers checked. */
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/batchgen.h"
#include "../support/harness.h"
#include "../tap.h"
#include "api.pb-c.h"

#define PB "application/x-protobuf"
static ts_server s;

static json_t *get_json(const char *method, const char *path, const char *body, long *status) {
    ts_resp r;
    ts_json(&s, method, path, body, &r);
    *status = r.status;
    json_t *j = json_loads(r.body, 0, NULL);
    ts_resp_free(&r);
    return j;
}

static int pb_call(const char *method, const char *path, const void *body, size_t len, ts_resp *r) {
    return ts_http(&s, method, path, body ? PB : NULL, body, len, PB, r);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    char dir[256], path[256];
    long st;
    if (ts_tmpdir(dir, sizeof dir, "models") || ts_make_model(dir, "tiny", NULL) ||
        ts_make_model(dir, "plain", "--classes 0 --encoding none --hidden 12"))
        return 1;
    if (!ok(ts_server_start(&s, dir, NULL) == 0, "server starts with two models"))
        return done_testing();
    ts_resp r;

    ts_http(&s, "GET", "/healthz", NULL, NULL, 0, NULL, &r);
    is_int(r.status, 200, "GET /healthz");
    ts_resp_free(&r);
    ts_http(&s, "GET", "/readyz", NULL, NULL, 0, NULL, &r);
    ok(r.status == 200 && strstr(r.body, "ready"), "GET /readyz");
    ts_resp_free(&r);
    ts_http(&s, "GET", "/metrics", NULL, NULL, 0, NULL, &r);
    ok(r.status == 200 && strstr(r.ctype, "text/plain") &&
           strstr(r.body, "spikeserve_sessions_open"),
       "GET /metrics (text/plain)");
    ts_resp_free(&r);

    /* models */
    json_t *j = get_json("GET", "/v1/models", NULL, &st);
    ok(st == 200 && json_array_size(json_object_get(j, "models")) == 2,
       "GET /v1/models (JSON): 2 models");
    json_decref(j);
    pb_call("GET", "/v1/models", NULL, 0, &r);
    Spikeserve__ModelList *ml = spikeserve__model_list__unpack(NULL, r.len, (uint8_t *)r.body);
    ok(r.status == 200 && !strcmp(r.ctype, PB) && ml && ml->n_models == 2,
       "GET /v1/models (protobuf)");
    if (ml) spikeserve__model_list__free_unpacked(ml, NULL);
    ts_resp_free(&r);
    j = get_json("GET", "/v1/models/tiny", NULL, &st);
    json_t *layers = json_object_get(j, "layers");
    ok(st == 200 && json_array_size(layers) == 3 &&
           !strcmp(json_string_value(json_object_get(json_array_get(layers, 2), "kind")),
                   "readout") &&
           json_integer_value(json_object_get(j, "n_in")) == 20 &&
           json_array_size(json_object_get(j, "labels")) == 4 &&
           !strcmp(json_string_value(json_object_get(json_object_get(j, "encoding"), "kind")),
                   "rate") &&
           json_real_value(json_object_get(json_array_get(layers, 0), "alpha")) > 0.89,
       "GET /v1/models/tiny (JSON): layers, sizes, constants, labels, encoding");
    json_decref(j);
    pb_call("GET", "/v1/models/tiny", NULL, 0, &r);
    Spikeserve__ModelInfo *mi = spikeserve__model_info__unpack(NULL, r.len, (uint8_t *)r.body);
    ok(mi && mi->n_layers == 3 && mi->n_in == 20 && mi->n_out == 4 && mi->n_labels == 4 &&
           mi->encoding && mi->encoding->steps == 20 && mi->layers[0]->theta == 0.5f,
       "GET /v1/models/tiny (protobuf)");
    if (mi) spikeserve__model_info__free_unpacked(mi, NULL);
    ts_resp_free(&r);

    /* sessions: open in JSON and protobuf */
    ts_json(&s, "POST", "/v1/models/tiny/sessions", "{}", &r);
    char loc[200] = "";
    ts_header(&r, "Location", loc, sizeof loc);
    j = json_loads(r.body, 0, NULL);
    char sid[80];
    snprintf(sid, sizeof sid, "%s", json_string_value(json_object_get(j, "session_id")));
    ok(r.status == 201 && strlen(sid) == 32 && strspn(sid, "0123456789abcdef") == 32 &&
           !strcmp(json_string_value(json_object_get(j, "model")), "tiny") &&
           json_integer_value(json_object_get(j, "model_version")) == 1 &&
           json_integer_value(json_object_get(j, "idle_timeout_s")) == 600,
       "POST /v1/models/tiny/sessions (JSON): 201, 128-bit hex id");
    snprintf(path, sizeof path, "/v1/sessions/%s", sid);
    is_str(loc, path, "Location names the session");
    json_decref(j);
    ts_resp_free(&r);
    Spikeserve__OpenSessionRequest oreq = SPIKESERVE__OPEN_SESSION_REQUEST__INIT;
    oreq.has_idle_timeout_s = 1;
    oreq.idle_timeout_s = 30;
    uint8_t obuf[16];
    size_t olen = spikeserve__open_session_request__pack(&oreq, obuf);
    pb_call("POST", "/v1/models/tiny/sessions", obuf, olen, &r);
    Spikeserve__SessionInfo *si = spikeserve__session_info__unpack(NULL, r.len, (uint8_t *)r.body);
    char sid2[80] = "";
    ok(r.status == 201 && si && si->session_id && si->idle_timeout_s == 30 && si->t == 0,
       "POST /v1/models/tiny/sessions (protobuf, idle_timeout_s 30)");
    if (si) snprintf(sid2, sizeof sid2, "%s", si->session_id);
    if (si) spikeserve__session_info__free_unpacked(si, NULL);
    ts_resp_free(&r);
    ok(strcmp(sid, sid2) != 0, "ids differ");

    /* steps */
    char steps[200];
    snprintf(steps, sizeof steps, "/v1/sessions/%s/steps", sid);
    j = get_json("POST", steps,
                 "{\"steps\":4,\"events\":[[0,1],[1,2,0.5]],\"outputs\":[\"spikes\",\"readout_"
                 "all\",\"layers\"]}",
                 &st);
    ok(st == 200 && json_integer_value(json_object_get(j, "t0")) == 0 &&
           json_integer_value(json_object_get(j, "steps")) == 4 && json_object_get(j, "spikes"),
       "POST steps (JSON)");
    json_decref(j);
    uint64_t rng = 3;
    tb_batch b;
    tb_random(&b, &rng, 6, 20, 0.5);
    size_t blen;
    uint8_t *bpb = tb_pb(&b, -1, &blen);
    pb_call("POST", steps, bpb, blen, &r);
    tb_result res;
    ok(r.status == 200 && tb_result_pb(r.body, r.len, &res) == 0 && res.t0 == 4 && res.steps == 6 &&
           res.n_readout == 4 && res.has_pred,
       "POST steps (protobuf): t0 = 4, readout and prediction");
    tb_result_free(&res);
    ts_resp_free(&r);
    j = get_json("POST", steps,
                 "{\"steps\":2,\"dense\":[[1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1],[0,0,0,0,0,0,0,"
                 "0,0,0,0,0,0,0,0,0,0,0,0,0]]}",
                 &st);
    ok(st == 200 && json_integer_value(json_object_get(j, "t0")) == 10,
       "POST steps with dense rows");
    json_decref(j);

    /* session info */
    j = get_json("GET", path, NULL, &st);
    const char *created = json_string_value(json_object_get(j, "created_at"));
    ok(st == 200 && json_integer_value(json_object_get(j, "t")) == 12 && created &&
           strlen(created) == 24 && created[10] == 'T' && created[23] == 'Z' &&
           json_object_get(j, "last_active_at") && json_object_get(j, "last_seq"),
       "GET /v1/sessions/{id} (JSON): t = 12, RFC 3339 times");
    json_decref(j);
    pb_call("GET", path, NULL, 0, &r);
    si = spikeserve__session_info__unpack(NULL, r.len, (uint8_t *)r.body);
    ok(r.status == 200 && si && si->t == 12 && !strcmp(si->model, "tiny"),
       "GET /v1/sessions/{id} (protobuf)");
    if (si) spikeserve__session_info__free_unpacked(si, NULL);
    ts_resp_free(&r);

    /* state: GET, PUT into a new id and over an existing one */
    char state[200];
    snprintf(state, sizeof state, "/v1/sessions/%s/state", sid);
    ts_http(&s, "GET", state, NULL, NULL, 0, NULL, &r);
    Spikeserve__SessionSnapshot *snap =
        spikeserve__session_snapshot__unpack(NULL, r.len, (uint8_t *)r.body);
    ok(r.status == 200 && !strcmp(r.ctype, PB) && snap && snap->state && snap->state->t == 12 &&
           !strcmp(snap->model, "tiny") && !strcmp(snap->session_id, sid),
       "GET state: a SessionSnapshot at t = 12");
    if (snap) spikeserve__session_snapshot__free_unpacked(snap, NULL);
    ts_resp put = r;
    ts_http(&s, "PUT", "/v1/sessions/copy-1/state", PB, put.body, put.len, NULL, &r);
    ok(r.status == 201 && strstr(r.body, "\"session_id\":\"copy-1\"") && strstr(r.body, "\"t\":12"),
       "PUT state into a new id: 201 (JSON answer)");
    ts_resp_free(&r);
    ts_http(&s, "PUT", "/v1/sessions/copy-1/state", PB, put.body, put.len, PB, &r);
    si = spikeserve__session_info__unpack(NULL, r.len, (uint8_t *)r.body);
    ok(r.status == 200 && si && si->t == 12,
       "PUT state over an existing session: 200 (protobuf answer)");
    if (si) spikeserve__session_info__free_unpacked(si, NULL);
    ts_resp_free(&r);
    /* the copy continues exactly like the original */
    tb_batch nb;
    tb_random(&nb, &rng, 5, 20, 0.5);
    char *nj = tb_json(&nb, -1);
    ts_resp o1, o2;
    ts_json(&s, "POST", steps, nj, &o1);
    ts_json(&s, "POST", "/v1/sessions/copy-1/steps", nj, &o2);
    tb_result a1, a2;
    char why[200];
    ok(o1.status == 200 && o2.status == 200 && tb_result_json(o1.body, &a1) == 0 &&
           tb_result_json(o2.body, &a2) == 0 && tb_result_eq(&a1, &a2, 0, why, sizeof why),
       "the restored copy answers like the original");
    tb_result_free(&a1);
    tb_result_free(&a2);
    ts_resp_free(&o1);
    ts_resp_free(&o2);
    free(nj);
    ts_resp_free(&put);

    /* reset */
    snprintf(path, sizeof path, "/v1/sessions/%s/reset", sid);
    j = get_json("POST", path, NULL, &st);
    ok(st == 200 && json_integer_value(json_object_get(j, "t")) == 0, "POST reset (JSON): t = 0");
    json_decref(j);
    snprintf(path, sizeof path, "/v1/sessions/%s/reset", sid2);
    pb_call("POST", path, NULL, 0, &r);
    si = spikeserve__session_info__unpack(NULL, r.len, (uint8_t *)r.body);
    ok(r.status == 200 && si && si->t == 0, "POST reset (protobuf)");
    if (si) spikeserve__session_info__free_unpacked(si, NULL);
    ts_resp_free(&r);

    /* infer: stateless, always t0 = 0, same input -> same output */
    char *bj = tb_json(&b, -1);
    ts_json(&s, "POST", "/v1/models/tiny/infer", bj, &o1);
    ts_json(&s, "POST", "/v1/models/tiny/infer", bj, &o2);
    ok(o1.status == 200 && strstr(o1.body, "\"t0\":0") && o1.len == o2.len &&
           !memcmp(o1.body, o2.body, o1.len) && !strstr(o1.body, "session_id"),
       "POST infer (JSON): fresh state each time");
    ts_resp_free(&o1);
    ts_resp_free(&o2);
    free(bj);
    pb_call("POST", "/v1/models/tiny/infer", bpb, blen, &r);
    ok(r.status == 200 && tb_result_pb(r.body, r.len, &res) == 0 && res.t0 == 0 && res.steps == 6,
       "POST infer (protobuf)");
    tb_result_free(&res);
    ts_resp_free(&r);
    ts_json(&s, "POST", "/v1/models/plain/infer", "{\"steps\":3,\"events\":[[0,0],[1,5]]}", &r);
    ok(r.status == 200 && !strstr(r.body, "readout") && !strstr(r.body, "prediction"),
       "infer on a model without readout: spikes only");
    ts_resp_free(&r);

    /* classify */
    const char *cv = "{\"values\":[0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1,1,1,1,1,0.5,0.5,0.5,0.5,"
                     "0.5],\"seed\":7}";
    ts_json(&s, "POST", "/v1/models/tiny/classify", cv, &o1);
    ts_json(&s, "POST", "/v1/models/tiny/classify", cv, &o2);
    ok(o1.status == 200 && strstr(o1.body, "\"prediction\":{\"index\":") &&
           strstr(o1.body, "\"label\":\"class") && strstr(o1.body, "\"steps\":22") &&
           o1.len == o2.len && !memcmp(o1.body, o2.body, o1.len),
       "POST classify (JSON): 22 encoded steps, a prediction, deterministic for a seed");
    ts_resp_free(&o1);
    ts_resp_free(&o2);
    Spikeserve__ClassifyRequest cq = SPIKESERVE__CLASSIFY_REQUEST__INIT;
    float vals[20];
    for (int i = 0; i < 20; i++)
        vals[i] = (float)i / 20.0f;
    cq.n_values = 20;
    cq.values = vals;
    cq.has_seed = 1;
    cq.seed = 9;
    uint8_t cbuf[256];
    size_t clen = spikeserve__classify_request__pack(&cq, cbuf);
    pb_call("POST", "/v1/models/tiny/classify", cbuf, clen, &r);
    ok(r.status == 200 && tb_result_pb(r.body, r.len, &res) == 0 && res.has_pred && res.pred < 4,
       "POST classify (protobuf)");
    tb_result_free(&res);
    ts_resp_free(&r);

    /* delete */
    snprintf(path, sizeof path, "/v1/sessions/%s", sid2);
    ts_http(&s, "DELETE", path, NULL, NULL, 0, PB, &r);
    is_int(r.status, 204, "DELETE (protobuf client): 204");
    ts_resp_free(&r);
    snprintf(path, sizeof path, "/v1/sessions/%s", sid);
    ts_json(&s, "DELETE", path, NULL, &r);
    is_int(r.status, 204, "DELETE (JSON client): 204");
    ts_resp_free(&r);
    ts_json(&s, "GET", path, NULL, &r);
    is_int(r.status, 404, "deleted session: 404");
    ts_resp_free(&r);
    ts_json(&s, "POST", steps, "{\"steps\":1}", &r);
    is_int(r.status, 404, "steps on a deleted session: 404");
    ts_resp_free(&r);

    free(bpb);
    tb_free(&b);
    tb_free(&nb);
    int status = -1;
    ts_server_stop(&s, SIGTERM, &status);
    is_int(status, 0, "SIGTERM: exit 0");
    return done_testing();
}
