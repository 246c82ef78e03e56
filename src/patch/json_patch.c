/* json_patch.c — JSON patch (RFC 6902): add, remove, replace, move, copy, test.
 *
 * Semantics follow evanphx/json-patch v4, the library upstream's API server
 * applies application/json-patch+json with, including its departures from
 * the RFC that clients may rely on:
 *   - negative array indices count from the end: -1 is the last element,
 *     and for add it is the end of the grown array (so "-1" appends);
 *   - "replace" of a missing object member adds it;
 *   - "copy" from a missing object member copies null;
 *   - "test" of a missing or null member passes when "value" is null/absent;
 *   - a missing "value" means null.
 * Pointers use RFC 6901 escapes (~1 = '/', ~0 = '~'); "-" appends (add/move/
 * copy destinations only). Ops run in order on a private deep copy; the first
 * failure aborts the whole patch (nothing is applied).
 *
 * Status codes (upstream apiserver handlers/patch.go): a document that does
 * not decode as an array of op objects → 400 BadRequest; more than 10000
 * ops → 413 RequestEntityTooLarge; any op failing to apply (test failure,
 * missing path, bad index, unknown op) → 422 Invalid. Copies may add at most
 * 3 MiB in total (the API server's JSONPatchMaxCopyBytes default) → 422.
 */
#include "patch/patch.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "patch/patch_int.h"
#include "util/jsonparse.h"

#define KC_JSONPATCH_MAX_OPS 10000
#define KC_JSONPATCH_MAX_COPY_BYTES (3 * 1024 * 1024)

struct jp {
    json_t *doc;          /* the document being patched (owned) */
    size_t copied;        /* accumulated bytes added by "copy" */
    struct kc_err *err;
};

/* A resolved pointer: the container holding the target and the target's
 * (unescaped) last token. */
struct jp_loc {
    json_t *parent;
    char *key;
};

