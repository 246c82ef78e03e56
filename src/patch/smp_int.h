/* smp_int.h — internals of the strategic merge patch (smp.c, smp_list.c). */
#ifndef KC_PATCH_SMP_INT_H
#define KC_PATCH_SMP_INT_H

#include <stdbool.h>

#include "patch/patch.h"
#include "patch/patch_int.h"

struct kc_smp {
    const struct kc_patch_schema *schema; /* may be NULL */
    struct kc_err *err;
    int depth;
};

/* Merges object patch into orig (reference stolen; NULL or a non-object
 * counts as {}), result in *out (new reference). */
int kc_smp_map(struct kc_smp *m, json_t *orig, json_t *patch, const void *type, json_t **out);

/* Upstream merges lists in Go slices that share storage with the server
 * list, and $setElementOrder then orders by that storage as it was left:
 * deletions shift later items left in place and appends fill the freed
 * slots until the slice is reallocated. This models that view (assuming a
 * capacity equal to the length), so orders come out as upstream's. */
struct kc_smp_alias {
    json_t *view;  /* same length as the server list; owned */
    size_t len;    /* the slice's length within view */
    bool frozen;   /* reallocated: no longer shared */
};

/* Merges list pl into list ol (both borrowed) for a field with merge
 * strategy (or a $deleteFromPrimitiveList list when is_del). alias may be
 * NULL; if not, alias->view is set up from ol and updated. */
int kc_smp_list(struct kc_smp *m, json_t *ol, json_t *pl, const void *type, const char *key, bool is_del,
                const char *field, struct kc_smp_alias *alias, json_t **out);

int kc_smp_elem_kind(struct kc_smp *m, json_t *a, json_t *b, int *out);
bool kc_smp_kind_is_object(int kind);
int kc_smp_no_merge_key(struct kc_smp *m, json_t *item, const char *key);
int kc_smp_partition(struct kc_smp *m, json_t *list, json_t *by, const char *key, json_t **in, json_t **out);
int kc_smp_normalize(struct kc_smp *m, json_t *patch_items, json_t *server_only, json_t *patch_order,
                     json_t *server_order, const char *key, json_t **out);

#endif
