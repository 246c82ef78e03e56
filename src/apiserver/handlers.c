/* handlers.c — the verbs on resources: get, list, create, update, patch,
 * delete, deletecollection, and the status / scale / binding subresources.
 *
 * Reads come from the watch cache; writes go to the store with
 * compare-and-swap on the object's revision and then wait for the cache to
 * reach the write's revision (so the next read by the same client sees it).
 * Every failure answers a Kubernetes Status with upstream's reason and
 * wording. Runs on the HTTP connection's thread; no global state but the
 * resource table.
 */
#include "apiserver/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "meta/selector.h"
#include "meta/validation.h"
#include "patch/patch.h"
#include "schema/schema.h"
#include "util/jsonscan.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/jsonparse.h"

int kc_decode_body(struct kc_req *req, json_t **out, struct kc_err *err);
bool kc_ctype_is(const char *ct, const char *want);
void kc_admission_common(const struct kc_resource *res, json_t *obj, json_t *old, json_t *causes);
int kc_admission_mutate(struct kc_server *srv, const struct kc_resource *res, json_t *obj, json_t *old,
                        struct kc_err *err);
int kc_apply_patch(json_t *live, json_t *applied, const struct kc_resource *res, const char *manager, bool force,
                   json_t **out, struct kc_err *err);
void kc_managed_fields_update(json_t *obj, json_t *old, const char *manager, const char *operation,
                              const char *api_version);

void kc_handle_pod_log(struct kc_req *req, struct kc_resp *resp, const char *ns, const char *name);

/* A write without a resourceVersion precondition that loses a compare-and-swap race re-reads and retries
 * (upstream's GuaranteedUpdate retries without a bound); every lost race means another write succeeded, so
 * only one request can starve, and it gives up with 409 after this long. */
#define CAS_RETRY_SECONDS 30.0

/* ---------- small helpers ---------- */

static void make_key(const struct kc_resource *res, const char *ns, const char *name, char *out, size_t n)
{
    if (res->namespaced)
        snprintf(out, n, "%s%s/%s", res->storage_prefix, ns, name);
    else
        snprintf(out, n, "%s%s", res->storage_prefix, name);
}

