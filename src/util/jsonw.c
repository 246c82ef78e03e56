/* jsonw.c — compact JSON writer without cycle detection (see jsonw.h). Recursion depth is bounded by
 * the depth of the value, which request parsing limits to KC_MAX_JSON_DEPTH. */
#include "util/jsonw.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Room for n more bytes (and the NUL) without a call in the common case of every token below. */
static inline int room(struct kc_buf *b, size_t n)
{
    return b->len + n < b->cap && b->len + n <= b->max ? 0 : kc_buf_reserve(b, n);
}

static inline int put1(struct kc_buf *b, char c)
{
    int rc = room(b, 1);
    if (rc)
        return rc;
    b->data[b->len++] = c;
    b->data[b->len] = 0;
    return 0;
}

/* Length of the prefix of s[0..n) that needs no escaping (no '"', '\\' or byte < 0x20), eight bytes
 * at a time: serialising is a sixth of a create's instructions, and most of it is strings. */
static size_t plain_prefix(const char *s, size_t n)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        uint64_t q = x ^ (ones * '"'), bs = x ^ (ones * '\\');
        /* a byte of x below 0x20, or a zero byte of q (a '"') or of bs (a backslash): the classic
         * "has a byte less than" test, exact about whether any byte matches; the byte loop below
         * then finds which */
        uint64_t hit = (((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((bs - ones) & ~bs)) & highs;
        if (hit)
            break;
    }
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\')
            break;
        i++;
    }
    return i;
}

static int write_str_escaped(struct kc_buf *b, const char *s, size_t n);

/* A string, and after it the colon of an object key when colon is set: one copy when it needs no
 * escaping. */
static int write_str_then(struct kc_buf *b, const char *s, size_t n, bool colon)
{
    if (plain_prefix(s, n) != n) {
        int rc = write_str_escaped(b, s, n);
        return rc || !colon ? rc : put1(b, ':');
    }
    size_t extra = colon ? 1 : 0;
    int rc = room(b, n + 2 + extra);
    if (rc)
        return rc;
    char *o = b->data + b->len;
    o[0] = '"';
    memcpy(o + 1, s, n);
    o[n + 1] = '"';
    if (colon)
        o[n + 2] = ':';
    b->len += n + 2 + extra;
    b->data[b->len] = 0;
    return 0;
}

static int write_str(struct kc_buf *b, const char *s, size_t n) { return write_str_then(b, s, n, false); }
static int write_key(struct kc_buf *b, const char *k, size_t n) { return write_str_then(b, k, n, true); }

static int write_int(struct kc_buf *b, json_int_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    /* the magnitude as unsigned, so that the most negative value has one */
    unsigned long long m = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[--i] = (char)('0' + m % 10);
        m /= 10;
    } while (m);
    if (v < 0)
        tmp[--i] = '-';
    return kc_buf_append(b, tmp + i, sizeof tmp - i);
}

static int write_str_escaped(struct kc_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    int rc = kc_buf_putc(b, '"');
    size_t start = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        rc = kc_buf_append(b, s + start, i - start);
        start = i + 1;
        if (rc)
            break;
        switch (c) {
        case '"': rc = kc_buf_append(b, "\\\"", 2); break;
        case '\\': rc = kc_buf_append(b, "\\\\", 2); break;
        case '\n': rc = kc_buf_append(b, "\\n", 2); break;
        case '\r': rc = kc_buf_append(b, "\\r", 2); break;
        case '\t': rc = kc_buf_append(b, "\\t", 2); break;
        case '\b': rc = kc_buf_append(b, "\\b", 2); break;
        case '\f': rc = kc_buf_append(b, "\\f", 2); break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            rc = kc_buf_append(b, u, 6);
        }
        }
    }
    if (!rc)
        rc = kc_buf_append(b, s + start, n - start);
    return rc ? rc : kc_buf_putc(b, '"');
}

int kc_json_write(struct kc_buf *b, json_t *v)
{
    char num[40];
    int rc = 0;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        rc = put1(b, '{');
        const char *k;
        size_t klen;
        json_t *x;
        int first = 1;
        json_object_keylen_foreach(v, k, klen, x)
        {
            if (!first && (rc = put1(b, ',')))
                return rc;
            first = 0;
            if ((rc = write_key(b, k, klen)) || (rc = kc_json_write(b, x)))
                return rc;
        }
        return rc ? rc : put1(b, '}');
    }
    case JSON_ARRAY: {
        rc = put1(b, '[');
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            if ((i && (rc = put1(b, ','))) || (rc = kc_json_write(b, x)))
                return rc;
        }
        return rc ? rc : put1(b, ']');
    }
    case JSON_STRING: return write_str(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER: return write_int(b, json_integer_value(v));
    case JSON_REAL: {
        int n = snprintf(num, sizeof num, "%.17g", json_real_value(v));
        if (!strpbrk(num, ".eEn"))
            n += snprintf(num + n, sizeof num - (size_t)n, ".0");
        return kc_buf_append(b, num, (size_t)n);
    }
    case JSON_TRUE: return kc_buf_append(b, "true", 4);
    case JSON_FALSE: return kc_buf_append(b, "false", 5);
    case JSON_NULL: return kc_buf_append(b, "null", 4);
    }
    return 0;
}

char *kc_json_dumps(json_t *v, size_t *len)
{
    struct kc_buf b;
    kc_buf_init(&b, KC_BUF_UNLIMITED);
    if (kc_json_write(&b, v)) {
        kc_buf_release(&b);
        return NULL;
    }
    return kc_buf_steal(&b, len);
}
