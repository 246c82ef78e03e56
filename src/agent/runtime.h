/* runtime.h — the container runtime interface of the node agent (a CRI in miniature).
 *
 * A runtime is a table of function pointers (struct kc_runtime_ops) plus an opaque impl pointer.
 * The agent's pod state machine (podsm.c) is the only caller; `sim` (sim.c) implements it with
 * virtual time and the later `runc` runtime implements it with real processes, unchanged callers.
 *
 * Lifecycle of one pod, in call order:
 *
 *   run_sandbox ─► [ image_present? ─► pull_image ] ─► create_container ─► start_container
 *        ─► container_status (polled) … ─► stop_container ─► remove_container ─► remove_sandbox
 *
 *  - Every operation is idempotent for the same arguments and NEVER blocks for long: an operation
 *    that takes time (an image pull, a slow start) returns 0 with *wait_ms > 0, meaning "in progress,
 *    call me again with the same arguments in about wait_ms"; 0 with *wait_ms == 0 means done.
 *    This keeps a few agent workers enough for thousands of pods.
 *  - A negative KC_E* return is a failure; err->message is the runtime's text, which the agent shows
 *    in the container's waiting message and in the Failed event (as upstream shows the CRI error).
 *  - Containers are identified by the id create_container returned ("sim://<hex>" style URI, shown
 *    as containerID). A restart creates a new container (new id) after removing the old one.
 *  - container_status reports the live state; *next_ms (> 0) asks to be polled again by then
 *    (e.g. when the sim knows the container exits at a given time), 0 = no known change.
 *  - remove_sandbox forgets everything of a pod (its containers too).
 *
 * Thread safety: ops may be called from several agent workers at once, but never for the same pod
 * concurrently (the agent's work queue serialises a pod).
 */
#ifndef KC_AGENT_RUNTIME_H
#define KC_AGENT_RUNTIME_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

#define KC_RT_ID_MAX 96
#define KC_RT_IMAGE_ID_MAX 256

/* What the runtime is told about one container of a pod. pod is the Pod object (read-only; the sim
 * reads annotations such as sim.kubec.io/fail from it). */
struct kc_rt_container {
    json_t *pod;
    const char *pod_uid;
    const char *node;    /* node the pod runs on */
    const char *name;    /* container name */
    const char *image;
    bool init;           /* an init container: runs to completion */
    int attempt;         /* restart count: 0 for the first run */
};

struct kc_rt_image {
    char image_id[KC_RT_IMAGE_ID_MAX]; /* e.g. docker.io/library/nginx@sha256:… */
    int64_t size_bytes;
};

enum kc_rt_cstate { KC_RT_CREATED, KC_RT_RUNNING, KC_RT_EXITED, KC_RT_UNKNOWN };

struct kc_rt_status {
    enum kc_rt_cstate state;
    int exit_code;
    char reason[32];     /* for EXITED: "Completed", "Error", "OOMKilled" */
    char message[256];
    int64_t started_ms, finished_ms; /* wall clock, ms since epoch (0 = unknown) */
    /* Probes (runc): ready -1 = no readiness probe (ready while running), 0 = not ready, 1 = ready;
     * started: false while a startup probe has not yet succeeded. The sim leaves ready 0 / started
     * false with probes_known false, and podsm then ignores both. */
    bool probes_known;
    int ready;
    bool started;
};

struct kc_runtime_ops {
    const char *name; /* "sim", "runc" */
    /* Creates the pod's sandbox (network namespace); writes its IP into ip (≥ 46 bytes). */
    int (*run_sandbox)(void *rt, json_t *pod, const char *node, char *ip, size_t ipn, int *wait_ms,
                       struct kc_err *err);
    int (*remove_sandbox)(void *rt, const char *pod_uid, struct kc_err *err);
    /* Whether c->node already holds c->image (for imagePullPolicy IfNotPresent). */
    bool (*image_present)(void *rt, const struct kc_rt_container *c, struct kc_rt_image *out);
    int (*pull_image)(void *rt, const struct kc_rt_container *c, struct kc_rt_image *out, int *wait_ms,
                      struct kc_err *err);
    int (*create_container)(void *rt, const struct kc_rt_container *c, char *id, size_t idn, int *wait_ms,
                            struct kc_err *err);
    int (*start_container)(void *rt, const char *id, int *wait_ms, struct kc_err *err);
    int (*container_status)(void *rt, const char *id, struct kc_rt_status *out, int *next_ms, struct kc_err *err);
    /* Sends SIGTERM, then SIGKILL after grace_s; done (wait 0) once the container has exited. */
    int (*stop_container)(void *rt, const char *id, int grace_s, int *wait_ms, struct kc_err *err);
    int (*remove_container)(void *rt, const char *id, struct kc_err *err);
    void (*free)(void *rt);
};

