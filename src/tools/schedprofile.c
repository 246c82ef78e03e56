/* schedprofile.c — `kubec scheduler-profile`: a per-plugin latency profile of the running scheduler.
 *
 * The scheduler (src/scheduler/scheduler.c) publishes its counters once a second while it works, as
 * JSON in the ConfigMap kube-system/kubec-scheduler-profile-<schedulerName>: per filter/score plugin the
 * exact number of calls plus the calls and seconds of the timed attempts, and a ring of the slowest pods
 * of the last seconds (each with a sequence number). This tool reads that document through the API
 * server (kubeconfig), at the start of the window and every half second until --duration has passed,
 * then prints the differences as kubectl-style tables: plugins by estimated time, and the slowest pods
 * scheduled in the window (merged from every read, by sequence number). It works the same whether the
 * scheduler is a thread of `kubec server` or a separate `kubec scheduler`.
 *
 * Single-threaded; every buffer is bounded (MAX_PLUGINS rows, MAX_PODS slow pods kept).
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client.h"
#include "scheduler/scheduler.h"
#include "util/timeutil.h"
#include "util/jsonparse.h"

#define MAX_PLUGINS 32
#define MAX_PODS 512
#define POLL_S 0.5

struct prof_opts {
    const char *kubeconfig;
    char kubeconfig_buf[1024];
    const char *scheduler_name;
    double duration;
    int top;
};

struct slow_pod {
    long long seq;
    char pod[256];
    double seconds;
    int attempts;
    char dominant[96], ext[24];
    bool sampled;
    double dominant_s;
};

struct slow_set {
    struct slow_pod v[MAX_PODS];
    int n;
};

static int usage(FILE *f)
{
    fprintf(f, "Usage: kubec scheduler-profile [--duration 60s] [--kubeconfig FILE] [--scheduler-name NAME] [--top N]\n\n"
               "Profiles the running scheduler for --duration: per filter/score plugin the calls and time spent,\n"
               "and the slowest pods scheduled meanwhile with the plugin that dominated them. Reads the profile\n"
               "the scheduler publishes in the ConfigMap kube-system/kubec-scheduler-profile-NAME.\n\n"
               "  --duration D          the window (default 60s; e.g. 500ms, 10s, 2m)\n"
               "  --kubeconfig FILE     default $KUBECONFIG, then ~/.kube/config\n"
               "  --scheduler-name N    the profile of this scheduler (default default-scheduler)\n"
               "  --top N               slowest pods shown (default 10, at most %d)\n",
            MAX_PODS);
    return f == stdout ? 0 : 2;
}

static int parse_args(int argc, char **argv, struct prof_opts *o)
{
    *o = (struct prof_opts){.scheduler_name = "default-scheduler", .duration = 60, .top = 10};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return 1;
        const char *eq = strchr(a, '=');
        char flag[64];
        snprintf(flag, sizeof flag, "%.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
        if (eq)
            v = eq + 1;
        else if (i + 1 < argc)
            v = argv[++i];
        if (!v) {
            fprintf(stderr, "scheduler-profile: %s needs a value\n", flag);
            return -1;
        }
        if (!strcmp(flag, "--duration")) {
            if (kc_parse_duration(v, &o->duration) || o->duration <= 0 || o->duration > 86400) {
                fprintf(stderr, "scheduler-profile: invalid --duration %s\n", v);
                return -1;
            }
        } else if (!strcmp(flag, "--kubeconfig")) {
            o->kubeconfig = v;
        } else if (!strcmp(flag, "--scheduler-name")) {
            if (strlen(v) > 200) {
                fprintf(stderr, "scheduler-profile: --scheduler-name too long\n");
                return -1;
            }
            o->scheduler_name = v;
        } else if (!strcmp(flag, "--top")) {
            char *end;
            long t = strtol(v, &end, 10);
            if (*end || t < 0 || t > MAX_PODS) {
                fprintf(stderr, "scheduler-profile: invalid --top %s\n", v);
                return -1;
            }
            o->top = (int)t;
        } else {
            fprintf(stderr, "scheduler-profile: unknown flag %s\n", flag);
            return -1;
        }
    }
    if (!o->kubeconfig) {
        const char *env = getenv("KUBECONFIG"), *home = getenv("HOME");
        if (env && *env)
            snprintf(o->kubeconfig_buf, sizeof o->kubeconfig_buf, "%s", env);
        else
            snprintf(o->kubeconfig_buf, sizeof o->kubeconfig_buf, "%s/.kube/config", home ? home : ".");
        o->kubeconfig = o->kubeconfig_buf;
    }
    return 0;
}

/* The published document, or NULL when there is none yet (*rc 0) or the read failed (*rc < 0). */
static json_t *read_profile(struct kc_client *c, const char *sched, int *rc, struct kc_err *err)
{
    char name[253], path[600];
    snprintf(name, sizeof name, "kubec-scheduler-profile-%.200s", sched);
    kc_path(path, sizeof path, "", "v1", "configmaps", "kube-system", name, NULL);
    json_t *cm = NULL;
    *rc = kc_client_get(c, path, &cm, err);
    if (*rc == KC_ENOTFOUND) {
        *rc = 0;
        return NULL;
    }
    if (*rc)
        return NULL;
    const char *text = json_string_value(json_object_get(json_object_get(cm, "data"), "profile.json"));
    json_t *doc = text ? kc_json_loads(text, 0, NULL) : NULL;
    json_decref(cm);
    return doc;
}

