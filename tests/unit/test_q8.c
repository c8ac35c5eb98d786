/* test_q8.c: int8 models (issue 14) and the float32 tanh mode.
 *
 *  - kernels: qsum_rows, qaxpy_rows, qapply and tanh32 of every table bit-identical to the
 *    scalar twin; qsum_rows exact (against 64-bit integer sums, also at the 16-bit limit of
 *    256 rows of +-127) and equal to qaxpy_rows with every factor 1 (what lets the step sum
 *    binary spikes as integers); tanh32's distance from the correctly rounded tanh;
 *  - loader: a quantised model loads (rows transposed, scales expanded, numerics named, its
 *    own checksum), every bad int8 field is refused with a message naming it;
 *  - step: an int8 layer's synaptic sum is exactly the documented float order (binary
 *    events: integer path; graded: float path; more rows than one flush), and whole int8
 *    models (per-layer and per-neuron scales, exact and float32 tanh) step bit-identically
 *    with every kernel table over 1,000 steps, through spk_step and spk_step_many.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../support/testmodel.h"
#include "../tap.h"
#include "encode.h"
#include "kernels.h"
#include "model.h"
#include "state.h"
#include "step.h"

static int64_t ordered(float f) {
    int32_t i;
    memcpy(&i, &f, 4);
    return i < 0 ? (int64_t)INT32_MIN - i : i;
}

/* ---- kernels ---- */

static void test_kernel_twins(const spk_kernels *const *ks, size_t nk) {
    spk_rng r;
    spk_rng_seed(&r, 14);
    enum { N = 600, R = 256 };
    static int8_t pool[R][N];
    static float acc0[N], acc1[N], acc2[N], y0[N], y1[N], sc[N], a[R], ones[R];
    const int8_t *rows[R];
    for (size_t q = 0; q < R; q++)
        for (size_t k = 0; k < N; k++)
            pool[q][k] = (int8_t)((int)(spk_rng_next(&r) % 255) - 127);
    for (size_t q = 0; q < R; q++)
        ones[q] = 1.0f;
    static const size_t sizes[] = {1,   7,   16,  31,  32,  33,  64, 100,
                                   128, 255, 256, 257, 300, 513, 600};
    static const size_t counts[] = {0, 1, 3, 17, 100, 255, 256};
    int exact = 1, sum_eq_axpy = 1, twins_sum = 1, twins_axpy = 1, twins_apply = 1;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
            size_t n = sizes[si], nr = counts[ci];
            for (size_t q = 0; q < nr; q++) {
                rows[q] = pool[(q * 7 + si) % R];
                a[q] = (float)(spk_rng_uniform(&r) * 4 - 2);
            }
            /* acc starts as an exact integer sum (as between two flushes) */
            for (size_t k = 0; k < n; k++)
                acc0[k] = (float)((int)(spk_rng_next(&r) % 20001) - 10000);
            memcpy(acc1, acc0, n * 4);
            memcpy(acc2, acc0, n * 4);
            ks[0]->qsum_rows(acc1, n, rows, nr);
            ks[0]->qaxpy_rows(acc2, n, ones, rows, nr);
            for (size_t k = 0; k < n; k++) {
                int64_t want = (int64_t)acc0[k];
                for (size_t q = 0; q < nr; q++)
                    want += rows[q][k];
                exact &= acc1[k] == (float)want;
            }
            sum_eq_axpy &= memcmp(acc1, acc2, n * 4) == 0;
            for (size_t t = 1; t < nk; t++) {
                memcpy(acc2, acc0, n * 4);
                ks[t]->qsum_rows(acc2, n, rows, nr);
                twins_sum &= memcmp(acc1, acc2, n * 4) == 0;
                float ref[N];
                memcpy(ref, acc0, n * 4);
                memcpy(acc2, acc0, n * 4);
                ks[0]->qaxpy_rows(ref, n, a, rows, nr);
                ks[t]->qaxpy_rows(acc2, n, a, rows, nr);
                twins_axpy &= memcmp(ref, acc2, n * 4) == 0;
                for (size_t k = 0; k < n; k++) {
                    y0[k] = y1[k] = (float)(spk_rng_uniform(&r) * 20 - 10);
                    sc[k] = (float)(spk_rng_uniform(&r) * 0.1);
                }
                ks[0]->qapply(y0, n, 0.9f, sc, ref);
                ks[t]->qapply(y1, n, 0.9f, sc, ref);
                twins_apply &= memcmp(y0, y1, n * 4) == 0;
            }
        }
    ok(exact, "qsum_rows: exact integer sums (15 widths x 7 row counts)");
    ok(sum_eq_axpy, "qsum_rows == qaxpy_rows with every factor 1, bit for bit");
    ok(twins_sum, "qsum_rows of every table == the scalar twin");
    ok(twins_axpy, "qaxpy_rows of every table == the scalar twin");
    ok(twins_apply, "qapply of every table == the scalar twin");

    /* qsum_idx: the rows by index (a u32 array, and the input field of spk_event records, as
     * the step passes them) == qsum_rows of the same rows, in every table */
    int idx_same = 1;
    static uint32_t ix[R];
    static spk_event evs[R];
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
            size_t n = sizes[si], nr = counts[ci];
            for (size_t q = 0; q < nr; q++) {
                ix[q] = (uint32_t)((q * 13 + si) % (R * N / n));
                evs[q] = (spk_event){0, ix[q], 1.0f};
                rows[q] = &pool[0][0] + (size_t)ix[q] * n;
            }
            for (size_t k = 0; k < n; k++)
                acc0[k] = (float)((int)(spk_rng_next(&r) % 20001) - 10000);
            memcpy(acc1, acc0, n * 4);
            ks[0]->qsum_rows(acc1, n, rows, nr);
            for (size_t t = 0; t < nk; t++) {
                memcpy(acc2, acc0, n * 4);
                ks[t]->qsum_idx(acc2, n, &pool[0][0], ix, sizeof *ix, nr);
                idx_same &= memcmp(acc1, acc2, n * 4) == 0;
                memcpy(acc2, acc0, n * 4);
                ks[t]->qsum_idx(acc2, n, &pool[0][0], &evs[0].input, sizeof *evs, nr);
                idx_same &= memcmp(acc1, acc2, n * 4) == 0;
            }
        }
    ok(idx_same, "qsum_idx of every table (u32 indices, and spk_event inputs in place) == "
                 "qsum_rows of the same rows, bit for bit");

    /* the 16-bit limit: 256 rows of +127 and of -127 (sums +-32512 in every lane) */
    static int8_t hi[N], lo[N];
    memset(hi, 127, sizeof hi);
    memset(lo, -127, sizeof lo);
    int extreme = 1;
    for (size_t t = 0; t < nk; t++)
        for (int sign = 0; sign < 2; sign++) {
            for (size_t q = 0; q < R; q++)
                rows[q] = sign ? lo : hi;
            memset(acc1, 0, sizeof acc1);
            ks[t]->qsum_rows(acc1, N, rows, SPK_Q8_ROWS);
            for (size_t k = 0; k < N; k++)
                extreme &= acc1[k] == (sign ? -32512.0f : 32512.0f);
        }
    ok(extreme, "qsum_rows: 256 rows of +-127 sum to +-32512 in every table (no 16-bit overflow)");
}

