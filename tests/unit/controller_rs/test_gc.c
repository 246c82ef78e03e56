/* test_gc.c — the garbage collector's decisions against a fake API and fake informers.
 *
 * gc.c is #included so process() can be driven with an owner key directly. The fake "server" is a
 * map path → object for live GETs; the fake informers hold what the caches show. Every patch and
 * delete is recorded with its body, so the tests check what would be sent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../src/controller/gc.c"

/* ---------- fakes ---------- */

struct kc_informer {
    json_t *items; /* key → object */
};

static struct kc_informer dep_inf, rs_inf, pod_inf;
static json_t *server;  /* path → object */
static json_t *calls;   /* [{op, path, body}] */

const char *kc_object_key(json_t *obj, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", kc_obj_str(obj, "metadata.namespace") ?: "", kc_obj_str(obj, "metadata.name") ?: "");
    return buf;
}

json_t *kc_informer_get(struct kc_informer *inf, const char *key)
{
    return json_incref(json_object_get(inf->items, key));
}

size_t kc_informer_by_index(struct kc_informer *inf, const char *name, const char *val, json_t ***out)
{
    assert_string_equal(name, IDX_OWNERS);
    json_t **v = calloc(json_object_size(inf->items) + 1, sizeof *v);
    size_t n = 0;
    const char *k;
    json_t *o;
    json_object_foreach(inf->items, k, o) {
        const char *vals[16];
        int nv = owners_index(o, vals, 16);
        for (int i = 0; i < nv; i++)
            if (!strcmp(vals[i], val)) {
                v[n++] = json_incref(o);
                break;
            }
    }
    *out = v;
    return n;
}

size_t kc_informer_list(struct kc_informer *inf, json_t ***out)
{
    (void)inf;
    *out = NULL;
    return 0;
}

void kc_informer_add_handlers(struct kc_informer *inf, const struct kc_informer_handlers *h) { (void)inf; (void)h; }
void kc_informer_add_index(struct kc_informer *inf, const char *name, kc_index_fn fn) { (void)inf; (void)name; (void)fn; }
int kc_informer_wait_synced(struct kc_informer *inf, int timeout_ms) { (void)inf; (void)timeout_ms; return 0; }

const char *kc_path(char *buf, size_t n, const char *group, const char *version, const char *plural, const char *ns,
                    const char *name, const char *sub)
{
    (void)sub;
    snprintf(buf, n, "%s%s/%s%s%s/%s/%s", *group ? "/apis/" : "/api", group, version, ns ? "/namespaces/" : "",
             ns ? ns : "", plural, name);
    return buf;
}

static void record(const char *op, const char *path, json_t *body)
{
    json_array_append_new(calls, json_pack("{s:s, s:s, s:O?}", "op", op, "path", path, "body", body));
}

int kc_client_get(struct kc_client *c, const char *path, json_t **out, struct kc_err *err)
{
    (void)c;
    record("GET", path, NULL);
    json_t *o = json_object_get(server, path);
    if (!o)
        return kc_err_set(err, KC_ENOTFOUND, 404, "NotFound", "not found");
    *out = json_deep_copy(o);
    return 0;
}

int kc_client_patch(struct kc_client *c, const char *path, const char *ctype, json_t *patch, json_t **out,
                    struct kc_err *err)
{
    (void)c;
    (void)err;
    assert_string_equal(ctype, "application/merge-patch+json");
    record("PATCH", path, patch);
    if (out)
        *out = NULL;
    return 0;
}

int kc_client_delete(struct kc_client *c, const char *path, json_t *body, json_t **out, struct kc_err *err)
{
    (void)c;
    (void)err;
    record("DELETE", path, body);
    if (out)
        *out = NULL;
    return 0;
}

