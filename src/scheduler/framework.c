/* framework.c — filters, scores and preemption over a snapshot (see framework.h).
 *
 * Pure functions, called by the scheduler thread only. Reasons and messages
 * use upstream's wording so that `kubectl describe pod` reads the same.
 * Scores are computed raw per plugin and normalised across the feasible
 * nodes in kc_schedule, then weighted as upstream's default profile:
 * TaintToleration 3, NodeAffinity 2, PodTopologySpread 2, InterPodAffinity 2,
 * NodeResourcesFit 1, NodeResourcesBalancedAllocation 1, ImageLocality 1.
 */
#include "scheduler/framework.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta/selector.h"
#include "meta/validation.h"
#include "util/map.h"
#include "util/timeutil.h"

/* ---------- parsing ---------- */

static const char *jstr(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static int64_t qty(json_t *v)
{
    int64_t m = 0;
    if (json_is_string(v)) {
        if (kc_quantity_parse(json_string_value(v), &m) < 0)
            return 0;
        return m;
    }
    if (json_is_integer(v))
        return json_integer_value(v) * 1000;
    if (json_is_real(v))
        return (int64_t)(json_real_value(v) * 1000);
    return 0;
}

void kc_res_from_list(json_t *rl, struct kc_res *out)
{
    memset(out, 0, sizeof *out);
    out->cpu_m = qty(json_object_get(rl, "cpu"));
    out->mem = qty(json_object_get(rl, "memory")) / 1000;
    out->eph = qty(json_object_get(rl, "ephemeral-storage")) / 1000;
    out->pods = qty(json_object_get(rl, "pods")) / 1000;
}

static void container_requests(json_t *c, struct kc_res *r)
{
    json_t *res = json_object_get(c, "resources");
    json_t *req = json_object_get(res, "requests");
    json_t *lim = json_object_get(res, "limits");
    struct kc_res a, b;
    kc_res_from_list(req, &a);
    kc_res_from_list(lim, &b);
    /* a missing request defaults to the limit, as upstream's defaulting does */
    if (!json_object_get(req, "cpu"))
        a.cpu_m = b.cpu_m;
    if (!json_object_get(req, "memory"))
        a.mem = b.mem;
    if (!json_object_get(req, "ephemeral-storage"))
        a.eph = b.eph;
    *r = a;
}

struct kc_spod *kc_spod_new(json_t *pod)
{
    json_t *meta = json_object_get(pod, "metadata"), *spec = json_object_get(pod, "spec");
    if (!json_is_object(meta) || !json_is_object(spec))
        return NULL;
    struct kc_spod *p = calloc(1, sizeof *p);
    p->json = json_incref(pod);
    p->ns = jstr(meta, "namespace") ? jstr(meta, "namespace") : "";
    p->name = jstr(meta, "name") ? jstr(meta, "name") : "";
    p->uid = jstr(meta, "uid") ? jstr(meta, "uid") : p->name;
    p->node = jstr(spec, "nodeName");
    if (p->node && !*p->node)
        p->node = NULL;
    p->priority = (int32_t)json_integer_value(json_object_get(spec, "priority"));
    const char *pp = jstr(spec, "preemptionPolicy");
    p->preempt_never = pp && !strcmp(pp, "Never");
    time_t t = 0;
    if (jstr(meta, "creationTimestamp"))
        kc_time_parse(jstr(meta, "creationTimestamp"), &t);
    p->created = (double)t;
    p->labels = json_object_get(meta, "labels");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(spec, "containers"), i, c)
    {
        struct kc_res r;
        container_requests(c, &r);
        p->req.cpu_m += r.cpu_m;
        p->req.mem += r.mem;
        p->req.eph += r.eph;
    }
    json_array_foreach(json_object_get(spec, "initContainers"), i, c)
    {
        struct kc_res r;
        container_requests(c, &r);
        if (r.cpu_m > p->req.cpu_m)
            p->req.cpu_m = r.cpu_m;
        if (r.mem > p->req.mem)
            p->req.mem = r.mem;
        if (r.eph > p->req.eph)
            p->req.eph = r.eph;
    }
    p->spec = spec;
    p->tolerations = json_object_get(spec, "tolerations");
    p->node_selector = json_object_size(json_object_get(spec, "nodeSelector")) ? json_object_get(spec, "nodeSelector")
                                                                                 : NULL;
    json_t *aff = json_object_get(spec, "affinity");
    json_t *na = json_object_get(aff, "nodeAffinity");
    p->req_node_terms =
        json_object_get(json_object_get(na, "requiredDuringSchedulingIgnoredDuringExecution"), "nodeSelectorTerms");
    p->pref_node_terms = json_array_size(json_object_get(na, "preferredDuringSchedulingIgnoredDuringExecution"))
                             ? json_object_get(na, "preferredDuringSchedulingIgnoredDuringExecution")
                             : NULL;
    p->spread = json_array_size(json_object_get(spec, "topologySpreadConstraints"))
                    ? json_object_get(spec, "topologySpreadConstraints")
                    : NULL;
    json_t *pa = json_object_get(aff, "podAffinity"), *paa = json_object_get(aff, "podAntiAffinity");
#define NONEMPTY(o, k) (json_array_size(json_object_get(o, k)) ? json_object_get(o, k) : NULL)
    p->aff_req = NONEMPTY(pa, "requiredDuringSchedulingIgnoredDuringExecution");
    p->aff_pref = NONEMPTY(pa, "preferredDuringSchedulingIgnoredDuringExecution");
    p->anti_req = NONEMPTY(paa, "requiredDuringSchedulingIgnoredDuringExecution");
    p->anti_pref = NONEMPTY(paa, "preferredDuringSchedulingIgnoredDuringExecution");
#undef NONEMPTY
    p->want_node = p->node;
    json_array_foreach(json_object_get(spec, "containers"), i, c)
    {
        const char *img = json_string_value(json_object_get(c, "image"));
        if (img && p->nimages < 8)
            p->images[p->nimages++] = img;
    }
    struct kc_res ov;
    kc_res_from_list(json_object_get(spec, "overhead"), &ov);
    p->req.cpu_m += ov.cpu_m;
    p->req.mem += ov.mem;
    p->req.pods = 1;
    return p;
}

void kc_spod_free(struct kc_spod *p)
{
    if (!p)
        return;
    json_decref(p->json);
    free(p);
}

/* ---------- snapshot ---------- */

static void spread_caches_drop(struct kc_snapshot *s);
static void spread_caches_pod(struct kc_snode *n, const struct kc_spod *p, int delta);
static void spread_caches_node_added(struct kc_snode *n);

void kc_snapshot_init(struct kc_snapshot *s) { memset(s, 0, sizeof *s); }

static void snode_release(struct kc_snode *n)
{
    for (size_t i = 0; i < n->npods; i++)
        kc_spod_free(n->pods[i]);
    free(n->pods);
    free(n->name);
    json_decref(n->json);
    json_decref(n->images);
}

void kc_snapshot_release(struct kc_snapshot *s)
{
    spread_caches_drop(s);
    free(s->spread);
    for (size_t i = 0; i < s->n; i++)
        snode_release(&s->nodes[i]);
    free(s->nodes);
    memset(s, 0, sizeof *s);
}

struct kc_snode *kc_snapshot_node(struct kc_snapshot *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->nodes[i].name, name))
            return &s->nodes[i];
    return NULL;
}

static void node_fill(struct kc_snode *n, json_t *node)
{
    json_decref(n->json);
    n->json = json_incref(node);
    json_t *meta = json_object_get(node, "metadata"), *spec = json_object_get(node, "spec"),
           *st = json_object_get(node, "status");
    n->labels = json_object_get(meta, "labels");
    n->taints = json_object_get(spec, "taints");
    n->unschedulable = json_is_true(json_object_get(spec, "unschedulable"));
    json_t *alloc = json_object_get(st, "allocatable");
    if (!alloc)
        alloc = json_object_get(st, "capacity");
    kc_res_from_list(alloc, &n->alloc);
    json_decref(n->images);
    n->images = json_object();
    size_t i, j;
    json_t *img, *nm;
    json_array_foreach(json_object_get(st, "images"), i, img)
    {
        json_array_foreach(json_object_get(img, "names"), j, nm)
            json_object_set_new(n->images, json_string_value(nm) ? json_string_value(nm) : "",
                                json_integer(json_integer_value(json_object_get(img, "sizeBytes"))));
    }
}