static void status_for(struct kc_resp *resp, const struct kc_resource *res, int code, const char *reason,
                       const char *name, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void status_for(struct kc_resp *resp, const struct kc_resource *res, int code, const char *reason,
                       const char *name, const char *fmt, ...)
{
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    kc_resp_status(resp, code, reason, msg, name, res->group, res->plural, NULL);
}

static void not_found(struct kc_resp *resp, const struct kc_resource *res, const char *name)
{
    char q[128];
    kc_resource_qname(res, q, sizeof q);
    status_for(resp, res, 404, "NotFound", name, "%s \"%s\" not found", q, name);
}

static void conflict(struct kc_resp *resp, const struct kc_resource *res, const char *name)
{
    char q[128];
    kc_resource_qname(res, q, sizeof q);
    status_for(resp, res, 409, "Conflict", name,
               "Operation cannot be fulfilled on %s \"%s\": the object has been modified; please apply your changes "
               "to the latest version and try again",
               q, name);
}

static void invalid(struct kc_resp *resp, const struct kc_resource *res, const char *name, json_t *causes)
{
    struct kc_buf b;
    kc_buf_init(&b, 1 << 16);
    size_t n = json_array_size(causes), i;
    json_t *c;
    kc_buf_printf(&b, "%s%s%s \"%s\" is invalid: %s", res->kind, *res->group ? "." : "", res->group,
                  name ? name : "", n > 1 ? "[" : "");
    json_array_foreach(causes, i, c)
    {
        kc_buf_printf(&b, "%s%s: %s", i ? ", " : "", kc_jstr(c, "field") ?: "", kc_jstr(c, "message") ?: "");
    }
    if (n > 1)
        kc_buf_putc(&b, ']');
    kc_resp_status(resp, 422, "Invalid", b.data, name, res->group, res->kind, json_incref(causes));
    kc_buf_release(&b);
}

static void respond_obj(struct kc_resp *resp, int code, json_t *obj, kc_rev_t rev)
{
    if (rev > 0) {
        char rv[32];
        snprintf(rv, sizeof rv, "%lld", (long long)rev);
        json_object_set_new(kc_jmeta(obj), "resourceVersion", json_string(rv));
    }
    /* handlers answer their own working tree and only drop it afterwards */
    kc_resp_json_own(resp, code, json_incref(obj));
}

static void set_type_meta(json_t *obj, const struct kc_resource *res)
{
    /* apiVersion and kind lead, as upstream serializes them */
    json_t *copy = json_copy(obj);
    json_object_clear(obj);
    json_object_set_new(obj, "kind", json_string(res->kind));
    json_object_set_new(obj, "apiVersion", json_string(res->api_version));
    json_object_del(copy, "kind");
    json_object_del(copy, "apiVersion");
    json_object_update(obj, copy);
    json_decref(copy);
}

static const char *field_manager(struct kc_req *req, char *buf, size_t n)
{
    const char *fm = kc_query(req->query, "fieldManager");
    if (fm && *fm)
        return fm;
    const char *ua = req->user_agent ? req->user_agent : "unknown";
    size_t len = strcspn(ua, "/");
    if (len >= n)
        len = n - 1;
    memcpy(buf, ua, len);
    buf[len] = 0;
    return buf;
}

static bool dry_run(struct kc_req *req)
{
    const char *d = kc_query(req->query, "dryRun");
    return d && !strcmp(d, "All");
}

/* fieldValidation: Strict (400 on unknown fields), Warn (Warning header), Ignore (drop silently). */
static int check_fields(struct kc_req *req, struct kc_resp *resp, const struct kc_resource *res, json_t *obj)
{
    const char *fv = kc_query(req->query, "fieldValidation");
    if (fv && strcmp(fv, "Strict") && strcmp(fv, "Warn") && strcmp(fv, "Ignore")) {
        char msg[512];
        const char *opts = !strcmp(req->method, "POST") ? "CreateOptions" : !strcmp(req->method, "PUT") ? "UpdateOptions" : "PatchOptions";
        snprintf(msg, sizeof msg,
                 "%s.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"%.200s\": supported values: "
                 "\"Ignore\", \"Strict\", \"Warn\"",
                 opts, fv);
        kc_resp_status(resp, 422, "Invalid", msg, NULL, "meta.k8s.io", opts, NULL);
        return -1;
    }
    if (!res->schema)
        return 0;
    json_t *unknown = json_array(), *types = json_array();
    kc_schema_check(kc_schema_default(), res->schema, obj, unknown, types);
    int rc = 0;
    if (json_array_size(types)) {
        struct kc_buf b;
        kc_buf_init(&b, 1 << 16);
        size_t i;
        json_t *t;
        json_array_foreach(types, i, t)
            kc_buf_printf(&b, "%s%s: %s", i ? ", " : "", kc_jstr(t, "field") ?: "", kc_jstr(t, "message") ?: "");
        char msg[2048];
        snprintf(msg, sizeof msg, "the object could not be decoded: %s", b.data);
        kc_buf_release(&b);
        kc_resp_status(resp, 400, "BadRequest", msg, NULL, NULL, NULL, NULL);
        rc = -1;
    } else if (json_array_size(unknown) && fv && !strcmp(fv, "Strict")) {
        struct kc_buf b;
        kc_buf_init(&b, 1 << 16);
        kc_buf_puts(&b, "strict decoding error: ");
        size_t i;
        json_t *u;
        json_array_foreach(unknown, i, u) kc_buf_printf(&b, "%s%s", i ? ", " : "", json_string_value(u));
        kc_resp_status(resp, 400, "BadRequest", b.data, NULL, NULL, NULL, NULL);
        kc_buf_release(&b);
        rc = -1;
    } else if (json_array_size(unknown) && (!fv || !strcmp(fv, "Warn"))) {
        struct kc_buf b;
        kc_buf_init(&b, 1 << 16);
        size_t i;
        json_t *u;
        json_array_foreach(unknown, i, u)
        {
            char *esc = NULL;
            json_t *s = json_string(json_string_value(u));
            esc = json_dumps(s, JSON_ENCODE_ANY);
            json_decref(s);
            kc_buf_printf(&b, "%s299 - %s", i ? ", " : "", esc ? esc : "\"\"");
            free(esc);
        }
        free(resp->warning);
        resp->warning = kc_buf_steal(&b, NULL);
    }
    /* unknown fields are dropped, not stored (Ignore, Warn — the default) */
    if (rc == 0 && json_array_size(unknown))
        kc_schema_prune(kc_schema_default(), res->schema, obj);
    json_decref(unknown);
    json_decref(types);
    return rc;
}

/* kind/apiVersion in the body must match the URL when present. */
static int check_type_meta(struct kc_resp *resp, const struct kc_resource *res, json_t *obj, const char *want_kind,
                           const char *want_av)
{
    if (!json_is_object(obj)) {
        kc_resp_status(resp, 400, "BadRequest", "the request body must be a JSON object", NULL, NULL, NULL, NULL);
        return -1;
    }
    const char *av = kc_jstr(obj, "apiVersion");
    const char *kind = kc_jstr(obj, "kind");
    char msg[512];
    if (av && strcmp(av, want_av)) {
        snprintf(msg, sizeof msg,
                 "the API version in the data (%s) does not match the expected API version (%s)", av, want_av);
        kc_resp_status(resp, 400, "BadRequest", msg, NULL, NULL, NULL, NULL);
        return -1;
    }
    if (kind && strcmp(kind, want_kind)) {
        snprintf(msg, sizeof msg, "the kind in the data (%s) does not match the expected kind (%s)", kind,
                 want_kind);
        kc_resp_status(resp, 400, "BadRequest", msg, NULL, NULL, NULL, NULL);
        return -1;
    }
    (void)res;
    return 0;
}

static const struct kc_resource *ns_resource(void) { return kc_resource_find("", "v1", "namespaces"); }

/* 0 if writes into ns are allowed; otherwise fills resp. */
static int check_namespace(struct kc_server *srv, struct kc_resp *resp, const struct kc_resource *res,
                           const char *ns, const char *name)
{
    if (!res->namespaced)
        return 0;
    const struct kc_resource *nsr = ns_resource();
    char key[512];
    make_key(nsr, "", ns, key, sizeof key);
    struct kc_obj *o = kc_cache_get(nsr->storage, key);
    if (!o) {
        kc_resp_status(resp, 404, "NotFound", NULL, ns, "", "namespaces", NULL);
        char msg[512];
        snprintf(msg, sizeof msg, "namespaces \"%s\" not found", ns);
        kc_resp_status(resp, 404, "NotFound", msg, ns, "", "namespaces", NULL);
        return -1;
    }
    bool terminating = strstr(o->json, "\"deletionTimestamp\"") != NULL;
    kc_obj_unref(o);
    if (terminating) {
        char q[128];
        kc_resource_qname(res, q, sizeof q);
        status_for(resp, res, 403, "Forbidden", name,
                   "%s \"%s\" is forbidden: unable to create new content in namespace %s because it is being "
                   "terminated",
                   q, name ? name : "", ns);
        return -1;
    }
    (void)srv;
    return 0;
}

/* A private, complete tree of the cached version: a copy of the version's shared tree when the cache has
 * one (the writer offered it, or an in-process watcher needed it) plus its managedFields, which that tree
 * leaves out, parsed from their span of the stored bytes. A copy costs a seventh of a parse and the
 * managedFields a third (a 3.4 KB Pod: 49 µs parsed, 7 + 17 µs this way); every update, patch, binding
 * and status write starts here. Otherwise (no tree) the bytes are parsed. */
static json_t *private_tree(struct kc_obj *o)
{
    json_t *t = kc_obj_tree_peek(o);
    if (!t)
        return kc_obj_parse(o);
    json_t *j = kc_json_copy(t);
    json_decref(t);
    size_t off, len;
    if (j && kc_json_span(o->json, o->len, "metadata.managedFields", &off, &len) == 0) {
        json_t *mf = kc_json_loadb(o->json + off, len, JSON_DECODE_ANY, NULL);
        if (!mf || json_object_set_new(kc_jmeta(j), "managedFields", mf)) {
            json_decref(j);
            j = NULL;
        }
    }
    return j ? j : kc_obj_parse(o);
}

static json_t *current_obj(const struct kc_resource *res, const char *key, kc_rev_t *rev)
{
    struct kc_obj *o = kc_cache_get(res->storage, key);
    if (!o)
        return NULL;
    json_t *j = private_tree(o);
    *rev = o->rev;
    kc_obj_unref(o);
    if (j && res->from_storage) {
        json_t *c = res->from_storage(j);
        json_decref(j);
        j = c;
    }
    return j;
}

/* The served JSON of a cached object in res's representation (new reference). */
json_t *kc_obj_view(const struct kc_resource *res, const struct kc_obj *o);
json_t *kc_obj_view(const struct kc_resource *res, const struct kc_obj *o)
{
    json_t *j = kc_obj_parse(o);
    if (j && res->from_storage) {
        json_t *c = res->from_storage(j);
        json_decref(j);
        j = c;
    }
    return j;
}

static kc_rev_t parse_rv(const char *s)
{
    if (!s || !*s)
        return 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    return (*end || v < 0) ? -1 : (kc_rev_t)v;
}

static int store_err(struct kc_resp *resp, const struct kc_resource *res, const char *name, int rc,
                     struct kc_err *err)
{
    char q[128];
    kc_resource_qname(res, q, sizeof q);
    switch (rc) {
    case KC_EEXISTS:
        status_for(resp, res, 409, "AlreadyExists", name, "%s \"%s\" already exists", q, name);
        break;
    case KC_ENOTFOUND: not_found(resp, res, name); break;
    case KC_ECONFLICT: conflict(resp, res, name); break;
    default:
        kc_resp_status(resp, 500, "InternalError", err->message[0] ? err->message : "storage error", name,
                       res->group, res->plural, NULL);
    }
    return rc;
}

/* Whether the handler's tree of a write may become the cache's informer tree of that version
 * (kc_cache_offer): only if an in-process watcher will want that tree (else the cache would keep a tree
 * per object for nothing: 150 MB at 10,000 Pods), and only if nobody changes it after the write. HTTP answers are serialised; an
 * in-process caller that takes its answer as its own tree (keep_json without discard/share) may. */
static bool may_offer(const struct kc_resource *res, const struct kc_resp *resp)
{
    return !res->to_storage && res->storage && atomic_load(&res->storage->tree_watchers) > 0 &&
           (!resp->keep_json || resp->discard_json || resp->share_json);
}

/* Writes obj (already prepared) to the store and waits for the cache. offer: obj stays unchanged after
 * the write except its metadata object (may_offer), so the cache may share it. */
static int write_obj(struct kc_server *srv, const struct kc_resource *res, const char *key, json_t *obj,
                     kc_rev_t expect, bool create, bool offer, kc_rev_t *new_rev, struct kc_err *err)
{
    json_object_del(kc_jmeta(obj), "resourceVersion");
    size_t len;
    json_t *stored = res->to_storage ? res->to_storage(obj) : json_incref(obj);
    char *s = kc_json_dump(stored, &len);
    json_decref(stored);
    if (!s)
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    struct kc_offer *of = offer ? kc_cache_offer(srv->cache, key, s, len, obj) : NULL;
    double t0 = kc_mono_now();
    int rc = create ? kc_store_create(srv->store, key, s, len, new_rev, err)
                    : kc_store_update(srv->store, key, s, len, expect, new_rev, NULL, err);
    kc_apimetrics_store(create ? "create" : "update", res, kc_mono_now() - t0);
    if (rc == 0 && kc_cache_wait(srv->cache, *new_rev, 10000) < 0)
        kc_warn("apiserver", "cache did not reach revision %lld within 10s", (long long)*new_rev);
    kc_cache_withdraw(srv->cache, of);
    free(s);
    return rc;
}

static int delete_key(struct kc_server *srv, const struct kc_resource *res, const char *key, kc_rev_t expect,
                      kc_rev_t *rev, struct kc_err *err)
{
    double t0 = kc_mono_now();
    int rc = kc_store_del(srv->store, key, expect, rev, NULL, err);
    kc_apimetrics_store("delete", res, kc_mono_now() - t0);
    if (rc == 0)
        kc_cache_wait(srv->cache, *rev, 10000);
    return rc;
}

/* After a compare-and-swap conflict: the cache may not yet hold the write that won (its event is on the
 * way), and a retry that re-reads the cache at once would conflict again until the retries run out and an
 * unconditional request fails with a 409 it never asked for. Waits until the cache holds the key's current
 * revision (the store's; one read, on a path taken only by a lost race). */
static void catch_up_key(struct kc_server *srv, const char *key)
{
    struct kc_kv kv = {0};
    struct kc_err err = {0};
    kc_rev_t want = 0;
    if (kc_store_get(srv->store, key, &kv, &err) == 0)
        want = kv.mod_rev;
    else
        want = srv->store->ops->current_rev(srv->store); /* deleted meanwhile: the delete's revision */
    kc_kv_release(&kv);
    if (want > 0)
        kc_cache_wait(srv->cache, want, 2000);
}

/* ---------- creation timeline stamps ----------
 * Pods, ReplicaSets and Deployments carry the annotation kubec.io/timeline: a JSON object of stage →
 * RFC 3339 time with microseconds, written by the owner of each stage (docs/timeline.md). The API
 * server stamps "created" on create and "scheduled" on binding; status writers (the agent, the
 * deployment controller) may add stages through the status subresource, which otherwise ignores
 * metadata changes. */
#define KC_TIMELINE_ANN "kubec.io/timeline"

static bool timeline_kind(const struct kc_resource *res)
{
    return (!*res->group && !strcmp(res->kind, "Pod")) ||
           (!strcmp(res->group, "apps") && (!strcmp(res->kind, "ReplicaSet") || !strcmp(res->kind, "Deployment")));
}

/* fresh: start a new timeline (on create: copied annotations, e.g. a ReplicaSet's from its Deployment,
 * must not carry the owner's stages) */
static void timeline_stamp(json_t *obj, const char *stage, bool fresh)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char now[40];
    kc_time_rfc3339_micro(&ts, now, sizeof now);
    json_t *meta = kc_jmeta(obj);
    json_t *ann = json_object_get(meta, "annotations");
    if (!json_is_object(ann)) {
        ann = json_object();
        json_object_set_new(meta, "annotations", ann);
    }
    json_t *tl = fresh ? json_object()
                       : kc_json_loads(json_string_value(json_object_get(ann, KC_TIMELINE_ANN)) ?: "{}", 0, NULL);
    if (!json_is_object(tl)) {
        json_decref(tl);
        tl = json_object();
    }
    if (!json_object_get(tl, stage))
        json_object_set_new(tl, stage, json_string(now));
    char *s = kc_json_dump(tl, NULL);
    json_object_set_new(ann, KC_TIMELINE_ANN, json_string(s ? s : "{}"));
    free(s);
    json_decref(tl);
}

/* Status writes may add timeline stages: merge the stages of the sent annotation (in) into merged's. */
static void timeline_merge(const char *in, json_t *merged)
{
    if (!in)
        return;
    json_t *add = kc_json_loads(in, 0, NULL);
    if (!json_is_object(add)) {
        json_decref(add);
        return;
    }
    json_t *meta = kc_jmeta(merged);
    json_t *ann = json_object_get(meta, "annotations");
    if (!json_is_object(ann)) {
        ann = json_object();
        json_object_set_new(meta, "annotations", ann);
    }
    json_t *tl = kc_json_loads(json_string_value(json_object_get(ann, KC_TIMELINE_ANN)) ?: "{}", 0, NULL);
    if (!json_is_object(tl)) {
        json_decref(tl);
        tl = json_object();
    }
    const char *k;
    json_t *v;
    json_object_foreach(add, k, v) if (json_is_string(v) && !json_object_get(tl, k)) json_object_set(tl, k, v);
    char *s = kc_json_dump(tl, NULL);
    json_object_set_new(ann, KC_TIMELINE_ANN, json_string(s ? s : "{}"));
    free(s);
    json_decref(tl);
    json_decref(add);
}

