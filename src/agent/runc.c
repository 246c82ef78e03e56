/* runc.c — the `runc` container runtime behind runtime.h: real containers from OCI bundles, driven
 * with the runc binary (`runc --root <data dir>/runc create|start|kill|delete|exec`), no daemon.
 *
 *   run_sandbox       network namespace + CNI (runc_cni.c); hostNetwork: none, host IP
 *   pull_image        opts.image_pull in a thread of its own (the interface must not block)
 *   create_container  bundle dir, config.json (runc_bundle.c), rootfs = overlay of the image's read-only
 *                     rootfs (or a copy when overlay cannot be mounted), log pipes (runc_logs.c),
 *                     `runc run --detach --pid-file` (create and start in one runc process: the pod
 *                     start latency is dominated by runc invocations), probes armed (runc_probe.c)
 *   start_container   nothing left to do (`runc start` only for a container created but not started)
 *   container_status  waitpid(pid, WNOHANG): the agent is a child subreaper (PR_SET_CHILD_SUBREAPER),
 *                     so every container's init becomes our child once `runc create` exits and its
 *                     exit status is exact; OOM kills read from the cgroup before it goes
 *   stop_container    SIGTERM, then SIGKILL when the grace period is over (the caller passes the rest)
 *   remove_container  `runc delete --force`, unmount, bundle removed (logs stay for --previous)
 *   remove_sandbox    leftovers of the pod's containers, CNI DEL, netns, cgroup parents, log dir
 *
 * Data structures: struct rc (runc_int.h) with maps ctrs (id → rc_ctr), sandboxes (uid → rc_sandbox),
 * pulls (uid|image → rc_pull), images (ref → kc_image_info) under one mutex. Slow steps (runc calls,
 * mounts) run without the mutex: the agent never drives one pod from two threads, and the probe
 * thread only reads entries by id under the mutex.
 * Threads: the caller's; one per image pull in progress; the log copier; the prober.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/runc_int.h"
#include "util/log.h"
#include "util/jsonparse.h"

#define CGROUP2_MAGIC 0x63677270
#define POLL_RUNNING_MS 1000
#define POLL_PROBED_MS 300
#define STOP_POLL_MS 100

static const char *cg_v1_ctls[] = {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
                                   "systemd", "net_cls", "net_prio", "hugetlb", "perf_event", "rdma", "unified", NULL};

/* ---------- helpers ---------- */

int64_t rc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int rc_mkdirs(const char *path, struct kc_err *err)
{
    char p[RUNC_PATH_MAX];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p)
        return kc_err_set(err, KC_EINVAL, 0, "InternalError", "path too long");
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0755) && errno != EEXIST)
                return kc_err_set(err, KC_EIO, 0, "InternalError", "mkdir %.300s: %s", p, strerror(errno));
            *s = '/';
        }
    if (mkdir(p, 0755) && errno != EEXIST)
        return kc_err_set(err, KC_EIO, 0, "InternalError", "mkdir %.300s: %s", p, strerror(errno));
    return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(p);
    return 0;
}

