/* runc_logs.c — container output into rotating files, and reading them back for `kubectl logs`.
 *
 * Each container run gets two pipes (stdout, stderr) whose write ends become the container's fds 1
 * and 2. One copier thread (epoll over every read end) turns the bytes into CRI log lines, as
 * containerd writes them:
 *
 *     2026-11-26T16:35:25.123456789Z stdout F hello world
 *     <RFC 3339 nanoseconds> <stdout|stderr> <F full line | P partial: a line longer than 16 KiB, or the
 *     last bytes before EOF without a newline> <message>
 *
 * into <data dir>/pods/<pod uid>/<container>/<restart>.log. When a file grows past log_max_bytes it is
 * renamed to <restart>.log.1 (replacing an older one) and a new file starts, so a run keeps at most
 * about 2 × log_max_bytes. A run's files stay until the pod's sandbox is removed, which is what makes
 * `--previous` work after restarts.
 *
 * Data structures: logs->streams fd → struct stream (one per pipe), each pointing at a shared
 * struct lfile (the open file, refcounted by its two streams); live keys "uid/ctr/attempt" → lfile
 * for follow readers. One mutex guards the maps; the copier does file I/O without it except when
 * rotating.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/runc_int.h"

#define LINE_MAX_BYTES 16384
#define DEFAULT_LOG_MAX (10 * 1024 * 1024)
#define READ_MAX_BYTES (64 * 1024 * 1024)

struct lfile {
    char path[RUNC_PATH_MAX];
    char key[200];
    int fd;
    int refs;
    int64_t size;
};

struct stream {
    int fd;
    bool is_err;
    struct lfile *f;
    char buf[LINE_MAX_BYTES];
    size_t len;
};

struct rc_logs {
    int epfd;
    int wake[2];
    pthread_t thr;
    pthread_mutex_t mu;
    struct kc_map live; /* key → lfile */
    int64_t max;
    bool stop;
};

static void ts_now(char *out, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char b[32];
    strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%s.%09ldZ", b, ts.tv_nsec);
}

static void rotate(struct rc_logs *l, struct lfile *f)
{
    char old[RUNC_PATH_MAX + 4];
    snprintf(old, sizeof old, "%s.1", f->path);
    pthread_mutex_lock(&l->mu);
    close(f->fd);
    rename(f->path, old);
    f->fd = open(f->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    f->size = 0;
    pthread_mutex_unlock(&l->mu);
}

static void emit_line(struct rc_logs *l, struct stream *s, const char *msg, size_t n, bool full)
{
    char ts[48], head[80];
    ts_now(ts, sizeof ts);
    int hl = snprintf(head, sizeof head, "%s %s %c ", ts, s->is_err ? "stderr" : "stdout", full ? 'F' : 'P');
    struct lfile *f = s->f;
    if (f->size > l->max)
        rotate(l, f);
    if (f->fd < 0)
        return;
    /* one write per line keeps lines of the two streams whole (O_APPEND) */
    char *line = malloc((size_t)hl + n + 1);
    if (!line)
        return;
    memcpy(line, head, (size_t)hl);
    memcpy(line + hl, msg, n);
    line[(size_t)hl + n] = '\n';
    ssize_t w = write(f->fd, line, (size_t)hl + n + 1);
    if (w > 0)
        f->size += w;
    free(line);
}

static void drain(struct rc_logs *l, struct stream *s, bool eof)
{
    size_t start = 0;
    for (size_t i = 0; i < s->len; i++)
        if (s->buf[i] == '\n') {
            emit_line(l, s, s->buf + start, i - start, true);
            start = i + 1;
        }
    memmove(s->buf, s->buf + start, s->len - start);
    s->len -= start;
    if (s->len == sizeof s->buf || (eof && s->len)) {
        emit_line(l, s, s->buf, s->len, false);
        s->len = 0;
    }
}

static void close_stream(struct rc_logs *l, struct stream *s)
{
    drain(l, s, true);
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    pthread_mutex_lock(&l->mu);
    struct lfile *f = s->f;
    if (--f->refs == 0) {
        if (kc_map_get(&l->live, f->key) == f)
            kc_map_del(&l->live, f->key);
        if (f->fd >= 0)
            close(f->fd);
        free(f);
    }
    pthread_mutex_unlock(&l->mu);
    free(s);
}

static void *copier(void *arg)
{
    struct rc *r = arg;
    struct rc_logs *l = r->logs;
    struct epoll_event ev[32];
    for (;;) {
        int n = epoll_wait(l->epfd, ev, 32, 1000);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            struct stream *s = ev[i].data.ptr;
            if (!s) { /* the wake pipe: stop */
                char c;
                while (read(l->wake[0], &c, 1) > 0)
                    ;
                continue;
            }
            ssize_t got = read(s->fd, s->buf + s->len, sizeof s->buf - s->len);
            if (got > 0) {
                s->len += (size_t)got;
                drain(l, s, false);
            } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
                close_stream(l, s);
            }
        }
        pthread_mutex_lock(&l->mu);
        bool stop = l->stop;
        pthread_mutex_unlock(&l->mu);
        if (stop)
            break;
    }
    return NULL;
}

