/* cache.c — the watch cache: every current object in memory, plus a ring of
 * recent events per storage prefix, fed by ONE store watch.
 *
 * Data: one struct kc_storage per resource storage prefix, holding a hash
 * map key → struct kc_obj (immutable, reference-counted: the bytes served to
 * clients with metadata.resourceVersion already set, the labels, and the
 * values of the fields usable in field selectors) and a ring of struct
 * kc_wev. Watchers never get per-watcher copies: each watch stream reads
 * the shared ring from its own position (watch.c), so fan-out costs one
 * reference per event, not one copy per watcher.
 *
 * Threads: the store calls ingest_cb on its writer thread; it only copies
 * the raw event into a queue. The cache thread parses each event once,
 * builds the kc_obj, updates the map and ring under the storage's mutex,
 * broadcasts the storage's condition variable (waking its watchers), then
 * advances the global revision and wakes writers waiting in kc_cache_wait
 * (read-your-writes: a handler answers a write only once the cache has it).
 */
#include "apiserver/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/jsonscan.h"
#include "util/timeutil.h"
#include "util/log.h"
#include "util/jsonparse.h"

#define TREE_KEEP 256
#define OFFER_BUCKETS 64

struct raw_ev {
    struct raw_ev *next;
    int type;
    kc_rev_t rev, create_rev, prev_rev;
    char *key, *value;
    size_t len;
    void *done; /* the writer of this event waits for it to be applied (kc_event.done), or NULL */
};

/* Wakes the writers of a batch of events (the store's take_completions) and frees the list: called once
 * the cache's revision covers them, so that the writer's kc_cache_wait does not sleep again. */
static void complete_events(struct raw_ev *list)
{
    while (list) {
        struct raw_ev *e = list;
        list = e->next;
        kc_store_complete(e->done);
        free(e);
    }
}

/* A writer waiting for the cache to reach its revision: each has its own condition variable so
 * that a batch wakes only the writers it satisfies (a broadcast woke all of them every batch). */
struct rev_waiter {
    struct rev_waiter *next;
    kc_rev_t rev;
    pthread_cond_t cond;
};

struct kc_cache {
    struct kc_store *store;
    struct rev_waiter *waiters;
    struct kc_storage *st;
    size_t nst;
    struct kc_watch *w;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;      /* queue non-empty / stop */
    struct raw_ev *head, *tail;
    kc_rev_t rev;
    bool stop, dead;
    bool closing; /* server shutting down: watch streams end, the cache itself keeps ingesting */
    bool relist;  /* the store watch fell behind a compaction (etcd): list again and re-watch */
    /* trees offered by handlers for the writes they have in flight (kc_cache_offer) */
    pthread_mutex_t offer_mu;
    struct kc_offer *offers[OFFER_BUCKETS];
    atomic_int noffers;
};

/* A handler's tree for a value it is writing: when the store's event for that key carries exactly
 * these bytes, the cache builds the version's informer tree from it instead of parsing the bytes
 * (kc_obj_parse was a tenth of the server's CPU in the creation chain). Borrowed pointers: the
 * handler keeps key, bytes and tree alive and unchanged until kc_cache_withdraw. */
struct kc_offer {
    struct kc_offer *next;
    const char *key;
    const char *bytes;
    size_t len;
    json_t *tree;
    unsigned bucket;
};

struct kc_obj *kc_obj_ref(struct kc_obj *o)
{
    if (o)
        atomic_fetch_add(&o->refs, 1);
    return o;
}

void kc_obj_unref(struct kc_obj *o)
{
    if (!o || atomic_fetch_sub(&o->refs, 1) != 1)
        return;
    free(o->key);
    free(o->ns);
    free(o->name);
    free(o->json);
    json_decref(o->labels);
    json_decref(o->tree);
    for (int i = 0; i < o->nfields; i++)
        free(o->fvals[i]);
    free(o);
}

json_t *kc_obj_parse(const struct kc_obj *o) { return kc_json_loadb(o->json, o->len, 0, NULL); }

/* Trees of kc_objs (without metadata.managedFields): set once by the first in-process watcher that needs one, dropped by the cache
 * thread once the version is long superseded (drop_tree). A striped lock makes "take a reference"
 * and "drop" exclusive without a mutex per object. */
#define TREE_LOCKS 64
static pthread_mutex_t tree_mu[TREE_LOCKS] = {[0 ... TREE_LOCKS - 1] = PTHREAD_MUTEX_INITIALIZER};

