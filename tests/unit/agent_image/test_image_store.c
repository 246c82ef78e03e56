/* test_image_store.c — the store without a registry: open/sweep, invalid names, unreachable
 * registries, empty listing, prune/GC bookkeeping on an empty store. (Pulls from a real registry
 * are in tests/e2e/test_images.py.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/image.h"
#include "agent/image_int.h"

static char dir[256];

static int setup(void **st)
{
    snprintf(dir, sizeof dir, "/tmp/kc-store-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **st)
{
    kc_image_rmtree(dir);
    return 0;
}

static void test_open_sweeps_leftovers(void **st)
{
    struct kc_image_store_opts o = {.root = dir};
    struct kc_image_store *s = NULL;
    struct kc_err err = {0};
    assert_int_equal(kc_image_store_open(&o, &s, &err), 0);
    kc_image_store_close(s);
    /* what a crash mid-pull leaves behind */
    char p[512];
    snprintf(p, sizeof p, "%s/rootfs/tmp-abc-1-1", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/rootfs/tmp-abc-1-1/bin", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/blobs/tmp-def-1-2", dir);
    FILE *f = fopen(p, "w");
    fclose(f);
    snprintf(p, sizeof p, "%s/blobs/sha256/0123", dir); /* a blob no image refers to */
    f = fopen(p, "w");
    fclose(f);
    assert_int_equal(kc_image_store_open(&o, &s, &err), 0);
    struct stat sb;
    snprintf(p, sizeof p, "%s/rootfs/tmp-abc-1-1", dir);
    assert_int_not_equal(stat(p, &sb), 0);
    snprintf(p, sizeof p, "%s/blobs/tmp-def-1-2", dir);
    assert_int_not_equal(stat(p, &sb), 0);
    snprintf(p, sizeof p, "%s/blobs/sha256/0123", dir);
    assert_int_not_equal(stat(p, &sb), 0);
    json_t *l = kc_image_list(s);
    assert_int_equal(json_array_size(l), 0);
    json_decref(l);
    assert_int_equal(kc_image_store_size(s), 0);
    kc_image_store_close(s);
}

static void test_invalid_name_and_unreachable(void **st)
{
    struct kc_image_store_opts o = {.root = dir};
    struct kc_image_store *s = NULL;
    struct kc_err err = {0};
    assert_int_equal(kc_image_store_open(&o, &s, &err), 0);
    struct kc_image_info info;
    assert_int_equal(kc_image_pull(s, "Not/Valid", NULL, false, &info, &err), KC_EINVAL);
    assert_string_equal(err.reason, "InvalidImageName");
    assert_false(kc_image_present(s, "busybox", &info));
    /* port 1 on loopback: nothing listens */
    memset(&err, 0, sizeof err);
    assert_int_not_equal(kc_image_pull(s, "127.0.0.1:1/app:v1", NULL, false, &info, &err), 0);
    assert_string_equal(err.reason, "ErrImagePull");
    if (!strstr(err.message, "unreachable"))
        fail_msg("message: %s", err.message);
    assert_non_null(strstr(err.message, "127.0.0.1:1"));
    int64_t freed = -1;
    assert_int_equal(kc_image_prune(s, NULL, &freed, &err), 0);
    assert_int_equal(freed, 0);
    kc_image_store_close(s);
}

static void test_corrupt_index_refused(void **st)
{
    char p[512];
    snprintf(p, sizeof p, "%s/index.json", dir);
    FILE *f = fopen(p, "w");
    fputs("{not json", f);
    fclose(f);
    struct kc_image_store_opts o = {.root = dir};
    struct kc_image_store *s = NULL;
    struct kc_err err = {0};
    assert_int_equal(kc_image_store_open(&o, &s, &err), KC_EIO);
    assert_non_null(strstr(err.message, "index.json"));
    unlink(p);
}

/* A store laid out by hand: 4 images, one blob shared by A and D. */
#define HEX(c) c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
    c c c c c c c c c c c c
static const char *img_hex[] = {HEX("a"), HEX("b"), HEX("c"), HEX("d")};
static const char *blob_hex[] = {HEX("1"), HEX("2"), HEX("3"), HEX("4"), HEX("5")};

static void touch(const char *fmt, const char *a)
{
    char p[600];
    snprintf(p, sizeof p, fmt, dir, a);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fclose(f);
}

static bool there(const char *fmt, const char *a)
{
    char p[600];
    struct stat sb;
    snprintf(p, sizeof p, fmt, dir, a);
    return stat(p, &sb) == 0;
}

