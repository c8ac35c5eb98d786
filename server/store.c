/* store.c: snapshot encoding and the state directory. A session file is exactly the
 * bytes GET /state returns, so a backup taken over HTTP can be dropped into --state-dir. */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "answer.h"
#include "api.pb-c.h"
#include "batch.h"
#include "codec.h"
#include "model.pb-c.h"
#include "registry.h"

#define SUFFIX ".session"

int ss_store_encode(ss_sess *s, int with_owner, uint8_t **buf, size_t *len, char *err,
                    size_t errlen) {
    uint8_t *st = NULL;
    size_t st_len = 0;
    if (spk_state_snapshot(s->state, &st, &st_len, err, errlen) != 0) return -1;
    Spikeserve__StateSnapshot *ss = spikeserve__state_snapshot__unpack(NULL, st_len, st);
    free(st);
    if (!ss) {
        snprintf(err, errlen, "engine snapshot does not decode");
        return -1;
    }
    char created[40];
    Spikeserve__SessionSnapshot m = SPIKESERVE__SESSION_SNAPSHOT__INIT;
    pthread_mutex_lock(&s->mu);
    m.last_seq = s->last_seq;
    m.idle_timeout_s = s->idle_timeout_s;
    ss_util_rfc3339(s->created_ms, created, sizeof created);
    pthread_mutex_unlock(&s->mu);
    m.session_id = s->id;
    m.model = ss_pbstr(s->model->name);
    m.has_model_version = m.has_idle_timeout_s = m.has_last_seq = 1;
    m.model_version = s->model->version;
    uint8_t *last = NULL;
    if (s->last) {
        ss_result res = ss_answer_result(s->last, s->id, s->model);
        size_t last_len = 0;
        if (!(last = ss_result_pb(&res, &last_len))) {
            spikeserve__state_snapshot__free_unpacked(ss, NULL);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        m.has_last_result = 1;
        m.last_result.data = last;
        m.last_result.len = last_len;
        m.has_last_outputs = 1;
        m.last_outputs = s->last->outputs;
    }
    m.created_at = created;
    m.state = ss;
    if (with_owner && s->owner) {
        m.has_owner = 1;
        m.owner = s->owner;
    }
    size_t n = spikeserve__session_snapshot__get_packed_size(&m);
    uint8_t *b = malloc(n ? n : 1);
    if (b) spikeserve__session_snapshot__pack(&m, b);
    spikeserve__state_snapshot__free_unpacked(ss, NULL);
    free(last);
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *buf = b;
    *len = n;
    return 0;
}

int ss_store_decode(const uint8_t *buf, size_t len, ss_reg *reg, ss_snap *out, char *err,
                    size_t errlen) {
    memset(out, 0, sizeof *out);
    Spikeserve__SessionSnapshot *m = spikeserve__session_snapshot__unpack(NULL, len, buf);
    if (!m) {
        snprintf(err, errlen, "body: not a valid spikeserve.SessionSnapshot");
        return -1;
    }
    int rc = 0;
    if (!m->model || !m->state) {
        snprintf(err, errlen, "snapshot: %s missing", !m->model ? "model" : "state");
        rc = -1;
        goto done;
    }
    uint32_t version = m->has_model_version ? m->model_version : 0;
    out->mv = ss_reg_get(reg, m->model, version);
    if (!out->mv) {
        if (version && (out->mv = ss_reg_get(reg, m->model, 0)) != NULL) {
            ss_reg_unref(out->mv);
            out->mv = NULL;
            snprintf(err, errlen, "model_version: model \"%.64s\" version %u is not loaded",
                     m->model, version);
        } else {
            snprintf(err, errlen, "model: no model named \"%.64s\" is loaded", m->model);
        }
        rc = SS_E_NOT_FOUND;
        goto done;
    }
    out->model = out->mv->model;
    out->model_idx = out->mv->slot;
    if (m->session_id && *m->session_id) {
        if (!ss_util_valid_id(m->session_id, strlen(m->session_id))) {
            snprintf(err, errlen, "session_id: not a valid id");
            rc = -1;
            goto done;
        }
        snprintf(out->id, sizeof out->id, "%s", m->session_id);
    }
    out->has_idle = m->has_idle_timeout_s;
    out->idle_timeout_s = m->idle_timeout_s;
    out->last_seq = m->last_seq;
    out->owner = m->has_owner ? m->owner : 0;
    if (m->created_at) ss_util_parse_rfc3339(m->created_at, &out->created_ms);
    if (m->has_last_result && m->last_result.len) {
        unsigned outs = m->has_last_outputs ? m->last_outputs & SS_OUT_ALL : 0;
        ss_answer *a = ss_answer_from_pb(m->last_result.data, m->last_result.len, out->model, outs);
        if (!a) { /* what ss_store_apply will need, checked now: a 400, not a failed job */
            snprintf(err, errlen, "last_result: not a spikeserve.StepResult of model %s",
                     out->model->name);
            rc = SS_E_INVALID;
            goto done;
        }
        ss_answer_free(a);
        out->last_pb = malloc(m->last_result.len);
        if (!out->last_pb) goto oom;
        memcpy(out->last_pb, m->last_result.data, m->last_result.len);
        out->last_pb_len = m->last_result.len;
        if (m->has_last_outputs) out->last_outputs = m->last_outputs & SS_OUT_ALL;
    }
    out->state_len = spikeserve__state_snapshot__get_packed_size(m->state);
    out->state = malloc(out->state_len ? out->state_len : 1);
    if (!out->state) goto oom;
    spikeserve__state_snapshot__pack(m->state, out->state);
    /* check the engine state now, so a bad snapshot is a 400 before any job runs */
    spk_state *probe = spk_state_create(out->model);
    if (!probe) goto oom;
    rc = spk_state_restore(probe, out->state, out->state_len, err, errlen) == 0 ? 0 : -1;
    spk_state_free(probe);
    goto done;
oom:
    snprintf(err, errlen, "out of memory");
    rc = -1;
done:
    spikeserve__session_snapshot__free_unpacked(m, NULL);
    if (rc) ss_store_snap_free(out);
    return rc;
}

void ss_store_snap_free(ss_snap *s) {
    if (!s) return;
    free(s->last_pb);
    free(s->state);
    s->last_pb = s->state = NULL;
    ss_reg_unref(s->mv);
    s->mv = NULL;
}

int ss_store_apply(ss_sess *s, const ss_snap *snap, char *err, size_t errlen) {
    if (snap->model != s->model) {
        snprintf(err, errlen,
                 "snapshot is of model %s version %u; the session runs %s version %u%s",
                 snap->model->name, snap->model->version, s->model->name, s->model->version,
                 snap->model->version == s->model->version ? " (reloaded since)" : "");
        return -1;
    }
    ss_answer *last = NULL;
    if (snap->last_pb && !(last = ss_answer_from_pb(snap->last_pb, snap->last_pb_len, s->model,
                                                    snap->last_outputs))) {
        snprintf(err, errlen, "last_result: not a StepResult of model %s", s->model->name);
        return -1;
    }
    if (spk_state_restore(s->state, snap->state, snap->state_len, err, errlen) != 0) {
        ss_answer_free(last);
        return -1;
    }
    ss_sess_set_last(s, last);
    pthread_mutex_lock(&s->mu);
    s->t = spk_state_t(s->state);
    s->last_seq = snap->last_seq;
    if (snap->has_idle) s->idle_timeout_s = snap->idle_timeout_s;
    if (snap->created_ms) s->created_ms = snap->created_ms;
    s->active_ms = ss_util_now_ms();
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int ss_store_save(const char *dir, ss_sess *s, char *err, size_t errlen) {
    uint8_t *buf;
    size_t len;
    if (ss_store_encode(s, 1, &buf, &len, err, errlen) != 0) return -1;
    char name[SS_ID_MAX + 16];
    snprintf(name, sizeof name, "%s" SUFFIX, s->id);
    int rc = ss_util_write_atomic(dir, name, buf, len, err, errlen);
    free(buf);
    return rc;
}

void ss_store_remove(const char *dir, const char *id) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s" SUFFIX, dir, id);
    unlink(path);
}

int ss_store_load_dir(const char *dir, ss_reg *reg, void (*fn)(const ss_snap *snap, void *arg),
                      void (*bad)(const char *path, const char *msg, void *arg), void *arg,
                      char *err, size_t errlen) {
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    int loaded = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t nl = strlen(e->d_name), sl = strlen(SUFFIX);
        if (nl <= sl || e->d_name[0] == '.' || strcmp(e->d_name + nl - sl, SUFFIX) != 0) continue;
        char path[4096], msg[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        uint8_t *buf;
        size_t len;
        if (ss_util_read_file(path, 1u << 30, &buf, &len, msg, sizeof msg) != 0) {
            bad(path, msg, arg);
            continue;
        }
        ss_snap snap;
        int rc = ss_store_decode(buf, len, reg, &snap, msg, sizeof msg);
        free(buf);
        if (rc != 0) {
            bad(path, msg, arg);
            continue;
        }
        if (!snap.id[0]) {
            snprintf(snap.id, sizeof snap.id, "%.*s", (int)(nl - sl), e->d_name);
        }
        fn(&snap, arg);
        ss_store_snap_free(&snap);
        loaded++;
    }
    closedir(d);
    return loaded;
}
