/* test_deployment_sync.c — the Deployment controller's sync against a fake API.
 *
 * deployment.c is compiled into this test (#include) so its sync can be driven one step at a time.
 * The client, informer and work-queue functions it calls are replaced here by a tiny in-memory API
 * (objects in a JSON array; creates/updates/patches/deletes with resourceVersion, generation and
 * uid handling) whose "informer caches" are always up to date. The test plays the ReplicaSet
 * controller and the kubelet by writing RS status directly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../../src/controller/deployment.c"

/* ---------- the fake API ---------- */

struct kc_informer {
    const char *kind;
};
static struct kc_informer inf_d = {"Deployment"}, inf_rs = {"ReplicaSet"}, inf_pod = {"Pod"};
static json_t *objs;   /* array of stored objects (each replaced, never mutated, on write) */
static json_t *events; /* array of {type, reason, message} */
static json_t *frozen; /* objs[i] as serialised when it was stored: the controller shares the stored trees (the
                        * informer's and the read-only answers) and must never change them in place */

/* An object's fingerprint: its serialisation, and which tree each top-level member is (replacing a member
 * with an equal one is still a change of a shared tree, which readers on other threads would race with). */
static json_t *fingerprint(json_t *o)
{
    char *d = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
    json_t *fp = json_pack("{s:s}", "dump", d);
    free(d);
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        char p[32];
        snprintf(p, sizeof p, "%p", (void *)v);
        json_object_set_new(fp, k, json_string(p));
    }
    return fp;
}

/* Every stored object still as it was stored (checked on each call into the fakes and at teardown). */
static void check_frozen(void)
{
    size_t i;
    json_t *o;
    json_array_foreach(objs, i, o) {
        json_t *fp = fingerprint(o);
        assert_true(json_equal(fp, json_array_get(frozen, i)));
        json_decref(fp);
    }
}

static void freeze(size_t i)
{
    while (json_array_size(frozen) <= i)
        json_array_append_new(frozen, json_null());
    json_array_set_new(frozen, i, fingerprint(json_array_get(objs, i)));
}
static long long rv_counter, uid_counter, clock_s = 1700000000;

static const char *kind_of_plural(const char *plural)
{
    if (!strcmp(plural, "deployments"))
        return "Deployment";
    if (!strcmp(plural, "replicasets"))
        return "ReplicaSet";
    if (!strcmp(plural, "pods"))
        return "Pod";
    return "Other";
}

static int find(const char *kind, const char *ns, const char *name)
{
    size_t i;
    json_t *o;
    json_array_foreach(objs, i, o)
        if (!strcmp(js(o, "kind") ?: "", kind) && !strcmp(js(o, "metadata.namespace") ?: "", ns) &&
            !strcmp(js(o, "metadata.name") ?: "", name))
            return (int)i;
    return -1;
}

/* /apis/apps/v1/namespaces/NS/PLURAL[/NAME[/SUB]] or /api/v1/... */
static void parse(const char *path, char *plural, char *ns, char *name, char *sub)
{
    char buf[640];
    snprintf(buf, sizeof buf, "%s", path);
    plural[0] = ns[0] = name[0] = sub[0] = '\0';
    char *parts[10];
    int n = 0;
    for (char *t = strtok(buf, "/"); t && n < 10; t = strtok(NULL, "/"))
        parts[n++] = t;
    int i = 0;
    while (i < n && strcmp(parts[i], "namespaces"))
        i++;
    if (i + 2 < n + 1 && i + 1 < n)
        strcpy(ns, parts[i + 1]);
    if (i + 2 < n)
        strcpy(plural, parts[i + 2]);
    if (i + 3 < n)
        strcpy(name, parts[i + 3]);
    if (i + 4 < n)
        strcpy(sub, parts[i + 4]);
}

static void stamp(json_t *o)
{
    char rv[32];
    snprintf(rv, sizeof rv, "%lld", ++rv_counter);
    json_object_set_new(obj_at(o, "metadata"), "resourceVersion", json_string(rv));
}

const char *kc_path(char *buf, size_t n, const char *group, const char *version, const char *plural, const char *ns,
                    const char *name, const char *sub)
{
    int w = *group ? snprintf(buf, n, "/apis/%s/%s", group, version) : snprintf(buf, n, "/api/%s", version);
    if (ns)
        w += snprintf(buf + w, n - (size_t)w, "/namespaces/%s", ns);
    w += snprintf(buf + w, n - (size_t)w, "/%s", plural);
    if (name)
        w += snprintf(buf + w, n - (size_t)w, "/%s", name);
    if (sub)
        snprintf(buf + w, n - (size_t)w, "/%s", sub);
    return buf;
}

