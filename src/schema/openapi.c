/* openapi.c — the OpenAPI documents kubectl downloads, generated from the schema.
 *
 * kc_openapi_v3_doc builds the document of one group-version in the shape
 * of upstream's /openapi/v3/apis/<g>/<v>: "openapi":"3.0.0", "info",
 * "paths" (collection, item and subresource paths of every served kind,
 * each operation with x-kubernetes-action and
 * x-kubernetes-group-version-kind, the query parameters fieldValidation /
 * fieldManager / dryRun kubectl looks for, and the four PATCH content types)
 * and "components.schemas" with every type reachable from those kinds.
 * Field shapes follow upstream's v3 conventions: a reference with siblings
 * is {"allOf":[{"$ref":...}],"description":...}; Time, MicroTime, Quantity
 * and IntOrString are component schemas of their own.
 *
 * kc_openapi_v2_pb returns the smallest gnostic openapi_v2.Document that
 * kubectl 1.27/1.28 accept (swagger: "2.0").
 *
 * Data structure: jansson objects, built fresh on each call (the caller
 * caches the result and its ETag). No shared state: thread-safe.
 */
#include "schema/schema_int.h"

#include <stdio.h>
#include <string.h>

#define REF_PREFIX "#/components/schemas/"
#define DEF_TIME "io.k8s.apimachinery.pkg.apis.meta.v1.Time"
#define DEF_MICROTIME "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime"
#define DEF_QUANTITY "io.k8s.apimachinery.pkg.api.resource.Quantity"
#define DEF_INTORSTRING "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
#define DEF_RAW "io.k8s.apimachinery.pkg.runtime.RawExtension"
#define DEF_PATCH "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
#define DEF_STATUS "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
#define DEF_DELETEOPTS "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"
#define DEF_LISTMETA "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"

static json_t *ref(const char *def)
{
    char buf[512];
    snprintf(buf, sizeof buf, REF_PREFIX "%s", def);
    return json_pack("{s:s}", "$ref", buf);
}

/* A named component schema for the special types (upstream's v3 shapes). */
static const char *special_def(enum kc_ftype t)
{
    switch (t) {
    case KC_F_TIME: return DEF_TIME;
    case KC_F_MICROTIME: return DEF_MICROTIME;
    case KC_F_QUANTITY: return DEF_QUANTITY;
    case KC_F_INTORSTRING: return DEF_INTORSTRING;
    case KC_F_RAW: return DEF_RAW;
    default: return NULL;
    }
}

static json_t *special_schema(const char *def)
{
    if (strcmp(def, DEF_TIME) == 0 || strcmp(def, DEF_MICROTIME) == 0)
        return json_pack("{s:s, s:s, s:s}", "description", "A timestamp in RFC 3339 form.", "format", "date-time",
                         "type", "string");
    if (strcmp(def, DEF_QUANTITY) == 0)
        return json_pack("{s:s, s:[{s:s},{s:s}]}", "description",
                         "A fixed-point number with an optional suffix, such as 500m, 2Gi or 1.5.", "oneOf", "type",
                         "string", "type", "number");
    if (strcmp(def, DEF_INTORSTRING) == 0)
        return json_pack("{s:s, s:s, s:[{s:s},{s:s}]}", "description", "Either an integer or a string.", "format",
                         "int-or-string", "oneOf", "type", "integer", "type", "string");
    if (strcmp(def, DEF_RAW) == 0)
        return json_pack("{s:s, s:s}", "description", "Any JSON object, stored as it was sent.", "type", "object");
    return NULL;
}

/* The schema of one value of f's element type (no list/map wrapping). */
static json_t *value_schema(const struct kc_field *f, bool *is_ref)
{
    *is_ref = false;
    switch (f->type) {
    case KC_F_STRING: return json_pack("{s:s}", "type", "string");
    case KC_F_INT32: return json_pack("{s:s, s:s}", "format", "int32", "type", "integer");
    case KC_F_INT64: return json_pack("{s:s, s:s}", "format", "int64", "type", "integer");
    case KC_F_BOOL: return json_pack("{s:s}", "type", "boolean");
    case KC_F_DOUBLE: return json_pack("{s:s, s:s}", "format", "double", "type", "number");
    case KC_F_BYTES: return json_pack("{s:s, s:s}", "format", "byte", "type", "string");
    case KC_F_DURATION: return json_pack("{s:s}", "type", "string");
    case KC_F_MESSAGE:
        *is_ref = true;
        return ref(f->msg->name);
    default:
        *is_ref = true;
        return ref(special_def(f->type));
    }
}

