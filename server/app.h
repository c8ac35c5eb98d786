/* app.h: the running server: configuration, models, sessions, workers, HTTP daemon and
 * the housekeeping thread (idle expiry, SSE keep-alives, checkpoints). main.c drives its
 * life cycle; the shutdown steps are separate functions so main can call them in its
 * written order. */
#ifndef SS_APP_H
#define SS_APP_H

#include <pthread.h>
#include <stdint.h>

#include "auth.h"
#include "config.h"
#include "metrics.h"
#include "pool.h"
#include "registry.h"
#include "session.h"

struct MHD_Daemon;

typedef struct ss_app {
    ss_config cfg;
    ss_reg *reg; /* the model versions served (registry.h) */
    ss_table *table;
    ss_metrics *metrics;
    ss_auth *auth; /* NULL: no API keys */
    ss_pool *pool;
    /* the Open Inference Protocol's statistics and retry records (oip.h) */
    struct ss_oip *oip;
    ss_wal *wal; /* NULL without --wal */
    struct MHD_Daemon *daemon;
    uint16_t port;
    struct ss_h2 *h2; /* the gRPC listener (grpc.h), NULL when off */
    struct ss_cluster *cluster; /* cluster.h: the ring and forwarder, NULL without --peers */
    uint16_t grpc_port;
    int draining;          /* atomic: /readyz 503, new work 503 */
    uint32_t next_worker;  /* atomic: round-robin session placement */
    int64_t inflight;      /* atomic: requests not yet completed */
    int64_t save_failures; /* atomic: sessions a save or checkpoint could not write */
    pthread_t janitor;
    int janitor_started, janitor_stop;
    pthread_mutex_t jmu;
    pthread_cond_t jcv;
} ss_app;

/* Load every model file of cfg->model_dir (registry.h: NAME.spk and NAME/VERSION.spk;
 * refusing a bad one, naming it), start the workers and restore the sessions of
 * cfg->state_dir. 0 or -1 with err. */
int ss_app_init(ss_app *a, const ss_config *cfg, char *err, size_t errlen);
/* Start the HTTP daemon (a->port gets the bound port) and the housekeeping thread. */
int ss_app_start(ss_app *a, char *err, size_t errlen);

/* Shutdown steps, in the order main.c calls them. */
void ss_app_stop_accepting(ss_app *a); /* close the listener, refuse new work (503) */
void ss_app_finish_queued(ss_app *a);  /* workers run every queued job; replies go out */
void ss_app_resume_all(ss_app *a);     /* end event streams, wake paused uploads */
/* every session to --state-dir: how many were saved, of *total */
int ss_app_save_all(ss_app *a, size_t *total);
void ss_app_join_workers(ss_app *a);
void ss_app_stop_http(ss_app *a); /* waits a little for replies in flight */
void ss_app_free(ss_app *a);

/* The next worker for a new session. */
uint32_t ss_app_pick_worker(ss_app *a);
/* The model called name at version (0: its latest), with a reference (ss_reg_unref), or
 * NULL when that is not loaded. */
ss_mver *ss_app_model(const ss_app *a, const char *name, uint32_t version);

#endif
