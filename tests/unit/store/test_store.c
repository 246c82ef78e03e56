/* test_store.c — behaviour of the SQLite store (store.h): revisions, CAS,
 * lists at old revisions and paging, watch replay and live delivery,
 * compaction, concurrency, reopen and crash recovery. Each test works in a
 * fresh mkdtemp directory that its teardown removes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

struct fx {
    char dir[64];
    char path[128];
    struct kc_store *s;
};

static struct kc_store *open_store(struct fx *f, const struct kc_sqlite_opts *o)
{
    struct kc_err err = {0};
    struct kc_store *s = NULL;
    int rc = kc_store_sqlite_open(f->path, o, &s, &err);
    if (rc)
        fprintf(stderr, "open: %s\n", err.message);
    assert_int_equal(rc, 0);
    return s;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/kc_store_XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof f->path, "%s/kv.db", f->dir);
    struct kc_sqlite_opts o = {.compact_interval_s = -1};
    f->s = open_store(f, &o);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    kc_store_close(f->s);
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(f->dir);
    free(f);
    return 0;
}

static kc_rev_t create_ok(struct kc_store *s, const char *k, const char *v)
{
    kc_rev_t r = 0;
    struct kc_err err = {0};
    int rc = kc_store_create(s, k, v, strlen(v), &r, &err);
    if (rc)
        fprintf(stderr, "create %s: %s\n", k, err.message);
    assert_int_equal(rc, 0);
    return r;
}

static kc_rev_t update_ok(struct kc_store *s, const char *k, const char *v, kc_rev_t expect)
{
    kc_rev_t r = 0;
    assert_int_equal(kc_store_update(s, k, v, strlen(v), expect, &r, NULL, NULL), 0);
    return r;
}

static kc_rev_t del_ok(struct kc_store *s, const char *k)
{
    kc_rev_t r = 0;
    assert_int_equal(kc_store_del(s, k, 0, &r, NULL, NULL), 0);
    return r;
}

static void check_get(struct kc_store *s, const char *k, const char *v, kc_rev_t create, kc_rev_t mod)
{
    struct kc_kv kv;
    assert_int_equal(kc_store_get(s, k, &kv, NULL), 0);
    assert_string_equal(kv.key, k);
    assert_string_equal(kv.value, v);
    assert_int_equal(kv.value_len, strlen(v));
    if (create)
        assert_int_equal(kv.create_rev, create);
    if (mod)
        assert_int_equal(kv.mod_rev, mod);
    kc_kv_release(&kv);
}

/* ---------- event recording ---------- */

struct rec_ev {
    int type;
    char *key, *value, *prev;
    kc_rev_t rev, create_rev, prev_rev;
};

struct rec {
    pthread_mutex_t mu;
    struct rec_ev *ev;
    size_t n, cap;
    kc_rev_t last; /* highest revision seen (atomic) */
    int ended, end_reason;
    int stop_after; /* return non-zero after this many events (0 = never) */
};

static void rec_init(struct rec *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
}

static void rec_free(struct rec *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->ev[i].key);
        free(r->ev[i].value);
        free(r->ev[i].prev);
    }
    free(r->ev);
    pthread_mutex_destroy(&r->mu);
}

static char *dupn(const char *p, size_t n)
{
    if (!p)
        return NULL;
    char *d = malloc(n + 1);
    memcpy(d, p, n);
    d[n] = 0;
    return d;
}

static void rec_add(struct rec *r, int type, const char *k, const char *v, size_t vl, const char *p, size_t pl,
                    kc_rev_t rev, kc_rev_t cr, kc_rev_t pr)
{
    pthread_mutex_lock(&r->mu);
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->ev = realloc(r->ev, r->cap * sizeof *r->ev);
    }
    r->ev[r->n++] = (struct rec_ev){type, dupn(k, strlen(k)), dupn(v, vl), dupn(p, pl), rev, cr, pr};
    __atomic_store_n(&r->last, rev, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&r->mu);
}

static int rec_cb(void *ctx, const struct kc_event *ev)
{
    struct rec *r = ctx;
    rec_add(r, ev->type, ev->key, ev->value, ev->value_len, ev->prev_value, ev->prev_len, ev->rev, ev->create_rev,
            ev->prev_rev);
    return r->stop_after && r->n >= (size_t)r->stop_after;
}

static void rec_end(void *ctx, int reason)
{
    struct rec *r = ctx;
    r->ended++;
    r->end_reason = reason;
}

