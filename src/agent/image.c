/* image.c — the node's image store: pulls into a content-addressed cache (see image.h).
 *
 * On disk, under opts.root:
 *   blobs/sha256/<hex>      every blob (manifest's config and layers), verified before it is renamed in
 *   rootfs/<hex>            the unpacked root filesystem of the manifest sha256:<hex>
 *   index.json              {"images": {"sha256:<manifest>": {"names": [..], "size": N, "config": digest,
 *                            "layers": [digest..], "lastUsed": unix seconds}}}
 * Atomicity: blobs are downloaded to blobs/tmp-*, rootfs unpacked to rootfs/tmp-*, and renamed into
 * place; index.json is rewritten by write-then-rename, after the rootfs is in place. A crash leaves
 * tmp-* entries (removed at open) and never a half image under a final name.
 *
 * Threads: any number of callers. The mutex guards the index, the in-flight table and the final
 * renames/removals; downloads and unpacking run outside it. Pulls of the same normalised reference
 * are coalesced: the first caller pulls, later ones wait on the condition variable for its result.
 */
#include "agent/image.h"
#include "agent/image_int.h"
#include "util/jsonparse.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define INDEX_MAX (64 << 20)

/* snprintf that truncates silently: every path here is bounded by the root's checked length, and a
 * truncated name would only fail a later open/rename (never write elsewhere). */
__attribute__((format(printf, 3, 4))) static int strf(char *out, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(out, n, fmt, ap);
    va_end(ap);
    return r;
}

struct inflight {
    struct inflight *next;
    char key[KC_IMG_REF_MAX];
    int waiters;
    bool done;
    int rc;
    struct kc_err err;
    struct kc_image_info info; /* config NULL: each caller loads its own */
};

struct kc_image_store {
    char root[PATH_MAX - 64];
    char ca_dir[PATH_MAX - 64];
    int64_t gc_high, gc_low;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    json_t *images; /* index.json "images" */
    struct inflight *inflight;
    unsigned long seq;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- paths and index ---- */

static void blob_path(struct kc_image_store *s, const char *digest, char *out, size_t n)
{
    strf(out, n, "%s/blobs/sha256/%s", s->root, digest + 7);
}

static void rootfs_path(struct kc_image_store *s, const char *digest, char *out, size_t n)
{
    strf(out, n, "%s/rootfs/%s", s->root, digest + 7);
}

static int mkdirs(const char *root)
{
    const char *sub[] = {"", "/blobs", "/blobs/sha256", "/rootfs"};
    for (size_t i = 0; i < sizeof sub / sizeof *sub; i++) {
        char p[PATH_MAX];
        strf(p, sizeof p, "%s%s", root, sub[i]);
        if (mkdir(p, 0700) && errno != EEXIST)
            return -1;
    }
    return 0;
}

/* Writes index.json atomically. Called with mu held. */
static int save_index(struct kc_image_store *s, struct kc_err *err)
{
    char p[PATH_MAX], tmp[PATH_MAX];
    strf(p, sizeof p, "%s/index.json", s->root);
    strf(tmp, sizeof tmp, "%s/index.json.tmp", s->root);
    json_t *doc = json_pack("{s:O}", "images", s->images);
    int rc = doc ? json_dump_file(doc, tmp, JSON_COMPACT) : -1;
    json_decref(doc);
    FILE *f = rc ? NULL : fopen(tmp, "r");
    if (f) {
        fsync(fileno(f));
        fclose(f);
    }
    if (rc || rename(tmp, p))
        return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "cannot write %s: %s", p, strerror(errno));
    return 0;
}

static int load_index(struct kc_image_store *s, struct kc_err *err)
{
    char p[PATH_MAX];
    strf(p, sizeof p, "%s/index.json", s->root);
    struct stat st;
    json_t *doc = NULL;
    if (stat(p, &st) == 0) {
        if (st.st_size > INDEX_MAX)
            return kc_err_set(err, KC_ETOOLARGE, 0, "", "%s is larger than %d bytes", p, INDEX_MAX);
        json_error_t je;
        doc = json_load_file(p, 0, &je);
        if (!doc)
            return kc_err_set(err, KC_EIO, 0, "", "%s: %s (line %d)", p, je.text, je.line);
    }
    json_t *imgs = json_object_get(doc, "images");
    s->images = json_is_object(imgs) ? json_incref(imgs) : json_object();
    json_decref(doc);
    return s->images ? 0 : kc_err_set(err, KC_ENOMEM, 0, "", "out of memory");
}

