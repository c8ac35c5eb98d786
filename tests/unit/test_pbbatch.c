/* test_pbbatch.c: the one-pass protobuf SpikeBatch reader (server/pbbatch.h) against the
 * protobuf-c reference decoder.
 *
 * Whatever the reader accepts must decode, bit for bit, as the reference does; what it
 * declines must be answered by ss_batch_from_pb exactly as the reference answers. Batches
 * that protobuf-c itself packs (what clients send) must be taken by the reader. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../support/testmodel.h"
#include "../tap.h"
#include "api.pb-c.h"
#include "batch.h"
#include "codec.h"
#include "pbbatch.h"

static spk_model *M;
static const ss_limits LIM = {1000, 5000, 0};

static int same_batch(const ss_batch *a, const ss_batch *b) {
    if (a->has_seq != b->has_seq || a->seq != b->seq || a->steps != b->steps ||
        a->n_events != b->n_events || a->outputs != b->outputs || !a->dense != !b->dense)
        return 0;
    if (a->n_events && memcmp(a->events, b->events, a->n_events * sizeof *a->events)) return 0;
    if (a->dense && memcmp(a->dense, b->dense, (size_t)a->steps * M->n_in * sizeof(float)))
        return 0;
    return 1;
}

/* 1 when the reader took the bytes, 0 when it declined; *agree: all three agree. */
static int differ(const uint8_t *p, size_t n, int *agree) {
    ss_batch f, r, b;
    char err[256] = "", rerr[256] = "";
    int frc = ss_batch_pb_fast(p, n, M, &LIM, &f);
    int rrc = ss_batch_pb_ref(p, n, M, &LIM, &r, rerr, sizeof rerr);
    int brc = ss_batch_from_pb(p, n, M, &LIM, &b, err, sizeof err);
    *agree = brc == rrc && (rrc ? !strcmp(err, rerr) : same_batch(&b, &r));
    if (frc == 0)
        *agree = *agree && rrc == 0 && same_batch(&f, &r);
    else
        *agree = *agree && frc == SS_PB_DECLINED && !f.events && !f.steps;
    if (!*agree) diag("fast %d, ref %d \"%s\", combined %d \"%s\"", frc, rrc, rerr, brc, err);
    if (frc == 0) ss_batch_free(&f);
    if (rrc == 0) ss_batch_free(&r);
    if (brc == 0) ss_batch_free(&b);
    return frc == 0;
}

static void check(const char *name, const char *hex, int want_taken) {
    uint8_t buf[256];
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        buf[i] = (uint8_t)v;
    }
    int agree, t = differ(buf, n, &agree);
    ok(agree && t == want_taken, "%s: %s", name, want_taken ? "taken" : "declined");
}

static uint64_t rng = 99;
static uint64_t rnd(void) {
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int main(void) {
    tm_spec sp = {.n_in = 12, .n_layers = 1, .n = {5}, .readout = 3, .n_labels = 3, .seed = 7};
    M = tm_load(&sp);

    /* steps 2, events [0,3] and [1,5,0.5], seq 7, outputs "spikes" */
    check("plain batch",
          "0807"
          "1002"
          "1a021003"
          "1a09080110051d0000003f"
          "2a067370696b6573",
          1);
    check("empty event = [0, 0, 1.0]", "10011a00", 1);
    check("no steps", "0807", 0);
    check("steps twice", "10011002", 0);
    check("unknown field", "10013001", 0);
    check("dense row", "1001220a0d0000803f", 0);
    check("event step out of range", "10011a020801", 0);
    check("event input out of range", "10011a02100c", 0);
    check("value NaN", "10011a051d0000c07f", 0);
    check("value 2e6", "10011a051d80841e4a", 0);
    check("seq past int64", "08ffffffffffffffff80011001", 0);
    check("10-byte varint step", "10011a0b08ffffffffffffffffff01", 0);
    check("truncated event", "10011a05080110", 0);
    check("unknown output", "10012a03666f6f", 0);
    check("output with NUL", "10012a077370696b65730078", 0);

    enum { N = 3000 };
    int bad = 0, taken = 0;
    for (int it = 0; it < N; it++) {
        Spikeserve__SpikeBatch b = SPIKESERVE__SPIKE_BATCH__INIT;
        Spikeserve__InputEvent ev[64], *evp[64];
        char o0[] = "spikes", o1[] = "readout", o2[] = "layers";
        char *outs[3] = {o0, o1, o2};
        b.has_seq = rnd() % 2;
        b.seq = rnd() >> (1 + rnd() % 63);
        b.has_steps = 1;
        b.steps = 1 + (uint32_t)(rnd() % 5);
        b.n_events = rnd() % 64;
        for (size_t i = 0; i < b.n_events; i++) {
            spikeserve__input_event__init(&ev[i]);
            ev[i].has_step = rnd() % 4 != 0;
            ev[i].step = (uint32_t)(rnd() % b.steps);
            ev[i].has_input = rnd() % 4 != 0;
            ev[i].input = (uint32_t)(rnd() % M->n_in);
            ev[i].has_value = rnd() % 2;
            ev[i].value = (float)((double)(int64_t)(rnd() % 4000001) / 1e3 - 2000.0);
            evp[i] = &ev[i];
        }
        b.events = evp;
        b.n_outputs = rnd() % 4;
        b.outputs = outs;
        uint8_t buf[4096];
        size_t n = spikeserve__spike_batch__pack(&b, buf);
        int agree, t = differ(buf, n, &agree);
        bad += !agree;
        taken += t;
    }
    ok(bad == 0, "%d random batches packed by protobuf-c: reader and reference agree", N);
    ok(taken == N, "every one taken by the reader (%d of %d)", taken, N);
    spk_model_free(M);
    return done_testing();
}