int kc_client_get(struct kc_client *c, const char *path, json_t **out, struct kc_err *err)
{
    check_frozen();
    (void)c;
    (void)err;
    char plural[64], ns[128], name[320], sub[32];
    parse(path, plural, ns, name, sub);
    int i = find(kind_of_plural(plural), ns, name);
    if (i < 0)
        return KC_ENOTFOUND;
    *out = json_deep_copy(json_array_get(objs, (size_t)i));
    return 0;
}

static json_t *store_create(json_t *obj)
{
    json_t *o = json_deep_copy(obj);
    char uid[32], ts[32];
    snprintf(uid, sizeof uid, "uid-%lld", ++uid_counter);
    kc_time_rfc3339((time_t)(clock_s++), ts, sizeof ts);
    json_t *m = obj_at(o, "metadata");
    json_object_set_new(m, "uid", json_string(uid));
    json_object_set_new(m, "creationTimestamp", json_string(ts));
    json_object_set_new(m, "generation", json_integer(1));
    stamp(o);
    json_array_append_new(objs, o);
    freeze(json_array_size(objs) - 1);
    return o;
}

int kc_client_create(struct kc_client *c, const char *path, json_t *obj, json_t **out, struct kc_err *err)
{
    check_frozen();
    (void)c;
    char plural[64], ns[128], name[320], sub[32];
    parse(path, plural, ns, name, sub);
    if (!strcmp(plural, "events")) {
        json_array_append_new(events, json_pack("{s:O, s:O, s:O}", "type", json_object_get(obj, "type"), "reason",
                                                json_object_get(obj, "reason"), "message",
                                                json_object_get(obj, "message")));
        return 0;
    }
    if (find(js(obj, "kind"), js(obj, "metadata.namespace"), js(obj, "metadata.name")) >= 0)
        return kc_err_set(err, KC_EEXISTS, 409, "AlreadyExists", "exists");
    json_t *o = store_create(obj);
    if (out)
        *out = json_deep_copy(o);
    return 0;
}

static void replace_at(int i, json_t *o)
{
    stamp(o);
    json_array_set_new(objs, (size_t)i, o);
    freeze((size_t)i);
}

int kc_client_update(struct kc_client *c, const char *path, json_t *obj, json_t **out, struct kc_err *err)
{
    check_frozen();
    (void)c;
    char plural[64], ns[128], name[320], sub[32];
    parse(path, plural, ns, name, sub);
    int i = find(kind_of_plural(plural), ns, name);
    if (i < 0)
        return KC_ENOTFOUND;
    json_t *cur = json_array_get(objs, (size_t)i);
    if (strcmp(js(cur, "metadata.resourceVersion"), js(obj, "metadata.resourceVersion") ?: ""))
        return kc_err_set(err, KC_ECONFLICT, 409, "Conflict", "conflict");
    json_t *next = json_deep_copy(cur);
    if (!strcmp(sub, "status")) {
        json_object_set(next, "status", json_object_get(obj, "status"));
    } else {
        json_object_set(next, "spec", json_object_get(obj, "spec"));
        json_object_set(obj_at(next, "metadata"), "annotations", jp(obj, "metadata.annotations") ?: json_object());
        if (!json_equal(json_object_get(cur, "spec"), json_object_get(obj, "spec")))
            json_object_set_new(obj_at(next, "metadata"), "generation", json_integer(ji(cur, "metadata.generation") + 1));
    }
    replace_at(i, next);
    if (out)
        *out = json_deep_copy(next);
    return 0;
}

int kc_client_patch(struct kc_client *c, const char *path, const char *ctype, json_t *patch, json_t **out,
                    struct kc_err *err)
{
    check_frozen();
    (void)c;
    (void)err;
    char plural[64], ns[128], name[320], sub[32];
    parse(path, plural, ns, name, sub);
    int i = find(kind_of_plural(plural), ns, name);
    if (i < 0)
        return KC_ENOTFOUND;
    json_t *next = json_deep_copy(json_array_get(objs, (size_t)i));
    if (strstr(ctype, "strategic")) { /* only ownerReferences patches are sent */
        json_t *ref = json_array_get(jp(patch, "metadata.ownerReferences"), 0);
        json_t *refs = json_array();
        if (!json_object_get(ref, "$patch"))
            json_array_append(refs, ref);
        json_object_set_new(obj_at(next, "metadata"), "ownerReferences", refs);
    } else { /* merge patch of annotations */
        const char *k;
        json_t *v;
        json_object_foreach(jp(patch, "metadata.annotations"), k, v)
            set_annot(next, k, json_string_value(v));
    }
    replace_at(i, next);
    if (out)
        *out = json_deep_copy(next);
    return 0;
}

/* The read-only variants answer the fake store's own object, as the in-process server shares its tree:
 * a controller that changed such an answer would change the stored object under the test. */
