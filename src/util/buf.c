/* buf.c — growable byte buffer with a maximum (see buf.h). */
#include "util/buf.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kc_buf_init(struct kc_buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

void kc_buf_release(struct kc_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static int buf_reserve(struct kc_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return KC_ETOOLARGE;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return KC_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int kc_buf_reserve(struct kc_buf *b, size_t extra) { return buf_reserve(b, extra); }

int kc_buf_append(struct kc_buf *b, const void *p, size_t n)
{
    int rc = buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int kc_buf_puts(struct kc_buf *b, const char *s) { return kc_buf_append(b, s, strlen(s)); }
int kc_buf_putc(struct kc_buf *b, char c) { return kc_buf_append(b, &c, 1); }

int kc_buf_printf(struct kc_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return KC_EINVAL;
    int rc = buf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int kc_buf_json_str(struct kc_buf *b, const char *s)
{
    int rc = kc_buf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; !rc && *p; p++) {
        switch (*p) {
        case '"': rc = kc_buf_append(b, "\\\"", 2); break;
        case '\\': rc = kc_buf_append(b, "\\\\", 2); break;
        case '\n': rc = kc_buf_append(b, "\\n", 2); break;
        case '\r': rc = kc_buf_append(b, "\\r", 2); break;
        case '\t': rc = kc_buf_append(b, "\\t", 2); break;
        default:
            if (*p < 0x20)
                rc = kc_buf_printf(b, "\\u%04x", *p);
            else
                rc = kc_buf_putc(b, (char)*p);
        }
    }
    return rc ? rc : kc_buf_putc(b, '"');
}

char *kc_buf_steal(struct kc_buf *b, size_t *len)
{
    char *d = b->data;
    if (!d) {
        d = calloc(1, 1);
    }
    if (len)
        *len = b->len;
    kc_buf_init(b, b->max);
    return d;
}
