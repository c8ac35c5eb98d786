/* test_session.c: sessions and their table (server/session.h) on a real small model:
 * creation, reference counts (a session frees itself, ending its subscribers, when the last
 * reference goes), the table's insert (full, duplicate), put (replace), get, remove, count
 * and list, subscriber limits and publishing, visibility by owner, and the table used from
 * several threads at once.
 *
 * A session's release is observed through a subscriber the test keeps a reference to:
 * freeing the session ends it (ss_sse_closed). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/testmodel.h"
#include "../tap.h"
#include "codec.h"
#include "registry.h"
#include "session.h"
#include "sse.h"
#include "util.h"

static const tm_spec SPEC = {
    .n_in = 6, .n_layers = 2, .n = {8, 4}, .readout = 3, .init_state = 1, .seed = 5};

static spk_model *model;
static ss_mver *mv; /* model, listed in a registry */

static int refs(ss_sess *s) {
    return __atomic_load_n(&s->refs, __ATOMIC_RELAXED);
}

static void unref_null(void) {
    ss_sess_unref(NULL);
}

/* 1 when fn() returns normally in a child process. */
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

static ss_sess *sess(const char *id) {
    ss_sess *s = ss_sess_create(id, mv, 1, 30);
    if (!s) {
        printf("# ss_sess_create failed\n");
        exit(2);
    }
    return s;
}

static void test_create_and_refs(void) {
    int64_t before = ss_util_now_ms();
    ss_sess *s = ss_sess_create("abc-1_Z", mv, 3, 42);
    int64_t after = ss_util_now_ms();
    ok(s != NULL, "create");
    is_str(s->id, "abc-1_Z", "id copied");
    ok(s->model == model && s->mv == mv && s->model_idx == mv->slot && s->worker == 3 &&
           s->idle_timeout_s == 42 && __atomic_load_n(&mv->sessions, __ATOMIC_RELAXED) == 1,
       "model version (pinned: counted in its sessions), slot, worker, idle timeout as given");
    ok(s->t == 0 && s->last_seq == 0 && !s->closed && s->n_subs == 0 && s->pending == 0 &&
           s->owner == 0 && s->last == NULL,
       "t 0, last_seq 0, open, no subscribers, unowned, no stored answer");
    ok(s->created_ms >= before && s->created_ms <= after && s->active_ms == s->created_ms,
       "created_ms = active_ms = now");
    is_int(s->saved_ms, -1, "saved_ms -1 (never saved)");
    spk_state *fresh = spk_state_create(model);
    ok(tm_state_equal(s->state, fresh), "state: the model's initial state");
    spk_state_free(fresh);
    is_int(refs(s), 1, "one reference");

    ss_sse *sub = ss_sse_create(4096); /* two references: one for the session, one ours */
    is_int(ss_sess_subscribe(s, sub, 4), 0, "a subscriber attached");
    ss_sess_ref(s);
    ss_sess_ref(s);
    is_int(refs(s), 3, "ref, ref: three references");
    ss_sess_unref(s);
    ss_sess_unref(s);
    ok(refs(s) == 1 && !ss_sse_closed(sub), "unref, unref: one left, the session lives");
    int64_t a0 = s->active_ms;
    ss_sess_touch(s);
    ok(s->active_ms >= a0, "touch: active_ms moves forward (or stays)");
    ss_sess_unref(s);
    ok(ss_sse_closed(sub), "the last unref frees the session, which ends its subscriber");
    ok(__atomic_load_n(&mv->sessions, __ATOMIC_RELAXED) == 0 &&
           __atomic_load_n(&mv->refs, __ATOMIC_RELAXED) == 2,
       "and gives back its reference to the model version (the registry's and ours remain)");
    ss_sse_unref(sub);
    ok(runs_cleanly(unref_null), "ss_sess_unref(NULL) is a no-op (a child calling it exits 0)");
}

