/* test_stress.c — the parsers and statistics `kubec stress` reports with: a wrong quantile or a
 * threshold parsed into the wrong stage would pass or fail runs for the wrong reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/stress_int.h"
#include "util/timeutil.h"

static void test_durations(void **state)
{
    (void)state;
    double v;
    assert_int_equal(kc_parse_duration("1.5s", &v), 0);
    assert_true(fabs(v - 1.5) < 1e-12);
    assert_int_equal(kc_parse_duration("500ms", &v), 0);
    assert_true(fabs(v - 0.5) < 1e-12);
    assert_int_equal(kc_parse_duration("250us", &v), 0);
    assert_true(fabs(v - 250e-6) < 1e-12);
    assert_int_equal(kc_parse_duration("2m", &v), 0);
    assert_true(v == 120);
    assert_int_equal(kc_parse_duration("1h", &v), 0);
    assert_true(v == 3600);
    assert_int_equal(kc_parse_duration("3", &v), 0); /* bare number: seconds */
    assert_true(v == 3);
    assert_int_equal(kc_parse_duration("", &v), -1);
    assert_int_equal(kc_parse_duration("fast", &v), -1);
    assert_int_equal(kc_parse_duration("5x", &v), -1);
    assert_int_equal(kc_parse_duration("-1s", &v), -1);
    assert_int_equal(kc_parse_duration("nan", &v), -1);
}

static void test_thresholds(void **state)
{
    (void)state;
    struct st_config c;
    struct kc_err err;
    memset(&c, 0, sizeof c);
    assert_int_equal(st_parse_thresholds(&c, "Ready:p99=2s,Scheduled:P50=500ms", &err), 0);
    assert_int_equal(c.nth, 2);
    assert_int_equal(c.th[0].stage, ST_READY);
    assert_int_equal(c.th[0].metric, ST_P99);
    assert_true(c.th[0].limit == 2);
    assert_int_equal(c.th[1].stage, ST_SCHED);
    assert_int_equal(c.th[1].metric, ST_P50);
    assert_true(fabs(c.th[1].limit - 0.5) < 1e-12);
    assert_int_equal(st_parse_thresholds(&c, "available:max=1m rs:avg=10ms", &err), 0);
    assert_int_equal(c.nth, 4);
    assert_int_equal(c.th[2].stage, ST_AVAILABLE);
    assert_int_equal(c.th[2].metric, ST_MAX);
    assert_int_equal(c.th[3].stage, ST_RS);
    assert_int_equal(c.th[3].metric, ST_AVG);
    assert_int_equal(st_parse_thresholds(&c, "Bogus:p99=1s", &err), KC_EINVAL);
    assert_non_null(strstr(err.message, "unknown stage Bogus"));
    assert_int_equal(st_parse_thresholds(&c, "Ready:p95=1s", &err), KC_EINVAL);
    assert_int_equal(st_parse_thresholds(&c, "Ready:p99=soon", &err), KC_EINVAL);
    assert_int_equal(st_parse_thresholds(&c, "Ready=1s", &err), KC_EINVAL);
    assert_int_equal(c.nth, 4); /* failures add nothing */
    for (int i = c.nth; i < ST_MAX_THRESHOLDS; i++)
        assert_int_equal(st_parse_thresholds(&c, "Ready:max=1s", &err), 0);
    assert_int_equal(st_parse_thresholds(&c, "Ready:max=1s", &err), KC_ETOOLARGE);
}

static void test_quantiles(void **state)
{
    (void)state;
    double v[100];
    for (int i = 0; i < 100; i++)
        v[i] = (double)(100 - i); /* unsorted on purpose */
    struct st_summary s;
    st_summarize(v, 100, &s);
    assert_int_equal(s.count, 100);
    assert_true(s.v[ST_P50] == 50);
    assert_true(s.v[ST_P90] == 90);
    assert_true(s.v[ST_P99] == 99);
    assert_true(s.v[ST_MAX] == 100);
    assert_true(fabs(s.v[ST_AVG] - 50.5) < 1e-9);
    double one[1] = {7};
    st_summarize(one, 1, &s);
    assert_true(s.v[ST_P50] == 7 && s.v[ST_P99] == 7 && s.v[ST_MAX] == 7);
    double ten[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 1000};
    st_summarize(ten, 10, &s);
    assert_true(s.v[ST_P90] == 9); /* nearest rank: 9 of 10 values at or below */
    assert_true(s.v[ST_P99] == 1000);
    st_summarize(NULL, 0, &s);
    assert_int_equal(s.count, 0);
    assert_true(s.v[ST_MAX] == 0);
}

static void test_peak_window(void **state)
{
    (void)state;
    double t[] = {0, 0.1, 0.2, 1.5, 1.6, 1.7, 1.8, 3.0};
    assert_int_equal(st_peak_window(t, 8, 1.0), 4);
    assert_int_equal(st_peak_window(t, 8, 0.15), 2);
    assert_int_equal(st_peak_window(t, 8, 10), 8);
    assert_int_equal(st_peak_window(t, 0, 1), 0);
}

