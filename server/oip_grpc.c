/* oip_grpc.c: inference.GRPCInferenceService around the REST operations (oip_grpc.h).
 *
 * Two translations and nothing else. In: a request message into what the REST route gets
 * ({model}, {v}, the infer body). Out: the REST answer's JSON into the response message by
 * a small writer of the protobuf wire format driven by the message's descriptor (pb_json);
 * it refuses a JSON key the message does not have, so the REST answer and the proto cannot
 * drift apart silently. An infer answer is translated on the worker (ss_codec_oipg's result
 * encodes the REST answer, then the message), so the front end only sends bytes.
 */
#include "oip_grpc.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_service.pb-c.h"
#include "oip.h"

/* ---- a growing buffer of wire bytes ---- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
    int oom;
} wbuf;

static void put(wbuf *b, const void *s, size_t n) {
    if (b->oom) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
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

/* A parameter's REST value, NULL with o->reply set. */
static json_t *param_json(ss_op *o, const char *where, const char *key,
                          const Inference__InferParameter *p) {
    json_t *v = NULL;
    switch (p ? p->parameter_choice_case : 0) {
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM:
        v = json_boolean(p->bool_param);
        break;
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM:
        v = json_integer(p->int64_param);
        break;
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM:
        v = json_string(p->string_param);
        if (!v) invalid(o, "%sparameters %.64s: not UTF-8", where, key);
        return v;
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_DOUBLE_PARAM:
        v = json_real(p->double_param);
        if (!v) invalid(o, "%sparameters %.64s: not a finite number", where, key);
        return v;
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM:
        if (p->uint64_param > INT64_MAX) {
            invalid(o, "%sparameters %.64s: %llu is past 2^63-1", where, key,
                    (unsigned long long)p->uint64_param);
            return NULL;
        }
        v = json_integer((json_int_t)p->uint64_param);
        break;
    default:
        invalid(o, "%sparameters %.64s: no value", where, key);
        return NULL;
    }
    if (!v) ss_reply_fail(&o->reply, SS_E_NOMEM, "out of memory");
    return v;
}

/* Add parameter key = p to obj (creating obj's "parameters" on first use). */
static int add_param(ss_op *o, json_t *obj, const char *where, const char *key,
                     const Inference__InferParameter *p) {
    json_t *v = param_json(o, where, key, p);
    if (!v) return -1;
    json_t *ps = json_object_get(obj, "parameters");
    if (!ps) {
        ps = json_object();
        if (!ps || json_object_set_new(obj, "parameters", ps)) {
            json_decref(v);
            ss_reply_fail(&o->reply, SS_E_NOMEM, "out of memory");
            return -1;
        }
    }
    if (json_object_set_new(ps, key, v)) return invalid(o, "%sparameters: a key not UTF-8", where);
    return 0;
}

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

/* The REST infer body of request q: the JSON header, then the binary tail. NULL with
 * o->reply set. */
