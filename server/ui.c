/* ui.c: the raster page and the Fashion-MNIST test images behind it.
 *
 * The page is assembled into .rodata with .incbin (the Makefile makes ui.o depend on the
 * HTML file, and compiles from the repository root, which the path is relative to): no file
 * is looked up at run time, so the binary and the Docker image serve the page anywhere.
 *
 * The images: the whole test set is read on the first request (gzopen reads gzip'd and plain
 * IDX files alike), checked (magic, 28x28, counts equal and bounded), and kept; a request
 * then copies 784 bytes under the mutex and formats them outside it.
 */
#include "ui.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#ifndef SS_UI_HTML_PATH
#define SS_UI_HTML_PATH "server/ui/index.html"
#endif

/* ss_ui_html .. ss_ui_html_end: the page's bytes, followed by a NUL. */
__asm__(".section .rodata\n"
        ".balign 16\n"
        ".type ss_ui_html, @object\n"
        "ss_ui_html:\n"
        ".incbin \"" SS_UI_HTML_PATH "\"\n"
        "ss_ui_html_end:\n"
        ".byte 0\n"
        ".size ss_ui_html, . - ss_ui_html\n"
        ".previous\n");
extern const char ss_ui_html[] __attribute__((visibility("hidden")));
extern const char ss_ui_html_end[] __attribute__((visibility("hidden")));

static const char *const class_names[10] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                            "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                            "Bag",         "Ankle boot"};

int ss_ui_page(ss_reply *rep, char *err, size_t errlen) {
    size_t len = (size_t)(ss_ui_html_end - ss_ui_html);
    char *body = malloc(len ? len : 1);
    if (!body) {
        snprintf(err, errlen, "out of memory for the page (%zu bytes)", len);
        return SS_E_NOMEM;
    }
    memcpy(body, ss_ui_html, len);
    ss_reply_set(rep, 200, "text/html; charset=utf-8", body, len);
    return 0;
}

int ss_ui_index(const char *seg, uint32_t *index, char *err, size_t errlen) {
    size_t n = strspn(seg, "0123456789");
    if (n == 0 || seg[n] || n > 9) {
        snprintf(err, errlen, "index \"%.40s\": not a decimal number below 10^9", seg);
        return SS_E_INVALID;
    }
    *index = (uint32_t)strtoul(seg, NULL, 10);
    return 0;
}

/* ---- the dataset cache ---- */

static struct {
    pthread_mutex_t mu;
    char dir[1024];
    int state;       /* 0: not loaded, 1: loaded, -1: corrupt (err says why) */
    char err[2600];  /* room for two paths of --ui-dataset-dir */
    uint8_t *pixels; /* n x 784 */
    uint8_t *labels; /* n */
    uint32_t n;
} cache = {.mu = PTHREAD_MUTEX_INITIALIZER};

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Open dir/base.gz or dir/base; NULL with *missing = 1 when neither exists. */
static gzFile open_idx(const char *dir, const char *base, char *path, size_t plen, int *missing) {
    const char *ext[] = {".gz", ""};
    *missing = 1;
    for (int k = 0; k < 2; k++) {
        snprintf(path, plen, "%s/%s%s", dir, base, ext[k]);
        FILE *f = fopen(path, "rb");
        if (!f) {
            if (errno != ENOENT) *missing = 0;
            continue;
        }
        fclose(f);
        *missing = 0;
        gzFile g = gzopen(path, "rb");
        if (g) return g;
    }
    return NULL;
}

static int read_all(gzFile g, uint8_t *buf, size_t len) {
    while (len) {
        unsigned chunk = len > (1u << 30) ? 1u << 30 : (unsigned)len;
        int got = gzread(g, buf, chunk);
        if (got <= 0) return -1;
        buf += got;
        len -= (size_t)got;
    }
    return 0;
}

/* Load dir's test set into the cache. Called with cache.mu held. 0, or -1 with *status and
 * err (404 missing, 500 corrupt, 503 out of memory). */
