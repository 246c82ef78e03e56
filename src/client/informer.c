/* informer.c — list + watch + cache (informer.h), as client-go's reflector
 * and shared informer.
 *
 * Data structures (guarded by one rwlock; readers are workers calling
 * kc_informer_get/list/by_index, the writer is the informer thread):
 *  - cache: kc_map key ("ns/name" or "name") → json_t* (one reference held
 *    by the cache; objects are never modified once cached);
 *  - per index: kc_map value → kc_map (a set: key → non-NULL marker). Index
 *    values of an object are recomputed from the object itself on removal
 *    (index functions are deterministic and objects immutable).
 *
 * Thread: one per informer. It lists (paged, limit=500), reconciles the
 * cache against the list (adds, updates for a changed resourceVersion,
 * deletes for vanished keys), marks the informer synced, then watches from
 * the list's resourceVersion with bookmarks and a random 300–600 s
 * timeoutSeconds (capped at the time to the next resync so that resync runs
 * on this thread too). A watch that ends normally is re-opened from the last
 * resourceVersion seen; 410 Expired re-lists at once; any other failure
 * re-lists after a backoff (1 s doubling to 30 s). Handlers run on this
 * thread, outside the lock, after the cache already shows the change.
 */
#include "client/informer.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/map.h"
#include "util/timeutil.h"

#define MAX_HANDLERS 16
#define MAX_INDEXES 8
#define MAX_INDEX_VALS 32
#define LIST_PAGE 500
#define MAX_URL 4096

struct index {
    char name[64];
    kc_index_fn fn;
    struct kc_map vals; /* value → struct kc_map* (set of keys) */
};

struct kc_informer {
    struct kc_client *c;
    char group[64], version[32], plural[64], ns[64];
    char *label_selector, *field_selector;
    int resync_s;
    char base[512];                  /* collection path */
    char kind[64], api_version[96];  /* for list items that lack them */
    struct kc_informer_handlers h[MAX_HANDLERS];
    int nh;
    struct index idx[MAX_INDEXES];
    int nidx;

    pthread_rwlock_t mu;
    struct kc_map cache;
    char rv[32];

    pthread_t thread;
    bool started;
    atomic_bool stop;
    pthread_mutex_t sync_mu;         /* also the sleep lock for backoffs */
    pthread_cond_t sync_cond;
    bool synced;
    double next_resync;
    unsigned seed;

    /* per-watch state, informer thread only */
    bool relist, watch_failed;
    int events;
};

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *kc_object_key(json_t *obj, char *buf, size_t n)
{
    json_t *m = json_object_get(obj, "metadata");
    const char *ns = json_string_value(json_object_get(m, "namespace"));
    const char *name = json_string_value(json_object_get(m, "name"));
    if (ns && *ns)
        snprintf(buf, n, "%s/%s", ns, name ? name : "");
    else
        snprintf(buf, n, "%s", name ? name : "");
    return buf;
}

static const char *obj_rv(json_t *obj)
{
    return json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
}

/* ---------- construction ---------- */

static void copy_str(char *dst, size_t n, const char *s) { snprintf(dst, n, "%s", s ? s : ""); }

int kc_informer_new(struct kc_client *c, const struct kc_informer_opts *o, struct kc_informer **out,
                    struct kc_err *err)
{
    *out = NULL;
    if (!c || !o || !o->version || !o->plural)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "informer: client, version and plural are required");
    struct kc_informer *inf = calloc(1, sizeof *inf);
    if (!inf)
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    inf->c = c;
    copy_str(inf->group, sizeof inf->group, o->group);
    copy_str(inf->version, sizeof inf->version, o->version);
    copy_str(inf->plural, sizeof inf->plural, o->plural);
    copy_str(inf->ns, sizeof inf->ns, o->ns);
    inf->label_selector = o->label_selector && *o->label_selector ? strdup(o->label_selector) : NULL;
    inf->field_selector = o->field_selector && *o->field_selector ? strdup(o->field_selector) : NULL;
    inf->resync_s = o->resync_s > 0 ? o->resync_s : 0;
    if (!kc_path(inf->base, sizeof inf->base, inf->group, inf->version, inf->plural, inf->ns, NULL, NULL)) {
        free(inf->label_selector);
        free(inf->field_selector);
        free(inf);
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "informer: resource path too long");
    }
    if (*inf->group)
        snprintf(inf->api_version, sizeof inf->api_version, "%s/%s", inf->group, inf->version);
    else
        copy_str(inf->api_version, sizeof inf->api_version, inf->version);
    pthread_rwlock_init(&inf->mu, NULL);
    kc_map_init(&inf->cache);
    pthread_mutex_init(&inf->sync_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&inf->sync_cond, &ca);
    pthread_condattr_destroy(&ca);
    inf->seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)inf;
    *out = inf;
    return 0;
}