static uint8_t *rest_body(ss_op *o, const Inference__ModelInferRequest *q, size_t *head_len,
                          size_t *len) {
    json_t *h = json_object(), *ins = json_array(), *outs = NULL;
    wbuf tail = {0};
    uint8_t *body = NULL;
    if (!h || !ins || json_object_set(h, "inputs", ins)) goto oom;
    if (q->id[0] && json_object_set_new(h, "id", json_string(q->id))) {
        invalid(o, "id: not UTF-8");
        goto fail;
    }
    for (size_t i = 0; i < q->n_parameters; i++)
        if (add_param(o, h, "", q->parameters[i]->key, q->parameters[i]->value)) goto fail;
    json_t *ps = json_object_get(h, "parameters");
    if (!ps) {
        ps = json_object();
        if (!ps || json_object_set_new(h, "parameters", ps)) goto oom;
    }
    if (json_object_set_new(ps, "binary_data_output", json_true())) goto oom; /* outputs raw */
    if (q->n_raw_input_contents && q->n_raw_input_contents != q->n_inputs) {
        invalid(o, "raw_input_contents has %zu entries for %zu inputs", q->n_raw_input_contents,
                q->n_inputs);
        goto fail;
    }
    for (size_t i = 0; i < q->n_inputs; i++) {
        const Inference__ModelInferRequest__InferInputTensor *t = q->inputs[i];
        json_t *in = json_object(), *shape = json_array();
        if (!in || json_array_append_new(ins, in)) {
            json_decref(shape);
            goto oom;
        }
        if (!shape || json_object_set_new(in, "shape", shape)) goto oom;
        json_object_set_new(in, "name", json_string(t->name));
        json_object_set_new(in, "datatype", json_string(t->datatype));
        for (size_t k = 0; k < t->n_shape; k++)
            json_array_append_new(shape, json_integer(t->shape[k]));
        for (size_t k = 0; k < t->n_parameters; k++)
            if (add_param(o, in, "inputs ", t->parameters[k]->key, t->parameters[k]->value))
                goto fail;
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
        if (!json_object_get(in, "parameters"))
            json_object_set_new(in, "parameters", json_object());
        json_t *ip = json_object_get(in, "parameters");
        if (!ip || json_object_set_new(ip, "binary_data_size",
                                       json_integer((json_int_t)(tail.len - before))))
            goto oom;
    }
    if (q->n_outputs) {
        if (!(outs = json_array()) || json_object_set_new(h, "outputs", outs)) goto oom;
        for (size_t i = 0; i < q->n_outputs; i++) {
            const Inference__ModelInferRequest__InferRequestedOutputTensor *t = q->outputs[i];
            json_t *out = json_object();
            if (!out || json_array_append_new(outs, out)) goto oom;
            json_object_set_new(out, "name", json_string(t->name));
            for (size_t k = 0; k < t->n_parameters; k++)
                if (add_param(o, out, "outputs ", t->parameters[k]->key, t->parameters[k]->value))
                    goto fail;
            json_t *op = json_object_get(out, "parameters");
            if (!op) {
                if (!(op = json_object()) || json_object_set_new(out, "parameters", op)) goto oom;
            }
            if (json_object_set_new(op, "binary_data", json_true())) goto oom;
        }
    }
    if (tail.oom) goto oom;
    char *head = json_dumps(h, JSON_COMPACT);
    if (!head) goto oom;
    *head_len = strlen(head);
    *len = *head_len + tail.len;
    body = malloc(*len ? *len : 1);
    if (body) {
        memcpy(body, head, *head_len);
        if (tail.len) memcpy(body + *head_len, tail.p, tail.len);
    }
    free(head);
    if (!body) goto oom;
    json_decref(ins);
    json_decref(h);
    free(tail.p);
    return body;
oom:
    ss_reply_fail(&o->reply, SS_E_NOMEM, "out of memory");
fail:
    json_decref(ins);
    json_decref(h);
    free(tail.p);
    return NULL;
}

/* ---- ModelInfer: the answer as a ModelInferResponse (on the worker) ---- */

static uint8_t *infer_response(const ss_result *r, size_t *len) {
    const ss_oip_fmt *f = r->fmt;
    size_t n = 0;
    uint8_t *rest = ss_codec_oip.result(r, &n);
    if (!rest) return NULL;
    size_t head = f ? f->head_len : n, off = head;
    json_error_t je;
    json_t *j = json_loadb((const char *)rest, head, 0, &je);
    json_t *outs = json_object_get(j, "outputs");
    wbuf b = {0}, raw = {0};
    char err[256];
    int rc = j ? 0 : -1;
    size_t i;
    json_t *out;
    json_array_foreach(outs, i, out) { /* each output's bytes, in order, as raw contents */
        json_int_t sz = json_integer_value(
            json_object_get(json_object_get(out, "parameters"), "binary_data_size"));
        if (sz < 0 || (size_t)sz > n - off) {
            rc = -1;
            break;
        }
        put_bytes(&raw, 6, rest + off, (size_t)sz);
        off += (size_t)sz;
        json_object_del(out, "parameters");
    }
    if (!rc) rc = pb_msg(&b, &inference__model_infer_response__descriptor, j, err, sizeof err);
    put(&b, raw.p, raw.len);
    json_decref(j);
    free(rest);
    free(raw.p);
    if (rc || b.oom || raw.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p ? b.p : calloc(1, 1);
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
    }
    free(body);
    inference__model_infer_request__free_unpacked(q, NULL);
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
