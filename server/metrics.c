/* metrics.c: fixed arrays of 64-bit atomics, no locks, no allocation when counting.
 * Requests are counted per (route, status class index); the routes are the rows of the route
 * table (routes.h) and their labels its method and pattern; the statuses the server can send
 * are a short known list, anything else lands in "other". */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc.h"
#include "routes.h"

static const unsigned statuses[] = {200, 201, 204, 400, 401, 403, 404, 405,
                                    406, 409, 413, 415, 429, 500, 503};
#define N_STATUS (sizeof statuses / sizeof statuses[0] + 1) /* + "other" */

static const double lat_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                    0.05,   0.1,     0.25,   0.5,   1,      2.5,   10};
#define N_LAT (sizeof lat_bounds / sizeof lat_bounds[0])
static const unsigned grp_bounds[] = {1, 2, 4, 8, 16, 32, 64};
#define N_GRP (sizeof grp_bounds / sizeof grp_bounds[0])

struct ss_metrics {
    size_t n_routes;
    uint64_t (*req)[N_STATUS]; /* n_routes + 1 rows: the last one for no route */
    uint64_t lat[N_LAT + 1], lat_count, lat_sum_us;
    uint64_t grp[N_GRP + 1], grp_count, grp_sum;
    uint64_t batches, steps, events, spikes;
    uint64_t created, restored, closed, expired, sse_dropped, paused;
    uint64_t moved_in, moved_out, move_us, forwarded, ring_peers; /* cluster.h */
    int64_t grpc_streams;
    uint64_t grpc[SS_METRICS_GRPC_METHODS][17]; /* calls by method and gRPC status 0..16 */
    int64_t open;
    uint32_t n_workers;
    int wal;         /* 1: render the write-ahead log sizes */
    int64_t depth[]; /* n_workers queue depths, then n_workers log sizes */
};

#define ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define GET(p) __atomic_load_n((p), __ATOMIC_RELAXED)

ss_metrics *ss_metrics_create(uint32_t n_workers, size_t n_routes) {
    ss_metrics *m = calloc(1, sizeof *m + 2 * (size_t)n_workers * sizeof(int64_t));
    if (!m) return NULL;
    m->n_workers = n_workers;
    m->n_routes = n_routes;
    if (!(m->req = calloc(n_routes + 1, sizeof *m->req))) {
        free(m);
        return NULL;
    }
    return m;
}

void ss_metrics_free(ss_metrics *m) {
    if (!m) return;
    free(m->req);
    free(m);
}

void ss_metrics_request(ss_metrics *m, size_t r, unsigned status, int64_t duration_us) {
    size_t si = N_STATUS - 1;
    for (size_t i = 0; i < N_STATUS - 1; i++)
        if (statuses[i] == status) si = i;
    if (r > m->n_routes) r = m->n_routes;
    ADD(&m->req[r][si], 1);
    if (duration_us < 0) duration_us = 0;
    double s = (double)duration_us / 1e6;
    size_t b = 0;
    while (b < N_LAT && s > lat_bounds[b])
        b++;
    ADD(&m->lat[b], 1);
    ADD(&m->lat_count, 1);
    ADD(&m->lat_sum_us, (uint64_t)duration_us);
}

void ss_metrics_batch(ss_metrics *m, uint64_t steps, uint64_t events, uint64_t spikes) {
    ADD(&m->batches, 1);
    ADD(&m->steps, steps);
    ADD(&m->events, events);
    ADD(&m->spikes, spikes);
}

void ss_metrics_group(ss_metrics *m, size_t n) {
    size_t b = 0;
    while (b < N_GRP && n > grp_bounds[b])
        b++;
    ADD(&m->grp[b], 1);
    ADD(&m->grp_count, 1);
    ADD(&m->grp_sum, n);
}

void ss_metrics_session_open(ss_metrics *m) {
    ADD(&m->created, 1);
    ADD(&m->open, 1);
}
void ss_metrics_session_arrived(ss_metrics *m) {
    ADD(&m->open, 1);
}
void ss_metrics_session_restored(ss_metrics *m) {
    ADD(&m->restored, 1);
    ADD(&m->open, 1);
}
void ss_metrics_session_closed(ss_metrics *m, int expired) {
    if (expired != SS_CLOSED_MOVED) ADD(expired ? &m->expired : &m->closed, 1);
    ADD(&m->open, -1);
}
void ss_metrics_moved_in(ss_metrics *m) {
    ADD(&m->moved_in, 1);
}
void ss_metrics_moved_out(ss_metrics *m, int64_t us) {
    ADD(&m->moved_out, 1);
    ADD(&m->move_us, (uint64_t)us);
}
void ss_metrics_forwarded(ss_metrics *m) {
    ADD(&m->forwarded, 1);
}
void ss_metrics_ring_peers(ss_metrics *m, size_t n) {
    __atomic_store_n(&m->ring_peers, (uint64_t)n, __ATOMIC_RELAXED);
}
void ss_metrics_queue_depth(ss_metrics *m, uint32_t w, int64_t d) {
    if (w < m->n_workers) ADD(&m->depth[w], d);
}
void ss_metrics_wal_enable(ss_metrics *m) {
    m->wal = 1;
}
void ss_metrics_wal_size(ss_metrics *m, uint32_t w, uint64_t bytes) {
    if (w < m->n_workers)
        __atomic_store_n(&m->depth[m->n_workers + w], (int64_t)bytes, __ATOMIC_RELAXED);
}
void ss_metrics_sse_dropped(ss_metrics *m) {
    ADD(&m->sse_dropped, 1);
}
void ss_metrics_grpc_call(ss_metrics *m, size_t method, int status) {
    if (method < SS_METRICS_GRPC_METHODS && status >= 0 && status <= 16)
        ADD(&m->grpc[method][status], 1);
}

