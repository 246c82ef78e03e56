/* podsm.c — the per-pod state machine of the node agent (see podsm.h for the contract).
 *
 * Each container walks:
 *   WAITING ─► PULLING ─► CREATING ─► STARTING ─► RUNNING ─► EXITED ─┬─► (restart) WAITING
 *      │          │                                                  └─► CRASH_BACKOFF ─► WAITING
 *      └► PULL_BACKOFF ◄─ PULL_FAILED ◄┘ (ErrImagePull; ImagePullBackOff until the back-off expires)
 * Init containers run one after another to completion before the regular ones start.
 * Graceful deletion stops every container (Killing event), waits at most the grace period, then
 * removes containers and sandbox; kc_podsm_sync returns 1 so the caller deletes the Pod object.
 *
 * All state changes go through set_state() (one place to trace). Back-off follows upstream's
 * flowcontrol.Backoff: image pulls key on the last failure time, restarts on the container's
 * finish time, so restarts happen after 0, 10, 20, 40 … 300 s.
 */
#include "agent/podsm.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/timeutil.h"
#include "util/jsonparse.h"

#define MAX_CONTAINERS 64
#define ERR_PULL_VISIBLE_MS 1000 /* how long ErrImagePull shows before ImagePullBackOff */

enum { C_READY_TO_START, C_INITIALIZED, C_READY, C_CONTAINERS_READY, C_N };
static const char *cond_names[C_N] = {"PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady"};

/* ---------- back-off ---------- */

void kc_backoff_next(struct kc_backoff *b, int64_t now)
{
    if (!b->backoff_ms || now - b->last_update_ms > 2 * (int64_t)KC_BACKOFF_MAX_MS)
        b->backoff_ms = KC_BACKOFF_INITIAL_MS;
    else
        b->backoff_ms = b->backoff_ms * 2 > KC_BACKOFF_MAX_MS ? KC_BACKOFF_MAX_MS : b->backoff_ms * 2;
    b->last_update_ms = now;
}

static bool expired(const struct kc_backoff *b, int64_t t)
{
    return t - b->last_update_ms > 2 * (int64_t)KC_BACKOFF_MAX_MS;
}

bool kc_backoff_in_since_update(const struct kc_backoff *b, int64_t now)
{
    if (!b->backoff_ms || expired(b, now))
        return false;
    return now - b->last_update_ms < b->backoff_ms;
}

bool kc_backoff_in_since(const struct kc_backoff *b, int64_t event_time, int64_t now)
{
    if (!b->backoff_ms || expired(b, event_time))
        return false;
    return now - event_time < b->backoff_ms;
}

/* ---------- helpers ---------- */

const char *kc_cstate_name(enum kc_cstate s)
{
    static const char *n[] = {"Waiting", "Pulling", "PullFailed", "PullBackOff", "Creating",
                              "Starting", "Running", "Exited", "CrashBackOff", "Failed"};
    return (unsigned)s < sizeof n / sizeof n[0] ? n[s] : "?";
}

static int64_t now_of(const struct kc_podsm_env *env)
{
    return env->clock ? env->clock(env->clock_ctx) : kc_clock_real(NULL);
}

static void emit(const struct kc_podsm_env *env, json_t *pod, const char *type, const char *reason, const char *fmt,
                 ...) __attribute__((format(printf, 5, 6)));
static void emit(const struct kc_podsm_env *env, json_t *pod, const char *type, const char *reason, const char *fmt,
                 ...)
{
    if (!env->event)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    env->event(env->event_ctx, pod, type, reason, msg);
}

/* Copies src (may be NULL, or dst itself: a state kept with its reason) into dst, cut to fit. */
static void copy_text(char *dst, size_t n, const char *src)
{
    if (src == dst)
        return;
    size_t len = src ? strnlen(src, n - 1) : 0;
    memmove(dst, src ? src : "", len);
    dst[len] = 0;
}

/* THE state transition: every change of a container's state passes here. */
static void set_state(const struct kc_podsm_env *env, struct kc_pod_sm *sm, struct kc_ctr_sm *c, enum kc_cstate st,
                      const char *reason, const char *msg)
{
    if (env->trace)
        env->trace(env->event_ctx, sm, c, c->st, st, reason);
    c->st = st;
    copy_text(c->reason, sizeof c->reason, reason);
    copy_text(c->message, sizeof c->message, msg);
}

