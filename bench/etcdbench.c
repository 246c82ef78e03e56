/* etcdbench.c — create throughput and latency through kubec's etcd store
 * backend versus raw etcd puts of the same sizes, in the same run against
 * the same etcd, printed as a ratio (target: the backend reaches >= 50% of
 * raw etcd's throughput at concurrency 64).
 *
 *   etcdbench [seconds=5] [concurrency=64] [value_bytes=1024] [endpoint|dir]
 *
 * The last argument is an etcd endpoint (http://host:port) or, if it is not
 * a URL, a directory in which the benchmark starts its own /usr/bin/etcd on
 * free loopback ports (default: a fresh directory under /tmp); that etcd is
 * killed and its data removed at the end.
 *
 * Phases, alternating in rounds, `seconds` in total each: (1) raw-put —
 * every thread POSTs /v3/kv/put of a unique key with its own keep-alive
 * curl handle; (2) raw-txn — the same with the conditional-create txn the
 * store sends (so etcd's share of the difference shows); (3) store — every thread
 * calls kc_store_create of a unique key (one txn per create); (4) store with
 * one watch open on "/registry/", as the API server's watch cache has it
 * (a create then returns only once that watch delivered it). Threads: the
 * workers of the current phase; the store's watch thread in phase 3.
 */
#include <curl/curl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

#define MAX_THREADS 1024
#define MAX_SAMPLES 2000000

struct phase {
    const char *name;
    int mode; /* 0 raw HTTP request, 1 store create */
    int txn;  /* raw: the create txn the store sends instead of a put */
    const char *url;
    struct kc_store *store;
    int seconds, threads;
    size_t vsize;
    volatile int stop;
    pthread_mutex_t mu;
    double *lat;
    size_t nlat;
    long errors;
    double elapsed;
    int round;
};

struct worker {
    struct phase *p;
    int id;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = B64[(v >> 18) & 63];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? B64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? B64[v & 63] : '=';
    }
    out[o] = 0;
    return o;
}

static size_t sink(char *p, size_t sz, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return sz * n;
}

static void record(struct phase *p, double *mine, size_t n, long errors)
{
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < n && p->nlat < MAX_SAMPLES; i++)
        p->lat[p->nlat++] = mine[i];
    p->errors += errors;
    pthread_mutex_unlock(&p->mu);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct phase *p = w->p;
    char *value = malloc(p->vsize + 1);
    memset(value, 'v', p->vsize);
    value[p->vsize] = 0;
    size_t bodycap = p->vsize * 2 + 512;
    char *body = malloc(bodycap), *vb64 = malloc(p->vsize * 2 + 8), key[128], kb64[200], url[256];
    b64((unsigned char *)value, p->vsize, vb64);
    CURL *h = NULL;
    struct curl_slist *hdr = NULL;
    if (p->mode == 0) {
        h = curl_easy_init();
        hdr = curl_slist_append(NULL, "Content-Type: application/json");
        hdr = curl_slist_append(hdr, "Expect:");
        snprintf(url, sizeof url, "%s/v3/kv/%s", p->url, p->txn ? "txn" : "put");
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    }
    size_t cap = 1 << 16, n = 0;
    double *mine = malloc(cap * sizeof *mine);
    long errors = 0;
    for (long i = 0; !p->stop; i++) {
        snprintf(key, sizeof key, "/registry/bench/%s/r%d/t%d/%ld", p->name, p->round, w->id, i);
        double t0 = now_s();
        int ok;
        if (p->mode == 0) {
            b64((unsigned char *)key, strlen(key), kb64);
            int bl = p->txn ? snprintf(body, bodycap,
                                       "{\"compare\":[{\"key\":\"%s\",\"target\":\"CREATE\",\"result\":\"EQUAL\","
                                       "\"create_revision\":\"0\"}],\"success\":[{\"request_put\":{\"key\":\"%s\","
                                       "\"value\":\"%s\"}}]}",
                                       kb64, kb64, vb64)
                            : snprintf(body, bodycap, "{\"key\":\"%s\",\"value\":\"%s\"}", kb64, vb64);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)bl);
            long code = 0;
            ok = curl_easy_perform(h) == CURLE_OK && curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK &&
                 code == 200;
        } else {
            ok = kc_store_create(p->store, key, value, p->vsize, NULL, NULL) == 0;
        }
        double dt = now_s() - t0;
        if (!ok) {
            errors++;
            continue;
        }
        if (n == cap) {
            record(p, mine, n, 0);
            n = 0;
        }
        mine[n++] = dt;
    }
    record(p, mine, n, errors);
    free(mine);
    if (h)
        curl_easy_cleanup(h);
    curl_slist_free_all(hdr);
    free(value);
    free(body);
    free(vb64);
    return NULL;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Runs one round of a phase; samples and time accumulate across rounds. */
