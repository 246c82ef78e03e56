/* test_patch.c — table-driven tests of the four PATCH flavours.
 *
 * The strategic-merge cases are the bodies kubectl really sends for
 * Deployments (set image, rollout resume/pause, set env, apply), checked
 * against a small fake schema with upstream's merge keys and strategies:
 * containers by name, env by name, ports by containerPort, volumeMounts by
 * mountPath, volumes by name (+retainKeys), conditions by type,
 * ownerReferences by uid, finalizers as a primitive set, tolerations atomic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "patch/patch.h"

/* ---- fake schema ---------------------------------------------------- */

struct fdef;
struct ftype {
    const char *name;
    const struct fdef *fields;
};
struct fdef {
    const char *field;
    const struct ftype *type;
    unsigned strategy;
    const char *key;
};

static const struct ftype t_objectmeta, t_spec, t_status, t_template, t_podspec, t_container, t_volume;

static const struct fdef f_deployment[] = {
    {"metadata", &t_objectmeta, 0, NULL},
    {"spec", &t_spec, 0, NULL},
    {"status", &t_status, 0, NULL},
    {0}};
static const struct fdef f_objectmeta[] = {
    {"finalizers", NULL, KC_PS_MERGE, NULL},
    {"ownerReferences", NULL, KC_PS_MERGE, "uid"},
    {"labels", NULL, 0, NULL},
    {0}};
static const struct fdef f_spec[] = {
    {"template", &t_template, 0, NULL},
    {"strategy", NULL, KC_PS_RETAIN_KEYS, NULL},
    {"selector", NULL, KC_PS_REPLACE_MAP, NULL}, /* as policy/v1 PDB spec.selector */
    {0}};
static const struct fdef f_status[] = {{"conditions", NULL, KC_PS_MERGE, "type"}, {0}};
static const struct fdef f_template[] = {{"metadata", &t_objectmeta, 0, NULL}, {"spec", &t_podspec, 0, NULL}, {0}};
static const struct fdef f_podspec[] = {
    {"containers", &t_container, KC_PS_MERGE, "name"},
    {"initContainers", &t_container, KC_PS_MERGE, "name"},
    {"volumes", &t_volume, KC_PS_MERGE | KC_PS_RETAIN_KEYS, "name"},
    {"tolerations", NULL, 0, NULL},
    {0}};
static const struct fdef f_container[] = {
    {"env", NULL, KC_PS_MERGE, "name"},
    {"ports", NULL, KC_PS_MERGE, "containerPort"},
    {"volumeMounts", NULL, KC_PS_MERGE, "mountPath"},
    {"args", NULL, 0, NULL},
    {0}};
static const struct fdef f_volume[] = {{0}};

static const struct ftype t_deployment = {"Deployment", f_deployment};
static const struct ftype t_objectmeta = {"ObjectMeta", f_objectmeta};
static const struct ftype t_spec = {"DeploymentSpec", f_spec};
static const struct ftype t_status = {"DeploymentStatus", f_status};
static const struct ftype t_template = {"PodTemplateSpec", f_template};
static const struct ftype t_podspec = {"PodSpec", f_podspec};
static const struct ftype t_container = {"Container", f_container};
static const struct ftype t_volume = {"Volume", f_volume};

static const struct fdef *find_field(const void *type, const char *field)
{
    for (const struct fdef *f = ((const struct ftype *)type)->fields; f->field; f++)
        if (!strcmp(f->field, field))
            return f;
    return NULL;
}

static const void *fs_field_type(void *ctx, const void *type, const char *field)
{
    (void)ctx;
    const struct fdef *f = find_field(type, field);
    return f ? f->type : NULL;
}

static unsigned fs_field_strategy(void *ctx, const void *type, const char *field)
{
    (void)ctx;
    const struct fdef *f = find_field(type, field);
    return f ? f->strategy : 0;
}

static const char *fs_merge_key(void *ctx, const void *type, const char *field)
{
    (void)ctx;
    const struct fdef *f = find_field(type, field);
    return f ? f->key : NULL;
}

static const struct kc_patch_schema fake_schema = {NULL, fs_field_type, fs_field_strategy, fs_merge_key};

/* ---- helpers ---------------------------------------------------------- */

static json_t *J(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
    if (!v)
        fail_msg("bad test JSON (%s): %s", e.text, text);
    return v;
}

static void assert_json_eq(json_t *got, const char *want_text, const char *name)
{
    json_t *want = J(want_text);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        char *w = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        print_error("case %s:\n got  %s\n want %s\n", name, g, w);
        free(g);
        free(w);
        json_decref(want);
        fail();
    }
    json_decref(want);
}

enum flavour { MERGE, MERGE_SHARED, JSONP, SMP, SMP_NOSCHEMA };

struct tcase {
    const char *name;
    const char *orig;
    const char *patch;
    const char *want;      /* expected result when code == 0 */
    int code;              /* expected HTTP status of the failure, 0 = success */
    const char *msg_part;  /* substring the error message must contain */
};

static int run_one(enum flavour f, json_t *o, json_t *p, json_t **out, struct kc_err *err)
{
    switch (f) {
    case MERGE: return kc_merge_patch(o, p, out, err);
    case MERGE_SHARED: return kc_merge_patch_shared(o, p, out, err);
    case JSONP: return kc_json_patch(o, p, out, err);
    case SMP: return kc_strategic_merge_patch(o, p, &fake_schema, &t_deployment, out, err);
    default: return kc_strategic_merge_patch(o, p, NULL, NULL, out, err);
    }
}