void kc_informer_add_handlers(struct kc_informer *inf, const struct kc_informer_handlers *h)
{
    if (inf->nh < MAX_HANDLERS && !inf->started)
        inf->h[inf->nh++] = *h;
}

/* ---------- indexes (write lock held) ---------- */

static void index_put(struct index *ix, json_t *obj, const char *key)
{
    const char *vals[MAX_INDEX_VALS];
    int n = ix->fn(obj, vals, MAX_INDEX_VALS);
    for (int i = 0; i < n && i < MAX_INDEX_VALS; i++) {
        if (!vals[i])
            continue;
        struct kc_map *set = kc_map_get(&ix->vals, vals[i]);
        if (!set) {
            set = calloc(1, sizeof *set);
            if (!set)
                continue;
            kc_map_init(set);
            int e = 0;
            kc_map_put(&ix->vals, vals[i], set, &e);
            if (e) {
                free(set);
                continue;
            }
        }
        int e = 0;
        kc_map_put(set, key, (void *)1, &e);
    }
}

static void index_del(struct index *ix, json_t *obj, const char *key)
{
    const char *vals[MAX_INDEX_VALS];
    int n = ix->fn(obj, vals, MAX_INDEX_VALS);
    for (int i = 0; i < n && i < MAX_INDEX_VALS; i++) {
        if (!vals[i])
            continue;
        struct kc_map *set = kc_map_get(&ix->vals, vals[i]);
        if (!set)
            continue;
        kc_map_del(set, key);
        if (!kc_map_len(set)) {
            kc_map_del(&ix->vals, vals[i]);
            kc_map_release(set);
            free(set);
        }
    }
}

static void index_free(struct index *ix)
{
    const char *k;
    void *v;
    for (long i = kc_map_next(&ix->vals, 0, &k, &v); i >= 0; i = kc_map_next(&ix->vals, i + 1, &k, &v)) {
        kc_map_release(v);
        free(v);
    }
    kc_map_release(&ix->vals);
}

void kc_informer_add_index(struct kc_informer *inf, const char *name, kc_index_fn fn)
{
    pthread_rwlock_wrlock(&inf->mu);
    if (inf->nidx < MAX_INDEXES) {
        struct index *ix = &inf->idx[inf->nidx++];
        copy_str(ix->name, sizeof ix->name, name);
        ix->fn = fn;
        kc_map_init(&ix->vals);
        const char *k;
        void *v;
        for (long i = kc_map_next(&inf->cache, 0, &k, &v); i >= 0; i = kc_map_next(&inf->cache, i + 1, &k, &v))
            index_put(ix, v, k);
    }
    pthread_rwlock_unlock(&inf->mu);
}

/* ---------- cache updates ---------- */

/* Stores obj (a new reference is taken) under key; returns the previous object (the cache's reference) or NULL. */
static json_t *cache_put(struct kc_informer *inf, const char *key, json_t *obj)
{
    pthread_rwlock_wrlock(&inf->mu);
    int e = 0;
    json_t *old = kc_map_put(&inf->cache, key, json_incref(obj), &e);
    if (e) {
        json_decref(obj);
        old = NULL;
    }
    for (int i = 0; i < inf->nidx; i++) {
        if (old)
            index_del(&inf->idx[i], old, key);
        if (!e)
            index_put(&inf->idx[i], obj, key);
    }
    pthread_rwlock_unlock(&inf->mu);
    return old;
}

static json_t *cache_del(struct kc_informer *inf, const char *key)
{
    pthread_rwlock_wrlock(&inf->mu);
    json_t *old = kc_map_del(&inf->cache, key);
    if (old)
        for (int i = 0; i < inf->nidx; i++)
            index_del(&inf->idx[i], old, key);
    pthread_rwlock_unlock(&inf->mu);
    return old;
}

