/* test_schema.c — the schema parser, lookups, patch callbacks, field check and OpenAPI v3 document. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "schema/schema.h"
#include "test_schema.h"

static struct kc_schema *parse_ok(const char *text)
{
    struct kc_schema *s = NULL;
    struct kc_err err = {0};
    int rc = kc_schema_parse(text, strlen(text), &s, &err);
    if (rc != 0)
        fail_msg("parse failed: %s", err.message);
    return s;
}

/* Parses text that must fail; returns the error message (static). */
static const char *parse_fail(const char *text)
{
    static struct kc_err err;
    struct kc_schema *s = NULL;
    memset(&err, 0, sizeof err);
    int rc = kc_schema_parse(text, strlen(text), &s, &err);
    assert_int_equal(rc, KC_EINVAL);
    assert_null(s);
    return err.message;
}

/* ---------- parser ---------- */

static void test_parse_good(void **state)
{
    struct kc_schema *s = parse_ok(test_schema_text);
    assert_int_equal(kc_schema_ntypes(s), 6);
    const struct kc_type *w = kc_schema_type(s, "t.v1.Widget");
    assert_non_null(w);
    assert_string_equal(w->group, "example.com");
    assert_string_equal(w->version, "v1");
    assert_string_equal(w->kind, "Widget");
    assert_string_equal(w->description, "A widget.");
    assert_int_equal(w->nfields, 4);

    const struct kc_type *spec = kc_schema_type(s, "t.v1.WidgetSpec");
    const struct kc_field *parts = kc_type_field(spec, "parts");
    assert_non_null(parts);
    assert_true(parts->list);
    assert_false(parts->map);
    assert_int_equal(parts->type, KC_F_MESSAGE);
    assert_ptr_equal(parts->msg, kc_schema_type(s, "t.v1.Part"));
    assert_true(parts->required);
    assert_int_equal(parts->strategy, KC_PS_MERGE);
    assert_string_equal(parts->merge_key, "name");
    assert_string_equal(parts->list_type, "map");
    assert_string_equal(parts->list_map_keys, "name");
    assert_string_equal(parts->description, "The parts.");
    assert_int_equal(parts->number, 2);

    const struct kc_field *f = kc_type_field(spec, "byName");
    assert_true(f->map);
    assert_int_equal(f->type, KC_F_MESSAGE);
    f = kc_type_field(spec, "data");
    assert_true(f->map);
    assert_int_equal(f->type, KC_F_BYTES);
    assert_int_equal(kc_type_field(spec, "volumes")->strategy, KC_PS_MERGE | KC_PS_RETAIN_KEYS);
    assert_int_equal(kc_type_field(spec, "port")->type, KC_F_INTORSTRING);
    assert_int_equal(kc_type_field(spec, "size")->type, KC_F_QUANTITY);
    assert_int_equal(kc_type_field(spec, "extra")->type, KC_F_RAW);
    assert_int_equal(kc_type_field(spec, "timeout")->type, KC_F_DURATION);
    assert_true(kc_field_omitempty(spec, kc_type_field(spec, "paused")));
    assert_true(kc_field_omitempty(spec, kc_type_field(spec, "minReady")));
    assert_string_equal(kc_type_field(spec, "minReady")->description, "Zero is left out of JSON.");
    assert_false(kc_field_omitempty(spec, kc_type_field(spec, "replicas")));
    assert_int_equal(kc_type_field(kc_schema_type(s, "t.v1.Part"), "when")->type, KC_F_MICROTIME);
    /* a self-referencing type resolves to itself */
    const struct kc_type *node = kc_schema_type(s, "t.v1.Node");
    assert_ptr_equal(kc_type_field(node, "child")->msg, node);
    kc_schema_free(s);
}

static void test_parse_crlf_comments_and_tabs(void **state)
{
    struct kc_schema *s = parse_ok("# comment\r\n\r\ntype a.B gvk=g.io/v2/B\r\n\tx  int64   3  \r\n  # inner comment\n"
                                   "\ty string 4 desc=two words  \n");
    const struct kc_type *t = kc_schema_kind(s, "g.io", "v2", "B");
    assert_non_null(t);
    assert_int_equal(kc_type_field(t, "x")->type, KC_F_INT64);
    assert_string_equal(kc_type_field(t, "y")->description, "two words");
    kc_schema_free(s);
}

