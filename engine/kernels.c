/* kernels.c: scalar kernels, their AVX2 and AVX-512 twins, and the run-time choice.
 *
 * Bit-identical twins: the vector code performs, lane by lane, exactly the IEEE operations
 * of the scalar code, in the same order: in float (the arithmetic of SPEC section 1, which
 * the references do the same way) separate multiply and add, never a fused multiply-add
 * (it rounds once instead of twice); the same double-precision tanh (through expm1:
 * Cody-Waite reduction to ln2/32, a 2^(j/16) table and a degree-7 polynomial by Estrin's
 * scheme), whose inner double steps are fused multiply-adds in every twin (C99 fma() in
 * the scalar one: exact on any CPU, in hardware where there is one); and float division
 * where SPEC divides. Contraction of float a*b+c into an FMA is off: GCC does not contract
 * under -std=c11 and clang is told below (objdump of kernels.o shows vfmadd only on
 * doubles, "pd" and "sd").
 */
#include "kernels.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "step.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#if defined(__x86_64__) || defined(__i386__)
#define SPK_X86 1
#include <immintrin.h>
#endif

/* ---- double-precision tanh, shared by every twin ----
 *
 * tanh(x) = sign(x) * m / (m + 2) with m = expm1(2|x|), |x| clamped to 20 (tanh(20) == 1 in
 * double). With y = 2|x| = (16 e + j) ln2 / 16 + r, |r| <= ln2 / 32, and S = 2^e 2^(j/16)
 * (a 16-entry table), expm1(y) = S (1 + q) - 1 = S q + (S - 1), q = e^r - 1 =
 * r (1 + r/2! + ... + r^6/7!): no cancellation near 0 (y small gives S = 1, m = q), so no
 * second formula for small x. Relative error about 1e-15, then one rounding to float.
 * The polynomial is evaluated by Estrin's scheme (short dependency chains, so the vector
 * twins overlap their work); the vector code groups the operations exactly the same way.
 * Each a * b + c of it is one fused multiply-add (one rounding: the same in every twin, and
 * 10 of the 35 vector operations of a tanh fewer: the update is ~15 % faster than with
 * separate multiplies and adds, and as accurate). */

#define TANH_CLAMP 20.0
#define INV_LN2_16 23.083120654223414               /* 16 / ln2 */
#define LN2_16_HI (6.93147180369123816490e-01 / 16) /* low 21 bits zero: k * it is exact */
#define LN2_16_LO (1.90821492927058770002e-10 / 16)
#define SHIFT 0x1.8p52 /* adding it rounds to an integer, kept in the low mantissa bits */
#define C0 1.0         /* C_j = 1 / (j + 1)! */
#define C1 (1.0 / 2.0)
#define C2 (1.0 / 6.0)
#define C3 (1.0 / 24.0)
#define C4 (1.0 / 120.0)
#define C5 (1.0 / 720.0)
#define C6 (1.0 / 5040.0)

/* 2^(j/16), j = 0..15, correctly rounded (computed with 60-digit decimal arithmetic). */
static const double EXP2_16[16] = {
    0x1.0000000000000p+0, 0x1.0b5586cf9890fp+0, 0x1.172b83c7d517bp+0, 0x1.2387a6e756238p+0,
    0x1.306fe0a31b715p+0, 0x1.3dea64c123422p+0, 0x1.4bfdad5362a27p+0, 0x1.5ab07dd485429p+0,
    0x1.6a09e667f3bcdp+0, 0x1.7a11473eb0187p+0, 0x1.8ace5422aa0dbp+0, 0x1.9c49182a3f090p+0,
    0x1.ae89f995ad3adp+0, 0x1.c199bdd85529cp+0, 0x1.d5818dcfba487p+0, 0x1.ea4afa2a490dap+0,
};

static inline __attribute__((always_inline)) float tanh_scalar1(float xf) {
    double x = (double)xf;
    double ax = fabs(x);
    ax = ax < TANH_CLAMP ? ax : TANH_CLAMP; /* also maps NaN to the clamp, like minpd */
    double y = ax + ax;
    double kp = fma(y, INV_LN2_16, SHIFT);
    double k = kp - SHIFT; /* 16 e + j */
    double r = fma(-k, LN2_16_HI, y);
    r = fma(-k, LN2_16_LO, r);
    double r2 = r * r, r4 = r2 * r2;
    double p01 = fma(C1, r, C0), p23 = fma(C3, r, C2), p45 = fma(C5, r, C4);
    double p03 = fma(p23, r2, p01), p46 = fma(C6, r2, p45);
    double p = fma(p46, r4, p03);
    double q = r * p; /* e^r - 1 */
    uint64_t bits, sb;
    memcpy(&bits, &kp, 8);           /* low bits: 16 e + j */
    sb = ((bits >> 4) + 1023) << 52; /* 2^e */
    double s2;
    memcpy(&s2, &sb, 8);
    double S = EXP2_16[bits & 15] * s2;
    double m = fma(S, q, S - 1.0); /* expm1(2|x|) */
    double t = m / (m + 2.0);
    return (float)copysign(t, x);
}

/* ---- float32 tanh (SPK_TANH_FLOAT32), shared by every twin ----
 *
 * tanh(x) = sign(x) * m / (m + 2), m = expm1(2|x|), |x| clamped to 10 (the result is then 1.0f):
 * y = 2|x| = k ln2 + r, |r| <= ln2 / 2 (k by the 1.5 * 2^23 shift, ln2 in two parts, the
 * first with 16 significant bits so k * LN2_HI is exact), e^r - 1 = r (1 + r/2 + ... +
 * r^7/8!) by Horner, m = 2^k (e^r - 1) + (2^k - 1). float32 only, separate multiplies and
 * adds, one division; a few ulp from the exact tanh (tests/unit/test_kernels.c measures it). */
#define T32_CLAMP 10.0f
#define T32_INV_LN2 1.44269504088896341f
#define T32_SHIFT 12582912.0f /* 1.5 * 2^23 */
#define T32_LN2_HI 0.693145751953125f
#define T32_LN2_LO 1.42860682030941723212e-6f
#define T32_C0 1.0f
#define T32_C1 (1.0f / 2.0f)
#define T32_C2 (1.0f / 6.0f)
#define T32_C3 (1.0f / 24.0f)
#define T32_C4 (1.0f / 120.0f)
#define T32_C5 (1.0f / 720.0f)
#define T32_C6 (1.0f / 5040.0f)
#define T32_C7 (1.0f / 40320.0f)

static inline __attribute__((always_inline)) float tanh32_scalar1(float x) {
    float ax = fabsf(x);
    ax = ax < T32_CLAMP ? ax : T32_CLAMP;
    float y = ax + ax;
    float kp = y * T32_INV_LN2;
    kp = kp + T32_SHIFT;
    float k = kp - T32_SHIFT;
    float r = y - k * T32_LN2_HI;
    r = r - k * T32_LN2_LO;
    float q = T32_C7 * r + T32_C6;
    q = q * r + T32_C5;
    q = q * r + T32_C4;
    q = q * r + T32_C3;
    q = q * r + T32_C2;
    q = q * r + T32_C1;
    q = q * r + T32_C0;
    float e = r * q; /* e^r - 1 */
    uint32_t kb, sb;
    memcpy(&kb, &kp, 4);
    sb = ((kb - 0x4B400000u) + 127u) << 23; /* 2^k */
    float S;
    memcpy(&S, &sb, 4);
    float m = S * e + (S - 1.0f);
    float t = m / (m + 2.0f);
    return copysignf(t, x);
}

/* ---- scalar kernels ---- */

/* The scalar update and tanh in two builds, picked when the program starts: with the FMA
 * instructions where the CPU has them, else plain (fma() is then glibc's exact software
 * version: the same results, slower). Without this, every fma() of the tanh was a library
 * call, and the scalar update took twice as long. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SCALAR_FMA __attribute__((target_clones("fma", "default")))
#else
#define SCALAR_FMA
#endif

static void axpy_scalar(float *y, float a, const float *x, size_t n) {
    for (size_t k = 0; k < n; k++)
        y[k] = y[k] + a * x[k];
}
static void axpy_rows_scalar(float *y, size_t n, float s, const float *a, const float *const *rows,
                             size_t nr) {
    for (size_t k = 0; k < n; k++)
        y[k] = s * y[k];
    for (size_t r = 0; r < nr; r++)
        axpy_scalar(y, a[r], rows[r], n);
}
static void add_scalar(float *y, const float *x, size_t n) {
    for (size_t k = 0; k < n; k++)
        y[k] = y[k] + x[k];
}

typedef struct {
    float rho, r, r_s, z_hyp, z_on, theta;
} src_consts;

static src_consts consts(const spk_layer *L) {
    src_consts c = {L->rho, L->r, L->r_s, L->z_hyp, 0, L->theta};
    float dz = L->z_dep - L->z_hyp;
    c.z_on = L->z_hyp + dz; /* z_hyp + (z_dep - z_hyp) * 1 */
    return c;
}

static inline __attribute__((always_inline)) void src_one(const src_consts *c, float b, float i,
                                                          float *h, float *hs, float *s, int f32) {
    float hp = *h, hsp = *hs;
    float v = i / c->rho;
    float x = c->rho * (f32 ? tanh32_scalar1(v) : tanh_scalar1(v)); /* (5b) */
    float a = x + c->r * hp;                                        /* (5d), left to right */
    a = a + c->r_s * hsp;
    a = a + b;
    float hn = f32 ? tanh32_scalar1(a) : tanh_scalar1(a);
    float z = hn > c->theta ? c->z_on : c->z_hyp; /* (5c) */
    *hs = z * hsp + (1.0f - z) * hp;              /* (5e) */
    *h = hn;
    *s = hn > 0.0f ? hn : 0.0f; /* (5f) */
}

