/* replicaset.c — the ReplicaSet controller (upstream pkg/controller/replicaset).
 *
 * Keeps the number of active pods owned by each ReplicaSet equal to spec.replicas:
 *  - creates pods from spec.template (generateName "<rs>-", controller ownerReference) in
 *    slow-start batches 1, 2, 4, ... (stopping at the first batch with a failure), at most
 *    KC_RS_BURST per sync;
 *  - deletes surplus pods in upstream's ranking order (podutil.c);
 *  - adopts orphan pods that match the selector and releases owned pods that stopped
 *    matching (ControllerRefManager);
 *  - writes status (replicas, fullyLabeled, ready, available, observedGeneration, the
 *    ReplicaFailure condition) through /status only when it changed.
 *
 * Expectations: after issuing N creates / deletes for a ReplicaSet, the controller does not
 * manage its replicas again until the informer has shown those N adds / deletes (or 5 minutes
 * passed), so a burst of watch events that still shows the old pod set never causes double
 * creation or deletion. Deletions are tracked by pod key (as upstream's UIDTrackingController-
 * Expectations) so an unrelated pod deletion does not satisfy them.
 *
 * Threads: the informer thread runs the handlers (look-ups + enqueue + expectation
 * bookkeeping); `workers` threads take ReplicaSet keys "ns/name" from the work queue and sync
 * them. The work queue guarantees one key is never synced by two workers at once.
 * Data: struct rsc (client, informers, queue) and a map rs key → struct expect under rsc.mu.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/workqueue.h"
#include "controller/controllers_int.h"
#include "controller/podutil.h"
#include "meta/selector.h"
#include "util/log.h"
#include "util/map.h"
#include "util/timeutil.h"
#include "util/jsonparse.h"

#define COMPONENT "replicaset-controller"
#define KC_RS_BURST 500            /* upstream BurstReplicas */
#define EXPECT_TTL_S 300           /* upstream ExpectationsTimeout */
#define MAX_EXPECTED_DELETES 1024  /* pod keys remembered per ReplicaSet (burst is 500) */

struct expect {
    int adds;
    int ndel;
    char **del_keys; /* pod keys whose deletion is still expected */
    time_t at;
};

struct rsc {
    struct kc_client *c;
    struct kc_cm_informers *inf;
    struct kc_wq *q;
    pthread_t *threads;
    int nthreads;
    pthread_mutex_t mu;
    struct kc_map exp; /* rs key → struct expect* */
    atomic_bool stopping;
};

/* ---------- expectations ---------- */

static void expect_free(struct expect *e)
{
    if (!e)
        return;
    for (int i = 0; i < e->ndel; i++)
        free(e->del_keys[i]);
    free(e->del_keys);
    free(e);
}

static void expect_drop(struct rsc *r, const char *key)
{
    pthread_mutex_lock(&r->mu);
    expect_free(kc_map_del(&r->exp, key));
    pthread_mutex_unlock(&r->mu);
}

/* Replaces the record for key: adds creations or the pod keys to be deleted. */
static void expect_set(struct rsc *r, const char *key, int adds, json_t **dels, size_t ndel)
{
    struct expect *e = calloc(1, sizeof *e);
    if (!e)
        return;
    e->adds = adds;
    e->at = time(NULL);
    if (ndel) {
        e->del_keys = calloc(ndel, sizeof *e->del_keys);
        for (size_t i = 0; e->del_keys && i < ndel && i < MAX_EXPECTED_DELETES; i++) {
            char k[512];
            e->del_keys[e->ndel] = strdup(kc_object_key(dels[i], k, sizeof k));
            if (e->del_keys[e->ndel])
                e->ndel++;
        }
    }
    int err = 0;
    pthread_mutex_lock(&r->mu);
    expect_free(kc_map_put(&r->exp, key, e, &err));
    pthread_mutex_unlock(&r->mu);
    if (err)
        expect_free(e);
}

static void expect_created(struct rsc *r, const char *key, int n)
{
    pthread_mutex_lock(&r->mu);
    struct expect *e = kc_map_get(&r->exp, key);
    if (e)
        e->adds -= n;
    pthread_mutex_unlock(&r->mu);
}