/* Removes what a crash may have left: tmp-* entries, rootfs and blobs no image refers to. */
static void sweep(struct kc_image_store *s)
{
    const char *dirs[] = {"rootfs", "blobs/sha256", "blobs"};
    for (size_t i = 0; i < 3; i++) {
        char d[PATH_MAX];
        strf(d, sizeof d, "%s/%s", s->root, dirs[i]);
        DIR *dh = opendir(d);
        struct dirent *e;
        while (dh && (e = readdir(dh))) {
            if (e->d_name[0] == '.' || (i == 2 && strncmp(e->d_name, "tmp-", 4) != 0))
                continue;
            bool keep = false;
            if (strncmp(e->d_name, "tmp-", 4) != 0) {
                const char *k;
                json_t *v;
                json_object_foreach(s->images, k, v) {
                    if (i == 0 && strcmp(k + 7, e->d_name) == 0)
                        keep = true;
                    if (i == 1) {
                        char dg[KC_IMG_DIGEST_MAX];
                        strf(dg, sizeof dg, "sha256:%s", e->d_name);
                        size_t j;
                        json_t *l;
                        json_array_foreach(json_object_get(v, "layers"), j, l) if (!strcmp(json_string_value(l) ?: "", dg))
                            keep = true;
                        if (strcmp(json_string_value(json_object_get(v, "config")) ?: "", dg) == 0)
                            keep = true;
                    }
                }
            }
            if (!keep) {
                char p[PATH_MAX];
                strf(p, sizeof p, "%s/%s", d, e->d_name);
                kc_image_rmtree(p);
            }
        }
        if (dh)
            closedir(dh);
    }
}

int kc_image_store_open(const struct kc_image_store_opts *o, struct kc_image_store **out, struct kc_err *err)
{
    pthread_once(&curl_once, curl_init);
    if (!o || !o->root || strlen(o->root) >= PATH_MAX - 200)
        return kc_err_set(err, KC_EINVAL, 0, "", "image store: root missing or too long");
    struct kc_image_store *s = calloc(1, sizeof *s);
    if (!s)
        return kc_err_set(err, KC_ENOMEM, 0, "", "out of memory");
    strf(s->root, sizeof s->root, "%s", o->root);
    if (o->registry_ca_dir)
        strf(s->ca_dir, sizeof s->ca_dir, "%s", o->registry_ca_dir);
    s->gc_high = o->gc_high_bytes;
    s->gc_low = o->gc_low_bytes;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cond, NULL);
    int rc;
    if (mkdirs(s->root))
        rc = kc_err_set(err, KC_EIO, 0, "", "image store %s: %s", s->root, strerror(errno));
    else
        rc = load_index(s, err);
    if (rc) {
        kc_image_store_close(s);
        return rc;
    }
    sweep(s);
    *out = s;
    return 0;
}

void kc_image_store_close(struct kc_image_store *s)
{
    if (!s)
        return;
    json_decref(s->images);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cond);
    free(s);
}

/* ---- lookups (mu held) ---- */

static bool has_name(json_t *img, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(img, "names"), i, v) if (strcmp(json_string_value(v) ?: "", name) == 0) return true;
    return false;
}