/* Neurons k0..n-1 one at a time, their non-zero outputs appended at idx/val + cnt. */
static inline __attribute__((always_inline)) size_t
src_update_tail(const src_consts *c, const spk_layer *L, const float *i, float *h, float *hs,
                uint32_t *idx, float *val, size_t k0, size_t n, size_t cnt) {
    const int f32 = L->tanh == SPK_TANH_FLOAT32;
    for (size_t k = k0; k < n; k++) {
        float s;
        src_one(c, L->b_h[k], i[k], &h[k], &hs[k], &s, f32);
        if (s > 0.0f) idx[cnt] = (uint32_t)k, val[cnt++] = s;
    }
    return cnt;
}

SCALAR_FMA static size_t src_update_scalar(const spk_layer *L, const float *i, float *h, float *hs,
                                           float *x, uint32_t *idx, float *val, size_t n) {
    (void)x;
    src_consts c = consts(L);
    return src_update_tail(&c, L, i, h, hs, idx, val, 0, n, 0);
}

SCALAR_FMA static void tanh_scalar(float *y, const float *x, size_t n) {
    for (size_t k = 0; k < n; k++)
        y[k] = tanh_scalar1(x[k]);
}

static void tanh32_scalar(float *y, const float *x, size_t n) {
    for (size_t k = 0; k < n; k++)
        y[k] = tanh32_scalar1(x[k]);
}

static void qsum_rows_scalar(float *acc, size_t n, const int8_t *const *rows, size_t nr) {
    for (size_t k = 0; k < n; k++) {
        int32_t v = 0;
        for (size_t r = 0; r < nr; r++)
            v += rows[r][k];
        acc[k] = acc[k] + (float)v;
    }
}

/* Row r of a qsum_idx call: base + idx_r * n, idx_r the u32 at idx + r * stride bytes. */
static inline const int8_t *qrow_at(const int8_t *base, size_t n, const char *idx, size_t stride,
                                    size_t r) {
    uint32_t j;
    memcpy(&j, idx + r * stride, 4);
    return base + (size_t)j * n;
}

static void qsum_idx_scalar(float *acc, size_t n, const int8_t *base, const void *idx,
                            size_t stride, size_t nr) {
    for (size_t k = 0; k < n; k++) {
        int32_t v = 0;
        for (size_t r = 0; r < nr; r++)
            v += qrow_at(base, n, idx, stride, r)[k];
        acc[k] = acc[k] + (float)v;
    }
}

static void add_idx_scalar(float *y, size_t n, float s, const float *base, const void *idx,
                           size_t stride, size_t nr) {
    for (size_t k = 0; k < n; k++)
        y[k] = s * y[k];
    for (size_t r = 0; r < nr; r++) {
        uint32_t j;
        memcpy(&j, (const char *)idx + r * stride, 4);
        const float *x = base + (size_t)j * n;
        for (size_t k = 0; k < n; k++)
            y[k] = y[k] + x[k];
    }
}

static void qaxpy_rows_scalar(float *acc, size_t n, const float *a, const int8_t *const *rows,
                              size_t nr) {
    for (size_t r = 0; r < nr; r++)
        for (size_t k = 0; k < n; k++)
            acc[k] = acc[k] + a[r] * (float)rows[r][k];
}

static void qapply_scalar(float *y, size_t n, float s, const float *scale, const float *acc) {
    for (size_t k = 0; k < n; k++)
        y[k] = s * y[k] + scale[k] * acc[k];
}

static void qscatter_scalar(int16_t *const *acc, size_t nacc, const int8_t *row, size_t n) {
    for (size_t q = 0; q < nacc; q++)
        for (size_t k = 0; k < n; k++)
            acc[q][k] = (int16_t)(acc[q][k] + row[k]);
}

static void qdense4_scalar(int32_t *out, size_t n, const uint8_t *act, size_t nq,
                           const int8_t *w4) {
    for (size_t s = 0; s < 4; s++) {
        const uint8_t *a = act + s * 4 * nq;
        int32_t *o = out + s * n;
        memset(o, 0, n * sizeof *o);
        for (size_t q = 0; q < nq; q++) {
            const uint8_t *aq = a + 4 * q;
            if (!(aq[0] | aq[1] | aq[2] | aq[3])) continue;
            const int8_t *w = w4 + q * n * 4;
            for (size_t k = 0; k < n; k++)
                o[k] += aq[0] * w[4 * k] + aq[1] * w[4 * k + 1] + aq[2] * w[4 * k + 2] +
                        aq[3] * w[4 * k + 3];
        }
    }
}

static const spk_kernels k_scalar = {
    "scalar",        axpy_scalar,      add_scalar,        axpy_rows_scalar, src_update_scalar,
    tanh_scalar,     qsum_rows_scalar, qaxpy_rows_scalar, qapply_scalar,    tanh32_scalar,
    qscatter_scalar, qdense4_scalar,   qsum_idx_scalar,   add_idx_scalar,
};

/* ---- AVX2 twins ---- */
#ifdef SPK_X86
#define AVX2 __attribute__((target("avx2,fma")))

#define S4(v) _mm256_set1_pd(v)
#define MUL4 _mm256_mul_pd
#define ADD4 _mm256_add_pd
#define SUB4 _mm256_sub_pd

/* tanh_scalar1 on 4 lanes, from ax = min(|x|, TANH_CLAMP) to the unsigned result t: the
 * same operations, grouped the same way. The sign and the clamp are done by tanh8 on the
 * floats, 8 lanes at once: |x|, the clamp and the float-to-double conversion commute
 * exactly (20 is a float, the conversion is exact and monotonic, and min returns the clamp
 * for NaN like the scalar code), and so does the sign with the rounding to float (rounding
 * to nearest is symmetric). */
AVX2 static inline __m256d tanh4d_abs(__m256d ax) {
    __m256d y = ADD4(ax, ax);
    __m256d kp = _mm256_fmadd_pd(y, S4(INV_LN2_16), S4(SHIFT));
    __m256d k = SUB4(kp, S4(SHIFT));
    __m256d r = _mm256_fnmadd_pd(k, S4(LN2_16_HI), y);
    r = _mm256_fnmadd_pd(k, S4(LN2_16_LO), r);
    __m256d r2 = MUL4(r, r), r4 = MUL4(r2, r2);
    __m256d p01 = _mm256_fmadd_pd(S4(C1), r, S4(C0)), p23 = _mm256_fmadd_pd(S4(C3), r, S4(C2));
    __m256d p45 = _mm256_fmadd_pd(S4(C5), r, S4(C4));
    __m256d p03 = _mm256_fmadd_pd(p23, r2, p01), p46 = _mm256_fmadd_pd(S4(C6), r2, p45);
    __m256d p = _mm256_fmadd_pd(p46, r4, p03);
    __m256d q = MUL4(r, p);
    __m256i bits = _mm256_castpd_si256(kp);
    __m256d T = _mm256_i64gather_pd(EXP2_16, _mm256_and_si256(bits, _mm256_set1_epi64x(15)), 8);
    __m256i sb = _mm256_slli_epi64(
        _mm256_add_epi64(_mm256_srli_epi64(bits, 4), _mm256_set1_epi64x(1023)), 52);
    __m256d S = MUL4(T, _mm256_castsi256_pd(sb));
    __m256d m = _mm256_fmadd_pd(S, q, SUB4(S, S4(1.0)));
    return _mm256_div_pd(m, ADD4(m, S4(2.0)));
}

AVX2 static inline __m256 tanh8(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 ax = _mm256_min_ps(_mm256_andnot_ps(sign, x), _mm256_set1_ps((float)TANH_CLAMP));
    __m256d lo = tanh4d_abs(_mm256_cvtps_pd(_mm256_castps256_ps128(ax)));
    __m256d hi = tanh4d_abs(_mm256_cvtps_pd(_mm256_extractf128_ps(ax, 1)));
    __m256 t =
        _mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps(lo)), _mm256_cvtpd_ps(hi), 1);
    return _mm256_or_ps(t, _mm256_and_ps(sign, x)); /* copysign */
}

/* tanh32_scalar1 on 8 lanes: the same float operations in the same order. */
AVX2 static inline __m256 tanh32_8(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 ax = _mm256_min_ps(_mm256_andnot_ps(sign, x), _mm256_set1_ps(T32_CLAMP));
    __m256 y = _mm256_add_ps(ax, ax);
    __m256 kp =
        _mm256_add_ps(_mm256_mul_ps(y, _mm256_set1_ps(T32_INV_LN2)), _mm256_set1_ps(T32_SHIFT));
    __m256 k = _mm256_sub_ps(kp, _mm256_set1_ps(T32_SHIFT));
    __m256 r = _mm256_sub_ps(y, _mm256_mul_ps(k, _mm256_set1_ps(T32_LN2_HI)));
    r = _mm256_sub_ps(r, _mm256_mul_ps(k, _mm256_set1_ps(T32_LN2_LO)));
    __m256 q = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(T32_C7), r), _mm256_set1_ps(T32_C6));
    q = _mm256_add_ps(_mm256_mul_ps(q, r), _mm256_set1_ps(T32_C5));
    q = _mm256_add_ps(_mm256_mul_ps(q, r), _mm256_set1_ps(T32_C4));
    q = _mm256_add_ps(_mm256_mul_ps(q, r), _mm256_set1_ps(T32_C3));
    q = _mm256_add_ps(_mm256_mul_ps(q, r), _mm256_set1_ps(T32_C2));
    q = _mm256_add_ps(_mm256_mul_ps(q, r), _mm256_set1_ps(T32_C1));
    q = _mm256_add_ps(_mm256_mul_ps(q, r), _mm256_set1_ps(T32_C0));
    __m256 e = _mm256_mul_ps(r, q);
    __m256i sb = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_sub_epi32(_mm256_castps_si256(kp), _mm256_set1_epi32(0x4B400000)),
                         _mm256_set1_epi32(127)),
        23);
    __m256 S = _mm256_castsi256_ps(sb);
    __m256 m = _mm256_add_ps(_mm256_mul_ps(S, e), _mm256_sub_ps(S, _mm256_set1_ps(1.0f)));
    __m256 t = _mm256_div_ps(m, _mm256_add_ps(m, _mm256_set1_ps(2.0f)));
    return _mm256_or_ps(t, _mm256_and_ps(sign, x));
}

