/* discovery.c — /version, /api, /apis (aggregated v2 and v2beta1, chosen by
 * the Accept header, with the exact content types kubectl requires), legacy
 * discovery documents, and /openapi/v2 and /openapi/v3 generated from the
 * schema module. All documents are derived from the resource table. */
#include "apiserver/internal.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/schema.h"

#define KC_K8S_MINOR "33"
#define KC_GIT_VERSION "v1.33.0-kubec"

static void verbs(json_t *a, bool sub)
{
    static const char *all[] = {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"};
    static const char *subv[] = {"get", "patch", "update"};
    if (sub)
        for (size_t i = 0; i < 3; i++)
            json_array_append_new(a, json_string(subv[i]));
    else
        for (size_t i = 0; i < 8; i++)
            json_array_append_new(a, json_string(all[i]));
}

static json_t *gvk(const char *g, const char *v, const char *k)
{
    return json_pack("{s:s,s:s,s:s}", "group", g, "version", v, "kind", k);
}

static json_t *agg_resource(const struct kc_resource *r)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:o}", "resource", r->plural, "singularResource", r->singular, "scope",
                          r->namespaced ? "Namespaced" : "Cluster", "responseKind",
                          gvk(r->group, r->version, r->kind));
    json_t *v = json_array();
    verbs(v, false);
    json_object_set_new(o, "verbs", v);
    if (r->short_names[0]) {
        json_t *sn = json_array();
        for (int i = 0; i < 4 && r->short_names[i]; i++)
            json_array_append_new(sn, json_string(r->short_names[i]));
        json_object_set_new(o, "shortNames", sn);
    }
    if (r->categories[0]) {
        json_t *c = json_array();
        for (int i = 0; i < 2 && r->categories[i]; i++)
            json_array_append_new(c, json_string(r->categories[i]));
        json_object_set_new(o, "categories", c);
    }
    json_t *subs = json_array();
    if (r->subresources & KC_SUB_STATUS) {
        json_t *s = json_pack("{s:s,s:o}", "subresource", "status", "responseKind", gvk(r->group, r->version, r->kind));
        json_t *sv = json_array();
        verbs(sv, true);
        json_object_set_new(s, "verbs", sv);
        json_array_append_new(subs, s);
    }
    if (r->subresources & KC_SUB_SCALE) {
        json_t *s = json_pack("{s:s,s:o}", "subresource", "scale", "responseKind", gvk("autoscaling", "v1", "Scale"));
        json_t *sv = json_array();
        verbs(sv, true);
        json_object_set_new(s, "verbs", sv);
        json_array_append_new(subs, s);
    }
    if (r->subresources & KC_SUB_BINDING)
        json_array_append_new(subs, json_pack("{s:s,s:o,s:[s]}", "subresource", "binding", "responseKind",
                                              gvk("", "v1", "Binding"), "verbs", "create"));
    if (r->subresources & KC_SUB_EVICTION)
        json_array_append_new(subs, json_pack("{s:s,s:o,s:[s]}", "subresource", "eviction", "responseKind",
                                              gvk("policy", "v1", "Eviction"), "verbs", "create"));
    if (r->subresources & KC_SUB_LOG)
        json_array_append_new(subs, json_pack("{s:s,s:o,s:[s]}", "subresource", "log", "responseKind",
                                              gvk("", "v1", "Pod"), "verbs", "get"));
    if (json_array_size(subs))
        json_object_set_new(o, "subresources", subs);
    else
        json_decref(subs);
    return o;
}

/* Distinct groups in table order ("" first). */
static size_t groups(const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < kc_nresources; i++) {
        bool seen = false;
        for (size_t j = 0; j < n; j++)
            if (!strcmp(out[j], kc_resources[i].group))
                seen = true;
        if (!seen && n < max)
            out[n++] = kc_resources[i].group;
    }
    return n;
}

static json_t *agg_group(const char *g)
{
    json_t *res = json_array();
    const char *version = "v1";
    for (size_t i = 0; i < kc_nresources; i++)
        if (!strcmp(kc_resources[i].group, g)) {
            json_array_append_new(res, agg_resource(&kc_resources[i]));
            version = kc_resources[i].version;
        }
    json_t *meta = *g ? json_pack("{s:s}", "name", g) : json_object();
    return json_pack("{s:o,s:[{s:s,s:o,s:s}]}", "metadata", meta, "versions", "version", version, "resources", res,
                     "freshness", "Current");
}