static void test_tanh32(const spk_kernels *const *ks, size_t nk) {
    enum { B = 4096 };
    static float x[B], y[B], z[B];
    size_t count = 0, twin_diff = 0;
    int64_t max_ulp = 0;
    double max_abs = 0;
    float worst = 0;
    uint32_t lo, hi;
    float flo = 0x1p-40f, fhi = 12.0f;
    memcpy(&lo, &flo, 4);
    memcpy(&hi, &fhi, 4);
    size_t nb = 0;
    for (uint32_t u = lo;; u += 61) {
        int last = u > hi;
        if (!last) {
            float f;
            memcpy(&f, &u, 4);
            x[nb++] = (u / 61) % 2 ? -f : f;
        }
        if (nb == B || (last && nb)) {
            ks[0]->tanh32(y, x, nb);
            for (size_t k = 0; k < nb; k++) {
                double t = tanh((double)x[k]);
                int64_t d = llabs(ordered(y[k]) - ordered((float)t));
                if (d > max_ulp) max_ulp = d, worst = x[k];
                if (fabs(y[k] - t) > max_abs) max_abs = fabs(y[k] - t);
            }
            for (size_t t = 1; t < nk; t++) {
                ks[t]->tanh32(z, x, nb);
                twin_diff += memcmp(y, z, nb * 4) != 0;
            }
            count += nb;
            nb = 0;
        }
        if (last) break;
    }
    diag("tanh32: %zu floats in [2^-40, 12], max %lld ulp (at %a), max |error| %.3g", count,
         (long long)max_ulp, (double)worst, max_abs);
    ok(count > 1000000, "tanh32 sweep covers %zu floats", count);
    ok(max_ulp <= 8, "tanh32 within 8 ulp of the correctly rounded tanh (max %lld)",
       (long long)max_ulp);
    ok(max_abs < 3e-7, "tanh32 within 3e-7 of tanh (max %.3g)", max_abs);
    is_int(twin_diff, 0, "every table's tanh32 is bit-identical to the scalar twin");
    const float special[] = {0.0f, -0.0f, 10.0f, -10.0f, 25.0f, -1e30f, 3.4e38f};
    ks[0]->tanh32(y, special, 7);
    ok(y[0] == 0.0f && !signbit(y[0]) && y[1] == 0.0f && signbit(y[1]) && y[2] == 1.0f &&
           y[3] == -1.0f && y[4] == 1.0f && y[5] == -1.0f && y[6] == 1.0f,
       "tanh32: signed zeros kept, saturates to +-1 from |x| = 10");
}

/* ---- int8 model messages ---- */

/* Quantise every layer (and the readout) of a message in place, like export.py --int8:
 * scale = max |w| / 127 per output neuron (per_layer: per layer), q = round half to even. */