AVX2 static void axpy_avx2(float *y, float a, const float *x, size_t n) {
    __m256 va = _mm256_set1_ps(a);
    size_t k = 0;
    for (; k + 32 <= n; k += 32) {
        __m256 y0 =
            _mm256_add_ps(_mm256_loadu_ps(y + k), _mm256_mul_ps(va, _mm256_loadu_ps(x + k)));
        __m256 y1 = _mm256_add_ps(_mm256_loadu_ps(y + k + 8),
                                  _mm256_mul_ps(va, _mm256_loadu_ps(x + k + 8)));
        __m256 y2 = _mm256_add_ps(_mm256_loadu_ps(y + k + 16),
                                  _mm256_mul_ps(va, _mm256_loadu_ps(x + k + 16)));
        __m256 y3 = _mm256_add_ps(_mm256_loadu_ps(y + k + 24),
                                  _mm256_mul_ps(va, _mm256_loadu_ps(x + k + 24)));
        _mm256_storeu_ps(y + k, y0);
        _mm256_storeu_ps(y + k + 8, y1);
        _mm256_storeu_ps(y + k + 16, y2);
        _mm256_storeu_ps(y + k + 24, y3);
    }
    for (; k + 8 <= n; k += 8)
        _mm256_storeu_ps(y + k, _mm256_add_ps(_mm256_loadu_ps(y + k),
                                              _mm256_mul_ps(va, _mm256_loadu_ps(x + k))));
    for (; k < n; k++)
        y[k] = y[k] + a * x[k];
}

/* The last elements, one at a time, rows in order: the same sums as the scalar twin. */
static void axpy_rows_tail(float *y, size_t k, size_t n, float s, const float *a,
                           const float *const *rows, size_t nr) {
    for (; k < n; k++) {
        float acc = s * y[k];
        for (size_t r = 0; r < nr; r++)
            acc = acc + a[r] * rows[r][k];
        y[k] = acc;
    }
}

AVX2 static void axpy_rows_avx2(float *y, size_t n, float s, const float *a,
                                const float *const *rows, size_t nr) {
    size_t k = 0;
    for (; k + 64 <= n; k += 64) { /* 8 registers of y */
        const __m256 vs = _mm256_set1_ps(s);
        __m256 y0 = _mm256_mul_ps(vs, _mm256_loadu_ps(y + k)),
               y1 = _mm256_mul_ps(vs, _mm256_loadu_ps(y + k + 8));
        __m256 y2 = _mm256_mul_ps(vs, _mm256_loadu_ps(y + k + 16)),
               y3 = _mm256_mul_ps(vs, _mm256_loadu_ps(y + k + 24));
        __m256 y4 = _mm256_mul_ps(vs, _mm256_loadu_ps(y + k + 32)),
               y5 = _mm256_mul_ps(vs, _mm256_loadu_ps(y + k + 40));
        __m256 y6 = _mm256_mul_ps(vs, _mm256_loadu_ps(y + k + 48)),
               y7 = _mm256_mul_ps(vs, _mm256_loadu_ps(y + k + 56));
        for (size_t r = 0; r < nr; r++) {
            const __m256 v = _mm256_set1_ps(a[r]);
            const float *x = rows[r] + k;
            y0 = _mm256_add_ps(y0, _mm256_mul_ps(v, _mm256_loadu_ps(x)));
            y1 = _mm256_add_ps(y1, _mm256_mul_ps(v, _mm256_loadu_ps(x + 8)));
            y2 = _mm256_add_ps(y2, _mm256_mul_ps(v, _mm256_loadu_ps(x + 16)));
            y3 = _mm256_add_ps(y3, _mm256_mul_ps(v, _mm256_loadu_ps(x + 24)));
            y4 = _mm256_add_ps(y4, _mm256_mul_ps(v, _mm256_loadu_ps(x + 32)));
            y5 = _mm256_add_ps(y5, _mm256_mul_ps(v, _mm256_loadu_ps(x + 40)));
            y6 = _mm256_add_ps(y6, _mm256_mul_ps(v, _mm256_loadu_ps(x + 48)));
            y7 = _mm256_add_ps(y7, _mm256_mul_ps(v, _mm256_loadu_ps(x + 56)));
        }
        _mm256_storeu_ps(y + k, y0), _mm256_storeu_ps(y + k + 8, y1);
        _mm256_storeu_ps(y + k + 16, y2), _mm256_storeu_ps(y + k + 24, y3);
        _mm256_storeu_ps(y + k + 32, y4), _mm256_storeu_ps(y + k + 40, y5);
        _mm256_storeu_ps(y + k + 48, y6), _mm256_storeu_ps(y + k + 56, y7);
    }
    for (; k + 8 <= n; k += 8) {
        __m256 y0 = _mm256_mul_ps(_mm256_set1_ps(s), _mm256_loadu_ps(y + k));
        for (size_t r = 0; r < nr; r++)
            y0 = _mm256_add_ps(y0,
                               _mm256_mul_ps(_mm256_set1_ps(a[r]), _mm256_loadu_ps(rows[r] + k)));
        _mm256_storeu_ps(y + k, y0);
    }
    axpy_rows_tail(y, k, n, s, a, rows, nr);
}

/* Row r of an add_idx call: base + idx_r * n (idx_r the u32 at idx + r * stride bytes). */
static inline const float *frow_at(const float *base, size_t n, const void *idx, size_t stride,
                                   size_t r) {
    uint32_t j;
    memcpy(&j, (const char *)idx + r * stride, 4);
    return base + (size_t)j * n;
}

AVX2 static void add_idx_avx2(float *y, size_t n, float s, const float *base, const void *idx,
                              size_t stride, size_t nr) {
    const __m256 vs = _mm256_set1_ps(s);
    size_t k = 0;
    for (; k + 64 <= n; k += 64) {
        __m256 y0 = _mm256_mul_ps(vs, _mm256_loadu_ps(y + k)),
               y1 = _mm256_mul_ps(vs, _mm256_loadu_ps(y + k + 8));
        __m256 y2 = _mm256_mul_ps(vs, _mm256_loadu_ps(y + k + 16)),
               y3 = _mm256_mul_ps(vs, _mm256_loadu_ps(y + k + 24));
        __m256 y4 = _mm256_mul_ps(vs, _mm256_loadu_ps(y + k + 32)),
               y5 = _mm256_mul_ps(vs, _mm256_loadu_ps(y + k + 40));
        __m256 y6 = _mm256_mul_ps(vs, _mm256_loadu_ps(y + k + 48)),
               y7 = _mm256_mul_ps(vs, _mm256_loadu_ps(y + k + 56));
        for (size_t r = 0; r < nr; r++) {
            const float *x = frow_at(base, n, idx, stride, r) + k;
            y0 = _mm256_add_ps(y0, _mm256_loadu_ps(x));
            y1 = _mm256_add_ps(y1, _mm256_loadu_ps(x + 8));
            y2 = _mm256_add_ps(y2, _mm256_loadu_ps(x + 16));
            y3 = _mm256_add_ps(y3, _mm256_loadu_ps(x + 24));
            y4 = _mm256_add_ps(y4, _mm256_loadu_ps(x + 32));
            y5 = _mm256_add_ps(y5, _mm256_loadu_ps(x + 40));
            y6 = _mm256_add_ps(y6, _mm256_loadu_ps(x + 48));
            y7 = _mm256_add_ps(y7, _mm256_loadu_ps(x + 56));
        }
        _mm256_storeu_ps(y + k, y0), _mm256_storeu_ps(y + k + 8, y1);
        _mm256_storeu_ps(y + k + 16, y2), _mm256_storeu_ps(y + k + 24, y3);
        _mm256_storeu_ps(y + k + 32, y4), _mm256_storeu_ps(y + k + 40, y5);
        _mm256_storeu_ps(y + k + 48, y6), _mm256_storeu_ps(y + k + 56, y7);
    }
    for (; k + 8 <= n; k += 8) {
        __m256 y0 = _mm256_mul_ps(vs, _mm256_loadu_ps(y + k));
        for (size_t r = 0; r < nr; r++)
            y0 = _mm256_add_ps(y0, _mm256_loadu_ps(frow_at(base, n, idx, stride, r) + k));
        _mm256_storeu_ps(y + k, y0);
    }
    for (; k < n; k++) {
        float acc = s * y[k];
        for (size_t r = 0; r < nr; r++)
            acc = acc + frow_at(base, n, idx, stride, r)[k];
        y[k] = acc;
    }
}

AVX2 static void add_avx2(float *y, const float *x, size_t n) {
    size_t k = 0;
    for (; k + 8 <= n; k += 8)
        _mm256_storeu_ps(y + k, _mm256_add_ps(_mm256_loadu_ps(y + k), _mm256_loadu_ps(x + k)));
    for (; k < n; k++)
        y[k] = y[k] + x[k];
}

AVX2 static inline __attribute__((always_inline)) __m256 tanh8_mode(__m256 x, int f32) {
    return f32 ? tanh32_8(x) : tanh8(x);
}

