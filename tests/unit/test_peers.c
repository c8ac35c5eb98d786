/* test_peers.c: the --peers file and the ring swap (server/peers.c): parsing (comments,
 * blanks, spaces), refusals that name the line and the problem, --self checks, reload
 * (unchanged / swapped / refused with the ring kept), the previous owner of the transition
 * window and the heir of a drain, all checked against ss_ring itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tap.h"
#include "peers.h"
#include "ring.h"

static char path[256];

static void write_file(const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

/* Create from text: 0 or -1 with err. */
static int try_read(const char *text, const char *self, char *err, size_t errlen) {
    write_file(text);
    char **names = NULL;
    size_t n = 0;
    int rc = ss_peers_read(path, self, &names, &n, err, errlen);
    ss_peers_names_free(names, n);
    return rc;
}

static void refused(const char *text, const char *self, const char *want, const char *name) {
    char err[512] = "";
    int rc = try_read(text, self, err, sizeof err);
    ok(rc == -1 && strstr(err, want) != NULL, "%s: refused with \"%s\"", name, want);
    if (rc != -1 || !strstr(err, want)) printf("#   rc %d, err: %s\n", rc, err);
}

/* The owner of key among names, by ss_ring directly. */
static const char *ring_owner(const char *const *names, size_t n, const char *key) {
    static char out[300];
    ss_ring *r;
    char err[256];
    if (ss_ring_new(&r, names, n, err, sizeof err) != 0) return "?";
    snprintf(out, sizeof out, "%s", ss_ring_peer(r, ss_ring_owner(r, key, strlen(key))));
    ss_ring_free(r);
    return out;
}

