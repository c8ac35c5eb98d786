/* session.c: sessions and a chained hash table of them. The table lock is held only to
 * find, insert or remove an entry; everything else works on a referenced session. */
#include "session.h"

#include "answer.h"
#include "codec.h"
#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ss_sess *ss_sess_create(const char *id, ss_mver *mv, uint32_t worker, uint32_t idle_timeout_s) {
    ss_sess *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    const spk_model *m = mv->model;
    s->state = spk_state_create(m);
    if (!s->state) {
        free(s);
        return NULL;
    }
    snprintf(s->id, sizeof s->id, "%s", id);
    s->model = m;
    s->model_idx = mv->slot;
    s->mv = mv;
    ss_reg_ref(mv);
    __atomic_fetch_add(&mv->sessions, 1, __ATOMIC_RELAXED);
    s->worker = worker;
    s->idle_timeout_s = idle_timeout_s;
    s->created_ms = s->active_ms = ss_util_now_ms();
    s->saved_ms = -1;
    s->refs = 1;
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

void ss_sess_info_get(ss_sess *s, ss_sess_info *out) {
    out->id = s->id;
    out->model = s->model->name;
    out->model_version = s->model->version;
    out->worker = s->worker;
    pthread_mutex_lock(&s->mu);
    out->t = s->t;
    out->last_seq = s->last_seq;
    out->idle_timeout_s = s->idle_timeout_s;
    ss_util_rfc3339(s->created_ms, out->created_at, sizeof out->created_at);
    ss_util_rfc3339(s->active_ms, out->last_active_at, sizeof out->last_active_at);
    pthread_mutex_unlock(&s->mu);
}

void ss_sess_set_last(ss_sess *s, struct ss_answer *a) {
    ss_answer_free(s->last);
    s->last = a;
}

void ss_sess_ref(ss_sess *s) {
    __atomic_fetch_add(&s->refs, 1, __ATOMIC_RELAXED);
}

