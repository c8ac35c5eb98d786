/* test_jsonscan.c: the one-pass JSON batch scanner (server/jsonscan.h) against the jansson
 * reference decoder.
 *
 * Whatever the scanner accepts must decode, bit for bit, as the reference does; what it
 * declines must be answered by ss_batch_from_json exactly as the reference answers (code and
 * message). The common batches (what clients send) must be taken by the scanner, not
 * declined, or the server silently loses its fast path. Random batches written in several
 * number formats, key orders and spacings check the number conversion. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/testmodel.h"
#include "../tap.h"
#include "batch.h"
#include "codec.h"
#include "jsonscan.h"

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

/* Returns 1 when the scanner took j, 0 when it declined; checks agreement either way. */
static int differ(const char *j, int *agree) {
    ss_batch f, r, b;
    char err[256] = "", rerr[256] = "";
    int frc = ss_batch_json_fast(j, strlen(j), M, &LIM, &f);
    int rrc = ss_batch_json_ref(j, strlen(j), M, &LIM, &r, rerr, sizeof rerr);
    int brc = ss_batch_from_json(j, strlen(j), M, &LIM, &b, err, sizeof err);
    *agree = brc == rrc && (rrc ? !strcmp(err, rerr) : same_batch(&b, &r));
    if (frc == 0)
        *agree = *agree && rrc == 0 && same_batch(&f, &r);
    else
        *agree = *agree && frc == SS_JSON_DECLINED && !f.events && !f.dense && !f.steps;
    if (!*agree) diag("fast %d, ref %d \"%s\", combined %d \"%s\"", frc, rrc, rerr, brc, err);
    if (frc == 0) ss_batch_free(&f);
    if (rrc == 0) ss_batch_free(&r);
    if (brc == 0) ss_batch_free(&b);
    return frc == 0;
}

static void taken(const char *j) {
    int agree, t = differ(j, &agree);
    ok(t && agree, "taken: %s", j);
}

static void declined(const char *j) {
    int agree, t = differ(j, &agree);
    ok(!t && agree, "declined, answered by jansson: %s", j);
}

