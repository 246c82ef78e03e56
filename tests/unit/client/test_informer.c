/* test_informer.c — an informer over HTTPS against a real `kubec server`
 * child: handlers see exactly the creates/updates/deletes made through the
 * client, in order, with the cache already updated; after the server goes
 * away and changes are made behind the informer's back (through a second
 * server on another port, same data dir), the informer re-lists against the
 * restarted server and reconciles (adds, updates, deletes), then keeps
 * watching. */
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

#include "client/client.h"
#include "client/informer.h"
#include "server_child.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct evlog {
    pthread_mutex_t mu;
    struct kc_informer *inf;
    char ev[64][64];
    int n;
    int cache_mismatch; /* handler saw a cache that did not yet show the change */
};

static const char *v_of(json_t *o)
{
    const char *v = json_string_value(json_object_get(json_object_get(o, "data"), "v"));
    return v ? v : "";
}

static const char *name_of(json_t *o)
{
    return json_string_value(json_object_get(json_object_get(o, "metadata"), "name"));
}

static void record(struct evlog *l, const char *s)
{
    pthread_mutex_lock(&l->mu);
    if (l->n < 64)
        snprintf(l->ev[l->n++], 64, "%s", s);
    pthread_mutex_unlock(&l->mu);
}

static void check_cache(struct evlog *l, json_t *o, bool present)
{
    char key[256];
    json_t *c = kc_informer_get(l->inf, kc_object_key(o, key, sizeof key));
    if ((c != NULL) != present || (c && strcmp(v_of(c), v_of(o))))
        l->cache_mismatch++;
    json_decref(c);
}

static void h_add(void *ctx, json_t *o)
{
    char s[64];
    snprintf(s, sizeof s, "ADD %s %s", name_of(o), v_of(o));
    check_cache(ctx, o, true);
    record(ctx, s);
}

static void h_upd(void *ctx, json_t *old, json_t *o)
{
    char s[64];
    snprintf(s, sizeof s, "UPD %s %s->%s", name_of(o), v_of(old), v_of(o));
    check_cache(ctx, o, true);
    record(ctx, s);
}

static void h_del(void *ctx, json_t *o)
{
    char s[64];
    snprintf(s, sizeof s, "DEL %s", name_of(o));
    check_cache(ctx, o, false);
    record(ctx, s);
}

static int wait_n(struct evlog *l, int n, double timeout)
{
    double t0 = now_s();
    for (;;) {
        pthread_mutex_lock(&l->mu);
        int have = l->n;
        pthread_mutex_unlock(&l->mu);
        if (have >= n || now_s() - t0 > timeout)
            return have;
        usleep(20 * 1000);
    }
}

static void create(struct kc_client *c, const char *name, const char *v)
{
    json_t *o = json_pack("{s:s,s:s,s:{s:s},s:{s:s}}", "apiVersion", "v1", "kind", "ConfigMap", "metadata", "name",
                          name, "data", "v", v);
    struct kc_err err = {0};
    int rc = kc_client_create(c, "/api/v1/namespaces/default/configmaps", o, NULL, &err);
    if (rc)
        fprintf(stderr, "create %s: %s\n", name, err.message);
    assert_int_equal(rc, 0);
    json_decref(o);
}

static void set_v(struct kc_client *c, const char *name, const char *v)
{
    char p[256];
    kc_path(p, sizeof p, "", "v1", "configmaps", "default", name, NULL);
    json_t *patch = json_pack("{s:{s:s}}", "data", "v", v);
    struct kc_err err = {0};
    assert_int_equal(kc_client_patch(c, p, "application/merge-patch+json", patch, NULL, &err), 0);
    json_decref(patch);
}

static void del(struct kc_client *c, const char *name)
{
    char p[256];
    kc_path(p, sizeof p, "", "v1", "configmaps", "default", name, NULL);
    struct kc_err err = {0};
    assert_int_equal(kc_client_delete(c, p, NULL, NULL, &err), 0);
}

