/* apply.h: applying a spike batch to a session, in one place. Live execution (exec.c) and
 * write-ahead log replay (wal.c) both go through it, so a replayed batch leaves a session
 * exactly as the live one did: admit (seq rules), run (the engine, outputs laid out by its
 * plan), commit (the answer kept for retries, t, last_seq, activity).
 * Thread-safety: worker-only (the session's worker), except where a function says so.
 */
#ifndef SS_APPLY_H
#define SS_APPLY_H

#include "batch.h"
#include "session.h"

enum { SS_ADMIT_RUN = 1, SS_ADMIT_REPEAT = 2 };

/* May batch b run on s now? SS_ADMIT_RUN; SS_ADMIT_REPEAT when b repeats last_seq and the
 * answer to give is s->last; or an ss_err with a message: SS_E_NOT_FOUND (closed),
 * SS_E_SEQ (out of order). */
int ss_apply_admit(ss_sess *s, const ss_batch *b, char *err, size_t errlen);

/* After the engine ran b on s's state from t0 (outputs o): keep the answer when b has a seq,
 * and move t, last_seq and the activity time. */
void ss_apply_commit(ss_sess *s, const ss_batch *b, uint64_t t0, const spk_output *o);

/* Run b on s with outputs laid out in mem (ss_batch_out_bytes() bytes, 16-byte aligned) and
 * commit: 0, or an ss_err with a message (the state is as it was). *t0 gets the start. */
int ss_apply_run(ss_sess *s, const ss_batch *b, spk_scratch *sc, void *mem, spk_output *o,
                 uint64_t *t0, char *err, size_t errlen);

/* Reset s to the model's initial state: t = 0, last_seq = 0 (a client that numbers its
 * batches from 1 again after a reset must not get an earlier seq 1's answer). */
void ss_apply_reset(ss_sess *s);

#endif
