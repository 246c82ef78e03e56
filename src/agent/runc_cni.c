/* runc_cni.c — pod networking for the runc runtime: a network namespace per pod, named as `ip netns
 * add kubec-<uid>` names it (/run/netns/kubec-<uid>, so `ip netns` lists it and it outlives no pod),
 * wired by the standard CNI plugins called directly (CNI_COMMAND=ADD/DEL, network config JSON on
 * stdin, result JSON on stdout):
 *
 *   namespace + lo up             made in-process as `ip netns add` and `ip link set lo up` do (a short
 *                                 thread unshares its network namespace, bind-mounts it on the
 *                                 /run/netns file and raises lo by ioctl): two `ip` processes, 60–110 ms
 *                                 per pod on this machine, off the start path
 *   bridge (isGateway, no ipMasq) a veth pair into bridge <opts.bridge>, whose gateway address lets the
 *                                 host (probes, the agent) and every pod on the node reach pod IPs
 *   host-local IPAM               addresses from opts.pod_cidr, state in <data dir>/cni
 *
 * hostNetwork pods get no namespace: they share the host's and report the host IP.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "agent/runc_int.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/jsonparse.h"

#define CNI_VERSION "1.0.0"

static int plugin(struct rc *r, const char *cmd, const char *type, const struct rc_sandbox *sb, const char *conf,
                  char **out, struct kc_err *err)
{
    char bin[400], e_cmd[64], e_id[128], e_ns[200], e_path[300];
    snprintf(bin, sizeof bin, "%s/%s", r->cni_bin, type);
    snprintf(e_cmd, sizeof e_cmd, "CNI_COMMAND=%s", cmd);
    snprintf(e_id, sizeof e_id, "CNI_CONTAINERID=%.100s", sb->cni_id[0] ? sb->cni_id : sb->uid);
    snprintf(e_ns, sizeof e_ns, "CNI_NETNS=/run/netns/%.150s", sb->netns_name);
    snprintf(e_path, sizeof e_path, "CNI_PATH=%.280s", r->cni_bin);
    const char *env[] = {e_cmd, e_id, e_ns, "CNI_IFNAME=eth0", e_path, NULL};
    const char *argv[] = {bin, NULL};
    struct kc_proc p = {.argv = argv, .env = env, .in = conf, .out_fd = -1, .err_fd = -1, .timeout_ms = 20000};
    int st = 0;
    char *o = NULL, *e = NULL;
    int rc = kc_proc_run(&p, &st, &o, &e, err);
    if (!rc && st != 0) {
        /* CNI errors come as JSON {"code":..,"msg":..,"details":..} on stdout */
        json_t *j = kc_json_loads(o ? o : "", 0, NULL);
        rc = kc_err_set(err, KC_EIO, 0, "FailedCreatePodSandBox", "CNI %s %s: %.300s%s%.300s", type, cmd,
                        json_string_value(json_object_get(j, "msg")) ?: (e && *e ? e : o ? o : ""),
                        json_object_get(j, "details") ? ": " : "",
                        json_string_value(json_object_get(j, "details")) ?: "");
        json_decref(j);
    }
    if (out && !rc)
        *out = o;
    else
        free(o);
    free(e);
    return rc;
}

static char *bridge_conf(struct rc *r)
{
    char ipam_dir[RUNC_PATH_MAX + 8];
    snprintf(ipam_dir, sizeof ipam_dir, "%.500s/cni", r->dir);
    json_t *c = json_pack("{s:s,s:s,s:s,s:s,s:b,s:b,s:b,s:{s:s,s:[[{s:s}]],s:s}}", "cniVersion", CNI_VERSION, "name",
                          "kubec", "type", "bridge", "bridge", r->bridge, "isGateway", 1, "ipMasq", 0, "hairpinMode",
                          1, "ipam", "type", "host-local", "ranges", "subnet", r->cidr, "dataDir", ipam_dir);
    char *s = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    return s;
}

#define NETNS_DIR "/run/netns"

struct ns_job {
    const char *path;
    const char *step; /* what failed, NULL if nothing */
    int eno;
};

/* Runs on a thread of its own: the new network namespace is this thread's only, and stays alive
 * through the bind mount when the thread ends. */
