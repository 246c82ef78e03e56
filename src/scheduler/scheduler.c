/* scheduler.c — the scheduling loop: queue, snapshot upkeep, binding, events.
 *
 * Threads: two informer threads (nodes, pods) update the snapshot and the
 * queue under s->mu; one scheduling thread pops the highest-priority ready
 * pod, runs kc_schedule on the snapshot (under s->mu), "assumes" the pod on
 * the chosen node and hands the binding to a pool of binder threads, so the
 * next pod is scheduled while the previous binding is still in flight.
 *
 * Queue (as upstream's scheduling queue): active — a binary heap ordered by
 * priority, then by the time the pod entered the queue; backoff — pods
 * whose last attempt failed wait 1 s doubling to 10 s; unschedulable — pods
 * that fit nowhere wait there until a cluster event that may help (a node
 * added or changed, a pod deleted) moves them back, or 60 s pass.
 *
 * Nominations (as upstream's nominator): a pod that preempted victims on a
 * node is nominated there until it is bound or gone. While its victims
 * terminate, every attempt for a pod of lower or equal priority counts the
 * nominated pods on their nodes, so the room freed for the preemptor is not
 * taken by the victims' own replacements; and the preemptor does not preempt
 * again while a lower-priority pod on its nominated node is still terminating.
 *
 * Profile (for `kubec scheduler-profile`): exact call counts of every filter and
 * score plugin, their times on the timed attempts (10 % of attempts, as upstream
 * samples, plus every attempt of a pod that has already spent PROF_SLOW_S), and
 * per pod the total algorithm time and the plugin that dominated it. A publisher
 * thread writes them, once a second while anything changed, as JSON into the
 * ConfigMap kube-system/kubec-scheduler-profile-<schedulerName>, so the tool reads
 * them through the API server whether the scheduler runs in `kubec server` or as
 * `kubec scheduler`. Slowest pods: each second's 16 slowest go into a ring of the
 * last PROF_RING records (the tool polls and merges them by sequence number).
 */
#include "scheduler/scheduler.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/informer.h"
#include "client/events.h"
#include "scheduler/framework.h"
#include "util/log.h"
#include "util/map.h"
#include "util/metrics.h"
#include "util/timeutil.h"
#include "util/jsonparse.h"

#define BACKOFF_INITIAL_S 1.0
#define BACKOFF_MAX_S 10.0
#define UNSCHEDULABLE_FLUSH_S 60.0
#define PROF_SLOW_S 0.005  /* a pod that has spent this much in the algorithm is timed per plugin from then on */
#define PROF_EPOCH_TOP 16  /* slowest pods kept per publish interval */
#define PROF_RING 128      /* slowest-pod records published (the last 8 intervals) */
#define PROF_NPLUG (KC_NFILTERS + KC_NSCORES + 1) /* filters, scores, then DefaultPreemption (PostFilter) */

enum qstate { Q_ACTIVE = 1, Q_BACKOFF, Q_UNSCHED, Q_INFLIGHT };

struct qent {
    char *key;           /* ns/name */
    json_t *pod;         /* latest version seen */
    int32_t priority;
    double added;        /* when it (re)entered the queue, for ordering */
    double ready_at;     /* backoff end */
    int attempts;
    enum qstate state;
    size_t heap_idx;
    bool dirty;          /* updated while in flight */
    char *nominated;     /* node it preempted victims on (status.nominatedNodeName), or NULL */
    /* profile: algorithm time over all attempts, split by extension point (filter, score, postfilter)
     * and, for the timed attempts, by plugin */
    double prof_s, prof_ep[3], prof_plug[PROF_NPLUG];
    bool prof_timed;
};

/* One slow pod for the profile. */
struct prof_rec {
    unsigned long long seq; /* order in which pods finished scheduling */
    char pod[192];          /* ns/name */
    double seconds;
    int attempts;
    int dominant;           /* index into the plugin rows, or -1 - extension point when never timed */
    double dominant_s;
};

struct sched_profile {
    unsigned long long calls[PROF_NPLUG], timed_calls[PROF_NPLUG];
    double timed_s[PROF_NPLUG];
    unsigned long long attempts, timed_attempts, finished;
    double attempt_s;
    struct prof_rec epoch[PROF_EPOCH_TOP]; /* slowest since the last publish */
    int nepoch;
    struct prof_rec ring[PROF_RING];
    size_t ring_next;                      /* total records ever pushed */
    unsigned long long published_attempts; /* attempts at the last publish */
};

struct bind_job {
    struct bind_job *next;
    char *ns, *name, *uid, *node;
    json_t *pod;
    bool clear_nominated; /* the pod carried status.nominatedNodeName: clear it once bound */
};

struct kc_scheduler {
    struct kc_client *c;
    char sched_name[128];
    struct kc_informer *nodes, *pods;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct kc_snapshot snap;
    struct kc_map q;           /* key → struct qent* (every pending pod) */
    struct qent **heap;
    size_t nheap, capheap;
    struct qent **noms;        /* pending pods with a nominated node */
    size_t nnoms, capnoms;
    struct kc_snode **nom_nodes; /* scratch of nominated_add: where each nominated pod was placed */
    const char **nom_uids;
    size_t capnomadd;
    unsigned rr;
    bool stop;
    pthread_t thread;
    /* binder pool */
    pthread_mutex_t bmu;
    pthread_cond_t bcond;
    struct bind_job *bhead, *btail;
    pthread_t *binders;
    int nbinders;
    struct kc_sched_stats st;
    struct kc_recorder *rec;
    unsigned long attempts;
    struct kc_family *m_pending, *m_attempts, *m_attempt_dur, *m_preempt, *m_plugin, *m_extpoint;
    struct sched_profile prof; /* under mu */
    pthread_t publisher;
    pthread_cond_t pcond;
};

/* ---------- metrics (upstream names; pkg/scheduler/metrics) ---------- */

