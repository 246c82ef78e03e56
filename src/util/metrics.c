/* metrics.c — Prometheus registry (see metrics.h).
 *
 * Data structure: registry → array of families; family → series table (string key of the joined
 * label values → series) guarded by a rwlock that is only written when a new label combination
 * appears; series → atomic counters.
 *
 * Built with -DKUBEC_NO_METRICS, every record call (counter/gauge/histogram updates and the kc_metric_*
 * conveniences) is a no-op; families and series still exist, so /metrics shows zeros. That build exists
 * only to measure what recording costs (docs/observability.md); it is off by default.
 */
#include "util/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "util/map.h"

#define MAX_LABELS 12
#define MAX_BUCKETS 32

struct kc_series {
    struct kc_family *fam;
    char *values[MAX_LABELS];
    _Atomic uint64_t value;              /* counter/gauge: double bits */
    _Atomic uint64_t buckets[MAX_BUCKETS]; /* histogram: non-cumulative counts per bucket (+Inf last) */
    _Atomic uint64_t count;
    _Atomic uint64_t sum;                /* double bits */
};

struct kc_family {
    enum kc_metric_type type;
    char *name, *help;
    char *labels[MAX_LABELS];
    int nlabels;
    double bounds[MAX_BUCKETS];
    size_t nbounds;
    pthread_rwlock_t lock;
    struct kc_map series;   /* joined values → struct kc_series* */
    struct kc_series **order;
    size_t nseries, cap;
};

struct collector {
    void (*fn)(void *);
    void *ctx;
};

struct kc_registry {
    pthread_mutex_t mu;
    struct kc_family **fam;
    size_t nfam, cap;
    struct collector col[32];
    int ncol;
    double start_time;
};

const double kc_apiserver_buckets[] = {0.005, 0.025, 0.05, 0.1,  0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5,
                                       2,     3,     4,    5,    6,   8,   10,  15,  20,  30,   45, 60};
const size_t kc_apiserver_nbuckets = sizeof kc_apiserver_buckets / sizeof kc_apiserver_buckets[0];

static double bits_to_d(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static uint64_t d_to_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

static void atomic_add_double(_Atomic uint64_t *p, double v)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed), nw;
    do {
        nw = d_to_bits(bits_to_d(old) + v);
    } while (!atomic_compare_exchange_weak_explicit(p, &old, nw, memory_order_relaxed, memory_order_relaxed));
}

struct kc_registry *kc_registry_new(void)
{
    struct kc_registry *r = calloc(1, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r->start_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    return r;
}

static pthread_once_t def_once = PTHREAD_ONCE_INIT;
static struct kc_registry *def_reg;
static void def_init(void) { def_reg = kc_registry_new(); }
struct kc_registry *kc_registry_default(void)
{
    pthread_once(&def_once, def_init);
    return def_reg;
}

static void family_free(struct kc_family *f)
{
    for (size_t i = 0; i < f->nseries; i++) {
        for (int k = 0; k < f->nlabels; k++)
            free(f->order[i]->values[k]);
        free(f->order[i]);
    }
    free(f->order);
    kc_map_release(&f->series);
    for (int k = 0; k < f->nlabels; k++)
        free(f->labels[k]);
    free(f->name);
    free(f->help);
    pthread_rwlock_destroy(&f->lock);
    free(f);
}

void kc_registry_free(struct kc_registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nfam; i++)
        family_free(r->fam[i]);
    free(r->fam);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

struct kc_family *kc_family_new(struct kc_registry *r, enum kc_metric_type type, const char *name, const char *help,
                                const char *const *labels, const double *buckets, size_t nbuckets)
{
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->nfam; i++)
        if (!strcmp(r->fam[i]->name, name)) {
            pthread_mutex_unlock(&r->mu);
            return r->fam[i]; /* registering twice returns the same family */
        }
    struct kc_family *f = calloc(1, sizeof *f);
    f->type = type;
    f->name = strdup(name);
    f->help = strdup(help);
    for (int i = 0; labels && labels[i] && i < MAX_LABELS; i++)
        f->labels[f->nlabels++] = strdup(labels[i]);
    if (type == KC_HISTOGRAM) {
        f->nbounds = nbuckets < MAX_BUCKETS - 1 ? nbuckets : MAX_BUCKETS - 1;
        memcpy(f->bounds, buckets, f->nbounds * sizeof *buckets);
    }
    pthread_rwlock_init(&f->lock, NULL);
    kc_map_init(&f->series);
    if (r->nfam == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 32;
        r->fam = realloc(r->fam, r->cap * sizeof *r->fam);
    }
    r->fam[r->nfam++] = f;
    pthread_mutex_unlock(&r->mu);
    return f;
}

