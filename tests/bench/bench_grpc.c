/* bench_grpc: the load generator of tests/bench/bench_grpc.sh (`make bench-grpc`).
 *
 *   bench_grpc MODE --port P --duration S [--pid SERVER_PID] [options]
 *
 * Modes (127.0.0.1 only; each measures for --duration seconds, then drains):
 *   unary      gRPC Step calls on libnghttp2's client side: --threads T, --conns C per
 *              thread, --streams N calls in flight per connection; the session ids of
 *              --ids FILE round-robin, the batches of --bodies FILE (hex protobuf SpikeBatch,
 *              one a line), each sent with session_id (field 6) appended. With --oip:
 *              inference.GRPCInferenceService/ModelInfer calls instead, the bodies hex
 *              ModelInferRequests (bench_oip_prep.py) and the ids sequence numbers, each
 *              sent with the parameters entry sequence_id (int64_param) appended.
 *   stream     one StreamSteps call on session --session ID (metadata spikeserve-session-id)
 *              with the batches of --bodies (hex protobuf), pipelined: at most --window W
 *              unanswered; --rate R paces the batches at R a second (0: as fast as the
 *              window allows).
 *   keepalive  one HTTP/1.1 keep-alive connection POSTing /v1/sessions/ID/steps back to
 *              back (--bodies hex protobuf with --pb, else NDJSON lines); --rate R paces.
 *   sse        GET /v1/sessions/ID/events on one connection, and one chunked NDJSON upload to
 *              /v1/sessions/ID/stream on another (--bodies NDJSON), at most --window W lines
 *              whose `step` event has not come back; --rate R paces.
 * Latency is from a batch's scheduled send time (its actual send time when not paced) to
 * its answer (gRPC message, HTTP answer, or `step` event). Prints one line
 *   RESULT mode=M batches=N seconds=S rate=R p50_ms=A p99_ms=B errors=E server_cpu_s=C
 *          cpu_us_per_batch=U client_cpu_s=K send_late_p99_ms=L
 * counting the answers that arrived within the measured window and the server's CPU time
 * (utime + stime of /proc/PID/stat) over the same window; send_late: paced modes, how late
 * the generator itself handed batches to the socket (p99; a busy machine delays it too). Exits 1
 * when something could not run (connection refused, a server error on the first answers); never on
 * a timing.
 */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api.pb-c.h"

#define MSG_MAX 16384 /* one request message, prefix included */
#define ID_MAX 128    /* a session id */
#define IO_CAP 65536  /* one read */
#define DRAIN_S 10.0  /* waiting for the answers still due after the window */
#define MAX_BODIES 100000

typedef struct {
    uint8_t *p;
    size_t n;
} blob;

typedef struct {
    double *v;
    size_t n, cap;
} series;

/* ---- options ---- */
static struct {
    const char *mode, *ids_file, *bodies_file, *session;
    uint16_t port;
    double duration, rate;
    int pid, threads, conns, streams, window, pb, oip;
} opt = {.duration = 10, .threads = 2, .conns = 1, .streams = 32, .window = 64};

static blob *bodies;
static size_t n_bodies;
static char (*ids)[ID_MAX];
static size_t n_ids;
static char authority[64];

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_grpc: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void series_add(series *s, double x) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        double *v = realloc(s->v, cap * sizeof *v);
        if (!v) die("out of memory");
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(series *s, double q) {
    if (!s->n) return 0;
    qsort(s->v, s->n, sizeof *s->v, cmp_double);
    size_t k = (size_t)(q * (double)(s->n - 1) + 0.5);
    return s->v[k < s->n ? k : s->n - 1];
}

/* utime + stime of a process in seconds, or -1 */
static double proc_cpu_s(int pid) {
    if (pid <= 0) return -1;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    unsigned long long ut = 0, st = 0;
    /* after ") ": state (field 3) ... utime (14), stime (15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

/* ---- inputs ---- */
static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* one line per body: hex decoded when hex, else the line itself (no newline) */
static void load_bodies(const char *path, int hex) {
    FILE *f = fopen(path, "r");
    if (!f) die("cannot open %s", path);
    bodies = calloc(MAX_BODIES, sizeof *bodies);
    if (!bodies) die("out of memory");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while (n_bodies < MAX_BODIES && (len = getline(&line, &cap, f)) > 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (!len) continue;
        blob *b = &bodies[n_bodies];
        if (hex) {
            if (len % 2) die("%s line %zu: odd hex length", path, n_bodies + 1);
            b->n = (size_t)len / 2;
            b->p = malloc(b->n ? b->n : 1);
            if (!b->p) die("out of memory");
            for (size_t i = 0; i < b->n; i++) {
                int hi = hexval(line[2 * i]), lo = hexval(line[2 * i + 1]);
                if (hi < 0 || lo < 0) die("%s line %zu: not hex", path, n_bodies + 1);
                b->p[i] = (uint8_t)(hi << 4 | lo);
            }
        } else {
            b->n = (size_t)len;
            b->p = (uint8_t *)strdup(line);
            if (!b->p) die("out of memory");
        }
        if (b->n + 5 + 2 + ID_MAX + 64 > MSG_MAX) die("%s line %zu: too long", path, n_bodies + 1);
        n_bodies++;
    }
    free(line);
    fclose(f);
    if (!n_bodies) die("%s: no bodies", path);
}

static void load_ids(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) die("cannot open %s", path);
    size_t cap = 1024;
    ids = malloc(cap * sizeof *ids);
    if (!ids) die("out of memory");
    char line[ID_MAX + 2];
    line[0] = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0]) continue;
        if (n_ids == cap) {
            cap *= 2;
            void *p = realloc(ids, cap * sizeof *ids);
            if (!p) die("out of memory");
            ids = p;
        }
        if (strlen(line) >= ID_MAX) die("%s: a session id longer than %d bytes", path, ID_MAX - 1);
        memcpy(ids[n_ids++], line, strlen(line) + 1);
    }
    fclose(f);
    if (!n_ids) die("%s: no session ids", path);
}

