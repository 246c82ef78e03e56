/* kmetrics.c — kubelet metrics and the timing runtime wrapper (see kmetrics.h).
 *
 * Data structures (struct rtm, the wrapper; all maps behind one mutex, never held across a call into
 * the inner runtime):
 *   pending   "<op>\x1f<identity>" → struct pend   start time of an asynchronous operation in progress
 *             (identity: pod uid for sandboxes, pod uid + container for pulls and creates, container id
 *             for starts and stops); bounded by MAX_PENDING, beyond which calls are timed one by one.
 *   ctrs      container id → struct ctr           last known state, for kubelet_running_containers
 *   pods      pod uid → (present)                 sandboxes, for kubelet_running_pods
 * Series pointers of the fixed label sets are looked up once (kc_kmetrics_init) so a timed call costs two
 * clock reads and a few relaxed atomic adds.
 * Threads: any pod worker may call; the runtime contract already serialises calls for one pod.
 */
#include "agent/kmetrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/map.h"
#include "util/metrics.h"
#include "util/timeutil.h"

#define MAX_PENDING 100000
#define KEY_MAX 512

enum op { OP_RUN_SANDBOX, OP_REMOVE_SANDBOX, OP_IMAGE_STATUS, OP_PULL_IMAGE, OP_CREATE, OP_START,
          OP_STATUS, OP_STOP, OP_REMOVE, OP_N };
/* CRI method names as upstream's instrumented runtime service labels them */
static const char *op_names[OP_N] = {"run_podsandbox", "remove_podsandbox", "image_status", "pull_image",
                                     "create_container", "start_container", "container_status",
                                     "stop_container", "remove_container"};

enum cst { CST_CREATED, CST_RUNNING, CST_EXITED, CST_UNKNOWN, CST_N };
static const char *cst_names[CST_N] = {"created", "running", "exited", "unknown"};

static struct {
    struct kc_family *ops, *errs, *dur, *pull, *sli, *pods, *ctrs;
    struct kc_series *s_ops[OP_N], *s_errs[OP_N], *s_dur[OP_N], *s_ctrs[CST_N], *s_pods, *s_sli[2];
} km;

static pthread_once_t km_once = PTHREAD_ONCE_INIT;

static void km_register(void)
{
    struct kc_registry *r = kc_registry_default();
    static const char *op_l[] = {"operation_type", NULL};
    double rt_b[14];
    kc_buckets_exp(0.005, 2.5, 14, rt_b);
    km.ops = kc_family_new(r, KC_COUNTER, "kubelet_runtime_operations_total",
                           "Cumulative number of runtime operations by operation type.", op_l, NULL, 0);
    km.errs = kc_family_new(r, KC_COUNTER, "kubelet_runtime_operations_errors_total",
                            "Cumulative number of runtime operation errors by operation type.", op_l, NULL, 0);
    km.dur = kc_family_new(r, KC_HISTOGRAM, "kubelet_runtime_operations_duration_seconds",
                           "Duration in seconds of runtime operations. Broken down by operation type.", op_l, rt_b,
                           14);
    static const double pull_b[] = {1, 5, 10, 20, 30, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800,
                                    2700, 3600};
    static const char *pull_l[] = {"image_size_in_bytes", NULL};
    km.pull = kc_family_new(r, KC_HISTOGRAM, "kubelet_image_pull_duration_seconds",
                            "Duration in seconds to pull an image.", pull_l, pull_b, sizeof pull_b / sizeof *pull_b);
    static const double start_b[] = {0.5, 1,   2,   3,   4,   5,   6,   8,   10,   20,   30,   45,  60,
                                     120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600};
    static const char *sli_l[] = {"first_with_network", NULL};
    km.sli = kc_family_new(r, KC_HISTOGRAM, "kubelet_pod_start_sli_duration_seconds",
                           "Duration in seconds to start a pod, excluding time to pull images and run init "
                           "containers, measured from pod creation timestamp to when all its containers are "
                           "reported as started and observed via watch",
                           sli_l, start_b, sizeof start_b / sizeof *start_b);
    km.pods = kc_family_new(r, KC_GAUGE, "kubelet_running_pods", "Number of pods that have a running pod sandbox",
                            NULL, NULL, 0);
    static const char *cst_l[] = {"container_state", NULL};
    km.ctrs = kc_family_new(r, KC_GAUGE, "kubelet_running_containers", "Number of containers currently running",
                            cst_l, NULL, 0);
    /* fixed label sets: create the series now (zeros are exposed, as dashboards expect) */
    for (int i = 0; i < OP_N; i++) {
        const char *v[] = {op_names[i]};
        km.s_ops[i] = kc_series_get(km.ops, v);
        km.s_errs[i] = kc_series_get(km.errs, v);
        km.s_dur[i] = kc_series_get(km.dur, v);
    }
    for (int i = 0; i < CST_N; i++) {
        const char *v[] = {cst_names[i]};
        km.s_ctrs[i] = kc_series_get(km.ctrs, v);
    }
    km.s_pods = kc_series_get(km.pods, NULL);
    const char *f[] = {"false"}, *t[] = {"true"};
    km.s_sli[0] = kc_series_get(km.sli, f);
    km.s_sli[1] = kc_series_get(km.sli, t);
}

