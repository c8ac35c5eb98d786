/* cluster.h: one replica among several (issue 15, SPEC.md section 6): which requests it
 * serves, which it forwards, and how sessions move when the ring changes.
 *
 * The routing key is the session id (the {id} of /v1/sessions/{id}...; for an OIP infer the
 * session name oip-{model}-... of its parameters.sequence_id, read from the body). For a
 * request on key k a replica
 *   1. holding k: serves it (a session moving away is refused: 503 not_owner, retry);
 *   2. not holding k, not its owner in the ring: forwards it to the owner, once: a forwarded
 *      request (X-Spikeserve-Forwarded-By) that reaches a non-owner is refused (503 not_owner
 *      with X-Spikeserve-Owner: the owner in this replica's ring; the rings disagree while a
 *      change rolls out);
 *   3. not holding k, its owner: within the transition window after a ring change, asks the
 *      previous owner (k may be moving here; X-Spikeserve-Lookup: previous, which that one
 *      never passes on: at most two hops in all); when that one answers that k is not there
 *      and is ours, or outside the window, serves it (404 for an unknown session). A lookup
 *      that reaches a replica in its own window is refused (503 not_owner, retry).
 * A forward that gets no answer (the owner is down) is 503 not_owner: never a session
 * recreated elsewhere. Event streams are relayed as they come (forward.h); uploads (/stream)
 * are refused at a non-owner (503 not_owner with X-Spikeserve-Owner).
 *
 * Opens mint ids until this replica owns one (N tries expected with N peers), so an open
 * that arrives anywhere lands on its owner without a forward.
 *
 * Moves: after a ring change (ss_cluster_reload, SIGHUP) every session held here whose owner
 * changed is marked moving, snapshotted by its worker (the GET .../state job: state, t,
 * last_seq and the stored answer), PUT to the new owner (X-Spikeserve-Move) and, only after a
 * 2xx, closed here. The drain (ss_cluster_handoff, SIGTERM) does the same for every session,
 * to its owner in the ring without this replica, within --handoff-timeout. And every
 * --rebalance-interval seconds a pass moves what is held here but owned elsewhere (after a
 * rolling restart the returning replica gets its sessions back; an owner that is down is
 * tried again at the next pass).
 *
 * Thread-safety: every function is thread-safe; reload and handoff run on the caller's
 * thread (main's), one at a time. */
#ifndef SS_CLUSTER_H
#define SS_CLUSTER_H

#include <stddef.h>

#include "app.h"
#include "forward.h"
#include "reply.h"

#define SS_HDR_FORWARDED "X-Spikeserve-Forwarded-By"
#define SS_HDR_MOVE "X-Spikeserve-Move"
#define SS_HDR_OWNER "X-Spikeserve-Owner"
#define SS_HDR_LOOKUP "X-Spikeserve-Lookup" /* "previous": a rule 3 question, never passed on */

typedef struct ss_cluster ss_cluster;

/* With --peers: read the ring, start the forwarder (a->cluster). Without: a->cluster = NULL,
 * 0. -1 with err. */
int ss_cluster_create(ss_app *a, char *err, size_t errlen);
void ss_cluster_free(ss_cluster *c); /* NULL is a no-op */

enum { SS_CL_LOCAL = 0, SS_CL_FORWARD = 1, SS_CL_PREV = 2, SS_CL_REFUSE = 3 };
/* How far a request has come: from a client, forwarded by a non-owner, or a lookup of an
 * owner on its previous owner (SS_HDR_FORWARDED; SS_HDR_LOOKUP). */
enum { SS_HOP_CLIENT = 0, SS_HOP_FORWARDED = 1, SS_HOP_LOOKUP = 2 };
/* Where a request on key goes (rules above; hop: SS_HOP_*).
 * SS_CL_FORWARD / SS_CL_PREV: peer gets the name to forward to (SS_CL_PREV: the previous
 * owner, whose "not here, yours" answer means serve it here). SS_CL_REFUSE: refusal is set. */
int ss_cluster_route(ss_app *a, const char *key, int hop, char *peer, size_t cap,
                     ss_reply *refusal);
/* 1 when an answer of a SS_CL_PREV forward says "not here, and yours": serve it here. */
int ss_cluster_prev_says_mine(ss_app *a, const ss_fwd_call *c);
/* 1 when this replica owns id (always 1 without --peers). */
int ss_cluster_owns(ss_app *a, const char *id);
/* A session the caller looked up in vain (ops.c): 1 with a not_owner refusal in r when
 * another replica owns id, so no front end answers 404 for a session that lives elsewhere. */
int ss_cluster_elsewhere(ss_app *a, const char *id, ss_reply *r);

/* The forwarder, for the front end's calls. */
ss_fwd *ss_cluster_fwd(ss_cluster *c);
const char *ss_cluster_self(ss_cluster *c);
/* Count one forwarded request (/metrics). */
void ss_cluster_count_forward(ss_app *a);

/* Start the rebalancer (after the workers and HTTP are up): every --rebalance-interval
 * seconds, sessions held here but owned by another replica are moved to it. */
void ss_cluster_start(ss_app *a);
/* SIGHUP: re-read --peers; on a change, move the sessions whose owner changed (blocking
 * until done). A bad file is logged (line and problem) and the ring stays. */
void ss_cluster_reload(ss_app *a);
/* SIGTERM: hand every session to its owner in the ring without this replica, within
 * --handoff-timeout. *moved and *left get the counts. */
void ss_cluster_handoff(ss_app *a, size_t *moved, size_t *left);

#endif
