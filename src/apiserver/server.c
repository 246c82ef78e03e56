/* server.c — `kubec server`: flags, start-up, signal handling, shutdown.
 *
 * Start-up order: data dir → log the storage backend (first line) → PKI and
 * kubeconfig → store → watch cache (lists the store once, then watches it)
 * → seed namespaces → namespace controller → HTTPS listener → "ready".
 * Shutdown on SIGTERM/SIGINT, in reverse: stop accepting, let in-flight
 * requests finish and watches end, stop controllers and the cache, close
 * the store (which finishes queued writes), exit 0.
 */
#include "apiserver/apiserver.h"
#include "apiserver/internal.h"

#include <errno.h>
#include <stdbool.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/inproc.h"
#include "client/leaderelect.h"
#include "agent/agent.h"
#include "scheduler/scheduler.h"
#include "controller/controller.h"
#include "pki/pki.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/timeutil.h"

void *kc_http_start(struct kc_server *srv, const struct sockaddr *sa, const char *cert, const char *key);
void kc_http_quiesce(void *d);
void kc_http_stop(void *d);
void *kc_http_start_plain(struct kc_server *srv, const struct sockaddr *sa);

static const char usage[] =
    "Usage: kubec server [flags]\n"
    "\n"
    "Runs the Kubernetes API server with its embedded store.\n"
    "\n"
    "Flags:\n"
    "  --data-dir DIR                 where the store, certificates and token live\n"
    "                                 (default /var/lib/kubec as root, else ~/.local/share/kubec)\n"
    "  --listen ADDR:PORT             HTTPS address to serve on (default 127.0.0.1:6443)\n"
    "  --write-kubeconfig PATH        also write the admin kubeconfig here (it is always written\n"
    "                                 to DIR/kubeconfig.yaml, mode 0600)\n"
    "  --datastore sqlite|etcd://HOST:PORT[,HOST:PORT...]\n"
    "                                 storage backend (default sqlite: DIR/state.db; etcd for several servers)\n"
    "  --etcd-cafile FILE             CA of the etcd servers (TLS)\n"
    "  --etcd-certfile FILE           client certificate for etcd (TLS client auth)\n"
    "  --etcd-keyfile FILE            client key for etcd\n"
    "  --etcd-prefix PREFIX           key prefix in etcd (default /registry)\n"
    "  --etcd-compaction-interval D   how often the server compacts etcd's history (default 5m; 0 = never)\n"
    "  --tls-san NAME                 extra DNS name or IP for the serving certificate (repeatable)\n"
    "  --watch-cache-sizes LIST       per-resource event history, e.g. deployments.apps#1000,pods#5000\n"
    "  --default-watch-cache-size N   event history per resource otherwise (default 1024; upstream 100)\n"
    "  --max-requests-inflight N      concurrent non-mutating requests before 429 (default 400, 0 = no limit)\n"
    "  --max-mutating-requests-inflight N\n"
    "                                 concurrent mutating requests before 429 (default 200, 0 = no limit)\n"
    "  --max-connections-per-ip N     open connections per client address (default 1024)\n"
    "  --idle-timeout SECONDS         close idle keep-alive connections after this (default 300; watches exempt)\n"
    "  --metrics-listen ADDR:PORT     also serve /metrics (and health) over plain HTTP without authentication\n"
    "  --event-ttl DURATION           how long Events are kept after their last occurrence (default 1h; e.g. 30m, 90s)\n"
    "  --disable LIST                 components not to run in this process:\n"
    "                                 controller-manager,scheduler,node-lifecycle,agent\n"
    "  --agent                        run a node agent for this machine (real containers through runc)\n"
    "  --kubelet-token-file FILE      bearer token of the node agents' log API (pods/log proxy)\n"
    "  --sim-nodes N                  run N simulated nodes (like KWOK) in this process (default 0)\n"
    "  --sim-profile P                pod lifecycle of sim nodes: fast | realistic | image-pull-fail | crashloop\n"
    "  --sim-node-template FILE       YAML/JSON with capacity, labels, taints for every sim node\n"
    "  --concurrent-deployment-syncs N  deployment controller workers (default 5, as upstream)\n"
    "  --concurrent-replicaset-syncs N  replicaset controller workers (default 5, as upstream)\n"
    "  --deployment-controller-sync-period DURATION  deployment resync period (default 30s)\n"
    "  --leader-elect[=BOOL]          run the in-process controller manager (with node-lifecycle) and\n"
    "                                 scheduler only while holding the Leases kube-system/kube-controller-manager\n"
    "                                 and kube-system/kube-scheduler (default true with etcd, false with sqlite)\n"
    "  --leader-elect-lease-duration D  (default 15s)   --leader-elect-renew-deadline D  (default 10s)\n"
    "  --leader-elect-retry-period D    (default 2s)    see docs/ha.md\n"
    "  -h, --help                     show this help\n";

