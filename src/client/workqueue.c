/* workqueue.c — the de-duplicating, rate-limited work queue (workqueue.h).
 *
 * Data structures, all under one mutex:
 *  - keys: a hash map key → struct wq_key, one record per key the queue
 *    knows anything about (queued, being processed, failing, or waiting for
 *    a delayed add). A record is freed as soon as none of that holds.
 *  - fifo: a ring of struct wq_key* in arrival order. Invariant: a record is
 *    in the ring exactly when dirty && !processing (as client-go: a key added
 *    while processing is only marked dirty and is pushed by kc_wq_done).
 *  - heap: a binary min-heap of records with a pending delayed add, ordered
 *    by due time. A key waits at most once; an earlier add_after moves it up.
 *
 * Threads: no timer thread. kc_wq_get (and every other call) first moves due
 * entries from the heap to the ring; a waiting kc_wq_get sleeps on a
 * CLOCK_MONOTONIC condition variable until the earliest due time, so delayed
 * keys reach a waiting worker on time. Shutdown broadcasts; after it
 * kc_wq_get returns NULL at once (keys still queued are dropped: controllers
 * stop promptly) and adds are ignored.
 */
#include "client/workqueue.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/map.h"
#include "util/metrics.h"

#define WQ_MAX_KEY 1024 /* longer keys are truncated; object keys are ≤ 317 bytes */

struct wq_key {
    bool dirty, processing;
    int failures;
    long heap_idx; /* -1 = no delayed add pending */
    double due;    /* monotonic seconds of the pending delayed add */
    double queued_at, started_at;
    char key[];
};

struct kc_wq {
    char name[64];
    int base_ms, max_ms;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool shutdown;
    struct kc_map keys;
    struct wq_key **fifo;
    size_t fifo_cap, fifo_head, fifo_len;
    struct wq_key **heap;
    size_t heap_cap, heap_len;
    struct kc_wq_stats st;
    /* Prometheus series of this queue (workqueue_* with name=<queue>), resolved once */
    struct kc_series *m_depth, *m_adds, *m_retries, *m_queue_dur, *m_work_dur;
};

/* Upstream's workqueue metric families (k8s.io/client-go/util/workqueue, component-base/metrics). */
static struct kc_family *f_depth, *f_adds, *f_retries, *f_queue_dur, *f_work_dur;
static pthread_once_t wq_metrics_once = PTHREAD_ONCE_INIT;
static void wq_metrics_init(void)
{
    struct kc_registry *r = kc_registry_default();
    static const char *nm[] = {"name", NULL};
    double b[10];
    size_t nb = kc_buckets_exp(1e-8, 10, 10, b);
    f_depth = kc_family_new(r, KC_GAUGE, "workqueue_depth", "Current depth of workqueue", nm, NULL, 0);
    f_adds = kc_family_new(r, KC_COUNTER, "workqueue_adds_total", "Total number of adds handled by workqueue", nm,
                           NULL, 0);
    f_retries = kc_family_new(r, KC_COUNTER, "workqueue_retries_total", "Total number of retries handled by workqueue",
                              nm, NULL, 0);
    f_queue_dur = kc_family_new(r, KC_HISTOGRAM, "workqueue_queue_duration_seconds",
                                "How long in seconds an item stays in workqueue before being requested.", nm, b, nb);
    f_work_dur = kc_family_new(r, KC_HISTOGRAM, "workqueue_work_duration_seconds",
                               "How long in seconds processing an item from workqueue takes.", nm, b, nb);
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct kc_wq *kc_wq_new(const char *name, int base_ms, int max_ms)
{
    struct kc_wq *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    snprintf(q->name, sizeof q->name, "%s", name ? name : "");
    q->base_ms = base_ms > 0 ? base_ms : 5;
    q->max_ms = max_ms >= q->base_ms ? max_ms : 1000 * 1000;
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cond, &ca);
    pthread_condattr_destroy(&ca);
    kc_map_init(&q->keys);
    pthread_once(&wq_metrics_once, wq_metrics_init);
    const char *v[] = {q->name};
    q->m_depth = kc_series_get(f_depth, v);
    q->m_adds = kc_series_get(f_adds, v);
    q->m_retries = kc_series_get(f_retries, v);
    q->m_queue_dur = kc_series_get(f_queue_dur, v);
    q->m_work_dur = kc_series_get(f_work_dur, v);
    return q;
}