static void test_parse_errors(void **state)
{
    const char *m;
    m = parse_fail("type a.A\n  x string 1\n  y a.Missing 2\n");
    assert_non_null(strstr(m, "line 3"));
    assert_non_null(strstr(m, "unknown type \"a.Missing\""));

    m = parse_fail("type a.A\n  x string 1 strategy=bogus\n");
    assert_non_null(strstr(m, "line 2"));
    assert_non_null(strstr(m, "bad option \"strategy=bogus\""));

    m = parse_fail("type a.A\n  x []string 1 listType=list\n");
    assert_non_null(strstr(m, "bad option"));

    m = parse_fail("type a.A\n  x string 1 frobnicate\n");
    assert_non_null(strstr(m, "bad option \"frobnicate\""));

    m = parse_fail("type a.A nope=1\n");
    assert_non_null(strstr(m, "line 1"));
    assert_non_null(strstr(m, "bad option"));

    m = parse_fail("type a.A\n  x string 1\ntype a.B\ntype a.A\n");
    assert_non_null(strstr(m, "line 4"));
    assert_non_null(strstr(m, "duplicate type \"a.A\""));

    m = parse_fail("type a.A\n  x string 1\n  x int32 2\n");
    assert_non_null(strstr(m, "duplicate field \"x\""));
    assert_non_null(strstr(m, "line 3"));

    m = parse_fail("type a.A\n  x string 1\n  y int32 1\n");
    assert_non_null(strstr(m, "duplicate protobuf number 1"));

    m = parse_fail("type a.A gvk=g/v1/K\ntype a.B gvk=g/v1/K\n");
    assert_non_null(strstr(m, "duplicate gvk"));

    m = parse_fail("type a.A gvk=g/v1\n");
    assert_non_null(strstr(m, "bad gvk"));

    m = parse_fail("  x string 1\n");
    assert_non_null(strstr(m, "before any type"));

    m = parse_fail("type a.A\n  x string one\n");
    assert_non_null(strstr(m, "bad protobuf number"));

    m = parse_fail("type a.A\n  x string\n");
    assert_non_null(strstr(m, "line 2"));

    m = parse_fail("type a.A\n  x [][]string 1\n");
    assert_non_null(strstr(m, "bad field type"));

    m = parse_fail("type a.A\n  x string 1 key=name\n");
    assert_non_null(strstr(m, "not a list"));

    m = parse_fail("tipe a.A\n");
    assert_non_null(strstr(m, "line 1"));

    /* inline=: a positive number, the field keeps its own number, duplicates
     * counted per (inline, number), an outer number is not also a field */
    m = parse_fail("type a.A\n  x string 1 inline=0\n");
    assert_non_null(strstr(m, "bad option \"inline=0\""));
    m = parse_fail("type a.A\n  x string 1 inline=two\n");
    assert_non_null(strstr(m, "bad option"));
    m = parse_fail("type a.A\n  x string 0 inline=2\n");
    assert_non_null(strstr(m, "without its protobuf number"));
    m = parse_fail("type a.A\n  x string 1 inline=2\n  y string 1 inline=2\n");
    assert_non_null(strstr(m, "duplicate protobuf number 1 (inline=2)"));
    m = parse_fail("type a.A\n  x string 2\n  y string 1 inline=2\n");
    assert_non_null(strstr(m, "inline=2 is also a field number"));
}

static void test_parse_inline(void **state)
{
    struct kc_schema *s = parse_ok("type a.Vol\n"
                                   "  name string 1\n"
                                   "  hostPath string 1 inline=2\n"
                                   "  emptyDir string 2 inline=2\n"
                                   "  other string 1 inline=5\n"
                                   "  size int32 3\n");
    const struct kc_type *t = kc_schema_type(s, "a.Vol");
    assert_string_equal(kc_type_field_num(t, 1)->name, "name");
    assert_null(kc_type_field_num(t, 2));  /* 2 is the embedded message, not a field */
    assert_string_equal(kc_type_field_num(t, 3)->name, "size");
    assert_string_equal(kc_type_field_inline(t, 2, 1)->name, "hostPath");
    assert_string_equal(kc_type_field_inline(t, 2, 2)->name, "emptyDir");
    assert_string_equal(kc_type_field_inline(t, 5, 1)->name, "other");
    assert_null(kc_type_field_inline(t, 2, 3));
    assert_int_equal(kc_type_field(t, "emptyDir")->inline_num, 2);
    assert_int_equal(kc_type_field(t, "emptyDir")->number, 2);
    assert_int_equal(kc_type_field(t, "name")->inline_num, 0);
    assert_true(kc_type_is_inline_num(t, 2));
    assert_true(kc_type_is_inline_num(t, 5));
    assert_false(kc_type_is_inline_num(t, 1));
    assert_false(kc_type_is_inline_num(t, 3));
    kc_schema_free(s);
}

/* ---------- lookups ---------- */

static void test_lookups(void **state)
{
    struct kc_schema *s = parse_ok(test_schema_text);
    /* core group: "" and "core" both name it */
    const struct kc_type *g = kc_schema_kind(s, "", "v1", "Gadget");
    assert_non_null(g);
    assert_ptr_equal(kc_schema_kind(s, "core", "v1", "Gadget"), g);
    assert_string_equal(g->group, "");
    assert_null(kc_schema_kind(s, "example.com", "v2", "Widget"));
    assert_null(kc_schema_kind(s, "example.com", "v1", "Gadget"));
    assert_null(kc_schema_type(s, "t.v1.Nope"));
    assert_null(kc_schema_type(s, ""));

    const struct kc_type *spec = kc_schema_type(s, "t.v1.WidgetSpec");
    for (size_t i = 0; i < spec->nfields; i++) {
        const struct kc_field *f = &spec->fields[i];
        assert_ptr_equal(kc_type_field(spec, f->name), f);
        assert_ptr_equal(kc_type_field_num(spec, f->number), f);
    }
    assert_null(kc_type_field(spec, "Replicas"));  /* case-sensitive, as upstream */
    assert_null(kc_type_field_num(spec, 99));
    /* apiVersion/kind have number 0 and are not found by number */
    const struct kc_type *w = kc_schema_type(s, "t.v1.Widget");
    assert_null(kc_type_field_num(w, 0));
    assert_non_null(kc_type_field(w, "apiVersion"));
    kc_schema_free(s);
}

/* ---------- patch callbacks ---------- */

