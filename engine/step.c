/* step.c: advancing states by batches of steps (SPEC.md section 1).
 *
 * Per step and layer: i = alpha * i, then every input event adds value * (one contiguous
 * row of W^T) to i (one pass over i: the scaling is done as the rows' kernel loads i), then
 * the per-neuron update (5b..5f) runs vectorised over the layer and hands back the layer's
 * non-zero outputs, in ascending neuron order: the next layer's events at the same step.
 * The readout is event-driven as well: o = alpha_o * o, plus s_j * row j of W_o^T per
 * non-zero s_j, plus b_o.
 *
 * Order of the sums (it fixes the float rounding; the numpy reference in tests/engine
 * follows it): layer 0 takes a step's events in array order, adjacent events with the same
 * input summed first; with a dense row, the events are added into a copy of the row and
 * its non-zero inputs are taken in ascending order. Zero-valued inputs do no work.
 *
 * spk_step_many() interleaves its states step by step, so that the weight rows of one step
 * are still in cache for the next state. Nothing here allocates; the scratch (outputs of
 * the current layer, a dense row) belongs to the calling thread.
 */
#include "step.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

struct spk_scratch {
    uint32_t max_n, n_in; /* capacity: widest layer, input row */
    float *s;             /* max_n: the update's scratch (x of SPEC (5b)) */
    float *val;           /* max_n: the current layer's non-zero outputs */
    uint32_t *idx;        /* max_n: and their neurons */
    float *row;           /* n_in: a dense input row plus that step's events */
    float *acc;           /* max_n: an int8 layer's synaptic sum (before its scales) */
    /* the group step of spk_step_many (group_layer0) */
    uint32_t *gstart; /* n_in + 1: per input, where its (state, value) pairs start */
    uint8_t *gstate;  /* gcap: the states (index in the chunk) of each input's pairs */
    float *gval;      /* gcap: and their values */
    uint32_t *tj;     /* gcap: the joined states' (input, value) pairs, state after state */
    float *tv;
    size_t gcap;
    uint64_t grouped;       /* (state, step) pairs whose layer 0 the group step did */
    uint64_t grouped_dense; /* of which by the dense int8 product */
    uint8_t *act;           /* MANY_CHUNK rows of 4 nq bytes: binary inputs by quads (the dense int8
                               group step); NULL when n_in > GROUP_DENSE_MAX_IN */
    int32_t *d32;           /* 4 x max_n: its sums */
    size_t nq;              /* input quads */
    int16_t *acc16;         /* MANY_CHUNK x GROUP_TILE: int8 row sums, 16 bits */
    float *accf;            /* MANY_CHUNK x GROUP_TILE: int8 row sums, floats */
};

/* spk_step_many's chunk of states; the group step's tile of neurons (int8: 256 sums of 16
 * bits, 512 bytes per state, 32 KiB for a chunk: they stay in L1 while the rows stream) */
#define MANY_CHUNK 64
#define GROUP_TILE 256
#define GROUP_DENSE_MAX_IN 4096    /* inputs up to which the dense int8 group step is offered */
#define GROUP_PAIRS_MAX (1u << 14) /* 16 K pairs: 13 bytes each in scratch */

static size_t pad16(size_t n) {
    return (n + 15) / 16 * 16;
}

spk_scratch *spk_scratch_create(const spk_model *m) {
    size_t n = pad16(m->max_n), ni = pad16(m->n_in);
    spk_scratch *sc = calloc(1, sizeof *sc);
    if (!sc) return NULL;
    /* One block: s, val, idx, row, acc (floats and u32 are both 4 bytes). */
    float *blk = aligned_alloc(64, (4 * n + ni) * sizeof(float));
    if (!blk) {
        free(sc);
        return NULL;
    }
    sc->max_n = m->max_n;
    sc->n_in = m->n_in;
    sc->s = blk;
    sc->val = blk + n;
    sc->idx = (uint32_t *)(void *)(blk + 2 * n);
    sc->row = blk + 3 * n;
    sc->acc = blk + 3 * n + ni;
    size_t cap = (size_t)MANY_CHUNK * m->n_in;
    sc->gcap = cap < GROUP_PAIRS_MAX ? cap : GROUP_PAIRS_MAX;
    sc->gstart = malloc(((size_t)m->n_in + 1) * sizeof *sc->gstart);
    sc->gstate = malloc(sc->gcap);
    sc->gval = malloc(sc->gcap * sizeof *sc->gval);
    sc->tj = malloc(sc->gcap * sizeof *sc->tj);
    sc->tv = malloc(sc->gcap * sizeof *sc->tv);
    sc->acc16 = aligned_alloc(64, MANY_CHUNK * GROUP_TILE * sizeof *sc->acc16);
    sc->accf = aligned_alloc(64, MANY_CHUNK * GROUP_TILE * sizeof *sc->accf);
    sc->nq = ((size_t)m->n_in + 3) / 4;
    if (m->n_in <= GROUP_DENSE_MAX_IN) {
        sc->act = calloc((MANY_CHUNK + 1) * 4 * sc->nq, 1);
        sc->d32 = aligned_alloc(64, 4 * pad16(m->max_n) * sizeof *sc->d32);
        if (!sc->act || !sc->d32) {
            spk_scratch_free(sc);
            return NULL;
        }
    }
    if (!sc->gstart || !sc->gstate || !sc->gval || !sc->tj || !sc->tv || !sc->acc16 || !sc->accf) {
        spk_scratch_free(sc);
        return NULL;
    }
    return sc;
}

void spk_scratch_free(spk_scratch *sc) {
    if (!sc) return;
    free(sc->s);
    free(sc->gstart);
    free(sc->gstate);
    free(sc->gval);
    free(sc->tj);
    free(sc->tv);
    free(sc->act);
    free(sc->d32);
    free(sc->acc16);
    free(sc->accf);
    free(sc);
}

