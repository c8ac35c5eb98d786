/* bench_engine: the C half of `make bench-engine` (tests/bench/bench_engine.py drives it).
 *
 *   bench_engine MODEL IMAGES_IDX_GZ OUTDIR [--seqs N] [--steps T] [--sessions N]
 *                [--threads N] [--group N] [--single-steps N] [--reps N]
 *
 * Inputs: rate-coded Fashion-MNIST test images, encoded with the model's own encoding
 * (spk_encode). Sequence k is T steps long: image k, then image k + seqs, ... chained until
 * T steps are filled, with PRNG seed k + 1. The sequences are written to OUTDIR/inputs.bin
 * so that PyTorch runs exactly the same spikes, and the readout of every sequence after T
 * steps from the initial state goes to OUTDIR/readout.bin (the driver checks PyTorch
 * against it).
 *
 * Measured (printed as "key value" lines that the driver parses):
 *  - one session, one step per spk_step() call: median / p99 / mean time per step;
 *  - the same steps' weight-row reads alone: for every step, the rows that step touches
 *    (a row of layer 0 per input event, a row of layer l per non-zero output of layer l-1,
 *    a readout row per non-zero output of the last layer: recorded from the real run) are
 *    summed with a plain vectorised loop, timed per step the same way;
 *  - many sessions (default 10,000) x T steps on N threads (default 2), each thread with
 *    its own spk_scratch and half the sessions, through spk_step_many() on groups of
 *    sessions: (a) lock-step, one step per session per call, as a server worker steps
 *    many sessions' one-step batches; (b) T steps per session per call.
 *    Session-steps per second (wall clock), best of --reps; and session-steps per CPU-second
 *    (over the CPU time of the threads), which a busy machine skews much less.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "encode.h"
#include "model.h"
#include "state.h"
#include "step.h"

static void die(const char *what, const char *msg) {
    fprintf(stderr, "bench_engine: %s: %s\n", what, msg);
    exit(1);
}

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        die("calloc", "out of memory");
    return p;
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* CPU time of the calling thread: unlike the wall clock, it does not count the time other
 * processes on a busy machine take from us. */
static double cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Percentile q in [0, 1] of v[0..n) (sorts v). */
static double percentile(double *v, size_t n, double q) {
    qsort(v, n, sizeof *v, cmp_double);
    size_t k = (size_t)(q * (double)(n - 1) + 0.5);
    return v[k < n ? k : n - 1];
}

/* ---- Fashion-MNIST images (IDX format, gzip) ---- */

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads up to max_images images; returns them as floats in [0, 1], *n_img and *n_px set. */
static float *load_images(const char *path, uint32_t max_images, uint32_t *n_img,
                          uint32_t *n_px) {
    gzFile f = gzopen(path, "rb");
    if (!f)
        die(path, strerror(errno));
    unsigned char hdr[16];
    if (gzread(f, hdr, 16) != 16 || be32(hdr) != 2051)
        die(path, "not an IDX3 image file");
    uint32_t n = be32(hdr + 4), px = be32(hdr + 8) * be32(hdr + 12);
    if (n > max_images)
        n = max_images;
    size_t total = (size_t)n * px;
    unsigned char *raw = xcalloc(total, 1);
    if (gzread(f, raw, (unsigned)total) != (int)total)
        die(path, "truncated");
    gzclose(f);
    float *x = xcalloc(total, sizeof *x);
    for (size_t k = 0; k < total; k++)
        x[k] = (float)raw[k] / 255.0f;
    free(raw);
    *n_img = n;
    *n_px = px;
    return x;
}

/* ---- the input sequences ---- */

typedef struct {
    spk_event *ev;   /* all events, sorted by step, step relative to the sequence start */
    size_t n_ev;
    size_t *at;      /* T + 1 offsets: events of step t are ev[at[t] .. at[t+1]) */
    spk_event *ev0;  /* the same events with step = 0, for one-step batches */
} sequence;