static void run_cases(enum flavour f, const struct tcase *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct tcase *c = &cases[i];
        json_t *o = J(c->orig), *p = J(c->patch), *out = NULL;
        char *o_before = json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY);
        char *p_before = json_dumps(p, JSON_COMPACT | JSON_ENCODE_ANY);
        struct kc_err err = {0};
        int rc = run_one(f, o, p, &out, &err);
        if (c->code == 0) {
            if (rc != 0)
                fail_msg("case %s: unexpected error %d %s: %s", c->name, err.code, err.reason, err.message);
            assert_json_eq(out, c->want, c->name);
        } else {
            if (rc == 0) {
                char *g = json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY);
                fail_msg("case %s: expected failure %d, got success %s", c->name, c->code, g);
            }
            if (err.code != c->code)
                fail_msg("case %s: code %d want %d (%s)", c->name, err.code, c->code, err.message);
            assert_null(out);
            if (c->msg_part && !strstr(err.message, c->msg_part))
                fail_msg("case %s: message \"%s\" lacks \"%s\"", c->name, err.message, c->msg_part);
        }
        /* inputs are never modified */
        char *o_after = json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY);
        char *p_after = json_dumps(p, JSON_COMPACT | JSON_ENCODE_ANY);
        if (strcmp(o_before, o_after) || strcmp(p_before, p_after))
            fail_msg("case %s: inputs were modified", c->name);
        free(o_before);
        free(p_before);
        free(o_after);
        free(p_after);
        json_decref(o);
        json_decref(p);
        json_decref(out);
    }
}

#define RUN(f, cases) run_cases(f, cases, sizeof cases / sizeof cases[0])

/* ---- JSON merge patch --------------------------------------------------- */

static void test_merge_patch(void **state)
{
    (void)state;
    static const struct tcase cases[] = {
        {"rollout resume: null deletes", "{\"spec\":{\"paused\":true,\"replicas\":2}}", "{\"spec\":{\"paused\":null}}",
         "{\"spec\":{\"replicas\":2}}", 0, NULL},
        {"scale: scalar replaces", "{\"spec\":{\"replicas\":2}}", "{\"spec\":{\"replicas\":5}}",
         "{\"spec\":{\"replicas\":5}}", 0, NULL},
        {"lists are replaced", "{\"a\":[1,2,3]}", "{\"a\":[4]}", "{\"a\":[4]}", 0, NULL},
        {"nested objects merge", "{\"m\":{\"labels\":{\"a\":\"1\",\"b\":\"2\"}}}",
         "{\"m\":{\"labels\":{\"b\":null,\"c\":\"3\"}}}", "{\"m\":{\"labels\":{\"a\":\"1\",\"c\":\"3\"}}}", 0, NULL},
        {"nulls pruned from new values", "{}", "{\"a\":{\"b\":null,\"c\":{\"d\":null,\"e\":1}}}",
         "{\"a\":{\"c\":{\"e\":1}}}", 0, NULL},
        {"nulls pruned inside arrays of new values", "{}", "{\"a\":[{\"x\":null,\"y\":1},null]}",
         "{\"a\":[{\"y\":1},null]}", 0, NULL},
        {"object replaces scalar", "{\"a\":1}", "{\"a\":{\"b\":1,\"c\":null}}", "{\"a\":{\"b\":1}}", 0, NULL},
        {"deleting an absent key is a no-op", "{\"a\":1}", "{\"zzz\":null}", "{\"a\":1}", 0, NULL},
        {"empty patch", "{\"a\":1}", "{}", "{\"a\":1}", 0, NULL},
        {"array patch becomes the document", "{\"a\":1}", "[1,2]", "[1,2]", 0, NULL},
        {"null patch is refused", "{\"a\":1}", "null", NULL, 400, "Invalid JSON Patch"},
        {"scalar patch is refused", "{\"a\":1}", "\"x\"", NULL, 400, "Invalid JSON Patch"},
    };
    RUN(MERGE, cases);
    RUN(MERGE_SHARED, cases); /* the same results, and the original unchanged, with shared subtrees */
}

static json_t *kc_jget_test(json_t *doc, const char *status_key)
{
    return json_object_get(json_object_get(doc, "status"), status_key);
}

/* kc_merge_patch_shared copies only what the patch touches */
static void test_merge_patch_shared_shares(void **state)
{
    (void)state;
    json_t *o = J("{\"status\":{\"phase\":\"Pending\",\"conditions\":[{\"type\":\"A\"}]},\"spec\":{\"x\":{\"y\":1}}}");
    json_t *p = J("{\"status\":{\"phase\":\"Running\"}}"), *out = NULL;
    struct kc_err err = {0};
    assert_int_equal(kc_merge_patch_shared(o, p, &out, &err), 0);
    assert_ptr_equal(json_object_get(out, "spec"), json_object_get(o, "spec"));
    assert_ptr_equal(kc_jget_test(out, "conditions"), kc_jget_test(o, "conditions"));
    assert_ptr_not_equal(json_object_get(out, "status"), json_object_get(o, "status"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "status"), "phase")), "Pending");
    assert_string_equal(json_string_value(json_object_get(json_object_get(out, "status"), "phase")), "Running");
    json_decref(out);
    json_decref(o);
    json_decref(p);
}

/* ---- JSON patch ----------------------------------------------------------- */

#define DOC "{\"metadata\":{\"name\":\"web\",\"resourceVersion\":\"41\",\"annotations\":{\"a/b\":\"1\",\"c~d\":\"2\"}},\"spec\":{\"replicas\":1,\"l\":[\"a\",\"b\",\"c\"]}}"