static void set_rv(struct kc_informer *inf, const char *rv)
{
    if (rv && *rv)
        copy_str(inf->rv, sizeof inf->rv, rv);
}

static void notify_add(struct kc_informer *inf, json_t *obj)
{
    for (int i = 0; i < inf->nh; i++)
        if (inf->h[i].on_add)
            inf->h[i].on_add(inf->h[i].ctx, obj);
}

static void notify_update(struct kc_informer *inf, json_t *old, json_t *obj)
{
    for (int i = 0; i < inf->nh; i++)
        if (inf->h[i].on_update)
            inf->h[i].on_update(inf->h[i].ctx, old, obj);
}

static void notify_delete(struct kc_informer *inf, json_t *obj)
{
    for (int i = 0; i < inf->nh; i++)
        if (inf->h[i].on_delete)
            inf->h[i].on_delete(inf->h[i].ctx, obj);
}

static void fill_type(struct kc_informer *inf, json_t *obj)
{
    if (!json_object_get(obj, "kind") && *inf->kind)
        json_object_set_new(obj, "kind", json_string(inf->kind));
    if (!json_object_get(obj, "apiVersion") && *inf->api_version)
        json_object_set_new(obj, "apiVersion", json_string(inf->api_version));
}

/* An added or modified object: cache it, then tell the handlers. */
static void apply_upsert(struct kc_informer *inf, json_t *obj)
{
    char key[512];
    kc_object_key(obj, key, sizeof key);
    fill_type(inf, obj);
    json_t *old = cache_put(inf, key, obj);
    if (old)
        notify_update(inf, old, obj);
    else
        notify_add(inf, obj);
    json_decref(old);
}

static void apply_delete(struct kc_informer *inf, json_t *obj)
{
    char key[512];
    kc_object_key(obj, key, sizeof key);
    fill_type(inf, obj);
    json_t *old = cache_del(inf, key);
    if (old)
        notify_delete(inf, obj);
    json_decref(old);
}

/* ---------- resync ---------- */

static size_t snapshot(struct kc_informer *inf, json_t ***out)
{
    pthread_rwlock_rdlock(&inf->mu);
    size_t n = kc_map_len(&inf->cache), k = 0;
    json_t **v = calloc(n ? n : 1, sizeof *v);
    const char *key;
    void *val;
    if (v)
        for (long i = kc_map_next(&inf->cache, 0, &key, &val); i >= 0 && k < n;
             i = kc_map_next(&inf->cache, i + 1, &key, &val))
            v[k++] = json_incref(val);
    pthread_rwlock_unlock(&inf->mu);
    *out = v;
    return v ? k : 0;
}

static void maybe_resync(struct kc_informer *inf)
{
    if (!inf->resync_s || mono_now() < inf->next_resync)
        return;
    inf->next_resync = mono_now() + inf->resync_s;
    json_t **v;
    size_t n = snapshot(inf, &v);
    for (size_t i = 0; i < n && !atomic_load(&inf->stop); i++)
        notify_update(inf, v[i], v[i]);
    for (size_t i = 0; i < n; i++)
        json_decref(v[i]);
    free(v);
}

/* ---------- list ---------- */

static int append_selectors(struct kc_informer *inf, char *url, size_t n, size_t *off)
{
    const char *names[2] = {"labelSelector", "fieldSelector"};
    const char *vals[2] = {inf->label_selector, inf->field_selector};
    for (int i = 0; i < 2; i++) {
        if (!vals[i])
            continue;
        char esc[1536];
        if (kc_url_escape(vals[i], esc, sizeof esc))
            return KC_ETOOLARGE;
        int k = snprintf(url + *off, n - *off, "&%s=%s", names[i], esc);
        if (k < 0 || (size_t)k >= n - *off)
            return KC_ETOOLARGE;
        *off += (size_t)k;
    }
    return 0;
}

static int build_url(struct kc_informer *inf, char *url, size_t n, const char *fmt_extra, const char *a,
                     const char *b, struct kc_err *err)
{
    int k = snprintf(url, n, "%s?", inf->base);
    size_t off = (size_t)k;
    k = snprintf(url + off, n - off, fmt_extra, a ? a : "", b ? b : "");
    if (k < 0 || (size_t)k >= n - off)
        return kc_err_set(err, KC_ETOOLARGE, 414, "RequestURITooLong", "informer: URL too long");
    off += (size_t)k;
    if (append_selectors(inf, url, n, &off))
        return kc_err_set(err, KC_ETOOLARGE, 414, "RequestURITooLong", "informer: selectors too long");
    return 0;
}

