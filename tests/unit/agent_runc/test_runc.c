/* test_runc.c — the runc runtime with real containers, driven by the pod state machine (podsm) as the
 * agent drives it, without an API server: a root filesystem made here from Debian's busybox-static
 * stands in for an image (the image functions of the runtime point at it).
 *
 * Needs root, runc, the CNI plugins and busybox-static; skips (with the reason) when any is missing.
 * Checks: a pod runs a real process (runc list), gets a pod IP reachable from the host, env from
 * secrets/fieldRef, logs readable; a readiness probe gates Ready; exit 1 → CrashLoopBackOff with
 * restartCount growing and previous logs; liveness failure restarts; delete leaves no runc container,
 * mount, netns, cgroup or directory behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/podsm.h"
#include "agent/runc_logsrv.h"
#include "agent/runtime.h"

static char g_dir[256], g_rootfs[300], g_skip[1200];
static const struct kc_runtime_ops *g_ops;
static void *g_rt;
static int64_t g_offset; /* fake clock = real + offset (0: the runtime's timestamps are real time) */

static int64_t clock_fn(void *ctx)
{
    (void)ctx;
    return kc_clock_real(NULL) + g_offset;
}

/* ---------- image and object stubs ---------- */

static bool img_present(void *ctx, const char *ref, struct kc_image_info *out)
{
    (void)ctx;
    if (strncmp(ref, "local/busybox", 13))
        return false;
    memset(out, 0, sizeof *out);
    snprintf(out->ref, sizeof out->ref, "local/busybox:1");
    snprintf(out->digest, sizeof out->digest, "sha256:%064d", 1);
    snprintf(out->rootfs, sizeof out->rootfs, "%s", g_rootfs);
    out->size_bytes = 2000000;
    out->config = json_pack("{s:{s:[s],s:[s],s:s}}", "config", "Env", "FROM_IMAGE=yes", "Cmd", "sh", "WorkingDir", "/");
    return true;
}

static int img_pull(void *ctx, const char *ref, json_t *pod, bool force, struct kc_image_info *out, struct kc_err *err)
{
    (void)pod, (void)force;
    if (img_present(ctx, ref, out))
        return 0;
    return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "manifest unknown: %s", ref);
}

static json_t *get_object(void *ctx, const char *plural, const char *ns, const char *name)
{
    (void)ctx, (void)ns;
    if (!strcmp(plural, "secrets") && !strcmp(name, "creds"))
        return json_pack("{s:{s:s}}", "data", "password", "czNjcjN0"); /* s3cr3t */
    return NULL;
}

static int run(const char *cmd, char *out, size_t n)
{
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    size_t got = out ? fread(out, 1, n - 1, f) : 0;
    if (out)
        out[got] = 0;
    else {
        char b[4096];
        while (fread(b, 1, sizeof b, f) > 0)
            ;
    }
    return pclose(f);
}

static int setup(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        snprintf(g_skip, sizeof g_skip, "not root");
        return 0;
    }
    char why[256];
    if (!kc_runc_usable(NULL, why, sizeof why)) {
        snprintf(g_skip, sizeof g_skip, "%s", why);
        return 0;
    }
    if (access("/bin/busybox", X_OK) || access("/usr/lib/cni/bridge", X_OK)) {
        snprintf(g_skip, sizeof g_skip, "needs busybox-static and containernetworking-plugins");
        return 0;
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/kubec-runc-test-%d", (int)getpid());
    snprintf(g_rootfs, sizeof g_rootfs, "%s/image", g_dir);
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "set -e; mkdir -p %s/bin %s/etc %s/tmp %s/www; cp /bin/busybox %s/bin/busybox;"
             " for a in sh sleep echo cat ls httpd test touch env id wc; do ln -s busybox %s/bin/$a; done;"
             " echo ok > %s/www/index.html",
             g_rootfs, g_rootfs, g_rootfs, g_rootfs, g_rootfs, g_rootfs, g_rootfs);
    if (run(cmd, NULL, 0)) {
        snprintf(g_skip, sizeof g_skip, "cannot build the busybox root filesystem");
        return 0;
    }
    char data[400];
    snprintf(data, sizeof data, "%s/agent", g_dir);
    struct kc_runc_opts o = {.data_dir = data, .pod_cidr = "10.89.0.0/24", .bridge = "kubectest0",
                             .image_pull = img_pull, .image_present = img_present, .get_object = get_object,
                             .log_max_bytes = 4096};
    struct kc_err err = {0};
    if (kc_runc_runtime_new(&o, &g_ops, &g_rt, &err)) {
        snprintf(g_skip, sizeof g_skip, "runtime: %s", err.message);
        return 0;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (g_ops)
        g_ops->free(g_rt);
    if (g_dir[0]) { /* after a failed test: take down whatever it left, then the files */
        char cmd[2048];
        snprintf(cmd, sizeof cmd,
                 "R=%s/agent/runc; for c in $(runc --root $R list -q 2>/dev/null); do runc --root $R delete --force $c; done;"
                 " grep -o '%s/[^ ]*/rootfs' /proc/self/mountinfo | while read m; do umount -l $m; done;"
                 " for n in $(ip netns list | awk '{print $1}' | grep -E '^kubec-[1-5]{8}-aaaa-4000'); do ip netns del $n; done;"
                 " rm -rf %s; ip link del kubectest0 2>/dev/null",
                 g_dir, g_dir, g_dir);
        run(cmd, NULL, 0);
    }
    return 0;
}