/* ---------- create ---------- */

static void gen_name(const char *prefix, char *out, size_t n)
{
    static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
    unsigned char r[5];
    char uuid[37];
    kc_uuid(uuid); /* random source */
    for (int i = 0; i < 5; i++)
        r[i] = (unsigned char)uuid[i * 2] ^ (unsigned char)uuid[i * 2 + 1] ^ (unsigned char)rand();
    char sfx[6];
    for (int i = 0; i < 5; i++)
        sfx[i] = alphabet[r[i] % (sizeof alphabet - 1)];
    sfx[5] = 0;
    snprintf(out, n, "%.*s%s", 58, prefix, sfx);
}

/* Creates obj (a parsed body) in ns; shared by POST and apply-to-missing. */
static void do_create(struct kc_req *req, struct kc_resp *resp, const struct kc_resource *res, const char *ns,
                      json_t *obj, const char *operation)
{
    struct kc_server *srv = req->srv;
    json_t *meta = kc_jmeta(obj);
    const char *name = kc_jstr(meta, "name");
    char namebuf[300];
    if (!name) {
        const char *gn = kc_jstr(meta, "generateName");
        if (!gn) {
            json_t *causes = json_array();
            kc_cause(causes, "metadata.name", "FieldValueRequired", "Required value: name or generateName is required");
            invalid(resp, res, "", causes);
            json_decref(causes);
            return;
        }
        gen_name(gn, namebuf, sizeof namebuf);
        json_object_set_new(meta, "name", json_string(namebuf));
        name = namebuf;
    }
    char namecopy[300];
    snprintf(namecopy, sizeof namecopy, "%s", name);
    name = namecopy;
    if (res->namespaced) {
        const char *ons = kc_jstr(meta, "namespace");
        if (ons && strcmp(ons, ns)) {
            kc_resp_status(resp, 400, "BadRequest",
                           "the namespace of the provided object does not match the namespace sent on the request",
                           NULL, NULL, NULL, NULL);
            return;
        }
        json_object_set_new(meta, "namespace", json_string(ns));
    } else {
        json_object_del(meta, "namespace");
    }
    const char *rv = kc_jstr(meta, "resourceVersion");
    if (rv) {
        kc_resp_status(resp, 400, "BadRequest", "resourceVersion should not be set on objects to be created", NULL,
                       NULL, NULL, NULL);
        return;
    }
    if (check_namespace(srv, resp, res, ns, name))
        return;
    char uid[37], now[32];
    kc_uuid(uid);
    kc_now_rfc3339(now, sizeof now);
    json_object_set_new(meta, "uid", json_string(uid));
    json_object_set_new(meta, "creationTimestamp", json_string(now));
    json_object_del(meta, "deletionTimestamp");
    json_object_del(meta, "deletionGracePeriodSeconds");
    if (res->spec_generation)
        json_object_set_new(meta, "generation", json_integer(1));
    else
        json_object_del(meta, "generation");
    if (timeline_kind(res))
        timeline_stamp(obj, "created", true);
    /* status is the server's on create, except a Node's: kubelets register with capacity (as upstream) */
    if ((res->subresources & KC_SUB_STATUS) && strcmp(res->kind, "Node"))
        json_object_del(obj, "status");
    struct kc_err err = {0};
    if (kc_admission_mutate(srv, res, obj, NULL, &err)) {
        kc_resp_err(resp, &err);
        return;
    }
    json_t *causes = json_array();
    kc_admission_common(res, obj, NULL, causes);
    if (json_array_size(causes)) {
        invalid(resp, res, name, causes);
        json_decref(causes);
        return;
    }
    json_decref(causes);
    char mbuf[128];
    kc_managed_fields_update(obj, NULL, field_manager(req, mbuf, sizeof mbuf), operation, res->api_version);
    set_type_meta(obj, res);
    if (dry_run(req)) {
        respond_obj(resp, 201, obj, 0);
        return;
    }
    char key[600];
    make_key(res, ns, name, key, sizeof key);
    kc_rev_t rev = 0;
    int rc = write_obj(srv, res, key, obj, 0, true, may_offer(res, resp), &rev, &err);
    if (rc) {
        store_err(resp, res, name, rc, &err);
        return;
    }
    /* the cache already holds the served bytes of this revision: answer with them */
    if (res == ns_resource())
        kc_nsctl_kick(srv); /* its default ServiceAccount */
    /* HTTP clients get the cached bytes; in-process callers the tree itself */
    struct kc_obj *o = res->from_storage || resp->keep_json ? NULL : kc_cache_get(res->storage, key);
    if (o && o->rev == rev) {
        kc_resp_raw(resp, 201, "application/json", strndup(o->json, o->len), o->len);
        kc_obj_unref(o);
        return;
    }
    kc_obj_unref(o);
    respond_obj(resp, 201, obj, rev);
}

static void handle_create(struct kc_req *req, struct kc_resp *resp, const struct kc_resource *res, const char *ns)
{
    struct kc_err err = {0};
    json_t *obj = NULL;
    if (kc_decode_body(req, &obj, &err)) {
        kc_resp_err(resp, &err);
        return;
    }
    if (check_type_meta(resp, res, obj, res->kind, res->api_version) == 0 && check_fields(req, resp, res, obj) == 0)
        do_create(req, resp, res, ns, obj, "Update");
    json_decref(obj);
}

/* ---------- update (shared by PUT, PATCH and subresources) ---------- */

/* UPD_DELETE: the server's own graceful-delete write, which may set deletionTimestamp. */
enum upd_mode { UPD_MAIN, UPD_STATUS, UPD_DELETE };

static bool spec_changed(json_t *a, json_t *b)
{
    json_t *sa = json_object_get(a, "spec"), *sb = json_object_get(b, "spec");
    if (!sa && !sb)
        return false;
    if (!sa || !sb)
        return true;
    return !json_equal(sa, sb);
}

/* A new version of cur sharing its subtrees (cur is the request's own copy and is only read afterwards),
 * with what every write changes in place copied one level: the top level, metadata's own members
 * (resourceVersion; managedFields, rebuilt and replaced) and the annotations object (timeline stamps). */
static json_t *sharing_copy(json_t *cur)
{
    json_t *next = json_copy(cur), *meta = json_copy(kc_jmeta(cur));
    json_t *ann = json_object_get(meta, "annotations");
    if (json_is_object(ann))
        json_object_set_new(meta, "annotations", json_copy(ann));
    json_object_set_new(next, "metadata", meta);
    return next;
}

/* Turns `next` (what the client wants) into the object to store, given the
 * current object `cur`: server-owned metadata is kept, status or spec kept
 * depending on the mode, generation bumped on spec changes. */
static void merge_server_fields(const struct kc_resource *res, json_t *next, json_t *cur, enum upd_mode mode)
{
    json_t *nm = kc_jmeta(next), *cm = kc_jmeta(cur);
    static const char *keep[] = {"uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                                 "namespace", "name", "generation"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        if (mode == UPD_DELETE && !strncmp(keep[i], "deletion", 8) && !json_object_get(cm, keep[i]))
            continue;
        json_t *v = json_object_get(cm, keep[i]);
        if (v)
            json_object_set(nm, keep[i], v);
        else
            json_object_del(nm, keep[i]);
    }
    if (mode == UPD_STATUS) {
        /* the status subresource changes status only (and timeline stages, see above) */
        json_t *st = json_incref(json_object_get(next, "status"));
        /* only the sent timeline annotation survives from next's metadata: keep just that string */
        json_t *sent_tl = json_incref(json_object_get(kc_jget(next, "metadata.annotations"), KC_TIMELINE_ANN));
        /* next = cur apart from status */
        json_t *copy = sharing_copy(cur);
        json_object_clear(next);
        json_object_update(next, copy);
        json_decref(copy);
        if (timeline_kind(res))
            timeline_merge(json_string_value(sent_tl), next);
        json_decref(sent_tl);
        if (st)
            json_object_set_new(next, "status", st);
        else
            json_object_del(next, "status");
        return;
    }
    if (res->subresources & KC_SUB_STATUS) {
        json_t *st = json_object_get(cur, "status");
        if (st)
            json_object_set(next, "status", st);
        else
            json_object_del(next, "status");
    }
    if (res->spec_generation && spec_changed(cur, next)) {
        json_int_t g = json_integer_value(json_object_get(cm, "generation"));
        json_object_set_new(nm, "generation", json_integer(g + 1));
    }
}

static bool listed(const char *k, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (!strcmp(k, list[i]))
            return true;
    return false;
}

/* Object a equals object b, ignoring keys listed in skip (NULL-terminated). */
static bool equal_except(json_t *a, json_t *b, const char *const *skip)
{
    if (!json_is_object(a) || !json_is_object(b))
        return json_equal(a, b);
    const char *k;
    json_t *v;
    size_t na = 0, nb = 0;
    json_object_foreach(a, k, v)
    {
        if (listed(k, skip))
            continue;
        na++;
        if (!json_equal(v, json_object_get(b, k)))
            return false;
    }
    json_object_foreach(b, k, v) nb += !listed(k, skip);
    return na == nb;
}

/* Whether a write would change nothing but resourceVersion/managedFields (compared in place: this runs on
 * every update, and copying both objects to delete those keys cost two deep copies per write). */
static bool same_ignoring_rv(json_t *a, json_t *b)
{
    static const char *const top[] = {"metadata", NULL};
    static const char *const meta[] = {"resourceVersion", "managedFields", NULL};
    return equal_except(a, b, top) &&
           equal_except(json_object_get(a, "metadata"), json_object_get(b, "metadata"), meta);
}

/* Deleting and nothing left to wait for: the write becomes the delete.
 * Namespaces also wait for spec.finalizers (the namespace controller); pods in their grace period
 * wait for their node agent, which deletes them with grace 0. */
static bool deleting_without_finalizers(json_t *obj)
{
    json_t *m = json_object_get(obj, "metadata");
    return json_object_get(m, "deletionTimestamp") && json_array_size(json_object_get(m, "finalizers")) == 0 &&
           json_array_size(kc_jget(obj, "spec.finalizers")) == 0 &&
           json_integer_value(json_object_get(m, "deletionGracePeriodSeconds")) == 0;
}