/* Whether the unpacked rootfs of image key is on disk (someone may have removed it by hand). */
static bool rootfs_there(struct kc_image_store *s, const char *key)
{
    char p[PATH_MAX];
    struct stat st;
    rootfs_path(s, key, p, sizeof p);
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The image a normalised name refers to (tag name, repo@digest name, or a bare digest key) whose
 * rootfs is on disk. */
static json_t *find_image(struct kc_image_store *s, const char *name, const char **key)
{
    const char *k;
    json_t *v;
    json_object_foreach(s->images, k, v) {
        if ((strcmp(k, name) == 0 || has_name(v, name)) && rootfs_there(s, k)) {
            if (key)
                *key = k;
            return v;
        }
    }
    return NULL;
}

static json_t *load_config(struct kc_image_store *s, const char *digest)
{
    char p[PATH_MAX];
    blob_path(s, digest, p, sizeof p);
    return json_load_file(p, 0, NULL);
}

static void fill_info(struct kc_image_store *s, const char *name, const char *key, json_t *img,
                      struct kc_image_info *out)
{
    memset(out, 0, sizeof *out);
    strf(out->ref, sizeof out->ref, "%s", name);
    strf(out->digest, sizeof out->digest, "%s", key);
    rootfs_path(s, key, out->rootfs, sizeof out->rootfs);
    out->size_bytes = json_integer_value(json_object_get(img, "size"));
}

bool kc_image_present(struct kc_image_store *s, const char *ref, struct kc_image_info *out)
{
    struct kc_image_ref r;
    if (kc_image_ref_parse(ref, &r, NULL))
        return false;
    pthread_mutex_lock(&s->mu);
    const char *key = NULL;
    json_t *img = find_image(s, r.name, &key);
    char cfg[KC_IMG_DIGEST_MAX] = "";
    if (img) {
        json_object_set_new(img, "lastUsed", json_integer(time(NULL)));
        strf(cfg, sizeof cfg, "%s", json_string_value(json_object_get(img, "config")) ?: "");
        if (out)
            fill_info(s, r.name, key, img, out);
    }
    pthread_mutex_unlock(&s->mu);
    if (img && out)
        out->config = *cfg ? load_config(s, cfg) : NULL;
    return img != NULL;
}

/* ---- pulling ---- */

/* Comma-separated secret names found in auths (for messages). */
static void secrets_given(json_t *auths, char *out, size_t n)
{
    out[0] = 0;
    const char *k;
    json_t *v;
    json_object_foreach(auths, k, v) {
        const char *sec = json_string_value(json_object_get(v, "secret"));
        if (!sec || strstr(out, sec))
            continue;
        size_t l = strlen(out);
        strf(out + l, n - l, "%s\"%s\"", l ? ", " : "", sec);
    }
}

/* Downloads a blob unless present; verified before it gets its final name. */
static int fetch_blob(struct kc_image_store *s, struct kc_reg *r, const char *digest, int64_t max, int64_t *size,
                      struct kc_err *err)
{
    if (!kc_image_digest_valid(digest))
        return kc_err_set(err, KC_EINVAL, 0, "ErrImagePull", "manifest names an invalid blob digest \"%.80s\"",
                          digest);
    char p[PATH_MAX], tmp[PATH_MAX];
    blob_path(s, digest, p, sizeof p);
    struct stat st;
    if (stat(p, &st) == 0) {
        *size = st.st_size;
        return 0;
    }
    pthread_mutex_lock(&s->mu);
    unsigned long seq = ++s->seq;
    pthread_mutex_unlock(&s->mu);
    strf(tmp, sizeof tmp, "%s/blobs/tmp-%.12s-%d-%lu", s->root, digest + 7, getpid(), seq);
    FILE *f = fopen(tmp, "w+");
    if (!f)
        return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "cannot create %s: %s", tmp, strerror(errno));
    int rc = kc_reg_blob(r, digest, f, max, size, err);
    if (!rc && fsync(fileno(f)))
        rc = kc_err_set(err, KC_EIO, 0, "ErrImagePull", "cannot write %s: %s", tmp, strerror(errno));
    fclose(f);
    if (!rc && rename(tmp, p))
        rc = kc_err_set(err, KC_EIO, 0, "ErrImagePull", "cannot store blob %s: %s", digest, strerror(errno));
    if (rc)
        unlink(tmp);
    return rc;
}

static bool is_index(const char *mt)
{
    return strcmp(mt, "application/vnd.oci.image.index.v1+json") == 0 ||
           strcmp(mt, "application/vnd.docker.distribution.manifest.list.v2+json") == 0;
}

static bool is_manifest(const char *mt)
{
    return strcmp(mt, "application/vnd.oci.image.manifest.v1+json") == 0 ||
           strcmp(mt, "application/vnd.docker.distribution.manifest.v2+json") == 0;
}