static pthread_mutex_t *tree_lock(const struct kc_obj *o)
{
    return &tree_mu[((uintptr_t)o >> 6) % TREE_LOCKS];
}

json_t *kc_obj_tree(struct kc_obj *o)
{
    pthread_mutex_t *mu = tree_lock(o);
    pthread_mutex_lock(mu);
    json_t *t = json_incref(o->tree);
    pthread_mutex_unlock(mu);
    if (t)
        return t;
    json_t *fresh = kc_obj_parse(o); /* outside the lock: parsing is the expensive part */
    if (!fresh)
        return NULL;
    /* In-process watchers are informers, which never need managedFields (upstream's controller
     * manager and scheduler strip them from their informers too): a third of a Pod's tree. */
    json_object_del(json_object_get(fresh, "metadata"), "managedFields");
    pthread_mutex_lock(mu);
    if (!o->tree)
        o->tree = json_incref(fresh);
    else { /* another watcher parsed it first: share theirs */
        json_decref(fresh);
        fresh = json_incref(o->tree);
    }
    pthread_mutex_unlock(mu);
    return fresh;
}

json_t *kc_obj_tree_peek(struct kc_obj *o)
{
    pthread_mutex_t *mu = tree_lock(o);
    pthread_mutex_lock(mu);
    json_t *t = json_incref(o->tree);
    pthread_mutex_unlock(mu);
    return t;
}

static void drop_tree(struct kc_obj *o)
{
    if (!o)
        return;
    pthread_mutex_t *mu = tree_lock(o);
    pthread_mutex_lock(mu);
    json_t *t = o->tree;
    o->tree = NULL;
    pthread_mutex_unlock(mu);
    json_decref(t);
}

const char *kc_obj_field(const struct kc_obj *o, const char *name)
{
    if (!strcmp(name, "metadata.name"))
        return o->name;
    if (!strcmp(name, "metadata.namespace"))
        return o->ns;
    for (int i = 0; i < o->nfields; i++)
        if (!strcmp(o->fnames[i], name))
            return o->fvals[i];
    return NULL;
}

void kc_objs_free(struct kc_obj **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kc_obj_unref(v[i]);
    free(v);
}

/* The resource whose kind is stored under st's prefix (the first one registered: for events that is
 * core/v1, whose field names the cache indexes). Set once at start-up. */
static const struct kc_resource *storage_resource(const struct kc_storage *st) { return st->res; }

/* Splits "/registry/<plural>/<ns>/<name>" or "/registry/<plural>/<name>". */
static void key_names(const char *key, const char *prefix, char **ns, char **name)
{
    const char *rest = key + strlen(prefix);
    const char *slash = strchr(rest, '/');
    if (slash) {
        *ns = strndup(rest, (size_t)(slash - rest));
        *name = strdup(slash + 1);
    } else {
        *ns = strdup("");
        *name = strdup(rest);
    }
}

/* The stored path of a field-selector field, and its value when absent. */
static const char *field_path(const char *field) { return !strcmp(field, "source") ? "source.component" : field; }
static const char *field_absent(const char *field)
{
    return !strcmp(field, "spec.unschedulable") ? "false" : !strcmp(field, "status.replicas") ? "0" : "";
}

/* The text of a scalar JSON value: strings decoded (jansson only when escapes are present),
 * numbers and booleans as written. */
static char *scalar_text(const char *s, size_t n)
{
    if (n >= 2 && s[0] == '"') {
        if (!memchr(s, '\\', n))
            return strndup(s + 1, n - 2);
        json_t *v = kc_json_loadb(s, n, JSON_DECODE_ANY, NULL);
        char *r = strdup(json_string_value(v) ? json_string_value(v) : "");
        json_decref(v);
        return r;
    }
    if (n && (s[0] == '{' || s[0] == '['))
        return strdup("");
    return strndup(s, n);
}

/* The spans obj_build needs, found in one pass over each object level (util/jsonscan.h
 * kc_json_keys): the top level (metadata and the parents of the field-selector fields), metadata
 * (resourceVersion, labels) and each parent (spec, status, involvedObject ...). A lookup per value
 * from the object's start scanned a Pod's spec five times: an eighth of a create's instructions. */
#define OBJ_PATHS (KC_MAX_INDEX + 2) /* resourceVersion, labels, the fields */
struct obj_spans {
    struct kc_jkey top[OBJ_PATHS + 1];
    size_t ntop;
    int field_top[OBJ_PATHS]; /* index in top: the field itself, or its parent */
    const char *field_child[OBJ_PATHS];
    int found[OBJ_PATHS];
    size_t off[OBJ_PATHS], len[OBJ_PATHS];
};

