/* stress.c — `kubec stress`: the creation-chain stress test. Creates Deployments concurrently through
 * the public API (any cluster, through a kubeconfig), measures every pod's way from the Deployment's
 * create request to Ready, and reports per-stage quantiles, throughput, client-side API latency, the
 * server's RSS, threshold breaches, stuck pods; optionally churns (scale up, roll, delete); cleans up.
 *
 * A run:
 *   1. /version and /metrics (RSS before); namespaces stress-<run>-<k>, labelled with the run label;
 *   2. three watches (stress_watch.c) started from a list, so nothing of the run is missed;
 *   3. --concurrency creator threads take Deployment indexes from an atomic counter (--qps bucket in
 *      stress_api.c) while this thread prints progress and decides when the run is over: everything
 *      Ready and Available, the timeout, Ctrl-C, or "stuck" (every unready pod waits on a failure
 *      reason and nothing moved for --stuck-after);
 *   4. optional churn; statistics; thresholds; report; cleanup (delete the namespaces, wait until no
 *      object with the run label is left).
 * Threads: main (progress, churn waits, cleanup), creators / churn workers (joined per phase), 3 watches.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tools/stress_int.h"
#include "tools/tools.h"

#define MAX_EXEC_ERRORS 50
#define CREATE_ATTEMPTS 6

static atomic_bool g_interrupted;

/* First Ctrl-C: stop creating, report, clean up. A second one ends the process the default way. */
static void on_signal(int sig)
{
    atomic_store(&g_interrupted, true);
    signal(sig, SIG_DFL);
}

struct run {
    struct st_config *c;
    struct st_api api;
    struct st_state st;
    char id[16];
    double deadline;
    atomic_int next;
    pthread_mutex_t err_mu;
    json_t *errors;
    /* churn phase parameters */
    int churn_replicas;
    const char *churn_image;
    int phase; /* 0 scale, 1 roll, 2 delete */
};

static void nap(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void exec_error(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void exec_error(struct run *r, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&r->err_mu);
    if (json_array_size(r->errors) < MAX_EXEC_ERRORS)
        json_array_append_new(r->errors, json_string(msg));
    pthread_mutex_unlock(&r->err_mu);
}

static void make_run_id(char *out, size_t n)
{
    unsigned v = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0 || read(fd, &v, sizeof v) != (ssize_t)sizeof v)
        v = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
    if (fd >= 0)
        close(fd);
    snprintf(out, n, "r%08x", v);
}

static void ns_name(const struct run *r, int k, char *out, size_t n) { snprintf(out, n, "stress-%s-%d", r->id, k); }

/* ---------- objects ---------- */

static json_t *labels(const struct run *r, int i)
{
    char idx[16], app[32];
    snprintf(idx, sizeof idx, "%d", i);
    snprintf(app, sizeof app, "stress-%d", i);
    return json_pack("{s:s,s:s,s:s}", ST_RUN_LABEL, r->id, ST_INDEX_LABEL, idx, "app", app);
}

static json_t *deployment_json(const struct run *r, int i, const char *ns)
{
    const struct st_config *c = r->c;
    char name[32];
    snprintf(name, sizeof name, "stress-%d", i);
    json_t *ctr = json_pack("{s:s,s:s}", "name", "c", "image", c->image);
    if (c->nrequests) {
        json_t *req = json_object();
        for (int k = 0; k < c->nrequests; k++)
            json_object_set_new(req, c->requests[k].name, json_string(c->requests[k].value));
        json_object_set_new(ctr, "resources", json_pack("{s:o}", "requests", req));
    }
    /* grace 0: the pods run nothing that needs a shutdown, and cleanup should not wait 30 s per pod */
    json_t *spec = json_pack("{s:[o],s:i}", "containers", ctr, "terminationGracePeriodSeconds", 0);
    if (c->priority_class[0])
        json_object_set_new(spec, "priorityClassName", json_string(c->priority_class));
    if (c->spread[0]) {
        json_t *tsc = json_pack("{s:i,s:s,s:s,s:{s:o}}", "maxSkew", 1, "topologyKey", c->spread, "whenUnsatisfiable",
                                "DoNotSchedule", "labelSelector", "matchLabels", labels(r, i));
        json_object_set_new(spec, "topologySpreadConstraints", json_pack("[o]", tsc));
    }
    return json_pack("{s:s,s:s,s:{s:s,s:s,s:o},s:{s:i,s:{s:o},s:{s:{s:o},s:o}}}", "apiVersion", "apps/v1", "kind",
                     "Deployment", "metadata", "name", name, "namespace", ns, "labels", labels(r, i), "spec",
                     "replicas", c->replicas, "selector", "matchLabels", labels(r, i), "template", "metadata",
                     "labels", labels(r, i), "spec", spec);
}