static void test_patch_ops(void **state)
{
    struct kc_schema *s = parse_ok(test_schema_text);
    const struct kc_patch_schema *ops = kc_schema_patch_ops(s);
    const struct kc_type *w = kc_schema_type(s, "t.v1.Widget");
    const void *spec = ops->field_type(ops->ctx, w, "spec");
    assert_ptr_equal(spec, kc_schema_type(s, "t.v1.WidgetSpec"));
    assert_ptr_equal(ops->field_type(ops->ctx, spec, "parts"), kc_schema_type(s, "t.v1.Part"));
    assert_ptr_equal(ops->field_type(ops->ctx, spec, "byName"), kc_schema_type(s, "t.v1.Part"));
    assert_null(ops->field_type(ops->ctx, spec, "tags"));
    assert_null(ops->field_type(ops->ctx, spec, "nope"));
    assert_null(ops->field_type(ops->ctx, NULL, "spec"));
    assert_int_equal(ops->field_strategy(ops->ctx, spec, "parts"), KC_PS_MERGE);
    assert_int_equal(ops->field_strategy(ops->ctx, spec, "tags"), KC_PS_MERGE);
    assert_int_equal(ops->field_strategy(ops->ctx, spec, "volumes"), KC_PS_MERGE | KC_PS_RETAIN_KEYS);
    assert_int_equal(ops->field_strategy(ops->ctx, spec, "nums"), KC_PS_REPLACE);
    assert_int_equal(ops->field_strategy(ops->ctx, spec, "nope"), KC_PS_REPLACE);
    assert_string_equal(ops->merge_key(ops->ctx, spec, "parts"), "name");
    assert_null(ops->merge_key(ops->ctx, spec, "tags"));
    assert_null(ops->merge_key(ops->ctx, NULL, "parts"));
    kc_schema_free(s);
}

/* The callbacks drive the real strategic merge patch: containers merge by name. */
static void test_patch_ops_with_smp(void **state)
{
    const struct kc_schema *s = kc_schema_default();
    const struct kc_type *dep = kc_schema_kind(s, "apps", "v1", "Deployment");
    if (!dep)
        skip();
    json_error_t je;
    json_t *orig = json_loads("{\"spec\":{\"replicas\":1,\"template\":{\"spec\":{\"containers\":["
                              "{\"name\":\"a\",\"image\":\"nginx:1.25\"},{\"name\":\"b\",\"image\":\"redis\"}]}}}}",
                              0, &je);
    json_t *patch = json_loads("{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"a\",\"image\":"
                               "\"nginx:1.26\"}]}}}}",
                               0, &je);
    json_t *out = NULL;
    struct kc_err err = {0};
    assert_int_equal(kc_strategic_merge_patch(orig, patch, kc_schema_patch_ops(s), dep, &out, &err), 0);
    json_t *want = json_loads("{\"spec\":{\"replicas\":1,\"template\":{\"spec\":{\"containers\":["
                              "{\"name\":\"a\",\"image\":\"nginx:1.26\"},{\"name\":\"b\",\"image\":\"redis\"}]}}}}",
                              0, &je);
    if (!json_equal(out, want))
        fail_msg("got %s", json_dumps(out, JSON_SORT_KEYS));
    json_decref(out);
    /* without the schema the list is replaced wholesale */
    assert_int_equal(kc_strategic_merge_patch(orig, patch, NULL, NULL, &out, &err), 0);
    assert_int_equal(json_array_size(json_object_get(
                         json_object_get(json_object_get(json_object_get(out, "spec"), "template"), "spec"),
                         "containers")),
                     1);
    json_decref(out);
    json_decref(want);
    json_decref(orig);
    json_decref(patch);
}

/* ---------- prune ---------- */

static json_t *load(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j)
        fail_msg("bad test JSON: %s", je.text);
    return j;
}

static void assert_pruned(const struct kc_schema *s, const struct kc_type *t, const char *in, const char *want)
{
    json_t *obj = load(in), *w = load(want);
    kc_schema_prune(s, t, obj);
    if (!json_equal(obj, w))
        fail_msg("got  %s\nwant %s", json_dumps(obj, JSON_SORT_KEYS), want);
    json_decref(obj);
    json_decref(w);
}

