/* test_workqueue.c — the properties controllers rely on (workqueue.h):
 * de-duplication, one worker per key, re-queue of a key added while it is
 * processed, per-key exponential backoff and forget, delayed adds, shutdown
 * waking blocked workers, and the stats. Threaded tests record failures in
 * atomics and assert on the main thread (cmocka asserts are not
 * thread-safe). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/workqueue.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void expect_get(struct kc_wq *q, const char *want)
{
    char *k = kc_wq_get(q);
    assert_non_null(k);
    assert_string_equal(k, want);
    kc_wq_done(q, k);
    free(k);
}

static void test_dedup_and_fifo(void **state)
{
    (void)state;
    struct kc_wq *q = kc_wq_new("t", 5, 1000);
    assert_string_equal(kc_wq_name(q), "t");
    kc_wq_add(q, "a");
    kc_wq_add(q, "b");
    kc_wq_add(q, "a");
    kc_wq_add(q, "a");
    kc_wq_add(q, "c");
    assert_int_equal(kc_wq_len(q), 3);
    expect_get(q, "a");
    expect_get(q, "b");
    expect_get(q, "c");
    assert_int_equal(kc_wq_len(q), 0);
    struct kc_wq_stats st;
    kc_wq_stats(q, &st);
    assert_int_equal(st.adds, 3);
    assert_int_equal(st.processed, 3);
    assert_int_equal(st.depth, 0);
    kc_wq_free(q);
}

struct getter {
    struct kc_wq *q;
    atomic_int got; /* 0 = waiting, 1 = got a key, 2 = got NULL */
    char key[64];
    double at;
};

static void *getter_main(void *arg)
{
    struct getter *g = arg;
    char *k = kc_wq_get(g->q);
    g->at = now_s();
    if (k) {
        snprintf(g->key, sizeof g->key, "%s", k);
        free(k);
        atomic_store(&g->got, 1);
    } else {
        atomic_store(&g->got, 2);
    }
    return NULL;
}

/* A key added while a worker holds it is not handed to a second worker
 * until kc_wq_done; then it is queued exactly once more. */
static void test_requeue_after_done(void **state)
{
    (void)state;
    struct kc_wq *q = kc_wq_new("t", 5, 1000);
    kc_wq_add(q, "a");
    char *k = kc_wq_get(q);
    assert_string_equal(k, "a");
    kc_wq_add(q, "a");
    kc_wq_add(q, "a");
    assert_int_equal(kc_wq_len(q), 0); /* dirty, not queued */
    struct getter g = {.q = q};
    pthread_t t;
    pthread_create(&t, NULL, getter_main, &g);
    usleep(150 * 1000);
    assert_int_equal(atomic_load(&g.got), 0); /* second worker must not get "a" yet */
    kc_wq_done(q, k);
    free(k);
    pthread_join(t, NULL);
    assert_int_equal(g.got, 1);
    assert_string_equal(g.key, "a");
    kc_wq_done(q, "a");
    assert_int_equal(kc_wq_len(q), 0); /* queued once only */
    kc_wq_free(q);
}

/* Done without a re-add: the key is not queued again. */
static void test_done_without_readd(void **state)
{
    (void)state;
    struct kc_wq *q = kc_wq_new("t", 5, 1000);
    kc_wq_add(q, "x");
    char *k = kc_wq_get(q);
    kc_wq_done(q, k);
    free(k);
    assert_int_equal(kc_wq_len(q), 0);
    kc_wq_add(q, "x"); /* and it can be added again afterwards */
    assert_int_equal(kc_wq_len(q), 1);
    kc_wq_free(q);
}

/* Stress: 8 workers, 16 keys added from 4 producers; no key is ever held by
 * two workers, and after the producers stop every key is processed after
 * its last add. */
#define NKEYS 16
struct stress {
    struct kc_wq *q;
    atomic_int busy[NKEYS];
    atomic_int overlaps;
    atomic_long added_seq[NKEYS];     /* sequence number of the last add */
    atomic_long processed_seq[NKEYS]; /* last add sequence seen when a worker started it */
    atomic_long seq;
    atomic_long processed;
};