static void sched_metrics_init(struct kc_scheduler *s)
{
    struct kc_registry *r = kc_registry_default();
    double b[20];
    static const char *q[] = {"queue", NULL};
    static const char *rp[] = {"result", "profile", NULL};
    static const char *pl[] = {"plugin", "extension_point", "status", NULL};
    static const char *ep[] = {"extension_point", "status", "profile", NULL};
    s->m_pending = kc_family_new(r, KC_GAUGE, "scheduler_pending_pods",
                                 "Number of pending pods, by the queue type. 'active' means number of pods in activeQ; "
                                 "'backoff' means number of pods in backoffQ; 'unschedulable' means number of pods in "
                                 "unschedulablePods that the scheduler attempted to schedule and failed; 'gated' is the "
                                 "number of unschedulable pods that the scheduler never attempted to schedule because "
                                 "they are gated.",
                                 q, NULL, 0);
    s->m_attempts = kc_family_new(r, KC_COUNTER, "scheduler_schedule_attempts_total",
                                  "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod "
                                  "could not be scheduled, while 'error' means an internal scheduler problem.",
                                  rp, NULL, 0);
    size_t nb = kc_buckets_exp(0.001, 2, 15, b);
    s->m_attempt_dur = kc_family_new(r, KC_HISTOGRAM, "scheduler_scheduling_attempt_duration_seconds",
                                     "Scheduling attempt latency in seconds (scheduling algorithm + binding)", rp, b, nb);
    s->m_preempt = kc_family_new(r, KC_COUNTER, "scheduler_preemption_attempts_total",
                                 "Total preemption attempts in the cluster till now", NULL, NULL, 0);
    nb = kc_buckets_exp(0.00001, 1.5, 20, b);
    s->m_plugin = kc_family_new(r, KC_HISTOGRAM, "scheduler_plugin_execution_duration_seconds",
                                "Duration for running a plugin at a specific extension point.", pl, b, nb);
    nb = kc_buckets_exp(0.0001, 2, 12, b);
    s->m_extpoint = kc_family_new(r, KC_HISTOGRAM, "scheduler_framework_extension_point_duration_seconds",
                                  "Latency for running all plugins of a specific extension point.", ep, b, nb);
}

static void sched_metrics_attempt(struct kc_scheduler *s, const struct kc_sched_result *r, double seconds)
{
    const char *result = r->node >= 0 ? "scheduled" : "unschedulable";
    kc_metric_inc(s->m_attempts, 1, result, s->sched_name);
    kc_metric_observe(s->m_attempt_dur, seconds, result, s->sched_name);
    kc_metric_observe(s->m_extpoint, r->filter_s, "Filter", r->node >= 0 ? "Success" : "Unschedulable", s->sched_name);
    if (r->node >= 0)
        kc_metric_observe(s->m_extpoint, r->score_s, "Score", "Success", s->sched_name);
    if (r->nominated >= 0)
        kc_metric_inc(s->m_preempt, 1);
    if (r->time_plugins) {
        for (int i = 0; i < KC_NFILTERS; i++)
            if (r->filter_calls[i])
                kc_metric_observe(s->m_plugin, r->plugin_s[i], kc_filter_plugin_name(i), "Filter", "Success");
        for (int i = 0; i < KC_NSCORES; i++)
            if (r->score_calls)
                kc_metric_observe(s->m_plugin, r->score_plugin_s[i], kc_score_plugin_name(i), "Score", "Success");
    }
}

/* ---------- profile ---------- */

static const char *prof_plugin_name(int i)
{
    return i < KC_NFILTERS ? kc_filter_plugin_name(i)
           : i < KC_NFILTERS + KC_NSCORES ? kc_score_plugin_name(i - KC_NFILTERS)
                                           : "DefaultPreemption";
}

static const char *prof_ext_point(int i)
{
    return i < KC_NFILTERS ? "Filter" : i < KC_NFILTERS + KC_NSCORES ? "Score" : "PostFilter";
}

/* Adds one attempt of e to the profile (under mu). */
static void prof_attempt(struct kc_scheduler *s, struct qent *e, const struct kc_sched_result *r, double seconds)
{
    struct sched_profile *pf = &s->prof;
    pf->attempts++;
    pf->attempt_s += seconds;
    for (int i = 0; i < KC_NFILTERS; i++)
        pf->calls[i] += r->filter_calls[i];
    for (int i = 0; i < KC_NSCORES; i++)
        pf->calls[KC_NFILTERS + i] += r->score_calls;
    bool post = r->node < 0 && s->snap.n > 0; /* no node fit: the post-filter ran */
    pf->calls[PROF_NPLUG - 1] += post;
    e->prof_s += seconds;
    e->prof_ep[0] += r->filter_s;
    e->prof_ep[1] += r->score_s;
    e->prof_ep[2] += r->postfilter_s;
    if (post) { /* the post-filter is timed on every attempt that runs it */
        pf->timed_calls[PROF_NPLUG - 1]++;
        pf->timed_s[PROF_NPLUG - 1] += r->postfilter_s;
        e->prof_plug[PROF_NPLUG - 1] += r->postfilter_s;
    }
    if (!r->time_plugins)
        return;
    pf->timed_attempts++;
    e->prof_timed = true;
    for (int i = 0; i < KC_NFILTERS; i++) {
        pf->timed_calls[i] += r->filter_calls[i];
        pf->timed_s[i] += r->plugin_s[i];
        e->prof_plug[i] += r->plugin_s[i];
    }
    for (int i = 0; i < KC_NSCORES; i++) {
        pf->timed_calls[KC_NFILTERS + i] += r->score_calls;
        pf->timed_s[KC_NFILTERS + i] += r->score_plugin_s[i];
        e->prof_plug[KC_NFILTERS + i] += r->score_plugin_s[i];
    }
}