static void test_prune(void **state)
{
    struct kc_schema *s = parse_ok(test_schema_text);
    const struct kc_type *w = kc_schema_type(s, "t.v1.Widget");
    /* unknown fields go at every level: top, nested message, list elements,
     * map values, recursive types; known ones and their values stay */
    assert_pruned(s, w,
                  "{\"apiVersion\":\"example.com/v1\",\"kind\":\"Widget\",\"bogus\":1,"
                  "\"metadata\":{\"name\":\"w\",\"nickname\":\"x\",\"labels\":{\"bogus\":\"kept: a map key\"}},"
                  "\"spec\":{\"replicas\":2,\"typo\":true,"
                  "\"parts\":[{\"name\":\"a\",\"color\":\"red\"},{\"name\":\"b\",\"weight\":3}],"
                  "\"byName\":{\"x\":{\"name\":\"x\",\"size\":9}},"
                  "\"node\":{\"label\":\"l\",\"child\":{\"label\":\"m\",\"extra\":1,\"child\":{\"zz\":{}}}},"
                  "\"extra\":{\"anything\":{\"goes\":[1,{\"here\":true}]}},"
                  "\"tags\":[\"t1\"],\"data\":{\"k\":\"dg==\"}}}",
                  "{\"apiVersion\":\"example.com/v1\",\"kind\":\"Widget\","
                  "\"metadata\":{\"name\":\"w\",\"labels\":{\"bogus\":\"kept: a map key\"}},"
                  "\"spec\":{\"replicas\":2,"
                  "\"parts\":[{\"name\":\"a\"},{\"name\":\"b\",\"weight\":3}],"
                  "\"byName\":{\"x\":{\"name\":\"x\"}},"
                  "\"node\":{\"label\":\"l\",\"child\":{\"label\":\"m\",\"child\":{}}},"
                  "\"extra\":{\"anything\":{\"goes\":[1,{\"here\":true}]}},"
                  "\"tags\":[\"t1\"],\"data\":{\"k\":\"dg==\"}}}");
    /* values of the wrong JSON type and nulls are not pruning's business */
    assert_pruned(s, w, "{\"spec\":{\"parts\":\"oops\",\"node\":[{\"x\":1}],\"byName\":null,\"junk\":null}}",
                  "{\"spec\":{\"parts\":\"oops\",\"node\":[{\"x\":1}],\"byName\":null}}");
    /* no type or a non-object: nothing happens */
    json_t *a = load("[{\"x\":1}]");
    kc_schema_prune(s, w, a);
    kc_schema_prune(s, NULL, a);
    assert_int_equal(json_object_size(json_array_get(a, 0)), 1);
    json_decref(a);
    kc_schema_free(s);

    /* the real schema: a Deployment keeps everything a user may set (flat
     * fields of inline-embedded structs included) and loses only typos */
    const struct kc_schema *d = kc_schema_default();
    const struct kc_type *dep = kc_schema_kind(d, "apps", "v1", "Deployment");
    assert_non_null(dep);
    const char *good =
        "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\","
        "\"annotations\":{\"x/y\":\"z\"}},\"spec\":{\"replicas\":3,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},"
        "\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"}},\"spec\":{"
        "\"volumes\":[{\"name\":\"c\",\"configMap\":{\"name\":\"cm\",\"defaultMode\":420}},"
        "{\"name\":\"e\",\"emptyDir\":{}}],"
        "\"containers\":[{\"name\":\"nginx\",\"image\":\"nginx\",\"livenessProbe\":{\"httpGet\":"
        "{\"path\":\"/\",\"port\":80},\"periodSeconds\":5},\"env\":[{\"name\":\"A\",\"valueFrom\":{\"secretKeyRef\":"
        "{\"name\":\"s\",\"key\":\"k\"}}}],\"resources\":{\"limits\":{\"cpu\":\"1\"}}}]}}}}";
    assert_pruned(d, dep, good, good);
    assert_pruned(d, dep,
                  "{\"kind\":\"Deployment\",\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"n\","
                  "\"imagePullPolicyy\":\"Always\",\"livenessProbe\":{\"httpGet\":{\"path\":\"/\",\"bogus\":1}}}],"
                  "\"volumes\":[{\"name\":\"v\",\"emptyDir\":{\"medium\":\"Memory\",\"nope\":2}}]}}},"
                  "\"status\":{\"nonsense\":1}}",
                  "{\"kind\":\"Deployment\",\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"n\","
                  "\"livenessProbe\":{\"httpGet\":{\"path\":\"/\"}}}],"
                  "\"volumes\":[{\"name\":\"v\",\"emptyDir\":{\"medium\":\"Memory\"}}]}}},\"status\":{}}");
}

/* ---------- check ---------- */

static bool array_has_string(json_t *a, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) if (strcmp(json_string_value(v), s) == 0) return true;
    return false;
}

static json_t *type_err_for(json_t *errs, const char *field)
{
    size_t i;
    json_t *v;
    json_array_foreach(errs, i, v) if (strcmp(json_string_value(json_object_get(v, "field")), field) == 0) return v;
    return NULL;
}

static void test_check_unknown_fields(void **state)
{
    struct kc_schema *s = parse_ok(test_schema_text);
    const struct kc_type *w = kc_schema_kind(s, "example.com", "v1", "Widget");
    json_error_t je;
    json_t *obj = json_loads(
        "{\"apiVersion\":\"example.com/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":\"a\",\"labels\":{\"x\":\"y\"},"
        "\"bogus\":1},\"spec\":{\"foo\":1,\"bar\":{\"deep\":1},\"parts\":[{\"name\":\"p\"},{\"name\":\"q\",\"colour\":"
        "\"red\"}],\"byName\":{\"k\":{\"name\":\"n\",\"zz\":true}},\"extra\":{\"anything\":{\"goes\":[1]}},"
        "\"node\":{\"child\":{\"child\":{\"oops\":1}}}}}",
        0, &je);
    assert_non_null(obj);
    json_t *unknown = json_array(), *errs = json_array();
    kc_schema_check(s, w, obj, unknown, errs);
    assert_int_equal(json_array_size(errs), 0);
    assert_int_equal(json_array_size(unknown), 6);
    assert_true(array_has_string(unknown, "unknown field \"metadata.bogus\""));
    assert_true(array_has_string(unknown, "unknown field \"spec.foo\""));
    assert_true(array_has_string(unknown, "unknown field \"spec.bar\""));  /* reported once, not walked */
    assert_true(array_has_string(unknown, "unknown field \"spec.parts[1].colour\""));
    assert_true(array_has_string(unknown, "unknown field \"spec.byName.k.zz\""));
    assert_true(array_has_string(unknown, "unknown field \"spec.node.child.child.oops\""));
    json_decref(unknown);
    json_decref(errs);
    /* NULL arrays are allowed */
    kc_schema_check(s, w, obj, NULL, NULL);
    json_decref(obj);
    kc_schema_free(s);
}