static volatile sig_atomic_t dummy;

/* Leader election flags (one server per process, so kept here rather than in kc_server_opts). */
static struct kc_le_flags le_flags = KC_LE_FLAGS_INIT;

static void default_data_dir(char *out, size_t n)
{
    if (geteuid() == 0) {
        snprintf(out, n, "/var/lib/kubec");
        return;
    }
    const char *home = getenv("HOME");
    if (!home) {
        struct passwd *pw = getpwuid(getuid());
        home = pw ? pw->pw_dir : "/tmp";
    }
    snprintf(out, n, "%s/.local/share/kubec", home);
}

static int mkdir_p(const char *path, mode_t mode)
{
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, mode) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* --flag value | --flag=value */
static const char *flag_val(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (!strncmp(argv[*i], name, n)) {
        if (argv[*i][n] == '=')
            return argv[*i] + n + 1;
        if (argv[*i][n] == 0 && *i + 1 < argc)
            return argv[++*i];
    }
    return NULL;
}

/* Whole seconds of a duration flag (util/timeutil.h kc_parse_duration); -1 if malformed or < 1 s. */
static int parse_duration(const char *s)
{
    double d;
    return kc_parse_duration(s, &d) == 0 && d >= 1 ? (int)d : -1;
}

static char **split_list(const char *s)
{
    size_t cap = 4, n = 0;
    char **v = calloc(cap, sizeof *v);
    char *copy = strdup(s), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n + 2 > cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof *v);
        }
        v[n++] = strdup(t);
        v[n] = NULL;
    }
    free(copy);
    return v;
}

