/* answer.h: a step's answer kept format-neutral. A session keeps the answer of its last
 * seq so that a retry of that seq gets the same answer again, in whatever format the retry
 * asks (JSON or protobuf), without stepping twice and without decoding one format to write
 * another. One allocation holds a copy of the outputs the batch asked for.
 * Ownership: the session's worker owns its session's answer. Reentrant functions. */
#ifndef SS_ANSWER_H
#define SS_ANSWER_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"

typedef struct ss_answer {
    int has_seq;
    uint64_t seq, t0;
    uint32_t steps;
    unsigned outputs; /* SS_OUT_* asked */
    spk_output out;   /* points into this allocation */
} ss_answer;

/* A copy of what r answers (only the outputs r->outputs asked). NULL when out of memory. */
ss_answer *ss_answer_make(const ss_result *r);
/* An answer with head's seq, t0, steps and outputs and empty room for spikes spikes (all
 * layers together), layers (0 or the model's layer count) and readout floats; for decoders
 * that fill one in. */
ss_answer *ss_answer_alloc(const ss_answer *head, size_t spikes, uint32_t layers, size_t readout);
void ss_answer_free(ss_answer *a); /* NULL is a no-op */
/* The result to encode again for session_id of model m. */
ss_result ss_answer_result(const ss_answer *a, const char *session_id, const spk_model *m);

#endif
