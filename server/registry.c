/* registry.c: versions of models, their references and their loading (registry.h).
 *
 * The list is a sorted array of referenced versions under a read-write lock; swapping an
 * entry is a pointer write under the write lock, and the old version lives on in whoever
 * still holds a reference (RCU by reference counts). The slot table has a mutex of its own
 * because the last unref can come from any thread (a worker freeing a session) while a
 * scan holds the scan mutex.
 *
 * A scan builds the list of candidate files first (directory order does not matter: the
 * list is sorted), then loads what is new or changed one file at a time with no lock held,
 * and last takes off the list what has no file any more.
 */
#include "registry.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"

#define MAX_FAILED 256 /* remembered refusals (files not retried until they change) */
#define MAX_GONE 256   /* remembered unloads for the repository index */

typedef struct {
    char path[1024];
    char name[SPK_MAX_NAME + 1]; /* "" for a flat file */
    uint32_t version;            /* 0 for a flat file */
    uint64_t ino;
    int64_t size, mtime_ns;
    int seen;
} cand;

typedef struct {
    char path[1024];
    char name[SPK_MAX_NAME + 1];
    uint32_t version;
    uint64_t ino;
    int64_t size, mtime_ns;
    char msg[384];
} failed_file;

typedef struct {
    char name[SPK_MAX_NAME + 1];
    uint32_t version;
} gone_ver;

struct ss_reg {
    char dir[1024];
    pthread_rwlock_t lk; /* list, failed, gone */
    ss_mver **list;
    size_t n, cap;
    failed_file *failed;
    size_t n_failed;
    gone_ver gone[MAX_GONE];
    size_t n_gone;

    pthread_mutex_t scan_mu; /* one scan at a time */
    pthread_mutex_t slot_mu;
    ss_mver *slots[SS_REG_SLOTS];
    uint64_t next_gen;

    uint64_t loads, unloads, failures; /* atomic */

    pthread_t poller;
    int polling, poll_stop;
    uint32_t poll_s;
    pthread_mutex_t pmu;
    pthread_cond_t pcv;
};

uint32_t ss_reg_parse_version(const char *s) {
    if (!s || s[0] < '1' || s[0] > '9') return 0;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return 0;
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > UINT32_MAX) return 0;
    }
    return (uint32_t)v;
}

ss_reg *ss_reg_create(const char *dir) {
    ss_reg *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    pthread_rwlock_init(&r->lk, NULL);
    pthread_mutex_init(&r->scan_mu, NULL);
    pthread_mutex_init(&r->slot_mu, NULL);
    pthread_mutex_init(&r->pmu, NULL);
    pthread_cond_init(&r->pcv, NULL);
    r->next_gen = 1;
    return r;
}

void ss_reg_free(ss_reg *r) {
    if (!r) return;
    ss_reg_poll_stop(r);
    for (size_t i = 0; i < r->n; i++)
        ss_reg_unref(r->list[i]);
    free(r->list);
    free(r->failed);
    pthread_rwlock_destroy(&r->lk);
    pthread_mutex_destroy(&r->scan_mu);
    pthread_mutex_destroy(&r->slot_mu);
    pthread_mutex_destroy(&r->pmu);
    pthread_cond_destroy(&r->pcv);
    free(r);
}

/* ---- references ---- */

void ss_reg_ref(ss_mver *v) {
    __atomic_fetch_add(&v->refs, 1, __ATOMIC_RELAXED);
}

