/* image_unpack.c — applies image layers (tar, gzip or zstd compressed) onto a root filesystem.
 *
 * libarchive reads the layer (compression detected from the bytes) and writes entries with
 * archive_write_disk under the root given (made absolute with realpath, so the SECURE_* checks
 * apply to the rootfs part only). OCI whiteouts:
 *   "<dir>/.wh.<name>"    deletes <dir>/<name> left by lower layers;
 *   "<dir>/.wh..wh..opq"  empties <dir> of everything lower layers put there.
 * Entries written by the layer itself are remembered (a string set) so that an opaque marker that
 * comes after its siblings in the tar does not delete them. Entry paths with ".." are refused, leading
 * "/" and "./" stripped. Directory symlinks already in the rootfs are followed as the container would
 * see them, but resolved inside the root (an absolute target restarts at the root; ".." stops there),
 * so neither a write nor a whiteout ever reaches outside it.
 * No shared state; one call per thread.
 */
#include "agent/image_int.h"

#include "util/map.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    return (flag == FTW_DP ? rmdir(p) : unlink(p)) && errno != ENOENT ? -1 : 0;
}

int kc_image_rmtree(const char *path)
{
    struct stat st;
    if (lstat(path, &st))
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return unlink(path);
    return nftw(path, rm_cb, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* Cleans an entry path: strips "/" and "./" prefixes and trailing "/"; NULL if it has a ".." component
 * or is empty (the root itself). */
static const char *clean_path(const char *p, char *out, size_t n)
{
    while (*p == '/' || (p[0] == '.' && p[1] == '/'))
        p += *p == '/' ? 1 : 2;
    size_t len = strlen(p);
    while (len && p[len - 1] == '/')
        len--;
    if (!len || len >= n || (len == 1 && *p == '.'))
        return NULL;
    memcpy(out, p, len);
    out[len] = 0;
    for (const char *c = out; c;) {
        if (c[0] == '.' && c[1] == '.' && (c[2] == '/' || c[2] == 0))
            return NULL;
        c = strchr(c, '/');
        if (c)
            c++;
    }
    return out;
}

/* Resolves the parent directories of rel inside root, following symlinks as the container will see
 * them: an absolute target restarts at root, ".." stops at root. The last component is not followed
 * (the entry replaces whatever is there). out gets a root-relative path without symlinks in its
 * directories. -1 on a symlink loop (> 40 hops) or an over-long path. */
static int resolve_in_root(const char *root, const char *rel, char *out, size_t n)
{
    char todo[PATH_MAX], cur[PATH_MAX] = "", tmp[PATH_MAX];
    const char *slash = strrchr(rel, '/');
    const char *base = slash ? slash + 1 : rel;
    size_t dl = slash ? (size_t)(slash - rel) : 0;
    memcpy(todo, rel, dl);
    todo[dl] = 0;
    int hops = 0;
    while (todo[0]) {
        char *sep = strchr(todo, '/');
        size_t cl = sep ? (size_t)(sep - todo) : strlen(todo);
        char comp[NAME_MAX + 1];
        if (cl > NAME_MAX)
            return -1;
        memcpy(comp, todo, cl);
        comp[cl] = 0;
        memmove(todo, sep ? sep + 1 : todo + cl, strlen(sep ? sep + 1 : todo + cl) + 1);
        if (!cl || !strcmp(comp, "."))
            continue;
        if (!strcmp(comp, "..")) {
            char *up = strrchr(cur, '/');
            if (up)
                *up = 0;
            else
                cur[0] = 0;
            continue;
        }
        char cand[PATH_MAX], full[PATH_MAX];
        if (snprintf(cand, sizeof cand, "%s%s%s", cur, *cur ? "/" : "", comp) >= (int)sizeof cand ||
            snprintf(full, sizeof full, "%s/%s", root, cand) >= (int)sizeof full)
            return -1;
        struct stat st;
        if (lstat(full, &st) || !S_ISLNK(st.st_mode)) {
            memcpy(cur, cand, strlen(cand) + 1);
            continue;
        }
        char target[PATH_MAX];
        ssize_t tl = readlink(full, target, sizeof target - 1);
        if (tl < 0 || ++hops > 40)
            return -1;
        target[tl] = 0;
        if (target[0] == '/')
            cur[0] = 0;
        if (snprintf(tmp, sizeof tmp, "%s%s%s", target, *todo ? "/" : "", todo) >= (int)sizeof tmp)
            return -1;
        memcpy(todo, tmp, strlen(tmp) + 1);
    }
    if (snprintf(out, n, "%s%s%s", cur, *cur ? "/" : "", base) >= (int)n)
        return -1;
    return 0;
}

/* Empties root/dir of entries not written by this layer. */
static int opaque(const char *root, const char *dir, struct kc_map *written)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s/%s", root, dir) >= (int)sizeof p)
        return -1;
    struct stat st;
    if (lstat(p, &st) || !S_ISDIR(st.st_mode))
        return 0;
    DIR *d = opendir(p);
    if (!d)
        return -1;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char rel[PATH_MAX], full[PATH_MAX];
        bool top = strcmp(dir, ".") == 0; /* written-set keys have no "./" prefix */
        if (snprintf(rel, sizeof rel, "%s%s%s", top ? "" : dir, top ? "" : "/", e->d_name) >= (int)sizeof rel)
            continue;
        if (kc_map_get(written, rel))
            continue;
        if (snprintf(full, sizeof full, "%s/%s", root, rel) >= (int)sizeof full || kc_image_rmtree(full))
            rc = -1;
    }
    closedir(d);
    return rc;
}

