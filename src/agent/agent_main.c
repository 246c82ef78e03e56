/* agent_main.c — `kubec agent`: the node agent as its own process, talking HTTP to a kubec (or any
 * Kubernetes) API server through a kubeconfig. Runs until SIGTERM/SIGINT, then stops cleanly (exit 0).
 * With --metrics-listen it serves /metrics and /healthz over plain HTTP (metricsrv.c).
 * Threads: this one waits for signals (sigwait); everything else belongs to kc_agent_start and the
 * metrics server. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "agent/agent.h"
#include "agent/metricsrv.h"
#include "pki/pki.h"
#include "util/buf.h"
#include "util/log.h"

#define COMPONENT "kubelet"

/* `kubec images` without --local (image_cli_cluster.c) is reached from image_cli.c through a weak symbol;
 * this reference is what links it into the kubec binary from the agent library. */
int kc_image_cli_cluster(int argc, char **argv);
int (*const kc_image_cli_cluster_link)(int, char **) = kc_image_cli_cluster;

static int usage(FILE *f)
{
    fprintf(f, "Usage: kubec agent --kubeconfig FILE --sim-nodes N [flags]\n"
               "       kubec agent --kubeconfig FILE --runtime runc [--data-dir DIR] [flags]\n"
               "       kubec agent --server URL --token TOKEN [--runtime runc|--sim-nodes N] [flags]\n\n"
               "Runs the node agent (kubelet) for N simulated nodes, or for this machine with real containers\n"
               "(runc; needs root, the runc and containernetworking-plugins packages), against an API server.\n\n"
               "Flags:\n"
               "  --kubeconfig FILE          kubeconfig of the API server (or --server and --token)\n"
               "  --server URL               join this API server (https://HOST:PORT) with --token\n"
               "  --token TOKEN              join token K10<CA hash>::<credential> (the server's DATA-DIR/node-token);\n"
               "                             the server's CA is fetched and checked against the hash before use\n"
               "  --runtime sim|runc         sim (default): virtual nodes; runc: this machine, real containers\n"
               "  --data-dir DIR             runc: state, images, logs (default /var/lib/kubec/agent)\n"
               "  --node-name NAME           runc: the Node's name (default the host name)\n"
               "  --port N                   runc: HTTPS log API port (default 10250)\n"
               "  --serving-token-file FILE  runc: bearer token the log API accepts (default generated into\n"
               "                             DATA-DIR/pki/kubelet-token)\n"
               "  --registry-ca-dir DIR      runc: <registry host[:port]>.crt files trusted for image pulls\n"
               "  --sim-nodes N              number of simulated nodes (required for sim, 1..100000)\n"
               "  --sim-profile P            fast | realistic | image-pull-fail | crashloop (default fast)\n"
               "  --sim-node-template FILE   YAML/JSON: capacity, allocatable, labels, annotations, taints\n"
               "  --node-name-prefix P       node names P-0, P-1, ... (default sim)\n"
               "  --node-lease-renew-interval SECONDS  (default 10)\n"
               "  --pod-workers N            threads driving pods (default 8)\n"
               "  --kube-api-qps Q           client-side rate limit (default 50 per node; 0 = none)\n"
               "  --kube-api-burst B         (default 100 per node)\n"
               "  --metrics-listen ADDR:PORT serve /metrics and /healthz over plain HTTP (no authentication)\n\n"
               "Per-pod annotations: sim.kubec.io/fail=image-pull|crash, sim.kubec.io/start-delay=2s\n");
    return f == stdout ? 0 : 2;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* First line of a file, at most n-1 bytes; -1 if unreadable or empty. */
static int read_token(const char *path, char *out, size_t n)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    if (!fgets(out, (int)n, f))
        out[0] = 0;
    fclose(f);
    out[strcspn(out, "\r\n")] = 0;
    return out[0] ? 0 : -1;
}

