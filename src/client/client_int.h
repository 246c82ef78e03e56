/* client_int.h — helpers shared by the client library's transports (not a public API).
 *
 * kc_lines splits a byte stream of newline-delimited watch events into
 * lines for a kc_watch_line_fn. Each line is assembled in a bounded buffer
 * (KC_WATCH_MAX_LINE) so the callback always sees it NUL-terminated.
 */
#ifndef KC_CLIENT_CLIENT_INT_H
#define KC_CLIENT_CLIENT_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "client/client.h"
#include "util/buf.h"

/* One watch event line: an object (≤ 3 MiB request body, as the server
 * allows) plus its envelope; anything longer is a broken stream. */
#define KC_WATCH_MAX_LINE (8u * 1024 * 1024)

struct kc_lines {
    struct kc_buf partial;
    kc_watch_line_fn fn;
    void *ctx;
};

void kc_lines_init(struct kc_lines *l, kc_watch_line_fn fn, void *ctx);
/* Returns 0 to continue, 1 if the callback asked to stop, KC_ETOOLARGE if a line exceeds the maximum. */
int kc_lines_feed(struct kc_lines *l, const char *data, size_t n);
void kc_lines_release(struct kc_lines *l);

#endif
