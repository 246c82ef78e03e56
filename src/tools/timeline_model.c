/* timeline_model.c — reads one Deployment rollout's stage times through the public API and analyses
 * them (the model of `kubec timeline`, see timeline.h and docs/timeline.md).
 *
 * Collection: GET the Deployment; list its ReplicaSets (label selector of the Deployment, then
 * filtered by controller owner uid) and pick the wanted revision; list that ReplicaSet's pods the
 * same way. Each stage time comes from the kubec.io/timeline annotation (microseconds) and, when a
 * stamp is missing (older server, a component that does not stamp yet), from what upstream objects
 * carry: creationTimestamp, condition lastTransitionTime, containerStatuses startedAt, and the
 * pod's Pulled Event. Events are read per object with fieldSelector involvedObject.uid=..., bounded
 * (KC_TL_MAX_EVENT_READS) so a huge ReplicaSet cannot turn into thousands of requests.
 *
 * Analysis (kc_tl_analyse, no I/O): per-stage waterfall spans and per-pod duration percentiles, the
 * critical path (the pod whose Ready made the Deployment Available) whose segments sum exactly to
 * the total, and the earliest stage that still has pods waiting. Single-threaded.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/timeline.h"
#include "util/jsonparse.h"

#define TL_ANN "kubec.io/timeline"
#define REV_ANN "deployment.kubernetes.io/revision"
#define PAGE_LIMIT 500
#define PATH_MAX_LEN 8192
#define SELECTOR_MAX 4096
#define STUCK_POD_EVENT_READS 20

/* ---------- names ---------- */

const char *kc_tl_stage_key(int stage)
{
    static const char *const k[KC_TL_NSTAGES] = {"accepted", "replicaSetCreated", "created", "scheduled",
                                                 "pulled",   "started",           "ready",   "available"};
    return stage >= 0 && stage < KC_TL_NSTAGES ? k[stage] : "?";
}

const char *kc_tl_stage_label(int stage)
{
    static const char *const k[KC_TL_NSTAGES] = {
        "Deployment accepted", "ReplicaSet created", "Pod created",        "Pod scheduled",
        "Image pulled",        "Container started",  "Pod Ready",          "Deployment Available"};
    return stage >= 0 && stage < KC_TL_NSTAGES ? k[stage] : "?";
}

const char *kc_tl_src_name(int src)
{
    static const char *const k[] = {"none", "stamp", "metadata", "condition", "containerStatus", "event"};
    return src >= 0 && src <= KC_TL_SRC_EVENT ? k[src] : "?";
}

/* ---------- small JSON and text helpers ---------- */

static json_t *jpath(json_t *o, const char *dotted)
{
    char key[128];
    while (o && *dotted) {
        const char *dot = strchr(dotted, '.');
        size_t n = dot ? (size_t)(dot - dotted) : strlen(dotted);
        if (n >= sizeof key)
            return NULL;
        memcpy(key, dotted, n);
        key[n] = 0;
        o = json_object_get(o, key);
        dotted += n + (dot ? 1 : 0);
    }
    return o;
}

static const char *jstr(json_t *o, const char *dotted)
{
    const char *s = json_string_value(jpath(o, dotted));
    return s && *s ? s : NULL;
}

static void copy(char *dst, size_t n, const char *s)
{
    snprintf(dst, n, "%s", s ? s : "");
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* days since 1970-01-01 of a proleptic Gregorian date (no timegm: no TZ state, no locale) */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int kc_tl_parse_time(const char *s, int64_t *us, bool *micro)
{
    if (!s)
        return -1;
    int Y, M, D, h, mi, sec;
    const char *p = s;
    if (digits(&p, 4, &Y) || *p++ != '-' || digits(&p, 2, &M) || *p++ != '-' || digits(&p, 2, &D) ||
        (*p != 'T' && *p != 't' && *p != ' '))
        return -1;
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' || digits(&p, 2, &sec))
        return -1;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    int64_t frac = 0;
    bool has_frac = false;
    if (*p == '.') {
        p++;
        int nd = 0;
        while (isdigit((unsigned char)*p)) {
            if (nd < 6)
                frac = frac * 10 + (*p - '0');
            nd++;
            p++;
        }
        if (!nd || nd > 9)
            return -1;
        for (int i = nd; i < 6; i++)
            frac *= 10;
        has_frac = true;
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om))
            return -1;
        off = sign * (oh * 3600 + om * 60);
    } else {
        return -1;
    }
    if (*p)
        return -1;
    int64_t secs = days_from_civil(Y, M, D) * 86400 + h * 3600 + mi * 60 + sec - off;
    *us = secs * 1000000 + frac;
    if (micro)
        *micro = has_frac;
    return 0;
}

