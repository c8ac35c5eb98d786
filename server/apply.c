/* apply.c: see apply.h. The session's metadata (t, last_seq, activity) is written under its
 * lock because HTTP threads read it; the state and the stored answer are the worker's. */
#include "apply.h"

#include <stdio.h>

#include "answer.h"

int ss_apply_admit(ss_sess *s, const ss_batch *b, char *err, size_t errlen) {
    pthread_mutex_lock(&s->mu);
    int closed = s->closed;
    uint64_t last = s->last_seq;
    pthread_mutex_unlock(&s->mu);
    if (closed) {
        snprintf(err, errlen, "session %s: not found (closed)", s->id);
        return SS_E_NOT_FOUND;
    }
    if (!b->has_seq || b->seq == last + 1) return SS_ADMIT_RUN;
    if (b->seq == last && s->last) return SS_ADMIT_REPEAT;
    snprintf(err, errlen, "seq %llu: expected %llu (last_seq is %llu)", (unsigned long long)b->seq,
             (unsigned long long)last + 1, (unsigned long long)last);
    return SS_E_SEQ;
}

void ss_apply_commit(ss_sess *s, const ss_batch *b, uint64_t t0, const spk_output *o) {
    if (b->has_seq) {
        ss_result res = {s->id, 1, b->seq, t0, b->steps, b->outputs, s->model, o, NULL, NULL};
        /* out of memory: no stored answer, and a retry of this seq gets a 409 */
        ss_sess_set_last(s, ss_answer_make(&res));
    }
    pthread_mutex_lock(&s->mu);
    s->t = spk_state_t(s->state);
    if (b->has_seq) s->last_seq = b->seq;
    s->active_ms = ss_util_now_ms();
    pthread_mutex_unlock(&s->mu);
}

int ss_apply_run(ss_sess *s, const ss_batch *b, spk_scratch *sc, void *mem, spk_output *o,
                 uint64_t *t0, char *err, size_t errlen) {
    spk_output_layout(s->model, b->steps, ss_batch_plan(b->outputs), mem, o);
    spk_input in = ss_batch_input(b);
    *t0 = spk_state_t(s->state);
    int rc = spk_step(s->state, &in, o, sc, err, errlen);
    if (rc != 0) return rc == SPK_EINVAL ? SS_E_INVALID : SS_E_INTERNAL;
    ss_apply_commit(s, b, *t0, o);
    return 0;
}

void ss_apply_reset(ss_sess *s) {
    spk_state_reset(s->state);
    ss_sess_set_last(s, NULL);
    pthread_mutex_lock(&s->mu);
    s->t = 0;
    s->last_seq = 0;
    s->active_ms = ss_util_now_ms();
    pthread_mutex_unlock(&s->mu);
}
