/* api.c: one function per route of SPEC.md section 3. Everything that touches a
 * session's state becomes a job for the session's worker; the rest answers at once. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/encode.h"
#include "http.h"
#include "store.h"
#include "ui.h"

static enum MHD_Result send_json(ss_req *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum MHD_Result send_json(ss_req *r, unsigned status, const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ss_reply rep;
    memset(&rep, 0, sizeof rep);
    ss_reply_set(&rep, status, SS_CT_JSON, strdup(buf), strlen(buf));
    if (status == 503) rep.retry_after = 1;
    return ss_http_send(r, &rep);
}

static ss_sess *find_session(ss_req *r) {
    ss_sess *s = ss_table_get(r->app->table, r->sid);
    if (s) {
        pthread_mutex_lock(&s->mu);
        int closed = s->closed;
        pthread_mutex_unlock(&s->mu);
        if (!closed && ss_sess_visible(s, r->owner)) return s;
        ss_sess_unref(s);
    }
    ss_http_error(r, 404, NULL, "session %.64s: not found", r->sid);
    return NULL;
}

static int find_model(ss_req *r) {
    int i = ss_app_model(r->app, r->model);
    if (i < 0) ss_http_error(r, 404, NULL, "model %s: not found", r->model);
    return i;
}

static enum MHD_Result batch_error(ss_req *r, int rc, const char *err) {
    if (rc == SS_ELIMIT) return ss_http_error(r, 413, "limit_exceeded", "%s", err);
    if (rc == SS_ENOMEM) return ss_http_error(r, 503, NULL, "out of memory");
    return ss_http_error(r, 400, NULL, "%s", err);
}

static int decode_batch(ss_req *r, const spk_model *m, ss_batch *b, enum MHD_Result *ret) {
    ss_limits lim = {r->app->cfg.max_steps, r->app->cfg.max_events};
    char err[512];
    const char *body = r->body ? (const char *)r->body : "";
    int rc = r->in_pb ? ss_batch_from_pb((const uint8_t *)body, r->len, m, &lim, b, err, sizeof err)
                      : ss_batch_from_json(body, r->len, m, &lim, b, err, sizeof err);
    if (rc != 0) {
        *ret = batch_error(r, rc, err);
        return rc;
    }
    size_t need = ss_exec_out_bytes(m, b);
    if (need > r->app->cfg.max_output_bytes) {
        *ret =
            ss_http_error(r, 413, "limit_exceeded",
                          "outputs: %u steps of the outputs asked need up to %zu bytes, over the "
                          "limit %llu (--max-output-bytes)",
                          b->steps, need, (unsigned long long)r->app->cfg.max_output_bytes);
        ss_batch_free(b);
        return SS_ELIMIT;
    }
    return 0;
}

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

static enum MHD_Result open_session(ss_req *r) {
    ss_app *a = r->app;
    int mi = find_model(r);
    if (mi < 0) return MHD_YES;
    char err[256];
    int has_t = 0;
    uint32_t timeout = a->cfg.idle_timeout;
    if (ss_wire_open_req(r->body, r->len, r->in_pb, &has_t, &timeout, err, sizeof err) != 0)
        return ss_http_error(r, 400, NULL, "%s", err);
    if (!has_t || (a->cfg.idle_timeout && (timeout == 0 || timeout > a->cfg.idle_timeout)))
        timeout = a->cfg.idle_timeout; /* clients may only shorten it */
    if (ss_table_count(a->table) >= a->cfg.max_sessions)
        return ss_http_error(r, 503, "too_many_sessions",
                             "sessions: %u open, the limit (--max-sessions %u)",
                             a->cfg.max_sessions, a->cfg.max_sessions);
    char id[SS_ID_LEN + 1];
    if (ss_util_new_id(id) != 0) return ss_http_error(r, 503, NULL, "no randomness for an id");
    ss_sess *s = ss_sess_create(id, a->models[mi], (uint32_t)mi, ss_app_pick_worker(a), timeout);
    if (!s) return ss_http_error(r, 503, NULL, "out of memory for a session");
    s->owner = r->owner;
    if (durable_new(a, s, 0, err, sizeof err) != 0) {
        ss_sess_unref(s);
        return ss_http_error(r, 503, NULL, "%s", err);
    }
    int rc = ss_table_insert(a->table, s);
    if (rc != 0) {
        if (a->wal) ss_store_remove(a->cfg.state_dir, id);
        ss_sess_unref(s);
        if (rc == -1)
            return ss_http_error(r, 503, "too_many_sessions",
                                 "sessions: the limit (--max-sessions %u) is reached",
                                 a->cfg.max_sessions);
        return ss_http_error(r, 503, NULL, "session id collision; retry");
    }
    ss_metrics_session_open(a->metrics);
    snprintf(r->sid, sizeof r->sid, "%s", id);
    ss_reply rep;
    memset(&rep, 0, sizeof rep);
    ss_wire_session(&rep, r->out_pb, 201, s);
    snprintf(rep.location, sizeof rep.location, "/v1/sessions/%s", id);
    return ss_http_send(r, &rep);
}

