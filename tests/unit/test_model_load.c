/* test_model_load.c: the model loader accepts a good file and refuses every bad one with a
 * message naming the field; truncations at every offset and random corruptions of a small
 * file are refused (or, at a field boundary, give a valid smaller model) without a crash. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/testmodel.h"
#include "../tap.h"
#include "encode.h"
#include "model.h"
#include "state.h"
#include "step.h"

/* 1 when fn() returns normally in a child process (exit 0), 0 when it crashed there. */
static int runs_cleanly(void (*fn)(void)) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return 0;
    if (pid == 0) {
        fn();
        _exit(0);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid) return 0;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void free_null_model(void) {
    spk_model_free(NULL);
}

static const tm_spec SMALL = {.n_in = 6,
                              .n_layers = 2,
                              .n = {8, 5},
                              .readout = 3,
                              .init_state = 1,
                              .vary = 1,
                              .n_labels = 3,
                              .encoding = 1,
                              .seed = 7};

/* Pack pm and load it; returns rc, err gets the message. */
static int load_msg(const Spikeserve__Model *pm, char *err, size_t errlen) {
    size_t len;
    uint8_t *b = tm_pack(pm, &len);
    spk_model *m = (spk_model *)1;
    err[0] = 0;
    int rc = spk_model_load_bytes(b, len, &m, err, errlen);
    if (rc == 0)
        spk_model_free(m);
    else if (m != NULL)
        rc = 99; /* *out must be NULL on failure */
    free(b);
    return rc;
}

static float *grow(float *v, size_t n) {
    float *p = realloc(v, (n ? n : 1) * sizeof *p);
    for (size_t k = 0; k < n; k++)
        p[k] = 0.5f;
    return p;
}

static void test_good(void) {
    Spikeserve__Model *pm = tm_model_new(&SMALL);
    size_t len;
    uint8_t *b = tm_pack(pm, &len);
    spk_model *m = NULL, *m2 = NULL;
    char err[256] = "";
    is_int(spk_model_load_bytes(b, len, &m, err, sizeof err), 0, "good model loads");
    if (!m) {
        diag("%s", err);
        return;
    }
    is_str(m->name, "test-7", "name");
    is_int(m->version, 1, "version");
    is_int(m->n_in, 6, "n_in");
    is_int(m->n_layers, 2, "n_layers");
    is_int(m->has_readout, 1, "has readout");
    is_int(spk_model_n_out(m), 3, "n_out is readout.n");
    is_int(m->max_n, 8, "max_n");
    is_int(m->state_floats, 3 * 8 + 3 * 5 + 3, "state_floats");
    is_int(m->n_labels, 3, "labels");
    is_str(m->labels[2], "class2", "label text");
    is_str(m->description, "a random model for the engine tests", "description");
    is_int(m->encoding.kind, SPK_ENC_RATE, "encoding kind");
    is_int(m->encoding.steps, 20, "encoding steps");
    ok(m->encoding.gain == 0.5f, "encoding gain");
    int transposed = 1, aligned = 1;
    for (uint32_t l = 0; l < 2; l++) {
        const spk_layer *L = &m->layers[l];
        const Spikeserve__SrcLayer *P = pm->layers[l];
        for (uint32_t k = 0; k < L->n; k++)
            for (uint32_t j = 0; j < L->n_in; j++)
                if (L->wt[(size_t)j * L->n + k] != P->weights[(size_t)k * L->n_in + j])
                    transposed = 0;
        aligned &= ((uintptr_t)L->wt % 64 == 0) && ((uintptr_t)L->b_h % 64 == 0) &&
                   ((uintptr_t)L->h0 % 64 == 0);
        ok(L->alpha == P->alpha && L->rho == P->rho && L->r == P->r && L->r_s == P->r_s &&
               L->z_hyp == P->z_hyp && L->z_dep == P->z_dep && L->theta == P->theta,
           "layers[%u] constants copied", l);
        ok(memcmp(L->i0, P->init_i, L->n * 4) == 0 && memcmp(L->hs0, P->init_hs, L->n * 4) == 0,
           "layers[%u] initial state copied", l);
    }
    ok(transposed, "W stored transposed (row j = weights out of input j)");
    ok(aligned, "parameter arrays 64-byte aligned");
    for (uint32_t k = 0; k < 3; k++)
        for (uint32_t j = 0; j < 5; j++)
            if (m->readout.wt[j * 3 + k] != pm->readout->weights[k * 5 + j]) transposed = 0;
    ok(transposed, "readout W transposed");
    /* checksum: stable, and changed by one weight, by a constant, by an initial state */
    is_int(spk_model_load_bytes(b, len, &m2, err, sizeof err), 0, "loads again");
    ok(m2 && m2->checksum == m->checksum, "checksum is deterministic");
    spk_model_free(m2);
    uint64_t base = m->checksum;
    float *targets[] = {&pm->layers[1]->weights[3], &pm->layers[0]->theta,
                        &pm->layers[0]->init_h[1], &pm->readout->bias[0]};
    const char *what[] = {"a weight", "theta", "an initial state", "a readout bias"};
    for (int k = 0; k < 4; k++) {
        float save = *targets[k];
        *targets[k] = nextafterf(save, 10.f);
        uint8_t *b2 = tm_pack(pm, &len);
        m2 = NULL;
        spk_model_load_bytes(b2, len, &m2, err, sizeof err);
        ok(m2 && m2->checksum != base, "one-ulp change of %s changes the checksum", what[k]);
        spk_model_free(m2);
        free(b2);
        *targets[k] = save;
    }
    /* name, labels, description do not enter the checksum */
    free(pm->description);
    pm->description = strdup("other words");
    uint8_t *b3 = tm_pack(pm, &len);
    m2 = NULL;
    spk_model_load_bytes(b3, len, &m2, err, sizeof err);
    ok(m2 && m2->checksum == base, "the description is not a parameter");
    spk_model_free(m2);
    free(b3);
    spk_model_free(m);
    ok(runs_cleanly(free_null_model),
       "spk_model_free(NULL) is a no-op (a child calling it exits 0)");
    free(b);
    tm_model_free(pm);
}

