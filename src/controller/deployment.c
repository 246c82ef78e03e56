/* deployment.c — the Deployment controller (upstream pkg/controller/deployment): owns ReplicaSets
 * named <deployment>-<pod-template-hash>, rolls pods from old to new ReplicaSets with the
 * RollingUpdate or Recreate strategy, scales proportionally mid-rollout, keeps
 * revisionHistoryLimit old ReplicaSets, and reports status and the Available / Progressing /
 * ReplicaFailure conditions.
 *
 * Data structures: struct dctl (client, shared informers, work queue of "ns/name" keys, worker
 * threads). One sync works on a struct dsync: a private copy of the Deployment (replaced by the
 * server's answer after each write) and the ReplicaSets it owns (new references, replaced after
 * each write); new_idx marks the "new" RS (template equal to the Deployment's).
 *
 * Threads: informer handlers (on the informers' threads) only enqueue keys; `workers` worker
 * threads take keys from the queue (never the same key twice at once) and run sync_deployment.
 * All rollout arithmetic is in rollout.c; this file does the reading, writing and bookkeeping.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/workqueue.h"
#include "controller/controllers_int.h"
#include "controller/rollout.h"
#include "meta/selector.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/jsonparse.h"

#define COMPONENT "deployment-controller"
#define MAX_RETRIES 15 /* upstream's maxRetries before a key is dropped */
#define MAX_RS 512     /* ReplicaSets per Deployment we will look at */

#define ANN_REVISION "deployment.kubernetes.io/revision"
#define ANN_REV_HISTORY "deployment.kubernetes.io/revision-history"
#define ANN_DESIRED "deployment.kubernetes.io/desired-replicas"
#define ANN_MAX "deployment.kubernetes.io/max-replicas"
#define ANN_TIMELINE "kubec.io/timeline"

struct dctl {
    struct kc_client *c;
    struct kc_cm_informers *inf;
    struct kc_wq *q;
    int nworkers;
    pthread_t *workers;
    atomic_bool stopping;
};

struct dsync {
    struct dctl *dc;
    char ns[256], name[256];
    json_t *d;          /* the Deployment: the top level is ours (status and type fields are set on it), every
                         * member is shared with the informer's cache or the server's and is never changed */
    struct kc_ro_deploy ro;
    json_t **rs;        /* owned ReplicaSets (owned references) */
    size_t nrs;
    int new_idx;        /* index of the new RS in rs, -1 if none */
    json_t *fresh;      /* a fresh GET of the Deployment for adoption checks (lazy) */
};

/* ---------- small JSON helpers ---------- */

static json_t *jp(json_t *o, const char *path)
{
    char seg[128];
    while (o && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof seg)
            return NULL;
        memcpy(seg, path, n);
        seg[n] = '\0';
        o = json_object_get(o, seg);
        path += n + (dot ? 1 : 0);
    }
    return o;
}

static const char *js(json_t *o, const char *path)
{
    return json_string_value(jp(o, path));
}

static long long ji(json_t *o, const char *path)
{
    return json_integer_value(jp(o, path));
}

static int rs_replicas(json_t *rs)
{
    json_t *r = jp(rs, "spec.replicas");
    return r ? (int)json_integer_value(r) : 1;
}

static const char *annot(json_t *o, const char *key)
{
    return json_string_value(json_object_get(jp(o, "metadata.annotations"), key));
}

static json_t *obj_at(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_object(v)) {
        v = json_object();
        json_object_set_new(o, key, v);
    }
    return v;
}

static void set_annot(json_t *o, const char *key, const char *val)
{
    json_object_set_new(obj_at(obj_at(o, "metadata"), "annotations"), key, json_string(val));
}

static int64_t parse_i64(const char *s, bool *ok)
{
    char *end;
    if (!s || !*s) {
        *ok = false;
        return 0;
    }
    long long v = strtoll(s, &end, 10);
    *ok = *end == '\0';
    return *ok ? v : 0;
}

static int64_t rs_revision(json_t *rs)
{
    bool ok;
    int64_t v = parse_i64(annot(rs, ANN_REVISION), &ok);
    return ok ? v : 0;
}

static int64_t created_at(json_t *o)
{
    time_t t = 0;
    const char *s = js(o, "metadata.creationTimestamp");
    if (s)
        kc_time_parse(s, &t);
    return (int64_t)t;
}

static json_t *controller_ref(json_t *o)
{
    size_t i;
    json_t *ref;
    json_array_foreach(jp(o, "metadata.ownerReferences"), i, ref)
        if (json_is_true(json_object_get(ref, "controller")))
            return ref;
    return NULL;
}

static void now_str(char *out, size_t n)
{
    kc_time_rfc3339(time(NULL), out, n);
}

static bool has_progress_deadline(json_t *d)
{
    json_t *p = jp(d, "spec.progressDeadlineSeconds");
    return p && json_integer_value(p) != 2147483647;
}

/* ---------- conditions (util's Get/Set/RemoveDeploymentCondition) ---------- */

static json_t *cond_get(json_t *status, const char *type)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(status, "conditions"), i, c)
        if (!strcmp(json_string_value(json_object_get(c, "type")) ?: "", type))
            return c;
    return NULL;
}

static void cond_remove(json_t *status, const char *type)
{
    json_t *arr = json_object_get(status, "conditions");
    for (size_t i = 0; i < json_array_size(arr);) {
        if (!strcmp(js(json_array_get(arr, i), "type") ?: "", type))
            json_array_remove(arr, i);
        else
            i++;
    }
    if (arr && json_array_size(arr) == 0)
        json_object_del(status, "conditions");
}

/* Adds cond (stolen) unless one of that type with the same status and reason exists; keeps
 * lastTransitionTime when the status does not change. */
static void cond_set(json_t *status, json_t *cond)
{
    const char *type = js(cond, "type"), *st = js(cond, "status"), *reason = js(cond, "reason");
    json_t *cur = cond_get(status, type);
    if (cur && !strcmp(js(cur, "status") ?: "", st) && !strcmp(js(cur, "reason") ?: "", reason ?: "")) {
        json_decref(cond);
        return;
    }
    if (cur && !strcmp(js(cur, "status") ?: "", st) && json_object_get(cur, "lastTransitionTime"))
        json_object_set(cond, "lastTransitionTime", json_object_get(cur, "lastTransitionTime"));
    cond_remove(status, type);
    json_t *arr = json_object_get(status, "conditions");
    if (!json_is_array(arr)) {
        arr = json_array();
        json_object_set_new(status, "conditions", arr);
    }
    json_array_append_new(arr, cond);
}

static json_t *cond_new(const char *type, const char *st, const char *reason, const char *msg)
{
    char now[32];
    now_str(now, sizeof now);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", type, "status", st, "lastUpdateTime", now,
                     "lastTransitionTime", now, "reason", reason, "message", msg);
}

/* ---------- writes ---------- */

static const char *dname(struct dsync *s)
{
    return s->name;
}

/* Creation timeline (docs/timeline.md): the first status write with Available=True carries the
 * "available" stage in the timeline annotation; /status ignores other metadata but merges timeline
 * stages (never replacing one), so a later rollout keeps the first stamp. */
