/* store_etcd.c — the etcd backend of the store interface (store.h), over
 * etcd's v3 JSON gateway (POST /v3/kv/range, /v3/kv/txn, /v3/kv/compaction,
 * /v3/watch) with libcurl. Keys and values travel base64-encoded; int64s
 * come back as JSON strings.
 *
 * Mapping: the store revision IS etcd's revision (header.revision), so
 * several kubec servers on one etcd share it; mod_rev/create_rev are the
 * kv's mod_revision/create_revision. create/update/del are one txn each
 * (compare create_revision == 0, or mod_revision == expect, then put or
 * delete; else read the key to report NotFound/Conflict), so a failed CAS
 * consumes no revision, as in etcd. Keys: with the default prefix
 * "/registry" our keys are etcd's keys; with another prefix P the leading
 * "/registry" of our keys is replaced by P (and keys must start with
 * "/registry"). The key "compact_rev_key" (outside /registry, shared with
 * kube-apiserver) coordinates background compaction and is never shown.
 *
 * Data structures: struct etcd_store (endpoints, a pool of curl easy
 * handles kept alive between requests, revision hints, the list of
 * watches); struct kc_watch (one etcd watch stream).
 *
 * Threads: callers do their HTTP requests on their own thread with a handle
 * from the pool. Each watch has a thread driving one streaming POST
 * /v3/watch (a curl multi handle, so unwatch can wake it at once); it
 * parses one JSON object per line and calls the watch callback. A watch
 * stream covers the store's whole key space and filters by prefix locally,
 * so every stream sees every revision of ours: that is how a write can wait
 * until every watch of this store has delivered it before returning (the
 * same guarantee as the SQLite backend, for writes made through this
 * store), and how watch(from_rev) can deliver the known history before it
 * returns. One optional compactor thread runs kube-apiserver's compaction
 * scheme. */
#include "store/store_internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/buf.h"
#include "util/timeutil.h"
#include "util/jsonparse.h"

#define REGISTRY "/registry"
#define REGISTRY_LEN 9
#define COMPACT_KEY "compact_rev_key"
#define MAX_ENDPOINTS 16
#define MAX_ENDPOINT_LEN 512
#define POOL_IDLE_MAX 128
#define LIST_PAGE 500
/* One HTTP response / one watch line: a list page or a watch batch of big values. */
#define MAX_RESPONSE (512u * 1024u * 1024u)
/* Request bodies: a 16 MiB value in base64 plus the key and JSON around it. */
#define MAX_REQUEST (KC_STORE_MAX_VALUE / 3 * 4 + 4 * KC_STORE_MAX_KEY + 4096)
/* A write waits at most this long for the store's watches to deliver it. */
#define SYNC_WAIT_MS 10000

struct etcd_store {
    struct kc_store base;
    char *eps[MAX_ENDPOINTS];
    size_t neps;
    atomic_size_t cur_ep;
    char *cafile, *certfile, *keyfile;
    char *root;        /* etcd prefix that replaces "/registry" */
    size_t rootlen;
    bool identity;     /* root == "/registry": keys stored as they are */
    long dial_ms, req_ms;

    pthread_mutex_t pool_mu;
    CURL *idle[POOL_IDLE_MAX];
    size_t nidle;

    atomic_llong last_rev;   /* highest header.revision seen: current_rev's fallback */
    atomic_llong event_rev;  /* highest revision known to be an event in our key space */
    atomic_llong compacted;
    atomic_int inflight;     /* calls in progress (close waits for them) */
    atomic_bool closing;

    pthread_mutex_t wmu;     /* watches, their positions and states */
    pthread_cond_t wcond;
    struct kc_watch *watches;

    int compact_interval_s;
    pthread_t compactor;
    bool compactor_started, compactor_stop;
    pthread_mutex_t cmu;
    pthread_cond_t ccond;
};

enum wstate { W_STARTING, W_LIVE, W_DEAD };

struct kc_watch {
    struct etcd_store *s;
    struct kc_watch *next, *prev;
    char *prefix;
    size_t plen;
    kc_watch_cb cb;
    kc_watch_end_cb end;
    void *ctx;
    pthread_t thread;
    CURLM *multi;
    atomic_bool stop;
    /* Guarded by s->wmu: */
    enum wstate state;
    int dead_rc;         /* why it is dead: KC_ECOMPACTED, KC_EIO, 0 (callback stopped it) */
    bool returned;       /* watch() has returned: deaths are reported through end */
    kc_rev_t start;      /* first revision this watch delivers */
    kc_rev_t pos;        /* highest revision processed */
    /* Owned by the watch thread: */
    kc_rev_t next_rev;   /* revision to (re)start the etcd stream from; 0 = etcd's current + 1 */
    bool cb_stopped;
    bool stream_failed;  /* this connection must be dropped and reopened */
    struct kc_buf line;
};

static const struct kc_store_ops etcd_ops;

/* ---------- small helpers ---------- */

static void init_curl_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static int oom(struct kc_err *err) { return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory"); }

static void atomic_max(atomic_llong *a, kc_rev_t v)
{
    long long cur = atomic_load(a);
    while (cur < v && !atomic_compare_exchange_weak(a, &cur, v))
        ;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_append(struct kc_buf *b, const void *data, size_t n)
{
    const unsigned char *p = data;
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        q[0] = B64[(v >> 18) & 63];
        q[1] = B64[(v >> 12) & 63];
        q[2] = i + 1 < n ? B64[(v >> 6) & 63] : '=';
        q[3] = i + 2 < n ? B64[v & 63] : '=';
        int rc = kc_buf_append(b, q, 4);
        if (rc)
            return rc;
    }
    return 0;
}

static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

/* Decodes s (NULL = empty) into a fresh NUL-terminated buffer. */
static int b64_decode(const char *s, char **out, size_t *outlen)
{
    size_t n = s ? strlen(s) : 0;
    char *o = malloc(n / 4 * 3 + 4);
    if (!o)
        return KC_ENOMEM;
    size_t len = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n && s[i] != '='; i++) {
        int v = b64_val(s[i]);
        if (v < 0) {
            free(o);
            return KC_EIO;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[len++] = (char)((acc >> bits) & 0xFF);
        }
    }
    o[len] = 0;
    *out = o;
    *outlen = len;
    return 0;
}

/* int64 fields arrive as JSON strings ("42"); accept numbers too. */
static kc_rev_t jint(const json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    return 0;
}

static const char *jstr(const json_t *o, const char *name)
{
    return json_string_value(json_object_get(o, name));
}

/* ---------- key mapping ---------- */

/* Appends the etcd form of our key (or prefix) k to b, base64-encoded.
 * Returns 1 if k has no etcd form (custom prefix, key outside /registry). */
static int map_key_b64(struct etcd_store *s, const char *k, size_t klen, struct kc_buf *b)
{
    if (s->identity)
        return b64_append(b, k, klen);
    if (klen < REGISTRY_LEN || memcmp(k, REGISTRY, REGISTRY_LEN) != 0)
        return 1;
    struct kc_buf raw;
    kc_buf_init(&raw, MAX_REQUEST);
    int rc = kc_buf_append(&raw, s->root, s->rootlen);
    if (!rc)
        rc = kc_buf_append(&raw, k + REGISTRY_LEN, klen - REGISTRY_LEN);
    if (!rc)
        rc = b64_append(b, raw.data ? raw.data : "", raw.len);
    kc_buf_release(&raw);
    return rc;
}

/* Decodes an etcd key and maps it back to ours. Returns 1 for keys that are
 * not ours (outside the prefix, or the compaction key). */
