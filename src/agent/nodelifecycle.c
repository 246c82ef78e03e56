/* nodelifecycle.c — the node lifecycle controller (runs in the controller manager).
 *
 * Every monitor period it looks at each Node and its Lease (kube-node-lease/<node>). As upstream,
 * health is judged on *local observation time*: when the Lease's renewTime (or, without a Lease,
 * the Ready condition's lastHeartbeatTime) changes we note our own clock; if nothing changed for
 * the grace period (40 s) the node's conditions become Unknown ("NodeStatusUnknown", "Kubelet
 * stopped posting node status.") and it gets the node.kubernetes.io/unreachable taints (NoSchedule
 * and NoExecute). When it renews again and reports Ready, the taints go away.
 * Pods on a node with the unreachable NoExecute taint are deleted once their toleration runs out:
 * tolerationSeconds of a matching toleration, none = never; pods with no matching toleration get the
 * 300 s that upstream's DefaultTolerationSeconds admission would have given them.
 *
 * Data structures: informers on nodes and on leases (kube-node-lease); health, a map node name →
 * struct health (last seen heartbeat text, local time it changed). Threads: the two informer threads
 * and one monitor thread (the only user of health).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/agent.h"
#include "client/informer.h"
#include "controller/controller.h"
#include "util/log.h"
#include "util/map.h"
#include "util/timeutil.h"
#include "util/jsonparse.h"

#define COMPONENT "node-lifecycle-controller"
#define TAINT_UNREACHABLE "node.kubernetes.io/unreachable"

struct health {
    char beat[64];
    time_t seen; /* local time the heartbeat last changed */
};

struct nlc {
    struct kc_client *c;
    struct kc_nodelifecycle_opts o;
    struct kc_informer *nodes, *leases;
    struct kc_map health;
    pthread_t thr;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool stop;
};

static const char *jstr(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

void kc_nodelifecycle_opts_default(struct kc_nodelifecycle_opts *o)
{
    o->node_monitor_grace_period_s = 40;
    o->node_monitor_period_s = 5;
    o->default_toleration_s = 300;
    const char *g = getenv("KUBEC_NODE_MONITOR_GRACE_PERIOD"); /* test hook: e2e tests cannot wait 40 s */
    if (g && atoi(g) > 0) {
        o->node_monitor_grace_period_s = atoi(g);
        if (o->node_monitor_period_s * 2 > o->node_monitor_grace_period_s)
            o->node_monitor_period_s = o->node_monitor_grace_period_s / 2 > 0 ? o->node_monitor_grace_period_s / 2 : 1;
    }
}

static json_t *find_cond(json_t *node, const char *type)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(json_object_get(node, "status"), "conditions"), i, c) if (!strcmp(
        jstr(c, "type") ?: "", type)) return c;
    return NULL;
}

static bool has_taint(json_t *node, const char *key, const char *effect)
{
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(json_object_get(node, "spec"), "taints"), i, t) if (
        !strcmp(jstr(t, "key") ?: "", key) && !strcmp(jstr(t, "effect") ?: "", effect)) return true;
    return false;
}

static json_t *taint_of(json_t *node, const char *key, const char *effect)
{
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(json_object_get(node, "spec"), "taints"), i, t) if (
        !strcmp(jstr(t, "key") ?: "", key) && !strcmp(jstr(t, "effect") ?: "", effect)) return t;
    return NULL;
}

static int patch_node(struct nlc *n, const char *name, const char *sub, json_t *patch)
{
    char path[400];
    struct kc_err err = {0};
    kc_path(path, sizeof path, "", "v1", "nodes", NULL, name, sub);
    int rc = kc_client_patch(n->c, path, "application/merge-patch+json", patch, NULL, &err);
    if (rc)
        kc_warn(COMPONENT, "patch node %s%s%s: %s", name, sub ? "/" : "", sub ? sub : "", err.message);
    json_decref(patch);
    return rc;
}

static void mark_unknown(struct nlc *n, json_t *node, const char *name)
{
    char now[40];
    kc_time_rfc3339(time(NULL), now, sizeof now);
    json_t *conds = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(json_object_get(node, "status"), "conditions"), i, c)
    {
        json_t *nc = kc_json_copy(c);
        if (strcmp(jstr(c, "status") ?: "", "Unknown")) {
            json_object_set_new(nc, "status", json_string("Unknown"));
            json_object_set_new(nc, "reason", json_string("NodeStatusUnknown"));
            json_object_set_new(nc, "message", json_string("Kubelet stopped posting node status."));
            json_object_set_new(nc, "lastTransitionTime", json_string(now));
        }
        json_array_append_new(conds, nc);
    }
    kc_info(COMPONENT, "node %s: no heartbeat for %ds, marking it Unknown", name, n->o.node_monitor_grace_period_s);
    patch_node(n, name, "status", json_pack("{s:{s:o}}", "status", "conditions", conds));
}