static void test_check_caps_at_100(void **state)
{
    struct kc_schema *s = parse_ok(test_schema_text);
    json_t *obj = json_object(), *spec = json_object();
    for (int i = 0; i < 150; i++) {
        char k[16];
        snprintf(k, sizeof k, "x%d", i);
        json_object_set_new(spec, k, json_true());
    }
    json_object_set_new(obj, "spec", spec);
    json_t *unknown = json_array();
    kc_schema_check(s, kc_schema_type(s, "t.v1.Widget"), obj, unknown, NULL);
    assert_int_equal(json_array_size(unknown), 100);
    json_decref(unknown);
    json_decref(obj);
    kc_schema_free(s);
}

static void test_check_types(void **state)
{
    struct kc_schema *s = parse_ok(test_schema_text);
    const struct kc_type *w = kc_schema_kind(s, "example.com", "v1", "Widget");
    json_error_t je;
    json_t *obj = json_loads(
        "{\"metadata\":{\"name\":5,\"labels\":{\"a\":\"b\",\"c\":1}},\"spec\":{\"replicas\":\"3\",\"parts\":{},"
        "\"tags\":[\"a\",2],\"port\":1.5,\"size\":\"1Gi\",\"big\":12345678901,\"ratio\":1,\"on\":\"yes\","
        "\"nums\":[1,4294967296],\"byName\":{\"k\":\"notobject\"},\"volumes\":[{\"name\":\"v\",\"weight\":true}],"
        "\"timeout\":\"1m\",\"blob\":null,\"extra\":7}}",
        0, &je);
    assert_non_null(obj);
    json_t *unknown = json_array(), *errs = json_array();
    kc_schema_check(s, w, obj, unknown, errs);
    assert_int_equal(json_array_size(unknown), 0);
    const char *bad[] = {"metadata.name", "metadata.labels.c", "spec.replicas", "spec.parts", "spec.tags[1]",
                         "spec.port", "spec.on", "spec.nums[1]", "spec.byName.k", "spec.volumes[0].weight"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (!type_err_for(errs, bad[i]))
            fail_msg("no type error for %s", bad[i]);
    assert_int_equal(json_array_size(errs), sizeof bad / sizeof bad[0]);
    json_t *e = type_err_for(errs, "spec.replicas");
    assert_string_equal(json_string_value(json_object_get(e, "message")),
                        "json: cannot unmarshal string into Go struct field WidgetSpec.spec.replicas of type int32");
    e = type_err_for(errs, "spec.parts");
    assert_non_null(strstr(json_string_value(json_object_get(e, "message")), "of type []v1.Part"));
    json_decref(unknown);
    json_decref(errs);
    json_decref(obj);
    kc_schema_free(s);
}

/* ---------- OpenAPI ---------- */

static json_t *jpath(json_t *j, ...)
{
    va_list ap;
    va_start(ap, j);
    for (const char *k; j && (k = va_arg(ap, const char *));) {
        if (json_is_array(j))
            j = json_array_get(j, (size_t)atoi(k));
        else
            j = json_object_get(j, k);
    }
    va_end(ap);
    return j;
}

static const char *jstr(json_t *j)
{
    assert_non_null(j);
    return json_string_value(j);
}

static bool param_named(json_t *params, const char *name)
{
    size_t i;
    json_t *p;
    json_array_foreach(params, i, p) if (strcmp(jstr(json_object_get(p, "name")), name) == 0) return true;
    return false;
}

/* Every "$ref" anywhere in the document names a component that exists. */
static void assert_refs_resolve(json_t *doc, json_t *j)
{
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v) {
            if (strcmp(k, "$ref") == 0) {
                const char *r = json_string_value(v);
                assert_true(strncmp(r, "#/components/schemas/", 21) == 0);
                if (!jpath(doc, "components", "schemas", r + 21, NULL))
                    fail_msg("dangling $ref %s", r);
            } else {
                assert_refs_resolve(doc, v);
            }
        }
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) assert_refs_resolve(doc, v);
    }
}