static void share_answer(json_t **out)
{
    if (!out || !*out)
        return;
    int i = find(js(*out, "kind"), js(*out, "metadata.namespace"), js(*out, "metadata.name"));
    assert_true(i >= 0);
    json_decref(*out);
    *out = json_incref(json_array_get(objs, (size_t)i));
}

int kc_client_create_ro(struct kc_client *c, const char *path, json_t *obj, json_t **out, struct kc_err *err)
{
    int rc = kc_client_create(c, path, obj, out, err);
    if (!rc)
        share_answer(out);
    return rc;
}

int kc_client_update_ro(struct kc_client *c, const char *path, json_t *obj, json_t **out, struct kc_err *err)
{
    int rc = kc_client_update(c, path, obj, out, err);
    if (!rc)
        share_answer(out);
    return rc;
}

int kc_client_patch_ro(struct kc_client *c, const char *path, const char *ctype, json_t *patch, json_t **out,
                       struct kc_err *err)
{
    int rc = kc_client_patch(c, path, ctype, patch, out, err);
    if (!rc)
        share_answer(out);
    return rc;
}

int kc_client_delete(struct kc_client *c, const char *path, json_t *body, json_t **out, struct kc_err *err)
{
    check_frozen();
    (void)c;
    (void)body;
    (void)out;
    (void)err;
    char plural[64], ns[128], name[320], sub[32];
    parse(path, plural, ns, name, sub);
    int i = find(kind_of_plural(plural), ns, name);
    if (i < 0)
        return KC_ENOTFOUND;
    json_array_remove(objs, (size_t)i);
    json_array_remove(frozen, (size_t)i);
    return 0;
}

void kc_event_emit(struct kc_client *c, json_t *obj, const char *type, const char *reason, const char *component,
                   const char *fmt, ...)
{
    (void)c;
    (void)obj;
    (void)component;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_array_append_new(events, json_pack("{s:s, s:s, s:s}", "type", type, "reason", reason, "message", msg));
}

json_t *kc_informer_get(struct kc_informer *inf, const char *key)
{
    check_frozen();
    char ns[256];
    const char *slash = strchr(key, '/');
    snprintf(ns, sizeof ns, "%.*s", (int)(slash - key), key);
    int i = find(inf->kind, ns, slash + 1);
    return i < 0 ? NULL : json_incref(json_array_get(objs, (size_t)i));
}

size_t kc_informer_by_index(struct kc_informer *inf, const char *name, const char *val, json_t ***out)
{
    check_frozen();
    size_t n = 0, i;
    json_t *o;
    *out = calloc(json_array_size(objs) + 1, sizeof **out);
    json_array_foreach(objs, i, o) {
        if (strcmp(js(o, "kind"), inf->kind))
            continue;
        json_t *ref = controller_ref(o);
        const char *v = !strcmp(name, KC_IDX_NAMESPACE) ? js(o, "metadata.namespace")
                        : !strcmp(name, KC_IDX_ORPHAN) ? (ref ? NULL : js(o, "metadata.namespace"))
                        : ref                          ? js(ref, "uid")
                                                       : NULL;
        if (v && !strcmp(v, val))
            (*out)[n++] = json_incref(o);
    }
    return n;
}

void kc_informer_add_handlers(struct kc_informer *inf, const struct kc_informer_handlers *h)
{
    (void)inf;
    (void)h;
}

int kc_informer_wait_synced(struct kc_informer *inf, int timeout_ms)
{
    (void)inf;
    (void)timeout_ms;
    return 0;
}

const char *kc_object_key(json_t *obj, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", js(obj, "metadata.namespace"), js(obj, "metadata.name"));
    return buf;
}

/* Work-queue calls only happen from requeue_stuck here; they are recorded. */
static int requeued_after_ms = -1;
struct kc_wq *kc_wq_new(const char *name, int base_ms, int max_ms)
{
    (void)name;
    (void)base_ms;
    (void)max_ms;
    return NULL;
}
void kc_wq_free(struct kc_wq *q) { (void)q; }
void kc_wq_add(struct kc_wq *q, const char *key) { (void)q; (void)key; }
void kc_wq_add_after(struct kc_wq *q, const char *key, int delay_ms)
{
    (void)q;
    (void)key;
    requeued_after_ms = delay_ms;
}
void kc_wq_add_rate_limited(struct kc_wq *q, const char *key)
{
    (void)q;
    (void)key;
    requeued_after_ms = 0;
}
void kc_wq_forget(struct kc_wq *q, const char *key) { (void)q; (void)key; }
int kc_wq_num_requeues(struct kc_wq *q, const char *key) { (void)q; (void)key; return 0; }
char *kc_wq_get(struct kc_wq *q) { (void)q; return NULL; }
void kc_wq_done(struct kc_wq *q, const char *key) { (void)q; (void)key; }
void kc_wq_shutdown(struct kc_wq *q) { (void)q; }

