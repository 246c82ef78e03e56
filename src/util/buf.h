/* buf.h — a growable byte buffer with a hard maximum.
 *
 * Every buffer that holds user-controlled data is told how large it may
 * grow (max); appends past it fail with KC_ETOOLARGE and leave the buffer
 * as it was. The contents are always NUL-terminated (the NUL is not counted
 * in len). kc_buf_init allocates nothing; kc_buf_release frees the
 * contents; a released buffer may be re-used after kc_buf_init.
 */
#ifndef KC_UTIL_BUF_H
#define KC_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct kc_buf {
    char *data;
    size_t len, cap, max;
};

#define KC_BUF_UNLIMITED ((size_t)-1)

void kc_buf_init(struct kc_buf *b, size_t max);
void kc_buf_release(struct kc_buf *b);
int kc_buf_append(struct kc_buf *b, const void *p, size_t n);
/* Makes room for extra more bytes (and the NUL) without changing len; KC_ETOOLARGE past max. */
int kc_buf_reserve(struct kc_buf *b, size_t extra);
int kc_buf_puts(struct kc_buf *b, const char *s);
int kc_buf_putc(struct kc_buf *b, char c);
int kc_buf_printf(struct kc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included. */
int kc_buf_json_str(struct kc_buf *b, const char *s);
/* Hands the contents to the caller (who frees them) and re-initialises b. */
char *kc_buf_steal(struct kc_buf *b, size_t *len);

#endif
