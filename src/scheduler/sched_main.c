/* sched_main.c — `kubec scheduler --kubeconfig FILE`: the scheduler as its own process (HTTP client). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
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
               "  --kube-api-burst N       client-side burst (default 100)\n");
    return f == stdout ? 0 : 2;
}

int kc_scheduler_main(int argc, char **argv)
{
    const char *kubeconfig = NULL;
    struct kc_sched_opts o = {.scheduler_name = "default-scheduler", .bind_workers = 16};
    double qps = 0;
    int burst = 100;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return usage(stdout);
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
    struct kc_scheduler *s = NULL;
    if (kc_scheduler_start(c, &o, &s, &err)) {
        kc_error("scheduler", "%s", err.message);
        kc_client_free(c);
        return 1;
    }
    kc_info("scheduler", "scheduling pods with schedulerName %s", o.scheduler_name);
    int sig;
    sigwait(&set, &sig);
    kc_info("scheduler", "signal %d: stopping", sig);
    kc_scheduler_stop(s);
    kc_client_free(c);
    return 0;
}
