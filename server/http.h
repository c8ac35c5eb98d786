/* http.h: the libmicrohttpd side. One ss_req per HTTP request carries the route, the
 * negotiated formats, the body (bounded by --max-body-bytes while it arrives) and the job
 * the request waits for. Handlers (api.c, stream.c) either answer at once with
 * ss_http_send() or hand a job to the session's worker with ss_http_submit(), which
 * suspends the connection until the worker is done.
 *
 * Thread-safety: a ss_req is used by the HTTP thread of its connection, and by a worker
 * only through its job's done callback (which just resumes the connection).
 */
#ifndef SS_HTTP_H
#define SS_HTTP_H

#include <microhttpd.h>

#include "app.h"
#include "exec.h"
#include "metrics.h"
#include "wire.h"

struct ss_stream;

typedef struct ss_req {
    ss_app *app;
    struct MHD_Connection *conn;
    ss_route route;
    char method[8];
    char path[192];
    char model[SPK_MAX_NAME + 1]; /* {model} of the path */
    char sid[SS_ID_MAX + 1];      /* {id} of the path */
    uint64_t owner;               /* API key hash (0 without keys) */
    int64_t t0_us;
    unsigned status;
    int in_pb, out_pb;
    uint8_t *body;
    size_t len, cap;
    int too_big;
    ss_job *job; /* waiting for it while suspended */
    struct ss_stream *stream;
} ss_req;

int ss_http_start(ss_app *a, char *err, size_t errlen);

/* Queue r's answer; takes the reply's body. Returns MHD_YES/MHD_NO for the handler. */
enum MHD_Result ss_http_send(ss_req *r, ss_reply *rep);
enum MHD_Result ss_http_error(ss_req *r, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Suspend r and queue j on worker w; the answer is sent when the worker is done. On a full
 * queue (429) or a closed pool (503) the answer is sent now. Takes j. */
enum MHD_Result ss_http_submit(ss_req *r, ss_job *j, uint32_t w);

/* Route handlers (api.c); called once the whole body is in. */
enum MHD_Result ss_api_dispatch(ss_req *r);
/* /stream (stream.c): start at the headers, each piece of body, the end of the body. */
int ss_stream_begin(ss_req *r);
enum MHD_Result ss_stream_data(ss_req *r, const char *data, size_t *size);
enum MHD_Result ss_stream_end(ss_req *r);
void ss_stream_free(struct ss_stream *s);

#endif
