/* patch_common.c — error helpers and value cleaners shared by the merge
 * patch, JSON patch and strategic merge patch code (see patch_int.h).
 * Stateless; safe from any thread.
 */
#include "patch/patch_int.h"
#include "util/jsonparse.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int vset(struct kc_err *err, int rc, int code, const char *reason, const char *fmt, va_list ap)
{
    if (!err)
        return rc;
    err->code = code;
    snprintf(err->reason, sizeof err->reason, "%s", reason);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    return rc;
}

int kc_patch_bad_request(struct kc_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vset(err, KC_EINVAL, 400, "BadRequest", fmt, ap);
    va_end(ap);
    return rc;
}

int kc_patch_unprocessable(struct kc_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vset(err, KC_EINVALID, 422, "Invalid", fmt, ap);
    va_end(ap);
    return rc;
}

int kc_patch_internal(struct kc_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vset(err, KC_EINVAL, 500, "", fmt, ap);
    va_end(ap);
    return rc;
}

int kc_patch_nomem(struct kc_err *err)
{
    return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory (or a document nested too deeply) while applying patch");
}

static bool has_prefix_slash(const char *key, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(key, prefix, n) == 0 && key[n] == '/';
}

bool kc_patch_is_directive_key(const char *key)
{
    if (key[0] != '$')
        return false;
    return strcmp(key, KC_DIR_PATCH) == 0 || strcmp(key, KC_DIR_RETAIN_KEYS) == 0 ||
           has_prefix_slash(key, KC_DIR_SET_ORDER) || has_prefix_slash(key, KC_DIR_DELETE_PRIM);
}

static json_t *clean_rec(json_t *v, bool drop_marked, bool *keep, int depth);

static json_t *clean_object(json_t *v, bool drop_marked, bool *keep, int depth)
{
    if (drop_marked && json_object_get(v, KC_DIR_PATCH)) {
        *keep = false;
        return NULL;
    }
    json_t *o = json_object();
    if (!o)
        return NULL;
    const char *k;
    json_t *cv;
    json_object_foreach(v, k, cv) {
        if (json_is_null(cv) || kc_patch_is_directive_key(k))
            continue;
        bool ck = true;
        json_t *c = clean_rec(cv, drop_marked, &ck, depth + 1);
        if (!ck)
            continue;
        if (!c || json_object_set_new(o, k, c) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static json_t *clean_array(json_t *v, bool drop_marked, int depth)
{
    json_t *a = json_array();
    if (!a)
        return NULL;
    size_t i;
    json_t *cv;
    json_array_foreach(v, i, cv) {
        bool ck = true;
        json_t *c = clean_rec(cv, drop_marked, &ck, depth + 1);
        if (!ck)
            continue;
        if (!c || json_array_append_new(a, c) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static json_t *clean_rec(json_t *v, bool drop_marked, bool *keep, int depth)
{
    *keep = true;
    if (depth > KC_PATCH_MAX_DEPTH)
        return NULL;
    if (json_is_object(v))
        return clean_object(v, drop_marked, keep, depth);
    if (json_is_array(v))
        return clean_array(v, drop_marked, depth);
    return kc_json_copy(v);
}

json_t *kc_patch_clean(json_t *v, bool drop_marked, bool *keep)
{
    return clean_rec(v, drop_marked, keep, 0);
}

const char *kc_patch_show(json_t *v, char *buf, size_t len)
{
    if (!len)
        return buf;
    buf[0] = '\0';
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (!s)
        return buf;
    size_t n = strlen(s);
    if (n >= len) {
        /* truncated: mark it so the message does not look complete */
        n = len - 1;
        if (len > 4)
            memcpy(s + len - 4, "...", 3);
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    free(s);
    return buf;
}
