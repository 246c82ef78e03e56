/* leaderelect.c — leader election on a coordination.k8s.io/v1 Lease (leaderelect.h), following
 * client-go's leaderelection.LeaderElector with a LeaseLock.
 *
 * Data structures: struct kc_le holds the configuration (strings copied), the last observed Lease
 * object (observed, with its resourceVersion) and the local time it was first seen in that version
 * (observed_time; expiry is measured from it), and the elector thread's state.
 *
 * Threads: one elector thread (kc_le_start). kc_le_try_acquire_or_renew and the observed state are
 * protected by mu so tests and kc_le_free may call in from other threads. The thread sleeps on a
 * condition variable (CLOCK_MONOTONIC) so kc_le_free wakes it at once.
 */
#include "client/leaderelect.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/events.h"
#include "util/timeutil.h"
#include "util/jsonparse.h"

#define MAX_NAME 253
#define MAX_IDENTITY 256
#define JITTER 1.2 /* client-go's JitterFactor for the acquire retry */

struct kc_le {
    struct kc_client *c;
    struct kc_le_config cfg;
    char ns[MAX_NAME + 1], name[MAX_NAME + 1], identity[MAX_IDENTITY], component[128];
    char path[600], coll[600];

    pthread_mutex_t mu;
    json_t *observed;     /* last Lease seen or written (owned) */
    double observed_time; /* cfg.now() when observed's resourceVersion was first seen */

    pthread_mutex_t wait_mu;
    pthread_cond_t wait_cv;
    bool stop;
    bool renew_quit;      /* the renewer of the current term must end (under wait_mu) */
    double last_renew;    /* start time of the last successful renewal (under wait_mu) */
    bool started;
    pthread_t th;
    atomic_bool leading;
    struct kc_recorder *rec;
};

static double real_now(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now(struct kc_le *le) { return le->cfg.now(le->cfg.clock_ctx); }

void kc_le_default_identity(char *buf, size_t n)
{
    char host[256] = "localhost";
    if (gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = 0;
    unsigned char u[16] = {0};
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, u, sizeof u) != (ssize_t)sizeof u) {
        /* no urandom: time and pid still tell two candidates apart */
        uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)buf;
        memcpy(u, &x, sizeof x);
    }
    if (fd >= 0)
        close(fd);
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40); /* version 4 */
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80); /* variant */
    snprintf(buf, n, "%.200s_%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", host, u[0], u[1],
             u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

/* MicroTime as the API server writes it: 2006-01-02T15:04:05.000000Z */
static void micro_time(double t, char *out, size_t n)
{
    time_t s = (time_t)t;
    long us = (long)((t - (double)s) * 1e6);
    if (us < 0)
        us = 0;
    if (us > 999999)
        us = 999999;
    struct tm tm;
    gmtime_r(&s, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%s.%06ldZ", base, us);
}

/* Applies the defaults, then client-go's NewLeaderElector checks. */
static int check_durations(double *lease, double *renew, double *retry, struct kc_err *err)
{
    if (*lease <= 0)
        *lease = 15;
    if (*renew <= 0)
        *renew = 10;
    if (*retry <= 0)
        *retry = 2;
    if (*lease <= *renew)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest",
                          "leader election: lease duration (%gs) must be greater than the renew deadline (%gs)", *lease,
                          *renew);
    if (*renew <= JITTER * *retry)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest",
                          "leader election: renew deadline (%gs) must be greater than 1.2 x retry period (%gs)", *renew,
                          *retry);
    return 0;
}

int kc_le_flags_check(const struct kc_le_flags *f, struct kc_err *err)
{
    double l = f->lease_duration_s, r = f->renew_deadline_s, p = f->retry_period_s;
    return check_durations(&l, &r, &p, err);
}

