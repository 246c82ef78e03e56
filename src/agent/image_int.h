/* image_int.h — internals of the image store shared by image*.c and the unit tests.
 *
 *   reference parsing (image_ref.c), pull-secret decoding (image_auth.c), the registry client
 *   (image_reg.c) and layer unpacking with whiteouts (image_unpack.c).
 */
#ifndef KC_AGENT_IMAGE_INT_H
#define KC_AGENT_IMAGE_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "util/buf.h"
#include "util/err.h"

#define KC_IMG_HOST_MAX 256
#define KC_IMG_REPO_MAX 256
#define KC_IMG_TAG_MAX 129
#define KC_IMG_DIGEST_MAX 80
#define KC_IMG_REF_MAX 512
#define KC_IMG_MANIFEST_MAX (4 << 20)   /* manifests and indexes: 4 MiB */
#define KC_IMG_CONFIG_MAX (8 << 20)     /* image config blob: 8 MiB */
#define KC_IMG_LAYER_MAX (8LL << 30)    /* one layer blob: 8 GiB */
#define KC_IMG_LAYERS_MAX 256           /* layers of one image */

/* ---- references (image_ref.c) ---- */
struct kc_image_ref {
    char domain[KC_IMG_HOST_MAX]; /* "docker.io", "localhost:5000" */
    char repo[KC_IMG_REPO_MAX];   /* "library/busybox" */
    char tag[KC_IMG_TAG_MAX];     /* "latest" unless a digest alone was given ("" then) */
    char digest[KC_IMG_DIGEST_MAX]; /* "sha256:<64 hex>" or "" */
    char name[KC_IMG_REF_MAX];    /* normalised full reference: domain/repo[:tag][@digest] */
};
/* KC_EINVAL, reason InvalidImageName, message naming what is wrong. */
int kc_image_ref_parse(const char *s, struct kc_image_ref *out, struct kc_err *err);
/* The host to contact for a domain ("docker.io" → "registry-1.docker.io"). */
const char *kc_image_ref_api_host(const char *domain);
/* "sha256:<64 lowercase hex>"? */
bool kc_image_digest_valid(const char *d);

/* ---- credentials (image_auth.c) ---- */
#define KC_IMG_UNUSABLE_KEY "#unusable" /* auths key of kc_image_auths_note_secret's notes */
/* Looks up the credentials for domain in an auths object (see kc_image_auths_add_secret). Returns
 * the entry (borrowed) or NULL. */
json_t *kc_image_auth_lookup(json_t *auths, const char *domain);
/* Normalises a dockerconfig key ("https://host:5000/v1/" → "host:5000"). */
void kc_image_auth_key(const char *key, char *out, size_t n);
/* Base64 decode (standard alphabet, padding optional); returns length or -1. out has room for n. */
long kc_image_b64dec(const char *in, size_t inlen, unsigned char *out, size_t n);

/* ---- registry client (image_reg.c) ---- */
struct kc_reg {
    char domain[KC_IMG_HOST_MAX];  /* as in the reference (for messages and auth lookup) */
    char host[KC_IMG_HOST_MAX];    /* host[:port] contacted */
    char repo[KC_IMG_REPO_MAX];
    char ca_file[1024];            /* per-registry CA file path (<ca dir>/<host>.crt) or "" */
    bool ca_present;               /* ... and it exists: added to the system CAs */
    const char *user, *pass, *secret; /* credentials (borrowed from auths) or NULL */
    const char *secrets_given;     /* comma-separated names of all secrets given (for messages) */
    const char *secrets_unusable;  /* "\"a\" (not found), ..." named by the pod but unusable, or NULL */
    char *authz;                   /* "Authorization: ..." header once obtained (owned) */
    long timeout_s;
    void *curl;                    /* CURL * reused across requests (connection reuse) */
    struct {                       /* what OpenSSL's verification saw (first failure) */
        int error, depth;
        char subject[256], issuer[256], not_after[40];
    } tls;
};
void kc_reg_init(struct kc_reg *r);
void kc_reg_release(struct kc_reg *r);
/* GETs a manifest by tag or digest into body (max KC_IMG_MANIFEST_MAX); content type and the
 * sha256 digest of the bytes are returned. */
int kc_reg_manifest(struct kc_reg *r, const char *reference, struct kc_buf *body, char *ctype, size_t ctn,
                    char *digest, size_t dn, struct kc_err *err);
/* GETs a blob into the open file f (truncated first), verifying its sha256 against digest and its
 * size against max. KC_EIO with a "digest mismatch" message when the bytes do not hash right. */
int kc_reg_blob(struct kc_reg *r, const char *digest, FILE *f, int64_t max, int64_t *size, struct kc_err *err);

/* ---- layers (image_unpack.c) ---- */
/* Applies one layer (tar, optionally gzip/zstd compressed) at path onto the directory root,
 * honouring whiteouts (.wh.<name> deletes <name> of lower layers, .wh..wh..opq empties the
 * directory of lower layers' entries). Entry paths are confined to root. */
int kc_image_apply_layer(const char *root, const char *layer_path, struct kc_err *err);
/* rm -r that does not cross mount points and does not follow symlinks; 0 if path is absent. */
int kc_image_rmtree(const char *path);

#endif
