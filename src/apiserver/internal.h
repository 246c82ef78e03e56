/* internal.h — types shared by the files of the API server (not used outside src/apiserver).
 *
 * Request flow: http.c (libmicrohttpd, TLS, body limits, auth) builds a
 * struct kc_req and calls kc_dispatch (dispatch.c), which routes to
 * discovery/openapi/version handlers or to the verb handlers (handlers.c).
 * Those read from the watch cache (cache.c) and write through the store
 * (src/store), then wait until the cache has caught up with their write
 * so that a client always reads its own writes. A response is a struct
 * kc_resp: a status code and a body, or a watch stream (watch.c) that the
 * HTTP layer pulls from. Nothing in dispatch/handlers knows about HTTP
 * sockets, so the in-process transport can call kc_dispatch directly.
 */
#ifndef KC_APISERVER_INTERNAL_H
#define KC_APISERVER_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "client/client.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/map.h"

#define KC_MAX_BODY (3u * 1024 * 1024)  /* request bodies over 3 MiB → 413 (as upstream) */
#define KC_MAX_JSON_DEPTH 100            /* deeper JSON → 400; upstream objects nest < 30 levels */

/* ---------- resources (resources.c) ---------- */

enum { KC_SUB_STATUS = 1, KC_SUB_SCALE = 2, KC_SUB_BINDING = 4, KC_SUB_EVICTION = 8, KC_SUB_LOG = 16 };

struct kc_column {
    const char *name, *type, *format, *description;
    int priority; /* 1 = only with -o wide */
};

struct kc_storage; /* a cache of one storage prefix (cache.c) */
struct kc_type;

struct kc_resource {
    const char *group;   /* "" for core */
    const char *version;
    const char *kind, *plural, *singular;
    const char *short_names[4];
    const char *categories[2];
    bool namespaced;
    unsigned subresources;
    bool spec_generation;               /* metadata.generation bumps on spec changes */
    const char *const *field_labels;    /* fields allowed in fieldSelector (besides metadata.name/namespace) */
    void (*defaults)(json_t *obj);
    /* appends StatusCauses to causes; old is NULL on create */
    void (*validate)(json_t *obj, json_t *old, json_t *causes);
    /* A view of another resource's storage (events.k8s.io Events are stored as
     * core Events, as upstream): converters both ways (new references) and
     * the field-selector names of the stored form. NULL for plain kinds. */
    json_t *(*to_storage)(json_t *obj);
    json_t *(*from_storage)(json_t *stored);
    const char *(*field_to_storage)(const char *field);
    const struct kc_column *columns;
    void (*row)(json_t *obj, json_t *cells, time_t now); /* appends one cell per column */
    /* derived at start-up */
    char api_version[64];   /* "apps/v1" or "v1" */
    char list_kind[64];
    char storage_prefix[96]; /* "/registry/deployments/" */
    struct kc_storage *storage;
    const struct kc_type *schema; /* kc_schema kind type, may be NULL */
};

extern struct kc_resource kc_resources[];
extern const size_t kc_nresources;
void kc_resources_init(void);
const struct kc_resource *kc_resource_find(const char *group, const char *version, const char *plural);
const struct kc_resource *kc_resource_by_kind(const char *group, const char *kind);
/* qualified name for messages: "deployments.apps", "pods" */
void kc_resource_qname(const struct kc_resource *r, char *out, size_t n);

/* ---------- objects in the cache (cache.c) ---------- */

#define KC_MAX_INDEX 12

struct kc_obj {
    atomic_int refs;
    kc_rev_t rev, create_rev;
    char *key;
    char *ns, *name;          /* ns "" for cluster-scoped */
    char *json;               /* served bytes: compact JSON with metadata.resourceVersion */
    size_t len;
    json_t *labels;           /* metadata.labels (a json object, may be NULL); immutable */
    json_t *tree;             /* parsed once on demand for in-process watchers (kc_obj_tree); immutable;
                               * guarded by a striped lock in cache.c */
    int nfields;
    const char *fnames[KC_MAX_INDEX]; /* static names */
    char *fvals[KC_MAX_INDEX];
};

