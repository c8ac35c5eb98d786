/* routes.c: the table and its matcher. Patterns are literal segments and {model} / {id}
 * captures (1..64 characters, no '/'); rows are tried in order, and the order of rows with
 * the same pattern is the order of the Allow header. */
#include "routes.h"

#include <stdio.h>
#include <string.h>

#include "http.h"
#include "oip.h"
#include "repo.h"
#include "ui.h"

#define J SS_FMT_JSON
#define P SS_FMT_PB
#define T SS_FMT_TEXT
#define O &ss_codec_oip

/* clang-format off */
const ss_route_def ss_routes[] = {
    /* method   pattern                          op / http handler                 body              in                       out        auth             flags  codec */
    {"GET",    "/healthz",                       ss_op_healthz, NULL,              SS_BODY_NONE,     0,                       J | P | T, SS_AUTH_OPEN,    SS_RF_DRAINING, NULL},
    {"GET",    "/readyz",                        ss_op_readyz, NULL,               SS_BODY_NONE,     0,                       J | P | T, SS_AUTH_OPEN,    0, NULL},
    {"GET",    "/metrics",                       ss_op_metrics, NULL,              SS_BODY_NONE,     0,                       J | P | T, SS_AUTH_METRICS, SS_RF_DRAINING, NULL},
    {"GET",    "/",                              ss_ui_op_page, NULL,              SS_BODY_NONE,     0,                       SS_FMT_ANY, SS_AUTH_OPEN,   0, NULL},
    {"GET",    "/ui",                            ss_ui_op_page, NULL,              SS_BODY_NONE,     0,                       SS_FMT_ANY, SS_AUTH_OPEN,   SS_RF_SLASH, NULL},
    {"GET",    "/ui/fmnist/{index}",             ss_ui_op_image, NULL,             SS_BODY_NONE,     0,                       SS_FMT_ANY, SS_AUTH_KEY,    0, NULL},
    {"GET",    "/v1/models",                     ss_op_models, NULL,               SS_BODY_NONE,     0,                       J | P,     SS_AUTH_KEY,     SS_RF_SLASH, NULL},
    {"GET",    "/v1/models/{model}",             ss_op_model, NULL,                SS_BODY_NONE,     0,                       J | P,     SS_AUTH_KEY,     0, NULL},
    {"GET",    "/v1/models/{model}/versions/{v}", ss_op_model, NULL,               SS_BODY_NONE,     0,                       J | P,     SS_AUTH_KEY,     0, NULL},
    {"POST",   "/v1/models/{model}/sessions",    ss_op_open, NULL,                 SS_BODY_BUFFERED, J | P,                   J | P,     SS_AUTH_KEY,     0, NULL},
    {"GET",    "/v1/sessions/{id}",              ss_op_session_get, NULL,          SS_BODY_NONE,     0,                       J | P,     SS_AUTH_KEY,     0, NULL},
    {"DELETE", "/v1/sessions/{id}",              ss_op_close, NULL,                SS_BODY_NONE,     0,                       J | P,     SS_AUTH_KEY,     0, NULL},
    {"POST",   "/v1/sessions/{id}/reset",        ss_op_reset, NULL,                SS_BODY_BUFFERED, J | P,                   J | P,     SS_AUTH_KEY,     0, NULL},
    {"POST",   "/v1/sessions/{id}/steps",        ss_op_step, NULL,                 SS_BODY_BUFFERED, J | P,                   J | P,     SS_AUTH_KEY,     0, NULL},
    {"POST",   "/v1/sessions/{id}/stream",       NULL, ss_stream_begin,            SS_BODY_STREAMED, J | SS_FMT_NDJSON,       J,         SS_AUTH_KEY,     0, NULL},
    {"GET",    "/v1/sessions/{id}/events",       NULL, ss_http_events,             SS_BODY_NONE,     0,                       J | P | T, SS_AUTH_KEY,     0, NULL},
    {"GET",    "/v1/sessions/{id}/state",        ss_op_state_get, NULL,            SS_BODY_NONE,     0,                       P,         SS_AUTH_KEY,     0, NULL},
    {"PUT",    "/v1/sessions/{id}/state",        ss_op_state_put, NULL,            SS_BODY_BUFFERED, P | SS_FMT_BYTES,        J | P,     SS_AUTH_KEY,     0, NULL},
    {"POST",   "/v1/models/{model}/infer",       ss_op_infer, NULL,                SS_BODY_BUFFERED, J | P,                   J | P,     SS_AUTH_KEY,     0, NULL},
    {"POST",   "/v1/models/{model}/classify",    ss_op_classify, NULL,             SS_BODY_BUFFERED, J | P,                   J | P,     SS_AUTH_KEY,     0, NULL},
    /* Open Inference Protocol (oip.h): its own codec for bodies and errors ({"error": "..."}), no Content-Type needed */
    {"GET",    "/v2/health/live",                ss_oip_op_live, NULL,             SS_BODY_NONE,     0,                       J,         SS_AUTH_OPEN,    SS_RF_DRAINING, O},
    {"GET",    "/v2/health/ready",               ss_oip_op_ready, NULL,            SS_BODY_NONE,     0,                       J,         SS_AUTH_OPEN,    SS_RF_DRAINING, O},
    {"GET",    "/v2",                            ss_oip_op_server, NULL,           SS_BODY_NONE,     0,                       J,         SS_AUTH_KEY,     SS_RF_SLASH,    O},
    {"POST",   "/v2/repository/index",           ss_oip_op_index, NULL,            SS_BODY_BUFFERED, J,                       J,         SS_AUTH_KEY,     0,              O},
    {"POST",   "/v2/repository/models/{model}/load", ss_repo_op_load, NULL,     SS_BODY_BUFFERED, J,                       J,         SS_AUTH_KEY,     0,              O},
    {"POST",   "/v2/repository/models/{model}/unload", ss_repo_op_unload, NULL, SS_BODY_BUFFERED, J,                       J,         SS_AUTH_KEY,     0,              O},
    {"GET",    "/v2/models/stats",               ss_oip_op_stats, NULL,            SS_BODY_NONE,     0,                       J,         SS_AUTH_KEY,     0,              O},
    {"GET",    "/v2/models/{model}",             ss_oip_op_model, NULL,            SS_BODY_NONE,     0,                       J,         SS_AUTH_KEY,     0,              O},
    {"GET",    "/v2/models/{model}/versions/{v}", ss_oip_op_model, NULL,           SS_BODY_NONE,     0,                       J,         SS_AUTH_KEY,     0,              O},
    {"GET",    "/v2/models/{model}/ready",       ss_oip_op_model_ready, NULL,      SS_BODY_NONE,     0,                       J,         SS_AUTH_KEY,     SS_RF_DRAINING, O},
    {"GET",    "/v2/models/{model}/versions/{v}/ready", ss_oip_op_model_ready, NULL, SS_BODY_NONE,   0,                       J,         SS_AUTH_KEY,     SS_RF_DRAINING, O},
    {"GET",    "/v2/models/{model}/config",      ss_oip_op_config, NULL,           SS_BODY_NONE,     0,                       J,         SS_AUTH_KEY,     0,              O},
    {"GET",    "/v2/models/{model}/versions/{v}/config", ss_oip_op_config, NULL,   SS_BODY_NONE,     0,                       J,         SS_AUTH_KEY,     0,              O},
    {"GET",    "/v2/models/{model}/stats",       ss_oip_op_stats, NULL,            SS_BODY_NONE,     0,                       J,         SS_AUTH_KEY,     0,              O},
    {"GET",    "/v2/models/{model}/versions/{v}/stats", ss_oip_op_stats, NULL,     SS_BODY_NONE,     0,                       J,         SS_AUTH_KEY,     0,              O},
    {"POST",   "/v2/models/{model}/infer",       NULL, ss_oip_http_infer,          SS_BODY_BUFFERED, J,                       J,         SS_AUTH_KEY,     0,              O},
    {"POST",   "/v2/models/{model}/versions/{v}/infer", NULL, ss_oip_http_infer,   SS_BODY_BUFFERED, J,                       J,         SS_AUTH_KEY,     0,              O},
};
/* clang-format on */
const size_t ss_route_count = sizeof ss_routes / sizeof ss_routes[0];

