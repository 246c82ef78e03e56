/* test_image_ref.c — image reference parsing and normalisation (what `image:` in a pod spec means). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "agent/image.h"
#include "agent/image_int.h"

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void norm(const char *in, const char *want)
{
    char out[KC_IMG_REF_MAX];
    struct kc_err err = {0};
    int rc = kc_image_normalize(in, out, sizeof out, &err);
    if (rc)
        fail_msg("%s: %s", in, err.message);
    assert_string_equal(out, want);
}

static void bad(const char *in, const char *why)
{
    struct kc_image_ref r;
    struct kc_err err = {0};
    assert_int_equal(kc_image_ref_parse(in, &r, &err), KC_EINVAL);
    assert_string_equal(err.reason, "InvalidImageName");
    if (!strstr(err.message, why))
        fail_msg("%s: message \"%s\" lacks \"%s\"", in, err.message, why);
}

static void test_docker_hub_defaults(void **st)
{
    norm("busybox", "docker.io/library/busybox:latest");
    norm("busybox:1.36", "docker.io/library/busybox:1.36");
    norm("bitnami/nginx", "docker.io/bitnami/nginx:latest");
    norm("docker.io/busybox", "docker.io/library/busybox:latest");
    norm("index.docker.io/library/busybox:1", "docker.io/library/busybox:1");
}

static void test_domains_and_ports(void **st)
{
    norm("localhost/app", "localhost/app:latest");
    norm("localhost:5000/app:v1", "localhost:5000/app:v1");
    norm("127.0.0.1:5443/team/app:2.0", "127.0.0.1:5443/team/app:2.0");
    norm("registry.example.com/a/b/c", "registry.example.com/a/b/c:latest");
    /* a first component without "." or ":" is a path, not a host */
    norm("team/app:v1", "docker.io/team/app:v1");
    struct kc_image_ref r;
    assert_int_equal(kc_image_ref_parse("127.0.0.1:5443/team/app:2.0", &r, NULL), 0);
    assert_string_equal(r.domain, "127.0.0.1:5443");
    assert_string_equal(r.repo, "team/app");
    assert_string_equal(r.tag, "2.0");
    assert_string_equal(kc_image_ref_api_host("docker.io"), "registry-1.docker.io");
    assert_string_equal(kc_image_ref_api_host("127.0.0.1:5443"), "127.0.0.1:5443");
}

static void test_digests(void **st)
{
    norm("busybox@sha256:" D64, "docker.io/library/busybox@sha256:" D64);
    norm("localhost:5000/app:v1@sha256:" D64, "localhost:5000/app:v1@sha256:" D64);
    struct kc_image_ref r;
    assert_int_equal(kc_image_ref_parse("busybox@sha256:" D64, &r, NULL), 0);
    assert_string_equal(r.tag, ""); /* a digest alone does not get :latest */
    assert_string_equal(r.digest, "sha256:" D64);
    bad("busybox@sha256:abc", "invalid digest");
    bad("busybox@sha256:" "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", "invalid digest");
    bad("busybox@md5:0123", "invalid digest");
}

static void test_invalid(void **st)
{
    bad("", "empty");
    bad("Busybox", "lowercase");
    bad("busybox:", "invalid tag");
    bad("busybox:-x", "invalid tag");
    bad("busy box", "invalid reference format");
    bad("a//b", "invalid reference format");
    bad("-app", "invalid reference format");
    bad("app_", "invalid reference format");
    bad("host:port/app", "invalid registry host");
    bad("localhost:5000/", "empty repository");
    char longtag[200];
    memset(longtag, 'a', sizeof longtag);
    memcpy(longtag, "app:", 4);
    longtag[sizeof longtag - 1] = 0;
    bad(longtag, "invalid tag");
    char longname[300];
    memset(longname, 'a', sizeof longname);
    longname[sizeof longname - 1] = 0;
    bad(longname, "255");
}

static void test_separators(void **st)
{
    norm("a.b_c__d-e---f", "docker.io/library/a.b_c__d-e---f:latest");
    bad("a..b", "invalid reference format");
    bad("a___b", "invalid reference format");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_docker_hub_defaults), cmocka_unit_test(test_domains_and_ports),
        cmocka_unit_test(test_digests),             cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_separators),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