static void build_sequences(const spk_model *m, const float *img, uint32_t n_img, uint32_t n_px,
                            sequence *seq, uint32_t nseq, uint32_t T, spk_encoding *enc_used) {
    char err[256];
    spk_encoding e = m->encoding;
    if (e.kind == SPK_ENC_NONE || e.steps == 0) { /* a spikes-only model: rate-code anyway */
        e.kind = SPK_ENC_RATE;
        e.steps = T;
        e.warmup_steps = 0;
        e.gain = 1.0f;
    }
    *enc_used = e;
    uint32_t len = spk_encode_steps(&e);
    size_t per_img = spk_encode_max_events(&e, n_px);
    spk_event *tmp = xcalloc(per_img, sizeof *tmp);
    for (uint32_t k = 0; k < nseq; k++) {
        sequence *s = &seq[k];
        size_t cap = per_img * ((T + len - 1) / len), n = 0;
        s->ev = xcalloc(cap, sizeof *s->ev);
        spk_rng rng;
        spk_rng_seed(&rng, (uint64_t)k + 1);
        for (uint32_t t0 = 0, j = k; t0 < T; t0 += len, j += nseq) {
            size_t got = 0;
            if (spk_encode(&e, img + (size_t)(j % n_img) * n_px, n_px, &rng, tmp, per_img, &got,
                           err, sizeof err) != 0)
                die("spk_encode", err);
            for (size_t q = 0; q < got; q++) {
                if (t0 + tmp[q].step >= T)
                    break; /* sorted by step: the rest is past T too */
                s->ev[n] = tmp[q];
                s->ev[n].step += t0;
                n++;
            }
        }
        s->n_ev = n;
        s->at = xcalloc(T + 1, sizeof *s->at);
        s->ev0 = xcalloc(n, sizeof *s->ev0);
        for (size_t q = 0, t = 0; t <= T; t++) {
            while (q < n && s->ev[q].step < t)
                q++;
            s->at[t] = q;
        }
        for (size_t q = 0; q < n; q++) {
            s->ev0[q] = s->ev[q];
            s->ev0[q].step = 0;
        }
    }
    free(tmp);
}

static void write_inputs(const char *path, const sequence *seq, uint32_t nseq, uint32_t T,
                         uint32_t n_in) {
    FILE *f = fopen(path, "wb");
    if (!f)
        die(path, strerror(errno));
    uint32_t hdr[4] = {0x314b5053u /* "SPK1" */, nseq, T, n_in};
    fwrite(hdr, sizeof hdr, 1, f);
    for (uint32_t k = 0; k < nseq; k++) {
        uint32_t n = (uint32_t)seq[k].n_ev;
        fwrite(&n, sizeof n, 1, f);
        fwrite(seq[k].ev, sizeof(spk_event), n, f); /* u32 step, u32 input, f32 value */
    }
    if (fclose(f) != 0)
        die(path, "write failed");
}

/* ---- outputs ---- */

typedef struct {
    spk_output out;
    spk_spike_buf *layers; /* n_layers buffers when recording */
    uint64_t *nonzero;
    float *readout;
} outbuf;

static void outbuf_init(outbuf *o, const spk_model *m, uint32_t steps, int record_layers) {
    memset(o, 0, sizeof *o);
    uint32_t last = m->layers[m->n_layers - 1].n;
    o->out.spikes.cap = spk_max_spikes(last, steps);
    o->out.spikes.buf = xcalloc(o->out.spikes.cap, sizeof(spk_spike));
    o->nonzero = xcalloc(m->n_layers, sizeof *o->nonzero);
    o->out.nonzero = o->nonzero;
    if (m->has_readout) {
        o->readout = xcalloc(m->readout.n, sizeof *o->readout);
        o->out.readout = o->readout;
    }
    if (record_layers) {
        o->layers = xcalloc(m->n_layers, sizeof *o->layers);
        for (uint32_t l = 0; l < m->n_layers; l++) {
            o->layers[l].cap = spk_max_spikes(m->layers[l].n, steps);
            o->layers[l].buf = xcalloc(o->layers[l].cap, sizeof(spk_spike));
        }
        o->out.layers = o->layers;
    }
}

static void outbuf_clear(outbuf *o, uint32_t n_layers) {
    o->out.spikes.len = 0;
    if (o->layers)
        for (uint32_t l = 0; l < n_layers; l++)
            o->layers[l].len = 0;
}

static spk_input step_input(const sequence *s, uint32_t t) {
    spk_input in = {1, s->ev0 + s->at[t], s->at[t + 1] - s->at[t], NULL};
    return in;
}

