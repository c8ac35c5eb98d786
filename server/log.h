/* log.h: the server's one way to say something on stderr, with levels, and the assertion
 * for our own invariants. Lines start with "spikeserve: " and end with a newline; one write
 * per line, so lines of different threads never interleave.
 *
 * SS_ASSERT is for our own bugs only: bytes from a client, a model file or a state file
 * never reach it (they get a 4xx or an error message).
 * Thread-safety: every function may be called from any thread.
 */
#ifndef SS_LOG_H
#define SS_LOG_H

typedef enum { SS_LOG_ERROR = 0, SS_LOG_WARN = 1, SS_LOG_INFO = 2, SS_LOG_DEBUG = 3 } ss_log_level;

/* Lines above this level are dropped (default SS_LOG_INFO). */
void ss_log_set_level(ss_log_level l);
/* "error", "warn", "info" or "debug" -> 0 and *out, or -1. */
int ss_log_parse_level(const char *s, ss_log_level *out);
void ss_log(ss_log_level l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

_Noreturn void ss_assert_fail(const char *cond, const char *file, int line);
#define SS_ASSERT(cond) ((cond) ? (void)0 : ss_assert_fail(#cond, __FILE__, __LINE__))

#endif
