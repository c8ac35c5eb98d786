/* state.c: one session's recurrent state.
 *
 * One 64-byte aligned allocation: this header, then per layer i, h, h_s (each padded to a
 * multiple of 16 floats so every vector starts on a cache line), then the readout o.
 * Offsets (not pointers) are kept in the header so that a state can be copied bytewise.
 * Snapshots reuse the state's arrays as the protobuf message's arrays (no copy).
 */
#include "state.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.pb-c.h"
#include "pbscan.h"

struct spk_state {
    const spk_model *m;
    uint64_t t;
    size_t bytes;                 /* of the whole allocation */
    size_t off_i[SPK_MAX_LAYERS]; /* float offsets from data() */
    size_t off_o;
};

#define HDR_BYTES ((sizeof(struct spk_state) + 63) / 64 * 64)

static size_t pad16(size_t n) {
    return (n + 15) / 16 * 16;
}
static float *data(const spk_state *s) {
    return (float *)((char *)(uintptr_t)s + HDR_BYTES);
}

size_t spk_state_bytes(const spk_model *m) {
    size_t floats = 0;
    for (uint32_t l = 0; l < m->n_layers; l++)
        floats += 3 * pad16(m->layers[l].n);
    if (m->has_readout) floats += pad16(m->readout.n);
    return HDR_BYTES + floats * sizeof(float);
}

spk_state *spk_state_create(const spk_model *m) {
    size_t bytes = spk_state_bytes(m);
    spk_state *s = aligned_alloc(64, bytes);
    if (!s) return NULL;
    memset(s, 0, bytes); /* the padding too, so that copies and clones are deterministic */
    s->m = m;
    s->bytes = bytes;
    size_t off = 0;
    for (uint32_t l = 0; l < m->n_layers; l++) {
        s->off_i[l] = off;
        off += 3 * pad16(m->layers[l].n);
    }
    s->off_o = off;
    spk_state_reset(s);
    return s;
}

void spk_state_free(spk_state *s) {
    free(s);
}

void spk_state_reset(spk_state *s) {
    const spk_model *m = s->m;
    for (uint32_t l = 0; l < m->n_layers; l++) {
        const spk_layer *L = &m->layers[l];
        memcpy(spk_state_i(s, l), L->i0, L->n * sizeof(float));
        memcpy(spk_state_h(s, l), L->h0, L->n * sizeof(float));
        memcpy(spk_state_hs(s, l), L->hs0, L->n * sizeof(float));
    }
    if (m->has_readout) memcpy(spk_state_o(s), m->readout.o0, m->readout.n * sizeof(float));
    s->t = 0;
}

spk_state *spk_state_clone(const spk_state *s) {
    spk_state *c = aligned_alloc(64, s->bytes);
    if (c) memcpy(c, s, s->bytes);
    return c;
}

void spk_state_copy(spk_state *dst, const spk_state *src) {
    if (dst != src && dst->bytes == src->bytes) memcpy(dst, src, src->bytes);
}

const spk_model *spk_state_model(const spk_state *s) {
    return s->m;
}
uint64_t spk_state_t(const spk_state *s) {
    return s->t;
}
void spk_state_set_t(spk_state *s, uint64_t t) {
    s->t = t;
}

float *spk_state_i(spk_state *s, uint32_t l) {
    return data(s) + s->off_i[l];
}
float *spk_state_h(spk_state *s, uint32_t l) {
    return data(s) + s->off_i[l] + pad16(s->m->layers[l].n);
}
float *spk_state_hs(spk_state *s, uint32_t l) {
    return data(s) + s->off_i[l] + 2 * pad16(s->m->layers[l].n);
}
float *spk_state_o(spk_state *s) {
    return s->m->has_readout ? data(s) + s->off_o : NULL;
}