static int parse_flags(int argc, char **argv, struct kc_server_opts *o, char ***sans)
{
    default_data_dir(o->data_dir, sizeof o->data_dir);
    snprintf(o->listen, sizeof o->listen, "127.0.0.1:6443");
    snprintf(o->datastore, sizeof o->datastore, "sqlite");
    o->default_watch_cache_size = 1024;
    o->max_requests_inflight = 400;
    o->max_mutating_inflight = 200;
    o->max_conn_per_ip = 1024;
    o->idle_timeout_s = 300;
    o->event_ttl_s = 3600;
    size_t nsans = 0;
    *sans = calloc(65, sizeof **sans);
    for (int i = 1; i < argc; i++) {
        const char *v;
        struct kc_err lerr = {0};
        int le = kc_le_parse_flag(argc, argv, &i, &le_flags, &lerr);
        if (le < 0) {
            fprintf(stderr, "kubec server: %s\n", lerr.message);
            return -1;
        }
        if (le)
            continue;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage, stdout);
            exit(0);
        } else if ((v = flag_val(argc, argv, &i, "--data-dir")))
            snprintf(o->data_dir, sizeof o->data_dir, "%s", v);
        else if ((v = flag_val(argc, argv, &i, "--listen")))
            snprintf(o->listen, sizeof o->listen, "%s", v);
        else if ((v = flag_val(argc, argv, &i, "--write-kubeconfig")))
            snprintf(o->write_kubeconfig, sizeof o->write_kubeconfig, "%s", v);
        else if ((v = flag_val(argc, argv, &i, "--datastore")))
            snprintf(o->datastore, sizeof o->datastore, "%s", v);
        else if ((v = flag_val(argc, argv, &i, "--etcd-cafile")))
            snprintf(o->etcd_cafile, sizeof o->etcd_cafile, "%s", v);
        else if ((v = flag_val(argc, argv, &i, "--etcd-certfile")))
            snprintf(o->etcd_certfile, sizeof o->etcd_certfile, "%s", v);
        else if ((v = flag_val(argc, argv, &i, "--etcd-keyfile")))
            snprintf(o->etcd_keyfile, sizeof o->etcd_keyfile, "%s", v);
        else if ((v = flag_val(argc, argv, &i, "--etcd-prefix")))
            snprintf(o->etcd_prefix, sizeof o->etcd_prefix, "%s", v);
        else if ((v = flag_val(argc, argv, &i, "--etcd-compaction-interval"))) {
            o->etcd_compaction_s = !strcmp(v, "0") ? -1 : parse_duration(v);
            if (o->etcd_compaction_s == 0 || o->etcd_compaction_s < -1) {
                fprintf(stderr, "kubec server: --etcd-compaction-interval %s: expected a duration\n", v);
                return -1;
            }
        } else if ((v = flag_val(argc, argv, &i, "--tls-san"))) {
            if (nsans < 64)
                (*sans)[nsans++] = strdup(v);
        } else if ((v = flag_val(argc, argv, &i, "--watch-cache-sizes")))
            o->watch_cache_sizes = split_list(v);
        else if ((v = flag_val(argc, argv, &i, "--default-watch-cache-size")))
            o->default_watch_cache_size = atoi(v);
        else if ((v = flag_val(argc, argv, &i, "--max-requests-inflight")))
            o->max_requests_inflight = atoi(v);
        else if ((v = flag_val(argc, argv, &i, "--max-mutating-requests-inflight")))
            o->max_mutating_inflight = atoi(v);
        else if ((v = flag_val(argc, argv, &i, "--max-connections-per-ip")))
            o->max_conn_per_ip = atoi(v);
        else if ((v = flag_val(argc, argv, &i, "--idle-timeout")))
            o->idle_timeout_s = atoi(v);
        else if ((v = flag_val(argc, argv, &i, "--event-ttl"))) {
            o->event_ttl_s = parse_duration(v);
            if (o->event_ttl_s < 0) {
                fprintf(stderr, "kubec server: --event-ttl %s: expected a duration like 1h, 30m, 90s\n", v);
                return -1;
            }
        } else if (!strcmp(argv[i], "--agent"))
            o->agent = true;
        else if ((v = flag_val(argc, argv, &i, "--kubelet-token-file")))
            snprintf(o->kubelet_token_file, sizeof o->kubelet_token_file, "%s", v);
        else if ((v = flag_val(argc, argv, &i, "--sim-nodes")))
            o->sim_nodes = atoi(v);
        else if ((v = flag_val(argc, argv, &i, "--sim-profile")))
            snprintf(o->sim_profile, sizeof o->sim_profile, "%s", v);
        else if ((v = flag_val(argc, argv, &i, "--sim-node-template")))
            snprintf(o->sim_node_template, sizeof o->sim_node_template, "%s", v);
        else if ((v = flag_val(argc, argv, &i, "--disable")))
            o->disable = split_list(v);
        else if ((v = flag_val(argc, argv, &i, "--concurrent-deployment-syncs")))
            o->concurrent_deployment_syncs = atoi(v);
        else if ((v = flag_val(argc, argv, &i, "--concurrent-replicaset-syncs")))
            o->concurrent_replicaset_syncs = atoi(v);
        else if ((v = flag_val(argc, argv, &i, "--deployment-controller-sync-period"))) {
            o->deployment_sync_period_s = parse_duration(v);
            if (o->deployment_sync_period_s < 0) {
                fprintf(stderr, "kubec server: --deployment-controller-sync-period %s: expected a duration\n", v);
                return -1;
            }
        } else if ((v = flag_val(argc, argv, &i, "--metrics-listen")))
            snprintf(o->metrics_listen, sizeof o->metrics_listen, "%s", v);
        else {
            fprintf(stderr, "kubec server: unknown flag %s\n\n%s", argv[i], usage);
            return -1;
        }
    }
    struct kc_err lerr = {0};
    if (kc_le_flags_check(&le_flags, &lerr)) {
        fprintf(stderr, "kubec server: %s\n", lerr.message);
        return -1;
    }
    if (strcmp(o->datastore, "sqlite") && strncmp(o->datastore, "etcd://", 7) && strncmp(o->datastore, "http://", 7) &&
        strncmp(o->datastore, "https://", 8)) {
        fprintf(stderr, "kubec server: --datastore %s: expected sqlite or etcd://HOST:PORT[,HOST:PORT...]\n",
                o->datastore);
        return -1;
    }
    return 0;
}

