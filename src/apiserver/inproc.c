/* inproc.c — the in-process client transport (client/inproc.h).
 *
 * Components that run inside `kubec server` (controllers, the scheduler)
 * use a struct kc_client like any other, but their requests skip sockets,
 * TLS and HTTP parsing: each call builds a struct kc_req exactly as http.c
 * does (path without the query, the query as a {"name":"value"} object with
 * URL-decoded names and values, last value wins) and calls kc_dispatch on
 * the caller's thread. Admission, validation, the store and the watch cache
 * are the same code as for HTTP. Not applied here: bearer-token
 * authentication (the caller is the server itself) and the max-in-flight
 * limits (client-side QPS is what throttles controllers).
 *
 * Watches: kc_dispatch returns a stream that we pull with kc_watch_next on
 * the caller's thread; event bytes are split into lines for the caller's
 * callback (kc_lines, shared with the HTTP transport). kc_watch_next blocks
 * until there is data or the stream ends; it notices a vanished client only
 * through its connection fd (checked once a second). So each watch gets a
 * socketpair whose one end stands in for the connection, and one shared
 * monitor thread (started on first use, idle on a condition variable while
 * no watch has a stop flag) polls the registered *stop flags every 100 ms
 * and shuts the pair down when one is set: the stream then ends within
 * about a second, as the header promises.
 */
#include "client/inproc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "apiserver/internal.h"
#include "client/client.h"
#include "client/client_int.h"
#include "util/jsonparse.h"

#define INPROC_MAX_URL 8192 /* as a typical HTTP server's request-line limit */
#define WATCH_CHUNK (64 * 1024)

