/* fuzz_model.c: libFuzzer harness for the model loader. Any bytes must load or be refused
 * with a message, never crash; a model that loads must step, snapshot and restore. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "state.h"
#include "step.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_model: check failed: %s (line %d)\n", #c, __LINE__);             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    spk_model *m = NULL;
    char err[512] = "";
    int rc = spk_model_load_bytes(data, size, &m, err, sizeof err);
    if (rc != 0) {
        CHECK(m == NULL && err[0] != 0 && (rc == SPK_EFORMAT || rc == SPK_ENOMEM));
        return 0;
    }
    CHECK(m->n_layers >= 1 && m->n_layers <= SPK_MAX_LAYERS && m->n_in >= 1);
    CHECK(m->layers[0].n_in == m->n_in);
    for (uint32_t l = 1; l < m->n_layers; l++)
        CHECK(m->layers[l].n_in == m->layers[l - 1].n);
    spk_state *s = spk_state_create(m);
    spk_scratch *sc = spk_scratch_create(m);
    CHECK(s && sc);
    spk_event ev[4] = {{0, 0, 1.0f}, {0, m->n_in - 1, 0.5f}, {1, m->n_in / 2, 2.0f}, {2, 0, -1.0f}};
    uint32_t last = m->layers[m->n_layers - 1].n;
    size_t cap = spk_max_spikes(last, 3);
    spk_spike *sp = malloc(cap * sizeof *sp);
    uint64_t nz[SPK_MAX_LAYERS] = {0};
    float *ro = m->has_readout ? malloc(m->readout.n * sizeof(float)) : NULL;
    spk_output out = {{sp, cap, 0}, NULL, ro, 0, nz};
    spk_input in = {3, ev, 4, NULL};
    CHECK(spk_step(s, &in, &out, sc, err, sizeof err) == 0);
    CHECK(spk_state_t(s) == 3 && out.spikes.len <= cap);
    uint8_t *snap = NULL;
    size_t len = 0;
    CHECK(spk_state_snapshot(s, &snap, &len, err, sizeof err) == 0);
    spk_state *r = spk_state_create(m);
    CHECK(r && spk_state_restore(r, snap, len, err, sizeof err) == 0);
    CHECK(spk_state_t(r) == 3);
    free(snap);
    free(sp);
    free(ro);
    spk_state_free(r);
    spk_state_free(s);
    spk_scratch_free(sc);
    spk_model_free(m);
    return 0;
}
