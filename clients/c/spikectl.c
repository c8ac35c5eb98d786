/* spikectl: a command-line client for spikeserve, built on clients/c/spikeclient.h.
 *
 * Output is meant for pipes: results are printed one JSON object per line on stdout (as the
 * server sent them, or re-encoded from protobuf), messages and the progress bar go to stderr.
 * `stream` watches the session's event stream on a second handle in a thread while the main
 * thread uploads stdin, so results appear while batches are still being typed or piped.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "spikeclient.h"

static sc_params params = {.url = "http://127.0.0.1:8080", .timeout_ms = 60000};

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: spikectl [-u URL] [-k API_KEY] [-p] [-t TIMEOUT_MS] COMMAND [ARGS]\n"
        "\n"
        "  -u URL      server (default $SPIKESERVE_URL, else http://127.0.0.1:$SPIKESERVE_PORT,\n"
        "              else http://127.0.0.1:8080)\n"
        "  -k KEY      API key (or $SPIKESERVE_API_KEY)\n"
        "  -p          use protobuf instead of JSON on the wire\n"
        "  -t MS       per-request timeout (default 60000)\n"
        "\n"
        "commands:\n"
        "  health                      exit 0 when the server is live (/healthz)\n"
        "  ready                       exit 0 when it is ready (/readyz)\n"
        "  models [MODEL]              list the models, or show one\n"
        "  open MODEL[@VERSION] [IDLE_S]  open a session (on that version); prints its id\n"
        "  info ID                     show a session\n"
        "  close ID                    close a session\n"
        "  reset ID                    back to the model's initial state\n"
        "  send ID FILE|-              POST each line of FILE (JSON spike batches) to /steps,\n"
        "                              print each result\n"
        "  infer MODEL FILE|-          same, stateless (/infer)\n"
        "  stream ID                   upload batches from stdin as they come (NDJSON), print\n"
        "                              results as they come (from /events)\n"
        "  events ID                   print the session's events until it ends (Ctrl-C)\n"
        "  snapshot ID FILE            save the session's state to FILE\n"
        "  restore ID FILE             restore FILE into session ID (create or replace)\n"
        "  metrics                     print the Prometheus metrics\n"
        "  eval MODEL [N] [-j J] [-d DIR] [--seed S]\n"
        "                              classify N Fashion-MNIST test images (default 1000)\n"
        "                              with J concurrent connections (default 4); prints\n"
        "                              accuracy and throughput\n");
}

static int fail(sc_client *c, const char *what) {
    fprintf(stderr, "spikectl: %s: %s\n", what, sc_errstr(c));
    return 1;
}

/* A result as one JSON line (used for the protobuf transport and for SSE events). */
static void print_result(const sc_result *r) {
    json_t *j = json_object();
    if (r->session_id[0]) json_object_set_new(j, "session_id", json_string(r->session_id));
    if (r->has_seq) json_object_set_new(j, "seq", json_integer((json_int_t)r->seq));
    json_object_set_new(j, "t0", json_integer((json_int_t)r->t0));
    json_object_set_new(j, "steps", json_integer(r->steps));
    json_t *sp = json_array();
    for (size_t i = 0; i < r->n_spikes; i++)
        json_array_append_new(sp, json_pack("[IIf]", (json_int_t)r->spikes[i].step,
                                            (json_int_t)r->spikes[i].neuron,
                                            (double)r->spikes[i].value));
    json_object_set_new(j, "spikes", sp);
    if (r->n_readout) {
        json_t *ro = json_array();
        for (size_t i = 0; i < r->n_readout; i++)
            json_array_append_new(ro, json_real(r->readout[i]));
        json_object_set_new(j, "readout", ro);
    }
    if (r->has_prediction) {
        json_t *p = json_pack("{s:I}", "index", (json_int_t)r->prediction);
        if (r->label) json_object_set_new(p, "label", json_string(r->label));
        json_object_set_new(j, "prediction", p);
    }
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(7));
    if (s) printf("%s\n", s);
    fflush(stdout);
    free(s);
    json_decref(j);
}

