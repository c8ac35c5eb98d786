/* exec.c: what a worker does with a job.
 *
 * Grouping: jobs arrive in FIFO order. A run of STEP jobs on distinct sessions of one
 * model forms a group that goes to spk_step_many() in one call; any other job, a second
 * job of a session already in the group, or another model closes the group first. So
 * every session sees its jobs in arrival order.
 *
 * A step joins a group only once everything it needs is in hand: admitted (seq), room for
 * its outputs in the worker's arena (sized by the engine's output plan), a spare state for
 * stateless runs, and, last, its record in the write-ahead log. So a batch that is refused
 * (503 out of memory) never reaches the log, and a logged batch always runs. The arena
 * grows to the largest group seen; one past 64 MiB is given back after its group ran.
 *
 * seq: apply.h decides; a repeat of last_seq is answered from the session's stored answer
 * in the format the retry asks for.
 */
#include "exec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer.h"
#include "apply.h"
#include "log.h"
#include "registry.h"

#define MAX_GROUP 64
#define MAX_DEFER 64
#define ARENA_KEEP ((size_t)64 << 20)

typedef struct {
    ss_job *jobs[MAX_GROUP];
    size_t n;
    const spk_model *model;
    uint32_t model_idx;
    size_t need; /* arena bytes of the group's outputs */
} group;

struct ss_exec {
    ss_exec_env env;
    uint32_t worker;
    /* per model version slot (registry.h), made on the first job of a version; gen says
     * which version they were made for (a slot is reused once a version is freed) */
    spk_scratch *scratch[SS_REG_SLOTS];
    spk_state *spare[SS_REG_SLOTS]; /* for INFER */
    uint64_t gen[SS_REG_SLOTS];
    uint8_t *arena;
    size_t arena_cap;
    ss_job *defer[MAX_DEFER]; /* run, answered after the write-ahead log is synced */
    size_t n_defer;
};

ss_job *ss_job_new(ss_job_kind kind) {
    ss_job *j = calloc(1, sizeof *j);
    if (j) j->kind = kind;
    return j;
}

void ss_job_free(ss_job *j) {
    if (!j) return;
    ss_batch_free(&j->batch);
    ss_store_snap_free(&j->snap);
    ss_reply_clear(&j->reply);
    ss_sess_unref(j->sess);
    ss_reg_unref(j->mv);
    if (j->fmt_free) j->fmt_free(j->fmt);
    free(j);
}

void ss_job_done_free(ss_job *j) {
    ss_job_free(j);
}

ss_exec *ss_exec_create(const ss_exec_env *env, uint32_t worker, char *err, size_t errlen) {
    ss_exec *x = calloc(1, sizeof *x);
    if (!x) goto fail;
    x->env = *env;
    x->worker = worker;
    return x;
fail:
    snprintf(err, errlen, "worker %u: out of memory", worker);
    ss_exec_free(x);
    return NULL;
}

void ss_exec_free(ss_exec *x) {
    if (!x) return;
    for (size_t i = 0; i < SS_REG_SLOTS; i++) {
        spk_scratch_free(x->scratch[i]);
        spk_state_free(x->spare[i]);
    }
    free(x->arena);
    free(x);
}

static const ss_codec *codec_of(const ss_job *j) {
    return j->codec ? j->codec : &ss_codec_json;
}

static const spk_model *job_model(const ss_job *j) {
    return j->sess ? j->sess->model : j->model;
}

static ss_mver *job_mv(const ss_job *j) {
    return j->sess ? j->sess->mv : j->mv;
}

/* The worker's scratch for version v's slot, made for v (not an earlier tenant of the
 * slot). 0 or -1 (out of memory). */
static int prepare(ss_exec *x, const ss_mver *v) {
    uint32_t i = v->slot;
    if (x->gen[i] == v->gen && x->scratch[i]) return 0;
    spk_scratch_free(x->scratch[i]);
    spk_state_free(x->spare[i]);
    x->spare[i] = NULL;
    x->gen[i] = v->gen;
    x->scratch[i] = spk_scratch_create(v->model);
    return x->scratch[i] ? 0 : -1;
}