static void test_json_patch_ops(void **state)
{
    (void)state;
    static const struct tcase cases[] = {
        {"add member", "{\"a\":1}", "[{\"op\":\"add\",\"path\":\"/b\",\"value\":{\"c\":2}}]", "{\"a\":1,\"b\":{\"c\":2}}",
         0, NULL},
        {"add replaces existing member", "{\"a\":1}", "[{\"op\":\"add\",\"path\":\"/a\",\"value\":2}]", "{\"a\":2}", 0,
         NULL},
        {"add inserts at index", "{\"l\":[1,2]}", "[{\"op\":\"add\",\"path\":\"/l/1\",\"value\":9}]", "{\"l\":[1,9,2]}",
         0, NULL},
        {"add at index == length appends", "{\"l\":[1,2]}", "[{\"op\":\"add\",\"path\":\"/l/2\",\"value\":9}]",
         "{\"l\":[1,2,9]}", 0, NULL},
        {"add - appends", "{\"l\":[1,2]}", "[{\"op\":\"add\",\"path\":\"/l/-\",\"value\":3}]", "{\"l\":[1,2,3]}", 0,
         NULL},
        {"add without value adds null", "{}", "[{\"op\":\"add\",\"path\":\"/a\"}]", "{\"a\":null}", 0, NULL},
        {"add past the end fails", "{\"l\":[1,2]}", "[{\"op\":\"add\",\"path\":\"/l/3\",\"value\":9}]", NULL, 422,
         "error in add for path: '/l/3'"},
        {"add with a non-number index fails", "{\"l\":[1]}", "[{\"op\":\"add\",\"path\":\"/l/x\",\"value\":9}]", NULL,
         422, "/l/x"},
        {"add under a missing parent fails", "{}", "[{\"op\":\"add\",\"path\":\"/a/b\",\"value\":1}]", NULL, 422,
         "add operation does not apply: doc is missing path: \"/a/b\""},
        {"add to root fails", "{}", "[{\"op\":\"add\",\"path\":\"\",\"value\":{}}]", NULL, 422, "add operation"},
        {"remove member", "{\"a\":1,\"b\":2}", "[{\"op\":\"remove\",\"path\":\"/a\"}]", "{\"b\":2}", 0, NULL},
        {"remove element", "{\"l\":[1,2,3]}", "[{\"op\":\"remove\",\"path\":\"/l/0\"}]", "{\"l\":[2,3]}", 0, NULL},
        {"remove -1 removes the last element", "{\"l\":[1,2,3]}", "[{\"op\":\"remove\",\"path\":\"/l/-1\"}]",
         "{\"l\":[1,2]}", 0, NULL},
        {"remove missing member fails", "{\"a\":1}", "[{\"op\":\"remove\",\"path\":\"/b\"}]", NULL, 422,
         "error in remove for path: '/b'"},
        {"remove out of range fails", "{\"l\":[1]}", "[{\"op\":\"remove\",\"path\":\"/l/1\"}]", NULL, 422,
         "invalid index"},
        {"remove too negative fails", "{\"l\":[1]}", "[{\"op\":\"remove\",\"path\":\"/l/-2\"}]", NULL, 422,
         "invalid index"},
        {"replace resourceVersion (precondition) like any field", DOC,
         "[{\"op\":\"replace\",\"path\":\"/metadata/resourceVersion\",\"value\":\"40\"}]",
         "{\"metadata\":{\"name\":\"web\",\"resourceVersion\":\"40\",\"annotations\":{\"a/b\":\"1\",\"c~d\":\"2\"}},"
         "\"spec\":{\"replicas\":1,\"l\":[\"a\",\"b\",\"c\"]}}",
         0, NULL},
        {"replace element", "{\"l\":[1,2]}", "[{\"op\":\"replace\",\"path\":\"/l/1\",\"value\":7}]", "{\"l\":[1,7]}", 0,
         NULL},
        {"replace out of range fails", "{\"l\":[1,2]}", "[{\"op\":\"replace\",\"path\":\"/l/2\",\"value\":7}]", NULL,
         422, "replace operation does not apply: doc is missing key: /l/2"},
        {"replace of a missing member adds it (json-patch v4)", "{}",
         "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":1}]", "{\"a\":1}", 0, NULL},
        {"replace the whole document", "{\"a\":1}", "[{\"op\":\"replace\",\"path\":\"\",\"value\":{\"b\":2}}]",
         "{\"b\":2}", 0, NULL},
        {"replace under a missing parent fails", "{}", "[{\"op\":\"replace\",\"path\":\"/x/y\",\"value\":1}]", NULL,
         422, "/x/y"},
        {"move member", "{\"a\":{\"x\":1},\"b\":{}}", "[{\"op\":\"move\",\"from\":\"/a/x\",\"path\":\"/b/y\"}]",
         "{\"a\":{},\"b\":{\"y\":1}}", 0, NULL},
        {"move within an array", "{\"l\":[1,2,3]}", "[{\"op\":\"move\",\"from\":\"/l/0\",\"path\":\"/l/-\"}]",
         "{\"l\":[2,3,1]}", 0, NULL},
        {"move from a missing member fails", "{}", "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/b\"}]", NULL, 422,
         "move"},
        {"move without from fails", "{}", "[{\"op\":\"move\",\"path\":\"/b\"}]", NULL, 422, "from"},
        {"move into itself fails", "{\"a\":{}}", "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a/b\"}]", NULL, 422,
         "missing destination path: /a/b"},
        {"copy member", "{\"a\":{\"x\":[1]}}", "[{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/b\"}]",
         "{\"a\":{\"x\":[1]},\"b\":{\"x\":[1]}}", 0, NULL},
        {"copy is deep (later change leaves the source alone)", "{\"a\":{\"x\":1}}",
         "[{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/b\"},{\"op\":\"replace\",\"path\":\"/b/x\",\"value\":2}]",
         "{\"a\":{\"x\":1},\"b\":{\"x\":2}}", 0, NULL},
        {"copy into an array index", "{\"l\":[1,2]}", "[{\"op\":\"copy\",\"from\":\"/l/1\",\"path\":\"/l/0\"}]",
         "{\"l\":[2,1,2]}", 0, NULL},
        {"copy from out of range fails", "{\"l\":[1]}", "[{\"op\":\"copy\",\"from\":\"/l/5\",\"path\":\"/x\"}]", NULL,
         422, "invalid index"},
        {"test passes", DOC, "[{\"op\":\"test\",\"path\":\"/spec/l\",\"value\":[\"a\",\"b\",\"c\"]}]", DOC, 0, NULL},
        {"test fails", DOC, "[{\"op\":\"test\",\"path\":\"/metadata/resourceVersion\",\"value\":\"40\"},"
                            "{\"op\":\"replace\",\"path\":\"/spec/replicas\",\"value\":3}]",
         NULL, 422, "testing value /metadata/resourceVersion failed"},
        {"test of a number is type-exact", "{\"a\":1}", "[{\"op\":\"test\",\"path\":\"/a\",\"value\":\"1\"}]", NULL,
         422, "test failed"},
        {"test missing member against a value fails", "{}", "[{\"op\":\"test\",\"path\":\"/a\",\"value\":1}]", NULL,
         422, "/a"},
        {"test whole document", "{\"a\":1}", "[{\"op\":\"test\",\"path\":\"\",\"value\":{\"a\":1}}]", "{\"a\":1}", 0,
         NULL},
        {"test out of range fails", "{\"l\":[]}", "[{\"op\":\"test\",\"path\":\"/l/0\",\"value\":1}]", NULL, 422,
         "error in test for path: '/l/0'"},
        {"ops apply in order", "{}",
         "[{\"op\":\"add\",\"path\":\"/a\",\"value\":[]},{\"op\":\"add\",\"path\":\"/a/-\",\"value\":1},"
         "{\"op\":\"add\",\"path\":\"/a/0\",\"value\":0},{\"op\":\"test\",\"path\":\"/a\",\"value\":[0,1]}]",
         "{\"a\":[0,1]}", 0, NULL},
        {"null patch is no change", "{\"a\":1}", "null", "{\"a\":1}", 0, NULL},
        {"empty patch", "{\"a\":1}", "[]", "{\"a\":1}", 0, NULL},
    };
    RUN(JSONP, cases);
}

