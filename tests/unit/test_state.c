/* test_state.c: session state: create, reset, clone, copy, snapshot and restore, and the
 * refusal of another model's snapshot and of bad or truncated snapshots (state unchanged). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/testmodel.h"
#include "../tap.h"
#include "model.pb-c.h"
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

static void free_null_state(void) {
    spk_state_free(NULL);
    spk_scratch_free(NULL);
}

static const tm_spec SPEC = {
    .n_in = 10, .n_layers = 2, .n = {12, 5}, .readout = 3, .init_state = 1, .vary = 1, .seed = 11};

static void run(spk_state *s, spk_scratch *sc, uint32_t steps, uint64_t seed) {
    size_t n;
    const spk_model *m = spk_state_model(s);
    spk_event *ev = tm_events(steps, m->n_in, 0.3f, 0, seed, &n);
    spk_input in = {steps, ev, n, NULL};
    char err[256];
    if (spk_step(s, &in, NULL, sc, err, sizeof err) != 0) {
        printf("# step failed: %s\n", err);
        exit(1);
    }
    free(ev);
}

static void test_lifecycle(void) {
    spk_model *m = tm_load(&SPEC);
    spk_state *s = spk_state_create(m);
    spk_scratch *sc = spk_scratch_create(m);
    ok(s != NULL, "create");
    ok(spk_state_model(s) == m, "state knows its model");
    is_int(spk_state_t(s), 0, "t = 0");
    ok(spk_state_bytes(m) % 64 == 0 && spk_state_bytes(m) >= m->state_floats * 4,
       "one allocation of %zu bytes", spk_state_bytes(m));
    int init_ok = 1, aligned = 1;
    for (uint32_t l = 0; l < m->n_layers; l++) {
        uint32_t n = m->layers[l].n;
        init_ok &= memcmp(spk_state_i(s, l), m->layers[l].i0, n * 4) == 0;
        init_ok &= memcmp(spk_state_h(s, l), m->layers[l].h0, n * 4) == 0;
        init_ok &= memcmp(spk_state_hs(s, l), m->layers[l].hs0, n * 4) == 0;
        aligned &=
            (uintptr_t)spk_state_i(s, l) % 64 == 0 && (uintptr_t)spk_state_hs(s, l) % 64 == 0;
    }
    init_ok &= memcmp(spk_state_o(s), m->readout.o0, 3 * 4) == 0;
    ok(init_ok, "initial state from the model file");
    ok(aligned, "state vectors 64-byte aligned");

    run(s, sc, 40, 1);
    is_int(spk_state_t(s), 40, "t advanced by 40");
    ok(memcmp(spk_state_h(s, 1), m->layers[1].h0, 5 * 4) != 0, "stepping changed h");

    spk_state *c = spk_state_clone(s);
    ok(c && tm_state_equal(s, c), "clone equals the original");
    run(s, sc, 25, 2);
    ok(!tm_state_equal(s, c), "stepping the original leaves the clone alone");
    run(c, sc, 25, 2);
    ok(tm_state_equal(s, c), "same input on the clone: same state again");

    spk_state *d = spk_state_create(m);
    spk_state_copy(d, s);
    ok(tm_state_equal(d, s), "copy");

    spk_state_reset(s);
    spk_state *fresh = spk_state_create(m);
    ok(tm_state_equal(s, fresh) && spk_state_t(s) == 0, "reset: the model's initial state, t = 0");

    spk_state_free(c);
    spk_state_free(d);
    spk_state_free(fresh);
    spk_state_free(s);
    ok(runs_cleanly(free_null_state),
       "spk_state_free(NULL), spk_scratch_free(NULL): no-ops (a child calling them exits 0)");
    spk_scratch_free(sc);
    spk_model_free(m);

    tm_spec nr = SPEC;
    nr.readout = 0;
    nr.init_state = 0;
    m = tm_load(&nr);
    s = spk_state_create(m);
    ok(spk_state_o(s) == NULL, "no readout: o view is NULL");
    float z = 0;
    for (uint32_t k = 0; k < 12; k++)
        z += fabsf(spk_state_i(s, 0)[k]) + fabsf(spk_state_hs(s, 0)[k]);
    ok(z == 0, "no initial state in the file: zeros");
    spk_state_free(s);
    spk_model_free(m);
}

static void test_snapshot(void) {
    spk_model *m = tm_load(&SPEC);
    spk_scratch *sc = spk_scratch_create(m);
    spk_state *s = spk_state_create(m);
    run(s, sc, 77, 3);
    uint8_t *buf = NULL;
    size_t len = 0;
    char err[512];
    is_int(spk_state_snapshot(s, &buf, &len, err, sizeof err), 0, "snapshot");
    ok(buf && len > 0, "snapshot has %zu bytes", len);

    Spikeserve__StateSnapshot *p = spikeserve__state_snapshot__unpack(NULL, len, buf);
    ok(p && strcmp(p->model_name, m->name) == 0 && p->model_version == 1 &&
           p->weights_checksum == m->checksum && p->t == 77 && p->n_layers == 2 &&
           p->n_readout == 3,
       "snapshot carries name, version, checksum, t and every layer");
    if (p) spikeserve__state_snapshot__free_unpacked(p, NULL);

    spk_state *r = spk_state_create(m);
    is_int(spk_state_restore(r, buf, len, err, sizeof err), 0, "restore into a fresh state");
    ok(tm_state_equal(r, s), "restored state is bit-identical, t = %llu",
       (unsigned long long)spk_state_t(r));
    run(s, sc, 30, 4);
    run(r, sc, 30, 4);
    ok(tm_state_equal(r, s), "and continues identically");

    /* another model with the same shape: different checksum */
    tm_spec other = SPEC;
    other.seed = 12;
    spk_model *m2 = tm_load(&other);
    snprintf(m2->name, sizeof m2->name, "%s", m->name); /* same name and version */
    spk_state *s2 = spk_state_create(m2);
    run(s2, sc, 5, 5);
    spk_state *before = spk_state_clone(s2);
    int rc = spk_state_restore(s2, buf, len, err, sizeof err);
    is_int(rc, SPK_EMODEL, "same name, other weights: SPK_EMODEL");
    ok(strstr(err, "weights_checksum") != NULL, "  message: %s", err);
    ok(tm_state_equal(s2, before), "  state unchanged");
    spk_state_free(before);
    spk_state_free(s2);
    spk_model_free(m2);

    /* another name, another version */
    m2 = tm_load(&SPEC);
    snprintf(m2->name, sizeof m2->name, "other");
    s2 = spk_state_create(m2);
    rc = spk_state_restore(s2, buf, len, err, sizeof err);
    is_int(rc, SPK_EMODEL, "other model name: SPK_EMODEL");
    is_str(err, "snapshot: taken from model \"test-11\" version 1, this is \"other\" version 1",
           "  message");
    snprintf(m2->name, sizeof m2->name, "%s", m->name);
    m2->version = 2;
    rc = spk_state_restore(s2, buf, len, err, sizeof err);
    is_int(rc, SPK_EMODEL, "other version: SPK_EMODEL");
    spk_state_free(s2);
    spk_model_free(m2);

    /* truncation at every offset: refused, state unchanged */
    spk_state *target = spk_state_create(m);
    run(target, sc, 3, 6);
    spk_state *orig = spk_state_clone(target);
    size_t accepted = 0, changed = 0, silent = 0;
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *c = malloc(cut ? cut : 1);
        memcpy(c, buf, cut);
        err[0] = 0;
        rc = spk_state_restore(target, c, cut, err, sizeof err);
        if (rc == 0)
            accepted++;
        else if (!err[0])
            silent++;
        if (!tm_state_equal(target, orig)) changed++, spk_state_copy(target, orig);
        free(c);
    }
    is_int(accepted, 0, "every truncation of the snapshot is refused");
    is_int(changed, 0, "  and leaves the state unchanged");
    is_int(silent, 0, "  with a message");

    /* corrupt bytes */
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02};
    rc = spk_state_restore(target, junk, sizeof junk, err, sizeof err);
    is_int(rc, SPK_EFORMAT, "garbage: SPK_EFORMAT");
    ok(strstr(err, "StateSnapshot") != NULL, "  message: %s", err);

    /* many empty layer messages: refused by their count before unpacking */
    uint8_t *many = malloc(2000);
    for (int k = 0; k < 1000; k++)
        many[2 * k] = 0x2a, many[2 * k + 1] = 0x00;
    rc = spk_state_restore(target, many, 2000, err, sizeof err);
    is_int(rc, SPK_EFORMAT, "1000 empty layer states: SPK_EFORMAT");
    is_str(err, "layers: 1000 layers, limit 16", "  message");
    free(many);

    /* well-formed protobuf with wrong contents: each refused naming the field */
    struct {
        const char *want;
        int what;
    } cases[] = {
        {"layers: 1 layers, expected 2", 0},       {"layers[1].h: 4 values, expected 5", 1},
        {"layers[0].i[2]: nan is not finite", 2},  {"readout: 2 values, expected 3", 3},
        {"layers[1].hs[0]: inf is not finite", 4},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        p = spikeserve__state_snapshot__unpack(NULL, len, buf);
        size_t save_layers = p->n_layers, save_h = p->layers[1]->n_h, save_ro = p->n_readout;
        switch (cases[k].what) {
        case 0:
            p->n_layers = 1;
            break;
        case 1:
            p->layers[1]->n_h = 4;
            break;
        case 2:
            p->layers[0]->i[2] = NAN;
            break;
        case 3:
            p->n_readout = 2;
            break;
        case 4:
            p->layers[1]->hs[0] = INFINITY;
            break;
        }
        size_t l2 = spikeserve__state_snapshot__get_packed_size(p);
        uint8_t *b2 = malloc(l2);
        spikeserve__state_snapshot__pack(p, b2);
        p->n_layers = save_layers, p->layers[1]->n_h = save_h, p->n_readout = save_ro;
        spikeserve__state_snapshot__free_unpacked(p, NULL);
        rc = spk_state_restore(target, b2, l2, err, sizeof err);
        is_int(rc, SPK_EFORMAT, cases[k].want);
        is_str(err, cases[k].want, "  message");
        ok(tm_state_equal(target, orig), "  state unchanged");
        free(b2);
    }
    spk_state_free(orig);
    spk_state_free(target);
    spk_state_free(r);
    spk_state_free(s);
    free(buf);
    spk_scratch_free(sc);
    spk_model_free(m);
}

int main(void) {
    test_lifecycle();
    test_snapshot();
    return done_testing();
}
