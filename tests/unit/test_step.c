/* test_step.c: stepping. Golden outputs of a small fixed model (tests/data/golden, made by
 * the numpy reference), scalar against optimised kernels on random models over 1000 steps,
 * spk_step_many against separate steps, batch splitting, events adding up, dense rows
 * against events, input errors with their messages, output buffers, sorting. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/testmodel.h"
#include "../tap.h"
#include "encode.h"
#include "state.h"
#include "step.h"

#define TOL 1e-5f

static spk_spike *spikes_alloc(size_t n) {
    return calloc(n ? n : 1, sizeof(spk_spike));
}

/* ---- golden ---- */

typedef struct {
    uint32_t steps;
    spk_event ev[1024];
    size_t n_ev;
    float *dense;
} golden_in;

static int read_inputs(const char *path, uint32_t n_in, golden_in *g) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char tag[8];
    g->n_ev = 0;
    g->dense = NULL;
    if (fscanf(f, "%7s %u", tag, &g->steps) != 2 || strcmp(tag, "steps")) return fclose(f), -1;
    g->dense = calloc((size_t)g->steps * n_in, sizeof(float));
    int has_dense = 0;
    while (fscanf(f, "%7s", tag) == 1) {
        if (!strcmp(tag, "e")) {
            spk_event *e = &g->ev[g->n_ev++];
            if (g->n_ev > 1024 || fscanf(f, "%u %u %f", &e->step, &e->input, &e->value) != 3)
                return fclose(f), -1;
        } else if (!strcmp(tag, "d")) {
            uint32_t t;
            if (fscanf(f, "%u", &t) != 1 || t >= g->steps) return fclose(f), -1;
            for (uint32_t j = 0; j < n_in; j++)
                if (fscanf(f, "%f", &g->dense[(size_t)t * n_in + j]) != 1) return fclose(f), -1;
            has_dense = 1;
        } else {
            return fclose(f), -1;
        }
    }
    if (!has_dense) free(g->dense), g->dense = NULL;
    fclose(f);
    return 0;
}