AVX2 static inline __attribute__((always_inline)) size_t
src_update_avx2_mode(const spk_layer *L, const float *i, float *h, float *hs, float *s,
                     uint32_t *idx, float *val, size_t n, int f32) {
    src_consts c = consts(L);
    const __m256 rho = _mm256_set1_ps(c.rho), r = _mm256_set1_ps(c.r), rs = _mm256_set1_ps(c.r_s);
    const __m256 zh = _mm256_set1_ps(c.z_hyp), zon = _mm256_set1_ps(c.z_on);
    const __m256 theta = _mm256_set1_ps(c.theta), one = _mm256_set1_ps(1.0f);
    const __m256 zero = _mm256_setzero_ps();
    size_t k = 0, cnt = 0;
    /* Two passes, as in src_update_avx512 (where the why is). */
    for (; k + 8 <= n; k += 8)
        _mm256_storeu_ps(
            s + k, _mm256_mul_ps(rho, tanh8_mode(_mm256_div_ps(_mm256_loadu_ps(i + k), rho), f32)));
    for (k = 0; k + 8 <= n; k += 8) {
        __m256 hp = _mm256_loadu_ps(h + k), hsp = _mm256_loadu_ps(hs + k);
        __m256 x = _mm256_loadu_ps(s + k);
        __m256 a = _mm256_add_ps(x, _mm256_mul_ps(r, hp));
        a = _mm256_add_ps(a, _mm256_mul_ps(rs, hsp));
        a = _mm256_add_ps(a, _mm256_loadu_ps(L->b_h + k));
        __m256 hn = tanh8_mode(a, f32);
        __m256 z = _mm256_blendv_ps(zh, zon, _mm256_cmp_ps(hn, theta, _CMP_GT_OQ));
        __m256 hsn = _mm256_add_ps(_mm256_mul_ps(z, hsp), _mm256_mul_ps(_mm256_sub_ps(one, z), hp));
        _mm256_storeu_ps(h + k, hn);
        _mm256_storeu_ps(hs + k, hsn);
        unsigned m = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(hn, zero, _CMP_GT_OQ));
        while (m) { /* the non-zero outputs, ascending */
            unsigned b = (unsigned)__builtin_ctz(m);
            idx[cnt] = (uint32_t)(k + b), val[cnt++] = h[k + b];
            m &= m - 1;
        }
    }
    return src_update_tail(&c, L, i, h, hs, idx, val, k, n, cnt);
}

AVX2 static size_t src_update_avx2(const spk_layer *L, const float *i, float *h, float *hs,
                                   float *s, uint32_t *idx, float *val, size_t n) {
    if (L->tanh == SPK_TANH_FLOAT32) return src_update_avx2_mode(L, i, h, hs, s, idx, val, n, 1);
    return src_update_avx2_mode(L, i, h, hs, s, idx, val, n, 0);
}

AVX2 static void tanh32_avx2(float *y, const float *x, size_t n) {
    size_t k = 0;
    for (; k + 8 <= n; k += 8)
        _mm256_storeu_ps(y + k, tanh32_8(_mm256_loadu_ps(x + k)));
    for (; k < n; k++)
        y[k] = tanh32_scalar1(x[k]);
}

/* int16 lanes of a row sum added, widened, into 16 floats of acc. */
AVX2 static inline void q16_add_acc8(float *acc, __m256i s16) {
    __m256i lo = _mm256_cvtepi16_epi32(_mm256_castsi256_si128(s16));
    __m256i hi = _mm256_cvtepi16_epi32(_mm256_extracti128_si256(s16, 1));
    _mm256_storeu_ps(acc, _mm256_add_ps(_mm256_loadu_ps(acc), _mm256_cvtepi32_ps(lo)));
    _mm256_storeu_ps(acc + 8, _mm256_add_ps(_mm256_loadu_ps(acc + 8), _mm256_cvtepi32_ps(hi)));
}

/* The rows of a q8 row sum: rows[r], or (rows NULL) base + idx_r * n as qsum_idx reads them. */
#define QROW(r) (rows ? rows[r] : qrow_at(base, n, (const char *)idx, stride, (r)))

AVX2 static inline __attribute__((always_inline)) void
qsum_core_avx2(float *acc, size_t n, const int8_t *const *rows, const int8_t *base, const void *idx,
               size_t stride, size_t nr) {
    size_t k = 0;
    for (; k + 128 <= n; k += 128) { /* 8 registers of 16 int16 sums */
        __m256i s[8];
        for (int j = 0; j < 8; j++)
            s[j] = _mm256_setzero_si256();
        for (size_t r = 0; r < nr; r++) {
            const int8_t *x = QROW(r) + k;
            for (int j = 0; j < 8; j++)
                s[j] = _mm256_add_epi16(
                    s[j], _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x + 16 * j))));
        }
        for (int j = 0; j < 8; j++)
            q16_add_acc8(acc + k + 16 * j, s[j]);
    }
    for (; k + 16 <= n; k += 16) {
        __m256i s0 = _mm256_setzero_si256();
        for (size_t r = 0; r < nr; r++)
            s0 = _mm256_add_epi16(
                s0, _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(QROW(r) + k))));
        q16_add_acc8(acc + k, s0);
    }
    for (; k < n; k++) {
        int32_t v = 0;
        for (size_t r = 0; r < nr; r++)
            v += QROW(r)[k];
        acc[k] = acc[k] + (float)v;
    }
}

AVX2 static void qsum_rows_avx2(float *acc, size_t n, const int8_t *const *rows, size_t nr) {
    qsum_core_avx2(acc, n, rows, NULL, NULL, 0, nr);
}

AVX2 static void qsum_idx_avx2(float *acc, size_t n, const int8_t *base, const void *idx,
                               size_t stride, size_t nr) {
    qsum_core_avx2(acc, n, NULL, base, idx, stride, nr);
}

AVX2 static inline __m256 q8_to_ps8(const int8_t *x) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)x)));
}

AVX2 static void qaxpy_rows_avx2(float *acc, size_t n, const float *a, const int8_t *const *rows,
                                 size_t nr) {
    size_t k = 0;
    for (; k + 64 <= n; k += 64) {
        __m256 y[8];
        for (int j = 0; j < 8; j++)
            y[j] = _mm256_loadu_ps(acc + k + 8 * j);
        for (size_t r = 0; r < nr; r++) {
            const __m256 v = _mm256_set1_ps(a[r]);
            const int8_t *x = rows[r] + k;
            for (int j = 0; j < 8; j++)
                y[j] = _mm256_add_ps(y[j], _mm256_mul_ps(v, q8_to_ps8(x + 8 * j)));
        }
        for (int j = 0; j < 8; j++)
            _mm256_storeu_ps(acc + k + 8 * j, y[j]);
    }
    for (; k + 8 <= n; k += 8) {
        __m256 y0 = _mm256_loadu_ps(acc + k);
        for (size_t r = 0; r < nr; r++)
            y0 = _mm256_add_ps(y0, _mm256_mul_ps(_mm256_set1_ps(a[r]), q8_to_ps8(rows[r] + k)));
        _mm256_storeu_ps(acc + k, y0);
    }
    for (; k < n; k++)
        for (size_t r = 0; r < nr; r++)
            acc[k] = acc[k] + a[r] * (float)rows[r][k];
}

AVX2 static void qapply_avx2(float *y, size_t n, float s, const float *scale, const float *acc) {
    const __m256 vs = _mm256_set1_ps(s);
    size_t k = 0;
    for (; k + 8 <= n; k += 8)
        _mm256_storeu_ps(y + k, _mm256_add_ps(_mm256_mul_ps(vs, _mm256_loadu_ps(y + k)),
                                              _mm256_mul_ps(_mm256_loadu_ps(scale + k),
                                                            _mm256_loadu_ps(acc + k))));
    for (; k < n; k++)
        y[k] = s * y[k] + scale[k] * acc[k];
}

AVX2 static void qscatter_avx2(int16_t *const *acc, size_t nacc, const int8_t *row, size_t n) {
    size_t k = 0;
    for (; k + 64 <= n; k += 64) {
        __m256i r0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(row + k)));
        __m256i r1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(row + k + 16)));
        __m256i r2 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(row + k + 32)));
        __m256i r3 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(row + k + 48)));
        for (size_t q = 0; q < nacc; q++) {
            __m256i *p = (__m256i *)(void *)(acc[q] + k);
            _mm256_storeu_si256(p, _mm256_add_epi16(_mm256_loadu_si256(p), r0));
            _mm256_storeu_si256(p + 1, _mm256_add_epi16(_mm256_loadu_si256(p + 1), r1));
            _mm256_storeu_si256(p + 2, _mm256_add_epi16(_mm256_loadu_si256(p + 2), r2));
            _mm256_storeu_si256(p + 3, _mm256_add_epi16(_mm256_loadu_si256(p + 3), r3));
        }
    }
    for (size_t q = 0; q < nacc; q++)
        for (size_t j = k; j < n; j++)
            acc[q][j] = (int16_t)(acc[q][j] + row[j]);
}

AVX2 static void tanh_avx2(float *y, const float *x, size_t n) {
    size_t k = 0;
    for (; k + 8 <= n; k += 8)
        _mm256_storeu_ps(y + k, tanh8(_mm256_loadu_ps(x + k)));
    for (; k < n; k++)
        y[k] = tanh_scalar1(x[k]);
}

static const spk_kernels k_avx2 = {
    "avx2",        axpy_avx2,      add_avx2,        axpy_rows_avx2, src_update_avx2,
    tanh_avx2,     qsum_rows_avx2, qaxpy_rows_avx2, qapply_avx2,    tanh32_avx2,
    qscatter_avx2, qdense4_scalar, qsum_idx_avx2,   add_idx_avx2,
};

/* ---- AVX-512 twins (AVX512F, AVX512BW and AVX512VL): 8 doubles per tanh vector ---- */
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
#define S8(v) _mm512_set1_pd(v)
#define MUL8 _mm512_mul_pd
#define ADD8 _mm512_add_pd
#define SUB8 _mm512_sub_pd

/* tanh_scalar1 on 8 lanes, from ax = min(|x|, TANH_CLAMP) to the unsigned result: the same
 * operations, grouped the same way (sign and clamp in tanh16, as in tanh8 above). */