/* e was scheduled: keep it if it is among the slowest of this publish interval (under mu). */
static void prof_finished(struct kc_scheduler *s, const struct qent *e)
{
    struct sched_profile *pf = &s->prof;
    struct prof_rec rec = {.seq = ++pf->finished, .seconds = e->prof_s, .attempts = e->attempts + 1, .dominant = -1};
    snprintf(rec.pod, sizeof rec.pod, "%s", e->key);
    if (e->prof_timed || e->prof_plug[PROF_NPLUG - 1] > 0) {
        for (int i = 0; i < PROF_NPLUG; i++)
            if (e->prof_plug[i] > rec.dominant_s) {
                rec.dominant = i;
                rec.dominant_s = e->prof_plug[i];
            }
    }
    if (rec.dominant < 0 || !e->prof_timed) { /* no per-plugin times: name the extension point */
        int ep = e->prof_ep[1] > e->prof_ep[0] ? 1 : 0;
        ep = e->prof_ep[2] > e->prof_ep[ep] ? 2 : ep;
        if (rec.dominant < 0 || ep != 2) {
            rec.dominant = -1 - ep;
            rec.dominant_s = e->prof_ep[ep];
        }
    }
    int slot = pf->nepoch;
    if (pf->nepoch == PROF_EPOCH_TOP) { /* replace the fastest kept, if this one is slower */
        slot = 0;
        for (int i = 1; i < PROF_EPOCH_TOP; i++)
            if (pf->epoch[i].seconds < pf->epoch[slot].seconds)
                slot = i;
        if (pf->epoch[slot].seconds >= rec.seconds)
            return;
    } else {
        pf->nepoch++;
    }
    pf->epoch[slot] = rec;
}

static int cmp_rec_slowest(const void *a, const void *b)
{
    double x = ((const struct prof_rec *)a)->seconds, y = ((const struct prof_rec *)b)->seconds;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The published document (under mu): counters since start, and the kept slowest pods. */
static json_t *prof_json(struct kc_scheduler *s)
{
    struct sched_profile *pf = &s->prof;
    qsort(pf->epoch, (size_t)pf->nepoch, sizeof *pf->epoch, cmp_rec_slowest);
    for (int i = 0; i < pf->nepoch; i++)
        pf->ring[pf->ring_next++ % PROF_RING] = pf->epoch[i];
    pf->nepoch = 0;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    json_t *plugins = json_array(), *slow = json_array();
    for (int i = 0; i < PROF_NPLUG; i++)
        json_array_append_new(plugins, json_pack("{s:s,s:s,s:I,s:I,s:f}", "plugin", prof_plugin_name(i),
                                                 "extensionPoint", prof_ext_point(i), "calls", (json_int_t)pf->calls[i],
                                                 "timedCalls", (json_int_t)pf->timed_calls[i], "timedSeconds",
                                                 pf->timed_s[i]));
    size_t n = pf->ring_next < PROF_RING ? pf->ring_next : PROF_RING;
    for (size_t i = 0; i < n; i++) {
        const struct prof_rec *r = &pf->ring[i];
        static const char *eps[] = {"Filter", "Score", "PostFilter"};
        json_array_append_new(slow, json_pack("{s:I,s:s,s:f,s:i,s:s,s:s,s:b,s:f}", "seq", (json_int_t)r->seq, "pod",
                                              r->pod, "seconds", r->seconds, "attempts", r->attempts, "dominant",
                                              r->dominant >= 0 ? prof_plugin_name(r->dominant) : "",
                                              "extensionPoint",
                                              r->dominant >= 0 ? prof_ext_point(r->dominant) : eps[-1 - r->dominant],
                                              "sampled", r->dominant >= 0, "dominantSeconds", r->dominant_s));
    }
    pf->published_attempts = pf->attempts;
    return json_pack("{s:s,s:f,s:I,s:I,s:I,s:f,s:o,s:o}", "scheduler", s->sched_name, "time",
                     (double)now.tv_sec + now.tv_nsec / 1e9, "attempts", (json_int_t)pf->attempts, "timedAttempts",
                     (json_int_t)pf->timed_attempts, "finished", (json_int_t)pf->finished, "attemptSeconds",
                     pf->attempt_s, "plugins", plugins, "slowest", slow);
}

/* Writes the document into the ConfigMap (replace, or create the first time). */
static void prof_publish(struct kc_scheduler *s, json_t *doc)
{
    char name[253], path[600];
    snprintf(name, sizeof name, "kubec-scheduler-profile-%.200s", s->sched_name);
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text)
        return;
    json_t *cm = json_pack("{s:s,s:s,s:{s:s,s:s,s:{s:s}},s:{s:s}}", "apiVersion", "v1", "kind", "ConfigMap",
                           "metadata", "name", name, "namespace", "kube-system", "labels", "app.kubernetes.io/component",
                           "kube-scheduler", "data", "profile.json", text);
    free(text);
    struct kc_err err = {0};
    kc_path(path, sizeof path, "", "v1", "configmaps", "kube-system", name, NULL);
    int rc = kc_client_update(s->c, path, cm, NULL, &err);
    if (rc == KC_ENOTFOUND) {
        kc_path(path, sizeof path, "", "v1", "configmaps", "kube-system", NULL, NULL);
        rc = kc_client_create(s->c, path, cm, NULL, &err);
    }
    if (rc && rc != KC_EEXISTS && rc != KC_ECONFLICT)
        kc_warn("scheduler", "publishing the profile (kube-system/%s): %s", name, err.message);
    json_decref(cm);
}

