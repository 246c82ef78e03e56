/* runc_bundle.c — the OCI runtime config (config.json) of one container, from the pod spec and the
 * image config, as upstream's kubelet + containerd would build it:
 *
 *   process.args   command/args over the image's Entrypoint/Cmd (the four cases of upstream's table)
 *   process.env    image Env, then the container's env (value, valueFrom secretKeyRef/configMapKeyRef/
 *                  fieldRef, $(VAR) expansion of earlier ones), PATH and HOSTNAME defaults
 *   process.cwd    workingDir, else the image's WorkingDir, else /
 *   process.user   securityContext.runAsUser/runAsGroup (pod then container), else a numeric image User
 *   capabilities   containerd's default set, plus securityContext.capabilities.add, minus drop ("ALL")
 *   root.readonly  securityContext.readOnlyRootFilesystem
 *   resources      requests.cpu → shares, limits.cpu → CFS quota (period 100 ms), limits.memory → limit
 *   namespaces     pid, ipc, uts, mount (new), network = the pod's netns (none: the host's, hostNetwork)
 *   cgroupsPath    /kubec/pod<uid>/<ctr id>
 * No I/O except the object lookups for valueFrom (through opts.get_object).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/runc_int.h"
#include "meta/validation.h"

#define ENV_MAX_VARS 512

static const char *default_caps[] = {"CAP_CHOWN",  "CAP_DAC_OVERRIDE", "CAP_FSETID",     "CAP_FOWNER",
                                     "CAP_MKNOD",  "CAP_NET_RAW",      "CAP_SETGID",     "CAP_SETUID",
                                     "CAP_SETFCAP", "CAP_SETPCAP",     "CAP_NET_BIND_SERVICE",
                                     "CAP_SYS_CHROOT", "CAP_KILL",     "CAP_AUDIT_WRITE", NULL};

static const char *jstr(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

json_t *rc_container_spec(json_t *pod, const char *name, bool init)
{
    json_t *arr = json_object_get(json_object_get(pod, "spec"), init ? "initContainers" : "containers");
    size_t i;
    json_t *c;
    json_array_foreach(arr, i, c) if (!strcmp(jstr(c, "name") ?: "", name)) return c;
    return NULL;
}

/* ---------- env ---------- */

static const char *env_get(json_t *env, const char *name)
{
    return jstr(env, name);
}

/* $(VAR) → value of an earlier variable; $$(VAR) → $(VAR); unknown references stay as written. */
static char *expand(const char *s, json_t *env)
{
    struct kc_buf b;
    kc_buf_init(&b, 1 << 20);
    for (const char *p = s; *p;) {
        if (p[0] == '$' && p[1] == '$' && p[2] == '(') {
            kc_buf_append(&b, "$", 1);
            p += 2;
            continue;
        }
        if (p[0] == '$' && p[1] == '(') {
            const char *e = strchr(p + 2, ')');
            if (e && e - p - 2 < 256) {
                char name[256];
                memcpy(name, p + 2, (size_t)(e - p - 2));
                name[e - p - 2] = 0;
                const char *v = env_get(env, name);
                if (v) {
                    kc_buf_append(&b, v, strlen(v));
                    p = e + 1;
                    continue;
                }
            }
        }
        kc_buf_append(&b, p, 1);
        p++;
    }
    if (!b.data)
        return strdup("");
    return kc_buf_steal(&b, NULL);
}

static const char *field_ref(json_t *pod, const struct rc_sandbox *sb, const char *path, const char *node, char *tmp,
                             size_t n)
{
    json_t *meta = json_object_get(pod, "metadata"), *spec = json_object_get(pod, "spec");
    if (!strcmp(path, "metadata.name"))
        return jstr(meta, "name");
    if (!strcmp(path, "metadata.namespace"))
        return jstr(meta, "namespace");
    if (!strcmp(path, "metadata.uid"))
        return jstr(meta, "uid");
    if (!strcmp(path, "spec.nodeName"))
        return node;
    if (!strcmp(path, "spec.serviceAccountName"))
        return jstr(spec, "serviceAccountName") ?: "default";
    if (!strcmp(path, "status.podIP") || !strcmp(path, "status.podIPs"))
        return sb ? sb->ip : "";
    if (!strcmp(path, "status.hostIP") || !strcmp(path, "status.hostIPs"))
        return jstr(json_object_get(pod, "status"), "hostIP") ?: "";
    /* metadata.labels['k'] / metadata.annotations['k'] */
    const char *sect = !strncmp(path, "metadata.labels['", 17) ? "labels"
                       : !strncmp(path, "metadata.annotations['", 22) ? "annotations" : NULL;
    if (sect) {
        const char *k = strchr(path, '\'') + 1, *e = strrchr(path, '\'');
        if (e > k && (size_t)(e - k) < n) {
            memcpy(tmp, k, (size_t)(e - k));
            tmp[e - k] = 0;
            return jstr(json_object_get(meta, sect), tmp) ?: "";
        }
    }
    return NULL;
}

