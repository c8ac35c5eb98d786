/* Continuity: two batches of 50 steps give the same outputs as one batch of 100, and both
 * equal the engine run directly on the same model file (protobuf answers, exact floats). */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/batchgen.h"
#include "../support/harness.h"
#include "../tap.h"

static int post_pb(ts_server *s, const char *sid, const tb_batch *b, int64_t seq, tb_result *out) {
    char path[160];
    snprintf(path, sizeof path, "/v1/sessions/%s/steps", sid);
    size_t len;
    uint8_t *pb = tb_pb(b, seq, &len);
    ts_resp r;
    int rc =
        ts_http(s, "POST", path, "application/x-protobuf", pb, len, "application/x-protobuf", &r);
    free(pb);
    if (rc || r.status != 200 || tb_result_pb(r.body, r.len, out) != 0) {
        printf("# steps: status %ld\n", r.status);
        rc = -1;
    }
    ts_resp_free(&r);
    return rc;
}

int main(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    char dir[256], path[300];
    if (ts_tmpdir(dir, sizeof dir, "models") || ts_make_model(dir, "tiny", "--seed 7")) return 1;
    ts_server s;
    const char *extra[] = {"--workers", "2", NULL};
    if (!ok(ts_server_start(&s, dir, extra) == 0, "server starts")) return done_testing();

    uint64_t rng = 42;
    tb_batch all, h1, h2;
    tb_random(&all, &rng, 100, 20, 0.3);
    /* split at step 50 */
    size_t cut = 0;
    while (cut < all.n && all.ev[cut].step < 50)
        cut++;
    h1 = (tb_batch){50, all.ev, cut};
    spk_event *ev2 = malloc((all.n - cut + 1) * sizeof *ev2);
    for (size_t i = cut; i < all.n; i++)
        ev2[i - cut] = (spk_event){all.ev[i].step - 50, all.ev[i].input, all.ev[i].value};
    h2 = (tb_batch){50, ev2, all.n - cut};

    char a[80], b[80];
    ok(ts_open_session(&s, "tiny", a, sizeof a) == 0, "open session A");
    ok(ts_open_session(&s, "tiny", b, sizeof b) == 0, "open session B");
    tb_result ra1, ra2, rb, ref;
    ok(post_pb(&s, a, &h1, 1, &ra1) == 0, "A: steps 0..49");
    ok(post_pb(&s, a, &h2, 2, &ra2) == 0, "A: steps 50..99");
    ok(post_pb(&s, b, &all, 1, &rb) == 0, "B: steps 0..99 in one batch");

    snprintf(path, sizeof path, "%s/tiny.spk", dir);
    spk_model *m = NULL;
    char err[256];
    ok(spk_model_load_file(path, &m, err, sizeof err) == 0, "engine loads the model");
    spk_state *st = spk_state_create(m);
    spk_scratch *sc = spk_scratch_create(m);
    ok(tb_engine_step(st, sc, &all, &ref) == 0, "engine runs 100 steps directly");
    diag("reference: %zu output spikes over 100 steps, %zu input events", ref.n, all.n);
    ok(ref.n > 0, "the model spikes on this input (the comparison is not vacuous)");

    char why[256] = "";
    rb.has_seq = 0;
    if (!ok(tb_result_eq(&rb, &ref, 0.0, why, sizeof why), "1x100 == engine")) diag("%s", why);
    /* glue A's two halves into one 100-step result */
    tb_result glued = ra2;
    glued.t0 = 0;
    glued.steps = 100;
    glued.n = ra1.n + ra2.n;
    glued.sp = malloc((glued.n + 1) * sizeof *glued.sp);
    memcpy(glued.sp, ra1.sp, ra1.n * sizeof *glued.sp);
    for (size_t i = 0; i < ra2.n; i++) {
        glued.sp[ra1.n + i] = ra2.sp[i];
        glued.sp[ra1.n + i].step += 50;
    }
    is_int(ra2.t0, 50, "second half starts at t0 = 50");
    if (!ok(tb_result_eq(&glued, &ref, 0.0, why, sizeof why), "2x50 == engine")) diag("%s", why);
    if (!ok(tb_result_eq(&glued, &rb, 0.0, why, sizeof why), "2x50 == 1x100")) diag("%s", why);

    /* the same in JSON on a third session: equal within float printing */
    char c[80];
    ok(ts_open_session(&s, "tiny", c, sizeof c) == 0, "open session C");
    char *js = tb_json(&all, -1);
    snprintf(path, sizeof path, "/v1/sessions/%s/steps", c);
    ts_resp r;
    ts_json(&s, "POST", path, js, &r);
    free(js);
    tb_result rc;
    is_int(r.status, 200, "JSON steps: 200");
    ok(tb_result_json(r.body, &rc) == 0, "JSON result parses");
    if (!ok(tb_result_eq(&rc, &ref, 1e-6, why, sizeof why), "JSON 1x100 == engine"))
        diag("%s", why);
    ts_resp_free(&r);

    snprintf(path, sizeof path, "/v1/sessions/%s", a);
    ts_json(&s, "GET", path, NULL, &r);
    ok(strstr(r.body, "\"t\":100") != NULL, "session A reports t = 100");
    ok(strstr(r.body, "\"last_seq\":2") != NULL, "session A reports last_seq = 2");
    ts_resp_free(&r);

    int status = -1;
    ts_server_stop(&s, SIGTERM, &status);
    is_int(status, 0, "SIGTERM: exit 0");
    tb_result_free(&ra1);
    tb_result_free(&ra2);
    tb_result_free(&rb);
    tb_result_free(&ref);
    tb_result_free(&rc);
    free(glued.sp);
    free(ev2);
    tb_free(&all);
    spk_state_free(st);
    spk_scratch_free(sc);
    spk_model_free(m);
    return done_testing();
}
