/* test_inproc.c — the in-process transport against a real API server core
 * (store + watch cache + dispatcher, no HTTP) built in the test process:
 * create/get/update/list/delete through kc_client, Status mapping from real
 * server errors, URL-encoded selectors in the query string, and watches
 * (events in order, callback stop, *stop noticed within ~1 s), and informers
 * over this transport (list, watch, selectors, indexes, resync). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apiserver/internal.h"
#include "client/client.h"
#include "client/informer.h"
#include "client/inproc.h"

static struct kc_server *srv;
static struct kc_client *cli;
static char dir[64];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/kc-inproc-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char db[128];
    snprintf(db, sizeof db, "%s/state.db", dir);
    srv = calloc(1, sizeof *srv);
    struct kc_err err = {0};
    assert_int_equal(kc_store_sqlite_open(db, NULL, &srv->store, &err), 0);
    kc_resources_init();
    assert_int_equal(kc_cache_start(srv->store, NULL, 1024, &srv->cache, &err), 0);
    snprintf(srv->server_url, sizeof srv->server_url, "https://127.0.0.1:1");
    cli = kc_client_inproc_new(srv, 0, 0, "test-inproc/1");
    assert_non_null(cli);
    json_t *ns = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind", "Namespace", "metadata", "name", "t1");
    assert_int_equal(kc_client_create(cli, "/api/v1/namespaces", ns, NULL, &err), 0);
    json_decref(ns);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    kc_client_free(cli);
    srv->stopping = true;
    kc_cache_wake_all(srv->cache);
    kc_cache_stop(srv->cache);
    kc_store_close(srv->store);
    free(srv);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static json_t *cm(const char *name, const char *app, const char *v)
{
    return json_pack("{s:s,s:s,s:{s:s,s:{s:s}},s:{s:s}}", "apiVersion", "v1", "kind", "ConfigMap", "metadata", "name",
                     name, "labels", "app", app, "data", "v", v);
}

static void test_crud_and_errors(void **state)
{
    (void)state;
    struct kc_err err = {0};
    char p[256];
    kc_path(p, sizeof p, "", "v1", "configmaps", "t1", NULL, NULL);
    json_t *o = cm("a", "web", "1"), *out = NULL;
    assert_int_equal(kc_client_create(cli, p, o, &out, &err), 0);
    const char *rv1 = json_string_value(json_object_get(json_object_get(out, "metadata"), "resourceVersion"));
    assert_non_null(rv1);
    char rv[32];
    snprintf(rv, sizeof rv, "%s", rv1);
    json_decref(out);
    assert_int_equal(kc_client_create(cli, p, o, NULL, &err), KC_EEXISTS);
    assert_int_equal(err.code, 409);
    assert_string_equal(err.reason, "AlreadyExists");

    kc_path(p, sizeof p, "", "v1", "configmaps", "t1", "a", NULL);
    assert_int_equal(kc_client_get(cli, p, &out, &err), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(out, "data"), "v")), "1");
    /* update with the current RV works, with the old one conflicts */
    json_object_set_new(json_object_get(out, "data"), "v", json_string("2"));
    json_t *upd = NULL;
    assert_int_equal(kc_client_update(cli, p, out, &upd, &err), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(upd, "data"), "v")), "2");
    json_decref(upd);
    assert_int_equal(kc_client_update(cli, p, out, NULL, &err), KC_ECONFLICT);
    assert_int_equal(err.code, 409);
    json_decref(out);

    json_t *patch = json_pack("{s:{s:s}}", "data", "v", "3");
    assert_int_equal(kc_client_patch(cli, p, "application/merge-patch+json", patch, &out, &err), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(out, "data"), "v")), "3");
    json_decref(out);
    json_decref(patch);

    kc_path(p, sizeof p, "", "v1", "configmaps", "t1", "nope", NULL);
    assert_int_equal(kc_client_get(cli, p, &out, &err), KC_ENOTFOUND);
    assert_int_equal(err.code, 404);
    assert_null(out);

    json_t *bad = cm("Bad_Name", "web", "1");
    kc_path(p, sizeof p, "", "v1", "configmaps", "t1", NULL, NULL);
    assert_int_equal(kc_client_create(cli, p, bad, NULL, &err), KC_EINVALID);
    assert_int_equal(err.code, 422);
    json_decref(bad);

    kc_path(p, sizeof p, "", "v1", "configmaps", "t1", "a", NULL);
    assert_int_equal(kc_client_delete(cli, p, NULL, NULL, &err), 0);
    assert_int_equal(kc_client_get(cli, p, NULL, &err), KC_ENOTFOUND);
    json_decref(o);
}