static int top_index(struct obj_spans *sp, const char *key, size_t klen)
{
    for (size_t i = 0; i < sp->ntop; i++)
        if (sp->top[i].klen == klen && !memcmp(sp->top[i].key, key, klen))
            return (int)i;
    sp->top[sp->ntop] = (struct kc_jkey){.key = key, .klen = klen};
    return (int)sp->ntop++;
}

/* Fills sp for the n fields (paths of one or two segments; a deeper one is looked up on its own). */
static int find_spans(const char *value, size_t len, const char *const *paths, size_t n, struct obj_spans *sp)
{
    sp->ntop = 0;
    top_index(sp, "metadata", 8);
    for (size_t i = 0; i < n; i++) {
        const char *dot = strchr(paths[i], '.');
        sp->field_top[i] = top_index(sp, paths[i], dot ? (size_t)(dot - paths[i]) : strlen(paths[i]));
        sp->field_child[i] = dot ? dot + 1 : NULL;
        sp->found[i] = 0;
    }
    if (kc_json_keys(value, len, 0, sp->top, sp->ntop) < 0)
        return -1;
    for (size_t t = 0; t < sp->ntop; t++) {
        struct kc_jkey kids[OBJ_PATHS];
        size_t nk = 0, idx[OBJ_PATHS];
        for (size_t i = 0; i < n; i++) {
            if (sp->field_top[i] != (int)t)
                continue;
            if (!sp->field_child[i]) {
                sp->found[i] = sp->top[t].found;
                sp->off[i] = sp->top[t].off;
                sp->len[i] = sp->top[t].len;
            } else if (strchr(sp->field_child[i], '.')) {
                sp->found[i] = kc_json_span(value, len, paths[i], &sp->off[i], &sp->len[i]) == 0;
            } else {
                idx[nk] = i;
                kids[nk++] = (struct kc_jkey){.key = sp->field_child[i], .klen = strlen(sp->field_child[i])};
            }
        }
        if (!nk || !sp->top[t].found || value[sp->top[t].off] != '{' ||
            kc_json_keys(value, len, sp->top[t].off, kids, nk) < 0)
            continue;
        for (size_t k = 0; k < nk; k++) {
            sp->found[idx[k]] = kids[k].found;
            sp->off[idx[k]] = kids[k].off;
            sp->len[idx[k]] = kids[k].len;
        }
    }
    return 0;
}

/* Builds the immutable cached form of a stored value at revision rev, without parsing the whole
 * object: metadata.resourceVersion is spliced into the bytes, labels and the field-selector values
 * are scanned for (util/jsonscan.h). This is the per-write cost of the cache, so it matters. */
static struct kc_obj *obj_build(struct kc_storage *st, const char *key, const char *value, size_t len, kc_rev_t rev,
                                kc_rev_t create_rev)
{
    const struct kc_resource *res = storage_resource(st);
    /* metadata.resourceVersion and metadata.labels first, then the resource's field-selector fields */
    const char *paths[OBJ_PATHS] = {"metadata.resourceVersion", "metadata.labels"};
    size_t n = 2;
    for (size_t i = 0; res && res->field_labels && res->field_labels[i] && n < OBJ_PATHS; i++)
        paths[n++] = field_path(res->field_labels[i]);
    struct obj_spans sp;
    if (find_spans(value, len, paths, n, &sp) || !sp.top[0].found || value[sp.top[0].off] != '{' || sp.found[0])
        return NULL;
    size_t moff = sp.top[0].off;
    struct kc_obj *ob = calloc(1, sizeof *ob);
    if (!ob)
        return NULL;
    atomic_init(&ob->refs, 1);
    ob->rev = rev;
    ob->create_rev = create_rev;
    ob->key = strdup(key);
    key_names(key, st->prefix, &ob->ns, &ob->name);
    char rv[48];
    int rvn = snprintf(rv, sizeof rv, "\"resourceVersion\":\"%lld\"", (long long)rev);
    size_t inner = moff + 1;
    while (inner < len && (value[inner] == ' ' || value[inner] == '\n'))
        inner++;
    bool empty = inner < len && value[inner] == '}';
    ob->json = malloc(len + (size_t)rvn + 2);
    if (ob->json) {
        size_t o = 0;
        memcpy(ob->json, value, moff + 1);
        o = moff + 1;
        memcpy(ob->json + o, rv, (size_t)rvn);
        o += (size_t)rvn;
        if (!empty)
            ob->json[o++] = ',';
        memcpy(ob->json + o, value + moff + 1, len - moff - 1);
        o += len - moff - 1;
        ob->json[o] = 0;
        ob->len = o;
    }
    if (sp.found[1] && value[sp.off[1]] == '{' && sp.len[1] > 2) {
        json_t *l = kc_json_loadb(value + sp.off[1], sp.len[1], 0, NULL);
        if (json_is_object(l) && json_object_size(l))
            ob->labels = l;
        else
            json_decref(l);
    }
    for (size_t i = 2; i < n; i++) {
        const char *f = res->field_labels[i - 2];
        ob->fnames[ob->nfields] = f;
        ob->fvals[ob->nfields] = sp.found[i] ? scalar_text(value + sp.off[i], sp.len[i]) : strdup(field_absent(f));
        ob->nfields++;
    }
    if (!ob->json || !ob->key || !ob->ns || !ob->name) {
        kc_obj_unref(ob);
        return NULL;
    }
    return ob;
}

