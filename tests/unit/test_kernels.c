/* test_kernels.c: every optimised kernel against its scalar twin (bit-identical by design,
 * so compared bit for bit), and the accuracy of tanh against libm's double tanh rounded to
 * float, over a sweep of about 34 million floats. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "encode.h"
#include "kernels.h"
#include "step.h"

static int64_t ordered(float f) { /* floats as integers in order: ulp distance = difference */
    int32_t i;
    memcpy(&i, &f, 4);
    return i < 0 ? (int64_t)INT32_MIN - i : i;
}

static void test_tanh(const spk_kernels *const *ks, size_t nk) {
    enum { B = 4096 };
    float x[B], y[B], z[B];
    size_t count = 0, off1 = 0, worse = 0, twin_diff = 0;
    int64_t max_ulp = 0;
    float worst_x = 0;
    /* every 16th float with |x| in [2^-60, 20], both signs, plus specials */
    uint32_t lo, hi;
    float flo = 0x1p-60f, fhi = 20.0f;
    memcpy(&lo, &flo, 4);
    memcpy(&hi, &fhi, 4);
    size_t nb = 0;
    for (uint32_t u = lo;; u += 16) {
        int last = u > hi;
        if (!last) {
            float f;
            memcpy(&f, &u, 4);
            x[nb++] = (u / 16) % 2 ? -f : f;
        }
        if (nb == B || (last && nb)) {
            ks[0]->tanh(y, x, nb);
            for (size_t k = 0; k < nb; k++) {
                float want = (float)tanh((double)x[k]);
                int64_t d = llabs(ordered(y[k]) - ordered(want));
                if (d > max_ulp) max_ulp = d, worst_x = x[k];
                off1 += d == 1;
                worse += d > 1;
            }
            for (size_t t = 1; t < nk; t++) {
                ks[t]->tanh(z, x, nb);
                twin_diff += memcmp(y, z, nb * 4) != 0;
            }
            count += nb;
            nb = 0;
        }
        if (last) break;
    }
    diag("tanh: %zu floats, %zu off by one ulp from (float)tanh((double)x), %zu worse; max %lld "
         "ulp at %a",
         count, off1, worse, (long long)max_ulp, (double)worst_x);
    ok(count > 10000000, "tanh sweep covers %zu floats", count);
    is_int(worse, 0, "tanh never more than 1 ulp from the correctly rounded value");
    ok(off1 * 100000 < count, "1-ulp differences are rare (%zu of %zu)", off1, count);
    is_int(twin_diff, 0, "every kernel's tanh is bit-identical to the scalar twin");

    const float special[] = {0.0f,     -0.0f,  0x1p-149f, -0x1p-140f, 1e-30f, 9.0f,
                             9.5f,     20.0f,  25.0f,     1e30f,      -1e30f, 3.4e38f,
                             -3.4e38f, 0.125f, -0.125f,   0.12499999f};
    size_t ns = sizeof special / sizeof special[0];
    for (size_t t = 0; t < nk; t++) {
        ks[t]->tanh(y, special, ns);
        int good = 1;
        for (size_t k = 0; k < ns; k++) {
            float want = (float)tanh((double)special[k]);
            if (memcmp(&y[k], &want, 4) != 0) {
                good = 0;
                diag("%s tanh(%a) = %a, want %a", ks[t]->name, (double)special[k], (double)y[k],
                     (double)want);
            }
        }
        ok(good, "%s tanh exact at 0, -0, denormals, tiny, large and saturated values",
           ks[t]->name);
    }
}

static void fill(spk_rng *r, float *v, size_t n, float lo, float hi) {
    for (size_t k = 0; k < n; k++)
        v[k] = lo + (hi - lo) * spk_rng_uniform(r);
}