static int create_namespaces(struct run *r, struct kc_err *err)
{
    for (int k = 0; k < r->c->namespaces; k++) {
        char ns[64];
        ns_name(r, k, ns, sizeof ns);
        json_t *body = json_pack("{s:s,s:s,s:{s:s,s:{s:s}}}", "apiVersion", "v1", "kind", "Namespace", "metadata",
                                 "name", ns, "labels", ST_RUN_LABEL, r->id);
        int code;
        int rc = st_api_call(&r->api, ST_V_CREATE, "POST", "/api/v1/namespaces", NULL, body, NULL, &code, err);
        json_decref(body);
        if (rc && code != 409)
            return rc;
    }
    return 0;
}

/* ---------- creation ---------- */

static bool should_stop(const struct run *r) { return atomic_load(&g_interrupted) || st_wall_now() >= r->deadline; }

static void create_one(struct run *r, int i)
{
    struct st_deploy *d = &r->st.d[i];
    char ns[64], path[256];
    ns_name(r, i % r->c->namespaces, ns, sizeof ns);
    kc_path(path, sizeof path, "apps", "v1", "deployments", ns, NULL, NULL);
    json_t *body = deployment_json(r, i, ns);
    struct kc_err err = {0};
    int code = 0;
    pthread_mutex_lock(&r->st.mu);
    snprintf(d->ns, sizeof d->ns, "%s", ns);
    snprintf(d->name, sizeof d->name, "stress-%d", i);
    d->sent = st_wall_now(); /* the chain starts at the first attempt: retries count against it */
    pthread_mutex_unlock(&r->st.mu);
    for (int attempt = 0; attempt < CREATE_ATTEMPTS && !should_stop(r); attempt++) {
        int rc = st_api_call(&r->api, ST_V_CREATE, "POST", path, NULL, body, NULL, &code, &err);
        if (!rc || code == 409) { /* 409: an earlier attempt got through after all */
            double now = st_wall_now();
            pthread_mutex_lock(&r->st.mu);
            d->accepted_client = now;
            d->created = true;
            pthread_mutex_unlock(&r->st.mu);
            atomic_fetch_add(&r->st.created, 1);
            json_decref(body);
            return;
        }
        if (code && code != 429 && code < 500)
            break; /* the server said no: retrying will not change its mind */
        nap(0.1 * (1 << attempt));
    }
    exec_error(r, "create deployment %s/stress-%d: %s", ns, i, err.message[0] ? err.message : "gave up");
    pthread_mutex_lock(&r->st.mu);
    d->failed = true;
    pthread_mutex_unlock(&r->st.mu);
    json_decref(body);
}

/* ---------- churn ---------- */

static void churn_one(struct run *r, int i)
{
    struct st_deploy *d = &r->st.d[i];
    if (!d->created)
        return;
    char path[256];
    kc_path(path, sizeof path, "apps", "v1", "deployments", d->ns, d->name, NULL);
    struct kc_err err = {0};
    int code = 0, rc;
    json_t *out = NULL;
    if (r->phase == 2) {
        json_t *opts = json_pack("{s:s}", "propagationPolicy", "Background");
        rc = st_api_call(&r->api, ST_V_DELETE, "DELETE", path, NULL, opts, NULL, &code, &err);
        json_decref(opts);
    } else {
        json_t *patch = r->phase == 0
                            ? json_pack("{s:{s:i}}", "spec", "replicas", r->churn_replicas)
                            : json_pack("{s:{s:{s:{s:{s:s}},s:{s:[{s:s,s:s}]}}}}", "spec", "template", "metadata",
                                        "annotations", "kubec.io/stress-rollout", "1", "spec", "containers", "name",
                                        "c", "image", r->churn_image);
        rc = st_api_call(&r->api, ST_V_PATCH, "PATCH", path, "application/strategic-merge-patch+json", patch, &out,
                         &code, &err);
        json_decref(patch);
        if (!rc) {
            pthread_mutex_lock(&r->st.mu);
            d->want_gen = json_integer_value(json_object_get(json_object_get(out, "metadata"), "generation"));
            pthread_mutex_unlock(&r->st.mu);
        }
        json_decref(out);
    }
    if (rc && !(r->phase == 2 && code == 404))
        exec_error(r, "churn %s %s/%s: %s", r->phase == 2 ? "delete" : "patch", d->ns, d->name, err.message);
}

