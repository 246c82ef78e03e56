/* test_rs_sync.c — the ReplicaSet controller's sync against a fake API and fake informers.
 *
 * replicaset.c is #included so its static functions (sync_rs, the informer handlers) can be driven
 * directly. The fake API records every create/delete/patch/status update; the fake informers only
 * show what the test delivers, which lets a test play a watch that lags behind the API — exactly
 * the situation expectations exist for.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../src/controller/replicaset.c"

/* ---------- fakes ---------- */

struct kc_informer {
    json_t *items; /* key → object */
    struct kc_informer_handlers h;
};

static struct {
    int creates, deletes, status_puts, patches, create_ok_left; /* create_ok_left < 0: unlimited */
    json_t *created;  /* array of created pods (as the API returned them) */
    json_t *deleted;  /* array of deleted pod names */
    json_t *patched;  /* array of {path, patch} */
    json_t *last_status;
    json_t *events;   /* array of reasons */
    int seq;
} api;

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
    json_t **v = calloc(json_object_size(inf->items) + 1, sizeof *v);
    size_t n = 0;
    const char *k;
    json_t *o;
    json_object_foreach(inf->items, k, o) {
        const char *have = !strcmp(name, KC_IDX_NAMESPACE) ? kc_obj_str(o, "metadata.namespace")
                           : !strcmp(name, KC_IDX_ORPHAN)
                               ? (kc_obj_controller_ref(o) ? NULL : kc_obj_str(o, "metadata.namespace"))
                               : json_string_value(json_object_get(kc_obj_controller_ref(o), "uid"));
        if (have && !strcmp(have, val))
            v[n++] = json_incref(o);
    }
    *out = v;
    return n;
}

void kc_informer_add_handlers(struct kc_informer *inf, const struct kc_informer_handlers *h) { inf->h = *h; }
int kc_informer_wait_synced(struct kc_informer *inf, int timeout_ms) { (void)inf; (void)timeout_ms; return 0; }

const char *kc_path(char *buf, size_t n, const char *group, const char *version, const char *plural, const char *ns,
                    const char *name, const char *sub)
{
    snprintf(buf, n, "%s%s/%s/namespaces/%s/%s%s%s%s%s", *group ? "/apis/" : "/api", group, version, ns ? ns : "",
             plural, name ? "/" : "", name ? name : "", sub ? "/" : "", sub ? sub : "");
    return buf;
}

int kc_client_get(struct kc_client *c, const char *path, json_t **out, struct kc_err *err);
int kc_client_create(struct kc_client *c, const char *path, json_t *obj, json_t **out, struct kc_err *err)
{
    (void)c;
    (void)path;
    api.creates++;
    if (api.create_ok_left == 0)
        return kc_err_set(err, KC_EIO, 403, "Forbidden", "pods \"\" is forbidden: boom");
    if (api.create_ok_left > 0)
        api.create_ok_left--;
    json_t *p = json_deep_copy(obj);
    char name[64], ts[40];
    snprintf(name, sizeof name, "%s%05d", kc_obj_str(obj, "metadata.generateName"), ++api.seq);
    kc_time_rfc3339(time(NULL), ts, sizeof ts);
    json_t *m = json_object_get(p, "metadata");
    json_object_set_new(m, "name", json_string(name));
    json_object_set_new(m, "uid", json_string(name));
    json_object_set_new(m, "resourceVersion", json_string("1"));
    json_object_set_new(m, "creationTimestamp", json_string(ts));
    json_object_set_new(p, "status", json_pack("{s:s}", "phase", "Pending"));
    json_array_append(api.created, p);
    if (out)
        *out = p;
    else
        json_decref(p);
    return 0;
}
int kc_client_create_ro(struct kc_client *c, const char *path, json_t *obj, json_t **out, struct kc_err *err)
{
    return kc_client_create(c, path, obj, out, err);
}

