/* smp_list.c — strategic merge patch: merging lists and ordering them.
 *
 * Upstream semantics (apimachinery strategicpatch, mergeSlice and friends):
 *   - lists of primitives with strategy merge are unioned (duplicates
 *     dropped); $deleteFromPrimitiveList/<f> removes the listed values;
 *   - lists of objects with a merge key: {"$patch":"delete", key: v} removes
 *     every item with that key value, {"$patch":"replace"} makes the list
 *     exactly the other patch items, items with a known key are merged
 *     recursively, new ones added;
 *   - order: patch items keep the patch's order, items only on the server
 *     keep the server's order, and the two are interleaved by the server
 *     order, a patch item the server does not know going first (so without
 *     $setElementOrder a new container lands at the front, as with upstream).
 * All lists handled here are arrays of borrowed or owned jansson references
 * inside the private copy kc_strategic_merge_patch works on.
 */
#include <stdlib.h>
#include <string.h>

#include "patch/smp_int.h"
#include "util/jsonparse.h"

enum ekind { EK_OBJECT = 1, EK_STRING, EK_INT, EK_REAL, EK_BOOL, EK_ARRAY, EK_NULL };

static enum ekind kind_of(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return EK_OBJECT;
    case JSON_ARRAY: return EK_ARRAY;
    case JSON_STRING: return EK_STRING;
    case JSON_INTEGER: return EK_INT;
    case JSON_REAL: return EK_REAL;
    case JSON_TRUE:
    case JSON_FALSE: return EK_BOOL;
    default: return EK_NULL;
    }
}

/* The one element kind of the lists a and b (either may be NULL). */
int kc_smp_elem_kind(struct kc_smp *m, json_t *a, json_t *b, int *out)
{
    json_t *lists[2] = {a, b};
    int k = 0;
    for (int l = 0; l < 2; l++) {
        size_t i;
        json_t *v;
        json_array_foreach(lists[l], i, v) {
            int vk = (int)kind_of(v);
            /* upstream checks for lists of lists on the first element only */
            if (!k && vk == EK_ARRAY)
                return kc_patch_unprocessable(m->err, "lists of lists are not supported");
            if ((k && k != vk) || vk == EK_NULL)
                return kc_patch_internal(m->err, "list element types are not identical");
            k = vk;
        }
    }
    if (!k)
        return kc_patch_internal(m->err, "no elements in any of the given slices");
    *out = k;
    return 0;
}

int kc_smp_no_merge_key(struct kc_smp *m, json_t *item, const char *key)
{
    char buf[512];
    return kc_patch_internal(m->err, "map: %s does not contain declared merge key: %s",
                             kc_patch_show(item, buf, sizeof buf), key);
}

/* Same item: by merge key value (both present) or, without a key, by value. */
static bool same_item(json_t *a, json_t *b, const char *key)
{
    if (!key)
        return json_equal(a, b);
    json_t *va = json_object_get(a, key), *vb = json_object_get(b, key);
    return va && vb && json_equal(va, vb);
}

static long index_of(json_t *list, json_t *v, const char *key)
{
    size_t i;
    json_t *x;
    json_array_foreach(list, i, x) {
        if (same_item(v, x, key))
            return (long)i;
    }
    return -1;
}

static int require_keys(struct kc_smp *m, json_t *list, const char *key)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        if (!json_is_object(v))
            return kc_patch_internal(m->err, "expected a map[string]interface {}, but received a list element %zu", i);
        if (!json_object_get(v, key))
            return kc_smp_no_merge_key(m, v, key);
    }
    return 0;
}

/* Splits `list` into items present in `by` (*in) and the rest (*out). */
int kc_smp_partition(struct kc_smp *m, json_t *list, json_t *by, const char *key, json_t **in, json_t **out)
{
    *in = json_array();
    *out = json_array();
    int rc = (*in && *out) ? 0 : kc_patch_nomem(m->err);
    if (!rc && key)
        rc = require_keys(m, list, key);
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        if (rc)
            break;
        if (json_array_append(index_of(by, v, key) >= 0 ? *in : *out, v) != 0)
            rc = kc_patch_nomem(m->err);
    }
    if (rc) {
        json_decref(*in);
        json_decref(*out);
        *in = *out = NULL;
    }
    return rc;
}

struct ranked {
    long pos;   /* position in the order list, LONG_MAX if absent */
    size_t seq; /* original position: keeps the sort stable */
    json_t *v;
};