/* Runs the golden inputs in the given batch split and compares with expected.txt. */
static void golden_run(const char *kernels, uint32_t split) {
    char err[256];
    spk_model *m = NULL;
    spk_set_kernels(kernels);
    if (!ok(spk_model_load_file("tests/data/golden/model.pb", &m, err, sizeof err) == 0,
            "golden model loads (%s kernels, batches of %u)", kernels, split)) {
        diag("%s", err);
        return;
    }
    static golden_in g;
    if (!ok(read_inputs("tests/data/golden/inputs.txt", m->n_in, &g) == 0, "golden inputs read"))
        return;
    spk_state *s = spk_state_create(m);
    spk_scratch *sc = spk_scratch_create(m);
    uint32_t L = m->n_layers, no = m->readout.n;
    spk_spike_buf bufs[2];
    for (uint32_t l = 0; l < L; l++)
        bufs[l] =
            (spk_spike_buf){spikes_alloc(m->layers[l].n * g.steps), m->layers[l].n * g.steps, 0};
    float *ro = calloc((size_t)g.steps * no, sizeof(float));
    size_t e0 = 0;
    int rc = 0;
    /* batches: the events of [t0, t1) shifted to start at 0, the dense rows of that span */
    for (uint32_t t0 = 0; t0 < g.steps && !rc; t0 += split) {
        uint32_t t1 = t0 + split < g.steps ? t0 + split : g.steps;
        static spk_event ev[1024];
        size_t ne = 0;
        for (; e0 < g.n_ev && g.ev[e0].step < t1; e0++)
            ev[ne++] = (spk_event){g.ev[e0].step - t0, g.ev[e0].input, g.ev[e0].value};
        spk_input in = {t1 - t0, ev, ne, g.dense ? g.dense + (size_t)t0 * m->n_in : NULL};
        spk_spike_buf lb[2];
        for (uint32_t l = 0; l < L; l++)
            lb[l] = (spk_spike_buf){bufs[l].buf + bufs[l].len, bufs[l].cap - bufs[l].len, 0};
        spk_output out = {{NULL, 0, 0}, lb, ro + (size_t)t0 * no, 1, NULL};
        rc = spk_step(s, &in, &out, sc, err, sizeof err);
        for (uint32_t l = 0; l < L; l++) {
            for (size_t k = 0; k < lb[l].len; k++)
                lb[l].buf[k].step += t0;
            bufs[l].len += lb[l].len;
        }
    }
    is_int(rc, 0, "golden batches step");
    FILE *f = fopen("tests/data/golden/expected.txt", "r");
    char tag[8];
    size_t want_spikes[2] = {0, 0}, matched = 0, bad = 0, values = 0;
    float maxd = 0;
    size_t pos[2] = {0, 0};
    while (f && fscanf(f, "%7s", tag) == 1) {
        if (!strcmp(tag, "s")) {
            uint32_t t, l, k;
            float v;
            if (fscanf(f, "%u %u %u %f", &t, &l, &k, &v) != 4 || l >= L) {
                bad++;
                break;
            }
            want_spikes[l]++;
            spk_spike *got = pos[l] < bufs[l].len ? &bufs[l].buf[pos[l]++] : NULL;
            if (got && got->step == t && got->neuron == k && fabsf(got->value - v) <= TOL)
                matched++;
            else
                bad++;
            if (got && fabsf(got->value - v) > maxd) maxd = fabsf(got->value - v);
        } else if (!strcmp(tag, "o")) {
            uint32_t t;
            if (fscanf(f, "%u", &t) != 1 || t >= g.steps) {
                bad++;
                break;
            }
            for (uint32_t k = 0; k < no; k++) {
                float v;
                if (fscanf(f, "%f", &v) != 1) bad++;
                float d = fabsf(ro[(size_t)t * no + k] - v);
                if (!(d <= TOL)) bad++;
                if (d > maxd) maxd = d;
                values++;
            }
        } else {
            int layer = -1;
            float *arr = NULL;
            uint32_t n = no;
            if (!strcmp(tag, "of"))
                arr = spk_state_o(s);
            else if (fscanf(f, "%d", &layer) == 1 && layer >= 0 && (uint32_t)layer < L) {
                n = m->layers[layer].n;
                arr = !strcmp(tag, "i")    ? spk_state_i(s, layer)
                      : !strcmp(tag, "h")  ? spk_state_h(s, layer)
                      : !strcmp(tag, "hs") ? spk_state_hs(s, layer)
                                           : NULL;
            }
            if (!arr) {
                bad++;
                break;
            }
            for (uint32_t k = 0; k < n; k++) {
                float v;
                if (fscanf(f, "%f", &v) != 1) bad++;
                float d = fabsf(arr[k] - v);
                if (!(d <= TOL)) bad++;
                if (d > maxd) maxd = d;
                values++;
            }
        }
    }
    if (f) fclose(f);
    ok(f != NULL, "expected.txt read");
    ok(want_spikes[0] > 50 && want_spikes[1] > 20, "golden model spikes (%zu, %zu outputs)",
       want_spikes[0], want_spikes[1]);
    is_int(bufs[0].len + bufs[1].len, want_spikes[0] + want_spikes[1],
           "same number of outputs as the golden file");
    is_int(bad, 0, "every output, readout value and final state within 1e-5");
    diag("golden (%s, batches of %u): %zu outputs and %zu values compared, max |diff| %g", kernels,
         split, matched, values, (double)maxd);
    is_int(spk_state_t(s), g.steps, "t = steps");
    for (uint32_t l = 0; l < L; l++)
        free(bufs[l].buf);
    free(ro);
    free(g.dense);
    spk_scratch_free(sc);
    spk_state_free(s);
    spk_model_free(m);
}

/* ---- scalar vs optimised ---- */