AVX512 static inline __m512d tanh8d_abs(__m512d ax) {
    const __m512d tlo = _mm512_loadu_pd(EXP2_16), thi = _mm512_loadu_pd(EXP2_16 + 8);
    __m512d y = ADD8(ax, ax);
    __m512d kp = _mm512_fmadd_pd(y, S8(INV_LN2_16), S8(SHIFT));
    __m512d k = SUB8(kp, S8(SHIFT));
    __m512d r = _mm512_fnmadd_pd(k, S8(LN2_16_HI), y);
    r = _mm512_fnmadd_pd(k, S8(LN2_16_LO), r);
    __m512d r2 = MUL8(r, r), r4 = MUL8(r2, r2);
    __m512d p01 = _mm512_fmadd_pd(S8(C1), r, S8(C0)), p23 = _mm512_fmadd_pd(S8(C3), r, S8(C2));
    __m512d p45 = _mm512_fmadd_pd(S8(C5), r, S8(C4));
    __m512d p03 = _mm512_fmadd_pd(p23, r2, p01), p46 = _mm512_fmadd_pd(S8(C6), r2, p45);
    __m512d p = _mm512_fmadd_pd(p46, r4, p03);
    __m512d q = MUL8(r, p);
    __m512i bits = _mm512_castpd_si512(kp);
    __m512d T = _mm512_permutex2var_pd(tlo, bits, thi); /* the low 4 bits pick the entry */
    __m512i sb = _mm512_slli_epi64(
        _mm512_add_epi64(_mm512_srli_epi64(bits, 4), _mm512_set1_epi64(1023)), 52);
    __m512d S = MUL8(T, _mm512_castsi512_pd(sb));
    __m512d m = _mm512_fmadd_pd(S, q, SUB8(S, S8(1.0)));
    return _mm512_div_pd(m, ADD8(m, S8(2.0)));
}

AVX512 static inline __m512 tanh16(__m512 x) {
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    __m512i xi = _mm512_castps_si512(x);
    __m512 ax = _mm512_castsi512_ps(_mm512_andnot_si512(sign, xi));
    ax = _mm512_min_ps(ax, _mm512_set1_ps((float)TANH_CLAMP));
    __m256 xhi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(ax), 1));
    __m256 lo = _mm512_cvtpd_ps(tanh8d_abs(_mm512_cvtps_pd(_mm512_castps512_ps256(ax))));
    __m256 hi = _mm512_cvtpd_ps(tanh8d_abs(_mm512_cvtps_pd(xhi)));
    __m512i both = _mm512_castpd_si512(
        _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1));
    return _mm512_castsi512_ps(_mm512_or_si512(both, _mm512_and_si512(sign, xi))); /* copysign */
}

/* tanh32_scalar1 on 16 lanes: the same float operations in the same order. */
AVX512 static inline __m512 tanh32_16(__m512 x) {
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    __m512i xi = _mm512_castps_si512(x);
    __m512 ax = _mm512_castsi512_ps(_mm512_andnot_si512(sign, xi));
    ax = _mm512_min_ps(ax, _mm512_set1_ps(T32_CLAMP));
    __m512 y = _mm512_add_ps(ax, ax);
    __m512 kp =
        _mm512_add_ps(_mm512_mul_ps(y, _mm512_set1_ps(T32_INV_LN2)), _mm512_set1_ps(T32_SHIFT));
    __m512 k = _mm512_sub_ps(kp, _mm512_set1_ps(T32_SHIFT));
    __m512 r = _mm512_sub_ps(y, _mm512_mul_ps(k, _mm512_set1_ps(T32_LN2_HI)));
    r = _mm512_sub_ps(r, _mm512_mul_ps(k, _mm512_set1_ps(T32_LN2_LO)));
    __m512 q = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(T32_C7), r), _mm512_set1_ps(T32_C6));
    q = _mm512_add_ps(_mm512_mul_ps(q, r), _mm512_set1_ps(T32_C5));
    q = _mm512_add_ps(_mm512_mul_ps(q, r), _mm512_set1_ps(T32_C4));
    q = _mm512_add_ps(_mm512_mul_ps(q, r), _mm512_set1_ps(T32_C3));
    q = _mm512_add_ps(_mm512_mul_ps(q, r), _mm512_set1_ps(T32_C2));
    q = _mm512_add_ps(_mm512_mul_ps(q, r), _mm512_set1_ps(T32_C1));
    q = _mm512_add_ps(_mm512_mul_ps(q, r), _mm512_set1_ps(T32_C0));
    __m512 e = _mm512_mul_ps(r, q);
    __m512i sb = _mm512_slli_epi32(
        _mm512_add_epi32(_mm512_sub_epi32(_mm512_castps_si512(kp), _mm512_set1_epi32(0x4B400000)),
                         _mm512_set1_epi32(127)),
        23);
    __m512 S = _mm512_castsi512_ps(sb);
    __m512 m = _mm512_add_ps(_mm512_mul_ps(S, e), _mm512_sub_ps(S, _mm512_set1_ps(1.0f)));
    __m512 t = _mm512_div_ps(m, _mm512_add_ps(m, _mm512_set1_ps(2.0f)));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), _mm512_and_si512(sign, xi)));
}

/* tanh32_16 of two vectors, step by step side by side: each lane gets the same operations in
 * the same order (so the same result), but the two dependency chains come interleaved in the
 * instruction stream, and the scheduler finds two independent operations at every point of
 * the ~30-operation chain instead of one (the 256-neuron update: 439 -> 398 ns). */
AVX512 static inline __attribute__((always_inline)) void tanh32_16x2(__m512 *pa, __m512 *pb) {
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    const __m512 clamp = _mm512_set1_ps(T32_CLAMP), shift = _mm512_set1_ps(T32_SHIFT);
    __m512i xa = _mm512_castps_si512(*pa), xb = _mm512_castps_si512(*pb);
    __m512 aa = _mm512_min_ps(_mm512_castsi512_ps(_mm512_andnot_si512(sign, xa)), clamp);
    __m512 ab = _mm512_min_ps(_mm512_castsi512_ps(_mm512_andnot_si512(sign, xb)), clamp);
    __m512 ya = _mm512_add_ps(aa, aa), yb = _mm512_add_ps(ab, ab);
    __m512 kpa = _mm512_add_ps(_mm512_mul_ps(ya, _mm512_set1_ps(T32_INV_LN2)), shift);
    __m512 kpb = _mm512_add_ps(_mm512_mul_ps(yb, _mm512_set1_ps(T32_INV_LN2)), shift);
    __m512 ka = _mm512_sub_ps(kpa, shift), kb = _mm512_sub_ps(kpb, shift);
    __m512 ra = _mm512_sub_ps(ya, _mm512_mul_ps(ka, _mm512_set1_ps(T32_LN2_HI)));
    __m512 rb = _mm512_sub_ps(yb, _mm512_mul_ps(kb, _mm512_set1_ps(T32_LN2_HI)));
    ra = _mm512_sub_ps(ra, _mm512_mul_ps(ka, _mm512_set1_ps(T32_LN2_LO)));
    rb = _mm512_sub_ps(rb, _mm512_mul_ps(kb, _mm512_set1_ps(T32_LN2_LO)));
    const __m512 c7 = _mm512_set1_ps(T32_C7), c6 = _mm512_set1_ps(T32_C6);
    __m512 qa = _mm512_add_ps(_mm512_mul_ps(c7, ra), c6);
    __m512 qb = _mm512_add_ps(_mm512_mul_ps(c7, rb), c6);
#define T32_HORNER2(C)                                                                             \
    qa = _mm512_add_ps(_mm512_mul_ps(qa, ra), _mm512_set1_ps(C));                                  \
    qb = _mm512_add_ps(_mm512_mul_ps(qb, rb), _mm512_set1_ps(C))
    T32_HORNER2(T32_C5);
    T32_HORNER2(T32_C4);
    T32_HORNER2(T32_C3);
    T32_HORNER2(T32_C2);
    T32_HORNER2(T32_C1);
    T32_HORNER2(T32_C0);
#undef T32_HORNER2
    __m512 ea = _mm512_mul_ps(ra, qa), eb = _mm512_mul_ps(rb, qb);
    const __m512i bias = _mm512_set1_epi32(127 - 0x4B400000);
    __m512 Sa = _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_castps_si512(kpa), bias), 23));
    __m512 Sb = _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_castps_si512(kpb), bias), 23));
    const __m512 one = _mm512_set1_ps(1.0f), two = _mm512_set1_ps(2.0f);
    __m512 ma = _mm512_add_ps(_mm512_mul_ps(Sa, ea), _mm512_sub_ps(Sa, one));
    __m512 mb = _mm512_add_ps(_mm512_mul_ps(Sb, eb), _mm512_sub_ps(Sb, one));
    __m512 ta = _mm512_div_ps(ma, _mm512_add_ps(ma, two));
    __m512 tb = _mm512_div_ps(mb, _mm512_add_ps(mb, two));
    *pa = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(ta), _mm512_and_si512(sign, xa)));
    *pb = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(tb), _mm512_and_si512(sign, xb)));
}

AVX512 static inline __attribute__((always_inline)) __m512 tanh16_mode(__m512 x, int f32) {
    return f32 ? tanh32_16(x) : tanh16(x);
}

AVX512 static void axpy_avx512(float *y, float a, const float *x, size_t n) {
    __m512 va = _mm512_set1_ps(a);
    size_t k = 0;
    for (; k + 32 <= n; k += 32) {
        __m512 y0 =
            _mm512_add_ps(_mm512_loadu_ps(y + k), _mm512_mul_ps(va, _mm512_loadu_ps(x + k)));
        __m512 y1 = _mm512_add_ps(_mm512_loadu_ps(y + k + 16),
                                  _mm512_mul_ps(va, _mm512_loadu_ps(x + k + 16)));
        _mm512_storeu_ps(y + k, y0);
        _mm512_storeu_ps(y + k + 16, y1);
    }
    for (; k + 16 <= n; k += 16)
        _mm512_storeu_ps(y + k, _mm512_add_ps(_mm512_loadu_ps(y + k),
                                              _mm512_mul_ps(va, _mm512_loadu_ps(x + k))));
    for (; k < n; k++)
        y[k] = y[k] + a * x[k];
}

/* Whether every a[r] is 1 (binary spikes): then y + a x is y + x bit for bit (1 * x == x
 * exactly), and the multiplies can go. */
