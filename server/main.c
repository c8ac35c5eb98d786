/* main.c: spikeserve, the HTTP inference server for SRC networks (SPEC.md sections 3, 4).
 *
 * Start: options (flags, SPIKESERVE_* variables) -> load every model of --model-dir
 * (a bad file stops the start, naming it) -> workers -> sessions of --state-dir -> HTTP
 * -> "listening on ADDR:PORT" on stderr (and the port into --port-file).
 *
 * SIGHUP (with --peers) re-reads the peers file and moves the sessions whose owner changed.
 *
 * SIGTERM / SIGINT drain, in this order:
 *   0. with --peers: refuse new requests (503, retry) and hand every session to its owner in
 *      the ring without this replica, within --handoff-timeout (cluster.h);
 *   1. stop accepting: close the listening socket; new requests on open connections and
 *      new jobs get 503; /readyz says draining;
 *   2. finish queued batches: every worker runs its queue empty, replies go out;
 *   3. resume suspended connections: event streams get `end` (reason "shutdown"), paused
 *      uploads wake up (their remaining lines fail with 503);
 *   4. write every session to --state-dir (temp file, fsync, rename), on its worker;
 *   5. join the workers;
 *   6. stop the HTTP daemon (after replies in flight are written, at most 3 s);
 *   7. free everything; exit 0.
 * The next start restores the sessions and they continue where they were.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "cluster.h"
#include "log.h"
#include "util.h"

static int write_port_file(const char *path, unsigned port) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    fprintf(f, "%u\n", port);
    if (fclose(f) != 0) return -1;
    return rename(tmp, path);
}

int main(int argc, char **argv) {
    ss_config cfg;
    char err[1024];
    int rc = ss_config_parse(&cfg, argc, argv, err, sizeof err);
    if (rc == 1) return 0;
    if (rc != 0) {
        ss_log(SS_LOG_ERROR, "%s", err);
        return 2;
    }
    ss_log_level lvl = SS_LOG_INFO;
    ss_log_parse_level(cfg.log_level, &lvl); /* checked by the parser */
    ss_log_set_level(lvl);
    /* Signals go to main's sigwait() only: block them before any thread starts. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP); /* --peers: re-read the ring (cluster.h) */
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    static ss_app app;
    if (ss_app_init(&app, &cfg, err, sizeof err) != 0 || ss_app_start(&app, err, sizeof err) != 0) {
        ss_log(SS_LOG_ERROR, "%s", err);
        ss_app_free(&app);
        return 1;
    }
    ss_log(SS_LOG_INFO,
           "listening on %s:%u (%zu model versions, %u workers, %zu sessions, max body %llu bytes)",
           app.cfg.bind, (unsigned)app.port, ss_reg_count(app.reg), app.cfg.workers,
           ss_table_count(app.table), (unsigned long long)app.cfg.max_body_bytes);
    ss_mver **vs;
    size_t nv;
    if (ss_reg_list(app.reg, 0, &vs, &nv) == 0) {
        for (size_t i = 0; i < nv; i++)
            ss_log(SS_LOG_INFO, "model %s v%u (%u inputs, %u layers)", vs[i]->name, vs[i]->version,
                   vs[i]->model->n_in, vs[i]->model->n_layers);
        ss_reg_list_free(vs, nv);
    }
    if (strcmp(app.cfg.model_control, "none") != 0)
        ss_log(SS_LOG_INFO, "--model-control %s", app.cfg.model_control);
    if (app.h2) ss_log(SS_LOG_INFO, "gRPC on %s:%u", app.cfg.bind, (unsigned)app.grpc_port);
    if (cfg.grpc_port_file[0] && app.h2 && write_port_file(cfg.grpc_port_file, app.grpc_port) != 0)
        ss_log(SS_LOG_ERROR, "cannot write --grpc-port-file %s", cfg.grpc_port_file);
    if (cfg.port_file[0] && write_port_file(cfg.port_file, app.port) != 0)
        ss_log(SS_LOG_ERROR, "cannot write --port-file %s", cfg.port_file);

    int sig = 0;
    while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP)
        ss_cluster_reload(&app);
    ss_log(SS_LOG_INFO, "%s: draining", sig == SIGINT ? "SIGINT" : "SIGTERM");

    if (app.cluster) { /* 0. hand every session to its next owner (cluster.h) */
        __atomic_store_n(&app.draining, 1, __ATOMIC_RELAXED);
        size_t moved = 0, left = 0;
        int64_t t0 = ss_util_mono_us();
        ss_cluster_handoff(&app, &moved, &left);
        ss_log(
            left ? SS_LOG_WARN : SS_LOG_INFO,
            "handoff: %zu sessions moved to the other replicas in %.3f s, %zu left here%s", moved,
            (double)(ss_util_mono_us() - t0) / 1e6, left,
            left ? (cfg.state_dir[0] ? " (saved to --state-dir below)" : " (lost: no --state-dir)")
                 : "");
    }

    ss_app_stop_accepting(&app); /* 1 */
    ss_app_finish_queued(&app);  /* 2 */
    ss_app_resume_all(&app);     /* 3 */
    size_t total = 0;
    int saved = ss_app_save_all(&app, &total); /* 4 */
    ss_app_join_workers(&app);                 /* 5 */
    ss_app_stop_http(&app);                    /* 6 */
    ss_app_free(&app);                         /* 7 */
    if (cfg.state_dir[0] && (size_t)saved < total)
        ss_log(SS_LOG_ERROR, "saved %d of %zu sessions to %s (the others failed, see above); bye",
               saved, total, cfg.state_dir);
    else if (cfg.state_dir[0])
        ss_log(SS_LOG_INFO, "saved %d sessions to %s; bye", saved, cfg.state_dir);
    else
        ss_log(SS_LOG_INFO, "bye");
    return 0;
}