static void expect_deleted(struct rsc *r, const char *key, const char *pod_key)
{
    pthread_mutex_lock(&r->mu);
    struct expect *e = kc_map_get(&r->exp, key);
    for (int i = 0; e && i < e->ndel; i++) {
        if (!strcmp(e->del_keys[i], pod_key)) {
            free(e->del_keys[i]);
            e->del_keys[i] = e->del_keys[--e->ndel];
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
}

/* Upstream SatisfiedExpectations: no record, all observed, or expired. */
static bool expect_satisfied(struct rsc *r, const char *key)
{
    pthread_mutex_lock(&r->mu);
    struct expect *e = kc_map_get(&r->exp, key);
    bool ok = !e || (e->adds <= 0 && e->ndel <= 0) || time(NULL) - e->at > EXPECT_TTL_S;
    pthread_mutex_unlock(&r->mu);
    return ok;
}

/* ---------- look-ups ---------- */

static const char *rs_key(json_t *rs, char *buf, size_t n)
{
    return kc_object_key(rs, buf, n);
}

/* The ReplicaSet a pod's controllerRef points to (new reference), or NULL. */
static json_t *resolve_controller(struct rsc *r, json_t *pod)
{
    json_t *ref = kc_obj_controller_ref(pod);
    const char *kind = json_string_value(json_object_get(ref, "kind"));
    const char *name = json_string_value(json_object_get(ref, "name"));
    const char *uid = json_string_value(json_object_get(ref, "uid"));
    if (!kind || strcmp(kind, "ReplicaSet") || !name || !uid)
        return NULL;
    char key[512];
    snprintf(key, sizeof key, "%s/%s", kc_obj_str(pod, "metadata.namespace") ?: "", name);
    json_t *rs = kc_informer_get(r->inf->replicasets, key);
    if (rs && strcmp(kc_obj_str(rs, "metadata.uid") ?: "", uid)) {
        json_decref(rs);
        return NULL;
    }
    return rs;
}

static void enqueue(struct rsc *r, json_t *rs)
{
    char key[512];
    kc_wq_add(r->q, rs_key(rs, key, sizeof key));
}

static bool selector_matches(json_t *rs, json_t *pod)
{
    struct kc_label_selector *sel = NULL;
    struct kc_err err = {0};
    json_t *s = kc_obj_get(rs, "spec.selector");
    if (!s || kc_label_selector_from_json(s, &sel, &err))
        return false;
    bool m = !kc_label_selector_empty(sel) && kc_label_selector_matches_json(sel, kc_obj_get(pod, "metadata.labels"));
    kc_label_selector_free(sel);
    return m;
}

/* Orphan pod: wake every ReplicaSet of its namespace whose selector matches (one may adopt it). */
static void enqueue_matching(struct rsc *r, json_t *pod)
{
    json_t **rss = NULL;
    const char *ns = kc_obj_str(pod, "metadata.namespace") ?: "";
    size_t n = kc_informer_by_index(r->inf->replicasets, KC_IDX_NAMESPACE, ns, &rss);
    for (size_t i = 0; i < n; i++) {
        if (selector_matches(rss[i], pod))
            enqueue(r, rss[i]);
        json_decref(rss[i]);
    }
    free(rss);
}

/* ---------- informer handlers (informer thread) ---------- */

static void rs_add(void *ctx, json_t *obj)
{
    enqueue(ctx, obj);
}

static void rs_update(void *ctx, json_t *old, json_t *obj)
{
    (void)old;
    enqueue(ctx, obj);
}

static void rs_delete(void *ctx, json_t *obj)
{
    char key[512];
    expect_drop(ctx, rs_key(obj, key, sizeof key));
    enqueue(ctx, obj);
}

static void pod_deleted(struct rsc *r, json_t *pod)
{
    json_t *rs = resolve_controller(r, pod);
    if (!rs)
        return;
    char key[512], pk[512];
    expect_deleted(r, rs_key(rs, key, sizeof key), kc_object_key(pod, pk, sizeof pk));
    kc_wq_add(r->q, key);
    json_decref(rs);
}

static void pod_add(void *ctx, json_t *pod)
{
    struct rsc *r = ctx;
    if (kc_obj_get(pod, "metadata.deletionTimestamp")) {
        /* seen for the first time while already terminating: counts as a deletion */
        pod_deleted(r, pod);
        return;
    }
    json_t *rs = resolve_controller(r, pod);
    if (rs) {
        char key[512];
        expect_created(r, rs_key(rs, key, sizeof key), 1);
        kc_wq_add(r->q, key);
        json_decref(rs);
        return;
    }
    if (!kc_obj_controller_ref(pod))
        enqueue_matching(r, pod);
}

static void pod_update(void *ctx, json_t *old, json_t *pod)
{
    struct rsc *r = ctx;
    const char *orv = kc_obj_str(old, "metadata.resourceVersion"), *rv = kc_obj_str(pod, "metadata.resourceVersion");
    if (orv && rv && !strcmp(orv, rv))
        return; /* resync: the periodic RS resync covers it */
    bool labels_changed = !json_equal(kc_obj_get(old, "metadata.labels") ?: json_null(),
                                      kc_obj_get(pod, "metadata.labels") ?: json_null());
    if (kc_obj_get(pod, "metadata.deletionTimestamp")) {
        pod_deleted(r, pod);
        if (labels_changed)
            pod_deleted(r, old);
        return;
    }
    json_t *oref = kc_obj_controller_ref(old), *nref = kc_obj_controller_ref(pod);
    bool ref_changed = !json_equal(oref ?: json_null(), nref ?: json_null());
    if (ref_changed && oref) {
        json_t *ors = resolve_controller(r, old);
        if (ors) {
            enqueue(r, ors);
            json_decref(ors);
        }
    }
    json_t *rs = resolve_controller(r, pod);
    if (rs) {
        enqueue(r, rs);
        /* a pod that just became ready becomes available minReadySeconds later */
        json_int_t mrs = json_integer_value(kc_obj_get(rs, "spec.minReadySeconds"));
        if (mrs > 0 && !kc_pod_is_ready(old) && kc_pod_is_ready(pod)) {
            char key[512];
            kc_wq_add_after(r->q, rs_key(rs, key, sizeof key), (int)(mrs > 86400 ? 86400 : mrs) * 1000 + 1000);
        }
        json_decref(rs);
        return;
    }
    if (!nref && (labels_changed || ref_changed))
        enqueue_matching(r, pod);
}

static void pod_delete(void *ctx, json_t *pod)
{
    pod_deleted(ctx, pod);
}

/* ---------- API actions ---------- */

static json_t *controller_ref_for(json_t *rs)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b}", "apiVersion", "apps/v1", "kind", "ReplicaSet", "name",
                     kc_obj_str(rs, "metadata.name") ?: "", "uid", kc_obj_str(rs, "metadata.uid") ?: "",
                     "controller", 1, "blockOwnerDeletion", 1);
}

