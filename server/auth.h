/* auth.h: optional API keys (SPEC section 4). With keys configured, every /v1 route needs
 * `Authorization: Bearer KEY` (401 otherwise); a session belongs to the key that opened it
 * and is invisible (404) to other keys. Keys are kept as given in memory and only their
 * 64-bit hash (the owner id) is ever written to disk.
 * Thread-safety: read-only after ss_auth_load. */
#ifndef SS_AUTH_H
#define SS_AUTH_H

#include <stddef.h>
#include <stdint.h>

typedef struct ss_auth ss_auth;

/* spec: "" (no keys: *out = NULL), "k1,k2,...", or "@FILE" with one key per line (blank
 * lines and lines starting with # ignored). 0 or -1 with err. */
int ss_auth_load(const char *spec, ss_auth **out, char *err, size_t errlen);
void ss_auth_free(ss_auth *a);
/* Check an Authorization header value. 0 with *owner set; -1 missing or not Bearer;
 * -2 unknown key. With a == NULL (no keys) always 0 and *owner = 0. */
int ss_auth_check(const ss_auth *a, const char *authorization, uint64_t *owner);
size_t ss_auth_count(const ss_auth *a);
/* The key whose owner id is owner, or NULL (none, or a == NULL): a replica that moves a
 * session to another one (cluster.c) presents its owner's key, so the session keeps its
 * owner there. The string lives as long as a. */
const char *ss_auth_key(const ss_auth *a, uint64_t owner);

#endif