/* Go's time.Duration.String() for the ms precision we have: 0s, 523ms, 1.2s, 2m3.5s. */
void kc_go_duration(int64_t ms, char *out, size_t n)
{
    if (ms <= 0) {
        snprintf(out, n, "0s");
        return;
    }
    if (ms < 1000) {
        snprintf(out, n, "%" PRId64 "ms", ms);
        return;
    }
    char sec[32];
    int64_t m = ms / 60000, rest = ms % 60000;
    snprintf(sec, sizeof sec, "%" PRId64 ".%03" PRId64, rest / 1000, rest % 1000);
    char *e = sec + strlen(sec) - 1;
    while (*e == '0')
        *e-- = 0;
    if (*e == '.')
        *e = 0;
    if (m)
        snprintf(out, n, "%" PRId64 "m%ss", m, sec);
    else
        snprintf(out, n, "%ss", sec);
}

static const char *jstr(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

/* ---------- init / release ---------- */

static int add_container(struct kc_pod_sm *sm, json_t *spec, bool init, struct kc_err *err)
{
    const char *name = jstr(spec, "name"), *image = jstr(spec, "image");
    if (!name || !image || strlen(name) >= sizeof sm->c[0].name || strlen(image) >= sizeof sm->c[0].image)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "container without a valid name or image");
    struct kc_ctr_sm *c = &sm->c[sm->n++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->image, sizeof c->image, "%s", image);
    c->init = init;
    const char *pol = jstr(spec, "imagePullPolicy");
    if (pol)
        c->pull_always = !strcmp(pol, "Always");
    else { /* API default: Always for :latest or untagged images */
        const char *slash = strrchr(image, '/'), *colon = strrchr(slash ? slash : image, ':');
        c->pull_always = !strchr(image, '@') && (!colon || !strcmp(colon, ":latest"));
    }
    c->st = KC_CS_WAITING;
    snprintf(c->reason, sizeof c->reason, "%s", "ContainerCreating");
    return 0;
}

int kc_podsm_init(struct kc_pod_sm *sm, json_t *pod, const char *node, struct kc_err *err)
{
    memset(sm, 0, sizeof *sm);
    json_t *meta = json_object_get(pod, "metadata"), *spec = json_object_get(pod, "spec");
    snprintf(sm->ns, sizeof sm->ns, "%s", jstr(meta, "namespace") ?: "");
    snprintf(sm->name, sizeof sm->name, "%s", jstr(meta, "name") ?: "");
    snprintf(sm->uid, sizeof sm->uid, "%s", jstr(meta, "uid") ?: "");
    snprintf(sm->node, sizeof sm->node, "%s", node);
    snprintf(sm->restart_policy, sizeof sm->restart_policy, "%s", jstr(spec, "restartPolicy") ?: "Always");
    json_t *g = json_object_get(spec, "terminationGracePeriodSeconds");
    sm->grace_s = json_is_integer(g) ? json_integer_value(g) : 30;
    json_t *inits = json_object_get(spec, "initContainers"), *ctrs = json_object_get(spec, "containers");
    size_t total = json_array_size(inits) + json_array_size(ctrs);
    if (total == 0 || total > MAX_CONTAINERS)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "pod has %zu containers (1..%d supported)", total,
                          MAX_CONTAINERS);
    sm->c = calloc(total, sizeof *sm->c);
    if (!sm->c)
        return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
    size_t i;
    json_t *c;
    int rc = 0;
    json_array_foreach(inits, i, c) if (!rc) rc = add_container(sm, c, true, err);
    sm->ninit = sm->n;
    json_array_foreach(ctrs, i, c) if (!rc) rc = add_container(sm, c, false, err);
    for (int k = 0; k < C_N; k++)
        sm->cond_val[k] = -1;
    if (rc) {
        free(sm->c);
        sm->c = NULL;
    }
    return rc;
}

void kc_podsm_release(struct kc_pod_sm *sm)
{
    free(sm->c);
    sm->c = NULL;
    sm->n = 0;
}

