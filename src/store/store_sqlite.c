/* store_sqlite.c — the SQLite backend of store.h (etcd v3 semantics).
 *
 * Data: one table `log` with one row per revision (rev INTEGER PRIMARY KEY,
 * key, value, create_rev, prev_rev, deleted). A delete is a tombstone row
 * (value NULL; the deleted value is the row at prev_rev). The current state
 * of a key is its newest row; an index on (key, rev) makes that, and "newest
 * row with rev <= R" for lists at an old revision, an index lookup. Table
 * `meta` holds the revision counter, the compacted revision and the progress
 * of the physical compaction sweep.
 *
 * Threads:
 *  - One writer thread owns the write connection. Callers of create/update/
 *    del/compact put a request (on their own stack) on a queue and sleep on
 *    a semaphore. The writer takes up to max_batch requests, checks each one
 *    (CAS by an indexed query inside the transaction, so it sees the batch's
 *    own earlier writes), assigns revisions only to writes that succeed,
 *    commits once (synchronous=FULL: one WAL fsync per batch), publishes the
 *    new revision, calls the watch callbacks in revision order, and only then
 *    wakes the callers. Between batches it runs the background compaction in
 *    small chunks.
 *  - Reads (get, list, watch replay) use a pool of read connections; WAL
 *    lets them run concurrently with the writer on their own snapshot.
 *
 * Locks: `mu` guards the queue and the closing flag; `watch_mu` guards the
 * watcher list and dispatched_rev and is held while callbacks run, which is
 * what lets watch registration and unwatch be exact. `pool_mu` guards the
 * idle read connections. cur_rev and compacted_rev are atomics.
 */
#include "store/store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#define SQ_DEFAULT_COMPACT_S 60
#define SQ_DEFAULT_KEEP 10000
#define SQ_DEFAULT_BATCH 512
#define SQ_MAX_BATCH 8192
#define SQ_SWEEP_ROWS 256      /* rows examined per compaction transaction */
#define SQ_MAX_IDLE_READERS 64 /* idle read connections kept (one per concurrent reader) */

enum sq_op { SQ_CREATE, SQ_UPDATE, SQ_DELETE, SQ_COMPACT };

/* A write request; lives on the caller's stack until the writer posts done. */
struct sq_req {
    enum sq_op op;
    const char *key;
    size_t klen;
    const char *value;
    size_t vlen;
    kc_rev_t expect; /* CAS revision, or the target of SQ_COMPACT */
    struct kc_kv *out; /* update: cur on conflict; delete: prev on success */
    struct kc_err *err;
    /* results, written by the writer */
    int rc;
    kc_rev_t rev;        /* revision assigned (0 if the write failed) */
    kc_rev_t found_create, found_mod; /* the key's state before this write */
    size_t val_off, val_len; /* previous value, copied into the batch arena */
    int has_val;
    sem_t done;
    struct sq_req *next;
};

/* One read connection and its prepared statements. */
struct sq_reader {
    sqlite3 *db;
    sqlite3_stmt *begin, *commit, *meta, *get, *groups, *byrev, *replay;
    struct sq_reader *next;
};

struct kc_watch {
    struct sq_store *s;
    char *prefix;
    size_t plen;
    char pend[KC_STORE_MAX_KEY + 2];
    kc_watch_cb cb;
    kc_watch_end_cb end;
    void *ctx;
    kc_rev_t next_rev; /* first revision not yet delivered */
    int live;          /* receives live events from the writer */
    struct kc_watch *prev, *next;
};

struct sq_store {
    struct kc_store base;
    char *path;
    int lock_fd; /* flock on "<path>-lock": one process owns the revision counter */
    int compact_interval_s;
    int64_t keep;
    int max_batch;

    sqlite3 *wdb;
    sqlite3_stmt *w_begin, *w_commit, *w_rollback, *w_lookup, *w_insert, *w_meta_set;
    sqlite3_stmt *w_sweep_hi, *w_sweep_del;

    pthread_t writer;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* writer waits here for work */
    struct sq_req *qhead, *qtail;
    int closing, writer_idle;

    kc_rev_t cur_rev;       /* atomic: newest committed revision */
    kc_rev_t compacted_rev; /* atomic */
    /* writer-private */
    kc_rev_t sweep_lo, sweep_target; /* physical compaction in progress: [sweep_lo, sweep_target] */
    struct sq_req **batch;
    bool *handed;                  /* per batch slot: the completer watch wakes that writer */
    struct kc_watch *completer;    /* take_completions; guarded by watch_mu */
    char *arena;
    size_t arena_len, arena_cap;
    struct timespec next_bg;

    pthread_mutex_t watch_mu;
    struct kc_watch *watches;
    kc_rev_t dispatched_rev; /* guarded by watch_mu (also read atomically) */

    pthread_mutex_t pool_mu;
    struct sq_reader *idle;
    int nidle;
};

/* ---------- small helpers ---------- */

static int sq_fail(struct kc_err *err, sqlite3 *db, const char *what)
{
    return kc_err_set(err, KC_EIO, 500, "InternalError", "sqlite %s: %s", what, db ? sqlite3_errmsg(db) : "?");
}

static kc_rev_t ld(const kc_rev_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static void st(kc_rev_t *p, kc_rev_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

static int exec_sql(sqlite3 *db, const char *sql, struct kc_err *err)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = kc_err_set(err, KC_EIO, 500, "InternalError", "sqlite: %s: %s", sql, msg ? msg : "?");
        sqlite3_free(msg);
        return rc;
    }
    return 0;
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st_out, struct kc_err *err)
{
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st_out, NULL) != SQLITE_OK)
        return sq_fail(err, db, "prepare");
    return 0;
}

/* Runs a statement that returns no rows; resets it. */
static int step_done(sqlite3_stmt *stmt)
{
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE ? 0 : KC_EIO;
}

