/* --model-control poll under load (issue 16): while client threads open sessions, step,
 * close and run stateless batches without pause, the polled model directory changes: a
 * version's file is replaced (reload), a new version appears (load), a corrupt file is
 * dropped in and a good one is overwritten with a corrupt one (both refused, logged,
 * counted; the old versions keep serving), and a version's file is removed (unload; a
 * session pinned to it goes on). Not one request fails. */
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../support/harness.h"
#include "../tap.h"

#define CLIENTS 4

static ts_server srv;
static int stop;           /* atomic */
static long total, failed; /* atomic */
static char first_failure[512];
static pthread_mutex_t fmu = PTHREAD_MUTEX_INITIALIZER;

static void count(const char *what, const ts_resp *r, long want) {
    __atomic_fetch_add(&total, 1, __ATOMIC_RELAXED);
    if (r->status == want) return;
    if (__atomic_fetch_add(&failed, 1, __ATOMIC_RELAXED) == 0) {
        pthread_mutex_lock(&fmu);
        snprintf(first_failure, sizeof first_failure, "%s: %ld %.400s", what, r->status,
                 r->body ? r->body : "");
        pthread_mutex_unlock(&fmu);
    }
}

static void *client(void *arg) {
    int k = (int)(long)arg;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        ts_resp r;
        if (k == 0) { /* stateless, v1 and OIP */
            ts_json(&srv, "POST", "/v1/models/tiny/infer", "{\"steps\":5,\"events\":[[0,1],[1,2]]}",
                    &r);
            count("infer", &r, 200);
            ts_resp_free(&r);
            ts_json(&srv, "POST", "/v2/models/tiny/infer",
                    "{\"inputs\":[{\"name\":\"events\",\"datatype\":\"FP32\",\"shape\":[1,3],"
                    "\"data\":[0,3,1]}],\"parameters\":{\"steps\":3}}",
                    &r);
            count("oip infer", &r, 200);
            ts_resp_free(&r);
            continue;
        }
        ts_json(&srv, "POST", "/v1/models/tiny/sessions", "{}", &r);
        count("open", &r, 201);
        const char *p = r.body ? strstr(r.body, "\"session_id\":\"") : NULL;
        char id[80] = "", path[200];
        if (p) snprintf(id, sizeof id, "%.*s", (int)strcspn(p + 14, "\""), p + 14);
        ts_resp_free(&r);
        if (!id[0]) continue;
        for (int i = 0; i < 3; i++) {
            snprintf(path, sizeof path, "/v1/sessions/%s/steps", id);
            ts_json(&srv, "POST", path, "{\"steps\":4,\"events\":[[0,1],[2,5],[3,7]]}", &r);
            count("step", &r, 200);
            ts_resp_free(&r);
        }
        snprintf(path, sizeof path, "/v1/sessions/%s", id);
        ts_json(&srv, "GET", path, NULL, &r);
        count("info", &r, 200);
        ts_resp_free(&r);
        ts_json(&srv, "DELETE", path, NULL, &r);
        count("close", &r, 204);
        ts_resp_free(&r);
    }
    return NULL;
}

static double metric(const char *name) {
    ts_resp r;
    if (ts_http(&srv, "GET", "/metrics", NULL, NULL, 0, NULL, &r) != 0) return -1;
    double v = ts_metric(r.body, name);
    ts_resp_free(&r);
    return v;
}

/* Wait (up to 20 s) until metric name reaches want. */
static int wait_metric(const char *name, double want) {
    for (int i = 0; i < 200; i++) {
        if (metric(name) >= want) return 1;
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
    }
    diag("%s stayed at %g (want %g)", name, metric(name), want);
    return 0;
}

static long get(const char *path, const char *needle) {
    ts_resp r;
    if (ts_json(&srv, "GET", path, NULL, &r) != 0) return -1;
    long st = r.status;
    if (needle && (!r.body || !strstr(r.body, needle))) st = -st;
    ts_resp_free(&r);
    return st;
}

/* A model made in stage, renamed into dir as rel (an atomic replacement). */
static int put_model(const char *stage, const char *dir, const char *rel, const char *args) {
    char from[400], to[400];
    if (ts_make_model(stage, "m", args) != 0) return -1;
    snprintf(from, sizeof from, "%s/m.spk", stage);
    snprintf(to, sizeof to, "%s/%s", dir, rel);
    return rename(from, to);
}

/* A truncated copy of dir/from renamed into dir/to. */
static int put_corrupt(const char *stage, const char *dir, const char *from, const char *to) {
    char a[400], b[400], c[400];
    snprintf(a, sizeof a, "%s/%s", dir, from);
    snprintf(b, sizeof b, "%s/bad.spk", stage);
    snprintf(c, sizeof c, "%s/%s", dir, to);
    FILE *f = fopen(a, "rb");
    if (!f) return -1;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    FILE *g = fopen(b, "wb");
    if (!g) return -1;
    int rc = fwrite(buf, 1, n / 3, g) == n / 3 ? 0 : -1;
    if (fclose(g) != 0) rc = -1;
    return rc == 0 ? rename(b, c) : -1;
}