static void test_json_patch_pointer_escapes(void **state)
{
    (void)state;
    static const struct tcase cases[] = {
        {"~1 is a slash", DOC, "[{\"op\":\"replace\",\"path\":\"/metadata/annotations/a~1b\",\"value\":\"x\"}]",
         "{\"metadata\":{\"name\":\"web\",\"resourceVersion\":\"41\",\"annotations\":{\"a/b\":\"x\",\"c~d\":\"2\"}},"
         "\"spec\":{\"replicas\":1,\"l\":[\"a\",\"b\",\"c\"]}}",
         0, NULL},
        {"~0 is a tilde", DOC, "[{\"op\":\"remove\",\"path\":\"/metadata/annotations/c~0d\"}]",
         "{\"metadata\":{\"name\":\"web\",\"resourceVersion\":\"41\",\"annotations\":{\"a/b\":\"1\"}},"
         "\"spec\":{\"replicas\":1,\"l\":[\"a\",\"b\",\"c\"]}}",
         0, NULL},
        {"~01 is ~1 literally", "{}", "[{\"op\":\"add\",\"path\":\"/~01\",\"value\":1}]", "{\"~1\":1}", 0, NULL},
        {"escapes in intermediate tokens", "{\"a/b\":{\"c\":1}}", "[{\"op\":\"remove\",\"path\":\"/a~1b/c\"}]",
         "{\"a/b\":{}}", 0, NULL},
        {"empty token names the empty key", "{}", "[{\"op\":\"add\",\"path\":\"/\",\"value\":1}]", "{\"\":1}", 0,
         NULL},
        {"an unescaped slash is a separator", DOC, "[{\"op\":\"remove\",\"path\":\"/metadata/annotations/a/b\"}]",
         NULL, 422, "a/b"},
    };
    RUN(JSONP, cases);
}

static void test_json_patch_malformed(void **state)
{
    (void)state;
    static const struct tcase cases[] = {
        /* the JS client sends a merge-style object by default: upstream 400 */
        {"object instead of array", "{}", "{\"op\":\"add\",\"path\":\"/a\",\"value\":1}", NULL, 400, "unmarshal"},
        {"string instead of array", "{}", "\"x\"", NULL, 400, NULL},
        {"op not an object", "{}", "[1]", NULL, 400, NULL},
        {"unknown op", "{}", "[{\"op\":\"frobnicate\",\"path\":\"/a\"}]", NULL, 422, "Unexpected kind: frobnicate"},
        {"missing op", "{}", "[{\"path\":\"/a\"}]", NULL, 422, "Unexpected kind: unknown"},
        {"missing path", "{}", "[{\"op\":\"add\",\"value\":1}]", NULL, 422, "add operation failed to decode path"},
        {"path without leading slash", "{}", "[{\"op\":\"add\",\"path\":\"a\",\"value\":1}]", NULL, 422,
         "missing path"},
    };
    RUN(JSONP, cases);
}

static void test_json_patch_reason_and_limits(void **state)
{
    (void)state;
    struct kc_err err = {0};
    json_t *o = J("{\"a\":1}"), *out = NULL;
    json_t *p = J("[{\"op\":\"test\",\"path\":\"/a\",\"value\":2}]");
    assert_int_equal(kc_json_patch(o, p, &out, &err), KC_EINVALID);
    assert_string_equal(err.reason, "Invalid");
    json_decref(p);

    p = J("{}");
    assert_int_equal(kc_json_patch(o, p, &out, &err), KC_EINVAL);
    assert_string_equal(err.reason, "BadRequest");
    json_decref(p);

    /* more than 10000 operations: 413 before anything is applied */
    p = json_array();
    for (int i = 0; i < 10001; i++)
        json_array_append_new(p, J("{\"op\":\"test\",\"path\":\"/a\",\"value\":1}"));
    assert_int_equal(kc_json_patch(o, p, &out, &err), KC_ETOOLARGE);
    assert_int_equal(err.code, 413);
    json_array_remove(p, 0);
    assert_int_equal(kc_json_patch(o, p, &out, &err), 0);
    json_decref(out);
    json_decref(p);

    /* copies may add at most 3 MiB */
    json_t *big = json_object();
    char *s = malloc(1024 * 1024 + 1); /* 3 copies fit in 3 MiB, 4 do not */
    memset(s, 'x', 1024 * 1024 - 16);
    s[1024 * 1024 - 16] = '\0';
    json_object_set_new(big, "s", json_string(s));
    free(s);
    p = json_array();
    for (int i = 0; i < 4; i++) {
        char path[32];
        snprintf(path, sizeof path, "/c%d", i);
        json_array_append_new(p, json_pack("{s:s,s:s,s:s}", "op", "copy", "from", "/s", "path", path));
    }
    assert_int_equal(kc_json_patch(big, p, &out, &err), KC_EINVALID);
    assert_non_null(strstr(err.message, "accumulated size"));
    json_array_remove(p, 3);
    assert_int_equal(kc_json_patch(big, p, &out, &err), 0);
    assert_int_equal(json_object_size(out), 4);
    json_decref(out);
    json_decref(p);
    json_decref(big);
    json_decref(o);
}

