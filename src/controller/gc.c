/* gc.c — the garbage collector (upstream pkg/controller/garbagecollector), simplified.
 *
 * Upstream keeps a graph of every object with ownerReferences. We keep no graph of our own:
 *  - an index "gc-owners" on each shared informer (deployments, replicasets, pods) maps an
 *    owner uid to the cached objects that name it in metadata.ownerReferences (dependents);
 *  - a work queue of OWNER identities, "uid|apiVersion|kind|namespace|name". An owner is queued
 *    when a dependent naming it appears or changes its references, when the owner itself is
 *    deleted, and when it is being deleted with a GC finalizer (orphan / foregroundDeletion).
 * Processing one owner:
 *  1. If the owner is in an informer cache with that uid and is not being deleted, there is
 *     nothing to do (the hot path: a new pod of a live ReplicaSet).
 *  2. Otherwise its dependents are read from the index and its existence is confirmed with a
 *     live GET (the cache may lag; a dependent must never be deleted because of a stale cache).
 *  3. Owner gone (404 or another uid): each dependent that still has another existing owner
 *     loses just the dangling reference; the others are deleted (propagationPolicy Background,
 *     uid precondition).
 *  4. Owner has deletionTimestamp and the "orphan" finalizer: every dependent loses its
 *     reference to the owner, then the finalizer is removed.
 *  5. Owner has deletionTimestamp and "foregroundDeletion": dependents are deleted (Foreground
 *     when they have dependents of their own, else Background) and the finalizer is removed
 *     once no dependent with blockOwnerDeletion: true remains. Dependent deletions re-queue the
 *     owner (their delete events enqueue their owners), so the owner is revisited until done.
 * All writes are merge patches carrying the resourceVersion they were computed from, so a
 * concurrent change fails with a conflict and the item is retried with backoff.
 * Kinds whose existence can be checked: those kubec serves (table KINDS); references to other
 * kinds are treated as existing owners (never a reason to delete). Owners of served kinds without
 * a shared informer (ConfigMap, ...) are re-checked on every informer resync of their dependents.
 *
 * Threads: informer threads run the handlers (enqueue only); `workers` threads process owners;
 * one rescan thread queues owners of unwatched kinds every GC_RESCAN_S.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/workqueue.h"
#include "controller/controllers_int.h"
#include "controller/podutil.h"
#include "util/log.h"

#define COMPONENT "garbage-collector-controller"
#define IDX_OWNERS "gc-owners"
#define FOREGROUND_RECHECK_MS 30000
#define GC_RESCAN_S 30

enum { INF_DEPLOY, INF_RS, INF_POD, INF_N };

struct kind {
    const char *group, *kind, *plural;
    bool namespaced;
    int inf; /* INF_* or -1 when no shared informer caches it */
};

static const struct kind KINDS[] = {
    {"", "Pod", "pods", true, INF_POD},
    {"apps", "ReplicaSet", "replicasets", true, INF_RS},
    {"apps", "Deployment", "deployments", true, INF_DEPLOY},
    {"", "ConfigMap", "configmaps", true, -1},
    {"", "Secret", "secrets", true, -1},
    {"", "Service", "services", true, -1},
    {"", "ServiceAccount", "serviceaccounts", true, -1},
    {"coordination.k8s.io", "Lease", "leases", true, -1},
    {"", "Node", "nodes", false, -1},
    {"", "Namespace", "namespaces", false, -1},
    {"scheduling.k8s.io", "PriorityClass", "priorityclasses", false, -1},
};

struct gc;
struct gc_src { /* handler context of one informer */
    struct gc *g;
    int kind; /* index into KINDS */
};

struct gc {
    struct kc_client *c;
    struct kc_informer *inf[INF_N];
    struct gc_src src[INF_N];
    struct kc_wq *q;
    pthread_t *threads;
    int nthreads;
    atomic_bool stopping;
    pthread_t rescan;
    bool rescan_started;
};

/* An owner as named by an ownerReference (strings point into a parsed key or an object). */
struct owner {
    char uid[128], api_version[128], kind[64], ns[256], name[256];
};

enum state { ABSENT, PRESENT, UNKNOWN };

/* ---------- identities and keys ---------- */

