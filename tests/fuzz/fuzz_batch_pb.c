/* fuzz_batch_pb.c: libFuzzer harness for ss_batch_from_pb (see fuzz_batch_common.h).
 *
 * Also a differential check of its two halves (server/pbbatch.h): whatever the one-pass
 * reader accepts, the protobuf-c reference must accept with the same batch, bit for bit;
 * and ss_batch_from_pb must answer exactly as the reference does (code and message). */
#include "fuzz_batch_common.h"
#include "pbbatch.h"

static int same_batch(const ss_batch *a, const ss_batch *b) {
    if (a->has_seq != b->has_seq || a->seq != b->seq || a->steps != b->steps ||
        a->n_events != b->n_events || a->outputs != b->outputs || !a->dense != !b->dense ||
        !a->events != !b->events)
        return 0;
    if (a->n_events && memcmp(a->events, b->events, a->n_events * sizeof *a->events)) return 0;
    if (a->dense &&
        memcmp(a->dense, b->dense, (size_t)a->steps * fz_model->n_in * sizeof *a->dense))
        return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_init();
    ss_batch b, ref, fast;
    char err[256] = "", ref_err[256] = "";
    int rc = ss_batch_from_pb(data, size, fz_model, &fz_limits, &b, err, sizeof err);
    fz_check_rc(rc, err);
    int ref_rc = ss_batch_pb_ref(data, size, fz_model, &fz_limits, &ref, ref_err, sizeof ref_err);
    if (rc != ref_rc || (rc && strcmp(err, ref_err)))
        fz_die("ss_batch_from_pb and the reference disagree", ref_err);
    if (rc == 0 && !same_batch(&b, &ref))
        fz_die("ss_batch_from_pb and the reference decode different batches", NULL);
    int fast_rc = ss_batch_pb_fast(data, size, fz_model, &fz_limits, &fast);
    if (fast_rc != 0 && fast_rc != SS_PB_DECLINED) fz_die("fast path: bad code", NULL);
    if (fast_rc == 0) {
        if (ref_rc != 0) fz_die("fast path accepts what the reference rejects", ref_err);
        if (!same_batch(&fast, &ref)) fz_die("fast path and reference decode differently", NULL);
        ss_batch_free(&fast);
    } else if (fast.events || fast.dense || fast.n_events || fast.steps) {
        fz_die("fast path declined but left a batch", NULL);
    }
    if (rc == 0) {
        fz_exercise(&b);
        ss_batch_free(&b);
    }
    ss_batch_free(&ref);
    return 0;
}