/* ---------- container steps ---------- */

static void rt_ctr(struct kc_pod_sm *sm, struct kc_ctr_sm *c, json_t *pod, struct kc_rt_container *out)
{
    out->pod = pod;
    out->pod_uid = sm->uid;
    out->node = sm->node;
    out->name = c->name;
    out->image = c->image;
    out->init = c->init;
    out->attempt = c->restart_count;
}

static int64_t min_wake(int64_t a, int64_t b) { return !a ? b : !b ? a : a < b ? a : b; }

/* Decides how to get the image: present, in back-off, or pull now. Returns 1 to keep stepping. */
static int begin_image(const struct kc_podsm_env *env, struct kc_pod_sm *sm, struct kc_ctr_sm *c, json_t *pod,
                       int64_t now)
{
    struct kc_rt_image img;
    struct kc_rt_container rc;
    rt_ctr(sm, c, pod, &rc);
    if (!c->pull_always && env->rt->image_present(env->rt_impl, &rc, &img)) {
        c->img = img;
        c->have_img = true;
        emit(env, pod, "Normal", "Pulled", "Container image \"%s\" already present on machine", c->image);
        set_state(env, sm, c, KC_CS_CREATING, c->reason, c->message);
        return 1;
    }
    if (kc_backoff_in_since_update(&c->pull_bo, now)) {
        if (c->st != KC_CS_PULL_BACKOFF) {
            /* as upstream since 1.30: the back-off message carries the last pull error, so the cause
             * stays visible for the whole back-off and not only for the second ErrImagePull shows */
            char msg[1200], ev[600];
            snprintf(ev, sizeof ev, "Back-off pulling image \"%s\"", c->image);
            if (c->st == KC_CS_PULL_FAILED && c->message[0])
                snprintf(msg, sizeof msg, "%.580s: ErrImagePull: %.590s", ev, c->message);
            else
                snprintf(msg, sizeof msg, "%s", ev);
            set_state(env, sm, c, KC_CS_PULL_BACKOFF, "ImagePullBackOff", msg);
            emit(env, pod, "Normal", "BackOff", "%s", ev); /* the event without the error, as upstream */
            emit(env, pod, "Warning", "Failed", "Error: ImagePullBackOff");
        }
        c->wake_ms = c->pull_bo.last_update_ms + c->pull_bo.backoff_ms;
        return 0;
    }
    emit(env, pod, "Normal", "Pulling", "Pulling image \"%s\"", c->image);
    c->pull_started_ms = now;
    set_state(env, sm, c, KC_CS_PULLING, c->reason[0] ? c->reason : "ContainerCreating", NULL);
    return 1;
}

static int step_pull(const struct kc_podsm_env *env, struct kc_pod_sm *sm, struct kc_ctr_sm *c, json_t *pod,
                     int64_t now)
{
    struct kc_rt_container rc;
    rt_ctr(sm, c, pod, &rc);
    struct kc_err err = {0};
    int wait = 0;
    int r = env->rt->pull_image(env->rt_impl, &rc, &c->img, &wait, &err);
    if (r < 0) {
        emit(env, pod, "Warning", "Failed", "Failed to pull image \"%s\": %s", c->image, err.message);
        kc_backoff_next(&c->pull_bo, now);
        set_state(env, sm, c, KC_CS_PULL_FAILED, "ErrImagePull", err.message);
        emit(env, pod, "Warning", "Failed", "Error: ErrImagePull");
        c->wake_ms = now + ERR_PULL_VISIBLE_MS;
        return 0;
    }
    if (wait > 0) {
        c->wake_ms = now + wait;
        return 0;
    }
    c->have_img = true;
    char d[32];
    kc_go_duration(now - c->pull_started_ms, d, sizeof d);
    emit(env, pod, "Normal", "Pulled",
         "Successfully pulled image \"%s\" in %s (%s including waiting). Image size: %" PRId64 " bytes.", c->image, d,
         d, c->img.size_bytes);
    c->pull_bo.backoff_ms = 0; /* as upstream's backOff.GC after a success */
    set_state(env, sm, c, KC_CS_CREATING, "ContainerCreating", NULL);
    return 1;
}

