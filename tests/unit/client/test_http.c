/* test_http.c — the HTTPS transport against a real `kubec server` child:
 * CRUD and Status mapping over the wire, authentication and TLS failures,
 * kubeconfig variants (CA file and tokenFile relative to the kubeconfig,
 * insecure-skip-tls-verify, a non-current context), keep-alive under
 * concurrent use, and watches (event order, callback stop, *stop noticed
 * within ~1 s, refused watches). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "server_child.h"

static struct child_server srv;
static struct kc_client *cli;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int group_setup(void **state)
{
    (void)state;
    if (!child_start(&srv, 0)) {
        fprintf(stderr, "kubec server did not start (see %s/server.log)\n", srv.dir);
        return -1;
    }
    cli = child_client(&srv);
    if (!cli)
        return -1;
    struct kc_err err = {0};
    json_t *ns = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind", "Namespace", "metadata", "name", "h1");
    int rc = kc_client_create(cli, "/api/v1/namespaces", ns, NULL, &err);
    json_decref(ns);
    return rc;
}

static int group_teardown(void **state)
{
    (void)state;
    kc_client_free(cli);
    child_destroy(&srv);
    return 0;
}

static json_t *cm(const char *name, const char *v)
{
    return json_pack("{s:s,s:s,s:{s:s},s:{s:s}}", "apiVersion", "v1", "kind", "ConfigMap", "metadata", "name", name,
                     "data", "v", v);
}

static void test_crud_and_errors(void **state)
{
    (void)state;
    struct kc_err err = {0};
    json_t *o = cm("a", "1"), *out = NULL;
    assert_int_equal(kc_client_create(cli, "/api/v1/namespaces/h1/configmaps", o, &out, &err), 0);
    assert_non_null(json_object_get(json_object_get(out, "metadata"), "uid"));
    json_decref(out);
    assert_int_equal(kc_client_create(cli, "/api/v1/namespaces/h1/configmaps", o, NULL, &err), KC_EEXISTS);
    assert_string_equal(err.reason, "AlreadyExists");
    assert_int_equal(kc_client_get(cli, "/api/v1/namespaces/h1/configmaps/a", &out, &err), 0);
    json_object_set_new(json_object_get(out, "data"), "v", json_string("2"));
    assert_int_equal(kc_client_update(cli, "/api/v1/namespaces/h1/configmaps/a", out, NULL, &err), 0);
    assert_int_equal(kc_client_update(cli, "/api/v1/namespaces/h1/configmaps/a", out, NULL, &err), KC_ECONFLICT);
    json_decref(out);
    json_t *patch = json_pack("{s:{s:s}}", "data", "v", "3");
    assert_int_equal(kc_client_patch(cli, "/api/v1/namespaces/h1/configmaps/a", "application/strategic-merge-patch+json",
                                     patch, &out, &err),
                     0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(out, "data"), "v")), "3");
    json_decref(out);
    json_decref(patch);
    json_t *bad = cm("Bad_Name", "1");
    assert_int_equal(kc_client_create(cli, "/api/v1/namespaces/h1/configmaps", bad, NULL, &err), KC_EINVALID);
    assert_int_equal(err.code, 422);
    json_decref(bad);
    json_t *opts = json_pack("{s:s}", "propagationPolicy", "Background");
    assert_int_equal(kc_client_delete(cli, "/api/v1/namespaces/h1/configmaps/a", opts, NULL, &err), 0);
    json_decref(opts);
    assert_int_equal(kc_client_get(cli, "/api/v1/namespaces/h1/configmaps/a", NULL, &err), KC_ENOTFOUND);
    assert_int_equal(err.code, 404);
    /* a list with an encoded selector */
    char q[256], e[128];
    assert_int_equal(kc_url_escape("metadata.name!=zzz", e, sizeof e), 0);
    snprintf(q, sizeof q, "/api/v1/namespaces?fieldSelector=%s", e);
    assert_int_equal(kc_client_get(cli, q, &out, &err), 0);
    assert_true(json_array_size(json_object_get(out, "items")) >= 2);
    json_decref(out);
    json_decref(o);
}