uint64_t spk_scratch_grouped(const spk_scratch *sc) {
    return sc ? sc->grouped : 0;
}

uint64_t spk_scratch_grouped_dense(const spk_scratch *sc) {
    return sc ? sc->grouped_dense : 0;
}

size_t spk_max_spikes(uint32_t n, uint32_t steps) {
    if (steps && n > SIZE_MAX / steps) return SIZE_MAX;
    return (size_t)n * steps;
}

/* The common case, every event valid, in one branch-free pass of unsigned compares: a value
 * is accepted iff the bits of |v| are <= those of SPK_MAX_VALUE (for non-negative floats
 * the bit order is the numeric order, and Inf and NaN lie above every finite value). The
 * events are read as 32-bit words, 8 events (24 words, 3 vectors) at a time, each word
 * masked and compared with the limit of its field (steps - 1, n_in - 1, the value bits):
 * about 2 instructions per event instead of 20. One-step batches (the usual server call)
 * are sorted by construction (every step is 0); longer ones compare the steps in order.
 * Only when this finds a bad event does spk_input_check() walk the events again to name it. */
typedef uint32_t u32x8 __attribute__((vector_size(32)));

__attribute__((target_clones("avx2", "default"))) static int
events_ok(const spk_event *ev, size_t n, uint32_t steps, uint32_t n_in) {
    const float maxv = SPK_MAX_VALUE;
    uint32_t maxbits, lim[3], msk[3] = {~0u, ~0u, 0x7fffffffu};
    memcpy(&maxbits, &maxv, 4);
    lim[0] = steps - 1, lim[1] = n_in - 1, lim[2] = maxbits;
    u32x8 L[3], M[3], bad = {0};
    for (int w = 0; w < 24; w++)
        L[w / 8][w % 8] = lim[w % 3], M[w / 8][w % 8] = msk[w % 3];
    _Static_assert(sizeof(spk_event) == 12, "spk_event is 3 words");
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        /* three direct vector loads: a memcpy of all 96 bytes into an array went through the
         * stack in 16-byte halves, and the 32-byte reloads stalled on store forwarding */
        const char *p = (const char *)&ev[k];
        u32x8 x0, x1, x2;
        memcpy(&x0, p, 32);
        memcpy(&x1, p + 32, 32);
        memcpy(&x2, p + 64, 32);
        bad |= (u32x8)((x0 & M[0]) > L[0]);
        bad |= (u32x8)((x1 & M[1]) > L[1]);
        bad |= (u32x8)((x2 & M[2]) > L[2]);
    }
    uint32_t b = 0;
    for (int w = 0; w < 8; w++)
        b |= bad[w];
    for (; k < n; k++) {
        uint32_t vb;
        memcpy(&vb, &ev[k].value, 4);
        b |= (uint32_t)(ev[k].step > lim[0]) | (uint32_t)(ev[k].input > lim[1]) |
             (uint32_t)((vb & 0x7fffffffu) > maxbits);
    }
    if (steps > 1)
        for (k = 1; k < n; k++)
            b |= (uint32_t)(ev[k].step < ev[k - 1].step);
    return !b;
}

int spk_input_check(const spk_model *m, const spk_input *in, char *err, size_t errlen) {
    if (!in) return spk_fail(err, errlen, SPK_EINVAL, "input: NULL");
    if (in->steps < 1) return spk_fail(err, errlen, SPK_EINVAL, "steps: 0, must be >= 1");
    if (in->n_events && !in->events)
        return spk_fail(err, errlen, SPK_EINVAL, "events: NULL with %zu events", in->n_events);
    size_t k0 =
        in->n_events && events_ok(in->events, in->n_events, in->steps, m->n_in) ? in->n_events : 0;
    for (size_t k = k0; k < in->n_events; k++) {
        const spk_event *e = &in->events[k];
        if (e->step >= in->steps)
            return spk_fail(err, errlen, SPK_EINVAL, "events[%zu]: step %u out of range [0, %u)", k,
                            e->step, in->steps);
        if (e->input >= m->n_in)
            return spk_fail(err, errlen, SPK_EINVAL, "events[%zu]: input %u out of range [0, %u)",
                            k, e->input, m->n_in);
        if (!isfinite(e->value))
            return spk_fail(err, errlen, SPK_EINVAL, "events[%zu]: value %g is not finite", k,
                            (double)e->value);
        if (fabsf(e->value) > SPK_MAX_VALUE)
            return spk_fail(err, errlen, SPK_EINVAL,
                            "events[%zu]: value %g exceeds the limit %g in magnitude", k,
                            (double)e->value, (double)SPK_MAX_VALUE);
        if (k > 0 && e->step < in->events[k - 1].step)
            return spk_fail(err, errlen, SPK_EINVAL,
                            "events[%zu]: step %u after step %u of events[%zu]: events must be "
                            "sorted by step",
                            k, e->step, in->events[k - 1].step, k - 1);
    }
    if (in->dense) {
        for (uint32_t t = 0; t < in->steps; t++)
            for (uint32_t j = 0; j < m->n_in; j++) {
                float v = in->dense[(size_t)t * m->n_in + j];
                if (!isfinite(v))
                    return spk_fail(err, errlen, SPK_EINVAL, "dense[%u][%u]: %g is not finite", t,
                                    j, (double)v);
                if (fabsf(v) > SPK_MAX_VALUE)
                    return spk_fail(err, errlen, SPK_EINVAL,
                                    "dense[%u][%u]: %g exceeds the limit %g in magnitude", t, j,
                                    (double)v, (double)SPK_MAX_VALUE);
            }
    }
    return 0;
}

/* ---- sorting events by (step, input, value bits), heapsort: in place, no recursion ---- */

