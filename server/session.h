/* session.h: sessions and the table that finds them by id.
 *
 * A session is one model's recurrent state plus its bookkeeping. It belongs to one worker
 * for life (`worker`, fixed at creation): only that worker touches `state` and `last`,
 * without a lock. `mu` guards only the metadata that HTTP threads read
 * (t, last_seq, times, subscribers, closed).
 *
 * Ownership: sessions are reference counted; the table holds one reference, and every
 * ss_table_get() hands the caller another (drop it with ss_sess_unref()).
 * Thread-safety: the table has a read-write lock; every function is thread-safe.
 */
#ifndef SS_SESSION_H
#define SS_SESSION_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "../engine/state.h"
#include "batch.h"
#include "err.h"
#include "sse.h"
#include "util.h"

typedef struct ss_sess {
    char id[SS_ID_MAX + 1];
    const spk_model *model; /* mv->model */
    uint32_t model_idx;     /* mv->slot */
    struct ss_mver *mv;     /* the model version it is pinned to: a reference (registry.h) */
    uint32_t worker;
    uint64_t owner;         /* hash of the API key that opened it (0: any key), fixed */
    spk_state *state;       /* worker-owned */
    struct ss_answer *last; /* worker-owned: the answer of last_seq (answer.h), or NULL */
    int wal_dirty;          /* worker-owned: changes in the write-ahead log since its last save */

    pthread_mutex_t mu; /* guards what follows */
    uint64_t t, last_seq;
    int64_t created_ms, active_ms;
    int64_t saved_ms; /* active_ms as of the last write to --state-dir (-1: never) */
    uint32_t idle_timeout_s;
    int closed;
    int moving;       /* cluster.h: being moved to another replica; requests are refused */
    uint32_t pending; /* jobs queued for this session */
    ss_sse **subs;
    uint32_t n_subs;

    int refs; /* atomic */
    struct ss_sess *hnext;
} ss_sess;

/* What a session says about itself (GET /v1/sessions/{id}), read under its lock. */
typedef struct {
    const char *id, *model;
    uint32_t model_version, idle_timeout_s, worker;
    uint64_t t, last_seq;
    char created_at[40], last_active_at[40];
} ss_sess_info;
void ss_sess_info_get(ss_sess *s, ss_sess_info *out);
/* Set the answer of last_seq (worker-only): s takes a (NULL drops the stored one). */
void ss_sess_set_last(ss_sess *s, struct ss_answer *a);

/* A new session (one reference) of model version mv (it takes a reference of its own),
 * state at the model's initial state, times = now. */
ss_sess *ss_sess_create(const char *id, struct ss_mver *mv, uint32_t worker,
                        uint32_t idle_timeout_s);
void ss_sess_ref(ss_sess *s);
void ss_sess_unref(ss_sess *s); /* frees at zero; NULL is a no-op */

/* Subscribers. subscribe: 0, SS_E_SUBSCRIBERS when max are attached (SS_E_NOMEM when
 * memory is short), SS_E_NOT_FOUND when the session is closed;
 * the session takes over one reference of sub on success. */
int ss_sess_subscribe(ss_sess *s, ss_sse *sub, uint32_t max);
/* Publish a `step` event of res to every subscriber (dropping slow ones): JSON for event
 * streams, protobuf for sinks, each encoded once. Returns how many were dropped. */
int ss_sess_publish(ss_sess *s, const ss_result *res);
void ss_sess_keepalive(ss_sess *s);
/* `end` with reason to every subscriber and detach them. */
void ss_sess_end_subs(ss_sess *s, const char *reason);
int ss_sess_has_subs(ss_sess *s);
void ss_sess_touch(ss_sess *s); /* active_ms = now */
/* 1 when a request with this API key owner may see s (no keys, an unowned session, or
 * its owner). */
static inline int ss_sess_visible(const ss_sess *s, uint64_t owner) {
    return owner == 0 || s->owner == 0 || s->owner == owner; /* keys hash to non-zero */
}

typedef struct ss_table ss_table;
ss_table *ss_table_create(uint32_t max_sessions);
void ss_table_free(ss_table *t); /* drops the table's references */
/* Insert: 0, SS_E_SESSIONS when the table is full (max sessions), SS_E_EXISTS when the id
 * exists. */
int ss_table_insert(ss_table *t, ss_sess *s);
/* Insert, replacing (and returning, with its reference) an existing session of that id. */
int ss_table_put(ss_table *t, ss_sess *s, ss_sess **old);
ss_sess *ss_table_get(ss_table *t, const char *id);
/* Remove s if it is still the entry for its id: 1 removed (the table's reference passes to
 * the caller), 0 not there. */
int ss_table_remove(ss_table *t, ss_sess *s);
size_t ss_table_count(ss_table *t);
/* Every session, each with a reference, in a malloc'd array. 0 or -1. */
int ss_table_list(ss_table *t, ss_sess ***out, size_t *n);

#endif
