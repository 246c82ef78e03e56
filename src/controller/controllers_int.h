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
 *   KC_IDX_ORPHAN     "orphan"     metadata.namespace of an object WITHOUT a controller reference
 * A controller's own objects plus the orphans of its namespace (the only ones it may adopt) are
 * therefore two index look-ups: no sync scans its whole namespace (which made 1,000 ReplicaSets
 * in one namespace cost 1,000 x 10,000 pod visits per round of syncs), as upstream's
 * controllerUID indexer does.
 * A controller may add its own indexes in start() (informers are not started yet then), with
 * names of its own.
 */
#ifndef KC_CONTROLLER_CONTROLLERS_INT_H
#define KC_CONTROLLER_CONTROLLERS_INT_H

#include <stdlib.h>
#include <string.h>

#include "client/informer.h"
#include "controller/controller.h"

#define KC_IDX_NAMESPACE "namespace"
#define KC_IDX_CONTROLLER "controller"
#define KC_IDX_ORPHAN "orphan"

/* The objects of `inf` controlled by `uid` plus the orphans of namespace `ns` (new references in a
 * malloc'd array, *out; caller frees each and the array). Returns the count. */
static inline size_t kc_cm_owned_and_orphans(struct kc_informer *inf, const char *uid, const char *ns, json_t ***out)
{
    json_t **own = NULL, **orph = NULL;
    size_t n = kc_informer_by_index(inf, KC_IDX_CONTROLLER, uid, &own);
    size_t m = kc_informer_by_index(inf, KC_IDX_ORPHAN, ns, &orph);
    if (!m) {
        free(orph);
        *out = own;
        return n;
    }
    json_t **all = realloc(own, (n + m) * sizeof *all);
    if (!all) { /* keep what we have: the orphans wait for the next sync */
        for (size_t i = 0; i < m; i++)
            json_decref(orph[i]);
        free(orph);
        *out = own;
        return n;
    }
    memcpy(all + n, orph, m * sizeof *orph);
    free(orph);
    *out = all;
    return n + m;
}

int kc_deployment_controller_start(struct kc_client *c, struct kc_cm_informers *inf, int workers, void **out);
void kc_deployment_controller_stop(void *ctl);

int kc_rs_controller_start(struct kc_client *c, struct kc_cm_informers *inf, int workers, void **out);
void kc_rs_controller_stop(void *ctl);

int kc_gc_controller_start(struct kc_client *c, struct kc_cm_informers *inf, int workers, void **out);
void kc_gc_controller_stop(void *ctl);

#endif
