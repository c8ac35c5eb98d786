/* bench_open: open many sessions on a spikeserve fast, for tests/bench/bench_server.sh.
 *
 *   bench_open PORT MODEL N IDS_FILE [CONNECTIONS]
 *
 * POSTs /v1/models/MODEL/sessions N times to 127.0.0.1:PORT over CONNECTIONS (default 4)
 * keep-alive HTTP/1.1 connections, one thread each, and writes the session ids, one per
 * line, to IDS_FILE ("-" for none). Prints "opened N sessions in S s (R/s)". Exits 1 on the
 * first answer that is not 201 (printing it), or when the server goes away. Loopback only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ID_MAX 128
#define BUF_CAP 65536

typedef struct {
    uint16_t port;
    const char *model;
    uint32_t first, count;
    char (*ids)[ID_MAX];
    int fd;
    char buf[BUF_CAP + 1]; /* + 1: room for a NUL after the bytes read */
    size_t have;
    int failed;
} conn;

static int connect_local(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {30, 0}; /* a stuck server ends the benchmark, not hangs it */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read until buf holds at least `need` bytes. */
static int fill(conn *c, size_t need) {
    while (c->have < need) {
        if (need > BUF_CAP)
            return -1;
        ssize_t r = recv(c->fd, c->buf + c->have, BUF_CAP - c->have, 0);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            return -1;
        }
        c->have += (size_t)r;
    }
    return 0;
}

/* One response: status, body copied into body (NUL-terminated, truncated to cap), and
 * whether the server will close. Handles Content-Length and chunked bodies. */
static int read_response(conn *c, int *status, char *body, size_t cap, int *closing) {
    char *end;
    for (;;) {
        c->buf[c->have] = 0;
        if ((end = strstr(c->buf, "\r\n\r\n")))
            break;
        if (fill(c, c->have + 1) != 0)
            return -1;
    }
    size_t hlen = (size_t)(end - c->buf) + 4;
    *status = atoi(c->buf + 9);
    long clen = -1;
    int chunked = 0;
    *closing = 0;
    for (char *line = strstr(c->buf, "\r\n") + 2; line < end; line = strstr(line, "\r\n") + 2) {
        if (!strncasecmp(line, "content-length:", 15))
            clen = strtol(line + 15, NULL, 10);
        else if (!strncasecmp(line, "transfer-encoding:", 18) && strstr(line, "chunked"))
            chunked = 1;
        else if (!strncasecmp(line, "connection:", 11)) {
            const char *v = line + 11;
            while (*v == ' ')
                v++;
            *closing = !strncasecmp(v, "close", 5);
        }
    }
    memmove(c->buf, c->buf + hlen, c->have - hlen);
    c->have -= hlen;
    size_t out = 0;
    if (chunked) {
        for (;;) {
            char *nl;
            for (;;) {
                c->buf[c->have] = 0;
                if ((nl = strstr(c->buf, "\r\n")))
                    break;
                if (fill(c, c->have + 1) != 0)
                    return -1;
            }
            size_t n = strtoul(c->buf, NULL, 16), skip = (size_t)(nl - c->buf) + 2;
            if (fill(c, skip + n + 2) != 0)
                return -1;
            for (size_t k = 0; k < n && out + 1 < cap; k++)
                body[out++] = c->buf[skip + k];
            memmove(c->buf, c->buf + skip + n + 2, c->have - (skip + n + 2));
            c->have -= skip + n + 2;
            if (n == 0)
                break;
        }
    } else if (clen >= 0) {
        if (fill(c, (size_t)clen) != 0)
            return -1;
        for (size_t k = 0; k < (size_t)clen && out + 1 < cap; k++)
            body[out++] = c->buf[k];
        memmove(c->buf, c->buf + clen, c->have - (size_t)clen);
        c->have -= (size_t)clen;
    }
    body[out] = 0;
    return 0;
}

static void *run(void *arg) {
    conn *c = arg;
    char req[512], body[4096];
    int n = snprintf(req, sizeof req,
                     "POST /v1/models/%s/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
                     c->model);
    c->fd = -1;
    for (uint32_t k = 0; k < c->count; k++) {
        if (c->fd < 0) {
            c->have = 0;
            if ((c->fd = connect_local(c->port)) < 0) {
                fprintf(stderr, "bench_open: connect 127.0.0.1:%u: %s\n", c->port,
                        strerror(errno));
                c->failed = 1;
                return NULL;
            }
        }
        int status = 0, closing = 0;
        if (send_all(c->fd, req, (size_t)n) != 0 ||
            read_response(c, &status, body, sizeof body, &closing) != 0) {
            fprintf(stderr, "bench_open: session %u: connection lost\n", c->first + k);
            c->failed = 1;
            return NULL;
        }
        if (status != 201) {
            fprintf(stderr, "bench_open: session %u: HTTP %d: %s\n", c->first + k, status, body);
            c->failed = 1;
            return NULL;
        }
        char *p = strstr(body, "\"session_id\"");
        p = p ? strchr(p + 12, '"') : NULL;
        char *q = p ? strchr(p + 1, '"') : NULL;
        if (!p || !q || q - p - 1 >= ID_MAX) {
            fprintf(stderr, "bench_open: no session_id in: %s\n", body);
            c->failed = 1;
            return NULL;
        }
        memcpy(c->ids[c->first + k], p + 1, (size_t)(q - p - 1));
        c->ids[c->first + k][q - p - 1] = 0;
        if (closing) {
            close(c->fd);
            c->fd = -1;
        }
    }
    if (c->fd >= 0)
        close(c->fd);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: bench_open PORT MODEL N IDS_FILE [CONNECTIONS]\n");
        return 2;
    }
    uint16_t port = (uint16_t)atoi(argv[1]);
    uint32_t total = (uint32_t)strtoul(argv[3], NULL, 10);
    uint32_t nconn = argc > 5 ? (uint32_t)atoi(argv[5]) : 4;
    if (nconn < 1)
        nconn = 1;
    char(*ids)[ID_MAX] = calloc(total ? total : 1, ID_MAX);
    conn *c = calloc(nconn, sizeof *c);
    pthread_t *tid = calloc(nconn, sizeof *tid);
    if (!ids || !c || !tid) {
        fprintf(stderr, "bench_open: out of memory\n");
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint32_t k = 0; k < nconn; k++) {
        c[k].port = port;
        c[k].model = argv[2];
        c[k].first = (uint32_t)((uint64_t)total * k / nconn);
        c[k].count = (uint32_t)((uint64_t)total * (k + 1) / nconn) - c[k].first;
        c[k].ids = ids;
        pthread_create(&tid[k], NULL, run, &c[k]);
    }
    int failed = 0;
    for (uint32_t k = 0; k < nconn; k++) {
        pthread_join(tid[k], NULL);
        failed |= c[k].failed;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    if (failed)
        return 1;
    if (strcmp(argv[4], "-") != 0) {
        FILE *f = fopen(argv[4], "w");
        if (!f) {
            perror(argv[4]);
            return 1;
        }
        for (uint32_t k = 0; k < total; k++)
            fprintf(f, "%s\n", ids[k]);
        fclose(f);
    }
    printf("opened %u sessions in %.2f s (%.0f/s)\n", total, s, total / s);
    free(ids);
    free(c);
    free(tid);
    return 0;
}
