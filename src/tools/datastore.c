/* datastore.c — `kubec datastore migrate --from DIR --to etcd://HOST:PORT[,...]`: copies the embedded
 * SQLite store of a stopped `kubec server` (DIR/state.db) into etcd, so a single-machine cluster can
 * move to several API servers without starting over (docs/ha.md).
 *
 * What is copied, in this order, through the store interface of both backends (store.h):
 *  1. the state as of the SQLite store's compacted revision (every key alive then), as creates;
 *  2. every later revision of the kept history, replayed in revision order (a PUT of a new key is a
 *     create, of an existing one an update, a DELETE a delete), so etcd's history holds the same
 *     sequence of changes and a watch or a list at any migrated revision sees the same states in the
 *     same order. etcd numbers the revisions itself: resourceVersions change (clients re-list after
 *     the server restarts on etcd, as after any restore).
 *  3. a check: the current keys and values of both stores are compared one by one.
 *
 * The source is opened through the SQLite backend with background compaction off and only read; the
 * backend's file lock makes the open fail while a server still runs on DIR. A target prefix that
 * already holds keys is refused unless --force, which deletes them first.
 *
 * Data structures: struct mig (both stores, counters, the first error). Threads: none of its own; the
 * history is delivered by the SQLite backend on this thread inside watch().
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/store.h"
#include "tools/tools.h"

#define REGISTRY "/registry/"
#define MAX_PATH_LEN 4096

struct mig {
    struct kc_store *src, *dst;
    size_t base_keys, puts, dels;
    kc_rev_t first_rev, last_rev;
    int rc;
    struct kc_err err;
};

static int usage(FILE *f)
{
    fprintf(f, "Usage: kubec datastore migrate --from DIR --to etcd://HOST:PORT[,HOST:PORT...] [flags]\n\n"
               "Copies the embedded store of a STOPPED kubec server (DIR/state.db) into etcd: every object\n"
               "and the kept history in revision order; then compares both stores. Start the servers with\n"
               "--datastore etcd://... (and the same --etcd-prefix) afterwards. See docs/ha.md.\n\n"
               "Flags:\n"
               "  --from DIR            the server's --data-dir\n"
               "  --to ENDPOINTS        etcd endpoints (etcd://h:p,h:p, http://..., https://...)\n"
               "  --etcd-prefix P       key prefix in etcd (default /registry)\n"
               "  --etcd-cafile F       CA of the etcd servers (TLS)\n"
               "  --etcd-certfile F     client certificate for etcd\n"
               "  --etcd-keyfile F      its key\n"
               "  --force               delete what the target prefix already holds instead of refusing\n");
    return f == stdout ? 0 : 2;
}

/* Writes one history event into the target. */
static int apply(struct mig *m, const struct kc_event *ev)
{
    kc_rev_t r;
    if (ev->type == KC_EV_DELETE) {
        int rc = kc_store_del(m->dst, ev->key, 0, &r, NULL, &m->err);
        m->dels++;
        return rc == KC_ENOTFOUND ? 0 : rc;
    }
    int rc = kc_store_create(m->dst, ev->key, ev->value, ev->value_len, &r, &m->err);
    if (rc == KC_EEXISTS)
        rc = kc_store_update(m->dst, ev->key, ev->value, ev->value_len, 0, &r, NULL, &m->err);
    m->puts++;
    return rc;
}

static int on_event(void *ctx, const struct kc_event *ev)
{
    struct mig *m = ctx;
    if (m->rc)
        return 1;
    if (!m->first_rev)
        m->first_rev = ev->rev;
    m->last_rev = ev->rev;
    m->rc = apply(m, ev);
    return m->rc ? 1 : 0;
}

/* Keys under the target's /registry/ (mapped to the prefix by the backend). */
static int target_keys(struct mig *m, struct kc_kv_list *out)
{
    kc_rev_t rev;
    return m->dst->ops->list(m->dst, REGISTRY, 0, NULL, 0, out, &rev, NULL, &m->err);
}

static int clear_target(struct mig *m, bool force)
{
    struct kc_kv_list l = {0};
    int rc = target_keys(m, &l);
    if (rc)
        return rc;
    if (l.n && !force) {
        fprintf(stderr,
                "kubec datastore: the target already holds %zu key(s) under the prefix (e.g. %s); "
                "use --force to delete them first\n",
                l.n, l.items[0].key);
        kc_kv_list_release(&l);
        return KC_EEXISTS;
    }
    for (size_t i = 0; i < l.n && !rc; i++) {
        rc = kc_store_del(m->dst, l.items[i].key, 0, NULL, NULL, &m->err);
        if (rc == KC_ENOTFOUND)
            rc = 0;
    }
    if (l.n && !rc)
        fprintf(stderr, "kubec datastore: deleted %zu existing key(s) from the target (--force)\n", l.n);
    kc_kv_list_release(&l);
    return rc;
}

/* Step 1: the state at the compacted revision (nothing when the source was never compacted). */
static int copy_base(struct mig *m, kc_rev_t compacted)
{
    if (compacted <= 0)
        return 0;
    struct kc_kv_list l = {0};
    kc_rev_t rev;
    int rc = m->src->ops->list(m->src, REGISTRY, compacted, NULL, 0, &l, &rev, NULL, &m->err);
    for (size_t i = 0; i < l.n && !rc; i++) {
        kc_rev_t r;
        rc = kc_store_create(m->dst, l.items[i].key, l.items[i].value, l.items[i].value_len, &r, &m->err);
        m->base_keys++;
    }
    kc_kv_list_release(&l);
    return rc;
}

