/* test_ring_nginx.c: the real nginx (Debian's nginx-light) with the shipped deploy/nginx.conf
 * in front of four real spikeserve replicas routes every session to the replica our ring
 * (server/ring.c) names as its owner.
 *
 * The replicas are plain servers (no --peers: nothing is forwarded), so where a request
 * lands is where nginx sent it. Evidence comes from the replicas themselves:
 *  - v1: 2,000 session ids, GET /v1/sessions/{id} through nginx (each 404, answered by a
 *    replica), a tenth of them also POST .../steps; each replica's access log says which
 *    requests it served: every id must be in exactly one log, the owner's, on both paths.
 *  - OIP: 300 sequences started through nginx with X-Sequence-Id (numeric and string ids,
 *    with and without /versions/1): the session oip-tiny-{n} / oip-tiny-s-{id} must then
 *    exist on exactly one replica, asked directly, the owner of that name.
 *  - the ring file order: a second nginx with the upstream servers in reverse order routes
 *    ids to the owners of our ring too (nginx's ring does not depend on the order, as ours).
 *  - a replica down (stopped): nginx sends each of its ids to the next point of the ring,
 *    the owner in our ring without that replica (its heir); the other ids stay put. */
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

static char nginx_bin[] = "/usr/sbin/nginx"; /* Debian's nginx-light */

static int start_nginx(ts_server *ng, const char *tag, int reverse) {
    char dir[256], conf[300], logs[300], tmp[300], listen[128], elog[300];
    if (ts_tmpdir(dir, sizeof dir, tag) != 0) return -1;
    snprintf(conf, sizeof conf, "%s/nginx.conf", dir);
    snprintf(logs, sizeof logs, "%s/logs", dir);
    snprintf(tmp, sizeof tmp, "%s/tmp", dir);
    snprintf(elog, sizeof elog, "%s/logs/error.log", dir);
    mkdir(logs, 0755);
    mkdir(tmp, 0755);
    char lines[NREP][96];
    const char *lp[NREP];
    for (int i = 0; i < NREP; i++) {
        snprintf(lines[i], sizeof lines[i], "        server %s;",
                 R.names[reverse ? NREP - 1 - i : i]);
        lp[i] = lines[i];
    }
    unsigned port = tb_free_port();
    snprintf(listen, sizeof listen, "        listen 127.0.0.1:%u;", port);
    const tb_subst subs[] = {{"#@listen", listen}, {"#@daemon", "daemon off;"}, {NULL, NULL}};
    if (tb_render("deploy/nginx.conf", conf, lp, NREP, subs) != 0) return -1;
    char *argv[] = {nginx_bin, "-e", elog, "-p", dir, "-c", conf, NULL};
    if (tb_start(ng, dir, port, argv) != 0) {
        char *e = tb_slurp(elog, NULL);
        if (e) printf("# error.log:\n%s\n", e);
        free(e);
        return -1;
    }
    return 0;
}

static void v1_ids(const ts_server *ng, const ss_ring *ring, const char *tag, int check_steps) {
    long sent = 0, answered = 0, right = 0, wrong = 0, steps_right = 0, steps_sent = 0;
    long per[NREP] = {0};
    for (int k = 0; k < NIDS; k++) {
        char path[128];
        snprintf(path, sizeof path, "/v1/sessions/%s-%05d", tag, k);
        ts_resp r;
        sent++;
        if (ts_http(ng, "GET", path, NULL, NULL, 0, NULL, &r) == 0 && r.status == 404 && r.body &&
            strstr(r.body, "not_found"))
            answered++;
        ts_resp_free(&r);
        if (check_steps && k % 10 == 0) {
            char p2[160];
            snprintf(p2, sizeof p2, "%s/steps", path);
            if (ts_json(ng, "POST", p2, "{\"steps\": 1}", &r) == 0 && r.status == 404) steps_sent++;
            ts_resp_free(&r);
        }
    }
    char *logs[NREP] = {0}, needle[64];
    snprintf(needle, sizeof needle, " /v1/sessions/%s-", tag);
    tb_read_logs(logs, R.rep, NREP, needle, NIDS + (check_steps ? NIDS / 10 : 0));
    for (int k = 0; k < NIDS; k++) {
        char id[64], path[128];
        snprintf(id, sizeof id, "%s-%05d", tag, k);
        snprintf(path, sizeof path, "/v1/sessions/%s", id);
        size_t o = ss_ring_owner(ring, id, strlen(id));
        unsigned m = tb_where_logged(logs, NREP, "GET", path);
        if (m == 1u << o) {
            right++;
            per[o]++;
        } else {
            if (wrong < 5)
                printf("# %s: owner %s, served by replicas mask 0x%x\n", id, ss_ring_peer(ring, o),
                       m);
            wrong++;
        }
        if (check_steps && k % 10 == 0) {
            char p2[160];
            snprintf(p2, sizeof p2, "%s/steps", path);
            if (tb_where_logged(logs, NREP, "POST", p2) == 1u << o) steps_right++;
        }
    }
    for (int i = 0; i < NREP; i++)
        free(logs[i]);
    is_int(answered, sent, "every GET through nginx is answered 404 not_found by a replica");
    is_int(right, NIDS, "every session id is served by exactly its ring owner");
    diag("%s: %ld of %d ids on the ring's owner (%ld elsewhere); per replica %ld %ld %ld %ld", tag,
         right, NIDS, wrong, per[0], per[1], per[2], per[3]);
    for (int i = 0; i < NREP; i++)
        ok(per[i] > NIDS / NREP / 3, "replica %d serves its share (%ld of %d ids)", i, per[i],
           NIDS);
    if (check_steps) {
        ok(steps_sent == NIDS / 10, "POST .../steps through nginx answered 404 (%ld)", steps_sent);
        is_int(steps_right, NIDS / 10, "POST /v1/sessions/{id}/steps goes to the same owner");
    }
}