struct kc_obj *kc_obj_build(struct kc_storage *st, const struct kc_kv *kv)
{
    return obj_build(st, kv->key, kv->value, kv->value_len, kv->mod_rev, kv->create_rev);
}

static struct kc_storage *storage_for_key(struct kc_cache *c, const char *key)
{
    for (size_t i = 0; i < c->nst; i++)
        if (!strncmp(key, c->st[i].prefix, strlen(c->st[i].prefix)))
            return &c->st[i];
    return NULL;
}

static void ring_push(struct kc_storage *st, struct kc_wev ev)
{
    if (st->ring_len == st->ring_cap) {
        struct kc_wev *old = &st->ring[st->ring_head];
        st->ring_start_rev = old->rev;
        kc_obj_unref(old->obj);
        kc_obj_unref(old->prev);
        st->ring_head = (st->ring_head + 1) % st->ring_cap;
        st->ring_len--;
    }
    st->ring[(st->ring_head + st->ring_len) % st->ring_cap] = ev;
    st->ring_len++;
    st->events_total++;
    /* A version superseded TREE_KEEP events ago is no longer current and every in-process watcher
     * that keeps up has passed it: free its parsed tree (informers hold their own reference to the
     * trees they cache; a watcher that lags further parses again). Without this the ring kept a
     * tree per old version: ~17 KiB per Pod version, most of the server's memory at 10,000 Pods. */
    if (st->ring_len > TREE_KEEP) {
        struct kc_wev *old = &st->ring[(st->ring_head + st->ring_len - 1 - TREE_KEEP) % st->ring_cap];
        drop_tree(old->prev);
        if (old->type == KC_WEV_DELETED)
            drop_tree(old->obj);
    }
}

/* The informer tree of a version from the handler's tree of it: what kc_obj_parse of the served bytes
 * gives without managedFields — metadata is a new object (resourceVersion first, as obj_build splices
 * it), every other member is shared with the handler's tree, which nobody changes afterwards. */
static json_t *informer_view(json_t *tree, kc_rev_t rev)
{
    json_t *v = json_object();
    const char *k;
    json_t *x;
    json_object_foreach(tree, k, x) {
        if (strcmp(k, "metadata") || !json_is_object(x)) {
            json_object_set(v, k, x);
            continue;
        }
        json_t *m = json_object();
        char rv[32];
        snprintf(rv, sizeof rv, "%lld", (long long)rev);
        json_object_set_new(m, "resourceVersion", json_string(rv));
        const char *mk;
        json_t *mx;
        json_object_foreach(x, mk, mx) {
            if (strcmp(mk, "managedFields") && strcmp(mk, "resourceVersion"))
                json_object_set(m, mk, mx);
        }
        json_object_set_new(v, k, m);
    }
    return v;
}

static unsigned offer_bucket(const char *key) { return kc_hash_str(key) % OFFER_BUCKETS; }

struct kc_offer *kc_cache_offer(struct kc_cache *c, const char *key, const char *bytes, size_t len, json_t *tree)
{
    struct kc_offer *o = malloc(sizeof *o);
    if (!o)
        return NULL;
    *o = (struct kc_offer){.key = key, .bytes = bytes, .len = len, .tree = tree, .bucket = offer_bucket(key)};
    pthread_mutex_lock(&c->offer_mu);
    o->next = c->offers[o->bucket];
    c->offers[o->bucket] = o;
    atomic_fetch_add(&c->noffers, 1);
    pthread_mutex_unlock(&c->offer_mu);
    return o;
}