static int open_conn(const char *path, int create, sqlite3 **out, struct kc_err *err)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        int rc = kc_err_set(err, KC_EIO, 500, "InternalError", "sqlite open %s: %s", path,
                            db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return rc;
    }
    sqlite3_busy_timeout(db, 10000);
    *out = db;
    return 0;
}

static const char SQL_SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS log(rev INTEGER PRIMARY KEY, key TEXT NOT NULL, value BLOB,"
    " create_rev INTEGER NOT NULL, prev_rev INTEGER NOT NULL, deleted INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS log_key_rev ON log(key, rev);"
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT OR IGNORE INTO meta VALUES('rev', 0), ('compacted', 0), ('sweep_lo', 0);";

/* ---------- read connections ---------- */

static void reader_free(struct sq_reader *r)
{
    if (!r)
        return;
    sqlite3_stmt *all[] = {r->begin, r->commit, r->meta, r->get, r->groups, r->byrev, r->replay};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        sqlite3_finalize(all[i]);
    sqlite3_close(r->db);
    free(r);
}

static int reader_open(struct sq_store *s, struct sq_reader **out, struct kc_err *err)
{
    struct sq_reader *r = calloc(1, sizeof *r);
    if (!r)
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    int rc = open_conn(s->path, 0, &r->db, err);
    if (rc == 0)
        rc = exec_sql(r->db, "PRAGMA query_only=1; PRAGMA cache_size=-2048", err);
    if (rc == 0)
        rc = prep(r->db, "BEGIN", &r->begin, err);
    if (rc == 0)
        rc = prep(r->db, "COMMIT", &r->commit, err);
    if (rc == 0)
        rc = prep(r->db, "SELECT v FROM meta WHERE k = 'compacted'", &r->meta, err);
    if (rc == 0)
        rc = prep(r->db, "SELECT rev, create_rev, deleted, value FROM log WHERE key = ?1 ORDER BY rev DESC LIMIT 1",
                  &r->get, err);
    /* Newest revision <= ?4 of each key in the range, in key order, from the
     * covering index; the rows themselves are then fetched by rev. */
    if (rc == 0)
        rc = prep(r->db,
                  "SELECT key, max(rev) FROM log WHERE key >= ?1 AND key < ?2 AND key > ?3 AND rev <= ?4"
                  " GROUP BY key ORDER BY key",
                  &r->groups, err);
    if (rc == 0)
        rc = prep(r->db, "SELECT value, create_rev, deleted FROM log WHERE rev = ?1", &r->byrev, err);
    if (rc == 0)
        rc = prep(r->db,
                  "SELECT l.rev, l.key, l.value, l.create_rev, l.prev_rev, l.deleted, p.value"
                  " FROM log l LEFT JOIN log p ON p.rev = l.prev_rev"
                  " WHERE l.rev >= ?1 AND l.rev <= ?2 AND l.key >= ?3 AND l.key < ?4 ORDER BY l.rev",
                  &r->replay, err);
    if (rc) {
        reader_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

static int reader_get(struct sq_store *s, struct sq_reader **out, struct kc_err *err)
{
    pthread_mutex_lock(&s->pool_mu);
    struct sq_reader *r = s->idle;
    if (r) {
        s->idle = r->next;
        s->nidle--;
    }
    pthread_mutex_unlock(&s->pool_mu);
    if (r) {
        *out = r;
        return 0;
    }
    return reader_open(s, out, err);
}

static void reader_put(struct sq_store *s, struct sq_reader *r)
{
    pthread_mutex_lock(&s->pool_mu);
    if (s->nidle < SQ_MAX_IDLE_READERS) {
        r->next = s->idle;
        s->idle = r;
        s->nidle++;
        r = NULL;
    }
    pthread_mutex_unlock(&s->pool_mu);
    reader_free(r);
}

/* Starts a read transaction and returns the compacted revision of its snapshot. */
static int read_begin(struct sq_reader *r, kc_rev_t *compacted, struct kc_err *err)
{
    if (sqlite3_step(r->begin) != SQLITE_DONE) {
        sqlite3_reset(r->begin);
        return sq_fail(err, r->db, "begin");
    }
    sqlite3_reset(r->begin);
    int rc = sqlite3_step(r->meta);
    *compacted = rc == SQLITE_ROW ? sqlite3_column_int64(r->meta, 0) : 0;
    sqlite3_reset(r->meta);
    if (rc != SQLITE_ROW) {
        int e = sq_fail(err, r->db, "read meta");
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
        return e;
    }
    return 0;
}

static void read_end(struct sq_reader *r)
{
    if (sqlite3_step(r->commit) != SQLITE_DONE)
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_reset(r->commit);
}

/* ---------- get / list ---------- */

static int sq_get(struct kc_store *base, const char *key, struct kc_kv *out, struct kc_err *err)
{
    struct sq_store *s = (struct sq_store *)base;
    size_t klen;
    int rc = kc_store_check_key(key, 0, &klen, err);
    if (rc)
        return rc;
    struct sq_reader *r;
    if ((rc = reader_get(s, &r, err)))
        return rc;
    sqlite3_bind_text(r->get, 1, key, (int)klen, SQLITE_STATIC);
    int sr = sqlite3_step(r->get);
    if (sr == SQLITE_ROW && sqlite3_column_int(r->get, 2) == 0) {
        rc = kc_kv_set(out, key, klen, sqlite3_column_blob(r->get, 3), (size_t)sqlite3_column_bytes(r->get, 3),
                       sqlite3_column_int64(r->get, 1), sqlite3_column_int64(r->get, 0));
        if (rc)
            kc_err_set(err, rc, 500, "InternalError", "out of memory");
    } else if (sr == SQLITE_ROW || sr == SQLITE_DONE) {
        rc = kc_err_set(err, KC_ENOTFOUND, 404, "NotFound", "key %s not found", key);
    } else {
        rc = sq_fail(err, r->db, "get");
    }
    sqlite3_reset(r->get);
    sqlite3_clear_bindings(r->get);
    reader_put(s, r);
    return rc;
}

/* Fetches row `rev` and appends it to out unless it is a tombstone. 1 = appended. */
static int list_take(struct sq_reader *r, const char *key, size_t klen, kc_rev_t rev, struct kc_kv_list *out,
                     size_t *cap, struct kc_err *err)
{
    sqlite3_bind_int64(r->byrev, 1, rev);
    int rc = 0;
    int sr = sqlite3_step(r->byrev);
    if (sr == SQLITE_ROW && sqlite3_column_int(r->byrev, 2) == 0) {
        rc = kc_kv_list_push(out, cap, key, klen, sqlite3_column_blob(r->byrev, 0),
                             (size_t)sqlite3_column_bytes(r->byrev, 0), sqlite3_column_int64(r->byrev, 1), rev);
        rc = rc ? kc_err_set(err, rc, 500, "InternalError", "out of memory") : 1;
    } else if (sr != SQLITE_ROW) {
        rc = sq_fail(err, r->db, "list row");
    }
    sqlite3_reset(r->byrev);
    return rc;
}

static int list_scan(struct sq_reader *r, const char *prefix, size_t plen, const char *after, kc_rev_t at,
                     size_t limit, struct kc_kv_list *out, int *more, struct kc_err *err)
{
    char pend[KC_STORE_MAX_KEY + 2];
    kc_store_prefix_end(prefix, plen, pend);
    sqlite3_bind_text(r->groups, 1, prefix, (int)plen, SQLITE_STATIC);
    sqlite3_bind_text(r->groups, 2, pend, -1, SQLITE_STATIC);
    sqlite3_bind_text(r->groups, 3, after ? after : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(r->groups, 4, at);
    size_t cap = 0;
    int rc = 0, sr;
    *more = 0;
    while ((sr = sqlite3_step(r->groups)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(r->groups, 0);
        size_t kl = (size_t)sqlite3_column_bytes(r->groups, 0);
        kc_rev_t rev = sqlite3_column_int64(r->groups, 1);
        if (limit && out->n == limit) {
            /* Only a live key counts as "more"; peek without keeping it. */
            struct kc_kv_list peek = {0};
            size_t pc = 0;
            rc = list_take(r, k, kl, rev, &peek, &pc, err);
            kc_kv_list_release(&peek);
            if (rc < 0)
                break;
            if (rc == 1) {
                *more = 1;
                rc = 0;
                break;
            }
            continue;
        }
        rc = list_take(r, k, kl, rev, out, &cap, err);
        if (rc < 0)
            break;
        rc = 0;
    }
    if (rc == 0 && sr != SQLITE_ROW && sr != SQLITE_DONE)
        rc = sq_fail(err, r->db, "list");
    sqlite3_reset(r->groups);
    sqlite3_clear_bindings(r->groups);
    return rc;
}

static int sq_list(struct kc_store *base, const char *prefix, kc_rev_t at_rev, const char *start_after,
                   size_t limit, struct kc_kv_list *out, kc_rev_t *list_rev, int *more, struct kc_err *err)
{
    struct sq_store *s = (struct sq_store *)base;
    size_t plen;
    int rc = kc_store_check_key(prefix, 1, &plen, err);
    if (rc == 0 && start_after)
        rc = kc_store_check_key(start_after, 1, NULL, err);
    if (rc)
        return rc;
    if (at_rev < 0)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "negative revision %lld", (long long)at_rev);
    /* Read the published revision BEFORE the snapshot starts, so the
     * snapshot is guaranteed to contain it. */
    kc_rev_t cur = ld(&s->cur_rev);
    if (at_rev > cur)
        return kc_err_set(err, KC_EFUTURE, 504, "Timeout", "revision %lld is newer than the current %lld",
                          (long long)at_rev, (long long)cur);
    kc_rev_t at = at_rev ? at_rev : cur;
    struct sq_reader *r;
    if ((rc = reader_get(s, &r, err)))
        return rc;
    kc_rev_t compacted;
    if ((rc = read_begin(r, &compacted, err))) {
        reader_put(s, r);
        return rc;
    }
    struct kc_kv_list l = {0};
    int m = 0;
    if (at < compacted)
        rc = kc_err_set(err, KC_ECOMPACTED, 410, "Expired", "revision %lld has been compacted (compacted: %lld)",
                        (long long)at, (long long)compacted);
    else
        rc = list_scan(r, prefix, plen, start_after, at, limit, &l, &m, err);
    read_end(r);
    reader_put(s, r);
    if (rc) {
        kc_kv_list_release(&l);
        return rc;
    }
    *out = l;
    if (list_rev)
        *list_rev = at;
    if (more)
        *more = m;
    return 0;
}

/* ---------- writes: callers ---------- */

static int submit(struct sq_store *s, struct sq_req *rq)
{
    rq->rc = 0;
    rq->rev = 0;
    rq->next = NULL;
    sem_init(&rq->done, 0, 0);
    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        pthread_mutex_unlock(&s->mu);
        sem_destroy(&rq->done);
        return kc_err_set(rq->err, KC_ECLOSED, 503, "ServiceUnavailable", "store is closing");
    }
    if (s->qtail)
        s->qtail->next = rq;
    else
        s->qhead = rq;
    s->qtail = rq;
    if (s->writer_idle)
        pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
    while (sem_wait(&rq->done) != 0 && errno == EINTR)
        ;
    sem_destroy(&rq->done);
    return rq->rc;
}

static int check_write(const char *key, size_t *klen, const char *value, size_t len, struct kc_err *err)
{
    int rc = kc_store_check_key(key, 0, klen, err);
    if (rc)
        return rc;
    if (len > KC_STORE_MAX_VALUE)
        return kc_err_set(err, KC_ETOOLARGE, 413, "RequestEntityTooLarge", "value of %zu bytes exceeds %u", len,
                          KC_STORE_MAX_VALUE);
    if (len && !value)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "NULL value");
    return 0;
}

static int sq_create(struct kc_store *base, const char *key, const char *value, size_t len, kc_rev_t *new_rev,
                     struct kc_err *err)
{
    struct sq_req rq = {.op = SQ_CREATE, .key = key, .value = value ? value : "", .vlen = len, .err = err};
    int rc = check_write(key, &rq.klen, value, len, err);
    if (rc == 0)
        rc = submit((struct sq_store *)base, &rq);
    if (rc == 0 && new_rev)
        *new_rev = rq.rev;
    return rc;
}

static int sq_update(struct kc_store *base, const char *key, const char *value, size_t len, kc_rev_t expect_rev,
                     kc_rev_t *new_rev, struct kc_kv *cur, struct kc_err *err)
{
    struct sq_req rq = {.op = SQ_UPDATE, .key = key, .value = value ? value : "", .vlen = len,
                        .expect = expect_rev, .out = cur, .err = err};
    int rc = check_write(key, &rq.klen, value, len, err);
    if (rc == 0)
        rc = submit((struct sq_store *)base, &rq);
    if (rc == 0 && new_rev)
        *new_rev = rq.rev;
    return rc;
}

static int sq_del(struct kc_store *base, const char *key, kc_rev_t expect_rev, kc_rev_t *del_rev, struct kc_kv *prev,
                  struct kc_err *err)
{
    struct sq_req rq = {.op = SQ_DELETE, .key = key, .expect = expect_rev, .out = prev, .err = err};
    int rc = kc_store_check_key(key, 0, &rq.klen, err);
    if (rc == 0)
        rc = submit((struct sq_store *)base, &rq);
    if (rc == 0 && del_rev)
        *del_rev = rq.rev;
    return rc;
}

static int sq_compact(struct kc_store *base, kc_rev_t rev, struct kc_err *err)
{
    if (rev <= 0)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "compact revision must be > 0");
    struct sq_req rq = {.op = SQ_COMPACT, .expect = rev, .err = err};
    return submit((struct sq_store *)base, &rq);
}

static kc_rev_t sq_current_rev(struct kc_store *base) { return ld(&((struct sq_store *)base)->cur_rev); }
static kc_rev_t sq_compacted_rev(struct kc_store *base) { return ld(&((struct sq_store *)base)->compacted_rev); }

/* ---------- writes: the writer thread ---------- */

static int arena_put(struct sq_store *s, const void *p, size_t n, size_t *off)
{
    if (s->arena_len + n > s->arena_cap) {
        size_t nc = s->arena_cap ? s->arena_cap : 65536;
        while (nc < s->arena_len + n)
            nc *= 2;
        char *a = realloc(s->arena, nc);
        if (!a)
            return KC_ENOMEM;
        s->arena = a;
        s->arena_cap = nc;
    }
    if (n)
        memcpy(s->arena + s->arena_len, p, n);
    *off = s->arena_len;
    s->arena_len += n;
    return 0;
}

/* Looks the key up inside the batch transaction (so it sees the batch's own
 * earlier writes). Sets rq->found_*; copies the value into the arena if
 * want_val. Returns 1 if the key exists, 0 if not, <0 on failure. */
static int lookup(struct sq_store *s, struct sq_req *rq, int want_val)
{
    sqlite3_stmt *q = s->w_lookup;
    sqlite3_bind_text(q, 1, rq->key, (int)rq->klen, SQLITE_STATIC);
    int sr = sqlite3_step(q), found = 0, rc = 0;
    if (sr == SQLITE_ROW && sqlite3_column_int(q, 2) == 0) {
        found = 1;
        rq->found_mod = sqlite3_column_int64(q, 0);
        rq->found_create = sqlite3_column_int64(q, 1);
        if (want_val) {
            rq->val_len = (size_t)sqlite3_column_bytes(q, 3);
            rc = arena_put(s, sqlite3_column_blob(q, 3), rq->val_len, &rq->val_off);
            rq->has_val = rc == 0;
        }
    } else if (sr != SQLITE_ROW && sr != SQLITE_DONE) {
        rc = KC_EIO;
    }
    sqlite3_reset(q);
    return rc ? rc : found;
}

static int insert_row(struct sq_store *s, kc_rev_t rev, struct sq_req *rq, int tombstone, kc_rev_t create,
                      kc_rev_t prev)
{
    sqlite3_stmt *q = s->w_insert;
    sqlite3_bind_int64(q, 1, rev);
    sqlite3_bind_text(q, 2, rq->key, (int)rq->klen, SQLITE_STATIC);
    if (tombstone)
        sqlite3_bind_null(q, 3);
    else
        sqlite3_bind_blob(q, 3, rq->value, (int)rq->vlen, SQLITE_STATIC);
    sqlite3_bind_int64(q, 4, create);
    sqlite3_bind_int64(q, 5, prev);
    sqlite3_bind_int(q, 6, tombstone);
    return step_done(q);
}

static int meta_set(struct sq_store *s, const char *k, kc_rev_t v)
{
    sqlite3_bind_text(s->w_meta_set, 1, k, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->w_meta_set, 2, v);
    return step_done(s->w_meta_set);
}

/* Applies one request inside the batch transaction. Returns the request's
 * logical result (0 or KC_E*) in rq->rc; returns <0 only for storage
 * failures that abort the whole batch. *rev is the batch's revision counter. */
static int apply_one(struct sq_store *s, struct sq_req *rq, kc_rev_t *rev, kc_rev_t *compact_to)
{
    rq->has_val = 0;
    if (rq->op == SQ_COMPACT) {
        if (rq->expect > *rev)
            rq->rc = kc_err_set(rq->err, KC_EFUTURE, 504, "Timeout", "compact revision %lld is newer than %lld",
                                (long long)rq->expect, (long long)*rev);
        else if (rq->expect > *compact_to)
            *compact_to = rq->expect;
        return 0;
    }
    int found = lookup(s, rq, rq->op != SQ_CREATE);
    if (found < 0)
        return found;
    if (rq->op == SQ_CREATE && found) {
        rq->rc = kc_err_set(rq->err, KC_EEXISTS, 409, "AlreadyExists", "key %s already exists", rq->key);
        return 0;
    }
    if (rq->op != SQ_CREATE && !found) {
        rq->rc = kc_err_set(rq->err, KC_ENOTFOUND, 404, "NotFound", "key %s not found", rq->key);
        return 0;
    }
    if (rq->op != SQ_CREATE && rq->expect && rq->expect != rq->found_mod) {
        rq->rc = kc_err_set(rq->err, KC_ECONFLICT, 409, "Conflict",
                            "key %s: expected revision %lld, current revision is %lld", rq->key,
                            (long long)rq->expect, (long long)rq->found_mod);
        return 0;
    }
    kc_rev_t r = *rev + 1;
    int rc;
    if (rq->op == SQ_CREATE)
        rc = insert_row(s, r, rq, 0, r, 0);
    else
        rc = insert_row(s, r, rq, rq->op == SQ_DELETE, rq->found_create, rq->found_mod);
    if (rc)
        return rc;
    if (rq->op == SQ_CREATE)
        rq->found_create = r, rq->found_mod = 0;
    rq->rev = r;
    *rev = r;
    return 0;
}

/* The batch arena at off ("" while nothing was ever copied into it). */
static const char *arena_at(struct sq_store *s, size_t off) { return s->arena ? s->arena + off : ""; }

/* Copies out-values (update conflict: current value; delete: deleted value). */
static void fill_out(struct sq_store *s, struct sq_req *rq)
{
    if (!rq->out || !rq->has_val)
        return;
    int want = (rq->op == SQ_UPDATE && rq->rc == KC_ECONFLICT) || (rq->op == SQ_DELETE && rq->rc == 0);
    if (!want)
        return;
    if (kc_kv_set(rq->out, rq->key, rq->klen, arena_at(s, rq->val_off), rq->val_len, rq->found_create,
                  rq->found_mod))
        rq->rc = kc_err_set(rq->err, KC_ENOMEM, 500, "InternalError",
                            "out of memory copying the result (the write itself %s)",
                            rq->rc == 0 ? "was committed" : "failed");
}

static void event_of(struct sq_store *s, struct sq_req *rq, struct kc_event *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->key = rq->key;
    ev->rev = rq->rev;
    ev->create_rev = rq->found_create;
    ev->prev_rev = rq->op == SQ_CREATE ? 0 : rq->found_mod;
    if (rq->op == SQ_DELETE) {
        ev->type = KC_EV_DELETE;
        ev->value = arena_at(s, rq->val_off);
        ev->value_len = rq->val_len;
    } else {
        ev->type = KC_EV_PUT;
        ev->value = rq->value;
        ev->value_len = rq->vlen;
        if (rq->op == SQ_UPDATE) {
            ev->prev_value = arena_at(s, rq->val_off);
            ev->prev_len = rq->val_len;
        }
    }
}

static void deliver(struct kc_watch *w, const struct kc_event *ev)
{
    if (!w->live || ev->rev < w->next_rev || !kc_store_has_prefix(ev->key, w->prefix, w->plen))
        return;
    if (w->cb(w->ctx, ev) != 0)
        w->live = 0; /* cancelled by its callback */
}

/* The completer watch gets each event last: once it took over the writer's wake-up, the writer may
 * return and free the request (key and value included) at any moment. */
static void dispatch(struct sq_store *s, int n, kc_rev_t last)
{
    pthread_mutex_lock(&s->watch_mu);
    if (s->watches) {
        for (int i = 0; i < n; i++) {
            struct sq_req *rq = s->batch[i];
            if (rq->op == SQ_COMPACT || rq->rev == 0) /* rev: written and committed */
                continue;
            struct kc_event ev;
            event_of(s, rq, &ev);
            for (struct kc_watch *w = s->watches; w; w = w->next)
                if (w != s->completer)
                    deliver(w, &ev);
            if (s->completer) {
                ev.done = &rq->done;
                ev.taken = &s->handed[i];
                deliver(s->completer, &ev);
            }
        }
    }
    st(&s->dispatched_rev, last);
    pthread_mutex_unlock(&s->watch_mu);
}

static void process_batch(struct sq_store *s, int n)
{
    kc_rev_t start = ld(&s->cur_rev), rev = start, compact_to = ld(&s->compacted_rev);
    kc_rev_t old_compacted = compact_to;
    s->arena_len = 0;
    int rc = step_done(s->w_begin);
    for (int i = 0; rc == 0 && i < n; i++)
        rc = apply_one(s, s->batch[i], &rev, &compact_to);
    /* The revision is not written to meta here: the log's newest row carries it (start-up takes the larger
     * of the two), and a meta row rewritten by every commit was one more WAL page per commit (a fifth of
     * the bytes written in the creation chain, whose commits carry ~2 writes). Only a sweep can delete
     * the newest row (a trailing tombstone): it records the revision in meta in its own transaction. */
    if (rc == 0 && compact_to != old_compacted) {
        rc = meta_set(s, "compacted", compact_to);
        if (rc == 0)
            rc = meta_set(s, "sweep_lo", 0);
    }
    if (rc == 0)
        rc = step_done(s->w_commit);
    if (rc) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(s->wdb));
        step_done(s->w_rollback);
        for (int i = 0; i < n; i++) {
            s->batch[i]->rev = 0;
            s->batch[i]->rc = kc_err_set(s->batch[i]->err, KC_EIO, 500, "InternalError", "sqlite write: %s", msg);
        }
        rev = start;
    } else {
        st(&s->cur_rev, rev);
        if (compact_to != old_compacted) {
            st(&s->compacted_rev, compact_to);
            s->sweep_lo = 0;
            s->sweep_target = compact_to;
        }
        for (int i = 0; i < n; i++)
            fill_out(s, s->batch[i]);
    }
    for (int i = 0; i < n; i++)
        s->handed[i] = false;
    dispatch(s, rc ? 0 : n, rev);
    for (int i = 0; i < n; i++)
        if (!s->handed[i])
            sem_post(&s->batch[i]->done);
}

