/* test_wal.c: the write-ahead log (server/wal.h) on a real small model.
 *
 * Appends, sizes and the record framing on disk (u32 length, u32 crc32, payload starting
 * with kind, id length, id); sync; a checkpoint saving the worker's dirty sessions and
 * emptying only its log; ss_wal_start emptying the logs and removing an earlier run's extra
 * ones. Replay is tested as "records in, sessions out": live sessions are stepped with the
 * engine while their changes are logged the way a worker logs them (snapshot, step, reset,
 * close records), then the logs are replayed into an empty table (or over sessions restored
 * from their files) and every session must come out with the live state (bit for bit), t,
 * last_seq and owner. Also: a step record replayed twice changes nothing, records of an
 * unknown session and over --max-output-bytes are skipped, a torn tail is counted and
 * ignored, a flipped byte ends that file's replay at the record before it. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "../support/testmodel.h"
#include "../tap.h"
#include "answer.h"
#include "api.pb-c.h"
#include "batch.h"
#include "registry.h"
#include "session.h"
#include "store.h"
#include "wal.h"

static const tm_spec SPEC = {
    .n_in = 6, .n_layers = 2, .n = {10, 5}, .readout = 3, .init_state = 1, .seed = 21};

static spk_model *model;
static ss_reg *reg; /* lists model */
static ss_mver *mv;
static spk_scratch *scratch;

static void must(int cond, const char *what, const char *err) {
    if (!cond) {
        printf("# setup failed: %s: %s\n", what, err ? err : "");
        exit(2);
    }
}

static void tmpdir(char *out, size_t len) {
    const char *t = getenv("TMPDIR");
    snprintf(out, len, "%s/spikeserve-walunit-XXXXXX", t && *t ? t : "/tmp");
    must(mkdtemp(out) != NULL, "mkdtemp", out);
}

static void rmdir_all(const char *dir) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {
    }
}

static long file_len(const char *dir, const char *name) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static uint8_t *file_read(const char *dir, const char *name, size_t *len) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    must(f != NULL, "open", p);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    must(b && fread(b, 1, (size_t)n, f) == (size_t)n, "read", p);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void file_append(const char *dir, const char *name, const void *buf, size_t len) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "ab");
    must(f && fwrite(buf, 1, len, f) == len && fclose(f) == 0, "append", p);
}

static void file_write(const char *dir, const char *name, const void *buf, size_t len) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    must(f && fwrite(buf, 1, len, f) == len && fclose(f) == 0, "write", p);
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- live sessions, changed and logged as a worker does ---- */

static ss_sess *live_new(ss_table *t, const char *id, uint32_t worker) {
    ss_sess *s = ss_sess_create(id, mv, worker, 0);
    must(s != NULL, "ss_sess_create", id);
    ss_sess_ref(s);
    must(ss_table_insert(t, s) == 0, "insert", id);
    return s; /* the test's reference; the table holds the other */
}

static void live_snap(ss_wal *w, ss_sess *s) {
    uint8_t *buf;
    size_t len;
    char err[256];
    must(ss_store_encode(s, 1, &buf, &len, err, sizeof err) == 0, "encode", err);
    must(ss_wal_snap(w, s->worker, s->id, buf, len, err, sizeof err) == 0, "ss_wal_snap", err);
    free(buf);
}

static void decode(const char *json, ss_batch *b) {
    ss_limits lim = {100000, 1000000, 0};
    char err[256];
    memset(b, 0, sizeof *b);
    must(ss_batch_from_json(json, strlen(json), model, &lim, b, err, sizeof err) == 0, json, err);
}

/* Log, then run (the order of exec.c); returns the step record's t0. */
static uint64_t live_step(ss_wal *w, ss_sess *s, const char *json) {
    ss_batch b;
    decode(json, &b);
    char err[256];
    uint64_t t0 = spk_state_t(s->state);
    must(ss_wal_step(w, s, t0, &b, err, sizeof err) == 0, "ss_wal_step", err);
    spk_input in = ss_batch_input(&b);
    must(spk_step(s->state, &in, NULL, scratch, err, sizeof err) == 0, "spk_step", err);
    s->t = spk_state_t(s->state);
    if (b.has_seq) s->last_seq = b.seq;
    ss_batch_free(&b);
    return t0;
}