static int arena_fit(ss_exec *x, size_t need) {
    if (need <= x->arena_cap) return 0;
    uint8_t *a = ss_util_grow(x->arena, &x->arena_cap, need, 65536);
    if (!a) return -1;
    x->arena = a;
    return 0;
}

/* ---- answers ---- */

static void publish(ss_exec *x, ss_sess *s, const ss_result *res, const ss_batch *input) {
    ss_result ev = *res;
    ev.input = input; /* event streams show what went in too */
    int dropped = ss_sess_publish(s, &ev);
    while (dropped-- > 0)
        ss_metrics_sse_dropped(x->env.metrics);
}

static void finish_step(ss_exec *x, ss_job *j, const spk_output *o, uint64_t t0) {
    ss_sess *s = j->sess;
    ss_result res = {s ? s->id : NULL,
                     j->batch.has_seq,
                     j->batch.seq,
                     t0,
                     j->batch.steps,
                     j->batch.outputs,
                     job_model(j),
                     o,
                     NULL,
                     j->fmt};
    ss_metrics_batch(x->env.metrics, j->batch.steps, j->batch.n_events, o->spikes.len);
    ss_mver *v = job_mv(j);
    __atomic_fetch_add(&v->batches, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&v->steps, j->batch.steps, __ATOMIC_RELAXED);
    if (s) {
        ss_apply_commit(s, &j->batch, t0, o);
        if (ss_sess_has_subs(s)) publish(x, s, &res, &j->batch);
    }
    size_t len = 0;
    uint8_t *body = codec_of(j)->result(&res, &len);
    ss_codec_reply(&j->reply, codec_of(j), 200, body, len);
}

/* The stored answer of last_seq again, in the format this request asks for. */
static void answer_again(ss_job *j) {
    ss_sess *s = j->sess;
    ss_result res = ss_answer_result(s->last, s->id, s->model);
    res.fmt = j->fmt;
    size_t len = 0;
    uint8_t *body = codec_of(j)->result(&res, &len);
    ss_codec_reply(&j->reply, codec_of(j), 200, body, len);
}

/* ---- steps ---- */

static void run_group(ss_exec *x, group *g) {
    spk_state *states[MAX_GROUP];
    spk_input in[MAX_GROUP];
    spk_output out[MAX_GROUP];
    uint64_t t0[MAX_GROUP];
    int rcs[MAX_GROUP];
    const spk_model *m = g->model;
    SS_ASSERT(g->n > 0 && g->n <= MAX_GROUP && g->need <= x->arena_cap);
    uint8_t *p = x->arena;
    for (size_t k = 0; k < g->n; k++) {
        ss_job *j = g->jobs[k];
        if (j->sess) {
            states[k] = j->sess->state;
        } else { /* one stateless run per group (two would share the spare state) */
            states[k] = x->spare[g->model_idx];
            spk_state_reset(states[k]);
        }
        in[k] = ss_batch_input(&j->batch);
        spk_output_layout(m, j->batch.steps, ss_batch_plan(j->batch.outputs), p, &out[k]);
        p += ss_batch_out_bytes(m, &j->batch);
        t0[k] = spk_state_t(states[k]);
        rcs[k] = 0;
    }
    char err[256] = "";
    if (g->n == 1)
        rcs[0] = spk_step(states[0], &in[0], &out[0], x->scratch[g->model_idx], err, sizeof err);
    else
        spk_step_many(states, in, out, g->n, x->scratch[g->model_idx], rcs, err, sizeof err);
    ss_metrics_group(x->env.metrics, g->n);
    int first = 1; /* err is the first failing job's message; the others get their own */
    for (size_t k = 0; k < g->n; k++) {
        ss_job *j = g->jobs[k];
        if (rcs[k] == 0) {
            finish_step(x, j, &out[k], t0[k]);
            continue;
        }
        char own[256];
        const char *msg = err;
        if (!first) {
            if (spk_input_check(m, &in[k], own, sizeof own) == 0)
                snprintf(own, sizeof own, "engine error %d", rcs[k]);
            msg = own;
        }
        first = 0;
        if (rcs[k] == SPK_EINVAL)
            ss_reply_fail(&j->reply, SS_E_INVALID, "%s", msg);
        else
            ss_reply_fail(&j->reply, SS_E_INTERNAL, "engine error %d: %s", rcs[k], msg);
    }
}

