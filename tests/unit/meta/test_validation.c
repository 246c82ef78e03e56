/* test_validation.c — name/label/annotation rules and resource quantities,
 * checked against upstream's wording and edge cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "meta/validation.h"
#include "util/err.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char SUBDOMAIN[] =
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
static const char LABEL[] =
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
static const char KEY_RE[] =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
    "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
static const char VALUE_RE[] =
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

static char *rep(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = 0;
    return s;
}

/* want: NULL (valid) or the exact message; several are joined with "; " */
static void check(const char *(*fn)(const char *, char *, size_t), const char *in, const char *want)
{
    char buf[2048];
    const char *got = fn(in, buf, sizeof buf);
    if (!want && got)
        fail_msg("'%.80s' should be valid, got: %s", in, got);
    if (want && !got)
        fail_msg("'%.80s' should be invalid", in);
    if (want && strcmp(got, want) != 0)
        fail_msg("'%.80s':\n got  %s\n want %s", in, got, want);
}

static void test_dns1123_subdomain(void **state)
{
    (void)state;
    char *a253 = rep('a', 253), *a254 = rep('a', 254), *A254 = rep('A', 254), both[1024];
    snprintf(both, sizeof both, "must be no more than 253 characters; %s", SUBDOMAIN);
    const struct { const char *in, *want; } T[] = {
        {"a", NULL}, {"ab", NULL}, {"a-b", NULL}, {"0", NULL}, {"example.com", NULL}, {"a.b.c-d.e1", NULL},
        {"1.2.3.4", NULL}, {a253, NULL},
        {a254, "must be no more than 253 characters"},
        {A254, both},
        {"", SUBDOMAIN}, {"A", SUBDOMAIN}, {"aBc", SUBDOMAIN}, {"-a", SUBDOMAIN}, {"a-", SUBDOMAIN},
        {".a", SUBDOMAIN}, {"a.", SUBDOMAIN}, {"a..b", SUBDOMAIN}, {"a_b", SUBDOMAIN}, {"a b", SUBDOMAIN},
        {"a.-b", SUBDOMAIN}, {"ä", SUBDOMAIN},
    };
    for (size_t i = 0; i < N(T); i++)
        check(kc_validate_dns1123_subdomain, T[i].in, T[i].want);
    free(a253), free(a254), free(A254);
}

static void test_dns1123_label(void **state)
{
    (void)state;
    char *a63 = rep('a', 63), *a64 = rep('a', 64), *d64 = rep('-', 64), both[1024];
    snprintf(both, sizeof both, "must be no more than 63 characters; %s", LABEL);
    const struct { const char *in, *want; } T[] = {
        {"a", NULL}, {"my-name", NULL}, {"123-abc", NULL}, {a63, NULL},
        {a64, "must be no more than 63 characters"},
        {d64, both},
        {"a.b", "must not contain dots"},
        {"", LABEL}, {"A", LABEL}, {"-a", LABEL}, {"a-", LABEL}, {"a_b", LABEL}, {"a..b", LABEL},
    };
    for (size_t i = 0; i < N(T); i++)
        check(kc_validate_dns1123_label, T[i].in, T[i].want);
    free(a63), free(a64), free(d64);
}

