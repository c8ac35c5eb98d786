/* routes.h: the HTTP route table, the one list of what the server answers. Each row says
 * the method and path pattern, its label (metrics and the access log), the handler, how
 * the body arrives, the formats it takes and gives, and whether it needs an API key. The
 * HTTP front end (http.c) walks it; /metrics reads its labels. A new route is one row here
 * and one function.
 * Thread-safety: constant data. */
#ifndef SS_ROUTES_H
#define SS_ROUTES_H

#include <stddef.h>

#include "ops.h"

struct ss_req;

typedef enum {
    SS_BODY_NONE,     /* no body is read */
    SS_BODY_BUFFERED, /* the whole body, bounded by --max-body-bytes, before the handler */
    SS_BODY_STREAMED, /* handed to the handler piece by piece as it arrives */
} ss_body_mode;

/* Formats. In: what a Content-Type may say (none: JSON, or protobuf for SS_FMT_BYTES).
 * Out: what Accept may choose. */
enum {
    SS_FMT_JSON = 1u << 0,   /* application/json */
    SS_FMT_PB = 1u << 1,     /* application/x-protobuf (and application/protobuf) */
    SS_FMT_NDJSON = 1u << 2, /* in: application/x-ndjson, application/jsonl, text/plain */
    SS_FMT_BYTES = 1u << 3,  /* protobuf only: octet-stream too, and the default */
    SS_FMT_ANY = 1u << 5,    /* out: the handler picks (a page); Accept is not checked */
    SS_FMT_TEXT = 1u << 4,   /* out: text/plain, text/event-stream and text/(any) too */
};

enum {
    SS_AUTH_KEY = 0,     /* an API key when --api-keys is set */
    SS_AUTH_OPEN = 1,    /* never (health probes) */
    SS_AUTH_METRICS = 2, /* only with --metrics-auth */
};

enum {
    SS_RF_SLASH = 1u << 0,    /* a trailing slash matches too */
    SS_RF_DRAINING = 1u << 1, /* answered while draining (health, metrics) */
};

typedef struct ss_route_def {
    const char *method;            /* GET (HEAD matches it too), POST, PUT, DELETE */
    const char *pattern;           /* "/v1/sessions/{id}/steps": {model} captures a segment into the
                                      operation's model, any other {name} into its sid */
    ss_op_fn op;                   /* a transport-neutral operation (ops.h), or */
    int (*http)(struct ss_req *r); /* an HTTP-only handler (event streams, uploads) */
    ss_body_mode body;
    unsigned in, out; /* SS_FMT_* */
    int auth;         /* SS_AUTH_* */
    unsigned flags;   /* SS_RF_* */
    /* A protocol with its own body rules (OIP): this codec reads and writes every body and
     * renders every error of the row, whatever Content-Type and Accept say (neither is
     * checked). NULL: negotiated from `in` and `out`. */
    const struct ss_codec *codec;
} ss_route_def;

extern const ss_route_def ss_routes[];
extern const size_t ss_route_count; /* rows; the index ss_route_count means "no route" */

/* Match method and path: the row index, with {model} and {id} copied into model and sid
 * (empty when absent). -404 when no pattern matches the path, -405 when one does but not
 * the method (allow gets the methods that would, "GET, PUT"). */
int ss_route_match(const char *method, const char *path, char *model, size_t model_cap, char *sid,
                   size_t sid_cap, char *allow, size_t allow_cap);

/* The codec of the rows that share path's first segment ("/v2/..."), so that a protocol's
 * 404 and 405 are rendered its way; NULL when those rows negotiate. */
const struct ss_codec *ss_route_codec(const char *path);

#endif