static void test_openapi_shape(void **state)
{
    struct kc_schema *s = parse_ok(test_schema_text);
    static const char *const subs[] = {"status", "scale", NULL};
    struct kc_openapi_kind kinds[] = {
        {"example.com", "v1", "Widget", "widgets", true, subs},
        {"", "v1", "Gadget", "gadgets", false, NULL},  /* other group-version: left out */
    };
    json_t *doc = kc_openapi_v3_doc(s, "example.com", "v1", kinds, 2);
    assert_non_null(doc);
    assert_string_equal(jstr(json_object_get(doc, "openapi")), "3.0.0");
    assert_non_null(json_object_get(doc, "info"));
    json_t *paths = json_object_get(doc, "paths");
    assert_null(json_object_get(paths, "/api/v1/gadgets"));

    json_t *item = json_object_get(paths, "/apis/example.com/v1/namespaces/{namespace}/widgets/{name}");
    assert_non_null(item);
    json_t *patch = json_object_get(item, "patch");
    assert_string_equal(jstr(jpath(patch, "x-kubernetes-action", NULL)), "patch");
    assert_string_equal(jstr(jpath(patch, "x-kubernetes-group-version-kind", "kind", NULL)), "Widget");
    assert_string_equal(jstr(jpath(patch, "x-kubernetes-group-version-kind", "group", NULL)), "example.com");
    json_t *params = json_object_get(patch, "parameters");
    assert_true(param_named(params, "fieldValidation"));
    assert_true(param_named(params, "fieldManager"));
    assert_true(param_named(params, "dryRun"));
    assert_true(param_named(params, "force"));
    json_t *ct = jpath(patch, "requestBody", "content", NULL);
    assert_int_equal(json_object_size(ct), 4);
    assert_non_null(json_object_get(ct, "application/json-patch+json"));
    assert_non_null(json_object_get(ct, "application/merge-patch+json"));
    assert_non_null(json_object_get(ct, "application/strategic-merge-patch+json"));
    assert_non_null(json_object_get(ct, "application/apply-patch+yaml"));
    assert_non_null(json_object_get(item, "get"));
    assert_non_null(json_object_get(item, "put"));
    assert_non_null(json_object_get(item, "delete"));
    assert_string_equal(jstr(jpath(item, "put", "x-kubernetes-action", NULL)), "put");
    assert_true(param_named(jpath(item, "put", "parameters", NULL), "fieldValidation"));
    assert_true(param_named(json_object_get(item, "parameters"), "namespace"));

    json_t *coll = json_object_get(paths, "/apis/example.com/v1/namespaces/{namespace}/widgets");
    assert_string_equal(jstr(jpath(coll, "post", "x-kubernetes-action", NULL)), "post");
    assert_string_equal(jstr(jpath(coll, "get", "x-kubernetes-action", NULL)), "list");
    assert_true(param_named(jpath(coll, "post", "parameters", NULL), "fieldValidation"));
    assert_non_null(json_object_get(paths, "/apis/example.com/v1/widgets"));
    json_t *st = json_object_get(paths, "/apis/example.com/v1/namespaces/{namespace}/widgets/{name}/status");
    assert_string_equal(jstr(jpath(st, "patch", "x-kubernetes-group-version-kind", "kind", NULL)), "Widget");
    json_t *sc = json_object_get(paths, "/apis/example.com/v1/namespaces/{namespace}/widgets/{name}/scale");
    assert_string_equal(jstr(jpath(sc, "get", "x-kubernetes-group-version-kind", "kind", NULL)), "Scale");

    json_t *schemas = jpath(doc, "components", "schemas", NULL);
    json_t *w = json_object_get(schemas, "t.v1.Widget");
    assert_string_equal(jstr(jpath(w, "type", NULL)), "object");
    assert_string_equal(jstr(jpath(w, "x-kubernetes-group-version-kind", "0", "kind", NULL)), "Widget");
    assert_string_equal(jstr(jpath(w, "x-kubernetes-group-version-kind", "0", "version", NULL)), "v1");
    assert_string_equal(jstr(jpath(w, "properties", "spec", "allOf", "0", "$ref", NULL)),
                        "#/components/schemas/t.v1.WidgetSpec");
    assert_string_equal(jstr(jpath(w, "properties", "spec", "description", NULL)), "What the widget should be.");
    assert_string_equal(jstr(jpath(w, "properties", "metadata", "$ref", NULL)), "#/components/schemas/t.v1.Meta");
    assert_string_equal(jstr(jpath(schemas, "t.v1.WidgetList", "x-kubernetes-group-version-kind", "0", "kind", NULL)),
                        "WidgetList");

    json_t *spec = jpath(schemas, "t.v1.WidgetSpec", "properties", NULL);
    assert_string_equal(jstr(jpath(schemas, "t.v1.WidgetSpec", "required", "0", NULL)), "parts");
    assert_string_equal(jstr(jpath(spec, "replicas", "type", NULL)), "integer");
    assert_string_equal(jstr(jpath(spec, "replicas", "format", NULL)), "int32");
    assert_string_equal(jstr(jpath(spec, "big", "format", NULL)), "int64");
    assert_string_equal(jstr(jpath(spec, "on", "type", NULL)), "boolean");
    assert_string_equal(jstr(jpath(spec, "blob", "format", NULL)), "byte");
    json_t *parts = json_object_get(spec, "parts");
    assert_string_equal(jstr(jpath(parts, "type", NULL)), "array");
    assert_string_equal(jstr(jpath(parts, "items", "$ref", NULL)), "#/components/schemas/t.v1.Part");
    assert_string_equal(jstr(jpath(parts, "x-kubernetes-patch-merge-key", NULL)), "name");
    assert_string_equal(jstr(jpath(parts, "x-kubernetes-patch-strategy", NULL)), "merge");
    assert_string_equal(jstr(jpath(parts, "x-kubernetes-list-type", NULL)), "map");
    assert_string_equal(jstr(jpath(parts, "x-kubernetes-list-map-keys", "0", NULL)), "name");
    assert_string_equal(jstr(jpath(spec, "volumes", "x-kubernetes-patch-strategy", NULL)), "merge,retainKeys");
    assert_string_equal(jstr(jpath(spec, "byName", "type", NULL)), "object");
    assert_string_equal(jstr(jpath(spec, "byName", "additionalProperties", "$ref", NULL)),
                        "#/components/schemas/t.v1.Part");
    assert_string_equal(jstr(jpath(spec, "data", "additionalProperties", "format", NULL)), "byte");
    assert_string_equal(jstr(jpath(spec, "port", "$ref", NULL)),
                        "#/components/schemas/io.k8s.apimachinery.pkg.util.intstr.IntOrString");
    json_t *ios = json_object_get(schemas, "io.k8s.apimachinery.pkg.util.intstr.IntOrString");
    assert_string_equal(jstr(jpath(ios, "format", NULL)), "int-or-string");
    assert_string_equal(jstr(jpath(ios, "oneOf", "0", "type", NULL)), "integer");
    json_t *q = json_object_get(schemas, "io.k8s.apimachinery.pkg.api.resource.Quantity");
    assert_string_equal(jstr(jpath(q, "oneOf", "0", "type", NULL)), "string");
    json_t *tm = json_object_get(schemas, "io.k8s.apimachinery.pkg.apis.meta.v1.Time");
    assert_string_equal(jstr(jpath(tm, "format", NULL)), "date-time");
    assert_string_equal(jstr(jpath(schemas, "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime", "type", NULL)),
                        "string");
    assert_string_equal(jstr(jpath(schemas, "t.v1.Meta", "properties", "labels", "additionalProperties", "type",
                                   NULL)),
                        "string");
    assert_null(json_object_get(schemas, "t.v1.Gadget"));  /* not reachable from example.com/v1 */
    assert_refs_resolve(doc, doc);
    json_decref(doc);

    /* core group, cluster-scoped */
    doc = kc_openapi_v3_doc(s, "", "v1", kinds, 2);
    paths = json_object_get(doc, "paths");
    assert_non_null(json_object_get(paths, "/api/v1/gadgets/{name}"));
    assert_null(json_object_get(paths, "/api/v1/namespaces/{namespace}/gadgets"));
    assert_false(param_named(jpath(paths, "/api/v1/gadgets/{name}", "parameters", NULL), "namespace"));
    assert_string_equal(jstr(jpath(paths, "/api/v1/gadgets/{name}", "patch", "x-kubernetes-group-version-kind",
                                   "group", NULL)),
                        "");
    assert_string_equal(jstr(jpath(doc, "components", "schemas", "t.v1.Gadget", "required", "0", NULL)), "value");
    assert_refs_resolve(doc, doc);
    json_decref(doc);
    kc_schema_free(s);
}