#define SKIP_IF_UNUSABLE()                                                                                         \
    do {                                                                                                           \
        if (g_skip[0]) {                                                                                           \
            print_message("SKIP runc tests: %s\n", g_skip);                                                       \
            skip();                                                                                                \
        }                                                                                                          \
    } while (0)

/* ---------- pod driving ---------- */

struct pod {
    json_t *obj;
    struct kc_pod_sm sm;
    struct kc_podsm_env env;
    json_t *st;
};

static json_t *pod_json(const char *uid, const char *containers_json, const char *extra_spec)
{
    char b[8192];
    snprintf(b, sizeof b,
             "{\"metadata\":{\"name\":\"p-%s\",\"namespace\":\"default\",\"uid\":\"%s\"},"
             "\"spec\":{\"nodeName\":\"n1\",\"terminationGracePeriodSeconds\":2,%s\"containers\":%s}}",
             uid, uid, extra_spec ? extra_spec : "", containers_json);
    json_error_t je;
    json_t *p = json_loads(b, 0, &je);
    if (!p)
        print_error("bad pod json: %s\n", je.text);
    return p;
}

/* Events go to stderr: they explain a failure. */
static void on_event(void *ctx, json_t *pod, const char *type, const char *reason, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "  event %s %s %s: %s\n", json_string_value(json_object_get(json_object_get(pod, "metadata"), "name")),
            type, reason, msg);
}

static void pod_start(struct pod *p, json_t *obj)
{
    memset(p, 0, sizeof *p);
    p->obj = obj;
    p->env = (struct kc_podsm_env){.rt = g_ops, .rt_impl = g_rt, .clock = clock_fn, .host_ip = "127.0.0.1",
                                 .event = on_event};
    struct kc_err err = {0};
    assert_int_equal(kc_podsm_init(&p->sm, obj, "n1", &err), 0);
}

/* One sync + status. */
static void pod_sync(struct pod *p)
{
    int64_t wake = 0;
    kc_podsm_sync(&p->sm, p->obj, &p->env, &wake);
    json_decref(p->st);
    p->st = kc_podsm_status(&p->sm, p->obj, &p->env);
}

static json_t *cstat(struct pod *p, int i) { return json_array_get(json_object_get(p->st, "containerStatuses"), i); }

static const char *cond(struct pod *p, const char *type)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(p->st, "conditions"), i, c) if (!strcmp(json_string_value(json_object_get(c, "type")), type))
        return json_string_value(json_object_get(c, "status"));
    return "";
}

static const char *phase(struct pod *p) { return json_string_value(json_object_get(p->st, "phase")) ?: ""; }
static bool running(struct pod *p) { return json_object_get(json_object_get(cstat(p, 0), "state"), "running") != NULL; }

/* Syncs every 50 ms until pred or timeout_ms; returns pred's last value. */
static bool sync_until(struct pod *p, bool (*pred)(struct pod *), int timeout_ms)
{
    for (int t = 0; t < timeout_ms; t += 50) {
        pod_sync(p);
        if (pred(p))
            return true;
        usleep(50000);
    }
    return false;
}

