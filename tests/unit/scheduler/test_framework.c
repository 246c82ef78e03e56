/* test_framework.c — table-driven tests of the scheduler's filters, scores and preemption. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "scheduler/framework.h"

static json_t *node(const char *name, const char *cpu, const char *mem, const char *extra)
{
    json_t *n = json_pack("{s:s,s:s,s:{s:s,s:{s:s}},s:{},s:{s:{s:s,s:s,s:s}}}", "apiVersion", "v1", "kind", "Node",
                          "metadata", "name", name, "labels", "kubernetes.io/hostname", name, "spec", "status",
                          "allocatable", "cpu", cpu, "memory", mem, "pods", "110");
    if (extra) {
        json_t *e = json_loads(extra, 0, NULL);
        assert_non_null(e);
        json_object_update_recursive(n, e);
        json_decref(e);
    }
    return n;
}

static json_t *pod(const char *name, const char *cpu, int prio, const char *extra)
{
    json_t *p = json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:s,s:{s:s}},s:{s:i,s:[{s:s,s:s,s:{s:{s:s}}}]}}", "apiVersion",
                          "v1", "kind", "Pod", "metadata", "name", name, "namespace", "default", "uid", name,
                          "creationTimestamp", "2026-01-01T00:00:00Z", "labels", "app", "web", "spec", "priority",
                          prio, "containers", "name", "c", "image", "nginx:1.25", "resources", "requests", "cpu",
                          cpu);
    if (extra) {
        json_t *e = json_loads(extra, 0, NULL);
        assert_non_null(e);
        json_object_update_recursive(p, e);
        json_decref(e);
    }
    return p;
}

/* The scheduler's form of a pod built by pod() (taken). */
static struct kc_spod *spod_of(json_t *pj)
{
    struct kc_spod *p = kc_spod_new(pj);
    json_decref(pj);
    return p;
}

static void place(struct kc_snapshot *s, const char *nodename, json_t *p)
{
    json_object_set_new(json_object_get(p, "spec"), "nodeName", json_string(nodename));
    kc_snode_add_pod(kc_snapshot_node(s, nodename), kc_spod_new(p));
    json_decref(p);
}

static void add_node(struct kc_snapshot *s, json_t *n)
{
    kc_snapshot_set_node(s, n);
    json_decref(n);
}

struct filter_case {
    const char *name;
    const char *node_extra, *pod_extra, *cpu;
    int fits;
    const char *reason;
};