static void remove_old(const struct kc_podsm_env *env, struct kc_ctr_sm *c)
{
    if (c->id[0]) {
        struct kc_err err = {0};
        env->rt->remove_container(env->rt_impl, c->id, &err);
        c->id[0] = 0;
    }
}

static int fail_op(const struct kc_podsm_env *env, struct kc_pod_sm *sm, struct kc_ctr_sm *c, json_t *pod,
                   int64_t now, const char *reason, const char *msg)
{
    emit(env, pod, "Warning", "Failed", "Error: %s", msg);
    kc_backoff_next(&c->err_bo, now);
    set_state(env, sm, c, KC_CS_FAILED, reason, msg);
    c->wake_ms = now + c->err_bo.backoff_ms;
    return 0;
}

static int step_create(const struct kc_podsm_env *env, struct kc_pod_sm *sm, struct kc_ctr_sm *c, json_t *pod,
                       int64_t now)
{
    struct kc_rt_container rc;
    rt_ctr(sm, c, pod, &rc);
    struct kc_err err = {0};
    int wait = 0;
    remove_old(env, c);
    int r = env->rt->create_container(env->rt_impl, &rc, c->id, sizeof c->id, &wait, &err);
    if (r < 0) {
        c->id[0] = 0;
        return fail_op(env, sm, c, pod, now, "CreateContainerError", err.message);
    }
    emit(env, pod, "Normal", "Created", "Created container: %s", c->name);
    set_state(env, sm, c, KC_CS_STARTING, "ContainerCreating", NULL);
    return 1;
}

static int step_start(const struct kc_podsm_env *env, struct kc_pod_sm *sm, struct kc_ctr_sm *c, json_t *pod,
                      int64_t now)
{
    struct kc_err err = {0};
    int wait = 0;
    int r = env->rt->start_container(env->rt_impl, c->id, &wait, &err);
    if (r < 0)
        return fail_op(env, sm, c, pod, now, "RunContainerError", err.message);
    if (wait > 0) {
        c->wake_ms = now + wait;
        return 0;
    }
    c->started_ms = now;
    c->started = true;
    c->probes_known = false;
    emit(env, pod, "Normal", "Started", "Started container %s", c->name);
    set_state(env, sm, c, KC_CS_RUNNING, NULL, NULL);
    return 1;
}

static int step_running(const struct kc_podsm_env *env, struct kc_pod_sm *sm, struct kc_ctr_sm *c, int64_t now)
{
    struct kc_rt_status st;
    struct kc_err err = {0};
    int next = 0;
    if (env->rt->container_status(env->rt_impl, c->id, &st, &next, &err) < 0) {
        st.state = KC_RT_EXITED; /* the runtime lost it: treat as an unknown exit */
        st.exit_code = 137;
        snprintf(st.reason, sizeof st.reason, "%s", "ContainerStatusUnknown");
        st.started_ms = c->started_ms;
        st.finished_ms = now;
    }
    if (st.state != KC_RT_EXITED) {
        c->probes_known = st.probes_known; /* readiness/startup probe results gate Ready/started */
        c->probe_ready = st.ready;
        if (st.probes_known && st.state == KC_RT_RUNNING)
            c->started = st.started;
        if (next > 0)
            c->wake_ms = now + next;
        return 0;
    }
    c->term.exit_code = st.exit_code;
    snprintf(c->term.reason, sizeof c->term.reason, "%s", st.reason);
    c->term.started_ms = st.started_ms ? st.started_ms : c->started_ms;
    c->term.finished_ms = st.finished_ms ? st.finished_ms : now;
    snprintf(c->term.id, sizeof c->term.id, "%s", c->id);
    c->started = false;
    set_state(env, sm, c, KC_CS_EXITED, NULL, NULL);
    return 1;
}

static bool wants_restart(const struct kc_pod_sm *sm, const struct kc_ctr_sm *c)
{
    if (c->init)
        return c->term.exit_code != 0 && strcmp(sm->restart_policy, "Never");
    if (!strcmp(sm->restart_policy, "Always"))
        return true;
    return !strcmp(sm->restart_policy, "OnFailure") && c->term.exit_code != 0;
}