static void quantize_weights(size_t n, size_t n_in, float **w, size_t *nw, ProtobufCBinaryData *q8,
                             float **scales, size_t *ns, int per_layer) {
    size_t nsc = per_layer ? 1 : n;
    float *s = calloc(nsc, sizeof *s);
    for (size_t k = 0; k < n; k++)
        for (size_t j = 0; j < n_in; j++) {
            float a = fabsf((*w)[k * n_in + j]);
            size_t at = per_layer ? 0 : k;
            if (a > s[at]) s[at] = a;
        }
    for (size_t k = 0; k < nsc; k++)
        s[k] = s[k] > 0 ? s[k] / 127.0f : 1.0f;
    uint8_t *b = malloc(n * n_in);
    for (size_t k = 0; k < n; k++)
        for (size_t j = 0; j < n_in; j++) {
            float v = nearbyintf((*w)[k * n_in + j] / s[per_layer ? 0 : k]);
            v = v > 127 ? 127 : v < -127 ? -127 : v;
            b[k * n_in + j] = (uint8_t)(int8_t)v;
        }
    free(*w);
    *w = NULL;
    *nw = 0;
    q8->data = b;
    q8->len = n * n_in;
    *scales = s;
    *ns = nsc;
}

static Spikeserve__Model *q8_model(const tm_spec *sp, int per_layer, int tanh32) {
    Spikeserve__Model *pm = tm_model_new(sp);
    for (size_t l = 0; l < pm->n_layers; l++) {
        Spikeserve__SrcLayer *L = pm->layers[l];
        quantize_weights(L->n, L->n_in, &L->weights, &L->n_weights, &L->weights_q8,
                         &L->weight_scales, &L->n_weight_scales, per_layer);
    }
    if (pm->readout) {
        Spikeserve__Readout *R = pm->readout;
        quantize_weights(R->n, R->n_in, &R->weights, &R->n_weights, &R->weights_q8,
                         &R->weight_scales, &R->n_weight_scales, per_layer);
    }
    pm->tanh = tanh32 ? SPIKESERVE__MODEL__TANH__TANH_FLOAT32 : SPIKESERVE__MODEL__TANH__TANH_EXACT;
    return pm;
}

static void q8_model_free(Spikeserve__Model *pm) {
    if (!pm) return;
    for (size_t l = 0; l < pm->n_layers; l++) {
        free(pm->layers[l]->weights_q8.data);
        free(pm->layers[l]->weight_scales);
    }
    if (pm->readout) {
        free(pm->readout->weights_q8.data);
        free(pm->readout->weight_scales);
    }
    tm_model_free(pm);
}

static int load_pm(const Spikeserve__Model *pm, spk_model **m, char *err, size_t errlen) {
    size_t len;
    uint8_t *b = tm_pack(pm, &len);
    err[0] = 0;
    int rc = spk_model_load_bytes(b, len, m, err, errlen);
    free(b);
    return rc;
}

static const tm_spec SMALL = {
    .n_in = 40, .n_layers = 2, .n = {37, 21}, .readout = 5, .init_state = 1, .vary = 1, .seed = 21};

static void test_load(void) {
    char err[512];
    Spikeserve__Model *pf = tm_model_new(&SMALL), *pm = q8_model(&SMALL, 0, 1);
    spk_model *mf = NULL, *m = NULL;
    is_int(load_pm(pf, &mf, err, sizeof err), 0, "float32 model loads");
    is_int(load_pm(pm, &m, err, sizeof err), 0, "int8 model (scale per neuron) loads");
    if (!m || !mf) {
        diag("%s", err);
        return;
    }
    const spk_layer *L = &m->layers[0];
    const Spikeserve__SrcLayer *P = pm->layers[0];
    int transposed = L->wt == NULL && L->wq != NULL, scales = 1;
    for (uint32_t k = 0; k < L->n; k++) {
        scales &= L->wscale[k] == P->weight_scales[k];
        for (uint32_t j = 0; j < L->n_in; j++)
            transposed &=
                L->wq[(size_t)j * L->n + k] == (int8_t)P->weights_q8.data[k * L->n_in + j];
    }
    ok(transposed, "int8 rows stored transposed (row j: the weights out of input j)");
    ok(scales, "one scale per neuron");
    ok(m->readout.wq != NULL && m->readout.wt == NULL &&
           m->readout.wscale[4] == pm->readout->weight_scales[4],
       "int8 readout");
    is_str(m->numerics, "int8 weights (scale per neuron), float32 tanh", "numerics named");
    is_str(mf->numerics, "float32", "a float32 model's numerics: float32");
    is_int(m->int8_layers, 3, "int8_layers counts the SRC layers and the readout");
    ok(m->tanh == SPK_TANH_FLOAT32 && m->layers[1].tanh == SPK_TANH_FLOAT32,
       "tanh mode on the model and its layers");
    ok(m->checksum != mf->checksum, "checksum differs from the float32 model's");
    uint64_t c1 = m->checksum;
    spk_model_free(m);
    m = NULL;
    pm->tanh = SPIKESERVE__MODEL__TANH__TANH_EXACT;
    load_pm(pm, &m, err, sizeof err);
    ok(m && m->checksum != c1, "the tanh mode is part of the checksum");
    spk_model_free(m);
    m = NULL;
    pm->layers[1]->weights_q8.data[3] ^= 1;
    load_pm(pm, &m, err, sizeof err);
    ok(m && m->checksum != c1, "one int8 weight changed: another checksum");
    pm->layers[1]->weights_q8.data[3] ^= 1;
    spk_model_free(m);
    m = NULL;
    Spikeserve__Model *pl = q8_model(&SMALL, 1, 0);
    is_int(load_pm(pl, &m, err, sizeof err), 0, "int8 model (scale per layer) loads");
    if (m) {
        int rep = 1;
        for (uint32_t k = 0; k < m->layers[1].n; k++)
            rep &= m->layers[1].wscale[k] == pl->layers[1]->weight_scales[0];
        ok(rep, "a per-layer scale repeated for every neuron");
        is_str(m->numerics, "int8 weights (scale per layer), exact tanh", "numerics named");
    }
    spk_model_free(m);
    spk_model_free(mf);
    q8_model_free(pl);
    tm_model_free(pf);
    q8_model_free(pm);
}

