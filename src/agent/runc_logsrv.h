/* runc_logsrv.h — the node agent's own HTTPS API (the kubelet's port 10250), for container logs.
 *
 *   GET /containerLogs/<namespace>/<pod>/<container>?follow=&previous=&tailLines=&timestamps=&limitBytes=
 *       → text/plain, the container's output (as upstream's kubelet serves it); follow streams until the
 *         container run ends or the client goes away
 *   GET /healthz → "ok"
 *
 * Every request needs "Authorization: Bearer <token>" with the agent's serving token (401 otherwise;
 * anonymous requests are refused). TLS with a self-signed certificate the agent makes on first start
 * (<data dir>/pki/kubelet.crt + kubelet.key, EC P-256, 1 year, SANs: the node address, 127.0.0.1,
 * localhost, the host name) and the token in <data dir>/pki/kubelet-token (32 random bytes hex, 0600).
 * Threads: libmicrohttpd's thread per connection; one extra thread per log stream feeding it.
 */
#ifndef KC_AGENT_RUNC_LOGSRV_H
#define KC_AGENT_RUNC_LOGSRV_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

struct kc_logsrv;

struct kc_logsrv_opts {
    const char *listen_addr;   /* default 0.0.0.0 */
    int port;                  /* default 10250; 0 picks a free port (tests) */
    const char *pki_dir;       /* cert, key and token live here (created) */
    const char *token;         /* accepted bearer token; NULL = the one in pki_dir (generated once) */
    const char *const *sans;   /* extra SANs (NULL-terminated), e.g. the node IP */
    /* ns/name → pod uid (0, or KC_ENOTFOUND when the pod is not on this node) */
    int (*pod_uid)(void *ctx, const char *ns, const char *name, char *uid, size_t n);
    void *ctx;
    void *runtime;             /* the runc runtime impl (kc_runc_read_log) */
};

int kc_logsrv_start(const struct kc_logsrv_opts *o, struct kc_logsrv **out, struct kc_err *err);
int kc_logsrv_port(const struct kc_logsrv *s);
const char *kc_logsrv_token(const struct kc_logsrv *s);
/* PEM of the serving certificate (to pin it on the client side). */
const char *kc_logsrv_cert(const struct kc_logsrv *s);
void kc_logsrv_stop(struct kc_logsrv *s);

#endif