static int step_exited(const struct kc_podsm_env *env, struct kc_pod_sm *sm, struct kc_ctr_sm *c, json_t *pod,
                       int64_t now)
{
    if (!wants_restart(sm, c)) {
        c->done = true;
        return 0;
    }
    if (kc_backoff_in_since(&c->crash_bo, c->term.finished_ms, now)) {
        if (c->st != KC_CS_CRASH_BACKOFF) {
            char msg[600];
            snprintf(msg, sizeof msg, "back-off %" PRId64 "s restarting failed container=%s pod=%s_%s(%s)",
                     c->crash_bo.backoff_ms / 1000, c->name, sm->name, sm->ns, sm->uid);
            set_state(env, sm, c, KC_CS_CRASH_BACKOFF, "CrashLoopBackOff", msg);
            emit(env, pod, "Warning", "BackOff", "Back-off restarting failed container %s in pod %s_%s(%s)", c->name,
                 sm->name, sm->ns, sm->uid);
        }
        c->wake_ms = c->term.finished_ms + c->crash_bo.backoff_ms;
        return 0;
    }
    kc_backoff_next(&c->crash_bo, now);
    c->last = c->term;
    c->has_last = true;
    c->restart_count++;
    set_state(env, sm, c, KC_CS_WAITING, "ContainerCreating", NULL);
    return 1;
}

/* Steps one container as far as it goes now; leaves c->wake_ms set when it waits on time. */
static void step_container(const struct kc_podsm_env *env, struct kc_pod_sm *sm, struct kc_ctr_sm *c, json_t *pod)
{
    c->wake_ms = 0;
    for (int guard = 0; guard < 16; guard++) {
        int64_t now = now_of(env);
        int more = 0;
        switch (c->st) {
        case KC_CS_WAITING:
        case KC_CS_PULL_BACKOFF:
        case KC_CS_PULL_FAILED:
            more = begin_image(env, sm, c, pod, now);
            break;
        case KC_CS_PULLING:
            more = step_pull(env, sm, c, pod, now);
            break;
        case KC_CS_CREATING:
            more = step_create(env, sm, c, pod, now);
            break;
        case KC_CS_STARTING:
            more = step_start(env, sm, c, pod, now);
            break;
        case KC_CS_RUNNING:
            more = step_running(env, sm, c, now);
            break;
        case KC_CS_EXITED:
        case KC_CS_CRASH_BACKOFF:
            more = step_exited(env, sm, c, pod, now);
            break;
        case KC_CS_FAILED:
            if (kc_backoff_in_since_update(&c->err_bo, now))
                c->wake_ms = c->err_bo.last_update_ms + c->err_bo.backoff_ms;
            else {
                set_state(env, sm, c, c->have_img ? KC_CS_CREATING : KC_CS_WAITING, c->reason, c->message);
                more = 1;
            }
            break;
        }
        if (!more)
            return;
    }
}

/* ---------- termination ---------- */

static int64_t grace_of(struct kc_pod_sm *sm, json_t *pod)
{
    json_t *g = json_object_get(json_object_get(pod, "metadata"), "deletionGracePeriodSeconds");
    return json_is_integer(g) ? json_integer_value(g) : sm->grace_s;
}