static void *stress_worker(void *arg)
{
    struct stress *s = arg;
    char *k;
    unsigned seed = (unsigned)(uintptr_t)pthread_self();
    while ((k = kc_wq_get(s->q))) {
        int i = atoi(k + 1);
        if (atomic_fetch_add(&s->busy[i], 1) != 0)
            atomic_fetch_add(&s->overlaps, 1);
        long seen = atomic_load(&s->added_seq[i]);
        usleep(100 + rand_r(&seed) % 300);
        if (seen > atomic_load(&s->processed_seq[i]))
            atomic_store(&s->processed_seq[i], seen);
        atomic_fetch_sub(&s->busy[i], 1);
        atomic_fetch_add(&s->processed, 1);
        kc_wq_done(s->q, k);
        free(k);
    }
    return NULL;
}

static void *stress_producer(void *arg)
{
    struct stress *s = arg;
    unsigned seed = (unsigned)(uintptr_t)pthread_self();
    for (int n = 0; n < 2000; n++) {
        int i = (int)(rand_r(&seed) % NKEYS);
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        /* record the add before it is visible, so a worker that takes it sees the sequence */
        long mine = atomic_fetch_add(&s->seq, 1) + 1, cur = atomic_load(&s->added_seq[i]);
        while (cur < mine && !atomic_compare_exchange_weak(&s->added_seq[i], &cur, mine))
            ;
        kc_wq_add(s->q, key);
        if (n % 50 == 0)
            usleep(1000);
    }
    return NULL;
}

static void test_stress_one_worker_per_key(void **state)
{
    (void)state;
    static struct stress s;
    memset(&s, 0, sizeof s);
    s.q = kc_wq_new("stress", 5, 1000);
    pthread_t w[8], p[4];
    for (int i = 0; i < 8; i++)
        pthread_create(&w[i], NULL, stress_worker, &s);
    for (int i = 0; i < 4; i++)
        pthread_create(&p[i], NULL, stress_producer, &s);
    for (int i = 0; i < 4; i++)
        pthread_join(p[i], NULL);
    /* drain */
    double deadline = now_s() + 20;
    while (now_s() < deadline) {
        int pending = 0;
        for (int i = 0; i < NKEYS; i++)
            if (atomic_load(&s.processed_seq[i]) != atomic_load(&s.added_seq[i]))
                pending++;
        if (!pending && kc_wq_len(s.q) == 0)
            break;
        usleep(10 * 1000);
    }
    kc_wq_shutdown(s.q);
    for (int i = 0; i < 8; i++)
        pthread_join(w[i], NULL);
    assert_int_equal(atomic_load(&s.overlaps), 0);
    for (int i = 0; i < NKEYS; i++)
        assert_int_equal(atomic_load(&s.processed_seq[i]), atomic_load(&s.added_seq[i]));
    /* de-duplication happened: far fewer runs than adds is typical, never more */
    assert_true(atomic_load(&s.processed) <= 8000);
    struct kc_wq_stats st;
    kc_wq_stats(s.q, &st);
    assert_int_equal(st.processed, (uint64_t)atomic_load(&s.processed));
    kc_wq_free(s.q);
}

/* Time from an add_rate_limited to the key being handed out, in ms. */
static double rate_limited_delay_ms(struct kc_wq *q, const char *key)
{
    double t0 = now_s();
    kc_wq_add_rate_limited(q, key);
    char *k = kc_wq_get(q);
    double ms = (now_s() - t0) * 1000;
    assert_string_equal(k, key);
    kc_wq_done(q, k);
    free(k);
    return ms;
}

static void test_backoff_doubles_and_caps(void **state)
{
    (void)state;
    /* upper bounds leave room for a loaded machine yet tell 400 (capped) from 800 */
    struct kc_wq *q = kc_wq_new("t", 100, 400);
    double expect[] = {100, 200, 400, 400};
    for (int i = 0; i < 4; i++) {
        double ms = rate_limited_delay_ms(q, "a");
        assert_true(ms >= expect[i] - 2);
        assert_true(ms < expect[i] + 350);
        assert_int_equal(kc_wq_num_requeues(q, "a"), i + 1);
    }
    assert_int_equal(kc_wq_num_requeues(q, "b"), 0); /* per key */
    kc_wq_forget(q, "a");
    assert_int_equal(kc_wq_num_requeues(q, "a"), 0);
    double ms = rate_limited_delay_ms(q, "a");
    assert_true(ms >= 98 && ms < 450); /* back to base, not 800 */
    struct kc_wq_stats st;
    kc_wq_stats(q, &st);
    assert_int_equal(st.retries, 5);
    kc_wq_free(q);
}

