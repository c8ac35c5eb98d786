/* sse.h: one Server-Sent Events subscriber (GET /v1/sessions/{id}/events).
 *
 * A subscriber is a bounded byte buffer between the worker that publishes events and the
 * libmicrohttpd connection that reads them. When the buffer is empty the connection is
 * suspended; a push resumes it. A subscriber whose unread bytes would grow past its
 * capacity is dropped: it gets an `end` event (reason "slow_consumer") and its stream
 * closes. (One event larger than the capacity still goes to a subscriber with nothing
 * unread, so memory stays below capacity + the largest event.)
 *
 * Ownership: reference counted (the session's list and the HTTP response each hold one).
 * Thread-safety: every function may be called from any thread.
 */
#ifndef SS_SSE_H
#define SS_SSE_H

#include <stddef.h>
#include <stdint.h>

struct MHD_Connection;
struct MHD_Response;
typedef struct ss_sse ss_sse;

/* New subscriber with two references, its buffer primed with a comment. */
ss_sse *ss_sse_create(size_t cap);

/* A subscriber that is not an HTTP event stream (a gRPC Events call): its events go to the
 * sink in protobuf (ss_sse_event_pb), under the subscriber's lock, so one at a time. event
 * returns 0, or -1 when its consumer is too slow: the subscriber is then dropped and end()
 * gets "slow_consumer". end() runs once with the reason; release() when the subscriber is
 * freed. Two references, like ss_sse_create. */
typedef struct {
    int (*event)(void *arg, const char *name, const uint8_t *pb, size_t len);
    void (*end)(void *arg, const char *reason);
    void (*release)(void *arg);
    void *arg;
} ss_sse_sink;
ss_sse *ss_sse_create_sink(const ss_sse_sink *sink);
/* 1 for a sink (events in protobuf), 0 for an event stream (JSON). */
int ss_sse_wants_pb(ss_sse *s);
/* A sink's event: 0, or -1 when it is closed (ended before, or dropped now). */
int ss_sse_event_pb(ss_sse *s, const char *name, const uint8_t *pb, size_t len);
void ss_sse_unref(ss_sse *s);
/* A subscriber that relays another replica's event stream byte for byte (cluster.h): no
 * greeting of its own. Two references, like ss_sse_create. */
ss_sse *ss_sse_create_relay(size_t cap);
/* Append relayed bytes: 0, or -1 when the subscriber is closed (its client left, or it was
 * dropped now for reading too slowly). */
int ss_sse_relay(ss_sse *s, const char *data, size_t len);
/* Close a relayed stream once what is buffered is read (no `end` event of its own: the
 * relayed stream had its own). */
void ss_sse_close(ss_sse *s);
/* The chunked response that streams this subscriber to conn; it holds one reference. */
struct MHD_Response *ss_sse_response(ss_sse *s, struct MHD_Connection *conn);
/* Append an event ("event: NAME\ndata: DATA\n\n"; data must be one line). 0, or -1 when
 * the subscriber is closed (ended before, or dropped now for being too slow). */
int ss_sse_event(ss_sse *s, const char *name, const char *data, size_t len);
/* Append a comment line (keep-alive). */
int ss_sse_comment(ss_sse *s, const char *text);
/* Send `end` with {"reason": reason} and close the stream after it is read. */
void ss_sse_end(ss_sse *s, const char *reason);
int ss_sse_closed(ss_sse *s);
/* 1 once the subscriber was dropped for being slow (counted once by the caller). */
int ss_sse_dropped(ss_sse *s);

#endif