/* ---- other jobs ---- */

static void close_session(ss_exec *x, ss_sess *s, const char *reason, int expired) {
    pthread_mutex_lock(&s->mu);
    int was = s->closed;
    s->closed = 1;
    pthread_mutex_unlock(&s->mu);
    if (was) return;
    char err[256];
    if (x->env.wal && ss_wal_close(x->env.wal, s, err, sizeof err) != 0)
        ss_log(SS_LOG_ERROR, "session %s: %s", s->id, err);
    ss_sess_end_subs(s, reason);
    if (ss_table_remove(x->env.table, s)) ss_sess_unref(s);
    if (x->env.state_dir && *x->env.state_dir) ss_store_remove(x->env.state_dir, s->id);
    ss_metrics_session_closed(x->env.metrics, expired);
}

static void save_failed(ss_exec *x, int64_t n) {
    if (x->env.save_failures) __atomic_fetch_add(x->env.save_failures, n, __ATOMIC_RELAXED);
}

static void checkpoint(ss_exec *x) {
    char err[256];
    size_t failed = 0;
    if (ss_wal_checkpoint(x->env.wal, x->worker, x->env.table, x->env.state_dir, &failed, err,
                          sizeof err) != 0)
        ss_log(SS_LOG_ERROR, "worker %u checkpoint: %s", x->worker, err);
    save_failed(x, (int64_t)failed);
}

static void run_other(ss_exec *x, ss_job *j) {
    ss_sess *s = j->sess;
    const ss_codec *c = codec_of(j);
    char err[256];
    int closed = 0;
    if (s) {
        pthread_mutex_lock(&s->mu);
        closed = s->closed;
        pthread_mutex_unlock(&s->mu);
    }
    if (closed && j->kind != SS_JOB_EXPIRE && j->kind != SS_JOB_SAVE) {
        ss_reply_fail(&j->reply, SS_E_NOT_FOUND, "session %s: not found (closed)", s->id);
        return;
    }
    switch (j->kind) {
    case SS_JOB_RESET:
        if (x->env.wal) {
            if (ss_wal_reset(x->env.wal, s, err, sizeof err) != 0) {
                ss_reply_fail(&j->reply, SS_E_UNAVAILABLE, "%s", err);
                break;
            }
            j->logged = 1;
        }
        ss_apply_reset(s);
        ss_sess_end_subs(s, "reset");
        ss_codec_session_reply(&j->reply, c, 200, s);
        break;
    case SS_JOB_STATE_GET: {
        uint8_t *buf;
        size_t len;
        if (ss_store_encode(s, 0, &buf, &len, err, sizeof err) != 0)
            ss_reply_fail(&j->reply, SS_E_INTERNAL, "%s", err);
        else
            ss_reply_set(&j->reply, 200, SS_CT_PB, buf, len); /* always protobuf */
        break;
    }
    case SS_JOB_STATE_PUT:
        if (ss_store_apply(s, &j->snap, err, sizeof err) != 0) {
            ss_reply_fail(&j->reply, SS_E_CONFLICT, "%s", err);
            break;
        }
        if (x->env.wal) {
            uint8_t *buf;
            size_t len;
            int rc = ss_store_encode(s, 1, &buf, &len, err, sizeof err);
            if (rc == 0) {
                rc = ss_wal_snap(x->env.wal, s->worker, s->id, buf, len, err, sizeof err);
                free(buf);
            }
            if (rc != 0) {
                ss_reply_fail(&j->reply, SS_E_UNAVAILABLE, "%s", err);
                break;
            }
            s->wal_dirty = 1;
            j->logged = 1;
        }
        ss_sess_end_subs(s, "restored");
        ss_codec_session_reply(&j->reply, c, 200, s);
        break;
    case SS_JOB_CLOSE:
        if (j->tag == SS_CLOSE_MOVED)
            close_session(x, s, "moved", SS_CLOSED_MOVED);
        else
            close_session(x, s, "closed", 0);
        ss_reply_set(&j->reply, 204, NULL, NULL, 0);
        break;
    case SS_JOB_EXPIRE: {
        int64_t now = ss_util_now_ms();
        pthread_mutex_lock(&s->mu);
        int idle = !s->closed && s->pending <= 1 && s->idle_timeout_s &&
                   now - s->active_ms >= (int64_t)s->idle_timeout_s * 1000;
        pthread_mutex_unlock(&s->mu);
        if (idle) close_session(x, s, "expired", 1);
        break;
    }
    case SS_JOB_SAVE: {
        if (closed || !x->env.state_dir || !*x->env.state_dir) break;
        pthread_mutex_lock(&s->mu);
        int64_t active = s->active_ms;
        pthread_mutex_unlock(&s->mu);
        if (ss_store_save(x->env.state_dir, s, err, sizeof err) != 0) {
            ss_log(SS_LOG_ERROR, "saving session %s: %s", s->id, err);
            ss_reply_fail(&j->reply, SS_E_UNAVAILABLE, "%s", err);
            save_failed(x, 1);
            break;
        }
        pthread_mutex_lock(&s->mu);
        s->saved_ms = active; /* the janitor saves it again once it changes */
        pthread_mutex_unlock(&s->mu);
        break;
    }
    case SS_JOB_UNLOAD:
        close_session(x, s, "model version unloaded", 0);
        break;
    case SS_JOB_CHECKPOINT:
        if (x->env.wal) checkpoint(x);
        break; /* flush() updates the log's size in /metrics */
    default:
        ss_reply_fail(&j->reply, SS_E_INTERNAL, "bad job kind %d", (int)j->kind);
    }
}

