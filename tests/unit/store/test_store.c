/* test_store.c — the store suite (store.h): revisions, CAS, lists at old
 * revisions and paging, watch replay and live delivery, compaction,
 * concurrency, reopen and crash recovery. Built twice: test_store runs it
 * on the SQLite backend, test_store_etcd (KC_TEST_ETCD) on the etcd backend
 * against a real etcd (/usr/bin/etcd) that each test's setup starts on
 * loopback ports of its own and its teardown kills. Revisions are checked
 * relative to f->base, the revision of a fresh store (0 for SQLite; 1 for
 * a fresh etcd, whose counter starts at 1). Tests that only make sense for
 * one backend (file locks, file growth, the embedded store's crash
 * recovery; etcd prefixes, failover, a restarted etcd) run only there. Each
 * test works in a fresh mkdtemp directory that its teardown removes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

#ifdef KC_TEST_ETCD
#define ETCD 1
#else
#define ETCD 0
#endif

struct fx {
    char dir[64];
    char path[128];
    struct kc_store *s;
    kc_rev_t base;        /* current revision of the fresh store */
    pid_t etcd;           /* the etcd server of this test (etcd build) */
    int client_port, peer_port;
    char url[64];         /* http://127.0.0.1:<client_port> (https with tls) */
    int tls;              /* etcd requires TLS client certificates from f->dir/{ca,client}.* */
    char ca[128], cert[128], key[128];
};

/* Opens the fixture's store without asserting (also used in forked children). */
static int raw_open(struct fx *f, const struct kc_sqlite_opts *o, struct kc_store **s, struct kc_err *err)
{
    if (ETCD) {
        struct kc_etcd_opts eo = {.compaction_interval_s = -1, .dial_timeout_ms = 500};
        if (f->tls) {
            eo.cafile = f->ca;
            eo.certfile = f->cert;
            eo.keyfile = f->key;
        }
        return kc_store_etcd_open(f->url, &eo, s, err);
    }
    return kc_store_sqlite_open(f->path, o, s, err);
}

static struct kc_store *open_store(struct fx *f, const struct kc_sqlite_opts *o)
{
    struct kc_err err = {0};
    struct kc_store *s = NULL;
    int rc = raw_open(f, o, &s, &err);
    if (rc)
        fprintf(stderr, "open: %s\n", err.message);
    assert_int_equal(rc, 0);
    return s;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &al)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* Starts /usr/bin/etcd on f's ports and data directory (kept across restarts). */
static int start_etcd(struct fx *f)
{
    char data[128], log[128], cu[64], pu[64], cluster[96], sc[160], sk[160];
    snprintf(data, sizeof data, "%s/etcd", f->dir);
    snprintf(log, sizeof log, "%s/etcd.log", f->dir);
    snprintf(sc, sizeof sc, "%s/server.crt", f->dir);
    snprintf(sk, sizeof sk, "%s/server.key", f->dir);
    snprintf(cu, sizeof cu, "%s://127.0.0.1:%d", f->tls ? "https" : "http", f->client_port);
    snprintf(pu, sizeof pu, "http://127.0.0.1:%d", f->peer_port);
    snprintf(cluster, sizeof cluster, "default=%s", pu);
    snprintf(f->url, sizeof f->url, "%s", cu);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (f->tls)
            execl("/usr/bin/etcd", "etcd", "--name", "default", "--data-dir", data, "--listen-client-urls", cu,
                  "--advertise-client-urls", cu, "--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu,
                  "--initial-cluster", cluster, "--cert-file", sc, "--key-file", sk, "--client-cert-auth",
                  "--trusted-ca-file", f->ca, (char *)NULL);
        else
            execl("/usr/bin/etcd", "etcd", "--name", "default", "--data-dir", data, "--listen-client-urls", cu,
                  "--advertise-client-urls", cu, "--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu,
                  "--initial-cluster", cluster, (char *)NULL);
        _exit(127);
    }
    f->etcd = pid;
    /* Healthy = the backend can open (it reads the key space). */
    for (int i = 0; i < 300; i++) {
        struct kc_store *s = NULL;
        if (raw_open(f, NULL, &s, NULL) == 0) {
            kc_store_close(s);
            return 0;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            fprintf(stderr, "etcd exited; see %s\n", log);
            f->etcd = 0;
            return -1;
        }
        usleep(50000);
    }
    return -1;
}

