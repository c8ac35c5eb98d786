/* h2.h: the gRPC transport. Cleartext HTTP/2 with prior knowledge (h2c) on its own port,
 * libnghttp2 as the HTTP/2 engine, gRPC's message framing (1 byte compressed flag, 4 bytes
 * big-endian length), grpc-timeout deadlines, grpc-encoding identity/gzip requests, and
 * grpc-status/grpc-message trailers. It knows nothing about the service: a call is a path,
 * some headers and a sequence of request messages; the service answers with messages and a
 * status through the functions below.
 *
 * Threads. One event-loop thread owns the listener, every connection and every nghttp2
 * session. The callbacks in ss_h2_params run on it (on_free excepted) and must not block
 * (hand work to a worker) nor call ss_h2_stop_accepting/drain/free. ss_h2_send,
 * ss_h2_finish, ss_h2_resume and the accessors may be called from any thread, callbacks
 * included, by a holder of a reference; they queue and wake the loop (an eventfd).
 *
 * Calls. One RPC is one HTTP/2 stream and one ss_h2_call, reference counted. The transport
 * holds a reference while the stream lives; a service that keeps a call past a callback
 * (in a worker's queue) takes its own with ss_h2_call_ref and drops it with
 * ss_h2_call_unref. For every call whose on_call returned 0, on_end runs exactly once, on
 * the loop thread, after which ss_h2_send and ss_h2_finish answer SS_H2_ECLOSED. A call
 * that on_call refused (or that the transport refused before asking: bad content-type,
 * unknown grpc-encoding, malformed grpc-timeout, too many calls) never sees on_end.
 *
 * Bounds. Request messages over max_message_bytes (after gzip) end the call with
 * RESOURCE_EXHAUSTED without being allocated. Response bytes a call may queue:
 * max_call_buffer_bytes (ss_h2_send answers SS_H2_EFULL past it); while a call is over it,
 * its further request messages wait and its HTTP/2 receive window is not credited, so the
 * client's sends block. The same holds for a connection at max_conn_buffer_bytes (request
 * bytes received but not yet delivered plus response bytes queued, over all its calls).
 * A call whose queued response bytes make no progress for stall_timeout_s (a client whose
 * window never opens) is reset and ended with RESOURCE_EXHAUSTED.
 *
 * Shutdown order: ss_h2_stop_accepting (listener closed, GOAWAY to every connection: calls
 * already started go on), ss_h2_drain (wait for them, then close every connection: calls
 * left get on_end 14 UNAVAILABLE), ss_h2_free.
 */
#ifndef SS_H2_H
#define SS_H2_H

#include <stddef.h>
#include <stdint.h>

#define SS_H2_EFULL (-2)   /* ss_h2_send: the call's (or its connection's) buffer is full */
#define SS_H2_ECLOSED (-3) /* the call is over (or already finished) */

typedef struct ss_h2 ss_h2;           /* the listener, its event-loop thread, its connections */
typedef struct ss_h2_call ss_h2_call; /* one RPC = one HTTP/2 stream; reference counted */

typedef struct {
    const char *bind;               /* NULL: 127.0.0.1 */
    uint16_t port;                  /* 0: any free port; ss_h2_port() tells */
    uint32_t max_connections;       /* 0: 256; more are accepted and closed at once */
    uint32_t max_streams_per_conn;  /* SETTINGS_MAX_CONCURRENT_STREAMS; 0: 100 */
    uint64_t max_message_bytes;     /* per request message, after decompression; 0: 4 MiB */
    uint64_t max_call_buffer_bytes; /* response bytes queued per call; 0: 1 MiB */
    uint64_t max_conn_buffer_bytes; /* per connection, in + out; 0: max(16 MiB, 2 messages) */
    uint32_t idle_timeout_s;        /* a connection with no open stream closes; 0: 300 */
    uint32_t stall_timeout_s;       /* queued response bytes making no progress; 0: 60 */
    uint32_t max_resets_per_10s;    /* client RST_STREAMs and empty DATA frames per
                                     * connection in 10 s, then GOAWAY; 0: 200 */
    void *ctx;                      /* passed to the callbacks */
    /* loop thread: a call's request headers are in. Return 0 to accept, or a grpc status
     * code (e.g. 12 UNIMPLEMENTED) with a NUL-terminated message written into msg (msglen
     * bytes) to end it at once with a trailers-only response. */
    int (*on_call)(void *ctx, ss_h2_call *c, char *msg, size_t msglen);
    /* loop thread: one whole request message (decompressed; valid during the call). Return
     * 0 to go on, 1 to pause delivery of this call's further messages until ss_h2_resume. */
    int (*on_message)(void *ctx, ss_h2_call *c, const uint8_t *msg, size_t len);
    /* loop thread: the client sent END_STREAM after its last message (may be NULL) */
    void (*on_half_close)(void *ctx, ss_h2_call *c);
    /* loop thread, exactly once per accepted call: it is over. reason: 0 the service
     * finished it and the trailers went out; else a grpc status: 1 CANCELLED (client
     * RST_STREAM), 4 DEADLINE_EXCEEDED (grpc-timeout passed; the client got status 4),
     * 8 RESOURCE_EXHAUSTED (request message over the limit, or a stalled reader),
     * 13 INTERNAL (bad request framing), 14 UNAVAILABLE (connection lost or closed). */
    void (*on_end)(void *ctx, ss_h2_call *c, int reason);
    /* loop thread (may be NULL): a send on this call met SS_H2_EFULL and its queue has since
     * drained to half its bound: a streaming producer may send again. */
    void (*on_writable)(void *ctx, ss_h2_call *c);
    /* any thread (whoever drops the last reference; may be NULL): the call is being freed,
     * free what ss_h2_set_call_data holds. Runs for refused calls too (data NULL then). */
    void (*on_free)(void *ctx, ss_h2_call *c);
} ss_h2_params;