struct kc_wq {
    int dummy;
};
static struct kc_wq the_q;
struct kc_wq *kc_wq_new(const char *name, int base_ms, int max_ms) { (void)name; (void)base_ms; (void)max_ms; return &the_q; }
void kc_wq_free(struct kc_wq *q) { (void)q; }
void kc_wq_add(struct kc_wq *q, const char *key) { (void)q; (void)key; }
void kc_wq_add_after(struct kc_wq *q, const char *key, int delay_ms) { (void)q; (void)key; (void)delay_ms; }
void kc_wq_add_rate_limited(struct kc_wq *q, const char *key) { (void)q; (void)key; }
void kc_wq_forget(struct kc_wq *q, const char *key) { (void)q; (void)key; }
char *kc_wq_get(struct kc_wq *q) { (void)q; return NULL; }
void kc_wq_done(struct kc_wq *q, const char *key) { (void)q; (void)key; }
void kc_wq_shutdown(struct kc_wq *q) { (void)q; }

/* ---------- fixtures ---------- */

static struct gc G;

static int setup(void **state)
{
    (void)state;
    dep_inf.items = json_object();
    rs_inf.items = json_object();
    pod_inf.items = json_object();
    server = json_object();
    calls = json_array();
    memset(&G, 0, sizeof G);
    G.inf[INF_DEPLOY] = &dep_inf;
    G.inf[INF_RS] = &rs_inf;
    G.inf[INF_POD] = &pod_inf;
    G.q = &the_q;
    for (int i = 0; i < INF_N; i++) {
        G.src[i].g = &G;
        for (size_t j = 0; j < sizeof KINDS / sizeof *KINDS; j++)
            if (KINDS[j].inf == i)
                G.src[i].kind = (int)j;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    json_decref(dep_inf.items);
    json_decref(rs_inf.items);
    json_decref(pod_inf.items);
    json_decref(server);
    json_decref(calls);
    return 0;
}

static json_t *ref(const char *api_version, const char *kind, const char *name, const char *uid, bool block)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:b}", "apiVersion", api_version, "kind", kind, "name", name, "uid", uid,
                     "blockOwnerDeletion", block);
}

/* An object in namespace ns with the given ownerReferences (array, stolen; may be NULL). */
static json_t *obj(const char *name, json_t *refs)
{
    json_t *o = json_pack("{s:{s:s, s:s, s:s, s:s}}", "metadata", "name", name, "namespace", "ns", "uid", name,
                          "resourceVersion", "5");
    if (refs)
        json_object_set_new(json_object_get(o, "metadata"), "ownerReferences", refs);
    return o;
}

static void cache(struct kc_informer *inf, json_t *o)
{
    char key[300];
    json_object_set(inf->items, kc_object_key(o, key, sizeof key), o);
}

static void live(const char *path, json_t *o)
{
    json_object_set(server, path, o);
}

static int run(const char *key)
{
    struct kc_err err = {0};
    return process(&G, key, &err);
}

static json_t *call(size_t i)
{
    return json_array_get(calls, i);
}

static size_t count(const char *op)
{
    size_t n = 0, i;
    json_t *c;
    json_array_foreach(calls, i, c) n += !strcmp(kc_obj_str(c, "op"), op);
    return n;
}

static json_t *find(const char *op, const char *path)
{
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c) if (!strcmp(kc_obj_str(c, "op"), op) && !strcmp(kc_obj_str(c, "path"), path))
        return c;
    return NULL;
}

/* ---------- tests ---------- */

static void test_absent_owner_deletes_or_unlinks(void **state)
{
    (void)state;
    json_t *p1 = obj("p1", json_pack("[o]", ref("apps/v1", "ReplicaSet", "gone", "uid-gone", true)));
    json_t *p2 = obj("p2", json_pack("[o, o]", ref("apps/v1", "ReplicaSet", "gone", "uid-gone", true),
                                     ref("v1", "ConfigMap", "keeper", "uid-keeper", false)));
    json_t *keeper = obj("keeper", NULL);
    json_object_set_new(json_object_get(keeper, "metadata"), "uid", json_string("uid-keeper"));
    cache(&pod_inf, p1);
    cache(&pod_inf, p2);
    live("/api/v1/namespaces/ns/configmaps/keeper", keeper);
    assert_int_equal(run("uid-gone|apps/v1|ReplicaSet|ns|gone"), 0);
    json_t *d = find("DELETE", "/api/v1/namespaces/ns/pods/p1");
    assert_non_null(d);
    assert_string_equal(kc_obj_str(d, "body.propagationPolicy"), "Background");
    assert_string_equal(kc_obj_str(d, "body.preconditions.uid"), "p1");
    json_t *p = find("PATCH", "/api/v1/namespaces/ns/pods/p2");
    assert_non_null(p);
    json_t *refs = kc_obj_get(p, "body.metadata.ownerReferences");
    assert_int_equal(json_array_size(refs), 1);
    assert_string_equal(kc_obj_str(json_array_get(refs, 0), "uid"), "uid-keeper");
    assert_string_equal(kc_obj_str(p, "body.metadata.resourceVersion"), "5");
    assert_int_equal(count("DELETE"), 1);
    json_decref(p1);
    json_decref(p2);
    json_decref(keeper);
}