static void live_reset(ss_wal *w, ss_sess *s) {
    char err[256];
    must(ss_wal_reset(w, s, err, sizeof err) == 0, "ss_wal_reset", err);
    spk_state_reset(s->state);
    s->t = s->last_seq = 0;
}

static void live_close(ss_wal *w, ss_table *t, ss_sess *s) {
    char err[256];
    must(ss_wal_close(w, s, err, sizeof err) == 0, "ss_wal_close", err);
    s->closed = 1;
    if (ss_table_remove(t, s)) ss_sess_unref(s);
}

/* ---- replay ---- */

static uint32_t picks;
static uint32_t pick(void *arg) {
    (void)arg;
    return picks++ % 2;
}

static ss_table *replay(const char *dir, ss_table *into, size_t max_out, ss_wal_stats *st) {
    ss_table *t = into ? into : ss_table_create(100);
    char err[256];
    ss_limits lim = {1u << 24, UINT32_MAX, max_out};
    must(ss_wal_replay(dir, t, reg, &lim, pick, NULL, st, err, sizeof err) == 0,
         "ss_wal_replay", err);
    return t;
}

/* The replayed session id matches the live one: state bit for bit, t, last_seq, owner. */
static int same_session(ss_table *t, const ss_sess *live, const char *what) {
    ss_sess *s = ss_table_get(t, live->id);
    int r = s && tm_state_equal(s->state, live->state) && s->t == live->t &&
            s->last_seq == live->last_seq && s->owner == live->owner;
    if (!ok(r, "%s: session %s as live (t %llu, last_seq %llu)", what, live->id,
            (unsigned long long)live->t, (unsigned long long)live->last_seq) &&
        s)
        diag("  replayed: t %llu last_seq %llu owner %llu, state %s", (unsigned long long)s->t,
             (unsigned long long)s->last_seq, (unsigned long long)s->owner,
             tm_state_equal(s->state, live->state) ? "equal" : "different");
    ss_sess_unref(s);
    return r;
}

static int stats_are(const ss_wal_stats *st, size_t records, size_t applied, size_t skipped,
                     size_t created, size_t closed, size_t torn) {
    int r = st->records == records && st->applied == applied && st->skipped == skipped &&
            st->created == created && st->closed == closed && st->torn == torn;
    if (!r)
        diag("  stats: records %zu applied %zu skipped %zu created %zu closed %zu torn %zu",
             st->records, st->applied, st->skipped, st->created, st->closed, st->torn);
    return r;
}