int main(void) {
    snprintf(path, sizeof path, "/tmp/test_peers.%d", (int)getpid());
    char err[512];

    /* parsing */
    write_file("# the ring\n\n  10.0.0.1:8080  \n10.0.0.2:8080 # second\n\t\n10.0.0.3:8080");
    char **names = NULL;
    size_t n = 0;
    int rc = ss_peers_read(path, "10.0.0.2:8080", &names, &n, err, sizeof err);
    ok(rc == 0 && n == 3, "three peers read past comments, blanks and spaces");
    if (rc == 0 && n == 3) {
        is_str(names[0], "10.0.0.1:8080", "first peer, trimmed");
        is_str(names[1], "10.0.0.2:8080", "comment after a name dropped");
        is_str(names[2], "10.0.0.3:8080", "last line without newline");
    }
    ss_peers_names_free(names, n);

    refused("a:1\nb:2\na:1\n", NULL, "line 3: a:1: listed twice", "a duplicate");
    refused("a:1\nno-port\n", NULL, "line 2: no-port: not host:port", "no port");
    refused("a:1\nb:99999\n", NULL, "line 2: b:99999: the port is not", "port out of range");
    refused("a:1\nb:8x\n", NULL, "line 2", "port with a letter");
    refused("a:1\nb c:1\n", NULL, "line 2: b c:1: a blank", "a blank inside");
    refused(":80\n", NULL, "line 1", "no host");
    refused("# only comments\n\n", NULL, "no peers", "an empty file");
    refused("a:1\nb:2\n", "c:3", "--self c:3 is not listed", "self not listed");
    char big[400];
    memset(big, 'h', 300);
    snprintf(big + 300, sizeof big - 300, ":80\n");
    refused(big, NULL, "longer than 255 bytes", "a 304-byte name");
    unlink(path);
    refused("", NULL, "peers", "a missing file");

    /* create, ownership, heir, previous owner */
    const char *three[] = {"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"};
    const char *four[] = {"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003", "127.0.0.1:7004"};
    write_file("127.0.0.1:7001\n127.0.0.1:7002\n127.0.0.1:7003\n");
    ss_peers *p = NULL;
    rc = ss_peers_create(&p, path, "127.0.0.1:7001", 60000, err, sizeof err);
    ok(rc == 0 && p, "create: %s", rc ? err : "ok");
    if (!p) return done_testing();
    is_int(ss_peers_count(p), 3, "3 peers");
    int own_ok = 1, heir_ok = 1, prev_ok = 1, mine = 0;
    for (int k = 0; k < 3000; k++) {
        char key[32], owner[300], other[300];
        snprintf(key, sizeof key, "session-%d", k);
        int m = ss_peers_owns(p, key, strlen(key), owner, sizeof owner);
        const char *want = ring_owner(three, 3, key);
        if (strcmp(owner, want) || m != !strcmp(want, "127.0.0.1:7001")) own_ok = 0;
        mine += m;
        /* heir: the ring without 7001 */
        ss_peers_heir(p, key, strlen(key), other, sizeof other);
        if (strcmp(other, ring_owner(three + 1, 2, key))) heir_ok = 0;
        /* at start, the previous ring is the one without us: for our keys, the heir */
        int prev = ss_peers_prev_owner(p, key, strlen(key), other, sizeof other);
        if (prev != 1 || strcmp(other, ring_owner(three + 1, 2, key))) prev_ok = 0;
    }
    ok(own_ok, "owns/owner agree with ss_ring on 3000 keys (%d ours)", mine);
    ok(mine > 700 && mine < 1300, "about a third are ours (%d)", mine);
    ok(heir_ok, "heir = the owner in the ring without us");
    ok(prev_ok, "at start, the previous owner is the owner in the ring without us");

    /* reload: unchanged, then a 4th peer, then a bad file */
    write_file("# same peers, other comments\n127.0.0.1:7001\n127.0.0.1:7002\n127.0.0.1:7003\n");
    is_int(ss_peers_reload(p, err, sizeof err), 0, "reload of the same peers: unchanged");
    uint64_t g0 = ss_peers_generation(p);
    write_file("127.0.0.1:7001\n127.0.0.1:7002\n127.0.0.1:7003\n127.0.0.1:7004\n");
    is_int(ss_peers_reload(p, err, sizeof err), 1, "reload with a 4th: swapped");
    is_int(ss_peers_count(p), 4, "4 peers now");
    ok(ss_peers_generation(p) == g0 + 1, "generation + 1");
    int moved = 0, bad = 0;
    for (int k = 0; k < 3000; k++) {
        char key[32], owner[300], prev[300];
        snprintf(key, sizeof key, "session-%d", k);
        ss_peers_owns(p, key, strlen(key), owner, sizeof owner);
        if (strcmp(owner, ring_owner(four, 4, key))) bad++;
        const char *before = ring_owner(three, 3, key);
        char before_copy[300];
        snprintf(before_copy, sizeof before_copy, "%s", before);
        int has_prev = ss_peers_prev_owner(p, key, strlen(key), prev, sizeof prev);
        /* a previous owner is reported exactly when it was another peer */
        if (has_prev != !!strcmp(before_copy, "127.0.0.1:7001") ||
            (has_prev && strcmp(prev, before_copy)))
            bad++;
        if (strcmp(owner, before_copy)) moved++;
    }
    ok(bad == 0, "after the swap: owners are the 4-peer ring's, previous owners the 3-peer's");
    ok(moved > 500 && moved < 1000, "about 1/4 of the keys changed owner (%d of 3000)", moved);
    write_file("127.0.0.1:7001\nbroken line here\n");
    rc = ss_peers_reload(p, err, sizeof err);
    ok(rc == -1 && strstr(err, "line 2"), "a bad file is refused naming line 2 (%s)", err);
    is_int(ss_peers_count(p), 4, "and the 4-peer ring stays");
    write_file("127.0.0.1:7002\n127.0.0.1:7003\n");
    rc = ss_peers_reload(p, err, sizeof err);
    ok(rc == -1 && strstr(err, "--self 127.0.0.1:7001 is not listed"),
       "a file without this replica is refused (%s)", err);
    ss_peers_free(p);
    ss_peers_free(NULL);

    /* the window closes */
    write_file("127.0.0.1:7001\n127.0.0.1:7002\n");
    rc = ss_peers_create(&p, path, "127.0.0.1:7002", 0, err, sizeof err);
    ok(rc == 0, "create with a zero window");
    if (p) {
        int any = 0;
        for (int k = 0; k < 200; k++) {
            char key[32], prev[300];
            snprintf(key, sizeof key, "k%d", k);
            any += ss_peers_prev_owner(p, key, strlen(key), prev, sizeof prev);
        }
        is_int(any, 0, "no previous owner once the window is over");
        ss_peers_free(p);
    }
    write_file("127.0.0.1:7001\n");
    rc = ss_peers_create(&p, path, "127.0.0.1:7001", 60000, err, sizeof err);
    if (rc == 0) {
        char h[300];
        is_int(ss_peers_heir(p, "x", 1, h, sizeof h), 0, "alone: no heir");
        ss_peers_free(p);
    }
    unlink(path);
    return done_testing();
}