static void assert_ev_equal(const struct rec_ev *a, const struct rec_ev *b)
{
    assert_int_equal(a->rev, b->rev);
    assert_int_equal(a->type, b->type);
    assert_string_equal(a->key, b->key);
    assert_string_equal(a->value, b->value);
    if (a->prev || b->prev) {
        assert_non_null(a->prev);
        assert_non_null(b->prev);
        assert_string_equal(a->prev, b->prev);
    }
    assert_int_equal(a->create_rev, b->create_rev);
    assert_int_equal(a->prev_rev, b->prev_rev);
}

/* ---------- tests ---------- */

static void test_revisions_increase(void **state)
{
    struct kc_store *s = ((struct fx *)*state)->s;
    assert_int_equal(s->ops->current_rev(s), 0);
    kc_rev_t r1 = create_ok(s, "/registry/pods/a", "v1");
    check_get(s, "/registry/pods/a", "v1", r1, r1);
    kc_rev_t r2 = update_ok(s, "/registry/pods/a", "v2", 0);
    assert_true(r2 > r1);
    check_get(s, "/registry/pods/a", "v2", r1, r2);
    struct kc_kv prev;
    kc_rev_t r3 = 0;
    assert_int_equal(kc_store_del(s, "/registry/pods/a", 0, &r3, &prev, NULL), 0);
    assert_true(r3 > r2);
    assert_string_equal(prev.value, "v2");
    assert_int_equal(prev.mod_rev, r2);
    assert_int_equal(prev.create_rev, r1);
    kc_kv_release(&prev);
    kc_rev_t r4 = create_ok(s, "/registry/pods/a", "v3");
    assert_true(r4 > r3);
    check_get(s, "/registry/pods/a", "v3", r4, r4); /* create_rev restarts after a delete */
    assert_int_equal(s->ops->current_rev(s), r4);
    /* Empty values are values. */
    kc_rev_t r5 = 0;
    assert_int_equal(kc_store_create(s, "/registry/empty", NULL, 0, &r5, NULL), 0);
    check_get(s, "/registry/empty", "", r5, r5);
}

static void test_cas(void **state)
{
    struct kc_store *s = ((struct fx *)*state)->s;
    kc_rev_t r1 = create_ok(s, "/k", "one");
    kc_rev_t r2 = update_ok(s, "/k", "two", r1);
    kc_rev_t before = s->ops->current_rev(s);
    struct kc_kv cur;
    struct kc_err err = {0};
    kc_rev_t nr = 0;
    assert_int_equal(kc_store_update(s, "/k", "three", 5, r1, &nr, &cur, &err), KC_ECONFLICT);
    assert_string_equal(err.reason, "Conflict");
    assert_string_equal(cur.value, "two");
    assert_int_equal(cur.mod_rev, r2);
    assert_int_equal(cur.create_rev, r1);
    kc_kv_release(&cur);
    assert_int_equal(kc_store_del(s, "/k", r1, &nr, NULL, NULL), KC_ECONFLICT);
    assert_int_equal(s->ops->current_rev(s), before); /* failed CAS consumed nothing */
    check_get(s, "/k", "two", r1, r2);
    kc_rev_t r3 = create_ok(s, "/other", "x");
    assert_int_equal(r3, before + 1);
    kc_rev_t r4 = 0;
    assert_int_equal(kc_store_del(s, "/k", r2, &r4, NULL, NULL), 0);
    assert_int_equal(r4, r3 + 1);
}

static void test_exists_notfound(void **state)
{
    struct kc_store *s = ((struct fx *)*state)->s;
    kc_rev_t r1 = create_ok(s, "/a", "x");
    struct kc_err err = {0};
    assert_int_equal(kc_store_create(s, "/a", "y", 1, NULL, &err), KC_EEXISTS);
    assert_string_equal(err.reason, "AlreadyExists");
    assert_int_equal(kc_store_update(s, "/missing", "y", 1, 0, NULL, NULL, NULL), KC_ENOTFOUND);
    assert_int_equal(kc_store_del(s, "/missing", 0, NULL, NULL, NULL), KC_ENOTFOUND);
    struct kc_kv kv;
    assert_int_equal(kc_store_get(s, "/missing", &kv, &err), KC_ENOTFOUND);
    assert_string_equal(err.reason, "NotFound");
    assert_int_equal(s->ops->current_rev(s), r1);
    del_ok(s, "/a");
    assert_int_equal(kc_store_get(s, "/a", &kv, NULL), KC_ENOTFOUND);
    assert_int_equal(kc_store_update(s, "/a", "y", 1, 0, NULL, NULL, NULL), KC_ENOTFOUND);
    assert_int_equal(kc_store_del(s, "/a", 0, NULL, NULL, NULL), KC_ENOTFOUND);
    assert_int_equal(s->ops->current_rev(s), r1 + 1);
    /* Malformed input. */
    assert_int_equal(kc_store_create(s, "", "y", 1, NULL, NULL), KC_EINVAL);
    assert_int_equal(kc_store_create(s, "/bad\xff", "y", 1, NULL, NULL), KC_EINVAL);
    char *big = malloc(KC_STORE_MAX_KEY + 2);
    memset(big, 'k', KC_STORE_MAX_KEY + 1);
    big[KC_STORE_MAX_KEY + 1] = 0;
    assert_int_equal(kc_store_create(s, big, "y", 1, NULL, NULL), KC_ETOOLARGE);
    free(big);
    assert_int_equal(kc_store_create(s, "/big", "y", (size_t)KC_STORE_MAX_VALUE + 1, NULL, NULL), KC_ETOOLARGE);
    assert_int_equal(s->ops->current_rev(s), r1 + 1);
}

