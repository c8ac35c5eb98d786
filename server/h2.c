/* h2.c: the gRPC transport over libnghttp2. One loop thread runs epoll over the listener,
 * an eventfd and the connections; every nghttp2 session is touched only there, through
 * mem_recv/mem_send (our own non-blocking socket I/O, so we decide when to stop reading).
 *
 * Cross-thread: a call's outbound queue, its finish request and its resume request live
 * under the call's own mutex; a sender also puts the call on the server's ready list (under
 * the server's mutex, lock order call -> server) and writes the eventfd once. The loop takes
 * the list and, per call, submits the response, resumes its deferred data provider, or
 * goes on delivering its messages. A call's pointer to its connection is cleared (under the
 * call's mutex) before the connection is freed, so a late sender only sees SS_H2_ECLOSED.
 *
 * Flow control is the backpressure: receive windows are credited (nghttp2_session_consume,
 * automatic WINDOW_UPDATE off) only for bytes of a call that flows: not paused by the
 * service, not over its response buffer bound, its connection not over its bound. So a
 * stalled call costs at most one message plus one stream window, a connection its bound
 * plus one connection window. A connection whose output cannot be written is not read.
 */
#define _GNU_SOURCE /* accept4 */
#include "h2.h"

#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define HDR_LIST_MAX 16384         /* SETTINGS_MAX_HEADER_LIST_SIZE, and what we keep */
#define STREAM_WINDOW (256 * 1024) /* SETTINGS_INITIAL_WINDOW_SIZE */
#define CONN_WINDOW (2 * 1024 * 1024)
#define WBUF_HIGH (64 * 1024) /* serialize frames up to this much before writing */
#define READ_CHUNK 16384
#define READS_PER_EVENT 8
#define ACCEPT_ENC "identity,gzip"

typedef struct outbuf {
    struct outbuf *next;
    size_t len, off;
    uint8_t data[];
} outbuf;

typedef struct conn conn;

struct ss_h2_call {
    ss_h2 *h; /* not used once the call is detached: the call may outlive ss_h2_free */
    void (*on_free)(void *ctx, ss_h2_call *c);
    void *ctx;
    atomic_int refs;
    pthread_mutex_t mu;
    /* under mu */
    conn *conn; /* NULL once the stream is detached from its connection */
    outbuf *oq_head, *oq_tail;
    uint64_t oq_bytes;
    int finish_req, fin_status;
    char *fin_msg; /* percent-encoded */
    int ended;     /* over (or finished): sends fail */
    int full;      /* a send met SS_H2_EFULL; cleared when the queue drains to half */
    int notify_writable;
    int resume_req;
    int64_t last_progress_us;
    /* under h->mu */
    int ready;
    ss_h2_call *ready_next;
    /* loop thread only */
    int32_t stream_id;
    ss_h2_call *prev, *next; /* the connection's calls */
    ss_h2_call *run_next;    /* run_ready's private copy of the ready list */
    char *hdrs;              /* "name\0value\0"... */
    size_t hdrs_len, hdrs_cap, hdrs_size;
    int hdrs_over, hdrs_done;
    const char *path;
    int64_t deadline_us, created_us, ended_us;
    int accepted, end_called, responded, headers_sent, deferred, trailers_sent;
    int client_eos, half_close_told, svc_paused, out_paused, gzip, in_dead, peer_reset, rst_sent;
    uint8_t *in;
    size_t in_len, in_cap;
    size_t unconsumed; /* received bytes not yet credited to the windows */
    void *data;
};

struct conn {
    ss_h2 *h;
    int fd; /* -1: memory connection (fuzzing) */
    nghttp2_session *s;
    conn *prev, *next;
    ss_h2_call *calls;
    uint32_t ncalls;
    uint8_t *wbuf;
    size_t wlen, woff, wcap;
    int dead, dirty, events, error_counted, has_writable;
    int64_t idle_since_us, write_stall_since_us;
    atomic_uint_fast64_t out_bytes; /* queued response bytes of its calls */
    uint64_t in_bytes;              /* request bytes held by its calls */
    size_t conn_consume;            /* to credit the connection window (closed streams) */
    int n_out_paused, has_unconsumed;
    int64_t rst_window_us;
    uint32_t rst_count;
    uint64_t mem_out;
};

struct ss_h2 {
    ss_h2_params p;
    int lfd, epfd, evfd;
    uint16_t port;
    pthread_t thr;
    int thread_started;
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    conn *conns;
    uint32_t nconns;
    int64_t next_scan_us;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu */
    ss_h2_call *ready;
    int woken;
    int stop_req, stopped, close_req, closed_all, quit;
    uint32_t nconns_pub;
    /* statistics */
    atomic_uint_fast64_t st_conns_open, st_calls_open, st_conns_total, st_calls_total,
        st_calls_refused, st_conn_errors;
};

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- small helpers ---- */

int64_t ss_h2_parse_timeout(const char *v) {
    if (!v) return -1;
    size_t n = strlen(v);
    if (n < 2 || n > 9) return -1; /* at most 8 digits and a unit */
    int64_t x = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (v[i] < '0' || v[i] > '9') return -1;
        x = x * 10 + (v[i] - '0');
    }
    switch (v[n - 1]) {
    case 'H':
        return x * 3600 * 1000000;
    case 'M':
        return x * 60 * 1000000;
    case 'S':
        return x * 1000000;
    case 'm':
        return x * 1000;
    case 'u':
        return x;
    case 'n':
        return (x + 999) / 1000;
    default:
        return -1;
    }
}