/* ---- strategic merge patch ------------------------------------------------ */

#define DEPLOY                                                                                                     \
    "{\"metadata\":{\"name\":\"web\",\"finalizers\":[\"a\",\"b\"],\"labels\":{\"app\":\"web\",\"tier\":\"fe\"},"     \
    "\"ownerReferences\":[{\"uid\":\"u1\",\"name\":\"o1\"},{\"uid\":\"u2\",\"name\":\"o2\"}]},"                     \
    "\"spec\":{\"replicas\":2,\"paused\":true,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},"                   \
    "\"strategy\":{\"type\":\"RollingUpdate\",\"rollingUpdate\":{\"maxSurge\":1}},"                                \
    "\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"}},\"spec\":{"                                          \
    "\"tolerations\":[{\"key\":\"k1\",\"operator\":\"Exists\"}],"                                                  \
    "\"volumes\":[{\"name\":\"data\",\"emptyDir\":{}}],"                                                           \
    "\"containers\":[{\"name\":\"web\",\"image\":\"nginx:1.25\","                                                  \
    "\"env\":[{\"name\":\"A\",\"value\":\"1\"},{\"name\":\"B\",\"value\":\"2\"}],"                                 \
    "\"ports\":[{\"containerPort\":80,\"protocol\":\"TCP\"}],"                                                     \
    "\"volumeMounts\":[{\"mountPath\":\"/data\",\"name\":\"data\"}]},"                                             \
    "{\"name\":\"sidecar\",\"image\":\"envoy:1\"}]}}},"                                                            \
    "\"status\":{\"conditions\":[{\"type\":\"Available\",\"status\":\"True\"},"                                    \
    "{\"type\":\"Progressing\",\"status\":\"True\"}]}}"

/* Builds the expected document: DEPLOY with a merge patch applied (tests
 * state the change they expect as a small merge patch on the fixture). */
static char *expect(const char *merge_patch)
{
    json_t *o = J(DEPLOY), *p = J(merge_patch), *out = NULL;
    struct kc_err err;
    assert_int_equal(kc_merge_patch(o, p, &out, &err), 0);
    char *s = json_dumps(out, JSON_COMPACT);
    json_decref(o);
    json_decref(p);
    json_decref(out);
    return s;
}

struct smpcase {
    const char *name;
    const char *patch;
    const char *want_merge; /* the expected result as a merge patch on DEPLOY */
    int code;
    const char *msg_part;
};

#define TPL(x) "{\"spec\":{\"template\":{\"spec\":" x "}}}"
#define C_WEB_1_25                                                                                                 \
    "{\"name\":\"web\",\"image\":\"nginx:1.25\",\"env\":[{\"name\":\"A\",\"value\":\"1\"},{\"name\":\"B\",\"value\":\"2\"}]," \
    "\"ports\":[{\"containerPort\":80,\"protocol\":\"TCP\"}],\"volumeMounts\":[{\"mountPath\":\"/data\",\"name\":\"data\"}]}"
#define C_WEB(env, ports, mounts)                                                                                  \
    "{\"name\":\"web\",\"image\":\"nginx:1.25\",\"env\":" env ",\"ports\":" ports ",\"volumeMounts\":" mounts "}"
#define ENV0 "[{\"name\":\"A\",\"value\":\"1\"},{\"name\":\"B\",\"value\":\"2\"}]"
#define PORTS0 "[{\"containerPort\":80,\"protocol\":\"TCP\"}]"
#define MOUNTS0 "[{\"mountPath\":\"/data\",\"name\":\"data\"}]"
#define C_SIDECAR "{\"name\":\"sidecar\",\"image\":\"envoy:1\"}"

static void run_smp_cases(const struct smpcase *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct smpcase *c = &cases[i];
        char *want = c->code ? NULL : expect(c->want_merge);
        struct tcase t = {c->name, DEPLOY, c->patch, want, c->code, c->msg_part};
        run_cases(SMP, &t, 1);
        free(want);
    }
}

