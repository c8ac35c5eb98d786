/* testmodel.c: see testmodel.h. */
#include "testmodel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encode.h"

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "testmodel: out of memory\n");
        exit(2);
    }
    return p;
}

static char *xstrdup(const char *s) {
    char *p = xcalloc(strlen(s) + 1, 1);
    memcpy(p, s, strlen(s) + 1);
    return p;
}

static float uni(spk_rng *r, float lo, float hi) {
    return lo + (hi - lo) * spk_rng_uniform(r);
}

static float *rand_vec(spk_rng *r, size_t n, float lo, float hi) {
    float *v = xcalloc(n, sizeof *v);
    for (size_t k = 0; k < n; k++)
        v[k] = uni(r, lo, hi);
    return v;
}

Spikeserve__Model *tm_model_new(const tm_spec *sp) {
    spk_rng r;
    spk_rng_seed(&r, sp->seed);
    float drive = sp->drive > 0 ? sp->drive : 2.5f;
    Spikeserve__Model *pm = xcalloc(1, sizeof *pm);
    spikeserve__model__init(pm);
    char name[32];
    snprintf(name, sizeof name, "test-%llu", (unsigned long long)sp->seed);
    pm->name = xstrdup(name);
    pm->version = 1;
    pm->n_in = sp->n_in;
    pm->description = xstrdup("a random model for the engine tests");
    pm->n_layers = sp->n_layers;
    pm->layers = xcalloc(sp->n_layers, sizeof *pm->layers);
    uint32_t prev = sp->n_in;
    for (uint32_t l = 0; l < sp->n_layers; l++) {
        Spikeserve__SrcLayer *L = xcalloc(1, sizeof *L);
        spikeserve__src_layer__init(L);
        uint32_t n = sp->n[l];
        L->n_in = prev;
        L->n = n;
        int v = sp->vary;
        L->alpha = v ? uni(&r, 0.85f, 0.95f) : 0.9f;
        L->rho = v ? uni(&r, 2.5f, 3.5f) : 3.0f;
        L->r = v ? uni(&r, 1.7f, 2.3f) : 2.0f;
        L->r_s = v ? uni(&r, -8.0f, -6.0f) : -7.0f;
        L->z_hyp = v ? uni(&r, 0.85f, 0.95f) : 0.9f;
        L->z_dep = v ? uni(&r, 0.0f, 0.1f) : 0.0f;
        L->theta = v ? uni(&r, 0.4f, 0.6f) : 0.5f;
        float active = l == 0 ? 0.25f : 0.08f;
        float scale = drive / (active * (float)prev + 1.0f);
        L->n_weights = (size_t)n * prev;
        L->weights = rand_vec(&r, L->n_weights, -0.6f * scale, 1.4f * scale);
        L->n_b_h = n;
        L->b_h = rand_vec(&r, n, -6.5f, -5.5f);
        if (sp->init_state) {
            L->n_init_i = L->n_init_h = L->n_init_hs = n;
            L->init_i = rand_vec(&r, n, 0.f, 2.f);
            L->init_h = rand_vec(&r, n, -1.f, 1.f);
            L->init_hs = rand_vec(&r, n, -1.f, 1.f);
        }
        pm->layers[l] = L;
        prev = n;
    }
    uint32_t n_out = prev;
    if (sp->readout) {
        Spikeserve__Readout *R = xcalloc(1, sizeof *R);
        spikeserve__readout__init(R);
        R->n_in = prev;
        R->n = sp->readout;
        R->n_weights = (size_t)R->n * prev;
        R->weights = rand_vec(&r, R->n_weights, -1.f, 1.f);
        R->n_bias = R->n;
        R->bias = rand_vec(&r, R->n, -0.2f, 0.2f);
        R->alpha = 0.9f;
        if (sp->init_state) {
            R->n_init_o = R->n;
            R->init_o = rand_vec(&r, R->n, -1.f, 1.f);
        }
        pm->readout = R;
        n_out = R->n;
    }
    if (sp->n_labels) {
        pm->n_labels = sp->n_labels;
        pm->labels = xcalloc(sp->n_labels, sizeof *pm->labels);
        for (uint32_t k = 0; k < sp->n_labels; k++) {
            snprintf(name, sizeof name, "class%u", k);
            pm->labels[k] = xstrdup(name);
        }
    }
    (void)n_out;
    if (sp->encoding) {
        Spikeserve__Encoding *e = xcalloc(1, sizeof *e);
        spikeserve__encoding__init(e);
        e->kind = sp->encoding == 1 ? SPIKESERVE__ENCODING__KIND__RATE
                                    : SPIKESERVE__ENCODING__KIND__LATENCY;
        e->steps = 20;
        e->warmup_steps = 2;
        e->gain = 0.5f;
        e->threshold = 0.1f;
        pm->encoding = e;
    }
    return pm;
}

