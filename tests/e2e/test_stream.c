/* POST /stream: each NDJSON line runs as soon as it has arrived. A client that sends one
 * line and waits sees that line's `step` event on /events before it sends the next one.
 * A full worker queue pauses the upload (no line lost, none refused); long lines are 413;
 * bad lines are reported in the summary by line number. */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"
#include "../tap.h"

#define LINES 12

typedef struct {
    ts_sse *ev;
    char line[LINES][128];
    int next;
    size_t off;
    int seen_before_next; /* lines whose event arrived before the next line was sent */
} feeder;

static size_t feed(char *buf, size_t size, size_t n, void *arg) {
    feeder *f = arg;
    if (f->off == 0 && f->next > 0) {
        char needle[32];
        snprintf(needle, sizeof needle, "\"seq\":%d,", f->next);
        /* generous bound: the server has no reason to wait, a stuck one fails the check */
        if (ts_sse_wait(f->ev, needle, 1, 20000) >= 1) f->seen_before_next++;
    }
    if (f->next == LINES) return 0;
    const char *l = f->line[f->next];
    size_t left = strlen(l) - f->off, k = left < size * n ? left : size * n;
    memcpy(buf, l + f->off, k);
    f->off += k;
    if (f->off == strlen(l)) {
        f->next++;
        f->off = 0;
    }
    return k;
}

static size_t sink(char *p, size_t size, size_t n, void *arg) {
    ts_resp *r = arg;
    size_t k = size * n;
    r->body = realloc(r->body, r->len + k + 1);
    memcpy(r->body + r->len, p, k);
    r->len += k;
    r->body[r->len] = 0;
    return k;
}

