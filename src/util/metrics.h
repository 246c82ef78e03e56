/* metrics.h — Prometheus metrics: counters, gauges and histograms with labels, and the text exposition
 * format (version 0.0.4).
 *
 * Recording is lock-free: a series (one combination of label values) is found once — look-ups take a
 * read lock on the family's series table, creation a write lock — and callers on hot paths keep the
 * returned struct kc_series pointer (series live as long as the registry). Increments are relaxed
 * atomic adds; histogram sums are atomic doubles updated by compare-and-swap. So recording never
 * serializes request threads.
 *
 * Names, labels and buckets follow upstream Kubernetes wherever upstream has the metric
 * (see shared/research/upstream-facts.md).
 */
#ifndef KC_UTIL_METRICS_H
#define KC_UTIL_METRICS_H

#include <stddef.h>

#include "util/buf.h"

enum kc_metric_type { KC_COUNTER, KC_GAUGE, KC_HISTOGRAM };

struct kc_registry;
struct kc_family;
struct kc_series;

struct kc_registry *kc_registry_new(void);
void kc_registry_free(struct kc_registry *r);
/* The process-wide default registry (created on first use). */
struct kc_registry *kc_registry_default(void);

/* labels: NULL-terminated label names. buckets: upper bounds, ascending (histograms only). */
struct kc_family *kc_family_new(struct kc_registry *r, enum kc_metric_type type, const char *name, const char *help,
                                const char *const *labels, const double *buckets, size_t nbuckets);
/* Finds or creates the series for these label values (count = number of label names). */
struct kc_series *kc_series_get(struct kc_family *f, const char *const *values);

void kc_counter_add(struct kc_series *s, double v);
void kc_gauge_set(struct kc_series *s, double v);
void kc_gauge_add(struct kc_series *s, double v);
void kc_histogram_observe(struct kc_series *s, double v);

/* Conveniences for families with labels: values given as arguments (count must match). */
void kc_metric_inc(struct kc_family *f, double v, ...);   /* counter add / gauge add */
void kc_metric_set(struct kc_family *f, double v, ...);   /* gauge set */
void kc_metric_observe(struct kc_family *f, double v, ...);

/* A callback run before every exposition (e.g. to refresh gauges from a component's state). */
void kc_registry_on_collect(struct kc_registry *r, void (*fn)(void *ctx), void *ctx);
void kc_registry_remove_collect(struct kc_registry *r, void (*fn)(void *ctx), void *ctx);

/* Writes the whole registry in the text format, plus process_* metrics when process is non-zero. */
int kc_registry_expose(struct kc_registry *r, struct kc_buf *out, int process);

/* Bucket helpers: exponential (start, factor, count) and the upstream apiserver request buckets. */
size_t kc_buckets_exp(double start, double factor, size_t count, double *out);
extern const double kc_apiserver_buckets[];
extern const size_t kc_apiserver_nbuckets;

#endif