static int unmap_key(struct etcd_store *s, const char *b64, char **out, size_t *outlen)
{
    char *raw;
    size_t n;
    if (b64_decode(b64, &raw, &n))
        return KC_EIO;
    if (n == strlen(COMPACT_KEY) && !memcmp(raw, COMPACT_KEY, n)) {
        free(raw);
        return 1;
    }
    if (s->identity) {
        *out = raw;
        *outlen = n;
        return 0;
    }
    if (n < s->rootlen || memcmp(raw, s->root, s->rootlen) != 0) {
        free(raw);
        return 1;
    }
    char *k = malloc(n - s->rootlen + REGISTRY_LEN + 1);
    if (!k) {
        free(raw);
        return KC_ENOMEM;
    }
    memcpy(k, REGISTRY, REGISTRY_LEN);
    memcpy(k + REGISTRY_LEN, raw + s->rootlen, n - s->rootlen);
    *outlen = n - s->rootlen + REGISTRY_LEN;
    k[*outlen] = 0;
    free(raw);
    *out = k;
    return 0;
}

/* The etcd range [key, end) (raw bytes) holding our keys with prefix p.
 * An empty end means "to the end of the key space". Returns 1 if no key of
 * ours can have this prefix. */
static int prefix_range(struct etcd_store *s, const char *p, size_t plen, char *key, size_t *klen, char *end,
                        size_t *elen)
{
    char mapped[KC_STORE_MAX_KEY + 256];
    size_t mlen;
    if (s->identity) {
        memcpy(mapped, p, plen);
        mlen = plen;
    } else if (plen <= REGISTRY_LEN && !memcmp(p, REGISTRY, plen)) {
        memcpy(mapped, s->root, s->rootlen); /* every key of ours */
        mlen = s->rootlen;
    } else if (plen > REGISTRY_LEN && !memcmp(p, REGISTRY, REGISTRY_LEN)) {
        memcpy(mapped, s->root, s->rootlen);
        memcpy(mapped + s->rootlen, p + REGISTRY_LEN, plen - REGISTRY_LEN);
        mlen = s->rootlen + plen - REGISTRY_LEN;
    } else {
        return 1;
    }
    if (mlen == 0) {
        key[0] = 0;
        *klen = 1; /* "\0": the first key */
        *elen = 0;
        return 0;
    }
    memcpy(key, mapped, mlen);
    *klen = mlen;
    mapped[mlen] = 0;
    kc_store_prefix_end(mapped, mlen, end);
    *elen = mlen;
    return 0;
}

/* ---------- HTTP ---------- */

static size_t collect_cb(char *p, size_t sz, size_t n, void *ud)
{
    return kc_buf_append(ud, p, sz * n) ? 0 : sz * n;
}

static CURL *handle_get(struct etcd_store *s)
{
    pthread_mutex_lock(&s->pool_mu);
    CURL *h = s->nidle ? s->idle[--s->nidle] : NULL;
    pthread_mutex_unlock(&s->pool_mu);
    if (h)
        return h;
    return curl_easy_init();
}

static void handle_put(struct etcd_store *s, CURL *h)
{
    pthread_mutex_lock(&s->pool_mu);
    if (s->nidle < POOL_IDLE_MAX) {
        s->idle[s->nidle++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&s->pool_mu);
    if (h)
        curl_easy_cleanup(h);
}

static struct curl_slist *g_headers;
static void headers_init(void)
{
    /* "Expect:" off: curl would otherwise wait for a 100 on large bodies.
     * hasleader: etcd then fails requests and ends watches on a member that
     * lost its leader, instead of stalling, so we fail over. */
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "Grpc-Metadata-hasleader: true");
    g_headers = curl_slist_append(h, "Expect:");
}

static void setup_handle(struct etcd_store *s, CURL *h, const char *url, const char *body, size_t blen)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, headers_init);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, g_headers);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, s->dial_ms);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    if (s->cafile)
        curl_easy_setopt(h, CURLOPT_CAINFO, s->cafile);
    if (s->certfile)
        curl_easy_setopt(h, CURLOPT_SSLCERT, s->certfile);
    if (s->keyfile)
        curl_easy_setopt(h, CURLOPT_SSLKEY, s->keyfile);
}

/* Connection errors after which the request cannot have reached etcd. */
static bool not_sent(CURLcode c)
{
    return c == CURLE_COULDNT_CONNECT || c == CURLE_COULDNT_RESOLVE_HOST || c == CURLE_COULDNT_RESOLVE_PROXY ||
           c == CURLE_SSL_CONNECT_ERROR;
}

/* Maps an etcd error message (gRPC status text) onto our codes. */
static int etcd_error(struct etcd_store *s, const char *msg, long http, struct kc_err *err)
{
    if (!msg)
        msg = "no error message";
    if (strstr(msg, "required revision has been compacted"))
        return kc_err_set(err, KC_ECOMPACTED, 410, "Expired", "etcd: %s", msg);
    if (strstr(msg, "required revision is a future revision"))
        return kc_err_set(err, KC_EFUTURE, 504, "Timeout", "etcd: %s", msg);
    if (strstr(msg, "too large") || strstr(msg, "larger than max"))
        return kc_err_set(err, KC_ETOOLARGE, 413, "RequestEntityTooLarge", "etcd: %s", msg);
    if (strstr(msg, "no leader") || strstr(msg, "timed out") || strstr(msg, "too many requests") ||
        strstr(msg, "leader changed") || strstr(msg, "not capable") || strstr(msg, "stopped"))
        return kc_err_set(err, KC_EIO, 503, "ServiceUnavailable", "etcd: %s", msg);
    (void)s;
    return kc_err_set(err, KC_EIO, 500, "InternalError", "etcd (HTTP %ld): %s", http, msg);
}

/* How etcd_call may re-send a request after a transport failure. */
enum call_mode {
    CALL_ONCE = 0,       /* never after it may have reached etcd (non-idempotent, unresolvable) */
    CALL_IDEMPOTENT = 1, /* after any transport failure */
    CALL_RESOLVE = 2,    /* also after it may have reached etcd; *ambiguous tells the caller, which
                          * resolves the outcome from the txn's read-back (creates and updates) */
};

static int etcd_call_ex(struct etcd_store *s, const char *path, const struct kc_buf *body, enum call_mode mode,
                        json_t **out, bool *ambiguous, struct kc_err *err);

/* POSTs body to path on the current endpoint, failing over to the next ones
 * when the connection cannot be made (any transport failure if idempotent).
 * On success *out is the parsed response (caller decrefs). */
static int etcd_call(struct etcd_store *s, const char *path, const struct kc_buf *body, bool idempotent,
                     json_t **out, struct kc_err *err)
{
    return etcd_call_ex(s, path, body, idempotent ? CALL_IDEMPOTENT : CALL_ONCE, out, NULL, err);
}

/* A request "may have reached etcd" unless the connection could not be made. Careful: when a handle
 * reuses a kept-alive connection that the server has meanwhile closed (a member was killed), libcurl
 * re-sends transparently on a fresh connection, and if THAT connect fails it reports
 * CURLE_COULDNT_CONNECT although the first send may have been processed. So a connect failure only
 * proves "not sent" on a handle that had no connection to that endpoint; the handle's CURLOPT_PRIVATE
 * remembers the endpoint (index + 1) of its last successful request. */
