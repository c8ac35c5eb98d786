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

struct MHD_Connection;
struct MHD_Response;
typedef struct ss_sse ss_sse;

/* New subscriber with two references, its buffer primed with a comment. */
ss_sse *ss_sse_create(size_t cap);
void ss_sse_unref(ss_sse *s);
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
