/* exec.c: what a worker does with a job.
 *
 * Grouping: jobs arrive in FIFO order. A run of STEP jobs on distinct sessions of one
 * model forms a group that goes to spk_step_many() in one call; any other job, a second
 * job of a session already in the group, or another model closes the group first. So
 * every session sees its jobs in arrival order.
 *
 * Output buffers come from one per-worker arena sized for the group from the limits of
 * each batch (spk_max_spikes); it only grows, outside the engine call.
 *
 * seq: last_seq + 1 runs; a repeat of last_seq answers with the stored result (protobuf
 * bytes, re-encoded to JSON when that is asked for) without stepping; anything else is 409.
 */
#include "exec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.pb-c.h"

#define MAX_GROUP 64
#define MAX_DEFER 64

struct ss_exec {
    ss_exec_env env;
    uint32_t worker;
    spk_scratch **scratch; /* per model */
    spk_state **spare;     /* per model, for INFER (made on first use) */
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
    x->scratch = calloc(env->n_models + 1, sizeof *x->scratch);
    x->spare = calloc(env->n_models + 1, sizeof *x->spare);
    if (!x->scratch || !x->spare) goto fail;
    for (size_t i = 0; i < env->n_models; i++)
        if (!(x->scratch[i] = spk_scratch_create(env->models[i]))) goto fail;
    return x;
fail:
    snprintf(err, errlen, "worker %u: out of memory", worker);
    ss_exec_free(x);
    return NULL;
}

void ss_exec_free(ss_exec *x) {
    if (!x) return;
    for (size_t i = 0; i < x->env.n_models; i++) {
        if (x->scratch) spk_scratch_free(x->scratch[i]);
        if (x->spare) spk_state_free(x->spare[i]);
    }
    free(x->scratch);
    free(x->spare);
    free(x->arena);
    free(x);
}

/* ---- output buffers ---- */

static size_t align16(size_t n) {
    return (n + 15) & ~(size_t)15;
}

static const spk_model *job_model(const ss_job *j) {
    return j->sess ? j->sess->model : j->model;
}

size_t ss_exec_out_bytes(const spk_model *m, const ss_batch *batch) {
    uint32_t steps = batch->steps, last = m->layers[m->n_layers - 1].n;
    size_t b = align16(spk_max_spikes(last, steps) * sizeof(spk_spike));
    if (batch->outputs & SS_OUT_LAYERS) {
        b += align16(m->n_layers * sizeof(spk_spike_buf));
        for (uint32_t l = 0; l < m->n_layers; l++)
            b += align16(spk_max_spikes(m->layers[l].n, steps) * sizeof(spk_spike));
    }
    if (m->has_readout)
        b += align16((size_t)m->readout.n * sizeof(float) *
                     ((batch->outputs & SS_OUT_READOUT_ALL) ? steps : 1));
    return b;
}

static size_t out_bytes(const ss_job *j) {
    return ss_exec_out_bytes(job_model(j), &j->batch);
}

static uint8_t *take(uint8_t **p, size_t n) {
    uint8_t *r = *p;
    *p += align16(n);
    return r;
}

static void out_setup(const ss_job *j, uint8_t **p, spk_output *o) {
    const spk_model *m = job_model(j);
    uint32_t steps = j->batch.steps, last = m->layers[m->n_layers - 1].n;
    memset(o, 0, sizeof *o);
    o->spikes.cap = spk_max_spikes(last, steps);
    o->spikes.buf = (spk_spike *)take(p, o->spikes.cap * sizeof(spk_spike));
    if (j->batch.outputs & SS_OUT_LAYERS) {
        o->layers = (spk_spike_buf *)take(p, m->n_layers * sizeof(spk_spike_buf));
        for (uint32_t l = 0; l < m->n_layers; l++) {
            o->layers[l].len = 0;
            o->layers[l].cap = spk_max_spikes(m->layers[l].n, steps);
            o->layers[l].buf = (spk_spike *)take(p, o->layers[l].cap * sizeof(spk_spike));
        }
    }
    if (m->has_readout) {
        o->readout_every_step = (j->batch.outputs & SS_OUT_READOUT_ALL) != 0;
        o->readout = (float *)take(p, (size_t)m->readout.n * sizeof(float) *
                                          (o->readout_every_step ? steps : 1));
    }
}

