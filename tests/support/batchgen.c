/* batchgen.c: see batchgen.h. */
#include "batchgen.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.pb-c.h"

uint64_t tb_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double unif(uint64_t *s) {
    return (double)(tb_rand(s) >> 11) / 9007199254740992.0;
}

int tb_random(tb_batch *b, uint64_t *rng, uint32_t steps, uint32_t n_in, double p) {
    size_t cap = 64, n = 0;
    spk_event *ev = malloc(cap * sizeof *ev);
    if (!ev) return -1;
    for (uint32_t t = 0; t < steps; t++)
        for (uint32_t i = 0; i < n_in; i++) {
            if (unif(rng) >= p) continue;
            if (n == cap) {
                cap *= 2;
                spk_event *e = realloc(ev, cap * sizeof *e);
                if (!e) {
                    free(ev);
                    return -1;
                }
                ev = e;
            }
            float v = (tb_rand(rng) & 3) ? 1.0f : (float)(0.25 * (1 + (tb_rand(rng) % 8)));
            ev[n++] = (spk_event){t, i, v};
        }
    b->steps = steps;
    b->ev = ev;
    b->n = n;
    return 0;
}

void tb_free(tb_batch *b) {
    free(b->ev);
    b->ev = NULL;
    b->n = 0;
}

char *tb_json(const tb_batch *b, int64_t seq) {
    size_t cap = 64 + b->n * 40, len = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    if (seq >= 0)
        len += (size_t)snprintf(s + len, cap - len, "{\"seq\":%lld,", (long long)seq);
    else
        len += (size_t)snprintf(s + len, cap - len, "{");
    len += (size_t)snprintf(s + len, cap - len, "\"steps\":%u,\"events\":[", b->steps);
    for (size_t i = 0; i < b->n; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s[%u,%u,%.9g]", i ? "," : "", b->ev[i].step,
                                b->ev[i].input, (double)b->ev[i].value);
    snprintf(s + len, cap - len, "]}");
    return s;
}

uint8_t *tb_pb(const tb_batch *b, int64_t seq, size_t *len) {
    Spikeserve__SpikeBatch m = SPIKESERVE__SPIKE_BATCH__INIT;
    Spikeserve__InputEvent *ev = calloc(b->n + 1, sizeof *ev);
    Spikeserve__InputEvent **ep = calloc(b->n + 1, sizeof *ep);
    uint8_t *out = NULL;
    if (!ev || !ep) goto done;
    for (size_t i = 0; i < b->n; i++) {
        spikeserve__input_event__init(&ev[i]);
        ev[i].has_step = ev[i].has_input = ev[i].has_value = 1;
        ev[i].step = b->ev[i].step;
        ev[i].input = b->ev[i].input;
        ev[i].value = b->ev[i].value;
        ep[i] = &ev[i];
    }
    m.has_steps = 1;
    m.steps = b->steps;
    if (seq >= 0) {
        m.has_seq = 1;
        m.seq = (uint64_t)seq;
    }
    m.n_events = b->n;
    m.events = ep;
    *len = spikeserve__spike_batch__get_packed_size(&m);
    out = malloc(*len + 1);
    if (out) spikeserve__spike_batch__pack(&m, out);
done:
    free(ev);
    free(ep);
    return out;
}

int tb_result_pb(const void *buf, size_t len, tb_result *out) {
    memset(out, 0, sizeof *out);
    Spikeserve__StepResult *r = spikeserve__step_result__unpack(NULL, len, buf);
    if (!r) return -1;
    out->has_seq = r->has_seq;
    out->seq = r->seq;
    out->t0 = r->t0;
    out->steps = r->steps;
    out->n = r->n_spikes;
    out->sp = calloc(r->n_spikes + 1, sizeof *out->sp);
    for (size_t i = 0; out->sp && i < r->n_spikes; i++)
        out->sp[i] = (spk_spike){r->spikes[i]->step, r->spikes[i]->neuron, r->spikes[i]->value};
    out->n_readout = (uint32_t)(r->n_readout < 256 ? r->n_readout : 256);
    for (uint32_t i = 0; i < out->n_readout; i++)
        out->readout[i] = r->readout[i];
    if (r->prediction) {
        out->has_pred = 1;
        out->pred = r->prediction->index;
    }
    spikeserve__step_result__free_unpacked(r, NULL);
    return out->sp ? 0 : -1;
}