/* Pod from spec.template (upstream GetPodFromTemplate). */
static json_t *pod_from_template(json_t *rs)
{
    json_t *tmpl = kc_obj_get(rs, "spec.template");
    json_t *meta = json_object();
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s-", kc_obj_str(rs, "metadata.name") ?: "");
    json_object_set_new(meta, "generateName", json_string(prefix));
    json_object_set_new(meta, "namespace", json_string(kc_obj_str(rs, "metadata.namespace") ?: "default"));
    static const char *copy[] = {"labels", "annotations", "finalizers"};
    for (size_t i = 0; i < sizeof copy / sizeof *copy; i++) {
        json_t *v = kc_obj_get(json_object_get(tmpl, "metadata"), copy[i]);
        if (v)
            json_object_set_new(meta, copy[i], kc_json_copy(v));
    }
    json_object_set_new(meta, "ownerReferences", json_pack("[o]", controller_ref_for(rs)));
    json_t *spec = json_object_get(tmpl, "spec");
    return json_pack("{s:s, s:s, s:o, s:o}", "apiVersion", "v1", "kind", "Pod", "metadata", meta, "spec",
                     spec ? kc_json_copy(spec) : json_object());
}

static int create_pod(struct rsc *r, json_t *rs, struct kc_err *err)
{
    char path[600];
    json_t *pod = pod_from_template(rs), *out = NULL;
    kc_path(path, sizeof path, "", "v1", "pods", kc_obj_str(rs, "metadata.namespace"), NULL, NULL);
    int rc = kc_client_create_ro(r->c, path, pod, &out, err); /* out: only its name is read */
    json_decref(pod);
    if (rc) {
        kc_event_emit(r->c, rs, "Warning", "FailedCreate", COMPONENT, "Error creating: %s", err->message);
        return rc;
    }
    kc_event_emit(r->c, rs, "Normal", "SuccessfulCreate", COMPONENT, "Created pod: %s",
                  kc_obj_str(out, "metadata.name") ?: "");
    json_decref(out);
    return 0;
}