static void *ns_make(void *arg)
{
    struct ns_job *j = arg;
    char self[64];
    snprintf(self, sizeof self, "/proc/self/task/%ld/ns/net", (long)syscall(SYS_gettid));
    if (unshare(CLONE_NEWNET)) {
        j->step = "unshare(CLONE_NEWNET)";
    } else if (mount(self, j->path, "none", MS_BIND, NULL)) {
        j->step = "bind mount";
    } else {
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr = {0};
        snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
        if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
            j->step = "lo flags";
        else if (ifr.ifr_flags |= IFF_UP, ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
            j->step = "lo up";
        if (s >= 0)
            close(s);
    }
    if (j->step)
        j->eno = errno;
    return NULL;
}

/* /run/netns as `ip` keeps it: a shared mount point, so that namespaces mounted there show in every
 * mount namespace that has it. */
static int netns_dir(struct kc_err *err)
{
    if (mkdir(NETNS_DIR, 0755) && errno != EEXIST)
        return kc_err_set(err, KC_EIO, 0, "FailedCreatePodSandBox", "mkdir " NETNS_DIR ": %s", strerror(errno));
    if (!mount("", NETNS_DIR, "none", MS_SHARED | MS_REC, NULL))
        return 0;
    if (errno == EINVAL && !mount(NETNS_DIR, NETNS_DIR, "none", MS_BIND | MS_REC, NULL) &&
        !mount("", NETNS_DIR, "none", MS_SHARED | MS_REC, NULL))
        return 0;
    return kc_err_set(err, KC_EIO, 0, "FailedCreatePodSandBox", "make " NETNS_DIR " a shared mount: %s",
                      strerror(errno));
}

/* The empty file a namespace is bind-mounted on, as `ip netns add` makes it; fails if it exists. */
static int netns_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

static void netns_delete(const char *name)
{
    char p[200];
    snprintf(p, sizeof p, NETNS_DIR "/%.150s", name);
    umount2(p, MNT_DETACH);
    unlink(p);
}

/* `ip netns add NAME` + `ip -n NAME link set lo up`, in-process. */
static int netns_add(const char *name, struct kc_err *err)
{
    char p[200];
    snprintf(p, sizeof p, NETNS_DIR "/%.150s", name);
    int rc = netns_dir(err);
    if (rc)
        return rc;
    if (netns_file(p))
        return kc_err_set(err, KC_EIO, 0, "FailedCreatePodSandBox", "create %s: %s", p, strerror(errno));
    struct ns_job j = {.path = p};
    pthread_t t;
    if (pthread_create(&t, NULL, ns_make, &j)) {
        j.step = "thread";
        j.eno = EAGAIN;
    } else {
        pthread_join(t, NULL);
    }
    if (j.step) {
        netns_delete(name);
        return kc_err_set(err, KC_EIO, 0, "FailedCreatePodSandBox", "network namespace %s: %s: %s", name, j.step,
                          strerror(j.eno));
    }
    return 0;
}

static bool pool_take(struct rc *r, struct rc_sandbox *sb);

int rc_net_setup(struct rc *r, struct rc_sandbox *sb, struct kc_err *err)
{
    if (sb->host_network)
        return 0;
    snprintf(sb->netns_name, sizeof sb->netns_name, "kubec-%.60s", sb->uid);
    if (!sb->netns) {
        char p[200];
        snprintf(p, sizeof p, "/run/netns/%s", sb->netns_name);
        if (access(p, F_OK) == 0) { /* a leftover (agent crash): start from a clean namespace */
            sb->netns = sb->cni = true;
            rc_net_teardown(r, sb);
        }
        if (!sb->cni_id[0] && pool_take(r, sb)) /* a pod's (pool entries have their CNI id) */
            return 0;
        /* lo comes up with it: what the loopback plugin does, without starting a Go binary (~70 ms here) */
        int rc = netns_add(sb->netns_name, err);
        if (rc)
            return rc;
        sb->netns = true;
    }
    int rc;
    char *conf = bridge_conf(r), *out = NULL;
    if (!conf)
        return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
    rc = plugin(r, "ADD", "bridge", sb, conf, &out, err);
    free(conf);
    if (rc)
        return rc;
    sb->cni = true;
    json_t *res = kc_json_loads(out, 0, NULL);
    free(out);
    const char *addr = json_string_value(json_object_get(json_array_get(json_object_get(res, "ips"), 0), "address"));
    if (!addr) {
        json_decref(res);
        return kc_err_set(err, KC_EIO, 0, "FailedCreatePodSandBox", "CNI bridge ADD returned no IP address");
    }
    snprintf(sb->ip, sizeof sb->ip, "%.45s", addr);
    char *slash = strchr(sb->ip, '/');
    if (slash)
        *slash = 0;
    json_decref(res);
    return 0;
}

/* ---- the pool ----
 * Entries are named kubec-pool-<tag>-<start time>-<n> (tag: from the data dir, so that two agents on
 * one machine keep apart; never reused, as a pod keeps its entry's name as CNI id) and wired with that
 * name as CNI_CONTAINERID. Taking one moves its mount to /run/netns/kubec-<uid> (the name every other part and `ip netns` use); the sandbox remembers the
 * CNI id for its DEL. Thread: one refiller, woken when an entry is taken. A crashed agent's entries are
 * torn down at the next start (CNI DEL with their id, so host-local frees their addresses). */
#define POOL_MAX 8

struct rc_netpool {
    struct rc *r;
    pthread_t thr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    int size, n;
    unsigned seq;
    time_t epoch;
    char tag[16];
    struct rc_sandbox e[POOL_MAX];
};

static bool pool_take(struct rc *r, struct rc_sandbox *sb)
{
    struct rc_netpool *pl = r->pool;
    if (!pl)
        return false;
    pthread_mutex_lock(&pl->mu);
    struct rc_sandbox e = {0};
    bool got = pl->n > 0;
    if (got)
        e = pl->e[--pl->n];
    pthread_cond_signal(&pl->cv);
    pthread_mutex_unlock(&pl->mu);
    if (!got)
        return false;
    char from[200], to[200];
    snprintf(from, sizeof from, NETNS_DIR "/%.150s", e.netns_name);
    snprintf(to, sizeof to, NETNS_DIR "/%.150s", sb->netns_name);
    bool made = !netns_file(to);
    if (!made || mount(from, to, "none", MS_BIND, NULL)) {
        if (made)
            unlink(to);
        rc_net_teardown(r, &e); /* a fresh one is made the usual way */
        return false;
    }
    netns_delete(e.netns_name); /* the namespace lives on under its new name */
    sb->netns = sb->cni = true;
    snprintf(sb->cni_id, sizeof sb->cni_id, "%s", e.netns_name);
    snprintf(sb->ip, sizeof sb->ip, "%s", e.ip);
    return true;
}

static int pool_make(struct rc_netpool *pl, struct rc_sandbox *e)
{
    struct kc_err err = {0};
    memset(e, 0, sizeof *e);
    snprintf(e->uid, sizeof e->uid, "pool-%s-%lx-%u", pl->tag, (long)pl->epoch, pl->seq++);
    /* rc_net_setup names the namespace kubec-<uid> and tears down a leftover of that name first */
    snprintf(e->cni_id, sizeof e->cni_id, "kubec-%s", e->uid);
    int rc = rc_net_setup(pl->r, e, &err);
    if (rc)
        rc_net_teardown(pl->r, e);
    return rc;
}

static void *pool_main(void *arg)
{
    pthread_setname_np(pthread_self(), "kc-netns-pool");
    struct rc_netpool *pl = arg;
    /* The CNI plugins a refill forks compete with container starts for the cores: a refill waits until
     * no `runc run` is under way (below), and at nice 19 (a per-thread value on Linux, inherited by the
     * threads and processes it starts) it yields to a start that begins while it runs. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19))
        kc_warn("agent", "netns pool: setpriority: %s", strerror(errno));
    pthread_mutex_lock(&pl->mu);
    while (!pl->stop) {
        if (pl->n >= pl->size) {
            pthread_cond_wait(&pl->cv, &pl->mu);
            continue;
        }
        /* A refill costs ~80 ms of CPU in the bridge and host-local plugins; beside a container start
         * (runc itself keeps more than one core busy) it slowed that start on two cores (perf sched:
         * runc waiting for a core while the plugins ran). So it waits until no `runc run` is under way;
         * the start that ends kicks it (rc_netpool_kick), the timed wait is a safety net. */
        if (atomic_load(&pl->r->starting) > 0) {
            struct timespec ts = kc_deadline(CLOCK_REALTIME, 0.05);
            pthread_cond_timedwait(&pl->cv, &pl->mu, &ts);
            continue;
        }
        pthread_mutex_unlock(&pl->mu);
        struct rc_sandbox e;
        int rc = pool_make(pl, &e);
        pthread_mutex_lock(&pl->mu);
        if (!rc && pl->n < POOL_MAX)
            pl->e[pl->n++] = e;
        else if (!rc) {
            pthread_mutex_unlock(&pl->mu);
            rc_net_teardown(pl->r, &e);
            pthread_mutex_lock(&pl->mu);
        }
        if (rc && !pl->stop) { /* CNI broken: try again later, pods fall back to the usual path */
            struct timespec ts = kc_deadline(CLOCK_REALTIME, 5);
            pthread_cond_timedwait(&pl->cv, &pl->mu, &ts);
        }
    }
    pthread_mutex_unlock(&pl->mu);
    return NULL;
}