int tb_result_json(const char *buf, tb_result *out) {
    memset(out, 0, sizeof *out);
    json_t *j = json_loads(buf, 0, NULL);
    if (!j) return -1;
    json_t *seq = json_object_get(j, "seq"), *sp = json_object_get(j, "spikes"),
           *ro = json_object_get(j, "readout"), *pred = json_object_get(j, "prediction");
    out->has_seq = seq != NULL;
    out->seq = (uint64_t)json_integer_value(seq);
    out->t0 = (uint64_t)json_integer_value(json_object_get(j, "t0"));
    out->steps = (uint32_t)json_integer_value(json_object_get(j, "steps"));
    out->n = json_array_size(sp);
    out->sp = calloc(out->n + 1, sizeof *out->sp);
    for (size_t i = 0; out->sp && i < out->n; i++) {
        json_t *e = json_array_get(sp, i);
        out->sp[i] = (spk_spike){(uint32_t)json_integer_value(json_array_get(e, 0)),
                                 (uint32_t)json_integer_value(json_array_get(e, 1)),
                                 (float)json_number_value(json_array_get(e, 2))};
    }
    out->n_readout = (uint32_t)json_array_size(ro);
    if (out->n_readout > 256) out->n_readout = 256;
    for (uint32_t i = 0; i < out->n_readout; i++)
        out->readout[i] = (float)json_number_value(json_array_get(ro, i));
    if (pred) {
        out->has_pred = 1;
        out->pred = (uint32_t)json_integer_value(json_object_get(pred, "index"));
    }
    json_decref(j);
    return out->sp ? 0 : -1;
}

void tb_result_free(tb_result *r) {
    free(r->sp);
    r->sp = NULL;
}

int tb_engine_step(spk_state *st, spk_scratch *sc, const tb_batch *b, tb_result *out) {
    const spk_model *m = spk_state_model(st);
    memset(out, 0, sizeof *out);
    spk_output o;
    memset(&o, 0, sizeof o);
    o.spikes.cap = spk_max_spikes(m->layers[m->n_layers - 1].n, b->steps);
    o.spikes.buf = malloc((o.spikes.cap + 1) * sizeof(spk_spike));
    float ro[256];
    if (m->has_readout) o.readout = ro;
    spk_input in = {b->steps, b->ev, b->n, NULL};
    char err[256];
    out->t0 = spk_state_t(st);
    out->steps = b->steps;
    if (!o.spikes.buf || spk_step(st, &in, &o, sc, err, sizeof err) != 0) {
        printf("# engine step failed: %s\n", err);
        free(o.spikes.buf);
        return -1;
    }
    out->sp = o.spikes.buf;
    out->n = o.spikes.len;
    if (m->has_readout) {
        out->n_readout = m->readout.n;
        memcpy(out->readout, ro, m->readout.n * sizeof(float));
        out->has_pred = 1;
        out->pred = spk_argmax(ro, m->readout.n);
    }
    return 0;
}

int tb_result_eq(const tb_result *a, const tb_result *b, double tol, char *why, size_t len) {
    if (a->t0 != b->t0 || a->steps != b->steps) {
        snprintf(why, len, "t0/steps %llu/%u vs %llu/%u", (unsigned long long)a->t0, a->steps,
                 (unsigned long long)b->t0, b->steps);
        return 0;
    }
    if (a->n != b->n) {
        snprintf(why, len, "%zu spikes vs %zu (t0 %llu)", a->n, b->n, (unsigned long long)a->t0);
        return 0;
    }
    for (size_t i = 0; i < a->n; i++)
        if (a->sp[i].step != b->sp[i].step || a->sp[i].neuron != b->sp[i].neuron ||
            fabs((double)a->sp[i].value - (double)b->sp[i].value) > tol) {
            snprintf(why, len, "spike %zu: [%u,%u,%.9g] vs [%u,%u,%.9g]", i, a->sp[i].step,
                     a->sp[i].neuron, (double)a->sp[i].value, b->sp[i].step, b->sp[i].neuron,
                     (double)b->sp[i].value);
            return 0;
        }
    if (a->n_readout != b->n_readout) {
        snprintf(why, len, "%u readout values vs %u", a->n_readout, b->n_readout);
        return 0;
    }
    for (uint32_t i = 0; i < a->n_readout; i++)
        if (fabs((double)a->readout[i] - (double)b->readout[i]) > tol) {
            snprintf(why, len, "readout[%u]: %.9g vs %.9g", i, (double)a->readout[i],
                     (double)b->readout[i]);
            return 0;
        }
    return 1;
}
