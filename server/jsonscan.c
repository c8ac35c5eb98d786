/* jsonscan.c: one-pass decoder of the common spike batch (see jsonscan.h).
 *
 * jansson builds a json_t per number: a one-step batch of ~230 events cost ~700 allocations
 * and most of the server's CPU per request. This scanner reads the body once, writes events
 * and dense rows straight into arrays that become the batch's own, and checks the batch with
 * the same rules as the reference decoder (batch.c) once the whole object has been read (the
 * keys may come in any order). It never reports an error itself: whatever it does not know
 * for certain, it declines, so error messages and positions stay jansson's.
 *
 * Numbers are converted as jansson does (strtoll for integers, strtod then a float cast for
 * values) but only where the result is exact by construction: integers of at most 18
 * digits, and reals of at most 15 significant digits with a decimal exponent within
 * [-22, 22], where m * 10^e (or m / 10^e) is one correctly rounded IEEE operation on two
 * exact doubles (Clinger's fast path), i.e. exactly what a correct strtod returns.
 */
#include "jsonscan.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef ss_jscan scan;

enum { NUM_NONE = SS_JNUM_NONE, NUM_INT = SS_JNUM_INT, NUM_REAL = SS_JNUM_REAL };

static inline void skip_ws(scan *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static inline int eat(scan *s, char c) {
    skip_ws(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return 1;
    }
    return 0;
}

static int is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* A JSON number: NUM_INT with *iv (and *dv = (double)*iv) or NUM_REAL with *dv; NUM_NONE
 * when the token is not a number or not one this path converts exactly. */
static int number(scan *s, int64_t *iv, double *dv) {
    static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    skip_ws(s);
    const char *p = s->p, *e = s->end;
    int neg = 0, real = 0, nd = 0, frac = 0, x = 0;
    uint64_t m = 0;
    if (p < e && *p == '-') {
        neg = 1;
        p++;
    }
    if (p >= e || !is_digit(*p)) return NUM_NONE;
    if (*p == '0') {
        p++;
        if (p < e && is_digit(*p)) return NUM_NONE; /* leading zero: invalid JSON */
    } else {
        for (; p < e && is_digit(*p); p++) {
            if (nd == 18) return NUM_NONE;
            m = m * 10 + (uint64_t)(*p - '0');
            nd++;
        }
    }
    if (p < e && *p == '.') {
        real = 1;
        p++;
        if (p >= e || !is_digit(*p)) return NUM_NONE;
        for (; p < e && is_digit(*p); p++) {
            frac++;
            if (m == 0 && *p == '0') continue; /* leading zeros of 0.000x are not significant */
            if (nd == 18) return NUM_NONE;
            m = m * 10 + (uint64_t)(*p - '0');
            nd++;
        }
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        real = 1;
        p++;
        int xneg = 0, xd = 0;
        if (p < e && (*p == '+' || *p == '-')) xneg = *p++ == '-';
        if (p >= e || !is_digit(*p)) return NUM_NONE;
        for (; p < e && is_digit(*p); p++) {
            if (++xd > 4) return NUM_NONE;
            x = x * 10 + (*p - '0');
        }
        if (xneg) x = -x;
    }
    if (!real) {
        *iv = neg ? -(int64_t)m : (int64_t)m;
        *dv = (double)*iv;
    } else {
        int k = x - frac;
        double d;
        if (m == 0)
            d = 0;
        else if (nd > 15 || k < -22 || k > 22)
            return NUM_NONE;
        else
            d = k >= 0 ? (double)m * p10[k] : (double)m / p10[-k];
        *dv = neg ? -d : d;
    }
    s->p = p;
    return real ? NUM_REAL : NUM_INT;
}

/* A non-negative integer (seq, steps, a step, an input). Most are short plain digit runs,
 * read here directly; anything else goes through number(). */
static int natural(scan *s, int64_t *v) {
    double d;
    skip_ws(s);
    const char *p = s->p;
    if (p < s->end && *p >= '1' && *p <= '9') {
        uint64_t m = 0;
        for (int nd = 0; p < s->end && is_digit(*p) && nd < 18; nd++, p++)
            m = m * 10 + (uint64_t)(*p - '0');
        if (p == s->end || !(is_digit(*p) || *p == '.' || *p == 'e' || *p == 'E')) {
            *v = (int64_t)m;
            s->p = p;
            return 1;
        }
    }
    return number(s, v, &d) == NUM_INT && *v >= 0;
}

/* An input value, as take_value() in batch.c accepts it. */
static int value(scan *s, float *out) {
    int64_t iv;
    double d;
    if (number(s, &iv, &d) == NUM_NONE) return 0;
    float f = (float)d;
    if (!isfinite(f) || fabsf(f) > SPK_MAX_VALUE) return 0;
    *out = f;
    return 1;
}

/* A string of printable ASCII without escapes (what jansson would return unchanged). */
static int string(scan *s, const char **str, size_t *len) {
    skip_ws(s);
    if (s->p >= s->end || *s->p != '"') return 0;
    const char *q = ++s->p;
    for (; s->p < s->end; s->p++) {
        unsigned char c = (unsigned char)*s->p;
        if (c == '"') {
            *str = q;
            *len = (size_t)(s->p - q);
            s->p++;
            return 1;
        }
        if (c < 0x20 || c >= 0x7f || c == '\\') return 0;
    }
    return 0;
}

/* A growing array that becomes the batch's own. */
static int grow(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap * 2 : 256;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * size);
    if (!q) return 0;
    *p = q;
    *cap = c;
    return 1;
}