static int arena_fit(ss_exec *x, size_t need) {
    if (need <= x->arena_cap) return 0;
    size_t cap = x->arena_cap ? x->arena_cap : 65536;
    while (cap < need)
        cap *= 2;
    uint8_t *a = realloc(x->arena, cap);
    if (!a) return -1;
    x->arena = a;
    x->arena_cap = cap;
    return 0;
}

/* ---- replies ---- */

static void finish_step(ss_exec *x, ss_job *j, const spk_output *o, uint64_t t0) {
    ss_sess *s = j->sess;
    ss_result res = {s ? s->id : NULL, j->batch.has_seq, j->batch.seq, t0,
                     j->batch.steps,   j->batch.outputs, job_model(j), o};
    size_t len = 0, pblen = 0, jlen = 0;
    void *body = j->out_pb ? (void *)ss_result_pb(&res, &len) : (void *)ss_result_json(&res, &len);
    if (!body) {
        ss_reply_error(&j->reply, j->out_pb, 500, NULL, "out of memory encoding the result");
        return;
    }
    ss_metrics_batch(x->env.metrics, j->batch.steps, j->batch.n_events, o->spikes.len);
    if (s) {
        if (j->batch.has_seq) {
            uint8_t *pb = NULL;
            if (j->out_pb) {
                pb = malloc(len);
                if (pb) memcpy(pb, body, len), pblen = len;
            } else {
                pb = ss_result_pb(&res, &pblen);
            }
            free(s->last_pb);
            s->last_pb = pb;
            s->last_pb_len = pb ? pblen : 0;
            s->last_outputs = j->batch.outputs;
        }
        pthread_mutex_lock(&s->mu);
        s->t = spk_state_t(s->state);
        if (j->batch.has_seq) s->last_seq = j->batch.seq;
        s->active_ms = ss_util_now_ms();
        pthread_mutex_unlock(&s->mu);
        if (ss_sess_has_subs(s)) {
            char *json = j->out_pb ? ss_result_json(&res, &jlen) : NULL;
            const char *data = json ? json : (const char *)body;
            size_t dlen = json ? jlen : len;
            if (json) /* events are one line */
                for (size_t i = 0; i < jlen; i++)
                    if (json[i] == '\n') json[i] = ' ';
            if (data && (json || !j->out_pb)) {
                int dropped = ss_sess_publish(s, "step", data, dlen);
                while (dropped-- > 0)
                    ss_metrics_sse_dropped(x->env.metrics);
            }
            free(json);
        }
    }
    ss_reply_set(&j->reply, 200, j->out_pb ? SS_CT_PB : SS_CT_JSON, body, len);
}

