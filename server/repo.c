/* repo.c: the repository routes and unload-with-drain (repo.h). Loading itself is the
 * registry's; this file adds the rules that need the sessions (who is pinned to what). */
#include "repo.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "registry.h"

#define DRAIN_WAIT_MS 10000 /* at most this long for the closes to run */

/* j as compact text (malloc'd, NULL when out of memory); j is released. */
static char *dump(json_t *j) {
    char *b = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return b;
}

static int explicit_only(ss_op *o) {
    if (!strcmp(o->app->cfg.model_control, "explicit")) return 0;
    ss_reply_fail(&o->reply, SS_E_INVALID,
                  "explicit model load / unload is not allowed with --model-control %s (start "
                  "with --model-control explicit)",
                  o->app->cfg.model_control);
    return -1;
}

static int answer(ss_op *o, const char *name) {
    ss_mver **vs;
    size_t n;
    if (ss_reg_list(o->app->reg, 0, &vs, &n) != 0) {
        ss_reply_fail(&o->reply, SS_E_NOMEM, "out of memory");
        return SS_OP_NOW;
    }
    json_t *versions = json_array();
    for (size_t i = 0; i < n; i++)
        if (!strcmp(vs[i]->name, name)) {
            char v[16];
            snprintf(v, sizeof v, "%u", vs[i]->version);
            json_array_append_new(versions, json_string(v));
        }
    ss_reg_list_free(vs, n);
    char *b = dump(json_pack("{s:s, s:o}", "name", name, "versions", versions));
    if (!b) {
        ss_reply_fail(&o->reply, SS_E_NOMEM, "out of memory");
        return SS_OP_NOW;
    }
    ss_reply_set(&o->reply, 200, SS_CT_JSON, b, strlen(b));
    return SS_OP_NOW;
}

int ss_repo_op_load(ss_op *o) {
    if (explicit_only(o) != 0) return SS_OP_NOW;
    char err[2048];
    ss_reg_scan_stats st;
    if (ss_reg_scan(o->app->reg, o->model, 0, &st, err, sizeof err) != 0) {
        ss_reply_fail(&o->reply, SS_E_INVALID, "load of model '%s' failed: %s", o->model, err);
        return SS_OP_NOW;
    }
    ss_mver *v = ss_reg_get(o->app->reg, o->model, 0);
    if (!v) {
        ss_reply_fail(&o->reply, SS_E_NOT_FOUND,
                      "failed to load '%s': no model files %s/%s.spk or %s/%s/VERSION.spk",
                      o->model, o->app->cfg.model_dir, o->model, o->app->cfg.model_dir, o->model);
        return SS_OP_NOW;
    }
    ss_reg_unref(v);
    return answer(o, o->model);
}

/* Sessions of the table pinned to model name (version 0: any version) and still open,
 * each with a reference; 0 or -1. */
static int pinned(ss_app *a, const char *name, uint32_t version, ss_sess ***out, size_t *n) {
    ss_sess **all;
    size_t na;
    if (ss_table_list(a->table, &all, &na) != 0) return -1;
    size_t k = 0;
    for (size_t i = 0; i < na; i++) {
        ss_sess *s = all[i];
        pthread_mutex_lock(&s->mu);
        int closed = s->closed;
        pthread_mutex_unlock(&s->mu);
        if (!closed && !strcmp(s->mv->name, name) && (!version || s->mv->version == version))
            all[k++] = s;
        else
            ss_sess_unref(s);
    }
    *out = all;
    *n = k;
    return 0;
}

static void free_list(ss_sess **v, size_t n) {
    for (size_t i = 0; i < n; i++)
        ss_sess_unref(v[i]);
    free(v);
}

