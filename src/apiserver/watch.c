/* watch.c — watch streams (?watch=true), read from the watch cache's
 * per-storage event ring.
 *
 * A stream remembers the last revision it delivered (pos). Each call of
 * kc_watch_next takes the events after pos from the shared ring under the
 * storage mutex (references only), filters them by namespace and
 * selectors outside the lock, and formats newline-delimited JSON events;
 * with no events it sleeps on the storage's condition variable (1 s
 * slices, so it notices client hang-ups, timeoutSeconds and shutdown).
 * A watcher that falls behind the ring's start gets a 410 Expired ERROR
 * event and the stream ends, as upstream does for too-old revisions.
 *
 * Selector semantics as upstream: an object that stops matching is sent
 * as DELETED, one that starts matching as ADDED.
 */
#include "apiserver/internal.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "util/timeutil.h"

#define BOOKMARK_EVERY_S 30

struct kc_watch_stream {
    struct kc_server *srv;
    const struct kc_resource *res;
    struct kc_storage *st;
    char prefix[320];
    struct sel sel;
    bool table, bookmarks, initial_end, sent_initial_end, defs_sent, ended, expired;
    bool tree_watcher; /* counted in st->tree_watchers */
    kc_rev_t pos;
    struct kc_obj **initial;
    size_t ninitial, ii;
    time_t last_bookmark;
    double deadline; /* CLOCK_MONOTONIC seconds; 0 = none (whole-second time() made 2 s end after 1.1 s) */
    struct kc_req_info info; /* for apiserver_longrunning_requests */
    struct kc_buf out;  /* formatted bytes not yet handed to the HTTP layer */
    size_t out_off;
    /* objects mode (in-process watchers): events not yet handed over, as shared trees */
    bool objects;
    struct oev { const char *type; json_t *obj; } *q;
    size_t qh, qn, qcap;
};

static void push_obj(struct kc_watch_stream *w, const char *type, json_t *obj /* stolen */)
{
    if (!obj)
        return;
    if (w->qh == w->qn)
        w->qh = w->qn = 0;
    if (w->qn == w->qcap) {
        size_t cap = w->qcap ? w->qcap * 2 : 64;
        struct oev *q = realloc(w->q, cap * sizeof *q);
        if (!q) { /* the watcher re-lists after a broken stream: better than a silent gap */
            json_decref(obj);
            w->ended = true;
            return;
        }
        w->q = q;
        w->qcap = cap;
    }
    w->q[w->qn++] = (struct oev){type, obj};
}

/* type is a string literal (the event types are), so the objects-mode queue may keep the pointer. */
static void emit_bytes(struct kc_watch_stream *w, const char *type, const char *obj, size_t len)
{
    kc_buf_printf(&w->out, "{\"type\":\"%s\",\"object\":", type);
    kc_buf_append(&w->out, obj, len);
    kc_buf_puts(&w->out, "}\n");
}

/* An event whose object was built for this stream (a view, a Table, a bookmark, a Status). */
static void emit_tree(struct kc_watch_stream *w, const char *type, json_t *obj /* stolen */)
{
    if (!obj)
        return;
    if (w->objects) {
        push_obj(w, type, obj);
        return;
    }
    size_t len;
    char *s = kc_json_dump(obj, &len);
    json_decref(obj);
    if (s)
        emit_bytes(w, type, s, len);
    free(s);
}

static void emit(struct kc_watch_stream *w, const char *type, struct kc_obj *o)
{
    if (!w->table && !w->res->from_storage) {
        if (w->objects)
            push_obj(w, type, kc_obj_tree(o));
        else
            emit_bytes(w, type, o->json, o->len);
        return;
    }
    if (!w->table) {
        emit_tree(w, type, kc_obj_view(w->res, o));
        return;
    }
    json_t *t = kc_table_new(w->res, !w->defs_sent);
    w->defs_sent = true;
    json_t *j = kc_obj_view(w->res, o);
    kc_table_add_row(t, w->res, j, time(NULL));
    char rv[32];
    snprintf(rv, sizeof rv, "%lld", (long long)o->rev);
    json_object_set_new(json_object_get(t, "metadata"), "resourceVersion", json_string(rv));
    json_decref(j);
    emit_tree(w, type, t);
}

static void emit_bookmark(struct kc_watch_stream *w, bool initial_end)
{
    char rv[32];
    snprintf(rv, sizeof rv, "%lld", (long long)w->pos);
    json_t *meta = json_pack("{s:s}", "resourceVersion", rv);
    if (initial_end)
        json_object_set_new(meta, "annotations", json_pack("{s:s}", "k8s.io/initial-events-end", "true"));
    emit_tree(w, "BOOKMARK",
              json_pack("{s:s,s:s,s:o}", "kind", w->res->kind, "apiVersion", w->res->api_version, "metadata", meta));
    w->last_bookmark = time(NULL);
}