size_t kc_snapshot_set_node(struct kc_snapshot *s, json_t *node)
{
    const char *name = jstr(json_object_get(node, "metadata"), "name");
    if (!name)
        name = "";
    struct kc_snode *n = kc_snapshot_node(s, name);
    bool added = !n;
    if (!n) {
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 16;
            s->nodes = realloc(s->nodes, s->cap * sizeof *s->nodes);
        }
        n = &s->nodes[s->n++];
        memset(n, 0, sizeof *n);
        n->name = strdup(name);
    }
    json_t *old = json_incref(n->json); /* keeps the old labels alive for the comparison */
    node_fill(n, node);
    for (size_t i = 0; i < s->n; i++) /* the array may have moved */
        s->nodes[i].snap = s;
    if (added)
        spread_caches_node_added(n);
    else if (!json_equal(json_object_get(json_object_get(old, "metadata"), "labels"), n->labels))
        spread_caches_drop(s); /* domains moved: rebuilt on the next attempt that needs them */
    json_decref(old);
    return (size_t)(n - s->nodes);
}

void kc_snapshot_remove_node(struct kc_snapshot *s, const char *name)
{
    struct kc_snode *n = kc_snapshot_node(s, name);
    if (!n)
        return;
    size_t i = (size_t)(n - s->nodes);
    spread_caches_drop(s);
    s->n_anti -= n->n_anti;
    snode_release(n);
    memmove(&s->nodes[i], &s->nodes[i + 1], (s->n - i - 1) * sizeof *s->nodes);
    s->n--;
    for (size_t k = 0; k < s->n; k++)
        s->nodes[k].snap = s;
}

void kc_snode_add_pod(struct kc_snode *n, struct kc_spod *p)
{
    if (n->npods == n->cap) {
        n->cap = n->cap ? n->cap * 2 : 8;
        n->pods = realloc(n->pods, n->cap * sizeof *n->pods);
    }
    n->pods[n->npods++] = p;
    if (p->anti_req) {
        n->n_anti++;
        if (n->snap)
            n->snap->n_anti++;
    }
    n->used.cpu_m += p->req.cpu_m;
    n->used.mem += p->req.mem;
    n->used.eph += p->req.eph;
    n->used.pods += 1;
    spread_caches_pod(n, p, +1);
}

bool kc_snode_remove_pod(struct kc_snode *n, const char *uid)
{
    for (size_t i = 0; i < n->npods; i++) {
        struct kc_spod *p = n->pods[i];
        if (strcmp(p->uid, uid))
            continue;
        n->used.cpu_m -= p->req.cpu_m;
        n->used.mem -= p->req.mem;
        n->used.eph -= p->req.eph;
        n->used.pods -= 1;
        if (p->anti_req) {
            n->n_anti--;
            if (n->snap)
                n->snap->n_anti--;
        }
        spread_caches_pod(n, p, -1);
        kc_spod_free(p);
        n->pods[i] = n->pods[--n->npods];
        return true;
    }
    return false;
}

/* ---------- label and node selector matching ---------- */

static bool labels_match_selector_json(json_t *selector, json_t *labels)
{
    struct kc_label_selector *ls = NULL;
    if (kc_label_selector_from_json(selector, &ls, NULL))
        return false;
    bool m = kc_label_selector_matches_json(ls, labels);
    kc_label_selector_free(ls);
    return m;
}

static bool in_values(json_t *values, const char *v)
{
    size_t i;
    json_t *x;
    json_array_foreach(values, i, x) if (v && !strcmp(json_string_value(x) ? json_string_value(x) : "", v)) return true;
    return false;
}

/* One NodeSelectorRequirement against a node (matchExpressions on labels, matchFields on metadata.name). */
static bool node_req_matches(json_t *req, json_t *labels, const char *node_name, bool field)
{
    const char *key = jstr(req, "key"), *op = jstr(req, "operator");
    json_t *values = json_object_get(req, "values");
    if (!key || !op)
        return false;
    const char *v = field ? (!strcmp(key, "metadata.name") ? node_name : NULL) : jstr(labels, key);
    if (!strcmp(op, "In"))
        return v && in_values(values, v);
    if (!strcmp(op, "NotIn"))
        return !v || !in_values(values, v);
    if (!strcmp(op, "Exists"))
        return v != NULL;
    if (!strcmp(op, "DoesNotExist"))
        return v == NULL;
    if ((!strcmp(op, "Gt") || !strcmp(op, "Lt")) && v && json_array_size(values) == 1) {
        char *end;
        long long have = strtoll(v, &end, 10);
        if (*end)
            return false;
        long long want = strtoll(json_string_value(json_array_get(values, 0)) ?: "", &end, 10);
        return !strcmp(op, "Gt") ? have > want : have < want;
    }
    return false;
}

static bool node_term_matches(json_t *term, json_t *labels, const char *name)
{
    json_t *me = json_object_get(term, "matchExpressions"), *mf = json_object_get(term, "matchFields");
    if (!json_array_size(me) && !json_array_size(mf))
        return false; /* an empty term matches nothing */
    size_t i;
    json_t *r;
    json_array_foreach(me, i, r) if (!node_req_matches(r, labels, name, false)) return false;
    json_array_foreach(mf, i, r) if (!node_req_matches(r, labels, name, true)) return false;
    return true;
}

/* nodeSelector + required node affinity */
static bool pod_matches_node_affinity(const struct kc_spod *p, const struct kc_snode *n)
{
    const char *k;
    json_t *v;
    json_object_foreach(p->node_selector, k, v)
    {
        const char *have = jstr(n->labels, k);
        if (!have || strcmp(have, json_string_value(v) ? json_string_value(v) : ""))
            return false;
    }
    if (json_is_array(p->req_node_terms)) {
        size_t i;
        json_t *t;
        json_array_foreach(p->req_node_terms, i, t) if (node_term_matches(t, n->labels, n->name)) return true;
        return false;
    }
    return true;
}

static bool tolerates(json_t *tolerations, json_t *taint)
{
    const char *tk = jstr(taint, "key") ? jstr(taint, "key") : "";
    const char *tv = jstr(taint, "value") ? jstr(taint, "value") : "";
    const char *te = jstr(taint, "effect") ? jstr(taint, "effect") : "";
    size_t i;
    json_t *t;
    json_array_foreach(tolerations, i, t)
    {
        const char *e = jstr(t, "effect");
        if (e && *e && strcmp(e, te))
            continue;
        const char *k = jstr(t, "key");
        const char *op = jstr(t, "operator") ? jstr(t, "operator") : "Equal";
        if (k && *k && strcmp(k, tk))
            continue;
        if ((!k || !*k) && strcmp(op, "Exists"))
            continue;
        if (!strcmp(op, "Exists"))
            return true;
        const char *v = jstr(t, "value") ? jstr(t, "value") : "";
        if (!strcmp(v, tv))
            return true;
    }
    return false;
}

/* ---------- topology spread ---------- */

/* Pods of namespace ns matching selector (plus matchLabelKeys from the incoming pod's labels). */
/* ls: the constraint's labelSelector, parsed by the caller when it checks many pods (NULL: parse here). */
static bool spread_pod_matches_sel(json_t *constraint, const struct kc_label_selector *ls,
                                   const struct kc_spod *incoming, const struct kc_spod *q)
{
    if (strcmp(q->ns, incoming->ns))
        return false;
    json_t *sel = json_object_get(constraint, "labelSelector");
    if (!sel)
        return false;
    if (ls ? !kc_label_selector_matches_json(ls, q->labels) : !labels_match_selector_json(sel, q->labels))
        return false;
    size_t i;
    json_t *key;
    json_array_foreach(json_object_get(constraint, "matchLabelKeys"), i, key)
    {
        const char *k = json_string_value(key);
        const char *a = jstr(incoming->labels, k), *b = jstr(q->labels, k);
        if (a && (!b || strcmp(a, b)))
            return false;
    }
    return true;
}