struct inproc {
    struct kc_server *srv;
    char user_agent[256];
};

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* In-place percent-decoding ('+' is a space, as in form-encoded queries). */
static size_t url_decode(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (*p == '+') {
            *o++ = ' ';
        } else if (*p == '%' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
            *o++ = (char)(hexval(p[1]) * 16 + hexval(p[2]));
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    *o = 0;
    return (size_t)(o - s);
}

/* Splits url into path (in pathbuf) and a query object. */
static int split_url(const char *url, char *pathbuf, json_t **query, struct kc_err *err)
{
    size_t n = strlen(url);
    if (n >= INPROC_MAX_URL)
        return kc_err_set(err, KC_ETOOLARGE, 414, "RequestURITooLong", "request URI longer than %d bytes",
                          INPROC_MAX_URL);
    memcpy(pathbuf, url, n + 1);
    *query = json_object();
    if (!*query)
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    char *q = strchr(pathbuf, '?');
    if (!q)
        return 0;
    *q++ = 0;
    char *save = NULL;
    for (char *kv = strtok_r(q, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        char *val = "";
        if (eq) {
            *eq = 0;
            val = eq + 1;
        }
        url_decode(kv);
        size_t vlen = url_decode(val);
        if (!*kv)
            continue;
        json_t *js = json_stringn(val, vlen);
        if (!js)
            js = json_string(""); /* not UTF-8: the handlers will reject the empty value */
        json_object_set_new(*query, kv, js);
    }
    return 0;
}

static void fill_req(struct inproc *ip, struct kc_req *req, const char *method, const char *path, json_t *query,
                     const char *ctype, const char *body, size_t len)
{
    memset(req, 0, sizeof *req);
    req->srv = ip->srv;
    req->method = method;
    req->path = path;
    req->query = query;
    req->content_type = ctype;
    req->accept = "application/json";
    req->user_agent = ip->user_agent;
    req->body = body;
    req->body_len = body ? len : 0;
}

/* Parses url, builds the request (bytes body, or a tree in body_json) and dispatches it into *resp
 * (whose flags the caller set). A watch answered here is ended unless keep_stream. */
static int run(struct inproc *ip, const char *method, const char *url, const char *ctype, const char *body, size_t len,
               json_t *body_json, bool keep_stream, bool watch_objects, struct kc_resp *resp, struct kc_err *err)
{
    char *path = malloc(INPROC_MAX_URL);
    if (!path)
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    json_t *query = NULL;
    int rc = split_url(url, path, &query, err);
    if (rc) {
        free(path);
        json_decref(query);
        return rc;
    }
    struct kc_req req;
    fill_req(ip, &req, method, path, query, ctype, body, len);
    req.body_json = body_json;
    req.watch_objects = watch_objects;
    if (len > KC_MAX_BODY)
        kc_resp_status(resp, 413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728", NULL, NULL,
                       NULL, NULL);
    else
        kc_dispatch(&req, resp);
    json_decref(query);
    free(path);
    if (resp->stream && !keep_stream) { /* a watch through request(): nothing sensible to return but the status */
        kc_watch_free(resp->stream);
        resp->stream = NULL;
    }
    return 0;
}

static int inproc_request(void *impl, const char *method, const char *url, const char *ctype, const char *body,
                          size_t len, struct kc_client_resp *out, struct kc_err *err)
{
    memset(out, 0, sizeof *out);
    struct kc_resp resp = {0};
    int rc = run(impl, method, url, ctype, body, len, NULL, false, false, &resp, err);
    if (rc)
        return rc;
    out->code = resp.code;
    out->retry_after = resp.retry_after;
    out->len = resp.body ? resp.body_len : 0;
    out->body = malloc(out->len + 1);
    if (!out->body) {
        kc_resp_release(&resp);
        out->code = 0;
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    }
    if (out->len)
        memcpy(out->body, resp.body, out->len);
    out->body[out->len] = 0;
    kc_resp_release(&resp);
    return 0;
}

/* A request whose body is a tree: handlers copy it (kc_req_json) instead of parsing bytes, and a 2xx
 * answer comes back as the handler's own tree (kc_resp.keep_json), or not at all when unwanted. */
static int inproc_request_json(void *impl, const char *method, const char *url, const char *ctype, json_t *body,
                               enum kc_want want, struct kc_client_resp *out, struct kc_err *err)
{
    memset(out, 0, sizeof *out);
    bool want_body = want != KC_WANT_NONE;
    struct kc_resp resp = {.keep_json = true, .discard_json = !want_body, .share_json = want == KC_WANT_SHARED};
    int rc = run(impl, method, url, ctype, NULL, 0, body, false, false, &resp, err);
    if (rc)
        return rc;
    out->code = resp.code;
    out->retry_after = resp.retry_after;
    bool ok = resp.code >= 200 && resp.code < 300;
    if (ok && want_body) {
        if (resp.json) {
            out->json = resp.json;
            resp.json = NULL;
        } else if (resp.body && resp.body_len) {
            out->json = kc_json_loadb(resp.body, resp.body_len, 0, NULL);
        }
    } else if (!ok && resp.body) {
        out->body = resp.body;
        out->len = resp.body_len;
        resp.body = NULL;
    }
    kc_resp_release(&resp);
    return 0;
}

/* ---------- stop monitor ---------- */

struct stop_watch {
    atomic_bool *stop;
    int peer_fd;    /* our end of the pair stays with the stream; this one is shut down on stop */
    bool fired;
    struct stop_watch *next;
};

static pthread_mutex_t mon_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mon_cond = PTHREAD_COND_INITIALIZER;
static struct stop_watch *mon_list;
static bool mon_started;

static void *monitor_main(void *arg)
{
    pthread_setname_np(pthread_self(), "kc-inproc-stop");
    (void)arg;
    pthread_mutex_lock(&mon_mu);
    for (;;) {
        while (!mon_list)
            pthread_cond_wait(&mon_cond, &mon_mu);
        for (struct stop_watch *s = mon_list; s; s = s->next)
            if (!s->fired && atomic_load(s->stop)) {
                shutdown(s->peer_fd, SHUT_RDWR);
                s->fired = true;
            }
        pthread_mutex_unlock(&mon_mu);
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&mon_mu);
    }
    return NULL;
}

static int monitor_add(struct stop_watch *s)
{
    pthread_mutex_lock(&mon_mu);
    if (!mon_started) {
        pthread_t t;
        if (pthread_create(&t, NULL, monitor_main, NULL)) {
            pthread_mutex_unlock(&mon_mu);
            return -1;
        }
        pthread_detach(t);
        mon_started = true;
    }
    s->next = mon_list;
    mon_list = s;
    pthread_cond_signal(&mon_cond);
    pthread_mutex_unlock(&mon_mu);
    return 0;
}

static void monitor_del(struct stop_watch *s)
{
    pthread_mutex_lock(&mon_mu);
    for (struct stop_watch **p = &mon_list; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    pthread_mutex_unlock(&mon_mu);
}

/* Pulls the stream until it ends, the callback stops, or *stop. */
static int pump(struct kc_watch_stream *w, int conn_fd, struct kc_lines *lines, atomic_bool *stop,
                struct kc_err *err)
{
    char *chunk = malloc(WATCH_CHUNK);
    if (!chunk)
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    int rc = 0;
    while (!(stop && atomic_load(stop))) {
        long n = kc_watch_next(w, chunk, WATCH_CHUNK, conn_fd);
        if (n == 0 || (n < 0 && stop && atomic_load(stop)))
            break;
        if (n < 0) {
            rc = kc_err_set(err, KC_EIO, 500, "InternalError", "watch stream failed");
            break;
        }
        int f = kc_lines_feed(lines, chunk, (size_t)n);
        if (f == 1)
            break;
        if (f < 0) {
            rc = kc_err_set(err, f, 500, "InternalError", "watch event longer than %u bytes", KC_WATCH_MAX_LINE);
            break;
        }
    }
    free(chunk);
    return rc;
}

/* Pulls parsed events until the stream ends, the callback stops, or *stop. */
static int pump_obj(struct kc_watch_stream *w, int conn_fd, kc_watch_obj_fn fn, void *ctx, atomic_bool *stop,
                    struct kc_err *err)
{
    while (!(stop && atomic_load(stop))) {
        const char *type;
        json_t *obj;
        int n = kc_watch_next_obj(w, &type, &obj, conn_fd);
        if (n == 0 || (n < 0 && stop && atomic_load(stop)))
            break;
        if (n < 0)
            return kc_err_set(err, KC_EIO, 500, "InternalError", "watch stream failed");
        int f = fn(ctx, type, obj);
        json_decref(obj);
        if (f)
            break;
    }
    return 0;
}

/* One watch, as bytes for a line callback (fn) or as shared trees for an object callback (ofn). */
static int watch_common(struct inproc *ip, const char *url, kc_watch_line_fn fn, kc_watch_obj_fn ofn, void *ctx,
                        atomic_bool *stop, int *code, struct kc_err *err)
{
    struct kc_resp resp = {0};
    int rc = run(ip, "GET", url, NULL, NULL, 0, NULL, true, ofn != NULL, &resp, err);
    if (rc)
        return rc;
    if (code)
        *code = resp.code;
    if (!resp.stream) {
        /* refused before streaming (bad selector, unknown resource, 410 ...) */
        struct kc_client_resp r = {.code = resp.code, .body = resp.body, .len = resp.body_len};
        rc = resp.code >= 200 && resp.code < 300 ? 0 : kc_client_status_error(&r, err);
        kc_resp_release(&resp);
        return rc;
    }
    struct stop_watch sw = {.stop = stop, .peer_fd = -1};
    int pair[2] = {-1, -1};
    if (stop) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
            kc_resp_release(&resp);
            return kc_err_set(err, KC_EIO, 500, "InternalError", "watch: socketpair failed");
        }
        sw.peer_fd = pair[1];
        if (monitor_add(&sw)) {
            close(pair[0]);
            close(pair[1]);
            kc_resp_release(&resp);
            return kc_err_set(err, KC_EIO, 500, "InternalError", "watch: cannot start the stop monitor");
        }
    }
    if (ofn) {
        rc = pump_obj(resp.stream, pair[0], ofn, ctx, stop, err);
    } else {
        struct kc_lines lines;
        kc_lines_init(&lines, fn, ctx);
        rc = pump(resp.stream, pair[0], &lines, stop, err);
        kc_lines_release(&lines);
    }
    if (stop) {
        monitor_del(&sw);
        close(pair[0]);
        close(pair[1]);
    }
    kc_resp_release(&resp); /* frees the stream too */
    return rc;
}