static void test_kernels_agree(void) {
    size_t bit_identical = 0, models = 0;
    float worst = 0;
    uint64_t nz_total[4] = {0};
    for (uint64_t seed = 1; seed <= 6; seed++) {
        tm_spec sp = {.n_in = 20 + (uint32_t)seed * 13,
                      .n_layers = 1 + (uint32_t)(seed % 4),
                      .n = {150, 77, 33, 200},
                      .readout = seed % 2 ? 7 : 0,
                      .vary = 1,
                      .init_state = (int)(seed % 3 == 0),
                      .seed = 100 + seed};
        spk_model *m = tm_load(&sp);
        spk_state *a = spk_state_create(m), *b = spk_state_create(m);
        spk_scratch *sc = spk_scratch_create(m);
        float worst_m = 0;
        uint64_t nz[4] = {0};
        for (int chunk = 0; chunk < 10; chunk++) { /* 10 batches of 100 steps */
            size_t n;
            spk_event *ev = tm_events(100, m->n_in, 0.05f + 0.03f * (float)chunk, chunk % 2,
                                      seed * 10 + (uint64_t)chunk, &n);
            spk_input in = {100, ev, n, NULL};
            char err[256];
            spk_output out = {{NULL, 0, 0}, NULL, NULL, 0, nz};
            spk_set_kernels("scalar");
            int rc1 = spk_step(a, &in, NULL, sc, err, sizeof err);
            spk_set_kernels("auto");
            int rc2 = spk_step(b, &in, &out, sc, err, sizeof err);
            if (rc1 || rc2) diag("step failed: %s", err);
            float d = tm_state_maxdiff(a, b);
            if (!(d <= worst_m)) worst_m = d;
            free(ev);
        }
        models++;
        bit_identical += tm_state_equal(a, b);
        if (!(worst_m <= worst)) worst = worst_m;
        int all_spike = 1;
        for (uint32_t l = 0; l < m->n_layers; l++)
            all_spike &= nz[l] > 1000, nz_total[l] += nz[l];
        ok(worst_m <= TOL && all_spike,
           "model %llu (%u layers): scalar vs %s over 1000 steps, max |diff| %g, every layer "
           "spikes",
           (unsigned long long)seed, m->n_layers, spk_kernels_name(), (double)worst_m);
        spk_scratch_free(sc);
        spk_state_free(a);
        spk_state_free(b);
        spk_model_free(m);
    }
    diag("scalar vs optimised: %zu of %zu models bit-identical after 1000 steps, max |diff| %g",
         bit_identical, models, (double)worst);
}

/* ---- step_many ---- */

static void test_step_many(void) {
    tm_spec sp = {.n_in = 30, .n_layers = 2, .n = {40, 20}, .readout = 4, .vary = 1, .seed = 21};
    spk_model *m = tm_load(&sp);
    spk_scratch *sc = spk_scratch_create(m);
    enum { N = 70 }; /* more than one chunk of the interleaving */
    spk_state *many[N], *one[N];
    spk_input in[N];
    spk_output out_many[N], out_one[N];
    spk_event *evs[N];
    float ro_many[N][4], ro_one[N][4];
    uint64_t nz_many[N][2], nz_one[N][2];
    int rcs[N];
    char err[256];
    for (int k = 0; k < N; k++) {
        many[k] = spk_state_create(m);
        uint32_t steps = 1 + (uint32_t)(k * 7 % 40);
        size_t n;
        evs[k] = tm_events(steps, 30, 0.2f, k % 2, 500 + (uint64_t)k, &n);
        in[k] = (spk_input){steps, evs[k], n, NULL};
        size_t cap = spk_max_spikes(20, steps);
        memset(nz_many[k], 0, sizeof nz_many[k]);
        memset(nz_one[k], 0, sizeof nz_one[k]);
        out_many[k] = (spk_output){{spikes_alloc(cap), cap, 0}, NULL, ro_many[k], 0, nz_many[k]};
        out_one[k] = (spk_output){{spikes_alloc(cap), cap, 0}, NULL, ro_one[k], 0, nz_one[k]};
        if (k % 3 == 0) { /* some states start elsewhere */
            spk_input warm = {5, evs[k], 0, NULL};
            spk_step(many[k], &warm, NULL, sc, err, sizeof err);
        }
        one[k] = spk_state_clone(many[k]);
    }
    int rc = spk_step_many(many, in, out_many, N, sc, rcs, err, sizeof err);
    is_int(rc, 0, "step_many of 70 states");
    int same = 1;
    size_t total_spikes = 0;
    for (int k = 0; k < N; k++) {
        spk_step(one[k], &in[k], &out_one[k], sc, err, sizeof err);
        same &= rcs[k] == 0 && tm_state_equal(many[k], one[k]);
        same &= out_many[k].spikes.len == out_one[k].spikes.len &&
                memcmp(out_many[k].spikes.buf, out_one[k].spikes.buf,
                       out_one[k].spikes.len * sizeof(spk_spike)) == 0;
        same &= memcmp(ro_many[k], ro_one[k], sizeof ro_one[k]) == 0 &&
                memcmp(nz_many[k], nz_one[k], sizeof nz_one[k]) == 0;
        total_spikes += out_one[k].spikes.len;
    }
    ok(same && total_spikes > 100,
       "step_many == separate steps: states, spikes, readout, counters (%zu spikes)", total_spikes);

    /* one bad input among good ones: only that state refused, the rest stepped */
    spk_event bad_ev = {0, 30, 1.0f};
    spk_input bad = {3, &bad_ev, 1, NULL};
    spk_input in2[3] = {in[1], bad, in[2]};
    spk_state *st2[3] = {many[1], many[2], many[3]};
    uint64_t t_before[3] = {spk_state_t(many[1]), spk_state_t(many[2]), spk_state_t(many[3])};
    rc = spk_step_many(st2, in2, NULL, 3, sc, rcs, err, sizeof err);
    is_int(rc, SPK_EINVAL, "step_many with a bad input: SPK_EINVAL");
    is_str(err, "states[1]: events[0]: input 30 out of range [0, 30)",
           "  message names the state and the event");
    ok(rcs[0] == 0 && rcs[1] == SPK_EINVAL && rcs[2] == 0, "  rc per state");
    ok(spk_state_t(many[1]) == t_before[0] + in[1].steps && spk_state_t(many[2]) == t_before[1] &&
           spk_state_t(many[3]) == t_before[2] + in[2].steps,
       "  good states stepped, the bad one did not");
    for (int k = 0; k < N; k++) {
        free(out_many[k].spikes.buf), free(out_one[k].spikes.buf), free(evs[k]);
        spk_state_free(many[k]), spk_state_free(one[k]);
    }
    spk_scratch_free(sc);
    spk_model_free(m);
}

