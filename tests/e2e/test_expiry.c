/* Idle sessions expire: subscribers get `end` with reason "expired", the session is gone
 * (404), the metrics count it; a session in use does not expire. */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../support/harness.h"
#include "../tap.h"

int main(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    char dir[256];
    if (ts_tmpdir(dir, sizeof dir, "models") || ts_make_model(dir, "tiny", NULL)) return 1;
    ts_server s;
    const char *extra[] = {"--idle-timeout", "2", NULL};
    if (!ok(ts_server_start(&s, dir, extra) == 0, "server starts (--idle-timeout 2)"))
        return done_testing();
    char a[80], b[80], path[200];
    ok(ts_open_session(&s, "tiny", a, sizeof a) == 0, "open session A");
    ts_resp r;
    ts_json(&s, "POST", "/v1/models/tiny/sessions", "{\"idle_timeout_s\":3600}", &r);
    ok(r.status == 201 && strstr(r.body, "\"idle_timeout_s\":2"),
       "a longer idle timeout is clamped to the server's");
    ts_resp_free(&r);
    snprintf(path, sizeof path, "/v1/sessions/%s/events", a);
    ts_sse *e1 = ts_sse_open(&s, path, NULL), *e2 = ts_sse_open(&s, path, NULL);
    ok(e1 && e2, "two subscribers on A");
    snprintf(path, sizeof path, "/v1/sessions/%s/steps", a);
    ts_json(&s, "POST", path, "{\"steps\":2,\"events\":[[0,1]]}", &r);
    is_int(r.status, 200, "a step on A");
    ts_resp_free(&r);
    ok(e1 && ts_sse_wait(e1, "event: step", 1, 10000) == 1, "subscriber 1 sees the step");
    ok(e2 && ts_sse_wait(e2, "event: step", 1, 10000) == 1, "subscriber 2 sees the step");

    /* B stays busy: a request every 0.5 s for 4 s keeps it alive past its timeout */
    ok(ts_open_session(&s, "tiny", b, sizeof b) == 0, "open session B");
    snprintf(path, sizeof path, "/v1/sessions/%s", b);
    int alive = 1;
    for (int i = 0; i < 8; i++) {
        struct timespec ts = {0, 500000000L};
        nanosleep(&ts, NULL);
        ts_json(&s, "GET", path, NULL, &r);
        alive &= r.status == 200;
        ts_resp_free(&r);
    }
    ok(alive, "a session in use does not expire");

    ok(e1 && ts_sse_wait(e1, "\"reason\":\"expired\"", 1, 20000) == 1,
       "subscriber 1: end, expired");
    ok(e2 && ts_sse_wait(e2, "\"reason\":\"expired\"", 1, 20000) == 1,
       "subscriber 2: end, expired");
    ok(e1 && ts_sse_wait(e1, "no such text", 1, 5000) == 0 && ts_sse_ended(e1),
       "the event stream closes after end");
    ts_sse_close(e1);
    ts_sse_close(e2);
    snprintf(path, sizeof path, "/v1/sessions/%s", a);
    ts_json(&s, "GET", path, NULL, &r);
    is_int(r.status, 404, "expired session: 404");
    ts_resp_free(&r);
    ts_http(&s, "GET", "/metrics", NULL, NULL, 0, NULL, &r);
    ok(ts_metric(r.body, "spikeserve_sessions_expired_total") >= 1, "metrics count the expiry");
    ts_resp_free(&r);
    int status = -1;
    ts_server_stop(&s, SIGTERM, &status);
    is_int(status, 0, "SIGTERM: exit 0");
    return done_testing();
}
