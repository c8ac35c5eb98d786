/* oip_grpc.c: inference.GRPCInferenceService around the REST operations (oip_grpc.h).
 *
 * Two translations and nothing else. In: a request message into what the REST route gets
 * ({model}, {v}, the infer body, its JSON header written as text). Out: the REST answer's
 * JSON into the response message by a small writer of the protobuf wire format driven by
 * the message's descriptor (pb_msg); it refuses a JSON key the message does not have, so
 * the REST answer and the proto cannot drift apart silently. An infer answer is written on
 * the worker straight from the answer's output tensors (ss_oip_tensors, the walk the REST
 * encoder makes too), so the front end only sends bytes.
 */
#include "oip_grpc.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_service.pb-c.h"
#include "oip.h"
#include "util.h"

/* ---- a growing buffer of wire bytes ---- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
    int oom;
} wbuf;

static void put(wbuf *b, const void *s, size_t n) {
    if (b->oom) return;
    if (b->len + n > b->cap) {
        uint8_t *p = ss_util_grow(b->p, &b->cap, b->len + n, 256);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
    }
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void put_varint(wbuf *b, uint64_t v) {
    uint8_t t[10];
    size_t n = 0;
    do {
        t[n++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        v >>= 7;
    } while (v);
    put(b, t, n);
}

static void put_tag(wbuf *b, uint32_t id, unsigned wt) {
    put_varint(b, (uint64_t)id << 3 | wt);
}

static void put_bytes(wbuf *b, uint32_t id, const void *s, size_t n) {
    put_tag(b, id, 2);
    put_varint(b, n);
    put(b, s, n);
}

/* ---- JSON into a message's wire bytes, by its descriptor ---- */

static int pb_msg(wbuf *b, const ProtobufCMessageDescriptor *d, json_t *obj, char *err,
                  size_t errlen);

static int bad(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* An integer from a JSON integer, a boolean, or a decimal string (how REST writes versions). */
static int json_int(json_t *v, int64_t *out) {
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (json_is_string(v) && json_string_length(v) > 0) {
        char *end;
        long long x = strtoll(json_string_value(v), &end, 10);
        if (*end) return -1;
        *out = x;
        return 0;
    }
    return -1;
}

/* An InferParameter from a plain JSON value (the REST form of a parameter). */
static int pb_param(wbuf *b, json_t *v) {
    if (json_is_boolean(v)) {
        put_tag(b, 1, 0);
        put_varint(b, json_is_true(v));
    } else if (json_is_integer(v)) {
        put_tag(b, 2, 0);
        put_varint(b, (uint64_t)json_integer_value(v));
    } else if (json_is_string(v)) {
        put_bytes(b, 3, json_string_value(v), json_string_length(v));
    } else if (json_is_real(v)) {
        double x = json_real_value(v);
        put_tag(b, 4, 1);
        put(b, &x, 8); /* little-endian host, as the wire */
    } else {
        return -1;
    }
    return 0;
}

static int pb_value(wbuf *b, const ProtobufCFieldDescriptor *f, json_t *v, char *err,
                    size_t errlen) {
    int64_t i = 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_BOOL:
        if (json_int(v, &i)) return bad(err, errlen, "%s: not an integer", f->name);
        put_tag(b, f->id, 0);
        put_varint(b, (uint64_t)i);
        return 0;
    case PROTOBUF_C_TYPE_ENUM: {
        if (json_is_string(v)) {
            const ProtobufCEnumValue *e =
                protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, json_string_value(v));
            if (!e) return bad(err, errlen, "%s: no value %s", f->name, json_string_value(v));
            i = e->value;
        } else if (json_int(v, &i)) {
            return bad(err, errlen, "%s: not an enum value", f->name);
        }
        put_tag(b, f->id, 0);
        put_varint(b, (uint64_t)i);
        return 0;
    }
    case PROTOBUF_C_TYPE_FLOAT: {
        if (!json_is_number(v)) return bad(err, errlen, "%s: not a number", f->name);
        float x = (float)json_number_value(v);
        put_tag(b, f->id, 5);
        put(b, &x, 4);
        return 0;
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        if (!json_is_number(v)) return bad(err, errlen, "%s: not a number", f->name);
        double x = json_number_value(v);
        put_tag(b, f->id, 1);
        put(b, &x, 8);
        return 0;
    }
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
        if (!json_is_string(v)) return bad(err, errlen, "%s: not a string", f->name);
        put_bytes(b, f->id, json_string_value(v), json_string_length(v));
        return 0;
    case PROTOBUF_C_TYPE_MESSAGE: {
        wbuf sub = {0};
        int rc = 0;
        if (f->descriptor == &inference__infer_parameter__descriptor && !json_is_object(v))
            rc = pb_param(&sub, v) ? bad(err, errlen, "%s: not a parameter value", f->name) : 0;
        else
            rc = pb_msg(&sub, f->descriptor, v, err, errlen);
        if (!rc) put_bytes(b, f->id, sub.p, sub.len);
        if (sub.oom) b->oom = 1;
        free(sub.p);
        return rc;
    }
    default:
        return bad(err, errlen, "%s: a field type this writer does not know", f->name);
    }
}

