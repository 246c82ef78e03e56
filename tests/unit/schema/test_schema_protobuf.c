/* test_schema_protobuf.c — kc_protobuf_decode on hand-made bodies (every wire
 * type, packed and unpacked, maps, special types, malformed input) and on
 * real request bodies captured from kubectl 1.33 `create <generator>`
 * (tests/unit/schema/data/create-*.pb). */
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

/* ---------- a tiny protobuf writer for hand-made bodies ---------- */

struct w {
    unsigned char b[4096];
    size_t n;
};

static void put_varint(struct w *w, uint64_t v)
{
    do {
        assert_true(w->n < sizeof w->b);
        w->b[w->n++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
}

static void put_tag(struct w *w, int num, int wt)
{
    put_varint(w, ((uint64_t)num << 3) | (unsigned)wt);
}

static void put_bytes(struct w *w, int num, const void *p, size_t n)
{
    put_tag(w, num, 2);
    put_varint(w, n);
    assert_true(w->n + n <= sizeof w->b);
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void put_str(struct w *w, int num, const char *s)
{
    put_bytes(w, num, s, strlen(s));
}

static void put_msg(struct w *w, int num, const struct w *m)
{
    put_bytes(w, num, m->b, m->n);
}

static void put_int(struct w *w, int num, uint64_t v)
{
    put_tag(w, num, 0);
    put_varint(w, v);
}

static void put_fixed(struct w *w, int num, uint64_t v, int bytes)
{
    put_tag(w, num, bytes == 8 ? 1 : 5);
    for (int i = 0; i < bytes; i++)
        w->b[w->n++] = (unsigned char)(v >> (8 * i));
}

/* k8s\0 + runtime.Unknown{typeMeta{apiVersion, kind}, raw} */
static void envelope(struct w *out, const char *api_version, const char *kind, const struct w *raw)
{
    struct w tm = {0};
    put_str(&tm, 1, api_version);
    put_str(&tm, 2, kind);
    memcpy(out->b, "k8s", 4);
    out->n = 4;
    put_msg(out, 1, &tm);
    put_msg(out, 2, raw);
    put_str(out, 3, "");
    put_str(out, 4, "");
}

static struct kc_schema *test_schema(void)
{
    struct kc_schema *s = NULL;
    struct kc_err err = {0};
    assert_int_equal(kc_schema_parse(test_schema_text, strlen(test_schema_text), &s, &err), 0);
    return s;
}

static json_t *decode_ok(const struct kc_schema *s, const struct w *body)
{
    json_t *out = NULL;
    struct kc_err err = {0};
    int rc = kc_protobuf_decode(s, body->b, body->n, &out, &err);
    if (rc != 0)
        fail_msg("decode failed: %s", err.message);
    return out;
}

static void assert_json(json_t *got, const char *want_text)
{
    json_error_t je;
    json_t *want = json_loads(want_text, 0, &je);
    assert_non_null(want);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_SORT_KEYS);
        fail_msg("got  %s\nwant %s", g, want_text);
    }
    json_decref(want);
}

/* ---------- hand-made bodies ---------- */

static void test_all_field_types(void **state)
{
    struct kc_schema *s = test_schema();
    struct w meta = {0}, spec = {0}, part = {0}, part2 = {0}, raw = {0}, body = {0}, tmp = {0};
    put_str(&meta, 1, "w1");
    struct w ent = {0};
    put_str(&ent, 1, "app");
    put_str(&ent, 2, "");  /* an empty map value is kept */
    put_msg(&meta, 11, &ent);
    memset(&ent, 0, sizeof ent);
    put_str(&ent, 1, "tier");
    put_str(&ent, 2, "web");
    put_msg(&meta, 11, &ent);
    memset(&tmp, 0, sizeof tmp);
    put_int(&tmp, 1, 1700000000);  /* 2023-11-14T22:13:20Z */
    put_msg(&meta, 8, &tmp);

    put_int(&spec, 1, 3);
    put_str(&part, 1, "a");
    put_int(&part, 2, (uint64_t)(int64_t)-2);  /* negative int32: 10-byte varint */
    memset(&tmp, 0, sizeof tmp);
    put_int(&tmp, 1, 1700000000);
    put_int(&tmp, 2, 123456789);
    put_msg(&part, 3, &tmp);
    put_msg(&spec, 2, &part);
    put_str(&part2, 1, "b");
    put_msg(&spec, 2, &part2);
    put_str(&spec, 3, "x");
    put_str(&spec, 3, "");  /* empty strings inside lists are kept */
    memset(&tmp, 0, sizeof tmp);
    put_int(&tmp, 1, 1);
    put_str(&tmp, 3, "http");
    put_msg(&spec, 4, &tmp);  /* intorstring: string */
    memset(&tmp, 0, sizeof tmp);
    put_str(&tmp, 1, "500m");
    put_msg(&spec, 5, &tmp);  /* quantity */
    memset(&tmp, 0, sizeof tmp);
    put_str(&tmp, 1, "{\"free\":[1,\"two\"]}");
    put_msg(&spec, 6, &tmp);  /* raw */
    memset(&ent, 0, sizeof ent);
    put_str(&ent, 1, "k");
    put_msg(&ent, 2, &part2);
    put_msg(&spec, 7, &ent);  /* map of messages */
    memset(&ent, 0, sizeof ent);
    put_str(&ent, 1, "bin");
    put_bytes(&ent, 2, "\x00\xff\x10", 3);
    put_msg(&spec, 8, &ent);  /* map of bytes */
    put_int(&spec, 9, 12345678901ULL);
    put_fixed(&spec, 10, 0x3ff8000000000000ULL, 8);  /* 1.5 */
    put_int(&spec, 11, 1);
    memset(&tmp, 0, sizeof tmp);
    put_int(&tmp, 1, 90000000000ULL);  /* 90s */
    put_msg(&spec, 12, &tmp);
    /* nums: one packed run, then one unpacked element */
    memset(&tmp, 0, sizeof tmp);
    put_varint(&tmp, 1);
    put_varint(&tmp, 300);
    put_bytes(&spec, 14, tmp.b, tmp.n);
    put_int(&spec, 14, 7);
    put_str(&spec, 16, "hi");  /* bytes → base64 */
    put_int(&spec, 18, 5);     /* omitempty keeps non-zero values */
    /* unknown fields of every wire type are skipped */
    put_int(&spec, 100, 5);
    put_fixed(&spec, 101, 5, 8);
    put_fixed(&spec, 102, 5, 4);
    put_str(&spec, 103, "zzz");

    put_msg(&raw, 1, &meta);
    put_msg(&raw, 2, &spec);
    envelope(&body, "example.com/v1", "Widget", &raw);
    json_t *j = decode_ok(s, &body);
    assert_json(j, "{\"apiVersion\":\"example.com/v1\",\"kind\":\"Widget\","
                   "\"metadata\":{\"name\":\"w1\",\"labels\":{\"app\":\"\",\"tier\":\"web\"},"
                   "\"creationTimestamp\":\"2023-11-14T22:13:20Z\"},"
                   "\"spec\":{\"replicas\":3,\"parts\":[{\"name\":\"a\",\"weight\":-2,"
                   "\"when\":\"2023-11-14T22:13:20.123456Z\"},{\"name\":\"b\"}],\"tags\":[\"x\",\"\"],"
                   "\"port\":\"http\",\"size\":\"500m\",\"extra\":{\"free\":[1,\"two\"]},"
                   "\"byName\":{\"k\":{\"name\":\"b\"}},\"data\":{\"bin\":\"AP8Q\"},\"big\":12345678901,"
                   "\"ratio\":1.5,\"on\":true,\"timeout\":\"1m30s\",\"nums\":[1,300,7],\"blob\":\"aGk=\",\"minReady\":5}}");
    /* apiVersion and kind come first, as in upstream's JSON */
    void *it = json_object_iter(j);
    assert_string_equal(json_object_iter_key(it), "apiVersion");
    json_decref(j);
    kc_schema_free(s);
}

static void test_omitted_and_zero_values(void **state)
{
    struct kc_schema *s = test_schema();
    struct w meta = {0}, spec = {0}, raw = {0}, body = {0}, tmp = {0};
    put_str(&meta, 1, "");     /* Go writes empty strings: dropped */
    put_bytes(&meta, 8, "", 0);  /* zero time as an empty message: absent */
    put_int(&spec, 1, 0);      /* a present zero number is kept */
    put_int(&spec, 11, 0);
    memset(&tmp, 0, sizeof tmp);
    put_int(&tmp, 2, 8080);
    put_msg(&spec, 4, &tmp);   /* intorstring: int */
    put_bytes(&spec, 5, "", 0);  /* quantity without string: "0" */
    put_bytes(&spec, 15, "", 0); /* an empty message is kept as {} */
    put_int(&spec, 17, 0);     /* omitempty: zero bool and number dropped */
    put_int(&spec, 18, 0);
    memset(&tmp, 0, sizeof tmp);
    put_int(&tmp, 1, (uint64_t)-62135596800LL);
    put_msg(&meta, 8, &tmp);   /* Go's zero time written out: still absent */
    put_msg(&raw, 1, &meta);
    put_msg(&raw, 2, &spec);
    envelope(&body, "example.com/v1", "Widget", &raw);
    json_t *j = decode_ok(s, &body);
    assert_json(j, "{\"apiVersion\":\"example.com/v1\",\"kind\":\"Widget\",\"metadata\":{},"
                   "\"spec\":{\"replicas\":0,\"on\":false,\"port\":8080,\"size\":\"0\",\"node\":{}}}");
    json_decref(j);

    /* core group: apiVersion without a slash */
    memset(&raw, 0, sizeof raw);
    put_int(&raw, 2, 1000);
    envelope(&body, "v1", "Gadget", &raw);
    j = decode_ok(s, &body);
    assert_json(j, "{\"apiVersion\":\"v1\",\"kind\":\"Gadget\",\"value\":1000}");
    json_decref(j);
    kc_schema_free(s);
}

static void test_durations(void **state)
{
    struct kc_schema *s = test_schema();
    static const struct {
        int64_t ns;
        const char *want;
    } cases[] = {
        {0, "0s"},        {1, "1ns"},          {1500, "1.5\xc2\xb5s"}, {2000000, "2ms"},
        {1500000000, "1.5s"}, {60000000000LL, "1m0s"}, {3600000000000LL, "1h0m0s"},
        {3723000000000LL, "1h2m3s"}, {-5000000000LL, "-5s"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct w spec = {0}, raw = {0}, body = {0}, tmp = {0};
        put_int(&tmp, 1, (uint64_t)cases[i].ns);
        put_msg(&spec, 12, &tmp);
        put_msg(&raw, 2, &spec);
        envelope(&body, "example.com/v1", "Widget", &raw);
        json_t *j = decode_ok(s, &body);
        json_t *d = json_object_get(json_object_get(j, "spec"), "timeout");
        assert_non_null(d);
        assert_string_equal(json_string_value(d), cases[i].want);
        json_decref(j);
    }
    kc_schema_free(s);
}

static int decode_rc(const struct kc_schema *s, const unsigned char *b, size_t n)
{
    json_t *out = NULL;
    struct kc_err err = {0};
    int rc = kc_protobuf_decode(s, b, n, &out, &err);
    if (rc == 0) {
        assert_non_null(out);
        json_decref(out);
    } else {
        assert_null(out);
        assert_true(err.message[0] != '\0');
    }
    return rc;
}

static void test_malformed(void **state)
{
    struct kc_schema *s = test_schema();
    struct w spec = {0}, raw = {0}, body = {0};
    /* no magic / wrong magic */
    assert_int_equal(decode_rc(s, (const unsigned char *)"k8s", 3), KC_EINVAL);
    assert_int_equal(decode_rc(s, (const unsigned char *)"{\"a\":1}", 7), KC_EINVAL);
    /* unknown kind */
    envelope(&body, "example.com/v1", "Nope", &raw);
    assert_int_equal(decode_rc(s, body.b, body.n), KC_EINVAL);
    /* wire type mismatch: a string where an int32 belongs */
    put_str(&spec, 1, "3");
    put_msg(&raw, 2, &spec);
    envelope(&body, "example.com/v1", "Widget", &raw);
    assert_int_equal(decode_rc(s, body.b, body.n), KC_EINVAL);
    /* length beyond the end of the nested message */
    memset(&raw, 0, sizeof raw);
    put_tag(&raw, 2, 2);
    put_varint(&raw, 50);
    put_int(&raw, 1, 1);
    envelope(&body, "example.com/v1", "Widget", &raw);
    assert_int_equal(decode_rc(s, body.b, body.n), KC_EINVAL);
    /* group wire types (3, 4) are refused */
    memset(&raw, 0, sizeof raw);
    put_tag(&raw, 99, 3);
    envelope(&body, "example.com/v1", "Widget", &raw);
    assert_int_equal(decode_rc(s, body.b, body.n), KC_EINVAL);
    /* an over-long varint */
    memset(&raw, 0, sizeof raw);
    put_tag(&raw, 99, 0);
    for (int i = 0; i < 11; i++)
        raw.b[raw.n++] = 0xff;
    raw.b[raw.n++] = 0x01;
    envelope(&body, "example.com/v1", "Widget", &raw);
    assert_int_equal(decode_rc(s, body.b, body.n), KC_EINVAL);
    /* invalid UTF-8 in a string */
    memset(&raw, 0, sizeof raw);
    memset(&spec, 0, sizeof spec);
    put_str(&spec, 1, "\xc3\x28");
    put_msg(&raw, 1, &spec);
    envelope(&body, "example.com/v1", "Widget", &raw);
    assert_int_equal(decode_rc(s, body.b, body.n), KC_EINVAL);
    /* a raw extension that is not JSON */
    memset(&raw, 0, sizeof raw);
    memset(&spec, 0, sizeof spec);
    struct w tmp = {0};
    put_str(&tmp, 1, "{nope");
    put_msg(&spec, 6, &tmp);
    put_msg(&raw, 2, &spec);
    envelope(&body, "example.com/v1", "Widget", &raw);
    assert_int_equal(decode_rc(s, body.b, body.n), KC_EINVAL);
    /* a compressed body is refused */
    memset(&raw, 0, sizeof raw);
    envelope(&body, "example.com/v1", "Widget", &raw);
    body.n -= 4;
    put_str(&body, 3, "gzip");
    assert_int_equal(decode_rc(s, body.b, body.n), KC_EINVAL);
    kc_schema_free(s);
}

static void test_depth_limit(void **state)
{
    struct kc_schema *s = test_schema();
    /* Node{child: Node{child: ...}} nested 200 deep, inside WidgetSpec.node */
    static struct w levels[2];
    struct w *cur = &levels[0], *next = &levels[1];
    memset(cur, 0, sizeof *cur);
    put_str(cur, 2, "leaf");
    for (int i = 0; i < 200; i++) {
        memset(next, 0, sizeof *next);
        put_msg(next, 1, cur);
        struct w *t = cur;
        cur = next;
        next = t;
    }
    struct w spec = {0}, raw = {0};
    static struct w body;
    put_msg(&spec, 15, cur);
    put_msg(&raw, 2, &spec);
    envelope(&body, "example.com/v1", "Widget", &raw);
    assert_int_equal(decode_rc(s, body.b, body.n), KC_EINVAL);

    /* 20 deep is fine */
    memset(cur, 0, sizeof *cur);
    put_str(cur, 2, "leaf");
    for (int i = 0; i < 20; i++) {
        memset(next, 0, sizeof *next);
        put_msg(next, 1, cur);
        struct w *t = cur;
        cur = next;
        next = t;
    }
    memset(&spec, 0, sizeof spec);
    memset(&raw, 0, sizeof raw);
    put_msg(&spec, 15, cur);
    put_msg(&raw, 2, &spec);
    envelope(&body, "example.com/v1", "Widget", &raw);
    assert_int_equal(decode_rc(s, body.b, body.n), 0);
    kc_schema_free(s);
}

/* Inline-embedded Go structs travel as one nested message at an outer field
 * number (Volume's VolumeSource at 2, Probe's ProbeHandler at 1,
 * EphemeralContainer's EphemeralContainerCommon at 1, LocalObjectReference
 * at 1 of the key selectors); their fields must land flat in the JSON
 * object. A Pod built the way Go's marshaller writes it, against the real
 * schema. */
static void test_pod_inline_embedded(void **state)
{
    struct w ref = {0}, src = {0}, vol1 = {0}, vol2 = {0}, cm = {0}, sel = {0}, evs = {0}, env = {0};
    struct w port = {0}, http = {0}, handler = {0}, probe = {0}, ctr = {0}, eph = {0}, common = {0};
    struct w spec = {0}, meta = {0}, raw = {0}, body = {0};

    /* volume "scratch": emptyDir {} (VolumeSource field 2) */
    put_str(&vol1, 1, "scratch");
    put_bytes(&src, 2, "", 0);
    put_msg(&vol1, 2, &src);
    /* volume "cfg": configMap (VolumeSource field 19) whose name is in the
     * embedded LocalObjectReference (field 1); defaultMode 420 */
    put_str(&ref, 1, "app-config");
    put_msg(&cm, 1, &ref);
    put_int(&cm, 3, 420);
    memset(&src, 0, sizeof src);
    put_msg(&src, 19, &cm);
    put_str(&vol2, 1, "cfg");
    put_msg(&vol2, 2, &src);

    /* env DB_PASSWORD from secretKeyRef {name: db, key: password} */
    memset(&ref, 0, sizeof ref);
    put_str(&ref, 1, "db");
    put_msg(&sel, 1, &ref);
    put_str(&sel, 2, "password");
    put_msg(&evs, 4, &sel);
    put_str(&env, 1, "DB_PASSWORD");
    put_str(&env, 2, "");
    put_msg(&env, 3, &evs);

    /* livenessProbe: httpGet {path /healthz, port 8080} in ProbeHandler (field 1) */
    put_int(&port, 1, 0);
    put_int(&port, 2, 8080);
    put_str(&http, 1, "/healthz");
    put_msg(&http, 2, &port);
    put_msg(&handler, 2, &http);
    put_msg(&probe, 1, &handler);
    put_int(&probe, 2, 5);
    put_int(&probe, 3, 0);  /* timeoutSeconds 0: omitempty, dropped */

    put_str(&ctr, 1, "app");
    put_str(&ctr, 2, "nginx");
    put_msg(&ctr, 7, &env);
    put_msg(&ctr, 10, &probe);
    put_int(&ctr, 16, 0);  /* stdin false: omitempty, dropped */

    /* ephemeral container: name/image inside EphemeralContainerCommon (1),
     * targetContainerName directly at 2 */
    put_str(&common, 1, "debugger");
    put_str(&common, 2, "busybox");
    put_msg(&eph, 1, &common);
    put_str(&eph, 2, "app");

    put_msg(&spec, 1, &vol1);
    put_msg(&spec, 1, &vol2);
    put_msg(&spec, 2, &ctr);
    put_msg(&spec, 34, &eph);
    put_str(&meta, 1, "web");
    put_msg(&raw, 1, &meta);
    put_msg(&raw, 2, &spec);
    envelope(&body, "v1", "Pod", &raw);

    json_t *j = decode_ok(kc_schema_default(), &body);
    assert_json(j, "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"web\"},\"spec\":{"
                   "\"volumes\":[{\"name\":\"scratch\",\"emptyDir\":{}},"
                   "{\"name\":\"cfg\",\"configMap\":{\"name\":\"app-config\",\"defaultMode\":420}}],"
                   "\"containers\":[{\"name\":\"app\",\"image\":\"nginx\","
                   "\"env\":[{\"name\":\"DB_PASSWORD\",\"valueFrom\":{\"secretKeyRef\":{\"name\":\"db\","
                   "\"key\":\"password\"}}}],"
                   "\"livenessProbe\":{\"httpGet\":{\"path\":\"/healthz\",\"port\":8080},"
                   "\"initialDelaySeconds\":5}}],"
                   "\"ephemeralContainers\":[{\"name\":\"debugger\",\"image\":\"busybox\","
                   "\"targetContainerName\":\"app\"}]}}");
    json_decref(j);

    /* an inline message with a wrong wire type is malformed */
    memset(&vol1, 0, sizeof vol1);
    put_str(&vol1, 1, "bad");
    put_int(&vol1, 2, 7);
    memset(&spec, 0, sizeof spec);
    put_msg(&spec, 1, &vol1);
    memset(&raw, 0, sizeof raw);
    put_msg(&raw, 2, &spec);
    envelope(&body, "v1", "Pod", &raw);
    assert_int_equal(decode_rc(kc_schema_default(), body.b, body.n), KC_EINVAL);
}

/* ---------- real kubectl 1.33 bodies ---------- */

static unsigned char *read_fixture(const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", KC_SCHEMA_TEST_DATA, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    static unsigned char buf[65536];
    *len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    unsigned char *copy = malloc(*len ? *len : 1);
    memcpy(copy, buf, *len);
    return copy;
}

static json_t *decode_fixture(const char *name)
{
    size_t len;
    unsigned char *b = read_fixture(name, &len);
    json_t *out = NULL;
    struct kc_err err = {0};
    int rc = kc_protobuf_decode(kc_schema_default(), b, len, &out, &err);
    free(b);
    if (rc != 0)
        fail_msg("%s: %s", name, err.message);
    return out;
}

static const char *sget(json_t *j, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL;
    for (char *k = strtok_r(buf, ".", &save); k && j; k = strtok_r(NULL, ".", &save))
        j = json_is_array(j) ? json_array_get(j, (size_t)atoi(k)) : json_object_get(j, k);
    if (!j || !json_is_string(j))
        return NULL;
    return json_string_value(j);
}

static json_int_t iget(json_t *j, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL;
    for (char *k = strtok_r(buf, ".", &save); k && j; k = strtok_r(NULL, ".", &save))
        j = json_is_array(j) ? json_array_get(j, (size_t)atoi(k)) : json_object_get(j, k);
    if (!json_is_integer(j))
        fail_msg("%s is not an integer", path);
    return json_integer_value(j);
}

static void assert_sget(json_t *j, const char *path, const char *want)
{
    const char *got = sget(j, path);
    if (!got || strcmp(got, want) != 0) {
        char *d = json_dumps(j, 0);
        fail_msg("%s: got %s, want %s in %s", path, got ? got : "(none)", want, d);
    }
}

static bool kind_described(const char *g, const char *v, const char *k)
{
    if (kc_schema_kind(kc_schema_default(), g, v, k))
        return true;
    print_message("skipped: %s/%s %s is not in schema/*.kcs yet\n", g, v, k);
    return false;
}

/* Whether key appears anywhere in j (objects and arrays, any depth). */
static bool json_contains_key(json_t *j, const char *key)
{
    const char *k;
    json_t *v;
    size_t i;
    if (json_is_object(j)) {
        json_object_foreach(j, k, v) {
            if (strcmp(k, key) == 0 || json_contains_key(v, key))
                return true;
        }
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v) {
            if (json_contains_key(v, key))
                return true;
        }
    }
    return false;
}

static void test_kubectl_namespace(void **state)
{
    if (!kind_described("", "v1", "Namespace"))
        return;
    json_t *j = decode_fixture("create-namespaces.pb");
    assert_sget(j, "apiVersion", "v1");
    assert_sget(j, "kind", "Namespace");
    assert_sget(j, "metadata.name", "x");
    assert_null(json_object_get(json_object_get(j, "metadata"), "creationTimestamp"));
    assert_null(json_object_get(json_object_get(j, "metadata"), "namespace"));
    json_decref(j);
}

static void test_kubectl_deployment(void **state)
{
    if (!kind_described("apps", "v1", "Deployment"))
        return;
    json_t *j = decode_fixture("create-deployments.pb");
    assert_sget(j, "apiVersion", "apps/v1");
    assert_sget(j, "kind", "Deployment");
    assert_sget(j, "metadata.name", "web");
    assert_sget(j, "metadata.labels.app", "web");
    assert_int_equal(iget(j, "spec.replicas"), 3);
    assert_sget(j, "spec.selector.matchLabels.app", "web");
    assert_sget(j, "spec.template.metadata.labels.app", "web");
    json_t *containers = json_object_get(json_object_get(json_object_get(json_object_get(j, "spec"), "template"),
                                                         "spec"),
                                         "containers");
    assert_int_equal(json_array_size(containers), 1);
    assert_sget(j, "spec.template.spec.containers.0.name", "nginx");
    assert_sget(j, "spec.template.spec.containers.0.image", "nginx:1.25");
    assert_int_equal(iget(j, "spec.template.spec.containers.0.ports.0.containerPort"), 80);
    assert_null(json_object_get(json_object_get(j, "metadata"), "creationTimestamp"));
    /* Go writes every non-pointer number and bool; the omitempty ones must
     * not reach the stored object (upstream's JSON leaves them out). */
    assert_false(json_contains_key(j, "generation"));
    assert_false(json_contains_key(j, "observedGeneration"));
    assert_false(json_contains_key(j, "hostPort"));
    assert_false(json_contains_key(j, "stdin"));
    assert_false(json_contains_key(j, "stdinOnce"));
    assert_false(json_contains_key(j, "tty"));
    assert_false(json_contains_key(j, "hostNetwork"));
    assert_false(json_contains_key(j, "minReadySeconds"));
    assert_false(json_contains_key(j, "paused"));
    json_t *status = json_object_get(j, "status");
    assert_non_null(status);
    if (json_object_size(status) != 0)
        fail_msg("status should be {} (no zero counters), got %s", json_dumps(status, JSON_SORT_KEYS));
    /* exactly what upstream's JSON of this object holds, nothing more */
    assert_json(json_object_get(j, "spec"),
                "{\"replicas\":3,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},\"strategy\":{},"
                "\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"}},\"spec\":{\"containers\":"
                "[{\"name\":\"nginx\",\"image\":\"nginx:1.25\",\"ports\":[{\"containerPort\":80}],"
                "\"resources\":{}}]}}}");
    json_decref(j);
}

