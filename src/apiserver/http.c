/* http.c — the HTTPS front: libmicrohttpd with GnuTLS.
 *
 * libmicrohttpd is used because it is a small, embeddable, mature HTTP/1.1
 * server library in Debian with built-in TLS, chunked streaming responses
 * (watches) and per-connection limits. It runs in thread-per-connection
 * mode: a watch blocks its own thread in kc_watch_next, which keeps the
 * watch code straightforward, and request handling needs no event-loop
 * plumbing. Limits (documented in docs/apiserver.md): request headers ≤ 64
 * KiB per connection (MHD connection memory), body ≤ 3 MiB (413), idle
 * connections closed after --idle-timeout (watches exempt), connections
 * per client address capped by --max-connections-per-ip.
 *
 * Authentication: a bearer token (the admin token from the data dir), or
 * the node credential of the join token with node rights (kc_pki_node_may,
 * else 403); /healthz, /livez, /readyz and GET /cacerts answer without one. Overload: at most
 * --max-requests-inflight non-mutating and --max-mutating-requests-inflight
 * mutating requests at once (watches excluded); beyond that 429 with
 * Retry-After, as upstream's max-in-flight filter.
 */
#include "apiserver/internal.h"

#include <microhttpd.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pki/pki.h"
#include "util/log.h"

struct conn_ctx {
    struct kc_buf body;
    bool too_large;
};

struct stream_ctx {
    struct kc_watch_stream *w;
    struct kc_server *srv;
    int fd;
};

static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    json_object_set_new((json_t *)cls, key, json_string(value ? value : ""));
    return MHD_YES;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream_ctx *s = cls;
    (void)pos;
    long n = kc_watch_next(s->w, buf, max, s->fd);
    if (n > 0)
        return n;
    return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_free(void *cls)
{
    struct stream_ctx *s = cls;
    kc_watch_free(s->w);
    free(s);
}

/* A body made by a handler's reader (kc_resp.reader): pods/log?follow=true. */
struct reader_ctx {
    long (*fn)(void *ctx, char *buf, size_t max, int client_fd);
    void (*free_fn)(void *ctx);
    void *ctx;
    int fd;
};

static ssize_t reader_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct reader_ctx *s = cls;
    (void)pos;
    long n = s->fn(s->ctx, buf, max, s->fd);
    if (n > 0)
        return n;
    return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void reader_free(void *cls)
{
    struct reader_ctx *s = cls;
    s->free_fn(s->ctx);
    free(s);
}

static enum MHD_Result send_resp(struct MHD_Connection *c, struct kc_server *srv, struct kc_resp *r)
{
    struct MHD_Response *mr;
    if (r->reader) {
        struct reader_ctx *s = calloc(1, sizeof *s);
        if (!s)
            return MHD_NO;
        *s = (struct reader_ctx){.fn = r->reader, .free_fn = r->reader_free, .ctx = r->reader_ctx, .fd = -1};
        r->reader = NULL;
        r->reader_free = NULL;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        s->fd = ci ? ci->connect_fd : -1;
        MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0);
        mr = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, reader_read, s, reader_free);
        if (!mr) {
            reader_free(s);
            return MHD_NO;
        }
    } else if (r->stream) {
        struct stream_ctx *s = calloc(1, sizeof *s);
        s->w = r->stream;
        s->srv = srv;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        s->fd = ci ? ci->connect_fd : -1;
        r->stream = NULL;
        MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0);
        mr = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, stream_reader, s, stream_free);
    } else {
        mr = MHD_create_response_from_buffer(r->body_len, r->body ? r->body : (void *)"", MHD_RESPMEM_MUST_FREE);
        r->body = NULL;
        if (!r->body_len && !mr)
            return MHD_NO;
    }
    if (!mr)
        return MHD_NO;
    MHD_add_response_header(mr, "Content-Type", r->content_type ? r->content_type : "application/json");
    MHD_add_response_header(mr, "Audit-Id", "kubec");
    if (r->warning)
        MHD_add_response_header(mr, "Warning", r->warning);
    if (r->etag)
        MHD_add_response_header(mr, "Etag", r->etag);
    if (r->cacheable)
        MHD_add_response_header(mr, "Cache-Control", "public, immutable");
    if (r->retry_after) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", r->retry_after);
        MHD_add_response_header(mr, "Retry-After", ra);
    }
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)r->code, mr);
    MHD_destroy_response(mr);
    return ret;
}

