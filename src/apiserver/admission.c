/* admission.c — defaulting, validation and the admission plugins that
 * change objects on their way to the store (PriorityClass resolution,
 * ServiceAccount defaults), plus managedFields bookkeeping and
 * server-side apply.
 *
 * Defaults and messages follow upstream (pkg/apis/<group>/v1/defaults.go
 * and validation.go) for the fields kubectl users see; the hooks are wired
 * into the resource table by kc_admission_init_resources so that the
 * generic handlers never switch on kinds.
 */
#include "apiserver/internal.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta/selector.h"
#include "meta/validation.h"
#include "patch/patch.h"
#include "schema/schema.h"
#include "util/jsonparse.h"
#include "util/jsonscan.h"

static void set_default(json_t *o, const char *key, json_t *v)
{
    if (!json_object_get(o, key))
        json_object_set_new(o, key, v);
    else
        json_decref(v);
}

static json_t *obj_at(json_t *o, const char *key)
{
    json_t *c = json_object_get(o, key);
    if (!json_is_object(c)) {
        c = json_object();
        json_object_set_new(o, key, c);
    }
    return c;
}

/* ---------- pod spec ---------- */

static void default_container(json_t *c)
{
    set_default(c, "terminationMessagePath", json_string("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json_string("File"));
    const char *img = json_string_value(json_object_get(c, "image"));
    bool latest = img && (!strchr(strrchr(img, '/') ? strrchr(img, '/') : img, ':') || strstr(img, ":latest")) &&
                  !strchr(img, '@');
    set_default(c, "imagePullPolicy", json_string(latest ? "Always" : "IfNotPresent"));
    set_default(c, "resources", json_object());
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(c, "ports"), i, p) set_default(p, "protocol", json_string("TCP"));
}

static void default_podspec(json_t *spec)
{
    if (!json_is_object(spec))
        return;
    set_default(spec, "restartPolicy", json_string("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json_integer(30));
    set_default(spec, "dnsPolicy", json_string("ClusterFirst"));
    set_default(spec, "securityContext", json_object());
    set_default(spec, "schedulerName", json_string("default-scheduler"));
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(spec, "containers"), i, c) default_container(c);
    json_array_foreach(json_object_get(spec, "initContainers"), i, c) default_container(c);
    if (!json_object_get(spec, "enableServiceLinks"))
        json_object_set_new(spec, "enableServiceLinks", json_true());
}

static void validate_containers(json_t *spec, const char *path, json_t *causes)
{
    json_t *cs = json_object_get(spec, "containers");
    if (!json_is_array(cs) || json_array_size(cs) == 0) {
        kc_cause(causes, path[0] ? path : "spec.containers", "FieldValueRequired", "Required value");
        return;
    }
    size_t i, j;
    json_t *c, *d;
    char fp[256], msg[512];
    json_array_foreach(cs, i, c)
    {
        const char *name = kc_jstr(c, "name");
        /* the field paths are formatted only for a cause: this runs for every container written */
        const char *bad_name = name ? kc_validate_dns1123_label(name, msg, sizeof msg) : NULL;
        if (!name || bad_name)
            snprintf(fp, sizeof fp, "%s[%zu].name", path, i);
        if (!name)
            kc_cause(causes, fp, "FieldValueRequired", "Required value");
        else if (bad_name)
            kc_cause(causes, fp, "FieldValueInvalid", "Invalid value: \"%s\": %s", name, bad_name);
        json_array_foreach(cs, j, d) if (j < i && name && kc_jstr(d, "name") && !strcmp(name, kc_jstr(d, "name")))
        {
            snprintf(fp, sizeof fp, "%s[%zu].name", path, i);
            kc_cause(causes, fp, "FieldValueDuplicate", "Duplicate value: \"%s\"", name);
        }
        if (!kc_jstr(c, "image")) {
            snprintf(fp, sizeof fp, "%s[%zu].image", path, i);
            kc_cause(causes, fp, "FieldValueRequired", "Required value");
        }
        const char *kinds[] = {"limits", "requests"};
        for (int k = 0; k < 2; k++) {
            const char *rk;
            json_t *rv;
            json_object_foreach(kc_jget(c, kinds[k] == kinds[0] ? "resources.limits" : "resources.requests"), rk, rv)
            {
                int64_t m;
                const char *s = json_string_value(rv);
                char num[64];
                if (json_is_integer(rv)) {
                    snprintf(num, sizeof num, "%lld", (long long)json_integer_value(rv));
                    s = num;
                }
                int bad = !s || kc_quantity_parse(s, &m) < 0;
                if (bad || m < 0)
                    snprintf(fp, sizeof fp, "%s[%zu].resources.%s[%s]", path, i, kinds[k], rk);
                if (bad)
                    kc_cause(causes, fp, "FieldValueInvalid",
                             "Invalid value: \"%s\": quantities must match the regular expression "
                             "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                             s ? s : "");
                else if (m < 0)
                    kc_cause(causes, fp, "FieldValueInvalid", "Invalid value: \"%s\": must be greater than or equal to 0", s);
            }
        }
        /* a request may not exceed its limit */
        const char *rk;
        json_t *rv;
        json_object_foreach(kc_jget(c, "resources.requests"), rk, rv)
        {
            json_t *lv = json_object_get(kc_jget(c, "resources.limits"), rk);
            int64_t rm, lm;
            if (!json_is_string(rv) || !json_is_string(lv) || kc_quantity_parse(json_string_value(rv), &rm) < 0 ||
                kc_quantity_parse(json_string_value(lv), &lm) < 0)
                continue;
            if (rm > lm) {
                snprintf(fp, sizeof fp, "%s[%zu].resources.requests", path, i);
                kc_cause(causes, fp, "FieldValueInvalid", "Invalid value: \"%s\": must be less than or equal to %s limit of %s",
                         json_string_value(rv), rk, json_string_value(lv));
            }
        }
    }
}

static void validate_template(json_t *obj, json_t *causes)
{
    json_t *sel = kc_jget(obj, "spec.selector");
    json_t *tlabels = kc_jget(obj, "spec.template.metadata.labels");
    if (!sel) {
        kc_cause(causes, "spec.selector", "FieldValueRequired", "Required value");
    } else {
        struct kc_label_selector *ls = NULL;
        struct kc_err err = {0};
        if (kc_label_selector_from_json(sel, &ls, &err)) {
            kc_cause(causes, "spec.selector", "FieldValueInvalid", "Invalid value: %s", err.message);
        } else {
            if (kc_label_selector_empty(ls))
                kc_cause(causes, "spec.selector", "FieldValueInvalid",
                         "Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
                         "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for "
                         "deployment");
            else if (!kc_label_selector_matches_json(ls, tlabels)) {
                char *s = kc_label_selector_string(ls);
                struct kc_buf b;
                kc_buf_init(&b, 1 << 16);
                const char *k;
                json_t *v;
                kc_buf_puts(&b, "map[string]string{");
                int first = 1;
                json_object_foreach(tlabels, k, v)
                {
                    kc_buf_printf(&b, "%s\"%s\":\"%s\"", first ? "" : ", ", k, json_string_value(v) ?: "");
                    first = 0;
                }
                kc_buf_puts(&b, "}");
                kc_cause(causes, "spec.template.metadata.labels", "FieldValueInvalid",
                         "Invalid value: %s: `selector` does not match template `labels`", b.data);
                kc_buf_release(&b);
                free(s);
            }
            kc_label_selector_free(ls);
        }
    }
    json_t *r = kc_jget(obj, "spec.replicas");
    if (r && (!json_is_integer(r) || json_integer_value(r) < 0))
        kc_cause(causes, "spec.replicas", "FieldValueInvalid",
                 "Invalid value: %lld: must be greater than or equal to 0", (long long)json_integer_value(r));
    if (tlabels)
        kc_validate_labels(tlabels, "spec.template.metadata.labels", causes);
    validate_containers(kc_jget(obj, "spec.template.spec"), "spec.template.spec.containers", causes);
    const char *rp = kc_jstr(obj, "spec.template.spec.restartPolicy");
    if (rp && strcmp(rp, "Always"))
        kc_cause(causes, "spec.template.spec.restartPolicy", "FieldValueNotSupported",
                 "Unsupported value: \"%s\": supported values: \"Always\"", rp);
}

/* ---------- per-kind hooks ---------- */

static void def_deployment(json_t *o)
{
    json_t *spec = obj_at(o, "spec");
    set_default(spec, "replicas", json_integer(1));
    set_default(spec, "revisionHistoryLimit", json_integer(10));
    set_default(spec, "progressDeadlineSeconds", json_integer(600));
    json_t *strat = obj_at(spec, "strategy");
    set_default(strat, "type", json_string("RollingUpdate"));
    if (!strcmp(kc_jstr(strat, "type") ?: "", "RollingUpdate")) {
        json_t *ru = obj_at(strat, "rollingUpdate");
        set_default(ru, "maxUnavailable", json_string("25%"));
        set_default(ru, "maxSurge", json_string("25%"));
    }
    json_t *tmpl = obj_at(spec, "template");
    default_podspec(obj_at(tmpl, "spec"));
    json_t *tm = obj_at(tmpl, "metadata");
    (void)tm;
}

static void val_deployment(json_t *o, json_t *old, json_t *causes)
{
    validate_template(o, causes);
    const char *st = kc_jstr(o, "spec.strategy.type");
    if (st && strcmp(st, "RollingUpdate") && strcmp(st, "Recreate"))
        kc_cause(causes, "spec.strategy.type", "FieldValueNotSupported",
                 "Unsupported value: \"%s\": supported values: \"Recreate\", \"RollingUpdate\"", st);
    if (old && !json_equal(kc_jget(o, "spec.selector"), kc_jget(old, "spec.selector")))
        kc_cause(causes, "spec.selector", "FieldValueInvalid", "Invalid value: %s: field is immutable", "selector");
}

static void def_replicaset(json_t *o)
{
    json_t *spec = obj_at(o, "spec");
    set_default(spec, "replicas", json_integer(1));
    default_podspec(obj_at(obj_at(spec, "template"), "spec"));
}

static void val_replicaset(json_t *o, json_t *old, json_t *causes)
{
    validate_template(o, causes);
    (void)old;
}

static void def_pod(json_t *o)
{
    default_podspec(obj_at(o, "spec"));
}

static void val_pod(json_t *o, json_t *old, json_t *causes)
{
    validate_containers(json_object_get(o, "spec"), "spec.containers", causes);
    if (old) {
        const char *a = kc_jstr(old, "spec.nodeName"), *b = kc_jstr(o, "spec.nodeName");
        if (a && (!b || strcmp(a, b)))
            kc_cause(causes, "spec.nodeName", "FieldValueInvalid", "Invalid value: \"%s\": field is immutable", b ? b : "");
    }
}

static void def_namespace(json_t *o)
{
    json_t *meta = kc_jmeta(o);
    json_t *labels = obj_at(meta, "labels");
    const char *name = kc_jstr(meta, "name");
    if (name)
        json_object_set_new(labels, "kubernetes.io/metadata.name", json_string(name));
    json_t *spec = obj_at(o, "spec");
    set_default(spec, "finalizers", json_pack("[s]", "kubernetes"));
    json_t *st = obj_at(o, "status");
    if (!kc_jstr(st, "phase"))
        json_object_set_new(st, "phase", json_string("Active"));
    if (json_object_get(meta, "deletionTimestamp"))
        json_object_set_new(st, "phase", json_string("Terminating"));
}

static void def_secret(json_t *o) { set_default(o, "type", json_string("Opaque")); }

/* Secret decoding as upstream: data values must be base64 (400 otherwise); stringData is write-only,
 * merged into data (winning) and never stored. */
static int secret_decode(json_t *o, struct kc_err *err)
{
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(o, "data"), k, v)
    {
        const char *s = json_string_value(v);
        if (!s)
            return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "Secret in version \"v1\" cannot be handled as a "
                              "Secret: data[%s]: a base64-encoded string is required", k);
        size_t n = strlen(s);
        bool ok = n % 4 == 0;
        for (size_t i = 0; ok && i < n; i++) {
            char c = s[i];
            bool pad = c == '=' && i >= n - 2;
            ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' || pad;
            if (pad && i == n - 2 && s[n - 1] != '=')
                ok = false;
        }
        if (!ok)
            return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "Secret in version \"v1\" cannot be handled as a "
                              "Secret: illegal base64 data in data[%s]", k);
    }
    json_t *sd = json_object_get(o, "stringData");
    if (json_is_object(sd)) {
        json_t *data = json_object_get(o, "data");
        if (!json_is_object(data)) {
            data = json_object();
            json_object_set_new(o, "data", data);
        }
        json_object_foreach(sd, k, v)
        {
            const char *s = json_string_value(v) ? json_string_value(v) : "";
            unsigned char *enc = malloc(4 * ((strlen(s) + 2) / 3) + 1);
            EVP_EncodeBlock(enc, (const unsigned char *)s, (int)strlen(s));
            json_object_set_new(data, k, json_string((char *)enc));
            free(enc);
        }
    }
    json_object_del(o, "stringData");
    return 0;
}

