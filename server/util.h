/* util.h: small helpers of the server: clocks, RFC 3339 times, random session ids and
 * atomic file writes. All functions are thread-safe and allocate nothing unless stated. */
#ifndef SS_UTIL_H
#define SS_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define SS_ID_LEN 32 /* hex characters of a generated session id (128 random bits) */
#define SS_ID_MAX 64 /* longest accepted id (PUT /state may name its own) */

int64_t ss_util_now_ms(void);  /* wall clock, milliseconds since the epoch */
int64_t ss_util_mono_us(void); /* monotonic clock, microseconds */
/* "2026-11-28T20:47:57.123Z" into buf (at least 32 bytes). */
void ss_util_rfc3339(int64_t ms, char *buf, size_t len);
/* Parses what ss_util_rfc3339 writes (and whole seconds); 0 or -1. */
int ss_util_parse_rfc3339(const char *s, int64_t *ms);
/* A fresh id: 128 bits from getrandom(), as 32 lowercase hex characters + NUL. 0 or -1. */
int ss_util_new_id(char out[SS_ID_LEN + 1]);
/* 1 when s is a usable id: 1..SS_ID_MAX characters of [A-Za-z0-9_-]. */
int ss_util_valid_id(const char *s, size_t len);
/* Write buf to dir/name atomically: dir/.name.tmp, fsync, rename, fsync dir. 0 or -1. */
int ss_util_write_atomic(const char *dir, const char *name, const void *buf, size_t len, char *err,
                         size_t errlen);
/* buf grown (realloc) to hold at least need bytes: *cap doubles from first (or from *cap).
 * The new buffer with *cap updated, or NULL (buf and *cap untouched) when memory is short. */
void *ss_util_grow(void *buf, size_t *cap, size_t need, size_t first);
/* Read a whole file (at most max bytes) into a malloc'd buffer. 0 or -1. */
int ss_util_read_file(const char *path, size_t max, uint8_t **buf, size_t *len, char *err,
                      size_t errlen);

#endif
