/* client.h — the Kubernetes API client every kubec component uses
 * (controllers, scheduler, node agent, tools): one interface, two transports.
 *
 *  - HTTP (client_http.c): libcurl over HTTPS, keep-alive connection pool,
 *    bearer token and CA from a kubeconfig, client-side QPS/burst token
 *    bucket (as client-go's --kube-api-qps / --kube-api-burst).
 *  - in-process (src/apiserver/inproc.c): hands the request straight to the
 *    API server's dispatcher (kc_dispatch) inside `kubec server`, passing the
 *    same admission, validation, store and watch code as HTTP; only sockets,
 *    TLS and HTTP parsing are skipped.
 *
 * A transport is a table of function pointers (struct kc_transport_ops);
 * struct kc_client wraps one. All calls are thread-safe: many workers share
 * one client.
 *
 * Ownership: kc_client_resp bodies are malloc'd and freed with
 * kc_client_resp_release. Watches deliver each event line to a callback on
 * the calling thread until the stream ends, the callback returns non-zero,
 * or *stop becomes true (checked at least once a second).
 */
#ifndef KC_CLIENT_CLIENT_H
#define KC_CLIENT_CLIENT_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

struct kc_client_resp {
    int code;          /* HTTP status; 0 = transport failure (see err) */
    char *body;        /* NUL-terminated */
    size_t len;
    int retry_after;   /* seconds, from a 429's Retry-After header (0 if none) */
    json_t *json;      /* request_json only: the 2xx body, parsed (owned; body is then NULL) */
};
void kc_client_resp_release(struct kc_client_resp *r);

/* Called per watch event: line is one JSON object {"type":..., "object":...}
 * (no trailing newline; line[len] is a NUL; the buffer is only valid during
 * the call). Return non-zero to stop the watch. */
typedef int (*kc_watch_line_fn)(void *ctx, const char *line, size_t len);

/* Called per watch event with its type ("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR") and
 * object, both borrowed for the call. The object is IMMUTABLE: the in-process transport hands
 * every in-process watcher the same tree (one parse per object version, not one per informer);
 * json_incref it to keep it. Return non-zero to stop the watch. */
typedef int (*kc_watch_obj_fn)(void *ctx, const char *type, json_t *obj);

/* What a caller does with a 2xx answer: nothing (not built at all in-process), keep it as its own tree
 * (it may change it), or only read it (in-process the server may share it with its caches). */
enum kc_want { KC_WANT_NONE, KC_WANT_OWN, KC_WANT_SHARED };

struct kc_transport_ops {
    const char *name; /* "http" or "inproc" */
    /* One request. path includes the query string. ctype may be NULL (no body). */
    int (*request)(void *impl, const char *method, const char *path, const char *ctype, const char *body,
                   size_t len, struct kc_client_resp *out, struct kc_err *err);
    /* Streams a watch (path includes ?watch=true...). Returns 0 when the stream ended normally
     * (server closed it, timeoutSeconds, callback asked to stop, *stop set), or an error; *code
     * (if non-NULL) receives the HTTP status of the watch response. */
    int (*watch)(void *impl, const char *path, kc_watch_line_fn fn, void *ctx, atomic_bool *stop, int *code,
                 struct kc_err *err);
    /* Optional: one request whose body is a json_t (borrowed; the transport does not modify it) and
     * whose 2xx answer comes back as out->json unless want is KC_WANT_NONE (then it is not built at
     * all); other answers come back as bytes in out->body. The in-process transport uses this to skip
     * serialising and parsing on both sides. */
    int (*request_json)(void *impl, const char *method, const char *path, const char *ctype, json_t *body,
                        enum kc_want want, struct kc_client_resp *out, struct kc_err *err);
    /* Optional: the same, delivering parsed objects (kc_client_watch_obj parses lines without it). */
    int (*watch_obj)(void *impl, const char *path, kc_watch_obj_fn fn, void *ctx, atomic_bool *stop, int *code,
                     struct kc_err *err);
    void (*free)(void *impl);
};

struct kc_client;

/* Wraps a transport. qps <= 0: no client-side rate limit. user_agent e.g. "kube-controller-manager/kubec". */
struct kc_client *kc_client_new(const struct kc_transport_ops *ops, void *impl, double qps, int burst,
                                const char *user_agent);
void kc_client_free(struct kc_client *c);
const char *kc_client_user_agent(const struct kc_client *c);
/* true for the in-process transport: answers may then be the server's own (shared, read-only) trees */
bool kc_client_in_process(const struct kc_client *c);

