/* fuzz_batch_pb.c: libFuzzer harness for ss_batch_from_pb (see fuzz_batch_common.h). */
#include "fuzz_batch_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_init();
    ss_batch b;
    char err[256] = "";
    int rc = ss_batch_from_pb(data, size, fz_model, &fz_limits, &b, err, sizeof err);
    fz_check_rc(rc, err);
    if (rc == 0) {
        fz_exercise(&b);
        ss_batch_free(&b);
    }
    return 0;
}