/* A clock in wall-clock milliseconds since the epoch; tests inject a fake one. */
typedef int64_t (*kc_clock_fn)(void *ctx);
int64_t kc_clock_real(void *ctx);

/* ---- sim runtime (sim.c) ----
 * Profiles: "fast" (no delays), "realistic" (pull 200-800 ms, create+start 50-200 ms, jitter),
 * "image-pull-fail" (every pull fails), "crashloop" (containers exit 1 after ~1 s).
 * Per-pod annotations: sim.kubec.io/fail=image-pull|crash, sim.kubec.io/start-delay=<duration> (e.g. 2s, 500ms). */
#define KC_SIM_ANN_FAIL "sim.kubec.io/fail"
#define KC_SIM_ANN_START_DELAY "sim.kubec.io/start-delay"

/* Returns 0 and the ops/impl pair, or KC_EINVAL for an unknown profile. clock may be NULL (real time). */
int kc_sim_runtime_new(const char *profile, kc_clock_fn clock, void *clock_ctx, const struct kc_runtime_ops **ops,
                       void **impl, struct kc_err *err);
/* The index of a sim node for pod IPs 10.42.<index>.<n>; the agent registers its nodes with it. */
void kc_sim_set_node_index(void *impl, const char *node, int index);

/* ---- runc runtime (runc.c and runc_*.c; docs/runtime.md) ----
 * Real containers: OCI bundles run by `runc --root <data_dir>/runc`, one network namespace per pod
 * wired by the CNI bridge + host-local plugins, probes, rotating log files. The agent process becomes
 * a child subreaper (prctl) so that container processes are its children and exit codes are exact. */
#include "agent/image.h"

struct kc_runc_opts {
    const char *data_dir;       /* required; created if missing */
    const char *runc_path;      /* default "runc" (PATH) */
    const char *cni_bin_dir;    /* default /usr/lib/cni */
    const char *pod_cidr;       /* default 10.88.0.0/16 */
    const char *bridge;         /* default kubec0 */
    const char *host_ip;        /* pod IP of hostNetwork pods (default 127.0.0.1) */
    int64_t log_max_bytes;      /* rotate a container log above this (default 10 MiB); one old file kept */
    /* Images: pull (blocking, called from a thread of the runtime) and lookup. pod may carry
     * imagePullSecrets; the callee resolves them. Both required. */
    int (*image_pull)(void *ctx, const char *ref, json_t *pod, bool force, struct kc_image_info *out,
                      struct kc_err *err);
    bool (*image_present)(void *ctx, const char *ref, struct kc_image_info *out);
    void *image_ctx;
    /* Object lookup for env valueFrom (plural "secrets" / "configmaps"); new reference or NULL. May be NULL. */
    json_t *(*get_object)(void *ctx, const char *plural, const char *ns, const char *name);
    void *get_ctx;
};

/* Checks that runc can run containers here (root, runc binary, cgroups); false + reason if not. */
bool kc_runc_usable(const char *runc_path, char *why, size_t n);
int kc_runc_runtime_new(const struct kc_runc_opts *o, const struct kc_runtime_ops **ops, void **impl,
                        struct kc_err *err);

/* Container logs (served by the agent's HTTPS API, logsrv.c). */
struct kc_log_req {
    const char *pod_uid, *container;
    bool previous, follow, timestamps;
    int64_t tail_lines;         /* -1 = all */
    int64_t limit_bytes;        /* -1 = no limit */
};
/* Writes the log (messages only, or "timestamp message" with timestamps) through write_fn; with follow
 * it keeps writing until the container run ends or write_fn returns non-zero.
 * KC_ENOTFOUND if the container never ran here (or has no previous run, for previous). */
int kc_runc_read_log(void *impl, const struct kc_log_req *q, int (*write_fn)(void *ctx, const char *p, size_t n),
                     void *ctx, struct kc_err *err);

#endif
