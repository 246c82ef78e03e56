/* apibench.c — create-throughput benchmark for a running kubec (or any
 * Kubernetes) API server. Starts nothing: it is pointed at a server.
 *
 * For each --concurrency level (one run per level, in the order given) it
 * starts N worker threads. Each worker owns one libcurl easy handle, so one
 * keep-alive HTTPS connection; it first does one untimed GET to finish the
 * TLS handshake, waits on a barrier, then POSTs ~1 KiB Pod manifests with
 * unique names to /api/v1/namespaces/NS/pods until the run's shared request
 * budget (--count, an atomic ticket counter) or its deadline (--duration)
 * is used up. Every request's wall-clock latency (curl_easy_perform) goes
 * into the worker's own array, merged and sorted after the run.
 *
 * With --get PATH the workers GET PATH instead (expecting 200): a baseline
 * for the HTTPS stack itself, e.g. --get /readyz.
 *
 * Output per run: one human line and one "RESULT k=v ..." line that
 * bench/run.sh parses. Answers other than 201 are counted by HTTP code,
 * transport failures as code 0; the first such body is shown (truncated).
 *
 * Threads: main (parses, aggregates) + N workers per run. No shared mutable
 * state but the ticket counter, the barrier and per-worker result slots.
 * Bounds: concurrency <= 1024, count <= 1e6 per run, duration <= 600 s per
 * run, 2,000,000 latency samples per run, response bodies are discarded
 * (only 512 bytes of the first failure are kept).
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONC 1024
#define MAX_LEVELS 16
#define MAX_COUNT 1000000L
#define MAX_DURATION 600.0
#define MAX_SAMPLES 2000000L
#define SAMPLE_BODY 512

struct opts {
    const char *server;
    const char *token_file;
    const char *cacert;
    const char *ns;
    const char *prefix;
    int levels[MAX_LEVELS];
    int nlevels;
    long count;      /* requests per run; 0 = use duration */
    double duration; /* seconds per run (also the cap in count mode) */
    const char *get_path; /* baseline mode: GET this path instead of creating pods */
    bool insecure;
};

struct run {
    const struct opts *o;
    const char *url;
    struct curl_slist *headers;
    int conc;
    int level_idx;
    atomic_long tickets; /* next request number; budget in count mode */
    long budget;
    double deadline;
    pthread_barrier_t start;
    atomic_bool failed_setup;
    long want; /* the success code: 201, or 200 with --get */
    pthread_mutex_t sample_mu; /* guards first_fail */
    char first_fail[SAMPLE_BODY + 64];
};

struct worker {
    struct run *run;
    int id;
    double *lat; /* seconds */
    long nlat, cap;
    long codes[600]; /* index = HTTP code; 0 = transport error */
    char body[SAMPLE_BODY];
    size_t body_len;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------- the manifest ---------- */

/* A Pod as a Deployment's ReplicaSet would create it, minus ownerReferences
 * (they would name a non-existent owner): labels, annotations, one
 * container with ports, env, resources, probes, a volume mount. ~1.1 KiB. */
static const char pod_fmt[] =
    "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\","
    "\"labels\":{\"app\":\"web\",\"tier\":\"frontend\",\"pod-template-hash\":\"7c5ddbdf54\","
    "\"bench\":\"apibench\"},\"annotations\":{\"kubectl.kubernetes.io/restartedAt\":"
    "\"2024-05-01T10:00:00Z\",\"prometheus.io/scrape\":\"true\",\"prometheus.io/port\":\"9090\"}},"
    "\"spec\":{\"restartPolicy\":\"Always\",\"terminationGracePeriodSeconds\":30,"
    "\"dnsPolicy\":\"ClusterFirst\",\"serviceAccountName\":\"default\","
    "\"containers\":[{\"name\":\"web\",\"image\":\"registry.example/web/frontend:1.27.3\","
    "\"imagePullPolicy\":\"IfNotPresent\",\"args\":[\"--port=8080\",\"--metrics-port=9090\"],"
    "\"ports\":[{\"name\":\"http\",\"containerPort\":8080,\"protocol\":\"TCP\"},"
    "{\"name\":\"metrics\",\"containerPort\":9090,\"protocol\":\"TCP\"}],"
    "\"env\":[{\"name\":\"LOG_LEVEL\",\"value\":\"info\"},{\"name\":\"POD_NAME\",\"valueFrom\":"
    "{\"fieldRef\":{\"fieldPath\":\"metadata.name\"}}}],"
    "\"resources\":{\"requests\":{\"cpu\":\"100m\",\"memory\":\"128Mi\"},\"limits\":{\"cpu\":\"500m\","
    "\"memory\":\"256Mi\"}},"
    "\"readinessProbe\":{\"httpGet\":{\"path\":\"/healthz\",\"port\":8080},\"periodSeconds\":5},"
    "\"livenessProbe\":{\"httpGet\":{\"path\":\"/healthz\",\"port\":8080},\"initialDelaySeconds\":10},"
    "\"volumeMounts\":[{\"name\":\"config\",\"mountPath\":\"/etc/web\",\"readOnly\":true}]}],"
    "\"volumes\":[{\"name\":\"config\",\"configMap\":{\"name\":\"web-config\"}}]}}";

/* ---------- flags ---------- */

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: apibench --server URL --token-file F --cacert F [flags]\n"
            "  --namespace NS        namespace to create pods in (default: default)\n"
            "  --concurrency N[,N]   workers per run; repeatable, one run per level (default 1)\n"
            "  --count N             creates per run (max %ld)\n"
            "  --duration SECONDS    run length; in --count mode the cap per run (default 60, max %.0f)\n"
            "  --prefix P            pod name prefix (default bench-<pid>); names are P-c<N>-<run>-<seq>\n"
            "  --get PATH            baseline: GET PATH (expect 200) instead of creating pods\n"
            "  --insecure            do not verify the server certificate (then --cacert is optional)\n",
            MAX_COUNT, MAX_DURATION);
}

