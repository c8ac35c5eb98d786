/* oipscan.h: the two halves of ss_oip_decode (oip.h), exposed for the differential fuzz
 * harness (tests/fuzz/fuzz_oip.c) and the unit tests, as jsonscan.h does for v1 batches.
 *
 * ss_oip_decode_fast() decodes the common, well-formed OIP infer header in one pass, with
 * no tree: the keys id, parameters (sequence_id, sequence_start, sequence_end,
 * binary_data_output, steps), inputs (name, datatype, shape, parameters.binary_data_size or
 * data) and outputs (name, parameters binary_data and classification), each once, in any
 * order, with plain-ASCII strings without escapes and numbers it converts exactly as
 * jansson does (jsonscan.h). It accepts only requests that pass every check of the
 * reference. On anything else, valid or not (an unknown key, an escape, a bad shape, a
 * limit), it declines, and the caller owns nothing new; ss_oip_decode_ref() (jansson) then
 * decides, with its exact error messages. Whatever the fast path accepts, the reference
 * accepts with the same batch, options and sequence parameters.
 * Thread-safety: both are reentrant.
 */
#ifndef SS_OIPSCAN_H
#define SS_OIPSCAN_H

#include "oip.h"

enum { SS_OIP_DECLINED = 1 };

/* The tensor datatypes of the protocol, shared by both decoders: kind SS_OIP_K_NO are known
 * but refused. */
enum { SS_OIP_K_F, SS_OIP_K_I, SS_OIP_K_U, SS_OIP_K_B, SS_OIP_K_NO };
typedef struct {
    const char *name;
    int size, kind;
} ss_oip_dtype;
extern const ss_oip_dtype ss_oip_dtypes[];
extern const size_t ss_oip_n_dtypes;
/* The output tensors' names, by SS_OIP_SPIKES.. (oip.h). */
extern const char *const ss_oip_out_names[4];

/* 0: decoded (out freed with ss_batch_free). SS_OIP_DECLINED: out, fmt and seq are zeroed
 * (fmt->head set) and own nothing; ask ss_oip_decode_ref(). */
int ss_oip_decode_fast(const uint8_t *head, size_t head_len, const uint8_t *bin, size_t bin_len,
                       const spk_model *m, const ss_limits *lim, ss_batch *out, ss_oip_fmt *fmt,
                       ss_oip_seq *seq);
/* The jansson decoder: the whole contract of ss_oip_decode(). */
int ss_oip_decode_ref(const uint8_t *head, size_t head_len, const uint8_t *bin, size_t bin_len,
                      const spk_model *m, const ss_limits *lim, ss_batch *out, ss_oip_fmt *fmt,
                      ss_oip_seq *seq, char *err, size_t errlen);

#endif
