/* runc_probe.c — startup, readiness and liveness probes of running containers (exec, httpGet,
 * tcpSocket), with upstream's timing fields: initialDelaySeconds (0), periodSeconds (10),
 * timeoutSeconds (1), successThreshold (1), failureThreshold (3).
 *
 * One probe thread wakes every PROBE_TICK_MS, picks the probes that are due (under r->mu), runs them
 * one after another without the lock, and stores results back by container id (the container may
 * have been removed meanwhile). Semantics as the kubelet's prober:
 *   - while a startup probe has not succeeded, readiness and liveness do not run; started=false;
 *     failureThreshold startup failures kill the container (then restartPolicy decides);
 *   - readiness starts at "not ready" and flips after successThreshold / failureThreshold results;
 *   - liveness failureThreshold failures kill the container: SIGTERM, SIGKILL after the grace period.
 * container_status (runc.c) reports ready/started; podsm turns them into the Ready condition.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/runc_int.h"
#include "util/jsonparse.h"

#define PROBE_TICK_MS 100
enum { P_STARTUP, P_READINESS, P_LIVENESS, P_N };
static const char *probe_keys[P_N] = {"startupProbe", "readinessProbe", "livenessProbe"};

static int64_t field(json_t *p, const char *k, int64_t def, int64_t min)
{
    json_t *v = json_object_get(p, k);
    int64_t x = json_is_integer(v) ? json_integer_value(v) : def;
    return x < min ? min : x;
}

void rc_probe_arm(struct rc_ctr *k, json_t *cspec, int64_t now)
{
    json_t *copy = kc_json_copy(cspec); /* cspec may be k->cspec itself */
    json_decref(k->cspec);
    k->cspec = copy;
    for (int i = 0; i < P_N; i++) {
        k->probe[i] = json_object_get(k->cspec, probe_keys[i]);
        k->succ[i] = k->fail[i] = 0;
        k->next_probe_ms[i] = now + field(k->probe[i], "initialDelaySeconds", 0, 0) * 1000;
    }
    k->ready = k->probe[P_READINESS] ? 0 : -1;
    k->startup_done = !k->probe[P_STARTUP];
}

/* ---------- the three handlers: 1 success, 0 failure (msg says why) ---------- */

static int port_of(json_t *cspec, json_t *port)
{
    if (json_is_integer(port))
        return (int)json_integer_value(port);
    const char *name = json_string_value(port);
    if (!name)
        return -1;
    char *end;
    long v = strtol(name, &end, 10);
    if (!*end && end != name)
        return (int)v;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(cspec, "ports"), i, p) if (!strcmp(json_string_value(json_object_get(p, "name")) ?: "", name))
        return (int)json_integer_value(json_object_get(p, "containerPort"));
    return -1;
}

static int dial(const char *ip, int port, int timeout_ms, char *msg, size_t n)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
        snprintf(msg, n, "invalid address %.60s:%d", ip, port);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) && errno != EINPROGRESS) {
        snprintf(msg, n, "dial tcp %s:%d: connect: %s", ip, port, strerror(errno));
        close(fd);
        return -1;
    }
    struct pollfd pf = {.fd = fd, .events = POLLOUT};
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (poll(&pf, 1, timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) || soerr) {
        snprintf(msg, n, "dial tcp %s:%d: %s", ip, port, soerr ? strerror(soerr) : "i/o timeout");
        close(fd);
        return -1;
    }
    return fd;
}

