/* test_selector.c — label and field selectors against upstream's behaviour
 * (cases after k8s.io/apimachinery pkg/labels and pkg/fields tests). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "meta/selector.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char KEY_RE_MSG[] =
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
static const char VALUE_RE_MSG[] =
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/* ---- parse → String() ---- */

static void test_parse_good(void **state)
{
    (void)state;
    static const struct { const char *in, *out; } T[] = {
        {"x=a,y=b,z=c", "x=a,y=b,z=c"},
        {"", ""},
        {"x!=a,y=b", "x!=a,y=b"},
        {"x=", "x="},
        {"x= ", "x="},
        {"x=,z= ", "x=,z="},
        {"x= ,z= ", "x=,z="},
        {"!x", "!x"},
        {"x>1", "x>1"},
        {"x>1,z<5", "x>1,z<5"},
        {"x==a", "x==a"},
        {"\rx", "x"},
        {"this-is-a-dns.domain.com/key-with-dash", "this-is-a-dns.domain.com/key-with-dash"},
        {"this-is-another-dns.domain.com/key-with-dash in (so,what)",
         "this-is-another-dns.domain.com/key-with-dash in (so,what)"},
        {"0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)", "0.1.2.domain/99 notin (10.10.100.1,tick.tack.clock)"},
        {"foo  in\t (abc)", "foo in (abc)"},
        {"x notin\n (abc)", "x notin (abc)"},
        {"x  notin\t\t(abc,def)", "x notin (abc,def)"},
        {"x in (def,abc)", "x in (abc,def)"},
        {"x in (abc,)", "x in (,abc)"},
        {"x in (abc,abc)", "x in (abc)"},
        {"x in ()", "x in ()"},
        {"x in (a,,)", "x in (,a)"},
        {"x in (a,,a,,a,,a,,)", "x in (,a)"},
        {"x notin ( )", "x notin ()"},
        {"x notin (, a)", "x notin (,a)"},
        {"x notin (abc,,def),bar,z in (),w", "bar,w,x notin (,abc,def),z in ()"},
        {"x=a,a=x", "a=x,x=a"},          /* sorted by key: deterministic */
        {"z,a=b,z!=c", "a=b,z,z!=c"},    /* stable for equal keys */
        {"a ", "a"},
        {"a in (x,y,notin, z,in)", "a in (in,notin,x,y,z)"}, /* keywords as values */
        {"notin=in", "notin=in"},
        {"in in (in)", "in in (in)"},
        {"x>-1", NULL}, /* "-1" is an integer but not a label value */
    };
    for (size_t i = 0; i < N(T); i++) {
        struct kc_label_selector *s = NULL;
        struct kc_err err = {0};
        int rc = kc_label_selector_parse(T[i].in, &s, &err);
        if (!T[i].out) {
            assert_int_equal(rc, KC_EINVAL);
            continue;
        }
        if (rc)
            fail_msg("parse(%s): %s", T[i].in, err.message);
        char *str = kc_label_selector_string(s);
        assert_string_equal(str, T[i].out);
        free(str);
        kc_label_selector_free(s);
    }
}

