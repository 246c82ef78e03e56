/* test_podsm.c — the node agent's pod state machine driven by the sim runtime on a fake clock:
 * back-off arithmetic, the happy path, image-pull and crash back-off timing, graceful deletion,
 * init containers, per-pod annotations, and status determinism. Table-driven where it fits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/podsm.h"
#include "util/timeutil.h"

#define T0 1700000000000LL

struct ev {
    int64_t t;
    char type[16], reason[32], msg[600];
};

struct fx {
    int64_t now;
    struct ev ev[256];
    int nev;
    const struct kc_runtime_ops *ops;
    void *rt;
    struct kc_podsm_env env;
    struct kc_pod_sm sm;
    json_t *pod;
};

static int64_t fake_clock(void *ctx) { return ((struct fx *)ctx)->now; }

static void on_event(void *ctx, json_t *pod, const char *type, const char *reason, const char *msg)
{
    (void)pod;
    struct fx *f = ctx;
    if (f->nev >= 256)
        return;
    struct ev *e = &f->ev[f->nev++];
    e->t = f->now;
    snprintf(e->type, sizeof e->type, "%s", type);
    snprintf(e->reason, sizeof e->reason, "%s", reason);
    snprintf(e->msg, sizeof e->msg, "%s", msg);
}

static struct fx *fx_new(const char *profile, const char *pod_json)
{
    struct fx *f = calloc(1, sizeof *f);
    f->now = T0;
    struct kc_err err = {0};
    assert_int_equal(kc_sim_runtime_new(profile, fake_clock, f, &f->ops, &f->rt, &err), 0);
    kc_sim_set_node_index(f->rt, "sim-3", 3);
    f->env = (struct kc_podsm_env){.rt = f->ops, .rt_impl = f->rt, .clock = fake_clock, .clock_ctx = f,
                                   .event = on_event, .event_ctx = f, .host_ip = "10.41.0.3"};
    json_error_t je;
    f->pod = json_loads(pod_json, 0, &je);
    assert_non_null(f->pod);
    assert_int_equal(kc_podsm_init(&f->sm, f->pod, "sim-3", &err), 0);
    return f;
}

static void fx_free(struct fx *f)
{
    kc_podsm_release(&f->sm);
    f->ops->free(f->rt);
    json_decref(f->pod);
    free(f);
}

/* Syncs at every wake-up until `until` (absolute) or nothing is scheduled. Returns the sync result. */
static int run_until(struct fx *f, int64_t until)
{
    for (int guard = 0; guard < 1000; guard++) {
        int64_t wake = 0;
        int r = kc_podsm_sync(&f->sm, f->pod, &f->env, &wake);
        if (r || !wake || wake > until) {
            if (f->now < until)
                f->now = until;
            return r;
        }
        f->now = wake > f->now ? wake : f->now;
    }
    fail_msg("state machine did not settle");
    return -1;
}

static json_t *status(struct fx *f) { return kc_podsm_status(&f->sm, f->pod, &f->env); }

static const char *cond(json_t *st, const char *type)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(st, "conditions"), i, c) if (!strcmp(json_string_value(json_object_get(c, "type")),
                                                                             type)) return json_string_value(
        json_object_get(c, "status"));
    return NULL;
}

static json_t *cstat(json_t *st, int i) { return json_array_get(json_object_get(st, "containerStatuses"), (size_t)i); }

static const char *waiting_reason(json_t *cs)
{
    return json_string_value(json_object_get(json_object_get(json_object_get(cs, "state"), "waiting"), "reason"));
}

static int count_events(struct fx *f, const char *reason, int64_t *times, int max)
{
    int n = 0;
    for (int i = 0; i < f->nev; i++)
        if (!strcmp(f->ev[i].reason, reason)) {
            if (times && n < max)
                times[n] = f->ev[i].t;
            n++;
        }
    return n;
}