int rc_netpool_start(struct rc *r, int size, struct kc_err *err)
{
    if (size <= 0)
        return 0;
    struct rc_netpool *pl = calloc(1, sizeof *pl);
    if (!pl)
        return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
    pl->r = r;
    pl->size = size > POOL_MAX ? POOL_MAX : size;
    snprintf(pl->tag, sizeof pl->tag, "%08lx", kc_hash_str(r->dir) & 0xffffffffUL);
    pl->epoch = time(NULL);
    /* leftovers of a crashed run of this agent: kubec-pool-<tag>-* */
    char prefix[40];
    snprintf(prefix, sizeof prefix, "kubec-pool-%s-", pl->tag);
    DIR *d = opendir(NETNS_DIR);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (strncmp(de->d_name, prefix, strlen(prefix)) || strlen(de->d_name) >= 90)
            continue;
        struct rc_sandbox e = {0};
        snprintf(e.netns_name, sizeof e.netns_name, "%s", de->d_name);
        snprintf(e.cni_id, sizeof e.cni_id, "%s", de->d_name);
        e.netns = e.cni = true;
        rc_net_teardown(r, &e);
    }
    if (d)
        closedir(d);
    pthread_mutex_init(&pl->mu, NULL);
    pthread_cond_init(&pl->cv, NULL);
    if (pthread_create(&pl->thr, NULL, pool_main, pl)) {
        pthread_cond_destroy(&pl->cv);
        pthread_mutex_destroy(&pl->mu);
        free(pl);
        return kc_err_set(err, KC_EIO, 0, "InternalError", "cannot start the network namespace pool");
    }
    r->pool = pl;
    return 0;
}

