/* runc_cni.c — pod networking for the runc runtime: a network namespace per pod (`ip netns add
 * kubec-<uid>`, so `ip netns` lists it and it outlives no pod), wired by the standard CNI plugins
 * called directly (CNI_COMMAND=ADD/DEL, network config JSON on stdin, result JSON on stdout):
 *
 *   lo up                         `ip -n <ns> link set lo up` (the loopback plugin's job, cheaper)
 *   bridge (isGateway, no ipMasq) a veth pair into bridge <opts.bridge>, whose gateway address lets the
 *                                 host (probes, the agent) and every pod on the node reach pod IPs
 *   host-local IPAM               addresses from opts.pod_cidr, state in <data dir>/cni
 *
 * hostNetwork pods get no namespace: they share the host's and report the host IP.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/runc_int.h"

#define CNI_VERSION "1.0.0"

static int plugin(struct rc *r, const char *cmd, const char *type, const struct rc_sandbox *sb, const char *conf,
                  char **out, struct kc_err *err)
{
    char bin[400], e_cmd[64], e_id[128], e_ns[200], e_path[300];
    snprintf(bin, sizeof bin, "%s/%s", r->cni_bin, type);
    snprintf(e_cmd, sizeof e_cmd, "CNI_COMMAND=%s", cmd);
    snprintf(e_id, sizeof e_id, "CNI_CONTAINERID=%.100s", sb->uid);
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
        json_t *j = json_loads(o ? o : "", 0, NULL);
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

static int netns_cmd(const char *verb, const char *name, struct kc_err *err)
{
    const char *argv[] = {"ip", "netns", verb, name, NULL};
    struct kc_proc p = {.argv = argv, .out_fd = -1, .err_fd = -1};
    int st = 0;
    char *e = NULL;
    int rc = kc_proc_run(&p, &st, NULL, &e, err);
    if (!rc && st)
        rc = kc_err_set(err, KC_EIO, 0, "FailedCreatePodSandBox", "ip netns %s %.100s: %.300s", verb, name, e ? e : "");
    free(e);
    return rc;
}

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
        int rc = netns_cmd("add", sb->netns_name, err);
        if (rc)
            return rc;
        sb->netns = true;
    }
    /* lo up: what the loopback plugin does, without starting a Go binary (~70 ms here) */
    const char *argv[] = {"ip", "-n", sb->netns_name, "link", "set", "lo", "up", NULL};
    struct kc_proc p = {.argv = argv, .out_fd = -1, .err_fd = -1};
    int st = 0;
    int rc = kc_proc_run(&p, &st, NULL, NULL, err);
    if (!rc && st)
        rc = kc_err_set(err, KC_EIO, 0, "FailedCreatePodSandBox", "ip -n %.100s link set lo up failed", sb->netns_name);
    if (rc)
        return rc;
    char *conf = bridge_conf(r), *out = NULL;
    if (!conf)
        return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
    rc = plugin(r, "ADD", "bridge", sb, conf, &out, err);
    free(conf);
    if (rc)
        return rc;
    sb->cni = true;
    json_t *res = json_loads(out, 0, NULL);
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
        netns_cmd("delete", sb->netns_name, &err);
        sb->netns = false;
    }
}