void ss_h2_pct_encode(const char *msg, char *out, size_t outlen) {
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    if (!outlen) return;
    for (const unsigned char *p = (const unsigned char *)(msg ? msg : ""); *p; p++) {
        if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
            if (o + 1 >= outlen) break;
            out[o++] = (char)*p;
        } else {
            if (o + 3 >= outlen) break;
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = 0;
}

static void wake(ss_h2 *h) {
    if (h->evfd < 0) return;
    uint64_t one = 1;
    ssize_t r = write(h->evfd, &one, sizeof one);
    (void)r;
}

/* any thread, with c->mu held and c->conn set (so the server is alive): put c on the ready
 * list (takes a reference) */
static void mark_ready(ss_h2_call *c) {
    ss_h2 *h = c->h;
    pthread_mutex_lock(&h->mu);
    if (!c->ready) {
        c->ready = 1;
        atomic_fetch_add(&c->refs, 1);
        c->ready_next = h->ready;
        h->ready = c;
        if (!h->woken) {
            h->woken = 1;
            wake(h);
        }
    }
    pthread_mutex_unlock(&h->mu);
}

/* ---- call object ---- */

void ss_h2_call_ref(ss_h2_call *c) {
    atomic_fetch_add(&c->refs, 1);
}

void ss_h2_call_unref(ss_h2_call *c) {
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1) return;
    if (c->on_free) c->on_free(c->ctx, c);
    for (outbuf *b = c->oq_head, *n; b; b = n) {
        n = b->next;
        free(b);
    }
    free(c->fin_msg);
    free(c->hdrs);
    free(c->in);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

const char *ss_h2_path(const ss_h2_call *c) {
    return c->path ? c->path : "";
}

const char *ss_h2_header(const ss_h2_call *c, const char *name) {
    if (!c->hdrs_done) return NULL;
    for (size_t i = 0; i < c->hdrs_len;) {
        const char *n = c->hdrs + i, *v = n + strlen(n) + 1;
        if (!strcmp(n, name)) return v;
        i = (size_t)(v - c->hdrs) + strlen(v) + 1;
    }
    return NULL;
}

int64_t ss_h2_deadline_us(const ss_h2_call *c) {
    return c->deadline_us;
}
void *ss_h2_call_data(ss_h2_call *c) {
    return c->data;
}
void ss_h2_set_call_data(ss_h2_call *c, void *d) {
    c->data = d;
}

uint64_t ss_h2_call_buffered(ss_h2_call *c) {
    pthread_mutex_lock(&c->mu);
    uint64_t n = c->oq_bytes;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* drop the queued response bytes (mu held) */
static void drop_queue(ss_h2_call *c) {
    for (outbuf *b = c->oq_head, *n; b; b = n) {
        n = b->next;
        free(b);
    }
    if (c->conn) atomic_fetch_sub(&c->conn->out_bytes, c->oq_bytes);
    c->oq_head = c->oq_tail = NULL;
    c->oq_bytes = 0;
}

int ss_h2_send(ss_h2_call *c, const uint8_t *msg, size_t len) {
    ss_h2 *h = c->h;
    if (len > UINT32_MAX) return -1;
    pthread_mutex_lock(&c->mu);
    if (c->ended || c->finish_req || !c->conn) {
        pthread_mutex_unlock(&c->mu);
        return SS_H2_ECLOSED;
    }
    if (c->oq_bytes > 0 &&
        (c->oq_bytes + len + 5 > h->p.max_call_buffer_bytes ||
         atomic_load(&c->conn->out_bytes) + len + 5 > h->p.max_conn_buffer_bytes)) {
        c->full = 1;
        pthread_mutex_unlock(&c->mu);
        return SS_H2_EFULL;
    }
    outbuf *b = malloc(sizeof *b + 5 + len);
    if (!b) {
        pthread_mutex_unlock(&c->mu);
        return -1;
    }
    b->next = NULL;
    b->len = 5 + len;
    b->off = 0;
    b->data[0] = 0;
    b->data[1] = (uint8_t)(len >> 24);
    b->data[2] = (uint8_t)(len >> 16);
    b->data[3] = (uint8_t)(len >> 8);
    b->data[4] = (uint8_t)len;
    if (len) memcpy(b->data + 5, msg, len);
    if (!c->oq_head) c->last_progress_us = now_us();
    if (c->oq_tail)
        c->oq_tail->next = b;
    else
        c->oq_head = b;
    c->oq_tail = b;
    c->oq_bytes += b->len;
    atomic_fetch_add(&c->conn->out_bytes, b->len);
    mark_ready(c);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

static int set_finish(ss_h2_call *c, int status, const char *message) {
    char enc[1024];
    ss_h2_pct_encode(message, enc, sizeof enc);
    char *m = strdup(enc);
    if (!m) return -1;
    c->finish_req = 1;
    c->fin_status = status;
    free(c->fin_msg);
    c->fin_msg = m;
    return 0;
}

int ss_h2_finish(ss_h2_call *c, int status, const char *message) {
    pthread_mutex_lock(&c->mu);
    if (c->ended || c->finish_req || !c->conn) {
        pthread_mutex_unlock(&c->mu);
        return SS_H2_ECLOSED;
    }
    int rc = set_finish(c, status, message);
    if (rc == 0) mark_ready(c);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void ss_h2_resume(ss_h2_call *c) {
    pthread_mutex_lock(&c->mu);
    if (c->conn) {
        c->resume_req = 1;
        mark_ready(c);
    }
    pthread_mutex_unlock(&c->mu);
}

/* ---- responses (loop thread) ---- */

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(uintptr_t)(v), sizeof(n) - 1, strlen(v),                       \
            NGHTTP2_NV_FLAG_NO_COPY_NAME                                                           \
    }

static void respond_http(conn *cn, ss_h2_call *c, const char *status) {
    nghttp2_nv nva[] = {NV(":status", status)};
    c->responded = 1;
    nghttp2_submit_response(cn->s, c->stream_id, nva, 1, NULL);
    cn->dirty = 1;
}

static void respond_trailers_only(conn *cn, ss_h2_call *c, int status, const char *pct_msg) {
    char st[16];
    snprintf(st, sizeof st, "%d", status);
    nghttp2_nv nva[] = {NV(":status", "200"), NV("content-type", "application/grpc"),
                        NV("grpc-accept-encoding", ACCEPT_ENC), NV("grpc-status", st),
                        NV("grpc-message", pct_msg ? pct_msg : "")};
    c->responded = c->headers_sent = 1;
    nghttp2_submit_response(cn->s, c->stream_id, nva, pct_msg && *pct_msg ? 5 : 4, NULL);
    cn->dirty = 1;
}

static ssize_t read_cb(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t length,
                       uint32_t *flags, nghttp2_data_source *src, void *ud) {
    (void)sid;
    (void)ud;
    ss_h2_call *c = src->ptr;
    size_t n = 0;
    pthread_mutex_lock(&c->mu);
    while (n < length && c->oq_head) {
        outbuf *b = c->oq_head;
        size_t k = b->len - b->off;
        if (k > length - n) k = length - n;
        memcpy(buf + n, b->data + b->off, k);
        b->off += k;
        n += k;
        if (b->off == b->len) {
            c->oq_head = b->next;
            if (!c->oq_head) c->oq_tail = NULL;
            free(b);
        }
    }
    c->oq_bytes -= n;
    if (c->full && c->oq_bytes <= c->h->p.max_call_buffer_bytes / 2) {
        c->full = 0;
        c->notify_writable = 1; /* on_writable runs from conn_settle, outside nghttp2 */
        if (c->conn) c->conn->has_writable = 1;
    }
    if (c->conn) atomic_fetch_sub(&c->conn->out_bytes, n);
    if (n) c->last_progress_us = now_us();
    if (!c->oq_head && c->finish_req) {
        char st[16];
        snprintf(st, sizeof st, "%d", c->fin_status);
        nghttp2_nv nva[] = {NV("grpc-status", st), NV("grpc-message", c->fin_msg)};
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_submit_trailer(s, c->stream_id, nva, c->fin_msg[0] ? 2 : 1);
    } else if (!n) {
        c->deferred = 1;
        pthread_mutex_unlock(&c->mu);
        return NGHTTP2_ERR_DEFERRED;
    }
    pthread_mutex_unlock(&c->mu);
    return (ssize_t)n;
}

/* submit what the service asked for: headers + data provider, trailers-only, or resume */
static void pump(conn *cn, ss_h2_call *c) {
    if (!c->accepted || c->trailers_sent || !c->stream_id) return;
    pthread_mutex_lock(&c->mu);
    int has_out = c->oq_head != NULL, fin = c->finish_req, st = c->fin_status;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", c->fin_msg ? c->fin_msg : "");
    pthread_mutex_unlock(&c->mu);
    if (!c->headers_sent) {
        if (!has_out && !fin) return;
        if (!has_out) {
            respond_trailers_only(cn, c, st, msg);
            return;
        }
        nghttp2_nv nva[] = {NV(":status", "200"), NV("content-type", "application/grpc"),
                            NV("grpc-accept-encoding", ACCEPT_ENC)};
        nghttp2_data_provider prd = {.source.ptr = c, .read_callback = read_cb};
        c->headers_sent = c->responded = 1;
        nghttp2_submit_response(cn->s, c->stream_id, nva, 3, &prd);
    } else if (c->deferred && (has_out || fin)) {
        c->deferred = 0;
        nghttp2_session_resume_data(cn->s, c->stream_id);
    }
    cn->dirty = 1;
}

/* the call is over for the service: once, accepted calls only */
static void end_call(ss_h2_call *c, int reason) {
    ss_h2 *h = c->h;
    if (!c->accepted || c->end_called) return;
    c->end_called = 1;
    c->ended_us = now_us();
    pthread_mutex_lock(&c->mu);
    c->ended = 1;
    pthread_mutex_unlock(&c->mu);
    if (atomic_fetch_sub(&h->st_calls_open, 1) == 1) {
        pthread_mutex_lock(&h->mu);
        pthread_cond_broadcast(&h->cv);
        pthread_mutex_unlock(&h->mu);
    }
    if (h->p.on_end) h->p.on_end(h->p.ctx, c, reason);
}

/* the transport ends an accepted call with a status of its own */
static void fail_call(conn *cn, ss_h2_call *c, int status, const char *message) {
    c->in_dead = 1;
    if (c->end_called) return;
    pthread_mutex_lock(&c->mu);
    int served = c->finish_req; /* the service already finished: its trailers stand */
    drop_queue(c);
    if (!served) set_finish(c, status, message);
    pthread_mutex_unlock(&c->mu);
    end_call(c, status);
    if (served && !c->trailers_sent)
        nghttp2_submit_rst_stream(cn->s, NGHTTP2_FLAG_NONE, c->stream_id, NGHTTP2_CANCEL);
    else
        pump(cn, c);
    cn->dirty = 1;
}

/* ---- request messages (loop thread) ---- */

static int out_over(ss_h2_call *c) {
    pthread_mutex_lock(&c->mu);
    int over = c->full || c->oq_bytes >= c->h->p.max_call_buffer_bytes;
    pthread_mutex_unlock(&c->mu);
    return over;
}

static int flowing(conn *cn, ss_h2_call *c) {
    return !c->svc_paused && !c->out_paused && !c->in_dead &&
           cn->in_bytes <= c->h->p.max_conn_buffer_bytes;
}

/* gunzip src into a new buffer of at most max bytes: 0, -8 over max, -13 corrupt */
static int gunzip(const uint8_t *src, size_t n, uint64_t max, uint8_t **out, size_t *outlen) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return -13;
    size_t cap = n * 4 + 64;
    if (cap > max + 1) cap = max + 1;
    uint8_t *buf = malloc(cap ? cap : 1);
    int rc = -13;
    if (!buf) goto done;
    z.next_in = (uint8_t *)(uintptr_t)src;
    z.avail_in = (uInt)n;
    size_t have = 0;
    for (;;) {
        z.next_out = buf + have;
        z.avail_out = (uInt)(cap - have);
        int zr = inflate(&z, Z_NO_FLUSH);
        have = cap - z.avail_out;
        if (zr == Z_STREAM_END) {
            rc = z.avail_in == 0 && have <= max ? 0 : (have > max ? -8 : -13);
            break;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) break;
        if (have > max) {
            rc = -8;
            break;
        }
        if (z.avail_out == 0) {
            size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            if (ncap <= cap) {
                rc = -8;
                break;
            }
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) break;
            buf = nb;
            cap = ncap;
        } else if (z.avail_in == 0) {
            break; /* truncated */
        }
    }
done:
    inflateEnd(&z);
    if (rc == 0) {
        *out = buf;
        *outlen = have;
    } else {
        free(buf);
    }
    return rc;
}

static void credit(conn *cn, ss_h2_call *c) {
    if (c->unconsumed && (c->in_dead || flowing(cn, c))) {
        nghttp2_session_consume(cn->s, c->stream_id, c->unconsumed);
        c->unconsumed = 0;
        cn->dirty = 1;
    }
}

/* deliver the whole messages buffered for c while it flows; then half-close */
static void deliver(conn *cn, ss_h2_call *c) {
    ss_h2 *h = cn->h;
    size_t off = 0;
    while (!c->end_called && !c->in_dead && !c->svc_paused) {
        if (out_over(c)) {
            if (!c->out_paused) cn->n_out_paused++;
            c->out_paused = 1;
            break;
        }
        if (c->out_paused) {
            c->out_paused = 0;
            cn->n_out_paused--;
        }
        if (c->in_len - off < 5) break;
        const uint8_t *p = c->in + off;
        uint64_t len = (uint64_t)p[1] << 24 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 8 | p[4];
        if (p[0] > 1 || (p[0] == 1 && !c->gzip)) {
            fail_call(cn, c, 13,
                      p[0] > 1 ? "bad message flag" : "compressed flag without grpc-encoding");
            break;
        }
        if (len > h->p.max_message_bytes) {
            char m[128];
            snprintf(m, sizeof m, "request message of %llu bytes is over the limit of %llu",
                     (unsigned long long)len, (unsigned long long)h->p.max_message_bytes);
            fail_call(cn, c, 8, m);
            break;
        }
        if (c->in_len - off - 5 < len) break;
        pthread_mutex_lock(&c->mu);
        int fin = c->finish_req;
        pthread_mutex_unlock(&c->mu);
        off += 5 + len;
        if (fin) continue; /* the service has answered: drop what follows */
        int rc = 0;
        if (p[0] == 1) {
            uint8_t *d;
            size_t dn;
            int zr = gunzip(p + 5, len, h->p.max_message_bytes, &d, &dn);
            if (zr) {
                fail_call(cn, c, -zr,
                          zr == -8 ? "decompressed request message over the limit"
                                   : "bad gzip request message");
                break;
            }
            rc = h->p.on_message ? h->p.on_message(h->p.ctx, c, d, dn) : 0;
            free(d);
        } else {
            rc = h->p.on_message ? h->p.on_message(h->p.ctx, c, p + 5, len) : 0;
        }
        if (rc == 1) c->svc_paused = 1;
    }
    if (c->in_dead) off = c->in_len;
    if (off) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
        cn->in_bytes -= off;
    }
    credit(cn, c);
    if (c->client_eos && !c->end_called && !c->in_dead && !c->half_close_told) {
        if (c->in_len == 0) {
            c->half_close_told = 1;
            if (h->p.on_half_close) h->p.on_half_close(h->p.ctx, c);
        } else if (!c->svc_paused && !c->out_paused) {
            fail_call(cn, c, 13, "request ended inside a message");
        }
    }
}

