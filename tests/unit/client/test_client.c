/* test_client.c — struct kc_client over a fake transport: the token-bucket
 * rate limit (requests only, not watches), Status → KC_E* mapping, 429
 * retries, kc_path, kc_url_escape and the watch line splitter. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client.h"
#include "client/client_int.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------- a scripted transport ---------- */

struct fake {
    int calls, watches;
    int code[8];        /* responses to hand out in order (last repeats) */
    const char *body[8];
    int retry_after[8];
    int n;
    char last_method[16], last_path[256], last_ctype[64], last_body[256];
};

static int fake_request(void *impl, const char *method, const char *path, const char *ctype, const char *body,
                        size_t len, struct kc_client_resp *out, struct kc_err *err)
{
    (void)err;
    struct fake *f = impl;
    int i = f->calls < f->n ? f->calls : f->n - 1;
    f->calls++;
    snprintf(f->last_method, sizeof f->last_method, "%s", method);
    snprintf(f->last_path, sizeof f->last_path, "%s", path);
    snprintf(f->last_ctype, sizeof f->last_ctype, "%s", ctype ? ctype : "");
    snprintf(f->last_body, sizeof f->last_body, "%.*s", (int)len, body ? body : "");
    out->code = f->code[i];
    out->body = strdup(f->body[i]);
    out->len = strlen(out->body);
    out->retry_after = f->retry_after[i];
    return 0;
}

static int fake_watch(void *impl, const char *path, kc_watch_line_fn fn, void *ctx, atomic_bool *stop, int *code,
                      struct kc_err *err)
{
    (void)path, (void)fn, (void)ctx, (void)stop, (void)err;
    struct fake *f = impl;
    f->watches++;
    if (code)
        *code = 200;
    return 0;
}

static const struct kc_transport_ops fake_ops = {.name = "fake", .request = fake_request, .watch = fake_watch};

static struct kc_client *fake_client(struct fake *f, double qps, int burst)
{
    struct kc_client *c = kc_client_new(&fake_ops, f, qps, burst, "test/1");
    assert_non_null(c);
    return c;
}

static void ok_fake(struct fake *f)
{
    memset(f, 0, sizeof *f);
    f->code[0] = 200;
    f->body[0] = "{\"kind\":\"ConfigMap\"}";
    f->n = 1;
}

static void do_get(struct kc_client *c)
{
    struct kc_err err = {0};
    assert_int_equal(kc_client_get(c, "/api/v1/namespaces/default/configmaps/x", NULL, &err), 0);
}

static void test_rate_limit_burst_then_qps(void **state)
{
    (void)state;
    struct fake f;
    ok_fake(&f);
    struct kc_client *c = fake_client(&f, 20, 5);
    assert_string_equal(kc_client_user_agent(c), "test/1");
    double t0 = now_s();
    for (int i = 0; i < 5; i++)
        do_get(c);
    assert_true(now_s() - t0 < 0.04); /* the burst is free */
    for (int i = 0; i < 10; i++)
        do_get(c);
    double dt = now_s() - t0;
    assert_true(dt >= 0.45); /* 10 more at 20/s: 0.5 s */
    assert_true(dt < 2.0);
    assert_int_equal(f.calls, 15);

    /* watches are not rate limited even when the bucket is empty */
    t0 = now_s();
    for (int i = 0; i < 10; i++) {
        int code = 0;
        assert_int_equal(kc_client_watch(c, "/api/v1/pods?watch=true", NULL, NULL, NULL, &code, NULL), 0);
        assert_int_equal(code, 200);
    }
    assert_true(now_s() - t0 < 0.04);
    assert_int_equal(f.watches, 10);
    kc_client_free(c);
}

static void test_no_rate_limit(void **state)
{
    (void)state;
    struct fake f;
    ok_fake(&f);
    struct kc_client *c = fake_client(&f, 0, 0);
    double t0 = now_s();
    for (int i = 0; i < 200; i++)
        do_get(c);
    assert_true(now_s() - t0 < 0.2);
    kc_client_free(c);
}

static int status_of(int code, const char *body, struct kc_err *err)
{
    struct fake f = {.code = {code}, .body = {body}, .n = 1};
    struct kc_client *c = fake_client(&f, 0, 0);
    json_t *out = (json_t *)1;
    memset(err, 0, sizeof *err);
    int rc = kc_client_get(c, "/x", &out, err);
    assert_null(out);
    kc_client_free(c);
    return rc;
}

