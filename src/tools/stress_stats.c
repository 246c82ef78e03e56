/* stress_stats.c — the arithmetic of `kubec stress`: nearest-rank quantiles, the peak of a rate over a
 * sliding window, microsecond RFC 3339 parsing, and reading the kubec.io/timeline annotation. Pure
 * functions, no threads, no allocation beyond what the caller hands in.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/stress_int.h"
#include "util/jsonparse.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* nearest rank: the smallest value with at least p of the values at or below it */
static double rank(const double *v, size_t n, double p)
{
    size_t k = (size_t)ceil(p * (double)n);
    return v[k ? k - 1 : 0];
}

void st_summarize(double *vals, size_t n, struct st_summary *out)
{
    memset(out, 0, sizeof *out);
    out->count = n;
    if (!n)
        return;
    qsort(vals, n, sizeof *vals, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += vals[i];
    out->v[ST_P50] = rank(vals, n, 0.50);
    out->v[ST_P90] = rank(vals, n, 0.90);
    out->v[ST_P99] = rank(vals, n, 0.99);
    out->v[ST_MAX] = vals[n - 1];
    out->v[ST_AVG] = sum / (double)n;
}

size_t st_peak_window(const double *t, size_t n, double w)
{
    size_t best = 0, lo = 0;
    for (size_t hi = 0; hi < n; hi++) {
        while (t[hi] - t[lo] >= w)
            lo++;
        if (hi - lo + 1 > best)
            best = hi - lo + 1;
    }
    return best;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int st_parse_time(const char *s, double *out)
{
    int Y, M, D, h, m, sec;
    if (!s || strlen(s) < 20 || digits(s, 4, &Y) || s[4] != '-' || digits(s + 5, 2, &M) || s[7] != '-' ||
        digits(s + 8, 2, &D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || digits(s + 11, 2, &h) ||
        s[13] != ':' || digits(s + 14, 2, &m) || s[16] != ':' || digits(s + 17, 2, &sec))
        return -1;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return -1;
    const char *p = s + 19;
    double frac = 0, scale = 0.1;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        for (; isdigit((unsigned char)*p); p++, scale /= 10)
            frac += (*p - '0') * scale;
    }
    int off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om))
            return -1;
        off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -1;
    }
    if (*p)
        return -1;
    struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m, .tm_sec = sec};
    time_t t = timegm(&tm);
    *out = (double)t - off + frac;
    return 0;
}

int st_timeline_get(json_t *obj, const char *const *names, size_t n, double *stamps)
{
    json_t *ann = json_object_get(json_object_get(obj, "metadata"), "annotations");
    const char *s = json_string_value(json_object_get(ann, ST_TIMELINE_ANN));
    if (!s)
        return 0;
    json_t *tl = kc_json_loads(s, 0, NULL);
    int found = 0;
    for (size_t i = 0; json_is_object(tl) && i < n; i++) {
        double t;
        if (names[i] && !st_parse_time(json_string_value(json_object_get(tl, names[i])), &t)) {
            stamps[i] = t;
            found++;
        }
    }
    json_decref(tl);
    return found;
}

void st_fmt_dur(double s, char *out, size_t n)
{
    if (s < 0)
        snprintf(out, n, "-");
    else if (s < 1e-3)
        snprintf(out, n, "%.0fus", s * 1e6);
    else if (s < 1)
        snprintf(out, n, "%.1fms", s * 1e3);
    else if (s < 120)
        snprintf(out, n, "%.2fs", s);
    else
        snprintf(out, n, "%.1fm", s / 60);
}

double st_wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