static size_t sink(char *p, size_t sz, size_t n, void *ud)
{
    return kc_buf_append(ud, p, sz * n) ? 0 : sz * n;
}

/* Joins with a k3s-style token: GET URL/cacerts without trusting it, check its sha256 against the
 * token's hash, then an HTTPS client that trusts that CA alone and sends the token's credential. */
static int join_client(const char *url, const char *token, double qps, int burst, struct kc_client **out,
                       struct kc_err *err)
{
    char hash[65], cred[256], cacerts[600];
    int rc = kc_pki_join_parse(token, hash, cred, sizeof cred, err);
    if (rc)
        return rc;
    if (strncmp(url, "https://", 8) || strlen(url) > 500)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "--server must be an https:// URL (at most 500 bytes)");
    snprintf(cacerts, sizeof cacerts, "%s%scacerts", url, url[strlen(url) - 1] == '/' ? "" : "/");
    struct kc_buf b;
    kc_buf_init(&b, 64 * 1024);
    CURL *h = curl_easy_init();
    long code = 0;
    CURLcode cr = CURLE_FAILED_INIT;
    if (h) {
        curl_easy_setopt(h, CURLOPT_URL, cacerts);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L); /* not trusted yet: the hash decides */
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
        cr = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_cleanup(h);
    }
    if (cr != CURLE_OK || code != 200 || !b.len)
        rc = kc_err_set(err, KC_EIO, 0, "ServiceUnavailable", "cannot fetch the server's CA from %s: %s", cacerts,
                        cr != CURLE_OK ? curl_easy_strerror(cr) : "not a 200 answer with a certificate");
    if (!rc)
        rc = kc_pki_join_verify_ca(hash, b.data, b.len, err);
    if (!rc) {
        char *ca = strndup(b.data, b.len);
        rc = ca ? kc_client_http_new(url, cred, ca, qps, burst, "kubelet/kubec", out, err)
                : kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
        free(ca);
    }
    kc_buf_release(&b);
    return rc;
}