static void test_table(void) {
    ss_table *t = ss_table_create(3);
    ss_sess *a = sess("a"), *b = sess("b"), *c = sess("c"), *d = sess("d"), *a2 = sess("a");
    /* the table takes over one reference; the test keeps one of its own on each */
    ss_sess_ref(a), ss_sess_ref(b), ss_sess_ref(c);
    is_int(ss_table_insert(t, a), 0, "insert a");
    is_int(ss_table_insert(t, b), 0, "insert b");
    is_int(ss_table_insert(t, a2), SS_E_EXISTS, "insert another \"a\": SS_E_EXISTS");
    is_int(ss_table_insert(t, c), 0, "insert c");
    is_int(ss_table_count(t), 3, "count 3");
    is_int(ss_table_insert(t, d), SS_E_SESSIONS,
           "insert d into a table of 3: SS_E_SESSIONS (full)");
    is_int(ss_table_count(t), 3, "count still 3");

    ss_sess *g = ss_table_get(t, "b");
    ok(g == b && refs(b) == 3, "get b: the same session, with a reference for the caller");
    ss_sess_unref(g);
    ok(ss_table_get(t, "nope") == NULL, "get of an unknown id: NULL");
    ok(ss_table_get(t, "") == NULL, "get of the empty id: NULL");

    /* put replaces and hands back the old entry with the table's reference */
    ss_sess *old = (ss_sess *)1;
    ss_sess_ref(a2);
    is_int(ss_table_put(t, a2, &old), 0, "put a second \"a\": 0");
    ok(old == a && refs(a) == 2, "the old \"a\" comes back with the table's reference");
    ss_sess_unref(old);
    is_int(ss_table_count(t), 3, "replacing does not change the count");
    g = ss_table_get(t, "a");
    ok(g == a2, "get a: the new session");
    ss_sess_unref(g);
    old = (ss_sess *)1;
    is_int(ss_table_put(t, d, &old), SS_E_SESSIONS,
           "put a new id into the full table: SS_E_SESSIONS");
    ok(old == NULL, "(old set to NULL)");

    /* remove only the current entry of an id */
    is_int(ss_table_remove(t, a), 0, "remove the replaced \"a\": 0 (not there)");
    is_int(ss_table_remove(t, a2), 1, "remove the current \"a\": 1");
    is_int(ss_table_count(t), 2, "count 2");
    is_int(ss_table_remove(t, a2), 0, "remove it again: 0");
    ok(ss_table_get(t, "a") == NULL, "get a after remove: NULL");
    is_int(refs(a2), 2, "the removed session: the table's reference passed to the caller");
    ss_sess_unref(a2); /* the table's */

    /* put a new id where there is room */
    old = (ss_sess *)1;
    is_int(ss_table_put(t, d, &old), 0, "put a new id with room: 0");
    ok(old == NULL && ss_table_count(t) == 3, "nothing replaced; count 3");

    ss_sess **all = NULL;
    size_t n = 0;
    is_int(ss_table_list(t, &all, &n), 0, "list");
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        if (all[i] == b || all[i] == c || all[i] == d) found++;
    }
    ok(n == 3 && found == 3, "list: b, c and d");
    ok(refs(b) == 3 && refs(c) == 3, "list: each with a reference for the caller");
    for (size_t i = 0; i < n; i++)
        ss_sess_unref(all[i]);
    free(all);

    ss_sse *sub = ss_sse_create(4096);
    ss_sess_subscribe(d, sub, 4);
    ss_table_free(t);
    ok(refs(a) == 1 && refs(b) == 1 && refs(c) == 1 && refs(a2) == 1,
       "ss_table_free drops the table's references (the test's remain)");
    ok(ss_sse_closed(sub), "and frees a session only the table held (its subscriber ended)");
    ss_sse_unref(sub);
    ss_sess_unref(a), ss_sess_unref(b), ss_sess_unref(c), ss_sess_unref(a2);
    ss_table_free(NULL);

    /* many entries: every one found (hash chains) */
    t = ss_table_create(5000);
    int rc = 0;
    for (int i = 0; i < 5000; i++) {
        char id[32];
        snprintf(id, sizeof id, "s%d", i);
        rc |= ss_table_insert(t, sess(id));
    }
    is_int(rc, 0, "5000 inserts into a table of 5000");
    int hits = 0;
    for (int i = 0; i < 5000; i++) {
        char id[32];
        snprintf(id, sizeof id, "s%d", i);
        ss_sess *x = ss_table_get(t, id);
        if (x && !strcmp(x->id, id)) hits++;
        ss_sess_unref(x);
    }
    is_int(hits, 5000, "each of them found by its id");
    ss_sess *one = sess("one-more");
    is_int(ss_table_insert(t, one), SS_E_SESSIONS, "the 5001st: full");
    ss_sess_unref(one);
    ss_table_free(t);
}

