/* agent.c — the node agent core (kubelet): Node registration, Leases, the pod informer, pod workers
 * driving the state machine (podsm.c) over a runtime (runtime.h), status writes and Events.
 *
 * Data structures:
 *   nodes[]      our Nodes (name, zone, host IP, uid, lease state); node_idx maps name → index+1.
 *   pods         "ns/name" → struct pod_entry (the state machine plus the status last written),
 *                guarded by mu; an entry is only touched by the worker holding its key.
 *   q            work queue of pod keys: informer events and timed wake-ups (kc_wq_add_after) feed
 *                it; the queue guarantees one worker per pod, which makes that worker "the pod's
 *                worker" without a thread per pod (thousands of sim pods share a few threads).
 *   rec          the event recorder (client/events.h): asynchronous, aggregating, bounded, so
 *                Events never slow pods down and a crash loop's BackOff stays one Event.
 *   rt           the sim runtime wrapped by the metrics runtime (kmetrics.c), which times every
 *                runtime operation (kubelet_runtime_operations_*).
 *
 * Creation timeline (docs/timeline.md): the trace callback of the state machine notes when a pod's
 * images are all present ("pulled") and all its containers have started ("started"); the status
 * render tells when it is Ready ("ready"). The stamps ride on the next status write that happens
 * anyway (metadata.annotations["kubec.io/timeline"] in the /status merge patch; the server merges
 * stages), so they cost no extra API call. The "started" stamp also yields the pod start SLI.
 *
 * Threads: the informer's list+watch thread (enqueues keys); `workers` pod workers; one lease
 * thread (renews every Lease each lease_renew_s, re-posts Node status when it recovers from
 * failures and every NODE_REPORT_S); the recorder's writer.
 *
 * API economy (thousands of sim pods must not flood the server): one informer for all our nodes
 * (fieldSelector spec.nodeName!= plus a node-set filter; spec.nodeName=<node> for a single node);
 * a sync runs every transition that is due now before rendering status, so one write carries them
 * all; status is written (PATCH /status) only when it differs from the last one written.
 */
#include "agent/agent.h"

#include <errno.h>
#include <libfyaml.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/kmetrics.h"
#include "agent/podsm.h"
#include "agent/runc_node.h"
#include "client/informer.h"
#include "client/workqueue.h"
#include "client/events.h"
#include "util/log.h"
#include "util/map.h"
#include "util/timeutil.h"
#include "util/jsonparse.h"

#define COMPONENT "kubelet"
#define MAX_SIM_NODES 100000
#define DEFAULT_WORKERS 8
#define NODE_REPORT_S 60
#define LEASE_DURATION_S 40
#define TIMELINE_ANN "kubec.io/timeline"

struct agent_node {
    char name[256];
    char zone[32];
    char host_ip[48];
    char uid[64];
    bool lease_ok;      /* last renewal succeeded */
    time_t reported;    /* last Node status post */
    atomic_bool net_pod_started; /* a pod with pod networking has started (first_with_network) */
};

enum { TL_PULLED, TL_STARTED, TL_READY, TL_N };
static const char *tl_names[TL_N] = {"pulled", "started", "ready"};

struct pod_entry {
    struct kc_pod_sm sm;
    json_t *written;    /* status last written (NULL: none yet) */
    bool deleted;       /* DELETE sent after termination */
    int node;           /* index into nodes */
    /* timeline (wall clock; tv_sec 0 = stage not reached) — only the pod's worker touches these */
    struct timespec tl[TL_N];
    unsigned tl_written;             /* stages a successful status write carried */
    uint64_t ran;                    /* regular containers that have been running (bit per index) */
    struct timespec pull_first, pull_last; /* first pull started, last pull finished */
    bool sli_done;
};

struct kc_agent {
    struct kc_client *c;
    struct kc_agent_opts o;
    char profile[32], prefix[128];
    const struct kc_runtime_ops *rt; /* the metrics wrapper around the sim runtime */
    void *rt_impl;
    void *sim_impl;                  /* the sim runtime itself (node indexes) */
    struct kc_runc_node *real;       /* runtime "runc": this machine (runc_node.c); NULL for sim */
    json_t *tmpl;
    int nnodes;
    struct agent_node *nodes;
    struct kc_map node_idx;
    struct kc_informer *pods_inf;
    struct kc_wq *q;
    int nworkers;
    pthread_t *workers;
    pthread_t lease_thr;
    bool lease_started;
    struct kc_recorder *rec;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct kc_map pods;
    atomic_bool stop;
};

/* ---------- small helpers ---------- */

static const char *jstr(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }
static json_t *jmeta(json_t *o) { return json_object_get(o, "metadata"); }

static void now_micro(char *out, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    kc_time_rfc3339_micro(&ts, out, n);
}

static void now_sec(char *out, size_t n) { kc_time_rfc3339(time(NULL), out, n); }