static void test_parse_errors(void **state)
{
    (void)state;
    char key64[65], want64[300];
    memset(key64, 'a', 64);
    key64[64] = 0;
    snprintf(want64, sizeof want64,
             "unable to parse requirement: <nil>: Invalid value: \"%s\": name part must be no more than 63 bytes", key64);
    char bad_key[600], bad_value[600], two[1200];
    snprintf(bad_key, sizeof bad_key, "unable to parse requirement: <nil>: Invalid value: \"-x\": %s", KEY_RE_MSG);
    snprintf(bad_value, sizeof bad_value,
             "unable to parse requirement: values[0][x]: Invalid value: \"a||y\": %s", VALUE_RE_MSG);
    snprintf(two, sizeof two,
             "unable to parse requirement: [values[0]: Invalid value: \"a-\": for 'Gt', 'Lt' operators, the value "
             "must be an integer, values[0][x]: Invalid value: \"a-\": %s]", VALUE_RE_MSG);
    const struct { const char *in, *msg; } T[] = {
        {"x=a||y=b", bad_value},
        {"x==a==b", "found '==', expected: ',' or 'end of string'"},
        {"!x=a", "found '=', expected: ',' or 'end of string'"},
        {"x<a", "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer"},
        {"x>", "unable to parse requirement: values[0]: Invalid value: \"\": for 'Gt', 'Lt' operators, the value must be an integer"},
        {"x>a-", two},
        {"x,,y", "found ',', expected: identifier after ','"},
        {",x,y", "found ',', expected: !, identifier, or 'end of string'"},
        {"x nott in (y)", "unable to parse requirement: found 'nott', expected: in, notin, =, ==, !=, gt, lt"},
        {"a in (xyz),", "found '', expected: identifier after ','"},
        {"a in (xyz)b notin ()", "found 'b', expected: ',' or 'end of string'"},
        {"a in (xyz abc)", "unable to parse requirement: found 'abc', expected: ',' or ')'"},
        {"a notin(", "unable to parse requirement: found '', expected: ',', ')' or identifier"},
        {"a in (x", "unable to parse requirement: found '', expected: ',' or ')'"},
        {"a in x", "unable to parse requirement: found 'x' expected: '('"},
        {"a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"},
        {"a in (x,=)", "unable to parse requirement: found '=', expected: ',', or identifier"},
        {"a (", "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt"},
        {"(", "found '(', expected: !, identifier, or 'end of string'"},
        {"x=(", "unable to parse requirement: found '(', expected: identifier"},
        {"!", "unable to parse requirement: found '', expected: identifier"},
        {"x=a b", "found 'b', expected: ',' or 'end of string'"},
        {"-x", bad_key},
        {key64, want64},
    };
    for (size_t i = 0; i < N(T); i++) {
        struct kc_label_selector *s = (struct kc_label_selector *)1;
        struct kc_err err = {0};
        int rc = kc_label_selector_parse(T[i].in, &s, &err);
        if (rc != KC_EINVAL)
            fail_msg("parse(%s) should fail, rc=%d", T[i].in, rc);
        assert_null(s);
        if (strcmp(err.message, T[i].msg) != 0)
            fail_msg("parse(%s):\n got  %s\n want %s", T[i].in, err.message, T[i].msg);
    }
}

/* ---- matching ---- */

static const char *map_lookup(void *obj, const char *key)
{
    const char *const *kv = obj; /* NULL-terminated key, value pairs */
    for (; kv && kv[0]; kv += 2)
        if (strcmp(kv[0], key) == 0)
            return kv[1];
    return NULL;
}

static void test_matches(void **state)
{
    (void)state;
    static const struct { const char *sel, *labels; bool match; } T[] = {
        {"", "{\"x\":\"y\"}", true},
        {"", "{}", true},
        {"x=y", "{\"x\":\"y\"}", true},
        {"x=y,z=w", "{\"x\":\"y\",\"z\":\"w\"}", true},
        {"x!=y,z!=w", "{\"x\":\"z\",\"z\":\"a\"}", true},
        {"notin=in", "{\"notin\":\"in\"}", true},
        {"x", "{\"x\":\"z\"}", true},
        {"!x", "{\"y\":\"z\"}", true},
        {"x>1", "{\"x\":\"2\"}", true},
        {"x<1", "{\"x\":\"0\"}", true},
        {"x>1", "{\"x\":\"+2\"}", true},
        {"x<5", "{\"x\":\"-3\"}", true},
        {"x=z", "{}", false},
        {"x=y", "{\"x\":\"z\"}", false},
        {"x=y,z=w", "{\"x\":\"w\",\"z\":\"w\"}", false},
        {"x!=y,z!=w", "{\"x\":\"z\",\"z\":\"w\"}", false},
        {"x", "{\"y\":\"z\"}", false},
        {"!x", "{\"x\":\"z\"}", false},
        {"x>1", "{\"x\":\"0\"}", false},
        {"x<1", "{\"x\":\"2\"}", false},
        {"x>1", "{}", false},
        {"z>1", "{\"z\":\"v2\"}", false},
        /* != and notin match objects without the label */
        {"x!=y", "{}", true},
        {"x notin (a,b)", "{}", true},
        {"x notin (a,b)", "{\"x\":\"b\"}", false},
        {"x notin (a,b)", "{\"x\":\"c\"}", true},
        {"x in (a,b)", "{}", false},
        {"x in (a,b)", "{\"x\":\"a\"}", true},
        {"x in ()", "{\"x\":\"\"}", true},
        {"x in ()", "{\"y\":\"baz\"}", false},
        {"x notin (),y", "{\"y\":\"\"}", true},
        {"!x,y", "{\"y\":\"\"}", true},
        {"x notin (),!y", "{\"y\":\"\"}", false},
        {"x=", "{\"x\":\"\"}", true},
        {"x=", "{}", false},
        {"foo=bar,baz=blah", "{\"foo\":\"bar\",\"baz\":\"blah\"}", true},
        {"foo=bar,foobar=bar,baz=blah", "{\"foo\":\"bar\",\"baz\":\"blah\"}", false},
    };
    for (size_t i = 0; i < N(T); i++) {
        struct kc_label_selector *s;
        struct kc_err err = {0};
        if (kc_label_selector_parse(T[i].sel, &s, &err))
            fail_msg("parse(%s): %s", T[i].sel, err.message);
        json_t *labels = json_loads(T[i].labels, 0, NULL);
        assert_non_null(labels);
        if (kc_label_selector_matches_json(s, labels) != T[i].match)
            fail_msg("'%s' on %s: want %d", T[i].sel, T[i].labels, T[i].match);
        json_decref(labels);
        kc_label_selector_free(s);
    }
}

