/* client_http.c — the HTTPS transport (libcurl) and kubeconfig loading.
 *
 * Connections: libcurl easy handles are kept in a small free list (at most
 * POOL_MAX idle); a thread takes one per call and gives it back, so the
 * handle's connection cache gives keep-alive across requests without two
 * threads ever sharing a handle. curl_easy_reset between uses clears the
 * options but keeps the live connection and TLS session.
 *
 * TLS: the CA comes from memory (CURLOPT_CAINFO_BLOB) or, without one, the
 * system store; insecure-skip-tls-verify turns verification off. HTTP/1.1
 * is forced (the server speaks only that). Authentication: a bearer token.
 *
 * Limits: request responses ≤ 1 GiB (a full list of a large cluster);
 * Status bodies of refused watches ≤ 64 KiB; watch lines ≤ KC_WATCH_MAX_LINE.
 * Timeouts: connect 10 s, whole request 120 s; watches have no overall
 * timeout (the server's timeoutSeconds ends them) but TCP keep-alive (30 s
 * idle), and a watch with allowWatchBookmarks=true fails after 120 s
 * without a byte (the server bookmarks every 30 s, so that is a dead peer).
 *
 * Watches run on the caller's thread: the write callback splits the stream
 * into lines (kc_lines); libcurl's progress callback, called at least once
 * a second even on an idle connection, aborts the transfer when *stop is set.
 */
#include <curl/curl.h>
#include <ctype.h>
#include <libfyaml.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client/client.h"
#include "client/client_int.h"
#include "util/buf.h"

#define POOL_MAX 32
#define MAX_RESPONSE ((size_t)1 << 30)
#define MAX_ERROR_BODY (64 * 1024)
#define MAX_URL 8192
#define MAX_FILE (1024 * 1024) /* CA bundles, token files */
#define WATCH_SILENCE_S 120     /* bookmarked watches: no byte for this long = dead connection */

struct http {
    char server[512];  /* without a trailing slash */
    char *auth_header; /* "Authorization: Bearer ..." or NULL */
    char *ca_pem;      /* NULL = system CAs */
    bool insecure;
    char user_agent[256];
    pthread_mutex_t mu;
    CURL *pool[POOL_MAX];
    int npool;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* ---------- handle pool ---------- */

static CURL *handle_get(struct http *h)
{
    CURL *c = NULL;
    pthread_mutex_lock(&h->mu);
    if (h->npool)
        c = h->pool[--h->npool];
    pthread_mutex_unlock(&h->mu);
    if (c)
        curl_easy_reset(c);
    else
        c = curl_easy_init();
    return c;
}

static void handle_put(struct http *h, CURL *c)
{
    pthread_mutex_lock(&h->mu);
    if (h->npool < POOL_MAX) {
        h->pool[h->npool++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&h->mu);
    if (c)
        curl_easy_cleanup(c);
}

/* ---------- common options ---------- */

static int setup(struct http *h, CURL *c, const char *method, const char *path, struct curl_slist **hdrs,
                 const char *ctype, struct kc_err *err)
{
    char url[MAX_URL];
    int n = snprintf(url, sizeof url, "%s%s", h->server, path);
    if (n < 0 || (size_t)n >= sizeof url)
        return kc_err_set(err, KC_ETOOLARGE, 414, "RequestURITooLong", "request URI longer than %d bytes", MAX_URL);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, h->user_agent);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    if (h->insecure) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (h->ca_pem) {
        struct curl_blob blob = {.data = h->ca_pem, .len = strlen(h->ca_pem), .flags = CURL_BLOB_COPY};
        curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
    }
    curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 15L);
    if (!strcmp(method, "GET"))
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    else if (!strcmp(method, "HEAD"))
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    struct curl_slist *l = curl_slist_append(NULL, "Accept: application/json");
    if (l && h->auth_header)
        l = curl_slist_append(l, h->auth_header);
    if (l && ctype) {
        char ct[160];
        snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
        l = curl_slist_append(l, ct);
    }
    if (l)
        l = curl_slist_append(l, "Expect:"); /* no 100-continue round trip for bodies */
    if (!l)
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, l);
    *hdrs = l;
    return 0;
}

static int curl_fail(CURLcode cc, const char *errbuf, const char *method, const char *path, struct kc_err *err)
{
    return kc_err_set(err, KC_EIO, 0, "ServiceUnavailable", "%s %s: %s", method, path,
                      errbuf && *errbuf ? errbuf : curl_easy_strerror(cc));
}