static void expect_log(struct evlog *l, int from, const char *const *want, int n)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(l->ev[from + i], want[i]))
            fprintf(stderr, "event %d: got \"%s\", want \"%s\"\n", from + i, l->ev[from + i], want[i]);
        assert_string_equal(l->ev[from + i], want[i]);
    }
}

static void test_informer_events_and_relist_after_restart(void **state)
{
    (void)state;
    static struct child_server a;
    memset(&a, 0, sizeof a);
    assert_true(child_start(&a, 0));
    struct kc_client *c = child_client(&a);
    assert_non_null(c);

    static struct evlog log;
    memset(&log, 0, sizeof log);
    pthread_mutex_init(&log.mu, NULL);
    struct kc_informer_opts o = {.group = "", .version = "v1", .plural = "configmaps", .ns = "default"};
    struct kc_err err = {0};
    assert_int_equal(kc_informer_new(c, &o, &log.inf, &err), 0);
    struct kc_informer_handlers h = {.ctx = &log, .on_add = h_add, .on_update = h_upd, .on_delete = h_del};
    kc_informer_add_handlers(log.inf, &h);
    create(c, "x0", "1"); /* exists before the first list */
    assert_int_equal(kc_informer_start(log.inf), 0);
    assert_int_equal(kc_informer_wait_synced(log.inf, 20000), 0);
    assert_int_equal(wait_n(&log, 1, 10), 1);
    assert_string_equal(log.ev[0], "ADD x0 1");

    /* phase 1: live changes arrive in order */
    create(c, "x1", "1");
    create(c, "x2", "1");
    create(c, "x4", "1");
    set_v(c, "x1", "2");
    del(c, "x2");
    del(c, "x0");
    const char *p1[] = {"ADD x1 1", "ADD x2 1", "ADD x4 1", "UPD x1 1->2", "DEL x2", "DEL x0"};
    assert_int_equal(wait_n(&log, 7, 15), 7);
    expect_log(&log, 1, p1, 6);

    /* phase 2: the server goes away; changes are made through another server on the same data */
    child_stop(&a);
    static struct child_server b;
    memset(&b, 0, sizeof b);
    memcpy(b.dir, a.dir, sizeof b.dir);
    assert_true(child_start(&b, 0));
    struct kc_client *cb = child_client(&b);
    assert_non_null(cb);
    del(cb, "x1");
    set_v(cb, "x4", "2");
    create(cb, "x3", "1");
    kc_client_free(cb);
    child_stop(&b);
    usleep(500 * 1000);
    assert_int_equal(log.n, 7); /* the informer has seen none of it */

    /* phase 3: the original address comes back: re-list and reconcile
     * (upserts in list order, then deletes of vanished keys) */
    assert_true(child_start(&a, a.port));
    assert_int_equal(wait_n(&log, 10, 60), 10);
    const char *p3[] = {"ADD x3 1", "UPD x4 1->2", "DEL x1"};
    expect_log(&log, 7, p3, 3);
    json_t **v;
    size_t n = kc_informer_list(log.inf, &v);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++)
        json_decref(v[i]);
    free(v);
    json_t *x4 = kc_informer_get(log.inf, "default/x4");
    assert_string_equal(v_of(x4), "2");
    json_decref(x4);
    assert_null(kc_informer_get(log.inf, "default/x1"));

    /* and it keeps watching */
    create(c, "x5", "1");
    assert_int_equal(wait_n(&log, 11, 15), 11);
    assert_string_equal(log.ev[10], "ADD x5 1");
    usleep(300 * 1000);
    assert_int_equal(log.n, 11);
    assert_int_equal(log.cache_mismatch, 0);

    double t0 = now_s();
    kc_informer_free(log.inf);
    assert_true(now_s() - t0 < 3);
    kc_client_free(c);
    child_destroy(&a);
    pthread_mutex_destroy(&log.mu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_informer_events_and_relist_after_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