static void *prof_publisher(void *arg)
{
    pthread_setname_np(pthread_self(), "kc-sched-prof");
    struct kc_scheduler *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 1;
        pthread_cond_timedwait(&s->pcond, &s->mu, &dl);
        if (s->stop || s->prof.attempts == s->prof.published_attempts)
            continue; /* idle: nothing new, no write */
        json_t *doc = prof_json(s);
        pthread_mutex_unlock(&s->mu);
        prof_publish(s, doc);
        json_decref(doc);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void sched_collect(void *ctx)
{
    struct kc_sched_stats st;
    struct kc_scheduler *s = ctx;
    kc_scheduler_stats(s, &st);
    kc_metric_set(s->m_pending, st.active, "active");
    kc_metric_set(s->m_pending, st.backoff, "backoff");
    kc_metric_set(s->m_pending, st.unschedulable, "unschedulable");
    kc_metric_set(s->m_pending, 0, "gated");
}

static double now_s(void) { return kc_mono_now(); }

/* ---------- heap ---------- */

static bool higher(const struct qent *a, const struct qent *b)
{
    if (a->priority != b->priority)
        return a->priority > b->priority;
    return a->added < b->added;
}

static void heap_swap(struct kc_scheduler *s, size_t i, size_t j)
{
    struct qent *t = s->heap[i];
    s->heap[i] = s->heap[j];
    s->heap[j] = t;
    s->heap[i]->heap_idx = i;
    s->heap[j]->heap_idx = j;
}

static void heap_up(struct kc_scheduler *s, size_t i)
{
    while (i > 0 && higher(s->heap[i], s->heap[(i - 1) / 2])) {
        heap_swap(s, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(struct kc_scheduler *s, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->nheap && higher(s->heap[l], s->heap[m]))
            m = l;
        if (r < s->nheap && higher(s->heap[r], s->heap[m]))
            m = r;
        if (m == i)
            return;
        heap_swap(s, i, m);
        i = m;
    }
}

static void heap_push(struct kc_scheduler *s, struct qent *e)
{
    if (s->nheap == s->capheap) {
        s->capheap = s->capheap ? s->capheap * 2 : 256;
        s->heap = realloc(s->heap, s->capheap * sizeof *s->heap);
    }
    e->heap_idx = s->nheap;
    s->heap[s->nheap++] = e;
    heap_up(s, e->heap_idx);
}

static void heap_remove(struct kc_scheduler *s, struct qent *e)
{
    size_t i = e->heap_idx;
    if (i >= s->nheap || s->heap[i] != e)
        return;
    s->nheap--;
    if (i != s->nheap) {
        s->heap[i] = s->heap[s->nheap];
        s->heap[i]->heap_idx = i;
        heap_down(s, i);
        heap_up(s, i);
    }
}

static void set_state(struct kc_scheduler *s, struct qent *e, enum qstate st)
{
    if (e->state == Q_ACTIVE)
        heap_remove(s, e);
    e->state = st;
    if (st == Q_ACTIVE)
        heap_push(s, e);
}

/* Sets (node) or clears (NULL) e's nomination; s->noms lists the nominated entries. */
static void nominate(struct kc_scheduler *s, struct qent *e, const char *node)
{
    if (!node) {
        if (!e->nominated)
            return;
        for (size_t i = 0; i < s->nnoms; i++)
            if (s->noms[i] == e) {
                s->noms[i] = s->noms[--s->nnoms];
                break;
            }
        free(e->nominated);
        e->nominated = NULL;
        return;
    }
    if (!e->nominated) {
        if (s->nnoms == s->capnoms) {
            s->capnoms = s->capnoms ? s->capnoms * 2 : 16;
            s->noms = realloc(s->noms, s->capnoms * sizeof *s->noms);
        }
        s->noms[s->nnoms++] = e;
    }
    free(e->nominated);
    e->nominated = strdup(node);
}

static void qent_free(struct kc_scheduler *s, struct qent *e)
{
    if (e->nominated)
        nominate(s, e, NULL);
    free(e->key);
    json_decref(e->pod);
    free(e);
}

/* ---------- informer handlers ---------- */

static const char *jstr(json_t *o, const char *path)
{
    char buf[128];
    const char *p = path;
    json_t *cur = o;
    while (cur && *p) {
        size_t n = strcspn(p, ".");
        snprintf(buf, sizeof buf, "%.*s", (int)n, p);
        cur = json_object_get(cur, buf);
        p += n;
        if (*p == '.')
            p++;
    }
    return json_string_value(cur);
}

static bool ours(struct kc_scheduler *s, json_t *pod)
{
    const char *sn = jstr(pod, "spec.schedulerName");
    return !sn || !*sn || !strcmp(sn, s->sched_name);
}

static bool terminal(json_t *pod)
{
    const char *ph = jstr(pod, "status.phase");
    return ph && (!strcmp(ph, "Succeeded") || !strcmp(ph, "Failed"));
}

/* Moves every unschedulable pod back to active (a cluster event may have helped). */
static void flush_unschedulable(struct kc_scheduler *s)
{
    void *v;
    double t = now_s();
    for (long i = kc_map_next(&s->q, 0, NULL, &v); i >= 0; i = kc_map_next(&s->q, i + 1, NULL, &v)) {
        struct qent *e = v;
        if (e->state == Q_UNSCHED) {
            e->added = t;
            set_state(s, e, e->ready_at > t ? Q_BACKOFF : Q_ACTIVE);
        }
    }
    pthread_cond_signal(&s->cond);
}

static void remove_from_snapshot(struct kc_scheduler *s, json_t *pod)
{
    const char *node = jstr(pod, "spec.nodeName");
    const char *uid = jstr(pod, "metadata.uid");
    if (!node || !uid)
        return;
    struct kc_snode *n = kc_snapshot_node(&s->snap, node);
    if (n)
        kc_snode_remove_pod(n, uid);
}

/* Whether an update may change the outcome of scheduling (upstream's isPodUpdated: status, resourceVersion
 * and managedFields do not count). The scheduler's own status patches (PodScheduled=False,
 * nominatedNodeName) must not send the pod straight back to active. */
static bool pod_changed(json_t *old, json_t *pod)
{
    json_t *om = json_object_get(old, "metadata"), *nm = json_object_get(pod, "metadata");
    return !old || !json_equal(json_object_get(old, "spec"), json_object_get(pod, "spec")) ||
           !json_equal(json_object_get(om, "labels"), json_object_get(nm, "labels")) ||
           !json_equal(json_object_get(om, "annotations"), json_object_get(nm, "annotations"));
}

static void pod_upsert(struct kc_scheduler *s, json_t *pod, json_t *old)
{
    char key[512];
    kc_object_key(pod, key, sizeof key);
    const char *node = jstr(pod, "spec.nodeName");
    pthread_mutex_lock(&s->mu);
    struct qent *e = kc_map_get(&s->q, key);
    if (node && *node) {
        /* bound: it lives in the snapshot (replacing an assumed copy) */
        if (e) {
            if (e->state == Q_INFLIGHT) {
                e->dirty = true;
            } else {
                kc_map_del(&s->q, key);
                set_state(s, e, Q_UNSCHED);
                qent_free(s, e);
            }
        }
        remove_from_snapshot(s, pod);
        struct kc_snode *n = kc_snapshot_node(&s->snap, node);
        if (n && !terminal(pod)) {
            struct kc_spod *p = kc_spod_new(pod);
            if (p)
                kc_snode_add_pod(n, p);
        } else if (terminal(pod)) {
            flush_unschedulable(s);
        }
        pthread_mutex_unlock(&s->mu);
        return;
    }
    if (!ours(s, pod) || json_object_get(json_object_get(pod, "metadata"), "deletionTimestamp") || terminal(pod)) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    if (!e) {
        e = calloc(1, sizeof *e);
        e->key = strdup(key);
        e->pod = json_incref(pod);
        e->priority = (int32_t)json_integer_value(json_object_get(json_object_get(pod, "spec"), "priority"));
        e->added = now_s();
        kc_map_put(&s->q, key, e, NULL);
        set_state(s, e, Q_ACTIVE);
        pthread_cond_signal(&s->cond);
    } else {
        json_decref(e->pod);
        e->pod = json_incref(pod);
        if (pod_changed(old, pod)) {
            if (e->state == Q_INFLIGHT)
                e->dirty = true;
            else if (e->state == Q_UNSCHED)
                set_state(s, e, Q_ACTIVE); /* the pod changed: try again */
            pthread_cond_signal(&s->cond);
        }
    }
    pthread_mutex_unlock(&s->mu);
}

static void on_pod_add(void *ctx, json_t *obj) { pod_upsert(ctx, obj, NULL); }
static void on_pod_update(void *ctx, json_t *old, json_t *obj)
{
    pod_upsert(ctx, obj, old);
}

static void on_pod_delete(void *ctx, json_t *obj)
{
    struct kc_scheduler *s = ctx;
    char key[512];
    kc_object_key(obj, key, sizeof key);
    pthread_mutex_lock(&s->mu);
    struct qent *e = kc_map_get(&s->q, key);
    if (e && e->state != Q_INFLIGHT) {
        kc_map_del(&s->q, key);
        set_state(s, e, Q_UNSCHED);
        qent_free(s, e);
    }
    remove_from_snapshot(s, obj);
    flush_unschedulable(s);
    pthread_mutex_unlock(&s->mu);
}

static void on_node_add(void *ctx, json_t *obj)
{
    struct kc_scheduler *s = ctx;
    pthread_mutex_lock(&s->mu);
    kc_snapshot_set_node(&s->snap, obj);
    flush_unschedulable(s);
    pthread_mutex_unlock(&s->mu);
}

static void on_node_update(void *ctx, json_t *old, json_t *obj)
{
    struct kc_scheduler *s = ctx;
    pthread_mutex_lock(&s->mu);
    kc_snapshot_set_node(&s->snap, obj);
    /* status-only heartbeats do not help pending pods; spec/labels/allocatable changes might */
    if (!old || !json_equal(json_object_get(old, "spec"), json_object_get(obj, "spec")) ||
        !json_equal(json_object_get(json_object_get(old, "metadata"), "labels"),
                    json_object_get(json_object_get(obj, "metadata"), "labels")) ||
        !json_equal(json_object_get(json_object_get(old, "status"), "allocatable"),
                    json_object_get(json_object_get(obj, "status"), "allocatable")))
        flush_unschedulable(s);
    pthread_mutex_unlock(&s->mu);
}

static void on_node_delete(void *ctx, json_t *obj)
{
    struct kc_scheduler *s = ctx;
    pthread_mutex_lock(&s->mu);
    kc_snapshot_remove_node(&s->snap, jstr(obj, "metadata.name") ? jstr(obj, "metadata.name") : "");
    pthread_mutex_unlock(&s->mu);
}

/* ---------- binding ---------- */

static void requeue_failed(struct kc_scheduler *s, const char *key, bool unschedulable)
{
    struct qent *e = kc_map_get(&s->q, key);
    if (!e)
        return;
    e->attempts++;
    double b = BACKOFF_INITIAL_S;
    for (int i = 1; i < e->attempts && b < BACKOFF_MAX_S; i++)
        b *= 2;
    if (b > BACKOFF_MAX_S)
        b = BACKOFF_MAX_S;
    e->ready_at = now_s() + b;
    e->added = now_s();
    if (e->dirty) {
        e->dirty = false;
        set_state(s, e, Q_BACKOFF);
    } else {
        set_state(s, e, unschedulable ? Q_UNSCHED : Q_BACKOFF);
    }
    pthread_cond_signal(&s->cond);
}

/* A bound pod's nomination is over: upstream's API server clears status.nominatedNodeName with the binding
 * (ClearingNominatedNodeNameAfterBinding, on by default since 1.35), so `kubectl get pods -o wide` shows
 * NOMINATED NODE <none> for running pods. Ours is a second write right after the binding, sent only for the
 * pods that preempted (the common path makes no extra call). */
static void clear_nominated_node(struct kc_scheduler *s, const struct bind_job *j)
{
    char path[600];
    kc_path(path, sizeof path, "", "v1", "pods", j->ns, j->name, "status");
    json_t *patch = json_pack("{s:{s:n}}", "status", "nominatedNodeName");
    struct kc_err err = {0};
    int rc = kc_client_patch(s->c, path, "application/merge-patch+json", patch, NULL, &err);
    if (rc && rc != KC_ENOTFOUND)
        kc_warn("scheduler", "clearing nominatedNodeName of %s/%s failed: %s", j->ns, j->name, err.message);
    json_decref(patch);
}

static void *binder(void *arg)
{
    pthread_setname_np(pthread_self(), "kc-sched-bind");
    struct kc_scheduler *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->bmu);
        while (!s->bhead && !s->stop)
            pthread_cond_wait(&s->bcond, &s->bmu);
        struct bind_job *j = s->bhead;
        if (j) {
            s->bhead = j->next;
            if (!s->bhead)
                s->btail = NULL;
        }
        pthread_mutex_unlock(&s->bmu);
        if (!j)
            return NULL;
        char path[600];
        kc_path(path, sizeof path, "", "v1", "pods", j->ns, j->name, "binding");
        json_t *b = json_pack("{s:s,s:s,s:{s:s,s:s,s:s},s:{s:s,s:s,s:s}}", "apiVersion", "v1", "kind", "Binding",
                              "metadata", "name", j->name, "namespace", j->ns, "uid", j->uid, "target", "apiVersion",
                              "v1", "kind", "Node", "name", j->node);
        struct kc_err err = {0};
        int rc = kc_client_create(s->c, path, b, NULL, &err);
        json_decref(b);
        char key[512];
        snprintf(key, sizeof key, "%s/%s", j->ns, j->name);
        pthread_mutex_lock(&s->mu);
        struct qent *e = kc_map_get(&s->q, key);
        if (rc == 0) {
            s->st.scheduled++;
            if (e) {
                kc_map_del(&s->q, key);
                qent_free(s, e);
            }
            pthread_mutex_unlock(&s->mu);
            if (j->clear_nominated)
                clear_nominated_node(s, j);
            kc_recorder_event(s->rec, j->pod, "Normal", "Scheduled", "Successfully assigned %s/%s to %s", j->ns, j->name,
                              j->node);
        } else {
            s->st.errors++;
            /* forget the assumption */
            struct kc_snode *n = kc_snapshot_node(&s->snap, j->node);
            if (n)
                kc_snode_remove_pod(n, j->uid);
            if (rc == KC_ENOTFOUND || (rc == KC_ECONFLICT && strstr(err.message, "already assigned"))) {
                if (e) {
                    kc_map_del(&s->q, key);
                    qent_free(s, e);
                }
            } else {
                requeue_failed(s, key, false);
            }
            pthread_mutex_unlock(&s->mu);
            if (rc != KC_ENOTFOUND)
                kc_warn("scheduler", "binding %s to %s failed: %s", key, j->node, err.message);
        }
        json_decref(j->pod);
        free(j->ns);
        free(j->name);
        free(j->uid);
        free(j->node);
        free(j);
    }
}