static void expect_list(struct kc_store *s, const char *prefix, kc_rev_t at, const char *const *kv_pairs, size_t n)
{
    struct kc_kv_list l;
    kc_rev_t lr = 0;
    int more = -1;
    struct kc_err err = {0};
    int rc = s->ops->list(s, prefix, at, NULL, 0, &l, &lr, &more, &err);
    if (rc)
        fprintf(stderr, "list: %s\n", err.message);
    assert_int_equal(rc, 0);
    assert_int_equal(lr, at ? at : s->ops->current_rev(s));
    assert_int_equal(more, 0);
    assert_int_equal(l.n, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(l.items[i].key, kv_pairs[2 * i]);
        assert_string_equal(l.items[i].value, kv_pairs[2 * i + 1]);
    }
    kc_kv_list_release(&l);
}

static void test_list_at_revision(void **state)
{
    struct kc_store *s = ((struct fx *)*state)->s;
    create_ok(s, "/registry/pods/ns/a", "a1");
    kc_rev_t rb = create_ok(s, "/registry/pods/ns/b", "b1");
    create_ok(s, "/registry/pods/ns/c", "c1");
    create_ok(s, "/registry/podsx/ns/z", "z1"); /* shares the string prefix "/registry/pods" only */
    kc_rev_t r = s->ops->current_rev(s);
    update_ok(s, "/registry/pods/ns/b", "b2", rb);
    del_ok(s, "/registry/pods/ns/c");
    create_ok(s, "/registry/pods/ns/d", "d1");
    const char *old[] = {"/registry/pods/ns/a", "a1", "/registry/pods/ns/b", "b1", "/registry/pods/ns/c", "c1"};
    expect_list(s, "/registry/pods/", r, old, 3);
    const char *now[] = {"/registry/pods/ns/a", "a1", "/registry/pods/ns/b", "b2", "/registry/pods/ns/d", "d1"};
    expect_list(s, "/registry/pods/", 0, now, 3);
    const char *first[] = {"/registry/pods/ns/a", "a1"};
    expect_list(s, "/registry/pods/", 1, first, 1);
    expect_list(s, "/registry/pods/", 0, now, 3);
    const char *all_old[] = {"/registry/pods/ns/a", "a1", "/registry/pods/ns/b", "b1", "/registry/pods/ns/c",
                             "c1", "/registry/podsx/ns/z", "z1"};
    expect_list(s, "", r, all_old, 4);
    struct kc_kv_list l;
    assert_int_equal(s->ops->list(s, "/", s->ops->current_rev(s) + 1, NULL, 0, &l, NULL, NULL, NULL), KC_EFUTURE);
    expect_list(s, "/nothing/", 0, NULL, 0);
}