static void test_matches_lookup_and_null_labels(void **state)
{
    (void)state;
    struct kc_label_selector *s;
    assert_int_equal(kc_label_selector_parse("app=web,tier notin (db),!canary", &s, NULL), 0);
    const char *good[] = {"app", "web", "tier", "fe", NULL};
    const char *db[] = {"app", "web", "tier", "db", NULL};
    const char *canary[] = {"app", "web", "canary", "", NULL};
    assert_true(kc_label_selector_matches(s, map_lookup, good));
    assert_false(kc_label_selector_matches(s, map_lookup, db));
    assert_false(kc_label_selector_matches(s, map_lookup, canary));
    assert_false(kc_label_selector_matches_json(s, NULL));
    assert_false(kc_label_selector_empty(s));
    kc_label_selector_free(s);

    assert_int_equal(kc_label_selector_parse("x!=a", &s, NULL), 0);
    assert_true(kc_label_selector_matches_json(s, NULL)); /* no labels at all */
    kc_label_selector_free(s);

    assert_int_equal(kc_label_selector_parse(NULL, &s, NULL), 0);
    assert_true(kc_label_selector_empty(s));
    assert_true(kc_label_selector_matches_json(s, NULL));
    kc_label_selector_free(s);
}

static void test_exact(void **state)
{
    (void)state;
    static const struct { const char *sel, *key, *want; } T[] = {
        {"app=web,x", "app", "web"},
        {"app==web", "app", "web"},
        {"app in (a)", "app", "a"},
        {"app in (a,b)", "app", NULL},
        {"app!=a", "app", NULL},
        {"app", "app", NULL},
        {"x=1", "app", NULL},
    };
    for (size_t i = 0; i < N(T); i++) {
        struct kc_label_selector *s;
        assert_int_equal(kc_label_selector_parse(T[i].sel, &s, NULL), 0);
        const char *got = kc_label_selector_exact(s, T[i].key);
        if (T[i].want)
            assert_string_equal(got, T[i].want);
        else
            assert_null(got);
        kc_label_selector_free(s);
    }
}

/* ---- metav1.LabelSelector ---- */