static void join_values(const struct kc_family *f, const char *const *values, char *key, size_t n)
{
    size_t len = 0;
    for (int i = 0; i < f->nlabels; i++) {
        const char *v = values && values[i] ? values[i] : "";
        size_t l = strlen(v);
        if (len + l + 2 > n) /* as snprintf did: a label set too long for key is cut */
            l = n - len > 2 ? n - len - 2 : 0;
        memcpy(key + len, v, l);
        len += l;
        if (len + 1 < n)
            key[len++] = '\x1f';
    }
    key[len] = 0;
}

struct kc_series *kc_series_get(struct kc_family *f, const char *const *values)
{
    char key[1024];
    join_values(f, values, key, sizeof key);
    pthread_rwlock_rdlock(&f->lock);
    struct kc_series *s = kc_map_get(&f->series, key);
    pthread_rwlock_unlock(&f->lock);
    if (s)
        return s;
    pthread_rwlock_wrlock(&f->lock);
    s = kc_map_get(&f->series, key);
    if (!s) {
        s = calloc(1, sizeof *s);
        s->fam = f;
        for (int i = 0; i < f->nlabels; i++)
            s->values[i] = strdup(values && values[i] ? values[i] : "");
        kc_map_put(&f->series, key, s, NULL);
        if (f->nseries == f->cap) {
            f->cap = f->cap ? f->cap * 2 : 8;
            f->order = realloc(f->order, f->cap * sizeof *f->order);
        }
        f->order[f->nseries++] = s;
    }
    pthread_rwlock_unlock(&f->lock);
    return s;
}

/* Recording switched off at compile time (see the file comment); the code below stays compiled. */
#ifdef KUBEC_NO_METRICS
#define KC_RECORD_OFF 1
#else
#define KC_RECORD_OFF 0
#endif

void kc_counter_add(struct kc_series *s, double v)
{
    if (KC_RECORD_OFF)
        return;
    atomic_add_double(&s->value, v);
}

void kc_gauge_add(struct kc_series *s, double v)
{
    if (KC_RECORD_OFF)
        return;
    atomic_add_double(&s->value, v);
}

void kc_gauge_set(struct kc_series *s, double v)
{
    if (KC_RECORD_OFF)
        return;
    atomic_store_explicit(&s->value, d_to_bits(v), memory_order_relaxed);
}

static void hist_observe(struct kc_family *f, struct kc_series *s, double v)
{
    if (KC_RECORD_OFF)
        return;
    size_t i = 0;
    while (i < f->nbounds && v > f->bounds[i])
        i++;
    atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
    atomic_add_double(&s->sum, v);
}

void kc_histogram_observe(struct kc_series *s, double v) { hist_observe(s->fam, s, v); }

/* The series of f named by the label values that follow v in the caller's argument list. */
static struct kc_series *series_va(struct kc_family *f, va_list ap)
{
    const char *vals[MAX_LABELS];
    for (int i = 0; i < f->nlabels; i++)
        vals[i] = va_arg(ap, const char *);
    return kc_series_get(f, vals);
}

void kc_metric_inc(struct kc_family *f, double v, ...)
{
    if (KC_RECORD_OFF)
        return;
    va_list ap;
    va_start(ap, v);
    kc_counter_add(series_va(f, ap), v);
    va_end(ap);
}

void kc_metric_set(struct kc_family *f, double v, ...)
{
    if (KC_RECORD_OFF)
        return;
    va_list ap;
    va_start(ap, v);
    kc_gauge_set(series_va(f, ap), v);
    va_end(ap);
}

void kc_metric_observe(struct kc_family *f, double v, ...)
{
    if (KC_RECORD_OFF)
        return;
    va_list ap;
    va_start(ap, v);
    hist_observe(f, series_va(f, ap), v);
    va_end(ap);
}

void kc_registry_on_collect(struct kc_registry *r, void (*fn)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&r->mu);
    if (r->ncol < 32)
        r->col[r->ncol++] = (struct collector){fn, ctx};
    pthread_mutex_unlock(&r->mu);
}

void kc_registry_remove_collect(struct kc_registry *r, void (*fn)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->ncol; i++)
        if (r->col[i].fn == fn && r->col[i].ctx == ctx) {
            r->col[i] = r->col[--r->ncol];
            break;
        }
    pthread_mutex_unlock(&r->mu);
}