static void emit_expired(struct kc_watch_stream *w, kc_rev_t asked, kc_rev_t oldest)
{
    char msg[160];
    snprintf(msg, sizeof msg, "too old resource version: %lld (%lld)", (long long)asked, (long long)oldest);
    json_t *st = json_pack("{s:s,s:s,s:{},s:s,s:s,s:s,s:i}", "kind", "Status", "apiVersion", "v1", "metadata",
                           "status", "Failure", "message", msg, "reason", "Expired", "code", 410);
    emit_tree(w, "ERROR", st);
    w->ended = true;
}

static bool in_scope(struct kc_watch_stream *w, struct kc_obj *o)
{
    return !strncmp(o->key, w->prefix, strlen(w->prefix));
}

int kc_watch_start(struct kc_req *req, const struct kc_resource *res, const char *ns, struct kc_resp *resp)
{
    struct kc_watch_stream *w = calloc(1, sizeof *w);
    if (!w) {
        kc_resp_status(resp, 500, "InternalError", "out of memory", NULL, NULL, NULL, NULL);
        return -1;
    }
    if (kc_sel_parse(req, res, &w->sel, resp)) {
        free(w);
        return -1;
    }
    w->srv = req->srv;
    w->res = res;
    w->st = res->storage;
    kc_buf_init(&w->out, KC_BUF_UNLIMITED);
    if (res->namespaced && ns)
        snprintf(w->prefix, sizeof w->prefix, "%s%s/", res->storage_prefix, ns);
    else
        snprintf(w->prefix, sizeof w->prefix, "%s", res->storage_prefix);
    w->table = kc_accept_table(req->accept);
    w->objects = req->watch_objects;
    w->bookmarks = kc_query_bool(req->query, "allowWatchBookmarks");
    const char *ts = kc_query(req->query, "timeoutSeconds");
    if (ts && atol(ts) > 0)
        w->deadline = kc_mono_now() + (double)atol(ts);
    w->last_bookmark = time(NULL);
    const char *rvs = kc_query(req->query, "resourceVersion");
    const char *sie = kc_query(req->query, "sendInitialEvents");
    bool send_initial = sie ? kc_query_bool(req->query, "sendInitialEvents") : false;
    long long rv = rvs && *rvs ? atoll(rvs) : 0;
    if (rvs && *rvs && (rv < 0 || strspn(rvs, "0123456789") != strlen(rvs))) {
        kc_sel_free(&w->sel);
        kc_buf_release(&w->out);
        free(w);
        kc_resp_status(resp, 400, "BadRequest", "invalid resourceVersion: must be a decimal number", NULL, NULL,
                       NULL, NULL);
        return -1;
    }
    if (rv == 0 || send_initial) {
        kc_rev_t srev = 0;
        kc_cache_list(req->srv->cache, w->st, w->prefix, &w->initial, &w->ninitial, &srev);
        w->pos = srev;
        w->initial_end = send_initial;
    } else {
        kc_cache_wait(req->srv->cache, rv, 3000);
        pthread_mutex_lock(&w->st->mu);
        kc_rev_t start = w->st->ring_start_rev;
        pthread_mutex_unlock(&w->st->mu);
        w->pos = rv;
        if (rv < start)
            emit_expired(w, rv, start + 1);
    }
    resp->code = 200;
    resp->content_type = "application/json";
    resp->stream = w;
    w->info = req->info;
    if (w->info.resource_request)
        kc_apimetrics_longrunning(&w->info, 1);
    if (w->objects) {
        atomic_fetch_add(&w->st->tree_watchers, 1);
        w->tree_watcher = true;
    }
    return 0;
}

/* Moves events after pos from the ring into the output buffer. Returns the number examined. */
static size_t drain_ring(struct kc_watch_stream *w, size_t max)
{
    struct kc_wev evs[64];
    size_t n = 0;
    if (max > 64)
        max = 64;
    pthread_mutex_lock(&w->st->mu);
    struct kc_storage *st = w->st;
    if (w->pos < st->ring_start_rev) {
        kc_rev_t start = st->ring_start_rev;
        pthread_mutex_unlock(&st->mu);
        emit_expired(w, w->pos, start + 1);
        return 1;
    }
    /* binary search the first event with rev > pos */
    size_t lo = 0, hi = st->ring_len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (st->ring[(st->ring_head + mid) % st->ring_cap].rev <= w->pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < st->ring_len && n < max; i++) {
        struct kc_wev *e = &st->ring[(st->ring_head + i) % st->ring_cap];
        evs[n] = *e;
        kc_obj_ref(evs[n].obj);
        kc_obj_ref(evs[n].prev);
        n++;
    }
    pthread_mutex_unlock(&st->mu);
    for (size_t i = 0; i < n; i++) {
        struct kc_wev *e = &evs[i];
        w->pos = e->rev;
        bool now_in = in_scope(w, e->obj) && kc_sel_match(&w->sel, e->obj);
        bool was_in = e->prev && in_scope(w, e->prev) && kc_sel_match(&w->sel, e->prev);
        switch (e->type) {
        case KC_WEV_ADDED:
            if (now_in)
                emit(w, "ADDED", e->obj);
            break;
        case KC_WEV_MODIFIED:
            if (now_in && was_in)
                emit(w, "MODIFIED", e->obj);
            else if (now_in)
                emit(w, "ADDED", e->obj);
            else if (was_in)
                emit(w, "DELETED", e->obj);
            break;
        case KC_WEV_DELETED:
            if (now_in)
                emit(w, "DELETED", e->obj);
            break;
        }
        kc_obj_unref(e->obj);
        kc_obj_unref(e->prev);
    }
    return n;
}

