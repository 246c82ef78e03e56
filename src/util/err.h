/* err.h — how failures travel in kubec.
 *
 * Functions return 0 on success or a negative KC_E* code; the human-readable
 * message travels beside it in a struct kc_err that the caller owns. At the
 * HTTP edge a kc_err maps one-to-one onto a Kubernetes Status object:
 * (code → Status.code, reason → Status.reason, message → Status.message).
 * Library code fills the kc_err and does not log; the caller logs once.
 */
#ifndef KC_UTIL_ERR_H
#define KC_UTIL_ERR_H

#include <stdarg.h>

enum {
    KC_OK = 0,
    KC_ENOTFOUND = -1,   /* key / object absent                        → 404 NotFound */
    KC_EEXISTS = -2,     /* create of an existing key                  → 409 AlreadyExists */
    KC_ECONFLICT = -3,   /* compare-and-swap on a stale revision       → 409 Conflict */
    KC_ECOMPACTED = -4,  /* revision older than the compacted one      → 410 Expired */
    KC_EIO = -5,         /* storage or system failure                  → 500 InternalError */
    KC_ENOMEM = -6,      /* allocation failed                          → 500/503 */
    KC_EINVAL = -7,      /* caller passed something malformed          → 400 BadRequest */
    KC_EFUTURE = -8,     /* revision newer than the store has          → 504 Timeout (as etcd "future rev") */
    KC_ECLOSED = -9,     /* the store / watch is shutting down         → 503 */
    KC_EINVALID = -10,   /* semantic validation failed                 → 422 Invalid */
    KC_ETOOLARGE = -11,  /* input over a documented limit              → 413 */
};

/* A failure as data. code is the HTTP status code to use (0 = derive from
 * the KC_E* return value); reason is a Kubernetes StatusReason
 * ("NotFound", "Conflict", "Invalid", ...); message is for humans. */
struct kc_err {
    int code;
    char reason[48];
    char message[1024];
};

/* Sets err (if non-NULL) and returns rc, so callers can write
 * `return kc_err_set(err, KC_ECONFLICT, 409, "Conflict", "...", ...)`. */
int kc_err_set(struct kc_err *err, int rc, int code, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void kc_err_clear(struct kc_err *err);

#endif