static enum MHD_Result classify(ss_req *r, const spk_model *m, uint32_t mi) {
    char err[512];
    if (m->encoding.kind == SPK_ENC_NONE)
        return ss_http_error(r, 400, NULL, "model %s has no input encoding; use /infer", m->name);
    ss_classify_req q;
    if (ss_wire_classify_req(r->body, r->len, r->in_pb, m, &q, err, sizeof err) != 0)
        return ss_http_error(r, 400, NULL, "%s", err);
    uint32_t steps = spk_encode_steps(&m->encoding);
    if (steps > r->app->cfg.max_steps) {
        free(q.values);
        return ss_http_error(r, 413, "limit_exceeded",
                             "steps: the model's encoding needs %u steps, over the limit %u "
                             "(--max-steps)",
                             steps, r->app->cfg.max_steps);
    }
    size_t cap = spk_encode_max_events(&m->encoding, m->n_in);
    ss_job *j = ss_job_new(SS_JOB_INFER);
    spk_event *ev = malloc((cap ? cap : 1) * sizeof *ev);
    if (!j || !ev) {
        free(q.values);
        free(ev);
        ss_job_free(j);
        return ss_http_error(r, 503, NULL, "out of memory");
    }
    spk_rng rng;
    spk_rng_seed(&rng, q.seed);
    size_t n_ev = 0;
    int rc = spk_encode(&m->encoding, q.values, q.n_values, &rng, ev, cap, &n_ev, err, sizeof err);
    free(q.values);
    if (rc != 0) {
        free(ev);
        ss_job_free(j);
        return ss_http_error(r, 400, NULL, "%s", err);
    }
    j->model = m;
    j->model_idx = mi;
    j->batch.steps = steps;
    j->batch.events = ev;
    j->batch.n_events = n_ev;
    j->batch.outputs = q.outputs;
    return ss_http_submit(r, j, ss_app_pick_worker(r->app));
}

static enum MHD_Result model_job(ss_req *r) {
    int mi = find_model(r);
    if (mi < 0) return MHD_YES;
    const spk_model *m = r->app->models[mi];
    if (r->route == SS_R_CLASSIFY) return classify(r, m, (uint32_t)mi);
    ss_job *j = ss_job_new(SS_JOB_INFER);
    if (!j) return ss_http_error(r, 503, NULL, "out of memory");
    enum MHD_Result ret = MHD_YES;
    if (decode_batch(r, m, &j->batch, &ret) != 0) {
        ss_job_free(j);
        return ret;
    }
    j->model = m;
    j->model_idx = (uint32_t)mi;
    return ss_http_submit(r, j, ss_app_pick_worker(r->app));
}