static int node_of_pod(struct kc_agent *a, json_t *pod)
{
    const char *n = json_string_value(json_object_get(json_object_get(pod, "spec"), "nodeName"));
    if (!n || !*n)
        return -1;
    /* node_idx is filled before the informer starts and never changes: no lock */
    long v = (long)(intptr_t)kc_map_get(&a->node_idx, n);
    return (int)v - 1;
}

/* Sleeps up to ms unless the agent stops; returns true if stopping. */
static bool nap(struct kc_agent *a, int ms)
{
    struct timespec ts = kc_deadline(CLOCK_REALTIME, ms / 1000.0);
    pthread_mutex_lock(&a->mu);
    while (!atomic_load(&a->stop))
        if (pthread_cond_timedwait(&a->cv, &a->mu, &ts) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&a->mu);
    return atomic_load(&a->stop);
}

/* ---------- events ---------- */

static void on_pod_event(void *ctx, json_t *pod, const char *type, const char *reason, const char *msg)
{
    struct kc_agent *a = ctx;
    json_t *m = jmeta(pod);
    json_t *ref = json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:s}}", "apiVersion", "v1", "kind", "Pod", "metadata", "name",
                            jstr(m, "name") ?: "", "namespace", jstr(m, "namespace") ?: "", "uid",
                            jstr(m, "uid") ?: "", "resourceVersion", jstr(m, "resourceVersion") ?: "");
    if (!ref)
        return;
    kc_recorder_event(a->rec, ref, type, reason, "%s", msg);
    json_decref(ref);
}

/* Every state machine the agent drives is the sm of a pod_entry. */
static struct pod_entry *entry_of(const struct kc_pod_sm *sm)
{
    return (struct pod_entry *)(void *)((char *)(uintptr_t)sm - offsetof(struct pod_entry, sm));
}

/* Timeline bookkeeping at the moment of a container transition (called before c->st changes). */
static void note_transition(struct pod_entry *e, const struct kc_pod_sm *sm, const struct kc_ctr_sm *c,
                            enum kc_cstate from, enum kc_cstate to)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (to == KC_CS_PULLING && from != KC_CS_PULLING && !e->pull_first.tv_sec)
        e->pull_first = now;
    if (from == KC_CS_PULLING && to == KC_CS_CREATING)
        e->pull_last = now;
    if (to == KC_CS_CREATING && !e->tl[TL_PULLED].tv_sec) {
        bool all = true;
        for (int i = 0; i < sm->n; i++)
            all = all && sm->c[i].have_img;
        if (all)
            e->tl[TL_PULLED] = now;
    }
    if (to == KC_CS_RUNNING && !c->init && !e->tl[TL_STARTED].tv_sec) {
        e->ran |= 1ULL << (c - sm->c);
        bool all = true;
        for (int i = sm->ninit; i < sm->n; i++)
            all = all && (e->ran & (1ULL << i));
        if (all)
            e->tl[TL_STARTED] = now;
    }
}

static void on_trace(void *ctx, const struct kc_pod_sm *sm, const struct kc_ctr_sm *c, enum kc_cstate from,
                     enum kc_cstate to, const char *reason)
{
    (void)ctx;
    note_transition(entry_of(sm), sm, c, from, to);
    kc_debug(COMPONENT, "pod %s/%s container %s: %s -> %s%s%s", sm->ns, sm->name, c->name, kc_cstate_name(from),
             kc_cstate_name(to), reason && *reason ? " " : "", reason ? reason : "");
}

/* ---------- pod workers ---------- */

static void env_for(struct kc_agent *a, int node, struct kc_podsm_env *env)
{
    *env = (struct kc_podsm_env){.rt = a->rt, .rt_impl = a->rt_impl, .event = on_pod_event, .event_ctx = a,
                                 .trace = on_trace, .host_ip = node >= 0 ? a->nodes[node].host_ip : NULL,
                                 .immediate_kill = !strcmp(a->profile, "fast")};
}

static void drop_entry(struct kc_agent *a, const char *key, struct pod_entry *e)
{
    struct kc_podsm_env env;
    env_for(a, e->node, &env);
    kc_podsm_teardown(&e->sm, &env);
    pthread_mutex_lock(&a->mu);
    if (kc_map_get(&a->pods, key) == e)
        kc_map_del(&a->pods, key);
    pthread_mutex_unlock(&a->mu);
    kc_podsm_release(&e->sm);
    json_decref(e->written);
    free(e);
}

