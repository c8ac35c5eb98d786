/* encode.h: turn raw input values in [0, 1] into spike events with a model's encoding
 * (SPEC.md section 2): RATE is Bernoulli per step with p = min(1, gain * x), after
 * warmup_steps silent steps; LATENCY fires once per input at step
 * warmup_steps + round((1 - x) * (steps - 1)) when x > threshold.
 *
 * Deterministic for a given seed (xoshiro256** PRNG; no global state). Thread-safe.
 */
#ifndef SPK_ENCODE_H
#define SPK_ENCODE_H

#include "model.h"
#include "step.h"

typedef struct {
    uint64_t s[4];
} spk_rng;

void spk_rng_seed(spk_rng *r, uint64_t seed);
uint64_t spk_rng_next(spk_rng *r);
float spk_rng_uniform(spk_rng *r); /* [0, 1) */

/* Total steps of an encoded input: warmup_steps + steps. */
uint32_t spk_encode_steps(const spk_encoding *e);
/* Upper bound on the events spk_encode() can write for n inputs. */
size_t spk_encode_max_events(const spk_encoding *e, uint32_t n);
/* Encode x[0..n) into ev (capacity cap), sorted by step; *n_ev gets the count.
 * Values outside [0, 1] or not finite are SPK_EINVAL ("values[12]: 1.5 not in [0, 1]"). */
int spk_encode(const spk_encoding *e, const float *x, uint32_t n, spk_rng *rng, spk_event *ev,
               size_t cap, size_t *n_ev, char *err, size_t errlen);

#endif
