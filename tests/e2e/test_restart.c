/* Shutdown and restart: SIGTERM drains, writes every session to --state-dir and exits 0;
 * the next start restores them and they continue exactly where they were (outputs equal an
 * uninterrupted engine run; seq retries still answer). Periodic checkpoints survive a
 * kill -9. */
#include <curl/curl.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../support/batchgen.h"
#include "../support/harness.h"
#include "../tap.h"

#define NS 5
#define NB 6

static char ids[NS][80];
static tb_batch in[NS][NB];

static int post(ts_server *s, int i, int k, tb_result *out, ts_resp *keep) {
    char path[160];
    snprintf(path, sizeof path, "/v1/sessions/%s/steps", ids[i]);
    size_t len;
    uint8_t *pb = tb_pb(&in[i][k], k + 1, &len);
    ts_resp r;
    ts_http(s, "POST", path, "application/x-protobuf", pb, len, "application/x-protobuf", &r);
    free(pb);
    int rc = r.status == 200 && tb_result_pb(r.body, r.len, out) == 0 ? 0 : -1;
    if (keep)
        *keep = r;
    else
        ts_resp_free(&r);
    return rc;
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".session") && e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

int main(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    char dir[256], state[256], path[600], err[256];
    if (ts_tmpdir(dir, sizeof dir, "models") || ts_make_model(dir, "tiny", "--seed 9") ||
        ts_tmpdir(state, sizeof state, "state"))
        return 1;
    const char *extra[] = {"--state-dir",           state, "--workers", "2",
                           "--checkpoint-interval", "0",   NULL};
    ts_server s;
    if (!ok(ts_server_start(&s, dir, extra) == 0, "server 1 starts")) return done_testing();
    uint64_t rng = 77;
    tb_result got[NS][NB];
    int fails = 0;
    for (int i = 0; i < NS; i++) {
        fails += ts_open_session(&s, "tiny", ids[i], sizeof ids[i]) != 0;
        for (int k = 0; k < NB; k++)
            tb_random(&in[i][k], &rng, 10, 20, 0.3);
    }
    ts_resp before; /* session 0's answer to seq 3, to compare a retry after the restart */
    for (int i = 0; i < NS; i++)
        for (int k = 0; k < 3; k++)
            fails += post(&s, i, k, &got[i][k], i == 0 && k == 2 ? &before : NULL) != 0;
    is_int(fails, 0, "5 sessions, 3 batches each before the restart");
    char gone[80];
    ts_open_session(&s, "tiny", gone, sizeof gone);
    snprintf(path, sizeof path, "/v1/sessions/%s", gone);
    ts_resp r;
    ts_json(&s, "DELETE", path, NULL, &r);
    is_int(r.status, 204, "a sixth session is deleted before the restart");
    ts_resp_free(&r);
    snprintf(path, sizeof path, "/v1/sessions/%s/events", ids[1]);
    ts_sse *ev = ts_sse_open(&s, path, NULL);
    ok(ev != NULL, "a subscriber on session 1");

    int status = -1;
    ts_server_stop(&s, SIGTERM, &status);
    is_int(status, 0, "SIGTERM: exit 0");
    ok(ev && ts_sse_wait(ev, "\"reason\":\"shutdown\"", 1, 10000) == 1,
       "the subscriber got end (shutdown)");
    ts_sse_close(ev);
    is_int(count_files(state), NS, "one state file per open session");

    if (!ok(ts_server_start(&s, dir, extra) == 0, "server 2 starts on the same state dir"))
        return done_testing();
    fails = 0;
    for (int i = 0; i < NS; i++) {
        snprintf(path, sizeof path, "/v1/sessions/%s", ids[i]);
        ts_json(&s, "GET", path, NULL, &r);
        fails +=
            !(r.status == 200 && strstr(r.body, "\"t\":30") && strstr(r.body, "\"last_seq\":3"));
        ts_resp_free(&r);
    }
    is_int(fails, 0, "every session is back with t = 30 and last_seq = 3");
    snprintf(path, sizeof path, "/v1/sessions/%s", gone);
    ts_json(&s, "GET", path, NULL, &r);
    is_int(r.status, 404, "the deleted session stays deleted");
    ts_resp_free(&r);
    /* the stored answer survives: a retry of seq 3 returns it, without stepping */
    snprintf(path, sizeof path, "/v1/sessions/%s/steps", ids[0]);
    size_t len;
    uint8_t *pb = tb_pb(&in[0][2], 3, &len);
    ts_http(&s, "POST", path, "application/x-protobuf", pb, len, "application/x-protobuf", &r);
    free(pb);
    ok(r.status == 200 && r.len == before.len && !memcmp(r.body, before.body, r.len),
       "a retry of seq 3 after the restart returns the stored answer");
    ts_resp_free(&r);
    ts_resp_free(&before);
    for (int i = 0; i < NS; i++)
        for (int k = 3; k < NB; k++)
            fails += post(&s, i, k, &got[i][k], NULL) != 0;
    is_int(fails, 0, "3 more batches each after the restart");

    snprintf(path, sizeof path, "%s/tiny.spk", dir);
    spk_model *m = NULL;
    ok(spk_model_load_file(path, &m, err, sizeof err) == 0, "engine loads the model");
    spk_state *st = spk_state_create(m);
    spk_scratch *sc = spk_scratch_create(m);
    int bad = 0;
    size_t spikes = 0;
    for (int i = 0; i < NS; i++) {
        spk_state_reset(st);
        for (int k = 0; k < NB; k++) {
            tb_result ref;
            char why[256];
            tb_engine_step(st, sc, &in[i][k], &ref);
            spikes += ref.n;
            got[i][k].has_seq = 0;
            if (!tb_result_eq(&got[i][k], &ref, 0.0, why, sizeof why) && bad++ < 5)
                diag("session %d batch %d: %s", i, k, why);
            tb_result_free(&ref);
            tb_result_free(&got[i][k]);
        }
    }
    ok(spikes > 0, "the model spikes (the comparison is not vacuous)");
    is_int(bad, 0, "outputs across the restart equal an uninterrupted engine run");
    ts_server_stop(&s, SIGTERM, &status);
    is_int(status, 0, "server 2: SIGTERM, exit 0");

    /* checkpoints: a kill -9 loses at most what came after the last checkpoint */
    const char *cp[] = {"--state-dir", state, "--checkpoint-interval", "1", NULL};
    ok(ts_server_start(&s, dir, cp) == 0, "server 3 starts with --checkpoint-interval 1");
    snprintf(path, sizeof path, "%s/%s.session", state, ids[3]);
    struct stat st0, st1;
    stat(path, &st0);
    tb_batch extra_b;
    tb_random(&extra_b, &rng, 5, 20, 0.3);
    char url[160];
    snprintf(url, sizeof url, "/v1/sessions/%s/steps", ids[3]);
    /* asked for the readout only: a retry after the restart must answer the same fields */
    char *js0 = tb_json(&extra_b, 7), *js = malloc(strlen(js0) + 32);
    sprintf(js, "{\"outputs\":[\"readout\"],%s", js0 + 1);
    free(js0);
    ts_resp first;
    ts_json(&s, "POST", url, js, &first);
    is_int(first.status, 200, "one more batch on session 3 (t = 65), outputs: readout");
    ok(first.body && strstr(first.body, "\"readout\"") && !strstr(first.body, "\"spikes\""),
       "the answer has the readout and no spikes");
    int changed = 0;
    for (int i = 0; i < 100 && !changed; i++) { /* up to 10 s for the next checkpoint */
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
        if (stat(path, &st1) == 0 && (st1.st_mtim.tv_sec != st0.st_mtim.tv_sec ||
                                      st1.st_mtim.tv_nsec != st0.st_mtim.tv_nsec))
            changed = 1;
    }
    ok(changed, "the session file was rewritten by a checkpoint");
    ts_server_stop(&s, SIGKILL, &status);
    ok(ts_server_start(&s, dir, extra) == 0, "server 4 starts after kill -9");
    snprintf(url, sizeof url, "/v1/sessions/%s", ids[3]);
    ts_json(&s, "GET", url, NULL, &r);
    ok(r.status == 200 && strstr(r.body, "\"t\":65") && strstr(r.body, "\"last_seq\":7"),
       "session 3 comes back from its checkpoint (t = 65, last_seq = 7)");
    ts_resp_free(&r);
    snprintf(url, sizeof url, "/v1/sessions/%s/steps", ids[3]);
    ts_json(&s, "POST", url, js, &r);
    ok(r.status == 200 && r.len == first.len && !memcmp(r.body, first.body, r.len),
       "a JSON retry of seq 7 after kill -9 returns the stored answer with the same fields");
    if (r.status == 200 && (r.len != first.len || memcmp(r.body, first.body, r.len)))
        diag("before: %s\nafter:  %s", first.body, r.body);
    ts_resp_free(&r);
    ts_resp_free(&first);
    free(js);
    ts_server_stop(&s, SIGTERM, &status);
    is_int(status, 0, "server 4: SIGTERM, exit 0");
    tb_free(&extra_b);
    for (int i = 0; i < NS; i++)
        for (int k = 0; k < NB; k++)
            tb_free(&in[i][k]);
    spk_state_free(st);
    spk_scratch_free(sc);
    spk_model_free(m);
    return done_testing();
}