static int terminate(struct kc_pod_sm *sm, json_t *pod, const struct kc_podsm_env *env, int64_t *wake)
{
    int64_t now = now_of(env);
    int64_t grace = grace_of(sm, pod);
    if (!sm->killing) {
        sm->killing = true;
        sm->kill_deadline_ms = env->immediate_kill ? now : now + grace * 1000;
        for (int i = 0; i < sm->n; i++)
            if (sm->c[i].st == KC_CS_RUNNING)
                emit(env, pod, "Normal", "Killing", "Stopping container %s", sm->c[i].name);
    }
    int64_t pending = 0;
    for (int i = 0; i < sm->n; i++) {
        struct kc_ctr_sm *c = &sm->c[i];
        if (!c->id[0] || c->st == KC_CS_EXITED || c->st == KC_CS_CRASH_BACKOFF)
            continue;
        struct kc_err err = {0};
        int wait = 0;
        int64_t left = sm->kill_deadline_ms - now;
        env->rt->stop_container(env->rt_impl, c->id, left > 0 ? (int)((left + 999) / 1000) : 0, &wait, &err);
        if (wait > 0 && now < sm->kill_deadline_ms) {
            pending = min_wake(pending, now + wait < sm->kill_deadline_ms ? now + wait : sm->kill_deadline_ms);
            continue;
        }
        if (c->st == KC_CS_RUNNING || c->st == KC_CS_STARTING) {
            step_running(env, sm, c, now); /* records the termination */
            if (c->st != KC_CS_EXITED) {    /* a runtime that ignored the kill: force the record */
                c->term.exit_code = 137;
                snprintf(c->term.reason, sizeof c->term.reason, "%s", "Error");
                c->term.started_ms = c->started_ms;
                c->term.finished_ms = now;
                snprintf(c->term.id, sizeof c->term.id, "%s", c->id);
                set_state(env, sm, c, KC_CS_EXITED, NULL, NULL);
            }
        }
    }
    if (pending) {
        *wake = pending;
        return 0;
    }
    for (int i = 0; i < sm->n; i++) {
        sm->c[i].done = true;
        sm->c[i].started = false;
    }
    kc_podsm_teardown(sm, env);
    sm->killed = true;
    return 1;
}

void kc_podsm_teardown(struct kc_pod_sm *sm, const struct kc_podsm_env *env)
{
    struct kc_err err = {0};
    for (int i = 0; i < sm->n; i++) {
        struct kc_ctr_sm *c = &sm->c[i];
        if (c->id[0]) {
            int wait = 0;
            env->rt->stop_container(env->rt_impl, c->id, 0, &wait, &err);
            env->rt->remove_container(env->rt_impl, c->id, &err);
            c->id[0] = 0;
        }
    }
    if (sm->sandbox)
        env->rt->remove_sandbox(env->rt_impl, sm->uid, &err);
    sm->sandbox = false;
}

/* ---------- sync ---------- */

int kc_podsm_sync(struct kc_pod_sm *sm, json_t *pod, const struct kc_podsm_env *env, int64_t *wake_ms)
{
    *wake_ms = 0;
    if (sm->killed)
        return 1;
    if (!sm->start_ms)
        sm->start_ms = now_of(env);
    if (json_object_get(json_object_get(pod, "metadata"), "deletionTimestamp"))
        return terminate(sm, pod, env, wake_ms);
    if (!sm->sandbox) {
        struct kc_err err = {0};
        int wait = 0;
        if (env->rt->run_sandbox(env->rt_impl, pod, sm->node, sm->pod_ip, sizeof sm->pod_ip, &wait, &err) < 0) {
            emit(env, pod, "Warning", "FailedCreatePodSandBox", "Failed to create pod sandbox: %s", err.message);
            *wake_ms = now_of(env) + KC_BACKOFF_INITIAL_MS;
            return 0;
        }
        if (wait > 0) {
            *wake_ms = now_of(env) + wait;
            return 0;
        }
        sm->sandbox = true;
    }
    int64_t wake = 0;
    for (int i = 0; i < sm->ninit; i++) { /* init containers strictly in order */
        struct kc_ctr_sm *c = &sm->c[i];
        if (!c->done)
            step_container(env, sm, c, pod);
        wake = min_wake(wake, c->wake_ms);
        if (!c->done || c->term.exit_code != 0) {
            *wake_ms = wake;
            return 0;
        }
    }
    for (int i = sm->ninit; i < sm->n; i++) {
        struct kc_ctr_sm *c = &sm->c[i];
        if (!c->done)
            step_container(env, sm, c, pod);
        wake = min_wake(wake, c->wake_ms);
    }
    *wake_ms = wake;
    return 0;
}

/* ---------- status ---------- */

static json_t *ts_json(int64_t ms)
{
    char b[40];
    kc_time_rfc3339((time_t)(ms / 1000), b, sizeof b);
    return json_string(b);
}

static json_t *term_json(const struct kc_ctr_term *t)
{
    json_t *o = json_pack("{s:i,s:s}", "exitCode", t->exit_code, "reason", t->reason[0] ? t->reason : "Error");
    json_object_set_new(o, "startedAt", ts_json(t->started_ms));
    json_object_set_new(o, "finishedAt", ts_json(t->finished_ms));
    if (t->id[0])
        json_object_set_new(o, "containerID", json_string(t->id));
    return json_pack("{s:o}", "terminated", o);
}