/* A mutation of the SMALL model and the exact message the loader must give. */
typedef struct {
    const char *want;
    void (*mutate)(Spikeserve__Model *pm);
} bad_case;

#define MUT(fn, body)                                                                              \
    static void fn(Spikeserve__Model *pm) {                                                        \
        body;                                                                                      \
    }
MUT(m_name_empty, pm->name[0] = 0)
MUT(m_name_long, free(pm->name); pm->name = malloc(70); memset(pm->name, 'a', 65); pm->name[65] = 0)
MUT(m_name_char, strcpy(pm->name, "a/b"))
MUT(m_version, pm->version = 0)
MUT(m_n_in_zero, pm->n_in = 0)
MUT(m_n_in_big, pm->n_in = SPK_MAX_INPUTS + 1)
MUT(m_n_in_mismatch, pm->n_in = 7)
MUT(m_no_layers, pm->n_layers = 0)
MUT(m_too_many_layers, pm->n_layers = 17)
MUT(m_l1_n_in, pm->layers[1]->n_in = 5)
MUT(m_l0_n_zero, pm->layers[0]->n = 0; pm->layers[1]->n_in = 0)
MUT(m_l0_n_big, pm->layers[0]->n = 70000; pm->layers[1]->n_in = 70000)
MUT(m_l1_weights, pm->layers[1]->n_weights = 39)
MUT(m_l0_b_h, pm->layers[0]->n_b_h = 3)
MUT(m_l1_init_i, pm->layers[1]->n_init_i = 4)
MUT(m_l0_init_h, pm->layers[0]->n_init_h = 5)
MUT(m_l0_init_hs, pm->layers[0]->n_init_hs = 9;
    pm->layers[0]->init_hs = grow(pm->layers[0]->init_hs, 9))
MUT(m_w_nan, pm->layers[0]->weights[3] = NAN)
MUT(m_w_inf, pm->layers[1]->weights[0] = -INFINITY)
MUT(m_w_big, pm->layers[0]->weights[0] = 1e7f)
MUT(m_b_inf, pm->layers[1]->b_h[2] = INFINITY)
MUT(m_init_nan, pm->layers[1]->init_hs[4] = NAN)
MUT(m_alpha, pm->layers[0]->alpha = 1.5f)
MUT(m_alpha_neg, pm->layers[1]->alpha = -0.1f)
MUT(m_rho, pm->layers[0]->rho = 0)
MUT(m_r, pm->layers[0]->r = INFINITY)
MUT(m_r_s, pm->layers[1]->r_s = NAN)
MUT(m_z_hyp, pm->layers[0]->z_hyp = -0.25f)
MUT(m_z_dep, pm->layers[1]->z_dep = 2)
MUT(m_theta, pm->layers[0]->theta = NAN)
MUT(m_ro_n_in, pm->readout->n_in = 8)
MUT(m_ro_n, pm->readout->n = 0)
MUT(m_ro_weights, pm->readout->n_weights = 16;
    pm->readout->weights = grow(pm->readout->weights, 16))
