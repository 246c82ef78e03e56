/* test_proc.c — kc_proc_run (src/agent/runc_proc.c), through which the runc runtime starts runc and
 * the CNI plugins: exit codes, separate stdout/stderr capture, stdin fed from a buffer, extra
 * environment, a given stdout descriptor, an exec path that differs from argv[0] (how runc is run
 * from its sealed copy), a missing program (exit 127 as a shell reports it), the timeout, and that a
 * signal the agent blocks for sigwait is not blocked in the child. No root needed. */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/runc_int.h"

/* runc_proc.c takes its clock from runc.c; this test links runc_proc.c alone */
int64_t rc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int run(const struct kc_proc *p, int *st, char **out, char **errout)
{
    struct kc_err err = {0};
    return kc_proc_run(p, st, out, errout, &err);
}

/* Runs p, which must exit 0; returns its captured stdout (the caller frees it). */
static char *run_ok(const struct kc_proc *p)
{
    int st = -1;
    char *out = NULL;
    assert_int_equal(run(p, &st, &out, NULL), 0);
    assert_int_equal(st, 0);
    return out;
}

static void exit_code_and_both_streams(void **state)
{
    (void)state;
    const char *argv[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
    struct kc_proc p = {.argv = argv, .out_fd = -1, .err_fd = -1};
    int st = -1;
    char *out = NULL, *e = NULL;
    assert_int_equal(run(&p, &st, &out, &e), 0);
    assert_int_equal(st, 3);
    assert_string_equal(out, "out\n");
    assert_string_equal(e, "err\n");
    free(out);
    free(e);
}

static void stdin_and_extra_env(void **state)
{
    (void)state;
    const char *argv[] = {"sh", "-c", "read line; echo \"$line/$KC_X\"", NULL};
    const char *env[] = {"KC_X=extra", NULL};
    struct kc_proc p = {.argv = argv, .env = env, .in = "from-stdin\n", .out_fd = -1, .err_fd = -1};
    char *out = run_ok(&p);
    assert_string_equal(out, "from-stdin/extra\n");
    free(out);
}

static void capture_is_capped(void **state)
{
    (void)state;
    const char *argv[] = {"sh", "-c", "i=0; while [ $i -lt 200 ]; do echo 0123456789; i=$((i+1)); done", NULL};
    struct kc_proc p = {.argv = argv, .out_fd = -1, .err_fd = -1, .out_max = 100};
    char *out = run_ok(&p);
    assert_int_equal(strlen(out), 100);
    free(out);
}

static void given_stdout_descriptor(void **state)
{
    (void)state;
    char path[] = "/tmp/kc-test-proc-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *argv[] = {"sh", "-c", "echo to-the-file", NULL};
    struct kc_proc p = {.argv = argv, .out_fd = fd, .err_fd = -1};
    free(run_ok(&p)); /* stdout went to fd: nothing captured */
    char buf[64] = "";
    assert_int_equal(pread(fd, buf, sizeof buf - 1, 0), 12);
    assert_string_equal(buf, "to-the-file\n");
    close(fd);
    unlink(path);
}

/* .path is executed while argv[0] stays what the program sees as its name */
static void exec_path_differs_from_argv0(void **state)
{
    (void)state;
    const char *argv[] = {"shown-name", "-c", "echo \"$0\"", NULL};
    struct kc_proc p = {.argv = argv, .path = "/bin/sh", .out_fd = -1, .err_fd = -1};
    char *out = run_ok(&p);
    assert_string_equal(out, "shown-name\n");
    free(out);
}

static void missing_program_is_127(void **state)
{
    (void)state;
    const char *argv[] = {"/nonexistent/kc-no-such-program", NULL};
    struct kc_proc p = {.argv = argv, .out_fd = -1, .err_fd = -1};
    int st = -1;
    char *out = NULL, *e = NULL;
    assert_int_equal(run(&p, &st, &out, &e), 0);
    assert_int_equal(st, 127);
    assert_non_null(strstr(e, "kc-no-such-program"));
    free(out);
    free(e);
}

static void timeout_kills(void **state)
{
    (void)state;
    const char *argv[] = {"sleep", "5", NULL};
    struct kc_proc p = {.argv = argv, .out_fd = -1, .err_fd = -1, .timeout_ms = 200};
    int st = -1;
    struct kc_err err = {0};
    int64_t t0 = rc_now_ms();
    assert_int_not_equal(kc_proc_run(&p, &st, NULL, NULL, &err), 0);
    assert_true(rc_now_ms() - t0 < 3000);
    assert_non_null(strstr(err.message, "timed out"));
}

/* The agent blocks SIGTERM in all threads for sigwait; a child must not inherit that mask (runc, for
 * one, forwards and handles signals). */
static void blocked_signal_not_inherited(void **state)
{
    (void)state;
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    const char *argv[] = {"sh", "-c", "kill -TERM $$; echo survived", NULL};
    struct kc_proc p = {.argv = argv, .out_fd = -1, .err_fd = -1};
    int st = -1;
    char *out = NULL;
    assert_int_equal(run(&p, &st, &out, NULL), 0);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    assert_int_equal(st, 128 + SIGTERM);
    assert_null(strstr(out, "survived"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exit_code_and_both_streams), cmocka_unit_test(stdin_and_extra_env),
        cmocka_unit_test(capture_is_capped),          cmocka_unit_test(given_stdout_descriptor),
        cmocka_unit_test(exec_path_differs_from_argv0), cmocka_unit_test(missing_program_is_127),
        cmocka_unit_test(timeout_kills),              cmocka_unit_test(blocked_signal_not_inherited),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