#define POD1                                                                                                          \
    "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\",\"uid\":\"u-1\"%s}," \
    "\"spec\":{\"nodeName\":\"sim-3\",\"restartPolicy\":\"%s\",\"containers\":[{\"name\":\"web\","                   \
    "\"image\":\"nginx\"}]},\"status\":{\"qosClass\":\"BestEffort\",\"conditions\":[{\"type\":\"PodScheduled\","    \
    "\"status\":\"True\",\"lastTransitionTime\":\"2023-11-14T22:13:20Z\"}]}}"

static char *pod1(const char *meta_extra, const char *policy)
{
    static char b[2048];
    snprintf(b, sizeof b, POD1, meta_extra, policy);
    return b;
}

/* ---------- back-off arithmetic ---------- */

static void test_backoff_table(void **state)
{
    (void)state;
    /* each row: Next() at t (s); expected back-off after it (s) */
    static const struct {
        int64_t at_s, want_s;
    } rows[] = {{0, 10}, {10, 20}, {30, 40}, {70, 80}, {150, 160}, {310, 300}, {610, 300},
                /* untouched for more than 2×300 s: forgotten, starts again at 10 s */
                {1300, 10}};
    struct kc_backoff b = {0};
    assert_false(kc_backoff_in_since_update(&b, T0));
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        kc_backoff_next(&b, T0 + rows[i].at_s * 1000);
        assert_int_equal(b.backoff_ms, rows[i].want_s * 1000);
        int64_t t = T0 + rows[i].at_s * 1000;
        assert_true(kc_backoff_in_since_update(&b, t + b.backoff_ms - 1));
        assert_false(kc_backoff_in_since_update(&b, t + b.backoff_ms));
        /* restart flavour measures from the container's finish time */
        assert_true(kc_backoff_in_since(&b, t + 500, t + 500 + b.backoff_ms - 1));
        assert_false(kc_backoff_in_since(&b, t + 500, t + 500 + b.backoff_ms));
    }
}

static void test_go_duration(void **state)
{
    (void)state;
    static const struct {
        int64_t ms;
        const char *want;
    } rows[] = {{0, "0s"}, {7, "7ms"}, {523, "523ms"}, {1000, "1s"}, {1200, "1.2s"}, {1234, "1.234s"},
                {60000, "1m0s"}, {123500, "2m3.5s"}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char b[32];
        kc_go_duration(rows[i].ms, b, sizeof b);
        assert_string_equal(b, rows[i].want);
    }
}

/* ---------- lifecycles ---------- */

static void test_fast_running(void **state)
{
    (void)state;
    struct fx *f = fx_new("fast", pod1("", "Always"));
    assert_int_equal(run_until(f, T0), 0);
    static const char *want[] = {"Pulling", "Pulled", "Created", "Started"};
    assert_int_equal(f->nev, 4);
    for (int i = 0; i < 4; i++)
        assert_string_equal(f->ev[i].reason, want[i]);
    assert_string_equal(f->ev[0].msg, "Pulling image \"nginx\"");
    assert_non_null(strstr(f->ev[1].msg, "Successfully pulled image \"nginx\" in 0s (0s including waiting). Image size: "));
    assert_string_equal(f->ev[2].msg, "Created container: web");
    assert_string_equal(f->ev[3].msg, "Started container web");
    json_t *st = status(f);
    assert_string_equal(json_string_value(json_object_get(st, "phase")), "Running");
    assert_string_equal(cond(st, "Ready"), "True");
    assert_string_equal(cond(st, "ContainersReady"), "True");
    assert_string_equal(cond(st, "Initialized"), "True");
    assert_string_equal(cond(st, "PodScheduled"), "True");
    assert_string_equal(json_string_value(json_object_get(st, "podIP")), "10.42.3.2");
    assert_string_equal(json_string_value(json_object_get(st, "hostIP")), "10.41.0.3");
    json_t *cs = cstat(st, 0);
    assert_true(json_is_true(json_object_get(cs, "ready")));
    assert_true(json_is_true(json_object_get(cs, "started")));
    assert_non_null(json_object_get(json_object_get(cs, "state"), "running"));
    assert_non_null(strstr(json_string_value(json_object_get(cs, "imageID")), "docker.io/library/nginx@sha256:"));
    assert_non_null(strstr(json_string_value(json_object_get(cs, "containerID")), "sim://"));
    /* nothing changed → identical JSON (the agent's "write only when changed" relies on it) */
    f->now += 5000;
    assert_int_equal(run_until(f, f->now), 0);
    json_t *st2 = status(f);
    assert_true(json_equal(st, st2));
    assert_int_equal(f->nev, 4);
    json_decref(st);
    json_decref(st2);
    fx_free(f);
}