int64_t kc_tl_percentile(const int64_t *sorted, size_t n, double q)
{
    if (!n)
        return 0;
    double r = q * (double)n;
    size_t rank = (size_t)r;
    if ((double)rank < r)
        rank++; /* ceil */
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

static void set_time(struct kc_tl_time *t, const char *text, int src)
{
    int64_t us;
    bool micro;
    if (t->src != KC_TL_SRC_NONE || !text || kc_tl_parse_time(text, &us, &micro))
        return;
    t->us = us;
    t->src = src;
    t->coarse = !micro;
}

/* The kubec.io/timeline annotation of obj, parsed (new reference) or NULL. */
static json_t *timeline_of(json_t *obj)
{
    const char *s = json_string_value(json_object_get(jpath(obj, "metadata.annotations"), TL_ANN));
    if (!s)
        return NULL;
    json_t *tl = kc_json_loads(s, 0, NULL);
    if (!json_is_object(tl)) {
        json_decref(tl);
        return NULL;
    }
    return tl;
}

static void set_stamp(struct kc_tl_time *t, json_t *tl, const char *stage)
{
    set_time(t, json_string_value(json_object_get(tl, stage)), KC_TL_SRC_STAMP);
}

/* The condition of that type in obj's status.conditions, or NULL. */
static json_t *condition(json_t *obj, const char *type)
{
    json_t *conds = jpath(obj, "status.conditions"), *c;
    size_t i;
    json_array_foreach(conds, i, c) {
        const char *t = jstr(c, "type");
        if (t && !strcmp(t, type))
            return c;
    }
    return NULL;
}

static bool cond_is(json_t *c, const char *status)
{
    const char *s = jstr(c, "status");
    return s && !strcmp(s, status);
}

static bool controlled_by(json_t *obj, const char *uid)
{
    json_t *refs = jpath(obj, "metadata.ownerReferences"), *r;
    size_t i;
    json_array_foreach(refs, i, r) {
        const char *u = jstr(r, "uid");
        if (u && !strcmp(u, uid) && json_is_true(json_object_get(r, "controller")))
            return true;
    }
    return false;
}

/* "k=v,k2=v2" from spec.selector.matchLabels, percent-encoded into out; "" if there are none or it
 * does not fit (then everything in the namespace is listed and filtered by owner). */
static void label_selector(json_t *obj, char *out, size_t n)
{
    char raw[SELECTOR_MAX];
    size_t len = 0;
    const char *k;
    json_t *v;
    out[0] = 0;
    raw[0] = 0;
    json_object_foreach(jpath(obj, "spec.selector.matchLabels"), k, v) {
        int w = snprintf(raw + len, sizeof raw - len, "%s%s=%s", len ? "," : "", k, json_string_value(v) ?: "");
        if (w < 0 || (size_t)w >= sizeof raw - len)
            return;
        len += (size_t)w;
    }
    if (len && kc_url_escape(raw, out, n))
        out[0] = 0;
}

/* Lists a namespaced collection page by page; fn gets each item (borrowed). Stops after max items. */
typedef int (*item_fn)(void *ctx, json_t *item, struct kc_err *err);

static int list_all(struct kc_client *c, const char *base, const char *selq, size_t max, item_fn fn, void *ctx,
                    struct kc_err *err)
{
    char cont[2048] = "", path[PATH_MAX_LEN];
    size_t seen = 0;
    for (;;) {
        char conte[sizeof cont * 3];
        if (kc_url_escape(cont, conte, sizeof conte))
            return kc_err_set(err, KC_ETOOLARGE, 0, "", "continue token too long");
        int w = snprintf(path, sizeof path, "%s?limit=%d%s%s%s%s", base, PAGE_LIMIT, *selq ? "&labelSelector=" : "",
                         selq, *cont ? "&continue=" : "", conte);
        if (w < 0 || (size_t)w >= sizeof path)
            return kc_err_set(err, KC_ETOOLARGE, 0, "", "request path too long");
        json_t *list = NULL;
        int rc = kc_client_get(c, path, &list, err);
        if (rc)
            return rc;
        json_t *items = json_object_get(list, "items"), *it;
        size_t i;
        json_array_foreach(items, i, it) {
            if (seen++ >= max)
                break;
            if ((rc = fn(ctx, it, err))) {
                json_decref(list);
                return rc;
            }
        }
        const char *next = jstr(list, "metadata.continue");
        bool more = next && seen < max && strlen(next) < sizeof cont;
        if (more)
            copy(cont, sizeof cont, next);
        json_decref(list);
        if (!more)
            return 0;
    }
}

/* ---------- Deployment and ReplicaSet ---------- */

static long revision_of(json_t *obj)
{
    const char *s = json_string_value(json_object_get(jpath(obj, "metadata.annotations"), REV_ANN));
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    return s && *end == 0 && v > 0 ? v : 0;
}

static void read_deployment(json_t *d, struct kc_tl *tl)
{
    copy(tl->uid, sizeof tl->uid, jstr(d, "metadata.uid"));
    json_t *stamps = timeline_of(d);
    set_stamp(&tl->accepted, stamps, "created");
    set_time(&tl->accepted, jstr(d, "metadata.creationTimestamp"), KC_TL_SRC_META);
    set_stamp(&tl->available, stamps, "available");
    json_decref(stamps);
    json_t *r = jpath(d, "spec.replicas");
    tl->replicas = json_is_integer(r) ? (long)json_integer_value(r) : 1;
    json_t *prog = condition(d, "Progressing");
    if (prog && cond_is(prog, "False")) {
        tl->deadline_exceeded = true;
        copy(tl->dep_msg, sizeof tl->dep_msg, jstr(prog, "message"));
    }
    json_t *rf = condition(d, "ReplicaFailure");
    if (rf && cond_is(rf, "True")) {
        tl->replica_failure = true;
        copy(tl->dep_msg, sizeof tl->dep_msg, jstr(rf, "message"));
    }
}

struct rs_pick {
    const char *dep_uid;
    long want; /* 0 = newest */
    json_t *best;
    long best_rev;
};

static int rs_item(void *ctx, json_t *rs, struct kc_err *err)
{
    (void)err;
    struct rs_pick *p = ctx;
    if (!controlled_by(rs, p->dep_uid))
        return 0;
    long rev = revision_of(rs);
    if ((p->want && rev == p->want) || (!p->want && (!p->best || rev > p->best_rev))) {
        json_decref(p->best);
        p->best = json_incref(rs);
        p->best_rev = rev;
    }
    return 0;
}

/* When the rollout became available: the stamp if it is not older than this ReplicaSet (a stamp
 * from an earlier rollout does not count), else Progressing=NewReplicaSetAvailable naming this
 * ReplicaSet, else the Available condition for the first rollout. */
static void rollout_available(json_t *d, json_t *rs, struct kc_tl *tl)
{
    json_t *rstamps = timeline_of(rs);
    struct kc_tl_time own = {0};
    set_stamp(&own, rstamps, "available");
    json_decref(rstamps);
    if (own.src)
        tl->available = own;
    /* a time that may be truncated to the second counts if it is within a second of the floor */
    int64_t floor = tl->rs_created.src ? tl->rs_created.us - (tl->rs_created.coarse ? 1000000 : 0) : 0;
    if (tl->available.src && tl->available.us < floor)
        tl->available = (struct kc_tl_time){0};
    /* the condition fallbacks only while the Deployment is Available: a rollout whose pods became
     * Ready and then crashed is not shown as done */
    json_t *av = condition(d, "Available");
    bool avail_now = av && cond_is(av, "True");
    json_t *prog = condition(d, "Progressing");
    const char *why = jstr(prog, "reason"), *msg = jstr(prog, "message");
    if (!tl->available.src && avail_now && why && !strcmp(why, "NewReplicaSetAvailable") && msg &&
        strstr(msg, tl->rs_name))
        set_time(&tl->available, jstr(prog, "lastUpdateTime"), KC_TL_SRC_CONDITION);
    if (!tl->available.src && tl->first_rollout && avail_now)
        set_time(&tl->available, jstr(av, "lastTransitionTime"), KC_TL_SRC_CONDITION);
    if (tl->available.src && tl->available.us + (tl->available.coarse ? 1000000 : 0) < floor)
        tl->available = (struct kc_tl_time){0};
}

/* dep_created: the Deployment's own "created" stamp text; a ReplicaSet stamp equal to it was copied
 * from the Deployment's annotations (not stamped by the API server on the ReplicaSet's create) and
 * is ignored. */
static void read_rs(json_t *rs, const char *dep_created, struct kc_tl *tl)
{
    copy(tl->rs_name, sizeof tl->rs_name, jstr(rs, "metadata.name"));
    copy(tl->rs_uid, sizeof tl->rs_uid, jstr(rs, "metadata.uid"));
    tl->revision = revision_of(rs);
    tl->first_rollout = tl->revision <= 1;
    json_t *stamps = timeline_of(rs);
    const char *own = json_string_value(json_object_get(stamps, "created"));
    if (!dep_created || !own || strcmp(own, dep_created))
        set_stamp(&tl->rs_created, stamps, "created");
    json_decref(stamps);
    set_time(&tl->rs_created, jstr(rs, "metadata.creationTimestamp"), KC_TL_SRC_META);
    json_t *r = jpath(rs, "spec.replicas");
    if (json_is_integer(r))
        tl->replicas = (long)json_integer_value(r);
    json_t *rf = condition(rs, "ReplicaFailure");
    if (rf && cond_is(rf, "True")) {
        tl->replica_failure = true;
        copy(tl->dep_msg, sizeof tl->dep_msg, jstr(rf, "message"));
    }
}

/* ---------- pods ---------- */

/* Replaces the pod's message with a bounded copy of s (allocation failure leaves none). */
static void set_msg(struct kc_tl_pod *p, const char *s)
{
    free(p->msg);
    p->msg = s ? strndup(s, KC_TL_MSG_MAX - 1) : NULL;
}

static void read_container_status(json_t *pod, struct kc_tl_pod *p)
{
    json_t *st = jpath(pod, "status.containerStatuses"), *cs;
    size_t i;
    int64_t latest = 0;
    bool all_started = json_array_size(st) > 0;
    bool micro = true;
    json_array_foreach(st, i, cs) {
        int64_t us;
        bool m;
        const char *started = jstr(cs, "state.running.startedAt");
        if (!started)
            started = jstr(cs, "state.terminated.startedAt");
        if (!started) /* crash-looping: it did start before */
            started = jstr(cs, "lastState.terminated.startedAt");
        if (started && !kc_tl_parse_time(started, &us, &m)) {
            micro &= m;
            if (us > latest)
                latest = us;
        } else {
            all_started = false;
        }
        const char *why = jstr(cs, "state.waiting.reason");
        if (why && !p->waiting_reason[0]) {
            copy(p->waiting_reason, sizeof p->waiting_reason, why);
            if (!p->unschedulable)
                set_msg(p, jstr(cs, "state.waiting.message"));
        }
    }
    if (all_started && !p->t[KC_TL_STARTED].src) {
        p->t[KC_TL_STARTED].us = latest;
        p->t[KC_TL_STARTED].src = KC_TL_SRC_STATUS;
        p->t[KC_TL_STARTED].coarse = !micro;
    }
}

static void read_pod(json_t *pod, struct kc_tl_pod *p)
{
    copy(p->name, sizeof p->name, jstr(pod, "metadata.name"));
    copy(p->uid, sizeof p->uid, jstr(pod, "metadata.uid"));
    copy(p->node, sizeof p->node, jstr(pod, "spec.nodeName"));
    json_t *stamps = timeline_of(pod);
    set_stamp(&p->t[KC_TL_POD_CREATED], stamps, "created");
    set_stamp(&p->t[KC_TL_SCHEDULED], stamps, "scheduled");
    set_stamp(&p->t[KC_TL_PULLED], stamps, "pulled");
    set_stamp(&p->t[KC_TL_STARTED], stamps, "started");
    set_stamp(&p->t[KC_TL_READY], stamps, "ready");
    json_decref(stamps);
    set_time(&p->t[KC_TL_POD_CREATED], jstr(pod, "metadata.creationTimestamp"), KC_TL_SRC_META);
    json_t *sc = condition(pod, "PodScheduled");
    if (sc && cond_is(sc, "True"))
        set_time(&p->t[KC_TL_SCHEDULED], jstr(sc, "lastTransitionTime"), KC_TL_SRC_CONDITION);
    else if (sc && jstr(sc, "reason") && !strcmp(jstr(sc, "reason"), "Unschedulable")) {
        p->unschedulable = true;
        set_msg(p, jstr(sc, "message"));
    }
    read_container_status(pod, p);
    json_t *rd = condition(pod, "Ready");
    if (rd && cond_is(rd, "True"))
        set_time(&p->t[KC_TL_READY], jstr(rd, "lastTransitionTime"), KC_TL_SRC_CONDITION);
}

struct pod_list {
    struct kc_tl *tl;
    size_t cap;
};

static int pod_item(void *ctx, json_t *pod, struct kc_err *err)
{
    struct pod_list *pl = ctx;
    struct kc_tl *tl = pl->tl;
    if (!controlled_by(pod, tl->rs_uid) || jpath(pod, "metadata.deletionTimestamp"))
        return 0;
    if (tl->npods == pl->cap) {
        size_t cap = pl->cap ? pl->cap * 2 : 16;
        struct kc_tl_pod *np = realloc(tl->pods, cap * sizeof *np);
        if (!np)
            return kc_err_set(err, KC_ENOMEM, 0, "", "out of memory reading pods");
        tl->pods = np;
        pl->cap = cap;
    }
    struct kc_tl_pod *p = &tl->pods[tl->npods++];
    memset(p, 0, sizeof *p);
    read_pod(pod, p);
    return 0;
}

/* ---------- events ---------- */

/* Which stage an Event speaks about (upstream's reasons), or -1. */
static int event_stage(const char *reason, const char *msg)
{
    static const struct {
        const char *reason;
        int stage;
    } map[] = {
        {"ScalingReplicaSet", KC_TL_RS_CREATED}, {"FailedCreate", KC_TL_POD_CREATED},
        {"SuccessfulCreate", KC_TL_POD_CREATED}, {"FailedScheduling", KC_TL_SCHEDULED},
        {"Scheduled", KC_TL_SCHEDULED},          {"Pulling", KC_TL_PULLED},
        {"Pulled", KC_TL_PULLED},                {"ErrImageNeverPull", KC_TL_PULLED},
        {"InspectFailed", KC_TL_PULLED},         {"Created", KC_TL_STARTED},
        {"Started", KC_TL_STARTED},              {"FailedCreatePodSandBox", KC_TL_STARTED},
        {"FailedMount", KC_TL_STARTED},          {"FailedAttachVolume", KC_TL_STARTED},
        {"Unhealthy", KC_TL_READY},              {"Killing", KC_TL_READY},
        {"ProgressDeadlineExceeded", KC_TL_AVAILABLE},
    };
    if (!reason)
        return -1;
    msg = msg ? msg : "";
    if (!strcmp(reason, "BackOff"))
        return strstr(msg, "pulling image") ? KC_TL_PULLED : KC_TL_READY;
    if (!strcmp(reason, "Failed"))
        return strcasestr(msg, "pull") || strstr(msg, "InvalidImageName") ? KC_TL_PULLED : KC_TL_STARTED;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(reason, map[i].reason))
            return map[i].stage;
    return -1;
}

