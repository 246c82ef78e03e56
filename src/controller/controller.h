/* controller.h — the controller manager: deployment, replicaset and garbage-collector
 * controllers (and later others), run as threads of `kubec server` over the in-process
 * transport, or as `kubec controller-manager --kubeconfig FILE` over HTTP. Same code both ways:
 * controllers only ever talk to the API through struct kc_client.
 *
 * Each controller is a row in manager.c's table: name, start(ctx), stop(ctx).
 * Shared informers (deployments, replicasets, pods, ...) are created once by the manager
 * and handed to every controller that needs them (struct kc_cm_informers).
 */
#ifndef KC_CONTROLLER_CONTROLLER_H
#define KC_CONTROLLER_CONTROLLER_H

#include <stdbool.h>

#include "client/client.h"
#include "client/informer.h"
#include "util/err.h"

struct kc_cm_opts {
    int concurrent_deployment_syncs;  /* --concurrent-deployment-syncs (upstream 5) */
    int concurrent_replicaset_syncs;  /* --concurrent-replicaset-syncs (upstream 5) */
    int concurrent_gc_syncs;          /* --concurrent-gc-syncs (upstream 20) */
    int deployment_sync_period_s;     /* --deployment-controller-sync-period: informer resync (upstream 30 s) */
    double kube_api_qps;              /* --kube-api-qps (HTTP transport only) */
    int kube_api_burst;               /* --kube-api-burst */
};
void kc_cm_opts_default(struct kc_cm_opts *o);

/* Shared informers of the manager (all namespaces). */
struct kc_cm_informers {
    struct kc_informer *deployments, *replicasets, *pods;
};

struct kc_cm;

/* Starts all controllers on client c (which the manager does not own). */
int kc_cm_start(struct kc_client *c, const struct kc_cm_opts *o, struct kc_cm **out, struct kc_err *err);
/* Stops controllers (workers finish their current item), informers, frees. */
void kc_cm_stop(struct kc_cm *cm);

/* `kubec controller-manager` entry (flags: --kubeconfig and the ones above). */
int kc_controller_manager_main(int argc, char **argv);

/* Emits a core/v1 Event about an object (involvedObject from obj), type "Normal"/"Warning",
 * source.component = component. Best effort: failures are ignored. */
void kc_event_emit(struct kc_client *c, json_t *obj, const char *type, const char *reason, const char *component,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#endif