static int add_levels(struct opts *o, const char *v)
{
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s", v);
    char *save = NULL;
    for (char *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        long n = strtol(t, NULL, 10);
        if (n < 1 || n > MAX_CONC || o->nlevels >= MAX_LEVELS)
            return -1;
        o->levels[o->nlevels++] = (int)n;
    }
    return 0;
}

static int parse_flags(int argc, char **argv, struct opts *o)
{
    o->ns = "default";
    o->duration = 60;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--insecure")) {
            o->insecure = true;
            continue;
        } else if (!v) {
            fprintf(stderr, "apibench: %s needs a value\n", a);
            return -1;
        }
        i++;
        if (!strcmp(a, "--server"))
            o->server = v;
        else if (!strcmp(a, "--token-file"))
            o->token_file = v;
        else if (!strcmp(a, "--cacert"))
            o->cacert = v;
        else if (!strcmp(a, "--namespace"))
            o->ns = v;
        else if (!strcmp(a, "--get"))
            o->get_path = v;
        else if (!strcmp(a, "--prefix"))
            o->prefix = v;
        else if (!strcmp(a, "--count"))
            o->count = strtol(v, NULL, 10);
        else if (!strcmp(a, "--duration"))
            o->duration = strtod(v, NULL);
        else if (!strcmp(a, "--concurrency")) {
            if (add_levels(o, v)) {
                fprintf(stderr, "apibench: bad --concurrency %s (1..%d, at most %d levels)\n", v, MAX_CONC,
                        MAX_LEVELS);
                return -1;
            }
        } else {
            fprintf(stderr, "apibench: unknown flag %s\n", a);
            return -1;
        }
    }
    if (!o->server || !o->token_file || (!o->cacert && !o->insecure)) {
        usage(stderr);
        return -1;
    }
    if (o->count < 0 || o->count > MAX_COUNT || o->duration <= 0 || o->duration > MAX_DURATION) {
        fprintf(stderr, "apibench: --count must be 0..%ld and --duration in (0, %.0f]\n", MAX_COUNT, MAX_DURATION);
        return -1;
    }
    if (!o->nlevels)
        o->levels[o->nlevels++] = 1;
    return 0;
}

static int read_token(const char *path, char *out, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t len = fread(out, 1, n - 1, f);
    fclose(f);
    out[len] = 0;
    while (len && (out[len - 1] == '\n' || out[len - 1] == '\r' || out[len - 1] == ' '))
        out[--len] = 0;
    return len ? 0 : -1;
}

/* ---------- one worker ---------- */

static size_t keep_body(char *p, size_t sz, size_t nm, void *ud)
{
    struct worker *w = ud;
    size_t n = sz * nm;
    size_t room = sizeof w->body - 1 - w->body_len;
    size_t take = n < room ? n : room;
    memcpy(w->body + w->body_len, p, take);
    w->body_len += take;
    w->body[w->body_len] = 0;
    return n;
}

static CURL *make_handle(struct worker *w)
{
    const struct opts *o = w->run->o;
    CURL *h = curl_easy_init();
    if (!h)
        return NULL;
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, w->run->headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, w);
    if (o->cacert)
        curl_easy_setopt(h, CURLOPT_CAINFO, o->cacert);
    if (o->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    return h;
}

/* Untimed GET of the namespace: opens the connection and does the TLS
 * handshake so the timed loop measures keep-alive requests only. */