static json_t *field_schema(const struct kc_field *f)
{
    bool is_ref;
    json_t *v = value_schema(f, &is_ref), *s;
    if (f->list) {
        s = json_pack("{s:o, s:s}", "items", v, "type", "array");
    } else if (f->map) {
        s = json_pack("{s:o, s:s}", "additionalProperties", v, "type", "object");
    } else if (is_ref && f->description) {
        s = json_pack("{s:[o]}", "allOf", v);  /* upstream's form for a $ref with siblings */
    } else {
        s = v;
    }
    if (!s)
        return NULL;
    if (f->description)
        json_object_set_new(s, "description", json_string(f->description));
    if (f->merge_key)
        json_object_set_new(s, "x-kubernetes-patch-merge-key", json_string(f->merge_key));
    if (f->strategy) {
        const char *st = f->strategy == (KC_PS_MERGE | KC_PS_RETAIN_KEYS) ? "merge,retainKeys"
                         : f->strategy == KC_PS_MERGE                     ? "merge"
                                                                          : "retainKeys";
        json_object_set_new(s, "x-kubernetes-patch-strategy", json_string(st));
    }
    if (f->list_type)
        json_object_set_new(s, "x-kubernetes-list-type", json_string(f->list_type));
    if (f->list_map_keys) {
        json_t *keys = json_array();
        char buf[256];
        snprintf(buf, sizeof buf, "%s", f->list_map_keys);
        char *save = NULL;
        for (char *k = strtok_r(buf, ",", &save); k; k = strtok_r(NULL, ",", &save))
            json_array_append_new(keys, json_string(k));
        json_object_set_new(s, "x-kubernetes-list-map-keys", keys);
    }
    return s;
}

static json_t *gvk_obj(const char *g, const char *v, const char *k)
{
    return json_pack("{s:s, s:s, s:s}", "group", g, "kind", k, "version", v);
}

static json_t *type_schema(const struct kc_type *t)
{
    json_t *props = json_object(), *req = json_array();
    for (size_t i = 0; i < t->nfields; i++) {
        const struct kc_field *f = &t->fields[i];
        json_object_set_new(props, f->name, field_schema(f));
        if (f->required)
            json_array_append_new(req, json_string(f->name));
    }
    json_t *s = json_pack("{s:o, s:s}", "properties", props, "type", "object");
    if (t->description)
        json_object_set_new(s, "description", json_string(t->description));
    if (json_array_size(req))
        json_object_set_new(s, "required", req);
    else
        json_decref(req);
    if (t->kind)
        json_object_set_new(s, "x-kubernetes-group-version-kind",
                            json_pack("[o]", gvk_obj(t->group, t->version, t->kind)));
    return s;
}

/* Adds t and every type reachable from it to comps (depth-first; a type
 * already present stops the walk, which also ends cycles). */
static void add_reachable(json_t *comps, const struct kc_type *t)
{
    if (json_object_get(comps, t->name))
        return;
    json_object_set_new(comps, t->name, type_schema(t));
    for (size_t i = 0; i < t->nfields; i++) {
        const struct kc_field *f = &t->fields[i];
        const char *def = special_def(f->type);
        if (f->type == KC_F_MESSAGE)
            add_reachable(comps, f->msg);
        else if (def && !json_object_get(comps, def))
            json_object_set_new(comps, def, special_schema(def));
    }
}

/* The <Kind>List schema: the described one if the schema has it, else built. */
static void add_list_schema(const struct kc_schema *s, json_t *comps, const struct kc_type *t, const char *listdef)
{
    const struct kc_type *lt = kc_schema_type(s, listdef);
    if (lt) {
        add_reachable(comps, lt);
        return;
    }
    char kind[256];
    snprintf(kind, sizeof kind, "%sList", t->kind);
    const struct kc_type *lm = kc_schema_type(s, DEF_LISTMETA);
    if (lm)
        add_reachable(comps, lm);
    json_t *sch = json_pack("{s:{s:{s:s}, s:{s:o, s:s}, s:{s:s}, s:o}, s:[s], s:s, s:[o]}",
                            "properties", "apiVersion", "type", "string", "items", "items", ref(t->name), "type",
                            "array", "kind", "type", "string", "metadata",
                            lm ? ref(DEF_LISTMETA) : json_pack("{s:s}", "type", "object"), "required", "items",
                            "type", "object", "x-kubernetes-group-version-kind",
                            gvk_obj(t->group, t->version, kind));
    json_object_set_new(comps, listdef, sch);
}

