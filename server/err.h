/* err.h: what can go wrong, as one enum. Every server module returns 0 or one of these
 * (negative), and one table maps each to what a front end says: the HTTP status, the error
 * code string of the JSON body ({"error": {"code", "message"}}), the gRPC status, and
 * whether the client should retry (Retry-After). Front ends never map numbers themselves.
 * Thread-safety: constant data. */
#ifndef SS_ERR_H
#define SS_ERR_H

typedef enum {
    SS_OK = 0,
    SS_E_INVALID = -1,         /* 400 invalid_argument: a malformed body or a bad value */
    SS_E_LIMIT = -2,           /* 413 limit_exceeded: steps, events or outputs over a flag */
    SS_E_NOMEM = -3,           /* 503 unavailable: out of memory */
    SS_E_NOT_FOUND = -4,       /* 404 not_found: model, session or route */
    SS_E_CONFLICT = -5,        /* 409 conflict: a snapshot of another model */
    SS_E_SEQ = -6,             /* 409 seq_conflict: seq out of order */
    SS_E_FORBIDDEN = -7,       /* 403 permission_denied: another key's session */
    SS_E_UNAUTHENTICATED = -8, /* 401 unauthenticated: no key, or an unknown one */
    SS_E_METHOD = -9,          /* 405 method_not_allowed */
    SS_E_NOT_ACCEPTABLE = -10, /* 406 not_acceptable: nothing in Accept we can write */
    SS_E_MEDIA_TYPE = -11,     /* 415 unsupported_media_type */
    SS_E_BODY_TOO_LARGE = -12, /* 413 body_too_large: --max-body-bytes */
    SS_E_LINE_TOO_LARGE = -13, /* 413 line_too_large: one /stream line over the body limit */
    SS_E_QUEUE_FULL = -14,     /* 429 resource_exhausted: the worker's queue (retry) */
    SS_E_SUBSCRIBERS = -15,    /* 429 too_many_subscribers */
    SS_E_SESSIONS = -16,       /* 503 too_many_sessions: --max-sessions (retry) */
    SS_E_UNAVAILABLE = -17,    /* 503 unavailable: draining, disk, no randomness (retry) */
    SS_E_INTERNAL = -18,       /* 500 internal: our bug or an engine error */
    SS_E_EXISTS = -19,         /* 409 already_exists: an id that is taken */
    SS_E_NOT_OWNER = -20,      /* 503 not_owner: another replica owns the session, it is
                                  moving, or its owner is unreachable (retry; cluster.h) */
    SS_E_COUNT_ = 21
} ss_err;

typedef struct {
    unsigned http;        /* HTTP status */
    const char *code;     /* error code string */
    int grpc;             /* gRPC status code */
    unsigned retry_after; /* seconds for Retry-After, 0: none */
} ss_err_info;

/* The row of e (SS_E_INTERNAL's for a value outside the enum). */
const ss_err_info *ss_err_info_of(int e);

#endif
