/* runc_imgreq.c — image requests addressed to this node through its Node object
 * (`kubec images pull|prune --node N`, docs/images.md "Pre-warm").
 *
 * Why annotations on the Node: the request then travels the way every other instruction to a node
 * does — through the API server, with its authentication, RBAC (patch nodes) and audit — and the agent
 * needs no inbound connection (agents behind NAT, or whose port 10250 the client cannot reach, still
 * answer). The request and the answer are visible with `kubectl get node N -o yaml`.
 *
 *   images.kubec.io/request  {"id":"<hex>","op":"pull"|"prune","image":"REF","force":false,
 *                             "secrets":["NS/NAME",...]}                       (written by the client)
 *   images.kubec.io/result   {"id":"<same>","op":..,"ok":true|false,"reason":..,"message":..,
 *                             "image":..,"digest":..,"sizeBytes":N,"freedBytes":N,"durationMs":N}
 *                                                                              (written by the agent)
 *
 * One request at a time per node (a newer request replaces an unanswered one: last writer wins, the
 * client sees an answer with another id and says so). After each answer status.images is re-sent.
 * Thread: one poller per real node, GET of its own Node once a second (one small object; a polling loop
 * keeps shutdown immediate, where a watch would have to be interrupted). Pulls block this thread only.
 */
#include "agent/runc_imgreq.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/timeutil.h"
#include "util/jsonparse.h"

#define ANN_REQ "images.kubec.io/request"
#define ANN_RES "images.kubec.io/result"
#define MAX_REQ_BYTES (64 * 1024)
#define MAX_SECRETS 16
#define MAX_IN_USE 1024

struct kc_imgreq {
    struct kc_client *c;
    struct kc_image_store *images;
    char node[256];
    char last_id[80];
    pthread_t thr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
};

static json_t *ann_json(json_t *node, const char *key)
{
    const char *s = json_string_value(json_object_get(json_object_get(json_object_get(node, "metadata"),
                                                                      "annotations"), key));
    if (!s || strlen(s) > MAX_REQ_BYTES)
        return NULL;
    return kc_json_loads(s, 0, NULL);
}

static void add_secret(struct kc_imgreq *q, json_t *auths, const char *nsname)
{
    char ns[256] = "default", name[256], path[700];
    const char *slash = strchr(nsname, '/');
    if (slash && (size_t)(slash - nsname) < sizeof ns) {
        snprintf(ns, sizeof ns, "%.*s", (int)(slash - nsname), nsname);
        snprintf(name, sizeof name, "%s", slash + 1);
    } else {
        snprintf(name, sizeof name, "%s", nsname);
    }
    json_t *sec = NULL;
    struct kc_err err = {0};
    if (!kc_path(path, sizeof path, "", "v1", "secrets", ns, name, NULL) || kc_client_get(q->c, path, &sec, &err)) {
        kc_image_auths_note_secret(auths, nsname, "not found");
        return;
    }
    if (kc_image_auths_add_secret(auths, sec, &err))
        kc_image_auths_note_secret(auths, nsname, err.message);
    json_decref(sec);
}

static void do_pull(struct kc_imgreq *q, json_t *req, json_t *res)
{
    const char *image = json_string_value(json_object_get(req, "image"));
    json_t *auths = json_object();
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(req, "secrets"), i, s) if (i < MAX_SECRETS && json_is_string(s))
        add_secret(q, auths, json_string_value(s));
    struct kc_image_info info = {0};
    struct kc_err err = {0};
    if (!image || strlen(image) > 512) {
        kc_err_set(&err, KC_EINVAL, 0, "InvalidImageName", "no image (or a name over 512 bytes) in the request");
    } else if (!kc_image_pull(q->images, image, json_object_size(auths) ? auths : NULL,
                              json_is_true(json_object_get(req, "force")), &info, &err)) {
        json_object_set_new(res, "ok", json_true());
        json_object_set_new(res, "image", json_string(info.ref));
        json_object_set_new(res, "digest", json_string(info.digest));
        json_object_set_new(res, "sizeBytes", json_integer(info.size_bytes));
        json_decref(info.config);
    }
    if (err.message[0]) {
        json_object_set_new(res, "reason", json_string(err.reason[0] ? err.reason : "ErrImagePull"));
        json_object_set_new(res, "message", json_string(err.message));
    }
    json_decref(auths);
}

