/* main.c — the kubec multicall binary: one table row per subcommand. */
#include <stdio.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/image.h"
#include "apiserver/apiserver.h"
#include "controller/controller.h"
#include "scheduler/scheduler.h"
#include "tools/tools.h"

struct kc_cmd {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
};

static int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    puts("kubec v0.1.0 (Kubernetes API v1.33)");
    return 0;
}

static const struct kc_cmd cmds[] = {
    {"server", kc_server_main, "run the API server with its embedded store (and, as threads, the controllers and scheduler)"},
    {"controller-manager", kc_controller_manager_main, "run the controllers against an API server (--kubeconfig)"},
    {"scheduler", kc_scheduler_main, "run the scheduler against an API server (--kubeconfig)"},
    {"agent", kc_agent_main, "run the node agent (simulated nodes) against an API server (--kubeconfig)"},
    {"images", kc_image_cli_main, "pull, list and prune images in a node's image store (--local DIR)"},
    {"timeline", kc_timeline_main, "show where a Deployment's creation or rollout spent its time"},
    {"scheduler-profile", kc_scheduler_profile_main, "per-plugin latency profile of the running scheduler (--duration)"},
    {"stress", kc_stress_main, "creation-chain stress test: many Deployments at once, per-stage latency"},
    {"datastore", kc_datastore_main, "datastore migrate --from DIR --to etcd://...: move an embedded store into etcd"},
    {"version", cmd_version, "print the version"},
};

static int usage(FILE *f)
{
    fprintf(f, "Usage: kubec <command> [flags]\n\nCommands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  %-20s %s\n", cmds[i].name, cmds[i].help);
    fprintf(f, "\nRun 'kubec <command> --help' for a command's flags.\n");
    return f == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr);
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))
        return usage(stdout);
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name))
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "kubec: unknown command %s\n\n", argv[1]);
    return usage(stderr);
}
