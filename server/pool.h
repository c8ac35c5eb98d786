/* pool.h: the worker pool. A fixed set of threads, each with a bounded FIFO of jobs
 * (exec.h). A session's jobs always go to its worker (ss_sess.worker), so they run in
 * arrival order on one thread, and its hidden state needs no lock.
 *
 * Thread-safety: submit/wait/close may be called from any thread. Lifecycle:
 * create -> submit... -> close_gate (refuse new client work) -> drain -> (forced SAVE jobs)
 * -> drain -> stop (join) -> free.
 */
#ifndef SS_POOL_H
#define SS_POOL_H

#include "exec.h"

enum { SS_POOL_EFULL = -1, SS_POOL_ECLOSED = -2 };

typedef struct ss_pool ss_pool;

/* Someone waiting for room in a worker's queue (a paused /stream upload). The worker calls
 * wake(arg) once when it takes jobs off the queue; the struct belongs to the caller and
 * must stay valid until then. */
typedef struct ss_pool_waiter {
    void (*wake)(void *arg);
    void *arg;
    struct ss_pool_waiter *next;
} ss_pool_waiter;

ss_pool *ss_pool_create(uint32_t workers, uint32_t queue_depth, const ss_exec_env *env, char *err,
                        size_t errlen);
uint32_t ss_pool_workers(const ss_pool *p);
/* Queue j on worker w (j->sess->worker for session jobs). 0, SS_POOL_EFULL (queue at its
 * depth; not for force), SS_POOL_ECLOSED (gate closed; not for force, or pool stopped).
 * On success the worker owns j until it calls j->done. */
int ss_pool_submit(ss_pool *p, uint32_t w, ss_job *j, int force);
/* Like submit; when the queue is full, registers wt instead and returns 1. */
int ss_pool_submit_or_wait(ss_pool *p, uint32_t w, ss_job *j, ss_pool_waiter *wt);
/* Refuse further non-forced submissions and wake every waiter. */
void ss_pool_close_gate(ss_pool *p);
/* Wait until every queue is empty and every worker idle. */
void ss_pool_drain(ss_pool *p);
/* Let the workers finish their queues, then join them. */
void ss_pool_stop(ss_pool *p);
void ss_pool_free(ss_pool *p); /* stops first if needed; NULL is a no-op */

#endif
