/* test_sse.c: one Server-Sent Events subscriber (server/sse.h).
 *
 * The buffer alone: the capacity bound (a subscriber whose unread bytes would pass it is
 * dropped once, with `end` reason "slow_consumer"), comments counted against it too, `end`,
 * and what closed subscribers answer. Then through a real libmicrohttpd daemon on a
 * loopback port serving ss_sse_response() to a raw HTTP/1.0 client (no chunking: the body
 * is the event stream, the close ends it): the opening comment, events and comments in the
 * wire format, an event larger than the capacity once everything was read, `end` closing
 * the stream, and a consumer that falls behind getting every accepted event in order and
 * then `end` with reason "slow_consumer". */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../tap.h"
#include "sse.h"

static const char HELLO[] = ": spikeserve events\nretry: 1000\n\n";

/* ---- the buffer alone ---- */

static void test_buffer(void) {
    ss_sse *s = ss_sse_create(100); /* raised to the minimum, 4096 */
    ok(s && !ss_sse_closed(s) && !ss_sse_dropped(s), "create: open, not dropped");
    char data[1000];
    memset(data, 'd', sizeof data);
    /* unread: the opening comment (33 bytes) + n events of 1000 + 20 bytes of framing */
    int accepted = 0, rc = 0;
    while ((rc = ss_sse_event(s, "step", data, sizeof data)) == 0 && accepted < 100)
        accepted++;
    is_int(accepted, 3, "capacity 100 is raised to 4096: three 1020-byte events fit, not four");
    is_int(rc, -1, "the event past the capacity: -1");
    ok(ss_sse_dropped(s) && ss_sse_closed(s), "the subscriber is dropped and closed");
    is_int(ss_sse_event(s, "step", "{}", 2), -1, "events after that: -1");
    is_int(ss_sse_comment(s, "keep-alive"), -1, "comments after that: -1");
    ss_sse_end(s, "closed"); /* already closed: nothing changes */
    ok(ss_sse_dropped(s) && ss_sse_closed(s), "end after the drop: still dropped, closed");
    ss_sse_unref(s);
    ss_sse_unref(s);

    s = ss_sse_create(4096);
    int comments = 0;
    char text[500];
    memset(text, 'c', sizeof text - 1);
    text[sizeof text - 1] = 0;
    while (ss_sse_comment(s, text) == 0 && comments < 100)
        comments++;
    /* 33 + n * 503 <= 4096 */
    is_int(comments, 8, "comments count against the capacity too (8 of 503 bytes)");
    ok(ss_sse_dropped(s), "and a comment past it drops the subscriber");
    ss_sse_unref(s);
    ss_sse_unref(s);

    s = ss_sse_create(4096);
    is_int(ss_sse_event(s, "step", "{\"x\":1}", 7), 0, "an event");
    ss_sse_end(s, "closed");
    ok(ss_sse_closed(s) && !ss_sse_dropped(s), "end: closed, not dropped");
    is_int(ss_sse_event(s, "step", "{}", 2), -1, "an event after end: -1");
    ss_sse_unref(s);
    ss_sse_unref(s);

    /* one event larger than the capacity, with the opening comment still unread */
    s = ss_sse_create(4096);
    char *huge = malloc(10000);
    memset(huge, 'h', 10000);
    is_int(ss_sse_event(s, "step", huge, 10000), -1,
           "an event larger than the capacity, something unread: dropped");
    ok(ss_sse_dropped(s), "(dropped)");
    ss_sse_unref(s);
    ss_sse_unref(s);
    free(huge);
}

/* ---- through libmicrohttpd ---- */

static ss_sse *serving; /* the subscriber the next request streams */

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls) {
    (void)cls, (void)url, (void)method, (void)version, (void)upload, (void)upload_size;
    if (!*con_cls) {
        *con_cls = (void *)1;
        return MHD_YES;
    }
    struct MHD_Response *r = ss_sse_response(serving, conn); /* takes one reference */
    if (!r) return MHD_NO;
    enum MHD_Result rc = MHD_queue_response(conn, 200, r);
    MHD_destroy_response(r);
    return rc;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct {
    int fd, eof;
    char *buf;
    size_t len, cap;
} client;

static int client_open(client *c, unsigned port, int rcvbuf) {
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) return -1;
    if (rcvbuf) setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) return -1;
    const char req[] = "GET /events HTTP/1.0\r\n\r\n";
    return send(c->fd, req, sizeof req - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof req - 1) ? 0 : -1;
}