static void test_live_owner_never_collected(void **state)
{
    (void)state;
    json_t *rs = obj("web", NULL);
    json_object_set_new(json_object_get(rs, "metadata"), "uid", json_string("uid-web"));
    json_t *p = obj("p", json_pack("[o]", ref("apps/v1", "ReplicaSet", "web", "uid-web", true)));
    cache(&pod_inf, p);
    /* cached owner: no API call at all */
    cache(&rs_inf, rs);
    assert_int_equal(run("uid-web|apps/v1|ReplicaSet|ns|web"), 0);
    assert_int_equal(json_array_size(calls), 0);
    /* owner missing from a lagging cache but alive in the API: a GET, nothing else */
    json_object_clear(rs_inf.items);
    live("/apis/apps/v1/namespaces/ns/replicasets/web", rs);
    assert_int_equal(run("uid-web|apps/v1|ReplicaSet|ns|web"), 0);
    assert_int_equal(count("GET"), 1);
    assert_int_equal(json_array_size(calls), 1);
    /* same name, another uid: the owner we reference is gone */
    json_object_set_new(json_object_get(rs, "metadata"), "uid", json_string("uid-new"));
    assert_int_equal(run("uid-web|apps/v1|ReplicaSet|ns|web"), 0);
    assert_int_equal(count("DELETE"), 1);
    /* an owner kind kubec cannot check is never a reason to delete */
    json_t *q = obj("q", json_pack("[o]", ref("batch/v1", "Job", "j", "uid-job", true)));
    cache(&pod_inf, q);
    assert_int_equal(run("uid-job|batch/v1|Job|ns|j"), 0);
    assert_int_equal(count("DELETE"), 1);
    json_decref(rs);
    json_decref(p);
    json_decref(q);
}

static json_t *deleting_rs(const char *fin1, const char *fin2)
{
    json_t *rs = obj("web", NULL);
    json_t *m = json_object_get(rs, "metadata");
    json_object_set_new(m, "uid", json_string("uid-web"));
    json_object_set_new(m, "resourceVersion", json_string("9"));
    json_object_set_new(m, "deletionTimestamp", json_string("2026-01-01T00:00:00Z"));
    json_object_set_new(m, "finalizers", fin2 ? json_pack("[s, s]", fin1, fin2) : json_pack("[s]", fin1));
    return rs;
}

static void test_orphan_unlinks_then_removes_finalizer(void **state)
{
    (void)state;
    json_t *rs = deleting_rs("orphan", "example.com/keep");
    json_t *p = obj("p", json_pack("[o]", ref("apps/v1", "ReplicaSet", "web", "uid-web", true)));
    cache(&rs_inf, rs);
    cache(&pod_inf, p);
    live("/apis/apps/v1/namespaces/ns/replicasets/web", rs);
    assert_int_equal(run("uid-web|apps/v1|ReplicaSet|ns|web"), 0);
    assert_int_equal(count("DELETE"), 0);
    json_t *pp = find("PATCH", "/api/v1/namespaces/ns/pods/p");
    assert_true(json_is_null(kc_obj_get(pp, "body.metadata.ownerReferences")));
    json_t *op = find("PATCH", "/apis/apps/v1/namespaces/ns/replicasets/web");
    json_t *fins = kc_obj_get(op, "body.metadata.finalizers");
    assert_int_equal(json_array_size(fins), 1);
    assert_string_equal(json_string_value(json_array_get(fins, 0)), "example.com/keep");
    assert_string_equal(kc_obj_str(op, "body.metadata.resourceVersion"), "9");
    /* the owner's finalizer goes last */
    assert_ptr_equal(call(json_array_size(calls) - 1), op);
    json_decref(rs);
    json_decref(p);
}