static void val_secret(json_t *o, json_t *old, json_t *causes)
{
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(o, "data"), k, v) if (!json_is_string(v))
        kc_cause(causes, "data", "FieldValueInvalid", "Invalid value: data[%s] must be a base64 string", k);
    if (old && json_is_true(json_object_get(old, "immutable")) &&
        !json_equal(json_object_get(o, "data"), json_object_get(old, "data")))
        kc_cause(causes, "data", "FieldValueForbidden", "Forbidden: field is immutable when `immutable` is set");
}

static void def_pc(json_t *o) { set_default(o, "preemptionPolicy", json_string("PreemptLowerPriority")); }

/* Names with the "system-" prefix are reserved for the two classes the API server creates at start
 * (bootstrap.c), with exactly their value and globalDefault false — upstream's IsKnownSystemPriorityClass. */
static void val_pc_system(json_t *o, const char *name, json_int_t value, json_t *causes)
{
    const struct kc_system_pc *known = kc_system_priority_class(name);
    char why[200] = "";
    if (!known)
        snprintf(why, sizeof why, "%.100s is not a known system priority class", name);
    else if (known->value != value)
        snprintf(why, sizeof why, "value of %s PriorityClass must be %lld", name, (long long)known->value);
    else if (json_is_true(json_object_get(o, "globalDefault")))
        snprintf(why, sizeof why, "globalDefault of %s PriorityClass must be false", name);
    if (*why)
        kc_cause(causes, "metadata.name", "FieldValueForbidden",
                 "Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: %s",
                 why);
}