static int write_status(struct kc_agent *a, struct pod_entry *e, json_t *st)
{
    char path[600];
    if (!kc_path(path, sizeof path, "", "v1", "pods", e->sm.ns, e->sm.name, "status"))
        return KC_EINVAL;
    json_t *patch = json_pack("{s:{s:s},s:O}", "metadata", "uid", e->sm.uid, "status", st);
    unsigned pend = 0;
    json_t *tl = json_object();
    for (int i = 0; i < TL_N; i++)
        if (e->tl[i].tv_sec && !(e->tl_written & (1u << i))) {
            char ts[40];
            kc_time_rfc3339_micro(&e->tl[i], ts, sizeof ts);
            json_object_set_new(tl, tl_names[i], json_string(ts));
            pend |= 1u << i;
        }
    if (pend) { /* new stages ride on this write; the server adds them to the pod's annotation */
        char *s = json_dumps(tl, JSON_COMPACT | JSON_SORT_KEYS);
        if (s)
            json_object_set_new(json_object_get(patch, "metadata"), "annotations",
                                json_pack("{s:s}", TIMELINE_ANN, s));
        else
            pend = 0;
        free(s);
    }
    json_decref(tl);
    struct kc_err err = {0};
    int rc = kc_client_patch(a->c, path, "application/merge-patch+json", patch, NULL, &err);
    json_decref(patch);
    if (!rc)
        e->tl_written |= pend;
    if (rc && rc != KC_ENOTFOUND)
        kc_warn(COMPONENT, "status of pod %s/%s: %s", e->sm.ns, e->sm.name, err.message);
    return rc;
}

static int delete_pod(struct kc_agent *a, struct pod_entry *e)
{
    char path[600];
    if (!kc_path(path, sizeof path, "", "v1", "pods", e->sm.ns, e->sm.name, NULL))
        return KC_EINVAL;
    json_t *body = json_pack("{s:s,s:s,s:i,s:{s:s}}", "kind", "DeleteOptions", "apiVersion", "v1",
                             "gracePeriodSeconds", 0, "preconditions", "uid", e->sm.uid);
    struct kc_err err = {0};
    int rc = kc_client_delete(a->c, path, body, NULL, &err);
    json_decref(body);
    if (rc == KC_ENOTFOUND || rc == KC_ECONFLICT) /* gone, or a new pod of that name */
        rc = 0;
    if (rc)
        kc_warn(COMPONENT, "delete pod %s/%s: %s", e->sm.ns, e->sm.name, err.message);
    return rc;
}

static bool terminal_phase(json_t *pod)
{
    const char *ph = jstr(json_object_get(pod, "status"), "phase");
    return ph && (!strcmp(ph, "Succeeded") || !strcmp(ph, "Failed"));
}

/* Finds or creates the entry for the pod; NULL when the pod is not ours to run. */
static struct pod_entry *entry_for(struct kc_agent *a, const char *key, json_t *pod, int node)
{
    pthread_mutex_lock(&a->mu);
    struct pod_entry *e = kc_map_get(&a->pods, key);
    pthread_mutex_unlock(&a->mu);
    const char *uid = jstr(jmeta(pod), "uid") ?: "";
    if (e && strcmp(e->sm.uid, uid)) { /* same name, new pod: the old one is gone */
        drop_entry(a, key, e);
        e = NULL;
    }
    if (e)
        return e;
    /* a pod that finished before we (re)started has nothing left to run */
    if (terminal_phase(pod) && !json_object_get(jmeta(pod), "deletionTimestamp"))
        return NULL;
    e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    struct kc_err err = {0};
    if (kc_podsm_init(&e->sm, pod, a->nodes[node].name, &err)) {
        on_pod_event(a, pod, "Warning", "Failed", err.message);
        free(e);
        return NULL;
    }
    e->node = node;
    int perr = 0;
    pthread_mutex_lock(&a->mu);
    kc_map_put(&a->pods, key, e, &perr);
    pthread_mutex_unlock(&a->mu);
    if (perr) {
        kc_podsm_release(&e->sm);
        free(e);
        return NULL;
    }
    return e;
}

static bool status_ready(json_t *st)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(st, "conditions"), i, c) if (!strcmp(jstr(c, "type") ?: "", "Ready"))
        return !strcmp(jstr(c, "status") ?: "", "True");
    return false;
}

/* RFC 3339 with an optional fraction → timespec; false if malformed. */
static bool parse_time(const char *s, struct timespec *out)
{
    time_t t;
    if (!s || kc_time_parse(s, &t))
        return false;
    long ns = 0, scale = 100000000;
    const char *dot = strchr(s, '.');
    for (const char *p = dot ? dot + 1 : ""; *p >= '0' && *p <= '9' && scale; p++, scale /= 10)
        ns += (*p - '0') * scale;
    out->tv_sec = t;
    out->tv_nsec = ns;
    return true;
}

static double ts_diff(const struct timespec *a, const struct timespec *b)
{
    return (double)(a->tv_sec - b->tv_sec) + (double)(a->tv_nsec - b->tv_nsec) / 1e9;
}

/* kubelet_pod_start_sli_duration_seconds: creation (the API server's microsecond "created" stamp, else
 * creationTimestamp) → all containers started, minus the span from the first pull's start to the last
 * pull's end, as upstream's pod startup latency tracker. */