static void put_escaped(struct kc_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            kc_buf_putc(b, '\\');
        if (*s == '\n') {
            kc_buf_puts(b, "\\n");
            continue;
        }
        kc_buf_putc(b, *s);
    }
}

static void put_labels(struct kc_buf *b, const struct kc_family *f, const struct kc_series *s, const char *le)
{
    if (!f->nlabels && !le)
        return;
    kc_buf_putc(b, '{');
    for (int i = 0; i < f->nlabels; i++) {
        kc_buf_printf(b, "%s%s=\"", i ? "," : "", f->labels[i]);
        put_escaped(b, s->values[i]);
        kc_buf_putc(b, '"');
    }
    if (le)
        kc_buf_printf(b, "%sle=\"%s\"", f->nlabels ? "," : "", le);
    kc_buf_putc(b, '}');
}

static void put_num(struct kc_buf *b, double v)
{
    if (isinf(v))
        kc_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    else if (v == (double)(long long)v && fabs(v) < 1e15)
        kc_buf_printf(b, "%lld", (long long)v);
    else
        kc_buf_printf(b, "%.9g", v);
}

static void expose_family(struct kc_buf *b, struct kc_family *f)
{
    static const char *types[] = {"counter", "gauge", "histogram"};
    kc_buf_printf(b, "# HELP %s ", f->name);
    put_escaped(b, f->help);
    kc_buf_printf(b, "\n# TYPE %s %s\n", f->name, types[f->type]);
    pthread_rwlock_rdlock(&f->lock);
    for (size_t i = 0; i < f->nseries; i++) {
        struct kc_series *s = f->order[i];
        if (f->type != KC_HISTOGRAM) {
            kc_buf_puts(b, f->name);
            put_labels(b, f, s, NULL);
            kc_buf_putc(b, ' ');
            put_num(b, bits_to_d(atomic_load(&s->value)));
            kc_buf_putc(b, '\n');
            continue;
        }
        uint64_t cum = 0;
        for (size_t k = 0; k <= f->nbounds; k++) {
            cum += atomic_load(&s->buckets[k]);
            char le[32];
            if (k == f->nbounds)
                snprintf(le, sizeof le, "+Inf");
            else
                snprintf(le, sizeof le, "%.15g", f->bounds[k]);
            kc_buf_printf(b, "%s_bucket", f->name);
            put_labels(b, f, s, le);
            kc_buf_printf(b, " %llu\n", (unsigned long long)cum);
        }
        kc_buf_printf(b, "%s_sum", f->name);
        put_labels(b, f, s, NULL);
        kc_buf_putc(b, ' ');
        put_num(b, bits_to_d(atomic_load(&s->sum)));
        kc_buf_printf(b, "\n%s_count", f->name);
        put_labels(b, f, s, NULL);
        kc_buf_printf(b, " %llu\n", (unsigned long long)atomic_load(&s->count));
    }
    pthread_rwlock_unlock(&f->lock);
}

static void expose_process(struct kc_registry *r, struct kc_buf *b)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    long psz = sysconf(_SC_PAGESIZE);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                 (double)ru.ru_stime.tv_usec / 1e6;
    kc_buf_printf(b, "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
                     "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.6f\n", cpu);
    kc_buf_printf(b, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                     "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %ld\n", rss * psz);
    kc_buf_printf(b, "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
                     "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %ld\n", pages * psz);
    kc_buf_printf(b, "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
                     "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.3f\n", r->start_time);
}

int kc_registry_expose(struct kc_registry *r, struct kc_buf *out, int process)
{
    pthread_mutex_lock(&r->mu);
    struct collector col[32];
    int ncol = r->ncol;
    memcpy(col, r->col, sizeof col);
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < ncol; i++)
        col[i].fn(col[i].ctx);
    pthread_mutex_lock(&r->mu);
    size_t n = r->nfam;
    struct kc_family **fams = malloc((n + 1) * sizeof *fams);
    memcpy(fams, r->fam, n * sizeof *fams);
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < n; i++)
        expose_family(out, fams[i]);
    free(fams);
    if (process)
        expose_process(r, out);
    return 0;
}

size_t kc_buckets_exp(double start, double factor, size_t count, double *out)
{
    double v = start;
    for (size_t i = 0; i < count; i++) {
        out[i] = v;
        v *= factor;
    }
    return count;
}