static int log_has(const char *needle) {
    FILE *f = fopen(srv.log, "r");
    if (!f) return 0;
    char line[2048];
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

int main(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    char dir[256], stage[256], sub[300];
    if (ts_tmpdir(dir, sizeof dir, "reload") || ts_tmpdir(stage, sizeof stage, "stage")) return 1;
    snprintf(sub, sizeof sub, "%s/tiny", dir);
    mkdir(sub, 0700);
    if (put_model(stage, dir, "tiny/1.spk", "--name tiny --seed 31") != 0) return 1;
    const char *extra[] = {"--model-control",
                           "poll",
                           "--model-poll-seconds",
                           "1",
                           "--workers",
                           "2",
                           "--access-log",
                           "0",
                           NULL};
    if (!ok(ts_server_start(&srv, dir, extra) == 0, "server starts (--model-control poll)"))
        return done_testing();

    /* a session on version 1 that outlives its file */
    ts_resp r;
    ts_json(&srv, "POST", "/v1/models/tiny/sessions", "{\"version\":1}", &r);
    const char *p = r.body ? strstr(r.body, "\"session_id\":\"") : NULL;
    char pinned[80] = "", path[400];
    if (p) snprintf(pinned, sizeof pinned, "%.*s", (int)strcspn(p + 14, "\""), p + 14);
    ok(r.status == 201 && pinned[0], "a session pinned to version 1");
    ts_resp_free(&r);

    pthread_t th[CLIENTS];
    for (long k = 0; k < CLIENTS; k++)
        pthread_create(&th[k], NULL, client, (void *)k);
    sleep(1);

    ok(put_model(stage, dir, "tiny/1.spk", "--name tiny --seed 32") == 0 &&
           wait_metric("spikeserve_model_loads_total", 2),
       "tiny/1.spk replaced under load: reloaded");
    ok(log_has("model tiny version 1 reloaded"), "the log says so");
    ok(put_model(stage, dir, "tiny/2.spk", "--name tiny --seed 33") == 0 &&
           wait_metric("spikeserve_model_loads_total", 3),
       "tiny/2.spk added: loaded");
    ok(get("/v1/models/tiny", "\"version\":2") == 200, "the latest is 2");

    ok(put_corrupt(stage, dir, "tiny/2.spk", "tiny/3.spk") == 0 &&
           wait_metric("spikeserve_model_load_failures_total", 1),
       "a truncated tiny/3.spk dropped in: refused, counted");
    ok(log_has("tiny/3.spk"), "the refusal is logged, naming the file");
    ok(get("/v1/models/tiny", "\"version\":2") == 200, "version 2 stays the latest");
    ok(put_corrupt(stage, dir, "tiny/2.spk", "tiny/2.spk") == 0 &&
           wait_metric("spikeserve_model_load_failures_total", 2),
       "tiny/2.spk overwritten with a truncated copy: refused, counted");
    ok(log_has("keeps serving"), "the log says the old version keeps serving");
    ok(get("/v1/models/tiny/versions/2", "\"version\":2") == 200, "version 2 still serves");
    sleep(2); /* two more scans: a refused file is not tried (nor counted) again */
    ok(metric("spikeserve_model_load_failures_total") == 2, "an unchanged bad file is not retried");
    ts_json(&srv, "POST", "/v2/repository/index", NULL, &r);
    ok(r.status == 200 && r.body &&
           strstr(r.body, "{\"name\":\"tiny\",\"version\":\"2\",\"state\":\"READY\"") &&
           strstr(r.body, "\"version\":\"3\",\"state\":\"UNAVAILABLE\""),
       "index: version 2 READY, version 3 UNAVAILABLE");
    ts_resp_free(&r);

    snprintf(path, sizeof path, "%s/tiny/1.spk", dir);
    ok(unlink(path) == 0 && wait_metric("spikeserve_model_unloads_total", 1),
       "tiny/1.spk removed: version 1 unloaded");
    ok(get("/v1/models/tiny/versions/1", NULL) == 404, "version 1 is not served");
    snprintf(path, sizeof path, "/v1/sessions/%s/steps", pinned);
    ts_json(&srv, "POST", path, "{\"steps\":3,\"events\":[[0,1]]}", &r);
    ok(r.status == 200, "the session pinned to version 1 still steps (%ld)", r.status);
    ts_resp_free(&r);
    snprintf(path, sizeof path, "/v1/sessions/%s", pinned);
    ok(get(path, "\"model_version\":1") == 200, "and says it runs version 1");
    sleep(1);

    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (int k = 0; k < CLIENTS; k++)
        pthread_join(th[k], NULL);
    long t = __atomic_load_n(&total, __ATOMIC_RELAXED),
         f = __atomic_load_n(&failed, __ATOMIC_RELAXED);
    ok(t > 100, "the clients made %ld requests meanwhile", t);
    ok(f == 0, "none failed (%ld failed%s%s)", f, f ? "; first: " : "", f ? first_failure : "");
    ok(metric("spikeserve_model_sessions_open{model=\"tiny\",version=\"2\"}") == 0,
       "every client session on version 2 is closed (the gauge is back to 0)");

    int status = -1;
    ts_server_stop(&srv, SIGTERM, &status);
    is_int(status, 0, "SIGTERM: exit 0");
    return done_testing();
}
