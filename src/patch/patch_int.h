/* patch_int.h — helpers shared by the PATCH implementations (not public).
 *
 * Error helpers map each failure class onto the HTTP status upstream's API
 * server answers for it (see patch.h); the cleaners turn patch values into
 * result values (deep copies without directive keys), so a result never
 * shares structure with the caller's patch.
 */
#ifndef KC_PATCH_PATCH_INT_H
#define KC_PATCH_PATCH_INT_H

#include <stdbool.h>

#include <jansson.h>

#include "util/err.h"

/* Deeper documents are refused; jansson's parser already stops at 2048. */
#define KC_PATCH_MAX_DEPTH 1000

#define KC_DIR_PATCH "$patch"
#define KC_DIR_RETAIN_KEYS "$retainKeys"
#define KC_DIR_SET_ORDER "$setElementOrder"
#define KC_DIR_DELETE_PRIM "$deleteFromPrimitiveList"

/* 400 BadRequest: the patch document itself is malformed. */
int kc_patch_bad_request(struct kc_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* 422 Invalid: a well-formed patch that cannot be applied. */
int kc_patch_unprocessable(struct kc_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* 500 with an empty reason: upstream returns these errors unwrapped, which
 * its API server turns into a Status with code 500 and reason "". */
int kc_patch_internal(struct kc_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int kc_patch_nomem(struct kc_err *err);

/* True for the SMP directive keys ($patch, $retainKeys,
 * $setElementOrder/..., $deleteFromPrimitiveList/...). */
bool kc_patch_is_directive_key(const char *key);

/* Deep copy of a patch value for insertion into a result: object keys
 * holding null and directive keys are dropped at every level. With
 * drop_marked, objects carrying "$patch" are dropped too (as array elements
 * they vanish; at the top *keep is set false). Returns NULL with *keep true
 * only on allocation failure. */
json_t *kc_patch_clean(json_t *v, bool drop_marked, bool *keep);

/* A short compact JSON rendering of v for messages, in buf. */
const char *kc_patch_show(json_t *v, char *buf, size_t len);

#endif