static const struct kind *kind_of(const char *api_version, const char *kind)
{
    const char *slash = strchr(api_version ? api_version : "", '/');
    size_t glen = slash ? (size_t)(slash - api_version) : 0;
    for (size_t i = 0; i < sizeof KINDS / sizeof *KINDS; i++)
        if (!strcmp(KINDS[i].kind, kind ? kind : "") && strlen(KINDS[i].group) == glen &&
            !strncmp(KINDS[i].group, api_version, glen))
            return &KINDS[i];
    return NULL;
}

static bool copy(char *dst, size_t n, const char *s)
{
    if (!s || strlen(s) >= n || strchr(s, '|'))
        return false;
    strcpy(dst, s);
    return true;
}

static bool owner_from_ref(json_t *ref, const char *ns, struct owner *o)
{
    return copy(o->uid, sizeof o->uid, json_string_value(json_object_get(ref, "uid"))) &&
           copy(o->api_version, sizeof o->api_version, json_string_value(json_object_get(ref, "apiVersion"))) &&
           copy(o->kind, sizeof o->kind, json_string_value(json_object_get(ref, "kind"))) &&
           copy(o->ns, sizeof o->ns, ns ? ns : "") &&
           copy(o->name, sizeof o->name, json_string_value(json_object_get(ref, "name")));
}

static void enqueue_owner(struct gc *g, const struct owner *o)
{
    char key[1024];
    snprintf(key, sizeof key, "%s|%s|%s|%s|%s", o->uid, o->api_version, o->kind, o->ns, o->name);
    kc_wq_add(g->q, key);
}

static bool parse_key(const char *key, struct owner *o)
{
    char *f[5] = {o->uid, o->api_version, o->kind, o->ns, o->name};
    size_t cap[5] = {sizeof o->uid, sizeof o->api_version, sizeof o->kind, sizeof o->ns, sizeof o->name};
    const char *p = key;
    for (int i = 0; i < 5; i++) {
        size_t n = strcspn(p, "|");
        if (n >= cap[i] || (i < 4 && p[n] != '|'))
            return false;
        memcpy(f[i], p, n);
        f[i][n] = 0;
        p += n + (i < 4);
    }
    return *p == 0;
}

static const char *obj_ns(json_t *obj)
{
    return kc_obj_str(obj, "metadata.namespace");
}

static json_t *cached_owner(struct gc *g, const struct kind *k, const struct owner *o);

static void enqueue_owners_of(struct gc *g, json_t *obj)
{
    size_t i;
    json_t *ref;
    json_array_foreach(kc_obj_get(obj, "metadata.ownerReferences"), i, ref) {
        struct owner o;
        if (!owner_from_ref(ref, obj_ns(obj), &o))
            continue;
        /* the hot path of process() decided here: an owner cached alive with that uid needs nothing, and
         * a worker woken for every new pod of a live ReplicaSet was a tenth of the chain's wake-ups. If
         * that owner goes later, its own delete event queues it and process() finds this dependent in the
         * index (the informer caches an object before it calls the handlers). */
        json_t *live = cached_owner(g, kind_of(o.api_version, o.kind), &o);
        bool alive = live && !kc_obj_get(live, "metadata.deletionTimestamp");
        json_decref(live);
        if (!alive)
            enqueue_owner(g, &o);
    }
}

static void enqueue_self(struct gc_src *s, json_t *obj)
{
    const struct kind *k = &KINDS[s->kind];
    char av[96];
    snprintf(av, sizeof av, "%s%sv1", k->group, *k->group ? "/" : "");
    json_t *ref = json_pack("{s:s, s:s, s:s, s:s}", "uid", kc_obj_str(obj, "metadata.uid") ?: "", "apiVersion", av,
                            "kind", k->kind, "name", kc_obj_str(obj, "metadata.name") ?: "");
    struct owner o;
    if (owner_from_ref(ref, obj_ns(obj), &o))
        enqueue_owner(s->g, &o);
    json_decref(ref);
}

static bool has_finalizer(json_t *obj, const char *f)
{
    size_t i;
    json_t *v;
    json_array_foreach(kc_obj_get(obj, "metadata.finalizers"), i, v) if (!strcmp(json_string_value(v) ?: "", f))
        return true;
    return false;
}

static bool deleting_with_gc_finalizer(json_t *obj)
{
    return kc_obj_get(obj, "metadata.deletionTimestamp") &&
           (has_finalizer(obj, "orphan") || has_finalizer(obj, "foregroundDeletion"));
}

/* ---------- informer handlers ---------- */

