/* jsonscan.h: the two halves of ss_batch_from_json (batch.h), exposed for the differential
 * fuzz harness (tests/fuzz/fuzz_batch_json.c) and the unit tests.
 *
 * ss_batch_json_fast() decodes the common, well-formed spike batch in one pass straight into
 * a ss_batch, with no tree and one allocation per array. It is deliberately partial: it
 * accepts only a strict subset of JSON (plain-ASCII strings without escapes, numbers it can
 * convert exactly as strtoll/strtod do, each key once) and only batches that pass every
 * check. On anything else, valid or not, it declines and changes nothing the caller owns;
 * ss_batch_json_ref() (jansson) then decides, with its exact error messages. Whatever the
 * fast path accepts, the reference accepts with the same decoded batch, bit for bit.
 * Thread-safety: both are reentrant.
 */
#ifndef SS_JSONSCAN_H
#define SS_JSONSCAN_H

#include "batch.h"

enum { SS_JSON_DECLINED = 1 };

/* 0: decoded into *out (free with ss_batch_free). SS_JSON_DECLINED: *out is zeroed and owns
 * nothing; ask ss_batch_json_ref(). */
int ss_batch_json_fast(const char *buf, size_t len, const spk_model *m, const ss_limits *lim,
                       ss_batch *out);
/* The jansson decoder: the whole contract of ss_batch_from_json(). */
int ss_batch_json_ref(const char *buf, size_t len, const spk_model *m, const ss_limits *lim,
                      ss_batch *out, char *err, size_t errlen);

/* The scanner's pieces, for other one-pass decoders (oipscan.c). A cursor over p..end;
 * each reads one token after optional whitespace, advances past it and returns non-zero, or
 * returns 0 (the cursor then points anywhere before the token's end). */
typedef struct {
    const char *p, *end;
} ss_jscan;
enum { SS_JNUM_NONE, SS_JNUM_INT, SS_JNUM_REAL };
void ss_jscan_ws(ss_jscan *s);                                   /* skips whitespace */
int ss_jscan_eat(ss_jscan *s, char c);                           /* the character c */
int ss_jscan_string(ss_jscan *s, const char **str, size_t *len); /* printable ASCII, no escapes */
/* A number converted exactly as jansson does (strtoll, or strtod): SS_JNUM_INT with *iv (and
 * *dv = its double) or SS_JNUM_REAL with *dv; SS_JNUM_NONE when it is not one this scanner
 * converts exactly (then decline). */
int ss_jscan_number(ss_jscan *s, int64_t *iv, double *dv);

#endif