static bool ready(struct pod *p) { return !strcmp(cond(p, "Ready"), "True"); }

/* Deletes as the API would (deletionTimestamp) and drives termination to the end. */
static void pod_delete(struct pod *p)
{
    json_object_set_new(json_object_get(p->obj, "metadata"), "deletionTimestamp", json_string("2026-01-01T00:00:00Z"));
    int done = 0;
    for (int t = 0; t < 200 && !done; t++) {
        int64_t wake = 0;
        done = kc_podsm_sync(&p->sm, p->obj, &p->env, &wake);
        if (!done)
            usleep(50000);
    }
    assert_true(done);
    kc_podsm_release(&p->sm);
    json_decref(p->st);
    json_decref(p->obj);
    p->st = NULL;
}

static void log_of(const char *uid, const char *ctr, bool previous, char *out, size_t n);

struct lbuf {
    char *p;
    size_t n, len;
};
static int lwrite(void *ctx, const char *s, size_t n)
{
    struct lbuf *b = ctx;
    if (n && b->len + n < b->n) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = 0;
    }
    return 0;
}

static void log_of(const char *uid, const char *ctr, bool previous, char *out, size_t n)
{
    struct lbuf b = {out, n, 0};
    out[0] = 0;
    struct kc_log_req q = {.pod_uid = uid, .container = ctr, .previous = previous, .tail_lines = -1,
                           .limit_bytes = -1};
    struct kc_err err = {0};
    kc_runc_read_log(g_rt, &q, lwrite, &b, &err);
}

static bool no_trace_of(const char *uid, char *why, size_t n)
{
    char out[65536], cmd[4096];
    snprintf(cmd, sizeof cmd, "runc --root %s/agent/runc list -q", g_dir);
    run(cmd, out, sizeof out);
    if (strstr(out, uid)) {
        snprintf(why, n, "runc list still has %.400s", out);
        return false;
    }
    run("cat /proc/self/mountinfo", out, sizeof out);
    if (strstr(out, uid)) {
        snprintf(why, n, "a mount is left");
        return false;
    }
    run("ip netns list", out, sizeof out);
    if (strstr(out, uid)) {
        snprintf(why, n, "netns left: %.400s", out);
        return false;
    }
    snprintf(cmd, sizeof cmd, "ls -d /sys/fs/cgroup/*/kubec/pod%s /sys/fs/cgroup/kubec/pod%s %s/agent/pods/%s 2>/dev/null; ls %s/agent/bundles",
             uid, uid, g_dir, uid, g_dir);
    run(cmd, out, sizeof out);
    if (strstr(out, uid)) {
        snprintf(why, n, "left behind: %.400s", out);
        return false;
    }
    return true;
}

/* ---------- tests ---------- */

static void test_pod_runs_real_process(void **state)
{
    (void)state;
    SKIP_IF_UNUSABLE();
    const char *uid = "11111111-aaaa-4000-8000-000000000001";
    struct pod p;
    pod_start(&p, pod_json(uid,
                           "[{\"name\":\"web\",\"image\":\"local/busybox:1\",\"imagePullPolicy\":\"IfNotPresent\","
                           "\"command\":[\"sh\",\"-c\",\"echo hello $(NAME) pw=$PW ns=$NS img=$FROM_IMAGE; "
                           "echo to-stderr >&2; exec httpd -f -p 8080 -h /www\"],"
                           "\"env\":[{\"name\":\"NAME\",\"value\":\"world\"},"
                           "{\"name\":\"PW\",\"valueFrom\":{\"secretKeyRef\":{\"name\":\"creds\",\"key\":\"password\"}}},"
                           "{\"name\":\"NS\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":\"metadata.namespace\"}}}],"
                           "\"readinessProbe\":{\"httpGet\":{\"path\":\"/index.html\",\"port\":8080},\"periodSeconds\":1}}]",
                           NULL));
    assert_true(sync_until(&p, running, 10000));
    char ip[48];
    snprintf(ip, sizeof ip, "%s", json_string_value(json_object_get(p.st, "podIP")) ?: "");
    assert_int_equal(strncmp(ip, "10.89.0.", 8), 0);
    /* a real process, listed by runc */
    char out[65536], cmd[4096];
    snprintf(cmd, sizeof cmd, "runc --root %s/agent/runc list", g_dir);
    run(cmd, out, sizeof out);
    assert_non_null(strstr(out, uid));
    assert_non_null(strstr(out, "running"));
    /* readiness by HTTP through the pod IP */
    assert_true(sync_until(&p, ready, 10000));
    /* logs: both streams, env expanded, secret decoded */
    usleep(200000);
    log_of(uid, "web", false, out, sizeof out);
    assert_non_null(strstr(out, "hello world pw=s3cr3t ns=default img=yes"));
    assert_non_null(strstr(out, "to-stderr"));
    /* the pod IP answers from the host (bridge) */
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(8080)};
    inet_pton(AF_INET, ip, &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    pod_delete(&p);
    char why[600];
    assert_true(no_trace_of(uid, why, sizeof why) || (print_error("%s\n", why), false));
}

