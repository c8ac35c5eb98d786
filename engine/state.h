/* state.h: the recurrent state of one session of a model.
 *
 * A state is one allocation sized from its model (i, h, h_s per layer, the readout o,
 * and the time t), initialised from the model's initial state. Nothing is allocated while
 * stepping. A state may be used by one thread at a time (the worker that owns it); the
 * model it points to must outlive it.
 *
 * Snapshots are protobuf spikeserve.StateSnapshot bytes; they carry the model's name,
 * version and weight checksum, and spk_state_restore() refuses a snapshot of another
 * model (SPK_EMODEL) or bad bytes (SPK_EFORMAT), leaving the state unchanged.
 */
#ifndef SPK_STATE_H
#define SPK_STATE_H

#include "model.h"

typedef struct spk_state spk_state;

spk_state *spk_state_create(const spk_model *m); /* NULL when out of memory */
void spk_state_free(spk_state *s);                /* NULL is a no-op */
void spk_state_reset(spk_state *s);               /* back to the model's initial state, t = 0 */
spk_state *spk_state_clone(const spk_state *s);
void spk_state_copy(spk_state *dst, const spk_state *src); /* same model */
size_t spk_state_bytes(const spk_model *m);       /* size of the one allocation */

const spk_model *spk_state_model(const spk_state *s);
uint64_t spk_state_t(const spk_state *s);
/* Views of the state (n floats of layer l; readout: readout.n floats, NULL without one).
 * Writable views are for the engine and for tests. */
float *spk_state_i(spk_state *s, uint32_t l);
float *spk_state_h(spk_state *s, uint32_t l);
float *spk_state_hs(spk_state *s, uint32_t l);
float *spk_state_o(spk_state *s);
void spk_state_set_t(spk_state *s, uint64_t t);

/* Snapshot: *buf is malloc'd and owned by the caller. */
int spk_state_snapshot(const spk_state *s, uint8_t **buf, size_t *len, char *err,
                       size_t errlen);
int spk_state_restore(spk_state *s, const uint8_t *buf, size_t len, char *err, size_t errlen);

#endif