static const char *agg_version(const char *accept)
{
    if (!accept || !strstr(accept, "as=APIGroupDiscoveryList"))
        return NULL;
    /* honour the client's order: the first aggregated entry it lists */
    const char *v2 = strstr(accept, "v=v2;");
    const char *v2b = strstr(accept, "v=v2beta1");
    if (!v2)
        v2 = strstr(accept, "v=v2,");
    if (v2 && (!v2b || v2 < v2b))
        return "v2";
    if (v2b)
        return "v2beta1";
    return NULL;
}

static void respond_agg(struct kc_resp *resp, bool core, const char *ver)
{
    json_t *items = json_array();
    const char *gs[16];
    size_t ng = groups(gs, 16);
    for (size_t i = 0; i < ng; i++)
        if ((core && !*gs[i]) || (!core && *gs[i]))
            json_array_append_new(items, agg_group(gs[i]));
    char av[64];
    snprintf(av, sizeof av, "apidiscovery.k8s.io/%s", ver);
    json_t *doc = json_pack("{s:s,s:s,s:{},s:o}", "kind", "APIGroupDiscoveryList", "apiVersion", av, "metadata",
                            "items", items);
    kc_resp_json(resp, 200, doc);
    resp->content_type = !strcmp(ver, "v2")
                             ? "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
                             : "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";
}

static json_t *legacy_resources(const char *g, const char *v)
{
    json_t *list = json_array();
    for (size_t i = 0; i < kc_nresources; i++) {
        const struct kc_resource *r = &kc_resources[i];
        if (strcmp(r->group, g) || strcmp(r->version, v))
            continue;
        json_t *o = json_pack("{s:s,s:s,s:b,s:s}", "name", r->plural, "singularName", r->singular, "namespaced",
                              r->namespaced, "kind", r->kind);
        json_t *vb = json_array();
        verbs(vb, false);
        json_object_set_new(o, "verbs", vb);
        if (r->short_names[0]) {
            json_t *sn = json_array();
            for (int k = 0; k < 4 && r->short_names[k]; k++)
                json_array_append_new(sn, json_string(r->short_names[k]));
            json_object_set_new(o, "shortNames", sn);
        }
        if (r->categories[0])
            json_object_set_new(o, "categories", json_pack("[s]", r->categories[0]));
        json_array_append_new(list, o);
        if (r->subresources & KC_SUB_STATUS) {
            char n[96];
            snprintf(n, sizeof n, "%s/status", r->plural);
            json_t *s = json_pack("{s:s,s:s,s:b,s:s}", "name", n, "singularName", "", "namespaced", r->namespaced,
                                  "kind", r->kind);
            json_t *sv = json_array();
            verbs(sv, true);
            json_object_set_new(s, "verbs", sv);
            json_array_append_new(list, s);
        }
        if (r->subresources & KC_SUB_SCALE) {
            char n[96];
            snprintf(n, sizeof n, "%s/scale", r->plural);
            json_t *s = json_pack("{s:s,s:s,s:b,s:s,s:s,s:s}", "name", n, "singularName", "", "namespaced",
                                  r->namespaced, "group", "autoscaling", "version", "v1", "kind", "Scale");
            json_t *sv = json_array();
            verbs(sv, true);
            json_object_set_new(s, "verbs", sv);
            json_array_append_new(list, s);
        }
        if (r->subresources & KC_SUB_BINDING) {
            char n[96];
            snprintf(n, sizeof n, "%s/binding", r->plural);
            json_array_append_new(list, json_pack("{s:s,s:s,s:b,s:s,s:[s]}", "name", n, "singularName", "",
                                                  "namespaced", r->namespaced, "kind", "Binding", "verbs", "create"));
        }
        if (r->subresources & KC_SUB_LOG) {
            char n[96];
            snprintf(n, sizeof n, "%s/log", r->plural);
            json_array_append_new(list, json_pack("{s:s,s:s,s:b,s:s,s:[s]}", "name", n, "singularName", "",
                                                  "namespaced", r->namespaced, "kind", "Pod", "verbs", "get"));
        }
        if (r->subresources & KC_SUB_EVICTION) {
            char n[96];
            snprintf(n, sizeof n, "%s/eviction", r->plural);
            json_array_append_new(list, json_pack("{s:s,s:s,s:b,s:s,s:s,s:s,s:[s]}", "name", n, "singularName", "",
                                                  "namespaced", r->namespaced, "group", "policy", "version", "v1",
                                                  "kind", "Eviction", "verbs", "create"));
        }
    }
    char gv[96];
    if (*g)
        snprintf(gv, sizeof gv, "%s/%s", g, v);
    else
        snprintf(gv, sizeof gv, "%s", v);
    return json_pack("{s:s,s:s,s:s,s:o}", "kind", "APIResourceList", "apiVersion", "v1", "groupVersion", gv,
                     "resources", list);
}