void ss_sess_unref(ss_sess *s) {
    if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    for (uint32_t i = 0; i < s->n_subs; i++) {
        ss_sse_end(s->subs[i], "closed");
        ss_sse_unref(s->subs[i]);
    }
    free(s->subs);
    spk_state_free(s->state);
    ss_answer_free(s->last);
    if (s->mv) __atomic_fetch_sub(&s->mv->sessions, 1, __ATOMIC_RELAXED);
    ss_reg_unref(s->mv); /* last: the answer and state above were of its model */
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int ss_sess_subscribe(ss_sess *s, ss_sse *sub, uint32_t max) {
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    /* forget subscribers that went away, so they do not count against max */
    uint32_t k = 0;
    for (uint32_t i = 0; i < s->n_subs; i++) {
        if (ss_sse_closed(s->subs[i]))
            ss_sse_unref(s->subs[i]);
        else
            s->subs[k++] = s->subs[i];
    }
    s->n_subs = k;
    if (s->closed) {
        rc = SS_E_NOT_FOUND;
    } else if (s->n_subs >= max) {
        rc = SS_E_SUBSCRIBERS;
    } else {
        ss_sse **n = realloc(s->subs, (s->n_subs + 1) * sizeof *n);
        if (!n) {
            rc = SS_E_NOMEM;
        } else {
            s->subs = n;
            s->subs[s->n_subs++] = sub;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int ss_sess_publish(ss_sess *s, const ss_result *res) {
    int dropped = 0;
    char *json = NULL;
    uint8_t *pb = NULL;
    size_t jlen = 0, pblen = 0;
    pthread_mutex_lock(&s->mu);
    uint32_t k = 0;
    for (uint32_t i = 0; i < s->n_subs; i++) {
        ss_sse *sub = s->subs[i];
        int rc;
        if (ss_sse_wants_pb(sub)) { /* each format encoded once, for the first that needs it */
            if (!pb) pb = ss_result_pb(res, &pblen);
            rc = pb ? ss_sse_event_pb(sub, "step", pb, pblen) : -1;
        } else {
            if (!json) json = ss_result_json(res, &jlen); /* compact: one line */
            rc = json ? ss_sse_event(sub, "step", json, jlen) : -1;
        }
        if (rc != 0) {
            if (ss_sse_dropped(sub)) dropped++;
            if (!ss_sse_closed(sub)) ss_sse_end(sub, "error"); /* out of memory */
            ss_sse_unref(sub);
        } else {
            s->subs[k++] = sub;
        }
    }
    s->n_subs = k;
    pthread_mutex_unlock(&s->mu);
    free(json);
    free(pb);
    return dropped;
}

void ss_sess_keepalive(ss_sess *s) {
    pthread_mutex_lock(&s->mu);
    uint32_t k = 0;
    for (uint32_t i = 0; i < s->n_subs; i++) {
        if (ss_sse_comment(s->subs[i], "keep-alive") != 0)
            ss_sse_unref(s->subs[i]);
        else
            s->subs[k++] = s->subs[i];
    }
    s->n_subs = k;
    pthread_mutex_unlock(&s->mu);
}

void ss_sess_end_subs(ss_sess *s, const char *reason) {
    pthread_mutex_lock(&s->mu);
    for (uint32_t i = 0; i < s->n_subs; i++) {
        ss_sse_end(s->subs[i], reason);
        ss_sse_unref(s->subs[i]);
    }
    s->n_subs = 0;
    pthread_mutex_unlock(&s->mu);
}

int ss_sess_has_subs(ss_sess *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->n_subs > 0;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void ss_sess_touch(ss_sess *s) {
    int64_t now = ss_util_now_ms();
    pthread_mutex_lock(&s->mu);
    s->active_ms = now;
    pthread_mutex_unlock(&s->mu);
}

struct ss_table {
    pthread_rwlock_t lock;
    ss_sess **b;
    size_t mask, count, max;
};

static size_t hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return (size_t)h;
}

ss_table *ss_table_create(uint32_t max_sessions) {
    ss_table *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    size_t n = 1024;
    while (n < max_sessions && n < (1u << 22))
        n *= 2;
    t->b = calloc(n, sizeof *t->b);
    if (!t->b) {
        free(t);
        return NULL;
    }
    t->mask = n - 1;
    t->max = max_sessions;
    pthread_rwlock_init(&t->lock, NULL);
    return t;
}

void ss_table_free(ss_table *t) {
    if (!t) return;
    for (size_t i = 0; i <= t->mask; i++) {
        ss_sess *s = t->b[i];
        while (s) {
            ss_sess *n = s->hnext;
            ss_sess_unref(s);
            s = n;
        }
    }
    pthread_rwlock_destroy(&t->lock);
    free(t->b);
    free(t);
}

static ss_sess **find(ss_table *t, const char *id) {
    ss_sess **p = &t->b[hash(id) & t->mask];
    while (*p && strcmp((*p)->id, id) != 0)
        p = &(*p)->hnext;
    return p;
}

int ss_table_insert(ss_table *t, ss_sess *s) {
    pthread_rwlock_wrlock(&t->lock);
    int rc = 0;
    ss_sess **p = find(t, s->id);
    if (*p)
        rc = SS_E_EXISTS;
    else if (t->count >= t->max)
        rc = SS_E_SESSIONS;
    else {
        s->hnext = NULL;
        *p = s;
        t->count++;
    }
    pthread_rwlock_unlock(&t->lock);
    return rc;
}

int ss_table_put(ss_table *t, ss_sess *s, ss_sess **old) {
    pthread_rwlock_wrlock(&t->lock);
    ss_sess **p = find(t, s->id);
    *old = NULL;
    if (*p) {
        *old = *p;
        s->hnext = (*p)->hnext;
        *p = s;
    } else if (t->count >= t->max) {
        pthread_rwlock_unlock(&t->lock);
        return SS_E_SESSIONS;
    } else {
        s->hnext = NULL;
        *p = s;
        t->count++;
    }
    pthread_rwlock_unlock(&t->lock);
    return 0;
}

ss_sess *ss_table_get(ss_table *t, const char *id) {
    pthread_rwlock_rdlock(&t->lock);
    ss_sess *s = *find(t, id);
    if (s) ss_sess_ref(s);
    pthread_rwlock_unlock(&t->lock);
    return s;
}

int ss_table_remove(ss_table *t, ss_sess *s) {
    pthread_rwlock_wrlock(&t->lock);
    ss_sess **p = find(t, s->id);
    int rc = 0;
    if (*p == s) {
        *p = s->hnext;
        s->hnext = NULL;
        t->count--;
        rc = 1;
    }
    pthread_rwlock_unlock(&t->lock);
    return rc;
}

size_t ss_table_count(ss_table *t) {
    pthread_rwlock_rdlock(&t->lock);
    size_t n = t->count;
    pthread_rwlock_unlock(&t->lock);
    return n;
}

int ss_table_list(ss_table *t, ss_sess ***out, size_t *n) {
    pthread_rwlock_rdlock(&t->lock);
    ss_sess **a = malloc((t->count + 1) * sizeof *a);
    size_t k = 0;
    if (a)
        for (size_t i = 0; i <= t->mask; i++)
            for (ss_sess *s = t->b[i]; s; s = s->hnext) {
                ss_sess_ref(s);
                a[k++] = s;
            }
    pthread_rwlock_unlock(&t->lock);
    if (!a) return -1;
    *out = a;
    *n = k;
    return 0;
}