static int owners_index(json_t *obj, const char **vals, int max)
{
    int n = 0;
    size_t i;
    json_t *ref;
    json_array_foreach(kc_obj_get(obj, "metadata.ownerReferences"), i, ref) {
        const char *uid = json_string_value(json_object_get(ref, "uid"));
        if (uid && n < max)
            vals[n++] = uid;
    }
    return n;
}

static void on_add(void *ctx, json_t *obj)
{
    struct gc_src *s = ctx;
    enqueue_owners_of(s->g, obj);
    if (deleting_with_gc_finalizer(obj))
        enqueue_self(s, obj);
}

/* Owners of kinds no shared informer watches (ConfigMap, Secret, ...) give no delete event: the
 * rescan thread (and any informer resync) re-checks such references, so their dependents are
 * collected within GC_RESCAN_S. */
static void enqueue_unwatched_owners(struct gc *g, json_t *obj)
{
    size_t i;
    json_t *ref;
    json_array_foreach(kc_obj_get(obj, "metadata.ownerReferences"), i, ref) {
        const struct kind *k = kind_of(json_string_value(json_object_get(ref, "apiVersion")),
                                       json_string_value(json_object_get(ref, "kind")));
        struct owner o;
        if (k && (k->inf < 0 || !g->inf[k->inf]) && owner_from_ref(ref, obj_ns(obj), &o))
            enqueue_owner(g, &o);
    }
}

static void on_update(void *ctx, json_t *old, json_t *obj)
{
    struct gc_src *s = ctx;
    const char *orv = kc_obj_str(old, "metadata.resourceVersion"), *nrv = kc_obj_str(obj, "metadata.resourceVersion");
    if (old == obj || (orv && nrv && !strcmp(orv, nrv))) {
        enqueue_unwatched_owners(s->g, obj);
        return;
    }
    json_t *a = kc_obj_get(old, "metadata.ownerReferences"), *b = kc_obj_get(obj, "metadata.ownerReferences");
    if (!json_equal(a ? a : json_null(), b ? b : json_null())) {
        enqueue_owners_of(s->g, old); /* a removed reference may unblock a foreground owner */
        enqueue_owners_of(s->g, obj);
    }
    if (deleting_with_gc_finalizer(obj))
        enqueue_self(s, obj);
}

static void on_delete(void *ctx, json_t *obj)
{
    struct gc_src *s = ctx;
    enqueue_self(s, obj);          /* its dependents are now dangling */
    enqueue_owners_of(s->g, obj);  /* a foreground owner may be waiting for it */
}

/* ---------- API helpers ---------- */

static const char *obj_path(const struct kind *k, const char *ns, const char *name, char *buf, size_t n)
{
    return kc_path(buf, n, k->group, "v1", k->plural, k->namespaced ? ns : NULL, name, NULL);
}