static bool is_health(const char *url)
{
    static const char *p[] = {"/healthz", "/livez", "/readyz"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(p[i]);
        if (!strncmp(url, p[i], n) && (url[n] == 0 || url[n] == '/'))
            return true;
    }
    return false;
}

static bool token_is(const char *tok, const char *want)
{
    size_t n = want ? strlen(want) : 0;
    return n && strlen(tok) == n && CRYPTO_memcmp(tok, want, n) == 0;
}

/* 2 = admin token, 1 = the join token's node credential (node rights: kc_pki_node_may), 0 = neither. */
static int authorized(struct MHD_Connection *c, struct kc_server *srv)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7))
        return 0;
    return token_is(h + 7, srv->token) ? 2 : token_is(h + 7, srv->join_cred) ? 1 : 0;
}

/* GET /cacerts without authentication, as k3s: the CA a joining agent verifies against the hash in its
 * join token before trusting it (ca.crt's bytes, which the hash covers). */
static enum MHD_Result send_cacerts(struct MHD_Connection *c, struct kc_server *srv)
{
    char path[600];
    struct kc_resp resp = {0};
    snprintf(path, sizeof path, "%s/ca.crt", srv->opts.data_dir);
    FILE *f = fopen(path, "re");
    char *b = malloc(64 * 1024);
    size_t n = f && b ? fread(b, 1, 64 * 1024, f) : 0;
    if (f)
        fclose(f);
    if (n)
        kc_resp_raw(&resp, 200, "application/x-pem-file", b, n);
    else {
        free(b);
        kc_resp_status(&resp, 404, "NotFound", "no CA certificate", NULL, NULL, NULL, NULL);
    }
    enum MHD_Result ret = send_resp(c, srv, &resp);
    kc_resp_release(&resp);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    struct kc_server *srv = cls;
    (void)version;
    struct conn_ctx *cc = *con_cls;
    if (!cc) {
        cc = calloc(1, sizeof *cc);
        if (!cc)
            return MHD_NO;
        kc_buf_init(&cc->body, KC_MAX_BODY);
        *con_cls = cc;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!cc->too_large && kc_buf_append(&cc->body, upload, *upload_size))
            cc->too_large = true;
        *upload_size = 0;
        return MHD_YES;
    }
    struct kc_resp resp = {0};
    if (is_health(url)) {
        kc_resp_raw(&resp, 200, "text/plain; charset=utf-8", strdup("ok"), 2);
        return send_resp(c, srv, &resp);
    }
    if (!strcmp(url, "/cacerts") && !strcmp(method, "GET"))
        return send_cacerts(c, srv);
    int who = authorized(c, srv);
    if (!who) {
        kc_resp_status(&resp, 401, "Unauthorized", "Unauthorized", NULL, NULL, NULL, NULL);
        return send_resp(c, srv, &resp);
    }
    if (who == 1 && !kc_pki_node_may(method, url)) {
        char msg[700];
        snprintf(msg, sizeof msg, "%s %.500s is forbidden: User \"system:node\" (join token) may only act on nodes, "
                 "pods, events, node leases and read what pods use", method, url);
        kc_resp_status(&resp, 403, "Forbidden", msg, NULL, NULL, NULL, NULL);
        return send_resp(c, srv, &resp);
    }
    if (cc->too_large) {
        kc_resp_status(&resp, 413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728", NULL, NULL,
                       NULL, NULL);
        return send_resp(c, srv, &resp);
    }
    struct kc_req req = {.srv = srv, .method = method, .path = url, .query = json_object()};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, add_arg, req.query);
    req.content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    req.accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
    req.user_agent = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "User-Agent");
    req.body = cc->body.data;
    req.body_len = cc->body.len;
    bool watch = kc_query_bool(req.query, "watch");
    bool mutating = strcmp(method, "GET") && strcmp(method, "HEAD");
    atomic_int *counter = mutating ? &srv->inflight_mut : &srv->inflight;
    int limit = mutating ? srv->opts.max_mutating_inflight : srv->opts.max_requests_inflight;
    if (!watch) {
        int now = atomic_fetch_add(counter, 1) + 1;
        if (limit > 0 && now > limit) {
            atomic_fetch_sub(counter, 1);
            kc_resp_status(&resp, 429, "TooManyRequests", "Too many requests, please try again later.", NULL, NULL,
                           NULL, NULL);
            resp.retry_after = 1;
            json_decref(req.query);
            return send_resp(c, srv, &resp);
        }
    }
    kc_dispatch(&req, &resp);
    if (!watch)
        atomic_fetch_sub(counter, 1);
    json_decref(req.query);
    if (kc_log_verbosity() >= 2)
        kc_log('D', "http", "%s %s -> %d", method, url, resp.code);
    enum MHD_Result ret = send_resp(c, srv, &resp);
    kc_resp_release(&resp);
    return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    struct conn_ctx *cc = *con_cls;
    if (cc) {
        kc_buf_release(&cc->body);
        free(cc);
        *con_cls = NULL;
    }
}