static int warm_up(CURL *h, struct worker *w)
{
    char url[1024];
    snprintf(url, sizeof url, "%s/api/v1/namespaces/%s", w->run->o->server, w->run->o->ns);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    w->body_len = 0;
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (rc != CURLE_OK || code != 200) {
        fprintf(stderr, "apibench: warm-up GET %s: %s, HTTP %ld %s\n", url, curl_easy_strerror(rc), code, w->body);
        return -1;
    }
    return 0;
}

static bool take_ticket(struct run *r, long *seq)
{
    if (now_s() >= r->deadline)
        return false;
    long t = atomic_fetch_add(&r->tickets, 1);
    if (r->budget && t >= r->budget)
        return false;
    *seq = t;
    return true;
}

static void record(struct worker *w, double lat, long code)
{
    if (code < 0 || code >= 600)
        code = 0;
    w->codes[code]++;
    if (w->nlat < w->cap)
        w->lat[w->nlat++] = lat;
    if (code != w->run->want) {
        struct run *r = w->run;
        pthread_mutex_lock(&r->sample_mu);
        if (!r->first_fail[0])
            snprintf(r->first_fail, sizeof r->first_fail, "HTTP %ld: %s", code, w->body);
        pthread_mutex_unlock(&r->sample_mu);
    }
}

