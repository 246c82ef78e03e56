/* sched_main.c — `kubec scheduler --kubeconfig FILE`: the scheduler as its own process (HTTP client). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "client/leaderelect.h"
#include "scheduler/scheduler.h"
#include "util/log.h"

static int usage(FILE *f)
{
    fprintf(f, "Usage: kubec scheduler --kubeconfig FILE [flags]\n\n"
               "Binds pending pods to nodes: priorities and preemption, resources, node affinity, taints,\n"
               "topology spread, inter-pod affinity, image locality.\n\n"
               "Flags:\n"
               "  --kubeconfig FILE        kubeconfig of the API server (required)\n"
               "  --scheduler-name NAME    handle pods with this spec.schedulerName (default default-scheduler)\n"
               "  --bind-workers N         concurrent binding requests (default 16)\n"
               "  --kube-api-qps Q         client-side request rate (default 0 = unlimited; upstream 50)\n"
               "  --kube-api-burst N       client-side burst (default 100)\n" KC_LE_FLAGS_HELP
               "                                  (--leader-elect defaults to true, as upstream)\n");
    return f == stdout ? 0 : 2;
}

/* Leader election (docs/ha.md): the scheduler runs only while this process holds the Lease
 * kube-system/kube-scheduler; on loss it is stopped and the process is a candidate again. */
struct sched_gate {
    struct kc_client *c;
    const struct kc_sched_opts *o;
    struct kc_scheduler *s;
};

static int sched_gate_start(void *p)
{
    struct sched_gate *g = p;
    struct kc_err err = {0};
    if (kc_scheduler_start(g->c, g->o, &g->s, &err)) {
        kc_error("scheduler", "%s", err.message);
        return -1;
    }
    kc_info("scheduler", "scheduling pods with schedulerName %s", g->o->scheduler_name);
    return 0;
}

static void sched_gate_stop(void *p)
{
    struct sched_gate *g = p;
    kc_info("scheduler", "stopping");
    kc_scheduler_stop(g->s);
    g->s = NULL;
}

int kc_scheduler_main(int argc, char **argv)
{
    struct kc_le_flags lef = KC_LE_FLAGS_INIT;
    const char *kubeconfig = NULL;
    struct kc_sched_opts o = {.scheduler_name = "default-scheduler", .bind_workers = 16};
    double qps = 0;
    int burst = 100;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return usage(stdout);
        struct kc_err lerr = {0};
        int lr = kc_le_parse_flag(argc, argv, &i, &lef, &lerr);
        if (lr < 0) {
            fprintf(stderr, "kubec scheduler: %s\n", lerr.message);
            return 2;
        }
        if (lr)
            continue;
        if (!v) {
            fprintf(stderr, "kubec scheduler: flag needs an argument: %s\n", a);
            return usage(stderr);
        }
        if (!strcmp(a, "--kubeconfig"))
            kubeconfig = v;
        else if (!strcmp(a, "--scheduler-name"))
            o.scheduler_name = v;
        else if (!strcmp(a, "--bind-workers"))
            o.bind_workers = atoi(v);
        else if (!strcmp(a, "--kube-api-qps"))
            qps = atof(v);
        else if (!strcmp(a, "--kube-api-burst"))
            burst = atoi(v);
        else {
            fprintf(stderr, "kubec scheduler: unknown flag %s\n", a);
            return usage(stderr);
        }
        i++;
    }
    if (!kubeconfig) {
        fprintf(stderr, "kubec scheduler: --kubeconfig is required\n");
        return usage(stderr);
    }
    struct kc_err lerr = {0};
    if (kc_le_flags_check(&lef, &lerr)) {
        fprintf(stderr, "kubec scheduler: %s\n", lerr.message);
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct kc_client *c = NULL;
    struct kc_err err = {0};
    if (kc_client_http_from_kubeconfig(kubeconfig, qps, burst, "kube-scheduler/kubec", &c, &err)) {
        kc_error("scheduler", "%s", err.message);
        return 1;
    }
    struct sched_gate gate = {.c = c, .o = &o};
    struct kc_le *le = NULL;
    struct kc_le_config lc = {.lease_namespace = "kube-system", .lease_name = "kube-scheduler",
                              .component = "default-scheduler", .lease_duration_s = lef.lease_duration_s,
                              .renew_deadline_s = lef.renew_deadline_s, .retry_period_s = lef.retry_period_s,
                              .on_started_leading = sched_gate_start, .on_stopped_leading = sched_gate_stop,
                              .ctx = &gate};
    if (lef.enabled != 0 ? kc_le_new(c, &lc, &le, &err) || kc_le_start(le, &err) : sched_gate_start(&gate)) {
        kc_error("scheduler", "%s", err.message[0] ? err.message : "cannot start");
        kc_le_free(le);
        kc_client_free(c);
        return 1;
    }
    if (le)
        kc_info("scheduler", "leader election: candidate %s for the lease kube-system/kube-scheduler",
                kc_le_identity(le));
    int sig;
    sigwait(&set, &sig);
    kc_info("scheduler", "signal %d: stopping", sig);
    if (le)
        kc_le_free(le); /* stops the scheduler if leading, then releases the Lease */
    else
        sched_gate_stop(&gate);
    kc_client_free(c);
    return 0;
}
