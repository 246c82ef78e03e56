/* runc_node.c — a real node for the agent: image store (image.h) + runc runtime (runc.c) + HTTPS log
 * server (runc_logsrv.c), and the Node status facts of this machine.
 *
 * The runtime's callbacks land here: image pulls resolve the pod's imagePullSecrets through the API
 * (each Secret decoded by kc_image_auths_add_secret; a missing secret is skipped, as upstream warns
 * and goes on), and env valueFrom lookups GET secrets/configmaps.
 * Threads: none of its own (the runtime's and the server's).
 */
#include "agent/runc_node.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "agent/image.h"
#include "agent/runc_int.h"
#include "agent/runc_imgreq.h"
#include "agent/runc_logsrv.h"
#include "util/jsonparse.h"

#define DEFAULT_DATA_DIR "/var/lib/kubec/agent"

struct kc_runc_node {
    struct kc_runc_node_opts o;
    char dir[512];
    struct kc_image_store *images;
    struct kc_logsrv *srv;
    struct kc_imgreq *req; /* `kubec images pull|prune --node` (runc_imgreq.c) */
    char runc_version[64];
};

static json_t *get_object(void *ctx, const char *plural, const char *ns, const char *name)
{
    struct kc_runc_node *n = ctx;
    char path[700];
    if (!kc_path(path, sizeof path, "", "v1", plural, ns, name, NULL))
        return NULL;
    json_t *obj = NULL;
    struct kc_err err = {0};
    if (kc_client_get(n->o.client, path, &obj, &err))
        return NULL;
    return obj;
}

static int image_pull(void *ctx, const char *ref, json_t *pod, bool force, struct kc_image_info *out,
                      struct kc_err *err)
{
    struct kc_runc_node *n = ctx;
    json_t *auths = json_object();
    const char *ns = json_string_value(json_object_get(json_object_get(pod, "metadata"), "namespace")) ?: "default";
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(json_object_get(pod, "spec"), "imagePullSecrets"), i, s)
    {
        const char *name = json_string_value(json_object_get(s, "name"));
        json_t *secret = name ? get_object(n, "secrets", ns, name) : NULL;
        struct kc_err serr = {0};
        if (secret)
            kc_image_auths_add_secret(auths, secret, &serr); /* a malformed secret counts as absent */
        json_decref(secret);
    }
    int rc = kc_image_pull(n->images, ref, json_object_size(auths) ? auths : NULL, force, out, err);
    json_decref(auths);
    return rc;
}

static bool image_present(void *ctx, const char *ref, struct kc_image_info *out)
{
    struct kc_runc_node *n = ctx;
    return kc_image_present(n->images, ref, out);
}

void kc_runc_host_ip(char *out, size_t n)
{
    snprintf(out, n, "127.0.0.1");
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs))
        return;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK) ||
            !(i->ifa_flags & IFF_UP) || !strncmp(i->ifa_name, "kubec", 5) || !strncmp(i->ifa_name, "veth", 4) ||
            !strncmp(i->ifa_name, "cni", 3) || !strncmp(i->ifa_name, "docker", 6))
            continue;
        inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr, out, (socklen_t)n);
        break;
    }
    freeifaddrs(ifs);
}

static void runc_version(struct kc_runc_node *n)
{
    snprintf(n->runc_version, sizeof n->runc_version, "unknown");
    FILE *f = popen("runc --version 2>/dev/null", "r");
    if (!f)
        return;
    char line[128];
    if (fgets(line, sizeof line, f) && !strncmp(line, "runc version ", 13)) {
        line[strcspn(line, "\n")] = 0;
        snprintf(n->runc_version, sizeof n->runc_version, "%.60s", line + 13);
    }
    pclose(f);
}