/* Unlinks o under offer_mu; true if it was still linked. */
static bool offer_unlink(struct kc_cache *c, struct kc_offer *o)
{
    for (struct kc_offer **pp = &c->offers[o->bucket]; *pp; pp = &(*pp)->next)
        if (*pp == o) {
            *pp = o->next;
            atomic_fetch_sub(&c->noffers, 1);
            return true;
        }
    return false;
}

void kc_cache_withdraw(struct kc_cache *c, struct kc_offer *o)
{
    if (!o)
        return;
    pthread_mutex_lock(&c->offer_mu);
    offer_unlink(c, o);
    pthread_mutex_unlock(&c->offer_mu);
    free(o);
}

/* The informer tree for event e from a matching offer, or NULL. The view is built under offer_mu, so
 * once kc_cache_withdraw returned the cache no longer reads the handler's tree. */
static json_t *take_offer(struct kc_cache *c, const struct raw_ev *e)
{
    if (!atomic_load(&c->noffers))
        return NULL;
    json_t *view = NULL;
    unsigned b = offer_bucket(e->key);
    pthread_mutex_lock(&c->offer_mu);
    for (struct kc_offer *o = c->offers[b]; o; o = o->next)
        if (o->len == e->len && !strcmp(o->key, e->key) && !memcmp(o->bytes, e->value, e->len)) {
            view = informer_view(o->tree, e->rev);
            offer_unlink(c, o);
            break;
        }
    pthread_mutex_unlock(&c->offer_mu);
    return view;
}

/* Applies one event; the cache thread wakes the storage's watchers once per batch (wake_pending), not once
 * per event: a group commit of many pods woke every pod watcher that many times. */
static void apply_event(struct kc_cache *c, struct raw_ev *e)
{
    struct kc_storage *st = storage_for_key(c, e->key);
    if (!st)
        return;
    struct kc_obj *ob = obj_build(st, e->key, e->value, e->len, e->rev, e->create_rev);
    if (!ob) {
        kc_error("cache", "cannot decode stored object %s at revision %lld", e->key, (long long)e->rev);
        return;
    }
    if (e->type != KC_EV_DELETE)
        ob->tree = take_offer(c, e); /* not yet published: no lock needed */
    pthread_mutex_lock(&st->mu);
    struct kc_wev ev = {.rev = e->rev, .obj = ob};
    int err = 0;
    if (e->type == KC_EV_DELETE) {
        ev.type = KC_WEV_DELETED;
        ev.prev = kc_map_del(&st->objs, e->key);
    } else {
        ev.prev = kc_map_put(&st->objs, e->key, kc_obj_ref(ob), &err);
        ev.type = ev.prev ? KC_WEV_MODIFIED : KC_WEV_ADDED;
        if (err)
            kc_obj_unref(ob);
    }
    ring_push(st, ev);
    pthread_mutex_unlock(&st->mu);
    st->wake_pending = true;
}

/* Wakes the watchers of each storage the batch just applied touched. */
static void wake_pending(struct kc_cache *c)
{
    for (size_t j = 0; j < c->nst; j++) {
        if (!c->st[j].wake_pending)
            continue;
        c->st[j].wake_pending = false;
        pthread_mutex_lock(&c->st[j].mu);
        pthread_cond_broadcast(&c->st[j].cond);
        pthread_mutex_unlock(&c->st[j].mu);
    }
}

static int ingest_cb(void *ctx, const struct kc_event *ev);
static void ingest_end(void *ctx, int reason);

/* The cache's one store watch, from rev + 1; it also takes over waking the writers of the events it
 * applies where the store offers that (take_completions). */
static int watch_store(struct kc_cache *c, kc_rev_t rev, struct kc_err *err)
{
    int rc = c->store->ops->watch(c->store, "/registry/", rev + 1, ingest_cb, ingest_end, c, &c->w, err);
    if (rc == 0 && c->store->ops->take_completions)
        c->store->ops->take_completions(c->store, c->w);
    return rc;
}

/* Replaces the cache's state with a fresh list and watches again from there. Watchers positioned
 * before the new list get 410 Expired (ring_start_rev moves), as after upstream's cache re-list,
 * and re-list themselves. Runs on the cache thread with c->mu not held. */
