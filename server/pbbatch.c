/* pbbatch.c: one-pass decoder of the common protobuf SpikeBatch (see pbbatch.h).
 *
 * protobuf-c unpacks a batch reflectively, one allocated InputEvent per event (~14 % of the
 * server's CPU on one-step batches even from an arena). The wire format of the batch is
 * small (proto/api.proto): seq = 1 (varint), steps = 2 (varint), events = 3 (messages of
 * step = 1, input = 2 varints and value = 3 fixed32, default 1.0), dense = 4, outputs = 5
 * (strings). This reader takes the fields it knows in the one form each has on the wire
 * and declines everything else (dense rows, unknown or repeated scalar fields, other wire
 * types, truncation, values past their type), so the protobuf-c reference keeps every
 * rule of the format and every error message.
 */
#include "pbbatch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *p, *end;
} rd;

/* A varint of at most max_bytes bytes (5 for a uint32 below 2^32, 9 for a uint64 below
 * 2^63). */
static int varint(rd *r, int max_bytes, uint64_t *v) {
    uint64_t x = 0;
    for (int i = 0; i < max_bytes && r->p < r->end; i++) {
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return 1;
        }
    }
    return 0;
}

static int u32(rd *r, uint32_t *v) {
    uint64_t x;
    if (!varint(r, 5, &x) || x > UINT32_MAX) return 0;
    *v = (uint32_t)x;
    return 1;
}

/* A length-delimited field's body. */
static int body(rd *r, rd *sub) {
    uint64_t n;
    if (!varint(r, 5, &n) || n > (uint64_t)(r->end - r->p)) return 0;
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return 1;
}

static int event(rd *e, spk_event *out) {
    unsigned seen = 0;
    out->step = out->input = 0;
    out->value = 1.0f;
    while (e->p < e->end) {
        uint64_t tag;
        if (!varint(e, 1, &tag)) return 0; /* field numbers 1..3: one-byte tags */
        unsigned field = (unsigned)(tag >> 3), wt = (unsigned)(tag & 7);
        if (field < 1 || field > 3 || (seen & (1u << field))) return 0;
        seen |= 1u << field;
        if (field == 3) {
            if (wt != 5 || e->end - e->p < 4) return 0;
            memcpy(&out->value, e->p, 4); /* little-endian, as every target of ours */
            e->p += 4;
            float f = out->value;
            if (!isfinite(f) || fabsf(f) > SPK_MAX_VALUE) return 0;
        } else if (wt != 0 || !u32(e, field == 1 ? &out->step : &out->input)) {
            return 0;
        }
    }
    return 1;
}

int ss_batch_pb_fast(const uint8_t *buf, size_t len, const spk_model *m, const ss_limits *lim,
                     ss_batch *out) {
    rd r = {buf, buf + len};
    unsigned seen = 0, mask = 0, n_outputs = 0;
    uint64_t seq = 0;
    uint32_t steps = 0;
    spk_event *ev = NULL;
    size_t n_ev = 0, cap = 0;
    memset(out, 0, sizeof *out);
    while (r.p < r.end) {
        uint64_t tag;
        rd sub;
        if (!varint(&r, 1, &tag)) goto declined;
        unsigned field = (unsigned)(tag >> 3), wt = (unsigned)(tag & 7);
        if (field == 1 || field == 2) {
            if (wt != 0 || (seen & (1u << field))) goto declined;
            seen |= 1u << field;
            if (field == 1 ? !varint(&r, 9, &seq) : !u32(&r, &steps)) goto declined;
        } else if (field == 3 && wt == 2) {
            if (n_ev >= lim->max_events || !body(&r, &sub)) goto declined;
            if (n_ev == cap) {
                size_t c = cap ? cap * 2 : 256;
                spk_event *p = realloc(ev, c * sizeof *ev);
                if (!p) goto declined;
                ev = p;
                cap = c;
            }
            if (!event(&sub, &ev[n_ev++])) goto declined;
        } else if (field == 5 && wt == 2) {
            if (!body(&r, &sub)) goto declined;
            unsigned bit = ss_output_bit((const char *)sub.p, (size_t)(sub.end - sub.p));
            if (!bit) goto declined;
            if ((bit & (SS_OUT_READOUT | SS_OUT_READOUT_ALL)) && !m->has_readout) goto declined;
            mask |= bit;
            n_outputs++;
        } else if ((field == 6 || field == 7) && wt == 2) {
            if (!body(&r, &sub)) goto declined; /* gRPC's session_id and model: not ours */
        } else {
            goto declined; /* dense rows, unknown fields, other wire types */
        }
    }
    /* The reference decoder's checks: each failure is its error to report. */
    if (seq > INT64_MAX || !(seen & (1u << 2)) || steps < 1 || steps > lim->max_steps)
        goto declined;
    for (size_t i = 0; i < n_ev; i++)
        if (ev[i].step >= steps || ev[i].input >= m->n_in) goto declined;
    if (n_ev == 0) {
        free(ev);
        ev = NULL;
    }
    out->has_seq = (seen & (1u << 1)) != 0;
    out->seq = seq;
    out->steps = steps;
    out->events = ev;
    out->n_events = n_ev;
    out->outputs = n_outputs ? mask : ss_outputs_default(m);
    spk_events_sort(out->events, out->n_events);
    return 0;
declined:
    free(ev);
    memset(out, 0, sizeof *out);
    return SS_PB_DECLINED;
}