static void test_from_json(void **state)
{
    (void)state;
    static const struct { const char *json, *str, *labels; bool match; } T[] = {
        {"{}", "", "{\"a\":\"b\"}", true},
        {"{\"matchLabels\":{}}", "", "{}", true},
        {"{\"matchLabels\":{\"app\":\"web\"}}", "app=web", "{\"app\":\"web\"}", true},
        {"{\"matchLabels\":{\"b\":\"1\",\"a\":\"2\"}}", "a=2,b=1", "{\"a\":\"2\",\"b\":\"1\"}", true},
        {"{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"In\",\"values\":[\"b\",\"a\"]}]}",
         "tier in (a,b)", "{\"tier\":\"b\"}", true},
        {"{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"NotIn\",\"values\":[\"a\"]}]}",
         "tier notin (a)", "{}", true},
        {"{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"Exists\"}]}", "tier", "{}", false},
        {"{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"DoesNotExist\",\"values\":[]}]}", "!tier", "{}", true},
        {"{\"matchLabels\":{\"app\":\"web\"},\"matchExpressions\":[{\"key\":\"env\",\"operator\":\"NotIn\","
         "\"values\":[\"prod\"]}]}",
         "app=web,env notin (prod)", "{\"app\":\"web\",\"env\":\"prod\"}", false},
        {"{\"matchLabels\":{\"app\":\"web\"},\"matchExpressions\":[{\"key\":\"env\",\"operator\":\"NotIn\","
         "\"values\":[\"prod\"]}]}",
         "app=web,env notin (prod)", "{\"app\":\"web\"}", true},
    };
    for (size_t i = 0; i < N(T); i++) {
        json_t *j = json_loads(T[i].json, 0, NULL), *labels = json_loads(T[i].labels, 0, NULL);
        assert_non_null(j);
        struct kc_label_selector *s;
        struct kc_err err = {0};
        if (kc_label_selector_from_json(j, &s, &err))
            fail_msg("from_json(%s): %s", T[i].json, err.message);
        char *str = kc_label_selector_string(s);
        assert_string_equal(str, T[i].str);
        if (kc_label_selector_matches_json(s, labels) != T[i].match)
            fail_msg("%s on %s: want %d", T[i].json, T[i].labels, T[i].match);
        free(str);
        kc_label_selector_free(s);
        json_decref(j);
        json_decref(labels);
    }
    /* a null selector matches nothing, an empty one everything */
    struct kc_label_selector *s;
    json_t *labels = json_pack("{s:s}", "a", "b");
    assert_int_equal(kc_label_selector_from_json(NULL, &s, NULL), 0);
    assert_false(kc_label_selector_matches_json(s, labels));
    assert_false(kc_label_selector_empty(s));
    assert_true(kc_label_selector_nothing(s));
    kc_label_selector_free(s);
    json_t *null = json_null();
    assert_int_equal(kc_label_selector_from_json(null, &s, NULL), 0);
    assert_false(kc_label_selector_matches_json(s, labels));
    kc_label_selector_free(s);
    json_decref(labels);
}

static void test_from_json_errors(void **state)
{
    (void)state;
    char bad_key[600], bad_value[600];
    snprintf(bad_key, sizeof bad_key, "key: Invalid value: \"-a\": %s", KEY_RE_MSG);
    snprintf(bad_value, sizeof bad_value, "values[0][app]: Invalid value: \"a b\": %s", VALUE_RE_MSG);
    /* several errors aggregate as "[e1, e2]"; lists print as Go's JSON (HTML-safe) */
    char agg[1200];
    snprintf(agg, sizeof agg,
             "[values: Invalid value: [\"x\",\"\\u003cy\\u003e\"]: values set must be empty for exists and does "
             "not exist, values[1][a]: Invalid value: \"<y>\": %s]", VALUE_RE_MSG);
    const struct { const char *json, *msg; } T[] = {
        {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Foo\",\"values\":[\"x\"]}]}",
         "\"Foo\" is not a valid label selector operator"},
        {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"in\",\"values\":[\"x\"]}]}",
         "\"in\" is not a valid label selector operator"},
        {"{\"matchExpressions\":[{\"key\":\"a\"}]}", "\"\" is not a valid label selector operator"},
        {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\",\"values\":[]}]}",
         "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty"},
        {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"NotIn\"}]}",
         "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty"},
        {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Exists\",\"values\":[\"x\"]}]}",
         "values: Invalid value: [\"x\"]: values set must be empty for exists and does not exist"},
        {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"DoesNotExist\",\"values\":[\"x\",\"<y>\"]}]}",
         agg},
        {"{\"matchExpressions\":[{\"key\":\"-a\",\"operator\":\"Exists\"}]}", bad_key},
        {"{\"matchLabels\":{\"app\":\"a b\"}}", bad_value},
    };
    for (size_t i = 0; i < N(T); i++) {
        json_t *j = json_loads(T[i].json, 0, NULL);
        assert_non_null(j);
        struct kc_label_selector *s = (struct kc_label_selector *)1;
        struct kc_err err = {0};
        int rc = kc_label_selector_from_json(j, &s, &err);
        json_decref(j);
        if (rc != KC_EINVAL)
            fail_msg("from_json(%s) should fail", T[i].json);
        assert_null(s);
        if (strcmp(err.message, T[i].msg) != 0)
            fail_msg("from_json(%s):\n got  %s\n want %s", T[i].json, err.message, T[i].msg);
    }
}

/* ---- field selectors ---- */