/* Sets (add=true) or clears the unreachable taints, keeping every other taint. */
static void set_unreachable_taints(struct nlc *n, json_t *node, const char *name, bool add)
{
    json_t *taints = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(json_object_get(node, "spec"), "taints"), i, t) if (strcmp(
        jstr(t, "key") ?: "", TAINT_UNREACHABLE)) json_array_append(taints, t);
    if (add) {
        char now[40];
        kc_time_rfc3339(time(NULL), now, sizeof now);
        json_array_append_new(taints, json_pack("{s:s,s:s}", "key", TAINT_UNREACHABLE, "effect", "NoSchedule"));
        json_array_append_new(taints,
                              json_pack("{s:s,s:s,s:s}", "key", TAINT_UNREACHABLE, "effect", "NoExecute", "timeAdded", now));
    }
    patch_node(n, name, NULL, json_pack("{s:{s:o}}", "spec", "taints", taints));
}

/* Seconds the pod may stay on an unreachable node: -1 = forever. */
static long toleration_s(struct nlc *n, json_t *pod)
{
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(json_object_get(pod, "spec"), "tolerations"), i, t)
    {
        const char *key = jstr(t, "key"), *op = jstr(t, "operator"), *eff = jstr(t, "effect");
        bool key_ok = (key && !strcmp(key, TAINT_UNREACHABLE)) || ((!key || !*key) && op && !strcmp(op, "Exists"));
        bool eff_ok = !eff || !*eff || !strcmp(eff, "NoExecute");
        if (!key_ok || !eff_ok)
            continue;
        json_t *s = json_object_get(t, "tolerationSeconds");
        return json_is_integer(s) ? (long)json_integer_value(s) : -1;
    }
    return n->o.default_toleration_s;
}

static void evict_pods(struct nlc *n, json_t *node, const char *name)
{
    json_t *taint = taint_of(node, TAINT_UNREACHABLE, "NoExecute");
    time_t added = 0;
    if (!taint || !jstr(taint, "timeAdded") || kc_time_parse(jstr(taint, "timeAdded"), &added))
        return;
    char fs[400], esc[600], path[800];
    snprintf(fs, sizeof fs, "spec.nodeName=%s", name);
    if (kc_url_escape(fs, esc, sizeof esc))
        return;
    snprintf(path, sizeof path, "/api/v1/pods?fieldSelector=%s", esc);
    json_t *list = NULL;
    struct kc_err err = {0};
    if (kc_client_get(n->c, path, &list, &err))
        return;
    size_t i;
    json_t *pod;
    time_t now = time(NULL);
    json_array_foreach(json_object_get(list, "items"), i, pod)
    {
        json_t *md = json_object_get(pod, "metadata");
        if (json_object_get(md, "deletionTimestamp"))
            continue;
        long tol = toleration_s(n, pod);
        if (tol < 0 || now < added + tol)
            continue;
        const char *ns = jstr(md, "namespace"), *pn = jstr(md, "name");
        if (!ns || !pn || !kc_path(path, sizeof path, "", "v1", "pods", ns, pn, NULL))
            continue;
        if (!json_object_get(pod, "kind")) {
            json_object_set_new(pod, "kind", json_string("Pod"));
            json_object_set_new(pod, "apiVersion", json_string("v1"));
        }
        kc_event_emit(n->c, pod, "Normal", "TaintManagerEviction", "taint-eviction-controller",
                      "Marking for deletion Pod %s/%s", ns, pn);
        if (kc_client_delete(n->c, path, NULL, NULL, &err) && err.code != 404)
            kc_warn(COMPONENT, "evict pod %s/%s: %s", ns, pn, err.message);
    }
    json_decref(list);
}