static int load(const char *dir, unsigned *status, char *err, size_t errlen) {
    char ipath[1100], lpath[1100];
    int imiss, lmiss;
    uint8_t *px = NULL, *lb = NULL;
    gzFile gi = open_idx(dir, "t10k-images-idx3-ubyte", ipath, sizeof ipath, &imiss);
    gzFile gl = open_idx(dir, "t10k-labels-idx1-ubyte", lpath, sizeof lpath, &lmiss);
    *status = 500;
    if (!gi || !gl) {
        *status = imiss || lmiss ? 404 : 500;
        snprintf(err, errlen,
                 "the Fashion-MNIST test set is not installed: no readable "
                 "%s/t10k-%s-idx%d-ubyte[.gz] (Debian package dataset-fashion-mnist; "
                 "--ui-dataset-dir names the folder)",
                 dir, !gi ? "images" : "labels", !gi ? 3 : 1);
        goto fail;
    }
    uint8_t hi[16], hl[8];
    if (read_all(gi, hi, sizeof hi) || read_all(gl, hl, sizeof hl)) {
        snprintf(err, errlen, "%s or %s: shorter than an IDX header", ipath, lpath);
        goto fail;
    }
    uint32_t n = be32(hi + 4), nl = be32(hl + 4);
    if (be32(hi) != 0x803 || be32(hi + 8) != SS_UI_IMAGE_SIDE ||
        be32(hi + 12) != SS_UI_IMAGE_SIDE) {
        snprintf(err, errlen, "%s: not an IDX file of 28x28 unsigned bytes (magic 0x%08x)", ipath,
                 be32(hi));
        goto fail;
    }
    if (be32(hl) != 0x801) {
        snprintf(err, errlen, "%s: not an IDX file of unsigned bytes (magic 0x%08x)", lpath,
                 be32(hl));
        goto fail;
    }
    if (n == 0 || n > SS_UI_MAX_IMAGES || n != nl) {
        snprintf(err, errlen, "%s: %u images and %s: %u labels (expected 1..%u of each)", ipath, n,
                 lpath, nl, SS_UI_MAX_IMAGES);
        goto fail;
    }
    px = malloc((size_t)n * SS_UI_IMAGE_PIXELS);
    lb = malloc(n);
    if (!px || !lb) {
        *status = 503;
        snprintf(err, errlen, "out of memory for %u images", n);
        goto fail;
    }
    if (read_all(gi, px, (size_t)n * SS_UI_IMAGE_PIXELS) || read_all(gl, lb, n)) {
        snprintf(err, errlen, "%s or %s: truncated (expected %u images)", ipath, lpath, n);
        goto fail;
    }
    for (uint32_t i = 0; i < n; i++)
        if (lb[i] > 9) {
            snprintf(err, errlen, "%s: label %u of image %u is not a class 0..9", lpath, lb[i], i);
            goto fail;
        }
    gzclose(gi);
    gzclose(gl);
    free(cache.pixels);
    free(cache.labels);
    cache.pixels = px;
    cache.labels = lb;
    cache.n = n;
    cache.state = 1;
    *status = 0;
    return 0;
fail:
    if (gi) gzclose(gi);
    if (gl) gzclose(gl);
    free(px);
    free(lb);
    return -1;
}

int ss_ui_image(ss_reply *rep, const char *dataset_dir, uint32_t index, char *err, size_t errlen) {
    uint8_t px[SS_UI_IMAGE_PIXELS];
    uint32_t n = 0;
    unsigned label = 0, status = 0;
    pthread_mutex_lock(&cache.mu);
    if (strcmp(cache.dir, dataset_dir) != 0) { /* another folder: forget the old one */
        free(cache.pixels);
        free(cache.labels);
        cache.pixels = cache.labels = NULL;
        cache.n = 0;
        cache.state = 0;
        snprintf(cache.dir, sizeof cache.dir, "%s", dataset_dir);
    }
    if (cache.state == 0 && load(dataset_dir, &status, cache.err, sizeof cache.err) != 0) {
        if (status == 500) cache.state = -1; /* corrupt: not read again */
    }
    if (cache.state == 1) {
        n = cache.n;
        if (index < n) {
            memcpy(px, cache.pixels + (size_t)index * SS_UI_IMAGE_PIXELS, sizeof px);
            label = cache.labels[index];
        }
    } else {
        if (cache.state == -1) status = 500;
        snprintf(err, errlen, "%s", cache.err);
    }
    pthread_mutex_unlock(&cache.mu);
    if (status) return status == 404 ? SS_E_NOT_FOUND : status == 503 ? SS_E_NOMEM : SS_E_INTERNAL;
    if (index >= n) {
        snprintf(err, errlen, "image %u: not in the test set (indexes 0..%u)", index, n - 1);
        return SS_E_NOT_FOUND;
    }
    size_t cap = 160 + SS_UI_IMAGE_PIXELS * 4, len;
    char *body = malloc(cap);
    if (!body) {
        snprintf(err, errlen, "out of memory");
        return SS_E_NOMEM;
    }
    len = (size_t)snprintf(body, cap,
                           "{\"index\":%u,\"label\":%u,\"label_name\":\"%s\",\"count\":%u,"
                           "\"pixels\":[",
                           index, label, label < 10 ? class_names[label] : "", n);
    for (size_t i = 0; i < SS_UI_IMAGE_PIXELS; i++)
        len += (size_t)snprintf(body + len, cap - len, i ? ",%u" : "%u", px[i]);
    len += (size_t)snprintf(body + len, cap - len, "]}");
    ss_reply_set(rep, 200, SS_CT_JSON, body, len);
    return 0;
}

void ss_ui_release(void) {
    pthread_mutex_lock(&cache.mu);
    free(cache.pixels);
    free(cache.labels);
    cache.pixels = cache.labels = NULL;
    cache.n = 0;
    cache.state = 0;
    cache.dir[0] = 0;
    pthread_mutex_unlock(&cache.mu);
}

int ss_ui_op_page(ss_op *o) {
    char err[256];
    int rc = ss_ui_page(&o->reply, err, sizeof err);
    if (rc != 0) ss_reply_fail(&o->reply, rc, "%s", err);
    return SS_OP_NOW;
}

int ss_ui_op_image(ss_op *o) {
    char err[512];
    uint32_t index = 0;
    int rc = ss_ui_index(o->sid, &index, err, sizeof err);
    if (rc == 0) rc = ss_ui_image(&o->reply, o->app->cfg.ui_dataset_dir, index, err, sizeof err);
    if (rc != 0) ss_reply_fail(&o->reply, rc, "%s", err);
    return SS_OP_NOW;
}
