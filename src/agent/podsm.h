/* podsm.h — the node agent's per-pod state machine (internal to src/agent).
 *
 * kc_podsm_sync takes a pod one step as far as it can go *now*: sandbox, image pulls, create,
 * start, observing exits, restarts with back-off, and graceful termination. It never sleeps; it
 * returns when the next thing to do lies in the future (*wake_ms) or nothing is left. Every state
 * change goes through ONE function (podsm.c: set_state) so a trace (KUBEC_V=1) shows each one.
 * kc_podsm_status renders the pod status the state implies (deterministic: equal state → equal
 * JSON, which is what lets the agent write status only when it changed).
 *
 * No API calls here: events go to a callback, the runtime is a struct kc_runtime_ops, the clock is
 * injectable — so table tests drive it with the sim runtime and a fake clock.
 */
#ifndef KC_AGENT_PODSM_H
#define KC_AGENT_PODSM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/runtime.h"

/* Back-off as upstream's flowcontrol.Backoff (kubelet: 10 s initial, doubling, 300 s cap; an entry
 * untouched for 2×cap is forgotten). Times in ms. */
#define KC_BACKOFF_INITIAL_MS 10000
#define KC_BACKOFF_MAX_MS 300000
struct kc_backoff {
    int64_t backoff_ms;  /* 0 = no entry */
    int64_t last_update_ms;
};
void kc_backoff_next(struct kc_backoff *b, int64_t now);
/* Image pulls: in back-off while now - last_update < backoff. */
bool kc_backoff_in_since_update(const struct kc_backoff *b, int64_t now);
/* Restarts: in back-off while now - event_time < backoff (event = the container's finish). */
bool kc_backoff_in_since(const struct kc_backoff *b, int64_t event_time, int64_t now);

enum kc_cstate {
    KC_CS_WAITING,       /* not yet pulled (ContainerCreating / PodInitializing) */
    KC_CS_PULLING,       /* pull in progress */
    KC_CS_PULL_FAILED,   /* ErrImagePull: last pull failed */
    KC_CS_PULL_BACKOFF,  /* ImagePullBackOff: waiting for the back-off to expire */
    KC_CS_CREATING,
    KC_CS_STARTING,
    KC_CS_RUNNING,
    KC_CS_EXITED,        /* terminated; restart decision pending or final */
    KC_CS_CRASH_BACKOFF, /* CrashLoopBackOff */
    KC_CS_FAILED,        /* create/start error (CreateContainerError …), retried after back-off */
};
const char *kc_cstate_name(enum kc_cstate s);
/* Go's time.Duration String() at ms precision ("0s", "523ms", "1.2s", "2m3.5s"), for event text. */
void kc_go_duration(int64_t ms, char *out, size_t n);

struct kc_ctr_term {
    int exit_code;
    char reason[32];
    int64_t started_ms, finished_ms;
    char id[KC_RT_ID_MAX];
};

struct kc_ctr_sm {
    char name[64];
    char image[512];
    bool init;
    bool pull_always;
    enum kc_cstate st;
    char reason[48];   /* waiting reason shown in status */
    char message[1024]; /* waiting message */
    char id[KC_RT_ID_MAX];
    struct kc_rt_image img;
    bool have_img;
    int restart_count;
    int64_t pull_started_ms, started_ms, wake_ms;
    struct kc_ctr_term term;     /* current termination (state EXITED / CRASH_BACKOFF) */
    struct kc_ctr_term last;     /* lastState.terminated */
    bool has_last;
    bool started;                /* status.started (no startup probes in sim: true once running) */
    bool probes_known;           /* the runtime reports probe results (runc): probe_ready counts */
    int probe_ready;             /* -1 no readiness probe, 0 not ready, 1 ready */
    bool done;                   /* init: completed successfully; regular: terminated, no restart */
    struct kc_backoff pull_bo, crash_bo, err_bo;
};

struct kc_pod_sm {
    char ns[64], name[256], uid[64], node[256];
    char restart_policy[16];     /* Always | OnFailure | Never */
    int64_t grace_s;             /* spec.terminationGracePeriodSeconds (30) */
    int n;                       /* containers: init ones first, in spec order */
    int ninit;
    struct kc_ctr_sm *c;
    bool sandbox;
    char pod_ip[48];
    int64_t start_ms;            /* status.startTime */
    bool killing, killed;        /* graceful termination started / all containers stopped */
    int64_t kill_deadline_ms;
    /* condition transition times (ms), indexed by enum in podsm.c */
    int64_t cond_ms[5];
    int cond_val[5];             /* -1 unknown yet, 0 False, 1 True */
};

/* What the state machine needs from its caller. */
struct kc_podsm_env {
    const struct kc_runtime_ops *rt;
    void *rt_impl;
    kc_clock_fn clock;
    void *clock_ctx;
    /* Event about the pod; type "Normal"/"Warning". May be NULL. */
    void (*event)(void *ctx, json_t *pod, const char *type, const char *reason, const char *msg);
    void *event_ctx;
    /* Called on every container state change (for tracing); may be NULL. ctx = event_ctx. */
    void (*trace)(void *ctx, const struct kc_pod_sm *sm, const struct kc_ctr_sm *c, enum kc_cstate from,
                  enum kc_cstate to, const char *reason);
    const char *host_ip;
    bool immediate_kill;         /* sim fast profile: do not wait out the grace period */
};

/* Initialises sm from a pod (containers, policy); 0 or KC_EINVAL (too many containers, long names). */
int kc_podsm_init(struct kc_pod_sm *sm, json_t *pod, const char *node, struct kc_err *err);
void kc_podsm_release(struct kc_pod_sm *sm);

/* Drives the pod. *wake_ms: absolute time to call again (0 = only on pod changes). Returns 1 when a
 * deleted pod has finished terminating (the caller then removes the Pod object), else 0. */
int kc_podsm_sync(struct kc_pod_sm *sm, json_t *pod, const struct kc_podsm_env *env, int64_t *wake_ms);
/* Tears everything down in the runtime (the pod object is gone). */
void kc_podsm_teardown(struct kc_pod_sm *sm, const struct kc_podsm_env *env);
/* Renders status (new reference). pod supplies PodScheduled and qosClass inputs. */
json_t *kc_podsm_status(struct kc_pod_sm *sm, json_t *pod, const struct kc_podsm_env *env);

#endif