/* ---- the weight-row read baseline ---- */

typedef float v16 __attribute__((vector_size(64)));

/* Sum rows[0..nr) of width n (row r at base + r * n) into a vector: the plain, vectorised
 * read of exactly the floats the step's synaptic work reads. Compiled for each ISA. */
__attribute__((target_clones("avx512f", "avx2", "default"), noinline)) static float
sum_rows(const float *base, uint32_t n, const uint32_t *rows, size_t nr) {
    v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    float tail = 0.0f;
    for (size_t q = 0; q < nr; q++) {
        const float *p = base + (size_t)rows[q] * n;
        uint32_t k = 0;
        for (; k + 64 <= n; k += 64) {
            v16 x0, x1, x2, x3;
            memcpy(&x0, p + k, 64);
            memcpy(&x1, p + k + 16, 64);
            memcpy(&x2, p + k + 32, 64);
            memcpy(&x3, p + k + 48, 64);
            a0 += x0;
            a1 += x1;
            a2 += x2;
            a3 += x3;
        }
        for (; k + 16 <= n; k += 16) {
            v16 x0;
            memcpy(&x0, p + k, 64);
            a0 += x0;
        }
        for (; k < n; k++)
            tail += p[k];
    }
    v16 a = a0 + a1 + a2 + a3;
    float s = tail;
    for (int j = 0; j < 16; j++)
        s += a[j];
    return s;
}

typedef int8_t v64b __attribute__((vector_size(64)));

/* The same for int8 rows: bytes added with wrapping byte adds (the cheapest read there is). */
__attribute__((target_clones("avx512f", "avx2", "default"), noinline)) static float
sum_rows_q8(const int8_t *base, uint32_t n, const uint32_t *rows, size_t nr) {
    v64b a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    int tail = 0;
    for (size_t q = 0; q < nr; q++) {
        const int8_t *p = base + (size_t)rows[q] * n;
        uint32_t k = 0;
        for (; k + 256 <= n; k += 256) {
            v64b x0, x1, x2, x3;
            memcpy(&x0, p + k, 64);
            memcpy(&x1, p + k + 64, 64);
            memcpy(&x2, p + k + 128, 64);
            memcpy(&x3, p + k + 192, 64);
            a0 += x0;
            a1 += x1;
            a2 += x2;
            a3 += x3;
        }
        for (; k + 64 <= n; k += 64) {
            v64b x0;
            memcpy(&x0, p + k, 64);
            a0 += x0;
        }
        for (; k < n; k++)
            tail += p[k];
    }
    v64b a = a0 + a1 + a2 + a3;
    int s = tail;
    for (int j = 0; j < 64; j++)
        s += a[j];
    return (float)s;
}

/* Rows one step touches, per weight matrix (layers, then the readout). */
typedef struct {
    size_t *at; /* (steps + 1) offsets per matrix, laid out matrix-major */
} touched;

/* ---- many sessions ---- */

typedef struct {
    const spk_model *m;
    const sequence *seq;
    uint32_t nseq, T, group, first, count; /* sessions [first, first + count) */
    int mode;                              /* 0: one step per call, 1: T steps per call */
    spk_state **states;
    spk_scratch *sc;
    spk_input *in;
    outbuf *out;
    spk_output *outv;
    int *rc;
    pthread_barrier_t *bar;
    double t_ns, cpu_ns;
} worker;

static void *worker_run(void *arg) {
    worker *w = arg;
    char err[256];
    const spk_model *m = w->m;
    for (uint32_t k = 0; k < w->count; k++)
        spk_state_reset(w->states[k]);
    pthread_barrier_wait(w->bar);
    double t0 = now_ns(), c0 = cpu_ns();
    uint32_t rounds = w->mode == 0 ? w->T : 1;
    for (uint32_t t = 0; t < rounds; t++) {
        for (uint32_t g = 0; g < w->count; g += w->group) {
            uint32_t n = w->count - g < w->group ? w->count - g : w->group;
            for (uint32_t j = 0; j < n; j++) {
                const sequence *s = &w->seq[(w->first + g + j) % w->nseq];
                if (w->mode == 0) {
                    w->in[j] = step_input(s, t);
                } else {
                    spk_input in = {w->T, s->ev, s->n_ev, NULL};
                    w->in[j] = in;
                }
                outbuf_clear(&w->out[j], m->n_layers);
                w->outv[j] = w->out[j].out;
            }
            if (spk_step_many(w->states + g, w->in, w->outv, n, w->sc, w->rc, err, sizeof err) !=
                0)
                die("spk_step_many", err);
        }
    }
    w->t_ns = now_ns() - t0;
    w->cpu_ns = cpu_ns() - c0;
    return NULL;
}