/* Fetches every page into items (a new array); *rv gets the list's resourceVersion. */
static int list_all(struct kc_informer *inf, json_t *items, char *rv, size_t rvn, struct kc_err *err)
{
    char url[MAX_URL], cont[1024] = "", limit[16];
    snprintf(limit, sizeof limit, "%d", LIST_PAGE);
    /* in-process, one unpaged list from the watch cache: its items are the cache's shared trees (as the
     * watch events are), where pages after the first would be built from the store for this list alone */
    bool paged = !kc_client_in_process(inf->c);
    for (bool first = true;; first = false) {
        char esc[1100] = "";
        if (*cont && kc_url_escape(cont, esc, sizeof esc))
            return kc_err_set(err, KC_ETOOLARGE, 500, "InternalError", "informer: continue token too long");
        int rc = *cont ? build_url(inf, url, sizeof url, "limit=%s&continue=%s", limit, esc, err)
                       : build_url(inf, url, sizeof url, paged ? "limit=%s%s" : "%.0s%s", limit, "", err);
        if (rc)
            return rc;
        json_t *l = NULL;
        rc = kc_client_get(inf->c, url, &l, err);
        if (rc)
            return rc;
        const char *lk = json_string_value(json_object_get(l, "kind"));
        size_t lkn = lk ? strlen(lk) : 0;
        if (lkn > 4 && !strcmp(lk + lkn - 4, "List"))
            snprintf(inf->kind, sizeof inf->kind, "%.*s", (int)(lkn - 4), lk);
        const char *av = json_string_value(json_object_get(l, "apiVersion"));
        if (av)
            copy_str(inf->api_version, sizeof inf->api_version, av);
        json_array_extend(items, json_object_get(l, "items"));
        json_t *m = json_object_get(l, "metadata");
        const char *lrv = json_string_value(json_object_get(m, "resourceVersion"));
        const char *c = json_string_value(json_object_get(m, "continue"));
        if (first) /* every page is of the first page's snapshot */
            copy_str(rv, rvn, lrv);
        copy_str(cont, sizeof cont, c);
        json_decref(l);
        if (!*cont)
            return 0;
    }
}

/* Replaces the cache with a fresh list, telling handlers what changed. */
static void reconcile(struct kc_informer *inf, json_t *items)
{
    struct kc_map seen;
    kc_map_init(&seen);
    size_t i;
    json_t *obj;
    json_array_foreach(items, i, obj)
    {
        if (!json_is_object(obj))
            continue;
        /* informers never need managedFields (as upstream's TransformStripManagedFields); the
         * in-process transport's list items and watch events come without them, and may be the server's
         * shared trees, which are only changed in a copy (of the top level and metadata) */
        json_t *meta = json_object_get(obj, "metadata");
        if (json_object_get(meta, "managedFields") || (!json_object_get(obj, "kind") && *inf->kind) ||
            (!json_object_get(obj, "apiVersion") && *inf->api_version)) {
            json_t *own = json_copy(obj), *ownmeta = json_is_object(meta) ? json_copy(meta) : NULL;
            if (!own)
                continue;
            if (ownmeta) {
                json_object_del(ownmeta, "managedFields");
                json_object_set_new(own, "metadata", ownmeta);
            }
            json_array_set_new(items, i, own);
            obj = own;
        }
        fill_type(inf, obj);
        char key[512];
        kc_object_key(obj, key, sizeof key);
        int e = 0;
        kc_map_put(&seen, key, (void *)1, &e);
        pthread_rwlock_rdlock(&inf->mu);
        json_t *old = json_incref(kc_map_get(&inf->cache, key));
        pthread_rwlock_unlock(&inf->mu);
        const char *orv = old ? obj_rv(old) : NULL, *nrv = obj_rv(obj);
        if (!old || !orv || !nrv || strcmp(orv, nrv))
            apply_upsert(inf, obj);
        json_decref(old);
    }
    /* vanished while we were not watching */
    json_t **v;
    size_t n = snapshot(inf, &v);
    for (size_t k = 0; k < n; k++) {
        char key[512];
        kc_object_key(v[k], key, sizeof key);
        if (!kc_map_get(&seen, key))
            apply_delete(inf, v[k]);
        json_decref(v[k]);
    }
    free(v);
    kc_map_release(&seen);
}

