/* smp.c — strategic merge patch (application/strategic-merge-patch+json):
 * maps and directives. Lists are in smp_list.c.
 *
 * Follows apimachinery strategicpatch (StrategicMergeMapPatch with the
 * options the API server uses: parallel deletion lists applied, unmatched
 * nulls ignored). Per object, in this order:
 *   1. "$patch": "replace" → the patch object itself (minus directives);
 *      "$patch": "delete" → {} (upstream yields an empty object, not an
 *      absent field); anything else is an error;
 *   2. "$retainKeys": [...] → server keys not listed are dropped; a patch
 *      key (non-null, not a parallel list) missing from the list → 400;
 *   3. "$setElementOrder/<f>": [...] → list f is merged, then ordered:
 *      listed items in that order, server-only items interleaved by their
 *      server order;
 *   4. every other key: null deletes; "$deleteFromPrimitiveList/<f>" removes
 *      values from list f; objects merge recursively; lists merge when the
 *      schema says strategy merge, else are replaced; anything else
 *      replaces. A value new to the server is inserted without its null
 *      members and directives.
 * The schema is consulted by field name; a NULL type (unknown) means no
 * merge strategy, so lists are replaced. Keys of map-typed fields are looked
 * up as fields of the value type (kc_patch_schema has no "is a map" query),
 * which only matters for maps of objects holding merge lists — none in the
 * core kinds.
 *
 * Status codes (upstream interpretStrategicMergePatchError): malformed
 * directives or patch → 400 BadRequest; lists of lists → 422 Invalid; other
 * failures (missing merge key, element type mismatch, order list not
 * matching the patch list, unknown $patch value) are returned unwrapped by
 * upstream, which its API server answers with 500 and an empty reason; so do we.
 */
#include <stdlib.h>
#include <string.h>

#include "patch/smp_int.h"
#include "util/jsonparse.h"

static const void *sub_type(struct kc_smp *m, const void *type, const char *field)
{
    if (!m->schema || !type || !m->schema->field_type)
        return NULL;
    return m->schema->field_type(m->schema->ctx, type, field);
}

static unsigned strategy_of(struct kc_smp *m, const void *type, const char *field)
{
    if (!m->schema || !type || !m->schema->field_strategy)
        return KC_PS_REPLACE;
    return m->schema->field_strategy(m->schema->ctx, type, field);
}

static const char *merge_key_of(struct kc_smp *m, const void *type, const char *field)
{
    if (!m->schema || !type || !m->schema->merge_key)
        return NULL;
    const char *k = m->schema->merge_key(m->schema->ctx, type, field);
    return (k && *k) ? k : NULL;
}

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* "<prefix>/<field>" → field; NULL if the key is not of that form. */
static const char *directive_field(const char *key, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(key, prefix, n) != 0 || key[n] != '/')
        return NULL;
    return key + n + 1;
}

static int map_directive(struct kc_smp *m, json_t *dir, json_t *patch, json_t **out)
{
    const char *d = json_string_value(dir);
    if (d && !strcmp(d, "replace")) {
        bool keep;
        *out = kc_patch_clean(patch, false, &keep);
        return *out ? 0 : kc_patch_nomem(m->err);
    }
    if (d && !strcmp(d, "delete")) {
        *out = json_object();
        return *out ? 0 : kc_patch_nomem(m->err);
    }
    char buf[512];
    return kc_patch_internal(m->err, "unknown patch type: %s in map: %s", d ? d : "(non-string)",
                             kc_patch_show(patch, buf, sizeof buf));
}

static bool listed(json_t *list, const char *key)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        if (json_is_string(v) && !strcmp(json_string_value(v), key))
            return true;
    }
    return false;
}