static void *worker(void *arg)
{
    struct run *r = arg;
    for (;;) {
        int i = atomic_fetch_add(&r->next, 1);
        if (i >= r->c->deployments || should_stop(r))
            break;
        if (r->phase < 0)
            create_one(r, i);
        else
            churn_one(r, i);
    }
    return NULL;
}

/* Starts c->concurrency workers over all Deployment indexes (phase -1 = create). */
static int start_workers(struct run *r, int phase, pthread_t *th, int *nth)
{
    r->phase = phase;
    atomic_store(&r->next, 0);
    *nth = 0;
    for (int k = 0; k < r->c->concurrency; k++) {
        if (pthread_create(&th[k], NULL, worker, r))
            break;
        (*nth)++;
    }
    return *nth ? 0 : -1;
}

static void join_workers(pthread_t *th, int nth)
{
    for (int k = 0; k < nth; k++)
        pthread_join(th[k], NULL);
}

/* ---------- server figures ---------- */

static double read_rss(struct run *r)
{
    char *body = NULL;
    struct kc_err err;
    if (st_api_get_raw(&r->api, "/metrics", &body, &err))
        return -1;
    double v = -1;
    const char *key = "\nprocess_resident_memory_bytes ";
    const char *p = strstr(body, key);
    if (p)
        v = strtod(p + strlen(key), NULL);
    free(body);
    return v;
}

/* ---------- progress ---------- */

