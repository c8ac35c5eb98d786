/* encode.c: raw values in [0, 1] to spike events (RATE, LATENCY), with xoshiro256**.
 *
 * RATE draws one uniform per (step, input) in step-major order, so the same seed gives the
 * same events; events have value 1 and come out sorted by (step, input). LATENCY writes
 * one event per firing input and sorts them with spk_events_sort() (no allocation).
 */
#include "encode.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

void spk_rng_seed(spk_rng *r, uint64_t seed) {
    /* splitmix64, as the xoshiro authors recommend; never all zero. */
    for (int k = 0; k < 4; k++) {
        uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        r->s[k] = z ^ (z >> 31);
    }
}

uint64_t spk_rng_next(spk_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float spk_rng_uniform(spk_rng *r) { /* 24 random bits: every value exact in a float */
    return (float)(spk_rng_next(r) >> 40) * 0x1.0p-24f;
}

uint32_t spk_encode_steps(const spk_encoding *e) {
    return e->warmup_steps + e->steps;
}

size_t spk_encode_max_events(const spk_encoding *e, uint32_t n) {
    switch (e->kind) {
    case SPK_ENC_RATE:
        return (size_t)e->steps * n;
    case SPK_ENC_LATENCY:
        return n;
    default:
        return 0;
    }
}

int spk_encode(const spk_encoding *e, const float *x, uint32_t n, spk_rng *rng, spk_event *ev,
               size_t cap, size_t *n_ev, char *err, size_t errlen) {
    *n_ev = 0;
    if (e->kind != SPK_ENC_RATE && e->kind != SPK_ENC_LATENCY)
        return spk_fail(err, errlen, SPK_EINVAL, "encoding: the model has no input encoding");
    if (e->steps < 1) return spk_fail(err, errlen, SPK_EINVAL, "encoding.steps: 0, must be >= 1");
    for (uint32_t j = 0; j < n; j++)
        if (!(x[j] >= 0.0f && x[j] <= 1.0f)) /* also catches NaN */
            return spk_fail(err, errlen, SPK_EINVAL, "values[%u]: %g not in [0, 1]", j, (double)x[j]);
    size_t c = 0;
    if (e->kind == SPK_ENC_RATE) {
        for (uint32_t s = 0; s < e->steps; s++)
            for (uint32_t j = 0; j < n; j++) {
                float p = e->gain * x[j];
                if (p > 1.0f) p = 1.0f;
                if (spk_rng_uniform(rng) < p) {
                    if (c == cap)
                        return spk_fail(err, errlen, SPK_ESPACE,
                                    "events: capacity %zu too small (spk_encode_max_events())",
                                    cap);
                    ev[c++] = (spk_event){e->warmup_steps + s, j, 1.0f};
                }
            }
    } else {
        for (uint32_t j = 0; j < n; j++) {
            if (!(x[j] > e->threshold)) continue;
            uint32_t s = (uint32_t)roundf((1.0f - x[j]) * (float)(e->steps - 1));
            if (s > e->steps - 1) s = e->steps - 1;
            if (c == cap)
                return spk_fail(err, errlen, SPK_ESPACE,
                            "events: capacity %zu too small (spk_encode_max_events())", cap);
            ev[c++] = (spk_event){e->warmup_steps + s, j, 1.0f};
        }
        spk_events_sort(ev, c);
    }
    *n_ev = c;
    return 0;
}
