/* forward.h: HTTP calls to another replica (issue 15): requests forwarded to a session's
 * owner, and the snapshot PUTs of moves (cluster.h).
 *
 * A call is one request and its bounded answer (status, body up to max_bytes, the few
 * headers a front end passes back). ss_fwd_submit() runs it on the forwarder's own thread
 * (one libcurl multi handle, connections to each peer kept alive and reused), so an HTTP
 * thread only hands it over and suspends its connection; done(call) then runs on the
 * forwarder's thread. ss_fwd_run() runs one call on the caller's thread (moves).
 *
 * Every call has a connect timeout (1 s) and a total timeout; an answer larger than
 * max_bytes is cut and reported as a failure.
 * Thread-safety: submit and free from any thread; a call belongs to its submitter until
 * done. */
#ifndef SS_FORWARD_H
#define SS_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "peers.h"

typedef struct ss_fwd ss_fwd;

typedef struct ss_fwd_call {
    /* in */
    char url[512];  /* http://host:port/path */
    char method[8]; /* GET, POST, PUT, DELETE */
    struct curl_slist *headers;
    const uint8_t *body; /* borrowed until done */
    size_t len;
    long timeout_ms;
    size_t max_bytes; /* of the answer's body */
    /* out: status 0 when no answer came (err says why) */
    long status;
    uint8_t *resp; /* malloc'd, owned by the call */
    size_t resp_len, resp_cap;
    char ctype[128], retry_after[16], location[128], allow[48], owner[SS_PEER_MAX + 1];
    char err[256];
    void (*done)(struct ss_fwd_call *c);
    void *ctx;
    /* A relayed event stream (ss_fwd_submit only): when the answer is 200, done(c) runs as
     * soon as its headers are in (streaming = 1) and its body then goes to relay as it
     * arrives, until the owner ends it, the client leaves or the forwarder stops; the call
     * is then shared (refs 2: see ss_fwd_call_release). Bounded by a low-speed limit (no
     * byte for timeout_ms) instead of a total time. */
    struct ss_sse *relay;
    int streaming;
    int relay_given; /* a response took the relay's second reference (ss_sse_response) */
    int refs; /* atomic: holders of a calloc'd call; the last ss_fwd_call_release frees it */
    /* the forwarder's */
    void *easy;
    struct ss_fwd_call *next, *prev; /* queued, then running */
} ss_fwd_call;

/* Start the forwarder thread. 0 or -1 with err. */
int ss_fwd_create(ss_fwd **out, char *err, size_t errlen);
/* Stop the thread: calls not finished are answered (status 0, "shutting down"), later ones
 * at once. NULL: no-op. */
void ss_fwd_stop(ss_fwd *f);
void ss_fwd_free(ss_fwd *f); /* stops it first; NULL is a no-op */

/* Add "name: value" to c's request. 0 or -1 (out of memory). */
int ss_fwd_header(ss_fwd_call *c, const char *name, const char *value);
/* Run c on the forwarder thread; c->done(c) is called there (or at once, on the caller's
 * thread, when the forwarder is stopping or out of memory: status 0). */
void ss_fwd_submit(ss_fwd *f, ss_fwd_call *c);
/* Run c now on this thread (blocking). */
void ss_fwd_run(ss_fwd_call *c);
/* Free what c holds (headers, answer) and zero it. */
void ss_fwd_call_clear(ss_fwd_call *c);
/* Drop one reference of a calloc'd call (refs set by its submitter: 1, or 2 with a relay, one
 * of them the forwarder's); the last one clears it, drops its relay and frees it. */
void ss_fwd_call_release(ss_fwd_call *c);

#endif