struct kc_obj *kc_obj_ref(struct kc_obj *o);
void kc_obj_unref(struct kc_obj *o);
/* parses o->json into a new json_t (caller decrefs) */
json_t *kc_obj_parse(const struct kc_obj *o);
/* the parsed object WITHOUT metadata.managedFields, shared and IMMUTABLE: one tree per object
 * version however many in-process informers watch it (parsed on first use; a new reference) */
json_t *kc_obj_tree(struct kc_obj *o);
/* o's tree if one was built already (offered by its writer or parsed for a watcher), else NULL */
json_t *kc_obj_tree_peek(struct kc_obj *o);
/* the object as resource res serves it (converted for views such as events.k8s.io) */
json_t *kc_obj_view(const struct kc_resource *res, const struct kc_obj *o);
const char *kc_obj_field(const struct kc_obj *o, const char *name);

enum kc_wev_type { KC_WEV_ADDED = 1, KC_WEV_MODIFIED, KC_WEV_DELETED };

struct kc_wev {
    enum kc_wev_type type;
    kc_rev_t rev;
    struct kc_obj *obj;   /* the object after the event (DELETED: the last state, rev = delete rev) */
    struct kc_obj *prev;  /* MODIFIED/DELETED: previous state (may be NULL) */
};

struct kc_storage {
    char prefix[96];
    const struct kc_resource *res; /* the kind stored here (first registered: core Events for events) */
    pthread_mutex_t mu;
    pthread_cond_t cond;      /* broadcast after each applied batch of events */
    struct kc_map objs;       /* key → struct kc_obj* */
    struct kc_wev *ring;
    size_t ring_cap, ring_head, ring_len;
    kc_rev_t ring_start_rev;  /* every event of this storage with rev > this is in the ring */
    uint64_t events_total;
    atomic_int tree_watchers; /* in-process watch streams (they read kc_obj_tree): offers pay only then */
    bool wake_pending;        /* cache thread only: an applied event's watchers are not yet woken */
};

struct kc_cache;
int kc_cache_start(struct kc_store *store, const char *const *size_specs, int default_size, struct kc_cache **out,
                   struct kc_err *err);
void kc_cache_stop(struct kc_cache *c);
kc_rev_t kc_cache_rev(struct kc_cache *c);
/* Waits (bounded) until the cache has ingested revision rev. 0 ok, -1 timeout. */
int kc_cache_wait(struct kc_cache *c, kc_rev_t rev, int timeout_ms);
/* A handler about to write bytes (the compact JSON of tree) under key offers its tree, so that the cache
 * builds that version's informer tree (kc_obj_tree) by sharing it instead of parsing the bytes again.
 * key, bytes and tree must stay alive and unchanged until kc_cache_withdraw(), which the handler calls
 * once the write has returned (whether or not the cache took the offer). NULL when out of memory. */
struct kc_offer *kc_cache_offer(struct kc_cache *c, const char *key, const char *bytes, size_t len, json_t *tree);
void kc_cache_withdraw(struct kc_cache *c, struct kc_offer *o);
/* Current object by key (new reference) or NULL. */
struct kc_obj *kc_cache_get(struct kc_storage *st, const char *key);
/* Snapshot of objects whose key starts with prefix (new references, sorted by key) and the cache revision. */
int kc_cache_list(struct kc_cache *c, struct kc_storage *st, const char *prefix, struct kc_obj ***out, size_t *n,
                  kc_rev_t *rev);
void kc_objs_free(struct kc_obj **v, size_t n);
/* Builds a cache object from a stored key-value (for lists at an exact older revision). */
struct kc_obj *kc_obj_build(struct kc_storage *st, const struct kc_kv *kv);
bool kc_cache_stopping(struct kc_cache *c);
/* Wakes every waiter (used at shutdown). */
void kc_cache_wake_all(struct kc_cache *c);

/* ---------- requests and responses ---------- */

struct kc_server;

/* What a request addressed, filled by kc_dispatch (metrics labels, as upstream's). */
struct kc_req_info {
    const char *verb;        /* GET LIST WATCH POST PUT PATCH APPLY DELETE DELETECOLLECTION */
    const char *group, *version, *resource, *subresource;
    const char *scope;       /* resource | namespace | cluster */
    bool dry_run;
    bool resource_request;
};