int kc_le_new(struct kc_client *c, const struct kc_le_config *cfg, struct kc_le **out, struct kc_err *err)
{
    if (!c || !cfg || !cfg->lease_namespace || !cfg->lease_name || !*cfg->lease_namespace || !*cfg->lease_name ||
        strlen(cfg->lease_namespace) > MAX_NAME || strlen(cfg->lease_name) > MAX_NAME)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "leader election: lease namespace and name required");
    struct kc_le_config k = *cfg;
    int rc = check_durations(&k.lease_duration_s, &k.renew_deadline_s, &k.retry_period_s, err);
    if (rc)
        return rc;
    if (cfg->identity && (!*cfg->identity || strlen(cfg->identity) >= MAX_IDENTITY))
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "leader election: identity empty or too long");
    if (!k.now)
        k.now = real_now;
    struct kc_le *le = calloc(1, sizeof *le);
    if (!le)
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    le->c = c;
    snprintf(le->ns, sizeof le->ns, "%s", cfg->lease_namespace);
    snprintf(le->name, sizeof le->name, "%s", cfg->lease_name);
    if (cfg->identity)
        snprintf(le->identity, sizeof le->identity, "%s", cfg->identity);
    else
        kc_le_default_identity(le->identity, sizeof le->identity);
    snprintf(le->component, sizeof le->component, "%s", cfg->component ? cfg->component : "");
    k.lease_namespace = le->ns;
    k.lease_name = le->name;
    k.identity = le->identity;
    k.component = le->component;
    le->cfg = k;
    kc_path(le->path, sizeof le->path, "coordination.k8s.io", "v1", "leases", le->ns, le->name, NULL);
    kc_path(le->coll, sizeof le->coll, "coordination.k8s.io", "v1", "leases", le->ns, NULL, NULL);
    pthread_mutex_init(&le->mu, NULL);
    pthread_mutex_init(&le->wait_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&le->wait_cv, &ca);
    pthread_condattr_destroy(&ca);
    *out = le;
    return 0;
}

const char *kc_le_identity(const struct kc_le *le) { return le->identity; }
bool kc_le_is_leader(struct kc_le *le) { return atomic_load(&le->leading); }

static const char *spec_str(json_t *lease, const char *f)
{
    return json_string_value(json_object_get(json_object_get(lease, "spec"), f));
}

static const char *rv_of(json_t *lease)
{
    return json_string_value(json_object_get(json_object_get(lease, "metadata"), "resourceVersion"));
}

void kc_le_observed_holder(struct kc_le *le, char *buf, size_t n)
{
    pthread_mutex_lock(&le->mu);
    const char *h = le->observed ? spec_str(le->observed, "holderIdentity") : NULL;
    snprintf(buf, n, "%s", h ? h : "");
    pthread_mutex_unlock(&le->mu);
}

/* Remembers lease (takes the reference); a new resourceVersion restarts the expiry clock. */
static void observe(struct kc_le *le, json_t *lease, double t)
{
    const char *old = le->observed ? rv_of(le->observed) : NULL, *nw = rv_of(lease);
    if (!old || !nw || strcmp(old, nw))
        le->observed_time = t;
    json_decref(le->observed);
    le->observed = lease;
}

/* The spec we write: holder, duration, times, transitions. */
static json_t *record(struct kc_le *le, const char *holder, int duration, const char *acquire, const char *renew,
                      json_int_t transitions)
{
    (void)le;
    return json_pack("{s:s, s:I, s:s, s:s, s:I}", "holderIdentity", holder, "leaseDurationSeconds",
                     (json_int_t)duration, "acquireTime", acquire, "renewTime", renew, "leaseTransitions",
                     transitions);
}

static int create_lease(struct kc_le *le, double t, struct kc_err *err)
{
    char ts[40];
    micro_time(t, ts, sizeof ts);
    json_t *spec = record(le, le->identity, (int)(le->cfg.lease_duration_s + 0.5), ts, ts, 0);
    json_t *obj = json_pack("{s:s, s:s, s:{s:s, s:s}, s:o}", "apiVersion", "coordination.k8s.io/v1", "kind", "Lease",
                            "metadata", "name", le->name, "namespace", le->ns, "spec", spec);
    if (!obj)
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    json_t *got = NULL;
    int rc = kc_client_create(le->c, le->coll, obj, &got, err);
    json_decref(obj);
    if (rc == KC_EEXISTS) /* another candidate created it first */
        return 0;
    if (rc)
        return rc;
    observe(le, got, t);
    return 1;
}