static void test_subscribers(void) {
    ss_sess *s = sess("subs");
    /* results to publish: none, and 60 spikes (about a kilobyte of JSON) */
    static spk_spike sp[60];
    for (uint32_t i = 0; i < 60; i++)
        sp[i] = (spk_spike){i, i % 5, 0.123456f};
    spk_output o0 = {{sp, 60, 0}, NULL, NULL, 0, NULL}, o1 = {{sp, 60, 60}, NULL, NULL, 0, NULL};
    ss_result small = {"subs", 0, 0, 0, 1, SS_OUT_SPIKES, model, &o0, NULL, NULL};
    ss_result big = {"subs", 0, 0, 0, 60, SS_OUT_SPIKES, model, &o1, NULL, NULL};
    ss_sse *x = ss_sse_create(4096), *y = ss_sse_create(4096), *z = ss_sse_create(4096);
    ok(!ss_sess_has_subs(s), "no subscribers at first");
    is_int(ss_sess_subscribe(s, x, 2), 0, "subscribe 1 of 2");
    is_int(ss_sess_subscribe(s, y, 2), 0, "subscribe 2 of 2");
    is_int(ss_sess_subscribe(s, z, 2), SS_E_SUBSCRIBERS, "a third with max 2: SS_E_SUBSCRIBERS");
    ok(ss_sess_has_subs(s), "has subscribers");
    is_int(ss_sess_publish(s, &small), 0, "publish: none dropped");
    ok(!ss_sse_closed(x) && !ss_sse_closed(y), "both still open");
    ss_sse_end(x, "gone"); /* its connection went away */
    is_int(ss_sess_subscribe(s, z, 2), 0, "a closed subscriber no longer counts: the third fits");
    ss_sse_unref(x);

    /* a subscriber that never reads is dropped once its buffer would pass the capacity */
    size_t jlen;
    char *j = ss_result_json(&big, &jlen);
    int dropped = 0, publishes = 0;
    while (!ss_sse_dropped(y) && publishes < 100) {
        dropped += ss_sess_publish(s, &big);
        publishes++;
    }
    ok(ss_sse_dropped(y) && ss_sse_closed(y), "a subscriber that does not read is dropped");
    is_int(dropped, 2, "publish counted the two slow subscribers (y and z) as dropped");
    /* 33 bytes of opening comment, then "event: step\ndata: " JSON "\n\n" per event */
    int fit = (int)((4096 - 33) / (jlen + 20));
    is_int(publishes, fit + 1, "dropped at the first event past the capacity 4096");
    diag("an event of %zu bytes of JSON: %d fit", jlen, fit);
    free(j);
    is_int(ss_sess_publish(s, &small), 0, "the next publish drops nobody again");
    ok(!ss_sess_has_subs(s), "dropped subscribers are detached");
    ss_sse_unref(y);
    ss_sse_unref(z);

    ss_sse *e1 = ss_sse_create(4096), *e2 = ss_sse_create(4096);
    ss_sess_subscribe(s, e1, 8);
    ss_sess_subscribe(s, e2, 8);
    ss_sess_keepalive(s);
    ok(!ss_sse_closed(e1) && ss_sess_has_subs(s), "keepalive keeps them");
    ss_sess_end_subs(s, "reset");
    ok(ss_sse_closed(e1) && ss_sse_closed(e2) && !ss_sess_has_subs(s),
       "end_subs: every subscriber ended and detached");
    ss_sse_unref(e1);
    ss_sse_unref(e2);

    pthread_mutex_lock(&s->mu);
    s->closed = 1;
    pthread_mutex_unlock(&s->mu);
    ss_sse *late = ss_sse_create(4096);
    is_int(ss_sess_subscribe(s, late, 8), SS_E_NOT_FOUND,
           "subscribe to a closed session: SS_E_NOT_FOUND");
    ss_sse_unref(late);
    ss_sse_unref(late); /* not taken over: both references are ours */
    ss_sess_unref(s);
}

