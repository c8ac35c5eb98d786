/* config.c: one table drives defaults, environment variables, flags and --help, so the
 * three can never disagree. */
#include "config.h"

#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef enum { OPT_STR, OPT_U32, OPT_U64 } opt_type;

typedef struct {
    const char *name;
    opt_type type;
    size_t off, size;
    const char *def;
    const char *help;
} opt;

#define S(f) offsetof(ss_config, f), sizeof(((ss_config *)0)->f)
static const opt opts[] = {
    {"model-dir", OPT_STR, S(model_dir), "models/zoo", "directory of model files (*.spk)"},
    {"bind", OPT_STR, S(bind), "127.0.0.1", "address to listen on"},
    {"port", OPT_U32, S(port), "8080", "TCP port (0: any free port)"},
    {"port-file", OPT_STR, S(port_file), "", "write the bound port to this file"},
    {"state-dir", OPT_STR, S(state_dir), "",
     "sessions are saved here on shutdown and restored on start"},
    {"workers", OPT_U32, S(workers), "0", "worker threads owning sessions (0: number of cores)"},
    {"http-threads", OPT_U32, S(http_threads), "2", "threads running the HTTP event loop"},
    {"max-sessions", OPT_U32, S(max_sessions), "100000", "open sessions in total (then 503)"},
    {"max-body-bytes", OPT_U64, S(max_body_bytes), "8388608", "request body bytes (then 413)"},
    {"max-steps", OPT_U32, S(max_steps), "10000", "steps per batch (then 413)"},
    {"max-events", OPT_U32, S(max_events), "1000000", "input events per batch (then 413)"},
    {"max-output-bytes", OPT_U64, S(max_output_bytes), "268435456",
     "worst-case output bytes of one batch (steps x neurons of the outputs asked; then 413)"},
    {"queue-depth", OPT_U32, S(queue_depth), "1024", "queued jobs per worker (then 429)"},
    {"idle-timeout", OPT_U32, S(idle_timeout), "600", "seconds before an idle session expires"},
    {"checkpoint-interval", OPT_U32, S(checkpoint_interval), "60",
     "seconds between session checkpoints to --state-dir (0: only at shutdown)"},
    {"max-subscribers", OPT_U32, S(max_subscribers), "8", "event stream subscribers per session"},
    {"sse-buffer-bytes", OPT_U32, S(sse_buffer_bytes), "1048576",
     "buffered event bytes per subscriber (then it is dropped)"},
    {"keepalive", OPT_U32, S(keepalive), "15",
     "seconds between keep-alive comments on event streams"},
    {"max-connections", OPT_U32, S(max_connections), "4096", "concurrent HTTP connections"},
    {"access-log", OPT_U32, S(access_log), "1", "1: one log line per request on stderr"},
    {"api-keys", OPT_STR, S(api_keys), "",
     "Bearer API keys, comma-separated, or @FILE with one per line (empty: no keys needed)"},
    {"wal", OPT_U32, S(wal), "0",
     "1: write-ahead log in --state-dir; every accepted change is fsync'd before it is "
     "answered, so even SIGKILL loses nothing acknowledged"},
    {"wal-max-bytes", OPT_U64, S(wal_max_bytes), "67108864",
     "a worker whose write-ahead log grows past this saves its sessions and empties it "
     "(bounds the log's disk space between checkpoints; 0: only at --checkpoint-interval)"},
    {"metrics-auth", OPT_U32, S(metrics_auth), "0",
     "1: /metrics needs an API key too (with --api-keys); /healthz and /readyz stay open"},
    {"connection-timeout", OPT_U32, S(connection_timeout), "60",
     "seconds a connection may stay silent before it is closed (slow clients)"},
    {"max-header-bytes", OPT_U32, S(max_header_bytes), "16384",
     "memory per connection for the request line and headers (bigger: the request fails)"},
    {"max-connections-per-ip", OPT_U32, S(max_conn_per_ip), "0",
     "concurrent HTTP connections from one client address (0: no limit)"},
    {"event-loop", OPT_STR, S(event_loop), "epoll",
     "epoll: scales to many connections; poll: less work per request with few busy "
     "connections (no epoll_ctl per suspended request), but each wakeup scans them all"},
    {"grpc-port", OPT_STR, S(grpc_port), "8081",
     "gRPC port (HTTP/2 cleartext, the service spikeserve.v1.Spikeserve and grpc.health.v1); "
     "0: off; any: a free port"},
    {"grpc-port-file", OPT_STR, S(grpc_port_file), "", "write the bound gRPC port to this file"},
    {"grpc-max-connections", OPT_U32, S(grpc_max_connections), "1024",
     "concurrent gRPC (HTTP/2) connections"},
    {"grpc-max-streams", OPT_U32, S(grpc_max_streams), "1000",
     "concurrent calls per gRPC connection (SETTINGS_MAX_CONCURRENT_STREAMS)"},
    {"log-level", OPT_STR, S(log_level), "info",
     "error, warn, info or debug: lines above it are not written (info: start, stop, access "
     "log)"},
    {"ui-dataset-dir", OPT_STR, S(ui_dataset_dir), "/usr/share/datasets/fashion-mnist",
     "Fashion-MNIST IDX files for the page at / (Debian's dataset-fashion-mnist)"},
    {"model-control", OPT_STR, S(model_control), "none",
     "none: models are loaded at start only; explicit: POST /v2/repository/models/{m}/load "
     "and /unload load, reload and unload them; poll: --model-dir is scanned every "
     "--model-poll-seconds (new, changed and removed files)"},
    {"model-poll-seconds", OPT_U32, S(model_poll_seconds), "5",
     "seconds between scans of --model-dir with --model-control poll"},
    {"peers", OPT_STR, S(peers), "",
     "file of the replicas, one host:port per line as the load balancer names them ('#' "
     "comments); re-read on SIGHUP (empty: this server alone)"},
    {"self", OPT_STR, S(self), "", "this replica's own host:port in --peers"},
    {"handoff-timeout", OPT_U32, S(handoff_timeout), "20",
     "seconds SIGTERM may spend handing sessions to the other replicas (with --peers)"},
    {"move-window", OPT_U32, S(move_window), "60",
     "seconds after a ring change during which a session this replica owns but does not hold "
     "is looked for on its previous owner (with --peers)"},
    {"rebalance-interval", OPT_U32, S(rebalance_interval), "10",
     "seconds between passes that move sessions held here but owned by another replica to it "
     "(after a rolling restart; with --peers; 0: only on SIGHUP)"},
    {"forward-timeout", OPT_U32, S(forward_timeout), "30",
     "seconds for a request forwarded to the replica that owns its session"},
    {"forward-max-bytes", OPT_U64, S(forward_max_bytes), "268435456",
     "bytes of a forwarded request's answer (then 503)"},
};
#define N_OPTS (sizeof opts / sizeof opts[0])