static bool spread_pod_matches(json_t *constraint, const struct kc_spod *incoming, const struct kc_spod *q)
{
    return spread_pod_matches_sel(constraint, NULL, incoming, q);
}

/* Whether node n takes part in constraint c's domains for this pod (nodeAffinityPolicy Honor default,
 * nodeTaintsPolicy Ignore default). */
static bool spread_node_eligible(json_t *c, const struct kc_spod *p, const struct kc_snode *n)
{
    const char *ap = jstr(c, "nodeAffinityPolicy");
    if ((!ap || !strcmp(ap, "Honor")) && !pod_matches_node_affinity(p, n))
        return false;
    const char *tp = jstr(c, "nodeTaintsPolicy");
    if (tp && !strcmp(tp, "Honor")) {
        size_t i;
        json_t *t;
        json_array_foreach(n->taints, i, t)
        {
            const char *e = jstr(t, "effect");
            if (e && (!strcmp(e, "NoSchedule") || !strcmp(e, "NoExecute")) &&
                !tolerates(p->tolerations, t))
                return false;
        }
    }
    return true;
}

struct domcount {
    const char *dom;
    int64_t count;
};

/* ---------- per-attempt memos ----------
 * Within one kc_schedule call the snapshot does not change, so per-constraint domain counts and
 * per-term match sets are computed once (O(pods)) and then looked up per node (O(1)), instead of
 * rescanning every pod for every node. memo_attempt is 0 outside kc_schedule and while preemption
 * evaluates modified views, which disables the memos. Thread-local: one scheduling thread each. */
static __thread unsigned long memo_attempt;
static unsigned long memo_seq;

#define NMEMO 8
struct spread_memo {
    unsigned long attempt;
    json_t *c;
    struct kc_map doms; /* domain value → count + 1 */
    int64_t min;
    size_t nd;
    int self;           /* the incoming pod matches its own constraint */
    json_int_t min_domains;
    struct spread_cache *sc; /* counts from the snapshot's cache instead of doms/min/nd, or NULL */
};
static __thread struct spread_memo smemo[NMEMO];
static __thread unsigned smemo_next;

struct match_memo {
    unsigned long attempt;
    json_t *term;
    struct kc_map doms; /* domain values holding a pod that matches term */
};
static __thread struct match_memo mmemo[NMEMO];
static __thread unsigned mmemo_next;

/* existing pods' required anti-affinity terms that match the incoming pod: (key, domain) pairs */
struct anti_rec {
    const char *key, *dom;
};
static __thread unsigned long anti_attempt;
static __thread struct anti_rec *anti_recs;
static __thread size_t anti_n, anti_cap;

/* ---------- spread count cache (across attempts) ----------
 * Building the per-domain counts walks every node and pod: O(nodes + pods) per attempt, which made
 * topology spread ~20x slower than the rest of an attempt on 5,000 nodes. For the common constraint —
 * a labelSelector, no matchLabelKeys, nodeTaintsPolicy Ignore, and a pod whose node affinity does not
 * restrict the eligible nodes — the counts depend only on (namespace, topologyKey, labelSelector), so
 * the snapshot keeps them and kc_snode_add_pod / kc_snode_remove_pod adjust them by one. A node whose
 * labels change, or that goes, drops every cache (rare); a new node adds its domain with 0 pods. */
#define SPREAD_CACHE_MAX 32

struct spread_cache {
    char *id;                      /* ns \x1f topologyKey \x1f labelSelector as canonical JSON */
    char *ns, *key;
    struct kc_label_selector *ls;
    struct kc_map doms;            /* domain value → count + 1 (every domain with a node) */
    size_t nd;
    int64_t min;
    bool min_dirty;
    unsigned long used;            /* LRU stamp */
    unsigned long attempt;         /* last attempt that used it: never evicted during that attempt */
};

struct kc_spread_caches {
    struct spread_cache *c[SPREAD_CACHE_MAX];
    size_t n;
    unsigned long clock;
};

static void spread_cache_free(struct spread_cache *c)
{
    free(c->id);
    free(c->ns);
    free(c->key);
    kc_label_selector_free(c->ls);
    kc_map_release(&c->doms);
    free(c);
}

static void spread_caches_drop(struct kc_snapshot *s)
{
    if (!s->spread)
        return;
    for (size_t i = 0; i < s->spread->n; i++)
        spread_cache_free(s->spread->c[i]);
    s->spread->n = 0;
}

static void spread_caches_pod(struct kc_snode *n, const struct kc_spod *p, int delta)
{
    struct kc_spread_caches *cs = n->snap ? n->snap->spread : NULL;
    for (size_t i = 0; cs && i < cs->n; i++) {
        struct spread_cache *c = cs->c[i];
        const char *dom = jstr(n->labels, c->key);
        if (!dom || strcmp(p->ns, c->ns) || !kc_label_selector_matches_json(c->ls, p->labels))
            continue;
        intptr_t v = (intptr_t)kc_map_get(&c->doms, dom);
        kc_map_put(&c->doms, dom, (void *)(v + delta), NULL);
        c->min_dirty = true;
    }
}

static void spread_caches_node_added(struct kc_snode *n)
{
    struct kc_spread_caches *cs = n->snap ? n->snap->spread : NULL;
    for (size_t i = 0; cs && i < cs->n; i++) {
        struct spread_cache *c = cs->c[i];
        const char *dom = jstr(n->labels, c->key);
        if (dom && !kc_map_get(&c->doms, dom)) {
            kc_map_put(&c->doms, dom, (void *)1, NULL);
            c->nd++;
            c->min_dirty = true;
        }
    }
}

/* Whether constraint c's counts for pod p can come from the cache (see above). */
static bool spread_cacheable(json_t *c, const struct kc_spod *p)
{
    if (!json_is_object(json_object_get(c, "labelSelector")) || json_array_size(json_object_get(c, "matchLabelKeys")))
        return false;
    const char *tp = jstr(c, "nodeTaintsPolicy");
    if (tp && !strcmp(tp, "Honor"))
        return false;
    const char *ap = jstr(c, "nodeAffinityPolicy");
    bool honor = !ap || !strcmp(ap, "Honor");
    return !honor || (!p->node_selector && !json_is_array(p->req_node_terms));
}

static int64_t spread_cache_min(struct spread_cache *c)
{
    if (c->min_dirty) {
        int64_t min = INT64_MAX;
        void *v;
        for (long i = kc_map_next(&c->doms, 0, NULL, &v); i >= 0; i = kc_map_next(&c->doms, i + 1, NULL, &v))
            if ((intptr_t)v - 1 < min)
                min = (intptr_t)v - 1;
        c->min = min == INT64_MAX ? 0 : min;
        c->min_dirty = false;
    }
    return c->min;
}