int rc_logs_start(struct rc *r, struct kc_err *err)
{
    struct rc_logs *l = calloc(1, sizeof *l);
    if (!l)
        return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
    l->max = r->o.log_max_bytes > 0 ? r->o.log_max_bytes : DEFAULT_LOG_MAX;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0 || pipe2(l->wake, O_CLOEXEC | O_NONBLOCK)) {
        free(l);
        return kc_err_set(err, KC_EIO, 0, "InternalError", "log copier: %s", strerror(errno));
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wake[0], &ev);
    pthread_mutex_init(&l->mu, NULL);
    kc_map_init(&l->live);
    r->logs = l;
    if (pthread_create(&l->thr, NULL, copier, r)) {
        r->logs = NULL;
        close(l->epfd);
        free(l);
        return kc_err_set(err, KC_EIO, 0, "InternalError", "cannot start the log copier");
    }
    return 0;
}

void rc_logs_stop(struct rc *r)
{
    struct rc_logs *l = r->logs;
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_mutex_unlock(&l->mu);
    if (write(l->wake[1], "x", 1) < 0) {
    }
    pthread_join(l->thr, NULL);
    /* streams still open (containers outliving the agent): their pipes close with us */
    close(l->epfd);
    close(l->wake[0]);
    close(l->wake[1]);
    kc_map_release(&l->live);
    pthread_mutex_destroy(&l->mu);
    free(l);
    r->logs = NULL;
}

static void log_dir(struct rc *r, const char *uid, const char *ctr, char *out, size_t n)
{
    snprintf(out, n, "%.500s/pods/%.64s/%.64s", r->dir, uid, ctr);
}