/* ---------- scenario helpers ---------- */

static struct kc_cm_informers informers = {&inf_d, &inf_rs, &inf_pod};
static struct dctl dc = {.inf = &informers};

static int setup(void **state)
{
    (void)state;
    objs = json_array();
    events = json_array();
    frozen = json_array();
    requeued_after_ms = -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    check_frozen();
    json_decref(frozen);
    json_decref(objs);
    json_decref(events);
    return 0;
}

static json_t *new_deployment(const char *name, int replicas, const char *image, const char *strategy_json)
{
    char buf[2048];
    snprintf(buf, sizeof buf,
             "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"ns\"},"
             "\"spec\":{\"replicas\":%d,\"revisionHistoryLimit\":10,\"progressDeadlineSeconds\":600,"
             "\"strategy\":%s,\"selector\":{\"matchLabels\":{\"app\":\"%s\"}},"
             "\"template\":{\"metadata\":{\"labels\":{\"app\":\"%s\"}},"
             "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"%s\"}]}}}}",
             name, replicas, strategy_json, name, name, image);
    json_t *d = json_loads(buf, 0, NULL);
    assert_non_null(d);
    json_t *o = store_create(d);
    json_decref(d);
    return o;
}

#define ROLLING(s, u) "{\"type\":\"RollingUpdate\",\"rollingUpdate\":{\"maxSurge\":" s ",\"maxUnavailable\":" u "}}"

static int sync_key(const char *name)
{
    char key[300];
    snprintf(key, sizeof key, "ns/%s", name);
    return sync_deployment(&dc, key);
}

static json_t *get(const char *kind, const char *name)
{
    int i = find(kind, "ns", name);
    return i < 0 ? NULL : json_array_get(objs, (size_t)i);
}

/* Replica sets of the deployment, ordered by revision. */
static size_t rsets(json_t **out, size_t max)
{
    size_t n = 0, i;
    json_t *o;
    json_array_foreach(objs, i, o)
        if (!strcmp(js(o, "kind"), "ReplicaSet") && n < max)
            out[n++] = o;
    for (size_t a = 1; a < n; a++)
        for (size_t b = a; b > 0 && rs_revision(out[b]) < rs_revision(out[b - 1]); b--) {
            json_t *t = out[b];
            out[b] = out[b - 1];
            out[b - 1] = t;
        }
    return n;
}

/* Plays the ReplicaSet controller + kubelet: status follows spec; `available` of them available. */
static void rs_status(json_t *rs, int available)
{
    int i = find("ReplicaSet", "ns", js(rs, "metadata.name"));
    json_t *next = json_deep_copy(json_array_get(objs, (size_t)i));
    int r = rs_replicas(next);
    json_object_set_new(next, "status",
                        json_pack("{s:i, s:i, s:i, s:I}", "replicas", r, "readyReplicas", available, "availableReplicas",
                                  available, "observedGeneration", (json_int_t)ji(next, "metadata.generation")));
    replace_at(i, next);
}

static void all_rs_settled(void)
{
    json_t *rs[16];
    size_t n = rsets(rs, 16);
    for (size_t i = 0; i < n; i++)
        rs_status(rs[i], rs_replicas(rs[i]));
}

static void set_image(const char *name, const char *image)
{
    int i = find("Deployment", "ns", name);
    json_t *next = json_deep_copy(json_array_get(objs, (size_t)i));
    json_t *c0 = json_array_get(jp(next, "spec.template.spec.containers"), 0);
    json_object_set_new(c0, "image", json_string(image));
    json_object_set_new(obj_at(next, "metadata"), "generation", json_integer(ji(next, "metadata.generation") + 1));
    replace_at(i, next);
}

static void set_spec(const char *name, const char *key, json_t *val)
{
    int i = find("Deployment", "ns", name);
    json_t *next = json_deep_copy(json_array_get(objs, (size_t)i));
    json_object_set_new(obj_at(next, "spec"), key, val);
    json_object_set_new(obj_at(next, "metadata"), "generation", json_integer(ji(next, "metadata.generation") + 1));
    replace_at(i, next);
}

static bool has_event(const char *reason, const char *msg)
{
    size_t i;
    json_t *e;
    json_array_foreach(events, i, e)
        if (!strcmp(js(e, "reason"), reason) && !strcmp(js(e, "message"), msg))
            return true;
    return false;
}

static json_t *dcond(const char *name, const char *type)
{
    return cond_get(json_object_get(get("Deployment", name), "status"), type);
}

/* ---------- tests ---------- */