/* The stored answer of last_seq in the format asked for. */
static void replay(ss_job *j) {
    ss_sess *s = j->sess;
    if (j->out_pb) {
        uint8_t *b = malloc(s->last_pb_len);
        if (!b) {
            ss_reply_error(&j->reply, 1, 500, NULL, "out of memory");
            return;
        }
        memcpy(b, s->last_pb, s->last_pb_len);
        ss_reply_set(&j->reply, 200, SS_CT_PB, b, s->last_pb_len);
        return;
    }
    Spikeserve__StepResult *r = spikeserve__step_result__unpack(NULL, s->last_pb_len, s->last_pb);
    if (!r) {
        ss_reply_error(&j->reply, 0, 500, NULL, "stored answer does not decode");
        return;
    }
    const spk_model *m = s->model;
    unsigned outs = s->last_outputs;
    if (!outs)
        outs = SS_OUT_SPIKES | (r->n_readout ? SS_OUT_READOUT : 0) |
               (r->n_readout_steps ? SS_OUT_READOUT_ALL : 0) | (r->n_layers ? SS_OUT_LAYERS : 0);
    spk_output o;
    memset(&o, 0, sizeof o);
    size_t nsp = r->n_spikes, total = nsp;
    for (size_t l = 0; l < r->n_layers; l++)
        total += r->layers[l]->n_spikes;
    spk_spike *sp = calloc(total + 1, sizeof *sp);
    spk_spike_buf *lb = calloc(m->n_layers, sizeof *lb);
    size_t nro = m->has_readout ? m->readout.n : 0;
    float *ro = calloc((size_t)nro * (r->n_readout_steps ? r->n_readout_steps : 1) + 1, sizeof *ro);
    if (!sp || !lb || !ro) {
        ss_reply_error(&j->reply, 0, 500, NULL, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nsp; i++)
        sp[i] = (spk_spike){r->spikes[i]->step, r->spikes[i]->neuron, r->spikes[i]->value};
    o.spikes = (spk_spike_buf){sp, nsp, nsp};
    size_t k = nsp;
    for (size_t l = 0; l < r->n_layers; l++) {
        uint32_t li = r->layers[l]->layer;
        if (li >= m->n_layers) continue;
        lb[li].buf = sp + k;
        for (size_t i = 0; i < r->layers[l]->n_spikes; i++, k++) {
            Spikeserve__OutputSpike *q = r->layers[l]->spikes[i];
            sp[k] = (spk_spike){q->step, q->neuron, q->value};
        }
        lb[li].len = lb[li].cap = (size_t)(sp + k - lb[li].buf);
    }
    if (outs & SS_OUT_LAYERS) o.layers = lb;
    if (nro) {
        if (r->n_readout_steps) {
            for (size_t st = 0; st < r->n_readout_steps; st++)
                for (size_t i = 0; i < nro && i < r->readout_steps[st]->n_values; i++)
                    ro[st * nro + i] = r->readout_steps[st]->values[i];
            o.readout_every_step = 1;
        } else {
            for (size_t i = 0; i < nro && i < r->n_readout; i++)
                ro[i] = r->readout[i];
        }
        o.readout = ro;
    }
    ss_result res = {s->id, r->has_seq, r->seq, r->t0, r->steps, outs, m, &o};
    size_t len;
    char *json = ss_result_json(&res, &len);
    if (json)
        ss_reply_set(&j->reply, 200, SS_CT_JSON, json, len);
    else
        ss_reply_error(&j->reply, 0, 500, NULL, "out of memory");
done:
    free(sp);
    free(lb);
    free(ro);
    spikeserve__step_result__free_unpacked(r, NULL);
}

/* 1 when the job should step; otherwise its reply is set. */
static int step_admit(ss_job *j) {
    ss_sess *s = j->sess;
    pthread_mutex_lock(&s->mu);
    int closed = s->closed;
    uint64_t last = s->last_seq;
    pthread_mutex_unlock(&s->mu);
    if (closed) {
        ss_reply_error(&j->reply, j->out_pb, 404, NULL, "session %s: not found (closed)", s->id);
        return 0;
    }
    if (!j->batch.has_seq || j->batch.seq == last + 1) return 1;
    if (j->batch.seq == last && s->last_pb) {
        replay(j);
        return 0;
    }
    ss_reply_error(&j->reply, j->out_pb, 409, "seq_conflict",
                   "seq %llu: expected %llu (last_seq is %llu)", (unsigned long long)j->batch.seq,
                   (unsigned long long)last + 1, (unsigned long long)last);
    return 0;
}

static void run_group(ss_exec *x, ss_job **g, size_t n) {
    spk_state *states[MAX_GROUP];
    spk_input in[MAX_GROUP];
    spk_output out[MAX_GROUP];
    uint64_t t0[MAX_GROUP];
    int rcs[MAX_GROUP];
    size_t need = 0;
    for (size_t k = 0; k < n; k++)
        need += out_bytes(g[k]);
    if (arena_fit(x, need) != 0) {
        for (size_t k = 0; k < n; k++)
            ss_reply_error(&g[k]->reply, g[k]->out_pb, 503, NULL, "out of memory for outputs");
        return;
    }
    uint8_t *p = x->arena;
    const spk_model *m = job_model(g[0]);
    uint32_t mi = g[0]->sess ? g[0]->sess->model_idx : g[0]->model_idx;
    for (size_t k = 0; k < n; k++) {
        if (g[k]->sess) {
            states[k] = g[k]->sess->state;
        } else {
            if (!x->spare[mi] && !(x->spare[mi] = spk_state_create(m))) {
                ss_reply_error(&g[k]->reply, g[k]->out_pb, 503, NULL, "out of memory");
                return;
            }
            spk_state_reset(x->spare[mi]);
            states[k] = x->spare[mi];
        }
        in[k] = ss_batch_input(&g[k]->batch);
        out_setup(g[k], &p, &out[k]);
        t0[k] = spk_state_t(states[k]);
        rcs[k] = 0;
    }
    char err[256] = "";
    if (n == 1)
        rcs[0] = spk_step(states[0], &in[0], &out[0], x->scratch[mi], err, sizeof err);
    else
        spk_step_many(states, in, out, n, x->scratch[mi], rcs, err, sizeof err);
    ss_metrics_group(x->env.metrics, n);
    for (size_t k = 0; k < n; k++) {
        if (rcs[k] == SPK_EINVAL)
            ss_reply_error(&g[k]->reply, g[k]->out_pb, 400, NULL, "%s", err);
        else if (rcs[k] != 0)
            ss_reply_error(&g[k]->reply, g[k]->out_pb, 500, NULL, "engine error %d: %s", rcs[k],
                           err);
        else
            finish_step(x, g[k], &out[k], t0[k]);
    }
    if (x->arena_cap > ((size_t)64 << 20)) { /* give a rare huge batch's memory back */
        free(x->arena);
        x->arena = NULL;
        x->arena_cap = 0;
    }
}

static void close_session(ss_exec *x, ss_sess *s, const char *reason, int expired) {
    pthread_mutex_lock(&s->mu);
    int was = s->closed;
    s->closed = 1;
    pthread_mutex_unlock(&s->mu);
    if (was) return;
    char err[256];
    if (x->env.wal && ss_wal_close(x->env.wal, s, err, sizeof err) != 0)
        fprintf(stderr, "spikeserve: session %s: %s\n", s->id, err);
    ss_sess_end_subs(s, reason);
    if (ss_table_remove(x->env.table, s)) ss_sess_unref(s);
    if (x->env.state_dir && *x->env.state_dir) ss_store_remove(x->env.state_dir, s->id);
    ss_metrics_session_closed(x->env.metrics, expired);
}

static void run_other(ss_exec *x, ss_job *j) {
    ss_sess *s = j->sess;
    char err[256];
    int closed = 0;
    if (s) {
        pthread_mutex_lock(&s->mu);
        closed = s->closed;
        pthread_mutex_unlock(&s->mu);
    }
    if (closed && j->kind != SS_JOB_EXPIRE && j->kind != SS_JOB_SAVE) {
        ss_reply_error(&j->reply, j->out_pb, 404, NULL, "session %s: not found (closed)", s->id);
        return;
    }
    switch (j->kind) {
    case SS_JOB_RESET:
        if (x->env.wal) {
            if (ss_wal_reset(x->env.wal, s, err, sizeof err) != 0) {
                ss_reply_error(&j->reply, j->out_pb, 503, NULL, "%s", err);
                break;
            }
            j->logged = 1;
        }
        /* seq starts over too: a client that numbers its batches from 1 again after a
         * reset must not get the stored answer of an earlier seq 1 */
        spk_state_reset(s->state);
        free(s->last_pb);
        s->last_pb = NULL;
        s->last_pb_len = 0;
        pthread_mutex_lock(&s->mu);
        s->t = 0;
        s->last_seq = 0;
        s->active_ms = ss_util_now_ms();
        pthread_mutex_unlock(&s->mu);
        ss_sess_end_subs(s, "reset");
        ss_wire_session(&j->reply, j->out_pb, 200, s);
        break;
    case SS_JOB_STATE_GET: {
        uint8_t *buf;
        size_t len;
        if (ss_store_encode(s, 0, &buf, &len, err, sizeof err) != 0)
            ss_reply_error(&j->reply, j->out_pb, 500, NULL, "%s", err);
        else
            ss_reply_set(&j->reply, 200, SS_CT_PB, buf, len);
        break;
    }
    case SS_JOB_STATE_PUT:
        if (ss_store_apply(s, &j->snap, err, sizeof err) != 0) {
            ss_reply_error(&j->reply, j->out_pb, 409, NULL, "%s", err);
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
                ss_reply_error(&j->reply, j->out_pb, 503, NULL, "%s", err);
                break;
            }
            s->wal_dirty = 1;
            j->logged = 1;
        }
        ss_sess_end_subs(s, "restored");
        ss_wire_session(&j->reply, j->out_pb, 200, s);
        break;
    case SS_JOB_CLOSE:
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
            fprintf(stderr, "spikeserve: saving session %s: %s\n", s->id, err);
            break;
        }
        pthread_mutex_lock(&s->mu);
        s->saved_ms = active; /* the janitor saves it again once it changes */
        pthread_mutex_unlock(&s->mu);
        break;
    }
    case SS_JOB_CHECKPOINT:
        if (x->env.wal && ss_wal_checkpoint(x->env.wal, x->worker, x->env.table, x->env.state_dir,
                                            err, sizeof err) != 0)
            fprintf(stderr, "spikeserve: worker %u checkpoint: %s\n", x->worker, err);
        break; /* flush() updates the log's size in /metrics */
    default:
        ss_reply_error(&j->reply, j->out_pb, 500, NULL, "bad job kind %d", (int)j->kind);
    }
}

