/* registry.h: the models being served, in versions, loaded at start and at run time.
 *
 * Layout of the model directory (--model-dir):
 *   DIR/NAME.spk          flat, as before: one version, the number in the file's `version`
 *                         field; the model's name is the file's `name` field
 *   DIR/NAME/VERSION.spk  VERSION a positive integer (no leading zeros); it is the version,
 *                         whatever the file's `version` field says (the registry writes it
 *                         into the loaded model, so session info and snapshots carry it);
 *                         the file's `name` field must be NAME
 * Two files that give the same name and version: the second is refused.
 *
 * A loaded version (ss_mver) is immutable and reference counted. The registry holds one
 * reference while the version is listed; each session, job, decoded snapshot and request
 * that uses it holds another, so a version is freed only once nothing uses it, however it
 * left the registry (unload, reload, removed file). Lookups take a read lock just long
 * enough to take a reference. A scan reads and checks files with no lock held (the
 * engine's loader, which names file and field in its messages) and swaps entries under the
 * write lock; scans are serialized by their own mutex (the poll thread and load requests).
 * A file that fails to load at run time leaves what was loaded as it was, and is not tried
 * again until it changes (size, mtime or inode).
 *
 * Slots: every version that exists (listed or still referenced) has an index below
 * SS_REG_SLOTS, so workers can keep per-version scratch in an array; `gen` is unique per
 * load, so a worker tells a reused slot from the one it prepared for.
 *
 * Thread-safety: every function is thread-safe.
 */
#ifndef SS_REGISTRY_H
#define SS_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/model.h"
#include "metrics.h"

#define SS_REG_SLOTS 256

typedef struct ss_reg ss_reg;

typedef struct ss_mver {
    spk_model *model; /* immutable once listed */
    const char *name; /* model->name */
    uint32_t version; /* model->version */
    uint32_t slot;
    uint64_t gen;
    char path[1024];
    /* atomic counters for /metrics */
    int64_t sessions; /* sessions pinned to this version (created, not yet freed) */
    uint64_t batches, steps;
    /* private */
    int refs;
    ss_reg *reg;
    uint64_t ino;
    int64_t size, mtime_ns;
} ss_mver;

/* An empty registry of dir. NULL when out of memory. */
ss_reg *ss_reg_create(const char *dir);
/* Stops polling, drops the registry's references. Versions still referenced elsewhere
 * stay valid until their last unref (which must come before ss_reg_free returns... so free
 * every session first). NULL is a no-op. */
void ss_reg_free(ss_reg *r);

typedef struct {
    size_t loaded, reloaded, unloaded, unchanged, failed;
} ss_reg_scan_stats;

/* Make the registry match the directory: load new files, reload changed ones, unload the
 * versions whose file is gone. only: NULL for every model, else just model `only` (its
 * directory, DIR/only.spk, and flat files it was loaded from). strict (start-up): stop at
 * the first bad file. Returns 0, or -1 with the refusals (file and field) in err when a
 * file failed (what could be loaded is loaded). Failures are logged and counted. */
int ss_reg_scan(ss_reg *r, const char *only, int strict, ss_reg_scan_stats *st, char *err,
                size_t errlen);

/* List a model loaded elsewhere (tests, tools) as m->name version m->version; the registry
 * takes m (freed on failure too). The version with a reference, or NULL. */
ss_mver *ss_reg_adopt(ss_reg *r, spk_model *m);

/* The version of model name (0: the latest listed), with a reference; NULL when absent. */
ss_mver *ss_reg_get(ss_reg *r, const char *name, uint32_t version);
void ss_reg_ref(ss_mver *v);
void ss_reg_unref(ss_mver *v); /* NULL is a no-op */

/* Every listed version, sorted by name then version, each with a reference. latest_only:
 * one per model. 0 or -1 (out of memory). */
int ss_reg_list(ss_reg *r, int latest_only, ss_mver ***out, size_t *n);
void ss_reg_list_free(ss_mver **v, size_t n);
size_t ss_reg_count(ss_reg *r); /* versions listed */

/* Take versions off the list (version 0: every version of name); sessions keep theirs.
 * Returns how many, 0 when none was listed. */
size_t ss_reg_unlist(ss_reg *r, const char *name, uint32_t version);

/* Repository index rows: what is listed (READY; the reason says when its file was replaced
 * by one that was refused), what failed to load and what was unloaded (UNAVAILABLE, with the
 * reason). */
typedef struct {
    char name[SPK_MAX_NAME + 1];
    uint32_t version; /* 0: unknown (a flat file that did not load) */
    int ready;
    char reason[384];
} ss_reg_row;
int ss_reg_index(ss_reg *r, ss_reg_row **out, size_t *n); /* malloc'd; 0 or -1 */

/* What /metrics shows of the registry (metrics.h): a malloc'd row per listed version and
 * the totals. 0 or -1 (out of memory). */
int ss_reg_metrics(ss_reg *r, ss_metrics_model **rows, size_t *n, ss_metrics_models_total *t);

/* Scan every `seconds` on a thread of its own until ss_reg_poll_stop (or ss_reg_free). */
int ss_reg_poll_start(ss_reg *r, uint32_t seconds, char *err, size_t errlen);
void ss_reg_poll_stop(ss_reg *r);

/* "7" -> 7; 0 when s is not a positive decimal integer that fits (no sign, no leading 0). */
uint32_t ss_reg_parse_version(const char *s);

#endif