/* Cached copy of the owner (new reference) when it is cached with the same uid. */
static json_t *cached_owner(struct gc *g, const struct kind *k, const struct owner *o)
{
    if (!k || k->inf < 0 || !g->inf[k->inf])
        return NULL;
    char key[600];
    snprintf(key, sizeof key, "%s%s%s", k->namespaced ? o->ns : "", k->namespaced ? "/" : "", o->name);
    json_t *obj = kc_informer_get(g->inf[k->inf], key);
    if (obj && strcmp(kc_obj_str(obj, "metadata.uid") ?: "", o->uid)) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* Live existence check. PRESENT sets *out (new reference). Unknown kinds are PRESENT with
 * *out NULL: we cannot prove them gone. */
static enum state live_owner(struct gc *g, const struct owner *o, json_t **out, struct kc_err *err)
{
    const struct kind *k = kind_of(o->api_version, o->kind);
    *out = NULL;
    if (!k)
        return PRESENT;
    char path[700];
    json_t *obj = NULL;
    int rc = kc_client_get(g->c, obj_path(k, o->ns, o->name, path, sizeof path), &obj, err);
    if (rc == KC_ENOTFOUND)
        return ABSENT;
    if (rc)
        return UNKNOWN;
    if (strcmp(kc_obj_str(obj, "metadata.uid") ?: "", o->uid)) {
        json_decref(obj);
        return ABSENT;
    }
    *out = obj;
    return PRESENT;
}

/* A cached dependent and the kind of the informer it came from. */
struct dep {
    json_t *obj;
    const struct kind *k;
};

static size_t dependents_of(struct gc *g, const char *uid, struct dep **out)
{
    struct dep *all = NULL;
    size_t n = 0;
    for (int i = 0; i < INF_N; i++) {
        if (!g->inf[i])
            continue;
        json_t **d = NULL;
        size_t nd = kc_informer_by_index(g->inf[i], IDX_OWNERS, uid, &d);
        struct dep *grown = nd ? realloc(all, (n + nd) * sizeof *all) : NULL;
        if (grown)
            all = grown;
        for (size_t j = 0; j < nd; j++) {
            if (grown)
                all[n++] = (struct dep){d[j], &KINDS[g->src[i].kind]};
            else
                json_decref(d[j]);
        }
        free(d);
    }
    *out = all;
    return n;
}

static void free_deps(struct dep *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(v[i].obj);
    free(v);
}

/* Merge patch of one metadata field, guarded by the object's resourceVersion. */
static int patch_meta(struct gc *g, const struct kind *k, json_t *obj, const char *field, json_t *val,
                      struct kc_err *err)
{
    char path[700];
    obj_path(k, obj_ns(obj), kc_obj_str(obj, "metadata.name"), path, sizeof path);
    json_t *patch = json_pack("{s:{s:s, s:o}}", "metadata", "resourceVersion",
                              kc_obj_str(obj, "metadata.resourceVersion") ?: "", field, val);
    int rc = kc_client_patch(g->c, path, "application/merge-patch+json", patch, NULL, err);
    json_decref(patch);
    return rc == KC_ENOTFOUND ? 0 : rc;
}

static int remove_owner_ref(struct gc *g, const struct kind *k, json_t *dep, const char *uid, struct kc_err *err)
{
    json_t *refs = json_array();
    size_t i;
    json_t *ref;
    json_array_foreach(kc_obj_get(dep, "metadata.ownerReferences"), i, ref) {
        if (strcmp(json_string_value(json_object_get(ref, "uid")) ?: "", uid))
            json_array_append(refs, ref);
    }
    if (!json_array_size(refs)) {
        json_decref(refs);
        refs = json_null();
    }
    return patch_meta(g, k, dep, "ownerReferences", refs, err);
}

static int remove_finalizer(struct gc *g, const struct kind *k, json_t *obj, const char *fin, struct kc_err *err)
{
    json_t *rest = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(kc_obj_get(obj, "metadata.finalizers"), i, v) {
        if (strcmp(json_string_value(v) ?: "", fin))
            json_array_append(rest, v);
    }
    return patch_meta(g, k, obj, "finalizers", rest, err);
}

static int delete_obj(struct gc *g, const struct kind *k, json_t *obj, const char *policy, struct kc_err *err)
{
    char path[700];
    obj_path(k, obj_ns(obj), kc_obj_str(obj, "metadata.name"), path, sizeof path);
    json_t *body = json_pack("{s:s, s:s, s:s, s:{s:s}}", "kind", "DeleteOptions", "apiVersion", "v1",
                             "propagationPolicy", policy, "preconditions", "uid",
                             kc_obj_str(obj, "metadata.uid") ?: "");
    int rc = kc_client_delete(g->c, path, body, NULL, err);
    json_decref(body);
    /* 404: gone. 409: the uid precondition failed (the name now holds another object) or the server gave up
     * a race; either way the item is retried, and the retry judges what the caches then show (a replacement
     * naming the same owner is collected too; one that does not is no longer a dependent). Treating 409 as
     * done lost dependents for good (docs/controllers.md). */
    if (rc == KC_ENOTFOUND)
        return 0;
    if (rc == 0)
        kc_debug(COMPONENT, "deleted %s %s/%s (%s)", k->kind, obj_ns(obj) ?: "", kc_obj_str(obj, "metadata.name"),
                 policy);
    return rc;
}

/* Does dep have an owner other than `uid` that exists (and, if solid_only, is not itself waiting
 * for its dependents)? UNKNOWN when that cannot be decided now. */
static enum state other_owner(struct gc *g, json_t *dep, const char *uid, bool solid_only, struct kc_err *err)
{
    size_t i;
    json_t *ref;
    enum state res = ABSENT;
    json_array_foreach(kc_obj_get(dep, "metadata.ownerReferences"), i, ref) {
        struct owner o;
        if (!strcmp(json_string_value(json_object_get(ref, "uid")) ?: "", uid))
            continue;
        if (!owner_from_ref(ref, obj_ns(dep), &o))
            continue;
        json_t *obj = cached_owner(g, kind_of(o.api_version, o.kind), &o);
        enum state s = PRESENT;
        if (!obj)
            s = live_owner(g, &o, &obj, err);
        bool waiting = obj && kc_obj_get(obj, "metadata.deletionTimestamp") &&
                       has_finalizer(obj, "foregroundDeletion");
        json_decref(obj);
        if (s == PRESENT && !(solid_only && waiting))
            return PRESENT;
        if (s == UNKNOWN)
            res = UNKNOWN;
    }
    return res;
}

/* ---------- the three cases ---------- */

static int collect_dangling(struct gc *g, const struct owner *o, struct dep *deps, size_t n, struct kc_err *err)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const struct kind *k = deps[i].k;
        json_t *d = deps[i].obj;
        if (kc_obj_get(d, "metadata.deletionTimestamp"))
            continue;
        struct kc_err e = {0};
        enum state other = other_owner(g, d, o->uid, false, &e);
        int x = 0;
        if (other == PRESENT)
            x = remove_owner_ref(g, k, d, o->uid, &e);
        else if (other == ABSENT)
            x = delete_obj(g, k, d, "Background", &e);
        else
            x = KC_EIO;
        if (x && !rc) {
            rc = x;
            *err = e;
        }
    }
    return rc;
}