static int etcd_call_ex(struct etcd_store *s, const char *path, const struct kc_buf *body, enum call_mode mode,
                        json_t **out, bool *ambiguous, struct kc_err *err)
{
    CURL *h = handle_get(s);
    if (!h)
        return oom(err);
    struct kc_buf resp;
    kc_buf_init(&resp, MAX_RESPONSE);
    char url[MAX_ENDPOINT_LEN + 64];
    int rc = 0;
    CURLcode cc = CURLE_OK;
    size_t start = atomic_load(&s->cur_ep);
    for (size_t attempt = 0; attempt < s->neps; attempt++) {
        size_t ep = (start + attempt) % s->neps;
        char *priv = NULL;
        curl_easy_getinfo(h, CURLINFO_PRIVATE, &priv);
        bool warm = priv && (uintptr_t)priv == (uintptr_t)ep + 1;
        snprintf(url, sizeof url, "%s%s", s->eps[ep], path);
        setup_handle(s, h, url, body->data ? body->data : "", body->len);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, s->req_ms);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect_cb);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
        resp.len = 0;
        cc = curl_easy_perform(h);
        if (cc == CURLE_OK) {
            curl_easy_setopt(h, CURLOPT_PRIVATE, (void *)((uintptr_t)ep + 1));
            if (ep != start) {
                size_t exp = start;
                atomic_compare_exchange_strong(&s->cur_ep, &exp, ep);
            }
            break;
        }
        curl_easy_setopt(h, CURLOPT_PRIVATE, NULL);
        bool maybe_sent = warm || !not_sent(cc);
        if (maybe_sent && mode == CALL_ONCE)
            break;
        if (maybe_sent && ambiguous)
            *ambiguous = true;
    }
    if (cc != CURLE_OK) {
        handle_put(s, h);
        kc_buf_release(&resp);
        if (cc == CURLE_WRITE_ERROR)
            return kc_err_set(err, KC_ETOOLARGE, 500, "InternalError", "etcd response larger than %u bytes",
                              MAX_RESPONSE);
        return kc_err_set(err, KC_EIO, 503, "ServiceUnavailable", "etcd %s: %s (tried %zu endpoint(s))", path,
                          curl_easy_strerror(cc), s->neps);
    }
    long http = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
    handle_put(s, h);
    json_error_t je;
    json_t *j = kc_json_loadb(resp.data ? resp.data : "", resp.len, 0, &je);
    kc_buf_release(&resp);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return kc_err_set(err, KC_EIO, 500, "InternalError", "etcd %s: HTTP %ld, unparsable response", path,
                          http);
    }
    if (http != 200 || json_object_get(j, "error")) {
        json_t *e = json_object_get(j, "error");
        rc = etcd_error(s, json_is_string(e) ? json_string_value(e) : jstr(j, "message"), http, err);
        json_decref(j);
        return rc;
    }
    atomic_max(&s->last_rev, jint(json_object_get(j, "header"), "revision"));
    *out = j;
    return 0;
}

/* Wraps a call in the in-flight count close() waits for. */
static bool enter(struct etcd_store *s, struct kc_err *err, int *rc)
{
    atomic_fetch_add(&s->inflight, 1);
    if (atomic_load(&s->closing)) {
        atomic_fetch_sub(&s->inflight, 1);
        *rc = kc_err_set(err, KC_ECLOSED, 503, "ServiceUnavailable", "store is closing");
        return false;
    }
    return true;
}

static void leave(struct etcd_store *s) { atomic_fetch_sub(&s->inflight, 1); }

/* ---------- kv decoding ---------- */

/* Fills out from an etcd kv object. 1 if the key is not ours. */
static int kv_from_json(struct etcd_store *s, const json_t *kv, struct kc_kv *out)
{
    char *k, *v;
    size_t kl, vl;
    int rc = unmap_key(s, jstr(kv, "key"), &k, &kl);
    if (rc)
        return rc;
    if (b64_decode(jstr(kv, "value"), &v, &vl)) {
        free(k);
        return KC_EIO;
    }
    out->key = k;
    out->value = v;
    out->value_len = vl;
    out->create_rev = jint(kv, "create_revision");
    out->mod_rev = jint(kv, "mod_revision");
    atomic_max(&s->event_rev, out->mod_rev);
    return 0;
}

static int check_value(size_t len, struct kc_err *err)
{
    if (len > KC_STORE_MAX_VALUE)
        return kc_err_set(err, KC_ETOOLARGE, 413, "RequestEntityTooLarge", "value longer than %u bytes",
                          KC_STORE_MAX_VALUE);
    return 0;
}

static int no_form(struct kc_err *err, const char *key)
{
    return kc_err_set(err, KC_EINVAL, 400, "BadRequest",
                      "key %.200s is outside " REGISTRY ", which a custom etcd prefix replaces", key);
}

/* ---------- get / list ---------- */

static int etcd_get(struct kc_store *base, const char *key, struct kc_kv *out, struct kc_err *err)
{
    struct etcd_store *s = (struct etcd_store *)base;
    size_t klen;
    int rc = kc_store_check_key(key, 0, &klen, err);
    if (rc || !enter(s, err, &rc))
        return rc;
    struct kc_buf b;
    kc_buf_init(&b, MAX_REQUEST);
    kc_buf_puts(&b, "{\"key\":\"");
    rc = map_key_b64(s, key, klen, &b);
    if (rc == 1) {
        rc = kc_err_set(err, KC_ENOTFOUND, 404, "NotFound", "%.200s not found", key);
        goto out;
    }
    if (rc || (rc = kc_buf_puts(&b, "\"}"))) {
        rc = oom(err);
        goto out;
    }
    json_t *j;
    rc = etcd_call(s, "/v3/kv/range", &b, true, &j, err);
    if (rc)
        goto out;
    json_t *kv = json_array_get(json_object_get(j, "kvs"), 0);
    if (!kv)
        rc = kc_err_set(err, KC_ENOTFOUND, 404, "NotFound", "%.200s not found", key);
    else if ((rc = kv_from_json(s, kv, out)) != 0)
        rc = rc == KC_ENOMEM ? oom(err) : kc_err_set(err, KC_EIO, 500, "InternalError", "bad kv from etcd");
    json_decref(j);
out:
    kc_buf_release(&b);
    leave(s);
    return rc;
}

/* 0 if a read at revision rev works, KC_ECOMPACTED if rev is compacted. */
static int read_at(struct etcd_store *s, kc_rev_t rev)
{
    struct kc_buf b;
    kc_buf_init(&b, 256);
    kc_buf_printf(&b, "{\"key\":\"AA==\",\"count_only\":true,\"revision\":\"%lld\"}", (long long)rev);
    json_t *j = NULL;
    int rc = etcd_call(s, "/v3/kv/range", &b, true, &j, NULL);
    json_decref(j);
    kc_buf_release(&b);
    return rc;
}

/* Finds etcd's compacted revision: the lowest revision a range can still be
 * read at (binary search; etcd 3.4 has no call that reports it). One
 * request when nothing was compacted since we last looked. */
static void discover_compacted(struct etcd_store *s)
{
    kc_rev_t lo = atomic_load(&s->compacted), hi = atomic_load(&s->last_rev); /* answer in [lo, hi] */
    if (lo < 1)
        lo = 1;
    if (lo >= hi || read_at(s, lo) == 0)
        return;
    lo++;
    while (lo < hi) {
        kc_rev_t mid = lo + (hi - lo) / 2;
        int rc = read_at(s, mid);
        if (rc == 0)
            hi = mid;
        else if (rc == KC_ECOMPACTED)
            lo = mid + 1;
        else
            return;
    }
    atomic_max(&s->compacted, lo);
}

static int bytes_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

static int list_page(struct etcd_store *s, const char *k, size_t kl, const char *e, size_t el, kc_rev_t rev,
                     size_t limit, json_t **out, struct kc_err *err)
{
    struct kc_buf b;
    kc_buf_init(&b, MAX_REQUEST);
    int rc = kc_buf_puts(&b, "{\"key\":\"");
    rc = rc ? rc : b64_append(&b, k, kl);
    rc = rc ? rc : kc_buf_puts(&b, "\",\"range_end\":\"");
    rc = rc ? rc : (el ? b64_append(&b, e, el) : kc_buf_puts(&b, "AA=="));
    rc = rc ? rc : kc_buf_printf(&b, "\",\"revision\":\"%lld\",\"limit\":\"%zu\"}", (long long)rev, limit);
    if (rc) {
        kc_buf_release(&b);
        return oom(err);
    }
    rc = etcd_call(s, "/v3/kv/range", &b, true, out, err);
    kc_buf_release(&b);
    return rc;
}