static void test_twins(const spk_kernels *const *ks, size_t nk) {
    spk_rng r;
    spk_rng_seed(&r, 5);
    enum { N = 300 };
    /* idx and val: room for N rounded up to 16, as src_update asks */
    float w[N], y0[N], y1[N], i[N], h0[N], h1[N], hs0[N], hs1[N], x[N], b[N], v0[N + 16],
        v1[N + 16];
    uint32_t idx0[N + 16], idx1[N + 16];
    for (size_t t = 1; t < nk; t++) {
        const spk_kernels *S = ks[0], *K = ks[t];
        int same_axpy = 1, same_add = 1, same_upd = 1, same_nz = 1, same_rows = 1, outs_ok = 1,
            same_idx = 1;
        size_t spikes = 0;
        for (int rep = 0; rep < 400; rep++) {
            size_t n = 1 + spk_rng_next(&r) % N;
            fill(&r, w, n, -3, 3);
            fill(&r, y0, n, -50, 50);
            memcpy(y1, y0, n * 4);
            float a = (float)(spk_rng_uniform(&r) * 4 - 2);
            S->axpy(y0, a, w, n), K->axpy(y1, a, w, n);
            same_axpy &= memcmp(y0, y1, n * 4) == 0;
            S->add(y0, w, n), K->add(y1, w, n);
            same_add &= memcmp(y0, y1, n * 4) == 0;

            /* axpy_rows: the twin, and scaling then nr axpy calls in order, all equal (also
             * with no rows: then it only scales) */
            enum { R = 40 };
            static float pool[R][N], va[R];
            const float *rows[R];
            size_t nr = spk_rng_next(&r) % R;
            for (size_t q = 0; q < nr; q++) {
                fill(&r, pool[q], n, -2, 2);
                rows[q] = pool[q];
                /* every 4th call all factors 1 (binary spikes: the add-only path) */
                va[q] = rep % 4 == 1 ? 1.0f : (float)(spk_rng_uniform(&r) * 4 - 2);
            }
            float sc = rep % 3 == 0 ? 1.0f : (float)(spk_rng_uniform(&r) * 2 - 0.5);
            memcpy(y1, y0, n * 4);
            float y2[N];
            for (size_t k = 0; k < n; k++)
                y2[k] = sc * y0[k];
            S->axpy_rows(y0, n, sc, va, rows, nr);
            K->axpy_rows(y1, n, sc, va, rows, nr);
            for (size_t q = 0; q < nr; q++)
                S->axpy(y2, va[q], rows[q], n);
            same_rows &= memcmp(y0, y1, n * 4) == 0 && memcmp(y0, y2, n * 4) == 0;

            /* add_idx: the rows by index (u32 array, stride 4; and every 3rd u32, stride 12,
             * as the inputs of spk_event records) == axpy_rows with every factor 1 */
            {
                static uint32_t ix[4 * R]; /* R indices, then R more at stride 3 */
                static float base[R * N], ones[R], ya[N], yb[N], yc[N];
                const float *brows[R];
                for (size_t q = 0; q < nr; q++) {
                    ix[q] = (uint32_t)((q * 7 + n) % R);
                    ix[R + 3 * q] = ix[q];
                    brows[q] = base + (size_t)ix[q] * n;
                    ones[q] = 1.0f;
                }
                if (rep == 0) fill(&r, base, R * N, -2, 2);
                fill(&r, ya, n, -50, 50);
                memcpy(yb, ya, n * 4), memcpy(yc, ya, n * 4);
                S->axpy_rows(ya, n, sc, ones, brows, nr);
                K->add_idx(yb, n, sc, base, ix, 4, nr);
                S->add_idx(yc, n, sc, base, ix + R, 12, nr);
                same_idx &= memcmp(ya, yb, n * 4) == 0 && memcmp(ya, yc, n * 4) == 0;
            }

            spk_layer L = {0};
            L.n = L.n_in = (uint32_t)n;
            L.alpha = 0.9f;
            L.rho = 2.5f + spk_rng_uniform(&r);
            L.r = 1.5f + spk_rng_uniform(&r);
            L.r_s = -8.0f + 2 * spk_rng_uniform(&r);
            L.z_hyp = 0.8f + 0.2f * spk_rng_uniform(&r);
            L.z_dep = 0.1f * spk_rng_uniform(&r);
            L.theta = 0.3f + 0.4f * spk_rng_uniform(&r);
            L.tanh = rep % 2 ? SPK_TANH_FLOAT32 : SPK_TANH_EXACT; /* both update modes */
            fill(&r, b, n, -7, -1);
            L.b_h = b;
            fill(&r, i, n, -30, 30);
            fill(&r, h0, n, -1, 1);
            fill(&r, hs0, n, -1, 1);
            memcpy(h1, h0, n * 4);
            memcpy(hs1, hs0, n * 4);
            size_t c0 = S->src_update(&L, i, h0, hs0, x, idx0, v0, n);
            size_t c1 = K->src_update(&L, i, h1, hs1, x, idx1, v1, n);
            same_upd &= memcmp(h0, h1, n * 4) == 0 && memcmp(hs0, hs1, n * 4) == 0;
            same_nz &= c0 == c1 && memcmp(idx0, idx1, c0 * 4) == 0 && memcmp(v0, v1, c0 * 4) == 0;
            /* the outputs are exactly the neurons with h > 0, ascending, with value h */
            size_t want = 0;
            for (size_t k = 0; k < n; k++)
                if (h0[k] > 0.0f) {
                    outs_ok &= want < c0 && idx0[want] == k && v0[want] == h0[k];
                    want++;
                }
            outs_ok &= want == c0;
            spikes += c0;
        }
        ok(same_axpy, "%s axpy == scalar, bit for bit", K->name);
        ok(same_add, "%s add == scalar", K->name);
        ok(same_rows,
           "%s axpy_rows == scalar == scaling, then the same axpy calls in order (also with "
           "every factor 1)",
           K->name);
        ok(same_idx,
           "%s add_idx (rows by index, strides 4 and 12) == scalar axpy_rows with factors 1, "
           "bit for bit",
           K->name);
        ok(same_upd, "%s src_update == scalar (h, hs), exact and float32 tanh", K->name);
        ok(same_nz && spikes > 1000,
           "%s src_update's outputs == scalar (%zu non-zero outputs seen)", K->name, spikes);
        ok(outs_ok, "%s src_update's outputs: every h > 0, ascending, valued h", K->name);
    }
}

