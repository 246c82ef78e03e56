/* test_rollout.c — table tests of the Deployment rollout arithmetic (rollout.c) with upstream's
 * known cases: fencepost rounding, NewRSNewReplicas, cleanup of unhealthy old replicas, rolling
 * scale-down, proportional scaling (sync_test.go's TestScale table), revisions, the hash and
 * template equality. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "controller/rollout.h"

static json_t *is(const char *s)
{
    return s[0] >= '0' && s[0] <= '9' && !strchr(s, '%') ? json_integer(atoi(s)) : json_string(s);
}

static void test_fenceposts(void **state)
{
    (void)state;
    static const struct {
        const char *surge, *unavail;
        int desired, want_surge, want_unavail, want_rc;
    } cases[] = {
        {"0%", "0%", 0, 0, 1, 0},          /* both zero → unavailable 1 */
        {"39%", "39%", 10, 4, 3, 0},       /* surge rounds up, unavailable down */
        {"25%", "25%", 1, 1, 0, 0},
        {"25%", "25%", 4, 1, 1, 0},
        {"25%", "25%", 10, 3, 2, 0},
        {"1%", "1%", 2, 1, 0, 0},
        {"0", "1%", 2, 0, 1, 0},           /* 1% of 2 rounds to 0 → forced 1 */
        {"3", "2", 10, 3, 2, 0},
        {"0", "0", 5, 0, 1, 0},
        {"100%", "0%", 3, 3, 0, 0},
        {"oops", "25%", 10, 0, 0, KC_EINVAL},
        {"25%", "5x%", 10, 0, 0, KC_EINVAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *s = is(cases[i].surge), *u = is(cases[i].unavail);
        int gs = -1, gu = -1;
        struct kc_err err = {0};
        int rc = kc_ro_fenceposts(s, u, cases[i].desired, &gs, &gu, &err);
        assert_int_equal(rc, cases[i].want_rc);
        if (!rc) {
            assert_int_equal(gs, cases[i].want_surge);
            assert_int_equal(gu, cases[i].want_unavail);
        } else {
            assert_true(strstr(err.message, "IntOrString") != NULL);
        }
        json_decref(s);
        json_decref(u);
    }
}

static void test_deploy_from_json_defaults(void **state)
{
    (void)state;
    json_t *d = json_loads("{\"spec\":{\"replicas\":4},\"status\":{\"replicas\":3}}", 0, NULL);
    struct kc_ro_deploy rd;
    assert_int_equal(kc_ro_deploy_from_json(d, &rd, NULL), 0);
    assert_true(rd.rolling);
    assert_int_equal(rd.surge, 1); /* 25% of 4 */
    assert_int_equal(rd.unavail, 1);
    assert_int_equal(rd.status_replicas, 3);
    json_decref(d);
    d = json_loads("{\"spec\":{\"replicas\":4,\"strategy\":{\"type\":\"Recreate\"}}}", 0, NULL);
    assert_int_equal(kc_ro_deploy_from_json(d, &rd, NULL), 0);
    assert_false(rd.rolling);
    assert_int_equal(kc_ro_max_surge(&rd), 0);
    assert_int_equal(kc_ro_max_unavailable(&rd), 0);
    assert_int_equal(kc_ro_min_available(&rd), 0);
    json_decref(d);
}

static void test_max_unavailable_capped(void **state)
{
    (void)state;
    struct kc_ro_deploy d = {.replicas = 2, .rolling = true, .surge = 0, .unavail = 5};
    assert_int_equal(kc_ro_max_unavailable(&d), 2);
    assert_int_equal(kc_ro_min_available(&d), 0);
    d.replicas = 0;
    assert_int_equal(kc_ro_max_unavailable(&d), 0);
}