static void enqueue_bind(struct kc_scheduler *s, json_t *pod, const char *node, bool clear_nominated)
{
    struct bind_job *j = calloc(1, sizeof *j);
    j->clear_nominated = clear_nominated;
    j->ns = strdup(jstr(pod, "metadata.namespace") ? jstr(pod, "metadata.namespace") : "");
    j->name = strdup(jstr(pod, "metadata.name") ? jstr(pod, "metadata.name") : "");
    j->uid = strdup(jstr(pod, "metadata.uid") ? jstr(pod, "metadata.uid") : "");
    j->node = strdup(node);
    j->pod = json_incref(pod);
    pthread_mutex_lock(&s->bmu);
    if (s->btail)
        s->btail->next = j;
    else
        s->bhead = j;
    s->btail = j;
    pthread_cond_signal(&s->bcond);
    pthread_mutex_unlock(&s->bmu);
}

/* ---------- the loop ---------- */

static void mark_unschedulable(struct kc_scheduler *s, json_t *pod, const char *msg)
{
    char path[600];
    kc_path(path, sizeof path, "", "v1", "pods", jstr(pod, "metadata.namespace"), jstr(pod, "metadata.name"), "status");
    char now[32];
    kc_time_rfc3339(time(NULL), now, sizeof now);
    json_t *patch = json_pack("{s:{s:[{s:s,s:s,s:s,s:s,s:n,s:s}]}}", "status", "conditions", "type", "PodScheduled",
                              "status", "False", "reason", "Unschedulable", "message", msg, "lastProbeTime",
                              "lastTransitionTime", now);
    struct kc_err err = {0};
    kc_client_patch(s->c, path, "application/strategic-merge-patch+json", patch, NULL, &err);
    json_decref(patch);
}

