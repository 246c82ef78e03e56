/* image.h — images for the real runtime: OCI distribution pulls into a content-addressed store.
 *
 * kc_image_pull resolves a reference ("registry.example:5000/app:1.0", "busybox", "repo@sha256:...")
 * through the OCI distribution API v2 over HTTPS (libcurl: system CAs plus a per-registry CA), with
 * anonymous, basic or bearer-token auth (WWW-Authenticate challenge), credentials from
 * kubernetes.io/dockerconfigjson / dockercfg secrets; image indexes resolved to linux/amd64; OCI and
 * Docker v2 media types; every blob's digest verified; layers (gzip, zstd if libarchive has it)
 * unpacked with whiteouts into a content-addressed cache; an unpacked root filesystem per image
 * (rootfs/<manifest digest>) that containers use read-only (overlay or a copy).
 *
 * Failures carry a reason (ErrImagePull / InvalidImageName) and a message naming the cause in words a
 * person understands: certificate expired (with the date), unknown authority, unauthorized (naming the
 * secret tried), manifest unknown, registry unreachable.
 */
#ifndef KC_AGENT_IMAGE_H
#define KC_AGENT_IMAGE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

struct kc_image_store;

struct kc_image_store_opts {
    const char *root;            /* e.g. <agent data dir>/images */
    const char *registry_ca_dir; /* dir with <registry-host[:port]>.crt files added to system CAs (may be NULL) */
    int64_t gc_high_bytes;       /* image GC starts above this total size (0 = never) */
    int64_t gc_low_bytes;        /* ... and removes unused images until below this */
};

struct kc_image_info {
    char ref[512];        /* normalised reference, e.g. "docker.io/library/busybox:latest" */
    char digest[80];      /* manifest digest "sha256:..." (imageID) */
    char rootfs[1024];    /* path of the unpacked root filesystem */
    int64_t size_bytes;
    json_t *config;       /* image config (Entrypoint, Cmd, Env, WorkingDir, User); owned by the caller */
};

int kc_image_store_open(const struct kc_image_store_opts *o, struct kc_image_store **out, struct kc_err *err);
void kc_image_store_close(struct kc_image_store *s);

/* Pulls (or finds) an image. auths: the pod's pull secrets' decoded auth entries as a JSON object
 * {"registry": {"username":..,"password":..,"auth":..}, ...} with "secret" names recorded for messages
 * (may be NULL). force: pull even if present (imagePullPolicy Always: re-resolve the tag). Blocking;
 * the runtime calls it from a worker thread. err->reason is "ErrImagePull" or "InvalidImageName". */
int kc_image_pull(struct kc_image_store *s, const char *ref, json_t *auths, bool force, struct kc_image_info *out,
                  struct kc_err *err);
/* Present locally? (IfNotPresent / Never) */
bool kc_image_present(struct kc_image_store *s, const char *ref, struct kc_image_info *out);
/* All images (for Node status.images and `kubec images ls`): JSON array of {names:[...], sizeBytes}. */
json_t *kc_image_list(struct kc_image_store *s);
/* Removes images not in use (in_use: NULL-terminated refs/digests) — `kubec images prune` and GC. */
int kc_image_prune(struct kc_image_store *s, const char *const *in_use, int64_t *freed, struct kc_err *err);

/* ---- additions (images helper) ---- */

/* Decodes a Secret object of type kubernetes.io/dockerconfigjson (data[".dockerconfigjson"] =
 * {"auths":{...}}) or kubernetes.io/dockercfg (data[".dockercfg"] = {...}) and adds its entries to
 * auths, keyed by registry host[:port] (scheme and path of the key dropped; index.docker.io/v1 →
 * docker.io). Each entry is {"username","password","secret":<secret name>} ("auth" decoded into
 * username/password). An entry already present (from an earlier secret) is kept, as upstream tries
 * the secrets in order. KC_EINVAL with a message naming the secret if it is malformed. */
int kc_image_auths_add_secret(json_t *auths, json_t *secret, struct kc_err *err);
/* Records that the pod named pull secret `name` but it could not be used (problem: "not found",
 * or the message of a failed kc_image_auths_add_secret), so that an unauthorized pull says so
 * ("... gave no credentials: \"regcred\" (not found)") instead of "no imagePullSecret was given". Kept under the key
 * "#unusable" of auths, which no registry lookup matches. */
void kc_image_auths_note_secret(json_t *auths, const char *name, const char *problem);
/* Normalises a reference ("busybox" → "docker.io/library/busybox:latest"); KC_EINVAL with reason
 * InvalidImageName if malformed. */
int kc_image_normalize(const char *ref, char *out, size_t n, struct kc_err *err);
/* Image GC by disk threshold: if the store's total size exceeds gc_high_bytes, removes the least
 * recently used images not in in_use (NULL-terminated refs/digests) until it is below gc_low_bytes. */
int kc_image_gc(struct kc_image_store *s, const char *const *in_use, int64_t *freed, struct kc_err *err);
/* Total bytes of the images in the store. */
int64_t kc_image_store_size(struct kc_image_store *s);
/* `kubec images pull IMAGE --local DIR [--secret FILE.json]... [--ca-dir DIR] [--force]`,
 * `kubec images ls --local DIR`, `kubec images prune --local DIR [--keep IMAGE]...`: the store used directly, without
 * an agent (argv[0] is "images"). Prints one JSON line; returns the process exit code. */
int kc_image_cli_main(int argc, char **argv);

#endif