int kc_runc_node_new(const struct kc_runc_node_opts *o, const struct kc_runtime_ops **ops, void **impl,
                     struct kc_runc_node **out, struct kc_err *err)
{
    char why[300];
    if (!kc_runc_usable(NULL, why, sizeof why))
        return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "runc runtime unusable: %s", why);
    struct kc_runc_node *n = calloc(1, sizeof *n);
    if (!n)
        return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
    n->o = *o;
    snprintf(n->dir, sizeof n->dir, "%.500s", o->data_dir && *o->data_dir ? o->data_dir : DEFAULT_DATA_DIR);
    runc_version(n);
    char images[600], pki[600];
    snprintf(images, sizeof images, "%s/images", n->dir);
    snprintf(pki, sizeof pki, "%s/pki", n->dir);
    /* without --registry-ca-dir, DATA-DIR/registry-ca/<host[:port]>.crt if that directory exists (what
     * `kubec server --agent` uses: its agent has no flags of its own) */
    char cadir[600];
    snprintf(cadir, sizeof cadir, "%s/registry-ca", n->dir);
    const char *ca = o->registry_ca_dir ? o->registry_ca_dir : access(cadir, R_OK | X_OK) == 0 ? cadir : NULL;
    struct kc_image_store_opts io = {.root = images, .registry_ca_dir = ca,
                                     .gc_high_bytes = 0, .gc_low_bytes = 0};
    int rc = rc_mkdirs(n->dir, err);
    if (!rc)
        rc = kc_image_store_open(&io, &n->images, err);
    struct kc_runc_opts ro = {.data_dir = n->dir, .host_ip = o->host_ip, .image_pull = image_pull,
                              .image_present = image_present, .image_ctx = n, .get_object = get_object, .get_ctx = n};
    if (!rc)
        rc = kc_runc_runtime_new(&ro, ops, impl, err);
    if (!rc && o->serving_port >= 0) {
        const char *sans[] = {o->host_ip, o->node_name, NULL};
        struct kc_logsrv_opts lo = {.port = o->serving_port ? o->serving_port : 10250, .pki_dir = pki,
                                    .token = o->serving_token, .sans = sans, .pod_uid = o->pod_uid, .ctx = o->ctx,
                                    .runtime = *impl};
        rc = kc_logsrv_start(&lo, &n->srv, err);
        if (rc) {
            (*ops)->free(*impl);
            *impl = NULL;
        }
    }
    if (!rc && o->client && o->node_name && (rc = kc_imgreq_start(o->client, o->node_name, n->images, &n->req, err))) {
        kc_logsrv_stop(n->srv);
        n->srv = NULL;
        (*ops)->free(*impl);
        *impl = NULL;
    }
    if (rc) {
        kc_runc_node_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

void kc_runc_node_stop(struct kc_runc_node *n)
{
    if (n && n->req) {
        kc_imgreq_stop(n->req); /* it uses the image store and the client: before either goes */
        n->req = NULL;
    }
    if (n && n->srv) {
        kc_logsrv_stop(n->srv);
        n->srv = NULL;
    }
}

void kc_runc_node_free(struct kc_runc_node *n)
{
    if (!n)
        return;
    kc_runc_node_stop(n);
    if (n->images)
        kc_image_store_close(n->images);
    free(n);
}

const char *kc_runc_node_token(const struct kc_runc_node *n) { return n ? kc_logsrv_token(n->srv) : NULL; }
int kc_runc_node_port(const struct kc_runc_node *n) { return n ? kc_logsrv_port(n->srv) : 0; }

static void os_image(char *out, size_t n)
{
    snprintf(out, n, "Linux");
    FILE *f = fopen("/etc/os-release", "re");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "PRETTY_NAME=", 12)) {
            char *v = line + 12;
            v[strcspn(v, "\n")] = 0;
            if (*v == '"') {
                v++;
                char *q = strchr(v, '"');
                if (q)
                    *q = 0;
            }
            snprintf(out, n, "%.120s", v);
        }
    fclose(f);
}

void kc_runc_node_status(struct kc_runc_node *n, json_t *st)
{
    char cpus[16], mem[32], os[128], rt[96];
    snprintf(cpus, sizeof cpus, "%ld", sysconf(_SC_NPROCESSORS_ONLN));
    struct sysinfo si;
    long long kib = !sysinfo(&si) ? (long long)si.totalram * si.mem_unit / 1024 : 0;
    snprintf(mem, sizeof mem, "%lldKi", kib);
    json_t *cap = json_pack("{s:s,s:s,s:s,s:s}", "cpu", cpus, "memory", mem, "pods", "110", "ephemeral-storage", "100Gi");
    json_object_set_new(st, "capacity", kc_json_copy(cap));
    json_object_set_new(st, "allocatable", cap);
    struct utsname u;
    json_t *ni = json_object_get(st, "nodeInfo");
    os_image(os, sizeof os);
    snprintf(rt, sizeof rt, "runc://%s", n->runc_version);
    if (ni && !uname(&u)) {
        json_object_set_new(ni, "kernelVersion", json_string(u.release));
        json_object_set_new(ni, "osImage", json_string(os));
        json_object_set_new(ni, "containerRuntimeVersion", json_string(rt));
    }
    json_t *imgs = n->images ? kc_image_list(n->images) : NULL;
    json_object_set_new(st, "images", imgs ? imgs : json_array());
    if (n->srv)
        json_object_set_new(st, "daemonEndpoints", json_pack("{s:{s:i}}", "kubeletEndpoint", "Port", kc_logsrv_port(n->srv)));
}