MUT(m_ro_w_nan, pm->readout->weights[14] = NAN)
MUT(m_ro_bias, pm->readout->n_bias = 0)
MUT(m_ro_init, pm->readout->n_init_o = 2)
MUT(m_ro_alpha, pm->readout->alpha = 1.01f)
MUT(m_labels, pm->n_labels = 2)
MUT(m_label_long, free(pm->labels[1]); pm->labels[1] = malloc(200); memset(pm->labels[1], 'x', 129);
    pm->labels[1][129] = 0)
MUT(m_label_utf8, strcpy(pm->labels[0], "a\xC3("))
MUT(m_descr_utf8, strcpy(pm->description, "bad \xFF byte"))
MUT(m_descr_long, free(pm->description); pm->description = malloc(5000);
    memset(pm->description, 'd', 4097); pm->description[4097] = 0)
MUT(m_enc_kind, pm->encoding->kind = 7)
MUT(m_enc_steps, pm->encoding->steps = 0)
MUT(m_enc_steps_big, pm->encoding->steps = 100001)
MUT(m_enc_warmup, pm->encoding->warmup_steps = 200000)
MUT(m_enc_gain, pm->encoding->gain = -1)
MUT(m_enc_thr, pm->encoding->kind = SPIKESERVE__ENCODING__KIND__LATENCY;
    pm->encoding->threshold = NAN)
MUT(m_params, pm->n_in = 1048576; pm->layers[0]->n_in = 1048576; pm->layers[0]->n = 65536)
MUT(m_labels_noro, free(pm->readout->weights); free(pm->readout->bias); free(pm->readout->init_o);
    free(pm->readout); pm->readout = NULL; pm->n_labels = 3)

static const bad_case BAD[] = {
    {"name: 0 characters, expected 1..64", m_name_empty},
    {"name: 65 characters, expected 1..64", m_name_long},
    {"name: character 0x2f at 1 is not in [A-Za-z0-9._-]", m_name_char},
    {"version: 0, must be >= 1", m_version},
    {"n_in: 0 out of range [1, 1048576]", m_n_in_zero},
    {"n_in: 1048577 out of range [1, 1048576]", m_n_in_big},
    {"layers[0].n_in: 6, expected 7 (n_in)", m_n_in_mismatch},
    {"layers: 0 layers, expected 1..16", m_no_layers},
    {"layers: 17 layers, expected 1..16", m_too_many_layers},
    {"layers[1].n_in: 5, expected 8 (layers[0].n)", m_l1_n_in},
    {"layers[0].n: 0 out of range [1, 65536]", m_l0_n_zero},
    {"layers[0].n: 70000 out of range [1, 65536]", m_l0_n_big},
    {"layers[1].weights: 39 values, expected 40 (5 x 8)", m_l1_weights},
    {"layers[0].b_h: 3 values, expected 8", m_l0_b_h},
    {"layers[1].init_i: 4 values, expected 0 or 5", m_l1_init_i},
    {"layers[0].init_h: 5 values, expected 0 or 8", m_l0_init_h},
    {"layers[0].init_hs: 9 values, expected 0 or 8", m_l0_init_hs},
    {"layers[0].weights[3]: nan is not finite", m_w_nan},
    {"layers[1].weights[0]: -inf is not finite", m_w_inf},
    {"layers[0].weights[0]: 1e+07 exceeds the limit 1e+06 in magnitude", m_w_big},
    {"layers[1].b_h[2]: inf is not finite", m_b_inf},
    {"layers[1].init_hs[4]: nan is not finite", m_init_nan},
    {"layers[0].alpha: 1.5 out of range [0, 1]", m_alpha},
    {"layers[1].alpha: -0.1 out of range [0, 1]", m_alpha_neg},
    {"layers[0].rho: 0 out of range (0, 1e+06]", m_rho},
    {"layers[0].r: inf out of range [-1e+06, 1e+06]", m_r},
    {"layers[1].r_s: nan out of range [-1e+06, 1e+06]", m_r_s},
    {"layers[0].z_hyp: -0.25 out of range [0, 1]", m_z_hyp},
    {"layers[1].z_dep: 2 out of range [0, 1]", m_z_dep},
    {"layers[0].theta: nan out of range [-1e+06, 1e+06]", m_theta},
    {"readout.n_in: 8, expected 5 (layers[1].n)", m_ro_n_in},
    {"readout.n: 0 out of range [1, 65536]", m_ro_n},
    {"readout.weights: 16 values, expected 15 (3 x 5)", m_ro_weights},
    {"readout.weights[14]: nan is not finite", m_ro_w_nan},
    {"readout.bias: 0 values, expected 3", m_ro_bias},
    {"readout.init_o: 2 values, expected 0 or 3", m_ro_init},
    {"readout.alpha: 1.01 out of range [0, 1]", m_ro_alpha},
    {"labels: 2 labels, expected 0 or 3 (readout.n)", m_labels},
    {"labels[1]: 129 bytes, limit 128", m_label_long},
    {"labels[0]: not valid UTF-8", m_label_utf8},
    {"description: not valid UTF-8", m_descr_utf8},
    {"description: 4097 bytes, limit 4096", m_descr_long},
    {"encoding.kind: 7 is not NONE, RATE or LATENCY", m_enc_kind},
    {"encoding.steps: 0, must be >= 1 for RATE", m_enc_steps},
    {"encoding.steps: 100001 exceeds the limit 100000", m_enc_steps_big},
    {"encoding.warmup_steps: 200000 exceeds the limit 100000", m_enc_warmup},
    {"encoding.gain: -1 out of range [0, 1e+06]", m_enc_gain},
    {"encoding.threshold: nan is not a finite value within 1e+06", m_enc_thr},
    {"weights: 68719476791 parameters in total, limit 67108864", m_params},
    {"labels: 3 labels, expected 0 or 5 (last layer's n)", m_labels_noro},
};