/* When an Event was last seen (latest=true: series / lastTimestamp first) or first seen (eventTime,
 * microseconds, first). 0 if it carries no time. */
static int64_t event_time(json_t *ev, bool latest, bool *micro)
{
    static const char *const last[] = {"series.lastObservedTime", "lastTimestamp", "eventTime", "firstTimestamp",
                                       "metadata.creationTimestamp"};
    static const char *const first[] = {"eventTime", "firstTimestamp", "lastTimestamp", "metadata.creationTimestamp"};
    const char *const *f = latest ? last : first;
    size_t n = latest ? sizeof last / sizeof last[0] : sizeof first / sizeof first[0];
    int64_t us;
    for (size_t i = 0; i < n; i++)
        if (!kc_tl_parse_time(jstr(ev, f[i]), &us, micro))
            return us;
    return 0;
}

static long long event_rv(json_t *ev)
{
    const char *rv = jstr(ev, "metadata.resourceVersion");
    return rv ? strtoll(rv, NULL, 10) : 0;
}

/* "Error: ImagePullBackOff" only repeats the waiting reason: it never wins over a real message. */
static bool restates_reason(const char *msg)
{
    return msg && !strncmp(msg, "Error: ", 7) && !strchr(msg + 7, ' ');
}

/* Events of one object (new reference to the items array, or NULL). Errors are not fatal here: a
 * missing fallback only makes a stage unknown. */