static int retain_keys(struct kc_smp *m, json_t *orig, json_t *p)
{
    json_t *rk = json_object_get(p, KC_DIR_RETAIN_KEYS);
    if (!rk)
        return 0;
    json_incref(rk);
    json_object_del(p, KC_DIR_RETAIN_KEYS);
    int rc = 0;
    const char *k;
    json_t *v;
    void *tmp;
    if (!json_is_array(rk)) {
        rc = kc_patch_bad_request(m->err, "invalid patch format of retainKeys");
        goto out;
    }
    json_object_foreach(p, k, v) {
        if (json_is_null(v) || has_prefix(k, KC_DIR_DELETE_PRIM) || has_prefix(k, KC_DIR_SET_ORDER))
            continue;
        if (!listed(rk, k)) {
            rc = kc_patch_bad_request(m->err, "invalid patch format of retainKeys");
            goto out;
        }
    }
    json_object_foreach_safe(orig, tmp, k, v) {
        if (!listed(rk, k))
            json_object_del(orig, k);
    }
out:
    json_decref(rk);
    return rc;
}

static int not_a_list(struct kc_smp *m, const char *what, json_t *v)
{
    static const char *names[] = {"map[string]interface {}", "[]interface {}", "string", "int64",
                                  "float64", "bool", "bool", "nil"};
    return kc_patch_internal(m->err, "expected a []interface {}, but received a %s (%s)", names[json_typeof(v)],
                             what);
}

static bool is_delete_item(json_t *v)
{
    const char *d = json_string_value(json_object_get(v, KC_DIR_PATCH));
    return d && !strcmp(d, "delete");
}

/* Checks that the patch list's items appear in the order list, in order.
 * With a merge key, $patch:delete items are left out first; other $patch
 * items are skipped while the order list lasts (as upstream does). */
static int validate_order(struct kc_smp *m, json_t *pl, json_t *order, const char *key)
{
    if (!pl || json_array_size(order) == 0 || json_array_size(pl) == 0)
        return 0;
    json_t *items = json_array();
    if (!items)
        return kc_patch_nomem(m->err);
    size_t i;
    json_t *v;
    int rc = 0;
    json_array_foreach(pl, i, v) {
        if (key && !json_is_object(v)) {
            rc = kc_patch_internal(m->err, "expected a map[string]interface {} in list, got element %zu", i);
            goto out;
        }
        if ((!key || !is_delete_item(v)) && json_array_append(items, v) != 0) {
            rc = kc_patch_nomem(m->err);
            goto out;
        }
    }
    size_t pi = 0, si = 0, n = json_array_size(items), no = json_array_size(order);
    while (pi < n && si < no) {
        json_t *it = json_array_get(items, pi), *ord = json_array_get(order, si);
        if (json_is_object(it) && json_object_get(it, KC_DIR_PATCH)) {
            pi++;
            continue;
        }
        bool eq;
        if (key) {
            if (!json_is_object(ord)) {
                rc = kc_patch_internal(m->err, "expected a map[string]interface {} in the %s list",
                                       KC_DIR_SET_ORDER);
                goto out;
            }
            if (!json_object_get(it, key) || !json_object_get(ord, key)) {
                rc = kc_smp_no_merge_key(m, json_object_get(it, key) ? ord : it, key);
                goto out;
            }
            eq = json_equal(json_object_get(it, key), json_object_get(ord, key));
        } else {
            eq = json_equal(it, ord);
        }
        if (eq)
            pi++;
        si++;
    }
    if (pi < n && si >= no) {
        char a[384], b[384];
        rc = kc_patch_internal(m->err, "The order in patch list:\n%s\n doesn't match %s list:\n%s\n",
                               kc_patch_show(pl, a, sizeof a), KC_DIR_SET_ORDER, kc_patch_show(order, b, sizeof b));
    }
out:
    json_decref(items);
    return rc;
}