int ss_repo_unload(ss_app *a, const char *name, uint32_t version, int drain, size_t *closed,
                   char *err, size_t errlen) {
    *closed = 0;
    ss_mver *v = ss_reg_get(a->reg, name, version);
    if (!v) {
        if (version)
            snprintf(err, errlen, "model '%s' version %u is not loaded", name, version);
        else
            snprintf(err, errlen, "model '%s' is not loaded", name);
        return SS_E_NOT_FOUND;
    }
    ss_reg_unref(v);
    ss_sess **ss;
    size_t n;
    if (pinned(a, name, version, &ss, &n) != 0) {
        snprintf(err, errlen, "out of memory");
        return SS_E_NOMEM;
    }
    if (n && !drain) {
        char which[32] = "";
        if (version) snprintf(which, sizeof which, " version %u", version);
        snprintf(err, errlen,
                 "model '%s'%s: %zu open session%s pinned to it (%s on version %u); unload "
                 "with {\"parameters\":{\"drain\":true}} to close them",
                 name, which, n, n == 1 ? " is" : "s are", ss[0]->id, ss[0]->mv->version);
        free_list(ss, n);
        return SS_E_CONFLICT;
    }
    free_list(ss, n);
    /* off the list first: no new session can pin it; then whoever pinned it before */
    ss_reg_unlist(a->reg, name, version);
    if (!drain) return 0;
    if (pinned(a, name, version, &ss, &n) != 0) {
        snprintf(err, errlen, "out of memory");
        return SS_E_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        ss_job *j = ss_job_new(SS_JOB_UNLOAD);
        if (!j) continue;
        ss_sess_ref(ss[i]);
        j->sess = ss[i];
        j->done = ss_job_done_free;
        if (ss_pool_submit(a->pool, ss[i]->worker, j, 1) != 0) ss_job_free(j);
    }
    size_t open = n;
    for (int waited = 0; open && waited < DRAIN_WAIT_MS; waited += 5) {
        usleep(5000);
        open = 0;
        for (size_t i = 0; i < n; i++) {
            pthread_mutex_lock(&ss[i]->mu);
            open += !ss[i]->closed;
            pthread_mutex_unlock(&ss[i]->mu);
        }
    }
    *closed = n - open; /* the rest are still behind long queues: they close when reached */
    char which[32] = "";
    if (version) snprintf(which, sizeof which, " version %u", version);
    ss_log(SS_LOG_INFO, "model %s%s unloaded: %zu sessions drained%s", name, which, n - open,
           open ? " (more are closing)" : "");
    free_list(ss, n);
    return 0;
}

int ss_repo_op_unload(ss_op *o) {
    if (explicit_only(o) != 0) return SS_OP_NOW;
    uint32_t version = 0;
    int drain = 0;
    if (o->len) {
        json_error_t je;
        json_t *r = json_loadb((const char *)o->body, o->len, 0, &je);
        json_t *p = r ? json_object_get(r, "parameters") : NULL;
        json_t *d = p ? json_object_get(p, "drain") : NULL,
               *v = p ? json_object_get(p, "version") : NULL;
        const char *bad = !r || !json_is_object(r)   ? "the body must be a JSON object"
                          : p && !json_is_object(p)  ? "parameters: must be an object"
                          : d && !json_is_boolean(d) ? "parameters.drain: must be true or false"
                                                     : NULL;
        if (!bad && v) {
            if (json_is_integer(v) && json_integer_value(v) >= 1 &&
                json_integer_value(v) <= UINT32_MAX)
                version = (uint32_t)json_integer_value(v);
            else if (json_is_string(v))
                version = ss_reg_parse_version(json_string_value(v));
            if (!version) bad = "parameters.version: must be a model version (\"2\" or 2)";
        }
        drain = d && json_is_true(d);
        json_decref(r);
        if (bad) {
            ss_reply_fail(&o->reply, SS_E_INVALID, "unload: %s", bad);
            return SS_OP_NOW;
        }
    }
    char err[512];
    size_t closed = 0;
    int rc = ss_repo_unload(o->app, o->model, version, drain, &closed, err, sizeof err);
    if (rc != 0) {
        ss_reply_fail(&o->reply, rc, "%s", err);
        return SS_OP_NOW;
    }
    char *c =
        dump(json_pack("{s:s, s:I}", "name", o->model, "sessions_closed", (json_int_t)closed));
    if (!c) {
        ss_reply_fail(&o->reply, SS_E_NOMEM, "out of memory");
        return SS_OP_NOW;
    }
    ss_reply_set(&o->reply, 200, SS_CT_JSON, c, strlen(c));
    return SS_OP_NOW;
}