/* The same body with --replicas=0 (the varint of DeploymentSpec.replicas set
 * to 0 in the captured bytes): replicas is a *int32 upstream, so an
 * explicit 0 is a value, not an omission, and must stay. */
static void test_kubectl_deployment_zero_replicas(void **state)
{
    if (!kind_described("apps", "v1", "Deployment"))
        return;
    json_t *j = decode_fixture("create-deployments-replicas0.pb");
    assert_int_equal(iget(j, "spec.replicas"), 0);
    assert_false(json_contains_key(j, "generation"));
    assert_false(json_contains_key(j, "hostPort"));
    json_decref(j);
}

static void test_kubectl_configmap(void **state)
{
    if (!kind_described("", "v1", "ConfigMap"))
        return;
    json_t *j = decode_fixture("create-configmaps.pb");
    assert_sget(j, "kind", "ConfigMap");
    assert_sget(j, "metadata.name", "c");
    assert_sget(j, "data.a", "b");
    assert_int_equal(json_object_size(json_object_get(j, "data")), 1);
    json_decref(j);
}

static void test_kubectl_secret(void **state)
{
    if (!kind_described("", "v1", "Secret"))
        return;
    json_t *j = decode_fixture("create-secrets.pb");
    assert_sget(j, "kind", "Secret");
    assert_sget(j, "metadata.name", "s");
    assert_sget(j, "data.k", "dg==");  /* base64 of "v", as JSON carries []byte */
    json_decref(j);
}