/* ---- nghttp2 callbacks (loop thread) ---- */

static ss_h2_call *call_of(nghttp2_session *s, int32_t sid) {
    return sid ? nghttp2_session_get_stream_user_data(s, sid) : NULL;
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
    conn *cn = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    ss_h2_call *c = calloc(1, sizeof *c);
    if (!c) return NGHTTP2_ERR_CALLBACK_FAILURE;
    c->h = cn->h;
    c->on_free = cn->h->p.on_free;
    c->ctx = cn->h->p.ctx;
    atomic_init(&c->refs, 1);
    pthread_mutex_init(&c->mu, NULL);
    c->conn = cn;
    c->stream_id = f->hd.stream_id;
    c->created_us = now_us();
    c->next = cn->calls;
    if (cn->calls) cn->calls->prev = c;
    cn->calls = c;
    cn->ncalls++;
    nghttp2_session_set_stream_user_data(s, f->hd.stream_id, c);
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud) {
    (void)flags;
    (void)ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    ss_h2_call *c = call_of(s, f->hd.stream_id);
    if (!c || c->hdrs_over) return 0;
    c->hdrs_size += namelen + valuelen + 32; /* as SETTINGS_MAX_HEADER_LIST_SIZE counts */
    if (c->hdrs_size > HDR_LIST_MAX) {
        c->hdrs_over = 1;
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* the stream is reset */
    }
    size_t need = c->hdrs_len + namelen + valuelen + 2;
    if (need > c->hdrs_cap) {
        char *n = ss_util_grow(c->hdrs, &c->hdrs_cap, need, 512);
        if (!n) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        c->hdrs = n;
    }
    memcpy(c->hdrs + c->hdrs_len, name, namelen);
    c->hdrs[c->hdrs_len + namelen] = 0;
    memcpy(c->hdrs + c->hdrs_len + namelen + 1, value, valuelen);
    c->hdrs[c->hdrs_len + namelen + 1 + valuelen] = 0;
    c->hdrs_len = need;
    return 0;
}