static void test_auth_and_tls_failures(void **state)
{
    (void)state;
    char url[64];
    snprintf(url, sizeof url, "https://127.0.0.1:%d", srv.port);
    char *ca = child_file(&srv, "ca.crt");
    assert_non_null(ca);
    struct kc_client *c = NULL;
    struct kc_err err = {0};
    assert_int_equal(kc_client_http_new(url, "wrong-token", ca, 0, 0, "t", &c, &err), 0);
    assert_int_equal(kc_client_get(c, "/api/v1/namespaces", NULL, &err), KC_EIO);
    assert_int_equal(err.code, 401);
    kc_client_free(c);
    /* the system CAs do not trust the cluster CA: a transport failure (code 0) */
    char *tok = child_file(&srv, "token");
    assert_non_null(tok);
    tok[strcspn(tok, "\r\n")] = 0;
    assert_int_equal(kc_client_http_new(url, tok, NULL, 0, 0, "t", &c, &err), 0);
    struct kc_client_resp r;
    assert_int_equal(kc_client_request(c, "GET", "/api/v1/namespaces", NULL, NULL, 0, &r, &err), KC_EIO);
    assert_int_equal(r.code, 0);
    assert_int_equal(err.code, 0);
    kc_client_resp_release(&r);
    kc_client_free(c);
    /* explicit parameters work */
    assert_int_equal(kc_client_http_new(url, tok, ca, 0, 0, "t", &c, &err), 0);
    assert_int_equal(kc_client_get(c, "/api/v1/namespaces/default", NULL, &err), 0);
    kc_client_free(c);
    /* nothing listening */
    char dead[64];
    snprintf(dead, sizeof dead, "https://127.0.0.1:%d", free_port());
    assert_int_equal(kc_client_http_new(dead, tok, ca, 0, 0, "t", &c, &err), 0);
    assert_int_equal(kc_client_get(c, "/api/v1/namespaces/default", NULL, &err), KC_EIO);
    kc_client_free(c);
    assert_int_equal(kc_client_http_new("not a url", tok, ca, 0, 0, "t", &c, &err), KC_EINVAL);
    free(ca);
    free(tok);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int try_kubeconfig(const char *text, struct kc_err *err)
{
    char p[128];
    snprintf(p, sizeof p, "%s/alt/kc.yaml", srv.dir);
    write_file(p, text);
    struct kc_client *c = NULL;
    int rc = kc_client_http_from_kubeconfig(p, 0, 0, "t", &c, err);
    if (rc)
        return rc;
    rc = kc_client_get(c, "/api/v1/namespaces/default", NULL, err);
    kc_client_free(c);
    return rc;
}

static void test_kubeconfig_variants(void **state)
{
    (void)state;
    char d[128], p[160];
    snprintf(d, sizeof d, "%s/alt", srv.dir);
    assert_int_equal(mkdir(d, 0700), 0);
    char *ca = child_file(&srv, "ca.crt"), *tok = child_file(&srv, "token");
    snprintf(p, sizeof p, "%s/my-ca.pem", d);
    write_file(p, ca);
    snprintf(p, sizeof p, "%s/tok", d);
    write_file(p, tok);
    char y[2048];
    struct kc_err err = {0};
    /* second context is current; CA file and tokenFile relative to the kubeconfig */
    snprintf(y, sizeof y,
             "apiVersion: v1\nkind: Config\n"
             "clusters:\n- name: other\n  cluster:\n    server: https://127.0.0.1:1\n"
             "- name: mine\n  cluster:\n    server: \"https://127.0.0.1:%d\"\n    certificate-authority: my-ca.pem\n"
             "users:\n- name: u\n  user:\n    tokenFile: tok\n- name: nobody\n  user: {}\n"
             "contexts:\n- name: a\n  context: {cluster: other, user: nobody}\n"
             "- name: b\n  context:\n    cluster: mine\n    user: u\n"
             "current-context: b\n",
             srv.port);
    assert_int_equal(try_kubeconfig(y, &err), 0);
    /* insecure-skip-tls-verify without a CA, token inline */
    tok[strcspn(tok, "\r\n")] = 0;
    snprintf(y, sizeof y,
             "clusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:%d\n    insecure-skip-tls-verify: true\n"
             "users:\n- name: u\n  user:\n    token: %s\n"
             "contexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n",
             srv.port, tok);
    assert_int_equal(try_kubeconfig(y, &err), 0);
    /* same without the flag: the system CAs refuse the server */
    snprintf(y, sizeof y,
             "clusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:%d\n"
             "users:\n- name: u\n  user:\n    token: %s\n"
             "contexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n",
             srv.port, tok);
    assert_int_equal(try_kubeconfig(y, &err), KC_EIO);
    /* a current-context that does not exist */
    assert_int_equal(try_kubeconfig("clusters: []\ncontexts: []\ncurrent-context: nope\n", &err), KC_EINVAL);
    assert_non_null(strstr(err.message, "nope"));
    assert_int_equal(try_kubeconfig("- just\n- a list\n", &err), KC_EINVAL);
    struct kc_client *c = NULL;
    assert_int_equal(kc_client_http_from_kubeconfig("/nonexistent/kc.yaml", 0, 0, "t", &c, &err), KC_EINVAL);
    free(ca);
    free(tok);
}

/* many threads share one client: every request succeeds (pooled handles, keep-alive) */
static void *hammer(void *arg)
{
    long ok = 0;
    for (int i = 0; i < 25; i++) {
        struct kc_err err = {0};
        if (kc_client_get(cli, "/api/v1/namespaces/default", NULL, &err) == 0)
            ok++;
    }
    return (void *)ok;
}

static void test_concurrent_requests(void **state)
{
    (void)state;
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, hammer, NULL);
    long total = 0;
    for (int i = 0; i < 8; i++) {
        void *r;
        pthread_join(t[i], &r);
        total += (long)r;
    }
    assert_int_equal(total, 200);
}

