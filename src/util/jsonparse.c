/* jsonparse.c — in-place JSON parser building jansson values (see jsonparse.h for why and for the
 * contract: accept exactly what json_loadb accepts, build an equal tree, hand everything else to
 * json_loadb).
 *
 * The grammar is RFC 8259's, with jansson's extra rules: strings must be valid UTF-8 (no overlong
 * forms, no encoded surrogates, nothing above U+10FFFF), \u escapes must pair surrogates, \u0000 only
 * with JSON_ALLOW_NUL and never in an object key, integers (no fraction, no exponent) must fit a
 * json_int_t, reals must not overflow, and the top level is an object or an array unless
 * JSON_DECODE_ANY. Any failure here ends in json_loadb, so rejecting is always safe; accepting is
 * what must be exact. */
#include "util/jsonparse.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* jansson's own limit is JSON_PARSER_MAX_DEPTH (2,048); deeper input goes to json_loadb, which
 * reports it. Request bodies are limited far below this before they are parsed. */
#define MAX_DEPTH 1024

struct parser {
    const char *p, *end;
    size_t flags;
    int depth;
    char *scratch; /* decoded strings with escapes */
    size_t scap;
    char small[256];
};

static inline void skip_ws(struct parser *ps)
{
    const char *p = ps->p;
    while (p < ps->end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    ps->p = p;
}

/* Length of the valid UTF-8 sequence starting at p (first byte >= 0x80), 0 if invalid. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n = (size_t)(end - p);
    if (c >= 0xC2 && c <= 0xDF)
        return n >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (p[2] & 0xC0) != 0x80)
            return 0;
        unsigned lo = 0x80, hi = 0xBF;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
        return p[1] >= lo && p[1] <= hi ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        unsigned lo = 0x80, hi = 0xBF;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
        return p[1] >= lo && p[1] <= hi ? 4 : 0;
    }
    return 0;
}

static int scratch_reserve(struct parser *ps, size_t need)
{
    if (need <= ps->scap)
        return 0;
    size_t cap = ps->scap * 2;
    while (cap < need)
        cap *= 2;
    char *n = ps->scratch == ps->small ? malloc(cap) : realloc(ps->scratch, cap);
    if (!n)
        return -1;
    if (ps->scratch == ps->small)
        memcpy(n, ps->small, sizeof ps->small);
    ps->scratch = n;
    ps->scap = cap;
    return 0;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t utf8_put(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ps->p is just past the opening quote. On success (*s, *n) is the decoded text (pointing into the input
 * when it has no escapes, else into ps->scratch, valid until the next string), *nul whether it holds
 * U+0000, and ps->p is past the closing quote. */
static int parse_string(struct parser *ps, const char **s, size_t *n, bool *nul)
{
    const unsigned char *p = (const unsigned char *)ps->p, *end = (const unsigned char *)ps->end;
    const unsigned char *start = p;
    *nul = false;
    for (;;) {
        if (p >= end)
            return -1;
        unsigned c = *p;
        if (c == '"') {
            *s = (const char *)start;
            *n = (size_t)(p - start);
            ps->p = (const char *)p + 1;
            return 0;
        }
        if (c == '\\')
            break;
        if (c < 0x20)
            return -1;
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t k = utf8_seq(p, end);
        if (!k)
            return -1;
        p += k;
    }
    /* escapes: decode into scratch; the output is never longer than the input */
    size_t o = (size_t)(p - start);
    if (scratch_reserve(ps, o + 64))
        return -1;
    memcpy(ps->scratch, start, o);
    for (;;) {
        if (p >= end)
            return -1;
        if (scratch_reserve(ps, o + 8))
            return -1;
        unsigned c = *p;
        if (c == '"') {
            *s = ps->scratch;
            *n = o;
            ps->p = (const char *)p + 1;
            return 0;
        }
        if (c == '\\') {
            if (end - p < 2)
                return -1;
            char e = (char)p[1];
            p += 2;
            switch (e) {
            case '"': ps->scratch[o++] = '"'; break;
            case '\\': ps->scratch[o++] = '\\'; break;
            case '/': ps->scratch[o++] = '/'; break;
            case 'b': ps->scratch[o++] = '\b'; break;
            case 'f': ps->scratch[o++] = '\f'; break;
            case 'n': ps->scratch[o++] = '\n'; break;
            case 'r': ps->scratch[o++] = '\r'; break;
            case 't': ps->scratch[o++] = '\t'; break;
            case 'u': {
                unsigned cp;
                if (end - p < 4 || hex4((const char *)p, &cp))
                    return -1;
                p += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    unsigned lo;
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4((const char *)p + 2, &lo) || lo < 0xDC00 ||
                        lo > 0xDFFF)
                        return -1;
                    p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return -1;
                } else if (cp == 0) {
                    if (!(ps->flags & JSON_ALLOW_NUL))
                        return -1;
                    *nul = true;
                }
                o += utf8_put(ps->scratch + o, cp);
                break;
            }
            default: return -1;
            }
            continue;
        }
        if (c < 0x20)
            return -1;
        if (c < 0x80) {
            ps->scratch[o++] = (char)c;
            p++;
            continue;
        }
        size_t k = utf8_seq(p, end);
        if (!k)
            return -1;
        memcpy(ps->scratch + o, p, k);
        o += k;
        p += k;
    }
}

static inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* The end of the run of one or more digits at p, or NULL if p is not at a digit. */
static const char *digit_run(const char *p, const char *end)
{
    if (p >= end || !is_digit(*p))
        return NULL;
    while (p < end && is_digit(*p))
        p++;
    return p;
}

static json_t *parse_number(struct parser *ps)
{
    const char *p = ps->p, *end = ps->end, *start = p;
    bool neg = false, real = false;
    if (p < end && *p == '-') {
        neg = true;
        p++;
    }
    if (p >= end || !is_digit(*p))
        return NULL;
    const char *digits = p;
    if (*p == '0') {
        p++;
        if (p < end && is_digit(*p))
            return NULL;
    } else {
        p = digit_run(p, end);
    }
    const char *digits_end = p;
    if (p < end && *p == '.') {
        if (!(p = digit_run(p + 1, end)))
            return NULL;
        real = true;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!(p = digit_run(p, end)))
            return NULL;
        real = true;
    }
    if (!real) {
        /* json_int_t is long long: the magnitude may reach 2^63 - 1, or 2^63 when negative */
        uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
        for (const char *d = digits; d < digits_end; d++) {
            unsigned dv = (unsigned)(*d - '0');
            if (v > (limit - dv) / 10)
                return NULL; /* json_loadb: "too big integer" */
            v = v * 10 + dv;
        }
        ps->p = p;
        json_int_t i = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(json_int_t)v) : (json_int_t)v;
        return json_integer(i);
    }
    char tmp[128];
    size_t n = (size_t)(p - start);
    if (n >= sizeof tmp)
        return NULL;
    memcpy(tmp, start, n);
    tmp[n] = 0;
    char *e;
    errno = 0;
    double d = strtod(tmp, &e);
    /* a locale whose decimal point is not '.' stops strtod early: jansson handles that one */
    if (e != tmp + n || ((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE))
        return NULL;
    ps->p = p;
    return json_real(d);
}

static json_t *parse_value(struct parser *ps);

/* After a member or element: 1 when `close` ends the container (consumed), 0 after a ',' (the next
 * one's first character is at ps->p), -1 on anything else. */
static int after_item(struct parser *ps, char close)
{
    skip_ws(ps);
    if (ps->p >= ps->end)
        return -1;
    if (*ps->p == close) {
        ps->p++;
        return 1;
    }
    if (*ps->p != ',')
        return -1;
    ps->p++;
    skip_ws(ps);
    return 0;
}

/* Just inside a container: true (and consumed) when `close` follows at once. */
static bool empty_container(struct parser *ps, char close)
{
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return true;
    }
    return false;
}

/* One `"key": value` member into o; 0 or -1. */
static int add_member(struct parser *ps, json_t *o)
{
    if (ps->p >= ps->end || *ps->p != '"')
        return -1;
    ps->p++;
    const char *k;
    size_t kn;
    bool nul;
    if (parse_string(ps, &k, &kn, &nul) || nul)
        return -1;
    /* a key with escapes was decoded into scratch, which the value's strings reuse: keep a copy (rare) */
    char *kown = NULL;
    if (k == ps->scratch) {
        if (!(kown = malloc(kn ? kn : 1)))
            return -1;
        memcpy(kown, k, kn);
        k = kown;
    }
    int rc = -1;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ':') {
        ps->p++;
        skip_ws(ps);
        json_t *v = parse_value(ps);
        size_t before = json_object_size(o);
        /* a duplicate replaces the earlier value and leaves the size as it was */
        if (v && json_object_setn_new_nocheck(o, k, kn, v) == 0)
            rc = (ps->flags & JSON_REJECT_DUPLICATES) && json_object_size(o) == before ? -1 : 0;
    }
    free(kown);
    return rc;
}