static int ev_less(const spk_event *a, const spk_event *b) {
    if (a->step != b->step) return a->step < b->step;
    if (a->input != b->input) return a->input < b->input;
    uint32_t x, y;
    memcpy(&x, &a->value, 4);
    memcpy(&y, &b->value, 4);
    return x < y;
}

static void sift_down(spk_event *ev, size_t root, size_t n) {
    for (;;) {
        size_t c = 2 * root + 1;
        if (c >= n) return;
        if (c + 1 < n && ev_less(&ev[c], &ev[c + 1])) c++;
        if (!ev_less(&ev[root], &ev[c])) return;
        spk_event t = ev[root];
        ev[root] = ev[c];
        ev[c] = t;
        root = c;
    }
}

void spk_events_sort(spk_event *ev, size_t n) {
    size_t k;
    for (k = 1; k < n; k++)
        if (ev_less(&ev[k], &ev[k - 1])) break;
    if (k >= n) return; /* already sorted: the common case */
    for (size_t r = n / 2; r-- > 0;)
        sift_down(ev, r, n);
    for (size_t end = n - 1; end > 0; end--) {
        spk_event t = ev[0];
        ev[0] = ev[end];
        ev[end] = t;
        sift_down(ev, 0, end);
    }
}

/* ---- stepping ---- */

typedef struct {
    size_t cursor; /* next event of the input */
    uint32_t done; /* steps completed */
    int rc;        /* 0, or the error that stopped this state */
    int space;     /* an output buffer overflowed: stop recording, finish the step */
} run_state;

static int append(spk_spike_buf *b, uint32_t step, const uint32_t *idx, const float *val,
                  size_t cnt) {
    if (!b->buf) return 0; /* not recorded */
    if (cnt > b->cap - b->len) return -1;
    spk_spike *o = b->buf + b->len;
    for (size_t k = 0; k < cnt; k++)
        o[k] = (spk_spike){step, idx[k], val[k]};
    b->len += cnt;
    return 0;
}

/* Rows to add into one vector, gathered so that axpy_rows() streams them past a tile of the
 * vector held in registers. Flushed when full; the order of the rows is kept. The first
 * flush also scales the vector (alpha * i of SPEC (5a), alpha_o * o of the readout): the
 * last flush of a vector must come even when no row was added (rows_finish()).
 *
 * int8 layers (wq set): the rows are summed into acc (zeroed at the start), acc = sum of
 * a_r * row_r in row order, and rows_finish() sets y = scale * y + wscale * acc. A flush whose
 * rows all have a = 1 (binary spikes) sums them as integers instead (qsum_rows): the same
 * value bit for bit while acc holds integers below 2^24 (kernels.h), which `acc_int` and
 * the count of rows so far make sure of; otherwise the float path. */
#define ROWS_BATCH 256
_Static_assert(ROWS_BATCH <= SPK_Q8_ROWS, "a flush of int8 rows fits the 16-bit sums");
typedef struct {
    const spk_kernels *K;
    float *y;
    size_t n, nr;
    float scale;     /* applied to y before the rows by the next flush; 1 after it */
    const float *wt; /* float32 rows (W transposed), when wq is NULL */
    /* int8 */
    const int8_t *wq;    /* NULL: float32 rows */
    const float *wscale; /* n */
    float *acc;          /* n */
    size_t total;        /* rows flushed into acc so far */
    int ones, acc_int;   /* the pending rows all have a = 1; acc holds an exact integer sum */
    float a[ROWS_BATCH];
    const float *rows[ROWS_BATCH];
    const int8_t *qrows[ROWS_BATCH];
} rows_acc;

static void rows_start(rows_acc *ra, float *y, size_t n, float scale, const float *wt,
                       const int8_t *wq, const float *wscale, float *acc) {
    ra->y = y, ra->n = n, ra->nr = 0, ra->scale = scale;
    ra->wt = wt, ra->wq = wq;
    if (wq) {
        ra->wscale = wscale, ra->acc = acc, ra->total = 0, ra->ones = 1, ra->acc_int = 1;
        memset(acc, 0, n * sizeof(float));
    }
}

static void rows_flush(rows_acc *ra) {
    if (ra->wq) {
        if (ra->nr) {
            if (ra->ones && ra->acc_int && ra->total + ra->nr <= SPK_Q8_EXACT_ROWS) {
                ra->K->qsum_rows(ra->acc, ra->n, ra->qrows, ra->nr);
            } else {
                ra->K->qaxpy_rows(ra->acc, ra->n, ra->a, ra->qrows, ra->nr);
                ra->acc_int = 0;
            }
            ra->total += ra->nr;
        }
        ra->nr = 0;
        ra->ones = 1;
        return;
    }
    if (ra->nr || ra->scale != 1.0f)
        ra->K->axpy_rows(ra->y, ra->n, ra->scale, ra->a, ra->rows, ra->nr);
    ra->nr = 0;
    ra->scale = 1.0f;
}

static void rows_finish(rows_acc *ra) {
    rows_flush(ra);
    if (ra->wq) ra->K->qapply(ra->y, ra->n, ra->scale, ra->wscale, ra->acc);
}

/* Row j of the layer's weights (W transposed) with factor a. */
static void rows_add(rows_acc *ra, float a, uint32_t j) {
    if (ra->nr == ROWS_BATCH) rows_flush(ra);
    ra->a[ra->nr] = a;
    if (ra->wq) {
        ra->ones &= a == 1.0f;
        ra->qrows[ra->nr++] = ra->wq + (size_t)j * ra->n;
    } else {
        ra->rows[ra->nr++] = ra->wt + (size_t)j * ra->n;
    }
}

/* Whether events [c, e) (c < e) all have the value 1 and strictly ascending inputs: binary
 * spikes, at most one per input. No branch per event: 8 events (24 words, 3 vectors) at a
 * time, each compared with the 8 before it (the same words 12 bytes earlier): the value
 * words with the bits of 1.0f, the input words with the previous event's input. */