static void test_create_and_available(void **state)
{
    (void)state;
    new_deployment("web", 3, "nginx:1", ROLLING("\"25%\"", "\"25%\""));
    assert_int_equal(sync_key("web"), 0);
    json_t *rs[4];
    assert_int_equal(rsets(rs, 4), 1);
    char h[16];
    assert_non_null(js(rs[0], "metadata.labels.pod-template-hash"));
    snprintf(h, sizeof h, "%s", js(rs[0], "metadata.labels.pod-template-hash"));
    char want[64];
    snprintf(want, sizeof want, "web-%s", h);
    assert_string_equal(js(rs[0], "metadata.name"), want);
    assert_string_equal(js(rs[0], "spec.selector.matchLabels.pod-template-hash"), h);
    assert_string_equal(js(rs[0], "spec.template.metadata.labels.pod-template-hash"), h);
    assert_int_equal(rs_replicas(rs[0]), 3);
    assert_string_equal(annot(rs[0], ANN_REVISION), "1");
    assert_string_equal(annot(rs[0], ANN_DESIRED), "3");
    assert_string_equal(annot(rs[0], ANN_MAX), "4");
    json_t *ref = controller_ref(rs[0]);
    assert_non_null(ref);
    assert_true(json_is_true(json_object_get(ref, "blockOwnerDeletion")));
    assert_string_equal(js(ref, "uid"), js(get("Deployment", "web"), "metadata.uid"));
    assert_string_equal(annot(get("Deployment", "web"), ANN_REVISION), "1");
    json_t *pc = dcond("web", "Progressing");
    assert_string_equal(js(pc, "reason"), "NewReplicaSetCreated");
    snprintf(want, sizeof want, "Created new replica set \"web-%s\"", h);
    assert_string_equal(js(pc, "message"), want);
    snprintf(want, sizeof want, "Scaled up replica set web-%s from 0 to 3", h);
    assert_true(has_event("ScalingReplicaSet", want));

    /* pods not ready yet: not available */
    rs_status(rs[0], 0);
    assert_int_equal(sync_key("web"), 0);
    json_t *ac = dcond("web", "Available");
    assert_string_equal(js(ac, "status"), "False");
    assert_string_equal(js(ac, "message"), "Deployment does not have minimum availability.");
    assert_int_equal(ji(get("Deployment", "web"), "status.unavailableReplicas"), 3);

    all_rs_settled();
    assert_int_equal(sync_key("web"), 0);
    json_t *d = get("Deployment", "web");
    assert_int_equal(ji(d, "status.replicas"), 3);
    assert_int_equal(ji(d, "status.updatedReplicas"), 3);
    assert_int_equal(ji(d, "status.availableReplicas"), 3);
    assert_null(jp(d, "status.unavailableReplicas"));
    assert_int_equal(ji(d, "status.observedGeneration"), 1);
    assert_string_equal(js(dcond("web", "Available"), "reason"), "MinimumReplicasAvailable");
    pc = dcond("web", "Progressing");
    assert_string_equal(js(pc, "reason"), "NewReplicaSetAvailable");
    snprintf(want, sizeof want, "ReplicaSet \"web-%s\" has successfully progressed.", h);
    assert_string_equal(js(pc, "message"), want);

    /* nothing changed: no write at all */
    long long rv = rv_counter;
    assert_int_equal(sync_key("web"), 0);
    assert_int_equal(rv_counter, rv);
}

static void test_rolling_update_steps(void **state)
{
    (void)state;
    new_deployment("web", 3, "nginx:1", ROLLING("1", "0"));
    sync_key("web");
    all_rs_settled();
    sync_key("web");
    set_image("web", "nginx:2");
    assert_int_equal(sync_key("web"), 0);
    json_t *rs[4];
    assert_int_equal(rsets(rs, 4), 2);
    assert_int_equal(rs_replicas(rs[0]), 3); /* maxUnavailable 0: old untouched */
    assert_int_equal(rs_replicas(rs[1]), 1); /* surge 1 */
    assert_string_equal(annot(rs[1], ANN_REVISION), "2");
    assert_string_equal(annot(get("Deployment", "web"), ANN_REVISION), "2");
    /* new pod not ready: nothing else happens */
    rs_status(rs[1], 0);
    assert_int_equal(sync_key("web"), 0);
    rsets(rs, 4);
    assert_int_equal(rs_replicas(rs[0]), 3);
    assert_int_equal(rs_replicas(rs[1]), 1);
    assert_string_equal(js(dcond("web", "Progressing"), "reason"), "ReplicaSetUpdated");
    /* new pod ready → one old pod goes, then the new RS grows */
    rs_status(rs[1], 1);
    assert_int_equal(sync_key("web"), 0);
    rsets(rs, 4);
    assert_int_equal(rs_replicas(rs[0]), 2);
    char want[128];
    snprintf(want, sizeof want, "Scaled down replica set %s from 3 to 2", js(rs[0], "metadata.name"));
    assert_true(has_event("ScalingReplicaSet", want));
    rs_status(rs[0], 2);
    assert_int_equal(sync_key("web"), 0);
    rsets(rs, 4);
    assert_int_equal(rs_replicas(rs[1]), 2);
    snprintf(want, sizeof want, "Scaled up replica set %s from 1 to 2", js(rs[1], "metadata.name"));
    assert_true(has_event("ScalingReplicaSet", want));
    for (int i = 0; i < 10; i++) {
        all_rs_settled();
        sync_key("web");
    }
    rsets(rs, 4);
    assert_int_equal(rs_replicas(rs[0]), 0);
    assert_int_equal(rs_replicas(rs[1]), 3);
    assert_string_equal(js(dcond("web", "Progressing"), "reason"), "NewReplicaSetAvailable");
}

