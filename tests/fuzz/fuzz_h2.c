/* fuzz_h2.c: libFuzzer harness for the gRPC transport (server/h2.c): arbitrary bytes into a
 * server-side connection over memory (ss_h2_mem_*): nghttp2's frame and HPACK decoding,
 * the request checks, gRPC message framing, gzip, pauses and resumes, deadlines, the
 * transport's bounds, and a small service answering from the callbacks.
 * The first byte steers: bit 0 prepends a valid client preface and SETTINGS (so the rest is
 * frames), bits 1-3 pick the size of the pieces the input is fed in (4 << k bytes).
 * Checked: on_end exactly once per accepted call, and every call freed at the end (leaks
 * are LeakSanitizer findings). Seeds: tests/h2/make_fuzz_seeds.py. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h2.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "check failed: %s (%s:%d)\n", #c, __FILE__, __LINE__);                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct {
    int kind, ended, msgs;
} fcall;

static int n_accepted, n_ended, n_freed;

static int on_call(void *ctx, ss_h2_call *c, char *msg, size_t msglen) {
    (void)ctx;
    const char *p = ss_h2_path(c);
    int kind = !strcmp(p, "/f.S/U") ? 1 : !strcmp(p, "/f.S/P") ? 2 : !strcmp(p, "/f.S/S") ? 3 : 0;
    if (!kind) {
        snprintf(msg, msglen, "no method %s", p);
        return 12;
    }
    (void)ss_h2_header(c, "grpc-encoding");
    (void)ss_h2_deadline_us(c);
    fcall *f = calloc(1, sizeof *f);
    CHECK(f);
    f->kind = kind;
    ss_h2_set_call_data(c, f);
    n_accepted++;
    return 0;
}

static int on_message(void *ctx, ss_h2_call *c, const uint8_t *m, size_t len) {
    (void)ctx;
    fcall *f = ss_h2_call_data(c);
    CHECK(f && !f->ended);
    f->msgs++;
    switch (f->kind) {
    case 1:
        ss_h2_send(c, m, len);
        return 0;
    case 2:
        ss_h2_send(c, m, len);
        ss_h2_resume(c); /* taken up by the transport after this input */
        return 1;
    default:
        for (int i = 0; i < 3; i++)
            ss_h2_send(c, m, len < 200 ? len : 200);
        return 0;
    }
}

static void on_half_close(void *ctx, ss_h2_call *c) {
    (void)ctx;
    fcall *f = ss_h2_call_data(c);
    CHECK(f && !f->ended);
    ss_h2_finish(c, f->msgs % 3 ? 0 : 5, f->msgs % 3 ? NULL : "not found \x01%");
}

static void on_end(void *ctx, ss_h2_call *c, int reason) {
    (void)ctx;
    (void)reason;
    fcall *f = ss_h2_call_data(c);
    CHECK(f && !f->ended);
    f->ended = 1;
    n_ended++;
    CHECK(ss_h2_send(c, (const uint8_t *)"x", 1) == SS_H2_ECLOSED);
}

static void on_free(void *ctx, ss_h2_call *c) {
    (void)ctx;
    fcall *f = ss_h2_call_data(c);
    if (!f) return;
    CHECK(f->ended);
    n_freed++;
    free(f);
}

static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                                 "\x00\x00\x00\x04\x00\x00\x00\x00\x00";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    ss_h2_params p = {.max_streams_per_conn = 8,
                      .max_message_bytes = 1024,
                      .max_call_buffer_bytes = 256,
                      .max_conn_buffer_bytes = 4096,
                      .max_resets_per_10s = 20,
                      .on_call = on_call,
                      .on_message = on_message,
                      .on_half_close = on_half_close,
                      .on_end = on_end,
                      .on_free = on_free};
    n_accepted = n_ended = n_freed = 0;
    ss_h2_mem *m = ss_h2_mem_new(&p);
    CHECK(m);
    int live = 1;
    if (data[0] & 1) live = ss_h2_mem_feed(m, preface, sizeof preface - 1) == 0;
    size_t piece = (size_t)4 << ((data[0] >> 1) & 7);
    for (size_t off = 1; live && off < size; off += piece) {
        size_t n = size - off < piece ? size - off : piece;
        live = ss_h2_mem_feed(m, data + off, n) == 0;
    }
    if (!live) CHECK(ss_h2_mem_feed(m, data, 1) == -1); /* a closed connection stays closed */
    (void)ss_h2_mem_output_bytes(m);
    ss_h2_mem_free(m);
    CHECK(n_ended == n_accepted);
    CHECK(n_freed == n_accepted);
    return 0;
}
