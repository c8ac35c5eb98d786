/* http.h: the HTTP/1.1 front end (libmicrohttpd). One ss_req per request carries its route
 * (a row of routes.h), the operation it becomes (ops.h: the caller's key, the codecs that
 * content negotiation picked, the path's {model} and {id}, the body), and the job it waits
 * for. The front end routes, negotiates, authenticates, reads the body (bounded by
 * --max-body-bytes while it arrives), calls the operation and sends what it answers; when
 * the operation queued a job, the connection is suspended until the worker is done.
 *
 * Thread-safety: a ss_req is used by the HTTP thread of its connection, and by a worker
 * only through its job's done callback (which just resumes the connection).
 */
#ifndef SS_HTTP_H
#define SS_HTTP_H

#include <microhttpd.h>

#include "app.h"
#include "ops.h"
#include "routes.h"

struct ss_stream;

typedef struct ss_req {
    ss_app *app;
    struct MHD_Connection *conn;
    const ss_route_def *rt; /* NULL: no route */
    char method[8];
    char path[192];
    int64_t t0_us;
    unsigned status;
    ss_op op; /* the operation: key, codecs, {model}, {id}, body, answer */
    uint8_t *body;
    size_t len, cap;
    int too_big;
    ss_job *job; /* waiting for it while suspended */
    struct ss_stream *stream;
    /* cluster.h: SS_CL_FORWARD / SS_CL_PREV to peer (call in flight while suspended) */
    int fwd;
    int moved_in;   /* a move's PUT (X-Spikeserve-Move): counted when it succeeds */
    int route_body; /* an OIP infer: routed on its sequence_id once the body is read */
    char peer[256];
    char owner_hdr[256]; /* X-Spikeserve-Owner of a not_owner answer */
    struct ss_fwd_call *call;
    struct ss_fwd_call *relay_call; /* an event stream relayed from the owner */
} ss_req;

int ss_http_start(ss_app *a, char *err, size_t errlen);

/* Send r's answer: an error is rendered in the request's codec. Takes the reply's body.
 * Returns MHD_YES/MHD_NO for the handler. */
enum MHD_Result ss_http_send(ss_req *r, ss_reply *rep);
enum MHD_Result ss_http_fail(ss_req *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* HTTP-only handlers of the route table. */
int ss_http_events(ss_req *r); /* GET .../events: Server-Sent Events */
/* /stream (stream.c): begin at the headers (answers and returns non-zero when refused),
 * each piece of body, the end of the body. */
int ss_stream_begin(ss_req *r);
enum MHD_Result ss_stream_data(ss_req *r, const char *data, size_t *size);
enum MHD_Result ss_stream_end(ss_req *r);
void ss_stream_free(struct ss_stream *s);

#endif
