/* output.c: sizes in size_t with overflow checks (steps and widths come from clients,
 * bounded by the server's limits, but the plan must not wrap on its own). */
#include "output.h"

#include <string.h>

/* a + b * c, or SIZE_MAX */
static size_t add_mul(size_t a, size_t b, size_t c) {
    if (b && c > (SIZE_MAX - a) / b) return SIZE_MAX;
    return a + b * c;
}

static size_t part(size_t total, size_t count, size_t size) {
    size_t n = add_mul(0, count, size);
    if (n == SIZE_MAX || n > SIZE_MAX - 16 - total) return SIZE_MAX;
    return total + spk_align16(n);
}

size_t spk_output_bytes(const spk_model *m, uint32_t steps, unsigned flags) {
    size_t b = part(0, spk_max_spikes(m->layers[m->n_layers - 1].n, steps), sizeof(spk_spike));
    if (flags & SPK_OUT_LAYERS) {
        b = part(b, m->n_layers, sizeof(spk_spike_buf));
        for (uint32_t l = 0; l < m->n_layers && b != SIZE_MAX; l++)
            b = part(b, spk_max_spikes(m->layers[l].n, steps), sizeof(spk_spike));
    }
    if (m->has_readout && b != SIZE_MAX)
        b = part(b, add_mul(0, m->readout.n, (flags & SPK_OUT_READOUT_ALL) ? steps : 1),
                 sizeof(float));
    return b;
}

static void *take(uint8_t **p, size_t count, size_t size) {
    void *r = *p;
    *p += spk_align16(count * size);
    return r;
}

void spk_output_layout(const spk_model *m, uint32_t steps, unsigned flags, void *mem,
                       spk_output *out) {
    uint8_t *p = mem;
    memset(out, 0, sizeof *out);
    out->spikes.cap = spk_max_spikes(m->layers[m->n_layers - 1].n, steps);
    out->spikes.buf = take(&p, out->spikes.cap, sizeof(spk_spike));
    if (flags & SPK_OUT_LAYERS) {
        out->layers = take(&p, m->n_layers, sizeof(spk_spike_buf));
        for (uint32_t l = 0; l < m->n_layers; l++) {
            spk_spike_buf *lb = &out->layers[l];
            lb->len = 0;
            lb->cap = spk_max_spikes(m->layers[l].n, steps);
            lb->buf = take(&p, lb->cap, sizeof(spk_spike));
        }
    }
    if (m->has_readout) {
        out->readout_every_step = (flags & SPK_OUT_READOUT_ALL) != 0;
        out->readout =
            take(&p, (size_t)m->readout.n * (out->readout_every_step ? steps : 1), sizeof(float));
    }
}