static void test_openapi_v2_pb(void **state)
{
    size_t len = 0;
    const unsigned char *p = kc_openapi_v2_pb(&len);
    assert_int_equal(len, 5);
    assert_memory_equal(p, "\x0a\x03" "2.0", 5);
}

/* ---------- the embedded schema ---------- */

/* The kinds kubec serves: read from docs/schema-format.md's "Served kinds"
 * section (`group/version/Kind` in backticks) when it has one, else this list. */
static const char *const fallback_kinds[] = {
    "core/v1/Namespace", "core/v1/Pod", "core/v1/Service", "core/v1/ConfigMap", "core/v1/Secret",
    "core/v1/ServiceAccount", "core/v1/Event", "core/v1/Node", "apps/v1/Deployment", "apps/v1/ReplicaSet",
    "apps/v1/StatefulSet", "apps/v1/DaemonSet", "scheduling.k8s.io/v1/PriorityClass",
    "autoscaling/v1/Scale", "coordination.k8s.io/v1/Lease", NULL,
};

static size_t served_kinds_from_doc(char out[][128], size_t max)
{
    FILE *f = fopen(KC_SOURCE_DIR "/docs/schema-format.md", "r");
    if (!f)
        return 0;
    char line[1024];
    bool in = false;
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') {
            in = strstr(line, "erved kinds") != NULL;
            continue;
        }
        if (!in)
            continue;
        for (char *p = line; (p = strchr(p, '`')) && n < max;) {
            char *e = strchr(p + 1, '`');
            if (!e)
                break;
            size_t len = (size_t)(e - p - 1);
            int slashes = 0;
            for (char *c = p + 1; c < e; c++)
                slashes += *c == '/';
            if (slashes == 2 && len < 128) {
                memcpy(out[n], p + 1, len);
                out[n++][len] = '\0';
            }
            p = e + 1;
        }
    }
    fclose(f);
    return n;
}

