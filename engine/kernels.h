/* kernels.h: the numeric inner loops of the engine, as a table of functions.
 *
 * Every optimised table has the scalar table as its twin: same signatures, and the same
 * arithmetic in the same order (no FMA in float, tanh by the same algorithm), so the two give
 * bit-identical results; tests hold them to that and to SPEC.md's 1e-5. The table is
 * picked at run time from what the CPU supports (no -march=native anywhere).
 *
 * tanh: computed in double precision (|error| below 1e-15 relative) and rounded to float,
 * i.e. the correctly rounded float tanh except in rare near-tie cases. This matters:
 * the gate H(h - theta) of SPEC (5c) turns a one-ulp difference of h near theta into a
 * different z_s, so every implementation must be as close to exact as possible.
 *
 * tanh32 (SPK_TANH_FLOAT32 models): float32 arithmetic only (expm1 by a shift to 2^k and a
 * degree-8 Taylor polynomial, then m / (m + 2)), a few ulp from tanh; the same operations in
 * every twin, so the twins agree bit for bit here too.
 *
 * Thread-safety: tables are immutable; spk_kernels_active() reads a value that only
 * spk_set_kernels() (start-up, tests) changes.
 */
#ifndef SPK_KERNELS_H
#define SPK_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

typedef struct spk_kernels {
    const char *name;
    void (*axpy)(float *y, float a, const float *x, size_t n); /* y = y + a * x */
    void (*add)(float *y, const float *x, size_t n);           /* y = y + x */
    /* y = s * y, then + a[0] * rows[0] + ... + a[nr-1] * rows[nr-1], added in that order (so
     * equal, bit for bit, to scaling y and then nr calls of axpy); the vector twins keep a
     * tile of y in registers while the rows stream through, so y is loaded and stored once
     * per call, not once per row (and not once more to scale it: SPEC (5a)'s alpha * i). */
    void (*axpy_rows)(float *y, size_t n, float s, const float *a, const float *const *rows,
                      size_t nr);
    /* SPEC (5b) to (5f) for one layer: i holds i[t]; h and hs hold h[t-1], h_s[t-1] on
     * entry and h[t], h_s[t] on return. The non-zero outputs s_out[t] (> 0) go to idx (the
     * neuron) and val (the value), ascending; returns their count. x is scratch of n floats;
     * idx and val must have room for n rounded up to a multiple of 16. */
    size_t (*src_update)(const spk_layer *L, const float *i, float *h, float *hs, float *x,
                         uint32_t *idx, float *val, size_t n);
    void (*tanh)(float *y, const float *x, size_t n); /* y = tanh(x) (for tests) */

    /* int8 rows (layers stored as int8, model.h). The synaptic sum of such a layer is
     * acc = sum_j v_j * q_j (q_j: int8 row j, as floats), and then y = s * y + scale * acc.
     *
     * acc = acc + (float)(rows[0][k] + ... + rows[nr-1][k]): the row sum in integers (exact,
     * in any order; nr <= SPK_Q8_ROWS), converted to float once. Equal, bit for bit, to
     * qaxpy_rows with every a[r] = 1 as long as acc holds integers below 2^24 in
     * magnitude (SPK_Q8_EXACT_ROWS rows in all). */
    void (*qsum_rows)(float *acc, size_t n, const int8_t *const *rows, size_t nr);
    /* acc = acc + a[0] * rows[0] + ... + a[nr-1] * rows[nr-1], added in that order (each int8
     * is exact as a float; a multiply and an add per term, as axpy). nr <= SPK_Q8_ROWS. */
    void (*qaxpy_rows)(float *acc, size_t n, const float *a, const int8_t *const *rows, size_t nr);
    /* y = s * y + scale * acc, element-wise (two products, then their sum). */
    void (*qapply)(float *y, size_t n, float s, const float *scale, const float *acc);
    /* y = tanh(x) by the float32 approximation of SPK_TANH_FLOAT32 (for tests) */
    void (*tanh32)(float *y, const float *x, size_t n);

    /* The group step (spk_step_many) of int8 layers: one row applied to many sessions' sums,
     * the row read once and kept in registers while the sums stream past. */
    /* acc[s][k] += row[k] in 16-bit integers, s < nacc, k < n (the caller keeps every sum
     * within int16: at most SPK_Q8_ROWS rows between two spills). */
    void (*qscatter)(int16_t *const *acc, size_t nacc, const int8_t *row, size_t n);
    /* The dense group step of an int8 layer (spk_layer.wq4, nq input quads): for 4 sessions
     * s, out[s * n + k] = sum over quads q and i < 4 of act[s * 4 nq + 4 q + i] *
     * w4[(q * n + k) * 4 + i], act bytes 0 or 1: exact int32 sums (vpdpbusd where the CPU has
     * AVX512-VNNI). n a multiple of 16. */
    void (*qdense4)(int32_t *out, size_t n, const uint8_t *act, size_t nq, const int8_t *w4);
    /* qsum_rows with the rows given by index: row r is base + idx_r * n, idx_r the uint32 at
     * (const char *)idx + r * stride (stride in bytes: the input field of an array of
     * spk_event is read in place, so binary events need no list of row pointers). */
    void (*qsum_idx)(float *acc, size_t n, const int8_t *base, const void *idx, size_t stride,
                     size_t nr);
    /* axpy_rows with every a[r] == 1 (binary spikes) and the rows given as qsum_idx gives them
     * (row r: base + idx_r * n): y = s * y, then + row 0 + row 1 ... in order, bit for bit
     * axpy_rows with factors 1 (1 * x == x), without the multiplies. */
    void (*add_idx)(float *y, size_t n, float s, const float *base, const void *idx, size_t stride,
                    size_t nr);
} spk_kernels;

/* Rows per qsum_rows / qaxpy_rows call: 256 int8 rows sum to at most 32512 in magnitude, so
 * the vector twins add them in 16-bit lanes. */
#define SPK_Q8_ROWS 256
/* Rows of one synaptic sum for which the integer path equals the float one: 127 * rows <
 * 2^24, so every partial float sum of integer terms is exact. */
#define SPK_Q8_EXACT_ROWS 132104u

const spk_kernels *spk_kernels_scalar(void);
const spk_kernels *spk_kernels_best(void);   /* best this CPU supports */
const spk_kernels *spk_kernels_active(void); /* what spk_set_kernels() chose ("auto" first) */
/* Every table this CPU can run, scalar first; returns the count (<= 8). */
size_t spk_kernels_list(const spk_kernels **out, size_t cap);

#endif