static bool failing_reason(const char *r)
{
    static const char *const bad[] = {"ErrImagePull",        "ImagePullBackOff",           "InvalidImageName",
                                      "ErrImageNeverPull",   "CrashLoopBackOff",           "CreateContainerConfigError",
                                      "CreateContainerError", "RunContainerError",         "Unschedulable",
                                      "Error",               "OOMKilled",                  "ContainerCannotRun"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (!strcmp(r, bad[i]))
            return true;
    return false;
}

/* Every pod of the creation phase that is not Ready waits on a failure reason. */
static bool all_unready_failing(struct run *r)
{
    bool all = true;
    pthread_mutex_lock(&r->st.mu);
    const char *key;
    void *v;
    for (long i = kc_map_next(&r->st.pods, 0, &key, &v); all && i >= 0; i = kc_map_next(&r->st.pods, i + 1, &key, &v)) {
        struct st_pod *p = v;
        if (!p->churn && !p->ready && !p->deleted && !failing_reason(p->reason))
            all = false;
    }
    pthread_mutex_unlock(&r->st.mu);
    return all;
}

#define RATE_RING 11 /* samples 0.1 s apart: the rate over the last second */

struct progress {
    bool tty;
    double start, last_print, last_move;
    double ring_t[RATE_RING];
    int ring_ready[RATE_RING];
    unsigned ring_n;
};

/* Pods turning Ready a second, over the last second of samples. */
static double sample_rate(struct progress *pg, double now, int ready)
{
    unsigned i = pg->ring_n % RATE_RING;
    pg->ring_t[i] = now;
    pg->ring_ready[i] = ready;
    pg->ring_n++;
    unsigned oldest = pg->ring_n < RATE_RING ? 0 : pg->ring_n % RATE_RING;
    double dt = now - pg->ring_t[oldest];
    return dt > 0 ? (ready - pg->ring_ready[oldest]) / dt : 0;
}

static void print_progress(struct run *r, struct progress *pg, double now, bool final)
{
    int created = atomic_load(&r->st.created), avail = atomic_load(&r->st.available);
    int ready = atomic_load(&r->st.pods_ready);
    long expected = (long)r->c->deployments * r->c->replicas;
    double rate = sample_rate(pg, now, ready);
    uint64_t reqs, errs = st_api_errors(&r->api, &reqs);
    char line[256];
    snprintf(line, sizeof line,
             "[%6.1fs] Deployments %d/%d created, %d Available | pods %d/%ld Ready | %.0f pods/s | errors %llu", now - pg->start,
             created, r->c->deployments, avail, ready, expected, rate, (unsigned long long)errs);
    if (pg->tty) {
        fprintf(stderr, "\r\033[K%s%s", line, final ? "\n" : "");
    } else {
        fprintf(stderr, "%s\n", line);
    }
    fflush(stderr);
    pg->last_print = now;
}

enum { END_DONE, END_TIMEOUT, END_STUCK, END_INTERRUPTED };

/* Waits for the creation phase to finish; returns END_*. Samples the server RSS every 2 s. */
static int watch_progress(struct run *r, struct progress *pg, double *rss_peak)
{
    long expected = (long)r->c->deployments * r->c->replicas;
    int last_sig = -1;
    double last_rss = 0;
    for (;;) {
        nap(0.1);
        double now = st_wall_now();
        int created = atomic_load(&r->st.created), avail = atomic_load(&r->st.available);
        int ready = atomic_load(&r->st.pods_ready), seen = atomic_load(&r->st.pods_seen);
        int failed = 0;
        pthread_mutex_lock(&r->st.mu);
        for (int i = 0; i < r->c->deployments; i++)
            failed += r->st.d[i].failed;
        pthread_mutex_unlock(&r->st.mu);
        int sig = created + avail + ready + seen + failed;
        if (sig != last_sig) {
            last_sig = sig;
            pg->last_move = now;
        }
        if (now - last_rss >= 2.0) {
            double rss = read_rss(r);
            if (rss > *rss_peak)
                *rss_peak = rss;
            last_rss = now;
        }
        if (now - pg->last_print >= (pg->tty ? 0.2 : 5.0))
            print_progress(r, pg, now, false);
        else
            sample_rate(pg, now, ready);
        bool all_sent = created + failed >= r->c->deployments;
        if (all_sent && avail >= created && ready >= expected - (long)failed * r->c->replicas)
            return END_DONE;
        if (atomic_load(&g_interrupted))
            return END_INTERRUPTED;
        if (now >= r->deadline)
            return END_TIMEOUT;
        if (all_sent && now - pg->last_move >= r->c->stuck_after && all_unready_failing(r))
            return END_STUCK;
    }
}

/* Churn waits: every created Deployment has observed its generation and has want replicas updated and
 * available (and, for want_total, no old ones left). */
static bool churn_settled(struct run *r, int want)
{
    bool ok = true;
    pthread_mutex_lock(&r->st.mu);
    for (int i = 0; ok && i < r->c->deployments; i++) {
        struct st_deploy *d = &r->st.d[i];
        if (d->created && (d->observed < d->want_gen || d->updated != want || d->available_replicas != want ||
                           d->replicas != want))
            ok = false;
    }
    pthread_mutex_unlock(&r->st.mu);
    return ok;
}

static long pods_alive(struct run *r)
{
    long n = 0;
    pthread_mutex_lock(&r->st.mu);
    const char *key;
    void *v;
    for (long i = kc_map_next(&r->st.pods, 0, &key, &v); i >= 0; i = kc_map_next(&r->st.pods, i + 1, &key, &v))
        n += !((struct st_pod *)v)->deleted;
    pthread_mutex_unlock(&r->st.mu);
    return n;
}

static json_t *churn_phase(struct run *r, int phase, const char *name, pthread_t *th)
{
    double t0 = st_wall_now();
    int nth;
    bool complete = false;
    if (start_workers(r, phase, th, &nth) == 0) {
        join_workers(th, nth);
        while (!should_stop(r)) {
            if (phase < 2 ? churn_settled(r, r->churn_replicas) : pods_alive(r) == 0) {
                complete = true;
                break;
            }
            nap(0.1);
        }
    }
    double secs = st_wall_now() - t0;
    fprintf(stderr, "churn %-8s %s in %.2fs\n", name, complete ? "done" : "NOT complete", secs);
    return json_pack("{s:f,s:b}", "seconds", secs, "complete", complete);
}

static json_t *run_churn(struct run *r, pthread_t *th)
{
    r->churn_replicas = r->c->replicas + (r->c->replicas + 1) / 2;
    r->churn_image = r->c->churn_image[0] ? r->c->churn_image : r->c->image;
    json_t *out = json_object();
    json_object_set_new(out, "scaleUp", churn_phase(r, 0, "scale-up", th));
    json_object_set_new(json_object_get(out, "scaleUp"), "replicas", json_integer(r->churn_replicas));
    json_object_set_new(out, "rollout", churn_phase(r, 1, "rollout", th));
    json_object_set_new(json_object_get(out, "rollout"), "image", json_string(r->churn_image));
    json_object_set_new(out, "delete", churn_phase(r, 2, "delete", th));
    return out;
}

/* ---------- cleanup ---------- */

static long count_labelled(struct run *r, const char *base)
{
    char sel[128], esc[256], path[512];
    snprintf(sel, sizeof sel, "%s=%s", ST_RUN_LABEL, r->id);
    kc_url_escape(sel, esc, sizeof esc);
    snprintf(path, sizeof path, "%s?labelSelector=%s", base, esc);
    json_t *list;
    int code;
    struct kc_err err;
    if (st_api_call(&r->api, ST_V_LIST, "GET", path, NULL, NULL, &list, &code, &err))
        return -1;
    long n = (long)json_array_size(json_object_get(list, "items"));
    json_decref(list);
    return n;
}

static json_t *cleanup(struct run *r)
{
    static const char *const bases[] = {"/apis/apps/v1/deployments", "/apis/apps/v1/replicasets", "/api/v1/pods",
                                        "/api/v1/namespaces"};
    double t0 = st_wall_now();
    fprintf(stderr, "cleanup: deleting %d namespace(s); waiting until nothing labelled %s=%s is left\n",
            r->c->namespaces, ST_RUN_LABEL, r->id);
    for (int k = 0; k < r->c->namespaces; k++) {
        char ns[64], path[128];
        ns_name(r, k, ns, sizeof ns);
        snprintf(path, sizeof path, "/api/v1/namespaces/%s", ns);
        int code;
        struct kc_err err;
        json_t *opts = json_pack("{s:s}", "propagationPolicy", "Background");
        if (st_api_call(&r->api, ST_V_DELETE, "DELETE", path, NULL, opts, NULL, &code, &err) && code != 404)
            exec_error(r, "cleanup: delete namespace %s: %s", ns, err.message);
        json_decref(opts);
    }
    double limit = r->c->timeout > 60 ? r->c->timeout : 60;
    long remaining[4] = {-1, -1, -1, -1};
    bool complete = false;
    int failures = 0; /* consecutive rounds in which a list failed: the server may be gone */
    while (st_wall_now() - t0 < limit && failures < 40) {
        long total = 0;
        bool failed = false;
        for (int b = 0; b < 4; b++) {
            remaining[b] = count_labelled(r, bases[b]);
            failed |= remaining[b] < 0;
            total += remaining[b] < 0 ? 1 : remaining[b];
        }
        failures = failed ? failures + 1 : 0;
        if (!total) {
            complete = true;
            break;
        }
        nap(0.25);
    }
    double secs = st_wall_now() - t0;
    fprintf(stderr, "cleanup %s in %.2fs\n", complete ? "done" : "NOT complete", secs);
    return json_pack("{s:f,s:b,s:{s:i,s:i,s:i,s:i}}", "seconds", secs, "complete", complete, "remaining",
                     "deployments", (json_int_t)remaining[0], "replicasets", (json_int_t)remaining[1], "pods",
                     (json_int_t)remaining[2], "namespaces", (json_int_t)remaining[3]);
}

/* ---------- results ---------- */

static int push(double **v, size_t *n, size_t *cap, double x)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        double *p = realloc(*v, nc * sizeof *p);
        if (!p)
            return -1;
        *v = p;
        *cap = nc;
    }
    (*v)[(*n)++] = x;
    return 0;
}