static void val_pc(json_t *o, json_t *old, json_t *causes)
{
    json_t *v = json_object_get(o, "value");
    const char *name = kc_jstr(o, "metadata.name") ?: "";
    if (!json_is_integer(v))
        kc_cause(causes, "value", "FieldValueRequired", "Required value");
    else if (!strncmp(name, "system-", 7))
        val_pc_system(o, name, json_integer_value(v), causes);
    else if (json_integer_value(v) > 1000000000)
        kc_cause(causes, "value", "FieldValueForbidden",
                 "Forbidden: maximum allowed value of a user defined priority is 1000000000");
    const char *pp = kc_jstr(o, "preemptionPolicy");
    if (pp && strcmp(pp, "PreemptLowerPriority") && strcmp(pp, "Never"))
        kc_cause(causes, "preemptionPolicy", "FieldValueNotSupported",
                 "Unsupported value: \"%s\": supported values: \"Never\", \"PreemptLowerPriority\"", pp);
    if (old) {
        if (!json_equal(json_object_get(o, "value"), json_object_get(old, "value")))
            kc_cause(causes, "value", "FieldValueForbidden", "Forbidden: may not be changed in an update.");
        if (!json_equal(json_object_get(o, "preemptionPolicy"), json_object_get(old, "preemptionPolicy")))
            kc_cause(causes, "preemptionPolicy", "FieldValueInvalid", "Invalid value: \"%s\": field is immutable",
                     pp ? pp : "");
    }
}

