/* fuzz_wire.c: libFuzzer harness for the server's other request decoders: the first byte
 * picks one, the rest is the body.
 *   0/1: OpenSessionRequest, JSON / protobuf (the codecs' open_req)
 *   2/3: ClassifyRequest, JSON / protobuf (the codecs' classify_req): accepted values are
 *        n_in finite numbers in [0, 1] and the outputs a known mask
 *   4:   SessionSnapshot, the body of PUT /state and a --state-dir file (ss_store_decode):
 *        an accepted snapshot is put into a session, encoded again, and that decodes to
 *        the same t, last_seq and stored answer (kept format-neutral, so its bytes are
 *        canonical from the second round on).
 * Errors must come with a message. Leaks are findings (LeakSanitizer).
 * Built with -DFUZZ_SEED_MAIN it writes seeds into DIR instead. */
#include <math.h>

#include "fuzz_batch_common.h"
#include "answer.h"
#include "store.h"
#include "codec.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) fz_die("check failed", #c);                                                      \
    } while (0)

static void snapshot(const uint8_t *d, size_t n) {
    ss_snap snap;
    char err[512] = "";
    int rc = ss_store_decode(d, n, fz_reg, &snap, err, sizeof err);
    CHECK(rc == 0 || rc == SS_E_INVALID || rc == SS_E_NOT_FOUND || rc == SS_E_NOMEM);
    if (rc != 0) {
        CHECK(err[0]);
        return;
    }
    CHECK(snap.model == fz_model && snap.state);
    ss_sess *s = ss_sess_create(snap.id[0] ? snap.id : "fuzz", fz_mv, 0, 60);
    CHECK(s);
    s->owner = snap.owner; /* as a restore does: owners are fixed at creation */
    CHECK(ss_store_apply(s, &snap, err, sizeof err) == 0); /* decode checked the state */
    uint8_t *buf;
    size_t len;
    CHECK(ss_store_encode(s, 1, &buf, &len, err, sizeof err) == 0);
    ss_snap again;
    CHECK(ss_store_decode(buf, len, fz_reg, &again, err, sizeof err) == 0);
    CHECK(again.last_seq == snap.last_seq && again.owner == snap.owner);
    CHECK(!again.last_pb_len == !snap.last_pb_len);
    /* the engine may canonicalize the state it was given; one round later it is fixed */
    ss_sess *s2 = ss_sess_create(s->id, fz_mv, 0, 60);
    CHECK(s2);
    s2->owner = again.owner;
    CHECK(ss_store_apply(s2, &again, err, sizeof err) == 0);
    CHECK(spk_state_t(s2->state) == spk_state_t(s->state) && s2->t == s->t);
    uint8_t *buf2;
    size_t len2;
    CHECK(ss_store_encode(s2, 1, &buf2, &len2, err, sizeof err) == 0);
    CHECK(len2 == len && !memcmp(buf, buf2, len));
    free(buf2);
    ss_sess_unref(s2);
    ss_store_snap_free(&again);
    free(buf);
    ss_sess_unref(s);
    ss_store_snap_free(&snap);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_init();
    if (size < 1) return 0;
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    char err[512] = "";
    switch (data[0] % 5) {
    case 0:
    case 1: {
        ss_open_req q;
        const ss_codec *c = data[0] % 5 ? &ss_codec_pb : &ss_codec_json;
        if (c->open_req(d, n, &q, err, sizeof err) != 0) CHECK(err[0]);
        break;
    }
    case 2:
    case 3: {
        ss_classify_req q;
        const ss_codec *c = data[0] % 5 == 3 ? &ss_codec_pb : &ss_codec_json;
        if (c->classify_req(d, n, fz_model, &q, err, sizeof err) != 0) {
            CHECK(err[0]);
            break;
        }
        CHECK(q.n_values == fz_model->n_in && q.values);
        for (uint32_t i = 0; i < q.n_values; i++)
            CHECK(isfinite(q.values[i]) && q.values[i] >= 0 && q.values[i] <= 1);
        CHECK(q.outputs && !(q.outputs & ~(unsigned)(SS_OUT_SPIKES | SS_OUT_READOUT |
                                                     SS_OUT_READOUT_ALL | SS_OUT_LAYERS)));
        free(q.values);
        break;
    }
    default:
        snapshot(d, n);
    }
    return 0;
}

#ifdef FUZZ_SEED_MAIN
static void seed(const char *dir, const char *name, uint8_t kind, const void *b, size_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f);
    fputc(kind, f);
    fwrite(b, 1, n, f);
    fclose(f);
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    fz_init();
    const char *dir = argv[1];
    const char *open_json = "{\"idle_timeout_s\": 30}";
    seed(dir, "open.json", 0, open_json, strlen(open_json));
    Spikeserve__OpenSessionRequest o = SPIKESERVE__OPEN_SESSION_REQUEST__INIT;
    o.has_idle_timeout_s = 1;
    o.idle_timeout_s = 30;
    uint8_t buf[4096];
    seed(dir, "open.pb", 1, buf, spikeserve__open_session_request__pack(&o, buf));
    const char *cj = "{\"values\": [0, 0.5, 1, 0.25, 0.75, 0.1], \"seed\": 7, "
                     "\"outputs\": [\"spikes\", \"readout_all\"]}";
    seed(dir, "classify.json", 2, cj, strlen(cj));
    float v[6] = {0, 0.5f, 1, 0.25f, 0.75f, 0.1f};
    char o1[] = "readout", o2[] = "layers";
    char *outs[2] = {o1, o2};
    Spikeserve__ClassifyRequest c = SPIKESERVE__CLASSIFY_REQUEST__INIT;
    c.n_values = 6;
    c.values = v;
    c.has_seed = 1;
    c.seed = 9;
    c.n_outputs = 2;
    c.outputs = outs;
    seed(dir, "classify.pb", 3, buf, spikeserve__classify_request__pack(&c, buf));
    /* a session stepped a little, with a stored answer */
    ss_sess *s = ss_sess_create("seed-session", fz_mv, 0, 60);
    ss_batch b;
    char err[256];
    const char *bj = "{\"seq\": 1, \"steps\": 5, \"events\": [[0, 1, 1.0], [2, 3, 0.5]]}";
    ss_limits lim = {64, 512, 0};
    CHECK(ss_batch_from_json(bj, strlen(bj), fz_model, &lim, &b, err, sizeof err) == 0);
    spk_spike sp[64];
    float ro[3];
    spk_output out = {{sp, 64, 0}, NULL, ro, 0, NULL};
    spk_input in = ss_batch_input(&b);
    CHECK(spk_step(s->state, &in, &out, fz_scratch, err, sizeof err) == 0);
    ss_result r = {s->id, 1, 1, 0, 5, b.outputs, fz_model, &out, NULL};
    ss_sess_set_last(s, ss_answer_make(&r));
    s->last_seq = 1;
    s->owner = 1234;
    uint8_t *snap;
    size_t len;
    CHECK(ss_store_encode(s, 1, &snap, &len, err, sizeof err) == 0);
    seed(dir, "snapshot.pb", 4, snap, len);
    free(snap);
    ss_batch_free(&b);
    ss_sess_unref(s);
    return 0;
}
#endif
