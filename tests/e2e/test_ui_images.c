/* ui.c's routes on the real server: the page at / (whatever Accept says, no key needed, in
 * /metrics), and GET /ui/fmnist/{index} on small IDX files this test writes: plain and
 * gzip'd alike, looked for again while missing, and refused with a message naming the file
 * when corrupt (wrong magic, truncated, counts that differ, a label past 9). The browser side
 * is tests/e2e/test_ui.sh. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "../support/harness.h"
#include "../tap.h"

#define N_IMG 3
static const unsigned char labels[N_IMG] = {4, 0, 9};

static unsigned pixel(unsigned k, unsigned i) {
    return (i * 7 + k * 31) % 256;
}

static void be32(unsigned char *p, unsigned v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* dir/t10k-{images,labels}-idx?-ubyte[.gz] with N_IMG images, bent as asked. */
typedef struct {
    unsigned img_magic, n_img, n_lab, n_written, bad_label;
} idx_opts;

static int write_file(const char *path, const unsigned char *buf, size_t len, int gz) {
    if (gz) {
        gzFile g = gzopen(path, "wb");
        if (!g) return -1;
        int rc = gzwrite(g, buf, (unsigned)len) == (int)len ? 0 : -1;
        return gzclose(g) == Z_OK ? rc : -1;
    }
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int rc = fwrite(buf, 1, len, f) == len ? 0 : -1;
    return fclose(f) == 0 ? rc : -1;
}

static int write_set(const char *dir, int gz, idx_opts o) {
    static unsigned char img[16 + N_IMG * 784], lab[8 + N_IMG];
    char path[512];
    be32(img, o.img_magic);
    be32(img + 4, o.n_img);
    be32(img + 8, 28);
    be32(img + 12, 28);
    be32(lab, 0x801);
    be32(lab + 4, o.n_lab);
    for (unsigned k = 0; k < N_IMG; k++) {
        for (unsigned i = 0; i < 784; i++)
            img[16 + k * 784 + i] = (unsigned char)pixel(k, i);
        lab[8 + k] = k == 1 && o.bad_label ? 12 : labels[k];
    }
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte%s", dir, gz ? ".gz" : "");
    if (write_file(path, img, 16 + (size_t)o.n_written * 784, gz)) return -1;
    snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte%s", dir, gz ? ".gz" : "");
    return write_file(path, lab, 8 + N_IMG, gz);
}

static const idx_opts good = {0x803, N_IMG, N_IMG, N_IMG, 0};

static ts_server *start(ts_server *s, const char *models, const char *data) {
    const char *extra[] = {"--ui-dataset-dir", data, "--workers", "1", NULL};
    return ts_server_start(s, models, extra) == 0 ? s : NULL;
}

/* GET path; status, and the body parsed as JSON (or NULL). */
static json_t *get(ts_server *s, const char *path, long *status) {
    ts_resp r;
    ts_http(s, "GET", path, NULL, NULL, 0, NULL, &r);
    *status = r.status;
    json_t *j = r.body ? json_loads(r.body, 0, NULL) : NULL;
    ts_resp_free(&r);
    return j;
}

static const char *message(json_t *j) {
    return json_string_value(json_object_get(json_object_get(j, "error"), "message"));
}

/* Image k of the set as served: every field and every pixel. */
static int image_ok(ts_server *s, unsigned k) {
    char path[64];
    long st;
    snprintf(path, sizeof path, "/ui/fmnist/%u", k);
    json_t *j = get(s, path, &st), *px = json_object_get(j, "pixels");
    int good_px = json_array_size(px) == 784;
    for (unsigned i = 0; good_px && i < 784; i++)
        good_px = json_integer_value(json_array_get(px, i)) == (json_int_t)pixel(k, i);
    int okk = st == 200 && good_px &&
              json_integer_value(json_object_get(j, "index")) == (json_int_t)k &&
              json_integer_value(json_object_get(j, "label")) == labels[k] &&
              json_integer_value(json_object_get(j, "count")) == N_IMG &&
              json_string_value(json_object_get(j, "label_name"));
    if (!okk) diag("%s: status %ld", path, st);
    json_decref(j);
    return okk;
}