/* ---------- request ---------- */

struct req_ctx {
    struct kc_buf body;
    int retry_after;
};

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    struct req_ctx *r = arg;
    return kc_buf_append(&r->body, p, sz * n) ? 0 : sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
    struct req_ctx *r = arg;
    size_t len = sz * n;
    if (len > 12 && !strncasecmp(p, "Retry-After:", 12)) {
        char v[16];
        snprintf(v, sizeof v, "%.*s", (int)(len - 12 < 15 ? len - 12 : 15), p + 12);
        r->retry_after = atoi(v);
    }
    return len;
}

static int http_request(void *impl, const char *method, const char *path, const char *ctype, const char *body,
                        size_t len, struct kc_client_resp *out, struct kc_err *err)
{
    struct http *h = impl;
    memset(out, 0, sizeof *out);
    CURL *c = handle_get(h);
    if (!c)
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "curl_easy_init failed");
    struct curl_slist *hdrs = NULL;
    int rc = setup(h, c, method, path, &hdrs, body ? ctype : NULL, err);
    if (rc) {
        handle_put(h, c);
        return rc;
    }
    struct req_ctx r = {0};
    kc_buf_init(&r.body, MAX_RESPONSE);
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    CURLcode cc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hdrs);
    if (cc != CURLE_OK) {
        rc = cc == CURLE_WRITE_ERROR
                 ? kc_err_set(err, KC_ETOOLARGE, 0, "InternalError", "%s %s: response larger than %zu bytes",
                              method, path, MAX_RESPONSE)
                 : curl_fail(cc, errbuf, method, path, err);
        kc_buf_release(&r.body);
        curl_easy_cleanup(c); /* its connection may be in any state */
        return rc;
    }
    handle_put(h, c);
    out->code = (int)code;
    out->retry_after = r.retry_after;
    if (!r.body.data && kc_buf_append(&r.body, "", 0)) {
        kc_buf_release(&r.body);
        out->code = 0;
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    }
    out->body = kc_buf_steal(&r.body, &out->len);
    return 0;
}

/* ---------- watch ---------- */

struct watch_ctx {
    CURL *c;
    struct kc_lines lines;
    struct kc_buf errbody; /* body of a refused watch (a Status) */
    atomic_bool *stop;
    bool cb_stopped;
    int line_err;
};

static size_t on_watch_data(char *p, size_t sz, size_t n, void *arg)
{
    struct watch_ctx *w = arg;
    size_t len = sz * n;
    long code = 0;
    curl_easy_getinfo(w->c, CURLINFO_RESPONSE_CODE, &code);
    if (code < 200 || code > 299)
        return kc_buf_append(&w->errbody, p, len) ? 0 : len;
    int rc = kc_lines_feed(&w->lines, p, len);
    if (rc == 1) {
        w->cb_stopped = true;
        return 0;
    }
    if (rc < 0) {
        w->line_err = rc;
        return 0;
    }
    return len;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    struct watch_ctx *w = arg;
    return w->stop && atomic_load(w->stop) ? 1 : 0;
}

static int http_watch(void *impl, const char *path, kc_watch_line_fn fn, void *ctx, atomic_bool *stop, int *code,
                      struct kc_err *err)
{
    struct http *h = impl;
    CURL *c = handle_get(h);
    if (!c)
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "curl_easy_init failed");
    struct curl_slist *hdrs = NULL;
    int rc = setup(h, c, "GET", path, &hdrs, NULL, err);
    if (rc) {
        handle_put(h, c);
        return rc;
    }
    struct watch_ctx w = {.c = c, .stop = stop};
    kc_lines_init(&w.lines, fn, ctx);
    kc_buf_init(&w.errbody, MAX_ERROR_BODY);
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_watch_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &w);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &w);
    if (strstr(path, "allowWatchBookmarks=true")) {
        /* the server then sends something at least every 30 s (a bookmark):
         * silence for much longer means a dead peer that TCP has not noticed */
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)WATCH_SILENCE_S);
    }
    CURLcode cc = curl_easy_perform(c);
    long hc = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &hc);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hdrs);
    if (code)
        *code = (int)hc;
    bool stopped = w.cb_stopped || (stop && atomic_load(stop));
    if (w.line_err)
        rc = kc_err_set(err, w.line_err, 500, "InternalError", "watch event longer than %u bytes",
                        KC_WATCH_MAX_LINE);
    else if (stopped)
        rc = 0;
    else if (cc != CURLE_OK)
        rc = curl_fail(cc, errbuf, "WATCH", path, err);
    else if (hc < 200 || hc > 299) {
        struct kc_client_resp r = {.code = (int)hc, .body = w.errbody.data, .len = w.errbody.len};
        rc = kc_client_status_error(&r, err);
    }
    kc_lines_release(&w.lines);
    kc_buf_release(&w.errbody);
    /* an aborted transfer leaves the connection unusable; a finished one is kept */
    if (cc == CURLE_OK)
        handle_put(h, c);
    else
        curl_easy_cleanup(c);
    return rc;
}

