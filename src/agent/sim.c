/* sim.c — the `sim` container runtime: virtual containers on virtual nodes, like KWOK, but driven
 * through the same runtime interface (runtime.h) and pod state machine as real containers.
 *
 * Nothing runs: a container is a record of times. Delays are modelled by "done at" deadlines, so an
 * operation in progress answers wait_ms = deadline - now and never sleeps; a crashing container
 * carries an exit time that container_status compares with the clock.
 *
 * Data structures (all behind one mutex; the sim is cheap enough that contention does not matter):
 *   ctrs      id → struct sim_ctr            (containers)
 *   sandboxes pod uid → struct sim_sandbox   (pod IP, node)
 *   pulls     "<uid>|<image>" → done-at ms   (pulls in progress)
 *   images    "<node>|<image>" → (present)   (what each node holds, for IfNotPresent)
 *   nodes     node → index+1                 (for pod IPs 10.42.<index>.<n>)
 * Profiles are a table (sim_profiles); per-pod annotations override them.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/runtime.h"
#include "util/timeutil.h"
#include "util/map.h"

struct sim_profile {
    const char *name;
    int pull_min_ms, pull_max_ms;   /* image pull time */
    int start_min_ms, start_max_ms; /* create+start time */
    int init_run_ms;                /* how long an init container runs before exiting 0 */
    int crash_after_ms;             /* 0 = containers run forever */
    bool fail_pull;
};

static const struct sim_profile sim_profiles[] = {
    {"fast", 0, 0, 0, 0, 0, 0, false},
    {"realistic", 200, 800, 50, 200, 200, 0, false},
    {"image-pull-fail", 0, 0, 0, 0, 0, 0, true},
    {"crashloop", 0, 0, 0, 0, 0, 1000, false},
};

struct sim_ctr {
    char node[256];
    bool init;
    int64_t start_done_ms; /* start completes at (0 = not started yet) */
    int64_t started_ms;
    int64_t exit_ms;       /* 0 = never exits on its own */
    int exit_code;
    int64_t finished_ms;   /* set once exited */
    int64_t start_delay_ms;
};

struct sim_sandbox {
    char ip[48];
};

struct sim {
    const struct sim_profile *p;
    kc_clock_fn clock;
    void *clock_ctx;
    pthread_mutex_t mu;
    struct kc_map ctrs, sandboxes, pulls, images, nodes, ipnext;
    unsigned seed;
    unsigned long idseq;
};

