/* events.c — asynchronous, aggregating event recorder (see events.h).
 *
 * Data: a bounded FIFO of pending events (mutex + condvar) and, owned by the worker thread only, a
 * map from the aggregation key (object uid, type, reason, message, component) to the name, namespace,
 * count and time of the Event object written for it. Entries older than AGG_WINDOW_S start a new
 * Event, as upstream's correlator does after its 10-minute window.
 */
#include "client/events.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/jsonw.h"
#include "util/map.h"
#include "util/timeutil.h"
#include "util/jsonparse.h"

#define QUEUE_MAX 10000
#define TREE_QUEUE_MAX 256 /* pending events kept as trees below this queue length */
#define AGG_WINDOW_S 600
#define AGG_MAX_ENTRIES 4096
/* per-object spam filter: burst of 25, then one event per 10 s (upstream: 25 burst, qps 1/300) */
#define SPAM_BURST 25.0
#define SPAM_REFILL_PER_S 0.1

struct pending {
    struct pending *next;
    char *component;
    json_t *tree;  /* a complete core/v1 Event without metadata.name while the queue is short ... */
    char *event;   /* ... or as compact JSON once it is long: a queue of 10,000 pending events costs ~7 MB
                    * this way, ~50 MB as json trees; a short queue keeps trees, which spares the worker
                    * a parse per event */
    char *ns, *oname;
    char *key;
    char *objkey;
};

struct agg {
    char *name, *ns;
    long long count;
    double first;
};

struct spam {
    double tokens, last;
};

struct kc_recorder {
    struct kc_client *c;
    char component[128], host[256];
    pthread_mutex_t mu;
    pthread_cond_t cond, idle;
    struct pending *head, *tail;
    int len;
    bool busy, stop;
    pthread_t thread;
    struct kc_map agg;  /* worker only */
    struct kc_map spam; /* worker only */
    struct kc_recorder_stats st;
    unsigned seq;
};

