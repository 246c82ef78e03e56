/* metricsrv.h — a small plain-HTTP server for /metrics and /healthz (internal to src/agent; used by
 * `kubec agent --metrics-listen ADDR:PORT`). */
#ifndef KC_AGENT_METRICSRV_H
#define KC_AGENT_METRICSRV_H

#include "util/err.h"

struct kc_metrics_srv;

/* listen: "127.0.0.1:10255", ":10255", "[::1]:10255". Returns 0 or KC_EINVAL / KC_EIO / KC_ENOMEM. */
int kc_metrics_srv_start(const char *listen, struct kc_metrics_srv **out, struct kc_err *err);
void kc_metrics_srv_stop(struct kc_metrics_srv *s);

#endif