struct kc_req {
    struct kc_server *srv;
    struct kc_req_info info;
    const char *method;       /* GET POST PUT PATCH DELETE */
    const char *path;         /* without query */
    json_t *query;            /* {"name":"value"} (last value wins) */
    const char *content_type; /* may be NULL */
    const char *accept;       /* may be NULL */
    const char *user_agent;
    const char *body;
    size_t body_len;
    bool watch_objects;       /* in-process watch: events as shared json trees (kc_watch_next_obj) */
    json_t *body_json;        /* in-process request: the body as a tree (borrowed, read-only; body is
                               * then NULL): handlers copy it instead of parsing bytes */
};

/* Whether the request has a body (bytes or an in-process tree). */
bool kc_req_has_body(const struct kc_req *req);
/* The body as JSON (a new tree the caller owns): a copy of body_json, or the bytes parsed. */
int kc_req_json(struct kc_req *req, json_t **out, struct kc_err *err);

struct kc_watch_stream;

struct kc_resp {
    int code;
    const char *content_type;   /* static string */
    char *body;                 /* malloc'd */
    size_t body_len;
    char *warning;              /* optional Warning header value, malloc'd */
    struct kc_watch_stream *stream; /* non-NULL for watches: body is produced by kc_watch_next */
    /* non-NULL: the body is produced by reader (chunked; pods/log?follow=true): > 0 bytes, 0 at the end,
     * < 0 on error; client_fd lets it notice a client that left. reader_free(reader_ctx) once done. */
    long (*reader)(void *ctx, char *buf, size_t max, int client_fd);
    void (*reader_free)(void *ctx);
    void *reader_ctx;
    char *location;
    int retry_after;            /* seconds, for 429 */
    bool cacheable;             /* Cache-Control: public, immutable (hashed openapi) */
    bool keep_json;             /* set by the in-process caller: a 2xx JSON answer stays a tree in json */
    json_t *json;               /* with keep_json: the answer (owned) instead of body bytes */
    bool discard_json;          /* with keep_json: the caller does not want a 2xx answer's body */
    bool share_json;            /* with keep_json: the caller only reads the answer, so the handler's tree
                                 * may also be shared with the cache's informer trees (kc_cache_offer) */
    char *etag;
};

void kc_resp_release(struct kc_resp *r);
void kc_resp_json(struct kc_resp *r, int code, json_t *body /* stolen */);
/* The same for a tree nobody but the caller will touch again (it only drops its reference): an
 * in-process caller may take it as it is. */
void kc_resp_json_own(struct kc_resp *r, int code, json_t *body /* stolen */);
void kc_resp_raw(struct kc_resp *r, int code, const char *ctype, char *body, size_t len);
/* Builds a Status failure. details_kind may be NULL. */
void kc_resp_status(struct kc_resp *r, int code, const char *reason, const char *message, const char *name,
                    const char *group, const char *details_kind, json_t *causes /* stolen, may be NULL */);
void kc_resp_err(struct kc_resp *r, const struct kc_err *e);

void kc_dispatch(struct kc_req *req, struct kc_resp *resp);

/* ---------- the server ---------- */

struct kc_server_opts {
    char data_dir[512];
    char listen[128];
    char write_kubeconfig[512];
    char datastore[512];
    char **watch_cache_sizes;   /* NULL-terminated "deployments.apps#1000" */
    int default_watch_cache_size;
    int max_requests_inflight;
    int max_mutating_inflight;
    int max_conn_per_ip;
    int idle_timeout_s;
    char metrics_listen[128];
    int event_ttl_s;
    char **disable;   /* NULL-terminated component names not to run in-process */
    int concurrent_deployment_syncs, concurrent_replicaset_syncs, deployment_sync_period_s;
    int sim_nodes;
    bool agent;
    char kubelet_token_file[512];
    char etcd_cafile[512], etcd_certfile[512], etcd_keyfile[512], etcd_prefix[256];
    int etcd_compaction_s; /* 0 = backend default, -1 = never */
    char sim_profile[64];
    char sim_node_template[512];
};

struct kc_server {
    struct kc_server_opts opts;
    struct kc_store *store;
    struct kc_cache *cache;
    char *token;
    atomic_int inflight, inflight_mut;
    atomic_bool stopping;
    char server_url[320];
    char *kubelet_token;          /* bearer token of the node agents' log API (pods/log proxy) */
    char *join_cred;              /* node credential of the join token (pki/jointoken.c): node rights */
    struct kc_client *comp_client[8]; /* in-process components (server.c) and their clients */
    void *comp_handle[8];
    pthread_t ns_thread;
    pthread_mutex_t ns_mu;
    pthread_cond_t ns_cond;
};