static void val_event(json_t *o, json_t *old, json_t *causes)
{
    (void)old;
    if (!json_object_get(o, "involvedObject"))
        kc_cause(causes, "involvedObject", "FieldValueRequired", "Required value");
}

static void def_event(json_t *o)
{
    if (!json_object_get(o, "type"))
        json_object_set_new(o, "type", json_string("Normal"));
}

static void def_node(json_t *o)
{
    json_t *st = obj_at(o, "status");
    (void)st;
}

void kc_admission_init_resources(void)
{
    for (size_t i = 0; i < kc_nresources; i++) {
        struct kc_resource *r = &kc_resources[i];
        const char *k = r->kind;
        if (!strcmp(r->group, "apps") && !strcmp(k, "Deployment")) {
            r->defaults = def_deployment;
            r->validate = val_deployment;
        } else if (!strcmp(r->group, "apps") && !strcmp(k, "ReplicaSet")) {
            r->defaults = def_replicaset;
            r->validate = val_replicaset;
        } else if (!*r->group && !strcmp(k, "Pod")) {
            r->defaults = def_pod;
            r->validate = val_pod;
        } else if (!*r->group && !strcmp(k, "Namespace")) {
            r->defaults = def_namespace;
        } else if (!*r->group && !strcmp(k, "Secret")) {
            r->defaults = def_secret;
            r->validate = val_secret;
        } else if (!strcmp(k, "PriorityClass")) {
            r->defaults = def_pc;
            r->validate = val_pc;
        } else if (!*r->group && !strcmp(k, "Event")) {
            r->defaults = def_event;
            r->validate = val_event;
        } else if (!strcmp(k, "Node")) {
            r->defaults = def_node;
        }
    }
}