/* A function that produces the desired object from the current one. */
typedef int (*mutate_fn)(void *ctx, json_t *cur, json_t **next, struct kc_resp *resp);

/* The guaranteed-update loop: read current, mutate, validate, CAS-write;
 * on a CAS conflict re-read and retry unless the client pinned a
 * resourceVersion. Answers resp in every case. */
/* result_out: the written object goes there instead of into resp; result_ro: its caller only reads it
 * (may_offer then holds for it as for an answer). */
static void update_loop(struct kc_req *req, struct kc_resp *resp, const struct kc_resource *res, const char *ns,
                        const char *name, enum upd_mode mode, mutate_fn fn, void *ctx, const char *operation,
                        json_t **result_out, bool result_ro)
{
    struct kc_server *srv = req->srv;
    char key[600];
    make_key(res, ns, name, key, sizeof key);
    for (double give_up = kc_mono_now() + CAS_RETRY_SECONDS; kc_mono_now() < give_up;) {
        kc_rev_t cur_rev = 0;
        json_t *cur = current_obj(res, key, &cur_rev);
        if (!cur) {
            not_found(resp, res, name);
            return;
        }
        json_t *next = NULL;
        if (fn(ctx, cur, &next, resp)) {
            json_decref(cur);
            return;
        }
        /* a resourceVersion in the new object is a precondition */
        const char *want = kc_jstr(next, "metadata.resourceVersion");
        bool pinned = want != NULL;
        if (pinned && parse_rv(want) != cur_rev) {
            conflict(resp, res, name);
            json_decref(cur);
            json_decref(next);
            return;
        }
        const char *nname = kc_jstr(next, "metadata.name");
        if (nname && strcmp(nname, name)) {
            char msg[700];
            snprintf(msg, sizeof msg, "the name of the object (%s) does not match the name on the URL (%s)", nname,
                     name);
            kc_resp_status(resp, 400, "BadRequest", msg, NULL, NULL, NULL, NULL);
            json_decref(cur);
            json_decref(next);
            return;
        }
        const char *nns = kc_jstr(next, "metadata.namespace");
        if (res->namespaced && nns && strcmp(nns, ns)) {
            kc_resp_status(resp, 400, "BadRequest",
                           "the namespace of the provided object does not match the namespace sent on the request",
                           NULL, NULL, NULL, NULL);
            json_decref(cur);
            json_decref(next);
            return;
        }
        merge_server_fields(res, next, cur, mode);
        struct kc_err err = {0};
        if (mode != UPD_STATUS && kc_admission_mutate(srv, res, next, cur, &err)) {
            kc_resp_err(resp, &err);
            json_decref(cur);
            json_decref(next);
            return;
        }
        json_t *causes = json_array();
        kc_admission_common(res, next, cur, causes);
        if (json_array_size(causes)) {
            invalid(resp, res, name, causes);
            json_decref(causes);
            json_decref(cur);
            json_decref(next);
            return;
        }
        json_decref(causes);
        json_t *sent_mf = json_object_get(kc_jmeta(next), "managedFields");
        bool mf_changed = sent_mf && !json_equal(sent_mf, json_object_get(kc_jmeta(cur), "managedFields"));
        set_type_meta(next, res);
        if (same_ignoring_rv(cur, next) && !mf_changed) {
            /* nothing changed: no write, no new revision (as upstream) */
            if (result_out)
                *result_out = json_incref(cur);
            else
                respond_obj(resp, 200, cur, cur_rev);
            json_decref(cur);
            json_decref(next);
            return;
        }
        char mbuf[128];
        kc_managed_fields_update(next, cur, field_manager(req, mbuf, sizeof mbuf), operation, res->api_version);
        if (dry_run(req)) {
            if (result_out)
                *result_out = json_incref(next);
            else
                respond_obj(resp, 200, next, cur_rev);
            json_decref(cur);
            json_decref(next);
            return;
        }
        kc_rev_t rev = 0;
        int rc;
        if (deleting_without_finalizers(next)) {
            rc = delete_key(srv, res, key, cur_rev, &rev, &err);
        } else {
            rc = write_obj(srv, res, key, next, cur_rev, false, (!result_out || result_ro) && may_offer(res, resp), &rev,
                           &err);
        }
        json_decref(cur);
        if (rc == KC_ECONFLICT && !pinned) {
            json_decref(next);
            catch_up_key(srv, key);
            continue;
        }
        if (rc) {
            store_err(resp, res, name, rc, &err);
            json_decref(next);
            return;
        }
        if (result_out) {
            char rv[32];
            snprintf(rv, sizeof rv, "%lld", (long long)rev);
            json_object_set_new(kc_jmeta(next), "resourceVersion", json_string(rv));
            *result_out = next;
        } else {
            respond_obj(resp, 200, next, rev);
            json_decref(next);
        }
        return;
    }
    conflict(resp, res, name);
}

struct put_ctx {
    json_t *body;
    enum upd_mode mode;
};

static int put_mutate(void *ctx, json_t *cur, json_t **next, struct kc_resp *resp)
{
    struct put_ctx *p = ctx;
    (void)cur;
    (void)resp;
    *next = kc_json_copy(p->body);
    return 0;
}

static void handle_update(struct kc_req *req, struct kc_resp *resp, const struct kc_resource *res, const char *ns,
                          const char *name, enum upd_mode mode)
{
    struct kc_err err = {0};
    json_t *obj = NULL;
    if (kc_decode_body(req, &obj, &err)) {
        kc_resp_err(resp, &err);
        return;
    }
    if (check_type_meta(resp, res, obj, res->kind, res->api_version) || check_fields(req, resp, res, obj)) {
        json_decref(obj);
        return;
    }
    struct put_ctx pc = {obj, mode};
    update_loop(req, resp, res, ns, name, mode, put_mutate, &pc, "Update", NULL, false);
    json_decref(obj);
}

/* ---------- patch ---------- */

enum patch_type { PT_MERGE, PT_JSON, PT_SMP, PT_APPLY };

struct patch_ctx {
    enum patch_type type;
    json_t *patch;
    const struct kc_resource *res;
    const char *manager;
    bool force;
    enum upd_mode mode;
};

static int patch_mutate(void *ctx, json_t *cur, json_t **next, struct kc_resp *resp)
{
    struct patch_ctx *p = ctx;
    struct kc_err err = {0};
    int rc;
    /* The patch functions read their input and build the result in a deep copy of their own, so the
     * base is a shallow copy of cur with its own metadata object: the live resourceVersion is not a
     * precondition unless the patch sets it. */
    json_t *base = json_copy(cur), *bmeta = json_copy(kc_jmeta(cur));
    json_object_del(bmeta, "resourceVersion");
    json_object_set_new(base, "metadata", bmeta);
    if (!base || !bmeta) {
        json_decref(base);
        kc_resp_status(resp, 500, "InternalError", "out of memory", NULL, NULL, NULL, NULL);
        return -1;
    }
    switch (p->type) {
    case PT_MERGE:
        /* a status patch's result is only read from here on (merge_server_fields takes its status into a
         * copy of cur; no admission runs), so it need not copy what the patch leaves alone */
        rc = p->mode == UPD_STATUS ? kc_merge_patch_shared(base, p->patch, next, &err)
                                   : kc_merge_patch(base, p->patch, next, &err);
        break;
    case PT_JSON: {
        rc = kc_json_patch(cur, p->patch, next, &err);
        /* an unchanged live resourceVersion is no precondition */
        if (!rc) {
            const char *a = kc_jstr(*next, "metadata.resourceVersion");
            const char *b = kc_jstr(cur, "metadata.resourceVersion");
            if (a && b && !strcmp(a, b))
                json_object_del(kc_jmeta(*next), "resourceVersion");
        }
        break;
    }
    case PT_SMP:
        rc = kc_strategic_merge_patch(base, p->patch, kc_schema_patch_ops(kc_schema_default()), p->res->schema, next,
                                      &err);
        break;
    case PT_APPLY: rc = kc_apply_patch(base, p->patch, p->res, p->manager, p->force, next, &err); break;
    default: rc = KC_EINVAL;
    }
    json_decref(base);
    if (rc) {
        /* the patch module sets upstream's code and reason; 500 keeps an empty reason as upstream */
        if (!err.code) {
            err.code = 422;
            snprintf(err.reason, sizeof err.reason, "Invalid");
        }
        kc_resp_status(resp, err.code, err.reason, err.message, NULL, NULL, NULL, NULL);
        return -1;
    }
    if (!json_is_object(*next)) {
        kc_resp_status(resp, 422, "Invalid", "the patch produced something that is not an object", NULL, NULL, NULL,
                       NULL);
        json_decref(*next);
        return -1;
    }
    return 0;
}