static enum MHD_Result events(ss_req *r, ss_sess *s) {
    ss_sse *sub = ss_sse_create(r->app->cfg.sse_buffer_bytes);
    if (!sub) {
        ss_sess_unref(s);
        return ss_http_error(r, 503, NULL, "out of memory");
    }
    int rc = ss_sess_subscribe(s, sub, r->app->cfg.max_subscribers);
    ss_sess_unref(s);
    if (rc != 0) {
        ss_sse_unref(sub);
        ss_sse_unref(sub);
        if (rc == -2) return ss_http_error(r, 404, NULL, "session %s: not found", r->sid);
        return ss_http_error(r, 429, "too_many_subscribers",
                             "events: %u subscribers already (--max-subscribers)",
                             r->app->cfg.max_subscribers);
    }
    struct MHD_Response *resp = ss_sse_response(sub, r->conn);
    if (!resp) {
        ss_sse_end(sub, "error");
        ss_sse_unref(sub);
        return MHD_NO;
    }
    r->status = 200;
    enum MHD_Result ok = MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
    return ok;
}

static enum MHD_Result put_state(ss_req *r) {
    ss_app *a = r->app;
    char err[512];
    if (!ss_util_valid_id(r->sid, strlen(r->sid)))
        return ss_http_error(r, 400, NULL, "id: use 1..%d characters of [A-Za-z0-9_-]", SS_ID_MAX);
    ss_job *j = ss_job_new(SS_JOB_STATE_PUT);
    if (!j) return ss_http_error(r, 503, NULL, "out of memory");
    int rc = ss_store_decode(r->body, r->len, a->models, a->n_models, &j->snap, err, sizeof err);
    if (rc != 0) {
        ss_job_free(j);
        return ss_http_error(r, rc == -2 ? 404 : 400, NULL, "%s", err);
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        ss_sess *s = ss_table_get(a->table, r->sid);
        if (s) {
            if (!ss_sess_visible(s, r->owner)) {
                ss_http_error(r, 403, NULL, "session %s belongs to another API key", r->sid);
                ss_sess_unref(s);
                ss_job_free(j);
                return MHD_YES;
            }
            if (s->model != j->snap.model) {
                ss_http_error(r, 409, NULL, "session %s runs model %s; the snapshot is of %s",
                              r->sid, s->model->name, j->snap.model->name);
                ss_sess_unref(s);
                ss_job_free(j);
                return MHD_YES;
            }
            j->sess = s;
            return ss_http_submit(r, j, s->worker);
        }
        uint32_t idle = j->snap.has_idle ? j->snap.idle_timeout_s : a->cfg.idle_timeout;
        s = ss_sess_create(r->sid, j->snap.model, j->snap.model_idx, ss_app_pick_worker(a), idle);
        if (!s) break;
        s->owner = r->owner;
        if (ss_store_apply(s, &j->snap, err, sizeof err) != 0) {
            ss_sess_unref(s);
            ss_job_free(j);
            return ss_http_error(r, 400, NULL, "%s", err);
        }
        if (durable_new(a, s, 1, err, sizeof err) != 0) {
            ss_sess_unref(s);
            ss_job_free(j);
            return ss_http_error(r, 503, NULL, "%s", err);
        }
        rc = ss_table_insert(a->table, s);
        if (rc == -2) { /* created meanwhile: replace it through its worker */
            ss_sess_unref(s);
            continue;
        }
        ss_job_free(j);
        if (rc == -1) {
            if (a->wal) ss_store_remove(a->cfg.state_dir, r->sid);
            ss_sess_unref(s);
            return ss_http_error(r, 503, "too_many_sessions",
                                 "sessions: the limit (--max-sessions %u) is reached",
                                 a->cfg.max_sessions);
        }
        ss_metrics_session_open(a->metrics);
        ss_reply rep;
        memset(&rep, 0, sizeof rep);
        ss_wire_session(&rep, r->out_pb, 201, s);
        snprintf(rep.location, sizeof rep.location, "/v1/sessions/%s", r->sid);
        return ss_http_send(r, &rep);
    }
    ss_job_free(j);
    return ss_http_error(r, 503, NULL, "out of memory");
}