/* Images of the pods bound to this node that have not finished: kept by prune. */
static json_t *in_use_images(struct kc_imgreq *q, struct kc_err *err)
{
    char path[600], sel[400];
    snprintf(sel, sizeof sel, "spec.nodeName=%s", q->node);
    char esc[500];
    if (kc_url_escape(sel, esc, sizeof esc))
        return NULL;
    snprintf(path, sizeof path, "/api/v1/pods?fieldSelector=%s", esc);
    json_t *list = NULL;
    if (kc_client_get(q->c, path, &list, err))
        return NULL;
    json_t *out = json_array();
    size_t i, j;
    json_t *p, *c;
    json_array_foreach(json_object_get(list, "items"), i, p)
    {
        const char *phase = json_string_value(json_object_get(json_object_get(p, "status"), "phase")) ?: "";
        if (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed"))
            continue;
        static const char *const kinds[] = {"containers", "initContainers"};
        for (int k = 0; k < 2; k++)
            json_array_foreach(json_object_get(json_object_get(p, "spec"), kinds[k]), j, c)
            {
                const char *img = json_string_value(json_object_get(c, "image"));
                if (img && json_array_size(out) < MAX_IN_USE)
                    json_array_append_new(out, json_string(img));
            }
    }
    json_decref(list);
    return out;
}

static void do_prune(struct kc_imgreq *q, json_t *res)
{
    struct kc_err err = {0};
    json_t *used = in_use_images(q, &err);
    if (used) {
        size_t n = json_array_size(used);
        const char **keep = calloc(n + 1, sizeof *keep);
        int64_t freed = 0;
        for (size_t i = 0; keep && i < n; i++)
            keep[i] = json_string_value(json_array_get(used, i));
        if (keep && !kc_image_prune(q->images, keep, &freed, &err)) {
            json_object_set_new(res, "ok", json_true());
            json_object_set_new(res, "freedBytes", json_integer(freed));
            json_object_set_new(res, "kept", json_incref(used));
        }
        free(keep);
        json_decref(used);
    }
    if (err.message[0]) {
        json_object_set_new(res, "reason", json_string(err.reason[0] ? err.reason : "Error"));
        json_object_set_new(res, "message", json_string(err.message));
    }
}

static void answer(struct kc_imgreq *q, json_t *res)
{
    char path[400], *s = json_dumps(res, JSON_COMPACT);
    struct kc_err err = {0};
    kc_path(path, sizeof path, "", "v1", "nodes", NULL, q->node, NULL);
    json_t *patch = json_pack("{s:{s:{s:s}}}", "metadata", "annotations", ANN_RES, s ? s : "{}");
    kc_client_patch(q->c, path, "application/merge-patch+json", patch, NULL, &err);
    json_decref(patch);
    free(s);
    /* status.images now, not at the next status round, so that `kubec images ls` shows the change */
    kc_path(path, sizeof path, "", "v1", "nodes", NULL, q->node, "status");
    json_t *imgs = kc_image_list(q->images);
    patch = json_pack("{s:{s:o}}", "status", "images", imgs ? imgs : json_array());
    kc_client_patch(q->c, path, "application/merge-patch+json", patch, NULL, &err);
    json_decref(patch);
}

static void poll_once(struct kc_imgreq *q)
{
    char path[400];
    json_t *node = NULL;
    struct kc_err err = {0};
    kc_path(path, sizeof path, "", "v1", "nodes", NULL, q->node, NULL);
    if (kc_client_get(q->c, path, &node, &err))
        return;
    json_t *req = ann_json(node, ANN_REQ), *prev = ann_json(node, ANN_RES);
    json_decref(node);
    const char *id = json_string_value(json_object_get(req, "id"));
    const char *done = json_string_value(json_object_get(prev, "id"));
    if (id && strlen(id) < sizeof q->last_id && strcmp(id, q->last_id) && !(done && !strcmp(done, id))) {
        const char *op = json_string_value(json_object_get(req, "op")) ?: "";
        json_t *res = json_pack("{s:s,s:s,s:b}", "id", id, "op", op, "ok", 0);
        double t0 = kc_mono_now();
        if (!strcmp(op, "pull"))
            do_pull(q, req, res);
        else if (!strcmp(op, "prune"))
            do_prune(q, res);
        else
            json_object_set_new(res, "message", json_string("unknown op (want pull or prune)"));
        json_object_set_new(res, "durationMs", json_integer((json_int_t)((kc_mono_now() - t0) * 1000)));
        answer(q, res);
        json_decref(res);
    }
    if (id && strlen(id) < sizeof q->last_id)
        snprintf(q->last_id, sizeof q->last_id, "%s", id);
    json_decref(req);
    json_decref(prev);
}

static void *poller(void *arg)
{
    struct kc_imgreq *q = arg;
    pthread_mutex_lock(&q->mu);
    while (!q->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&q->cv, &q->mu, &ts);
        if (q->stop)
            break;
        pthread_mutex_unlock(&q->mu);
        poll_once(q);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

int kc_imgreq_start(struct kc_client *c, const char *node, struct kc_image_store *images, struct kc_imgreq **out,
                    struct kc_err *err)
{
    struct kc_imgreq *q = calloc(1, sizeof *q);
    if (!q)
        return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
    q->c = c;
    q->images = images;
    snprintf(q->node, sizeof q->node, "%s", node);
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    if (pthread_create(&q->thr, NULL, poller, q)) {
        pthread_cond_destroy(&q->cv);
        pthread_mutex_destroy(&q->mu);
        free(q);
        return kc_err_set(err, KC_EIO, 0, "InternalError", "cannot start the image request thread");
    }
    *out = q;
    return 0;
}

void kc_imgreq_stop(struct kc_imgreq *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->stop = true;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thr, NULL);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q);
}
