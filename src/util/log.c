/* log.c — klog-like lines on stderr; one fprintf per record so lines never interleave. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int kc_log_verbosity(void)
{
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("KUBEC_V");
        v = e ? atoi(e) : 0;
    }
    return v;
}

void kc_log(char level, const char *component, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%c%02d%02d %02d:%02d:%02d.%06ld %s] %s\n", level, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
            tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000, component, msg);
}
