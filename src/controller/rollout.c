/* rollout.c — Deployment rollout arithmetic (see rollout.h): fenceposts, new-RS scale-up, old-RS
 * scale-down, proportional scaling, revisions, the pod-template hash and template equality.
 *
 * Pure functions over plain structs and immutable JSON; no threads, no globals. Sorting is done on
 * small index arrays (a Deployment has at most a few dozen ReplicaSets), so callers' arrays keep
 * their order and results come back in rs[i].size.
 */
#include "controller/rollout.h"
#include "util/jsonparse.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- int-or-percent and fenceposts ---------- */

int kc_ro_intstr(json_t *v, int total, bool round_up, int *out, struct kc_err *err)
{
    *out = 0;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x < INT_MIN || x > INT_MAX)
            return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "invalid value for IntOrString: out of range");
        *out = (int)x;
        return 0;
    }
    const char *s = json_string_value(v);
    size_t len = s ? strlen(s) : 0;
    if (!s || len < 2 || s[len - 1] != '%')
        return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "invalid value for IntOrString: invalid type: string is not a percentage");
    char *end;
    errno = 0;
    long p = strtol(s, &end, 10);
    if (errno || end != s + len - 1 || p < INT_MIN / 1000 || p > INT_MAX / 1000)
        return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "invalid value for IntOrString: invalid value %s", s);
    /* math.Ceil / math.Floor of p*total/100, done exactly in integers. */
    long long num = (long long)p * total;
    long long q = num / 100; /* truncates toward zero */
    if (num % 100 != 0 && round_up && num > 0)
        q++;
    else if (num % 100 != 0 && !round_up && num < 0)
        q--;
    *out = (int)q;
    return 0;
}

int kc_ro_fenceposts(json_t *max_surge, json_t *max_unavail, int desired, int *surge, int *unavail,
                     struct kc_err *err)
{
    int rc = kc_ro_intstr(max_surge, desired, true, surge, err);
    if (!rc)
        rc = kc_ro_intstr(max_unavail, desired, false, unavail, err);
    if (rc)
        return rc;
    /* Rounding down may make both zero; then allow one unavailable (surge might be blocked by quota). */
    if (*surge == 0 && *unavail == 0)
        *unavail = 1;
    return 0;
}

int kc_ro_deploy_from_json(json_t *deploy, struct kc_ro_deploy *d, struct kc_err *err)
{
    memset(d, 0, sizeof *d);
    json_t *spec = json_object_get(deploy, "spec");
    json_t *r = json_object_get(spec, "replicas");
    d->replicas = r ? (int)json_integer_value(r) : 1;
    json_t *strat = json_object_get(spec, "strategy");
    const char *type = json_string_value(json_object_get(strat, "type"));
    d->rolling = !type || !strcmp(type, "RollingUpdate");
    d->status_replicas = (int)json_integer_value(json_object_get(json_object_get(deploy, "status"), "replicas"));
    if (!d->rolling)
        return 0;
    json_t *ru = json_object_get(strat, "rollingUpdate");
    json_t *ms = json_object_get(ru, "maxSurge"), *mu = json_object_get(ru, "maxUnavailable");
    json_t *def = json_string("25%");
    int rc = kc_ro_fenceposts(ms ? ms : def, mu ? mu : def, d->replicas, &d->surge, &d->unavail, err);
    json_decref(def);
    return rc;
}

int kc_ro_max_surge(const struct kc_ro_deploy *d)
{
    return d->rolling ? d->surge : 0;
}

int kc_ro_max_unavailable(const struct kc_ro_deploy *d)
{
    if (!d->rolling || d->replicas == 0)
        return 0;
    return d->unavail > d->replicas ? d->replicas : d->unavail;
}

int kc_ro_min_available(const struct kc_ro_deploy *d)
{
    return d->rolling ? d->replicas - kc_ro_max_unavailable(d) : 0;
}

/* ---------- rolling update steps ---------- */

int kc_ro_new_rs_replicas(const struct kc_ro_deploy *d, int all_replicas, int new_rs_replicas)
{
    if (!d->rolling)
        return d->replicas;
    int max_total = d->replicas + d->surge;
    if (all_replicas >= max_total)
        return new_rs_replicas;
    int up = max_total - all_replicas;
    if (up > d->replicas - new_rs_replicas)
        up = d->replicas - new_rs_replicas;
    return new_rs_replicas + up;
}

int kc_ro_max_scaled_down(const struct kc_ro_deploy *d, int all_replicas, int new_rs_replicas,
                          int new_rs_available)
{
    int min_avail = d->replicas - kc_ro_max_unavailable(d);
    return all_replicas - min_avail - (new_rs_replicas - new_rs_available);
}