static void stamp_available(json_t *body, json_t *status)
{
    json_t *c = cond_get(status, "Available");
    if (!c || strcmp(js(c, "status") ?: "", "True"))
        return;
    json_t *tl = kc_json_loads(annot(body, ANN_TIMELINE) ?: "{}", 0, NULL);
    if (!json_is_object(tl)) {
        json_decref(tl);
        tl = json_object();
    }
    if (!json_object_get(tl, "available")) {
        struct timespec ts;
        char now[40];
        clock_gettime(CLOCK_REALTIME, &ts);
        kc_time_rfc3339_micro(&ts, now, sizeof now);
        json_object_set_new(tl, "available", json_string(now));
        char *v = json_dumps(tl, JSON_COMPACT | JSON_SORT_KEYS);
        if (v)
            set_annot(body, ANN_TIMELINE, v);
        free(v);
    }
    json_decref(tl);
}

/* Makes a write's answer the Deployment we work on. The answer may be the server's own tree (read-only):
 * ours is a new top level over it (struct dsync). */
static int take_answer(struct dsync *s, json_t *out)
{
    json_decref(s->d);
    s->d = json_copy(out);
    json_decref(out);
    return s->d ? 0 : KC_ENOMEM;
}

/* PUT the working copy's status through /status (only called when it changed). */
static int put_status(struct dsync *s, json_t *status)
{
    char path[640];
    json_t *body = kc_json_copy(s->d), *out = NULL;
    if (status)
        json_object_set(body, "status", status);
    stamp_available(body, status);
    struct kc_err err = {0};
    int rc = kc_client_update_ro(s->dc->c,
                                 kc_path(path, sizeof path, "apps", "v1", "deployments", s->ns, s->name, "status"),
                                 body, &out, &err);
    json_decref(body);
    if (rc) {
        kc_debug(COMPONENT, "status update of %s/%s: %s", s->ns, s->name, err.message);
        return rc;
    }
    return take_answer(s, out);
}

/* The Deployment's revision annotation (upstream writes it with UpdateStatus; our /status keeps
 * metadata, so it goes through a metadata-only merge patch, which does not bump generation). */
static int set_deployment_revision(struct dsync *s, const char *rev)
{
    if (!rev || !strcmp(annot(s->d, ANN_REVISION) ?: "", rev))
        return 0;
    char path[640];
    json_t *patch = json_pack("{s:{s:{s:s}}}", "metadata", "annotations", ANN_REVISION, rev), *out = NULL;
    struct kc_err err = {0};
    int rc = kc_client_patch_ro(s->dc->c,
                                kc_path(path, sizeof path, "apps", "v1", "deployments", s->ns, s->name, NULL),
                                "application/merge-patch+json", patch, &out, &err);
    json_decref(patch);
    if (rc)
        return rc;
    /* Keep our in-progress status: the patch answer carries the server's (older) status. */
    json_t *st = json_incref(json_object_get(s->d, "status"));
    rc = take_answer(s, out);
    if (!rc && st)
        json_object_set(s->d, "status", st);
    json_decref(st);
    return rc;
}

static int put_rs(struct dsync *s, size_t i, json_t *rs)
{
    char path[640];
    json_t *out = NULL;
    struct kc_err err = {0};
    json_object_set_new(rs, "apiVersion", json_string("apps/v1"));
    json_object_set_new(rs, "kind", json_string("ReplicaSet"));
    /* s->rs[] are only read (changes go to copies), so the answer may be shared */
    int rc = kc_client_update_ro(s->dc->c,
                                 kc_path(path, sizeof path, "apps", "v1", "replicasets", s->ns, js(rs, "metadata.name"),
                                         NULL),
                                 rs, &out, &err);
    if (rc) {
        kc_debug(COMPONENT, "update of replica set %s: %s", js(rs, "metadata.name"), err.message);
        return rc;
    }
    json_decref(s->rs[i]);
    s->rs[i] = out;
    return 0;
}

static bool replicas_annotations_need_update(struct dsync *s, json_t *rs)
{
    char want[24];
    snprintf(want, sizeof want, "%d", s->ro.replicas);
    if (strcmp(annot(rs, ANN_DESIRED) ?: "", want))
        return true;
    snprintf(want, sizeof want, "%d", s->ro.replicas + kc_ro_max_surge(&s->ro));
    return strcmp(annot(rs, ANN_MAX) ?: "", want) != 0;
}

static void set_replicas_annotations(struct dsync *s, json_t *rs)
{
    char v[24];
    snprintf(v, sizeof v, "%d", s->ro.replicas);
    set_annot(rs, ANN_DESIRED, v);
    snprintf(v, sizeof v, "%d", s->ro.replicas + kc_ro_max_surge(&s->ro));
    set_annot(rs, ANN_MAX, v);
}

/* scaleReplicaSet: sets size and the desired/max annotations; an event when the size changed. */
static int scale_rs(struct dsync *s, size_t i, int new_scale, const char *op, bool *scaled)
{
    json_t *rs = s->rs[i];
    int old = rs_replicas(rs);
    bool size_change = old != new_scale;
    if (!size_change && !replicas_annotations_need_update(s, rs))
        return 0;
    json_t *cp = kc_json_copy(rs);
    json_object_set_new(obj_at(cp, "spec"), "replicas", json_integer(new_scale));
    set_replicas_annotations(s, cp);
    int rc = put_rs(s, i, cp);
    json_decref(cp);
    if (!rc && size_change) {
        if (scaled)
            *scaled = true;
        kc_event_emit(s->dc->c, s->d, "Normal", "ScalingReplicaSet", COMPONENT, "Scaled %s replica set %s from %d to %d",
                      op, js(s->rs[i], "metadata.name"), old, new_scale);
    }
    return rc;
}

/* scaleReplicaSetAndRecordEvent: nothing when the size is already right. */
static int scale_rs_event(struct dsync *s, size_t i, int new_scale, bool *scaled)
{
    int old = rs_replicas(s->rs[i]);
    if (old == new_scale)
        return 0;
    return scale_rs(s, i, new_scale, old < new_scale ? "up" : "down", scaled);
}

/* ---------- claiming ReplicaSets (ControllerRefManager) ---------- */

static bool can_adopt(struct dsync *s)
{
    if (!s->fresh) {
        char path[640];
        struct kc_err err = {0};
        if (kc_client_get(s->dc->c, kc_path(path, sizeof path, "apps", "v1", "deployments", s->ns, s->name, NULL),
                          &s->fresh, &err))
            return false;
    }
    return !strcmp(js(s->fresh, "metadata.uid") ?: "", js(s->d, "metadata.uid") ?: "") &&
           !jp(s->fresh, "metadata.deletionTimestamp");
}