static void test_smp_kubectl_deployments(void **state)
{
    (void)state;
    static const struct smpcase cases[] = {
        {"kubectl set image",
         TPL("{\"$setElementOrder/containers\":[{\"name\":\"web\"},{\"name\":\"sidecar\"}],"
             "\"containers\":[{\"image\":\"nginx:1.27\",\"name\":\"web\"}]}"),
         TPL("{\"containers\":[{\"name\":\"web\",\"image\":\"nginx:1.27\",\"env\":" ENV0 ",\"ports\":" PORTS0
             ",\"volumeMounts\":" MOUNTS0 "}," C_SIDECAR "]}"),
         0, NULL},
        {"kubectl rollout resume", "{\"spec\":{\"paused\":null}}", "{\"spec\":{\"paused\":null}}", 0, NULL},
        {"kubectl rollout pause", "{\"spec\":{\"paused\":true}}", "{}", 0, NULL},
        {"kubectl scale", "{\"spec\":{\"replicas\":5}}", "{\"spec\":{\"replicas\":5}}", 0, NULL},
        {"kubectl label (map merge, null deletes)", "{\"metadata\":{\"labels\":{\"tier\":null,\"env\":\"prod\"}}}",
         "{\"metadata\":{\"labels\":{\"tier\":null,\"env\":\"prod\"}}}", 0, NULL},
    };
    run_smp_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_smp_set_image_exact(void **state)
{
    (void)state;
    /* the exact body of `kubectl set image deploy/web web=nginx:1.27` */
    json_t *o = J(DEPLOY), *out = NULL;
    json_t *p = J("{\"spec\":{\"template\":{\"spec\":{\"$setElementOrder/containers\":[{\"name\":\"web\"}],"
                  "\"containers\":[{\"image\":\"nginx:1.27\",\"name\":\"web\"}]}}}}");
    struct kc_err err;
    assert_int_equal(kc_strategic_merge_patch(o, p, &fake_schema, &t_deployment, &out, &err), 0);
    json_t *cs = json_object_get(json_object_get(json_object_get(json_object_get(out, "spec"), "template"), "spec"),
                                 "containers");
    assert_int_equal(json_array_size(cs), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(cs, 0), "name")), "web");
    assert_string_equal(json_string_value(json_object_get(json_array_get(cs, 0), "image")), "nginx:1.27");
    /* the rest of the container survives the merge */
    assert_int_equal(json_array_size(json_object_get(json_array_get(cs, 0), "env")), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(cs, 1), "name")), "sidecar");
    /* nothing else changed */
    json_object_set_new(json_array_get(cs, 0), "image", json_string("nginx:1.25"));
    assert_true(json_equal(out, o));
    json_decref(out);
    json_decref(o);
    json_decref(p);
}