static json_t *object_events(struct kc_client *c, const char *ns, const char *uid)
{
    char base[1024], sel[256], path[PATH_MAX_LEN], raw[128];
    snprintf(raw, sizeof raw, "involvedObject.uid=%s", uid);
    if (kc_url_escape(raw, sel, sizeof sel))
        return NULL;
    kc_path(base, sizeof base, "", "v1", "events", ns, NULL, NULL);
    int w = snprintf(path, sizeof path, "%s?fieldSelector=%s&limit=%d", base, sel, PAGE_LIMIT);
    if (!*base || w < 0 || (size_t)w >= sizeof path)
        return NULL;
    json_t *list = NULL;
    struct kc_err err = {0};
    if (kc_client_get(c, path, &list, &err))
        return NULL;
    json_t *items = json_incref(json_object_get(list, "items"));
    json_decref(list);
    return items;
}

/* The latest Event of `stage` among events (and the latest Warning of it, if it says more). */
struct ev_pick {
    int64_t t, wt;
    long long rv, wrv;
    char msg[KC_TL_MSG_MAX], warn[KC_TL_MSG_MAX];
    bool have, have_warn;
};

static bool later(int64_t t, long long rv, int64_t bt, long long brv)
{
    return t > bt || (t == bt && rv > brv);
}