/* Writes base (the Lease as read: its resourceVersion makes the update a CAS) with spec (stolen). */
static int put_record(struct kc_le *le, json_t *base, json_t *spec, json_t **got, struct kc_err *err)
{
    json_t *upd = kc_json_copy(base);
    if (!upd || !spec) {
        json_decref(upd);
        json_decref(spec);
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    }
    json_object_set_new(upd, "spec", spec);
    int rc = kc_client_update(le->c, le->path, upd, got, err);
    json_decref(upd);
    return rc;
}

int kc_le_try_acquire_or_renew(struct kc_le *le, struct kc_err *err)
{
    pthread_mutex_lock(&le->mu);
    double t = now(le);
    json_t *cur = NULL;
    int rc = kc_client_get(le->c, le->path, &cur, err);
    if (rc == KC_ENOTFOUND) {
        rc = create_lease(le, t, err);
        pthread_mutex_unlock(&le->mu);
        return rc;
    }
    if (rc) {
        pthread_mutex_unlock(&le->mu);
        return rc;
    }
    observe(le, cur, t);
    const char *holder = spec_str(cur, "holderIdentity");
    bool mine = holder && !strcmp(holder, le->identity);
    if (holder && *holder && !mine && le->observed_time + le->cfg.lease_duration_s > t) {
        pthread_mutex_unlock(&le->mu);
        return 0; /* someone else's lease is still valid */
    }
    char ts[40];
    micro_time(t, ts, sizeof ts);
    json_t *spec = json_object_get(cur, "spec");
    json_int_t trans = json_integer_value(json_object_get(spec, "leaseTransitions"));
    const char *acq = spec_str(cur, "acquireTime");
    json_t *nspec = record(le, le->identity, (int)(le->cfg.lease_duration_s + 0.5), mine && acq ? acq : ts, ts,
                           mine ? trans : trans + 1);
    json_t *got = NULL;
    rc = put_record(le, cur, nspec, &got, err);
    if (rc == KC_ENOMEM) {
        pthread_mutex_unlock(&le->mu);
        return rc;
    }
    if (rc == KC_ECONFLICT || rc == KC_ENOTFOUND) {
        pthread_mutex_unlock(&le->mu);
        return 0; /* another candidate wrote first; the next attempt reads its record */
    }
    if (rc) {
        pthread_mutex_unlock(&le->mu);
        return rc;
    }
    observe(le, got, t);
    pthread_mutex_unlock(&le->mu);
    return 1;
}

int kc_le_release(struct kc_le *le, struct kc_err *err)
{
    pthread_mutex_lock(&le->mu);
    const char *holder = le->observed ? spec_str(le->observed, "holderIdentity") : NULL;
    if (!holder || strcmp(holder, le->identity)) {
        pthread_mutex_unlock(&le->mu);
        return 0;
    }
    char ts[40];
    micro_time(now(le), ts, sizeof ts);
    json_int_t trans = json_integer_value(json_object_get(json_object_get(le->observed, "spec"), "leaseTransitions"));
    json_t *got = NULL;
    int rc = put_record(le, le->observed, record(le, "", 1, ts, ts, trans), &got, err);
    if (rc == 0)
        observe(le, got, now(le));
    pthread_mutex_unlock(&le->mu);
    return rc == KC_ECONFLICT ? 0 : rc; /* conflict: someone else holds it already */
}

/* ---------- the elector thread ---------- */

/* Sleeps up to s seconds on wait_cv; true if the thread must end: kc_le_free asked it to, or (for
 * the renewer, renewer true) the term is over. */