static void test_field_parse(void **state)
{
    (void)state;
    static const struct { const char *in, *str; } T[] = {
        {"", ""},
        {",", ""},
        {"=", ""}, /* empty field and value select everything */
        {"metadata.name=foo", "metadata.name=foo"},
        {"metadata.name==foo", "metadata.name=foo"},
        {"status.phase!=Running,metadata.namespace=default", "metadata.namespace=default,status.phase!=Running"},
        {"metadata.name=a\\,b", "metadata.name=a\\,b"},
        {"x=a\\=b", "x=a\\=b"},
        {"x=a\\\\b", "x=a\\\\b"},
        {"x=", "x="},
        {"a!b=c", "a!b=c"},
        {"x=a,,y=b", "x=a,y=b"},
    };
    for (size_t i = 0; i < N(T); i++) {
        struct kc_field_selector *s;
        struct kc_err err = {0};
        if (kc_field_selector_parse(T[i].in, &s, &err))
            fail_msg("parse(%s): %s", T[i].in, err.message);
        char *str = kc_field_selector_string(s);
        assert_string_equal(str, T[i].str);
        assert_int_equal(kc_field_selector_empty(s), T[i].str[0] == 0);
        free(str);
        kc_field_selector_free(s);
    }
}

static void test_field_errors(void **state)
{
    (void)state;
    static const struct { const char *in, *msg; } T[] = {
        {"x", "invalid selector: 'x'; can't understand 'x'"},
        {"x=a,b", "invalid selector: 'x=a,b'; can't understand 'b'"},
        {"x=a\\", "invalid field selector: invalid escape sequence: \\"},
        {"x=a\\b", "invalid field selector: invalid escape sequence: \\b"},
        {"x=a=b", "invalid field selector: unescaped character in value: 61"},
        {"x==a=b", "invalid field selector: unescaped character in value: 61"},
    };
    for (size_t i = 0; i < N(T); i++) {
        struct kc_field_selector *s = (struct kc_field_selector *)1;
        struct kc_err err = {0};
        assert_int_equal(kc_field_selector_parse(T[i].in, &s, &err), KC_EINVAL);
        assert_null(s);
        if (strcmp(err.message, T[i].msg) != 0)
            fail_msg("parse(%s):\n got  %s\n want %s", T[i].in, err.message, T[i].msg);
    }
}

static void test_field_match_exact_check(void **state)
{
    (void)state;
    const char *pod[] = {"metadata.name", "a,b", "metadata.namespace", "default", "status.phase", "Running", NULL};
    static const struct { const char *sel; bool match; } T[] = {
        {"", true},
        {"metadata.name=a\\,b", true},
        {"metadata.name=a", false},
        {"metadata.namespace=default,status.phase!=Running", false},
        {"metadata.namespace=default,status.phase!=Pending", true},
        {"spec.nodeName=", true},   /* a missing field reads as "" */
        {"spec.nodeName!=n1", true},
        {"spec.nodeName=n1", false},
    };
    for (size_t i = 0; i < N(T); i++) {
        struct kc_field_selector *s;
        assert_int_equal(kc_field_selector_parse(T[i].sel, &s, NULL), 0);
        if (kc_field_selector_matches(s, map_lookup, pod) != T[i].match)
            fail_msg("'%s': want %d", T[i].sel, T[i].match);
        kc_field_selector_free(s);
    }

    struct kc_field_selector *s;
    assert_int_equal(kc_field_selector_parse("status.phase!=Failed,metadata.name==web-1", &s, NULL), 0);
    assert_string_equal(kc_field_selector_exact(s, "metadata.name"), "web-1");
    assert_null(kc_field_selector_exact(s, "status.phase")); /* != is not exact */
    assert_null(kc_field_selector_exact(s, "spec.nodeName"));
    static const char *const allowed[] = {"metadata.name", "metadata.namespace", "status.phase", NULL};
    struct kc_err err = {0};
    assert_int_equal(kc_field_selector_check(s, allowed, &err), 0);
    kc_field_selector_free(s);

    assert_int_equal(kc_field_selector_parse("metadata.name=a,spec.nodeName=n1", &s, NULL), 0);
    assert_int_equal(kc_field_selector_check(s, allowed, &err), KC_EINVAL);
    assert_string_equal(err.message, "field label not supported: spec.nodeName");
    kc_field_selector_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_matches),
        cmocka_unit_test(test_matches_lookup_and_null_labels),
        cmocka_unit_test(test_exact),
        cmocka_unit_test(test_from_json),
        cmocka_unit_test(test_from_json_errors),
        cmocka_unit_test(test_field_parse),
        cmocka_unit_test(test_field_errors),
        cmocka_unit_test(test_field_match_exact_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