static void test_image_pull_backoff(void **state)
{
    (void)state;
    struct fx *f = fx_new("image-pull-fail", pod1("", "Always"));
    int64_t wake = 0;
    assert_int_equal(kc_podsm_sync(&f->sm, f->pod, &f->env, &wake), 0);
    json_t *st = status(f);
    assert_string_equal(waiting_reason(cstat(st, 0)), "ErrImagePull");
    assert_string_equal(json_string_value(json_object_get(st, "phase")), "Pending");
    json_decref(st);
    assert_int_equal(f->nev, 3);
    assert_string_equal(f->ev[1].reason, "Failed");
    assert_non_null(strstr(f->ev[1].msg, "Failed to pull image \"nginx\": "));
    assert_string_equal(f->ev[2].msg, "Error: ErrImagePull");
    f->now = wake;
    assert_int_equal(kc_podsm_sync(&f->sm, f->pod, &f->env, &wake), 0);
    st = status(f);
    assert_string_equal(waiting_reason(cstat(st, 0)), "ImagePullBackOff");
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(cstat(st, 0), "state"),
                                                                          "waiting"), "message")),
                        "Back-off pulling image \"nginx\": ErrImagePull: rpc error: code = NotFound desc = failed to "
                        "pull and unpack image \"nginx\": simulated pull failure (sim runtime)");
    json_decref(st);
    assert_int_equal(wake, T0 + 10000);
    run_until(f, T0 + 700000);
    int64_t t[16];
    int n = count_events(f, "Pulling", t, 16);
    assert_true(n >= 7);
    static const int64_t gaps_s[] = {10, 20, 40, 80, 160, 300};
    for (int i = 0; i < 6; i++)
        assert_int_equal(t[i + 1] - t[i], gaps_s[i] * 1000);
    fx_free(f);
}

static void test_crashloop(void **state)
{
    (void)state;
    struct fx *f = fx_new("crashloop", pod1("", "Always"));
    run_until(f, T0 + 5000);
    json_t *st = status(f);
    json_t *cs = cstat(st, 0);
    assert_string_equal(waiting_reason(cs), "CrashLoopBackOff");
    assert_int_equal(json_integer_value(json_object_get(cs, "restartCount")), 1);
    json_t *last = json_object_get(json_object_get(cs, "lastState"), "terminated");
    assert_int_equal(json_integer_value(json_object_get(last, "exitCode")), 1);
    assert_string_equal(json_string_value(json_object_get(last, "reason")), "Error");
    assert_string_equal(json_string_value(json_object_get(st, "phase")), "Running");
    assert_string_equal(cond(st, "Ready"), "False");
    json_decref(st);
    run_until(f, T0 + 400000);
    /* starts: 0, then immediately after the first exit, then 10, 20, 40, 80, 160 s after each exit */
    int64_t t[16];
    int n = count_events(f, "Started", t, 16);
    assert_true(n >= 7);
    static const int64_t want_s[] = {0, 1, 12, 33, 74, 155, 316};
    for (int i = 0; i < 7; i++)
        assert_int_equal(t[i] - T0, want_s[i] * 1000);
    int64_t b[16];
    assert_true(count_events(f, "BackOff", b, 16) >= 5);
    bool found = false;
    for (int i = 0; i < f->nev; i++)
        found |= !strcmp(f->ev[i].msg, "Back-off restarting failed container web in pod p_ns(u-1)");
    assert_true(found);
    st = status(f);
    assert_int_equal(json_integer_value(json_object_get(cstat(st, 0), "restartCount")), n - 1);
    json_decref(st);
    fx_free(f);
}

