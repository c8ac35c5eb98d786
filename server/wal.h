/* wal.h: the write-ahead log of accepted session changes (--wal, with --state-dir).
 *
 * One log file per worker, "<state-dir>/wal-<worker>.log". A worker appends a record for
 * every change it is about to make to one of its sessions (a batch of steps, a reset, a
 * restored snapshot, a close) and syncs the file (one fdatasync for everything it took
 * off its queue) before any of those requests is answered. So an acknowledged change is on
 * disk even when the process is killed with SIGKILL right after the answer.
 *
 * A checkpoint (ss_wal_checkpoint, on the worker) writes every session of that worker the
 * log touched to its "<id>.session" file and then empties the log. On start the sessions
 * of --state-dir are loaded first, then every wal-*.log is replayed on top of them in
 * order (a step record applies only when its session is at the record's t0, so replaying
 * a record twice changes nothing), then every session is saved and the logs are emptied.
 *
 * Record: u32 payload length, u32 crc32 of the payload, payload (u8 kind, u8 id length,
 * id, then the kind's fields, little-endian). A torn or corrupt tail ends the replay of
 * that file (it can only be a record whose request was never answered).
 *
 * Thread-safety: appends and syncs to one worker's file may come from any thread (a
 * mutex per file); checkpoint runs on the file's worker.
 */
#ifndef SS_WAL_H
#define SS_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "session.h"
#include "store.h"

typedef struct ss_wal ss_wal;

/* Open (creating) one log per worker in dir, keeping what is in them for the replay.
 * 0 or -1 with err. */
int ss_wal_open(const char *dir, uint32_t workers, ss_wal **out, char *err, size_t errlen);
/* After the replay and a save of every session it touched: empty every log (and remove
 * the logs of an earlier run with more workers). 0 or -1 with err. */
int ss_wal_start(ss_wal *w, char *err, size_t errlen);
void ss_wal_free(ss_wal *w); /* NULL is a no-op */

/* Appends (not yet durable): 0 or -1 with err. step: t0 is the session's t before it. */
int ss_wal_step(ss_wal *w, ss_sess *s, uint64_t t0, const ss_batch *b, char *err, size_t errlen);
int ss_wal_reset(ss_wal *w, ss_sess *s, char *err, size_t errlen);
int ss_wal_close(ss_wal *w, ss_sess *s, char *err, size_t errlen);
/* A session snapshot (ss_store_encode with its owner): creates or replaces the session. */
int ss_wal_snap(ss_wal *w, uint32_t worker, const char *id, const uint8_t *snap, size_t len,
                char *err, size_t errlen);
/* Make everything appended to worker's file durable. 0 or -1 with err. */
int ss_wal_sync(ss_wal *w, uint32_t worker, char *err, size_t errlen);
/* Worker only: save every session of this worker with records in the log (sessions of
 * table whose wal_dirty is set), then empty the log. 0, or -1 when a session could not be
 * saved (the others are; the log is kept, so nothing is lost): *failed (if not NULL) gets
 * how many, err names the first. */
int ss_wal_checkpoint(ss_wal *w, uint32_t worker, ss_table *table, const char *dir, size_t *failed,
                      char *err, size_t errlen);
/* Bytes in worker's log now (since it was last emptied). */
uint64_t ss_wal_size(ss_wal *w, uint32_t worker);
/* Bytes appended since the start (for /metrics and the benchmark). */
uint64_t ss_wal_bytes(const ss_wal *w);

/* Start-up replay of every wal-*.log of dir into table (before any worker runs). New
 * sessions go to worker pick(arg). Step records are applied through apply.h, held to lim
 * (ss_batch_check_limits: one over them is skipped). Counts what it applied and skipped. */
typedef struct {
    size_t records, applied, skipped, created, closed, torn;
} ss_wal_stats;
struct ss_reg;
int ss_wal_replay(const char *dir, ss_table *table, struct ss_reg *reg, const ss_limits *lim,
                  uint32_t (*pick)(void *arg), void *arg, ss_wal_stats *st, char *err,
                  size_t errlen);

#endif
