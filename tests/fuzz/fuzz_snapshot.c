/* fuzz_snapshot.c: libFuzzer harness for the snapshot reader. A fixed small model (built
 * here with protobuf-c) restores any bytes: refused (state unchanged) or accepted, and an
 * accepted state steps and snapshots back to a state that restores identically.
 * Built with -DFUZZ_SEED_MAIN it is a program that writes seed snapshots instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "model.pb-c.h"
#include "state.h"
#include "step.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_snapshot: check failed: %s (line %d)\n", #c, __LINE__);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static spk_model *fz_model;
static spk_scratch *fz_scratch;

static void fz_init(void) {
    if (fz_model) return;
    enum { NIN = 4, N0 = 6, N1 = 3, NO = 2 };
    static float w0[N0 * NIN], b0[N0], w1[N1 * N0], b1[N1], wo[NO * N1], bo[NO];
    for (int k = 0; k < N0 * NIN; k++)
        w0[k] = (float)((k * 7) % 11) * 0.3f - 0.5f;
    for (int k = 0; k < N1 * N0; k++)
        w1[k] = (float)((k * 5) % 7) * 0.4f - 0.6f;
    for (int k = 0; k < NO * N1; k++)
        wo[k] = (float)(k % 3) - 1.0f;
    for (int k = 0; k < N0; k++)
        b0[k] = -6.0f;
    for (int k = 0; k < N1; k++)
        b1[k] = -5.5f;
    bo[0] = 0.1f, bo[1] = -0.1f;
    Spikeserve__SrcLayer l0 = SPIKESERVE__SRC_LAYER__INIT, l1 = SPIKESERVE__SRC_LAYER__INIT;
    Spikeserve__SrcLayer *ls[2] = {&l0, &l1};
    Spikeserve__SrcLayer *L[2] = {&l0, &l1};
    for (int l = 0; l < 2; l++) {
        L[l]->alpha = 0.9f, L[l]->rho = 3, L[l]->r = 2, L[l]->r_s = -7;
        L[l]->z_hyp = 0.9f, L[l]->z_dep = 0, L[l]->theta = 0.5f;
    }
    l0.n_in = NIN, l0.n = N0, l0.n_weights = N0 * NIN, l0.weights = w0, l0.n_b_h = N0, l0.b_h = b0;
    l1.n_in = N0, l1.n = N1, l1.n_weights = N1 * N0, l1.weights = w1, l1.n_b_h = N1, l1.b_h = b1;
    Spikeserve__Readout ro = SPIKESERVE__READOUT__INIT;
    ro.n_in = N1, ro.n = NO, ro.n_weights = NO * N1, ro.weights = wo, ro.n_bias = NO, ro.bias = bo;
    ro.alpha = 0.8f;
    Spikeserve__Model pm = SPIKESERVE__MODEL__INIT;
    pm.name = (char *)"fuzz-snapshot";
    pm.version = 3;
    pm.n_in = NIN;
    pm.n_layers = 2;
    pm.layers = ls;
    pm.readout = &ro;
    uint8_t buf[2048];
    size_t len = spikeserve__model__pack(&pm, buf);
    char err[256];
    if (spk_model_load_bytes(buf, len, &fz_model, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_snapshot: model refused: %s\n", err);
        abort();
    }
    fz_scratch = spk_scratch_create(fz_model);
}

static void run(spk_state *s, uint32_t steps) {
    spk_event ev[3] = {{0, 0, 1.0f}, {0, 3, 1.0f}, {1, 2, 1.5f}};
    spk_input in = {steps, ev, 3, NULL};
    char err[256];
    CHECK(spk_step(s, &in, NULL, fz_scratch, err, sizeof err) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_init();
    spk_state *s = spk_state_create(fz_model);
    run(s, 4);
    spk_state *before = spk_state_clone(s);
    char err[512] = "";
    int rc = spk_state_restore(s, data, size, err, sizeof err);
    if (rc != 0) {
        CHECK((rc == SPK_EFORMAT || rc == SPK_EMODEL) && err[0]);
        CHECK(spk_state_t(s) == spk_state_t(before));
        for (uint32_t l = 0; l < fz_model->n_layers; l++)
            CHECK(
                memcmp(spk_state_h(s, l), spk_state_h(before, l), fz_model->layers[l].n * 4) == 0 &&
                memcmp(spk_state_hs(s, l), spk_state_hs(before, l), fz_model->layers[l].n * 4) ==
                    0 &&
                memcmp(spk_state_i(s, l), spk_state_i(before, l), fz_model->layers[l].n * 4) == 0);
    } else {
        run(s, 3);
        uint8_t *snap;
        size_t len;
        CHECK(spk_state_snapshot(s, &snap, &len, err, sizeof err) == 0);
        spk_state *r = spk_state_create(fz_model);
        CHECK(spk_state_restore(r, snap, len, err, sizeof err) == 0);
        CHECK(spk_state_t(r) == spk_state_t(s));
        free(snap);
        spk_state_free(r);
    }
    spk_state_free(before);
    spk_state_free(s);
    return 0;
}

#ifdef FUZZ_SEED_MAIN
/* Writes seed snapshots of the harness's model: DIR/t0.pb, DIR/t10.pb, DIR/t50.pb. */
int main(int argc, char **argv) {
    if (argc != 2) return 2;
    fz_init();
    uint32_t at[3] = {0, 10, 50};
    for (int k = 0; k < 3; k++) {
        spk_state *s = spk_state_create(fz_model);
        if (at[k]) run(s, at[k]);
        uint8_t *snap;
        size_t len;
        char err[256], path[512];
        CHECK(spk_state_snapshot(s, &snap, &len, err, sizeof err) == 0);
        snprintf(path, sizeof path, "%s/t%u.pb", argv[1], at[k]);
        FILE *f = fopen(path, "wb");
        CHECK(f && fwrite(snap, 1, len, f) == len);
        fclose(f);
        free(snap);
        spk_state_free(s);
    }
    return 0;
}
#endif
