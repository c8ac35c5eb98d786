/* app.c: start-up (models, workers, restored sessions, HTTP), the housekeeping thread and
 * the shutdown steps. The housekeeping thread never touches a session's state: expiry and
 * checkpoints are jobs for the session's worker. */
#include "app.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "grpc.h"
#include "http.h"
#include "log.h"
#include "oip.h"
#include "routes.h"
#include "store.h"
#include "ui.h"

static int load_models(ss_app *a, char *err, size_t errlen) {
    a->reg = ss_reg_create(a->cfg.model_dir);
    if (!a->reg) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char msg[2048];
    if (ss_reg_scan(a->reg, NULL, 1, NULL, msg, sizeof msg) != 0) {
        snprintf(err, errlen, "bad model file: %s", msg);
        return -1;
    }
    /* with run-time loading, an empty directory waits for its first model */
    if (ss_reg_count(a->reg) == 0 && !strcmp(a->cfg.model_control, "none")) {
        snprintf(err, errlen, "--model-dir %s: no model files (*.spk)", a->cfg.model_dir);
        return -1;
    }
    return 0;
}

typedef struct {
    ss_app *a;
    size_t ok, bad;
} restore_ctx;

static void restore_one(const ss_snap *snap, void *arg) {
    restore_ctx *c = arg;
    ss_app *a = c->a;
    char err[256];
    if (!ss_util_valid_id(snap->id, strlen(snap->id))) { /* a file named oddly */
        ss_log(SS_LOG_WARN, "session \"%.64s\" not restored: not a valid id", snap->id);
        c->bad++;
        return;
    }
    uint32_t idle = snap->has_idle ? snap->idle_timeout_s : a->cfg.idle_timeout;
    ss_sess *s = ss_sess_create(snap->id, snap->mv, ss_app_pick_worker(a), idle);
    if (s) s->owner = snap->owner;
    if (!s || ss_store_apply(s, snap, err, sizeof err) != 0 || ss_table_insert(a->table, s) != 0) {
        ss_log(SS_LOG_WARN, "session %s not restored%s%s", snap->id, s ? ": " : "", s ? err : "");
        ss_sess_unref(s);
        c->bad++;
        return;
    }
    s->saved_ms = s->active_ms; /* it is on disk as it is */
    ss_metrics_session_restored(a->metrics);
    c->ok++;
}

static void restore_bad(const char *path, const char *msg, void *arg) {
    restore_ctx *c = arg;
    ss_log(SS_LOG_WARN, "%s: not restored: %s", path, msg);
    c->bad++;
}

static uint32_t pick(void *arg) {
    return ss_app_pick_worker(arg);
}

/* Replay the logs over the restored sessions, save what they changed, empty the logs. No
 * worker or HTTP thread sees a session yet. */
static int replay_wal(ss_app *a, char *err, size_t errlen) {
    ss_wal_stats st;
    /* batches in the log were accepted under the last start's limits: only the output
     * memory of this start bounds them (and a sanity bound on steps) */
    ss_limits lim = {1u << 24, UINT32_MAX, a->cfg.max_output_bytes};
    if (ss_wal_replay(a->cfg.state_dir, a->table, a->reg, &lim, pick, a, &st, err, errlen) != 0)
        return -1;
    ss_sess **all;
    size_t n;
    if (ss_table_list(a->table, &all, &n) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (rc == 0 && all[i]->wal_dirty) {
            if (ss_store_save(a->cfg.state_dir, all[i], err, errlen) != 0) rc = -1;
            all[i]->wal_dirty = 0;
            all[i]->saved_ms = all[i]->active_ms;
        }
        ss_sess_unref(all[i]);
    }
    free(all);
    if (rc != 0) return -1;
    for (size_t i = 0; i < st.created; i++)
        ss_metrics_session_restored(a->metrics);
    if (st.records)
        ss_log(SS_LOG_INFO,
               "write-ahead log: %zu records, %zu applied, %zu already saved or skipped, %zu "
               "sessions created, %zu closed%s",
               st.records, st.applied, st.skipped, st.created, st.closed,
               st.torn ? ", a torn tail ignored" : "");
    return ss_wal_start(a->wal, err, errlen);
}

uint32_t ss_app_pick_worker(ss_app *a) {
    return __atomic_fetch_add(&a->next_worker, 1, __ATOMIC_RELAXED) % ss_pool_workers(a->pool);
}

ss_mver *ss_app_model(const ss_app *a, const char *name, uint32_t version) {
    return ss_reg_get(a->reg, name, version);
}