static int orphan(struct gc *g, const struct kind *ok, json_t *owner, struct dep *deps, size_t n, struct kc_err *err)
{
    const char *uid = kc_obj_str(owner, "metadata.uid");
    for (size_t i = 0; i < n; i++) {
        int rc = remove_owner_ref(g, deps[i].k, deps[i].obj, uid, err);
        if (rc)
            return rc;
    }
    return remove_finalizer(g, ok, owner, "orphan", err);
}

/* Returns 0 when finished, 1 when waiting for blocking dependents to go, or an error. */
static int foreground(struct gc *g, const struct kind *ok, json_t *owner, struct dep *deps, size_t n,
                      struct kc_err *err)
{
    const char *uid = kc_obj_str(owner, "metadata.uid");
    int blocking = 0, rc = 0;
    for (size_t i = 0; i < n; i++) {
        const struct kind *k = deps[i].k;
        json_t *d = deps[i].obj;
        bool block = json_is_true(json_object_get(kc_obj_owner_ref(d, uid), "blockOwnerDeletion"));
        if (kc_obj_get(d, "metadata.deletionTimestamp")) {
            blocking += block;
            continue;
        }
        struct kc_err e = {0};
        int x;
        enum state other = other_owner(g, d, uid, true, &e);
        if (other == PRESENT) {
            x = remove_owner_ref(g, k, d, uid, &e);
        } else if (other == ABSENT) {
            struct dep *sub = NULL;
            size_t nsub = dependents_of(g, kc_obj_str(d, "metadata.uid") ?: "", &sub);
            free_deps(sub, nsub);
            x = delete_obj(g, k, d, nsub ? "Foreground" : "Background", &e);
            blocking += block && x == 0;
        } else {
            x = KC_EIO;
        }
        if (x && !rc) {
            rc = x;
            *err = e;
        }
    }
    if (rc)
        return rc;
    if (blocking)
        return 1;
    return remove_finalizer(g, ok, owner, "foregroundDeletion", err);
}

/* ---------- worker ---------- */

/* Returns 0 done, 1 revisit later, or an error (retry with backoff). */
static int process(struct gc *g, const char *key, struct kc_err *err)
{
    struct owner o;
    if (!parse_key(key, &o))
        return 0;
    const struct kind *k = kind_of(o.api_version, o.kind);
    json_t *owner = cached_owner(g, k, &o);
    if (owner && !kc_obj_get(owner, "metadata.deletionTimestamp")) {
        json_decref(owner); /* the hot path: a live owner */
        return 0;
    }
    struct dep *deps = NULL;
    size_t n = dependents_of(g, o.uid, &deps);
    if (n == 0 && !(owner && deleting_with_gc_finalizer(owner))) {
        json_decref(owner);
        free(deps);
        return 0;
    }
    json_decref(owner);
    enum state s = live_owner(g, &o, &owner, err);
    int rc = 0;
    if (s == UNKNOWN)
        rc = KC_EIO;
    else if (s == ABSENT)
        rc = collect_dangling(g, &o, deps, n, err);
    else if (owner && kc_obj_get(owner, "metadata.deletionTimestamp")) {
        if (has_finalizer(owner, "orphan"))
            rc = orphan(g, k, owner, deps, n, err);
        else if (has_finalizer(owner, "foregroundDeletion"))
            rc = foreground(g, k, owner, deps, n, err);
    }
    json_decref(owner);
    free_deps(deps, n);
    return rc;
}