static int etcd_list(struct kc_store *base, const char *prefix, kc_rev_t at_rev, const char *start_after,
                     size_t limit, struct kc_kv_list *out, kc_rev_t *list_rev, int *more, struct kc_err *err)
{
    struct etcd_store *s = (struct etcd_store *)base;
    size_t plen, salen = 0;
    int rc = kc_store_check_key(prefix, 1, &plen, err);
    if (rc)
        return rc;
    if (start_after && (rc = kc_store_check_key(start_after, 0, &salen, err)))
        return rc;
    if (at_rev < 0)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "negative revision");
    if (!enter(s, err, &rc))
        return rc;
    char key[KC_STORE_MAX_KEY + 512], end[KC_STORE_MAX_KEY + 512];
    size_t kl, el;
    struct kc_kv_list l = {0};
    size_t cap = 0;
    kc_rev_t rev = at_rev;
    int has_more = 0;
    if (prefix_range(s, prefix, plen, key, &kl, end, &el)) {
        /* No key of ours can match: an empty answer at the right revision. */
        kl = 1;
        key[0] = 0;
        end[0] = 1;
        el = 1;
    }
    if (start_after) {
        /* Resume after start_after: its etcd form plus a NUL byte, if that is further on. */
        struct kc_buf m;
        kc_buf_init(&m, MAX_REQUEST);
        if (map_key_b64(s, start_after, salen, &m) == 0) {
            char *raw;
            size_t rl;
            if (b64_decode(m.data, &raw, &rl) == 0) {
                /* raw + its NUL is the first etcd key after start_after. */
                if (rl + 1 < sizeof key && bytes_cmp(raw, rl + 1, key, kl) > 0) {
                    memcpy(key, raw, rl + 1);
                    kl = rl + 1;
                }
                free(raw);
            }
        }
        kc_buf_release(&m);
    }
    for (;;) {
        size_t want = LIST_PAGE;
        if (limit && limit - l.n < want)
            want = limit - l.n;
        json_t *j;
        rc = list_page(s, key, kl, end, el, rev, want, &j, err);
        if (rc)
            break;
        if (rev == 0)
            rev = jint(json_object_get(j, "header"), "revision");
        json_t *kvs = json_object_get(j, "kvs");
        size_t i;
        json_t *kv;
        const char *lastb64 = NULL;
        json_array_foreach(kvs, i, kv) {
            struct kc_kv item = {0};
            lastb64 = jstr(kv, "key");
            int r = kv_from_json(s, kv, &item);
            if (r == 1)
                continue;
            if (r) {
                rc = oom(err);
                break;
            }
            r = kc_kv_list_push(&l, &cap, item.key, strlen(item.key), item.value, item.value_len, item.create_rev,
                                item.mod_rev);
            kc_kv_release(&item);
            if (r) {
                rc = oom(err);
                break;
            }
        }
        bool etcd_more = json_is_true(json_object_get(j, "more"));
        if (!rc && etcd_more && lastb64) {
            char *raw;
            size_t rl;
            if (b64_decode(lastb64, &raw, &rl) == 0 && rl + 1 < sizeof key) {
                memcpy(key, raw, rl);
                key[rl] = 0;
                kl = rl + 1;
            } else {
                rc = kc_err_set(err, KC_EIO, 500, "InternalError", "bad key from etcd");
            }
            free(raw);
        }
        json_decref(j);
        if (rc || !etcd_more)
            break;
        if (limit && l.n >= limit) {
            has_more = 1;
            break;
        }
    }
    if (rc == KC_ECOMPACTED)
        discover_compacted(s);
    leave(s);
    if (rc) {
        kc_kv_list_release(&l);
        return rc;
    }
    *out = l;
    if (list_rev)
        *list_rev = rev;
    if (more)
        *more = has_more;
    return 0;
}

/* ---------- writes ---------- */

/* After a write of revision rev: wait until every live watch of this store
 * whose stream includes rev has delivered it, so that a caller who got rev
 * back knows its watchers have seen it (as with the SQLite backend). */