static int resolve_listen(const char *listen, struct sockaddr_storage *ss, char *host, size_t hn, char *port,
                          size_t pn)
{
    const char *colon = strrchr(listen, ':');
    if (!colon)
        return -1;
    const char *h = listen;
    size_t hl = (size_t)(colon - listen);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    snprintf(host, hn, "%.*s", (int)hl, h);
    snprintf(port, pn, "%s", colon + 1);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res;
    if (getaddrinfo(*host ? host : NULL, port, &hints, &res))
        return -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

static void seed(struct kc_server *srv)
{
    const struct kc_resource *nsr = kc_resource_find("", "v1", "namespaces");
    static const char *names[] = {"default", "kube-system", "kube-public", "kube-node-lease"};
    for (int i = 0; i < 4; i++) {
        char key[256];
        snprintf(key, sizeof key, "%s%s", nsr->storage_prefix, names[i]);
        struct kc_obj *o = kc_cache_get(nsr->storage, key);
        if (o) {
            kc_obj_unref(o);
            continue;
        }
        json_t *ns = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind", "Namespace", "metadata", "name",
                               names[i]);
        struct kc_err err = {0};
        if (kc_server_create_json(srv, nsr, ns, &err) && err.code != 409)
            kc_warn("apiserver", "cannot create namespace %s: %s", names[i], err.message);
        json_decref(ns);
    }
    /* default/kubernetes: the Service clients expect to find for the API server */
    const struct kc_resource *svc = kc_resource_find("", "v1", "services");
    char key[256];
    snprintf(key, sizeof key, "%sdefault/kubernetes", svc->storage_prefix);
    struct kc_obj *o = kc_cache_get(svc->storage, key);
    if (o) {
        kc_obj_unref(o);
        return;
    }
    json_t *s = json_pack("{s:s,s:s,s:{s:s,s:s,s:{s:s,s:s}},s:{s:s,s:s,s:[s],s:[{s:s,s:s,s:i,s:i}],s:s}}",
                          "apiVersion", "v1", "kind", "Service", "metadata", "name", "kubernetes", "namespace",
                          "default", "labels", "component", "apiserver", "provider", "kubernetes", "spec", "type",
                          "ClusterIP", "clusterIP", "10.43.0.1", "clusterIPs", "10.43.0.1", "ports", "name", "https",
                          "protocol", "TCP", "port", 443, "targetPort", 6443, "sessionAffinity", "None");
    struct kc_err err = {0};
    kc_server_create_json(srv, svc, s, &err);
    json_decref(s);
}

/* ---------- components running as threads of the server ----------
 * Each talks to the API only through its own in-process client (src/client/inproc.h), exactly as it
 * would over HTTP as a separate process. Started after the store and cache, stopped before them. */

static int comp_cm_start(struct kc_server *srv, struct kc_client *c, void **out, struct kc_err *err)
{
    struct kc_cm_opts o;
    kc_cm_opts_default(&o);
    if (srv->opts.concurrent_deployment_syncs > 0)
        o.concurrent_deployment_syncs = srv->opts.concurrent_deployment_syncs;
    if (srv->opts.concurrent_replicaset_syncs > 0)
        o.concurrent_replicaset_syncs = srv->opts.concurrent_replicaset_syncs;
    if (srv->opts.deployment_sync_period_s > 0)
        o.deployment_sync_period_s = srv->opts.deployment_sync_period_s;
    struct kc_cm *cm = NULL;
    int rc = kc_cm_start(c, &o, &cm, err);
    *out = cm;
    return rc;
}
static void comp_cm_stop(void *p) { kc_cm_stop(p); }