static void line_by_line(ts_server *s) {
    char sid[80], path[160];
    ts_open_session(s, "tiny", sid, sizeof sid);
    snprintf(path, sizeof path, "/v1/sessions/%s/events", sid);
    long st;
    ts_sse *ev = ts_sse_open(s, path, &st);
    if (!ok(ev != NULL, "subscribe to /events")) return;
    feeder f;
    memset(&f, 0, sizeof f);
    f.ev = ev;
    for (int i = 0; i < LINES; i++)
        snprintf(f.line[i], sizeof f.line[i],
                 "{\"seq\":%d,\"steps\":3,\"events\":[[0,%d],[1,%d]]}\n", i + 1, i % 20,
                 (i * 7) % 20);
    CURL *c = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "%s/v1/sessions/%s/stream", s->base, sid);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/x-ndjson");
    h = curl_slist_append(h, "Transfer-Encoding: chunked");
    h = curl_slist_append(h, "Expect:");
    ts_resp r;
    memset(&r, 0, sizeof r);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "POST");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, feed);
    curl_easy_setopt(c, CURLOPT_READDATA, &f);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    ok(rc == CURLE_OK && r.status == 200, "stream upload answered 200");
    is_int(f.seen_before_next, LINES,
           "each line's step event arrived before the next line was sent");
    ok(r.body && strstr(r.body, "\"lines\":12") && strstr(r.body, "\"ok\":12") &&
           strstr(r.body, "\"failed\":0"),
       "summary: 12 lines, 12 ok");
    if (r.body) diag("summary: %s", r.body);
    char *text = ts_sse_text(ev);
    int order = 1, expect = 1;
    for (const char *p = text; (p = strstr(p, "event: step\ndata: ")); p++) {
        const char *q = strstr(p, "\"seq\":");
        if (!q || atoi(q + 6) != expect++) order = 0;
    }
    ok(order && expect == LINES + 1, "events came in line order");
    free(text);
    free(r.body);
    ts_sse_close(ev);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    char dir[256];
    if (ts_tmpdir(dir, sizeof dir, "models") || ts_make_model(dir, "tiny", "--seed 5")) return 1;
    ts_server s;
    const char *extra[] = {"--workers", "1", "--queue-depth", "2", "--max-body-bytes",
                           "4096",      NULL};
    if (!ok(ts_server_start(&s, dir, extra) == 0, "server starts (1 worker, queue depth 2)"))
        return done_testing();
    line_by_line(&s);

    /* many heavy lines at once: the queue (depth 2) fills, the upload pauses, none is lost */
    char sid[80], path[160];
    ts_open_session(&s, "tiny", sid, sizeof sid);
    snprintf(path, sizeof path, "/v1/sessions/%s/stream", sid);
    size_t cap = 300 * 80, len = 0;
    char *body = malloc(cap);
    for (int i = 0; i < 300; i++)
        len += (size_t)snprintf(body + len, cap - len,
                                "{\"seq\":%d,\"steps\":400,\"events\":[[0,%d]]}\n", i + 1, i % 20);
    ts_resp r;
    ts_http_chunked(&s, "POST", path, "application/x-ndjson", body, len, NULL, &r);
    is_int(r.status, 200, "300-line upload: 200");
    ok(strstr(r.body, "\"lines\":300") && strstr(r.body, "\"ok\":300") &&
           strstr(r.body, "\"t\":120000"),
       "all 300 lines ran in order (t = 120000)");
    if (!strstr(r.body, "\"ok\":300")) diag("%s", r.body);
    ts_resp_free(&r);
    ts_http(&s, "GET", "/metrics", NULL, NULL, 0, NULL, &r);
    double pauses = ts_metric(r.body, "spikeserve_stream_pauses_total");
    diag("upload paused %.0f times", pauses);
    ok(pauses > 0, "the upload was paused while the queue was full");
    ts_resp_free(&r);
    free(body);

    /* bad lines are reported by number; the good ones run */
    const char *mixed = "{\"seq\":1,\"steps\":1}\n\nnot json\n{\"seq\":5,\"steps\":1}\n"
                        "{\"steps\":1,\"events\":[[0,99]]}\n{\"seq\":2,\"steps\":2}";
    char sid2[80];
    ts_open_session(&s, "tiny", sid2, sizeof sid2);
    snprintf(path, sizeof path, "/v1/sessions/%s/stream", sid2);
    ts_http_chunked(&s, "POST", path, "application/x-ndjson", mixed, strlen(mixed), NULL, &r);
    is_int(r.status, 200, "mixed upload: 200");
    ok(strstr(r.body, "\"lines\":5") && strstr(r.body, "\"ok\":2") &&
           strstr(r.body, "\"failed\":3"),
       "5 lines (blank skipped), 2 ok, 3 failed");
    ok(strstr(r.body, "\"line\":2,\"status\":400") && strstr(r.body, "\"line\":3,\"status\":409") &&
           strstr(r.body, "\"line\":4,\"status\":400"),
       "errors name the line and status");
    ok(strstr(r.body, "\"t\":3") != NULL, "the last line without a newline ran too (t = 3)");
    diag("%s", r.body);
    ts_resp_free(&r);

    /* a line over --max-body-bytes */
    char *big = malloc(6000);
    memset(big, ' ', 6000);
    memcpy(big, "{\"steps\":1", 10);
    big[5998] = '}';
    big[5999] = '\n';
    ts_http_chunked(&s, "POST", path, "application/x-ndjson", big, 6000, NULL, &r);
    is_int(r.status, 413, "a line over --max-body-bytes: 413");
    ok(strstr(r.body, "4096") != NULL, "413 names the limit");
    ts_resp_free(&r);
    free(big);
    ts_http_chunked(&s, "POST", path, "application/x-protobuf", "x", 1, NULL, &r);
    is_int(r.status, 415, "protobuf Content-Type on /stream: 415");
    ts_resp_free(&r);
    ts_http(&s, "POST", path, "application/x-ndjson", "{\"steps\":1}\n", 12,
            "application/x-protobuf", &r);
    is_int(r.status, 406, "Accept protobuf only on /stream (its summary is JSON): 406");
    ts_resp_free(&r);
    ts_http_chunked(&s, "POST", "/v1/sessions/nosuchsession/stream", "application/x-ndjson", "{}\n",
                    3, NULL, &r);
    is_int(r.status, 404, "stream to an unknown session: 404");
    ts_resp_free(&r);

    int status = -1;
    ts_server_stop(&s, SIGTERM, &status);
    is_int(status, 0, "SIGTERM: exit 0");
    return done_testing();
}