static void pick_events(json_t *events, int stage, struct ev_pick *p)
{
    json_t *ev;
    size_t i;
    json_array_foreach(events, i, ev) {
        const char *reason = jstr(ev, "reason"), *msg = jstr(ev, "message") ?: jstr(ev, "note");
        if (event_stage(reason, msg) != stage || !msg || restates_reason(msg))
            continue;
        int64_t t = event_time(ev, true, NULL);
        long long rv = event_rv(ev);
        if (!p->have || later(t, rv, p->t, p->rv)) {
            p->have = true;
            p->t = t;
            p->rv = rv;
            copy(p->msg, sizeof p->msg, msg);
        }
        const char *type = jstr(ev, "type");
        if (type && !strcmp(type, "Warning") && (!p->have_warn || later(t, rv, p->wt, p->wrv))) {
            p->have_warn = true;
            p->wt = t;
            p->wrv = rv;
            copy(p->warn, sizeof p->warn, msg);
        }
    }
}

/* Pulled fallback: the latest Pulled Event of the pod (image present or pull finished). */
static void pulled_from_events(json_t *events, struct kc_tl_pod *p)
{
    json_t *ev;
    size_t i;
    int64_t best = 0;
    bool best_micro = false;
    json_array_foreach(events, i, ev) {
        const char *reason = jstr(ev, "reason");
        bool micro = false;
        if (!reason || strcmp(reason, "Pulled"))
            continue;
        int64_t t = event_time(ev, false, &micro);
        if (t > best) {
            best = t;
            best_micro = micro;
        }
    }
    if (best) {
        p->t[KC_TL_PULLED].us = best;
        p->t[KC_TL_PULLED].src = KC_TL_SRC_EVENT;
        p->t[KC_TL_PULLED].coarse = !best_micro;
    }
}

static int progress_of(const struct kc_tl_pod *p)
{
    int last = -1;
    for (int s = KC_TL_FIRST_POD_STAGE; s <= KC_TL_LAST_POD_STAGE; s++)
        if (p->t[s].src)
            last = s;
    return last;
}