/* The cache for (p's namespace, c), built on first use; NULL when c's selector does not parse. */
static struct spread_cache *spread_cache_get(const struct kc_snapshot *cs, json_t *c, const struct kc_spod *p)
{
    struct kc_snapshot *s = (struct kc_snapshot *)cs; /* the cache is bookkeeping, not snapshot content */
    const char *key = jstr(c, "topologyKey");
    char *sel = json_dumps(json_object_get(c, "labelSelector"), JSON_COMPACT | JSON_SORT_KEYS);
    if (!key || !sel) {
        free(sel);
        return NULL;
    }
    char id[1024];
    int len = snprintf(id, sizeof id, "%s\x1f%s\x1f%s", p->ns, key, sel);
    free(sel);
    if (len < 0 || len >= (int)sizeof id)
        return NULL; /* over-long selectors take the per-attempt path */
    if (!s->spread)
        s->spread = calloc(1, sizeof *s->spread);
    struct kc_spread_caches *cs2 = s->spread;
    for (size_t i = 0; i < cs2->n; i++)
        if (!strcmp(cs2->c[i]->id, id)) {
            cs2->c[i]->used = ++cs2->clock;
            cs2->c[i]->attempt = memo_attempt;
            return cs2->c[i];
        }
    size_t lru = 0;
    for (size_t i = 1; i < cs2->n; i++)
        if (cs2->c[i]->used < cs2->c[lru]->used)
            lru = i;
    if (cs2->n == SPREAD_CACHE_MAX && cs2->c[lru]->attempt == memo_attempt)
        return NULL; /* every cache serves this attempt (a pod with > 32 constraints): count per attempt */
    struct kc_label_selector *ls = NULL;
    if (kc_label_selector_from_json(json_object_get(c, "labelSelector"), &ls, NULL) || !ls)
        return NULL;
    struct spread_cache *e = calloc(1, sizeof *e);
    e->id = strdup(id);
    e->ns = strdup(p->ns);
    e->key = strdup(key);
    e->ls = ls;
    e->min_dirty = true;
    e->used = ++cs2->clock;
    kc_map_init(&e->doms);
    for (size_t i = 0; i < s->n; i++) {
        const struct kc_snode *n = &s->nodes[i];
        const char *dom = jstr(n->labels, key);
        if (!dom)
            continue;
        intptr_t cnt = (intptr_t)kc_map_get(&e->doms, dom);
        if (!cnt)
            e->nd++;
        else
            cnt--;
        for (size_t k = 0; k < n->npods; k++)
            if (!strcmp(n->pods[k]->ns, p->ns) && kc_label_selector_matches_json(ls, n->pods[k]->labels))
                cnt++;
        kc_map_put(&e->doms, dom, (void *)(cnt + 1), NULL);
    }
    e->attempt = memo_attempt;
    if (cs2->n == SPREAD_CACHE_MAX) { /* evict the least recently used */
        spread_cache_free(cs2->c[lru]);
        cs2->c[lru] = cs2->c[--cs2->n];
    }
    cs2->c[cs2->n++] = e;
    return e;
}

/* Counts matching pods per domain value of topologyKey over eligible nodes. Returns the number of domains. */
static size_t spread_counts(const struct kc_snapshot *s, json_t *c, const struct kc_spod *p, struct domcount *dc,
                            size_t max)
{
    const char *key = jstr(c, "topologyKey");
    size_t nd = 0;
    for (size_t i = 0; i < s->n; i++) {
        const struct kc_snode *n = &s->nodes[i];
        const char *dom = key ? jstr(n->labels, key) : NULL;
        if (!dom || !spread_node_eligible(c, p, n))
            continue;
        size_t d;
        for (d = 0; d < nd; d++)
            if (!strcmp(dc[d].dom, dom))
                break;
        if (d == nd) {
            if (nd == max)
                continue;
            dc[nd].dom = dom;
            dc[nd].count = 0;
            nd++;
        }
        for (size_t k = 0; k < n->npods; k++)
            if (spread_pod_matches(c, p, n->pods[k]))
                dc[d].count++;
    }
    return nd;
}

#define MAX_DOMAINS 1024

static struct spread_memo *spread_memo_get(const struct kc_snapshot *s, json_t *c, const struct kc_spod *p)
{
    for (int i = 0; i < NMEMO; i++)
        if (smemo[i].attempt == memo_attempt && smemo[i].c == c)
            return &smemo[i];
    struct spread_memo *m = &smemo[smemo_next++ % NMEMO];
    if (m->attempt)
        kc_map_release(&m->doms);
    kc_map_init(&m->doms);
    m->attempt = memo_attempt;
    m->c = c;
    m->nd = 0;
    json_t *md = json_object_get(c, "minDomains");
    m->min_domains = json_is_integer(md) ? json_integer_value(md) : 0;
    m->sc = spread_cacheable(c, p) ? spread_cache_get(s, c, p) : NULL;
    if (m->sc) {
        m->self = kc_label_selector_matches_json(m->sc->ls, p->labels) ? 1 : 0;
        m->nd = m->sc->nd;
        m->min = spread_cache_min(m->sc);
        return m;
    }
    const char *key = jstr(c, "topologyKey");
    struct kc_label_selector *ls = NULL;
    kc_label_selector_from_json(json_object_get(c, "labelSelector"), &ls, NULL); /* once per attempt */
    for (size_t i = 0; key && ls && i < s->n; i++) {
        const struct kc_snode *n = &s->nodes[i];
        const char *dom = jstr(n->labels, key);
        if (!dom || !spread_node_eligible(c, p, n))
            continue;
        intptr_t cnt = (intptr_t)kc_map_get(&m->doms, dom);
        if (!cnt)
            m->nd++;
        else
            cnt--;
        for (size_t k = 0; k < n->npods; k++)
            if (spread_pod_matches_sel(c, ls, p, n->pods[k]))
                cnt++;
        kc_map_put(&m->doms, dom, (void *)(cnt + 1), NULL);
    }
    m->self = ls && spread_pod_matches_sel(c, ls, p, p) ? 1 : 0;
    kc_label_selector_free(ls);
    int64_t min = INT64_MAX;
    void *v;
    for (long i = kc_map_next(&m->doms, 0, NULL, &v); i >= 0; i = kc_map_next(&m->doms, i + 1, NULL, &v))
        if ((intptr_t)v - 1 < min)
            min = (intptr_t)v - 1;
    m->min = min == INT64_MAX ? 0 : min;
    return m;
}

/* Skew the pod would cause on node n for constraint c; -1 if the node lacks the key. */
static int64_t spread_skew(const struct kc_snapshot *s, json_t *c, const struct kc_spod *p, const struct kc_snode *n)
{
    static __thread struct domcount dc[MAX_DOMAINS];
    const char *key = jstr(c, "topologyKey");
    const char *dom = key ? jstr(n->labels, key) : NULL;
    if (!dom)
        return -1;
    if (memo_attempt) {
        struct spread_memo *m = spread_memo_get(s, c, p);
        intptr_t mine = (intptr_t)kc_map_get(m->sc ? &m->sc->doms : &m->doms, dom);
        int64_t min = m->min;
        if (m->min_domains && (int64_t)m->nd < m->min_domains)
            min = 0;
        return (mine ? mine - 1 : 0) + m->self - min;
    }
    size_t nd = spread_counts(s, c, p, dc, MAX_DOMAINS);
    int64_t min = INT64_MAX, mine = 0;
    for (size_t d = 0; d < nd; d++) {
        if (dc[d].count < min)
            min = dc[d].count;
        if (!strcmp(dc[d].dom, dom))
            mine = dc[d].count;
    }
    if (min == INT64_MAX)
        min = 0;
    json_t *md = json_object_get(c, "minDomains");
    if (json_is_integer(md) && (int64_t)nd < json_integer_value(md))
        min = 0;
    int64_t self = spread_pod_matches(c, p, p) ? 1 : 0;
    return mine + self - min;
}

/* ---------- inter-pod affinity ---------- */

static bool term_matches_pod(json_t *term, const char *owner_ns, const struct kc_spod *q)
{
    json_t *nss = json_object_get(term, "namespaces");
    if (json_array_size(nss)) {
        if (!in_values(nss, q->ns))
            return false;
    } else if (!json_object_get(term, "namespaceSelector") && strcmp(q->ns, owner_ns)) {
        return false;
    }
    json_t *sel = json_object_get(term, "labelSelector");
    return sel && labels_match_selector_json(sel, q->labels);
}