/* selectors of a list/watch request (handlers.c) */
struct kc_label_selector;
struct kc_field_selector;
struct sel {
    struct kc_label_selector *ls;
    struct kc_field_selector *fs;
};
int kc_sel_parse(struct kc_req *req, const struct kc_resource *res, struct sel *s, struct kc_resp *resp);
void kc_sel_free(struct sel *s);
bool kc_sel_match(const struct sel *s, struct kc_obj *o);

/* handlers.c */
void kc_handle_resource(struct kc_req *req, struct kc_resp *resp, const struct kc_resource *res, const char *ns,
                        const char *name, const char *sub);
/* Create an object directly (used for seeding namespaces). */
int kc_server_create_json(struct kc_server *srv, const struct kc_resource *res, json_t *obj, struct kc_err *err);
/* discovery.c */
bool kc_discovery(struct kc_req *req, struct kc_resp *resp);
/* watch.c */
int kc_watch_start(struct kc_req *req, const struct kc_resource *res, const char *ns, struct kc_resp *resp);
/* Writes the next chunk of a watch stream into buf (up to max bytes).
 * Returns bytes written (>0), 0 = stream ended, -1 = error. Blocks until data or end. */
long kc_watch_next(struct kc_watch_stream *w, char *buf, size_t max, int conn_fd);
/* For a stream started with req->watch_objects: the next event as its type ("ADDED", "MODIFIED",
 * "DELETED", "BOOKMARK", "ERROR"; static) and object (a new reference to an immutable tree that may
 * be shared with other watchers). 1 = an event, 0 = the stream ended, -1 = the client is gone. */
int kc_watch_next_obj(struct kc_watch_stream *w, const char **type, json_t **obj, int conn_fd);
void kc_watch_free(struct kc_watch_stream *w);
/* table.c */
bool kc_accept_table(const char *accept);
json_t *kc_table_new(const struct kc_resource *res, bool with_defs);
void kc_table_add_row(json_t *table, const struct kc_resource *res, json_t *obj, time_t now);
/* nsctl.c: the namespace controller (empties terminating namespaces, then removes them) */
int kc_nsctl_start(struct kc_server *srv);
void kc_nsctl_stop(struct kc_server *srv);
void kc_nsctl_kick(struct kc_server *srv);

/* Upstream's system PriorityClasses (bootstrap.c): the one table of their names and values, used to
 * create them at start, to reserve the "system-" prefix, to refuse their deletion and to resolve them. */
struct kc_system_pc {
    const char *name;
    json_int_t value;
    const char *description;
};
const struct kc_system_pc *kc_system_priority_class(const char *name); /* NULL if not one of them */
void kc_bootstrap_system_priority_classes(struct kc_server *srv);
/* apimetrics.c */
void kc_apimetrics_init(void);
void kc_apimetrics_request(const struct kc_req_info *ri, int code, double seconds);
void kc_apimetrics_longrunning(const struct kc_req_info *ri, int delta);
void kc_apimetrics_store(const char *op, const struct kc_resource *res, double seconds);
void kc_apimetrics_attach(struct kc_server *srv);
void kc_apimetrics_detach(struct kc_server *srv);
void kc_metrics_respond(struct kc_resp *resp);
/* admission.c */
void kc_admission_init_resources(void);
/* json helpers (jsonutil.c) */
int kc_json_parse_body(const char *body, size_t len, json_t **out, struct kc_err *err);
int kc_json_depth_ok(const char *s, size_t len, int max);
char *kc_json_dump(json_t *o, size_t *len);
const char *kc_jstr(json_t *o, const char *path);   /* dotted path, "" → NULL */
json_t *kc_jget(json_t *o, const char *path);
json_t *kc_jmeta(json_t *obj);                       /* metadata object, created if absent */
void kc_now_rfc3339(char *out, size_t n);
void kc_uuid(char out[37]);
bool kc_query_bool(json_t *q, const char *name);
const char *kc_query(json_t *q, const char *name);
void kc_cause(json_t *causes, const char *field, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
