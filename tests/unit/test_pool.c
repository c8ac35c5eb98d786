/* test_pool.c: the worker pool (server/pool.h) with real workers running real jobs through
 * ss_exec_run(): FIFO order per worker on one thread, the queue depth (SS_POOL_EFULL),
 * forced submits past it, waiters woken when the worker takes jobs, the gate
 * (SS_POOL_ECLOSED), drain, stop letting the queues finish, and many submitting threads at
 * once (this test also runs under ThreadSanitizer: make SANITIZER=thread all).
 *
 * The jobs are SS_JOB_CHECKPOINT jobs without a write-ahead log: a worker runs them as a
 * no-op and calls their `done`, which records (worker thread, tag) in the order it ran. A
 * "blocker" job's `done` holds its worker until the test lets it go, so the queue behind
 * it can be filled without any timing assumption. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tap.h"
#include "exec.h"
#include "metrics.h"
#include "pool.h"
#include "session.h"

/* ---- the record of what ran ---- */

#define LOG_MAX 40000

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t n;
    uint64_t tag[LOG_MAX];
    pthread_t thread[LOG_MAX];
    /* the blocker */
    int blocked, release;
} run_log;

static run_log lg = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}, {0}, 0, 0};

static void log_reset(void) {
    pthread_mutex_lock(&lg.mu);
    lg.n = 0;
    lg.blocked = lg.release = 0;
    pthread_mutex_unlock(&lg.mu);
}

static size_t log_count(void) {
    pthread_mutex_lock(&lg.mu);
    size_t n = lg.n;
    pthread_mutex_unlock(&lg.mu);
    return n;
}

static void done_record(ss_job *j) {
    pthread_mutex_lock(&lg.mu);
    if (lg.n < LOG_MAX) {
        lg.tag[lg.n] = j->tag;
        lg.thread[lg.n] = pthread_self();
        lg.n++;
    }
    pthread_mutex_unlock(&lg.mu);
    ss_job_free(j);
}

/* Holds its worker until blocker_release(). */
static void done_block(ss_job *j) {
    pthread_mutex_lock(&lg.mu);
    lg.blocked = 1;
    pthread_cond_broadcast(&lg.cv);
    while (!lg.release)
        pthread_cond_wait(&lg.cv, &lg.mu);
    lg.blocked = 0;
    pthread_mutex_unlock(&lg.mu);
    done_record(j);
}

static void blocker_wait_running(void) {
    pthread_mutex_lock(&lg.mu);
    while (!lg.blocked)
        pthread_cond_wait(&lg.cv, &lg.mu);
    pthread_mutex_unlock(&lg.mu);
}

static void blocker_release(void) {
    pthread_mutex_lock(&lg.mu);
    lg.release = 1;
    pthread_cond_broadcast(&lg.cv);
    pthread_mutex_unlock(&lg.mu);
}

static ss_job *job(uint64_t tag, void (*done)(ss_job *)) {
    ss_job *j = ss_job_new(SS_JOB_CHECKPOINT);
    if (!j) {
        printf("# out of memory\n");
        exit(2);
    }
    j->tag = tag;
    j->done = done;
    return j;
}

/* ---- a waiter ---- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int woken;
} wake_flag;

static void wake_fn(void *arg) {
    wake_flag *f = arg;
    pthread_mutex_lock(&f->mu);
    f->woken++;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static int woken(wake_flag *f) {
    pthread_mutex_lock(&f->mu);
    int n = f->woken;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* ---- the pool's environment ---- */

static ss_metrics *metrics;
static ss_table *table;

static ss_pool *pool_new(uint32_t workers, uint32_t depth) {
    ss_exec_env env;
    memset(&env, 0, sizeof env);
    env.table = table;
    env.metrics = metrics;
    char err[256] = "";
    ss_pool *p = ss_pool_create(workers, depth, &env, err, sizeof err);
    if (!p) {
        printf("# ss_pool_create: %s\n", err);
        exit(2);
    }
    return p;
}

static void free_null(void) {
    ss_pool_free(NULL);
}

static int runs_cleanly(void (*fn)(void)) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return 0;
    if (pid == 0) {
        fn();
        _exit(0);
    }
    int st;
    return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Tags: worker in the high bits, sequence number in the low ones. */
