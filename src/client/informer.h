/* informer.h — list + watch + local cache, as client-go's shared informers.
 *
 * An informer lists a resource (optionally with label/field selectors),
 * then watches from the list's resourceVersion with allowWatchBookmarks,
 * keeping an in-memory cache keyed "namespace/name" (or "name"). On a 410
 * (Expired) or a broken stream it re-lists and reconciles the cache
 * (synthesising deletes for objects that vanished). Every resync_s seconds
 * it calls on_update(old=new) for every cached object, as client-go's resync.
 * Handlers run on the informer's own thread, in event order; they must be
 * quick (typically: enqueue a key into a work queue).
 *
 * Cached objects carry no metadata.managedFields (as upstream's informers with
 * TransformStripManagedFields): controllers never need them, and they are a third of a Pod.
 * Cached objects are immutable json_t values shared by reference: a reader
 * gets a new reference (kc_informer_get) and must not modify it.
 * Secondary indexes: kc_informer_add_index registers a function that maps
 * an object to index values (e.g. owner uid, node name, namespace), queried
 * with kc_informer_by_index.
 *
 * Details controllers rely on (informer.c):
 *  - json_t passed to a handler is borrowed for the duration of the call and
 *    is the cached object itself: never modify it; json_incref what you keep
 *    (or better, keep only the key and re-read the cache from the worker).
 *  - When a handler runs, the cache already shows the change (get returns
 *    the new object; after on_delete, get returns NULL).
 *  - Resync calls on_update with old == obj (the same pointer): handlers
 *    that only care about real changes can compare pointers or
 *    resourceVersions.
 *  - A re-list delivers, for the difference to the cache: on_add for new
 *    keys and on_update for changed resourceVersions (in list order, i.e.
 *    by key), then on_delete (with the last cached object) for vanished
 *    keys. The first list delivers on_add for everything.
 *  - List items get kind/apiVersion filled in, so every object has them.
 *  - kc_informer_wait_synced returns 0 or -1 (timeout).
 *  - kc_informer_free may be called from any thread except a handler; it
 *    returns within ~1-2 s (the watch notices its stop flag within a
 *    second on both transports).
 *  - Index functions run under the informer's write lock: no client calls.
 */
#ifndef KC_CLIENT_INFORMER_H
#define KC_CLIENT_INFORMER_H

#include <jansson.h>
#include <stdbool.h>

#include "client/client.h"

struct kc_informer;

struct kc_informer_handlers {
    void *ctx;
    void (*on_add)(void *ctx, json_t *obj);
    void (*on_update)(void *ctx, json_t *old, json_t *obj);
    void (*on_delete)(void *ctx, json_t *obj);
};

struct kc_informer_opts {
    const char *group, *version, *plural; /* e.g. "apps","v1","deployments"; "" group = core */
    const char *ns;                       /* NULL = all namespaces */
    const char *label_selector, *field_selector; /* may be NULL */
    int resync_s;                         /* 0 = no resync */
};

int kc_informer_new(struct kc_client *c, const struct kc_informer_opts *o, struct kc_informer **out,
                    struct kc_err *err);
/* Adds handlers (before start). Several may be added. */
void kc_informer_add_handlers(struct kc_informer *inf, const struct kc_informer_handlers *h);
/* Index function: writes up to max values into vals (strings it may point into obj), returns count. */
typedef int (*kc_index_fn)(json_t *obj, const char **vals, int max);
void kc_informer_add_index(struct kc_informer *inf, const char *name, kc_index_fn fn);
/* Starts the list+watch thread. */
int kc_informer_start(struct kc_informer *inf);
/* Blocks until the first list has been delivered (or timeout_ms). 0 = synced. */
int kc_informer_wait_synced(struct kc_informer *inf, int timeout_ms);
bool kc_informer_synced(struct kc_informer *inf);
/* Stops the thread (joins): once it returns no handler runs any more; the cache stays readable.
 * Idempotent. Call it for every informer BEFORE freeing what handlers use (work queues, controller
 * state): a running informer may call a handler at any moment. Not from a handler. */
void kc_informer_stop(struct kc_informer *inf);
/* Stops the thread (joins) and frees. */
void kc_informer_free(struct kc_informer *inf);

/* key: "ns/name" or "name". New reference or NULL. */
json_t *kc_informer_get(struct kc_informer *inf, const char *key);
/* All cached objects (new references) into a malloc'd array; caller frees each and the array. */
size_t kc_informer_list(struct kc_informer *inf, json_t ***out);
/* Objects whose index `name` has value `val` (new references). */
size_t kc_informer_by_index(struct kc_informer *inf, const char *name, const char *val, json_t ***out);
/* "ns/name" key of an object (into buf). */
const char *kc_object_key(json_t *obj, char *buf, size_t n);

#endif