static void sync_watchers(struct etcd_store *s, kc_rev_t rev)
{
    atomic_max(&s->event_rev, rev);
    struct timespec dl = kc_deadline(CLOCK_REALTIME, SYNC_WAIT_MS / 1000.0);
    pthread_mutex_lock(&s->wmu);
    for (;;) {
        bool behind = false;
        for (struct kc_watch *w = s->watches; w && !behind; w = w->next)
            behind = w->state == W_LIVE && w->start <= rev && w->pos < rev;
        if (!behind || pthread_cond_timedwait(&s->wcond, &s->wmu, &dl) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&s->wmu);
}

/* Builds {"compare":[...],"success":[op],"failure":[...]} for key. cmp is
 * "CREATE" or "MOD", res "EQUAL"/"GREATER", field the compared field. */
static int txn_body(struct etcd_store *s, struct kc_buf *b, const char *key, size_t klen, const char *target,
                    const char *result, kc_rev_t rev, const char *value, size_t vlen, bool del, bool read_on_fail)
{
    struct kc_buf kb;
    kc_buf_init(&kb, MAX_REQUEST);
    int rc = map_key_b64(s, key, klen, &kb);
    if (rc) {
        kc_buf_release(&kb);
        return rc;
    }
    const char *k = kb.data;
    rc = kc_buf_printf(b, "{\"compare\":[{\"key\":\"%s\",\"target\":\"%s\",\"result\":\"%s\",\"%s\":\"%lld\"}],"
                          "\"success\":[{",
                       k, target, result, !strcmp(target, "MOD") ? "mod_revision" : "create_revision",
                       (long long)rev);
    if (!rc && del)
        rc = kc_buf_printf(b, "\"request_delete_range\":{\"key\":\"%s\",\"prev_kv\":true}}]", k);
    else if (!rc) {
        rc = kc_buf_printf(b, "\"request_put\":{\"key\":\"%s\",\"value\":\"", k);
        rc = rc ? rc : b64_append(b, value, vlen);
        rc = rc ? rc : kc_buf_puts(b, "\"}}]");
    }
    if (!rc && read_on_fail)
        rc = kc_buf_printf(b, ",\"failure\":[{\"request_range\":{\"key\":\"%s\"}}]", k);
    rc = rc ? rc : kc_buf_putc(b, '}');
    kc_buf_release(&kb);
    return rc;
}

/* The kv a failed txn read back (its failure branch), or NULL. */
static json_t *txn_read_kv(json_t *j)
{
    json_t *r = json_object_get(json_array_get(json_object_get(j, "responses"), 0), "response_range");
    return json_array_get(json_object_get(r, "kvs"), 0);
}

/* ambiguous NULL: the txn is sent once (CALL_ONCE); else it may be re-sent on another endpoint and
 * *ambiguous says whether an earlier send may have been applied (CALL_RESOLVE). */
static int do_txn(struct etcd_store *s, struct kc_buf *b, json_t **j, bool *ok, bool *ambiguous, struct kc_err *err)
{
    int rc = etcd_call_ex(s, "/v3/kv/txn", b, ambiguous ? CALL_RESOLVE : CALL_ONCE, j, ambiguous, err);
    if (rc)
        return rc;
    *ok = json_is_true(json_object_get(*j, "succeeded"));
    return 0;
}

static int write_prep(struct etcd_store *s, const char *key, size_t *klen, size_t vlen, struct kc_err *err)
{
    int rc = kc_store_check_key(key, 0, klen, err);
    if (!rc)
        rc = check_value(vlen, err);
    if (!rc && !s->identity && (*klen < REGISTRY_LEN || memcmp(key, REGISTRY, REGISTRY_LEN)))
        rc = no_form(err, key);
    return rc;
}

/* After a failed txn that may have been applied by an earlier send: the read-back kv's mod_revision
 * if it holds exactly our value (and, for a create, was created by that same write), else 0. The API
 * server's objects carry a fresh uid (creates) or changed fields (updates), so equal bytes mean our
 * write; for other store users equal bytes at least mean the state that was asked for. */
static kc_rev_t ours(struct etcd_store *s, json_t *j, const char *value, size_t len, bool created)
{
    json_t *kv = txn_read_kv(j);
    char *v = NULL;
    size_t vl = 0;
    if (!kv || b64_decode(jstr(kv, "value"), &v, &vl))
        return 0;
    kc_rev_t mod = jint(kv, "mod_revision");
    bool same = vl == len && !memcmp(v, value, len) && (!created || jint(kv, "create_revision") == mod);
    free(v);
    (void)s;
    return same ? mod : 0;
}

static int etcd_create(struct kc_store *base, const char *key, const char *value, size_t len, kc_rev_t *new_rev,
                       struct kc_err *err)
{
    struct etcd_store *s = (struct etcd_store *)base;
    size_t klen;
    int rc = write_prep(s, key, &klen, len, err);
    if (rc || !enter(s, err, &rc))
        return rc;
    struct kc_buf b;
    kc_buf_init(&b, MAX_REQUEST);
    json_t *j = NULL;
    bool ok = false, ambiguous = false;
    if (txn_body(s, &b, key, klen, "CREATE", "EQUAL", 0, value, len, false, true))
        rc = oom(err);
    else
        rc = do_txn(s, &b, &j, &ok, &ambiguous, err);
    kc_buf_release(&b);
    kc_rev_t rev = j ? jint(json_object_get(j, "header"), "revision") : 0;
    if (!rc && !ok && ambiguous && (rev = ours(s, j, value, len, true)) > 0)
        ok = true; /* an earlier send that looked lost had created it */
    json_decref(j);
    if (!rc && !ok)
        rc = kc_err_set(err, KC_EEXISTS, 409, "AlreadyExists", "%.200s already exists", key);
    if (!rc) {
        sync_watchers(s, rev);
        if (new_rev)
            *new_rev = rev;
    }
    leave(s);
    return rc;
}

/* After a failed conditional txn: NotFound if the key is absent, else
 * Conflict with *cur filled from the read-back kv. */
static int cas_failed(struct etcd_store *s, json_t *j, const char *key, struct kc_kv *cur, struct kc_err *err)
{
    json_t *kv = txn_read_kv(j);
    if (!kv)
        return kc_err_set(err, KC_ENOTFOUND, 404, "NotFound", "%.200s not found", key);
    if (cur && kv_from_json(s, kv, cur))
        return oom(err);
    return kc_err_set(err, KC_ECONFLICT, 409, "Conflict",
                      "%.200s: the object has been modified (revision %lld, expected another)", key,
                      (long long)jint(kv, "mod_revision"));
}

static int etcd_update(struct kc_store *base, const char *key, const char *value, size_t len, kc_rev_t expect_rev,
                       kc_rev_t *new_rev, struct kc_kv *cur, struct kc_err *err)
{
    struct etcd_store *s = (struct etcd_store *)base;
    size_t klen;
    int rc = write_prep(s, key, &klen, len, err);
    if (rc || !enter(s, err, &rc))
        return rc;
    struct kc_buf b;
    kc_buf_init(&b, MAX_REQUEST);
    json_t *j = NULL;
    bool ok = false;
    int trc = expect_rev ? txn_body(s, &b, key, klen, "MOD", "EQUAL", expect_rev, value, len, false, true)
                         : txn_body(s, &b, key, klen, "CREATE", "GREATER", 0, value, len, false, true);
    bool ambiguous = false;
    rc = trc ? oom(err) : do_txn(s, &b, &j, &ok, &ambiguous, err);
    kc_buf_release(&b);
    kc_rev_t rev = j ? jint(json_object_get(j, "header"), "revision") : 0;
    if (!rc && !ok && ambiguous && (rev = ours(s, j, value, len, false)) > 0)
        ok = true; /* an earlier send that looked lost had written it */
    if (!rc && !ok)
        rc = cas_failed(s, j, key, cur, err);
    json_decref(j);
    if (!rc) {
        sync_watchers(s, rev);
        if (new_rev)
            *new_rev = rev;
    }
    leave(s);
    return rc;
}

static int etcd_del(struct kc_store *base, const char *key, kc_rev_t expect_rev, kc_rev_t *del_rev,
                    struct kc_kv *prev, struct kc_err *err)
{
    struct etcd_store *s = (struct etcd_store *)base;
    size_t klen;
    int rc = write_prep(s, key, &klen, 0, err);
    if (rc || !enter(s, err, &rc))
        return rc;
    struct kc_buf b;
    kc_buf_init(&b, MAX_REQUEST);
    json_t *j = NULL;
    bool ok = false;
    int trc = expect_rev ? txn_body(s, &b, key, klen, "MOD", "EQUAL", expect_rev, NULL, 0, true, true)
                         : txn_body(s, &b, key, klen, "CREATE", "GREATER", 0, NULL, 0, true, true);
    /* sent once: a delete's lost answer cannot be told from someone else's delete */
    rc = trc ? oom(err) : do_txn(s, &b, &j, &ok, NULL, err);
    kc_buf_release(&b);
    if (!rc && !ok)
        rc = cas_failed(s, j, key, NULL, err);
    kc_rev_t rev = j ? jint(json_object_get(j, "header"), "revision") : 0;
    if (!rc && prev) {
        json_t *r = json_object_get(json_array_get(json_object_get(j, "responses"), 0), "response_delete_range");
        json_t *kv = json_array_get(json_object_get(r, "prev_kvs"), 0);
        if (!kv || kv_from_json(s, kv, prev))
            memset(prev, 0, sizeof *prev);
    }
    json_decref(j);
    if (!rc) {
        sync_watchers(s, rev);
        if (del_rev)
            *del_rev = rev;
    }
    leave(s);
    return rc;
}

/* ---------- revisions and compaction ---------- */

static kc_rev_t etcd_current_rev(struct kc_store *base)
{
    struct etcd_store *s = (struct etcd_store *)base;
    struct kc_buf b;
    kc_buf_init(&b, 64);
    kc_buf_puts(&b, "{\"key\":\"AA==\",\"count_only\":true}");
    json_t *j = NULL;
    if (etcd_call(s, "/v3/kv/range", &b, true, &j, NULL) == 0)
        json_decref(j);
    kc_buf_release(&b);
    return atomic_load(&s->last_rev);
}

static kc_rev_t etcd_compacted_rev(struct kc_store *base)
{
    return atomic_load(&((struct etcd_store *)base)->compacted);
}

static int etcd_compact(struct kc_store *base, kc_rev_t rev, struct kc_err *err)
{
    struct etcd_store *s = (struct etcd_store *)base;
    if (rev <= 0)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "compaction revision must be positive");
    int rc;
    if (!enter(s, err, &rc))
        return rc;
    struct kc_buf b;
    kc_buf_init(&b, 128);
    kc_buf_printf(&b, "{\"revision\":\"%lld\"}", (long long)rev);
    json_t *j = NULL;
    rc = etcd_call(s, "/v3/kv/compaction", &b, true, &j, err);
    json_decref(j);
    kc_buf_release(&b);
    if (rc == KC_ECOMPACTED) { /* at or below etcd's compacted revision: nothing to do */
        kc_err_clear(err);
        rc = 0;
        if (atomic_load(&s->compacted) < rev)
            discover_compacted(s);
    } else if (rc == 0) {
        atomic_max(&s->compacted, rev);
    }
    leave(s);
    return rc;
}