void rc_netpool_kick(struct rc *r)
{
    struct rc_netpool *pl = r->pool;
    if (!pl)
        return;
    pthread_mutex_lock(&pl->mu);
    pthread_cond_signal(&pl->cv);
    pthread_mutex_unlock(&pl->mu);
}

void rc_netpool_stop(struct rc *r)
{
    struct rc_netpool *pl = r->pool;
    if (!pl)
        return;
    pthread_mutex_lock(&pl->mu);
    pl->stop = true;
    pthread_cond_signal(&pl->cv);
    pthread_mutex_unlock(&pl->mu);
    pthread_join(pl->thr, NULL);
    r->pool = NULL;
    for (int i = 0; i < pl->n; i++)
        rc_net_teardown(r, &pl->e[i]);
    pthread_cond_destroy(&pl->cv);
    pthread_mutex_destroy(&pl->mu);
    free(pl);
}

void rc_net_teardown(struct rc *r, struct rc_sandbox *sb)
{
    struct kc_err err = {0};
    if (sb->cni) {
        char *conf = bridge_conf(r);
        if (conf)
            plugin(r, "DEL", "bridge", sb, conf, NULL, &err);
        free(conf);
        sb->cni = false;
    }
    if (sb->netns) {
        netns_delete(sb->netns_name);
        sb->netns = false;
    }
}
