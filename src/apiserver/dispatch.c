/* dispatch.c — routes a request path to discovery or to a resource handler.
 *
 *   /api/v1/[namespaces/NS/]PLURAL[/NAME[/SUB]]
 *   /apis/GROUP/VERSION/[namespaces/NS/]PLURAL[/NAME[/SUB]]
 *
 * "/api/v1/namespaces/NAME[/SUB]" addresses the Namespace itself. Path
 * segments are bounded (a request path has at most 8 segments of 253
 * bytes), so nothing here allocates.
 */
#include "apiserver/internal.h"

#include <stdio.h>
#include <string.h>

#include "util/timeutil.h"

#define MAX_SEG 10

static int split(const char *path, char seg[MAX_SEG][256])
{
    int n = 0;
    const char *p = path;
    while (*p == '/')
        p++;
    while (*p) {
        size_t len = strcspn(p, "/");
        if (n >= MAX_SEG || len >= 256)
            return -1;
        memcpy(seg[n], p, len);
        seg[n][len] = 0;
        n++;
        p += len;
        while (*p == '/')
            p++;
    }
    return n;
}

/* Upstream's verb normalisation: LIST+watch → WATCH, PATCH with an apply body → APPLY. */
static void fill_info(struct kc_req *req, const struct kc_resource *res, const char *ns, const char *name,
                      const char *sub)
{
    struct kc_req_info *ri = &req->info;
    const char *m = req->method;
    bool watch = kc_query_bool(req->query, "watch");
    if (!strcmp(m, "GET"))
        ri->verb = watch ? "WATCH" : name ? "GET" : "LIST";
    else if (!strcmp(m, "POST"))
        ri->verb = "POST";
    else if (!strcmp(m, "PUT"))
        ri->verb = "PUT";
    else if (!strcmp(m, "PATCH"))
        ri->verb = req->content_type && strstr(req->content_type, "apply-patch") ? "APPLY" : "PATCH";
    else if (!strcmp(m, "DELETE"))
        ri->verb = name ? "DELETE" : "DELETECOLLECTION";
    else
        ri->verb = m;
    ri->group = res->group;
    ri->version = res->version;
    ri->resource = res->plural;
    /* label values must outlive the request's path buffers: map to static strings */
    static const char *const subs[] = {"status", "scale", "binding", "eviction"};
    ri->subresource = "";
    for (size_t i = 0; sub && i < sizeof subs / sizeof subs[0]; i++)
        if (!strcmp(sub, subs[i]))
            ri->subresource = subs[i];
    ri->scope = name ? "resource" : ns ? "namespace" : "cluster";
    const char *d = kc_query(req->query, "dryRun");
    ri->dry_run = d && !strcmp(d, "All");
    ri->resource_request = true;
}

static void not_found(struct kc_resp *resp)
{
    kc_resp_status(resp, 404, "NotFound", "the server could not find the requested resource", NULL, NULL, NULL, NULL);
}

static void dispatch(struct kc_req *req, struct kc_resp *resp)
{
    if (!strcmp(req->path, "/metrics") && !strcmp(req->method, "GET")) {
        kc_metrics_respond(resp);
        return;
    }
    if (kc_discovery(req, resp))
        return;
    char seg[MAX_SEG][256];
    int n = split(req->path, seg);
    if (n < 0) {
        not_found(resp);
        return;
    }
    const char *group, *version;
    int i;
    if (n >= 2 && !strcmp(seg[0], "api")) {
        group = "";
        version = seg[1];
        i = 2;
    } else if (n >= 3 && !strcmp(seg[0], "apis")) {
        group = seg[1];
        version = seg[2];
        i = 3;
    } else {
        not_found(resp);
        return;
    }
    if (i >= n) {
        not_found(resp);
        return;
    }
    const char *ns = NULL;
    if (!strcmp(seg[i], "namespaces") && i + 2 < n) {
        const struct kc_resource *r = kc_resource_find(group, version, seg[i + 2]);
        if (r && r->namespaced) {
            ns = seg[i + 1];
            i += 2;
        }
    }
    const struct kc_resource *res = kc_resource_find(group, version, seg[i]);
    if (!res) {
        not_found(resp);
        return;
    }
    const char *name = i + 1 < n ? seg[i + 1] : NULL;
    const char *sub = i + 2 < n ? seg[i + 2] : NULL;
    if (i + 3 < n) {
        not_found(resp);
        return;
    }
    if (res->namespaced && name && !ns) {
        /* /api/v1/pods/NAME is not a thing */
        not_found(resp);
        return;
    }
    fill_info(req, res, ns, name, sub);
    kc_handle_resource(req, resp, res, ns, name, sub);
}

void kc_dispatch(struct kc_req *req, struct kc_resp *resp)
{
    double t0 = kc_mono_now();
    memset(&req->info, 0, sizeof req->info);
    dispatch(req, resp);
    struct kc_req_info *ri = &req->info;
    if (!ri->resource_request)
        return;
    kc_apimetrics_request(ri, resp->code, kc_mono_now() - t0);
}
