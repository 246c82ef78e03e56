/* test_image_auth.c — credentials decoded from kubernetes.io/dockerconfigjson and dockercfg secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <string.h>

#include "agent/image.h"
#include "agent/image_int.h"

static char *b64(const char *s)
{
    size_t n = strlen(s);
    char *o = malloc(n / 3 * 4 + 8);
    EVP_EncodeBlock((unsigned char *)o, (const unsigned char *)s, (int)n);
    return o;
}

static json_t *secret(const char *name, const char *type, const char *key, const char *doc)
{
    char *d = b64(doc);
    json_t *s = json_pack("{s:{s:s}, s:s, s:{s:s}}", "metadata", "name", name, "type", type, "data", key, d);
    free(d);
    return s;
}

static void test_dockerconfigjson(void **st)
{
    char *auth = b64("alice:s3cr:et"); /* the password may contain ':' */
    char doc[512];
    snprintf(doc, sizeof doc,
             "{\"auths\": {\"https://127.0.0.1:5443/v1/\": {\"auth\": \"%s\"},"
             " \"https://index.docker.io/v1/\": {\"username\": \"bob\", \"password\": \"pw\"}}}",
             auth);
    free(auth);
    json_t *sec = secret("regcred", "kubernetes.io/dockerconfigjson", ".dockerconfigjson", doc);
    json_t *auths = json_object();
    struct kc_err err = {0};
    assert_int_equal(kc_image_auths_add_secret(auths, sec, &err), 0);
    json_t *e = kc_image_auth_lookup(auths, "127.0.0.1:5443");
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(e, "username")), "alice");
    assert_string_equal(json_string_value(json_object_get(e, "password")), "s3cr:et");
    assert_string_equal(json_string_value(json_object_get(e, "secret")), "regcred");
    e = kc_image_auth_lookup(auths, "docker.io");
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(e, "username")), "bob");
    assert_null(kc_image_auth_lookup(auths, "127.0.0.1:5444")); /* the port is part of the key */
    json_decref(sec);
    json_decref(auths);
}

static void test_dockercfg_and_order(void **st)
{
    json_t *auths = json_object();
    json_t *a = secret("first", "kubernetes.io/dockercfg", ".dockercfg",
                       "{\"reg.example:5000\": {\"username\": \"u1\", \"password\": \"p1\"}}");
    json_t *b = secret("second", "kubernetes.io/dockerconfigjson", ".dockerconfigjson",
                       "{\"auths\": {\"reg.example:5000\": {\"username\": \"u2\", \"password\": \"p2\"},"
                       " \"other.example\": {\"username\": \"u3\", \"password\": \"p3\"}}}");
    assert_int_equal(kc_image_auths_add_secret(auths, a, NULL), 0);
    assert_int_equal(kc_image_auths_add_secret(auths, b, NULL), 0);
    json_t *e = kc_image_auth_lookup(auths, "reg.example:5000");
    assert_string_equal(json_string_value(json_object_get(e, "username")), "u1"); /* first secret wins */
    assert_string_equal(json_string_value(json_object_get(e, "secret")), "first");
    e = kc_image_auth_lookup(auths, "other.example");
    assert_string_equal(json_string_value(json_object_get(e, "secret")), "second");
    json_decref(a);
    json_decref(b);
    json_decref(auths);
}

static void test_malformed(void **st)
{
    json_t *auths = json_object();
    struct kc_err err = {0};
    json_t *s = secret("opaque", "Opaque", ".dockerconfigjson", "{}");
    assert_int_equal(kc_image_auths_add_secret(auths, s, &err), KC_EINVAL);
    assert_non_null(strstr(err.message, "\"opaque\""));
    json_decref(s);
    s = secret("broken", "kubernetes.io/dockerconfigjson", ".dockerconfigjson", "not json");
    assert_int_equal(kc_image_auths_add_secret(auths, s, &err), KC_EINVAL);
    assert_non_null(strstr(err.message, "\"broken\""));
    json_decref(s);
    s = secret("badauth", "kubernetes.io/dockerconfigjson", ".dockerconfigjson",
               "{\"auths\": {\"h.example\": {\"auth\": \"bm9jb2xvbg==\"}}}"); /* "nocolon" */
    assert_int_equal(kc_image_auths_add_secret(auths, s, &err), KC_EINVAL);
    assert_non_null(strstr(err.message, "user:password"));
    json_decref(s);
    s = json_pack("{s:{s:s}, s:s, s:{}}", "metadata", "name", "nodata", "type", "kubernetes.io/dockerconfigjson",
                  "data");
    assert_int_equal(kc_image_auths_add_secret(auths, s, &err), KC_EINVAL);
    assert_non_null(strstr(err.message, ".dockerconfigjson"));
    json_decref(s);
    assert_int_equal(json_object_size(auths), 0);
    json_decref(auths);
}

static void test_unusable_secrets_noted(void **st)
{
    json_t *auths = json_object();
    kc_image_auths_note_secret(auths, "regcred", "not found");
    kc_image_auths_note_secret(auths, "other", NULL);
    json_t *arr = json_object_get(auths, "#unusable");
    assert_int_equal(json_array_size(arr), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "secret")), "regcred");
    assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 1), "problem")), "unusable");
    /* notes never match a registry */
    assert_null(kc_image_auth_lookup(auths, "#unusable.example"));
    assert_null(kc_image_auth_lookup(auths, "docker.io"));
    for (int i = 0; i < 40; i++)
        kc_image_auths_note_secret(auths, "x", "y");
    assert_int_equal(json_array_size(arr), 16); /* bounded */
    json_decref(auths);
}

static void test_keys_and_b64(void **st)
{
    char k[KC_IMG_HOST_MAX];
    kc_image_auth_key("https://r.example:5000/v2/", k, sizeof k);
    assert_string_equal(k, "r.example:5000");
    kc_image_auth_key("http://registry-1.docker.io", k, sizeof k);
    assert_string_equal(k, "docker.io");
    unsigned char out[16];
    assert_int_equal(kc_image_b64dec("YWJj", 4, out, sizeof out), 3);
    assert_memory_equal(out, "abc", 3);
    assert_int_equal(kc_image_b64dec("YQ==", 4, out, sizeof out), 1);
    assert_int_equal(kc_image_b64dec("Y!Q=", 4, out, sizeof out), -1);
    assert_int_equal(kc_image_b64dec("YWJjYWJjYWJj", 12, out, 4), -1); /* does not overflow out */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dockerconfigjson), cmocka_unit_test(test_dockercfg_and_order),
        cmocka_unit_test(test_malformed), cmocka_unit_test(test_keys_and_b64),
        cmocka_unit_test(test_unusable_secrets_noted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