static struct match_memo *match_memo_get(const struct kc_snapshot *s, json_t *term, const char *owner_ns,
                                         const char *skip_uid)
{
    for (int i = 0; i < NMEMO; i++)
        if (mmemo[i].attempt == memo_attempt && mmemo[i].term == term)
            return &mmemo[i];
    struct match_memo *m = &mmemo[mmemo_next++ % NMEMO];
    if (m->attempt)
        kc_map_release(&m->doms);
    kc_map_init(&m->doms);
    m->attempt = memo_attempt;
    m->term = term;
    const char *key = jstr(term, "topologyKey");
    for (size_t i = 0; key && i < s->n; i++) {
        const struct kc_snode *n = &s->nodes[i];
        const char *dom = jstr(n->labels, key);
        if (!dom || kc_map_get(&m->doms, dom))
            continue;
        for (size_t k = 0; k < n->npods; k++)
            if ((!skip_uid || strcmp(n->pods[k]->uid, skip_uid)) && term_matches_pod(term, owner_ns, n->pods[k])) {
                kc_map_put(&m->doms, dom, (void *)1, NULL);
                break;
            }
    }
    return m;
}

/* Any pod in n's topology domain (per term's topologyKey) that matches term. */
static bool domain_has_match(const struct kc_snapshot *s, const struct kc_snode *n, json_t *term, const char *owner_ns,
                             const char *skip_uid)
{
    const char *key = jstr(term, "topologyKey");
    const char *dom = key ? jstr(n->labels, key) : NULL;
    if (!dom)
        return false;
    if (memo_attempt)
        return kc_map_get(&match_memo_get(s, term, owner_ns, skip_uid)->doms, dom) != NULL;
    for (size_t i = 0; i < s->n; i++) {
        const struct kc_snode *m = &s->nodes[i];
        const char *d2 = jstr(m->labels, key);
        if (!d2 || strcmp(d2, dom))
            continue;
        for (size_t k = 0; k < m->npods; k++)
            if ((!skip_uid || strcmp(m->pods[k]->uid, skip_uid)) && term_matches_pod(term, owner_ns, m->pods[k]))
                return true;
    }
    return false;
}


/* ---------- filters ---------- */

static void add_reason(struct kc_filter_result *r, const char *why)
{
    if (r->n < 4)
        r->reasons[r->n++] = why;
}

/* Each filter plugin: true = the node passes. They run in upstream's order and stop at the first failure. */
typedef bool (*filter_fn)(const struct kc_snapshot *s, const struct kc_spod *p, const struct kc_snode *n,
                          struct kc_filter_result *r);

static bool f_unschedulable(const struct kc_snapshot *s, const struct kc_spod *p, const struct kc_snode *n,
                            struct kc_filter_result *r)
{
    (void)s;
    if (!n->unschedulable)
        return true;
    json_t *t = json_pack("{s:s,s:s}", "key", "node.kubernetes.io/unschedulable", "effect", "NoSchedule");
    bool ok = tolerates(p->tolerations, t);
    json_decref(t);
    if (!ok)
        add_reason(r, "node(s) were unschedulable");
    return ok;
}

static bool f_nodename(const struct kc_snapshot *s, const struct kc_spod *p, const struct kc_snode *n,
                       struct kc_filter_result *r)
{
    (void)s;
    const char *want = p->want_node;
    if (want && *want && strcmp(want, n->name)) {
        add_reason(r, "node(s) didn't match the requested node name");
        return false;
    }
    return true;
}

static bool f_taints(const struct kc_snapshot *s, const struct kc_spod *p, const struct kc_snode *n,
                     struct kc_filter_result *r)
{
    (void)s;
    json_t *tols = p->tolerations;
    size_t i;
    json_t *t;
    json_array_foreach(n->taints, i, t)
    {
        const char *e = jstr(t, "effect");
        if (!e || (strcmp(e, "NoSchedule") && strcmp(e, "NoExecute")))
            continue;
        if (!tolerates(tols, t)) {
            static __thread char buf[4][320];
            static __thread int slot;
            char *b = buf[slot++ % 4];
            snprintf(b, 320, "node(s) had untolerated taint {%s: %s}", jstr(t, "key") ? jstr(t, "key") : "",
                     jstr(t, "value") ? jstr(t, "value") : "");
            add_reason(r, b);
            return false;
        }
    }
    return true;
}

static bool f_nodeaffinity(const struct kc_snapshot *s, const struct kc_spod *p, const struct kc_snode *n,
                           struct kc_filter_result *r)
{
    (void)s;
    if (pod_matches_node_affinity(p, n))
        return true;
    add_reason(r, "node(s) didn't match Pod's node affinity/selector");
    return false;
}

static bool f_resources(const struct kc_snapshot *s, const struct kc_spod *p, const struct kc_snode *n,
                        struct kc_filter_result *r)
{
    (void)s;
    if (n->used.pods + 1 > n->alloc.pods)
        add_reason(r, "Too many pods");
    if (p->req.cpu_m && n->used.cpu_m + p->req.cpu_m > n->alloc.cpu_m)
        add_reason(r, "Insufficient cpu");
    if (p->req.mem && n->used.mem + p->req.mem > n->alloc.mem)
        add_reason(r, "Insufficient memory");
    if (p->req.eph && n->used.eph + p->req.eph > n->alloc.eph)
        add_reason(r, "Insufficient ephemeral-storage");
    return r->n == 0;
}

static bool f_spread(const struct kc_snapshot *s, const struct kc_spod *p, const struct kc_snode *n,
                     struct kc_filter_result *r)
{
    size_t i;
    json_t *c;
    json_array_foreach(p->spread, i, c)
    {
        const char *wu = jstr(c, "whenUnsatisfiable");
        if (wu && strcmp(wu, "DoNotSchedule"))
            continue;
        int64_t skew = spread_skew(s, c, p, n);
        if (skew < 0) {
            add_reason(r, "node(s) didn't match pod topology spread constraints (missing required label)");
            return false;
        }
        json_int_t max = json_integer_value(json_object_get(c, "maxSkew"));
        if (skew > (max > 0 ? max : 1)) {
            add_reason(r, "node(s) didn't match pod topology spread constraints");
            return false;
        }
    }
    return true;
}

static bool f_interpod(const struct kc_snapshot *s, const struct kc_spod *p, const struct kc_snode *n,
                       struct kc_filter_result *r)
{
    size_t i;
    json_t *t;
    /* required anti-affinity of the incoming pod */
    json_array_foreach(p->anti_req, i, t)
    {
        if (domain_has_match(s, n, t, p->ns, p->uid)) {
            add_reason(r, "node(s) didn't match pod anti-affinity rules");
            return false;
        }
    }
    /* existing pods' required anti-affinity against the incoming pod (symmetry) */
    if (memo_attempt) {
        if (anti_attempt != memo_attempt) {
            anti_attempt = memo_attempt;
            anti_n = 0;
            for (size_t k = 0; s->n_anti && k < s->n; k++) {
                const struct kc_snode *m = &s->nodes[k];
                for (size_t q = 0; m->n_anti && q < m->npods; q++) {
                    size_t j;
                    json_t *term;
                    json_array_foreach(m->pods[q]->anti_req, j, term)
                    {
                        const char *key = jstr(term, "topologyKey");
                        const char *d1 = key ? jstr(m->labels, key) : NULL;
                        if (!d1 || !term_matches_pod(term, m->pods[q]->ns, p))
                            continue;
                        if (anti_n == anti_cap) {
                            anti_cap = anti_cap ? anti_cap * 2 : 16;
                            anti_recs = realloc(anti_recs, anti_cap * sizeof *anti_recs);
                        }
                        anti_recs[anti_n++] = (struct anti_rec){key, d1};
                    }
                }
            }
        }
        for (size_t k = 0; k < anti_n; k++) {
            const char *d2 = jstr(n->labels, anti_recs[k].key);
            if (d2 && !strcmp(d2, anti_recs[k].dom)) {
                add_reason(r, "node(s) didn't satisfy existing pods anti-affinity rules");
                return false;
            }
        }
    } else
    for (size_t k = 0; s->n_anti && k < s->n; k++) {
        const struct kc_snode *m = &s->nodes[k];
        for (size_t q = 0; m->n_anti && q < m->npods; q++) {
            json_t *terms = m->pods[q]->anti_req;
            size_t j;
            json_t *term;
            json_array_foreach(terms, j, term)
            {
                const char *key = jstr(term, "topologyKey");
                const char *d1 = key ? jstr(m->labels, key) : NULL, *d2 = key ? jstr(n->labels, key) : NULL;
                if (d1 && d2 && !strcmp(d1, d2) && term_matches_pod(term, m->pods[q]->ns, p)) {
                    add_reason(r, "node(s) didn't satisfy existing pods anti-affinity rules");
                    return false;
                }
            }
        }
    }
    /* required pod affinity */
    json_array_foreach(p->aff_req, i, t)
    {
        if (domain_has_match(s, n, t, p->ns, p->uid))
            continue;
        /* upstream: if no pod anywhere matches and the pod matches its own term, it may go anywhere */
        bool any = false;
        for (size_t k = 0; k < s->n && !any; k++)
            for (size_t q = 0; q < s->nodes[k].npods && !any; q++)
                any = term_matches_pod(t, p->ns, s->nodes[k].pods[q]);
        if (!any && term_matches_pod(t, p->ns, p) && jstr(n->labels, jstr(t, "topologyKey") ?: ""))
            continue;
        add_reason(r, "node(s) didn't match pod affinity rules");
        return false;
    }
    return true;
}

