/* runc_proc.c — runs helper programs (runc, the CNI plugins) as child processes for the runc runtime.
 *
 * posix_spawnp, which glibc implements with clone(CLONE_VM | CLONE_VFORK): the parent's page tables are
 * not copied. A plain fork() of the multi-threaded agent cost 2–28 ms per runc call here (page-table
 * copies are expensive in this VM) and was the largest part of the agent's own overhead around `runc
 * run` (docs/runtime.md). The child's stdio and signal mask are set through spawn file actions and
 * attributes, so no code of ours runs between clone and exec. Stdin fed from a buffer, stdout/stderr
 * captured through pipes with a size cap each, the whole run bounded by a timeout after which the
 * child is SIGKILLed. The parent waits for exactly its pid, so it never reaps container processes
 * (which the runtime waits for itself).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/runc_int.h"

extern char **environ;

#define ENV_MAX 256

struct cap {
    char *buf;
    size_t len, max;
};

static void cap_add(struct cap *c, const char *p, size_t n)
{
    if (c->len + n > c->max)
        n = c->max - c->len;
    if (!n)
        return;
    char *nb = realloc(c->buf, c->len + n + 1);
    if (!nb)
        return;
    c->buf = nb;
    memcpy(c->buf + c->len, p, n);
    c->len += n;
    c->buf[c->len] = 0;
}

/* Builds environ + extra (extra wins on equal names); pointers into existing strings. */
static char **build_env(const char *const *extra)
{
    size_t n = 0, x = 0;
    while (environ[n])
        n++;
    while (extra && extra[x])
        x++;
    if (x > ENV_MAX)
        x = ENV_MAX;
    char **e = calloc(n + x + 1, sizeof *e);
    if (!e)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool shadowed = false;
        for (size_t j = 0; j < x && !shadowed; j++) {
            const char *eq = strchr(extra[j], '=');
            size_t l = eq ? (size_t)(eq - extra[j]) : strlen(extra[j]);
            shadowed = !strncmp(environ[i], extra[j], l) && environ[i][l] == '=';
        }
        if (!shadowed)
            e[k++] = environ[i];
    }
    for (size_t j = 0; j < x; j++)
        e[k++] = (char *)(uintptr_t)extra[j];
    return e;
}

/* The child's stdin/stdout/stderr: fd if >= 0, else /dev/null. */
static int spawn_stdio(posix_spawn_file_actions_t *fa, int fd, int target)
{
    if (fd >= 0)
        return posix_spawn_file_actions_adddup2(fa, fd, target);
    return posix_spawn_file_actions_addopen(fa, target, "/dev/null", target ? O_WRONLY : O_RDONLY, 0);
}

static int spawn(const struct kc_proc *p, int in_r, int out_w, int err_w, char **envp, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc)
        return rc;
    if ((rc = posix_spawnattr_init(&at))) {
        posix_spawn_file_actions_destroy(&fa);
        return rc;
    }
    sigset_t none;
    sigemptyset(&none);
    /* the agent blocks SIGTERM for sigwait: do not pass that on */
    if (!(rc = spawn_stdio(&fa, in_r, 0)) && !(rc = spawn_stdio(&fa, p->out_fd >= 0 ? p->out_fd : out_w, 1)) &&
        !(rc = spawn_stdio(&fa, p->err_fd >= 0 ? p->err_fd : err_w, 2)) &&
        !(rc = posix_spawnattr_setsigmask(&at, &none)) && !(rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK)))
        rc = posix_spawnp(pid, p->path ? p->path : p->argv[0], &fa, &at, (char *const *)(uintptr_t)p->argv,
                          envp ? envp : environ);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

int kc_proc_run(const struct kc_proc *p, int *status, char **out, char **errout, struct kc_err *err)
{
    int inp[2] = {-1, -1}, outp[2] = {-1, -1}, errp[2] = {-1, -1};
    size_t max = p->out_max ? p->out_max : 65536;
    struct cap co = {.max = max}, ce = {.max = max};
    char **envp = p->env ? build_env(p->env) : NULL;
    if ((p->env && !envp) || (p->in && pipe2(inp, O_CLOEXEC)) || (p->out_fd < 0 && pipe2(outp, O_CLOEXEC)) ||
        (p->err_fd < 0 && pipe2(errp, O_CLOEXEC))) {
        free(envp);
        for (int i = 0; i < 2; i++) {
            close_fd(&inp[i]);
            close_fd(&outp[i]);
            close_fd(&errp[i]);
        }
        return kc_err_set(err, KC_EIO, 0, "InternalError", "cannot start %.200s: %s", p->argv[0], strerror(errno));
    }
    pid_t pid = -1;
    int serr = spawn(p, inp[0], outp[1], errp[1], envp, &pid);
    free(envp);
    close_fd(&inp[0]);
    close_fd(&outp[1]);
    close_fd(&errp[1]);
    if (serr) { /* the parent's ends too: nothing will run */
        close_fd(&inp[1]);
        close_fd(&outp[0]);
        close_fd(&errp[0]);
    }
    if (serr == ENOENT || serr == EACCES || serr == ENOEXEC) { /* as the fork + execvp child did: exit 127 */
        *status = 127;
        if (out)
            *out = strdup("");
        if (errout) {
            char m[300];
            snprintf(m, sizeof m, "%.200s: %s\n", p->argv[0], strerror(serr));
            *errout = strdup(m);
        }
        return 0;
    }
    if (serr)
        return kc_err_set(err, KC_EIO, 0, "InternalError", "spawn %.200s: %s", p->argv[0], strerror(serr));
    size_t in_len = p->in ? strlen(p->in) : 0, in_off = 0;
    if (inp[1] >= 0)
        fcntl(inp[1], F_SETFL, O_NONBLOCK);
    if (!in_len)
        close_fd(&inp[1]);
    int64_t deadline = rc_now_ms() + (p->timeout_ms > 0 ? p->timeout_ms : RUNC_CMD_TIMEOUT_MS);
    bool timed_out = false;
    while (outp[0] >= 0 || errp[0] >= 0 || inp[1] >= 0) {
        struct pollfd fds[3] = {{.fd = outp[0], .events = POLLIN}, {.fd = errp[0], .events = POLLIN},
                                {.fd = inp[1], .events = POLLOUT}};
        int64_t left = deadline - rc_now_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        if (poll(fds, 3, (int)left) < 0 && errno != EINTR)
            break;
        char b[4096];
        for (int i = 0; i < 2; i++) {
            int *fd = i ? &errp[0] : &outp[0];
            if (*fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                ssize_t n = read(*fd, b, sizeof b);
                if (n > 0)
                    cap_add(i ? &ce : &co, b, (size_t)n);
                else if (n == 0 || errno != EINTR)
                    close_fd(fd);
            }
        }
        if (inp[1] >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t n = write(inp[1], p->in + in_off, in_len - in_off);
            if (n > 0)
                in_off += (size_t)n;
            if ((n < 0 && errno != EAGAIN && errno != EINTR) || in_off >= in_len)
                close_fd(&inp[1]);
        }
    }
    if (timed_out)
        kill(pid, SIGKILL);
    close_fd(&inp[1]);
    close_fd(&outp[0]);
    close_fd(&errp[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 255;
    if (out)
        *out = co.buf ? co.buf : strdup("");
    else
        free(co.buf);
    if (errout)
        *errout = ce.buf ? ce.buf : strdup("");
    else
        free(ce.buf);
    if (timed_out)
        return kc_err_set(err, KC_EIO, 0, "InternalError", "%.200s timed out", p->argv[0]);
    return 0;
}