static void test_list_paging(void **state)
{
    struct kc_store *s = ((struct fx *)*state)->s;
    char k[64];
    for (int i = 0; i < 25; i++) {
        snprintf(k, sizeof k, "/p/k%02d", i);
        create_ok(s, k, k);
    }
    for (int i = 20; i < 25; i++) { /* the tail is deleted: it must not count as "more" */
        snprintf(k, sizeof k, "/p/k%02d", i);
        del_ok(s, k);
    }
    create_ok(s, "/q/after", "x");
    char after[64] = "";
    int seen = 0, pages = 0, more = 1;
    kc_rev_t first_rev = 0;
    while (more) {
        struct kc_kv_list l;
        kc_rev_t lr;
        assert_int_equal(s->ops->list(s, "/p/", first_rev, pages ? after : NULL, 7, &l, &lr, &more, NULL), 0);
        if (!first_rev)
            first_rev = lr;
        assert_int_equal(lr, first_rev);
        for (size_t i = 0; i < l.n; i++) {
            snprintf(k, sizeof k, "/p/k%02d", seen++);
            assert_string_equal(l.items[i].key, k);
        }
        assert_true(l.n == 7 || !more);
        if (l.n)
            snprintf(after, sizeof after, "%s", l.items[l.n - 1].key);
        kc_kv_list_release(&l);
        pages++;
        assert_true(pages < 10);
    }
    assert_int_equal(seen, 20);
    assert_int_equal(pages, 3); /* 7 + 7 + 6 */
    /* A page that ends exactly at the last key reports no more. */
    struct kc_kv_list l;
    assert_int_equal(s->ops->list(s, "/p/", 0, "/p/k09", 10, &l, NULL, &more, NULL), 0);
    assert_int_equal(l.n, 10);
    assert_int_equal(more, 0);
    kc_kv_list_release(&l);
}

/* Applies a deterministic mix of writes and returns the events they should produce. */
static void scripted_writes(struct kc_store *s, struct rec *expect)
{
    char k[64], v[64], prevv[64];
    char vals[6][64] = {{0}};
    kc_rev_t mods[6] = {0}, creates[6] = {0};
    for (int i = 0; i < 60; i++) {
        int j = (i * 7) % 6;
        snprintf(k, sizeof k, "/%s/k%d", j % 2 ? "odd" : "even", j);
        snprintf(v, sizeof v, "value-%d", i);
        if (!mods[j]) {
            kc_rev_t r = create_ok(s, k, v);
            rec_add(expect, KC_EV_PUT, k, v, strlen(v), NULL, 0, r, r, 0);
            creates[j] = mods[j] = r;
        } else if (i % 5 == 0) {
            kc_rev_t r = del_ok(s, k);
            rec_add(expect, KC_EV_DELETE, k, vals[j], strlen(vals[j]), NULL, 0, r, creates[j], mods[j]);
            mods[j] = 0;
            continue;
        } else {
            snprintf(prevv, sizeof prevv, "%s", vals[j]);
            kc_rev_t r = update_ok(s, k, v, mods[j]);
            rec_add(expect, KC_EV_PUT, k, v, strlen(v), prevv, strlen(prevv), r, creates[j], mods[j]);
            mods[j] = r;
        }
        snprintf(vals[j], sizeof vals[j], "%s", v);
    }
}

static void test_watch_replay_every_rev(void **state)
{
    struct kc_store *s = ((struct fx *)*state)->s;
    struct rec live, expect;
    rec_init(&live);
    rec_init(&expect);
    struct kc_watch *lw;
    assert_int_equal(s->ops->watch(s, "", 0, rec_cb, rec_end, &live, &lw, NULL), 0);
    scripted_writes(s, &expect);
    kc_rev_t cur = s->ops->current_rev(s);
    assert_int_equal(expect.n, (size_t)cur);
    assert_int_equal(live.n, expect.n);
    for (size_t i = 0; i < expect.n; i++)
        assert_ev_equal(&live.ev[i], &expect.ev[i]);
    s->ops->unwatch(s, lw);
    for (kc_rev_t from = 1; from <= cur + 1; from++) {
        for (int odd = 0; odd < 2; odd++) {
            const char *prefix = odd ? "/odd/" : "";
            struct rec got;
            rec_init(&got);
            struct kc_watch *w;
            assert_int_equal(s->ops->watch(s, prefix, from, rec_cb, rec_end, &got, &w, NULL), 0);
            size_t gi = 0;
            for (size_t i = (size_t)from - 1; i < expect.n; i++) {
                if (odd && strncmp(expect.ev[i].key, "/odd/", 5) != 0)
                    continue;
                assert_true(gi < got.n);
                assert_ev_equal(&got.ev[gi++], &expect.ev[i]);
            }
            assert_int_equal(gi, got.n);
            s->ops->unwatch(s, w);
            rec_free(&got);
        }
    }
    /* A watch from a future revision waits for it. */
    struct rec fut;
    rec_init(&fut);
    kc_rev_t now = s->ops->current_rev(s);
    struct kc_watch *fw;
    assert_int_equal(s->ops->watch(s, "", now + 3, rec_cb, rec_end, &fut, &fw, NULL), 0);
    create_ok(s, "/f1", "1");
    create_ok(s, "/f2", "2");
    assert_int_equal(fut.n, 0);
    kc_rev_t r3 = create_ok(s, "/f3", "3");
    assert_int_equal(fut.n, 1);
    assert_int_equal(fut.ev[0].rev, r3);
    s->ops->unwatch(s, fw);
    rec_free(&fut);
    /* A callback returning non-zero stops the stream. */
    struct rec stop;
    rec_init(&stop);
    stop.stop_after = 3;
    struct kc_watch *w;
    assert_int_equal(s->ops->watch(s, "", 1, rec_cb, rec_end, &stop, &w, NULL), 0);
    create_ok(s, "/after-stop", "x");
    assert_int_equal(stop.n, 3);
    s->ops->unwatch(s, w);
    rec_free(&stop);
    rec_free(&live);
    rec_free(&expect);
}