/* Metadata checks common to every kind, then the kind's own validation. */
void kc_admission_common(const struct kc_resource *res, json_t *obj, json_t *old, json_t *causes)
{
    json_t *meta = json_object_get(obj, "metadata");
    const char *name = kc_jstr(meta, "name");
    char msg[512];
    const char *bad = NULL;
    if (name) {
        bool label_names = !*res->group && !strcmp(res->kind, "Namespace");
        bad = label_names ? kc_validate_dns1123_label(name, msg, sizeof msg)
                          : kc_validate_dns1123_subdomain(name, msg, sizeof msg);
        if (!*res->group && !strcmp(res->kind, "Event"))
            bad = NULL; /* event names are free-form (name.hash) but still subdomain-ish */
        if (bad)
            kc_cause(causes, "metadata.name", "FieldValueInvalid", "Invalid value: \"%s\": %s", name, bad);
    }
    json_t *labels = json_object_get(meta, "labels");
    if (labels)
        kc_validate_labels(labels, "metadata.labels", causes);
    json_t *ann = json_object_get(meta, "annotations");
    if (ann)
        kc_validate_annotations(ann, "metadata.annotations", causes);
    if (res->validate)
        res->validate(obj, old, causes);
}

/* PriorityClass admission: priorityClassName → spec.priority / preemptionPolicy. */
static int resolve_priority(struct kc_server *srv, json_t *spec, struct kc_err *err)
{
    (void)srv;
    const struct kc_resource *pcr = kc_resource_find("scheduling.k8s.io", "v1", "priorityclasses");
    const char *pcn = kc_jstr(spec, "priorityClassName");
    json_t *pc = NULL;
    const struct kc_system_pc *sys = NULL;
    if (pcn) {
        char key[400];
        snprintf(key, sizeof key, "%s%s", pcr->storage_prefix, pcn);
        struct kc_obj *o = kc_cache_get(pcr->storage, key);
        /* the system classes are real objects (bootstrap.c creates them at start, deleting them is
         * refused); their built-in values below only cover a store that lacks them */
        if (!o && !kc_system_priority_class(pcn))
            return kc_err_set(err, KC_EINVAL, 403, "Forbidden",
                              "pods \"\" is forbidden: no PriorityClass with name %s was found", pcn);
        if (o) {
            pc = kc_obj_parse(o);
            kc_obj_unref(o);
        }
    } else {
        /* globalDefault class, if any */
        struct kc_obj **v = NULL;
        size_t n = 0;
        kc_rev_t rev;
        kc_cache_list(srv->cache, pcr->storage, pcr->storage_prefix, &v, &n, &rev);
        for (size_t i = 0; i < n && !pc; i++)
            if (strstr(v[i]->json, "\"globalDefault\":true")) {
                pc = kc_obj_parse(v[i]);
                json_object_set_new(spec, "priorityClassName", json_string(v[i]->name));
            }
        kc_objs_free(v, n);
    }
    json_int_t value = 0;
    const char *pp = "PreemptLowerPriority";
    if (pc) {
        value = json_integer_value(json_object_get(pc, "value"));
        if (kc_jstr(pc, "preemptionPolicy"))
            pp = kc_jstr(pc, "preemptionPolicy");
    } else if ((sys = kc_system_priority_class(pcn))) {
        value = sys->value;
    }
    json_t *have = json_object_get(spec, "priority");
    if (have && json_integer_value(have) != value) {
        json_decref(pc);
        return kc_err_set(err, KC_EINVAL, 403, "Forbidden",
                          "pods is forbidden: the integer value of priority (%lld) must not be provided in pod spec; "
                          "priority admission controller computed %lld from the given PriorityClass name",
                          (long long)json_integer_value(have), (long long)value);
    }
    json_object_set_new(spec, "priority", json_integer(value));
    json_object_set_new(spec, "preemptionPolicy", json_string(pp));
    json_decref(pc);
    return 0;
}