static bool file_ready(struct pod *p) { return ready(p); }

static void test_readiness_gates_ready(void **state)
{
    (void)state;
    SKIP_IF_UNUSABLE();
    const char *uid = "22222222-aaaa-4000-8000-000000000002";
    struct pod p;
    pod_start(&p, pod_json(uid,
                           "[{\"name\":\"app\",\"image\":\"local/busybox:1\",\"imagePullPolicy\":\"IfNotPresent\","
                           "\"command\":[\"sh\",\"-c\",\"sleep 2; touch /tmp/ready; sleep 1000\"],"
                           "\"readinessProbe\":{\"exec\":{\"command\":[\"test\",\"-f\",\"/tmp/ready\"]},"
                           "\"periodSeconds\":1,\"failureThreshold\":1}}]",
                           NULL));
    assert_true(sync_until(&p, running, 10000));
    /* running but not ready while the probe fails */
    pod_sync(&p);
    assert_string_equal(cond(&p, "Ready"), "False");
    assert_false(json_is_true(json_object_get(cstat(&p, 0), "ready")));
    assert_true(sync_until(&p, file_ready, 10000));
    assert_true(json_is_true(json_object_get(cstat(&p, 0), "ready")));
    pod_delete(&p);
}

static int restarts(struct pod *p) { return (int)json_integer_value(json_object_get(cstat(p, 0), "restartCount")); }
static bool crashloop(struct pod *p)
{
    const char *r = json_string_value(
        json_object_get(json_object_get(json_object_get(cstat(p, 0), "state"), "waiting"), "reason"));
    return r && !strcmp(r, "CrashLoopBackOff");
}

static bool restarted_twice(struct pod *p) { return restarts(p) >= 2; }

static void test_crashloop_and_previous_logs(void **state)
{
    (void)state;
    SKIP_IF_UNUSABLE();
    const char *uid = "33333333-aaaa-4000-8000-000000000003";
    struct pod p;
    pod_start(&p, pod_json(uid,
                           "[{\"name\":\"crash\",\"image\":\"local/busybox:1\",\"imagePullPolicy\":\"IfNotPresent\","
                           "\"command\":[\"sh\",\"-c\",\"echo run at $(date +%s%N); exit 1\"]}]",
                           NULL));
    assert_true(sync_until(&p, crashloop, 15000));
    int first = restarts(&p);
    assert_true(first >= 1); /* the first restart is immediate, then 10 s of back-off */
    json_t *last = json_object_get(json_object_get(cstat(&p, 0), "lastState"), "terminated");
    assert_int_equal(json_integer_value(json_object_get(last, "exitCode")), 1);
    assert_string_equal(json_string_value(json_object_get(last, "reason")), "Error");
    assert_true(sync_until(&p, restarted_twice, 30000));
    assert_true(sync_until(&p, crashloop, 15000));
    assert_string_equal(phase(&p), "Running");
    char cur[4096], prev[4096];
    /* the newest run may still be starting (its log empty): give it a few seconds */
    for (int i = 0; i < 50; i++) {
        log_of(uid, "crash", false, cur, sizeof cur);
        if (strstr(cur, "run at"))
            break;
        usleep(100 * 1000);
        sync_until(&p, crashloop, 200);
    }
    log_of(uid, "crash", true, prev, sizeof prev);
    assert_non_null(strstr(cur, "run at"));
    assert_non_null(strstr(prev, "run at"));
    assert_string_not_equal(cur, prev);
    pod_delete(&p);
    char why[600];
    assert_true(no_trace_of(uid, why, sizeof why) || (print_error("%s\n", why), false));
}

