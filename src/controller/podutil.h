/* podutil.h — pure helpers the workload controllers share (no I/O, no locks, no clock):
 * pod activity/readiness/availability, the order in which surplus pods are deleted, and
 * the slow-start batch sizes used when creating many pods.
 *
 * The rules follow upstream's pkg/controller/controller_utils.go and pkg/api/v1/pod:
 *  - a pod is active unless it is Succeeded, Failed or has a deletionTimestamp;
 *  - ready = condition Ready with status "True";
 *  - available = ready for at least minReadySeconds (by the Ready condition's lastTransitionTime);
 *  - deletion order (ActivePodsWithRanks): see kc_pod_delete_before().
 * Pods are parsed JSON objects (struct json_t); none of these functions modify them.
 * Times are Unix seconds (Kubernetes timestamps have second precision).
 */
#ifndef KC_CONTROLLER_PODUTIL_H
#define KC_CONTROLLER_PODUTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* Annotation that lowers/raises a pod's deletion priority (int32; lower = deleted first). */
#define KC_POD_DELETION_COST "controller.kubernetes.io/pod-deletion-cost"

bool kc_pod_is_active(json_t *pod);
bool kc_pod_is_ready(json_t *pod);
/* Ready condition's lastTransitionTime when the pod is ready; false if not ready or no valid time. */
bool kc_pod_ready_since(json_t *pod, time_t *since);
/* Ready and ready for at least min_ready_s seconds at `now` (min_ready_s <= 0: ready is enough). */
bool kc_pod_is_available(json_t *pod, int min_ready_s, time_t now);
/* Seconds until a ready pod becomes available (0 if already available or not ready). */
int kc_pod_available_in(json_t *pod, int min_ready_s, time_t now);
/* Every key/value of `selector_labels` (an object, may be NULL = none) is in `labels`. */
bool kc_labels_superset(json_t *labels, json_t *selector_labels);
/* Largest restartCount over status.containerStatuses (0 if none). */
int kc_pod_max_restarts(json_t *pod);
/* The pod-deletion-cost annotation (0 if absent or not an int32). */
int kc_pod_deletion_cost(json_t *pod);

/* true if pod a should be deleted before pod b. rank = how many related pods share the pod's node
 * (higher = deleted first). Order: unassigned < assigned; Pending < Unknown < Running; not ready <
 * ready; lower deletion cost < higher; higher rank < lower rank; ready for less time (log2 buckets
 * of the ready duration, as upstream's LogarithmicScaleDown; equal buckets → smaller uid first) <
 * longer; more restarts < fewer; newer (same log2 bucketing) < older. */
bool kc_pod_delete_before(json_t *a, int rank_a, json_t *b, int rank_b, time_t now);

/* Chooses the `diff` pods of pods[0..n) to delete, as upstream getPodsToDelete: ranks every pod by
 * the number of `related` pods (e.g. all active pods of the owner) on the same node, sorts by
 * kc_pod_delete_before and keeps the first diff. Writes up to diff borrowed pointers into out
 * (which must hold n entries) and returns how many. pods is not modified. */
size_t kc_pods_to_delete(json_t **pods, size_t n, json_t **related, size_t nrel, size_t diff, time_t now,
                         json_t **out);

/* Slow start: the next batch size, given the previous one (0 before the first batch) and how
 * many remain. Batches are initial, 2*initial, 4*initial, ... each capped by `remaining`
 * (upstream slowStartBatch with SlowStartInitialBatchSize = 1). Returns 0 when nothing remains. */
int kc_slow_start_next(int prev, int remaining, int initial);

/* Small JSON accessors the controllers share. Dotted path ("metadata.name"); NULL if absent. */
json_t *kc_obj_get(json_t *obj, const char *dotted);
const char *kc_obj_str(json_t *obj, const char *dotted);
/* The ownerReference with controller: true, or NULL. */
json_t *kc_obj_controller_ref(json_t *obj);
/* The ownerReference with this uid, or NULL. */
json_t *kc_obj_owner_ref(json_t *obj, const char *uid);

#endif
