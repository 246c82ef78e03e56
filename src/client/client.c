/* client.c — struct kc_client: a transport plus a client-side rate limit,
 * the JSON conveniences (Status → KC_E* mapping), path and URL helpers,
 * and the watch line splitter the transports share (client_int.h).
 *
 * Rate limit: a token bucket as client-go's (qps tokens a second, at most
 * burst stored). A caller that finds the bucket empty reserves a token
 * (the count goes negative) and sleeps outside the lock until its turn, so
 * waiting callers are served in order without a thread of our own. Only
 * kc_client_request (and the conveniences) pay; watches do not.
 *
 * 429 Too Many Requests with a Retry-After is retried (up to 3 times,
 * sleeping Retry-After seconds, at most 5 s each), as client-go does; the
 * server answers 429 before doing anything, so even POSTs are safe to
 * repeat.
 */
#include "client/client.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client_int.h"
#include "util/jsonw.h"
#include "util/jsonparse.h"

#define MAX_429_RETRIES 3

struct kc_client {
    const struct kc_transport_ops *ops;
    void *impl;
    char *user_agent;
    pthread_mutex_t rl_mu;
    double qps, burst, tokens, last; /* last refill, monotonic seconds */
};

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

struct kc_client *kc_client_new(const struct kc_transport_ops *ops, void *impl, double qps, int burst,
                                const char *user_agent)
{
    if (!ops)
        return NULL;
    struct kc_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->ops = ops;
    c->impl = impl;
    c->user_agent = strdup(user_agent ? user_agent : "kubec");
    if (!c->user_agent) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->rl_mu, NULL);
    c->qps = qps;
    c->burst = burst >= 1 ? burst : 1;
    c->tokens = c->burst;
    c->last = mono_now();
    return c;
}

void kc_client_free(struct kc_client *c)
{
    if (!c)
        return;
    if (c->ops->free)
        c->ops->free(c->impl);
    pthread_mutex_destroy(&c->rl_mu);
    free(c->user_agent);
    free(c);
}

const char *kc_client_user_agent(const struct kc_client *c) { return c->user_agent; }

bool kc_client_in_process(const struct kc_client *c) { return c && c->ops && !strcmp(c->ops->name, "inproc"); }

void kc_client_resp_release(struct kc_client_resp *r)
{
    if (!r)
        return;
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

/* Takes one token, sleeping until it is ours. */
static void rate_wait(struct kc_client *c)
{
    if (c->qps <= 0)
        return;
    pthread_mutex_lock(&c->rl_mu);
    double now = mono_now();
    c->tokens += (now - c->last) * c->qps;
    if (c->tokens > c->burst)
        c->tokens = c->burst;
    c->last = now;
    c->tokens -= 1;
    double wait = c->tokens < 0 ? -c->tokens / c->qps : 0;
    pthread_mutex_unlock(&c->rl_mu);
    sleep_s(wait);
}

/* One request with rate limiting and 429 retries: bytes (body/len) or, when jbody_mode, a json_t body
 * through the transport's request_json. */
static int do_request(struct kc_client *c, const char *method, const char *path, const char *ctype, const char *body,
                      size_t len, bool jbody_mode, json_t *jbody, enum kc_want want, struct kc_client_resp *out,
                      struct kc_err *err)
{
    memset(out, 0, sizeof *out);
    if (!path || !*path)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "%s: empty request path (too long for its buffer?)",
                          method);
    for (int attempt = 0;; attempt++) {
        rate_wait(c);
        memset(out, 0, sizeof *out);
        int rc = jbody_mode ? c->ops->request_json(c->impl, method, path, ctype, jbody, want, out, err)
                            : c->ops->request(c->impl, method, path, ctype, body, len, out, err);
        if (rc || out->code != 429 || out->retry_after <= 0 || attempt >= MAX_429_RETRIES)
            return rc;
        int s = out->retry_after > 5 ? 5 : out->retry_after;
        kc_client_resp_release(out);
        sleep_s(s);
    }
}

int kc_client_request(struct kc_client *c, const char *method, const char *path, const char *ctype,
                      const char *body, size_t len, struct kc_client_resp *out, struct kc_err *err)
{
    return do_request(c, method, path, ctype, body, len, false, NULL, KC_WANT_NONE, out, err);
}

int kc_client_watch(struct kc_client *c, const char *path, kc_watch_line_fn fn, void *ctx, atomic_bool *stop,
                    int *code, struct kc_err *err)
{
    if (code)
        *code = 0;
    if (!path || !*path)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "watch: empty request path");
    return c->ops->watch(c->impl, path, fn, ctx, stop, code, err);
}

struct obj_adapter {
    kc_watch_obj_fn fn;
    void *ctx;
    bool bad;
};