/* The merged content of list `field` before ordering (new reference). */
static int ordered_content(struct kc_smp *m, json_t *ol, json_t *pl, const void *type, const char *field,
                           struct kc_smp_alias *alias, json_t **merged)
{
    bool keep;
    if (ol && !pl) {
        *merged = json_incref(ol);
        return 0;
    }
    if (!ol || !(strategy_of(m, type, field) & KC_PS_MERGE)) {
        *merged = kc_patch_clean(pl, !ol, &keep);
        return *merged ? 0 : kc_patch_nomem(m->err);
    }
    return kc_smp_list(m, ol, pl, sub_type(m, type, field), merge_key_of(m, type, field), false, field, alias,
                       merged);
}

static int one_order(struct kc_smp *m, json_t *orig, json_t *p, const void *type, const char *dkey, json_t *order)
{
    if (!json_is_array(order))
        return not_a_list(m, dkey, order);
    const char *field = directive_field(dkey, KC_DIR_SET_ORDER);
    if (!field)
        return kc_patch_bad_request(m->err, "invalid patch format of setElementOrder list");
    json_t *ol = json_object_get(orig, field), *pl = json_object_get(p, field);
    if (ol && !json_is_array(ol))
        return not_a_list(m, field, ol);
    if (pl && !json_is_array(pl))
        return not_a_list(m, field, pl);
    const char *key = merge_key_of(m, type, field);
    int rc = validate_order(m, pl, order, key);
    if (rc || (!ol && !pl))
        return rc;
    json_t *merged = NULL, *in = NULL, *rest = NULL, *res = NULL;
    struct kc_smp_alias alias = {0};
    int kind = 0;
    rc = ordered_content(m, ol, pl, type, field, &alias, &merged);
    if (!rc)
        rc = kc_smp_elem_kind(m, ol, pl, &kind);
    if (!rc && kc_smp_kind_is_object(kind) && !key)
        rc = kc_patch_internal(m->err, "cannot order list %s of objects without a merge key", field);
    if (!rc)
        rc = kc_smp_partition(m, merged, order, key, &in, &rest);
    if (!rc) {
        json_t *server = alias.view ? json_incref(alias.view) : ol ? json_incref(ol) : json_array();
        rc = server ? kc_smp_normalize(m, in, rest, order, server, key, &res) : kc_patch_nomem(m->err);
        json_decref(server);
    }
    if (!rc && json_object_set_new(orig, field, res) != 0)
        rc = kc_patch_nomem(m->err);
    if (!rc)
        json_object_del(p, field);
    json_decref(merged);
    json_decref(in);
    json_decref(rest);
    json_decref(alias.view);
    return rc;
}

static int set_element_orders(struct kc_smp *m, json_t *orig, json_t *p, const void *type)
{
    json_t *keys = json_array();
    if (!keys)
        return kc_patch_nomem(m->err);
    const char *k;
    json_t *v;
    json_object_foreach(p, k, v) {
        if (has_prefix(k, KC_DIR_SET_ORDER) && json_array_append_new(keys, json_string(k)) != 0) {
            json_decref(keys);
            return kc_patch_nomem(m->err);
        }
    }
    int rc = 0;
    size_t i;
    json_t *kv;
    json_array_foreach(keys, i, kv) {
        const char *dkey = json_string_value(kv);
        json_t *order = json_incref(json_object_get(p, dkey));
        json_object_del(p, dkey);
        rc = one_order(m, orig, p, type, dkey, order);
        json_decref(order);
        if (rc)
            break;
    }
    json_decref(keys);
    return rc;
}

/* Sets orig[field] to the cleaned patch value (or removes it when the value
 * is itself a $patch object). */
static int put_clean(struct kc_smp *m, json_t *orig, const char *field, json_t *pv)
{
    bool keep = true;
    json_t *c = kc_patch_clean(pv, true, &keep);
    if (!keep) {
        json_object_del(orig, field);
        return 0;
    }
    if (!c || json_object_set_new(orig, field, c) != 0)
        return kc_patch_nomem(m->err);
    return 0;
}