/* health: exit 0 when live (/healthz), the image's HEALTHCHECK; ready: when /readyz is 200 */
static int cmd_health(sc_client *c, int need_ready) {
    int live = sc_healthz(c) == 0;
    if (!live) fprintf(stderr, "spikectl: healthz: %s\n", sc_errstr(c));
    int ready = live && sc_readyz(c) == 0;
    if (live && !ready) fprintf(stderr, "spikectl: readyz: %s\n", sc_errstr(c));
    printf("live: %s\nready: %s\n", live ? "yes" : "no", ready ? "yes" : "no");
    return (need_ready ? ready : live) ? 0 : 1;
}

static const char *enc_name(int k) {
    return k == SC_ENC_RATE ? "rate" : k == SC_ENC_LATENCY ? "latency" : "none";
}

static void print_model(const sc_model *m, int verbose) {
    char shape[256] = "";
    size_t k = 0;
    for (size_t i = 0; i < m->n_layers && k < sizeof shape - 24; i++)
        k += (size_t)snprintf(shape + k, sizeof shape - k, "%s%s:%u", i ? " -> " : "",
                              m->layers[i].kind, m->layers[i].n);
    printf("%-24s v%-3u in=%-6u out=%-5u %s\n", m->name, m->version, m->n_in, m->n_out, shape);
    if (!verbose) return;
    if (m->description) printf("  description: %s\n", m->description);
    printf("  encoding: %s, %u steps, %u warm-up steps, gain %g, threshold %g\n",
           enc_name(m->enc_kind), m->enc_steps, m->enc_warmup_steps, (double)m->enc_gain,
           (double)m->enc_threshold);
    if (m->n_labels) {
        printf("  labels:");
        for (size_t i = 0; i < m->n_labels; i++)
            printf("%s %s", i ? "," : "", m->labels[i]);
        printf("\n");
    }
}

static int cmd_models(sc_client *c, int argc, char **argv) {
    if (argc > 0) {
        sc_model m;
        if (sc_model_get(c, argv[0], &m) < 0) return fail(c, argv[0]);
        print_model(&m, 1);
        sc_model_free(&m);
        return 0;
    }
    sc_model *ms;
    size_t n;
    if (sc_models(c, &ms, &n) < 0) return fail(c, "models");
    for (size_t i = 0; i < n; i++)
        print_model(&ms[i], 0);
    sc_models_free(ms, n);
    return 0;
}

static void print_session(const sc_session *s) {
    printf("session_id: %s\nmodel: %s (v%u)\nt: %llu\n", s->session_id, s->model, s->model_version,
           (unsigned long long)s->t);
    if (s->has_last_seq) printf("last_seq: %llu\n", (unsigned long long)s->last_seq);
    printf("idle_timeout_s: %u\ncreated_at: %s\nlast_active_at: %s\n", s->idle_timeout_s,
           s->created_at, s->last_active_at);
}

/* POST every non-empty line of a file to path; print each answer. */
static int send_lines(sc_client *c, const char *path, const char *file) {
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
    if (!f) {
        fprintf(stderr, "spikectl: %s: %s\n", file, strerror(errno));
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    unsigned long lineno = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0 || line[0] == '#') continue;
        char *resp = NULL;
        long st = sc_request(c, "POST", path, "application/json", line, (size_t)n, &resp, NULL);
        if (st < 0 || st >= 400) {
            fprintf(stderr, "spikectl: %s line %lu: %s\n", file, lineno, sc_errstr(c));
            free(resp);
            rc = 1;
            break;
        }
        printf("%s%s", resp, resp[0] && resp[strlen(resp) - 1] == '\n' ? "" : "\n");
        fflush(stdout);
        free(resp);
    }
    free(line);
    if (f != stdin) fclose(f);
    return rc;
}

/* ---- stream: upload stdin, print results from the event stream ---- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open, done;  /* subscription live; subscription over */
    uint64_t seen_t; /* t after the last printed result */
    int have_target;
    uint64_t target; /* stop once seen_t reaches it */
    sc_client *ev;
    const char *id;
    int rc;
} watch;