static const struct {
    const char *name;
    filter_fn fn;
} filters[KC_NFILTERS] = {
    {"NodeUnschedulable", f_unschedulable}, {"NodeName", f_nodename},         {"TaintToleration", f_taints},
    {"NodeAffinity", f_nodeaffinity},       {"NodeResourcesFit", f_resources}, {"PodTopologySpread", f_spread},
    {"InterPodAffinity", f_interpod},
};

const char *kc_filter_plugin_name(int i) { return i >= 0 && i < KC_NFILTERS ? filters[i].name : ""; }

bool kc_filter_node_timed(const struct kc_snapshot *s, const struct kc_spod *p, const struct kc_snode *n,
                          struct kc_filter_result *r, double *plugin_s)
{
    memset(r, 0, sizeof *r);
    int i;
    for (i = 0; i < KC_NFILTERS; i++) {
        double t0 = plugin_s ? kc_mono_now() : 0;
        bool ok = filters[i].fn(s, p, n, r);
        if (plugin_s)
            plugin_s[i] += kc_mono_now() - t0;
        if (!ok)
            break;
    }
    r->plugin = i;
    return i == KC_NFILTERS;
}

bool kc_filter_node(const struct kc_snapshot *s, const struct kc_spod *p, const struct kc_snode *n,
                    struct kc_filter_result *r)
{
    return kc_filter_node_timed(s, p, n, r, NULL);
}

/* ---------- scores ---------- */

enum { SC_FIT, SC_BALANCED, SC_IMAGE, SC_NODEAFF, SC_TAINT, SC_SPREAD, SC_PODAFF, SC_N };
static const int weights[SC_N] = {1, 1, 1, 2, 3, 2, 2};
static const char *const score_names[SC_N] = {"NodeResourcesFit", "NodeResourcesBalancedAllocation", "ImageLocality",
                                              "NodeAffinity",     "TaintToleration",
                                              "PodTopologySpread", "InterPodAffinity"};
_Static_assert(SC_N == KC_NSCORES, "KC_NSCORES");

const char *kc_score_plugin_name(int i) { return i >= 0 && i < SC_N ? score_names[i] : ""; }

/* Adds the time since *t to ts[j] and restarts *t (timed attempts only: ts is NULL otherwise). */
static inline void score_lap(double *ts, int j, double *t)
{
    if (ts) {
        double now = kc_mono_now();
        ts[j] += now - *t;
        *t = now;
    }
}

/* Non-zero request defaults for scoring (upstream: 100m CPU, 200Mi memory). */
static void score_req(const struct kc_spod *p, int64_t *cpu, int64_t *mem)
{
    *cpu = p->req.cpu_m ? p->req.cpu_m : 100;
    *mem = p->req.mem ? p->req.mem : 200LL * 1024 * 1024;
}

/* Raw score of every plugin for node n; with ts, each plugin's time is added to ts[plugin]. Always inlined
 * into the two wrappers below so that the untimed one (every attempt but the timed ones) has no lap
 * checks at all. */
static inline __attribute__((always_inline)) void raw_scores_impl(const struct kc_snapshot *s,
                                                                   const struct kc_spod *p, const struct kc_snode *n,
                                                                   double *sc, double *ts)
{
    double tl = ts ? kc_mono_now() : 0; /* lap start */
    int64_t cpu, mem;
    score_req(p, &cpu, &mem);
    double fc = n->alloc.cpu_m ? (double)(n->used.cpu_m + cpu) / (double)n->alloc.cpu_m : 1.0;
    double fm = n->alloc.mem ? (double)(n->used.mem + mem) / (double)n->alloc.mem : 1.0;
    if (fc > 1)
        fc = 1;
    if (fm > 1)
        fm = 1;
    sc[SC_FIT] = ((1 - fc) * 100 + (1 - fm) * 100) / 2;
    score_lap(ts, SC_FIT, &tl);
    double mean = (fc + fm) / 2, sd = sqrt(((fc - mean) * (fc - mean) + (fm - mean) * (fm - mean)) / 2);
    sc[SC_BALANCED] = (1 - sd) * 100;
    score_lap(ts, SC_BALANCED, &tl);
    /* ImageLocality: share of the pod's images already on the node (pre-warmed nodes win) */
    size_t i, total = (size_t)p->nimages, have = 0;
    json_t *c;
    for (int k = 0; k < p->nimages && json_object_size(n->images); k++) {
        const char *img = p->images[k];
        if (json_object_get(n->images, img))
            have++;
        else {
            /* "nginx" is stored by the runtime as "docker.io/library/nginx:latest" and similar */
            char full[512];
            snprintf(full, sizeof full, "docker.io/library/%s%s", img, strchr(img, ':') ? "" : ":latest");
            if (json_object_get(n->images, full))
                have++;
        }
    }
    sc[SC_IMAGE] = total ? 100.0 * (double)have / (double)total : 0;
    score_lap(ts, SC_IMAGE, &tl);
    /* preferred node affinity: sum of matching weights */
    double w = 0;
    json_t *pref;
    json_array_foreach(p->pref_node_terms, i, pref)
        if (node_term_matches(json_object_get(pref, "preference"), n->labels, n->name))
            w += (double)json_integer_value(json_object_get(pref, "weight"));
    sc[SC_NODEAFF] = w;
    score_lap(ts, SC_NODEAFF, &tl);
    /* PreferNoSchedule taints not tolerated (fewer is better: negated, normalised later) */
    double bad = 0;
    json_t *t;
    json_array_foreach(n->taints, i, t)
    {
        const char *e = jstr(t, "effect");
        if (e && !strcmp(e, "PreferNoSchedule") && !tolerates(p->tolerations, t))
            bad++;
    }
    sc[SC_TAINT] = -bad;
    score_lap(ts, SC_TAINT, &tl);
    /* ScheduleAnyway topology spread: lower skew is better */
    double skew = 0;
    json_array_foreach(p->spread, i, c)
    {
        const char *wu = jstr(c, "whenUnsatisfiable");
        if (!wu || strcmp(wu, "ScheduleAnyway"))
            continue;
        int64_t k = spread_skew(s, c, p, n);
        skew += k < 0 ? 1000 : (double)k;
    }
    sc[SC_SPREAD] = -skew;
    score_lap(ts, SC_SPREAD, &tl);
    /* preferred inter-pod affinity / anti-affinity */
    double aff = 0;
    json_array_foreach(p->aff_pref, i, pref)
        if (domain_has_match(s, n, json_object_get(pref, "podAffinityTerm"), p->ns, p->uid))
            aff += (double)json_integer_value(json_object_get(pref, "weight"));
    json_array_foreach(p->anti_pref, i, pref)
        if (domain_has_match(s, n, json_object_get(pref, "podAffinityTerm"), p->ns, p->uid))
            aff -= (double)json_integer_value(json_object_get(pref, "weight"));
    sc[SC_PODAFF] = aff;
    score_lap(ts, SC_PODAFF, &tl);
}