static void stop_etcd(struct fx *f)
{
    if (f->etcd > 0) {
        kill(f->etcd, SIGKILL);
        waitpid(f->etcd, NULL, 0);
        f->etcd = 0;
    }
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/kc_store_XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof f->path, "%s/kv.db", f->dir);
    if (ETCD) {
        f->client_port = free_port();
        f->peer_port = free_port();
        if (f->client_port < 0 || f->peer_port < 0 || start_etcd(f)) {
            fprintf(stderr, "cannot start /usr/bin/etcd (apt-get install etcd-server)\n");
            stop_etcd(f);
            return -1;
        }
    }
    struct kc_sqlite_opts o = {.compact_interval_s = -1};
    f->s = open_store(f, &o);
    f->base = f->s->ops->current_rev(f->s);
    *state = f;
    return 0;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    kc_store_close(f->s);
    stop_etcd(f);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
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
    struct fx *f = *state;
    struct kc_store *s = f->s;
    assert_int_equal(s->ops->current_rev(s), f->base);
    assert_int_equal(f->base, ETCD ? 1 : 0);
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
    struct fx *f = *state;
    struct kc_store *s = f->s;
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
    expect_list(s, "/registry/pods/", f->base + 1, first, 1);
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
    struct fx *f = *state;
    struct kc_store *s = f->s;
    struct rec live, expect;
    rec_init(&live);
    rec_init(&expect);
    struct kc_watch *lw;
    assert_int_equal(s->ops->watch(s, "", 0, rec_cb, rec_end, &live, &lw, NULL), 0);
    scripted_writes(s, &expect);
    kc_rev_t cur = s->ops->current_rev(s);
    assert_int_equal(expect.n, (size_t)(cur - f->base));
    assert_int_equal(live.n, expect.n);
    for (size_t i = 0; i < expect.n; i++)
        assert_ev_equal(&live.ev[i], &expect.ev[i]);
    s->ops->unwatch(s, lw);
    for (kc_rev_t from = f->base + 1; from <= cur + 1; from++) {
        for (int odd = 0; odd < 2; odd++) {
            const char *prefix = odd ? "/odd/" : "";
            struct rec got;
            rec_init(&got);
            struct kc_watch *w;
            assert_int_equal(s->ops->watch(s, prefix, from, rec_cb, rec_end, &got, &w, NULL), 0);
            size_t gi = 0;
            for (size_t i = (size_t)(from - f->base - 1); i < expect.n; i++) {
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
    struct fx *f = *state;
    struct kc_store *s = f->s;
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
    while (s->ops->current_rev(s) < f->base + 5000 && watches < 200) {
        struct rec *r = calloc(1, sizeof *r);
        rec_init(r);
        kc_rev_t cur = s->ops->current_rev(s);
        kc_rev_t from = watches % 3 == 0 ? 0 : (cur > f->base + 40 ? cur - 40 : f->base + 1);
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
    assert_consecutive(&global, f->base + 1);
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
    /* Revisions base+1..base+5: a1, a2, gone, its tombstone, b1; a3 is c. */
    assert_int_equal(c, f->base + 6);
    if (!ETCD) {
        /* The sweep runs in the background; wait until it removed the superseded rows. */
        for (int i = 0; i < 200 && count_rows(f->path, "SELECT count(*) FROM log WHERE rev < 6") > 1; i++)
            usleep(10000);
        /* Only b1 (newest row of "/c/b" at c = 6) is still needed. */
        assert_int_equal(count_rows(f->path, "SELECT count(*) FROM log WHERE rev < 6"), 1);
    }
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

#ifndef KC_TEST_ETCD /* file growth is a SQLite matter */
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
#endif

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
    assert_int_equal(s->ops->current_rev(s), f->base);
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
    if (!ETCD) {
        /* A second store on the same file would reuse revisions: refused. */
        struct kc_store *twice = NULL;
        struct kc_err err = {0};
        assert_int_equal(kc_store_sqlite_open(f->path, NULL, &twice, &err), KC_EIO);
        assert_null(twice);
    } else {
        /* Several stores (API servers) on one etcd share its revisions. */
        struct kc_store *twice = open_store(f, NULL);
        check_get(twice, "/r/a", "A", r1, r1);
        assert_int_equal(twice->ops->current_rev(twice), cur);
        kc_store_close(twice);
    }
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

#ifndef KC_TEST_ETCD
/* The revision survives a reopen after a compaction swept the row that carried it: the last write was a
 * delete, and its tombstone is gone once compacted. */
static void test_reopen_after_sweeping_newest(void **state)
{
    struct fx *f = *state;
    struct kc_store *s = f->s;
    create_ok(s, "/t/a", "A");
    create_ok(s, "/t/b", "B");
    del_ok(s, "/t/a");
    del_ok(s, "/t/b");
    kc_rev_t cur = s->ops->current_rev(s);
    assert_int_equal(s->ops->compact(s, cur, NULL), 0);
    /* the writer sweeps while idle; wait until the log is empty (every row was superseded or a tombstone) */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 1000);
    long long rows = -1;
    for (int i = 0; i < 500 && rows != 0; i++) {
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(db, "SELECT count(*) FROM log", -1, &q, NULL) == SQLITE_OK &&
            sqlite3_step(q) == SQLITE_ROW)
            rows = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
        if (rows != 0) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    sqlite3_close(db);
    assert_int_equal(rows, 0);
    kc_store_close(s);
    f->s = s = open_store(f, NULL);
    assert_int_equal(s->ops->current_rev(s), cur);
    assert_int_equal(create_ok(s, "/t/c", "C"), cur + 1);
}

/* take_completions (SQLite): the cache's watch wakes the writers of the events it takes, after every
 * other watch saw them; a write whose event it does not take returns as before; after unwatch the
 * store wakes writers itself again. */
struct tc_log {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int order[64];    /* per revision - base: 1 = plain watch first, 2 = completer first */
    void *pending[64];
    kc_rev_t pending_rev[64];
    int npending;
    kc_rev_t completed; /* highest revision whose writer was woken by the completer */
    kc_rev_t base;
    bool stop;
};

static int tc_plain_cb(void *ctx, const struct kc_event *ev)
{
    struct tc_log *l = ctx;
    pthread_mutex_lock(&l->mu);
    if (!l->order[ev->rev - l->base])
        l->order[ev->rev - l->base] = 1;
    pthread_mutex_unlock(&l->mu);
    return 0;
}

static int tc_completer_cb(void *ctx, const struct kc_event *ev)
{
    struct tc_log *l = ctx;
    pthread_mutex_lock(&l->mu);
    if (!l->order[ev->rev - l->base])
        l->order[ev->rev - l->base] = 2;
    /* even revisions only: odd ones the store must complete itself */
    if (ev->done && ev->taken && ev->rev % 2 == 0) {
        *ev->taken = true;
        l->pending[l->npending] = ev->done;
        l->pending_rev[l->npending++] = ev->rev;
        pthread_cond_signal(&l->cond);
    }
    pthread_mutex_unlock(&l->mu);
    return 0;
}

static void *tc_completer(void *arg)
{
    struct tc_log *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->npending && !l->stop)
            pthread_cond_wait(&l->cond, &l->mu);
        if (!l->npending)
            break;
        void *done = l->pending[0];
        kc_rev_t rev = l->pending_rev[0];
        l->npending--;
        memmove(l->pending, l->pending + 1, (size_t)l->npending * sizeof *l->pending);
        memmove(l->pending_rev, l->pending_rev + 1, (size_t)l->npending * sizeof *l->pending_rev);
        pthread_mutex_unlock(&l->mu);
        usleep(20000); /* the writer must still be waiting for us */
        pthread_mutex_lock(&l->mu);
        l->completed = rev;
        pthread_mutex_unlock(&l->mu);
        kc_store_complete(done);
        pthread_mutex_lock(&l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void test_take_completions(void **state)
{
    struct fx *f = *state;
    struct kc_store *s = f->s;
    assert_non_null(s->ops->take_completions);
    struct tc_log l = {.base = f->base};
    pthread_mutex_init(&l.mu, NULL);
    pthread_cond_init(&l.cond, NULL);
    pthread_t th;
    pthread_create(&th, NULL, tc_completer, &l);
    struct kc_watch *cw, *pw;
    /* the completer registers first: the store must still deliver to it last */
    assert_int_equal(s->ops->watch(s, "", 0, tc_completer_cb, NULL, &l, &cw, NULL), 0);
    s->ops->take_completions(s, cw);
    assert_int_equal(s->ops->watch(s, "", 0, tc_plain_cb, NULL, &l, &pw, NULL), 0);
    for (int i = 0; i < 10; i++) {
        char key[32];
        snprintf(key, sizeof key, "/tc/%d", i);
        kc_rev_t rev = 0;
        assert_int_equal(kc_store_create(s, key, "v", 1, &rev, NULL), 0);
        pthread_mutex_lock(&l.mu);
        if (rev % 2 == 0)
            assert_int_equal(l.completed, rev); /* returned only once the completer woke it */
        else
            assert_true(l.completed < rev); /* not taken: the store woke it */
        assert_int_equal(l.order[rev - l.base], 1); /* the plain watch saw it first */
        pthread_mutex_unlock(&l.mu);
    }
    /* without the completer, writes return on the store's own wake-up */
    s->ops->unwatch(s, cw);
    kc_rev_t before = l.completed, rev = 0;
    for (int i = 0; i < 4; i++) {
        char key[32];
        snprintf(key, sizeof key, "/tc/after/%d", i);
        assert_int_equal(kc_store_create(s, key, "v", 1, &rev, NULL), 0);
    }
    pthread_mutex_lock(&l.mu);
    assert_int_equal(l.completed, before);
    l.stop = true;
    pthread_cond_signal(&l.cond);
    pthread_mutex_unlock(&l.mu);
    pthread_join(th, NULL);
    s->ops->unwatch(s, pw);
    pthread_mutex_destroy(&l.mu);
    pthread_cond_destroy(&l.cond);
}
#endif

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
        if (raw_open(f, NULL, &s, NULL) != 0)
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
    assert_int_equal(all.n, (size_t)(cur - f->base));
    assert_consecutive(&all, f->base + 1);
    rec_free(&all);
    assert_int_equal(create_ok(s, "/after-crash", "x"), cur + 1);
    fprintf(stderr, "crash: %zu acknowledged before kill, %lld committed\n", n, (long long)cur);
    free(keys);
    free(revs);
}

/* ---------- etcd only ---------- */
#ifdef KC_TEST_ETCD

/* A custom prefix replaces "/registry"; other keys have no etcd form. */
static void test_etcd_prefix(void **state)
{
    struct fx *f = *state;
    struct kc_store *raw = f->s, *p = NULL;
    struct kc_etcd_opts o = {.prefix = "/kc-test/", .compaction_interval_s = -1};
    assert_int_equal(kc_store_etcd_open(f->url, &o, &p, NULL), 0);
    struct rec r;
    rec_init(&r);
    struct kc_watch *w;
    assert_int_equal(p->ops->watch(p, "/registry/pods/", 0, rec_cb, rec_end, &r, &w, NULL), 0);
    kc_rev_t r1 = create_ok(p, "/registry/pods/ns/a", "A");
    check_get(raw, "/kc-test/pods/ns/a", "A", r1, r1); /* as etcd stores it */
    kc_rev_t r2 = create_ok(raw, "/kc-test/pods/ns/b", "B");
    create_ok(raw, "/registry/pods/ns/c", "not under the prefix");
    create_ok(raw, "/kc-testx/pods/ns/d", "neither");
    create_ok(raw, "/kc-tes", "shorter");
    const char *items[] = {"/registry/pods/ns/a", "A", "/registry/pods/ns/b", "B"};
    expect_list(p, "/registry/pods/", 0, items, 2);
    /* The mapping is plain string replacement: "/kc-testx/..." is "/registryx/...". */
    const char *all[] = {"/registry/pods/ns/a", "A", "/registry/pods/ns/b", "B", "/registryx/pods/ns/d", "neither"};
    expect_list(p, "", 0, all, 3);
    expect_list(p, "/other/", 0, NULL, 0);
    check_get(p, "/registry/pods/ns/b", "B", r2, r2);
    assert_int_equal(kc_store_create(p, "/other", "x", 1, NULL, NULL), KC_EINVAL);
    /* The stream of the prefixed store saw only its own key space. */
    for (int i = 0; i < 500 && r.n < 2; i++)
        usleep(10000);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.ev[0].key, "/registry/pods/ns/a");
    assert_string_equal(r.ev[1].key, "/registry/pods/ns/b");
    assert_int_equal(r.ev[1].rev, r2);
    p->ops->unwatch(p, w);
    kc_store_close(p);
    rec_free(&r);
}

/* Endpoints that cannot be reached are skipped; all the URL forms parse. */
static void test_etcd_failover(void **state)
{
    struct fx *f = *state;
    int dead = free_port();
    char eps[256];
    snprintf(eps, sizeof eps, "http://127.0.0.1:%d,%s", dead, f->url);
    struct kc_etcd_opts o = {.compaction_interval_s = -1, .dial_timeout_ms = 300};
    struct kc_store *s = NULL;
    struct kc_err err = {0};
    assert_int_equal(kc_store_etcd_open(eps, &o, &s, &err), 0);
    struct rec r;
    rec_init(&r);
    struct kc_watch *w;
    assert_int_equal(s->ops->watch(s, "", 0, rec_cb, rec_end, &r, &w, NULL), 0);
    kc_rev_t r1 = create_ok(s, "/fo/a", "1");
    assert_int_equal(r.n, 1);
    check_get(s, "/fo/a", "1", r1, r1);
    s->ops->unwatch(s, w);
    kc_store_close(s);
    rec_free(&r);
    snprintf(eps, sizeof eps, "etcd://127.0.0.1:%d,127.0.0.1:%d", dead, f->client_port);
    assert_int_equal(kc_store_etcd_open(eps, &o, &s, &err), 0);
    check_get(s, "/fo/a", "1", r1, r1);
    kc_store_close(s);
    snprintf(eps, sizeof eps, "http://127.0.0.1:%d", dead);
    s = NULL;
    assert_int_equal(kc_store_etcd_open(eps, &o, &s, &err), KC_EIO);
    assert_null(s);
    assert_string_equal(err.reason, "ServiceUnavailable");
}

/* A watch survives etcd going away: it resumes after the last revision it
 * delivered, with no gap and no duplicate. */
static void test_etcd_watch_resume(void **state)
{
    struct fx *f = *state;
    struct kc_store *s = f->s;
    struct rec r, h;
    rec_init(&r);
    rec_init(&h);
    struct kc_watch *w, *hw;
    assert_int_equal(s->ops->watch(s, "/wr/", 0, rec_cb, rec_end, &r, &w, NULL), 0);
    kc_rev_t r1 = create_ok(s, "/wr/a", "1");
    assert_int_equal(s->ops->watch(s, "/wr/", r1, rec_cb, rec_end, &h, &hw, NULL), 0);
    assert_int_equal(h.n, 1);
    stop_etcd(f);
    assert_int_equal(kc_store_create(s, "/wr/b", "2", 1, NULL, NULL), KC_EIO);
    assert_int_equal(start_etcd(f), 0);
    kc_rev_t r2 = create_ok(s, "/wr/b", "2");
    kc_rev_t r3 = update_ok(s, "/wr/a", "3", r1);
    assert_int_equal(r2, r1 + 1); /* the failed create took nothing */
    /* Writes wait for this store's watches, which reconnected meanwhile. */
    assert_int_equal(r.n, 3);
    assert_int_equal(h.n, 3);
    assert_consecutive(&r, r1);
    assert_consecutive(&h, r1);
    assert_string_equal(r.ev[2].prev, "1");
    assert_int_equal(r.ev[2].rev, r3);
    assert_int_equal(r.ended, 0);
    s->ops->unwatch(s, w);
    s->ops->unwatch(s, hw);
    rec_free(&r);
    rec_free(&h);
}

/* Background compaction (kube-apiserver's scheme): each tick compacts to the
 * revision seen at the previous tick; the coordination key stays hidden. */
static void test_etcd_background_compaction(void **state)
{
    struct fx *f = *state;
    struct kc_etcd_opts o = {.compaction_interval_s = 1};
    struct kc_store *s = NULL;
    assert_int_equal(kc_store_etcd_open(f->url, &o, &s, NULL), 0);
    kc_rev_t r1 = create_ok(s, "/bc/a", "1");
    for (int i = 0; i < 50 && s->ops->compacted_rev(s) == 0; i++)
        usleep(100000);
    kc_rev_t c = s->ops->compacted_rev(s);
    assert_true(c > r1); /* the first tick's txn came after r1 */
    struct kc_kv_list l;
    struct kc_err err = {0};
    assert_int_equal(s->ops->list(s, "", r1, NULL, 0, &l, NULL, NULL, &err), KC_ECOMPACTED);
    assert_string_equal(err.reason, "Expired");
    const char *items[] = {"/bc/a", "1"};
    expect_list(s, "", 0, items, 1); /* compact_rev_key is not ours */
    struct rec r;
    rec_init(&r);
    struct kc_watch *w;
    assert_int_equal(s->ops->watch(s, "", c, rec_cb, rec_end, &r, &w, &err), KC_ECOMPACTED);
    kc_store_close(s);
    /* Another store on the same etcd learns the compacted revision. */
    s = open_store(f, NULL);
    assert_true(s->ops->compacted_rev(s) >= c);
    kc_store_close(s);
    rec_free(&r);
}

/* Values are binary-safe; etcd's request limit (1.5 MiB by default) is 413. */
static void test_etcd_values(void **state)
{
    struct kc_store *s = ((struct fx *)*state)->s;
    size_t n = 1024 * 1024;
    char *v = malloc(2 * n);
    for (size_t i = 0; i < 2 * n; i++)
        v[i] = (char)(i * 7 + i / 251);
    kc_rev_t r = 0;
    assert_int_equal(kc_store_create(s, "/big/one-mib", v, n, &r, NULL), 0);
    struct kc_kv kv;
    assert_int_equal(kc_store_get(s, "/big/one-mib", &kv, NULL), 0);
    assert_int_equal(kv.value_len, n);
    assert_memory_equal(kv.value, v, n);
    assert_int_equal(kv.value[n], 0);
    kc_kv_release(&kv);
    for (size_t len = 0; len < 5; len++) { /* every base64 padding case, and the empty value */
        char k[32];
        snprintf(k, sizeof k, "/small/%zu", len);
        assert_int_equal(kc_store_create(s, k, v + 100, len, NULL, NULL), 0);
        assert_int_equal(kc_store_get(s, k, &kv, NULL), 0);
        assert_int_equal(kv.value_len, len);
        assert_memory_equal(kv.value, v + 100, len);
        kc_kv_release(&kv);
    }
    struct kc_err err = {0};
    /* etcd says "request is too large" past --max-request-bytes, gRPC
     * "received message larger than max" past 2 MiB: both are 413. */
    assert_int_equal(kc_store_create(s, "/big/two-mib", v, 2 * n, NULL, &err), KC_ETOOLARGE);
    assert_int_equal(err.code, 413);
    assert_int_equal(kc_store_create(s, "/big/1.6-mib", v, n + n * 6 / 10, NULL, &err), KC_ETOOLARGE);
    assert_int_equal(err.code, 413);
    assert_int_equal(kc_store_get(s, "/big/two-mib", &kv, NULL), KC_ENOTFOUND);
    free(v);
}

/* A minimal fake etcd: answers every range with revision 10 and every watch
 * with "created", then, once told to, with a compaction cancel. It lets the
 * test reach the one path a real etcd only takes under races: a live stream
 * ended by compaction. */
struct fake_etcd {
    int lfd, port;
    int send_compact;  /* atomic: 1 = send the compaction cancel on the open stream */
    int stop;          /* atomic */
    pthread_t th;
};

static void fake_serve(struct fake_etcd *fe, int c)
{
    char req[8192];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof req - 1 && (r = read(c, req + n, sizeof req - 1 - n)) > 0) {
        n += (size_t)r;
        req[n] = 0;
        char *hdr_end = strstr(req, "\r\n\r\n");
        const char *cl = strcasestr(req, "content-length:");
        if (hdr_end && cl && (size_t)(hdr_end + 4 - req) + (size_t)atol(cl + 15) <= n)
            break;
    }
    const char *head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
    if (write(c, head, strlen(head)) < 0)
        return;
    if (strstr(req, "POST /v3/watch")) {
        const char *created = "{\"result\":{\"header\":{\"revision\":\"10\"},\"created\":true}}\n";
        if (write(c, created, strlen(created)) < 0)
            return;
        while (!__atomic_load_n(&fe->send_compact, __ATOMIC_ACQUIRE) && !__atomic_load_n(&fe->stop, __ATOMIC_ACQUIRE))
            usleep(5000);
        const char *cancel = "{\"result\":{\"header\":{},\"canceled\":true,\"compact_revision\":\"12\"}}\n";
        if (!__atomic_load_n(&fe->stop, __ATOMIC_ACQUIRE) && write(c, cancel, strlen(cancel)) < 0)
            return;
        while (!__atomic_load_n(&fe->stop, __ATOMIC_ACQUIRE))
            usleep(5000);
    } else {
        const char *body = "{\"header\":{\"revision\":\"10\"}}";
        if (write(c, body, strlen(body)) < 0)
            return;
    }
}

static void *fake_main(void *arg)
{
    struct fake_etcd *fe = arg;
    while (!__atomic_load_n(&fe->stop, __ATOMIC_ACQUIRE)) {
        int c = accept(fe->lfd, NULL, NULL);
        if (c < 0)
            break;
        fake_serve(fe, c);
        close(c);
    }
    return NULL;
}

static void test_etcd_watch_ends_on_compaction(void **state)
{
    (void)state;
    struct fake_etcd fe = {0};
    fe.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(fe.lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fe.lfd, (struct sockaddr *)&a, &al), 0);
    assert_int_equal(listen(fe.lfd, 16), 0);
    fe.port = ntohs(a.sin_port);
    pthread_create(&fe.th, NULL, fake_main, &fe);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", fe.port);
    struct kc_etcd_opts o = {.compaction_interval_s = -1};
    struct kc_store *s = NULL;
    assert_int_equal(kc_store_etcd_open(url, &o, &s, NULL), 0);
    assert_int_equal(s->ops->current_rev(s), 10);
    struct rec r;
    rec_init(&r);
    struct kc_watch *w;
    assert_int_equal(s->ops->watch(s, "/registry/", 0, rec_cb, rec_end, &r, &w, NULL), 0);
    assert_int_equal(r.ended, 0);
    __atomic_store_n(&fe.send_compact, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 500 && !__atomic_load_n(&r.ended, __ATOMIC_ACQUIRE); i++)
        usleep(10000);
    assert_int_equal(r.ended, 1);
    assert_int_equal(r.end_reason, KC_ECOMPACTED); /* the API server answers 410; clients re-list */
    assert_int_equal(s->ops->compacted_rev(s), 12);
    s->ops->unwatch(s, w);
    assert_int_equal(r.ended, 1); /* unwatch does not call end */
    kc_store_close(s);
    __atomic_store_n(&fe.stop, 1, __ATOMIC_RELEASE);
    shutdown(fe.lfd, SHUT_RDWR);
    close(fe.lfd);
    pthread_join(fe.th, NULL);
    rec_free(&r);
}