__attribute__((target_clones("avx2", "default"))) static int binary_ascending(const spk_event *ev,
                                                                              size_t c, size_t e) {
    const float one = 1.0f;
    uint32_t ob, vb, bad;
    memcpy(&ob, &one, 4);
    memcpy(&vb, &ev[c].value, 4);
    bad = vb ^ ob;
    u32x8 O[3], V[3], I[3], b = {0};
    for (int w = 0; w < 24; w++) {
        O[w / 8][w % 8] = w % 3 == 2 ? ob : 0;
        V[w / 8][w % 8] = w % 3 == 2 ? ~0u : 0;
        I[w / 8][w % 8] = w % 3 == 1 ? ~0u : 0;
    }
    size_t k = c + 1;
    for (; k + 8 <= e; k += 8) {
        /* direct vector loads into named variables (arrays went through the stack in 16-byte
         * halves, and the 32-byte reloads stalled on store forwarding, as in events_ok) */
        const char *p = (const char *)&ev[k], *q = p - sizeof *ev;
        u32x8 x0, x1, x2, y0, y1, y2;
        memcpy(&x0, p, 32);
        memcpy(&x1, p + 32, 32);
        memcpy(&x2, p + 64, 32);
        memcpy(&y0, q, 32);
        memcpy(&y1, q + 32, 32);
        memcpy(&y2, q + 64, 32);
        b |= ((x0 ^ O[0]) & V[0]) | (~(u32x8)(x0 > y0) & I[0]);
        b |= ((x1 ^ O[1]) & V[1]) | (~(u32x8)(x1 > y1) & I[1]);
        b |= ((x2 ^ O[2]) & V[2]) | (~(u32x8)(x2 > y2) & I[2]);
    }
    for (int w = 0; w < 8; w++)
        bad |= b[w];
    for (; k < e; k++) {
        memcpy(&vb, &ev[k].value, 4);
        bad |= (vb ^ ob) | (uint32_t)(ev[k].input <= ev[k - 1].input);
    }
    return bad == 0;
}

/* The synaptic input of layer 0 at batch step t: adds W s_in[t] into i. */
static void layer0_input(const spk_model *m, const spk_input *in, run_state *rs, uint32_t t,
                         rows_acc *ra, spk_scratch *sc) {
    const spk_layer *L = &m->layers[0];
    const spk_event *ev = in->events;
    size_t c = rs->cursor, ne = in->n_events;
    if (in->dense) {
        float *row = sc->row;
        memcpy(row, in->dense + (size_t)t * m->n_in, m->n_in * sizeof(float));
        for (; c < ne && ev[c].step == t; c++)
            row[ev[c].input] = row[ev[c].input] + ev[c].value;
        for (uint32_t j = 0; j < m->n_in; j++)
            if (row[j] != 0.0f) rows_add(ra, row[j], j);
    } else {
        /* The end of step t's events first (all of them in a one-step batch; else a binary
         * search: they are sorted by step), so that the loop below tests only the input. The
         * rows go straight into ra's arrays through locals (a pointer store may alias
         * ra->nr, which would keep it in memory). */
        size_t e = ne;
        if (in->steps > 1) {
            size_t lo = c;
            while (lo < e) {
                size_t mid = lo + (e - lo) / 2;
                if (ev[mid].step <= t)
                    lo = mid + 1;
                else
                    e = mid;
            }
        }
        const float *wt = L->wt;
        size_t n = L->n, nr = ra->nr;
        if (L->wq && nr == 0 && c < e && binary_ascending(ev, c, e) && e - c <= SPK_Q8_EXACT_ROWS) {
            /* binary spikes, one event per input: the rows are summed as integers straight
             * from the events (qsum_idx reads their inputs in place), in the flushes of
             * ROWS_BATCH rows the loop below would make: the same exact integer sum */
            for (size_t b = c; b < e; b += ROWS_BATCH) {
                size_t cnt = e - b < ROWS_BATCH ? e - b : ROWS_BATCH;
                ra->K->qsum_idx(ra->acc, n, L->wq, &ev[b].input, sizeof *ev, cnt);
                ra->total += cnt;
            }
            rs->cursor = e;
            return;
        }
        if (!L->wq && nr == 0 && c < e && binary_ascending(ev, c, e)) {
            /* float32, binary spikes: y = alpha y + the rows in event order, read straight
             * from the events (add_idx: axpy_rows with factors 1, bit for bit) */
            ra->K->add_idx(ra->y, n, ra->scale, wt, &ev[c].input, sizeof *ev, e - c);
            ra->scale = 1.0f;
            rs->cursor = e;
            return;
        }
        if (L->wq) {
            const int8_t *wq = L->wq;
            int ones = ra->ones;
            while (c < e) {
                uint32_t j = ev[c].input;
                float v = ev[c].value;
                for (c++; c < e && ev[c].input == j; c++)
                    v = v + ev[c].value;
                if (v == 0.0f) continue;
                if (nr == ROWS_BATCH) {
                    ra->nr = nr, ra->ones = ones;
                    rows_flush(ra);
                    nr = 0, ones = 1;
                }
                ones &= v == 1.0f;
                ra->a[nr] = v;
                ra->qrows[nr++] = wq + (size_t)j * n;
            }
            ra->nr = nr, ra->ones = ones;
            rs->cursor = c;
            return;
        }
        while (c < e) {
            uint32_t j = ev[c].input;
            float v = ev[c].value;
            for (c++; c < e && ev[c].input == j; c++)
                v = v + ev[c].value;
            if (v == 0.0f) continue;
            if (nr == ROWS_BATCH) {
                ra->nr = nr;
                rows_flush(ra);
                nr = 0;
            }
            ra->a[nr] = v;
            ra->rows[nr++] = wt + (size_t)j * n;
        }
        ra->nr = nr;
    }
    rs->cursor = c;
}