static bool wait_or_end(struct kc_le *le, double s, bool renewer)
{
    struct timespec ts = kc_deadline(CLOCK_MONOTONIC, s);
    pthread_mutex_lock(&le->wait_mu);
    while (!le->stop && !(renewer && le->renew_quit) &&
           pthread_cond_timedwait(&le->wait_cv, &le->wait_mu, &ts) != ETIMEDOUT) {
    }
    bool end = le->stop || (renewer && le->renew_quit);
    pthread_mutex_unlock(&le->wait_mu);
    return end;
}

static bool sleep_or_stop(struct kc_le *le, double s) { return wait_or_end(le, s, false); }

static bool stopping(struct kc_le *le)
{
    pthread_mutex_lock(&le->wait_mu);
    bool s = le->stop;
    pthread_mutex_unlock(&le->wait_mu);
    return s;
}

static void became_leader_event(struct kc_le *le)
{
    if (!le->rec)
        return;
    pthread_mutex_lock(&le->mu);
    json_t *lease = json_incref(le->observed);
    pthread_mutex_unlock(&le->mu);
    if (lease)
        kc_recorder_event(le->rec, lease, "Normal", "LeaderElection", "%s became leader", le->identity);
    json_decref(lease);
}

static bool renewer_sleep(struct kc_le *le, double s) { return wait_or_end(le, s, true); }

/* The renewer of one term: renews every retry period and records when the last successful renewal
 * STARTED (the record it wrote is at least that fresh). A request may hang (an etcd leader change
 * holds writes for seconds); that is why the deadline is watched by the elector thread, not here. */
static void *renewer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "kc-lease-renew");
    struct kc_le *le = arg;
    while (!renewer_sleep(le, le->cfg.retry_period_s)) {
        struct kc_err err = {0};
        double t = now(le);
        if (kc_le_try_acquire_or_renew(le, &err) != 1)
            continue;
        pthread_mutex_lock(&le->wait_mu);
        if (t > le->last_renew)
            le->last_renew = t;
        pthread_mutex_unlock(&le->wait_mu);
    }
    return NULL;
}

/* Leading: a renewer thread renews; this thread returns as soon as no renewal has succeeded for
 * renew_deadline (lost: even while a renewal request is still hanging, as client-go cancels it with
 * its context), or on kc_le_free. *renewer is left for the caller to join AFTER on_stopped_leading,
 * so a hanging request never delays stopping. t_acquired: start of the winning attempt. */
static int lead(struct kc_le *le, double t_acquired, pthread_t *renewer)
{
    pthread_mutex_lock(&le->wait_mu);
    le->renew_quit = false;
    le->last_renew = t_acquired;
    pthread_mutex_unlock(&le->wait_mu);
    if (pthread_create(renewer, NULL, renewer_main, le))
        return -1;
    pthread_mutex_lock(&le->wait_mu);
    for (;;) {
        double left = le->last_renew + le->cfg.renew_deadline_s - now(le);
        if (le->stop || left <= 0)
            break;
        struct timespec ts = kc_deadline(CLOCK_MONOTONIC, left < 0.05 ? left : 0.05);
        pthread_cond_timedwait(&le->wait_cv, &le->wait_mu, &ts);
    }
    le->renew_quit = true;
    pthread_cond_broadcast(&le->wait_cv);
    pthread_mutex_unlock(&le->wait_mu);
    return 0;
}

static void *elector_main(void *arg)
{
    pthread_setname_np(pthread_self(), "kc-elector");
    struct kc_le *le = arg;
    unsigned seed = (unsigned)(uintptr_t)le ^ (unsigned)time(NULL);
    while (!stopping(le)) {
        struct kc_err err = {0};
        double t = now(le);
        if (kc_le_try_acquire_or_renew(le, &err) == 1 && !stopping(le)) {
            atomic_store(&le->leading, true);
            became_leader_event(le);
            pthread_t renewer;
            if (le->cfg.on_started_leading && le->cfg.on_started_leading(le->cfg.ctx)) {
                atomic_store(&le->leading, false); /* could not start: let another candidate have it */
                kc_le_release(le, &err);
            } else if (lead(le, t, &renewer)) {
                atomic_store(&le->leading, false);
                if (le->cfg.on_stopped_leading)
                    le->cfg.on_stopped_leading(le->cfg.ctx);
                kc_le_release(le, &err);
            } else {
                atomic_store(&le->leading, false);
                if (le->cfg.on_stopped_leading)
                    le->cfg.on_stopped_leading(le->cfg.ctx);
                pthread_join(renewer, NULL); /* may wait for a hanging request; we act no more */
                if (stopping(le))
                    break;
            }
        }
        double jitter = 1.0 + (JITTER - 1.0) * ((double)rand_r(&seed) / RAND_MAX);
        if (sleep_or_stop(le, le->cfg.retry_period_s * jitter))
            break;
    }
    return NULL;
}