static void test_visibility(void) {
    ss_sess *s = sess("vis");
    ok(ss_sess_visible(s, 0) && ss_sess_visible(s, 77), "an unowned session: visible to anyone");
    s->owner = 77;
    ok(ss_sess_visible(s, 77), "an owned session: visible to its owner");
    ok(!ss_sess_visible(s, 78), "and not to another key");
    ss_sess_unref(s);
}

/* ---- several threads on one table ---- */

typedef struct {
    ss_table *t;
    int id, errors;
} th_arg;

static void *churn(void *arg) {
    th_arg *a = arg;
    for (int i = 0; i < 300; i++) {
        char id[32];
        snprintf(id, sizeof id, "t%d-%d", a->id, i);
        ss_sess *s = sess(id);
        ss_sess_ref(s);
        if (ss_table_insert(a->t, s) != 0) a->errors++;
        ss_sess *g = ss_table_get(a->t, id);
        if (g != s) a->errors++;
        ss_sess_unref(g);
        if (i % 2 == 0) {
            if (ss_table_remove(a->t, s) != 1) a->errors++;
            ss_sess_unref(s); /* the table's */
        }
        ss_sess_unref(s);
    }
    return NULL;
}

static void *lister(void *arg) {
    th_arg *a = arg;
    for (int i = 0; i < 200; i++) {
        ss_sess **all;
        size_t n;
        if (ss_table_list(a->t, &all, &n) != 0) {
            a->errors++;
            continue;
        }
        for (size_t k = 0; k < n; k++)
            ss_sess_unref(all[k]);
        free(all);
        (void)ss_table_count(a->t);
    }
    return NULL;
}

static void test_threads(void) {
    ss_table *t = ss_table_create(10000);
    pthread_t th[5];
    th_arg a[5];
    for (int i = 0; i < 5; i++) {
        a[i] = (th_arg){t, i, 0};
        pthread_create(&th[i], NULL, i < 4 ? churn : lister, &a[i]);
    }
    int errors = 0;
    for (int i = 0; i < 5; i++) {
        pthread_join(th[i], NULL);
        errors += a[i].errors;
    }
    is_int(errors, 0, "4 threads inserting, getting, removing and one listing: no error");
    is_int(ss_table_count(t), 4 * 150, "600 sessions left (half of each thread's removed)");
    ss_table_free(t);
}

/* Defects found by these tests (issue 11) and fixed: each check failed before its fix. */
static void fixed_defects(void) {
    /* session.h ss_sess_visible(): the header lists "no keys" among the cases that may see a
     * session, but the code returns s->owner == 0 || s->owner == owner, so a request of a
     * server without keys (owner 0) cannot see a session a key opened (one restored from
     * --state-dir after a restart without --api-keys: 404 to everyone) */
    ss_sess *s = sess("known");
    s->owner = 77;
    ok(ss_sess_visible(s, 0), "fixed: no keys (owner 0) sees a session a key opened");
    ss_sess_unref(s);
}

int main(void) {
    model = tm_load(&SPEC);
    ss_reg *reg = ss_reg_create(".");
    mv = ss_reg_adopt(reg, model);
    test_create_and_refs();
    test_table();
    test_subscribers();
    test_visibility();
    test_threads();
    fixed_defects();
    ss_reg_unref(mv);
    ss_reg_free(reg);
    return done_testing();
}