static void test_graceful_delete(void **state)
{
    (void)state;
    struct fx *f = fx_new("fast", pod1("", "Always"));
    run_until(f, T0);
    json_t *md = json_object_get(f->pod, "metadata");
    json_object_set_new(md, "deletionTimestamp", json_string("2023-11-14T22:13:50Z"));
    json_object_set_new(md, "deletionGracePeriodSeconds", json_integer(30));
    int64_t wake = 0;
    assert_int_equal(kc_podsm_sync(&f->sm, f->pod, &f->env, &wake), 1);
    assert_string_equal(f->ev[f->nev - 1].reason, "Killing");
    assert_string_equal(f->ev[f->nev - 1].msg, "Stopping container web");
    json_t *st = status(f);
    assert_string_equal(json_string_value(json_object_get(st, "phase")), "Succeeded");
    assert_non_null(json_object_get(json_object_get(cstat(st, 0), "state"), "terminated"));
    assert_string_equal(cond(st, "Ready"), "False");
    json_decref(st);
    fx_free(f);
}

static void test_start_delay_annotation(void **state)
{
    (void)state;
    struct fx *f = fx_new("fast", pod1(",\"annotations\":{\"sim.kubec.io/start-delay\":\"2s\"}", "Always"));
    int64_t wake = 0;
    kc_podsm_sync(&f->sm, f->pod, &f->env, &wake);
    assert_int_equal(wake, T0 + 2000);
    json_t *st = status(f);
    assert_string_equal(json_string_value(json_object_get(st, "phase")), "Pending");
    assert_string_equal(waiting_reason(cstat(st, 0)), "ContainerCreating");
    json_decref(st);
    f->now = wake;
    kc_podsm_sync(&f->sm, f->pod, &f->env, &wake);
    st = status(f);
    assert_string_equal(json_string_value(json_object_get(st, "phase")), "Running");
    json_decref(st);
    fx_free(f);
}

static void test_crash_never_fails(void **state)
{
    (void)state;
    struct fx *f = fx_new("fast", pod1(",\"annotations\":{\"sim.kubec.io/fail\":\"crash\"}", "Never"));
    run_until(f, T0 + 60000);
    json_t *st = status(f);
    assert_string_equal(json_string_value(json_object_get(st, "phase")), "Failed");
    json_t *term = json_object_get(json_object_get(cstat(st, 0), "state"), "terminated");
    assert_int_equal(json_integer_value(json_object_get(term, "exitCode")), 1);
    assert_int_equal(count_events(f, "Started", NULL, 0), 1);
    json_decref(st);
    fx_free(f);
}

static void test_init_containers_first(void **state)
{
    (void)state;
    struct fx *f = fx_new(
        "realistic",
        "{\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\",\"uid\":\"u-2\"},\"spec\":{\"initContainers\":[{\"name\":"
        "\"setup\",\"image\":\"busybox:1.36\"}],\"containers\":[{\"name\":\"web\",\"image\":\"nginx:1.25\"}]}}");
    int64_t wake = 0;
    kc_podsm_sync(&f->sm, f->pod, &f->env, &wake);
    json_t *st = status(f);
    assert_string_equal(cond(st, "Initialized"), "False");
    assert_string_equal(waiting_reason(cstat(st, 0)), "PodInitializing");
    json_decref(st);
    run_until(f, T0 + 10000);
    st = status(f);
    assert_string_equal(cond(st, "Initialized"), "True");
    assert_string_equal(cond(st, "Ready"), "True");
    json_t *ics = json_array_get(json_object_get(st, "initContainerStatuses"), 0);
    json_t *term = json_object_get(json_object_get(ics, "state"), "terminated");
    assert_string_equal(json_string_value(json_object_get(term, "reason")), "Completed");
    json_decref(st);
    /* order: everything of "setup" happens before web's Created */
    int setup_started = -1, web_created = -1;
    for (int i = 0; i < f->nev; i++) {
        if (!strcmp(f->ev[i].msg, "Started container setup"))
            setup_started = i;
        if (!strcmp(f->ev[i].msg, "Created container: web"))
            web_created = i;
    }
    assert_true(setup_started >= 0 && web_created > setup_started);
    fx_free(f);
}

