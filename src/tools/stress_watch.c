/* stress_watch.c — what `kubec stress` sees of its run: three watches (pods, replicasets, deployments),
 * each across all namespaces and selected by the run label, one thread each. Every event updates a
 * record under st_state.mu: the kubec.io/timeline stamps, the arrival time of the first event that shows
 * a stage (scheduled, started, Ready, Available), and the condition times (second precision) as the last
 * fallback. st_state_finalize picks one time per stage: stamp, else watch arrival, else condition.
 *
 * Each watch first lists (paged) to learn the resourceVersion, then watches from it with bookmarks; a
 * stream that ends is resumed from the last resourceVersion; 410 Gone (or an error) re-lists.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/stress_int.h"
#include "util/jsonparse.h"

enum { W_PODS, W_RS, W_DEPLOY, W_N };

struct st_watch {
    struct st_watches *ws;
    int kind;
    pthread_t th;
    bool started;
    char rv[64];
    bool relist;
};

struct st_watches {
    struct st_api *a;
    struct st_state *s;
    atomic_bool stop;
    char sel[160]; /* escaped labelSelector value */
    struct st_watch w[W_N];
};

static const char *const bases[W_N] = {"/api/v1/pods", "/apis/apps/v1/replicasets", "/apis/apps/v1/deployments"};
/* timeline stage names by enum st_stage, per kind */
static const char *const pod_tl[ST_NSTAGES] = {NULL, NULL, "created", "scheduled", "started", "ready", NULL};
static const char *const rs_tl[ST_NSTAGES] = {NULL, "created", NULL, NULL, NULL, NULL, NULL};
static const char *const dep_tl[ST_NSTAGES] = {"created", NULL, NULL, NULL, NULL, NULL, "available"};

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static int label_index(json_t *meta)
{
    const char *s = json_string_value(json_object_get(json_object_get(meta, "labels"), ST_INDEX_LABEL));
    if (!s)
        return -1;
    char *end;
    long v = strtol(s, &end, 10);
    return end == s || *end || v < 0 || v >= ST_MAX_DEPLOYMENTS ? -1 : (int)v;
}

/* The condition of that type with status True, or NULL. */
static json_t *cond_true(json_t *status, const char *type)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(status, "conditions"), i, c)
    {
        if (!strcmp(jstr(c, "type"), type))
            return !strcmp(jstr(c, "status"), "True") ? c : NULL;
    }
    return NULL;
}

static json_t *cond_of(json_t *status, const char *type)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(status, "conditions"), i, c) if (!strcmp(jstr(c, "type"), type)) return c;
    return NULL;
}

static void set_once(double *t, double v)
{
    if (*t == 0 && v > 0)
        *t = v;
}

static double ctime_of(json_t *c, const char *field)
{
    double t = 0;
    if (c && st_parse_time(json_string_value(json_object_get(c, field)), &t))
        t = 0;
    return t;
}

/* Containers: all running → the latest startedAt (0 if some are not running). */
static bool all_running(json_t *status, double *started_at)
{
    json_t *cs = json_object_get(status, "containerStatuses"), *c;
    size_t i;
    if (!json_array_size(cs))
        return false;
    double latest = 0;
    json_array_foreach(cs, i, c)
    {
        json_t *run = json_object_get(json_object_get(c, "state"), "running");
        if (!run)
            return false;
        double t = ctime_of(run, "startedAt");
        if (t > latest)
            latest = t;
    }
    *started_at = latest;
    return true;
}

/* Why a pod is not Ready: a container's waiting reason, the scheduler's reason, or the phase. */
static void not_ready_reason(json_t *o, struct st_pod *p)
{
    json_t *status = json_object_get(o, "status");
    const char *reason = NULL;
    size_t i;
    json_t *c;
    json_t *lists[2] = {json_object_get(status, "initContainerStatuses"), json_object_get(status, "containerStatuses")};
    for (int l = 0; l < 2 && !reason; l++)
        json_array_foreach(lists[l], i, c)
        {
            json_t *st = json_object_get(c, "state");
            const char *r = json_string_value(json_object_get(json_object_get(st, "waiting"), "reason"));
            if (!r)
                r = json_string_value(json_object_get(json_object_get(st, "terminated"), "reason"));
            if (r && *r) {
                reason = r;
                break;
            }
        }
    json_t *ps = cond_of(status, "PodScheduled");
    if (!reason && ps && !strcmp(jstr(ps, "status"), "False") && *jstr(ps, "reason"))
        reason = jstr(ps, "reason");
    if (!reason)
        reason = *jstr(json_object_get(o, "spec"), "nodeName") ? (*jstr(status, "phase") ? jstr(status, "phase") : "Pending")
                                                                : "NotScheduled";
    snprintf(p->reason, sizeof p->reason, "%s", reason);
}

