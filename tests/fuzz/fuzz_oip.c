/* fuzz_oip.c: libFuzzer harness for the OIP infer decoder (server/oip.h: ss_oip_decode),
 * the v2 JSON header and the binary tensor tail together.
 *
 * Input: two bytes (little-endian) give the JSON header's length (as
 * Inference-Header-Content-Length would; clamped to the rest), the rest is the body. The
 * model is fuzz_batch_common.h's (6 inputs, a 3-class readout). Whatever the decoder
 * accepts must be a valid engine input (it is stepped; fz_exercise aborts otherwise), and its
 * answer encoded by ss_codec_oip must be a JSON header that parses, followed by exactly the
 * binary bytes its outputs announce. A refusal must say why.
 *
 * Also a differential check of its two halves (server/oipscan.h): ss_oip_decode must answer
 * exactly as the jansson reference does (code, message, batch, options, sequence), and
 * whatever the one-pass scanner accepts, the reference must accept identically. */
#include "fuzz_batch_common.h"
#include "oip.h"
#include "oipscan.h"

/* The same answer options and sequence parameters (fmt's request fields). */
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

static void check_answer(const ss_batch *b, ss_oip_fmt *fmt) {
    const spk_model *m = fz_model;
    spk_output out = {{0}, NULL, NULL, 0, NULL};
    char err[256];
    out.spikes.cap = spk_max_spikes(m->layers[m->n_layers - 1].n, b->steps);
    out.spikes.buf = malloc(out.spikes.cap * sizeof(spk_spike));
    float *readout = malloc((size_t)m->readout.n * b->steps * sizeof(float));
    if (b->outputs & (SS_OUT_READOUT | SS_OUT_READOUT_ALL)) {
        out.readout_every_step = (b->outputs & SS_OUT_READOUT_ALL) != 0;
        out.readout = readout;
    }
    spk_state_reset(fz_state);
    spk_input in = ss_batch_input(b);
    if (spk_step(fz_state, &in, &out, fz_scratch, err, sizeof err)) fz_die("step", err);
    ss_result r = {NULL, 0, 0, 0, b->steps, b->outputs, m, &out, NULL, fmt};
    size_t len = 0;
    uint8_t *body = ss_codec_oip.result(&r, &len);
    if (!body) fz_die("oip encoder", "NULL");
    if (fmt->head_len > len) fz_die("oip encoder", "header longer than the body");
    json_error_t je;
    json_t *doc = json_loadb((const char *)body, fmt->head_len, 0, &je);
    if (!doc) fz_die("oip answer header does not parse", je.text);
    size_t tail = 0;
    json_t *outs = json_object_get(doc, "outputs");
    if (json_array_size(outs) != fmt->n_out) fz_die("oip answer", "wrong number of outputs");
    for (size_t i = 0; i < json_array_size(outs); i++) {
        json_t *p = json_object_get(json_array_get(outs, i), "parameters");
        json_t *s = p ? json_object_get(p, "binary_data_size") : NULL;
        if (s) tail += (size_t)json_integer_value(s);
    }
    if (fmt->head_len + tail != len) fz_die("oip answer", "binary sizes do not add up");
    json_decref(doc);
    free(body);
    free(out.spikes.buf);
    free(readout);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_init();
    if (size < 2) return 0;
    size_t head = (size_t)data[0] | (size_t)data[1] << 8;
    const uint8_t *body = data + 2;
    size_t len = size - 2;
    if (head > len) head = len;
    ss_batch b;
    ss_oip_fmt fmt;
    ss_oip_seq seq;
    char err[256] = "";
    int rc = ss_oip_decode(body, head, body + head, len - head, fz_model, &fz_limits, &b, &fmt,
                           &seq, err, sizeof err);
    ss_batch ref, fast;
    ss_oip_fmt ref_fmt, fast_fmt;
    ss_oip_seq ref_seq, fast_seq;
    char ref_err[256] = "";
    int ref_rc = ss_oip_decode_ref(body, head, body + head, len - head, fz_model, &fz_limits, &ref,
                                   &ref_fmt, &ref_seq, ref_err, sizeof ref_err);
    int fast_rc = ss_oip_decode_fast(body, head, body + head, len - head, fz_model, &fz_limits,
                                     &fast, &fast_fmt, &fast_seq);
    if (rc == 0 && ref_rc == 0 && !same_request(&fmt, &seq, &ref_fmt, &ref_seq))
        fz_die("ss_oip_decode and the reference decode different options", NULL);
    if (fast_rc == 0 && ref_rc == 0 && !same_request(&fast_fmt, &fast_seq, &ref_fmt, &ref_seq))
        fz_die("fast path and reference decode different options", NULL);
    if (fast_rc != 0 && (fast_fmt.n_out || fast_fmt.id[0] || fast_seq.has_id || fast_seq.start))
        fz_die("fast path declined but left options", NULL);
    fz_differential("ss_oip_decode and the reference disagree", rc, err, &b, ref_rc, ref_err, &ref,
                    fast_rc, SS_OIP_DECLINED, &fast);
    if (ref_rc == 0) ss_batch_free(&ref);
    if (rc != 0) {
        if (!err[0]) fz_die("refused without a message", NULL);
        if (rc != SS_E_INVALID && rc != SS_E_LIMIT && rc != SS_E_NOMEM) fz_die("bad code", err);
        return 0;
    }
    if (b.steps < 1 || b.steps > fz_limits.max_steps) fz_die("steps out of the limits", NULL);
    if (fmt.head != &fmt.head_len) fz_die("fmt.head not set", NULL);
    fz_exercise(&b);
    check_answer(&b, &fmt);
    ss_batch_free(&b);
    return 0;
}
