/* scheduler.h — the scheduler: binds every pending Pod to the best Node.
 *
 * Runs as a thread of `kubec server` (in-process client) or as
 * `kubec scheduler --kubeconfig FILE` (HTTP client); same code both ways.
 * It keeps an in-memory snapshot of nodes plus bound and "assumed" pods
 * (assumed = chosen but binding still in flight), so that binding is
 * asynchronous and scheduling throughput is not bound by API round trips.
 */
#ifndef KC_SCHEDULER_SCHEDULER_H
#define KC_SCHEDULER_SCHEDULER_H

#include "client/client.h"
#include "util/err.h"

struct kc_sched_opts {
    const char *scheduler_name; /* pods with another spec.schedulerName are left alone (default "default-scheduler") */
    int bind_workers;           /* concurrent binding requests (default 16) */
};

struct kc_scheduler;

/* Queue and outcome counters (for /metrics: scheduler_pending_pods, scheduler_schedule_attempts_total). */
struct kc_sched_stats {
    int active, backoff, unschedulable;
    unsigned long long scheduled, unschedulable_attempts, errors, preemption_attempts;
};

int kc_scheduler_start(struct kc_client *c, const struct kc_sched_opts *o, struct kc_scheduler **out,
                       struct kc_err *err);
void kc_scheduler_stop(struct kc_scheduler *s);
void kc_scheduler_stats(struct kc_scheduler *s, struct kc_sched_stats *out);
int kc_scheduler_main(int argc, char **argv);
/* `kubec scheduler-profile` (src/tools/schedprofile.c): reads the profile the scheduler publishes in
 * kube-system/kubec-scheduler-profile-<schedulerName> over a window and prints per-plugin deltas. */
int kc_scheduler_profile_main(int argc, char **argv);

#endif