static void test_foreground_waits_for_blocking_dependents(void **state)
{
    (void)state;
    json_t *rs = deleting_rs("foregroundDeletion", NULL);
    json_t *a = obj("a", json_pack("[o]", ref("apps/v1", "ReplicaSet", "web", "uid-web", true)));
    json_t *b = obj("b", json_pack("[o]", ref("apps/v1", "ReplicaSet", "web", "uid-web", false)));
    /* c has dependents of its own: deleted in the foreground too */
    json_t *c = obj("c", json_pack("[o]", ref("apps/v1", "ReplicaSet", "web", "uid-web", true)));
    json_t *cdep = obj("c-dep", json_pack("[o]", ref("v1", "Pod", "c", "c", true)));
    cache(&rs_inf, rs);
    cache(&pod_inf, a);
    cache(&pod_inf, b);
    cache(&pod_inf, c);
    cache(&pod_inf, cdep);
    live("/apis/apps/v1/namespaces/ns/replicasets/web", rs);
    assert_int_equal(run("uid-web|apps/v1|ReplicaSet|ns|web"), 1); /* waiting */
    assert_string_equal(kc_obj_str(find("DELETE", "/api/v1/namespaces/ns/pods/a"), "body.propagationPolicy"),
                        "Background");
    assert_non_null(find("DELETE", "/api/v1/namespaces/ns/pods/b"));
    assert_string_equal(kc_obj_str(find("DELETE", "/api/v1/namespaces/ns/pods/c"), "body.propagationPolicy"),
                        "Foreground");
    assert_null(find("PATCH", "/apis/apps/v1/namespaces/ns/replicasets/web"));
    /* a is terminating (held by a finalizer), b and c are gone: still waiting for a */
    json_object_clear(pod_inf.items);
    json_object_set_new(json_object_get(a, "metadata"), "deletionTimestamp", json_string("2026-01-01T00:00:01Z"));
    cache(&pod_inf, a);
    json_array_clear(calls);
    assert_int_equal(run("uid-web|apps/v1|ReplicaSet|ns|web"), 1);
    assert_int_equal(count("DELETE") + count("PATCH"), 0);
    /* a gone: the finalizer is removed */
    json_object_clear(pod_inf.items);
    assert_int_equal(run("uid-web|apps/v1|ReplicaSet|ns|web"), 0);
    json_t *op = find("PATCH", "/apis/apps/v1/namespaces/ns/replicasets/web");
    assert_non_null(op);
    assert_int_equal(json_array_size(kc_obj_get(op, "body.metadata.finalizers")), 0);
    json_decref(rs);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(cdep);
}

static void test_key_parsing_bounds(void **state)
{
    (void)state;
    struct owner o;
    assert_true(parse_key("u|apps/v1|ReplicaSet|ns|n", &o));
    assert_string_equal(o.name, "n");
    assert_true(parse_key("u|v1|Node||n", &o));
    assert_string_equal(o.ns, "");
    assert_false(parse_key("u|v1|Node|n", &o));
    assert_false(parse_key("u|v1|Node|ns|n|extra", &o));
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    char key[800];
    snprintf(key, sizeof key, "u|v1|Pod|ns|%s", big);
    assert_false(parse_key(key, &o));
    assert_non_null(kind_of("apps/v1beta2", "ReplicaSet")); /* same object, another version */
    assert_non_null(kind_of("v1", "Pod"));
    assert_null(kind_of("v1", "ReplicaSet"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_absent_owner_deletes_or_unlinks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_owner_never_collected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orphan_unlinks_then_removes_finalizer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreground_waits_for_blocking_dependents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_parsing_bounds, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