static void test_smp_lists(void **state)
{
    (void)state;
    static const struct smpcase cases[] = {
        {"env merged by name, order kept",
         TPL("{\"containers\":[{\"name\":\"web\",\"$setElementOrder/env\":[{\"name\":\"A\"},{\"name\":\"B\"}],"
             "\"env\":[{\"name\":\"B\",\"value\":\"3\"}]}]}"),
         TPL("{\"containers\":[" C_WEB("[{\"name\":\"A\",\"value\":\"1\"},{\"name\":\"B\",\"value\":\"3\"}]", PORTS0,
                                       MOUNTS0) "," C_SIDECAR "]}"),
         0, NULL},
        {"env added with order (kubectl set env)",
         TPL("{\"containers\":[{\"name\":\"web\",\"$setElementOrder/env\":[{\"name\":\"A\"},{\"name\":\"B\"},"
             "{\"name\":\"C\"}],\"env\":[{\"name\":\"C\",\"value\":\"c\"}]}]}"),
         TPL("{\"containers\":[" C_WEB("[{\"name\":\"A\",\"value\":\"1\"},{\"name\":\"B\",\"value\":\"2\"},"
                                       "{\"name\":\"C\",\"value\":\"c\"}]",
                                       PORTS0, MOUNTS0) "," C_SIDECAR "]}"),
         0, NULL},
        {"new container without order goes first (upstream)",
         TPL("{\"containers\":[{\"name\":\"new\",\"image\":\"busybox\"}]}"),
         TPL("{\"containers\":[{\"name\":\"new\",\"image\":\"busybox\"}," C_WEB_1_25 "," C_SIDECAR "]}"), 0, NULL},
        {"new container with order goes where the order says",
         TPL("{\"$setElementOrder/containers\":[{\"name\":\"web\"},{\"name\":\"sidecar\"},{\"name\":\"new\"}],"
             "\"containers\":[{\"name\":\"new\",\"image\":\"busybox\"}]}"),
         TPL("{\"containers\":[" C_WEB_1_25 "," C_SIDECAR ",{\"name\":\"new\",\"image\":\"busybox\"}]}"), 0, NULL},
        /* kubectl apply replacing container "web" by "new" next to an
         * injected sidecar: upstream orders by its server slice as the
         * deletion and the append left it, which keeps the sidecar first */
        {"apply: delete + add next to a server-only item",
         TPL("{\"$setElementOrder/containers\":[{\"name\":\"new\"}],"
             "\"containers\":[{\"name\":\"new\",\"image\":\"b\"},{\"$patch\":\"delete\",\"name\":\"web\"}]}"),
         TPL("{\"containers\":[" C_SIDECAR ",{\"name\":\"new\",\"image\":\"b\"}]}"), 0, NULL},
        {"setElementOrder alone reorders",
         TPL("{\"$setElementOrder/containers\":[{\"name\":\"sidecar\"},{\"name\":\"web\"}]}"),
         TPL("{\"containers\":[" C_SIDECAR "," C_WEB_1_25 "]}"), 0, NULL},
        {"$patch delete removes a container",
         TPL("{\"$setElementOrder/containers\":[{\"name\":\"web\"}],"
             "\"containers\":[{\"$patch\":\"delete\",\"name\":\"sidecar\"}]}"),
         TPL("{\"containers\":[" C_WEB_1_25 "]}"), 0, NULL},
        {"$patch replace inside a list replaces the list",
         TPL("{\"containers\":[{\"$patch\":\"replace\"},{\"name\":\"only\",\"image\":\"x\"}]}"),
         TPL("{\"containers\":[{\"name\":\"only\",\"image\":\"x\"}]}"), 0, NULL},
        {"ports merged by containerPort",
         TPL("{\"containers\":[{\"name\":\"web\",\"ports\":[{\"containerPort\":80,\"name\":\"http\"},"
             "{\"containerPort\":443}]}]}"),
         TPL("{\"containers\":[" C_WEB("" ENV0, "[{\"containerPort\":80,\"protocol\":\"TCP\",\"name\":\"http\"},"
                                                "{\"containerPort\":443}]",
                                       MOUNTS0) "," C_SIDECAR "]}"),
         0, NULL},
        {"volumeMounts merged by mountPath",
         TPL("{\"containers\":[{\"name\":\"web\",\"volumeMounts\":[{\"mountPath\":\"/data\",\"readOnly\":true}]}]}"),
         TPL("{\"containers\":[" C_WEB("" ENV0, PORTS0,
                                       "[{\"mountPath\":\"/data\",\"name\":\"data\",\"readOnly\":true}]") "," C_SIDECAR
             "]}"),
         0, NULL},
        {"tolerations are atomic (replaced)",
         TPL("{\"tolerations\":[{\"key\":\"k2\",\"operator\":\"Exists\"}]}"),
         TPL("{\"tolerations\":[{\"key\":\"k2\",\"operator\":\"Exists\"}]}"), 0, NULL},
        {"args (no strategy) are replaced", TPL("{\"containers\":[{\"name\":\"sidecar\",\"args\":[\"-v\"]}]}"),
         TPL("{\"containers\":[" C_WEB_1_25 ",{\"name\":\"sidecar\",\"image\":\"envoy:1\",\"args\":[\"-v\"]}]}"), 0,
         NULL},
        {"conditions merged by type",
         "{\"status\":{\"$setElementOrder/conditions\":[{\"type\":\"Available\"},{\"type\":\"Progressing\"}],"
         "\"conditions\":[{\"type\":\"Progressing\",\"status\":\"False\",\"reason\":\"Stuck\"}]}}",
         "{\"status\":{\"conditions\":[{\"type\":\"Available\",\"status\":\"True\"},"
         "{\"type\":\"Progressing\",\"status\":\"False\",\"reason\":\"Stuck\"}]}}",
         0, NULL},
        {"ownerReferences merged by uid",
         "{\"metadata\":{\"ownerReferences\":[{\"uid\":\"u2\",\"controller\":true},{\"$patch\":\"delete\","
         "\"uid\":\"u1\"}]}}",
         "{\"metadata\":{\"ownerReferences\":[{\"uid\":\"u2\",\"name\":\"o2\",\"controller\":true}]}}", 0, NULL},
        {"finalizers merged as a set", "{\"metadata\":{\"finalizers\":[\"b\",\"c\"]}}",
         "{\"metadata\":{\"finalizers\":[\"a\",\"b\",\"c\"]}}", 0, NULL},
        {"new finalizer without order goes first (upstream)", "{\"metadata\":{\"finalizers\":[\"z\"]}}",
         "{\"metadata\":{\"finalizers\":[\"z\",\"a\",\"b\"]}}", 0, NULL},
        {"finalizers with setElementOrder",
         "{\"metadata\":{\"$setElementOrder/finalizers\":[\"a\",\"b\",\"z\"],\"finalizers\":[\"z\"]}}",
         "{\"metadata\":{\"finalizers\":[\"a\",\"b\",\"z\"]}}", 0, NULL},
        {"$deleteFromPrimitiveList removes finalizers",
         "{\"metadata\":{\"$deleteFromPrimitiveList/finalizers\":[\"a\",\"nope\"]}}",
         "{\"metadata\":{\"finalizers\":[\"b\"]}}", 0, NULL},
        {"$deleteFromPrimitiveList with a set order (kubectl apply)",
         "{\"metadata\":{\"$setElementOrder/finalizers\":[\"b\",\"c\"],"
         "\"$deleteFromPrimitiveList/finalizers\":[\"a\"],\"finalizers\":[\"c\"]}}",
         "{\"metadata\":{\"finalizers\":[\"b\",\"c\"]}}", 0, NULL},
        {"null deletes a list", "{\"metadata\":{\"finalizers\":null}}", "{\"metadata\":{\"finalizers\":null}}", 0,
         NULL},
        {"volumes with $retainKeys (kubectl apply switching volume source)",
         TPL("{\"volumes\":[{\"name\":\"data\",\"$retainKeys\":[\"configMap\",\"name\"],"
             "\"configMap\":{\"name\":\"cm\"}}]}"),
         TPL("{\"volumes\":[{\"name\":\"data\",\"configMap\":{\"name\":\"cm\"},\"emptyDir\":null}]}"), 0, NULL},
    };
    run_smp_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_smp_maps_and_directives(void **state)
{
    (void)state;
    static const struct smpcase cases[] = {
        {"$retainKeys drops unlisted keys (strategy Recreate)",
         "{\"spec\":{\"strategy\":{\"$retainKeys\":[\"type\"],\"type\":\"Recreate\"}}}",
         "{\"spec\":{\"strategy\":{\"type\":\"Recreate\",\"rollingUpdate\":null}}}", 0, NULL},
        {"$retainKeys must list every patched key",
         "{\"spec\":{\"strategy\":{\"$retainKeys\":[\"type\"],\"type\":\"Recreate\",\"x\":1}}}", NULL, 400,
         "retainKeys"},
        {"$retainKeys must be a list", "{\"spec\":{\"strategy\":{\"$retainKeys\":\"type\"}}}", NULL, 400,
         "retainKeys"},
        {"$patch replace on a map",
         "{\"metadata\":{\"labels\":{\"$patch\":\"replace\",\"only\":\"1\"}}}",
         "{\"metadata\":{\"labels\":{\"app\":null,\"tier\":null,\"only\":\"1\"}}}", 0, NULL},
        {"$patch delete on a map leaves an empty map (upstream)",
         "{\"spec\":{\"strategy\":{\"$patch\":\"delete\"}}}",
         "{\"spec\":{\"strategy\":{\"type\":null,\"rollingUpdate\":null}}}", 0, NULL},
        {"$patch delete on an absent map adds nothing", "{\"spec\":{\"nodeSel\":{\"$patch\":\"delete\"}}}", "{}", 0,
         NULL},
        {"map with strategy replace is replaced whole",
         "{\"spec\":{\"selector\":{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Exists\"}]}}}",
         "{\"spec\":{\"selector\":{\"matchLabels\":null,\"matchExpressions\":[{\"key\":\"a\",\"operator\":"
         "\"Exists\"}]}}}",
         0, NULL},
        {"$patch merge on a map is refused (upstream)", "{\"metadata\":{\"labels\":{\"$patch\":\"merge\"}}}", NULL,
         500, "unknown patch type: merge"},
        {"$patch merge in a list is refused (upstream)",
         TPL("{\"containers\":[{\"$patch\":\"merge\",\"name\":\"web\"}]}"), NULL, 500,
         "merging lists cannot yet be specified"},
        {"new subtree: nulls and directives removed",
         "{\"spec\":{\"newMap\":{\"matchLabels\":{\"app\":\"web\",\"gone\":null},\"$retainKeys\":[\"x\"]}}}",
         "{\"spec\":{\"newMap\":{\"matchLabels\":{\"app\":\"web\"}}}}", 0, NULL},
        {"null for an absent field is ignored", "{\"spec\":{\"nothing\":null}}", "{}", 0, NULL},
        {"scalar replaces object", "{\"spec\":{\"strategy\":\"x\"}}", "{\"spec\":{\"strategy\":\"x\"}}", 0, NULL},
        {"missing merge key", TPL("{\"containers\":[{\"image\":\"nginx:1.27\"}]}"), NULL, 500,
         "does not contain declared merge key: name"},
        {"$patch delete without merge key", TPL("{\"containers\":[{\"$patch\":\"delete\"}]}"), NULL, 500,
         "merge key: name"},
        {"mixed element types", "{\"metadata\":{\"finalizers\":[1]}}", NULL, 500, "not identical"},
        {"list holding a list vs strings", "{\"metadata\":{\"finalizers\":[[\"x\"]]}}", NULL, 500,
         "not identical"},
        {"order list not matching the patch list",
         TPL("{\"$setElementOrder/containers\":[{\"name\":\"web\"}],\"containers\":[{\"name\":\"other\",\"image\":"
             "\"x\"}]}"),
         NULL, 500, "doesn't match $setElementOrder list"},
        {"bad $setElementOrder key", TPL("{\"$setElementOrderX\":[]}"), NULL, 400, "setElementOrder"},
        {"bad $deleteFromPrimitiveList key", "{\"metadata\":{\"$deleteFromPrimitiveListX\":[\"a\"]}}", NULL, 400,
         "primitive list"},
    };
    run_smp_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_smp_generic(void **state)
{
    (void)state;
    static const struct tcase cases[] = {
        {"no schema: lists replace", "{\"l\":[{\"name\":\"a\"}],\"m\":{\"x\":1}}",
         "{\"l\":[{\"name\":\"b\"}],\"m\":{\"y\":2}}", "{\"l\":[{\"name\":\"b\"}],\"m\":{\"x\":1,\"y\":2}}", 0, NULL},
        {"no schema: $deleteFromPrimitiveList still works", "{\"f\":[\"a\",\"b\"]}",
         "{\"$deleteFromPrimitiveList/f\":[\"b\"]}", "{\"f\":[\"a\"]}", 0, NULL},
        {"top-level $patch delete", "{\"a\":1}", "{\"$patch\":\"delete\"}", "{}", 0, NULL},
        {"top-level $patch replace", "{\"a\":1}", "{\"$patch\":\"replace\",\"b\":2}", "{\"b\":2}", 0, NULL},
        {"null patch changes nothing", "{\"a\":1}", "null", "{\"a\":1}", 0, NULL},
        {"array patch is malformed", "{\"a\":1}", "[]", NULL, 400, "cannot unmarshal array"},
        {"string patch is malformed", "{\"a\":1}", "\"x\"", NULL, 400, NULL},
    };
    RUN(SMP_NOSCHEMA, cases);
}

static void test_smp_list_of_lists_422(void **state)
{
    (void)state;
    static const struct tcase cases[] = {
        {"list of lists", "{\"metadata\":{\"finalizers\":[[\"x\"]]}}", "{\"metadata\":{\"finalizers\":[[\"y\"]]}}",
         NULL, 422, "lists of lists"},
    };
    RUN(SMP, cases);
}

/* ---- merge patch diff ---------------------------------------------------- */

static void test_merge_patch_diff(void **state)
{
    (void)state;
    static const char *pairs[][3] = {
        {"{\"a\":1,\"b\":{\"c\":1,\"d\":2},\"l\":[1]}", "{\"a\":2,\"b\":{\"c\":1},\"l\":[1],\"n\":{\"x\":1}}",
         "{\"a\":2,\"b\":{\"d\":null},\"n\":{\"x\":1}}"},
        {"{\"a\":1}", "{\"a\":1}", "{}"},
        {"{\"a\":{\"b\":1}}", "{}", "{\"a\":null}"},
        {"{\"a\":[1,2]}", "{\"a\":[2,1]}", "{\"a\":[2,1]}"},
        {"{\"a\":{\"b\":1}}", "{\"a\":\"s\"}", "{\"a\":\"s\"}"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        json_t *from = J(pairs[i][0]), *to = J(pairs[i][1]), *d = NULL, *back = NULL;
        struct kc_err err;
        assert_int_equal(kc_merge_patch_diff(from, to, &d), 0);
        assert_json_eq(d, pairs[i][2], pairs[i][0]);
        /* the diff applied as a merge patch gives `to` back */
        assert_int_equal(kc_merge_patch(from, d, &back, &err), 0);
        assert_true(json_equal(back, to));
        json_decref(from);
        json_decref(to);
        json_decref(d);
        json_decref(back);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_patch),
        cmocka_unit_test(test_merge_patch_shared_shares),
        cmocka_unit_test(test_json_patch_ops),
        cmocka_unit_test(test_json_patch_pointer_escapes),
        cmocka_unit_test(test_json_patch_malformed),
        cmocka_unit_test(test_json_patch_reason_and_limits),
        cmocka_unit_test(test_smp_kubectl_deployments),
        cmocka_unit_test(test_smp_set_image_exact),
        cmocka_unit_test(test_smp_lists),
        cmocka_unit_test(test_smp_maps_and_directives),
        cmocka_unit_test(test_smp_generic),
        cmocka_unit_test(test_smp_list_of_lists_422),
        cmocka_unit_test(test_merge_patch_diff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
