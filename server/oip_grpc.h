/* oip_grpc.h: the Open Inference Protocol over gRPC: inference.GRPCInferenceService
 * (proto/grpc_service.proto, SPEC.md section 5) as operations (ops.h) that grpc.c's method
 * table calls, the request message in o->body, the answer message in o->reply.
 *
 * Each one is a translation around the REST operation of oip.h, so that OIP's rules live
 * once: a request message becomes the REST request (the model and version; for ModelInfer
 * the JSON header with every input as a binary tensor, raw_input_contents or the typed
 * contents as little-endian bytes, and every output asked for as binary), the REST
 * operation runs, and its JSON answer becomes the response message, field by field through
 * the message's protobuf-c descriptor (the JSON keys are the proto field names); an infer
 * answer's output tensors (oip.h's ss_oip_tensors) become InferOutputTensors and
 * raw_output_contents. Errors stay errors: grpc.c sends their status (err.c) and message.
 *
 * Differences from REST, as Triton's gRPC server does: ServerReady and ModelReady answer
 * ready = false (status OK) where REST answers 503 or 404; outputs are always raw.
 *
 * Thread-safety: reentrant (the operations of oip.h).
 */
#ifndef SS_OIP_GRPC_H
#define SS_OIP_GRPC_H

#include <stddef.h>
#include <stdint.h>

#include "ops.h"

int ss_oipg_live(ss_op *o);
int ss_oipg_ready(ss_op *o);
int ss_oipg_model_ready(ss_op *o);
int ss_oipg_server(ss_op *o);
int ss_oipg_model(ss_op *o);
int ss_oipg_config(ss_op *o);
int ss_oipg_stats(ss_op *o);
int ss_oipg_index(ss_op *o);
/* ModelInfer: SS_OP_NOW with o->reply, or SS_OP_QUEUED (o->done gets the job, its reply's
 * body a ModelInferResponse). One ModelInferRequest of ModelStreamInfer runs the same. */
int ss_oipg_infer(ss_op *o);

/* The translation in of ModelInfer alone (the fuzz harness): the REST infer body of the
 * ModelInferRequest msg[0..len), *body malloc'd with *head_len bytes of JSON header, then
 * the binary tail, *body_len in all. 0, or an ss_err (SS_E_INVALID, SS_E_NOMEM) with a
 * message in err (*body NULL). */
int ss_oipg_rest_body(const uint8_t *msg, size_t len, uint8_t **body, size_t *head_len,
                      size_t *body_len, char *err, size_t errlen);

/* One answer of ModelStreamInfer from an infer reply: a ModelStreamInferResponse holding the
 * ModelInferResponse, or the error's message. malloc'd (*len set), NULL out of memory. */
uint8_t *ss_oipg_stream_answer(const ss_reply *r, size_t *len);

#endif