static void observe_start_sli(struct kc_agent *a, struct pod_entry *e, json_t *pod, int node)
{
    struct timespec created;
    json_t *tl = kc_json_loads(jstr(json_object_get(jmeta(pod), "annotations"), TIMELINE_ANN) ?: "{}", 0, NULL);
    /* a pod that had started before (an earlier agent process stamped it) is a restart, not a start */
    bool restarted = json_object_get(tl, tl_names[TL_STARTED]) != NULL;
    bool ok = parse_time(jstr(tl, "created"), &created) || parse_time(jstr(jmeta(pod), "creationTimestamp"), &created);
    json_decref(tl);
    if (!ok || restarted)
        return;
    double d = ts_diff(&e->tl[TL_STARTED], &created);
    if (e->pull_first.tv_sec && e->pull_last.tv_sec && ts_diff(&e->pull_last, &e->pull_first) > 0)
        d -= ts_diff(&e->pull_last, &e->pull_first);
    bool host_net = json_is_true(json_object_get(json_object_get(pod, "spec"), "hostNetwork"));
    bool first = !host_net && !atomic_exchange(&a->nodes[node].net_pod_started, true);
    kc_kmetrics_pod_start_sli(d, first);
}

static void sync_pod(struct kc_agent *a, const char *key)
{
    json_t *pod = kc_informer_get(a->pods_inf, key);
    int node = pod ? node_of_pod(a, pod) : -1;
    if (!pod || node < 0) {
        pthread_mutex_lock(&a->mu);
        struct pod_entry *e = kc_map_get(&a->pods, key);
        pthread_mutex_unlock(&a->mu);
        if (e)
            drop_entry(a, key, e);
        json_decref(pod);
        return;
    }
    struct pod_entry *e = entry_for(a, key, pod, node);
    if (!e || e->deleted) {
        json_decref(pod);
        return;
    }
    struct kc_podsm_env env;
    env_for(a, node, &env);
    int64_t wake = 0;
    int done = kc_podsm_sync(&e->sm, pod, &env, &wake);
    json_t *st = kc_podsm_status(&e->sm, pod, &env);
    if (st && !e->tl[TL_READY].tv_sec && status_ready(st))
        clock_gettime(CLOCK_REALTIME, &e->tl[TL_READY]);
    if (e->tl[TL_STARTED].tv_sec && !e->sli_done) {
        e->sli_done = true;
        observe_start_sli(a, e, pod, node);
    }
    if (st && !json_equal(st, e->written)) {
        int rc = write_status(a, e, st);
        if (!rc) {
            json_decref(e->written);
            e->written = json_incref(st);
            kc_wq_forget(a->q, key);
        } else if (rc != KC_ENOTFOUND) {
            kc_wq_add_rate_limited(a->q, key);
        }
    }
    json_decref(st);
    if (done) {
        if (!delete_pod(a, e))
            e->deleted = true;
        else
            kc_wq_add_rate_limited(a->q, key);
    } else if (wake) {
        int64_t d = wake - kc_clock_real(NULL);
        kc_wq_add_after(a->q, key, d < 1 ? 1 : d > 3600000 ? 3600000 : (int)d);
    }
    json_decref(pod);
}

static void *worker_main(void *arg)
{
    pthread_setname_np(pthread_self(), "kc-agent-pod");
    struct kc_agent *a = arg;
    char *key;
    while ((key = kc_wq_get(a->q))) {
        sync_pod(a, key);
        kc_wq_done(a->q, key);
        free(key);
    }
    return NULL;
}

static void enqueue_if_ours(struct kc_agent *a, json_t *pod)
{
    if (node_of_pod(a, pod) < 0)
        return;
    char key[600];
    if (kc_object_key(pod, key, sizeof key))
        kc_wq_add(a->q, key);
}

static void h_add(void *ctx, json_t *obj) { enqueue_if_ours(ctx, obj); }
/* As upstream's pod config source: a status-only change (most often our own write) is no reason to
 * sync; timed wake-ups drive the state machine. */
static bool same_field(json_t *a, json_t *b, const char *k)
{
    json_t *x = json_object_get(a, k), *y = json_object_get(b, k);
    return (!x && !y) || (x && y && json_equal(x, y));
}

/* Annotations equal apart from the timeline (which our own status writes extend). */
static bool same_annotations(json_t *om, json_t *nm)
{
    json_t *x = json_object_get(om, "annotations"), *y = json_object_get(nm, "annotations");
    size_t nx = json_object_size(x) - (json_object_get(x, TIMELINE_ANN) ? 1 : 0);
    size_t ny = json_object_size(y) - (json_object_get(y, TIMELINE_ANN) ? 1 : 0);
    if (nx != ny)
        return false;
    const char *k;
    json_t *v;
    json_object_foreach(x, k, v)
    {
        if (strcmp(k, TIMELINE_ANN) && !json_equal(v, json_object_get(y, k)))
            return false;
    }
    return true;
}

