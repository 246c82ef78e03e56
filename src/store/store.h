/* store.h — the storage interface of kubec: the semantics of etcd v3.
 *
 * A store maps keys ("/registry/<plural>/<namespace>/<name>", or
 * "/registry/<plural>/<name>" for cluster-scoped kinds) to values (the
 * object's JSON bytes). Every successful write (create, update, delete)
 * takes the next value of ONE global, strictly increasing revision; a key's
 * mod_rev is the revision of its last write and is what the API server
 * exposes as metadata.resourceVersion. Updates and deletes can be made
 * conditional on mod_rev (compare-and-swap).
 *
 * History: the store keeps every revision since the compacted revision, so
 * it can list "as of" an older revision and replay a watch from any
 * revision > compacted. compact(rev) discards history older than rev.
 *
 * Backends implement struct kc_store_ops (a table of function pointers, as
 * git's ref_storage_be). Lifecycle: open (backend-specific constructor,
 * e.g. kc_store_sqlite_open) → any number of calls from any number of
 * threads → close (waits for in-flight writes, flushes, frees). All
 * operations are thread-safe.
 *
 * Durability: a write that returned 0 is durable (survives kill -9 and,
 * for sqlite, power loss subject to the fsync policy documented in
 * docs/store.md).
 *
 * Ownership: out-structures (struct kc_kv, struct kc_kv_list) are filled
 * with memory the caller owns and frees with kc_kv_release /
 * kc_kv_list_release; they are set only on success. Event structs passed to
 * watch callbacks are owned by the store and valid only during the call.
 */
#ifndef KC_STORE_STORE_H
#define KC_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

typedef int64_t kc_rev_t;

/* Limits every backend enforces (KC_ETOOLARGE past them). Keys must be
 * non-empty and must not contain the bytes 0xF8..0xFF (which never occur in
 * UTF-8), so a prefix's upper bound can always be formed by incrementing its
 * last byte; such keys fail with KC_EINVAL. */
#define KC_STORE_MAX_KEY 4096
#define KC_STORE_MAX_VALUE (16u * 1024u * 1024u)

struct kc_kv {
    char *key;
    char *value;         /* NUL-terminated for convenience; value_len excludes the NUL */
    size_t value_len;
    kc_rev_t create_rev; /* revision that created this key (since its last delete) */
    kc_rev_t mod_rev;    /* revision of the last write */
};

struct kc_kv_list {
    struct kc_kv *items;
    size_t n;
};

void kc_kv_release(struct kc_kv *kv);
void kc_kv_list_release(struct kc_kv_list *l);

enum kc_event_type { KC_EV_PUT = 1, KC_EV_DELETE = 2 };

struct kc_event {
    enum kc_event_type type;
    const char *key;
    const char *value;      /* PUT: the new value. DELETE: the value just before the delete. */
    size_t value_len;
    const char *prev_value; /* PUT over an existing key: its previous value; else NULL */
    size_t prev_len;
    kc_rev_t rev;           /* the revision of this event (= new mod_rev; for DELETE the delete's revision) */
    kc_rev_t create_rev;    /* create revision of the key (PUT: of the new value; DELETE: of the deleted one) */
    kc_rev_t prev_rev;      /* mod_rev of the previous value, 0 if none */
    /* Set only for the watch its owner registered with take_completions, on an event written by a
     * caller of this store that is still waiting for its write to return: the callback may take over
     * that caller's wake-up by setting *taken = true, and must then call kc_store_complete(done)
     * exactly once, later, from any thread. Otherwise the store wakes the caller itself. */
    void *done;
    bool *taken;
};

/* Wakes the writer of an event whose wake-up a watch took over (kc_event.done). */
void kc_store_complete(void *done);

/* Called once per event, in strictly increasing revision order, with no
 * gaps among the events matching the watch's prefix. Runs on a store thread:
 * it must not block and must not call back into the store. Returning
 * non-zero cancels the watch (no further calls). */
typedef int (*kc_watch_cb)(void *ctx, const struct kc_event *ev);

/* Called once when the watch ends for a reason other than kc_store_unwatch
 * (store closing: KC_ECLOSED; backend lost history: KC_ECOMPACTED). May be NULL. */
typedef void (*kc_watch_end_cb)(void *ctx, int reason);

struct kc_store;
struct kc_watch;

struct kc_store_ops {
    const char *name; /* "sqlite", "etcd" — logged at start-up */

    /* Current value of key. KC_ENOTFOUND if absent. */
    int (*get)(struct kc_store *s, const char *key, struct kc_kv *out, struct kc_err *err);

    /* All live keys with the given prefix, sorted by key, as of revision at_rev
     * (0 = current). *list_rev is set to the revision the list reflects
     * (at_rev, or the current revision). KC_ECOMPACTED if at_rev < compacted
     * revision, KC_EFUTURE if at_rev > current revision.
     * start_after: if non-NULL, only keys > start_after (for paging);
     * limit: at most this many items (0 = no limit); *more (if non-NULL) is
     * set to 1 when keys remain after the last one returned. */
    int (*list)(struct kc_store *s, const char *prefix, kc_rev_t at_rev, const char *start_after, size_t limit,
                struct kc_kv_list *out, kc_rev_t *list_rev, int *more, struct kc_err *err);

    /* Creates key. KC_EEXISTS if it exists. *new_rev = the write's revision. */
    int (*create)(struct kc_store *s, const char *key, const char *value, size_t len, kc_rev_t *new_rev,
                  struct kc_err *err);