void ss_reg_unref(ss_mver *v) {
    if (!v || __atomic_sub_fetch(&v->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    ss_reg *r = v->reg;
    pthread_mutex_lock(&r->slot_mu);
    r->slots[v->slot] = NULL;
    pthread_mutex_unlock(&r->slot_mu);
    spk_model_free(v->model);
    free(v);
}

/* A new version around m (one reference, the caller's), or NULL when every slot is taken. */
static ss_mver *mver_new(ss_reg *r, spk_model *m, const cand *c) {
    ss_mver *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    pthread_mutex_lock(&r->slot_mu);
    size_t s = 0;
    while (s < SS_REG_SLOTS && r->slots[s])
        s++;
    if (s < SS_REG_SLOTS) {
        r->slots[s] = v;
        v->gen = r->next_gen++;
    }
    pthread_mutex_unlock(&r->slot_mu);
    if (s == SS_REG_SLOTS) {
        free(v);
        return NULL;
    }
    v->model = m;
    v->name = m->name;
    v->version = m->version;
    v->slot = (uint32_t)s;
    v->refs = 1;
    v->reg = r;
    snprintf(v->path, sizeof v->path, "%s", c->path);
    v->ino = c->ino;
    v->size = c->size;
    v->mtime_ns = c->mtime_ns;
    return v;
}

/* ---- the list (callers hold lk) ---- */

static int cmp_ver(const ss_mver *a, const char *name, uint32_t version) {
    int c = strcmp(a->name, name);
    if (c) return c;
    return a->version < version ? -1 : a->version > version;
}

/* Index of (name, version), or -1; *at: where it would go. */
static long find(const ss_reg *r, const char *name, uint32_t version, size_t *at) {
    size_t i = 0;
    while (i < r->n && cmp_ver(r->list[i], name, version) < 0)
        i++;
    if (at) *at = i;
    return i < r->n && cmp_ver(r->list[i], name, version) == 0 ? (long)i : -1;
}

static long find_path(const ss_reg *r, const char *path) {
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->list[i]->path, path)) return (long)i;
    return -1;
}

static void remove_at(ss_reg *r, size_t i) {
    memmove(r->list + i, r->list + i + 1, (r->n - i - 1) * sizeof *r->list);
    r->n--;
}

static void note_gone(ss_reg *r, const char *name, uint32_t version) {
    for (size_t i = 0; i < r->n_gone; i++)
        if (!strcmp(r->gone[i].name, name) && r->gone[i].version == version) return;
    if (r->n_gone == MAX_GONE) memmove(r->gone, r->gone + 1, --r->n_gone * sizeof *r->gone);
    snprintf(r->gone[r->n_gone].name, sizeof r->gone[0].name, "%s", name);
    r->gone[r->n_gone++].version = version;
}

static void forget_gone(ss_reg *r, const char *name, uint32_t version) {
    for (size_t i = 0; i < r->n_gone; i++)
        if (!strcmp(r->gone[i].name, name) && r->gone[i].version == version) {
            memmove(r->gone + i, r->gone + i + 1, (r->n_gone - i - 1) * sizeof *r->gone);
            r->n_gone--;
            return;
        }
}

ss_mver *ss_reg_get(ss_reg *r, const char *name, uint32_t version) {
    ss_mver *v = NULL;
    pthread_rwlock_rdlock(&r->lk);
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->list[i]->name, name) && (version == 0 || r->list[i]->version == version))
            v = r->list[i]; /* sorted: the last match is the latest */
    if (v) ss_reg_ref(v);
    pthread_rwlock_unlock(&r->lk);
    return v;
}

int ss_reg_list(ss_reg *r, int latest_only, ss_mver ***out, size_t *n) {
    pthread_rwlock_rdlock(&r->lk);
    ss_mver **a = malloc((r->n ? r->n : 1) * sizeof *a);
    size_t k = 0;
    for (size_t i = 0; a && i < r->n; i++) {
        if (latest_only && i + 1 < r->n && !strcmp(r->list[i]->name, r->list[i + 1]->name))
            continue;
        ss_reg_ref(r->list[i]);
        a[k++] = r->list[i];
    }
    pthread_rwlock_unlock(&r->lk);
    *out = a;
    *n = k;
    return a ? 0 : -1;
}

void ss_reg_list_free(ss_mver **v, size_t n) {
    for (size_t i = 0; i < n; i++)
        ss_reg_unref(v[i]);
    free(v);
}

size_t ss_reg_count(ss_reg *r) {
    pthread_rwlock_rdlock(&r->lk);
    size_t n = r->n;
    pthread_rwlock_unlock(&r->lk);
    return n;
}

