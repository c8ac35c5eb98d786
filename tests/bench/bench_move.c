/* bench_move: the cost of moving a session between replicas through the snapshot API, for
 * tests/bench/bench_move.sh (make bench-move).
 *
 *   bench_move URL_A URL_B MODEL N
 *
 * Opens N sessions of MODEL on A, steps each once (seq 1, 5 steps, a few events, so the
 * snapshot carries last_seq and its stored answer), then moves each to B the way a replica
 * hands a session over: GET A/v1/sessions/{id}/state, PUT it to B, DELETE it on A; one
 * keep-alive connection per server, one move at a time. Checks on B that every moved
 * session is there with t = 5 and last_seq = 1. Prints one Markdown row: model, sessions,
 * snapshot bytes, mean ms of GET, PUT, DELETE, the whole move's p50 and p99, moves per second.
 * Exits 1 when a request fails. Loopback servers only (the driver starts them). */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    char *p;
    size_t n, cap;
} buf;

static size_t sink(char *p, size_t size, size_t nm, void *arg) {
    buf *b = arg;
    size_t k = size * nm;
    if (b->n + k + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 65536;
        while (cap < b->n + k + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) return 0;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, k);
    b->n += k;
    b->p[b->n] = '\0';
    return k;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* One request on handle h (kept alive); the status, the body in out. */
static long request(CURL *h, const char *method, const char *url, const char *ctype,
                    const void *body, size_t len, buf *out) {
    struct curl_slist *hdr = NULL;
    char ct[128];
    out->n = 0;
    if (out->p) out->p[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    if (body) { /* POST with a body, the method named as asked (PUT) */
        snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
        hdr = curl_slist_append(hdr, ct);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    } else { /* back to a bodiless request (GET clears the POST state), then the method */
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    long status = 0;
    if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdr);
    return status;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The value of "key": in a JSON text (a string value without its quotes), or "". */
static void json_field(const char *text, const char *key, char *out, size_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = text ? strstr(text, pat) : NULL;
    out[0] = '\0';
    if (!p) return;
    p += strlen(pat);
    while (*p == ' ' || *p == '"')
        p++;
    size_t i = 0;
    while (p[i] && p[i] != '"' && p[i] != ',' && p[i] != '}' && i + 1 < cap) {
        out[i] = p[i];
        i++;
    }
    out[i] = '\0';
}

int main(int argc, char **argv) {
    if (argc != 5 || atoi(argv[4]) < 1) {
        fprintf(stderr, "usage: bench_move URL_A URL_B MODEL N\n");
        return 2;
    }
    const char *a = argv[1], *b = argv[2], *model = argv[3];
    int n = atoi(argv[4]);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *ha = curl_easy_init(), *hb = curl_easy_init();
    char(*ids)[80] = calloc((size_t)n, sizeof *ids);
    double *move = calloc((size_t)n, sizeof *move);
    buf out = {0}, snap = {0};
    char url[512];
    if (!ha || !hb || !ids || !move) return 1;
    const char *step = "{\"seq\": 1, \"steps\": 5, \"events\": [[0, 10], [1, 200], [2, 300], "
                       "[3, 400], [4, 500]], \"outputs\": [\"readout\"]}";
    for (int i = 0; i < n; i++) {
        snprintf(url, sizeof url, "%s/v1/models/%s/sessions", a, model);
        long st = request(ha, "POST", url, "application/json", "{}", 2, &out);
        json_field(out.p, "session_id", ids[i], sizeof ids[i]);
        if (st != 201 || !ids[i][0]) {
            fprintf(stderr, "bench_move: open: %ld %s\n", st, out.p ? out.p : "");
            return 1;
        }
        snprintf(url, sizeof url, "%s/v1/sessions/%s/steps", a, ids[i]);
        st = request(ha, "POST", url, "application/json", step, strlen(step), &out);
        if (st != 200) {
            fprintf(stderr, "bench_move: step: %ld %s\n", st, out.p ? out.p : "");
            return 1;
        }
    }
    double get_ms = 0, put_ms = 0, del_ms = 0, bytes = 0, t_all = now_ms();
    for (int i = 0; i < n; i++) {
        double t0 = now_ms();
        snprintf(url, sizeof url, "%s/v1/sessions/%s/state", a, ids[i]);
        long st = request(ha, "GET", url, NULL, NULL, 0, &snap);
        double t1 = now_ms();
        snprintf(url, sizeof url, "%s/v1/sessions/%s/state", b, ids[i]);
        long sp = request(hb, "PUT", url, "application/x-protobuf", snap.p, snap.n, &out);
        double t2 = now_ms();
        snprintf(url, sizeof url, "%s/v1/sessions/%s", a, ids[i]);
        long sd = request(ha, "DELETE", url, NULL, NULL, 0, &out);
        double t3 = now_ms();
        if (st != 200 || (sp != 200 && sp != 201) || (sd != 200 && sd != 204)) {
            fprintf(stderr, "bench_move: move %s: GET %ld, PUT %ld, DELETE %ld\n", ids[i], st, sp,
                    sd);
            return 1;
        }
        bytes += (double)snap.n;
        get_ms += t1 - t0;
        put_ms += t2 - t1;
        del_ms += t3 - t2;
        move[i] = t3 - t0;
    }
    double total = now_ms() - t_all;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        char t[32], seq[32];
        snprintf(url, sizeof url, "%s/v1/sessions/%s", b, ids[i]);
        long st = request(hb, "GET", url, NULL, NULL, 0, &out);
        json_field(out.p, "t", t, sizeof t);
        json_field(out.p, "last_seq", seq, sizeof seq);
        if (st != 200 || strcmp(t, "5") != 0 || strcmp(seq, "1") != 0) bad++;
    }
    if (bad) {
        fprintf(stderr, "bench_move: %d of %d sessions not on B with t 5, last_seq 1\n", bad, n);
        return 1;
    }
    qsort(move, (size_t)n, sizeof *move, cmp_d);
    printf("| %s | %d | %.0f | %.3f | %.3f | %.3f | %.3f | %.3f | %.0f |\n", model, n, bytes / n,
           get_ms / n, put_ms / n, del_ms / n, move[n / 2], move[(size_t)(n * 0.99)],
           n / (total / 1e3));
    free(out.p);
    free(snap.p);
    free(ids);
    free(move);
    curl_easy_cleanup(ha);
    curl_easy_cleanup(hb);
    curl_global_cleanup();
    return 0;
}
