/* fuzz_batch_json.c: libFuzzer harness for ss_batch_from_json (see fuzz_batch_common.h).
 *
 * Also a differential check of its two halves (server/jsonscan.h): whatever the one-pass
 * scanner accepts, the jansson reference must accept with the same batch, bit for bit; and
 * ss_batch_from_json must answer exactly as the reference does (code and message). */
#include "fuzz_batch_common.h"
#include "jsonscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_init();
    const char *j = (const char *)data;
    ss_batch b, ref, fast;
    char err[256] = "", ref_err[256] = "";
    int rc = ss_batch_from_json(j, size, fz_model, &fz_limits, &b, err, sizeof err);
    fz_check_rc(rc, err);
    int ref_rc = ss_batch_json_ref(j, size, fz_model, &fz_limits, &ref, ref_err, sizeof ref_err);
    int fast_rc = ss_batch_json_fast(j, size, fz_model, &fz_limits, &fast);
    fz_differential("ss_batch_from_json and the reference disagree", rc, err, &b, ref_rc, ref_err, &ref,
                    fast_rc, SS_JSON_DECLINED, &fast);
    if (rc == 0) {
        fz_exercise(&b);
        ss_batch_free(&b);
    }
    ss_batch_free(&ref);
    return 0;
}