static int all_ones(const float *a, size_t nr) {
    uint32_t bad = 0, b;
    for (size_t r = 0; r < nr; r++) {
        memcpy(&b, &a[r], 4);
        bad |= b ^ 0x3f800000u; /* the bits of 1.0f */
    }
    return bad == 0;
}

/* y = s * y, then + each row in order, 8 registers of y: axpy_rows with every a[r] == 1
 * (rows[r], or with rows NULL base + idx_r * n: add_idx). Half the arithmetic of the general
 * loop: it pays where the rows come from L1 (the float32 group step), less where they stream
 * from L2. */
#define FROW(r) (rows ? rows[r] : frow_at(base, n, idx, stride, (r)))
AVX512 static inline __attribute__((always_inline)) void
add_core_avx512(float *y, size_t n, float s, const float *const *rows, const float *base,
                const void *idx, size_t stride, size_t nr) {
    size_t k = 0;
    const __m512 vs = _mm512_set1_ps(s);
    for (; k + 128 <= n; k += 128) {
        __m512 y0 = _mm512_mul_ps(vs, _mm512_loadu_ps(y + k)),
               y1 = _mm512_mul_ps(vs, _mm512_loadu_ps(y + k + 16));
        __m512 y2 = _mm512_mul_ps(vs, _mm512_loadu_ps(y + k + 32)),
               y3 = _mm512_mul_ps(vs, _mm512_loadu_ps(y + k + 48));
        __m512 y4 = _mm512_mul_ps(vs, _mm512_loadu_ps(y + k + 64)),
               y5 = _mm512_mul_ps(vs, _mm512_loadu_ps(y + k + 80));
        __m512 y6 = _mm512_mul_ps(vs, _mm512_loadu_ps(y + k + 96)),
               y7 = _mm512_mul_ps(vs, _mm512_loadu_ps(y + k + 112));
        for (size_t r = 0; r < nr; r++) {
            const float *x = FROW(r) + k;
            y0 = _mm512_add_ps(y0, _mm512_loadu_ps(x));
            y1 = _mm512_add_ps(y1, _mm512_loadu_ps(x + 16));
            y2 = _mm512_add_ps(y2, _mm512_loadu_ps(x + 32));
            y3 = _mm512_add_ps(y3, _mm512_loadu_ps(x + 48));
            y4 = _mm512_add_ps(y4, _mm512_loadu_ps(x + 64));
            y5 = _mm512_add_ps(y5, _mm512_loadu_ps(x + 80));
            y6 = _mm512_add_ps(y6, _mm512_loadu_ps(x + 96));
            y7 = _mm512_add_ps(y7, _mm512_loadu_ps(x + 112));
        }
        _mm512_storeu_ps(y + k, y0), _mm512_storeu_ps(y + k + 16, y1);
        _mm512_storeu_ps(y + k + 32, y2), _mm512_storeu_ps(y + k + 48, y3);
        _mm512_storeu_ps(y + k + 64, y4), _mm512_storeu_ps(y + k + 80, y5);
        _mm512_storeu_ps(y + k + 96, y6), _mm512_storeu_ps(y + k + 112, y7);
    }
    for (; k + 16 <= n; k += 16) {
        __m512 y0 = _mm512_mul_ps(vs, _mm512_loadu_ps(y + k));
        for (size_t r = 0; r < nr; r++)
            y0 = _mm512_add_ps(y0, _mm512_loadu_ps(FROW(r) + k));
        _mm512_storeu_ps(y + k, y0);
    }
    for (; k < n; k++) {
        float acc = s * y[k];
        for (size_t r = 0; r < nr; r++)
            acc = acc + FROW(r)[k];
        y[k] = acc;
    }
}

AVX512 static void add_idx_avx512(float *y, size_t n, float s, const float *base, const void *idx,
                                  size_t stride, size_t nr) {
    add_core_avx512(y, n, s, NULL, base, idx, stride, nr);
}

AVX512 static void axpy_rows_avx512(float *y, size_t n, float s, const float *a,
                                    const float *const *rows, size_t nr) {
    if (nr && all_ones(a, nr)) {
        add_core_avx512(y, n, s, rows, NULL, NULL, 0, nr);
        return;
    }
    size_t k = 0;
    for (; k + 128 <= n; k += 128) { /* 8 registers of y */
        const __m512 vs = _mm512_set1_ps(s);
        __m512 y0 = _mm512_mul_ps(vs, _mm512_loadu_ps(y + k)),
               y1 = _mm512_mul_ps(vs, _mm512_loadu_ps(y + k + 16));
        __m512 y2 = _mm512_mul_ps(vs, _mm512_loadu_ps(y + k + 32)),
               y3 = _mm512_mul_ps(vs, _mm512_loadu_ps(y + k + 48));
        __m512 y4 = _mm512_mul_ps(vs, _mm512_loadu_ps(y + k + 64)),
               y5 = _mm512_mul_ps(vs, _mm512_loadu_ps(y + k + 80));
        __m512 y6 = _mm512_mul_ps(vs, _mm512_loadu_ps(y + k + 96)),
               y7 = _mm512_mul_ps(vs, _mm512_loadu_ps(y + k + 112));
        for (size_t r = 0; r < nr; r++) {
            const __m512 v = _mm512_set1_ps(a[r]);
            const float *x = rows[r] + k;
            y0 = _mm512_add_ps(y0, _mm512_mul_ps(v, _mm512_loadu_ps(x)));
            y1 = _mm512_add_ps(y1, _mm512_mul_ps(v, _mm512_loadu_ps(x + 16)));
            y2 = _mm512_add_ps(y2, _mm512_mul_ps(v, _mm512_loadu_ps(x + 32)));
            y3 = _mm512_add_ps(y3, _mm512_mul_ps(v, _mm512_loadu_ps(x + 48)));
            y4 = _mm512_add_ps(y4, _mm512_mul_ps(v, _mm512_loadu_ps(x + 64)));
            y5 = _mm512_add_ps(y5, _mm512_mul_ps(v, _mm512_loadu_ps(x + 80)));
            y6 = _mm512_add_ps(y6, _mm512_mul_ps(v, _mm512_loadu_ps(x + 96)));
            y7 = _mm512_add_ps(y7, _mm512_mul_ps(v, _mm512_loadu_ps(x + 112)));
        }
        _mm512_storeu_ps(y + k, y0), _mm512_storeu_ps(y + k + 16, y1);
        _mm512_storeu_ps(y + k + 32, y2), _mm512_storeu_ps(y + k + 48, y3);
        _mm512_storeu_ps(y + k + 64, y4), _mm512_storeu_ps(y + k + 80, y5);
        _mm512_storeu_ps(y + k + 96, y6), _mm512_storeu_ps(y + k + 112, y7);
    }
    for (; k + 16 <= n; k += 16) {
        __m512 y0 = _mm512_mul_ps(_mm512_set1_ps(s), _mm512_loadu_ps(y + k));
        for (size_t r = 0; r < nr; r++)
            y0 = _mm512_add_ps(y0,
                               _mm512_mul_ps(_mm512_set1_ps(a[r]), _mm512_loadu_ps(rows[r] + k)));
        _mm512_storeu_ps(y + k, y0);
    }
    axpy_rows_tail(y, k, n, s, a, rows, nr);
}

AVX512 static void add_avx512(float *y, const float *x, size_t n) {
    size_t k = 0;
    for (; k + 16 <= n; k += 16)
        _mm512_storeu_ps(y + k, _mm512_add_ps(_mm512_loadu_ps(y + k), _mm512_loadu_ps(x + k)));
    for (; k < n; k++)
        y[k] = y[k] + x[k];
}

