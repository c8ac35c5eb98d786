/* model.h: a trained SRC network, loaded once, validated, then immutable.
 *
 * A model file is the protobuf message spikeserve.Model (proto/model.proto). The loader
 * checks every field (sizes against each other, finite numbers, the limits below) and
 * refuses a bad file with a message naming the field and the numbers, e.g.
 *   "layers[1].weights: 78400 values, expected 25600 (256 x 100)".
 * Truncated or corrupt bytes are refused, never crash.
 *
 * Thread-safety: a loaded spk_model is read-only and may be shared by any number of
 * threads without locks. Ownership: the caller owns the model and frees it with
 * spk_model_free() after every state made from it is gone.
 */
#ifndef SPK_MODEL_H
#define SPK_MODEL_H

#include <stddef.h>
#include <stdint.h>

/* Limits the loader enforces (a model past them is refused). */
#define SPK_MAX_LAYERS 16
#define SPK_MAX_NEURONS 65536      /* per layer, and readout outputs */
#define SPK_MAX_INPUTS (1u << 20)  /* model input size */
#define SPK_MAX_PARAMS (64u << 20) /* total floats of weights */
#define SPK_MAX_NAME 64
#define SPK_MAX_LABEL 128
#define SPK_MAX_FILE (512u << 20)
#define SPK_MAX_VALUE 1e6f       /* |every float of a model| and |input values| */
#define SPK_MAX_DESCRIPTION 4096 /* bytes */
#define SPK_MAX_ENC_STEPS 100000 /* encoding.steps and encoding.warmup_steps each */

/* What the loader enforces, field by field (messages name the field, e.g. "layers[0].rho"):
 *   name 1..SPK_MAX_NAME chars of [A-Za-z0-9._-]; version >= 1; n_in in [1, SPK_MAX_INPUTS];
 *   1..SPK_MAX_LAYERS layers; layers[0].n_in == n_in, layers[k].n_in == layers[k-1].n;
 *   n in [1, SPK_MAX_NEURONS]; weights n x n_in values; b_h n values; init_i/init_h/init_hs
 *   0 or n values; alpha in [0, 1], rho in (0, SPK_MAX_VALUE], z_hyp and z_dep in [0, 1],
 *   r, r_s, theta finite; readout (optional): n_in == last layer's n, n in
 *   [1, SPK_MAX_NEURONS], weights n x n_in, bias n, init_o 0 or n, alpha in [0, 1];
 *   every float finite with |v| <= SPK_MAX_VALUE (so no sum of a run can overflow);
 *   sum of all weights <= SPK_MAX_PARAMS; labels 0 or spk_model_n_out() of them, each
 *   <= SPK_MAX_LABEL bytes of valid UTF-8; description <= SPK_MAX_DESCRIPTION bytes of UTF-8;
 *   encoding.kind NONE, RATE or LATENCY, steps >= 1 for RATE and LATENCY, steps and
 *   warmup_steps <= SPK_MAX_ENC_STEPS, gain in [0, SPK_MAX_VALUE], threshold finite.
 *   int8 layers (and readout): weights_q8 instead of weights (never both), n x n_in bytes,
 *   each in [-127, 127]; weight_scales 1 (per layer) or n (per output neuron) values, each
 *   finite and in (0, SPK_MAX_VALUE / 127] (so |W| <= SPK_MAX_VALUE); weight_scales only with
 *   weights_q8. tanh TANH_EXACT or TANH_FLOAT32.
 *
 * checksum: FNV-1a 64 (offset 0xcbf29ce484222325, prime 0x100000001b3) over this byte
 * sequence, every u32 and every float (its IEEE-754 binary32 bits as a u32) little-endian:
 *   u32 n_in, u32 n_layers, then per layer: u32 n_in, u32 n, weights as in the file
 *   (W row-major n x n_in; for an int8 layer instead: its n x n_in int8 bytes as they are,
 *   one byte each, then u32 n_scales and the scales), b_h[n], alpha, rho, r, r_s, z_hyp, z_dep,
 * theta, init_i[n], init_h[n], init_hs[n] (zeros when absent); then u32 has_readout (0 or 1) and,
 * with a readout: u32 n_in, u32 n, weights (n x n_in, or int8 bytes and scales as for a layer),
 *   bias[n], alpha, init_o[n] (zeros when absent); then, only for a TANH_FLOAT32 model,
 *   u32 1 (so a float32 model's checksum is what it was before int8 models existed). Name,
 *   version, labels, description and encoding are not part of it.
 */