#define TAG(w, i) (((uint64_t)(w) << 32) | (uint64_t)(i))

static void test_fifo(void) {
    log_reset();
    ss_pool *p = pool_new(3, 1000);
    is_int(ss_pool_workers(p), 3, "3 workers");
    int rc_all = 0;
    for (uint32_t i = 0; i < 900; i++) {
        uint32_t w = i % 3;
        rc_all |= ss_pool_submit(p, w, job(TAG(w, i), done_record), 0);
    }
    is_int(rc_all, 0, "900 submits below the depth: all 0");
    ss_pool_drain(p);
    is_int(log_count(), 900, "after drain every job has run (900 done calls)");
    /* per worker: increasing sequence numbers, every one on the same thread, and the three
     * workers on three different threads */
    uint64_t last[3] = {0, 0, 0};
    int seen[3] = {0, 0, 0}, order_ok = 1, thread_ok = 1, count[3] = {0, 0, 0};
    pthread_t th[3];
    pthread_mutex_lock(&lg.mu);
    for (size_t k = 0; k < lg.n; k++) {
        uint32_t w = (uint32_t)(lg.tag[k] >> 32);
        uint64_t i = lg.tag[k] & 0xffffffffu;
        if (w > 2) {
            order_ok = 0;
            continue;
        }
        if (seen[w] && i <= last[w]) order_ok = 0;
        if (!seen[w])
            th[w] = lg.thread[k];
        else if (!pthread_equal(th[w], lg.thread[k]))
            thread_ok = 0;
        seen[w] = 1;
        last[w] = i;
        count[w]++;
    }
    pthread_mutex_unlock(&lg.mu);
    ok(order_ok, "each worker ran its jobs in submission order");
    ok(thread_ok, "each worker's jobs all ran on one thread");
    ok(seen[0] && seen[1] && seen[2] && !pthread_equal(th[0], th[1]) &&
           !pthread_equal(th[1], th[2]) && !pthread_equal(th[0], th[2]),
       "the three workers are three threads");
    ok(count[0] == 300 && count[1] == 300 && count[2] == 300, "300 jobs on each worker");
    /* worker ids wrap around the worker count (w % n) */
    log_reset();
    ss_pool_submit(p, 4, job(TAG(1, 0), done_record), 0);
    ss_pool_submit(p, 1, job(TAG(1, 1), done_record), 0);
    ss_pool_drain(p);
    pthread_mutex_lock(&lg.mu);
    ok(lg.n == 2 && pthread_equal(lg.thread[0], lg.thread[1]) && pthread_equal(lg.thread[0], th[1]),
       "worker 4 of 3 is worker 1 (same thread)");
    pthread_mutex_unlock(&lg.mu);
    ss_pool_free(p);

    p = pool_new(0, 4);
    is_int(ss_pool_workers(p), 1, "0 workers asked: 1 worker");
    ss_pool_free(p);
}