static int comp_sched_start(struct kc_server *srv, struct kc_client *c, void **out, struct kc_err *err)
{
    (void)srv;
    struct kc_sched_opts o = {.scheduler_name = "default-scheduler", .bind_workers = 16};
    struct kc_scheduler *s = NULL;
    int rc = kc_scheduler_start(c, &o, &s, err);
    *out = s;
    return rc;
}
static void comp_sched_stop(void *p) { kc_scheduler_stop(p); }

static int comp_nlc_start(struct kc_server *srv, struct kc_client *c, void **out, struct kc_err *err)
{
    (void)srv;
    return kc_nodelifecycle_start(c, out, err);
}
static void comp_nlc_stop(void *p) { kc_nodelifecycle_stop(p); }

/* --sim-nodes N: virtual nodes served by an in-process node agent (sim runtime) */
static int comp_agent_start(struct kc_server *srv, struct kc_client *c, void **out, struct kc_err *err)
{
    if (srv->opts.agent) {
        /* --agent: this machine as a real node (runc runtime) */
        char dir[600];
        snprintf(dir, sizeof dir, "%s/agent", srv->opts.data_dir);
        struct kc_agent_opts o = {.runtime = "runc", .data_dir = dir, .serving_token = srv->kubelet_token};
        struct kc_agent *a = NULL;
        int rc = kc_agent_start(c, &o, &a, err);
        if (rc == 0 && !srv->kubelet_token && kc_agent_serving_token(a))
            srv->kubelet_token = strdup(kc_agent_serving_token(a));
        *out = a;
        return rc;
    }
    if (srv->opts.sim_nodes <= 0) {
        *out = NULL;
        return 0;
    }
    struct kc_agent_opts o = {.sim_nodes = srv->opts.sim_nodes,
                              .sim_profile = srv->opts.sim_profile[0] ? srv->opts.sim_profile : "fast",
                              .sim_node_template = srv->opts.sim_node_template[0] ? srv->opts.sim_node_template : NULL,
                              .node_name_prefix = "sim"};
    struct kc_agent *a = NULL;
    int rc = kc_agent_start(c, &o, &a, err);
    *out = a;
    return rc;
}
static void comp_agent_stop(void *p) { kc_agent_stop(p); }

struct component {
    const char *name, *user_agent;
    int (*start)(struct kc_server *srv, struct kc_client *c, void **out, struct kc_err *err);
    void (*stop)(void *);
};

static const struct component components[] = {
    {"controller-manager", "kube-controller-manager/kubec", comp_cm_start, comp_cm_stop},
    {"scheduler", "kube-scheduler/kubec", comp_sched_start, comp_sched_stop},
    {"node-lifecycle", "kube-controller-manager/kubec", comp_nlc_start, comp_nlc_stop},
    {"agent", "kubelet/kubec", comp_agent_start, comp_agent_stop},
};
#define NCOMP (sizeof components / sizeof components[0])

static bool disabled(struct kc_server *srv, const char *name)
{
    for (size_t i = 0; srv->opts.disable && srv->opts.disable[i]; i++)
        if (!strcmp(srv->opts.disable[i], name))
            return true;
    return false;
}

static int start_one(struct kc_server *srv, size_t i)
{
    struct kc_err err = {0};
    srv->comp_client[i] = kc_client_inproc_new(srv, 0, 0, components[i].user_agent);
    if (!srv->comp_client[i] || components[i].start(srv, srv->comp_client[i], &srv->comp_handle[i], &err)) {
        kc_error("apiserver", "%s: %s", components[i].name, err.message[0] ? err.message : "cannot start");
        kc_client_free(srv->comp_client[i]);
        srv->comp_client[i] = NULL;
        srv->comp_handle[i] = NULL;
        return -1;
    }
    return 0;
}

static void stop_one(struct kc_server *srv, size_t i)
{
    if (srv->comp_handle[i])
        components[i].stop(srv->comp_handle[i]);
    kc_client_free(srv->comp_client[i]);
    srv->comp_handle[i] = NULL;
    srv->comp_client[i] = NULL;
}