struct wload {
    struct kc_store *s;
    int id, n;
    struct rec *global; /* a from-0 watcher registered before the load */
    int stale_acks;     /* writes whose revision the watcher had not seen on return */
    int errors;         /* (cmocka asserts only on the main thread) */
};

static void *load_thread(void *arg)
{
    struct wload *wl = arg;
    char k[64];
    for (int i = 0; i < wl->n; i++) {
        snprintf(k, sizeof k, "/load/t%d/k%d", wl->id, i % 50);
        kc_rev_t r = 0;
        int rc = kc_store_create(wl->s, k, k, strlen(k), &r, NULL);
        if (rc == KC_EEXISTS)
            rc = kc_store_del(wl->s, k, 0, &r, NULL, NULL);
        if (rc) {
            wl->errors++;
            break;
        }
        if (__atomic_load_n(&wl->global->last, __ATOMIC_ACQUIRE) < r)
            wl->stale_acks++;
    }
    return NULL;
}

/* 1 if r holds exactly the revisions from, from+1, ... */
static int is_consecutive(struct rec *r, kc_rev_t from)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->ev[i].rev != from + (kc_rev_t)i)
            return 0;
    return 1;
}

static void assert_consecutive(struct rec *r, kc_rev_t from)
{
    for (size_t i = 0; i < r->n; i++)
        assert_int_equal(r->ev[i].rev, from + (kc_rev_t)i);
}

static void test_watch_live_in_flight(void **state)
{
    struct kc_store *s = ((struct fx *)*state)->s;
    struct rec global;
    rec_init(&global);
    struct kc_watch *gw;
    assert_int_equal(s->ops->watch(s, "", 0, rec_cb, NULL, &global, &gw, NULL), 0);
    pthread_t th[4];
    struct wload wl[4];
    for (int i = 0; i < 4; i++) {
        wl[i] = (struct wload){s, i, 1500, &global, 0, 0};
        pthread_create(&th[i], NULL, load_thread, &wl[i]);
    }
    /* Start watches at moving revisions while writes are in flight. */
    int watches = 0, bad = 0;
    while (s->ops->current_rev(s) < 5000 && watches < 200) {
        struct rec *r = calloc(1, sizeof *r);
        rec_init(r);
        kc_rev_t cur = s->ops->current_rev(s);
        kc_rev_t from = watches % 3 == 0 ? 0 : (cur > 40 ? cur - 40 : 1);
        struct kc_watch *w;
        if (s->ops->watch(s, "", from, rec_cb, NULL, r, &w, NULL) != 0) {
            bad++;
            break;
        }
        usleep(2000);
        s->ops->unwatch(s, w);
        if (r->n && ((from && r->ev[0].rev != from) || !is_consecutive(r, r->ev[0].rev)))
            bad++;
        rec_free(r);
        free(r);
        watches++;
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(bad, 0); /* no watch lost or duplicated an event */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(wl[i].errors, 0);
        assert_int_equal(wl[i].stale_acks, 0); /* watchers see N before the write of N returns */
    }
    s->ops->unwatch(s, gw);
    assert_int_equal(global.n, 6000);
    assert_consecutive(&global, 1);
    rec_free(&global);
}

static size_t count_rows(const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    size_t n = (size_t)sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
}

