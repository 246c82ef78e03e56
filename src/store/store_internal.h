/* store_internal.h — helpers shared by the store backends (not part of the
 * public interface; the API server includes only store.h). */
#ifndef KC_STORE_STORE_INTERNAL_H
#define KC_STORE_STORE_INTERNAL_H

#include <stddef.h>

#include "store/store.h"

/* Checks a key (1..KC_STORE_MAX_KEY bytes, no byte >= 0xF8); sets *len.
 * allow_empty: prefixes may be "". Returns 0, KC_EINVAL or KC_ETOOLARGE. */
int kc_store_check_key(const char *key, int allow_empty, size_t *len, struct kc_err *err);

/* Writes the smallest string greater than every key starting with prefix
 * into out (capacity KC_STORE_MAX_KEY + 2). For "" that is "\xff". */
void kc_store_prefix_end(const char *prefix, size_t plen, char *out);

/* 1 if key starts with prefix. */
int kc_store_has_prefix(const char *key, const char *prefix, size_t plen);

/* Fills kv with copies of key and value (value NUL-terminated). */
int kc_kv_set(struct kc_kv *kv, const char *key, size_t klen, const void *value, size_t vlen,
              kc_rev_t create_rev, kc_rev_t mod_rev);

/* Appends copies to l (growing its array geometrically); *cap tracks capacity. */
int kc_kv_list_push(struct kc_kv_list *l, size_t *cap, const char *key, size_t klen, const void *value,
                    size_t vlen, kc_rev_t create_rev, kc_rev_t mod_rev);

#endif