static void run_round(struct phase *p)
{
    pthread_t th[MAX_THREADS];
    struct worker w[MAX_THREADS];
    p->stop = 0;
    double t0 = now_s();
    for (int i = 0; i < p->threads; i++) {
        w[i] = (struct worker){p, i};
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    sleep((unsigned)p->seconds);
    p->stop = 1;
    for (int i = 0; i < p->threads; i++)
        pthread_join(th[i], NULL);
    p->elapsed += now_s() - t0;
    p->round++;
}

/* Prints a phase's totals and returns creates per second. */
static double report(struct phase *p, double *p99_ms)
{
    qsort(p->lat, p->nlat, sizeof *p->lat, cmp_d);
    double p50 = p->nlat ? p->lat[p->nlat / 2] * 1e3 : 0;
    *p99_ms = p->nlat ? p->lat[(size_t)((double)p->nlat * 0.99)] * 1e3 : 0;
    double rate = p->elapsed > 0 ? (double)p->nlat / p->elapsed : 0;
    printf("%-20s %8.0f creates/s  p50 %7.2f ms  p99 %7.2f ms  (%zu ok, %ld errors, %d threads, %zu B)\n", p->name,
           rate, p50, *p99_ms, p->nlat, p->errors, p->threads, p->vsize);
    return rate;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int port = -1;
    if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof a) && !getsockname(fd, (struct sockaddr *)&a, &al))
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static pid_t start_etcd(const char *dir, char *url, size_t urlsz)
{
    char data[512], cu[64], pu[64], cluster[96];
    int cp = free_port(), pp = free_port();
    snprintf(data, sizeof data, "%s/etcd", dir);
    snprintf(cu, sizeof cu, "http://127.0.0.1:%d", cp);
    snprintf(pu, sizeof pu, "http://127.0.0.1:%d", pp);
    snprintf(cluster, sizeof cluster, "default=%s", pu);
    snprintf(url, urlsz, "%s", cu);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
            _exit(126);
        execl("/usr/bin/etcd", "etcd", "--name", "default", "--data-dir", data, "--listen-client-urls", cu,
              "--advertise-client-urls", cu, "--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu,
              "--initial-cluster", cluster, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int noop_cb(void *ctx, const struct kc_event *ev)
{
    (void)ev;
    (*(long *)ctx)++;
    return 0;
}

int main(int argc, char **argv)
{
    int seconds = argc > 1 ? atoi(argv[1]) : 5, threads = argc > 2 ? atoi(argv[2]) : 64;
    size_t vsize = argc > 3 ? (size_t)atol(argv[3]) : 1024;
    const char *target = argc > 4 ? argv[4] : NULL;
    if (seconds <= 0 || threads <= 0 || threads > MAX_THREADS || vsize > 1024 * 1024) {
        fprintf(stderr, "usage: etcdbench [seconds] [concurrency<=%d] [value_bytes<=1MiB] [endpoint|dir]\n",
                MAX_THREADS);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char url[256], dir[512] = "";
    pid_t etcd = 0;
    if (target && (!strncmp(target, "http://", 7) || !strncmp(target, "https://", 8))) {
        snprintf(url, sizeof url, "%s", target);
    } else {
        if (target)
            snprintf(dir, sizeof dir, "%s/etcdbench-XXXXXX", target);
        else
            snprintf(dir, sizeof dir, "/tmp/etcdbench-XXXXXX");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            return 1;
        }
        etcd = start_etcd(dir, url, sizeof url);
    }
    struct kc_store *s = NULL;
    struct kc_err err = {0};
    struct kc_etcd_opts o = {.compaction_interval_s = -1};
    for (int i = 0; i < 200 && kc_store_etcd_open(url, &o, &s, &err); i++)
        usleep(50000);
    if (!s) {
        fprintf(stderr, "etcdbench: cannot reach etcd at %s: %s\n", url, err.message);
        return 1;
    }
    printf("etcd at %s, %d s per phase\n", url, seconds);
    /* Phases alternate in short rounds so that drift (etcd's growing
     * database, other load on the machine) affects them alike. */
    struct phase ph[4] = {
        {.name = "raw-put", .mode = 0, .url = url},
        {.name = "raw-txn", .mode = 0, .txn = 1, .url = url},
        {.name = "store-create", .mode = 1, .store = s},
        {.name = "store-create+watch", .mode = 1, .store = s},
    };
    int rounds = seconds >= 3 ? 3 : 1;
    for (int i = 0; i < 4; i++) {
        ph[i].seconds = seconds / rounds;
        ph[i].threads = threads;
        ph[i].vsize = vsize;
        ph[i].lat = malloc(MAX_SAMPLES * sizeof *ph[i].lat);
        pthread_mutex_init(&ph[i].mu, NULL);
    }
    long seen = 0;
    for (int r = 0; r < rounds; r++) {
        run_round(&ph[0]);
        run_round(&ph[1]);
        run_round(&ph[2]);
        struct kc_watch *w = NULL;
        if (s->ops->watch(s, "/registry/", 0, noop_cb, NULL, &seen, &w, &err)) {
            fprintf(stderr, "watch: %s\n", err.message);
            return 1;
        }
        run_round(&ph[3]);
        s->ops->unwatch(s, w);
    }
    double p99r, p99t, p99s, p99w;
    double rr = report(&ph[0], &p99r), tr = report(&ph[1], &p99t), sr = report(&ph[2], &p99s),
           wr = report(&ph[3], &p99w);
    printf("ratio raw-txn/raw-put: throughput %.2f (etcd's own cost of a conditional create)\n", rr > 0 ? tr / rr : 0);
    printf("ratio store/raw: throughput %.2f, p99 %.2fx; with a watch: throughput %.2f, p99 %.2fx (target >= 0.50)\n",
           rr > 0 ? sr / rr : 0, p99r > 0 ? p99s / p99r : 0, rr > 0 ? wr / rr : 0, p99r > 0 ? p99w / p99r : 0);
    for (int i = 0; i < 4; i++) {
        free(ph[i].lat);
        pthread_mutex_destroy(&ph[i].mu);
    }
    kc_store_close(s);
    if (etcd > 0) {
        kill(etcd, SIGKILL);
        waitpid(etcd, NULL, 0);
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    curl_global_cleanup();
    return rr > 0 && sr / rr >= 0.5 ? 0 : 3;
}
