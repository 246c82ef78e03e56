/* podlog.c — GET pods/NAME/log: the API server proxies to the node agent's log API
 * (docs/runtime.md): it finds the pod's node, its address and agent port, forwards
 * GET https://<node>:<port>/containerLogs/NS/POD/CONTAINER?<query> with the agent's bearer token and
 * answers with the agent's body. Agents use self-signed serving certificates, so the certificate is not
 * verified, as upstream without --kubelet-certificate-authority.
 *
 * follow=true streams: a thread per request runs the agent request and writes the body into a pipe;
 * the HTTP front's reader (kc_resp.reader) hands what the pipe gives to the client as chunks. It ends
 * when the agent ends the stream (the container run ended), when the client leaves (its socket hangs
 * up: the reader stops, the pipe closes, the thread's next write fails and curl aborts; an idle agent
 * stream is aborted by the progress callback within a second), or at server shutdown.
 * Threads: the request's (MHD) thread, plus one follower thread per follow request.
 */
#include "apiserver/internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FOLLOW_ERR_MAX (64 * 1024) /* a non-200 answer (a Status) kept for the client */
#define FOLLOW_HDR_WAIT_S 15       /* how long the handler waits for the agent's status line */

static size_t sink(char *p, size_t sz, size_t n, void *ud)
{
    struct kc_buf *b = ud;
    return kc_buf_append(b, p, sz * n) ? 0 : sz * n;
}

static void bad(struct kc_resp *resp, const char *msg)
{
    kc_resp_status(resp, 400, "BadRequest", msg, NULL, NULL, NULL, NULL);
}

struct follow {
    CURL *h;
    struct curl_slist *hdr;
    struct kc_server *srv;
    pthread_t thr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long code;          /* agent's status, 0 until its headers ended */
    bool done;          /* the agent request finished */
    CURLcode rc;
    atomic_bool stop;   /* client gone or server stopping */
    int rfd, wfd;
    struct kc_buf err;  /* body of a non-200 answer */
};

static size_t follow_header(char *p, size_t sz, size_t n, void *ud)
{
    struct follow *f = ud;
    if (sz * n <= 2 && (p[0] == '\r' || p[0] == '\n')) { /* end of headers */
        long code = 0;
        curl_easy_getinfo(f->h, CURLINFO_RESPONSE_CODE, &code);
        pthread_mutex_lock(&f->mu);
        f->code = code;
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
    }
    return sz * n;
}

static size_t follow_write(char *p, size_t sz, size_t n, void *ud)
{
    struct follow *f = ud;
    size_t len = sz * n, off = 0;
    if (f->code != 200)
        return kc_buf_append(&f->err, p, len) ? 0 : len;
    while (off < len) {
        if (atomic_load(&f->stop))
            return 0;
        ssize_t w = write(f->wfd, p + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return 0; /* the reader side is closed: the client left */
        off += (size_t)w;
    }
    return len;
}

static int follow_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    struct follow *f = ud;
    (void)a, (void)b, (void)c, (void)d;
    return atomic_load(&f->stop) || f->srv->stopping; /* non-zero aborts the transfer */
}

static void *follow_main(void *arg)
{
    struct follow *f = arg;
    CURLcode rc = curl_easy_perform(f->h);
    close(f->wfd); /* EOF for the reader */
    pthread_mutex_lock(&f->mu);
    f->rc = rc;
    f->done = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

static long follow_read(void *ctx, char *buf, size_t max, int client_fd)
{
    struct follow *f = ctx;
    for (;;) {
        if (f->srv->stopping)
            return -1;
        struct pollfd p[2] = {{.fd = f->rfd, .events = POLLIN}, {.fd = client_fd, .events = POLLRDHUP}};
        int n = poll(p, client_fd >= 0 ? 2 : 1, 1000);
        if (n < 0 && errno != EINTR)
            return -1;
        if (n > 0 && client_fd >= 0 && (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR)))
            return -1; /* the client left */
        if (n > 0 && (p[0].revents & (POLLIN | POLLHUP))) {
            ssize_t r = read(f->rfd, buf, max);
            if (r < 0 && errno == EINTR)
                continue;
            return r < 0 ? -1 : (long)r; /* 0: the agent ended the stream */
        }
    }
}