static void make_store(void)
{
    char p[600];
    const int sizes[] = {100, 200, 300, 50};
    /* layers: A {1,5} B {2} C {3} D {4,5}; configs: the image's own hex reused as blob name is not needed */
    const char *layers[4][2] = {{blob_hex[0], blob_hex[4]}, {blob_hex[1], NULL}, {blob_hex[2], NULL},
                                {blob_hex[3], blob_hex[4]}};
    const char *names[] = {"r.example/app:a", "r.example/app:b", "r.example/app:c", "r.example/app:d"};
    json_t *imgs = json_object();
    for (int i = 0; i < 4; i++) {
        json_t *ls = json_array();
        for (int j = 0; j < 2 && layers[i][j]; j++) {
            char d[80];
            snprintf(d, sizeof d, "sha256:%s", layers[i][j]);
            json_array_append_new(ls, json_string(d));
        }
        char key[80];
        snprintf(key, sizeof key, "sha256:%s", img_hex[i]);
        json_object_set_new(imgs, key, json_pack("{s:[s], s:i, s:s, s:o, s:i}", "names", names[i], "size", sizes[i],
                                                 "config", "", "layers", ls, "lastUsed", i + 1));
        snprintf(p, sizeof p, "%s/rootfs/%s", dir, img_hex[i]);
        assert_int_equal(mkdir(p, 0755), 0);
    }
    for (int i = 0; i < 5; i++)
        touch("%s/blobs/sha256/%s", blob_hex[i]);
    touch("%s/blobs/sha256/%s", "orphan");
    json_t *doc = json_pack("{s:o}", "images", imgs);
    snprintf(p, sizeof p, "%s/index.json", dir);
    assert_int_equal(json_dump_file(doc, p, 0), 0);
    json_decref(doc);
}

static void test_gc_lru_and_in_use(void **st)
{
    struct kc_image_store_opts o = {.root = dir};
    struct kc_image_store *s = NULL;
    struct kc_err err = {0};
    assert_int_equal(kc_image_store_open(&o, &s, &err), 0); /* creates the directories */
    kc_image_store_close(s);
    make_store();
    o.gc_high_bytes = 600;
    o.gc_low_bytes = 400;
    assert_int_equal(kc_image_store_open(&o, &s, &err), 0);
    assert_false(there("%s/blobs/sha256/%s", "orphan")); /* swept at open */
    for (int i = 0; i < 5; i++)
        assert_true(there("%s/blobs/sha256/%s", blob_hex[i])); /* referenced: kept */
    assert_int_equal(kc_image_store_size(s), 650);
    /* B is in use (given as repo@digest, as a container's imageID) */
    char b_id[120];
    snprintf(b_id, sizeof b_id, "r.example/app@sha256:%s", img_hex[1]);
    const char *use[] = {b_id, NULL};
    int64_t freed = 0;
    assert_int_equal(kc_image_gc(s, use, &freed, &err), 0);
    /* least recently used first: A (100), B skipped (in use), C (300) → 250 ≤ 400 */
    assert_int_equal(freed, 400);
    assert_int_equal(kc_image_store_size(s), 250);
    assert_false(there("%s/rootfs/%s", img_hex[0]));
    assert_true(there("%s/rootfs/%s", img_hex[1]));
    assert_false(there("%s/rootfs/%s", img_hex[2]));
    assert_true(there("%s/rootfs/%s", img_hex[3]));
    assert_false(there("%s/blobs/sha256/%s", blob_hex[0])); /* only A's */
    assert_false(there("%s/blobs/sha256/%s", blob_hex[2]));
    assert_true(there("%s/blobs/sha256/%s", blob_hex[4]));  /* shared with D */
    struct kc_image_info info;
    assert_true(kc_image_present(s, "r.example/app:d", &info));
    assert_int_equal(info.size_bytes, 50);
    assert_false(kc_image_present(s, "r.example/app:a", NULL));
    /* below the high threshold: nothing happens */
    assert_int_equal(kc_image_gc(s, NULL, &freed, &err), 0);
    assert_int_equal(freed, 0);
    json_t *l = kc_image_list(s);
    assert_int_equal(json_array_size(l), 2);
    json_decref(l);
    kc_image_store_close(s);
    /* the removal was persisted */
    o.gc_high_bytes = 0;
    assert_int_equal(kc_image_store_open(&o, &s, &err), 0);
    assert_int_equal(kc_image_store_size(s), 250);
    assert_int_equal(kc_image_prune(s, NULL, &freed, &err), 0);
    assert_int_equal(freed, 250);
    assert_false(there("%s/blobs/sha256/%s", blob_hex[4]));
    kc_image_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_sweeps_leftovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_name_and_unreachable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_index_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gc_lru_and_in_use, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
