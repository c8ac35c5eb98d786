/* seq makes retries safe: last_seq + 1 runs; a repeat of last_seq returns the stored
 * answer (in either format) without stepping; a gap or an old seq is 409. */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/batchgen.h"
#include "../support/harness.h"
#include "../tap.h"

static ts_server s;
static char sid[80], steps_path[160], info_path[160];

static long post_json(const tb_batch *b, int64_t seq, ts_resp *r) {
    char *js = tb_json(b, seq);
    ts_json(&s, "POST", steps_path, js, r);
    free(js);
    return r->status;
}

static long long session_t(void) {
    ts_resp r;
    ts_json(&s, "GET", info_path, NULL, &r);
    const char *p = strstr(r.body, "\"t\":");
    long long t = p ? atoll(p + 4) : -1;
    ts_resp_free(&r);
    return t;
}

int main(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    char dir[256];
    if (ts_tmpdir(dir, sizeof dir, "models") || ts_make_model(dir, "tiny", "--seed 3")) return 1;
    if (!ok(ts_server_start(&s, dir, NULL) == 0, "server starts")) return done_testing();
    ok(ts_open_session(&s, "tiny", sid, sizeof sid) == 0, "open a session");
    snprintf(steps_path, sizeof steps_path, "/v1/sessions/%s/steps", sid);
    snprintf(info_path, sizeof info_path, "/v1/sessions/%s", sid);
    uint64_t rng = 5;
    tb_batch b1, b2, b3, other;
    tb_random(&b1, &rng, 8, 20, 0.4);
    tb_random(&b2, &rng, 8, 20, 0.4);
    tb_random(&b3, &rng, 8, 20, 0.4);
    tb_random(&other, &rng, 8, 20, 0.9);

    ts_resp r1, r;
    is_int(post_json(&b1, 1, &r1), 200, "seq 1 runs");
    is_int(session_t(), 8, "t = 8");
    is_int(post_json(&b1, 1, &r), 200, "retry of seq 1: 200");
    ok(r.len == r1.len && !memcmp(r.body, r1.body, r.len),
       "retry returns the stored answer byte for byte");
    ts_resp_free(&r);
    is_int(session_t(), 8, "the retry did not step (t still 8)");
    is_int(post_json(&other, 1, &r), 200, "seq 1 again with another body: 200");
    ok(r.len == r1.len && !memcmp(r.body, r1.body, r.len), "still the stored answer of seq 1");
    ts_resp_free(&r);

    /* the stored answer in protobuf */
    size_t len;
    uint8_t *pb = tb_pb(&b1, 1, &len);
    ts_http(&s, "POST", steps_path, "application/x-protobuf", pb, len, "application/x-protobuf",
            &r);
    free(pb);
    tb_result a, b;
    char why[256];
    is_int(r.status, 200, "protobuf retry of seq 1: 200");
    ok(tb_result_pb(r.body, r.len, &a) == 0 && tb_result_json(r1.body, &b) == 0 &&
           tb_result_eq(&a, &b, 1e-6, why, sizeof why) && a.seq == 1,
       "protobuf retry carries the same answer");
    tb_result_free(&a);
    tb_result_free(&b);
    ts_resp_free(&r);
    is_int(session_t(), 8, "t still 8");

    is_int(post_json(&b2, 3, &r), 409, "a gap (seq 3 after 1) is 409");
    ok(strstr(r.body, "\"seq_conflict\"") && strstr(r.body, "expected 2"),
       "409 says what was expected");
    ts_resp_free(&r);
    is_int(post_json(&b2, 0, &r), 409, "an old seq (0) is 409");
    ts_resp_free(&r);
    is_int(session_t(), 8, "conflicts did not step");

    ts_resp r2;
    is_int(post_json(&b2, 2, &r2), 200, "seq 2 runs");
    ok(strstr(r2.body, "\"t0\":8") != NULL, "seq 2 starts at t0 = 8");
    is_int(post_json(&b3, -1, &r), 200, "a batch without seq just runs");
    ts_resp_free(&r);
    is_int(session_t(), 24, "t = 24");
    is_int(post_json(&b2, 2, &r), 200, "retry of seq 2 after an unnumbered batch");
    ok(r.len == r2.len && !memcmp(r.body, r2.body, r.len), "still seq 2's stored answer");
    ts_resp_free(&r);
    is_int(post_json(&b1, 1, &r), 409, "seq 1 is now old: 409");
    ts_resp_free(&r);

    /* stored in protobuf, retried in JSON */
    pb = tb_pb(&b3, 3, &len);
    ts_http(&s, "POST", steps_path, "application/x-protobuf", pb, len, "application/x-protobuf",
            &r);
    free(pb);
    is_int(r.status, 200, "seq 3 in protobuf runs");
    ts_resp rj;
    is_int(post_json(&b3, 3, &rj), 200, "retry of seq 3 in JSON");
    ok(tb_result_pb(r.body, r.len, &a) == 0 && tb_result_json(rj.body, &b) == 0 &&
           tb_result_eq(&a, &b, 1e-6, why, sizeof why) && b.seq == 3 && b.t0 == 24,
       "the JSON retry re-encodes the stored protobuf answer");
    tb_result_free(&a);
    tb_result_free(&b);
    ts_resp_free(&r);
    ts_resp_free(&rj);
    is_int(session_t(), 32, "t = 32 (seq 3 ran once)");

    /* reset starts seq over: seq 1 runs again (not the stored answer of the old seq 1) */
    char reset[200];
    snprintf(reset, sizeof reset, "/v1/sessions/%s/reset", sid);
    ts_json(&s, "POST", reset, NULL, &r);
    ok(r.status == 200 && strstr(r.body, "\"last_seq\":0"), "reset: last_seq back to 0");
    ts_resp_free(&r);
    is_int(post_json(&b1, 3, &r), 409, "after a reset seq 3 is a gap");
    ts_resp_free(&r);
    is_int(post_json(&b2, 1, &r), 200, "after a reset seq 1 runs");
    ok(strstr(r.body, "\"t0\":0") != NULL, "from t0 = 0");
    ts_resp_free(&r);
    is_int(session_t(), 8, "t = 8");

    ts_http(&s, "GET", "/metrics", NULL, NULL, 0, NULL, &r);
    is_int(ts_metric(r.body, "spikeserve_batches_total"), 5, "5 batches stepped in all");
    ts_resp_free(&r);
    ts_resp_free(&r1);
    ts_resp_free(&r2);
    int status = -1;
    ts_server_stop(&s, SIGTERM, &status);
    is_int(status, 0, "SIGTERM: exit 0");
    tb_free(&b1);
    tb_free(&b2);
    tb_free(&b3);
    tb_free(&other);
    return done_testing();
}