struct wctx {
    atomic_bool stop;
    int stop_after;
    char ev[16][48];
    int n;
    int rc, code;
    double ended;
    char path[256];
};

static int on_line(void *ctx, const char *line, size_t len)
{
    struct wctx *w = ctx;
    json_t *ev = json_loadb(line, len, 0, NULL);
    const char *type = json_string_value(json_object_get(ev, "type"));
    const char *name =
        json_string_value(json_object_get(json_object_get(json_object_get(ev, "object"), "metadata"), "name"));
    if (type && strcmp(type, "BOOKMARK") && w->n < 16)
        snprintf(w->ev[w->n++], 48, "%s %s", type, name ? name : "");
    json_decref(ev);
    return w->stop_after && w->n >= w->stop_after;
}

static void *watch_main(void *arg)
{
    struct wctx *w = arg;
    struct kc_err err = {0};
    w->rc = kc_client_watch(cli, w->path, on_line, w, &w->stop, &w->code, &err);
    w->ended = now_s();
    return NULL;
}

static void test_watch(void **state)
{
    (void)state;
    struct kc_err err = {0};
    json_t *l = NULL;
    assert_int_equal(kc_client_get(cli, "/api/v1/namespaces/h1/configmaps", &l, &err), 0);
    struct wctx *w = calloc(1, sizeof *w);
    snprintf(w->path, sizeof w->path,
             "/api/v1/namespaces/h1/configmaps?watch=true&allowWatchBookmarks=true&resourceVersion=%s",
             json_string_value(json_object_get(json_object_get(l, "metadata"), "resourceVersion")));
    json_decref(l);
    pthread_t t;
    pthread_create(&t, NULL, watch_main, w);
    json_t *o = cm("w1", "1");
    assert_int_equal(kc_client_create(cli, "/api/v1/namespaces/h1/configmaps", o, NULL, &err), 0);
    json_t *patch = json_pack("{s:{s:s}}", "data", "v", "2");
    assert_int_equal(kc_client_patch(cli, "/api/v1/namespaces/h1/configmaps/w1", NULL, patch, NULL, &err), 0);
    assert_int_equal(kc_client_delete(cli, "/api/v1/namespaces/h1/configmaps/w1", NULL, NULL, &err), 0);
    json_decref(patch);
    json_decref(o);
    double t0 = now_s();
    while (w->n < 3 && now_s() - t0 < 10)
        usleep(10 * 1000);
    assert_int_equal(w->n, 3);
    assert_string_equal(w->ev[0], "ADDED w1");
    assert_string_equal(w->ev[1], "MODIFIED w1");
    assert_string_equal(w->ev[2], "DELETED w1");
    usleep(300 * 1000);
    t0 = now_s();
    atomic_store(&w->stop, true);
    pthread_join(t, NULL);
    assert_true(w->ended - t0 < 2.5);
    assert_int_equal(w->rc, 0);
    assert_int_equal(w->code, 200);

    /* initial ADDED events; the callback stops after the first */
    memset(w, 0, sizeof *w);
    w->stop_after = 1;
    int code = 0;
    t0 = now_s();
    assert_int_equal(kc_client_watch(cli, "/api/v1/namespaces?watch=true", on_line, w, &w->stop, &code, &err), 0);
    assert_true(now_s() - t0 < 2);
    assert_int_equal(w->n, 1);
    assert_int_equal(strncmp(w->ev[0], "ADDED ", 6), 0);
    /* timeoutSeconds ends a stream normally */
    memset(w, 0, sizeof *w);
    t0 = now_s();
    assert_int_equal(
        kc_client_watch(cli, "/api/v1/namespaces/h1/configmaps?watch=true&timeoutSeconds=1", on_line, w, NULL, &code, &err),
        0);
    assert_true(now_s() - t0 < 4);
    /* refused */
    assert_int_equal(kc_client_watch(cli, "/api/v1/nosuch?watch=true", on_line, w, &w->stop, &code, &err),
                     KC_ENOTFOUND);
    assert_int_equal(code, 404);
    assert_int_equal(kc_client_watch(cli, "/api/v1/pods?watch=true&labelSelector=%3D%3D%3D", on_line, w, &w->stop,
                                     &code, &err),
                     KC_EIO);
    assert_int_equal(code, 400);
    free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crud_and_errors),
        cmocka_unit_test(test_auth_and_tls_failures),
        cmocka_unit_test(test_kubeconfig_variants),
        cmocka_unit_test(test_concurrent_requests),
        cmocka_unit_test(test_watch),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