static void check_node(struct nlc *n, json_t *node, time_t now)
{
    const char *name = jstr(json_object_get(node, "metadata"), "name");
    if (!name)
        return;
    char key[400];
    snprintf(key, sizeof key, "kube-node-lease/%.300s", name);
    json_t *lease = kc_informer_get(n->leases, key);
    const char *beat = jstr(json_object_get(lease, "spec"), "renewTime");
    json_t *ready = find_cond(node, "Ready");
    if (!beat)
        beat = jstr(ready, "lastHeartbeatTime");
    struct health *h = kc_map_get(&n->health, name);
    if (!h) {
        h = calloc(1, sizeof *h);
        int perr = 0;
        if (!h || (kc_map_put(&n->health, name, h, &perr), perr)) {
            free(h);
            json_decref(lease);
            return;
        }
        h->seen = now;
    }
    if (beat && strcmp(beat, h->beat)) {
        snprintf(h->beat, sizeof h->beat, "%s", beat);
        h->seen = now;
    }
    json_decref(lease);
    const char *rs = jstr(ready, "status") ?: "Unknown";
    bool stale = now - h->seen > n->o.node_monitor_grace_period_s;
    if (stale) {
        if (strcmp(rs, "Unknown"))
            mark_unknown(n, node, name);
        if (!has_taint(node, TAINT_UNREACHABLE, "NoExecute") || !has_taint(node, TAINT_UNREACHABLE, "NoSchedule"))
            set_unreachable_taints(n, node, name, true);
        else
            evict_pods(n, node, name);
    } else if (!strcmp(rs, "True") && (has_taint(node, TAINT_UNREACHABLE, "NoExecute") ||
                                       has_taint(node, TAINT_UNREACHABLE, "NoSchedule"))) {
        kc_info(COMPONENT, "node %s is reachable again", name);
        set_unreachable_taints(n, node, name, false);
    }
}

static void *monitor_main(void *arg)
{
    pthread_setname_np(pthread_self(), "kc-nodelife");
    struct nlc *n = arg;
    for (;;) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += n->o.node_monitor_period_s;
        pthread_mutex_lock(&n->mu);
        while (!atomic_load(&n->stop))
            if (pthread_cond_timedwait(&n->cv, &n->mu, &ts) == ETIMEDOUT)
                break;
        pthread_mutex_unlock(&n->mu);
        if (atomic_load(&n->stop))
            return NULL;
        if (!kc_informer_synced(n->nodes) || !kc_informer_synced(n->leases))
            continue;
        json_t **nodes = NULL;
        size_t cnt = kc_informer_list(n->nodes, &nodes);
        time_t now = time(NULL);
        for (size_t i = 0; i < cnt; i++) {
            if (!atomic_load(&n->stop))
                check_node(n, nodes[i], now);
            json_decref(nodes[i]);
        }
        free(nodes);
    }
}

int kc_nodelifecycle_start_opts(struct kc_client *c, const struct kc_nodelifecycle_opts *o, void **out,
                                struct kc_err *err)
{
    struct nlc *n = calloc(1, sizeof *n);
    if (!n)
        return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
    n->c = c;
    n->o = *o;
    if (n->o.node_monitor_period_s < 1)
        n->o.node_monitor_period_s = 1;
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    kc_map_init(&n->health);
    struct kc_informer_opts no = {.group = "", .version = "v1", .plural = "nodes"};
    struct kc_informer_opts lo = {.group = "coordination.k8s.io", .version = "v1", .plural = "leases",
                                  .ns = "kube-node-lease"};
    int rc = kc_informer_new(c, &no, &n->nodes, err);
    if (!rc)
        rc = kc_informer_new(c, &lo, &n->leases, err);
    if (!rc && (kc_informer_start(n->nodes) || kc_informer_start(n->leases)))
        rc = kc_err_set(err, KC_EIO, 0, "InternalError", "cannot start node/lease informers");
    if (!rc && pthread_create(&n->thr, NULL, monitor_main, n))
        rc = kc_err_set(err, KC_EIO, 0, "InternalError", "cannot start the node lifecycle monitor");
    n->started = !rc;
    if (rc) {
        kc_nodelifecycle_stop(n);
        return rc;
    }
    *out = n;
    return 0;
}

int kc_nodelifecycle_start(struct kc_client *c, void **out, struct kc_err *err)
{
    struct kc_nodelifecycle_opts o;
    kc_nodelifecycle_opts_default(&o);
    return kc_nodelifecycle_start_opts(c, &o, out, err);
}

void kc_nodelifecycle_stop(void *ctl)
{
    struct nlc *n = ctl;
    if (!n)
        return;
    pthread_mutex_lock(&n->mu);
    atomic_store(&n->stop, true);
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
    if (n->started)
        pthread_join(n->thr, NULL);
    if (n->nodes)
        kc_informer_free(n->nodes);
    if (n->leases)
        kc_informer_free(n->leases);
    const char *k;
    void *v;
    for (long i = kc_map_next(&n->health, 0, &k, &v); i >= 0; i = kc_map_next(&n->health, i + 1, &k, &v))
        free(v);
    kc_map_release(&n->health);
    pthread_cond_destroy(&n->cv);
    pthread_mutex_destroy(&n->mu);
    free(n);
}