static size_t list_count(const char *query)
{
    char p[512];
    snprintf(p, sizeof p, "/api/v1/namespaces/t1/configmaps%s", query);
    struct kc_err err = {0};
    json_t *l = NULL;
    int rc = kc_client_get(cli, p, &l, &err);
    if (rc)
        fprintf(stderr, "list %s: %s\n", p, err.message);
    assert_int_equal(rc, 0);
    size_t n = json_array_size(json_object_get(l, "items"));
    json_decref(l);
    return n;
}

static void test_list_query_decoding(void **state)
{
    (void)state;
    struct kc_err err = {0};
    const char *apps[] = {"web", "db", "cache"};
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "l%d", i);
        json_t *o = cm(name, apps[i], "x");
        assert_int_equal(kc_client_create(cli, "/api/v1/namespaces/t1/configmaps", o, NULL, &err), 0);
        json_decref(o);
    }
    assert_int_equal(list_count(""), 3);
    char sel[128], q[256];
    assert_int_equal(kc_url_escape("app in (web,db)", sel, sizeof sel), 0);
    snprintf(q, sizeof q, "?labelSelector=%s", sel);
    assert_int_equal(list_count(q), 2);
    assert_int_equal(list_count("?labelSelector=app%3Dcache"), 1);
    assert_int_equal(list_count("?labelSelector=app!%3Dcache&limit=500"), 2);
    assert_int_equal(list_count("?fieldSelector=metadata.name%3Dl1"), 1);
    /* a malformed selector is the server's 400, mapped to KC_EIO with the code */
    json_t *l = NULL;
    assert_int_equal(kc_client_get(cli, "/api/v1/namespaces/t1/configmaps?labelSelector=%3D%3D%3D", &l, &err), KC_EIO);
    assert_int_equal(err.code, 400);
}

/* ---------- watch ---------- */

struct wctx {
    struct kc_client *c;
    char path[256];
    atomic_bool stop;
    int stop_after;
    char types[16][16];
    char names[16][32];
    int n;
    int rc, code;
    double ended;
};

static int on_line(void *ctx, const char *line, size_t len)
{
    struct wctx *w = ctx;
    json_t *ev = json_loadb(line, len, 0, NULL);
    const char *type = json_string_value(json_object_get(ev, "type"));
    const char *name = json_string_value(json_object_get(json_object_get(json_object_get(ev, "object"), "metadata"), "name"));
    if (type && strcmp(type, "BOOKMARK") && w->n < 16) {
        snprintf(w->types[w->n], 16, "%s", type);
        snprintf(w->names[w->n], 32, "%s", name ? name : "");
        w->n++;
    }
    json_decref(ev);
    return w->stop_after && w->n >= w->stop_after;
}

static void *watch_main(void *arg)
{
    struct wctx *w = arg;
    struct kc_err err = {0};
    w->rc = kc_client_watch(w->c, w->path, on_line, w, &w->stop, &w->code, &err);
    w->ended = now_s();
    return NULL;
}