static int patch_owner(struct dsync *s, json_t *rs, bool adopt, json_t **out)
{
    char path[640];
    json_t *ref;
    if (adopt)
        ref = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b}", "apiVersion", "apps/v1", "kind", "Deployment", "name",
                        s->name, "uid", js(s->d, "metadata.uid"), "controller", 1, "blockOwnerDeletion", 1);
    else
        ref = json_pack("{s:s, s:s}", "$patch", "delete", "uid", js(s->d, "metadata.uid"));
    json_t *patch = json_pack("{s:{s:[o], s:s}}", "metadata", "ownerReferences", ref, "uid", js(rs, "metadata.uid") ?: "");
    struct kc_err err = {0};
    int rc = kc_client_patch(s->dc->c,
                             kc_path(path, sizeof path, "apps", "v1", "replicasets", s->ns, js(rs, "metadata.name"), NULL),
                             "application/strategic-merge-patch+json", patch, out, &err);
    json_decref(patch);
    return rc;
}

static void add_rs(struct dsync *s, json_t *rs)
{
    json_t **v = realloc(s->rs, (s->nrs + 1) * sizeof *v);
    if (!v) {
        json_decref(rs);
        return;
    }
    s->rs = v;
    s->rs[s->nrs++] = rs;
}

/* getReplicaSetsForDeployment: adopt matching orphans, release owned ones that stopped matching. */
static int claim_replicasets(struct dsync *s, struct kc_label_selector *sel)
{
    json_t **all = NULL;
    const char *uid = js(s->d, "metadata.uid") ?: "";
    size_t n = kc_cm_owned_and_orphans(s->dc->inf->replicasets, uid, s->ns, &all);
    bool deleting = jp(s->d, "metadata.deletionTimestamp") != NULL;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *rs = all[i];
        json_t *ref = controller_ref(rs);
        bool matches = kc_label_selector_matches_json(sel, jp(rs, "metadata.labels"));
        if (ref) {
            if (strcmp(js(ref, "uid") ?: "", uid)) {
                json_decref(rs);
                continue;
            }
            if (matches || deleting) {
                if (s->nrs < MAX_RS && (matches || !deleting)) {
                    add_rs(s, rs);
                    continue;
                }
            } else if (can_adopt(s)) {
                json_t *out = NULL;
                patch_owner(s, rs, false, &out); /* release; not ours any more */
                json_decref(out);
            }
            json_decref(rs);
            continue;
        }
        if (!matches || deleting || jp(rs, "metadata.deletionTimestamp") || s->nrs >= MAX_RS || !can_adopt(s)) {
            json_decref(rs);
            continue;
        }
        json_t *out = NULL;
        int prc = patch_owner(s, rs, true, &out);
        json_decref(rs);
        if (prc == KC_ENOTFOUND)
            continue;
        if (prc) {
            rc = prc;
            continue;
        }
        add_rs(s, out);
    }
    free(all);
    return rc;
}

/* ---------- finding new / old ReplicaSets ---------- */

static int find_new_rs(struct dsync *s)
{
    json_t *tmpl = jp(s->d, "spec.template");
    int best = -1;
    for (size_t i = 0; i < s->nrs; i++) {
        if (!kc_ro_template_equal(jp(s->rs[i], "spec.template"), tmpl))
            continue;
        /* The oldest one wins when several match (upstream issue 40415). */
        if (best < 0 || created_at(s->rs[i]) < created_at(s->rs[best]) ||
            (created_at(s->rs[i]) == created_at(s->rs[best]) &&
             strcmp(js(s->rs[i], "metadata.name") ?: "", js(s->rs[best], "metadata.name") ?: "") < 0))
            best = (int)i;
    }
    return best;
}

static int64_t max_old_revision(struct dsync *s)
{
    int64_t max = 0;
    for (size_t i = 0; i < s->nrs; i++)
        if ((int)i != s->new_idx && rs_revision(s->rs[i]) > max)
            max = rs_revision(s->rs[i]);
    return max;
}

static bool skip_copy_annotation(const char *k)
{
    static const char *skip[] = {"kubectl.kubernetes.io/last-applied-configuration", ANN_REVISION, ANN_REV_HISTORY,
                                 ANN_DESIRED, ANN_MAX, "deprecated.deployment.rollback.to", ANN_TIMELINE};
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (!strcmp(k, skip[i]))
            return true;
    return false;
}

/* SetNewReplicaSetAnnotations; returns true if rs changed. */
static bool set_new_rs_annotations(struct dsync *s, json_t *rs, const char *new_rev, bool exists)
{
    bool changed = false;
    const char *k;
    json_t *v;
    json_object_foreach(jp(s->d, "metadata.annotations"), k, v) {
        if (skip_copy_annotation(k) || !json_is_string(v) || !strcmp(annot(rs, k) ?: "\x01", json_string_value(v)))
            continue;
        set_annot(rs, k, json_string_value(v));
        changed = true;
    }
    bool had = annot(rs, ANN_REVISION) != NULL, ok_old, ok_new;
    char old_rev[32];
    snprintf(old_rev, sizeof old_rev, "%s", annot(rs, ANN_REVISION) ?: "");
    int64_t o = parse_i64(old_rev, &ok_old), nv = parse_i64(new_rev, &ok_new);
    if (!ok_old && old_rev[0])
        return changed; /* unparsable revision: leave it alone, as upstream */
    if (ok_new && o < nv) {
        set_annot(rs, ANN_REVISION, new_rev);
        changed = true;
        if (had) {
            /* Rolling back to this RS: remember the revisions it served before. */
            char hist[KC_RO_REV_HISTORY_MAX + 32];
            if (!kc_ro_revision_history(annot(rs, ANN_REV_HISTORY), old_rev, KC_RO_REV_HISTORY_MAX, hist, sizeof hist))
                set_annot(rs, ANN_REV_HISTORY, hist);
        }
    }
    if (!exists) {
        set_replicas_annotations(s, rs);
        changed = true;
    }
    return changed;
}

static json_t *progress_status_copy(struct dsync *s)
{
    json_t *st = kc_json_copy(json_object_get(s->d, "status"));
    return st ? st : json_object();
}