int64_t kc_clock_real(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_ms(struct sim *s) { return s->clock(s->clock_ctx); }

/* Uniform in [lo, hi]; caller holds mu. */
static int jitter(struct sim *s, int lo, int hi)
{
    if (hi <= lo)
        return lo;
    return lo + (int)(rand_r(&s->seed) % (unsigned)(hi - lo + 1));
}

static const char *pod_ann(json_t *pod, const char *key)
{
    return json_string_value(json_object_get(json_object_get(json_object_get(pod, "metadata"), "annotations"), key));
}

static bool ann_fail_is(json_t *pod, const char *what)
{
    const char *v = pod_ann(pod, KC_SIM_ANN_FAIL);
    return v && !strcmp(v, what);
}

/* 64 hex characters derived from a string (FNV-1a rounds): stable fake digests and ids. */
static void fake_hex(const char *s, unsigned long salt, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (int r = 0; r < 4; r++) {
        unsigned long long h = 1469598103934665603ULL ^ ((unsigned long long)salt * 1099511628211ULL) ^ (unsigned)r;
        for (const char *p = s; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        for (int i = 0; i < 16; i++)
            out[r * 16 + i] = hx[(h >> (i * 4)) & 15];
    }
    out[64] = 0;
}

/* Canonical image id as containerd reports it: docker.io/library/nginx@sha256:… */
static void image_id_of(const char *image, struct kc_rt_image *out)
{
    char hex[65], repo[160];
    fake_hex(image, 7, hex);
    snprintf(repo, sizeof repo, "%.150s", image);
    char *at = strchr(repo, '@');
    if (at)
        *at = 0;
    char *colon = strrchr(repo, ':');
    if (colon && !strchr(colon, '/'))
        *colon = 0;
    const char *slash = strchr(repo, '/');
    bool has_host = slash && (memchr(repo, '.', (size_t)(slash - repo)) || memchr(repo, ':', (size_t)(slash - repo)) ||
                              !strncmp(repo, "localhost/", 10));
    if (has_host)
        snprintf(out->image_id, sizeof out->image_id, "%s@sha256:%s", repo, hex);
    else if (slash)
        snprintf(out->image_id, sizeof out->image_id, "docker.io/%s@sha256:%s", repo, hex);
    else
        snprintf(out->image_id, sizeof out->image_id, "docker.io/library/%s@sha256:%s", repo, hex);
    out->size_bytes = 10000000 + (int64_t)(strtoull(hex + 48, NULL, 16) % 190000000ULL);
}

static int sim_run_sandbox(void *rt, json_t *pod, const char *node, char *ip, size_t ipn, int *wait_ms,
                           struct kc_err *err)
{
    struct sim *s = rt;
    const char *uid = json_string_value(json_object_get(json_object_get(pod, "metadata"), "uid")) ?: "";
    *wait_ms = 0;
    pthread_mutex_lock(&s->mu);
    struct sim_sandbox *sb = kc_map_get(&s->sandboxes, uid);
    if (!sb) {
        sb = calloc(1, sizeof *sb);
        int perr = 0;
        if (sb)
            kc_map_put(&s->sandboxes, uid, sb, &perr);
        if (!sb || perr) {
            free(sb);
            pthread_mutex_unlock(&s->mu);
            return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "sim: out of memory");
        }
        long idx = (long)(intptr_t)kc_map_get(&s->nodes, node) - 1;
        if (idx < 0)
            idx = 0;
        long n = (long)(intptr_t)kc_map_get(&s->ipnext, node);
        kc_map_put(&s->ipnext, node, (void *)(intptr_t)(n + 1), &perr);
        /* .2 … .254 per node, then wrap into the next /24 of the same node block */
        snprintf(sb->ip, sizeof sb->ip, "10.%ld.%ld.%ld", 42 + (n / 253) % 200, idx % 256, 2 + n % 253);
    }
    snprintf(ip, ipn, "%s", sb->ip);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static int sim_remove_sandbox(void *rt, const char *pod_uid, struct kc_err *err)
{
    (void)err;
    struct sim *s = rt;
    pthread_mutex_lock(&s->mu);
    free(kc_map_del(&s->sandboxes, pod_uid));
    /* containers of the pod: ids start with the pod uid's hash, but a scan is simpler and rare */
    char prefix[80];
    snprintf(prefix, sizeof prefix, "%.60s|", pod_uid);
    const char *k;
    void *v;
    for (long i = kc_map_next(&s->pulls, 0, &k, &v); i >= 0; i = kc_map_next(&s->pulls, i + 1, &k, &v))
        if (!strncmp(k, prefix, strlen(prefix)))
            kc_map_del(&s->pulls, k);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static bool sim_image_present(void *rt, const struct kc_rt_container *c, struct kc_rt_image *out)
{
    struct sim *s = rt;
    if (ann_fail_is(c->pod, "image-pull")) /* injected failure: the image never counts as present */
        return false;
    const char *image = c->image;
    char key[800];
    snprintf(key, sizeof key, "%.255s|%.500s", c->node, image);
    pthread_mutex_lock(&s->mu);
    bool have = kc_map_get(&s->images, key) != NULL;
    pthread_mutex_unlock(&s->mu);
    if (have && out)
        image_id_of(image, out);
    return have;
}

static int sim_pull_image(void *rt, const struct kc_rt_container *c, struct kc_rt_image *out, int *wait_ms,
                          struct kc_err *err)
{
    struct sim *s = rt;
    char key[800];
    snprintf(key, sizeof key, "%.60s|%.500s", c->pod_uid, c->image);
    *wait_ms = 0;
    pthread_mutex_lock(&s->mu);
    int64_t now = now_ms(s);
    int64_t done = (int64_t)(intptr_t)kc_map_get(&s->pulls, key);
    int perr = 0;
    if (!done) {
        done = now + jitter(s, s->p->pull_min_ms, s->p->pull_max_ms);
        kc_map_put(&s->pulls, key, (void *)(intptr_t)(done ? done : 1), &perr);
    }
    if (done > now) {
        *wait_ms = (int)(done - now);
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    kc_map_del(&s->pulls, key);
    bool fail = s->p->fail_pull || ann_fail_is(c->pod, "image-pull");
    if (!fail) {
        snprintf(key, sizeof key, "%.255s|%.500s", c->node, c->image);
        kc_map_put(&s->images, key, (void *)1, &perr);
    }
    pthread_mutex_unlock(&s->mu);
    if (fail)
        return kc_err_set(err, KC_EIO, 0, "ErrImagePull",
                          "rpc error: code = NotFound desc = failed to pull and unpack image \"%.400s\": "
                          "simulated pull failure (sim runtime)",
                          c->image);
    image_id_of(c->image, out);
    return 0;
}

static int sim_create_container(void *rt, const struct kc_rt_container *c, char *id, size_t idn, int *wait_ms,
                                struct kc_err *err)
{
    struct sim *s = rt;
    *wait_ms = 0;
    struct sim_ctr *k = calloc(1, sizeof *k);
    if (!k)
        return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "sim: out of memory");
    snprintf(k->node, sizeof k->node, "%s", c->node);
    k->init = c->init;
    const char *d = pod_ann(c->pod, KC_SIM_ANN_START_DELAY);
    double dsec;
    k->start_delay_ms = d && kc_parse_duration(d, &dsec) == 0 ? (int64_t)(dsec * 1000) : -1;
    if (ann_fail_is(c->pod, "crash") || s->p->crash_after_ms)
        k->exit_code = 1;
    char hex[65], seed[200];
    pthread_mutex_lock(&s->mu);
    snprintf(seed, sizeof seed, "%.60s/%.60s/%d/%lu", c->pod_uid, c->name, c->attempt, ++s->idseq);
    fake_hex(seed, s->idseq, hex);
    snprintf(id, idn, "sim://%s", hex);
    int perr = 0;
    kc_map_put(&s->ctrs, id, k, &perr);
    pthread_mutex_unlock(&s->mu);
    if (perr) {
        free(k);
        return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "sim: out of memory");
    }
    return 0;
}

static int sim_start_container(void *rt, const char *id, int *wait_ms, struct kc_err *err)
{
    struct sim *s = rt;
    *wait_ms = 0;
    pthread_mutex_lock(&s->mu);
    struct sim_ctr *k = kc_map_get(&s->ctrs, id);
    if (!k) {
        pthread_mutex_unlock(&s->mu);
        return kc_err_set(err, KC_ENOTFOUND, 0, "NotFound", "sim: no container %.100s", id);
    }
    int64_t now = now_ms(s);
    if (!k->start_done_ms) {
        int64_t d = k->start_delay_ms >= 0 ? k->start_delay_ms : jitter(s, s->p->start_min_ms, s->p->start_max_ms);
        k->start_done_ms = now + d;
        if (k->start_done_ms == 0)
            k->start_done_ms = 1;
    }
    if (k->start_done_ms > now) {
        *wait_ms = (int)(k->start_done_ms - now);
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    if (!k->started_ms) {
        k->started_ms = now;
        if (k->init)
            k->exit_ms = now + s->p->init_run_ms;
        else if (k->exit_code)
            k->exit_ms = now + (s->p->crash_after_ms ? s->p->crash_after_ms : 1000);
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void settle(struct sim_ctr *k, int64_t now)
{
    if (k->started_ms && !k->finished_ms && k->exit_ms && now >= k->exit_ms)
        k->finished_ms = k->exit_ms;
}

static int sim_container_status(void *rt, const char *id, struct kc_rt_status *out, int *next_ms, struct kc_err *err)
{
    struct sim *s = rt;
    memset(out, 0, sizeof *out);
    *next_ms = 0;
    pthread_mutex_lock(&s->mu);
    struct sim_ctr *k = kc_map_get(&s->ctrs, id);
    if (!k) {
        pthread_mutex_unlock(&s->mu);
        return kc_err_set(err, KC_ENOTFOUND, 0, "NotFound", "sim: no container %.100s", id);
    }
    int64_t now = now_ms(s);
    settle(k, now);
    out->started_ms = k->started_ms;
    if (k->finished_ms) {
        out->state = KC_RT_EXITED;
        out->exit_code = k->exit_code;
        out->finished_ms = k->finished_ms;
        snprintf(out->reason, sizeof out->reason, "%s", k->exit_code ? "Error" : "Completed");
    } else if (k->started_ms) {
        out->state = KC_RT_RUNNING;
        if (k->exit_ms)
            *next_ms = (int)(k->exit_ms - now) > 0 ? (int)(k->exit_ms - now) : 1;
    } else {
        out->state = KC_RT_CREATED;
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static int sim_stop_container(void *rt, const char *id, int grace_s, int *wait_ms, struct kc_err *err)
{
    (void)grace_s;
    (void)err;
    struct sim *s = rt;
    *wait_ms = 0;
    pthread_mutex_lock(&s->mu);
    struct sim_ctr *k = kc_map_get(&s->ctrs, id);
    if (k) {
        int64_t now = now_ms(s);
        settle(k, now);
        if (!k->finished_ms) { /* a sim process honours SIGTERM at once and exits cleanly */
            k->finished_ms = now;
            k->exit_code = 0;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static int sim_remove_container(void *rt, const char *id, struct kc_err *err)
{
    (void)err;
    struct sim *s = rt;
    pthread_mutex_lock(&s->mu);
    free(kc_map_del(&s->ctrs, id));
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void free_vals(struct kc_map *m)
{
    const char *k;
    void *v;
    for (long i = kc_map_next(m, 0, &k, &v); i >= 0; i = kc_map_next(m, i + 1, &k, &v))
        free(v);
    kc_map_release(m);
}

static void sim_free(void *rt)
{
    struct sim *s = rt;
    if (!s)
        return;
    free_vals(&s->ctrs);
    free_vals(&s->sandboxes);
    kc_map_release(&s->pulls);
    kc_map_release(&s->images);
    kc_map_release(&s->nodes);
    kc_map_release(&s->ipnext);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static const struct kc_runtime_ops sim_ops = {
    .name = "sim",
    .run_sandbox = sim_run_sandbox,
    .remove_sandbox = sim_remove_sandbox,
    .image_present = sim_image_present,
    .pull_image = sim_pull_image,
    .create_container = sim_create_container,
    .start_container = sim_start_container,
    .container_status = sim_container_status,
    .stop_container = sim_stop_container,
    .remove_container = sim_remove_container,
    .free = sim_free,
};

void kc_sim_set_node_index(void *impl, const char *node, int index)
{
    struct sim *s = impl;
    int perr = 0;
    pthread_mutex_lock(&s->mu);
    kc_map_put(&s->nodes, node, (void *)(intptr_t)(index + 1), &perr);
    pthread_mutex_unlock(&s->mu);
}

int kc_sim_runtime_new(const char *profile, kc_clock_fn clock, void *clock_ctx, const struct kc_runtime_ops **ops,
                       void **impl, struct kc_err *err)
{
    const struct sim_profile *p = NULL;
    if (!profile || !*profile)
        profile = "fast";
    for (size_t i = 0; i < sizeof sim_profiles / sizeof sim_profiles[0]; i++)
        if (!strcmp(sim_profiles[i].name, profile))
            p = &sim_profiles[i];
    if (!p)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest",
                          "unknown sim profile \"%.60s\" (want fast, realistic, image-pull-fail or crashloop)", profile);
    struct sim *s = calloc(1, sizeof *s);
    if (!s)
        return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
    s->p = p;
    s->clock = clock ? clock : kc_clock_real;
    s->clock_ctx = clock_ctx;
    s->seed = (unsigned)time(NULL);
    pthread_mutex_init(&s->mu, NULL);
    kc_map_init(&s->ctrs);
    kc_map_init(&s->sandboxes);
    kc_map_init(&s->pulls);
    kc_map_init(&s->images);
    kc_map_init(&s->nodes);
    kc_map_init(&s->ipnext);
    *ops = &sim_ops;
    *impl = s;
    return 0;
}