static void create_loop(CURL *h, struct worker *w)
{
    struct run *r = w->run;
    const struct opts *o = r->o;
    char name[160], body[sizeof pod_fmt + 512];
    long seq;
    if (o->get_path) {
        char url[1024];
        snprintf(url, sizeof url, "%s%s", o->server, o->get_path);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        while (take_ticket(r, &seq)) {
            w->body_len = 0;
            double t0 = now_s();
            CURLcode rc = curl_easy_perform(h);
            double dt = now_s() - t0;
            long code = 0;
            if (rc == CURLE_OK)
                curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
            record(w, dt, code);
        }
        return;
    }
    curl_easy_setopt(h, CURLOPT_URL, r->url);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    while (take_ticket(r, &seq)) {
        snprintf(name, sizeof name, "%s-c%d-%d-%ld", o->prefix, r->conc, r->level_idx, seq);
        int len = snprintf(body, sizeof body, pod_fmt, name, o->ns);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
        w->body_len = 0;
        w->body[0] = 0;
        double t0 = now_s();
        CURLcode rc = curl_easy_perform(h);
        double dt = now_s() - t0;
        long code = 0;
        if (rc == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        else
            snprintf(w->body, sizeof w->body, "%s", curl_easy_strerror(rc));
        record(w, dt, code);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct run *r = w->run;
    CURL *h = make_handle(w);
    if (!h || warm_up(h, w))
        atomic_store(&r->failed_setup, true);
    pthread_barrier_wait(&r->start); /* 1: everyone connected */
    pthread_barrier_wait(&r->start); /* 2: main set the deadline */
    if (!atomic_load(&r->failed_setup))
        create_loop(h, w);
    if (h)
        curl_easy_cleanup(h);
    return NULL;
}

/* ---------- one run ---------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* nearest-rank percentile of sorted v[0..n) */
static double pct(const double *v, long n, double p)
{
    if (!n)
        return 0;
    long k = (long)(p / 100.0 * (double)n + 0.999999);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

/* cpu: this process's CPU seconds during the timed part (all workers) */
static void report(struct run *r, struct worker *ws, double elapsed, double cpu)
{
    long total = 0, codes[600] = {0};
    for (int i = 0; i < r->conc; i++) {
        total += ws[i].nlat;
        for (int c = 0; c < 600; c++)
            codes[c] += ws[i].codes[c];
    }
    double *all = malloc((size_t)(total ? total : 1) * sizeof *all);
    long k = 0;
    for (int i = 0; i < r->conc; i++) {
        memcpy(all + k, ws[i].lat, (size_t)ws[i].nlat * sizeof *all);
        k += ws[i].nlat;
    }
    qsort(all, (size_t)total, sizeof *all, cmp_double);
    long ok = codes[r->want], reqs = 0;
    for (int c = 0; c < 600; c++)
        reqs += codes[c];
    double rate = elapsed > 0 ? (double)ok / elapsed : 0;
    char fails[512] = "";
    size_t fl = 0;
    for (int c = 0; c < 600; c++)
        if (c != r->want && codes[c] && fl < sizeof fails - 32)
            fl += (size_t)snprintf(fails + fl, sizeof fails - fl, "%s%d:%ld", fl ? "," : "", c, codes[c]);
    double p50 = pct(all, total, 50) * 1e3, p90 = pct(all, total, 90) * 1e3, p99 = pct(all, total, 99) * 1e3;
    double mx = total ? all[total - 1] * 1e3 : 0;
    double cpu_us = reqs ? cpu * 1e6 / (double)reqs : 0;
    printf("concurrency %4d: %7ld requests in %6.2f s  %8.0f %s/s  p50 %7.2f ms  p90 %7.2f ms  p99 %7.2f ms"
           "  max %7.2f ms  non-%ld: %s  client CPU %.0f us/req\n",
           r->conc, reqs, elapsed, rate, r->o->get_path ? "GETs" : "creates", p50, p90, p99, mx, r->want,
           fl ? fails : "none", cpu_us);
    printf("RESULT conc=%d requests=%ld created=%ld seconds=%.3f creates_per_s=%.0f p50_ms=%.2f p90_ms=%.2f "
           "p99_ms=%.2f max_ms=%.2f non201=%s client_cpu_us_per_req=%.0f\n",
           r->conc, reqs, ok, elapsed, rate, p50, p90, p99, mx, fl ? fails : "none", cpu_us);
    if (r->first_fail[0])
        printf("  first non-%ld answer: %.300s\n", r->want, r->first_fail);
    fflush(stdout);
    free(all);
}

static long sample_cap(const struct opts *o, int conc)
{
    long cap = o->count ? o->count / conc + 2 : (long)(o->duration * 50000.0 / conc) + 16;
    long max = MAX_SAMPLES / conc;
    return cap < max ? cap : max;
}

static int one_run(const struct opts *o, const char *url, struct curl_slist *hdrs, int conc, int idx)
{
    struct run *r = calloc(1, sizeof *r);
    struct worker *ws = calloc((size_t)conc, sizeof *ws);
    pthread_t *th = calloc((size_t)conc, sizeof *th);
    *r = (struct run){.o = o, .url = url, .headers = hdrs, .conc = conc, .level_idx = idx, .budget = o->count,
                      .want = o->get_path ? 200 : 201};
    r->deadline = 1e300; /* until main sets it after everyone connected */
    pthread_barrier_init(&r->start, NULL, (unsigned)conc + 1);
    pthread_mutex_init(&r->sample_mu, NULL);
    int started = 0, rc = 0;
    for (int i = 0; i < conc; i++) {
        ws[i].run = r;
        ws[i].id = i;
        ws[i].cap = sample_cap(o, conc);
        ws[i].lat = malloc((size_t)ws[i].cap * sizeof(double));
    }
    for (; started < conc; started++)
        if (pthread_create(&th[started], NULL, worker_main, &ws[started]))
            break;
    if (started < conc) {
        /* cannot happen with the cap of 1024 on a normal machine; give up loudly */
        fprintf(stderr, "apibench: cannot start %d threads (%s)\n", conc, strerror(errno));
        exit(1);
    }
    pthread_barrier_wait(&r->start);
    double t0 = now_s(), c0 = cpu_s();
    r->deadline = t0 + o->duration;
    pthread_barrier_wait(&r->start);
    for (int i = 0; i < conc; i++)
        pthread_join(th[i], NULL);
    double elapsed = now_s() - t0, cpu = cpu_s() - c0;
    if (atomic_load(&r->failed_setup)) {
        fprintf(stderr, "apibench: concurrency %d: a worker could not connect; run skipped\n", conc);
        rc = -1;
    } else {
        report(r, ws, elapsed, cpu);
    }
    for (int i = 0; i < conc; i++)
        free(ws[i].lat);
    pthread_barrier_destroy(&r->start);
    pthread_mutex_destroy(&r->sample_mu);
    free(th);
    free(ws);
    free(r);
    return rc;
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    if (parse_flags(argc, argv, &o))
        return 2;
    char token[4096], auth[4200], defprefix[64], url[1024];
    if (read_token(o.token_file, token, sizeof token)) {
        fprintf(stderr, "apibench: cannot read a token from %s\n", o.token_file);
        return 2;
    }
    if (!o.prefix) {
        snprintf(defprefix, sizeof defprefix, "bench-%ld", (long)getpid());
        o.prefix = defprefix;
    }
    snprintf(url, sizeof url, "%s/api/v1/namespaces/%s/pods", o.server, o.ns);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    if (curl_global_init(CURL_GLOBAL_DEFAULT))
        return 1;
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Accept: application/json");
    h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
    h = curl_slist_append(h, "User-Agent: kubec-apibench/0.1");
    if (o.get_path)
        printf("apibench: GET %s%s, %s per run\n", o.server, o.get_path, o.count ? "fixed count" : "fixed duration");
    else
        printf("apibench: POST %s, %zu-byte pods, %s per run\n", url, strlen(pod_fmt) + strlen(o.prefix) + 20,
               o.count ? "fixed count" : "fixed duration");
    int rc = 0;
    for (int i = 0; i < o.nlevels; i++)
        if (one_run(&o, url, h, o.levels[i], i))
            rc = 1;
    curl_slist_free_all(h);
    curl_global_cleanup();
    return rc;
}
