/* metrics.h: the server's counters, gauges and histograms, rendered in the Prometheus
 * text format (version 0.0.4) for GET /metrics. Updates are lock-free atomics and may come
 * from any thread. */
#ifndef SS_METRICS_H
#define SS_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct ss_metrics ss_metrics;

/* Counters for n_routes rows of the route table (routes.h: their method and pattern are the
 * labels), plus one for requests that matched none. */
ss_metrics *ss_metrics_create(uint32_t n_workers, size_t n_routes);
void ss_metrics_free(ss_metrics *m);

/* A request answered by route row `route` (n_routes or more: none matched). */
void ss_metrics_request(ss_metrics *m, size_t route, unsigned status, int64_t duration_us);
void ss_metrics_batch(ss_metrics *m, uint64_t steps, uint64_t events, uint64_t spikes);
void ss_metrics_group(ss_metrics *m, size_t sessions); /* one engine call over n sessions */
void ss_metrics_session_open(ss_metrics *m);           /* created */
void ss_metrics_session_restored(ss_metrics *m);       /* open again after a restart */
#define SS_CLOSED_MOVED 2 /* `expired` of a session that moved to another replica */
void ss_metrics_session_closed(ss_metrics *m, int expired); /* 0 closed, 1 expired, 2 moved */
/* cluster.h: sessions moved in and out (with the time a move took), forwarded requests,
 * peers in the ring */
void ss_metrics_moved_in(ss_metrics *m);
void ss_metrics_session_arrived(ss_metrics *m); /* open, by a move: not "created" */
void ss_metrics_moved_out(ss_metrics *m, int64_t duration_us);
void ss_metrics_forwarded(ss_metrics *m);
void ss_metrics_ring_peers(ss_metrics *m, size_t n);
void ss_metrics_queue_depth(ss_metrics *m, uint32_t worker, int64_t delta);
void ss_metrics_wal_enable(ss_metrics *m); /* --wal: render the log sizes */
void ss_metrics_wal_size(ss_metrics *m, uint32_t worker, uint64_t bytes);
void ss_metrics_sse_dropped(ss_metrics *m);
void ss_metrics_stream_paused(ss_metrics *m);
/* gRPC: a call ended with a status (method: its index in grpc.c's table); calls open. */
#define SS_METRICS_GRPC_METHODS 32
void ss_metrics_grpc_call(ss_metrics *m, size_t method, int status);
void ss_metrics_grpc_streams(ss_metrics *m, int64_t delta); /* a /stream upload waited for queue room */
int64_t ss_metrics_sessions_open(const ss_metrics *m);

/* The Prometheus text; malloc'd, NUL-terminated. NULL when out of memory. */
char *ss_metrics_render(const ss_metrics *m, size_t *len);

/* The spikeserve_model_* families: one row per model version served (registry.h gathers
 * them) and the registry's totals. */
typedef struct {
    char model[72];
    uint32_t version;
    int64_t sessions;
    uint64_t batches, steps;
} ss_metrics_model;
typedef struct {
    uint64_t loads, unloads, failures;
} ss_metrics_models_total;
/* Append them to text (ss_metrics_render's, *len bytes): the longer text, or NULL when out
 * of memory (text is freed then). */
char *ss_metrics_render_models(char *text, size_t *len, const ss_metrics_model *rows, size_t n,
                               const ss_metrics_models_total *t);

#endif
