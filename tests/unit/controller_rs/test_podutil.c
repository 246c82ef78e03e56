/* test_podutil.c — table tests for the pure pod helpers the ReplicaSet controller relies on:
 * which surplus pods go first (upstream's ActivePodsWithRanks order), readiness/availability
 * with minReadySeconds, and slow-start batch sizes (1, 2, 4, ...). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "controller/podutil.h"
#include "util/timeutil.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const time_t NOW = 1800000000; /* 2027-01-15 */

/* A pod described compactly: node ("" = unassigned), phase, ready since (0 = not ready,
 * -1 = ready without a transition time), restarts, created (seconds before NOW), cost (NULL = none). */
struct spec {
    const char *name, *node, *phase;
    long ready_ago;
    int restarts;
    long created_ago;
    const char *cost;
};

static json_t *mkpod(const struct spec *s)
{
    char ts[40];
    json_t *p = json_object();
    json_t *m = json_pack("{s:s, s:s}", "name", s->name, "uid", s->name);
    kc_time_rfc3339(NOW - s->created_ago, ts, sizeof ts);
    json_object_set_new(m, "creationTimestamp", json_string(ts));
    if (s->cost)
        json_object_set_new(m, "annotations", json_pack("{s:s}", KC_POD_DELETION_COST, s->cost));
    json_object_set_new(p, "metadata", m);
    json_object_set_new(p, "spec", *s->node ? json_pack("{s:s}", "nodeName", s->node) : json_object());
    json_t *st = json_pack("{s:s}", "phase", s->phase);
    if (s->ready_ago) {
        json_t *c = json_pack("{s:s, s:s}", "type", "Ready", "status", "True");
        if (s->ready_ago > 0) {
            kc_time_rfc3339(NOW - s->ready_ago, ts, sizeof ts);
            json_object_set_new(c, "lastTransitionTime", json_string(ts));
        }
        json_object_set_new(st, "conditions", json_pack("[o]", c));
    } else {
        json_object_set_new(st, "conditions", json_pack("[{s:s, s:s}]", "type", "Ready", "status", "False"));
    }
    json_object_set_new(st, "containerStatuses", json_pack("[{s:s, s:i}, {s:s, s:i}]", "name", "a", "restartCount",
                                                           0, "name", "b", "restartCount", s->restarts));
    json_object_set_new(p, "status", st);
    return p;
}

/* Each row: a pod that must be deleted before another (and never the reverse). */
static void test_delete_order_pairs(void **state)
{
    (void)state;
    static const struct { const char *why; struct spec first, second; } T[] = {
        {"unassigned before assigned", {"a", "", "Running", 100, 0, 10, NULL}, {"b", "n1", "Pending", 0, 0, 10, NULL}},
        {"pending before unknown", {"a", "n1", "Pending", 0, 0, 10, NULL}, {"b", "n1", "Unknown", 0, 0, 10, NULL}},
        {"unknown before running", {"a", "n1", "Unknown", 0, 0, 10, NULL}, {"b", "n1", "Running", 0, 0, 10, NULL}},
        {"not ready before ready", {"a", "n1", "Running", 0, 0, 10, NULL}, {"b", "n1", "Running", 5, 0, 10, NULL}},
        {"lower deletion cost first", {"a", "n1", "Running", 5000, 0, 9000, "-5"},
         {"b", "n1", "Running", 5, 9, 10, "3"}},
        {"ready for less time first", {"a", "n1", "Running", 10, 0, 9000, NULL},
         {"b", "n1", "Running", 100000, 0, 9000, NULL}},
        {"ready without time first", {"a", "n1", "Running", -1, 0, 9000, NULL},
         {"b", "n1", "Running", 100, 0, 9000, NULL}},
        {"more restarts first", {"a", "n1", "Running", 100, 7, 9000, NULL}, {"b", "n1", "Running", 100, 2, 9000, NULL}},
        {"newer first", {"a", "n1", "Running", 100, 0, 60, NULL}, {"b", "n1", "Running", 100, 0, 100000, NULL}},
        {"same log2 bucket: smaller uid first", {"a", "n1", "Running", 100, 0, 1000, NULL},
         {"b", "n1", "Running", 100, 0, 1001, NULL}},
    };
    for (size_t i = 0; i < N(T); i++) {
        json_t *a = mkpod(&T[i].first), *b = mkpod(&T[i].second);
        if (!kc_pod_delete_before(a, 0, b, 0, NOW) || kc_pod_delete_before(b, 0, a, 0, NOW))
            fail_msg("row %zu (%s) wrong order", i, T[i].why);
        json_decref(a);
        json_decref(b);
    }
}

static void test_rank_doubled_up_first(void **state)
{
    (void)state;
    /* three ready pods, two share n1: one of those goes first although it is the oldest */
    struct spec s[] = {{"p1", "n1", "Running", 100000, 0, 200000, NULL},
                       {"p2", "n2", "Running", 10, 0, 20, NULL},
                       {"p3", "n1", "Running", 100000, 0, 200000, NULL}};
    json_t *pods[3], *out[3];
    for (int i = 0; i < 3; i++)
        pods[i] = mkpod(&s[i]);
    assert_int_equal(kc_pods_to_delete(pods, 3, pods, 3, 1, NOW, out), 1);
    const char *name = json_string_value(json_object_get(json_object_get(out[0], "metadata"), "name"));
    assert_true(!strcmp(name, "p1") || !strcmp(name, "p3"));
    /* with no related pods, the youngest-ready goes first */
    assert_int_equal(kc_pods_to_delete(pods, 3, NULL, 0, 1, NOW, out), 1);
    assert_ptr_equal(out[0], pods[1]);
    for (int i = 0; i < 3; i++)
        json_decref(pods[i]);
}

