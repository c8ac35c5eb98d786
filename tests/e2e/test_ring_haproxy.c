/* test_ring_haproxy.c: the real HAProxy (Debian 12's 2.6) with the shipped deploy/haproxy.cfg
 * in front of four real spikeserve replicas keeps every session on one replica, and how
 * often that replica is the one our ring (nginx's rule, server/ring.c) names as the owner.
 *
 * HAProxy's consistent hash is its own (server ids, 16 points per server, nearest point), so
 * its choice is not the ring's; replicas forward what reaches a non-owner. What must hold:
 *  - v1: 2,000 session ids, GET /v1/sessions/{id} through HAProxy; each replica's access log
 *    says which replicas served it: every id exactly one, a tenth also POST .../steps on
 *    that same replica, a second GET of every id again there; every replica gets a share.
 *  - OIP: 300 sequences started through HAProxy with X-Sequence-Id (numeric and string, with
 *    and without /versions/1); the session then exists on exactly one replica, and a second
 *    request of the sequence (no sequence_start, so a replica without it refuses with 400)
 *    is answered 200 through HAProxy.
 * The share of ids on the ring's owner is printed (about 1/4 expected), never checked: it is
 * a property of two hash functions, not of our code. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../support/balancer.h"
#include "../support/harness.h"
#include "../tap.h"
#include "ring.h"

#define NREP 4
#define NIDS 2000
#define NSEQ 300

static tb_replicas R;
static char haproxy_bin[] = "/usr/sbin/haproxy"; /* Debian's haproxy */

static int start_haproxy(ts_server *hp) {
    char dir[256], conf[300], bind[128];
    if (ts_tmpdir(dir, sizeof dir, "haproxy") != 0) return -1;
    snprintf(conf, sizeof conf, "%s/haproxy.cfg", dir);
    char lines[NREP][128];
    const char *lp[NREP];
    for (int i = 0; i < NREP; i++) {
        snprintf(lines[i], sizeof lines[i], "    server r%d %s", i, R.names[i]);
        lp[i] = lines[i];
    }
    unsigned port = tb_free_port();
    snprintf(bind, sizeof bind, "    bind 127.0.0.1:%u", port);
    const tb_subst subs[] = {{"#@bind", bind}, {"#@maxconn", "    maxconn 1000"}, {NULL, NULL}};
    if (tb_render("deploy/haproxy.cfg", conf, lp, NREP, subs) != 0) return -1;
    char *argv[] = {haproxy_bin, "-db", "-f", conf, NULL};
    return tb_start(hp, dir, port, argv);
}

static int one_bit(unsigned m) {
    return m && !(m & (m - 1));
}

static int bit_index(unsigned m) {
    int i = 0;
    while (m > 1) {
        m >>= 1;
        i++;
    }
    return i;
}

static void v1_ids(const ts_server *hp, const ss_ring *ring) {
    long answered = 0, single = 0, steps_same = 0, again_same = 0, on_owner = 0;
    long per[NREP] = {0};
    for (int pass = 0; pass < 2; pass++) /* the second pass asks the same ids again */
        for (int k = 0; k < NIDS; k++) {
            char path[128];
            snprintf(path, sizeof path, "/v1/sessions/hap0-%05d", k);
            ts_resp r;
            if (ts_http(hp, "GET", path, NULL, NULL, 0, NULL, &r) == 0 && r.status == 404 &&
                r.body && strstr(r.body, "not_found"))
                answered++;
            ts_resp_free(&r);
            if (pass == 0 && k % 10 == 0) {
                char p2[160];
                snprintf(p2, sizeof p2, "%s/steps", path);
                ts_json(hp, "POST", p2, "{\"steps\": 1}", &r);
                ts_resp_free(&r);
            }
        }
    char *logs[NREP] = {0};
    tb_read_logs(logs, R.rep, NREP, " /v1/sessions/hap0-", 2 * NIDS + NIDS / 10);
    for (int k = 0; k < NIDS; k++) {
        char id[64], path[128], p2[160];
        snprintf(id, sizeof id, "hap0-%05d", k);
        snprintf(path, sizeof path, "/v1/sessions/%s", id);
        unsigned m = tb_where_logged(logs, NREP, "GET", path);
        if (!one_bit(m)) continue;
        single++;
        int at = bit_index(m);
        per[at]++;
        if ((size_t)at == ss_ring_owner(ring, id, strlen(id))) on_owner++;
        if (k % 10 == 0) {
            snprintf(p2, sizeof p2, "%s/steps", path);
            if (tb_where_logged(logs, NREP, "POST", p2) == m) steps_same++;
        }
        /* both GETs of this id on the one replica: its log holds the line twice */
        char needle[160];
        snprintf(needle, sizeof needle, " GET %s ", path);
        const char *p = strstr(logs[at], needle);
        if (p && strstr(p + 1, needle)) again_same++;
    }
    for (int i = 0; i < NREP; i++)
        free(logs[i]);
    is_int(answered, 2 * NIDS, "every GET through HAProxy is answered 404 not_found");
    is_int(single, NIDS, "every session id is served by exactly one replica");
    is_int(steps_same, NIDS / 10, "POST .../steps goes where GET /v1/sessions/{id} went");
    is_int(again_same, NIDS, "asked again, every id goes to the same replica");
    for (int i = 0; i < NREP; i++)
        ok(per[i] > NIDS / NREP / 4, "replica %d serves a share (%ld of %d ids)", i, per[i], NIDS);
    diag("HAProxy: %ld of %d ids (%.1f %%) on the ring's owner (1/%d = %.1f %%); per replica "
         "%ld %ld %ld %ld",
         on_owner, NIDS, 100.0 * (double)on_owner / NIDS, NREP, 100.0 / NREP, per[0], per[1],
         per[2], per[3]);
}