static void test_bad_fields(void) {
    char err[512];
    for (size_t k = 0; k < sizeof BAD / sizeof BAD[0]; k++) {
        Spikeserve__Model *pm = tm_model_new(&SMALL);
        size_t nl = pm->n_layers;
        Spikeserve__SrcLayer **keep = pm->layers;
        if (BAD[k].mutate == m_too_many_layers) { /* 17 valid-looking layers */
            pm->layers = calloc(17, sizeof *pm->layers);
            for (int l = 0; l < 17; l++)
                pm->layers[l] = keep[l % 2];
        }
        size_t n_l1_w = pm->layers[1]->n_weights;
        BAD[k].mutate(pm);
        int rc = load_msg(pm, err, sizeof err);
        ok(rc == SPK_EFORMAT, "refused (%s)", BAD[k].want);
        is_str(err, BAD[k].want, "  message names the field");
        if (BAD[k].mutate == m_too_many_layers) {
            free(pm->layers);
            pm->layers = keep;
        }
        pm->n_layers = nl;
        pm->layers[1]->n_weights = n_l1_w;
        if (BAD[k].mutate == m_labels) pm->n_labels = 3;
        if (BAD[k].mutate == m_labels_noro) pm->n_labels = 3;
        tm_model_free(pm);
    }
}

/* The example of the issue: a 784-100-256 model whose second layer has 78400 weights. */
static void test_issue_example(void) {
    tm_spec sp = {.n_in = 784, .n_layers = 2, .n = {100, 256}, .seed = 3};
    Spikeserve__Model *pm = tm_model_new(&sp);
    Spikeserve__SrcLayer *L1 = pm->layers[1];
    free(L1->weights);
    L1->n_weights = 78400;
    L1->weights = calloc(78400, sizeof(float));
    char err[256];
    is_int(load_msg(pm, err, sizeof err), SPK_EFORMAT, "784-100-256 with 78400 weights in layer 1");
    is_str(err, "layers[1].weights: 78400 values, expected 25600 (256 x 100)",
           "  the issue's message");
    tm_model_free(pm);
}