/* Creates `diff` pods in slow-start batches; returns 0 or the first error. Creations that
 * failed or were never attempted are subtracted from the expectations at once. */
static int create_pods(struct rsc *r, json_t *rs, const char *key, int diff, struct kc_err *err)
{
    expect_set(r, key, diff, NULL, 0);
    int remaining = diff, batch = 0, rc = 0;
    while (!rc && (batch = kc_slow_start_next(batch, remaining, 1)) > 0) {
        for (int i = 0; i < batch; i++) {
            struct kc_err e = {0};
            int x = create_pod(r, rs, &e);
            if (x) {
                expect_created(r, key, 1);
                if (!rc) {
                    rc = x;
                    *err = e;
                }
            }
        }
        remaining -= batch;
    }
    if (remaining > 0)
        expect_created(r, key, remaining); /* skipped after a failed batch */
    return rc;
}

static size_t active_pods_of(struct rsc *r, const char *uid, json_t ***out)
{
    json_t **pods = NULL;
    size_t n = kc_informer_by_index(r->inf->pods, KC_IDX_CONTROLLER, uid, &pods), k = 0;
    for (size_t i = 0; i < n; i++) {
        if (kc_pod_is_active(pods[i]))
            pods[k++] = pods[i];
        else
            json_decref(pods[i]);
    }
    *out = pods;
    return k;
}

static void free_objs(json_t **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(v[i]);
    free(v);
}

/* Upstream getIndirectlyRelatedPods: active pods of every ReplicaSet sharing this one's
 * controller (e.g. all ReplicaSets of a Deployment); just `own` when it has none. */
static size_t related_pods(struct rsc *r, json_t *rs, json_t ***out)
{
    json_t *ref = kc_obj_controller_ref(rs);
    const char *owner = json_string_value(json_object_get(ref, "uid"));
    *out = NULL;
    if (!owner)
        return 0;
    json_t **rss = NULL, **all = NULL;
    size_t nrs = kc_informer_by_index(r->inf->replicasets, KC_IDX_CONTROLLER, owner, &rss), nall = 0;
    for (size_t i = 0; i < nrs; i++) {
        json_t **p = NULL;
        size_t np = active_pods_of(r, kc_obj_str(rss[i], "metadata.uid") ?: "", &p);
        json_t **grown = realloc(all, (nall + np + 1) * sizeof *all);
        if (grown) {
            all = grown;
            memcpy(all + nall, p, np * sizeof *p);
            nall += np;
            free(p);
        } else {
            free_objs(p, np);
        }
    }
    free_objs(rss, nrs);
    *out = all;
    return nall;
}

