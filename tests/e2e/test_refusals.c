/* Refusals and bookkeeping that a review of the server found wrong (issue 11), each check
 * written to fail before its fix:
 *   - a batch refused for memory (503) is never in the write-ahead log: after the refusal
 *     the logs are empty, and after SIGKILL and a restart the session is where it was;
 *   - a /stream upload counts as activity: an upload that begins just before the idle
 *     timeout keeps its session alive for its lines;
 *   - the 503 for too many sessions names the count and the limit;
 *   - the shutdown log counts the sessions it saved, not the ones it tried.
 */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../support/harness.h"
#include "../tap.h"

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long file_size(const char *dir, const char *name) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return strdup("");
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return strdup(buf);
}

static long session_t(const ts_server *s, const char *sid) {
    char path[200];
    snprintf(path, sizeof path, "/v1/sessions/%s", sid);
    ts_resp r;
    long t = -1;
    if (ts_json(s, "GET", path, NULL, &r) == 0 && r.status == 200) {
        const char *p = strstr(r.body, "\"t\":");
        if (p) t = atol(p + 4);
    }
    ts_resp_free(&r);
    return t;
}

/* A batch whose outputs cannot be had (terabytes): 503, and nothing logged. */
static void refused_not_logged(const char *models) {
    char state[256];
    if (ts_tmpdir(state, sizeof state, "state")) return;
    const char *extra[] = {"--state-dir",
                           state,
                           "--wal",
                           "1",
                           "--workers",
                           "1",
                           "--max-steps",
                           "4000000000",
                           "--max-output-bytes",
                           "1000000000000000",
                           NULL};
    ts_server s;
    if (!ok(ts_server_start(&s, models, extra) == 0, "server with --wal and huge limits")) return;
    char sid[80], path[200];
    ok(ts_open_session(&s, "tiny", sid, sizeof sid) == 0, "open a session");
    snprintf(path, sizeof path, "/v1/sessions/%s/steps", sid);
    ts_resp r;
    ts_json(&s, "POST", path, "{\"seq\":1,\"steps\":2,\"events\":[[0,1]]}", &r);
    is_int(r.status, 200, "a small batch runs (t 2)");
    ts_resp_free(&r);
    long before = file_size(state, "wal-0.log");
    ts_json(&s, "POST", path,
            "{\"seq\":2,\"steps\":4000000000,\"outputs\":[\"spikes\",\"layers\",\"readout_all\"]}",
            &r);
    ok(r.status == 503 && strstr(r.body, "out of memory"),
       "a batch whose outputs need terabytes: 503 out of memory");
    ts_resp_free(&r);
    is_int(file_size(state, "wal-0.log"), before, "the refused batch is not in the log");
    is_int(session_t(&s, sid), 2, "the session did not move");
    ts_json(&s, "POST", path, "{\"seq\":2,\"steps\":3}", &r);
    is_int(r.status, 200, "seq 2 is still free: the refused batch did not count");
    ts_resp_free(&r);
    int status;
    ts_server_stop(&s, SIGKILL, &status);
    if (!ok(ts_server_start(&s, models, extra) == 0, "restart after SIGKILL")) return;
    is_int(session_t(&s, sid), 5, "replayed: t 5 (2 + 3), nothing of the refused batch");
    ts_server_stop(&s, SIGTERM, &status);
    is_int(status, 0, "exit 0");
}

