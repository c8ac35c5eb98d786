/* test_zoo_accuracy: every shipped model (models/zoo/NAME.spk) is run by the C engine over
 * all 10,000 Fashion-MNIST test images, with the model's own input encoding (spk_encode,
 * one xoshiro stream seeded with SEED for the whole set), and its accuracy (argmax of the
 * readout at the last step) must be within 0.5 points of the `accuracy_c:` line of its
 * card (models/zoo/NAME.md). A card with a `float_model: OTHER` line (a quantised model, issue
 * 14) also holds the model within 0.5 points of OTHER's accuracy measured in the same run.
 *
 * Environment: SPIKESERVE_ZOO (default models/zoo), FMNIST_DIR (default
 * /usr/share/datasets/fashion-mnist). The images are read from the gzip IDX files with zlib.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../tap.h"
#include "encode.h"
#include "model.h"
#include "state.h"
#include "step.h"

#define SEED 20261128u
#define TOLERANCE 0.5

/* The whole of a gzip file (or plain file: zlib reads both); NULL on error. */
static uint8_t *read_gz(const char *path, size_t *len) {
    gzFile f = gzopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 20, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
        }
        int r = gzread(f, buf + n, (unsigned)(cap - n));
        if (r < 0) {
            free(buf);
            buf = NULL;
            break;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    gzclose(f);
    *len = n;
    return buf;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* An unsigned-byte IDX file: returns the data, *count items of *item bytes each. */
static uint8_t *read_idx(const char *path, uint32_t *count, size_t *item, uint8_t **raw) {
    size_t len;
    uint8_t *d = read_gz(path, &len);
    *raw = d;
    if (!d || len < 8 || d[0] || d[1] || d[2] != 0x08 || d[3] < 1 || d[3] > 3) return NULL;
    unsigned nd = d[3];
    if (len < 4 + 4 * nd) return NULL;
    *count = be32(d + 4);
    *item = 1;
    for (unsigned k = 1; k < nd; k++)
        *item *= be32(d + 4 + 4 * k);
    if (len - (4 + 4 * nd) != (size_t)*count * *item) return NULL;
    return d + 4 + 4 * nd;
}

/* The number after "accuracy_c:" in a card; negative if missing. */
static double card_accuracy(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[512];
    double v = -1;
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "accuracy_c:");
        if (p && sscanf(p + strlen("accuracy_c:"), "%lf", &v) == 1) break;
        v = -1;
    }
    fclose(f);
    return v;
}

/* The `float_model:` name of a card into out (cap bytes); 0 when it has none. */
static int card_float_model(const char *path, char *out, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[512], fmt[32];
    int found = 0;
    snprintf(fmt, sizeof fmt, "%%%zus", cap - 1);
    while (!found && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "float_model:");
        found = p && sscanf(p + strlen("float_model:"), fmt, out) == 1;
    }
    fclose(f);
    return found;
}

/* Accuracy in percent of model m over n images; negative on an engine error. */
static double run_model(const spk_model *m, const uint8_t *img, const uint8_t *lab, uint32_t n,
                        size_t npix) {
    char err[256];
    spk_state *st = spk_state_create(m);
    spk_scratch *sc = spk_scratch_create(m);
    uint32_t steps = spk_encode_steps(&m->encoding), n_out = spk_model_n_out(m);
    size_t cap = spk_encode_max_events(&m->encoding, m->n_in);
    size_t scap = spk_max_spikes(m->layers[m->n_layers - 1].n, steps);
    spk_event *ev = malloc(cap * sizeof *ev);
    spk_spike *sp = malloc(scap * sizeof *sp);
    float *x = malloc(npix * sizeof *x), *o = malloc(n_out * sizeof *o);
    double acc = -1;
    if (!st || !sc || !ev || !sp || !x || !o) goto out;
    spk_rng rng;
    spk_rng_seed(&rng, SEED);
    uint32_t correct = 0;
    for (uint32_t k = 0; k < n; k++) {
        for (size_t j = 0; j < npix; j++)
            x[j] = (float)img[k * npix + j] / 255.0f;
        size_t n_ev;
        if (spk_encode(&m->encoding, x, (uint32_t)npix, &rng, ev, cap, &n_ev, err, sizeof err)) {
            diag("image %u: spk_encode: %s", k, err);
            goto out;
        }
        spk_state_reset(st);
        spk_input in = {.steps = steps, .events = ev, .n_events = n_ev, .dense = NULL};
        spk_output res = {.spikes = {sp, scap, 0}, .readout = o};
        if (spk_step(st, &in, &res, sc, err, sizeof err)) {
            diag("image %u: spk_step: %s", k, err);
            goto out;
        }
        correct += spk_argmax(o, n_out) == lab[k];
    }
    acc = 100.0 * correct / n;
out:
    free(ev);
    free(sp);
    free(x);
    free(o);
    spk_scratch_free(sc);
    spk_state_free(st);
    return acc;
}