static void on_pod(struct st_state *s, const char *type, json_t *o, double now)
{
    json_t *meta = json_object_get(o, "metadata"), *status = json_object_get(o, "status");
    char key[320];
    snprintf(key, sizeof key, "%s/%s", jstr(meta, "namespace"), jstr(meta, "name"));
    struct st_pod *p = kc_map_get(&s->pods, key);
    if (!p) {
        if (!strcmp(type, "DELETED") || kc_map_len(&s->pods) >= s->max_pods)
            return;
        p = calloc(1, sizeof *p);
        int err = 0;
        if (!p)
            return;
        kc_map_put(&s->pods, key, p, &err);
        if (err) {
            free(p);
            return;
        }
        snprintf(p->ns, sizeof p->ns, "%s", jstr(meta, "namespace"));
        snprintf(p->name, sizeof p->name, "%s", jstr(meta, "name"));
        p->index = label_index(meta);
        if (p->index >= s->nd)
            p->index = -1;
        p->churn = atomic_load(&s->churn_phase);
        p->seen[ST_POD] = now;
        if (!p->churn)
            atomic_fetch_add(&s->pods_seen, 1);
    }
    if (!strcmp(type, "DELETED")) {
        p->deleted = true;
        return;
    }
    st_timeline_get(o, pod_tl, ST_NSTAGES, p->stamp);
    const char *node = jstr(json_object_get(o, "spec"), "nodeName");
    if (*node) {
        set_once(&p->seen[ST_SCHED], now);
        snprintf(p->node, sizeof p->node, "%s", node);
    }
    set_once(&p->cond[ST_SCHED], ctime_of(cond_true(status, "PodScheduled"), "lastTransitionTime"));
    set_once(&p->cond[ST_POD], ctime_of(meta, "creationTimestamp"));
    double started_at;
    if (all_running(status, &started_at)) {
        set_once(&p->seen[ST_STARTED], now);
        set_once(&p->cond[ST_STARTED], started_at);
    }
    json_t *ready = cond_true(status, "Ready");
    if (ready && !p->ready) {
        p->ready = true;
        set_once(&p->seen[ST_STARTED], now); /* Ready implies started */
        set_once(&p->seen[ST_READY], now);
        set_once(&p->cond[ST_READY], ctime_of(ready, "lastTransitionTime"));
        p->reason[0] = 0;
        if (!p->churn) {
            atomic_fetch_add(&s->pods_ready, 1);
            s->last_ready = now;
            if (s->nready_times == s->cap_ready_times) {
                size_t cap = s->cap_ready_times ? s->cap_ready_times * 2 : 1024;
                double *t = realloc(s->ready_times, cap * sizeof *t);
                if (t) {
                    s->ready_times = t;
                    s->cap_ready_times = cap;
                }
            }
            if (s->nready_times < s->cap_ready_times)
                s->ready_times[s->nready_times++] = now;
        }
    }
    if (!p->ready)
        not_ready_reason(o, p);
}

static struct st_deploy *deploy_of(struct st_state *s, json_t *meta)
{
    int i = label_index(meta);
    return i >= 0 && i < s->nd ? &s->d[i] : NULL;
}

static void on_rs(struct st_state *s, const char *type, json_t *o, double now)
{
    struct st_deploy *d = deploy_of(s, json_object_get(o, "metadata"));
    if (!d || !strcmp(type, "DELETED") || d->seen[ST_RS]) /* the first ReplicaSet is the creation's */
        return;
    d->seen[ST_RS] = now;
    st_timeline_get(o, rs_tl, ST_NSTAGES, d->stamp);
    d->cond[ST_RS] = ctime_of(json_object_get(o, "metadata"), "creationTimestamp");
}

static int64_t jint(json_t *o, const char *k) { return json_integer_value(json_object_get(o, k)); }

