/* cluster.c: the routing rules of cluster.h, and moves.
 *
 * A move marks the session `moving` first (ops refuse it from then on, and a worker refuses
 * any step, reset, restore or close of it that was queued before the mark but runs after
 * the snapshot), then queues the snapshot on the session's worker, so the snapshot holds
 * every batch answered before it. The old copy is closed only after the new owner's 2xx; a
 * PUT that failed without an answer is checked with a GET on the new owner (it may have
 * landed), and otherwise the session stays here, unmarked, and is served as before.
 * Moves run on MOVERS threads at once; each is one snapshot and one PUT. */
#include "cluster.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exec.h"
#include "log.h"
#include "ops.h"
#include "peers.h"

#define MOVERS 4
#define MOVE_CALL_MS 10000 /* one PUT of a snapshot, at most */

struct ss_cluster {
    ss_peers *peers;
    ss_fwd *fwd;
    ss_app *app;
    pthread_mutex_t pass_mu; /* one pass of moves at a time (reload, rebalance, handoff) */
    pthread_mutex_t mu;      /* guards what follows */
    pthread_cond_t cv;
    pthread_t rebalancer;
    int started, stop;
};

int ss_cluster_create(ss_app *a, char *err, size_t errlen) {
    a->cluster = NULL;
    if (!a->cfg.peers[0]) return 0;
    ss_cluster *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "cluster: out of memory");
        return -1;
    }
    pthread_mutex_init(&c->pass_mu, NULL);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (ss_peers_create(&c->peers, a->cfg.peers, a->cfg.self, (int64_t)a->cfg.move_window * 1000,
                        err, errlen) != 0 ||
        ss_fwd_create(&c->fwd, err, errlen) != 0) {
        ss_cluster_free(c);
        return -1;
    }
    ss_metrics_ring_peers(a->metrics, ss_peers_count(c->peers));
    c->app = a;
    a->cluster = c;
    return 0;
}

static void stop_rebalancer(ss_cluster *c) {
    pthread_mutex_lock(&c->mu);
    int started = c->started;
    c->stop = 1;
    c->started = 0;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (started) pthread_join(c->rebalancer, NULL);
}