static void test_compaction(void **state)
{
    struct fx *f = *state;
    struct kc_store *s = f->s;
    kc_rev_t a = create_ok(s, "/c/a", "a1");
    a = update_ok(s, "/c/a", "a2", a);
    create_ok(s, "/c/gone", "g");
    del_ok(s, "/c/gone");
    create_ok(s, "/c/b", "b1");
    kc_rev_t c = update_ok(s, "/c/a", "a3", a);
    kc_rev_t after = update_ok(s, "/c/b", "b2", 0);
    struct kc_kv_list before;
    assert_int_equal(s->ops->list(s, "/c/", c, NULL, 0, &before, NULL, NULL, NULL), 0);
    assert_int_equal(s->ops->compact(s, c, NULL), 0);
    assert_int_equal(s->ops->compacted_rev(s), c);
    assert_int_equal(s->ops->compact(s, c - 1, NULL), 0); /* older: no-op */
    assert_int_equal(s->ops->compacted_rev(s), c);
    assert_int_equal(s->ops->compact(s, after + 5, NULL), KC_EFUTURE);
    struct kc_kv_list l;
    struct kc_err err = {0};
    assert_int_equal(s->ops->list(s, "/c/", c - 1, NULL, 0, &l, NULL, NULL, &err), KC_ECOMPACTED);
    assert_string_equal(err.reason, "Expired");
    struct kc_watch *w;
    struct rec r;
    rec_init(&r);
    assert_int_equal(s->ops->watch(s, "/c/", c, rec_cb, NULL, &r, &w, NULL), KC_ECOMPACTED);
    assert_int_equal(s->ops->watch(s, "/c/", 1, rec_cb, NULL, &r, &w, NULL), KC_ECOMPACTED);
    assert_int_equal(r.n, 0);
    /* The sweep runs in the background; wait until it removed the superseded rows. */
    for (int i = 0; i < 200 && count_rows(f->path, "SELECT count(*) FROM log WHERE rev < 6") > 1; i++)
        usleep(10000);
    /* Revisions 1-5: a1, a2, gone, its tombstone, b1. Only b1 (newest row of
     * "/c/b" at c = 6) is still needed; a3 is revision 6 itself. */
    assert_int_equal(c, 6);
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM log WHERE rev < 6"), 1);
    assert_int_equal(s->ops->list(s, "/c/", c, NULL, 0, &l, NULL, NULL, NULL), 0);
    assert_int_equal(l.n, before.n);
    for (size_t i = 0; i < l.n; i++) {
        assert_string_equal(l.items[i].key, before.items[i].key);
        assert_string_equal(l.items[i].value, before.items[i].value);
        assert_int_equal(l.items[i].mod_rev, before.items[i].mod_rev);
    }
    kc_kv_list_release(&l);
    kc_kv_list_release(&before);
    assert_int_equal(s->ops->watch(s, "/c/", c + 1, rec_cb, NULL, &r, &w, NULL), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ev[0].rev, after);
    assert_string_equal(r.ev[0].prev, "b1"); /* prev rows of kept events survive compaction */
    s->ops->unwatch(s, w);
    rec_free(&r);
    check_get(s, "/c/a", "a3", 0, c);
    struct kc_kv kv;
    assert_int_equal(kc_store_get(s, "/c/gone", &kv, NULL), KC_ENOTFOUND);
    /* The compacted revision survives a reopen. */
    kc_store_close(s);
    f->s = s = open_store(f, NULL);
    assert_int_equal(s->ops->compacted_rev(s), c);
    assert_int_equal(s->ops->list(s, "/c/", c - 1, NULL, 0, &l, NULL, NULL, NULL), KC_ECOMPACTED);
}

static off_t db_size(struct fx *f)
{
    struct stat st;
    off_t total = 0;
    char p[160];
    if (stat(f->path, &st) == 0)
        total += st.st_size;
    snprintf(p, sizeof p, "%s-wal", f->path);
    if (stat(p, &st) == 0)
        total += st.st_size;
    return total;
}

/* Each churn thread creates and deletes its own 25 keys (1 KB values), round
 * after round, so the log grows by 50 revisions per thread and round while
 * the live data stays empty. 8 threads let group commit batch the writes. */
struct churn {
    struct kc_store *s;
    int id, rounds, errors, *stop;
};