static void oip(const ts_server *ng, const ss_ring *ring) {
    long started = 0, right = 0, wrong = 0;
    for (int q = 0; q < NSEQ; q++) {
        char hdr[96], body[512], path[96], sid[96], seq[32];
        int str = q % 3 == 2;
        if (str) {
            snprintf(seq, sizeof seq, "\"seq_%d\"", q);
            snprintf(hdr, sizeof hdr, "X-Sequence-Id: seq_%d", q);
            snprintf(sid, sizeof sid, "oip-tiny-s-seq_%d", q);
        } else {
            snprintf(seq, sizeof seq, "%d", 1000 + q);
            snprintf(hdr, sizeof hdr, "X-Sequence-Id: %d", 1000 + q);
            snprintf(sid, sizeof sid, "oip-tiny-%d", 1000 + q);
        }
        tb_oip_body(body, sizeof body, seq, 1);
        snprintf(path, sizeof path, "/v2/models/tiny%s/infer", q % 2 ? "/versions/1" : "");
        ts_resp r;
        if (ts_http_h(ng, "POST", path, "application/json", body, strlen(body), NULL, hdr, &r) ==
                0 &&
            r.status == 200)
            started++;
        else if (started == q)
            printf("# %s %s: status %ld %s\n", path, hdr, r.status, r.body ? r.body : "");
        ts_resp_free(&r);
        unsigned m = tb_holders(&R, sid);
        size_t o = ss_ring_owner(ring, sid, strlen(sid));
        if (m == 1u << o)
            right++;
        else if (wrong++ < 5)
            printf("# %s: owner %s, held by replicas mask 0x%x\n", sid, ss_ring_peer(ring, o), m);
    }
    is_int(started, NSEQ, "every OIP sequence starts through nginx");
    is_int(right, NSEQ, "every OIP sequence's session is on exactly its ring owner");
    diag("OIP: %ld of %d sequences on the ring's owner", right, NSEQ);
}

/* A replica down: nginx tries the next point of the ring, so each of its sessions reaches its
 * heir, the owner in the ring without it (what a replica's drain hands the session to). */
static void one_down(const ts_server *ng, const ss_ring *ring) {
    int st = -1;
    ok(ts_server_stop(&R.rep[NREP - 1], SIGTERM, &st) == 0 && st == 0, "replica %d stops",
       NREP - 1);
    char err[256];
    ss_ring *rest = NULL;
    if (!ok(ss_ring_new(&rest, R.name_ptr, NREP - 1, err, sizeof err) == 0, "the ring without it"))
        return;
    long answered = 0, heirs = 0, to_heir = 0, kept = 0, others = 0;
    for (int k = 0; k < NIDS / 2; k++) {
        char path[128];
        snprintf(path, sizeof path, "/v1/sessions/down-%05d", k);
        ts_resp r;
        if (ts_http(ng, "GET", path, NULL, NULL, 0, NULL, &r) == 0 && r.status == 404) answered++;
        ts_resp_free(&r);
    }
    char *logs[NREP] = {0};
    tb_read_logs(logs, R.rep, NREP - 1, " /v1/sessions/down-", NIDS / 2);
    for (int k = 0; k < NIDS / 2; k++) {
        char id[64], path[128];
        snprintf(id, sizeof id, "down-%05d", k);
        snprintf(path, sizeof path, "/v1/sessions/%s", id);
        unsigned m = tb_where_logged(logs, NREP - 1, "GET", path);
        size_t o = ss_ring_owner(ring, id, strlen(id)), h = ss_ring_owner(rest, id, strlen(id));
        if (o == NREP - 1) {
            heirs++;
            if (m == 1u << h) to_heir++;
        } else {
            others++;
            if (m == 1u << o) kept++;
        }
    }
    for (int i = 0; i < NREP; i++)
        free(logs[i]);
    is_int(answered, NIDS / 2, "with a replica down every GET is still answered");
    ok(heirs > 0 && to_heir == heirs, "the down replica's ids reach their heir (%ld of %ld)",
       to_heir, heirs);
    is_int(kept, others, "the other ids stay on their owner");
    diag("one down: %ld of %ld of its ids on the heir, %ld of %ld others on their owner", to_heir,
         heirs, kept, others);
    ss_ring_free(rest);
}

int main(void) {
    if (!ok(tb_replicas_start(&R, NREP) == 0, "%d replicas start", NREP)) return done_testing();
    const ss_ring *ring = R.ring;

    ts_server ng;
    if (ok(start_nginx(&ng, "nginx", 0) == 0, "nginx starts with deploy/nginx.conf")) {
        v1_ids(&ng, ring, "ring", 1);
        oip(&ng, ring);
        ok(tb_stop(&ng) == 0, "nginx stops on SIGTERM");
    }
    ts_server ng2;
    if (ok(start_nginx(&ng2, "nginx-rev", 1) == 0, "nginx starts with the servers reversed")) {
        v1_ids(&ng2, ring, "rev", 0);
        ok(tb_stop(&ng2) == 0, "the second nginx stops");
    }
    if (ok(start_nginx(&ng, "nginx-down", 0) == 0, "nginx starts again")) {
        one_down(&ng, ring);
        ok(tb_stop(&ng) == 0, "nginx stops");
    }
    ok(tb_replicas_stop(&R) == 0, "the replicas exit 0 on SIGTERM");
    return done_testing();
}