/* Deletes, in one short transaction, superseded rows and tombstones among
 * the next SQ_SWEEP_ROWS rows of [sweep_lo, sweep_target]. Ascending order
 * matters: a key's older rows are always removed before (or with) the
 * tombstone that hides them, so a crash between chunks never resurrects a
 * deleted key. */
static void sweep_chunk(struct sq_store *s)
{
    kc_rev_t lo = s->sweep_lo, target = s->sweep_target, hi = target + 1;
    sqlite3_stmt *q = s->w_sweep_hi;
    sqlite3_bind_int64(q, 1, lo);
    sqlite3_bind_int64(q, 2, target);
    sqlite3_bind_int(q, 3, SQ_SWEEP_ROWS);
    if (sqlite3_step(q) == SQLITE_ROW)
        hi = sqlite3_column_int64(q, 0);
    sqlite3_reset(q);
    int rc = step_done(s->w_begin);
    if (rc == 0) /* before rows go: the newest may be among them (see process_batch) */
        rc = meta_set(s, "rev", ld(&s->cur_rev));
    if (rc == 0) {
        q = s->w_sweep_del;
        sqlite3_bind_int64(q, 1, lo);
        sqlite3_bind_int64(q, 2, hi);
        sqlite3_bind_int64(q, 3, target);
        rc = step_done(q);
    }
    if (rc == 0)
        rc = meta_set(s, "sweep_lo", hi);
    if (rc == 0)
        rc = step_done(s->w_commit);
    if (rc) {
        /* Give up this sweep rather than spin; the next compaction restarts it. */
        step_done(s->w_rollback);
        s->sweep_lo = target + 1;
        return;
    }
    s->sweep_lo = hi;
}

