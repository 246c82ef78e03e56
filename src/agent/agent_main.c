/* agent_main.c — `kubec agent`: the node agent as its own process, talking HTTP to a kubec (or any
 * Kubernetes) API server through a kubeconfig. Runs until SIGTERM/SIGINT, then stops cleanly (exit 0).
 * With --metrics-listen it serves /metrics and /healthz over plain HTTP (metricsrv.c).
 * Threads: this one waits for signals (sigwait); everything else belongs to kc_agent_start and the
 * metrics server. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/metricsrv.h"
#include "util/log.h"

#define COMPONENT "kubelet"

/* `kubec images` without --local (image_cli_cluster.c) is reached from image_cli.c through a weak symbol;
 * this reference is what links it into the kubec binary from the agent library. */
int kc_image_cli_cluster(int argc, char **argv);
int (*const kc_image_cli_cluster_link)(int, char **) = kc_image_cli_cluster;

static int usage(FILE *f)
{
    fprintf(f, "Usage: kubec agent --kubeconfig FILE --sim-nodes N [flags]\n"
               "       kubec agent --kubeconfig FILE --runtime runc [--data-dir DIR] [flags]\n\n"
               "Runs the node agent (kubelet) for N simulated nodes, or for this machine with real containers\n"
               "(runc; needs root, the runc and containernetworking-plugins packages), against an API server.\n\n"
               "Flags:\n"
               "  --kubeconfig FILE          kubeconfig of the API server (required)\n"
               "  --runtime sim|runc         sim (default): virtual nodes; runc: this machine, real containers\n"
               "  --data-dir DIR             runc: state, images, logs (default /var/lib/kubec/agent)\n"
               "  --node-name NAME           runc: the Node's name (default the host name)\n"
               "  --port N                   runc: HTTPS log API port (default 10250)\n"
               "  --serving-token-file FILE  runc: bearer token the log API accepts (default generated into\n"
               "                             DATA-DIR/pki/kubelet-token)\n"
               "  --registry-ca-dir DIR      runc: <registry host[:port]>.crt files trusted for image pulls\n"
               "  --sim-nodes N              number of simulated nodes (required for sim, 1..100000)\n"
               "  --sim-profile P            fast | realistic | image-pull-fail | crashloop (default fast)\n"
               "  --sim-node-template FILE   YAML/JSON: capacity, allocatable, labels, annotations, taints\n"
               "  --node-name-prefix P       node names P-0, P-1, ... (default sim)\n"
               "  --node-lease-renew-interval SECONDS  (default 10)\n"
               "  --pod-workers N            threads driving pods (default 8)\n"
               "  --kube-api-qps Q           client-side rate limit (default 50 per node; 0 = none)\n"
               "  --kube-api-burst B         (default 100 per node)\n"
               "  --metrics-listen ADDR:PORT serve /metrics and /healthz over plain HTTP (no authentication)\n\n"
               "Per-pod annotations: sim.kubec.io/fail=image-pull|crash, sim.kubec.io/start-delay=2s\n");
    return f == stdout ? 0 : 2;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* First line of a file, at most n-1 bytes; -1 if unreadable or empty. */
static int read_token(const char *path, char *out, size_t n)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    if (!fgets(out, (int)n, f))
        out[0] = 0;
    fclose(f);
    out[strcspn(out, "\r\n")] = 0;
    return out[0] ? 0 : -1;
}