static void test_qualified_name(void **state)
{
    (void)state;
    char *n63 = rep('a', 63), *n64 = rep('a', 64);
    char p253[300], p254[300], long_name[128], long_prefix[128], re[1024], empty_name[1024], bad_prefix[1024],
        slashes[1024];
    char *tmp = rep('a', 253);
    snprintf(p253, sizeof p253, "%s/a", tmp);
    free(tmp);
    tmp = rep('a', 254);
    snprintf(p254, sizeof p254, "%s/a", tmp);
    free(tmp);
    snprintf(long_name, sizeof long_name, "example.com/%s", n64);
    snprintf(long_prefix, sizeof long_prefix, "%s", "prefix part must be no more than 253 bytes");
    snprintf(re, sizeof re, "name part %s", KEY_RE);
    snprintf(empty_name, sizeof empty_name, "name part must be non-empty; name part %s", KEY_RE);
    snprintf(bad_prefix, sizeof bad_prefix, "prefix part %s", SUBDOMAIN);
    snprintf(slashes, sizeof slashes,
             "a valid label key %s with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')", KEY_RE);
    const struct { const char *in, *want; } T[] = {
        {"a", NULL}, {"A_b.c-D9", NULL}, {"MyName", NULL}, {"my.name", NULL}, {"123-abc", NULL},
        {"example.com/MyName", NULL}, {"kubernetes.io/os", NULL}, {n63, NULL}, {p253, NULL},
        {n64, "name part must be no more than 63 bytes"},
        {long_name, "name part must be no more than 63 bytes"},
        {p254, long_prefix},
        {"", empty_name},
        {"a/", empty_name},
        {"/a", "prefix part must be non-empty"},
        {"Example.com/a", bad_prefix},
        {"a/b/c", slashes},
        {"-a", re}, {"a-", re}, {"a b", re}, {"_a", re}, {"a@b", re},
    };
    for (size_t i = 0; i < N(T); i++)
        check(kc_validate_qualified_name, T[i].in, T[i].want);
    free(n63), free(n64);
}

static void test_label_value(void **state)
{
    (void)state;
    char *v63 = rep('a', 63), *v64 = rep('a', 64), *d64 = rep('-', 64), both[1024];
    snprintf(both, sizeof both, "must be no more than 63 bytes; %s", VALUE_RE);
    const struct { const char *in, *want; } T[] = {
        {"", NULL}, {"a", NULL}, {"MyValue", NULL}, {"my_value", NULL}, {"12345", NULL}, {"A.b_c-1", NULL},
        {v63, NULL},
        {v64, "must be no more than 63 bytes"},
        {d64, both},
        {"-a", VALUE_RE}, {"a-", VALUE_RE}, {"a b", VALUE_RE}, {"a/b", VALUE_RE}, {".", VALUE_RE},
    };
    for (size_t i = 0; i < N(T); i++)
        check(kc_validate_label_value, T[i].in, T[i].want);
    free(v63), free(v64), free(d64);
}

/* ---- JSON causes ---- */

static json_t *cause(const char *reason, const char *message, const char *field)
{
    return json_pack("{s:s, s:s, s:s}", "reason", reason, "message", message, "field", field);
}

static void assert_cause(json_t *errs, size_t i, const char *reason, const char *message, const char *field)
{
    json_t *want = cause(reason, message, field);
    json_t *got = json_array_get(errs, i);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, 0), *w = json_dumps(want, 0);
        fail_msg("cause %zu:\n got  %s\n want %s", i, g ? g : "(none)", w);
    }
    json_decref(want);
}

