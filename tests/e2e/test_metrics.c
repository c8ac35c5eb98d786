/* /metrics is valid Prometheus text (promtool check metrics) and counts what happened:
 * requests by route and status, latency histogram, sessions, batches, steps, input
 * events, output spikes, queue depth per worker, sessions per engine call. */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"
#include "../tap.h"

int main(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    char dir[256], path[256];
    if (ts_tmpdir(dir, sizeof dir, "models") || ts_make_model(dir, "tiny", NULL)) return 1;
    ts_server s;
    const char *extra[] = {"--workers", "3", NULL};
    if (!ok(ts_server_start(&s, dir, extra) == 0, "server starts")) return done_testing();
    char sid[80], sid2[80];
    ts_open_session(&s, "tiny", sid, sizeof sid);
    ts_open_session(&s, "tiny", sid2, sizeof sid2);
    ts_resp r;
    snprintf(path, sizeof path, "/v1/sessions/%s/steps", sid);
    for (int i = 0; i < 3; i++) {
        ts_json(&s, "POST", path, "{\"steps\":10,\"events\":[[0,1],[1,2],[2,3],[3,4],[4,5,2.0]]}",
                &r);
        ts_resp_free(&r);
    }
    ts_json(&s, "POST", path, "{\"steps\":0}", &r);
    ts_resp_free(&r);
    snprintf(path, sizeof path, "/v1/sessions/%s", sid2);
    ts_json(&s, "DELETE", path, NULL, &r);
    ts_resp_free(&r);
    ts_json(&s, "GET", "/nowhere", NULL, &r);
    ts_resp_free(&r);

    ts_http(&s, "GET", "/metrics", NULL, NULL, 0, NULL, &r);
    is_int(r.status, 200, "GET /metrics");
    const char *m = r.body;
    is_int(ts_metric(m, "spikeserve_http_requests_total{method=\"POST\",route=\"/v1/sessions/{id}/"
                        "steps\",status=\"200\"}"),
           3, "requests by route and status: 3 steps answered 200");
    is_int(ts_metric(m, "spikeserve_http_requests_total{method=\"POST\",route=\"/v1/sessions/{id}/"
                        "steps\",status=\"400\"}"),
           1, "... and 1 answered 400");
    ok(ts_metric(m, "spikeserve_http_request_duration_seconds_count") >= 7 &&
           ts_metric(m, "spikeserve_http_request_duration_seconds_bucket{le=\"+Inf\"}") ==
               ts_metric(m, "spikeserve_http_request_duration_seconds_count"),
       "latency histogram counts the requests");
    is_int(ts_metric(m, "spikeserve_sessions_open"), 1, "sessions open: 1");
    is_int(ts_metric(m, "spikeserve_sessions_created_total"), 2, "sessions created: 2");
    is_int(ts_metric(m, "spikeserve_sessions_closed_total"), 1, "sessions closed: 1");
    is_int(ts_metric(m, "spikeserve_sessions_expired_total"), 0, "sessions expired: 0");
    is_int(ts_metric(m, "spikeserve_batches_total"), 3, "batches: 3");
    is_int(ts_metric(m, "spikeserve_steps_total"), 30, "steps: 30");
    is_int(ts_metric(m, "spikeserve_input_events_total"), 15, "input events: 15");
    ok(ts_metric(m, "spikeserve_output_spikes_total") >= 0, "output spikes counted");
    ok(ts_metric(m, "spikeserve_worker_queue_depth{worker=\"0\"}") == 0 &&
           ts_metric(m, "spikeserve_worker_queue_depth{worker=\"2\"}") == 0,
       "queue depth per worker (3 workers, idle)");
    ok(ts_metric(m, "spikeserve_wal_size_bytes{worker=\"0\"}") == -1,
       "no write-ahead log sizes without --wal");
    is_int(ts_metric(m, "spikeserve_step_group_sessions_sum"), 3,
           "sessions per engine call histogram");

    char file[300], cmd[800];
    snprintf(file, sizeof file, "%s/metrics.txt", s.dir);
    FILE *f = fopen(file, "w");
    fwrite(r.body, 1, r.len, f);
    fclose(f);
    ts_resp_free(&r);
    int have = system("command -v promtool >/dev/null 2>&1") == 0;
    if (!ok(have, "promtool is installed (Debian package prometheus)")) return done_testing();
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s' > '%s.out' 2>&1", file, file);
    int rc = system(cmd);
    if (!ok(rc == 0, "promtool check metrics accepts /metrics")) {
        snprintf(cmd, sizeof cmd, "sed 's/^/# /' '%s.out'", file);
        if (system(cmd)) {
        }
    }
    int status = -1;
    ts_server_stop(&s, SIGTERM, &status);
    is_int(status, 0, "SIGTERM: exit 0");

    /* --wal: each worker's log size, bounded by --wal-max-bytes (the worker checkpoints) */
    char state[256];
    if (ts_tmpdir(state, sizeof state, "state")) return done_testing();
    const char *wal[] = {"--workers", "1", "--state-dir", state, "--wal", "1",
                         "--wal-max-bytes", "4096", NULL};
    if (!ok(ts_server_start(&s, dir, wal) == 0, "server with --wal starts")) return done_testing();
    ts_open_session(&s, "tiny", sid, sizeof sid);
    snprintf(path, sizeof path, "/v1/sessions/%s/steps", sid);
    const char *batch = "{\"steps\":10,\"events\":[[0,1],[1,2],[2,3],[3,4],[4,5,2.0]]}";
    ts_json(&s, "POST", path, batch, &r);
    ts_resp_free(&r);
    ts_http(&s, "GET", "/metrics", NULL, NULL, 0, NULL, &r);
    double first = ts_metric(r.body, "spikeserve_wal_size_bytes{worker=\"0\"}");
    ok(first > 0, "after one batch, worker 0's log holds %.0f bytes", first);
    ts_resp_free(&r);
    double most = 0;
    for (int i = 0; i < 100; i++) {
        ts_json(&s, "POST", path, batch, &r);
        ts_resp_free(&r);
        ts_http(&s, "GET", "/metrics", NULL, NULL, 0, NULL, &r);
        double v = ts_metric(r.body, "spikeserve_wal_size_bytes{worker=\"0\"}");
        if (v > most) most = v;
        if (i == 99) { /* the last text goes through promtool too */
            f = fopen(file, "w");
            fwrite(r.body, 1, r.len, f);
            fclose(f);
        }
        ts_resp_free(&r);
    }
    ok(most > 4096 - 2 * first && most <= 4096 + 2 * first,
       "100 more batches: the log grows to --wal-max-bytes and is emptied (largest %.0f bytes)",
       most);
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s' > '%s.out' 2>&1", file, file);
    ok(system(cmd) == 0, "promtool check metrics accepts /metrics with --wal");
    ts_server_stop(&s, SIGTERM, &status);
    is_int(status, 0, "SIGTERM: exit 0");
    return done_testing();
}
