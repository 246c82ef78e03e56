/* timeutil.h — time stamps in the forms Kubernetes uses. */
#ifndef KC_UTIL_TIMEUTIL_H
#define KC_UTIL_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* "2026-11-26T15:30:00Z" (metav1.Time, second precision). out must hold 21+ bytes. */
void kc_time_rfc3339(time_t t, char *out, size_t n);
/* "2026-11-26T15:30:00.123456Z" (metav1.MicroTime). out must hold 28+ bytes. */
void kc_time_rfc3339_micro(const struct timespec *ts, char *out, size_t n);
/* Parses RFC 3339 (with or without fraction, Z or ±hh:mm). Returns 0 and sets *t, or -1. */
int kc_time_parse(const char *s, time_t *t);
/* kubectl's "AGE" text: 5s, 3m20s, 12m, 5h3m, 3d4h, 400d ... (k8s.io/apimachinery duration.HumanDuration). */
void kc_time_human_duration(int64_t seconds, char *out, size_t n);
/* A duration as flags and annotations write it, Go style: "90s", "1.5s", "500ms", "250us", "1h30m",
 * "2m", and a bare number means seconds. Returns 0 and *seconds, or -1 (empty, negative, unknown unit,
 * not finite). The one parser of every --*-period, --timeout and duration annotation in kubec. */
int kc_parse_duration(const char *s, double *seconds);
/* Monotonic seconds as a double, for latency measurement. */
double kc_mono_now(void);
/* The absolute time `seconds` from now on clock clk (negative counts as 0): the deadline of a
 * pthread_cond_timedwait or sem_timedwait on a condition variable using that clock. */
struct timespec kc_deadline(clockid_t clk, double seconds);

#endif