/* Returns the best wall-clock rate (session-steps/s) of `reps` runs; *cpu_rate gets the best
 * rate per CPU-second (session-steps over the CPU time of all threads). */
static double run_many(const spk_model *m, const sequence *seq, uint32_t nseq, uint32_t T,
                       uint32_t sessions, uint32_t threads, uint32_t group, int mode,
                       uint32_t reps, spk_state **states, double *cpu_rate) {
    worker *w = xcalloc(threads, sizeof *w);
    pthread_t *tid = xcalloc(threads, sizeof *tid);
    pthread_barrier_t bar;
    double best = 0.0;
    *cpu_rate = 0.0;
    uint32_t steps = mode == 0 ? 1 : T;
    for (uint32_t k = 0; k < threads; k++) {
        w[k].m = m;
        w[k].seq = seq;
        w[k].nseq = nseq;
        w[k].T = T;
        w[k].group = group;
        w[k].first = (uint32_t)((uint64_t)sessions * k / threads);
        w[k].count = (uint32_t)((uint64_t)sessions * (k + 1) / threads) - w[k].first;
        w[k].mode = mode;
        w[k].states = states + w[k].first;
        w[k].sc = spk_scratch_create(m);
        if (!w[k].sc)
            die("spk_scratch_create", "out of memory");
        w[k].in = xcalloc(group, sizeof *w[k].in);
        w[k].out = xcalloc(group, sizeof *w[k].out);
        w[k].outv = xcalloc(group, sizeof *w[k].outv);
        w[k].rc = xcalloc(group, sizeof *w[k].rc);
        for (uint32_t j = 0; j < group; j++)
            outbuf_init(&w[k].out[j], m, steps, 0);
    }
    for (uint32_t r = 0; r < reps; r++) {
        pthread_barrier_init(&bar, NULL, threads);
        for (uint32_t k = 0; k < threads; k++) {
            w[k].bar = &bar;
            if (pthread_create(&tid[k], NULL, worker_run, &w[k]) != 0)
                die("pthread_create", strerror(errno));
        }
        double slowest = 0.0, cpu = 0.0;
        for (uint32_t k = 0; k < threads; k++) {
            pthread_join(tid[k], NULL);
            if (w[k].t_ns > slowest)
                slowest = w[k].t_ns;
            cpu += w[k].cpu_ns;
        }
        pthread_barrier_destroy(&bar);
        double rate = (double)sessions * T / (slowest * 1e-9);
        double crate = (double)sessions * T / (cpu * 1e-9);
        printf("many_mode%d_threads%u_rep%u wall_rate %.1f cpu_rate %.1f\n", mode, threads, r,
               rate, crate);
        if (rate > best)
            best = rate;
        if (crate > *cpu_rate)
            *cpu_rate = crate;
    }
    for (uint32_t k = 0; k < threads; k++) {
        spk_scratch_free(w[k].sc);
        for (uint32_t j = 0; j < group; j++) {
            free(w[k].out[j].out.spikes.buf);
            free(w[k].out[j].nonzero);
            free(w[k].out[j].readout);
        }
        free(w[k].in);
        free(w[k].out);
        free(w[k].outv);
        free(w[k].rc);
    }
    free(w);
    free(tid);
    return best;
}

/* ---- main ---- */

