/* test_registry.c: server/registry.h on real model files in a temporary directory: the
 * layout (flat NAME.spk with its own version, NAME/VERSION.spk with the directory's),
 * scans (new, unchanged, changed, removed; a refused file kept out until it changes; the
 * old version serving meanwhile), conflicts and name mismatches refused with the file
 * named, references keeping an unlisted version alive, slots and generations, the index
 * and the metrics rows, and the version parser. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../support/testmodel.h"
#include "../tap.h"
#include "model.pb-c.h"
#include "registry.h"

static char dir[256];

/* Write a model named name, file version fver, weights from seed, at dir/rel. */
static void write_model(const char *rel, const char *name, uint32_t fver, uint64_t seed) {
    tm_spec sp = {.n_in = 6, .n_layers = 1, .n = {5}, .readout = 3, .seed = seed};
    Spikeserve__Model *pm = tm_model_new(&sp);
    free(pm->name);
    pm->name = strdup(name);
    pm->version = fver;
    size_t len;
    uint8_t *b = tm_pack(pm, &len);
    char tmp[512], path[512];
    snprintf(tmp, sizeof tmp, "%s/.tmp", dir);
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(tmp, "wb");
    if (!f || fwrite(b, 1, len, f) != len || fclose(f) != 0 || rename(tmp, path) != 0) {
        printf("# cannot write %s\n", path);
        exit(2);
    }
    free(b);
    tm_model_free(pm);
}

static void write_bytes(const char *rel, const char *bytes) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "wb");
    if (!f || fputs(bytes, f) < 0 || fclose(f) != 0) exit(2);
}

static uint32_t latest(ss_reg *r, const char *name) {
    ss_mver *v = ss_reg_get(r, name, 0);
    uint32_t n = v ? v->version : 0;
    ss_reg_unref(v);
    return n;
}

