/* timeutil.c — RFC 3339 formatting/parsing and kubectl's human durations. */
#include "util/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

void kc_time_rfc3339(time_t t, char *out, size_t n)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void kc_time_rfc3339_micro(const struct timespec *ts, char *out, size_t n)
{
    struct tm tm;
    gmtime_r(&ts->tv_sec, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%s.%06ldZ", base, ts->tv_nsec / 1000);
}

int kc_time_parse(const char *s, time_t *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return -1;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    long off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh, mm;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2)
            return -1;
        off = (hh * 3600L + mm * 60L) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -1;
    }
    if (*p)
        return -1;
    *t = timegm(&tm) - off;
    return 0;
}

void kc_time_human_duration(int64_t s, char *out, size_t n)
{
    if (s < 0)
        s = 0;
    if (s < 120) {
        snprintf(out, n, "%llds", (long long)s);
        return;
    }
    int64_t m = s / 60;
    if (m < 10) {
        if (s % 60)
            snprintf(out, n, "%lldm%llds", (long long)m, (long long)(s % 60));
        else
            snprintf(out, n, "%lldm", (long long)m);
        return;
    }
    if (m < 180) {
        snprintf(out, n, "%lldm", (long long)m);
        return;
    }
    int64_t h = s / 3600;
    if (h < 8) {
        if (m % 60)
            snprintf(out, n, "%lldh%lldm", (long long)h, (long long)(m % 60));
        else
            snprintf(out, n, "%lldh", (long long)h);
        return;
    }
    if (h < 48) {
        snprintf(out, n, "%lldh", (long long)h);
        return;
    }
    if (h < 24 * 8) {
        if (h % 24)
            snprintf(out, n, "%lldd%lldh", (long long)(h / 24), (long long)(h % 24));
        else
            snprintf(out, n, "%lldd", (long long)(h / 24));
        return;
    }
    if (h < 24 * 365 * 2) {
        snprintf(out, n, "%lldd", (long long)(h / 24));
        return;
    }
    if (h < 24 * 365 * 8) {
        int64_t dy = (h / 24) % 365;
        if (dy)
            snprintf(out, n, "%lldy%lldd", (long long)(h / 24 / 365), (long long)dy);
        else
            snprintf(out, n, "%lldy", (long long)(h / 24 / 365));
        return;
    }
    snprintf(out, n, "%lldy", (long long)(h / 24 / 365));
}

double kc_mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct timespec kc_deadline(clockid_t clk, double seconds)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    if (!(seconds > 0))
        return ts;
    long long ns = (long long)ts.tv_nsec + (long long)((seconds - floor(seconds)) * 1e9);
    ts.tv_sec += (time_t)floor(seconds) + (time_t)(ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    return ts;
}

int kc_parse_duration(const char *s, double *seconds)
{
    if (!s || !*s)
        return -1;
    double total = 0;
    const char *p = s;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || !isfinite(v) || v < 0)
            return -1;
        p = end;
        double mul;
        if (!*p)
            mul = p == s + strlen(s) && total == 0 ? 1 : -1; /* a bare number: seconds */
        else if (!strncmp(p, "ms", 2))
            mul = 1e-3, p += 2;
        else if (!strncmp(p, "us", 2))
            mul = 1e-6, p += 2;
        else if (!strncmp(p, "\xc2\xb5s", 3))
            mul = 1e-6, p += 3;
        else if (!strncmp(p, "ns", 2))
            mul = 1e-9, p += 2;
        else if (*p == 's')
            mul = 1, p++;
        else if (*p == 'm')
            mul = 60, p++;
        else if (*p == 'h')
            mul = 3600, p++;
        else
            return -1;
        if (mul < 0)
            return -1;
        total += v * mul;
    }
    if (total > 100.0 * 365 * 86400)
        return -1;
    *seconds = total;
    return 0;
}
