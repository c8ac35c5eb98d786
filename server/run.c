/* run.c: spikeserve-run, the command-line runner (issue 2, item 6).
 *
 *   spikeserve-run [options] MODEL < batches.ndjson > results.ndjson
 *
 * One session state, stepped by one spike batch per input line (the JSON of SPEC.md
 * section 3); one step result per line out. It is the server's /stream without HTTP, so it
 * uses the same decoder and encoder (batch.h) and the same limits.
 *
 * A bad line is reported on stderr as "line N: <field>: <what>" and leaves the state as it
 * was; the runner goes on with the next line and exits 1 at the end. Output buffers grow
 * to the largest batch seen and are reused: nothing is allocated per line otherwise.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "codec.h"
#include "model.h"
#include "state.h"
#include "step.h"

#define DEFAULT_MAX_STEPS 10000u
#define DEFAULT_MAX_EVENTS 1000000u
#define DEFAULT_MAX_LINE (64u << 20)

static void usage(FILE *f) {
    fprintf(f,
            "usage: spikeserve-run [options] MODEL < batches.ndjson\n"
            "\n"
            "Runs one session of MODEL (a spikeserve model file): reads spike batches from\n"
            "stdin, one JSON object per line (SPEC section 3: {\"seq\", \"steps\", \"events\" |\n"
            "\"dense\", \"outputs\"}), and prints one JSON step result per line on stdout.\n"
            "The state and the time t0 carry over from line to line. Empty lines are skipped.\n"
            "A line with \"seq\" must carry the previous seq + 1 (the first seq is free).\n"
            "\n"
            "A bad line is reported on stderr as \"line N: FIELD: problem\", is skipped (the\n"
            "state does not move) and the runner continues with the next line; the exit\n"
            "status is then 1. Exit status 2: bad usage or a model that does not load.\n"
            "\n"
            "options:\n"
            "  --kernels NAME     step kernels: auto (default, best for this CPU) or scalar\n"
            "  --max-steps N      steps per batch (default %u)\n"
            "  --max-events N     input events per batch; dense rows count steps x inputs\n"
            "                     (default %u)\n"
            "  --max-line N       bytes per input line (default %u)\n"
            "  -h, --help         this help\n",
            DEFAULT_MAX_STEPS, DEFAULT_MAX_EVENTS, DEFAULT_MAX_LINE);
}

static int parse_u32(const char *opt, const char *s, uint32_t min, uint32_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = s ? strtoull(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || s[0] == '-' || v < min || v > UINT32_MAX) {
        fprintf(stderr, "spikeserve-run: %s: expected an integer in [%u, %u], got \"%s\"\n", opt,
                min, UINT32_MAX, s ? s : "");
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* One line of f into *buf (without the newline). 1: a line; 0: end of input; -1: longer
 * than max (the rest of it is consumed); -2: out of memory. */
static int read_line(FILE *f, char **buf, size_t *cap, size_t *len, size_t max) {
    int c, too_long = 0;
    *len = 0;
    while ((c = getc_unlocked(f)) != EOF && c != '\n') {
        if (too_long) continue;
        if (*len >= max) {
            too_long = 1;
            continue;
        }
        if (*len + 1 >= *cap) {
            size_t ncap = *cap ? *cap * 2 : 4096;
            char *p = realloc(*buf, ncap);
            if (!p) return -2;
            *buf = p;
            *cap = ncap;
        }
        (*buf)[(*len)++] = (char)c;
    }
    if (c == EOF && *len == 0 && !too_long) return 0;
    if (too_long) return -1;
    if (*len && (*buf)[*len - 1] == '\r') (*len)--;
    return 1;
}

static int blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

/* Output memory grown to the largest batch so far, laid out by the engine's output plan
 * (output.h) for each batch. 0 or -1 (out of memory). */
