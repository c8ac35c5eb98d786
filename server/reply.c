/* reply.c: replies and the rendering of errors. */
#include "reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

void ss_reply_clear(ss_reply *r) {
    free(r->body);
    memset(r, 0, sizeof *r);
}

void ss_reply_set(ss_reply *r, unsigned status, const char *ctype, void *body, size_t len) {
    free(r->body);
    r->status = status;
    r->err = SS_OK;
    r->ctype = ctype;
    r->body = body;
    r->len = body ? len : 0;
}

void ss_reply_fail(ss_reply *r, int err, const char *fmt, ...) {
    const ss_err_info *e = ss_err_info_of(err);
    free(r->body);
    r->body = NULL;
    r->len = 0;
    r->ctype = NULL;
    r->status = e->http;
    r->err = err ? err : SS_E_INTERNAL;
    r->code = e->code;
    r->retry_after = e->retry_after;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
}

int ss_reply_render(ss_reply *r, const ss_codec *c) {
    if (!r->err || r->body) return 0;
    r->body = c->error(r->code, r->msg, &r->len);
    r->ctype = c->ctype;
    return r->body ? 0 : -1;
}