static void stuck_pod(struct st_result *res, const struct st_pod *p)
{
    const char *reason = p->reason[0] ? p->reason : "Unknown";
    json_t *n = json_object_get(res->stuck_reasons, reason);
    json_object_set_new(res->stuck_reasons, reason, json_integer(json_integer_value(n) + 1));
    if (json_array_size(res->stuck_examples) < 10) {
        char ex[700];
        snprintf(ex, sizeof ex, "%s/%s%s%s%s: %s", p->ns, p->name, p->node[0] ? " (node " : "", p->node,
                 p->node[0] ? ")" : "", reason);
        json_array_append_new(res->stuck_examples, json_string(ex));
    }
    res->stuck++;
}

static void compute(struct run *r, struct st_result *res)
{
    struct st_state *s = &r->st;
    size_t cap[ST_NSTAGES] = {0}, rcap = 0;
    res->start = 0;
    for (int i = 0; i < s->nd; i++)
        if (s->d[i].sent && (!res->start || s->d[i].sent < res->start))
            res->start = s->d[i].sent;
    res->stuck_reasons = json_object();
    res->stuck_examples = json_array();
    const char *key;
    void *v;
    for (long it = kc_map_next(&s->pods, 0, &key, &v); it >= 0; it = kc_map_next(&s->pods, it + 1, &key, &v)) {
        struct st_pod *p = v;
        if (p->churn || p->index < 0)
            continue;
        res->pods_seen++;
        double sent = s->d[p->index].sent;
        for (int st = ST_ACCEPTED; st <= ST_READY; st++) {
            if (p->t[st]) {
                push(&res->vals[st], &res->nvals[st], &cap[st], p->t[st] - sent);
                res->stage_src[st][p->src[st]]++;
            } else {
                res->stage_missing[st]++;
            }
        }
        if (p->ready) {
            res->pods_ready++;
            push(&res->ready_rel, &res->nready_rel, &rcap, p->t[ST_READY] - res->start);
        } else if (!p->deleted) {
            stuck_pod(res, p);
        }
    }
    for (int i = 0; i < s->nd; i++) {
        struct st_deploy *d = &s->d[i];
        res->deployments_created += d->created;
        if (!d->created)
            continue;
        if (!d->available) {
            res->stage_missing[ST_AVAILABLE]++;
            continue;
        }
        res->deployments_available++;
        unsigned char src;
        double t = d->stamp[ST_AVAILABLE] ? (src = ST_SRC_STAMP, d->stamp[ST_AVAILABLE])
                   : d->seen[ST_AVAILABLE] ? (src = ST_SRC_WATCH, d->seen[ST_AVAILABLE])
                                           : (src = ST_SRC_COND, d->cond[ST_AVAILABLE]);
        push(&res->vals[ST_AVAILABLE], &res->nvals[ST_AVAILABLE], &cap[ST_AVAILABLE], t - d->sent);
        res->stage_src[ST_AVAILABLE][src]++;
    }
    for (int st = 0; st < ST_NSTAGES; st++)
        st_summarize(res->vals[st], res->nvals[st], &res->stage[st]); /* sorts vals */
    struct st_summary rs;
    st_summarize(res->ready_rel, res->nready_rel, &rs); /* sorts ready_rel */
    if (res->nready_rel) {
        res->first_ready = res->ready_rel[0];
        res->last_ready = res->ready_rel[res->nready_rel - 1];
        res->avg_rate = res->last_ready > 0 ? (double)res->nready_rel / res->last_ready : 0;
        /* the most pods turning Ready within any 1 s window; a run shorter than that has only its average */
        res->peak_rate = (double)st_peak_window(res->ready_rel, res->nready_rel, 1.0);
        if (res->peak_rate < res->avg_rate)
            res->peak_rate = res->avg_rate;
    }
    res->pods_expected = (size_t)r->c->deployments * (size_t)r->c->replicas;
    for (int k = 0; k < r->c->nth; k++) {
        const struct st_threshold *t = &r->c->th[k];
        const struct st_summary *sm = &res->stage[t->stage];
        res->th_value[k] = sm->v[t->metric];
        res->th_pass[k] = sm->count > 0 && sm->v[t->metric] <= t->limit;
    }
}

