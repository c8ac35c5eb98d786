/* spikeclient.h: a C client for the spikeserve HTTP API v1 (SPEC.md section 3), over libcurl.
 *
 *   sc_params p = {.url = "http://127.0.0.1:8080"};
 *   sc_client *c = sc_client_new(&p);
 *   sc_session s;
 *   if (sc_session_open(c, "fmnist", 0, &s) < 0) fprintf(stderr, "%s\n", sc_errstr(c));
 *   sc_event ev[] = {{0, 17, 1.0f}, {3, 17, 1.0f}};
 *   sc_batch b = {.steps = 50, .events = ev, .n_events = 2};
 *   sc_result r;
 *   if (sc_step(c, s.session_id, &b, &r) == 0) { ... r.spikes, r.readout ...; sc_result_free(&r); }
 *   sc_session_close(c, s.session_id);
 *   sc_client_free(c);
 *
 * Errors: every call returns 0 (or a count) on success and a negative SC_E* code on failure;
 * the handle keeps the last error: sc_err() (the code), sc_errstr() (a message such as
 * "HTTP 409 conflict: seq 7, expected 5"), sc_http_status() and sc_error_code() (the
 * server's "error.code"). A successful call clears them.
 * Transport: JSON by default, protobuf (proto/api.proto) with sc_params.protobuf; the
 * NDJSON stream upload and the SSE subscription are JSON/text by definition.
 * Thread-safety: a handle is used by one thread at a time; use one handle per thread.
 * Ownership: out-structs filled by the library are freed with their *_free() function
 * (NULL-safe, and safe on a zeroed struct); inputs are borrowed for the call only.
 */
#ifndef SPIKECLIENT_H
#define SPIKECLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    SC_OK = 0,
    SC_EINVAL = -1, /* bad argument (message says which) */
    SC_ENOMEM = -2,
    SC_ETRANSPORT = -3, /* connection, timeout, ...: the request may not have reached the server */
    SC_EHTTP = -4,      /* the server answered with an error status (sc_http_status()) */
    SC_EPROTO = -5,     /* the answer could not be understood */
    SC_EABORTED = -6,   /* a callback asked to stop */
};

typedef struct sc_client sc_client;

typedef struct {
    const char *url;     /* base URL, e.g. "http://127.0.0.1:8080" (no trailing path) */
    const char *api_key; /* sent as "Authorization: Bearer KEY"; NULL: none */
    int protobuf;        /* 1: send and accept application/x-protobuf; 0: JSON */
    long timeout_ms;     /* per request (not the SSE subscription); 0: no limit */
} sc_params;

/* NULL when out of memory or when p->url is missing. */
sc_client *sc_client_new(const sc_params *p);
void sc_client_free(sc_client *c); /* NULL is a no-op */

/* Thread-safe: makes the call in progress on c (or the next one) return SC_EABORTED soon
 * (within about a second); the way to end an sc_events() subscription from another thread. */
void sc_cancel(sc_client *c);

int sc_err(const sc_client *c);
const char *sc_errstr(const sc_client *c);
long sc_http_status(const sc_client *c);       /* of the last request; 0 when none came back */
const char *sc_error_code(const sc_client *c); /* "not_found", ...; "" when none */
long sc_retry_after(const sc_client *c);       /* seconds of Retry-After on a 429/503; -1: none */

/* ---- health ---- */
int sc_healthz(sc_client *c); /* 0 when GET /healthz answers 200 */
int sc_readyz(sc_client *c);  /* 0 when GET /readyz answers 200 */
/* GET /metrics: Prometheus text, malloc'd, NUL-terminated; NULL on error. */
char *sc_metrics(sc_client *c);

/* ---- models ---- */
enum { SC_ENC_NONE = 0, SC_ENC_RATE = 1, SC_ENC_LATENCY = 2 };

typedef struct {
    char kind[16]; /* "src" or "readout" */
    uint32_t n_in, n;
} sc_layer_info;

typedef struct {
    char *name;
    char *description;
    uint32_t version, n_in, n_out;
    sc_layer_info *layers;
    size_t n_layers;
    char **labels;
    size_t n_labels;
    int enc_kind; /* SC_ENC_* */
    uint32_t enc_steps, enc_warmup_steps;
    float enc_gain, enc_threshold;
} sc_model;

void sc_model_free(sc_model *m); /* frees the fields, not m */
/* GET /v1/models: *out gets a malloc'd array of *n models; free with sc_models_free(). */
int sc_models(sc_client *c, sc_model **out, size_t *n);
void sc_models_free(sc_model *ms, size_t n);
int sc_model_get(sc_client *c, const char *name, sc_model *out);

/* ---- sessions ---- */
#define SC_ID_MAX 128
typedef struct {
    char session_id[SC_ID_MAX];
    char model[72];
    uint32_t model_version;
    uint32_t idle_timeout_s;
    uint64_t t;
    int has_last_seq;
    uint64_t last_seq;
    char created_at[40], last_active_at[40];
} sc_session;

/* POST /v1/models/{model}/sessions; idle_timeout_s 0: the server's default. */
int sc_session_open(sc_client *c, const char *model, uint32_t idle_timeout_s, sc_session *out);
/* The same, pinned to a version of the model (0: the latest); out->model_version says which. */
int sc_session_open_version(sc_client *c, const char *model, uint32_t version,
                            uint32_t idle_timeout_s, sc_session *out);
int sc_session_get(sc_client *c, const char *id, sc_session *out);
int sc_session_close(sc_client *c, const char *id);
int sc_session_reset(sc_client *c, const char *id);

