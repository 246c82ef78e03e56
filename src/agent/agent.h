/* agent.h — the node agent (kubelet): registers Nodes, renews their Leases, runs the pods bound to
 * them through a runtime, and reports pod status and Events. One code path for every runtime:
 *
 *   struct kc_runtime_ops  — the runtime interface (runtime.h): pull image, create/start/stop/remove
 *                            containers, container state; implemented by `sim` (sim.c: virtual nodes,
 *                            configurable delays and failures) and later `runc` (real containers).
 *
 * `kubec server --sim-nodes N` runs one agent process-internally with N virtual nodes (in-process
 * client); `kubec agent --sim-nodes N --kubeconfig FILE` does the same from another process (HTTP).
 */
#ifndef KC_AGENT_AGENT_H
#define KC_AGENT_AGENT_H

#include "client/client.h"
#include "util/err.h"

struct kc_agent_opts {
    int sim_nodes;                 /* number of virtual nodes (sim runtime) */
    const char *sim_profile;       /* fast | realistic | image-pull-fail | crashloop (default fast) */
    const char *sim_node_template; /* YAML/JSON file: capacity, labels, taints for every sim node (may be NULL) */
    const char *node_name_prefix;  /* sim node names: <prefix>-<i> (default "sim") */
    int lease_renew_s;             /* default 10 */
    int workers;                   /* pod workers shared by all pods (default 8) */
    /* Real node (runtime "runc"): one node, this machine, real containers (docs/runtime.md). */
    const char *runtime;           /* "sim" (default) | "runc" */
    const char *data_dir;          /* runc: default /var/lib/kubec/agent */
    const char *node_name;         /* runc: default the host name */
    int serving_port;              /* runc: HTTPS log API port (0 = 10250, -1 = none) */
    const char *serving_token;     /* runc: bearer token the log API accepts (NULL = generated, see below) */
    const char *registry_ca_dir;   /* runc: <registry host[:port]>.crt files trusted for pulls */
};

struct kc_agent;

int kc_agent_start(struct kc_client *c, const struct kc_agent_opts *o, struct kc_agent **out, struct kc_err *err);
/* runc: the token the agent's HTTPS API (GET /containerLogs/...) accepts, and its port (NULL / 0 for sim).
 * The API server proxies pods/log there with "Authorization: Bearer <token>". */
const char *kc_agent_serving_token(const struct kc_agent *a);
int kc_agent_serving_port(const struct kc_agent *a);
void kc_agent_stop(struct kc_agent *a);
/* `kubec agent` entry point. */
int kc_agent_main(int argc, char **argv);

/* The node lifecycle controller (runs in the controller manager): nodes whose Lease is not renewed for
 * 40 s become Ready=Unknown with the node.kubernetes.io/unreachable taint; their pods are evicted after
 * their toleration (300 s default), as upstream. */
int kc_nodelifecycle_start(struct kc_client *c, void **out, struct kc_err *err);
void kc_nodelifecycle_stop(void *ctl);

/* The same with explicit settings (flags of the controller manager). */
struct kc_nodelifecycle_opts {
    int node_monitor_grace_period_s; /* --node-monitor-grace-period (upstream 40 s) */
    int node_monitor_period_s;       /* --node-monitor-period (upstream 5 s) */
    int default_toleration_s;        /* for pods without an unreachable toleration (upstream admission: 300 s) */
};
/* Defaults as upstream; the environment variable KUBEC_NODE_MONITOR_GRACE_PERIOD (seconds) overrides the
 * grace period so end-to-end tests need not wait 40 s. */
void kc_nodelifecycle_opts_default(struct kc_nodelifecycle_opts *o);
int kc_nodelifecycle_start_opts(struct kc_client *c, const struct kc_nodelifecycle_opts *o, void **out,
                                struct kc_err *err);

#endif
