/* map.c — string-keyed open-addressing hash map (see map.h). FNV-1a hashing. */
#include "util/map.h"

#include <stdlib.h>
#include <string.h>

struct kc_map_slot {
    char *key;          /* NULL = empty; TOMB = deleted */
    void *val;
    unsigned long hash;
};

static char tomb_marker;
#define TOMB (&tomb_marker)

unsigned long kc_hash_str(const char *s)
{
    unsigned long h = 1469598103934665603UL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211UL;
    }
    return h;
}

void kc_map_init(struct kc_map *m) { memset(m, 0, sizeof *m); }

void kc_map_release(struct kc_map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != TOMB)
            free(m->slots[i].key);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static long find(const struct kc_map *m, const char *key, unsigned long h)
{
    if (!m->cap)
        return -1;
    size_t mask = m->cap - 1;
    for (size_t i = h & mask, n = 0; n < m->cap; i = (i + 1) & mask, n++) {
        struct kc_map_slot *s = &m->slots[i];
        if (!s->key)
            return -1;
        if (s->key != TOMB && s->hash == h && strcmp(s->key, key) == 0)
            return (long)i;
    }
    return -1;
}

void *kc_map_get(const struct kc_map *m, const char *key)
{
    long i = find(m, key, kc_hash_str(key));
    return i < 0 ? NULL : m->slots[i].val;
}

static int grow(struct kc_map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    if (m->len * 4 < m->cap) /* mostly tombstones: rehash at same size */
        ncap = m->cap;
    struct kc_map_slot *ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return -1;
    for (size_t i = 0; i < m->cap; i++) {
        struct kc_map_slot *s = &m->slots[i];
        if (!s->key || s->key == TOMB)
            continue;
        size_t j = s->hash & (ncap - 1);
        while (ns[j].key)
            j = (j + 1) & (ncap - 1);
        ns[j] = *s;
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    m->used = m->len;
    return 0;
}

void *kc_map_put(struct kc_map *m, const char *key, void *val, int *err)
{
    unsigned long h = kc_hash_str(key);
    long i = find(m, key, h);
    if (err)
        *err = 0;
    if (i >= 0) {
        void *old = m->slots[i].val;
        m->slots[i].val = val;
        return old;
    }
    if ((m->used + 1) * 4 > m->cap * 3 && grow(m) < 0) {
        if (err)
            *err = -1;
        return NULL;
    }
    char *k = strdup(key);
    if (!k) {
        if (err)
            *err = -1;
        return NULL;
    }
    size_t mask = m->cap - 1, j = h & mask;
    while (m->slots[j].key && m->slots[j].key != TOMB)
        j = (j + 1) & mask;
    if (!m->slots[j].key)
        m->used++;
    m->slots[j].key = k;
    m->slots[j].val = val;
    m->slots[j].hash = h;
    m->len++;
    return NULL;
}

void *kc_map_del(struct kc_map *m, const char *key)
{
    long i = find(m, key, kc_hash_str(key));
    if (i < 0)
        return NULL;
    void *old = m->slots[i].val;
    free(m->slots[i].key);
    m->slots[i].key = TOMB;
    m->slots[i].val = NULL;
    m->len--;
    return old;
}

long kc_map_next(const struct kc_map *m, long i, const char **key, void **val)
{
    for (size_t j = (size_t)(i < 0 ? 0 : i); j < m->cap; j++) {
        struct kc_map_slot *s = &m->slots[j];
        if (s->key && s->key != TOMB) {
            if (key)
                *key = s->key;
            if (val)
                *val = s->val;
            return (long)j;
        }
    }
    return -1;
}