static int probe_tcp(json_t *h, json_t *cspec, const char *ip, int timeout_ms, char *msg, size_t n)
{
    const char *host = json_string_value(json_object_get(h, "host"));
    int fd = dial(host && *host ? host : ip, port_of(cspec, json_object_get(h, "port")), timeout_ms, msg, n);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

static int probe_http(json_t *h, json_t *cspec, const char *ip, int timeout_ms, char *msg, size_t n)
{
    const char *host = json_string_value(json_object_get(h, "host"));
    const char *path = json_string_value(json_object_get(h, "path"));
    int port = port_of(cspec, json_object_get(h, "port"));
    int64_t deadline = rc_now_ms() + timeout_ms;
    int fd = dial(host && *host ? host : ip, port, timeout_ms, msg, n);
    if (fd < 0)
        return 0;
    char req[2048];
    int len = snprintf(req, sizeof req, "GET %.1000s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: kube-probe/1.33\r\n"
                       "Accept: */*\r\nConnection: close\r\n",
                       path && *path == '/' ? path : "/", host && *host ? host : ip, port);
    size_t i;
    json_t *hd;
    json_array_foreach(json_object_get(h, "httpHeaders"), i, hd) if (len < (int)sizeof req - 600) len +=
        snprintf(req + len, sizeof req - (size_t)len, "%.200s: %.300s\r\n",
                 json_string_value(json_object_get(hd, "name")) ?: "X",
                 json_string_value(json_object_get(hd, "value")) ?: "");
    len += snprintf(req + len, sizeof req - (size_t)len, "\r\n");
    char resp[256];
    size_t got = 0;
    if (send(fd, req, (size_t)len, MSG_NOSIGNAL) != len) {
        snprintf(msg, n, "write: %s", strerror(errno));
        close(fd);
        return 0;
    }
    while (got < 12) {
        int64_t left = deadline - rc_now_ms();
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pf, 1, (int)left) != 1)
            break;
        ssize_t r = recv(fd, resp + got, sizeof resp - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    resp[got] = 0;
    int code = 0;
    if (got < 12 || sscanf(resp, "HTTP/%*d.%*d %d", &code) != 1) {
        snprintf(msg, n, "Get \"http://%.64s:%d%.100s\": %s", host && *host ? host : ip, port, path ? path : "/",
                 got ? "malformed HTTP response" : "context deadline exceeded (Client.Timeout exceeded while awaiting headers)");
        return 0;
    }
    if (code >= 200 && code < 400)
        return 1;
    snprintf(msg, n, "HTTP probe failed with statuscode: %d", code);
    return 0;
}

static int probe_exec(struct rc *r, const char *id, json_t *e, int timeout_ms, char *msg, size_t n)
{
    json_t *cmd = json_object_get(e, "command");
    size_t argc = json_array_size(cmd);
    if (!argc || argc > 64) {
        snprintf(msg, n, "exec probe without a command");
        return 0;
    }
    const char *argv[80];
    size_t k = 0;
    argv[k++] = r->runc;
    argv[k++] = "--root";
    argv[k++] = r->runc_root;
    argv[k++] = "exec";
    argv[k++] = id;
    for (size_t i = 0; i < argc; i++)
        argv[k++] = json_string_value(json_array_get(cmd, i)) ?: "";
    argv[k] = NULL;
    struct kc_proc p = {.argv = argv, .path = rc_runc_exe(r), .out_fd = -1, .err_fd = -1, .timeout_ms = timeout_ms + 1000,
                        .out_max = 4096};
    int st = 0;
    char *out = NULL, *err_out = NULL;
    struct kc_err err = {0};
    int rc = kc_proc_run(&p, &st, &out, &err_out, &err);
    if (rc)
        snprintf(msg, n, "command timed out");
    else if (st)
        snprintf(msg, n, "%.200s%s", out && *out ? out : err_out ? err_out : "", "");
    free(out);
    free(err_out);
    return !rc && st == 0;
}

/* ---------- the thread ---------- */

struct job {
    char id[80];
    int kind;
    json_t *spec, *cspec;
    char ip[48];
};

static int run_job(struct rc *r, struct job *j, char *msg, size_t n)
{
    int timeout = (int)field(j->spec, "timeoutSeconds", 1, 1) * 1000;
    json_t *h;
    if ((h = json_object_get(j->spec, "exec")))
        return probe_exec(r, j->id, h, timeout, msg, n);
    if ((h = json_object_get(j->spec, "httpGet")))
        return probe_http(h, j->cspec, j->ip, timeout, msg, n);
    if ((h = json_object_get(j->spec, "tcpSocket")))
        return probe_tcp(h, j->cspec, j->ip, timeout, msg, n);
    if ((h = json_object_get(j->spec, "grpc")))
        return probe_tcp(h, j->cspec, j->ip, timeout, msg, n); /* connectivity only */
    return 1;
}

static void kill_ctr(struct rc *r, const char *id, const char *sig)
{
    const char *args[] = {"kill", id, sig, NULL};
    struct kc_err err = {0};
    rc_runc(r, args, 5000, NULL, &err);
}

/* Applies a result (caller holds r->mu). Returns 1 when the container must be killed now. */
static int apply(struct rc_ctr *k, int kind, int ok, const char *msg, int64_t now)
{
    json_t *p = k->probe[kind];
    int64_t succ_th = field(p, "successThreshold", 1, 1), fail_th = field(p, "failureThreshold", 3, 1);
    k->next_probe_ms[kind] = now + field(p, "periodSeconds", 10, 1) * 1000;
    if (ok) {
        k->fail[kind] = 0;
        if (++k->succ[kind] < succ_th)
            return 0;
        if (kind == P_STARTUP && !k->startup_done) {
            k->startup_done = true;
            for (int i = P_READINESS; i < P_N; i++)
                k->next_probe_ms[i] = now + field(k->probe[i], "initialDelaySeconds", 0, 0) * 1000;
        }
        if (kind == P_READINESS)
            k->ready = 1;
        return 0;
    }
    k->succ[kind] = 0;
    if (++k->fail[kind] < fail_th)
        return 0;
    if (kind == P_READINESS) {
        k->ready = 0;
        return 0;
    }
    snprintf(k->liveness_msg, sizeof k->liveness_msg, "%s probe failed: %.200s",
             kind == P_STARTUP ? "Startup" : "Liveness", msg);
    k->fail[kind] = 0;
    return 1;
}

static bool pick(struct rc *r, struct job *j, int64_t now)
{
    const char *key;
    void *v;
    for (long i = kc_map_next(&r->ctrs, 0, &key, &v); i >= 0; i = kc_map_next(&r->ctrs, i + 1, &key, &v)) {
        struct rc_ctr *k = v;
        if (!k->started || k->exited || k->probing || k->live_kill_ms)
            continue;
        for (int kind = 0; kind < P_N; kind++) {
            if (!k->probe[kind] || k->next_probe_ms[kind] > now)
                continue;
            if ((kind == P_STARTUP) != !k->startup_done)
                continue;
            k->probing = true;
            snprintf(j->id, sizeof j->id, "%s", k->id);
            j->kind = kind;
            j->spec = json_incref(k->probe[kind]);
            j->cspec = json_incref(k->cspec);
            snprintf(j->ip, sizeof j->ip, "%s", k->pod_ip[0] ? k->pod_ip : "127.0.0.1");
            return true;
        }
    }
    return false;
}

/* Liveness kills that outlived their grace: SIGKILL. */
static void escalate(struct rc *r, int64_t now)
{
    char ids[16][80];
    int n = 0;
    const char *key;
    void *v;
    pthread_mutex_lock(&r->mu);
    for (long i = kc_map_next(&r->ctrs, 0, &key, &v); i >= 0 && n < 16; i = kc_map_next(&r->ctrs, i + 1, &key, &v)) {
        struct rc_ctr *k = v;
        if (k->live_kill_ms && !k->exited && now >= k->live_kill_ms && !k->kill_sent_ms) {
            k->kill_sent_ms = now;
            snprintf(ids[n++], sizeof ids[0], "%s", k->id);
        }
    }
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < n; i++)
        kill_ctr(r, ids[i], "KILL");
}

