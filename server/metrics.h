/* metrics.h: the server's counters, gauges and histograms, rendered in the Prometheus
 * text format (version 0.0.4) for GET /metrics. Updates are lock-free atomics and may come
 * from any thread. */
#ifndef SS_METRICS_H
#define SS_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* Routes, as labels of the request metrics and the access log. */
typedef enum {
    SS_R_HEALTHZ,
    SS_R_READYZ,
    SS_R_METRICS,
    SS_R_MODELS,
    SS_R_MODEL,
    SS_R_OPEN,
    SS_R_SESSION_GET,
    SS_R_SESSION_DELETE,
    SS_R_RESET,
    SS_R_STEPS,
    SS_R_STREAM,
    SS_R_EVENTS,
    SS_R_STATE_GET,
    SS_R_STATE_PUT,
    SS_R_INFER,
    SS_R_CLASSIFY,
    SS_R_UI_PAGE,  /* ui.c: the raster page */
    SS_R_UI_IMAGE, /* ui.c: a Fashion-MNIST test image */
    SS_R_OTHER,
    SS_R_COUNT
} ss_route;

typedef struct ss_metrics ss_metrics;

ss_metrics *ss_metrics_create(uint32_t n_workers);
void ss_metrics_free(ss_metrics *m);

void ss_metrics_request(ss_metrics *m, ss_route r, unsigned status, int64_t duration_us);
void ss_metrics_batch(ss_metrics *m, uint64_t steps, uint64_t events, uint64_t spikes);
void ss_metrics_group(ss_metrics *m, size_t sessions); /* one engine call over n sessions */
void ss_metrics_session_open(ss_metrics *m);           /* created */
void ss_metrics_session_restored(ss_metrics *m);       /* open again after a restart */
void ss_metrics_session_closed(ss_metrics *m, int expired);
void ss_metrics_queue_depth(ss_metrics *m, uint32_t worker, int64_t delta);
void ss_metrics_wal_enable(ss_metrics *m); /* --wal: render the log sizes */
void ss_metrics_wal_size(ss_metrics *m, uint32_t worker, uint64_t bytes);
void ss_metrics_sse_dropped(ss_metrics *m);
void ss_metrics_stream_paused(ss_metrics *m); /* a /stream upload waited for queue room */
int64_t ss_metrics_sessions_open(const ss_metrics *m);

/* The Prometheus text; malloc'd, NUL-terminated. NULL when out of memory. */
char *ss_metrics_render(const ss_metrics *m, size_t *len);

#endif