AVX512 static inline __attribute__((always_inline)) size_t
src_update_avx512_mode(const spk_layer *L, const float *i, float *h, float *hs, float *s,
                       uint32_t *idx, float *val, size_t n, int f32) {
    src_consts c = consts(L);
    const __m512 rho = _mm512_set1_ps(c.rho), r = _mm512_set1_ps(c.r), rs = _mm512_set1_ps(c.r_s);
    const __m512 zh = _mm512_set1_ps(c.z_hyp), zon = _mm512_set1_ps(c.z_on);
    const __m512 theta = _mm512_set1_ps(c.theta), one = _mm512_set1_ps(1.0f);
    const __m512 zero = _mm512_setzero_ps();
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    size_t k = 0, cnt = 0;
    /* Two passes (x = rho tanh(i / rho) into s, then the rest): a tanh is a chain of ~90
     * cycles of latency; with both tanhs in one iteration the reorder buffer holds too few
     * iterations to overlap them, and the loop runs at the speed of the chain. */
    if (f32) /* two vectors at a time, their chains interleaved (tanh32_16x2) */
        for (; k + 32 <= n; k += 32) {
            __m512 va = _mm512_div_ps(_mm512_loadu_ps(i + k), rho);
            __m512 vb = _mm512_div_ps(_mm512_loadu_ps(i + k + 16), rho);
            tanh32_16x2(&va, &vb);
            _mm512_storeu_ps(s + k, _mm512_mul_ps(rho, va));
            _mm512_storeu_ps(s + k + 16, _mm512_mul_ps(rho, vb));
        }
    for (; k + 16 <= n; k += 16)
        _mm512_storeu_ps(
            s + k,
            _mm512_mul_ps(rho, tanh16_mode(_mm512_div_ps(_mm512_loadu_ps(i + k), rho), f32)));
    k = 0;
    if (f32)
        for (; k + 32 <= n; k += 32) {
            __m512 hpa = _mm512_loadu_ps(h + k), hspa = _mm512_loadu_ps(hs + k);
            __m512 hpb = _mm512_loadu_ps(h + k + 16), hspb = _mm512_loadu_ps(hs + k + 16);
            __m512 aa = _mm512_add_ps(_mm512_loadu_ps(s + k), _mm512_mul_ps(r, hpa));
            __m512 ab = _mm512_add_ps(_mm512_loadu_ps(s + k + 16), _mm512_mul_ps(r, hpb));
            aa = _mm512_add_ps(aa, _mm512_mul_ps(rs, hspa));
            ab = _mm512_add_ps(ab, _mm512_mul_ps(rs, hspb));
            aa = _mm512_add_ps(aa, _mm512_loadu_ps(L->b_h + k));
            ab = _mm512_add_ps(ab, _mm512_loadu_ps(L->b_h + k + 16));
            tanh32_16x2(&aa, &ab);
            __m512 za = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(aa, theta, _CMP_GT_OQ), zh, zon);
            __m512 zb = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(ab, theta, _CMP_GT_OQ), zh, zon);
            _mm512_storeu_ps(hs + k, _mm512_add_ps(_mm512_mul_ps(za, hspa),
                                                   _mm512_mul_ps(_mm512_sub_ps(one, za), hpa)));
            _mm512_storeu_ps(
                hs + k + 16,
                _mm512_add_ps(_mm512_mul_ps(zb, hspb), _mm512_mul_ps(_mm512_sub_ps(one, zb), hpb)));
            _mm512_storeu_ps(h + k, aa);
            _mm512_storeu_ps(h + k + 16, ab);
            /* the outputs of the two vectors in order (ascending), as below */
            __mmask16 pa = _mm512_cmp_ps_mask(aa, zero, _CMP_GT_OQ);
            __mmask16 pb = _mm512_cmp_ps_mask(ab, zero, _CMP_GT_OQ);
            _mm512_storeu_ps(val + cnt, _mm512_maskz_compress_ps(pa, aa));
            _mm512_storeu_si512(
                (void *)(idx + cnt),
                _mm512_maskz_compress_epi32(pa, _mm512_add_epi32(iota, _mm512_set1_epi32((int)k))));
            cnt += (size_t)__builtin_popcount(pa);
            _mm512_storeu_ps(val + cnt, _mm512_maskz_compress_ps(pb, ab));
            _mm512_storeu_si512((void *)(idx + cnt),
                                _mm512_maskz_compress_epi32(
                                    pb, _mm512_add_epi32(iota, _mm512_set1_epi32((int)k + 16))));
            cnt += (size_t)__builtin_popcount(pb);
        }
    for (; k + 16 <= n; k += 16) {
        __m512 hp = _mm512_loadu_ps(h + k), hsp = _mm512_loadu_ps(hs + k);
        __m512 x = _mm512_loadu_ps(s + k);
        __m512 a = _mm512_add_ps(x, _mm512_mul_ps(r, hp));
        a = _mm512_add_ps(a, _mm512_mul_ps(rs, hsp));
        a = _mm512_add_ps(a, _mm512_loadu_ps(L->b_h + k));
        __m512 hn = tanh16_mode(a, f32);
        __m512 z = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(hn, theta, _CMP_GT_OQ), zh, zon);
        __m512 hsn = _mm512_add_ps(_mm512_mul_ps(z, hsp), _mm512_mul_ps(_mm512_sub_ps(one, z), hp));
        _mm512_storeu_ps(h + k, hn);
        _mm512_storeu_ps(hs + k, hsn);
        /* the non-zero outputs, ascending: compressed in registers and stored whole (a
         * compressing store to memory is slow on some CPUs); cnt <= k, so the 16 lanes stay
         * within idx[0, n) and val[0, n) */
        __mmask16 pos = _mm512_cmp_ps_mask(hn, zero, _CMP_GT_OQ);
        _mm512_storeu_ps(val + cnt, _mm512_maskz_compress_ps(pos, hn));
        _mm512_storeu_si512(
            (void *)(idx + cnt),
            _mm512_maskz_compress_epi32(pos, _mm512_add_epi32(iota, _mm512_set1_epi32((int)k))));
        cnt += (size_t)__builtin_popcount(pos);
    }
    return src_update_tail(&c, L, i, h, hs, idx, val, k, n, cnt);
}

AVX512 static size_t src_update_avx512(const spk_layer *L, const float *i, float *h, float *hs,
                                       float *s, uint32_t *idx, float *val, size_t n) {
    if (L->tanh == SPK_TANH_FLOAT32) return src_update_avx512_mode(L, i, h, hs, s, idx, val, n, 1);
    return src_update_avx512_mode(L, i, h, hs, s, idx, val, n, 0);
}

AVX512 static void tanh32_avx512(float *y, const float *x, size_t n) {
    size_t k = 0;
    for (; k + 16 <= n; k += 16)
        _mm512_storeu_ps(y + k, tanh32_16(_mm512_loadu_ps(x + k)));
    for (; k < n; k++)
        y[k] = tanh32_scalar1(x[k]);
}

/* 32 int16 sums of a row sum added, widened, into 32 floats of acc. */
AVX512 static inline void q16_add_acc16(float *acc, __m512i s16) {
    __m512i lo = _mm512_cvtepi16_epi32(_mm512_castsi512_si256(s16));
    __m512i hi = _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(s16, 1));
    _mm512_storeu_ps(acc, _mm512_add_ps(_mm512_loadu_ps(acc), _mm512_cvtepi32_ps(lo)));
    _mm512_storeu_ps(acc + 16, _mm512_add_ps(_mm512_loadu_ps(acc + 16), _mm512_cvtepi32_ps(hi)));
}

/* The rows are summed in 16-bit lanes (exact: nr <= SPK_Q8_ROWS), a tile of 256 sums held in
 * 8 registers while the rows stream past; each 32-byte piece of a row is one sign-extending
 * load (vpmovsxbw) and one add. */
AVX512 static inline __attribute__((always_inline)) void
qsum_core_avx512(float *acc, size_t n, const int8_t *const *rows, const int8_t *base,
                 const void *idx, size_t stride, size_t nr) {
    size_t k = 0;
    for (; k + 256 <= n; k += 256) {
        __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0,
                s7 = s0;
        for (size_t r = 0; r < nr; r++) {
            const int8_t *x = QROW(r) + k;
#define LD(j) _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(x + 32 * (j))))
            s0 = _mm512_add_epi16(s0, LD(0));
            s1 = _mm512_add_epi16(s1, LD(1));
            s2 = _mm512_add_epi16(s2, LD(2));
            s3 = _mm512_add_epi16(s3, LD(3));
            s4 = _mm512_add_epi16(s4, LD(4));
            s5 = _mm512_add_epi16(s5, LD(5));
            s6 = _mm512_add_epi16(s6, LD(6));
            s7 = _mm512_add_epi16(s7, LD(7));
#undef LD
        }
        q16_add_acc16(acc + k, s0), q16_add_acc16(acc + k + 32, s1);
        q16_add_acc16(acc + k + 64, s2), q16_add_acc16(acc + k + 96, s3);
        q16_add_acc16(acc + k + 128, s4), q16_add_acc16(acc + k + 160, s5);
        q16_add_acc16(acc + k + 192, s6), q16_add_acc16(acc + k + 224, s7);
    }
    for (; k + 32 <= n; k += 32) {
        __m512i s0 = _mm512_setzero_si512();
        for (size_t r = 0; r < nr; r++)
            s0 = _mm512_add_epi16(
                s0, _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(QROW(r) + k))));
        q16_add_acc16(acc + k, s0);
    }
    for (; k < n; k++) {
        int32_t v = 0;
        for (size_t r = 0; r < nr; r++)
            v += QROW(r)[k];
        acc[k] = acc[k] + (float)v;
    }
}

AVX512 static void qsum_rows_avx512(float *acc, size_t n, const int8_t *const *rows, size_t nr) {
    qsum_core_avx512(acc, n, rows, NULL, NULL, 0, nr);
}

AVX512 static void qsum_idx_avx512(float *acc, size_t n, const int8_t *base, const void *idx,
                                   size_t stride, size_t nr) {
    qsum_core_avx512(acc, n, NULL, base, idx, stride, nr);
}

AVX512 static inline __m512 q8_to_ps16(const int8_t *x) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)x)));
}

/* 8 registers of acc named one by one (as an array of 8 __m512, GCC kept them on the stack:
 * a load and a store per vector and row); the last n % 16 values in one masked vector (the
 * readout of 10 outputs was 160 scalar multiply-adds whose stores and reloads of acc[k]
 * chained: int8 rows may alias acc). Lane by lane the scalar twin's operations. */
AVX512 static void qaxpy_rows_avx512(float *acc, size_t n, const float *a,
                                     const int8_t *const *rows, size_t nr) {
    size_t k = 0;
    for (; k + 128 <= n; k += 128) {
        __m512 y0 = _mm512_loadu_ps(acc + k), y1 = _mm512_loadu_ps(acc + k + 16),
               y2 = _mm512_loadu_ps(acc + k + 32), y3 = _mm512_loadu_ps(acc + k + 48),
               y4 = _mm512_loadu_ps(acc + k + 64), y5 = _mm512_loadu_ps(acc + k + 80),
               y6 = _mm512_loadu_ps(acc + k + 96), y7 = _mm512_loadu_ps(acc + k + 112);
        for (size_t r = 0; r < nr; r++) {
            const __m512 v = _mm512_set1_ps(a[r]);
            const int8_t *x = rows[r] + k;
            y0 = _mm512_add_ps(y0, _mm512_mul_ps(v, q8_to_ps16(x)));
            y1 = _mm512_add_ps(y1, _mm512_mul_ps(v, q8_to_ps16(x + 16)));
            y2 = _mm512_add_ps(y2, _mm512_mul_ps(v, q8_to_ps16(x + 32)));
            y3 = _mm512_add_ps(y3, _mm512_mul_ps(v, q8_to_ps16(x + 48)));
            y4 = _mm512_add_ps(y4, _mm512_mul_ps(v, q8_to_ps16(x + 64)));
            y5 = _mm512_add_ps(y5, _mm512_mul_ps(v, q8_to_ps16(x + 80)));
            y6 = _mm512_add_ps(y6, _mm512_mul_ps(v, q8_to_ps16(x + 96)));
            y7 = _mm512_add_ps(y7, _mm512_mul_ps(v, q8_to_ps16(x + 112)));
        }
        _mm512_storeu_ps(acc + k, y0), _mm512_storeu_ps(acc + k + 16, y1);
        _mm512_storeu_ps(acc + k + 32, y2), _mm512_storeu_ps(acc + k + 48, y3);
        _mm512_storeu_ps(acc + k + 64, y4), _mm512_storeu_ps(acc + k + 80, y5);
        _mm512_storeu_ps(acc + k + 96, y6), _mm512_storeu_ps(acc + k + 112, y7);
    }
    for (; k + 16 <= n; k += 16) {
        __m512 y0 = _mm512_loadu_ps(acc + k);
        for (size_t r = 0; r < nr; r++)
            y0 = _mm512_add_ps(y0, _mm512_mul_ps(_mm512_set1_ps(a[r]), q8_to_ps16(rows[r] + k)));
        _mm512_storeu_ps(acc + k, y0);
    }
    if (k < n) { /* masked: nothing read or written past n */
        const __mmask16 m = (__mmask16)((1u << (n - k)) - 1);
        __m512 y0 = _mm512_maskz_loadu_ps(m, acc + k);
        for (size_t r = 0; r < nr; r++) {
            __m512 x =
                _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, rows[r] + k)));
            y0 = _mm512_add_ps(y0, _mm512_mul_ps(_mm512_set1_ps(a[r]), x));
        }
        _mm512_mask_storeu_ps(acc + k, m, y0);
    }
}