static void fill_pulled_fallbacks(struct kc_client *c, struct kc_tl *tl)
{
    size_t reads = 0;
    for (size_t i = 0; i < tl->npods && reads < KC_TL_MAX_EVENT_READS; i++) {
        struct kc_tl_pod *p = &tl->pods[i];
        if (p->t[KC_TL_PULLED].src || progress_of(p) < KC_TL_SCHEDULED || !p->uid[0])
            continue;
        reads++;
        json_t *evs = object_events(c, tl->ns, p->uid);
        pulled_from_events(evs, p);
        json_decref(evs);
    }
}

/* Reads the last Event of the blocking stage: from the stuck pods, the ReplicaSet or the Deployment. */
static void fill_block_events(struct kc_client *c, struct kc_tl *tl)
{
    struct kc_tl_block *b = &tl->block;
    struct ev_pick pick = {0};
    if (b->stage < 0)
        return;
    if (b->stage >= KC_TL_SCHEDULED && b->stage <= KC_TL_READY) {
        size_t reads = 0;
        for (size_t i = 0; i < tl->npods && reads < STUCK_POD_EVENT_READS; i++) {
            if (progress_of(&tl->pods[i]) + 1 != b->stage)
                continue;
            reads++;
            json_t *evs = object_events(c, tl->ns, tl->pods[i].uid);
            pick_events(evs, b->stage, &pick);
            json_decref(evs);
        }
    } else {
        const char *uid = b->stage == KC_TL_POD_CREATED && tl->rs_uid[0] ? tl->rs_uid : tl->uid;
        json_t *evs = object_events(c, tl->ns, uid);
        pick_events(evs, b->stage, &pick);
        json_decref(evs);
    }
    if (pick.have)
        copy(b->message, sizeof b->message, pick.msg);
    if (pick.have_warn && strcmp(pick.warn, b->message))
        copy(b->error, sizeof b->error, pick.warn);
}

/* ---------- collection ---------- */

void kc_tl_release(struct kc_tl *tl)
{
    if (!tl)
        return;
    for (size_t i = 0; i < tl->npods; i++)
        free(tl->pods[i].msg);
    free(tl->pods);
    tl->pods = NULL;
    tl->npods = 0;
}

static int read_replicasets(struct kc_client *c, json_t *d, long revision, struct kc_tl *tl, json_t **rs_out,
                            struct kc_err *err)
{
    char base[1024], sel[SELECTOR_MAX * 3];
    kc_path(base, sizeof base, "apps", "v1", "replicasets", tl->ns, NULL, NULL);
    label_selector(d, sel, sizeof sel);
    struct rs_pick pick = {.dep_uid = tl->uid, .want = revision};
    int rc = list_all(c, base, sel, 100000, rs_item, &pick, err);
    if (rc) {
        json_decref(pick.best);
        return rc;
    }
    if (!pick.best && revision)
        return kc_err_set(err, KC_ENOTFOUND, 0, "", "unable to find revision %ld of deployment \"%s\"", revision,
                          tl->name);
    *rs_out = pick.best;
    return 0;
}

int kc_tl_collect(struct kc_client *c, const char *ns, const char *name, long revision, struct kc_tl *tl,
                  struct kc_err *err)
{
    memset(tl, 0, sizeof *tl);
    tl->crit_pod = -1;
    tl->block.stage = -1;
    copy(tl->ns, sizeof tl->ns, ns);
    copy(tl->name, sizeof tl->name, name);
    tl->now_us = now_us();
    char path[1024];
    json_t *d = NULL, *rs = NULL;
    int rc = kc_client_get(c, kc_path(path, sizeof path, "apps", "v1", "deployments", ns, name, NULL), &d, err);
    if (rc)
        return rc;
    read_deployment(d, tl);
    tl->first_rollout = true;
    json_t *dstamps = timeline_of(d);
    char dep_created[64];
    copy(dep_created, sizeof dep_created, json_string_value(json_object_get(dstamps, "created")));
    json_decref(dstamps);
    if ((rc = read_replicasets(c, d, revision, tl, &rs, err)))
        goto out;
    if (rs) {
        read_rs(rs, dep_created[0] ? dep_created : NULL, tl);
        rollout_available(d, rs, tl);
        char base[1024], sel[SELECTOR_MAX * 3];
        kc_path(base, sizeof base, "", "v1", "pods", ns, NULL, NULL);
        label_selector(rs, sel, sizeof sel);
        struct pod_list pl = {.tl = tl};
        if ((rc = list_all(c, base, sel, KC_TL_MAX_PODS, pod_item, &pl, err)))
            goto out;
        fill_pulled_fallbacks(c, tl);
    } else {
        tl->available = (struct kc_tl_time){0};
    }
    kc_tl_analyse(tl);
    fill_block_events(c, tl);
out:
    json_decref(rs);
    json_decref(d);
    return rc;
}

/* ---------- analysis ---------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The time a pod finished the stage before `stage` (its previous known stage; the ReplicaSet's
 * creation for "created"), or false. */
static bool prev_time(const struct kc_tl *tl, const struct kc_tl_pod *p, int stage, int64_t *out)
{
    for (int s = stage - 1; s >= KC_TL_FIRST_POD_STAGE; s--)
        if (p->t[s].src) {
            *out = p->t[s].us;
            return true;
        }
    if (tl->rs_created.src) {
        *out = tl->rs_created.us;
        return true;
    }
    return false;
}

