/* jsonw.c — compact JSON writer without cycle detection (see jsonw.h). Recursion depth is bounded by
 * the depth of the value, which request parsing limits to KC_MAX_JSON_DEPTH. */
#include "util/jsonw.h"

#include <stdio.h>
#include <string.h>

static int write_str(struct kc_buf *b, const char *s, size_t n)
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
        rc = kc_buf_putc(b, '{');
        const char *k;
        size_t klen;
        json_t *x;
        int first = 1;
        json_object_keylen_foreach(v, k, klen, x)
        {
            if (!first && (rc = kc_buf_putc(b, ',')))
                return rc;
            first = 0;
            if ((rc = write_str(b, k, klen)) || (rc = kc_buf_putc(b, ':')) || (rc = kc_json_write(b, x)))
                return rc;
        }
        return rc ? rc : kc_buf_putc(b, '}');
    }
    case JSON_ARRAY: {
        rc = kc_buf_putc(b, '[');
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            if ((i && (rc = kc_buf_putc(b, ','))) || (rc = kc_json_write(b, x)))
                return rc;
        }
        return rc ? rc : kc_buf_putc(b, ']');
    }
    case JSON_STRING: return write_str(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER: {
        int n = snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return kc_buf_append(b, num, (size_t)n);
    }
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