/* request headers complete: check them, ask the service */
static void start_call(conn *cn, ss_h2_call *c) {
    ss_h2 *h = cn->h;
    c->hdrs_done = 1;
    c->path = ss_h2_header(c, ":path");
    const char *m = ss_h2_header(c, ":method"), *ct = ss_h2_header(c, "content-type");
    const char *enc = ss_h2_header(c, "grpc-encoding"), *to = ss_h2_header(c, "grpc-timeout");
    char msg[512] = "", pct[1024];
    atomic_fetch_add(&h->st_calls_refused, 1); /* taken back when accepted */
    if (!m || strcmp(m, "POST")) {
        respond_http(cn, c, "405");
        return;
    }
    if (!ct || strncmp(ct, "application/grpc", 16) || (ct[16] && ct[16] != '+' && ct[16] != ';')) {
        respond_http(cn, c, "415");
        return;
    }
    if (enc && strcmp(enc, "identity") && strcmp(enc, "gzip")) {
        snprintf(msg, sizeof msg, "grpc-encoding %.100s is not supported", enc);
        ss_h2_pct_encode(msg, pct, sizeof pct);
        respond_trailers_only(cn, c, 12, pct);
        return;
    }
    c->gzip = enc && !strcmp(enc, "gzip");
    if (to) {
        int64_t t = ss_h2_parse_timeout(to);
        if (t < 0) {
            respond_trailers_only(cn, c, 13, "malformed grpc-timeout");
            return;
        }
        c->deadline_us = now_us() + (t ? t : 1);
    }
    int rc = h->p.on_call ? h->p.on_call(h->p.ctx, c, msg, sizeof msg) : 12;
    if (rc) {
        msg[sizeof msg - 1] = 0;
        ss_h2_pct_encode(msg, pct, sizeof pct);
        respond_trailers_only(cn, c, rc, pct);
        return;
    }
    atomic_fetch_sub(&h->st_calls_refused, 1);
    atomic_fetch_add(&h->st_calls_total, 1);
    atomic_fetch_add(&h->st_calls_open, 1);
    c->accepted = 1;
    if (c->deadline_us && c->deadline_us < h->next_scan_us) h->next_scan_us = c->deadline_us;
}

/* frames that cost us work and carry nothing: client RST_STREAMs (rapid reset,
 * CVE-2023-44487) and empty DATA frames (CVE-2019-9518); past the limit per 10 s: GOAWAY */