/* Client-side API figures of the whole run (creation, churn, cleanup). */
static void compute_api(struct run *r, struct st_result *res)
{
    uint64_t total = 0, errs = 0;
    pthread_mutex_lock(&r->api.mu);
    for (int vb = 0; vb < ST_NVERBS; vb++) {
        struct st_verbstat *vs = &r->api.v[vb];
        struct st_apisum *a = &res->api[vb];
        st_summarize(vs->lat, vs->n, &a->s);
        a->total = vs->total;
        a->ok = vs->ok;
        a->throttled = vs->throttled;
        a->conflicts = vs->conflicts;
        a->errors = vs->errors;
        total += vs->total;
        errs += vs->errors;
    }
    pthread_mutex_unlock(&r->api.mu);
    res->error_rate = total ? (double)errs / (double)total : 0;
}

static int exit_code(const struct st_config *c, const struct st_result *res, bool cleanup_ok)
{
    if (res->error_rate > c->max_error_rate)
        return 2;
    if (res->stuck || res->timed_out || res->interrupted || res->pods_ready < res->pods_expected ||
        res->deployments_available < c->deployments || !cleanup_ok)
        return 3;
    for (int k = 0; k < c->nth; k++)
        if (!res->th_pass[k])
            return 1;
    return 0;
}