/* ---------- watch ---------- */

static int on_event(void *ctx, const char *type, json_t *obj)
{
    struct kc_informer *inf = ctx;
    int ret = 0;
    if (!json_is_object(obj)) {
        inf->watch_failed = true;
        ret = 1;
    } else if (!strcmp(type, "ADDED") || !strcmp(type, "MODIFIED")) {
        json_t *meta = json_object_get(obj, "metadata");
        if (json_object_get(meta, "managedFields")) /* only over HTTP: in-process trees come without */
            json_object_del(meta, "managedFields");
        apply_upsert(inf, obj);
        set_rv(inf, obj_rv(obj));
        inf->events++;
    } else if (!strcmp(type, "DELETED")) {
        apply_delete(inf, obj);
        set_rv(inf, obj_rv(obj));
        inf->events++;
    } else if (!strcmp(type, "BOOKMARK")) {
        set_rv(inf, obj_rv(obj));
    } else if (!strcmp(type, "ERROR")) {
        if (json_integer_value(json_object_get(obj, "code")) == 410)
            inf->relist = true;
        else
            inf->watch_failed = true;
        ret = 1;
    }
    maybe_resync(inf);
    return ret || atomic_load(&inf->stop);
}

static int watch_once(struct kc_informer *inf, struct kc_err *err)
{
    int timeout = 300 + (int)(rand_r(&inf->seed) % 301);
    if (inf->resync_s) {
        int to_resync = (int)(inf->next_resync - mono_now()) + 1;
        if (to_resync < timeout)
            timeout = to_resync < 1 ? 1 : to_resync;
    }
    char url[MAX_URL], ts[16];
    snprintf(ts, sizeof ts, "%d", timeout);
    int rc = build_url(inf, url, sizeof url, "watch=true&allowWatchBookmarks=true&resourceVersion=%s&timeoutSeconds=%s",
                       inf->rv, ts, err);
    if (rc)
        return rc;
    inf->relist = inf->watch_failed = false;
    inf->events = 0;
    int code = 0;
    rc = kc_client_watch_obj(inf->c, url, on_event, inf, &inf->stop, &code, err);
    if (rc == KC_EIO && !code)
        inf->watch_failed = true;
    if (rc == KC_ECOMPACTED || code == 410)
        inf->relist = true;
    return rc;
}

/* ---------- the thread ---------- */

/* Sleeps up to s seconds; returns early when the informer stops. */
static void pause_s(struct kc_informer *inf, double s)
{
    double until = mono_now() + s;
    pthread_mutex_lock(&inf->sync_mu);
    while (!atomic_load(&inf->stop) && mono_now() < until) {
        double left = until - mono_now();
        if (left > 0.2)
            left = 0.2; /* stop is an atomic set without the lock: re-check often */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double t = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + left;
        ts.tv_sec = (time_t)t;
        ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
        pthread_cond_timedwait(&inf->sync_cond, &inf->sync_mu, &ts);
    }
    pthread_mutex_unlock(&inf->sync_mu);
}

static int do_list(struct kc_informer *inf)
{
    struct kc_err err = {0};
    json_t *items = json_array();
    char rv[32] = "";
    int rc = items ? list_all(inf, items, rv, sizeof rv, &err) : KC_ENOMEM;
    if (rc == 0) {
        reconcile(inf, items);
        set_rv(inf, rv);
        pthread_mutex_lock(&inf->sync_mu);
        inf->synced = true;
        pthread_cond_broadcast(&inf->sync_cond);
        pthread_mutex_unlock(&inf->sync_mu);
    }
    json_decref(items);
    return rc;
}

