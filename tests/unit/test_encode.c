/* test_encode.c: RATE and LATENCY encodings and the xoshiro256** generator. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "encode.h"

static void test_rng(void) {
    spk_rng a, b;
    spk_rng_seed(&a, 42);
    spk_rng_seed(&b, 42);
    int same = 1;
    for (int k = 0; k < 1000; k++)
        same &= spk_rng_next(&a) == spk_rng_next(&b);
    ok(same, "same seed, same sequence");
    spk_rng_seed(&b, 43);
    ok(spk_rng_next(&a) != spk_rng_next(&b), "other seed, other sequence");
    /* xoshiro256** by hand from a known state: s = {1, 2, 3, 4} gives rotl(2 * 5, 7) * 9 */
    spk_rng r = {{1, 2, 3, 4}};
    is_int(spk_rng_next(&r), 11520, "xoshiro256** output from state {1,2,3,4}");
    ok(r.s[0] == 7 && r.s[1] == 0 && r.s[2] == 262146 && r.s[3] == 0xc00000000000ULL,
       "  and its next state");
    double sum = 0;
    float lo = 1, hi = 0;
    for (int k = 0; k < 100000; k++) {
        float u = spk_rng_uniform(&a);
        sum += u;
        if (u < lo) lo = u;
        if (u > hi) hi = u;
    }
    ok(lo >= 0 && hi < 1 && fabs(sum / 100000 - 0.5) < 0.01, "uniform in [0, 1), mean %.4f",
       sum / 100000);
}

static void test_rate(void) {
    spk_encoding e = {SPK_ENC_RATE, 20, 3, 0.5f, 0};
    enum { N = 1000 };
    float x[N];
    for (int j = 0; j < N; j++)
        x[j] = j < 500 ? 0.6f : (j < 900 ? 0.0f : 1.0f);
    is_int(spk_encode_steps(&e), 23, "steps = warm-up + steps");
    size_t cap = spk_encode_max_events(&e, N);
    is_int(cap, 20 * N, "max events = steps x n");
    spk_event *ev = malloc(cap * sizeof *ev);
    spk_rng r;
    spk_rng_seed(&r, 1);
    size_t n;
    char err[128];
    is_int(spk_encode(&e, x, N, &r, ev, cap, &n, err, sizeof err), 0, "RATE encodes");
    size_t per[3] = {0, 0, 0};
    int sorted = 1, in_range = 1, ones = 1;
    for (size_t k = 0; k < n; k++) {
        per[ev[k].input < 500 ? 0 : ev[k].input < 900 ? 1 : 2]++;
        in_range &= ev[k].step >= 3 && ev[k].step < 23;
        ones &= ev[k].value == 1.0f;
        if (k)
            sorted &= ev[k - 1].step < ev[k].step ||
                      (ev[k - 1].step == ev[k].step && ev[k - 1].input < ev[k].input);
    }
    ok(sorted && in_range && ones, "events sorted, after the warm-up, value 1");
    ok(fabs((double)per[0] - 500 * 20 * 0.3) < 300,
       "p = gain * x = 0.3: %zu events of 3000 expected", per[0]);
    is_int(per[1], 0, "x = 0 never fires");
    ok(per[2] > 900 && per[2] < 1100, "x = 1, gain 0.5: p = 0.5, %zu events of 1000 expected",
       per[2]);
    e.gain = 2.0f;
    spk_rng_seed(&r, 1);
    spk_encode(&e, x + 900, 100, &r, ev, cap, &n, err, sizeof err);
    is_int(n, 100 * 20, "gain * x >= 1 fires at every step");
    spk_rng r1, r2;
    spk_rng_seed(&r1, 7), spk_rng_seed(&r2, 7);
    size_t n1, n2;
    spk_event *ev2 = malloc(cap * sizeof *ev2);
    e.gain = 0.5f;
    spk_encode(&e, x, N, &r1, ev, cap, &n1, err, sizeof err);
    spk_encode(&e, x, N, &r2, ev2, cap, &n2, err, sizeof err);
    ok(n1 == n2 && memcmp(ev, ev2, n1 * sizeof *ev) == 0, "deterministic for a seed");
    is_int(spk_encode(&e, x, N, &r1, ev, 10, &n, err, sizeof err), SPK_ESPACE,
           "too small a buffer: SPK_ESPACE");
    x[12] = 1.5f;
    is_int(spk_encode(&e, x, N, &r1, ev, cap, &n, err, sizeof err), SPK_EINVAL,
           "value out of [0, 1]");
    is_str(err, "values[12]: 1.5 not in [0, 1]", "  message");
    x[12] = NAN;
    is_int(spk_encode(&e, x, N, &r1, ev, cap, &n, err, sizeof err), SPK_EINVAL, "NaN refused");
    spk_encoding none = {SPK_ENC_NONE, 0, 0, 0, 0};
    is_int(spk_encode(&none, x, 1, &r1, ev, cap, &n, err, sizeof err), SPK_EINVAL, "no encoding");
    is_str(err, "encoding: the model has no input encoding", "  message");
    free(ev), free(ev2);
}

static void test_latency(void) {
    spk_encoding e = {SPK_ENC_LATENCY, 20, 2, 0, 0.1f};
    float x[6] = {1.0f, 0.5f, 0.1f, 0.0f, 0.75f, 0.2f};
    spk_event ev[6];
    size_t n;
    char err[128];
    is_int(spk_encode_max_events(&e, 6), 6, "max events = n");
    spk_rng r;
    spk_rng_seed(&r, 1);
    is_int(spk_encode(&e, x, 6, &r, ev, 6, &n, err, sizeof err), 0, "LATENCY encodes");
    /* step = warm-up + round((1 - x) * 19): 1 -> 2, 0.75 -> 2+5, 0.5 -> 2+10 (9.5 rounds up), 0.2
     * -> 2+15 */
    is_int(n, 4, "x <= threshold never fires");
    spk_event want[4] = {{2, 0, 1}, {7, 4, 1}, {12, 1, 1}, {17, 5, 1}};
    ok(n == 4 && memcmp(ev, want, sizeof want) == 0,
       "one event per input at its latency, sorted by step");
}

int main(void) {
    test_rng();
    test_rate();
    test_latency();
    return done_testing();
}