int kc_client_update(struct kc_client *c, const char *path, json_t *obj, json_t **out, struct kc_err *err)
{
    (void)c;
    (void)err;
    assert_non_null(strstr(path, "/status"));
    api.status_puts++;
    json_decref(api.last_status);
    api.last_status = json_deep_copy(json_object_get(obj, "status"));
    if (out)
        *out = json_incref(obj);
    return 0;
}

int kc_client_patch(struct kc_client *c, const char *path, const char *ctype, json_t *patch, json_t **out,
                    struct kc_err *err)
{
    (void)c;
    (void)ctype;
    (void)err;
    api.patches++;
    json_array_append_new(api.patched, json_pack("{s:s, s:O}", "path", path, "patch", patch));
    if (out)
        *out = NULL;
    return 0;
}

int kc_client_delete(struct kc_client *c, const char *path, json_t *body, json_t **out, struct kc_err *err)
{
    (void)c;
    (void)body;
    (void)err;
    api.deletes++;
    json_array_append_new(api.deleted, json_string(strrchr(path, '/') + 1));
    if (out)
        *out = NULL;
    return 0;
}

static struct kc_informer rs_inf, pod_inf;
static struct kc_cm_informers infs = {NULL, &rs_inf, &pod_inf};

int kc_client_get(struct kc_client *c, const char *path, json_t **out, struct kc_err *err)
{
    (void)c;
    (void)err;
    char key[300];
    const char *ns = strstr(path, "/namespaces/") + 12, *name = strrchr(path, '/') + 1;
    snprintf(key, sizeof key, "%.*s/%s", (int)strcspn(ns, "/"), ns, name);
    *out = json_deep_copy(json_object_get(rs_inf.items, key));
    return *out ? 0 : KC_ENOTFOUND;
}

void kc_event_emit(struct kc_client *c, json_t *obj, const char *type, const char *reason, const char *component,
                   const char *fmt, ...)
{
    (void)c;
    (void)obj;
    (void)type;
    (void)component;
    (void)fmt;
    json_array_append_new(api.events, json_string(reason));
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

static struct rsc *R;

static json_t *mk_rs(const char *name, int replicas)
{
    return json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s, s:i}, s:{s:i, s:{s:{s:s}}, s:{s:{s:{s:s}}, s:{}}}}",
                     "apiVersion", "apps/v1", "kind", "ReplicaSet", "metadata", "name", name, "namespace", "ns",
                     "uid", "rs-uid", "resourceVersion", "7", "generation", 2, "spec", "replicas", replicas,
                     "selector", "matchLabels", "app", name, "template", "metadata", "labels", "app", name, "spec");
}

static void put(struct kc_informer *inf, json_t *obj)
{
    char key[300];
    json_object_set_new(inf->items, kc_object_key(obj, key, sizeof key), obj);
}

/* The watch shows pod i of the API's created list. */
static void deliver_created(size_t i)
{
    json_t *p = json_array_get(api.created, i);
    put(&pod_inf, json_incref(p));
    pod_add(R, p);
}

static void deliver_deleted(const char *name)
{
    char key[300];
    snprintf(key, sizeof key, "ns/%s", name);
    json_t *p = json_incref(json_object_get(pod_inf.items, key));
    assert_non_null(p);
    json_object_del(pod_inf.items, key);
    pod_delete(R, p);
    json_decref(p);
}

static int sync_once(void)
{
    struct kc_err err = {0};
    int requeue = 0;
    return sync_rs(R, "ns/web", &requeue, &err);
}

static int setup(void **state)
{
    (void)state;
    memset(&api, 0, sizeof api);
    api.create_ok_left = -1;
    api.created = json_array();
    api.deleted = json_array();
    api.patched = json_array();
    api.events = json_array();
    rs_inf.items = json_object();
    pod_inf.items = json_object();
    R = calloc(1, sizeof *R);
    R->inf = &infs;
    R->q = &the_q;
    pthread_mutex_init(&R->mu, NULL);
    kc_map_init(&R->exp);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    R->nthreads = 0;
    kc_rs_controller_stop(R);
    json_decref(api.created);
    json_decref(api.deleted);
    json_decref(api.patched);
    json_decref(api.events);
    json_decref(api.last_status);
    json_decref(rs_inf.items);
    json_decref(pod_inf.items);
    return 0;
}