/* ---- batch semantics ---- */

static void test_batches(void) {
    tm_spec sp = {.n_in = 16,
                  .n_layers = 2,
                  .n = {24, 10},
                  .readout = 3,
                  .vary = 1,
                  .init_state = 1,
                  .seed = 31};
    spk_model *m = tm_load(&sp);
    spk_scratch *sc = spk_scratch_create(m);
    char err[256];
    size_t n;
    spk_event *ev = tm_events(100, 16, 0.25f, 1, 77, &n);
    float *dense = calloc(100 * 16, sizeof(float));
    for (size_t k = 0; k < 100 * 16; k += 3)
        dense[k] = 0.1f * (float)(k % 7);

    /* 1 x 100 against 2 x 50, with events and dense rows */
    spk_state *a = spk_state_create(m), *b = spk_state_create(m);
    spk_spike *sa = spikes_alloc(1000), *sb = spikes_alloc(1000);
    float ra[3], rb[3];
    spk_output oa = {{sa, 1000, 0}, NULL, ra, 0, NULL};
    spk_input ia = {100, ev, n, dense};
    is_int(spk_step(a, &ia, &oa, sc, err, sizeof err), 0, "one batch of 100 steps");
    size_t half = 0;
    while (half < n && ev[half].step < 50)
        half++;
    spk_event *ev2 = malloc((n - half + 1) * sizeof *ev2);
    for (size_t k = half; k < n; k++)
        ev2[k - half] = (spk_event){ev[k].step - 50, ev[k].input, ev[k].value};
    spk_input i1 = {50, ev, half, dense}, i2 = {50, ev2, n - half, dense + 50 * 16};
    spk_output ob = {{sb, 1000, 0}, NULL, rb, 0, NULL};
    spk_step(b, &i1, &ob, sc, err, sizeof err);
    size_t first = ob.spikes.len;
    spk_step(b, &i2, &ob, sc, err, sizeof err);
    for (size_t k = first; k < ob.spikes.len; k++)
        sb[k].step += 50;
    ok(tm_state_equal(a, b), "2 x 50 steps == 1 x 100 steps (state, t = %llu)",
       (unsigned long long)spk_state_t(b));
    ok(oa.spikes.len == ob.spikes.len && oa.spikes.len > 50 &&
           memcmp(sa, sb, oa.spikes.len * sizeof *sa) == 0,
       "  same spikes (%zu)", oa.spikes.len);
    ok(memcmp(ra, rb, sizeof ra) == 0, "  same readout at the last step");

    /* readout every step: its last row is the last-step readout; spikes == layers[last] */
    spk_state_reset(a);
    float *every = calloc(100 * 3, sizeof(float));
    spk_spike_buf lb[2] = {{spikes_alloc(2400), 2400, 0}, {spikes_alloc(1000), 1000, 0}};
    uint64_t nz[2] = {0, 0};
    spk_output oe = {{sa, 1000, 0}, lb, every, 1, nz};
    spk_step(a, &ia, &oe, sc, err, sizeof err);
    ok(memcmp(every + 99 * 3, ra, sizeof ra) == 0,
       "readout every step: last row == readout at the last step");
    ok(oe.spikes.len == lb[1].len && memcmp(sa, lb[1].buf, lb[1].len * sizeof *sa) == 0,
       "spikes == layers[last]");
    ok(nz[0] == lb[0].len && nz[1] == lb[1].len && nz[0] > 100,
       "counters == outputs per layer (%llu, %llu)", (unsigned long long)nz[0],
       (unsigned long long)nz[1]);
    int sorted = 1, positive = 1;
    for (size_t k = 0; k < lb[0].len; k++) {
        positive &= lb[0].buf[k].value > 0 && lb[0].buf[k].neuron < 24;
        if (k)
            sorted &= lb[0].buf[k - 1].step < lb[0].buf[k].step ||
                      (lb[0].buf[k - 1].step == lb[0].buf[k].step &&
                       lb[0].buf[k - 1].neuron < lb[0].buf[k].neuron);
    }
    ok(sorted && positive, "outputs ordered by (step, neuron), values > 0");
    free(lb[0].buf), free(lb[1].buf), free(every);

    /* events at the same (step, input) add up */
    spk_event two[2] = {{0, 3, 0.5f}, {0, 3, 0.25f}}, one_ev[1] = {{0, 3, 0.75f}};
    spk_input in_two = {1, two, 2, NULL}, in_one = {1, one_ev, 1, NULL};
    spk_state_reset(a), spk_state_reset(b);
    spk_step(a, &in_two, NULL, sc, err, sizeof err);
    spk_step(b, &in_one, NULL, sc, err, sizeof err);
    ok(tm_state_equal(a, b), "events (0,3,0.5) + (0,3,0.25) == event (0,3,0.75)");
    spk_event canc[2] = {{0, 3, 0.5f}, {0, 3, -0.5f}};
    spk_input in_c = {1, canc, 2, NULL}, in_none = {1, NULL, 0, NULL};
    spk_state_reset(a), spk_state_reset(b);
    spk_step(a, &in_c, NULL, sc, err, sizeof err);
    spk_step(b, &in_none, NULL, sc, err, sizeof err);
    ok(tm_state_equal(a, b), "events cancelling out == no event");

    /* dense rows == the same values as events (ascending inputs) */
    spk_event *dev = malloc(100 * 16 * sizeof *dev);
    size_t nd = 0;
    for (uint32_t t = 0; t < 100; t++)
        for (uint32_t j = 0; j < 16; j++)
            if (dense[t * 16 + j] != 0) dev[nd++] = (spk_event){t, j, dense[t * 16 + j]};
    spk_input id = {100, NULL, 0, dense}, ie = {100, dev, nd, NULL};
    spk_state_reset(a), spk_state_reset(b);
    spk_step(a, &id, NULL, sc, err, sizeof err);
    spk_step(b, &ie, NULL, sc, err, sizeof err);
    ok(tm_state_equal(a, b), "dense rows == equivalent events (%zu events)", nd);
    /* dense plus events == dense rows with the events added in */
    float *sum = malloc(100 * 16 * sizeof(float));
    memcpy(sum, dense, 100 * 16 * sizeof(float));
    for (size_t k = 0; k < n; k++)
        sum[ev[k].step * 16 + ev[k].input] += ev[k].value;
    spk_input is = {100, NULL, 0, sum};
    spk_state_reset(a), spk_state_reset(b);
    spk_step(a, &ia, NULL, sc, err, sizeof err);
    spk_step(b, &is, NULL, sc, err, sizeof err);
    ok(tm_state_maxdiff(a, b) <= TOL,
       "dense + events == dense with events summed in (max |diff| %g)",
       (double)tm_state_maxdiff(a, b));

    /* ESPACE: too small a spike buffer; the state stops at a step boundary */
    spk_state_reset(a);
    spk_output small = {{sa, 2, 0}, NULL, NULL, 0, NULL};
    int rc = spk_step(a, &ia, &small, sc, err, sizeof err);
    is_int(rc, SPK_ESPACE, "too small an output buffer: SPK_ESPACE");
    ok(strstr(err, "spk_max_spikes") != NULL, "  message: %s", err);
    ok(small.spikes.len <= 2 && spk_state_t(a) > 0 && spk_state_t(a) < 100,
       "  buffer not overrun, state at step %llu", (unsigned long long)spk_state_t(a));
    ok(spk_max_spikes(24, 100) == 2400 &&
           spk_max_spikes(65536, 0xFFFFFFFFu) == (size_t)65536 * 0xFFFFFFFFu,
       "spk_max_spikes");
    free(sum), free(dev), free(ev2), free(sa), free(sb), free(ev), free(dense);
    spk_state_free(a), spk_state_free(b);
    spk_scratch_free(sc);
    spk_model_free(m);
}