void kc_kmetrics_init(void) { pthread_once(&km_once, km_register); }

const char *kc_image_size_bucket(int64_t bytes)
{
    static const struct {
        int64_t min;
        const char *name;
    } b[] = {{100LL << 30, "GT100GB"},   {60LL << 30, "60GB-100GB"}, {40LL << 30, "40GB-60GB"},
             {30LL << 30, "30GB-40GB"},  {20LL << 30, "20GB-30GB"},  {10LL << 30, "10GB-20GB"},
             {5LL << 30, "5GB-10GB"},    {1LL << 30, "1GB-5GB"},     {500LL << 20, "500MB-1GB"},
             {100LL << 20, "100MB-500MB"}, {10LL << 20, "10MB-100MB"}};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        if (bytes >= b[i].min)
            return b[i].name;
    return "0-10MB";
}

void kc_kmetrics_pod_start_sli(double seconds, bool first_with_network)
{
    kc_kmetrics_init();
    kc_histogram_observe(km.s_sli[first_with_network ? 1 : 0], seconds < 0 ? 0 : seconds);
}

/* ---------- the wrapper ---------- */

struct pend {
    double start;
};

struct ctr {
    enum cst st;
    char uid[64];
};

struct rtm {
    const struct kc_runtime_ops *in;
    void *impl;
    pthread_mutex_t mu;
    struct kc_map pending, ctrs, pods;
};

static void mkkey(char *key, const char *op, const char *a, const char *b)
{
    snprintf(key, KEY_MAX, "%s\x1f%s\x1f%s", op, a ? a : "", b ? b : "");
}

/* Start time of the operation under key: the first call's, or now. */
static double op_start(struct rtm *m, const char *key)
{
    double now = kc_mono_now();
    if (!key)
        return now;
    pthread_mutex_lock(&m->mu);
    struct pend *p = kc_map_get(&m->pending, key);
    double t = p ? p->start : now;
    pthread_mutex_unlock(&m->mu);
    return t;
}

/* Records a call's outcome: in progress (rc 0, wait > 0) keeps the start; done or failed observes it. */
static void op_end(struct rtm *m, enum op op, const char *key, double start, int rc, int wait)
{
    if (key && rc == 0 && wait > 0) {
        pthread_mutex_lock(&m->mu);
        if (!kc_map_get(&m->pending, key) && kc_map_len(&m->pending) < MAX_PENDING) {
            struct pend *p = malloc(sizeof *p);
            int err = 0;
            if (p) {
                p->start = start;
                kc_map_put(&m->pending, key, p, &err);
                if (err)
                    free(p);
            }
        }
        pthread_mutex_unlock(&m->mu);
        return;
    }
    if (key) {
        pthread_mutex_lock(&m->mu);
        free(kc_map_del(&m->pending, key));
        pthread_mutex_unlock(&m->mu);
    }
    kc_histogram_observe(km.s_dur[op], kc_mono_now() - start);
    kc_counter_add(km.s_ops[op], 1);
    if (rc < 0)
        kc_counter_add(km.s_errs[op], 1);
}

/* Moves a container to state st (creating the record when uid is given); caller holds mu. */
static void ctr_set(struct rtm *m, const char *id, enum cst st, const char *uid)
{
    struct ctr *c = kc_map_get(&m->ctrs, id);
    if (!c) {
        if (!uid)
            return;
        c = calloc(1, sizeof *c);
        int err = 0;
        if (!c)
            return;
        snprintf(c->uid, sizeof c->uid, "%s", uid);
        kc_map_put(&m->ctrs, id, c, &err);
        if (err) {
            free(c);
            return;
        }
        c->st = st;
        kc_gauge_add(km.s_ctrs[st], 1);
        return;
    }
    if (c->st != st) {
        kc_gauge_add(km.s_ctrs[c->st], -1);
        kc_gauge_add(km.s_ctrs[st], 1);
        c->st = st;
    }
}