static void relist(struct kc_cache *c)
{
    if (c->w)
        c->store->ops->unwatch(c->store, c->w);
    c->w = NULL;
    for (int attempt = 0; !kc_cache_stopping(c); attempt++) {
        struct kc_kv_list l = {0};
        kc_rev_t rev = 0;
        struct kc_err err = {0};
        if (c->store->ops->list(c->store, "/registry/", 0, NULL, 0, &l, &rev, NULL, &err)) {
            kc_warn("cache", "re-list failed: %s", err.message);
            sleep(attempt < 5 ? 1 : 5);
            continue;
        }
        for (size_t j = 0; j < c->nst; j++) {
            struct kc_storage *st = &c->st[j];
            pthread_mutex_lock(&st->mu);
            void *v;
            for (long i = kc_map_next(&st->objs, 0, NULL, &v); i >= 0; i = kc_map_next(&st->objs, i + 1, NULL, &v))
                kc_obj_unref(v);
            kc_map_release(&st->objs);
            kc_map_init(&st->objs);
            for (size_t k = 0; k < st->ring_len; k++) {
                struct kc_wev *ev = &st->ring[(st->ring_head + k) % st->ring_cap];
                kc_obj_unref(ev->obj);
                kc_obj_unref(ev->prev);
            }
            st->ring_head = st->ring_len = 0;
            st->ring_start_rev = rev;
            pthread_mutex_unlock(&st->mu);
        }
        for (size_t i = 0; i < l.n; i++) {
            struct kc_storage *st = storage_for_key(c, l.items[i].key);
            struct kc_obj *ob = st ? kc_obj_build(st, &l.items[i]) : NULL;
            if (!ob)
                continue;
            pthread_mutex_lock(&st->mu);
            kc_map_put(&st->objs, l.items[i].key, ob, NULL);
            pthread_mutex_unlock(&st->mu);
        }
        kc_kv_list_release(&l);
        for (size_t j = 0; j < c->nst; j++) {
            pthread_mutex_lock(&c->st[j].mu);
            pthread_cond_broadcast(&c->st[j].cond); /* watchers notice they expired */
            pthread_mutex_unlock(&c->st[j].mu);
        }
        pthread_mutex_lock(&c->mu);
        if (rev > c->rev)
            c->rev = rev;
        for (struct rev_waiter *w = c->waiters; w; w = w->next)
            if (w->rev <= c->rev)
                pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&c->mu);
        if (watch_store(c, rev, &err) == 0) {
            kc_info("cache", "re-listed at revision %lld", (long long)rev);
            return;
        }
        kc_warn("cache", "re-watch failed: %s", err.message);
    }
}

static void *cache_thread(void *arg)
{
    pthread_setname_np(pthread_self(), "kc-cache");
    struct kc_cache *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->head && !c->stop && !c->relist)
            pthread_cond_wait(&c->cond, &c->mu);
        if (c->relist && !c->stop) {
            c->relist = false;
            /* events queued from the old watch are superseded by the list */
            for (struct raw_ev *e = c->head; e; e = e->next) {
                free(e->key);
                free(e->value);
            }
            complete_events(c->head); /* committed writes: kc_cache_wait waits for the re-list */
            c->head = c->tail = NULL;
            pthread_mutex_unlock(&c->mu);
            relist(c);
            pthread_mutex_lock(&c->mu);
            continue;
        }
        if (!c->head && c->stop)
            break;
        struct raw_ev *batch = c->head;
        c->head = c->tail = NULL;
        pthread_mutex_unlock(&c->mu);
        kc_rev_t last = 0;
        for (struct raw_ev *e = batch; e; e = e->next) {
            apply_event(c, e);
            last = e->rev;
            free(e->key);
            free(e->value);
            e->key = e->value = NULL;
        }
        wake_pending(c);
        pthread_mutex_lock(&c->mu);
        if (last > c->rev)
            c->rev = last;
        for (struct rev_waiter *w = c->waiters; w; w = w->next)
            if (w->rev <= c->rev)
                pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&c->mu);
        complete_events(batch);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static int ingest_cb(void *ctx, const struct kc_event *ev)
{
    struct kc_cache *c = ctx;
    struct raw_ev *e = calloc(1, sizeof *e);
    if (!e)
        return 0;
    e->type = ev->type;
    e->rev = ev->rev;
    e->create_rev = ev->create_rev;
    e->prev_rev = ev->prev_rev;
    e->key = strdup(ev->key);
    e->value = malloc(ev->value_len + 1);
    if (!e->key || !e->value) {
        free(e->key);
        free(e->value);
        free(e);
        return 0;
    }
    memcpy(e->value, ev->value, ev->value_len);
    e->value[ev->value_len] = 0;
    e->len = ev->value_len;
    pthread_mutex_lock(&c->mu);
    /* the cache thread wakes the writer once it applied the event; never after it stopped (it only
     * stops with an empty queue, and unwatch comes first) */
    if (ev->done && ev->taken && !c->stop) {
        e->done = ev->done;
        *ev->taken = true;
    }
    if (c->tail)
        c->tail->next = e;
    else
        c->head = e;
    c->tail = e;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

static void ingest_end(void *ctx, int reason)
{
    struct kc_cache *c = ctx;
    pthread_mutex_lock(&c->mu);
    if (reason == KC_ECOMPACTED && !c->stop) {
        /* etcd compacted past our watch: the cache thread re-lists and watches again */
        kc_warn("cache", "store watch fell behind a compaction; re-listing");
        c->relist = true;
        pthread_cond_signal(&c->cond);
        pthread_mutex_unlock(&c->mu);
        return;
    }
    kc_error("cache", "store watch ended (%d); the API server can no longer serve fresh reads", reason);
    c->dead = true;
    for (struct rev_waiter *w = c->waiters; w; w = w->next)
        pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&c->mu);
}