static void h_update(void *ctx, json_t *old, json_t *obj)
{
    json_t *om = jmeta(old), *nm = jmeta(obj);
    if (old && same_field(old, obj, "spec") && same_field(om, nm, "uid") && same_field(om, nm, "deletionTimestamp") &&
        same_annotations(om, nm) && same_field(om, nm, "labels"))
        return;
    enqueue_if_ours(ctx, obj);
}
static void h_delete(void *ctx, json_t *obj) { enqueue_if_ours(ctx, obj); }

/* ---------- nodes ---------- */

/* YAML or JSON file → JSON (quantities written as YAML numbers become strings later). */
static int load_template(const char *path, json_t **out, struct kc_err *err)
{
    struct fy_parse_cfg cfg = {.flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2};
    struct fy_document *fyd = fy_document_build_from_file(&cfg, path);
    if (!fyd)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "--sim-node-template %.300s: cannot read or parse it",
                          path);
    char *js = fy_emit_document_to_string(fyd, FYECF_MODE_JSON_ONELINE | FYECF_NO_ENDING_NEWLINE);
    fy_document_destroy(fyd);
    json_error_t je;
    json_t *t = js ? kc_json_loads(js, 0, &je) : NULL;
    free(js);
    if (!json_is_object(t)) {
        json_decref(t);
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "--sim-node-template %.300s: not a mapping", path);
    }
    *out = t;
    return 0;
}

/* Template lookup: accepts {capacity, allocatable, labels, annotations, taints} or a Node object. */
static json_t *tmpl_get(json_t *t, const char *flat, const char *sect, const char *key)
{
    json_t *v = json_object_get(t, flat);
    return v ? v : json_object_get(json_object_get(t, sect), key);
}

static json_t *quantities(json_t *src, json_t *defaults)
{
    json_t *q = kc_json_copy(defaults);
    const char *k;
    json_t *v;
    json_object_foreach(src, k, v)
    {
        char b[64];
        if (json_is_string(v))
            json_object_set(q, k, v);
        else if (json_is_integer(v)) {
            snprintf(b, sizeof b, "%lld", (long long)json_integer_value(v));
            json_object_set_new(q, k, json_string(b));
        } else if (json_is_real(v)) {
            snprintf(b, sizeof b, "%g", json_real_value(v));
            json_object_set_new(q, k, json_string(b));
        }
    }
    return q;
}

static json_t *node_conditions(void)
{
    char now[40];
    now_sec(now, sizeof now);
    static const char *rows[][4] = {
        {"MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"},
        {"DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"},
        {"PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"},
        {"Ready", "True", "KubeletReady", "kubelet is posting ready status"},
    };
    json_t *a = json_array();
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "type", rows[i][0], "status", rows[i][1],
                                           "lastHeartbeatTime", now, "lastTransitionTime", now, "reason", rows[i][2],
                                           "message", rows[i][3]));
    return a;
}

static json_t *node_status(struct kc_agent *a, int i)
{
    struct agent_node *n = &a->nodes[i];
    json_t *defaults = json_pack("{s:s,s:s,s:s,s:s}", "cpu", "4", "memory", "16Gi", "pods", "110",
                                 "ephemeral-storage", "100Gi");
    json_t *cap = quantities(tmpl_get(a->tmpl, "capacity", "status", "capacity"), defaults);
    json_t *alloc = quantities(tmpl_get(a->tmpl, "allocatable", "status", "allocatable"), cap);
    json_decref(defaults);
    char mid[40];
    snprintf(mid, sizeof mid, "%032x", (unsigned)kc_hash_str(n->name));
    return json_pack("{s:o,s:o,s:o,s:[{s:s,s:s},{s:s,s:s}],s:{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s},"
                     "s:{s:{s:i}}}",
                     "capacity", cap, "allocatable", alloc, "conditions", node_conditions(), "addresses", "type",
                     "InternalIP", "address", n->host_ip, "type", "Hostname", "address", n->name, "nodeInfo",
                     "machineID", mid, "systemUUID", mid, "bootID", mid, "kernelVersion", "6.1.0-kubec-sim", "osImage",
                     "kubec sim node", "containerRuntimeVersion", "sim://0.1.0", "kubeletVersion", "v1.33.0-kubec",
                     "kubeProxyVersion", "", "operatingSystem", "linux", "architecture", "amd64", "daemonEndpoints",
                     "kubeletEndpoint", "Port", 10250);
}

/* A real node reports this machine; a sim node the template. */
static json_t *node_status_of(struct kc_agent *a, int i)
{
    json_t *st = node_status(a, i);
    if (a->real && st)
        kc_runc_node_status(a->real, st);
    return st;
}