/* ---- answering ---- */

static void complete(ss_job *j) {
    if (j->sess) {
        pthread_mutex_lock(&j->sess->mu);
        j->sess->pending--;
        pthread_mutex_unlock(&j->sess->mu);
    }
    if (j->done) j->done(j);
}

/* The log's size for /metrics (with --wal). */
static void wal_size_metric(ss_exec *x) {
    if (x->env.wal)
        ss_metrics_wal_size(x->env.metrics, x->worker, ss_wal_size(x->env.wal, x->worker));
}

/* Answer the deferred jobs, after one sync of the write-ahead log for all of them (group
 * commit): nothing is acknowledged before its record is durable. */
static void flush(ss_exec *x) {
    char err[256];
    if (x->env.wal && ss_wal_sync(x->env.wal, x->worker, err, sizeof err) != 0) {
        ss_log(SS_LOG_ERROR, "worker %u: %s", x->worker, err);
        for (size_t i = 0; i < x->n_defer; i++)
            if (x->defer[i]->logged && x->defer[i]->reply.status < 400)
                ss_reply_fail(&x->defer[i]->reply, SS_E_UNAVAILABLE, "%s", err);
    }
    /* before the answers go out: a client that reads /metrics after its answer finds its
     * batch counted (set after them, a quick client raced it) */
    wal_size_metric(x);
    for (size_t i = 0; i < x->n_defer; i++)
        complete(x->defer[i]);
    x->n_defer = 0;
    /* the log's disk space is bounded too: past --wal-max-bytes this worker saves the
     * sessions its log holds and empties it, without waiting for the interval */
    if (x->env.wal && x->env.wal_max_bytes &&
        ss_wal_size(x->env.wal, x->worker) > x->env.wal_max_bytes)
        checkpoint(x);
    wal_size_metric(x); /* again after a checkpoint, and after every run of checkpoint jobs */
}

static void defer(ss_exec *x, ss_job *j) {
    if (x->n_defer == MAX_DEFER) flush(x);
    x->defer[x->n_defer++] = j;
}

static void group_flush(ss_exec *x, group *g) {
    if (!g->n) return;
    run_group(x, g);
    for (size_t k = 0; k < g->n; k++)
        defer(x, g->jobs[k]);
    g->n = 0;
    g->need = 0;
    if (x->arena_cap > ARENA_KEEP) { /* give a rare huge batch's memory back */
        free(x->arena);
        x->arena = NULL;
        x->arena_cap = 0;
    }
}