/* A map field (repeated key/value entries) from a JSON object. */
static int is_map(const ProtobufCFieldDescriptor *f) {
    const ProtobufCMessageDescriptor *e = f->descriptor;
    return f->type == PROTOBUF_C_TYPE_MESSAGE && e->n_fields == 2 &&
           !strcmp(e->fields[0].name, "key") && !strcmp(e->fields[1].name, "value");
}

static int pb_msg(wbuf *b, const ProtobufCMessageDescriptor *d, json_t *obj, char *err,
                  size_t errlen) {
    if (!json_is_object(obj)) return bad(err, errlen, "%s: not an object", d->name);
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, key);
        if (!f) return bad(err, errlen, "%s has no field %s", d->name, key);
        if (json_is_null(v)) continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED && is_map(f) && json_is_object(v)) {
            const ProtobufCMessageDescriptor *e = f->descriptor;
            const char *k;
            json_t *x;
            json_object_foreach(v, k, x) {
                wbuf sub = {0};
                put_bytes(&sub, 1, k, strlen(k));
                int rc = pb_value(&sub, &e->fields[1], x, err, errlen);
                if (!rc) put_bytes(b, f->id, sub.p, sub.len);
                if (sub.oom) b->oom = 1;
                free(sub.p);
                if (rc) return rc;
            }
        } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (!json_is_array(v)) return bad(err, errlen, "%s: not an array", f->name);
            size_t i;
            json_t *x;
            json_array_foreach(v, i, x) {
                if (pb_value(b, f, x, err, errlen)) return -1;
            }
        } else if (pb_value(b, f, v, err, errlen)) {
            return -1;
        }
    }
    return 0;
}

/* The REST answer in o->reply (JSON) as message d (wrapped as {wrap: answer} when wrap is
 * set). Errors stay as they are. */
static int answer_as(ss_op *o, const ProtobufCMessageDescriptor *d, const char *wrap) {
    if (o->reply.err) return SS_OP_NOW;
    json_error_t je;
    json_t *j = json_loadb((const char *)o->reply.body, o->reply.len, 0, &je);
    if (j && wrap) {
        json_t *w = json_object();
        if (w && json_object_set_new(w, wrap, j) == 0) {
            j = w;
        } else {
            json_decref(w);
            json_decref(j);
            j = NULL;
        }
    }
    wbuf b = {0};
    char err[256] = "out of memory";
    int rc = j ? pb_msg(&b, d, j, err, sizeof err) : -1;
    json_decref(j);
    if (rc || b.oom) {
        free(b.p);
        ss_reply_fail(&o->reply, rc && j ? SS_E_INTERNAL : SS_E_NOMEM, "answer as %s: %s", d->name,
                      err);
        return SS_OP_NOW;
    }
    ss_reply_set(&o->reply, 200, "application/grpc", b.p, b.len);
    return SS_OP_NOW;
}