static void add_fixed_schemas(const struct kc_schema *s, json_t *comps)
{
    json_object_set_new(comps, DEF_PATCH,
                        json_pack("{s:s, s:s}", "description",
                                  "The body of a PATCH request, in the form its Content-Type names.", "type",
                                  "object"));
    const char *defs[] = {DEF_STATUS, DEF_DELETEOPTS};
    for (size_t i = 0; i < 2; i++) {
        const struct kc_type *t = kc_schema_type(s, defs[i]);
        if (t)
            add_reachable(comps, t);
        else if (!json_object_get(comps, defs[i]))
            json_object_set_new(comps, defs[i], json_pack("{s:s}", "type", "object"));
    }
}

/* ---------- paths ---------- */

static json_t *query_param(const char *name, const char *type, const char *desc)
{
    return json_pack("{s:s, s:s, s:s, s:{s:s, s:b}}", "description", desc, "in", "query", "name", name, "schema",
                     "type", type, "uniqueItems", 1);
}

static json_t *path_param(const char *name, const char *desc)
{
    return json_pack("{s:s, s:s, s:s, s:b, s:{s:s, s:b}}", "description", desc, "in", "path", "name", name,
                     "required", 1, "schema", "type", "string", "uniqueItems", 1);
}

static json_t *write_params(bool patch)
{
    json_t *p = json_array();
    json_array_append_new(p, query_param("dryRun", "string",
                                         "When present (All), the request is fully processed but nothing is stored."));
    if (patch)
        json_array_append_new(p, query_param("force", "boolean",
                                             "For apply requests: take over fields owned by other managers."));
    json_array_append_new(p, query_param("fieldManager", "string",
                                         "The name of the actor making the change, recorded in managedFields."));
    json_array_append_new(p, query_param("fieldValidation", "string",
                                         "How to treat unknown or duplicate fields: Ignore, Warn or Strict."));
    return p;
}

static json_t *list_params(void)
{
    json_t *p = json_array();
    static const char *const str[][2] = {
        {"labelSelector", "Only objects whose labels match this selector."},
        {"fieldSelector", "Only objects whose fields match this selector."},
        {"resourceVersion", "The resource version to serve the list or start the watch from."},
        {"resourceVersionMatch", "How resourceVersion is applied to a list."},
        {"continue", "The token of the next page of a list."},
    };
    for (size_t i = 0; i < sizeof str / sizeof str[0]; i++)
        json_array_append_new(p, query_param(str[i][0], "string", str[i][1]));
    json_array_append_new(p, query_param("watch", "boolean", "Stream changes instead of listing."));
    json_array_append_new(p, query_param("allowWatchBookmarks", "boolean", "Ask for BOOKMARK events."));
    json_array_append_new(p, query_param("sendInitialEvents", "boolean", "Begin a watch with the current state."));
    json_array_append_new(p, query_param("timeoutSeconds", "integer", "Ends the list or watch after this time."));
    json_array_append_new(p, query_param("limit", "integer", "The largest number of items to return."));
    return p;
}

static json_t *content(const char *def, const char *const *types)
{
    json_t *c = json_object();
    for (size_t i = 0; types[i]; i++)
        json_object_set_new(c, types[i], json_pack("{s:o}", "schema", ref(def)));
    return c;
}

static const char *const resp_types[] = {"application/json", "application/yaml", "application/vnd.kubernetes.protobuf",
                                         NULL};
static const char *const patch_types[] = {"application/json-patch+json", "application/merge-patch+json",
                                          "application/strategic-merge-patch+json", "application/apply-patch+yaml",
                                          NULL};
static const char *const json_only[] = {"application/json", NULL};

static json_t *responses(const char *def, bool created)
{
    json_t *r = json_pack("{s:{s:o, s:s}}", "200", "content", content(def, resp_types), "description", "OK");
    if (created)
        json_object_set_new(r, "201", json_pack("{s:o, s:s}", "content", content(def, resp_types), "description",
                                                "Created"));
    return r;
}

struct op_ctx {
    const struct kc_openapi_kind *k;
    const char *kind;  /* the gvk kind of the operation (the List kind for list) */
    const char *gv_tag;
};