static void test_files(void) {
    char err[512], path[] = "/tmp/spk_test_model_XXXXXX";
    spk_model *m = (spk_model *)1;
    int rc = spk_model_load_file("/nonexistent/dir/model.pb", &m, err, sizeof err);
    ok(rc == SPK_EIO && m == NULL, "missing file: SPK_EIO");
    ok(strstr(err, "/nonexistent/dir/model.pb") && strstr(err, "No such file"),
       "  says which and why: %s", err);
    /* a good file loads from disk */
    Spikeserve__Model *pm = tm_model_new(&SMALL);
    size_t len;
    uint8_t *b = tm_pack(pm, &len);
    int fd = mkstemp(path);
    ok(fd >= 0 && write(fd, b, len) == (ssize_t)len, "wrote a model file");
    rc = spk_model_load_file(path, &m, err, sizeof err);
    ok(rc == 0 && m && m->n_layers == 2, "loads from a file");
    spk_model_free(m);
    /* a file past SPK_MAX_FILE (sparse) is refused before reading */
    ok(ftruncate(fd, (off_t)SPK_MAX_FILE + 1) == 0, "sparse file of SPK_MAX_FILE + 1 bytes");
    rc = spk_model_load_file(path, &m, err, sizeof err);
    ok(rc == SPK_EFORMAT && strstr(err, "536870913 bytes, limit 536870912"), "too big a file: %s",
       err);
    close(fd);
    unlink(path);
    /* a directory is not a model */
    rc = spk_model_load_file("/tmp", &m, err, sizeof err);
    ok(rc == SPK_EIO && strstr(err, "not a regular file"), "a directory: %s", err);
    /* too many bytes in memory: refused before parsing (mapping is never touched) */
    void *big = mmap(NULL, (size_t)SPK_MAX_FILE + 1, PROT_READ,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (big != MAP_FAILED) {
        rc = spk_model_load_bytes(big, (size_t)SPK_MAX_FILE + 1, &m, err, sizeof err);
        ok(rc == SPK_EFORMAT && strstr(err, "file: 536870913 bytes, limit 536870912"),
           "too many bytes: %s", err);
        munmap(big, (size_t)SPK_MAX_FILE + 1);
    }
    rc = spk_model_load_bytes(NULL, 0, &m, err, sizeof err);
    ok(rc == SPK_EFORMAT && m == NULL, "empty input refused: %s", err);
    free(b);
    tm_model_free(pm);
}

/* Offsets where a top-level field of the message ends (a prefix ending there parses). */
static int top_level_boundaries(const uint8_t *b, size_t len, size_t *out, int cap) {
    size_t p = 0;
    int n = 0;
    while (p < len && n < cap) {
        uint64_t key = 0;
        int sh = 0;
        while (b[p] & 0x80)
            key |= (uint64_t)(b[p++] & 0x7F) << sh, sh += 7;
        key |= (uint64_t)b[p++] << sh;
        switch (key & 7) {
        case 0:
            while (b[p++] & 0x80) {
            }
            break;
        case 1:
            p += 8;
            break;
        case 5:
            p += 4;
            break;
        case 2: {
            uint64_t l = 0;
            sh = 0;
            while (b[p] & 0x80)
                l |= (uint64_t)(b[p++] & 0x7F) << sh, sh += 7;
            l |= (uint64_t)b[p++] << sh;
            p += l;
            break;
        }
        default:
            return -1;
        }
        out[n++] = p;
    }
    return n;
}

static void test_truncation(void) {
    Spikeserve__Model *pm = tm_model_new(&SMALL);
    size_t len;
    uint8_t *b = tm_pack(pm, &len);
    char err[512];
    size_t bounds[64];
    int nb = top_level_boundaries(b, len, bounds, 64);
    ok(nb > 5 && bounds[nb - 1] == len, "the file has %d top-level fields", nb);
    size_t refused = 0, accepted = 0, bad_accept = 0, silent = 0;
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *c = malloc(cut ? cut : 1); /* exact size: ASan sees any over-read */
        memcpy(c, b, cut);
        spk_model *m = NULL;
        err[0] = 0;
        int rc = spk_model_load_bytes(c, cut, &m, err, sizeof err);
        if (rc == 0) {
            int at_boundary = 0;
            for (int k = 0; k < nb; k++)
                at_boundary |= bounds[k] == cut;
            accepted++;
            if (!at_boundary) bad_accept++;
            spk_model_free(m);
        } else {
            refused++;
            if (!err[0]) silent++;
        }
        free(c);
    }
    diag("standard field order: %zu bytes, %zu truncations refused, %zu accepted (at field "
         "boundaries: "
         "the file minus its trailing optional fields)",
         len, refused, accepted);
    is_int(bad_accept, 0, "no truncation inside a field is accepted");
    ok(accepted <= 6, "only the few field-boundary prefixes parse as smaller models (%zu)",
       accepted);
    is_int(silent, 0, "every refusal has a message");

    /* The same model with n_in written last (protobuf allows any field order): then every
     * proper prefix lacks n_in or cuts a field, and every truncation must be refused. */
    uint8_t *r = malloc(len);
    size_t p = 0, q = 0, nin_at = 0, nin_len = 0;
    for (int k = 0; k < nb; k++) {
        size_t start = k ? bounds[k - 1] : 0;
        if (b[start] == (3 << 3 | 0)) nin_at = start, nin_len = bounds[k] - start;
    }
    ok(nin_len > 0, "found the n_in field");
    for (p = 0; p < len; p++)
        if (p < nin_at || p >= nin_at + nin_len) r[q++] = b[p];
    memcpy(r + q, b + nin_at, nin_len);
    spk_model *m = NULL;
    ok(spk_model_load_bytes(r, len, &m, err, sizeof err) == 0, "n_in-last file loads");
    uint64_t sum = m ? m->checksum : 0;
    spk_model *m0 = NULL;
    spk_model_load_bytes(b, len, &m0, err, sizeof err);
    ok(m0 && m && m0->checksum == sum, "  and is the same model");
    spk_model_free(m);
    spk_model_free(m0);
    size_t wrongly = 0;
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *c = malloc(cut ? cut : 1);
        memcpy(c, r, cut);
        m = NULL;
        if (spk_model_load_bytes(c, cut, &m, err, sizeof err) == 0) wrongly++, spk_model_free(m);
        free(c);
    }
    is_int(wrongly, 0, "n_in last: the truncation at every one of the offsets is refused");
    free(r);
    free(b);
    tm_model_free(pm);
}