static void test_time_and_timeline(void **state)
{
    (void)state;
    double t;
    assert_int_equal(st_parse_time("2026-11-26T15:30:00.123456Z", &t), 0);
    assert_true(fabs(t - (1795707000.0 + 0.123456)) < 1e-6);
    assert_int_equal(st_parse_time("2026-11-26T16:30:00+01:00", &t), 0);
    assert_true(t == 1795707000.0);
    assert_int_equal(st_parse_time("2026-11-26T15:30:00Z", &t), 0);
    assert_int_equal(st_parse_time("2026-11-26 15:30", &t), -1);
    assert_int_equal(st_parse_time("2026-13-26T15:30:00Z", &t), -1);
    assert_int_equal(st_parse_time("2026-11-26T15:30:00.Z", &t), -1);
    assert_int_equal(st_parse_time(NULL, &t), -1);

    json_t *pod = json_pack("{s:{s:{s:s}}}", "metadata", "annotations", ST_TIMELINE_ANN,
                            "{\"created\":\"2026-11-26T15:30:00.000100Z\",\"ready\":\"2026-11-26T15:30:01.5Z\","
                            "\"scheduled\":\"garbage\"}");
    const char *names[] = {"created", "scheduled", "ready", "started"};
    double st[4] = {0, 0, 0, 42};
    assert_int_equal(st_timeline_get(pod, names, 4, st), 2);
    assert_true(fabs(st[0] - 1795707000.0001) < 1e-6);
    assert_true(st[1] == 0);                   /* unparsable: left alone */
    assert_true(fabs(st[2] - 1795707001.5) < 1e-6);
    assert_true(st[3] == 42);                  /* absent: left alone */
    json_decref(pod);
    json_t *bare = json_pack("{s:{}}", "metadata");
    assert_int_equal(st_timeline_get(bare, names, 4, st), 0);
    json_decref(bare);
}

static int args(struct st_config *c, struct kc_err *err, const char *first, ...)
{
    char *argv[32] = {"stress"};
    int argc = 1;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && argc < 31; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    return st_config_from_args(c, argc, argv, err);
}

static void test_flags_and_job_file(void **state)
{
    (void)state;
    static struct st_config c;
    struct kc_err err;
    setenv("KUBECONFIG", "/tmp/a.yaml:/tmp/b.yaml", 1);
    assert_int_equal(args(&c, &err, NULL), 0);
    assert_int_equal(c.deployments, 100);
    assert_int_equal(c.replicas, 3);
    assert_string_equal(c.kubeconfig, "/tmp/a.yaml");
    assert_false(c.json_out);

    char path[] = "/tmp/stress-job-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *job = "deployments: 7\nreplicas: 5\npriorityClass: high\nspread: zone\nkeep: true\n"
                      "threshold:\n  - Ready:p99=2s\n  - Scheduled:p50=100ms\nrequests:\n  cpu: 10m\n";
    assert_int_equal(write(fd, job, strlen(job)), (int)strlen(job));
    close(fd);
    assert_int_equal(args(&c, &err, "--replicas=2", "-f", path, "-o", "json", "--churn", "--qps", "50", NULL), 0);
    assert_int_equal(c.deployments, 7);
    assert_int_equal(c.replicas, 2); /* the flag wins, wherever -f is */
    assert_string_equal(c.priority_class, "high");
    assert_string_equal(c.spread, "topology.kubernetes.io/zone");
    assert_true(c.keep && c.churn && c.json_out);
    assert_true(c.qps == 50);
    assert_int_equal(c.nth, 2);
    assert_int_equal(c.nrequests, 1);
    assert_string_equal(c.requests[0].name, "cpu");
    assert_string_equal(c.requests[0].value, "10m");

    FILE *f = fopen(path, "w");
    fputs("deployments: 7\nbogus: 1\n", f);
    fclose(f);
    assert_int_equal(args(&c, &err, "-f", path, NULL), KC_EINVAL);
    assert_non_null(strstr(err.message, "bogus"));
    unlink(path);

    assert_int_equal(args(&c, &err, "--deployments", "100000", "--replicas", "11", NULL), KC_EINVAL);
    assert_int_equal(args(&c, &err, "--replicas", NULL), KC_EINVAL);
    assert_int_equal(args(&c, &err, "--output", "yaml", NULL), KC_EINVAL);
    assert_int_equal(args(&c, &err, "extra", NULL), KC_EINVAL);
    assert_int_equal(args(&c, &err, "--keep=maybe", NULL), KC_EINVAL);
    assert_int_equal(args(&c, &err, "--spread", "kubernetes.io/hostname", "--timeout", "90", NULL), 0);
    assert_string_equal(c.spread, "kubernetes.io/hostname");
    assert_true(c.timeout == 90);
    assert_int_equal(args(&c, &err, "--requests", "cpu=1,memory", NULL), KC_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),  cmocka_unit_test(test_thresholds),        cmocka_unit_test(test_quantiles),
        cmocka_unit_test(test_peak_window), cmocka_unit_test(test_time_and_timeline), cmocka_unit_test(test_flags_and_job_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
