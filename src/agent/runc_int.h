/* runc_int.h — internals shared by the runc runtime's files (runc.c, runc_bundle.c, runc_cni.c,
 * runc_probe.c, runc_logs.c, runc_proc.c). Not a public interface: the agent sees runtime.h only.
 *
 * Layout under the data dir D:
 *   D/runc/                         runc --root (runc's own state)
 *   D/bundles/<ctr id>/config.json  OCI bundle; rootfs/ is an overlay (upper/, work/ beside it) or a copy
 *   D/pods/<pod uid>/<ctr>/<n>.log  container output, restart n (CRI format, see runc_logs.c)
 *   D/cni/                          host-local IPAM state
 *   /run/netns/kubec-<pod uid>      the pod's network namespace (ip netns)
 *   /sys/fs/cgroup/<ctl>/kubec/pod<uid>/<ctr id>  (v1) or /sys/fs/cgroup/kubec/pod<uid>/<ctr id> (v2)
 */
#ifndef KC_AGENT_RUNC_INT_H
#define KC_AGENT_RUNC_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/runtime.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/map.h"

#define RUNC_PATH_MAX 1024
#define RUNC_CMD_TIMEOUT_MS 15000

/* ---- child processes (runc_proc.c) ---- */
struct kc_proc {
    const char *const *argv;  /* argv[0] is a path or a name looked up in PATH */
    const char *path;         /* if set, the file executed instead of argv[0] (argv[0] stays the name shown) */
    const char *const *env;   /* extra "K=V" entries added to the environment (NULL-terminated), may be NULL */
    const char *in;           /* stdin data (NULL: /dev/null) */
    int out_fd, err_fd;       /* >= 0: give the child these as stdout/stderr instead of capturing */
    int timeout_ms;           /* killed (SIGKILL) after this; 0 = RUNC_CMD_TIMEOUT_MS */
    size_t out_max;           /* captured stdout/stderr limit each (0 = 64 KiB) */
};
/* Runs to completion. *status: exit code, or 128+signal; out/errout (may be NULL) get captured text
 * (NUL-terminated, truncated at out_max). Returns 0 if it ran (whatever the status), KC_EIO if it
 * could not start or timed out. */
int kc_proc_run(const struct kc_proc *p, int *status, char **out, char **errout, struct kc_err *err);

/* ---- one container ---- */
struct rc_ctr {
    char id[80];              /* runc container id */
    char pod_uid[64], name[64];
    int attempt;
    bool init;
    char bundle[RUNC_PATH_MAX];
    bool mounted;             /* rootfs overlay mounted */
    pid_t pid;                /* container init (our child: we are a subreaper) */
    bool created, started, exited;
    int exit_code;
    char reason[32];
    int64_t started_ms, finished_ms;
    int64_t stop_sent_ms, kill_sent_ms; /* SIGTERM / SIGKILL sent at */
    /* probes (runc_probe.c) */
    json_t *cspec;            /* the container's spec (owned copy): probes, ports */
    json_t *probe[3];         /* startup, readiness, liveness specs (borrowed from cspec) or NULL */
    int64_t grace_s;          /* for a liveness kill */
    int64_t live_kill_ms;     /* liveness failed: SIGKILL at this time if still running */
    char pod_ip[48];
    int ready;                /* -1 no readiness probe; 0/1 */
    bool startup_done;
    int64_t next_probe_ms[3];
    int succ[3], fail[3];
    bool probing;             /* a probe of this container is running (probe thread) */
    char liveness_msg[256];   /* why liveness killed it */
};

struct rc_sandbox {
    char uid[64], ns[128], name[256];
    char ip[48];
    bool host_network;
    bool netns, cni;
    char netns_name[96];
    char cni_id[96];          /* CNI_CONTAINERID of its ADD: the uid, or the pool name it was made under */
};

