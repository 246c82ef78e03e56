/* patch.h — the four PATCH flavours of the Kubernetes API, on jansson values.
 *
 *  - JSON merge patch (RFC 7386): application/merge-patch+json
 *  - JSON patch (RFC 6902, all six ops): application/json-patch+json
 *  - strategic merge patch (SMP): application/strategic-merge-patch+json,
 *    with per-field merge keys and strategies supplied by a schema
 *    (struct kc_patch_schema below) and the directives $patch
 *    (replace|delete|merge), $retainKeys, $setElementOrder/<field>,
 *    $deleteFromPrimitiveList/<field>, and null = delete.
 *  - server-side apply is built on these by the API server (apply.c) and is
 *    not part of this module.
 *
 * All functions take the original document and the patch, never modify
 * them, and on success return a new reference in *out (sharing nothing with
 * either input). On failure they return a negative KC_E* code, leave *out
 * NULL and fill err with the HTTP status (err->code), the StatusReason
 * (err->reason) and a message naming the failing op / path / field. The
 * codes are those upstream's API server answers (handlers/patch.go):
 *
 *   400 "BadRequest"  KC_EINVAL    the patch document is malformed
 *   413 "RequestEntityTooLarge" KC_ETOOLARGE  JSON patch over 10000 ops
 *   422 "Invalid"     KC_EINVALID  a well-formed patch that cannot apply
 *   500 ""            KC_EINVAL    SMP errors upstream returns unwrapped
 *                                  (missing merge key, unknown $patch, ...)
 *
 * Upstream's Status.message for the 422 of a JSON patch is the generic
 * "the server rejected our request due to an error in our request" (the
 * detail is dropped); err->message carries the detail, the HTTP layer may
 * choose either.
 *
 * The schema is reached only through the callbacks below, so this module
 * does not depend on how kubec describes its kinds. A NULL schema (or a
 * NULL type pointer) means "nothing known": lists are replaced wholesale,
 * exactly as upstream does for unknown types.
 */
#ifndef KC_PATCH_PATCH_H
#define KC_PATCH_PATCH_H

#include <jansson.h>

#include "util/err.h"

enum kc_patch_strategy {
    KC_PS_REPLACE = 0,       /* default: lists replaced, as JSON merge patch does */
    KC_PS_MERGE = 1,         /* x-kubernetes-patch-strategy: merge */
    KC_PS_RETAIN_KEYS = 2,   /* x-kubernetes-patch-strategy: retainKeys (may be or'ed with MERGE) */
    /* Added: x-kubernetes-patch-strategy: replace on an object-valued field
     * (e.g. policy/v1 PodDisruptionBudgetSpec.selector): a patch object
     * replaces the field whole instead of merging into it. Without it,
     * object fields merge, as upstream's default. */
    KC_PS_REPLACE_MAP = 4,
};

/* Schema access for SMP. `type` values are opaque pointers owned by the schema. */
struct kc_patch_schema {
    void *ctx;
    /* The type of field `field` inside an object of type `type` (for a
     * list field: the element type; for a map field: the value type), or
     * NULL if unknown. */
    const void *(*field_type)(void *ctx, const void *type, const char *field);
    /* Strategy flags (enum kc_patch_strategy) of `field` in `type`. */
    unsigned (*field_strategy)(void *ctx, const void *type, const char *field);
    /* The merge key of list field `field` in `type`, or NULL if none
     * (a list of primitives with strategy merge has no key: it is merged as a set). */
    const char *(*merge_key)(void *ctx, const void *type, const char *field);
};

/* RFC 7386. A patch that is null or a scalar → 400 "BadRequest" ("Invalid
 * JSON Patch", upstream's ErrBadJSONPatch); an array patch becomes the
 * result (the caller's type check then rejects it, as upstream's decode does). */
int kc_merge_patch(json_t *orig, json_t *patch, json_t **out, struct kc_err *err);
/* The same result, but only the objects on the paths the patch touches are copied: every other subtree
 * of *out is orig's own (shared references). For callers that change neither afterwards (the API
 * server's status patches, whose result is only read, serialised and shared with the cache). */
int kc_merge_patch_shared(json_t *orig, json_t *patch, json_t **out, struct kc_err *err);

/* RFC 6902 with evanphx/json-patch v4 semantics (negative indices count
 * from the end; replace of a missing member adds it; see json_patch.c).
 *  - patch not an array of objects (e.g. the merge-style object the JS
 *    client sends by default) → 400 "BadRequest" (upstream DecodePatch error);
 *    a null patch is an empty one;
 *  - more than 10000 operations → 413 "RequestEntityTooLarge";
 *  - any operation that fails — "test" not equal, missing path, index out
 *    of range, unknown op, "copy" adding over 3 MiB in total → 422
 *    "Invalid", message like "testing value /metadata/resourceVersion
 *    failed: test failed" or "error in remove for path: '/spec/x': ...".
 * A failing op aborts the whole patch. */
int kc_json_patch(json_t *orig, json_t *patch, json_t **out, struct kc_err *err);

/* Strategic merge patch (semantics in smp.c). patch must be an object (or
 * null: no change), else 400 "BadRequest". Malformed $retainKeys,
 * $setElementOrder/…, $deleteFromPrimitiveList/… → 400 "BadRequest"; lists
 * of lists → 422 "Invalid"; other failures → code 500, reason "" (upstream
 * leaves them unwrapped, e.g. "map: {...} does not contain declared merge
 * key: name"; "$patch": "merge" is refused the same way, as upstream does).
 * root_type is the schema type of the whole object. */
int kc_strategic_merge_patch(json_t *orig, json_t *patch, const struct kc_patch_schema *schema,
                             const void *root_type, json_t **out, struct kc_err *err);

/* Computes a JSON merge patch that turns `from` into `to` (used by tests and
 * by server-side apply to compute field changes). New reference in *out. */
int kc_merge_patch_diff(json_t *from, json_t *to, json_t **out);

#endif