/* An object or an array; ps->p is just past its '{' or '['. */
static json_t *parse_container(struct parser *ps, bool obj)
{
    char close = obj ? '}' : ']';
    json_t *c = obj ? json_object() : json_array();
    if (!c || empty_container(ps, close))
        return c;
    for (;;) {
        int rc;
        if (obj) {
            rc = add_member(ps, c);
        } else {
            json_t *v = parse_value(ps);
            rc = v && json_array_append_new(c, v) == 0 ? 0 : -1;
        }
        int next = rc ? -1 : after_item(ps, close);
        if (next < 0) {
            json_decref(c);
            return NULL;
        }
        if (next)
            return c;
    }
}

static bool literal(struct parser *ps, const char *word, size_t n)
{
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n))
        return false;
    ps->p += n;
    return true;
}

/* ps->p is at the value's first character (no whitespace before it). */
static json_t *parse_value(struct parser *ps)
{
    if (ps->p >= ps->end)
        return NULL;
    switch (*ps->p) {
    case '{':
    case '[': {
        if (++ps->depth > MAX_DEPTH)
            return NULL;
        bool obj = *ps->p == '{';
        ps->p++;
        json_t *v = parse_container(ps, obj);
        ps->depth--;
        return v;
    }
    case '"': {
        ps->p++;
        const char *s;
        size_t n;
        bool nul;
        if (parse_string(ps, &s, &n, &nul))
            return NULL;
        return json_stringn_nocheck(s, n);
    }
    case 't': return literal(ps, "true", 4) ? json_true() : NULL;
    case 'f': return literal(ps, "false", 5) ? json_false() : NULL;
    case 'n': return literal(ps, "null", 4) ? json_null() : NULL;
    default: return parse_number(ps);
    }
}

json_t *kc_json_loadb_fast(const char *buf, size_t len, size_t flags)
{
    if (flags & ~(size_t)(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL))
        return NULL;
    struct parser ps = {.p = buf, .end = buf + len, .flags = flags};
    ps.scratch = ps.small;
    ps.scap = sizeof ps.small;
    skip_ws(&ps);
    json_t *v = NULL;
    if (ps.p < ps.end && ((flags & JSON_DECODE_ANY) || *ps.p == '{' || *ps.p == '['))
        v = parse_value(&ps);
    if (v) {
        skip_ws(&ps);
        if (ps.p != ps.end) {
            json_decref(v);
            v = NULL;
        }
    }
    if (ps.scratch != ps.small)
        free(ps.scratch);
    return v;
}

json_t *kc_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *error)
{
    json_t *v = kc_json_loadb_fast(buf, len, flags);
    return v ? v : json_loadb(buf, len, flags, error);
}

json_t *kc_json_loads(const char *s, size_t flags, json_error_t *error)
{
    return kc_json_loadb(s, strlen(s), flags, error);
}

json_t *kc_json_copy(const json_t *v)
{
    json_t *x = (json_t *)v;
    if (!x)
        return NULL;
    switch (json_typeof(x)) {
    case JSON_OBJECT: {
        json_t *o = json_object();
        const char *k;
        size_t kn;
        json_t *m;
        json_object_keylen_foreach(x, k, kn, m)
        {
            json_t *c = kc_json_copy(m);
            if (!c || json_object_setn_new_nocheck(o, k, kn, c)) {
                json_decref(o);
                return NULL;
            }
        }
        return o;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(x);
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++) {
            if (json_array_append_new(a, kc_json_copy(json_array_get(x, i)))) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    case JSON_STRING: return json_stringn_nocheck(json_string_value(x), json_string_length(x));
    case JSON_INTEGER: return json_integer(json_integer_value(x));
    case JSON_REAL: return json_real(json_real_value(x));
    default: return json_incref(x); /* true, false, null: jansson's singletons */
    }
}