static void test_depth_and_waiters(void) {
    log_reset();
    const uint32_t depth = 4;
    ss_pool *p = pool_new(2, depth);
    /* worker 0 busy in a job's done: nothing is taken off its queue until it is released */
    is_int(ss_pool_submit(p, 0, job(TAG(9, 0), done_block), 0), 0, "blocker submitted");
    blocker_wait_running();
    int rc = 0;
    for (uint32_t i = 1; i <= depth; i++)
        rc |= ss_pool_submit(p, 0, job(TAG(0, i), done_record), 0);
    is_int(rc, 0, "depth 4: four queued jobs accepted");
    ss_job *extra = job(TAG(0, 100), done_record);
    is_int(ss_pool_submit(p, 0, extra, 0), SS_POOL_EFULL, "the fifth: SS_POOL_EFULL");
    is_int(ss_pool_submit(p, 1, job(TAG(1, 1), done_record), 0), 0,
           "another worker's queue is not full");
    is_int(ss_pool_submit(p, 0, job(TAG(0, 5), done_record), 1), 0,
           "forced past the depth: accepted");
    is_int(ss_pool_submit(p, 0, job(TAG(0, 6), done_record), 1), 0, "forced again: accepted");
    wake_flag wf = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    ss_pool_waiter wt = {wake_fn, &wf, NULL};
    is_int(ss_pool_submit_or_wait(p, 0, extra, &wt), 1, "submit_or_wait on a full queue: 1");
    is_int(woken(&wf), 0, "the waiter is not woken while the worker is held");
    blocker_release();
    /* the worker takes the queue and wakes the waiter once */
    pthread_mutex_lock(&wf.mu);
    while (!wf.woken)
        pthread_cond_wait(&wf.cv, &wf.mu);
    pthread_mutex_unlock(&wf.mu);
    is_int(ss_pool_submit_or_wait(p, 0, extra, &wt), 0, "woken: the retry is queued (0)");
    ss_pool_drain(p);
    is_int(woken(&wf), 1, "wake was called exactly once");
    is_int(log_count(), 1 + depth + 1 + 2 + 1,
           "every accepted job ran (blocker, 4, 1, 2 forced, retry)");
    /* order on worker 0: blocker, 1..4, forced 5, 6, then the retried job */
    uint64_t want[] = {TAG(9, 0), TAG(0, 1), TAG(0, 2), TAG(0, 3),
                       TAG(0, 4), TAG(0, 5), TAG(0, 6), TAG(0, 100)};
    size_t k = 0, j = 0;
    pthread_mutex_lock(&lg.mu);
    for (; k < lg.n && j < sizeof want / sizeof *want; k++)
        if ((lg.tag[k] >> 32) != 1) {
            if (lg.tag[k] != want[j]) break;
            j++;
        }
    pthread_mutex_unlock(&lg.mu);
    is_int(j, sizeof want / sizeof *want, "worker 0 ran them in order: forced jobs queue behind");
    ss_pool_free(p);
}

static void test_gate(void) {
    log_reset();
    ss_pool *p = pool_new(1, 2);
    ss_pool_submit(p, 0, job(TAG(9, 0), done_block), 0);
    blocker_wait_running();
    ss_pool_submit(p, 0, job(TAG(0, 1), done_record), 0);
    ss_pool_submit(p, 0, job(TAG(0, 2), done_record), 0);
    wake_flag wf = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    ss_pool_waiter wt = {wake_fn, &wf, NULL};
    ss_job *j = job(TAG(0, 3), done_record);
    is_int(ss_pool_submit_or_wait(p, 0, j, &wt), 1, "a waiter on the full queue");
    ss_pool_close_gate(p);
    is_int(woken(&wf), 1, "close_gate wakes every waiter (with the worker still held)");
    is_int(ss_pool_submit(p, 0, j, 0), SS_POOL_ECLOSED, "after close_gate: SS_POOL_ECLOSED");
    is_int(ss_pool_submit_or_wait(p, 0, j, &wt), SS_POOL_ECLOSED,
           "submit_or_wait after close_gate: SS_POOL_ECLOSED");
    is_int(woken(&wf), 1, "(and no waiter registered)");
    is_int(ss_pool_submit(p, 0, j, 1), 0, "a forced submit passes the gate (and the depth)");
    blocker_release();
    ss_pool_drain(p);
    is_int(log_count(), 4, "the queued and the forced jobs ran");
    ss_pool_stop(p);
    ss_job *late = job(TAG(0, 4), done_record);
    is_int(ss_pool_submit(p, 0, late, 1), SS_POOL_ECLOSED,
           "after stop even a forced submit: SS_POOL_ECLOSED");
    ss_job_free(late);
    ss_pool_free(p);
}

/* stop lets the workers finish their queues before it joins them */
typedef struct {
    ss_pool *p;
} stop_arg;

static void *stop_thread(void *arg) {
    ss_pool_stop(((stop_arg *)arg)->p);
    return NULL;
}

static void test_stop(void) {
    log_reset();
    ss_pool *p = pool_new(2, 100);
    ss_pool_submit(p, 0, job(TAG(9, 0), done_block), 0);
    blocker_wait_running();
    for (uint32_t i = 1; i <= 50; i++) {
        ss_pool_submit(p, 0, job(TAG(0, i), done_record), 0);
        ss_pool_submit(p, 1, job(TAG(1, i), done_record), 0);
    }
    stop_arg a = {p};
    pthread_t t;
    pthread_create(&t, NULL, stop_thread, &a);
    /* stop is under way (or about to be): new work is refused once it has marked the
     * workers; the held worker then finishes its queue before stop returns */
    blocker_release();
    pthread_join(t, NULL);
    is_int(log_count(), 101, "stop returned after every queued job ran (101)");
    ss_pool_free(p); /* stops again: a no-op */
    ss_pool *q = pool_new(2, 8);
    ss_pool_free(q); /* free without stop stops first */
}

