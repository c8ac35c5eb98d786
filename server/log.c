/* log.c: stderr lines; warnings and errors say so after the prefix. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int level = SS_LOG_INFO; /* atomic */

void ss_log_set_level(ss_log_level l) {
    __atomic_store_n(&level, (int)l, __ATOMIC_RELAXED);
}

int ss_log_parse_level(const char *s, ss_log_level *out) {
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i])) {
            *out = (ss_log_level)i;
            return 0;
        }
    return -1;
}

void ss_log(ss_log_level l, const char *fmt, ...) {
    if ((int)l > __atomic_load_n(&level, __ATOMIC_RELAXED)) return;
    char line[2048];
    int n = snprintf(line, sizeof line, "spikeserve: %s",
                     l == SS_LOG_ERROR  ? "error: "
                     : l == SS_LOG_WARN ? "warning: "
                                        : "");
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (k < 0 ? 0 : (size_t)k);
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void ss_assert_fail(const char *cond, const char *file, int line) {
    ss_log(SS_LOG_ERROR, "internal error: %s:%d: assertion failed: %s", file, line, cond);
    abort();
}