static json_t *node_labels(struct kc_agent *a, int i)
{
    struct agent_node *n = &a->nodes[i];
    json_t *l = kc_json_copy(tmpl_get(a->tmpl, "labels", "metadata", "labels"));
    if (!json_is_object(l)) {
        json_decref(l);
        l = json_object();
    }
    json_object_set_new(l, "kubernetes.io/hostname", json_string(n->name));
    json_object_set_new(l, "kubernetes.io/os", json_string("linux"));
    json_object_set_new(l, "kubernetes.io/arch", json_string("amd64"));
    json_object_set_new(l, "beta.kubernetes.io/os", json_string("linux"));
    json_object_set_new(l, "beta.kubernetes.io/arch", json_string("amd64"));
    if (!json_object_get(l, "topology.kubernetes.io/zone"))
        json_object_set_new(l, "topology.kubernetes.io/zone", json_string(n->zone));
    return l;
}

static int post_node_status(struct kc_agent *a, int i, struct kc_err *err)
{
    char path[400];
    kc_path(path, sizeof path, "", "v1", "nodes", NULL, a->nodes[i].name, "status");
    json_t *patch = json_pack("{s:o}", "status", node_status_of(a, i));
    int rc = kc_client_patch(a->c, path, "application/merge-patch+json", patch, NULL, err);
    json_decref(patch);
    if (!rc)
        a->nodes[i].reported = time(NULL);
    return rc;
}

static int register_node(struct kc_agent *a, int i, struct kc_err *err)
{
    struct agent_node *n = &a->nodes[i];
    json_t *ann = kc_json_copy(tmpl_get(a->tmpl, "annotations", "metadata", "annotations"));
    if (!json_is_object(ann)) {
        json_decref(ann);
        ann = json_object();
    }
    if (!a->real)
        json_object_set_new(ann, "kubec.io/sim", json_string("true"));
    json_object_set_new(ann, "node.alpha.kubernetes.io/ttl", json_string("0"));
    json_t *taints = kc_json_copy(tmpl_get(a->tmpl, "taints", "spec", "taints"));
    json_t *node = json_pack("{s:s,s:s,s:{s:s,s:o,s:o},s:{},s:o}", "apiVersion", "v1", "kind", "Node", "metadata",
                             "name", n->name, "labels", node_labels(a, i), "annotations", ann, "spec", "status",
                             node_status_of(a, i));
    if (json_is_array(taints))
        json_object_set_new(json_object_get(node, "spec"), "taints", taints);
    else
        json_decref(taints);
    json_t *got = NULL;
    int rc = kc_client_create(a->c, "/api/v1/nodes", node, &got, err);
    json_decref(node);
    if (rc == KC_EEXISTS) { /* re-registration: refresh our labels, keep the rest (cordon, taints) */
        char path[400];
        kc_path(path, sizeof path, "", "v1", "nodes", NULL, n->name, NULL);
        json_t *patch = json_pack("{s:{s:o}}", "metadata", "labels", node_labels(a, i));
        rc = kc_client_patch(a->c, path, "application/merge-patch+json", patch, &got, err);
        json_decref(patch);
    }
    if (rc)
        return rc;
    snprintf(n->uid, sizeof n->uid, "%s", jstr(jmeta(got), "uid") ?: "");
    json_decref(got);
    return post_node_status(a, i, err);
}

static int renew_lease(struct kc_agent *a, int i, struct kc_err *err)
{
    struct agent_node *n = &a->nodes[i];
    char now[40], path[500];
    now_micro(now, sizeof now);
    kc_path(path, sizeof path, "coordination.k8s.io", "v1", "leases", "kube-node-lease", n->name, NULL);
    json_t *patch = json_pack("{s:{s:s,s:i,s:s}}", "spec", "holderIdentity", n->name, "leaseDurationSeconds",
                              LEASE_DURATION_S, "renewTime", now);
    int rc = kc_client_patch(a->c, path, "application/merge-patch+json", patch, NULL, err);
    json_decref(patch);
    if (rc != KC_ENOTFOUND)
        return rc;
    json_t *lease = json_pack("{s:s,s:s,s:{s:s,s:s,s:[{s:s,s:s,s:s,s:s}]},s:{s:s,s:i,s:s}}", "apiVersion",
                              "coordination.k8s.io/v1", "kind", "Lease", "metadata", "name", n->name, "namespace",
                              "kube-node-lease", "ownerReferences", "apiVersion", "v1", "kind", "Node", "name", n->name,
                              "uid", n->uid, "spec", "holderIdentity", n->name, "leaseDurationSeconds",
                              LEASE_DURATION_S, "renewTime", now);
    if (!n->uid[0]) /* no uid known: no owner reference rather than a wrong one */
        json_object_del(json_object_get(lease, "metadata"), "ownerReferences");
    kc_path(path, sizeof path, "coordination.k8s.io", "v1", "leases", "kube-node-lease", NULL, NULL);
    rc = kc_client_create(a->c, path, lease, NULL, err);
    json_decref(lease);
    return rc == KC_EEXISTS ? 0 : rc;
}

