/* tools.h — client-side tools of the kubec multicall binary (`kubec timeline`, `kubec stress`).
 * Each talks to an API server only through the public HTTP API (a kubeconfig), so it works against
 * any server that serves the same objects. Entry points take the subcommand's argv (argv[0] is the
 * subcommand name) and return the process exit code. */
#ifndef KC_TOOLS_TOOLS_H
#define KC_TOOLS_TOOLS_H

/* kubec timeline deployment/NAME [-n NS] [-o json] [--revision N] [--kubeconfig F] (docs/timeline.md).
 * Exit codes: 0 the rollout is Available, 1 error (kubectl-style message on stderr), 2 stuck
 * (a stage is failing: back-off, unschedulable, deadline exceeded), 3 still in progress. */
int kc_timeline_main(int argc, char **argv);

/* kubec stress [flags] [-f job.yaml] (docs/stress.md): the creation-chain stress test. Exit codes: 0
 * passed, 1 a --threshold was breached (WARN lines), 2 API errors above --max-error-rate or the run could
 * not start, 3 pods stuck / timeout / cleanup not finished. */
int kc_stress_main(int argc, char **argv);

/* kubec datastore migrate --from DIR --to etcd://... (src/tools/datastore.c, docs/ha.md). */
int kc_datastore_main(int argc, char **argv);

#endif