static void test_validate_labels(void **state)
{
    (void)state;
    char m1[1024], m2[1024], m3[1024];
    snprintf(m1, sizeof m1, "Invalid value: \"-bad\": name part %s", KEY_RE);
    snprintf(m2, sizeof m2, "Invalid value: \"bad value\": %s", VALUE_RE);
    snprintf(m3, sizeof m3, "Invalid value: \"q\\\"\\n\": name part %s", KEY_RE);

    json_t *errs = json_array();
    json_t *ok = json_pack("{s:s, s:s, s:s}", "app", "web", "example.com/tier", "", "a.b_c", "x");
    assert_int_equal(kc_validate_labels(ok, "metadata.labels", errs), 0);
    assert_int_equal(kc_validate_labels(NULL, "metadata.labels", errs), 0);
    assert_int_equal(json_array_size(errs), 0);

    json_t *bad = json_pack("{s:s, s:s, s:s}", "app", "web", "-bad", "x", "k", "bad value");
    assert_int_equal(kc_validate_labels(bad, "metadata.labels", errs), 2);
    assert_int_equal(json_array_size(errs), 2);
    assert_cause(errs, 0, "FieldValueInvalid", m1, "metadata.labels");
    assert_cause(errs, 1, "FieldValueInvalid", m2, "metadata.labels");

    /* the bad value is quoted as Go's %q does */
    json_t *quoted = json_pack("{s:s}", "q\"\n", "v");
    assert_int_equal(kc_validate_labels(quoted, "spec.template.metadata.labels", errs), 1);
    assert_cause(errs, 2, "FieldValueInvalid", m3, "spec.template.metadata.labels");

    /* a key that is too long and badly formed gives two causes */
    json_t *two = json_object();
    char key[80];
    memset(key, '-', 70);
    key[70] = 0;
    json_object_set_new(two, key, json_string("v"));
    assert_int_equal(kc_validate_labels(two, NULL, errs), 2);
    const char *msg3 = json_string_value(json_object_get(json_array_get(errs, 3), "message"));
    assert_non_null(strstr(msg3, "\": name part must be no more than 63 bytes"));
    assert_string_equal(json_string_value(json_object_get(json_array_get(errs, 3), "field")), "metadata.labels");

    json_decref(ok), json_decref(bad), json_decref(quoted), json_decref(two), json_decref(errs);
}

static void test_validate_annotations(void **state)
{
    (void)state;
    json_t *errs = json_array();
    /* case does not matter for annotation keys */
    json_t *ok = json_pack("{s:s, s:s}", "Example.COM/Foo", "anything goes: !@# ", "kubectl.kubernetes.io/x", "");
    assert_int_equal(kc_validate_annotations(ok, "metadata.annotations", errs), 0);

    char m[1024];
    snprintf(m, sizeof m, "Invalid value: \"a b\": name part %s", KEY_RE);
    json_t *bad = json_pack("{s:s}", "a b", "x");
    assert_int_equal(kc_validate_annotations(bad, "metadata.annotations", errs), 1);
    assert_cause(errs, 0, "FieldValueInvalid", m, "metadata.annotations");

    /* total size: keys + values ≤ 262144 bytes */
    char *v = rep('x', 262143);
    json_t *edge = json_object();
    json_object_set_new(edge, "a", json_string(v)); /* 1 + 262143 = 262144: fine */
    assert_int_equal(kc_validate_annotations(edge, "metadata.annotations", errs), 0);
    json_object_set_new(edge, "b", json_string("")); /* 262145 */
    assert_int_equal(kc_validate_annotations(edge, "metadata.annotations", errs), 1);
    assert_cause(errs, 1, "FieldValueTooLong", "Too long: may not be more than 262144 bytes", "metadata.annotations");
    free(v);

    json_decref(ok), json_decref(bad), json_decref(edge), json_decref(errs);
}

static void test_append_causes(void **state)
{
    (void)state;
    json_t *errs = json_array();
    char m[1024];
    snprintf(m, sizeof m, "Invalid value: \"My_Pod\": %s", SUBDOMAIN);
    assert_int_equal(kc_validate_append_causes(KC_RULE_DNS1123_SUBDOMAIN, "my-pod", "metadata.name", errs), 0);
    assert_int_equal(kc_validate_append_causes(KC_RULE_DNS1123_SUBDOMAIN, "My_Pod", "metadata.name", errs), 1);
    assert_cause(errs, 0, "FieldValueInvalid", m, "metadata.name");
    assert_int_equal(kc_validate_append_causes(KC_RULE_DNS1123_LABEL, "a.b", "metadata.name", errs), 1);
    assert_cause(errs, 1, "FieldValueInvalid", "Invalid value: \"a.b\": must not contain dots", "metadata.name");
    json_decref(errs);
}

/* ---- quantities ---- */