int kc_agent_main(int argc, char **argv)
{
    static char token[256];
    struct kc_agent_opts o = {.sim_nodes = 0, .sim_profile = "fast", .node_name_prefix = "sim", .lease_renew_s = 10};
    const char *kubeconfig = NULL, *metrics_listen = NULL;
    double qps = -1; /* default: 50 per node, as N upstream kubelets (kubeAPIQPS 50, kubeAPIBurst 100) */
    int burst = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return usage(stdout);
        char flag[64];
        const char *eq = strchr(a, '='), *val = NULL;
        size_t fl = eq ? (size_t)(eq - a) : strlen(a);
        if (strncmp(a, "--", 2) || fl >= sizeof flag) {
            fprintf(stderr, "kubec agent: unexpected argument %s\n", a);
            return usage(stderr);
        }
        memcpy(flag, a, fl);
        flag[fl] = 0;
        val = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (!val) {
            fprintf(stderr, "kubec agent: flag needs an argument: %s\n", flag);
            return 2;
        }
        int bad = 0;
        if (!strcmp(flag, "--kubeconfig"))
            kubeconfig = val;
        else if (!strcmp(flag, "--metrics-listen"))
            metrics_listen = val;
        else if (!strcmp(flag, "--runtime"))
            o.runtime = val;
        else if (!strcmp(flag, "--data-dir"))
            o.data_dir = val;
        else if (!strcmp(flag, "--node-name"))
            o.node_name = val;
        else if (!strcmp(flag, "--port"))
            bad = parse_int(val, 1, 65535, &o.serving_port);
        else if (!strcmp(flag, "--serving-token-file"))
            bad = read_token(val, token, sizeof token);
        else if (!strcmp(flag, "--registry-ca-dir"))
            o.registry_ca_dir = val;
        else if (!strcmp(flag, "--sim-nodes"))
            bad = parse_int(val, 1, 100000, &o.sim_nodes);
        else if (!strcmp(flag, "--sim-profile"))
            o.sim_profile = val;
        else if (!strcmp(flag, "--sim-node-template"))
            o.sim_node_template = val;
        else if (!strcmp(flag, "--node-name-prefix"))
            o.node_name_prefix = val;
        else if (!strcmp(flag, "--node-lease-renew-interval"))
            bad = parse_int(val, 1, 3600, &o.lease_renew_s);
        else if (!strcmp(flag, "--pod-workers"))
            bad = parse_int(val, 1, 256, &o.workers);
        else if (!strcmp(flag, "--kube-api-burst"))
            bad = parse_int(val, 1, 100000, &burst);
        else if (!strcmp(flag, "--kube-api-qps")) {
            char *end;
            qps = strtod(val, &end);
            bad = *end || end == val || qps < 0;
        } else {
            fprintf(stderr, "kubec agent: unknown flag %s\n", flag);
            return usage(stderr);
        }
        if (bad) {
            fprintf(stderr, "kubec agent: invalid value \"%s\" for flag %s\n", val, flag);
            return 2;
        }
    }
    bool real = o.runtime && !strcmp(o.runtime, "runc");
    if (o.runtime && !real && strcmp(o.runtime, "sim")) {
        fprintf(stderr, "kubec agent: --runtime must be sim or runc\n");
        return 2;
    }
    if (!kubeconfig || (!real && o.sim_nodes < 1)) {
        fprintf(stderr, "kubec agent: --kubeconfig and --sim-nodes (or --runtime runc) are required\n");
        return usage(stderr);
    }
    if (token[0])
        o.serving_token = token;
    int nodes = real ? 1 : o.sim_nodes;
    if (qps < 0)
        qps = 50.0 * nodes;
    if (burst < 0)
        burst = nodes > 1000 ? 100000 : 100 * nodes;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    struct kc_client *c = NULL;
    struct kc_agent *ag = NULL;
    struct kc_err err = {0};
    if (kc_client_http_from_kubeconfig(kubeconfig, qps, burst, "kubelet/kubec", &c, &err)) {
        fprintf(stderr, "kubec agent: %s\n", err.message);
        return 1;
    }
    struct kc_metrics_srv *ms = NULL;
    if (metrics_listen && kc_metrics_srv_start(metrics_listen, &ms, &err)) {
        fprintf(stderr, "kubec agent: %s\n", err.message);
        kc_client_free(c);
        return 1;
    }
    if (kc_agent_start(c, &o, &ag, &err)) {
        fprintf(stderr, "kubec agent: %s\n", err.message);
        kc_metrics_srv_stop(ms);
        kc_client_free(c);
        return 1;
    }
    if (ms)
        kc_info(COMPONENT, "serving /metrics on http://%s", metrics_listen);
    if (real)
        kc_info(COMPONENT, "running this machine as a node with runc; log API on https port %d",
                kc_agent_serving_port(ag));
    else
        kc_info(COMPONENT, "running %d sim node(s) %s-0..%s-%d (profile %s)", o.sim_nodes, o.node_name_prefix,
                o.node_name_prefix, o.sim_nodes - 1, o.sim_profile);
    int sig = 0;
    sigwait(&set, &sig);
    kc_info(COMPONENT, "signal %d: stopping", sig);
    kc_agent_stop(ag);
    kc_metrics_srv_stop(ms);
    kc_client_free(c);
    return 0;
}
