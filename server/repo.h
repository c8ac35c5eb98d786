/* repo.h: models at run time through the API (issue 16): Triton's repository routes
 * POST /v2/repository/models/{model}/load and .../unload (with --model-control explicit),
 * and the unload of a version that sessions are pinned to.
 *
 * load: (re)reads the model's files from --model-dir (registry.h: NAME.spk, NAME/N.spk):
 * new and changed files are loaded, versions whose file is gone are unloaded; a bad file is
 * refused (400 with the loader's message, naming file and field) and what was loaded keeps
 * serving. Answers {"name", "versions": ["1", ...]}.
 * unload: body optional {"parameters": {"version": "2", "drain": true}}; without version,
 * every version of the model. A version that open sessions are pinned to is refused (409)
 * unless drain is true: then those sessions are closed (their event streams end with
 * `end` {"reason": "model version unloaded"}) before the answer. A session being opened at
 * that very moment (its version looked up before the unload) is not refused: it runs on
 * the unloaded version, whose reference it holds, until it closes.
 *
 * Thread-safety: as ops.h (the registry serializes loads).
 */
#ifndef SS_REPO_H
#define SS_REPO_H

#include "ops.h"

int ss_repo_op_load(ss_op *o);
int ss_repo_op_unload(ss_op *o);

/* Take model name's version (0: every version) out of service; drain: close the sessions
 * pinned to it first. 0 (*closed: sessions closed), SS_E_NOT_FOUND or SS_E_CONFLICT (open
 * sessions, no drain), with a message in err. */
int ss_repo_unload(ss_app *a, const char *name, uint32_t version, int drain, size_t *closed,
                   char *err, size_t errlen);

#endif