static int parse_line(void *ctx, const char *line, size_t len)
{
    struct obj_adapter *a = ctx;
    json_t *ev = kc_json_loadb(line, len, 0, NULL);
    const char *type = json_string_value(json_object_get(ev, "type"));
    json_t *obj = json_object_get(ev, "object");
    int r;
    if (!type || !json_is_object(obj)) {
        a->bad = true;
        r = 1;
    } else {
        r = a->fn(a->ctx, type, obj);
    }
    json_decref(ev);
    return r;
}

int kc_client_watch_obj(struct kc_client *c, const char *path, kc_watch_obj_fn fn, void *ctx, atomic_bool *stop,
                        int *code, struct kc_err *err)
{
    if (code)
        *code = 0;
    if (!path || !*path)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "watch: empty request path");
    if (c->ops->watch_obj)
        return c->ops->watch_obj(c->impl, path, fn, ctx, stop, code, err);
    struct obj_adapter a = {.fn = fn, .ctx = ctx};
    int rc = c->ops->watch(c->impl, path, parse_line, &a, stop, code, err);
    if (!rc && a.bad)
        rc = kc_err_set(err, KC_EIO, 500, "InternalError", "watch: malformed event");
    return rc;
}

/* ---------- Status → KC_E* ---------- */

int kc_client_status_error(const struct kc_client_resp *r, struct kc_err *err)
{
    const char *reason = "", *message = "";
    json_t *st = r->body && r->len ? kc_json_loadb(r->body, r->len, 0, NULL) : NULL;
    if (json_is_object(st)) {
        const char *s = json_string_value(json_object_get(st, "reason"));
        reason = s ? s : "";
        s = json_string_value(json_object_get(st, "message"));
        message = s ? s : "";
    }
    int rc;
    switch (r->code) {
    case 404:
        rc = KC_ENOTFOUND;
        break;
    case 409:
        rc = !strcmp(reason, "AlreadyExists") ? KC_EEXISTS : KC_ECONFLICT;
        break;
    case 410:
        rc = KC_ECOMPACTED;
        break;
    case 422:
        rc = KC_EINVALID;
        break;
    default:
        rc = KC_EIO;
        break;
    }
    if (!*message) {
        /* not a Status: quote the start of the body so the log shows what came back */
        size_t n = r->body ? (r->len > 200 ? 200 : r->len) : 0;
        rc = kc_err_set(err, rc, r->code, *reason ? reason : "Unknown", "HTTP %d: %.*s", r->code, (int)n,
                        r->body ? r->body : "");
    } else {
        rc = kc_err_set(err, rc, r->code, reason, "%s", message);
    }
    json_decref(st);
    return rc;
}

/* ---------- JSON conveniences ---------- */

static int client_json(struct kc_client *c, const char *method, const char *path, const char *ctype, json_t *body,
                       json_t **out, bool read_only, struct kc_err *err)
{
    if (out)
        *out = NULL;
    if (c->ops->request_json) {
        struct kc_client_resp r;
        int rc = do_request(c, method, path, body ? (ctype ? ctype : "application/json") : NULL, NULL, 0, true,
                            body, !out ? KC_WANT_NONE : read_only ? KC_WANT_SHARED : KC_WANT_OWN, &r, err);
        if (!rc && (r.code < 200 || r.code > 299))
            rc = kc_client_status_error(&r, err);
        else if (!rc && out) {
            *out = r.json;
            r.json = NULL;
            if (!*out)
                rc = kc_err_set(err, KC_EIO, 500, "InternalError", "%s %s: empty response", method, path);
        }
        kc_client_resp_release(&r);
        return rc;
    }
    char *s = NULL;
    size_t len = 0;
    if (body) {
        s = kc_json_dumps(body, &len);
        if (!s)
            return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "request body cannot be serialised");
    }
    struct kc_client_resp r;
    int rc = kc_client_request(c, method, path, body ? (ctype ? ctype : "application/json") : NULL, s, len, &r,
                               err);
    free(s);
    if (rc) {
        kc_client_resp_release(&r);
        return rc;
    }
    if (r.code < 200 || r.code > 299) {
        rc = kc_client_status_error(&r, err);
        kc_client_resp_release(&r);
        return rc;
    }
    if (out) {
        json_error_t je;
        *out = kc_json_loadb(r.body ? r.body : "", r.len, 0, &je);
        if (!*out)
            rc = kc_err_set(err, KC_EIO, 500, "InternalError", "%s %s: response is not JSON: %s", method, path,
                            je.text);
    }
    kc_client_resp_release(&r);
    return rc;
}

