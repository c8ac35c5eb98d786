/* scwire.h: internal to the C client: its request and answer bodies in JSON and protobuf
 * (proto/api.proto). Decoders return 0, -1 when the bytes are not the expected message, -2
 * when out of memory, and scw_result_json() -3 for an {"error": ...} object (its code and
 * message are copied out). Encoders return malloc'd bytes (JSON NUL-terminated) or NULL.
 * Thread-safety: reentrant. */
#ifndef SCWIRE_H
#define SCWIRE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "spikeclient.h"

uint64_t scw_u64(json_t *o, const char *k, int *has); /* a number field, 0 when absent */

int scw_models(int pb, const char *buf, size_t len, sc_model **out, size_t *n);
int scw_model(int pb, const char *buf, size_t len, sc_model *out);
int scw_session(int pb, const char *buf, size_t len, sc_session *out);
int scw_result_json(const char *json, size_t len, sc_result *r, char *code, size_t codelen,
                    char *msg, size_t msglen);
int scw_result_pb(const uint8_t *buf, size_t len, sc_result *r);

char *scw_batch_json(const sc_batch *b);
uint8_t *scw_batch_pb(const sc_batch *b, size_t *len);
/* version 0: the latest */
void *scw_open(int pb, uint32_t idle_timeout_s, uint32_t version, size_t *len);
void *scw_classify(int pb, const float *x, uint32_t n, uint64_t seed, size_t *len);

#endif