static void on_deploy(struct st_state *s, const char *type, json_t *o, double now)
{
    json_t *meta = json_object_get(o, "metadata"), *status = json_object_get(o, "status");
    struct st_deploy *d = deploy_of(s, meta);
    if (!d || !strcmp(type, "DELETED"))
        return;
    double accepted = 0;
    const char *names[1] = {"created"};
    if (!d->stamp[ST_ACCEPTED] && st_timeline_get(o, names, 1, &accepted))
        d->stamp[ST_ACCEPTED] = accepted;
    double avail[ST_NSTAGES] = {0};
    st_timeline_get(o, dep_tl, ST_NSTAGES, avail);
    set_once(&d->stamp[ST_AVAILABLE], avail[ST_AVAILABLE]);
    d->generation = jint(meta, "generation");
    d->observed = jint(status, "observedGeneration");
    d->replicas = (int)jint(status, "replicas");
    d->updated = (int)jint(status, "updatedReplicas");
    d->ready_replicas = (int)jint(status, "readyReplicas");
    d->available_replicas = (int)jint(status, "availableReplicas");
    json_t *av = cond_true(status, "Available");
    if (av && !d->available && !atomic_load(&s->churn_phase)) {
        d->available = true;
        atomic_fetch_add(&s->available, 1);
        set_once(&d->seen[ST_AVAILABLE], now);
        set_once(&d->cond[ST_AVAILABLE], ctime_of(av, "lastTransitionTime"));
    }
}

static void dispatch(struct st_watch *w, const char *type, json_t *o, double now)
{
    struct st_state *s = w->ws->s;
    pthread_mutex_lock(&s->mu);
    s->events++;
    if (w->kind == W_PODS)
        on_pod(s, type, o, now);
    else if (w->kind == W_RS)
        on_rs(s, type, o, now);
    else
        on_deploy(s, type, o, now);
    pthread_mutex_unlock(&s->mu);
}

static void keep_rv(struct st_watch *w, json_t *o)
{
    const char *rv = json_string_value(json_object_get(json_object_get(o, "metadata"), "resourceVersion"));
    if (rv && strlen(rv) < sizeof w->rv)
        memcpy(w->rv, rv, strlen(rv) + 1);
}

static int on_line(void *ctx, const char *line, size_t len)
{
    struct st_watch *w = ctx;
    double now = st_wall_now();
    json_t *ev = kc_json_loadb(line, len, 0, NULL);
    if (!ev)
        return 0;
    const char *type = jstr(ev, "type");
    json_t *o = json_object_get(ev, "object");
    if (!strcmp(type, "ERROR")) {
        w->relist = true; /* 410 Gone or any other failure: start over from a list */
        pthread_mutex_lock(&w->ws->s->mu);
        w->ws->s->watch_errors++;
        pthread_mutex_unlock(&w->ws->s->mu);
        json_decref(ev);
        return 1;
    }
    keep_rv(w, o);
    if (!strcmp(type, "BOOKMARK")) {
        pthread_mutex_lock(&w->ws->s->mu);
        w->ws->s->bookmarks++;
        pthread_mutex_unlock(&w->ws->s->mu);
    } else {
        dispatch(w, type, o, now);
    }
    json_decref(ev);
    return atomic_load(&w->ws->stop) ? 1 : 0;
}

/* Paged list: every item counts as ADDED; w->rv becomes the list's resourceVersion. */
static int list_all(struct st_watch *w, struct kc_err *err)
{
    char path[1024], cont[512] = "";
    for (int page = 0; page < 100000; page++) {
        char esc[400] = "";
        if (*cont && kc_url_escape(cont, esc, sizeof esc))
            return kc_err_set(err, KC_ETOOLARGE, 0, "InternalError", "continue token too long");
        snprintf(path, sizeof path, "%s?labelSelector=%s&limit=500%s%s", bases[w->kind], w->ws->sel,
                 *esc ? "&continue=" : "", esc);
        json_t *list;
        int code;
        int rc = st_api_call(w->ws->a, ST_V_LIST, "GET", path, NULL, NULL, &list, &code, err);
        if (rc)
            return rc;
        double now = st_wall_now();
        size_t i;
        json_t *it;
        json_array_foreach(json_object_get(list, "items"), i, it) dispatch(w, "ADDED", it, now);
        json_t *lm = json_object_get(list, "metadata");
        const char *c = jstr(lm, "continue");
        if (!*c)
            keep_rv(w, list);
        snprintf(cont, sizeof cont, "%s", strlen(c) < sizeof cont ? c : "");
        json_decref(list);
        if (!*cont)
            return 0;
    }
    return 0;
}