static bool layer_type_ok(const char *mt)
{
    static const char *ok[] = {"application/vnd.oci.image.layer.v1.tar",
                               "application/vnd.oci.image.layer.v1.tar+gzip",
                               "application/vnd.oci.image.layer.v1.tar+zstd",
                               "application/vnd.docker.image.rootfs.diff.tar.gzip",
                               "application/vnd.docker.image.rootfs.diff.tar"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (strcmp(mt, ok[i]) == 0)
            return true;
    return false;
}

/* The media type of a manifest document: the Content-Type, else its mediaType field. */
static const char *media_type(const char *ctype, json_t *doc)
{
    const char *mt = json_string_value(json_object_get(doc, "mediaType"));
    if (*ctype && (is_index(ctype) || is_manifest(ctype)))
        return ctype;
    if (mt)
        return mt;
    return json_object_get(doc, "manifests") ? "application/vnd.oci.image.index.v1+json" : ctype;
}

/* Fetches the manifest for ref (resolving an index to linux/amd64). On return *man is the image
 * manifest, mdigest its digest and top the digest the reference resolved to first. */
static int resolve(struct kc_reg *r, const struct kc_image_ref *ir, json_t **man, char *mdigest, char *top,
                   struct kc_err *err)
{
    const char *want = *ir->digest ? ir->digest : ir->tag;
    for (int depth = 0; depth < 2; depth++) {
        struct kc_buf body;
        kc_buf_init(&body, KC_IMG_MANIFEST_MAX);
        char ctype[128], dg[KC_IMG_DIGEST_MAX];
        int rc = kc_reg_manifest(r, want, &body, ctype, sizeof ctype, dg, sizeof dg, err);
        json_t *doc = rc ? NULL : kc_json_loadb(body.data ? body.data : "", body.len, 0, NULL);
        kc_buf_release(&body);
        if (rc)
            return rc;
        if (strncmp(want, "sha256:", 7) == 0 && strcmp(want, dg) != 0) {
            json_decref(doc);
            return kc_err_set(err, KC_EIO, 0, "ErrImagePull",
                              "digest mismatch: manifest %s of %s from registry %s hashed to %s; refused", want,
                              r->repo, r->domain, dg);
        }
        if (depth == 0)
            strf(top, KC_IMG_DIGEST_MAX, "%s", dg);
        if (!json_is_object(doc))
            return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "registry %s returned a manifest that is not JSON",
                              r->domain);
        const char *mt = media_type(ctype, doc);
        if (is_manifest(mt) || (json_object_get(doc, "layers") && json_object_get(doc, "config"))) {
            *man = doc;
            strf(mdigest, KC_IMG_DIGEST_MAX, "%s", dg);
            return 0;
        }
        if (!is_index(mt) || depth > 0) {
            json_decref(doc);
            return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "unsupported manifest type \"%.100s\" from registry %s",
                              mt, r->domain);
        }
        size_t i;
        json_t *m;
        const char *pick = NULL;
        json_array_foreach(json_object_get(doc, "manifests"), i, m) {
            json_t *pl = json_object_get(m, "platform");
            const char *os = json_string_value(json_object_get(pl, "os"));
            const char *arch = json_string_value(json_object_get(pl, "architecture"));
            if (os && arch && !strcmp(os, "linux") && !strcmp(arch, "amd64")) {
                pick = json_string_value(json_object_get(m, "digest"));
                break;
            }
        }
        char next[KC_IMG_DIGEST_MAX] = "";
        if (pick && kc_image_digest_valid(pick))
            strf(next, sizeof next, "%s", pick);
        json_decref(doc);
        if (!*next)
            return kc_err_set(err, KC_ENOTFOUND, 0, "ErrImagePull",
                              "image %s has no linux/amd64 manifest in its index", ir->name);
        want = strdupa(next);
    }
    return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "image index nesting too deep");
}

/* Downloads the config and layers of man and unpacks the layers into rootfs tmp. */
static int fetch_and_unpack(struct kc_image_store *s, struct kc_reg *r, json_t *man, const char *tmp,
                            int64_t *total, json_t *layers, struct kc_err *err)
{
    const char *cfg = json_string_value(json_object_get(json_object_get(man, "config"), "digest"));
    int64_t sz = 0;
    int rc = fetch_blob(s, r, cfg ? cfg : "", KC_IMG_CONFIG_MAX, &sz, err);
    if (rc)
        return rc;
    *total = sz;
    json_t *ls = json_object_get(man, "layers");
    if (!json_is_array(ls))
        return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "manifest of %s has no layers", r->repo);
    if (json_array_size(ls) > KC_IMG_LAYERS_MAX)
        return kc_err_set(err, KC_ETOOLARGE, 0, "ErrImagePull", "image %s has %zu layers; at most %d are supported",
                          r->repo, json_array_size(ls), KC_IMG_LAYERS_MAX);
    size_t i;
    json_t *l;
    json_array_foreach(ls, i, l) {
        const char *mt = json_string_value(json_object_get(l, "mediaType")) ?: "";
        const char *dg = json_string_value(json_object_get(l, "digest")) ?: "";
        if (!layer_type_ok(mt))
            return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "layer %.80s has unsupported media type \"%.100s\"", dg,
                              mt);
        if ((rc = fetch_blob(s, r, dg, KC_IMG_LAYER_MAX, &sz, err)))
            return rc;
        *total += sz;
        json_array_append_new(layers, json_string(dg));
    }
    if (mkdir(tmp, 0755))
        return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "cannot create %s: %s", tmp, strerror(errno));
    json_array_foreach(layers, i, l) {
        char p[PATH_MAX];
        blob_path(s, json_string_value(l), p, sizeof p);
        if ((rc = kc_image_apply_layer(tmp, p, err)))
            return rc;
    }
    return 0;
}