/* Error codes (functions return 0 or one of these, and write a message into err). */
enum {
    SPK_OK = 0,
    SPK_EINVAL = -1, /* bad argument or bad input (message says which) */
    SPK_ENOMEM = -2,
    SPK_EIO = -3,     /* file could not be read */
    SPK_EFORMAT = -4, /* bytes are not a valid model / snapshot */
    SPK_EMODEL = -5,  /* snapshot belongs to another model */
    SPK_ESPACE = -6,  /* an output buffer is too small */
};

/* Write a printf-style message into err (when err and errlen are set) and return rc: how every
 * engine function reports an error. */
int spk_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

typedef enum { SPK_ENC_NONE = 0, SPK_ENC_RATE = 1, SPK_ENC_LATENCY = 2 } spk_encoding_kind;

typedef struct {
    spk_encoding_kind kind;
    uint32_t steps;        /* steps the input is presented */
    uint32_t warmup_steps; /* silent steps before it */
    float gain;            /* RATE: p_j = min(1, gain * x_j) per step */
    float threshold;       /* LATENCY: x_j <= threshold never fires */
} spk_encoding;

/* The tanh of the neuron update (proto Model.tanh). */
typedef enum { SPK_TANH_EXACT = 0, SPK_TANH_FLOAT32 = 1 } spk_tanh_mode;

/* One SRC layer (SPEC.md section 1). A layer's weights are float32 (wt) or int8 (wq and
 * wscale: W[k][j] = wq[j * n + k] * wscale[k]); the other pointer is NULL. */
typedef struct {
    uint32_t n_in, n;
    float alpha, rho, r, r_s, z_hyp, z_dep, theta;
    spk_tanh_mode tanh;  /* the model's */
    const float *wt;     /* n_in x n: row j holds the weights out of input j (W transposed),
                            so an input event touches one contiguous row */
    const int8_t *wq;    /* int8 layers: n_in x n, rows as wt; NULL for float32 layers */
    const float *wscale; /* int8 layers: n scales, one per neuron (a per-layer scale repeated) */
    /* int8 layer 0 only, for the dense group step (spk_step_many): the same weights by input
     * quads, wq4[(q * n + k) * 4 + i] = W[k][4 q + i] (0 past n_in); NULL otherwise */
    const int8_t *wq4;
    const float *b_h;           /* n */
    const float *i0, *h0, *hs0; /* n each: initial state (zeros when the file has none) */
} spk_layer;

typedef struct {
    uint32_t n_in, n;
    float alpha;
    const float *wt;     /* n_in x n (W_o transposed); NULL when int8 */
    const int8_t *wq;    /* int8 readout: n_in x n, as wt; else NULL */
    const float *wscale; /* int8 readout: n scales */
    const float *b;      /* n */
    const float *o0;     /* n */
} spk_readout;

typedef struct spk_model {
    char name[SPK_MAX_NAME + 1];
    char *description;
    uint32_t version;
    uint32_t n_in;
    uint32_t n_layers;
    spk_layer layers[SPK_MAX_LAYERS];
    int has_readout;
    spk_readout readout; /* valid when has_readout */
    uint32_t n_labels;   /* 0, or readout.n */
    char **labels;
    spk_encoding encoding;
    uint64_t checksum;    /* FNV-1a 64 over every parameter; snapshots carry it */
    spk_tanh_mode tanh;   /* the update's tanh */
    uint32_t int8_layers; /* SRC layers (and the readout) stored as int8 */
    /* The model's numerics, for its metadata (GET /v1/models/{m}): "float32" (float32
     * weights, exact tanh: SPEC section 1 as is), else e.g. "int8 weights (scale per neuron),
     * float32 tanh" or "int8 weights (scale per layer), exact tanh" (or "mixed float32/int8
     * weights, ..."). */
    char numerics[96];
    size_t state_floats; /* floats in one session state (sum of 3n per layer + readout n) */
    uint32_t max_n;      /* largest layer width (scratch sizing) */
    void *priv;          /* the loader's storage: do not touch */
} spk_model;

/* Load from a file / a buffer. On success *out owns a new model; on failure *out is NULL
 * and err holds the reason. */
int spk_model_load_file(const char *path, spk_model **out, char *err, size_t errlen);
int spk_model_load_bytes(const uint8_t *buf, size_t len, spk_model **out, char *err, size_t errlen);
void spk_model_free(spk_model *m); /* NULL is a no-op */

/* Output size of the network: readout.n if it has a readout, else the last layer's n. */
uint32_t spk_model_n_out(const spk_model *m);
/* Index of the largest value of o[0..n) (first on ties); used for predictions. */
uint32_t spk_argmax(const float *o, uint32_t n);

#endif