/* Value of a secretKeyRef / configMapKeyRef; NULL + err when required and missing. */
static char *key_ref(struct rc *r, json_t *pod, json_t *ref, bool secret, struct kc_err *err)
{
    const char *ns = jstr(json_object_get(pod, "metadata"), "namespace") ?: "default";
    const char *name = jstr(ref, "name") ?: "", *key = jstr(ref, "key") ?: "";
    bool optional = json_is_true(json_object_get(ref, "optional"));
    json_t *obj = r->o.get_object ? r->o.get_object(r->o.get_ctx, secret ? "secrets" : "configmaps", ns, name) : NULL;
    const char *what = secret ? "secret" : "configmap";
    if (!obj) {
        if (!optional)
            kc_err_set(err, KC_ENOTFOUND, 0, "CreateContainerConfigError", "%s \"%.200s\" not found", what, name);
        return NULL;
    }
    char *val = NULL;
    const char *v = jstr(json_object_get(obj, "data"), key);
    if (secret && v) { /* base64 */
        size_t inlen = strlen(v);
        val = malloc(inlen + 1);
        if (val) {
            static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            unsigned acc = 0;
            int bits = 0;
            size_t o = 0;
            for (const char *p = v; *p && *p != '='; p++) {
                const char *f = strchr(tbl, *p);
                if (!f || !*p)
                    continue;
                acc = (acc << 6) | (unsigned)(f - tbl);
                bits += 6;
                if (bits >= 8) {
                    bits -= 8;
                    val[o++] = (char)((acc >> bits) & 0xff);
                }
            }
            val[o] = 0;
        }
    } else if (!secret && v) {
        val = strdup(v);
    } else if (!secret && (v = jstr(json_object_get(obj, "binaryData"), key))) {
        val = strdup(v);
    }
    if (!val && !optional)
        kc_err_set(err, KC_ENOTFOUND, 0, "CreateContainerConfigError", "couldn't find key %.100s in %s %.100s/%.100s",
                   key, what, ns, name);
    json_decref(obj);
    return val;
}

