/* pbbatch.h: the two halves of ss_batch_from_pb (batch.h), exposed for the differential
 * fuzz harness (tests/fuzz/fuzz_batch_pb.c) and the unit tests.
 *
 * ss_batch_pb_fast() reads the common SpikeBatch (seq, steps, events, outputs; no dense
 * rows) straight from the wire into a ss_batch, without protobuf-c's reflective unpack of
 * one message per event. It is deliberately partial: every field at most once where it is
 * not repeated, no unknown fields, varints within their type, only batches that pass every
 * check. On anything else it declines and changes nothing the caller owns, and
 * ss_batch_pb_ref() (protobuf-c) decides, with its exact error messages. Whatever the fast
 * path accepts, the reference accepts with the same decoded batch, bit for bit.
 * Thread-safety: both are reentrant.
 */
#ifndef SS_PBBATCH_H
#define SS_PBBATCH_H

#include "batch.h"

enum { SS_PB_DECLINED = 1 };

/* 0: decoded into *out (free with ss_batch_free). SS_PB_DECLINED: *out is zeroed and owns
 * nothing; ask ss_batch_pb_ref(). */
int ss_batch_pb_fast(const uint8_t *buf, size_t len, const spk_model *m, const ss_limits *lim,
                     ss_batch *out);
/* The protobuf-c decoder: the whole contract of ss_batch_from_pb(). */
int ss_batch_pb_ref(const uint8_t *buf, size_t len, const spk_model *m, const ss_limits *lim,
                    ss_batch *out, char *err, size_t errlen);

#endif