struct rc_pull {              /* a pull running in its own thread */
    char key[600];
    bool done;
    int rc;
    struct kc_err err;
    struct kc_image_info info;
    json_t *auths;
    char ref[512];
    bool force;
    struct rc *owner;
};

struct rc_logs;
struct rc_netpool;

struct rc {
    struct kc_runc_opts o;
    char dir[RUNC_PATH_MAX], runc_root[RUNC_PATH_MAX], runc[256], cni_bin[256], cidr[64], bridge[32];
    bool cgroup_v2;
    bool overlay_ok;
    atomic_int starting; /* `runc run`s under way: the netns pool refills only when none is */
    int runc_fd;         /* sealed memfd copy of the runc binary, -1 if none (runc.c, sealed_runc) */
    char runc_exe[32];   /* "/proc/self/fd/<runc_fd>": kept as a string for the spawn (rc_runc_exe) */
    pthread_mutex_t mu;
    struct kc_map ctrs;       /* id → struct rc_ctr */
    struct kc_map sandboxes;  /* uid → struct rc_sandbox */
    struct kc_map pulls;      /* "uid|image" → struct rc_pull */
    struct kc_map images;     /* image ref → struct kc_image_info (json config owned) */
    struct rc_logs *logs;
    struct rc_netpool *pool;  /* pre-wired network namespaces (runc_cni.c) */
    pthread_t probe_thr;
    bool probe_started;
    pthread_cond_t cv;
    bool stop;
};

/* ---- bundle (runc_bundle.c) ---- */
/* The OCI config for one container. ctx supplies env lookups (secrets/configmaps). */
int rc_bundle_config(struct rc *r, const struct kc_rt_container *c, const struct kc_image_info *img,
                     const struct rc_sandbox *sb, const char *ctr_id, json_t **out, struct kc_err *err);
/* The container's spec from the pod (borrowed), or NULL. */
json_t *rc_container_spec(json_t *pod, const char *name, bool init);

/* The file to execute for runc: its sealed copy when there is one, else NULL (argv[0], r->runc). */
static inline const char *rc_runc_exe(const struct rc *r) { return r->runc_fd >= 0 ? r->runc_exe : NULL; }

/* ---- networking (runc_cni.c) ---- */
int rc_net_setup(struct rc *r, struct rc_sandbox *sb, struct kc_err *err);
void rc_net_teardown(struct rc *r, struct rc_sandbox *sb);
/* A few namespaces made and wired (CNI ADD) ahead of time by a thread of the pool, so that a pod's
 * sandbox is a rename instead of a CNI call on its start path. size 0: no pool. */
int rc_netpool_start(struct rc *r, int size, struct kc_err *err);
void rc_netpool_stop(struct rc *r);
void rc_netpool_kick(struct rc *r); /* a container start ended: a waiting refill may go on */

/* ---- probes (runc_probe.c) ---- */
int rc_probe_start(struct rc *r, struct kc_err *err);
void rc_probe_stop(struct rc *r);
/* Sets up a started container's probes from its spec. Caller holds r->mu. */
void rc_probe_arm(struct rc_ctr *k, json_t *cspec, int64_t now);

/* ---- logs (runc_logs.c) ---- */
int rc_logs_start(struct rc *r, struct kc_err *err);
void rc_logs_stop(struct rc *r);
/* Opens the log of a container run; returns the write end of a pipe for its stdout+stderr. */
int rc_logs_open(struct rc *r, const char *pod_uid, const char *ctr, int attempt, int *wout, int *werr,
                 struct kc_err *err);
/* Whether a log copier still reads this container run (follow ends when not). */
bool rc_logs_live(struct rc *r, const char *pod_uid, const char *ctr, int attempt);

/* ---- helpers (runc.c) ---- */
int64_t rc_now_ms(void);
int rc_mkdirs(const char *path, struct kc_err *err);
void rc_rmtree(const char *path);
int rc_runc(struct rc *r, const char *const *args, int timeout_ms, char **out, struct kc_err *err);

#endif