static json_t *operation(const struct op_ctx *c, const char *action, const char *desc, json_t *params,
                         json_t *body, json_t *resps)
{
    json_t *op = json_pack("{s:s, s:o, s:[s], s:s, s:o}", "description", desc, "responses", resps, "tags", c->gv_tag,
                           "x-kubernetes-action", action, "x-kubernetes-group-version-kind",
                           gvk_obj(c->k->group, c->k->version, c->kind));
    char opid[256];
    snprintf(opid, sizeof opid, "%s%s%s", action, c->gv_tag, c->kind);
    json_object_set_new(op, "operationId", json_string(opid));
    if (params)
        json_object_set_new(op, "parameters", params);
    if (body)
        json_object_set_new(op, "requestBody", json_pack("{s:o, s:b}", "content", body, "required", 1));
    return op;
}

static json_t *path_level_params(bool ns, bool name, const char *kind)
{
    json_t *p = json_array();
    char d[300];
    if (name) {
        snprintf(d, sizeof d, "name of the %s", kind);
        json_array_append_new(p, path_param("name", d));
    }
    if (ns)
        json_array_append_new(p, path_param("namespace", "object name and auth scope, such as for teams and projects"));
    json_array_append_new(p, query_param("pretty", "string", "If 'true', then the output is pretty printed."));
    return p;
}

static void add_kind_paths(json_t *paths, const char *prefix, const struct kc_openapi_kind *k, const char *def,
                           const char *listdef, const char *gv_tag)
{
    char base[512], item[600], d[300];
    snprintf(base, sizeof base, "%s%s/%s", prefix, k->namespaced ? "/namespaces/{namespace}" : "", k->plural);
    snprintf(item, sizeof item, "%s/{name}", base);
    struct op_ctx c = {k, k->kind, gv_tag};

    json_t *coll = json_object();
    snprintf(d, sizeof d, "list or watch objects of kind %s", k->kind);
    json_object_set_new(coll, "get", operation(&c, "list", d, list_params(), NULL, responses(listdef, false)));
    snprintf(d, sizeof d, "create a %s", k->kind);
    json_object_set_new(coll, "post", operation(&c, "post", d, write_params(false), content(def, json_only),
                                                responses(def, true)));
    snprintf(d, sizeof d, "delete collection of %s", k->kind);
    json_object_set_new(coll, "delete", operation(&c, "deletecollection", d, list_params(),
                                                  content(DEF_DELETEOPTS, json_only), responses(DEF_STATUS, false)));
    json_object_set_new(coll, "parameters", path_level_params(k->namespaced, false, k->kind));
    json_object_set_new(paths, base, coll);

    json_t *it = json_object();
    snprintf(d, sizeof d, "read the specified %s", k->kind);
    json_object_set_new(it, "get", operation(&c, "get", d, NULL, NULL, responses(def, false)));
    snprintf(d, sizeof d, "replace the specified %s", k->kind);
    json_object_set_new(it, "put", operation(&c, "put", d, write_params(false), content(def, json_only),
                                             responses(def, true)));
    snprintf(d, sizeof d, "partially update the specified %s", k->kind);
    json_object_set_new(it, "patch", operation(&c, "patch", d, write_params(true), content(DEF_PATCH, patch_types),
                                               responses(def, true)));
    snprintf(d, sizeof d, "delete a %s", k->kind);
    json_t *dp = json_array();
    json_array_append_new(dp, query_param("dryRun", "string", "When present (All), nothing is deleted."));
    json_array_append_new(dp, query_param("gracePeriodSeconds", "integer", "Seconds before the object is deleted."));
    json_array_append_new(dp, query_param("propagationPolicy", "string", "Orphan, Background or Foreground."));
    json_object_set_new(it, "delete", operation(&c, "delete", d, dp, content(DEF_DELETEOPTS, json_only),
                                                responses(DEF_STATUS, false)));
    json_object_set_new(it, "parameters", path_level_params(k->namespaced, true, k->kind));
    json_object_set_new(paths, item, it);

    for (size_t i = 0; k->subresources && k->subresources[i]; i++) {
        const char *sub = k->subresources[i];
        /* scale answers autoscaling/v1 Scale; other subresources the kind itself */
        const char *sdef = strcmp(sub, "scale") == 0 ? "io.k8s.api.autoscaling.v1.Scale" : def;
        struct op_ctx sc = {k, k->kind, gv_tag};
        struct kc_openapi_kind scale_k;
        if (strcmp(sub, "scale") == 0) {
            scale_k = (struct kc_openapi_kind){"autoscaling", "v1", "Scale", NULL, false, NULL};
            sc.k = &scale_k;
            sc.kind = "Scale";
        }
        char sp[700];
        snprintf(sp, sizeof sp, "%s/%s", item, sub);
        json_t *so = json_object();
        snprintf(d, sizeof d, "read %s of the specified %s", sub, k->kind);
        json_object_set_new(so, "get", operation(&sc, "get", d, NULL, NULL, responses(sdef, false)));
        snprintf(d, sizeof d, "replace %s of the specified %s", sub, k->kind);
        json_object_set_new(so, "put", operation(&sc, "put", d, write_params(false), content(sdef, json_only),
                                                 responses(sdef, true)));
        snprintf(d, sizeof d, "partially update %s of the specified %s", sub, k->kind);
        json_object_set_new(so, "patch", operation(&sc, "patch", d, write_params(true),
                                                   content(DEF_PATCH, patch_types), responses(sdef, true)));
        json_object_set_new(so, "parameters", path_level_params(k->namespaced, true, k->kind));
        json_object_set_new(paths, sp, so);
    }

    if (k->namespaced) {
        char all[512];
        snprintf(all, sizeof all, "%s/%s", prefix, k->plural);
        json_t *a = json_object();
        snprintf(d, sizeof d, "list or watch objects of kind %s", k->kind);
        json_t *params = list_params();
        json_array_append_new(params, query_param("pretty", "string", "If 'true', then the output is pretty printed."));
        json_object_set_new(a, "get", operation(&c, "list", d, params, NULL, responses(listdef, false)));
        json_object_set_new(paths, all, a);
    }
}

