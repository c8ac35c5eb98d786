/* codec.c: what the codecs share. */
#include "codec.h"

#include <math.h>
#include <stdio.h>

int ss_classify_check(const float *v, size_t n, const spk_model *m, char *err, size_t errlen) {
    if (n != m->n_in) {
        snprintf(err, errlen, "values: %zu values, expected %u (the model's input size)", n,
                 m->n_in);
        return SS_E_INVALID;
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]) || v[i] < 0 || v[i] > 1) {
            snprintf(err, errlen, "values[%zu]: %g not in [0, 1]", i, (double)v[i]);
            return SS_E_INVALID;
        }
    return 0;
}

void ss_codec_reply(ss_reply *r, const ss_codec *c, unsigned status, uint8_t *body, size_t len) {
    if (body)
        ss_reply_set(r, status, c->ctype, body, len);
    else
        ss_reply_fail(r, SS_E_NOMEM, "out of memory encoding the answer");
}

void ss_codec_session_reply(ss_reply *r, const ss_codec *c, unsigned status, ss_sess *s) {
    ss_sess_info info;
    ss_sess_info_get(s, &info);
    size_t len = 0;
    uint8_t *body = c->session(&info, &len);
    ss_codec_reply(r, c, status, body, len);
}