/* Handles a whiteout entry (dir/.wh.name, rel already resolved); returns 1 if the entry was one. */
static int whiteout(const char *root, const char *rel, struct kc_map *written, int *rc)
{
    const char *slash = strrchr(rel, '/');
    const char *base = slash ? slash + 1 : rel;
    if (strncmp(base, WH_PREFIX, strlen(WH_PREFIX)) != 0)
        return 0;
    char dir[PATH_MAX];
    size_t dl = slash ? (size_t)(slash - rel) : 0;
    memcpy(dir, rel, dl);
    dir[dl] = 0;
    if (strcmp(base, WH_OPAQUE) == 0) {
        if (opaque(root, dl ? dir : ".", written))
            *rc = -1;
        return 1;
    }
    const char *name = base + strlen(WH_PREFIX);
    char full[PATH_MAX];
    if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
        return 1;
    if (snprintf(full, sizeof full, "%s/%s%s%s", root, dir, dl ? "/" : "", name) >= (int)sizeof full ||
        kc_image_rmtree(full)) /* the victim itself is not followed if it is a symlink */
        *rc = -1;
    return 1;
}

static int copy_data(struct archive *in, struct archive *out)
{
    const void *buf;
    size_t len;
    la_int64_t off;
    for (;;) {
        int r = archive_read_data_block(in, &buf, &len, &off);
        if (r == ARCHIVE_EOF)
            return ARCHIVE_OK;
        if (r < ARCHIVE_WARN)
            return r;
        if (archive_write_data_block(out, buf, len, off) < ARCHIVE_WARN)
            return ARCHIVE_FATAL;
    }
}