/* One time step t of the batch for one state. l0_done: the group step has done (5a) of
 * layer 0 already (i holds i[t], the events of step t are consumed). */
static void step_one(spk_state *st, const spk_kernels *K, const spk_input *in, spk_output *out,
                     run_state *rs, uint32_t t, spk_scratch *sc, int l0_done) {
    const spk_model *m = spk_state_model(st);
    size_t cnt = 0;
    rows_acc ra;
    ra.K = K;
    for (uint32_t l = 0; l < m->n_layers; l++) {
        const spk_layer *L = &m->layers[l];
        float *i = spk_state_i(st, l);
        if (l > 0 || !l0_done) {
            rows_start(&ra, i, L->n, L->alpha, L->wt, L->wq, L->wscale, sc->acc); /* (5a) */
            if (l == 0) {
                layer0_input(m, in, rs, t, &ra, sc);
            } else {
                for (size_t k = 0; k < cnt; k++)
                    rows_add(&ra, sc->val[k], sc->idx[k]);
            }
            rows_finish(&ra);
        }
        cnt = K->src_update(L, i, spk_state_h(st, l), spk_state_hs(st, l), sc->s, sc->idx, sc->val,
                            L->n);
        if (!out) continue;
        if (out->nonzero) out->nonzero[l] += cnt;
        if (rs->space) continue;
        if (out->layers && append(&out->layers[l], t, sc->idx, sc->val, cnt)) rs->space = 1;
        if (l + 1 == m->n_layers && append(&out->spikes, t, sc->idx, sc->val, cnt)) rs->space = 1;
    }
    if (m->has_readout) {
        const spk_readout *R = &m->readout;
        float *o = spk_state_o(st);
        rows_start(&ra, o, R->n, R->alpha, R->wt, R->wq, R->wscale, sc->acc);
        for (size_t k = 0; k < cnt; k++)
            rows_add(&ra, sc->val[k], sc->idx[k]);
        rows_finish(&ra);
        K->add(o, R->b, R->n);
        if (out && out->readout && out->readout_every_step)
            memcpy(out->readout + (size_t)t * R->n, o, R->n * sizeof(float));
    }
    rs->done = t + 1;
}

/* Checks that need no stepping: the state, scratch and input fit together. */
static int precheck(spk_state *st, const spk_input *in, const spk_scratch *sc, char *err,
                    size_t errlen) {
    if (!st) return spk_fail(err, errlen, SPK_EINVAL, "state: NULL");
    const spk_model *m = spk_state_model(st);
    if (!sc) return spk_fail(err, errlen, SPK_EINVAL, "scratch: NULL");
    if (sc->max_n < m->max_n || sc->n_in < m->n_in)
        return spk_fail(
            err, errlen, SPK_EINVAL,
            "scratch: made for a model of width %u and %u inputs, this one needs %u and %u",
            sc->max_n, sc->n_in, m->max_n, m->n_in);
    return spk_input_check(m, in, err, errlen);
}

static int finish(spk_state *st, const spk_input *in, spk_output *out, const run_state *rs,
                  uint64_t t0, char *err, size_t errlen) {
    const spk_model *m = spk_state_model(st);
    spk_state_set_t(st, t0 + rs->done);
    if (out && out->readout && !out->readout_every_step && m->has_readout)
        memcpy(out->readout, spk_state_o(st), m->readout.n * sizeof(float));
    if (rs->space)
        return spk_fail(
            err, errlen, SPK_ESPACE,
            "spikes: output buffer too small for %u steps (size it with spk_max_spikes())",
            in->steps);
    return 0;
}

int spk_step(spk_state *s, const spk_input *in, spk_output *out, spk_scratch *sc, char *err,
             size_t errlen) {
    int rc = precheck(s, in, sc, err, errlen);
    if (rc) return rc;
    const spk_kernels *K = spk_kernels_active();
    run_state rs = {0, 0, 0, 0};
    uint64_t t0 = spk_state_t(s);
    for (uint32_t t = 0; t < in->steps && !rs.space; t++)
        step_one(s, K, in, out, &rs, t, sc, 0);
    return finish(s, in, out, &rs, t0, err, errlen);
}

/* ---- the group step: layer 0 of many sessions, each row read once ----
 *
 * For step t of a chunk of states of one model: every input row that any state's events
 * touch is read from L2 once for all the states with that input active, instead of by each
 * state (float32: a block of rows kept in L1 while each state adds its rows of the block in
 * registers, group_f32; int8: the row in registers, the states' 16-bit sums streaming past,
 * qscatter, or the dense int8 product). Results are the one-session step's bit for bit:
 *  - float32 layer: a state's sum is its events' rows in order (engine/step.c's order); the
 *    group visits inputs in ascending order, so a state joins only when its step-t events
 *    come in non-decreasing input order (adjacent events of one input summed first, as
 *    layer0_input does); its i is scaled by alpha first, then gets the rows: per element,
 *    the same multiply and adds in the same order;
 *  - int8 layer: a state joins when every (summed) value is 1 (binary spikes): its sum is
 *    then an exact integer, in any order (kernels.h), summed here in 16-bit lanes over
 *    blocks of SPK_Q8_ROWS inputs, spilled into floats, then i = alpha i + scale * sum as
 *    qapply does.
 * Other states (graded int8 input, dense rows, unsorted inputs, another model) take the
 * one-session path. Used when at least GROUP_MIN states join. */
#define GROUP_MIN 2

/* Off by default: on this project's CPU (Intel, AVX-512, 2 cores shared with other work) the
 * group step measured slower than the one-session steps it replaces, the int8 one by ~50 %,
 * the float32 one (blocked in L1, group_f32) by ~5 % (tests/bench/README.md).
 * spk_set_group_step() turns it on: SPK_GROUP_AUTO for float32 layers only, SPK_GROUP_ALL for
 * int8 layers too. */