static uint32_t arg_u32(int argc, char **argv, const char *name, uint32_t def) {
    for (int k = 4; k + 1 < argc; k++)
        if (strcmp(argv[k], name) == 0)
            return (uint32_t)strtoul(argv[k + 1], NULL, 10);
    return def;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr,
                "usage: bench_engine MODEL IMAGES_IDX_GZ OUTDIR [--seqs N] [--steps T] "
                "[--sessions N] [--threads N] [--group N] [--single-steps N] [--reps N] "
                "[--kernels auto|scalar|avx2|avx512]\n");
        return 2;
    }
    const char *model_path = argv[1], *images = argv[2], *outdir = argv[3];
    uint32_t nseq = arg_u32(argc, argv, "--seqs", 256);
    uint32_t T = arg_u32(argc, argv, "--steps", 100);
    uint32_t sessions = arg_u32(argc, argv, "--sessions", 10000);
    uint32_t threads = arg_u32(argc, argv, "--threads", 2);
    uint32_t group = arg_u32(argc, argv, "--group", 256);
    uint32_t single = arg_u32(argc, argv, "--single-steps", 20000);
    uint32_t reps = arg_u32(argc, argv, "--reps", 3);
    if (!nseq || !T || !sessions || !threads || !group || !single || !reps)
        die("arguments", "every count must be >= 1");

    for (int k = 4; k + 1 < argc; k++) /* e.g. the AVX2 twin on a CPU that has AVX-512 */
        if (strcmp(argv[k], "--kernels") == 0 && spk_set_kernels(argv[k + 1]) != 0)
            die(argv[k + 1], "no such kernel table on this CPU");
    char err[512], path[4096];
    spk_model *m = NULL;
    if (spk_model_load_file(model_path, &m, err, sizeof err) != 0)
        die(model_path, err);
    printf("kernels %s\n", spk_kernels_name());
    printf("model %s v%u n_in %u layers %u readout %u\n", m->name, m->version, m->n_in,
           m->n_layers, m->has_readout ? m->readout.n : 0);

    uint32_t n_img = 0, n_px = 0;
    float *img = load_images(images, 10000, &n_img, &n_px);
    if (n_px != m->n_in) {
        snprintf(err, sizeof err, "images have %u pixels, the model takes %u inputs", n_px,
                 m->n_in);
        die(images, err);
    }
    sequence *seq = xcalloc(nseq, sizeof *seq);
    spk_encoding enc;
    build_sequences(m, img, n_img, n_px, seq, nseq, T, &enc);
    free(img);
    printf("encoding kind %d steps %u warmup %u gain %g\n", (int)enc.kind, enc.steps,
           enc.warmup_steps, (double)enc.gain);
    snprintf(path, sizeof path, "%s/inputs.bin", outdir);
    write_inputs(path, seq, nseq, T, m->n_in);

    uint32_t L = m->n_layers;
    spk_scratch *sc = spk_scratch_create(m);
    spk_state *st = spk_state_create(m);
    if (!sc || !st)
        die("create", "out of memory");

    /* Readout of every sequence after T steps from the initial state, one call each; and
     * the activity of the network (non-zero outputs per layer per step). */
    {
        outbuf o;
        outbuf_init(&o, m, T, 0);
        uint32_t n_out = spk_model_n_out(m);
        float *ro = xcalloc((size_t)nseq * n_out, sizeof *ro);
        uint64_t events = 0;
        for (uint32_t k = 0; k < nseq; k++) {
            spk_state_reset(st);
            outbuf_clear(&o, L);
            spk_input in = {T, seq[k].ev, seq[k].n_ev, NULL};
            if (spk_step(st, &in, &o.out, sc, err, sizeof err) != 0)
                die("spk_step", err);
            events += seq[k].n_ev;
            if (m->has_readout)
                memcpy(ro + (size_t)k * n_out, o.readout, n_out * sizeof *ro);
        }
        snprintf(path, sizeof path, "%s/readout.bin", outdir);
        FILE *f = fopen(path, "wb");
        if (!f)
            die(path, strerror(errno));
        fwrite(ro, sizeof *ro, (size_t)nseq * (m->has_readout ? n_out : 0), f);
        fclose(f);
        double steps_total = (double)nseq * T;
        printf("activity input_events_per_step %.2f", (double)events / steps_total);
        for (uint32_t l = 0; l < L; l++)
            printf(" layer%u_nonzero_per_step %.2f", l, (double)o.nonzero[l] / steps_total);
        printf("\n");
        for (uint32_t l = 0; l < L; l++)
            printf("layer%u n_in %u n %u\n", l, m->layers[l].n_in, m->layers[l].n);
        free(ro);
    }

    /* One session, one step per call, timed per call. The session is reset at the start
     * of every sequence (outside the timing) so that it sees the same activity as above. */
    double *dt = xcalloc(single, sizeof *dt);
    touched tr;
    uint32_t n_mat = L + (m->has_readout ? 1u : 0u);
    tr.at = xcalloc((size_t)n_mat * (single + 1), sizeof *tr.at);
    size_t rows_total = 0;
    {
        outbuf o;
        outbuf_init(&o, m, 1, 0);
        for (uint32_t warm = 0; warm < 2 * T; warm++) { /* caches, branch predictors */
            if (warm % T == 0)
                spk_state_reset(st);
            outbuf_clear(&o, L);
            spk_input in = step_input(&seq[0], warm % T);
            if (spk_step(st, &in, &o.out, sc, err, sizeof err) != 0)
                die("spk_step", err);
        }
        double c_single = cpu_ns();
        for (uint32_t q = 0; q < single; q++) {
            uint32_t t = q % T;
            if (t == 0)
                spk_state_reset(st);
            outbuf_clear(&o, L);
            spk_input in = step_input(&seq[(q / T) % nseq], t);
            double t0 = now_ns();
            int rc = spk_step(st, &in, &o.out, sc, err, sizeof err);
            dt[q] = now_ns() - t0;
            if (rc != 0)
                die("spk_step", err);
        }
        double sum = 0.0;
        for (uint32_t q = 0; q < single; q++)
            sum += dt[q];
        printf("single_cpu_mean_ns %.1f\n", (cpu_ns() - c_single) / single);
        printf("single_mean_ns %.1f\n", sum / single);
        printf("single_p99_ns %.1f\n", percentile(dt, single, 0.99));
        printf("single_median_ns %.1f\n", percentile(dt, single, 0.50));
        printf("single_steps %u\n", single);

        /* The same session fed T steps per call (time per step: median call time / T). */
        outbuf ob;
        outbuf_init(&ob, m, T, 0);
        uint32_t calls = single / T ? single / T : 1;
        for (uint32_t c = 0; c < calls; c++) {
            spk_state_reset(st);
            outbuf_clear(&ob, L);
            spk_input in = {T, seq[c % nseq].ev, seq[c % nseq].n_ev, NULL};
            double t0 = now_ns();
            int rc = spk_step(st, &in, &ob.out, sc, err, sizeof err);
            dt[c] = (now_ns() - t0) / T;
            if (rc != 0)
                die("spk_step", err);
        }
        printf("single_batch_ns_per_step %.1f\n", percentile(dt, calls, 0.5));

        /* Replay the same steps recording every layer's outputs: the rows each step reads. */
        outbuf rec;
        outbuf_init(&rec, m, 1, 1);
        uint32_t **rows = xcalloc(n_mat, sizeof *rows);
        size_t *cap = xcalloc(n_mat, sizeof *cap), *len = xcalloc(n_mat, sizeof *len);
        for (uint32_t q = 0; q < single; q++) {
            uint32_t t = q % T;
            if (t == 0)
                spk_state_reset(st);
            outbuf_clear(&rec, L);
            const sequence *s = &seq[(q / T) % nseq];
            spk_input in = step_input(s, t);
            if (spk_step(st, &in, &rec.out, sc, err, sizeof err) != 0)
                die("spk_step", err);
            for (uint32_t mat = 0; mat < n_mat; mat++) {
                size_t add = mat == 0 ? in.n_events : rec.layers[mat - 1].len;
                if (len[mat] + add > cap[mat]) {
                    cap[mat] = (len[mat] + add) * 2;
                    rows[mat] = realloc(rows[mat], cap[mat] * sizeof **rows);
                    if (!rows[mat])
                        die("realloc", "out of memory");
                }
                for (size_t e = 0; e < add; e++)
                    rows[mat][len[mat]++] =
                        mat == 0 ? in.events[e].input : rec.layers[mat - 1].buf[e].neuron;
                tr.at[(size_t)mat * (single + 1) + q + 1] = len[mat];
            }
        }
        /* Time the plain read of those rows, step by step, like the real steps above. */
        const float *base[SPK_MAX_LAYERS + 1];
        const int8_t *qbase[SPK_MAX_LAYERS + 1]; /* int8 layers: their rows (base NULL) */
        uint32_t width[SPK_MAX_LAYERS + 1];
        double floats = 0.0, bytes = 0.0;
        for (uint32_t mat = 0; mat < n_mat; mat++) {
            base[mat] = mat < L ? m->layers[mat].wt : m->readout.wt;
            qbase[mat] = mat < L ? m->layers[mat].wq : m->readout.wq;
            width[mat] = mat < L ? m->layers[mat].n : m->readout.n;
            floats += (double)len[mat] * width[mat];
            bytes += (double)len[mat] * width[mat] * (qbase[mat] ? 1 : 4);
            rows_total += len[mat];
        }
        volatile float sink = 0.0f;
        double c_read = 0.0;
        for (int pass = 0; pass < 2; pass++) { /* pass 0 warms up */
            c_read = cpu_ns();
            for (uint32_t q = 0; q < single; q++) {
                double t0r = now_ns();
                float acc = 0.0f;
                for (uint32_t mat = 0; mat < n_mat; mat++) {
                    size_t a = tr.at[(size_t)mat * (single + 1) + q];
                    size_t b = tr.at[(size_t)mat * (single + 1) + q + 1];
                    acc += qbase[mat] ? sum_rows_q8(qbase[mat], width[mat], rows[mat] + a, b - a)
                                      : sum_rows(base[mat], width[mat], rows[mat] + a, b - a);
                }
                dt[q] = now_ns() - t0r;
                sink += acc;
            }
        }
        c_read = cpu_ns() - c_read;
        (void)sink;
        sum = 0.0;
        for (uint32_t q = 0; q < single; q++)
            sum += dt[q];
        printf("rows_per_step %.2f floats_per_step %.1f bytes_per_step %.1f\n",
               (double)rows_total / single, floats / single, bytes / single);
        printf("read_cpu_mean_ns %.1f\n", c_read / single);
        printf("read_mean_ns %.1f\n", sum / single);
        printf("read_p99_ns %.1f\n", percentile(dt, single, 0.99));
        printf("read_median_ns %.1f\n", percentile(dt, single, 0.50));
        for (uint32_t mat = 0; mat < n_mat; mat++)
            free(rows[mat]);
        free(rows);
        free(cap);
        free(len);
    }
    free(dt);
    free(tr.at);
    fflush(stdout);

    /* Many sessions on `threads` threads. */
    spk_state **states = xcalloc(sessions, sizeof *states);
    for (uint32_t k = 0; k < sessions; k++)
        if (!(states[k] = spk_state_create(m)))
            die("spk_state_create", "out of memory");
    printf("state_bytes %zu\n", spk_state_bytes(m));
    printf("many_sessions %u threads %u group %u steps %u\n", sessions, threads, group, T);
    fflush(stdout);
    double c0, c1, c2;
    double r0 = run_many(m, seq, nseq, T, sessions, threads, group, 0, reps, states, &c0);
    printf("many_lockstep_rate %.1f\n", r0);
    printf("many_lockstep_cpu_rate %.1f\n", c0);
    fflush(stdout);
    double r1 = run_many(m, seq, nseq, T, sessions, threads, group, 1, reps, states, &c1);
    printf("many_batch_rate %.1f\n", r1);
    printf("many_batch_cpu_rate %.1f\n", c1);
    /* One thread, same work, to show the scaling over cores. */
    double r2 = run_many(m, seq, nseq, T, sessions, 1, group, 0, 1, states, &c2);
    printf("many_lockstep_rate_1thread %.1f\n", r2);
    printf("many_lockstep_cpu_rate_1thread %.1f\n", c2);
    /* The same lock-step run with spk_step_many's group step on for every layer (off by
     * default). */
    double c3;
    spk_set_group_step(SPK_GROUP_ALL);
    double r3 = run_many(m, seq, nseq, T, sessions, threads, group, 0, reps, states, &c3);
    spk_set_group_step(SPK_GROUP_OFF);
    printf("many_group_rate %.1f\n", r3);
    printf("many_group_cpu_rate %.1f\n", c3);

    for (uint32_t k = 0; k < sessions; k++)
        spk_state_free(states[k]);
    free(states);
    for (uint32_t k = 0; k < nseq; k++) {
        free(seq[k].ev);
        free(seq[k].ev0);
        free(seq[k].at);
    }
    free(seq);
    spk_state_free(st);
    spk_scratch_free(sc);
    spk_model_free(m);
    return 0;
}