static int outputs_prepare(void **mem, size_t *cap, const spk_model *m, const ss_batch *b,
                           spk_output *o) {
    size_t need = ss_batch_out_bytes(m, b);
    if (need == SIZE_MAX) return -1;
    if (need > *cap || !*mem) {
        void *p = realloc(*mem, need ? need : 1);
        if (!p) return -1;
        *mem = p;
        *cap = need;
    }
    spk_output_layout(m, b->steps, ss_batch_plan(b->outputs), *mem, o);
    return 0;
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *kernels = NULL;
    ss_limits lim = {DEFAULT_MAX_STEPS, DEFAULT_MAX_EVENTS, 0}; /* outputs: no limit */
    uint32_t max_line = DEFAULT_MAX_LINE;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--kernels")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "spikeserve-run: --kernels needs a value (auto or scalar)\n");
                return 2;
            }
            kernels = argv[++i];
        } else if (!strcmp(a, "--max-steps")) {
            if (parse_u32(a, i + 1 < argc ? argv[++i] : NULL, 1, &lim.max_steps)) return 2;
        } else if (!strcmp(a, "--max-events")) {
            if (parse_u32(a, i + 1 < argc ? argv[++i] : NULL, 0, &lim.max_events)) return 2;
        } else if (!strcmp(a, "--max-line")) {
            if (parse_u32(a, i + 1 < argc ? argv[++i] : NULL, 1, &max_line)) return 2;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "spikeserve-run: unknown option %s (see --help)\n", a);
            return 2;
        } else if (model_path) {
            fprintf(stderr, "spikeserve-run: one MODEL only (got %s and %s)\n", model_path, a);
            return 2;
        } else {
            model_path = a;
        }
    }
    if (!model_path) {
        usage(stderr);
        return 2;
    }
    char err[512];
    if (kernels && spk_set_kernels(kernels)) {
        fprintf(stderr, "spikeserve-run: --kernels %s: unknown (use auto or scalar)\n", kernels);
        return 2;
    }
    spk_model *m = NULL;
    if (spk_model_load_file(model_path, &m, err, sizeof err)) {
        fprintf(stderr, "spikeserve-run: %s: %s\n", model_path, err);
        return 2;
    }
    spk_state *st = spk_state_create(m);
    spk_scratch *sc = spk_scratch_create(m);
    void *outmem = NULL;
    size_t outcap = 0;
    spk_output out;
    char *line = NULL;
    size_t cap = 0, len = 0, lineno = 0, n_failed = 0;
    int have_seq = 0, rc, status = 0;
    uint64_t last_seq = 0;
    if (!st || !sc) {
        fprintf(stderr, "spikeserve-run: out of memory\n");
        status = 2;
        goto done;
    }
    while ((rc = read_line(stdin, &line, &cap, &len, max_line)) != 0) {
        lineno++;
        if (rc == -2) {
            fprintf(stderr, "line %zu: out of memory\n", lineno);
            status = 2;
            break;
        }
        if (rc == -1) {
            fprintf(stderr, "line %zu: longer than %u bytes (--max-line)\n", lineno, max_line);
            n_failed++;
            continue;
        }
        if (blank(line, len)) continue;
        ss_batch b;
        if (ss_batch_from_json(line, len, m, &lim, &b, err, sizeof err)) {
            fprintf(stderr, "line %zu: %s\n", lineno, err);
            n_failed++;
            continue;
        }
        if (b.has_seq && have_seq && b.seq != last_seq + 1) {
            fprintf(stderr, "line %zu: seq: %llu is not last seq + 1 (last seq %llu)\n", lineno,
                    (unsigned long long)b.seq, (unsigned long long)last_seq);
            n_failed++;
            ss_batch_free(&b);
            continue;
        }
        if (outputs_prepare(&outmem, &outcap, m, &b, &out)) {
            fprintf(stderr, "line %zu: out of memory for %u steps of output\n", lineno, b.steps);
            n_failed++;
            ss_batch_free(&b);
            continue;
        }
        uint64_t t0 = spk_state_t(st);
        spk_input in = ss_batch_input(&b);
        if (spk_step(st, &in, &out, sc, err, sizeof err)) {
            fprintf(stderr, "line %zu: %s\n", lineno, err);
            n_failed++;
            ss_batch_free(&b);
            continue;
        }
        if (b.has_seq) {
            have_seq = 1;
            last_seq = b.seq;
        }
        ss_result r = {NULL, b.has_seq, b.seq, t0, b.steps, b.outputs, m, &out, NULL, NULL};
        size_t n;
        char *json = ss_result_json(&r, &n);
        ss_batch_free(&b);
        if (!json) {
            fprintf(stderr, "line %zu: out of memory encoding the result\n", lineno);
            status = 2;
            break;
        }
        json[n] = '\n';
        fwrite(json, 1, n + 1, stdout);
        fflush(stdout); /* a result per line as it is computed: usable as a co-process */
        free(json);
    }
    if (ferror(stdin)) {
        fprintf(stderr, "spikeserve-run: reading stdin: %s\n", strerror(errno));
        status = 2;
    }
    if (ferror(stdout)) {
        fprintf(stderr, "spikeserve-run: writing stdout failed\n");
        status = 2;
    }
    if (!status && n_failed) {
        fprintf(stderr, "spikeserve-run: %zu of %zu lines failed\n", n_failed, lineno);
        status = 1;
    }
done:
    free(line);
    free(outmem);
    spk_scratch_free(sc);
    spk_state_free(st);
    spk_model_free(m);
    return status;
}