/* ---- sockets ---- */
static int connect_local(int nonblock) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket: %s", strerror(errno));
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(opt.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        die("connect 127.0.0.1:%u: %s", (unsigned)opt.port, strerror(errno));
    if (nonblock) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void send_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && (errno == EINTR || errno == EAGAIN)) {
            struct pollfd pf = {fd, POLLOUT, 0};
            poll(&pf, 1, 1000);
            continue;
        }
        if (w <= 0) die("send: %s", w < 0 ? strerror(errno) : "closed");
        c += w;
        n -= (size_t)w;
    }
}

/* sleep until the monotonic time t (seconds) */
static void sleep_until(double t) {
    double d = t - now_s();
    if (d <= 0) return;
    struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- gRPC over nghttp2 ---- */
static size_t put_varint(uint8_t *p, uint64_t v) {
    size_t n = 0;
    do {
        p[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

/* gRPC frame of body b with SpikeBatch.session_id (field 6) appended when id is set; with
 * --oip the ModelInferRequest.parameters entry (field 4) {"sequence_id": int64_param id} */
static size_t grpc_frame(uint8_t *out, const blob *b, const char *id) {
    size_t n = 5;
    memcpy(out + n, b->p, b->n);
    n += b->n;
    if (id && opt.oip) {
        uint8_t v[16], e[48];
        size_t nv = 0, ne = 0;
        v[nv++] = 2 << 3; /* InferParameter.int64_param */
        nv += put_varint(v + nv, strtoull(id, NULL, 10));
        e[ne++] = 1 << 3 | 2; /* key */
        e[ne++] = 11;
        memcpy(e + ne, "sequence_id", 11);
        ne += 11;
        e[ne++] = 2 << 3 | 2; /* value */
        e[ne++] = (uint8_t)nv;
        memcpy(e + ne, v, nv);
        ne += nv;
        out[n++] = 4 << 3 | 2;
        n += put_varint(out + n, ne);
        memcpy(out + n, e, ne);
        n += ne;
    } else if (id) {
        size_t l = strlen(id);
        out[n++] = 6 << 3 | 2;
        n += put_varint(out + n, l);
        memcpy(out + n, id, l);
        n += l;
    }
    uint32_t m = (uint32_t)(n - 5);
    out[0] = 0;
    out[1] = (uint8_t)(m >> 24);
    out[2] = (uint8_t)(m >> 16);
    out[3] = (uint8_t)(m >> 8);
    out[4] = (uint8_t)m;
    return n;
}

#define NV(n, v)                                                                                   \
    { (uint8_t *)(n), (uint8_t *)(uintptr_t)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE }

struct h2conn;

typedef struct { /* one unary Step call */
    struct h2conn *c;
    double t0;
    int status, have_status, http_ok, eos_sent;
    size_t len, off;
    uint8_t buf[MSG_MAX];
} ucall;

typedef struct h2conn {
    int fd, dead;
    nghttp2_session *s;
    struct worker *w;
    int inflight;
    /* stream mode: the one call */
    int32_t sid;
    uint8_t *out;
    size_t out_len, out_off, out_cap;
    int out_eof, closed, grpc_status, have_status;
    uint64_t rst_in;      /* RST_STREAM frames received */
    int32_t last_rst_sid; /* the stream of the last one */
    uint8_t *in;
    size_t in_len, in_cap;
} h2conn;

typedef struct worker {
    pthread_t th;
    int idx;
    h2conn *conns;
    uint64_t n; /* calls submitted */
    uint64_t ok, err, answered_in_window;
    uint64_t sent, answered; /* stream mode */
    series lat, sched;
    double t_begin, t_end;
    char first_err[256];
} worker;

static series late; /* paced modes: how late the client sent each batch */
static pthread_barrier_t start_barrier;
static double g_t_begin, g_t_end;

static ssize_t h2_send_cb(nghttp2_session *s, const uint8_t *data, size_t len, int flags,
                          void *ud) {
    (void)s;
    (void)flags;
    h2conn *c = ud;
    ssize_t w = send(c->fd, data, len, MSG_NOSIGNAL);
    if (w < 0)
        return errno == EAGAIN || errno == EINTR ? NGHTTP2_ERR_WOULDBLOCK
                                                 : NGHTTP2_ERR_CALLBACK_FAILURE;
    return w;
}

static void note_err(worker *w, const char *fmt, ...) {
    w->err++;
    if (w->first_err[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->first_err, sizeof w->first_err, fmt, ap);
    va_end(ap);
}

static int h2_header_cb(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                        size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                        void *ud) {
    (void)flags;
    h2conn *c = ud;
    if (f->hd.type != NGHTTP2_HEADERS) return 0;
    int st = -1;
    if (namelen == 11 && !memcmp(name, "grpc-status", 11)) st = atoi((const char *)value);
    if (opt.mode[0] == 'u') {
        ucall *u = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
        if (!u) return 0;
        if (st >= 0) u->status = st, u->have_status = 1;
        if (namelen == 7 && !memcmp(name, ":status", 7))
            u->http_ok = valuelen == 3 && !memcmp(value, "200", 3);
    } else if (st >= 0) {
        c->grpc_status = st;
        c->have_status = 1;
    }
    if (namelen == 12 && !memcmp(name, "grpc-message", 12) && c->w && !c->w->first_err[0])
        snprintf(c->w->first_err, sizeof c->w->first_err, "grpc-message %.*s", (int)valuelen,
                 (const char *)value);
    return 0;
}

static int h2_frame_cb(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
    (void)s;
    h2conn *c = ud;
    if (f->hd.type == NGHTTP2_RST_STREAM) {
        c->rst_in++;
        c->last_rst_sid = f->hd.stream_id;
    }
    return 0;
}

static int h2_frame_send_cb(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
    (void)ud;
    if (opt.mode[0] != 'u' || !(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
    ucall *u = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (u) u->eos_sent = 1;
    return 0;
}

static int h2_close_cb(nghttp2_session *s, int32_t id, uint32_t code, void *ud) {
    h2conn *c = ud;
    worker *w = c->w;
    if (opt.mode[0] != 'u') {
        if (id == c->sid) c->closed = 1;
        if (code) note_err(w, "stream reset, HTTP/2 error %u", code);
        return 0;
    }
    ucall *u = nghttp2_session_get_stream_user_data(s, id);
    if (!u) return 0;
    double t = now_s();
    if (u->have_status && u->status == 0 && u->http_ok && !code) {
        w->ok++;
        if (t >= w->t_begin && t <= w->t_end) {
            w->answered_in_window++;
            series_add(&w->lat, t - u->t0);
        }
    } else {
        note_err(w,
                 "Step: grpc-status %d, HTTP/2 error %u (%s), %.3f s into the run, %.3f s after it "
                 "was sent, :status %s, request %zu of %zu bytes given to nghttp2, END_STREAM %s",
                 u->have_status ? u->status : -1, code,
                 c->last_rst_sid == id ? "RST_STREAM from the server" : "not reset by the server",
                 t - w->t_begin, t - u->t0, u->http_ok ? "200" : "not 200 or none", u->off, u->len,
                 u->eos_sent ? "sent" : "not sent");
    }
    c->inflight--;
    free(u);
    return 0;
}

static ssize_t unary_read_cb(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                             uint32_t *flags, nghttp2_data_source *src, void *ud) {
    (void)s;
    (void)id;
    (void)ud;
    ucall *u = src->ptr;
    size_t n = u->len - u->off;
    if (n > len) n = len;
    memcpy(buf, u->buf + u->off, n);
    u->off += n;
    if (u->off == u->len) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* stream mode: answers (gRPC messages, in order) */
static void stream_message(h2conn *c, const uint8_t *m, size_t n) {
    worker *w = c->w;
    double t = now_s();
    Spikeserve__StepResult *r = spikeserve__step_result__unpack(NULL, n, m);
    if (!r)
        note_err(w, "StreamSteps: an answer that is no StepResult");
    else if (r->has_status && r->status != 0 && r->status != 200)
        note_err(w, "StreamSteps: batch refused, status %u: %s", r->status,
                 r->error && r->error->message ? r->error->message : "");
    else
        w->ok++;
    if (r) spikeserve__step_result__free_unpacked(r, NULL);
    if (w->answered < w->sched.n && t >= w->t_begin && t <= w->t_end) {
        w->answered_in_window++;
        series_add(&w->lat, t - w->sched.v[w->answered]);
    }
    w->answered++;
}

static int h2_data_cb(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
                      size_t len, void *ud) {
    (void)s;
    (void)flags;
    h2conn *c = ud;
    if (opt.mode[0] == 'u' || id != c->sid) return 0;
    if (c->in_len + len > c->in_cap) {
        size_t cap = (c->in_len + len) * 2;
        uint8_t *p = realloc(c->in, cap);
        if (!p) die("out of memory");
        c->in = p;
        c->in_cap = cap;
    }
    memcpy(c->in + c->in_len, data, len);
    c->in_len += len;
    size_t off = 0;
    while (c->in_len - off >= 5) {
        const uint8_t *h = c->in + off;
        size_t m = (size_t)h[1] << 24 | (size_t)h[2] << 16 | (size_t)h[3] << 8 | h[4];
        if (c->in_len - off < 5 + m) break;
        if (h[0] != 0) note_err(c->w, "compressed answer (flag %u)", h[0]);
        stream_message(c, h + 5, m);
        off += 5 + m;
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    return 0;
}

static ssize_t stream_read_cb(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                              uint32_t *flags, nghttp2_data_source *src, void *ud) {
    (void)s;
    (void)id;
    (void)ud;
    h2conn *c = src->ptr;
    size_t n = c->out_len - c->out_off;
    if (!n) {
        if (c->out_eof) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            return 0;
        }
        return NGHTTP2_ERR_DEFERRED;
    }
    if (n > len) n = len;
    memcpy(buf, c->out + c->out_off, n);
    c->out_off += n;
    if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
    return (ssize_t)n;
}

static void h2_open(h2conn *c, worker *w) {
    memset(c, 0, sizeof *c);
    c->w = w;
    c->fd = connect_local(1);
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb)) die("nghttp2_session_callbacks_new");
    nghttp2_session_callbacks_set_send_callback(cb, h2_send_cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, h2_header_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2_close_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, h2_data_cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, h2_frame_cb);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, h2_frame_send_cb);
    if (nghttp2_session_client_new(&c->s, cb, c)) die("nghttp2_session_client_new");
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
                                   {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
    nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, iv, 2);
    nghttp2_session_set_local_window_size(c->s, NGHTTP2_FLAG_NONE, 0, 1 << 24);
}

/* one pass of I/O over a worker's connections; waits at most timeout_s */
static void h2_io(worker *w, int nconns, double timeout_s) {
    struct pollfd pf[64];
    for (int i = 0; i < nconns; i++) {
        h2conn *c = &w->conns[i];
        if (!c->dead && nghttp2_session_send(c->s)) c->dead = 1;
        pf[i].fd = c->dead ? -1 : c->fd;
        pf[i].events = POLLIN | (nghttp2_session_want_write(c->s) ? POLLOUT : 0);
        pf[i].revents = 0;
    }
    if (timeout_s < 0) timeout_s = 0;
    struct timespec ts = {(time_t)timeout_s, (long)((timeout_s - (double)(time_t)timeout_s) * 1e9)};
    if (ppoll(pf, (nfds_t)nconns, &ts, NULL) < 0 && errno != EINTR)
        die("poll: %s", strerror(errno));
    static __thread uint8_t buf[IO_CAP];
    for (int i = 0; i < nconns; i++) {
        h2conn *c = &w->conns[i];
        if (c->dead || !(pf[i].revents & (POLLIN | POLLERR | POLLHUP))) continue;
        for (;;) {
            ssize_t r = recv(c->fd, buf, sizeof buf, 0);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) break;
            if (r <= 0) {
                note_err(w, "connection closed by the server");
                c->dead = 1;
                break;
            }
            ssize_t k = nghttp2_session_mem_recv(c->s, buf, (size_t)r);
            if (k < 0) {
                note_err(w, "nghttp2: %s", nghttp2_strerror((int)k));
                c->dead = 1;
                break;
            }
        }
    }
}

static void unary_submit(h2conn *c) {
    worker *w = c->w;
    ucall *u = calloc(1, sizeof *u);
    if (!u) die("out of memory");
    uint64_t k = w->n++ + (uint64_t)w->idx * 7919;
    u->c = c;
    u->len = grpc_frame(u->buf, &bodies[k % n_bodies], ids[k % n_ids]);
    nghttp2_nv h[] = {NV(":method", "POST"),
                      NV(":scheme", "http"),
                      NV(":path", opt.oip ? "/inference.GRPCInferenceService/ModelInfer"
                                          : "/spikeserve.v1.Spikeserve/Step"),
                      NV(":authority", authority),
                      NV("content-type", "application/grpc"),
                      NV("te", "trailers")};
    nghttp2_data_provider dp = {.source.ptr = u, .read_callback = unary_read_cb};
    u->t0 = now_s();
    if (nghttp2_submit_request(c->s, NULL, h, sizeof h / sizeof h[0], &dp, u) < 0)
        die("nghttp2_submit_request failed");
    c->inflight++;
}

static void *unary_thread(void *arg) {
    worker *w = arg;
    w->conns = calloc((size_t)opt.conns, sizeof *w->conns);
    if (!w->conns) die("out of memory");
    for (int i = 0; i < opt.conns; i++)
        h2_open(&w->conns[i], w);
    pthread_barrier_wait(&start_barrier); /* the main thread sets the window */
    pthread_barrier_wait(&start_barrier);
    w->t_begin = g_t_begin;
    w->t_end = g_t_end;
    for (;;) {
        double t = now_s();
        int stopping = t >= w->t_end, busy = 0;
        for (int i = 0; i < opt.conns; i++) {
            h2conn *c = &w->conns[i];
            while (!stopping && !c->dead && c->inflight < opt.streams)
                unary_submit(c);
            if (!c->dead) busy += c->inflight;
        }
        if (stopping && (!busy || t > w->t_end + DRAIN_S)) break;
        h2_io(w, opt.conns, 0.05);
    }
    for (int i = 0; i < opt.conns; i++) {
        nghttp2_session_del(w->conns[i].s);
        close(w->conns[i].fd);
    }
    free(w->conns);
    return NULL;
}

/* ---- results ---- */
static void report(const char *mode, uint64_t n, double secs, series *lat, uint64_t errors,
                   double cpu0, double cpu1, double self0, const char *err) {
    double p50 = percentile(lat, 0.50) * 1e3, p99 = percentile(lat, 0.99) * 1e3;
    double late99 = percentile(&late, 0.99) * 1e3;
    double cpu = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;
    if (err && err[0]) fprintf(stderr, "bench_grpc %s: first error: %s\n", mode, err);
    printf("RESULT mode=%s batches=%llu seconds=%.3f rate=%.1f p50_ms=%.3f p99_ms=%.3f "
           "errors=%llu server_cpu_s=%.3f cpu_us_per_batch=%.1f client_cpu_s=%.3f "
           "send_late_p99_ms=%.3f\n",
           mode, (unsigned long long)n, secs, secs > 0 ? (double)n / secs : 0, p50, p99,
           (unsigned long long)errors, cpu, cpu >= 0 && n ? cpu * 1e6 / (double)n : -1,
           self_cpu_s() - self0, late99);
    fflush(stdout);
}

static int run_unary(void) {
    if (opt.threads < 1 || opt.threads > 16 || opt.conns < 1 || opt.conns > 64 || opt.streams < 1 ||
        opt.streams > 100)
        die("--threads 1..16, --conns 1..64, --streams 1..100");
    worker *w = calloc((size_t)opt.threads, sizeof *w);
    if (!w) die("out of memory");
    pthread_barrier_init(&start_barrier, NULL, (unsigned)opt.threads + 1);
    double self0 = self_cpu_s();
    for (int i = 0; i < opt.threads; i++) {
        w[i].idx = i;
        if (pthread_create(&w[i].th, NULL, unary_thread, &w[i])) die("pthread_create");
    }
    pthread_barrier_wait(&start_barrier);
    g_t_begin = now_s();
    g_t_end = g_t_begin + opt.duration;
    double cpu0 = proc_cpu_s(opt.pid);
    pthread_barrier_wait(&start_barrier);
    sleep_until(g_t_end);
    double cpu1 = proc_cpu_s(opt.pid);
    series all = {0};
    uint64_t n = 0, err = 0;
    const char *first = NULL;
    for (int i = 0; i < opt.threads; i++) {
        pthread_join(w[i].th, NULL);
        n += w[i].answered_in_window;
        err += w[i].err;
        for (size_t k = 0; k < w[i].lat.n; k++)
            series_add(&all, w[i].lat.v[k]);
        if (!first && w[i].first_err[0]) first = w[i].first_err;
    }
    report("unary", n, opt.duration, &all, err, cpu0, cpu1, self0, first);
    return n ? 0 : 1;
}

static int run_stream(void) {
    worker w;
    memset(&w, 0, sizeof w);
    h2conn c;
    w.conns = &c;
    h2_open(&c, &w);
    c.out_cap = (size_t)opt.window * MSG_MAX;
    c.out = malloc(c.out_cap);
    if (!c.out) die("out of memory");
    nghttp2_nv h[] = {NV(":method", "POST"),
                      NV(":scheme", "http"),
                      NV(":path", "/spikeserve.v1.Spikeserve/StreamSteps"),
                      NV(":authority", authority),
                      NV("content-type", "application/grpc"),
                      NV("te", "trailers"),
                      NV("spikeserve-session-id", opt.session)};
    nghttp2_data_provider dp = {.source.ptr = &c, .read_callback = stream_read_cb};
    c.sid = nghttp2_submit_request(c.s, NULL, h, sizeof h / sizeof h[0], &dp, &c);
    if (c.sid < 0) die("nghttp2_submit_request failed");
    double self0 = self_cpu_s();
    w.t_begin = now_s();
    w.t_end = w.t_begin + opt.duration;
    double cpu0 = proc_cpu_s(opt.pid), cpu1 = -1;
    for (;;) {
        double t = now_s();
        if (t >= w.t_end && cpu1 < 0) cpu1 = proc_cpu_s(opt.pid);
        if (c.dead || c.closed) break;
        if (t >= w.t_end) {
            if (w.answered >= w.sent || t > w.t_end + DRAIN_S) {
                if (!c.out_eof) {
                    c.out_eof = 1;
                    nghttp2_session_resume_data(c.s, c.sid);
                } else if (t > w.t_end + DRAIN_S + 5) {
                    break;
                }
            }
        } else {
            int added = 0;
            while (w.sent - w.answered < (uint64_t)opt.window) {
                double due = opt.rate > 0 ? w.t_begin + (double)w.sent / opt.rate : t;
                if (due > t || due >= w.t_end) break;
                size_t need = c.out_len + MSG_MAX;
                if (need > c.out_cap) break;
                c.out_len += grpc_frame(c.out + c.out_len, &bodies[w.sent % n_bodies], NULL);
                series_add(&w.sched, opt.rate > 0 ? due : now_s());
                if (opt.rate > 0) series_add(&late, now_s() - due);
                w.sent++;
                added = 1;
            }
            if (added) nghttp2_session_resume_data(c.s, c.sid);
        }
        double wait = 0.05;
        if (opt.rate > 0 && t < w.t_end) {
            double due = w.t_begin + (double)w.sent / opt.rate - now_s();
            if (due < wait) wait = due;
        }
        h2_io(&w, 1, wait);
    }
    if (cpu1 < 0) cpu1 = proc_cpu_s(opt.pid);
    if (!c.have_status)
        note_err(&w, "StreamSteps ended without grpc-status");
    else if (c.grpc_status)
        note_err(&w, "StreamSteps ended with grpc-status %d", c.grpc_status);
    if (w.answered < w.sent)
        note_err(&w, "%llu batches sent, %llu answered", (unsigned long long)w.sent,
                 (unsigned long long)w.answered);
    report(opt.rate > 0 ? "stream-paced" : "stream", w.answered_in_window, opt.duration, &w.lat,
           w.err, cpu0, cpu1, self0, w.first_err);
    nghttp2_session_del(c.s);
    close(c.fd);
    return w.answered_in_window ? 0 : 1;
}

/* ---- HTTP/1.1 ---- */
/* read one answer with Content-Length from a blocking socket; returns the status */
static int http_read_answer(int fd, char *buf, size_t cap, size_t *have) {
    for (;;) {
        buf[*have] = 0;
        char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            int status = 0;
            sscanf(buf, "HTTP/1.%*c %d", &status);
            char *cl = strcasestr(buf, "\r\ncontent-length:");
            if (!cl || cl > end) die("an answer without Content-Length (status %d)", status);
            size_t len = strtoul(cl + 17, NULL, 10);
            size_t total = (size_t)(end + 4 - buf) + len;
            if (total > cap) die("answer too long");
            while (*have < total) {
                ssize_t r = recv(fd, buf + *have, cap - *have, 0);
                if (r <= 0) die("keep-alive connection closed");
                *have += (size_t)r;
            }
            memmove(buf, buf + total, *have - total);
            *have -= total;
            return status;
        }
        if (*have >= cap) die("answer headers too long");
        ssize_t r = recv(fd, buf + *have, cap - *have, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die("keep-alive connection closed: %s", r < 0 ? strerror(errno) : "EOF");
        *have += (size_t)r;
    }
}

static int run_keepalive(void) {
    int fd = connect_local(0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    static char req[MSG_MAX + 1024], buf[IO_CAP + 1];
    size_t have = 0;
    series lat = {0};
    uint64_t sent = 0, n = 0, err = 0;
    char first[256] = "";
    double self0 = self_cpu_s(), t_begin = now_s(), t_end = t_begin + opt.duration;
    double cpu0 = proc_cpu_s(opt.pid);
    for (;;) {
        double due = opt.rate > 0 ? t_begin + (double)sent / opt.rate : now_s();
        if (due >= t_end) break;
        sleep_until(due);
        if (opt.rate > 0) series_add(&late, now_s() - due);
        const blob *b = &bodies[sent % n_bodies];
        const char *ct = opt.pb ? "application/x-protobuf" : "application/json";
        int hl = snprintf(req, sizeof req,
                          "POST /v1/sessions/%s/steps HTTP/1.1\r\nHost: %s\r\n"
                          "Content-Type: %s\r\nAccept: %s\r\nContent-Length: %zu\r\n\r\n",
                          opt.session, authority, ct, ct, b->n);
        memcpy(req + hl, b->p, b->n);
        send_all(fd, req, (size_t)hl + b->n);
        sent++;
        int st = http_read_answer(fd, buf, IO_CAP, &have);
        double t = now_s();
        if (st != 200) {
            if (!err++) snprintf(first, sizeof first, "/steps answered %d", st);
        } else if (t <= t_end) {
            n++;
            series_add(&lat, t - due);
        }
    }
    double cpu1 = proc_cpu_s(opt.pid);
    report(opt.rate > 0 ? "keepalive-paced" : "keepalive", n, opt.duration, &lat, err, cpu0, cpu1,
           self0, first);
    close(fd);
    return n ? 0 : 1;
}

/* /events: chunked transfer decoding and SSE lines */
typedef struct {
    int chunked, state; /* 0 size line, 1 data, 2 CRLF after data */
    size_t left;
    char size_line[32];
    size_t size_len;
    char line[256]; /* only the start of a line matters */
    size_t line_len;
    int headers_done;
    char head[8192];
    size_t head_len;
    uint64_t steps, ends, comments;
} sse_reader;

static void sse_line(sse_reader *r) {
    r->line[r->line_len < sizeof r->line ? r->line_len : sizeof r->line - 1] = 0;
    if (!strcmp(r->line, "event: step"))
        r->steps++;
    else if (!strcmp(r->line, "event: end"))
        r->ends++;
    else if (r->line[0] == ':')
        r->comments++;
    r->line_len = 0;
}

static void sse_bytes(sse_reader *r, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            if (r->line_len && r->line[r->line_len - 1] == '\r') r->line_len--;
            sse_line(r);
        } else if (r->line_len < sizeof r->line - 1) {
            r->line[r->line_len++] = p[i];
        } else {
            r->line_len = sizeof r->line; /* long data line: keep it unmatched */
        }
    }
}

/* feeds the raw bytes of the /events answer */
static void sse_feed(sse_reader *r, const char *p, size_t n) {
    while (n && !r->headers_done) {
        if (r->head_len >= sizeof r->head - 1) die("/events: headers too long");
        r->head[r->head_len++] = *p++;
        n--;
        r->head[r->head_len] = 0;
        if (r->head_len >= 4 && !memcmp(r->head + r->head_len - 4, "\r\n\r\n", 4)) {
            int status = 0;
            sscanf(r->head, "HTTP/1.%*c %d", &status);
            if (status != 200) die("/events answered %d", status);
            r->chunked = strcasestr(r->head, "transfer-encoding: chunked") != NULL;
            r->headers_done = 1;
        }
    }
    if (!r->chunked) {
        sse_bytes(r, p, n);
        return;
    }
    while (n) {
        if (r->state == 0) {
            char ch = *p++;
            n--;
            if (ch == '\n') {
                r->size_line[r->size_len < sizeof r->size_line ? r->size_len : 0] = 0;
                r->left = strtoul(r->size_line, NULL, 16);
                r->size_len = 0;
                r->state = r->left ? 1 : 2;
            } else if (r->size_len < sizeof r->size_line - 1) {
                r->size_line[r->size_len++] = ch;
            }
        } else if (r->state == 1) {
            size_t k = n < r->left ? n : r->left;
            sse_bytes(r, p, k);
            p += k;
            n -= k;
            r->left -= k;
            if (!r->left) r->state = 2;
        } else {
            char ch = *p++;
            n--;
            if (ch == '\n') r->state = 0;
        }
    }
}

static int run_sse(void) {
    static char buf[IO_CAP];
    int ev = connect_local(0);
    char req[1024];
    int hl = snprintf(req, sizeof req,
                      "GET /v1/sessions/%s/events HTTP/1.1\r\nHost: %s\r\nAccept: "
                      "text/event-stream\r\n\r\n",
                      opt.session, authority);
    send_all(ev, req, (size_t)hl);
    sse_reader rd;
    memset(&rd, 0, sizeof rd);
    struct timeval tv = {10, 0};
    setsockopt(ev, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (!rd.comments) { /* subscribed once ": spikeserve events" has come */
        ssize_t r = recv(ev, buf, sizeof buf, 0);
        if (r <= 0) die("/events: no answer");
        sse_feed(&rd, buf, (size_t)r);
    }
    fcntl(ev, F_SETFL, fcntl(ev, F_GETFL) | O_NONBLOCK);
    int up = connect_local(1);
    hl = snprintf(req, sizeof req,
                  "POST /v1/sessions/%s/stream HTTP/1.1\r\nHost: %s\r\nContent-Type: "
                  "application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n",
                  opt.session, authority);
    size_t out_cap = (size_t)opt.window * (MSG_MAX + 32) + 1024;
    char *out = malloc(out_cap);
    if (!out) die("out of memory");
    memcpy(out, req, (size_t)hl);
    size_t out_len = (size_t)hl, out_off = 0;
    series lat = {0}, sched = {0};
    uint64_t sent = 0, n = 0, seen = 0;
    char upans[8192];
    size_t upans_len = 0;
    int finished = 0;
    double self0 = self_cpu_s(), t_begin = now_s(), t_end = t_begin + opt.duration, cpu1 = -1;
    double cpu0 = proc_cpu_s(opt.pid);
    for (;;) {
        double t = now_s();
        if (t >= t_end && cpu1 < 0) cpu1 = proc_cpu_s(opt.pid);
        if (t < t_end) {
            while (sent - rd.steps < (uint64_t)opt.window) {
                double due = opt.rate > 0 ? t_begin + (double)sent / opt.rate : t;
                if (due > t || due >= t_end) break;
                const blob *b = &bodies[sent % n_bodies];
                if (out_len + b->n + 32 > out_cap) break;
                out_len += (size_t)snprintf(out + out_len, 32, "%zx\r\n", b->n + 1);
                memcpy(out + out_len, b->p, b->n);
                out_len += b->n;
                memcpy(out + out_len, "\n\r\n", 3);
                out_len += 3;
                series_add(&sched, opt.rate > 0 ? due : now_s());
                if (opt.rate > 0) series_add(&late, now_s() - due);
                sent++;
            }
        } else if (!finished && (rd.steps >= sent || t > t_end + DRAIN_S)) {
            if (out_len + 5 > out_cap) die("upload buffer full at the end");
            memcpy(out + out_len, "0\r\n\r\n", 5);
            out_len += 5;
            finished = 1;
        }
        if (finished && (strstr(upans, "}") || t > t_end + DRAIN_S + 5)) break;
        struct pollfd pf[2] = {{ev, POLLIN, 0},
                               {up, POLLIN | (out_off < out_len ? POLLOUT : 0), 0}};
        double wait = 0.05;
        if (opt.rate > 0 && t < t_end) {
            double due = t_begin + (double)sent / opt.rate - now_s();
            if (due < wait) wait = due;
        }
        if (wait < 0) wait = 0;
        struct timespec ts = {0, (long)(wait * 1e9)};
        if (ppoll(pf, 2, &ts, NULL) < 0 && errno != EINTR) die("poll: %s", strerror(errno));
        if (out_off < out_len) {
            ssize_t w = send(up, out + out_off, out_len - out_off, MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN && errno != EINTR)
                die("/stream upload: %s", strerror(errno));
            if (w > 0) out_off += (size_t)w;
            if (out_off == out_len)
                out_off = out_len = 0;
            else if (out_off > out_cap / 2) {
                memmove(out, out + out_off, out_len - out_off);
                out_len -= out_off;
                out_off = 0;
            }
        }
        if (pf[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = recv(up, upans + upans_len, sizeof upans - 1 - upans_len, 0);
            if (r > 0) upans_len += (size_t)r;
            upans[upans_len] = 0;
            if (r == 0 && !finished) die("/stream closed early: %s", upans);
            if (r == 0) break;
        }
        for (;;) {
            ssize_t r = recv(ev, buf, sizeof buf, 0);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) break;
            if (r <= 0) die("/events closed (%llu step events)", (unsigned long long)rd.steps);
            sse_feed(&rd, buf, (size_t)r);
        }
        double ta = now_s();
        for (; seen < rd.steps && seen < sched.n; seen++) {
            if (ta <= t_end) {
                n++;
                series_add(&lat, ta - sched.v[seen]);
            }
        }
        if (rd.ends)
            die("/events ended (an `end` event) after %llu steps", (unsigned long long)rd.steps);
    }
    if (cpu1 < 0) cpu1 = proc_cpu_s(opt.pid);
    uint64_t err = 0;
    char first[512] = "";
    const char *f = strstr(upans, "\"failed\":");
    if (!f || !strstr(upans, " 200")) {
        err = 1;
        snprintf(first, sizeof first, "/stream answer: %.400s", upans);
    } else if ((err = strtoull(f + 9 + (f[9] == ' '), NULL, 10))) {
        snprintf(first, sizeof first, "/stream: %.400s", strstr(upans, "{"));
    }
    if (rd.steps < sent) {
        err++;
        snprintf(first, sizeof first, "%llu lines sent, %llu step events", (unsigned long long)sent,
                 (unsigned long long)rd.steps);
    }
    report(opt.rate > 0 ? "sse-paced" : "sse", n, opt.duration, &lat, err, cpu0, cpu1, self0,
           first);
    close(up);
    close(ev);
    return n ? 0 : 1;
}

static void usage(void) {
    fputs("usage: bench_grpc unary|stream|keepalive|sse --port P [--duration S] [--pid PID]\n"
          "  [--ids FILE] [--bodies FILE] [--session ID] [--rate R] [--window W] [--pb] [--oip]\n"
          "  [--threads T] [--conns C] [--streams N]\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    opt.mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--pb")) {
            opt.pb = 1;
            continue;
        }
        if (!strcmp(a, "--oip")) {
            opt.oip = 1;
            continue;
        }
        if (!v) usage();
        i++;
        if (!strcmp(a, "--port"))
            opt.port = (uint16_t)atoi(v);
        else if (!strcmp(a, "--duration"))
            opt.duration = atof(v);
        else if (!strcmp(a, "--pid"))
            opt.pid = atoi(v);
        else if (!strcmp(a, "--ids"))
            opt.ids_file = v;
        else if (!strcmp(a, "--bodies"))
            opt.bodies_file = v;
        else if (!strcmp(a, "--session"))
            opt.session = v;
        else if (!strcmp(a, "--rate"))
            opt.rate = atof(v);
        else if (!strcmp(a, "--window"))
            opt.window = atoi(v);
        else if (!strcmp(a, "--threads"))
            opt.threads = atoi(v);
        else if (!strcmp(a, "--conns"))
            opt.conns = atoi(v);
        else if (!strcmp(a, "--streams"))
            opt.streams = atoi(v);
        else
            usage();
    }
    if (!opt.port || !opt.bodies_file || opt.duration <= 0 || opt.duration > 3600) usage();
    if (opt.window < 1 || opt.window > 1024 || opt.rate < 0) die("--window 1..1024, --rate >= 0");
    snprintf(authority, sizeof authority, "127.0.0.1:%u", (unsigned)opt.port);
    signal(SIGPIPE, SIG_IGN);
    int is_unary = !strcmp(opt.mode, "unary"), is_stream = !strcmp(opt.mode, "stream");
    int is_ka = !strcmp(opt.mode, "keepalive"), is_sse = !strcmp(opt.mode, "sse");
    if (!is_unary && !is_stream && !is_ka && !is_sse) usage();
    load_bodies(opt.bodies_file, is_unary || is_stream || (is_ka && opt.pb));
    if (is_unary) {
        if (!opt.ids_file) usage();
        load_ids(opt.ids_file);
        return run_unary();
    }
    if (!opt.session || strlen(opt.session) >= ID_MAX || strpbrk(opt.session, " \r\n/?"))
        die("--session ID needed");
    if (is_stream) return run_stream();
    if (is_ka) return run_keepalive();
    return run_sse();
}