static bool client_gone(int fd)
{
    if (fd < 0)
        return false;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
        return true;
    return false;
}

static bool pending(const struct kc_watch_stream *w)
{
    return w->objects ? w->qh < w->qn : w->out_off < w->out.len;
}

/* Waits until the stream has output pending: 1, or it ended: 0, or the client is gone: -1. */
static int produce(struct kc_watch_stream *w, int conn_fd)
{
    for (;;) {
        if (pending(w))
            return 1;
        if (w->ended)
            return 0;
        if (w->srv->stopping || kc_cache_stopping(w->srv->cache))
            return 0;
        /* synthetic ADDED events for the initial state */
        if (w->ii < w->ninitial) {
            for (int k = 0; k < 64 && w->ii < w->ninitial; k++, w->ii++) {
                struct kc_obj *o = w->initial[w->ii];
                if (kc_sel_match(&w->sel, o))
                    emit(w, "ADDED", o);
            }
            if (w->ii == w->ninitial) {
                kc_objs_free(w->initial, w->ninitial);
                w->initial = NULL;
                w->ninitial = w->ii = 0;
                if (w->initial_end && !w->sent_initial_end) {
                    emit_bookmark(w, true);
                    w->sent_initial_end = true;
                }
            }
            continue;
        }
        if (w->initial_end && !w->sent_initial_end) {
            emit_bookmark(w, true);
            w->sent_initial_end = true;
            continue;
        }
        if (drain_ring(w, 64) > 0)
            continue;
        time_t now = time(NULL);
        if (w->deadline > 0 && kc_mono_now() >= w->deadline)
            return 0;
        if (w->bookmarks && now - w->last_bookmark >= BOOKMARK_EVERY_S) {
            emit_bookmark(w, false);
            continue;
        }
        if (client_gone(conn_fd))
            return -1;
        double slice = 1.0; /* to notice hang-ups and shutdown; shorter to end on time */
        if (w->deadline > 0 && w->deadline - kc_mono_now() < slice)
            slice = w->deadline - kc_mono_now() > 0.001 ? w->deadline - kc_mono_now() : 0.001;
        struct timespec dl = kc_deadline(CLOCK_REALTIME, slice);
        pthread_mutex_lock(&w->st->mu);
        size_t len = w->st->ring_len;
        kc_rev_t last = len ? w->st->ring[(w->st->ring_head + len - 1) % w->st->ring_cap].rev : 0;
        if (last <= w->pos && !w->srv->stopping)
            pthread_cond_timedwait(&w->st->cond, &w->st->mu, &dl);
        pthread_mutex_unlock(&w->st->mu);
    }
}

long kc_watch_next(struct kc_watch_stream *w, char *buf, size_t max, int conn_fd)
{
    int r = produce(w, conn_fd);
    if (r <= 0)
        return r;
    size_t n = w->out.len - w->out_off;
    if (n > max)
        n = max;
    memcpy(buf, w->out.data + w->out_off, n);
    w->out_off += n;
    if (w->out_off == w->out.len) {
        w->out.len = 0;
        w->out_off = 0;
    }
    return (long)n;
}

int kc_watch_next_obj(struct kc_watch_stream *w, const char **type, json_t **obj, int conn_fd)
{
    int r = produce(w, conn_fd);
    if (r <= 0)
        return r;
    *type = w->q[w->qh].type;
    *obj = w->q[w->qh].obj;
    w->qh++;
    return 1;
}

void kc_watch_free(struct kc_watch_stream *w)
{
    if (!w)
        return;
    if (w->info.resource_request)
        kc_apimetrics_longrunning(&w->info, -1);
    if (w->tree_watcher)
        atomic_fetch_sub(&w->st->tree_watchers, 1);
    kc_objs_free(w->initial, w->ninitial);
    kc_sel_free(&w->sel);
    kc_buf_release(&w->out);
    for (size_t i = w->qh; i < w->qn; i++)
        json_decref(w->q[i].obj);
    free(w->q);
    free(w);
}