static void free_null(void) {
    ss_wal_free(NULL);
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

/* ---- appends, framing, sync, checkpoint, start ---- */

static void test_files(void) {
    char dir[512], err[256];
    tmpdir(dir, sizeof dir);
    ss_wal *w = NULL;
    is_int(ss_wal_open(dir, 2, &w, err, sizeof err), 0, "open with 2 workers");
    ok(file_len(dir, "wal-0.log") == 0 && file_len(dir, "wal-1.log") == 0,
       "wal-0.log and wal-1.log created, empty");
    ok(ss_wal_size(w, 0) == 0 && ss_wal_size(w, 1) == 0 && ss_wal_bytes(w) == 0, "sizes 0");

    ss_table *t = ss_table_create(10);
    ss_sess *p = live_new(t, "p-0", 0), *q = live_new(t, "q-1", 1);
    ok(!p->wal_dirty, "a new session is not dirty");
    live_snap(w, p);
    live_snap(w, q);
    live_step(w, p, "{\"seq\":1,\"steps\":5,\"events\":[[0,1],[1,2,0.5],[4,5]]}");
    live_step(w, q, "{\"steps\":3,\"events\":[[0,0],[2,3]]}");
    live_reset(w, q);
    ok(p->wal_dirty && q->wal_dirty, "step and reset records mark their session dirty");
    ok(ss_wal_size(w, 0) > 0 && ss_wal_size(w, 1) > 0, "each worker's log grew");
    ok(ss_wal_size(w, 0) == (uint64_t)file_len(dir, "wal-0.log") &&
           ss_wal_size(w, 1) == (uint64_t)file_len(dir, "wal-1.log"),
       "ss_wal_size = the file's length");
    is_int(ss_wal_bytes(w), ss_wal_size(w, 0) + ss_wal_size(w, 1), "ss_wal_bytes = both logs");
    is_int(ss_wal_sync(w, 0, err, sizeof err), 0, "sync worker 0");
    is_int(ss_wal_sync(w, 1, err, sizeof err), 0, "sync worker 1");
    is_int(ss_wal_sync(w, 1, err, sizeof err), 0, "sync with nothing new");

    /* the framing on disk */
    size_t len;
    uint8_t *b = file_read(dir, "wal-1.log", &len);
    size_t off = 0, nrec = 0;
    int frames_ok = 1;
    while (off + 8 <= len) {
        uint32_t n = le32(b + off), crc = le32(b + off + 4);
        if (n > len - off - 8 || (uint32_t)crc32(0, b + off + 8, n) != crc || n < 5 ||
            b[off + 9] != 3 || memcmp(b + off + 10, "q-1", 3) != 0)
            frames_ok = 0;
        off += 8 + (size_t)n;
        nrec++;
    }
    ok(frames_ok && off == len && nrec == 3,
       "wal-1.log: 3 records of u32 length, u32 crc32, kind, id length, id \"q-1\"");
    free(b);

    /* checkpoint worker 0: its dirty sessions saved, its log emptied, worker 1's kept */
    uint64_t size1 = ss_wal_size(w, 1), bytes = ss_wal_bytes(w);
    is_int(ss_wal_checkpoint(w, 0, t, dir, NULL, err, sizeof err), 0, "checkpoint worker 0");
    ok(ss_wal_size(w, 0) == 0 && file_len(dir, "wal-0.log") == 0, "worker 0's log is empty");
    ok(ss_wal_size(w, 1) == size1 && file_len(dir, "wal-1.log") == (long)size1,
       "worker 1's log is untouched");
    is_int(ss_wal_bytes(w), bytes, "ss_wal_bytes counts since the start (a checkpoint keeps it)");
    ok(!p->wal_dirty && q->wal_dirty, "p is clean now, q still dirty");
    ok(file_len(dir, "p-0.session") > 0 && file_len(dir, "q-1.session") < 0,
       "p-0.session written, no q-1.session");
    /* the saved file holds p as it is */
    b = file_read(dir, "p-0.session", &len);
    ss_snap snap;
    ss_sess *back = ss_sess_create("p-0", mv, 0, 0);
    ok(ss_store_decode(b, len, reg, &snap, err, sizeof err) == 0 &&
           ss_store_apply(back, &snap, err, sizeof err) == 0 &&
           tm_state_equal(back->state, p->state) && back->t == 5 && back->last_seq == 1,
       "p-0.session holds p's state, t 5, last_seq 1");
    ss_store_snap_free(&snap);
    ss_sess_unref(back);
    free(b);

    /* start: every log emptied; an earlier run's wal-2.log removed */
    file_write(dir, "wal-2.log", "junk", 4);
    ss_wal_free(w);
    w = NULL;
    is_int(ss_wal_open(dir, 2, &w, err, sizeof err), 0, "reopen");
    is_int(file_len(dir, "wal-1.log"), (long)size1, "reopening keeps what the logs hold");
    is_int(ss_wal_start(w, err, sizeof err), 0, "ss_wal_start");
    ok(file_len(dir, "wal-0.log") == 0 && file_len(dir, "wal-1.log") == 0, "both logs emptied");
    ok(file_len(dir, "wal-2.log") < 0, "an earlier run's wal-2.log removed");
    ss_wal_free(w);

    char bad[600];
    snprintf(bad, sizeof bad, "%s/no/such/dir", dir);
    w = (ss_wal *)1;
    err[0] = 0;
    ok(ss_wal_open(bad, 1, &w, err, sizeof err) == -1 && w == NULL && strstr(err, "wal") &&
           strstr(err, "no/such/dir"),
       "open in a missing directory: -1, naming the path (%s)", err);
    ss_sess_unref(p);
    ss_sess_unref(q);
    ss_table_free(t);
    rmdir_all(dir);
}

/* ---- replay ---- */

static void test_replay(void) {
    char dir[512], err[256];
    tmpdir(dir, sizeof dir);
    ss_wal *w = NULL;
    must(ss_wal_open(dir, 2, &w, err, sizeof err) == 0, "open", err);
    ss_table *t = ss_table_create(100);
    ss_sess *a = live_new(t, "sess-a", 0), *b = live_new(t, "sess-b", 1),
            *c = live_new(t, "sess-c", 0), *d = live_new(t, "sess-d", 1),
            *e = live_new(t, "sess-e", 0);
    d->owner = 99;
    /* a: created by a snapshot, two batches with seq; then its second record again */
    live_snap(w, a);
    live_step(w, a, "{\"seq\":1,\"steps\":5,\"events\":[[0,1],[1,2,0.5],[4,5],[4,0,2]]}");
    ss_batch b2;
    const char *a2 = "{\"seq\":2,\"steps\":7,\"events\":[[0,3],[3,3],[6,1,-0.5]]}";
    uint64_t t0 = live_step(w, a, a2);
    decode(a2, &b2);
    must(ss_wal_step(w, a, t0, &b2, err, sizeof err) == 0, "duplicate step record", err);
    ss_batch_free(&b2);
    /* b: a batch without seq, a reset, a dense batch with seq */
    live_snap(w, b);
    live_step(w, b, "{\"steps\":4,\"events\":[[0,0],[1,1],[2,2],[3,3]]}");
    live_reset(w, b);
    live_step(w, b, "{\"seq\":1,\"steps\":2,\"dense\":[[1,0,0.5,0,0,1],[0,1,0,0,2,0]]}");
    /* c: created, stepped, closed */
    live_snap(w, c);
    live_step(w, c, "{\"steps\":2,\"events\":[[0,1]]}");
    live_close(w, t, c);
    /* d: owned by a key */
    live_snap(w, d);
    live_step(w, d, "{\"seq\":1,\"steps\":6,\"events\":[[0,4],[5,5]]}");
    /* e: a step of a session that was never saved nor logged as created */
    live_step(w, e, "{\"steps\":1,\"events\":[[0,0]]}");
    must(ss_wal_sync(w, 0, err, sizeof err) == 0 && ss_wal_sync(w, 1, err, sizeof err) == 0, "sync",
         err);
    ss_wal_free(w);

    ss_wal_stats st;
    picks = 0;
    ss_table *r = replay(dir, NULL, (size_t)1 << 30, &st);
    /* records: a 4, b 4, c 3, d 2, e 1; skipped: a's duplicate, e's step */
    ok(stats_are(&st, 14, 12, 2, 4, 1, 0),
       "stats: 14 records, 12 applied, 2 skipped, 4 created, 1 closed, none torn");
    is_int(picks, 4, "a worker picked for each created session");
    is_int(ss_table_count(r), 3, "three sessions (a, b, d)");
    same_session(r, a, "replay");
    same_session(r, b, "replay");
    same_session(r, d, "replay");
    ss_sess *x = ss_table_get(r, "sess-c");
    ok(x == NULL, "the closed session c is not there");
    ss_sess_unref(x);
    x = ss_table_get(r, "sess-e");
    ok(x == NULL, "e (no snapshot, no file) is not there");
    ss_sess_unref(x);
    /* a's stored answer of last_seq, for a retry after the restart */
    x = ss_table_get(r, "sess-a");
    ok(x && x->last && x->last->seq == 2 && x->last->t0 == 5 && x->last->steps == 7,
       "a's stored answer is seq 2's (t0 5, 7 steps)");
    ok(x && x->wal_dirty, "replayed sessions are marked dirty (to be saved)");
    ss_sess_unref(x);

    /* the same logs again over what they produced: nothing changes */
    ss_wal_stats st2;
    replay(dir, r, (size_t)1 << 30, &st2);
    is_int(ss_table_count(r), 3, "replayed twice: still three sessions");
    same_session(r, a, "replayed twice");
    same_session(r, b, "replayed twice");
    same_session(r, d, "replayed twice");
    ss_table_free(r);

    /* over --max-output-bytes: every step record is skipped */
    r = replay(dir, NULL, 1, &st);
    /* applied: 4 snapshots, b's reset, c's close; skipped: the 8 step records */
    ok(stats_are(&st, 14, 6, 8, 4, 1, 0), "max_output_bytes 1: the 8 step records skipped");
    x = ss_table_get(r, "sess-a");
    ok(x && x->t == 0 && x->last_seq == 0, "a stays at t 0");
    ss_sess_unref(x);
    ss_table_free(r);

    /* torn tails: fewer than 8 bytes on wal-0.log, a record cut short on wal-1.log */
    file_append(dir, "wal-0.log", "\x10\x00\x00", 3);
    uint8_t cut[20] = {100, 0, 0, 0, 1, 2, 3, 4, 1, 6, 's', 'e', 's', 's', '-', 'b'};
    file_append(dir, "wal-1.log", cut, sizeof cut);
    r = replay(dir, NULL, (size_t)1 << 30, &st);
    ok(stats_are(&st, 14, 12, 2, 4, 1, 2), "two torn tails: counted (torn 2), the rest as before");
    same_session(r, a, "torn tail");
    same_session(r, b, "torn tail");
    same_session(r, d, "torn tail");
    ss_table_free(r);

    ss_sess_unref(a), ss_sess_unref(b), ss_sess_unref(c), ss_sess_unref(d), ss_sess_unref(e);
    ss_table_free(t);
    rmdir_all(dir);
}

/* A flipped byte in the middle of a log: the replay of that file stops before it. */
static void test_crc(void) {
    char dir[512], err[256];
    tmpdir(dir, sizeof dir);
    ss_wal *w = NULL;
    must(ss_wal_open(dir, 1, &w, err, sizeof err) == 0, "open", err);
    ss_table *t = ss_table_create(10);
    ss_sess *f = live_new(t, "flip", 0);
    live_snap(w, f);
    live_step(w, f, "{\"seq\":1,\"steps\":4,\"events\":[[0,1],[2,2]]}");
    spk_state *after1 = spk_state_clone(f->state);
    uint64_t t1 = f->t;
    live_step(w, f, "{\"seq\":2,\"steps\":3,\"events\":[[1,3]]}");
    live_step(w, f, "{\"seq\":3,\"steps\":2,\"events\":[[0,4]]}");
    ss_wal_sync(w, 0, err, sizeof err);
    ss_wal_free(w);

    size_t len;
    uint8_t *b = file_read(dir, "wal-0.log", &len);
    size_t off = 0;
    for (int k = 0; k < 2; k++) /* to the third record (seq 2) */
        off += 8 + le32(b + off);
    b[off + 8 + 12] ^= 0x40; /* a bit of its payload */
    file_write(dir, "wal-0.log", b, len);
    free(b);

    ss_wal_stats st;
    ss_table *r = replay(dir, NULL, (size_t)1 << 30, &st);
    ok(stats_are(&st, 2, 2, 0, 1, 0, 1),
       "a flipped bit in record 3 of 4: detected (torn 1), records 1-2 applied, 3-4 not");
    ss_sess *x = ss_table_get(r, "flip");
    ok(x && tm_state_equal(x->state, after1) && x->t == t1 && x->last_seq == 1,
       "the session is as after its first batch (t %llu, last_seq 1)", (unsigned long long)t1);
    ss_sess_unref(x);
    ss_table_free(r);
    spk_state_free(after1);
    ss_sess_unref(f);
    ss_table_free(t);
    rmdir_all(dir);
}

/* Restart: session files first (as a checkpoint left them), the logs on top. */
typedef struct {
    ss_table *t;
    int n;
} load_ctx;

static void load_one(const ss_snap *snap, void *arg) {
    load_ctx *c = arg;
    char err[256];
    ss_sess *s = ss_sess_create(snap->id, snap->mv, 0, 0);
    if (s && ss_store_apply(s, snap, err, sizeof err) == 0 && ss_table_insert(c->t, s) == 0) {
        s->owner = snap->owner;
        c->n++;
    } else {
        ss_sess_unref(s);
    }
}

static void load_bad(const char *path, const char *msg, void *arg) {
    (void)arg;
    printf("# %s: %s\n", path, msg);
}

static void test_restart(void) {
    char dir[512], err[256];
    tmpdir(dir, sizeof dir);
    ss_wal *w = NULL;
    must(ss_wal_open(dir, 2, &w, err, sizeof err) == 0, "open", err);
    ss_table *t = ss_table_create(10);
    ss_sess *p = live_new(t, "rp", 0), *q = live_new(t, "rq", 1);
    live_snap(w, p);
    live_snap(w, q);
    live_step(w, p, "{\"seq\":1,\"steps\":3,\"events\":[[0,1]]}");
    live_step(w, q, "{\"seq\":1,\"steps\":3,\"events\":[[0,2]]}");
    must(ss_wal_checkpoint(w, 0, t, dir, NULL, err, sizeof err) == 0, "checkpoint", err);
    live_step(w, p, "{\"seq\":2,\"steps\":4,\"events\":[[1,1],[3,0]]}");
    live_step(w, q, "{\"seq\":2,\"steps\":4,\"events\":[[1,4]]}");
    live_reset(w, q);
    live_step(w, q, "{\"seq\":1,\"steps\":2,\"events\":[[0,0]]}");
    ss_wal_sync(w, 0, err, sizeof err);
    ss_wal_sync(w, 1, err, sizeof err);
    ss_wal_free(w); /* killed here: no save, no checkpoint */

    ss_table *r = ss_table_create(10);
    load_ctx lc = {r, 0};
    is_int(ss_store_load_dir(dir, reg, load_one, load_bad, &lc, err, sizeof err), 1,
           "restart: one session file (p's, from the checkpoint)");
    ss_wal_stats st;
    replay(dir, r, (size_t)1 << 30, &st);
    /* wal-0: p's second step; wal-1: q's snapshot, 2 steps, reset, step */
    ok(stats_are(&st, 6, 6, 0, 1, 0, 0), "the logs: 6 records applied, q created");
    same_session(r, p, "file + log");
    same_session(r, q, "log only");
    ss_table_free(r);
    ss_sess_unref(p);
    ss_sess_unref(q);
    ss_table_free(t);
    rmdir_all(dir);
}

/* ss_wal_open(dir, 0 workers) and a use of the log, in a child */
static char zero_dir[512];
static void open_zero(void) {
    ss_wal *w = NULL;
    char err[256];
    if (ss_wal_open(zero_dir, 0, &w, err, sizeof err) == 0) {
        (void)ss_wal_size(w, 0);
        ss_wal_free(w);
    }
}

/* Defects found by these tests (issue 11) and fixed: each check failed before its fix. */
static void fixed_defects(void) {
    /* wal.c ss_wal_open(): with workers == 0 it succeeds with no file (w->n = 0), and every
     * later call divides by w->n (worker % w->n): SIGFPE. The app resolves --workers 0 to the
     * core count first, so the server does not reach it; the API should refuse 0 (or open
     * one log, as ss_pool_create treats 0 as 1). */
    tmpdir(zero_dir, sizeof zero_dir);
    ok(runs_cleanly(open_zero),
       "fixed: ss_wal_open with 0 workers, then ss_wal_size: no crash");
    rmdir_all(zero_dir);
}

int main(void) {
    ok(runs_cleanly(free_null), "ss_wal_free(NULL) is a no-op (a child calling it exits 0)");
    model = tm_load(&SPEC);
    reg = ss_reg_create(".");
    mv = ss_reg_adopt(reg, model); /* the registry owns the model */
    scratch = spk_scratch_create(model);
    test_files();
    test_replay();
    test_crc();
    test_restart();
    fixed_defects();
    spk_scratch_free(scratch);
    ss_reg_unref(mv);
    ss_reg_free(reg);
    return done_testing();
}
