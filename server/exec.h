/* exec.h: jobs and the code a worker runs for them.
 *
 * A job is self-contained: it holds a reference to its session (or its model for stateless
 * runs), its decoded input and the codec its answer is written in, and receives its reply
 * (an error stays data: reply.h). The worker that owns the session runs it (pool.h) and then
 * calls job->done, which hands the reply back to the front end that submitted it. Steps of
 * several sessions of one model that are ready together run in one spk_step_many() call;
 * each session's jobs still run in arrival order. Batches are applied through apply.h.
 *
 * Thread-safety: a ss_exec is one worker's private context (scratch, output arena, spare
 * states, per model version slot: made on a version's first job); only that worker uses it.
 */
#ifndef SS_EXEC_H
#define SS_EXEC_H

#include "batch.h"
#include "codec.h"
#include "metrics.h"
#include "reply.h"
#include "session.h"
#include "store.h"
#include "wal.h"

typedef enum {
    SS_JOB_STEP,       /* sess, batch: run (or answer a seq retry) */
    SS_JOB_INFER,      /* model, batch: run on a fresh state */
    SS_JOB_RESET,      /* sess */
    SS_JOB_STATE_GET,  /* sess: reply with its SessionSnapshot */
    SS_JOB_STATE_PUT,  /* sess, snap: restore into it */
    SS_JOB_CLOSE,      /* sess: DELETE (tag SS_CLOSE_MOVED: it moved to another replica) */
    SS_JOB_EXPIRE,     /* sess: close it if it is still idle */
    SS_JOB_SAVE,       /* sess: write it to the state directory */
    SS_JOB_CHECKPOINT, /* no session: save this worker's sessions in its log, empty the log */
    SS_JOB_UNLOAD,     /* sess: close it, its model version is being unloaded (drain) */
} ss_job_kind;

#define SS_CLOSE_MOVED 1 /* tag of a CLOSE job of a move (cluster.h) */

typedef struct ss_job ss_job;
struct ss_job {
    ss_job_kind kind;
    ss_job *next;
    ss_sess *sess;          /* a reference, or NULL */
    const spk_model *model; /* INFER: mv->model */
    uint32_t model_idx;     /* mv->slot */
    struct ss_mver *mv;     /* INFER: a reference (registry.h) */
    ss_batch batch;
    const ss_codec *codec; /* the answer's format (NULL: JSON) */
    void *fmt;             /* the request's options for that codec (ss_result.fmt), or NULL */
    void (*fmt_free)(void *fmt); /* frees fmt with the job (NULL: not owned) */
    ss_snap snap;          /* STATE_PUT */
    uint64_t tag;          /* the submitter's (stream: line number) */
    int logged;            /* its change is in the write-ahead log (answered after the sync) */
    int cancelled;         /* atomic: the caller is gone (gRPC cancel, deadline): a job that
                              has not started is answered without running */
    ss_reply reply;
    void (*done)(ss_job *j); /* called by the worker when the reply is ready */
    void *ctx;
};

ss_job *ss_job_new(ss_job_kind kind);
void ss_job_free(ss_job *j);      /* batch, snapshot, reply, session reference; NULL is a no-op */
void ss_job_done_free(ss_job *j); /* a `done` that just frees the job */

typedef struct {
    ss_table *table;
    ss_metrics *metrics;
    const char *state_dir; /* "" or NULL: none */
    ss_wal *wal;            /* NULL: no write-ahead log (--wal 0) */
    uint64_t wal_max_bytes; /* a worker whose log grows past this checkpoints at once */
    int64_t *save_failures; /* atomic: sessions a SAVE or CHECKPOINT could not write */
} ss_exec_env;

typedef struct ss_exec ss_exec;
ss_exec *ss_exec_create(const ss_exec_env *env, uint32_t worker, char *err, size_t errlen);
void ss_exec_free(ss_exec *x);
/* Run jobs[0..n) in order (grouping steps where that keeps each session's order) and call
 * every job's done. */
void ss_exec_run(ss_exec *x, ss_job **jobs, size_t n);

#endif