/* Records the image under mu: moves names from other images, installs the rootfs. */
static int commit_image(struct kc_image_store *s, const char *mdigest, const char *tmp, json_t *names,
                        json_t *entry, struct kc_err *err)
{
    const char *k;
    json_t *v;
    json_object_foreach(s->images, k, v) {
        if (!strcmp(k, mdigest))
            continue;
        json_t *nn = json_object_get(v, "names");
        for (size_t i = json_array_size(nn); i-- > 0;) {
            size_t j;
            json_t *w;
            json_array_foreach(names, j, w) if (json_equal(json_array_get(nn, i), w))
            {
                json_array_remove(nn, i);
                break;
            }
        }
    }
    json_t *cur = json_object_get(s->images, mdigest);
    char rp[PATH_MAX];
    rootfs_path(s, mdigest, rp, sizeof rp);
    if (cur && !rootfs_there(s, mdigest) && tmp) {
        if (rename(tmp, rp)) /* the rootfs had been removed by hand: re-install it */
            return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "cannot install rootfs %s: %s", rp, strerror(errno));
        tmp = NULL;
    }
    if (cur) {
        size_t j;
        json_t *w;
        json_array_foreach(names, j, w) if (!has_name(cur, json_string_value(w)))
            json_array_append(json_object_get(cur, "names"), w);
        json_object_set_new(cur, "lastUsed", json_integer(time(NULL)));
        if (tmp)
            kc_image_rmtree(tmp);
    } else {
        if (!tmp)
            return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "image %s vanished during the pull", mdigest);
        kc_image_rmtree(rp); /* stale leftover of a pruned image */
        if (rename(tmp, rp))
            return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "cannot install rootfs %s: %s", rp, strerror(errno));
        json_object_set(entry, "names", names);
        json_object_set(s->images, mdigest, entry);
    }
    return save_index(s, err);
}

static int do_pull(struct kc_image_store *s, const struct kc_image_ref *ir, json_t *auths, struct kc_err *err)
{
    struct kc_reg r;
    kc_reg_init(&r);
    strf(r.domain, sizeof r.domain, "%s", ir->domain);
    strf(r.host, sizeof r.host, "%s", kc_image_ref_api_host(ir->domain));
    strf(r.repo, sizeof r.repo, "%s", ir->repo);
    if (*s->ca_dir) {
        struct stat st;
        strf(r.ca_file, sizeof r.ca_file, "%s/%s.crt", s->ca_dir, ir->domain);
        r.ca_present = stat(r.ca_file, &st) == 0;
    }
    json_t *a = kc_image_auth_lookup(auths, ir->domain);
    r.user = json_string_value(json_object_get(a, "username"));
    r.pass = json_string_value(json_object_get(a, "password"));
    r.secret = json_string_value(json_object_get(a, "secret"));
    char given[512], unusable[768] = "";
    secrets_given(auths, given, sizeof given);
    r.secrets_given = given;
    size_t ui;
    json_t *u;
    json_array_foreach(json_object_get(auths, KC_IMG_UNUSABLE_KEY), ui, u) {
        size_t l = strlen(unusable);
        strf(unusable + l, sizeof unusable - l, "%s\"%s\" (%s)", l ? ", " : "",
             json_string_value(json_object_get(u, "secret")) ?: "?",
             json_string_value(json_object_get(u, "problem")) ?: "unusable");
    }
    r.secrets_unusable = unusable;

    json_t *man = NULL, *layers = json_array(), *names = json_array();
    char mdigest[KC_IMG_DIGEST_MAX], top[KC_IMG_DIGEST_MAX], tmp[PATH_MAX] = "";
    int rc = resolve(&r, ir, &man, mdigest, top, err);
    if (!rc) {
        char n[KC_IMG_REF_MAX];
        json_array_append_new(names, json_string(ir->name));
        strf(n, sizeof n, "%s/%s@%s", ir->domain, ir->repo, top);
        if (strcmp(n, ir->name))
            json_array_append_new(names, json_string(n));
    }
    pthread_mutex_lock(&s->mu);
    bool have = !rc && json_object_get(s->images, mdigest) && rootfs_there(s, mdigest);
    unsigned long seq = ++s->seq;
    pthread_mutex_unlock(&s->mu);
    int64_t total = 0;
    if (!rc && !have) {
        strf(tmp, sizeof tmp, "%s/rootfs/tmp-%.12s-%d-%lu", s->root, mdigest + 7, getpid(), seq);
        rc = fetch_and_unpack(s, &r, man, tmp, &total, layers, err);
    }
    if (!rc) {
        const char *cfg = json_string_value(json_object_get(json_object_get(man, "config"), "digest"));
        json_t *entry = json_pack("{s:I, s:s, s:O, s:I}", "size", (json_int_t)total, "config", cfg ? cfg : "",
                                  "layers", layers, "lastUsed", (json_int_t)time(NULL));
        pthread_mutex_lock(&s->mu);
        rc = entry ? commit_image(s, mdigest, have ? NULL : tmp, names, entry, err)
                   : kc_err_set(err, KC_ENOMEM, 0, "ErrImagePull", "out of memory");
        pthread_mutex_unlock(&s->mu);
        json_decref(entry);
    } else if (*tmp) {
        kc_image_rmtree(tmp);
    }
    json_decref(man);
    json_decref(layers);
    json_decref(names);
    kc_reg_release(&r);
    return rc;
}

