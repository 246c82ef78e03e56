/* readytime.c — measures a server's start-to-ready time: fork+exec the
 * command given after "--", poll URL (normally https://HOST:PORT/readyz)
 * until it answers 200, print the milliseconds from just before fork() to
 * that answer, then stop the server with SIGTERM and print how long it took
 * to exit (or, with --keep, leave it running and print its pid).
 *
 * Polling uses one libcurl easy handle every --interval-ms (default 1 ms);
 * on loopback a refused connection fails in microseconds, so the figure is
 * accurate to about the interval. The server certificate is NOT verified:
 * on a fresh data dir the CA does not exist before the server starts, and
 * this only reads an unauthenticated health endpoint.
 *
 * Output: "READY ms=<float> pid=<pid>" and, unless --keep,
 * "STOPPED ms=<float> status=<exit code>". Exit 1 if the server exits or is
 * not ready within --timeout-s (default 30, max 300); then it is killed.
 * Single-threaded.
 */
#include <curl/curl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t discard(char *p, size_t sz, size_t nm, void *ud)
{
    (void)p;
    (void)ud;
    return sz * nm;
}

static void sleep_ms(double ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)((ms - (double)(long)(ms / 1000) * 1000) * 1e6)};
    nanosleep(&ts, NULL);
}

static CURL *poll_handle(const char *url)
{
    CURL *h = curl_easy_init();
    if (!h)
        return NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    return h;
}

/* 0 when ready, -1 when the child died or the deadline passed */
static int wait_ready(CURL *h, pid_t pid, double deadline, double interval_ms)
{
    while (now_s() < deadline) {
        long code = 0;
        if (curl_easy_perform(h) == CURLE_OK && curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK &&
            code == 200)
            return 0;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fprintf(stderr, "readytime: server exited (status %d) before it was ready\n",
                    WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
            return -1;
        }
        sleep_ms(interval_ms);
    }
    fprintf(stderr, "readytime: not ready before the timeout\n");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static int stop_child(pid_t pid, double timeout_s)
{
    double t0 = now_s();
    kill(pid, SIGTERM);
    int st = 0;
    while (waitpid(pid, &st, WNOHANG) != pid) {
        if (now_s() - t0 > timeout_s) {
            fprintf(stderr, "readytime: server did not exit within %.0f s of SIGTERM; killing it\n", timeout_s);
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            break;
        }
        sleep_ms(1);
    }
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    printf("STOPPED ms=%.1f status=%d\n", (now_s() - t0) * 1e3, code);
    return code == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *url = NULL;
    bool keep = false;
    double interval = 1, timeout = 30;
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--"); i++) {
        if (!strcmp(argv[i], "--url") && i + 1 < argc)
            url = argv[++i];
        else if (!strcmp(argv[i], "--keep"))
            keep = true;
        else if (!strcmp(argv[i], "--interval-ms") && i + 1 < argc)
            interval = strtod(argv[++i], NULL);
        else if (!strcmp(argv[i], "--timeout-s") && i + 1 < argc)
            timeout = strtod(argv[++i], NULL);
        else
            break;
    }
    if (!url || i >= argc - 1 || strcmp(argv[i], "--") || interval <= 0 || interval > 1000 || timeout <= 0 ||
        timeout > 300) {
        fprintf(stderr, "Usage: readytime --url URL [--keep] [--interval-ms MS] [--timeout-s S] -- COMMAND ARGS...\n");
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT))
        return 1;
    CURL *h = poll_handle(url);
    if (!h)
        return 1;
    fflush(stdout);
    double t0 = now_s();
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        /* the server's stdout must not hold the caller's pipe open (--keep under $(...)) */
        dup2(STDERR_FILENO, STDOUT_FILENO);
        execvp(argv[i + 1], argv + i + 1);
        _exit(127);
    }
    int rc = wait_ready(h, pid, t0 + timeout, interval);
    double ms = (now_s() - t0) * 1e3;
    curl_easy_cleanup(h);
    if (rc == 0) {
        printf("READY ms=%.1f pid=%ld\n", ms, (long)pid);
        fflush(stdout);
        if (!keep)
            rc = stop_child(pid, 30);
    }
    curl_global_cleanup();
    return rc ? 1 : 0;
}