static void test_new_rs_replicas(void **state)
{
    (void)state;
    static const struct {
        int replicas, surge, all, new_rs, want;
    } cases[] = {
        {1, 1, 1, 0, 1},   /* room for one surge pod */
        {1, 0, 1, 0, 0},   /* no surge, old pod still there: cannot scale up */
        {10, 3, 10, 0, 3}, /* up to surge */
        {10, 3, 13, 3, 3}, /* at max total */
        {10, 3, 11, 8, 10},/* never past desired */
        {10, 25, 10, 0, 10},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct kc_ro_deploy d = {.replicas = cases[i].replicas, .rolling = true, .surge = cases[i].surge, .unavail = 1};
        assert_int_equal(kc_ro_new_rs_replicas(&d, cases[i].all, cases[i].new_rs), cases[i].want);
    }
    struct kc_ro_deploy rec = {.replicas = 7, .rolling = false};
    assert_int_equal(kc_ro_new_rs_replicas(&rec, 20, 0), 7);
}

static void test_max_scaled_down(void **state)
{
    (void)state;
    /* 10 desired, maxUnavailable 2 → minAvailable 8; 13 pods, new RS 3 with 1 available → 13-8-2 = 3 */
    struct kc_ro_deploy d = {.replicas = 10, .rolling = true, .surge = 3, .unavail = 2};
    assert_int_equal(kc_ro_max_scaled_down(&d, 13, 3, 1), 3);
    /* new RS all unavailable eats the budget */
    assert_int_equal(kc_ro_max_scaled_down(&d, 10, 2, 0), 0);
}

