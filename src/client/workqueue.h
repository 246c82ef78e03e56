/* workqueue.h — a rate-limited, de-duplicating work queue of string keys, as client-go's.
 *
 * Properties (the ones controllers rely on):
 *  - a key queued several times before a worker takes it is processed once;
 *  - a key is never processed by two workers at once: if it is added while
 *    being processed, it is queued again after kc_wq_done;
 *  - kc_wq_add_rate_limited re-queues with per-key exponential backoff
 *    (base_ms doubling up to max_ms; upstream 5 ms → 1000 s), kc_wq_forget
 *    resets it; kc_wq_add_after delays a key;
 *  - kc_wq_get blocks until a key is available or the queue shuts down
 *    (returns NULL). After kc_wq_shutdown every kc_wq_get returns NULL at
 *    once (keys still queued are dropped) and adds are ignored; call
 *    kc_wq_free only after the workers have returned;
 *  - every key from kc_wq_get must be passed to kc_wq_done (also on error,
 *    after kc_wq_add_rate_limited), or it is never handed out again;
 *  - a kc_wq_add_after for a key that already waits keeps the earlier time.
 * Metrics hooks (depth, adds, queue and work durations) are kept in
 * struct kc_wq_stats for /metrics (workqueue_* families).
 */
#ifndef KC_CLIENT_WORKQUEUE_H
#define KC_CLIENT_WORKQUEUE_H

#include <stdint.h>

struct kc_wq;

struct kc_wq_stats {
    uint64_t adds, retries;
    int depth;
    double queue_seconds_sum, work_seconds_sum; /* totals, for averages */
    uint64_t processed;
};

struct kc_wq *kc_wq_new(const char *name, int base_ms, int max_ms);
void kc_wq_free(struct kc_wq *q);
const char *kc_wq_name(const struct kc_wq *q);
void kc_wq_add(struct kc_wq *q, const char *key);
void kc_wq_add_after(struct kc_wq *q, const char *key, int delay_ms);
void kc_wq_add_rate_limited(struct kc_wq *q, const char *key);
void kc_wq_forget(struct kc_wq *q, const char *key);
int kc_wq_num_requeues(struct kc_wq *q, const char *key);
/* Returns a key the caller owns (free()), or NULL after shutdown. */
char *kc_wq_get(struct kc_wq *q);
void kc_wq_done(struct kc_wq *q, const char *key);
void kc_wq_shutdown(struct kc_wq *q);
int kc_wq_len(struct kc_wq *q);
void kc_wq_stats(struct kc_wq *q, struct kc_wq_stats *out);

#endif