static void idle_frame(conn *cn) {
    int64_t t = now_us();
    if (t - cn->rst_window_us > 10000000) {
        cn->rst_window_us = t;
        cn->rst_count = 0;
    }
    if (++cn->rst_count == cn->h->p.max_resets_per_10s + 1)
        nghttp2_session_terminate_session(cn->s, NGHTTP2_ENHANCE_YOUR_CALM);
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
    conn *cn = ud;
    ss_h2_call *c = call_of(s, f->hd.stream_id);
    switch (f->hd.type) {
    case NGHTTP2_HEADERS:
        if (!c) return 0;
        if (f->headers.cat == NGHTTP2_HCAT_REQUEST && !c->hdrs_done) start_call(cn, c);
        break;
    case NGHTTP2_DATA:
        if (f->hd.length == 0 && !(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) idle_frame(cn);
        break;
    case NGHTTP2_RST_STREAM:
        if (c) c->peer_reset = 1;
        idle_frame(cn);
        return 0;
    default:
        return 0;
    }
    if (c && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        c->client_eos = 1;
        if (c->accepted) deliver(cn, c);
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data,
                         size_t len, void *ud) {
    (void)flags;
    conn *cn = ud;
    ss_h2_call *c = call_of(s, sid);
    if (!c || !c->accepted || c->in_dead || c->end_called) {
        nghttp2_session_consume(s, sid, len);
        return 0;
    }
    if (c->in_len + len > c->in_cap) {
        uint8_t *n = ss_util_grow(c->in, &c->in_cap, c->in_len + len, 4096);
        if (!n) return NGHTTP2_ERR_CALLBACK_FAILURE;
        c->in = n;
    }
    memcpy(c->in + c->in_len, data, len);
    c->in_len += len;
    cn->in_bytes += len;
    c->unconsumed += len;
    deliver(cn, c); /* credits the windows when the call flows */
    if (c->unconsumed) cn->has_unconsumed = 1;
    return 0;
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
    conn *cn = ud;
    if (f->hd.type == NGHTTP2_GOAWAY && f->goaway.error_code != NGHTTP2_NO_ERROR &&
        !cn->error_counted) {
        cn->error_counted = 1;
        atomic_fetch_add(&cn->h->st_conn_errors, 1);
    }
    if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
        !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    ss_h2_call *c = call_of(s, f->hd.stream_id);
    if (!c) return 0;
    c->trailers_sent = 1;
    /* the response is complete: a client still sending is told to stop (gRPC over HTTP/2) */
    if (!c->client_eos)
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, c->stream_id, NGHTTP2_NO_ERROR);
    return 0;
}

/* the stream is gone from the connection: unlink c and drop the transport's reference */
static void detach(conn *cn, ss_h2_call *c) {
    if (c->prev)
        c->prev->next = c->next;
    else
        cn->calls = c->next;
    if (c->next) c->next->prev = c->prev;
    cn->ncalls--;
    if (!cn->ncalls) cn->idle_since_us = now_us();
    if (c->out_paused) cn->n_out_paused--;
    cn->conn_consume += c->unconsumed;
    cn->in_bytes -= c->in_len;
    c->in_len = c->unconsumed = 0;
    pthread_mutex_lock(&c->mu);
    drop_queue(c);
    c->conn = NULL;
    c->ended = 1;
    pthread_mutex_unlock(&c->mu);
    c->stream_id = 0;
    ss_h2_call_unref(c);
}

static int on_stream_close(nghttp2_session *s, int32_t sid, uint32_t code, void *ud) {
    conn *cn = ud;
    ss_h2_call *c = call_of(s, sid);
    if (!c) return 0;
    nghttp2_session_set_stream_user_data(s, sid, NULL);
    pthread_mutex_lock(&c->mu);
    int served = c->finish_req;
    pthread_mutex_unlock(&c->mu);
    end_call(c, served && c->trailers_sent ? 0 : c->peer_reset || code == NGHTTP2_CANCEL ? 1 : 13);
    detach(cn, c);
    return 0;
}

/* ---- connections (loop thread) ---- */

static void conn_update_events(conn *cn) {
    if (cn->fd < 0) return;
    int ev = cn->wlen > cn->woff ? EPOLLOUT : EPOLLIN;
    if (ev == cn->events) return;
    struct epoll_event e = {.events = (uint32_t)ev, .data.ptr = cn};
    epoll_ctl(cn->h->epfd, EPOLL_CTL_MOD, cn->fd, &e);
    cn->events = ev;
}

/* serialize and write what the session has; -1 when the connection must close */
static int conn_flush(conn *cn) {
    for (;;) {
        while (cn->wlen < WBUF_HIGH) {
            const uint8_t *p;
            ssize_t n = nghttp2_session_mem_send(cn->s, &p);
            if (n < 0) return -1;
            if (n == 0) break;
            if (cn->wlen + (size_t)n > cn->wcap) {
                size_t cap = cn->wcap ? cn->wcap : 2 * WBUF_HIGH;
                while (cap < cn->wlen + (size_t)n)
                    cap *= 2;
                uint8_t *nb = realloc(cn->wbuf, cap);
                if (!nb) return -1;
                cn->wbuf = nb;
                cn->wcap = cap;
            }
            memcpy(cn->wbuf + cn->wlen, p, (size_t)n);
            cn->wlen += (size_t)n;
        }
        if (cn->woff == cn->wlen) {
            cn->woff = cn->wlen = 0;
            break;
        }
        ssize_t w;
        if (cn->fd < 0) {
            w = (ssize_t)(cn->wlen - cn->woff);
            cn->mem_out += (uint64_t)w;
        } else {
            w = send(cn->fd, cn->wbuf + cn->woff, cn->wlen - cn->woff, MSG_NOSIGNAL);
        }
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (errno == EINTR) continue;
            return -1;
        }
        cn->woff += (size_t)w;
        cn->write_stall_since_us = 0;
        if (cn->woff == cn->wlen) cn->woff = cn->wlen = 0;
    }
    if (cn->wlen > cn->woff && !cn->write_stall_since_us) cn->write_stall_since_us = now_us();
    cn->dirty = 0;
    if (!nghttp2_session_want_read(cn->s) && !nghttp2_session_want_write(cn->s) &&
        cn->wlen == cn->woff)
        return -1;
    conn_update_events(cn);
    return 0;
}

/* after a batch of input or output: pick up calls that may flow again */
static void conn_settle(conn *cn) {
    if (cn->conn_consume) {
        nghttp2_session_consume_connection(cn->s, cn->conn_consume);
        cn->conn_consume = 0;
        cn->dirty = 1;
    }
    if (cn->has_writable) {
        cn->has_writable = 0;
        for (ss_h2_call *c = cn->calls; c; c = c->next) {
            pthread_mutex_lock(&c->mu);
            int w = c->notify_writable;
            c->notify_writable = 0;
            pthread_mutex_unlock(&c->mu);
            if (w && c->accepted && !c->end_called && cn->h->p.on_writable)
                cn->h->p.on_writable(cn->h->p.ctx, c);
        }
    }
    if (!cn->n_out_paused && !cn->has_unconsumed) return;
    cn->has_unconsumed = 0;
    for (ss_h2_call *c = cn->calls, *n; c; c = n) {
        n = c->next; /* deliver may not free c: detach runs only from nghttp2 callbacks */
        if (!c->accepted) continue;
        if (c->out_paused && !out_over(c)) deliver(cn, c);
        credit(cn, c);
        if (c->unconsumed) cn->has_unconsumed = 1;
    }
}

