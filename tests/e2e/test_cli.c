/* The command line: --help lists every option with its default and variable; variables
 * configure, flags win; a bad model file or an empty model directory stops the start with
 * a message naming it; the access log has one line per request and never a payload. */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "../support/harness.h"
#include "../tap.h"

static int run(const char *args, char *out, size_t cap) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/spikeserve %s 2>&1", ts_build_dir(), args);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, cap - 1, p) : 0;
    out[n] = 0;
    int st = p ? pclose(p) : -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return strdup("");
    char *b = calloc(1, 1 << 20);
    size_t n = fread(b, 1, (1 << 20) - 1, f);
    b[n] = 0;
    fclose(f);
    return b;
}

int main(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    static char out[65536];
    is_int(run("--help", out, sizeof out), 0, "--help exits 0");
    const char *opts[] = {"model-dir",
                          "bind",
                          "port",
                          "port-file",
                          "state-dir",
                          "workers",
                          "http-threads",
                          "max-sessions",
                          "max-body-bytes",
                          "max-steps",
                          "max-events",
                          "queue-depth",
                          "idle-timeout",
                          "checkpoint-interval",
                          "max-subscribers",
                          "sse-buffer-bytes",
                          "keepalive",
                          "max-connections",
                          "access-log"};
    int listed = 0;
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++) {
        char flag[64], env[64];
        snprintf(flag, sizeof flag, "--%s ", opts[i]);
        size_t k = (size_t)snprintf(env, sizeof env, "SPIKESERVE_");
        for (const char *p = opts[i]; *p; p++)
            env[k++] = *p == '-' ? '_' : (char)(*p - 32 * (*p >= 'a' && *p <= 'z'));
        env[k] = 0;
        const char *at = strstr(out, flag);
        const char *nl = at ? strstr(at, "default:") : NULL;
        if (at && nl && strstr(at, env))
            listed++;
        else
            diag("--help lacks %s / %s", flag, env);
    }
    is_int(listed, (int)(sizeof opts / sizeof *opts),
           "--help lists every option with its default and variable");
    is_int(run("--no-such-option", out, sizeof out), 2, "an unknown option exits 2");
    ok(strstr(out, "--no-such-option") != NULL, "and names it");
    is_int(run("--port banana", out, sizeof out), 2, "a bad number exits 2");

    char dir[256], empty[256], bad[400], args[1200];
    if (ts_tmpdir(dir, sizeof dir, "models") || ts_make_model(dir, "tiny", NULL) ||
        ts_tmpdir(empty, sizeof empty, "empty"))
        return 1;
    snprintf(args, sizeof args, "--model-dir '%s' --port 0", empty);
    is_int(run(args, out, sizeof out), 1, "an empty model directory: exit 1");
    ok(strstr(out, "no model files") != NULL, "says there are no model files");
    snprintf(bad, sizeof bad, "%s/broken.spk", dir);
    FILE *f = fopen(bad, "w");
    fputs("this is not a model", f);
    fclose(f);
    snprintf(args, sizeof args, "--model-dir '%s' --port 0", dir);
    is_int(run(args, out, sizeof out), 1, "a bad model file: exit 1");
    ok(strstr(out, "broken.spk") != NULL, "the message names the file");
    diag("%s", out);
    remove(bad);

    /* environment variables configure; flags win */
    setenv("SPIKESERVE_MAX_STEPS", "7", 1);
    ts_server s;
    int status;
    if (ok(ts_server_start(&s, dir, NULL) == 0, "start with SPIKESERVE_MAX_STEPS=7")) {
        ts_resp r;
        ts_json(&s, "POST", "/v1/models/tiny/infer", "{\"steps\":8}", &r);
        ok(r.status == 413 && strstr(r.body, "7"), "the variable's limit applies (413 names 7)");
        ts_resp_free(&r);
        ts_server_stop(&s, SIGTERM, &status);
    }
    const char *flag[] = {"--max-steps", "9", NULL};
    if (ok(ts_server_start(&s, dir, flag) == 0, "start with the variable and --max-steps 9")) {
        ts_resp r;
        ts_json(&s, "POST", "/v1/models/tiny/infer", "{\"steps\":8}", &r);
        is_int(r.status, 200, "the flag wins (8 steps run)");
        ts_resp_free(&r);
        ts_server_stop(&s, SIGTERM, &status);
    }
    unsetenv("SPIKESERVE_MAX_STEPS");

    /* the log: a start line with the port, one line per request, no payloads */
    if (ok(ts_server_start(&s, dir, NULL) == 0, "start")) {
        char sid[80], path[200];
        ts_open_session(&s, "tiny", sid, sizeof sid);
        snprintf(path, sizeof path, "/v1/sessions/%s/steps", sid);
        ts_resp r;
        ts_json(&s, "POST", path, "{\"seq\":1,\"steps\":3,\"events\":[[0,1,0.123456]]}", &r);
        ts_resp_free(&r);
        ts_server_stop(&s, SIGTERM, &status);
        char *log = slurp(s.log);
        char want[64];
        snprintf(want, sizeof want, "listening on 127.0.0.1:%u", s.port);
        ok(strstr(log, want) != NULL, "the start line names address and port");
        char line[300];
        snprintf(line, sizeof line, "POST %s 200 ", path);
        const char *l = strstr(log, line);
        char sess[120];
        snprintf(sess, sizeof sess, "session=%s", sid);
        ok(l && strstr(l, "ms session=") && strstr(l, sess),
           "a log line: method, path, status, duration, session");
        ok(!strstr(log, "0.123456") && !strstr(log, "events"), "no payload in the log");
        int lines = 0;
        for (const char *p = log; (p = strstr(p, " session=")); p++)
            lines++;
        is_int(lines, 3, "one line per request (readyz, open, steps)");
        free(log);
    }
    return done_testing();
}