int rc_logs_open(struct rc *r, const char *pod_uid, const char *ctr, int attempt, int *wout, int *werr,
                 struct kc_err *err)
{
    struct rc_logs *l = r->logs;
    char dir[RUNC_PATH_MAX];
    log_dir(r, pod_uid, ctr, dir, sizeof dir);
    int rc = rc_mkdirs(dir, err);
    if (rc)
        return rc;
    struct lfile *f = calloc(1, sizeof *f);
    struct stream *so = calloc(1, sizeof *so), *se = calloc(1, sizeof *se);
    int po[2] = {-1, -1}, pe[2] = {-1, -1};
    if (!f || !so || !se || pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC)) {
        free(f), free(so), free(se);
        for (int i = 0; i < 2; i++) {
            if (po[i] >= 0) close(po[i]);
            if (pe[i] >= 0) close(pe[i]);
        }
        return kc_err_set(err, KC_EIO, 0, "InternalError", "log pipes: %s", strerror(errno));
    }
    snprintf(f->path, sizeof f->path, "%.1000s/%d.log", dir, attempt);
    snprintf(f->key, sizeof f->key, "%.64s/%.64s/%d", pod_uid, ctr, attempt);
    f->fd = open(f->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    f->refs = 2;
    struct stat st;
    if (f->fd >= 0 && !fstat(f->fd, &st))
        f->size = st.st_size;
    so->fd = po[0];
    se->fd = pe[0];
    se->is_err = true;
    so->f = se->f = f;
    fcntl(po[0], F_SETFL, O_NONBLOCK);
    fcntl(pe[0], F_SETFL, O_NONBLOCK);
    pthread_mutex_lock(&l->mu);
    int perr = 0;
    kc_map_put(&l->live, f->key, f, &perr);
    pthread_mutex_unlock(&l->mu);
    struct epoll_event e1 = {.events = EPOLLIN, .data.ptr = so}, e2 = {.events = EPOLLIN, .data.ptr = se};
    epoll_ctl(l->epfd, EPOLL_CTL_ADD, po[0], &e1);
    epoll_ctl(l->epfd, EPOLL_CTL_ADD, pe[0], &e2);
    *wout = po[1];
    *werr = pe[1];
    return 0;
}

bool rc_logs_live(struct rc *r, const char *pod_uid, const char *ctr, int attempt)
{
    char key[200];
    snprintf(key, sizeof key, "%.64s/%.64s/%d", pod_uid, ctr, attempt);
    pthread_mutex_lock(&r->logs->mu);
    bool live = kc_map_get(&r->logs->live, key) != NULL;
    pthread_mutex_unlock(&r->logs->mu);
    return live;
}

/* ---------- reading ---------- */

/* The two highest run numbers with a log file (-1 = none). */
static void runs_of(const char *dir, int *cur, int *prev)
{
    *cur = *prev = -1;
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end;
        long v = strtol(de->d_name, &end, 10);
        if (end == de->d_name || strcmp(end, ".log") || v < 0 || v > 1000000)
            continue;
        if (v > *cur) {
            *prev = *cur;
            *cur = (int)v;
        } else if (v > *prev) {
            *prev = (int)v;
        }
    }
    closedir(d);
}

struct out {
    const struct kc_log_req *q;
    int (*w)(void *, const char *, size_t);
    void *ctx;
    int64_t sent;
    bool stop;
};

/* One CRI line → what the user sees. */
static void put_line(struct out *o, const char *line, size_t n)
{
    if (o->stop)
        return;
    const char *sp1 = memchr(line, ' ', n);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - line)) : NULL;
    const char *sp3 = sp2 ? memchr(sp2 + 1, ' ', n - (size_t)(sp2 + 1 - line)) : NULL;
    const char *msg = line;
    size_t mlen = n;
    bool full = true;
    if (sp3) {
        full = sp2[1] != 'P';
        msg = sp3 + 1;
        mlen = n - (size_t)(msg - line);
    }
    struct kc_buf b;
    kc_buf_init(&b, LINE_MAX_BYTES * 2);
    if (o->q->timestamps && sp1) {
        kc_buf_append(&b, line, (size_t)(sp1 - line));
        kc_buf_putc(&b, ' ');
    }
    kc_buf_append(&b, msg, mlen);
    if (full)
        kc_buf_putc(&b, '\n');
    size_t len = b.len;
    if (o->q->limit_bytes >= 0 && o->sent + (int64_t)len > o->q->limit_bytes) {
        len = (size_t)(o->q->limit_bytes - o->sent);
        o->stop = true;
    }
    if (len && o->w(o->ctx, b.data, len))
        o->stop = true;
    o->sent += (int64_t)len;
    kc_buf_release(&b);
}

