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
 * them, and on success return a new reference in *out. On failure they
 * return a negative KC_E* code with a message in err (reason "BadRequest"
 * for malformed patches, "Invalid" for a failed JSON-patch "test" op or
 * path errors, as upstream answers 422 for those — see the .c file).
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

int kc_merge_patch(json_t *orig, json_t *patch, json_t **out, struct kc_err *err);
int kc_json_patch(json_t *orig, json_t *patch, json_t **out, struct kc_err *err);
int kc_strategic_merge_patch(json_t *orig, json_t *patch, const struct kc_patch_schema *schema,
                             const void *root_type, json_t **out, struct kc_err *err);

/* Computes a JSON merge patch that turns `from` into `to` (used by tests and
 * by server-side apply to compute field changes). New reference in *out. */
int kc_merge_patch_diff(json_t *from, json_t *to, json_t **out);

#endif
