/* manager.c — the controller manager (controller.h): shared informers, a table of controllers,
 * `kubec controller-manager`, and kc_event_emit.
 *
 * Data structures: struct kc_cm holds the three shared informers (deployments, replicasets, pods;
 * all namespaces) with the indexes of controllers_int.h, and one handle per started controller
 * (same order as the table), and the event recorder kc_event_emit uses for its client.
 *
 * Threads: kc_cm_start runs on the caller's thread; each informer has its own list+watch thread and
 * each controller its own workers. Start order: informers created → controllers add handlers and
 * start workers (they wait for the caches) → informers started. Stop: informer threads joined
 * (no handler runs after that) → controllers (queues shut down, workers joined, freed) → informer
 * caches freed.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/events.h"
#include "client/leaderelect.h"
#include "controller/controllers_int.h"
#include "util/log.h"
#include "util/timeutil.h"

#define COMPONENT "controller-manager"
#define SYNC_TIMEOUT_MS 60000

struct cm_row {
    const char *name;
    int (*start)(struct kc_client *c, struct kc_cm_informers *inf, int workers, void **out);
    void (*stop)(void *ctl);
    size_t workers_off; /* offsetof the worker count in struct kc_cm_opts */
};

static const struct cm_row cm_table[] = {
    {"deployment", kc_deployment_controller_start, kc_deployment_controller_stop,
     offsetof(struct kc_cm_opts, concurrent_deployment_syncs)},
    {"replicaset", kc_rs_controller_start, kc_rs_controller_stop,
     offsetof(struct kc_cm_opts, concurrent_replicaset_syncs)},
    {"garbage-collector", kc_gc_controller_start, kc_gc_controller_stop,
     offsetof(struct kc_cm_opts, concurrent_gc_syncs)},
};
#define CM_N (sizeof cm_table / sizeof cm_table[0])

struct kc_cm {
    struct kc_client *c;
    struct kc_recorder *rec; /* events of all controllers on c (async, aggregated) */
    struct kc_cm_opts opts;
    struct kc_cm_informers inf;
    void *ctl[CM_N];
};

/* kc_event_emit finds the recorder of its client here (a few managers at most per process). */
#define MAX_RECORDERS 8
static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    struct kc_client *c;
    struct kc_recorder *r;
} recorders[MAX_RECORDERS];

/* r == NULL removes c's entry; otherwise takes a free slot (none free: events are written directly). */
static void rec_register(struct kc_client *c, struct kc_recorder *r)
{
    pthread_mutex_lock(&rec_mu);
    for (size_t i = 0; i < MAX_RECORDERS; i++) {
        if (r ? recorders[i].c != NULL : recorders[i].c != c)
            continue;
        recorders[i].c = r ? c : NULL;
        recorders[i].r = r;
        break;
    }
    pthread_mutex_unlock(&rec_mu);
}

void kc_cm_opts_default(struct kc_cm_opts *o)
{
    o->concurrent_deployment_syncs = 5;
    o->concurrent_replicaset_syncs = 5;
    o->concurrent_gc_syncs = 20;
    o->deployment_sync_period_s = 30;
    o->kube_api_qps = 20;
    o->kube_api_burst = 30;
}

/* ---------- indexes ---------- */

static int idx_namespace(json_t *obj, const char **vals, int max)
{
    const char *ns = json_string_value(json_object_get(json_object_get(obj, "metadata"), "namespace"));
    if (!ns || max < 1)
        return 0;
    vals[0] = ns;
    return 1;
}

static int idx_controller(json_t *obj, const char **vals, int max)
{
    size_t i;
    json_t *ref;
    json_array_foreach(json_object_get(json_object_get(obj, "metadata"), "ownerReferences"), i, ref) {
        if (!json_is_true(json_object_get(ref, "controller")))
            continue;
        const char *uid = json_string_value(json_object_get(ref, "uid"));
        if (!uid || max < 1)
            return 0;
        vals[0] = uid;
        return 1;
    }
    return 0;
}

static int idx_orphan(json_t *obj, const char **vals, int max)
{
    json_t *ref;
    size_t i;
    json_array_foreach(json_object_get(json_object_get(obj, "metadata"), "ownerReferences"), i, ref)
        if (json_is_true(json_object_get(ref, "controller")))
            return 0;
    return idx_namespace(obj, vals, max);
}

