/* example.c: the C client end to end. Lists the models, opens a session on the first one
 * (or argv[2]), sends three batches of random input spikes, prints the output spikes, takes a
 * snapshot, runs one more batch, rolls the session back to the snapshot, and closes it.
 *   build/spikeclient-example [URL [MODEL [protobuf]]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spikeclient.h"

int main(int argc, char **argv) {
    sc_params p = {.url = argc > 1 ? argv[1] : "http://127.0.0.1:8080",
                   .protobuf = argc > 3 && strcmp(argv[3], "protobuf") == 0,
                   .timeout_ms = 30000};
    sc_client *c = sc_client_new(&p);
    sc_model *models = NULL;
    size_t n_models = 0;
    sc_session s = {0}, copy = {0};
    int rc = 1;
    if (!c) return 1;
    if (sc_models(c, &models, &n_models) < 0 || n_models == 0) {
        fprintf(stderr, "no models: %s\n", n_models ? "" : sc_errstr(c));
        goto done;
    }
    const sc_model *m = &models[0];
    for (size_t i = 0; argc > 2 && i < n_models; i++)
        if (strcmp(models[i].name, argv[2]) == 0) m = &models[i];
    printf("model %s v%u: %u inputs, %u outputs\n", m->name, m->version, m->n_in, m->n_out);

    if (sc_session_open(c, m->name, 60, &s) < 0) goto fail;
    printf("session %s\n", s.session_id);

    /* 20 steps, ~5% of the inputs spiking per step */
    srand(42);
    size_t cap = (size_t)20 * m->n_in, n = 0;
    sc_event *ev = malloc(cap * sizeof *ev);
    if (!ev) goto done;
    for (uint64_t seq = 1; seq <= 3; seq++) {
        n = 0;
        for (uint32_t t = 0; t < 20; t++)
            for (uint32_t j = 0; j < m->n_in && n < cap; j++)
                if (rand() % 20 == 0) ev[n++] = (sc_event){t, j, 1.0f};
        sc_batch b = {.has_seq = 1, .seq = seq, .steps = 20, .events = ev, .n_events = n};
        sc_result r;
        if (sc_step(c, s.session_id, &b, &r) < 0) {
            free(ev);
            goto fail;
        }
        printf("seq %llu: t0=%llu, %zu input events -> %zu output spikes", (unsigned long long)seq,
               (unsigned long long)r.t0, n, r.n_spikes);
        if (r.has_prediction) printf(", prediction %u (%s)", r.prediction, r.label ? r.label : "");
        printf("\n");
        sc_result_free(&r);
    }
    free(ev);

    /* snapshot, one more batch, then roll the session back to the snapshot */
    uint8_t *snap;
    size_t len;
    if (sc_snapshot_get(c, s.session_id, &snap, &len) < 0) goto fail;
    sc_event one = {0, 0, 1.0f};
    sc_batch b = {.steps = 20, .events = &one, .n_events = 1};
    sc_result r;
    if (sc_step(c, s.session_id, &b, &r) < 0) {
        free(snap);
        goto fail;
    }
    printf("one more batch: t=%llu\n", (unsigned long long)(r.t0 + r.steps));
    sc_result_free(&r);
    int put = sc_snapshot_put(c, s.session_id, snap, len);
    free(snap);
    if (put < 0 || sc_session_get(c, s.session_id, &copy) < 0) goto fail;
    printf("snapshot of %zu bytes restored: t=%llu\n", len, (unsigned long long)copy.t);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "error: %s\n", sc_errstr(c));
done:
    if (s.session_id[0]) sc_session_close(c, s.session_id);
    sc_models_free(models, n_models);
    sc_client_free(c);
    return rc;
}