void kc_wq_free(struct kc_wq *q)
{
    if (!q)
        return;
    const char *k;
    void *v;
    for (long i = kc_map_next(&q->keys, 0, &k, &v); i >= 0; i = kc_map_next(&q->keys, i + 1, &k, &v))
        free(v);
    kc_map_release(&q->keys);
    free(q->fifo);
    free(q->heap);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

const char *kc_wq_name(const struct kc_wq *q) { return q->name; }

/* ---------- records ---------- */

static struct wq_key *rec_get(struct kc_wq *q, const char *key, bool create)
{
    struct wq_key *r = kc_map_get(&q->keys, key);
    if (r || !create)
        return r;
    size_t n = strnlen(key, WQ_MAX_KEY);
    r = calloc(1, sizeof *r + n + 1);
    if (!r)
        return NULL;
    memcpy(r->key, key, n);
    r->heap_idx = -1;
    int err = 0;
    kc_map_put(&q->keys, r->key, r, &err);
    if (err) {
        free(r);
        return NULL;
    }
    return r;
}

/* Frees a record nothing refers to any more. */
static void rec_maybe_free(struct kc_wq *q, struct wq_key *r)
{
    if (r->dirty || r->processing || r->failures || r->heap_idx >= 0)
        return;
    kc_map_del(&q->keys, r->key);
    free(r);
}

/* ---------- FIFO ring ---------- */

static int fifo_push(struct kc_wq *q, struct wq_key *r)
{
    if (q->fifo_len == q->fifo_cap) {
        size_t ncap = q->fifo_cap ? q->fifo_cap * 2 : 64;
        struct wq_key **n = malloc(ncap * sizeof *n);
        if (!n)
            return -1;
        for (size_t i = 0; i < q->fifo_len; i++)
            n[i] = q->fifo[(q->fifo_head + i) % q->fifo_cap];
        free(q->fifo);
        q->fifo = n;
        q->fifo_cap = ncap;
        q->fifo_head = 0;
    }
    q->fifo[(q->fifo_head + q->fifo_len) % q->fifo_cap] = r;
    q->fifo_len++;
    return 0;
}

static struct wq_key *fifo_pop(struct kc_wq *q)
{
    if (!q->fifo_len)
        return NULL;
    struct wq_key *r = q->fifo[q->fifo_head];
    q->fifo_head = (q->fifo_head + 1) % q->fifo_cap;
    q->fifo_len--;
    return r;
}

/* ---------- min-heap of delayed adds ---------- */

static void heap_set(struct kc_wq *q, size_t i, struct wq_key *r)
{
    q->heap[i] = r;
    r->heap_idx = (long)i;
}

static void heap_up(struct kc_wq *q, size_t i)
{
    struct wq_key *r = q->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (q->heap[p]->due <= r->due)
            break;
        heap_set(q, i, q->heap[p]);
        i = p;
    }
    heap_set(q, i, r);
}

static void heap_down(struct kc_wq *q, size_t i)
{
    struct wq_key *r = q->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->heap_len)
            break;
        if (c + 1 < q->heap_len && q->heap[c + 1]->due < q->heap[c]->due)
            c++;
        if (q->heap[c]->due >= r->due)
            break;
        heap_set(q, i, q->heap[c]);
        i = c;
    }
    heap_set(q, i, r);
}

static int heap_push(struct kc_wq *q, struct wq_key *r)
{
    if (q->heap_len == q->heap_cap) {
        size_t ncap = q->heap_cap ? q->heap_cap * 2 : 32;
        struct wq_key **n = realloc(q->heap, ncap * sizeof *n);
        if (!n)
            return -1;
        q->heap = n;
        q->heap_cap = ncap;
    }
    heap_set(q, q->heap_len++, r);
    heap_up(q, q->heap_len - 1);
    return 0;
}

static struct wq_key *heap_pop(struct kc_wq *q)
{
    struct wq_key *top = q->heap[0];
    top->heap_idx = -1;
    if (--q->heap_len > 0) {
        heap_set(q, 0, q->heap[q->heap_len]);
        heap_down(q, 0);
    }
    return top;
}

/* ---------- core operations (mutex held) ---------- */

static void add_locked(struct kc_wq *q, const char *key)
{
    if (q->shutdown)
        return;
    struct wq_key *r = rec_get(q, key, true);
    if (!r || r->dirty)
        return; /* already queued (or OOM): processed once */
    q->st.adds++;
    kc_counter_add(q->m_adds, 1);
    kc_gauge_add(q->m_depth, 1);
    r->dirty = true;
    r->queued_at = mono_now();
    if (r->processing)
        return; /* kc_wq_done re-queues it */
    if (fifo_push(q, r)) {
        r->dirty = false;
        rec_maybe_free(q, r);
        return;
    }
    pthread_cond_signal(&q->cond);
}

/* Moves due delayed adds into the FIFO. */
static void promote_due(struct kc_wq *q)
{
    double now = mono_now();
    while (q->heap_len && q->heap[0]->due <= now) {
        struct wq_key *r = heap_pop(q);
        add_locked(q, r->key);
        rec_maybe_free(q, r);
    }
}

static void add_after_locked(struct kc_wq *q, const char *key, int delay_ms)
{
    if (q->shutdown)
        return;
    if (delay_ms <= 0) {
        add_locked(q, key);
        return;
    }
    struct wq_key *r = rec_get(q, key, true);
    if (!r)
        return;
    double due = mono_now() + delay_ms / 1000.0;
    if (r->heap_idx >= 0) {
        if (due < r->due) { /* an earlier request wins, as client-go's waitingForQueue */
            r->due = due;
            heap_up(q, (size_t)r->heap_idx);
            pthread_cond_broadcast(&q->cond);
        }
        return;
    }
    r->due = due;
    if (heap_push(q, r)) {
        rec_maybe_free(q, r);
        return;
    }
    /* waiting getters recompute their wake-up time */
    pthread_cond_broadcast(&q->cond);
}

