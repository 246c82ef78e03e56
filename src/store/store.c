/* store.c — backend-independent parts of the store interface (store.h):
 * releasing out-structures, key validation and prefix ranges, and copying
 * key/value pairs into caller-owned kc_kv structures. No threads, no state. */
#include "store/store_internal.h"

#include <semaphore.h>
#include <stdlib.h>
#include <string.h>

void kc_kv_release(struct kc_kv *kv)
{
    if (!kv)
        return;
    free(kv->key);
    free(kv->value);
    memset(kv, 0, sizeof *kv);
}

void kc_kv_list_release(struct kc_kv_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        kc_kv_release(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

int kc_store_check_key(const char *key, int allow_empty, size_t *len, struct kc_err *err)
{
    if (!key)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "store key is NULL");
    size_t n = strnlen(key, KC_STORE_MAX_KEY + 1);
    if (n > KC_STORE_MAX_KEY)
        return kc_err_set(err, KC_ETOOLARGE, 413, "RequestEntityTooLarge", "store key longer than %d bytes",
                          KC_STORE_MAX_KEY);
    if (n == 0 && !allow_empty)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "store key is empty");
    for (size_t i = 0; i < n; i++) {
        /* 0xF8..0xFF never occur in UTF-8; excluding them keeps prefix ends simple. */
        if ((unsigned char)key[i] >= 0xF8)
            return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "store key contains byte 0x%02x",
                              (unsigned char)key[i]);
    }
    if (len)
        *len = n;
    return 0;
}

void kc_store_prefix_end(const char *prefix, size_t plen, char *out)
{
    if (plen == 0) {
        out[0] = (char)0xFF;
        out[1] = '\0';
        return;
    }
    memcpy(out, prefix, plen);
    /* Last byte < 0xF8 (checked), so the increment cannot overflow. */
    out[plen - 1] = (char)((unsigned char)out[plen - 1] + 1);
    out[plen] = '\0';
}

int kc_store_has_prefix(const char *key, const char *prefix, size_t plen)
{
    return strncmp(key, prefix, plen) == 0;
}

int kc_kv_set(struct kc_kv *kv, const char *key, size_t klen, const void *value, size_t vlen,
              kc_rev_t create_rev, kc_rev_t mod_rev)
{
    char *k = malloc(klen + 1);
    char *v = malloc(vlen + 1);
    if (!k || !v) {
        free(k);
        free(v);
        return KC_ENOMEM;
    }
    memcpy(k, key, klen);
    k[klen] = '\0';
    if (vlen)
        memcpy(v, value, vlen);
    v[vlen] = '\0';
    kv->key = k;
    kv->value = v;
    kv->value_len = vlen;
    kv->create_rev = create_rev;
    kv->mod_rev = mod_rev;
    return 0;
}

int kc_kv_list_push(struct kc_kv_list *l, size_t *cap, const char *key, size_t klen, const void *value,
                    size_t vlen, kc_rev_t create_rev, kc_rev_t mod_rev)
{
    if (l->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct kc_kv *it = realloc(l->items, nc * sizeof *it);
        if (!it)
            return KC_ENOMEM;
        l->items = it;
        *cap = nc;
    }
    int rc = kc_kv_set(&l->items[l->n], key, klen, value, vlen, create_rev, mod_rev);
    if (rc == 0)
        l->n++;
    return rc;
}

void kc_store_complete(void *done)
{
    if (done)
        sem_post(done);
}
