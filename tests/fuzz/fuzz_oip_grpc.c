/* fuzz_oip_grpc.c: libFuzzer harness for the OIP gRPC request translation
 * (server/oip_grpc.h: ss_oipg_rest_body), a ModelInferRequest message into the REST infer
 * body, followed by the REST decoder (ss_oip_decode) on what it wrote.
 *
 * Input: the message bytes. A refusal must say why, with SS_E_INVALID or SS_E_NOMEM. A body
 * must have its header first and, when every byte of the header is ASCII (protobuf strings
 * are not checked for UTF-8; the REST decoder refuses those), the header must be one JSON
 * object whose inputs' binary_data_size add up to the tail exactly. Whatever the decoder
 * then accepts must be a valid engine input (fz_exercise steps it). */
#include "fuzz_batch_common.h"
#include "oip.h"
#include "oip_grpc.h"

static void check_header(const uint8_t *body, size_t head, size_t len) {
    for (size_t i = 0; i < head; i++)
        if (body[i] >= 0x80) return;
    json_error_t je;
    json_t *doc = json_loadb((const char *)body, head, JSON_REJECT_DUPLICATES, &je);
    if (!doc || !json_is_object(doc)) fz_die("the header written is not a JSON object", je.text);
    size_t tail = 0;
    json_t *ins = json_object_get(doc, "inputs");
    for (size_t i = 0; i < json_array_size(ins); i++) {
        json_t *p = json_object_get(json_array_get(ins, i), "parameters");
        json_t *s = json_object_get(p, "binary_data_size");
        if (!json_is_integer(s) || json_integer_value(s) < 0)
            fz_die("an input without its size", NULL);
        tail += (size_t)json_integer_value(s);
    }
    if (head + tail != len) fz_die("binary sizes do not add up to the tail", NULL);
    json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_init();
    uint8_t *body = NULL;
    size_t head = 0, len = 0;
    char err[512] = "";
    int rc = ss_oipg_rest_body(data, size, &body, &head, &len, err, sizeof err);
    if (rc != 0) {
        if (!err[0]) fz_die("refused without a message", NULL);
        if (rc != SS_E_INVALID && rc != SS_E_NOMEM) fz_die("bad code", err);
        if (body) fz_die("refused but left a body", err);
        return 0;
    }
    if (head > len) fz_die("header longer than the body", NULL);
    check_header(body, head, len);
    ss_batch b;
    ss_oip_fmt fmt;
    ss_oip_seq seq;
    err[0] = 0;
    rc = ss_oip_decode(body, head, body + head, len - head, fz_model, &fz_limits, &b, &fmt, &seq,
                       err, sizeof err);
    free(body);
    if (rc != 0) {
        if (!err[0]) fz_die("the decoder refused without a message", NULL);
        return 0;
    }
    for (unsigned k = 0; k < fmt.n_out; k++)
        if (!fmt.out[k].binary) fz_die("a gRPC output not asked as binary", NULL);
    fz_exercise(&b);
    ss_batch_free(&b);
    return 0;
}
