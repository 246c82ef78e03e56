/* image_auth.c — registry credentials from image pull secrets.
 *
 * A pod's imagePullSecrets are Secrets of type kubernetes.io/dockerconfigjson (data[".dockerconfigjson"]
 * = base64 of {"auths": {KEY: ENTRY}}) or kubernetes.io/dockercfg (data[".dockercfg"] = base64 of
 * {KEY: ENTRY}); ENTRY has username/password or auth (base64 "user:pass"). We flatten them into one
 * JSON object keyed by the normalised registry (host[:port]) whose entries remember the secret's name,
 * so that a failed pull can say which secret was tried. No state, no threads.
 */
#include "agent/image_int.h"
#include "agent/image.h"
#include "util/jsonparse.h"

#include <stdlib.h>
#include <string.h>

#define AUTH_DOC_MAX (1 << 20) /* a decoded dockerconfig is at most 1 MiB */
#define CRED_MAX 4096

long kc_image_b64dec(const char *in, size_t inlen, unsigned char *out, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned v = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < inlen; i++) {
        char c = in[i];
        if (c == '=' || c == '\n' || c == '\r')
            continue;
        const char *p = c ? strchr(tbl, c) : NULL;
        if (!p)
            return -1;
        v = (v << 6) | (unsigned)(p - tbl);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= n)
                return -1;
            out[o++] = (unsigned char)(v >> bits);
            v &= (1u << bits) - 1;
        }
    }
    return (long)o;
}

void kc_image_auth_key(const char *key, char *out, size_t n)
{
    if (strncmp(key, "https://", 8) == 0)
        key += 8;
    else if (strncmp(key, "http://", 7) == 0)
        key += 7;
    size_t len = strcspn(key, "/");
    if (len >= n)
        len = n - 1;
    memcpy(out, key, len);
    out[len] = 0;
    if (strcmp(out, "index.docker.io") == 0 || strcmp(out, "registry-1.docker.io") == 0 ||
        strcmp(out, "registry.hub.docker.com") == 0)
        snprintf(out, n, "docker.io");
}

json_t *kc_image_auth_lookup(json_t *auths, const char *domain)
{
    if (!json_is_object(auths))
        return NULL;
    json_t *e = json_object_get(auths, domain);
    if (e)
        return e;
    /* Keys given by the caller may not be normalised yet. */
    const char *k;
    json_t *v;
    char nk[KC_IMG_HOST_MAX];
    json_object_foreach(auths, k, v) {
        kc_image_auth_key(k, nk, sizeof nk);
        if (strcmp(nk, domain) == 0)
            return v;
    }
    return NULL;
}

/* Adds one dockerconfig ENTRY under key. */
static int add_entry(json_t *auths, const char *key, json_t *ent, const char *secret, struct kc_err *err)
{
    char nk[KC_IMG_HOST_MAX];
    kc_image_auth_key(key, nk, sizeof nk);
    if (!*nk || !json_is_object(ent) || json_object_get(auths, nk))
        return 0; /* the first secret naming a registry wins, as upstream tries them in order */
    const char *user = json_string_value(json_object_get(ent, "username"));
    const char *pass = json_string_value(json_object_get(ent, "password"));
    const char *auth = json_string_value(json_object_get(ent, "auth"));
    char cred[CRED_MAX];
    if (auth && *auth) {
        long n = kc_image_b64dec(auth, strlen(auth), (unsigned char *)cred, sizeof cred - 1);
        char *colon = n > 0 ? memchr(cred, ':', (size_t)n) : NULL;
        if (!colon)
            return kc_err_set(err, KC_EINVAL, 0, "ErrImagePull",
                              "secret \"%s\": the auth of registry \"%s\" is not base64 of user:password", secret, nk);
        cred[n] = 0;
        *colon = 0;
        user = cred;
        pass = colon + 1;
    }
    if (!user || !pass)
        return 0;
    json_t *o = json_pack("{s:s, s:s, s:s}", "username", user, "password", pass, "secret", secret);
    if (!o || json_object_set_new(auths, nk, o))
        return kc_err_set(err, KC_ENOMEM, 0, "ErrImagePull", "out of memory");
    return 0;
}

int kc_image_auths_add_secret(json_t *auths, json_t *secret, struct kc_err *err)
{
    const char *name = json_string_value(json_object_get(json_object_get(secret, "metadata"), "name"));
    const char *type = json_string_value(json_object_get(secret, "type"));
    if (!name)
        name = "(unnamed)";
    bool cfgjson = type && strcmp(type, "kubernetes.io/dockerconfigjson") == 0;
    bool cfg = type && strcmp(type, "kubernetes.io/dockercfg") == 0;
    if (!json_is_object(auths) || (!cfgjson && !cfg))
        return kc_err_set(err, KC_EINVAL, 0, "ErrImagePull",
                          "secret \"%s\" has type \"%s\", not kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg",
                          name, type ? type : "");
    const char *key = cfgjson ? ".dockerconfigjson" : ".dockercfg";
    const char *b64 = json_string_value(json_object_get(json_object_get(secret, "data"), key));
    if (!b64)
        return kc_err_set(err, KC_EINVAL, 0, "ErrImagePull", "secret \"%s\" has no data[\"%s\"]", name, key);
    size_t blen = strlen(b64);
    if (blen > AUTH_DOC_MAX / 3 * 4 + 4)
        return kc_err_set(err, KC_ETOOLARGE, 0, "ErrImagePull", "secret \"%s\": data[\"%s\"] is too large", name, key);
    unsigned char *doc = malloc(blen / 4 * 3 + 4);
    if (!doc)
        return kc_err_set(err, KC_ENOMEM, 0, "ErrImagePull", "out of memory");
    long n = kc_image_b64dec(b64, blen, doc, blen / 4 * 3 + 3);
    json_t *root = n >= 0 ? kc_json_loadb((const char *)doc, (size_t)n, 0, NULL) : NULL;
    free(doc);
    json_t *map = cfgjson ? json_object_get(root, "auths") : root;
    if (!json_is_object(map)) {
        json_decref(root);
        return kc_err_set(err, KC_EINVAL, 0, "ErrImagePull", "secret \"%s\": data[\"%s\"] is not a valid %s document",
                          name, key, cfgjson ? "{\"auths\": {...}}" : "dockercfg");
    }
    const char *k;
    json_t *v;
    int rc = 0;
    json_object_foreach(map, k, v) {
        if ((rc = add_entry(auths, k, v, name, err)))
            break;
    }
    json_decref(root);
    return rc;
}

void kc_image_auths_note_secret(json_t *auths, const char *name, const char *problem)
{
    if (!json_is_object(auths) || !name)
        return;
    json_t *arr = json_object_get(auths, KC_IMG_UNUSABLE_KEY);
    if (!json_is_array(arr)) {
        arr = json_array();
        if (json_object_set_new(auths, KC_IMG_UNUSABLE_KEY, arr))
            return;
    }
    if (json_array_size(arr) < 16)
        json_array_append_new(arr, json_pack("{s:s, s:s}", "secret", name, "problem", problem ? problem : "unusable"));
}
