/* balancer.c: see balancer.h. Dropping to nobody happens in the child between fork and exec
 * (setgroups, setgid, setuid), so nginx never runs its master as root and never tries its
 * own `user` switch. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "balancer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NOBODY 65534

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

unsigned tb_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    unsigned port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

char *tb_slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (n < cap) break;
        char *b = realloc(buf, cap * 2 + 1);
        if (!b) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = b;
        cap *= 2;
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

int tb_render(const char *template_path, const char *out, const char *const *peer_lines, size_t n,
              const tb_subst *subs) {
    char *text = tb_slurp(template_path, NULL);
    if (!text) {
        printf("# cannot read %s: %s\n", template_path, strerror(errno));
        return -1;
    }
    FILE *f = fopen(out, "w");
    if (!f) {
        printf("# cannot write %s: %s\n", out, strerror(errno));
        free(text);
        return -1;
    }
    int in_peers = 0, saw_begin = 0, saw_end = 0, nsubs = 0, found = 0;
    while (subs && subs[nsubs].marker)
        nsubs++;
    unsigned long used = 0; /* bit i: subs[i] matched a line */
    for (char *line = text, *next; line && *line; line = next) {
        char *nl = strchr(line, '\n');
        next = nl ? nl + 1 : NULL;
        if (nl) *nl = '\0';
        if (strstr(line, "# BEGIN PEERS")) {
            in_peers = saw_begin = 1;
            fprintf(f, "%s\n", line);
            for (size_t i = 0; i < n; i++)
                fprintf(f, "%s\n", peer_lines[i]);
            continue;
        }
        if (strstr(line, "# END PEERS")) {
            in_peers = 0;
            saw_end = 1;
        }
        if (in_peers) continue;
        int replaced = 0;
        for (int i = 0; i < nsubs && i < 64; i++)
            if (strstr(line, subs[i].marker)) {
                fprintf(f, "%s\n", subs[i].line);
                used |= 1ul << i;
                replaced = 1;
                break;
            }
        if (!replaced) fprintf(f, "%s\n", line);
    }
    for (int i = 0; i < nsubs && i < 64; i++)
        if (used & 1ul << i)
            found++;
        else
            printf("# %s: no line with the marker %s\n", template_path, subs[i].marker);
    free(text);
    if (fclose(f) != 0) return -1;
    if (!saw_begin || !saw_end) {
        printf("# %s: no \"# BEGIN PEERS\" ... \"# END PEERS\" block\n", template_path);
        return -1;
    }
    return found == nsubs ? 0 : -1;
}

static int chown_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return lchown(path, NOBODY, NOBODY) == 0 ? 0 : -1;
}

int tb_chown_nobody(const char *dir) {
    if (getuid() != 0) return 0;
    if (nftw(dir, chown_one, 16, FTW_PHYS) != 0) {
        printf("# chown %s: %s\n", dir, strerror(errno));
        return -1;
    }
    return 0;
}

static int port_open(unsigned port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

int tb_start(ts_server *b, const char *dir, unsigned port, char *const *argv) {
    memset(b, 0, sizeof *b);
    snprintf(b->dir, sizeof b->dir, "%s", dir);
    snprintf(b->log, sizeof b->log, "%s/stderr.log", dir);
    if (tb_chown_nobody(dir) != 0) return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open(b->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (chdir(dir) != 0) _exit(126);
        if (getuid() == 0 &&
            (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0))
            _exit(125);
        execv(argv[0], argv);
        _exit(127);
    }
    b->pid = pid;
    b->port = port;
    snprintf(b->base, sizeof b->base, "http://127.0.0.1:%u", port);
    for (int i = 0; i < 1000; i++) { /* 10 s */
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            printf("# %s exited during start (status %d)\n", argv[0], st);
            b->pid = 0;
            ts_server_dump_log(b);
            return -1;
        }
        if (port_open(port)) return 0;
        sleep_ms(10);
    }
    printf("# %s does not accept on port %u\n", argv[0], port);
    tb_stop(b);
    return -1;
}