static int sweep_pending(struct sq_store *s) { return s->sweep_target > 0 && s->sweep_lo <= s->sweep_target; }

static void bg_compact(struct sq_store *s)
{
    kc_rev_t cur = ld(&s->cur_rev), target = cur - s->keep;
    if (target <= ld(&s->compacted_rev))
        return;
    if (step_done(s->w_begin) == 0 && meta_set(s, "compacted", target) == 0 && meta_set(s, "sweep_lo", 0) == 0 &&
        step_done(s->w_commit) == 0) {
        st(&s->compacted_rev, target);
        s->sweep_lo = 0;
        s->sweep_target = target;
    } else {
        step_done(s->w_rollback);
    }
}

static void schedule_bg(struct sq_store *s)
{
    clock_gettime(CLOCK_MONOTONIC, &s->next_bg);
    s->next_bg.tv_sec += s->compact_interval_s;
}

static int bg_due(struct sq_store *s)
{
    if (s->compact_interval_s < 0)
        return 0;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > s->next_bg.tv_sec || (now.tv_sec == s->next_bg.tv_sec && now.tv_nsec >= s->next_bg.tv_nsec);
}

/* Takes up to max_batch requests off the queue (mu held). */
static int take_batch(struct sq_store *s)
{
    int n = 0;
    while (s->qhead && n < s->max_batch) {
        s->batch[n++] = s->qhead;
        s->qhead = s->qhead->next;
    }
    if (!s->qhead)
        s->qtail = NULL;
    return n;
}