/* getNewReplicaSet: sync the existing new RS's annotations/revision, or create it. */
static int get_new_rs(struct dsync *s, bool create)
{
    s->new_idx = find_new_rs(s);
    char new_rev[32];
    snprintf(new_rev, sizeof new_rev, "%" PRId64, max_old_revision(s) + 1);
    if (s->new_idx >= 0) {
        json_t *cp = kc_json_copy(s->rs[s->new_idx]);
        bool changed = set_new_rs_annotations(s, cp, new_rev, true);
        long long mrs = ji(s->d, "spec.minReadySeconds");
        if (changed || ji(cp, "spec.minReadySeconds") != mrs) {
            json_object_set_new(obj_at(cp, "spec"), "minReadySeconds", json_integer(mrs));
            int rc = put_rs(s, (size_t)s->new_idx, cp);
            json_decref(cp);
            return rc;
        }
        json_decref(cp);
        int rc = set_deployment_revision(s, annot(s->rs[s->new_idx], ANN_REVISION));
        if (rc)
            return rc;
        if (has_progress_deadline(s->d) && !cond_get(json_object_get(s->d, "status"), "Progressing")) {
            char msg[600];
            snprintf(msg, sizeof msg, "Found new replica set \"%s\"", js(s->rs[s->new_idx], "metadata.name"));
            json_t *st = progress_status_copy(s);
            cond_set(st, cond_new("Progressing", "True", "FoundNewReplicaSet", msg));
            rc = put_status(s, st);
            json_decref(st);
        }
        return rc;
    }
    if (!create)
        return 0;

    /* Build the new ReplicaSet. */
    json_t *cc = jp(s->d, "status.collisionCount");
    char hash[16], name[320];
    if (kc_ro_template_hash(jp(s->d, "spec.template"), cc ? json_integer_value(cc) : -1, hash, sizeof hash))
        return KC_ENOMEM;
    snprintf(name, sizeof name, "%s-%s", s->name, hash);
    json_t *tmpl = kc_json_copy(jp(s->d, "spec.template"));
    if (!json_is_object(tmpl)) {
        json_decref(tmpl);
        tmpl = json_object();
    }
    json_object_set_new(obj_at(obj_at(tmpl, "metadata"), "labels"), KC_RO_HASH_LABEL, json_string(hash));
    json_t *sel = kc_json_copy(jp(s->d, "spec.selector"));
    if (!json_is_object(sel)) {
        json_decref(sel);
        sel = json_object();
    }
    json_object_set_new(obj_at(sel, "matchLabels"), KC_RO_HASH_LABEL, json_string(hash));
    json_t *rs = json_pack("{s:s, s:s, s:{s:s, s:s, s:[{s:s, s:s, s:s, s:s, s:b, s:b}], s:O}, s:{s:i, s:I, s:o, s:o}}",
                           "apiVersion", "apps/v1", "kind", "ReplicaSet", "metadata", "name", name, "namespace", s->ns,
                           "ownerReferences", "apiVersion", "apps/v1", "kind", "Deployment", "name", s->name, "uid",
                           js(s->d, "metadata.uid") ?: "", "controller", 1, "blockOwnerDeletion", 1, "labels",
                           jp(tmpl, "metadata.labels"), "spec", "replicas", 0, "minReadySeconds",
                           (json_int_t)ji(s->d, "spec.minReadySeconds"), "selector", sel, "template", tmpl);
    if (!rs)
        return KC_ENOMEM;
    int all = 0;
    for (size_t i = 0; i < s->nrs; i++)
        all += rs_replicas(s->rs[i]);
    int count = kc_ro_new_rs_replicas(&s->ro, all, 0);
    json_object_set_new(jp(rs, "spec"), "replicas", json_integer(count));
    set_new_rs_annotations(s, rs, new_rev, false);

    char path[640];
    json_t *created = NULL;
    struct kc_err err = {0};
    int rc = kc_client_create_ro(s->dc->c, kc_path(path, sizeof path, "apps", "v1", "replicasets", s->ns, NULL, NULL),
                                 rs, &created, &err);
    json_decref(rs);
    bool already = false;
    if (rc == KC_EEXISTS) {
        json_t *cur = NULL;
        struct kc_err gerr = {0};
        kc_client_get(s->dc->c, kc_path(path, sizeof path, "apps", "v1", "replicasets", s->ns, name, NULL), &cur, &gerr);
        json_t *ref = cur ? controller_ref(cur) : NULL;
        if (ref && !strcmp(js(ref, "uid") ?: "", js(s->d, "metadata.uid") ?: "") &&
            kc_ro_template_equal(jp(s->d, "spec.template"), jp(cur, "spec.template"))) {
            created = cur;
            already = true;
            rc = 0;
        } else {
            /* A different object has our name: bump collisionCount so the next hash differs. */
            json_decref(cur);
            json_t *st = progress_status_copy(s);
            json_object_set_new(st, "collisionCount", json_integer(cc ? json_integer_value(cc) + 1 : 1));
            put_status(s, st);
            json_decref(st);
            return KC_EEXISTS;
        }
    } else if (rc) {
        char msg[1600];
        snprintf(msg, sizeof msg, "Failed to create new replica set \"%s\": %.1000s", name, err.message);
        if (has_progress_deadline(s->d)) {
            json_t *st = progress_status_copy(s);
            cond_set(st, cond_new("Progressing", "False", "ReplicaSetCreateError", msg));
            put_status(s, st);
            json_decref(st);
        }
        kc_event_emit(s->dc->c, s->d, "Warning", "ReplicaSetCreateError", COMPONENT, "%s", msg);
        return rc;
    }
    add_rs(s, created);
    s->new_idx = (int)s->nrs - 1;
    if (!already && count > 0)
        kc_event_emit(s->dc->c, s->d, "Normal", "ScalingReplicaSet", COMPONENT, "Scaled up replica set %s from 0 to %d",
                      name, count);
    rc = set_deployment_revision(s, new_rev);
    if (rc)
        return rc;
    if (!already && has_progress_deadline(s->d)) {
        char msg[600];
        snprintf(msg, sizeof msg, "Created new replica set \"%s\"", name);
        json_t *st = progress_status_copy(s);
        cond_set(st, cond_new("Progressing", "True", "NewReplicaSetCreated", msg));
        rc = put_status(s, st);
        json_decref(st);
    }
    return rc;
}

/* ---------- status ---------- */

static bool rs_active(json_t *rs)
{
    return rs && rs_replicas(rs) > 0;
}

/* calculateStatus: counts from the replica sets, Available condition from minAvailable. */
static json_t *calculate_status(struct dsync *s)
{
    long long replicas = 0, ready = 0, available = 0, spec_total = 0, updated = 0;
    for (size_t i = 0; i < s->nrs; i++) {
        replicas += ji(s->rs[i], "status.replicas");
        ready += ji(s->rs[i], "status.readyReplicas");
        available += ji(s->rs[i], "status.availableReplicas");
        spec_total += rs_replicas(s->rs[i]);
    }
    if (s->new_idx >= 0)
        updated = ji(s->rs[s->new_idx], "status.replicas");
    long long unavailable = spec_total - available;
    if (unavailable < 0)
        unavailable = 0;
    json_t *st = json_object();
    /* omitempty: zero counts are left out, as the API server would */
    struct {
        const char *k;
        long long v;
    } f[] = {{"observedGeneration", ji(s->d, "metadata.generation")},
             {"replicas", replicas},
             {"updatedReplicas", updated},
             {"readyReplicas", ready},
             {"availableReplicas", available},
             {"unavailableReplicas", unavailable}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v)
            json_object_set_new(st, f[i].k, json_integer(f[i].v));
    json_t *conds = jp(s->d, "status.conditions");
    if (json_array_size(conds))
        json_object_set_new(st, "conditions", kc_json_copy(conds));
    json_t *cc = jp(s->d, "status.collisionCount");
    if (cc)
        json_object_set(st, "collisionCount", cc);
    if (available >= s->ro.replicas - kc_ro_max_unavailable(&s->ro))
        cond_set(st, cond_new("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."));
    else
        cond_set(st, cond_new("Available", "False", "MinimumReplicasUnavailable",
                              "Deployment does not have minimum availability."));
    return st;
}

static bool status_equal(json_t *a, json_t *b)
{
    json_t *e = json_object();
    bool eq = json_equal(a ? a : e, b ? b : e);
    json_decref(e);
    return eq;
}

static int sync_deployment_status(struct dsync *s)
{
    json_t *st = calculate_status(s);
    int rc = status_equal(json_object_get(s->d, "status"), st) ? 0 : put_status(s, st);
    json_decref(st);
    return rc;
}

