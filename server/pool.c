/* pool.c: one mutex + condition per worker guards its queue (never a session's state).
 * A worker takes everything queued (up to a group's worth) in one go, so sessions whose
 * batches are ready together can be stepped together by ss_exec_run(). */
#include "pool.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAKE_MAX 64

typedef struct {
    ss_pool *pool;
    uint32_t id;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv, idle_cv;
    ss_job *head, *tail;
    uint32_t depth; /* queued, not yet taken */
    int busy, gate, stopping;
    int sleeping; /* the worker waits on cv: the next submit signals it */
    ss_pool_waiter *waiters;
    ss_exec *exec;
} worker;

struct ss_pool {
    uint32_t n, queue_depth;
    ss_metrics *metrics;
    worker *w;
};

static void wake_all(ss_pool_waiter *wt) {
    while (wt) {
        ss_pool_waiter *next = wt->next; /* wake may free wt */
        wt->next = NULL;
        wt->wake(wt->arg);
        wt = next;
    }
}

static void *worker_main(void *arg) {
    worker *w = arg;
    ss_job *batch[TAKE_MAX];
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->head && !w->stopping) {
            w->busy = 0;
            pthread_cond_broadcast(&w->idle_cv);
            w->sleeping = 1;
            pthread_cond_wait(&w->cv, &w->mu);
            w->sleeping = 0;
        }
        if (!w->head) {
            w->busy = 0;
            pthread_cond_broadcast(&w->idle_cv);
            pthread_mutex_unlock(&w->mu);
            break;
        }
        w->busy = 1;
        size_t n = 0;
        while (w->head && n < TAKE_MAX) {
            batch[n++] = w->head;
            w->head = w->head->next;
        }
        if (!w->head) w->tail = NULL;
        w->depth -= (uint32_t)n;
        ss_pool_waiter *wt = w->waiters;
        w->waiters = NULL;
        pthread_mutex_unlock(&w->mu);
        wake_all(wt);
        ss_exec_run(w->exec, batch, n);
        ss_metrics_queue_depth(w->pool->metrics, w->id, -(int64_t)n);
    }
    return NULL;
}

ss_pool *ss_pool_create(uint32_t workers, uint32_t queue_depth, const ss_exec_env *env, char *err,
                        size_t errlen) {
    ss_pool *p = calloc(1, sizeof *p);
    if (!p) goto oom;
    p->n = workers ? workers : 1;
    p->queue_depth = queue_depth;
    p->metrics = env->metrics;
    p->w = calloc(p->n, sizeof *p->w);
    if (!p->w) goto oom;
    for (uint32_t i = 0; i < p->n; i++) {
        worker *w = &p->w[i];
        w->pool = p;
        w->id = i;
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
        pthread_cond_init(&w->idle_cv, NULL);
        if (!(w->exec = ss_exec_create(env, i, err, errlen))) goto fail;
    }
    for (uint32_t i = 0; i < p->n; i++) {
        if (pthread_create(&p->w[i].thread, NULL, worker_main, &p->w[i]) != 0) {
            snprintf(err, errlen, "cannot start worker thread %u", i);
            goto fail;
        }
        p->w[i].started = 1;
    }
    return p;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    ss_pool_free(p);
    return NULL;
}

uint32_t ss_pool_workers(const ss_pool *p) {
    return p->n;
}

static int submit(ss_pool *p, uint32_t w_id, ss_job *j, int force, ss_pool_waiter *wt) {
    worker *w = &p->w[w_id % p->n];
    pthread_mutex_lock(&w->mu);
    if (w->stopping || (w->gate && !force)) {
        pthread_mutex_unlock(&w->mu);
        return SS_POOL_ECLOSED;
    }
    if (!force && w->depth >= p->queue_depth) {
        int rc = SS_POOL_EFULL;
        if (wt) {
            wt->next = w->waiters;
            w->waiters = wt;
            rc = 1;
        }
        pthread_mutex_unlock(&w->mu);
        return rc;
    }
    if (j->sess) {
        pthread_mutex_lock(&j->sess->mu);
        j->sess->pending++;
        pthread_mutex_unlock(&j->sess->mu);
    }
    j->next = NULL;
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    w->depth++;
    w->busy = 1;
    /* Signalled after the unlock and only when the worker sleeps: signalled under the lock,
     * the woken worker blocked at once on the mutex still held here, and every request paid
     * two more futex calls and a context switch for that (seen with perf under wrk). */
    int wake = w->sleeping;
    w->sleeping = 0; /* one signal per sleep is enough: a second submit needs none */
    pthread_mutex_unlock(&w->mu);
    if (wake) pthread_cond_signal(&w->cv);
    ss_metrics_queue_depth(p->metrics, w->id, 1);
    return 0;
}

int ss_pool_submit(ss_pool *p, uint32_t w, ss_job *j, int force) {
    return submit(p, w, j, force, NULL);
}

int ss_pool_submit_or_wait(ss_pool *p, uint32_t w, ss_job *j, ss_pool_waiter *wt) {
    return submit(p, w, j, 0, wt);
}

void ss_pool_close_gate(ss_pool *p) {
    for (uint32_t i = 0; i < p->n; i++) {
        worker *w = &p->w[i];
        pthread_mutex_lock(&w->mu);
        w->gate = 1;
        ss_pool_waiter *wt = w->waiters;
        w->waiters = NULL;
        pthread_mutex_unlock(&w->mu);
        wake_all(wt);
    }
}

void ss_pool_drain(ss_pool *p) {
    for (uint32_t i = 0; i < p->n; i++) {
        worker *w = &p->w[i];
        pthread_mutex_lock(&w->mu);
        while (w->started && (w->head || w->busy))
            pthread_cond_wait(&w->idle_cv, &w->mu);
        pthread_mutex_unlock(&w->mu);
    }
}

void ss_pool_stop(ss_pool *p) {
    for (uint32_t i = 0; i < p->n; i++) {
        worker *w = &p->w[i];
        pthread_mutex_lock(&w->mu);
        w->stopping = 1;
        ss_pool_waiter *wt = w->waiters;
        w->waiters = NULL;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        wake_all(wt);
    }
    for (uint32_t i = 0; i < p->n; i++)
        if (p->w[i].started) {
            pthread_join(p->w[i].thread, NULL);
            p->w[i].started = 0;
        }
}

void ss_pool_free(ss_pool *p) {
    if (!p) return;
    if (p->w) {
        ss_pool_stop(p);
        for (uint32_t i = 0; i < p->n; i++) {
            ss_exec_free(p->w[i].exec);
            pthread_mutex_destroy(&p->w[i].mu);
            pthread_cond_destroy(&p->w[i].cv);
            pthread_cond_destroy(&p->w[i].idle_cv);
        }
        free(p->w);
    }
    free(p);
}
