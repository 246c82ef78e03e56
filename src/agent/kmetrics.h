/* kmetrics.h — the node agent's Prometheus metrics (internal to src/agent), with upstream kubelet names,
 * labels and buckets (pkg/kubelet/metrics/metrics.go):
 *
 *   kubelet_runtime_operations_total{operation_type}            counter
 *   kubelet_runtime_operations_errors_total{operation_type}     counter
 *   kubelet_runtime_operations_duration_seconds{operation_type} histogram, ExponentialBuckets(.005, 2.5, 14)
 *   kubelet_image_pull_duration_seconds{image_size_in_bytes}    histogram, 1 s … 3600 s; label = size class
 *   kubelet_pod_start_sli_duration_seconds{first_with_network}  histogram, 0.5 s … 3600 s
 *   kubelet_running_pods                                        gauge (pods with a sandbox)
 *   kubelet_running_containers{container_state}                 gauge (created|running|exited|unknown)
 *
 * All live in kc_registry_default(), so `kubec server --sim-nodes` shows them on the API server's /metrics
 * and `kubec agent --metrics-listen` on its own.
 *
 * The runtime metrics come from a wrapper runtime (struct kc_runtime_ops around another): every call is
 * timed, and an asynchronous operation (one that answers wait_ms > 0, "call me again") is timed from its
 * first call to its completion and counted once. Callers need not change.
 */
#ifndef KC_AGENT_KMETRICS_H
#define KC_AGENT_KMETRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/runtime.h"

/* Registers the kubelet families (idempotent, thread-safe). */
void kc_kmetrics_init(void);

/* Wraps inner (with inner_impl); the returned ops and impl time every call. The wrapper's free() frees the inner runtime too.
 * Returns 0 or KC_ENOMEM. */
int kc_rt_metrics_wrap(const struct kc_runtime_ops *inner, void *inner_impl, const struct kc_runtime_ops **ops,
                       void **impl, struct kc_err *err);

/* Upstream's image size classes for the image_size_in_bytes label ("0-10MB", "10MB-100MB", …, "GT100GB"). */
const char *kc_image_size_bucket(int64_t bytes);

/* One pod's start SLI (creation → all containers started, minus image pull time), in seconds. */
void kc_kmetrics_pod_start_sli(double seconds, bool first_with_network);

#endif