/* Index sorting: qsort_r is not portable C11, so a small insertion sort over indexes. */
typedef bool (*rs_less_fn)(const struct kc_ro_rs *a, const struct kc_ro_rs *b);

static bool by_creation(const struct kc_ro_rs *a, const struct kc_ro_rs *b)
{
    if (a->created != b->created)
        return a->created < b->created;
    return strcmp(a->name ? a->name : "", b->name ? b->name : "") < 0;
}

static bool by_size_newer(const struct kc_ro_rs *a, const struct kc_ro_rs *b)
{
    if (a->replicas == b->replicas)
        return by_creation(b, a);
    return a->replicas > b->replicas;
}

static bool by_size_older(const struct kc_ro_rs *a, const struct kc_ro_rs *b)
{
    if (a->replicas == b->replicas)
        return by_creation(a, b);
    return a->replicas > b->replicas;
}

static size_t *sorted_idx(const struct kc_ro_rs *rs, size_t n, rs_less_fn less)
{
    size_t *ix = malloc((n ? n : 1) * sizeof *ix);
    if (!ix)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        while (j > 0 && less(&rs[i], &rs[ix[j - 1]])) {
            ix[j] = ix[j - 1];
            j--;
        }
        ix[j] = i;
    }
    return ix;
}

int kc_ro_cleanup_unhealthy(struct kc_ro_rs *rs, size_t n, int max_cleanup)
{
    for (size_t i = 0; i < n; i++)
        rs[i].size = rs[i].replicas;
    size_t *ix = sorted_idx(rs, n, by_creation);
    if (!ix)
        return 0;
    int total = 0;
    for (size_t k = 0; k < n && total < max_cleanup; k++) {
        struct kc_ro_rs *r = &rs[ix[k]];
        if (r->replicas == 0 || r->replicas == r->available)
            continue;
        int down = r->replicas - r->available;
        if (down > max_cleanup - total)
            down = max_cleanup - total;
        if (down < 0)
            down = 0;
        r->size = r->replicas - down;
        total += down;
    }
    free(ix);
    return total;
}

int kc_ro_scale_down_old(const struct kc_ro_deploy *d, struct kc_ro_rs *rs, size_t n, int available_all)
{
    for (size_t i = 0; i < n; i++)
        rs[i].size = rs[i].replicas;
    int min_avail = d->replicas - kc_ro_max_unavailable(d);
    if (available_all <= min_avail)
        return 0;
    size_t *ix = sorted_idx(rs, n, by_creation);
    if (!ix)
        return 0;
    int budget = available_all - min_avail, total = 0;
    for (size_t k = 0; k < n && total < budget; k++) {
        struct kc_ro_rs *r = &rs[ix[k]];
        if (r->replicas == 0)
            continue;
        int down = r->replicas < budget - total ? r->replicas : budget - total;
        r->size = r->replicas - down;
        total += down;
    }
    free(ix);
    return total;
}

/* ---------- proportional scaling ---------- */

/* integer.RoundToInt32: half away from zero. */
static int round_half_away(double x)
{
    return x < 0 ? (int)(x - 0.5) : (int)(x + 0.5);
}

int kc_ro_fraction(const struct kc_ro_deploy *d, const struct kc_ro_rs *rs)
{
    if (d->replicas == 0)
        return -rs->replicas;
    int deploy_replicas = d->replicas + kc_ro_max_surge(d);
    int annotated = rs->max_replicas >= 0 ? rs->max_replicas : d->status_replicas;
    if (annotated <= 0)
        return 0; /* upstream never scales from zero; avoid the division */
    double size = (double)rs->replicas * (double)deploy_replicas / (double)annotated;
    return round_half_away(size) - rs->replicas;
}

int kc_ro_proportion(const struct kc_ro_deploy *d, const struct kc_ro_rs *rs, int to_add, int added)
{
    if (!rs || rs->replicas == 0 || to_add == 0 || to_add == added)
        return 0;
    int frac = kc_ro_fraction(d, rs);
    int allowed = to_add - added;
    if (to_add > 0)
        return frac < allowed ? frac : allowed;
    return frac > allowed ? frac : allowed;
}

int kc_ro_proportional(const struct kc_ro_deploy *d, struct kc_ro_rs *rs, size_t n)
{
    int sum = 0;
    for (size_t i = 0; i < n; i++) {
        rs[i].size = rs[i].replicas;
        sum += rs[i].replicas;
    }
    int allowed = d->replicas > 0 ? d->replicas + kc_ro_max_surge(d) : 0;
    int to_add = allowed - sum;
    if (to_add == 0 || n == 0)
        return 0;
    size_t *ix = sorted_idx(rs, n, to_add > 0 ? by_size_newer : by_size_older);
    if (!ix)
        return 0;
    int added = 0;
    for (size_t k = 0; k < n; k++) {
        struct kc_ro_rs *r = &rs[ix[k]];
        int p = kc_ro_proportion(d, r, to_add, added);
        r->size = r->replicas + p;
        added += p;
    }
    /* Whatever rounding left over goes to the first (largest) replica set. */
    struct kc_ro_rs *first = &rs[ix[0]];
    first->size += to_add - added;
    if (first->size < 0)
        first->size = 0;
    free(ix);
    return to_add > 0 ? 1 : -1;
}

