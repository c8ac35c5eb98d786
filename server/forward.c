/* forward.c: one thread drives a libcurl multi handle. Submitters push calls on a list under
 * a mutex and wake the thread (curl_multi_wakeup); the thread adds them as easy handles,
 * runs the transfers and calls done for each finished one. The answer is bounded while it
 * arrives (the write callback stops the transfer past max_bytes). */
#include "forward.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sse.h"
#include "util.h"

struct ss_fwd {
    CURLM *multi;
    pthread_t thread;
    pthread_mutex_t mu;
    ss_fwd_call *queue;   /* submitted, not yet added */
    ss_fwd_call *running; /* added to the multi handle (the forwarder thread's) */
    int stop;
};

int ss_fwd_header(ss_fwd_call *c, const char *name, const char *value) {
    char line[1024];
    snprintf(line, sizeof line, "%s: %s", name, value);
    struct curl_slist *l = curl_slist_append(c->headers, line);
    if (!l) return -1;
    c->headers = l;
    return 0;
}

void ss_fwd_call_clear(ss_fwd_call *c) {
    curl_slist_free_all(c->headers);
    free(c->resp);
    memset(c, 0, sizeof *c);
}

void ss_fwd_call_release(ss_fwd_call *c) {
    if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
    ss_sse_unref(c->relay);                     /* the call's */
    if (!c->relay_given) ss_sse_unref(c->relay); /* the one no response took */
    ss_fwd_call_clear(c);
    free(c);
}

/* The transfer is over: answer it (done), or end the relayed stream that was answered. */
static void complete(ss_fwd_call *c) {
    if (!c->relay) {
        c->done(c);
        return;
    }
    if (c->streaming)
        ss_sse_close(c->relay);
    else
        c->done(c);
    ss_fwd_call_release(c); /* the forwarder's reference */
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
    ss_fwd_call *c = ud;
    size_t n = size * nmemb;
    if (c->streaming) /* 0 stops the transfer: the client left, or read too slowly */
        return ss_sse_relay(c->relay, data, n) == 0 ? n : 0;
    if (c->resp_len + n > c->max_bytes) {
        snprintf(c->err, sizeof c->err, "the answer is larger than %zu bytes", c->max_bytes);
        return 0; /* stops the transfer: CURLE_WRITE_ERROR */
    }
    if (c->resp_len + n > c->resp_cap) {
        uint8_t *b = ss_util_grow(c->resp, &c->resp_cap, c->resp_len + n, 4096);
        if (!b) {
            snprintf(c->err, sizeof c->err, "out of memory for the answer");
            return 0;
        }
        c->resp = b;
    }
    memcpy(c->resp + c->resp_len, data, n);
    c->resp_len += n;
    return n;
}

/* Copy the value of header line h (length n) into dst when its name is name. */
static void take(const char *h, size_t n, const char *name, char *dst, size_t cap) {
    size_t k = strlen(name);
    if (n <= k || strncasecmp(h, name, k) || h[k] != ':') return;
    const char *v = h + k + 1, *e = h + n;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
        e--;
    snprintf(dst, cap, "%.*s", (int)(e - v), v);
}

static size_t on_header(char *h, size_t size, size_t nmemb, void *ud) {
    ss_fwd_call *c = ud;
    size_t n = size * nmemb;
    if (n >= 5 && !strncmp(h, "HTTP/", 5)) { /* a new answer (after a 100): forget the last */
        c->ctype[0] = c->retry_after[0] = c->location[0] = c->allow[0] = c->owner[0] = 0;
        return n;
    }
    take(h, n, "Content-Type", c->ctype, sizeof c->ctype);
    take(h, n, "Retry-After", c->retry_after, sizeof c->retry_after);
    take(h, n, "Location", c->location, sizeof c->location);
    take(h, n, "Allow", c->allow, sizeof c->allow);
    take(h, n, "X-Spikeserve-Owner", c->owner, sizeof c->owner);
    if (c->relay && c->easy && !c->streaming && (n == 2 || n == 1) && (h[0] == '\r' || h[0] == '\n')) {
        long st = 0; /* the end of the headers: a 200 stream is answered now */
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &st);
        if (st == 200) {
            c->status = 200;
            c->streaming = 1;
            c->done(c);
        }
    }
    return n;
}

static CURL *easy_for(ss_fwd_call *c) {
    CURL *e = curl_easy_init();
    if (!e) return NULL;
    /* no "Expect: 100-continue" round trip for bodies over 1 KiB */
    if (c->len) ss_fwd_header(c, "Expect", "");
    curl_easy_setopt(e, CURLOPT_URL, c->url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, c->method);
    if (!strcmp(c->method, "GET")) curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    if (c->len || !strcmp(c->method, "POST") || !strcmp(c->method, "PUT")) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body ? (const char *)c->body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->len);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
    long tmo = c->timeout_ms > 0 ? c->timeout_ms : 30000L;
    if (c->relay) { /* a stream lasts: it is cut when silent, keep-alives included */
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (tmo + 999) / 1000);
    } else {
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, tmo);
    }
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    return e;
}