static void pod_stage_stat(struct kc_tl *tl, int stage, int64_t *buf)
{
    struct kc_tl_stat *st = &tl->stat[stage];
    size_t n = 0;
    for (size_t i = 0; i < tl->npods; i++) {
        const struct kc_tl_pod *p = &tl->pods[i];
        int64_t prev;
        if (!p->t[stage].src)
            continue;
        int64_t end = p->t[stage].us - tl->origin_us;
        if (!st->present || end > st->end_us)
            st->end_us = end;
        if (!prev_time(tl, p, stage, &prev))
            continue;
        int64_t start = prev - tl->origin_us;
        if (!st->present || start < st->start_us)
            st->start_us = start;
        st->present = true;
        buf[n++] = p->t[stage].us - prev;
    }
    if (!n)
        return;
    qsort(buf, n, sizeof *buf, cmp_i64);
    st->n = n;
    st->p50_us = kc_tl_percentile(buf, n, 0.50);
    st->p99_us = kc_tl_percentile(buf, n, 0.99);
    st->max_us = buf[n - 1];
}

static void single_stat(struct kc_tl *tl, int stage, const struct kc_tl_time *from, const struct kc_tl_time *to)
{
    struct kc_tl_stat *st = &tl->stat[stage];
    if (!to->src)
        return;
    st->present = true;
    st->end_us = to->us - tl->origin_us;
    st->start_us = from && from->src ? from->us - tl->origin_us : st->end_us;
    st->n = 1;
    st->p50_us = st->p99_us = st->max_us = st->end_us - st->start_us;
}

/* The pod whose Ready made the rollout Available: the latest Ready not after Available (else the
 * earliest Ready, for coarse fallback times); without Available the latest Ready; with no pod Ready
 * the pod that progressed furthest. -1 if there are no pods. */
static int critical_pod(const struct kc_tl *tl)
{
    int best = -1, earliest = -1;
    for (size_t i = 0; i < tl->npods; i++) {
        const struct kc_tl_time *r = &tl->pods[i].t[KC_TL_READY];
        if (!r->src)
            continue;
        if (earliest < 0 || r->us < tl->pods[earliest].t[KC_TL_READY].us)
            earliest = (int)i;
        if (tl->available.src && r->us > tl->available.us)
            continue;
        if (best < 0 || r->us > tl->pods[best].t[KC_TL_READY].us)
            best = (int)i;
    }
    if (best >= 0 || earliest >= 0)
        return best >= 0 ? best : earliest;
    /* nobody Ready: the pod that got furthest (earliest there), so the unfinished chain shows */
    int far = -1;
    for (size_t i = 0; i < tl->npods; i++) {
        int pi = progress_of(&tl->pods[i]), pf = far >= 0 ? progress_of(&tl->pods[far]) : -1;
        if (pi < 0)
            continue;
        if (far < 0 || pi > pf || (pi == pf && tl->pods[i].t[pi].us < tl->pods[far].t[pf].us))
            far = (int)i;
    }
    return far;
}

static void critical_path(struct kc_tl *tl)
{
    struct kc_tl_time chain[KC_TL_NSTAGES] = {{0}};
    if (tl->first_rollout)
        chain[KC_TL_ACCEPTED] = tl->accepted;
    chain[KC_TL_RS_CREATED] = tl->rs_created;
    if (tl->crit_pod >= 0)
        for (int s = KC_TL_FIRST_POD_STAGE; s <= KC_TL_LAST_POD_STAGE; s++)
            chain[s] = tl->pods[tl->crit_pod].t[s];
    chain[KC_TL_AVAILABLE] = tl->available;
    int prev = -1;
    for (int s = 0; s < KC_TL_NSTAGES; s++) {
        if (!chain[s].src)
            continue;
        tl->stat[s].crit_known = true;
        tl->stat[s].crit_us = prev < 0 ? 0 : chain[s].us - chain[prev].us;
        prev = s;
    }
}

static bool failing_reason(const char *r)
{
    static const char *const bad[] = {"ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff", "InvalidImageName",
                                      "ErrImageNeverPull", "CreateContainerConfigError", "CreateContainerError",
                                      "RunContainerError", "PreCreateHookError", "PostStartHookError"};
    for (size_t i = 0; r && i < sizeof bad / sizeof bad[0]; i++)
        if (!strcmp(r, bad[i]))
            return true;
    return false;
}

/* The most frequent waiting reason among pods blocked before `stage`, with its message. */
static void block_reason(struct kc_tl *tl, int stage)
{
    struct kc_tl_block *b = &tl->block;
    size_t best_n = 0;
    for (size_t i = 0; i < tl->npods; i++) {
        const struct kc_tl_pod *p = &tl->pods[i];
        if (progress_of(p) + 1 != stage)
            continue;
        const char *why = p->unschedulable ? "Unschedulable" : p->waiting_reason;
        if (!why[0])
            continue;
        size_t n = 0;
        for (size_t j = 0; j < tl->npods; j++) {
            const struct kc_tl_pod *q = &tl->pods[j];
            const char *w = q->unschedulable ? "Unschedulable" : q->waiting_reason;
            n += progress_of(q) + 1 == stage && !strcmp(w, why);
            if (n > best_n)
                break; /* enough to beat the best: counting more changes nothing */
        }
        if (n > best_n) {
            best_n = n;
            copy(b->reason, sizeof b->reason, why);
            copy(b->message, sizeof b->message, p->msg);
            b->stuck = p->unschedulable || failing_reason(why);
        }
    }
}