static enum MHD_Result session_job(ss_req *r) {
    if (r->route == SS_R_STATE_PUT) return put_state(r);
    ss_sess *s = find_session(r);
    if (!s) return MHD_YES;
    ss_sess_touch(s);
    if (r->route == SS_R_SESSION_GET) {
        ss_reply rep;
        memset(&rep, 0, sizeof rep);
        ss_wire_session(&rep, r->out_pb, 200, s);
        ss_sess_unref(s);
        return ss_http_send(r, &rep);
    }
    if (r->route == SS_R_EVENTS) return events(r, s);
    ss_job_kind k = r->route == SS_R_SESSION_DELETE ? SS_JOB_CLOSE
                    : r->route == SS_R_RESET        ? SS_JOB_RESET
                    : r->route == SS_R_STATE_GET    ? SS_JOB_STATE_GET
                                                    : SS_JOB_STEP;
    ss_job *j = ss_job_new(k);
    if (!j) {
        ss_sess_unref(s);
        return ss_http_error(r, 503, NULL, "out of memory");
    }
    j->sess = s;
    if (k == SS_JOB_STEP) {
        enum MHD_Result ret = MHD_YES;
        if (decode_batch(r, s->model, &j->batch, &ret) != 0) {
            ss_job_free(j);
            return ret;
        }
    }
    return ss_http_submit(r, j, s->worker);
}

/* ui.c's routes: the page, and a test image of --ui-dataset-dir */
static enum MHD_Result ui_route(ss_req *r) {
    char err[512];
    uint32_t index = 0;
    ss_reply rep;
    memset(&rep, 0, sizeof rep);
    if (r->route == SS_R_UI_PAGE) {
        if (ss_ui_page(&rep, err, sizeof err) != 0) return ss_http_error(r, 503, NULL, "%s", err);
        return ss_http_send(r, &rep);
    }
    if (ss_ui_index(r->path + strlen("/ui/fmnist/"), &index, err, sizeof err) != 0)
        return ss_http_error(r, 400, NULL, "%s", err);
    if (ss_ui_image(&rep, r->app->cfg.ui_dataset_dir, index, err, sizeof err) != 0)
        return ss_http_error(r, rep.status, NULL, "%s", err);
    return ss_http_send(r, &rep);
}

enum MHD_Result ss_api_dispatch(ss_req *r) {
    ss_app *a = r->app;
    switch (r->route) {
    case SS_R_HEALTHZ:
        return send_json(r, 200, "{\"status\":\"ok\"}");
    case SS_R_READYZ:
        if (__atomic_load_n(&a->draining, __ATOMIC_RELAXED))
            return send_json(r, 503, "{\"status\":\"draining\"}");
        return send_json(r, 200, "{\"status\":\"ready\",\"models\":%zu}", a->n_models);
    case SS_R_METRICS: {
        size_t len;
        char *text = ss_metrics_render(a->metrics, &len);
        if (!text) return ss_http_error(r, 503, NULL, "out of memory");
        ss_reply rep;
        memset(&rep, 0, sizeof rep);
        ss_reply_set(&rep, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
        return ss_http_send(r, &rep);
    }
    case SS_R_MODELS: {
        ss_reply rep;
        memset(&rep, 0, sizeof rep);
        if (ss_wire_models(&rep, r->out_pb, a->models, a->n_models) != 0)
            return ss_http_error(r, 503, NULL, "out of memory");
        return ss_http_send(r, &rep);
    }
    case SS_R_MODEL: {
        int mi = find_model(r);
        if (mi < 0) return MHD_YES;
        ss_reply rep;
        memset(&rep, 0, sizeof rep);
        if (ss_wire_model(&rep, r->out_pb, a->models[mi]) != 0)
            return ss_http_error(r, 503, NULL, "out of memory");
        return ss_http_send(r, &rep);
    }
    case SS_R_UI_PAGE:  /* ui.c */
    case SS_R_UI_IMAGE: /* ui.c */
        return ui_route(r);
    case SS_R_OPEN:
        return open_session(r);
    case SS_R_INFER:
    case SS_R_CLASSIFY:
        return model_job(r);
    default:
        return session_job(r);
    }
}