static void test_cleanup_unhealthy(void **state)
{
    (void)state;
    /* upstream TestDeploymentController_cleanupUnhealthyReplicas: 10 old replicas, 8 available */
    static const struct {
        int replicas, available, max_cleanup, want;
    } cases[] = {{10, 8, 1, 1}, {10, 8, 3, 2}, {10, 8, 0, 0}, {10, 10, 3, 0}, {0, 0, 3, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct kc_ro_rs rs = {.name = "a", .replicas = cases[i].replicas, .available = cases[i].available};
        assert_int_equal(kc_ro_cleanup_unhealthy(&rs, 1, cases[i].max_cleanup), cases[i].want);
        assert_int_equal(rs.size, cases[i].replicas - cases[i].want);
    }
    /* oldest first across several replica sets */
    struct kc_ro_rs two[] = {{.name = "new", .created = 20, .replicas = 3, .available = 0},
                             {.name = "old", .created = 10, .replicas = 3, .available = 1}};
    assert_int_equal(kc_ro_cleanup_unhealthy(two, 2, 3), 3);
    assert_int_equal(two[1].size, 1);
    assert_int_equal(two[0].size, 2);
}

static void test_scale_down_old(void **state)
{
    (void)state;
    /* 10 desired, maxUnavailable 2 (min 8) */
    struct kc_ro_deploy d = {.replicas = 10, .rolling = true, .surge = 0, .unavail = 2};
    struct kc_ro_rs old = {.name = "o", .replicas = 10, .available = 10};
    assert_int_equal(kc_ro_scale_down_old(&d, &old, 1, 10), 2);
    assert_int_equal(old.size, 8);
    assert_int_equal(kc_ro_scale_down_old(&d, &old, 1, 8), 0); /* at minimum */
    assert_int_equal(old.size, 10);
    /* oldest RS drained first, then the next */
    struct kc_ro_rs rs[] = {{.name = "b", .created = 2, .replicas = 4}, {.name = "a", .created = 1, .replicas = 2}};
    d.unavail = 0;
    d.surge = 3;
    assert_int_equal(kc_ro_scale_down_old(&d, rs, 2, 13), 3);
    assert_int_equal(rs[1].size, 0);
    assert_int_equal(rs[0].size, 3);
}

/* TestScale (sync_test.go): annotations carry the OLD deployment's desired + surge. */
struct scale_case {
    const char *name;
    int replicas, surge, old_replicas, old_surge;
    int n;
    int sizes[3];        /* [0] newest ... */
    int64_t created[3];
    int want[3];
};

static void test_proportional(void **state)
{
    (void)state;
    static const struct scale_case cases[] = {
        {"5 -> 10", 10, 0, 5, 0, 2, {2, 3}, {3, 2}, {4, 6}},
        {"5 -> 3", 3, 0, 5, 0, 2, {2, 3}, {3, 2}, {1, 2}},
        {"9 -> 4", 4, 0, 9, 0, 2, {8, 1}, {3, 2}, {4, 0}},
        {"7 -> 10", 10, 0, 7, 0, 3, {2, 3, 2}, {3, 2, 1}, {3, 4, 3}},
        {"13 -> 8", 8, 0, 13, 0, 3, {2, 8, 3}, {3, 2, 1}, {1, 5, 2}},
        {"leftover 3 -> 4", 4, 0, 3, 0, 3, {1, 1, 1}, {3, 2, 1}, {2, 1, 1}},
        {"leftover 3 -> 2", 2, 0, 3, 0, 3, {1, 1, 1}, {3, 2, 1}, {1, 1, 0}},
        {"no new rs 4 -> 5", 5, 0, 4, 0, 2, {2, 2}, {2, 1}, {3, 2}},
        {"6 -> 0", 0, 0, 6, 0, 3, {3, 2, 1}, {3, 2, 1}, {0, 0, 0}},
        {"surge 10 -> 20", 20, 2, 10, 2, 2, {6, 6}, {3, 2}, {11, 11}},
        {"surge and size", 50, 6, 10, 3, 2, {5, 8}, {3, 2}, {22, 34}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct scale_case *c = &cases[i];
        struct kc_ro_deploy d = {.replicas = c->replicas, .rolling = true, .surge = c->surge, .unavail = 1,
                                 .status_replicas = c->old_replicas};
        struct kc_ro_rs rs[3];
        static const char *names[] = {"foo-v3", "foo-v2", "foo-v1"};
        for (int k = 0; k < c->n; k++)
            rs[k] = (struct kc_ro_rs){.name = names[k], .created = c->created[k], .replicas = c->sizes[k],
                                      .max_replicas = c->old_replicas + c->old_surge};
        kc_ro_proportional(&d, rs, (size_t)c->n);
        for (int k = 0; k < c->n; k++) {
            if (rs[k].size != c->want[k])
                fail_msg("%s: rs %d got %d want %d", c->name, k, rs[k].size, c->want[k]);
        }
    }
}

static void test_proportion_fraction(void **state)
{
    (void)state;
    struct kc_ro_deploy d = {.replicas = 10, .rolling = true, .surge = 0, .unavail = 1, .status_replicas = 5};
    struct kc_ro_rs rs = {.name = "x", .replicas = 3, .max_replicas = -1};
    assert_int_equal(kc_ro_fraction(&d, &rs), 3);       /* falls back to status.replicas: 3*10/5 - 3 */
    assert_int_equal(kc_ro_proportion(&d, &rs, 5, 4), 1); /* capped by what is left to add */
    assert_int_equal(kc_ro_proportion(&d, &rs, 5, 5), 0);
    rs.replicas = 0;
    assert_int_equal(kc_ro_proportion(&d, &rs, 5, 0), 0); /* never from zero */
}

static void test_revisions(void **state)
{
    (void)state;
    struct kc_ro_rs rs[] = {{.revision = 3}, {.revision = 1}, {.revision = 7}, {.revision = 5}};
    assert_int_equal(kc_ro_max_revision(rs, 4), 7);
    assert_int_equal(kc_ro_last_revision(rs, 4), 5);
    assert_int_equal(kc_ro_max_revision(NULL, 0), 0);
    struct kc_ro_rs one[] = {{.revision = 4}};
    assert_int_equal(kc_ro_last_revision(one, 1), 0);

    char out[64];
    assert_int_equal(kc_ro_revision_history(NULL, "2", KC_RO_REV_HISTORY_MAX, out, sizeof out), 0);
    assert_string_equal(out, "2");
    assert_int_equal(kc_ro_revision_history("1,2", "3", KC_RO_REV_HISTORY_MAX, out, sizeof out), 0);
    assert_string_equal(out, "1,2,3");
    assert_int_equal(kc_ro_revision_history("1,2", "3", 5, out, sizeof out), 0);
    assert_string_equal(out, "1,2,3");
    assert_int_equal(kc_ro_revision_history("1,2", "3", 4, out, sizeof out), 0); /* oldest dropped */
    assert_string_equal(out, "2,3");
    assert_int_equal(kc_ro_revision_history("1", "12345", 3, out, sizeof out), KC_ETOOLARGE);
}

static void test_hash(void **state)
{
    (void)state;
    assert_int_equal(kc_ro_fnv32a("", 0, 2166136261u), 0x811c9dc5u);
    assert_int_equal(kc_ro_fnv32a("a", 1, 2166136261u), 0xe40c292cu);
    char enc[16];
    kc_ro_safe_encode("0123456789", enc, sizeof enc);
    assert_string_equal(enc, "456789bcdf");

    json_t *t = json_loads("{\"metadata\":{\"labels\":{\"app\":\"x\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"nginx\"}]}}", 0, NULL);
    json_t *t2 = json_loads("{\"spec\":{\"containers\":[{\"image\":\"nginx\",\"name\":\"c\"}]},\"metadata\":{\"labels\":{\"pod-template-hash\":\"zzz\",\"app\":\"x\"}}}", 0, NULL);
    char h1[16], h2[16], h3[16], h4[16];
    assert_int_equal(kc_ro_template_hash(t, -1, h1, sizeof h1), 0);
    assert_int_equal(kc_ro_template_hash(t2, -1, h2, sizeof h2), 0);
    assert_string_equal(h1, h2); /* key order and the hash label do not matter */
    assert_true(strlen(h1) >= 1 && strlen(h1) <= 10);
    assert_true(strspn(h1, "456789bcdf") == strlen(h1));
    assert_int_equal(kc_ro_template_hash(t, 0, h3, sizeof h3), 0);
    assert_int_equal(kc_ro_template_hash(t, 1, h4, sizeof h4), 0);
    assert_string_not_equal(h1, h3); /* collisionCount 0 still changes the hash (bytes are written) */
    assert_string_not_equal(h3, h4);
    json_object_set_new(json_object_get(json_object_get(t, "spec"), "containers"), "x", json_true());
    json_array_append_new(json_object_get(json_object_get(t2, "spec"), "containers"), json_object());
    char h5[16];
    kc_ro_template_hash(t2, -1, h5, sizeof h5);
    assert_string_not_equal(h1, h5);
    json_decref(t);
    json_decref(t2);
}

static void test_template_equal(void **state)
{
    (void)state;
    json_t *a = json_loads("{\"metadata\":{\"labels\":{\"app\":\"x\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"nginx\"}]}}", 0, NULL);
    json_t *b = json_loads("{\"metadata\":{\"labels\":{\"app\":\"x\",\"pod-template-hash\":\"abc\"},\"annotations\":{}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"nginx\",\"env\":[]}]}}", 0, NULL);
    json_t *c = json_loads("{\"metadata\":{\"labels\":{\"app\":\"x\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"nginx:2\"}]}}", 0, NULL);
    json_t *d = json_loads("{\"metadata\":{\"labels\":{\"app\":\"x\"},\"annotations\":{\"kubectl.kubernetes.io/restartedAt\":\"t\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"nginx\"}]}}", 0, NULL);
    assert_true(kc_ro_template_equal(a, b));
    assert_false(kc_ro_template_equal(a, c));
    assert_false(kc_ro_template_equal(a, d)); /* restart changes the template */
    /* the inputs are not modified */
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(b, "metadata"), "labels"), "pod-template-hash")), "abc");
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fenceposts),        cmocka_unit_test(test_deploy_from_json_defaults),
        cmocka_unit_test(test_max_unavailable_capped), cmocka_unit_test(test_new_rs_replicas),
        cmocka_unit_test(test_max_scaled_down),   cmocka_unit_test(test_cleanup_unhealthy),
        cmocka_unit_test(test_scale_down_old),    cmocka_unit_test(test_proportional),
        cmocka_unit_test(test_proportion_fraction), cmocka_unit_test(test_revisions),
        cmocka_unit_test(test_hash),              cmocka_unit_test(test_template_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