int main(void) {
    char tmp[256], models[300], data[300];
    ts_server srv, *s;
    long st;
    if (ts_tmpdir(tmp, sizeof tmp, "ui")) return 1;
    snprintf(models, sizeof models, "%s/models", tmp);
    mkdir(models, 0700);
    if (ts_make_model(models, "tiny", NULL)) return 1;

    /* plain IDX files, installed after the server started */
    snprintf(data, sizeof data, "%s/plain", tmp);
    if (!ok((s = start(&srv, models, data)) != NULL, "server starts without the dataset"))
        return done_testing();
    ts_resp r;
    ts_http(s, "GET", "/", NULL, NULL, 0, "application/x-protobuf", &r);
    ok(r.status == 200 && strstr(r.ctype, "text/html") && strstr(r.body, "<title>spikeserve"),
       "GET / is the page, whatever Accept asks for");
    ok(r.body && !strstr(r.body, "http://") && !strstr(r.body, "https://"),
       "the page names no outside address");
    size_t page_len = r.len;
    ts_resp_free(&r);
    ts_http(s, "HEAD", "/ui", NULL, NULL, 0, NULL, &r);
    is_int(r.status, 200, "HEAD /ui");
    ts_resp_free(&r);
    ts_http(s, "GET", "/ui/", NULL, NULL, 0, NULL, &r);
    ok(r.status == 200 && r.len == page_len, "GET /ui/ is the same page");
    ts_resp_free(&r);
    json_t *j = get(s, "/ui/fmnist/0", &st);
    ok(st == 404 && message(j) && strstr(message(j), "not installed") && strstr(message(j), data) &&
           strstr(message(j), "dataset-fashion-mnist"),
       "no dataset: 404 naming the folder and the package (%s)", message(j) ? message(j) : "");
    json_decref(j);
    ok(write_set(data, 0, good) == 0, "plain IDX files written");
    ok(image_ok(s, 0) && image_ok(s, 1) && image_ok(s, 2),
       "once installed, the images are served (looked for again): all 3, every pixel");
    j = get(s, "/ui/fmnist/3", &st);
    ok(st == 404 && message(j) && strstr(message(j), "0..2"), "index 3 of 3: 404 with the range");
    json_decref(j);
    const char *bad_idx[] = {"x", "1x", "-1", "1e3", "1000000000", "%20"};
    int bad = 0;
    for (size_t i = 0; i < sizeof bad_idx / sizeof bad_idx[0]; i++) {
        char path[64];
        snprintf(path, sizeof path, "/ui/fmnist/%s", bad_idx[i]);
        j = get(s, path, &st);
        if (st != 400 || !message(j) || !strstr(message(j), "index")) {
            bad++;
            diag("%s: %ld", path, st);
        }
        json_decref(j);
    }
    is_int(bad, 0, "indexes that are not small decimal numbers: 400 naming the index");
    ts_http(s, "GET", "/metrics", NULL, NULL, 0, NULL, &r);
    ok(r.body &&
           ts_metric(r.body, "spikeserve_http_requests_total{method=\"GET\",route=\"/ui\","
                             "status=\"200\"}") >= 2 &&
           ts_metric(r.body, "spikeserve_http_requests_total{method=\"GET\",route=\"/ui/fmnist/"
                             "{index}\",status=\"400\"}") >= 6,
       "/metrics counts the page and the images by route");
    ts_resp_free(&r);
    int code = -1;
    ts_server_stop(s, SIGTERM, &code);
    is_int(code, 0, "SIGTERM: exit 0");

    /* gzip'd, as Debian ships them */
    snprintf(data, sizeof data, "%s/gz", tmp);
    ok(write_set(data, 1, good) == 0, "gzip'd IDX files written");
    if ((s = start(&srv, models, data))) {
        ok(image_ok(s, 2) && image_ok(s, 0), "gzip'd files: the same images");
        ts_server_stop(s, SIGTERM, &code);
    }

    /* corrupt sets: 500 with a message naming the file, the same on the next request */
    struct {
        const char *name, *want;
        idx_opts o;
    } corrupt[] = {
        {"magic", "not an IDX file of 28x28", {0x804, N_IMG, N_IMG, N_IMG, 0}},
        {"truncated", "truncated", {0x803, N_IMG + 2, N_IMG + 2, N_IMG, 0}},
        {"counts", "labels (expected", {0x803, N_IMG, N_IMG - 1, N_IMG, 0}},
        {"label", "not a class 0..9", {0x803, N_IMG, N_IMG, N_IMG, 1}},
        {"empty", "labels (expected", {0x803, 0, 0, 0, 0}},
        {"huge", "labels (expected", {0x803, 200000, 200000, N_IMG, 0}},
    };
    for (size_t i = 0; i < sizeof corrupt / sizeof corrupt[0]; i++) {
        snprintf(data, sizeof data, "%s/%s", tmp, corrupt[i].name);
        if (write_set(data, i % 2, corrupt[i].o) != 0 || !(s = start(&srv, models, data))) {
            ok(0, "%s: set up", corrupt[i].name);
            continue;
        }
        json_t *a = get(s, "/ui/fmnist/0", &st), *b = NULL;
        long st2;
        b = get(s, "/ui/fmnist/0", &st2);
        ok(st == 500 && st2 == 500 && message(a) && strstr(message(a), corrupt[i].want) &&
               strstr(message(a), data) && message(b) && !strcmp(message(a), message(b)),
           "%s: 500 naming the file (%s), twice", corrupt[i].name, message(a) ? message(a) : "");
        json_decref(a);
        json_decref(b);
        ts_server_stop(s, SIGTERM, &code);
        is_int(code, 0, "and the server exits 0");
    }
    return done_testing();
}