/* ---- many submitting threads ---- */

#define SUBMITTERS 6
#define PER_THREAD 3000
#define MT_WORKERS 3

typedef struct {
    ss_pool *p;
    uint32_t id;
    int refused; /* any rc other than 0/EFULL/1 */
    int waits;
} sub_arg;

static void *submitter(void *arg) {
    sub_arg *a = arg;
    wake_flag wf = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    for (uint32_t i = 0; i < PER_THREAD; i++) {
        uint32_t w = (a->id + i) % MT_WORKERS;
        ss_job *j = job(((uint64_t)a->id << 40) | ((uint64_t)w << 32) | i, done_record);
        for (;;) {
            ss_pool_waiter wt = {wake_fn, &wf, NULL};
            int before = woken(&wf);
            int rc = ss_pool_submit_or_wait(a->p, w, j, &wt);
            if (rc == 0) break;
            if (rc != 1) {
                a->refused++;
                ss_job_free(j);
                break;
            }
            a->waits++;
            pthread_mutex_lock(&wf.mu);
            while (wf.woken == before)
                pthread_cond_wait(&wf.cv, &wf.mu);
            pthread_mutex_unlock(&wf.mu);
        }
    }
    return NULL;
}

static void test_many_threads(void) {
    log_reset();
    ss_pool *p = pool_new(MT_WORKERS, 16);
    pthread_t t[SUBMITTERS];
    sub_arg a[SUBMITTERS];
    for (uint32_t i = 0; i < SUBMITTERS; i++) {
        a[i] = (sub_arg){p, i, 0, 0};
        pthread_create(&t[i], NULL, submitter, &a[i]);
    }
    int refused = 0, waits = 0;
    for (uint32_t i = 0; i < SUBMITTERS; i++) {
        pthread_join(t[i], NULL);
        refused += a[i].refused;
        waits += a[i].waits;
    }
    ss_pool_drain(p);
    diag("%d submits waited for room", waits);
    is_int(refused, 0, "6 threads x 3000 submits: none refused");
    is_int(log_count(), SUBMITTERS * PER_THREAD, "every job ran once (18000 done calls)");
    /* per (submitter, worker): increasing sequence numbers; every job once */
    static uint8_t seen[SUBMITTERS][PER_THREAD];
    memset(seen, 0, sizeof seen);
    int64_t last[SUBMITTERS][MT_WORKERS];
    for (int i = 0; i < SUBMITTERS; i++)
        for (int w = 0; w < MT_WORKERS; w++)
            last[i][w] = -1;
    int order_ok = 1, once_ok = 1;
    pthread_mutex_lock(&lg.mu);
    for (size_t k = 0; k < lg.n; k++) {
        uint32_t s = (uint32_t)(lg.tag[k] >> 40), w = (uint32_t)(lg.tag[k] >> 32) & 0xff;
        uint32_t i = (uint32_t)lg.tag[k];
        if (s >= SUBMITTERS || w >= MT_WORKERS || i >= PER_THREAD) {
            once_ok = 0;
            continue;
        }
        if (seen[s][i]++) once_ok = 0;
        if ((int64_t)i <= last[s][w]) order_ok = 0;
        last[s][w] = i;
    }
    pthread_mutex_unlock(&lg.mu);
    ok(once_ok, "no job ran twice");
    ok(order_ok, "each submitter's jobs ran in its order on each worker");
    ss_pool_close_gate(p);
    ss_pool_drain(p);
    ss_pool_stop(p);
    ss_pool_free(p);
}

int main(void) {
    metrics = ss_metrics_create(8, 1);
    table = ss_table_create(16);
    if (!metrics || !table) return 2;
    /* before any thread exists */
    ok(runs_cleanly(free_null), "ss_pool_free(NULL) is a no-op (a child calling it exits 0)");
    test_fifo();
    test_depth_and_waiters();
    test_gate();
    test_stop();
    test_many_threads();
    ss_table_free(table);
    ss_metrics_free(metrics);
    return done_testing();
}