static void test_watch_events_and_stop(void **state)
{
    (void)state;
    struct kc_err err = {0};
    json_t *l = NULL;
    assert_int_equal(kc_client_get(cli, "/api/v1/namespaces/t1/configmaps", &l, &err), 0);
    const char *rv = json_string_value(json_object_get(json_object_get(l, "metadata"), "resourceVersion"));
    struct wctx *w = calloc(1, sizeof *w);
    w->c = cli;
    snprintf(w->path, sizeof w->path,
             "/api/v1/namespaces/t1/configmaps?watch=true&resourceVersion=%s&allowWatchBookmarks=true", rv);
    json_decref(l);
    pthread_t t;
    pthread_create(&t, NULL, watch_main, w);
    json_t *o = cm("w1", "web", "1");
    assert_int_equal(kc_client_create(cli, "/api/v1/namespaces/t1/configmaps", o, NULL, &err), 0);
    json_t *patch = json_pack("{s:{s:s}}", "data", "v", "2");
    assert_int_equal(kc_client_patch(cli, "/api/v1/namespaces/t1/configmaps/w1", NULL, patch, NULL, &err), 0);
    assert_int_equal(kc_client_delete(cli, "/api/v1/namespaces/t1/configmaps/w1", NULL, NULL, &err), 0);
    json_decref(patch);
    json_decref(o);
    double t0 = now_s();
    while (w->n < 3 && now_s() - t0 < 10)
        usleep(10 * 1000);
    assert_int_equal(w->n, 3);
    assert_string_equal(w->types[0], "ADDED");
    assert_string_equal(w->types[1], "MODIFIED");
    assert_string_equal(w->types[2], "DELETED");
    assert_string_equal(w->names[2], "w1");
    /* *stop ends an idle watch within about a second */
    usleep(200 * 1000);
    t0 = now_s();
    atomic_store(&w->stop, true);
    pthread_join(t, NULL);
    assert_true(w->ended - t0 < 2.5);
    assert_int_equal(w->rc, 0);
    assert_int_equal(w->code, 200);
    free(w);
}

static void test_watch_callback_stop_and_errors(void **state)
{
    (void)state;
    struct kc_err err = {0};
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%d", i);
        json_t *o = cm(name, "web", "x");
        assert_int_equal(kc_client_create(cli, "/api/v1/namespaces/t1/configmaps", o, NULL, &err), 0);
        json_decref(o);
    }
    /* no resourceVersion: initial state as ADDED events; the callback stops after two */
    struct wctx *w = calloc(1, sizeof *w);
    w->stop_after = 2;
    int code = 0;
    double t0 = now_s();
    assert_int_equal(kc_client_watch(cli, "/api/v1/namespaces/t1/configmaps?watch=true", on_line, w, &w->stop, &code,
                                     &err),
                     0);
    assert_true(now_s() - t0 < 2);
    assert_int_equal(code, 200);
    assert_int_equal(w->n, 2);
    assert_string_equal(w->types[0], "ADDED");
    /* timeoutSeconds ends the stream normally */
    memset(w, 0, sizeof *w);
    t0 = now_s();
    assert_int_equal(kc_client_watch(cli, "/api/v1/namespaces/t1/configmaps?watch=true&timeoutSeconds=1", on_line, w,
                                     &w->stop, &code, &err),
                     0);
    assert_int_equal(w->n, 3);
    assert_true(now_s() - t0 < 4);
    /* refused watches report their status */
    assert_int_equal(kc_client_watch(cli, "/api/v1/nosuchthings?watch=true", on_line, w, &w->stop, &code, &err),
                     KC_ENOTFOUND);
    assert_int_equal(code, 404);
    free(w);
}


/* ---------- informers ---------- */

struct evlog {
    pthread_mutex_t mu;
    char ev[64][64]; /* "ADD name v" / "UPD name oldv->v" / "DEL name" */
    int n;
    int resyncs;
};

static const char *cm_v(json_t *o)
{
    const char *v = json_string_value(json_object_get(json_object_get(o, "data"), "v"));
    return v ? v : "";
}

static const char *cm_name(json_t *o)
{
    return json_string_value(json_object_get(json_object_get(o, "metadata"), "name"));
}