/* ServiceAccount admission: default service account, and its imagePullSecrets copied into the pod. */
static void service_account(struct kc_server *srv, json_t *obj)
{
    json_t *spec = json_object_get(obj, "spec");
    if (!kc_jstr(spec, "serviceAccountName"))
        json_object_set_new(spec, "serviceAccountName", json_string("default"));
    if (!kc_jstr(spec, "serviceAccount"))
        json_object_set_new(spec, "serviceAccount", json_string(kc_jstr(spec, "serviceAccountName")));
    if (json_array_size(json_object_get(spec, "imagePullSecrets")))
        return;
    const struct kc_resource *sar = kc_resource_find("", "v1", "serviceaccounts");
    char key[600];
    snprintf(key, sizeof key, "%s%s/%s", sar->storage_prefix, kc_jstr(obj, "metadata.namespace") ?: "",
             kc_jstr(spec, "serviceAccountName"));
    struct kc_obj *o = kc_cache_get(sar->storage, key);
    if (!o)
        return;
    /* only the one field: parsing the whole ServiceAccount cost a tenth of a Pod create */
    size_t off, len;
    if (kc_json_span(o->json, o->len, "imagePullSecrets", &off, &len) == 0 && o->json[off] == '[') {
        json_t *ips = kc_json_loadb(o->json + off, len, 0, NULL);
        if (json_array_size(ips))
            json_object_set(spec, "imagePullSecrets", ips);
        json_decref(ips);
    }
    kc_obj_unref(o);
    (void)srv;
}

