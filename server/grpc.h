/* grpc.h: the gRPC front end (SPEC.md section 5): the service spikeserve.v1.Spikeserve
 * (proto/service.proto) and grpc.health.v1.Health over the HTTP/2 transport (h2.h), on its
 * own port (--grpc-port). It is an adapter over the same operations as HTTP (ops.h): a
 * method is a row of a table (path, label, operation, the request field that names the
 * model or the session), a request message is the operation's body in the protobuf codec,
 * and an answer's error becomes grpc-status (err.c's mapping) with the same message.
 *
 * StreamSteps (one bidirectional call per session) answers its batches in the order they
 * came, each as soon as it and those before it have run; at most SS_GRPC_WINDOW batches of a
 * call are in flight, past that the call's further messages wait (HTTP/2 flow control then
 * holds the client). Calls past their grpc-timeout are ended by the transport; their jobs
 * that have not started are dropped.
 *
 * Thread-safety: the callbacks run on the transport's loop thread, answers on the workers'.
 */
#ifndef SS_GRPC_H
#define SS_GRPC_H

#include <stddef.h>
#include <stdint.h>

struct ss_app;

#define SS_GRPC_WINDOW 64

/* Start the gRPC listener when cfg.grpc_port is not "0" (a->grpc_port gets the bound
 * port). 0 or -1 with err. */
int ss_grpc_start(struct ss_app *a, char *err, size_t errlen);
/* Shutdown steps (main.c's order): GOAWAY and no new calls; wait for calls in flight. */
void ss_grpc_stop_accepting(struct ss_app *a);
void ss_grpc_drain(struct ss_app *a, uint32_t timeout_ms);
void ss_grpc_free(struct ss_app *a);

/* The method labels for /metrics (their count in *n). */
const char *const *ss_grpc_labels(size_t *n);

#endif
