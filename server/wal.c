/* wal.c: append-only per-worker logs with group commit. The worker appends while it runs
 * what it took off its queue and syncs once before it answers any of it (exec.c), so the
 * cost of fdatasync is shared by every request of that round. Records carry decoded
 * batches (not the request bytes): replay does not depend on the decoders or the limits
 * of the next start. */
#include "wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "api.pb-c.h"
#include "apply.h"
#include "exec.h"
#include "log.h"
#include "registry.h"

enum { REC_STEP = 1, REC_RESET = 2, REC_CLOSE = 3, REC_SNAP = 4 };
#define REC_MAX ((size_t)1 << 30)

typedef struct {
    pthread_mutex_t mu;      /* the file offset, dirty, size */
    pthread_mutex_t sync_mu; /* one fdatasync at a time: a caller that finds nothing dirty
                              * returns only after a sync in progress has finished */
    int fd;
    int dirty;     /* appended since the last sync */
    uint64_t size; /* bytes since it was last emptied */
} wal_file;

struct ss_wal {
    char dir[1024];
    uint32_t n;
    wal_file *f;
    uint64_t bytes; /* atomic */
};

/* ---- a growable little-endian buffer ---- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
    int oom;
} wbuf;

static void put(wbuf *b, const void *src, size_t n) {
    if (b->oom) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}
static void put_u8(wbuf *b, uint8_t v) {
    put(b, &v, 1);
}
static void put_u32(wbuf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}
static void put_u64(wbuf *b, uint64_t v) {
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}
static void put_f32(wbuf *b, float f) {
    uint32_t v;
    memcpy(&v, &f, 4);
    put_u32(b, v);
}

typedef struct {
    const uint8_t *p;
    size_t len, off;
    int bad;
} rbuf;

static const uint8_t *get(rbuf *r, size_t n) {
    if (r->bad || n > r->len - r->off) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += n;
    return p;
}
static uint8_t get_u8(rbuf *r) {
    const uint8_t *p = get(r, 1);
    return p ? p[0] : 0;
}
static uint32_t get_u32(rbuf *r) {
    const uint8_t *p = get(r, 4);
    return p ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
             : 0;
}
static uint64_t get_u64(rbuf *r) {
    uint64_t lo = get_u32(r);
    return lo | (uint64_t)get_u32(r) << 32;
}
static float get_f32(rbuf *r) {
    uint32_t v = get_u32(r);
    float f;
    memcpy(&f, &v, 4);
    return f;
}

/* ---- the files ---- */

static void file_name(const char *dir, uint32_t i, char *out, size_t len) {
    snprintf(out, len, "%s/wal-%u.log", dir, i);
}