static int new_informer(struct kc_client *c, const char *group, const char *plural, int resync,
                        struct kc_informer **out, struct kc_err *err)
{
    struct kc_informer_opts o = {.group = group, .version = "v1", .plural = plural, .resync_s = resync};
    int rc = kc_informer_new(c, &o, out, err);
    if (rc)
        return rc;
    kc_informer_add_index(*out, KC_IDX_NAMESPACE, idx_namespace);
    kc_informer_add_index(*out, KC_IDX_CONTROLLER, idx_controller);
    kc_informer_add_index(*out, KC_IDX_ORPHAN, idx_orphan);
    return 0;
}

static void free_informers(struct kc_cm *cm)
{
    struct kc_informer **all[] = {&cm->inf.deployments, &cm->inf.replicasets, &cm->inf.pods};
    for (size_t i = 0; i < 3; i++) {
        if (*all[i])
            kc_informer_free(*all[i]);
        *all[i] = NULL;
    }
}

void kc_cm_stop(struct kc_cm *cm)
{
    if (!cm)
        return;
    /* Informer threads first: after this no handler runs, so controllers may free what their
     * handlers use; the caches stay readable for workers finishing their current item. */
    kc_informer_stop(cm->inf.deployments);
    kc_informer_stop(cm->inf.replicasets);
    kc_informer_stop(cm->inf.pods);
    for (size_t i = CM_N; i-- > 0;)
        if (cm->ctl[i])
            cm_table[i].stop(cm->ctl[i]);
    free_informers(cm);
    if (cm->rec) {
        rec_register(cm->c, NULL);
        kc_recorder_free(cm->rec);
    }
    free(cm);
}

int kc_cm_start(struct kc_client *c, const struct kc_cm_opts *o, struct kc_cm **out, struct kc_err *err)
{
    struct kc_cm *cm = calloc(1, sizeof *cm);
    if (!cm)
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    cm->c = c;
    if (o)
        cm->opts = *o;
    else
        kc_cm_opts_default(&cm->opts);
    cm->rec = kc_recorder_new(c, COMPONENT, NULL);
    if (cm->rec)
        rec_register(c, cm->rec);
    int rc = new_informer(c, "apps", "deployments", cm->opts.deployment_sync_period_s, &cm->inf.deployments, err);
    if (!rc)
        rc = new_informer(c, "apps", "replicasets", 0, &cm->inf.replicasets, err);
    if (!rc)
        rc = new_informer(c, "", "pods", 0, &cm->inf.pods, err);
    for (size_t i = 0; i < CM_N && !rc; i++) {
        int workers = *(const int *)((const char *)&cm->opts + cm_table[i].workers_off);
        rc = cm_table[i].start(c, &cm->inf, workers, &cm->ctl[i]);
        if (rc)
            kc_err_set(err, rc, 500, "InternalError", "starting the %s controller failed", cm_table[i].name);
    }
    if (!rc)
        rc = kc_informer_start(cm->inf.deployments);
    if (!rc)
        rc = kc_informer_start(cm->inf.replicasets);
    if (!rc)
        rc = kc_informer_start(cm->inf.pods);
    if (rc) {
        if (!err || !err->message[0])
            kc_err_set(err, rc, 500, "InternalError", "starting the shared informers failed");
        kc_cm_stop(cm);
        return rc;
    }
    *out = cm;
    return 0;
}

/* ---------- events ---------- */

