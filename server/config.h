/* config.h: the server's options. Every option is a flag (--max-steps 500) and an
 * environment variable (SPIKESERVE_MAX_STEPS=500); the flag wins. --help prints them all
 * with their defaults. */
#ifndef SS_CONFIG_H
#define SS_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    char model_dir[1024];
    char bind[64];
    uint32_t port;
    char port_file[1024];
    char state_dir[1024];
    uint32_t workers; /* 0: number of cores */
    uint32_t http_threads;
    uint32_t max_sessions;
    uint64_t max_body_bytes;
    uint32_t max_steps;
    uint32_t max_events;
    uint64_t max_output_bytes; /* worst-case output buffers of one batch */
    uint32_t queue_depth;
    uint32_t idle_timeout;        /* seconds */
    uint32_t checkpoint_interval; /* seconds, 0: off */
    uint32_t max_subscribers;
    uint32_t sse_buffer_bytes;
    uint32_t keepalive; /* seconds between SSE keep-alive comments */
    uint32_t max_connections;
    uint32_t access_log;         /* 1: one line per request on stderr */
    char api_keys[4096];         /* "": none; "k1,k2"; "@FILE" */
    uint32_t wal;                /* 1: write-ahead log of accepted changes in state_dir */
    uint64_t wal_max_bytes;      /* a worker's log past this: checkpoint now */
    uint32_t metrics_auth;       /* 1: /metrics needs an API key too */
    uint32_t connection_timeout; /* seconds a connection may stay silent */
    uint32_t max_header_bytes;   /* request line + headers (then 431/closed) */
    uint32_t max_conn_per_ip;    /* 0: no per-address limit */
    char event_loop[8];          /* "epoll" or "poll" */
    char grpc_port[16];           /* "8081", "0" (off) or "any" */
    char grpc_port_file[1024];
    uint32_t grpc_max_connections;
    uint32_t grpc_max_streams;
    char log_level[8];           /* "error", "warn", "info", "debug" */
    char ui_dataset_dir[1024];   /* ui.c: Fashion-MNIST test images for the page */
    char model_control[16];      /* "none", "explicit" or "poll" (registry.h) */
    uint32_t model_poll_seconds; /* poll: seconds between scans of --model-dir */
    char peers[1024];            /* cluster.h: the peers file ("": one replica alone) */
    char self[256];              /* this replica's "host:port" in it */
    uint32_t handoff_timeout;    /* seconds a SIGTERM drain may spend moving sessions */
    uint32_t move_window;        /* seconds the previous ring is asked after a change */
    uint32_t rebalance_interval; /* seconds between passes moving sessions to their owners */
    uint32_t forward_timeout;    /* seconds for one forwarded request */
    uint64_t forward_max_bytes;  /* the answer of one forwarded request */
} ss_config;

/* Parse defaults, then SPIKESERVE_* variables, then argv. Returns 0, 1 when --help was
 * printed (exit 0), or -1 with a message in err. */
int ss_config_parse(ss_config *c, int argc, char **argv, char *err, size_t errlen);
void ss_config_help(FILE *f);

#endif