int kc_admission_mutate(struct kc_server *srv, const struct kc_resource *res, json_t *obj, json_t *old,
                        struct kc_err *err)
{
    if (res->defaults)
        res->defaults(obj);
    if (!*res->group && !strcmp(res->kind, "Secret")) {
        int rc = secret_decode(obj, err);
        if (rc)
            return rc;
    }
    if (!*res->group && !strcmp(res->kind, "Pod") && !old) {
        service_account(srv, obj);
        json_t *spec = json_object_get(obj, "spec");
        if (json_is_object(spec)) {
            int rc = resolve_priority(srv, spec, err);
            if (rc)
                return rc;
        }
        json_t *st = obj_at(obj, "status");
        set_default(st, "phase", json_string("Pending"));
        set_default(st, "qosClass", json_string("BestEffort"));
    }
    return 0;
}

/* ---------- managedFields ---------- */

/* The set of fields an object sets, in FieldsV1 form ({"f:spec":{"f:replicas":{}}}). Lists are
 * recorded as a whole ("." is implied) — precise per-item keys come with SSA conflict detection.
 * The walkers read the objects in place (no copies: this runs on every write) and leave out what
 * the server owns: apiVersion and kind at the top, and the server's metadata fields. */
static const char *const server_meta[] = {"uid",       "resourceVersion", "creationTimestamp",
                                          "generation", "managedFields",  "namespace",
                                          "name",      "deletionTimestamp", "deletionGracePeriodSeconds"};

enum fs_level { FS_TOP, FS_META, FS_INNER };

static bool fs_skip(enum fs_level lv, const char *k)
{
    if (lv == FS_TOP)
        return !strcmp(k, "apiVersion") || !strcmp(k, "kind");
    if (lv == FS_META)
        for (size_t i = 0; i < sizeof server_meta / sizeof server_meta[0]; i++)
            if (!strcmp(k, server_meta[i]))
                return true;
    return false;
}

static enum fs_level fs_child(enum fs_level lv, const char *k)
{
    return lv == FS_TOP && !strcmp(k, "metadata") ? FS_META : FS_INNER;
}

static void fs_set(json_t *fs, const char *k, json_t *sub /* stolen */)
{
    char fk[512];
    size_t n = strlen(k);
    if (n > sizeof fk - 3)
        n = sizeof fk - 3;
    fk[0] = 'f';
    fk[1] = ':';
    memcpy(fk + 2, k, n);
    fk[n + 2] = 0;
    json_object_setn_new(fs, fk, n + 2, sub);
}

static json_t *fieldset(json_t *o, enum fs_level lv)
{
    json_t *fs = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        if (fs_skip(lv, k))
            continue;
        if (json_is_object(v) && json_object_size(v)) {
            json_t *sub = fieldset(v, fs_child(lv, k));
            if (fs_child(lv, k) == FS_META && !json_object_size(sub)) { /* only server fields */
                json_decref(sub);
                continue;
            }
            fs_set(fs, k, sub);
        } else {
            fs_set(fs, k, json_object());
        }
    }
    return fs;
}

/* The fields that differ between old and new (what a merge patch from old to new would touch:
 * changed or added keys, and removed ones). */
static json_t *fieldset_diff(json_t *old, json_t *new, enum fs_level lv)
{
    json_t *fs = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(new, k, v)
    {
        if (fs_skip(lv, k))
            continue;
        json_t *ov = json_object_get(old, k);
        if (ov && json_equal(ov, v))
            continue;
        if (json_is_object(v) && json_object_size(v)) {
            json_t *sub = json_is_object(ov) ? fieldset_diff(ov, v, fs_child(lv, k)) : fieldset(v, fs_child(lv, k));
            if (!json_object_size(sub) && (json_is_object(ov) || fs_child(lv, k) == FS_META)) {
                json_decref(sub);
                continue;
            }
            fs_set(fs, k, sub);
        } else {
            fs_set(fs, k, json_object());
        }
    }
    json_object_foreach(old, k, v)
    {
        if (!fs_skip(lv, k) && !json_object_get(new, k))
            fs_set(fs, k, json_object());
    }
    return fs;
}