void ss_metrics_grpc_streams(ss_metrics *m, int64_t delta) {
    ADD(&m->grpc_streams, delta);
}

void ss_metrics_stream_paused(ss_metrics *m) {
    ADD(&m->paused, 1);
}
int64_t ss_metrics_sessions_open(const ss_metrics *m) {
    return GET(&m->open);
}

typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} sb;

static void put(sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sb *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t ncap = b->cap * 2 + (size_t)n;
        char *nb = realloc(b->buf, ncap);
        if (!nb) {
            b->oom = 1;
            return;
        }
        b->buf = nb;
        b->cap = ncap;
    }
}

static void counter(sb *b, const char *name, const char *help, uint64_t v) {
    put(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
        (unsigned long long)v);
}

char *ss_metrics_render(const ss_metrics *m, size_t *len) {
    sb b = {malloc(16384), 0, 16384, 0};
    if (!b.buf) return NULL;
    put(&b, "# HELP spikeserve_http_requests_total HTTP requests answered, by route and status.\n"
            "# TYPE spikeserve_http_requests_total counter\n");
    for (size_t r = 0; r <= m->n_routes; r++)
        for (size_t s = 0; s < N_STATUS; s++) {
            uint64_t v = GET(&m->req[r][s]);
            if (!v) continue;
            char code[16];
            if (s < N_STATUS - 1)
                snprintf(code, sizeof code, "%u", statuses[s]);
            else
                snprintf(code, sizeof code, "other");
            put(&b,
                "spikeserve_http_requests_total{method=\"%s\",route=\"%s\",status=\"%s\"} %llu\n",
                r < ss_route_count ? ss_routes[r].method : "other",
                r < ss_route_count ? ss_routes[r].pattern : "other", code, (unsigned long long)v);
        }
    put(&b,
        "# HELP spikeserve_http_request_duration_seconds Time from request start to response end.\n"
        "# TYPE spikeserve_http_request_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t i = 0; i <= N_LAT; i++) {
        cum += GET(&m->lat[i]);
        if (i < N_LAT)
            put(&b, "spikeserve_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                lat_bounds[i], (unsigned long long)cum);
        else
            put(&b, "spikeserve_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                (unsigned long long)cum);
    }
    put(&b, "spikeserve_http_request_duration_seconds_sum %.6f\n",
        (double)GET(&m->lat_sum_us) / 1e6);
    put(&b, "spikeserve_http_request_duration_seconds_count %llu\n", (unsigned long long)cum);

    put(&b,
        "# HELP spikeserve_sessions_open Sessions open now.\n"
        "# TYPE spikeserve_sessions_open gauge\nspikeserve_sessions_open %lld\n",
        (long long)GET(&m->open));
    counter(&b, "spikeserve_sessions_created_total", "Sessions opened by clients.",
            GET(&m->created));
    counter(&b, "spikeserve_sessions_restored_total", "Sessions restored from the state directory.",
            GET(&m->restored));
    counter(&b, "spikeserve_sessions_closed_total", "Sessions closed by clients.", GET(&m->closed));
    counter(&b, "spikeserve_sessions_expired_total", "Sessions closed after their idle timeout.",
            GET(&m->expired));
    counter(&b, "spikeserve_batches_total", "Spike batches run.", GET(&m->batches));
    counter(&b, "spikeserve_steps_total", "Time steps run, over all batches.", GET(&m->steps));
    counter(&b, "spikeserve_input_events_total", "Input events received in batches.",
            GET(&m->events));
    counter(&b, "spikeserve_output_spikes_total", "Output spikes (non-zero outputs) returned.",
            GET(&m->spikes));
    counter(&b, "spikeserve_sse_subscribers_dropped_total",
            "Event subscribers dropped for reading too slowly.", GET(&m->sse_dropped));
    counter(&b, "spikeserve_stream_pauses_total",
            "Times a /stream upload was paused because its worker's queue was full.",
            GET(&m->paused));
    counter(&b, "spikeserve_sessions_moved_in_total",
            "Sessions received from another replica (a ring change or its drain).",
            GET(&m->moved_in));
    counter(&b, "spikeserve_sessions_moved_out_total",
            "Sessions handed to another replica and closed here.", GET(&m->moved_out));
    put(&b,
        "# HELP spikeserve_session_move_seconds Time to move one session out (snapshot, PUT, "
        "close).\n# TYPE spikeserve_session_move_seconds summary\n"
        "spikeserve_session_move_seconds_sum %.6f\nspikeserve_session_move_seconds_count %llu\n",
        (double)GET(&m->move_us) / 1e6, (unsigned long long)GET(&m->moved_out));
    counter(&b, "spikeserve_forwarded_requests_total",
            "Requests forwarded to the replica that owns their session.", GET(&m->forwarded));
    put(&b,
        "# HELP spikeserve_ring_peers Replicas in this replica's ring (--peers; 0: no ring).\n"
        "# TYPE spikeserve_ring_peers gauge\nspikeserve_ring_peers %llu\n",
        (unsigned long long)GET(&m->ring_peers));
    size_t n_methods;
    const char *const *methods = ss_grpc_labels(&n_methods);
    put(&b, "# HELP spikeserve_grpc_calls_total gRPC calls ended, by method and status code.\n"
            "# TYPE spikeserve_grpc_calls_total counter\n");
    for (size_t i = 0; i < n_methods && i < SS_METRICS_GRPC_METHODS; i++)
        for (int c = 0; c <= 16; c++) {
            uint64_t v = GET(&m->grpc[i][c]);
            if (v)
                put(&b, "spikeserve_grpc_calls_total{method=\"%s\",code=\"%d\"} %llu\n", methods[i],
                    c, (unsigned long long)v);
        }
    put(&b,
        "# HELP spikeserve_grpc_streams_open gRPC calls (HTTP/2 streams) open now.\n"
        "# TYPE spikeserve_grpc_streams_open gauge\nspikeserve_grpc_streams_open %lld\n",
        (long long)GET(&m->grpc_streams));
    put(&b, "# HELP spikeserve_worker_queue_depth Jobs queued or running per worker.\n"
            "# TYPE spikeserve_worker_queue_depth gauge\n");
    for (uint32_t w = 0; w < m->n_workers; w++)
        put(&b, "spikeserve_worker_queue_depth{worker=\"%u\"} %lld\n", w,
            (long long)GET(&m->depth[w]));
    if (m->wal) {
        put(&b, "# HELP spikeserve_wal_size_bytes Bytes in each worker's write-ahead log "
                "(--wal); emptied at each checkpoint.\n"
                "# TYPE spikeserve_wal_size_bytes gauge\n");
        for (uint32_t w = 0; w < m->n_workers; w++)
            put(&b, "spikeserve_wal_size_bytes{worker=\"%u\"} %lld\n", w,
                (long long)GET(&m->depth[m->n_workers + w]));
    }
    put(&b, "# HELP spikeserve_step_group_sessions Sessions stepped together in one engine call.\n"
            "# TYPE spikeserve_step_group_sessions histogram\n");
    cum = 0;
    for (size_t i = 0; i <= N_GRP; i++) {
        cum += GET(&m->grp[i]);
        if (i < N_GRP)
            put(&b, "spikeserve_step_group_sessions_bucket{le=\"%u\"} %llu\n", grp_bounds[i],
                (unsigned long long)cum);
        else
            put(&b, "spikeserve_step_group_sessions_bucket{le=\"+Inf\"} %llu\n",
                (unsigned long long)cum);
    }
    put(&b, "spikeserve_step_group_sessions_sum %llu\n", (unsigned long long)GET(&m->grp_sum));
    put(&b, "spikeserve_step_group_sessions_count %llu\n", (unsigned long long)cum);
    if (b.oom) {
        free(b.buf);
        return NULL;
    }
    *len = b.len;
    return b.buf;
}

char *ss_metrics_render_models(char *text, size_t *len, const ss_metrics_model *rows, size_t n,
                               const ss_metrics_models_total *t) {
    sb b = {text, *len, *len + 1, 0}; /* put() grows it */
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"spikeserve_model_version_loaded", "gauge", "1 for each model version being served."},
        {"spikeserve_model_sessions_open", "gauge", "Sessions pinned to a model version."},
        {"spikeserve_model_batches_total", "counter", "Spike batches run, by model and version."},
        {"spikeserve_model_steps_total", "counter", "Time steps run, by model and version."},
    };
    for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
        put(&b, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help, fam[f].name, fam[f].type);
        for (size_t i = 0; i < n; i++) {
            long long v = f == 0   ? 1
                          : f == 1 ? (long long)rows[i].sessions
                          : f == 2 ? (long long)rows[i].batches
                                   : (long long)rows[i].steps;
            put(&b, "%s{model=\"%s\",version=\"%u\"} %lld\n", fam[f].name, rows[i].model,
                rows[i].version, v);
        }
    }
    counter(&b, "spikeserve_model_loads_total",
            "Model versions loaded or reloaded, start-up included.", t->loads);
    counter(&b, "spikeserve_model_unloads_total", "Model versions taken out of service.",
            t->unloads);
    counter(&b, "spikeserve_model_load_failures_total", "Model files refused by the loader.",
            t->failures);
    if (b.oom) {
        free(b.buf);
        return NULL;
    }
    *len = b.len;
    return b.buf;
}