    /* Replaces key's value if its mod_rev == expect_rev (expect_rev 0: any
     * current value). KC_ENOTFOUND if absent, KC_ECONFLICT on mismatch (then
     * *cur, if non-NULL, is filled with the current value). */
    int (*update)(struct kc_store *s, const char *key, const char *value, size_t len, kc_rev_t expect_rev,
                  kc_rev_t *new_rev, struct kc_kv *cur, struct kc_err *err);

    /* Deletes key if mod_rev == expect_rev (0: unconditional). *prev (if non-NULL)
     * receives the deleted value; *del_rev the delete's revision. */
    int (*del)(struct kc_store *s, const char *key, kc_rev_t expect_rev, kc_rev_t *del_rev, struct kc_kv *prev,
               struct kc_err *err);

    /* Streams every event on keys with this prefix with revision >= from_rev
     * (from_rev 0: only events after the current revision). History events are
     * delivered first, then live ones, with no gap and no duplicate.
     * KC_ECOMPACTED if from_rev <= compacted revision (and != 0). */
    int (*watch)(struct kc_store *s, const char *prefix, kc_rev_t from_rev, kc_watch_cb cb, kc_watch_end_cb end,
                 void *ctx, struct kc_watch **out, struct kc_err *err);

    /* Stops a watch. After it returns, cb and end are never called again. */
    void (*unwatch)(struct kc_store *s, struct kc_watch *w);

    /* Optional (SQLite): w's callback may take over waking the writers of the events it receives
     * (kc_event.done), and the store delivers each live event to w after its other watches. The API
     * server's cache uses it so that a write returns once the cache has it, with one wake-up instead of
     * two (the store's commit, then the cache). One such watch per store; unwatch clears it. */
    void (*take_completions)(struct kc_store *s, struct kc_watch *w);

    /* Discards history older than rev: afterwards list(at_rev < rev) and
     * watch(from_rev <= rev) fail with KC_ECOMPACTED. Must not block writers
     * for long (backends compact in small batches). */
    int (*compact)(struct kc_store *s, kc_rev_t rev, struct kc_err *err);

    kc_rev_t (*current_rev)(struct kc_store *s);
    kc_rev_t (*compacted_rev)(struct kc_store *s);

    /* Finishes in-flight writes, stops watches (end cb with KC_ECLOSED), frees s. */
    void (*close)(struct kc_store *s);
};

/* Every backend's handle starts with this header. */
struct kc_store {
    const struct kc_store_ops *ops;
};

/* Convenience wrappers. */
static inline int kc_store_get(struct kc_store *s, const char *k, struct kc_kv *o, struct kc_err *e)
{ return s->ops->get(s, k, o, e); }
static inline int kc_store_create(struct kc_store *s, const char *k, const char *v, size_t n, kc_rev_t *r,
                                  struct kc_err *e)
{ return s->ops->create(s, k, v, n, r, e); }
static inline int kc_store_update(struct kc_store *s, const char *k, const char *v, size_t n, kc_rev_t x,
                                  kc_rev_t *r, struct kc_kv *cur, struct kc_err *e)
{ return s->ops->update(s, k, v, n, x, r, cur, e); }
static inline int kc_store_del(struct kc_store *s, const char *k, kc_rev_t x, kc_rev_t *r, struct kc_kv *p,
                               struct kc_err *e)
{ return s->ops->del(s, k, x, r, p, e); }
static inline void kc_store_close(struct kc_store *s) { if (s) s->ops->close(s); }

/* SQLite backend (store_sqlite.c). path: the database file (created if
 * missing, WAL mode). Options: see struct kc_sqlite_opts; NULL = defaults. */
struct kc_sqlite_opts {
    int compact_interval_s;   /* background compaction period; 0 = default (60 s), <0 = never */
    int64_t keep_revisions;   /* history kept by background compaction; 0 = default (10000) */
    int max_batch;            /* group-commit batch size cap; 0 = default (512) */
};
int kc_store_sqlite_open(const char *path, const struct kc_sqlite_opts *opts, struct kc_store **out,
                         struct kc_err *err);

/* etcd backend (store_etcd.c), over etcd's v3 JSON gateway. endpoints:
 * "http://h:p,https://h:p", "etcd://h:p,h:p" or "h:p,..." (etcd:// and bare
 * host:port use https when cafile or certfile is set); requests fail over
 * to the next endpoint when one cannot be reached. Revisions are etcd's
 * (shared by every client of that etcd). See docs/store.md. NULL opts =
 * defaults. */
struct kc_etcd_opts {
    const char *cafile;         /* CA bundle to verify the servers (NULL: system default) */
    const char *certfile;       /* client certificate (TLS client auth) */
    const char *keyfile;        /* its private key */
    const char *prefix;         /* replaces the leading "/registry" of keys; NULL = "/registry" (keys as they are) */
    int compaction_interval_s;  /* background compaction period; 0 = default (300 s), <0 = never */
    int dial_timeout_ms;        /* connect timeout per endpoint; 0 = default (2000) */
    int request_timeout_ms;     /* whole-request timeout (not watches); 0 = default (60000) */
};
int kc_store_etcd_open(const char *endpoints, const struct kc_etcd_opts *opts, struct kc_store **out,
                       struct kc_err *err);

#endif