/* "apps"/"v1" → "appsV1"-like tag, "" → "coreV1"; used in operation ids and tags. */
static void gv_tag(const char *group, const char *version, char *out, size_t n)
{
    char g[128];
    size_t j = 0;
    const char *src = group[0] ? group : "core";
    for (size_t i = 0; src[i] && src[i] != '.' && j + 1 < sizeof g; i++)
        g[j++] = src[i];
    g[j] = '\0';
    snprintf(out, n, "%s_%s", g, version);
}

static void add_scale_schema(const struct kc_schema *s, json_t *comps)
{
    const struct kc_type *t = kc_schema_kind(s, "autoscaling", "v1", "Scale");
    if (t)
        add_reachable(comps, t);
    else if (!json_object_get(comps, "io.k8s.api.autoscaling.v1.Scale"))
        json_object_set_new(comps, "io.k8s.api.autoscaling.v1.Scale", json_pack("{s:s}", "type", "object"));
}

json_t *kc_openapi_v3_doc(const struct kc_schema *s, const char *group, const char *version,
                          const struct kc_openapi_kind *kinds, size_t nkinds)
{
    if (!group || strcmp(group, "core") == 0)
        group = "";
    char prefix[256], tag[160];
    if (group[0])
        snprintf(prefix, sizeof prefix, "/apis/%s/%s", group, version);
    else
        snprintf(prefix, sizeof prefix, "/api/%s", version);
    gv_tag(group, version, tag, sizeof tag);
    json_t *comps = json_object(), *paths = json_object();
    for (size_t i = 0; i < nkinds; i++) {
        const struct kc_openapi_kind *k = &kinds[i];
        const char *kg = k->group && strcmp(k->group, "core") ? k->group : "";
        if (strcmp(kg, group) || strcmp(k->version, version))
            continue;
        const struct kc_type *t = kc_schema_kind(s, kg, k->version, k->kind);
        if (!t)
            continue;  /* served but not described: no schema to offer */
        char listdef[512];
        snprintf(listdef, sizeof listdef, "%sList", t->name);
        add_reachable(comps, t);
        add_list_schema(s, comps, t, listdef);
        for (size_t j = 0; k->subresources && k->subresources[j]; j++)
            if (strcmp(k->subresources[j], "scale") == 0)
                add_scale_schema(s, comps);
        add_kind_paths(paths, prefix, k, t->name, listdef, tag);
    }
    add_fixed_schemas(s, comps);
    return json_pack("{s:{s:o}, s:{s:s, s:s}, s:s, s:o}", "components", "schemas", comps, "info", "title",
                     "Kubernetes", "version", "unversioned", "openapi", "3.0.0", "paths", paths);
}

const unsigned char *kc_openapi_v2_pb(size_t *len)
{
    /* openapi_v2.Document { string swagger = 1 } with swagger = "2.0" */
    static const unsigned char doc[] = {0x0a, 0x03, '2', '.', '0'};
    *len = sizeof doc;
    return doc;
}
