/* podutil.c — pod readiness/availability, deletion ranking and slow-start batch sizes
 * (see podutil.h for the rules). Pure functions over parsed JSON: no I/O, no shared state,
 * safe from any thread. Ranking sorts an array of (pod, rank) pairs with qsort_r so that
 * `now` travels as sort context instead of a global.
 */
#include "controller/podutil.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/map.h"
#include "util/timeutil.h"

static json_t *get(json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(o, a);
    return b ? json_object_get(v, b) : v;
}

static const char *str(json_t *o, const char *a, const char *b)
{
    return json_string_value(get(o, a, b));
}

static const char *phase(json_t *pod)
{
    return str(pod, "status", "phase");
}

bool kc_pod_is_active(json_t *pod)
{
    const char *p = phase(pod);
    if (p && (!strcmp(p, "Succeeded") || !strcmp(p, "Failed")))
        return false;
    json_t *dt = get(pod, "metadata", "deletionTimestamp");
    return !dt || json_is_null(dt);
}

static json_t *ready_condition(json_t *pod)
{
    size_t i;
    json_t *c;
    json_array_foreach(get(pod, "status", "conditions"), i, c) {
        const char *t = json_string_value(json_object_get(c, "type"));
        if (t && !strcmp(t, "Ready"))
            return c;
    }
    return NULL;
}

bool kc_pod_is_ready(json_t *pod)
{
    const char *s = json_string_value(json_object_get(ready_condition(pod), "status"));
    return s && !strcmp(s, "True");
}

bool kc_pod_ready_since(json_t *pod, time_t *since)
{
    if (!kc_pod_is_ready(pod))
        return false;
    const char *t = json_string_value(json_object_get(ready_condition(pod), "lastTransitionTime"));
    return t && kc_time_parse(t, since) == 0;
}

bool kc_pod_is_available(json_t *pod, int min_ready_s, time_t now)
{
    if (!kc_pod_is_ready(pod))
        return false;
    if (min_ready_s <= 0)
        return true;
    time_t since;
    /* upstream: a ready pod without a transition time is not yet available */
    return kc_pod_ready_since(pod, &since) && since + min_ready_s <= now;
}

int kc_pod_available_in(json_t *pod, int min_ready_s, time_t now)
{
    time_t since;
    if (min_ready_s <= 0 || !kc_pod_ready_since(pod, &since))
        return 0;
    long left = (long)(since + min_ready_s - now);
    return left > 0 ? (int)(left > INT_MAX ? INT_MAX : left) : 0;
}

bool kc_labels_superset(json_t *labels, json_t *selector_labels)
{
    const char *k;
    json_t *v;
    json_object_foreach(selector_labels, k, v) {
        json_t *have = json_object_get(labels, k);
        if (!json_is_string(have) || !json_is_string(v) || strcmp(json_string_value(have), json_string_value(v)))
            return false;
    }
    return true;
}

int kc_pod_max_restarts(json_t *pod)
{
    int max = 0;
    size_t i;
    json_t *c;
    json_array_foreach(get(pod, "status", "containerStatuses"), i, c) {
        json_int_t r = json_integer_value(json_object_get(c, "restartCount"));
        if (r > max)
            max = r > INT_MAX ? INT_MAX : (int)r;
    }
    return max;
}

int kc_pod_deletion_cost(json_t *pod)
{
    const char *s = str(get(pod, "metadata", "annotations"), KC_POD_DELETION_COST, NULL);
    if (!s || !*s)
        return 0;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end || errno || v < INT32_MIN || v > INT32_MAX)
        return 0;
    return (int)v;
}

/* Pending < Unknown < Running; anything else (e.g. an empty phase) counts as Pending, as upstream's
 * podPhaseToOrdinal. */
static int phase_ordinal(json_t *pod)
{
    const char *p = phase(pod);
    if (!p)
        return 0;
    if (!strcmp(p, "Running"))
        return 2;
    if (!strcmp(p, "Unknown"))
        return 1;
    return 0;
}

static bool assigned(json_t *pod)
{
    const char *n = str(pod, "spec", "nodeName");
    return n && *n;
}

/* floor(log2(age in ns)), -1 when the age is not positive: upstream's logarithmicRankDiff buckets. */
static long log_bucket(time_t t, time_t now)
{
    double d = difftime(now, t);
    if (d <= 0)
        return -1;
    return (long)floor(log2(d * 1e9));
}

static int cmp_str(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "");
}

/* For two different, non-zero times: is a "smaller" (to delete first)? Zero (absent) times come
 * first; otherwise the younger one (by log2 bucket; equal bucket → smaller uid). */
static bool younger_first(bool a_has, time_t ta, bool b_has, time_t tb, json_t *a, json_t *b, time_t now)
{
    if (!a_has || !b_has)
        return !a_has;
    long d = log_bucket(ta, now) - log_bucket(tb, now);
    if (d == 0)
        return cmp_str(str(a, "metadata", "uid"), str(b, "metadata", "uid")) < 0;
    return d < 0;
}