static void http_free(void *impl)
{
    struct http *h = impl;
    if (!h)
        return;
    for (int i = 0; i < h->npool; i++)
        curl_easy_cleanup(h->pool[i]);
    pthread_mutex_destroy(&h->mu);
    free(h->auth_header);
    free(h->ca_pem);
    free(h);
}

static const struct kc_transport_ops http_ops = {
    .name = "http",
    .request = http_request,
    .watch = http_watch,
    .free = http_free,
};

static int http_new(const char *server_url, const char *token, const char *ca_pem, bool insecure, double qps,
                    int burst, const char *user_agent, struct kc_client **out, struct kc_err *err)
{
    *out = NULL;
    if (!server_url || strncmp(server_url, "http", 4) || strlen(server_url) >= sizeof((struct http *)0)->server)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "client: server URL missing or malformed");
    pthread_once(&curl_once, curl_init_once);
    struct http *h = calloc(1, sizeof *h);
    if (!h)
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    snprintf(h->server, sizeof h->server, "%s", server_url);
    size_t n = strlen(h->server);
    while (n && h->server[n - 1] == '/')
        h->server[--n] = 0;
    snprintf(h->user_agent, sizeof h->user_agent, "%s", user_agent ? user_agent : "kubec");
    h->insecure = insecure;
    pthread_mutex_init(&h->mu, NULL);
    bool oom = false;
    if (token && *token) {
        size_t tl = strlen(token) + 32;
        h->auth_header = malloc(tl);
        if (h->auth_header)
            snprintf(h->auth_header, tl, "Authorization: Bearer %s", token);
        else
            oom = true;
    }
    if (ca_pem && *ca_pem && !(h->ca_pem = strdup(ca_pem)))
        oom = true;
    struct kc_client *c = oom ? NULL : kc_client_new(&http_ops, h, qps, burst, user_agent);
    if (!c) {
        http_free(h);
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    }
    *out = c;
    return 0;
}

int kc_client_http_new(const char *server_url, const char *token, const char *ca_pem, double qps, int burst,
                       const char *user_agent, struct kc_client **out, struct kc_err *err)
{
    return http_new(server_url, token, ca_pem, false, qps, burst, user_agent, out, err);
}

/* ---------- kubeconfig ---------- */

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