int kc_le_start(struct kc_le *le, struct kc_err *err)
{
    if (le->started)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "leader election already started");
    if (le->component[0])
        le->rec = kc_recorder_new(le->c, le->component, NULL);
    if (pthread_create(&le->th, NULL, elector_main, le)) {
        kc_recorder_free(le->rec);
        le->rec = NULL;
        return kc_err_set(err, KC_EIO, 500, "InternalError", "cannot start the leader election thread");
    }
    le->started = true;
    return 0;
}

void kc_le_free(struct kc_le *le)
{
    if (!le)
        return;
    if (le->started) {
        pthread_mutex_lock(&le->wait_mu);
        le->stop = true;
        pthread_cond_broadcast(&le->wait_cv);
        pthread_mutex_unlock(&le->wait_mu);
        pthread_join(le->th, NULL); /* the thread calls on_stopped_leading if it was leading */
        struct kc_err err = {0};
        kc_le_release(le, &err); /* the next candidate need not wait for the lease to expire */
    }
    if (le->rec)
        kc_recorder_free(le->rec);
    json_decref(le->observed);
    pthread_cond_destroy(&le->wait_cv);
    pthread_mutex_destroy(&le->wait_mu);
    pthread_mutex_destroy(&le->mu);
    free(le);
}

/* ---------- flags ---------- */

static int parse_bool(const char *v, int *out)
{
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "t") || !strcmp(v, "True") || !strcmp(v, "TRUE"))
        *out = 1;
    else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "f") || !strcmp(v, "False") ||
             !strcmp(v, "FALSE"))
        *out = 0;
    else
        return -1;
    return 0;
}

int kc_le_parse_flag(int argc, char **argv, int *i, struct kc_le_flags *f, struct kc_err *err)
{
    static const struct {
        const char *name;
        size_t off;
    } durs[] = {
        {"--leader-elect-lease-duration", offsetof(struct kc_le_flags, lease_duration_s)},
        {"--leader-elect-renew-deadline", offsetof(struct kc_le_flags, renew_deadline_s)},
        {"--leader-elect-retry-period", offsetof(struct kc_le_flags, retry_period_s)},
    };
    const char *a = argv[*i];
    if (!strcmp(a, "--leader-elect")) {
        f->enabled = 1; /* a bare boolean flag never takes the next argument (as Go's flag package) */
        return 1;
    }
    if (!strncmp(a, "--leader-elect=", 15)) {
        if (parse_bool(a + 15, &f->enabled))
            return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "--leader-elect: invalid boolean \"%.100s\"", a + 15);
        return 1;
    }
    for (size_t k = 0; k < sizeof durs / sizeof durs[0]; k++) {
        size_t n = strlen(durs[k].name);
        if (strncmp(a, durs[k].name, n) || (a[n] && a[n] != '='))
            continue;
        const char *v = a[n] == '=' ? a + n + 1 : (*i + 1 < argc ? argv[++*i] : NULL);
        double d = 0;
        if (!v || kc_parse_duration(v, &d) || d <= 0)
            return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "%s: expected a duration like 15s, got \"%.100s\"",
                              durs[k].name, v ? v : "");
        *(double *)((char *)f + durs[k].off) = d;
        return 1;
    }
    return 0;
}