static void test_errors(void) {
    tm_spec sp = {.n_in = 784, .n_layers = 1, .n = {4}, .seed = 41};
    spk_model *m = tm_load(&sp);
    spk_state *s = spk_state_create(m), *orig = NULL;
    spk_scratch *sc = spk_scratch_create(m);
    char err[256];
    spk_event ev[5] = {{0, 1, 1}, {0, 2, 1}, {1, 3, 1}, {1, 900, 1}, {2, 5, 1}};
    spk_input in = {3, ev, 5, NULL};
    spk_input warm = {2, ev, 2, NULL};
    spk_step(s, &warm, NULL, sc, err, sizeof err);
    orig = spk_state_clone(s);
    struct {
        const char *want;
        spk_event e3;
        uint32_t steps;
    } cases[] = {
        {"events[3]: input 900 out of range [0, 784)", {1, 900, 1}, 3},
        {"events[3]: step 3 out of range [0, 3)", {3, 7, 1}, 3},
        {"events[3]: step 0 after step 1 of events[2]: events must be sorted by step",
         {0, 7, 1},
         3},
        {"events[3]: value nan is not finite", {1, 7, NAN}, 3},
        {"events[3]: value -inf is not finite", {1, 7, -INFINITY}, 3},
        {"events[3]: value 2e+06 exceeds the limit 1e+06 in magnitude", {1, 7, 2e6f}, 3},
        {"steps: 0, must be >= 1", {1, 7, 1}, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ev[3] = cases[k].e3;
        in.steps = cases[k].steps;
        int rc = spk_step(s, &in, NULL, sc, err, sizeof err);
        is_int(rc, SPK_EINVAL, cases[k].want);
        is_str(err, cases[k].want, "  message");
        ok(tm_state_equal(s, orig), "  state unchanged");
        is_int(spk_input_check(m, &in, err, sizeof err), SPK_EINVAL, "  spk_input_check agrees");
    }
    float *dense = calloc(3 * 784, sizeof(float));
    dense[2 * 784 + 17] = INFINITY;
    spk_input din = {3, NULL, 0, dense};
    is_int(spk_step(s, &din, NULL, sc, err, sizeof err), SPK_EINVAL, "dense inf refused");
    is_str(err, "dense[2][17]: inf is not finite", "  message");
    spk_input nul = {3, NULL, 4, NULL};
    is_int(spk_step(s, &nul, NULL, sc, err, sizeof err), SPK_EINVAL, "NULL events with a count");
    is_str(err, "events: NULL with 4 events", "  message");
    ok(tm_state_equal(s, orig), "state unchanged by every refused input");

    /* Longer event lists go through the vectorised first check 8 events at a time and the
     * rest one by one: a bad field at every position of 21 events (2 blocks and a tail of
     * 5) is found, and the message names that event. */
    {
        spk_event lv[21];
        int found = 0, named = 0, total = 0;
        const spk_event bad[] = {{3, 7, 1}, {1, 784, 1}, {1, 7, NAN}, {1, 7, INFINITY},
                                 {1, 7, -2e6f}};
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++)
            for (size_t pos = 0; pos < 21; pos++) {
                for (size_t k = 0; k < 21; k++)
                    lv[k] = (spk_event){k < 10 ? 0 : k < 15 ? 1 : 2, (uint32_t)(3 * k), 0.5f};
                lv[pos] = bad[b];
                lv[pos].step = bad[b].step == 3 ? 3 : lv[pos].step;
                spk_input li = {3, lv, 21, NULL};
                char want[32];
                snprintf(want, sizeof want, "events[%zu]:", pos);
                total++;
                found += spk_input_check(m, &li, err, sizeof err) == SPK_EINVAL;
                named += strncmp(err, want, strlen(want)) == 0;
            }
        spk_input good = {3, lv, 21, NULL};
        for (size_t k = 0; k < 21; k++)
            lv[k] = (spk_event){k < 10 ? 0 : k < 15 ? 1 : 2, (uint32_t)(3 * k), 0.5f};
        is_int(spk_input_check(m, &good, err, sizeof err), 0, "21 good events accepted");
        is_int(found, total, "a bad step, input or value at each of 21 positions is refused");
        is_int(named, total, "  and the message names its position");
        lv[12].step = 0; /* after step 1 of events[11] */
        is_int(spk_input_check(m, &good, err, sizeof err), SPK_EINVAL, "unsorted steps refused");
        is_str(err, "events[12]: step 0 after step 1 of events[11]: events must be sorted by step",
               "  message");
    }

    /* a scratch made for a smaller model */
    tm_spec small = {.n_in = 3, .n_layers = 1, .n = {2}, .seed = 42};
    spk_model *m2 = tm_load(&small);
    spk_scratch *sc2 = spk_scratch_create(m2);
    spk_input ok_in = {1, NULL, 0, NULL};
    is_int(spk_step(s, &ok_in, NULL, sc2, err, sizeof err), SPK_EINVAL,
           "scratch of a smaller model refused");
    ok(strstr(err, "scratch") != NULL, "  message: %s", err);
    spk_scratch_free(sc2);
    spk_model_free(m2);
    free(dense);
    spk_state_free(orig);
    spk_state_free(s);
    spk_scratch_free(sc);
    spk_model_free(m);
}