static void test_unhealthy_old_cleaned_first(void **state)
{
    (void)state;
    new_deployment("web", 4, "nginx:1", ROLLING("0", "1"));
    sync_key("web");
    json_t *rs[4];
    rsets(rs, 4);
    rs_status(rs[0], 2); /* two of four old pods are broken */
    sync_key("web");
    set_image("web", "nginx:2");
    sync_key("web"); /* creates the new RS at 0 (no surge) */
    rsets(rs, 4);
    assert_int_equal(rs_replicas(rs[1]), 0);
    sync_key("web");
    rsets(rs, 4);
    /* budget = all 4 - minAvailable 3 - 0 = 1: one unhealthy old replica removed */
    assert_int_equal(rs_replicas(rs[0]), 3);
}

static void test_recreate_waits_for_old_pods(void **state)
{
    (void)state;
    new_deployment("web", 2, "nginx:1", "{\"type\":\"Recreate\"}");
    sync_key("web");
    all_rs_settled();
    sync_key("web");
    json_t *rs[4];
    rsets(rs, 4);
    /* an old pod exists */
    json_t *pod = json_pack("{s:s, s:s, s:{s:s, s:s, s:[{s:s, s:s, s:b}]}, s:{s:s}}", "apiVersion", "v1", "kind", "Pod",
                            "metadata", "name", "p1", "namespace", "ns", "ownerReferences", "uid",
                            js(rs[0], "metadata.uid"), "kind", "ReplicaSet", "controller", 1, "status", "phase",
                            "Running");
    store_create(pod);
    json_decref(pod);
    set_image("web", "nginx:2");
    sync_key("web");
    assert_int_equal(rsets(rs, 4), 1); /* scaled old down, no new RS yet */
    assert_int_equal(rs_replicas(rs[0]), 0);
    rs_status(rs[0], 0); /* RS status says 0 but the pod is still there */
    sync_key("web");
    assert_int_equal(rsets(rs, 4), 1);
    int i = find("Pod", "ns", "p1");
    json_array_remove(objs, (size_t)i);
    json_array_remove(frozen, (size_t)i);
    sync_key("web");
    assert_int_equal(rsets(rs, 4), 2);
    assert_int_equal(rs_replicas(rs[1]), 2);
    assert_string_equal(annot(rs[1], ANN_REVISION), "2");
}

static void test_paused_then_resumed(void **state)
{
    (void)state;
    new_deployment("web", 2, "nginx:1", ROLLING("\"25%\"", "\"25%\""));
    sync_key("web");
    all_rs_settled();
    sync_key("web");
    set_spec("web", "paused", json_true());
    set_image("web", "nginx:2");
    sync_key("web");
    json_t *rs[4];
    assert_int_equal(rsets(rs, 4), 1);
    json_t *pc = dcond("web", "Progressing");
    assert_string_equal(js(pc, "reason"), "DeploymentPaused");
    assert_string_equal(js(pc, "status"), "Unknown");
    /* scaling still applies while paused */
    set_spec("web", "replicas", json_integer(4));
    sync_key("web");
    rsets(rs, 4);
    assert_int_equal(rs_replicas(rs[0]), 4);
    set_spec("web", "paused", json_false());
    sync_key("web");
    assert_int_equal(rsets(rs, 4), 2);
}

static void test_rollback_renumbers(void **state)
{
    (void)state;
    new_deployment("web", 1, "nginx:1", ROLLING("1", "0"));
    for (int i = 0; i < 3; i++) {
        sync_key("web");
        all_rs_settled();
    }
    set_image("web", "nginx:2");
    for (int i = 0; i < 6; i++) {
        sync_key("web");
        all_rs_settled();
    }
    json_t *rs[4];
    assert_int_equal(rsets(rs, 4), 2);
    const char *first = js(rs[0], "metadata.name");
    char first_name[128];
    snprintf(first_name, sizeof first_name, "%s", first);
    set_image("web", "nginx:1"); /* what kubectl rollout undo does */
    for (int i = 0; i < 6; i++) {
        sync_key("web");
        all_rs_settled();
    }
    assert_int_equal(rsets(rs, 4), 2); /* reused, not a third RS */
    assert_string_equal(js(rs[1], "metadata.name"), first_name);
    assert_string_equal(annot(rs[1], ANN_REVISION), "3");
    assert_string_equal(annot(rs[1], ANN_REV_HISTORY), "1");
    assert_int_equal(rs_replicas(rs[1]), 1);
    assert_int_equal(rs_replicas(rs[0]), 0);
    assert_string_equal(annot(get("Deployment", "web"), ANN_REVISION), "3");
}

