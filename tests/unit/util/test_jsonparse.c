/* test_jsonparse.c — kc_json_loadb against jansson's json_loadb, the contract in util/jsonparse.h:
 * the fast parser accepts nothing json_loadb rejects, builds byte-for-byte the same tree (key order,
 * integer vs real, string bytes) for what it accepts, and accepts all ordinary valid JSON itself
 * (so the speed is real, not the fallback's). Hand-written edge cases, generated valid documents and
 * random mutations of real objects. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/jsonparse.h"
#include "util/jsonscan.h"
#include "util/jsonw.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const size_t FLAGS[] = {0, JSON_REJECT_DUPLICATES, JSON_DECODE_ANY, JSON_ALLOW_NUL,
                               JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL};

/* jansson's own serialisation in insertion order: equal strings = same keys, order, types, bytes */
static char *dump(json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* Compares the fast parser (no fallback) and the public function with json_loadb on one input.
 * Returns 1 if the fast parser accepted it. */
static int check_one(const char *buf, size_t len, size_t flags)
{
    json_error_t je, ke;
    json_t *ref = json_loadb(buf, len, flags, &je);
    json_t *fast = kc_json_loadb_fast(buf, len, flags);
    json_t *pub = kc_json_loadb(buf, len, flags, &ke);
    int accepted = fast != NULL;
    if (!ref) {
        if (fast) {
            char *d = dump(fast);
            print_error("fast parser accepted what json_loadb rejects (%s), flags %zu: [%.*s] -> %s\n", je.text,
                        flags, (int)len, buf, d);
            free(d);
            fail();
        }
        assert_null(pub);
        assert_string_equal(ke.text, je.text);
        assert_int_equal(ke.position, je.position);
    } else {
        assert_non_null(pub);
        char *a = dump(ref), *c = dump(pub);
        if (strcmp(a, c)) {
            print_error("trees differ, flags %zu: [%.*s]\n jansson %s\n ours    %s\n", flags, (int)len, buf, a, c);
            fail();
        }
        if (fast) {
            char *b = dump(fast);
            assert_string_equal(a, b);
            free(b);
        }
        free(a);
        free(c);
    }
    json_decref(ref);
    json_decref(fast);
    json_decref(pub);
    return accepted;
}

static void check_all_flags(const char *s, size_t len)
{
    for (size_t f = 0; f < N(FLAGS); f++)
        check_one(s, len, FLAGS[f]);
}

static void test_edge_cases(void **state)
{
    (void)state;
    static const char *T[] = {
        "{}", "[]", " \t\r\n{ } \n", "{\"a\":1}", "{\"a\":1,}", "[1,]", "[,1]", "{\"a\" 1}", "{\"a\":}", "{a:1}",
        "{\"a\":1 \"b\":2}", "[1 2]", "{\"a\":1}{", "{\"a\":1}x", "{\"a\":1} ", "[", "]", "{", "\"x\"", "1", "true",
        "null", "", " ", "[true,false,null]", "[tru]", "[truex]", "[nul]", "[nulll]", "[True]", "[NaN]",
        "[Infinity]", "[-Infinity]", "[0]", "[-0]", "[-0.0]", "[00]", "[01]", "[-01]", "[1.]", "[.5]", "[1.5]",
        "[1e5]", "[1E+5]", "[1e-5]", "[1e]", "[1e+]", "[-]", "[+1]", "[1.5e300]", "[1e400]", "[-1e400]",
        "[1e-400]", "[9223372036854775807]", "[9223372036854775808]", "[-9223372036854775808]",
        "[-9223372036854775809]", "[12345678901234567890123]", "[0.1]", "[3.141592653589793238462643383]",
        "[123456789012345678901234567890.5]", "[1.0]", "[1e0]", "[1x]", "[1.5.3]", "[0x10]", "[--1]",
        "{\"a\":1,\"a\":2}", "{\"a\":1,\"b\":{\"a\":1,\"a\":2}}", "{\"\":1}", "{\"\":1,\"\":2}",
        "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]", "[\"\\x\"]", "[\"\\\"]", "[\"abc]", "[\"\\u0041\"]", "[\"\\u00e9\"]",
        "[\"\\u20AC\"]", "[\"\\uD83D\\uDE00\"]", "[\"\\uD83D\"]", "[\"\\uD83Dx\"]", "[\"\\uD83D\\u0041\"]",
        "[\"\\uDE00\"]", "[\"\\u0000\"]", "{\"\\u0000\":1}", "{\"a\\u0000b\":1}", "[\"a\\u0000b\"]",
        "[\"\\u00\"]", "[\"\\u00zz\"]", "[\"\\uD83D\\uDE0\"]", "[\"\\U0041\"]", "[\"é\"]", "[\"€\"]", "[\"😀\"]",
        "[\"\xc3\"]", "[\"\xc0\xaf\"]", "[\"\xc1\xbf\"]", "[\"\xe0\x80\xaf\"]", "[\"\xe0\xa0\x80\"]",
        "[\"\xed\xa0\x80\"]", "[\"\xed\x9f\xbf\"]", "[\"\xf0\x80\x80\xaf\"]", "[\"\xf0\x90\x80\x80\"]",
        "[\"\xf4\x8f\xbf\xbf\"]", "[\"\xf4\x90\x80\x80\"]", "[\"\xf5\x80\x80\x80\"]", "[\"\xff\"]", "[\"\x80\"]",
        "[\"\xe2\x82\"]", "[\"a\tb\"]", "[\"a\nb\"]", "[\"\x1f\"]", "[\"\x7f\"]", "{\"é\":\"€\"}", "[\xc3\xa9]",
        "{\"a\":[1,{\"b\":[true,{\"c\":null}]}],\"d\":\"e\"}", "[[[[[[[[[[]]]]]]]]]]", "{\"a\":{}}",
        "{\"z\":1,\"a\":2,\"m\":3}", "{\"k\":\"\\\\\"}", "[\"\\/\"]", "[1,2,3,4,5,6,7,8,9,10,11,12]",
        "{\"a\":1}\n", "[1]\n\n", "{\"a\":\"b\"}\x01",
    };
    for (size_t i = 0; i < N(T); i++)
        check_all_flags(T[i], strlen(T[i]));
    /* embedded NUL bytes in the input */
    static const char nul1[] = "[\"a\0b\"]", nul2[] = "{}\0", nul3[] = "[1\0]";
    check_all_flags(nul1, sizeof nul1 - 1);
    check_all_flags(nul2, sizeof nul2 - 1);
    check_all_flags(nul3, sizeof nul3 - 1);
    /* not NUL-terminated: the parser must stop at len */
    check_all_flags("[1,2]garbage", 5);
    check_all_flags("{\"a\":\"bc\"}zzz", 10);
    check_all_flags("[12345", 3);
}

static void test_depth(void **state)
{
    (void)state;
    /* below, at and beyond the fast parser's own limit and jansson's 2,048 */
    static const size_t depths[] = {100, 1023, 1024, 1025, 2047, 2048, 2049, 3000};
    for (size_t d = 0; d < N(depths); d++) {
        size_t n = depths[d];
        char *s = malloc(2 * n + 1);
        assert_non_null(s);
        memset(s, '[', n);
        memset(s + n, ']', n);
        s[2 * n] = 0;
        int fast = check_one(s, 2 * n, 0);
        if (n <= 1024)
            assert_true(fast);
        free(s);
    }
}

/* ---- generated valid documents: the fast parser must take every one of them itself ---- */

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static unsigned rnd(unsigned n) { return (unsigned)(next_rand() % n); }

static json_t *gen_string(void)
{
    static const char *pieces[] = {"a", "Z", "9", " ", "\"", "\\", "/", "\n", "\t", "\x01", "\x1f", "\x7f", "é",
                                   "€", "😀", "\xed\x9f\xbf", "\xf4\x8f\xbf\xbf", "name", "kube-system", ".", ":"};
    char buf[256];
    size_t n = 0, parts = rnd(8);
    for (size_t i = 0; i < parts; i++) {
        const char *p = pieces[rnd(N(pieces))];
        size_t l = strlen(p);
        if (n + l >= sizeof buf)
            break;
        memcpy(buf + n, p, l);
        n += l;
    }
    if (rnd(20) == 0 && n + 1 < sizeof buf)
        buf[n++] = 0; /* U+0000: only with JSON_ALLOW_NUL */
    return json_stringn(buf, n);
}

static json_t *gen(int depth)
{
    unsigned k = depth > 5 ? rnd(6) : rnd(8);
    switch (k) {
    case 0: return gen_string();
    case 1: {
        static const json_int_t ints[] = {0, 1, -1, 42, 100, -7, 9223372036854775807LL, -9223372036854775807LL - 1,
                                          1000000007};
        return rnd(2) ? json_integer(ints[rnd(N(ints))]) : json_integer((json_int_t)next_rand());
    }
    case 2: {
        static const double reals[] = {0.5, -0.25, 1e300, 1e-300, 3.141592653589793, 1.0, -0.0, 123456.789,
                                       5e-324};
        return rnd(2) ? json_real(reals[rnd(N(reals))]) : json_real((double)(int64_t)next_rand() / 1024.0);
    }
    case 3: return json_true();
    case 4: return json_false();
    case 5: return json_null();
    case 6: {
        json_t *a = json_array();
        for (unsigned i = rnd(6); i > 0; i--)
            json_array_append_new(a, gen(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (unsigned i = rnd(7); i > 0; i--) {
            json_t *key = gen_string();
            const char *ks = json_string_value(key);
            if (strlen(ks) == json_string_length(key)) /* keys never hold U+0000 */
                json_object_set_new(o, ks, gen(depth + 1));
            json_decref(key);
        }
        return o;
    }
    }
}

static void test_generated_valid(void **state)
{
    (void)state;
    static const size_t dumpflags[] = {JSON_COMPACT, JSON_INDENT(2), JSON_ENSURE_ASCII | JSON_COMPACT,
                                       JSON_ESCAPE_SLASH | JSON_INDENT(1)};
    for (int i = 0; i < 3000; i++) {
        json_t *doc = json_object();
        json_object_set_new(doc, "v", gen(0));
        char *s = json_dumps(doc, dumpflags[rnd(N(dumpflags))]);
        assert_non_null(s);
        /* with NUL in a string value jansson itself needs JSON_ALLOW_NUL */
        assert_true(check_one(s, strlen(s), JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES));
        check_one(s, strlen(s), 0);
        free(s);
        json_decref(doc);
    }
}

/* ---- random mutations of real objects ---- */

static const char POD[] =
    "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"web-7c5ddbdf54-x2x9z\",\"namespace\":\"default\","
    "\"uid\":\"0b6f3c1e-9d1a-4c2e-8f6a-1d2e3f4a5b6c\",\"resourceVersion\":\"12345\",\"generation\":1,"
    "\"labels\":{\"app\":\"web\",\"pod-template-hash\":\"7c5ddbdf54\"},\"annotations\":{\"note\":\"caf\\u00e9 \\\"q\\\" "
    "\\\\ / \\n €\"},\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\",\"name\":\"web-7c5ddbdf54\","
    "\"uid\":\"1a2b\",\"controller\":true,\"blockOwnerDeletion\":true}]},\"spec\":{\"containers\":[{\"name\":\"web\","
    "\"image\":\"nginx:1.27\",\"ports\":[{\"containerPort\":8080,\"protocol\":\"TCP\"}],\"resources\":{\"requests\":"
    "{\"cpu\":\"100m\",\"memory\":\"128Mi\"}}}],\"terminationGracePeriodSeconds\":30,\"priority\":-5,"
    "\"tolerations\":[{\"key\":\"node.kubernetes.io/not-ready\",\"operator\":\"Exists\",\"effect\":\"NoExecute\","
    "\"tolerationSeconds\":300}],\"overhead\":null,\"weight\":0.75,\"big\":1.5e10,\"hostNetwork\":false},"
    "\"status\":{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}],\"podIP\":\"10.88.0.7\"}}";

static void test_random_mutations(void **state)
{
    (void)state;
    static const char alphabet[] = "{}[]\":,\\ \t\n0123456789-+.eEtrufalsn\"u\xc3\xa9\x80\xff\x00";
    const size_t plen = sizeof POD - 1;
    char buf[sizeof POD + 64];
    long fast_accepted = 0, rounds = 20000;
    for (long r = 0; r < rounds; r++) {
        memcpy(buf, POD, plen);
        size_t len = plen;
        for (unsigned m = 1 + rnd(3); m > 0 && len > 1; m--) {
            size_t at = rnd((unsigned)len);
            switch (rnd(4)) {
            case 0: buf[at] = alphabet[rnd(sizeof alphabet - 1)]; break; /* replace */
            case 1:                                                      /* delete */
                memmove(buf + at, buf + at + 1, len - at - 1);
                len--;
                break;
            case 2: /* insert */
                if (len + 1 < sizeof buf) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = alphabet[rnd(sizeof alphabet - 1)];
                    len++;
                }
                break;
            default: /* truncate */
                len = at + 1;
                break;
            }
        }
        fast_accepted += check_one(buf, len, rnd(2) ? JSON_REJECT_DUPLICATES : 0);
    }
    /* some mutations keep the document valid (a changed digit or letter inside a string): the fast
     * parser must have taken those itself */
    assert_true(fast_accepted > rounds / 20);
    /* and the unmutated object, with every flag */
    for (size_t f = 0; f < N(FLAGS); f++)
        assert_true(check_one(POD, plen, FLAGS[f]));
}

static void test_copy(void **state)
{
    (void)state;
    for (int i = 0; i < 500; i++) {
        json_t *v = gen(0);
        json_t *c = kc_json_copy(v);
        assert_non_null(c);
        char *a = dump(v), *b = dump(c);
        assert_string_equal(a, b);
        assert_true(json_equal(v, c));
        /* a deep copy: no container is shared with the original */
        if (json_is_object(v) || json_is_array(v))
            assert_ptr_not_equal(v, c);
        free(a);
        free(b);
        json_decref(v);
        json_decref(c);
    }
    assert_null(kc_json_copy(NULL)); /* callers copy optional members without checking */
    json_t *o = json_pack("{s:{s:[i,s]}}", "a", "b", 1, "x");
    json_t *c = kc_json_copy(o);
    json_array_append_new(json_object_get(json_object_get(c, "a"), "b"), json_true());
    assert_int_equal(json_array_size(json_object_get(json_object_get(o, "a"), "b")), 2);
    json_decref(o);
    json_decref(c);
}

/* ---- the writer (util/jsonw.c): what it writes parses back to the same tree, and where jansson
 * and it agree on the form (no control characters: jansson writes \u001F, we write \u001f) the
 * bytes are jansson's compact output (reals aside, below) ---- */

static void check_written(json_t *v)
{
    size_t len;
    char *w = kc_json_dumps(v, &len);
    assert_non_null(w);
    assert_int_equal(len, strlen(w)); /* our output never holds a raw NUL (U+0000 is escaped) */
    json_error_t je;
    json_t *back = json_loadb(w, len, JSON_ALLOW_NUL | JSON_DECODE_ANY, &je);
    if (!back) {
        print_error("written JSON does not parse (%s): %s\n", je.text, w);
        fail();
    }
    char *a = dump(v), *b = dump(back);
    assert_string_equal(a, b);
    int has_ctl = 0;
    for (const char *p = a; *p; p++)
        if (p[0] == '\\' && p[1] == 'u')
            has_ctl = 1;
    /* and reals with an exponent: jansson drops the exponent's '+' and leading zeros, we keep them */
    if (!has_ctl && !strstr(w, "e+") && !strstr(w, "e-"))
        assert_string_equal(w, a);
    free(a);
    free(b);
    free(w);
    json_decref(back);
}

static void test_writer(void **state)
{
    (void)state;
    for (int i = 0; i < 3000; i++) {
        json_t *v = gen(0);
        check_written(v);
        json_decref(v);
    }
    /* strings around the eight-byte steps, with the escaped bytes at every position */
    static const char special[] = {'"', '\\', '\n', '\x01', '\x1f', '\t', 'a', (char)0xc3, (char)0xa9, '/'};
    char s[40];
    for (size_t len = 0; len < 20; len++) {
        for (size_t pos = 0; pos < len; pos++) {
            for (size_t k = 0; k < sizeof special; k++) {
                memset(s, 'x', len);
                s[pos] = special[k];
                if ((unsigned char)special[k] == 0xc3) {
                    if (pos + 1 >= len)
                        continue;
                    s[pos + 1] = (char)0xa9;
                } else if ((unsigned char)special[k] == 0xa9) {
                    continue;
                }
                json_t *v = json_stringn(s, len);
                assert_non_null(v);
                check_written(v);
                json_t *o = json_object();
                json_object_setn_new(o, s, len, json_integer((json_int_t)len - 10));
                check_written(o);
                json_decref(v);
                json_decref(o);
            }
        }
    }
    /* integers at the edges */
    static const json_int_t ints[] = {0, -1, 9, 10, -10, 9223372036854775807LL, -9223372036854775807LL - 1};
    for (size_t i = 0; i < N(ints); i++) {
        json_t *v = json_integer(ints[i]);
        check_written(v);
        json_decref(v);
    }
    /* a buffer's maximum still holds: the write fails instead of growing past it */
    json_t *big = json_pack("{s:s,s:[i,i,i]}", "key", "a value of some length", "list", 1, 2, 3);
    struct kc_buf b;
    kc_buf_init(&b, 20);
    assert_int_not_equal(kc_json_write(&b, big), 0);
    assert_true(b.len <= 20);
    kc_buf_release(&b);
    kc_buf_init(&b, 200);
    assert_int_equal(kc_json_write(&b, big), 0);
    assert_string_equal(b.data, "{\"key\":\"a value of some length\",\"list\":[1,2,3]}");
    kc_buf_release(&b);
    json_decref(big);
}

/* ---- the scanner (util/jsonscan.c): spans of keys in serialised text are exactly the values ---- */

/* keys the scanner can name: written as raw bytes, no '.' (the path separator), not "" (the root) */
static int plain_key(const char *k)
{
    if (!*k)
        return 0;
    for (const unsigned char *p = (const unsigned char *)k; *p; p++)
        if (*p < 0x20 || *p >= 0x80 || *p == '"' || *p == '\\' || *p == '.' || *p == '/')
            return 0;
    return 1;
}

static void check_span(const char *s, size_t len, const char *path, json_t *want)
{
    size_t off, vlen;
    int rc = kc_json_span(s, len, path, &off, &vlen);
    if (!want) {
        assert_int_equal(rc, -1);
        return;
    }
    if (rc) {
        print_error("no span for %s in %s\n", path, s);
        fail();
    }
    json_t *got = json_loadb(s + off, vlen, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    assert_non_null(got);
    char *a = dump(want), *b = dump(got);
    assert_string_equal(a, b);
    free(a);
    free(b);
    json_decref(got);
}

static void test_scanner(void **state)
{
    (void)state;
    static const size_t dumpflags[] = {JSON_COMPACT, JSON_INDENT(2), JSON_ENSURE_ASCII | JSON_COMPACT, JSON_INDENT(1)};
    for (int r = 0; r < 2000; r++) {
        json_t *doc = json_object();
        for (unsigned i = 1 + rnd(6); i > 0; i--) {
            json_t *key = gen_string();
            if (strlen(json_string_value(key)) == json_string_length(key))
                json_object_set_new(doc, json_string_value(key), rnd(3) ? gen(0) : json_pack("{s:o,s:i}", "in", gen(1), "n", 1));
            json_decref(key);
        }
        json_object_set_new(doc, "last", json_string("x\"y\\z"));
        char *s = json_dumps(doc, dumpflags[rnd(N(dumpflags))]);
        size_t len = strlen(s);
        assert_int_equal(kc_json_skip(s, len, 0), (long)len);
        struct kc_jkey keys[16];
        json_t *wants[16];
        size_t nk = 0;
        const char *k;
        json_t *v;
        json_object_foreach(doc, k, v)
        {
            if (!plain_key(k))
                continue;
            check_span(s, len, k, v);
            if (json_is_object(v)) {
                const char *k2;
                json_t *v2;
                json_object_foreach(v, k2, v2)
                {
                    if (!plain_key(k2) || strlen(k) + strlen(k2) + 2 > 200)
                        continue;
                    char path[512];
                    snprintf(path, sizeof path, "%s.%s", k, k2);
                    check_span(s, len, path, v2);
                }
            }
            if (nk < N(keys)) {
                keys[nk] = (struct kc_jkey){.key = k, .klen = strlen(k)};
                wants[nk++] = v;
            }
        }
        check_span(s, len, "no-such-key", NULL);
        /* all of them in one pass, plus one that is absent */
        keys[nk] = (struct kc_jkey){.key = "absent", .klen = 6};
        assert_int_equal(kc_json_keys(s, len, 0, keys, nk + 1), (int)nk);
        for (size_t i = 0; i < nk; i++) {
            assert_true(keys[i].found);
            json_t *got = json_loadb(s + keys[i].off, keys[i].len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
            assert_non_null(got);
            assert_true(json_equal(got, wants[i]));
            json_decref(got);
        }
        assert_false(keys[nk].found);
        free(s);
        json_decref(doc);
    }
    /* strings with escapes at every position around the eight-byte steps */
    for (size_t n = 0; n < 24; n++) {
        for (size_t pos = 0; pos <= n; pos++) {
            char raw[32];
            memset(raw, 'a', n);
            if (pos < n)
                raw[pos] = (char)(pos % 2 ? '"' : '\\');
            json_t *doc = json_pack("{s:s%,s:i}", "s", raw, n, "after", 7);
            char *s = json_dumps(doc, JSON_COMPACT);
            check_span(s, strlen(s), "after", json_object_get(doc, "after"));
            check_span(s, strlen(s), "s", json_object_get(doc, "s"));
            free(s);
            json_decref(doc);
        }
    }
    /* malformed or cut text: -1, never a read past len */
    static const char *bad[] = {"{\"a\":\"unterminated", "{\"a\":\"x\\", "{\"a\" 1}", "{\"a\":[1,2", "[1,2]"};
    for (size_t i = 0; i < N(bad); i++) {
        size_t off, vlen;
        assert_int_equal(kc_json_span(bad[i], strlen(bad[i]), "a.b", &off, &vlen), -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edge_cases),      cmocka_unit_test(test_depth), cmocka_unit_test(test_generated_valid),
        cmocka_unit_test(test_random_mutations), cmocka_unit_test(test_copy),
        cmocka_unit_test(test_writer), cmocka_unit_test(test_scanner),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