#define STATUS(code, reason, msg)                                                                                  \
    "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"code\":" #code ",\"reason\":\"" reason \
    "\",\"message\":\"" msg "\"}"

static void test_status_mapping(void **state)
{
    (void)state;
    struct kc_err err;
    assert_int_equal(status_of(404, STATUS(404, "NotFound", "configmaps \\\"x\\\" not found"), &err), KC_ENOTFOUND);
    assert_int_equal(err.code, 404);
    assert_string_equal(err.reason, "NotFound");
    assert_string_equal(err.message, "configmaps \"x\" not found");
    assert_int_equal(status_of(409, STATUS(409, "AlreadyExists", "exists"), &err), KC_EEXISTS);
    assert_int_equal(status_of(409, STATUS(409, "Conflict", "modified"), &err), KC_ECONFLICT);
    assert_string_equal(err.reason, "Conflict");
    assert_int_equal(status_of(410, STATUS(410, "Expired", "too old"), &err), KC_ECOMPACTED);
    assert_int_equal(status_of(422, STATUS(422, "Invalid", "bad"), &err), KC_EINVALID);
    assert_int_equal(status_of(500, STATUS(500, "InternalError", "boom"), &err), KC_EIO);
    assert_int_equal(status_of(403, STATUS(403, "Forbidden", "no"), &err), KC_EIO);
    assert_int_equal(err.code, 403);
    /* not a Status: the message quotes the body */
    assert_int_equal(status_of(502, "Bad Gateway", &err), KC_EIO);
    assert_int_equal(err.code, 502);
    assert_non_null(strstr(err.message, "Bad Gateway"));
}

static void test_json_conveniences(void **state)
{
    (void)state;
    struct fake f;
    ok_fake(&f);
    f.code[0] = 201;
    struct kc_client *c = fake_client(&f, 0, 0);
    struct kc_err err = {0};
    json_t *obj = json_pack("{s:s}", "kind", "ConfigMap"), *out = NULL;
    assert_int_equal(kc_client_create(c, "/api/v1/namespaces/d/configmaps", obj, &out, &err), 0);
    assert_string_equal(f.last_method, "POST");
    assert_string_equal(f.last_ctype, "application/json");
    assert_string_equal(f.last_body, "{\"kind\":\"ConfigMap\"}");
    assert_string_equal(json_string_value(json_object_get(out, "kind")), "ConfigMap");
    json_decref(out);
    assert_int_equal(kc_client_update(c, "/p", obj, NULL, &err), 0);
    assert_string_equal(f.last_method, "PUT");
    assert_int_equal(kc_client_patch(c, "/p", "application/strategic-merge-patch+json", obj, NULL, &err), 0);
    assert_string_equal(f.last_method, "PATCH");
    assert_string_equal(f.last_ctype, "application/strategic-merge-patch+json");
    assert_int_equal(kc_client_delete(c, "/p", NULL, NULL, &err), 0);
    assert_string_equal(f.last_method, "DELETE");
    assert_string_equal(f.last_body, "");
    assert_string_equal(f.last_ctype, "");
    /* 2xx with a body that is not JSON */
    f.body[0] = "not json";
    assert_int_equal(kc_client_get(c, "/p", &out, &err), KC_EIO);
    assert_null(out);
    json_decref(obj);
    kc_client_free(c);
}

static void test_429_retried(void **state)
{
    (void)state;
    struct fake f = {.code = {429, 200},
                     .body = {STATUS(429, "TooManyRequests", "slow down"), "{}"},
                     .retry_after = {1, 0},
                     .n = 2};
    struct kc_client *c = fake_client(&f, 0, 0);
    struct kc_err err = {0};
    double t0 = now_s();
    assert_int_equal(kc_client_get(c, "/p", NULL, &err), 0);
    assert_int_equal(f.calls, 2);
    assert_true(now_s() - t0 >= 0.99);
    kc_client_free(c);

    /* without Retry-After: not retried, surfaces as KC_EIO with code 429 */
    struct fake g = {.code = {429}, .body = {STATUS(429, "TooManyRequests", "slow down")}, .n = 1};
    c = fake_client(&g, 0, 0);
    assert_int_equal(kc_client_get(c, "/p", NULL, &err), KC_EIO);
    assert_int_equal(err.code, 429);
    assert_int_equal(g.calls, 1);
    kc_client_free(c);
}