/* Removes a tree without crossing into other file systems (a mount left behind stays, visibly). */
void rc_rmtree(const char *path)
{
    nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

int rc_runc(struct rc *r, const char *const *args, int timeout_ms, char **out, struct kc_err *err)
{
    const char *argv[24] = {r->runc, "--root", r->runc_root};
    int n = 3;
    for (int i = 0; args[i] && n < 23; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    struct kc_proc p = {.argv = argv, .path = rc_runc_exe(r), .out_fd = -1, .err_fd = -1, .timeout_ms = timeout_ms};
    int st = 0;
    char *o = NULL, *e = NULL;
    int rc = kc_proc_run(&p, &st, &o, &e, err);
    if (!rc && st) {
        char *nl = e ? strrchr(e, '\n') : NULL;
        while (nl && nl[1] == 0 && nl > e) { /* last non-empty line */
            *nl = 0;
            nl = strrchr(e, '\n');
        }
        rc = kc_err_set(err, KC_EIO, 0, "RunContainerError", "runc %s: %.700s", args[0],
                        nl ? nl + 1 : e && *e ? e : o ? o : "");
    }
    if (out && !rc)
        *out = o;
    else
        free(o);
    free(e);
    return rc;
}

static const char *jstr(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

bool kc_runc_usable(const char *runc_path, char *why, size_t n)
{
    if (geteuid() != 0) {
        snprintf(why, n, "the runc runtime needs root (running as uid %u)", (unsigned)geteuid());
        return false;
    }
    const char *argv[] = {runc_path && *runc_path ? runc_path : "runc", "--version", NULL};
    struct kc_proc p = {.argv = argv, .out_fd = -1, .err_fd = -1, .timeout_ms = 5000};
    int st = 0;
    struct kc_err err = {0};
    if (kc_proc_run(&p, &st, NULL, NULL, &err) || st) {
        snprintf(why, n, "%s --version failed (exit %d): is the runc package installed?", argv[0], st);
        return false;
    }
    if (access("/sys/fs/cgroup", R_OK)) {
        snprintf(why, n, "no /sys/fs/cgroup");
        return false;
    }
    return true;
}

/* ---------- sandbox ---------- */

static int rc_run_sandbox(void *rt, json_t *pod, const char *node, char *ip, size_t ipn, int *wait_ms,
                          struct kc_err *err)
{
    (void)node;
    struct rc *r = rt;
    json_t *meta = json_object_get(pod, "metadata");
    const char *uid = jstr(meta, "uid") ?: "";
    *wait_ms = 0;
    if (!*uid || strchr(uid, '/') || strlen(uid) > 60)
        return kc_err_set(err, KC_EINVAL, 0, "FailedCreatePodSandBox", "pod without a usable uid");
    pthread_mutex_lock(&r->mu);
    struct rc_sandbox *sb = kc_map_get(&r->sandboxes, uid);
    pthread_mutex_unlock(&r->mu);
    if (sb && sb->ip[0]) {
        snprintf(ip, ipn, "%s", sb->ip);
        return 0;
    }
    bool fresh = !sb;
    if (fresh) {
        sb = calloc(1, sizeof *sb);
        if (!sb)
            return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
        snprintf(sb->uid, sizeof sb->uid, "%s", uid);
        snprintf(sb->ns, sizeof sb->ns, "%s", jstr(meta, "namespace") ?: "");
        snprintf(sb->name, sizeof sb->name, "%s", jstr(meta, "name") ?: "");
        sb->host_network = json_is_true(json_object_get(json_object_get(pod, "spec"), "hostNetwork"));
        int perr = 0;
        pthread_mutex_lock(&r->mu);
        kc_map_put(&r->sandboxes, uid, sb, &perr);
        pthread_mutex_unlock(&r->mu);
        if (perr) {
            free(sb);
            return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
        }
    }
    if (sb->host_network) {
        snprintf(sb->ip, sizeof sb->ip, "%s", r->o.host_ip && *r->o.host_ip ? r->o.host_ip : "127.0.0.1");
    } else {
        int rc = rc_net_setup(r, sb, err);
        if (rc) { /* keep the entry: remove_sandbox (or the next try) cleans what was made */
            rc_net_teardown(r, sb);
            return rc;
        }
    }
    snprintf(ip, ipn, "%s", sb->ip);
    return 0;
}

static void cgroup_rmdir(struct rc *r, const char *rel)
{
    char p[RUNC_PATH_MAX];
    if (r->cgroup_v2) {
        if (snprintf(p, sizeof p, "/sys/fs/cgroup/%s", rel) < (int)sizeof p)
            rmdir(p);
        return;
    }
    for (int i = 0; cg_v1_ctls[i]; i++) {
        if (snprintf(p, sizeof p, "/sys/fs/cgroup/%s/%s", cg_v1_ctls[i], rel) < (int)sizeof p)
            rmdir(p);
    }
}

static void destroy_ctr(struct rc *r, struct rc_ctr *k);
static void rc_info_release(struct kc_image_info *i);
static void leftover(struct rc *r, const struct rc_ctr *k);

static int rc_remove_sandbox(void *rt, const char *pod_uid, struct kc_err *err)
{
    (void)err;
    struct rc *r = rt;
    /* containers of this pod still known: remove them first */
    for (;;) {
        struct rc_ctr *k = NULL;
        const char *key;
        void *v;
        pthread_mutex_lock(&r->mu);
        for (long i = kc_map_next(&r->ctrs, 0, &key, &v); i >= 0 && !k; i = kc_map_next(&r->ctrs, i + 1, &key, &v))
            if (!strcmp(((struct rc_ctr *)v)->pod_uid, pod_uid))
                k = v;
        if (k)
            kc_map_del(&r->ctrs, k->id);
        pthread_mutex_unlock(&r->mu);
        if (!k)
            break;
        destroy_ctr(r, k);
    }
    /* and those runc still has for this pod but the table does not (a `runc run` that failed or timed
     * out after runc had made its container is dropped from the table without a runc delete): runc's
     * own state directory lists them, as <pod uid>-<name>-<attempt> */
    DIR *d = opendir(r->runc_root);
    size_t ul = strlen(pod_uid);
    for (struct dirent *de; d && (de = readdir(d));) {
        if (strncmp(de->d_name, pod_uid, ul) || de->d_name[ul] != '-' || strlen(de->d_name) >= 80)
            continue; /* 80: struct rc_ctr's id */
        struct rc_ctr *k = calloc(1, sizeof *k);
        if (!k)
            break;
        snprintf(k->id, sizeof k->id, "%s", de->d_name);
        snprintf(k->bundle, sizeof k->bundle, "%.500s/bundles/%.100s", r->dir, k->id);
        kc_warn("agent", "runc container %s was not in the agent's table: removed with its pod", k->id);
        leftover(r, k);
        free(k);
    }
    if (d)
        closedir(d);
    pthread_mutex_lock(&r->mu);
    struct rc_sandbox *sb = kc_map_del(&r->sandboxes, pod_uid);
    char key[700];
    snprintf(key, sizeof key, "%.60s|", pod_uid);
    const char *pk;
    void *pv;
    for (long i = kc_map_next(&r->pulls, 0, &pk, &pv); i >= 0; i = kc_map_next(&r->pulls, i + 1, &pk, &pv)) {
        struct rc_pull *pl = pv;
        if (!strncmp(pk, key, strlen(key)) && pl->done) { /* a pull still running frees itself later */
            kc_map_del(&r->pulls, pk);
            rc_info_release(&pl->info);
            free(pl);
        }
    }
    pthread_mutex_unlock(&r->mu);
    if (sb) {
        rc_net_teardown(r, sb);
        free(sb);
    }
    char p[RUNC_PATH_MAX];
    snprintf(p, sizeof p, "kubec/pod%.60s", pod_uid);
    cgroup_rmdir(r, p);
    snprintf(p, sizeof p, "%.500s/pods/%.60s", r->dir, pod_uid);
    rc_rmtree(p);
    return 0;
}

/* ---------- images ---------- */

static void rc_info_release(struct kc_image_info *i)
{
    json_decref(i->config);
    i->config = NULL;
}

/* docker.io/library/busybox:1.36 + sha256:… → docker.io/library/busybox@sha256:… */
static void image_id(const struct kc_image_info *in, const char *ref, struct kc_rt_image *out)
{
    char repo[300];
    snprintf(repo, sizeof repo, "%.290s", in->ref[0] ? in->ref : ref);
    char *at = strchr(repo, '@');
    if (at)
        *at = 0;
    char *slash = strrchr(repo, '/'), *colon = strrchr(slash ? slash : repo, ':');
    if (colon)
        *colon = 0;
    if (in->digest[0])
        snprintf(out->image_id, sizeof out->image_id, "%.170s@%.80s", repo, in->digest);
    else
        snprintf(out->image_id, sizeof out->image_id, "%.250s", ref);
    out->size_bytes = in->size_bytes;
}

static void remember_image(struct rc *r, const char *ref, struct kc_image_info *in)
{
    struct kc_image_info *c = malloc(sizeof *c);
    if (!c)
        return;
    *c = *in;
    c->config = json_incref(in->config);
    int perr = 0;
    pthread_mutex_lock(&r->mu);
    struct kc_image_info *old = kc_map_put(&r->images, ref, c, &perr);
    pthread_mutex_unlock(&r->mu);
    if (old) {
        rc_info_release(old);
        free(old);
    }
    if (perr) {
        rc_info_release(c);
        free(c);
    }
}

static bool rc_image_present(void *rt, const struct kc_rt_container *c, struct kc_rt_image *out)
{
    struct rc *r = rt;
    struct kc_image_info info = {0};
    if (!r->o.image_present(r->o.image_ctx, c->image, &info))
        return false;
    if (out)
        image_id(&info, c->image, out);
    remember_image(r, c->image, &info);
    rc_info_release(&info);
    return true;
}

static void *pull_main(void *arg)
{
    struct rc_pull *p = arg;
    struct rc *r = p->owner;
    struct kc_image_info info = {0};
    struct kc_err err = {0};
    int rc = r->o.image_pull(r->o.image_ctx, p->ref, p->auths, p->force, &info, &err);
    json_decref(p->auths);
    p->auths = NULL;
    pthread_mutex_lock(&r->mu);
    p->rc = rc;
    p->err = err;
    p->info = info;
    p->done = true;
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static int rc_pull_image(void *rt, const struct kc_rt_container *c, struct kc_rt_image *out, int *wait_ms,
                         struct kc_err *err)
{
    struct rc *r = rt;
    char key[600];
    snprintf(key, sizeof key, "%.60s|%.500s", c->pod_uid, c->image);
    *wait_ms = 0;
    pthread_mutex_lock(&r->mu);
    struct rc_pull *p = kc_map_get(&r->pulls, key);
    if (p && !p->done) {
        pthread_mutex_unlock(&r->mu);
        *wait_ms = 100;
        return 0;
    }
    if (p) { /* finished: hand over the result */
        kc_map_del(&r->pulls, key);
        pthread_mutex_unlock(&r->mu);
        int rc = p->rc;
        if (rc)
            *err = p->err;
        else {
            image_id(&p->info, c->image, out);
            remember_image(r, c->image, &p->info);
        }
        rc_info_release(&p->info);
        free(p);
        return rc;
    }
    p = calloc(1, sizeof *p);
    int perr = 0;
    if (p) {
        snprintf(p->key, sizeof p->key, "%s", key);
        snprintf(p->ref, sizeof p->ref, "%.500s", c->image);
        p->auths = c->pod ? json_incref(c->pod) : NULL; /* the callee reads imagePullSecrets from the pod */
        p->force = true;
        p->owner = r;
        kc_map_put(&r->pulls, key, p, &perr);
    }
    pthread_mutex_unlock(&r->mu);
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (!p || perr || pthread_create(&t, &at, pull_main, p)) {
        pthread_attr_destroy(&at);
        if (p) {
            pthread_mutex_lock(&r->mu);
            kc_map_del(&r->pulls, key);
            pthread_mutex_unlock(&r->mu);
            json_decref(p->auths);
            free(p);
        }
        return kc_err_set(err, KC_ENOMEM, 0, "ErrImagePull", "cannot start the image pull");
    }
    pthread_attr_destroy(&at);
    *wait_ms = 20;
    return 0;
}

/* ---------- containers ---------- */

static void ctr_id(const struct kc_rt_container *c, char *out, size_t n)
{
    if (strlen(c->name) <= 30)
        snprintf(out, n, "%.36s-%s-%d", c->pod_uid, c->name, c->attempt);
    else
        snprintf(out, n, "%.36s-%08lx-%d", c->pod_uid, kc_hash_str(c->name) & 0xffffffffUL, c->attempt);
}

static int write_file(const char *path, const char *data, struct kc_err *err)
{
    FILE *f = fopen(path, "we");
    if (!f)
        return kc_err_set(err, KC_EIO, 0, "CreateContainerError", "open %.300s: %s", path, strerror(errno));
    size_t n = strlen(data);
    bool ok = fwrite(data, 1, n, f) == n;
    ok = !fclose(f) && ok;
    return ok ? 0 : kc_err_set(err, KC_EIO, 0, "CreateContainerError", "write %.300s", path);
}

/* rootfs: overlay (lower = the image's read-only tree) or, where overlay cannot mount, a copy. */
static int make_rootfs(struct rc *r, struct rc_ctr *k, const char *lower, struct kc_err *err)
{
    char root[RUNC_PATH_MAX + 16], up[RUNC_PATH_MAX + 16], wk[RUNC_PATH_MAX + 16];
    snprintf(root, sizeof root, "%s/rootfs", k->bundle);
    snprintf(up, sizeof up, "%s/upper", k->bundle);
    snprintf(wk, sizeof wk, "%s/work", k->bundle);
    int rc = rc_mkdirs(root, err);
    if (rc)
        return rc;
    if (r->overlay_ok && !rc_mkdirs(up, err) && !rc_mkdirs(wk, err)) {
        char opts[3 * RUNC_PATH_MAX + 64];
        snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", lower, up, wk);
        if (!mount("overlay", root, "overlay", 0, opts)) {
            k->mounted = true;
            return 0;
        }
    }
    char src[RUNC_PATH_MAX + 4];
    snprintf(src, sizeof src, "%s/.", lower);
    const char *argv[] = {"cp", "-a", src, root, NULL};
    struct kc_proc p = {.argv = argv, .out_fd = -1, .err_fd = -1, .timeout_ms = 120000};
    int st = 0;
    char *e = NULL;
    rc = kc_proc_run(&p, &st, NULL, &e, err);
    if (!rc && st)
        rc = kc_err_set(err, KC_EIO, 0, "CreateContainerError", "copy rootfs: %.300s", e ? e : "");
    free(e);
    return rc;
}

static void read_pid(struct rc_ctr *k)
{
    char p[RUNC_PATH_MAX + 8], b[32] = "";
    snprintf(p, sizeof p, "%s/pid", k->bundle);
    FILE *f = fopen(p, "re");
    if (f) {
        if (!fgets(b, sizeof b, f))
            b[0] = 0;
        fclose(f);
    }
    k->pid = (pid_t)atoi(b);
}

/* The last error runc logged (--log-format json lines {"level":"error","msg":...}). */
static void runc_log_error(const char *path, char *out, size_t n)
{
    snprintf(out, n, "runc create failed (no message)");
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    char line[2048];
    while (fgets(line, sizeof line, f)) {
        json_t *j = kc_json_loads(line, 0, NULL);
        const char *lvl = jstr(j, "level"), *msg = jstr(j, "msg");
        if (lvl && msg && (!strcmp(lvl, "error") || !strcmp(lvl, "fatal")))
            snprintf(out, n, "%s", msg);
        json_decref(j);
    }
    fclose(f);
}

static void free_ctr(struct rc_ctr *k)
{
    json_decref(k->cspec);
    free(k);
}

static int rc_create_container(void *rt, const struct kc_rt_container *c, char *id, size_t idn, int *wait_ms,
                               struct kc_err *err)
{
    struct rc *r = rt;
    *wait_ms = 0;
    struct rc_ctr *k = calloc(1, sizeof *k);
    if (!k)
        return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
    ctr_id(c, k->id, sizeof k->id);
    snprintf(k->pod_uid, sizeof k->pod_uid, "%s", c->pod_uid);
    snprintf(k->name, sizeof k->name, "%s", c->name);
    k->attempt = c->attempt;
    k->init = c->init;
    k->ready = -1;
    json_t *g = json_object_get(json_object_get(c->pod, "spec"), "terminationGracePeriodSeconds");
    k->grace_s = json_is_integer(g) ? json_integer_value(g) : 30;
    snprintf(k->bundle, sizeof k->bundle, "%.500s/bundles/%.100s", r->dir, k->id);

    pthread_mutex_lock(&r->mu);
    struct kc_image_info img = {0};
    struct kc_image_info *ip = kc_map_get(&r->images, c->image);
    if (ip) {
        img = *ip;
        img.config = json_incref(ip->config);
    }
    struct rc_sandbox sb = {0}, *sp = kc_map_get(&r->sandboxes, c->pod_uid);
    if (sp)
        sb = *sp;
    struct rc_ctr *old = kc_map_get(&r->ctrs, k->id);
    pthread_mutex_unlock(&r->mu);
    if (!ip && !r->o.image_present(r->o.image_ctx, c->image, &img)) {
        free(k);
        return kc_err_set(err, KC_ENOTFOUND, 0, "CreateContainerError", "image \"%.400s\" is not present", c->image);
    }
    if (!sp) {
        rc_info_release(&img);
        free(k);
        return kc_err_set(err, KC_ENOTFOUND, 0, "CreateContainerError", "the pod has no sandbox");
    }
    if (old) { /* a leftover of a failed try with the same id */
        pthread_mutex_lock(&r->mu);
        kc_map_del(&r->ctrs, old->id);
        pthread_mutex_unlock(&r->mu);
        destroy_ctr(r, old);
    }
    leftover(r, k);
    snprintf(k->pod_ip, sizeof k->pod_ip, "%s", sb.host_network ? "127.0.0.1" : sb.ip);
    json_t *cfg = NULL;
    int rc = rc_bundle_config(r, c, &img, &sb, k->id, &cfg, err);
    if (!rc)
        rc = rc_mkdirs(k->bundle, err);
    if (!rc) {
        char *s = json_dumps(cfg, JSON_COMPACT);
        char p[RUNC_PATH_MAX + 16];
        snprintf(p, sizeof p, "%s/config.json", k->bundle);
        rc = s ? write_file(p, s, err) : kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
        free(s);
    }
    json_decref(cfg);
    if (!rc)
        rc = make_rootfs(r, k, img.rootfs, err);
    rc_info_release(&img);
    int wout = -1, werr = -1;
    if (!rc)
        rc = rc_logs_open(r, c->pod_uid, c->name, c->attempt, &wout, &werr, err);
    if (!rc) {
        char pidf[RUNC_PATH_MAX + 8];
        snprintf(pidf, sizeof pidf, "%s/pid", k->bundle);
        char logf[RUNC_PATH_MAX + 16];
        snprintf(logf, sizeof logf, "%s/runc.log", k->bundle);
        /* `run --detach` = create + start in one runc process: a runc start costs ~50 ms more */
        const char *argv[] = {r->runc, "--root", r->runc_root, "--log", logf, "--log-format", "json", "run",
                              "--detach", "--bundle", k->bundle, "--pid-file", pidf, k->id, NULL};
        struct kc_proc p = {.argv = argv, .path = rc_runc_exe(r), .out_fd = wout, .err_fd = werr};
        int st = 0;
        atomic_fetch_add(&r->starting, 1);
        rc = kc_proc_run(&p, &st, NULL, NULL, err);
        if (atomic_fetch_sub(&r->starting, 1) == 1)
            rc_netpool_kick(r);
        if (!rc && st) {
            char msg[700];
            runc_log_error(logf, msg, sizeof msg);
            rc = kc_err_set(err, KC_EIO, 0, "CreateContainerError", "%s", msg);
            if (strstr(msg, "exec:") || strstr(msg, "executable file not found"))
                snprintf(err->reason, sizeof err->reason, "%s", "StartError");
        }
        close(wout);
        close(werr);
    }
    if (!rc) {
        read_pid(k);
        k->created = k->started = true;
        k->started_ms = rc_now_ms();
        rc_probe_arm(k, rc_container_spec(c->pod, c->name, c->init), k->started_ms);
    }
    int perr = 0;
    pthread_mutex_lock(&r->mu);
    kc_map_put(&r->ctrs, k->id, k, &perr);
    pthread_mutex_unlock(&r->mu);
    if (rc || perr) {
        pthread_mutex_lock(&r->mu);
        kc_map_del(&r->ctrs, k->id);
        pthread_mutex_unlock(&r->mu);
        destroy_ctr(r, k);
        return rc ? rc : kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
    }
    snprintf(id, idn, "runc://%s", k->id);
    return 0;
}

/* A container of the same id from an earlier agent process (state in runc's root, a mounted rootfs):
 * removed, so that the new one can be made. */
static void leftover(struct rc *r, const struct rc_ctr *k)
{
    char p[RUNC_PATH_MAX + 100];
    snprintf(p, sizeof p, "%s/%s", r->runc_root, k->id);
    struct kc_err err = {0};
    if (!access(p, F_OK)) {
        const char *args[] = {"delete", "--force", k->id, NULL};
        rc_runc(r, args, 0, NULL, &err);
    }
    snprintf(p, sizeof p, "%s/rootfs", k->bundle);
    umount2(p, MNT_DETACH); /* fails harmlessly when nothing is mounted */
    rc_rmtree(k->bundle);
}

static const char *bare(const char *id) { return !strncmp(id, "runc://", 7) ? id + 7 : id; }

static int rc_start_container(void *rt, const char *id, int *wait_ms, struct kc_err *err)
{
    struct rc *r = rt;
    *wait_ms = 0;
    id = bare(id);
    pthread_mutex_lock(&r->mu);
    struct rc_ctr *k = kc_map_get(&r->ctrs, id);
    bool started = k && k->started;
    pthread_mutex_unlock(&r->mu);
    if (!k)
        return kc_err_set(err, KC_ENOTFOUND, 0, "RunContainerError", "no container %.100s", id);
    if (started)
        return 0;
    const char *args[] = {"start", id, NULL};
    int rc = rc_runc(r, args, 0, NULL, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&r->mu);
    k->started = true;
    k->started_ms = rc_now_ms();
    rc_probe_arm(k, k->cspec, k->started_ms);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static int64_t cg_counter(struct rc *r, const struct rc_ctr *k, const char *file, const char *key)
{
    char p[RUNC_PATH_MAX];
    if (r->cgroup_v2)
        snprintf(p, sizeof p, "/sys/fs/cgroup/kubec/pod%s/%s/%s", k->pod_uid, k->id, file);
    else
        snprintf(p, sizeof p, "/sys/fs/cgroup/memory/kubec/pod%s/%s/%s", k->pod_uid, k->id, file);
    FILE *f = fopen(p, "re");
    if (!f)
        return 0;
    char line[256];
    int64_t v = 0;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ' ')
            v = strtoll(line + kl + 1, NULL, 10);
    fclose(f);
    return v;
}

/* Caller holds r->mu. Records the exit if the init process has ended. */
static void reap(struct rc *r, struct rc_ctr *k)
{
    if (!k->started || k->exited)
        return;
    int st = 0;
    pid_t w = k->pid > 0 ? waitpid(k->pid, &st, WNOHANG) : -1;
    if (w == 0)
        return;
    if (w < 0) { /* not our child (agent restarted): the process is gone if kill(0) fails */
        if (k->pid > 0 && kill(k->pid, 0) == 0)
            return;
        k->exit_code = 255;
        snprintf(k->reason, sizeof k->reason, "%s", "Unknown");
    } else {
        k->exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        bool oom = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL &&
                   cg_counter(r, k, r->cgroup_v2 ? "memory.events" : "memory.oom_control", "oom_kill") > 0;
        snprintf(k->reason, sizeof k->reason, "%s", oom ? "OOMKilled" : k->exit_code ? "Error" : "Completed");
    }
    k->exited = true;
    k->finished_ms = rc_now_ms();
}

static int rc_container_status(void *rt, const char *id, struct kc_rt_status *out, int *next_ms, struct kc_err *err)
{
    struct rc *r = rt;
    memset(out, 0, sizeof *out);
    *next_ms = 0;
    id = bare(id);
    pthread_mutex_lock(&r->mu);
    struct rc_ctr *k = kc_map_get(&r->ctrs, id);
    if (!k) {
        pthread_mutex_unlock(&r->mu);
        return kc_err_set(err, KC_ENOTFOUND, 0, "NotFound", "no container %.100s", id);
    }
    reap(r, k);
    out->started_ms = k->started_ms;
    out->probes_known = true;
    out->ready = k->ready;
    out->started = k->startup_done;
    if (k->exited) {
        out->state = KC_RT_EXITED;
        out->exit_code = k->exit_code;
        out->finished_ms = k->finished_ms;
        snprintf(out->reason, sizeof out->reason, "%s", k->reason);
        snprintf(out->message, sizeof out->message, "%s", k->liveness_msg);
    } else if (k->started) {
        out->state = KC_RT_RUNNING;
        *next_ms = k->probe[0] || k->probe[1] || k->probe[2] ? POLL_PROBED_MS : POLL_RUNNING_MS;
    } else {
        out->state = KC_RT_CREATED;
    }
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static int rc_stop_container(void *rt, const char *id, int grace_s, int *wait_ms, struct kc_err *err)
{
    struct rc *r = rt;
    *wait_ms = 0;
    id = bare(id);
    pthread_mutex_lock(&r->mu);
    struct rc_ctr *k = kc_map_get(&r->ctrs, id);
    if (!k) {
        pthread_mutex_unlock(&r->mu);
        return 0;
    }
    reap(r, k);
    if (!k->created || k->exited || !k->started) {
        pthread_mutex_unlock(&r->mu);
        return 0;
    }
    const char *sig = NULL;
    int64_t now = rc_now_ms();
    if (!k->stop_sent_ms) {
        k->stop_sent_ms = now;
        sig = grace_s > 0 ? "TERM" : "KILL";
        if (grace_s <= 0)
            k->kill_sent_ms = now;
    } else if (grace_s <= 0 && !k->kill_sent_ms) {
        k->kill_sent_ms = now;
        sig = "KILL";
    }
    pthread_mutex_unlock(&r->mu);
    if (sig) {
        const char *args[] = {"kill", id, sig, NULL};
        rc_runc(r, args, 5000, NULL, err); /* fails when it has just exited: the next poll sees that */
    }
    *wait_ms = STOP_POLL_MS;
    return 0;
}

/* Kills and removes everything of one container except its logs. k is out of the table already. */
static void destroy_ctr(struct rc *r, struct rc_ctr *k)
{
    struct kc_err err = {0};
    if (k->created) {
        const char *args[] = {"delete", "--force", k->id, NULL};
        rc_runc(r, args, 0, NULL, &err);
    }
    if (k->pid > 0 && !k->exited) { /* delete --force killed it: collect the zombie */
        int st;
        for (int i = 0; i < 50 && waitpid(k->pid, &st, WNOHANG) == 0; i++)
            usleep(20000);
    }
    if (k->mounted) {
        char root[RUNC_PATH_MAX + 16];
        snprintf(root, sizeof root, "%s/rootfs", k->bundle);
        if (umount2(root, 0) && umount2(root, MNT_DETACH))
            k->mounted = true;
        else
            k->mounted = false;
    }
    if (!k->mounted)
        rc_rmtree(k->bundle);
    char cg[300];
    snprintf(cg, sizeof cg, "kubec/pod%.60s/%.80s", k->pod_uid, k->id);
    cgroup_rmdir(r, cg);
    free_ctr(k);
}

static int rc_remove_container(void *rt, const char *id, struct kc_err *err)
{
    (void)err;
    struct rc *r = rt;
    id = bare(id);
    pthread_mutex_lock(&r->mu);
    struct rc_ctr *k = kc_map_get(&r->ctrs, id);
    if (k && k->probing) { /* the prober holds it by id only; it re-checks the table afterwards */
        k->probing = false;
    }
    if (k)
        kc_map_del(&r->ctrs, id);
    pthread_mutex_unlock(&r->mu);
    if (k)
        destroy_ctr(r, k);
    return 0;
}

/* ---------- setup / teardown ---------- */

static void free_maps(struct rc *r)
{
    const char *k;
    void *v;
    for (long i = kc_map_next(&r->ctrs, 0, &k, &v); i >= 0; i = kc_map_next(&r->ctrs, i + 1, &k, &v))
        free_ctr(v);
    for (long i = kc_map_next(&r->sandboxes, 0, &k, &v); i >= 0; i = kc_map_next(&r->sandboxes, i + 1, &k, &v))
        free(v);
    for (long i = kc_map_next(&r->images, 0, &k, &v); i >= 0; i = kc_map_next(&r->images, i + 1, &k, &v)) {
        rc_info_release(v);
        free(v);
    }
    kc_map_release(&r->ctrs);
    kc_map_release(&r->sandboxes);
    kc_map_release(&r->images);
    kc_map_release(&r->pulls);
}

static void rc_free(void *rt)
{
    struct rc *r = rt;
    if (!r)
        return;
    rc_probe_stop(r);
    rc_netpool_stop(r);
    /* pulls still running hold r: wait for them (bounded by the pull's own timeouts) */
    for (;;) {
        bool running = false;
        const char *k;
        void *v;
        pthread_mutex_lock(&r->mu);
        for (long i = kc_map_next(&r->pulls, 0, &k, &v); i >= 0; i = kc_map_next(&r->pulls, i + 1, &k, &v)) {
            struct rc_pull *p = v;
            if (!p->done)
                running = true;
            else {
                kc_map_del(&r->pulls, k);
                rc_info_release(&p->info);
                free(p);
            }
        }
        pthread_mutex_unlock(&r->mu);
        if (!running)
            break;
        usleep(50000);
    }
    rc_logs_stop(r);
    free_maps(r);
    if (r->runc_fd >= 0)
        close(r->runc_fd);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static const struct kc_runtime_ops rc_ops = {
    .name = "runc",
    .run_sandbox = rc_run_sandbox,
    .remove_sandbox = rc_remove_sandbox,
    .image_present = rc_image_present,
    .pull_image = rc_pull_image,
    .create_container = rc_create_container,
    .start_container = rc_start_container,
    .container_status = rc_container_status,
    .stop_container = rc_stop_container,
    .remove_container = rc_remove_container,
    .free = rc_free,
};

static bool have_overlay(void)
{
    FILE *f = fopen("/proc/filesystems", "re");
    if (!f)
        return false;
    char line[128];
    bool ok = false;
    while (fgets(line, sizeof line, f))
        ok = ok || strstr(line, "\toverlay\n") != NULL;
    fclose(f);
    return ok;
}

/* A bare command name looked up in $PATH once, so that each of the many runc calls is one execve
 * instead of one per PATH entry before the hit. Left as given when not found (the spawn reports it). */
static void resolve_exe(const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s", name);
    const char *path = getenv("PATH");
    if (strchr(name, '/') || !path)
        return;
    for (const char *d = path; *d;) {
        size_t len = strcspn(d, ":");
        if (len && (size_t)snprintf(out, n, "%.*s/%s", (int)len, d, name) < n && !access(out, X_OK))
            return;
        d += len + (d[len] == ':');
    }
    snprintf(out, n, "%s", name);
}

/* runc (1.1) protects itself against CVE-2019-5736 by copying its own binary into a sealed memfd and
 * re-executing that copy in every `runc init`, unless it is already running from such a memfd: an
 * 8.7 MB copy and a page-faulted re-exec per container start and per exec probe. The agent makes that
 * copy once and executes runc from it (/proc/self/fd/N of the spawned child), so runc sees itself
 * already cloned; the sealed copy cannot be overwritten from a container, which is the point of
 * runc's own copy. Seals as runc checks them (F_SEAL_SEAL|SHRINK|GROW|WRITE). ~5 ms per start here.
 * Only for ELF files (a wrapper script could not be run through a closed descriptor); on any failure
 * runc is executed by its path as before. */
static void sealed_runc(struct rc *r)
{
    r->runc_fd = -1;
    int in = open(r->runc, O_RDONLY | O_CLOEXEC);
    char magic[4] = {0};
    if (in < 0 || read(in, magic, 4) != 4 || memcmp(magic, "\177ELF", 4) || lseek(in, 0, SEEK_SET)) {
        if (in >= 0)
            close(in);
        return;
    }
    int fd = memfd_create("runc", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    bool ok = fd >= 0;
    char buf[65536];
    ssize_t n;
    while (ok && (n = read(in, buf, sizeof buf)) != 0) {
        ok = n > 0;
        for (ssize_t off = 0; ok && off < n;) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            ok = w > 0;
            off += w > 0 ? w : 0;
        }
    }
    close(in);
    if (ok)
        ok = !fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
    if (!ok) {
        if (fd >= 0)
            close(fd);
        return;
    }
    r->runc_fd = fd;
    snprintf(r->runc_exe, sizeof r->runc_exe, "/proc/self/fd/%d", fd);
}

int kc_runc_runtime_new(const struct kc_runc_opts *o, const struct kc_runtime_ops **ops, void **impl,
                        struct kc_err *err)
{
    if (!o || !o->data_dir || !*o->data_dir || !o->image_pull || !o->image_present)
        return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "runc runtime: data dir and image functions are required");
    if (strlen(o->data_dir) > 400)
        return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "runc runtime: data dir path too long");
    struct rc *r = calloc(1, sizeof *r);
    if (!r)
        return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
    r->o = *o;
    if (o->data_dir[0] == '/')
        snprintf(r->dir, sizeof r->dir, "%s", o->data_dir);
    else {
        char cwd[512];
        snprintf(r->dir, sizeof r->dir, "%s/%s", getcwd(cwd, sizeof cwd) ? cwd : ".", o->data_dir);
    }
    snprintf(r->runc_root, sizeof r->runc_root, "%.500s/runc", r->dir);
    resolve_exe(o->runc_path && *o->runc_path ? o->runc_path : "runc", r->runc, sizeof r->runc);
    sealed_runc(r);
    snprintf(r->cni_bin, sizeof r->cni_bin, "%s", o->cni_bin_dir && *o->cni_bin_dir ? o->cni_bin_dir : "/usr/lib/cni");
    snprintf(r->cidr, sizeof r->cidr, "%s", o->pod_cidr && *o->pod_cidr ? o->pod_cidr : "10.88.0.0/16");
    snprintf(r->bridge, sizeof r->bridge, "%.15s", o->bridge && *o->bridge ? o->bridge : "kubec0");
    struct statfs sf;
    r->cgroup_v2 = !statfs("/sys/fs/cgroup", &sf) && sf.f_type == CGROUP2_MAGIC;
    r->overlay_ok = have_overlay();
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    kc_map_init(&r->ctrs);
    kc_map_init(&r->sandboxes);
    kc_map_init(&r->pulls);
    kc_map_init(&r->images);
    char p[RUNC_PATH_MAX + 16];
    int rc = rc_mkdirs(r->runc_root, err);
    snprintf(p, sizeof p, "%.500s/bundles", r->dir);
    if (!rc)
        rc = rc_mkdirs(p, err);
    snprintf(p, sizeof p, "%.500s/pods", r->dir);
    if (!rc)
        rc = rc_mkdirs(p, err);
    /* container processes re-parent to us when `runc create` exits: exact exit codes via waitpid */
    if (!rc && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
        rc = kc_err_set(err, KC_EIO, 0, "InternalError", "prctl(PR_SET_CHILD_SUBREAPER): %s", strerror(errno));
    if (!rc)
        rc = rc_logs_start(r, err);
    if (!rc)
        rc = rc_probe_start(r, err);
    if (!rc) /* two: the next pods of a burst find theirs ready; the refill runs between */
        rc = rc_netpool_start(r, 2, err);
    if (rc) {
        rc_free(r);
        return rc;
    }
    *ops = &rc_ops;
    *impl = r;
    return 0;
}