static int delete_pods(struct rsc *r, json_t *rs, const char *key, json_t **pods, size_t n, int diff,
                       struct kc_err *err)
{
    json_t **victims = calloc(n ? n : 1, sizeof *victims), **rel = NULL;
    if (!victims)
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    size_t nrel = related_pods(r, rs, &rel);
    time_t now = time(NULL);
    size_t nv = kc_pods_to_delete(pods, n, rel ? rel : pods, rel ? nrel : n, (size_t)diff, now, victims);
    expect_set(r, key, 0, victims, nv);
    int rc = 0;
    for (size_t i = 0; i < nv; i++) {
        char path[600], pk[512];
        const char *name = kc_obj_str(victims[i], "metadata.name") ?: "";
        struct kc_err e = {0};
        kc_path(path, sizeof path, "", "v1", "pods", kc_obj_str(victims[i], "metadata.namespace"), name, NULL);
        int x = kc_client_delete(r->c, path, NULL, NULL, &e);
        if (x == 0) {
            kc_event_emit(r->c, rs, "Normal", "SuccessfulDelete", COMPONENT, "Deleted pod: %s", name);
            continue;
        }
        /* the delete will never be observed: stop expecting it */
        expect_deleted(r, key, kc_object_key(victims[i], pk, sizeof pk));
        if (x == KC_ENOTFOUND)
            continue;
        kc_event_emit(r->c, rs, "Warning", "FailedDelete", COMPONENT, "Error deleting: %s", e.message);
        if (!rc) {
            rc = x;
            *err = e;
        }
    }
    free(victims);
    free_objs(rel, nrel);
    return rc;
}

/* Sets metadata.ownerReferences of a pod to `refs` (NULL/empty = remove) with a merge patch that
 * carries the cached resourceVersion, so a concurrent change (another adopter) makes it fail
 * with a conflict instead of being overwritten. */
static int patch_owner_refs(struct rsc *r, json_t *pod, json_t *refs, struct kc_err *err)
{
    char path[600];
    kc_path(path, sizeof path, "", "v1", "pods", kc_obj_str(pod, "metadata.namespace"),
            kc_obj_str(pod, "metadata.name"), NULL);
    json_t *patch = json_pack("{s:{s:s, s:o}}", "metadata", "resourceVersion",
                              kc_obj_str(pod, "metadata.resourceVersion") ?: "", "ownerReferences",
                              json_array_size(refs) ? json_incref(refs) : json_null());
    int rc = kc_client_patch(r->c, path, "application/merge-patch+json", patch, NULL, err);
    json_decref(patch);
    return rc;
}

static int adopt(struct rsc *r, json_t *rs, json_t *pod, struct kc_err *err)
{
    json_t *refs = kc_json_copy(kc_obj_get(pod, "metadata.ownerReferences"));
    if (!json_is_array(refs)) {
        json_decref(refs);
        refs = json_array();
    }
    json_array_append_new(refs, controller_ref_for(rs));
    int rc = patch_owner_refs(r, pod, refs, err);
    json_decref(refs);
    return rc;
}

static int release(struct rsc *r, json_t *rs, json_t *pod, struct kc_err *err)
{
    const char *uid = kc_obj_str(rs, "metadata.uid");
    json_t *refs = json_array();
    size_t i;
    json_t *ref;
    json_array_foreach(kc_obj_get(pod, "metadata.ownerReferences"), i, ref) {
        if (strcmp(json_string_value(json_object_get(ref, "uid")) ?: "", uid ?: ""))
            json_array_append(refs, ref);
    }
    int rc = patch_owner_refs(r, pod, refs, err);
    json_decref(refs);
    return rc;
}

/* Upstream RecheckDeletionTimestamp: before adopting, confirm with a live read that the
 * ReplicaSet still exists with the same uid and is not being deleted. */
static bool can_adopt(struct rsc *r, json_t *rs)
{
    char path[600];
    struct kc_err err = {0};
    json_t *fresh = NULL;
    kc_path(path, sizeof path, "apps", "v1", "replicasets", kc_obj_str(rs, "metadata.namespace"),
            kc_obj_str(rs, "metadata.name"), NULL);
    if (kc_client_get(r->c, path, &fresh, &err))
        return false;
    bool ok = !strcmp(kc_obj_str(fresh, "metadata.uid") ?: "", kc_obj_str(rs, "metadata.uid") ?: "") &&
              !kc_obj_get(fresh, "metadata.deletionTimestamp");
    json_decref(fresh);
    return ok;
}

/* ControllerRefManager.ClaimPods over the active pods of the namespace: keeps the ones this
 * ReplicaSet owns (and still selects), adopts matching orphans, releases owned non-matching
 * ones. Claimed pods (new references) go to *out. */