/* The per-neuron update against the equations written out in double-checked scalar C. */
static void test_update_equations(void) {
    const spk_kernels *S = spk_kernels_scalar();
    spk_layer L = {0};
    float b[2] = {-6.0f, -1.0f}, i[2] = {10.0f, -2.0f}, h[2] = {0.2f, 0.7f}, hs[2] = {-0.5f, 0.1f},
          xs[2], val[16], s[2] = {0.0f, 0.0f};
    uint32_t idx[16];
    L.n = L.n_in = 2;
    L.alpha = 0.9f, L.rho = 3.0f, L.r = 2.0f, L.r_s = -7.0f, L.z_hyp = 0.9f, L.z_dep = 0.0f,
    L.theta = 0.5f;
    L.b_h = b;
    float hp[2] = {h[0], h[1]}, hsp[2] = {hs[0], hs[1]};
    size_t cnt = S->src_update(&L, i, h, hs, xs, idx, val, 2);
    for (size_t k = 0; k < cnt; k++)
        s[idx[k]] = val[k];
    int good = 1;
    for (int k = 0; k < 2; k++) {
        double x = 3.0 * tanh(i[k] / 3.0);
        double hn = tanh(x + 2.0 * hp[k] - 7.0 * hsp[k] + b[k]);
        double z = hn > 0.5 ? 0.0 : 0.9;
        double hsn = z * hsp[k] + (1 - z) * hp[k];
        double sn = hn > 0 ? hn : 0;
        good &= fabs(h[k] - hn) < 1e-6 && fabs(hs[k] - hsn) < 1e-6 && fabs(s[k] - sn) < 1e-6;
        diag("neuron %d: h %.7f (%.7f), hs %.7f (%.7f), s %.7f", k, (double)h[k], hn, (double)hs[k],
             hsn, (double)s[k]);
    }
    ok(good, "scalar update follows SPEC (5b) (5d) (5c) (5e) (5f) in double to 1e-6");
    ok(h[0] > 0.5f && hs[0] == hp[0], "above theta: z = z_dep = 0, so h_s takes the previous h");
    ok(s[1] == 0.0f && h[1] < 0 && s[0] == h[0], "negative h: zero output, positive h: output h");
}

int main(void) {
    const spk_kernels *ks[8];
    size_t nk = spk_kernels_list(ks, 8);
    ok(nk >= 1 && strcmp(ks[0]->name, "scalar") == 0, "kernel tables: %zu, scalar first", nk);
    for (size_t k = 0; k < nk; k++)
        diag("kernels available: %s", ks[k]->name);
    ok(spk_kernels_best() == ks[nk - 1], "best is the last listed (%s)", spk_kernels_best()->name);
    is_int(spk_set_kernels("scalar"), 0, "set scalar");
    is_str(spk_kernels_name(), "scalar", "  active: scalar");
    is_int(spk_set_kernels("no-such-kernels"), SPK_EINVAL, "unknown name: SPK_EINVAL");
    is_str(spk_kernels_name(), "scalar", "  active unchanged");
    is_int(spk_set_kernels("auto"), 0, "set auto");
    is_str(spk_kernels_name(), spk_kernels_best()->name, "  active: the best");
    test_tanh(ks, nk);
    test_twins(ks, nk);
    test_update_equations();
    return done_testing();
}