/* kube-apiserver's scheme, so that several servers compact once per
 * interval between them: each tick, whoever advances compact_rev_key's
 * version (a txn on the version it last saw) compacts to the revision
 * recorded at the previous tick. Watchers thus always have at least one
 * interval of history. */
static void *compactor_main(void *arg)
{
    pthread_setname_np(pthread_self(), "kc-etcd-compact");
    struct etcd_store *s = arg;
    kc_rev_t version = 0, prev_rev = 0;
    struct kc_buf b;
    kc_buf_init(&b, 1024);
    pthread_mutex_lock(&s->cmu);
    for (;;) {
        struct timespec dl = kc_deadline(CLOCK_REALTIME, (double)s->compact_interval_s);
        while (!s->compactor_stop && pthread_cond_timedwait(&s->ccond, &s->cmu, &dl) != ETIMEDOUT)
            ;
        if (s->compactor_stop)
            break;
        pthread_mutex_unlock(&s->cmu);
        b.len = 0;
        kc_buf_printf(&b,
                      "{\"compare\":[{\"key\":\"Y29tcGFjdF9yZXZfa2V5\",\"target\":\"VERSION\",\"result\":\"EQUAL\","
                      "\"version\":\"%lld\"}],\"success\":[{\"request_put\":{\"key\":\"Y29tcGFjdF9yZXZfa2V5\","
                      "\"value\":\"\"}}],\"failure\":[{\"request_range\":{\"key\":\"Y29tcGFjdF9yZXZfa2V5\"}}]}",
                      (long long)version);
        json_t *j = NULL;
        if (etcd_call(s, "/v3/kv/txn", &b, false, &j, NULL) == 0) {
            kc_rev_t cur = jint(json_object_get(j, "header"), "revision");
            if (json_is_true(json_object_get(j, "succeeded"))) {
                version++;
                if (prev_rev > 0)
                    etcd_compact(&s->base, prev_rev, NULL);
            } else {
                version = jint(txn_read_kv(j), "version");
            }
            prev_rev = cur;
        }
        json_decref(j);
        pthread_mutex_lock(&s->cmu);
    }
    pthread_mutex_unlock(&s->cmu);
    kc_buf_release(&b);
    return NULL;
}

/* ---------- watch ---------- */

/* Marks w dead (under wmu) and reports it: to watch() while it has not
 * returned, through end afterwards. */
static void watch_die(struct kc_watch *w, int why)
{
    struct etcd_store *s = w->s;
    pthread_mutex_lock(&s->wmu);
    bool report = w->state != W_DEAD && w->returned && why != 0;
    if (w->state != W_DEAD) {
        w->state = W_DEAD;
        w->dead_rc = why;
    }
    pthread_cond_broadcast(&s->wcond);
    pthread_mutex_unlock(&s->wmu);
    if (report && w->end)
        w->end(w->ctx, why);
}

/* Delivers one etcd event (if ours and under the prefix). */
static int deliver(struct kc_watch *w, const json_t *e)
{
    struct etcd_store *s = w->s;
    const json_t *kv = json_object_get(e, "kv"), *pkv = json_object_get(e, "prev_kv");
    bool del = jstr(e, "type") && !strcmp(jstr(e, "type"), "DELETE");
    char *key, *val = NULL, *pval = NULL;
    size_t kl, vl = 0, pl = 0;
    int rc = unmap_key(s, jstr(kv, "key"), &key, &kl);
    if (rc)
        return rc == 1 ? 0 : rc;
    if (w->cb_stopped || !kc_store_has_prefix(key, w->prefix, w->plen)) {
        free(key);
        return 0;
    }
    rc = b64_decode(jstr(del ? pkv : kv, "value"), &val, &vl);
    if (!rc && !del && pkv)
        rc = b64_decode(jstr(pkv, "value"), &pval, &pl);
    if (rc) {
        free(key);
        free(val);
        return rc;
    }
    struct kc_event ev = {
        .type = del ? KC_EV_DELETE : KC_EV_PUT,
        .key = key,
        .value = val,
        .value_len = vl,
        .prev_value = pval,
        .prev_len = pl,
        .rev = jint(kv, "mod_revision"),
        .create_rev = del ? jint(pkv, "create_revision") : jint(kv, "create_revision"),
        .prev_rev = jint(pkv, "mod_revision"),
    };
    if (w->cb(w->ctx, &ev) != 0)
        w->cb_stopped = true;
    free(key);
    free(val);
    free(pval);
    return 0;
}

/* Handles one line of the watch stream. */
static void watch_line(struct kc_watch *w, const char *line, size_t len)
{
    struct etcd_store *s = w->s;
    json_t *j = kc_json_loadb(line, len, 0, NULL);
    json_t *r = json_object_get(j, "result");
    if (!r) { /* {"error": ...} or garbage: drop this connection and resume */
        w->stream_failed = true;
        json_decref(j);
        return;
    }
    kc_rev_t hdr = jint(json_object_get(r, "header"), "revision");
    atomic_max(&s->last_rev, hdr);
    kc_rev_t compact = jint(r, "compact_revision");
    if (compact) {
        atomic_max(&s->compacted, compact);
        json_decref(j);
        watch_die(w, KC_ECOMPACTED);
        return;
    }
    if (json_is_true(json_object_get(r, "created"))) {
        pthread_mutex_lock(&s->wmu);
        if (w->next_rev == 0)
            w->next_rev = hdr + 1;
        if (w->state == W_STARTING) {
            if (w->start == 0)
                w->start = w->next_rev;
            if (w->pos < w->start - 1)
                w->pos = w->start - 1;
            w->state = W_LIVE;
            pthread_cond_broadcast(&s->wcond);
        }
        pthread_mutex_unlock(&s->wmu);
    }
    if (json_is_true(json_object_get(r, "canceled"))) {
        w->stream_failed = true;
        json_decref(j);
        return;
    }
    json_t *evs = json_object_get(r, "events");
    size_t i;
    json_t *e;
    kc_rev_t floor = w->next_rev, top = 0;
    json_array_foreach(evs, i, e) {
        kc_rev_t rev = jint(json_object_get(e, "kv"), "mod_revision");
        if (rev < floor) /* already delivered before a reconnect */
            continue;
        if (deliver(w, e) != 0) {
            w->stream_failed = true;
            break;
        }
        if (rev > top)
            top = rev;
    }
    json_decref(j);
    if (top) {
        w->next_rev = top + 1;
        atomic_max(&s->event_rev, top);
        pthread_mutex_lock(&s->wmu);
        if (w->pos < top)
            w->pos = top;
        pthread_cond_broadcast(&s->wcond);
        pthread_mutex_unlock(&s->wmu);
    }
    if (w->cb_stopped)
        watch_die(w, 0);
}

static size_t watch_write_cb(char *p, size_t sz, size_t n, void *ud)
{
    struct kc_watch *w = ud;
    size_t total = sz * n;
    if (atomic_load(&w->stop))
        return 0;
    if (kc_buf_append(&w->line, p, total)) {
        w->stream_failed = true;
        return 0;
    }
    size_t startoff = 0;
    for (size_t i = w->line.len - total; i < w->line.len; i++) {
        if (w->line.data[i] != '\n')
            continue;
        if (i > startoff)
            watch_line(w, w->line.data + startoff, i - startoff);
        startoff = i + 1;
        if (w->stream_failed || w->state == W_DEAD)
            return 0;
    }
    if (startoff) {
        memmove(w->line.data, w->line.data + startoff, w->line.len - startoff);
        w->line.len -= startoff;
    }
    return total;
}