int main(void) {
    snprintf(dir, sizeof dir, "%s/spikeserve-registry-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) return 2;
    char sub[300];
    snprintf(sub, sizeof sub, "%s/tiny", dir);
    mkdir(sub, 0700);
    write_model("flat.spk", "flat", 7, 1);
    write_model("tiny/1.spk", "tiny", 1, 2);
    write_model("tiny/2.spk", "tiny", 99, 3); /* the directory's 2 wins over the file's 99 */
    write_bytes("tiny/01.spk", "not ours: a leading zero");
    write_bytes("tiny/notes.txt", "not a model");

    is_int(ss_reg_parse_version("12"), 12, "parse 12");
    ok(!ss_reg_parse_version("0") && !ss_reg_parse_version("012") && !ss_reg_parse_version("-1") &&
           !ss_reg_parse_version("4294967296") && !ss_reg_parse_version("1x") &&
           !ss_reg_parse_version(""),
       "0, 012, -1, 2^32, 1x and \"\" are not versions");
    is_int(ss_reg_parse_version("4294967295"), 4294967295u, "2^32-1 is");

    ss_reg *r = ss_reg_create(dir);
    char err[2048];
    ss_reg_scan_stats st;
    ok(ss_reg_scan(r, NULL, 1, &st, err, sizeof err) == 0 && st.loaded == 3,
       "start-up scan: 3 versions (%s)", err);
    is_int(ss_reg_count(r), 3, "listed: 3");
    is_int(latest(r, "flat"), 7, "a flat file is the version inside it (7)");
    is_int(latest(r, "tiny"), 2, "tiny's latest: 2 (the directory's number, not the file's 99)");
    ss_mver *v1 = ss_reg_get(r, "tiny", 1);
    ok(v1 && v1->model->version == 1 && !strcmp(v1->name, "tiny"), "tiny version 1");
    ok(ss_reg_get(r, "tiny", 3) == NULL && ss_reg_get(r, "nosuch", 0) == NULL,
       "absent version or model: NULL");
    ss_mver **vs;
    size_t n;
    ok(ss_reg_list(r, 1, &vs, &n) == 0 && n == 2 && vs[0]->version == 7 && vs[1]->version == 2,
       "list, latest only: flat 7, tiny 2 (sorted by name)");
    ss_reg_list_free(vs, n);

    /* an unchanged directory: nothing happens */
    ok(ss_reg_scan(r, NULL, 0, &st, err, sizeof err) == 0 && st.unchanged == 3 && !st.loaded &&
           !st.reloaded && !st.unloaded,
       "rescan: 3 unchanged");

    /* a corrupt file next to good ones: refused naming the file; not retried until changed */
    write_bytes("tiny/3.spk", "\x0a\xff\xff\xff garbage");
    ok(ss_reg_scan(r, NULL, 0, &st, err, sizeof err) != 0 && st.failed == 1 &&
           strstr(err, "tiny/3.spk"),
       "a corrupt tiny/3.spk: refused, naming it (%s)", err);
    is_int(latest(r, "tiny"), 2, "tiny's latest is still 2");
    ok(ss_reg_scan(r, NULL, 0, &st, err, sizeof err) == 0 && st.failed == 0,
       "the same bad file again: not retried (no failure)");
    ss_reg_row *rows;
    ok(ss_reg_index(r, &rows, &n) == 0 && n == 4 && !rows[3].ready && rows[3].version == 3 &&
           strstr(rows[3].reason, "3.spk"),
       "index: 3 ready, version 3 unavailable with the loader's message");
    free(rows);

    /* a good version 1 replaced by a bad file: refused, version 1 keeps serving */
    write_bytes("tiny/1.spk", "truncated");
    ok(ss_reg_scan(r, NULL, 0, &st, err, sizeof err) != 0 && strstr(err, "tiny/1.spk"),
       "tiny/1.spk overwritten with junk: refused");
    ok(ss_reg_index(r, &rows, &n) == 0 && n == 4 && rows[1].ready && rows[1].version == 1 &&
           strstr(rows[1].reason, "serving the file loaded before") &&
           strstr(rows[1].reason, "tiny/1.spk"),
       "index: version 1 still READY, its reason tells of the refused replacement");
    free(rows);
    ss_mver *still = ss_reg_get(r, "tiny", 1);
    ok(still == v1, "version 1 is the one loaded before");
    ss_reg_unref(still);

    /* a good replacement: reloaded; the old version lives on in its references */
    write_model("tiny/1.spk", "tiny", 1, 4);
    ok(ss_reg_scan(r, NULL, 0, &st, err, sizeof err) == 0 && st.reloaded == 1,
       "tiny/1.spk replaced with a good file: reloaded");
    ss_mver *nv1 = ss_reg_get(r, "tiny", 1);
    ok(nv1 && nv1 != v1 && nv1->gen != v1->gen && nv1->slot != v1->slot,
       "a new version object, generation and slot (the old one is still referenced)");
    ok(v1->model->n_in == 6 && __atomic_load_n(&v1->refs, __ATOMIC_RELAXED) == 1,
       "the old version is intact, held only by us");
    uint32_t old_slot = v1->slot;
    ss_reg_unref(v1); /* frees it and its slot */
    ss_reg_unref(nv1);

    /* a name that disagrees with its directory, and two files of one version */
    write_model("tiny/4.spk", "other", 1, 5);
    write_model("dup.spk", "flat", 7, 6);
    ok(ss_reg_scan(r, NULL, 0, &st, err, sizeof err) != 0 && st.failed == 2 &&
           strstr(err, "tiny/4.spk: name") && strstr(err, "dup.spk: model flat version 7"),
       "tiny/4.spk naming another model and dup.spk repeating flat 7: both refused (%s)", err);
    write_model("tiny/5.spk", "tiny", 1, 7);
    ok(ss_reg_scan(r, "tiny", 0, &st, err, sizeof err) == 0 && st.loaded == 1 &&
           latest(r, "tiny") == 5,
       "a scan of tiny alone loads tiny/5.spk");
    ss_mver *v5 = ss_reg_get(r, "tiny", 5);
    ok(v5 && v5->slot == old_slot, "it takes the freed slot, with a new generation");
    ss_reg_unref(v5);

    /* removal and unlisting */
    char path[512];
    snprintf(path, sizeof path, "%s/tiny/5.spk", dir);
    unlink(path);
    ss_mver *held = ss_reg_get(r, "tiny", 5);
    ok(ss_reg_scan(r, NULL, 0, &st, err, sizeof err) == 0 && st.unloaded == 1 &&
           latest(r, "tiny") == 2,
       "tiny/5.spk removed: unloaded, the latest is 2 again");
    ok(held && held->version == 5 && held->model, "a reference keeps version 5 usable");
    ss_reg_unref(held);
    is_int(ss_reg_unlist(r, "tiny", 0), 2, "unlist every version of tiny: 2");
    ok(ss_reg_get(r, "tiny", 0) == NULL, "tiny is gone");
    is_int(ss_reg_unlist(r, "tiny", 0), 0, "unlist again: 0");

    ss_metrics_model *mr;
    ss_metrics_models_total t;
    int mrc = ss_reg_metrics(r, &mr, &n, &t);
    ok(mrc == 0 && n == 1 && !strcmp(mr[0].model, "flat") && t.loads == 5 && t.unloads == 3 &&
           t.failures == 4,
       "metrics rows: flat only; loads 5, unloads 3, failures 4 (%llu, %llu, %llu)",
       (unsigned long long)t.loads, (unsigned long long)t.unloads, (unsigned long long)t.failures);
    free(mr);

    /* a strict (start-up) scan stops at the first bad file */
    ss_reg *r2 = ss_reg_create(dir);
    ok(ss_reg_scan(r2, NULL, 1, &st, err, sizeof err) != 0 && st.failed == 1,
       "start-up scan of the same directory: stops at the first refusal (%s)", err);
    ss_reg_free(r2);
    ss_reg *r3 = ss_reg_create("/nonexistent/models");
    ok(ss_reg_scan(r3, NULL, 1, &st, err, sizeof err) != 0 && strstr(err, "/nonexistent/models"),
       "a missing directory: refused, naming it");
    ss_reg_free(r3);
    ss_reg_free(r);
    ss_reg_free(NULL);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) diag("could not remove %s", dir);
    return done_testing();
}