static void *probe_main(void *arg)
{
    struct rc *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        if (r->stop) {
            pthread_mutex_unlock(&r->mu);
            break;
        }
        struct job j;
        int64_t now = rc_now_ms();
        bool have = pick(r, &j, now);
        if (!have) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += PROBE_TICK_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&r->cv, &r->mu, &ts);
            pthread_mutex_unlock(&r->mu);
            escalate(r, rc_now_ms());
            continue;
        }
        pthread_mutex_unlock(&r->mu);
        char msg[256] = "";
        int ok = run_job(r, &j, msg, sizeof msg);
        json_decref(j.spec);
        json_decref(j.cspec);
        pthread_mutex_lock(&r->mu);
        struct rc_ctr *k = kc_map_get(&r->ctrs, j.id);
        int kill_now = 0;
        if (k) {
            k->probing = false;
            if (!k->exited)
                kill_now = apply(k, j.kind, ok, msg, rc_now_ms());
            if (kill_now)
                k->live_kill_ms = rc_now_ms() + k->grace_s * 1000;
        }
        pthread_mutex_unlock(&r->mu);
        if (kill_now)
            kill_ctr(r, j.id, "TERM");
    }
    return NULL;
}

int rc_probe_start(struct rc *r, struct kc_err *err)
{
    if (pthread_create(&r->probe_thr, NULL, probe_main, r))
        return kc_err_set(err, KC_EIO, 0, "InternalError", "cannot start the prober");
    r->probe_started = true;
    return 0;
}

void rc_probe_stop(struct rc *r)
{
    if (!r->probe_started)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->probe_thr, NULL);
    r->probe_started = false;
}