static bool restarted(struct pod *p) { return restarts(p) >= 1 && running(p); }

static void test_liveness_restarts(void **state)
{
    (void)state;
    SKIP_IF_UNUSABLE();
    const char *uid = "44444444-aaaa-4000-8000-000000000004";
    struct pod p;
    pod_start(&p, pod_json(uid,
                           "[{\"name\":\"live\",\"image\":\"local/busybox:1\",\"imagePullPolicy\":\"IfNotPresent\","
                           "\"command\":[\"sleep\",\"1000\"],"
                           "\"livenessProbe\":{\"tcpSocket\":{\"port\":9999},\"periodSeconds\":1,\"failureThreshold\":2}}]",
                           NULL));
    assert_true(sync_until(&p, restarted, 20000));
    json_t *last = json_object_get(json_object_get(cstat(&p, 0), "lastState"), "terminated");
    /* sleep is PID 1 of its namespace and ignores SIGTERM: SIGKILL after the 2 s grace period */
    assert_int_equal(json_integer_value(json_object_get(last, "exitCode")), 137);
    pod_delete(&p);
}

static void test_host_network_and_limits(void **state)
{
    (void)state;
    SKIP_IF_UNUSABLE();
    const char *uid = "55555555-aaaa-4000-8000-000000000005";
    struct pod p;
    pod_start(&p, pod_json(uid,
                           "[{\"name\":\"h\",\"image\":\"local/busybox:1\",\"imagePullPolicy\":\"IfNotPresent\","
                           "\"command\":[\"sleep\",\"1000\"],\"securityContext\":{\"runAsUser\":1234,"
                           "\"readOnlyRootFilesystem\":true},"
                           "\"resources\":{\"limits\":{\"cpu\":\"500m\",\"memory\":\"64Mi\"}}}]",
                           "\"hostNetwork\":true,"));
    assert_true(sync_until(&p, running, 10000));
    assert_string_equal(json_string_value(json_object_get(p.st, "podIP")), "127.0.0.1");
    char out[4096], cmd[4096], id[200];
    snprintf(id, sizeof id, "%s-h-0", uid);
    snprintf(cmd, sizeof cmd, "runc --root %s/agent/runc exec %s id -u; runc --root %s/agent/runc exec %s touch /x 2>&1",
             g_dir, id, g_dir, id);
    run(cmd, out, sizeof out);
    assert_non_null(strstr(out, "1234"));
    assert_non_null(strstr(out, "Read-only file system"));
    snprintf(cmd, sizeof cmd,
             "cat /sys/fs/cgroup/memory/kubec/pod%s/%s/memory.limit_in_bytes /sys/fs/cgroup/kubec/pod%s/%s/memory.max "
             "/sys/fs/cgroup/cpu/kubec/pod%s/%s/cpu.cfs_quota_us /sys/fs/cgroup/kubec/pod%s/%s/cpu.max 2>/dev/null",
             uid, id, uid, id, uid, id, uid, id);
    run(cmd, out, sizeof out);
    assert_non_null(strstr(out, "67108864"));
    assert_non_null(strstr(out, "50000"));
    pod_delete(&p);
    char why[600];
    assert_true(no_trace_of(uid, why, sizeof why) || (print_error("%s\n", why), false));
}


static const char *g_log_uid = "66666666-aaaa-4000-8000-000000000006";

static int lookup_uid(void *ctx, const char *ns, const char *name, char *uid, size_t n)
{
    (void)ctx;
    if (strcmp(ns, "default") || strcmp(name, "p-66666666-aaaa-4000-8000-000000000006"))
        return KC_ENOTFOUND;
    snprintf(uid, n, "%s", g_log_uid);
    return 0;
}