static void *churn_thread(void *arg)
{
    struct churn *c = arg;
    char k[64], val[1024];
    memset(val, 'v', sizeof val);
    while (!__atomic_load_n(c->stop, __ATOMIC_ACQUIRE)) {
        for (int pass = 0; pass < 2; pass++) {
            for (int i = 0; i < 25; i++) {
                snprintf(k, sizeof k, "/churn/%d/%d", c->id, i);
                int rc = pass ? kc_store_del(c->s, k, 0, NULL, NULL, NULL)
                              : kc_store_create(c->s, k, val, sizeof val, NULL, NULL);
                if (rc) {
                    c->errors++;
                    return NULL;
                }
            }
        }
        __atomic_add_fetch(&c->rounds, 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

static void test_growth_bounded(void **state)
{
    struct fx *f = *state;
    kc_store_close(f->s);
    struct kc_sqlite_opts o = {.compact_interval_s = 1, .keep_revisions = 400};
    f->s = open_store(f, &o);
    struct kc_store *s = f->s;
    int stop = 0;
    struct churn c[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        c[i] = (struct churn){s, i, 0, 0, &stop};
        pthread_create(&th[i], NULL, churn_thread, &c[i]);
    }
    off_t early = 0;
    time_t t0 = time(NULL);
    /* At least 3 s, so the 1 s background compaction runs several times, and
     * at least 80 rounds (about 32000 revisions, 32 MB of values written:
     * without compaction the file would pass the bound below). */
    while (__atomic_load_n(&c[0].rounds, __ATOMIC_ACQUIRE) < 80 || time(NULL) - t0 < 3) {
        if (!early && __atomic_load_n(&c[0].rounds, __ATOMIC_ACQUIRE) >= 10)
            early = db_size(f);
        usleep(10000);
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    int rounds = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(c[i].errors, 0);
        rounds += c[i].rounds;
    }
    assert_true(s->ops->compacted_rev(s) > 0);
    /* Let the last compaction and sweep finish, then check nothing piled up. */
    usleep(1500000);
    off_t late = db_size(f);
    fprintf(stderr, "churn: %lld revisions, size after 10 rounds %lld, at end %lld\n",
            (long long)s->ops->current_rev(s), (long long)early, (long long)late);
    assert_true(late < early * 2 + (8 << 20));
    assert_true(count_rows(f->path, "SELECT count(*) FROM log") < 3000);
    (void)rounds;
}

#define NT 8
struct ctr_arg {
    struct kc_store *s;
    int id, errors;
    kc_rev_t revs[200];
};

static void *counter_thread(void *arg)
{
    struct ctr_arg *a = arg;
    char k[64];
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "/conc/t%d/%d", a->id, i);
        if (kc_store_create(a->s, k, "x", 1, &a->revs[i], NULL) != 0) {
            a->errors++;
            return NULL;
        }
        /* Increment a shared counter with CAS; conflicts retry. */
        for (;;) {
            struct kc_kv cur;
            if (kc_store_get(a->s, "/conc/counter", &cur, NULL) != 0) {
                a->errors++;
                return NULL;
            }
            char nv[32];
            snprintf(nv, sizeof nv, "%d", atoi(cur.value) + 1);
            kc_rev_t r = 0;
            int rc = kc_store_update(a->s, "/conc/counter", nv, strlen(nv), cur.mod_rev, &r, NULL, NULL);
            kc_kv_release(&cur);
            if (rc == 0) {
                a->revs[100 + i] = r;
                break;
            }
            if (rc != KC_ECONFLICT) {
                a->errors++;
                return NULL;
            }
        }
    }
    return NULL;
}

static int cmp_rev(const void *a, const void *b)
{
    kc_rev_t x = *(const kc_rev_t *)a, y = *(const kc_rev_t *)b;
    return x < y ? -1 : x > y;
}

static void test_concurrent_writers(void **state)
{
    /* A tiny batch cap exercises requests left queued behind a full batch. */
    struct fx *f = *state;
    kc_store_close(f->s);
    struct kc_sqlite_opts o = {.compact_interval_s = -1, .max_batch = 3};
    struct kc_store *s = f->s = open_store(f, &o);
    kc_rev_t base = create_ok(s, "/conc/counter", "0");
    pthread_t th[NT];
    static struct ctr_arg args[NT];
    for (int i = 0; i < NT; i++) {
        args[i].s = s;
        args[i].id = i;
        pthread_create(&th[i], NULL, counter_thread, &args[i]);
    }
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].errors, 0);
    }
    check_get(s, "/conc/counter", "800", base, 0);
    kc_rev_t all[NT * 200];
    for (int i = 0; i < NT; i++)
        memcpy(all + i * 200, args[i].revs, sizeof args[i].revs);
    qsort(all, NT * 200, sizeof all[0], cmp_rev);
    for (int i = 0; i < NT * 200; i++)
        assert_int_equal(all[i], base + 1 + i); /* unique, gap-free: failed CAS took no revision */
    assert_int_equal(s->ops->current_rev(s), base + NT * 200);
}

static void test_reopen(void **state)
{
    struct fx *f = *state;
    struct kc_store *s = f->s;
    kc_rev_t r1 = create_ok(s, "/r/a", "A");
    kc_rev_t r2 = create_ok(s, "/r/b", "B");
    del_ok(s, "/r/b");
    kc_rev_t cur = s->ops->current_rev(s);
    /* A second store on the same file would reuse revisions: refused. */
    struct kc_store *twice = NULL;
    struct kc_err err = {0};
    assert_int_equal(kc_store_sqlite_open(f->path, NULL, &twice, &err), KC_EIO);
    assert_null(twice);
    kc_store_close(s);
    f->s = s = open_store(f, NULL);
    assert_int_equal(s->ops->current_rev(s), cur);
    check_get(s, "/r/a", "A", r1, r1);
    struct kc_kv kv;
    assert_int_equal(kc_store_get(s, "/r/b", &kv, NULL), KC_ENOTFOUND);
    assert_int_equal(create_ok(s, "/r/c", "C"), cur + 1);
    const char *items[] = {"/r/a", "A", "/r/b", "B"};
    expect_list(s, "/r/", r2, items, 2);
}

