/* store_bench.c — create throughput and latency of the SQLite store.
 *
 * Usage: store_bench [seconds-per-run (default 3)] [dir (default /tmp)] [threads]
 * For 1, 16 and 64 writer threads (or only the given count): a fresh database in a mkdtemp directory
 * under dir, every thread creating unique keys with ~1 KB values for the
 * given time; prints creates/s and the p50/p99 latency of one create. Then,
 * on the same database, the same threads get random existing keys for the
 * same time (gets/s, p50/p99). Not a ctest: numbers depend on the machine. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

#define MAX_SAMPLES 2000000

struct worker {
    struct kc_store *s;
    int id;
    double stop_at;
    double *lat; /* seconds per create */
    size_t n, cap;
    int errors;
    int get_phase;     /* 0: create, 1: get */
    size_t created;    /* keys this thread created (for the get phase) */
    unsigned seed;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    char key[96], val[1024];
    memset(val, 'x', sizeof val);
    for (size_t i = 0; w->n < w->cap; i++) {
        size_t k = w->get_phase ? (size_t)rand_r(&w->seed) % (w->created ? w->created : 1) : i;
        snprintf(key, sizeof key, "/registry/configmaps/bench/t%d-%zu", w->id, k);
        double t0 = now_s();
        if (w->get_phase) {
            struct kc_kv kv;
            if (kc_store_get(w->s, key, &kv, NULL) != 0)
                w->errors++;
            else
                kc_kv_release(&kv);
        } else if (kc_store_create(w->s, key, val, sizeof val, NULL, NULL) != 0) {
            w->errors++;
        }
        double t1 = now_s();
        w->lat[w->n++] = t1 - t0;
        if (t1 >= w->stop_at)
            break;
    }
    return NULL;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Runs every worker for secs and prints the rate and latency percentiles. */
static int phase(struct worker *w, int threads, double secs, const char *what)
{
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    double start = now_s();
    for (int i = 0; i < threads; i++) {
        w[i].stop_at = start + secs;
        w[i].errors = 0;
        pthread_create(&th[i], NULL, run, &w[i]);
    }
    size_t total = 0;
    int errors = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        total += w[i].n;
        errors += w[i].errors;
    }
    double elapsed = now_s() - start;
    double *all = malloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < threads; i++) {
        memcpy(all + k, w[i].lat, w[i].n * sizeof(double));
        k += w[i].n;
    }
    qsort(all, total, sizeof *all, cmp_d);
    printf("%3d threads: %8.0f %-7s/s  p50 %7.3f ms  p99 %7.3f ms  (%zu, %d errors)\n", threads,
           (double)total / elapsed, what, total ? all[total / 2] * 1e3 : 0, total ? all[total * 99 / 100] * 1e3 : 0,
           total, errors);
    fflush(stdout);
    free(all);
    free(th);
    return errors;
}

static int bench(const char *dir, int threads, double secs)
{
    char tmpl[512], path[600];
    snprintf(tmpl, sizeof tmpl, "%s/kc_store_bench_XXXXXX", dir);
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/kv.db", tmpl);
    struct kc_store *s;
    struct kc_err err = {0};
    if (kc_store_sqlite_open(path, NULL, &s, &err) != 0) {
        fprintf(stderr, "open: %s\n", err.message);
        return 1;
    }
    struct worker *w = calloc((size_t)threads, sizeof *w);
    for (int i = 0; i < threads; i++) {
        w[i] = (struct worker){.s = s, .id = i, .cap = MAX_SAMPLES / (size_t)threads, .seed = (unsigned)i + 1};
        w[i].lat = malloc(w[i].cap * sizeof(double));
    }
    int errors = phase(w, threads, secs, "creates");
    for (int i = 0; i < threads; i++) {
        w[i].created = w[i].n;
        w[i].n = 0;
        w[i].get_phase = 1;
    }
    errors += phase(w, threads, secs, "gets");
    for (int i = 0; i < threads; i++)
        free(w[i].lat);
    free(w);
    kc_store_close(s);
    char f[700];
    const char *suffix[] = {"", "-wal", "-shm", "-lock"};
    for (int i = 0; i < 4; i++) {
        snprintf(f, sizeof f, "%s%s", path, suffix[i]);
        unlink(f);
    }
    rmdir(tmpl);
    return errors ? 1 : 0;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 3.0;
    const char *dir = argc > 2 ? argv[2] : "/tmp";
    if (secs <= 0 || secs > 600) {
        fprintf(stderr, "usage: store_bench [seconds 0-600] [dir]\n");
        return 2;
    }
    int rc = 0;
    if (argc > 3) {
        int t = atoi(argv[3]);
        if (t < 1 || t > 1024) {
            fprintf(stderr, "threads: 1-1024\n");
            return 2;
        }
        return bench(dir, t, secs);
    }
    const int counts[] = {1, 16, 64};
    for (int i = 0; i < 3; i++)
        rc |= bench(dir, counts[i], secs);
    return rc;
}
