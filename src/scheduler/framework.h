/* framework.h — the scheduling algorithm as pure functions over a snapshot:
 * filters, scores, and preemption victim selection. No I/O, no threads:
 * scheduler.c feeds it from informers and binds the result.
 *
 * The snapshot holds one struct kc_snode per node with what the plugins
 * need pre-computed (allocatable and requested resources, labels, taints,
 * the pods placed there — including "assumed" pods not yet bound — and
 * image names). Pods are parsed once into struct kc_spod.
 *
 * Plugins follow upstream's default profile: NodeUnschedulable, NodeName,
 * TaintToleration, NodeAffinity (nodeSelector + required/preferred
 * affinity), NodeResourcesFit (LeastAllocated) + NodeResourcesBalancedAllocation,
 * PodTopologySpread (DoNotSchedule filter, ScheduleAnyway score),
 * InterPodAffinity (required anti-affinity filter, preferred affinity score),
 * ImageLocality; DefaultPreemption as the post-filter.
 */
#ifndef KC_SCHEDULER_FRAMEWORK_H
#define KC_SCHEDULER_FRAMEWORK_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct kc_res {
    int64_t cpu_m;      /* millicores */
    int64_t mem;        /* bytes */
    int64_t eph;        /* ephemeral-storage bytes */
    int64_t pods;
};

/* A pod as the scheduler sees it. Owns `json` (a reference). */
struct kc_spod {
    json_t *json;
    const char *ns, *name, *uid, *node; /* point into json */
    int32_t priority;
    bool preempt_never;
    double created;                     /* creationTimestamp, seconds since epoch */
    struct kc_res req;                  /* requests (init containers: max, as upstream) */
    json_t *labels;                     /* borrowed from json */
    /* pre-extracted once per pod (borrowed from json, NULL when absent) so that the per-node plugins
     * do no JSON look-ups for what the pod does not use */
    json_t *spec, *tolerations, *node_selector, *req_node_terms, *pref_node_terms, *spread;
    json_t *anti_req, *aff_req, *aff_pref, *anti_pref;
    const char *want_node;              /* spec.nodeName before binding (pods pinned to a node) */
    const char *images[8];
    int nimages;
};

struct kc_snode {
    char *name;
    json_t *json;                       /* the Node (reference) */
    json_t *labels;                     /* borrowed */
    json_t *taints;                     /* borrowed, may be NULL */
    bool unschedulable;
    struct kc_res alloc, used;
    struct kc_spod **pods;              /* pods on this node (references owned by the snapshot) */
    size_t npods, cap;
    size_t n_anti;                      /* pods here with required anti-affinity (symmetry checks) */
    struct kc_snapshot *snap;           /* the snapshot holding this node */
    json_t *images;                     /* set: {"nginx:1.25": size, ...} names from status.images */
};

struct kc_spread_caches;
struct kc_snapshot {
    struct kc_snode *nodes;
    size_t n, cap;
    size_t n_anti; /* pods with required anti-affinity anywhere: 0 skips the symmetry check */
    /* topology spread domain counts kept across attempts (framework.c), updated by kc_snode_add_pod /
     * kc_snode_remove_pod and dropped when a node's labels change or a node goes */
    struct kc_spread_caches *spread;
};

/* Parses a Pod (takes a new reference). NULL if it is not a pod. */
struct kc_spod *kc_spod_new(json_t *pod);
void kc_spod_free(struct kc_spod *p);
void kc_snapshot_init(struct kc_snapshot *s);
void kc_snapshot_release(struct kc_snapshot *s);
/* Adds or replaces a node (new reference to node json). Returns its index. */
size_t kc_snapshot_set_node(struct kc_snapshot *s, json_t *node);
void kc_snapshot_remove_node(struct kc_snapshot *s, const char *name);
struct kc_snode *kc_snapshot_node(struct kc_snapshot *s, const char *name);
/* Places a pod on its node (p->node must be set or node given); the snapshot takes ownership of a ref. */
void kc_snode_add_pod(struct kc_snode *n, struct kc_spod *p);
/* Removes the pod with this uid from the node; returns true if found. */
bool kc_snode_remove_pod(struct kc_snode *n, const char *uid);

/* Resource parsing helpers (quantities → numbers). */
void kc_res_from_list(json_t *resource_list, struct kc_res *out);

/* Filter result per node: NULL = fits, else a static or snapshot-lifetime reason string as upstream
 * words it ("Insufficient cpu", "node(s) didn't match Pod's node affinity/selector", ...). A node may fail
 * with several reasons (resources): up to 4. */
struct kc_filter_result {
    const char *reasons[4];
    int n;
    int plugin; /* index of the filter plugin that failed (when the node does not fit) */
};

#define KC_NFILTERS 7
#define KC_NSCORES 7
/* Filter plugin i's upstream name ("NodeResourcesFit", ...). */
const char *kc_filter_plugin_name(int i);
/* Score plugin i's upstream name ("NodeResourcesFit", "NodeResourcesBalancedAllocation", ...). */
const char *kc_score_plugin_name(int i);
/* Like kc_filter_node, adding each filter plugin's run time to plugin_s[i] (KC_NFILTERS entries). */
bool kc_filter_node_timed(const struct kc_snapshot *s, const struct kc_spod *p, const struct kc_snode *n,
                          struct kc_filter_result *r, double *plugin_s);
/* Runs every filter for pod p on node n. Returns true when the pod fits. */
bool kc_filter_node(const struct kc_snapshot *s, const struct kc_spod *p, const struct kc_snode *n,
                    struct kc_filter_result *r);
/* Weighted score 0..(100 × sum of weights) for a feasible node. */
int64_t kc_score_node(const struct kc_snapshot *s, const struct kc_spod *p, const struct kc_snode *n);

/* Result of one scheduling attempt. */
struct kc_sched_result {
    int node;                 /* index of the chosen node, -1 if none */
    char message[1024];       /* FailedScheduling message when node == -1 */
    /* preemption: nominated node and victims (references into the snapshot) */
    int nominated;
    struct kc_spod *victims[64];
    int nvictims;
    /* timing: set time_plugins before the call to get per-plugin times (sampled attempts) */
    bool time_plugins;
    double plugin_s[KC_NFILTERS];       /* filter plugins (timed attempts only) */
    double score_plugin_s[KC_NSCORES];  /* score plugins (timed attempts only) */
    double filter_s, score_s, postfilter_s; /* every attempt; postfilter = preemption and the message */
    /* calls of each plugin in this attempt (every attempt; filters stop at the first failing plugin,
     * score plugins run once per feasible node) */
    unsigned filter_calls[KC_NFILTERS];
    unsigned score_calls;
};

/* Filters all nodes, scores the feasible ones, picks the best (ties broken by rotating start index
 * `*rr` as upstream's sampling does). When no node fits and the pod may preempt, selects victims on the
 * best node for preemption (fewest victims, then lowest highest-victim priority, …). */
void kc_schedule(const struct kc_snapshot *s, const struct kc_spod *p, unsigned *rr, struct kc_sched_result *out);
/* Frees the calling thread's scratch space (call before a scheduling thread exits). */
void kc_schedule_thread_release(void);

#endif