static void *informer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "kc-informer");
    struct kc_informer *inf = arg;
    double backoff = 1;
    if (inf->resync_s)
        inf->next_resync = mono_now() + inf->resync_s;
    while (!atomic_load(&inf->stop)) {
        if (do_list(inf)) {
            pause_s(inf, backoff);
            backoff = backoff * 2 > 30 ? 30 : backoff * 2;
            continue;
        }
        /* watch until something needs a re-list */
        for (;;) {
            struct kc_err err = {0};
            double t0 = mono_now();
            int rc = watch_once(inf, &err);
            if (atomic_load(&inf->stop) || inf->relist)
                break;
            if (rc || inf->watch_failed) {
                pause_s(inf, backoff);
                backoff = backoff * 2 > 30 ? 30 : backoff * 2;
                break;
            }
            backoff = 1;
            maybe_resync(inf);
            /* a stream that ends at once without events (a server going away) must not spin */
            if (mono_now() - t0 < 1 && !inf->events)
                pause_s(inf, 1);
        }
    }
    return NULL;
}

int kc_informer_start(struct kc_informer *inf)
{
    if (inf->started)
        return 0;
    if (atomic_load(&inf->stop))
        return KC_ECLOSED; /* stopped informers are not restarted */
    if (pthread_create(&inf->thread, NULL, informer_main, inf))
        return KC_EIO;
    inf->started = true;
    return 0;
}

int kc_informer_wait_synced(struct kc_informer *inf, int timeout_ms)
{
    struct timespec ts = kc_deadline(CLOCK_MONOTONIC, timeout_ms / 1000.0);
    pthread_mutex_lock(&inf->sync_mu);
    int rc = 0;
    while (!inf->synced && rc == 0)
        rc = pthread_cond_timedwait(&inf->sync_cond, &inf->sync_mu, &ts);
    bool s = inf->synced;
    pthread_mutex_unlock(&inf->sync_mu);
    return s ? 0 : -1;
}

bool kc_informer_synced(struct kc_informer *inf)
{
    pthread_mutex_lock(&inf->sync_mu);
    bool s = inf->synced;
    pthread_mutex_unlock(&inf->sync_mu);
    return s;
}

void kc_informer_stop(struct kc_informer *inf)
{
    if (!inf || !inf->started)
        return;
    atomic_store(&inf->stop, true);
    pthread_mutex_lock(&inf->sync_mu);
    pthread_cond_broadcast(&inf->sync_cond);
    pthread_mutex_unlock(&inf->sync_mu);
    pthread_join(inf->thread, NULL);
    inf->started = false;
}

void kc_informer_free(struct kc_informer *inf)
{
    if (!inf)
        return;
    kc_informer_stop(inf);
    const char *k;
    void *v;
    for (long i = kc_map_next(&inf->cache, 0, &k, &v); i >= 0; i = kc_map_next(&inf->cache, i + 1, &k, &v))
        json_decref(v);
    kc_map_release(&inf->cache);
    for (int i = 0; i < inf->nidx; i++)
        index_free(&inf->idx[i]);
    pthread_rwlock_destroy(&inf->mu);
    pthread_cond_destroy(&inf->sync_cond);
    pthread_mutex_destroy(&inf->sync_mu);
    free(inf->label_selector);
    free(inf->field_selector);
    free(inf);
}

/* ---------- reads ---------- */

json_t *kc_informer_get(struct kc_informer *inf, const char *key)
{
    pthread_rwlock_rdlock(&inf->mu);
    json_t *o = json_incref(kc_map_get(&inf->cache, key));
    pthread_rwlock_unlock(&inf->mu);
    return o;
}

size_t kc_informer_list(struct kc_informer *inf, json_t ***out) { return snapshot(inf, out); }

size_t kc_informer_by_index(struct kc_informer *inf, const char *name, const char *val, json_t ***out)
{
    *out = NULL;
    pthread_rwlock_rdlock(&inf->mu);
    struct kc_map *set = NULL;
    for (int i = 0; i < inf->nidx; i++)
        if (!strcmp(inf->idx[i].name, name))
            set = kc_map_get(&inf->idx[i].vals, val);
    size_t n = set ? kc_map_len(set) : 0, k = 0;
    json_t **v = calloc(n ? n : 1, sizeof *v);
    const char *key;
    void *mark;
    if (v && set)
        for (long i = kc_map_next(set, 0, &key, &mark); i >= 0 && k < n; i = kc_map_next(set, i + 1, &key, &mark)) {
            json_t *o = kc_map_get(&inf->cache, key);
            if (o)
                v[k++] = json_incref(o);
        }
    pthread_rwlock_unlock(&inf->mu);
    *out = v;
    return v ? k : 0;
}