static void lease_round(struct kc_agent *a)
{
    for (int i = 0; i < a->nnodes && !atomic_load(&a->stop); i++) {
        struct kc_err err = {0};
        struct agent_node *n = &a->nodes[i];
        if (!n->uid[0] && register_node(a, i, &err)) {
            kc_warn(COMPONENT, "register node %s: %s", n->name, err.message);
            continue;
        }
        int rc = renew_lease(a, i, &err);
        if (rc) {
            if (n->lease_ok)
                kc_warn(COMPONENT, "renew lease of node %s: %s", n->name, err.message);
            n->lease_ok = false;
            continue;
        }
        /* back from a failure (the lifecycle controller may have marked us Unknown), or time to report */
        if (!n->lease_ok || time(NULL) - n->reported >= NODE_REPORT_S) {
            if (post_node_status(a, i, &err))
                kc_warn(COMPONENT, "node %s status: %s", n->name, err.message);
        }
        n->lease_ok = true;
    }
}

static void *lease_main(void *arg)
{
    pthread_setname_np(pthread_self(), "kc-agent-lease");
    struct kc_agent *a = arg;
    while (!nap(a, a->o.lease_renew_s * 1000))
        lease_round(a);
    return NULL;
}

/* ---------- start / stop ---------- */

static int setup_nodes(struct kc_agent *a, struct kc_err *err)
{
    static const char *zones[] = {"zone-a", "zone-b", "zone-c"};
    a->nodes = calloc((size_t)a->nnodes, sizeof *a->nodes);
    if (!a->nodes)
        return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
    for (int i = 0; i < a->nnodes; i++) {
        struct agent_node *n = &a->nodes[i];
        snprintf(n->name, sizeof n->name, "%s-%d", a->prefix, i);
        snprintf(n->zone, sizeof n->zone, "%s", zones[i % 3]);
        snprintf(n->host_ip, sizeof n->host_ip, "10.41.%d.%d", (i / 250) % 256, i % 250 + 1);
        if (a->real) { /* this machine */
            snprintf(n->name, sizeof n->name, "%s", a->prefix);
            kc_runc_host_ip(n->host_ip, sizeof n->host_ip);
        }
        int perr = 0;
        kc_map_put(&a->node_idx, n->name, (void *)(intptr_t)(i + 1), &perr);
        if (perr)
            return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
        if (a->sim_impl)
            kc_sim_set_node_index(a->sim_impl, n->name, i);
    }
    for (int i = 0; i < a->nnodes; i++) {
        if (register_node(a, i, err))
            return kc_err_set(err, KC_EIO, err->code, err->reason, "register node %s: %s", a->nodes[i].name,
                              err->message);
        struct kc_err lerr = {0};
        a->nodes[i].lease_ok = renew_lease(a, i, &lerr) == 0;
    }
    return 0;
}

static int start_pods(struct kc_agent *a, struct kc_err *err)
{
    char fs[400];
    if (a->nnodes == 1)
        snprintf(fs, sizeof fs, "spec.nodeName=%s", a->nodes[0].name);
    else
        snprintf(fs, sizeof fs, "spec.nodeName!=");
    struct kc_informer_opts io = {.group = "", .version = "v1", .plural = "pods", .field_selector = fs};
    int rc = kc_informer_new(a->c, &io, &a->pods_inf, err);
    if (rc)
        return rc;
    struct kc_informer_handlers h = {.ctx = a, .on_add = h_add, .on_update = h_update, .on_delete = h_delete};
    kc_informer_add_handlers(a->pods_inf, &h);
    a->nworkers = a->o.workers > 0 && a->o.workers <= 256 ? a->o.workers : DEFAULT_WORKERS;
    a->workers = calloc((size_t)a->nworkers, sizeof *a->workers);
    if (!a->workers)
        return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
    for (int i = 0; i < a->nworkers; i++)
        if (pthread_create(&a->workers[i], NULL, worker_main, a)) {
            a->nworkers = i;
            return kc_err_set(err, KC_EIO, 0, "InternalError", "cannot start pod workers");
        }
    if (kc_informer_start(a->pods_inf))
        return kc_err_set(err, KC_EIO, 0, "InternalError", "cannot start the pod informer");
    return 0;
}

/* ns/name → uid of a pod this agent runs (the log server's lookup). */
static int pod_uid_of(void *ctx, const char *ns, const char *name, char *uid, size_t n)
{
    struct kc_agent *a = ctx;
    char key[600];
    snprintf(key, sizeof key, "%.250s/%.300s", ns, name);
    pthread_mutex_lock(&a->mu);
    struct pod_entry *e = kc_map_get(&a->pods, key);
    if (e)
        snprintf(uid, n, "%s", e->sm.uid);
    pthread_mutex_unlock(&a->mu);
    return e ? 0 : KC_ENOTFOUND;
}

