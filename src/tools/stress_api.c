/* stress_api.c — every API call `kubec stress` makes goes through here, so the report can show the
 * client-side latency per verb and keep throttling (429), conflicts (409) and errors apart from it.
 *
 * The client is built without a rate limit; --qps is a token bucket here, taken before the clock starts,
 * so a latency is the server's (and the network's) time, not our own queueing. The client library
 * retries a 429 that carries Retry-After itself (up to 3 times); what reaches us is counted as throttled.
 * Thread-safe: creators, the progress loop and cleanup share one struct st_api (one mutex).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/stress_int.h"
#include "util/timeutil.h"
#include "util/jsonparse.h"

#define MAX_LAT_SAMPLES (4u * 1024 * 1024) /* per verb; beyond this we still count, not keep */

const char *const st_verb_names[ST_NVERBS] = {"create", "get", "list", "patch", "delete", "deletecollection"};

void st_api_init(struct st_api *a, struct kc_client *c, double qps)
{
    memset(a, 0, sizeof *a);
    a->c = c;
    pthread_mutex_init(&a->mu, NULL);
    a->qps = qps;
    a->tokens = qps > 0 ? (qps < 1 ? 1 : qps) : 0;
    a->last = kc_mono_now();
}

void st_api_release(struct st_api *a)
{
    for (int i = 0; i < ST_NVERBS; i++)
        free(a->v[i].lat);
    pthread_mutex_destroy(&a->mu);
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Token bucket (burst = one second of qps): reserve a token, sleep outside the lock until it is ours. */
static void rate_wait(struct st_api *a)
{
    if (a->qps <= 0)
        return;
    pthread_mutex_lock(&a->mu);
    double now = kc_mono_now(), burst = a->qps < 1 ? 1 : a->qps;
    a->tokens += (now - a->last) * a->qps;
    if (a->tokens > burst)
        a->tokens = burst;
    a->last = now;
    a->tokens -= 1;
    double wait = a->tokens < 0 ? -a->tokens / a->qps : 0;
    pthread_mutex_unlock(&a->mu);
    sleep_s(wait);
}

static void record(struct st_api *a, enum st_verb verb, double lat, int code)
{
    pthread_mutex_lock(&a->mu);
    struct st_verbstat *v = &a->v[verb];
    v->total++;
    if (code >= 200 && code < 300)
        v->ok++;
    else if (code == 429)
        v->throttled++;
    else if (code == 409)
        v->conflicts++;
    else if (!(verb == ST_V_GET && code == 404) && !(verb == ST_V_DELETE && code == 404))
        v->errors++; /* a 404 on get/delete is an answer (gone), not a failure */
    if (v->n == v->cap && v->cap < MAX_LAT_SAMPLES) {
        size_t cap = v->cap ? v->cap * 2 : 1024;
        double *p = realloc(v->lat, cap * sizeof *p);
        if (p) {
            v->lat = p;
            v->cap = cap;
        }
    }
    if (v->n < v->cap)
        v->lat[v->n++] = lat;
    pthread_mutex_unlock(&a->mu);
}

static bool mutating(enum st_verb v) { return v == ST_V_CREATE || v == ST_V_PATCH || v == ST_V_DELETE || v == ST_V_DELETECOLLECTION; }

int st_api_call(struct st_api *a, enum st_verb verb, const char *method, const char *path, const char *ctype,
                json_t *body, json_t **out, int *code, struct kc_err *err)
{
    if (out)
        *out = NULL;
    *code = 0;
    char *s = NULL;
    size_t len = 0;
    if (body) {
        s = json_dumps(body, JSON_COMPACT);
        if (!s)
            return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "cannot serialise a request body");
        len = strlen(s);
    }
    if (mutating(verb))
        rate_wait(a);
    struct kc_client_resp r;
    double t0 = kc_mono_now();
    int rc = kc_client_request(a->c, method, path, s ? (ctype ? ctype : "application/json") : NULL, s, len, &r, err);
    double lat = kc_mono_now() - t0;
    free(s);
    *code = rc ? 0 : r.code;
    record(a, verb, lat, *code);
    if (rc)
        return rc;
    if (r.code < 200 || r.code >= 300) {
        rc = kc_client_status_error(&r, err);
    } else if (out && r.len) {
        json_error_t je;
        *out = kc_json_loadb(r.body, r.len, 0, &je);
        if (!*out)
            rc = kc_err_set(err, KC_EIO, 0, "InternalError", "%s %s: bad JSON in the answer: %s", method, path,
                            je.text);
    }
    kc_client_resp_release(&r);
    return rc;
}

int st_api_get_raw(struct st_api *a, const char *path, char **body, struct kc_err *err)
{
    struct kc_client_resp r;
    *body = NULL;
    double t0 = kc_mono_now();
    int rc = kc_client_request(a->c, "GET", path, NULL, NULL, 0, &r, err);
    record(a, ST_V_GET, kc_mono_now() - t0, rc ? 0 : r.code);
    if (rc)
        return rc;
    if (r.code != 200) {
        rc = kc_client_status_error(&r, err);
        kc_client_resp_release(&r);
        return rc;
    }
    *body = r.body; /* hand over the buffer */
    r.body = NULL;
    kc_client_resp_release(&r);
    return 0;
}

uint64_t st_api_errors(struct st_api *a, uint64_t *requests)
{
    uint64_t e = 0, n = 0;
    pthread_mutex_lock(&a->mu);
    for (int i = 0; i < ST_NVERBS; i++) {
        e += a->v[i].errors;
        n += a->v[i].total;
    }
    pthread_mutex_unlock(&a->mu);
    if (requests)
        *requests = n;
    return e;
}