static void test_close_ends_watches(void **state)
{
    struct fx *f = *state;
    struct rec r;
    rec_init(&r);
    struct kc_watch *w;
    assert_int_equal(f->s->ops->watch(f->s, "/", 0, rec_cb, rec_end, &r, &w, NULL), 0);
    create_ok(f->s, "/x", "1");
    kc_store_close(f->s);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ended, 1);
    assert_int_equal(r.end_reason, KC_ECLOSED);
    f->s = open_store(f, NULL);
    rec_free(&r);
}

/* The child writes from 4 threads and reports each acknowledged write. */
struct crash_arg {
    struct kc_store *s;
    int fd, id;
};

static void *crash_writer(void *arg)
{
    struct crash_arg *a = arg;
    char k[64], line[128], val[1024];
    memset(val, 'c', sizeof val);
    for (int i = 0;; i++) {
        snprintf(k, sizeof k, "/crash/t%d/%d", a->id, i);
        kc_rev_t r = 0;
        if (kc_store_create(a->s, k, val, sizeof val, &r, NULL) != 0)
            _exit(3);
        int n = snprintf(line, sizeof line, "%s %lld\n", k, (long long)r);
        if (write(a->fd, line, (size_t)n) != n) /* < PIPE_BUF: atomic */
            _exit(4);
    }
    return NULL;
}

static void test_crash_kill9(void **state)
{
    struct fx *f = *state;
    kc_store_close(f->s);
    f->s = NULL;
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        struct kc_store *s;
        if (kc_store_sqlite_open(f->path, NULL, &s, NULL) != 0)
            _exit(2);
        pthread_t th[4];
        struct crash_arg a[4];
        for (int i = 0; i < 4; i++) {
            a[i] = (struct crash_arg){s, p[1], i};
            pthread_create(&th[i], NULL, crash_writer, &a[i]);
        }
        pthread_join(th[0], NULL);
        _exit(0);
    }
    close(p[1]);
    FILE *in = fdopen(p[0], "r");
    char line[256];
    size_t cap = 8192, n = 0;
    char(*keys)[64] = malloc(cap * 64);
    kc_rev_t *revs = malloc(cap * sizeof *revs);
    int killed = 0;
    while (fgets(line, sizeof line, in)) {
        long long r;
        if (n == cap || sscanf(line, "%63s %lld", keys[n], &r) != 2)
            break;
        revs[n++] = r;
        if (n == 3000 && !killed) {
            kill(pid, SIGKILL); /* mid-load: the writers are busy */
            killed = 1;
        }
    }
    fclose(in);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status));
    assert_true(n >= 3000);
    f->s = open_store(f, NULL);
    struct kc_store *s = f->s;
    kc_rev_t maxr = 0;
    for (size_t i = 0; i < n; i++) {
        struct kc_kv kv;
        assert_int_equal(kc_store_get(s, keys[i], &kv, NULL), 0);
        assert_int_equal(kv.mod_rev, revs[i]);
        assert_int_equal(kv.value_len, 1024);
        kc_kv_release(&kv);
        if (revs[i] > maxr)
            maxr = revs[i];
    }
    kc_rev_t cur = s->ops->current_rev(s);
    assert_true(cur >= maxr);
    /* The log is exactly revisions 1..cur, and the counter continues. */
    struct rec all;
    rec_init(&all);
    struct kc_watch *w;
    assert_int_equal(s->ops->watch(s, "", 1, rec_cb, NULL, &all, &w, NULL), 0);
    s->ops->unwatch(s, w);
    assert_int_equal(all.n, (size_t)cur);
    assert_consecutive(&all, 1);
    rec_free(&all);
    assert_int_equal(create_ok(s, "/after-crash", "x"), cur + 1);
    fprintf(stderr, "crash: %zu acknowledged before kill, %lld committed\n", n, (long long)cur);
    free(keys);
    free(revs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_revisions_increase, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exists_notfound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_at_revision, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_replay_every_rev, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_live_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_growth_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_ends_watches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_kill9, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