static void finish(ss_fwd_call *c, CURL *e, CURLcode rc) {
    if (c->streaming) return; /* answered already: its status is the submitter's now */
    if (rc == CURLE_OK) {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &c->status);
    } else {
        c->status = 0;
        if (!c->err[0]) snprintf(c->err, sizeof c->err, "%s", curl_easy_strerror(rc));
    }
}

void ss_fwd_run(ss_fwd_call *c) {
    CURL *e = easy_for(c);
    if (!e) {
        snprintf(c->err, sizeof c->err, "out of memory");
        c->status = 0;
        return;
    }
    finish(c, e, curl_easy_perform(e));
    curl_easy_cleanup(e);
}

/* Take c's transfer off the multi handle and the running list. */
static void detach(ss_fwd *f, ss_fwd_call *c) {
    curl_multi_remove_handle(f->multi, c->easy);
    curl_easy_cleanup(c->easy);
    c->easy = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else
        f->running = c->next;
    if (c->next) c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

static void *loop(void *arg) {
    ss_fwd *f = arg;
    for (;;) {
        pthread_mutex_lock(&f->mu);
        ss_fwd_call *q = f->queue;
        f->queue = NULL;
        int stop = f->stop;
        pthread_mutex_unlock(&f->mu);
        while (q) {
            ss_fwd_call *c = q;
            q = q->next;
            CURL *e = stop ? NULL : easy_for(c);
            if (!e || curl_multi_add_handle(f->multi, e) != CURLM_OK) {
                if (e) curl_easy_cleanup(e);
                snprintf(c->err, sizeof c->err, stop ? "shutting down" : "out of memory");
                c->status = 0;
                complete(c);
                continue;
            }
            c->easy = e;
            c->prev = NULL;
            c->next = f->running;
            if (f->running) f->running->prev = c;
            f->running = c;
        }
        int running = 0;
        curl_multi_perform(f->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(f->multi, &left))) {
            if (m->msg != CURLMSG_DONE) continue;
            CURL *e = m->easy_handle;
            CURLcode rc = m->data.result;
            ss_fwd_call *c = NULL;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&c);
            finish(c, e, rc);
            detach(f, c);
            complete(c);
        }
        if (stop && running == 0) break;
        if (stop) { /* answer what is still running: their clients are going too */
            while (f->running) {
                ss_fwd_call *c = f->running;
                detach(f, c);
                snprintf(c->err, sizeof c->err, "shutting down");
                c->status = 0;
                complete(c);
            }
            break;
        }
        curl_multi_poll(f->multi, NULL, 0, 1000, NULL);
    }
    return NULL;
}

int ss_fwd_create(ss_fwd **out, char *err, size_t errlen) {
    *out = NULL;
    ss_fwd *f = calloc(1, sizeof *f);
    if (!f || !(f->multi = curl_multi_init())) {
        free(f);
        snprintf(err, errlen, "forwarder: out of memory");
        return -1;
    }
    curl_multi_setopt(f->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 64L);
    pthread_mutex_init(&f->mu, NULL);
    if (pthread_create(&f->thread, NULL, loop, f) != 0) {
        curl_multi_cleanup(f->multi);
        pthread_mutex_destroy(&f->mu);
        free(f);
        snprintf(err, errlen, "forwarder: cannot start its thread");
        return -1;
    }
    *out = f;
    return 0;
}

void ss_fwd_submit(ss_fwd *f, ss_fwd_call *c) {
    pthread_mutex_lock(&f->mu);
    int stop = f->stop;
    if (!stop) {
        c->next = f->queue;
        f->queue = c;
    }
    pthread_mutex_unlock(&f->mu);
    if (stop) {
        snprintf(c->err, sizeof c->err, "shutting down");
        c->status = 0;
        complete(c);
        return;
    }
    curl_multi_wakeup(f->multi);
}

void ss_fwd_stop(ss_fwd *f) {
    if (!f) return;
    pthread_mutex_lock(&f->mu);
    int was = f->stop;
    f->stop = 1;
    pthread_mutex_unlock(&f->mu);
    if (was) return;
    curl_multi_wakeup(f->multi);
    pthread_join(f->thread, NULL);
}

void ss_fwd_free(ss_fwd *f) {
    if (!f) return;
    ss_fwd_stop(f);
    curl_multi_cleanup(f->multi);
    pthread_mutex_destroy(&f->mu);
    free(f);
}
