/* timeline.h — the model behind `kubec timeline` (internal to src/tools).
 *
 * kc_tl_collect reads one Deployment rollout through the public API (Deployment, its ReplicaSet of
 * the wanted revision, that ReplicaSet's pods, and Events when a stamp is missing or a stage is
 * stuck) into a struct kc_tl: one time per stage, in microseconds since the epoch, each with the
 * source it came from (the kubec.io/timeline annotation, or a fallback of coarser precision).
 * kc_tl_analyse then derives the per-stage aggregates, the critical path and the stuck stage; it
 * does no I/O, so it can be tested on hand-made models. Single-threaded.
 */
#ifndef KC_TOOLS_TIMELINE_H
#define KC_TOOLS_TIMELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/client.h"

enum kc_tl_stage {
    KC_TL_ACCEPTED,   /* Deployment created (accepted by the API) */
    KC_TL_RS_CREATED, /* ReplicaSet created */
    KC_TL_POD_CREATED,
    KC_TL_SCHEDULED,
    KC_TL_PULLED,
    KC_TL_STARTED,
    KC_TL_READY,
    KC_TL_AVAILABLE, /* Deployment Available for this rollout */
    KC_TL_NSTAGES
};
#define KC_TL_FIRST_POD_STAGE KC_TL_POD_CREATED
#define KC_TL_LAST_POD_STAGE KC_TL_READY

/* Stage name in JSON ("accepted", "replicaSetCreated", "created", ...) and its human label. */
const char *kc_tl_stage_key(int stage);
const char *kc_tl_stage_label(int stage);

/* Where a time came from. Only KC_TL_SRC_STAMP and event times carry microseconds. */
enum kc_tl_src { KC_TL_SRC_NONE, KC_TL_SRC_STAMP, KC_TL_SRC_META, KC_TL_SRC_CONDITION, KC_TL_SRC_STATUS, KC_TL_SRC_EVENT };
const char *kc_tl_src_name(int src);

struct kc_tl_time {
    int64_t us;  /* microseconds since the epoch; meaningful only if src != NONE */
    int src;
    bool coarse; /* second precision (truncated): kc_tl_analyse may move it up to 1 s later */
};

#define KC_TL_NAME_MAX 254
#define KC_TL_MSG_MAX 1024
#define KC_TL_MAX_PODS 100000      /* pods read for one ReplicaSet */
#define KC_TL_MAX_EVENT_READS 200  /* pods whose Events are read for fallbacks */

struct kc_tl_pod {
    char name[KC_TL_NAME_MAX], uid[64], node[KC_TL_NAME_MAX];
    struct kc_tl_time t[KC_TL_NSTAGES]; /* only pod stages are used */
    char waiting_reason[64];            /* first container's state.waiting.reason, if any */
    bool unschedulable;                 /* PodScheduled False/Unschedulable */
    char *msg; /* malloc'd (at most KC_TL_MSG_MAX bytes) or NULL: the PodScheduled message if
                * unschedulable, else the waiting message; kept out of line so 100000 pods stay small */
};

/* The stuck or unfinished stage and what the API says about it. */
struct kc_tl_block {
    int stage;                   /* -1: nothing blocks (complete) */
    size_t pods;                 /* pods waiting at that stage (0 for Deployment-level stages) */
    bool stuck;                  /* failing (back-off, unschedulable, deadline) rather than in progress */
    char reason[64];             /* e.g. ImagePullBackOff, Unschedulable, ProgressDeadlineExceeded */
    char message[KC_TL_MSG_MAX]; /* last event of that stage, or the condition/status message */
    char error[KC_TL_MSG_MAX];   /* last Warning event of that stage if it says more than message */
};

struct kc_tl_stat {
    bool present;                      /* at least one time of the stage is known */
    int64_t start_us, end_us;          /* waterfall span, relative to the origin */
    size_t n;                          /* pods with a duration for the stage */
    int64_t p50_us, p99_us, max_us;    /* per-pod durations (pod stages); the one duration otherwise */
    bool crit_known;
    int64_t crit_us;                   /* share of the total on the critical path */
};

struct kc_tl {
    char ns[KC_TL_NAME_MAX], name[KC_TL_NAME_MAX], uid[64];
    char rs_name[KC_TL_NAME_MAX], rs_uid[64];
    long revision;        /* of the ReplicaSet; 0 = none found */
    long replicas;        /* desired (ReplicaSet spec, else Deployment spec) */
    bool first_rollout;   /* revision 1: the origin is the Deployment's creation */
    struct kc_tl_time accepted, rs_created, available;
    struct kc_tl_pod *pods;
    size_t npods;
    /* Deployment-level hints gathered for kc_tl_analyse */
    bool deadline_exceeded, replica_failure;
    char dep_msg[KC_TL_MSG_MAX];     /* Progressing=False or ReplicaFailure message */
    int64_t now_us;
    /* results of kc_tl_analyse */
    int64_t origin_us;
    bool complete;
    int64_t total_us;  /* origin → available, or origin → now while unfinished */
    int crit_pod;      /* index into pods, -1 if none */
    struct kc_tl_stat stat[KC_TL_NSTAGES];
    struct kc_tl_block block;
};

/* Reads the rollout of Deployment ns/name (revision 0 = the newest ReplicaSet) into *tl, then runs
 * kc_tl_analyse. On error returns a KC_E* code with err filled as the API's Status said (404 →
 * KC_ENOTFOUND with message `deployments.apps "x" not found`). tl is released by kc_tl_release
 * in every case. */
int kc_tl_collect(struct kc_client *c, const char *ns, const char *name, long revision, struct kc_tl *tl,
                  struct kc_err *err);
void kc_tl_release(struct kc_tl *tl);

/* Fills origin, complete, total, stat[], crit_pod and the stage part of block (pods waiting, stage);
 * messages are kept as collected. First repairs the order of coarse times: a second-precision
 * time that falls before the previous stage (by less than a second) is moved to that stage's time,
 * since the truncated value is only a lower bound. */
void kc_tl_analyse(struct kc_tl *tl);

/* Parses RFC 3339 with up to nanosecond fraction and Z or ±hh:mm into microseconds. 0 or -1.
 * *micro (may be NULL) tells whether the text carried a sub-second fraction. */
int kc_tl_parse_time(const char *s, int64_t *us, bool *micro);
/* Nearest-rank percentile (q in 0..1) of a sorted array of n > 0 values. */
int64_t kc_tl_percentile(const int64_t *sorted, size_t n, double q);

#endif