typedef struct {
    const char *want;
    int which;
} bad_q8;

static void test_bad(void) {
    static const bad_q8 BAD[] = {
        {"layers[1]: both weights (777 values) and weights_q8 (777 bytes); a layer has one of "
         "them",
         0},
        {"layers[0].weights_q8: 1479 bytes, expected 1480 (37 x 40)", 1},
        {"layers[1].weights_q8[5]: -128 out of range [-127, 127]", 2},
        {"layers[0].weight_scales: 2 values, expected 1 (per layer) or 37 (per neuron)", 3},
        {"layers[1].weight_scales[4]: 0 out of range (0, 7874.02]", 4},
        {"readout.weight_scales[0]: nan out of range (0, 7874.02]", 5},
        {"layers[0].weight_scales[1]: 10000 out of range (0, 7874.02]", 6},
        {"layers[0].weight_scales: 37 values without weights_q8", 7},
        {"readout.weights_q8: 104 bytes, expected 105 (5 x 21)", 8},
        {"tanh: 7 is not TANH_EXACT or TANH_FLOAT32", 9},
        {"layers[1].weight_scales[0]: -0.5 out of range (0, 7874.02]", 10},
    };
    char err[512];
    for (size_t c = 0; c < sizeof BAD / sizeof BAD[0]; c++) {
        Spikeserve__Model *pm = q8_model(&SMALL, 0, 0), *pf = NULL;
        Spikeserve__SrcLayer *L0 = pm->layers[0], *L1 = pm->layers[1];
        float *extra = NULL;
        size_t keep_len = 0, keep_ns = 0;
        switch (BAD[c].which) {
        case 0:
            extra = calloc(L1->weights_q8.len, sizeof *extra);
            L1->weights = extra;
            L1->n_weights = L1->weights_q8.len;
            break;
        case 1:
            keep_len = L0->weights_q8.len--;
            break;
        case 2:
            L1->weights_q8.data[5] = 0x80;
            break;
        case 3:
            keep_ns = L0->n_weight_scales, L0->n_weight_scales = 2;
            break;
        case 4:
            L1->weight_scales[4] = 0.0f;
            break;
        case 5:
            pm->readout->weight_scales[0] = NAN;
            break;
        case 6:
            L0->weight_scales[1] = 10000.0f;
            break;
        case 7: /* a float32 layer 0 with scales */
            pf = tm_model_new(&SMALL);
            free(L0->weights_q8.data);
            L0->weights_q8.data = NULL;
            keep_len = L0->weights_q8.len, L0->weights_q8.len = 0;
            L0->weights = pf->layers[0]->weights, L0->n_weights = pf->layers[0]->n_weights;
            pf->layers[0]->weights = NULL;
            break;
        case 8:
            keep_len = pm->readout->weights_q8.len--;
            break;
        case 9:
            pm->tanh = 7;
            break;
        case 10:
            L1->weight_scales[0] = -0.5f;
            break;
        }
        spk_model *m = (spk_model *)1;
        int rc = load_pm(pm, &m, err, sizeof err);
        ok(rc == SPK_EFORMAT && m == NULL, "refused: %s", BAD[c].want);
        is_str(err, BAD[c].want, "  message names the field");
        if (BAD[c].which == 0) L1->weights = NULL, L1->n_weights = 0, free(extra);
        if (BAD[c].which == 1) L0->weights_q8.len = keep_len;
        if (BAD[c].which == 3) L0->n_weight_scales = keep_ns;
        if (BAD[c].which == 8) pm->readout->weights_q8.len = keep_len;
        tm_model_free(pf);
        q8_model_free(pm);
    }
}

/* ---- stepping ---- */

/* The int8 kernels read nothing past a row's n bytes: rows that end where an unreadable page
 * begins (a read past them would crash this test), widths with every kind of tail. */
