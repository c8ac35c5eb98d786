/* store.h: session snapshots (spikeserve.SessionSnapshot, proto/api.proto) for
 * GET/PUT /v1/sessions/{id}/state and the state directory (one file per session,
 * "<id>.session", written atomically). The engine state inside is spk_state_snapshot()'s
 * StateSnapshot. Functions that read a live session's state must run on its worker. */
#ifndef SS_STORE_H
#define SS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "session.h"

struct ss_reg;

typedef struct {
    char id[SS_ID_MAX + 1]; /* may be empty (PUT names the id in the path) */
    const spk_model *model; /* mv->model */
    uint32_t model_idx;     /* mv->slot */
    struct ss_mver *mv;     /* the snapshot's model version: a reference (registry.h) */
    int has_idle;
    uint32_t idle_timeout_s;
    uint64_t last_seq;
    uint8_t *last_pb; /* stored answer, or NULL */
    size_t last_pb_len;
    unsigned last_outputs; /* output mask of that answer (0: unknown) */
    int64_t created_ms;    /* 0: unknown */
    uint8_t *state;        /* StateSnapshot bytes */
    uint64_t owner;        /* API key hash from a --state-dir file (0: none) */
    size_t state_len;
} ss_snap;

/* Encode s (worker-only); with_owner adds its API key hash (state files only). *buf is
 * malloc'd. 0 or -1. */
int ss_store_encode(ss_sess *s, int with_owner, uint8_t **buf, size_t *len, char *err,
                    size_t errlen);
/* Decode and check against the loaded models: the snapshot's model at its model_version
 * (a snapshot without a version: the latest). 0, SS_E_INVALID (bad bytes) or SS_E_NOT_FOUND
 * (that model or version is not loaded). */
int ss_store_decode(const uint8_t *buf, size_t len, struct ss_reg *reg, ss_snap *out, char *err,
                    size_t errlen);
void ss_store_snap_free(ss_snap *s); /* frees the arrays and the reference, not s */
/* Put a snapshot into a session of the same model (worker-only, or before the session is
 * published): engine state, t, last_seq, stored answer, idle timeout, creation time.
 * 0, or -1 leaving the session unchanged. */
int ss_store_apply(ss_sess *s, const ss_snap *snap, char *err, size_t errlen);
/* State directory. save is worker-only. */
int ss_store_save(const char *dir, ss_sess *s, char *err, size_t errlen);
void ss_store_remove(const char *dir, const char *id);
/* Call fn for every "*.session" file of dir with its decoded snapshot (fn takes nothing
 * over; the snapshot is freed after). Files that fail to decode are reported through
 * bad(path, message). Returns the number of files loaded, or -1 when dir is unreadable. */
int ss_store_load_dir(const char *dir, struct ss_reg *reg,
                      void (*fn)(const ss_snap *snap, void *arg),
                      void (*bad)(const char *path, const char *msg, void *arg), void *arg,
                      char *err, size_t errlen);

#endif
