/* err.c: the one table from error kinds to HTTP status, code string and gRPC status
 * (SPEC.md section 5: 400 INVALID_ARGUMENT, 401 UNAUTHENTICATED, 404 NOT_FOUND, 409 ABORTED
 * or FAILED_PRECONDITION, 413 RESOURCE_EXHAUSTED, 429 RESOURCE_EXHAUSTED, 503 UNAVAILABLE). */
#include "err.h"

/* gRPC status codes (grpc/status.h) */
enum {
    G_INVALID_ARGUMENT = 3,
    G_NOT_FOUND = 5,
    G_ALREADY_EXISTS = 6,
    G_PERMISSION_DENIED = 7,
    G_RESOURCE_EXHAUSTED = 8,
    G_FAILED_PRECONDITION = 9,
    G_ABORTED = 10,
    G_UNIMPLEMENTED = 12,
    G_INTERNAL = 13,
    G_UNAVAILABLE = 14,
    G_UNAUTHENTICATED = 16,
};

static const ss_err_info table[SS_E_COUNT_] = {
    [0] = {200, "ok", 0, 0},
    [-SS_E_INVALID] = {400, "invalid_argument", G_INVALID_ARGUMENT, 0},
    [-SS_E_LIMIT] = {413, "limit_exceeded", G_RESOURCE_EXHAUSTED, 0},
    [-SS_E_NOMEM] = {503, "unavailable", G_UNAVAILABLE, 1},
    [-SS_E_NOT_FOUND] = {404, "not_found", G_NOT_FOUND, 0},
    [-SS_E_CONFLICT] = {409, "conflict", G_FAILED_PRECONDITION, 0},
    [-SS_E_SEQ] = {409, "seq_conflict", G_ABORTED, 0},
    [-SS_E_FORBIDDEN] = {403, "permission_denied", G_PERMISSION_DENIED, 0},
    [-SS_E_UNAUTHENTICATED] = {401, "unauthenticated", G_UNAUTHENTICATED, 0},
    [-SS_E_METHOD] = {405, "method_not_allowed", G_UNIMPLEMENTED, 0},
    [-SS_E_NOT_ACCEPTABLE] = {406, "not_acceptable", G_INVALID_ARGUMENT, 0},
    [-SS_E_MEDIA_TYPE] = {415, "unsupported_media_type", G_INVALID_ARGUMENT, 0},
    [-SS_E_BODY_TOO_LARGE] = {413, "body_too_large", G_RESOURCE_EXHAUSTED, 0},
    [-SS_E_LINE_TOO_LARGE] = {413, "line_too_large", G_RESOURCE_EXHAUSTED, 0},
    [-SS_E_QUEUE_FULL] = {429, "resource_exhausted", G_RESOURCE_EXHAUSTED, 1},
    [-SS_E_SUBSCRIBERS] = {429, "too_many_subscribers", G_RESOURCE_EXHAUSTED, 1},
    [-SS_E_SESSIONS] = {503, "too_many_sessions", G_UNAVAILABLE, 1},
    [-SS_E_UNAVAILABLE] = {503, "unavailable", G_UNAVAILABLE, 1},
    [-SS_E_INTERNAL] = {500, "internal", G_INTERNAL, 0},
    [-SS_E_EXISTS] = {409, "already_exists", G_ALREADY_EXISTS, 0},
    [-SS_E_NOT_OWNER] = {503, "not_owner", G_UNAVAILABLE, 1},
};

const ss_err_info *ss_err_info_of(int e) {
    if (e > 0 || -e >= SS_E_COUNT_) e = SS_E_INTERNAL;
    return &table[-e];
}