int ss_wal_open(const char *dir, uint32_t workers, ss_wal **out, char *err, size_t errlen) {
    *out = NULL;
    if (workers == 0) {
        snprintf(err, errlen, "--wal: no workers to log for");
        return -1;
    }
    ss_wal *w = calloc(1, sizeof *w);
    if (!w || !(w->f = calloc(workers ? workers : 1, sizeof *w->f))) {
        free(w);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    for (uint32_t i = 0; i < workers; i++) {
        char path[1100];
        file_name(dir, i, path, sizeof path);
        pthread_mutex_init(&w->f[i].mu, NULL);
        pthread_mutex_init(&w->f[i].sync_mu, NULL);
        w->n = i + 1;
        w->f[i].fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (w->f[i].fd < 0) {
            snprintf(err, errlen, "--wal %s: %s", path, strerror(errno));
            ss_wal_free(w);
            return -1;
        }
    }
    *out = w;
    return 0;
}

int ss_wal_start(ss_wal *w, char *err, size_t errlen) {
    for (uint32_t i = 0; i < w->n; i++)
        if (ftruncate(w->f[i].fd, 0) != 0 || fdatasync(w->f[i].fd) != 0) {
            snprintf(err, errlen, "--wal: emptying the log: %s", strerror(errno));
            return -1;
        }
    /* logs of an earlier run with more workers were replayed too: drop them */
    for (uint32_t i = w->n;; i++) {
        char path[1100];
        file_name(w->dir, i, path, sizeof path);
        if (unlink(path) != 0) break;
    }
    int dfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

void ss_wal_free(ss_wal *w) {
    if (!w) return;
    for (uint32_t i = 0; i < w->n; i++) {
        if (w->f[i].fd >= 0) close(w->f[i].fd);
        pthread_mutex_destroy(&w->f[i].mu);
        pthread_mutex_destroy(&w->f[i].sync_mu);
    }
    free(w->f);
    free(w);
}

uint64_t ss_wal_bytes(const ss_wal *w) {
    return w ? __atomic_load_n(&w->bytes, __ATOMIC_RELAXED) : 0;
}

static int append(ss_wal *w, uint32_t worker, wbuf *payload, char *err, size_t errlen) {
    if (payload->oom || payload->len > REC_MAX) {
        free(payload->p);
        snprintf(err, errlen, "write-ahead log: %s",
                 payload->oom ? "out of memory" : "record too large");
        return -1;
    }
    wal_file *f = &w->f[worker % w->n];
    uint8_t head[8];
    uint32_t len = (uint32_t)payload->len, crc = (uint32_t)crc32(0, payload->p, (uInt)payload->len);
    for (int i = 0; i < 4; i++) {
        head[i] = (uint8_t)(len >> (8 * i));
        head[4 + i] = (uint8_t)(crc >> (8 * i));
    }
    /* one write per record (header and payload together), so a record is never interleaved
     * with another thread's */
    uint8_t *rec = malloc(payload->len + 8);
    if (!rec) {
        free(payload->p);
        snprintf(err, errlen, "write-ahead log: out of memory");
        return -1;
    }
    memcpy(rec, head, 8);
    memcpy(rec + 8, payload->p, payload->len);
    free(payload->p);
    size_t n = len + 8u, off = 0;
    int rc = 0;
    pthread_mutex_lock(&f->mu);
    while (off < n) {
        ssize_t k = write(f->fd, rec + off, n - off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            snprintf(err, errlen, "write-ahead log: write: %s", strerror(errno));
            rc = -1;
            break;
        }
        off += (size_t)k;
    }
    if (rc != 0 && off) /* cut a partial record off, so later ones stay readable */
        if (ftruncate(f->fd, lseek(f->fd, 0, SEEK_END) - (off_t)off) != 0) rc = -1;
    f->dirty = 1;
    if (rc == 0) f->size += n;
    pthread_mutex_unlock(&f->mu);
    free(rec);
    if (rc == 0) __atomic_fetch_add(&w->bytes, n, __ATOMIC_RELAXED);
    return rc;
}

static void head(wbuf *b, uint8_t kind, const char *id) {
    size_t n = strlen(id);
    put_u8(b, kind);
    put_u8(b, (uint8_t)n);
    put(b, id, n);
}

int ss_wal_step(ss_wal *w, ss_sess *s, uint64_t t0, const ss_batch *bt, char *err, size_t errlen) {
    wbuf b = {0};
    head(&b, REC_STEP, s->id);
    put_u8(&b, (uint8_t)(bt->has_seq != 0));
    put_u64(&b, bt->seq);
    put_u64(&b, t0);
    put_u32(&b, bt->steps);
    put_u32(&b, bt->outputs);
    put_u32(&b, (uint32_t)bt->n_events);
    put_u8(&b, bt->dense != NULL);
    for (size_t i = 0; i < bt->n_events; i++) {
        put_u32(&b, bt->events[i].step);
        put_u32(&b, bt->events[i].input);
        put_f32(&b, bt->events[i].value);
    }
    if (bt->dense)
        for (size_t i = 0; i < (size_t)bt->steps * s->model->n_in; i++)
            put_f32(&b, bt->dense[i]);
    s->wal_dirty = 1;
    return append(w, s->worker, &b, err, errlen);
}

static int simple(ss_wal *w, ss_sess *s, uint8_t kind, char *err, size_t errlen) {
    wbuf b = {0};
    head(&b, kind, s->id);
    s->wal_dirty = 1;
    return append(w, s->worker, &b, err, errlen);
}

int ss_wal_reset(ss_wal *w, ss_sess *s, char *err, size_t errlen) {
    return simple(w, s, REC_RESET, err, errlen);
}

int ss_wal_close(ss_wal *w, ss_sess *s, char *err, size_t errlen) {
    return simple(w, s, REC_CLOSE, err, errlen);
}

int ss_wal_snap(ss_wal *w, uint32_t worker, const char *id, const uint8_t *snap, size_t len,
                char *err, size_t errlen) {
    wbuf b = {0};
    head(&b, REC_SNAP, id);
    put(&b, snap, len);
    return append(w, worker, &b, err, errlen);
}

int ss_wal_sync(ss_wal *w, uint32_t worker, char *err, size_t errlen) {
    wal_file *f = &w->f[worker % w->n];
    int rc = 0;
    pthread_mutex_lock(&f->sync_mu);
    pthread_mutex_lock(&f->mu);
    int dirty = f->dirty;
    f->dirty = 0;
    pthread_mutex_unlock(&f->mu);
    if (dirty && fdatasync(f->fd) != 0) {
        snprintf(err, errlen, "write-ahead log: fdatasync: %s", strerror(errno));
        pthread_mutex_lock(&f->mu);
        f->dirty = 1; /* not durable: the next caller must not take it for done */
        pthread_mutex_unlock(&f->mu);
        rc = -1;
    }
    pthread_mutex_unlock(&f->sync_mu);
    return rc;
}

int ss_wal_checkpoint(ss_wal *w, uint32_t worker, ss_table *table, const char *dir, size_t *failed,
                      char *err, size_t errlen) {
    ss_sess **all;
    size_t n;
    if (ss_table_list(table, &all, &n) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        ss_sess *s = all[i];
        if (s->worker == worker && s->wal_dirty) {
            pthread_mutex_lock(&s->mu);
            int closed = s->closed;
            pthread_mutex_unlock(&s->mu);
            char msg[256];
            if (!closed && ss_store_save(dir, s, msg, sizeof msg) != 0) {
                if (!bad) snprintf(err, errlen, "session %s: %s", s->id, msg);
                bad++; /* the others are still saved; the log keeps this one's changes */
            } else {
                s->wal_dirty = 0;
            }
        }
        ss_sess_unref(s);
    }
    free(all);
    if (failed) *failed = bad;
    if (bad) return -1;
    int rc = 0;
    /* every change in the log is in a session file now (closed sessions' files are gone) */
    wal_file *f = &w->f[worker % w->n];
    pthread_mutex_lock(&f->mu);
    if (ftruncate(f->fd, 0) != 0 || fdatasync(f->fd) != 0) {
        snprintf(err, errlen, "write-ahead log: truncate: %s", strerror(errno));
        rc = -1;
    }
    f->dirty = 0;
    if (rc == 0) f->size = 0;
    pthread_mutex_unlock(&f->mu);
    return rc;
}

uint64_t ss_wal_size(ss_wal *w, uint32_t worker) {
    wal_file *f = &w->f[worker % w->n];
    pthread_mutex_lock(&f->mu);
    uint64_t n = f->size;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* ---- replay ---- */

static int replay_step(rbuf *r, ss_sess *s, spk_scratch *sc, const ss_limits *lim, char *err,
                       size_t errlen) {
    ss_batch b;
    memset(&b, 0, sizeof b);
    b.has_seq = get_u8(r);
    b.seq = get_u64(r);
    uint64_t t0 = get_u64(r);
    b.steps = get_u32(r);
    b.outputs = get_u32(r) & SS_OUT_ALL;
    uint32_t ne = get_u32(r);
    int dense = get_u8(r);
    if (r->bad || (size_t)ne * 12 > r->len - r->off) {
        snprintf(err, errlen, "bad step record");
        return -1;
    }
    /* the limits of this start (the log's batches were held to those of the last one) */
    if (ss_batch_check_limits(s->model, &b, lim, err, errlen) != 0) return -1;
    if (spk_state_t(s->state) != t0) return 1; /* already in the session file */
    int rc = -1;
    b.events = malloc(((size_t)ne + 1) * sizeof *b.events);
    size_t nd = dense ? (size_t)b.steps * s->model->n_in : 0;
    if (dense && nd * 4 > r->len - r->off) {
        snprintf(err, errlen, "bad step record");
        free(b.events);
        return -1;
    }
    if (dense) b.dense = malloc(nd * sizeof(float) + 1);
    void *mem = malloc(ss_batch_out_bytes(s->model, &b));
    if (!b.events || (dense && !b.dense) || !mem) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (uint32_t i = 0; i < ne; i++) {
        b.events[i].step = get_u32(r);
        b.events[i].input = get_u32(r);
        b.events[i].value = get_f32(r);
    }
    b.n_events = ne;
    for (size_t i = 0; i < nd; i++)
        b.dense[i] = get_f32(r);
    spk_output o;
    uint64_t start;
    rc = ss_apply_run(s, &b, sc, mem, &o, &start, err, errlen) == 0 ? 0 : -1;
done:
    free(mem);
    ss_batch_free(&b);
    return rc;
}

/* The replay's scratch for s's model version (made on first use). */
static spk_scratch *replay_scratch(spk_scratch **scratch, const ss_sess *s) {
    if (!scratch[s->model_idx]) scratch[s->model_idx] = spk_scratch_create(s->model);
    return scratch[s->model_idx];
}

static int replay_file(const char *path, ss_table *table, ss_reg *reg, spk_scratch **scratch,
                       uint32_t (*pick)(void *), void *arg, ss_wal_stats *st, const char *dir,
                       const ss_limits *lim) {
    uint8_t *buf;
    size_t len;
    char err[512];
    if (ss_util_read_file(path, (size_t)1 << 40, &buf, &len, err, sizeof err) != 0) {
        ss_log(SS_LOG_ERROR, "%s: %s", path, err);
        return -1;
    }
    size_t off = 0;
    while (off < len) {
        if (len - off < 8) {
            st->torn++;
            break;
        }
        const uint8_t *h = buf + off;
        uint32_t n =
            (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
        uint32_t crc =
            (uint32_t)h[4] | (uint32_t)h[5] << 8 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 24;
        if (n > len - off - 8 || (uint32_t)crc32(0, h + 8, n) != crc) {
            st->torn++;
            break;
        }
        rbuf r = {h + 8, n, 0, 0};
        off += 8 + (size_t)n;
        st->records++;
        uint8_t kind = get_u8(&r), idlen = get_u8(&r);
        const uint8_t *idp = get(&r, idlen);
        char id[SS_ID_MAX + 1];
        if (!idp || !ss_util_valid_id((const char *)idp, idlen)) {
            st->skipped++;
            continue;
        }
        memcpy(id, idp, idlen);
        id[idlen] = 0;
        ss_sess *s = ss_table_get(table, id);
        int rc = 1;
        if (kind == REC_SNAP) {
            ss_snap snap;
            if (ss_store_decode(r.p + r.off, r.len - r.off, reg, &snap, err, sizeof err) == 0) {
                if (s && s->model != snap.model) {
                    ss_table_remove(table, s) ? ss_sess_unref(s) : (void)0;
                    ss_sess_unref(s);
                    s = NULL;
                }
                if (!s) {
                    uint32_t idle = snap.has_idle ? snap.idle_timeout_s : 0;
                    s = ss_sess_create(id, snap.mv, pick(arg), idle);
                    if (s) {
                        s->owner = snap.owner;
                        if (ss_table_insert(table, s) != 0) {
                            ss_sess_unref(s);
                            s = NULL;
                        } else {
                            ss_sess_ref(s);
                            st->created++;
                        }
                    }
                }
                rc = s && ss_store_apply(s, &snap, err, sizeof err) == 0 ? 0 : -1;
                ss_store_snap_free(&snap);
            } else {
                rc = -1;
            }
        } else if (!s) {
            rc = 1; /* closed before its last save, or never saved: nothing to apply to */
        } else if (kind == REC_STEP) {
            spk_scratch *sc = replay_scratch(scratch, s);
            if (!sc) snprintf(err, sizeof err, "out of memory");
            rc = sc ? replay_step(&r, s, sc, lim, err, sizeof err) : -1;
        } else if (kind == REC_RESET) {
            ss_apply_reset(s);
            rc = 0;
        } else if (kind == REC_CLOSE) {
            pthread_mutex_lock(&s->mu);
            s->closed = 1;
            pthread_mutex_unlock(&s->mu);
            if (ss_table_remove(table, s)) ss_sess_unref(s);
            ss_store_remove(dir, id);
            st->closed++;
            rc = 0;
        }
        if (rc == 0) {
            st->applied++;
            if (s) s->wal_dirty = 1;
        } else {
            st->skipped++;
            if (rc < 0) ss_log(SS_LOG_WARN, "%s: session %s: %s", path, id, err);
        }
        ss_sess_unref(s);
    }
    free(buf);
    return 0;
}

int ss_wal_replay(const char *dir, ss_table *table, ss_reg *reg, const ss_limits *lim,
                  uint32_t (*pick)(void *arg), void *arg, ss_wal_stats *st, char *err,
                  size_t errlen) {
    memset(st, 0, sizeof *st);
    spk_scratch **scratch = calloc(SS_REG_SLOTS, sizeof *scratch); /* per version slot */
    if (!scratch) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* files in worker order; each session's records are all in one file */
    for (uint32_t i = 0;; i++) {
        char path[1100];
        file_name(dir, i, path, sizeof path);
        if (access(path, F_OK) != 0) break;
        replay_file(path, table, reg, scratch, pick, arg, st, dir, lim);
    }
    for (size_t i = 0; i < SS_REG_SLOTS; i++)
        spk_scratch_free(scratch[i]);
    free(scratch);
    return 0;
}
