/* fuzz_wal.c: libFuzzer harness for the write-ahead log reader (ss_wal_replay, --wal): any
 * bytes as wal-0.log are replayed over a table holding one session of the fuzz model at
 * t = 0. Records that do not decode, fail their checksum or do not fit their session are
 * skipped or end the replay; whatever is applied leaves every session consistent: its t
 * is its engine state's t, and it snapshots and decodes again.
 * Built with -DFUZZ_SEED_MAIN it writes a log with every kind of record into DIR. */
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

#include "fuzz_batch_common.h"
#include "store.h"
#include "wal.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) fz_die("check failed", #c);                                                      \
    } while (0)

static char fz_dir[64];

static uint32_t pick(void *arg) {
    (void)arg;
    return 0;
}

/* Byte 0 even: the rest is the log as it is. Odd: the rest is payloads, each after a
 * one-byte length, framed here with a correct length and crc32 (so mutations reach the
 * record decoder instead of dying at the checksum). */
static void write_log(const uint8_t *d, size_t n) {
    char path[128];
    snprintf(path, sizeof path, "%s/wal-0.log", fz_dir);
    FILE *f = fopen(path, "wb");
    CHECK(f);
    if (n && !(d[0] & 1)) {
        CHECK(fwrite(d + 1, 1, n - 1, f) == n - 1);
    } else if (n) {
        for (size_t i = 1; i < n;) {
            size_t k = d[i++];
            if (k > n - i) k = n - i;
            uint32_t crc = (uint32_t)crc32(0, d + i, (uInt)k);
            uint8_t h[8];
            for (int b = 0; b < 4; b++) {
                h[b] = (uint8_t)(k >> (8 * b));
                h[4 + b] = (uint8_t)(crc >> (8 * b));
            }
            fwrite(h, 1, 8, f);
            fwrite(d + i, 1, k, f);
            i += k;
        }
    }
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_init();
    if (!fz_dir[0]) {
        snprintf(fz_dir, sizeof fz_dir, "/tmp/fuzz_wal-XXXXXX");
        CHECK(mkdtemp(fz_dir));
    }
    write_log(data, size);
    ss_table *t = ss_table_create(16);
    ss_sess *s = ss_sess_create("s1", fz_mv, 0, 60);
    CHECK(t && s && ss_table_insert(t, s) == 0);
    ss_wal_stats st;
    char err[256];
    ss_limits lim = {1u << 24, UINT32_MAX, 1u << 20};
    CHECK(ss_wal_replay(fz_dir, t, fz_reg, &lim, pick, NULL, &st, err, sizeof err) == 0);
    CHECK(st.applied + st.skipped == st.records && st.torn <= 1);
    ss_sess **all;
    size_t n;
    CHECK(ss_table_list(t, &all, &n) == 0 && n <= 16);
    for (size_t i = 0; i < n; i++) {
        CHECK(all[i]->t == spk_state_t(all[i]->state));
        uint8_t *buf;
        size_t len;
        ss_snap snap;
        CHECK(ss_store_encode(all[i], 1, &buf, &len, err, sizeof err) == 0);
        CHECK(ss_store_decode(buf, len, fz_reg, &snap, err, sizeof err) == 0);
        ss_store_snap_free(&snap);
        free(buf);
        ss_sess_unref(all[i]);
    }
    free(all);
    ss_table_free(t);
    return 0;
}

#ifdef FUZZ_SEED_MAIN
/* DIR/steps.log: steps with and without seq (events, dense rows), a reset, a snapshot of a
 * new session, steps on it, a close; DIR/torn.log: the same cut in the middle. */
int main(int argc, char **argv) {
    if (argc != 2) return 2;
    fz_init();
    char tmp[] = "/tmp/fuzz_wal-seed-XXXXXX", err[256];
    CHECK(mkdtemp(tmp));
    ss_wal *w;
    CHECK(ss_wal_open(tmp, 1, &w, err, sizeof err) == 0);
    ss_sess *s = ss_sess_create("s1", fz_mv, 0, 60),
            *s2 = ss_sess_create("s2", fz_mv, 0, 60);
    ss_limits lim = {64, 512};
    const char *bodies[] = {"{\"seq\": 1, \"steps\": 4, \"events\": [[0, 1, 1.0], [3, 5, 0.5]]}",
                            "{\"seq\": 2, \"steps\": 2, \"dense\": [[1,0,0,1,0,1],[0,1,1,0,1,0]], "
                            "\"outputs\": [\"layers\", \"readout_all\"]}",
                            "{\"steps\": 3}"};
    uint64_t t0 = 0;
    for (int k = 0; k < 3; k++) {
        ss_batch b;
        CHECK(ss_batch_from_json(bodies[k], strlen(bodies[k]), fz_model, &lim, &b, err,
                                 sizeof err) == 0);
        CHECK(ss_wal_step(w, s, t0, &b, err, sizeof err) == 0);
        t0 += b.steps;
        ss_batch_free(&b);
    }
    CHECK(ss_wal_reset(w, s, err, sizeof err) == 0);
    uint8_t *snap;
    size_t len;
    CHECK(ss_store_encode(s2, 1, &snap, &len, err, sizeof err) == 0);
    CHECK(ss_wal_snap(w, 0, "s2", snap, len, err, sizeof err) == 0);
    free(snap);
    ss_batch b;
    CHECK(ss_batch_from_json(bodies[0], strlen(bodies[0]), fz_model, &lim, &b, err, sizeof err) ==
          0);
    CHECK(ss_wal_step(w, s2, 0, &b, err, sizeof err) == 0);
    ss_batch_free(&b);
    CHECK(ss_wal_close(w, s2, err, sizeof err) == 0);
    CHECK(ss_wal_sync(w, 0, err, sizeof err) == 0);
    ss_wal_free(w);
    char path[256];
    snprintf(path, sizeof path, "%s/wal-0.log", tmp);
    uint8_t *buf;
    size_t n;
    CHECK(ss_util_read_file(path, 1 << 20, &buf, &n, err, sizeof err) == 0);
    unlink(path);
    rmdir(tmp);
    const char *names[2] = {"steps.log", "torn.log"};
    size_t lens[2] = {n, n / 2};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", argv[1], names[k]);
        FILE *f = fopen(path, "wb");
        CHECK(f && fputc(0, f) == 0 && fwrite(buf, 1, lens[k], f) == lens[k]);
        fclose(f);
    }
    /* framed: the payloads of the records that fit a one-byte length */
    snprintf(path, sizeof path, "%s/framed.log", argv[1]);
    FILE *f = fopen(path, "wb");
    CHECK(f);
    fputc(1, f);
    for (size_t off = 0; off + 8 <= n;) {
        uint32_t k = (uint32_t)buf[off] | (uint32_t)buf[off + 1] << 8 |
                     (uint32_t)buf[off + 2] << 16 | (uint32_t)buf[off + 3] << 24;
        if (k < 256) {
            fputc((int)k, f);
            fwrite(buf + off + 8, 1, k, f);
        }
        off += 8 + k;
    }
    fclose(f);
    free(buf);
    ss_sess_unref(s);
    ss_sess_unref(s2);
    return 0;
}
#endif