/* Runs one stream connection until it ends or the watch is stopped. */
static void watch_connect(struct kc_watch *w, size_t ep)
{
    struct etcd_store *s = w->s;
    char key[KC_STORE_MAX_KEY + 512], end[KC_STORE_MAX_KEY + 512], url[MAX_ENDPOINT_LEN + 32];
    size_t kl, el;
    if (prefix_range(s, "", 0, key, &kl, end, &el)) {
        w->stream_failed = true;
        return;
    }
    struct kc_buf b;
    kc_buf_init(&b, 4 * KC_STORE_MAX_KEY);
    kc_buf_puts(&b, "{\"create_request\":{\"key\":\"");
    b64_append(&b, key, kl);
    kc_buf_puts(&b, "\",\"range_end\":\"");
    if (el)
        b64_append(&b, end, el);
    else
        kc_buf_puts(&b, "AA==");
    kc_buf_printf(&b, "\",\"start_revision\":\"%lld\",\"prev_kv\":true}}", (long long)w->next_rev);
    CURL *h = curl_easy_init();
    if (!h) {
        kc_buf_release(&b);
        w->stream_failed = true;
        return;
    }
    snprintf(url, sizeof url, "%s/v3/watch", s->eps[ep]);
    setup_handle(s, h, url, b.data, b.len);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, watch_write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, w);
    w->line.len = 0;
    w->stream_failed = false;
    curl_multi_add_handle(w->multi, h);
    int running = 1;
    while (running && !atomic_load(&w->stop)) {
        curl_multi_perform(w->multi, &running);
        if (!running || w->stream_failed || w->state == W_DEAD)
            break;
        curl_multi_poll(w->multi, NULL, 0, 1000, NULL);
    }
    if (!atomic_load(&w->stop)) { /* the stream broke: the next try goes to the next endpoint */
        size_t exp = ep;
        atomic_compare_exchange_strong(&s->cur_ep, &exp, (ep + 1) % s->neps);
    }
    curl_multi_remove_handle(w->multi, h);
    curl_easy_cleanup(h);
    kc_buf_release(&b);
}