void tm_model_free(Spikeserve__Model *pm) {
    if (!pm) return;
    for (size_t l = 0; l < pm->n_layers; l++) {
        Spikeserve__SrcLayer *L = pm->layers[l];
        if (!L) continue;
        free(L->weights), free(L->b_h), free(L->init_i), free(L->init_h), free(L->init_hs);
        free(L);
    }
    free(pm->layers);
    if (pm->readout) {
        free(pm->readout->weights), free(pm->readout->bias), free(pm->readout->init_o);
        free(pm->readout);
    }
    for (size_t k = 0; k < pm->n_labels; k++)
        free(pm->labels[k]);
    free(pm->labels);
    free(pm->encoding);
    free(pm->name);
    free(pm->description);
    free(pm);
}

uint8_t *tm_pack(const Spikeserve__Model *pm, size_t *len) {
    size_t n = spikeserve__model__get_packed_size(pm);
    uint8_t *b = xcalloc(n, 1);
    *len = spikeserve__model__pack(pm, b);
    return b;
}

spk_model *tm_load(const tm_spec *sp) {
    Spikeserve__Model *pm = tm_model_new(sp);
    size_t len;
    uint8_t *b = tm_pack(pm, &len);
    spk_model *m = NULL;
    char err[256];
    if (spk_model_load_bytes(b, len, &m, err, sizeof err) != 0) {
        fprintf(stderr, "testmodel: the engine refused a test model: %s\n", err);
        exit(2);
    }
    free(b);
    tm_model_free(pm);
    return m;
}

spk_event *tm_events(uint32_t steps, uint32_t n_in, float p, int graded, uint64_t seed, size_t *n) {
    spk_rng r;
    spk_rng_seed(&r, seed);
    size_t cap = 16, c = 0;
    spk_event *ev = xcalloc(cap, sizeof *ev);
    for (uint32_t t = 0; t < steps; t++)
        for (uint32_t j = 0; j < n_in; j++) {
            if (spk_rng_uniform(&r) >= p) continue;
            if (c == cap) {
                cap *= 2;
                ev = realloc(ev, cap * sizeof *ev);
                if (!ev) exit(2);
            }
            ev[c++] = (spk_event){t, j, graded ? uni(&r, -0.5f, 2.0f) : 1.0f};
        }
    *n = c;
    return ev;
}

size_t tm_state_dump(spk_state *s, float *out) {
    const spk_model *m = spk_state_model(s);
    size_t c = 0;
    for (uint32_t l = 0; l < m->n_layers; l++) {
        uint32_t n = m->layers[l].n;
        memcpy(out + c, spk_state_i(s, l), n * sizeof(float)), c += n;
        memcpy(out + c, spk_state_h(s, l), n * sizeof(float)), c += n;
        memcpy(out + c, spk_state_hs(s, l), n * sizeof(float)), c += n;
    }
    if (m->has_readout)
        memcpy(out + c, spk_state_o(s), m->readout.n * sizeof(float)), c += m->readout.n;
    return c;
}

float tm_state_maxdiff(spk_state *a, spk_state *b) {
    size_t n = spk_state_model(a)->state_floats;
    float *x = xcalloc(n, sizeof *x), *y = xcalloc(n, sizeof *y), d = 0;
    tm_state_dump(a, x);
    tm_state_dump(b, y);
    for (size_t k = 0; k < n; k++) {
        float e = x[k] > y[k] ? x[k] - y[k] : y[k] - x[k];
        if (!(e <= d)) d = e; /* NaN wins */
    }
    free(x), free(y);
    return d;
}

int tm_state_equal(spk_state *a, spk_state *b) {
    size_t n = spk_state_model(a)->state_floats;
    float *x = xcalloc(n, sizeof *x), *y = xcalloc(n, sizeof *y);
    tm_state_dump(a, x);
    tm_state_dump(b, y);
    int eq = memcmp(x, y, n * sizeof *x) == 0 && spk_state_t(a) == spk_state_t(b);
    free(x), free(y);
    return eq;
}