static void preempt(struct kc_scheduler *s, json_t *pod, const char *node, struct kc_spod **victims, int nv)
{
    char path[600];
    kc_path(path, sizeof path, "", "v1", "pods", jstr(pod, "metadata.namespace"), jstr(pod, "metadata.name"), "status");
    json_t *patch = json_pack("{s:{s:s}}", "status", "nominatedNodeName", node);
    struct kc_err err = {0};
    kc_client_patch(s->c, path, "application/merge-patch+json", patch, NULL, &err);
    json_decref(patch);
    for (int i = 0; i < nv; i++) {
        kc_recorder_event(s->rec, victims[i]->json, "Normal", "Preempted", "Preempted by pod %s on node %s",
                          jstr(pod, "metadata.uid") ?: "", node);
        kc_path(path, sizeof path, "", "v1", "pods", victims[i]->ns, victims[i]->name, NULL);
        kc_client_delete(s->c, path, NULL, NULL, &err);
    }
}

/* Places the nominated pods that outrank or equal p (other than p itself) on their nominated nodes for
 * one attempt, as upstream's filters do with nominated pods. Returns how many were added; their uids are
 * in s->nom_uids and their nodes in s->nom_nodes for nominated_remove. */
static size_t nominated_add(struct kc_scheduler *s, const struct qent *self, const struct kc_spod *p)
{
    size_t added = 0;
    if (s->capnomadd < s->nnoms) {
        s->capnomadd = s->nnoms;
        s->nom_nodes = realloc(s->nom_nodes, s->capnomadd * sizeof *s->nom_nodes);
        s->nom_uids = realloc(s->nom_uids, s->capnomadd * sizeof *s->nom_uids);
    }
    for (size_t i = 0; i < s->nnoms; i++) {
        struct qent *o = s->noms[i];
        if (o == self || o->priority < p->priority)
            continue;
        struct kc_snode *n = kc_snapshot_node(&s->snap, o->nominated);
        struct kc_spod *op = n ? kc_spod_new(o->pod) : NULL;
        if (!op)
            continue;
        kc_snode_add_pod(n, op);
        s->nom_nodes[added] = n;
        s->nom_uids[added] = op->uid;
        added++;
    }
    return added;
}