static json_t *api_group(const char *g)
{
    char gv[96];
    if (snprintf(gv, sizeof gv, "%s/v1", g) >= (int)sizeof gv) /* group names are ours, all short */
        gv[0] = 0;
    return json_pack("{s:s,s:s,s:s,s:[{s:s,s:s}],s:{s:s,s:s}}", "kind", "APIGroup", "apiVersion", "v1", "name", g,
                     "versions", "groupVersion", gv, "version", "v1", "preferredVersion", "groupVersion", gv,
                     "version", "v1");
}

/* ---------- OpenAPI ---------- */

static json_t *openapi_doc(const char *g, const char *v)
{
    struct kc_openapi_kind kinds[32];
    const char *subs_status[] = {"status", NULL};
    const char *subs_status_scale[] = {"status", "scale", NULL};
    const char *subs_pod[] = {"status", "binding", NULL};
    size_t n = 0;
    for (size_t i = 0; i < kc_nresources && n < 32; i++) {
        const struct kc_resource *r = &kc_resources[i];
        if (strcmp(r->group, g) || strcmp(r->version, v))
            continue;
        kinds[n].group = r->group;
        kinds[n].version = r->version;
        kinds[n].kind = r->kind;
        kinds[n].plural = r->plural;
        kinds[n].namespaced = r->namespaced;
        kinds[n].subresources = (r->subresources & KC_SUB_BINDING) ? subs_pod
                                : (r->subresources & KC_SUB_SCALE) ? subs_status_scale
                                : (r->subresources & KC_SUB_STATUS) ? subs_status
                                                                   : NULL;
        n++;
    }
    if (!n)
        return NULL;
    return kc_openapi_v3_doc(kc_schema_default(), g, v, kinds, n);
}

static pthread_once_t oa_once = PTHREAD_ONCE_INIT;
struct oa_doc {
    char path[96];  /* "apis/apps/v1" */
    char *body;
    size_t len;
    char hash[65];
};
static struct oa_doc oa_docs[16];
static size_t oa_n;

static void oa_build(void)
{
    for (size_t i = 0; i < kc_nresources; i++) {
        const struct kc_resource *r = &kc_resources[i];
        char path[96];
        if (*r->group)
            snprintf(path, sizeof path, "apis/%s/%s", r->group, r->version);
        else
            snprintf(path, sizeof path, "api/%s", r->version);
        bool seen = false;
        for (size_t j = 0; j < oa_n; j++)
            if (!strcmp(oa_docs[j].path, path))
                seen = true;
        if (seen || oa_n >= 16)
            continue;
        json_t *doc = openapi_doc(r->group, r->version);
        if (!doc)
            continue;
        struct oa_doc *d = &oa_docs[oa_n++];
        snprintf(d->path, sizeof d->path, "%s", path);
        d->body = kc_json_dump(doc, &d->len);
        json_decref(doc);
        unsigned char md[SHA512_DIGEST_LENGTH];
        SHA512((const unsigned char *)d->body, d->len, md);
        for (int k = 0; k < 32; k++)
            snprintf(d->hash + 2 * k, 3, "%02X", md[k]);
    }
}