static void handle_patch(struct kc_req *req, struct kc_resp *resp, const struct kc_resource *res, const char *ns,
                         const char *name, enum upd_mode mode)
{
    const char *ct = req->content_type;
    struct patch_ctx pc = {.res = res, .mode = mode};
    if (kc_ctype_is(ct, "application/merge-patch+json"))
        pc.type = PT_MERGE;
    else if (kc_ctype_is(ct, "application/json-patch+json"))
        pc.type = PT_JSON;
    else if (kc_ctype_is(ct, "application/strategic-merge-patch+json"))
        pc.type = PT_SMP;
    else if (kc_ctype_is(ct, "application/apply-patch+yaml") || kc_ctype_is(ct, "application/apply-patch+cbor"))
        pc.type = PT_APPLY;
    else {
        char msg[512];
        snprintf(msg, sizeof msg,
                 "the body of the request was in an unknown format - accepted media types include: "
                 "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, "
                 "application/strategic-merge-patch+json");
        kc_resp_status(resp, 415, "UnsupportedMediaType", msg, NULL, NULL, NULL, NULL);
        return;
    }
    struct kc_err err = {0};
    json_t *patch = NULL;
    if (pc.type == PT_APPLY) {
        struct kc_req r2 = *req;
        r2.content_type = "application/apply-patch+yaml";
        if (kc_decode_body(&r2, &patch, &err)) {
            kc_resp_err(resp, &err);
            return;
        }
    } else if (kc_req_json(req, &patch, &err)) {
        kc_resp_err(resp, &err);
        return;
    }
    if (pc.type == PT_JSON && !json_is_array(patch)) {
        kc_resp_status(resp, 400, "BadRequest",
                       "json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp (a JSON patch "
                       "must be an array of operations)",
                       NULL, NULL, NULL, NULL);
        json_decref(patch);
        return;
    }
    if (pc.type != PT_JSON && !json_is_object(patch)) {
        kc_resp_status(resp, 400, "BadRequest", "the patch must be a JSON object", NULL, NULL, NULL, NULL);
        json_decref(patch);
        return;
    }
    char mbuf[128];
    pc.manager = field_manager(req, mbuf, sizeof mbuf);
    pc.force = kc_query_bool(req->query, "force");
    pc.patch = patch;
    if (pc.type == PT_APPLY) {
        if (!kc_query(req->query, "fieldManager")) {
            kc_resp_status(resp, 400, "BadRequest",
                           "PATCH /apply requires fieldManager to be set on the request (fieldManager query "
                           "parameter)",
                           NULL, NULL, NULL, NULL);
            json_decref(patch);
            return;
        }
        if (check_type_meta(resp, res, patch, res->kind, res->api_version) || check_fields(req, resp, res, patch)) {
            json_decref(patch);
            return;
        }
        char key[600];
        make_key(res, ns, name, key, sizeof key);
        struct kc_obj *o = kc_cache_get(res->storage, key);
        if (!o && mode == UPD_MAIN) {
            json_t *obj = kc_json_copy(patch);
            json_t *meta = kc_jmeta(obj);
            if (!kc_jstr(meta, "name"))
                json_object_set_new(meta, "name", json_string(name));
            do_create(req, resp, res, ns, obj, "Apply");
            json_decref(obj);
            json_decref(patch);
            return;
        }
        kc_obj_unref(o);
    }
    update_loop(req, resp, res, ns, name, mode, patch_mutate, &pc, pc.type == PT_APPLY ? "Apply" : "Update", NULL,
                false);
    json_decref(patch);
}

/* ---------- get / list ---------- */

static const char *label_lookup(void *obj, const char *key)
{
    struct kc_obj *o = obj;
    return o->labels ? json_string_value(json_object_get(o->labels, key)) : NULL;
}

static const char *field_lookup(void *obj, const char *key) { return kc_obj_field(obj, key); }

int kc_sel_parse(struct kc_req *req, const struct kc_resource *res, struct sel *s, struct kc_resp *resp)
{
    struct kc_err err = {0};
    memset(s, 0, sizeof *s);
    if (kc_label_selector_parse(kc_query(req->query, "labelSelector"), &s->ls, &err)) {
        kc_resp_status(resp, 400, "BadRequest", err.message, NULL, NULL, NULL, NULL);
        return -1;
    }
    const char *fsq = kc_query(req->query, "fieldSelector");
    char fsbuf[4096];
    if (fsq && res->field_to_storage) {
        /* rewrite field names into the stored form (events.k8s.io regarding.* → involvedObject.*) */
        struct kc_buf b;
        kc_buf_init(&b, sizeof fsbuf - 1);
        char *copy = strdup(fsq), *save = NULL;
        for (char *term = strtok_r(copy, ",", &save); term; term = strtok_r(NULL, ",", &save)) {
            size_t nl = strcspn(term, "!=");
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(nl < 255 ? nl : 255), term);
            kc_buf_printf(&b, "%s%s%s", b.len ? "," : "", res->field_to_storage(name), term + nl);
        }
        free(copy);
        snprintf(fsbuf, sizeof fsbuf, "%s", b.data ? b.data : "");
        kc_buf_release(&b);
        fsq = fsbuf;
        res = kc_resource_by_kind("", res->kind) ? kc_resource_by_kind("", res->kind) : res;
    }
    if (kc_field_selector_parse(fsq, &s->fs, &err)) {
        kc_label_selector_free(s->ls);
        kc_resp_status(resp, 400, "BadRequest", err.message, NULL, NULL, NULL, NULL);
        return -1;
    }
    const char *allowed[40];
    size_t n = 0;
    allowed[n++] = "metadata.name";
    allowed[n++] = "metadata.namespace";
    for (size_t i = 0; res->field_labels && res->field_labels[i] && n < 38; i++)
        allowed[n++] = res->field_labels[i];
    allowed[n] = NULL;
    if (kc_field_selector_check(s->fs, allowed, &err)) {
        kc_label_selector_free(s->ls);
        kc_field_selector_free(s->fs);
        char msg[1200];
        snprintf(msg, sizeof msg, "%s", err.message);
        kc_resp_status(resp, 400, "BadRequest", msg, NULL, NULL, NULL, NULL);
        return -1;
    }
    return 0;
}

void kc_sel_free(struct sel *s)
{
    kc_label_selector_free(s->ls);
    kc_field_selector_free(s->fs);
}

bool kc_sel_match(const struct sel *s, struct kc_obj *o)
{
    return kc_label_selector_matches(s->ls, label_lookup, o) && kc_field_selector_matches(s->fs, field_lookup, o);
}

static void handle_get(struct kc_req *req, struct kc_resp *resp, const struct kc_resource *res, const char *ns,
                       const char *name)
{
    char key[600];
    make_key(res, ns, name, key, sizeof key);
    struct kc_obj *o = kc_cache_get(res->storage, key);
    if (!o) {
        not_found(resp, res, name);
        return;
    }
    if (kc_accept_table(req->accept)) {
        json_t *t = kc_table_new(res, true);
        json_t *j = kc_obj_view(res, o);
        kc_table_add_row(t, res, j, time(NULL));
        json_decref(j);
        char rv[32];
        snprintf(rv, sizeof rv, "%lld", (long long)o->rev);
        json_object_set_new(json_object_get(t, "metadata"), "resourceVersion", json_string(rv));
        kc_resp_json(resp, 200, t);
    } else if (res->from_storage) {
        kc_resp_json(resp, 200, kc_obj_view(res, o));
    } else {
        kc_resp_raw(resp, 200, "application/json", strndup(o->json, o->len), o->len);
    }
    kc_obj_unref(o);
}

/* continue tokens: base64url? we keep it simple and opaque: "<rev>:<lastkey>" hex-encoded */
static char *encode_continue(kc_rev_t rev, const char *key)
{
    struct kc_buf b;
    kc_buf_init(&b, 1 << 16);
    kc_buf_printf(&b, "%lld:", (long long)rev);
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        kc_buf_printf(&b, "%02x", *p);
    return kc_buf_steal(&b, NULL);
}

static int decode_continue(const char *tok, kc_rev_t *rev, char *key, size_t n)
{
    char *colon = strchr(tok, ':');
    if (!colon)
        return -1;
    *rev = strtoll(tok, NULL, 10);
    const char *h = colon + 1;
    size_t len = strlen(h);
    if (len % 2 || len / 2 >= n)
        return -1;
    for (size_t i = 0; i < len / 2; i++) {
        unsigned v;
        if (sscanf(h + 2 * i, "%2x", &v) != 1)
            return -1;
        key[i] = (char)v;
    }
    key[len / 2] = 0;
    return 0;
}

/* Objects under prefix as of revision at (keys after `after`, may be NULL) from the store's history.
 * Answers resp (410 with expired_msg when compacted) and returns -1 on failure. */
static int list_from_store(struct kc_req *req, struct kc_resp *resp, const struct kc_resource *res,
                           const char *prefix, kc_rev_t at, const char *after, const char *expired_msg,
                           struct kc_obj ***objs, size_t *n, kc_rev_t *rev)
{
    struct kc_kv_list l = {0};
    struct kc_err err = {0};
    int rc = req->srv->store->ops->list(req->srv->store, prefix, at, after, 0, &l, rev, NULL, &err);
    if (rc == KC_ECOMPACTED) {
        kc_resp_status(resp, 410, "Expired", expired_msg, NULL, NULL, NULL, NULL);
        return -1;
    }
    if (rc) {
        kc_resp_err(resp, &err);
        return -1;
    }
    *objs = calloc(l.n + 1, sizeof **objs);
    *n = 0;
    for (size_t i = 0; i < l.n; i++) {
        struct kc_obj *o = kc_obj_build(res->storage, &l.items[i]);
        if (o)
            (*objs)[(*n)++] = o;
    }
    kc_kv_list_release(&l);
    return 0;
}

