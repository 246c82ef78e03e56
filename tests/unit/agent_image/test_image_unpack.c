/* test_image_unpack.c — layers applied onto a rootfs: whiteouts, opaque directories, compression,
 * and entries that try to escape the root. Layers are built here with libarchive. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/image_int.h"

struct ent {
    const char *path;
    char type;           /* 'f' file, 'd' dir, 'l' symlink, 'h' hard link */
    const char *data;    /* file content or link target */
};

static char tmpdir[256];

static void write_layer(const char *path, int filter, const struct ent *e)
{
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (filter == 'g')
        archive_write_add_filter_gzip(a);
    else if (filter == 'z')
        assert_int_equal(archive_write_add_filter_zstd(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (; e->path; e++) {
        struct archive_entry *en = archive_entry_new();
        archive_entry_set_pathname(en, e->path);
        archive_entry_set_mtime(en, 1700000000, 0);
        if (e->type == 'd') {
            archive_entry_set_filetype(en, AE_IFDIR);
            archive_entry_set_perm(en, 0755);
        } else if (e->type == 'l') {
            archive_entry_set_filetype(en, AE_IFLNK);
            archive_entry_set_symlink(en, e->data);
            archive_entry_set_perm(en, 0777);
        } else if (e->type == 'h') {
            archive_entry_set_filetype(en, AE_IFREG);
            archive_entry_set_hardlink(en, e->data);
            archive_entry_set_size(en, 0);
        } else {
            archive_entry_set_filetype(en, AE_IFREG);
            archive_entry_set_perm(en, 0644);
            archive_entry_set_size(en, (la_int64_t)strlen(e->data ? e->data : ""));
        }
        assert_int_equal(archive_write_header(a, en), ARCHIVE_OK);
        if (e->type == 'f' && e->data && *e->data)
            archive_write_data(a, e->data, strlen(e->data));
        archive_entry_free(en);
    }
    archive_write_close(a);
    archive_write_free(a);
}

static bool exists(const char *root, const char *rel)
{
    char p[1024];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", root, rel);
    return lstat(p, &st) == 0;
}

static void slurp(const char *root, const char *rel, char *out, size_t n)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    size_t r = fread(out, 1, n - 1, f);
    out[r] = 0;
    fclose(f);
}

static int setup(void **st)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kc-unpack-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int teardown(void **st)
{
    kc_image_rmtree(tmpdir);
    return 0;
}

static void apply(const char *root, const char *layer)
{
    struct kc_err err = {0};
    if (kc_image_apply_layer(root, layer, &err))
        fail_msg("apply %s: %s", layer, err.message);
}

static void test_whiteouts(void **st)
{
    char root[300], l1[300], l2[300], l3[300];
    snprintf(root, sizeof root, "%s/rootfs", tmpdir);
    snprintf(l1, sizeof l1, "%s/l1.tar", tmpdir);
    snprintf(l2, sizeof l2, "%s/l2.tar.gz", tmpdir);
    snprintf(l3, sizeof l3, "%s/l3.tar.zst", tmpdir);
    mkdir(root, 0755);
    const struct ent e1[] = {{"a/", 'd', NULL},         {"a/x", 'f', "x1"},        {"a/y", 'f', "y1"},
                             {"./top", 'f', "top1"},    {"d/", 'd', NULL},         {"d/old", 'f', "old"},
                             {"d/sub/", 'd', NULL},     {"d/sub/deep", 'f', "dp"}, {"e/", 'd', NULL},
                             {"e/olde", 'f', "o"},      {"bin/", 'd', NULL},       {"bin/sh", 'f', "#!"},
                             {"bin/ln", 'h', "bin/sh"}, {NULL, 0, NULL}};
    write_layer(l1, 0, e1);
    /* gzip: delete a/x; d opaque before its new entry; e opaque AFTER its new entry (same layer kept) */
    const struct ent e2[] = {{"a/.wh.x", 'f', ""},    {"d/.wh..wh..opq", 'f', ""}, {"d/new", 'f', "n"},
                             {"e/newe", 'f', "ne"},   {"e/.wh..wh..opq", 'f', ""}, {"top", 'f', "top2"},
                             {".wh.missing", 'f', ""}, {NULL, 0, NULL}};
    write_layer(l2, 'g', e2);
    /* zstd: a whiteout of a whole directory, then it is re-created as a file */
    const struct ent e3[] = {{".wh.a", 'f', ""}, {"a", 'f', "now a file"}, {NULL, 0, NULL}};
    write_layer(l3, 'z', e3);
    apply(root, l1);
    char buf[64];
    slurp(root, "bin/ln", buf, sizeof buf);
    assert_string_equal(buf, "#!"); /* hard link inside the root */
    apply(root, l2);
    assert_false(exists(root, "a/x"));
    assert_true(exists(root, "a/y"));
    assert_false(exists(root, "a/.wh.x")); /* whiteout markers are not extracted */
    assert_false(exists(root, "d/old"));
    assert_false(exists(root, "d/sub"));
    assert_true(exists(root, "d/new"));
    assert_false(exists(root, "d/.wh..wh..opq"));
    assert_false(exists(root, "e/olde"));
    assert_true(exists(root, "e/newe"));
    slurp(root, "top", buf, sizeof buf);
    assert_string_equal(buf, "top2");
    apply(root, l3);
    slurp(root, "a", buf, sizeof buf);
    assert_string_equal(buf, "now a file");
    /* an opaque marker at the root: everything of lower layers goes, this layer's entries stay */
    const struct ent e4[] = {{"fresh", 'f', "f"}, {".wh..wh..opq", 'f', ""}, {"later/", 'd', NULL}, {NULL, 0, NULL}};
    write_layer(l1, 0, e4);
    apply(root, l1);
    assert_true(exists(root, "fresh"));
    assert_true(exists(root, "later"));
    assert_false(exists(root, "a"));
    assert_false(exists(root, "bin"));
    assert_false(exists(root, "top"));
}

static void test_escapes_refused(void **st)
{
    char root[300], outside[300], l1[300], l2[300], l3[300], p[400];
    snprintf(root, sizeof root, "%s/rootfs2", tmpdir);
    snprintf(outside, sizeof outside, "%s/outside", tmpdir);
    snprintf(l1, sizeof l1, "%s/e1.tar", tmpdir);
    snprintf(l2, sizeof l2, "%s/e2.tar", tmpdir);
    snprintf(l3, sizeof l3, "%s/e3.tar", tmpdir);
    mkdir(root, 0755);
    mkdir(outside, 0755);
    snprintf(p, sizeof p, "%s/precious", outside);
    FILE *f = fopen(p, "w");
    fputs("keep", f);
    fclose(f);
    const struct ent e1[] = {{"link", 'l', outside}, {NULL, 0, NULL}};
    write_layer(l1, 0, e1);
    apply(root, l1);
    /* a whiteout through the symlink must not delete outside the root */
    const struct ent e2[] = {{"link/.wh.precious", 'f', ""}, {NULL, 0, NULL}};
    write_layer(l2, 0, e2);
    apply(root, l2);
    assert_true(exists(outside, "precious"));
    /* writing through the symlink follows it as the container sees it: inside the root */
    const struct ent e3[] = {{"link/evil", 'f', "x"}, {"up/../../../evil3", 'f', "y"}, {NULL, 0, NULL}};
    const struct ent e3a[] = {{"up", 'l', "../../.."}, {NULL, 0, NULL}};
    write_layer(l2, 0, e3a);
    apply(root, l2);
    write_layer(l3, 0, e3);
    struct kc_err err = {0};
    assert_int_equal(kc_image_apply_layer(root, l3, &err), KC_EINVAL); /* ".." in an entry path */
    const struct ent e3b[] = {{"link/evil", 'f', "x"}, {"up/evil3", 'f', "y"}, {NULL, 0, NULL}};
    write_layer(l3, 0, e3b);
    apply(root, l3);
    assert_false(exists(outside, "evil"));
    assert_true(exists(outside, "precious"));
    char inroot[600];
    snprintf(inroot, sizeof inroot, "%s%s", root, outside);
    assert_true(exists(inroot, "evil"));   /* root + the symlink's absolute target */
    assert_true(exists(root, "evil3"));    /* ".." in a symlink target stops at the root */
    assert_false(exists(tmpdir, "evil3"));
    const struct ent e4[] = {{"../evil2", 'f', "x"}, {NULL, 0, NULL}};
    write_layer(l3, 'g', e4);
    assert_int_equal(kc_image_apply_layer(root, l3, &err), KC_EINVAL);
    assert_non_null(strstr(err.message, "escapes"));
    assert_false(exists(tmpdir, "evil2"));
    const struct ent e5[] = {{"hl", 'h', "../../etc/passwd"}, {NULL, 0, NULL}};
    write_layer(l3, 0, e5);
    assert_int_equal(kc_image_apply_layer(root, l3, &err), KC_EINVAL);
}

static void test_directory_symlinks_kept(void **st)
{
    char root[300], l1[300], l2[300];
    snprintf(root, sizeof root, "%s/rootfs4", tmpdir);
    snprintf(l1, sizeof l1, "%s/s1.tar", tmpdir);
    snprintf(l2, sizeof l2, "%s/s2.tar", tmpdir);
    mkdir(root, 0755);
    /* merged /usr: lib -> usr/lib; a later layer writes lib/x and whites out lib/old */
    const struct ent e1[] = {{"usr/", 'd', NULL}, {"usr/lib/", 'd', NULL}, {"usr/lib/old", 'f', "o"},
                             {"usr/lib/ld.so", 'f', "ld"}, {"lib", 'l', "usr/lib"}, {"abs", 'l', "/usr/lib"},
                             {NULL, 0, NULL}};
    write_layer(l1, 0, e1);
    apply(root, l1);
    const struct ent e2[] = {{"lib/x", 'f', "x"}, {"lib/.wh.old", 'f', ""}, {"abs/y", 'f', "y"},
                             {"lib/hl", 'h', "abs/ld.so"}, {NULL, 0, NULL}};
    write_layer(l2, 0, e2);
    apply(root, l2);
    char p[400], t[64];
    snprintf(p, sizeof p, "%s/lib", root);
    struct stat sb;
    assert_int_equal(lstat(p, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode)); /* the image's own symlink is kept */
    assert_true(exists(root, "usr/lib/x"));
    assert_true(exists(root, "usr/lib/y"));
    assert_false(exists(root, "usr/lib/old"));
    slurp(root, "usr/lib/hl", t, sizeof t);
    assert_string_equal(t, "ld");
}

static void test_corrupt_layer(void **st)
{
    char root[300], l[300];
    snprintf(root, sizeof root, "%s/rootfs3", tmpdir);
    snprintf(l, sizeof l, "%s/junk.tar.gz", tmpdir);
    mkdir(root, 0755);
    const struct ent e[] = {{"f", 'f', "0123456789012345678901234567890123456789"}, {NULL, 0, NULL}};
    write_layer(l, 'g', e);
    assert_int_equal(truncate(l, 30), 0);
    struct kc_err err = {0};
    assert_int_equal(kc_image_apply_layer(root, l, &err), KC_EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whiteouts),
        cmocka_unit_test(test_escapes_refused),
        cmocka_unit_test(test_directory_symlinks_kept),
        cmocka_unit_test(test_corrupt_layer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
