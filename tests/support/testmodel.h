/* testmodel.h: random SRC models as protobuf messages, for the engine's C tests.
 *
 * tm_model_new() builds a heap message tree (every array malloc'd, so tests may change any
 * field, count or array before packing); tm_model_free() frees it, NULL-safe. Weights lean
 * excitatory and are scaled so that inputs of a few per cent per step make every layer
 * spike (the same recipe as tests/engine/ref_src.py). Not thread-safe: one test thread.
 */
#ifndef TESTMODEL_H
#define TESTMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "model.pb-c.h"
#include "step.h"

typedef struct {
    uint32_t n_in;
    uint32_t n_layers;
    uint32_t n[SPK_MAX_LAYERS];
    uint32_t readout;  /* readout width, 0 for none */
    int init_state;    /* random initial i, h, hs, o */
    int vary;          /* constants varied around the defaults */
    uint32_t n_labels; /* labels "class0".. (0 or the output width) */
    int encoding;      /* 0 none, 1 RATE (steps 20, warm-up 2, gain 0.5), 2 LATENCY */
    float drive;       /* 0: 2.5 */
    uint64_t seed;
} tm_spec;

Spikeserve__Model *tm_model_new(const tm_spec *sp);
void tm_model_free(Spikeserve__Model *pm);
uint8_t *tm_pack(const Spikeserve__Model *pm, size_t *len); /* malloc'd bytes */
/* Build, pack and load; exits the test (status 2) if the engine refuses it. */
spk_model *tm_load(const tm_spec *sp);

/* Random sparse input: each (step, input) fires with probability p, value 1 (or graded in
 * [-0.5, 2) when graded). Events sorted by (step, input). *n gets the count; malloc'd. */
spk_event *tm_events(uint32_t steps, uint32_t n_in, float p, int graded, uint64_t seed, size_t *n);

/* The whole state as one vector (i, h, hs per layer, then o): for comparisons. */
size_t tm_state_dump(spk_state *s, float *out); /* returns floats written (state_floats) */
float tm_state_maxdiff(spk_state *a, spk_state *b);
int tm_state_equal(spk_state *a, spk_state *b); /* bit-identical, and same t */

#endif