/* HTTP transport from a kubeconfig file (current-context's cluster server, certificate-authority-data
 * or certificate-authority, token; insecure-skip-tls-verify honoured). */
int kc_client_http_from_kubeconfig(const char *path, double qps, int burst, const char *user_agent,
                                   struct kc_client **out, struct kc_err *err);
/* HTTP transport from explicit parameters (ca_pem may be NULL for system CAs). */
int kc_client_http_new(const char *server_url, const char *token, const char *ca_pem, double qps, int burst,
                       const char *user_agent, struct kc_client **out, struct kc_err *err);

/* Raw request (rate-limited). A 429 with Retry-After is retried up to 3 times (sleeping Retry-After,
 * at most 5 s each) before it is returned. */
int kc_client_request(struct kc_client *c, const char *method, const char *path, const char *ctype,
                      const char *body, size_t len, struct kc_client_resp *out, struct kc_err *err);
int kc_client_watch(struct kc_client *c, const char *path, kc_watch_line_fn fn, void *ctx, atomic_bool *stop,
                    int *code, struct kc_err *err);
/* A watch delivering parsed events (a line that is not a {"type","object"} event stops the stream
 * with KC_EIO). */
int kc_client_watch_obj(struct kc_client *c, const char *path, kc_watch_obj_fn fn, void *ctx, atomic_bool *stop,
                        int *code, struct kc_err *err);

/* JSON conveniences: on 2xx *out gets the parsed body (new reference; may be NULL if not wanted);
 * otherwise returns KC_E* mapped from the Status (404 → KC_ENOTFOUND, 409 Conflict → KC_ECONFLICT,
 * 409 AlreadyExists → KC_EEXISTS, 410 → KC_ECOMPACTED, 422 → KC_EINVALID, other → KC_EIO) and fills err
 * with the Status code, reason and message. */
int kc_client_get(struct kc_client *c, const char *path, json_t **out, struct kc_err *err);
int kc_client_create(struct kc_client *c, const char *path, json_t *obj, json_t **out, struct kc_err *err);
/* kc_client_create whose *out the caller only reads and then releases, never changes: in-process the
 * server shares that tree with its informer cache instead of parsing the stored object again. */
int kc_client_create_ro(struct kc_client *c, const char *path, json_t *obj, json_t **out, struct kc_err *err);
int kc_client_update(struct kc_client *c, const char *path, json_t *obj, json_t **out, struct kc_err *err);
/* kc_client_update / kc_client_patch whose *out the caller only reads (as kc_client_create_ro). */
int kc_client_update_ro(struct kc_client *c, const char *path, json_t *obj, json_t **out, struct kc_err *err);
int kc_client_patch_ro(struct kc_client *c, const char *path, const char *ctype, json_t *patch, json_t **out,
                       struct kc_err *err);
/* ctype: "application/merge-patch+json", "application/strategic-merge-patch+json", "application/json-patch+json" */
int kc_client_patch(struct kc_client *c, const char *path, const char *ctype, json_t *patch, json_t **out,
                    struct kc_err *err);
/* body may be NULL; e.g. {"propagationPolicy":"Background"} */
int kc_client_delete(struct kc_client *c, const char *path, json_t *body, json_t **out, struct kc_err *err);

/* Any method with an optional JSON body (ctype NULL → application/json), same mapping as above. */
int kc_client_json(struct kc_client *c, const char *method, const char *path, const char *ctype, json_t *body,
                   json_t **out, struct kc_err *err);
/* Maps a non-2xx response (a Status body, or anything) to KC_E* as above and fills err. */
int kc_client_status_error(const struct kc_client_resp *r, struct kc_err *err);
/* Percent-encodes s for a query value (RFC 3986 unreserved kept). 0, or KC_ETOOLARGE if n is too small. */
int kc_url_escape(const char *s, char *out, size_t n);

/* Path helpers: kc_path(buf, n, "apps", "v1", "deployments", ns, name, sub) →
 * /apis/apps/v1/namespaces/NS/deployments/NAME/SUB (group "" → /api/v1/...; ns/name/sub may be NULL).
 * Returns buf. A path that does not fit in n bytes becomes "" (never a truncated path that could name
 * another object); requests with an empty or NULL path fail with KC_EINVAL. */
const char *kc_path(char *buf, size_t n, const char *group, const char *version, const char *plural, const char *ns,
                    const char *name, const char *sub);

#endif