static void test_image_present_on_restart(void **state)
{
    (void)state;
    /* a tagged image is IfNotPresent by default: the restart does not pull again */
    struct fx *f = fx_new("crashloop", "{\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\",\"uid\":\"u-3\"},\"spec\":"
                                       "{\"containers\":[{\"name\":\"web\",\"image\":\"nginx:1.25\"}]}}");
    run_until(f, T0 + 1500);
    assert_int_equal(count_events(f, "Pulling", NULL, 0), 1);
    bool present = false;
    for (int i = 0; i < f->nev; i++)
        present |= !strcmp(f->ev[i].msg, "Container image \"nginx:1.25\" already present on machine");
    assert_true(present);
    fx_free(f);
}

static void test_injected_pull_failure_ignores_cached_image(void **state)
{
    (void)state;
    /* pod 1 puts nginx:1.25 on the node; pod 2 (same node, same image) asks for a pull failure */
    struct fx *f = fx_new("fast", "{\"metadata\":{\"name\":\"a\",\"namespace\":\"ns\",\"uid\":\"u-a\"},\"spec\":"
                                  "{\"containers\":[{\"name\":\"web\",\"image\":\"nginx:1.25\"}]}}");
    run_until(f, T0);
    json_t *pod2 = json_loads("{\"metadata\":{\"name\":\"b\",\"namespace\":\"ns\",\"uid\":\"u-b\",\"annotations\":"
                              "{\"sim.kubec.io/fail\":\"image-pull\"}},\"spec\":{\"containers\":[{\"name\":\"web\","
                              "\"image\":\"nginx:1.25\"}]}}",
                              0, NULL);
    struct kc_pod_sm sm2;
    struct kc_err err = {0};
    assert_int_equal(kc_podsm_init(&sm2, pod2, "sim-3", &err), 0);
    int64_t wake = 0;
    kc_podsm_sync(&sm2, pod2, &f->env, &wake);
    json_t *st = kc_podsm_status(&sm2, pod2, &f->env);
    assert_string_equal(waiting_reason(cstat(st, 0)), "ErrImagePull");
    json_decref(st);
    kc_podsm_release(&sm2);
    json_decref(pod2);
    fx_free(f);
}

static void test_unknown_profile(void **state)
{
    (void)state;
    const struct kc_runtime_ops *ops;
    void *rt;
    struct kc_err err = {0};
    assert_int_equal(kc_sim_runtime_new("bogus", NULL, NULL, &ops, &rt, &err), KC_EINVAL);
    assert_non_null(strstr(err.message, "bogus"));
    double d = 0;
    assert_int_equal(kc_parse_duration("2s", &d), 0);
    assert_true(d == 2.0);
    assert_int_equal(kc_parse_duration("500ms", &d), 0);
    assert_true(d == 0.5);
    assert_int_equal(kc_parse_duration("1.5s", &d), 0);
    assert_true(d == 1.5);
    assert_int_equal(kc_parse_duration("1h30m", &d), 0);
    assert_true(d == 5400.0);
    assert_int_equal(kc_parse_duration("x", &d), -1);
    assert_int_equal(kc_parse_duration("5 s", &d), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_table),       cmocka_unit_test(test_go_duration),
        cmocka_unit_test(test_fast_running),        cmocka_unit_test(test_image_pull_backoff),
        cmocka_unit_test(test_crashloop),           cmocka_unit_test(test_graceful_delete),
        cmocka_unit_test(test_start_delay_annotation), cmocka_unit_test(test_crash_never_fails),
        cmocka_unit_test(test_init_containers_first), cmocka_unit_test(test_image_present_on_restart),
        cmocka_unit_test(test_injected_pull_failure_ignores_cached_image),
        cmocka_unit_test(test_unknown_profile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