static bool deployment_complete(struct dsync *s, json_t *st)
{
    long long r = s->ro.replicas;
    return ji(st, "updatedReplicas") == r && ji(st, "replicas") == r && ji(st, "availableReplicas") == r &&
           ji(st, "observedGeneration") >= ji(s->d, "metadata.generation");
}

static bool deployment_progressing(struct dsync *s, json_t *st)
{
    json_t *old = json_object_get(s->d, "status");
    long long old_old = ji(old, "replicas") - ji(old, "updatedReplicas");
    long long new_old = ji(st, "replicas") - ji(st, "updatedReplicas");
    return ji(st, "updatedReplicas") > ji(old, "updatedReplicas") || new_old < old_old ||
           ji(st, "readyReplicas") > ji(old, "readyReplicas") ||
           ji(st, "availableReplicas") > ji(old, "availableReplicas");
}

static bool deployment_timed_out(struct dsync *s, json_t *st)
{
    if (!has_progress_deadline(s->d))
        return false;
    json_t *c = cond_get(st, "Progressing");
    if (!c)
        return false;
    const char *reason = js(c, "reason") ?: "";
    if (!strcmp(reason, "NewReplicaSetAvailable"))
        return false;
    if (!strcmp(reason, "ProgressDeadlineExceeded"))
        return true;
    time_t from = 0;
    if (kc_time_parse(js(c, "lastUpdateTime") ?: "", &from))
        return false;
    return from + ji(s->d, "spec.progressDeadlineSeconds") < time(NULL);
}

/* requeueStuckDeployment: look again when the deadline would pass. */
static void requeue_stuck(struct dsync *s, json_t *st)
{
    json_t *c = cond_get(json_object_get(s->d, "status"), "Progressing");
    if (!has_progress_deadline(s->d) || !c)
        return;
    if (deployment_complete(s, st) || !strcmp(js(c, "reason") ?: "", "ProgressDeadlineExceeded"))
        return;
    time_t from = 0;
    if (kc_time_parse(js(c, "lastUpdateTime") ?: "", &from))
        return;
    long long after = (long long)from + ji(s->d, "spec.progressDeadlineSeconds") - (long long)time(NULL);
    char key[520];
    snprintf(key, sizeof key, "%s/%s", s->ns, s->name);
    if (after < 1)
        kc_wq_add_rate_limited(s->dc->q, key);
    else
        kc_wq_add_after(s->dc->q, key, (int)((after + 1) * 1000));
}

/* syncRolloutStatus: status plus the Progressing and ReplicaFailure conditions. */
static int sync_rollout_status(struct dsync *s)
{
    json_t *st = calculate_status(s);
    const char *new_name = s->new_idx >= 0 ? js(s->rs[s->new_idx], "metadata.name") : NULL;
    if (!has_progress_deadline(s->d))
        cond_remove(st, "Progressing");
    json_t *cur = cond_get(json_object_get(s->d, "status"), "Progressing");
    bool complete_before = ji(st, "replicas") == ji(st, "updatedReplicas") && cur &&
                           !strcmp(js(cur, "reason") ?: "", "NewReplicaSetAvailable");
    if (has_progress_deadline(s->d) && !complete_before) {
        char msg[600];
        if (deployment_complete(s, st)) {
            if (new_name) {
                snprintf(msg, sizeof msg, "ReplicaSet \"%s\" has successfully progressed.", new_name);
                cond_set(st, cond_new("Progressing", "True", "NewReplicaSetAvailable", msg));
            }
        } else if (deployment_progressing(s, st)) {
            if (new_name)
                snprintf(msg, sizeof msg, "ReplicaSet \"%s\" is progressing.", new_name);
            else
                snprintf(msg, sizeof msg, "Deployment \"%s\" is progressing.", dname(s));
            json_t *c = cond_new("Progressing", "True", "ReplicaSetUpdated", msg);
            /* Same reason must still refresh lastUpdateTime: replace the condition by hand. */
            if (cur) {
                if (!strcmp(js(cur, "status") ?: "", "True") && json_object_get(cur, "lastTransitionTime"))
                    json_object_set(c, "lastTransitionTime", json_object_get(cur, "lastTransitionTime"));
                cond_remove(st, "Progressing");
            }
            cond_set(st, c);
        } else if (deployment_timed_out(s, st)) {
            if (new_name)
                snprintf(msg, sizeof msg, "ReplicaSet \"%s\" has timed out progressing.", new_name);
            else
                snprintf(msg, sizeof msg, "Deployment \"%s\" has timed out progressing.", dname(s));
            cond_set(st, cond_new("Progressing", "False", "ProgressDeadlineExceeded", msg));
        }
    }
    /* ReplicaFailure: the new RS's first, else any RS's. */
    json_t *failure = NULL;
    for (int pass = 0; pass < 2 && !failure; pass++) {
        for (size_t i = 0; i < s->nrs && !failure; i++) {
            if ((pass == 0) != ((int)i == s->new_idx))
                continue;
            size_t k;
            json_t *c;
            json_array_foreach(jp(s->rs[i], "status.conditions"), k, c)
                if (!strcmp(js(c, "type") ?: "", "ReplicaFailure")) {
                    failure = c;
                    break;
                }
        }
    }
    if (failure) {
        json_t *ltt = json_object_get(failure, "lastTransitionTime");
        json_t *c = json_pack("{s:s, s:O, s:O, s:O, s:O, s:O}", "type", "ReplicaFailure", "status",
                              json_object_get(failure, "status") ?: json_null(), "lastTransitionTime", ltt ?: json_null(),
                              "lastUpdateTime", ltt ?: json_null(), "reason",
                              json_object_get(failure, "reason") ?: json_null(), "message",
                              json_object_get(failure, "message") ?: json_null());
        cond_set(st, c);
    } else {
        cond_remove(st, "ReplicaFailure");
    }
    int rc = 0;
    if (status_equal(json_object_get(s->d, "status"), st))
        requeue_stuck(s, st);
    else
        rc = put_status(s, st);
    json_decref(st);
    return rc;
}

/* checkPausedConditions */
static int check_paused_conditions(struct dsync *s)
{
    if (!has_progress_deadline(s->d))
        return 0;
    json_t *c = cond_get(json_object_get(s->d, "status"), "Progressing");
    if (c && !strcmp(js(c, "reason") ?: "", "ProgressDeadlineExceeded"))
        return 0;
    bool paused_cond = c && !strcmp(js(c, "reason") ?: "", "DeploymentPaused");
    bool paused = json_is_true(jp(s->d, "spec.paused"));
    json_t *cond = NULL;
    if (paused && !paused_cond)
        cond = cond_new("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused");
    else if (!paused && paused_cond)
        cond = cond_new("Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed");
    if (!cond)
        return 0;
    json_t *st = progress_status_copy(s);
    cond_set(st, cond);
    int rc = put_status(s, st);
    json_decref(st);
    return rc;
}

/* ---------- cleanup ---------- */