int kc_image_normalize(const char *ref, char *out, size_t n, struct kc_err *err)
{
    struct kc_image_ref r;
    int rc = kc_image_ref_parse(ref, &r, err);
    if (rc)
        return rc;
    if (strlen(r.name) >= n)
        return kc_err_set(err, KC_ETOOLARGE, 0, "InvalidImageName", "reference too long");
    memcpy(out, r.name, strlen(r.name) + 1);
    return 0;
}

int kc_image_pull(struct kc_image_store *s, const char *ref, json_t *auths, bool force, struct kc_image_info *out,
                  struct kc_err *err)
{
    struct kc_image_ref ir;
    int rc = kc_image_ref_parse(ref, &ir, err);
    if (rc)
        return rc;
    if (!force && kc_image_present(s, ir.name, out))
        return 0;
    pthread_mutex_lock(&s->mu);
    struct inflight *f = s->inflight;
    while (f && strcmp(f->key, ir.name))
        f = f->next;
    bool leader = !f;
    if (leader) {
        if (!(f = calloc(1, sizeof *f))) {
            pthread_mutex_unlock(&s->mu);
            return kc_err_set(err, KC_ENOMEM, 0, "ErrImagePull", "out of memory");
        }
        strf(f->key, sizeof f->key, "%s", ir.name);
        f->next = s->inflight;
        s->inflight = f;
    }
    f->waiters++;
    pthread_mutex_unlock(&s->mu);
    if (leader) {
        struct kc_err e = {0};
        int prc = do_pull(s, &ir, auths, &e);
        pthread_mutex_lock(&s->mu);
        f->rc = prc;
        f->err = e;
        f->done = true;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_lock(&s->mu);
    while (!f->done)
        pthread_cond_wait(&s->cond, &s->mu);
    rc = f->rc;
    if (rc && err)
        *err = f->err;
    if (--f->waiters == 0) {
        struct inflight **pp = &s->inflight;
        while (*pp != f)
            pp = &(*pp)->next;
        *pp = f->next;
        free(f);
    }
    pthread_mutex_unlock(&s->mu);
    if (rc)
        return rc;
    if (!kc_image_present(s, ir.name, out))
        return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "image %s was removed right after its pull", ir.name);
    return 0;
}

/* ---- listing, prune, GC ---- */

json_t *kc_image_list(struct kc_image_store *s)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&s->mu);
    const char *k;
    json_t *v;
    json_object_foreach(s->images, k, v) {
        json_t *names = kc_json_copy(json_object_get(v, "names"));
        if (!names)
            names = json_array();
        json_array_append_new(names, json_string(k)); /* the image ID */
        json_array_append_new(arr, json_pack("{s:o, s:I}", "names", names, "sizeBytes",
                                             json_integer_value(json_object_get(v, "size"))));
    }
    pthread_mutex_unlock(&s->mu);
    return arr;
}