/* Dependents are only judged against synced caches (upstream waits for the graph to sync). */
static void wait_caches(struct gc *g)
{
    for (size_t i = 0; i < INF_N; i++)
        while (g->inf[i] && !atomic_load(&g->stopping) && kc_informer_wait_synced(g->inf[i], 200))
            ;
}

static void *worker(void *arg)
{
    pthread_setname_np(pthread_self(), "kc-gc");
    struct gc *g = arg;
    char *key;
    wait_caches(g);
    while ((key = kc_wq_get(g->q)) != NULL) {
        struct kc_err err = {0};
        int rc = process(g, key, &err);
        if (rc < 0) {
            kc_debug(COMPONENT, "%s: %s", key, err.message);
            kc_wq_add_rate_limited(g->q, key);
        } else {
            kc_wq_forget(g->q, key);
            if (rc == 1)
                kc_wq_add_after(g->q, key, FOREGROUND_RECHECK_MS);
        }
        kc_wq_done(g->q, key);
        free(key);
    }
    return NULL;
}

/* Every GC_RESCAN_S: queue the owners of unwatched kinds named by any cached object. */
static void *rescan(void *arg)
{
    pthread_setname_np(pthread_self(), "kc-gc-rescan");
    struct gc *g = arg;
    wait_caches(g);
    for (;;) {
        for (int t = 0; t < GC_RESCAN_S * 5; t++) {
            if (atomic_load(&g->stopping))
                return NULL;
            struct timespec ts = {0, 200 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        for (int i = 0; i < INF_N; i++) {
            if (!g->inf[i])
                continue;
            json_t **objs = NULL;
            size_t n = kc_informer_list(g->inf[i], &objs);
            for (size_t j = 0; j < n; j++) {
                enqueue_unwatched_owners(g, objs[j]);
                json_decref(objs[j]);
            }
            free(objs);
        }
    }
}

int kc_gc_controller_start(struct kc_client *c, struct kc_cm_informers *inf, int workers, void **out)
{
    struct gc *g = calloc(1, sizeof *g);
    if (!g)
        return KC_ENOMEM;
    g->c = c;
    g->inf[INF_DEPLOY] = inf->deployments;
    g->inf[INF_RS] = inf->replicasets;
    g->inf[INF_POD] = inf->pods;
    g->q = kc_wq_new("garbage_collector_attempt_to_delete", 5, 1000 * 1000);
    if (workers < 1)
        workers = 1;
    g->threads = calloc((size_t)workers, sizeof *g->threads);
    if (!g->q || !g->threads) {
        kc_gc_controller_stop(g);
        return KC_ENOMEM;
    }
    for (int i = 0; i < INF_N; i++) {
        g->src[i].g = g;
        for (size_t j = 0; j < sizeof KINDS / sizeof *KINDS; j++)
            if (KINDS[j].inf == i)
                g->src[i].kind = (int)j;
        if (!g->inf[i])
            continue;
        struct kc_informer_handlers h = {.ctx = &g->src[i], .on_add = on_add, .on_update = on_update,
                                         .on_delete = on_delete};
        kc_informer_add_index(g->inf[i], IDX_OWNERS, owners_index);
        kc_informer_add_handlers(g->inf[i], &h);
    }
    for (int i = 0; i < workers; i++) {
        if (pthread_create(&g->threads[i], NULL, worker, g)) {
            kc_gc_controller_stop(g);
            return KC_ENOMEM;
        }
        g->nthreads++;
    }
    if (pthread_create(&g->rescan, NULL, rescan, g)) {
        kc_gc_controller_stop(g);
        return KC_ENOMEM;
    }
    g->rescan_started = true;
    *out = g;
    return 0;
}

void kc_gc_controller_stop(void *ctl)
{
    struct gc *g = ctl;
    if (!g)
        return;
    atomic_store(&g->stopping, true);
    if (g->q)
        kc_wq_shutdown(g->q);
    for (int i = 0; i < g->nthreads; i++)
        pthread_join(g->threads[i], NULL);
    if (g->rescan_started)
        pthread_join(g->rescan, NULL);
    free(g->threads);
    if (g->q)
        kc_wq_free(g->q);
    free(g);
}