/* ---------- leader election (--leader-elect; docs/ha.md) ----------
 * One elector per Lease; while it holds the Lease its components run (started on the elector thread),
 * when it loses it they are stopped and the elector becomes a candidate again (upstream's binaries
 * exit instead; the API server in this process must keep serving). Node-lifecycle is part of
 * kube-controller-manager upstream, so it follows that Lease. The agent (nodes) is never gated. */
struct gate {
    const char *lease, *comps[2], *ua;
    struct kc_server *srv;
    struct kc_client *c; /* the elector's own in-process client */
    struct kc_le *le;
    bool has[2];
};
static struct gate gates[] = {
    {.lease = "kube-controller-manager", .comps = {"controller-manager", "node-lifecycle"},
     .ua = "kube-controller-manager/kubec"},
    {.lease = "kube-scheduler", .comps = {"scheduler", NULL}, .ua = "kube-scheduler/kubec"},
};
#define NGATES (sizeof gates / sizeof gates[0])

static size_t comp_index(const char *name)
{
    for (size_t i = 0; name && i < NCOMP; i++)
        if (!strcmp(components[i].name, name))
            return i;
    return NCOMP;
}

static int gate_started(void *ctx)
{
    struct gate *g = ctx;
    kc_info("apiserver", "leader election: %s acquired the lease kube-system/%s; starting", kc_le_identity(g->le),
            g->lease);
    for (size_t k = 0; k < 2; k++) {
        if (g->has[k] && start_one(g->srv, comp_index(g->comps[k]))) {
            while (k-- > 0) /* give the lease back with nothing running; the elector tries again later */
                if (g->has[k])
                    stop_one(g->srv, comp_index(g->comps[k]));
            return -1;
        }
    }
    return 0;
}

static void gate_stopped(void *ctx)
{
    struct gate *g = ctx;
    kc_info("apiserver", "leader election: not leading kube-system/%s any more; stopping", g->lease);
    for (size_t k = 2; k-- > 0;)
        if (g->has[k])
            stop_one(g->srv, comp_index(g->comps[k]));
}

static bool le_enabled(struct kc_server *srv)
{
    return le_flags.enabled >= 0 ? le_flags.enabled == 1 : strcmp(srv->opts.datastore, "sqlite") != 0;
}

/* Is component i started by a gate rather than directly? */
static bool gated(struct kc_server *srv, size_t i)
{
    if (!le_enabled(srv))
        return false;
    for (size_t g = 0; g < NGATES; g++)
        for (size_t k = 0; k < 2; k++)
            if (gates[g].comps[k] && !strcmp(gates[g].comps[k], components[i].name))
                return true;
    return false;
}

static void start_gates(struct kc_server *srv)
{
    if (!le_enabled(srv))
        return;
    static char identity[300]; /* one identity per process, as one upstream binary has */
    kc_le_default_identity(identity, sizeof identity);
    for (size_t g = 0; g < NGATES; g++) {
        struct gate *gt = &gates[g];
        gt->srv = srv;
        bool any = false;
        for (size_t k = 0; k < 2; k++) {
            gt->has[k] = gt->comps[k] && !disabled(srv, gt->comps[k]);
            any |= gt->has[k];
        }
        if (!any)
            continue;
        struct kc_le_config cfg = {.lease_namespace = "kube-system", .lease_name = gt->lease, .identity = identity,
                                   .component = gt->lease, .lease_duration_s = le_flags.lease_duration_s,
                                   .renew_deadline_s = le_flags.renew_deadline_s,
                                   .retry_period_s = le_flags.retry_period_s, .on_started_leading = gate_started,
                                   .on_stopped_leading = gate_stopped, .ctx = gt};
        struct kc_err err = {0};
        gt->c = kc_client_inproc_new(srv, 0, 0, gt->ua);
        if (!gt->c || kc_le_new(gt->c, &cfg, &gt->le, &err) || kc_le_start(gt->le, &err)) {
            kc_error("apiserver", "leader election for %s: %s", gt->lease, err.message[0] ? err.message : "failed");
            kc_le_free(gt->le);
            kc_client_free(gt->c);
            gt->le = NULL;
            gt->c = NULL;
            continue;
        }
        kc_info("apiserver", "leader election: candidate %s for the lease kube-system/%s", kc_le_identity(gt->le),
                gt->lease);
    }
}