static void watch_open(void *ud) {
    watch *w = ud;
    pthread_mutex_lock(&w->mu);
    w->open = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static int watch_event(void *ud, const sc_sse_event *e) {
    watch *w = ud;
    int stop = 0;
    if (e->result)
        print_result(e->result);
    else if (strcmp(e->type, "end") == 0)
        fprintf(stderr, "spikectl: session ended: %s\n", e->data);
    pthread_mutex_lock(&w->mu);
    if (e->result) w->seen_t = e->result->t0 + e->result->steps;
    stop = w->have_target && w->seen_t >= w->target;
    pthread_mutex_unlock(&w->mu);
    return stop;
}

static void *watch_main(void *ud) {
    watch *w = ud;
    int rc = sc_events(w->ev, w->id, NULL, watch_event, watch_open, w);
    pthread_mutex_lock(&w->mu);
    w->rc = rc == SC_EABORTED ? 0 : rc;
    w->done = 1;
    w->open = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static int cmd_stream(sc_client *c, const char *id) {
    sc_session s;
    if (sc_session_get(c, id, &s) < 0) return fail(c, id);
    watch w = {
        .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .id = id, .seen_t = s.t};
    sc_params p = params;
    p.protobuf = 0;
    if (!(w.ev = sc_client_new(&p))) return 1;
    pthread_t th;
    if (pthread_create(&th, NULL, watch_main, &w) != 0) {
        sc_client_free(w.ev);
        return 1;
    }
    pthread_mutex_lock(&w.mu);
    while (!w.open)
        pthread_cond_wait(&w.cv, &w.mu);
    int sub_failed = w.done;
    pthread_mutex_unlock(&w.mu);
    int rc = 0;
    if (sub_failed) {
        fprintf(stderr, "spikectl: events: %s\n", sc_errstr(w.ev));
        rc = 1;
    } else {
        sc_stream_summary sum;
        if (sc_stream_file(c, id, stdin, &sum) < 0) {
            fprintf(stderr, "spikectl: stream: %s\n", sc_errstr(c));
            rc = 1;
        }
        if (sc_err(c) == 0 || sc_err(c) == SC_EHTTP)
            fprintf(stderr, "streamed %llu lines: %llu ok, %llu failed; session at t=%llu\n",
                    (unsigned long long)sum.lines, (unsigned long long)sum.ok,
                    (unsigned long long)sum.failed, (unsigned long long)sum.t);
    }
    /* wait until the events of every processed batch were printed */
    if (!sub_failed && sc_session_get(c, id, &s) == 0) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 30;
        pthread_mutex_lock(&w.mu);
        w.have_target = 1;
        w.target = s.t;
        while (!w.done && w.seen_t < w.target)
            if (pthread_cond_timedwait(&w.cv, &w.mu, &until) == ETIMEDOUT) break;
        if (w.seen_t < w.target) {
            fprintf(stderr, "spikectl: events stopped at t=%llu, session is at t=%llu\n",
                    (unsigned long long)w.seen_t, (unsigned long long)w.target);
            rc = 1;
        }
        pthread_mutex_unlock(&w.mu);
    }
    sc_cancel(w.ev);
    pthread_join(th, NULL);
    sc_client_free(w.ev);
    return rc;
}

static int print_event(void *ud, const sc_sse_event *e) {
    (void)ud;
    printf("event: %s\nid: %s\ndata: %s\n\n", e->type, e->id, e->data);
    fflush(stdout);
    return strcmp(e->type, "end") == 0;
}

/* ---- snapshots ---- */

static int cmd_snapshot(sc_client *c, const char *id, const char *file) {
    uint8_t *buf;
    size_t len;
    if (sc_snapshot_get(c, id, &buf, &len) < 0) return fail(c, id);
    FILE *f = fopen(file, "wb");
    int ok = f && fwrite(buf, 1, len, f) == len;
    if (f && fclose(f) != 0) ok = 0;
    free(buf);
    if (!ok) {
        fprintf(stderr, "spikectl: %s: %s\n", file, strerror(errno));
        return 1;
    }
    fprintf(stderr, "saved %zu bytes to %s\n", len, file);
    return 0;
}

static int cmd_restore(sc_client *c, const char *id, const char *file) {
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "spikectl: %s: %s\n", file, strerror(errno));
        return 1;
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0, n;
    do {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            uint8_t *p = realloc(buf, cap);
            if (!p) break;
            buf = p;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    fclose(f);
    int rc = sc_snapshot_put(c, id, buf, len);
    free(buf);
    if (rc < 0) return fail(c, id);
    fprintf(stderr, "restored session %s from %s\n", id, file);
    return 0;
}

/* ---- eval: Fashion-MNIST through /classify ---- */

static uint8_t *read_idx(const char *path, uint32_t dims_want, uint32_t *count, uint32_t *item) {
    gzFile g = gzopen(path, "rb");
    if (!g) return NULL;
    uint8_t hdr[16];
    uint8_t *data = NULL;
    int hl = 4 + 4 * (int)dims_want;
    if (gzread(g, hdr, (unsigned)hl) != hl || hdr[2] != 0x08 || hdr[3] != dims_want) goto done;
    uint32_t d[3] = {0, 1, 1};
    for (uint32_t i = 0; i < dims_want; i++)
        d[i] = (uint32_t)hdr[4 + 4 * i] << 24 | (uint32_t)hdr[5 + 4 * i] << 16 |
               (uint32_t)hdr[6 + 4 * i] << 8 | hdr[7 + 4 * i];
    *count = d[0];
    *item = d[1] * d[2];
    size_t total = (size_t)*count * *item;
    if (!(data = malloc(total ? total : 1))) goto done;
    if (gzread(g, data, (unsigned)total) != (int)total) {
        free(data);
        data = NULL;
    }
done:
    gzclose(g);
    return data;
}

typedef struct {
    pthread_mutex_t mu;
    const char *model;
    const uint8_t *images, *labels;
    uint32_t pixels, n, next, done, correct, errors, running;
    uint64_t seed;
    double lat_sum;
    float *lat; /* seconds, per image */
    char first_err[512];
} eval_job;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *eval_worker(void *ud) {
    eval_job *j = ud;
    sc_client *c = sc_client_new(&params);
    float *x = malloc(j->pixels * sizeof *x);
    for (; c && x;) {
        pthread_mutex_lock(&j->mu);
        uint32_t i = j->next < j->n ? j->next++ : j->n;
        pthread_mutex_unlock(&j->mu);
        if (i >= j->n) break;
        for (uint32_t k = 0; k < j->pixels; k++)
            x[k] = j->images[(size_t)i * j->pixels + k] / 255.0f;
        sc_result r;
        double t0 = now_s();
        int rc = sc_classify(c, j->model, x, j->pixels, j->seed + i, &r);
        double dt = now_s() - t0;
        pthread_mutex_lock(&j->mu);
        j->done++;
        j->lat_sum += dt;
        j->lat[i] = (float)dt;
        if (rc < 0 || !r.has_prediction) {
            if (!j->errors++)
                snprintf(j->first_err, sizeof j->first_err, "image %u: %s", i,
                         rc < 0 ? sc_errstr(c) : "no prediction in the answer");
        } else if (r.prediction == j->labels[i]) {
            j->correct++;
        }
        pthread_mutex_unlock(&j->mu);
        if (rc == 0) sc_result_free(&r);
    }
    free(x);
    sc_client_free(c);
    pthread_mutex_lock(&j->mu);
    j->running--; /* the progress loop ends when every worker has */
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void progress(const eval_job *j, double elapsed, int final) {
    int width = 30, fill = j->n ? (int)((uint64_t)j->done * width / j->n) : width;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r[%s] %u/%u  acc %.1f%%  %.1f img/s  errors %u%s", bar, j->done, j->n,
            j->done ? 100.0 * j->correct / j->done : 0.0, elapsed > 0 ? j->done / elapsed : 0.0,
            j->errors, final ? "\n" : "");
    fflush(stderr);
}

static int cmd_eval(sc_client *c, int argc, char **argv) {
    const char *model = NULL, *dir = "/usr/share/datasets/fashion-mnist";
    uint32_t n = 1000, jobs = 4;
    uint64_t seed = 1;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-j") == 0 && i + 1 < argc)
            jobs = (uint32_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "-d") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (!model)
            model = argv[i];
        else
            n = (uint32_t)strtoul(argv[i], NULL, 10);
    }
    if (!model || jobs < 1 || jobs > 256) {
        usage(stderr);
        return 2;
    }
    sc_model m;
    if (sc_model_get(c, model, &m) < 0) return fail(c, model);
    char ip[1024], lp[1024];
    snprintf(ip, sizeof ip, "%s/t10k-images-idx3-ubyte.gz", dir);
    snprintf(lp, sizeof lp, "%s/t10k-labels-idx1-ubyte.gz", dir);
    uint32_t ni = 0, nl = 0, pixels = 0, one = 0;
    uint8_t *images = read_idx(ip, 3, &ni, &pixels), *labels = read_idx(lp, 1, &nl, &one);
    int rc = 1;
    if (!images || !labels || ni != nl) {
        fprintf(stderr, "spikectl: cannot read the Fashion-MNIST test set in %s\n", dir);
        goto done;
    }
    if (pixels != m.n_in) {
        fprintf(stderr, "spikectl: model %s takes %u inputs, the images have %u pixels\n", model,
                m.n_in, pixels);
        goto done;
    }
    if (n > ni) n = ni;
    eval_job j = {.mu = PTHREAD_MUTEX_INITIALIZER,
                  .model = model,
                  .images = images,
                  .labels = labels,
                  .pixels = pixels,
                  .n = n,
                  .seed = seed};
    fprintf(stderr, "classifying %u test images with %s (%u connections)\n", n, model, jobs);
    pthread_t th[256];
    double t0 = now_s();
    uint32_t started = 0;
    if (!(j.lat = calloc(n ? n : 1, sizeof *j.lat))) goto done;
    for (; started < jobs; started++) {
        j.running++;
        if (pthread_create(&th[started], NULL, eval_worker, &j) != 0) {
            j.running--;
            break;
        }
    }
    for (;;) {
        pthread_mutex_lock(&j.mu);
        int finished = j.done >= j.n || j.running == 0;
        progress(&j, now_s() - t0, 0);
        pthread_mutex_unlock(&j.mu);
        if (finished) break;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    for (uint32_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    double el = now_s() - t0;
    progress(&j, el, 1);
    if (j.errors)
        fprintf(stderr, "spikectl: %u requests failed; first: %s\n", j.errors, j.first_err);
    qsort(j.lat, j.done, sizeof *j.lat, cmp_float);
    printf("model: %s\nimages: %u\ncorrect: %u\naccuracy: %.2f%%\nerrors: %u\n"
           "elapsed_s: %.3f\nthroughput_img_s: %.1f\nmean_latency_ms: %.2f\n"
           "p50_latency_ms: %.2f\np99_latency_ms: %.2f\n",
           model, j.done, j.correct, j.done ? 100.0 * j.correct / j.done : 0.0, j.errors, el,
           el > 0 ? j.done / el : 0.0, j.done ? 1000.0 * j.lat_sum / j.done : 0.0,
           j.done ? 1000.0 * j.lat[j.done / 2] : 0.0,
           j.done ? 1000.0 * j.lat[(size_t)(j.done - 1) * 99 / 100] : 0.0);
    rc = j.errors || j.done != n ? 1 : 0;
    free(j.lat);
done:
    free(images);
    free(labels);
    sc_model_free(&m);
    return rc;
}

int main(int argc, char **argv) {
    static char url[96];
    const char *port = getenv("SPIKESERVE_PORT");
    if (port && *port && strlen(port) < 8) {
        snprintf(url, sizeof url, "http://127.0.0.1:%s", port);
        params.url = url;
    }
    if (getenv("SPIKESERVE_URL")) params.url = getenv("SPIKESERVE_URL");
    if (getenv("SPIKESERVE_API_KEY")) params.api_key = getenv("SPIKESERVE_API_KEY");
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-u") == 0 && i + 1 < argc)
            params.url = argv[++i];
        else if (strcmp(argv[i], "-k") == 0 && i + 1 < argc)
            params.api_key = argv[++i];
        else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc)
            params.timeout_ms = atol(argv[++i]);
        else if (strcmp(argv[i], "-p") == 0)
            params.protobuf = 1;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[i++];
    int na = argc - i;
    char **a = argv + i;
    sc_client *c = sc_client_new(&params);
    if (!c) {
        fprintf(stderr, "spikectl: cannot create a client for %s\n", params.url);
        return 1;
    }
    int rc = 2;
    char path[512];
    sc_session s;
    if (strcmp(cmd, "health") == 0 || strcmp(cmd, "ready") == 0)
        rc = cmd_health(c, cmd[0] == 'r');
    else if (strcmp(cmd, "models") == 0)
        rc = cmd_models(c, na, a);
    else if (strcmp(cmd, "metrics") == 0) {
        char *m = sc_metrics(c);
        rc = m ? (fputs(m, stdout), 0) : fail(c, "metrics");
        free(m);
    } else if (strcmp(cmd, "open") == 0 && na >= 1) {
        char model[128];
        snprintf(model, sizeof model, "%s", a[0]);
        char *at = strchr(model, '@');
        char *end = NULL;
        unsigned long version = 0;
        if (at) {
            *at = 0;
            version = strtoul(at + 1, &end, 10);
        }
        if (at && (end == at + 1 || *end || version == 0 || version > UINT32_MAX)) {
            fprintf(stderr, "spikectl: open %s: VERSION must be a positive integer\n", a[0]);
            rc = 2;
        } else
            rc = sc_session_open_version(c, model, (uint32_t)version,
                                         na > 1 ? (uint32_t)atoi(a[1]) : 0, &s) < 0
                     ? fail(c, a[0])
                     : (printf("%s\n", s.session_id), 0);
    } else if (strcmp(cmd, "info") == 0 && na == 1) {
        rc = sc_session_get(c, a[0], &s) < 0 ? fail(c, a[0]) : (print_session(&s), 0);
    } else if (strcmp(cmd, "close") == 0 && na == 1) {
        rc = sc_session_close(c, a[0]) < 0 ? fail(c, a[0]) : 0;
    } else if (strcmp(cmd, "reset") == 0 && na == 1) {
        rc = sc_session_reset(c, a[0]) < 0 ? fail(c, a[0]) : 0;
    } else if ((strcmp(cmd, "send") == 0 || strcmp(cmd, "infer") == 0) && na == 2) {
        /* the lines are JSON and are printed as answered: this one speaks JSON */
        sc_params jp = params;
        jp.protobuf = 0;
        sc_client_free(c);
        if (!(c = sc_client_new(&jp))) return 1;
        snprintf(path, sizeof path, cmd[0] == 's' ? "/v1/sessions/%s/steps" : "/v1/models/%s/infer",
                 a[0]);
        rc = strpbrk(a[0], "/?#% ") ? (fprintf(stderr, "spikectl: bad name %s\n", a[0]), 1)
                                    : send_lines(c, path, a[1]);
    } else if (strcmp(cmd, "stream") == 0 && na == 1) {
        rc = cmd_stream(c, a[0]);
    } else if (strcmp(cmd, "events") == 0 && na == 1) {
        rc = sc_events(c, a[0], NULL, print_event, NULL, NULL) < 0 ? fail(c, a[0]) : 0;
    } else if (strcmp(cmd, "snapshot") == 0 && na == 2) {
        rc = cmd_snapshot(c, a[0], a[1]);
    } else if (strcmp(cmd, "restore") == 0 && na == 2) {
        rc = cmd_restore(c, a[0], a[1]);
    } else if (strcmp(cmd, "eval") == 0) {
        rc = cmd_eval(c, na, a);
    } else {
        usage(stderr);
    }
    sc_client_free(c);
    return rc;
}