static int cmp_by_revision(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int64_t rx = rs_revision(x), ry = rs_revision(y);
    if (rx != ry)
        return rx < ry ? -1 : 1;
    int64_t cx = created_at(x), cy = created_at(y);
    if (cx != cy)
        return cx < cy ? -1 : 1;
    return strcmp(js(x, "metadata.name") ?: "", js(y, "metadata.name") ?: "");
}

/* cleanupDeployment: keep revisionHistoryLimit old RSes; delete the oldest idle ones. */
static void cleanup_deployment(struct dsync *s)
{
    json_t *lim = jp(s->d, "spec.revisionHistoryLimit");
    if (!lim || json_integer_value(lim) == 2147483647)
        return;
    json_t **alive = calloc(s->nrs + 1, sizeof *alive);
    size_t n = 0;
    if (!alive)
        return;
    for (size_t i = 0; i < s->nrs; i++)
        if ((int)i != s->new_idx && !jp(s->rs[i], "metadata.deletionTimestamp"))
            alive[n++] = s->rs[i];
    long long diff = (long long)n - json_integer_value(lim);
    if (diff > 0) {
        qsort(alive, n, sizeof *alive, cmp_by_revision);
        for (long long i = 0; i < diff; i++) {
            json_t *rs = alive[i];
            if (ji(rs, "status.replicas") != 0 || rs_replicas(rs) != 0 ||
                ji(rs, "metadata.generation") > ji(rs, "status.observedGeneration"))
                continue;
            char path[640];
            struct kc_err err = {0};
            json_t *body = json_pack("{s:{s:s}}", "preconditions", "uid", js(rs, "metadata.uid") ?: "");
            kc_client_delete(s->dc->c,
                             kc_path(path, sizeof path, "apps", "v1", "replicasets", s->ns, js(rs, "metadata.name"), NULL),
                             body, NULL, &err);
            json_decref(body);
        }
    }
    free(alive);
}

/* ---------- scaling (sync) ---------- */

static void fill_ro_rs(json_t *rs, struct kc_ro_rs *r)
{
    bool ok;
    int64_t m = parse_i64(annot(rs, ANN_MAX), &ok);
    *r = (struct kc_ro_rs){.name = js(rs, "metadata.name"),
                           .created = created_at(rs),
                           .replicas = rs_replicas(rs),
                           .available = (int)ji(rs, "status.availableReplicas"),
                           .max_replicas = ok ? (int)m : -1,
                           .revision = rs_revision(rs)};
}

/* FindActiveOrLatest: the only active RS, or the newest when none is active; -1 if several. */
static int active_or_latest(struct dsync *s)
{
    int active = -1, nactive = 0, newest_old = -1;
    for (size_t i = 0; i < s->nrs; i++) {
        if (rs_active(s->rs[i])) {
            active = (int)i;
            nactive++;
        }
        if ((int)i != s->new_idx && (newest_old < 0 || created_at(s->rs[i]) > created_at(s->rs[newest_old])))
            newest_old = (int)i;
    }
    if (nactive == 1)
        return active;
    if (nactive == 0)
        return s->new_idx >= 0 ? s->new_idx : newest_old;
    return -1;
}

static bool is_saturated(struct dsync *s, json_t *rs)
{
    bool ok;
    int64_t desired = parse_i64(annot(rs, ANN_DESIRED), &ok);
    return ok && rs_replicas(rs) == s->ro.replicas && desired == s->ro.replicas &&
           ji(rs, "status.availableReplicas") == s->ro.replicas;
}

static int scale(struct dsync *s)
{
    int one = active_or_latest(s);
    if (one >= 0) {
        if (rs_replicas(s->rs[one]) == s->ro.replicas)
            return 0;
        return scale_rs_event(s, (size_t)one, s->ro.replicas, NULL);
    }
    if (s->new_idx >= 0 && is_saturated(s, s->rs[s->new_idx])) {
        for (size_t i = 0; i < s->nrs; i++) {
            if ((int)i == s->new_idx || !rs_active(s->rs[i]))
                continue;
            int rc = scale_rs_event(s, i, 0, NULL);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (!s->ro.rolling)
        return 0;
    size_t *map = calloc(s->nrs + 1, sizeof *map);
    struct kc_ro_rs *r = calloc(s->nrs + 1, sizeof *r);
    size_t n = 0;
    int rc = 0;
    if (!map || !r) {
        free(map);
        free(r);
        return KC_ENOMEM;
    }
    for (size_t i = 0; i < s->nrs; i++)
        if (rs_active(s->rs[i])) {
            fill_ro_rs(s->rs[i], &r[n]);
            map[n++] = i;
        }
    int dir = kc_ro_proportional(&s->ro, r, n);
    for (size_t k = 0; k < n && !rc; k++)
        rc = scale_rs(s, map[k], r[k].size, dir > 0 ? "up" : "down", NULL);
    free(map);
    free(r);
    return rc;
}

/* isScalingEvent: an active RS was sized for a different replica count. */
static bool is_scaling_event(struct dsync *s)
{
    for (size_t i = 0; i < s->nrs; i++) {
        if (!rs_active(s->rs[i]))
            continue;
        bool ok;
        int64_t desired = parse_i64(annot(s->rs[i], ANN_DESIRED), &ok);
        if (ok && desired != s->ro.replicas)
            return true;
    }
    return false;
}

static int sync_scale(struct dsync *s)
{
    int rc = get_new_rs(s, false);
    if (!rc)
        rc = scale(s);
    if (rc)
        return rc;
    if (json_is_true(jp(s->d, "spec.paused")))
        cleanup_deployment(s);
    return sync_deployment_status(s);
}

/* ---------- RollingUpdate ---------- */

static int sum_replicas(struct dsync *s, bool old_only)
{
    int sum = 0;
    for (size_t i = 0; i < s->nrs; i++)
        if (!old_only || (int)i != s->new_idx)
            sum += rs_replicas(s->rs[i]);
    return sum;
}

static int reconcile_new_rs(struct dsync *s, bool *scaled)
{
    int cur = rs_replicas(s->rs[s->new_idx]);
    if (cur == s->ro.replicas)
        return 0;
    if (cur > s->ro.replicas)
        return scale_rs_event(s, (size_t)s->new_idx, s->ro.replicas, scaled);
    int want = kc_ro_new_rs_replicas(&s->ro, sum_replicas(s, false), cur);
    return scale_rs_event(s, (size_t)s->new_idx, want, scaled);
}

/* Builds kc_ro_rs for the active old RSes; map[k] = index into s->rs. */
static size_t old_active(struct dsync *s, struct kc_ro_rs *r, size_t *map)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nrs; i++)
        if ((int)i != s->new_idx && rs_active(s->rs[i])) {
            fill_ro_rs(s->rs[i], &r[n]);
            map[n++] = i;
        }
    return n;
}