/* Stops electors (their components stop, held Leases are released). */
static void stop_gates(void)
{
    for (size_t g = 0; g < NGATES; g++) {
        kc_le_free(gates[g].le);
        kc_client_free(gates[g].c);
        gates[g].le = NULL;
        gates[g].c = NULL;
    }
}

static void start_components(struct kc_server *srv)
{
    for (size_t i = 0; i < NCOMP; i++)
        if (!disabled(srv, components[i].name) && !gated(srv, i))
            start_one(srv, i);
    start_gates(srv);
}

static void stop_components(struct kc_server *srv)
{
    stop_gates();
    for (size_t i = NCOMP; i-- > 0;)
        stop_one(srv, i);
}

int kc_server_main(int argc, char **argv)
{
    double t0 = kc_mono_now();
    struct kc_server *srv = calloc(1, sizeof *srv);
    char **sans = NULL;
    if (parse_flags(argc, argv, &srv->opts, &sans))
        return 2;
    char dbpath[600];
    snprintf(dbpath, sizeof dbpath, "%s/state.db", srv->opts.data_dir);
    bool etcd = strcmp(srv->opts.datastore, "sqlite") != 0;
    if (etcd)
        kc_info("apiserver", "Using storage backend etcd (%s)", srv->opts.datastore);
    else
        kc_info("apiserver", "Using storage backend sqlite (%s)", dbpath);
    if (mkdir_p(srv->opts.data_dir, 0700) < 0) {
        kc_error("apiserver", "cannot create data dir %s: %s", srv->opts.data_dir, strerror(errno));
        return 1;
    }
    /* block the signals we wait for in every thread we start */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_storage ss;
    char host[256], port[16];
    if (resolve_listen(srv->opts.listen, &ss, host, sizeof host, port, sizeof port)) {
        kc_error("apiserver", "--listen %s: expected ADDR:PORT", srv->opts.listen);
        return 2;
    }
    if (*host && strcmp(host, "0.0.0.0") && strcmp(host, "::")) {
        size_t k = 0;
        while (sans[k])
            k++;
        if (k < 64)
            sans[k] = strdup(host);
    }
    struct kc_pki pki = {0};
    struct kc_err err = {0};
    if (kc_pki_load_or_create(srv->opts.data_dir, (const char *const *)sans, &pki, &err)) {
        kc_error("apiserver", "certificates: %s", err.message);
        return 1;
    }
    srv->token = pki.token;
    char *join_token = NULL; /* agents join with it: kubec agent --server URL --token TOKEN */
    if (kc_pki_join_token(srv->opts.data_dir, &join_token, &srv->join_cred, &err))
        kc_error("apiserver", "join token: %s", err.message);
    else
        kc_info("apiserver", "Node join token in %s/node-token (kubec agent --server URL --token $(cat it))",
                srv->opts.data_dir);
    free(join_token);
    const char *url_host = (!*host || !strcmp(host, "0.0.0.0") || !strcmp(host, "::")) ? "127.0.0.1" : host;
    if (strchr(url_host, ':'))
        snprintf(srv->server_url, sizeof srv->server_url, "https://[%s]:%s", url_host, port);
    else
        snprintf(srv->server_url, sizeof srv->server_url, "https://%s:%s", url_host, port);
    char kcpath[600];
    snprintf(kcpath, sizeof kcpath, "%s/kubeconfig.yaml", srv->opts.data_dir);
    if (kc_pki_write_kubeconfig(kcpath, srv->server_url, &pki, &err) ||
        (srv->opts.write_kubeconfig[0] &&
         kc_pki_write_kubeconfig(srv->opts.write_kubeconfig, srv->server_url, &pki, &err))) {
        kc_error("apiserver", "kubeconfig: %s", err.message);
        return 1;
    }
    struct kc_etcd_opts eo = {.cafile = srv->opts.etcd_cafile[0] ? srv->opts.etcd_cafile : NULL,
                              .certfile = srv->opts.etcd_certfile[0] ? srv->opts.etcd_certfile : NULL,
                              .keyfile = srv->opts.etcd_keyfile[0] ? srv->opts.etcd_keyfile : NULL,
                              .prefix = srv->opts.etcd_prefix[0] ? srv->opts.etcd_prefix : NULL,
                              .compaction_interval_s = srv->opts.etcd_compaction_s};
    if (etcd ? kc_store_etcd_open(srv->opts.datastore, &eo, &srv->store, &err)
             : kc_store_sqlite_open(dbpath, NULL, &srv->store, &err)) {
        kc_error("apiserver", "store: %s", err.message);
        return 1;
    }
    kc_resources_init();
    if (kc_cache_start(srv->store, (const char *const *)srv->opts.watch_cache_sizes,
                       srv->opts.default_watch_cache_size, &srv->cache, &err)) {
        kc_error("apiserver", "watch cache: %s", err.message);
        kc_store_close(srv->store);
        return 1;
    }
    seed(srv);
    kc_bootstrap_system_priority_classes(srv); /* bootstrap.c */
    if (srv->opts.kubelet_token_file[0]) {
        FILE *tf = fopen(srv->opts.kubelet_token_file, "r");
        char tok[1100] = "";
        if (!tf || !fgets(tok, sizeof tok, tf)) {
            kc_error("apiserver", "--kubelet-token-file %s: cannot read", srv->opts.kubelet_token_file);
        } else {
            tok[strcspn(tok, "\r\n")] = 0;
            srv->kubelet_token = strdup(tok);
        }
        if (tf)
            fclose(tf);
    }
    start_components(srv);
    kc_apimetrics_attach(srv);
    kc_nsctl_start(srv);
    void *http = kc_http_start(srv, (struct sockaddr *)&ss, pki.cert_pem, pki.key_pem);
    if (!http) {
        kc_error("apiserver", "cannot listen on %s (address in use?)", srv->opts.listen);
        srv->stopping = true;
        stop_components(srv);
        kc_nsctl_stop(srv);
        kc_cache_stop(srv->cache);
        kc_store_close(srv->store);
        return 1;
    }
    void *plain = NULL;
    if (srv->opts.metrics_listen[0]) {
        struct sockaddr_storage ms;
        char mh[256], mp[16];
        if (resolve_listen(srv->opts.metrics_listen, &ms, mh, sizeof mh, mp, sizeof mp) ||
            !(plain = kc_http_start_plain(srv, (struct sockaddr *)&ms)))
            kc_error("apiserver", "cannot serve metrics on %s", srv->opts.metrics_listen);
        else
            kc_info("apiserver", "Serving /metrics without authentication on http://%s", srv->opts.metrics_listen);
    }
    kc_info("apiserver", "Serving on %s; kubeconfig %s; ready in %.1f ms (allocator %s)", srv->server_url,
            kcpath, (kc_mono_now() - t0) * 1000.0, kc_alloc_name());
    int sig = 0;
    sigwait(&sigs, &sig);
    kc_info("apiserver", "Received signal %d: shutting down", sig);
    double t1 = kc_mono_now();
    kc_http_quiesce(http);
    srv->stopping = true;
    kc_cache_wake_all(srv->cache); /* ends watch streams promptly */
    kc_http_stop(http);
    kc_http_stop(plain);
    stop_components(srv);
    kc_nsctl_stop(srv);
    kc_apimetrics_detach(srv);
    kc_cache_stop(srv->cache);
    kc_store_close(srv->store);
    kc_info("apiserver", "Stopped cleanly in %.1f ms", (kc_mono_now() - t1) * 1000.0);
    for (size_t i = 0; sans[i]; i++)
        free(sans[i]);
    free(sans);
    for (size_t i = 0; srv->opts.watch_cache_sizes && srv->opts.watch_cache_sizes[i]; i++)
        free(srv->opts.watch_cache_sizes[i]);
    free(srv->opts.watch_cache_sizes);
    for (size_t i = 0; srv->opts.disable && srv->opts.disable[i]; i++)
        free(srv->opts.disable[i]);
    free(srv->opts.disable);
    kc_pki_release(&pki);
    free(srv->kubelet_token);
    free(srv->join_cred);
    free(srv);
    (void)dummy;
    return 0;
}
