/* jsonw.h — a fast JSON writer for jansson values.
 *
 * jansson's json_dumps guards against reference cycles by formatting every object's address with
 * snprintf("%p") into a hash table; on our hot paths that was 7 % of all instructions per request
 * (docs/bench.md). Our values are trees by construction (we never link a value into itself), so this
 * writer skips the cycle check and appends compact JSON to a kc_buf: keys in insertion order, strings
 * as UTF-8 with only the required escapes, reals with 17 significant digits (and a ".0" when integral,
 * as jansson writes them).
 */
#ifndef KC_UTIL_JSONW_H
#define KC_UTIL_JSONW_H

#include <jansson.h>

#include "util/buf.h"

/* Appends v to b. Returns 0 or KC_ETOOLARGE / KC_ENOMEM from the buffer. */
int kc_json_write(struct kc_buf *b, json_t *v);
/* Compact serialization into a malloc'd NUL-terminated string (*len without the NUL), or NULL. */
char *kc_json_dumps(json_t *v, size_t *len);

#endif
