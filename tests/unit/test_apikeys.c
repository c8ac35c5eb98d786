/* test_apikeys.c: API keys (server/auth.h): loading from "", a comma list and @FILE (blank
 * and # lines ignored), refusals with a message, the Authorization header check (missing or
 * not Bearer: -1, unknown key: -2), and owner ids: non-zero, one per key, the same for the
 * same key however and whenever it was loaded (they are written to disk).
 * (Not test_auth.c: tests/e2e/test_auth.c builds to build/tests/test_auth.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tap.h"
#include "auth.h"

static void free_null(void) {
    ss_auth_free(NULL);
}

static int runs_cleanly(void (*fn)(void)) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return 0;
    if (pid == 0) {
        fn();
        _exit(0);
    }
    int st;
    return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static uint64_t owner_of(const ss_auth *a, const char *header) {
    uint64_t o = 0;
    return ss_auth_check(a, header, &o) == 0 ? o : 0;
}

static void test_no_keys(void) {
    char err[256] = "";
    ss_auth *a = (ss_auth *)1;
    ok(ss_auth_load("", &a, err, sizeof err) == 0 && a == NULL, "\"\": 0, no keys (NULL)");
    a = (ss_auth *)1;
    ok(ss_auth_load(NULL, &a, err, sizeof err) == 0 && a == NULL, "NULL: 0, no keys");
    is_int(ss_auth_count(NULL), 0, "count of no keys: 0");
    uint64_t o = 5;
    ok(ss_auth_check(NULL, NULL, &o) == 0 && o == 0, "no keys, no header: 0, owner 0");
    o = 5;
    ok(ss_auth_check(NULL, "Bearer whatever", &o) == 0 && o == 0,
       "no keys, any header: 0, owner 0");
    ok(runs_cleanly(free_null), "ss_auth_free(NULL) is a no-op (a child calling it exits 0)");
}

static void test_list(void) {
    char err[256] = "";
    ss_auth *a = NULL;
    is_int(ss_auth_load("k1,k2, k3 ,", &a, err, sizeof err), 0, "\"k1,k2, k3 ,\" loads");
    is_int(ss_auth_count(a), 3, "three keys (spaces trimmed, the empty one skipped)");
    uint64_t o1 = owner_of(a, "Bearer k1"), o2 = owner_of(a, "Bearer k2"),
             o3 = owner_of(a, "Bearer k3");
    ok(o1 && o2 && o3, "each key is accepted with a non-zero owner");
    ok(o1 != o2 && o2 != o3 && o1 != o3, "three keys, three owners");
    is_int(owner_of(a, "bearer k1"), o1, "the scheme is case-insensitive");
    is_int(owner_of(a, "Bearer   k2  "), o2, "spaces around the key are ignored");

    uint64_t o = 7;
    is_int(ss_auth_check(a, NULL, &o), -1, "no header: -1");
    is_int(o, 0, "(owner 0)");
    is_int(ss_auth_check(a, "", &o), -1, "empty header: -1");
    is_int(ss_auth_check(a, "Basic k1", &o), -1, "Basic: -1");
    is_int(ss_auth_check(a, "k1", &o), -1, "a bare key: -1");
    is_int(ss_auth_check(a, "Bearer", &o), -1, "\"Bearer\": -1");
    is_int(ss_auth_check(a, "Bearer    ", &o), -1, "\"Bearer\" and spaces: -1");
    o = 7;
    is_int(ss_auth_check(a, "Bearer k", &o), -2, "a prefix of a key: -2");
    is_int(o, 0, "(owner 0)");
    is_int(ss_auth_check(a, "Bearer k1x", &o), -2, "a key plus a character: -2");
    is_int(ss_auth_check(a, "Bearer K1", &o), -2, "keys are case-sensitive: -2");
    is_int(ss_auth_check(a, "Bearer k1,k2", &o), -2, "two keys in one header: -2");
    is_int(ss_auth_check(a, "Bearer k4", &o), -2, "an unknown key: -2");

    /* the owner is a function of the key alone: the same after another load, in another
     * order, from a file (it is written to --state-dir and must survive a restart) */
    ss_auth *b = NULL;
    ss_auth_load("zz,k1", &b, err, sizeof err);
    is_int(owner_of(b, "Bearer k1"), o1, "k1's owner is the same in another key list");
    ss_auth_free(b);
    ss_auth_free(a);

    /* 512 characters is the longest key */
    char spec[600];
    memset(spec, 'x', 512);
    spec[512] = 0;
    a = NULL;
    is_int(ss_auth_load(spec, &a, err, sizeof err), 0, "a 512-character key loads");
    char hdr[700];
    snprintf(hdr, sizeof hdr, "Bearer %s", spec);
    ok(owner_of(a, hdr) != 0, "and is accepted");
    ss_auth_free(a);
    memset(spec, 'x', 513);
    spec[513] = 0;
    a = (ss_auth *)1;
    err[0] = 0;
    ok(ss_auth_load(spec, &a, err, sizeof err) == -1 && a == NULL, "a 513-character key: -1");
    ok(strstr(err, "api-keys") && strstr(err, "512"), "the message names api-keys and 512: %s",
       err);
    a = (ss_auth *)1;
    err[0] = 0;
    ok(ss_auth_load(" , ,", &a, err, sizeof err) == -1 && a == NULL && strstr(err, "no key"),
       "only separators: -1, \"no key\" (%s)", err);
}