static void nominated_remove(struct kc_scheduler *s, size_t added)
{
    /* each uid points into the pod its removal frees */
    while (added--)
        kc_snode_remove_pod(s->nom_nodes[added], s->nom_uids[added]);
}

/* The victims count as terminating in the snapshot from the moment we decide to delete them, before the
 * informer shows their deletionTimestamp: a preemptor retried in between waits for them instead of
 * preempting again, and no second preemptor picks them again as if they would stay. They keep their
 * resources until they are gone, as upstream. */
static void mark_victims_terminating(struct kc_snode *n, struct kc_spod **victims, int nv)
{
    char now[32];
    kc_time_rfc3339(time(NULL), now, sizeof now);
    for (int i = 0; i < nv; i++) {
        if (json_object_get(json_object_get(victims[i]->json, "metadata"), "deletionTimestamp"))
            continue;
        json_t *copy = kc_json_copy(victims[i]->json);
        json_object_set_new(json_object_get(copy, "metadata"), "deletionTimestamp", json_string(now));
        struct kc_spod *t = kc_spod_new(copy);
        json_decref(copy);
        if (t && kc_snode_remove_pod(n, t->uid))
            kc_snode_add_pod(n, t);
        else
            kc_spod_free(t);
    }
}

/* Upstream's PodEligibleToPreemptOthers: a pod whose nominated node still has a terminating pod of lower
 * priority waits for it instead of preempting again. */
static bool waits_for_victims(struct kc_scheduler *s, const struct qent *e, const struct kc_spod *p)
{
    struct kc_snode *n = e->nominated ? kc_snapshot_node(&s->snap, e->nominated) : NULL;
    for (size_t i = 0; n && i < n->npods; i++)
        if (n->pods[i]->priority < p->priority &&
            json_object_get(json_object_get(n->pods[i]->json, "metadata"), "deletionTimestamp"))
            return true;
    return false;
}

static void *sched_loop(void *arg)
{
    pthread_setname_np(pthread_self(), "kc-scheduler");
    struct kc_scheduler *s = arg;
    double last_flush = now_s();
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        double t = now_s();
        /* due backoffs become active; old unschedulable pods are retried */
        void *v;
        double next_due = t + 1.0;
        bool flush = t - last_flush > UNSCHEDULABLE_FLUSH_S;
        for (long i = kc_map_next(&s->q, 0, NULL, &v); i >= 0; i = kc_map_next(&s->q, i + 1, NULL, &v)) {
            struct qent *e = v;
            if (e->state == Q_BACKOFF) {
                if (e->ready_at <= t)
                    set_state(s, e, Q_ACTIVE);
                else if (e->ready_at < next_due)
                    next_due = e->ready_at;
            } else if (flush && e->state == Q_UNSCHED) {
                set_state(s, e, Q_ACTIVE);
            }
        }
        if (flush)
            last_flush = t;
        if (!s->nheap) {
            double wait = next_due - t;
            struct timespec dl = kc_deadline(CLOCK_REALTIME, wait < 0.01 ? 0.01 : wait);
            pthread_cond_timedwait(&s->cond, &s->mu, &dl);
            continue;
        }
        struct qent *e = s->heap[0];
        set_state(s, e, Q_INFLIGHT);
        struct kc_spod *p = kc_spod_new(e->pod);
        if (!p) {
            kc_map_del(&s->q, e->key);
            qent_free(s, e);
            continue;
        }
        struct kc_sched_result r = {0};
        /* per-plugin timing on 10% of attempts, as upstream samples, and on every attempt of a pod that is
         * already slow (the profile names the plugin that dominated it) */
        r.time_plugins = (s->attempts++ % 10) == 0 || e->prof_s >= PROF_SLOW_S;
        double t_attempt = now_s();
        size_t nom_added = s->nnoms ? nominated_add(s, e, p) : 0;
        kc_schedule(&s->snap, p, &s->rr, &r);
        nominated_remove(s, nom_added);
        if (r.node < 0 && !p->preempt_never && waits_for_victims(s, e, p)) {
            r.nominated = -1; /* keeps its nomination */
            r.nvictims = 0;
            char *pre = strstr(r.message, " preemption: ");
            size_t len = pre ? (size_t)(pre - r.message) : strlen(r.message);
            snprintf(r.message + len, sizeof r.message - len,
                     " preemption: not eligible due to a terminating pod on the nominated node.");
        } else if (r.node < 0 && r.nominated < 0 && !p->preempt_never) {
            nominate(s, e, NULL); /* preemption found no candidate: the old nomination is void, as upstream */
        }
        double took = now_s() - t_attempt;
        sched_metrics_attempt(s, &r, took);
        prof_attempt(s, e, &r, took);
        if (r.node >= 0) {
            prof_finished(s, e);
            const char *had = jstr(e->pod, "status.nominatedNodeName");
            bool clear_nom = e->nominated || (had && *had);
            nominate(s, e, NULL); /* bound soon: its reservation is the assumed pod now */
            /* assume: the pod counts on the node from now on */
            struct kc_snode *n = &s->snap.nodes[r.node];
            char *node = strdup(n->name);
            json_t *assumed = kc_json_copy(e->pod);
            json_object_set_new(json_object_get(assumed, "spec"), "nodeName", json_string(node));
            struct kc_spod *ap = kc_spod_new(assumed);
            kc_snode_add_pod(n, ap);
            json_t *pod = json_incref(e->pod);
            pthread_mutex_unlock(&s->mu);
            enqueue_bind(s, pod, node, clear_nom);
            json_decref(pod);
            json_decref(assumed);
            free(node);
            kc_spod_free(p);
            pthread_mutex_lock(&s->mu);
            continue;
        }
        s->st.unschedulable_attempts++;
        json_t *pod = json_incref(e->pod);
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", r.message);
        char *nominated = NULL;
        struct kc_spod *victims[64];
        int nv = 0;
        if (r.nominated >= 0) {
            s->st.preemption_attempts++;
            nominated = strdup(s->snap.nodes[r.nominated].name);
            nominate(s, e, nominated);
            nv = r.nvictims;
            for (int i = 0; i < nv; i++) {
                victims[i] = kc_spod_new(r.victims[i]->json);
            }
            mark_victims_terminating(&s->snap.nodes[r.nominated], victims, nv);
        }
        requeue_failed(s, e->key, true);
        pthread_mutex_unlock(&s->mu);
        kc_recorder_event(s->rec, pod, "Warning", "FailedScheduling", "%s", msg);
        mark_unschedulable(s, pod, msg);
        if (nominated) {
            preempt(s, pod, nominated, victims, nv);
            for (int i = 0; i < nv; i++)
                kc_spod_free(victims[i]);
            free(nominated);
        }
        json_decref(pod);
        kc_spod_free(p);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    kc_schedule_thread_release();
    return NULL;
}