static void ctr_forget(struct rtm *m, const char *id)
{
    struct ctr *c = kc_map_del(&m->ctrs, id);
    if (c) {
        kc_gauge_add(km.s_ctrs[c->st], -1);
        free(c);
    }
}

/* Drops pending operations whose key mentions s (a pod uid or container id being removed). */
static void pending_forget(struct rtm *m, const char *s)
{
    const char *k;
    void *v;
    for (long i = kc_map_next(&m->pending, 0, &k, &v); i >= 0; i = kc_map_next(&m->pending, i + 1, &k, &v))
        if (strstr(k, s))
            free(kc_map_del(&m->pending, k));
}

static const char *pod_uid(json_t *pod)
{
    return json_string_value(json_object_get(json_object_get(pod, "metadata"), "uid"));
}

static int w_run_sandbox(void *rt, json_t *pod, const char *node, char *ip, size_t ipn, int *wait_ms,
                         struct kc_err *err)
{
    struct rtm *m = rt;
    char key[KEY_MAX];
    const char *uid = pod_uid(pod);
    mkkey(key, "sandbox", uid, NULL);
    double t = op_start(m, key);
    int rc = m->in->run_sandbox(m->impl, pod, node, ip, ipn, wait_ms, err);
    op_end(m, OP_RUN_SANDBOX, key, t, rc, *wait_ms);
    if (rc == 0 && *wait_ms <= 0 && uid) {
        pthread_mutex_lock(&m->mu);
        if (!kc_map_get(&m->pods, uid)) {
            int perr = 0;
            kc_map_put(&m->pods, uid, (void *)1, &perr);
            if (!perr)
                kc_gauge_add(km.s_pods, 1);
        }
        pthread_mutex_unlock(&m->mu);
    }
    return rc;
}

