/* test_oipscan.c: the one-pass OIP infer header scanner (server/oipscan.h) against the
 * jansson reference decoder.
 *
 * Whatever the scanner accepts must decode as the reference does (batch, answer options,
 * sequence parameters); what it declines must be answered by ss_oip_decode exactly as the
 * reference answers (code and message). What stock clients send (Triton's HTTP client:
 * binary tensors, sequence parameters, binary outputs; KServe: JSON data) must be taken by
 * the scanner, not declined, or the server silently loses its fast path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/testmodel.h"
#include "../tap.h"
#include "oip.h"
#include "oipscan.h"

static spk_model *M;
static const ss_limits LIM = {1000, 5000, 0};

static int same_batch(const ss_batch *a, const ss_batch *b) {
    if (a->steps != b->steps || a->n_events != b->n_events || a->outputs != b->outputs ||
        !a->dense != !b->dense || !a->events != !b->events)
        return 0;
    if (a->n_events && memcmp(a->events, b->events, a->n_events * sizeof *a->events)) return 0;
    if (a->dense && memcmp(a->dense, b->dense, (size_t)a->steps * M->n_in * sizeof(float)))
        return 0;
    return 1;
}

static int same_request(const ss_oip_fmt *a, const ss_oip_seq *as, const ss_oip_fmt *b,
                        const ss_oip_seq *bs) {
    if (strcmp(a->id, b->id) || a->n_out != b->n_out) return 0;
    for (unsigned k = 0; k < a->n_out; k++)
        if (a->out[k].which != b->out[k].which || a->out[k].binary != b->out[k].binary ||
            a->out[k].klass != b->out[k].klass)
            return 0;
    return as->has_id == bs->has_id && as->is_str == bs->is_str && as->num == bs->num &&
           !strcmp(as->str, bs->str) && as->start == bs->start && as->end == bs->end;
}

/* Returns 1 when the scanner took (head, bin), 0 when it declined; checks agreement. */
static int differ(const char *head, const void *bin, size_t bin_len, int *agree) {
    ss_batch f, r, b;
    ss_oip_fmt ff, rf, bf;
    ss_oip_seq fs, rs, bs;
    char err[256] = "", rerr[256] = "";
    const uint8_t *h = (const uint8_t *)head;
    size_t hl = strlen(head);
    int frc = ss_oip_decode_fast(h, hl, bin, bin_len, M, &LIM, &f, &ff, &fs);
    int rrc = ss_oip_decode_ref(h, hl, bin, bin_len, M, &LIM, &r, &rf, &rs, rerr, sizeof rerr);
    int brc = ss_oip_decode(h, hl, bin, bin_len, M, &LIM, &b, &bf, &bs, err, sizeof err);
    *agree = brc == rrc &&
             (rrc ? !strcmp(err, rerr) : same_batch(&b, &r) && same_request(&bf, &bs, &rf, &rs));
    if (frc == 0)
        *agree = *agree && rrc == 0 && same_batch(&f, &r) && same_request(&ff, &fs, &rf, &rs) &&
                 ff.head == &ff.head_len;
    else
        *agree = *agree && frc == SS_OIP_DECLINED && !f.events && !f.dense && !f.steps &&
                 !ff.n_out && !fs.has_id;
    if (!*agree) diag("fast %d, ref %d \"%s\", combined %d \"%s\"", frc, rrc, rerr, brc, err);
    if (frc == 0) ss_batch_free(&f);
    if (rrc == 0) ss_batch_free(&r);
    if (brc == 0) ss_batch_free(&b);
    return frc == 0;
}

static void taken(const char *head, const void *bin, size_t bin_len) {
    int agree, t = differ(head, bin, bin_len, &agree);
    ok(t && agree, "taken: %s", head);
}

static void declined(const char *head, const void *bin, size_t bin_len) {
    int agree, t = differ(head, bin, bin_len, &agree);
    ok(!t && agree, "declined, answered by jansson: %s", head);
}