static void test_row_bounds(const spk_kernels *const *ks, size_t nk) {
    long pg = sysconf(_SC_PAGESIZE);
    uint8_t *mem =
        mmap(NULL, 2 * (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (!ok(mem != MAP_FAILED && mprotect(mem + pg, (size_t)pg, PROT_NONE) == 0,
            "a page followed by an unreadable one"))
        return;
    static const size_t widths[] = {1, 10, 15, 17, 33, 100, 255};
    float acc[256], a[4] = {0.5f, -1.0f, 2.0f, 0.25f};
    int good = 1;
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
        size_t n = widths[w];
        const int8_t *base = (const int8_t *)(mem + pg) - 4 * n; /* 4 rows, the last at the end */
        memset(mem + pg - 4 * n, 3, 4 * n);
        const int8_t *rows[4] = {base + 3 * n, base, base + 2 * n, base + 3 * n};
        uint32_t ix[4] = {3, 0, 2, 3};
        for (size_t t = 0; t < nk; t++) {
            memset(acc, 0, sizeof acc);
            ks[t]->qaxpy_rows(acc, n, a, rows, 4);
            good &= acc[n - 1] == 3.0f * (0.5f - 1.0f + 2.0f + 0.25f);
            memset(acc, 0, sizeof acc);
            ks[t]->qsum_rows(acc, n, rows, 4);
            good &= acc[n - 1] == 12.0f;
            memset(acc, 0, sizeof acc);
            ks[t]->qsum_idx(acc, n, base, ix, sizeof *ix, 4);
            good &= acc[n - 1] == 12.0f;
        }
    }
    ok(good, "qaxpy_rows, qsum_rows, qsum_idx of every table read no byte past a row (rows "
             "before an unreadable page, 7 widths)");
    munmap(mem, 2 * (size_t)pg);
}

/* One layer, no readout: after one step from the initial state, i must be alpha * i0 +
 * scale * acc with acc the float sum of v_j * q_j in event order (the documented order), for
 * binary events (the integer path) and graded ones (the float path), with more rows than one
 * flush holds. */
static void test_sum_order(const spk_kernels *const *ks, size_t nk) {
    tm_spec sp = {.n_in = 700, .n_layers = 1, .n = {70}, .init_state = 1, .seed = 4};
    Spikeserve__Model *pm = q8_model(&sp, 0, 0);
    spk_model *m = NULL;
    char err[256];
    if (!ok(load_pm(pm, &m, err, sizeof err) == 0, "700-input int8 layer loads")) return;
    const spk_layer *L = &m->layers[0];
    for (int graded = 0; graded < 2; graded++) {
        size_t ne;
        spk_event *ev = tm_events(1, sp.n_in, 0.8f, graded, 77 + graded, &ne);
        float acc[70] = {0}, want[70];
        for (size_t e = 0; e < ne; e++)
            for (uint32_t k = 0; k < L->n; k++)
                acc[k] = acc[k] + ev[e].value * (float)L->wq[(size_t)ev[e].input * L->n + k];
        for (uint32_t k = 0; k < L->n; k++)
            want[k] = L->alpha * L->i0[k] + L->wscale[k] * acc[k];
        int same = 1;
        for (size_t t = 0; t < nk; t++) {
            spk_set_kernels(ks[t]->name);
            spk_state *s = spk_state_create(m);
            spk_scratch *sc = spk_scratch_create(m);
            spk_input in = {1, ev, ne, NULL};
            spk_output out = {0};
            same &= spk_step(s, &in, &out, sc, err, sizeof err) == 0 &&
                    memcmp(spk_state_i(s, 0), want, sizeof want) == 0;
            spk_scratch_free(sc);
            spk_state_free(s);
        }
        spk_set_kernels("auto");
        ok(same && ne > 2 * 256,
           "%s events (%zu rows, more than 2 flushes): i == alpha i0 + scale * (sum in event "
           "order), every table",
           graded ? "graded" : "binary", ne);
        if (!graded) {
            /* binary events, one per input, are summed straight from the events; a
             * zero-valued event (no work) sends the same rows through the row list instead */
            spk_event *ev2 = malloc((ne + 1) * sizeof *ev2);
            memcpy(ev2, ev, ne * sizeof *ev);
            ev2[ne] = (spk_event){0, 3, 0.0f};
            int same2 = 1;
            for (size_t t = 0; t < nk; t++) {
                spk_set_kernels(ks[t]->name);
                spk_state *s1 = spk_state_create(m), *s2 = spk_state_create(m);
                spk_scratch *sc = spk_scratch_create(m);
                spk_input in1 = {1, ev, ne, NULL}, in2 = {1, ev2, ne + 1, NULL};
                same2 &= spk_step(s1, &in1, NULL, sc, err, sizeof err) == 0 &&
                         spk_step(s2, &in2, NULL, sc, err, sizeof err) == 0 &&
                         tm_state_equal(s1, s2) &&
                         memcmp(spk_state_i(s1, 0), want, sizeof want) == 0;
                spk_scratch_free(sc);
                spk_state_free(s1);
                spk_state_free(s2);
            }
            spk_set_kernels("auto");
            ok(same2, "binary events summed in place == the same rows through the row list "
                      "(a zero-valued event added), every table");
            free(ev2);
        }
        free(ev);
    }
    spk_model_free(m);
    q8_model_free(pm);
}

/* float32 layers: binary events (value 1, ascending inputs) are added straight from the events
 * (add_idx, no multiplies); a zero-valued event (no work) sends the same rows through the row
 * list and axpy_rows instead: the same state bit for bit, with every table, over 20 steps of
 * ~560 events (more than two flushes of rows). */
static void test_f32_inplace(const spk_kernels *const *ks, size_t nk) {
    tm_spec sp = {.n_in = 700,
                  .n_layers = 2,
                  .n = {70, 30},
                  .readout = 5,
                  .init_state = 1,
                  .vary = 1,
                  .seed = 6};
    Spikeserve__Model *pm = tm_model_new(&sp);
    spk_model *m = NULL;
    char err[256];
    if (!ok(load_pm(pm, &m, err, sizeof err) == 0, "700-input float32 model loads")) return;
    enum { T = 20 };
    size_t ne;
    spk_event *ev = tm_events(T, sp.n_in, 0.8f, 0, 99, &ne);
    spk_event *ev2 = malloc((ne + T) * sizeof *ev2);
    size_t n2 = 0;
    for (size_t e = 0; e < ne; e++) { /* a zero-valued event ends every step */
        ev2[n2++] = ev[e];
        if (e + 1 == ne || ev[e + 1].step != ev[e].step)
            ev2[n2++] = (spk_event){ev[e].step, 5, 0.0f};
    }
    int same = 1;
    for (size_t t = 0; t < nk; t++) {
        spk_set_kernels(ks[t]->name);
        spk_state *s1 = spk_state_create(m), *s2 = spk_state_create(m);
        spk_scratch *sc = spk_scratch_create(m);
        spk_input in1 = {T, ev, ne, NULL}, in2 = {T, ev2, n2, NULL};
        same &= spk_step(s1, &in1, NULL, sc, err, sizeof err) == 0 &&
                spk_step(s2, &in2, NULL, sc, err, sizeof err) == 0 && tm_state_equal(s1, s2);
        spk_scratch_free(sc);
        spk_state_free(s1);
        spk_state_free(s2);
    }
    /* events that are not binary ascending spikes at one place (a value 0.5, or a repeated
     * input: the row list sums 1 + 1 first, then adds 2 x) must take the row-list path: the
     * same state with and without a zero-valued event, wherever the place falls in the 8-event
     * blocks of the check */
    static const size_t at[] = {1, 2, 7, 8, 9, 15, 16, 17, 24, 100, 299};
    size_t n0 = 0;
    while (n0 < ne && ev[n0].step == 0)
        n0++;
    int gate = 1;
    for (size_t v = 0; v < 2 * sizeof at / sizeof at[0]; v++) {
        size_t pos = at[v / 2] < n0 ? at[v / 2] : n0 - 1;
        spk_event *e1 = malloc((n0 + 1) * sizeof *e1);
        memcpy(e1, ev, n0 * sizeof *e1);
        if (v % 2)
            e1[pos].input = e1[pos - 1].input;
        else
            e1[pos].value = 0.5f;
        e1[n0] = (spk_event){0, 5, 0.0f};
        for (size_t t = 0; t < nk; t++) {
            spk_set_kernels(ks[t]->name);
            spk_state *s1 = spk_state_create(m), *s2 = spk_state_create(m);
            spk_scratch *sc = spk_scratch_create(m);
            spk_input in1 = {1, e1, n0, NULL}, in2 = {1, e1, n0 + 1, NULL};
            gate &= spk_step(s1, &in1, NULL, sc, err, sizeof err) == 0 &&
                    spk_step(s2, &in2, NULL, sc, err, sizeof err) == 0 && tm_state_equal(s1, s2);
            spk_scratch_free(sc);
            spk_state_free(s1);
            spk_state_free(s2);
        }
        free(e1);
    }
    spk_set_kernels("auto");
    ok(gate, "float32: a value 0.5 or a repeated input at 11 places (around the 8-event blocks "
             "of the check) is not taken for binary spikes");
    ok(same && ne > 2 * 256 * (size_t)T,
       "float32: binary events added in place == the same rows through the row list (%zu "
       "events, %d steps), every table",
       ne, T);
    free(ev);
    free(ev2);
    spk_model_free(m);
    tm_model_free(pm);
}

/* Whole int8 models: every table gives the scalar twin's states bit for bit over 1,000 steps,
 * and spk_step_many() the same as spk_step() one state at a time. */
static void test_models(const spk_kernels *const *ks, size_t nk) {
    static const tm_spec specs[] = {
        {.n_in = 50,
         .n_layers = 2,
         .n = {300, 40},
         .readout = 7,
         .init_state = 1,
         .vary = 1,
         .seed = 31},
        {.n_in = 784, .n_layers = 2, .n = {256, 256}, .readout = 10, .seed = 32},
        {.n_in = 33, .n_layers = 3, .n = {17, 129, 5}, .vary = 1, .seed = 33},
    };
    char err[256];
    for (size_t c = 0; c < sizeof specs / sizeof specs[0]; c++)
        for (int mode = 0; mode < 3; mode++) { /* neuron+exact, layer+exact, neuron+tanh32 */
            Spikeserve__Model *pm = q8_model(&specs[c], mode == 1, mode == 2);
            spk_model *m = NULL;
            if (!ok(load_pm(pm, &m, err, sizeof err) == 0, "model %zu mode %d loads", c, mode)) {
                diag("%s", err);
                q8_model_free(pm);
                continue;
            }
            enum { T = 1000, PARTS = 4 };
            size_t ne[2];
            spk_event *ev[2] = {tm_events(T, m->n_in, 0.06f, 0, 500 + c, &ne[0]),
                                tm_events(T, m->n_in, 0.06f, 1, 600 + c, &ne[1])};
            spk_state *ref[2] = {spk_state_create(m), spk_state_create(m)};
            spk_scratch *sc = spk_scratch_create(m);
            uint64_t nz[2][SPK_MAX_LAYERS] = {{0}};
            spk_set_kernels("scalar");
            for (int g = 0; g < 2; g++) {
                spk_input in = {T, ev[g], ne[g], NULL};
                spk_output out = {.nonzero = nz[g]};
                spk_step(ref[g], &in, &out, sc, err, sizeof err);
            }
            int same = 1;
            for (size_t t = 1; t < nk; t++) {
                spk_set_kernels(ks[t]->name);
                for (int g = 0; g < 2; g++) {
                    spk_state *s = spk_state_create(m);
                    spk_input in = {T, ev[g], ne[g], NULL};
                    spk_step(s, &in, NULL, sc, err, sizeof err);
                    same &= tm_state_equal(s, ref[g]);
                    spk_state_free(s);
                }
            }
            /* spk_step_many over the binary and graded inputs, in 4 parts of 250 steps */
            spk_set_kernels("auto");
            spk_state *many[2] = {spk_state_create(m), spk_state_create(m)};
            size_t cur[2] = {0, 0};
            for (int part = 0; part < PARTS; part++) {
                spk_input in[2];
                for (int g = 0; g < 2; g++) {
                    size_t e0 = cur[g];
                    while (cur[g] < ne[g] && ev[g][cur[g]].step < (uint32_t)(part + 1) * T / PARTS)
                        cur[g]++;
                    for (size_t e = e0; e < cur[g]; e++)
                        ev[g][e].step -= (uint32_t)part * T / PARTS;
                    in[g] = (spk_input){T / PARTS, ev[g] + e0, cur[g] - e0, NULL};
                }
                spk_step_many(many, in, NULL, 2, sc, NULL, err, sizeof err);
            }
            int same_many = tm_state_equal(many[0], ref[0]) && tm_state_equal(many[1], ref[1]);
            ok(same && same_many && nz[0][0] > 100 && nz[1][m->n_layers - 1] > 20,
               "model %zu (%u layers), %s: every table and spk_step_many == the scalar twin, 1000 "
               "steps, binary and graded input (%llu, %llu outputs of layer 0)",
               c, m->n_layers,
               mode == 0   ? "scale per neuron"
               : mode == 1 ? "scale per layer"
                           : "float32 tanh",
               (unsigned long long)nz[0][0], (unsigned long long)nz[1][0]);
            for (int g = 0; g < 2; g++) {
                spk_state_free(ref[g]);
                spk_state_free(many[g]);
                free(ev[g]);
            }
            spk_scratch_free(sc);
            spk_model_free(m);
            q8_model_free(pm);
        }
}

/* The group step of spk_step_many: 150 states (three chunks) of one model, inputs of every
 * kind (binary, graded, one step's events in descending input order, dense rows, 1 to 3
 * steps; a round where one state per chunk could join, one whose events overflow the
 * group's buffers, one so sparse that int8 chunks take the row-by-row path, not the dense
 * product), against spk_step on each state alone: states and outputs bit for bit, with
 * every kernel table; and the group step did take part (spk_scratch_grouped). */
static void test_group(const spk_kernels *const *ks, size_t nk) {
    static const tm_spec sp = {.n_in = 784,
                               .n_layers = 2,
                               .n = {256, 100},
                               .readout = 10,
                               .init_state = 1,
                               .vary = 1,
                               .seed = 41};
    enum { NS = 150, ROUNDS = 6 };
    char err[256];
    is_int(spk_set_group_step(SPK_GROUP_ALL), SPK_GROUP_OFF, "the group step is off by default");
    for (int kind = 0; kind < 3; kind++) { /* float32, int8 per neuron, int8 + tanh32 */
        Spikeserve__Model *pm = kind ? q8_model(&sp, 0, kind == 2) : tm_model_new(&sp);
        spk_model *m = NULL;
        if (!ok(load_pm(pm, &m, err, sizeof err) == 0, "group model %d loads", kind)) continue;
        for (size_t t = 0; t < nk; t++) {
            spk_set_kernels(ks[t]->name);
            spk_state *a[NS], *b[NS];
            spk_scratch *sc = spk_scratch_create(m);
            for (int k = 0; k < NS; k++)
                a[k] = spk_state_create(m), b[k] = spk_state_create(m);
            int same = 1;
            size_t nsp = spk_max_spikes(100, 3);
            spk_spike *spa = calloc(NS * nsp, sizeof *spa), *spb = calloc(NS * nsp, sizeof *spb);
            float *ro_a = calloc(NS * 10, sizeof(float)), *ro_b = calloc(NS * 10, sizeof(float));
            float *dense = calloc(3 * 784, sizeof(float));
            for (int j = 0; j < 3 * 784; j += 5)
                dense[j] = 1.0f;
            for (int round = 0; round < ROUNDS; round++) {
                spk_input in[NS];
                spk_output oa[NS], ob[NS];
                spk_event *evs[NS];
                for (int k = 0; k < NS; k++) {
                    uint32_t steps = 1 + (uint32_t)(k + round) % 3;
                    size_t ne;
                    int graded = k % 5 == 4;
                    /* the last round: dense enough that a chunk's pairs overflow the group's
                     * buffers (the states left out step alone) */
                    float p = round == ROUNDS - 1 ? 0.9f : round == 3 ? 0.03f : 0.25f;
                    evs[k] = tm_events(steps, 784, p, graded, 1000 * round + k, &ne);
                    if (k % 7 == 6) /* step 0's events in descending input order */
                        for (size_t x = 0, y = 0; y < ne && evs[k][y].step == 0; y++)
                            if (y + 1 == ne || evs[k][y + 1].step != 0)
                                for (size_t lo = x, hi = y; lo < hi; lo++, hi--) {
                                    spk_event tmp = evs[k][lo];
                                    evs[k][lo] = evs[k][hi];
                                    evs[k][hi] = tmp;
                                }
                    /* round 4: only state 0 of each chunk can join (dense rows for the
                     * others): too few, so it steps alone too (its events are given back) */
                    int alone = round == 4 && k % 64 != 0;
                    in[k] = (spk_input){steps, evs[k], ne, k % 11 == 10 || alone ? dense : NULL};
                    oa[k] =
                        (spk_output){.spikes = {spa + k * nsp, nsp, 0}, .readout = ro_a + k * 10};
                    ob[k] =
                        (spk_output){.spikes = {spb + k * nsp, nsp, 0}, .readout = ro_b + k * 10};
                }
                same &= spk_step_many(a, in, oa, NS, sc, NULL, err, sizeof err) == 0;
                for (int k = 0; k < NS; k++) {
                    same &= spk_step(b[k], &in[k], &ob[k], sc, err, sizeof err) == 0;
                    same &= tm_state_equal(a[k], b[k]);
                    same &= oa[k].spikes.len == ob[k].spikes.len &&
                            memcmp(oa[k].spikes.buf, ob[k].spikes.buf,
                                   oa[k].spikes.len * sizeof(spk_spike)) == 0 &&
                            memcmp(ro_a + k * 10, ro_b + k * 10, 10 * sizeof(float)) == 0;
                    free(evs[k]);
                }
            }
            uint64_t g = spk_scratch_grouped(sc), gd = spk_scratch_grouped_dense(sc);
            if (kind)
                ok(gd > 0 && gd < g,
                   "  int8, %s: both group paths ran: %llu state-steps dense, %llu sparse",
                   ks[t]->name, (unsigned long long)gd, (unsigned long long)(g - gd));
            else
                is_int(gd, 0, "  float32: no dense int8 product");
            ok(same && g > NS * ROUNDS,
               "%s model, %s kernels: spk_step_many of %d states == "
               "spk_step alone, states, spikes and readout bit for bit, %d rounds (%llu "
               "state-steps through the group step)",
               kind == 0   ? "float32"
               : kind == 1 ? "int8"
                           : "int8 + tanh32",
               ks[t]->name, NS, ROUNDS, (unsigned long long)g);
            for (int k = 0; k < NS; k++)
                spk_state_free(a[k]), spk_state_free(b[k]);
            spk_scratch_free(sc);
            free(spa), free(spb), free(ro_a), free(ro_b), free(dense);
        }
        spk_set_kernels("auto");
        spk_model_free(m);
        if (kind)
            q8_model_free(pm);
        else
            tm_model_free(pm);
    }
}

/* SPK_GROUP_AUTO groups float32 layers only; results as alone either way. */
static void test_group_auto(void) {
    static const tm_spec sp = {.n_in = 100, .n_layers = 1, .n = {64}, .seed = 42};
    char err[256];
    for (int kind = 0; kind < 2; kind++) {
        Spikeserve__Model *pm = kind ? q8_model(&sp, 0, 0) : tm_model_new(&sp);
        spk_model *m = NULL;
        if (!ok(load_pm(pm, &m, err, sizeof err) == 0, "auto-group model %d loads", kind)) continue;
        enum { NS = 8 };
        spk_state *a[NS], *b[NS];
        spk_input in[NS];
        spk_event *ev[NS];
        spk_scratch *sc = spk_scratch_create(m);
        int same = 1;
        for (int k = 0; k < NS; k++) {
            size_t ne;
            ev[k] = tm_events(2, 100, 0.3f, 0, 70 + k, &ne);
            in[k] = (spk_input){2, ev[k], ne, NULL};
            a[k] = spk_state_create(m), b[k] = spk_state_create(m);
        }
        int was = spk_set_group_step(SPK_GROUP_AUTO);
        same &= spk_step_many(a, in, NULL, NS, sc, NULL, err, sizeof err) == 0;
        spk_set_group_step(was);
        for (int k = 0; k < NS; k++) {
            same &= spk_step(b[k], &in[k], NULL, sc, err, sizeof err) == 0 &&
                    tm_state_equal(a[k], b[k]);
            spk_state_free(a[k]), spk_state_free(b[k]);
            free(ev[k]);
        }
        uint64_t g = spk_scratch_grouped(sc);
        ok(same && (kind ? g == 0 : g == 2 * NS),
           "SPK_GROUP_AUTO: %s layer %s (%llu state-steps grouped), results as alone",
           kind ? "int8" : "float32", kind ? "steps alone" : "grouped", (unsigned long long)g);
        spk_scratch_free(sc);
        spk_model_free(m);
        if (kind)
            q8_model_free(pm);
        else
            tm_model_free(pm);
    }
}

int main(void) {
    const spk_kernels *ks[8];
    size_t nk = spk_kernels_list(ks, 8);
    diag("kernel tables: %zu (best: %s)", nk, ks[nk - 1]->name);
    test_kernel_twins(ks, nk);
    test_row_bounds(ks, nk);
    test_tanh32(ks, nk);
    test_load();
    test_bad();
    test_sum_order(ks, nk);
    test_f32_inplace(ks, nk);
    test_models(ks, nk);
    test_group(ks, nk);
    spk_set_group_step(SPK_GROUP_OFF);
    test_group_auto();
    return done_testing();
}