static _Atomic int group_on = SPK_GROUP_OFF;

int spk_set_group_step(int on) {
    int was = atomic_load_explicit(&group_on, memory_order_relaxed);
    if (on != SPK_GROUP_OFF && on != SPK_GROUP_ALL) on = SPK_GROUP_AUTO;
    atomic_store_explicit(&group_on, on, memory_order_relaxed);
    return was;
}

/* The end of step t's events for a state (as layer0_input finds it). */
static size_t step_end(const spk_input *in, size_t c, uint32_t t) {
    size_t e = in->n_events;
    if (in->steps > 1) {
        const spk_event *ev = in->events;
        size_t lo = c;
        while (lo < e) {
            size_t mid = lo + (e - lo) / 2;
            if (ev[mid].step <= t)
                lo = mid + 1;
            else
                e = mid;
        }
    }
    return e;
}

/* Whether a state's events [c, e) can join (see above): its (input, value) pairs go to
 * tj/tv from *np on (and *np past them) when it does: 2 when they are binary spikes (every
 * value 1), else 1; 0 (and *np unchanged) when it cannot join. */
static int group_collect(const spk_input *in, size_t c, size_t e, int q8, spk_scratch *sc,
                         size_t *np) {
    const spk_event *ev = in->events;
    size_t p = *np, p0 = p, cap = sc->gcap;
    uint32_t prev = 0;
    if (c < e && e - c <= cap - p && binary_ascending(ev, c, e)) { /* the common case */
        if (q8 && e - c > SPK_Q8_EXACT_ROWS) return 0;
        for (; c < e; c++, p++)
            sc->tj[p] = ev[c].input, sc->tv[p] = 1.0f;
        *np = p;
        return 2;
    }
    while (c < e) {
        uint32_t j = ev[c].input;
        float v = ev[c].value;
        for (c++; c < e && ev[c].input == j; c++)
            v = v + ev[c].value;
        if (v == 0.0f) continue;
        if ((p > p0 && j < prev) || (q8 && v != 1.0f) || p == cap) return 0;
        prev = j;
        sc->tj[p] = j;
        sc->tv[p++] = v;
    }
    if (q8 && p - p0 > SPK_Q8_EXACT_ROWS) return 0;
    *np = p;
    return 1;
}

/* accf += acc16, n values: integers, exact in any order and width. */
typedef int16_t i16x16 __attribute__((vector_size(32)));
typedef float f32x16 __attribute__((vector_size(64)));
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
spill16(float *f, const int16_t *a, uint32_t n) {
    uint32_t k = 0;
    for (; k + 16 <= n; k += 16) {
        i16x16 v;
        f32x16 y;
        memcpy(&v, a + k, sizeof v);
        memcpy(&y, f + k, sizeof y);
        y += __builtin_convertvector(v, f32x16);
        memcpy(f + k, &y, sizeof y);
    }
    for (; k < n; k++)
        f[k] = f[k] + (float)a[k];
}

/* The dense int8 group step or the sparse one? Writes the joined states' binary inputs into
 * act, by quads (joined state r, in chunk order, in row r; jq[r] its index in the chunk;
 * rows up to *nj4, nj rounded up to 4, zero past the last state), and compares the two costs
 * as measured on this project's CPU (a micro-benchmark of 64 sessions, 784 inputs, 256
 * neurons: at 29 % input density the dense product took 0.72 to 0.74 of the sparse sums,
 * at 10 % 2 to 4 times them): dense costs ~0.87 of a sparse row per input quad with a spike
 * in any state of a block of 4, for each of the 4; sparse costs one unit per row. */
static int group_dense(spk_scratch *sc, const size_t *seg, const uint8_t *joined, size_t nc,
                       size_t rows, size_t *jq, size_t *nj4) {
    size_t nq = sc->nq, row = 4 * nq, nj = 0;
    for (size_t q = 0; q < nc; q++) {
        if (!joined[q]) continue;
        uint8_t *a = sc->act + nj * row;
        memset(a, 0, row);
        for (size_t p = seg[q]; p < seg[q + 1]; p++)
            a[sc->tj[p]] = 1;
        jq[nj++] = q;
    }
    *nj4 = (nj + 3) / 4 * 4;
    memset(sc->act + nj * row, 0, (*nj4 - nj) * row);
    size_t union_quads = 0;
    for (size_t r0 = 0; r0 < *nj4; r0 += 4)
        for (size_t k = 0; k < nq; k++) {
            uint32_t m = 0, v;
            for (size_t r = r0; r < r0 + 4; r++) {
                memcpy(&v, sc->act + r * row + 4 * k, 4);
                m |= v;
            }
            union_quads += m != 0;
        }
    return 7 * 4 * union_quads <= 8 * rows;
}

/* The float32 group step, blocked so that the rows stay in L1: the inputs are taken in blocks
 * of GROUP_F32_BLOCK_BYTES of rows; for each block, every joined state adds its rows of the
 * block (axpy_rows: its i in registers, the rows read from L1, where the first state to use
 * them brought them) before the next block is read. A row is read from L2 once per chunk
 * instead of once per state. Per state, i = alpha i first (as the first flush of
 * axpy_rows scales it), then its rows in ascending input order with factor 1 for i (1 * i
 * is i): per element, the one-session step's multiplies and adds in its order. */
#define GROUP_F32_BLOCK_BYTES 32768
#define GROUP_F32_MAX_ROWS 256 /* rows per block: at least 8 (rows of up to 4 KiB) */