int main(void) {
    tm_spec sp_ = {.n_in = 12, .n_layers = 1, .n = {5}, .readout = 3, .n_labels = 3, .seed = 7};
    M = tm_load(&sp_);
    const float ev[9] = {0, 3, 1, 1, 7, 0.5f, 0, 11, -2};
    float dense[24];
    for (int i = 0; i < 24; i++)
        dense[i] = (float)(i % 5) * 0.25f;
    const int32_t iev[6] = {0, 1, 1, 1, 2, 1};
    const uint8_t bools[12] = {1, 0, 0, 1, 0, 0, 0, 0, 2, 0, 0, 1};

    /* what Triton's HTTP client sends (bench_oip_prep.py's header) */
    taken("{\"parameters\":{\"sequence_id\":17,\"sequence_start\":false,\"sequence_end\":false,"
          "\"steps\":2,\"binary_data_output\":true},\"inputs\":[{\"name\":\"events\",\"datatype\":"
          "\"FP32\",\"shape\":[3,3],\"parameters\":{\"binary_data_size\":36}}],\"outputs\":[{"
          "\"name\":\"output_spikes\"},{\"name\":\"readout\"},{\"name\":\"prediction\"}]}",
          ev, sizeof ev);
    taken(" {\"id\": \"r-1\", \"inputs\": [{\"shape\": [1, 2, 12], \"datatype\": \"FP32\", "
          "\"name\": \"spikes\", \"parameters\": {\"binary_data_size\": 96}}], \"parameters\": "
          "{\"sequence_id\": \"abc\", \"sequence_start\": true}, \"outputs\": [{\"name\": "
          "\"readout\", \"parameters\": {\"binary_data\": false, \"classification\": 9}}]}\n",
          dense, sizeof dense);
    taken("{\"inputs\":[{\"name\":\"events\",\"datatype\":\"INT32\",\"shape\":[3,2],"
          "\"parameters\":{\"binary_data_size\":24}}],\"parameters\":{\"steps\":3,"
          "\"sequence_id\":0}}",
          iev, sizeof iev);
    taken("{\"inputs\":[{\"name\":\"spikes\",\"datatype\":\"BOOL\",\"shape\":[1,12],"
          "\"parameters\":{\"binary_data_size\":12}}],\"outputs\":[]}",
          bools, sizeof bools);
    /* JSON data, flat and nested, as KServe clients send it */
    taken("{\"inputs\":[{\"name\":\"events\",\"datatype\":\"FP32\",\"shape\":[2,3],"
          "\"data\":[0,1,0.5,1,11,-2e0]}],\"parameters\":{\"steps\":2}}",
          NULL, 0);
    taken("{\"inputs\":[{\"name\":\"spikes\",\"datatype\":\"INT32\",\"shape\":[1,12],"
          "\"data\":[[0,1,0,0,1,0,0,0,0,0,-1,0]]},{\"name\":\"events\",\"datatype\":\"FP64\","
          "\"shape\":[1,2],\"data\":[[0, 4]]}]}",
          NULL, 0);
    taken("{\"inputs\":[{\"name\":\"spikes\",\"datatype\":\"BOOL\",\"shape\":[1,12],"
          "\"data\":[true,false,false,true,false,false,false,false,true,false,false,true]}],"
          "\"outputs\":[{\"name\":\"prediction\",\"parameters\":{\"classification\":2}}]}",
          NULL, 0);
    /* valid but outside the scanner's subset: jansson decides */
    declined("{\"id\":\"a\\u0062\",\"inputs\":[{\"name\":\"events\",\"datatype\":\"FP32\","
             "\"shape\":[3,3],\"parameters\":{\"binary_data_size\":36}}],\"parameters\":"
             "{\"steps\":2}}",
             ev, sizeof ev);
    declined("{\"inputs\":[{\"name\":\"events\",\"datatype\":\"FP32\",\"shape\":[3,3],"
             "\"parameters\":{\"binary_data_size\":36,\"x\":1}}],\"parameters\":{\"steps\":2}}",
             ev, sizeof ev);
    declined("{\"inputs\":[{\"name\":\"events\",\"datatype\":\"FP32\",\"shape\":[1,3],"
             "\"data\":[0,1,1e-30]}],\"parameters\":{\"steps\":1}}",
             NULL, 0);
    /* errors: jansson gives the message */
    declined("", NULL, 0);
    declined("{\"inputs\":[]}", NULL, 0);
    declined("{\"inputs\":[{\"name\":\"events\",\"datatype\":\"FP32\",\"shape\":[3,3],"
             "\"parameters\":{\"binary_data_size\":36}}]}",
             ev, sizeof ev); /* no steps */
    declined("{\"inputs\":[{\"name\":\"events\",\"datatype\":\"FP32\",\"shape\":[3,3],"
             "\"parameters\":{\"binary_data_size\":36}}],\"parameters\":{\"steps\":2}}",
             ev, sizeof ev - 1); /* past the body */
    declined("{\"inputs\":[{\"name\":\"events\",\"datatype\":\"FP32\",\"shape\":[3,3],"
             "\"parameters\":{\"binary_data_size\":36}}],\"parameters\":{\"steps\":1}}",
             ev, sizeof ev); /* a step past steps */
    declined("{\"inputs\":[{\"name\":\"events\",\"datatype\":\"FP16\",\"shape\":[3,3],"
             "\"parameters\":{\"binary_data_size\":18}}],\"parameters\":{\"steps\":2}}",
             ev, 18);
    declined("{\"inputs\":[{\"name\":\"events\",\"datatype\":\"FP32\",\"shape\":[3,-3],"
             "\"parameters\":{\"binary_data_size\":36}}],\"parameters\":{\"steps\":2}}",
             ev, sizeof ev);
    declined("{\"inputs\":[{\"name\":\"events\",\"datatype\":\"FP32\",\"shape\":[3,3],"
             "\"parameters\":{\"binary_data_size\":36}}],\"parameters\":{\"steps\":3,"
             "\"steps\":2}}",
             ev, sizeof ev); /* a duplicate key */
    declined("{\"inputs\":[{\"name\":\"spikes\",\"datatype\":\"INT32\",\"shape\":[1,12],"
             "\"data\":[[0,1,0,0,1,0,0,0,0,0,0.5,0]]}]}",
             NULL, 0); /* a real in INT32 */
    declined("{\"inputs\":[{\"name\":\"spikes\",\"datatype\":\"FP32\",\"shape\":[1,12],"
             "\"data\":[0,1,0,0,1,0,0,0,0,0,0]}]}",
             NULL, 0); /* 11 values */
    declined("{\"inputs\":[{\"name\":\"events\",\"datatype\":\"FP32\",\"shape\":[3,3],"
             "\"parameters\":{\"binary_data_size\":36}}],\"parameters\":{\"steps\":2},"
             "\"outputs\":[{\"name\":\"output_spikes\",\"parameters\":{\"classification\":1}}]}",
             ev, sizeof ev);
    declined("{\"inputs\":[{\"name\":\"events\",\"datatype\":\"FP32\",\"shape\":[3,3],"
             "\"parameters\":{\"binary_data_size\":36}}],\"parameters\":{\"steps\":2}} x",
             ev, sizeof ev);
    spk_model_free(M);
    return done_testing();
}