/* env as an ordered object name → value (later wins, keeps the first position as upstream's map). */
static int build_env(struct rc *r, const struct kc_rt_container *c, json_t *cspec, json_t *img_cfg,
                     const struct rc_sandbox *sb, json_t *env, struct kc_err *err)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(img_cfg, "Env"), i, e)
    {
        const char *kv = json_string_value(e), *eq = kv ? strchr(kv, '=') : NULL;
        if (!eq || eq - kv >= 256)
            continue;
        char k[256];
        memcpy(k, kv, (size_t)(eq - kv));
        k[eq - kv] = 0;
        json_object_set_new(env, k, json_string(eq + 1));
    }
    if (!json_object_get(env, "PATH"))
        json_object_set_new(env, "PATH", json_string("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
    json_object_set_new(env, "HOSTNAME", json_string(sb && sb->host_network ? "" : jstr(json_object_get(c->pod, "metadata"), "name") ?: ""));
    json_array_foreach(json_object_get(cspec, "env"), i, e)
    {
        if (json_object_size(env) > ENV_MAX_VARS)
            return kc_err_set(err, KC_EINVAL, 0, "CreateContainerConfigError", "more than %d environment variables",
                              ENV_MAX_VARS);
        const char *name = jstr(e, "name");
        if (!name || !*name)
            continue;
        json_t *from = json_object_get(e, "valueFrom");
        char *val = NULL;
        if (!from) {
            val = expand(jstr(e, "value") ?: "", env);
        } else if (json_object_get(from, "fieldRef")) {
            char tmp[256];
            const char *v = field_ref(c->pod, sb, jstr(json_object_get(from, "fieldRef"), "fieldPath") ?: "", c->node,
                                      tmp, sizeof tmp);
            if (!v)
                return kc_err_set(err, KC_EINVAL, 0, "CreateContainerConfigError", "unsupported fieldPath for %.100s",
                                  name);
            val = strdup(v);
        } else if (json_object_get(from, "secretKeyRef") || json_object_get(from, "configMapKeyRef")) {
            bool secret = json_object_get(from, "secretKeyRef") != NULL;
            struct kc_err kerr = {0};
            val = key_ref(r, c->pod, json_object_get(from, secret ? "secretKeyRef" : "configMapKeyRef"), secret, &kerr);
            if (!val && kerr.message[0]) {
                *err = kerr;
                return KC_ENOTFOUND;
            }
            if (!val)
                continue;
        } else if (json_object_get(from, "resourceFieldRef")) {
            val = strdup("0");
        } else {
            continue;
        }
        if (!val)
            return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
        json_object_set_new(env, name, json_string(val));
        free(val);
    }
    return 0;
}

/* ---------- process ---------- */

static json_t *strings(json_t *a)
{
    json_t *o = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) if (json_is_string(v)) json_array_append(o, v);
    return o;
}

/* Upstream's rule: command replaces Entrypoint (and drops Cmd); args replaces Cmd. */
static json_t *build_args(json_t *cspec, json_t *img_cfg, json_t *env)
{
    json_t *cmd = json_object_get(cspec, "command"), *args = json_object_get(cspec, "args");
    json_t *ep = json_object_get(img_cfg, "Entrypoint"), *icmd = json_object_get(img_cfg, "Cmd");
    json_t *out = json_array(), *a = json_array_size(cmd) ? strings(cmd) : strings(ep);
    json_t *b = json_array_size(args) ? strings(args) : json_array_size(cmd) ? json_array() : strings(icmd);
    json_array_extend(a, b);
    json_decref(b);
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        char *x = expand(json_string_value(v), env);
        json_array_append_new(out, json_string(x ? x : ""));
        free(x);
    }
    json_decref(a);
    return out;
}

static json_t *sec_get(json_t *pod, json_t *cspec, const char *k)
{
    json_t *v = json_object_get(json_object_get(cspec, "securityContext"), k);
    return v ? v : json_object_get(json_object_get(json_object_get(pod, "spec"), "securityContext"), k);
}

static json_t *build_user(json_t *pod, json_t *cspec, json_t *img_cfg)
{
    json_int_t uid = 0, gid = 0;
    const char *u = jstr(img_cfg, "User");
    if (u && *u) {
        char *end;
        long v = strtol(u, &end, 10);
        if (end != u && (*end == 0 || *end == ':')) {
            uid = v;
            if (*end == ':')
                gid = strtol(end + 1, NULL, 10);
        }
    }
    json_t *ru = sec_get(pod, cspec, "runAsUser"), *rg = sec_get(pod, cspec, "runAsGroup");
    if (json_is_integer(ru))
        uid = json_integer_value(ru);
    if (json_is_integer(rg))
        gid = json_integer_value(rg);
    json_t *user = json_pack("{s:I,s:I}", "uid", uid, "gid", gid);
    json_t *fsg = json_object_get(json_object_get(json_object_get(pod, "spec"), "securityContext"), "fsGroup");
    if (json_is_integer(fsg))
        json_object_set_new(user, "additionalGids", json_pack("[I]", json_integer_value(fsg)));
    return user;
}

static bool cap_in(json_t *list, const char *cap)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        const char *s = json_string_value(v);
        if (!s)
            continue;
        if (!strcmp(s, "ALL") || !strcasecmp(s, cap) || !strcasecmp(s, cap + 4))
            return true;
    }
    return false;
}

