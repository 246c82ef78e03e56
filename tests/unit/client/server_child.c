/* server_child.c — see server_child.h. */
#include "server_child.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

char *child_file(struct child_server *s, const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", s->dir, name);
    FILE *f = fopen(p, "rb");
    if (!f)
        return NULL;
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

struct kc_client *child_client(struct child_server *s)
{
    struct kc_client *c = NULL;
    struct kc_err err = {0};
    if (kc_client_http_from_kubeconfig(s->kubeconfig, 0, 0, "client-test/1", &c, &err))
        fprintf(stderr, "kubeconfig: %s\n", err.message);
    return c;
}

bool child_start(struct child_server *s, int port)
{
    if (!s->dir[0]) {
        snprintf(s->dir, sizeof s->dir, "/tmp/kc-client-XXXXXX");
        if (!mkdtemp(s->dir))
            return false;
    }
    s->port = port ? port : free_port();
    snprintf(s->kubeconfig, sizeof s->kubeconfig, "%s/kubeconfig.yaml", s->dir);
    unlink(s->kubeconfig);
    char listen[64], log[128];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", s->port);
    snprintf(log, sizeof log, "%s/server.log", s->dir);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(KUBEC_BIN, KUBEC_BIN, "server", "--data-dir", s->dir, "--listen", listen, (char *)NULL);
        _exit(127);
    }
    s->pid = pid;
    /* ready: the kubeconfig is written and an authenticated GET answers */
    for (int i = 0; i < 300; i++) {
        usleep(100 * 1000);
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            s->pid = 0;
            return false;
        }
        if (access(s->kubeconfig, R_OK))
            continue;
        struct kc_client *c = child_client(s);
        if (!c)
            continue;
        struct kc_err err = {0};
        int rc = kc_client_get(c, "/api/v1/namespaces/default", NULL, &err);
        kc_client_free(c);
        if (rc == 0)
            return true;
    }
    return false;
}

void child_stop(struct child_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        int st;
        waitpid(s->pid, &st, 0);
        s->pid = 0;
    }
}

void child_destroy(struct child_server *s)
{
    child_stop(s);
    if (s->dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", s->dir);
    }
}