static int inproc_watch(void *impl, const char *url, kc_watch_line_fn fn, void *ctx, atomic_bool *stop, int *code,
                        struct kc_err *err)
{
    return watch_common(impl, url, fn, NULL, ctx, stop, code, err);
}

static int inproc_watch_obj(void *impl, const char *url, kc_watch_obj_fn fn, void *ctx, atomic_bool *stop,
                            int *code, struct kc_err *err)
{
    return watch_common(impl, url, NULL, fn, ctx, stop, code, err);
}

static void inproc_free(void *impl) { free(impl); }

static const struct kc_transport_ops inproc_ops = {
    .name = "inproc",
    .request = inproc_request,
    .watch = inproc_watch,
    .watch_obj = inproc_watch_obj,
    .request_json = inproc_request_json,
    .free = inproc_free,
};

struct kc_client *kc_client_inproc_new(struct kc_server *srv, double qps, int burst, const char *user_agent)
{
    if (!srv)
        return NULL;
    struct inproc *ip = calloc(1, sizeof *ip);
    if (!ip)
        return NULL;
    ip->srv = srv;
    snprintf(ip->user_agent, sizeof ip->user_agent, "%s", user_agent ? user_agent : "kubec");
    struct kc_client *c = kc_client_new(&inproc_ops, ip, qps, burst, user_agent);
    if (!c)
        free(ip);
    return c;
}
