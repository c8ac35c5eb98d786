/* ui.h: the live spike raster page (GET / and /ui) and the Fashion-MNIST test images it
 * offers (GET /ui/fmnist/{index}).
 *
 * The page is one self-contained HTML file (server/ui/index.html: its CSS and JavaScript
 * inline, nothing loaded from elsewhere), embedded in the binary at build time. The images
 * come from the IDX files of Debian's dataset-fashion-mnist (t10k-images-idx3-ubyte and
 * t10k-labels-idx1-ubyte, gzip'd or not) in --ui-dataset-dir, read once on the first request
 * and kept (7.5 MiB) until ss_ui_release().
 *
 * Thread-safety: every function may be called from any thread; the image cache is loaded
 * under a mutex, then only read.
 */
#ifndef SS_UI_H
#define SS_UI_H

#include <stddef.h>
#include <stdint.h>

#include "ops.h"

#define SS_UI_IMAGE_SIDE 28
#define SS_UI_IMAGE_PIXELS (SS_UI_IMAGE_SIDE * SS_UI_IMAGE_SIDE)
#define SS_UI_MAX_IMAGES 100000 /* a bigger IDX header is refused as corrupt */

/* The page: 200 text/html into rep. 0, or SS_E_NOMEM with err set. */
int ss_ui_page(ss_reply *rep, char *err, size_t errlen);

/* Parse an {index} path segment: decimal digits only, at most 9 of them. 0, or SS_E_INVALID
 * with err ("index \"abc\": not a decimal number"). */
int ss_ui_index(const char *seg, uint32_t *index, char *err, size_t errlen);

/* Test image `index` of the dataset in dataset_dir: 200 JSON into rep,
 * {"index": 3, "label": 1, "label_name": "Trouser", "count": 10000, "pixels": [784 x 0..255]}
 * (pixels row by row). On failure an ss_err, err says what: SS_E_NOT_FOUND when the dataset
 * is not installed or index >= count, SS_E_INTERNAL for a corrupt file, SS_E_NOMEM. A missing
 * dataset is looked for again on the next call; a corrupt one is not. */
int ss_ui_image(ss_reply *rep, const char *dataset_dir, uint32_t index, char *err, size_t errlen);

/* The routes' operations (routes.c): the page, and test image {index}. */
int ss_ui_op_page(ss_op *o);
int ss_ui_op_image(ss_op *o);

/* Frees the image cache (at shutdown; the next ss_ui_image loads it again). */
void ss_ui_release(void);

#endif
