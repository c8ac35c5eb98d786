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

#define SS_RING_MAX_NAME 255    /* bytes in one peer name */
#define SS_RING_MAX_PEERS 65536 /* peers in one ring (160 points each) */

typedef struct ss_ring ss_ring;

/* Builds the ring of 1 <= n <= SS_RING_MAX_PEERS peers, each "host:port" (1 to
 * SS_RING_MAX_NAME bytes, no spaces or control bytes, no duplicates), copied. For nginx to
 * agree even on the rare two points of equal value (a 32-bit collision), list the peers in
 * the order of the upstream block. 0, or -1 with a message naming the bad peer in err. */
int ss_ring_new(ss_ring **out, const char *const *peers, size_t n, char *err, size_t errlen);
void ss_ring_free(ss_ring *r); /* NULL is a no-op */

size_t ss_ring_size(const ss_ring *r);
const char *ss_ring_peer(const ss_ring *r, size_t i); /* the i-th peer as given, or NULL */
/* Index of the peer given as name, or -1. */
long ss_ring_find(const ss_ring *r, const char *name);
/* Index of the peer that owns key (a session id, or an OIP sequence id; len bytes, any
 * bytes): the one nginx's `hash $key consistent` sends key to while every peer is up. */
size_t ss_ring_owner(const ss_ring *r, const char *key, size_t len);

#endif