static void follow_free(void *ctx)
{
    struct follow *f = ctx;
    atomic_store(&f->stop, true);
    close(f->rfd); /* a blocked write in the thread fails now */
    pthread_join(f->thr, NULL);
    curl_slist_free_all(f->hdr);
    curl_easy_cleanup(f->h);
    kc_buf_release(&f->err);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

/* follow=true: starts the follower, waits for the agent's status line; 200 → streaming body,
 * otherwise the agent's answer as it is. Takes h and hdr. */
static void follow_start(struct kc_req *req, struct kc_resp *resp, CURL *h, struct curl_slist *hdr, const char *url)
{
    struct follow *f = calloc(1, sizeof *f);
    int fds[2];
    char msg[700];
    if (!f || pipe2(fds, O_CLOEXEC)) {
        free(f);
        curl_slist_free_all(hdr);
        curl_easy_cleanup(h);
        kc_resp_status(resp, 500, "InternalError", "cannot start a log stream", NULL, NULL, NULL, NULL);
        return;
    }
    *f = (struct follow){.h = h, .hdr = hdr, .srv = req->srv, .rfd = fds[0], .wfd = fds[1]};
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    kc_buf_init(&f->err, FOLLOW_ERR_MAX);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 0L); /* as long as the container runs */
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, follow_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, follow_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, follow_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, f);
    if (pthread_create(&f->thr, NULL, follow_main, f)) {
        close(f->wfd);
        f->done = true;
        f->thr = pthread_self();
        kc_resp_status(resp, 500, "InternalError", "cannot start a log stream", NULL, NULL, NULL, NULL);
        curl_slist_free_all(hdr);
        curl_easy_cleanup(h);
        kc_buf_release(&f->err);
        close(f->rfd);
        free(f);
        return;
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += FOLLOW_HDR_WAIT_S;
    pthread_mutex_lock(&f->mu);
    while (!f->done && (!f->code || (f->code != 200 && !f->done)))
        if (pthread_cond_timedwait(&f->cv, &f->mu, &until))
            break;
    long code = f->code;
    bool done = f->done;
    CURLcode rc = f->rc;
    pthread_mutex_unlock(&f->mu);
    if (code == 200) {
        resp->code = 200;
        resp->content_type = "text/plain";
        resp->reader = follow_read;
        resp->reader_free = follow_free;
        resp->reader_ctx = f;
        return;
    }
    if (done && code) {
        size_t len;
        char *s = kc_buf_steal(&f->err, &len);
        kc_resp_raw(resp, (int)code, "application/json", s, len);
    } else {
        snprintf(msg, sizeof msg, "Get \"%.300s\": %s", url,
                 done ? curl_easy_strerror(rc) : "no answer from the node agent in time");
        kc_resp_status(resp, 500, "InternalError", msg, NULL, NULL, NULL, NULL);
    }
    follow_free(f);
}