static void test_add_after(void **state)
{
    (void)state;
    struct kc_wq *q = kc_wq_new("t", 5, 1000);
    double t0 = now_s();
    kc_wq_add_after(q, "late", 300);
    kc_wq_add_after(q, "early", 100);
    assert_int_equal(kc_wq_len(q), 0);
    char *k = kc_wq_get(q);
    double ms = (now_s() - t0) * 1000;
    assert_string_equal(k, "early");
    assert_true(ms >= 98 && ms < 290);
    kc_wq_done(q, k);
    free(k);
    k = kc_wq_get(q);
    ms = (now_s() - t0) * 1000;
    assert_string_equal(k, "late");
    assert_true(ms >= 298 && ms < 700);
    kc_wq_done(q, k);
    free(k);

    /* a second add_after with an earlier time wins; a later one does not postpone */
    t0 = now_s();
    kc_wq_add_after(q, "x", 3000);
    kc_wq_add_after(q, "x", 100);
    kc_wq_add_after(q, "x", 5000);
    k = kc_wq_get(q);
    ms = (now_s() - t0) * 1000;
    assert_string_equal(k, "x");
    assert_true(ms >= 98 && ms < 1500);
    kc_wq_done(q, k);
    free(k);
    usleep(150 * 1000);
    assert_int_equal(kc_wq_len(q), 0); /* only one delayed add of x was pending */

    /* delay <= 0 is an immediate add */
    kc_wq_add_after(q, "now", 0);
    assert_int_equal(kc_wq_len(q), 1);
    kc_wq_free(q);
}

/* A delayed add reaches a worker already blocked in kc_wq_get. */
static void test_add_after_wakes_blocked_getter(void **state)
{
    (void)state;
    struct kc_wq *q = kc_wq_new("t", 5, 1000);
    struct getter g = {.q = q};
    pthread_t t;
    pthread_create(&t, NULL, getter_main, &g);
    usleep(50 * 1000);
    double t0 = now_s();
    kc_wq_add_after(q, "d", 150);
    pthread_join(t, NULL);
    assert_int_equal(g.got, 1);
    assert_string_equal(g.key, "d");
    double ms = (g.at - t0) * 1000;
    assert_true(ms >= 148 && ms < 1000);
    kc_wq_free(q);
}

static void test_shutdown_wakes_all(void **state)
{
    (void)state;
    struct kc_wq *q = kc_wq_new("t", 5, 1000);
    struct getter g[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        memset(&g[i], 0, sizeof g[i]);
        g[i].q = q;
        pthread_create(&t[i], NULL, getter_main, &g[i]);
    }
    kc_wq_add_after(q, "never", 60 * 1000);
    usleep(100 * 1000);
    for (int i = 0; i < 4; i++)
        assert_int_equal(atomic_load(&g[i].got), 0);
    double t0 = now_s();
    kc_wq_shutdown(q);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(g[i].got, 2);
        assert_true(g[i].at - t0 < 2.0);
    }
    kc_wq_add(q, "ignored");
    assert_null(kc_wq_get(q));
    kc_wq_free(q);
}

static void test_stats_durations(void **state)
{
    (void)state;
    struct kc_wq *q = kc_wq_new("t", 5, 1000);
    kc_wq_add(q, "a");
    kc_wq_add(q, "b");
    struct kc_wq_stats st;
    kc_wq_stats(q, &st);
    assert_int_equal(st.depth, 2);
    usleep(50 * 1000);
    char *k = kc_wq_get(q);
    usleep(50 * 1000);
    kc_wq_done(q, k);
    free(k);
    kc_wq_stats(q, &st);
    assert_int_equal(st.depth, 1);
    assert_int_equal(st.processed, 1);
    assert_true(st.queue_seconds_sum >= 0.045);
    assert_true(st.work_seconds_sum >= 0.045 && st.work_seconds_sum < 2.0);
    kc_wq_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dedup_and_fifo),
        cmocka_unit_test(test_requeue_after_done),
        cmocka_unit_test(test_done_without_readd),
        cmocka_unit_test(test_stress_one_worker_per_key),
        cmocka_unit_test(test_backoff_doubles_and_caps),
        cmocka_unit_test(test_add_after),
        cmocka_unit_test(test_add_after_wakes_blocked_getter),
        cmocka_unit_test(test_shutdown_wakes_all),
        cmocka_unit_test(test_stats_durations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