AVX512 static void qapply_avx512(float *y, size_t n, float s, const float *scale,
                                 const float *acc) {
    const __m512 vs = _mm512_set1_ps(s);
    size_t k = 0;
    for (; k + 16 <= n; k += 16)
        _mm512_storeu_ps(y + k, _mm512_add_ps(_mm512_mul_ps(vs, _mm512_loadu_ps(y + k)),
                                              _mm512_mul_ps(_mm512_loadu_ps(scale + k),
                                                            _mm512_loadu_ps(acc + k))));
    for (; k < n; k++)
        y[k] = s * y[k] + scale[k] * acc[k];
}

AVX512 static void qscatter_avx512(int16_t *const *acc, size_t nacc, const int8_t *row, size_t n) {
    size_t k = 0;
    for (; k + 256 <= n; k += 256) {
        __m512i r[8];
        for (int j = 0; j < 8; j++)
            r[j] = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(row + k + 32 * j)));
        for (size_t q = 0; q < nacc; q++) {
            int16_t *p = acc[q] + k;
            for (int j = 0; j < 8; j++)
                _mm512_storeu_si512(
                    (void *)(p + 32 * j),
                    _mm512_add_epi16(_mm512_loadu_si512((const void *)(p + 32 * j)), r[j]));
        }
    }
    for (; k + 32 <= n; k += 32) {
        __m512i r0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(row + k)));
        for (size_t q = 0; q < nacc; q++)
            _mm512_storeu_si512(
                (void *)(acc[q] + k),
                _mm512_add_epi16(_mm512_loadu_si512((const void *)(acc[q] + k)), r0));
    }
    for (size_t q = 0; q < nacc; q++)
        for (size_t j = k; j < n; j++)
            acc[q][j] = (int16_t)(acc[q][j] + row[j]);
}

/* 4 sessions x 64 neurons in 16 registers; per input quad with a spike in any of the 4: 4
 * loads of weights (64 neurons x 4 inputs), 4 broadcasts of the sessions' activity bytes,
 * 16 vpdpbusd (u8 activity x s8 weights, summed in int32: exact). */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void
qdense4_vnni(int32_t *out, size_t n, const uint8_t *act, size_t nq, const int8_t *w4) {
    const uint8_t *a0 = act, *a1 = act + 4 * nq, *a2 = act + 8 * nq, *a3 = act + 12 * nq;
    for (size_t n0 = 0; n0 + 64 <= n; n0 += 64) {
        __m512i c[4][4];
        for (int s = 0; s < 4; s++)
            for (int t = 0; t < 4; t++)
                c[s][t] = _mm512_setzero_si512();
        for (size_t q = 0; q < nq; q++) {
            uint32_t m0, m1, m2, m3;
            memcpy(&m0, a0 + 4 * q, 4), memcpy(&m1, a1 + 4 * q, 4);
            memcpy(&m2, a2 + 4 * q, 4), memcpy(&m3, a3 + 4 * q, 4);
            if (!(m0 | m1 | m2 | m3)) continue;
            const int8_t *w = w4 + (q * n + n0) * 4;
            __m512i w0 = _mm512_loadu_si512((const void *)w),
                    w1 = _mm512_loadu_si512((const void *)(w + 64)),
                    w2 = _mm512_loadu_si512((const void *)(w + 128)),
                    w3 = _mm512_loadu_si512((const void *)(w + 192));
            const uint32_t m[4] = {m0, m1, m2, m3};
            for (int s = 0; s < 4; s++) {
                __m512i b = _mm512_set1_epi32((int)m[s]);
                c[s][0] = _mm512_dpbusd_epi32(c[s][0], b, w0);
                c[s][1] = _mm512_dpbusd_epi32(c[s][1], b, w1);
                c[s][2] = _mm512_dpbusd_epi32(c[s][2], b, w2);
                c[s][3] = _mm512_dpbusd_epi32(c[s][3], b, w3);
            }
        }
        for (int s = 0; s < 4; s++)
            for (int t = 0; t < 4; t++)
                _mm512_storeu_si512((void *)(out + s * n + n0 + 16 * t), c[s][t]);
    }
    size_t done = n / 64 * 64;
    if (done < n) { /* the last n % 64 neurons (a multiple of 16), one register per session */
        for (size_t n0 = done; n0 < n; n0 += 16) {
            __m512i c0 = _mm512_setzero_si512(), c1 = c0, c2 = c0, c3 = c0;
            for (size_t q = 0; q < nq; q++) {
                uint32_t m0, m1, m2, m3;
                memcpy(&m0, a0 + 4 * q, 4), memcpy(&m1, a1 + 4 * q, 4);
                memcpy(&m2, a2 + 4 * q, 4), memcpy(&m3, a3 + 4 * q, 4);
                if (!(m0 | m1 | m2 | m3)) continue;
                __m512i w0 = _mm512_loadu_si512((const void *)(w4 + (q * n + n0) * 4));
                c0 = _mm512_dpbusd_epi32(c0, _mm512_set1_epi32((int)m0), w0);
                c1 = _mm512_dpbusd_epi32(c1, _mm512_set1_epi32((int)m1), w0);
                c2 = _mm512_dpbusd_epi32(c2, _mm512_set1_epi32((int)m2), w0);
                c3 = _mm512_dpbusd_epi32(c3, _mm512_set1_epi32((int)m3), w0);
            }
            _mm512_storeu_si512((void *)(out + n0), c0);
            _mm512_storeu_si512((void *)(out + n + n0), c1);
            _mm512_storeu_si512((void *)(out + 2 * n + n0), c2);
            _mm512_storeu_si512((void *)(out + 3 * n + n0), c3);
        }
    }
}

static int have_vnni(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni");
}

/* The AVX-512 table's qdense4: VNNI where the CPU has it, else the scalar twin. */
static void qdense4_avx512(int32_t *out, size_t n, const uint8_t *act, size_t nq,
                           const int8_t *w4) {
    if (have_vnni())
        qdense4_vnni(out, n, act, nq, w4);
    else
        qdense4_scalar(out, n, act, nq, w4);
}

AVX512 static void tanh_avx512(float *y, const float *x, size_t n) {
    size_t k = 0;
    for (; k + 16 <= n; k += 16)
        _mm512_storeu_ps(y + k, tanh16(_mm512_loadu_ps(x + k)));
    for (; k < n; k++)
        y[k] = tanh_scalar1(x[k]);
}

static const spk_kernels k_avx512 = {
    "avx512",        axpy_avx512,      add_avx512,        axpy_rows_avx512, src_update_avx512,
    tanh_avx512,     qsum_rows_avx512, qaxpy_rows_avx512, qapply_avx512,    tanh32_avx512,
    qscatter_avx512, qdense4_avx512,   qsum_idx_avx512,   add_idx_avx512,
};

static int have_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
}

static int have_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif /* SPK_X86 */

/* ---- selection ---- */

static _Atomic(const spk_kernels *) active;

size_t spk_kernels_list(const spk_kernels **out, size_t cap) {
    size_t n = 0;
    if (n < cap) out[n] = &k_scalar;
    n++;
#ifdef SPK_X86
    if (have_avx2()) {
        if (n < cap) out[n] = &k_avx2;
        n++;
    }
    if (have_avx512()) {
        if (n < cap) out[n] = &k_avx512;
        n++;
    }
#endif
    return n < cap ? n : cap;
}

const spk_kernels *spk_kernels_scalar(void) {
    return &k_scalar;
}

const spk_kernels *spk_kernels_best(void) {
    const spk_kernels *l[8];
    size_t n = spk_kernels_list(l, 8);
    return l[n - 1];
}

const spk_kernels *spk_kernels_active(void) {
    const spk_kernels *k = atomic_load_explicit(&active, memory_order_relaxed);
    if (!k) {
        k = spk_kernels_best();
        atomic_store_explicit(&active, k, memory_order_relaxed);
    }
    return k;
}

int spk_set_kernels(const char *name) {
    if (!name) return SPK_EINVAL;
    if (strcmp(name, "auto") == 0) {
        atomic_store_explicit(&active, spk_kernels_best(), memory_order_relaxed);
        return 0;
    }
    const spk_kernels *l[8];
    size_t n = spk_kernels_list(l, 8);
    for (size_t k = 0; k < n; k++)
        if (strcmp(l[k]->name, name) == 0) {
            atomic_store_explicit(&active, l[k], memory_order_relaxed);
            return 0;
        }
    return SPK_EINVAL;
}

const char *spk_kernels_name(void) {
    return spk_kernels_active()->name;
}
