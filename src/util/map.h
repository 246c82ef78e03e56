/* map.h — a string-keyed hash map (open addressing, linear probing, tombstones).
 *
 * Keys are copied; values are opaque pointers the caller owns. Not
 * thread-safe: the owner locks. Used by the watch cache (key → object) and
 * the schema (name → type), both on request hot paths, hence a flat table
 * instead of a tree.
 */
#ifndef KC_UTIL_MAP_H
#define KC_UTIL_MAP_H

#include <stddef.h>

struct kc_map_slot;
struct kc_map {
    struct kc_map_slot *slots;
    size_t cap, len, used; /* used counts live + tombstones */
};

void kc_map_init(struct kc_map *m);
/* Frees the table and keys (not the values). */
void kc_map_release(struct kc_map *m);
void *kc_map_get(const struct kc_map *m, const char *key);
/* Inserts or replaces; returns the previous value (or NULL). *err set to -1 on OOM. */
void *kc_map_put(struct kc_map *m, const char *key, void *val, int *err);
/* Removes; returns the removed value or NULL. */
void *kc_map_del(struct kc_map *m, const char *key);
/* Iteration: i from 0; returns the next live slot index >= i or -1. */
long kc_map_next(const struct kc_map *m, long i, const char **key, void **val);
static inline size_t kc_map_len(const struct kc_map *m) { return m->len; }
unsigned long kc_hash_str(const char *s);

#endif