int64_t kc_image_store_size(struct kc_image_store *s)
{
    int64_t t = 0;
    pthread_mutex_lock(&s->mu);
    const char *k;
    json_t *v;
    json_object_foreach(s->images, k, v) t += json_integer_value(json_object_get(v, "size"));
    pthread_mutex_unlock(&s->mu);
    return t;
}

static bool in_use(const char *key, json_t *img, const char *const *use)
{
    for (size_t i = 0; use && use[i]; i++) {
        struct kc_image_ref r;
        const char *u = use[i];
        if (!strcmp(u, key) || has_name(img, u))
            return true;
        if (!kc_image_ref_parse(u, &r, NULL) && has_name(img, r.name))
            return true;
        if (strlen(u) > 71 && !strcmp(u + strlen(u) - 71, key)) /* "...@sha256:<hex>" of the image ID */
            return true;
    }
    return false;
}

/* Whether another image than except uses blob digest. */
static bool blob_used(struct kc_image_store *s, const char *digest)
{
    const char *k;
    json_t *v;
    json_object_foreach(s->images, k, v) {
        if (strcmp(json_string_value(json_object_get(v, "config")) ?: "", digest) == 0)
            return true;
        size_t i;
        json_t *l;
        json_array_foreach(json_object_get(v, "layers"), i, l) if (!strcmp(json_string_value(l) ?: "", digest))
            return true;
    }
    return false;
}

/* Removes one image (mu held): index entry, rootfs, blobs nobody else uses. */
static void remove_image(struct kc_image_store *s, const char *key_in)
{
    char key[KC_IMG_DIGEST_MAX], p[PATH_MAX];
    strf(key, sizeof key, "%s", key_in);
    json_t *img = json_incref(json_object_get(s->images, key));
    json_object_del(s->images, key);
    rootfs_path(s, key, p, sizeof p);
    kc_image_rmtree(p);
    json_t *blobs = json_copy(json_object_get(img, "layers"));
    json_array_append(blobs, json_object_get(img, "config"));
    size_t i;
    json_t *b;
    /* A pull in flight may be about to use a blob it found present: then blobs stay (swept as orphans
     * at the next open, or removed by a later prune). */
    json_array_foreach(blobs, i, b) {
        const char *d = json_string_value(b);
        if (d && !s->inflight && kc_image_digest_valid(d) && !blob_used(s, d)) {
            blob_path(s, d, p, sizeof p);
            unlink(p);
        }
    }
    json_decref(blobs);
    json_decref(img);
}

/* Removes unused images, least recently used first, while total > target (target < 0: all unused). */
static int evict(struct kc_image_store *s, const char *const *use, int64_t target, int64_t *freed, struct kc_err *err)
{
    int64_t total = 0, fr = 0;
    pthread_mutex_lock(&s->mu);
    const char *k;
    json_t *v;
    json_object_foreach(s->images, k, v) total += json_integer_value(json_object_get(v, "size"));
    for (;;) {
        if (target >= 0 && total <= target)
            break;
        const char *victim = NULL;
        json_int_t oldest = 0;
        json_object_foreach(s->images, k, v) {
            json_int_t lu = json_integer_value(json_object_get(v, "lastUsed"));
            if (!in_use(k, v, use) && (!victim || lu < oldest)) {
                victim = k;
                oldest = lu;
            }
        }
        if (!victim)
            break;
        int64_t sz = json_integer_value(json_object_get(json_object_get(s->images, victim), "size"));
        remove_image(s, victim);
        total -= sz;
        fr += sz;
    }
    int rc = fr ? save_index(s, err) : 0;
    pthread_mutex_unlock(&s->mu);
    if (freed)
        *freed = fr;
    return rc;
}

int kc_image_prune(struct kc_image_store *s, const char *const *in_use_refs, int64_t *freed, struct kc_err *err)
{
    return evict(s, in_use_refs, -1, freed, err);
}

int kc_image_gc(struct kc_image_store *s, const char *const *in_use_refs, int64_t *freed, struct kc_err *err)
{
    if (freed)
        *freed = 0;
    if (s->gc_high <= 0 || kc_image_store_size(s) <= s->gc_high)
        return 0;
    return evict(s, in_use_refs, s->gc_low > 0 ? s->gc_low : 0, freed, err);
}