void kc_managed_fields_update(json_t *obj, json_t *old, const char *manager, const char *operation,
                              const char *api_version)
{
    json_t *meta = kc_jmeta(obj);
    json_t *mf = json_object_get(meta, "managedFields");
    json_t *old_mf = old ? kc_jget(old, "metadata.managedFields") : NULL;
    /* a client may rewrite managedFields (kubectl's CSA→SSA migration): keep what it sent */
    if (old && mf && !json_equal(mf, old_mf))
        return;
    /* a new array sharing the entries: only the entry this write changes is copied (below), the others are
     * never modified */
    json_t *list = json_is_array(mf) ? json_copy(mf) : json_is_array(old_mf) ? json_copy(old_mf) : json_array();
    /* an Update records what changed; a create or an Apply, every field it sets */
    json_t *fields = old && !strcmp(operation, "Update") ? fieldset_diff(old, obj, FS_TOP) : fieldset(obj, FS_TOP);
    char now[32];
    kc_now_rfc3339(now, sizeof now);
    json_t *entry = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o}", "manager", manager, "operation", operation, "apiVersion",
                              api_version, "time", now, "fieldsType", "FieldsV1", "fieldsV1", fields);
    size_t i;
    json_t *e;
    bool replaced = false;
    json_array_foreach(list, i, e)
    {
        if (!strcmp(kc_jstr(e, "manager") ?: "", manager) && !strcmp(kc_jstr(e, "operation") ?: "", operation)) {
            if (!strcmp(operation, "Update") && !old) {
                json_array_set(list, i, entry);
            } else if (!strcmp(operation, "Update")) {
                /* union with the earlier set, in a copy of that entry */
                json_t *own = kc_json_copy(e);
                json_object_update_recursive(json_object_get(own, "fieldsV1"), json_object_get(entry, "fieldsV1"));
                json_object_set(own, "time", json_object_get(entry, "time"));
                json_array_set_new(list, i, own);
            } else {
                json_array_set(list, i, entry);
            }
            replaced = true;
            break;
        }
    }
    if (!replaced)
        json_array_append(list, entry);
    json_decref(entry);
    json_object_set_new(meta, "managedFields", list);
}

/* Server-side apply, first cut: the applied configuration is merged into
 * the live object with strategic-merge semantics, and fields this manager
 * applied before but omits now are removed. Conflict detection between
 * managers is not done yet (docs/apiserver.md). */
static void remove_dropped(json_t *live, json_t *prev_set, json_t *applied)
{
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(prev_set, tmp, k, v)
    {
        if (strncmp(k, "f:", 2))
            continue;
        const char *field = k + 2;
        json_t *a = json_object_get(applied, field);
        if (!a) {
            json_object_del(live, field);
            continue;
        }
        json_t *l = json_object_get(live, field);
        if (json_is_object(a) && json_is_object(l) && json_object_size(v))
            remove_dropped(l, v, a);
    }
}

int kc_apply_patch(json_t *live, json_t *applied, const struct kc_resource *res, const char *manager, bool force,
                   json_t **out, struct kc_err *err)
{
    (void)force;
    json_t *a = kc_json_copy(applied);
    json_object_del(kc_jmeta(a), "managedFields");
    int rc = kc_strategic_merge_patch(live, a, kc_schema_patch_ops(kc_schema_default()), res->schema, out, err);
    if (rc) {
        json_decref(a);
        return rc;
    }
    size_t i;
    json_t *e;
    json_array_foreach(kc_jget(live, "metadata.managedFields"), i, e)
    {
        if (!strcmp(kc_jstr(e, "manager") ?: "", manager) && !strcmp(kc_jstr(e, "operation") ?: "", "Apply")) {
            json_t *prev = json_object_get(e, "fieldsV1");
            json_t *spec_prev = json_object_get(prev, "f:spec");
            if (spec_prev && json_object_get(*out, "spec") && json_object_get(a, "spec"))
                remove_dropped(json_object_get(*out, "spec"), spec_prev, json_object_get(a, "spec"));
        }
    }
    json_decref(a);
    return 0;
}