static bool ctr_ready(const struct kc_pod_sm *sm, const struct kc_ctr_sm *c)
{
    return c->st == KC_CS_RUNNING && !sm->killing && (!c->probes_known || c->probe_ready != 0);
}

static json_t *ctr_status(const struct kc_pod_sm *sm, const struct kc_ctr_sm *c, bool initializing)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:b,s:i,s:b}", "name", c->name, "image", c->image, "imageID",
                          c->have_img ? c->img.image_id : "", "ready", ctr_ready(sm, c), "restartCount",
                          c->restart_count, "started", c->started);
    json_t *state;
    if (c->st == KC_CS_RUNNING) {
        state = json_pack("{s:{s:o}}", "running", "startedAt", ts_json(c->started_ms));
    } else if (c->st == KC_CS_EXITED) {
        state = term_json(&c->term);
    } else {
        const char *reason = c->reason[0] ? c->reason : "ContainerCreating";
        if (!c->init && initializing && c->st == KC_CS_WAITING)
            reason = "PodInitializing";
        json_t *w = json_pack("{s:s}", "reason", reason);
        if (c->message[0] && strcmp(reason, "PodInitializing"))
            json_object_set_new(w, "message", json_string(c->message));
        state = json_pack("{s:o}", "waiting", w);
    }
    json_object_set_new(o, "state", state);
    if (c->st == KC_CS_CRASH_BACKOFF)
        json_object_set_new(o, "lastState", term_json(&c->term));
    else if (c->has_last)
        json_object_set_new(o, "lastState", term_json(&c->last));
    else
        json_object_set_new(o, "lastState", json_object());
    const char *id = c->id[0] ? c->id : c->st == KC_CS_CRASH_BACKOFF || c->st == KC_CS_EXITED ? c->term.id : "";
    if (*id)
        json_object_set_new(o, "containerID", json_string(id));
    return o;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "name")),
                  json_string_value(json_object_get(*(json_t *const *)b, "name")));
}

/* Upstream sorts container statuses by name. */
static json_t *sorted(json_t **v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_name);
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, v[i]);
    return a;
}

static void names_where(const struct kc_pod_sm *sm, int from, int to, bool (*pred)(const struct kc_pod_sm *,
                        const struct kc_ctr_sm *), char *out, size_t n)
{
    size_t len = 0;
    out[0] = 0;
    len += (size_t)snprintf(out, n, "[");
    bool first = true;
    for (int i = from; i < to && len < n; i++)
        if (pred(sm, &sm->c[i])) {
            len += (size_t)snprintf(out + len, n - len, "%s%s", first ? "" : " ", sm->c[i].name);
            first = false;
        }
    if (len < n)
        snprintf(out + len, n - len, "]");
}

static bool not_ready(const struct kc_pod_sm *sm, const struct kc_ctr_sm *c) { return !ctr_ready(sm, c); }
static bool not_done(const struct kc_pod_sm *sm, const struct kc_ctr_sm *c)
{
    (void)sm;
    return !c->done || c->term.exit_code != 0;
}

static json_t *condition(struct kc_pod_sm *sm, int k, bool val, int64_t now, const char *reason, const char *msg)
{
    if (sm->cond_val[k] != (int)val) {
        sm->cond_val[k] = val;
        sm->cond_ms[k] = now;
    }
    json_t *o = json_pack("{s:s,s:s,s:n}", "type", cond_names[k], "status", val ? "True" : "False", "lastProbeTime");
    json_object_set_new(o, "lastTransitionTime", ts_json(sm->cond_ms[k]));
    if (!val && reason) {
        json_object_set_new(o, "reason", json_string(reason));
        if (msg)
            json_object_set_new(o, "message", json_string(msg));
    }
    return o;
}