static int claim_pods(struct rsc *r, json_t *rs, const struct kc_label_selector *sel, json_t **ns_pods, size_t n,
                      json_t ***out, size_t *nout, struct kc_err *err)
{
    const char *uid = kc_obj_str(rs, "metadata.uid") ?: "";
    bool deleting = kc_obj_get(rs, "metadata.deletionTimestamp") != NULL;
    int adoptable = -1, rc = 0;
    json_t **claimed = calloc(n ? n : 1, sizeof *claimed);
    size_t k = 0;
    if (!claimed)
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *pod = ns_pods[i], *ref = kc_obj_controller_ref(pod);
        bool match = !kc_label_selector_empty(sel) &&
                     kc_label_selector_matches_json(sel, kc_obj_get(pod, "metadata.labels"));
        struct kc_err e = {0};
        int x = 0;
        if (ref) {
            if (strcmp(json_string_value(json_object_get(ref, "uid")) ?: "", uid))
                continue; /* someone else's */
            if (match) {
                claimed[k++] = json_incref(pod);
                continue;
            }
            if (deleting)
                continue;
            x = release(r, rs, pod, &e);
        } else {
            if (deleting || !match || kc_obj_get(pod, "metadata.deletionTimestamp"))
                continue;
            if (adoptable < 0)
                adoptable = can_adopt(r, rs);
            if (!adoptable)
                continue;
            x = adopt(r, rs, pod, &e);
            if (x == 0) {
                claimed[k++] = json_incref(pod);
                continue;
            }
        }
        if (x && x != KC_ENOTFOUND && !rc) {
            rc = x;
            *err = e;
        }
    }
    *out = claimed;
    *nout = k;
    return rc;
}

/* ---------- status ---------- */

static json_int_t status_int(json_t *rs, const char *field)
{
    return json_integer_value(json_object_get(kc_obj_get(rs, "status"), field));
}

static json_t *find_condition(json_t *conds, const char *type)
{
    size_t i;
    json_t *c;
    json_array_foreach(conds, i, c) if (!strcmp(json_string_value(json_object_get(c, "type")) ?: "", type)) return c;
    return NULL;
}

/* Upstream calculateStatus; *requeue_s gets the seconds until the next pod becomes available. */
static json_t *compute_status(json_t *rs, json_t **pods, size_t n, int manage_rc, bool creating,
                              const struct kc_err *merr, int *requeue_s)
{
    json_t *tl = kc_obj_get(rs, "spec.template.metadata.labels");
    int mrs = (int)json_integer_value(kc_obj_get(rs, "spec.minReadySeconds"));
    time_t now = time(NULL);
    json_int_t fully = 0, ready = 0, avail = 0;
    *requeue_s = 0;
    for (size_t i = 0; i < n; i++) {
        if (kc_labels_superset(kc_obj_get(pods[i], "metadata.labels"), tl))
            fully++;
        if (kc_pod_is_ready(pods[i])) {
            ready++;
            if (kc_pod_is_available(pods[i], mrs, now))
                avail++;
            else {
                int in = kc_pod_available_in(pods[i], mrs, now);
                if (in > 0 && (*requeue_s == 0 || in < *requeue_s))
                    *requeue_s = in;
            }
        }
    }
    json_t *st = json_pack("{s:I}", "replicas", (json_int_t)n);
    if (fully)
        json_object_set_new(st, "fullyLabeledReplicas", json_integer(fully));
    if (ready)
        json_object_set_new(st, "readyReplicas", json_integer(ready));
    if (avail)
        json_object_set_new(st, "availableReplicas", json_integer(avail));
    json_int_t gen = json_integer_value(kc_obj_get(rs, "metadata.generation"));
    if (gen)
        json_object_set_new(st, "observedGeneration", json_integer(gen));
    json_t *conds = kc_json_copy(kc_obj_get(rs, "status.conditions"));
    if (!json_is_array(conds)) {
        json_decref(conds);
        conds = json_array();
    }
    json_t *failure = find_condition(conds, "ReplicaFailure");
    if (manage_rc && !failure) {
        char ts[40];
        kc_time_rfc3339(now, ts, sizeof ts);
        json_array_append_new(conds, json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "ReplicaFailure", "status",
                                               "True", "lastTransitionTime", ts, "reason",
                                               creating ? "FailedCreate" : "FailedDelete", "message",
                                               merr->message));
    } else if (!manage_rc && failure) {
        size_t i;
        json_t *c;
        json_array_foreach(conds, i, c) if (c == failure) {
            json_array_remove(conds, i);
            break;
        }
    }
    if (json_array_size(conds))
        json_object_set_new(st, "conditions", conds);
    else
        json_decref(conds);
    return st;
}