/* A run of 1 to 9 digits without a leading zero (or "0" alone), as an integer. */
static inline const char *digits(const char *p, const char *end, uint32_t *v) {
    if (p >= end || !is_digit(*p)) return NULL;
    uint32_t x = (uint32_t)(*p++ - '0');
    if (x == 0) {
        *v = 0;
        return p;
    }
    for (int nd = 1; p < end && is_digit(*p); nd++, p++) {
        if (nd == 9) return NULL;
        x = x * 10 + (uint32_t)(*p - '0');
    }
    *v = x;
    return p;
}

/* The most common event, "[step,input]" or "[step, input]", read in one go; NULL when the
 * text is anything else (then the general path reads it). */
static inline const char *plain_event(const char *p, const char *end, spk_event *out) {
    uint32_t step, input;
    if (p >= end || *p != '[' || !(p = digits(p + 1, end, &step))) return NULL;
    if (p >= end || *p != ',') return NULL;
    p++;
    if (p < end && *p == ' ') p++;
    if (!(p = digits(p, end, &input)) || p >= end || *p != ']') return NULL;
    *out = (spk_event){step, input, 1.0f};
    return p + 1;
}

static int events(scan *s, const ss_limits *lim, spk_event **ev, size_t *n) {
    size_t cap = 0;
    if (!eat(s, '[')) return 0;
    if (eat(s, ']')) return 1;
    do {
        int64_t step, input;
        float v = 1.0f;
        skip_ws(s);
        if (*n < cap) { /* room for one more without growing */
            const char *q = plain_event(s->p, s->end, &(*ev)[*n]);
            if (q) {
                if (*n >= lim->max_events) return 0;
                (*n)++;
                s->p = q;
                continue; /* to the loop's test: the next ',' */
            }
        }
        if (!eat(s, '[') || !natural(s, &step) || !eat(s, ',') || !natural(s, &input)) return 0;
        if (step > UINT32_MAX || input > UINT32_MAX) return 0;
        if (eat(s, ',') && !value(s, &v)) return 0;
        if (!eat(s, ']')) return 0;
        if (*n >= lim->max_events || !grow((void **)ev, &cap, *n + 1, sizeof **ev)) return 0;
        (*ev)[(*n)++] = (spk_event){(uint32_t)step, (uint32_t)input, v};
    } while (eat(s, ','));
    return eat(s, ']');
}

static int dense(scan *s, const spk_model *m, const ss_limits *lim, float **dn, size_t *rows) {
    size_t cap = 0, n_in = m->n_in;
    if (!eat(s, '[')) return 0;
    if (eat(s, ']')) return 1;
    do {
        if (*rows >= lim->max_steps || (*rows + 1) * n_in > lim->max_events) return 0;
        if (!grow((void **)dn, &cap, (*rows + 1) * n_in, sizeof **dn)) return 0;
        float *dst = *dn + *rows * n_in;
        if (!eat(s, '[')) return 0;
        for (size_t j = 0; j < n_in; j++)
            if ((j && !eat(s, ',')) || !value(s, &dst[j])) return 0;
        if (!eat(s, ']')) return 0;
        (*rows)++;
    } while (eat(s, ','));
    return eat(s, ']');
}