int main(void) {
    const char *zoo = getenv("SPIKESERVE_ZOO") ? getenv("SPIKESERVE_ZOO") : "models/zoo";
    const char *data =
        getenv("FMNIST_DIR") ? getenv("FMNIST_DIR") : "/usr/share/datasets/fashion-mnist";
    char path[4096];
    uint32_t n_img = 0, n_lab = 0;
    size_t npix = 0, one = 0;
    uint8_t *raw_img, *raw_lab;
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte.gz", data);
    const uint8_t *img = read_idx(path, &n_img, &npix, &raw_img);
    snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte.gz", data);
    const uint8_t *lab = read_idx(path, &n_lab, &one, &raw_lab);
    if (!ok(img && lab && n_img == 10000 && n_lab == 10000 && npix == 784 && one == 1,
            "read the 10,000 Fashion-MNIST test images and labels from %s", data)) {
        free(raw_img);
        free(raw_lab);
        return done_testing();
    }

    DIR *dir = opendir(zoo);
    ok(dir != NULL, "open the model directory %s", zoo);
    int n_models = 0;
    enum { MAXM = 64 };
    char names[MAXM][SPK_MAX_NAME + 1], floats[MAXM][SPK_MAX_NAME + 1];
    double accs[MAXM];
    int nm = 0;
    struct dirent *de;
    while (dir && (de = readdir(dir))) {
        size_t L = strlen(de->d_name);
        if (L < 5 || strcmp(de->d_name + L - 4, ".spk")) continue;
        n_models++;
        char err[512];
        spk_model *m = NULL;
        snprintf(path, sizeof path, "%s/%s", zoo, de->d_name);
        if (!ok(spk_model_load_file(path, &m, err, sizeof err) == 0, "load %s", path)) {
            diag("%s", err);
            continue;
        }
        ok(m->n_in == 784 && spk_model_n_out(m) == 10 && m->has_readout,
           "%s: 784 inputs, a readout of 10", m->name);
        ok(m->encoding.kind == SPK_ENC_RATE || m->encoding.kind == SPK_ENC_LATENCY,
           "%s: has an input encoding", m->name);
        snprintf(path, sizeof path, "%s/%.*s.md", zoo, (int)(L - 4), de->d_name);
        double want = card_accuracy(path);
        ok(want >= 0, "%s: the card %s has an accuracy_c: line", m->name, path);
        double got = run_model(m, img, lab, n_img, npix);
        ok(got >= 0, "%s: ran over all %u test images", m->name, n_img);
        if (!ok(got >= 0 && want >= 0 && fabs(got - want) <= TOLERANCE,
                "%s: accuracy %.2f%% is within %.1f points of the card's %.2f%%", m->name, got,
                TOLERANCE, want))
            diag("update the card only if the model changed");
        if (nm < MAXM) {
            snprintf(names[nm], sizeof names[nm], "%s", m->name);
            if (!card_float_model(path, floats[nm], sizeof floats[nm])) floats[nm][0] = 0;
            accs[nm++] = got;
        }
        spk_model_free(m);
    }
    if (dir) closedir(dir);
    ok(n_models >= 1, "%d shipped model(s) checked", n_models);
    for (int a = 0; a < nm; a++) {
        if (!floats[a][0]) continue;
        int b = 0;
        while (b < nm && strcmp(names[b], floats[a]) != 0)
            b++;
        if (!ok(b < nm, "%s: its float model %s is shipped", names[a], floats[a])) continue;
        ok(accs[a] >= 0 && accs[b] >= 0 && fabs(accs[a] - accs[b]) <= TOLERANCE,
           "%s: accuracy %.2f%% within %.1f points of its float model %s (%.2f%%)", names[a],
           accs[a], TOLERANCE, names[b], accs[b]);
    }
    free(raw_img);
    free(raw_lab);
    return done_testing();
}