int kc_client_json(struct kc_client *c, const char *method, const char *path, const char *ctype, json_t *body,
                   json_t **out, struct kc_err *err)
{
    return client_json(c, method, path, ctype, body, out, false, err);
}

int kc_client_create_ro(struct kc_client *c, const char *path, json_t *obj, json_t **out, struct kc_err *err)
{
    return client_json(c, "POST", path, "application/json", obj, out, true, err);
}

int kc_client_update_ro(struct kc_client *c, const char *path, json_t *obj, json_t **out, struct kc_err *err)
{
    return client_json(c, "PUT", path, "application/json", obj, out, true, err);
}

int kc_client_patch_ro(struct kc_client *c, const char *path, const char *ctype, json_t *patch, json_t **out,
                       struct kc_err *err)
{
    return client_json(c, "PATCH", path, ctype ? ctype : "application/merge-patch+json", patch, out, true, err);
}

int kc_client_get(struct kc_client *c, const char *path, json_t **out, struct kc_err *err)
{
    return kc_client_json(c, "GET", path, NULL, NULL, out, err);
}

int kc_client_create(struct kc_client *c, const char *path, json_t *obj, json_t **out, struct kc_err *err)
{
    return kc_client_json(c, "POST", path, "application/json", obj, out, err);
}

int kc_client_update(struct kc_client *c, const char *path, json_t *obj, json_t **out, struct kc_err *err)
{
    return kc_client_json(c, "PUT", path, "application/json", obj, out, err);
}

int kc_client_patch(struct kc_client *c, const char *path, const char *ctype, json_t *patch, json_t **out,
                    struct kc_err *err)
{
    return kc_client_json(c, "PATCH", path, ctype ? ctype : "application/merge-patch+json", patch, out, err);
}

int kc_client_delete(struct kc_client *c, const char *path, json_t *body, json_t **out, struct kc_err *err)
{
    return kc_client_json(c, "DELETE", path, "application/json", body, out, err);
}

/* ---------- paths and URLs ---------- */

const char *kc_path(char *buf, size_t n, const char *group, const char *version, const char *plural, const char *ns,
                    const char *name, const char *sub)
{
    int k;
    if (!group || !*group)
        k = snprintf(buf, n, "/api/%s", version ? version : "v1");
    else
        k = snprintf(buf, n, "/apis/%s/%s", group, version);
    if (ns && *ns)
        k += snprintf(buf + (k < (int)n ? k : (int)n), k < (int)n ? n - (size_t)k : 0, "/namespaces/%s", ns);
    if (plural && *plural)
        k += snprintf(buf + (k < (int)n ? k : (int)n), k < (int)n ? n - (size_t)k : 0, "/%s", plural);
    if (name && *name)
        k += snprintf(buf + (k < (int)n ? k : (int)n), k < (int)n ? n - (size_t)k : 0, "/%s", name);
    if (sub && *sub)
        k += snprintf(buf + (k < (int)n ? k : (int)n), k < (int)n ? n - (size_t)k : 0, "/%s", sub);
    if (k >= (int)n && n)
        buf[0] = 0; /* a truncated path could address a different object */
    return buf;
}

int kc_url_escape(const char *s, char *out, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                     *p == '-' || *p == '_' || *p == '.' || *p == '~';
        if (o + (plain ? 1 : 3) >= n)
            return KC_ETOOLARGE;
        if (plain) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    if (o >= n)
        return KC_ETOOLARGE;
    out[o] = 0;
    return 0;
}

/* ---------- watch line splitting (client_int.h) ---------- */

void kc_lines_init(struct kc_lines *l, kc_watch_line_fn fn, void *ctx)
{
    kc_buf_init(&l->partial, KC_WATCH_MAX_LINE);
    l->fn = fn;
    l->ctx = ctx;
}

static int emit_line(struct kc_lines *l, char *s, size_t n)
{
    if (n && s[n - 1] == '\r')
        s[--n] = 0;
    if (!n)
        return 0;
    return l->fn(l->ctx, s, n) ? 1 : 0;
}

int kc_lines_feed(struct kc_lines *l, const char *data, size_t n)
{
    while (n) {
        const char *nl = memchr(data, '\n', n);
        size_t k = nl ? (size_t)(nl - data) : n;
        if (kc_buf_append(&l->partial, data, k))
            return KC_ETOOLARGE;
        if (!nl)
            return 0;
        /* copied even when whole, so the callback always gets a NUL-terminated line */
        int rc = emit_line(l, l->partial.data, l->partial.len);
        l->partial.len = 0;
        if (rc)
            return rc;
        data += k + 1;
        n -= k + 1;
    }
    return 0;
}

void kc_lines_release(struct kc_lines *l) { kc_buf_release(&l->partial); }