/* Decodes base64 (whitespace ignored) into a new NUL-terminated string. */
static char *b64_decode(const char *s, size_t n)
{
    char *out = malloc(n / 4 * 3 + 4);
    if (!out)
        return NULL;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '=' || isspace((unsigned char)s[i]))
            continue;
        int v = b64val((unsigned char)s[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[o] = 0;
    return out;
}

static char *read_file(const char *path, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct kc_buf b;
    kc_buf_init(&b, max);
    char chunk[4096];
    size_t n;
    int rc = 0;
    while (!rc && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = kc_buf_append(&b, chunk, n);
    if (!rc && !b.data)
        rc = kc_buf_append(&b, "", 0);
    bool bad = ferror(f) || rc;
    fclose(f);
    if (bad) {
        kc_buf_release(&b);
        return NULL;
    }
    return kc_buf_steal(&b, NULL);
}

/* Scalar value of key in a mapping node, copied (NULL if absent or not a scalar). */
static char *ystr(struct fy_node *map, const char *key)
{
    struct fy_node *n = map ? fy_node_mapping_lookup_by_string(map, key, FY_NT) : NULL;
    if (!n || !fy_node_is_scalar(n))
        return NULL;
    size_t len;
    const char *s = fy_node_get_scalar(n, &len);
    return s ? strndup(s, len) : NULL;
}

/* The `key` mapping of the element of sequence `list` (in root) whose name is `name`. */
static struct fy_node *named(struct fy_node *root, const char *list, const char *name, const char *key)
{
    struct fy_node *seq = fy_node_mapping_lookup_by_string(root, list, FY_NT);
    if (!seq || !fy_node_is_sequence(seq) || !name)
        return NULL;
    void *it = NULL;
    struct fy_node *e;
    while ((e = fy_node_sequence_iterate(seq, &it))) {
        char *n = ystr(e, "name");
        bool match = n && !strcmp(n, name);
        free(n);
        if (match)
            return fy_node_mapping_lookup_by_string(e, key, FY_NT);
    }
    return NULL;
}

/* Paths in a kubeconfig are relative to the file's directory (as kubectl). */
static char *resolve(const char *kubeconfig, const char *p)
{
    if (p[0] == '/')
        return strdup(p);
    const char *slash = strrchr(kubeconfig, '/');
    size_t dl = slash ? (size_t)(slash - kubeconfig) : 1;
    size_t n = dl + strlen(p) + 2;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%.*s/%s", (int)dl, slash ? kubeconfig : ".", p);
    return out;
}

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = 0;
}

struct kcfg {
    char *server, *ca_data, *ca_file, *insecure, *token, *token_file, *context, *cluster, *user;
};

static void kcfg_free(struct kcfg *k)
{
    free(k->server), free(k->ca_data), free(k->ca_file), free(k->insecure), free(k->token);
    free(k->token_file), free(k->context), free(k->cluster), free(k->user);
}

int kc_client_http_from_kubeconfig(const char *path, double qps, int burst, const char *user_agent,
                                   struct kc_client **out, struct kc_err *err)
{
    *out = NULL;
    char *text = read_file(path, MAX_FILE);
    if (!text)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "kubeconfig %s: cannot read it", path);
    struct fy_parse_cfg cfg = {.flags = FYPCF_QUIET};
    struct fy_document *doc = fy_document_build_from_string(&cfg, text, FY_NT);
    struct fy_node *root = doc ? fy_document_root(doc) : NULL;
    if (!root || !fy_node_is_mapping(root)) {
        fy_document_destroy(doc);
        free(text);
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "kubeconfig %s: not a YAML mapping", path);
    }
    struct kcfg k = {0};
    k.context = ystr(root, "current-context");
    struct fy_node *ctx = named(root, "contexts", k.context, "context");
    k.cluster = ystr(ctx, "cluster");
    k.user = ystr(ctx, "user");
    struct fy_node *cl = named(root, "clusters", k.cluster, "cluster");
    struct fy_node *us = named(root, "users", k.user, "user");
    k.server = ystr(cl, "server");
    k.ca_data = ystr(cl, "certificate-authority-data");
    k.ca_file = ystr(cl, "certificate-authority");
    k.insecure = ystr(cl, "insecure-skip-tls-verify");
    k.token = ystr(us, "token");
    k.token_file = ystr(us, "tokenFile");
    fy_document_destroy(doc);
    free(text);

    int rc = 0;
    char *ca = NULL, *token = NULL;
    if (!ctx || !cl || !k.server) {
        rc = kc_err_set(err, KC_EINVAL, 400, "BadRequest",
                        "kubeconfig %s: current-context %s does not lead to a cluster with a server", path,
                        k.context ? k.context : "(unset)");
    } else if (k.ca_data) {
        if (!(ca = b64_decode(k.ca_data, strlen(k.ca_data))))
            rc = kc_err_set(err, KC_EINVAL, 400, "BadRequest", "kubeconfig %s: certificate-authority-data is not base64",
                            path);
    } else if (k.ca_file) {
        char *p = resolve(path, k.ca_file);
        if (!p || !(ca = read_file(p, MAX_FILE)))
            rc = kc_err_set(err, KC_EINVAL, 400, "BadRequest", "kubeconfig %s: cannot read certificate-authority %s",
                            path, k.ca_file);
        free(p);
    }
    if (!rc && k.token) {
        token = strdup(k.token);
    } else if (!rc && k.token_file) {
        char *p = resolve(path, k.token_file);
        if (!p || !(token = read_file(p, MAX_FILE)))
            rc = kc_err_set(err, KC_EINVAL, 400, "BadRequest", "kubeconfig %s: cannot read tokenFile %s", path,
                            k.token_file);
        free(p);
    }
    if (token)
        trim(token);
    bool insecure = k.insecure && (!strcmp(k.insecure, "true") || !strcmp(k.insecure, "True"));
    if (!rc)
        rc = http_new(k.server, token, ca, insecure, qps, burst, user_agent, out, err);
    free(ca);
    free(token);
    kcfg_free(&k);
    return rc;
}