static void conn_close(conn *cn) {
    ss_h2 *h = cn->h;
    while (cn->calls) {
        ss_h2_call *c = cn->calls;
        if (c->stream_id) nghttp2_session_set_stream_user_data(cn->s, c->stream_id, NULL);
        end_call(c, 14);
        detach(cn, c);
    }
    nghttp2_session_del(cn->s);
    if (cn->fd >= 0) close(cn->fd);
    if (cn->prev)
        cn->prev->next = cn->next;
    else if (h->conns == cn)
        h->conns = cn->next;
    if (cn->next) cn->next->prev = cn->prev;
    if (cn->fd >= 0) {
        h->nconns--;
        atomic_fetch_sub(&h->st_conns_open, 1);
        pthread_mutex_lock(&h->mu);
        h->nconns_pub = h->nconns;
        pthread_cond_broadcast(&h->cv);
        pthread_mutex_unlock(&h->mu);
    }
    free(cn->wbuf);
    free(cn);
}

static conn *conn_new(ss_h2 *h, int fd) {
    conn *cn = calloc(1, sizeof *cn);
    if (!cn) return NULL;
    cn->h = h;
    cn->fd = fd;
    atomic_init(&cn->out_bytes, 0);
    cn->idle_since_us = cn->rst_window_us = now_us();
    if (nghttp2_session_server_new2(&cn->s, h->cbs, cn, h->opt)) {
        free(cn);
        return NULL;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, h->p.max_streams_per_conn},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, HDR_LIST_MAX},
    };
    if (nghttp2_submit_settings(cn->s, NGHTTP2_FLAG_NONE, iv, 3) ||
        nghttp2_session_set_local_window_size(cn->s, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW)) {
        nghttp2_session_del(cn->s);
        free(cn);
        return NULL;
    }
    cn->dirty = 1;
    return cn;
}

/* feed bytes to the session; -1 when the connection must close */
static int conn_input(conn *cn, const uint8_t *d, size_t n) {
    ssize_t r = nghttp2_session_mem_recv(cn->s, d, n);
    if (r < 0) {
        if (!cn->error_counted) atomic_fetch_add(&cn->h->st_conn_errors, 1);
        cn->error_counted = 1;
        if (r != NGHTTP2_ERR_BAD_CLIENT_MAGIC) { /* tell why, if the socket takes it */
            nghttp2_session_terminate_session(cn->s, r == NGHTTP2_ERR_FLOODED
                                                         ? NGHTTP2_ENHANCE_YOUR_CALM
                                                         : NGHTTP2_PROTOCOL_ERROR);
            conn_flush(cn);
        }
        return -1;
    }
    conn_settle(cn);
    return 0;
}

static void conn_io(conn *cn, uint32_t events) {
    if ((events & (EPOLLERR | EPOLLHUP)) && !(events & EPOLLIN)) goto close;
    if (cn->wlen > cn->woff && conn_flush(cn)) goto close;
    if ((events & EPOLLIN) && cn->wlen == cn->woff) {
        uint8_t buf[READ_CHUNK];
        for (int i = 0; i < READS_PER_EVENT && cn->wlen == cn->woff; i++) {
            ssize_t r = recv(cn->fd, buf, sizeof buf, 0);
            if (r == 0) goto close;
            if (r < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                if (errno == EINTR) continue;
                goto close;
            }
            if (conn_input(cn, buf, (size_t)r)) goto close;
            if (conn_flush(cn)) goto close;
        }
    }
    conn_settle(cn);
    if (conn_flush(cn)) goto close;
    return;
close:
    conn_close(cn);
}

/* ready calls: what other threads asked for */
static void run_ready(ss_h2 *h) {
    pthread_mutex_lock(&h->mu);
    /* copied to run_next: once ready is 0 a sender may put c on the list again */
    ss_h2_call *list = NULL;
    for (ss_h2_call *c = h->ready; c; c = c->ready_next) {
        c->ready = 0;
        c->run_next = list;
        list = c;
    }
    h->ready = NULL;
    h->woken = 0;
    pthread_mutex_unlock(&h->mu);
    while (list) {
        ss_h2_call *c = list;
        list = c->run_next;
        pthread_mutex_lock(&c->mu);
        conn *cn = c->conn;
        int resume = c->resume_req;
        c->resume_req = 0;
        pthread_mutex_unlock(&c->mu);
        if (cn && c->stream_id) {
            if (resume && c->svc_paused) {
                c->svc_paused = 0;
                deliver(cn, c);
            }
            pump(cn, c);
            cn->dirty = 1;
        }
        ss_h2_call_unref(c);
    }
}

/* deadlines, stalled readers and writers, idle connections */
static void scan_timers(ss_h2 *h, int64_t t) {
    int64_t next = t + 1000000;
    /* signed: a worker may stamp last_progress_us after t was read (t - it < 0: no stall) */
    int64_t stall = (int64_t)h->p.stall_timeout_s * 1000000;
    for (conn *cn = h->conns, *cnext; cn; cn = cnext) {
        cnext = cn->next;
        /* a header block left unfinished holds the whole connection (HPACK state): a
         * client that stalls inside one loses the connection */
        int hdr_stall = 0;
        for (ss_h2_call *c = cn->calls; c && !hdr_stall; c = c->next)
            hdr_stall = !c->hdrs_done && t - c->created_us > stall;
        if (cn->fd >= 0 &&
            ((!cn->ncalls && t - cn->idle_since_us > (int64_t)h->p.idle_timeout_s * 1000000) ||
             (cn->write_stall_since_us && t - cn->write_stall_since_us > stall) ||
             hdr_stall)) {
            nghttp2_session_terminate_session(cn->s, NGHTTP2_NO_ERROR);
            conn_flush(cn);
            conn_close(cn);
            continue;
        }
        for (ss_h2_call *c = cn->calls; c; c = c->next) {
            if (!c->accepted) continue;
            if (c->end_called) {
                /* ended (deadline, limit) but its trailers cannot get out: a window that
                 * never opens. The stream must not hold the connection forever */
                if (!c->rst_sent && t - c->ended_us > stall) {
                    c->rst_sent = 1;
                    nghttp2_submit_rst_stream(cn->s, NGHTTP2_FLAG_NONE, c->stream_id,
                                              NGHTTP2_CANCEL);
                    cn->dirty = 1;
                }
                continue;
            }
            if (c->deadline_us && c->deadline_us <= t) {
                fail_call(cn, c, 4, "deadline exceeded");
                continue;
            }
            if (c->deadline_us && c->deadline_us < next) next = c->deadline_us;
            pthread_mutex_lock(&c->mu);
            int stalled = c->oq_bytes && t - c->last_progress_us > stall;
            pthread_mutex_unlock(&c->mu);
            if (stalled) {
                c->in_dead = c->rst_sent = 1;
                nghttp2_submit_rst_stream(cn->s, NGHTTP2_FLAG_NONE, c->stream_id, NGHTTP2_CANCEL);
                end_call(c, 8);
                cn->dirty = 1;
            }
        }
        if (cn->dirty && conn_flush(cn)) conn_close(cn);
    }
    h->next_scan_us = next;
}