/* HTTP status and body of a GET on the log server with curl (-k: the certificate is self-signed). */
static int https_get(int port, const char *token, const char *path, char *body, size_t n)
{
    char cmd[1024], out[70000];
    snprintf(cmd, sizeof cmd, "curl -sk -w '\\n%%{http_code}' %s%s%s 'https://127.0.0.1:%d%s'",
             token ? "-H 'Authorization: Bearer " : "", token ? token : "", token ? "'" : "", port, path);
    run(cmd, out, sizeof out);
    char *nl = strrchr(out, '\n');
    int code = nl ? atoi(nl + 1) : 0;
    if (nl)
        *nl = 0;
    snprintf(body, n, "%s", out);
    return code;
}

static bool has_two_lines(struct pod *p)
{
    (void)p;
    char out[4096];
    log_of(g_log_uid, "talk", false, out, sizeof out);
    return strstr(out, "line two") != NULL;
}

static void test_log_api(void **state)
{
    (void)state;
    SKIP_IF_UNUSABLE();
    char pki[400];
    snprintf(pki, sizeof pki, "%s/pki", g_dir);
    struct kc_logsrv_opts o = {.listen_addr = "127.0.0.1", .port = 0, .pki_dir = pki, .pod_uid = lookup_uid,
                               .runtime = g_rt};
    struct kc_logsrv *srv = NULL;
    struct kc_err err = {0};
    assert_int_equal(kc_logsrv_start(&o, &srv, &err), 0);
    int port = kc_logsrv_port(srv);
    assert_true(port > 0);
    const char *tok = kc_logsrv_token(srv);
    assert_true(strlen(tok) >= 32);
    struct pod p;
    pod_start(&p, pod_json(g_log_uid,
                           "[{\"name\":\"talk\",\"image\":\"local/busybox:1\",\"imagePullPolicy\":\"IfNotPresent\","
                           "\"command\":[\"sh\",\"-c\",\"echo line one; echo line two; sleep 1000\"]}]",
                           NULL));
    assert_true(sync_until(&p, has_two_lines, 10000));
    char body[70000];
    const char *path = "/containerLogs/default/p-66666666-aaaa-4000-8000-000000000006/talk";
    /* anonymous and wrong tokens are refused */
    assert_int_equal(https_get(port, NULL, path, body, sizeof body), 401);
    assert_int_equal(https_get(port, "not-the-token", path, body, sizeof body), 401);
    assert_int_equal(https_get(port, tok, path, body, sizeof body), 200);
    assert_string_equal(body, "line one\nline two\n");
    char q[600];
    snprintf(q, sizeof q, "%s?tailLines=1", path);
    assert_int_equal(https_get(port, tok, q, body, sizeof body), 200);
    assert_string_equal(body, "line two\n");
    snprintf(q, sizeof q, "%s?timestamps=true&limitBytes=5", path);
    assert_int_equal(https_get(port, tok, q, body, sizeof body), 200);
    assert_int_equal(strlen(body), 5);
    assert_true(body[0] == '2'); /* an RFC 3339 timestamp comes first */
    /* no previous run yet; unknown pod; unknown container */
    snprintf(q, sizeof q, "%s?previous=true", path);
    assert_int_equal(https_get(port, tok, q, body, sizeof body), 404);
    assert_int_equal(https_get(port, tok, "/containerLogs/default/nope/talk", body, sizeof body), 404);
    assert_int_equal(https_get(port, tok, "/containerLogs/default/p-66666666-aaaa-4000-8000-000000000006/x", body,
                               sizeof body),
                     404);
    /* follow ends when the container does: delete the pod while a follower reads */
    char cmd[1200], out[4096];
    snprintf(cmd, sizeof cmd,
             "(curl -sk -H 'Authorization: Bearer %s' 'https://127.0.0.1:%d%s?follow=true' > %s/follow.out &) ;"
             " sleep 1", tok, port, path, g_dir);
    run(cmd, NULL, 0);
    pod_delete(&p);
    usleep(1500000);
    snprintf(cmd, sizeof cmd, "cat %s/follow.out", g_dir);
    run(cmd, out, sizeof out);
    assert_non_null(strstr(out, "line two"));
    kc_logsrv_stop(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pod_runs_real_process),
        cmocka_unit_test(test_readiness_gates_ready),
        cmocka_unit_test(test_crashloop_and_previous_logs),
        cmocka_unit_test(test_liveness_restarts),
        cmocka_unit_test(test_host_network_and_limits),
        cmocka_unit_test(test_log_api),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