static int outputs(scan *s, const spk_model *m, unsigned *mask) {
    *mask = 0;
    if (!eat(s, '[')) return 0;
    if (eat(s, ']')) return 1;
    do {
        const char *str;
        size_t len;
        if (!string(s, &str, &len)) return 0;
        unsigned bit = ss_output_bit(str, len);
        if (!bit) return 0;
        if ((bit & (SS_OUT_READOUT | SS_OUT_READOUT_ALL)) && !m->has_readout) return 0;
        *mask |= bit;
    } while (eat(s, ','));
    return eat(s, ']');
}

int ss_batch_json_fast(const char *buf, size_t len, const spk_model *m, const ss_limits *lim,
                       ss_batch *out) {
    enum { K_SEQ, K_STEPS, K_EVENTS, K_DENSE, K_OUTPUTS, N_KEYS };
    static const char *const keys[N_KEYS] = {"seq", "steps", "events", "dense", "outputs"};
    scan s = {buf, buf + len};
    unsigned seen = 0, mask = ss_outputs_default(m);
    int64_t seq = 0, steps = 0;
    spk_event *ev = NULL;
    float *dn = NULL;
    size_t n_ev = 0, rows = 0;
    memset(out, 0, sizeof *out);
    if (!eat(&s, '{')) goto declined;
    if (!eat(&s, '}')) {
        do {
            const char *key;
            size_t klen;
            int k = 0;
            if (!string(&s, &key, &klen) || !eat(&s, ':')) goto declined;
            while (k < N_KEYS && !(strlen(keys[k]) == klen && !memcmp(keys[k], key, klen)))
                k++;
            if (k == N_KEYS || (seen & (1u << k))) goto declined; /* unknown or duplicate */
            seen |= 1u << k;
            int ok = k == K_SEQ      ? natural(&s, &seq)
                     : k == K_STEPS  ? natural(&s, &steps)
                     : k == K_EVENTS ? events(&s, lim, &ev, &n_ev)
                     : k == K_DENSE  ? dense(&s, m, lim, &dn, &rows)
                                     : outputs(&s, m, &mask);
            if (!ok) goto declined;
        } while (eat(&s, ','));
        if (!eat(&s, '}')) goto declined;
    }
    skip_ws(&s);
    if (s.p != s.end) goto declined;
    /* The reference decoder's checks, in any order: each failure is its error to report. */
    if (!(seen & (1u << K_STEPS)) || steps < 1 || steps > (int64_t)lim->max_steps) goto declined;
    for (size_t i = 0; i < n_ev; i++)
        if (ev[i].step >= (uint64_t)steps || ev[i].input >= m->n_in) goto declined;
    if ((seen & (1u << K_DENSE)) &&
        ((uint64_t)steps * m->n_in + n_ev > lim->max_events || rows != (size_t)steps))
        goto declined;
    if (n_ev == 0) {
        free(ev);
        ev = NULL;
    }
    out->has_seq = (seen & (1u << K_SEQ)) != 0;
    out->seq = (uint64_t)seq;
    out->steps = (uint32_t)steps;
    out->events = ev;
    out->n_events = n_ev;
    out->dense = dn;
    out->outputs = mask;
    spk_events_sort(out->events, out->n_events);
    return 0;
declined:
    free(ev);
    free(dn);
    memset(out, 0, sizeof *out);
    return SS_JSON_DECLINED;
}

void ss_jscan_ws(ss_jscan *s) {
    skip_ws(s);
}

int ss_jscan_eat(ss_jscan *s, char c) {
    return eat(s, c);
}

int ss_jscan_string(ss_jscan *s, const char **str, size_t *len) {
    return string(s, str, len);
}

int ss_jscan_number(ss_jscan *s, int64_t *iv, double *dv) {
    return number(s, iv, dv);
}