static void find_block(struct kc_tl *tl)
{
    struct kc_tl_block *b = &tl->block;
    size_t at[KC_TL_NSTAGES] = {0};
    memset(b, 0, sizeof *b);
    b->stage = -1;
    if (tl->complete)
        return;
    if (!tl->rs_uid[0]) {
        b->stage = KC_TL_RS_CREATED;
    } else {
        for (size_t i = 0; i < tl->npods; i++) {
            int next = progress_of(&tl->pods[i]) + 1;
            if (next <= KC_TL_LAST_POD_STAGE)
                at[next < KC_TL_FIRST_POD_STAGE ? KC_TL_FIRST_POD_STAGE : next]++;
        }
        if ((long)tl->npods < tl->replicas)
            at[KC_TL_POD_CREATED] += (size_t)(tl->replicas - (long)tl->npods);
        b->stage = KC_TL_AVAILABLE;
        for (int s = KC_TL_FIRST_POD_STAGE; s <= KC_TL_LAST_POD_STAGE; s++)
            if (at[s]) {
                b->stage = s;
                break;
            }
        b->pods = b->stage <= KC_TL_LAST_POD_STAGE ? at[b->stage] : 0;
        if (b->stage > KC_TL_POD_CREATED && b->stage <= KC_TL_LAST_POD_STAGE)
            block_reason(tl, b->stage);
    }
    if (tl->deadline_exceeded || tl->replica_failure) {
        b->stuck = true;
        if (!b->reason[0])
            copy(b->reason, sizeof b->reason, tl->replica_failure ? "ReplicaFailure" : "ProgressDeadlineExceeded");
        if (!b->message[0])
            copy(b->message, sizeof b->message, tl->dep_msg);
    }
}

/* Moves a coarse t up to floor when it is less than a second before it (see kc_tl_analyse). */
static void clamp_coarse(struct kc_tl_time *t, const struct kc_tl_time *floor)
{
    if (t->src && t->coarse && floor && floor->src && t->us < floor->us && t->us + 1000000 > floor->us)
        t->us = floor->us;
}

static void repair_order(struct kc_tl *tl)
{
    clamp_coarse(&tl->rs_created, &tl->accepted);
    for (size_t i = 0; i < tl->npods; i++) {
        struct kc_tl_pod *p = &tl->pods[i];
        const struct kc_tl_time *prev = &tl->rs_created;
        for (int s = KC_TL_FIRST_POD_STAGE; s <= KC_TL_LAST_POD_STAGE; s++) {
            clamp_coarse(&p->t[s], prev);
            if (p->t[s].src)
                prev = &p->t[s];
        }
    }
    if (!tl->available.src || !tl->available.coarse)
        return;
    const struct kc_tl_time *latest = NULL; /* latest Ready within the available second */
    for (size_t i = 0; i < tl->npods; i++) {
        const struct kc_tl_time *r = &tl->pods[i].t[KC_TL_READY];
        if (r->src && r->us < tl->available.us + 1000000 && (!latest || r->us > latest->us))
            latest = r;
    }
    clamp_coarse(&tl->available, latest ? latest : &tl->rs_created);
}

void kc_tl_analyse(struct kc_tl *tl)
{
    repair_order(tl);
    memset(tl->stat, 0, sizeof tl->stat);
    if (tl->first_rollout && tl->accepted.src)
        tl->origin_us = tl->accepted.us;
    else if (tl->rs_created.src)
        tl->origin_us = tl->rs_created.us;
    else
        tl->origin_us = tl->accepted.us;
    tl->complete = tl->available.src && tl->rs_uid[0];
    tl->total_us = (tl->complete ? tl->available.us : tl->now_us) - tl->origin_us;
    if (tl->first_rollout)
        single_stat(tl, KC_TL_ACCEPTED, &tl->accepted, &tl->accepted);
    single_stat(tl, KC_TL_RS_CREATED, tl->first_rollout ? &tl->accepted : NULL, &tl->rs_created);
    int64_t *buf = tl->npods ? malloc(tl->npods * sizeof *buf) : NULL;
    if (buf)
        for (int s = KC_TL_FIRST_POD_STAGE; s <= KC_TL_LAST_POD_STAGE; s++)
            pod_stage_stat(tl, s, buf);
    free(buf);
    tl->crit_pod = critical_pod(tl);
    const struct kc_tl_time *ready = tl->crit_pod >= 0 ? &tl->pods[tl->crit_pod].t[KC_TL_READY] : NULL;
    single_stat(tl, KC_TL_AVAILABLE, ready, &tl->available);
    critical_path(tl);
    find_block(tl);
}