/* ---------- public API ---------- */

void kc_wq_add(struct kc_wq *q, const char *key)
{
    pthread_mutex_lock(&q->mu);
    promote_due(q);
    add_locked(q, key);
    pthread_mutex_unlock(&q->mu);
}

void kc_wq_add_after(struct kc_wq *q, const char *key, int delay_ms)
{
    pthread_mutex_lock(&q->mu);
    promote_due(q);
    add_after_locked(q, key, delay_ms);
    pthread_mutex_unlock(&q->mu);
}

/* Upstream's ItemExponentialFailureRateLimiter: base * 2^failures, capped. */
static int backoff_ms(const struct kc_wq *q, int failures)
{
    double d = q->base_ms;
    for (int i = 0; i < failures && d < q->max_ms; i++)
        d *= 2;
    return d > q->max_ms ? q->max_ms : (int)d;
}

void kc_wq_add_rate_limited(struct kc_wq *q, const char *key)
{
    pthread_mutex_lock(&q->mu);
    if (!q->shutdown) {
        struct wq_key *r = rec_get(q, key, true);
        if (r) {
            int d = backoff_ms(q, r->failures);
            if (r->failures < 1000000)
                r->failures++;
            q->st.retries++;
            kc_counter_add(q->m_retries, 1);
            add_after_locked(q, key, d);
            rec_maybe_free(q, r);
        }
    }
    pthread_mutex_unlock(&q->mu);
}

void kc_wq_forget(struct kc_wq *q, const char *key)
{
    pthread_mutex_lock(&q->mu);
    struct wq_key *r = rec_get(q, key, false);
    if (r) {
        r->failures = 0;
        rec_maybe_free(q, r);
    }
    pthread_mutex_unlock(&q->mu);
}

int kc_wq_num_requeues(struct kc_wq *q, const char *key)
{
    pthread_mutex_lock(&q->mu);
    struct wq_key *r = rec_get(q, key, false);
    int n = r ? r->failures : 0;
    pthread_mutex_unlock(&q->mu);
    return n;
}

static void wait_for_work(struct kc_wq *q)
{
    if (q->heap_len) {
        double due = q->heap[0]->due;
        struct timespec ts;
        ts.tv_sec = (time_t)due;
        ts.tv_nsec = (long)((due - (double)ts.tv_sec) * 1e9);
        if (ts.tv_nsec >= 1000000000L)
            ts.tv_nsec = 999999999L;
        pthread_cond_timedwait(&q->cond, &q->mu, &ts);
    } else {
        pthread_cond_wait(&q->cond, &q->mu);
    }
}

char *kc_wq_get(struct kc_wq *q)
{
    pthread_mutex_lock(&q->mu);
    for (;;) {
        if (q->shutdown) {
            pthread_mutex_unlock(&q->mu);
            return NULL;
        }
        promote_due(q);
        if (q->fifo_len)
            break;
        wait_for_work(q);
    }
    struct wq_key *r = fifo_pop(q);
    r->dirty = false;
    r->processing = true;
    r->started_at = mono_now();
    q->st.queue_seconds_sum += r->started_at - r->queued_at;
    kc_gauge_add(q->m_depth, -1);
    kc_histogram_observe(q->m_queue_dur, r->started_at - r->queued_at);
    char *key = strdup(r->key);
    pthread_mutex_unlock(&q->mu);
    return key;
}

void kc_wq_done(struct kc_wq *q, const char *key)
{
    pthread_mutex_lock(&q->mu);
    struct wq_key *r = rec_get(q, key, false);
    if (r && r->processing) {
        r->processing = false;
        q->st.processed++;
        q->st.work_seconds_sum += mono_now() - r->started_at;
        kc_histogram_observe(q->m_work_dur, mono_now() - r->started_at);
        if (r->dirty && (q->shutdown || fifo_push(q, r)))
            r->dirty = false; /* dropped: shutting down (or OOM) */
        else if (r->dirty)
            pthread_cond_signal(&q->cond);
        rec_maybe_free(q, r);
    }
    pthread_mutex_unlock(&q->mu);
}

void kc_wq_shutdown(struct kc_wq *q)
{
    pthread_mutex_lock(&q->mu);
    q->shutdown = true;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->mu);
}

int kc_wq_len(struct kc_wq *q)
{
    pthread_mutex_lock(&q->mu);
    promote_due(q);
    int n = (int)q->fifo_len;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void kc_wq_stats(struct kc_wq *q, struct kc_wq_stats *out)
{
    pthread_mutex_lock(&q->mu);
    promote_due(q);
    *out = q->st;
    out->depth = (int)q->fifo_len;
    pthread_mutex_unlock(&q->mu);
}