static int reconcile_old_rs(struct dsync *s, bool *scaled)
{
    if (sum_replicas(s, true) == 0)
        return 0;
    json_t *nrs = s->rs[s->new_idx];
    int budget = kc_ro_max_scaled_down(&s->ro, sum_replicas(s, false), rs_replicas(nrs),
                                       (int)ji(nrs, "status.availableReplicas"));
    if (budget <= 0)
        return 0;
    size_t *map = calloc(s->nrs + 1, sizeof *map);
    struct kc_ro_rs *r = calloc(s->nrs + 1, sizeof *r);
    int rc = 0;
    if (!map || !r) {
        free(map);
        free(r);
        return KC_ENOMEM;
    }
    /* First the unhealthy old replicas (they do not count as available anyway)... */
    size_t n = old_active(s, r, map);
    int cleaned = kc_ro_cleanup_unhealthy(r, n, budget);
    for (size_t k = 0; k < n && !rc; k++)
        if (r[k].size != r[k].replicas)
            rc = scale_rs_event(s, map[k], r[k].size, scaled);
    /* ...then healthy ones, as far as maxUnavailable allows. */
    if (!rc) {
        int avail = 0;
        for (size_t i = 0; i < s->nrs; i++)
            avail += (int)ji(s->rs[i], "status.availableReplicas");
        n = old_active(s, r, map);
        int down = kc_ro_scale_down_old(&s->ro, r, n, avail);
        for (size_t k = 0; k < n && !rc; k++)
            if (r[k].size != r[k].replicas)
                rc = scale_rs_event(s, map[k], r[k].size, scaled);
        if (cleaned + down > 0 && scaled)
            *scaled = true;
    }
    free(map);
    free(r);
    return rc;
}

static int rollout_rolling(struct dsync *s)
{
    int rc = get_new_rs(s, true);
    if (rc)
        return rc;
    if (s->new_idx < 0)
        return KC_EIO;
    bool scaled = false;
    rc = reconcile_new_rs(s, &scaled);
    if (rc)
        return rc;
    if (scaled)
        return sync_rollout_status(s);
    rc = reconcile_old_rs(s, &scaled);
    if (rc)
        return rc;
    if (scaled)
        return sync_rollout_status(s);
    if (deployment_complete(s, json_object_get(s->d, "status")))
        cleanup_deployment(s);
    return sync_rollout_status(s);
}

/* ---------- Recreate ---------- */

static bool old_pods_running(struct dsync *s)
{
    for (size_t i = 0; i < s->nrs; i++)
        if ((int)i != s->new_idx && ji(s->rs[i], "status.replicas") > 0)
            return true;
    bool running = false;
    for (size_t i = 0; i < s->nrs && !running; i++) {
        if ((int)i == s->new_idx)
            continue;
        json_t **pods = NULL;
        size_t n = kc_informer_by_index(s->dc->inf->pods, KC_IDX_CONTROLLER, js(s->rs[i], "metadata.uid") ?: "", &pods);
        for (size_t k = 0; k < n; k++) {
            const char *phase = js(pods[k], "status.phase") ?: "";
            if (strcmp(phase, "Failed") && strcmp(phase, "Succeeded"))
                running = true;
            json_decref(pods[k]);
        }
        free(pods);
    }
    return running;
}

static int rollout_recreate(struct dsync *s)
{
    int rc = get_new_rs(s, false);
    if (rc)
        return rc;
    bool scaled = false;
    for (size_t i = 0; i < s->nrs && !rc; i++)
        if ((int)i != s->new_idx && rs_active(s->rs[i]))
            rc = scale_rs_event(s, i, 0, &scaled);
    if (rc)
        return rc;
    if (scaled || old_pods_running(s))
        return sync_rollout_status(s);
    if (s->new_idx < 0) {
        rc = get_new_rs(s, true);
        if (rc)
            return rc;
        if (s->new_idx < 0)
            return KC_EIO;
    }
    rc = scale_rs_event(s, (size_t)s->new_idx, s->ro.replicas, NULL);
    if (rc)
        return rc;
    if (deployment_complete(s, json_object_get(s->d, "status")))
        cleanup_deployment(s);
    return sync_rollout_status(s);
}

/* ---------- sync ---------- */

static int sync_deployment(struct dctl *dc, const char *key)
{
    json_t *cached = kc_informer_get(dc->inf->deployments, key);
    if (!cached)
        return 0; /* deleted: the garbage collector removes its ReplicaSets */
    struct dsync s = {.dc = dc, .new_idx = -1};
    s.d = json_copy(cached); /* our own top level; the members stay the cache's (see struct dsync) */
    json_decref(cached);
    if (!s.d)
        return KC_ENOMEM;
    /* list items may come without kind; events and PUT bodies want it */
    json_object_set_new(s.d, "apiVersion", json_string("apps/v1"));
    json_object_set_new(s.d, "kind", json_string("Deployment"));
    snprintf(s.ns, sizeof s.ns, "%s", js(s.d, "metadata.namespace") ?: "");
    snprintf(s.name, sizeof s.name, "%s", js(s.d, "metadata.name") ?: "");
    struct kc_err err = {0};
    struct kc_label_selector *sel = NULL;
    int rc = kc_ro_deploy_from_json(s.d, &s.ro, &err);
    if (!rc)
        rc = kc_label_selector_from_json(jp(s.d, "spec.selector"), &sel, &err);
    if (rc) {
        kc_debug(COMPONENT, "%s: %s", key, err.message);
        json_decref(s.d);
        return 0; /* invalid spec: nothing to retry until it changes */
    }
    if (kc_label_selector_empty(sel)) {
        kc_event_emit(dc->c, s.d, "Warning", "SelectingAll", COMPONENT,
                      "This deployment is selecting all pods. A non-empty selector is required.");
        if (ji(s.d, "status.observedGeneration") < ji(s.d, "metadata.generation")) {
            json_t *st = progress_status_copy(&s);
            json_object_set_new(st, "observedGeneration", json_integer(ji(s.d, "metadata.generation")));
            rc = put_status(&s, st);
            json_decref(st);
        }
        goto out;
    }
    rc = claim_replicasets(&s, sel);
    if (rc)
        goto out;
    if (jp(s.d, "metadata.deletionTimestamp")) {
        rc = get_new_rs(&s, false);
        if (!rc)
            rc = sync_deployment_status(&s);
        goto out;
    }
    rc = check_paused_conditions(&s);
    if (rc)
        goto out;
    if (json_is_true(jp(s.d, "spec.paused"))) {
        rc = sync_scale(&s);
        goto out;
    }
    rc = get_new_rs(&s, false); /* isScalingEvent syncs the revision first, as upstream */
    if (rc)
        goto out;
    if (is_scaling_event(&s)) {
        rc = sync_scale(&s);
        goto out;
    }
    rc = s.ro.rolling ? rollout_rolling(&s) : rollout_recreate(&s);
out:
    kc_label_selector_free(sel);
    for (size_t i = 0; i < s.nrs; i++)
        json_decref(s.rs[i]);
    free(s.rs);
    json_decref(s.fresh);
    json_decref(s.d);
    return rc;
}

/* ---------- handlers and workers ---------- */

static void enqueue_obj(struct dctl *dc, json_t *d)
{
    char key[520];
    kc_wq_add(dc->q, kc_object_key(d, key, sizeof key));
}

static void on_deploy_add(void *ctx, json_t *obj)
{
    enqueue_obj(ctx, obj);
}

static void on_deploy_update(void *ctx, json_t *old, json_t *obj)
{
    (void)old;
    enqueue_obj(ctx, obj);
}