/* Match one pattern against path: 1 with the captures, 0 not. */
static int match(const char *pat, const char *path, unsigned flags, char *model, size_t mcap,
                 char *sid, size_t scap) {
    const char *p = pat, *s = path;
    char m_tmp[SS_ID_MAX + 1] = "", s_tmp[SS_ID_MAX + 1] = "";
    while (*p) {
        if (*p != '/' || *s != '/') return 0;
        p++, s++;
        size_t pn = strcspn(p, "/"), sn = strcspn(s, "/");
        if (p[0] == '{') {
            if (sn == 0 || sn > SS_ID_MAX) return 0;
            char *dst = !strncmp(p, "{model}", 7) ? m_tmp : s_tmp;
            memcpy(dst, s, sn);
            dst[sn] = 0;
        } else if (pn != sn || strncmp(p, s, pn) != 0) {
            return 0;
        }
        p += pn;
        s += sn;
    }
    if (*s && !((flags & SS_RF_SLASH) && !strcmp(s, "/"))) return 0;
    snprintf(model, mcap, "%s", m_tmp);
    snprintf(sid, scap, "%s", s_tmp);
    return 1;
}

int ss_route_match(const char *method, const char *path, char *model, size_t model_cap, char *sid,
                   size_t sid_cap, char *allow, size_t allow_cap) {
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    int found = 0;
    allow[0] = 0;
    for (size_t i = 0; i < ss_route_count; i++) {
        const ss_route_def *rt = &ss_routes[i];
        if (!match(rt->pattern, path, rt->flags, model, model_cap, sid, sid_cap)) continue;
        if (!strcmp(rt->method, method) || (get && !strcmp(rt->method, "GET"))) return (int)i;
        size_t n = strlen(allow);
        snprintf(allow + n, allow_cap - n, "%s%s", found ? ", " : "", rt->method);
        found = 1;
    }
    return found ? -405 : -404;
}

const struct ss_codec *ss_route_codec(const char *path) {
    size_t n = strcspn(path + (*path == '/'), "/") + (*path == '/');
    for (size_t i = 0; i < ss_route_count; i++) {
        const char *p = ss_routes[i].pattern;
        size_t pn = strcspn(p + (*p == '/'), "/") + (*p == '/');
        if (ss_routes[i].codec && pn == n && !strncmp(p, path, n)) return ss_routes[i].codec;
    }
    return NULL;
}