/* Writes one regular entry under root. */
static int extract(const char *root, const char *rel, struct archive *in, struct archive *out,
                   struct archive_entry *e, struct kc_err *err)
{
    char full[PATH_MAX];
    if (snprintf(full, sizeof full, "%s/%s", root, rel) >= (int)sizeof full)
        return kc_err_set(err, KC_EINVAL, 0, "ErrImagePull", "layer entry path too long: %.200s", rel);
    archive_entry_set_pathname(e, full);
    const char *hl = archive_entry_hardlink(e);
    if (hl) {
        char hc[PATH_MAX], hr[PATH_MAX], hfull[PATH_MAX];
        if (!clean_path(hl, hc, sizeof hc) || resolve_in_root(root, hc, hr, sizeof hr) ||
            snprintf(hfull, sizeof hfull, "%s/%s", root, hr) >= (int)sizeof hfull)
            return kc_err_set(err, KC_EINVAL, 0, "ErrImagePull", "layer hard link %.200s escapes the root", rel);
        archive_entry_set_hardlink(e, hfull);
    }
    if (archive_write_header(out, e) < ARCHIVE_WARN)
        return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "cannot unpack %.200s: %s", rel, archive_error_string(out));
    if (archive_entry_size(e) > 0 && copy_data(in, out) != ARCHIVE_OK)
        return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "cannot unpack %.200s: %s", rel,
                          archive_error_string(in) ? archive_error_string(in) : archive_error_string(out));
    if (archive_write_finish_entry(out) < ARCHIVE_WARN)
        return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "cannot unpack %.200s: %s", rel, archive_error_string(out));
    return 0;
}

static int apply(const char *root, struct archive *in, struct archive *out, struct kc_map *written,
                 struct kc_err *err)
{
    struct archive_entry *e;
    int r, rc = 0;
    while ((r = archive_read_next_header(in, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        char clean[PATH_MAX], rel[PATH_MAX];
        if (!clean_path(archive_entry_pathname(e), clean, sizeof clean)) {
            const char *p = archive_entry_pathname(e);
            if (strstr(p, ".."))
                return kc_err_set(err, KC_EINVAL, 0, "ErrImagePull", "layer entry %.200s escapes the root; refused",
                                  p);
            continue; /* the root directory itself */
        }
        if (resolve_in_root(root, clean, rel, sizeof rel))
            return kc_err_set(err, KC_EINVAL, 0, "ErrImagePull", "layer entry %.200s: symlink loop or path too long",
                              clean);
        int wrc = 0;
        if (whiteout(root, rel, written, &wrc)) {
            if (wrc)
                return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "cannot apply whiteout %.200s", rel);
            continue;
        }
        int perr = 0;
        kc_map_put(written, rel, (void *)1, &perr);
        if (perr)
            return kc_err_set(err, KC_ENOMEM, 0, "ErrImagePull", "out of memory");
        if ((rc = extract(root, rel, in, out, e, err)))
            return rc;
    }
    if (r != ARCHIVE_EOF)
        return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "corrupt layer: %s", archive_error_string(in));
    return 0;
}

int kc_image_apply_layer(const char *root_in, const char *layer_path, struct kc_err *err)
{
    char root[PATH_MAX];
    if (!realpath(root_in, root))
        return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "rootfs %s: %s", root_in, strerror(errno));
    struct archive *in = archive_read_new(), *out = archive_write_disk_new();
    if (!in || !out) {
        archive_read_free(in);
        archive_write_free(out);
        return kc_err_set(err, KC_ENOMEM, 0, "ErrImagePull", "out of memory");
    }
    archive_read_support_filter_all(in); /* gzip, zstd, none (others harmless) */
    archive_read_support_format_tar(in);
    /* No SECURE_SYMLINKS: paths are resolved inside the root beforehand (resolve_in_root), and libarchive's
     * check would instead delete an image's own directory symlinks (e.g. lib -> usr/lib). */
    int flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_UNLINK |
                ARCHIVE_EXTRACT_SECURE_NODOTDOT;
    if (geteuid() == 0)
        flags |= ARCHIVE_EXTRACT_OWNER;
    archive_write_disk_set_options(out, flags);
    archive_write_disk_set_standard_lookup(out);
    int rc;
    if (archive_read_open_filename(in, layer_path, 1 << 16) != ARCHIVE_OK) {
        rc = kc_err_set(err, KC_EIO, 0, "ErrImagePull", "cannot read layer %s: %s", layer_path,
                        archive_error_string(in));
    } else {
        struct kc_map written;
        kc_map_init(&written);
        rc = apply(root, in, out, &written, err);
        kc_map_release(&written);
    }
    archive_read_free(in);
    archive_write_free(out);
    return rc;
}
