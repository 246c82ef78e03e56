/* image_cli.c — `kubec images pull|ls|prune --local DIR`: the image store used without an agent.
 *
 * For operators (pre-pull into a data dir, inspect a node's cache offline) and for the e2e tests,
 * which exercise the real registry client and store through it. Output is one JSON line on stdout;
 * a failure prints {"reason":..., "message":...} and the message on stderr, exit status 1.
 * Without --local, `kubec images` talks to a cluster instead (image_cli_cluster.c). Single-threaded.
 */
#include "agent/image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SECRETS 16

/* Cluster mode (image_cli_cluster.c, in the kubec binary; absent from the stand-alone test tool, which
 * links the image store alone): weak, so that this file links without the API client. */
int kc_image_cli_cluster(int argc, char **argv) __attribute__((weak));

static int usage(void)
{
    if (kc_image_cli_cluster) /* its usage covers both modes */
        return kc_image_cli_cluster(1, NULL);
    fprintf(stderr, "usage: kubec images pull IMAGE --local DIR [--secret SECRET.json]... [--ca-dir DIR] [--force]\n"
                    "       kubec images ls --local DIR\n"
                    "       kubec images prune --local DIR [--keep IMAGE]...\n");
    return 2;
}

static int fail(const struct kc_err *e)
{
    json_t *o = json_pack("{s:s, s:s}", "reason", e->reason[0] ? e->reason : "Error", "message", e->message);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    printf("%s\n", s ? s : "{}");
    fprintf(stderr, "error: %s\n", e->message);
    free(s);
    json_decref(o);
    return 1;
}

static void print_json(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    printf("%s\n", s ? s : "null");
    free(s);
}

/* Reads a Secret (JSON) file and adds its registries to auths; a missing file is noted as a secret
 * "not found" (as the agent does for a pod's imagePullSecret that does not exist). */
static int add_secret_file(json_t *auths, const char *path, struct kc_err *err)
{
    json_error_t je;
    if (access(path, F_OK) != 0) {
        kc_image_auths_note_secret(auths, path, "not found");
        return 0;
    }
    json_t *sec = json_load_file(path, 0, &je);
    if (!sec)
        return kc_err_set(err, KC_EINVAL, 0, "Error", "%s: %s", path, je.text);
    int rc = kc_image_auths_add_secret(auths, sec, err);
    json_decref(sec);
    return rc;
}

int kc_image_cli_main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    bool local = false;
    for (int i = 2; i < argc; i++)
        local = local || !strcmp(argv[i], "--local");
    if (!local && kc_image_cli_cluster)
        return kc_image_cli_cluster(argc, argv);
    const char *cmd = argv[1], *ref = NULL, *dir = NULL, *ca = NULL;
    const char *keep[MAX_SECRETS + 1] = {0};
    int nkeep = 0;
    bool force = false;
    struct kc_err err = {0};
    json_t *auths = json_object();
    int rc = 0;
    for (int i = 2; i < argc && !rc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--local") && v)
            dir = argv[++i];
        else if (!strcmp(a, "--ca-dir") && v)
            ca = argv[++i];
        else if (!strcmp(a, "--secret") && v)
            rc = add_secret_file(auths, argv[++i], &err);
        else if (!strcmp(a, "--keep") && v && nkeep < MAX_SECRETS)
            keep[nkeep++] = argv[++i];
        else if (!strcmp(a, "--force"))
            force = true;
        else if (a[0] != '-' && !ref)
            ref = a;
        else {
            json_decref(auths);
            return usage();
        }
    }
    if (rc) {
        json_decref(auths);
        return fail(&err);
    }
    if (!dir || (!strcmp(cmd, "pull") && !ref)) {
        json_decref(auths);
        return usage();
    }
    struct kc_image_store_opts o = {.root = dir, .registry_ca_dir = ca};
    struct kc_image_store *s = NULL;
    if ((rc = kc_image_store_open(&o, &s, &err))) {
        json_decref(auths);
        return fail(&err);
    }
    int code = 0;
    if (!strcmp(cmd, "pull")) {
        struct kc_image_info info = {0};
        if (kc_image_pull(s, ref, auths, force, &info, &err)) {
            code = fail(&err);
        } else {
            json_t *out = json_pack("{s:s, s:s, s:s, s:I, s:O?}", "ref", info.ref, "digest", info.digest, "rootfs",
                                    info.rootfs, "sizeBytes", (json_int_t)info.size_bytes, "config", info.config);
            print_json(out);
            json_decref(out);
            json_decref(info.config);
        }
    } else if (!strcmp(cmd, "ls")) {
        json_t *l = kc_image_list(s);
        print_json(l);
        json_decref(l);
    } else if (!strcmp(cmd, "prune")) {
        int64_t freed = 0;
        if (kc_image_prune(s, keep, &freed, &err)) {
            code = fail(&err);
        } else {
            json_t *out = json_pack("{s:I}", "freedBytes", (json_int_t)freed);
            print_json(out);
            json_decref(out);
        }
    } else {
        code = usage();
    }
    kc_image_store_close(s);
    json_decref(auths);
    return code;
}