static int set(ss_config *c, const opt *o, const char *v, const char *from, char *err,
               size_t errlen) {
    char *p = (char *)c + o->off;
    if (o->type == OPT_STR) {
        if (strlen(v) >= o->size) {
            snprintf(err, errlen, "%s %s: too long", from, o->name);
            return -1;
        }
        strcpy(p, v);
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    /* digits only: strtoull would skip blanks and take "-5" as 2^64 - 5 */
    if (errno || end == v || *end || v[0] < '0' || v[0] > '9' ||
        (o->type == OPT_U32 && x > UINT32_MAX)) {
        snprintf(err, errlen, "%s %s: \"%s\" is not a valid number", from, o->name, v);
        return -1;
    }
    if (o->type == OPT_U32)
        *(uint32_t *)p = (uint32_t)x;
    else
        *(uint64_t *)p = x;
    return 0;
}

static void env_name(const opt *o, char *buf, size_t len) {
    size_t k = (size_t)snprintf(buf, len, "SPIKESERVE_");
    for (const char *s = o->name; *s && k + 1 < len; s++)
        buf[k++] = *s == '-' ? '_' : (char)toupper((unsigned char)*s);
    buf[k] = 0;
}

void ss_config_help(FILE *f) {
    fprintf(f, "usage: spikeserve [options]\n\nEvery option can also be set with the environment "
               "variable shown; a flag wins over the variable.\n\n");
    for (size_t i = 0; i < N_OPTS; i++) {
        char env[64], flag[64];
        env_name(&opts[i], env, sizeof env);
        snprintf(flag, sizeof flag, "--%s %s", opts[i].name, opts[i].type == OPT_STR ? "STR" : "N");
        fprintf(f, "  %-28s %s\n  %-28s [default: \"%s\"; env %s]\n", flag, opts[i].help, "",
                opts[i].def, env);
    }
    fprintf(f, "  %-28s show this help\n", "--help");
}

int ss_config_parse(ss_config *c, int argc, char **argv, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < N_OPTS; i++)
        if (set(c, &opts[i], opts[i].def, "default", err, errlen)) return -1;
    for (size_t i = 0; i < N_OPTS; i++) {
        char env[64];
        env_name(&opts[i], env, sizeof env);
        const char *v = getenv(env);
        if (v && set(c, &opts[i], v, env, err, errlen)) return -1;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            ss_config_help(stdout);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument \"%s\" (see --help)", arg);
            return -1;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const opt *o = NULL;
        for (size_t i = 0; i < N_OPTS; i++)
            if (strlen(opts[i].name) == nlen && !strncmp(opts[i].name, name, nlen)) o = &opts[i];
        if (!o) {
            snprintf(err, errlen, "unknown option \"%s\" (see --help)", arg);
            return -1;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v) {
            if (a + 1 >= argc) {
                snprintf(err, errlen, "--%s needs a value", o->name);
                return -1;
            }
            v = argv[++a];
        }
        if (set(c, o, v, "flag", err, errlen)) return -1;
    }
    if (c->port > 65535) {
        snprintf(err, errlen, "port %u out of range [0, 65535]", c->port);
        return -1;
    }
    if (c->http_threads == 0) c->http_threads = 1;
    if (c->wal && !c->state_dir[0]) {
        snprintf(err, errlen, "--wal needs --state-dir");
        return -1;
    }
    if (c->max_header_bytes < 1024) {
        snprintf(err, errlen, "max-header-bytes must be >= 1024");
        return -1;
    }
    if (strcmp(c->event_loop, "epoll") && strcmp(c->event_loop, "poll")) {
        snprintf(err, errlen, "event-loop %s: use epoll or poll", c->event_loop);
        return -1;
    }
    if (strcmp(c->model_control, "none") && strcmp(c->model_control, "explicit") &&
        strcmp(c->model_control, "poll")) {
        snprintf(err, errlen, "model-control %s: use none, explicit or poll", c->model_control);
        return -1;
    }
    if (c->model_poll_seconds == 0) {
        snprintf(err, errlen, "model-poll-seconds must be >= 1");
        return -1;
    }
    ss_log_level lvl;
    if (ss_log_parse_level(c->log_level, &lvl) != 0) {
        snprintf(err, errlen, "log-level %s: use error, warn, info or debug", c->log_level);
        return -1;
    }
    if (c->peers[0] && !c->self[0]) {
        snprintf(err, errlen, "--peers needs --self (this replica's host:port in the file)");
        return -1;
    }
    if (c->queue_depth == 0 || c->max_steps == 0 || c->max_body_bytes == 0) {
        snprintf(err, errlen, "queue-depth, max-steps and max-body-bytes must be >= 1");
        return -1;
    }
    return 0;
}