/* TLS with client certificates: etcd restarted with --client-cert-auth. */
static void test_etcd_tls(void **state)
{
    struct fx *f = *state;
    kc_rev_t r1 = create_ok(f->s, "/tls/a", "A");
    kc_store_close(f->s);
    f->s = NULL;
    stop_etcd(f);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && exec >openssl.log 2>&1 && "
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 -subj /CN=test-ca && "
             "for n in server client; do "
             "openssl req -newkey rsa:2048 -nodes -keyout $n.key -out $n.csr -subj /CN=$n && "
             "printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >$n.ext && "
             "openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out $n.crt -days 1 "
             "-extfile $n.ext || exit 1; done",
             f->dir);
    assert_int_equal(system(cmd), 0);
    f->tls = 1;
    snprintf(f->ca, sizeof f->ca, "%s/ca.crt", f->dir);
    snprintf(f->cert, sizeof f->cert, "%s/client.crt", f->dir);
    snprintf(f->key, sizeof f->key, "%s/client.key", f->dir);
    assert_int_equal(start_etcd(f), 0);
    f->s = open_store(f, NULL);
    check_get(f->s, "/tls/a", "A", r1, r1);
    struct rec r;
    rec_init(&r);
    struct kc_watch *w;
    assert_int_equal(f->s->ops->watch(f->s, "/tls/", r1, rec_cb, rec_end, &r, &w, NULL), 0);
    kc_rev_t r2 = update_ok(f->s, "/tls/a", "B", r1);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.ev[1].rev, r2);
    f->s->ops->unwatch(f->s, w);
    rec_free(&r);
    /* etcd://host:port means https when TLS files are given. */
    char eps[96];
    snprintf(eps, sizeof eps, "etcd://127.0.0.1:%d", f->client_port);
    struct kc_etcd_opts o = {.cafile = f->ca, .certfile = f->cert, .keyfile = f->key, .compaction_interval_s = -1};
    struct kc_store *s2 = NULL;
    assert_int_equal(kc_store_etcd_open(eps, &o, &s2, NULL), 0);
    check_get(s2, "/tls/a", "B", r1, r2);
    kc_store_close(s2);
    /* Without a client certificate etcd refuses us; with only the system CAs we refuse etcd. */
    s2 = NULL;
    o.certfile = o.keyfile = NULL;
    assert_int_equal(kc_store_etcd_open(f->url, &o, &s2, NULL), KC_EIO);
    o.cafile = NULL;
    o.certfile = f->cert;
    o.keyfile = f->key;
    assert_int_equal(kc_store_etcd_open(f->url, &o, &s2, NULL), KC_EIO);
    assert_null(s2);
}
#endif

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
        cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_ends_watches, setup, teardown),
        /* SQLite: kill -9 of the process owning the store. etcd: kill -9 of
         * the client mid-load; every acknowledged write must be in etcd. */
        cmocka_unit_test_setup_teardown(test_crash_kill9, setup, teardown),
#ifdef KC_TEST_ETCD
        cmocka_unit_test_setup_teardown(test_etcd_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_etcd_failover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_etcd_watch_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_etcd_background_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_etcd_values, setup, teardown),
        cmocka_unit_test(test_etcd_watch_ends_on_compaction),
        cmocka_unit_test_setup_teardown(test_etcd_tls, setup, teardown),
#else
        cmocka_unit_test_setup_teardown(test_growth_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_take_completions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_after_sweeping_newest, setup, teardown),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
