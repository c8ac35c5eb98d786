/* ops.c: one function per operation of SPEC.md section 3. Everything that touches a
 * session's state becomes a job for the session's worker; the rest answers at once. The
 * rules (lookup, ownership, limits, seq) live here and in apply.c, never in a front end. */
#include "ops.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/encode.h"
#include "registry.h"
#include "cluster.h"
#include "store.h"

static int now_fail(ss_op *o, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int now_fail(ss_op *o, int err, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ss_reply_fail(&o->reply, err, "%s", msg);
    return SS_OP_NOW;
}

static int now_body(ss_op *o, unsigned status, uint8_t *body, size_t len) {
    ss_codec_reply(&o->reply, o->out, status, body, len);
    return SS_OP_NOW;
}

static int now_json(ss_op *o, unsigned status, const char *text) {
    char *b = strdup(text);
    if (!b) return now_fail(o, SS_E_NOMEM, "out of memory");
    ss_reply_set(&o->reply, status, SS_CT_JSON, b, strlen(b));
    return SS_OP_NOW;
}

static ss_limits limits(const ss_app *a) {
    ss_limits lim = {a->cfg.max_steps, a->cfg.max_events, a->cfg.max_output_bytes};
    return lim;
}

int ss_op_authenticate(ss_op *o, const char *authorization) {
    int rc = ss_auth_check(o->app->auth, authorization, &o->owner);
    if (rc == 0) return 0;
    ss_reply_fail(&o->reply, SS_E_UNAUTHENTICATED, "%s",
                  rc == -1 ? "an API key is needed: Authorization: Bearer KEY" : "unknown API key");
    return SS_E_UNAUTHENTICATED;
}

ss_sess *ss_op_session(ss_op *o) {
    int moving = 0;
    ss_sess *s = ss_table_get(o->app->table, o->sid);
    if (s) {
        pthread_mutex_lock(&s->mu);
        int closed = s->closed;
        moving = s->moving;
        pthread_mutex_unlock(&s->mu);
        if (!closed && !moving && ss_sess_visible(s, o->owner)) {
            ss_sess_touch(s);
            return s;
        }
        ss_sess_unref(s);
    }
    if (moving) {
        ss_reply_fail(&o->reply, SS_E_NOT_OWNER,
                      "session %.64s is moving to another replica; retry", o->sid);
        return NULL;
    }
    if (ss_cluster_elsewhere(o->app, o->sid, &o->reply)) return NULL; /* cluster.h */
    ss_reply_fail(&o->reply, SS_E_NOT_FOUND, "session %.64s: not found", o->sid);
    return NULL;
}

ss_mver *ss_op_model_version(ss_op *o, uint32_t version) {
    ss_mver *v = ss_app_model(o->app, o->model, version);
    if (v) return v;
    ss_mver *any = version ? ss_app_model(o->app, o->model, 0) : NULL;
    if (any)
        ss_reply_fail(&o->reply, SS_E_NOT_FOUND, "model %s: version %u not loaded (latest %u)",
                      o->model, version, any->version);
    else
        ss_reply_fail(&o->reply, SS_E_NOT_FOUND, "model %s: not found", o->model);
    ss_reg_unref(any);
    return NULL;
}

/* The model {model} at its latest version: a reference, or NULL with o->reply set. */
static ss_mver *find_model(ss_op *o) {
    return ss_op_model_version(o, 0);
}

int ss_op_submit(ss_op *o, ss_job *j, uint32_t w) {
    j->codec = o->out;
    j->done = o->done;
    j->ctx = o->ctx;
    o->job = j;
    if (o->queuing) o->queuing(o); /* before the worker can answer */
    int rc = ss_pool_submit(o->app->pool, w, j, j->kind == SS_JOB_CLOSE);
    if (rc == SS_POOL_EFULL)
        ss_reply_fail(&j->reply, SS_E_QUEUE_FULL,
                      "worker %u queue is full (--queue-depth %u); retry later", w,
                      o->app->cfg.queue_depth);
    else if (rc != 0)
        ss_reply_fail(&j->reply, SS_E_UNAVAILABLE, "server is shutting down");
    if (rc != 0) j->done(j); /* answered as a worker would */
    return SS_OP_QUEUED;
}

/* ---- at once ---- */

int ss_op_healthz(ss_op *o) {
    return now_json(o, 200, "{\"status\":\"ok\"}");
}

int ss_op_readyz(ss_op *o) {
    if (__atomic_load_n(&o->app->draining, __ATOMIC_RELAXED)) {
        now_json(o, 503, "{\"status\":\"draining\"}");
        o->reply.retry_after = 1;
        return SS_OP_NOW;
    }
    char b[64];
    snprintf(b, sizeof b, "{\"status\":\"ready\",\"models\":%zu}", ss_reg_count(o->app->reg));
    return now_json(o, 200, b);
}

int ss_op_metrics(ss_op *o) {
    size_t len, n = 0;
    ss_metrics_model *rows = NULL; /* the spikeserve_model_* families: the registry's */
    ss_metrics_models_total t;
    char *text = ss_metrics_render(o->app->metrics, &len);
    if (text && ss_reg_metrics(o->app->reg, &rows, &n, &t) == 0)
        text = ss_metrics_render_models(text, &len, rows, n, &t);
    else
        free(text), text = NULL;
    free(rows);
    if (!text) return now_fail(o, SS_E_NOMEM, "out of memory");
    ss_reply_set(&o->reply, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    return SS_OP_NOW;
}

int ss_op_models(ss_op *o) {
    ss_mver **vs;
    size_t n, len = 0;
    if (ss_reg_list(o->app->reg, 1, &vs, &n) != 0) return now_fail(o, SS_E_NOMEM, "out of memory");
    spk_model **ms = malloc((n ? n : 1) * sizeof *ms);
    for (size_t i = 0; ms && i < n; i++)
        ms[i] = vs[i]->model;
    uint8_t *b = ms ? o->out->models(ms, n, &len) : NULL;
    free(ms);
    ss_reg_list_free(vs, n);
    return now_body(o, 200, b, len);
}

int ss_op_model(ss_op *o) {
    uint32_t version = 0;
    if (o->sid[0] && !(version = ss_reg_parse_version(o->sid))) /* /versions/{v} */
        return now_fail(o, SS_E_NOT_FOUND, "model %s: version %.20s: not a version number",
                        o->model, o->sid);
    ss_mver *v = ss_op_model_version(o, version);
    if (!v) return SS_OP_NOW;
    size_t len = 0;
    uint8_t *b = o->out->model(v->model, &len);
    ss_reg_unref(v);
    return now_body(o, 200, b, len);
}

int ss_op_session_get(ss_op *o) {
    ss_sess *s = ss_op_session(o);
    if (!s) return SS_OP_NOW;
    ss_codec_session_reply(&o->reply, o->out, 200, s);
    ss_sess_unref(s);
    return SS_OP_NOW;
}

int ss_op_subscribe(ss_op *o, ss_sse *sub) {
    ss_sess *s = ss_op_session(o);
    if (!s) return SS_E_NOT_FOUND;
    int rc = ss_sess_subscribe(s, sub, o->app->cfg.max_subscribers);
    ss_sess_unref(s);
    if (rc == SS_E_NOT_FOUND)
        ss_reply_fail(&o->reply, rc, "session %s: not found", o->sid);
    else if (rc != 0)
        ss_reply_fail(&o->reply, rc, "events: %u subscribers already (--max-subscribers)",
                      o->app->cfg.max_subscribers);
    return rc;
}

/* ---- new sessions ---- */

/* With --wal, a new session is on disk before it is announced: its file (so a log
 * checkpoint racing with this cannot lose it) and, for an id a client chose (PUT), a record
 * in its worker's log after any earlier close of that id. 0 or -1 with err. */
static int durable_new(ss_app *a, ss_sess *s, int logged, char *err, size_t errlen) {
    if (!a->wal) return 0;
    if (ss_store_save(a->cfg.state_dir, s, err, errlen) != 0) return -1;
    if (!logged) return 0;
    uint8_t *buf;
    size_t len;
    if (ss_store_encode(s, 1, &buf, &len, err, errlen) != 0) return -1;
    int rc = ss_wal_snap(a->wal, s->worker, s->id, buf, len, err, errlen);
    free(buf);
    return rc == 0 ? ss_wal_sync(a->wal, s->worker, err, errlen) : -1;
}

/* Publish s (durable first) and answer 201 with it: SS_OP_NOW. With replaced set, an
 * existing id is not an error (the caller goes through that session's worker instead):
 * then 1 and nothing is answered. */
static int announce(ss_op *o, ss_sess *s, int logged, int *taken) {
    ss_app *a = o->app;
    char err[256];
    if (durable_new(a, s, logged, err, sizeof err) != 0) {
        ss_sess_unref(s);
        return now_fail(o, SS_E_UNAVAILABLE, "%s", err);
    }
    int rc = ss_table_insert(a->table, s);
    if (rc == SS_E_EXISTS && taken) { /* created meanwhile */
        ss_sess_unref(s);
        *taken = 1;
        return SS_OP_NOW;
    }
    if (rc != 0) {
        if (a->wal) ss_store_remove(a->cfg.state_dir, s->id);
        ss_sess_unref(s);
        if (rc == SS_E_SESSIONS)
            return now_fail(o, rc, "sessions: %zu open, the limit (--max-sessions %u)",
                            ss_table_count(a->table), a->cfg.max_sessions);
        return now_fail(o, SS_E_UNAVAILABLE, "session id collision; retry");
    }
    if (o->move)
        ss_metrics_session_arrived(a->metrics);
    else
        ss_metrics_session_open(a->metrics);
    snprintf(o->sid, sizeof o->sid, "%s", s->id);
    ss_codec_session_reply(&o->reply, o->out, 201, s);
    snprintf(o->reply.location, sizeof o->reply.location, "/v1/sessions/%s", s->id);
    return SS_OP_NOW;
}

int ss_op_open(ss_op *o) {
    ss_app *a = o->app;
    char err[256];
    ss_open_req q;
    int rc = o->in->open_req(o->body, o->len, &q, err, sizeof err);
    if (rc != 0) return now_fail(o, rc, "%s", err);
    ss_mver *v = ss_op_model_version(o, q.version);
    if (!v) return SS_OP_NOW;
    uint32_t timeout = q.idle_timeout_s;
    if (!q.has_timeout || (a->cfg.idle_timeout && (timeout == 0 || timeout > a->cfg.idle_timeout)))
        timeout = a->cfg.idle_timeout; /* clients may only shorten it */
    size_t open = ss_table_count(a->table);
    if (open >= a->cfg.max_sessions) {
        ss_reg_unref(v);
        return now_fail(o, SS_E_SESSIONS, "sessions: %zu open, the limit (--max-sessions %u)", open,
                        a->cfg.max_sessions);
    }
    /* with --peers, an id this replica owns (cluster.h): N tries expected with N peers */
    char id[SS_ID_LEN + 1];
    ss_sess *s = NULL;
    int tries = 0, rnd = 0;
    do {
        rnd = ss_util_new_id(id);
    } while (rnd == 0 && !ss_cluster_owns(a, id) && ++tries < 100000);
    if (rnd != 0)
        now_fail(o, SS_E_UNAVAILABLE, "no randomness for an id");
    else if (tries == 100000)
        now_fail(o, SS_E_UNAVAILABLE, "no id owned by this replica found");
    else if (!(s = ss_sess_create(id, v, ss_app_pick_worker(a), timeout)))
        now_fail(o, SS_E_NOMEM, "out of memory for a session");
    ss_reg_unref(v); /* the session holds its own */
    if (!s) return SS_OP_NOW;
    s->owner = o->owner;
    return announce(o, s, 0, NULL);
}

ss_sess *ss_op_open_named(ss_op *o, ss_mver *v, const char *id, int *taken) {
    ss_app *a = o->app;
    char err[256];
    *taken = 0;
    if (!ss_util_valid_id(id, strlen(id))) {
        ss_reply_fail(&o->reply, SS_E_INVALID, "session id %.80s: use 1..%d of [A-Za-z0-9_-]", id,
                      SS_ID_MAX);
        return NULL;
    }
    ss_sess *s = ss_sess_create(id, v, ss_app_pick_worker(a), a->cfg.idle_timeout);
    if (!s) {
        ss_reply_fail(&o->reply, SS_E_NOMEM, "out of memory for a session");
        return NULL;
    }
    s->owner = o->owner;
    if (durable_new(a, s, 1, err, sizeof err) != 0) {
        ss_sess_unref(s);
        ss_reply_fail(&o->reply, SS_E_UNAVAILABLE, "%s", err);
        return NULL;
    }
    ss_sess_ref(s); /* the caller's; the table takes the first */
    int rc = ss_table_insert(a->table, s);
    if (rc != 0) {
        if (a->wal && rc != SS_E_EXISTS) ss_store_remove(a->cfg.state_dir, s->id);
        ss_sess_unref(s);
        ss_sess_unref(s);
        if (rc == SS_E_EXISTS) {
            *taken = 1;
            ss_reply_fail(&o->reply, SS_E_EXISTS, "session %s is open already", id);
        } else if (rc == SS_E_SESSIONS) {
            ss_reply_fail(&o->reply, rc, "sessions: %zu open, the limit (--max-sessions %u)",
                          ss_table_count(a->table), a->cfg.max_sessions);
        } else {
            ss_reply_fail(&o->reply, rc, "session %s: cannot be opened", id);
        }
        return NULL;
    }
    ss_metrics_session_open(a->metrics);
    return s;
}

/* ---- jobs ---- */

static int session_job(ss_op *o, ss_job_kind k) {
    ss_sess *s = ss_op_session(o);
    if (!s) return SS_OP_NOW;
    ss_job *j = ss_job_new(k);
    if (!j) {
        ss_sess_unref(s);
        return now_fail(o, SS_E_NOMEM, "out of memory");
    }
    j->sess = s;
    return ss_op_submit(o, j, s->worker);
}

int ss_op_close(ss_op *o) {
    return session_job(o, SS_JOB_CLOSE);
}

int ss_op_reset(ss_op *o) {
    return session_job(o, SS_JOB_RESET);
}

int ss_op_state_get(ss_op *o) {
    return session_job(o, SS_JOB_STATE_GET);
}

ss_job *ss_op_step_job(ss_op *o, ss_sess *s, const uint8_t *buf, size_t len, ss_reply *reply) {
    ss_job *j = ss_job_new(SS_JOB_STEP);
    if (!j) {
        ss_reply_fail(reply, SS_E_NOMEM, "out of memory");
        return NULL;
    }
    ss_limits lim = limits(o->app);
    char err[512];
    int rc = o->in->batch(buf, len, s->model, &lim, &j->batch, err, sizeof err);
    if (rc != 0) {
        ss_reply_fail(reply, rc, "%s", err);
        ss_job_free(j);
        return NULL;
    }
    ss_sess_ref(s);
    j->sess = s;
    return j;
}

int ss_op_step(ss_op *o) {
    ss_sess *s = ss_op_session(o);
    if (!s) return SS_OP_NOW;
    ss_job *j = ss_op_step_job(o, s, o->body, o->len, &o->reply);
    ss_sess_unref(s);
    if (!j) return SS_OP_NOW;
    return ss_op_submit(o, j, j->sess->worker);
}

void ss_op_job_model(ss_job *j, ss_mver *v) {
    j->mv = v;
    j->model = v->model;
    j->model_idx = v->slot;
}

/* A run of version v on a fresh state (j's batch decoded with rc, err): queued, or refused.
 * Takes v's reference. */
static int stateless(ss_op *o, ss_job *j, ss_mver *v, int rc, const char *err) {
    if (rc != 0) {
        ss_job_free(j);
        ss_reg_unref(v);
        return now_fail(o, rc, "%s", err);
    }
    ss_op_job_model(j, v);
    return ss_op_submit(o, j, ss_app_pick_worker(o->app));
}

int ss_op_infer(ss_op *o) {
    ss_mver *v = find_model(o);
    if (!v) return SS_OP_NOW;
    const spk_model *m = v->model;
    ss_job *j = ss_job_new(SS_JOB_INFER);
    if (!j) {
        ss_reg_unref(v);
        return now_fail(o, SS_E_NOMEM, "out of memory");
    }
    ss_limits lim = limits(o->app);
    char err[512];
    int rc = o->in->batch(o->body, o->len, m, &lim, &j->batch, err, sizeof err);
    return stateless(o, j, v, rc, err);
}

static int classify(ss_op *o, ss_mver *v);
int ss_op_classify(ss_op *o) {
    ss_mver *v = find_model(o);
    if (!v) return SS_OP_NOW;
    return classify(o, v);
}

/* ss_op_classify of version v (takes its reference). */
static int classify(ss_op *o, ss_mver *v) {
    const spk_model *m = v->model;
    char err[512];
    if (m->encoding.kind == SPK_ENC_NONE) {
        ss_reg_unref(v);
        return now_fail(o, SS_E_INVALID, "model %s has no input encoding; use /infer", m->name);
    }
    ss_classify_req q;
    int rc = o->in->classify_req(o->body, o->len, m, &q, err, sizeof err);
    if (rc != 0) {
        ss_reg_unref(v);
        return now_fail(o, rc, "%s", err);
    }
    /* the encoding's steps and outputs are held to the limits like any batch's, before
     * anything is allocated from them */
    ss_limits lim = limits(o->app);
    ss_batch probe = {.steps = spk_encode_steps(&m->encoding), .outputs = q.outputs};
    if ((rc = ss_batch_check_limits(m, &probe, &lim, err, sizeof err)) != 0) {
        free(q.values);
        ss_reg_unref(v);
        return now_fail(o, rc, "the model's encoding: %s", err);
    }
    ss_job *j = ss_job_new(SS_JOB_INFER);
    size_t cap = spk_encode_max_events(&m->encoding, m->n_in);
    spk_event *ev = malloc((cap ? cap : 1) * sizeof *ev);
    if (!j || !ev) {
        free(q.values);
        free(ev);
        ss_job_free(j);
        ss_reg_unref(v);
        return now_fail(o, SS_E_NOMEM, "out of memory");
    }
    spk_rng rng;
    spk_rng_seed(&rng, q.seed);
    size_t n_ev = 0;
    rc = spk_encode(&m->encoding, q.values, q.n_values, &rng, ev, cap, &n_ev, err, sizeof err);
    free(q.values);
    j->batch.steps = probe.steps;
    j->batch.events = ev;
    j->batch.n_events = n_ev;
    j->batch.outputs = q.outputs;
    return stateless(o, j, v, rc ? SS_E_INVALID : 0, err);
}

int ss_op_state_put(ss_op *o) {
    ss_app *a = o->app;
    char err[512];
    if (!ss_util_valid_id(o->sid, strlen(o->sid)))
        return now_fail(o, SS_E_INVALID, "id: use 1..%d characters of [A-Za-z0-9_-]", SS_ID_MAX);
    ss_job *j = ss_job_new(SS_JOB_STATE_PUT);
    if (!j) return now_fail(o, SS_E_NOMEM, "out of memory");
    int rc = ss_store_decode(o->body, o->len, a->reg, &j->snap, err, sizeof err);
    if (rc != 0) {
        ss_job_free(j);
        return now_fail(o, rc, "%s", err);
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        ss_sess *s = ss_table_get(a->table, o->sid);
        if (s) {
            if (!ss_sess_visible(s, o->owner)) {
                ss_sess_unref(s);
                ss_job_free(j);
                return now_fail(o, SS_E_FORBIDDEN, "session %s belongs to another API key", o->sid);
            }
            if (s->model != j->snap.model) {
                now_fail(o, SS_E_CONFLICT,
                         "session %s runs model %s version %u; the snapshot is of %s version %u%s",
                         o->sid, s->model->name, s->model->version, j->snap.model->name,
                         j->snap.model->version,
                         s->model->version == j->snap.model->version ? " (reloaded since)" : "");
                ss_sess_unref(s);
                ss_job_free(j);
                return SS_OP_NOW;
            }
            j->sess = s;
            return ss_op_submit(o, j, s->worker);
        }
        uint32_t idle = j->snap.has_idle ? j->snap.idle_timeout_s : a->cfg.idle_timeout;
        s = ss_sess_create(o->sid, j->snap.mv, ss_app_pick_worker(a), idle);
        if (!s) break;
        s->owner = o->owner;
        if (ss_store_apply(s, &j->snap, err, sizeof err) != 0) {
            ss_sess_unref(s);
            ss_job_free(j);
            return now_fail(o, SS_E_INVALID, "%s", err);
        }
        int taken = 0;
        announce(o, s, 1, &taken);
        if (taken) continue; /* created meanwhile: replace it through its worker */
        ss_job_free(j);
        return SS_OP_NOW;
    }
    ss_job_free(j);
    return now_fail(o, SS_E_NOMEM, "out of memory");
}