static void test_default_schema(void **state)
{
    /* kc_schema_default aborts on a malformed embedded schema; parse it ourselves for a message */
    extern const char kc_schema_text[];
    extern const size_t kc_schema_text_len;
    struct kc_schema *own = NULL;
    struct kc_err err = {0};
    if (kc_schema_parse(kc_schema_text, kc_schema_text_len, &own, &err) != 0)
        fail_msg("embedded schema does not parse: %s", err.message);
    kc_schema_free(own);

    const struct kc_schema *s = kc_schema_default();
    assert_non_null(s);
    assert_ptr_equal(kc_schema_default(), s);  /* parsed once */

    static char kinds[256][128];
    size_t n = served_kinds_from_doc(kinds, 256);
    if (n == 0)
        for (; fallback_kinds[n]; n++)
            snprintf(kinds[n], sizeof kinds[n], "%s", fallback_kinds[n]);
    size_t found = 0;
    for (size_t i = 0; i < n; i++) {
        char g[128];
        snprintf(g, sizeof g, "%s", kinds[i]);
        char *v = strchr(g, '/');
        *v++ = '\0';
        char *k = strchr(v, '/');
        *k++ = '\0';
        const struct kc_type *t = kc_schema_kind(s, g, v, k);
        if (!t) {
            print_message("note: served kind %s not (yet) described\n", kinds[i]);
            continue;
        }
        found++;
        assert_string_equal(t->kind, k);
        assert_non_null(kc_type_field(t, "metadata"));
    }
    assert_true(found > 0);

    /* what the request path relies on in the real schema */
    const struct kc_type *pod = kc_schema_type(s, "io.k8s.api.core.v1.PodSpec");
    assert_non_null(pod);
    const struct kc_field *c = kc_type_field(pod, "containers");
    assert_non_null(c);
    assert_string_equal(c->merge_key, "name");
    assert_true(c->strategy & KC_PS_MERGE);

    /* omitempty marks follow upstream's Go types: non-pointer omitempty
     * numbers/bools are marked, pointers (*int32 replicas) and fields without
     * omitempty (containerPort) are not */
    static const struct { const char *type, *field; bool want; } oe[] = {
        {"io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "generation", true},
        {"io.k8s.api.core.v1.ContainerPort", "hostPort", true},
        {"io.k8s.api.core.v1.ContainerPort", "containerPort", false},
        {"io.k8s.api.core.v1.Container", "stdin", true},
        {"io.k8s.api.core.v1.EphemeralContainer", "tty", true},
        {"io.k8s.api.apps.v1.DeploymentStatus", "availableReplicas", true},
        {"io.k8s.api.apps.v1.DeploymentSpec", "replicas", false},
        {"io.k8s.api.apps.v1.DeploymentSpec", "paused", true},
        {"io.k8s.api.core.v1.PodSpec", "terminationGracePeriodSeconds", false},
        {"io.k8s.api.scheduling.v1.PriorityClass", "value", false},
    };
    for (size_t i = 0; i < sizeof oe / sizeof oe[0]; i++) {
        const struct kc_type *t = kc_schema_type(s, oe[i].type);
        const struct kc_field *f = t ? kc_type_field(t, oe[i].field) : NULL;
        if (!f)
            fail_msg("%s.%s not described", oe[i].type, oe[i].field);
        if (kc_field_omitempty(t, f) != oe[i].want)
            fail_msg("%s.%s: omitempty should be %d", oe[i].type, oe[i].field, oe[i].want);
    }

    /* a typical Deployment passes the check; a typo is reported with upstream's path */
    const struct kc_type *dt = kc_schema_kind(s, "apps", "v1", "Deployment");
    if (dt) {
        json_error_t je;
        json_t *obj = json_loads(
            "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\",\"namespace\":"
            "\"default\",\"labels\":{\"app\":\"web\"},\"annotations\":{\"a\":\"b\"}},\"spec\":{\"replicas\":3,"
            "\"selector\":{\"matchLabels\":{\"app\":\"web\"}},\"strategy\":{\"type\":\"RollingUpdate\","
            "\"rollingUpdate\":{\"maxSurge\":\"25%\",\"maxUnavailable\":1}},\"template\":{\"metadata\":{"
            "\"labels\":{\"app\":\"web\"}},\"spec\":{\"containers\":[{\"name\":\"nginx\",\"image\":"
            "\"nginx:1.25\",\"imagePullPolicyy\":\"Always\",\"ports\":[{\"containerPort\":80,\"protocol\":"
            "\"TCP\"}],\"resources\":{\"limits\":{\"cpu\":\"500m\",\"memory\":\"128Mi\"},\"requests\":{"
            "\"cpu\":0.25}},\"readinessProbe\":{\"httpGet\":{\"path\":\"/\",\"port\":80}},\"env\":[{"
            "\"name\":\"A\",\"value\":\"1\"}]}]}}}}",
            0, &je);
        assert_non_null(obj);
        json_t *unknown = json_array(), *errs = json_array();
        kc_schema_check(s, dt, obj, unknown, errs);
        if (json_array_size(errs))
            fail_msg("type errors: %s", json_dumps(errs, 0));
        if (json_array_size(unknown) != 1 ||
            !array_has_string(unknown, "unknown field \"spec.template.spec.containers[0].imagePullPolicyy\""))
            fail_msg("unknown: %s", json_dumps(unknown, 0));
        json_decref(unknown);
        json_decref(errs);
        json_decref(obj);
    }

    /* the apps/v1 document: every $ref resolves, and kubectl finds the Deployment by gvk */
    static const char *const subs[] = {"status", "scale", NULL};
    struct kc_openapi_kind dep = {"apps", "v1", "Deployment", "deployments", true, subs};
    json_t *doc = kc_openapi_v3_doc(s, "apps", "v1", &dep, 1);
    assert_refs_resolve(doc, doc);
    json_t *d = jpath(doc, "components", "schemas", "io.k8s.api.apps.v1.Deployment", NULL);
    assert_string_equal(jstr(jpath(d, "x-kubernetes-group-version-kind", "0", "kind", NULL)), "Deployment");
    json_t *ps = jpath(doc, "components", "schemas", "io.k8s.api.core.v1.PodSpec", "properties", "containers", NULL);
    assert_string_equal(jstr(jpath(ps, "x-kubernetes-patch-merge-key", NULL)), "name");
    assert_non_null(jpath(doc, "components", "schemas", "io.k8s.api.apps.v1.DeploymentStrategy", NULL));
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_crlf_comments_and_tabs),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_inline),
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_patch_ops),
        cmocka_unit_test(test_patch_ops_with_smp),
        cmocka_unit_test(test_prune),
        cmocka_unit_test(test_check_unknown_fields),
        cmocka_unit_test(test_check_types),
        cmocka_unit_test(test_check_caps_at_100),
        cmocka_unit_test(test_openapi_shape),
        cmocka_unit_test(test_openapi_v2_pb),
        cmocka_unit_test(test_default_schema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
