/* reply.h: a finished answer to one request, whatever the front end: a status, a body (or an
 * error kept as data: its kind, code and message), and the few headers HTTP needs. Errors
 * are rendered into a body only by the front end that sends them (HTTP with the request's
 * codec, gRPC as grpc-status and grpc-message), so a worker never needs to know the format.
 * Thread-safety: a reply belongs to one request; reentrant functions. */
#ifndef SS_REPLY_H
#define SS_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define SS_CT_JSON "application/json"
#define SS_CT_PB "application/x-protobuf"

struct ss_codec;

typedef struct {
    unsigned status;  /* HTTP status (an error's comes from err.h's table) */
    int err;          /* SS_OK, or the ss_err: code and msg say what, body is rendered later */
    const char *code; /* the error code string */
    char msg[512];    /* the error message: what was wrong and where */
    uint8_t *body;    /* malloc'd, owned by the reply */
    size_t len;
    const char *ctype;
    char allow[48];       /* Allow header (405) */
    unsigned retry_after; /* Retry-After seconds (429/503), 0: none */
    char location[128];   /* Location header (201) */
    const char *hname;    /* one more header a protocol needs (OIP's
                             Inference-Header-Content-Length), or NULL */
    char hvalue[24];
} ss_reply;

void ss_reply_clear(ss_reply *r); /* frees the body, zeroes the reply */
/* Take ownership of body (NULL: empty). */
void ss_reply_set(ss_reply *r, unsigned status, const char *ctype, void *body, size_t len);
/* Make r the error err (an ss_err) with a printf message; status, code and Retry-After come
 * from err.h's table. Frees a body r held. */
void ss_reply_fail(ss_reply *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Encode an error reply's body with codec c (a no-op for other replies). 0, or -1 when out
 * of memory (the body stays empty). */
int ss_reply_render(ss_reply *r, const struct ss_codec *c);

#endif