static double num(json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }

static void copy_str(char *dst, size_t n, json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    snprintf(dst, n, "%s", v ? v : "");
}

/* Adds the doc's slow pods finished after seq0 (dedup by seq; when full, the fastest is replaced). */
static void merge_slow(struct slow_set *set, json_t *doc, long long seq0)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(doc, "slowest"), i, r)
    {
        long long seq = (long long)num(r, "seq");
        if (seq <= seq0)
            continue;
        bool dup = false;
        for (int k = 0; k < set->n && !dup; k++)
            dup = set->v[k].seq == seq;
        if (dup)
            continue;
        int slot = set->n;
        if (set->n == MAX_PODS) {
            slot = 0;
            for (int k = 1; k < MAX_PODS; k++)
                if (set->v[k].seconds < set->v[slot].seconds)
                    slot = k;
            if (set->v[slot].seconds >= num(r, "seconds"))
                continue;
        } else {
            set->n++;
        }
        struct slow_pod *p = &set->v[slot];
        p->seq = seq;
        copy_str(p->pod, sizeof p->pod, r, "pod");
        p->seconds = num(r, "seconds");
        p->attempts = (int)num(r, "attempts");
        copy_str(p->dominant, sizeof p->dominant, r, "dominant");
        copy_str(p->ext, sizeof p->ext, r, "extensionPoint");
        p->sampled = json_is_true(json_object_get(r, "sampled"));
        p->dominant_s = num(r, "dominantSeconds");
    }
}

/* "12.3ms"-style durations (ASCII, so that columns line up). */
static const char *fmt_dur(double s, char *buf, size_t n)
{
    if (s <= 0)
        snprintf(buf, n, "0");
    else if (s < 1e-6)
        snprintf(buf, n, "%.0fns", s * 1e9);
    else if (s < 1e-3)
        snprintf(buf, n, "%.1fus", s * 1e6);
    else if (s < 1)
        snprintf(buf, n, "%.2fms", s * 1e3);
    else
        snprintf(buf, n, "%.2fs", s);
    return buf;
}

struct plugin_row {
    char plugin[64], ext[24];
    long long calls, timed_calls;
    double timed_s, est_s;
};

static int cmp_row(const void *a, const void *b)
{
    double x = ((const struct plugin_row *)a)->est_s, y = ((const struct plugin_row *)b)->est_s;
    return x < y ? 1 : x > y ? -1 : 0;
}

static int cmp_slow(const void *a, const void *b)
{
    double x = ((const struct slow_pod *)a)->seconds, y = ((const struct slow_pod *)b)->seconds;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The plugin rows of doc1 minus doc0 (doc0 may be NULL: nothing before). */
static int plugin_deltas(json_t *doc0, json_t *doc1, struct plugin_row *rows)
{
    int n = 0;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(doc1, "plugins"), i, p)
    {
        if (n == MAX_PLUGINS)
            break;
        struct plugin_row *r = &rows[n];
        copy_str(r->plugin, sizeof r->plugin, p, "plugin");
        copy_str(r->ext, sizeof r->ext, p, "extensionPoint");
        r->calls = (long long)num(p, "calls");
        r->timed_calls = (long long)num(p, "timedCalls");
        r->timed_s = num(p, "timedSeconds");
        size_t k;
        json_t *q;
        json_array_foreach(json_object_get(doc0, "plugins"), k, q)
        {
            const char *qp = json_string_value(json_object_get(q, "plugin"));
            const char *qe = json_string_value(json_object_get(q, "extensionPoint"));
            if (qp && qe && !strcmp(qp, r->plugin) && !strcmp(qe, r->ext)) {
                r->calls -= (long long)num(q, "calls");
                r->timed_calls -= (long long)num(q, "timedCalls");
                r->timed_s -= num(q, "timedSeconds");
            }
        }
        if (r->calls <= 0)
            continue; /* not run in the window */
        r->est_s = r->timed_calls > 0 ? r->timed_s * (double)r->calls / (double)r->timed_calls : 0;
        n++;
    }
    qsort(rows, (size_t)n, sizeof *rows, cmp_row);
    return n;
}