static int ring_size_for(const struct kc_resource *r, const char *const *specs, int def)
{
    char q[128];
    kc_resource_qname(r, q, sizeof q);
    for (size_t i = 0; specs && specs[i]; i++) {
        const char *hash = strchr(specs[i], '#');
        if (hash && (size_t)(hash - specs[i]) == strlen(q) && !strncmp(specs[i], q, strlen(q)))
            return atoi(hash + 1) > 0 ? atoi(hash + 1) : def;
    }
    return def;
}

int kc_cache_start(struct kc_store *store, const char *const *size_specs, int default_size, struct kc_cache **out,
                   struct kc_err *err)
{
    struct kc_cache *c = calloc(1, sizeof *c);
    if (!c)
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    c->store = store;
    c->st = calloc(kc_nresources, sizeof *c->st);
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->offer_mu, NULL);
    pthread_cond_init(&c->cond, NULL);
    for (size_t i = 0; i < kc_nresources; i++) {
        struct kc_resource *r = &kc_resources[i];
        struct kc_storage *st = NULL;
        for (size_t j = 0; j < c->nst; j++)
            if (!strcmp(c->st[j].prefix, r->storage_prefix))
                st = &c->st[j];
        if (!st) {
            st = &c->st[c->nst++];
            st->res = r;
            snprintf(st->prefix, sizeof st->prefix, "%s", r->storage_prefix);
            pthread_mutex_init(&st->mu, NULL);
            pthread_cond_init(&st->cond, NULL);
            kc_map_init(&st->objs);
            st->ring_cap = (size_t)ring_size_for(r, size_specs, default_size > 0 ? default_size : 1024);
            st->ring = calloc(st->ring_cap, sizeof *st->ring);
        }
        r->storage = st;
    }
    struct kc_kv_list l = {0};
    kc_rev_t rev = 0;
    int rc = store->ops->list(store, "/registry/", 0, NULL, 0, &l, &rev, NULL, err);
    if (rc) {
        kc_cache_stop(c);
        return rc;
    }
    for (size_t i = 0; i < l.n; i++) {
        struct kc_storage *st = storage_for_key(c, l.items[i].key);
        if (!st)
            continue;
        struct kc_obj *ob =
            obj_build(st, l.items[i].key, l.items[i].value, l.items[i].value_len, l.items[i].mod_rev,
                      l.items[i].create_rev);
        if (ob)
            kc_map_put(&st->objs, l.items[i].key, ob, NULL);
    }
    kc_kv_list_release(&l);
    /* the start-up list freed as much as the cache keeps: hand it back to the system */
    kc_alloc_release();
    for (size_t j = 0; j < c->nst; j++)
        c->st[j].ring_start_rev = rev;
    c->rev = rev;
    pthread_create(&c->thread, NULL, cache_thread, c);
    rc = watch_store(c, rev, err);
    if (rc) {
        kc_cache_stop(c);
        return rc;
    }
    *out = c;
    return 0;
}