static const char *jstr(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static void agg_free(struct agg *a)
{
    if (!a)
        return;
    free(a->name);
    free(a->ns);
    free(a);
}

static void pending_free(struct pending *p)
{
    free(p->component);
    free(p->key);
    free(p->objkey);
    free(p->event);
    json_decref(p->tree);
    free(p->ns);
    free(p->oname);
    free(p);
}

static void bump(struct kc_recorder *r, unsigned long long *counter)
{
    pthread_mutex_lock(&r->mu);
    (*counter)++;
    pthread_mutex_unlock(&r->mu);
}

static bool spam_allow(struct kc_recorder *r, const char *objkey)
{
    double now = kc_mono_now();
    struct spam *s = kc_map_get(&r->spam, objkey);
    if (!s) {
        if (kc_map_len(&r->spam) > AGG_MAX_ENTRIES) {
            void *v;
            for (long i = kc_map_next(&r->spam, 0, NULL, &v); i >= 0; i = kc_map_next(&r->spam, i + 1, NULL, &v))
                free(v);
            kc_map_release(&r->spam);
            kc_map_init(&r->spam);
        }
        s = calloc(1, sizeof *s);
        s->tokens = SPAM_BURST;
        s->last = now;
        kc_map_put(&r->spam, objkey, s, NULL);
    }
    s->tokens += (now - s->last) * SPAM_REFILL_PER_S;
    if (s->tokens > SPAM_BURST)
        s->tokens = SPAM_BURST;
    s->last = now;
    if (s->tokens < 1)
        return false;
    s->tokens -= 1;
    return true;
}

static void write_one(struct kc_recorder *r, struct pending *p)
{
    char path[600], now[40];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    kc_time_rfc3339(ts.tv_sec, now, sizeof now);
    const char *ns = p->ns;
    struct agg *a = kc_map_get(&r->agg, p->key);
    double t = kc_mono_now();
    struct kc_err err = {0};
    if (a && t - a->first < AGG_WINDOW_S) {
        a->count++;
        /* count/lastTimestamp as the core correlator does, and series (seen through events.k8s.io/v1) */
        char micro[48];
        kc_time_rfc3339_micro(&ts, micro, sizeof micro);
        json_t *patch = json_pack("{s:I,s:s,s:{s:I,s:s}}", "count", (json_int_t)a->count, "lastTimestamp", now,
                                  "series", "count", (json_int_t)a->count, "lastObservedTime", micro);
        kc_path(path, sizeof path, "", "v1", "events", a->ns, a->name, NULL);
        int rc = kc_client_patch(r->c, path, "application/merge-patch+json", patch, NULL, &err);
        json_decref(patch);
        if (rc == 0) {
            bump(r, &r->st.aggregated);
            return;
        }
        /* gone (expired, deleted): write a fresh one */
        agg_free(kc_map_del(&r->agg, p->key));
        a = NULL;
    }
    if (!spam_allow(r, p->objkey)) {
        bump(r, &r->st.dropped);
        return;
    }
    char name[400];
    const char *oname = p->oname;
    snprintf(name, sizeof name, "%.200s.%" PRIx64, oname && *oname ? oname : "event",
             (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + (r->seq++ % 1000));
    json_t *ev = p->tree ? p->tree : kc_json_loads(p->event, 0, NULL);
    p->tree = NULL;
    if (!ev) {
        bump(r, &r->st.failed);
        return;
    }
    json_object_set_new(json_object_get(ev, "metadata"), "name", json_string(name));
    kc_path(path, sizeof path, "", "v1", "events", ns, NULL, NULL);
    int crc = kc_client_create(r->c, path, ev, NULL, &err);
    json_decref(ev);
    if (crc == 0) {
        bump(r, &r->st.created);
        if (kc_map_len(&r->agg) > AGG_MAX_ENTRIES) {
            void *v;
            for (long i = kc_map_next(&r->agg, 0, NULL, &v); i >= 0; i = kc_map_next(&r->agg, i + 1, NULL, &v))
                agg_free(v);
            kc_map_release(&r->agg);
            kc_map_init(&r->agg);
        }
        a = calloc(1, sizeof *a);
        a->name = strdup(name);
        a->ns = strdup(ns ? ns : "default");
        a->count = 1;
        a->first = t;
        agg_free(kc_map_put(&r->agg, p->key, a, NULL));
    } else {
        bump(r, &r->st.failed);
    }
}

static void *worker(void *arg)
{
    pthread_setname_np(pthread_self(), "kc-events");
    struct kc_recorder *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->head && !r->stop)
            pthread_cond_wait(&r->cond, &r->mu);
        if (!r->head && r->stop)
            break;
        struct pending *p = r->head;
        r->head = p->next;
        if (!r->head)
            r->tail = NULL;
        r->len--;
        r->busy = true;
        pthread_mutex_unlock(&r->mu);
        write_one(r, p);
        pending_free(p);
        pthread_mutex_lock(&r->mu);
        r->busy = false;
        if (!r->head)
            pthread_cond_broadcast(&r->idle);
    }
    pthread_cond_broadcast(&r->idle);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

struct kc_recorder *kc_recorder_new(struct kc_client *c, const char *component, const char *host)
{
    struct kc_recorder *r = calloc(1, sizeof *r);
    r->c = c;
    snprintf(r->component, sizeof r->component, "%s", component ? component : "kubec");
    snprintf(r->host, sizeof r->host, "%s", host ? host : "");
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cond, NULL);
    pthread_cond_init(&r->idle, NULL);
    kc_map_init(&r->agg);
    kc_map_init(&r->spam);
    pthread_create(&r->thread, NULL, worker, r);
    return r;
}

