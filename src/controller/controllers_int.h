/* controllers_int.h — internal contract between the controller manager (manager.c) and the
 * individual controllers (deployment.c, replicaset.c, gc.c, ...).
 *
 * Every controller exposes a start/stop pair. start() receives the manager's client (not owned)
 * and the shared informers (not owned; the manager starts them after all controllers have added
 * their handlers), creates its work queue and `workers` worker threads, and returns an opaque
 * handle in *out. stop() shuts the queue down, joins the workers and frees the handle. The manager
 * calls it after kc_informer_stop on every shared informer (so no handler can run any more) and
 * before kc_informer_free (so caches are still readable while workers finish).
 * start() returns 0 or a negative KC_E* code.
 *
 * Indexes the manager registers on every shared informer (deployments, replicasets, pods) before
 * any controller starts, for kc_informer_by_index:
 *   KC_IDX_NAMESPACE  "namespace"  metadata.namespace
 *   KC_IDX_CONTROLLER "controller" uid of the ownerReference with controller: true (none if absent)
 * A controller may add its own indexes in start() (informers are not started yet then), with
 * names of its own.
 */
#ifndef KC_CONTROLLER_CONTROLLERS_INT_H
#define KC_CONTROLLER_CONTROLLERS_INT_H

#include "controller/controller.h"

#define KC_IDX_NAMESPACE "namespace"
#define KC_IDX_CONTROLLER "controller"

int kc_deployment_controller_start(struct kc_client *c, struct kc_cm_informers *inf, int workers, void **out);
void kc_deployment_controller_stop(void *ctl);

int kc_rs_controller_start(struct kc_client *c, struct kc_cm_informers *inf, int workers, void **out);
void kc_rs_controller_stop(void *ctl);

int kc_gc_controller_start(struct kc_client *c, struct kc_cm_informers *inf, int workers, void **out);
void kc_gc_controller_stop(void *ctl);

#endif