static void print_report(const struct prof_opts *o, json_t *doc0, json_t *doc1, struct slow_set *slow)
{
    double window = num(doc1, "time") - (doc0 ? num(doc0, "time") : num(doc1, "time") - o->duration);
    long long attempts = (long long)(num(doc1, "attempts") - num(doc0, "attempts"));
    long long timed = (long long)(num(doc1, "timedAttempts") - num(doc0, "timedAttempts"));
    long long finished = (long long)(num(doc1, "finished") - num(doc0, "finished"));
    char a[32], b[32], c[32], d[32];
    printf("Scheduler %s: %lld attempts (%lld timed per plugin), %lld pods scheduled, in %.1f s; algorithm time %s\n\n",
           o->scheduler_name, attempts, timed, finished, window,
           fmt_dur(num(doc1, "attemptSeconds") - num(doc0, "attemptSeconds"), a, sizeof a));
    struct plugin_row rows[MAX_PLUGINS];
    int n = plugin_deltas(doc0, doc1, rows);
    printf("%-34s %-16s %12s %12s %12s %10s %12s\n", "PLUGIN", "EXTENSION POINT", "CALLS", "TIMED CALLS", "TIMED TIME",
           "AVG/CALL", "EST. TIME");
    for (int i = 0; i < n; i++)
        printf("%-34s %-16s %12lld %12lld %12s %10s %12s\n", rows[i].plugin, rows[i].ext, rows[i].calls,
               rows[i].timed_calls, fmt_dur(rows[i].timed_s, a, sizeof a),
               rows[i].timed_calls ? fmt_dur(rows[i].timed_s / (double)rows[i].timed_calls, b, sizeof b) : "-",
               rows[i].timed_calls ? fmt_dur(rows[i].est_s, c, sizeof c) : "-");
    qsort(slow->v, (size_t)slow->n, sizeof slow->v[0], cmp_slow);
    printf("\n%-48s %16s %9s   %s\n", "SLOWEST PODS", "SCHEDULING TIME", "ATTEMPTS", "DOMINATED BY");
    for (int i = 0; i < slow->n && i < o->top; i++) {
        const struct slow_pod *p = &slow->v[i];
        char dom[160];
        if (p->sampled)
            snprintf(dom, sizeof dom, "%s (%s, %s)", p->dominant, p->ext, fmt_dur(p->dominant_s, d, sizeof d));
        else
            snprintf(dom, sizeof dom, "%s (%s; plugins not timed)", p->ext, fmt_dur(p->dominant_s, d, sizeof d));
        printf("%-48s %16s %9d   %s\n", p->pod, fmt_dur(p->seconds, a, sizeof a), p->attempts, dom);
    }
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

int kc_scheduler_profile_main(int argc, char **argv)
{
    struct prof_opts o;
    int a = parse_args(argc, argv, &o);
    if (a)
        return usage(a > 0 ? stdout : stderr);
    struct kc_client *c = NULL;
    struct kc_err err = {0};
    if (kc_client_http_from_kubeconfig(o.kubeconfig, 0, 1, "kubec-scheduler-profile/v0.1.0", &c, &err)) {
        fprintf(stderr, "scheduler-profile: %s: %s\n", o.kubeconfig, err.message);
        return 1;
    }
    int rc = 0;
    json_t *doc0 = read_profile(c, o.scheduler_name, &rc, &err), *last = NULL;
    if (rc) {
        fprintf(stderr, "scheduler-profile: reading the profile: %s\n", err.message);
        kc_client_free(c);
        return 1;
    }
    long long seq0 = (long long)num(doc0, "finished");
    struct slow_set *slow = calloc(1, sizeof *slow);
    double end = kc_mono_now() + o.duration;
    for (;;) {
        double left = end - kc_mono_now();
        if (left <= 0)
            break;
        sleep_s(left < POLL_S ? left : POLL_S);
        json_t *doc = read_profile(c, o.scheduler_name, &rc, &err);
        if (!doc)
            continue; /* not published yet, or a failed read: the next one may do */
        merge_slow(slow, doc, seq0);
        json_decref(last);
        last = doc;
    }
    int ret = 0;
    if (!last || num(last, "attempts") == num(doc0, "attempts")) {
        printf("No scheduling attempts by %s in the last %.1f s (the profile is the ConfigMap "
               "kube-system/kubec-scheduler-profile-%s, published while the scheduler works).\n",
               o.scheduler_name, o.duration, o.scheduler_name);
    } else {
        print_report(&o, doc0, last, slow);
    }
    free(slow);
    json_decref(doc0);
    json_decref(last);
    kc_client_free(c);
    return ret;
}