/* 1 when j may join g (same model, room, not a second job of a session in it). */
static int joins(const group *g, const ss_job *j) {
    if (g->n == MAX_GROUP || (g->n && job_model(j) != g->model)) return 0;
    for (size_t k = 0; k < g->n; k++)
        if (g->jobs[k]->sess == j->sess) return 0; /* same session, or two stateless runs */
    return 1;
}

/* Everything a step needs before it may join g: 1 joined; 0 answered (deferred). */
static int admit_step(ss_exec *x, group *g, ss_job *j) {
    char err[256];
    if (j->kind == SS_JOB_STEP) {
        int a = ss_apply_admit(j->sess, &j->batch, err, sizeof err);
        if (a == SS_ADMIT_REPEAT) answer_again(j);
        if (a < 0) ss_reply_fail(&j->reply, a, "%s", err);
        if (a != SS_ADMIT_RUN) return 0;
    }
    const spk_model *m = job_model(j);
    uint32_t mi = job_mv(j)->slot;
    if (prepare(x, job_mv(j)) != 0) {
        ss_reply_fail(&j->reply, SS_E_NOMEM, "out of memory for the scratch of model %s", m->name);
        return 0;
    }
    size_t need = g->need + ss_batch_out_bytes(m, &j->batch);
    if (need < g->need || arena_fit(x, need) != 0) {
        ss_reply_fail(&j->reply, SS_E_NOMEM, "out of memory for the outputs of %u steps",
                      j->batch.steps);
        return 0;
    }
    if (!j->sess && !x->spare[mi] && !(x->spare[mi] = spk_state_create(m))) {
        ss_reply_fail(&j->reply, SS_E_NOMEM, "out of memory for a state of model %s", m->name);
        return 0;
    }
    /* last: once logged, the batch runs */
    if (x->env.wal && j->sess) {
        if (ss_wal_step(x->env.wal, j->sess, spk_state_t(j->sess->state), &j->batch, err,
                        sizeof err) != 0) {
            ss_reply_fail(&j->reply, SS_E_UNAVAILABLE, "%s", err);
            return 0;
        }
        j->logged = 1;
    }
    g->jobs[g->n++] = j;
    g->model = m;
    g->model_idx = mi;
    g->need = need;
    return 1;
}

/* 1 when j changes a session that is moving away (cluster.h): its snapshot is taken or being
 * taken, so the change would be lost. */
static int moving_away(const ss_job *j) {
    int changes = j->kind == SS_JOB_STEP || j->kind == SS_JOB_RESET ||
                  j->kind == SS_JOB_STATE_PUT ||
                  (j->kind == SS_JOB_CLOSE && j->tag != SS_CLOSE_MOVED);
    if (!changes || !j->sess) return 0;
    pthread_mutex_lock(&j->sess->mu);
    int m = j->sess->moving;
    pthread_mutex_unlock(&j->sess->mu);
    return m;
}

void ss_exec_run(ss_exec *x, ss_job **jobs, size_t n) {
    group g = {.n = 0};
    for (size_t i = 0; i < n; i++) {
        ss_job *j = jobs[i];
        if (__atomic_load_n(&j->cancelled, __ATOMIC_RELAXED)) {
            ss_reply_fail(&j->reply, SS_E_UNAVAILABLE, "cancelled by the client before it ran");
            defer(x, j);
            continue;
        }
        if (moving_away(j)) { /* queued before its move began, after its snapshot */
            ss_reply_fail(&j->reply, SS_E_NOT_OWNER,
                          "session %s is moving to another replica; retry", j->sess->id);
            defer(x, j);
            continue;
        }
        int step = j->kind == SS_JOB_STEP || j->kind == SS_JOB_INFER;
        if (!step || !joins(&g, j)) group_flush(x, &g);
        if (!step) {
            run_other(x, j);
            defer(x, j);
        } else if (!admit_step(x, &g, j)) {
            /* the session's earlier jobs have run (a second job of a session in the group
             * closed it above), so admission saw its latest seq */
            defer(x, j);
        }
    }
    group_flush(x, &g);
    flush(x);
}