static void print_warnings(const struct st_config *c, const struct st_result *res)
{
    for (int k = 0; k < c->nth; k++) {
        if (res->th_pass[k])
            continue;
        char v[32], l[32];
        st_fmt_dur(res->th_value[k], v, sizeof v);
        st_fmt_dur(c->th[k].limit, l, sizeof l);
        if (!res->stage[c->th[k].stage].count)
            fprintf(stderr, "WARN %s %s latency has no samples; configured threshold: %s\n",
                    st_metric_names[c->th[k].metric], st_stage_names[c->th[k].stage], l);
        else
            fprintf(stderr, "WARN %s %s latency (%s) higher than configured threshold: %s\n",
                    st_metric_names[c->th[k].metric], st_stage_names[c->th[k].stage], v, l);
    }
    if (res->stuck) {
        fprintf(stderr, "STUCK %zu pods not Ready:", res->stuck);
        const char *reason;
        json_t *n;
        json_object_foreach(res->stuck_reasons, reason, n) fprintf(stderr, " %s %lld", reason,
                                                                  (long long)json_integer_value(n));
        fprintf(stderr, "\n");
        size_t i;
        json_t *e;
        json_array_foreach(res->stuck_examples, i, e) fprintf(stderr, "  %s\n", json_string_value(e));
    }
    if (res->error_rate > c->max_error_rate)
        fprintf(stderr, "ERROR API error rate %.2f%% above --max-error-rate %.2f%%\n", res->error_rate * 100,
                c->max_error_rate * 100);
}

static void result_release(struct st_result *res)
{
    json_decref(res->version);
    json_decref(res->stuck_reasons);
    json_decref(res->stuck_examples);
    json_decref(res->churn);
    json_decref(res->cleanup);
    for (int st = 0; st < ST_NSTAGES; st++)
        free(res->vals[st]);
    free(res->ready_rel);
}

/* ---------- main ---------- */

static int write_report(const struct st_config *c, const struct st_result *res, struct st_state *s)
{
    struct kc_err err = {0};
    json_t *doc = st_report_json(c, res, s);
    int rc = st_report_write(c->report_dir, c, res, doc, &err);
    json_decref(doc);
    if (rc)
        fprintf(stderr, "kubec stress: %s\n", err.message);
    return rc;
}

static int setup(struct run *r, struct st_config *c, struct kc_err *err)
{
    struct kc_client *cl;
    int rc = kc_client_http_from_kubeconfig(c->kubeconfig, 0, 1, "kubec-stress/v0.1.0", &cl, err);
    if (rc)
        return rc;
    st_api_init(&r->api, cl, c->qps);
    pthread_mutex_init(&r->st.mu, NULL);
    kc_map_init(&r->st.pods);
    r->st.nd = c->deployments;
    r->st.d = calloc((size_t)c->deployments, sizeof *r->st.d);
    r->st.max_pods = (size_t)c->deployments * (size_t)c->replicas * 3 + 1000;
    if (!r->st.d)
        return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
    return 0;
}