static void group_f32(spk_state *const *states, size_t c0, size_t c1, const spk_layer *L,
                      const spk_kernels *K, spk_scratch *sc, const size_t *seg,
                      const uint8_t *joined) {
    uint32_t n = L->n, n_in = L->n_in;
    size_t jb = GROUP_F32_BLOCK_BYTES / ((size_t)n * sizeof(float));
    jb = jb < 8 ? 8 : jb > GROUP_F32_MAX_ROWS ? GROUP_F32_MAX_ROWS : jb;
    float *ys[MANY_CHUNK], scale[MANY_CHUNK];
    size_t cur[MANY_CHUNK];
    uint8_t bin[MANY_CHUNK];
    const float *rows[GROUP_F32_MAX_ROWS];
    for (size_t q = 0; q < c1 - c0; q++) {
        if (!joined[q]) continue;
        ys[q] = spk_state_i(states[c0 + q], 0);
        cur[q] = seg[q];
        scale[q] = L->alpha;     /* applied by the state's first call, then 1 */
        bin[q] = joined[q] == 2; /* binary: add_idx on the inputs, no pointers, no multiplies */
    }
    for (uint32_t j0 = 0; j0 < n_in; j0 += (uint32_t)jb) {
        uint32_t j1 = n_in - j0 < jb ? n_in : j0 + (uint32_t)jb;
        for (size_t q = 0; q < c1 - c0; q++) {
            if (!joined[q]) continue;
            size_t p0 = cur[q], p = p0, e = seg[q + 1];
            if (bin[q]) {
                while (p < e && sc->tj[p] < j1)
                    p++;
                if (p == p0) continue;
                K->add_idx(ys[q], n, scale[q], L->wt, sc->tj + p0, sizeof *sc->tj, p - p0);
            } else {
                for (; p < e && sc->tj[p] < j1; p++)
                    rows[p - p0] = L->wt + (size_t)sc->tj[p] * n;
                if (p == p0) continue;
                K->axpy_rows(ys[q], n, scale[q], sc->tv + p0, rows, p - p0);
            }
            scale[q] = 1.0f;
            cur[q] = p;
        }
    }
    for (size_t q = 0; q < c1 - c0; q++) /* no rows: alpha * i alone */
        if (joined[q] && scale[q] != 1.0f) K->axpy_rows(ys[q], n, scale[q], NULL, NULL, 0);
}

/* Layer 0's (5a) at step t for the states of the chunk [c0, c1) that can join; joined[k - c0]
 * is set for them (their cursor moved past step t's events). */
static void group_layer0(spk_state *const *states, const spk_input *in, run_state *rs, size_t c0,
                         size_t c1, uint32_t t, const spk_kernels *K, spk_scratch *sc,
                         uint8_t *joined) {
    const spk_model *m = NULL;
    size_t seg[MANY_CHUNK + 1], np = 0, nj = 0;
    int mode = atomic_load_explicit(&group_on, memory_order_relaxed);
    const spk_model *m0 = c1 > c0 && states && states[c0] ? spk_state_model(states[c0]) : NULL;
    if (mode == SPK_GROUP_OFF ||
        (mode == SPK_GROUP_AUTO && (!m0 || m0->layers[0].wq))) { /* auto: float32 layers */
        memset(joined, 0, c1 - c0);
        return;
    }
    for (size_t k = c0; k < c1; k++) {
        run_state *r = &rs[k - c0];
        joined[k - c0] = 0;
        seg[k - c0] = np;
        if (r->rc || r->space || t >= in[k].steps || in[k].dense) continue;
        const spk_model *mk = spk_state_model(states[k]);
        if (!m) m = mk;
        if (mk != m) continue;
        size_t e = step_end(&in[k], r->cursor, t);
        int g = group_collect(&in[k], r->cursor, e, m->layers[0].wq != NULL, sc, &np);
        if (!g) continue;
        r->cursor = e;               /* undone below if too few states join */
        joined[k - c0] = (uint8_t)g; /* 2: binary */
        nj++;
    }
    seg[c1 - c0] = np;
    if (nj < GROUP_MIN) {
        for (size_t k = c0; k < c1; k++)
            if (joined[k - c0]) {
                /* back to the state's first event of step t */
                size_t c = rs[k - c0].cursor;
                while (c > 0 && in[k].events[c - 1].step == t)
                    c--;
                rs[k - c0].cursor = c;
            }
        memset(joined, 0, c1 - c0);
        return;
    }
    sc->grouped += nj;
    const spk_layer *L = &m->layers[0];
    uint32_t n_in = L->n_in, n = L->n;
    size_t jq[MANY_CHUNK], nj4;
    if (L->wq && L->wq4 && sc->act && n % 16 == 0 &&
        group_dense(sc, seg, joined, c1 - c0, np, jq, &nj4)) {
        /* dense: blocks of 4 joined states (rows 4b..4b+3 of act; the rows past the last
         * state are zero), exact int32 sums, then i = alpha i + scale * sum as qapply */
        size_t nq = sc->nq;
        sc->grouped_dense += nj;
        for (size_t r0 = 0; r0 < nj4; r0 += 4) {
            K->qdense4(sc->d32, n, sc->act + r0 * 4 * nq, nq, L->wq4);
            for (size_t r = r0; r < r0 + 4 && r < nj; r++) {
                const int32_t *d = sc->d32 + (r - r0) * n;
                for (uint32_t k = 0; k < n; k++)
                    sc->acc[k] = (float)d[k]; /* exact: integers below 2^24 */
                K->qapply(spk_state_i(states[c0 + jq[r]], 0), n, L->alpha, L->wscale, sc->acc);
            }
        }
        return;
    }
    if (!L->wq) {
        group_f32(states, c0, c1, L, K, sc, seg, joined);
        return;
    }
    uint32_t *start = sc->gstart;
    /* counting sort of the (input, state, value) triples by input: states ascending per input */
    memset(start, 0, ((size_t)n_in + 1) * sizeof *start);
    for (size_t p = 0; p < np; p++)
        start[sc->tj[p] + 1]++;
    for (uint32_t j = 0; j < n_in; j++)
        start[j + 1] += start[j];
    for (size_t q = 0; q < c1 - c0; q++)
        for (size_t p = seg[q]; p < seg[q + 1]; p++) {
            uint32_t at = start[sc->tj[p]]++; /* start[j] ends as the start of input j + 1 */
            sc->gstate[at] = (uint8_t)q;
            sc->gval[at] = sc->tv[p];
        }
    /* now start[j] is where input j + 1's pairs begin: input j's are [start[j-1], start[j]) */
    {
        int16_t *acc16[MANY_CHUNK];
        for (uint32_t n0 = 0; n0 < n; n0 += GROUP_TILE) {
            uint32_t tw = n - n0 < GROUP_TILE ? n - n0 : GROUP_TILE;
            for (size_t q = 0; q < c1 - c0; q++)
                if (joined[q]) memset(sc->accf + q * GROUP_TILE, 0, tw * sizeof(float));
            for (uint32_t j0 = 0; j0 < n_in; j0 += SPK_Q8_ROWS) {
                uint32_t j1 = n_in - j0 < SPK_Q8_ROWS ? n_in : j0 + SPK_Q8_ROWS;
                uint32_t b0 = j0 ? start[j0 - 1] : 0, b1 = start[j1 - 1];
                if (b0 == b1) continue;
                for (size_t q = 0; q < c1 - c0; q++)
                    if (joined[q]) memset(sc->acc16 + q * GROUP_TILE, 0, tw * sizeof(int16_t));
                for (uint32_t j = j0; j < j1; j++) {
                    uint32_t p0 = j ? start[j - 1] : 0, p1 = start[j];
                    if (p0 == p1) continue;
                    for (uint32_t p = p0; p < p1; p++)
                        acc16[p - p0] = sc->acc16 + (size_t)sc->gstate[p] * GROUP_TILE;
                    K->qscatter(acc16, p1 - p0, L->wq + (size_t)j * n + n0, tw);
                }
                for (size_t q = 0; q < c1 - c0; q++) /* exact: integers below 2^24 */
                    if (joined[q])
                        spill16(sc->accf + q * GROUP_TILE, sc->acc16 + q * GROUP_TILE, tw);
            }
            for (size_t q = 0; q < c1 - c0; q++)
                if (joined[q])
                    K->qapply(spk_state_i(states[c0 + q], 0) + n0, tw, L->alpha, L->wscale + n0,
                              sc->accf + q * GROUP_TILE);
        }
    }
}