/* The Deployment controlling obj (new reference), if any. */
static json_t *resolve_owner(struct dctl *dc, json_t *obj)
{
    json_t *ref = controller_ref(obj);
    if (!ref || strcmp(js(ref, "kind") ?: "", "Deployment"))
        return NULL;
    char key[520];
    snprintf(key, sizeof key, "%s/%s", js(obj, "metadata.namespace") ?: "", js(ref, "name") ?: "");
    json_t *d = kc_informer_get(dc->inf->deployments, key);
    if (d && strcmp(js(d, "metadata.uid") ?: "", js(ref, "uid") ?: "")) {
        json_decref(d);
        return NULL;
    }
    return d;
}

/* An orphan RS: wake every Deployment in its namespace whose selector matches it (adoption). */
static void enqueue_matching(struct dctl *dc, json_t *rs)
{
    json_t **ds = NULL;
    size_t n = kc_informer_by_index(dc->inf->deployments, KC_IDX_NAMESPACE, js(rs, "metadata.namespace") ?: "", &ds);
    for (size_t i = 0; i < n; i++) {
        struct kc_label_selector *sel = NULL;
        if (!kc_label_selector_from_json(jp(ds[i], "spec.selector"), &sel, NULL) && !kc_label_selector_empty(sel) &&
            kc_label_selector_matches_json(sel, jp(rs, "metadata.labels")))
            enqueue_obj(dc, ds[i]);
        kc_label_selector_free(sel);
        json_decref(ds[i]);
    }
    free(ds);
}

static void on_rs_add(void *ctx, json_t *rs)
{
    struct dctl *dc = ctx;
    json_t *d = resolve_owner(dc, rs);
    if (d) {
        enqueue_obj(dc, d);
        json_decref(d);
    } else if (!controller_ref(rs)) {
        enqueue_matching(dc, rs);
    }
}

static void on_rs_update(void *ctx, json_t *old, json_t *rs)
{
    struct dctl *dc = ctx;
    if (old == rs || !strcmp(js(old, "metadata.resourceVersion") ?: "", js(rs, "metadata.resourceVersion") ?: "\x01"))
        return; /* resync: deployments resync on their own */
    json_t *oref = controller_ref(old), *cref = controller_ref(rs);
    if (oref && (!cref || strcmp(js(oref, "uid") ?: "", js(cref, "uid") ?: ""))) {
        json_t *od = resolve_owner(dc, old);
        if (od) {
            enqueue_obj(dc, od);
            json_decref(od);
        }
    }
    if (cref) {
        json_t *d = resolve_owner(dc, rs);
        if (d) {
            enqueue_obj(dc, d);
            json_decref(d);
        }
        return;
    }
    if (!json_equal(jp(old, "metadata.labels"), jp(rs, "metadata.labels")) || oref)
        enqueue_matching(dc, rs);
}

static void on_rs_delete(void *ctx, json_t *rs)
{
    struct dctl *dc = ctx;
    json_t *d = resolve_owner(dc, rs);
    if (d) {
        enqueue_obj(dc, d);
        json_decref(d);
    }
}

/* A pod went away: a Recreate rollout may be waiting for the last old pod. */
static void on_pod_delete(void *ctx, json_t *pod)
{
    struct dctl *dc = ctx;
    json_t *ref = controller_ref(pod);
    if (!ref || strcmp(js(ref, "kind") ?: "", "ReplicaSet"))
        return;
    char key[520];
    snprintf(key, sizeof key, "%s/%s", js(pod, "metadata.namespace") ?: "", js(ref, "name") ?: "");
    json_t *rs = kc_informer_get(dc->inf->replicasets, key);
    if (!rs)
        return;
    json_t *d = resolve_owner(dc, rs);
    if (d && !strcmp(js(d, "spec.strategy.type") ?: "", "Recreate"))
        enqueue_obj(dc, d);
    json_decref(d);
    json_decref(rs);
}

/* Upstream starts workers only after WaitForCacheSync; ours wait here so a half-filled
 * ReplicaSet cache never makes a sync create a duplicate. */
static void wait_caches(struct dctl *dc)
{
    struct kc_informer *all[] = {dc->inf->deployments, dc->inf->replicasets, dc->inf->pods};
    for (size_t i = 0; i < 3; i++)
        while (!atomic_load(&dc->stopping) && kc_informer_wait_synced(all[i], 200))
            ;
}

static void *worker(void *arg)
{
    pthread_setname_np(pthread_self(), "kc-deploy-sync");
    struct dctl *dc = arg;
    char *key;
    wait_caches(dc);
    while ((key = kc_wq_get(dc->q))) {
        int rc = sync_deployment(dc, key);
        if (!rc) {
            kc_wq_forget(dc->q, key);
        } else if (kc_wq_num_requeues(dc->q, key) < MAX_RETRIES) {
            kc_debug(COMPONENT, "error syncing deployment %s (%d), requeuing", key, rc);
            kc_wq_add_rate_limited(dc->q, key);
        } else {
            kc_info(COMPONENT, "dropping deployment %s out of the queue after %d retries", key, MAX_RETRIES);
            kc_wq_forget(dc->q, key);
        }
        kc_wq_done(dc->q, key);
        free(key);
    }
    return NULL;
}

int kc_deployment_controller_start(struct kc_client *c, struct kc_cm_informers *inf, int workers, void **out)
{
    struct dctl *dc = calloc(1, sizeof *dc);
    if (!dc)
        return KC_ENOMEM;
    dc->c = c;
    dc->inf = inf;
    dc->q = kc_wq_new("deployment", 5, 1000 * 1000);
    dc->nworkers = workers > 0 ? workers : 1;
    dc->workers = calloc((size_t)dc->nworkers, sizeof *dc->workers);
    if (!dc->q || !dc->workers) {
        if (dc->q)
            kc_wq_free(dc->q);
        free(dc->workers);
        free(dc);
        return KC_ENOMEM;
    }
    struct kc_informer_handlers dh = {.ctx = dc, .on_add = on_deploy_add, .on_update = on_deploy_update,
                                      .on_delete = on_deploy_add};
    struct kc_informer_handlers rh = {.ctx = dc, .on_add = on_rs_add, .on_update = on_rs_update,
                                      .on_delete = on_rs_delete};
    struct kc_informer_handlers ph = {.ctx = dc, .on_delete = on_pod_delete};
    kc_informer_add_handlers(inf->deployments, &dh);
    kc_informer_add_handlers(inf->replicasets, &rh);
    kc_informer_add_handlers(inf->pods, &ph);
    for (int i = 0; i < dc->nworkers; i++) {
        if (pthread_create(&dc->workers[i], NULL, worker, dc)) {
            dc->nworkers = i;
            kc_deployment_controller_stop(dc);
            return KC_EIO;
        }
    }
    *out = dc;
    return 0;
}

void kc_deployment_controller_stop(void *ctl)
{
    struct dctl *dc = ctl;
    if (!dc)
        return;
    atomic_store(&dc->stopping, true);
    kc_wq_shutdown(dc->q);
    for (int i = 0; i < dc->nworkers; i++)
        pthread_join(dc->workers[i], NULL);
    kc_wq_free(dc->q);
    free(dc->workers);
    free(dc);
}