static void complete(ss_job *j) {
    if (j->sess) {
        pthread_mutex_lock(&j->sess->mu);
        j->sess->pending--;
        pthread_mutex_unlock(&j->sess->mu);
    }
    if (j->done) j->done(j);
}

/* Answer the deferred jobs, after one sync of the write-ahead log for all of them (group
 * commit): nothing is acknowledged before its record is durable. */
/* The log's size for /metrics (with --wal). */
static void wal_size_metric(ss_exec *x) {
    if (x->env.wal)
        ss_metrics_wal_size(x->env.metrics, x->worker, ss_wal_size(x->env.wal, x->worker));
}

static void flush(ss_exec *x) {
    char err[256];
    if (x->env.wal && ss_wal_sync(x->env.wal, x->worker, err, sizeof err) != 0) {
        fprintf(stderr, "spikeserve: worker %u: %s\n", x->worker, err);
        for (size_t i = 0; i < x->n_defer; i++)
            if (x->defer[i]->logged && x->defer[i]->reply.status < 400) {
                ss_reply_clear(&x->defer[i]->reply);
                ss_reply_error(&x->defer[i]->reply, x->defer[i]->out_pb, 503, NULL, "%s", err);
            }
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
        ss_wal_size(x->env.wal, x->worker) > x->env.wal_max_bytes &&
        ss_wal_checkpoint(x->env.wal, x->worker, x->env.table, x->env.state_dir, err, sizeof err) !=
            0)
        fprintf(stderr, "spikeserve: worker %u checkpoint: %s\n", x->worker, err);
    wal_size_metric(x); /* again after a checkpoint, and after every run of checkpoint jobs */
}