static int w_remove_sandbox(void *rt, const char *uid, struct kc_err *err)
{
    struct rtm *m = rt;
    double t = op_start(m, NULL);
    int rc = m->in->remove_sandbox(m->impl, uid, err);
    op_end(m, OP_REMOVE_SANDBOX, NULL, t, rc, 0);
    pthread_mutex_lock(&m->mu);
    if (kc_map_del(&m->pods, uid))
        kc_gauge_add(km.s_pods, -1);
    /* the sandbox takes its containers with it */
    const char *k;
    void *v;
    for (long i = kc_map_next(&m->ctrs, 0, &k, &v); i >= 0; i = kc_map_next(&m->ctrs, i + 1, &k, &v))
        if (!strcmp(((struct ctr *)v)->uid, uid))
            ctr_forget(m, k);
    pending_forget(m, uid);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static bool w_image_present(void *rt, const struct kc_rt_container *c, struct kc_rt_image *out)
{
    struct rtm *m = rt;
    double t = op_start(m, NULL);
    bool r = m->in->image_present(m->impl, c, out);
    op_end(m, OP_IMAGE_STATUS, NULL, t, 0, 0);
    return r;
}

static int w_pull_image(void *rt, const struct kc_rt_container *c, struct kc_rt_image *out, int *wait_ms,
                        struct kc_err *err)
{
    struct rtm *m = rt;
    char key[KEY_MAX], who[400];
    snprintf(who, sizeof who, "%s\x1f%s", c->name, c->image);
    mkkey(key, "pull", c->pod_uid, who);
    double t = op_start(m, key);
    int rc = m->in->pull_image(m->impl, c, out, wait_ms, err);
    op_end(m, OP_PULL_IMAGE, key, t, rc, *wait_ms);
    if (rc == 0 && *wait_ms <= 0) {
        const char *v[] = {kc_image_size_bucket(out->size_bytes)};
        kc_histogram_observe(kc_series_get(km.pull, v), kc_mono_now() - t);
    }
    return rc;
}

static int w_create_container(void *rt, const struct kc_rt_container *c, char *id, size_t idn, int *wait_ms,
                              struct kc_err *err)
{
    struct rtm *m = rt;
    char key[KEY_MAX];
    mkkey(key, "create", c->pod_uid, c->name);
    double t = op_start(m, key);
    int rc = m->in->create_container(m->impl, c, id, idn, wait_ms, err);
    op_end(m, OP_CREATE, key, t, rc, *wait_ms);
    if (rc == 0 && id[0] && c->pod_uid) {
        pthread_mutex_lock(&m->mu);
        ctr_set(m, id, CST_CREATED, c->pod_uid);
        pthread_mutex_unlock(&m->mu);
    }
    return rc;
}

static int w_start_container(void *rt, const char *id, int *wait_ms, struct kc_err *err)
{
    struct rtm *m = rt;
    char key[KEY_MAX];
    mkkey(key, "start", id, NULL);
    double t = op_start(m, key);
    int rc = m->in->start_container(m->impl, id, wait_ms, err);
    op_end(m, OP_START, key, t, rc, *wait_ms);
    if (rc == 0 && *wait_ms <= 0) {
        pthread_mutex_lock(&m->mu);
        ctr_set(m, id, CST_RUNNING, NULL);
        pthread_mutex_unlock(&m->mu);
    }
    return rc;
}

static int w_container_status(void *rt, const char *id, struct kc_rt_status *out, int *next_ms, struct kc_err *err)
{
    struct rtm *m = rt;
    double t = op_start(m, NULL);
    int rc = m->in->container_status(m->impl, id, out, next_ms, err);
    op_end(m, OP_STATUS, NULL, t, rc, 0);
    if (rc == 0) {
        static const enum cst map[] = {[KC_RT_CREATED] = CST_CREATED, [KC_RT_RUNNING] = CST_RUNNING,
                                       [KC_RT_EXITED] = CST_EXITED, [KC_RT_UNKNOWN] = CST_UNKNOWN};
        enum cst st = (unsigned)out->state <= KC_RT_UNKNOWN ? map[out->state] : CST_UNKNOWN;
        pthread_mutex_lock(&m->mu);
        ctr_set(m, id, st, NULL);
        pthread_mutex_unlock(&m->mu);
    }
    return rc;
}

static int w_stop_container(void *rt, const char *id, int grace_s, int *wait_ms, struct kc_err *err)
{
    struct rtm *m = rt;
    char key[KEY_MAX];
    mkkey(key, "stop", id, NULL);
    double t = op_start(m, key);
    int rc = m->in->stop_container(m->impl, id, grace_s, wait_ms, err);
    op_end(m, OP_STOP, key, t, rc, *wait_ms);
    if (rc == 0 && *wait_ms <= 0) {
        pthread_mutex_lock(&m->mu);
        ctr_set(m, id, CST_EXITED, NULL);
        pthread_mutex_unlock(&m->mu);
    }
    return rc;
}

static int w_remove_container(void *rt, const char *id, struct kc_err *err)
{
    struct rtm *m = rt;
    double t = op_start(m, NULL);
    int rc = m->in->remove_container(m->impl, id, err);
    op_end(m, OP_REMOVE, NULL, t, rc, 0);
    pthread_mutex_lock(&m->mu);
    ctr_forget(m, id);
    pending_forget(m, id);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static void w_free(void *rt)
{
    struct rtm *m = rt;
    const char *k;
    void *v;
    for (long i = kc_map_next(&m->pending, 0, &k, &v); i >= 0; i = kc_map_next(&m->pending, i + 1, &k, &v))
        free(v);
    for (long i = kc_map_next(&m->ctrs, 0, &k, &v); i >= 0; i = kc_map_next(&m->ctrs, i + 1, &k, &v)) {
        kc_gauge_add(km.s_ctrs[((struct ctr *)v)->st], -1); /* the gauges count live runtimes only */
        free(v);
    }
    kc_gauge_add(km.s_pods, -(double)kc_map_len(&m->pods));
    kc_map_release(&m->pending);
    kc_map_release(&m->ctrs);
    kc_map_release(&m->pods);
    pthread_mutex_destroy(&m->mu);
    m->in->free(m->impl);
    free(m);
}

static const struct kc_runtime_ops wrap_ops = {
    .name = "metrics",
    .run_sandbox = w_run_sandbox,
    .remove_sandbox = w_remove_sandbox,
    .image_present = w_image_present,
    .pull_image = w_pull_image,
    .create_container = w_create_container,
    .start_container = w_start_container,
    .container_status = w_container_status,
    .stop_container = w_stop_container,
    .remove_container = w_remove_container,
    .free = w_free,
};

int kc_rt_metrics_wrap(const struct kc_runtime_ops *inner, void *inner_impl, const struct kc_runtime_ops **ops,
                       void **impl, struct kc_err *err)
{
    kc_kmetrics_init();
    struct rtm *m = calloc(1, sizeof *m);
    if (!m)
        return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
    m->in = inner;
    m->impl = inner_impl;
    pthread_mutex_init(&m->mu, NULL);
    kc_map_init(&m->pending);
    kc_map_init(&m->ctrs);
    kc_map_init(&m->pods);
    *ops = &wrap_ops;
    *impl = m;
    return 0;
}