static json_t *build_caps(json_t *cspec)
{
    json_t *sc = json_object_get(cspec, "securityContext"), *cp = json_object_get(sc, "capabilities");
    json_t *add = json_object_get(cp, "add"), *drop = json_object_get(cp, "drop"), *set = json_array();
    bool privileged = json_is_true(json_object_get(sc, "privileged"));
    for (int i = 0; default_caps[i]; i++)
        if (privileged || !cap_in(drop, default_caps[i]))
            json_array_append_new(set, json_string(default_caps[i]));
    size_t i;
    json_t *v;
    json_array_foreach(add, i, v)
    {
        const char *s = json_string_value(v);
        if (!s || strlen(s) > 40 || !strcmp(s, "ALL"))
            continue;
        char name[64];
        snprintf(name, sizeof name, "%s%s", strncasecmp(s, "CAP_", 4) ? "CAP_" : "", s);
        for (char *p = name; *p; p++)
            *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        if (!cap_in(set, name))
            json_array_append_new(set, json_string(name));
    }
    return json_pack("{s:O,s:O,s:O,s:o}", "bounding", set, "effective", set, "permitted", set, "inheritable", set);
}

/* ---------- resources ---------- */

static int64_t qty(json_t *res, const char *sect, const char *k)
{
    int64_t m = 0;
    const char *s = jstr(json_object_get(res, sect), k);
    if (!s) {
        json_t *v = json_object_get(json_object_get(res, sect), k);
        if (json_is_integer(v))
            return json_integer_value(v) * 1000;
        return -1;
    }
    return kc_quantity_parse(s, &m) ? -1 : m;
}

static json_t *build_resources(json_t *cspec)
{
    json_t *res = json_object_get(cspec, "resources"), *o = json_object();
    int64_t req_cpu = qty(res, "requests", "cpu"), lim_cpu = qty(res, "limits", "cpu");
    int64_t lim_mem = qty(res, "limits", "memory");
    if (req_cpu < 0 && lim_cpu >= 0)
        req_cpu = lim_cpu; /* API defaulting: requests default to limits */
    json_t *cpu = json_object();
    /* upstream MilliCPUToShares: milli*1024/1000, at least 2 (BestEffort gets 2) */
    int64_t shares = req_cpu > 0 ? req_cpu * 1024 / 1000 : 2;
    json_object_set_new(cpu, "shares", json_integer(shares < 2 ? 2 : shares));
    if (lim_cpu > 0) {
        int64_t quota = lim_cpu * 100000 / 1000;
        json_object_set_new(cpu, "quota", json_integer(quota < 1000 ? 1000 : quota));
        json_object_set_new(cpu, "period", json_integer(100000));
    }
    json_object_set_new(o, "cpu", cpu);
    if (lim_mem > 0)
        json_object_set_new(o, "memory", json_pack("{s:I}", "limit", (json_int_t)(lim_mem / 1000)));
    json_object_set_new(o, "devices", json_pack("[{s:b,s:s}]", "allow", 0, "access", "rwm"));
    return o;
}

/* ---------- the whole config ---------- */

static json_t *mounts(bool ro_cgroup)
{
    (void)ro_cgroup;
    return json_pack(
        "[{s:s,s:s,s:s},"
        "{s:s,s:s,s:s,s:[s,s,s,s]},"
        "{s:s,s:s,s:s,s:[s,s,s,s,s,s]},"
        "{s:s,s:s,s:s,s:[s,s,s,s,s]},"
        "{s:s,s:s,s:s,s:[s,s,s]},"
        "{s:s,s:s,s:s,s:[s,s,s,s]},"
        "{s:s,s:s,s:s,s:[s,s,s,s]}]",
        "destination", "/proc", "type", "proc", "source", "proc",
        "destination", "/dev", "type", "tmpfs", "source", "tmpfs", "options", "nosuid", "strictatime", "mode=755",
        "size=65536k",
        "destination", "/dev/pts", "type", "devpts", "source", "devpts", "options", "nosuid", "noexec", "newinstance",
        "ptmxmode=0666", "mode=0620", "gid=5",
        "destination", "/dev/shm", "type", "tmpfs", "source", "shm", "options", "nosuid", "noexec", "nodev",
        "mode=1777", "size=65536k",
        "destination", "/dev/mqueue", "type", "mqueue", "source", "mqueue", "options", "nosuid", "noexec", "nodev",
        "destination", "/sys", "type", "sysfs", "source", "sysfs", "options", "nosuid", "noexec", "nodev", "ro",
        "destination", "/tmp", "type", "tmpfs", "source", "tmpfs", "options", "nosuid", "nodev", "mode=1777",
        "size=65536k");
}