static void handle_list(struct kc_req *req, struct kc_resp *resp, const struct kc_resource *res, const char *ns)
{
    struct sel s;
    if (kc_sel_parse(req, res, &s, resp))
        return;
    char prefix[300];
    if (res->namespaced && ns)
        snprintf(prefix, sizeof prefix, "%s%s/", res->storage_prefix, ns);
    else
        snprintf(prefix, sizeof prefix, "%s", res->storage_prefix);
    const char *rvq = kc_query(req->query, "resourceVersion");
    kc_rev_t want = parse_rv(rvq);
    if (want < 0) {
        kc_resp_status(resp, 400, "BadRequest", "invalid resourceVersion: must be a decimal number", NULL, NULL,
                       NULL, NULL);
        kc_sel_free(&s);
        return;
    }
    if (want > 0 && kc_cache_wait(req->srv->cache, want, 3000) < 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "Too large resource version: %lld, current: %lld", (long long)want,
                 (long long)kc_cache_rev(req->srv->cache));
        kc_resp_status(resp, 504, "Timeout", msg, NULL, NULL, NULL, NULL);
        kc_sel_free(&s);
        return;
    }
    struct kc_obj **objs = NULL;
    size_t n = 0;
    kc_rev_t rev = 0;
    const char *match = kc_query(req->query, "resourceVersionMatch");
    if (match && strcmp(match, "Exact") && strcmp(match, "NotOlderThan")) {
        kc_resp_status(resp, 400, "BadRequest", "resourceVersionMatch: Unsupported value: must be Exact or NotOlderThan",
                       NULL, NULL, NULL, NULL);
        kc_sel_free(&s);
        return;
    }
    if (match && !strcmp(match, "Exact") && want > 0) {
        /* a consistent list as of an older revision comes from the store's history */
        if (list_from_store(req, resp, res, prefix, want, NULL, "The resourceVersion for the provided list is too old.",
                            &objs, &n, &rev)) {
            kc_sel_free(&s);
            return;
        }
    } else if (kc_cache_list(req->srv->cache, res->storage, prefix, &objs, &n, &rev)) {
        kc_resp_status(resp, 500, "InternalError", "out of memory", NULL, NULL, NULL, NULL);
        kc_sel_free(&s);
        return;
    }
    long limit = 0;
    if (kc_query(req->query, "limit"))
        limit = atol(kc_query(req->query, "limit"));
    char after[600] = "";
    const char *cont = kc_query(req->query, "continue");
    if (cont && *cont) {
        kc_rev_t crev;
        if (decode_continue(cont, &crev, after, sizeof after) || strncmp(after, prefix, strlen(prefix))) {
            kc_resp_status(resp, 400, "BadRequest", "continue key is not valid: malformed token", NULL, NULL, NULL,
                           NULL);
            kc_objs_free(objs, n);
            kc_sel_free(&s);
            return;
        }
        /* every page of one list is served at the first page's revision, from the store's history */
        kc_objs_free(objs, n);
        objs = NULL;
        n = 0;
        if (list_from_store(req, resp, res, prefix, crev, after,
                            "The provided continue parameter is too old to display a consistent list result. You "
                            "can start a new list without the continue parameter.",
                            &objs, &n, &rev)) {
            kc_sel_free(&s);
            return;
        }
        rev = crev;
    }
    bool table = kc_accept_table(req->accept);
    /* An in-process list (an informer's) answers the versions' shared trees (kc_obj_tree, without
     * managedFields, as the in-process watch events carry them), so that every informer of a kind holds
     * the same tree of an object instead of a private parse each (three Pod informers: three trees per
     * Pod after a restart). The caller only reads them. */
    bool shared = !table && !res->from_storage && resp->keep_json && !resp->discard_json;
    time_t now = time(NULL);
    /* a Table or a shared list is built as a tree, any other list as bytes */
    json_t *doc = table    ? kc_table_new(res, true)
                  : shared ? json_pack("{s:s, s:s, s:{}, s:[]}", "kind", res->list_kind, "apiVersion",
                                       res->api_version, "metadata", "items")
                           : NULL;
    shared = shared && doc; /* out of memory: bytes */
    struct kc_buf b;
    kc_buf_init(&b, KC_BUF_UNLIMITED);
    if (!doc) {
        kc_buf_puts(&b, "{\"kind\":\"");
        kc_buf_puts(&b, res->list_kind);
        kc_buf_printf(&b, "\",\"apiVersion\":\"%s\",\"metadata\":{\"resourceVersion\":\"%lld\"", res->api_version,
                      (long long)rev);
    }
    long count = 0;
    size_t last_idx = 0, matched_after = 0;
    bool more = false;
    struct kc_buf items;
    kc_buf_init(&items, KC_BUF_UNLIMITED);
    for (size_t i = 0; i < n; i++) {
        if (after[0] && strcmp(objs[i]->key, after) <= 0)
            continue;
        if (!kc_sel_match(&s, objs[i]))
            continue;
        if (limit > 0 && count >= limit) {
            more = true;
            matched_after++;
            continue;
        }
        count++;
        last_idx = i;
        if (table) {
            json_t *j = kc_obj_view(res, objs[i]);
            kc_table_add_row(doc, res, j, now);
            json_decref(j);
        } else if (shared) {
            json_t *t = kc_obj_tree(objs[i]);
            if (t)
                json_array_append_new(json_object_get(doc, "items"), t);
        } else {
            if (items.len)
                kc_buf_putc(&items, ',');
            if (res->from_storage) {
                json_t *j = kc_obj_view(res, objs[i]);
                size_t l;
                char *s = kc_json_dump(j, &l);
                json_decref(j);
                kc_buf_append(&items, s, l);
                free(s);
            } else {
                kc_buf_append(&items, objs[i]->json, objs[i]->len);
            }
        }
    }
    char *ctok = more ? encode_continue(rev, objs[last_idx]->key) : NULL;
    if (doc) {
        json_t *m = json_object_get(doc, "metadata");
        char rv[32];
        snprintf(rv, sizeof rv, "%lld", (long long)rev);
        json_object_set_new(m, "resourceVersion", json_string(rv));
        if (ctok) {
            json_object_set_new(m, "continue", json_string(ctok));
            json_object_set_new(m, "remainingItemCount", json_integer((json_int_t)matched_after));
        }
        kc_resp_json(resp, 200, doc);
    } else {
        if (ctok)
            kc_buf_printf(&b, ",\"continue\":\"%s\",\"remainingItemCount\":%zu", ctok, matched_after);
        kc_buf_puts(&b, "},\"items\":[");
        kc_buf_append(&b, items.data ? items.data : "", items.len);
        kc_buf_puts(&b, "]}");
        size_t len;
        char *body = kc_buf_steal(&b, &len);
        kc_resp_raw(resp, 200, "application/json", body, len);
    }
    free(ctok);
    kc_buf_release(&items);
    kc_buf_release(&b);
    kc_objs_free(objs, n);
    kc_sel_free(&s);
}

/* ---------- delete ---------- */

static void handle_delete(struct kc_req *req, struct kc_resp *resp, const struct kc_resource *res, const char *ns,
                          const char *name, json_t **deleted_out);

struct del_ctx {
    const char *policy;
    long grace; /* pods: graceful deletion period in seconds; 0 otherwise */
};

static int del_mutate(void *ctx, json_t *cur, json_t **next, struct kc_resp *resp)
{
    struct del_ctx *d = ctx;
    (void)resp;
    *next = kc_json_copy(cur);
    json_object_del(kc_jmeta(*next), "resourceVersion");
    json_t *meta = kc_jmeta(*next);
    if (d->policy) {
        const char *fin = !strcmp(d->policy, "Foreground") ? "foregroundDeletion"
                          : !strcmp(d->policy, "Orphan")   ? "orphan"
                                                           : NULL;
        if (fin) {
            json_t *f = json_object_get(meta, "finalizers");
            if (!json_is_array(f)) {
                f = json_array();
                json_object_set_new(meta, "finalizers", f);
            }
            bool have = false;
            size_t i;
            json_t *v;
            json_array_foreach(f, i, v) if (!strcmp(json_string_value(v) ?: "", fin)) have = true;
            if (!have)
                json_array_append_new(f, json_string(fin));
        }
    }
    json_t *have = json_object_get(meta, "deletionGracePeriodSeconds");
    /* set once; a later delete may only shorten the grace period (as upstream) */
    if (!json_object_get(meta, "deletionTimestamp") || (have && d->grace < json_integer_value(have))) {
        char when[32];
        kc_time_rfc3339(time(NULL) + d->grace, when, sizeof when);
        json_object_set_new(meta, "deletionTimestamp", json_string(when));
        json_object_set_new(meta, "deletionGracePeriodSeconds", json_integer(d->grace));
    }
    return 0;
}

/* Grace period of a pod delete: ?gracePeriodSeconds, then DeleteOptions, then the pod's
 * terminationGracePeriodSeconds (default 30). Unscheduled and finished pods go at once (upstream). */
static long pod_grace(struct kc_req *req, json_t *opts, json_t *pod)
{
    const char *ph = kc_jstr(pod, "status.phase");
    if (!kc_jstr(pod, "spec.nodeName") || (ph && (!strcmp(ph, "Succeeded") || !strcmp(ph, "Failed"))))
        return 0;
    const char *q = kc_query(req->query, "gracePeriodSeconds");
    if (q)
        return atol(q);
    json_t *o = json_object_get(opts, "gracePeriodSeconds");
    if (json_is_integer(o))
        return (long)json_integer_value(o);
    json_t *t = kc_jget(pod, "spec.terminationGracePeriodSeconds");
    return json_is_integer(t) ? (long)json_integer_value(t) : 30;
}

