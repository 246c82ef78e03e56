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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_sweeps_leftovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_name_and_unreachable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_index_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
