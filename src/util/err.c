/* err.c — kc_err helpers (see err.h). */
#include "util/err.h"

#include <stdio.h>
#include <string.h>

int kc_err_set(struct kc_err *err, int rc, int code, const char *reason, const char *fmt, ...)
{
    if (!err)
        return rc;
    err->code = code;
    snprintf(err->reason, sizeof err->reason, "%s", reason ? reason : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return rc;
}

void kc_err_clear(struct kc_err *err)
{
    if (err)
        memset(err, 0, sizeof *err);
}
