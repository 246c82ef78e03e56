/* merge_patch.c — JSON merge patch (RFC 7386) and its inverse, the diff.
 *
 * Semantics follow the library upstream's API server uses
 * (evanphx/json-patch v4 MergePatch / CreateMergePatch):
 *   - a null member deletes the key; an object member merges recursively;
 *     anything else replaces;
 *   - a value inserted where nothing (or a non-object) was has its null
 *     members pruned at every depth, including objects inside arrays; a
 *     non-object patch value replacing an object is taken verbatim;
 *   - at the top, an object patch merges, an array patch becomes the result
 *     (nulls pruned inside its objects) and null or a scalar is refused as
 *     "Invalid JSON Patch" (400).
 * kc_merge_patch works on a private deep copy of the original; kc_merge_patch_shared copies only the
 * objects on the paths the patch touches and shares every other subtree with the original.
 */
#include "patch/patch.h"

#include "patch/patch_int.h"
#include "util/jsonparse.h"

static void prune_nulls(json_t *v, int depth);

static void prune_object_nulls(json_t *o, int depth)
{
    const char *k;
    json_t *cv;
    void *tmp;
    json_object_foreach_safe(o, tmp, k, cv) {
        if (json_is_null(cv))
            json_object_del(o, k);
        else
            prune_nulls(cv, depth + 1);
    }
}

/* In place; array elements that are null stay, as upstream keeps them. */
static void prune_nulls(json_t *v, int depth)
{
    if (depth > KC_PATCH_MAX_DEPTH)
        return;
    if (json_is_object(v)) {
        prune_object_nulls(v, depth);
    } else if (json_is_array(v)) {
        size_t i;
        json_t *cv;
        json_array_foreach(v, i, cv) prune_nulls(cv, depth + 1);
    }
}

static json_t *pruned_copy(json_t *v)
{
    json_t *c = kc_json_copy(v);
    if (c)
        prune_nulls(c, 0);
    return c;
}

static int merge_docs(json_t *doc, json_t *patch, int depth, bool shared);

/* The new value for a key whose current value is cur (non-null). shared: cur may belong to the
 * original as well, so an object is copied (shallowly) before the patch is merged into it. */
static json_t *merge_value(json_t *cur, json_t *pv, int depth, bool shared)
{
    if (!json_is_object(cur))
        return pruned_copy(pv);
    if (!json_is_object(pv))
        return kc_json_copy(pv);
    json_t *doc = shared ? json_copy(cur) : json_incref(cur);
    if (!doc || merge_docs(doc, pv, depth + 1, shared) != 0) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

static int merge_docs(json_t *doc, json_t *patch, int depth, bool shared)
{
    if (depth > KC_PATCH_MAX_DEPTH)
        return -1;
    const char *k;
    json_t *pv;
    json_object_foreach(patch, k, pv) {
        if (json_is_null(pv)) {
            json_object_del(doc, k);
            continue;
        }
        json_t *cur = json_object_get(doc, k);
        json_t *nv = (!cur || json_is_null(cur)) ? pruned_copy(pv) : merge_value(cur, pv, depth, shared);
        if (!nv || json_object_set_new(doc, k, nv) != 0)
            return -1;
    }
    return 0;
}

/* shared: orig's subtrees the patch leaves alone are shared with *out instead of copied */
static int merge_patch(json_t *orig, json_t *patch, bool shared, json_t **out, struct kc_err *err)
{
    *out = NULL;
    if (json_is_array(patch)) {
        *out = pruned_copy(patch);
        return *out ? 0 : kc_patch_nomem(err);
    }
    if (!json_is_object(patch))
        return kc_patch_bad_request(err, "Invalid JSON Patch");
    if (!json_is_object(orig)) {
        *out = pruned_copy(patch);
        return *out ? 0 : kc_patch_nomem(err);
    }
    json_t *doc = shared ? json_copy(orig) : kc_json_copy(orig);
    if (!doc)
        return kc_patch_nomem(err);
    if (merge_docs(doc, patch, 0, shared) != 0) {
        json_decref(doc);
        return kc_patch_bad_request(err, "Invalid JSON Patch: nested too deeply or out of memory");
    }
    *out = doc;
    return 0;
}

static json_t *diff_objects(json_t *a, json_t *b, int depth);

/* Adds to p what turns av (may be NULL) into bv under key k. */
static int diff_key(json_t *p, const char *k, json_t *av, json_t *bv, int depth)
{
    json_t *nv;
    if (av && json_is_object(av) && json_is_object(bv)) {
        nv = diff_objects(av, bv, depth + 1);
        if (nv && json_object_size(nv) == 0) {
            json_decref(nv);
            return 0;
        }
    } else if (av && json_equal(av, bv)) {
        return 0;
    } else {
        nv = kc_json_copy(bv);
    }
    return (nv && json_object_set_new(p, k, nv) == 0) ? 0 : -1;
}

static json_t *diff_objects(json_t *a, json_t *b, int depth)
{
    json_t *p = json_object();
    if (!p || depth > KC_PATCH_MAX_DEPTH) {
        json_decref(p);
        return NULL;
    }
    const char *k;
    json_t *v;
    json_object_foreach(b, k, v) {
        if (diff_key(p, k, json_object_get(a, k), v, depth) != 0)
            goto fail;
    }
    json_object_foreach(a, k, v) {
        if (!json_object_get(b, k) && json_object_set_new(p, k, json_null()) != 0)
            goto fail;
    }
    return p;
fail:
    json_decref(p);
    return NULL;
}

int kc_merge_patch_diff(json_t *from, json_t *to, json_t **out)
{
    if (json_is_object(from) && json_is_object(to))
        *out = diff_objects(from, to, 0);
    else
        *out = kc_json_copy(to ? to : json_null());
    return *out ? 0 : KC_ENOMEM;
}

int kc_merge_patch(json_t *orig, json_t *patch, json_t **out, struct kc_err *err)
{
    return merge_patch(orig, patch, false, out, err);
}

int kc_merge_patch_shared(json_t *orig, json_t *patch, json_t **out, struct kc_err *err)
{
    return merge_patch(orig, patch, true, out, err);
}