static void *writer_main(void *arg)
{
    struct sq_store *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        int n = take_batch(s);
        if (n == 0 && s->closing)
            break;
        int idle_sweep = n == 0 && sweep_pending(s);
        if (n == 0 && !idle_sweep && !bg_due(s)) {
            s->writer_idle = 1;
            if (s->compact_interval_s < 0)
                pthread_cond_wait(&s->wake, &s->mu);
            else
                pthread_cond_timedwait(&s->wake, &s->mu, &s->next_bg);
            s->writer_idle = 0;
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        if (n)
            process_batch(s, n);
        /* One short compaction step per batch: writers wait for at most one chunk. */
        if (sweep_pending(s))
            sweep_chunk(s);
        if (bg_due(s)) {
            bg_compact(s);
            schedule_bg(s);
        }
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---------- watch ---------- */

/* Delivers logged events with rev in [w->next_rev, upto] on the calling
 * thread, in one read snapshot. Returns KC_ECOMPACTED if part of that range
 * is gone. A callback returning non-zero clears w->live. */
static int replay(struct sq_store *s, struct kc_watch *w, kc_rev_t upto, struct kc_err *err)
{
    struct sq_reader *r;
    int rc = reader_get(s, &r, err);
    if (rc)
        return rc;
    kc_rev_t compacted;
    if ((rc = read_begin(r, &compacted, err))) {
        reader_put(s, r);
        return rc;
    }
    if (w->next_rev <= compacted) {
        rc = kc_err_set(err, KC_ECOMPACTED, 410, "Expired",
                        "watch from revision %lld: history up to %lld has been compacted", (long long)w->next_rev,
                        (long long)compacted);
        goto out;
    }
    sqlite3_stmt *q = r->replay;
    sqlite3_bind_int64(q, 1, w->next_rev);
    sqlite3_bind_int64(q, 2, upto);
    sqlite3_bind_text(q, 3, w->prefix, (int)w->plen, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, w->pend, -1, SQLITE_STATIC);
    int sr = SQLITE_DONE;
    while (w->live && (sr = sqlite3_step(q)) == SQLITE_ROW) {
        struct kc_event ev = {0};
        ev.rev = sqlite3_column_int64(q, 0);
        ev.key = (const char *)sqlite3_column_text(q, 1);
        ev.create_rev = sqlite3_column_int64(q, 3);
        ev.prev_rev = sqlite3_column_int64(q, 4);
        if (sqlite3_column_int(q, 5)) {
            ev.type = KC_EV_DELETE;
            ev.value = sqlite3_column_blob(q, 6);
            ev.value_len = (size_t)sqlite3_column_bytes(q, 6);
            if (!ev.value)
                ev.value = "";
        } else {
            ev.type = KC_EV_PUT;
            ev.value = sqlite3_column_blob(q, 2);
            ev.value_len = (size_t)sqlite3_column_bytes(q, 2);
            if (!ev.value)
                ev.value = "";
            if (ev.prev_rev) {
                ev.prev_value = sqlite3_column_blob(q, 6);
                ev.prev_len = (size_t)sqlite3_column_bytes(q, 6);
                if (!ev.prev_value)
                    ev.prev_value = "";
            }
        }
        if (w->cb(w->ctx, &ev) != 0)
            w->live = 0;
    }
    if (w->live && sr != SQLITE_DONE)
        rc = sq_fail(err, r->db, "watch replay");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    if (rc == 0 && w->live)
        w->next_rev = upto + 1;
out:
    read_end(r);
    reader_put(s, r);
    return rc;
}

static void watch_link(struct sq_store *s, struct kc_watch *w)
{
    w->prev = NULL;
    w->next = s->watches;
    if (s->watches)
        s->watches->prev = w;
    s->watches = w;
}

static int sq_watch(struct kc_store *base, const char *prefix, kc_rev_t from_rev, kc_watch_cb cb,
                    kc_watch_end_cb end, void *ctx, struct kc_watch **out, struct kc_err *err)
{
    struct sq_store *s = (struct sq_store *)base;
    size_t plen;
    int rc = kc_store_check_key(prefix, 1, &plen, err);
    if (rc)
        return rc;
    if (!cb || !out || from_rev < 0)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "watch: bad arguments");
    struct kc_watch *w = calloc(1, sizeof *w);
    if (w)
        w->prefix = strndup(prefix, plen);
    if (!w || !w->prefix) {
        free(w);
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    }
    w->s = s;
    w->plen = plen;
    kc_store_prefix_end(prefix, plen, w->pend);
    w->cb = cb;
    w->end = end;
    w->ctx = ctx;
    w->live = 1;
    w->next_rev = from_rev;
    if (from_rev > 0 && from_rev <= ld(&s->compacted_rev)) {
        rc = kc_err_set(err, KC_ECOMPACTED, 410, "Expired", "watch from revision %lld: compacted up to %lld",
                        (long long)from_rev, (long long)ld(&s->compacted_rev));
        goto fail;
    }
    /* Replay the bulk of the history without blocking the writer ... */
    if (from_rev > 0) {
        kc_rev_t upto = ld(&s->dispatched_rev);
        if (upto >= w->next_rev && (rc = replay(s, w, upto, err)))
            goto fail;
    }
    /* ... then close the gap under watch_mu, where no batch can be dispatched,
     * and register: the writer delivers everything after dispatched_rev. */
    pthread_mutex_lock(&s->watch_mu);
    if (from_rev == 0)
        w->next_rev = s->dispatched_rev + 1;
    else if (w->live && s->dispatched_rev >= w->next_rev)
        rc = replay(s, w, s->dispatched_rev, err);
    if (rc == 0)
        watch_link(s, w);
    pthread_mutex_unlock(&s->watch_mu);
    if (rc)
        goto fail;
    *out = w;
    return 0;
fail:
    free(w->prefix);
    free(w);
    return rc;
}

static void sq_take_completions(struct kc_store *base, struct kc_watch *w)
{
    struct sq_store *s = (struct sq_store *)base;
    pthread_mutex_lock(&s->watch_mu);
    s->completer = w;
    pthread_mutex_unlock(&s->watch_mu);
}

static void sq_unwatch(struct kc_store *base, struct kc_watch *w)
{
    struct sq_store *s = (struct sq_store *)base;
    if (!w)
        return;
    pthread_mutex_lock(&s->watch_mu);
    if (s->completer == w)
        s->completer = NULL;
    if (w->prev)
        w->prev->next = w->next;
    else
        s->watches = w->next;
    if (w->next)
        w->next->prev = w->prev;
    pthread_mutex_unlock(&s->watch_mu);
    free(w->prefix);
    free(w);
}

/* ---------- open / close ---------- */

static void sq_free(struct sq_store *s)
{
    while (s->idle) {
        struct sq_reader *r = s->idle;
        s->idle = r->next;
        reader_free(r);
    }
    sqlite3_stmt *all[] = {s->w_begin,  s->w_commit,     s->w_rollback,  s->w_lookup,
                           s->w_insert, s->w_meta_set,   s->w_sweep_hi,  s->w_sweep_del};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        sqlite3_finalize(all[i]);
    sqlite3_close(s->wdb); /* the last connection: checkpoints and removes the WAL */
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->watch_mu);
    pthread_mutex_destroy(&s->pool_mu);
    pthread_cond_destroy(&s->wake);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the flock */
    free(s->batch);
    free(s->handed);
    free(s->arena);
    free(s->path);
    free(s);
}