/* An upload that begins at 3 s of a 4 s idle timeout and sends its line at 5.5 s. */
static void stream_is_activity(const ts_server *s) {
    ts_resp r;
    ts_json(s, "POST", "/v1/models/tiny/sessions", "{\"idle_timeout_s\":4}", &r);
    char sid[80] = "";
    const char *p = r.status == 201 ? strstr(r.body, "\"session_id\":\"") : NULL;
    if (p) sscanf(p + 14, "%64[^\"]", sid);
    ts_resp_free(&r);
    if (!ok(sid[0], "a session with idle_timeout_s 4")) return;
    sleep_ms(3000);
    int fd = ts_dial(s, 0);
    char head[400];
    int n = snprintf(head, sizeof head,
                     "POST /v1/sessions/%s/stream HTTP/1.1\r\nHost: x\r\n"
                     "Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n",
                     sid);
    ok(fd >= 0 && write(fd, head, (size_t)n) == n, "an upload begins at 3 s");
    sleep_ms(2500);
    const char *line = "{\"steps\":1}\n";
    char chunk[100];
    n = snprintf(chunk, sizeof chunk, "%zx\r\n%s\r\n0\r\n\r\n", strlen(line), line);
    ok(fd >= 0 && write(fd, chunk, (size_t)n) == n, "its line and its end at 5.5 s");
    char resp[4096] = "";
    size_t got = 0;
    for (int i = 0; i < 100 && fd >= 0 && !strstr(resp, "}"); i++) {
        ssize_t k = read(fd, resp + got, sizeof resp - 1 - got);
        if (k <= 0) break;
        got += (size_t)k;
        resp[got] = 0;
    }
    ok(strstr(resp, " 200 ") && strstr(resp, "\"ok\":1") && strstr(resp, "\"failed\":0"),
       "the line ran: the upload kept the session alive");
    if (!strstr(resp, "\"ok\":1")) diag("answer: %.300s", resp);
    if (fd >= 0) close(fd);
}

static void too_many_sessions(const char *models) {
    const char *extra[] = {"--max-sessions", "2", NULL};
    ts_server s;
    if (!ok(ts_server_start(&s, models, extra) == 0, "server with --max-sessions 2")) return;
    char a[80];
    ts_open_session(&s, "tiny", a, sizeof a);
    ts_open_session(&s, "tiny", a, sizeof a);
    ts_resp r;
    ts_json(&s, "POST", "/v1/models/tiny/sessions", NULL, &r);
    ok(r.status == 503 && strstr(r.body, "too_many_sessions") && strstr(r.body, "2 open") &&
           strstr(r.body, "--max-sessions 2"),
       "503 too_many_sessions names the count and the limit");
    diag("%s", r.body);
    ts_resp_free(&r);
    int status;
    ts_server_stop(&s, SIGTERM, &status);
}

/* One session's file cannot be written (a directory holds its name). */
static void saved_count(const char *models) {
    char state[256];
    if (ts_tmpdir(state, sizeof state, "state")) return;
    const char *extra[] = {"--state-dir", state, NULL};
    ts_server s;
    if (!ok(ts_server_start(&s, models, extra) == 0, "server with --state-dir")) return;
    char a[80], b[80], p[600];
    ts_open_session(&s, "tiny", a, sizeof a);
    ts_open_session(&s, "tiny", b, sizeof b);
    snprintf(p, sizeof p, "%s/%s.session", state, a);
    ok(mkdir(p, 0700) == 0, "a directory where one session's file would go");
    int status;
    ts_server_stop(&s, SIGTERM, &status);
    char *log = slurp(s.log);
    ok(strstr(log, "saved 1 of 2 sessions") != NULL,
       "the shutdown log says 1 of 2 sessions were saved");
    ok(strstr(log, "saving session") != NULL, "and names the one that failed");
    free(log);
    snprintf(p, sizeof p, "%s.session", b);
    ok(file_size(state, p) > 0, "the other one is on disk");
}

int main(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    char dir[256];
    if (ts_tmpdir(dir, sizeof dir, "models") || ts_make_model(dir, "tiny", NULL)) return 1;
    refused_not_logged(dir);
    ts_server s;
    const char *extra[] = {"--idle-timeout", "60", NULL};
    if (ok(ts_server_start(&s, dir, extra) == 0, "server")) {
        stream_is_activity(&s);
        int status;
        ts_server_stop(&s, SIGTERM, &status);
    }
    too_many_sessions(dir);
    saved_count(dir);
    return done_testing();
}
