/* 32 client threads drive 200 sessions at once (each session's batches in order, sessions
 * interleaved across threads and workers). Every session's outputs must equal a
 * single-threaded engine run of the same inputs: no cross-talk, no reordering, also when
 * the worker steps several sessions together (spk_step_many). */
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/batchgen.h"
#include "../support/harness.h"
#include "../tap.h"

#define THREADS 32
#define SESSIONS 200
#define BATCHES 6
#define STEPS 8

static ts_server srv;
static char ids[SESSIONS][80];
static tb_batch in[SESSIONS][BATCHES];
static tb_result got[SESSIONS][BATCHES];
static int failures;

static void *client(void *arg) {
    int t = (int)(intptr_t)arg;
    for (int k = 0; k < BATCHES; k++)
        for (int s = t; s < SESSIONS; s += THREADS) {
            char path[160];
            snprintf(path, sizeof path, "/v1/sessions/%s/steps", ids[s]);
            size_t len;
            uint8_t *pb = tb_pb(&in[s][k], k + 1, &len);
            ts_resp r;
            int rc = ts_http(&srv, "POST", path, "application/x-protobuf", pb, len,
                             "application/x-protobuf", &r);
            free(pb);
            if (rc || r.status != 200 || tb_result_pb(r.body, r.len, &got[s][k]) != 0)
                __atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED);
            ts_resp_free(&r);
        }
    return NULL;
}

int main(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    char dir[256], path[300], err[256];
    if (ts_tmpdir(dir, sizeof dir, "models") || ts_make_model(dir, "tiny", "--seed 11")) return 1;
    const char *extra[] = {"--workers", "2", "--http-threads", "2", NULL};
    if (!ok(ts_server_start(&srv, dir, extra) == 0, "server starts")) return done_testing();
    int opened = 0;
    for (int s = 0; s < SESSIONS; s++) {
        opened += ts_open_session(&srv, "tiny", ids[s], sizeof ids[s]) == 0;
        uint64_t rng = 1000 + (uint64_t)s;
        for (int k = 0; k < BATCHES; k++)
            tb_random(&in[s][k], &rng, STEPS, 20, 0.25);
    }
    is_int(opened, SESSIONS, "200 sessions open");
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        pthread_create(&th[t], NULL, client, (void *)(intptr_t)t);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    is_int(failures, 0, "every request answered 200 with a step result");

    snprintf(path, sizeof path, "%s/tiny.spk", dir);
    spk_model *m = NULL;
    ok(spk_model_load_file(path, &m, err, sizeof err) == 0, "engine loads the model");
    spk_state *st = spk_state_create(m);
    spk_scratch *sc = spk_scratch_create(m);
    int bad = 0;
    size_t spikes = 0;
    for (int s = 0; s < SESSIONS; s++) {
        spk_state_reset(st);
        for (int k = 0; k < BATCHES; k++) {
            tb_result ref;
            char why[256];
            tb_engine_step(st, sc, &in[s][k], &ref);
            spikes += ref.n;
            got[s][k].has_seq = 0;
            if (!tb_result_eq(&got[s][k], &ref, 0.0, why, sizeof why)) {
                if (bad++ < 5) diag("session %d batch %d: %s", s, k, why);
            }
            tb_result_free(&ref);
            tb_result_free(&got[s][k]);
            tb_free(&in[s][k]);
        }
    }
    diag("%zu reference output spikes in %d batches", spikes, SESSIONS * BATCHES);
    ok(spikes > 0, "the model spikes (the comparison is not vacuous)");
    is_int(bad, 0, "every session's outputs equal its single-threaded engine run");

    ts_resp r;
    ts_http(&srv, "GET", "/metrics", NULL, NULL, 0, NULL, &r);
    double gsum = ts_metric(r.body, "spikeserve_step_group_sessions_sum"),
           gcount = ts_metric(r.body, "spikeserve_step_group_sessions_count");
    diag("engine calls: %.0f sessions in %.0f calls", gsum, gcount);
    is_int(ts_metric(r.body, "spikeserve_batches_total"), SESSIONS * BATCHES,
           "metrics count every batch");
    is_int(gsum, SESSIONS * BATCHES, "every batch went through an engine call");
    ts_resp_free(&r);
    int status = -1;
    ts_server_stop(&srv, SIGTERM, &status);
    is_int(status, 0, "SIGTERM: exit 0");
    spk_state_free(st);
    spk_scratch_free(sc);
    spk_model_free(m);
    return done_testing();
}