static int cmp_ranked(const void *a, const void *b)
{
    const struct ranked *x = a, *y = b;
    if (x->pos != y->pos)
        return x->pos < y->pos ? -1 : 1;
    return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

/* New array: items ordered as in `order`; items absent there keep their
 * relative order after the others (upstream never produces any). */
static json_t *sort_by(json_t *items, json_t *order, const char *key)
{
    size_t n = json_array_size(items);
    struct ranked *r = calloc(n ? n : 1, sizeof *r);
    json_t *res = json_array();
    if (!r || !res) {
        free(r);
        json_decref(res);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(items, i);
        long p = index_of(order, v, key);
        r[i] = (struct ranked){.pos = p < 0 ? __LONG_MAX__ : p, .seq = i, .v = v};
    }
    qsort(r, n, sizeof *r, cmp_ranked);
    for (size_t i = 0; i < n; i++) {
        if (json_array_append(res, r[i].v) != 0) {
            json_decref(res);
            res = NULL;
            break;
        }
    }
    free(r);
    return res;
}

/* Interleaves server-only items (left) into patch items (right), both
 * already sorted; a left item goes first only if both are known to the
 * server order and it comes earlier there. */
static json_t *merge_sorted(json_t *left, json_t *right, json_t *server, const char *key)
{
    json_t *res = json_array();
    size_t i = 0, j = 0, nl = json_array_size(left), nr = json_array_size(right);
    while (res && (i < nl || j < nr)) {
        json_t *pick;
        if (i >= nl) {
            pick = json_array_get(right, j++);
        } else if (j >= nr) {
            pick = json_array_get(left, i++);
        } else {
            long li = index_of(server, json_array_get(left, i), key);
            long ri = index_of(server, json_array_get(right, j), key);
            pick = (li >= 0 && ri >= 0 && li < ri) ? json_array_get(left, i++) : json_array_get(right, j++);
        }
        if (json_array_append(res, pick) != 0) {
            json_decref(res);
            res = NULL;
        }
    }
    return res;
}

int kc_smp_normalize(struct kc_smp *m, json_t *patch_items, json_t *server_only, json_t *patch_order,
                     json_t *server_order, const char *key, json_t **out)
{
    *out = NULL;
    if (key) {
        json_t *lists[4] = {patch_items, patch_order, server_only, server_order};
        for (int l = 0; l < 4; l++) {
            int rc = require_keys(m, lists[l], key);
            if (rc)
                return rc;
        }
    }
    json_t *p = sort_by(patch_items, patch_order, key);
    json_t *s = sort_by(server_only, server_order, key);
    if (p && s)
        *out = merge_sorted(s, p, server_order, key);
    json_decref(p);
    json_decref(s);
    return *out ? 0 : kc_patch_nomem(m->err);
}

/* $deleteFromPrimitiveList: the server list without the listed values. */
static json_t *delete_values(json_t *ol, json_t *pl)
{
    json_t *res = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(ol, i, v) {
        if (res && index_of(pl, v, NULL) < 0 && json_array_append(res, v) != 0) {
            json_decref(res);
            res = NULL;
        }
    }
    return res;
}

static int primitive_list(struct kc_smp *m, json_t *ol, json_t *pl, bool is_del, json_t **out)
{
    if (is_del) {
        *out = delete_values(ol, pl);
        return *out ? 0 : kc_patch_nomem(m->err);
    }
    json_t *both = json_array();
    json_t *lists[2] = {ol, pl};
    for (int l = 0; both && l < 2; l++) {
        size_t i;
        json_t *v;
        json_array_foreach(lists[l], i, v) {
            if (both && index_of(both, v, NULL) < 0) {
                json_t *c = kc_json_copy(v);
                if (!c || json_array_append_new(both, c) != 0) {
                    json_decref(both);
                    both = NULL;
                }
            }
        }
    }
    if (!both)
        return kc_patch_nomem(m->err);
    json_t *in, *rest;
    int rc = kc_smp_partition(m, both, pl, NULL, &in, &rest);
    if (!rc)
        rc = kc_smp_normalize(m, in, rest, pl, ol, NULL, out);
    json_decref(in);
    json_decref(rest);
    json_decref(both);
    return rc;
}

static void alias_remove(struct kc_smp_alias *a, size_t idx)
{
    if (!a || a->frozen)
        return;
    for (size_t i = idx; i + 1 < a->len; i++)
        json_array_set(a->view, i, json_array_get(a->view, i + 1));
    a->len--;
}

static void alias_append(struct kc_smp_alias *a, json_t *item)
{
    if (!a || a->frozen)
        return;
    if (a->len < json_array_size(a->view))
        json_array_set(a->view, a->len++, item);
    else
        a->frozen = true;
}

/* Removes every item of list whose key equals item's, first match first,
 * as upstream does (the order matters for the aliased view). */
static int delete_matching(struct kc_smp *m, json_t *list, json_t *item, const char *key, struct kc_smp_alias *a)
{
    json_t *kv = json_object_get(item, key);
    if (!kv)
        return kc_smp_no_merge_key(m, item, key);
    for (size_t i = 0; i < json_array_size(list);) {
        json_t *v = json_object_get(json_array_get(list, i), key);
        if (v && json_equal(v, kv)) {
            json_array_remove(list, i);
            alias_remove(a, i);
            i = 0;
            continue;
        }
        i++;
    }
    return 0;
}

/* Applies the $patch items of pl to *base and collects the others in
 * *plain; with {"$patch":"replace"} *base becomes the (cleaned) plain items
 * and *plain ends up empty. */
static int special_items(struct kc_smp *m, json_t **base, json_t *pl, const char *key, json_t **plain,
                         struct kc_smp_alias *a)
{
    bool replace = false;
    size_t i;
    json_t *v;
    json_array_foreach(pl, i, v) {
        json_t *dir = json_object_get(v, KC_DIR_PATCH);
        const char *d = json_string_value(dir);
        int rc = 0;
        char buf[512];
        if (!dir)
            rc = json_array_append(*plain, v) ? kc_patch_nomem(m->err) : 0;
        else if (d && !strcmp(d, "delete"))
            rc = delete_matching(m, *base, v, key, a);
        else if (d && !strcmp(d, "replace"))
            replace = true;
        else if (d && !strcmp(d, "merge"))
            rc = kc_patch_internal(m->err, "merging lists cannot yet be specified in the patch");
        else
            rc = kc_patch_internal(m->err, "unknown patch type: %s in map: %s", d ? d : "(non-string)",
                                   kc_patch_show(v, buf, sizeof buf));
        if (rc)
            return rc;
    }
    if (!replace)
        return 0;
    if (a)
        a->frozen = true; /* upstream swaps in a new slice */
    json_t *items = json_array();
    json_array_foreach(*plain, i, v) {
        bool keep;
        json_t *c = kc_patch_clean(v, false, &keep);
        if (!items || !c || json_array_append_new(items, c) != 0) {
            json_decref(items);
            return kc_patch_nomem(m->err);
        }
    }
    json_decref(*base);
    *base = items;
    json_array_clear(*plain);
    return 0;
}

/* Merges each plain patch item into the base item with the same key, or
 * appends it. */
static int merge_items(struct kc_smp *m, json_t *base, json_t *plain, const void *type, const char *key,
                       struct kc_smp_alias *a)
{
    size_t i;
    json_t *pv;
    json_array_foreach(plain, i, pv) {
        if (!json_object_get(pv, key))
            return kc_smp_no_merge_key(m, pv, key);
        long at = index_of(base, pv, key);
        json_t *nv;
        if (at >= 0) {
            int rc = kc_smp_map(m, json_incref(json_array_get(base, (size_t)at)), pv, type, &nv);
            if (rc)
                return rc;
            if (json_array_set_new(base, (size_t)at, nv) != 0)
                return kc_patch_nomem(m->err);
            continue;
        }
        bool keep;
        nv = kc_patch_clean(pv, true, &keep);
        if (!nv || json_array_append_new(base, nv) != 0)
            return kc_patch_nomem(m->err);
        alias_append(a, nv);
    }
    return 0;
}

static int object_list(struct kc_smp *m, json_t *ol, json_t *pl, const void *type, const char *key,
                       const char *field, struct kc_smp_alias *a, json_t **out)
{
    if (!key)
        return kc_patch_internal(m->err, "cannot merge lists without merge key for %s", field);
    json_t *base = json_copy(ol ? ol : json_array()); /* shallow: items stay in the private copy */
    json_t *plain = json_array();
    json_t *order = NULL, *merged = NULL, *in = NULL, *rest = NULL;
    int rc = (base && plain) ? special_items(m, &base, pl, key, &plain, a) : kc_patch_nomem(m->err);
    if (!rc) {
        /* the server order, before new items are appended */
        order = json_copy(base);
        rc = order ? merge_items(m, base, plain, type, key, a) : kc_patch_nomem(m->err);
    }
    if (!rc)
        rc = kc_smp_partition(m, base, plain, key, &in, &rest);
    if (!rc)
        rc = kc_smp_normalize(m, in, rest, plain, order, key, &merged);
    json_decref(base);
    json_decref(plain);
    json_decref(order);
    json_decref(in);
    json_decref(rest);
    *out = merged;
    return rc;
}

int kc_smp_list(struct kc_smp *m, json_t *ol, json_t *pl, const void *type, const char *key, bool is_del,
                const char *field, struct kc_smp_alias *alias, json_t **out)
{
    *out = NULL;
    if (alias) {
        /* primitive lists never write into the server slice: the view stays ol */
        alias->view = json_copy(ol);
        alias->len = json_array_size(ol);
        alias->frozen = false;
        if (!alias->view)
            return kc_patch_nomem(m->err);
    }
    if (json_array_size(ol) == 0 && json_array_size(pl) == 0) {
        *out = json_incref(ol);
        return 0;
    }
    int kind;
    int rc = kc_smp_elem_kind(m, ol, pl, &kind);
    if (rc)
        return rc;
    if (kind != EK_OBJECT)
        return primitive_list(m, ol, pl, is_del, out);
    return object_list(m, ol, pl, type, key, field, alias, out);
}

bool kc_smp_kind_is_object(int kind)
{
    return kind == EK_OBJECT;
}