static void sq_close(struct kc_store *base)
{
    struct sq_store *s = (struct sq_store *)base;
    pthread_mutex_lock(&s->mu);
    s->closing = 1;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->writer, NULL); /* drains the queue first */
    pthread_mutex_lock(&s->watch_mu);
    while (s->watches) {
        struct kc_watch *w = s->watches;
        s->watches = w->next;
        if (w->live && w->end)
            w->end(w->ctx, KC_ECLOSED);
        free(w->prefix);
        free(w);
    }
    pthread_mutex_unlock(&s->watch_mu);
    sq_free(s);
}

static const struct kc_store_ops sq_ops = {
    .name = "sqlite",
    .get = sq_get,
    .list = sq_list,
    .create = sq_create,
    .update = sq_update,
    .del = sq_del,
    .watch = sq_watch,
    .unwatch = sq_unwatch,
    .take_completions = sq_take_completions,
    .compact = sq_compact,
    .current_rev = sq_current_rev,
    .compacted_rev = sq_compacted_rev,
    .close = sq_close,
};

static int read_meta(sqlite3 *db, const char *sql, kc_rev_t *v, struct kc_err *err)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        return sq_fail(err, db, "prepare");
    int sr = sqlite3_step(q);
    *v = sr == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_finalize(q);
    return sr == SQLITE_ROW || sr == SQLITE_DONE ? 0 : sq_fail(err, db, sql);
}