void kc_cache_stop(struct kc_cache *c)
{
    if (!c)
        return;
    if (c->w)
        c->store->ops->unwatch(c->store, c->w);
    pthread_mutex_lock(&c->mu);
    bool started = c->thread != 0;
    c->stop = true;
    pthread_cond_broadcast(&c->cond);
    for (struct rev_waiter *w = c->waiters; w; w = w->next)
        pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&c->mu);
    if (started)
        pthread_join(c->thread, NULL);
    for (size_t j = 0; j < c->nst; j++) {
        struct kc_storage *st = &c->st[j];
        void *v;
        for (long i = kc_map_next(&st->objs, 0, NULL, &v); i >= 0; i = kc_map_next(&st->objs, i + 1, NULL, &v))
            kc_obj_unref(v);
        kc_map_release(&st->objs);
        for (size_t k = 0; k < st->ring_len; k++) {
            struct kc_wev *ev = &st->ring[(st->ring_head + k) % st->ring_cap];
            kc_obj_unref(ev->obj);
            kc_obj_unref(ev->prev);
        }
        free(st->ring);
        pthread_mutex_destroy(&st->mu);
        pthread_cond_destroy(&st->cond);
    }
    for (size_t i = 0; i < kc_nresources; i++)
        kc_resources[i].storage = NULL;
    free(c->st);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->offer_mu);
    pthread_cond_destroy(&c->cond);
    free(c);
}

kc_rev_t kc_cache_rev(struct kc_cache *c)
{
    pthread_mutex_lock(&c->mu);
    kc_rev_t r = c->rev;
    pthread_mutex_unlock(&c->mu);
    return r;
}

bool kc_cache_stopping(struct kc_cache *c)
{
    pthread_mutex_lock(&c->mu);
    bool s = c->stop || c->closing;
    pthread_mutex_unlock(&c->mu);
    return s;
}

void kc_cache_wake_all(struct kc_cache *c)
{
    /* Only watch streams end here: writes still in flight keep flowing through the cache until
     * kc_cache_stop, so their handlers are answered promptly and nothing queued is lost. */
    pthread_mutex_lock(&c->mu);
    c->closing = true;
    pthread_mutex_unlock(&c->mu);
    for (size_t j = 0; j < c->nst; j++) {
        pthread_mutex_lock(&c->st[j].mu);
        pthread_cond_broadcast(&c->st[j].cond);
        pthread_mutex_unlock(&c->st[j].mu);
    }
}

int kc_cache_wait(struct kc_cache *c, kc_rev_t rev, int timeout_ms)
{
    struct timespec dl = kc_deadline(CLOCK_REALTIME, timeout_ms / 1000.0);
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    if (c->rev >= rev) {
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    struct rev_waiter w = {.rev = rev, .next = c->waiters};
    pthread_cond_init(&w.cond, NULL);
    c->waiters = &w;
    while (c->rev < rev && !c->dead && !c->stop) {
        if (pthread_cond_timedwait(&w.cond, &c->mu, &dl) == ETIMEDOUT)
            break;
    }
    if (c->rev < rev)
        rc = -1;
    for (struct rev_waiter **pp = &c->waiters; *pp; pp = &(*pp)->next)
        if (*pp == &w) {
            *pp = w.next;
            break;
        }
    pthread_mutex_unlock(&c->mu);
    pthread_cond_destroy(&w.cond);
    return rc;
}

struct kc_obj *kc_cache_get(struct kc_storage *st, const char *key)
{
    pthread_mutex_lock(&st->mu);
    struct kc_obj *o = kc_obj_ref(kc_map_get(&st->objs, key));
    pthread_mutex_unlock(&st->mu);
    return o;
}

static int cmp_obj(const void *a, const void *b)
{
    return strcmp((*(struct kc_obj *const *)a)->key, (*(struct kc_obj *const *)b)->key);
}

int kc_cache_list(struct kc_cache *c, struct kc_storage *st, const char *prefix, struct kc_obj ***out, size_t *n,
                  kc_rev_t *rev)
{
    size_t plen = strlen(prefix);
    pthread_mutex_lock(&st->mu);
    size_t cap = kc_map_len(&st->objs) + 1, k = 0;
    struct kc_obj **v = malloc(cap * sizeof *v);
    if (!v) {
        pthread_mutex_unlock(&st->mu);
        return KC_ENOMEM;
    }
    void *val;
    for (long i = kc_map_next(&st->objs, 0, NULL, &val); i >= 0; i = kc_map_next(&st->objs, i + 1, NULL, &val)) {
        struct kc_obj *o = val;
        if (!strncmp(o->key, prefix, plen))
            v[k++] = kc_obj_ref(o);
    }
    kc_rev_t r = kc_cache_rev(c);
    if (st->ring_len) {
        kc_rev_t last = st->ring[(st->ring_head + st->ring_len - 1) % st->ring_cap].rev;
        if (last > r)
            r = last;
    }
    pthread_mutex_unlock(&st->mu);
    qsort(v, k, sizeof *v, cmp_obj);
    *out = v;
    *n = k;
    *rev = r;
    return 0;
}