/* A bool answer (ServerLive, ServerReady, ModelReady): field 1. */
static int answer_bool(ss_op *o, int v) {
    ss_reply_clear(&o->reply);
    uint8_t *m = malloc(2);
    if (!m) {
        ss_reply_fail(&o->reply, SS_E_NOMEM, "out of memory");
        return SS_OP_NOW;
    }
    m[0] = 0x08;
    m[1] = (uint8_t)v;
    ss_reply_set(&o->reply, 200, "application/grpc", m, 2);
    return SS_OP_NOW;
}

/* ---- requests ---- */

static int invalid(ss_op *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int invalid(ss_op *o, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ss_reply_fail(&o->reply, SS_E_INVALID, "%s", msg);
    return -1;
}

/* {model} and {v} of the REST route: a model name and a version, each bounded. */
static int route(ss_op *o, const char *name, const char *version) {
    if (strlen(name) >= sizeof o->model)
        return invalid(o, "name: longer than %zu bytes", sizeof o->model - 1);
    if (strlen(version) >= sizeof o->sid)
        return invalid(o, "version: longer than %zu bytes", sizeof o->sid - 1);
    snprintf(o->model, sizeof o->model, "%s", name);
    snprintf(o->sid, sizeof o->sid, "%s", version);
    o->out = &ss_codec_oip;
    return 0;
}

/* The {name, version} requests (ModelReady, ModelMetadata, ModelConfig, ModelStatistics
 * have the same two fields): 0, or -1 with o->reply set. */
static int name_version(ss_op *o) {
    Inference__ModelMetadataRequest *q =
        inference__model_metadata_request__unpack(NULL, o->len, o->body);
    if (!q) return invalid(o, "the request message does not decode");
    int rc = route(o, q->name, q->version);
    inference__model_metadata_request__free_unpacked(q, NULL);
    return rc;
}

int ss_oipg_live(ss_op *o) {
    ss_oip_op_live(o);
    return o->reply.err ? SS_OP_NOW : answer_bool(o, 1);
}

int ss_oipg_ready(ss_op *o) {
    ss_oip_op_ready(o);
    return answer_bool(o, !o->reply.err);
}

int ss_oipg_model_ready(ss_op *o) {
    if (name_version(o)) return SS_OP_NOW;
    ss_oip_op_model_ready(o);
    if (o->reply.err && o->reply.err != SS_E_NOT_FOUND && o->reply.err != SS_E_UNAVAILABLE)
        return SS_OP_NOW;
    return answer_bool(o, !o->reply.err);
}

int ss_oipg_server(ss_op *o) {
    o->out = &ss_codec_oip;
    ss_oip_op_server(o);
    return answer_as(o, &inference__server_metadata_response__descriptor, NULL);
}

int ss_oipg_model(ss_op *o) {
    if (name_version(o)) return SS_OP_NOW;
    ss_oip_op_model(o);
    return answer_as(o, &inference__model_metadata_response__descriptor, NULL);
}

int ss_oipg_config(ss_op *o) {
    if (name_version(o)) return SS_OP_NOW;
    ss_oip_op_config(o);
    return answer_as(o, &inference__model_config_response__descriptor, "config");
}

int ss_oipg_stats(ss_op *o) {
    if (name_version(o)) return SS_OP_NOW;
    ss_oip_op_stats(o);
    return answer_as(o, &inference__model_statistics_response__descriptor, NULL);
}

int ss_oipg_index(ss_op *o) {
    Inference__RepositoryIndexRequest *q =
        inference__repository_index_request__unpack(NULL, o->len, o->body);
    if (!q) {
        invalid(o, "the request message does not decode");
        return SS_OP_NOW;
    }
    inference__repository_index_request__free_unpacked(q, NULL);
    o->out = &ss_codec_oip;
    o->body = NULL; /* every model here is loaded and ready: the index is the same */
    o->len = 0;
    ss_oip_op_index(o);
    return answer_as(o, &inference__repository_index_response__descriptor, "models");
}

/* ---- ModelInfer: the request as the REST body ---- */

/* The JSON header is written as text (the REST decoder parses it once): strings escaped,
 * bytes >= 0x80 as they are (the decoder refuses what is not UTF-8). */
static void j_raw(wbuf *b, const char *s) {
    put(b, s, strlen(s));
}

static void j_str(wbuf *b, const char *s) {
    put(b, "\"", 1);
    for (const char *p = s;; p++) {
        size_t n = strcspn(p, "\"\\\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10"
                              "\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f");
        put(b, p, n);
        p += n;
        if (!*p) break;
        char e[8];
        snprintf(e, sizeof e, "\\u%04x", (unsigned char)*p);
        put(b, e, 6);
    }
    put(b, "\"", 1);
}

static void j_int(wbuf *b, long long v) {
    char t[24];
    put(b, t, (size_t)snprintf(t, sizeof t, "%lld", v));
}

/* `"key":value` of a parameter. 0, or -1 with o->reply set. */
static int j_param(ss_op *o, wbuf *b, const char *where, const char *key,
                   const Inference__InferParameter *p) {
    j_str(b, key);
    put(b, ":", 1);
    switch (p ? p->parameter_choice_case : 0) {
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM:
        j_raw(b, p->bool_param ? "true" : "false");
        return 0;
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM:
        j_int(b, (long long)p->int64_param);
        return 0;
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM:
        j_str(b, p->string_param);
        return 0;
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_DOUBLE_PARAM: {
        if (!isfinite(p->double_param))
            return invalid(o, "%sparameters %.64s: not a finite number", where, key);
        char t[32];
        put(b, t, (size_t)snprintf(t, sizeof t, "%.17g", p->double_param));
        return 0;
    }
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM:
        if (p->uint64_param > INT64_MAX)
            return invalid(o, "%sparameters %.64s: %llu is past 2^63-1", where, key,
                           (unsigned long long)p->uint64_param);
        j_int(b, (long long)p->uint64_param);
        return 0;
    default:
        return invalid(o, "%sparameters %.64s: no value", where, key);
    }
}

#define MAX_PARAMS 64 /* entries of one parameters map */

/* A map of parameters (the entries of any of the three generated map types: key, value) as
 * a JSON object, with `extra` (already JSON) last. As protobuf reads a map, the last entry
 * of a key counts; the key `skip` (REST's binary-data switch of that level: on gRPC every
 * tensor is raw) is left out. rc gets 0, or -1 with o->reply set. */
#define J_PARAMS(rc, o, b, where, n, entries, skip, extra)                                         \
    do {                                                                                           \
        int first_ = 1;                                                                            \
        rc = (n) > MAX_PARAMS ? invalid(o, "%sparameters: more than %d", where, MAX_PARAMS) : 0;   \
        put(b, "{", 1);                                                                            \
        for (size_t i_ = 0; i_ < (n) && !rc; i_++) {                                               \
            int later_ = 0;                                                                        \
            for (size_t k_ = i_ + 1; k_ < (n); k_++)                                               \
                later_ |= !strcmp((entries)[k_]->key, (entries)[i_]->key);                         \
            if (later_ || !strcmp((entries)[i_]->key, skip)) continue;                             \
            if (!first_) put(b, ",", 1);                                                           \
            first_ = 0;                                                                            \
            rc = j_param(o, b, where, (entries)[i_]->key, (entries)[i_]->value);                   \
        }                                                                                          \
        if (!first_ && (extra)[0]) put(b, ",", 1);                                                 \
        j_raw(b, extra);                                                                           \
        put(b, "}", 1);                                                                            \
    } while (0)

/* The typed contents of input t as little-endian bytes of its datatype into tail. 0, or -1
 * with o->reply set (no contents, contents in a field of another datatype, a value out of
 * range of the datatype). */
static int contents(ss_op *o, const Inference__ModelInferRequest__InferInputTensor *t, wbuf *tail) {
    const Inference__InferTensorContents *c = t->contents;
    const char *dt = t->datatype;
    size_t n = 0, used = 0;
    if (c)
        used = !!c->n_bool_contents + !!c->n_int_contents + !!c->n_int64_contents +
               !!c->n_uint_contents + !!c->n_uint64_contents + !!c->n_fp32_contents +
               !!c->n_fp64_contents + !!c->n_bytes_contents;
/* each value of field ARR as a T, refused when the test OK on its value (x) fails */
#define COPY(N, ARR, T, OK)                                                                        \
    do {                                                                                           \
        n = c ? c->N : 0;                                                                          \
        for (size_t i = 0; i < n; i++) {                                                           \
            __typeof__(c->ARR[0]) x = c->ARR[i];                                                   \
            if (!(OK))                                                                             \
                return invalid(o, "inputs %.64s: " #ARR "[%zu] is out of range for %s", t->name,   \
                               i, dt);                                                             \
            T y = (T)x;                                                                            \
            put(tail, &y, sizeof y);                                                               \
        }                                                                                          \
    } while (0)
    if (!strcmp(dt, "FP32"))
        COPY(n_fp32_contents, fp32_contents, float, 1);
    else if (!strcmp(dt, "FP64"))
        COPY(n_fp64_contents, fp64_contents, double, 1);
    else if (!strcmp(dt, "BOOL"))
        COPY(n_bool_contents, bool_contents, uint8_t, x == 0 || x == 1);
    else if (!strcmp(dt, "INT8"))
        COPY(n_int_contents, int_contents, int8_t, x >= INT8_MIN && x <= INT8_MAX);
    else if (!strcmp(dt, "INT16"))
        COPY(n_int_contents, int_contents, int16_t, x >= INT16_MIN && x <= INT16_MAX);
    else if (!strcmp(dt, "INT32"))
        COPY(n_int_contents, int_contents, int32_t, 1);
    else if (!strcmp(dt, "INT64"))
        COPY(n_int64_contents, int64_contents, int64_t, 1);
    else if (!strcmp(dt, "UINT8"))
        COPY(n_uint_contents, uint_contents, uint8_t, x <= UINT8_MAX);
    else if (!strcmp(dt, "UINT16"))
        COPY(n_uint_contents, uint_contents, uint16_t, x <= UINT16_MAX);
    else if (!strcmp(dt, "UINT32"))
        COPY(n_uint_contents, uint_contents, uint32_t, 1);
    else if (!strcmp(dt, "UINT64"))
        COPY(n_uint64_contents, uint64_contents, uint64_t, 1);
    else
        return 0; /* the REST decoder names what is wrong with the datatype */
#undef COPY
    if (used > (n ? 1u : 0u))
        return invalid(o, "inputs %.64s: contents of datatype %s go in its own field only", t->name,
                       dt);
    return 0;
}

/* The REST infer body of request q: the JSON header, then the binary tail (every input as
 * binary data, every output asked for as binary). NULL with o->reply set. */
static uint8_t *rest_body(ss_op *o, const Inference__ModelInferRequest *q, size_t *head_len,
                          size_t *len) {
    wbuf h = {0}, tail = {0};
    if (q->n_raw_input_contents && q->n_raw_input_contents != q->n_inputs) {
        invalid(o, "raw_input_contents has %zu entries for %zu inputs", q->n_raw_input_contents,
                q->n_inputs);
        goto fail;
    }
    j_raw(&h, "{");
    if (q->id[0]) {
        j_raw(&h, "\"id\":");
        j_str(&h, q->id);
        j_raw(&h, ",");
    }
    j_raw(&h, "\"parameters\":");
    int rc;
    J_PARAMS(rc, o, &h, "", q->n_parameters, q->parameters, "binary_data_output",
             "\"binary_data_output\":true");
    if (rc) goto fail;
    j_raw(&h, ",\"inputs\":[");
    for (size_t i = 0; i < q->n_inputs; i++) {
        const Inference__ModelInferRequest__InferInputTensor *t = q->inputs[i];
        size_t before = tail.len;
        if (q->n_raw_input_contents) {
            if (t->contents) {
                invalid(o, "inputs %.64s: contents and raw_input_contents both given", t->name);
                goto fail;
            }
            put(&tail, q->raw_input_contents[i].data, q->raw_input_contents[i].len);
        } else if (contents(o, t, &tail)) {
            goto fail;
        }
        j_raw(&h, i ? ",{\"name\":" : "{\"name\":");
        j_str(&h, t->name);
        j_raw(&h, ",\"datatype\":");
        j_str(&h, t->datatype);
        j_raw(&h, ",\"shape\":[");
        for (size_t k = 0; k < t->n_shape; k++) {
            if (k) j_raw(&h, ",");
            j_int(&h, (long long)t->shape[k]);
        }
        char size[48];
        snprintf(size, sizeof size, "\"binary_data_size\":%zu", tail.len - before);
        j_raw(&h, "],\"parameters\":");
        J_PARAMS(rc, o, &h, "inputs ", t->n_parameters, t->parameters, "binary_data_size", size);
        if (rc) goto fail;
        j_raw(&h, "}");
    }
    j_raw(&h, "]");
    if (q->n_outputs) {
        j_raw(&h, ",\"outputs\":[");
        for (size_t i = 0; i < q->n_outputs; i++) {
            const Inference__ModelInferRequest__InferRequestedOutputTensor *t = q->outputs[i];
            j_raw(&h, i ? ",{\"name\":" : "{\"name\":");
            j_str(&h, t->name);
            j_raw(&h, ",\"parameters\":");
            J_PARAMS(rc, o, &h, "outputs ", t->n_parameters, t->parameters, "binary_data",
                     "\"binary_data\":true");
            if (rc) goto fail;
            j_raw(&h, "}");
        }
        j_raw(&h, "]");
    }
    j_raw(&h, "}");
    *head_len = h.len;
    put(&h, tail.p, tail.len);
    if (h.oom || tail.oom) {
        ss_reply_fail(&o->reply, SS_E_NOMEM, "out of memory");
        goto fail;
    }
    free(tail.p);
    *len = h.len;
    return h.p ? h.p : calloc(1, 1);
fail:
    free(h.p);
    free(tail.p);
    return NULL;
}

/* ---- ModelInfer: the answer as a ModelInferResponse (on the worker) ---- */

/* The answer's tensors (oip.h) as InferOutputTensor messages and raw_output_contents. */
typedef struct {
    ss_oip_sink sink;
    wbuf outs, raw;
} pb_sink;

static void wput(void *b, const void *s, size_t n) {
    put(b, s, n);
}

static void pb_tensor(ss_oip_sink *sk, const ss_oip_tensor *t) {
    pb_sink *ps = (pb_sink *)sk;
    wbuf m = {0}, shape = {0};
    put_bytes(&m, 1, t->name, strlen(t->name));
    put_bytes(&m, 2, t->dt, strlen(t->dt));
    for (int k = 0; k < t->nd; k++)
        put_varint(&shape, t->dims[k]);
    put_bytes(&m, 3, shape.p, shape.len); /* packed */
    put_bytes(&ps->outs, 5, m.p, m.len);
    if (m.oom || shape.oom) ps->outs.oom = 1;
    free(m.p);
    free(shape.p);
    size_t n = t->f ? t->n * 4 : t->i32 ? t->n * 4 : 0;
    for (size_t k = 0; t->strs && k < t->n; k++)
        n += 4 + strlen(t->strs[k]);
    put_tag(&ps->raw, 6, 2);
    put_varint(&ps->raw, n);
    ss_oip_tensor_bytes(t, wput, &ps->raw);
}

static uint8_t *infer_response(const ss_result *r, size_t *len) {
    const ss_oip_fmt *f = r->fmt;
    if (!f) return NULL; /* the gRPC front end always sets the request's options */
    pb_sink ps = {{pb_tensor}, {0}, {0}};
    wbuf b = {0};
    char v[16];
    snprintf(v, sizeof v, "%u", r->model->version);
    put_bytes(&b, 1, r->model->name, strlen(r->model->name));
    put_bytes(&b, 2, v, strlen(v));
    if (f->id[0]) put_bytes(&b, 3, f->id, strlen(f->id));
    int rc = ss_oip_tensors(r, f, &ps.sink);
    put(&b, ps.outs.p, ps.outs.len);
    put(&b, ps.raw.p, ps.raw.len);
    int oom = rc || b.oom || ps.outs.oom || ps.raw.oom;
    free(ps.outs.p);
    free(ps.raw.p);
    if (oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

static uint8_t *oipg_error(const char *code, const char *message, size_t *len) {
    return ss_codec_oip.error(code, message, len);
}

static uint8_t *oipg_session(const ss_sess_info *s, size_t *len) {
    return ss_codec_oip.session(s, len);
}

static uint8_t *oipg_model(const spk_model *m, size_t *len) {
    return ss_codec_oip.model(m, len);
}

static uint8_t *oipg_models(spk_model *const *ms, size_t n, size_t *len) {
    return ss_codec_oip.models(ms, n, len);
}

static const ss_codec ss_codec_oipg = {
    "oip-grpc",     "application/grpc", NULL,         NULL,       NULL,
    infer_response, oipg_error,         oipg_session, oipg_model, oipg_models,
};

/* A decoder message in gRPC's words: its tensors carry no binary_data_size, their bytes are
 * raw_input_contents or the typed contents. */
static void grpc_words(char *msg, size_t cap) {
    static const char from[] = "binary_data_size", to[] = "byte size of the contents";
    char *p = strstr(msg, from);
    if (!p) return;
    char tmp[sizeof((ss_reply *)0)->msg];
    snprintf(tmp, sizeof tmp, "%.*s%s%s", (int)(p - msg), msg, to, p + sizeof from - 1);
    snprintf(msg, cap, "%s", tmp);
}

int ss_oipg_infer(ss_op *o) {
    Inference__ModelInferRequest *q = inference__model_infer_request__unpack(NULL, o->len, o->body);
    if (!q) {
        invalid(o, "the request message is not an inference.ModelInferRequest");
        return SS_OP_NOW;
    }
    size_t head = 0, len = 0;
    uint8_t *body = NULL;
    int rc = SS_OP_NOW;
    if (route(o, q->model_name, q->model_version) == 0 && (body = rest_body(o, q, &head, &len))) {
        const uint8_t *msg = o->body;
        size_t msg_len = o->len;
        o->body = body;
        o->len = len;
        o->out = &ss_codec_oipg;
        rc = ss_oip_infer(o, head); /* decodes the body before it returns */
        o->body = msg;
        o->len = msg_len;
        if (rc == SS_OP_NOW && o->reply.err) grpc_words(o->reply.msg, sizeof o->reply.msg);
    }
    free(body);
    inference__model_infer_request__free_unpacked(q, NULL);
    return rc;
}

int ss_oipg_rest_body(const uint8_t *msg, size_t len, uint8_t **body, size_t *head_len,
                      size_t *body_len, char *err, size_t errlen) {
    *body = NULL;
    Inference__ModelInferRequest *q = inference__model_infer_request__unpack(NULL, len, msg);
    if (!q) {
        snprintf(err, errlen, "the request message is not an inference.ModelInferRequest");
        return SS_E_INVALID;
    }
    ss_op o;
    memset(&o, 0, sizeof o);
    *body = rest_body(&o, q, head_len, body_len);
    inference__model_infer_request__free_unpacked(q, NULL);
    int rc = *body ? 0 : o.reply.err;
    if (rc) {
        grpc_words(o.reply.msg, sizeof o.reply.msg);
        snprintf(err, errlen, "%s", o.reply.msg);
    }
    ss_reply_clear(&o.reply);
    return rc;
}

uint8_t *ss_oipg_stream_answer(const ss_reply *r, size_t *len) {
    wbuf b = {0};
    if (r->err || r->status != 200)
        put_bytes(&b, 1, r->msg, strlen(r->msg));
    else
        put_bytes(&b, 2, r->body, r->len);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