static void defer(ss_exec *x, ss_job *j) {
    if (x->n_defer == MAX_DEFER) flush(x);
    x->defer[x->n_defer++] = j;
}

/* With a write-ahead log, a step is logged before it runs: 0, or -1 with a 503 reply. */
static int log_step(ss_exec *x, ss_job *j) {
    if (!x->env.wal || !j->sess) return 0;
    char err[256];
    if (ss_wal_step(x->env.wal, j->sess, spk_state_t(j->sess->state), &j->batch, err, sizeof err) !=
        0) {
        ss_reply_error(&j->reply, j->out_pb, 503, NULL, "%s", err);
        return -1;
    }
    j->logged = 1;
    return 0;
}

void ss_exec_run(ss_exec *x, ss_job **jobs, size_t n) {
    ss_job *g[MAX_GROUP];
    size_t gn = 0;
    const spk_model *gm = NULL;
    for (size_t i = 0; i <= n; i++) {
        ss_job *j = i < n ? jobs[i] : NULL;
        int joins = 0;
        if (j && gn < MAX_GROUP && (j->kind == SS_JOB_STEP || j->kind == SS_JOB_INFER) &&
            (gn == 0 || job_model(j) == gm)) {
            joins = 1;
            for (size_t k = 0; k < gn; k++)
                if (g[k]->sess == j->sess) joins = 0; /* same session or two INFERs */
        }
        if (!joins && gn) {
            run_group(x, g, gn);
            for (size_t k = 0; k < gn; k++)
                defer(x, g[k]);
            gn = 0;
        }
        if (!j) break;
        if (j->kind == SS_JOB_STEP || j->kind == SS_JOB_INFER) {
            /* the session's earlier jobs have run (a second job of a session in the group
             * closed it above), so its t now is this batch's t0 */
            if (j->kind == SS_JOB_INFER || (step_admit(j) && log_step(x, j) == 0)) {
                g[gn++] = j;
                gm = job_model(j);
            } else {
                defer(x, j);
            }
        } else {
            run_other(x, j);
            defer(x, j);
        }
    }
    flush(x);
}
