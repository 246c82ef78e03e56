/* rollout.h — the arithmetic of Deployment rollouts, as pure functions (no client, no I/O, no clock),
 * so that every rule can be table-tested against upstream's known cases
 * (k8s.io/kubernetes pkg/controller/deployment and its util package).
 *
 * Replica sets are handed in as arrays of struct kc_ro_rs; functions that need an order (oldest
 * first, largest first, ...) sort an index array internally and never reorder the caller's array,
 * so results map back one-to-one (out field `size`).
 */
#ifndef KC_CONTROLLER_ROLLOUT_H
#define KC_CONTROLLER_ROLLOUT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* Upstream's cap on the revision-history annotation (maxRevHistoryLengthInChars). */
#define KC_RO_REV_HISTORY_MAX 2000
/* Label that makes each ReplicaSet's selector unique. */
#define KC_RO_HASH_LABEL "pod-template-hash"

/* intstr.GetValueFromIntOrPercent: v is a JSON integer or a "NN%" string (NULL = 0). Percentages
 * round up when round_up (maxSurge), down otherwise (maxUnavailable). */
int kc_ro_intstr(json_t *v, int total, bool round_up, int *out, struct kc_err *err);

/* ResolveFenceposts: surge rounds up, unavailable rounds down; both 0 → unavailable 1. */
int kc_ro_fenceposts(json_t *max_surge, json_t *max_unavail, int desired, int *surge, int *unavail,
                     struct kc_err *err);

/* What the rollout math needs to know about a Deployment. */
struct kc_ro_deploy {
    int replicas;        /* spec.replicas */
    bool rolling;        /* strategy.type == RollingUpdate */
    int surge, unavail;  /* resolved fenceposts (kc_ro_fenceposts); ignored unless rolling */
    int status_replicas; /* status.replicas (fallback when an RS lacks max-replicas) */
};

/* Fills d from a Deployment object (spec.replicas defaulting to 1). */
int kc_ro_deploy_from_json(json_t *deploy, struct kc_ro_deploy *d, struct kc_err *err);
/* MaxSurge / MaxUnavailable / MinAvailable of util: 0 for Recreate; unavailable capped at replicas. */
int kc_ro_max_surge(const struct kc_ro_deploy *d);
int kc_ro_max_unavailable(const struct kc_ro_deploy *d);
int kc_ro_min_available(const struct kc_ro_deploy *d);

struct kc_ro_rs {
    const char *name;     /* tie-breaker, as upstream's sorts */
    int64_t created;      /* creationTimestamp, seconds */
    int replicas;         /* spec.replicas */
    int available;        /* status.availableReplicas */
    int max_replicas;     /* deployment.kubernetes.io/max-replicas, -1 if absent/unparsable */
    int64_t revision;     /* deployment.kubernetes.io/revision (0 if absent) */
    int size;             /* out: the replica count the RS should get */
};

/* NewRSNewReplicas: the new RS's target size given the sum of spec.replicas over all RSes. */
int kc_ro_new_rs_replicas(const struct kc_ro_deploy *d, int all_replicas, int new_rs_replicas);

/* reconcileOldReplicaSets' budget: how many old pods may go now
 * (allPods - minAvailable - newRS unavailable); <= 0 means none. */
int kc_ro_max_scaled_down(const struct kc_ro_deploy *d, int all_replicas, int new_rs_replicas,
                          int new_rs_available);

/* cleanupUnhealthyReplicas: oldest first, removes up to max_cleanup unavailable replicas.
 * Sets rs[i].size for every RS (unchanged ones keep their replicas); returns the count removed. */
int kc_ro_cleanup_unhealthy(struct kc_ro_rs *rs, size_t n, int max_cleanup);

/* scaleDownOldReplicaSetsForRollingUpdate: available_all is the available count over all RSes
 * (new included). Oldest first, takes rs[i].replicas (as left by cleanup) down to keep
 * minAvailable. Sets rs[i].size; returns the count removed. */
int kc_ro_scale_down_old(const struct kc_ro_deploy *d, struct kc_ro_rs *rs, size_t n, int available_all);

/* getReplicaSetFraction / GetProportion. */
int kc_ro_fraction(const struct kc_ro_deploy *d, const struct kc_ro_rs *rs);
int kc_ro_proportion(const struct kc_ro_deploy *d, const struct kc_ro_rs *rs, int to_add, int added);

/* The RollingUpdate arm of scale(): proportional scaling of the ACTIVE replica sets (spec.replicas
 * > 0) to deployment size + maxSurge, leftover to the first RS in upstream's order (largest,
 * newest on ties when growing; largest, oldest on ties when shrinking). Sets rs[i].size; returns
 * +1 (scaling up), -1 (down) or 0 (nothing to do). */
int kc_ro_proportional(const struct kc_ro_deploy *d, struct kc_ro_rs *rs, size_t n);

/* MaxRevision / LastRevision (second largest). */
int64_t kc_ro_max_revision(const struct kc_ro_rs *rs, size_t n);
int64_t kc_ro_last_revision(const struct kc_ro_rs *rs, size_t n);

/* Appends old_rev to a revision-history annotation ("1,3"), dropping the oldest entries to stay
 * within limit chars (as SetNewReplicaSetAnnotations). hist may be NULL/"". Returns 0, or
 * KC_ETOOLARGE when even after dropping it would not fit (caller keeps the old value). */
int kc_ro_revision_history(const char *hist, const char *old_rev, size_t limit, char *out, size_t n);

/* The pod-template-hash: FNV-32a over the template's canonical JSON (sorted keys, compact, with
 * the pod-template-hash label removed), then 8 bytes (collision_count as 4 little-endian bytes and
 * 4 zero bytes, as upstream's ComputeHash writes them) when
 * collision_count >= 0, printed in decimal and mapped through upstream's SafeEncodeString
 * alphabet. out gets at most 10 characters + NUL. */
int kc_ro_template_hash(json_t *tmpl, int64_t collision_count, char *out, size_t n);
/* SafeEncodeString: each byte b → "bcdfghjklmnpqrstvwxz2456789"[b % 27]. */
void kc_ro_safe_encode(const char *in, char *out, size_t n);
uint32_t kc_ro_fnv32a(const void *p, size_t n, uint32_t h);

/* EqualIgnoreHash: templates equal after removing labels[pod-template-hash], with empty
 * objects/arrays and nulls treated as absent (apimachinery's semantic equality). */
bool kc_ro_template_equal(json_t *a, json_t *b);

#endif