static void oip(const ts_server *hp, const ss_ring *ring) {
    long started = 0, single = 0, second = 0, on_owner = 0;
    for (int q = 0; q < NSEQ; q++) {
        int str = q % 3 == 2;
        char hdr[96], body[512], path[96], sid[96], seq[32];
        if (str) {
            snprintf(seq, sizeof seq, "\"hseq_%d\"", q);
            snprintf(hdr, sizeof hdr, "X-Sequence-Id: hseq_%d", q);
            snprintf(sid, sizeof sid, "oip-tiny-s-hseq_%d", q);
        } else {
            snprintf(seq, sizeof seq, "%d", 5000 + q);
            snprintf(hdr, sizeof hdr, "X-Sequence-Id: %d", 5000 + q);
            snprintf(sid, sizeof sid, "oip-tiny-%d", 5000 + q);
        }
        snprintf(path, sizeof path, "/v2/models/tiny%s/infer", q % 2 ? "/versions/1" : "");
        ts_resp r;
        tb_oip_body(body, sizeof body, seq, 1);
        if (ts_http_h(hp, "POST", path, "application/json", body, strlen(body), NULL, hdr, &r) ==
                0 &&
            r.status == 200)
            started++;
        ts_resp_free(&r);
        tb_oip_body(body, sizeof body, seq, 0);
        if (ts_http_h(hp, "POST", path, "application/json", body, strlen(body), NULL, hdr, &r) ==
                0 &&
            r.status == 200)
            second++;
        else if (second == q)
            printf("# %s %s (second): status %ld %s\n", path, hdr, r.status, r.body ? r.body : "");
        ts_resp_free(&r);
        unsigned m = tb_holders(&R, sid);
        if (one_bit(m)) {
            single++;
            if ((size_t)bit_index(m) == ss_ring_owner(ring, sid, strlen(sid))) on_owner++;
        }
    }
    is_int(started, NSEQ, "every OIP sequence starts through HAProxy");
    is_int(second, NSEQ, "every sequence's second request finds it (same replica)");
    is_int(single, NSEQ, "every sequence's session is on exactly one replica");
    diag("HAProxy, OIP: %ld of %d sequences (%.1f %%) on the ring's owner", on_owner, NSEQ,
         100.0 * (double)on_owner / NSEQ);
}

int main(void) {
    if (!ok(tb_replicas_start(&R, NREP) == 0, "%d replicas start", NREP)) return done_testing();
    const ss_ring *ring = R.ring;
    ts_server hp;
    if (ok(start_haproxy(&hp) == 0, "HAProxy starts with deploy/haproxy.cfg")) {
        v1_ids(&hp, ring);
        oip(&hp, ring);
        ok(tb_stop(&hp) == 0, "HAProxy stops on SIGTERM");
    }
    ok(tb_replicas_stop(&R) == 0, "the replicas exit 0 on SIGTERM");
    return done_testing();
}