static char *slurp(const char *path, size_t *len)
{
    *len = 0;
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    struct kc_buf b;
    kc_buf_init(&b, READ_MAX_BYTES);
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        if (kc_buf_append(&b, tmp, n))
            break;
    fclose(f);
    return kc_buf_steal(&b, len);
}

int kc_runc_read_log(void *impl, const struct kc_log_req *q, int (*write_fn)(void *ctx, const char *p, size_t n),
                     void *ctx, struct kc_err *err)
{
    struct rc *r = impl;
    char dir[RUNC_PATH_MAX];
    if (strchr(q->pod_uid, '/') || strchr(q->container, '/') || q->container[0] == '.')
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "invalid container name");
    log_dir(r, q->pod_uid, q->container, dir, sizeof dir);
    int cur, prev;
    runs_of(dir, &cur, &prev);
    int run = q->previous ? prev : cur;
    if (run < 0)
        return kc_err_set(err, KC_ENOTFOUND, 404, "NotFound",
                          q->previous ? "previous terminated container \"%.64s\" not found"
                                      : "container \"%.64s\" has no logs yet",
                          q->container);
    char p1[RUNC_PATH_MAX + 32], p0[RUNC_PATH_MAX + 32];
    snprintf(p1, sizeof p1, "%s/%d.log.1", dir, run);
    snprintf(p0, sizeof p0, "%s/%d.log", dir, run);
    size_t l1 = 0, l0 = 0;
    char *a = slurp(p1, &l1), *b = slurp(p0, &l0);
    struct kc_buf all;
    kc_buf_init(&all, 2 * (size_t)READ_MAX_BYTES);
    if (a)
        kc_buf_append(&all, a, l1);
    if (b)
        kc_buf_append(&all, b, l0);
    free(a);
    free(b);
    const char *data = all.data ? all.data : "";
    size_t len = all.len, start = 0;
    if (q->tail_lines >= 0) { /* skip all but the last tail_lines lines */
        int64_t lines = 0;
        for (size_t i = 0; i < len; i++)
            lines += data[i] == '\n';
        int64_t skip = lines - q->tail_lines;
        for (size_t i = 0; i < len && skip > 0; i++)
            if (data[i] == '\n' && --skip == 0)
                start = i + 1;
    }
    struct out o = {.q = q, .w = write_fn, .ctx = ctx};
    size_t ls = start;
    for (size_t i = start; i < len && !o.stop; i++)
        if (data[i] == '\n') {
            put_line(&o, data + ls, i - ls);
            ls = i + 1;
        }
    kc_buf_release(&all);
    if (!q->follow || q->previous || o.stop)
        return 0;
    /* follow: read on from where the file ended until the run's copier closes it */
    int fd = open(p0, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    off_t off = (off_t)l0;
    char pend[LINE_MAX_BYTES * 2];
    size_t plen = 0;
    for (int idle = 0; !o.stop;) {
        if (plen >= sizeof pend)
            plen = 0;
        ssize_t n = pread(fd, pend + plen, sizeof pend - plen, off);
        if (n > 0) {
            off += n;
            plen += (size_t)n;
            size_t s = 0;
            for (size_t i = 0; i < plen && !o.stop; i++)
                if (pend[i] == '\n') {
                    put_line(&o, pend + s, i - s);
                    s = i + 1;
                }
            memmove(pend, pend + s, plen - s);
            plen -= s;
            idle = 0;
            continue;
        }
        struct stat st;
        if (!fstat(fd, &st) && st.st_size < off) { /* rotated: the new file starts empty */
            close(fd);
            fd = open(p0, O_RDONLY | O_CLOEXEC);
            off = 0;
            if (fd < 0)
                break;
            continue;
        }
        if (!rc_logs_live(r, q->pod_uid, q->container, run) && ++idle > 1)
            break;
        if (o.w(o.ctx, NULL, 0)) /* a zero-length write asks "still there?" */
            break;
        usleep(200000);
    }
    if (fd >= 0)
        close(fd);
    return 0;
}