static void test_quantity(void **state)
{
    (void)state;
    static const struct { const char *in; int64_t milli; const char *canon; } T[] = {
        {"0", 0, "0"},
        {"1", 1000, "1"},
        {"100m", 100, "100m"},
        {"0.5", 500, "500m"},
        {"1000m", 1000, "1"},
        {"1.5", 1500, "1500m"},
        {"1.0", 1000, "1"},
        {"2000", 2000000, "2k"},
        {"-0.5", -500, "-500m"},
        {"-1", -1000, "-1"},
        {"1n", 1, "1n"}, /* milli rounds up */
        {"1u", 1, "1u"},
        {"1m", 1, "1m"},
        {"1k", 1000000, "1k"},
        {"1M", 1000000000LL, "1M"},
        {"1G", 1000000000000LL, "1G"},
        {"1T", 1000000000000000LL, "1T"},
        {"1P", 1000000000000000000LL, "1P"},
        {"1E", INT64_MAX, "1E"}, /* milli saturates */
        {"-1E", INT64_MIN, "-1E"},
        {"1Ki", 1024000, "1Ki"},
        {"1Mi", 1048576000LL, "1Mi"},
        {"1Gi", 1073741824000LL, "1Gi"},
        {"1Ti", 1099511627776000LL, "1Ti"},
        {"1Pi", 1125899906842624000LL, "1Pi"},
        {"1Ei", INT64_MAX, "1Ei"},
        {"100Mi", 104857600000LL, "100Mi"},
        {"1024Mi", 1073741824000LL, "1Gi"},
        {"1.5Gi", 1610612736000LL, "1536Mi"},
        {"1.5Ki", 1536000, "1536"},
        {"0.5Ki", 512000, "512"},
        {"1.1Ki", 1126400, "1126400m"}, /* binary would lose precision: decimal */
        {"8Ei", INT64_MAX, "9223372036854775807"}, /* binary values cap at 2^63-1 */
        {"1e3", 1000000, "1e3"},
        {"1E3", 1000000, "1E3"},
        {"1e-3", 1, "1e-3"},
        {"12e2", 1200000, "1200"},
        {"1e4", 10000000, "10e3"},
        {"1.5e1", 15000, "1.5e1"}, /* upstream re-uses it: 15 at scale 0 looked canonical */
        {"1.5e2", 150000, "150"},
        {"0.1m", 1, "100u"},
        {"0.0000000001", 1, "1n"}, /* below 1n rounds up to 1n */
        {"0.5n", 1, "1n"},
        {"1e-12", 1, "1e-9"},
        {"12345678901234567890", INT64_MAX, "12345678901234567890"},
        {"1000000k", 1000000000000LL, "1G"},
        /* upstream quirks: the input is re-used when its fast path found it canonical */
        {"+1Ki", 1024000, "+1Ki"},
        {"01", 1000, "01"},
        {"1000E", INT64_MAX, "1"}, /* 10^21 has no suffix in upstream's table */
    };
    for (size_t i = 0; i < N(T); i++) {
        int64_t milli = 42;
        char out[64];
        if (kc_quantity_parse(T[i].in, &milli) != 0)
            fail_msg("parse(%s) failed", T[i].in);
        if (milli != T[i].milli)
            fail_msg("milli(%s) = %lld, want %lld", T[i].in, (long long)milli, (long long)T[i].milli);
        assert_null(kc_quantity_error(T[i].in));
        if (kc_quantity_canonical(T[i].in, out, sizeof out) != 0)
            fail_msg("canonical(%s) failed", T[i].in);
        if (strcmp(out, T[i].canon) != 0)
            fail_msg("canonical(%s) = %s, want %s", T[i].in, out, T[i].canon);
    }
}

/* Canonical forms from upstream's own tables (TestQuantityString,
 * TestQuantityParseEmit, TestParseQuantity); NULL = the input itself. */
