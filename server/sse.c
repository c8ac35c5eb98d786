/* sse.c: the subscriber buffer. The content reader runs on the HTTP thread and suspends
 * its connection when there is nothing to send; writers resume it. Both sides hold the
 * subscriber's mutex while touching `suspended`, so a resume never races a suspend, and
 * the response's free callback clears `conn` so nobody resumes a dead connection. */
#include "sse.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define END_SLACK 256 /* room always kept for the final `end` event */

struct ss_sse {
    pthread_mutex_t mu;
    char *buf;
    size_t off, len, alloc, cap;
    int refs;
    int closed, dropped, suspended;
    struct MHD_Connection *conn;
    ss_sse_sink sink; /* sink.event != NULL: a sink, not an HTTP event stream */
};

static const char hello[] = ": spikeserve events\nretry: 1000\n\n";

ss_sse *ss_sse_create(size_t cap) {
    ss_sse *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->cap = cap < 4096 ? 4096 : cap;
    s->alloc = 1024;
    s->buf = malloc(s->alloc);
    if (!s->buf) {
        free(s);
        return NULL;
    }
    s->refs = 2;
    pthread_mutex_init(&s->mu, NULL);
    memcpy(s->buf, hello, sizeof hello - 1);
    s->len = sizeof hello - 1;
    return s;
}

ss_sse *ss_sse_create_relay(size_t cap) {
    ss_sse *s = ss_sse_create(cap);
    if (s) s->len = 0; /* the greeting is the relayed server's */
    return s;
}

ss_sse *ss_sse_create_sink(const ss_sse_sink *sink) {
    ss_sse *s = ss_sse_create(4096);
    if (s) s->sink = *sink;
    return s;
}

int ss_sse_wants_pb(ss_sse *s) {
    return s->sink.event != NULL; /* fixed at creation */
}

void ss_sse_unref(ss_sse *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    int left = --s->refs;
    pthread_mutex_unlock(&s->mu);
    if (left) return;
    if (s->sink.release) s->sink.release(s->sink.arg);
    pthread_mutex_destroy(&s->mu);
    free(s->buf);
    free(s);
}

static void wake(ss_sse *s) {
    if (s->suspended && s->conn) {
        s->suspended = 0;
        MHD_resume_connection(s->conn);
    }
}

/* Make room for n more bytes, pending data staying within limit. Called with mu held. */
static int reserve(ss_sse *s, size_t n, size_t limit) {
    if (s->off == s->len) s->off = s->len = 0;
    /* an event larger than the limit still goes to a subscriber that has read everything */
    if (s->len - s->off + n > limit && s->len > s->off) return -1;
    if (s->off && s->len + n > s->alloc) {
        memmove(s->buf, s->buf + s->off, s->len - s->off);
        s->len -= s->off;
        s->off = 0;
    }
    if (s->len + n > s->alloc) {
        size_t na = s->alloc;
        while (na < s->len + n)
            na *= 2;
        char *nb = realloc(s->buf, na);
        if (!nb) return -1;
        s->buf = nb;
        s->alloc = na;
    }
    return 0;
}

static void append(ss_sse *s, const char *p, size_t n) {
    memcpy(s->buf + s->len, p, n);
    s->len += n;
}

static void end_locked(ss_sse *s, const char *reason) {
    if (s->closed) return;
    if (s->sink.event) {
        s->closed = 1;
        s->sink.end(s->sink.arg, reason);
        return;
    }
    char ev[END_SLACK];
    int n = snprintf(ev, sizeof ev, "event: end\ndata: {\"reason\":\"%s\"}\n\n", reason);
    /* no limit for the last few bytes: after an event larger than the capacity the unread
     * bytes may be past it, and a stream must not close without its `end` */
    if (n > 0 && (size_t)n < sizeof ev && reserve(s, (size_t)n, SIZE_MAX) == 0)
        append(s, ev, (size_t)n);
    s->closed = 1;
    wake(s);
}

static int push(ss_sse *s, const char *a, size_t an, const char *b, size_t bn, const char *c,
                size_t cn) {
    pthread_mutex_lock(&s->mu);
    if (s->closed) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    if (reserve(s, an + bn + cn, s->cap) != 0) {
        s->dropped = 1;
        end_locked(s, "slow_consumer");
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    append(s, a, an);
    append(s, b, bn);
    append(s, c, cn);
    wake(s);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int ss_sse_event_pb(ss_sse *s, const char *name, const uint8_t *pb, size_t len) {
    pthread_mutex_lock(&s->mu);
    int rc = -1;
    if (!s->closed && s->sink.event) {
        rc = s->sink.event(s->sink.arg, name, pb, len);
        if (rc != 0) {
            s->dropped = 1;
            end_locked(s, "slow_consumer");
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int ss_sse_event(ss_sse *s, const char *name, const char *data, size_t len) {
    char head[96];
    int n = snprintf(head, sizeof head, "event: %s\ndata: ", name);
    if (n <= 0 || (size_t)n >= sizeof head) { /* our own names are short: end it, not hang */
        ss_sse_end(s, "error");
        return -1;
    }
    return push(s, head, (size_t)n, data, len, "\n\n", 2);
}

int ss_sse_relay(ss_sse *s, const char *data, size_t len) {
    return push(s, data, len, "", 0, "", 0);
}

void ss_sse_close(ss_sse *s) {
    pthread_mutex_lock(&s->mu);
    s->closed = 1;
    wake(s);
    pthread_mutex_unlock(&s->mu);
}

int ss_sse_comment(ss_sse *s, const char *text) {
    if (s->sink.event) return ss_sse_closed(s) ? -1 : 0; /* a sink has its own keep-alives */
    return push(s, ": ", 2, text, strlen(text), "\n\n", 2);
}

void ss_sse_end(ss_sse *s, const char *reason) {
    pthread_mutex_lock(&s->mu);
    end_locked(s, reason);
    pthread_mutex_unlock(&s->mu);
}

int ss_sse_closed(ss_sse *s) {
    pthread_mutex_lock(&s->mu);
    int c = s->closed;
    pthread_mutex_unlock(&s->mu);
    return c;
}

int ss_sse_dropped(ss_sse *s) {
    pthread_mutex_lock(&s->mu);
    int d = s->dropped;
    pthread_mutex_unlock(&s->mu);
    return d;
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    ss_sse *s = cls;
    pthread_mutex_lock(&s->mu);
    size_t have = s->len - s->off;
    if (have) {
        size_t n = have < max ? have : max;
        memcpy(buf, s->buf + s->off, n);
        s->off += n;
        pthread_mutex_unlock(&s->mu);
        return (ssize_t)n;
    }
    if (s->closed) {
        pthread_mutex_unlock(&s->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    if (s->conn && !s->suspended) {
        s->suspended = 1;
        MHD_suspend_connection(s->conn);
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void reader_free(void *cls) {
    ss_sse *s = cls;
    pthread_mutex_lock(&s->mu);
    s->conn = NULL;
    s->suspended = 0;
    s->closed = 1;
    pthread_mutex_unlock(&s->mu);
    ss_sse_unref(s);
}

struct MHD_Response *ss_sse_response(ss_sse *s, struct MHD_Connection *conn) {
    pthread_mutex_lock(&s->mu);
    s->conn = conn;
    pthread_mutex_unlock(&s->mu);
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, reader, s, reader_free);
    if (!r) return NULL;
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    return r;
}