static void test_corruption(void) {
    Spikeserve__Model *pm = tm_model_new(&SMALL);
    size_t len;
    uint8_t *b = tm_pack(pm, &len);
    spk_rng rng;
    spk_rng_seed(&rng, 99);
    char err[512];
    size_t refused = 0, accepted = 0, stepped = 0;
    for (int it = 0; it < 20000; it++) {
        uint8_t *c = malloc(len);
        memcpy(c, b, len);
        int flips = 1 + (int)(spk_rng_next(&rng) % 4);
        for (int f = 0; f < flips; f++)
            c[spk_rng_next(&rng) % len] = (uint8_t)spk_rng_next(&rng);
        size_t cl = (it % 5 == 0) ? spk_rng_next(&rng) % (len + 1) : len;
        spk_model *m = NULL;
        if (spk_model_load_bytes(c, cl, &m, err, sizeof err) == 0) {
            accepted++;
            /* whatever loaded is a valid model: it must step without trouble */
            spk_state *s = spk_state_create(m);
            spk_scratch *sc = spk_scratch_create(m);
            spk_event ev[3] = {{0, 0, 1.f}, {1, m->n_in - 1, 1.f}, {2, 0, 2.f}};
            spk_spike sp[64];
            spk_output out = {{sp, 64, 0}, NULL, NULL, 0, NULL};
            spk_input in = {3, ev, 3, NULL};
            int rc = spk_step(s, &in, &out, sc, err, sizeof err);
            if (rc == 0 || rc == SPK_ESPACE) stepped++;
            spk_scratch_free(sc);
            spk_state_free(s);
            spk_model_free(m);
        } else {
            refused++;
        }
        free(c);
    }
    diag("corruption sweep: 20000 files, %zu refused, %zu accepted", refused, accepted);
    ok(refused > 1000, "most corruptions are refused");
    is_int(stepped, accepted, "every accepted corrupt file is a model that steps");
    free(b);
    tm_model_free(pm);
}

/* Cheap bytes that would cost much memory once unpacked are refused before unpacking. */
static void test_amplification(void) {
    enum { N = 100000 };
    uint8_t *b = malloc(2 * N + 16);
    size_t len = 0;
    b[len++] = 0x18, b[len++] = 0x04; /* n_in = 4 */
    for (int k = 0; k < N; k++)
        b[len++] = 0x22, b[len++] = 0x00; /* an empty layer */
    char err[256];
    spk_model *m = NULL;
    is_int(spk_model_load_bytes(b, len, &m, err, sizeof err), SPK_EFORMAT, "100000 empty layers");
    is_str(err, "layers: 100000 layers, expected 1..16", "  refused by their count");
    len = 2;
    for (int k = 0; k < 70000; k++)
        b[len++] = 0x32, b[len++] = 0x00; /* an empty label */
    is_int(spk_model_load_bytes(b, len, &m, err, sizeof err), SPK_EFORMAT, "70000 empty labels");
    is_str(err, "labels: 70000 labels, limit 65536", "  refused by their count");
    free(b);
}

int main(void) {
    test_amplification();
    test_good();
    test_bad_fields();
    test_issue_example();
    test_files();
    test_truncation();
    test_corruption();
    return done_testing();
}