static void do_accept(ss_h2 *h) {
    for (int i = 0; i < 64; i++) {
        int fd = accept4(h->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        if (h->nconns >= h->p.max_connections) {
            atomic_fetch_add(&h->st_conn_errors, 1);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn *cn = conn_new(h, fd);
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = cn};
        if (!cn || epoll_ctl(h->epfd, EPOLL_CTL_ADD, fd, &e)) {
            if (cn) {
                nghttp2_session_del(cn->s);
                free(cn);
            }
            close(fd);
            continue;
        }
        cn->events = EPOLLIN;
        cn->next = h->conns;
        if (h->conns) h->conns->prev = cn;
        h->conns = cn;
        h->nconns++;
        atomic_fetch_add(&h->st_conns_open, 1);
        atomic_fetch_add(&h->st_conns_total, 1);
        pthread_mutex_lock(&h->mu);
        h->nconns_pub = h->nconns;
        pthread_mutex_unlock(&h->mu);
        if (conn_flush(cn)) conn_close(cn);
    }
}

static void loop_commands(ss_h2 *h) {
    pthread_mutex_lock(&h->mu);
    int stop = h->stop_req && !h->stopped, close_all = h->close_req && !h->closed_all;
    pthread_mutex_unlock(&h->mu);
    if (stop) {
        if (h->lfd >= 0) {
            epoll_ctl(h->epfd, EPOLL_CTL_DEL, h->lfd, NULL);
            close(h->lfd);
            h->lfd = -1;
        }
        for (conn *cn = h->conns, *n; cn; cn = n) {
            n = cn->next;
            nghttp2_submit_goaway(cn->s, NGHTTP2_FLAG_NONE,
                                  nghttp2_session_get_last_proc_stream_id(cn->s), NGHTTP2_NO_ERROR,
                                  NULL, 0);
            if (conn_flush(cn)) conn_close(cn);
        }
    }
    if (close_all) {
        while (h->conns) {
            conn *cn = h->conns;
            nghttp2_session_terminate_session(cn->s, NGHTTP2_NO_ERROR);
            conn_flush(cn);
            conn_close(cn);
        }
    }
    if (stop || close_all) {
        pthread_mutex_lock(&h->mu);
        if (stop) h->stopped = 1;
        if (close_all) h->closed_all = 1;
        pthread_cond_broadcast(&h->cv);
        pthread_mutex_unlock(&h->mu);
    }
}

static void *loop_main(void *arg) {
    ss_h2 *h = arg;
    struct epoll_event ev[64];
    for (;;) {
        int64_t t = now_us();
        int timeout = (int)((h->next_scan_us - t) / 1000) + 1;
        if (timeout < 0) timeout = 0;
        if (timeout > 1000) timeout = 1000;
        int n = epoll_wait(h->epfd, ev, 64, timeout);
        for (int i = 0; i < n; i++) {
            if (ev[i].data.ptr == NULL) {
                uint64_t v;
                ssize_t r = read(h->evfd, &v, sizeof v);
                (void)r;
            } else if (ev[i].data.ptr == (void *)h) {
                do_accept(h);
            }
        }
        /* connections second: an event may refer to one closed by an earlier event in this
         * batch, so look each one up in the live list */
        for (int i = 0; i < n; i++) {
            void *p = ev[i].data.ptr;
            if (!p || p == (void *)h) continue;
            for (conn *cn = h->conns; cn; cn = cn->next)
                if (cn == p) {
                    conn_io(cn, ev[i].events);
                    break;
                }
        }
        run_ready(h);
        t = now_us();
        if (t >= h->next_scan_us) scan_timers(h, t);
        /* twice: a flush that drains a paused call's queue lets it take messages again */
        for (int pass = 0; pass < 2; pass++)
            for (conn *cn = h->conns, *nx; cn; cn = nx) {
                nx = cn->next;
                conn_settle(cn);
                if (cn->dirty && conn_flush(cn)) conn_close(cn);
            }
        loop_commands(h);
        pthread_mutex_lock(&h->mu);
        int quit = h->quit;
        pthread_mutex_unlock(&h->mu);
        if (quit) break;
    }
    while (h->conns)
        conn_close(h->conns);
    return NULL;
}

/* ---- lifecycle ---- */

static int setup(ss_h2 *h, const ss_h2_params *p) {
    h->p = *p;
    if (!h->p.max_connections) h->p.max_connections = 256;
    if (!h->p.max_streams_per_conn) h->p.max_streams_per_conn = 100;
    if (!h->p.max_message_bytes) h->p.max_message_bytes = 4u << 20;
    if (h->p.max_message_bytes > UINT32_MAX) h->p.max_message_bytes = UINT32_MAX;
    if (!h->p.max_call_buffer_bytes) h->p.max_call_buffer_bytes = 1u << 20;
    if (!h->p.max_conn_buffer_bytes) {
        uint64_t two = 2 * (h->p.max_message_bytes + 5);
        h->p.max_conn_buffer_bytes = two > (16u << 20) ? two : 16u << 20;
    }
    if (!h->p.idle_timeout_s) h->p.idle_timeout_s = 300;
    if (!h->p.stall_timeout_s) h->p.stall_timeout_s = 60;
    if (!h->p.max_resets_per_10s) h->p.max_resets_per_10s = 200;
    h->lfd = h->epfd = h->evfd = -1;
    h->next_scan_us = now_us() + 1000000;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    if (nghttp2_session_callbacks_new(&h->cbs) || nghttp2_option_new(&h->opt)) return -1;
    nghttp2_session_callbacks_set_on_begin_headers_callback(h->cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(h->cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(h->cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(h->cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(h->cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(h->cbs, on_stream_close);
    nghttp2_option_set_no_auto_window_update(h->opt, 1);
    nghttp2_option_set_no_closed_streams(h->opt, 1);
    nghttp2_option_set_max_deflate_dynamic_table_size(h->opt, 4096);
    return 0;
}

static void teardown(ss_h2 *h) {
    while (h->ready) {
        ss_h2_call *c = h->ready;
        h->ready = c->ready_next;
        ss_h2_call_unref(c);
    }
    if (h->cbs) nghttp2_session_callbacks_del(h->cbs);
    if (h->opt) nghttp2_option_del(h->opt);
    if (h->lfd >= 0) close(h->lfd);
    if (h->epfd >= 0) close(h->epfd);
    if (h->evfd >= 0) close(h->evfd);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

int ss_h2_start(ss_h2 **out, const ss_h2_params *p, char *err, size_t errlen) {
    *out = NULL;
    ss_h2 *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "grpc: out of memory");
        return -1;
    }
    if (setup(h, p)) {
        snprintf(err, errlen, "grpc: out of memory");
        goto fail;
    }
    const char *bind_addr = p->bind ? p->bind : "127.0.0.1";
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(p->port)};
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(p->port)};
    int v6 = strchr(bind_addr, ':') != NULL;
    if ((v6 ? inet_pton(AF_INET6, bind_addr, &a6.sin6_addr)
            : inet_pton(AF_INET, bind_addr, &a4.sin_addr)) != 1) {
        snprintf(err, errlen, "grpc: bad bind address '%s'", bind_addr);
        goto fail;
    }
    h->lfd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (h->lfd < 0 || setsockopt(h->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        (v6 ? bind(h->lfd, (struct sockaddr *)&a6, sizeof a6)
            : bind(h->lfd, (struct sockaddr *)&a4, sizeof a4)) ||
        listen(h->lfd, 512)) {
        snprintf(err, errlen, "grpc: cannot listen on %s port %u: %s", bind_addr, (unsigned)p->port,
                 strerror(errno));
        goto fail;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(h->lfd, (struct sockaddr *)&ss, &sl);
    h->port =
        ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
    h->epfd = epoll_create1(EPOLL_CLOEXEC);
    h->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event el = {.events = EPOLLIN, .data.ptr = h}, ee = {.events = EPOLLIN};
    if (h->epfd < 0 || h->evfd < 0 || epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->lfd, &el) ||
        epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->evfd, &ee)) {
        snprintf(err, errlen, "grpc: epoll/eventfd: %s", strerror(errno));
        goto fail;
    }
    if (pthread_create(&h->thr, NULL, loop_main, h)) {
        snprintf(err, errlen, "grpc: cannot start the loop thread");
        goto fail;
    }
    h->thread_started = 1;
    *out = h;
    return 0;
fail:
    teardown(h);
    return -1;
}

uint16_t ss_h2_port(const ss_h2 *h) {
    return h->port;
}

void ss_h2_stop_accepting(ss_h2 *h) {
    if (!h || !h->thread_started) return;
    pthread_mutex_lock(&h->mu);
    h->stop_req = 1;
    wake(h);
    while (!h->stopped)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

void ss_h2_drain(ss_h2 *h, uint32_t timeout_ms) {
    if (!h || !h->thread_started) return;
    ss_h2_stop_accepting(h);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&h->mu);
    /* connections close by themselves once GOAWAY is out and their streams are done */
    while (h->nconns_pub && pthread_cond_timedwait(&h->cv, &h->mu, &dl) == 0) {
    }
    h->close_req = 1;
    wake(h);
    while (!h->closed_all)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

void ss_h2_free(ss_h2 *h) {
    if (!h) return;
    if (h->thread_started) {
        ss_h2_drain(h, 0);
        pthread_mutex_lock(&h->mu);
        h->quit = 1;
        wake(h);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->thr, NULL);
    }
    teardown(h);
}

void ss_h2_get_stats(const ss_h2 *h, ss_h2_stats *o) {
    ss_h2 *m = (ss_h2 *)(uintptr_t)h; /* atomics are read through a non-const pointer */
    o->connections_open = atomic_load_explicit(&m->st_conns_open, memory_order_relaxed);
    o->calls_open = atomic_load_explicit(&m->st_calls_open, memory_order_relaxed);
    o->connections_total = atomic_load_explicit(&m->st_conns_total, memory_order_relaxed);
    o->calls_total = atomic_load_explicit(&m->st_calls_total, memory_order_relaxed);
    o->calls_refused = atomic_load_explicit(&m->st_calls_refused, memory_order_relaxed);
    o->conn_errors = atomic_load_explicit(&m->st_conn_errors, memory_order_relaxed);
}

/* ---- a connection over memory (fuzzing) ---- */

struct ss_h2_mem {
    ss_h2 *h;
    conn *cn;
    uint64_t out;
    int dead;
};

ss_h2_mem *ss_h2_mem_new(const ss_h2_params *p) {
    ss_h2_mem *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->h = calloc(1, sizeof *m->h);
    if (!m->h || setup(m->h, p) || !(m->cn = conn_new(m->h, -1))) {
        if (m->h) teardown(m->h);
        free(m);
        return NULL;
    }
    m->h->conns = m->cn;
    if (conn_flush(m->cn)) m->dead = 1;
    return m;
}

int ss_h2_mem_feed(ss_h2_mem *m, const uint8_t *d, size_t n) {
    if (m->dead) return -1;
    if (conn_input(m->cn, d, n) || conn_flush(m->cn)) goto dead;
    run_ready(m->h);
    int64_t t = now_us();
    if (t >= m->h->next_scan_us) scan_timers(m->h, t);
    if (!m->h->conns) { /* scan_timers closed it */
        m->cn = NULL;
        m->dead = 1;
        return -1;
    }
    conn_settle(m->cn);
    if (conn_flush(m->cn)) goto dead;
    m->out = m->cn->mem_out;
    return 0;
dead:
    m->out = m->cn->mem_out;
    conn_close(m->cn);
    m->cn = NULL;
    m->dead = 1;
    return -1;
}

uint64_t ss_h2_mem_output_bytes(const ss_h2_mem *m) {
    return m->out;
}

void ss_h2_mem_free(ss_h2_mem *m) {
    if (!m) return;
    if (m->cn) conn_close(m->cn);
    run_ready(m->h); /* drops references queued by the last callbacks */
    teardown(m->h);
    free(m);
}