void ss_cluster_free(ss_cluster *c) {
    if (!c) return;
    stop_rebalancer(c);
    ss_fwd_free(c->fwd);
    ss_peers_free(c->peers);
    pthread_mutex_destroy(&c->pass_mu);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

ss_fwd *ss_cluster_fwd(ss_cluster *c) {
    return c->fwd;
}

const char *ss_cluster_self(ss_cluster *c) {
    return ss_peers_self(c->peers);
}

void ss_cluster_count_forward(ss_app *a) {
    ss_metrics_forwarded(a->metrics);
}

/* 1 when key is held here: moving (2) or not (1); 0 not held. */
static int held(ss_app *a, const char *key) {
    ss_sess *s = ss_table_get(a->table, key);
    if (!s) return 0;
    pthread_mutex_lock(&s->mu);
    int h = s->closed ? 0 : s->moving ? 2 : 1;
    pthread_mutex_unlock(&s->mu);
    ss_sess_unref(s);
    return h;
}

int ss_cluster_route(ss_app *a, const char *key, int hop, char *peer, size_t cap,
                     ss_reply *refusal) {
    ss_cluster *c = a->cluster;
    peer[0] = 0;
    if (!c) return SS_CL_LOCAL;
    int h = held(a, key);
    if (h == 1) return SS_CL_LOCAL;
    if (h == 2) {
        ss_peers_owns(c->peers, key, strlen(key), peer, cap);
        ss_reply_fail(refusal, SS_E_NOT_OWNER, "session %s is moving to %s; retry", key, peer);
        return SS_CL_REFUSE;
    }
    if (!ss_peers_owns(c->peers, key, strlen(key), peer, cap)) {
        if (hop == SS_HOP_CLIENT) return SS_CL_FORWARD;
        ss_reply_fail(refusal, SS_E_NOT_OWNER,
                      "session %s: not here, and its owner is %s in this replica's ring (the "
                      "rings are changing); retry",
                      key, peer);
        return SS_CL_REFUSE;
    }
    char prev[SS_PEER_MAX + 1];
    if (!ss_peers_prev_owner(c->peers, key, strlen(key), prev, sizeof prev)) return SS_CL_LOCAL;
    if (hop != SS_HOP_LOOKUP) {
        snprintf(peer, cap, "%s", prev);
        return SS_CL_PREV;
    }
    ss_reply_fail(refusal, SS_E_NOT_OWNER,
                  "session %s: not here yet (it may be moving here from %s); retry", key, prev);
    return SS_CL_REFUSE;
}

int ss_cluster_prev_says_mine(ss_app *a, const ss_fwd_call *c) {
    return a->cluster && c->status == 503 && !strcmp(c->owner, ss_peers_self(a->cluster->peers));
}

int ss_cluster_owns(ss_app *a, const char *id) {
    char owner[SS_PEER_MAX + 1];
    return !a->cluster || ss_peers_owns(a->cluster->peers, id, strlen(id), owner, sizeof owner);
}

int ss_cluster_elsewhere(ss_app *a, const char *id, ss_reply *r) {
    char owner[SS_PEER_MAX + 1];
    if (!a->cluster || ss_peers_owns(a->cluster->peers, id, strlen(id), owner, sizeof owner))
        return 0;
    ss_reply_fail(r, SS_E_NOT_OWNER, "session %.64s: not here; its owner is %s; retry there", id,
                  owner);
    return 1;
}

/* ---- moves ---- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} waiter;

static void wake(ss_job *j) {
    waiter *w = j->ctx;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Run j (on s, with a reference of its own) on s's worker and wait for its reply. */
static void run_job(ss_app *a, ss_job *j, ss_sess *s) {
    waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    ss_op o;
    memset(&o, 0, sizeof o);
    o.app = a;
    o.out = &ss_codec_pb;
    o.done = wake;
    o.ctx = &w;
    ss_sess_ref(s);
    j->sess = s;
    ss_op_submit(&o, j, s->worker);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
}

static void set_moving(ss_sess *s, int v) {
    pthread_mutex_lock(&s->mu);
    s->moving = v;
    pthread_mutex_unlock(&s->mu);
}

/* One call to dest about s: method on path suffix ("/state" or ""). With API keys it
 * presents the key of s's owner (every replica has the same keys), so dest sees s as its
 * owner does and a moved session keeps its owner. -1: that key is gone (nothing sent). */
static int call_peer(ss_app *a, ss_fwd_call *k, const char *dest, const char *method,
                     const ss_sess *s, const char *suffix, long timeout_ms) {
    memset(k, 0, sizeof *k);
    snprintf(k->url, sizeof k->url, "http://%s/v1/sessions/%s%s", dest, s->id, suffix);
    snprintf(k->method, sizeof k->method, "%s", method);
    k->timeout_ms = timeout_ms;
    k->max_bytes = 1u << 20;
    ss_fwd_header(k, "Accept", "application/json");
    ss_fwd_header(k, SS_HDR_FORWARDED, ss_peers_self(a->cluster->peers));
    if (!a->auth || !s->owner) return 0;
    const char *key = ss_auth_key(a->auth, s->owner);
    if (!key) return -1;
    char bearer[600];
    snprintf(bearer, sizeof bearer, "Bearer %s", key);
    ss_fwd_header(k, "Authorization", bearer);
    return 0;
}

/* Move s to dest: 0 moved (closed here), -1 it stays here (err says why). */
static int move_one(ss_app *a, ss_sess *s, const char *dest, int64_t deadline_ms, size_t *bytes,
                    char *err, size_t errlen) {
    ss_cluster *c = a->cluster;
    pthread_mutex_lock(&s->mu);
    int skip = s->closed || s->moving;
    if (!skip) s->moving = 1;
    pthread_mutex_unlock(&s->mu);
    if (skip) {
        snprintf(err, errlen, "closed or moving already");
        return -1;
    }
    int64_t t0 = ss_util_mono_us();
    ss_job *snap = ss_job_new(SS_JOB_STATE_GET);
    if (!snap) {
        set_moving(s, 0);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    run_job(a, snap, s);
    if (snap->reply.status != 200) {
        snprintf(err, errlen, "snapshot: %.200s", snap->reply.msg);
        ss_job_free(snap);
        set_moving(s, 0);
        return -1;
    }
    long left = (long)(deadline_ms - ss_util_now_ms());
    long tmo = left < MOVE_CALL_MS ? (left > 100 ? left : 100) : MOVE_CALL_MS;
    ss_fwd_call put;
    if (call_peer(a, &put, dest, "PUT", s, "/state", tmo) != 0) {
        snprintf(err, errlen, "its owner's API key is not among this server's keys");
        ss_fwd_call_clear(&put);
        ss_job_free(snap);
        set_moving(s, 0);
        return -1;
    }
    ss_fwd_header(&put, "Content-Type", "application/x-protobuf");
    ss_fwd_header(&put, SS_HDR_MOVE, ss_peers_self(c->peers));
    put.body = snap->reply.body;
    put.len = snap->reply.len;
    *bytes = snap->reply.len;
    ss_fwd_run(&put);
    int ok = put.status >= 200 && put.status < 300;
    if (!ok && (put.status == 0 || put.status >= 500)) {
        /* no answer, or a failure after which the PUT may still have landed: look */
        ss_fwd_call probe;
        call_peer(a, &probe, dest, "GET", s, "", 2000);   /* the key was found for the PUT */
        ss_fwd_header(&probe, SS_HDR_LOOKUP, "previous"); /* its own table only */
        ss_fwd_run(&probe);
        ok = probe.status == 200;
        ss_fwd_call_clear(&probe);
    }
    if (!ok)
        snprintf(err, errlen, "PUT to %.255s: %.200s", dest,
                 put.status ? "refused" : (put.err[0] ? put.err : "no answer"));
    if (!ok && put.status && put.resp_len)
        snprintf(err, errlen, "PUT to %.255s: %ld %.*s", dest, put.status,
                 (int)(put.resp_len > 200 ? 200 : put.resp_len), (const char *)put.resp);
    ss_fwd_call_clear(&put);
    ss_job_free(snap);
    if (!ok) {
        set_moving(s, 0);
        return -1;
    }
    ss_job *cl = ss_job_new(SS_JOB_CLOSE);
    if (cl) {
        cl->tag = SS_CLOSE_MOVED;
        run_job(a, cl, s);
        ss_job_free(cl);
    } /* out of memory: it stays here, refused as moving, until the process ends */
    ss_metrics_moved_out(a->metrics, ss_util_mono_us() - t0);
    return 0;
}

typedef struct {
    ss_app *a;
    ss_sess **all;
    size_t n;
    size_t next; /* atomic: the next index to take */
    int drain;   /* 1: every session to its heir; 0: those whose owner changed */
    int quiet;   /* a failed move is logged at debug level (rebalance passes) */
    int64_t deadline_ms;
    size_t moved, failed, bytes; /* atomic */
    int64_t us;                  /* atomic: time moving */
} batch;

static void *mover(void *arg) {
    batch *b = arg;
    ss_cluster *c = b->a->cluster;
    for (;;) {
        size_t i = __atomic_fetch_add(&b->next, 1, __ATOMIC_RELAXED);
        if (i >= b->n) break;
        ss_sess *s = b->all[i];
        char dest[SS_PEER_MAX + 1], err[512];
        int to = b->drain ? ss_peers_heir(c->peers, s->id, strlen(s->id), dest, sizeof dest)
                          : !ss_peers_owns(c->peers, s->id, strlen(s->id), dest, sizeof dest);
        if (!to) continue;
        if (ss_util_now_ms() >= b->deadline_ms) {
            __atomic_fetch_add(&b->failed, 1, __ATOMIC_RELAXED);
            continue;
        }
        size_t bytes = 0;
        int64_t t0 = ss_util_mono_us();
        if (move_one(b->a, s, dest, b->deadline_ms, &bytes, err, sizeof err) == 0) {
            __atomic_fetch_add(&b->moved, 1, __ATOMIC_RELAXED);
            __atomic_fetch_add(&b->bytes, bytes, __ATOMIC_RELAXED);
            __atomic_fetch_add(&b->us, ss_util_mono_us() - t0, __ATOMIC_RELAXED);
        } else {
            __atomic_fetch_add(&b->failed, 1, __ATOMIC_RELAXED);
            ss_log(b->quiet ? SS_LOG_DEBUG : SS_LOG_WARN, "session %s: not moved to %s: %s", s->id,
                   dest, err);
        }
    }
    return NULL;
}

/* Move the table's sessions (drain: all; else those owned elsewhere) until deadline. */
static void move_all(ss_app *a, int drain, int quiet, int64_t deadline_ms, size_t *moved,
                     size_t *failed, size_t *total) {
    batch b = {.a = a, .drain = drain, .quiet = quiet, .deadline_ms = deadline_ms};
    pthread_mutex_lock(&a->cluster->pass_mu);
    *moved = *failed = *total = 0;
    if (ss_table_list(a->table, &b.all, &b.n) != 0) {
        pthread_mutex_unlock(&a->cluster->pass_mu);
        ss_log(SS_LOG_ERROR, "moves: out of memory for the session list");
        return;
    }
    pthread_t th[MOVERS];
    int started = 0;
    for (; started < MOVERS && (size_t)started < b.n; started++)
        if (pthread_create(&th[started], NULL, mover, &b) != 0) break;
    if (started == 0) mover(&b);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_unlock(&a->cluster->pass_mu);
    for (size_t i = 0; i < b.n; i++)
        ss_sess_unref(b.all[i]);
    free(b.all);
    *moved = b.moved;
    *failed = b.failed;
    *total = b.n;
    if (b.moved)
        ss_log(SS_LOG_INFO, "moves: %zu sessions, %zu snapshot bytes, %.3f ms per session", b.moved,
               b.bytes, (double)b.us / 1000.0 / (double)b.moved);
}

void ss_cluster_reload(ss_app *a) {
    ss_cluster *c = a->cluster;
    if (!c) {
        ss_log(SS_LOG_INFO, "SIGHUP: no --peers, nothing to re-read");
        return;
    }
    char err[1024];
    int rc = ss_peers_reload(c->peers, err, sizeof err);
    if (rc < 0) {
        ss_log(SS_LOG_ERROR, "SIGHUP: %s; the ring stays as it was", err);
        return;
    }
    if (rc == 0) {
        ss_log(SS_LOG_INFO, "SIGHUP: %s unchanged (%zu peers)", a->cfg.peers,
               ss_peers_count(c->peers));
        return;
    }
    size_t n = ss_peers_count(c->peers);
    ss_metrics_ring_peers(a->metrics, n);
    ss_log(SS_LOG_INFO, "SIGHUP: %zu peers now; moving the sessions whose owner changed", n);
    size_t moved = 0, failed = 0, total = 0;
    /* a failed move is tried again a few times (the new owner may still be starting) */
    for (int pass = 0; pass < 3; pass++) {
        if (pass) sleep(1);
        move_all(a, 0, 0, ss_util_now_ms() + (int64_t)a->cfg.handoff_timeout * 1000, &moved,
                 &failed, &total);
        ss_log(SS_LOG_INFO, "ring change: moved %zu of %zu sessions (%.1f%%), %zu not moved", moved,
               total, total ? 100.0 * (double)moved / (double)total : 0.0, failed);
        if (!failed) break;
    }
}

void ss_cluster_handoff(ss_app *a, size_t *moved, size_t *left) {
    size_t failed = 0, total = 0;
    *moved = *left = 0;
    if (!a->cluster) return;
    stop_rebalancer(a->cluster);
    int64_t deadline = ss_util_now_ms() + (int64_t)a->cfg.handoff_timeout * 1000;
    move_all(a, 1, 0, deadline, moved, &failed, &total);
    if (failed && ss_util_now_ms() < deadline) { /* once more, what failed */
        size_t m2 = 0;
        sleep(1);
        move_all(a, 1, 0, deadline, &m2, &failed, &total);
        *moved += m2;
    }
    *left = ss_table_count(a->table);
}

/* Every --rebalance-interval: move what this replica holds but does not own to its owner.
 * After a rolling restart (SIGTERM handed a replica's sessions to the others, and it came
 * back under the same name) this brings them home; an owner that is down is tried again
 * at the next pass. */
static void *rebalancer(void *arg) {
    ss_cluster *c = arg;
    ss_app *a = c->app;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += a->cfg.rebalance_interval;
        while (!c->stop && pthread_cond_timedwait(&c->cv, &c->mu, &ts) == 0)
            ;
        int stop = c->stop;
        pthread_mutex_unlock(&c->mu);
        if (stop) break;
        size_t moved = 0, failed = 0, total = 0;
        move_all(a, 0, 1, ss_util_now_ms() + (int64_t)a->cfg.handoff_timeout * 1000, &moved,
                 &failed, &total);
        if (moved || failed)
            ss_log(moved ? SS_LOG_INFO : SS_LOG_DEBUG,
                   "rebalance: moved %zu sessions to their owners, %zu not moved (owner down?)",
                   moved, failed);
    }
    return NULL;
}

void ss_cluster_start(ss_app *a) {
    ss_cluster *c = a->cluster;
    if (!c || !a->cfg.rebalance_interval) return;
    pthread_mutex_lock(&c->mu);
    if (!c->started && !c->stop && pthread_create(&c->rebalancer, NULL, rebalancer, c) == 0)
        c->started = 1;
    pthread_mutex_unlock(&c->mu);
}