static bool serve_openapi(struct kc_req *req, struct kc_resp *resp)
{
    const char *p = req->path;
    if (!strcmp(p, "/openapi/v2") || !strcmp(p, "/swagger-2.0.0.pb-v1")) {
        size_t len;
        const unsigned char *pb = kc_openapi_v2_pb(&len);
        char *b = malloc(len);
        memcpy(b, pb, len);
        kc_resp_raw(resp, 200, "application/com.github.proto-openapi.spec.v2.v1.0+protobuf", b, len);
        return true;
    }
    if (strncmp(p, "/openapi/v3", 11))
        return false;
    pthread_once(&oa_once, oa_build);
    if (!strcmp(p, "/openapi/v3") || !strcmp(p, "/openapi/v3/")) {
        json_t *paths = json_object();
        for (size_t i = 0; i < oa_n; i++) {
            char url[4096];
            snprintf(url, sizeof url, "/openapi/v3/%s?hash=%s", oa_docs[i].path, oa_docs[i].hash);
            json_object_set_new(paths, oa_docs[i].path, json_pack("{s:s}", "serverRelativeURL", url));
        }
        kc_resp_json(resp, 200, json_pack("{s:o}", "paths", paths));
        return true;
    }
    for (size_t i = 0; i < oa_n; i++) {
        if (!strcmp(p + 12, oa_docs[i].path)) {
            const char *h = kc_query(req->query, "hash");
            kc_resp_raw(resp, 200, "application/json", strndup(oa_docs[i].body, oa_docs[i].len), oa_docs[i].len);
            resp->etag = malloc(70);
            snprintf(resp->etag, 70, "\"%s\"", oa_docs[i].hash);
            resp->cacheable = h && !strcmp(h, oa_docs[i].hash);
            return true;
        }
    }
    kc_resp_status(resp, 404, "NotFound", "the server could not find the requested resource", NULL, NULL, NULL, NULL);
    return true;
}

/* Returns true if the request was a discovery / version / OpenAPI request. */
bool kc_discovery(struct kc_req *req, struct kc_resp *resp)
{
    const char *p = req->path;
    if (strcmp(req->method, "GET"))
        return false;
    if (!strcmp(p, "/version") || !strcmp(p, "/version/")) {
        kc_resp_json(resp, 200,
                     json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "major", "1", "minor", KC_K8S_MINOR,
                               "gitVersion", KC_GIT_VERSION, "gitCommit", "kubec", "gitTreeState", "clean",
                               "buildDate", "2026-11-26T00:00:00Z", "goVersion", "c11", "compiler", "gcc",
                               "platform", "linux/amd64"));
        return true;
    }
    if (serve_openapi(req, resp))
        return true;
    const char *agg = agg_version(req->accept);
    if (!strcmp(p, "/api") || !strcmp(p, "/api/")) {
        if (agg)
            respond_agg(resp, true, agg);
        else
            kc_resp_json(resp, 200,
                         json_pack("{s:s,s:[s],s:[{s:s,s:s}]}", "kind", "APIVersions", "versions", "v1",
                                   "serverAddressByClientCIDRs", "clientCIDR", "0.0.0.0/0", "serverAddress",
                                   req->srv ? req->srv->server_url + 8 : ""));
        return true;
    }
    if (!strcmp(p, "/apis") || !strcmp(p, "/apis/")) {
        if (agg) {
            respond_agg(resp, false, agg);
        } else {
            json_t *gl = json_array();
            const char *gs[16];
            size_t ng = groups(gs, 16);
            for (size_t i = 0; i < ng; i++)
                if (*gs[i]) {
                    json_t *g = api_group(gs[i]);
                    json_object_del(g, "kind");
                    json_object_del(g, "apiVersion");
                    json_array_append_new(gl, g);
                }
            kc_resp_json(resp, 200, json_pack("{s:s,s:s,s:o}", "kind", "APIGroupList", "apiVersion", "v1", "groups", gl));
        }
        return true;
    }
    if (!strcmp(p, "/api/v1") || !strcmp(p, "/api/v1/")) {
        kc_resp_json(resp, 200, legacy_resources("", "v1"));
        return true;
    }
    if (!strncmp(p, "/apis/", 6)) {
        char g[96], v[32];
        const char *rest = p + 6;
        const char *slash = strchr(rest, '/');
        if (!slash || !slash[1]) {
            size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
            snprintf(g, sizeof g, "%.*s", (int)n, rest);
            const char *gs[16];
            size_t ng = groups(gs, 16);
            for (size_t i = 0; i < ng; i++)
                if (*gs[i] && !strcmp(gs[i], g)) {
                    kc_resp_json(resp, 200, api_group(g));
                    return true;
                }
            return false;
        }
        snprintf(g, sizeof g, "%.*s", (int)(slash - rest), rest);
        const char *vs = slash + 1;
        size_t vn = strcspn(vs, "/");
        if (vs[vn] && vs[vn + 1])
            return false;
        snprintf(v, sizeof v, "%.*s", (int)vn, vs);
        for (size_t i = 0; i < kc_nresources; i++)
            if (!strcmp(kc_resources[i].group, g) && !strcmp(kc_resources[i].version, v)) {
                kc_resp_json(resp, 200, legacy_resources(g, v));
                return true;
            }
    }
    return false;
}
