/* step.h: advance states by a batch of time steps (SPEC.md section 1).
 *
 * Work per step follows the number of events: layer input events each add one contiguous
 * weight row (spk_layer.wt) into i; the per-neuron update is vectorised; a layer's
 * non-zero outputs are the next layer's events at the same step. Optimised kernels are
 * picked at run time (see kernels.h); spk_set_kernels() forces the scalar twins.
 *
 * Threads: a spk_scratch belongs to one thread (the worker); states are used by one
 * thread at a time; the model is shared read-only. Nothing is allocated while stepping.
 */
#ifndef SPK_STEP_H
#define SPK_STEP_H

#include "model.h"
#include "state.h"

/* One input event: value added to input `input` at step `step` of the batch. */
typedef struct {
    uint32_t step;
    uint32_t input;
    float value;
} spk_event;

/* One output: neuron `neuron` had s_out = value > 0 at step `step` (relative to t0). */
typedef struct {
    uint32_t step;
    uint32_t neuron;
    float value;
} spk_spike;

/* A batch of input. events must be sorted by step (spk_events_sort() does that); events at
 * the same (step, input) add up. dense, when not NULL, is steps x n_in row-major and is
 * added to the events. */
typedef struct {
    uint32_t steps; /* >= 1 */
    const spk_event *events;
    size_t n_events;
    const float *dense;
} spk_input;

typedef struct {
    spk_spike *buf;
    size_t cap, len;
} spk_spike_buf;

/* Where a step writes its results; every pointer but spikes.buf may be NULL.
 * The step appends to spikes / layers[l] (len grows) and adds to nonzero[l]; too little
 * capacity is SPK_ESPACE (size buffers with spk_max_spikes()). Outputs of one step come in
 * ascending neuron order. (Also accepted: spikes.buf NULL records no spikes, and a NULL
 * spk_output records nothing.) */
typedef struct {
    spk_spike_buf spikes;  /* non-zero outputs of the last SRC layer */
    spk_spike_buf *layers; /* NULL, or n_layers buffers: every layer's outputs */
    float *readout;        /* NULL, or readout.n values at the last step; or steps x readout.n
                              when readout_every_step */
    int readout_every_step;
    uint64_t *nonzero; /* NULL, or n_layers counters of non-zero outputs */
} spk_output;

/* Per-thread working memory for one model (or any model no wider than it). */
typedef struct spk_scratch spk_scratch;
spk_scratch *spk_scratch_create(const spk_model *m);
void spk_scratch_free(spk_scratch *sc);

/* Validate an input against a model (steps >= 1, event steps in [0, steps), inputs in
 * [0, n_in), finite values, sorted): 0, or SPK_EINVAL with a message like
 * "events[3]: input 900 out of range [0, 784)". spk_step() calls it too. */
int spk_input_check(const spk_model *m, const spk_input *in, char *err, size_t errlen);
/* Sort events by step (the engine sorts by step, input, then value bits: a canonical order;
 * stable for equal steps is not required: sums are order-free to
 * float rounding). In place, no allocation. */
void spk_events_sort(spk_event *ev, size_t n);
/* Largest number of outputs a layer of width n can emit in `steps` steps. */
size_t spk_max_spikes(uint32_t n, uint32_t steps);

/* Advance s by in->steps steps. On error the state is unchanged if the input was
 * invalid (checked first); SPK_ESPACE may leave it advanced partially: size outputs first.
 * (On SPK_ESPACE the step that ran out of room is completed and the state stops there, with
 * t counting the steps done.) Float sums follow a fixed order, so results are reproducible
 * bit for bit: a step's events in array order, adjacent events of one input summed first;
 * with dense rows, the events are added into the row and its non-zero inputs are taken in
 * ascending order; zero-valued inputs do no work (engine/step.c). */
int spk_step(spk_state *s, const spk_input *in, spk_output *out, spk_scratch *sc, char *err,
             size_t errlen);

/* The multi-session entry point: step n states of one model, each with its own input and
 * output, in one call (a worker batches ready sessions this way). Returns 0 when all
 * succeeded; otherwise the first error, with rc[k] (if not NULL) per state.
 * Results are those of spk_step() on each state alone, bit for bit. The states are taken in
 * chunks of 64, step by step; at each step, layer 0's synaptic sums of the chunk's states
 * are done by a group step that reads each touched weight row once for all of them (float32
 * layers: states whose step events come in non-decreasing input order, their rows added block
 * by block while a block stays in L1; int8 layers: states with binary events, summed row by
 * row or, where the chunk's input density makes it cheaper, as a dense int8 product
 * (vpdpbusd); others step alone; engine/step.c), when spk_set_group_step() has turned it on
 * (off by default). */
int spk_step_many(spk_state *const *states, const spk_input *in, spk_output *out, size_t n,
                  spk_scratch *sc, int *rc, char *err, size_t errlen);

/* Statistics: how many (state, step) layer-0 sums the group step of spk_step_many() has done
 * with this scratch. */
uint64_t spk_scratch_grouped(const spk_scratch *sc);
/* Of those, how many layer 1 sums of int8 models were one dense int8 product over blocks of 4
 * sessions (chosen per step when the chunk's input density makes it cheaper). */
uint64_t spk_scratch_grouped_dense(const spk_scratch *sc);
/* The group step of spk_step_many(): SPK_GROUP_OFF (the default: it measured slower than
 * one-session steps on this project's CPU, tests/bench/README.md), SPK_GROUP_AUTO (float32
 * layers only, where it came closest) or SPK_GROUP_ALL (int8 layers too); returns the
 * previous setting (any other value sets SPK_GROUP_AUTO). Results are the same either way.
 * Not thread-safe: start-up, tests, benchmarks. */
enum { SPK_GROUP_OFF = 0, SPK_GROUP_ALL = 1, SPK_GROUP_AUTO = 2 };
int spk_set_group_step(int on);

/* Kernel selection: "auto" (default: best the CPU supports), "scalar", or a name from
 * spk_kernels_name(). Returns 0 or SPK_EINVAL. Not thread-safe: call at start-up / in tests. */
int spk_set_kernels(const char *name);
const char *spk_kernels_name(void);

#endif