static const char *phase_of(const struct kc_pod_sm *sm, bool initialized)
{
    if (!initialized) {
        for (int i = 0; i < sm->ninit; i++)
            if (sm->c[i].done && sm->c[i].term.exit_code != 0)
                return "Failed";
        return sm->killed ? "Failed" : "Pending";
    }
    int pending = 0, live = 0, failed = 0;
    for (int i = sm->ninit; i < sm->n; i++) {
        const struct kc_ctr_sm *c = &sm->c[i];
        if (c->done)
            failed += c->term.exit_code != 0;
        else if (c->st == KC_CS_RUNNING || c->has_last || c->st == KC_CS_EXITED || c->st == KC_CS_CRASH_BACKOFF)
            live++;
        else
            pending++;
    }
    if (sm->killed)
        return failed ? "Failed" : "Succeeded";
    if (pending)
        return "Pending";
    if (live)
        return "Running";
    return failed ? "Failed" : "Succeeded";
}

json_t *kc_podsm_status(struct kc_pod_sm *sm, json_t *pod, const struct kc_podsm_env *env)
{
    int64_t now = now_of(env);
    json_t *st = json_object(), *old = json_object_get(pod, "status");
    bool initialized = true;
    for (int i = 0; i < sm->ninit; i++)
        initialized = initialized && sm->c[i].done && sm->c[i].term.exit_code == 0;
    bool all_ready = !sm->killing;
    for (int i = sm->ninit; i < sm->n; i++)
        all_ready = all_ready && ctr_ready(sm, &sm->c[i]);
    char unready[700], incomplete[700];
    names_where(sm, sm->ninit, sm->n, not_ready, unready, sizeof unready);
    names_where(sm, 0, sm->ninit, not_done, incomplete, sizeof incomplete);
    char unready_msg[760], incomplete_msg[760];
    snprintf(unready_msg, sizeof unready_msg, "containers with unready status: %s", unready);
    snprintf(incomplete_msg, sizeof incomplete_msg, "containers with incomplete status: %s", incomplete);

    json_t *conds = json_array();
    json_array_append_new(conds, condition(sm, C_READY_TO_START, sm->sandbox, now, NULL, NULL));
    json_array_append_new(conds, condition(sm, C_INITIALIZED, initialized, now, "ContainersNotInitialized",
                                           incomplete_msg));
    json_array_append_new(conds, condition(sm, C_READY, all_ready, now, "ContainersNotReady", unready_msg));
    json_array_append_new(conds, condition(sm, C_CONTAINERS_READY, all_ready, now, "ContainersNotReady", unready_msg));
    size_t i;
    json_t *c, *sched = NULL;
    json_array_foreach(json_object_get(old, "conditions"), i, c) if (!strcmp(jstr(c, "type") ?: "", "PodScheduled"))
        sched = kc_json_copy(c);
    if (!sched) {
        sched = json_pack("{s:s,s:s,s:n}", "type", "PodScheduled", "status", "True", "lastProbeTime");
        json_object_set_new(sched, "lastTransitionTime", ts_json(sm->start_ms));
    }
    json_array_append_new(conds, sched);
    json_object_set_new(st, "phase", json_string(phase_of(sm, initialized)));
    json_object_set_new(st, "conditions", conds);
    if (env->host_ip) {
        json_object_set_new(st, "hostIP", json_string(env->host_ip));
        json_object_set_new(st, "hostIPs", json_pack("[{s:s}]", "ip", env->host_ip));
    }
    if (sm->sandbox && sm->pod_ip[0]) {
        json_object_set_new(st, "podIP", json_string(sm->pod_ip));
        json_object_set_new(st, "podIPs", json_pack("[{s:s}]", "ip", sm->pod_ip));
    }
    json_object_set_new(st, "startTime", ts_json(sm->start_ms));
    json_t *v[MAX_CONTAINERS];
    int nv = 0;
    for (int k = 0; k < sm->ninit; k++)
        v[nv++] = ctr_status(sm, &sm->c[k], false);
    if (nv)
        json_object_set_new(st, "initContainerStatuses", sorted(v, nv));
    nv = 0;
    for (int k = sm->ninit; k < sm->n; k++)
        v[nv++] = ctr_status(sm, &sm->c[k], !initialized);
    json_object_set_new(st, "containerStatuses", sorted(v, nv));
    const char *qos = jstr(old, "qosClass");
    json_object_set_new(st, "qosClass", json_string(qos ? qos : "BestEffort"));
    return st;
}