static int ev_cmp(const void *a, const void *b) {
    const spk_event *x = a, *y = b;
    if (x->step != y->step) return x->step < y->step ? -1 : 1;
    if (x->input != y->input) return x->input < y->input ? -1 : 1;
    uint32_t u, v;
    memcpy(&u, &x->value, 4), memcpy(&v, &y->value, 4);
    return u < v ? -1 : u > v;
}

static void test_sort(void) {
    spk_rng r;
    spk_rng_seed(&r, 9);
    int good = 1;
    for (int rep = 0; rep < 200; rep++) {
        size_t n = spk_rng_next(&r) % 300;
        spk_event *a = malloc((n + 1) * sizeof *a), *b = malloc((n + 1) * sizeof *b);
        for (size_t k = 0; k < n; k++)
            a[k] = (spk_event){(uint32_t)(spk_rng_next(&r) % 20), (uint32_t)(spk_rng_next(&r) % 10),
                               (float)(spk_rng_next(&r) % 3)};
        memcpy(b, a, n * sizeof *a);
        spk_events_sort(a, n);
        qsort(b, n, sizeof *b, ev_cmp);
        good &= memcmp(a, b, n * sizeof *a) == 0;
        free(a), free(b);
    }
    ok(good, "spk_events_sort: by (step, input), a permutation (200 random arrays)");
}

int main(void) {
    golden_run("scalar", 60);
    golden_run("auto", 60);
    golden_run("auto", 7);
    test_kernels_agree();
    spk_set_kernels("auto");
    test_step_many();
    test_batches();
    test_errors();
    test_sort();
    return done_testing();
}