/* Step 2: the history after it, in revision order. */
static int replay(struct mig *m, kc_rev_t compacted)
{
    struct kc_watch *w = NULL;
    int rc = m->src->ops->watch(m->src, REGISTRY, compacted + 1, on_event, NULL, m, &w, &m->err);
    if (w)
        m->src->ops->unwatch(m->src, w);
    return m->rc ? m->rc : rc;
}

/* Step 3: both stores' current keys and values are identical. */
static int verify(struct mig *m, size_t *n)
{
    struct kc_kv_list a = {0}, b = {0};
    kc_rev_t rev;
    int rc = m->src->ops->list(m->src, REGISTRY, 0, NULL, 0, &a, &rev, NULL, &m->err);
    if (!rc)
        rc = target_keys(m, &b);
    if (!rc && a.n != b.n)
        rc = kc_err_set(&m->err, KC_EIO, 500, "InternalError", "check failed: %zu keys in the source, %zu in etcd",
                        a.n, b.n);
    for (size_t i = 0; i < a.n && !rc; i++)
        if (strcmp(a.items[i].key, b.items[i].key) || a.items[i].value_len != b.items[i].value_len ||
            memcmp(a.items[i].value, b.items[i].value, a.items[i].value_len))
            rc = kc_err_set(&m->err, KC_EIO, 500, "InternalError", "check failed at %s", a.items[i].key);
    *n = a.n;
    kc_kv_list_release(&a);
    kc_kv_list_release(&b);
    return rc;
}

static int migrate(const char *from, const char *to, const struct kc_etcd_opts *eo, bool force)
{
    char db[MAX_PATH_LEN];
    struct stat stb;
    if (snprintf(db, sizeof db, "%s/state.db", from) >= (int)sizeof db || stat(db, &stb) != 0) {
        fprintf(stderr, "kubec datastore: %s/state.db: %s\n", from, strerror(errno ? errno : ENAMETOOLONG));
        return 1;
    }
    struct mig m = {0};
    struct kc_sqlite_opts so = {.compact_interval_s = -1};
    if (kc_store_sqlite_open(db, &so, &m.src, &m.err)) {
        fprintf(stderr, "kubec datastore: %s: %s (is a server still running on it?)\n", db, m.err.message);
        return 1;
    }
    struct kc_etcd_opts o = *eo;
    o.compaction_interval_s = -1;
    if (kc_store_etcd_open(to, &o, &m.dst, &m.err)) {
        fprintf(stderr, "kubec datastore: %s: %s\n", to, m.err.message);
        kc_store_close(m.src);
        return 1;
    }
    kc_rev_t compacted = m.src->ops->compacted_rev(m.src), cur = m.src->ops->current_rev(m.src);
    int rc = clear_target(&m, force);
    if (rc == KC_EEXISTS) {
        kc_store_close(m.dst);
        kc_store_close(m.src);
        return 1;
    }
    if (!rc)
        rc = copy_base(&m, compacted);
    if (!rc)
        rc = replay(&m, compacted);
    size_t n = 0;
    if (!rc)
        rc = verify(&m, &n);
    kc_rev_t etcd_rev = m.dst->ops->current_rev(m.dst);
    kc_store_close(m.dst);
    kc_store_close(m.src);
    if (rc) {
        fprintf(stderr, "kubec datastore: migration failed: %s\n", m.err.message[0] ? m.err.message : "error");
        return 1;
    }
    printf("migrated %s (revision %lld, compacted at %lld) to %s: %zu keys at the compacted revision, "
           "%zu puts and %zu deletes replayed (revisions %lld..%lld); %zu current keys identical; etcd is at "
           "revision %lld\n",
           db, (long long)cur, (long long)compacted, to, m.base_keys, m.puts, m.dels, (long long)m.first_rev,
           (long long)m.last_rev, n, (long long)etcd_rev);
    return 0;
}

int kc_datastore_main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
        return usage(argc < 2 ? stderr : stdout);
    if (strcmp(argv[1], "migrate")) {
        fprintf(stderr, "kubec datastore: unknown subcommand %s\n\n", argv[1]);
        return usage(stderr);
    }
    const char *from = NULL, *to = NULL;
    struct kc_etcd_opts eo = {0};
    bool force = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return usage(stdout);
        if (!strcmp(a, "--force")) {
            force = true;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t fl = eq ? (size_t)(eq - a) : strlen(a);
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) {
            fprintf(stderr, "kubec datastore: flag needs an argument: %s\n", a);
            return 2;
        }
#define IS(name) (fl == strlen(name) && !strncmp(a, name, fl))
        if (IS("--from"))
            from = v;
        else if (IS("--to"))
            to = v;
        else if (IS("--etcd-prefix"))
            eo.prefix = v;
        else if (IS("--etcd-cafile"))
            eo.cafile = v;
        else if (IS("--etcd-certfile"))
            eo.certfile = v;
        else if (IS("--etcd-keyfile"))
            eo.keyfile = v;
        else {
            fprintf(stderr, "kubec datastore: unknown flag %.*s\n", (int)fl, a);
            return usage(stderr);
        }
#undef IS
    }
    if (!from || !to) {
        fprintf(stderr, "kubec datastore migrate: --from and --to are required\n");
        return usage(stderr);
    }
    if (strncmp(to, "etcd://", 7) && strncmp(to, "http://", 7) && strncmp(to, "https://", 8)) {
        fprintf(stderr, "kubec datastore migrate: --to %s: expected etcd://HOST:PORT[,HOST:PORT...]\n", to);
        return 2;
    }
    return migrate(from, to, &eo, force);
}