/* Ask for the cache lines of [p, p + n) (at most 16 KiB), for writing or for reading: what
 * spk_step_many reads next (the next state, the next input's events) arrives while the
 * current state steps, instead of one miss after another (10,000 sessions' states do not fit
 * in L2). A prefetch never faults. */
static void prefetch_lines(const void *p, size_t n, int write) {
    const char *c = p;
    n = n < 16384 ? n : 16384;
    if (write)
        for (size_t o = 0; o < n; o += 64)
            __builtin_prefetch(c + o, 1);
    else
        for (size_t o = 0; o < n; o += 64)
            __builtin_prefetch(c + o, 0);
}

int spk_step_many(spk_state *const *states, const spk_input *in, spk_output *out, size_t n,
                  spk_scratch *sc, int *rc, char *err, size_t errlen) {
    const spk_kernels *K = spk_kernels_active();
    int first = 0;
    char e1[256];
    for (size_t c0 = 0; c0 < n; c0 += MANY_CHUNK) {
        size_t c1 = c0 + MANY_CHUNK < n ? c0 + MANY_CHUNK : n;
        run_state rs[MANY_CHUNK];
        uint64_t t0[MANY_CHUNK];
        uint32_t max_steps = 0;
        for (size_t k = c0; k < c1; k++) {
            run_state *r = &rs[k - c0];
            *r = (run_state){0, 0, 0, 0};
            if (states && in && k + 1 < c1) { /* the next state's header and events */
                __builtin_prefetch(states[k + 1]);
                prefetch_lines(in[k + 1].events, in[k + 1].n_events * sizeof(spk_event), 0);
            }
            r->rc = precheck(states ? states[k] : NULL, in ? &in[k] : NULL, sc, e1, sizeof e1);
            if (r->rc) {
                if (!first) first = spk_fail(err, errlen, r->rc, "states[%zu]: %s", k, e1);
                continue;
            }
            t0[k - c0] = spk_state_t(states[k]);
            if (in[k].steps > max_steps) max_steps = in[k].steps;
        }
        uint8_t joined[MANY_CHUNK];
        for (uint32_t t = 0; t < max_steps; t++) {
            group_layer0(states, in, rs, c0, c1, t, K, sc, joined);
            for (size_t k = c0; k < c1; k++) {
                run_state *r = &rs[k - c0];
                if (r->rc || r->space || t >= in[k].steps) continue;
                if (k + 1 < c1 && rs[k + 1 - c0].rc == 0) /* the next state, while this one steps */
                    prefetch_lines(states[k + 1], spk_state_bytes(spk_state_model(states[k + 1])),
                                   1);
                step_one(states[k], K, &in[k], out ? &out[k] : NULL, r, t, sc, joined[k - c0]);
            }
        }
        for (size_t k = c0; k < c1; k++) {
            run_state *r = &rs[k - c0];
            if (r->rc == 0) {
                r->rc =
                    finish(states[k], &in[k], out ? &out[k] : NULL, r, t0[k - c0], e1, sizeof e1);
                if (r->rc && !first) first = spk_fail(err, errlen, r->rc, "states[%zu]: %s", k, e1);
            }
            if (rc) rc[k] = r->rc;
        }
    }
    return first;
}