static void test_pods_to_delete_picks_worst(void **state)
{
    (void)state;
    struct spec s[] = {{"ready-old", "n1", "Running", 100000, 0, 200000, NULL},
                       {"pending", "n1", "Pending", 0, 0, 50, NULL},
                       {"unassigned", "", "Pending", 0, 0, 5000, NULL},
                       {"ready-new", "n2", "Running", 30, 0, 40, NULL},
                       {"running-unready", "n3", "Running", 0, 0, 60, NULL}};
    const char *want[] = {"unassigned", "pending", "running-unready", "ready-new"};
    json_t *pods[N(s)], *out[N(s)];
    for (size_t i = 0; i < N(s); i++)
        pods[i] = mkpod(&s[i]);
    for (size_t diff = 0; diff <= N(want); diff++) {
        size_t got = kc_pods_to_delete(pods, N(s), NULL, 0, diff, NOW, out);
        assert_int_equal(got, diff);
        for (size_t i = 0; i < got; i++)
            assert_string_equal(json_string_value(json_object_get(json_object_get(out[i], "metadata"), "name")),
                                want[i]);
    }
    /* asking for more than exist returns all of them */
    assert_int_equal(kc_pods_to_delete(pods, N(s), NULL, 0, 99, NOW, out), N(s));
    for (size_t i = 0; i < N(s); i++)
        json_decref(pods[i]);
}

static void test_ready_available(void **state)
{
    (void)state;
    static const struct { long ready_ago; int min_ready; bool ready, available; int avail_in; } T[] = {
        {0, 0, false, false, 0},   {30, 0, true, true, 0},   {30, 10, true, true, 0},
        {30, 30, true, true, 0},   {30, 31, true, false, 1}, {5, 60, true, false, 55},
        {-1, 0, true, true, 0},    {-1, 5, true, false, 0},
    };
    for (size_t i = 0; i < N(T); i++) {
        struct spec s = {"p", "n1", "Running", T[i].ready_ago, 0, 100, NULL};
        json_t *p = mkpod(&s);
        if (kc_pod_is_ready(p) != T[i].ready || kc_pod_is_available(p, T[i].min_ready, NOW) != T[i].available ||
            kc_pod_available_in(p, T[i].min_ready, NOW) != T[i].avail_in)
            fail_msg("row %zu", i);
        json_decref(p);
    }
}

static void test_active(void **state)
{
    (void)state;
    json_t *p = json_pack("{s:{s:s}, s:{s:s}}", "metadata", "name", "x", "status", "phase", "Running");
    assert_true(kc_pod_is_active(p));
    json_object_set_new(json_object_get(p, "status"), "phase", json_string("Succeeded"));
    assert_false(kc_pod_is_active(p));
    json_object_set_new(json_object_get(p, "status"), "phase", json_string("Failed"));
    assert_false(kc_pod_is_active(p));
    json_object_set_new(json_object_get(p, "status"), "phase", json_string("Pending"));
    json_object_set_new(json_object_get(p, "metadata"), "deletionTimestamp", json_string("2026-01-01T00:00:00Z"));
    assert_false(kc_pod_is_active(p));
    json_decref(p);
}

static void test_labels_superset_and_cost(void **state)
{
    (void)state;
    json_t *l = json_pack("{s:s, s:s}", "app", "web", "tier", "fe");
    json_t *sub = json_pack("{s:s}", "app", "web"), *other = json_pack("{s:s}", "app", "db");
    assert_true(kc_labels_superset(l, sub));
    assert_true(kc_labels_superset(l, NULL));
    assert_false(kc_labels_superset(l, other));
    assert_false(kc_labels_superset(NULL, sub));
    json_decref(l);
    json_decref(sub);
    json_decref(other);
    static const struct { const char *v; int want; } C[] = {
        {"10", 10}, {"-3", -3}, {"", 0}, {"x", 0}, {"99999999999", 0}, {"2147483647", 2147483647}};
    for (size_t i = 0; i < N(C); i++) {
        json_t *p = json_pack("{s:{s:{s:s}}}", "metadata", "annotations", KC_POD_DELETION_COST, C[i].v);
        assert_int_equal(kc_pod_deletion_cost(p), C[i].want);
        json_decref(p);
    }
}

static void test_slow_start(void **state)
{
    (void)state;
    static const struct { int count; int batches[12]; } T[] = {
        {1, {1}}, {3, {1, 2}}, {10, {1, 2, 4, 3}}, {15, {1, 2, 4, 8}}, {16, {1, 2, 4, 8, 1}},
        {500, {1, 2, 4, 8, 16, 32, 64, 128, 245}}, {0, {0}},
    };
    for (size_t i = 0; i < N(T); i++) {
        int remaining = T[i].count, prev = 0, k = 0;
        for (;;) {
            int b = kc_slow_start_next(prev, remaining, 1);
            if (!b)
                break;
            if (b != T[i].batches[k])
                fail_msg("count %d batch %d: got %d want %d", T[i].count, k, b, T[i].batches[k]);
            remaining -= b;
            prev = b;
            k++;
        }
        assert_int_equal(T[i].batches[k], 0);
        assert_int_equal(remaining, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delete_order_pairs), cmocka_unit_test(test_rank_doubled_up_first),
        cmocka_unit_test(test_pods_to_delete_picks_worst), cmocka_unit_test(test_ready_available),
        cmocka_unit_test(test_active), cmocka_unit_test(test_labels_superset_and_cost),
        cmocka_unit_test(test_slow_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