static void handle_delete(struct kc_req *req, struct kc_resp *resp, const struct kc_resource *res, const char *ns,
                          const char *name, json_t **deleted_out)
{
    struct kc_server *srv = req->srv;
    json_t *opts = NULL;
    if (!strcmp(res->kind, "PriorityClass") && kc_system_priority_class(name)) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "priorityclasses.scheduling.k8s.io \"%s\" is forbidden: this is a system priority class and "
                 "cannot be deleted",
                 name);
        kc_resp_status(resp, 403, "Forbidden", msg, name, "scheduling.k8s.io", "priorityclasses", NULL);
        return;
    }
    if (kc_req_has_body(req)) {
        struct kc_err err = {0};
        if (kc_req_json(req, &opts, &err)) {
            kc_resp_err(resp, &err);
            return;
        }
    }
    const char *policy = kc_query(req->query, "propagationPolicy");
    if (!policy)
        policy = kc_jstr(opts, "propagationPolicy");
    if (json_is_true(kc_jget(opts, "orphanDependents")) || (kc_query(req->query, "orphanDependents") &&
                                                           kc_query_bool(req->query, "orphanDependents")))
        policy = "Orphan";
    if (policy && strcmp(policy, "Foreground") && strcmp(policy, "Background") && strcmp(policy, "Orphan")) {
        char msg[512];
        snprintf(msg, sizeof msg,
                 "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"%.200s\": "
                 "supported values: \"Foreground\", \"Background\", \"Orphan\"",
                 policy);
        kc_resp_status(resp, 422, "Invalid", msg, NULL, "meta.k8s.io", "DeleteOptions", NULL);
        json_decref(opts);
        return;
    }
    const char *pre_uid = kc_jstr(opts, "preconditions.uid");
    const char *pre_rv = kc_jstr(opts, "preconditions.resourceVersion");
    if (res == ns_resource() && (!strcmp(name, "default") || !strcmp(name, "kube-system") ||
                                 !strcmp(name, "kube-public"))) {
        status_for(resp, res, 403, "Forbidden", name, "namespaces \"%s\" is forbidden: this namespace may not be deleted",
                   name);
        json_decref(opts);
        return;
    }
    char key[600];
    make_key(res, ns, name, key, sizeof key);
    for (double give_up = kc_mono_now() + CAS_RETRY_SECONDS; kc_mono_now() < give_up;) {
        kc_rev_t cur_rev = 0;
        json_t *cur = current_obj(res, key, &cur_rev);
        if (!cur) {
            not_found(resp, res, name);
            json_decref(opts);
            return;
        }
        if ((pre_uid && strcmp(pre_uid, kc_jstr(cur, "metadata.uid") ?: "")) ||
            (pre_rv && parse_rv(pre_rv) != cur_rev)) {
            char q[128];
            kc_resource_qname(res, q, sizeof q);
            status_for(resp, res, 409, "Conflict", name,
                       "Operation cannot be fulfilled on %s \"%s\": Precondition failed: %s", q, name,
                       pre_uid ? "UID in precondition does not match the UID in record" :
                                 "ResourceVersion in precondition does not match the ResourceVersion in record");
            json_decref(cur);
            json_decref(opts);
            return;
        }
        bool has_fin = json_array_size(kc_jget(cur, "metadata.finalizers")) > 0;
        long grace = !*res->group && !strcmp(res->kind, "Pod") ? pod_grace(req, opts, cur) : 0;
        if (grace < 0)
            grace = 0;
        bool graceful = res == ns_resource() || has_fin || grace > 0 ||
                        (policy && (!strcmp(policy, "Foreground") || !strcmp(policy, "Orphan")));
        if (graceful) {
            json_decref(cur);
            struct del_ctx dc = {.policy = policy, .grace = grace};
            if (res == ns_resource()) {
                /* the namespace controller (nsctl.c) empties it, then removes it */
                dc.policy = NULL;
            }
            json_t *result = NULL;
            update_loop(req, resp, res, ns, name, UPD_DELETE, del_mutate, &dc, "Update", &result, false);
            if (result) {
                if (res == ns_resource())
                    kc_nsctl_kick(srv);
                if (deleted_out)
                    *deleted_out = result;
                else {
                    kc_resp_json(resp, 200, result);
                }
            }
            json_decref(opts);
            return;
        }
        if (dry_run(req)) {
            if (deleted_out)
                *deleted_out = cur;
            else {
                kc_resp_json(resp, 200, cur);
            }
            json_decref(opts);
            return;
        }
        kc_rev_t rev = 0;
        struct kc_err err = {0};
        int rc = delete_key(srv, res, key, cur_rev, &rev, &err);
        if (rc == KC_ECONFLICT) {
            json_decref(cur);
            catch_up_key(srv, key);
            continue;
        }
        if (rc) {
            store_err(resp, res, name, rc, &err);
            json_decref(cur);
            json_decref(opts);
            return;
        }
        /* the answer carries the deletion's revision, as upstream's and our DELETED watch event */
        char rvs[32];
        snprintf(rvs, sizeof rvs, "%lld", (long long)rev);
        json_object_set_new(kc_jmeta(cur), "resourceVersion", json_string(rvs));
        if (deleted_out)
            *deleted_out = cur;
        else
            kc_resp_json(resp, 200, cur);
        json_decref(opts);
        return;
    }
    conflict(resp, res, name);
    json_decref(opts);
}

static void handle_deletecollection(struct kc_req *req, struct kc_resp *resp, const struct kc_resource *res,
                                    const char *ns)
{
    struct sel s;
    if (kc_sel_parse(req, res, &s, resp))
        return;
    char prefix[300];
    if (res->namespaced && ns)
        snprintf(prefix, sizeof prefix, "%s%s/", res->storage_prefix, ns);
    else
        snprintf(prefix, sizeof prefix, "%s", res->storage_prefix);
    struct kc_obj **objs = NULL;
    size_t n = 0;
    kc_rev_t rev = 0;
    kc_cache_list(req->srv->cache, res->storage, prefix, &objs, &n, &rev);
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        if (!kc_sel_match(&s, objs[i]))
            continue;
        if (res == ns_resource() && (!strcmp(objs[i]->name, "default") || !strcmp(objs[i]->name, "kube-system") ||
                                     !strcmp(objs[i]->name, "kube-public")))
            continue;
        struct kc_resp r = {0};
        json_t *d = NULL;
        handle_delete(req, &r, res, objs[i]->ns, objs[i]->name, &d);
        if (d)
            json_array_append_new(items, d);
        kc_resp_release(&r);
    }
    kc_objs_free(objs, n);
    kc_sel_free(&s);
    json_t *list = json_pack("{s:s,s:s,s:{},s:o}", "kind", res->list_kind, "apiVersion", res->api_version, "metadata",
                             "items", items);
    kc_resp_json(resp, 200, list);
}

/* ---------- scale ---------- */

static json_t *to_scale(json_t *obj)
{
    json_t *m = kc_jmeta(obj);
    json_t *sm = json_object();
    static const char *keep[] = {"name", "namespace", "uid", "resourceVersion", "creationTimestamp"};
    for (size_t i = 0; i < 5; i++)
        if (json_object_get(m, keep[i]))
            json_object_set(sm, keep[i], json_object_get(m, keep[i]));
    json_t *sc = json_pack("{s:s,s:s,s:o,s:{s:I},s:{s:I}}", "kind", "Scale", "apiVersion", "autoscaling/v1",
                           "metadata", sm, "spec", "replicas", (json_int_t)json_integer_value(kc_jget(obj, "spec.replicas")),
                           "status", "replicas", (json_int_t)json_integer_value(kc_jget(obj, "status.replicas")));
    json_t *sel = kc_jget(obj, "spec.selector");
    if (sel) {
        struct kc_label_selector *ls = NULL;
        if (kc_label_selector_from_json(sel, &ls, NULL) == 0) {
            char *s = kc_label_selector_string(ls);
            json_object_set_new(json_object_get(sc, "status"), "selector", json_string(s ? s : ""));
            free(s);
            kc_label_selector_free(ls);
        }
    }
    return sc;
}

struct scale_ctx {
    struct kc_req *req;
    json_t *body;        /* PUT body */
    enum patch_type pt;  /* for PATCH */
    json_t *patch;
    bool is_patch;
};

static int scale_mutate(void *ctx, json_t *cur, json_t **next, struct kc_resp *resp)
{
    struct scale_ctx *sc = ctx;
    json_t *scale = to_scale(cur);
    json_t *want = NULL;
    struct kc_err err = {0};
    int rc = 0;
    if (sc->is_patch) {
        if (sc->pt == PT_JSON)
            rc = kc_json_patch(scale, sc->patch, &want, &err);
        else
            rc = kc_merge_patch(scale, sc->patch, &want, &err);
    } else {
        want = json_incref(sc->body);
    }
    json_decref(scale);
    if (rc) {
        kc_resp_err(resp, &err);
        return -1;
    }
    json_t *r = kc_jget(want, "spec.replicas");
    if (r && !json_is_integer(r)) {
        kc_resp_status(resp, 400, "BadRequest", "spec.replicas must be an integer", NULL, NULL, NULL, NULL);
        json_decref(want);
        return -1;
    }
    *next = kc_json_copy(cur);
    json_object_del(kc_jmeta(*next), "resourceVersion");
    const char *rv = kc_jstr(want, "metadata.resourceVersion");
    if (rv && !sc->is_patch)
        json_object_set_new(kc_jmeta(*next), "resourceVersion", json_string(rv));
    json_t *spec = json_object_get(*next, "spec");
    if (json_is_object(spec))
        json_object_set_new(spec, "replicas", json_integer(r ? json_integer_value(r) : 0));
    json_decref(want);
    return 0;
}

static void handle_scale(struct kc_req *req, struct kc_resp *resp, const struct kc_resource *res, const char *ns,
                         const char *name)
{
    char key[600];
    make_key(res, ns, name, key, sizeof key);
    if (!strcmp(req->method, "GET")) {
        kc_rev_t rev;
        json_t *cur = current_obj(res, key, &rev);
        if (!cur) {
            not_found(resp, res, name);
            return;
        }
        kc_resp_json(resp, 200, to_scale(cur));
        json_decref(cur);
        return;
    }
    struct scale_ctx sc = {.req = req};
    struct kc_err err = {0};
    if (!strcmp(req->method, "PUT")) {
        if (kc_decode_body(req, &sc.body, &err)) {
            kc_resp_err(resp, &err);
            return;
        }
        if (check_type_meta(resp, res, sc.body, "Scale", "autoscaling/v1")) {
            json_decref(sc.body);
            return;
        }
    } else if (!strcmp(req->method, "PATCH")) {
        sc.is_patch = true;
        sc.pt = kc_ctype_is(req->content_type, "application/json-patch+json") ? PT_JSON : PT_MERGE;
        if (kc_req_json(req, &sc.patch, &err)) {
            kc_resp_err(resp, &err);
            return;
        }
    } else {
        kc_resp_status(resp, 405, "MethodNotAllowed", "the server does not allow this method on the requested resource",
                       NULL, NULL, NULL, NULL);
        return;
    }
    json_t *result = NULL;
    update_loop(req, resp, res, ns, name, UPD_MAIN, scale_mutate, &sc, "Update", &result, false);
    if (result) {
        kc_resp_json(resp, 200, to_scale(result));
        json_decref(result);
    }
    json_decref(sc.body);
    json_decref(sc.patch);
}

/* ---------- binding ---------- */

struct bind_ctx {
    const char *node;
};

