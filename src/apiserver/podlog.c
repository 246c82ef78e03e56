/* podlog.c — GET pods/NAME/log: the API server proxies to the node agent's log API
 * (docs/runtime.md): it finds the pod's node, its address and agent port, forwards
 * GET https://<node>:<port>/containerLogs/NS/POD/CONTAINER?<query> with the agent's bearer token and
 * answers with the agent's body. Agents use self-signed serving certificates, so the certificate is not
 * verified, as upstream without --kubelet-certificate-authority. `follow` is answered with what exists
 * when the request is made (streaming the tail is not implemented yet: docs/apiserver.md). */
#include "apiserver/internal.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t sink(char *p, size_t sz, size_t n, void *ud)
{
    struct kc_buf *b = ud;
    return kc_buf_append(b, p, sz * n) ? 0 : sz * n;
}

static void bad(struct kc_resp *resp, const char *msg)
{
    kc_resp_status(resp, 400, "BadRequest", msg, NULL, NULL, NULL, NULL);
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