int kc_scheduler_start(struct kc_client *c, const struct kc_sched_opts *o, struct kc_scheduler **out,
                       struct kc_err *err)
{
    struct kc_scheduler *s = calloc(1, sizeof *s);
    s->c = c;
    snprintf(s->sched_name, sizeof s->sched_name, "%s", o && o->scheduler_name ? o->scheduler_name : "default-scheduler");
    s->nbinders = o && o->bind_workers > 0 ? o->bind_workers : 16;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cond, NULL);
    pthread_mutex_init(&s->bmu, NULL);
    pthread_cond_init(&s->bcond, NULL);
    kc_snapshot_init(&s->snap);
    kc_map_init(&s->q);
    s->rec = kc_recorder_new(c, s->sched_name, NULL);
    sched_metrics_init(s);
    kc_registry_on_collect(kc_registry_default(), sched_collect, s);
    struct kc_informer_opts no = {.group = "", .version = "v1", .plural = "nodes"};
    struct kc_informer_opts po = {.group = "", .version = "v1", .plural = "pods"};
    if (kc_informer_new(c, &no, &s->nodes, err) || kc_informer_new(c, &po, &s->pods, err)) {
        kc_scheduler_stop(s);
        return err ? KC_EIO : KC_EIO;
    }
    struct kc_informer_handlers nh = {s, on_node_add, on_node_update, on_node_delete};
    struct kc_informer_handlers ph = {s, on_pod_add, on_pod_update, on_pod_delete};
    kc_informer_add_handlers(s->nodes, &nh);
    kc_informer_add_handlers(s->pods, &ph);
    kc_informer_start(s->nodes);
    kc_informer_wait_synced(s->nodes, 10000);
    kc_informer_start(s->pods);
    kc_informer_wait_synced(s->pods, 10000);
    s->binders = calloc((size_t)s->nbinders, sizeof *s->binders);
    for (int i = 0; i < s->nbinders; i++)
        pthread_create(&s->binders[i], NULL, binder, s);
    pthread_create(&s->thread, NULL, sched_loop, s);
    pthread_cond_init(&s->pcond, NULL);
    pthread_create(&s->publisher, NULL, prof_publisher, s);
    *out = s;
    return 0;
}

void kc_scheduler_stop(struct kc_scheduler *s)
{
    if (!s)
        return;
    kc_registry_remove_collect(kc_registry_default(), sched_collect, s);
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->cond);
    if (s->publisher)
        pthread_cond_broadcast(&s->pcond);
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_lock(&s->bmu);
    pthread_cond_broadcast(&s->bcond);
    pthread_mutex_unlock(&s->bmu);
    if (s->thread)
        pthread_join(s->thread, NULL);
    if (s->publisher) {
        pthread_join(s->publisher, NULL);
        pthread_cond_destroy(&s->pcond);
    }
    for (int i = 0; s->binders && i < s->nbinders; i++)
        pthread_join(s->binders[i], NULL);
    free(s->binders);
    /* informers first: their handlers use the snapshot */
    kc_informer_free(s->pods);
    kc_informer_free(s->nodes);
    while (s->bhead) {
        struct bind_job *j = s->bhead;
        s->bhead = j->next;
        json_decref(j->pod);
        free(j->ns);
        free(j->name);
        free(j->uid);
        free(j->node);
        free(j);
    }
    void *v;
    for (long i = kc_map_next(&s->q, 0, NULL, &v); i >= 0; i = kc_map_next(&s->q, i + 1, NULL, &v))
        qent_free(s, v);
    kc_map_release(&s->q);
    free(s->heap);
    free(s->noms);
    free(s->nom_nodes);
    free(s->nom_uids);
    kc_snapshot_release(&s->snap);
    kc_recorder_free(s->rec);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cond);
    free(s);
}

void kc_scheduler_stats(struct kc_scheduler *s, struct kc_sched_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    out->active = out->backoff = out->unschedulable = 0;
    void *v;
    for (long i = kc_map_next(&s->q, 0, NULL, &v); i >= 0; i = kc_map_next(&s->q, i + 1, NULL, &v)) {
        struct qent *e = v;
        if (e->state == Q_ACTIVE || e->state == Q_INFLIGHT)
            out->active++;
        else if (e->state == Q_BACKOFF)
            out->backoff++;
        else if (e->state == Q_UNSCHED)
            out->unschedulable++;
    }
    pthread_mutex_unlock(&s->mu);
}