static int start_real(struct kc_agent *a, const struct kc_agent_opts *o, const struct kc_runtime_ops **ops,
                      void **impl, struct kc_err *err)
{
    char ip[48];
    kc_runc_host_ip(ip, sizeof ip);
    struct kc_runc_node_opts ro = {.client = a->c, .data_dir = o->data_dir, .node_name = a->prefix, .host_ip = ip,
                                   .serving_port = o->serving_port, .serving_token = o->serving_token,
                                   .registry_ca_dir = o->registry_ca_dir, .pod_uid = pod_uid_of, .ctx = a};
    return kc_runc_node_new(&ro, ops, impl, &a->real, err);
}

const char *kc_agent_serving_token(const struct kc_agent *a) { return a ? kc_runc_node_token(a->real) : NULL; }
int kc_agent_serving_port(const struct kc_agent *a) { return a ? kc_runc_node_port(a->real) : 0; }

int kc_agent_start(struct kc_client *c, const struct kc_agent_opts *o, struct kc_agent **out, struct kc_err *err)
{
    bool real = o && o->runtime && !strcmp(o->runtime, "runc");
    if (o && o->runtime && !real && strcmp(o->runtime, "sim"))
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "unknown runtime \"%.40s\" (want sim or runc)", o->runtime);
    if (!c || !o || (!real && (o->sim_nodes < 1 || o->sim_nodes > MAX_SIM_NODES)))
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "--sim-nodes must be between 1 and %d", MAX_SIM_NODES);
    struct kc_agent *a = calloc(1, sizeof *a);
    if (!a)
        return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
    a->c = c;
    a->o = *o;
    if (a->o.lease_renew_s <= 0)
        a->o.lease_renew_s = 10;
    snprintf(a->profile, sizeof a->profile, "%s", o->sim_profile && *o->sim_profile ? o->sim_profile : "fast");
    snprintf(a->prefix, sizeof a->prefix, "%s", o->node_name_prefix && *o->node_name_prefix ? o->node_name_prefix
                                                                                             : "sim");
    a->nnodes = real ? 1 : o->sim_nodes;
    if (real) {
        char host[128] = "localhost";
        gethostname(host, sizeof host - 1);
        snprintf(a->prefix, sizeof a->prefix, "%s", o->node_name && *o->node_name ? o->node_name : host);
        snprintf(a->profile, sizeof a->profile, "runc");
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    kc_map_init(&a->node_idx);
    kc_map_init(&a->pods);
    int rc = 0;
    a->rec = kc_recorder_new(c, COMPONENT, NULL);
    a->q = kc_wq_new("kubelet-pods", 5, 10000);
    if (!a->rec || !a->q)
        rc = kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
    const struct kc_runtime_ops *sim_ops = NULL;
    void *inner = NULL;
    if (!rc && real)
        rc = start_real(a, o, &sim_ops, &inner, err);
    else if (!rc)
        rc = kc_sim_runtime_new(a->profile, NULL, NULL, &sim_ops, &a->sim_impl, err);
    if (!rc && !real)
        inner = a->sim_impl;
    if (!rc && (rc = kc_rt_metrics_wrap(sim_ops, inner, &a->rt, &a->rt_impl, err)))
        sim_ops->free(inner);
    if (!rc && o->sim_node_template)
        rc = load_template(o->sim_node_template, &a->tmpl, err);
    if (!rc && !a->tmpl)
        a->tmpl = json_object();
    if (!rc)
        rc = setup_nodes(a, err);
    if (!rc)
        rc = start_pods(a, err);
    if (!rc && pthread_create(&a->lease_thr, NULL, lease_main, a))
        rc = kc_err_set(err, KC_EIO, 0, "InternalError", "cannot start the lease thread");
    a->lease_started = !rc;
    if (rc) {
        kc_agent_stop(a);
        return rc;
    }
    *out = a;
    return 0;
}

void kc_agent_stop(struct kc_agent *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    atomic_store(&a->stop, true);
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    if (a->lease_started)
        pthread_join(a->lease_thr, NULL);
    if (a->q)
        kc_wq_shutdown(a->q);
    for (int i = 0; i < a->nworkers; i++)
        pthread_join(a->workers[i], NULL);
    free(a->workers);
    if (a->pods_inf)
        kc_informer_free(a->pods_inf); /* after the workers: they read its cache */
    if (a->rec)
        kc_recorder_free(a->rec);
    const char *k;
    void *v;
    for (long i = kc_map_next(&a->pods, 0, &k, &v); i >= 0; i = kc_map_next(&a->pods, i + 1, &k, &v)) {
        struct pod_entry *e = v;
        kc_podsm_release(&e->sm);
        json_decref(e->written);
        free(e);
    }
    kc_map_release(&a->pods);
    kc_map_release(&a->node_idx);
    if (a->q)
        kc_wq_free(a->q);
    kc_runc_node_stop(a->real); /* the log server reads through the runtime: stop it first */
    if (a->rt)
        a->rt->free(a->rt_impl);
    kc_runc_node_free(a->real);
    json_decref(a->tmpl);
    free(a->nodes);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}