static void test_history_limit(void **state)
{
    (void)state;
    new_deployment("web", 1, "nginx:0", ROLLING("1", "0"));
    set_spec("web", "revisionHistoryLimit", json_integer(1));
    char img[32];
    for (int v = 1; v <= 4; v++) {
        for (int i = 0; i < 6; i++) {
            sync_key("web");
            all_rs_settled();
        }
        snprintf(img, sizeof img, "nginx:%d", v);
        set_image("web", img);
    }
    for (int i = 0; i < 6; i++) {
        sync_key("web");
        all_rs_settled();
    }
    json_t *rs[8];
    assert_int_equal(rsets(rs, 8), 2);
    assert_string_equal(annot(rs[0], ANN_REVISION), "4");
    assert_string_equal(annot(rs[1], ANN_REVISION), "5");
}

static void test_proportional_scale_mid_rollout(void **state)
{
    (void)state;
    /* TestScale "proportional scaling: 5 -> 10" through the controller */
    new_deployment("web", 5, "nginx:1", ROLLING("0", "1"));
    sync_key("web");
    all_rs_settled();
    sync_key("web");
    set_image("web", "nginx:2");
    sync_key("web"); /* new RS at 0 */
    json_t *rs[4];
    rsets(rs, 4);
    /* force the mid-rollout shape 3 old / 2 new (as if two steps happened) */
    int i0 = find("ReplicaSet", "ns", js(rs[0], "metadata.name"));
    int i1 = find("ReplicaSet", "ns", js(rs[1], "metadata.name"));
    json_t *o = json_deep_copy(json_array_get(objs, (size_t)i0)), *n = json_deep_copy(json_array_get(objs, (size_t)i1));
    json_object_set_new(jp(o, "spec"), "replicas", json_integer(3));
    json_object_set_new(jp(n, "spec"), "replicas", json_integer(2));
    replace_at(i0, o);
    replace_at(i1, n);
    all_rs_settled();
    set_spec("web", "replicas", json_integer(10));
    assert_int_equal(sync_key("web"), 0);
    rsets(rs, 4);
    assert_int_equal(rs_replicas(rs[0]), 6);
    assert_int_equal(rs_replicas(rs[1]), 4);
    assert_string_equal(annot(rs[0], ANN_DESIRED), "10");
    assert_string_equal(annot(rs[1], ANN_DESIRED), "10");
}

static void test_progress_deadline(void **state)
{
    (void)state;
    new_deployment("web", 1, "nginx:1", ROLLING("1", "0"));
    set_spec("web", "progressDeadlineSeconds", json_integer(5));
    sync_key("web");
    json_t *rs[2];
    rsets(rs, 2);
    char rsname[64];
    snprintf(rsname, sizeof rsname, "%s", js(rs[0], "metadata.name"));
    rs_status(rs[0], 0);
    sync_key("web"); /* progress recorded */
    assert_int_equal(requeued_after_ms, -1);
    sync_key("web"); /* no change: wait for the deadline */
    assert_true(requeued_after_ms > 0 && requeued_after_ms <= 7000); /* looks again when the deadline passes */
    /* age the Progressing condition past the deadline */
    int i = find("Deployment", "ns", "web");
    json_t *d = json_deep_copy(json_array_get(objs, (size_t)i));
    json_t *pc = cond_get(json_object_get(d, "status"), "Progressing");
    json_object_set_new(pc, "lastUpdateTime", json_string("2020-01-01T00:00:00Z"));
    replace_at(i, d);
    sync_key("web");
    pc = dcond("web", "Progressing");
    assert_string_equal(js(pc, "reason"), "ProgressDeadlineExceeded");
    assert_string_equal(js(pc, "status"), "False");
    char want[128];
    snprintf(want, sizeof want, "ReplicaSet \"%s\" has timed out progressing.", rsname);
    assert_string_equal(js(pc, "message"), want);
}