static bool created(json_t *pod, time_t *t)
{
    const char *s = str(pod, "metadata", "creationTimestamp");
    return s && kc_time_parse(s, t) == 0;
}

bool kc_pod_delete_before(json_t *a, int rank_a, json_t *b, int rank_b, time_t now)
{
    if (assigned(a) != assigned(b))
        return !assigned(a);
    int pa = phase_ordinal(a), pb = phase_ordinal(b);
    if (pa != pb)
        return pa < pb;
    bool ra = kc_pod_is_ready(a), rb = kc_pod_is_ready(b);
    if (ra != rb)
        return !ra;
    int ca = kc_pod_deletion_cost(a), cb = kc_pod_deletion_cost(b);
    if (ca != cb)
        return ca < cb;
    if (rank_a != rank_b)
        return rank_a > rank_b;
    if (ra && rb) {
        time_t ta = 0, tb = 0;
        bool ha = kc_pod_ready_since(a, &ta), hb = kc_pod_ready_since(b, &tb);
        if (ha != hb || ta != tb)
            return younger_first(ha, ta, hb, tb, a, b, now);
    }
    int xa = kc_pod_max_restarts(a), xb = kc_pod_max_restarts(b);
    if (xa != xb)
        return xa > xb;
    time_t ta = 0, tb = 0;
    bool ha = created(a, &ta), hb = created(b, &tb);
    if (ha != hb || ta != tb)
        return younger_first(ha, ta, hb, tb, a, b, now);
    return false;
}

struct ranked {
    json_t *pod;
    int rank;
};

static int ranked_cmp(const void *x, const void *y, void *ctx)
{
    const struct ranked *a = x, *b = y;
    time_t now = *(const time_t *)ctx;
    if (kc_pod_delete_before(a->pod, a->rank, b->pod, b->rank, now))
        return -1;
    if (kc_pod_delete_before(b->pod, b->rank, a->pod, a->rank, now))
        return 1;
    return 0;
}

/* rank[i] = number of related pods on pods[i]'s node (0 when unassigned). */
static int compute_ranks(json_t **pods, size_t n, json_t **related, size_t nrel, struct ranked *r)
{
    struct kc_map per_node;
    kc_map_init(&per_node);
    for (size_t i = 0; i < nrel; i++) {
        const char *node = str(related[i], "spec", "nodeName");
        if (!node || !*node)
            continue;
        uintptr_t c = (uintptr_t)kc_map_get(&per_node, node);
        int e = 0;
        kc_map_put(&per_node, node, (void *)(c + 1), &e);
        if (e) {
            kc_map_release(&per_node);
            return -1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const char *node = str(pods[i], "spec", "nodeName");
        r[i].pod = pods[i];
        r[i].rank = node && *node ? (int)(uintptr_t)kc_map_get(&per_node, node) : 0;
    }
    kc_map_release(&per_node);
    return 0;
}

size_t kc_pods_to_delete(json_t **pods, size_t n, json_t **related, size_t nrel, size_t diff, time_t now,
                         json_t **out)
{
    if (diff > n)
        diff = n;
    if (diff == 0)
        return 0;
    struct ranked *r = calloc(n, sizeof *r);
    if (!r || compute_ranks(pods, n, related, nrel, r)) {
        /* no memory to rank: fall back to the caller's order rather than deleting nothing */
        free(r);
        memcpy(out, pods, diff * sizeof *out);
        return diff;
    }
    if (diff < n)
        qsort_r(r, n, sizeof *r, ranked_cmp, &now);
    for (size_t i = 0; i < diff; i++)
        out[i] = r[i].pod;
    free(r);
    return diff;
}

int kc_slow_start_next(int prev, int remaining, int initial)
{
    if (remaining <= 0)
        return 0;
    if (initial < 1)
        initial = 1;
    long next = prev <= 0 ? initial : 2L * prev;
    return next < remaining ? (int)next : remaining;
}

json_t *kc_obj_get(json_t *obj, const char *dotted)
{
    char part[128];
    const char *p = dotted;
    while (obj && *p) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof part)
            return NULL;
        memcpy(part, p, n);
        part[n] = 0;
        obj = json_object_get(obj, part);
        p += n;
        if (*p == '.')
            p++;
    }
    return obj;
}

const char *kc_obj_str(json_t *obj, const char *dotted)
{
    return json_string_value(kc_obj_get(obj, dotted));
}

json_t *kc_obj_controller_ref(json_t *obj)
{
    size_t i;
    json_t *r;
    json_array_foreach(kc_obj_get(obj, "metadata.ownerReferences"), i, r) if (json_is_true(
        json_object_get(r, "controller"))) return r;
    return NULL;
}

json_t *kc_obj_owner_ref(json_t *obj, const char *uid)
{
    size_t i;
    json_t *r;
    json_array_foreach(kc_obj_get(obj, "metadata.ownerReferences"), i, r) {
        const char *u = json_string_value(json_object_get(r, "uid"));
        if (u && uid && !strcmp(u, uid))
            return r;
    }
    return NULL;
}