static void test_filters(void **state)
{
    (void)state;
    static const struct filter_case cases[] = {
        {"fits", NULL, NULL, "500m", 1, NULL},
        {"insufficient cpu", NULL, NULL, "5", 0, "Insufficient cpu"},
        {"cordoned", "{\"spec\":{\"unschedulable\":true}}", NULL, "100m", 0, "node(s) were unschedulable"},
        {"cordoned but tolerated", "{\"spec\":{\"unschedulable\":true}}",
         "{\"spec\":{\"tolerations\":[{\"key\":\"node.kubernetes.io/unschedulable\",\"operator\":\"Exists\"}]}}", "100m",
         1, NULL},
        {"taint not tolerated", "{\"spec\":{\"taints\":[{\"key\":\"gpu\",\"value\":\"yes\",\"effect\":\"NoSchedule\"}]}}",
         NULL, "100m", 0, "node(s) had untolerated taint {gpu: yes}"},
        {"taint tolerated", "{\"spec\":{\"taints\":[{\"key\":\"gpu\",\"value\":\"yes\",\"effect\":\"NoSchedule\"}]}}",
         "{\"spec\":{\"tolerations\":[{\"key\":\"gpu\",\"operator\":\"Equal\",\"value\":\"yes\",\"effect\":\"NoSchedule\"}]}}",
         "100m", 1, NULL},
        {"PreferNoSchedule does not filter",
         "{\"spec\":{\"taints\":[{\"key\":\"x\",\"effect\":\"PreferNoSchedule\"}]}}", NULL, "100m", 1, NULL},
        {"nodeSelector mismatch", NULL, "{\"spec\":{\"nodeSelector\":{\"disk\":\"ssd\"}}}", "100m", 0,
         "node(s) didn't match Pod's node affinity/selector"},
        {"nodeSelector match", "{\"metadata\":{\"labels\":{\"disk\":\"ssd\"}}}",
         "{\"spec\":{\"nodeSelector\":{\"disk\":\"ssd\"}}}", "100m", 1, NULL},
        {"required affinity NotIn", "{\"metadata\":{\"labels\":{\"zone\":\"a\"}}}",
         "{\"spec\":{\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":{"
         "\"nodeSelectorTerms\":[{\"matchExpressions\":[{\"key\":\"zone\",\"operator\":\"NotIn\",\"values\":[\"a\"]}]}]}}}}}",
         "100m", 0, "node(s) didn't match Pod's node affinity/selector"},
        {"required affinity Gt", "{\"metadata\":{\"labels\":{\"cores\":\"16\"}}}",
         "{\"spec\":{\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":{"
         "\"nodeSelectorTerms\":[{\"matchExpressions\":[{\"key\":\"cores\",\"operator\":\"Gt\",\"values\":[\"8\"]}]}]}}}}}",
         "100m", 1, NULL},
        {"nodeName other", NULL, "{\"spec\":{\"nodeName\":\"elsewhere\"}}", "100m", 0,
         "node(s) didn't match the requested node name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct filter_case *c = &cases[i];
        struct kc_snapshot s;
        kc_snapshot_init(&s);
        add_node(&s, node("n1", "2", "4Gi", c->node_extra));
        struct kc_spod *p = spod_of(pod("p", c->cpu, 0, c->pod_extra));
        struct kc_filter_result r;
        bool fits = kc_filter_node(&s, p, &s.nodes[0], &r);
        if (fits != (bool)c->fits)
            fail_msg("case '%s': fits=%d, want %d (%s)", c->name, fits, c->fits, r.n ? r.reasons[0] : "");
        if (c->reason && (r.n < 1 || strcmp(r.reasons[0], c->reason)))
            fail_msg("case '%s': reason '%s', want '%s'", c->name, r.n ? r.reasons[0] : "", c->reason);
        kc_spod_free(p);
        kc_snapshot_release(&s);
    }
}

static void test_resources_accumulate(void **state)
{
    (void)state;
    struct kc_snapshot s;
    kc_snapshot_init(&s);
    add_node(&s, node("n1", "1", "1Gi", NULL));
    place(&s, "n1", pod("a", "600m", 0, NULL));
    json_t *pj = pod("b", "500m", 0, NULL);
    struct kc_spod *p = kc_spod_new(pj);
    struct kc_filter_result r;
    assert_false(kc_filter_node(&s, p, &s.nodes[0], &r));
    assert_string_equal(r.reasons[0], "Insufficient cpu");
    assert_true(kc_snode_remove_pod(&s.nodes[0], "a"));
    assert_true(kc_filter_node(&s, p, &s.nodes[0], &r));
    kc_spod_free(p);
    json_decref(pj);
    kc_snapshot_release(&s);
}

static void test_least_allocated_prefers_empty_node(void **state)
{
    (void)state;
    struct kc_snapshot s;
    kc_snapshot_init(&s);
    add_node(&s, node("busy", "4", "8Gi", NULL));
    add_node(&s, node("idle", "4", "8Gi", NULL));
    place(&s, "busy", pod("x", "3", 0, NULL));
    struct kc_spod *p = spod_of(pod("p", "500m", 0, NULL));
    for (unsigned rr = 0; rr < 4; rr++) {
        struct kc_sched_result r = {0};
        unsigned k = rr;
        kc_schedule(&s, p, &k, &r);
        assert_int_equal(r.node, 1);
    }
    kc_spod_free(p);
    kc_snapshot_release(&s);
}

static void test_image_locality(void **state)
{
    (void)state;
    struct kc_snapshot s;
    kc_snapshot_init(&s);
    add_node(&s, node("cold", "4", "8Gi", NULL));
    add_node(&s, node("warm", "4", "8Gi", "{\"status\":{\"images\":[{\"names\":[\"nginx:1.25\"],\"sizeBytes\":50000000}]}}"));
    struct kc_spod *p = spod_of(pod("p", "100m", 0, NULL));
    struct kc_sched_result r = {0};
    unsigned rr = 0;
    kc_schedule(&s, p, &rr, &r);
    assert_string_equal(s.nodes[r.node].name, "warm");
    kc_spod_free(p);
    kc_snapshot_release(&s);
}

static const char *SPREAD =
    "{\"spec\":{\"topologySpreadConstraints\":[{\"maxSkew\":1,\"topologyKey\":\"zone\",\"whenUnsatisfiable\":"
    "\"DoNotSchedule\",\"labelSelector\":{\"matchLabels\":{\"app\":\"web\"}}}]}}";

static void test_topology_spread(void **state)
{
    (void)state;
    struct kc_snapshot s;
    kc_snapshot_init(&s);
    add_node(&s, node("a1", "8", "8Gi", "{\"metadata\":{\"labels\":{\"zone\":\"a\"}}}"));
    add_node(&s, node("b1", "8", "8Gi", "{\"metadata\":{\"labels\":{\"zone\":\"b\"}}}"));
    add_node(&s, node("nozone", "8", "8Gi", NULL));
    place(&s, "a1", pod("w1", "100m", 0, NULL));
    struct kc_spod *p = spod_of(pod("p", "100m", 0, SPREAD));
    struct kc_filter_result r;
    /* zone a has 1, b has 0: placing in a gives skew 2 > 1 */
    assert_false(kc_filter_node(&s, p, &s.nodes[0], &r));
    assert_string_equal(r.reasons[0], "node(s) didn't match pod topology spread constraints");
    assert_true(kc_filter_node(&s, p, &s.nodes[1], &r));
    assert_false(kc_filter_node(&s, p, &s.nodes[2], &r));
    assert_string_equal(r.reasons[0], "node(s) didn't match pod topology spread constraints (missing required label)");
    /* four pods in a row end 2 and 2 */
    for (int i = 0; i < 3; i++) {
        struct kc_sched_result res = {0};
        unsigned rr = (unsigned)i;
        kc_schedule(&s, p, &rr, &res);
        assert_true(res.node >= 0);
        char nm[16];
        snprintf(nm, sizeof nm, "w%d", i + 2);
        place(&s, s.nodes[res.node].name, pod(nm, "100m", 0, NULL));
    }
    assert_int_equal(s.nodes[0].npods, 2);
    assert_int_equal(s.nodes[1].npods, 2);
    kc_spod_free(p);
    kc_snapshot_release(&s);
}

static void test_anti_affinity(void **state)
{
    (void)state;
    struct kc_snapshot s;
    kc_snapshot_init(&s);
    add_node(&s, node("n1", "8", "8Gi", NULL));
    add_node(&s, node("n2", "8", "8Gi", NULL));
    place(&s, "n1", pod("w1", "100m", 0, NULL));
    struct kc_spod *p = spod_of(pod("p", "100m", 0,
                     "{\"spec\":{\"affinity\":{\"podAntiAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":"
                     "[{\"topologyKey\":\"kubernetes.io/hostname\",\"labelSelector\":{\"matchLabels\":{\"app\":\"web\"}}}]}}}}"));
    struct kc_filter_result r;
    assert_false(kc_filter_node(&s, p, &s.nodes[0], &r));
    assert_string_equal(r.reasons[0], "node(s) didn't match pod anti-affinity rules");
    assert_true(kc_filter_node(&s, p, &s.nodes[1], &r));
    kc_spod_free(p);
    kc_snapshot_release(&s);
}

static void test_failed_message_aggregates(void **state)
{
    (void)state;
    struct kc_snapshot s;
    kc_snapshot_init(&s);
    add_node(&s, node("n1", "1", "1Gi", NULL));
    add_node(&s, node("n2", "1", "1Gi", NULL));
    add_node(&s, node("n3", "8", "8Gi", "{\"spec\":{\"unschedulable\":true}}"));
    struct kc_spod *p = spod_of(pod("p", "2", 0, "{\"spec\":{\"preemptionPolicy\":\"Never\"}}"));
    struct kc_sched_result r = {0};
    unsigned rr = 0;
    kc_schedule(&s, p, &rr, &r);
    assert_int_equal(r.node, -1);
    /* upstream sorts the "COUNT REASON" strings: "1 node(s)…" before "2 Insufficient cpu" */
    assert_string_equal(r.message, "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu. "
                                   "preemption: not eligible due to preemptionPolicy=Never.");
    kc_spod_free(p);
    kc_snapshot_release(&s);
}

/* The order is bytewise over "COUNT REASON" (Go's sort.Strings): "10 …" sorts before "2 …", whatever the
 * reason text says; the preemption part follows the same rule. */
static void test_failed_message_string_order(void **state)
{
    (void)state;
    struct kc_snapshot s;
    kc_snapshot_init(&s);
    char name[16];
    for (int i = 0; i < 12; i++) {
        snprintf(name, sizeof name, "n%02d", i);
        add_node(&s, node(name, i < 10 ? "8" : "1", "1Gi", i < 10 ? "{\"spec\":{\"unschedulable\":true}}" : NULL));
    }
    struct kc_spod *p = spod_of(pod("p", "2", 0, NULL));
    struct kc_sched_result r = {0};
    unsigned rr = 0;
    kc_schedule(&s, p, &rr, &r);
    assert_int_equal(r.node, -1);
    assert_int_equal(r.nominated, -1);
    assert_string_equal(r.message, "0/12 nodes are available: 10 node(s) were unschedulable, 2 Insufficient cpu. "
                                   "preemption: 0/12 nodes are available: 10 Preemption is not helpful for "
                                   "scheduling, 2 No preemption victims found for incoming pod.");
    kc_spod_free(p);
    kc_snapshot_release(&s);
}

/* The profile's call counts: filters stop at the first failing plugin, so a cordoned node is seen by
 * NodeUnschedulable only and a node without room by the filters up to NodeResourcesFit; each score plugin
 * runs once per feasible node. */
static void test_plugin_calls_counted(void **state)
{
    (void)state;
    struct kc_snapshot s;
    kc_snapshot_init(&s);
    add_node(&s, node("a", "8", "8Gi", "{\"spec\":{\"unschedulable\":true}}"));
    add_node(&s, node("b", "1", "8Gi", NULL));
    add_node(&s, node("c", "8", "8Gi", NULL));
    add_node(&s, node("d", "8", "8Gi", NULL));
    struct kc_spod *p = spod_of(pod("p", "2", 0, NULL));
    struct kc_sched_result r = {0};
    r.time_plugins = true;
    unsigned rr = 0;
    kc_schedule(&s, p, &rr, &r);
    assert_true(r.node == 2 || r.node == 3);
    static const unsigned want[KC_NFILTERS] = {4, 3, 3, 3, 3, 2, 2};
    for (int i = 0; i < KC_NFILTERS; i++)
        assert_int_equal(r.filter_calls[i], want[i]);
    assert_string_equal(kc_filter_plugin_name(4), "NodeResourcesFit");
    assert_int_equal(r.score_calls, 2);
    assert_string_equal(kc_score_plugin_name(5), "PodTopologySpread");
    double timed = 0;
    for (int i = 0; i < KC_NSCORES; i++)
        timed += r.score_plugin_s[i];
    assert_true(timed > 0); /* time_plugins asked for per-plugin times */
    /* not timed: no per-plugin times, the counts all the same */
    struct kc_sched_result u = {0};
    kc_schedule(&s, p, &rr, &u);
    assert_int_equal(u.filter_calls[0], 4);
    assert_true(u.plugin_s[0] == 0 && u.score_plugin_s[0] == 0);
    kc_spod_free(p);
    kc_snapshot_release(&s);
}

static void test_preemption_picks_fewest_lowest(void **state)
{
    (void)state;
    struct kc_snapshot s;
    kc_snapshot_init(&s);
    add_node(&s, node("n1", "2", "8Gi", NULL));
    add_node(&s, node("n2", "2", "8Gi", NULL));
    /* n1: two low (100) pods of 1 cpu; n2: one pod of priority 500 with 2 cpu */
    place(&s, "n1", pod("low1", "1", 100, NULL));
    place(&s, "n1", pod("low2", "1", 100, NULL));
    place(&s, "n2", pod("mid", "2", 500, NULL));
    struct kc_spod *p = spod_of(pod("high", "1", 1000, NULL));
    struct kc_sched_result r = {0};
    unsigned rr = 0;
    kc_schedule(&s, p, &rr, &r);
    assert_int_equal(r.node, -1);
    assert_int_equal(r.nominated, 0);        /* lowest highest-victim priority wins: n1 */
    assert_int_equal(r.nvictims, 1);         /* reprieve keeps one of the two */
    assert_int_equal(r.victims[0]->priority, 100);
    kc_spod_free(p);
    /* a pod that may not preempt gets no victims */
    p = spod_of(pod("never", "1", 1000, "{\"spec\":{\"preemptionPolicy\":\"Never\"}}"));
    kc_schedule(&s, p, &rr, &r);
    assert_int_equal(r.nominated, -1);
    kc_spod_free(p);
    /* equal priority cannot preempt */
    p = spod_of(pod("peer", "1", 100, NULL));
    kc_schedule(&s, p, &rr, &r);
    assert_int_equal(r.nominated, -1);
    assert_non_null(strstr(r.message, "No preemption victims found for incoming pod"));
    kc_spod_free(p);
    kc_snapshot_release(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_resources_accumulate),
        cmocka_unit_test(test_least_allocated_prefers_empty_node),
        cmocka_unit_test(test_image_locality),
        cmocka_unit_test(test_topology_spread),
        cmocka_unit_test(test_anti_affinity),
        cmocka_unit_test(test_failed_message_aggregates),
        cmocka_unit_test(test_failed_message_string_order),
        cmocka_unit_test(test_plugin_calls_counted),
        cmocka_unit_test(test_preemption_picks_fewest_lowest),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    kc_schedule_thread_release();
    return rc;
}