int spk_state_snapshot(const spk_state *s, uint8_t **buf, size_t *len, char *err, size_t errlen) {
    const spk_model *m = s->m;
    spk_state *w = (spk_state *)(uintptr_t)s; /* views only read below */
    Spikeserve__LayerState ls[SPK_MAX_LAYERS], *lp[SPK_MAX_LAYERS];
    Spikeserve__StateSnapshot snap;
    spikeserve__state_snapshot__init(&snap);
    *buf = NULL;
    *len = 0;
    snap.model_name = (char *)(uintptr_t)m->name;
    snap.model_version = m->version;
    snap.weights_checksum = m->checksum;
    snap.t = s->t;
    snap.n_layers = m->n_layers;
    snap.layers = lp;
    for (uint32_t l = 0; l < m->n_layers; l++) {
        spikeserve__layer_state__init(&ls[l]);
        ls[l].n_i = ls[l].n_h = ls[l].n_hs = m->layers[l].n;
        ls[l].i = spk_state_i(w, l);
        ls[l].h = spk_state_h(w, l);
        ls[l].hs = spk_state_hs(w, l);
        lp[l] = &ls[l];
    }
    if (m->has_readout) {
        snap.n_readout = m->readout.n;
        snap.readout = spk_state_o(w);
    }
    size_t n = spikeserve__state_snapshot__get_packed_size(&snap);
    uint8_t *b = malloc(n ? n : 1);
    if (!b) return spk_fail(err, errlen, SPK_ENOMEM, "snapshot: out of memory (%zu bytes)", n);
    *len = spikeserve__state_snapshot__pack(&snap, b);
    *buf = b;
    return 0;
}

static int check_vec(const float *v, size_t got, size_t n, const char *field, char *err,
                     size_t errlen) {
    if (got != n)
        return spk_fail(err, errlen, SPK_EFORMAT, "%s: %zu values, expected %zu", field, got, n);
    for (size_t k = 0; k < n; k++)
        if (!isfinite(v[k]))
            return spk_fail(err, errlen, SPK_EFORMAT, "%s[%zu]: %g is not finite", field, k,
                        (double)v[k]);
    return 0;
}

int spk_state_restore(spk_state *s, const uint8_t *buf, size_t len, char *err, size_t errlen) {
    const spk_model *m = s->m;
    static const uint8_t empty[1];
    int rc = 0;
    char f[48];
    long nl = buf ? pb_count_field(buf, len, 5) : 0;
    if (nl > SPK_MAX_LAYERS) /* refused before protobuf-c allocates a struct for each */
        return spk_fail(err, errlen, SPK_EFORMAT, "layers: %ld layers, limit %d", nl, SPK_MAX_LAYERS);
    Spikeserve__StateSnapshot *p =
        spikeserve__state_snapshot__unpack(NULL, len, buf && len ? buf : empty);
    if (!p)
        return spk_fail(err, errlen, SPK_EFORMAT,
                    "snapshot: not a valid spikeserve.StateSnapshot message (truncated or "
                    "corrupt, %zu bytes)",
                    len);
    if (strcmp(p->model_name, m->name) != 0 || p->model_version != m->version) {
        rc = spk_fail(err, errlen, SPK_EMODEL,
                  "snapshot: taken from model \"%.64s\" version %u, this is \"%s\" version %u",
                  p->model_name, p->model_version, m->name, m->version);
        goto done;
    }
    if (p->weights_checksum != m->checksum) {
        rc = spk_fail(err, errlen, SPK_EMODEL,
                  "snapshot: weights_checksum %016llx differs from the model's %016llx",
                  (unsigned long long)p->weights_checksum, (unsigned long long)m->checksum);
        goto done;
    }
    if (p->n_layers != m->n_layers) {
        rc = spk_fail(err, errlen, SPK_EFORMAT, "layers: %zu layers, expected %u", p->n_layers,
                  m->n_layers);
        goto done;
    }
    for (uint32_t l = 0; l < m->n_layers; l++) {
        const Spikeserve__LayerState *ls = p->layers[l];
        size_t n = m->layers[l].n;
        snprintf(f, sizeof f, "layers[%u].i", l);
        if ((rc = check_vec(ls->i, ls->n_i, n, f, err, errlen))) goto done;
        snprintf(f, sizeof f, "layers[%u].h", l);
        if ((rc = check_vec(ls->h, ls->n_h, n, f, err, errlen))) goto done;
        snprintf(f, sizeof f, "layers[%u].hs", l);
        if ((rc = check_vec(ls->hs, ls->n_hs, n, f, err, errlen))) goto done;
    }
    if ((rc = check_vec(p->readout, p->n_readout, m->has_readout ? m->readout.n : 0, "readout", err,
                        errlen)))
        goto done;
    /* Everything checked: only now touch the state. */
    for (uint32_t l = 0; l < m->n_layers; l++) {
        size_t n = m->layers[l].n * sizeof(float);
        memcpy(spk_state_i(s, l), p->layers[l]->i, n);
        memcpy(spk_state_h(s, l), p->layers[l]->h, n);
        memcpy(spk_state_hs(s, l), p->layers[l]->hs, n);
    }
    if (m->has_readout) memcpy(spk_state_o(s), p->readout, m->readout.n * sizeof(float));
    s->t = p->t;
done:
    spikeserve__state_snapshot__free_unpacked(p, NULL);
    return rc;
}
