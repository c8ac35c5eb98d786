/* peers.h: this replica's view of the ring (issue 15, SPEC.md section 6): the --peers file,
 * which peer this replica is (--self), and the rings that say who owns a session.
 *
 * The file has one peer per line, "host:port" exactly as the load balancer's upstream block
 * names the servers; '#' starts a comment; blank lines are skipped. --self must be one of
 * them. ss_peers_reload() re-reads the file (SIGHUP): a bad file is refused with a message
 * naming the line and the problem, and the ring in use stays.
 *
 * Besides the current ring, a peers object keeps the one before it for a transition window
 * after each change (at start: the ring without this replica, the ring the others had before
 * it joined). While the window lasts, a session this replica owns but does not hold may still
 * be on its previous owner, moving here: the front end asks the previous owner instead of
 * answering 404 (cluster.h).
 *
 * Thread-safety: every function is thread-safe (a read-write lock guards the swap); names
 * are copied into the caller's buffer, so nothing refers into a ring that a reload frees. */
#ifndef SS_PEERS_H
#define SS_PEERS_H

#include <stddef.h>
#include <stdint.h>

#define SS_PEER_MAX 255   /* bytes of one "host:port" */
#define SS_PEERS_MAX 4096 /* peers in one file */

typedef struct ss_peers ss_peers;

/* Read path; self must be listed. window_ms: how long the previous ring is remembered after
 * a change. 0 or -1 with err ("peers FILE line N: ..."). */
int ss_peers_create(ss_peers **out, const char *path, const char *self, int64_t window_ms,
                    char *err, size_t errlen);
void ss_peers_free(ss_peers *p); /* NULL is a no-op */

/* Re-read the file: 1 swapped in (the previous ring starts its window), 0 the same peers
 * (nothing changes), -1 refused with err (the current ring stays). */
int ss_peers_reload(ss_peers *p, char *err, size_t errlen);

const char *ss_peers_self(const ss_peers *p); /* fixed for the object's life */
size_t ss_peers_count(ss_peers *p);           /* peers in the current ring */
uint64_t ss_peers_generation(ss_peers *p);    /* +1 at every swap */

/* 1 when this replica owns key in the current ring; 0 with the owner's name in owner. */
int ss_peers_owns(ss_peers *p, const char *key, size_t len, char *owner, size_t cap);
/* Within the transition window: 1 with the previous owner of key in owner when it was another
 * peer; 0 otherwise (no window, or this replica owned it then too). */
int ss_peers_prev_owner(ss_peers *p, const char *key, size_t len, char *owner, size_t cap);
/* The owner of key in the current ring without this replica (where a drain hands a session
 * to): 1 with its name, 0 when this replica is the only peer. */
int ss_peers_heir(ss_peers *p, const char *key, size_t len, char *owner, size_t cap);

/* Parse a peers file into names (malloc'd array of malloc'd strings; free with
 * ss_peers_names_free). self (may be NULL) must be among them. 0 or -1 with err. */
int ss_peers_read(const char *path, const char *self, char ***names, size_t *n, char *err,
                  size_t errlen);
void ss_peers_names_free(char **names, size_t n);

#endif
