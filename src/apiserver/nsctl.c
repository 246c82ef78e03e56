/* nsctl.c — the namespace controller: when a Namespace has a
 * deletionTimestamp, delete everything in it, then remove its "kubernetes"
 * finalizer so that the Namespace itself goes away — what upstream's
 * namespace controller does. Runs as one thread of the API server and acts
 * through the same handlers as clients (no direct store writes).
 */
#include "apiserver/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"
#include "util/timeutil.h"

static void call(struct kc_server *srv, const char *method, const char *path, const char *ctype, const char *body,
                 struct kc_resp *resp)
{
    struct kc_req req = {.srv = srv,
                         .method = method,
                         .path = path,
                         .query = json_object(),
                         .content_type = ctype,
                         .accept = "application/json",
                         .user_agent = "namespace-controller/kubec",
                         .body = body,
                         .body_len = body ? strlen(body) : 0};
    kc_dispatch(&req, resp);
    json_decref(req.query);
}

static void finalize(struct kc_server *srv, const char *ns)
{
    bool left = false;
    for (size_t i = 0; i < kc_nresources; i++) {
        const struct kc_resource *r = &kc_resources[i];
        if (!r->namespaced || !r->storage)
            continue;
        char prefix[400];
        snprintf(prefix, sizeof prefix, "%s%s/", r->storage_prefix, ns);
        struct kc_obj **v = NULL;
        size_t n = 0;
        kc_rev_t rev;
        kc_cache_list(srv->cache, r->storage, prefix, &v, &n, &rev);
        for (size_t k = 0; k < n; k++) {
            char path[800];
            snprintf(path, sizeof path, "/%s%s%s/namespaces/%s/%s/%s", *r->group ? "apis/" : "api/", r->group,
                     *r->group ? "/v1" : "v1", ns, r->plural, v[k]->name);
            struct kc_resp resp = {0};
            call(srv, "DELETE", path, "application/json", "{\"propagationPolicy\":\"Background\"}", &resp);
            kc_resp_release(&resp);
            left = true;
        }
        kc_objs_free(v, n);
    }
    if (left)
        return; /* next pass checks again */
    char path[400];
    snprintf(path, sizeof path, "/api/v1/namespaces/%s", ns);
    struct kc_resp resp = {0};
    call(srv, "PATCH", path, "application/merge-patch+json", "{\"spec\":{\"finalizers\":[]}}", &resp);
    kc_resp_release(&resp);
}

/* --event-ttl: Events expire this long after their last occurrence (upstream keeps them in etcd with a
 * lease of the same length). Swept once a minute. */
static void expire_events(struct kc_server *srv)
{
    const struct kc_resource *ev = kc_resource_find("", "v1", "events");
    struct kc_obj **v = NULL;
    size_t n = 0;
    kc_rev_t rev;
    kc_cache_list(srv->cache, ev->storage, ev->storage_prefix, &v, &n, &rev);
    time_t now = time(NULL);
    for (size_t i = 0; i < n; i++) {
        json_t *o = kc_obj_parse(v[i]);
        const char *ts = kc_jstr(o, "lastTimestamp");
        if (!ts)
            ts = kc_jstr(o, "eventTime");
        if (!ts)
            ts = kc_jstr(o, "metadata.creationTimestamp");
        time_t t;
        if (ts && kc_time_parse(ts, &t) == 0 && now - t > srv->opts.event_ttl_s) {
            char path[800];
            snprintf(path, sizeof path, "/api/v1/namespaces/%s/events/%s", v[i]->ns, v[i]->name);
            struct kc_resp resp = {0};
            call(srv, "DELETE", path, NULL, NULL, &resp);
            kc_resp_release(&resp);
        }
        json_decref(o);
    }
    kc_objs_free(v, n);
}

static void ensure_default_sa(struct kc_server *srv, const char *ns)
{
    const struct kc_resource *sar = kc_resource_find("", "v1", "serviceaccounts");
    char key[400];
    snprintf(key, sizeof key, "%s%s/default", sar->storage_prefix, ns);
    struct kc_obj *o = kc_cache_get(sar->storage, key);
    if (o) {
        kc_obj_unref(o);
        return;
    }
    json_t *sa = json_pack("{s:s,s:s,s:{s:s,s:s}}", "apiVersion", "v1", "kind", "ServiceAccount", "metadata", "name",
                           "default", "namespace", ns);
    struct kc_err err = {0};
    if (sa && kc_server_create_json(srv, sar, sa, &err) && err.code != 409)
        kc_debug("nsctl", "default ServiceAccount in %s: %s", ns, err.message);
    json_decref(sa);
}

static void *ns_thread(void *arg)
{
    pthread_setname_np(pthread_self(), "kc-nsctl");
    struct kc_server *srv = arg;
    const struct kc_resource *nsr = kc_resource_find("", "v1", "namespaces");
    time_t last_sweep = time(NULL);
    pthread_mutex_lock(&srv->ns_mu);
    while (!srv->stopping) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 2;
        pthread_cond_timedwait(&srv->ns_cond, &srv->ns_mu, &dl);
        if (srv->stopping)
            break;
        pthread_mutex_unlock(&srv->ns_mu);
        struct kc_obj **v = NULL;
        size_t n = 0;
        kc_rev_t rev;
        kc_cache_list(srv->cache, nsr->storage, nsr->storage_prefix, &v, &n, &rev);
        for (size_t i = 0; i < n; i++)
            if (strstr(v[i]->json, "\"deletionTimestamp\""))
                finalize(srv, v[i]->name);
            else
                ensure_default_sa(srv, v[i]->name);
        kc_objs_free(v, n);
        if (srv->opts.event_ttl_s > 0 && time(NULL) - last_sweep >= 60) {
            last_sweep = time(NULL);
            expire_events(srv);
        }
        pthread_mutex_lock(&srv->ns_mu);
    }
    pthread_mutex_unlock(&srv->ns_mu);
    return NULL;
}

int kc_nsctl_start(struct kc_server *srv)
{
    pthread_mutex_init(&srv->ns_mu, NULL);
    pthread_cond_init(&srv->ns_cond, NULL);
    return pthread_create(&srv->ns_thread, NULL, ns_thread, srv);
}

void kc_nsctl_kick(struct kc_server *srv)
{
    pthread_mutex_lock(&srv->ns_mu);
    pthread_cond_signal(&srv->ns_cond);
    pthread_mutex_unlock(&srv->ns_mu);
}

void kc_nsctl_stop(struct kc_server *srv)
{
    pthread_mutex_lock(&srv->ns_mu);
    pthread_cond_broadcast(&srv->ns_cond);
    pthread_mutex_unlock(&srv->ns_mu);
    pthread_join(srv->ns_thread, NULL);
}
