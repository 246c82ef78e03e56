/* runc_node.h — glue between the agent core (agent.c) and a real node: the image store, the runc
 * runtime, the HTTPS log server and what the Node object reports about this machine.
 * Internal to src/agent.
 */
#ifndef KC_AGENT_RUNC_NODE_H
#define KC_AGENT_RUNC_NODE_H

#include <jansson.h>

#include "agent/runtime.h"
#include "client/client.h"

struct kc_runc_node;

struct kc_runc_node_opts {
    struct kc_client *client;      /* secrets, configmaps, pull secrets */
    const char *data_dir;          /* default /var/lib/kubec/agent */
    const char *node_name;
    const char *host_ip;
    int serving_port;              /* default 10250; -1 = no log server */
    const char *serving_token;     /* NULL = generated once into <data dir>/pki/kubelet-token */
    const char *registry_ca_dir;   /* per-registry CAs (<host[:port]>.crt), may be NULL */
    int (*pod_uid)(void *ctx, const char *ns, const char *name, char *uid, size_t n);
    void *ctx;
};

/* Opens the image store, creates the runc runtime (ops/impl, to be freed by the caller through
 * ops->free after kc_runc_node_stop) and starts the log server. */
int kc_runc_node_new(const struct kc_runc_node_opts *o, const struct kc_runtime_ops **ops, void **impl,
                     struct kc_runc_node **out, struct kc_err *err);
/* Stops the log server (before the runtime is freed). */
void kc_runc_node_stop(struct kc_runc_node *n);
/* Closes the image store and frees n (after the runtime is freed). */
void kc_runc_node_free(struct kc_runc_node *n);
/* Rewrites a Node status built for a sim node with this machine's facts: capacity (CPUs, memory),
 * nodeInfo (kernel, OS, runc version), images, the log server's port. */
void kc_runc_node_status(struct kc_runc_node *n, json_t *status);
const char *kc_runc_node_token(const struct kc_runc_node *n);
int kc_runc_node_port(const struct kc_runc_node *n);
/* This machine's first non-loopback IPv4 address (127.0.0.1 if none). */
void kc_runc_host_ip(char *out, size_t n);

#endif
