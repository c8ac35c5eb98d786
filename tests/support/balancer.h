/* balancer.h: the real nginx or HAProxy in front of real spikeserve replicas, for the
 * end-to-end tests of routing (issue 15). A shipped configuration (deploy/nginx.conf,
 * deploy/haproxy.cfg) is rendered for the test: the lines between "# BEGIN PEERS" and
 * "# END PEERS" become the test's backends, and each line carrying a marker ("#@listen")
 * is replaced by the test's line. The balancer runs in the foreground in its own directory
 * (as the user nobody when the test runs as root), is reached like a server (a ts_server
 * with its port, for ts_http) and stopped by the test. 0 or -1 with a TAP comment. */
#ifndef TS_BALANCER_H
#define TS_BALANCER_H

#include <stddef.h>

#include "harness.h"
#include "ring.h"

/* A free TCP port on 127.0.0.1 (bound and released: another process could take it first). */
unsigned tb_free_port(void);

/* A marker and the line that replaces every template line containing it. */
typedef struct {
    const char *marker;
    const char *line;
} tb_subst;

/* Render template into out: peer_lines[0..n) (each a whole line, without '\n') between the
 * PEERS markers, subs (ending with {NULL, NULL}) for the marked lines. Fails when the
 * template has no PEERS block or a marker is not found. */
int tb_render(const char *template_path, const char *out, const char *const *peer_lines, size_t n,
              const tb_subst *subs);

/* Run argv (argv[0] an absolute path) with dir as its working directory, stdout and stderr
 * to dir/stderr.log, until 127.0.0.1:port accepts connections (10 s). b gets pid, port,
 * base, dir and log. */
int tb_start(ts_server *b, const char *dir, unsigned port, char *const *argv);
/* SIGTERM, then SIGKILL after 10 s; 0 when it exited on its own accord (status 0 or TERM). */
int tb_stop(ts_server *b);
/* Make dir (and everything under it) the unprivileged user's when running as root. */
int tb_chown_nobody(const char *dir);

/* Which of the n texts (replicas' access logs; NULL skipped) hold the request line
 * " METHOD PATH ": a bit per text (n <= 32). */
unsigned tb_where_logged(char *const *logs, int n, const char *method, const char *path);

/* Read the n replicas' logs (rep[i].log) into logs[i] (freed first), again every 20 ms for up
 * to 5 s until needle occurs at least want times in all: a replica writes its access-log
 * line after the answer, so the last requests' lines may lag. The count found. */
long tb_read_logs(char **logs, const ts_server *rep, int n, const char *needle, long want);

/* n real replicas (plain servers: no --peers, so nothing is forwarded) of one small model
 * "tiny" (make_model.py --seed 3) on free loopback ports, names[i] = "127.0.0.1:PORT" in
 * start order, and our ring of those names. */
#define TB_MAX_REPLICAS 8
typedef struct {
    int n;
    ts_server rep[TB_MAX_REPLICAS];
    char names[TB_MAX_REPLICAS][64];
    const char *name_ptr[TB_MAX_REPLICAS];
    ss_ring *ring;
} tb_replicas;
int tb_replicas_start(tb_replicas *r, int n);
/* SIGTERM to those still running, and free the ring: 0 when each of them exited 0. */
int tb_replicas_stop(tb_replicas *r);

/* The JSON body of an OIP infer request on model tiny in sequence seq (a JSON value: 42 or
 * "name"), sequence_start as given, 2 steps of one input event. */
void tb_oip_body(char *out, size_t cap, const char *seq, int start);

/* Which replicas hold session sid (GET /v1/sessions/{sid} answers 200), as bit i per rep[i]. */
unsigned tb_holders(const tb_replicas *r, const char *sid);

/* The whole text of a file (malloc'd, NUL-terminated), or NULL. */
char *tb_slurp(const char *path, size_t *len);

#endif