/* Read until needle occurs in what arrived (NULL: until EOF), or 20 s pass (a liveness
 * bound only). 1 when found (or EOF reached). */
static int client_wait(client *c, const char *needle) {
    int64_t end = now_ms() + 20000;
    for (;;) {
        if (c->buf && needle && strstr(c->buf, needle)) return 1;
        if (c->eof) return needle == NULL;
        int64_t left = end - now_ms();
        if (left <= 0) return 0;
        struct pollfd p = {c->fd, POLLIN, 0};
        if (poll(&p, 1, (int)left) <= 0) continue;
        if (c->len + 65536 + 1 > c->cap) {
            c->cap = (c->len + 65536 + 1) * 2;
            c->buf = realloc(c->buf, c->cap);
            if (!c->buf) exit(2);
        }
        ssize_t k = recv(c->fd, c->buf + c->len, 65536, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            c->eof = 1;
        } else {
            c->len += (size_t)k;
        }
        c->buf[c->len] = 0;
    }
}

static void client_close(client *c) {
    if (c->fd >= 0) close(c->fd);
    free(c->buf);
}

static const char *body_of(const client *c) {
    const char *b = c->buf ? strstr(c->buf, "\r\n\r\n") : NULL;
    return b ? b + 4 : "";
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void test_stream(unsigned port) {
    serving = ss_sse_create(4096);
    client c;
    ok(client_open(&c, port, 0) == 0, "a client connects");
    ok(client_wait(&c, HELLO), "it receives the opening comment");
    ok(!strncmp(c.buf, "HTTP/1.0 200", 12) || !strncmp(c.buf, "HTTP/1.1 200", 12), "status 200");
    ok(strstr(c.buf, "Content-Type: text/event-stream\r\n") != NULL,
       "Content-Type: text/event-stream");
    ok(strstr(c.buf, "Cache-Control: no-cache\r\n") != NULL, "Cache-Control: no-cache");
    ok(!strcmp(body_of(&c), HELLO), "the body starts with \": spikeserve events\" and retry");

    is_int(ss_sse_event(serving, "step", "{\"seq\":1}", 9), 0, "event accepted");
    ok(client_wait(&c, "event: step\ndata: {\"seq\":1}\n\n"),
       "delivered as \"event: step\\ndata: {...}\\n\\n\"");
    is_int(ss_sse_comment(serving, "keep-alive"), 0, "comment accepted");
    ok(client_wait(&c, ": keep-alive\n\n"), "delivered as \": keep-alive\\n\\n\"");

    /* everything was read: one event larger than the capacity still goes through */
    size_t hn = 10000;
    char *huge = malloc(hn + 1);
    memset(huge, 'h', hn);
    huge[hn] = 0;
    char *want = malloc(hn + 64);
    snprintf(want, hn + 64, "event: step\ndata: %s\n\n", huge);
    is_int(ss_sse_event(serving, "step", huge, hn), 0,
           "an event larger than the capacity, nothing unread: accepted");
    ok(client_wait(&c, want), "and delivered whole");
    free(want);
    free(huge);

    ss_sse_end(serving, "closed");
    ok(client_wait(&c, NULL), "after end the server closes the stream");
    const char *b = body_of(&c);
    const char *tail = "event: end\ndata: {\"reason\":\"closed\"}\n\n";
    ok(strlen(b) >= strlen(tail) && !strcmp(b + strlen(b) - strlen(tail), tail),
       "the stream's last bytes are the end event with the reason");
    is_int(count(b, "event: "), 3, "three events in all (step, step, end)");
    ok(ss_sse_closed(serving), "closed");
    ss_sse_unref(serving);
    client_close(&c);

    /* a consumer that does not keep up: a small receive buffer and nobody reading while
     * events are pushed as fast as possible */
    serving = ss_sse_create(4096);
    ok(client_open(&c, port, 4096) == 0 && client_wait(&c, HELLO), "a slow client connects");
    char data[600];
    int accepted = 0;
    for (int i = 0; i < 100000; i++) {
        int n = snprintf(data, sizeof data, "{\"i\":%d,\"pad\":\"%0500d\"}", i, 0);
        if (ss_sse_event(serving, "step", data, (size_t)n) != 0) break;
        accepted++;
    }
    ok(ss_sse_dropped(serving) && ss_sse_closed(serving),
       "it is dropped once its unread events pass the capacity (%d accepted)", accepted);
    ok(client_wait(&c, NULL), "its stream closes after what was buffered");
    b = body_of(&c);
    is_int(count(b, "event: step\n"), accepted, "every accepted event arrived");
    int in_order = 1;
    const char *p = b;
    for (int i = 0; i < accepted && in_order; i++) {
        char key[32];
        snprintf(key, sizeof key, "{\"i\":%d,", i);
        const char *q = strstr(p, key);
        if (!q)
            in_order = 0;
        else
            p = q + strlen(key);
    }
    ok(in_order, "in order");
    tail = "event: end\ndata: {\"reason\":\"slow_consumer\"}\n\n";
    ok(strlen(b) >= strlen(tail) && !strcmp(b + strlen(b) - strlen(tail), tail),
       "and last the end event with reason slow_consumer");
    ss_sse_unref(serving);
    client_close(&c);
}

/* Defects found by these tests (issue 11) and fixed: each check failed before its fix. */
static void fixed_defects(unsigned port) {
    /* sse.c ss_sse_event(): an event name that does not fit its 96-byte header buffer gets
     * -1 while the subscriber stays open; the header promises -1 only for a closed one, and
     * ss_sess_publish() then detaches the subscriber without ending it, so its stream stays
     * open with no more events and no `end` (names are the server's own, "step" today) */
    ss_sse *s = ss_sse_create(4096);
    char name[100];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = 0;
    int rc = ss_sse_event(s, name, "{}", 2);
    ok(rc == 0 || ss_sse_closed(s), "fixed: a 99-character event name: 0, or -1 and closed");
    ss_sse_unref(s);
    ss_sse_unref(s);

    /* sse.c end_locked(): the `end` event is appended only if unread + its size fits in
     * capacity + END_SLACK. After one event larger than the capacity was accepted (allowed
     * when nothing was unread), a drop finds more than that unread, so the stream closes
     * without the `end` event the header promises. Here: a 32 MB event the client does not
     * read (the kernel's buffers hold a few MB), then a small one drops the subscriber. */
    if (!port) return;
    serving = ss_sse_create(4096);
    client c;
    ok(client_open(&c, port, 4096) == 0 && client_wait(&c, HELLO), "a client reads the opening");
    size_t hn = (size_t)32 << 20;
    char *huge = malloc(hn);
    memset(huge, 'h', hn);
    ok(ss_sse_event(serving, "step", huge, hn) == 0, "a 32 MB event with nothing unread: accepted");
    free(huge);
    ok(ss_sse_event(serving, "step", "{}", 2) == -1 && ss_sse_dropped(serving),
       "the next one: dropped");
    client_wait(&c, NULL);
    const char *b = body_of(&c);
    const char *tail = "event: end\ndata: {\"reason\":\"slow_consumer\"}\n\n";
    ok(strlen(b) >= strlen(tail) && !strcmp(b + strlen(b) - strlen(tail), tail),
       "fixed: the stream ends with `end` (slow_consumer) after the big event");
    ss_sse_unref(serving);
    client_close(&c);
}

int main(void) {
    test_buffer();
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL,
        NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_END);
    const union MHD_DaemonInfo *info = d ? MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    unsigned port = 0;
    if (ok(d && info && info->port, "a libmicrohttpd daemon on loopback")) {
        port = info->port;
        test_stream(port);
    }
    fixed_defects(port);
    if (d) MHD_stop_daemon(d);
    return done_testing();
}