static int bind_mutate(void *ctx, json_t *cur, json_t **next, struct kc_resp *resp)
{
    struct bind_ctx *b = ctx;
    const char *have = kc_jstr(cur, "spec.nodeName");
    if (have) {
        char msg[600];
        snprintf(msg, sizeof msg, "pod %s is already assigned to node \"%s\"", kc_jstr(cur, "metadata.name") ?: "",
                 have);
        kc_resp_status(resp, 409, "Conflict", msg, kc_jstr(cur, "metadata.name"), "", "pods", NULL);
        return -1;
    }
    if (kc_jget(cur, "metadata.deletionTimestamp")) {
        kc_resp_status(resp, 409, "Conflict", "pod is being deleted, cannot be assigned to a host", NULL, NULL, NULL,
                       NULL);
        return -1;
    }
    /* besides what sharing_copy copies: spec's top level, and status with its conditions list, whose
     * entries are replaced, never edited (deep copies of metadata, with its managedFields, and of status
     * were a third of a binding's copying) */
    *next = sharing_copy(cur);
    json_object_set_new(*next, "spec", json_copy(json_object_get(cur, "spec")));
    json_t *cur_st = json_object_get(cur, "status");
    if (json_is_object(cur_st)) {
        json_t *st_copy = json_copy(cur_st);
        json_t *cc = json_object_get(st_copy, "conditions");
        if (json_is_array(cc))
            json_object_set_new(st_copy, "conditions", json_copy(cc));
        json_object_set_new(*next, "status", st_copy);
    }
    json_object_del(kc_jmeta(*next), "resourceVersion");
    json_t *spec = json_object_get(*next, "spec");
    json_object_set_new(spec, "nodeName", json_string(b->node));
    timeline_stamp(*next, "scheduled", false);
    json_t *st = json_object_get(*next, "status");
    if (!json_is_object(st)) {
        st = json_object();
        json_object_set_new(*next, "status", st);
    }
    /* a bound pod is no longer nominated (upstream's ClearingNominatedNodeNameAfterBinding) */
    json_object_del(st, "nominatedNodeName");
    json_t *conds = json_object_get(st, "conditions");
    if (!json_is_array(conds)) {
        conds = json_array();
        json_object_set_new(st, "conditions", conds);
    }
    char now[32];
    kc_now_rfc3339(now, sizeof now);
    size_t i;
    json_t *c;
    json_array_foreach(conds, i, c) if (!strcmp(kc_jstr(c, "type") ?: "", "PodScheduled"))
    {
        json_array_remove(conds, i);
        break;
    }
    json_array_append_new(conds, json_pack("{s:s,s:s,s:n,s:s}", "type", "PodScheduled", "status", "True",
                                           "lastProbeTime", "lastTransitionTime", now));
    return 0;
}

static void handle_binding(struct kc_req *req, struct kc_resp *resp, const struct kc_resource *res, const char *ns,
                           const char *name)
{
    if (strcmp(req->method, "POST")) {
        kc_resp_status(resp, 405, "MethodNotAllowed", "the server does not allow this method on the requested resource",
                       NULL, NULL, NULL, NULL);
        return;
    }
    struct kc_err err = {0};
    json_t *b = NULL;
    if (kc_decode_body(req, &b, &err)) {
        kc_resp_err(resp, &err);
        return;
    }
    const char *node = kc_jstr(b, "target.name");
    const char *tkind = kc_jstr(b, "target.kind");
    if (!node || (tkind && strcmp(tkind, "Node"))) {
        json_t *causes = json_array();
        kc_cause(causes, "target.name", "FieldValueRequired", "Required value");
        invalid(resp, res, name, causes);
        json_decref(causes);
        json_decref(b);
        return;
    }
    struct bind_ctx bc = {node};
    json_t *result = NULL;
    /* result: only its presence is read */
    update_loop(req, resp, res, ns, name, UPD_MAIN, bind_mutate, &bc, "Update", &result, true);
    if (result) {
        kc_resp_status(resp, 201, "", NULL, NULL, NULL, NULL, NULL);
        json_decref(result);
    }
    json_decref(b);
}

/* ---------- eviction ---------- */

/* POST pods/NAME/eviction (policy/v1 Eviction): deletes the pod with the
 * eviction's deleteOptions. PodDisruptionBudgets are not served yet, so no
 * eviction is refused for budget reasons (429 when they are). */
static void handle_eviction(struct kc_req *req, struct kc_resp *resp, const struct kc_resource *res, const char *ns,
                            const char *name)
{
    if (strcmp(req->method, "POST")) {
        kc_resp_status(resp, 405, "MethodNotAllowed", "the server does not allow this method on the requested resource",
                       NULL, NULL, NULL, NULL);
        return;
    }
    struct kc_err err = {0};
    json_t *ev = NULL;
    if (kc_req_has_body(req) && kc_decode_body(req, &ev, &err)) {
        kc_resp_err(resp, &err);
        return;
    }
    const char *ename = kc_jstr(ev, "metadata.name");
    if (ename && strcmp(ename, name)) {
        kc_resp_status(resp, 400, "BadRequest", "name in URL does not match name in Eviction object", NULL, NULL, NULL,
                       NULL);
        json_decref(ev);
        return;
    }
    struct kc_req r2 = *req;
    char *opts = NULL;
    json_t *dopt = json_object_get(ev, "deleteOptions");
    if (dopt)
        opts = kc_json_dump(dopt, NULL);
    r2.body = opts;
    r2.body_len = opts ? strlen(opts) : 0;
    r2.method = "DELETE";
    struct kc_resp dr = {0};
    json_t *deleted = NULL;
    handle_delete(&r2, &dr, res, ns, name, &deleted);
    if (deleted) {
        kc_resp_status(resp, 201, "", NULL, NULL, NULL, NULL, NULL);
        json_decref(deleted);
    } else {
        kc_resp_raw(resp, dr.code, dr.content_type, dr.body, dr.body_len);
        dr.body = NULL;
    }
    kc_resp_release(&dr);
    free(opts);
    json_decref(ev);
}

/* ---------- entry ---------- */

static void method_not_allowed(struct kc_resp *resp)
{
    kc_resp_status(resp, 405, "MethodNotAllowed", "the server does not allow this method on the requested resource",
                   NULL, NULL, NULL, NULL);
}

/* Integer query parameters must parse (upstream answers 400 otherwise). */
static int check_int_params(struct kc_req *req, struct kc_resp *resp)
{
    static const char *const ints[] = {"limit", "timeoutSeconds", "gracePeriodSeconds"};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        const char *v = kc_query(req->query, ints[i]);
        if (!v)
            continue;
        char *end;
        long long n = strtoll(v, &end, 10);
        if (!*v || *end || n < 0) {
            char msg[400];
            snprintf(msg, sizeof msg, "invalid %s %.200s: must be a non-negative integer", ints[i], v);
            kc_resp_status(resp, 400, "BadRequest", msg, NULL, NULL, NULL, NULL);
            return -1;
        }
    }
    return 0;
}

void kc_handle_resource(struct kc_req *req, struct kc_resp *resp, const struct kc_resource *res, const char *ns,
                        const char *name, const char *sub)
{
    const char *m = req->method;
    if (check_int_params(req, resp))
        return;
    bool watch = kc_query_bool(req->query, "watch");
    if (sub) {
        if (!name) {
            kc_resp_status(resp, 404, "NotFound", "the server could not find the requested resource", NULL, NULL,
                           NULL, NULL);
            return;
        }
        if (!strcmp(sub, "status") && (res->subresources & KC_SUB_STATUS)) {
            if (!strcmp(m, "GET"))
                handle_get(req, resp, res, ns, name);
            else if (!strcmp(m, "PUT"))
                handle_update(req, resp, res, ns, name, UPD_STATUS);
            else if (!strcmp(m, "PATCH"))
                handle_patch(req, resp, res, ns, name, UPD_STATUS);
            else
                method_not_allowed(resp);
            return;
        }
        if (!strcmp(sub, "scale") && (res->subresources & KC_SUB_SCALE)) {
            handle_scale(req, resp, res, ns, name);
            return;
        }
        if (!strcmp(sub, "binding") && (res->subresources & KC_SUB_BINDING)) {
            handle_binding(req, resp, res, ns, name);
            return;
        }
        if (!strcmp(sub, "log") && (res->subresources & KC_SUB_LOG) && !strcmp(m, "GET")) {
            kc_handle_pod_log(req, resp, ns, name);
            return;
        }
        if (!strcmp(sub, "eviction") && (res->subresources & KC_SUB_EVICTION)) {
            handle_eviction(req, resp, res, ns, name);
            return;
        }
        kc_resp_status(resp, 404, "NotFound", "the server could not find the requested resource", NULL, NULL, NULL,
                       NULL);
        return;
    }
    if (!name) {
        if (!strcmp(m, "GET")) {
            if (watch)
                kc_watch_start(req, res, ns, resp);
            else
                handle_list(req, resp, res, ns);
        } else if (!strcmp(m, "POST")) {
            if (res->namespaced && !ns) {
                method_not_allowed(resp);
                return;
            }
            handle_create(req, resp, res, ns ? ns : "");
        } else if (!strcmp(m, "DELETE"))
            handle_deletecollection(req, resp, res, ns);
        else
            method_not_allowed(resp);
        return;
    }
    if (!strcmp(m, "GET"))
        handle_get(req, resp, res, ns, name);
    else if (!strcmp(m, "PUT"))
        handle_update(req, resp, res, ns, name, UPD_MAIN);
    else if (!strcmp(m, "PATCH"))
        handle_patch(req, resp, res, ns, name, UPD_MAIN);
    else if (!strcmp(m, "DELETE"))
        handle_delete(req, resp, res, ns, name, NULL);
    else
        method_not_allowed(resp);
}

int kc_server_create_json(struct kc_server *srv, const struct kc_resource *res, json_t *obj, struct kc_err *err)
{
    struct kc_req req = {.srv = srv, .method = "POST", .query = json_object(), .user_agent = "kubec-apiserver/"};
    struct kc_resp resp = {0};
    const char *ns = kc_jstr(obj, "metadata.namespace");
    json_t *copy = kc_json_copy(obj);
    do_create(&req, &resp, res, ns ? ns : "", copy, "Update");
    json_decref(copy);
    json_decref(req.query);
    int rc = 0;
    if (resp.code != 201) {
        rc = kc_err_set(err, resp.code == 409 ? KC_EEXISTS : KC_EINVAL, resp.code, "", "%.*s", (int)resp.body_len,
                        resp.body ? resp.body : "");
    }
    kc_resp_release(&resp);
    return rc;
}
