/* events.h — the event recorder: how every component writes core/v1 Events.
 *
 * Asynchronous (as client-go's broadcaster): kc_recorder_event only formats and queues, so hot paths
 * (binding, pod creation, status updates) never wait for an Event write. One worker thread writes them.
 *
 * Aggregated (as client-go's EventCorrelator): an Event identical to a recent one — same involved object,
 * type, reason, message and source — is not created again; the existing object's count and
 * lastTimestamp are patched instead, so a crash-looping pod's BackOff stays ONE object whose count grows.
 * A per-object token bucket (burst 25, one token per 5 minutes... see events.c) drops floods.
 * The queue is bounded; what does not fit is dropped and counted.
 */
#ifndef KC_CLIENT_EVENTS_H
#define KC_CLIENT_EVENTS_H

#include <jansson.h>

#include "client/client.h"

struct kc_recorder;

/* component: source.component and reportingComponent ("deployment-controller", "default-scheduler",
 * "kubelet"); host: source.host (node name for kubelets, may be NULL). */
struct kc_recorder *kc_recorder_new(struct kc_client *c, const char *component, const char *host);
/* Writes what is queued, then stops the worker. */
void kc_recorder_free(struct kc_recorder *r);
/* obj: the involved object (kind, apiVersion, metadata.name/namespace/uid/resourceVersion are read).
 * type: "Normal" or "Warning". The message is formatted from fmt. Never blocks on the API. */
void kc_recorder_event(struct kc_recorder *r, json_t *obj, const char *type, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Like kc_recorder_event with an explicit component (one recorder serving several components). */
void kc_recorder_eventc(struct kc_recorder *r, const char *component, json_t *obj, const char *type,
                        const char *reason, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Blocks until the queue is empty (tests, shutdown). */
void kc_recorder_flush(struct kc_recorder *r);

struct kc_recorder_stats {
    unsigned long long created, aggregated, dropped, failed;
};
void kc_recorder_stats(struct kc_recorder *r, struct kc_recorder_stats *out);

#endif
