/* batchgen.h: random spike batches for the end-to-end tests, their JSON and protobuf
 * encodings, step results decoded from either format, and the same batch run directly on
 * the engine (the reference the server's answers are held to). */
#ifndef TB_BATCHGEN_H
#define TB_BATCHGEN_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "state.h"
#include "step.h"

typedef struct {
    uint32_t steps;
    spk_event *ev; /* sorted by step */
    size_t n;
} tb_batch;

typedef struct {
    int has_seq;
    uint64_t seq, t0;
    uint32_t steps;
    spk_spike *sp;
    size_t n;
    float readout[256];
    uint32_t n_readout;
    int has_pred;
    uint32_t pred;
} tb_result;

uint64_t tb_rand(uint64_t *state); /* splitmix64 */
/* Each step, each input fires with probability p; values are 1.0 or a random one in
 * (0, 2]. */
int tb_random(tb_batch *b, uint64_t *rng, uint32_t steps, uint32_t n_in, double p);
void tb_free(tb_batch *b);
/* {"seq":..,"steps":..,"events":[[s,i,v],...]}; seq < 0: none. malloc'd. */
char *tb_json(const tb_batch *b, int64_t seq);
/* The same as spikeserve.SpikeBatch protobuf. malloc'd. */
uint8_t *tb_pb(const tb_batch *b, int64_t seq, size_t *len);

int tb_result_pb(const void *buf, size_t len, tb_result *out);
int tb_result_json(const char *buf, tb_result *out);
void tb_result_free(tb_result *r);
/* Run b on st directly (the engine reference). */
int tb_engine_step(spk_state *st, spk_scratch *sc, const tb_batch *b, tb_result *out);
/* 1 when equal: same t0, steps, spikes (step, neuron exact; value within tol) and readout
 * within tol. why gets the first difference. */
int tb_result_eq(const tb_result *a, const tb_result *b, double tol, char *why, size_t len);

#endif