/* The revision counter lives in this process's memory, so a second process
 * writing the same file would reuse revisions: refuse to open it twice. */
static int lock_db(struct sq_store *s, struct kc_err *err)
{
    char lp[4200];
    if ((size_t)snprintf(lp, sizeof lp, "%s-lock", s->path) >= sizeof lp)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "database path too long");
    s->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0)
        return kc_err_set(err, KC_EIO, 500, "InternalError", "open %s: %s", lp, strerror(errno));
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0)
        return kc_err_set(err, KC_EIO, 500, "InternalError", "%s is in use by another store (%s)", s->path,
                          strerror(errno));
    return 0;
}

static int writer_setup(struct sq_store *s, struct kc_err *err)
{
    int rc = lock_db(s, err);
    if (rc == 0)
        rc = open_conn(s->path, 1, &s->wdb, err);
    if (rc)
        return rc;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->wdb, "PRAGMA journal_mode=WAL", -1, &q, NULL) != SQLITE_OK)
        return sq_fail(err, s->wdb, "journal_mode");
    int wal = sqlite3_step(q) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(q, 0), "wal") == 0;
    sqlite3_finalize(q);
    if (!wal)
        return kc_err_set(err, KC_EIO, 500, "InternalError", "sqlite %s: cannot enable WAL mode", s->path);
    /* FULL: the WAL is fsynced at every commit, so an acknowledged write
     * survives power loss; group commit pays that once per batch. */
    rc = exec_sql(s->wdb,
                  "PRAGMA synchronous=FULL; PRAGMA cache_size=-8192; PRAGMA journal_size_limit=67108864;"
                  "PRAGMA wal_autocheckpoint=1000",
                  err);
    if (rc == 0)
        rc = exec_sql(s->wdb, SQL_SCHEMA, err);
    kc_rev_t meta_rev = 0, max_rev = 0, compacted = 0, sweep_lo = 0;
    if (rc == 0)
        rc = read_meta(s->wdb, "SELECT v FROM meta WHERE k='rev'", &meta_rev, err);
    if (rc == 0)
        rc = read_meta(s->wdb, "SELECT max(rev) FROM log", &max_rev, err);
    if (rc == 0)
        rc = read_meta(s->wdb, "SELECT v FROM meta WHERE k='compacted'", &compacted, err);
    if (rc == 0)
        rc = read_meta(s->wdb, "SELECT v FROM meta WHERE k='sweep_lo'", &sweep_lo, err);
    if (rc)
        return rc;
    s->cur_rev = meta_rev > max_rev ? meta_rev : max_rev;
    s->dispatched_rev = s->cur_rev;
    s->compacted_rev = compacted;
    s->sweep_target = compacted;
    s->sweep_lo = sweep_lo; /* resumes an interrupted sweep; past target means done */
    struct {
        const char *sql;
        sqlite3_stmt **st;
    } stmts[] = {
        {"BEGIN", &s->w_begin},
        {"COMMIT", &s->w_commit},
        {"ROLLBACK", &s->w_rollback},
        {"SELECT rev, create_rev, deleted, value FROM log WHERE key = ?1 ORDER BY rev DESC LIMIT 1", &s->w_lookup},
        {"INSERT INTO log(rev, key, value, create_rev, prev_rev, deleted) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
         &s->w_insert},
        {"UPDATE meta SET v = ?2 WHERE k = ?1", &s->w_meta_set},
        {"SELECT rev FROM log WHERE rev >= ?1 AND rev <= ?2 ORDER BY rev LIMIT 1 OFFSET ?3", &s->w_sweep_hi},
        {"DELETE FROM log WHERE rev >= ?1 AND rev < ?2 AND (deleted = 1 OR EXISTS"
         " (SELECT 1 FROM log n WHERE n.key = log.key AND n.rev > log.rev AND n.rev <= ?3))",
         &s->w_sweep_del},
    };
    for (size_t i = 0; rc == 0 && i < sizeof stmts / sizeof stmts[0]; i++)
        rc = prep(s->wdb, stmts[i].sql, stmts[i].st, err);
    return rc;
}