void kc_recorder_flush(struct kc_recorder *r)
{
    pthread_mutex_lock(&r->mu);
    while ((r->head || r->busy) && !r->stop)
        pthread_cond_wait(&r->idle, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

void kc_recorder_free(struct kc_recorder *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    while (r->head) {
        struct pending *p = r->head;
        r->head = p->next;
        pending_free(p);
    }
    void *v;
    for (long i = kc_map_next(&r->agg, 0, NULL, &v); i >= 0; i = kc_map_next(&r->agg, i + 1, NULL, &v))
        agg_free(v);
    kc_map_release(&r->agg);
    for (long i = kc_map_next(&r->spam, 0, NULL, &v); i >= 0; i = kc_map_next(&r->spam, i + 1, NULL, &v))
        free(v);
    kc_map_release(&r->spam);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cond);
    pthread_cond_destroy(&r->idle);
    free(r);
}

static void vevent(struct kc_recorder *r, const char *component, json_t *obj, const char *type, const char *reason,
                   const char *fmt, va_list ap)
{
    char msg[1024], now[40];
    vsnprintf(msg, sizeof msg, fmt, ap);
    json_t *meta = json_object_get(obj, "metadata");
    const char *oname = jstr(meta, "name") ? jstr(meta, "name") : "";
    const char *ns = jstr(meta, "namespace") && *jstr(meta, "namespace") ? jstr(meta, "namespace") : "default";
    const char *uid = jstr(meta, "uid") ? jstr(meta, "uid") : "";
    kc_time_rfc3339(time(NULL), now, sizeof now);
    json_t *ev = json_pack("{s:s,s:s,s:{s:s},s:{s:s,s:s,s:s,s:s,s:s,s:s},s:s,s:s,s:{s:s},s:s,s:s,s:i,s:s,s:s,s:s}",
                           "apiVersion", "v1", "kind", "Event", "metadata", "namespace", ns, "involvedObject",
                           "apiVersion", jstr(obj, "apiVersion") ? jstr(obj, "apiVersion") : "", "kind",
                           jstr(obj, "kind") ? jstr(obj, "kind") : "", "namespace", ns, "name", oname, "uid", uid,
                           "resourceVersion", jstr(meta, "resourceVersion") ? jstr(meta, "resourceVersion") : "",
                           "reason", reason, "message", msg, "source", "component", component, "firstTimestamp", now,
                           "lastTimestamp", now, "count", 1, "type", type, "reportingComponent", component,
                           "reportingInstance", r->host[0] ? r->host : component);
    if (!ev)
        return;
    if (r->host[0])
        json_object_set_new(json_object_get(ev, "source"), "host", json_string(r->host));
    /* cluster-scoped objects (Nodes) have their events in "default", with no involvedObject.namespace */
    if (!jstr(meta, "namespace"))
        json_object_del(json_object_get(ev, "involvedObject"), "namespace");
    struct pending *p = calloc(1, sizeof *p);
    if (!p) {
        json_decref(ev);
        return;
    }
    p->component = strdup(component);
    p->tree = ev; /* serialised below if the queue is long */
    p->ns = strdup(ns);
    p->oname = strdup(oname);
    size_t kl = strlen(uid) + strlen(oname) + strlen(type) + strlen(reason) + strlen(msg) + strlen(component) + 8;
    p->key = malloc(kl);
    snprintf(p->key, kl, "%s/%s\x1f%s\x1f%s\x1f%s\x1f%s", uid, oname, type, reason, msg, component);
    size_t ol = strlen(uid) + strlen(oname) + strlen(component) + 4;
    p->objkey = malloc(ol);
    snprintf(p->objkey, ol, "%s/%s/%s", component, uid, oname);
    pthread_mutex_lock(&r->mu);
    if (r->len >= QUEUE_MAX || r->stop) {
        r->st.dropped++;
        pthread_mutex_unlock(&r->mu);
        pending_free(p);
        return;
    }
    if (r->len >= TREE_QUEUE_MAX) { /* only while the worker is behind */
        p->event = kc_json_dumps(p->tree, NULL);
        json_decref(p->tree);
        p->tree = NULL;
    }
    if (r->tail)
        r->tail->next = p;
    else
        r->head = p;
    r->tail = p;
    r->len++;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

void kc_recorder_event(struct kc_recorder *r, json_t *obj, const char *type, const char *reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vevent(r, r->component, obj, type, reason, fmt, ap);
    va_end(ap);
}

void kc_recorder_eventc(struct kc_recorder *r, const char *component, json_t *obj, const char *type,
                        const char *reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vevent(r, component, obj, type, reason, fmt, ap);
    va_end(ap);
}

void kc_recorder_stats(struct kc_recorder *r, struct kc_recorder_stats *out)
{
    pthread_mutex_lock(&r->mu);
    *out = r->st;
    pthread_mutex_unlock(&r->mu);
}