static void test_kubectl_serviceaccount(void **state)
{
    if (!kind_described("", "v1", "ServiceAccount"))
        return;
    json_t *j = decode_fixture("create-serviceaccounts.pb");
    assert_sget(j, "apiVersion", "v1");
    assert_sget(j, "kind", "ServiceAccount");
    assert_sget(j, "metadata.name", "sa");
    json_decref(j);
}

static void test_kubectl_priorityclass(void **state)
{
    if (!kind_described("scheduling.k8s.io", "v1", "PriorityClass"))
        return;
    json_t *j = decode_fixture("create-priorityclasses.pb");
    assert_sget(j, "apiVersion", "scheduling.k8s.io/v1");
    assert_sget(j, "kind", "PriorityClass");
    assert_sget(j, "metadata.name", "high");
    assert_int_equal(iget(j, "value"), 1000);
    assert_sget(j, "description", "d");
    assert_sget(j, "preemptionPolicy", "PreemptLowerPriority");
    /* globalDefault is a non-pointer omitempty bool upstream: false is left out */
    assert_null(json_object_get(j, "globalDefault"));
    json_decref(j);
}

/* Every truncation of every real body either decodes or fails cleanly
 * (AddressSanitizer watches for reads past the end). */
static void test_kubectl_truncations(void **state)
{
    static const char *const names[] = {"create-namespaces.pb", "create-deployments.pb", "create-deployments-replicas0.pb",
                                        "create-configmaps.pb",
                                        "create-secrets.pb", "create-serviceaccounts.pb",
                                        "create-priorityclasses.pb"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t len;
        unsigned char *full = read_fixture(names[i], &len);
        size_t failed = 0;
        for (size_t n = 0; n < len; n++) {
            unsigned char *b = malloc(n ? n : 1);  /* exact size, so ASan sees an overread */
            memcpy(b, full, n);
            if (decode_rc(kc_schema_default(), b, n) != 0)
                failed++;
            free(b);
        }
        assert_true(failed > 0);
        /* flipping bytes must not crash either */
        for (size_t n = 4; n < len; n++) {
            unsigned char *b = malloc(len);
            memcpy(b, full, len);
            b[n] ^= 0x80;
            decode_rc(kc_schema_default(), b, len);
            free(b);
        }
        free(full);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_field_types),
        cmocka_unit_test(test_omitted_and_zero_values),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_pod_inline_embedded),
        cmocka_unit_test(test_kubectl_namespace),
        cmocka_unit_test(test_kubectl_deployment),
        cmocka_unit_test(test_kubectl_deployment_zero_replicas),
        cmocka_unit_test(test_kubectl_configmap),
        cmocka_unit_test(test_kubectl_secret),
        cmocka_unit_test(test_kubectl_serviceaccount),
        cmocka_unit_test(test_kubectl_priorityclass),
        cmocka_unit_test(test_kubectl_truncations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
