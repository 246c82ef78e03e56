/* log.h — one-line log records to stderr: "I1126 15:30:00.123456 component] message".
 * The format follows klog so that operators can grep kubec logs like upstream's. */
#ifndef KC_UTIL_LOG_H
#define KC_UTIL_LOG_H

void kc_log(char level, const char *component, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define kc_info(comp, ...) kc_log('I', comp, __VA_ARGS__)
#define kc_warn(comp, ...) kc_log('W', comp, __VA_ARGS__)
#define kc_error(comp, ...) kc_log('E', comp, __VA_ARGS__)
/* Verbosity from KUBEC_V (default 0); kc_debug prints when it is >= 1. */
int kc_log_verbosity(void);
#define kc_debug(comp, ...) do { if (kc_log_verbosity() >= 1) kc_log('D', comp, __VA_ARGS__); } while (0)

#endif