static void log_ev(struct evlog *l, const char *fmt, const char *a, const char *b, const char *c)
{
    pthread_mutex_lock(&l->mu);
    if (l->n < 64)
        snprintf(l->ev[l->n++], 64, fmt, a, b, c);
    pthread_mutex_unlock(&l->mu);
}

static void h_add(void *ctx, json_t *o) { log_ev(ctx, "ADD %s %s%s", cm_name(o), cm_v(o), ""); }
static void h_upd(void *ctx, json_t *old, json_t *o)
{
    struct evlog *l = ctx;
    if (old == o) {
        pthread_mutex_lock(&l->mu);
        l->resyncs++;
        pthread_mutex_unlock(&l->mu);
        return;
    }
    log_ev(ctx, "UPD %s %s->%s", cm_name(o), cm_v(old), cm_v(o));
}
static void h_del(void *ctx, json_t *o) { log_ev(ctx, "DEL %s%s%s", cm_name(o), "", ""); }

static int idx_app(json_t *obj, const char **vals, int max)
{
    const char *app = json_string_value(json_object_get(json_object_get(json_object_get(obj, "metadata"), "labels"), "app"));
    if (!app || max < 1)
        return 0;
    vals[0] = app;
    return 1;
}

static int wait_events(struct evlog *l, int n)
{
    double t0 = now_s();
    for (;;) {
        pthread_mutex_lock(&l->mu);
        int have = l->n;
        pthread_mutex_unlock(&l->mu);
        if (have >= n || now_s() - t0 > 10)
            return have;
        usleep(10 * 1000);
    }
}

static void put_cm(const char *name, const char *app, const char *v)
{
    struct kc_err err = {0};
    json_t *o = cm(name, app, v);
    int rc = kc_client_create(cli, "/api/v1/namespaces/t1/configmaps", o, NULL, &err);
    json_decref(o);
    assert_int_equal(rc, 0);
}

static void patch_cm(const char *name, json_t *patch)
{
    struct kc_err err = {0};
    char p[256];
    kc_path(p, sizeof p, "", "v1", "configmaps", "t1", name, NULL);
    assert_int_equal(kc_client_patch(cli, p, "application/merge-patch+json", patch, NULL, &err), 0);
    json_decref(patch);
}

