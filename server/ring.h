/* ring.h: the consistent-hash ring that says which replica owns a session.
 *
 * The rule is the load balancer's own, reproduced exactly (nginx's `hash $key consistent`,
 * ketama-style points from CRC32 of each server's "host\0port" name): a replica knows which
 * sessions are its own by the rule the balancer routes with, so through the balancer a request
 * lands on its owner. Peers are named exactly as the balancer's upstream block names them
 * ("host:port"). Where a balancer hashes otherwise (HAProxy, ingress-nginx), replicas still
 * agree among themselves on this ring and forward what reaches the wrong one.
 *
 * A ring is immutable once built: to change the peers, build a new one and swap it. All
 * functions are thread-safe on a built ring. */
#ifndef SS_RING_H
#define SS_RING_H

#include <stddef.h>

typedef struct ss_ring ss_ring;

/* Builds the ring of n >= 1 peers, each "host:port" (at most 255 bytes, no duplicates).
 * 0, or -1 with a message naming the bad peer in err. */
int ss_ring_new(ss_ring **out, const char *const *peers, size_t n, char *err, size_t errlen);
void ss_ring_free(ss_ring *r); /* NULL is a no-op */

size_t ss_ring_size(const ss_ring *r);
const char *ss_ring_peer(const ss_ring *r, size_t i); /* the i-th peer as given */
/* Index of the peer given as name, or -1. */
long ss_ring_find(const ss_ring *r, const char *name);
/* Index of the peer that owns key (a session id, or an OIP sequence id): the one the
 * balancer sends key to. */
size_t ss_ring_owner(const ss_ring *r, const char *key, size_t len);

#endif