static json_t *owned_pod(const char *name, bool ready)
{
    json_t *p = json_pack("{s:{s:s, s:s, s:s, s:s, s:s, s:{s:s}, s:[{s:s, s:s, s:s, s:s, s:b}]}, s:{}, s:{s:s}}",
                          "metadata", "name", name, "namespace", "ns", "uid", name, "resourceVersion", "3",
                          "creationTimestamp", "2026-01-01T00:00:00Z", "labels", "app", "web", "ownerReferences",
                          "apiVersion", "apps/v1", "kind", "ReplicaSet", "name", "web", "uid", "rs-uid",
                          "controller", 1, "spec", "status", "phase", ready ? "Running" : "Pending");
    if (ready)
        json_object_set_new(json_object_get(p, "status"), "conditions",
                            json_pack("[{s:s, s:s, s:s}]", "type", "Ready", "status", "True", "lastTransitionTime",
                                      "2026-01-01T00:00:10Z"));
    return p;
}

/* ---------- tests ---------- */

static void test_creates_once_despite_lagging_watch(void **state)
{
    (void)state;
    put(&rs_inf, mk_rs("web", 3));
    assert_int_equal(sync_once(), 0);
    assert_int_equal(api.creates, 3);
    json_t *p0 = json_array_get(api.created, 0);
    assert_string_equal(kc_obj_str(p0, "metadata.generateName"), "web-");
    assert_string_equal(kc_obj_str(p0, "metadata.labels.app"), "web");
    json_t *ref = kc_obj_controller_ref(p0);
    assert_string_equal(json_string_value(json_object_get(ref, "uid")), "rs-uid");
    assert_true(json_is_true(json_object_get(ref, "blockOwnerDeletion")));
    /* the watch has shown nothing yet: a resync must not create again */
    assert_int_equal(sync_once(), 0);
    assert_int_equal(api.creates, 3);
    deliver_created(0);
    deliver_created(1);
    assert_int_equal(sync_once(), 0);
    assert_int_equal(api.creates, 3);
    deliver_created(2);
    assert_int_equal(sync_once(), 0);
    assert_int_equal(api.creates, 3);
    /* a pod goes away: exactly one replacement */
    deliver_deleted(kc_obj_str(json_array_get(api.created, 1), "metadata.name"));
    assert_int_equal(sync_once(), 0);
    assert_int_equal(api.creates, 4);
    assert_int_equal(json_integer_value(json_object_get(api.last_status, "replicas")), 2);
}

static void test_deletes_once_and_ranked(void **state)
{
    (void)state;
    put(&rs_inf, mk_rs("web", 1));
    put(&pod_inf, owned_pod("web-ready", true));
    put(&pod_inf, owned_pod("web-a", false));
    put(&pod_inf, owned_pod("web-b", false));
    put(&pod_inf, json_pack("{s:{s:s, s:s}}", "metadata", "name", "unrelated", "namespace", "ns"));
    assert_int_equal(sync_once(), 0);
    assert_int_equal(api.deletes, 2);
    for (size_t i = 0; i < 2; i++)
        assert_string_not_equal(json_string_value(json_array_get(api.deleted, i)), "web-ready");
    /* deletions not yet observed: no second round; an unrelated deletion does not count */
    assert_int_equal(sync_once(), 0);
    deliver_deleted("unrelated");
    assert_int_equal(sync_once(), 0);
    assert_int_equal(api.deletes, 2);
    deliver_deleted(json_string_value(json_array_get(api.deleted, 0)));
    deliver_deleted(json_string_value(json_array_get(api.deleted, 1)));
    assert_int_equal(sync_once(), 0);
    assert_int_equal(api.deletes, 2);
    assert_int_equal(api.creates, 0);
    assert_int_equal(json_integer_value(json_object_get(api.last_status, "readyReplicas")), 1);
}