/* ---- spike batches and results ---- */
enum {
    SC_OUT_SPIKES = 1u << 0,
    SC_OUT_READOUT = 1u << 1,
    SC_OUT_READOUT_ALL = 1u << 2,
    SC_OUT_LAYERS = 1u << 3,
};

typedef struct {
    uint32_t step, input;
    float value; /* 0 is sent as the default 1.0 would be: use 1.0f for a plain spike */
} sc_event;

typedef struct {
    int has_seq;
    uint64_t seq;
    uint32_t steps;
    const sc_event *events; /* sparse input, or */
    size_t n_events;
    const float *dense; /* steps x dense_n values, row per step (NULL: none) */
    uint32_t dense_n;
    unsigned outputs; /* SC_OUT_*; 0: the server's default */
} sc_batch;

typedef struct {
    uint32_t step, neuron;
    float value;
} sc_spike;

typedef struct {
    char session_id[SC_ID_MAX]; /* "" for /infer and /classify */
    int has_seq;
    uint64_t seq;
    uint64_t t0;
    uint32_t steps;
    sc_spike *spikes; /* last SRC layer, step relative to t0 */
    size_t n_spikes;
    float *readout; /* at the last step */
    size_t n_readout;
    int has_prediction;
    uint32_t prediction;
    char *label; /* prediction label, or NULL */
} sc_result;

void sc_result_free(sc_result *r); /* frees the fields, not r */
/* Parse a step result in JSON (one /steps answer, one SSE "step" event, one NDJSON line). */
int sc_result_parse_json(sc_client *c, const char *json, size_t len, sc_result *out);
/* Encode a batch as one JSON line (no newline), malloc'd; NULL on error. */
char *sc_batch_json(sc_client *c, const sc_batch *b);

/* POST /v1/sessions/{id}/steps */
int sc_step(sc_client *c, const char *id, const sc_batch *b, sc_result *out);
/* POST /v1/models/{model}/infer: one batch on a fresh state */
int sc_infer(sc_client *c, const char *model, const sc_batch *b, sc_result *out);
/* POST /v1/models/{model}/classify: n raw values in [0, 1], encoded by the server with the
 * model's encoding and the given seed. */
int sc_classify(sc_client *c, const char *model, const float *x, uint32_t n, uint64_t seed,
                sc_result *out);

/* ---- streaming ---- */
/* Supplies upload bytes: copy up to cap bytes into buf, return the count, 0 at the end, -1
 * to abort. It may block (e.g. on a pipe): each byte goes out as soon as it is returned. */
typedef long (*sc_read_cb)(void *ud, char *buf, size_t cap);

/* The answer of an NDJSON upload, once every line has run. */
typedef struct {
    uint64_t lines, ok, failed; /* non-blank lines; that ran; that were refused */
    uint64_t t, last_seq;       /* the session afterwards */
} sc_stream_summary;

/* POST /v1/sessions/{id}/stream: chunked NDJSON upload, one batch per line, pulled from
 * read; the server runs each line as it arrives. The per-line results go to the session's
 * event stream: to print them live, subscribe with sc_events() from another thread on
 * another handle (spikectl stream does). summary (may be NULL) gets the server's totals.
 * Returns SC_EHTTP when a line was refused (the message names the first: "line 3: HTTP 409
 * conflict: ..."), with the summary still filled. */
int sc_stream(sc_client *c, const char *id, sc_read_cb read, void *read_ud,
              sc_stream_summary *summary);
/* Convenience: upload the lines of f as they can be read (a pipe, stdin, a file). */
int sc_stream_file(sc_client *c, const char *id, FILE *f, sc_stream_summary *summary);

/* One Server-Sent Event. */
typedef struct {
    const char *type;        /* "step", "end", ... ("message" when the server named none) */
    const char *id;          /* the event's id, or "" */
    const char *data;        /* the data lines joined by '\n' */
    const sc_result *result; /* parsed, for "step" events; NULL otherwise */
} sc_sse_event;
/* Return nonzero to stop the subscription (the call then returns 0). */
typedef int (*sc_event_cb)(void *ud, const sc_sse_event *ev);

/* GET /v1/sessions/{id}/events: blocks, calling on_event per event, until the callback
 * stops it, the server ends the stream (after an "end" event), or an error. last_event_id
 * (may be NULL) is sent as Last-Event-ID. on_open (may be NULL) is called once the server
 * has answered 200, so a caller can start sending after the subscription is live. */
int sc_events(sc_client *c, const char *id, const char *last_event_id, sc_event_cb on_event,
              void (*on_open)(void *ud), void *ud);

/* ---- snapshots (protobuf SessionSnapshot bytes) ---- */
/* GET /v1/sessions/{id}/state: *buf gets malloc'd bytes. */
int sc_snapshot_get(sc_client *c, const char *id, uint8_t **buf, size_t *len);
/* PUT /v1/sessions/{id}/state: create or replace session id from a snapshot. */
int sc_snapshot_put(sc_client *c, const char *id, const uint8_t *buf, size_t len);

/* ---- raw access (what the CLI uses for files of JSON batches) ---- */
/* One request; body may be NULL. On success (any status) *resp gets a malloc'd,
 * NUL-terminated body and the HTTP status is returned (>= 100); a status >= 400 also sets
 * the handle's error (SC_EHTTP) from the body. Negative on transport errors. */
long sc_request(sc_client *c, const char *method, const char *path, const char *content_type,
                const void *body, size_t len, char **resp, size_t *resp_len);

#ifdef __cplusplus
}
#endif
#endif