static void test_quantity_canonical_upstream(void **state)
{
    (void)state;
    static const struct { const char *in, *canon; } T[] = {
        /* canonical strings re-emit themselves */
        {"1Gi", NULL}, {"300Mi", NULL}, {"6Ki", NULL}, {"1001Gi", NULL}, {"1Ti", NULL}, {"5", NULL},
        {"500m", NULL}, {"1G", NULL}, {"1m", NULL}, {"80m", NULL}, {"1080m", NULL}, {"300M", NULL},
        {"1T", NULL}, {"1234567M", NULL}, {"1234567m", NULL}, {"3k", NULL}, {"1025", NULL}, {"0", NULL},
        {"1e9", NULL}, {"1e-3", NULL}, {"1e-9", NULL}, {"80e-3", NULL}, {"300e6", NULL}, {"1e12", NULL},
        {"3e3", NULL}, {"1n", NULL}, {"80n", NULL}, {"1080n", NULL}, {"1u", NULL}, {"80u", NULL},
        {"1080u", NULL},
        /* alternates */
        {"1024Mi", "1Gi"}, {"307200Ki", "300Mi"}, {"1025024Mi", "1001Gi"}, {"1024Gi", "1Ti"},
        {"5000m", "5"}, {"0.5", "500m"}, {"1000M", "1G"}, {"0.001T", "1G"}, {"1000u", "1m"},
        {"1.08", "1080m"}, {"1080000000n", "1080m"}, {".001e12", "1e9"}, {"0.001e0", "1e-3"},
        {"1000e-12", "1e-9"}, {"00", "0"},
        /* ParseEmit */
        {".001Ki", "1024m"}, {".000001Ki", "1024u"}, {".000000001Ki", "1024n"}, {".000000000001Ki", "2n"},
        {"-.001Ki", "-1024m"}, {"-1024Mi", "-1Gi"}, {"-1000M", "-1G"},
        /* large values (TestParseQuantity) */
        {"999999999999999999", NULL}, {"999999999999999999.0", "999999999999999999"},
        {"999999999999999999.1", "999999999999999999100m"}, {"9999999999999999999", NULL},
        {"-1E", NULL}, {"1000000000000000000", "1E"}, {"-1000000000000000000", "-1E"}, {"1.0E", "1E"},
        {"9999999999999999999000m", "9999999999999999999"},
        {"1.0000000000000000001E", "1000000000000000000100m"}, {"1.000000000000000001E", "1000000000000000001"},
        {"10E", NULL}, {"-10E", NULL}, {"10000000000000000000", "10E"}, {"10000000000000000000000m", "10E"},
        {"10.0000000000000000001E", "10000000000000000000100m"}, {"10000000000000000001", NULL},
        {"-9223372036854775809", NULL}, {"-9223372036854775809.1", "-9223372036854775809100m"},
        {"9223372036854775807000m", "9223372036854775807"}, {"9223372036854775808.1", "9223372036854775808100m"},
        /* rounding up to 1n (TestQuantityParse) */
        {"3.001n", "4n"}, {"1.1E-9", "2e-9"}, {"0.0000000005", "1n"}, {"0.00000012345", "124n"},
        {"9Ei", "9223372036854775807"}, {"9223372036854775807Ki", "9223372036854775807"},
        {"100.035Ki", "102435840m"}, {"0.5Mi", "512Ki"}, {"1.", NULL}, {"1.G", NULL}, /* re-used, as upstream */ {".0001k", "100m"},
        {"12E", NULL}, {"1.01E", "1010P"}, {"0.0005k", "500m"}, {"1.3E+6", "1300e3"},
    };
    for (size_t i = 0; i < N(T); i++) {
        char out[64];
        const char *want = T[i].canon ? T[i].canon : T[i].in;
        if (kc_quantity_canonical(T[i].in, out, sizeof out) != 0)
            fail_msg("canonical(%s) failed", T[i].in);
        if (strcmp(out, want) != 0)
            fail_msg("canonical(%s) = %s, want %s", T[i].in, out, want);
    }
    /* MilliValue of a few (ceil, as upstream's ScaledValue) */
    int64_t m;
    assert_int_equal(kc_quantity_parse("100.035Ki", &m), 0);
    assert_true(m == 102435840);
    assert_int_equal(kc_quantity_parse("3.001n", &m), 0);
    assert_true(m == 1);
    assert_int_equal(kc_quantity_parse("-9223372036854775809", &m), 0);
    assert_true(m == INT64_MIN);
}