int kc_store_sqlite_open(const char *path, const struct kc_sqlite_opts *opts, struct kc_store **out,
                         struct kc_err *err)
{
    if (!path || !out)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "sqlite open: NULL argument");
    struct sq_store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    }
    s->base.ops = &sq_ops;
    s->lock_fd = -1;
    s->compact_interval_s = opts && opts->compact_interval_s ? opts->compact_interval_s : SQ_DEFAULT_COMPACT_S;
    s->keep = opts && opts->keep_revisions > 0 ? opts->keep_revisions : SQ_DEFAULT_KEEP;
    s->max_batch = opts && opts->max_batch > 0 ? opts->max_batch : SQ_DEFAULT_BATCH;
    if (s->max_batch > SQ_MAX_BATCH)
        s->max_batch = SQ_MAX_BATCH;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->watch_mu, NULL);
    pthread_mutex_init(&s->pool_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake, &ca);
    pthread_condattr_destroy(&ca);
    s->batch = calloc((size_t)s->max_batch, sizeof *s->batch);
    s->handed = calloc((size_t)s->max_batch, sizeof *s->handed);
    int rc = s->batch && s->handed ? writer_setup(s, err) : kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    if (rc == 0) {
        schedule_bg(s);
        if (pthread_create(&s->writer, NULL, writer_main, s) != 0)
            rc = kc_err_set(err, KC_EIO, 500, "InternalError", "cannot start the store writer thread");
    }
    if (rc) {
        sq_free(s);
        return rc;
    }
    pthread_setname_np(s->writer, "kc-store-wr");
    *out = &s->base;
    return 0;
}