static void test_paths(void **state)
{
    (void)state;
    char b[256];
    assert_string_equal(kc_path(b, sizeof b, "apps", "v1", "deployments", "ns1", "web", "scale"),
                        "/apis/apps/v1/namespaces/ns1/deployments/web/scale");
    assert_string_equal(kc_path(b, sizeof b, "", "v1", "pods", NULL, NULL, NULL), "/api/v1/pods");
    assert_string_equal(kc_path(b, sizeof b, NULL, "v1", "nodes", NULL, "n1", "status"), "/api/v1/nodes/n1/status");
    assert_string_equal(kc_path(b, sizeof b, "", "v1", "configmaps", "default", NULL, NULL),
                        "/api/v1/namespaces/default/configmaps");
    assert_string_equal(kc_path(b, 10, "apps", "v1", "deployments", "ns1", "web", NULL), "");
    struct fake f;
    ok_fake(&f);
    struct kc_client *c = fake_client(&f, 0, 0);
    struct kc_err err = {0};
    assert_int_equal(kc_client_get(c, b, NULL, &err), KC_EINVAL);
    assert_int_equal(kc_client_get(c, NULL, NULL, &err), KC_EINVAL);
    assert_int_equal(f.calls, 0);
    kc_client_free(c);
    char e[64];
    assert_int_equal(kc_url_escape("app in (a,b),tier!=x", e, sizeof e), 0);
    assert_string_equal(e, "app%20in%20%28a%2Cb%29%2Ctier%21%3Dx");
    assert_int_equal(kc_url_escape("a-b_c.d~", e, sizeof e), 0);
    assert_string_equal(e, "a-b_c.d~");
    assert_int_equal(kc_url_escape("abcdef", e, 6), KC_ETOOLARGE);
    assert_int_equal(kc_url_escape("abcde", e, 6), 0);
}

/* ---------- line splitter ---------- */

struct collected {
    char lines[8][64];
    int n, stop_after;
};

static int collect(void *ctx, const char *line, size_t len)
{
    struct collected *c = ctx;
    assert_int_equal(strlen(line), len); /* NUL-terminated at len */
    snprintf(c->lines[c->n++], 64, "%s", line);
    return c->stop_after && c->n >= c->stop_after;
}

static void test_lines(void **state)
{
    (void)state;
    struct collected c = {0};
    struct kc_lines l;
    kc_lines_init(&l, collect, &c);
    assert_int_equal(kc_lines_feed(&l, "{\"a\"", strlen("{\"a\"")), 0);
    assert_int_equal(c.n, 0);
    assert_int_equal(kc_lines_feed(&l, ":1}\n{\"b\":2}\r\n\n{\"c", strlen(":1}\n{\"b\":2}\r\n\n{\"c")), 0);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.lines[0], "{\"a\":1}");
    assert_string_equal(c.lines[1], "{\"b\":2}");
    assert_int_equal(kc_lines_feed(&l, "\":3}\n", strlen("\":3}\n")), 0);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.lines[2], "{\"c\":3}");
    kc_lines_release(&l);

    struct collected d = {.stop_after = 1};
    kc_lines_init(&l, collect, &d);
    assert_int_equal(kc_lines_feed(&l, "x\ny\n", 4), 1);
    assert_int_equal(d.n, 1);
    kc_lines_release(&l);

    /* a line over the maximum is an error, not unbounded memory */
    struct collected e = {0};
    kc_lines_init(&l, collect, &e);
    size_t big = 1024 * 1024;
    char *chunk = malloc(big);
    memset(chunk, 'x', big);
    int rc = 0;
    for (int i = 0; i < 10 && rc == 0; i++)
        rc = kc_lines_feed(&l, chunk, big);
    assert_int_equal(rc, KC_ETOOLARGE);
    free(chunk);
    kc_lines_release(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_limit_burst_then_qps),
        cmocka_unit_test(test_no_rate_limit),
        cmocka_unit_test(test_status_mapping),
        cmocka_unit_test(test_json_conveniences),
        cmocka_unit_test(test_429_retried),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
