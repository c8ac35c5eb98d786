/* test_noalloc.c: stepping allocates nothing. The test counts every allocation of the
 * process by interposing malloc, calloc, realloc and aligned_alloc (forwarding to glibc),
 * then runs spk_step and spk_step_many (events, dense rows, every output, every kernel).
 * Under a sanitizer, which owns the allocator itself, the counting is skipped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/testmodel.h"
#include "../tap.h"
#include "state.h"
#include "step.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define COUNTING 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
    __has_feature(memory_sanitizer)
#define COUNTING 0
#endif
#endif
#ifndef COUNTING
#define COUNTING 1
#endif

static size_t n_allocs;

#if COUNTING
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t k, size_t n);
void *__libc_realloc(void *p, size_t n);
void *__libc_memalign(size_t align, size_t n);
void *malloc(size_t n) {
    n_allocs++;
    return __libc_malloc(n);
}
void *calloc(size_t k, size_t n) {
    n_allocs++;
    return __libc_calloc(k, n);
}
void *realloc(void *p, size_t n) {
    n_allocs++;
    return __libc_realloc(p, n);
}
void *aligned_alloc(size_t align, size_t n) {
    n_allocs++;
    return __libc_memalign(align, n);
}
#endif

int main(void) {
    if (!COUNTING) {
        printf("1..0 # SKIP under a sanitizer (it replaces the allocator)\n");
        return 0;
    }
    tm_spec sp = {
        .n_in = 40, .n_layers = 3, .n = {64, 33, 20}, .readout = 5, .vary = 1, .seed = 61};
    spk_model *m = tm_load(&sp);
    size_t before = n_allocs;
    spk_scratch *sc = spk_scratch_create(m);
    ok(n_allocs >= before + 2, "the engine's own allocations are counted (scratch: %zu)",
       n_allocs - before);
    enum { N = 8, T = 50 };
    spk_state *st[N];
    spk_input in[N];
    spk_output out[N];
    spk_event *ev[N];
    spk_spike_buf layers[N][3];
    uint64_t nz[N][3];
    float *ro[N], *dense = calloc((size_t)T * 40, sizeof(float));
    for (size_t k = 0; k < (size_t)T * 40; k += 5)
        dense[k] = 0.7f;
    for (int k = 0; k < N; k++) {
        size_t n;
        ev[k] = tm_events(T, 40, 0.2f, k % 2, 70 + (uint64_t)k, &n);
        st[k] = spk_state_create(m);
        in[k] = (spk_input){T, ev[k], n, k % 3 == 0 ? dense : NULL};
        for (int l = 0; l < 3; l++)
            layers[k][l] = (spk_spike_buf){calloc(64 * T, sizeof(spk_spike)), 64 * T, 0};
        ro[k] = calloc((size_t)T * 5, sizeof(float));
        memset(nz[k], 0, sizeof nz[k]);
        out[k] = (spk_output){
            {calloc(20 * T, sizeof(spk_spike)), 20 * T, 0}, layers[k], ro[k], 1, nz[k]};
    }
    const char *kernels[] = {"scalar", "auto"};
    char err[256];
    for (int kk = 0; kk < 2; kk++) {
        spk_set_kernels(kernels[kk]);
        before = n_allocs;
        int rc = 0;
        for (int k = 0; k < N; k++)
            rc |= spk_step(st[k], &in[k], &out[k], sc, err, sizeof err);
        size_t one = n_allocs - before;
        before = n_allocs;
        int rcs[N];
        rc |= spk_step_many(st, in, out, N, sc, rcs, err, sizeof err);
        size_t many = n_allocs - before;
        ok(rc == 0 && nz[0][0] > 100, "%s: stepped (%llu outputs in layer 0)", kernels[kk],
           (unsigned long long)nz[0][0]);
        is_int(one, 0, "  spk_step: no allocation");
        is_int(many, 0, "  spk_step_many: no allocation");
        for (int k = 0; k < N; k++) {
            out[k].spikes.len = 0;
            for (int l = 0; l < 3; l++)
                layers[k][l].len = 0;
        }
    }
    for (int k = 0; k < N; k++) {
        for (int l = 0; l < 3; l++)
            free(layers[k][l].buf);
        free(out[k].spikes.buf), free(ro[k]), free(ev[k]);
        spk_state_free(st[k]);
    }
    free(dense);
    spk_scratch_free(sc);
    spk_model_free(m);
    return done_testing();
}