/* ss_reg_unlist with scan_mu held. */
static size_t unlist(ss_reg *r, const char *name, uint32_t version) {
    ss_mver *drop[SS_REG_SLOTS];
    size_t nd = 0;
    pthread_rwlock_wrlock(&r->lk);
    for (size_t i = 0; i < r->n && nd < SS_REG_SLOTS;) {
        ss_mver *v = r->list[i];
        if (!strcmp(v->name, name) && (version == 0 || v->version == version)) {
            note_gone(r, v->name, v->version);
            drop[nd++] = v;
            remove_at(r, i);
        } else {
            i++;
        }
    }
    pthread_rwlock_unlock(&r->lk);
    for (size_t i = 0; i < nd; i++) {
        ss_log(SS_LOG_INFO, "model %s version %u unloaded", drop[i]->name, drop[i]->version);
        __atomic_fetch_add(&r->unloads, 1, __ATOMIC_RELAXED);
        ss_reg_unref(drop[i]);
    }
    return nd;
}

size_t ss_reg_unlist(ss_reg *r, const char *name, uint32_t version) {
    pthread_mutex_lock(&r->scan_mu); /* not in the middle of a scan */
    size_t n = unlist(r, name, version);
    pthread_mutex_unlock(&r->scan_mu);
    return n;
}

ss_mver *ss_reg_adopt(ss_reg *r, spk_model *m) {
    cand c;
    memset(&c, 0, sizeof c);
    snprintf(c.path, sizeof c.path, "(adopted %s)", m->name);
    ss_mver *v = mver_new(r, m, &c);
    if (!v) {
        spk_model_free(m);
        return NULL;
    }
    pthread_rwlock_wrlock(&r->lk);
    size_t at;
    ss_mver **g = NULL;
    int ok = find(r, v->name, v->version, &at) < 0 &&
             (r->n < r->cap || (g = realloc(r->list, (r->cap * 2 + 4) * sizeof *g)) != NULL);
    if (ok && g) {
        r->list = g;
        r->cap = r->cap * 2 + 4;
    }
    if (ok) {
        memmove(r->list + at + 1, r->list + at, (r->n - at) * sizeof *r->list);
        r->list[at] = v;
        r->n++;
        ss_reg_ref(v); /* the caller's */
    }
    pthread_rwlock_unlock(&r->lk);
    if (!ok) {
        ss_reg_unref(v);
        return NULL;
    }
    return v;
}

/* ---- scanning ---- */

static int valid_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > SPK_MAX_NAME || s[0] == '.') return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static int ends_spk(const char *s, size_t *stem) {
    size_t l = strlen(s);
    if (l < 5 || strcmp(s + l - 4, ".spk") != 0 || s[0] == '.') return 0;
    *stem = l - 4;
    return 1;
}

static int add_cand(cand **cs, size_t *n, size_t *cap, const char *path, const char *name,
                    uint32_t version, const struct stat *st) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        cand *g = realloc(*cs, nc * sizeof *g);
        if (!g) return -1;
        *cs = g;
        *cap = nc;
    }
    cand *c = &(*cs)[(*n)++];
    memset(c, 0, sizeof *c);
    snprintf(c->path, sizeof c->path, "%s", path);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->version = version;
    c->ino = (uint64_t)st->st_ino;
    c->size = (int64_t)st->st_size;
    c->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    return 0;
}

static int cmp_cand(const void *a, const void *b) {
    return strcmp(((const cand *)a)->path, ((const cand *)b)->path);
}

/* 1 when a flat file at path belongs to the scan of model `only`. */
static int flat_in_scope(ss_reg *r, const char *path, const char *stem, size_t stem_len,
                         const char *only) {
    if (!only) return 1;
    if (strlen(only) == stem_len && !strncmp(stem, only, stem_len)) return 1;
    pthread_rwlock_rdlock(&r->lk);
    long i = find_path(r, path);
    int in = i >= 0 && !strcmp(r->list[i]->name, only);
    pthread_rwlock_unlock(&r->lk);
    return in;
}

