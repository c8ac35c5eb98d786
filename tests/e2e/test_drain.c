/* SIGTERM drains in order: batches already queued still run and are answered (200), then
 * the sessions are written, and the process exits 0; a restart sees every queued batch
 * applied. */
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../support/harness.h"
#include "../tap.h"

#define N 6
static ts_server s;
static char ids[N][80];
static long codes[N];

static void *client(void *arg) {
    int i = (int)(intptr_t)arg;
    char path[160];
    snprintf(path, sizeof path, "/v1/sessions/%.79s/steps", ids[i]);
    ts_resp r;
    ts_json(&s, "POST", path, "{\"seq\":1,\"steps\":150000,\"events\":[[0,1],[9,2]]}", &r);
    codes[i] = r.status;
    ts_resp_free(&r);
    return NULL;
}

int main(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    char dir[256], state[256];
    if (ts_tmpdir(dir, sizeof dir, "models") || ts_make_model(dir, "tiny", NULL) ||
        ts_tmpdir(state, sizeof state, "state"))
        return 1;
    const char *extra[] = {"--workers", "1", "--max-steps", "150000", "--state-dir", state, NULL};
    if (!ok(ts_server_start(&s, dir, extra) == 0, "server starts (1 worker)"))
        return done_testing();
    for (int i = 0; i < N; i++)
        ts_open_session(&s, "tiny", ids[i], sizeof ids[i]);
    pthread_t th[N];
    for (int i = 0; i < N; i++)
        pthread_create(&th[i], NULL, client, (void *)(intptr_t)i);
    /* wait until the worker has them all (running or queued) */
    double depth = 0;
    for (int k = 0; k < 2000 && depth < N; k++) {
        ts_resp r;
        ts_http(&s, "GET", "/metrics", NULL, NULL, 0, NULL, &r);
        depth = ts_metric(r.body, "spikeserve_worker_queue_depth{worker=\"0\"}");
        ts_resp_free(&r);
        struct timespec t = {0, 2000000L};
        nanosleep(&t, NULL);
    }
    diag("jobs on the worker when SIGTERM was sent: %.0f", depth);
    ok(depth >= 2, "several batches were queued behind a running one");
    int status = -1;
    ts_server_stop(&s, SIGTERM, &status);
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    int all200 = 1;
    for (int i = 0; i < N; i++)
        all200 &= codes[i] == 200;
    ok(all200, "every batch that was queued before SIGTERM was run and answered 200");
    is_int(status, 0, "exit 0 after draining");
    ok(ts_server_start(&s, dir, extra) == 0, "restart");
    int at = 0;
    for (int i = 0; i < N; i++) {
        char path[160];
        snprintf(path, sizeof path, "/v1/sessions/%.79s", ids[i]);
        ts_resp r;
        ts_json(&s, "GET", path, NULL, &r);
        at += r.status == 200 && strstr(r.body, "\"t\":150000") && strstr(r.body, "\"last_seq\":1");
        ts_resp_free(&r);
    }
    is_int(at, N, "after the restart every session has its queued batch applied (t = 150000)");
    ts_server_stop(&s, SIGTERM, &status);
    is_int(status, 0, "second SIGTERM: exit 0");
    return done_testing();
}