static void raw_scores_timed(const struct kc_snapshot *s, const struct kc_spod *p, const struct kc_snode *n,
                             double *sc, double *ts)
{
    raw_scores_impl(s, p, n, sc, ts);
}

/* The same without timing, with raw_scores_timed's signature so that the filter loop picks one of them
 * once */
static void raw_scores_untimed(const struct kc_snapshot *s, const struct kc_spod *p, const struct kc_snode *n,
                               double *sc, double *ts)
{
    (void)ts;
    raw_scores_impl(s, p, n, sc, NULL);
}

int64_t kc_score_node(const struct kc_snapshot *s, const struct kc_spod *p, const struct kc_snode *n)
{
    double sc[SC_N];
    raw_scores_untimed(s, p, n, sc, NULL);
    return (int64_t)(sc[SC_FIT] * weights[SC_FIT] + sc[SC_BALANCED] * weights[SC_BALANCED] +
                     sc[SC_IMAGE] * weights[SC_IMAGE]);
}

/* ---------- the algorithm ---------- */

struct reason_count {
    const char *reason;
    int n;
};

/* Upstream (FitError.Error) formats each reason as "COUNT REASON" and sorts those strings bytewise
 * (sort.Strings): "1 node(s) were unschedulable" comes before "2 Insufficient cpu", and "10 …" before
 * "2 …". Only the failure path sorts, so formatting in the comparator costs nothing that matters. */
static int cmp_count_reason(int na, const char *ra, int nb, const char *rb)
{
    char x[600], y[600];
    snprintf(x, sizeof x, "%d %s", na, ra);
    snprintf(y, sizeof y, "%d %s", nb, rb);
    return strcmp(x, y);
}

static int cmp_reason(const void *a, const void *b)
{
    const struct reason_count *x = a, *y = b;
    return cmp_count_reason(x->n, x->reason, y->n, y->reason);
}

static void count_reason(struct reason_count *rc, int *nrc, const char *why)
{
    for (int i = 0; i < *nrc; i++)
        if (!strcmp(rc[i].reason, why)) {
            rc[i].n++;
            return;
        }
    if (*nrc < 32) {
        rc[*nrc].reason = why;
        rc[*nrc].n = 1;
        (*nrc)++;
    }
}

/* Reasons that evicting pods cannot fix (upstream: UnschedulableAndUnresolvable). */
static bool unresolvable(const struct kc_filter_result *r)
{
    for (int i = 0; i < r->n; i++)
        if (strstr(r->reasons[i], "unschedulable") || strstr(r->reasons[i], "node affinity") ||
            strstr(r->reasons[i], "untolerated taint") || strstr(r->reasons[i], "requested node name") ||
            strstr(r->reasons[i], "missing required label"))
            return true;
    return false;
}

static int cmp_victim_prio_desc(const void *a, const void *b)
{
    const struct kc_spod *x = *(struct kc_spod *const *)a, *y = *(struct kc_spod *const *)b;
    if (x->priority != y->priority)
        return x->priority > y->priority ? -1 : 1;
    return x->created < y->created ? -1 : x->created > y->created;
}

/* Victims on node n for pod p: all lower-priority pods removed, then reprieved from the highest
 * priority down while the pod still fits. Returns the count (-1 if even removing all doesn't help). */
static int select_victims(const struct kc_snapshot *s, const struct kc_spod *p, struct kc_snode *n,
                          struct kc_spod **victims, int max)
{
    struct kc_spod *lower[512];
    int nl = 0;
    for (size_t i = 0; i < n->npods && nl < 512; i++)
        if (n->pods[i]->priority < p->priority)
            lower[nl++] = n->pods[i];
    if (!nl)
        return -1;
    /* Evaluate on the node itself: its pod list and usage are swapped for the reduced ones and
     * restored before returning (the caller holds the snapshot; copying the whole snapshot per
     * candidate node cost O(nodes) per node). */
    struct kc_spod **saved_pods = n->pods;
    size_t saved_npods = n->npods, saved_cap = n->cap;
    struct kc_res saved_used = n->used;
    struct kc_spod **tmp = malloc((n->npods + 1) * sizeof *tmp);
    size_t kept = 0;
    struct kc_res used = {0};
    for (size_t i = 0; i < saved_npods; i++) {
        bool is_lower = false;
        for (int k = 0; k < nl; k++)
            if (lower[k] == saved_pods[i])
                is_lower = true;
        if (!is_lower) {
            tmp[kept++] = saved_pods[i];
            used.cpu_m += saved_pods[i]->req.cpu_m;
            used.mem += saved_pods[i]->req.mem;
            used.eph += saved_pods[i]->req.eph;
            used.pods++;
        }
    }
    n->pods = tmp;
    n->npods = kept;
    n->cap = saved_npods + 1;
    n->used = used;
    struct kc_filter_result r;
    int nv = -1;
    if (kc_filter_node(s, p, n, &r)) {
        qsort(lower, (size_t)nl, sizeof *lower, cmp_victim_prio_desc);
        nv = 0;
        for (int k = 0; k < nl; k++) {
            /* try to keep lower[k] */
            n->pods[n->npods++] = lower[k];
            n->used.cpu_m += lower[k]->req.cpu_m;
            n->used.mem += lower[k]->req.mem;
            n->used.eph += lower[k]->req.eph;
            n->used.pods++;
            if (!kc_filter_node(s, p, n, &r)) {
                n->npods--;
                n->used.cpu_m -= lower[k]->req.cpu_m;
                n->used.mem -= lower[k]->req.mem;
                n->used.eph -= lower[k]->req.eph;
                n->used.pods--;
                if (nv < max)
                    victims[nv++] = lower[k];
            }
        }
    }
    n->pods = saved_pods;
    n->npods = saved_npods;
    n->cap = saved_cap;
    n->used = saved_used;
    free(tmp);
    return nv;
}

/* scratch space of the scheduling thread, reused across attempts; freed by kc_schedule_thread_release */
static __thread struct kc_filter_result *fr_buf;
static __thread size_t *feas_buf;
static __thread double (*raw_buf)[SC_N];
static __thread size_t scratch_cap;

void kc_schedule_thread_release(void)
{
    free(fr_buf);
    free(feas_buf);
    free(raw_buf);
    fr_buf = NULL;
    feas_buf = NULL;
    raw_buf = NULL;
    scratch_cap = 0;
}

static void postfilter(const struct kc_snapshot *s, const struct kc_spod *p, struct reason_count *rc, int nrc,
                       const struct kc_filter_result *fr, struct kc_sched_result *out);