static void *watch_main(void *arg)
{
    pthread_setname_np(pthread_self(), "kc-etcd-watch");
    struct kc_watch *w = arg;
    struct etcd_store *s = w->s;
    int failures = 0;
    while (!atomic_load(&w->stop) && w->state != W_DEAD) {
        size_t ep = atomic_load(&s->cur_ep) % s->neps;
        kc_rev_t before = w->pos;
        watch_connect(w, ep);
        if (atomic_load(&w->stop) || w->state == W_DEAD)
            break;
        /* The stream ended (etcd restarted, member lost, proxy timeout):
         * resume from the revision after the last one delivered. */
        failures = w->pos > before ? 0 : failures + 1;
        if (w->state == W_STARTING && failures >= (int)s->neps * 3) {
            watch_die(w, KC_EIO);
            break;
        }
        long backoff = failures < 2 ? 50 : failures < 6 ? 250 : 1000;
        for (long t = 0; t < backoff && !atomic_load(&w->stop); t += 10) {
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

static void watch_free(struct kc_watch *w)
{
    if (w->multi)
        curl_multi_cleanup(w->multi);
    kc_buf_release(&w->line);
    free(w->prefix);
    free(w);
}

static void watch_unlink(struct etcd_store *s, struct kc_watch *w)
{
    pthread_mutex_lock(&s->wmu);
    if (w->prev)
        w->prev->next = w->next;
    else if (s->watches == w)
        s->watches = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->next = w->prev = NULL;
    pthread_cond_broadcast(&s->wcond);
    pthread_mutex_unlock(&s->wmu);
}

static void watch_stop_join(struct kc_watch *w)
{
    atomic_store(&w->stop, true);
    curl_multi_wakeup(w->multi);
    pthread_join(w->thread, NULL);
}

/* Probes whether from_rev is still watchable: a read at from_rev - 1 fails
 * exactly when from_rev <= etcd's compacted revision. */
static int probe_compacted(struct etcd_store *s, kc_rev_t from_rev, struct kc_err *err)
{
    if (from_rev <= atomic_load(&s->compacted))
        return kc_err_set(err, KC_ECOMPACTED, 410, "Expired", "revision %lld has been compacted (at %lld)",
                          (long long)from_rev, (long long)atomic_load(&s->compacted));
    if (from_rev <= 1)
        return 0;
    struct kc_buf b;
    kc_buf_init(&b, 128);
    kc_buf_printf(&b, "{\"key\":\"AA==\",\"count_only\":true,\"revision\":\"%lld\"}", (long long)(from_rev - 1));
    json_t *j = NULL;
    int rc = etcd_call(s, "/v3/kv/range", &b, true, &j, err);
    json_decref(j);
    kc_buf_release(&b);
    if (rc == KC_EFUTURE) { /* a future revision is fine: the watch waits for it */
        kc_err_clear(err);
        rc = 0;
    }
    if (rc == KC_ECOMPACTED)
        discover_compacted(s);
    return rc;
}

static int etcd_watch(struct kc_store *base, const char *prefix, kc_rev_t from_rev, kc_watch_cb cb,
                      kc_watch_end_cb end, void *ctx, struct kc_watch **out, struct kc_err *err)
{
    struct etcd_store *s = (struct etcd_store *)base;
    size_t plen;
    int rc = kc_store_check_key(prefix, 1, &plen, err);
    if (rc)
        return rc;
    if (from_rev < 0 || !cb)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "negative revision or no callback");
    if (!enter(s, err, &rc))
        return rc;
    if (from_rev > 0 && (rc = probe_compacted(s, from_rev, err))) {
        leave(s);
        return rc;
    }
    struct kc_watch *w = calloc(1, sizeof *w);
    if (!w || !(w->prefix = strdup(prefix)) || !(w->multi = curl_multi_init())) {
        if (w)
            watch_free(w);
        leave(s);
        return oom(err);
    }
    w->s = s;
    w->plen = plen;
    w->cb = cb;
    w->end = end;
    w->ctx = ctx;
    w->start = from_rev;
    w->next_rev = from_rev;
    w->pos = from_rev ? from_rev - 1 : 0;
    kc_buf_init(&w->line, MAX_RESPONSE);
    pthread_mutex_lock(&s->wmu);
    w->next = s->watches;
    if (s->watches)
        s->watches->prev = w;
    s->watches = w;
    pthread_mutex_unlock(&s->wmu);
    if (pthread_create(&w->thread, NULL, watch_main, w)) {
        watch_unlink(s, w);
        watch_free(w);
        leave(s);
        return kc_err_set(err, KC_EIO, 500, "InternalError", "cannot start a watch thread");
    }
    /* Wait until etcd registered the stream, then (from_rev > 0) until the
     * history this store knows of has been delivered. */
    kc_rev_t known = atomic_load(&s->event_rev);
    struct timespec dl = kc_deadline(CLOCK_REALTIME, (s->dial_ms * (double)s->neps * 3 + 10000) / 1000.0);
    pthread_mutex_lock(&s->wmu);
    while (w->state == W_STARTING || (w->state == W_LIVE && from_rev > 0 && known >= from_rev && w->pos < known))
        if (pthread_cond_timedwait(&s->wcond, &s->wmu, &dl) == ETIMEDOUT)
            break;
    enum wstate st = w->state;
    int why = w->dead_rc;
    w->returned = true;
    pthread_mutex_unlock(&s->wmu);
    if (st == W_STARTING || (st == W_DEAD && why != 0)) {
        watch_stop_join(w);
        watch_unlink(s, w);
        watch_free(w);
        leave(s);
        if (why == KC_ECOMPACTED)
            return kc_err_set(err, KC_ECOMPACTED, 410, "Expired", "revision %lld has been compacted",
                              (long long)from_rev);
        return kc_err_set(err, KC_EIO, 503, "ServiceUnavailable", "cannot open an etcd watch on %zu endpoint(s)",
                          s->neps);
    }
    *out = w;
    leave(s);
    return 0;
}

static void etcd_unwatch(struct kc_store *base, struct kc_watch *w)
{
    if (!w)
        return;
    watch_stop_join(w);
    watch_unlink((struct etcd_store *)base, w);
    watch_free(w);
}

/* ---------- open / close ---------- */

static void etcd_close(struct kc_store *base)
{
    struct etcd_store *s = (struct etcd_store *)base;
    atomic_store(&s->closing, true);
    while (atomic_load(&s->inflight) > 0) {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    if (s->compactor_started) {
        pthread_mutex_lock(&s->cmu);
        s->compactor_stop = true;
        pthread_cond_broadcast(&s->ccond);
        pthread_mutex_unlock(&s->cmu);
        pthread_join(s->compactor, NULL);
    }
    while (s->watches) {
        struct kc_watch *w = s->watches;
        watch_stop_join(w);
        watch_unlink(s, w);
        if (w->state != W_DEAD && w->end)
            w->end(w->ctx, KC_ECLOSED);
        watch_free(w);
    }
    for (size_t i = 0; i < s->nidle; i++)
        curl_easy_cleanup(s->idle[i]);
    for (size_t i = 0; i < s->neps; i++)
        free(s->eps[i]);
    free(s->cafile);
    free(s->certfile);
    free(s->keyfile);
    free(s->root);
    pthread_mutex_destroy(&s->pool_mu);
    pthread_mutex_destroy(&s->wmu);
    pthread_cond_destroy(&s->wcond);
    pthread_mutex_destroy(&s->cmu);
    pthread_cond_destroy(&s->ccond);
    free(s);
}

/* "etcd://h:p,h:p", "http://h:p,https://h:p" or "h:p,...": one URL base per
 * endpoint. etcd:// and bare host:port mean https when TLS files are given. */
static int parse_endpoints(struct etcd_store *s, const char *spec, bool tls, struct kc_err *err)
{
    const char *scheme_default = tls ? "https://" : "http://";
    const char *p = spec;
    if (!strncmp(p, "etcd://", 7))
        p += 7;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        while (n && p[n - 1] == '/')
            n--;
        if (n) {
            if (s->neps == MAX_ENDPOINTS || n > MAX_ENDPOINT_LEN - 16)
                return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "too many or too long etcd endpoints");
            bool has_scheme = (n > 7 && !strncmp(p, "http://", 7)) || (n > 8 && !strncmp(p, "https://", 8));
            const char *sch = !strncmp(p, "etcd://", 7) ? (p += 7, n -= 7, scheme_default)
                              : has_scheme             ? ""
                                                       : scheme_default;
            char *u = malloc(strlen(sch) + n + 1);
            if (!u)
                return oom(err);
            sprintf(u, "%s%.*s", sch, (int)n, p);
            s->eps[s->neps++] = u;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    if (!s->neps)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "no etcd endpoint in \"%.200s\"", spec);
    return 0;
}

static char *dup_opt(const char *v) { return v && *v ? strdup(v) : NULL; }

/* Learns the current revision and the newest event revision of our key
 * space (the newest mod_revision among our keys), and etcd's compacted
 * revision. Also proves an endpoint answers. */
static int initial_state(struct etcd_store *s, struct kc_err *err)
{
    char key[KC_STORE_MAX_KEY + 512], end[KC_STORE_MAX_KEY + 512];
    size_t kl, el;
    prefix_range(s, "", 0, key, &kl, end, &el);
    struct kc_buf b;
    kc_buf_init(&b, 4 * KC_STORE_MAX_KEY);
    kc_buf_puts(&b, "{\"key\":\"");
    b64_append(&b, key, kl);
    kc_buf_puts(&b, "\",\"range_end\":\"");
    if (el)
        b64_append(&b, end, el);
    else
        kc_buf_puts(&b, "AA==");
    kc_buf_puts(&b, "\",\"limit\":\"1\",\"sort_order\":\"DESCEND\",\"sort_target\":\"MOD\",\"keys_only\":true}");
    json_t *j = NULL;
    int rc = etcd_call(s, "/v3/kv/range", &b, true, &j, err);
    kc_buf_release(&b);
    if (rc)
        return rc;
    atomic_max(&s->event_rev, jint(json_array_get(json_object_get(j, "kvs"), 0), "mod_revision"));
    json_decref(j);
    discover_compacted(s);
    return 0;
}

int kc_store_etcd_open(const char *endpoints, const struct kc_etcd_opts *opts, struct kc_store **out,
                       struct kc_err *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_curl_once);
    struct kc_etcd_opts def = {0};
    if (!opts)
        opts = &def;
    if (!endpoints)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "no etcd endpoints");
    struct etcd_store *s = calloc(1, sizeof *s);
    if (!s)
        return oom(err);
    s->base.ops = &etcd_ops;
    pthread_mutex_init(&s->pool_mu, NULL);
    pthread_mutex_init(&s->wmu, NULL);
    pthread_cond_init(&s->wcond, NULL);
    pthread_mutex_init(&s->cmu, NULL);
    pthread_cond_init(&s->ccond, NULL);
    s->cafile = dup_opt(opts->cafile);
    s->certfile = dup_opt(opts->certfile);
    s->keyfile = dup_opt(opts->keyfile);
    const char *root = opts->prefix ? opts->prefix : REGISTRY;
    s->rootlen = strlen(root);
    while (s->rootlen && root[s->rootlen - 1] == '/')
        s->rootlen--;
    s->root = strndup(root, s->rootlen);
    s->identity = s->rootlen == REGISTRY_LEN && !memcmp(root, REGISTRY, REGISTRY_LEN);
    s->dial_ms = opts->dial_timeout_ms > 0 ? opts->dial_timeout_ms : 2000;
    s->req_ms = opts->request_timeout_ms > 0 ? opts->request_timeout_ms : 60000;
    s->compact_interval_s = opts->compaction_interval_s == 0 ? 300 : opts->compaction_interval_s;
    int rc = 0;
    if (!s->root)
        rc = oom(err);
    else if (s->rootlen > 256 || memchr(root, 0xFF, s->rootlen))
        rc = kc_err_set(err, KC_EINVAL, 400, "BadRequest", "bad etcd key prefix");
    if (!rc)
        rc = parse_endpoints(s, endpoints, s->cafile || s->certfile, err);
    if (!rc)
        rc = initial_state(s, err);
    if (!rc && s->compact_interval_s > 0) {
        if (pthread_create(&s->compactor, NULL, compactor_main, s))
            rc = kc_err_set(err, KC_EIO, 500, "InternalError", "cannot start the compactor thread");
        else
            s->compactor_started = true;
    }
    if (rc) {
        etcd_close(&s->base);
        return rc;
    }
    *out = &s->base;
    return 0;
}

static const struct kc_store_ops etcd_ops = {
    .name = "etcd",
    .get = etcd_get,
    .list = etcd_list,
    .create = etcd_create,
    .update = etcd_update,
    .del = etcd_del,
    .watch = etcd_watch,
    .unwatch = etcd_unwatch,
    .compact = etcd_compact,
    .current_rev = etcd_current_rev,
    .compacted_rev = etcd_compacted_rev,
    .close = etcd_close,
};