void *kc_http_start(struct kc_server *srv, const struct sockaddr *sa, const char *cert, const char *key);
void *kc_http_start(struct kc_server *srv, const struct sockaddr *sa, const char *cert, const char *key)
{
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS | MHD_USE_POLL |
                     MHD_USE_ERROR_LOG;
    if (sa->sa_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, handle, srv, MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_HTTPS_MEM_KEY, key,
        MHD_OPTION_HTTPS_MEM_CERT, cert, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)srv->opts.idle_timeout_s, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)srv->opts.max_conn_per_ip, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_END);
    return d;
}

void kc_http_quiesce(void *d);
void kc_http_quiesce(void *d)
{
    if (d)
        MHD_quiesce_daemon(d);
}

void kc_http_stop(void *d);
void kc_http_stop(void *d)
{
    if (d)
        MHD_stop_daemon(d);
}

/* The optional unauthenticated plain-HTTP listener (--metrics-listen): /metrics and health only. */
static enum MHD_Result handle_plain(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                    const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    struct kc_server *srv = cls;
    (void)version;
    (void)upload;
    if (!*con_cls) {
        *con_cls = (void *)1;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    *con_cls = NULL;
    struct kc_resp resp = {0};
    if (strcmp(method, "GET"))
        kc_resp_status(&resp, 405, "MethodNotAllowed", "only GET is served here", NULL, NULL, NULL, NULL);
    else if (!strcmp(url, "/metrics"))
        kc_metrics_respond(&resp);
    else if (is_health(url))
        kc_resp_raw(&resp, 200, "text/plain; charset=utf-8", strdup("ok"), 2);
    else
        kc_resp_status(&resp, 404, "NotFound", "only /metrics and health endpoints are served here", NULL, NULL, NULL,
                       NULL);
    enum MHD_Result ret = send_resp(c, srv, &resp);
    kc_resp_release(&resp);
    return ret;
}

void *kc_http_start_plain(struct kc_server *srv, const struct sockaddr *sa);
void *kc_http_start_plain(struct kc_server *srv, const struct sockaddr *sa)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
    if (sa->sa_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    return MHD_start_daemon(flags, 0, NULL, NULL, handle_plain, srv, MHD_OPTION_SOCK_ADDR, sa,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                            MHD_OPTION_END);
}