static void schedule_impl(const struct kc_snapshot *s, const struct kc_spod *p, unsigned *rr, struct kc_sched_result *out)
{
    bool timed = out->time_plugins;
    memset(out, 0, sizeof *out);
    out->time_plugins = timed;
    double t_filter = kc_mono_now();
    memo_attempt = __atomic_add_fetch(&memo_seq, 1, __ATOMIC_RELAXED);
    /* upstream's percentageOfNodesToScore: large clusters stop filtering once enough nodes fit */
    size_t want = s->n;
    if (s->n > 100) {
        size_t pct = s->n / 125 < 45 ? 50 - s->n / 125 : 5;
        want = s->n * pct / 100;
        if (want < 100)
            want = 100;
    }
    out->node = -1;
    out->nominated = -1;
    if (!s->n) {
        snprintf(out->message, sizeof out->message, "no nodes available to schedule pods");
        return;
    }
    struct reason_count rc[32];
    int nrc = 0;
    double best = -1e18;
    int best_i = -1;
    size_t start = rr ? (*rr)++ % s->n : 0;
    /* scratch space reused across attempts (the scheduling thread's own): allocating and zeroing
     * O(nodes) arrays per attempt dominated large clusters */
    if (scratch_cap < s->n) {
        free(fr_buf);
        free(feas_buf);
        free(raw_buf);
        scratch_cap = s->n;
        fr_buf = malloc(scratch_cap * sizeof *fr_buf);
        feas_buf = malloc(scratch_cap * sizeof *feas_buf);
        raw_buf = malloc(scratch_cap * sizeof *raw_buf);
    }
    struct kc_filter_result *fr = fr_buf;
    size_t *feas = feas_buf; /* indices of feasible nodes, in visiting order */
    double (*raw)[SC_N] = raw_buf;
    size_t nfeasible = 0, k;
    void (*score_fn)(const struct kc_snapshot *, const struct kc_spod *, const struct kc_snode *, double *,
                     double *) = timed ? raw_scores_timed : raw_scores_untimed;
    for (k = 0; k < s->n; k++) {
        size_t i = (start + k) % s->n;
        if (kc_filter_node_timed(s, p, &s->nodes[i], &fr[i], timed ? out->plugin_s : NULL)) {
            score_fn(s, p, &s->nodes[i], raw[nfeasible], out->score_plugin_s);
            feas[nfeasible++] = i;
            if (nfeasible >= want) {
                k++;
                break;
            }
        } else {
            out->filter_calls[fr[i].plugin]++; /* nodes rejected by this plugin, turned into calls below */
            for (int j = 0; j < fr[i].n; j++)
                count_reason(rc, &nrc, fr[i].reasons[j]);
        }
    }
    /* filters run in order and stop at the first that fails: plugin j saw every visited node not
     * rejected by an earlier one */
    for (unsigned j = 0, reach = (unsigned)k; j < KC_NFILTERS; j++) {
        unsigned rejected = out->filter_calls[j];
        out->filter_calls[j] = reach;
        reach -= rejected;
    }
    out->score_calls = (unsigned)nfeasible;
    out->filter_s = kc_mono_now() - t_filter;
    if (nfeasible) {
        double t_score = kc_mono_now();
        /* normalise plugins whose raw scores are not already 0..100 */
        double lo[SC_N], hi[SC_N];
        for (int j = 0; j < SC_N; j++) {
            lo[j] = 1e18;
            hi[j] = -1e18;
        }
        for (size_t f = 0; f < nfeasible; f++)
            for (int j = 0; j < SC_N; j++) {
                if (raw[f][j] < lo[j])
                    lo[j] = raw[f][j];
                if (raw[f][j] > hi[j])
                    hi[j] = raw[f][j];
            }
        for (size_t f = 0; f < nfeasible; f++) {
            double total = 0;
            for (int j = 0; j < SC_N; j++) {
                double v = raw[f][j];
                if (j >= SC_NODEAFF) /* relative plugins */
                    v = hi[j] > lo[j] ? (v - lo[j]) * 100.0 / (hi[j] - lo[j]) : (hi[j] == 0 && j == SC_NODEAFF ? 0 : 100);
                total += v * weights[j];
            }
            if (total > best) {
                best = total;
                best_i = (int)feas[f];
            }
        }
        out->node = best_i;
        out->score_s = kc_mono_now() - t_score;
        memo_attempt = 0;
        return;
    }
    double t_post = kc_mono_now();
    postfilter(s, p, rc, nrc, fr, out);
    out->postfilter_s = kc_mono_now() - t_post;
}

/* No node fits: the FailedScheduling message and, unless the pod may not preempt, victim selection
 * (upstream's PostFilter, DefaultPreemption). */
static void postfilter(const struct kc_snapshot *s, const struct kc_spod *p, struct reason_count *rc, int nrc,
                       const struct kc_filter_result *fr, struct kc_sched_result *out)
{
    qsort(rc, (size_t)nrc, sizeof *rc, cmp_reason);
    int len = snprintf(out->message, sizeof out->message, "0/%zu nodes are available: ", s->n);
    for (int i = 0; i < nrc && len < (int)sizeof out->message; i++)
        len += snprintf(out->message + len, sizeof out->message - (size_t)len, "%s%d %s", i ? ", " : "", rc[i].n,
                        rc[i].reason);
    if (len < (int)sizeof out->message)
        len += snprintf(out->message + len, sizeof out->message - (size_t)len, ".");
    /* preemption */
    memo_attempt = 0;
    if (p->preempt_never) {
        if (len < (int)sizeof out->message)
            snprintf(out->message + len, sizeof out->message - (size_t)len,
                     " preemption: not eligible due to preemptionPolicy=Never.");
        return;
    }
    memo_attempt = 0; /* victim selection filters modified views: no memos */
    int best_node = -1, best_nv = 0;
    int32_t best_maxprio = 0;
    int64_t best_sum = 0;
    struct kc_spod *vbuf[64];
    int unhelpful = 0, novictims = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (unresolvable(&fr[i])) {
            unhelpful++;
            continue;
        }
        int nv = select_victims(s, p, (struct kc_snode *)&s->nodes[i], vbuf, 64);
        if (nv < 0) {
            novictims++;
            continue;
        }
        int32_t maxprio = INT32_MIN;
        int64_t sum = 0;
        for (int k = 0; k < nv; k++) {
            if (vbuf[k]->priority > maxprio)
                maxprio = vbuf[k]->priority;
            sum += vbuf[k]->priority;
        }
        bool better = best_node < 0 || maxprio < best_maxprio || (maxprio == best_maxprio && sum < best_sum) ||
                      (maxprio == best_maxprio && sum == best_sum && nv < best_nv);
        if (better) {
            best_node = (int)i;
            best_nv = nv;
            best_maxprio = maxprio;
            best_sum = sum;
            memcpy(out->victims, vbuf, (size_t)nv * sizeof *vbuf);
            out->nvictims = nv;
        }
    }
    if (best_node >= 0) {
        out->nominated = best_node;
    } else if (len < (int)sizeof out->message) {
        len += snprintf(out->message + len, sizeof out->message - (size_t)len, " preemption: 0/%zu nodes are available: ",
                        s->n);
        /* the same "COUNT REASON" string order as the filter part (upstream builds a FitError here too) */
        struct reason_count pr[2];
        int npr = 0;
        if (novictims)
            pr[npr++] = (struct reason_count){"No preemption victims found for incoming pod", novictims};
        if (unhelpful)
            pr[npr++] = (struct reason_count){"Preemption is not helpful for scheduling", unhelpful};
        qsort(pr, (size_t)npr, sizeof *pr, cmp_reason);
        for (int i = 0; i < npr && len < (int)sizeof out->message; i++)
            len += snprintf(out->message + len, sizeof out->message - (size_t)len, "%s%d %s", i ? ", " : "", pr[i].n,
                            pr[i].reason);
        if (len < (int)sizeof out->message)
            snprintf(out->message + len, sizeof out->message - (size_t)len, ".");
    }
}

/* Memos live for one attempt: free them so nothing stays allocated between attempts or at exit. */
static void memo_reset(void)
{
    for (int i = 0; i < NMEMO; i++) {
        if (smemo[i].attempt)
            kc_map_release(&smemo[i].doms);
        smemo[i].attempt = 0;
        if (mmemo[i].attempt)
            kc_map_release(&mmemo[i].doms);
        mmemo[i].attempt = 0;
    }
    free(anti_recs);
    anti_recs = NULL;
    anti_n = anti_cap = 0;
    anti_attempt = 0;
    memo_attempt = 0;
}

void kc_schedule(const struct kc_snapshot *s, const struct kc_spod *p, unsigned *rr, struct kc_sched_result *out)
{
    schedule_impl(s, p, rr, out);
    memo_reset();
}