static void install_signals(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int kc_stress_main(int argc, char **argv)
{
    static struct st_config cfg; /* large (paths, thresholds): not on the stack */
    struct kc_err err = {0};
    int rc = st_config_from_args(&cfg, argc, argv, &err);
    if (rc == 1)
        return 0;
    if (rc) {
        fprintf(stderr, "kubec stress: %s\n", err.message);
        return 2;
    }
    struct run r = {.c = &cfg};
    struct st_result res = {0};
    make_run_id(r.id, sizeof r.id);
    snprintf(res.run, sizeof res.run, "%s", r.id);
    pthread_mutex_init(&r.err_mu, NULL);
    r.errors = json_array();
    atomic_store(&g_interrupted, false);
    install_signals();
    res.rss_before = res.rss_after = res.rss_peak = -1;
    if ((rc = setup(&r, &cfg, &err))) {
        fprintf(stderr, "kubec stress: %s\n", err.message);
        free(r.st.d);
        json_decref(r.errors);
        return 2;
    }
    json_t *ver = NULL;
    int code;
    if (st_api_call(&r.api, ST_V_GET, "GET", "/version", NULL, NULL, &ver, &code, &err)) {
        fprintf(stderr, "kubec stress: cannot reach the API server: %s\n", err.message);
        rc = 2;
        goto out;
    }
    res.version = ver;
    res.rss_before = read_rss(&r);
    res.rss_peak = res.rss_before;
    fprintf(stderr, "kubec stress: run %s: %d Deployments x %d replicas in %d namespace(s), concurrency %d, qps %s\n",
            r.id, cfg.deployments, cfg.replicas, cfg.namespaces, cfg.concurrency,
            cfg.qps > 0 ? "limited" : "unlimited");
    struct st_watches *ws = NULL;
    if ((rc = create_namespaces(&r, &err)) || (rc = st_watches_start(&r.api, &r.st, r.id, &ws, &err))) {
        fprintf(stderr, "kubec stress: %s\n", err.message);
        rc = 2;
        if (!cfg.keep)
            json_decref(cleanup(&r));
        goto out;
    }
    pthread_t *th = calloc((size_t)cfg.concurrency, sizeof *th);
    int nth = 0;
    struct progress pg = {.tty = isatty(2), .start = st_wall_now()};
    r.deadline = pg.start + cfg.timeout;
    int end = END_INTERRUPTED;
    if (th && !start_workers(&r, -1, th, &nth)) {
        end = watch_progress(&r, &pg, &res.rss_peak);
        join_workers(th, nth);
    }
    res.create_phase_end = st_wall_now();
    print_progress(&r, &pg, res.create_phase_end, true);
    res.timed_out = end == END_TIMEOUT;
    res.interrupted = end == END_INTERRUPTED;
    res.rss_after = read_rss(&r);
    if (res.rss_after > res.rss_peak)
        res.rss_peak = res.rss_after;
    st_state_finalize(&r.st);
    compute(&r, &res); /* figures of the creation phase, before churn adds pods */
    if (cfg.churn && end == END_DONE && th) {
        atomic_store(&r.st.churn_phase, true);
        r.deadline = st_wall_now() + cfg.timeout;
        res.churn = run_churn(&r, th);
    }
    res.end = st_wall_now();
    st_watches_stop(ws);
    free(th);
    /* the figures first (a big run's cleanup can take long), then cleanup, then the outcome */
    compute_api(&r, &res);
    res.errors = r.errors;
    res.exit_code = exit_code(&cfg, &res, true);
    print_warnings(&cfg, &res);
    if (!cfg.json_out) {
        st_report_text(stdout, &cfg, &res);
        fflush(stdout);
    }
    if (cfg.report_dir[0] && !cfg.keep)
        write_report(&cfg, &res, &r.st); /* rewritten below with the cleanup */
    bool cleanup_ok = true;
    if (!cfg.keep) {
        res.cleanup = cleanup(&r);
        cleanup_ok = json_is_true(json_object_get(res.cleanup, "complete"));
        compute_api(&r, &res); /* cleanup's calls count too */
        res.exit_code = exit_code(&cfg, &res, cleanup_ok);
        if (!cleanup_ok)
            fprintf(stderr, "ERROR cleanup did not finish: objects labelled %s=%s are left\n", ST_RUN_LABEL, r.id);
    }
    if (cfg.json_out) {
        json_t *doc = st_report_json(&cfg, &res, &r.st);
        char *s = json_dumps(doc, JSON_INDENT(2));
        if (s)
            puts(s);
        free(s);
        json_decref(doc);
    } else {
        st_report_result(stdout, &res);
    }
    if (cfg.report_dir[0] && write_report(&cfg, &res, &r.st) && !res.exit_code)
        res.exit_code = 2;
    rc = res.exit_code;
out:
    result_release(&res);
    json_decref(r.errors);
    st_state_release(&r.st);
    kc_client_free(r.api.c);
    st_api_release(&r.api);
    pthread_mutex_destroy(&r.err_mu);
    return rc;
}