static void unescape_token(char *t)
{
    char *w = t;
    for (const char *r = t; *r; r++) {
        if (r[0] == '~' && r[1] == '1') {
            *w++ = '/';
            r++;
        } else if (r[0] == '~' && r[1] == '0') {
            *w++ = '~';
            r++;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

/* Like Go's strconv.Atoi: optional sign, decimal digits, no overflow. */
static bool parse_index(const char *s, long long *out)
{
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    if (!*p)
        return false;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9')
            return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

/* Array element for a get-style access (negative counts from the end). */
static int array_slot(json_t *a, const char *key, size_t *idx, char *why, size_t whylen)
{
    long long i;
    long long n = (long long)json_array_size(a);
    if (!parse_index(key, &i)) {
        snprintf(why, whylen, "strconv.Atoi: parsing \"%s\": invalid syntax", key);
        return -1;
    }
    if (i < 0) {
        if (i < -n) {
            snprintf(why, whylen, "Unable to access invalid index: %lld: invalid index referenced", i);
            return -1;
        }
        i += n;
    }
    if (i >= n) {
        snprintf(why, whylen, "Unable to access invalid index: %lld: invalid index referenced", i);
        return -1;
    }
    *idx = (size_t)i;
    return 0;
}

/* Child of a container for traversal; NULL if absent, null or out of range. */
static json_t *child(json_t *c, const char *tok)
{
    char why[128] = "";
    size_t i;
    if (json_is_object(c)) {
        json_t *v = json_object_get(c, tok);
        return json_is_null(v) ? NULL : v;
    }
    if (json_is_array(c) && array_slot(c, tok, &i, why, sizeof why) == 0)
        return json_array_get(c, i);
    return NULL;
}

/* Resolves all tokens but the last. Returns false when the path is not a
 * pointer below the root or an intermediate value is missing or a scalar. */
static bool locate(json_t *doc, const char *path, struct jp_loc *loc)
{
    loc->parent = NULL;
    loc->key = NULL;
    if (path[0] != '/')
        return false;
    char *buf = strdup(path + 1);
    if (!buf)
        return false;
    json_t *cur = doc;
    char *tok = buf;
    for (char *slash; (slash = strchr(tok, '/')) != NULL; tok = slash + 1) {
        *slash = '\0';
        unescape_token(tok);
        cur = child(cur, tok);
        if (!cur || (!json_is_object(cur) && !json_is_array(cur))) {
            free(buf);
            return false;
        }
    }
    unescape_token(tok);
    loc->parent = cur;
    loc->key = strdup(tok);
    free(buf);
    return loc->key != NULL;
}

static void loc_free(struct jp_loc *loc)
{
    free(loc->key);
    loc->key = NULL;
}

/* Inserts val (reference stolen) at loc. */
static int container_add(struct jp_loc *loc, json_t *val, char *why, size_t whylen)
{
    if (json_is_object(loc->parent))
        return json_object_set_new(loc->parent, loc->key, val);
    json_t *a = loc->parent;
    if (strcmp(loc->key, "-") == 0)
        return json_array_append_new(a, val);
    long long i;
    long long n = (long long)json_array_size(a) + 1;
    if (!parse_index(loc->key, &i)) {
        snprintf(why, whylen, "value was not a proper array index: '%s': strconv.Atoi: parsing \"%s\": invalid syntax",
                 loc->key, loc->key);
    } else if (i >= n || i < -n) {
        snprintf(why, whylen, "Unable to access invalid index: %lld: invalid index referenced", i);
    } else {
        if (i < 0)
            i += n;
        return json_array_insert_new(a, (size_t)i, val);
    }
    json_decref(val);
    return -1;
}

static int container_remove(struct jp_loc *loc, char *why, size_t whylen)
{
    if (json_is_object(loc->parent)) {
        if (json_object_del(loc->parent, loc->key) == 0)
            return 0;
        snprintf(why, whylen, "Unable to remove nonexistent key: %s: missing value", loc->key);
        return -1;
    }
    size_t i;
    if (array_slot(loc->parent, loc->key, &i, why, whylen) != 0)
        return -1;
    return json_array_remove(loc->parent, i);
}

/* The value at loc; *out NULL for a missing object member (not an error). */
static int container_get(struct jp_loc *loc, json_t **out, char *why, size_t whylen)
{
    size_t i;
    *out = NULL;
    if (json_is_object(loc->parent)) {
        *out = json_object_get(loc->parent, loc->key);
        return 0;
    }
    if (array_slot(loc->parent, loc->key, &i, why, whylen) != 0)
        return -1;
    *out = json_array_get(loc->parent, i);
    return 0;
}

static const char *op_str(json_t *op, const char *field)
{
    return json_string_value(json_object_get(op, field));
}

static json_t *op_value(json_t *op)
{
    json_t *v = json_object_get(op, "value");
    return v ? v : json_null();
}

/* Every failure while applying ops is a 422 (see the top comment). */
#define fail(p, ...) kc_patch_unprocessable((p)->err, __VA_ARGS__)

static int do_add(struct jp *p, json_t *op, const char *path)
{
    struct jp_loc loc;
    char why[256] = "";
    if (!locate(p->doc, path, &loc)) {
        loc_free(&loc);
        return fail(p, "add operation does not apply: doc is missing path: \"%s\"", path);
    }
    json_t *v = kc_json_copy(op_value(op));
    int rc = v ? container_add(&loc, v, why, sizeof why) : -1;
    loc_free(&loc);
    if (rc != 0)
        return v ? fail(p, "error in add for path: '%s': %s", path, why) : kc_patch_nomem(p->err);
    return 0;
}

static int do_remove(struct jp *p, const char *path)
{
    struct jp_loc loc;
    char why[256] = "";
    if (!locate(p->doc, path, &loc)) {
        loc_free(&loc);
        return fail(p, "remove operation does not apply: doc is missing path: \"%s\"", path);
    }
    int rc = container_remove(&loc, why, sizeof why);
    loc_free(&loc);
    return rc ? fail(p, "error in remove for path: '%s': %s", path, why) : 0;
}

static int replace_root(struct jp *p, json_t *op)
{
    json_t *v = op_value(op);
    if (!json_is_object(v) && !json_is_array(v))
        return fail(p, "replace operation value must be object or array");
    json_t *c = kc_json_copy(v);
    if (!c)
        return kc_patch_nomem(p->err);
    json_decref(p->doc);
    p->doc = c;
    return 0;
}

static int do_replace(struct jp *p, json_t *op, const char *path)
{
    if (path[0] == '\0')
        return replace_root(p, op);
    struct jp_loc loc;
    char why[256] = "";
    json_t *cur;
    if (!locate(p->doc, path, &loc)) {
        loc_free(&loc);
        return fail(p, "replace operation does not apply: doc is missing path: %s", path);
    }
    if (container_get(&loc, &cur, why, sizeof why) != 0) {
        loc_free(&loc);
        return fail(p, "replace operation does not apply: doc is missing key: %s", path);
    }
    json_t *v = kc_json_copy(op_value(op));
    int rc = -1;
    if (v && json_is_object(loc.parent)) {
        rc = json_object_set_new(loc.parent, loc.key, v);
    } else if (v) {
        size_t i;
        rc = array_slot(loc.parent, loc.key, &i, why, sizeof why) == 0 ? json_array_set_new(loc.parent, i, v) : -1;
    }
    loc_free(&loc);
    return rc ? kc_patch_nomem(p->err) : 0;
}

/* Shared first half of move/copy: the value at `from` (borrowed, may be NULL). */
static int get_from(struct jp *p, const char *opname, const char *from, struct jp_loc *loc, json_t **val)
{
    char why[256] = "";
    if (!locate(p->doc, from, loc)) {
        loc_free(loc);
        return kc_patch_unprocessable(p->err, "%s operation does not apply: doc is missing from path: %s", opname,
                                      from);
    }
    if (container_get(loc, val, why, sizeof why) != 0) {
        int rc = kc_patch_unprocessable(p->err, "error in %s for path: '%s': %s", opname, loc->key, why);
        loc_free(loc);
        return rc;
    }
    return 0;
}

/* Shared second half of move/copy: insert v (stolen) at path. */
static int put_to(struct jp *p, const char *opname, const char *path, json_t *v)
{
    struct jp_loc loc;
    char why[256] = "";
    if (!locate(p->doc, path, &loc)) {
        loc_free(&loc);
        json_decref(v);
        return kc_patch_unprocessable(p->err, "%s operation does not apply: doc is missing destination path: %s",
                                      opname, path);
    }
    int rc = container_add(&loc, v, why, sizeof why);
    loc_free(&loc);
    if (rc)
        return kc_patch_unprocessable(p->err, "error in %s for path: '%s': %s", opname, path, why);
    return 0;
}

static int do_move(struct jp *p, json_t *op, const char *path)
{
    const char *from = op_str(op, "from");
    if (!from)
        return fail(p, "move operation failed to decode from: operation, missing from field: missing value");
    struct jp_loc loc;
    json_t *val;
    char why[256] = "";
    int rc = get_from(p, "move", from, &loc, &val);
    if (rc)
        return rc;
    json_incref(val);
    if (container_remove(&loc, why, sizeof why) != 0) {
        rc = kc_patch_unprocessable(p->err, "error in move for path: '%s': %s", loc.key, why);
        json_decref(val);
        loc_free(&loc);
        return rc;
    }
    loc_free(&loc);
    if (!path) {
        json_decref(val);
        return fail(p, "move operation failed to decode path");
    }
    return put_to(p, "move", path, val ? val : json_null());
}

static int do_copy(struct jp *p, json_t *op, const char *path)
{
    const char *from = op_str(op, "from");
    if (!from)
        return fail(p, "copy operation failed to decode from: operation, missing from field: missing value");
    struct jp_loc loc;
    json_t *val;
    int rc = get_from(p, "copy", from, &loc, &val);
    loc_free(&loc);
    if (rc)
        return rc;
    if (!path)
        return fail(p, "copy operation failed to decode path: missing value");
    /* upstream copies a missing member as null */
    json_t *c = kc_json_copy(val ? val : json_null());
    if (!c)
        return kc_patch_nomem(p->err);
    p->copied += json_dumpb(c, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
    if (p->copied > KC_JSONPATCH_MAX_COPY_BYTES) {
        json_decref(c);
        return kc_err_set(p->err, KC_EINVALID, 422, "Invalid",
                          "Unable to complete the copy, the accumulated size increase of copy is %zu, exceeding the "
                          "limit %d",
                          p->copied, KC_JSONPATCH_MAX_COPY_BYTES);
    }
    return put_to(p, "copy", path, c);
}

static int do_test(struct jp *p, json_t *op, const char *path)
{
    json_t *want = op_value(op);
    if (path[0] == '\0')
        return json_equal(p->doc, want) ? 0 : fail(p, "testing value %s failed: test failed", path);
    struct jp_loc loc;
    char why[256] = "";
    json_t *have;
    if (!locate(p->doc, path, &loc)) {
        loc_free(&loc);
        return fail(p, "test operation does not apply: is missing path: %s", path);
    }
    int rc = container_get(&loc, &have, why, sizeof why);
    loc_free(&loc);
    if (rc)
        return fail(p, "error in test for path: '%s': %s", path, why);
    if (!have)
        have = json_null();
    return json_equal(have, want) ? 0 : fail(p, "testing value %s failed: test failed", path);
}

static int apply_op(struct jp *p, json_t *op)
{
    const char *kind = op_str(op, "op");
    const char *path = op_str(op, "path");
    if (!kind)
        kind = "unknown";
    bool known = !strcmp(kind, "add") || !strcmp(kind, "remove") || !strcmp(kind, "replace") ||
                 !strcmp(kind, "move") || !strcmp(kind, "copy") || !strcmp(kind, "test");
    if (!known)
        return fail(p, "Unexpected kind: %s", kind);
    /* move and copy look at "from" first, as upstream does */
    if (!strcmp(kind, "move"))
        return do_move(p, op, path);
    if (!strcmp(kind, "copy"))
        return do_copy(p, op, path);
    if (!path)
        return fail(p, "%s operation failed to decode path: operation missing path field: missing value", kind);
    if (!strcmp(kind, "add"))
        return do_add(p, op, path);
    if (!strcmp(kind, "remove"))
        return do_remove(p, path);
    if (!strcmp(kind, "replace"))
        return do_replace(p, op, path);
    return do_test(p, op, path);
}

static int check_shape(json_t *patch, struct kc_err *err)
{
    if (json_is_null(patch))
        return 0;
    if (!json_is_array(patch))
        return kc_patch_bad_request(err, "json: cannot unmarshal %s into Go value of type jsonpatch.Patch",
                                    json_is_object(patch) ? "object" : json_is_string(patch) ? "string"
                                                                   : json_is_boolean(patch) ? "bool"
                                                                                            : "number");
    size_t i;
    json_t *op;
    json_array_foreach(patch, i, op) {
        if (!json_is_object(op) && !json_is_null(op))
            return kc_patch_bad_request(err, "json: cannot unmarshal %s into Go value of type jsonpatch.Operation "
                                             "(operation %zu is not an object)",
                                        json_is_array(op) ? "array" : "scalar", i);
    }
    if (json_array_size(patch) > KC_JSONPATCH_MAX_OPS)
        return kc_err_set(err, KC_ETOOLARGE, 413, "RequestEntityTooLarge",
                          "The allowed maximum operations in a JSON patch is %d, got %zu", KC_JSONPATCH_MAX_OPS,
                          json_array_size(patch));
    return 0;
}

int kc_json_patch(json_t *orig, json_t *patch, json_t **out, struct kc_err *err)
{
    *out = NULL;
    int rc = check_shape(patch, err);
    if (rc)
        return rc;
    struct jp p = {.doc = kc_json_copy(orig ? orig : json_null()), .err = err};
    if (!p.doc)
        return kc_patch_nomem(err);
    size_t i;
    json_t *op;
    json_array_foreach(patch, i, op) {
        rc = apply_op(&p, json_is_object(op) ? op : NULL);
        if (rc) {
            json_decref(p.doc);
            return rc;
        }
    }
    *out = p.doc;
    return 0;
}