static void test_slow_start_stops_and_condition(void **state)
{
    (void)state;
    put(&rs_inf, mk_rs("web", 10));
    api.create_ok_left = 2; /* batch 1 succeeds, batch 2 has one failure → stop */
    assert_int_not_equal(sync_once(), 0);
    assert_int_equal(api.creates, 3);
    json_t *c = json_array_get(json_object_get(api.last_status, "conditions"), 0);
    assert_string_equal(kc_obj_str(c, "type"), "ReplicaFailure");
    assert_string_equal(kc_obj_str(c, "reason"), "FailedCreate");
    assert_string_equal(kc_obj_str(c, "message"), "pods \"\" is forbidden: boom");
    /* the status now carries the condition; the skipped/failed creations are not expected */
    json_t *rs = json_deep_copy(json_object_get(rs_inf.items, "ns/web"));
    json_object_set(rs, "status", api.last_status);
    put(&rs_inf, rs);
    deliver_created(0);
    deliver_created(1);
    api.create_ok_left = -1;
    int puts_before = api.status_puts;
    assert_int_equal(sync_once(), 0);
    assert_int_equal(api.creates, 3 + 8); /* batches 1, 2, 4, 1 */
    assert_int_equal(api.status_puts, puts_before + 1);
    assert_null(json_object_get(api.last_status, "conditions")); /* cleared */
    size_t nev = 0, i;
    json_t *e;
    json_array_foreach(api.events, i, e) nev += !strcmp(json_string_value(e), "FailedCreate");
    assert_int_equal(nev, 1);
}

static void test_status_written_only_when_changed(void **state)
{
    (void)state;
    put(&rs_inf, mk_rs("web", 1));
    put(&pod_inf, owned_pod("web-x", true));
    assert_int_equal(sync_once(), 0);
    assert_int_equal(api.status_puts, 1);
    assert_int_equal(json_integer_value(json_object_get(api.last_status, "observedGeneration")), 2);
    assert_int_equal(json_integer_value(json_object_get(api.last_status, "availableReplicas")), 1);
    assert_int_equal(json_integer_value(json_object_get(api.last_status, "fullyLabeledReplicas")), 1);
    json_t *rs = json_deep_copy(json_object_get(rs_inf.items, "ns/web"));
    json_object_set(rs, "status", api.last_status);
    put(&rs_inf, rs);
    assert_int_equal(sync_once(), 0);
    assert_int_equal(api.status_puts, 1);
}

static void test_adopt_and_release(void **state)
{
    (void)state;
    put(&rs_inf, mk_rs("web", 2));
    put(&pod_inf, json_pack("{s:{s:s, s:s, s:s, s:s, s:{s:s}}, s:{}}", "metadata", "name", "stray", "namespace",
                            "ns", "uid", "stray", "resourceVersion", "11", "labels", "app", "web", "spec"));
    json_t *gone = owned_pod("web-relabelled", true);
    json_object_set_new(kc_obj_get(gone, "metadata.labels"), "app", json_string("other"));
    put(&pod_inf, gone);
    assert_int_equal(sync_once(), 0);
    assert_int_equal(api.patches, 2);
    json_t *p;
    size_t i;
    bool adopted = false, released = false;
    json_array_foreach(api.patched, i, p) {
        const char *path = kc_obj_str(p, "path");
        json_t *refs = kc_obj_get(p, "patch.metadata.ownerReferences");
        if (strstr(path, "/pods/stray")) {
            adopted = json_array_size(refs) == 1 && kc_obj_get(p, "patch.metadata.resourceVersion") &&
                      !strcmp(json_string_value(json_object_get(json_array_get(refs, 0), "uid")), "rs-uid");
        } else if (strstr(path, "/pods/web-relabelled")) {
            released = json_is_null(refs);
        }
    }
    assert_true(adopted);
    assert_true(released);
    assert_int_equal(api.creates, 1); /* stray counts; the released pod does not */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_creates_once_despite_lagging_watch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deletes_once_and_ranked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_start_stops_and_condition, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_written_only_when_changed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_and_release, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