static bool status_same(json_t *rs, json_t *st)
{
    static const char *f[] = {"replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas",
                              "observedGeneration"};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
        if (status_int(rs, f[i]) != json_integer_value(json_object_get(st, f[i])))
            return false;
    json_t *a = kc_obj_get(rs, "status.conditions"), *b = json_object_get(st, "conditions");
    if (json_array_size(a) == 0 && json_array_size(b) == 0)
        return true;
    return a && b && json_equal(a, b);
}

/* PUT /status; on a conflict re-reads the ReplicaSet once and retries (upstream statusUpdateRetries). */
static int update_status(struct rsc *r, json_t *rs, json_t *st, struct kc_err *err)
{
    char path[600];
    kc_path(path, sizeof path, "apps", "v1", "replicasets", kc_obj_str(rs, "metadata.namespace"),
            kc_obj_str(rs, "metadata.name"), "status");
    json_t *obj = kc_json_copy(rs);
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        json_object_set(obj, "status", st);
        rc = kc_client_update(r->c, path, obj, NULL, err);
        if (rc != KC_ECONFLICT)
            break;
        json_t *fresh = NULL;
        char gpath[600];
        kc_path(gpath, sizeof gpath, "apps", "v1", "replicasets", kc_obj_str(rs, "metadata.namespace"),
                kc_obj_str(rs, "metadata.name"), NULL);
        if (kc_client_get(r->c, gpath, &fresh, err))
            break;
        json_decref(obj);
        obj = fresh;
    }
    json_decref(obj);
    return rc;
}

/* ---------- sync ---------- */

static int manage(struct rsc *r, json_t *rs, const char *key, json_t **pods, size_t n, bool *creating,
                  struct kc_err *err)
{
    json_t *rep = kc_obj_get(rs, "spec.replicas");
    long want = rep ? (long)json_integer_value(rep) : 1;
    long diff = (long)n - want;
    *creating = diff < 0;
    if (diff < 0) {
        diff = -diff > KC_RS_BURST ? KC_RS_BURST : -diff;
        return create_pods(r, rs, key, (int)diff, err);
    }
    if (diff > 0)
        return delete_pods(r, rs, key, pods, n, diff > KC_RS_BURST ? KC_RS_BURST : (int)diff, err);
    return 0;
}

static int sync_rs(struct rsc *r, const char *key, int *requeue_s, struct kc_err *err)
{
    json_t *rs = kc_informer_get(r->inf->replicasets, key);
    if (!rs) {
        expect_drop(r, key);
        return 0;
    }
    bool needs_sync = expect_satisfied(r, key);
    struct kc_label_selector *sel = NULL;
    struct kc_err serr = {0};
    if (kc_label_selector_from_json(kc_obj_get(rs, "spec.selector"), &sel, &serr)) {
        kc_warn(COMPONENT, "%s: invalid selector: %s", key, serr.message);
        json_decref(rs);
        return 0; /* retrying cannot help */
    }

    json_t **all = NULL, **claimed = NULL;
    size_t nall = kc_cm_owned_and_orphans(r->inf->pods, kc_obj_str(rs, "metadata.uid") ?: "",
                                          kc_obj_str(rs, "metadata.namespace") ?: "", &all),
           nactive = 0, nclaimed = 0;
    for (size_t i = 0; i < nall; i++) {
        if (kc_pod_is_active(all[i]))
            all[nactive++] = all[i];
        else
            json_decref(all[i]);
    }
    int rc = claim_pods(r, rs, sel, all, nactive, &claimed, &nclaimed, err);
    kc_label_selector_free(sel);
    free_objs(all, nactive);
    if (rc) {
        free_objs(claimed, nclaimed);
        json_decref(rs);
        return rc;
    }
    int mrc = 0;
    bool creating = false;
    struct kc_err merr = {0};
    if (needs_sync && !kc_obj_get(rs, "metadata.deletionTimestamp"))
        mrc = manage(r, rs, key, claimed, nclaimed, &creating, &merr);
    json_t *st = compute_status(rs, claimed, nclaimed, mrc, creating, &merr, requeue_s);
    free_objs(claimed, nclaimed);
    if (!status_same(rs, st))
        rc = update_status(r, rs, st, err);
    json_decref(st);
    json_decref(rs);
    if (mrc) {
        *err = merr;
        return mrc;
    }
    return rc;
}

