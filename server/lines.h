/* lines.h: the NDJSON splitter of POST /stream, as a pure function of the bytes (no HTTP,
 * no sessions), so it can be fuzzed on its own.
 *
 * Bytes arrive in pieces of any size. Each complete line (up to '\n', without it, with
 * leading spaces/tabs and trailing spaces/tabs/'\r' trimmed) goes to a callback; blank
 * lines are skipped. A line longer than max bytes (before trimming) sets too_long and the
 * rest of the input is discarded: memory stays below max + one piece.
 * Thread-safety: one ss_lines belongs to one caller. */
#ifndef SS_LINES_H
#define SS_LINES_H

#include <stddef.h>

typedef struct {
    char *buf; /* the partial line carried between pieces */
    size_t len, cap, max;
    int too_long;
} ss_lines;

/* fn returns 0 to go on, nonzero to stop right after this line (the caller is paused). */
typedef int (*ss_lines_fn)(void *arg, const char *line, size_t n);

void ss_lines_init(ss_lines *l, size_t max);
void ss_lines_free(ss_lines *l); /* frees the buffer, not l */
/* Feed n bytes; *used gets how many were consumed (all of them unless fn stopped): the
 * caller passes the rest again later. 0, or -1 out of memory. */
int ss_lines_feed(ss_lines *l, const char *data, size_t n, size_t *used, ss_lines_fn fn, void *arg);
/* End of input: the last line if it had no '\n' (and was not too long). */
void ss_lines_end(ss_lines *l, ss_lines_fn fn, void *arg);

#endif