static void test_file(void) {
    char dir[] = "/tmp/spikeserve-authunit-XXXXXX", path[300], spec[310];
    if (!mkdtemp(dir)) {
        ok(0, "mkdtemp");
        return;
    }
    snprintf(path, sizeof path, "%s/keys", dir);
    FILE *f = fopen(path, "w");
    fputs("# the keys of team a\n\nfileKey1\r\n   fileKey2  \n#notakey\n  # nor this\na,b\n", f);
    fclose(f);
    snprintf(spec, sizeof spec, "@%s", path);
    ss_auth *a = NULL;
    char err[512] = "";
    is_int(ss_auth_load(spec, &a, err, sizeof err), 0, "@FILE loads");
    is_int(ss_auth_count(a), 3,
           "three keys (comments, blank lines skipped; CR and spaces trimmed)");
    ok(owner_of(a, "Bearer fileKey1") && owner_of(a, "Bearer fileKey2"), "its keys are accepted");
    ok(owner_of(a, "Bearer a,b") != 0, "a comma inside a file's line is part of the key");
    uint64_t o;
    is_int(ss_auth_check(a, "Bearer #notakey", &o), -2, "a comment line is not a key");
    ss_auth *b = NULL;
    ss_auth_load("fileKey1", &b, err, sizeof err);
    is_int(owner_of(a, "Bearer fileKey1"), owner_of(b, "Bearer fileKey1"),
           "the same key from a file or a list: the same owner");
    ss_auth_free(b);
    ss_auth_free(a);

    f = fopen(path, "w");
    fputs("# nothing but comments\n\n", f);
    fclose(f);
    a = (ss_auth *)1;
    err[0] = 0;
    ok(ss_auth_load(spec, &a, err, sizeof err) == -1 && a == NULL && strstr(err, "no key"),
       "a file without keys: -1, \"no key\" (%s)", err);
    unlink(path);
    a = (ss_auth *)1;
    err[0] = 0;
    ok(ss_auth_load(spec, &a, err, sizeof err) == -1 && a == NULL, "a missing file: -1");
    ok(strstr(err, "api-keys") && strstr(err, path), "the message names api-keys and the file: %s",
       err);
    rmdir(dir);
}

int main(void) {
    test_no_keys();
    test_list();
    test_file();
    return done_testing();
}
