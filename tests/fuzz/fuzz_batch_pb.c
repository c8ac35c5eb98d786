/* fuzz_batch_pb.c: libFuzzer harness for ss_batch_from_pb (see fuzz_batch_common.h).
 *
 * Also a differential check of its two halves (server/pbbatch.h): whatever the one-pass
 * reader accepts, the protobuf-c reference must accept with the same batch, bit for bit;
 * and ss_batch_from_pb must answer exactly as the reference does (code and message). */
#include "fuzz_batch_common.h"
#include "pbbatch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_init();
    ss_batch b, ref, fast;
    char err[256] = "", ref_err[256] = "";
    int rc = ss_batch_from_pb(data, size, fz_model, &fz_limits, &b, err, sizeof err);
    fz_check_rc(rc, err);
    int ref_rc = ss_batch_pb_ref(data, size, fz_model, &fz_limits, &ref, ref_err, sizeof ref_err);
    int fast_rc = ss_batch_pb_fast(data, size, fz_model, &fz_limits, &fast);
    fz_differential("ss_batch_from_pb and the reference disagree", rc, err, &b, ref_rc, ref_err, &ref,
                    fast_rc, SS_PB_DECLINED, &fast);
    if (rc == 0) {
        fz_exercise(&b);
        ss_batch_free(&b);
    }
    ss_batch_free(&ref);
    return 0;
}