static void test_adopt_and_collision(void **state)
{
    (void)state;
    json_t *d = new_deployment("web", 1, "nginx:1", ROLLING("1", "0"));
    /* an orphan RS with the deployment's template: adopted, not duplicated */
    char hash[16];
    kc_ro_template_hash(jp(d, "spec.template"), -1, hash, sizeof hash);
    char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\",\"metadata\":{\"name\":\"orphan\",\"namespace\":\"ns\","
             "\"labels\":{\"app\":\"web\"}},\"spec\":{\"replicas\":1,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},"
             "\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"}},\"spec\":{\"containers\":[{\"name\":\"c\","
             "\"image\":\"nginx:1\"}]}}}}");
    json_t *orphan = json_loads(buf, 0, NULL);
    store_create(orphan);
    json_decref(orphan);
    sync_key("web");
    json_t *rs[4];
    assert_int_equal(rsets(rs, 4), 1);
    assert_string_equal(js(controller_ref(rs[0]), "uid"), js(get("Deployment", "web"), "metadata.uid"));
    assert_string_equal(js(dcond("web", "Progressing"), "reason"), "FoundNewReplicaSet");

    /* a foreign object holding the name the next RS wants → collisionCount */
    set_image("web", "nginx:2");
    d = get("Deployment", "web");
    kc_ro_template_hash(jp(d, "spec.template"), -1, hash, sizeof hash);
    snprintf(buf, sizeof buf,
             "{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\",\"metadata\":{\"name\":\"web-%s\",\"namespace\":\"ns\","
             "\"labels\":{\"other\":\"x\"}},\"spec\":{\"replicas\":0,\"selector\":{\"matchLabels\":{\"other\":\"x\"}},"
             "\"template\":{\"metadata\":{\"labels\":{\"other\":\"x\"}}}}}", hash);
    json_t *foreign = json_loads(buf, 0, NULL);
    store_create(foreign);
    json_decref(foreign);
    assert_int_equal(sync_key("web"), KC_EEXISTS);
    assert_int_equal(ji(get("Deployment", "web"), "status.collisionCount"), 1);
    assert_int_equal(sync_key("web"), 0);
    char h1[16];
    kc_ro_template_hash(jp(get("Deployment", "web"), "spec.template"), 1, h1, sizeof h1);
    snprintf(buf, sizeof buf, "web-%s", h1);
    assert_non_null(get("ReplicaSet", buf));
}

static void test_replica_failure_copied(void **state)
{
    (void)state;
    new_deployment("web", 2, "nginx:1", ROLLING("1", "0"));
    sync_key("web");
    json_t *rs[2];
    rsets(rs, 2);
    int i = find("ReplicaSet", "ns", js(rs[0], "metadata.name"));
    json_t *next = json_deep_copy(json_array_get(objs, (size_t)i));
    json_object_set_new(next, "status",
                        json_pack("{s:i, s:[{s:s, s:s, s:s, s:s, s:s}]}", "replicas", 0, "conditions", "type",
                                  "ReplicaFailure", "status", "True", "reason", "FailedCreate", "message",
                                  "pods \"web-x\" is forbidden: exceeded quota", "lastTransitionTime",
                                  "2026-01-01T00:00:00Z"));
    replace_at(i, next);
    sync_key("web");
    json_t *c = dcond("web", "ReplicaFailure");
    assert_non_null(c);
    assert_string_equal(js(c, "reason"), "FailedCreate");
    assert_string_equal(js(c, "message"), "pods \"web-x\" is forbidden: exceeded quota");
    assert_string_equal(js(c, "lastUpdateTime"), "2026-01-01T00:00:00Z");
    rsets(rs, 2);
    rs_status(rs[0], 0); /* the failure cleared */
    sync_key("web");
    assert_null(dcond("web", "ReplicaFailure"));
}

static void test_empty_selector_and_deleting(void **state)
{
    (void)state;
    new_deployment("all", 1, "nginx:1", ROLLING("1", "0"));
    set_spec("all", "selector", json_object());
    assert_int_equal(sync_key("all"), 0);
    json_t *rs[2];
    assert_int_equal(rsets(rs, 2), 0);
    assert_true(has_event("SelectingAll", "This deployment is selecting all pods. A non-empty selector is required."));
    assert_int_equal(ji(get("Deployment", "all"), "status.observedGeneration"), 2);

    /* a Deployment being deleted only gets its status refreshed */
    new_deployment("gone", 1, "nginx:1", ROLLING("1", "0"));
    int i = find("Deployment", "ns", "gone");
    json_t *d = json_deep_copy(json_array_get(objs, (size_t)i));
    json_object_set_new(obj_at(d, "metadata"), "deletionTimestamp", json_string("2026-01-01T00:00:00Z"));
    replace_at(i, d);
    assert_int_equal(sync_key("gone"), 0);
    assert_int_equal(rsets(rs, 2), 0);
    assert_int_equal(ji(get("Deployment", "gone"), "status.observedGeneration"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_and_available, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rolling_update_steps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unhealthy_old_cleaned_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recreate_waits_for_old_pods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paused_then_resumed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_renumbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proportional_scale_mid_rollout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_and_collision, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replica_failure_copied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_selector_and_deleting, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
