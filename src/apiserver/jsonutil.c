/* jsonutil.c — JSON helpers of the API server: body parsing with limits,
 * dotted-path access, Status responses, small formatting helpers.
 *
 * jansson is the JSON library: it is mature, small, in Debian, keeps object
 * key order (so served objects read like upstream's: apiVersion, kind,
 * metadata, spec, status) and reports error positions, which our 400
 * messages pass on. Its own depth limit (2048) is far above ours, so
 * kc_json_depth_ok scans the bytes first and refuses deep nesting cheaply.
 */
#include "apiserver/internal.h"

#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util/jsonw.h"
#include "util/timeutil.h"
#include "util/jsonparse.h"
#include "util/jsonscan.h"

int kc_json_depth_ok(const char *s, size_t len, int max)
{
    int depth = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '"') {
            long e = kc_json_skip_string(s, len, i);
            if (e < 0)
                return 1; /* unterminated: the parser reports it */
            i = (size_t)e - 1;
        } else if (c == '{' || c == '[') {
            if (++depth > max)
                return 0;
        } else if (c == '}' || c == ']')
            depth--;
    }
    return 1;
}

int kc_json_parse_body(const char *body, size_t len, json_t **out, struct kc_err *err)
{
    if (!kc_json_depth_ok(body, len, KC_MAX_JSON_DEPTH))
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest",
                          "the request body nests deeper than %d levels of objects and arrays", KC_MAX_JSON_DEPTH);
    json_error_t je;
    json_t *o = kc_json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!o)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest",
                          "the request body is not valid JSON: %s at line %d, column %d (byte %d)", je.text,
                          je.line, je.column, je.position);
    *out = o;
    return 0;
}

char *kc_json_dump(json_t *o, size_t *len) { return kc_json_dumps(o, len); }

json_t *kc_jget(json_t *o, const char *path)
{
    char seg[128];
    const char *p = path;
    while (o && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof seg)
            return NULL;
        memcpy(seg, p, n);
        seg[n] = 0;
        o = json_is_object(o) ? json_object_get(o, seg) : NULL;
        p += n;
        if (*p == '.')
            p++;
    }
    return o;
}

const char *kc_jstr(json_t *o, const char *path)
{
    const char *s = json_string_value(kc_jget(o, path));
    return s && *s ? s : NULL;
}

json_t *kc_jmeta(json_t *obj)
{
    json_t *m = json_object_get(obj, "metadata");
    if (!json_is_object(m)) {
        m = json_object();
        json_object_set_new(obj, "metadata", m);
    }
    return m;
}

void kc_now_rfc3339(char *out, size_t n) { kc_time_rfc3339(time(NULL), out, n); }

/* Random bytes for UUIDs from a per-thread pool refilled 1 KiB at a time: RAND_bytes checks for a
 * fork with getpid() on every call, a system call that costs ~1 µs in a VM, once per create. A child
 * process (runc hooks) execs at once and never draws from its parent's copy. */
static _Thread_local unsigned char uuid_pool[1024];
static _Thread_local size_t uuid_left;

void kc_uuid(char out[37])
{
    if (uuid_left < 16) {
        if (RAND_bytes(uuid_pool, sizeof uuid_pool) != 1)
            for (size_t i = 0; i < sizeof uuid_pool; i++)
                uuid_pool[i] = (unsigned char)rand();
        uuid_left = sizeof uuid_pool;
    }
    unsigned char b[16];
    memcpy(b, uuid_pool + sizeof uuid_pool - uuid_left, sizeof b);
    uuid_left -= sizeof b;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = 0;
}

const char *kc_query(json_t *q, const char *name) { return json_string_value(json_object_get(q, name)); }

bool kc_query_bool(json_t *q, const char *name)
{
    const char *v = kc_query(q, name);
    return v && (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

void kc_cause(json_t *causes, const char *field, const char *reason, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_array_append_new(causes, json_pack("{s:s,s:s,s:s}", "reason", reason, "message", msg, "field", field));
}

void kc_resp_release(struct kc_resp *r)
{
    free(r->body);
    json_decref(r->json);
    free(r->warning);
    free(r->location);
    free(r->etag);
    if (r->stream)
        kc_watch_free(r->stream);
    if (r->reader_free)
        r->reader_free(r->reader_ctx);
    memset(r, 0, sizeof *r);
}

void kc_resp_raw(struct kc_resp *r, int code, const char *ctype, char *body, size_t len)
{
    free(r->body);
    json_decref(r->json);
    r->json = NULL;
    r->code = code;
    r->content_type = ctype;
    r->body = body;
    r->body_len = len;
}

static void resp_json(struct kc_resp *r, int code, json_t *body, bool exclusive)
{
    /* In-process callers take a 2xx answer as the tree itself when nobody else holds it (the
     * caller may then keep and modify it), or not at all when they asked for no body. */
    if (r->keep_json && code >= 200 && code < 300 && body &&
        (r->discard_json || exclusive || body->refcount == 1)) {
        free(r->body);
        r->body = NULL;
        r->body_len = 0;
        json_decref(r->json);
        r->json = r->discard_json ? NULL : body;
        if (r->discard_json)
            json_decref(body);
        r->code = code;
        r->content_type = "application/json";
        return;
    }
    size_t len = 0;
    char *s = kc_json_dump(body, &len);
    json_decref(body);
    if (!s) {
        kc_resp_raw(r, 500, "text/plain", strdup("out of memory"), 13);
        return;
    }
    kc_resp_raw(r, code, "application/json", s, len);
}

void kc_resp_json(struct kc_resp *r, int code, json_t *body) { resp_json(r, code, body, false); }

void kc_resp_json_own(struct kc_resp *r, int code, json_t *body) { resp_json(r, code, body, true); }

void kc_resp_status(struct kc_resp *r, int code, const char *reason, const char *message, const char *name,
                    const char *group, const char *details_kind, json_t *causes)
{
    json_t *st = json_pack("{s:s,s:s,s:{},s:s,s:s,s:s,s:i}", "kind", "Status", "apiVersion", "v1", "metadata",
                           "status", code < 400 ? "Success" : "Failure", "message", message ? message : "",
                           "reason", reason ? reason : "", "code", code);
    if (name || details_kind || causes) {
        json_t *d = json_object();
        if (name)
            json_object_set_new(d, "name", json_string(name));
        if (group && *group)
            json_object_set_new(d, "group", json_string(group));
        if (details_kind)
            json_object_set_new(d, "kind", json_string(details_kind));
        if (causes)
            json_object_set_new(d, "causes", causes);
        json_object_set_new(st, "details", d);
    }
    if (!reason || !*reason)
        json_object_del(st, "reason");
    kc_resp_json(r, code, st);
}

void kc_resp_err(struct kc_resp *r, const struct kc_err *e)
{
    int code = e->code ? e->code : 500;
    const char *reason = e->reason[0] ? e->reason : "InternalError";
    kc_resp_status(r, code, reason, e->message, NULL, NULL, NULL, NULL);
}
