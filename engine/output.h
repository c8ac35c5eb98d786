/* output.h: the plan of a step's outputs. One function says how many bytes the outputs of
 * a batch need, one lays them out in memory the caller owns (like ggml's compute plan), so
 * every caller (the server's workers, write-ahead log replay, the command-line runner)
 * sizes and places them the same way and a limit on output memory means the same
 * everywhere.
 *
 * Layout in mem, each part 16-byte aligned: the last layer's spike buffer (cap
 * spk_max_spikes(last n, steps)); with SPK_OUT_LAYERS, n_layers spike_buf headers and each
 * layer's buffer; with a readout, readout.n floats (x steps with SPK_OUT_READOUT_ALL).
 * Reentrant; nothing is allocated.
 */
#ifndef SPK_OUTPUT_H
#define SPK_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "step.h"

enum {
    SPK_OUT_LAYERS = 1u << 0,      /* every layer's spikes too */
    SPK_OUT_READOUT_ALL = 1u << 1, /* the readout at every step, not only the last */
};

static inline size_t spk_align16(size_t n) {
    return (n + 15) & ~(size_t)15;
}

/* Bytes the outputs of `steps` steps of m need (SIZE_MAX when that does not fit a size_t). */
size_t spk_output_bytes(const spk_model *m, uint32_t steps, unsigned flags);
/* Lay the outputs out in mem (16-byte aligned, spk_output_bytes() long): out's buffers
 * point into it, empty, with their capacities. */
void spk_output_layout(const spk_model *m, uint32_t steps, unsigned flags, void *mem,
                       spk_output *out);

#endif
