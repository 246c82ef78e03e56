/* leaderelect.h — leader election through a coordination.k8s.io/v1 Lease, as client-go's
 * tools/leaderelection with the LeaseLock: several copies of a component (controller manager,
 * scheduler) run against one cluster and only the holder of the Lease acts.
 *
 * The record lives in the Lease's spec: holderIdentity, leaseDurationSeconds, acquireTime,
 * renewTime, leaseTransitions. Every write is an update carrying the resourceVersion that was read
 * (compare-and-swap), so two candidates can never both believe they hold it. Expiry is judged on the
 * candidate's own clock: a lease is held by someone else until leaseDuration has passed since this
 * candidate last SAW the record change (not since the renewTime written in it), so clock skew between
 * machines does not matter.
 *
 * Life cycle: kc_le_new → kc_le_start (an elector thread: acquire, call on_started_leading, renew
 * every retry period; when no renewal succeeded for renew_deadline, call on_stopped_leading and go
 * back to acquiring) → kc_le_free (stops the thread; if leading, calls on_stopped_leading and then
 * releases the Lease so another candidate takes over at once). Callbacks run on the elector thread.
 */
#ifndef KC_CLIENT_LEADERELECT_H
#define KC_CLIENT_LEADERELECT_H

#include <stdbool.h>

#include "client/client.h"

struct kc_le_config {
    const char *lease_namespace;  /* "kube-system" */
    const char *lease_name;       /* "kube-controller-manager", "kube-scheduler" */
    const char *identity;         /* NULL: "<hostname>_<random uuid>" */
    const char *component;        /* event source, e.g. "kube-controller-manager"; NULL: no event */
    double lease_duration_s;      /* 0: 15 */
    double renew_deadline_s;      /* 0: 10; must be < lease_duration_s */
    double retry_period_s;        /* 0: 2; must be < renew_deadline_s */
    /* Called on the elector thread when this candidate became leader; non-zero: could not start
     * (the lease is released and the elector tries again later). */
    int (*on_started_leading)(void *ctx);
    /* Called on the elector thread when leadership is lost or on kc_le_free while leading. Must stop
     * everything started by on_started_leading before returning. */
    void (*on_stopped_leading)(void *ctx);
    void *ctx;
    /* Clock in seconds (wall-clock based, written into acquireTime/renewTime); NULL: real time. */
    double (*now)(void *clock_ctx);
    void *clock_ctx;
};

struct kc_le;

/* Validates cfg and copies it. Does not talk to the API. */
int kc_le_new(struct kc_client *c, const struct kc_le_config *cfg, struct kc_le **out, struct kc_err *err);
/* Starts the elector thread. */
int kc_le_start(struct kc_le *le, struct kc_err *err);
/* Stops the elector (see above) and frees le. NULL is a no-op. */
void kc_le_free(struct kc_le *le);

/* One attempt, as client-go's tryAcquireOrRenew: 1 = this candidate holds the lease now, 0 = another
 * holder's lease is still valid (or a concurrent write won), < 0 = the API failed (err filled).
 * The elector thread calls it; tests call it directly with a fake clock. */
int kc_le_try_acquire_or_renew(struct kc_le *le, struct kc_err *err);
/* Gives the lease up if this candidate holds it: holderIdentity "" and leaseDurationSeconds 1 (as
 * client-go's ReleaseOnCancel). 0 on success or when not holding. */
int kc_le_release(struct kc_le *le, struct kc_err *err);

bool kc_le_is_leader(struct kc_le *le);
const char *kc_le_identity(const struct kc_le *le);
/* Current holder as last observed (copied into buf; "" if none). */
void kc_le_observed_holder(struct kc_le *le, char *buf, size_t n);

/* "<hostname>_<uuid v4>" into buf (at most n bytes). */
void kc_le_default_identity(char *buf, size_t n);

/* ---------- the upstream flags, shared by kubec server, controller-manager and scheduler ---------- */
struct kc_le_flags {
    int enabled;              /* -1: not given (the command picks its default), 0, 1 */
    double lease_duration_s;  /* 0: not given (15 s) */
    double renew_deadline_s;  /* 0: not given (10 s) */
    double retry_period_s;    /* 0: not given (2 s) */
};
#define KC_LE_FLAGS_INIT {.enabled = -1}
/* Recognises argv[*i] as one of --leader-elect[=true|false], --leader-elect-lease-duration D,
 * --leader-elect-renew-deadline D, --leader-elect-retry-period D (D as "15s", "1m", "1.5s"; the value
 * after '=' or as the next argument, then *i is advanced). Returns 1 if it was one (f updated), 0 if
 * not, KC_EINVAL with err filled if its value is malformed. */
int kc_le_parse_flag(int argc, char **argv, int *i, struct kc_le_flags *f, struct kc_err *err);
/* Checks the durations (defaults applied) as kc_le_new would: lease > renew deadline > 1.2 x retry. */
int kc_le_flags_check(const struct kc_le_flags *f, struct kc_err *err);
#define KC_LE_FLAGS_HELP                                                                                           \
    "  --leader-elect[=BOOL]           take part in leader election (Lease in kube-system) before acting\n"     \
    "  --leader-elect-lease-duration D how long followers wait after the last renewal seen (default 15s)\n"     \
    "  --leader-elect-renew-deadline D leader stops acting when it could not renew for this (default 10s)\n"    \
    "  --leader-elect-retry-period D   time between acquire / renew attempts (default 2s)\n"

#endif
