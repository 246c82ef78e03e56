/* apimetrics.c — the API server's Prometheus metrics, with upstream's names, labels and buckets:
 * apiserver_request_duration_seconds, apiserver_request_total, apiserver_current_inflight_requests,
 * apiserver_longrunning_requests, apiserver_storage_objects, etcd_request_duration_seconds (our store's
 * operations, named as upstream names them whatever the backend, as kine does).
 * Families are created once; recording is lock-free (util/metrics.h). */
#include "apiserver/internal.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "util/metrics.h"

static struct kc_family *f_dur, *f_total, *f_inflight, *f_longrunning, *f_objects, *f_store;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
    struct kc_registry *r = kc_registry_default();
    static const char *req_labels[] = {"verb", "dry_run", "group", "version", "resource", "subresource", "scope",
                                       "component", NULL};
    static const char *tot_labels[] = {"code", "verb", "dry_run", "group", "version", "resource", "subresource",
                                       "scope", "component", NULL};
    static const char *lr_labels[] = {"verb", "group", "version", "resource", "subresource", "scope", "component",
                                      NULL};
    f_dur = kc_family_new(r, KC_HISTOGRAM, "apiserver_request_duration_seconds",
                          "Response latency distribution in seconds for each verb, dry run value, group, version, "
                          "resource, subresource, scope and component.",
                          req_labels, kc_apiserver_buckets, kc_apiserver_nbuckets);
    f_total = kc_family_new(r, KC_COUNTER, "apiserver_request_total",
                            "Counter of apiserver requests broken out for each verb, dry run value, group, version, "
                            "resource, scope, component, and HTTP response code.",
                            tot_labels, NULL, 0);
    static const char *kind_labels[] = {"request_kind", NULL};
    f_inflight = kc_family_new(r, KC_GAUGE, "apiserver_current_inflight_requests",
                               "Maximal number of currently used inflight request limit of this apiserver per request "
                               "kind in last second.",
                               kind_labels, NULL, 0);
    f_longrunning = kc_family_new(r, KC_GAUGE, "apiserver_longrunning_requests",
                                  "Gauge of all active long-running apiserver requests broken out by verb, group, "
                                  "version, resource, scope and component.",
                                  lr_labels, NULL, 0);
    static const char *res_labels[] = {"resource", NULL};
    f_objects = kc_family_new(r, KC_GAUGE, "apiserver_storage_objects",
                              "Number of stored objects at the time of last check split by kind.", res_labels, NULL, 0);
    static const char *st_labels[] = {"operation", "type", NULL};
    f_store = kc_family_new(r, KC_HISTOGRAM, "etcd_request_duration_seconds",
                            "Storage request latency in seconds for each operation and object type (SQLite or etcd).",
                            st_labels, kc_apiserver_buckets, kc_apiserver_nbuckets);
}

void kc_apimetrics_init(void) { pthread_once(&once, init); }

void kc_apimetrics_request(const struct kc_req_info *ri, int code, double seconds)
{
    kc_apimetrics_init();
    char c[8];
    snprintf(c, sizeof c, "%d", code);
    const char *dry = ri->dry_run ? "All" : "";
    kc_metric_observe(f_dur, seconds, ri->verb, dry, ri->group, ri->version, ri->resource, ri->subresource,
                      ri->scope, "apiserver");
    kc_metric_inc(f_total, 1, c, ri->verb, dry, ri->group, ri->version, ri->resource, ri->subresource, ri->scope,
                  "apiserver");
}

void kc_apimetrics_longrunning(const struct kc_req_info *ri, int delta)
{
    kc_apimetrics_init();
    kc_metric_inc(f_longrunning, delta, ri->verb, ri->group, ri->version, ri->resource, ri->subresource, ri->scope,
                  "apiserver");
}

void kc_apimetrics_store(const char *op, const struct kc_resource *res, double seconds)
{
    kc_apimetrics_init();
    char q[128];
    kc_resource_qname(res, q, sizeof q);
    kc_metric_observe(f_store, seconds, op, q);
}

static void collect(void *ctx)
{
    struct kc_server *srv = ctx;
    kc_metric_set(f_inflight, atomic_load(&srv->inflight), "readOnly");
    kc_metric_set(f_inflight, atomic_load(&srv->inflight_mut), "mutating");
    if (!srv->cache)
        return;
    for (size_t i = 0; i < kc_nresources; i++) {
        const struct kc_resource *r = &kc_resources[i];
        if (!r->storage || r->from_storage)
            continue;
        pthread_mutex_lock(&r->storage->mu);
        size_t n = kc_map_len(&r->storage->objs);
        pthread_mutex_unlock(&r->storage->mu);
        char q[128];
        kc_resource_qname(r, q, sizeof q);
        kc_metric_set(f_objects, (double)n, q);
    }
}

void kc_apimetrics_attach(struct kc_server *srv)
{
    kc_apimetrics_init();
    kc_registry_on_collect(kc_registry_default(), collect, srv);
}

void kc_apimetrics_detach(struct kc_server *srv) { kc_registry_remove_collect(kc_registry_default(), collect, srv); }

void kc_metrics_respond(struct kc_resp *resp)
{
    struct kc_buf b;
    kc_buf_init(&b, KC_BUF_UNLIMITED);
    kc_registry_expose(kc_registry_default(), &b, 1);
    size_t len;
    char *s = kc_buf_steal(&b, &len);
    kc_resp_raw(resp, 200, "text/plain; version=0.0.4; charset=utf-8", s, len);
}