int kc_agent_main(int argc, char **argv)
{
    static char token[256];
    struct kc_agent_opts o = {.sim_nodes = 0, .sim_profile = "fast", .node_name_prefix = "sim", .lease_renew_s = 10};
    const char *kubeconfig = NULL, *metrics_listen = NULL, *server = NULL, *join = NULL;
    double qps = -1; /* default: 50 per node, as N upstream kubelets (kubeAPIQPS 50, kubeAPIBurst 100) */
    int burst = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return usage(stdout);
        char flag[64];
        const char *eq = strchr(a, '='), *val = NULL;
        size_t fl = eq ? (size_t)(eq - a) : strlen(a);
        if (strncmp(a, "--", 2) || fl >= sizeof flag) {
            fprintf(stderr, "kubec agent: unexpected argument %s\n", a);
            return usage(stderr);
        }
        memcpy(flag, a, fl);
        flag[fl] = 0;
        val = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (!val) {
            fprintf(stderr, "kubec agent: flag needs an argument: %s\n", flag);
            return 2;
        }
        int bad = 0;
        if (!strcmp(flag, "--kubeconfig"))
            kubeconfig = val;
        else if (!strcmp(flag, "--server"))
            server = val;
        else if (!strcmp(flag, "--token"))
            join = val;
        else if (!strcmp(flag, "--metrics-listen"))
            metrics_listen = val;
        else if (!strcmp(flag, "--runtime"))
            o.runtime = val;
        else if (!strcmp(flag, "--data-dir"))
            o.data_dir = val;
        else if (!strcmp(flag, "--node-name"))
            o.node_name = val;
        else if (!strcmp(flag, "--port"))
            bad = parse_int(val, 1, 65535, &o.serving_port);
        else if (!strcmp(flag, "--serving-token-file"))
            bad = read_token(val, token, sizeof token);
        else if (!strcmp(flag, "--registry-ca-dir"))
            o.registry_ca_dir = val;
        else if (!strcmp(flag, "--sim-nodes"))
            bad = parse_int(val, 1, 100000, &o.sim_nodes);
        else if (!strcmp(flag, "--sim-profile"))
            o.sim_profile = val;
        else if (!strcmp(flag, "--sim-node-template"))
            o.sim_node_template = val;
        else if (!strcmp(flag, "--node-name-prefix"))
            o.node_name_prefix = val;
        else if (!strcmp(flag, "--node-lease-renew-interval"))
            bad = parse_int(val, 1, 3600, &o.lease_renew_s);
        else if (!strcmp(flag, "--pod-workers"))
            bad = parse_int(val, 1, 256, &o.workers);
        else if (!strcmp(flag, "--kube-api-burst"))
            bad = parse_int(val, 1, 100000, &burst);
        else if (!strcmp(flag, "--kube-api-qps")) {
            char *end;
            qps = strtod(val, &end);
            bad = *end || end == val || qps < 0;
        } else {
            fprintf(stderr, "kubec agent: unknown flag %s\n", flag);
            return usage(stderr);
        }
        if (bad) {
            fprintf(stderr, "kubec agent: invalid value \"%s\" for flag %s\n", val, flag);
            return 2;
        }
    }
    bool real = o.runtime && !strcmp(o.runtime, "runc");
    if (o.runtime && !real && strcmp(o.runtime, "sim")) {
        fprintf(stderr, "kubec agent: --runtime must be sim or runc\n");
        return 2;
    }
    if ((!kubeconfig && !(server && join)) || (kubeconfig && (server || join)) || (!real && o.sim_nodes < 1)) {
        fprintf(stderr, "kubec agent: --kubeconfig (or --server with --token) and --sim-nodes (or --runtime runc) "
                        "are required\n");
        return usage(stderr);
    }
    if (token[0])
        o.serving_token = token;
    int nodes = real ? 1 : o.sim_nodes;
    if (qps < 0)
        qps = 50.0 * nodes;
    if (burst < 0)
        burst = nodes > 1000 ? 100000 : 100 * nodes;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    struct kc_client *c = NULL;
    struct kc_agent *ag = NULL;
    struct kc_err err = {0};
    if (kubeconfig ? kc_client_http_from_kubeconfig(kubeconfig, qps, burst, "kubelet/kubec", &c, &err)
                   : join_client(server, join, qps, burst, &c, &err)) {
        fprintf(stderr, "kubec agent: %s\n", err.message);
        return 1;
    }
    struct kc_metrics_srv *ms = NULL;
    if (metrics_listen && kc_metrics_srv_start(metrics_listen, &ms, &err)) {
        fprintf(stderr, "kubec agent: %s\n", err.message);
        kc_client_free(c);
        return 1;
    }
    if (kc_agent_start(c, &o, &ag, &err)) {
        fprintf(stderr, "kubec agent: %s\n", err.message);
        kc_metrics_srv_stop(ms);
        kc_client_free(c);
        return 1;
    }
    if (server)
        kc_info(COMPONENT, "joined %s: its CA matches the join token's hash", server);
    if (ms)
        kc_info(COMPONENT, "serving /metrics on http://%s", metrics_listen);
    if (real)
        kc_info(COMPONENT, "running this machine as a node with runc; log API on https port %d",
                kc_agent_serving_port(ag));
    else
        kc_info(COMPONENT, "running %d sim node(s) %s-0..%s-%d (profile %s)", o.sim_nodes, o.node_name_prefix,
                o.node_name_prefix, o.sim_nodes - 1, o.sim_profile);
    int sig = 0;
    sigwait(&set, &sig);
    kc_info(COMPONENT, "signal %d: stopping", sig);
    kc_agent_stop(ag);
    kc_metrics_srv_stop(ms);
    kc_client_free(c);
    return 0;
}