int rc_bundle_config(struct rc *r, const struct kc_rt_container *c, const struct kc_image_info *img,
                     const struct rc_sandbox *sb, const char *ctr_id, json_t **out, struct kc_err *err)
{
    json_t *cspec = rc_container_spec(c->pod, c->name, c->init);
    if (!cspec)
        return kc_err_set(err, KC_EINVAL, 0, "CreateContainerConfigError", "no container %.60s in the pod spec",
                          c->name);
    json_t *img_cfg = json_object_get(img->config, "config");
    if (!img_cfg)
        img_cfg = img->config; /* a bare config object */
    json_t *env = json_object();
    int rc = build_env(r, c, cspec, img_cfg, sb, env, err);
    if (rc) {
        json_decref(env);
        return rc;
    }
    json_t *args = build_args(cspec, img_cfg, env);
    if (!json_array_size(args)) {
        json_decref(env);
        json_decref(args);
        return kc_err_set(err, KC_EINVAL, 0, "CreateContainerError",
                          "no command specified (the image has no Entrypoint or Cmd and the container no command)");
    }
    json_t *envl = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(env, k, v)
    {
        char *kv = NULL;
        if (asprintf(&kv, "%s=%s", k, json_string_value(v)) >= 0) {
            json_array_append_new(envl, json_string(kv));
            free(kv);
        }
    }
    json_decref(env);
    const char *cwd = jstr(cspec, "workingDir");
    if (!cwd || !*cwd)
        cwd = jstr(img_cfg, "WorkingDir");
    if (!cwd || *cwd != '/')
        cwd = "/";
    /* no rlimits: the container inherits the agent's (a sandbox may not allow raising them) */
    json_t *proc = json_pack("{s:b,s:o,s:o,s:o,s:s,s:o,s:b}", "terminal", 0, "user",
                             build_user(c->pod, cspec, img_cfg), "args", args, "env", envl, "cwd", cwd, "capabilities",
                             build_caps(cspec), "noNewPrivileges",
                             json_is_false(sec_get(c->pod, cspec, "allowPrivilegeEscalation")));
    json_t *ns = json_pack("[{s:s},{s:s},{s:s},{s:s}]", "type", "pid", "type", "ipc", "type", "uts", "type", "mount");
    if (sb && !sb->host_network && sb->netns) {
        char p[200];
        snprintf(p, sizeof p, "/run/netns/%s", sb->netns_name);
        json_array_append_new(ns, json_pack("{s:s,s:s}", "type", "network", "path", p));
    }
    char cg[300];
    snprintf(cg, sizeof cg, "/kubec/pod%.60s/%.80s", c->pod_uid, ctr_id);
    json_t *linux_ = json_pack("{s:o,s:o,s:s,s:[s,s,s,s,s,s],s:[s,s,s,s,s,s]}", "namespaces", ns, "resources",
                               build_resources(cspec), "cgroupsPath", cg, "maskedPaths", "/proc/kcore",
                               "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/sys/firmware",
                               "/proc/scsi", "readonlyPaths", "/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq",
                               "/proc/sys", "/proc/sysrq-trigger");
    bool ro = json_is_true(sec_get(c->pod, cspec, "readOnlyRootFilesystem"));
    const char *host = sb && sb->host_network ? NULL : jstr(json_object_get(c->pod, "metadata"), "name");
    json_t *cfg = json_pack("{s:s,s:o,s:{s:s,s:b},s:o,s:o}", "ociVersion", "1.0.2", "process", proc, "root", "path",
                            "rootfs", "readonly", ro, "mounts", mounts(true), "linux", linux_);
    if (!cfg)
        return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "cannot build the OCI config");
    if (host && *host) {
        char h[64];
        snprintf(h, sizeof h, "%.63s", host);
        json_object_set_new(cfg, "hostname", json_string(h));
    }
    (void)r;
    *out = cfg;
    return 0;
}