void kc_event_emit(struct kc_client *c, json_t *obj, const char *type, const char *reason, const char *component,
                   const char *fmt, ...)
{
    static atomic_uint seq;
    char msg[1024], name[400], now[32], path[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct kc_recorder *rec = NULL;
    pthread_mutex_lock(&rec_mu);
    for (size_t i = 0; i < MAX_RECORDERS && !rec; i++)
        if (recorders[i].c == c)
            rec = recorders[i].r;
    if (rec) /* queued under the lock so kc_cm_stop cannot free it meanwhile */
        kc_recorder_eventc(rec, component, obj, type, reason, "%s", msg);
    pthread_mutex_unlock(&rec_mu);
    if (rec)
        return;
    /* No manager on this client: write it now. */
    json_t *meta = json_object_get(obj, "metadata");
    const char *oname = json_string_value(json_object_get(meta, "name")) ?: "";
    const char *ns = json_string_value(json_object_get(meta, "namespace")) ?: "default";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* upstream names events <object>.<unix nanoseconds in hex>; the counter keeps same-ns names apart */
    snprintf(name, sizeof name, "%.250s.%" PRIx64, oname,
             (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + (atomic_fetch_add(&seq, 1) % 1000));
    kc_time_rfc3339(ts.tv_sec, now, sizeof now);
    json_t *ev = json_pack(
        "{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s, s:s, s:s}, s:s, s:s, s:{s:s}, s:s, s:s, s:i, s:s, s:s, s:s}",
        "apiVersion", "v1", "kind", "Event", "metadata", "name", name, "namespace", ns, "involvedObject", "apiVersion",
        json_string_value(json_object_get(obj, "apiVersion")) ?: "", "kind",
        json_string_value(json_object_get(obj, "kind")) ?: "", "namespace", ns, "name", oname, "uid",
        json_string_value(json_object_get(meta, "uid")) ?: "", "resourceVersion",
        json_string_value(json_object_get(meta, "resourceVersion")) ?: "", "reason", reason, "message", msg, "source",
        "component", component, "firstTimestamp", now, "lastTimestamp", now, "count", 1, "type", type,
        "reportingComponent", component, "reportingInstance", "");
    if (!ev)
        return;
    struct kc_err err = {0};
    kc_client_create(c, kc_path(path, sizeof path, "", "v1", "events", ns, NULL, NULL), ev, NULL, &err);
    json_decref(ev);
}

/* ---------- kubec controller-manager ---------- */

static int usage(FILE *f)
{
    fprintf(f, "Usage: kubec controller-manager --kubeconfig FILE [flags]\n\n"
               "Runs the deployment, replicaset and garbage-collector controllers against an API server.\n\n"
               "Flags:\n"
               "  --kubeconfig FILE                       kubeconfig of the API server (required)\n"
               "  --concurrent-deployment-syncs N         deployment workers (default 5)\n"
               "  --concurrent-replicaset-syncs N         replicaset workers (default 5)\n"
               "  --concurrent-gc-syncs N                 garbage collector workers (default 20)\n"
               "  --deployment-controller-sync-period D   deployment resync period, e.g. 30s, 1m (default 30s)\n"
               "  --kube-api-qps Q                        client-side request rate (default 20)\n"
               "  --kube-api-burst N                      client-side burst (default 30)\n" KC_LE_FLAGS_HELP
               "                                          (--leader-elect defaults to true, as upstream)\n");
    return f == stdout ? 0 : 2;
}

/* Whole seconds of a duration flag (30s, 1m, 1m30s; util/timeutil.h). */
static int parse_duration_s(const char *s, int *out)
{
    double d;
    if (kc_parse_duration(s, &d))
        return -1;
    *out = (int)d;
    return 0;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* Leader election (docs/ha.md): the controllers run only while this process holds the Lease
 * kube-system/kube-controller-manager; on loss they are stopped and the process is a candidate again. */
struct cm_gate {
    struct kc_client *c;
    const struct kc_cm_opts *o;
    struct kc_cm *cm;
};

static int cm_gate_start(void *p)
{
    struct cm_gate *g = p;
    struct kc_err err = {0};
    if (kc_cm_start(g->c, g->o, &g->cm, &err)) {
        kc_error(COMPONENT, "%s", err.message);
        return -1;
    }
    kc_info(COMPONENT, "started controllers (deployment, replicaset, garbage-collector)");
    return 0;
}

static void cm_gate_stop(void *p)
{
    struct cm_gate *g = p;
    kc_info(COMPONENT, "stopping controllers");
    kc_cm_stop(g->cm);
    g->cm = NULL;
}

int kc_controller_manager_main(int argc, char **argv)
{
    struct kc_le_flags lef = KC_LE_FLAGS_INIT;
    struct kc_cm_opts o;
    kc_cm_opts_default(&o);
    const char *kubeconfig = NULL;
    for (int i = 1; i < argc; i++) {
        char flag[64];
        const char *a = argv[i], *val = NULL, *eq = strchr(a, '=');
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return usage(stdout);
        struct kc_err lerr = {0};
        int lr = kc_le_parse_flag(argc, argv, &i, &lef, &lerr);
        if (lr < 0) {
            fprintf(stderr, "kubec controller-manager: %s\n", lerr.message);
            return 2;
        }
        if (lr)
            continue;
        if (strncmp(a, "--", 2)) {
            fprintf(stderr, "kubec controller-manager: unexpected argument %s\n", a);
            return usage(stderr);
        }
        size_t fl = eq ? (size_t)(eq - a) : strlen(a);
        if (fl >= sizeof flag) {
            fprintf(stderr, "kubec controller-manager: unknown flag %s\n", a);
            return 2;
        }
        memcpy(flag, a, fl);
        flag[fl] = '\0';
        if (eq)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[++i];
        if (!val) {
            fprintf(stderr, "kubec controller-manager: flag needs an argument: %s\n", flag);
            return 2;
        }
        int bad = 0;
        if (!strcmp(flag, "--kubeconfig"))
            kubeconfig = val;
        else if (!strcmp(flag, "--concurrent-deployment-syncs"))
            bad = parse_int(val, 1, 1000, &o.concurrent_deployment_syncs);
        else if (!strcmp(flag, "--concurrent-replicaset-syncs"))
            bad = parse_int(val, 1, 1000, &o.concurrent_replicaset_syncs);
        else if (!strcmp(flag, "--concurrent-gc-syncs"))
            bad = parse_int(val, 1, 1000, &o.concurrent_gc_syncs);
        else if (!strcmp(flag, "--deployment-controller-sync-period"))
            bad = parse_duration_s(val, &o.deployment_sync_period_s);
        else if (!strcmp(flag, "--kube-api-burst"))
            bad = parse_int(val, 1, 100000, &o.kube_api_burst);
        else if (!strcmp(flag, "--kube-api-qps")) {
            char *end;
            o.kube_api_qps = strtod(val, &end);
            bad = *end || end == val || o.kube_api_qps < 0;
        } else {
            fprintf(stderr, "kubec controller-manager: unknown flag %s\n", flag);
            return usage(stderr);
        }
        if (bad) {
            fprintf(stderr, "kubec controller-manager: invalid value \"%s\" for flag %s\n", val, flag);
            return 2;
        }
    }
    if (!kubeconfig) {
        fprintf(stderr, "kubec controller-manager: --kubeconfig is required\n");
        return usage(stderr);
    }
    struct kc_err lerr = {0};
    if (kc_le_flags_check(&lef, &lerr)) {
        fprintf(stderr, "kubec controller-manager: %s\n", lerr.message);
        return 2;
    }
    /* Signals are taken with sigwait on this thread; block them before any thread starts. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    struct kc_client *c = NULL;
    struct kc_err err = {0};
    if (kc_client_http_from_kubeconfig(kubeconfig, o.kube_api_qps, o.kube_api_burst, "kube-controller-manager/kubec",
                                       &c, &err)) {
        fprintf(stderr, "kubec controller-manager: %s\n", err.message);
        return 1;
    }
    struct cm_gate gate = {.c = c, .o = &o};
    struct kc_le *le = NULL;
    struct kc_le_config lc = {.lease_namespace = "kube-system", .lease_name = "kube-controller-manager",
                              .component = "kube-controller-manager", .lease_duration_s = lef.lease_duration_s,
                              .renew_deadline_s = lef.renew_deadline_s, .retry_period_s = lef.retry_period_s,
                              .on_started_leading = cm_gate_start, .on_stopped_leading = cm_gate_stop, .ctx = &gate};
    if (lef.enabled != 0 ? kc_le_new(c, &lc, &le, &err) || kc_le_start(le, &err) : cm_gate_start(&gate)) {
        fprintf(stderr, "kubec controller-manager: %s\n", err.message[0] ? err.message : "cannot start");
        kc_le_free(le);
        kc_client_free(c);
        return 1;
    }
    if (le)
        kc_info(COMPONENT, "leader election: candidate %s for the lease kube-system/kube-controller-manager",
                kc_le_identity(le));
    int sig = 0;
    sigwait(&set, &sig);
    kc_info(COMPONENT, "signal %d: stopping", sig);
    if (le)
        kc_le_free(le); /* stops the controllers if leading, then releases the Lease */
    else
        cm_gate_stop(&gate);
    kc_client_free(c);
    return 0;
}