int ss_app_init(ss_app *a, const ss_config *cfg, char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    a->cfg = *cfg;
    pthread_mutex_init(&a->jmu, NULL);
    pthread_cond_init(&a->jcv, NULL);
    if (a->cfg.workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        a->cfg.workers = n > 0 ? (uint32_t)n : 1;
    }
    if (ss_auth_load(a->cfg.api_keys, &a->auth, err, errlen) != 0) return -1;
    if (load_models(a, err, errlen) != 0) return -1;
    a->metrics = ss_metrics_create(a->cfg.workers, ss_route_count);
    a->table = ss_table_create(a->cfg.max_sessions);
    a->oip = ss_oip_create();
    if (!a->metrics || !a->table || !a->oip) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (ss_cluster_create(a, err, errlen) != 0) return -1;
    if (a->cfg.state_dir[0] && mkdir(a->cfg.state_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "--state-dir %s: %s", a->cfg.state_dir, strerror(errno));
        return -1;
    }
    if (a->cfg.wal) {
        if (ss_wal_open(a->cfg.state_dir, a->cfg.workers, &a->wal, err, errlen) != 0) return -1;
        ss_metrics_wal_enable(a->metrics);
    }
    ss_exec_env env = {a->table, a->metrics,           a->cfg.state_dir,
                       a->wal,   a->cfg.wal_max_bytes, &a->save_failures};
    a->pool = ss_pool_create(a->cfg.workers, a->cfg.queue_depth, &env, err, errlen);
    if (!a->pool) return -1;
    if (a->cfg.state_dir[0]) {
        restore_ctx c = {a, 0, 0};
        if (ss_store_load_dir(a->cfg.state_dir, a->reg, restore_one, restore_bad, &c, err, errlen) <
            0)
            return -1;
        if (c.ok || c.bad)
            ss_log(SS_LOG_INFO, "restored %zu sessions from %s (%zu failed)", c.ok,
                   a->cfg.state_dir, c.bad);
        if (a->wal && replay_wal(a, err, errlen) != 0) return -1;
    }
    return 0;
}

/* ---- housekeeping ---- */

static void submit_free(ss_app *a, ss_sess *s, ss_job_kind k, int force) {
    ss_job *j = ss_job_new(k);
    if (!j) return;
    ss_sess_ref(s);
    j->sess = s;
    j->done = ss_job_done_free;
    if (ss_pool_submit(a->pool, s->worker, j, force) != 0) ss_job_free(j);
}

static void submit_worker(ss_app *a, uint32_t w, ss_job_kind k) {
    ss_job *j = ss_job_new(k);
    if (!j) return;
    j->done = ss_job_done_free;
    if (ss_pool_submit(a->pool, w, j, 1) != 0) ss_job_free(j);
}

static void *janitor(void *arg) {
    ss_app *a = arg;
    int64_t last_keepalive = ss_util_now_ms(), last_checkpoint = ss_util_now_ms();
    pthread_mutex_lock(&a->jmu);
    while (!a->janitor_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 500 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&a->jcv, &a->jmu, &ts);
        if (a->janitor_stop) break;
        pthread_mutex_unlock(&a->jmu);
        int64_t now = ss_util_now_ms();
        int keepalive =
            a->cfg.keepalive && now - last_keepalive >= (int64_t)a->cfg.keepalive * 1000;
        int checkpoint = a->cfg.state_dir[0] && a->cfg.checkpoint_interval &&
                         now - last_checkpoint >= (int64_t)a->cfg.checkpoint_interval * 1000;
        ss_sess **all;
        size_t n;
        if (ss_table_list(a->table, &all, &n) == 0) {
            for (size_t i = 0; i < n; i++) {
                ss_sess *s = all[i];
                pthread_mutex_lock(&s->mu);
                int expired = !s->closed && s->pending == 0 && s->idle_timeout_s &&
                              now - s->active_ms >= (int64_t)s->idle_timeout_s * 1000;
                int changed = s->active_ms != s->saved_ms;
                pthread_mutex_unlock(&s->mu);
                if (expired)
                    submit_free(a, s, SS_JOB_EXPIRE, 1);
                else if (checkpoint && changed && !a->wal) /* past a full queue too: under
                                                            * steady load it is always full */
                    submit_free(a, s, SS_JOB_SAVE, 1);
                if (keepalive) ss_sess_keepalive(s);
                ss_sess_unref(s);
            }
            free(all);
        }
        if (checkpoint && a->wal) /* each worker saves what its log holds, then empties it */
            for (uint32_t w = 0; w < ss_pool_workers(a->pool); w++)
                submit_worker(a, w, SS_JOB_CHECKPOINT);
        if (keepalive) last_keepalive = now;
        if (checkpoint) last_checkpoint = now;
        pthread_mutex_lock(&a->jmu);
    }
    pthread_mutex_unlock(&a->jmu);
    return NULL;
}