void kc_handle_pod_log(struct kc_req *req, struct kc_resp *resp, const char *ns, const char *name);
void kc_handle_pod_log(struct kc_req *req, struct kc_resp *resp, const char *ns, const char *name)
{
    const struct kc_resource *pods = kc_resource_find("", "v1", "pods");
    const struct kc_resource *nodes = kc_resource_find("", "v1", "nodes");
    char key[600], msg[700];
    snprintf(key, sizeof key, "%s%s/%s", pods->storage_prefix, ns, name);
    struct kc_obj *po = kc_cache_get(pods->storage, key);
    if (!po) {
        snprintf(msg, sizeof msg, "pods \"%s\" not found", name);
        kc_resp_status(resp, 404, "NotFound", msg, name, "", "pods", NULL);
        return;
    }
    json_t *pod = kc_obj_parse(po);
    kc_obj_unref(po);
    const char *node = kc_jstr(pod, "spec.nodeName");
    const char *container = kc_query(req->query, "container");
    json_t *cs = kc_jget(pod, "spec.containers");
    if (!node) {
        snprintf(msg, sizeof msg, "pod %s does not have a host assigned", name);
        bad(resp, msg);
        json_decref(pod);
        return;
    }
    if (!container) {
        if (json_array_size(cs) == 1) {
            container = kc_jstr(json_array_get(cs, 0), "name");
        } else {
            struct kc_buf b;
            kc_buf_init(&b, 4096);
            size_t i;
            json_t *c;
            json_array_foreach(cs, i, c) kc_buf_printf(&b, "%s%s", i ? " " : "", kc_jstr(c, "name") ?: "");
            snprintf(msg, sizeof msg, "a container name must be specified for pod %s, choose one of: [%s]", name,
                     b.data ? b.data : "");
            kc_buf_release(&b);
            bad(resp, msg);
            json_decref(pod);
            return;
        }
    }
    snprintf(key, sizeof key, "%s%s", nodes->storage_prefix, node);
    struct kc_obj *no = kc_cache_get(nodes->storage, key);
    json_t *nj = no ? kc_obj_parse(no) : NULL;
    kc_obj_unref(no);
    const char *addr = NULL, *host = NULL;
    size_t i;
    json_t *a;
    json_array_foreach(kc_jget(nj, "status.addresses"), i, a)
    {
        if (!strcmp(kc_jstr(a, "type") ?: "", "InternalIP") && !addr)
            addr = kc_jstr(a, "address");
        if (!strcmp(kc_jstr(a, "type") ?: "", "Hostname") && !host)
            host = kc_jstr(a, "address");
    }
    if (!addr)
        addr = host;
    json_int_t port = json_integer_value(kc_jget(nj, "status.daemonEndpoints.kubeletEndpoint.Port"));
    if (!addr) {
        snprintf(msg, sizeof msg, "node %s has no address to fetch logs from", node);
        kc_resp_status(resp, 503, "ServiceUnavailable", msg, NULL, NULL, NULL, NULL);
        json_decref(pod);
        json_decref(nj);
        return;
    }
    /* forward the log options */
    struct kc_buf url;
    kc_buf_init(&url, 8192);
    kc_buf_printf(&url, "https://%s%s%s:%lld/containerLogs/%s/%s/%s", strchr(addr, ':') ? "[" : "", addr,
                  strchr(addr, ':') ? "]" : "", (long long)(port ? port : 10250), ns, name, container);
    static const char *const fwd[] = {"previous", "tailLines", "timestamps", "limitBytes", "sinceSeconds", "sinceTime"};
    char sep = '?';
    CURL *h = curl_easy_init();
    for (size_t k = 0; k < sizeof fwd / sizeof fwd[0]; k++) {
        const char *v = kc_query(req->query, fwd[k]);
        if (!v)
            continue;
        char *e = curl_easy_escape(h, v, 0);
        kc_buf_printf(&url, "%c%s=%s", sep, fwd[k], e ? e : "");
        curl_free(e);
        sep = '&';
    }
    bool follow = kc_query_bool(req->query, "follow");
    if (follow)
        kc_buf_printf(&url, "%cfollow=true", sep);
    struct kc_buf body;
    kc_buf_init(&body, 64u * 1024 * 1024);
    struct curl_slist *hdr = NULL;
    char auth[1200];
    if (req->srv->kubelet_token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", req->srv->kubelet_token);
        hdr = curl_slist_append(hdr, auth);
    }
    curl_easy_setopt(h, CURLOPT_URL, url.data);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (follow) {
        follow_start(req, resp, h, hdr, url.data);
        kc_buf_release(&body);
        kc_buf_release(&url);
        json_decref(pod);
        json_decref(nj);
        return;
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (rc != CURLE_OK) {
        snprintf(msg, sizeof msg, "Get \"%.300s\": %s", url.data, curl_easy_strerror(rc));
        kc_resp_status(resp, 500, "InternalError", msg, NULL, NULL, NULL, NULL);
    } else {
        size_t len;
        char *s = kc_buf_steal(&body, &len);
        kc_resp_raw(resp, (int)code, code == 200 ? "text/plain" : "application/json", s, len);
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    kc_buf_release(&body);
    kc_buf_release(&url);
    json_decref(pod);
    json_decref(nj);
}