static void nap(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void *watch_main(void *arg)
{
    struct st_watch *w = arg;
    struct kc_err err;
    while (!atomic_load(&w->ws->stop)) {
        if (w->relist) {
            if (list_all(w, &err)) {
                nap(0.5);
                continue;
            }
            pthread_mutex_lock(&w->ws->s->mu);
            w->ws->s->relists++;
            pthread_mutex_unlock(&w->ws->s->mu);
            w->relist = false;
        }
        char path[1024];
        snprintf(path, sizeof path,
                 "%s?watch=true&allowWatchBookmarks=true&labelSelector=%s&resourceVersion=%s&timeoutSeconds=300",
                 bases[w->kind], w->ws->sel, w->rv);
        int code = 0;
        int rc = kc_client_watch(w->ws->a->c, path, on_line, w, &w->ws->stop, &code, &err);
        if (atomic_load(&w->ws->stop))
            break;
        if (rc || (code && code != 200)) {
            w->relist = true;
            pthread_mutex_lock(&w->ws->s->mu);
            w->ws->s->watch_errors++;
            pthread_mutex_unlock(&w->ws->s->mu);
            nap(0.2);
        }
    }
    return NULL;
}

int st_watches_start(struct st_api *a, struct st_state *s, const char *run, struct st_watches **out,
                     struct kc_err *err)
{
    struct st_watches *ws = calloc(1, sizeof *ws);
    if (!ws)
        return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
    ws->a = a;
    ws->s = s;
    atomic_init(&ws->stop, false);
    char sel[128];
    snprintf(sel, sizeof sel, "%s=%s", ST_RUN_LABEL, run);
    if (kc_url_escape(sel, ws->sel, sizeof ws->sel)) {
        free(ws);
        return kc_err_set(err, KC_ETOOLARGE, 0, "InternalError", "label selector too long");
    }
    /* list first (on this thread), so a failure is reported before anything is created */
    for (int k = 0; k < W_N; k++) {
        ws->w[k].ws = ws;
        ws->w[k].kind = k;
        int rc = list_all(&ws->w[k], err);
        if (rc) {
            st_watches_stop(ws);
            return rc;
        }
    }
    for (int k = 0; k < W_N; k++) {
        if (pthread_create(&ws->w[k].th, NULL, watch_main, &ws->w[k])) {
            st_watches_stop(ws);
            return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "cannot start a watch thread");
        }
        ws->w[k].started = true;
    }
    *out = ws;
    return 0;
}

void st_watches_stop(struct st_watches *ws)
{
    if (!ws)
        return;
    atomic_store(&ws->stop, true);
    for (int k = 0; k < W_N; k++)
        if (ws->w[k].started)
            pthread_join(ws->w[k].th, NULL);
    free(ws);
}

/* stamp → watch arrival → condition (or client observation) */
static double choose(const double *stamp, const double *seen, const double *cond, int st, unsigned char *src)
{
    if (stamp[st]) {
        *src = ST_SRC_STAMP;
        return stamp[st];
    }
    if (seen[st]) {
        *src = ST_SRC_WATCH;
        return seen[st];
    }
    if (cond[st]) {
        *src = ST_SRC_COND;
        return cond[st];
    }
    *src = ST_SRC_NONE;
    return 0;
}

void st_state_finalize(struct st_state *s)
{
    pthread_mutex_lock(&s->mu);
    const char *key;
    void *v;
    for (long i = kc_map_next(&s->pods, 0, &key, &v); i >= 0; i = kc_map_next(&s->pods, i + 1, &key, &v)) {
        struct st_pod *p = v;
        for (int st = ST_POD; st <= ST_READY; st++)
            p->t[st] = choose(p->stamp, p->seen, p->cond, st, &p->src[st]);
        if (!p->ready) { /* a stage a never-Ready pod did not reach stays empty */
            p->t[ST_READY] = 0;
            p->src[ST_READY] = ST_SRC_NONE;
        }
        if (p->index < 0)
            continue;
        struct st_deploy *d = &s->d[p->index];
        if (d->stamp[ST_ACCEPTED]) {
            p->t[ST_ACCEPTED] = d->stamp[ST_ACCEPTED];
            p->src[ST_ACCEPTED] = ST_SRC_STAMP;
        } else if (d->accepted_client) {
            p->t[ST_ACCEPTED] = d->accepted_client;
            p->src[ST_ACCEPTED] = ST_SRC_CLIENT;
        }
        p->t[ST_RS] = choose(d->stamp, d->seen, d->cond, ST_RS, &p->src[ST_RS]);
        p->t[ST_AVAILABLE] = d->available ? choose(d->stamp, d->seen, d->cond, ST_AVAILABLE, &p->src[ST_AVAILABLE]) : 0;
    }
    pthread_mutex_unlock(&s->mu);
}

void st_state_release(struct st_state *s)
{
    const char *key;
    void *v;
    for (long i = kc_map_next(&s->pods, 0, &key, &v); i >= 0; i = kc_map_next(&s->pods, i + 1, &key, &v))
        free(v);
    kc_map_release(&s->pods);
    free(s->d);
    free(s->ready_times);
    pthread_mutex_destroy(&s->mu);
}