static int merge_field(struct kc_smp *m, json_t *orig, const char *field, json_t *pv, const void *type, bool is_del)
{
    if (json_is_null(pv)) {
        json_object_del(orig, field);
        return 0;
    }
    json_t *ov = json_object_get(orig, field);
    json_t *nv = NULL;
    int rc;
    if (json_is_object(ov) && json_is_object(pv) && (strategy_of(m, type, field) & KC_PS_REPLACE_MAP)) {
        bool keep;
        nv = kc_patch_clean(pv, false, &keep);
        rc = nv ? 0 : kc_patch_nomem(m->err);
    } else if (json_is_object(ov) && json_is_object(pv)) {
        rc = kc_smp_map(m, json_incref(ov), pv, sub_type(m, type, field), &nv);
    } else if (json_is_array(ov) && json_is_array(pv)) {
        if (!is_del && !(strategy_of(m, type, field) & KC_PS_MERGE)) {
            bool keep;
            nv = kc_patch_clean(pv, false, &keep);
            rc = nv ? 0 : kc_patch_nomem(m->err);
        } else {
            rc = kc_smp_list(m, ov, pv, sub_type(m, type, field), merge_key_of(m, type, field), is_del, field, NULL,
                             &nv);
        }
    } else {
        return is_del ? 0 : put_clean(m, orig, field, pv);
    }
    if (!rc && json_object_set_new(orig, field, nv) != 0)
        rc = kc_patch_nomem(m->err);
    return rc;
}

static int merge_fields(struct kc_smp *m, json_t *orig, json_t *p, const void *type)
{
    const char *k;
    json_t *pv;
    json_object_foreach(p, k, pv) {
        const char *field = k;
        bool is_del = has_prefix(k, KC_DIR_DELETE_PRIM);
        if (is_del) {
            field = directive_field(k, KC_DIR_DELETE_PRIM);
            if (!field)
                return kc_patch_bad_request(m->err, "invalid patch format of primitive list");
        }
        int rc = merge_field(m, orig, field, pv, type, is_del);
        if (rc)
            return rc;
    }
    return 0;
}

int kc_smp_map(struct kc_smp *m, json_t *orig, json_t *patch, const void *type, json_t **out)
{
    *out = NULL;
    json_t *dir = json_object_get(patch, KC_DIR_PATCH);
    if (dir) {
        json_decref(orig);
        return map_directive(m, dir, patch, out);
    }
    if (m->depth >= KC_PATCH_MAX_DEPTH) {
        json_decref(orig);
        return kc_patch_bad_request(m->err, "patch nested deeper than %d levels", KC_PATCH_MAX_DEPTH);
    }
    if (!json_is_object(orig)) {
        json_decref(orig);
        orig = json_object();
    }
    json_t *p = json_copy(patch); /* shallow: lets processed keys be removed */
    int rc = (orig && p) ? 0 : kc_patch_nomem(m->err);
    m->depth++;
    if (!rc)
        rc = retain_keys(m, orig, p);
    if (!rc)
        rc = set_element_orders(m, orig, p, type);
    if (!rc)
        rc = merge_fields(m, orig, p, type);
    m->depth--;
    json_decref(p);
    if (rc) {
        json_decref(orig);
        return rc;
    }
    *out = orig;
    return 0;
}

static const char *json_kind_name(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_TRUE:
    case JSON_FALSE: return "bool";
    default: return "number";
    }
}

int kc_strategic_merge_patch(json_t *orig, json_t *patch, const struct kc_patch_schema *schema,
                             const void *root_type, json_t **out, struct kc_err *err)
{
    *out = NULL;
    if (patch && !json_is_null(patch) && !json_is_object(patch))
        return kc_patch_bad_request(err, "json: cannot unmarshal %s into Go value of type map[string]interface {}",
                                    json_kind_name(patch));
    json_t *base = json_is_object(orig) ? kc_json_copy(orig) : json_object();
    if (!base)
        return kc_patch_nomem(err);
    if (!patch || json_is_null(patch)) {
        *out = base;
        return 0;
    }
    struct kc_smp m = {.schema = schema, .err = err};
    return kc_smp_map(&m, base, patch, root_type, out);
}