static void test_informer_list_watch_selectors(void **state)
{
    (void)state;
    struct kc_err err = {0};
    put_cm("p1", "web", "1");
    put_cm("q1", "db", "1");
    static struct evlog log;
    memset(&log, 0, sizeof log);
    pthread_mutex_init(&log.mu, NULL);
    struct kc_informer_opts o = {.group = "", .version = "v1", .plural = "configmaps", .ns = "t1",
                                 .label_selector = "app in (web)"};
    struct kc_informer *inf = NULL;
    assert_int_equal(kc_informer_new(cli, &o, &inf, &err), 0);
    struct kc_informer_handlers h = {.ctx = &log, .on_add = h_add, .on_update = h_upd, .on_delete = h_del};
    kc_informer_add_handlers(inf, &h);
    kc_informer_add_index(inf, "app", idx_app);
    assert_false(kc_informer_synced(inf));
    assert_int_equal(kc_informer_start(inf), 0);
    assert_int_equal(kc_informer_wait_synced(inf, 10000), 0);
    assert_true(kc_informer_synced(inf));
    assert_int_equal(wait_events(&log, 1), 1);
    assert_string_equal(log.ev[0], "ADD p1 1");
    /* list items get kind/apiVersion */
    json_t *c = kc_informer_get(inf, "t1/p1");
    assert_non_null(c);
    assert_string_equal(json_string_value(json_object_get(c, "kind")), "ConfigMap");
    assert_string_equal(json_string_value(json_object_get(c, "apiVersion")), "v1");
    json_decref(c);
    assert_null(kc_informer_get(inf, "t1/q1")); /* filtered by the selector */

    put_cm("p2", "web", "1");
    patch_cm("p2", json_pack("{s:{s:s}}", "data", "v", "2"));
    char p[256];
    kc_path(p, sizeof p, "", "v1", "configmaps", "t1", "p1", NULL);
    assert_int_equal(kc_client_delete(cli, p, NULL, NULL, &err), 0);
    /* q1 starts matching: ADDED; then p2 stops matching: DELETED */
    patch_cm("q1", json_pack("{s:{s:{s:s}}}", "metadata", "labels", "app", "web"));
    patch_cm("p2", json_pack("{s:{s:{s:s}}}", "metadata", "labels", "app", "other"));
    assert_int_equal(wait_events(&log, 6), 6);
    usleep(200 * 1000);
    assert_int_equal(log.n, 6);
    const char *want[] = {"ADD p1 1", "ADD p2 1", "UPD p2 1->2", "DEL p1", "ADD q1 1", "DEL p2"};
    for (int i = 0; i < 6; i++)
        assert_string_equal(log.ev[i], want[i]);

    json_t **v;
    size_t n = kc_informer_list(inf, &v);
    assert_int_equal(n, 1);
    assert_string_equal(cm_name(v[0]), "q1");
    json_decref(v[0]);
    free(v);
    n = kc_informer_by_index(inf, "app", "web", &v);
    assert_int_equal(n, 1);
    json_decref(v[0]);
    free(v);
    n = kc_informer_by_index(inf, "app", "db", &v);
    assert_int_equal(n, 0); /* q1's old index value is gone */
    free(v);
    char kb[64];
    json_t *nsless = json_pack("{s:{s:s}}", "metadata", "name", "n1");
    assert_string_equal(kc_object_key(nsless, kb, sizeof kb), "n1");
    json_decref(nsless);

    /* stop: prompt, no handler afterwards, the cache stays readable */
    double t0 = now_s();
    kc_informer_stop(inf);
    assert_true(now_s() - t0 < 3);
    put_cm("p9", "web", "1");
    usleep(300 * 1000);
    assert_int_equal(log.n, 6);
    json_t *q1 = kc_informer_get(inf, "t1/q1");
    assert_non_null(q1);
    json_decref(q1);
    kc_informer_stop(inf); /* idempotent */
    assert_int_equal(kc_informer_start(inf), KC_ECLOSED);
    kc_informer_free(inf);
    pthread_mutex_destroy(&log.mu);
}

static void test_informer_resync(void **state)
{
    (void)state;
    struct kc_err err = {0};
    put_cm("r1", "web", "1");
    put_cm("r2", "web", "1");
    static struct evlog log;
    memset(&log, 0, sizeof log);
    pthread_mutex_init(&log.mu, NULL);
    struct kc_informer_opts o = {.version = "v1", .plural = "configmaps", .ns = "t1", .resync_s = 1};
    struct kc_informer *inf = NULL;
    assert_int_equal(kc_informer_new(cli, &o, &inf, &err), 0);
    struct kc_informer_handlers h = {.ctx = &log, .on_add = h_add, .on_update = h_upd, .on_delete = h_del};
    kc_informer_add_handlers(inf, &h);
    assert_int_equal(kc_informer_start(inf), 0);
    assert_int_equal(kc_informer_wait_synced(inf, 10000), 0);
    /* an idle watch still resyncs: 2 objects, every second */
    double t0 = now_s();
    int r = 0;
    while (now_s() - t0 < 10) {
        pthread_mutex_lock(&log.mu);
        r = log.resyncs;
        pthread_mutex_unlock(&log.mu);
        if (r >= 4)
            break;
        usleep(50 * 1000);
    }
    assert_true(r >= 4);
    assert_true(now_s() - t0 < 6);
    assert_int_equal(log.n, 2); /* resyncs are not adds/updates of changed objects */
    kc_informer_free(inf);
    pthread_mutex_destroy(&log.mu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_crud_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_query_decoding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_events_and_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_callback_stop_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_informer_list_watch_selectors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_informer_resync, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