static uint64_t rng = 12345;
static uint64_t rnd(void) {
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void put(char **p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(char **p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    *p += vsprintf(*p, fmt, ap);
    va_end(ap);
}

static const char *sp(void) {
    static const char *const s[] = {"", "", " ", "\n", "\t ", "\r\n"};
    return s[rnd() % 6];
}

static void number(char **p, float v) {
    double d = v;
    switch (rnd() % 7) {
    case 0:
        put(p, "%.9g", d);
        break;
    case 1:
        put(p, "%.6g", d);
        break;
    case 2:
        put(p, "%.3f", d);
        break;
    case 3:
        put(p, "%.4e", d);
        break;
    case 4:
        put(p, "%.8E", d);
        break;
    case 5:
        put(p, "%.17g", d);
        break;
    default:
        put(p, "%d", (int)d);
        break;
    }
}

int main(void) {
    tm_spec sp_ = {.n_in = 12, .n_layers = 1, .n = {5}, .readout = 3, .n_labels = 3, .seed = 7};
    M = tm_load(&sp_);

    taken("{\"steps\": 1, \"events\": [[0, 3], [0, 7], [0, 11]]}");
    taken("{\"seq\": 4, \"steps\": 3, \"events\": [[2, 1, 0.5], [0, 0], [1, 2, -3e2]]}");
    taken(" {\"events\":[[0,1,-0.0],[0,2,-0],[0,3,1e-7]],\"steps\":1,\"seq\":0} \n");
    taken("{\"steps\": 2, \"dense\": [[0,1,2,3,4,5,6,7,8,9,10,0.25],"
          "[1,1,1,1,1,1,1,1,1,1,1,-1E+3]], \"events\": [[1, 5]]}");
    taken("{\"steps\": 1, \"outputs\": []}");
    taken("{\"steps\": 1, \"outputs\": [\"layers\", \"readout_all\", \"spikes\", \"readout\"]}");
    taken("{\"steps\": 1, \"events\": [], \"seq\": 999999999999999999}");
    taken("{\"steps\": 1, \"events\": [[0, 0, 1000000], [0, 1, 999999.97], [0, 2, 0.1]]}");

    /* valid but outside the scanner's subset: jansson decides */
    declined("{\"st\\u0065ps\": 1}");
    declined("{\"steps\": 1, \"outputs\": [\"sp\\u0069kes\"]}");
    declined("{\"steps\": 1, \"seq\": 1000000000000000000}");
    declined("{\"steps\": 1, \"events\": [[0, 0, 1e-30]]}");
    declined("{\"steps\": 1, \"events\": [[0, 0, 0.1234567890123456]]}");
    /* every kind of error: jansson gives the message */
    declined("");
    declined("{\"steps\": 1} x");
    declined("{\"steps\": 1, \"steps\": 1}");
    declined("{\"steps\": 1, \"extra\": 1}");
    declined("{\"steps\": 01}");
    declined("{\"steps\": 1.0}");
    declined("{\"steps\": 0}");
    declined("{\"steps\": 1001}");
    declined("{\"events\": [[0, 1]]}");
    declined("{\"steps\": 1, \"events\": [[1, 1]]}");
    declined("{\"steps\": 1, \"events\": [[0, 12]]}");
    declined("{\"steps\": 1, \"events\": [[0, 1, 1000001]]}");
    declined("{\"steps\": 1, \"events\": [[0, 1, 1e39]]}");
    declined("{\"steps\": 1, \"events\": [[0, 1, -]]}");
    declined("{\"steps\": 1, \"events\": [[0, 1, 1.]]}");
    declined("{\"steps\": 1, \"events\": [[0, 1,]]}");
    declined("{\"steps\": 1, \"events\": [[0, 1] [0, 2]]}");
    declined("{\"steps\": 2, \"dense\": [[0,1,2,3,4,5,6,7,8,9,10,11]]}");
    declined("{\"steps\": 1, \"dense\": [[0,1,2,3,4,5,6,7,8,9,10]]}");
    declined("{\"steps\": 1, \"outputs\": [\"spikes\", \"foo\"]}");
    declined("{\"steps\": 1, \"outputs\": \"spikes\"}");
    declined("[1]");
    declined("{\"steps\": 1, \"events\": [[0, 1]]");

    /* random batches in many number formats, key orders and spacings */
    enum { N = 3000 };
    char *buf = malloc(1 << 20);
    int bad = 0, taken_n = 0, plain = 0, plain_taken = 0;
    for (int it = 0; it < N; it++) {
        char *p = buf;
        uint32_t steps = 1 + (uint32_t)(rnd() % 4);
        int n_ev = (int)(rnd() % 40), with_dense = rnd() % 5 == 0, fmt_plain = rnd() % 2;
        put(&p, "{%s", sp());
        int order = (int)(rnd() % 3), first = 1;
        for (int k = 0; k < 4; k++) {
            int key = (k + order) % 4;
            if (key == 0 && rnd() % 2) continue;
            if (key == 2 && !with_dense) continue;
            if (key == 3 && rnd() % 2) continue;
            if (!first) put(&p, ",%s", sp());
            first = 0;
            if (key == 0) put(&p, "\"seq\"%s:%s%llu", sp(), sp(), (unsigned long long)(rnd() >> 8));
            if (key == 1) {
                put(&p, "\"steps\":%s%u%s,%s\"events\":%s[", sp(), steps, sp(), sp(), sp());
                for (int i = 0; i < n_ev; i++) {
                    put(&p, "%s[%u,%s%u", i ? "," : "", (unsigned)(rnd() % steps), sp(),
                        (unsigned)(rnd() % M->n_in));
                    if (rnd() % 2) {
                        float v = (float)((double)(rnd() % 2000000) / 1000.0 - 1000.0);
                        if (rnd() % 3 == 0) v = (float)(rnd() % 100) / 7.0f;
                        put(&p, ",%s", sp());
                        if (fmt_plain)
                            put(&p, "%.9g", (double)v);
                        else
                            number(&p, v);
                    }
                    put(&p, "]%s", sp());
                }
                put(&p, "]");
            }
            if (key == 2) {
                put(&p, "\"dense\":%s[", sp());
                for (uint32_t t = 0; t < steps; t++) {
                    put(&p, "%s[", t ? "," : "");
                    for (uint32_t j = 0; j < M->n_in; j++) {
                        if (j) put(&p, ",%s", sp());
                        float v = (float)((double)(int64_t)(rnd() % 4000001) / 1e3 - 2000.0);
                        if (fmt_plain)
                            put(&p, "%.9g", (double)v);
                        else
                            number(&p, v);
                    }
                    put(&p, "]");
                }
                put(&p, "]");
            }
            if (key == 3) put(&p, "\"outputs\":%s[\"spikes\",%s\"readout\"]", sp(), sp());
        }
        put(&p, "%s}%s", sp(), sp());
        int agree, t = differ(buf, &agree);
        bad += !agree;
        taken_n += t;
        plain += fmt_plain;
        plain_taken += fmt_plain && t;
        if (!agree) diag("disagreement on %s", buf);
    }
    free(buf);
    ok(bad == 0, "%d random batches: scanner and jansson agree (%d taken by the scanner)", N,
       taken_n);
    ok(plain_taken == plain, "every random batch with %%.9g values taken (%d of %d)", plain_taken,
       plain);
    spk_model_free(M);
    return done_testing();
}