/* Upstream starts workers after WaitForCacheSync: a sync against a half-filled pod cache would
 * create duplicates. */
static void wait_caches(struct rsc *r)
{
    struct kc_informer *all[] = {r->inf->replicasets, r->inf->pods};
    for (size_t i = 0; i < 2; i++)
        while (!atomic_load(&r->stopping) && kc_informer_wait_synced(all[i], 200))
            ;
}

static void *worker(void *arg)
{
    pthread_setname_np(pthread_self(), "kc-rs-sync");
    struct rsc *r = arg;
    char *key;
    wait_caches(r);
    while ((key = kc_wq_get(r->q)) != NULL) {
        struct kc_err err = {0};
        int requeue_s = 0;
        int rc = sync_rs(r, key, &requeue_s, &err);
        if (rc) {
            kc_debug(COMPONENT, "sync %s: %s", key, err.message);
            kc_wq_add_rate_limited(r->q, key);
        } else {
            kc_wq_forget(r->q, key);
            if (requeue_s > 0)
                kc_wq_add_after(r->q, key, requeue_s * 1000 + 100);
        }
        kc_wq_done(r->q, key);
        free(key);
    }
    return NULL;
}

/* ---------- start / stop ---------- */

int kc_rs_controller_start(struct kc_client *c, struct kc_cm_informers *inf, int workers, void **out)
{
    struct rsc *r = calloc(1, sizeof *r);
    if (!r)
        return KC_ENOMEM;
    r->c = c;
    r->inf = inf;
    pthread_mutex_init(&r->mu, NULL);
    kc_map_init(&r->exp);
    r->q = kc_wq_new("replicaset", 5, 1000 * 1000);
    if (workers < 1)
        workers = 1;
    r->threads = calloc((size_t)workers, sizeof *r->threads);
    if (!r->q || !r->threads) {
        kc_rs_controller_stop(r);
        return KC_ENOMEM;
    }
    struct kc_informer_handlers hr = {.ctx = r, .on_add = rs_add, .on_update = rs_update, .on_delete = rs_delete};
    struct kc_informer_handlers hp = {.ctx = r, .on_add = pod_add, .on_update = pod_update, .on_delete = pod_delete};
    kc_informer_add_handlers(inf->replicasets, &hr);
    kc_informer_add_handlers(inf->pods, &hp);
    for (int i = 0; i < workers; i++) {
        if (pthread_create(&r->threads[i], NULL, worker, r)) {
            kc_rs_controller_stop(r);
            return KC_ENOMEM;
        }
        r->nthreads++;
    }
    *out = r;
    return 0;
}

void kc_rs_controller_stop(void *ctl)
{
    struct rsc *r = ctl;
    if (!r)
        return;
    atomic_store(&r->stopping, true);
    if (r->q)
        kc_wq_shutdown(r->q);
    for (int i = 0; i < r->nthreads; i++)
        pthread_join(r->threads[i], NULL);
    free(r->threads);
    if (r->q)
        kc_wq_free(r->q);
    const char *k;
    void *v;
    for (long i = kc_map_next(&r->exp, 0, &k, &v); i >= 0; i = kc_map_next(&r->exp, i + 1, &k, &v))
        expect_free(v);
    kc_map_release(&r->exp);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