int ss_app_start(ss_app *a, char *err, size_t errlen) {
    if (ss_http_start(a, err, errlen) != 0) return -1;
    if (!strcmp(a->cfg.model_control, "poll") &&
        ss_reg_poll_start(a->reg, a->cfg.model_poll_seconds, err, errlen) != 0)
        return -1;
    if (ss_grpc_start(a, err, errlen) != 0) return -1;
    ss_cluster_start(a);
    if (pthread_create(&a->janitor, NULL, janitor, a) != 0) {
        snprintf(err, errlen, "cannot start the housekeeping thread");
        return -1;
    }
    a->janitor_started = 1;
    return 0;
}

/* ---- shutdown steps ---- */

static void stop_janitor(ss_app *a) {
    if (!a->janitor_started) return;
    pthread_mutex_lock(&a->jmu);
    a->janitor_stop = 1;
    pthread_cond_signal(&a->jcv);
    pthread_mutex_unlock(&a->jmu);
    pthread_join(a->janitor, NULL);
    a->janitor_started = 0;
}

void ss_app_stop_accepting(ss_app *a) {
    __atomic_store_n(&a->draining, 1, __ATOMIC_RELAXED);
    stop_janitor(a);
    if (a->reg) ss_reg_poll_stop(a->reg);
    if (a->daemon) {
        MHD_socket fd = MHD_quiesce_daemon(a->daemon);
        if (fd != MHD_INVALID_SOCKET) close(fd);
    }
    ss_grpc_stop_accepting(a);                /* GOAWAY: calls already started go on */
    if (a->pool) ss_pool_close_gate(a->pool); /* also wakes paused uploads */
}

void ss_app_finish_queued(ss_app *a) {
    if (a->pool) ss_pool_drain(a->pool);
}

void ss_app_resume_all(ss_app *a) {
    /* gRPC calls still open (their batches now answered 503) get a moment to end */
    ss_grpc_drain(a, 3000);
    ss_sess **all;
    size_t n;
    if (!a->table || ss_table_list(a->table, &all, &n) != 0) return;
    for (size_t i = 0; i < n; i++) {
        ss_sess_end_subs(all[i], "shutdown");
        ss_sess_unref(all[i]);
    }
    free(all);
}

int ss_app_save_all(ss_app *a, size_t *total) {
    ss_sess **all;
    size_t n;
    *total = 0;
    if (!a->cfg.state_dir[0] || !a->pool || ss_table_list(a->table, &all, &n) != 0) return 0;
    __atomic_store_n(&a->save_failures, 0, __ATOMIC_RELAXED);
    if (a->wal) /* every change is in a log: each worker saves what its log holds */
        for (uint32_t w = 0; w < ss_pool_workers(a->pool); w++)
            submit_worker(a, w, SS_JOB_CHECKPOINT);
    for (size_t i = 0; i < n; i++) {
        if (!a->wal) submit_free(a, all[i], SS_JOB_SAVE, 1);
        ss_sess_unref(all[i]);
    }
    free(all);
    ss_pool_drain(a->pool);
    int64_t failed = __atomic_load_n(&a->save_failures, __ATOMIC_RELAXED);
    *total = n;
    return failed >= (int64_t)n ? 0 : (int)(n - (size_t)failed);
}

void ss_app_join_workers(ss_app *a) {
    if (a->pool) ss_pool_stop(a->pool);
}

void ss_app_stop_http(ss_app *a) {
    if (!a->daemon) return;
    /* forwards still waiting are answered (503) and their connections resumed first */
    if (a->cluster) ss_fwd_stop(ss_cluster_fwd(a->cluster));
    /* replies that are queued but not yet written: give them up to 3 s */
    for (int i = 0; i < 300 && __atomic_load_n(&a->inflight, __ATOMIC_RELAXED) > 0; i++)
        usleep(10000);
    MHD_stop_daemon(a->daemon);
    a->daemon = NULL;
}

void ss_app_free(ss_app *a) {
    stop_janitor(a);
    ss_grpc_free(a);
    ss_app_stop_http(a);
    ss_cluster_free(a->cluster);
    ss_pool_free(a->pool);
    ss_oip_free(a->oip);
    ss_wal_free(a->wal);
    ss_table_free(a->table); /* the sessions' references to their versions first */
    ss_reg_free(a->reg);
    ss_metrics_free(a->metrics);
    ss_auth_free(a->auth);
    ss_ui_release();
    pthread_mutex_destroy(&a->jmu);
    pthread_cond_destroy(&a->jcv);
    memset(a, 0, sizeof *a);
}
