/* answer.c: copies of step results in one allocation: [the answer][layer buffers][spikes]
 * [readout], each part aligned for its type. */
#include "answer.h"

#include <stdlib.h>
#include <string.h>

#include "../engine/output.h"

ss_answer *ss_answer_alloc(const ss_answer *head, size_t spikes, uint32_t layers, size_t readout) {
    size_t off_lb = spk_align16(sizeof(ss_answer));
    size_t off_sp = off_lb + spk_align16(layers * sizeof(spk_spike_buf));
    size_t off_ro = off_sp + spk_align16(spikes * sizeof(spk_spike));
    uint8_t *p = calloc(1, off_ro + readout * sizeof(float));
    if (!p) return NULL;
    ss_answer *a = (ss_answer *)(void *)p;
    a->has_seq = head->has_seq;
    a->seq = head->seq;
    a->t0 = head->t0;
    a->steps = head->steps;
    a->outputs = head->outputs;
    a->out.layers = layers ? (spk_spike_buf *)(void *)(p + off_lb) : NULL;
    a->out.spikes.buf = (spk_spike *)(void *)(p + off_sp);
    a->out.spikes.cap = spikes;
    a->out.readout = readout ? (float *)(void *)(p + off_ro) : NULL;
    return a;
}

void ss_answer_free(ss_answer *a) {
    free(a);
}

ss_answer *ss_answer_make(const ss_result *r) {
    const spk_model *m = r->model;
    const spk_output *o = r->out;
    unsigned outs = r->outputs;
    int layers = (outs & SS_OUT_LAYERS) && o->layers;
    size_t n_sp = (outs & SS_OUT_SPIKES) ? o->spikes.len : 0, total = n_sp;
    if (layers)
        for (uint32_t l = 0; l < m->n_layers; l++)
            total += o->layers[l].len;
    const float *last = ss_result_last_readout(r);
    int every = last && (outs & SS_OUT_READOUT_ALL) && o->readout_every_step;
    size_t ro_n = !last                     ? 0
                  : every                   ? (size_t)r->steps * m->readout.n
                  : (outs & SS_OUT_READOUT) ? m->readout.n
                                            : 0;
    ss_answer head = {
        .has_seq = r->has_seq, .seq = r->seq, .t0 = r->t0, .steps = r->steps, .outputs = outs};
    ss_answer *a = ss_answer_alloc(&head, total, layers ? m->n_layers : 0, ro_n);
    if (!a) return NULL;
    spk_spike *sp = a->out.spikes.buf;
    memcpy(sp, o->spikes.buf, n_sp * sizeof *sp);
    a->out.spikes.len = a->out.spikes.cap = n_sp;
    sp += n_sp;
    for (uint32_t l = 0; layers && l < m->n_layers; l++) {
        size_t n = o->layers[l].len;
        memcpy(sp, o->layers[l].buf, n * sizeof *sp);
        a->out.layers[l] = (spk_spike_buf){sp, n, n};
        sp += n;
    }
    if (ro_n) {
        memcpy(a->out.readout, every ? o->readout : last, ro_n * sizeof(float));
        a->out.readout_every_step = every;
    }
    return a;
}

ss_result ss_answer_result(const ss_answer *a, const char *session_id, const spk_model *m) {
    ss_result r = {session_id, a->has_seq, a->seq, a->t0, a->steps, a->outputs, m, &a->out, NULL, NULL};
    return r;
}