int tb_stop(ts_server *b) {
    if (b->pid <= 0) return -1;
    kill(b->pid, SIGTERM);
    int st = 0;
    for (int i = 0; i < 1000; i++) {
        if (waitpid(b->pid, &st, WNOHANG) == b->pid) {
            b->pid = 0;
            return (WIFEXITED(st) && WEXITSTATUS(st) == 0) ||
                           (WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM)
                       ? 0
                       : -1;
        }
        sleep_ms(10);
    }
    kill(b->pid, SIGKILL);
    waitpid(b->pid, &st, 0);
    b->pid = 0;
    return -1;
}

unsigned tb_where_logged(char *const *logs, int n, const char *method, const char *path) {
    char needle[512];
    snprintf(needle, sizeof needle, " %s %s ", method, path);
    unsigned m = 0;
    for (int i = 0; i < n && i < 32; i++)
        if (logs[i] && strstr(logs[i], needle)) m |= 1u << i;
    return m;
}

long tb_read_logs(char **logs, const ts_server *rep, int n, const char *needle, long want) {
    long found = 0;
    for (int attempt = 0; attempt < 250; attempt++) {
        found = 0;
        for (int i = 0; i < n; i++) {
            free(logs[i]);
            logs[i] = tb_slurp(rep[i].log, NULL);
            for (const char *p = logs[i]; p && (p = strstr(p, needle)); p++)
                found++;
        }
        if (found >= want) break;
        sleep_ms(20);
    }
    return found;
}

int tb_replicas_start(tb_replicas *r, int n) {
    memset(r, 0, sizeof *r);
    char models[256], err[256];
    if (n < 1 || n > TB_MAX_REPLICAS) return -1;
    if (ts_tmpdir(models, sizeof models, "models") || ts_make_model(models, "tiny", "--seed 3"))
        return -1;
    for (int i = 0; i < n; i++) {
        if (ts_server_start(&r->rep[i], models, NULL) != 0) {
            printf("# replica %d does not start\n", i);
            tb_replicas_stop(r);
            return -1;
        }
        r->n = i + 1;
        snprintf(r->names[i], sizeof r->names[i], "127.0.0.1:%u", r->rep[i].port);
        r->name_ptr[i] = r->names[i];
    }
    if (ss_ring_new(&r->ring, r->name_ptr, (size_t)n, err, sizeof err) != 0) {
        printf("# ring of the replicas: %s\n", err);
        tb_replicas_stop(r);
        return -1;
    }
    return 0;
}

int tb_replicas_stop(tb_replicas *r) {
    int rc = 0;
    for (int i = 0; i < r->n; i++) {
        int st = -1;
        if (r->rep[i].pid > 0 && (ts_server_stop(&r->rep[i], SIGTERM, &st) != 0 || st != 0))
            rc = -1;
    }
    ss_ring_free(r->ring);
    r->ring = NULL;
    return rc;
}

void tb_oip_body(char *out, size_t cap, const char *seq, int start) {
    snprintf(out, cap,
             "{\"parameters\": {\"sequence_id\": %s, \"sequence_start\": %s, \"steps\": 2}, "
             "\"inputs\": [{\"name\": \"events\", \"datatype\": \"FP32\", \"shape\": [1, 3], "
             "\"data\": [0, 1, 1]}]}",
             seq, start ? "true" : "false");
}

unsigned tb_holders(const tb_replicas *r, const char *sid) {
    char get[128];
    snprintf(get, sizeof get, "/v1/sessions/%s", sid);
    unsigned m = 0;
    for (int i = 0; i < r->n; i++) {
        ts_resp resp;
        if (ts_http(&r->rep[i], "GET", get, NULL, NULL, 0, NULL, &resp) == 0 && resp.status == 200)
            m |= 1u << i;
        ts_resp_free(&resp);
    }
    return m;
}