/* ---------- revisions ---------- */

int64_t kc_ro_max_revision(const struct kc_ro_rs *rs, size_t n)
{
    int64_t max = 0;
    for (size_t i = 0; i < n; i++)
        if (rs[i].revision > max)
            max = rs[i].revision;
    return max;
}

int64_t kc_ro_last_revision(const struct kc_ro_rs *rs, size_t n)
{
    int64_t max = 0, second = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t v = rs[i].revision;
        if (v >= max) {
            second = max;
            max = v;
        } else if (v > second) {
            second = v;
        }
    }
    return second;
}

int kc_ro_revision_history(const char *hist, const char *old_rev, size_t limit, char *out, size_t n)
{
    if (!hist || !*hist || *hist == ',') {
        /* upstream: an empty first element means "no history yet" */
        if (strlen(old_rev) + 1 > n)
            return KC_ETOOLARGE;
        snprintf(out, n, "%s", old_rev);
        return 0;
    }
    size_t total = strlen(hist) + strlen(old_rev) + 1;
    const char *start = hist;
    /* Drop the oldest entries while over the limit. */
    while (total > limit && start) {
        const char *comma = strchr(start, ',');
        size_t elen = comma ? (size_t)(comma - start) : strlen(start);
        total -= elen + 1;
        start = comma ? comma + 1 : NULL;
    }
    if (total > limit)
        return KC_ETOOLARGE;
    int w = start && *start ? snprintf(out, n, "%s,%s", start, old_rev) : snprintf(out, n, "%s", old_rev);
    return w < 0 || (size_t)w >= n ? KC_ETOOLARGE : 0;
}

/* ---------- hash and equality ---------- */

uint32_t kc_ro_fnv32a(const void *p, size_t n, uint32_t h)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 16777619u;
    }
    return h;
}

void kc_ro_safe_encode(const char *in, char *out, size_t n)
{
    static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
    size_t i = 0;
    for (; in[i] && i + 1 < n; i++)
        out[i] = alphabet[(unsigned char)in[i] % (sizeof alphabet - 1)];
    if (n)
        out[i] = '\0';
}

static void drop_hash_label(json_t *tmpl)
{
    json_t *labels = json_object_get(json_object_get(tmpl, "metadata"), "labels");
    if (json_is_object(labels))
        json_object_del(labels, KC_RO_HASH_LABEL);
}

int kc_ro_template_hash(json_t *tmpl, int64_t collision_count, char *out, size_t n)
{
    json_t *c = kc_json_copy(tmpl ? tmpl : json_null());
    if (!c)
        return KC_ENOMEM;
    drop_hash_label(c);
    char *s = json_dumps(c, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(c);
    if (!s)
        return KC_ENOMEM;
    uint32_t h = kc_ro_fnv32a(s, strlen(s), 2166136261u);
    free(s);
    if (collision_count >= 0) {
        uint32_t cc = (uint32_t)collision_count;
        unsigned char b[8] = {cc & 0xff, (cc >> 8) & 0xff, (cc >> 16) & 0xff, (cc >> 24) & 0xff, 0, 0, 0, 0};
        h = kc_ro_fnv32a(b, sizeof b, h);
    }
    char dec[16];
    snprintf(dec, sizeof dec, "%u", h);
    kc_ro_safe_encode(dec, out, n);
    return 0;
}

/* Removes nulls, empty objects and empty arrays recursively (semantic equality treats nil and
 * empty alike). Returns true if v itself became empty. */
static bool prune_empty(json_t *v)
{
    if (json_is_null(v))
        return true;
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        void *tmp;
        json_object_foreach_safe(v, tmp, k, x) {
            if (prune_empty(x))
                json_object_del(v, k);
        }
        return json_object_size(v) == 0;
    }
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            prune_empty(json_array_get(v, i));
        return json_array_size(v) == 0;
    }
    return false;
}

bool kc_ro_template_equal(json_t *a, json_t *b)
{
    json_t *ca = kc_json_copy(a ? a : json_null()), *cb = kc_json_copy(b ? b : json_null());
    bool eq = false;
    if (ca && cb) {
        drop_hash_label(ca);
        drop_hash_label(cb);
        prune_empty(ca);
        prune_empty(cb);
        eq = json_equal(ca, cb);
    }
    json_decref(ca);
    json_decref(cb);
    return eq;
}
