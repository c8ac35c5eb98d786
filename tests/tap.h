/* tap.h: a minimal TAP producer for C tests. Each check prints "ok N - name" or
 * "not ok N - name" with the place; done_testing() prints the plan and returns the exit
 * status (1 when any check failed). Not thread-safe: check from the test's main thread. */
#ifndef TAP_H
#define TAP_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

static int tap_n, tap_failed;

static inline int tap_ok(int cond, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline int tap_ok(int cond, const char *file, int line, const char *fmt, ...) {
    va_list ap;
    tap_n++;
    printf("%sok %d - ", cond ? "" : "not ", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!cond) {
        tap_failed++;
        printf("#   failed at %s:%d\n", file, line);
    }
    fflush(stdout);
    return cond;
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, name)                                                               \
    do {                                                                                      \
        long long g_ = (long long)(got), w_ = (long long)(want);                              \
        if (!ok(g_ == w_, "%s", name)) printf("#   got %lld, want %lld\n", g_, w_);           \
    } while (0)
#define is_str(got, want, name)                                                               \
    do {                                                                                      \
        const char *g_ = (got), *w_ = (want);                                                 \
        if (!ok(g_ && w_ && strcmp(g_, w_) == 0, "%s", name))                                \
            printf("#   got \"%s\", want \"%s\"\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
    } while (0)
#define diag(...) (printf("# "), printf(__VA_ARGS__), printf("\n"))

static inline int done_testing(void) {
    printf("1..%d\n", tap_n);
    if (tap_failed) printf("# %d of %d checks failed\n", tap_failed, tap_n);
    return tap_failed ? 1 : 0;
}

#endif
