/* vmcost.c — what a system call and a thread hand-off cost on this machine, the two prices that
 * bound the API server's per-request CPU below what its code does (docs/bench.md "Against the
 * issue's targets"). On bare metal a getpid system call is ~0.1 µs and a condition-variable round
 * trip between two threads a few µs; in a VM whose guest kernel runs deprivileged (as this one) both
 * are many times that.
 *
 *   vmcost [iterations=200000]
 *
 * Prints µs per getpid (raw syscall, not glibc's cached path), per pthread_cond round trip between
 * two threads (two context switches), and per 4 KiB pwrite to a file in /tmp. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int turn, rounds;

static void *other(void *arg)
{
    (void)arg;
    for (int i = 0; i < rounds; i++) {
        pthread_mutex_lock(&mu);
        while (turn != 1)
            pthread_cond_wait(&cv, &mu);
        turn = 0;
        pthread_cond_signal(&cv);
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 200000;
    if (n <= 0)
        n = 200000;
    double t0 = now();
    for (int i = 0; i < n; i++)
        syscall(SYS_getpid);
    double t1 = now();
    printf("system call (getpid):            %6.2f us\n", (t1 - t0) * 1e6 / n);

    rounds = n / 10 > 1000 ? n / 10 : 1000;
    pthread_t th;
    if (pthread_create(&th, NULL, other, NULL))
        return 1;
    t0 = now();
    for (int i = 0; i < rounds; i++) {
        pthread_mutex_lock(&mu);
        turn = 1;
        pthread_cond_signal(&cv);
        while (turn != 0)
            pthread_cond_wait(&cv, &mu);
        pthread_mutex_unlock(&mu);
    }
    t1 = now();
    pthread_join(th, NULL);
    printf("thread hand-off round trip:      %6.2f us (two context switches)\n", (t1 - t0) * 1e6 / rounds);

    char path[] = "/tmp/kubec-vmcost-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 1;
    unlink(path);
    static char page[4096];
    int w = n / 10 > 1000 ? n / 10 : 1000;
    t0 = now();
    for (int i = 0; i < w; i++)
        if (pwrite(fd, page, sizeof page, (off_t)(i % 256) * 4096) != (ssize_t)sizeof page)
            return 1;
    t1 = now();
    close(fd);
    printf("pwrite 4 KiB (page cache):       %6.2f us\n", (t1 - t0) * 1e6 / w);
    return 0;
}