static void test_quantity_invalid(void **state)
{
    (void)state;
    static const char SUFFIX[] = "unable to parse quantity's suffix";
    static const struct { const char *in, *err; } T[] = {
        {"", KC_QUANTITY_FORMAT_ERROR},
        {"abc", KC_QUANTITY_FORMAT_ERROR},
        {"1KB", KC_QUANTITY_FORMAT_ERROR},
        {"1 Ki", KC_QUANTITY_FORMAT_ERROR},
        {"1.5.5", KC_QUANTITY_FORMAT_ERROR},
        {"1e3.5", KC_QUANTITY_FORMAT_ERROR},
        {" 1", KC_QUANTITY_FORMAT_ERROR},
        {"1ki", SUFFIX},
        {"1K", SUFFIX},
        {"1e", SUFFIX},
        {"1Mi2", SUFFIX},
        {"1mi", SUFFIX},
        {"--1", SUFFIX},
        {"1e99999999999999999999", SUFFIX},
        {".e-20", "unable to parse numeric part of quantity"},
        /* upstream's invalid list (TestQuantityParse) */
        {"1.1.M", KC_QUANTITY_FORMAT_ERROR},
        {"1+1.0M", NULL},
        {"0.1mi", NULL},
        {"0.1am", NULL},
        {"aoeu", NULL},
        {".5i", NULL},
        {"1i", NULL},
        {"-3.01i", NULL},
        {"-3.01e-", NULL},
        {"1 ", KC_QUANTITY_FORMAT_ERROR},
    };
    for (size_t i = 0; i < N(T); i++) {
        int64_t milli = 42;
        char out[64];
        if (kc_quantity_parse(T[i].in, &milli) != -1)
            fail_msg("parse(%s) should fail", T[i].in);
        assert_int_equal(milli, 42);
        assert_int_equal(kc_quantity_canonical(T[i].in, out, sizeof out), KC_EINVAL);
        const char *e = kc_quantity_error(T[i].in);
        if (!e || (T[i].err && strcmp(e, T[i].err) != 0))
            fail_msg("error(%s) = %s, want %s", T[i].in, e ? e : "(null)", T[i].err);
    }
    /* the length limit */
    char *huge = rep('1', KC_QUANTITY_MAX_LEN + 1);
    assert_int_equal(kc_quantity_parse(huge, NULL), -1);
    huge[KC_QUANTITY_MAX_LEN] = 0;
    int64_t milli;
    assert_int_equal(kc_quantity_parse(huge, &milli), 0);
    assert_true(milli == INT64_MAX);
    free(huge);
    /* a buffer too small */
    char small[3];
    assert_int_equal(kc_quantity_canonical("1536Mi", small, sizeof small), KC_ETOOLARGE);
    assert_int_equal(kc_quantity_canonical("1.5Gi", small, sizeof small), KC_ETOOLARGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dns1123_subdomain),
        cmocka_unit_test(test_dns1123_label),
        cmocka_unit_test(test_qualified_name),
        cmocka_unit_test(test_label_value),
        cmocka_unit_test(test_validate_labels),
        cmocka_unit_test(test_validate_annotations),
        cmocka_unit_test(test_append_causes),
        cmocka_unit_test(test_quantity),
        cmocka_unit_test(test_quantity_canonical_upstream),
        cmocka_unit_test(test_quantity_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
