/* metricsrv.c — `kubec agent --metrics-listen ADDR:PORT`: plain HTTP /metrics (Prometheus text format,
 * the process-wide default registry plus process_* metrics) and /healthz, /livez, /readyz ("ok").
 * Nothing else is served and nothing is read from the request body, so there is no input to bound
 * beyond the URL, which libmicrohttpd already limits.
 * Threads: libmicrohttpd's internal polling thread answers every request.
 */
#include "agent/metricsrv.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util/buf.h"
#include "util/metrics.h"

#define METRICS_MAX (64u << 20)

struct kc_metrics_srv {
    struct MHD_Daemon *d;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type, char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    (void)upload;
    if (!*con_cls) { /* first call: headers only */
        *con_cls = (void *)1;
        return MHD_YES;
    }
    if (*upload_size) { /* a body is ignored */
        *upload_size = 0;
        return MHD_YES;
    }
    *con_cls = NULL;
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return reply(c, 405, "text/plain; charset=utf-8", strdup("only GET is served here\n"), 24);
    if (!strcmp(url, "/metrics")) {
        struct kc_buf b;
        kc_buf_init(&b, METRICS_MAX);
        kc_registry_expose(kc_registry_default(), &b, 1);
        size_t len = 0;
        char *s = kc_buf_steal(&b, &len);
        if (!s)
            return reply(c, 500, "text/plain; charset=utf-8", strdup("out of memory\n"), 14);
        return reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", s, len);
    }
    if (!strcmp(url, "/healthz") || !strcmp(url, "/livez") || !strcmp(url, "/readyz"))
        return reply(c, 200, "text/plain; charset=utf-8", strdup("ok"), 2);
    return reply(c, 404, "text/plain; charset=utf-8", strdup("only /metrics and /healthz are served here\n"), 43);
}

/* "host:port", "[v6]:port" or ":port" → socket address. */
static int resolve(const char *listen, struct sockaddr_storage *ss, struct kc_err *err)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || !colon[1] || (size_t)(colon - listen) >= sizeof host)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "--metrics-listen %.200s: want ADDR:PORT", listen);
    size_t hl = (size_t)(colon - listen);
    memcpy(host, listen, hl);
    host[hl] = 0;
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = 0;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res = NULL;
    if (getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res) || !res)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "--metrics-listen %.200s: cannot resolve it", listen);
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

int kc_metrics_srv_start(const char *listen, struct kc_metrics_srv **out, struct kc_err *err)
{
    struct sockaddr_storage ss = {0};
    int rc = resolve(listen, &ss, err);
    if (rc)
        return rc;
    struct kc_metrics_srv *s = calloc(1, sizeof *s);
    if (!s)
        return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_CONNECTION_LIMIT, (unsigned)32,
                            MHD_OPTION_END);
    if (!s->d) {
        free(s);
        return kc_err_set(err, KC_EIO, 0, "InternalError", "--metrics-listen %.200s: cannot listen there", listen);
    }
    *out = s;
    return 0;
}

void kc_metrics_srv_stop(struct kc_metrics_srv *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->d);
    free(s);
}