/* Bind, listen and start the loop thread. 0, or -1 with a message in err. */
int ss_h2_start(ss_h2 **out, const ss_h2_params *p, char *err, size_t errlen);
uint16_t ss_h2_port(const ss_h2 *h);
/* Any thread but the loop's. Close the listener and send GOAWAY to every connection (new
 * streams are refused, those started go on). Returns once done. */
void ss_h2_stop_accepting(ss_h2 *h);
/* Any thread but the loop's. Wait until every connection has finished its calls and
 * closed after the GOAWAY (or timeout_ms passed), then close those left; their calls end
 * with 14. Calls ss_h2_stop_accepting first if it was not. */
void ss_h2_drain(ss_h2 *h, uint32_t timeout_ms);
/* Stop (as ss_h2_drain(h, 0)), join the thread, free. NULL is a no-op. Calls the service
 * still holds stay valid (ended) until it unrefs them. */
void ss_h2_free(ss_h2 *h);

/* Counters for /metrics (any thread; relaxed reads). */
typedef struct {
    uint64_t connections_open, calls_open; /* now */
    uint64_t connections_total, calls_total, calls_refused, conn_errors;
} ss_h2_stats;
void ss_h2_get_stats(const ss_h2 *h, ss_h2_stats *out);

/* Call accessors (any thread while the caller holds a reference). */
const char *ss_h2_path(const ss_h2_call *c); /* ":path", e.g. "/spikeserve.v1.Spikeserve/Step" */
/* A request header by lowercase name (the first if repeated; pseudo-headers too, e.g.
 * ":authority"); NULL if absent. Valid from on_call on. */
const char *ss_h2_header(const ss_h2_call *c, const char *lowercase_name);
int64_t ss_h2_deadline_us(const ss_h2_call *c); /* CLOCK_MONOTONIC microseconds, 0 none */
void ss_h2_call_ref(ss_h2_call *c);
void ss_h2_call_unref(ss_h2_call *c);
void *ss_h2_call_data(ss_h2_call *c); /* the service's per-call pointer (NULL at first) */
void ss_h2_set_call_data(ss_h2_call *c, void *d);
/* Bytes of response messages queued and not yet handed to HTTP/2 (tests, metrics). */
uint64_t ss_h2_call_buffered(ss_h2_call *c);

/* Any thread: queue one response message (copied, framed uncompressed). 0, SS_H2_EFULL
 * when the call's queued bytes are over max_call_buffer_bytes or its connection's over
 * max_conn_buffer_bytes (not queued: a streaming producer waits for on_writable, or treats
 * it as a slow consumer; a message is always accepted into an empty call buffer; while a
 * call is full its request messages are held back), SS_H2_ECLOSED when the call is over or
 * finished, -1 out of memory. */
int ss_h2_send(ss_h2_call *c, const uint8_t *msg, size_t len);
/* Any thread: end the call after the queued messages with trailers grpc-status (0 OK) and
 * grpc-message (message may be NULL; percent-encoded here). Once: then SS_H2_ECLOSED. */
int ss_h2_finish(ss_h2_call *c, int status, const char *message);
/* Any thread: undo a pause asked by on_message. */
void ss_h2_resume(ss_h2_call *c);

/* Helpers, exposed for the tests: grpc-timeout value to microseconds (-1 malformed), and
 * grpc-message percent-encoding into out (always NUL-terminated; truncates). */
int64_t ss_h2_parse_timeout(const char *v);
void ss_h2_pct_encode(const char *msg, char *out, size_t outlen);

/* A server-side connection without a socket or thread, for the fuzzer: bytes fed in go
 * through the same nghttp2 session, gRPC framing and callbacks (run on the feeding thread,
 * which plays the loop thread); what the server would write is counted and dropped.
 * feed returns 0, or -1 once the connection would be closed. */
typedef struct ss_h2_mem ss_h2_mem;
ss_h2_mem *ss_h2_mem_new(const ss_h2_params *p);
int ss_h2_mem_feed(ss_h2_mem *m, const uint8_t *data, size_t len);
uint64_t ss_h2_mem_output_bytes(const ss_h2_mem *m);
void ss_h2_mem_free(ss_h2_mem *m);

#endif