/* The candidate files of a scan, sorted by path. 0 or -1 with err. */
static int candidates(ss_reg *r, const char *only, cand **out, size_t *n_out, char *err,
                      size_t errlen) {
    cand *cs = NULL;
    size_t n = 0, cap = 0;
    DIR *d = opendir(r->dir);
    if (!d) {
        snprintf(err, errlen, "--model-dir %s: %s", r->dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        char path[1024];
        struct stat st;
        size_t stem;
        if (e->d_name[0] == '.') continue;
        if (snprintf(path, sizeof path, "%s/%s", r->dir, e->d_name) >= (int)sizeof path) continue;
        if (stat(path, &st) != 0) continue; /* gone meanwhile */
        if (S_ISREG(st.st_mode) && ends_spk(e->d_name, &stem)) {
            if (flat_in_scope(r, path, e->d_name, stem, only))
                rc = add_cand(&cs, &n, &cap, path, "", 0, &st);
            continue;
        }
        if (!S_ISDIR(st.st_mode) || !valid_name(e->d_name)) continue;
        if (only && strcmp(only, e->d_name) != 0) continue;
        DIR *vd = opendir(path);
        if (!vd) continue;
        struct dirent *ve;
        while (rc == 0 && (ve = readdir(vd))) {
            char vpath[1024], num[16];
            struct stat vst;
            if (!ends_spk(ve->d_name, &stem) || stem >= sizeof num) continue;
            memcpy(num, ve->d_name, stem);
            num[stem] = 0;
            uint32_t version = ss_reg_parse_version(num);
            if (!version) continue; /* not VERSION.spk: not ours */
            if (snprintf(vpath, sizeof vpath, "%s/%s", path, ve->d_name) >= (int)sizeof vpath)
                continue;
            if (stat(vpath, &vst) != 0 || !S_ISREG(vst.st_mode)) continue;
            rc = add_cand(&cs, &n, &cap, vpath, e->d_name, version, &vst);
        }
        closedir(vd);
    }
    closedir(d);
    if (rc != 0) {
        free(cs);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (n) qsort(cs, n, sizeof *cs, cmp_cand);
    *out = cs;
    *n_out = n;
    return 0;
}

static int same_file(const cand *c, uint64_t ino, int64_t size, int64_t mtime_ns) {
    return c->ino == ino && c->size == size && c->mtime_ns == mtime_ns;
}

/* Remember a refusal (the caller holds lk for writing). */
static void note_failed(ss_reg *r, const cand *c, const char *name, uint32_t version,
                        const char *msg) {
    size_t i = 0;
    while (i < r->n_failed && strcmp(r->failed[i].path, c->path) != 0)
        i++;
    if (i == r->n_failed) {
        if (r->n_failed == MAX_FAILED) return;
        failed_file *g = realloc(r->failed, (r->n_failed + 1) * sizeof *g);
        if (!g) return;
        r->failed = g;
        r->n_failed++;
    }
    failed_file *f = &r->failed[i];
    snprintf(f->path, sizeof f->path, "%s", c->path);
    snprintf(f->name, sizeof f->name, "%s", name);
    f->version = version;
    f->ino = c->ino;
    f->size = c->size;
    f->mtime_ns = c->mtime_ns;
    snprintf(f->msg, sizeof f->msg, "%.*s", (int)sizeof f->msg - 1, msg);
}

/* 1 when a scan of model `only` (NULL: all) looks at the file of refusal f: its directory
 * is only's, or it is the flat file only.spk. */
static int failed_in_scope(const ss_reg *r, const failed_file *f, const char *only) {
    if (!only) return 1;
    if (f->name[0]) return !strcmp(f->name, only);
    char flat[1100];
    snprintf(flat, sizeof flat, "%s/%s.spk", r->dir, only);
    return !strcmp(flat, f->path);
}

static void forget_failed(ss_reg *r, size_t i) {
    memmove(r->failed + i, r->failed + i + 1, (r->n_failed - i - 1) * sizeof *r->failed);
    r->n_failed--;
}

static void append(char *err, size_t errlen, const char *msg) {
    size_t l = strlen(err);
    if (l + 3 < errlen) snprintf(err + l, errlen - l, "%s%s", l ? "; " : "", msg);
}

/* Load one candidate and list it. 0 loaded (or reloaded), -1 refused with msg. */
static int load_one(ss_reg *r, const cand *c, int *reloaded, char *msg, size_t msglen) {
    spk_model *m = NULL;
    char lm[512];
    if (spk_model_load_file(c->path, &m, lm, sizeof lm) != 0) {
        if (strstr(lm, c->path))
            snprintf(msg, msglen, "%.500s", lm);
        else
            snprintf(msg, msglen, "%.400s: %.500s", c->path, lm);
        return -1;
    }
    if (c->name[0]) {
        if (strcmp(m->name, c->name) != 0) {
            snprintf(msg, msglen, "%s: name: the file names model \"%s\", its directory %s",
                     c->path, m->name, c->name);
            spk_model_free(m);
            return -1;
        }
        m->version = c->version; /* the directory's number is the version */
    }
    ss_mver *v = mver_new(r, m, c);
    if (!v) {
        snprintf(msg, msglen, "%s: %d model versions are loaded or in use, the most there may be",
                 c->path, SS_REG_SLOTS);
        spk_model_free(m);
        return -1;
    }
    ss_mver *old = NULL;
    pthread_rwlock_wrlock(&r->lk);
    size_t at;
    long same = find(r, v->name, v->version, &at), mine = find_path(r, c->path);
    if (same >= 0 && strcmp(r->list[same]->path, c->path) != 0) {
        snprintf(msg, msglen, "%.400s: model %s version %u is loaded from %.400s already", c->path,
                 v->name, v->version, r->list[same]->path);
        pthread_rwlock_unlock(&r->lk);
        ss_reg_unref(v);
        return -1;
    }
    if (mine >= 0) { /* this file held another name or version before: that one goes */
        old = r->list[mine];
        remove_at(r, (size_t)mine);
        if (cmp_ver(old, v->name, v->version) != 0) note_gone(r, old->name, old->version);
        find(r, v->name, v->version, &at);
    }
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 16;
        ss_mver **g = realloc(r->list, nc * sizeof *g);
        if (!g) {
            if (old) { /* put it back */
                size_t oat;
                find(r, old->name, old->version, &oat);
                memmove(r->list + oat + 1, r->list + oat, (r->n - oat) * sizeof *r->list);
                r->list[oat] = old;
                r->n++;
            }
            pthread_rwlock_unlock(&r->lk);
            snprintf(msg, msglen, "%s: out of memory", c->path);
            ss_reg_unref(v);
            return -1;
        }
        r->list = g;
        r->cap = nc;
    }
    memmove(r->list + at + 1, r->list + at, (r->n - at) * sizeof *r->list);
    r->list[at] = v;
    r->n++;
    forget_gone(r, v->name, v->version);
    for (size_t i = 0; i < r->n_failed; i++)
        if (!strcmp(r->failed[i].path, c->path)) {
            forget_failed(r, i);
            break;
        }
    pthread_rwlock_unlock(&r->lk);
    *reloaded = old != NULL;
    if (old) ss_reg_unref(old);
    return 0;
}

int ss_reg_scan(ss_reg *r, const char *only, int strict, ss_reg_scan_stats *st, char *err,
                size_t errlen) {
    ss_reg_scan_stats local;
    if (!st) st = &local;
    memset(st, 0, sizeof *st);
    if (errlen) err[0] = 0;
    pthread_mutex_lock(&r->scan_mu);
    cand *cs = NULL;
    size_t n = 0;
    if (candidates(r, only, &cs, &n, err, errlen) != 0) {
        pthread_mutex_unlock(&r->scan_mu);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        cand *c = &cs[i];
        pthread_rwlock_rdlock(&r->lk);
        long at = find_path(r, c->path);
        int unchanged =
            at >= 0 && same_file(c, r->list[at]->ino, r->list[at]->size, r->list[at]->mtime_ns);
        for (size_t k = 0; !unchanged && k < r->n_failed; k++)
            if (!strcmp(r->failed[k].path, c->path) &&
                same_file(c, r->failed[k].ino, r->failed[k].size, r->failed[k].mtime_ns))
                unchanged = 2; /* refused as it is: not again */
        pthread_rwlock_unlock(&r->lk);
        if (unchanged) {
            if (unchanged == 1) st->unchanged++;
            continue;
        }
        char msg[1024];
        int reloaded = 0;
        if (load_one(r, c, &reloaded, msg, sizeof msg) == 0) {
            pthread_rwlock_rdlock(&r->lk);
            long k = find_path(r, c->path);
            char what[SPK_MAX_NAME + 32] = "";
            if (k >= 0)
                snprintf(what, sizeof what, "%s version %u", r->list[k]->name, r->list[k]->version);
            pthread_rwlock_unlock(&r->lk);
            __atomic_fetch_add(&r->loads, 1, __ATOMIC_RELAXED);
            if (reloaded)
                st->reloaded++;
            else
                st->loaded++;
            /* at start-up main.c lists what is served */
            ss_log(strict ? SS_LOG_DEBUG : SS_LOG_INFO, "model %s %s from %s", what,
                   reloaded ? "reloaded" : "loaded", c->path);
            continue;
        }
        rc = -1;
        st->failed++;
        __atomic_fetch_add(&r->failures, 1, __ATOMIC_RELAXED);
        append(err, errlen, msg);
        pthread_rwlock_wrlock(&r->lk);
        long k = find_path(r, c->path);
        note_failed(r, c, c->name[0] ? c->name : "", c->version, msg);
        pthread_rwlock_unlock(&r->lk);
        ss_log(SS_LOG_WARN, "model file refused: %s%s", msg,
               k >= 0 ? " (the version loaded from it before keeps serving)" : "");
        if (strict) break;
    }
    /* versions whose file is gone */
    if (rc == 0 || !strict) {
        for (;;) {
            char name[SPK_MAX_NAME + 1] = "";
            uint32_t version = 0;
            pthread_rwlock_rdlock(&r->lk);
            for (size_t i = 0; i < r->n && !name[0]; i++) {
                ss_mver *v = r->list[i];
                if (only && strcmp(v->name, only) != 0) continue;
                cand key;
                snprintf(key.path, sizeof key.path, "%s", v->path);
                if (!n || !bsearch(&key, cs, n, sizeof *cs, cmp_cand)) {
                    snprintf(name, sizeof name, "%s", v->name);
                    version = v->version;
                }
            }
            pthread_rwlock_unlock(&r->lk);
            if (!name[0]) break;
            st->unloaded += unlist(r, name, version);
        }
        pthread_rwlock_wrlock(&r->lk); /* refusals of files that are gone (in scope) */
        for (size_t i = 0; i < r->n_failed;) {
            cand key;
            snprintf(key.path, sizeof key.path, "%s", r->failed[i].path);
            if (failed_in_scope(r, &r->failed[i], only) &&
                (!n || !bsearch(&key, cs, n, sizeof *cs, cmp_cand)))
                forget_failed(r, i);
            else
                i++;
        }
        pthread_rwlock_unlock(&r->lk);
    }
    free(cs);
    pthread_mutex_unlock(&r->scan_mu);
    return rc;
}

/* ---- index and metrics ---- */

int ss_reg_index(ss_reg *r, ss_reg_row **out, size_t *n) {
    pthread_rwlock_rdlock(&r->lk);
    size_t cap = r->n + r->n_failed + r->n_gone;
    ss_reg_row *rows = calloc(cap ? cap : 1, sizeof *rows);
    size_t k = 0;
    for (size_t i = 0; rows && i < r->n; i++, k++) {
        snprintf(rows[k].name, sizeof rows[k].name, "%s", r->list[i]->name);
        rows[k].version = r->list[i]->version;
        rows[k].ready = 1;
    }
    for (size_t i = 0; rows && i < r->n_failed; i++) {
        long at = find_path(r, r->failed[i].path);
        if (at >= 0) { /* a replacement refused: the row of what its file held before says so */
            snprintf(rows[at].reason, sizeof rows[at].reason,
                     "serving the file loaded before; %.340s", r->failed[i].msg);
            continue;
        }
        const char *base = strrchr(r->failed[i].path, '/');
        base = base ? base + 1 : r->failed[i].path;
        if (r->failed[i].name[0])
            snprintf(rows[k].name, sizeof rows[k].name, "%s", r->failed[i].name);
        else
            snprintf(rows[k].name, sizeof rows[k].name, "%.*s", (int)(strlen(base) - 4), base);
        rows[k].version = r->failed[i].version;
        snprintf(rows[k].reason, sizeof rows[k].reason, "%s", r->failed[i].msg);
        k++;
    }
    for (size_t i = 0; rows && i < r->n_gone; i++, k++) {
        snprintf(rows[k].name, sizeof rows[k].name, "%s", r->gone[i].name);
        rows[k].version = r->gone[i].version;
        snprintf(rows[k].reason, sizeof rows[k].reason, "unloaded");
    }
    pthread_rwlock_unlock(&r->lk);
    *out = rows;
    *n = k;
    return rows ? 0 : -1;
}

int ss_reg_metrics(ss_reg *r, ss_metrics_model **rows, size_t *n, ss_metrics_models_total *t) {
    pthread_rwlock_rdlock(&r->lk);
    ss_metrics_model *m = calloc(r->n ? r->n : 1, sizeof *m);
    for (size_t i = 0; m && i < r->n; i++) {
        ss_mver *v = r->list[i];
        snprintf(m[i].model, sizeof m[i].model, "%s", v->name);
        m[i].version = v->version;
        m[i].sessions = __atomic_load_n(&v->sessions, __ATOMIC_RELAXED);
        m[i].batches = __atomic_load_n(&v->batches, __ATOMIC_RELAXED);
        m[i].steps = __atomic_load_n(&v->steps, __ATOMIC_RELAXED);
    }
    *n = r->n;
    pthread_rwlock_unlock(&r->lk);
    t->loads = __atomic_load_n(&r->loads, __ATOMIC_RELAXED);
    t->unloads = __atomic_load_n(&r->unloads, __ATOMIC_RELAXED);
    t->failures = __atomic_load_n(&r->failures, __ATOMIC_RELAXED);
    *rows = m;
    return m ? 0 : -1;
}

/* ---- polling ---- */

static void *poll_main(void *arg) {
    ss_reg *r = arg;
    pthread_mutex_lock(&r->pmu);
    while (!r->poll_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += r->poll_s;
        while (!r->poll_stop && pthread_cond_timedwait(&r->pcv, &r->pmu, &ts) != ETIMEDOUT) {
        }
        if (r->poll_stop) break;
        pthread_mutex_unlock(&r->pmu);
        char err[2048];
        ss_reg_scan(r, NULL, 0, NULL, err, sizeof err); /* logged and counted inside */
        pthread_mutex_lock(&r->pmu);
    }
    pthread_mutex_unlock(&r->pmu);
    return NULL;
}

int ss_reg_poll_start(ss_reg *r, uint32_t seconds, char *err, size_t errlen) {
    r->poll_s = seconds ? seconds : 1;
    r->poll_stop = 0;
    if (pthread_create(&r->poller, NULL, poll_main, r) != 0) {
        snprintf(err, errlen, "cannot start the model directory poller");
        return -1;
    }
    r->polling = 1;
    return 0;
}

void ss_reg_poll_stop(ss_reg *r) {
    if (!r->polling) return;
    pthread_mutex_lock(&r->pmu);
    r->poll_stop = 1;
    pthread_cond_signal(&r->pcv);
    pthread_mutex_unlock(&r->pmu);
    pthread_join(r->poller, NULL);
    r->polling = 0;
}
