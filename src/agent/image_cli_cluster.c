/* image_cli_cluster.c — `kubec images pull|ls|prune` against a cluster (without --local):
 *
 *   kubec images pull IMAGE (--node N | --all-nodes) [--secret [NS/]NAME]... [--force] [--timeout S]
 *   kubec images ls [--node N]
 *   kubec images prune (--node N | --all-nodes) [--timeout S]
 *   common: [--kubeconfig FILE] (else $KUBECONFIG, else /var/lib/kubec/kubeconfig.yaml) [-o json]
 *
 * pull/prune write a request into each target Node's images.kubec.io/request annotation and wait for
 * the agent's answer in images.kubec.io/result (the agent side and why: runc_imgreq.c); one line per
 * node is printed, exit status 1 if any node failed or did not answer. Simulated nodes (annotation
 * kubec.io/sim) have no image store and are reported as skipped. `ls` reads Node status.images.
 * Single-threaded; polls every 200 ms.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "agent/image.h"
#include "agent/runc_imgreq.h"
#include "client/client.h"
#include "util/timeutil.h"
#include "util/jsonparse.h"

#define MAX_SECRETS 16
#define MAX_NODES 5000

struct cli {
    const char *cmd, *image, *node, *kubeconfig;
    const char *secrets[MAX_SECRETS];
    int nsecrets;
    bool all, force, json;
    int timeout_s;
    struct kc_client *c;
};

static int usage(void)
{
    fprintf(stderr,
            "usage: kubec images pull IMAGE (--node N | --all-nodes) [--secret [NS/]NAME]... [--force] [--timeout S]\n"
            "       kubec images ls [--node N]\n"
            "       kubec images prune (--node N | --all-nodes) [--timeout S]\n"
            "  common flags: --kubeconfig FILE (default $KUBECONFIG, else /var/lib/kubec/kubeconfig.yaml), -o json\n"
            "  without a cluster: kubec images pull|ls|prune ... --local DIR (a node's image store directly)\n");
    return 2;
}

static int parse(int argc, char **argv, struct cli *o)
{
    o->cmd = argv[1];
    o->timeout_s = 300;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--node") && v)
            o->node = argv[++i];
        else if (!strcmp(a, "--all-nodes"))
            o->all = true;
        else if (!strcmp(a, "--kubeconfig") && v)
            o->kubeconfig = argv[++i];
        else if (!strcmp(a, "--secret") && v && o->nsecrets < MAX_SECRETS)
            o->secrets[o->nsecrets++] = argv[++i];
        else if (!strcmp(a, "--force"))
            o->force = true;
        else if (!strcmp(a, "--timeout") && v)
            o->timeout_s = atoi(argv[++i]);
        else if (!strcmp(a, "-o") && v && !strcmp(v, "json") && ++i)
            o->json = true;
        else if (a[0] != '-' && !o->image && !strcmp(o->cmd, "pull"))
            o->image = a;
        else
            return -1;
    }
    if (o->timeout_s <= 0 || o->timeout_s > 3600)
        return -1;
    if (!strcmp(o->cmd, "ls"))
        return o->all ? -1 : 0;
    if (strcmp(o->cmd, "pull") && strcmp(o->cmd, "prune"))
        return -1;
    if ((!o->node) == (!o->all) || (!strcmp(o->cmd, "pull") && !o->image))
        return -1;
    return 0;
}

static const char *ann(json_t *node, const char *key)
{
    return json_string_value(json_object_get(json_object_get(json_object_get(node, "metadata"), "annotations"), key));
}

static const char *name_of(json_t *node)
{
    return json_string_value(json_object_get(json_object_get(node, "metadata"), "name")) ?: "?";
}

/* The target Nodes as a JSON array (new reference), or NULL with the message printed. */
static json_t *targets(struct cli *o)
{
    struct kc_err err = {0};
    char path[400];
    json_t *got = NULL;
    if (o->node) {
        if (!kc_path(path, sizeof path, "", "v1", "nodes", NULL, o->node, NULL) ||
            kc_client_get(o->c, path, &got, &err)) {
            fprintf(stderr, "error: node %s: %s\n", o->node, err.message[0] ? err.message : "bad name");
            return NULL;
        }
        return json_pack("[o]", got);
    }
    if (kc_client_get(o->c, "/api/v1/nodes", &got, &err)) {
        fprintf(stderr, "error: listing nodes: %s\n", err.message);
        return NULL;
    }
    json_t *items = json_incref(json_object_get(got, "items"));
    json_decref(got);
    if (json_array_size(items) > MAX_NODES)
        json_array_remove(items, MAX_NODES);
    return items ? items : json_array();
}

static int send_request(struct cli *o, json_t *node, const char *id)
{
    json_t *req = json_pack("{s:s,s:s}", "id", id, "op", o->cmd);
    if (o->image) {
        json_object_set_new(req, "image", json_string(o->image));
        json_object_set_new(req, "force", json_boolean(o->force));
        json_t *sec = json_array();
        for (int i = 0; i < o->nsecrets; i++)
            json_array_append_new(sec, json_string(o->secrets[i]));
        json_object_set_new(req, "secrets", sec);
    }
    char *s = json_dumps(req, JSON_COMPACT), path[400];
    json_decref(req);
    json_t *patch = json_pack("{s:{s:{s:s}}}", "metadata", "annotations", KC_IMGREQ_ANN_REQUEST, s);
    free(s);
    struct kc_err err = {0};
    kc_path(path, sizeof path, "", "v1", "nodes", NULL, name_of(node), NULL);
    int rc = kc_client_patch(o->c, path, "application/merge-patch+json", patch, NULL, &err);
    json_decref(patch);
    return rc;
}

/* The node's answer to request id: a new reference, or NULL while there is none. */
static json_t *answer_of(struct cli *o, const char *node, const char *id)
{
    char path[400];
    json_t *got = NULL;
    struct kc_err err = {0};
    kc_path(path, sizeof path, "", "v1", "nodes", NULL, node, NULL);
    if (kc_client_get(o->c, path, &got, &err))
        return NULL;
    const char *s = ann(got, KC_IMGREQ_ANN_RESULT);
    json_t *res = s ? kc_json_loads(s, 0, NULL) : NULL;
    json_decref(got);
    if (res && !strcmp(json_string_value(json_object_get(res, "id")) ?: "", id))
        return res;
    json_decref(res);
    return NULL;
}

static void print_result(struct cli *o, const char *node, json_t *r)
{
    if (o->json)
        return;
    const char *msg = json_string_value(json_object_get(r, "message")) ?: "";
    double secs = (double)json_integer_value(json_object_get(r, "durationMs")) / 1000.0;
    if (json_is_true(json_object_get(r, "skipped")))
        printf("%-24s skipped  %s\n", node, msg);
    else if (!json_is_true(json_object_get(r, "ok")))
        printf("%-24s failed   %s: %s\n", node, json_string_value(json_object_get(r, "reason")) ?: "Error", msg);
    else if (!strcmp(o->cmd, "pull"))
        printf("%-24s pulled   %s %s %.1f MB in %.1fs\n", node, json_string_value(json_object_get(r, "image")) ?: "",
               json_string_value(json_object_get(r, "digest")) ?: "",
               (double)json_integer_value(json_object_get(r, "sizeBytes")) / 1e6, secs);
    else
        printf("%-24s pruned   %.1f MB freed in %.1fs\n", node,
               (double)json_integer_value(json_object_get(r, "freedBytes")) / 1e6, secs);
}

/* -o json: the whole answer on one line */
static void print_json(json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT);
    printf("%s\n", s ? s : "[]");
    free(s);
}

static int run_request(struct cli *o)
{
    json_t *nodes = targets(o);
    if (!nodes)
        return 1;
    unsigned char rnd[8];
    char id[40];
    RAND_bytes(rnd, sizeof rnd);
    snprintf(id, sizeof id, "%ld-%02x%02x%02x%02x%02x%02x%02x%02x", (long)time(NULL), rnd[0], rnd[1], rnd[2], rnd[3],
             rnd[4], rnd[5], rnd[6], rnd[7]);
    size_t n = json_array_size(nodes), i;
    json_t *results = json_array(), *node;
    for (i = 0; i < n; i++) { /* NULL = waiting for an answer */
        node = json_array_get(nodes, i);
        json_t *r = NULL;
        if (ann(node, "kubec.io/sim"))
            r = json_pack("{s:s,s:b,s:b,s:s}", "node", name_of(node), "ok", 0, "skipped", 1, "message",
                          "simulated node: no image store");
        else if (send_request(o, node, id))
            r = json_pack("{s:s,s:b,s:s,s:s}", "node", name_of(node), "ok", 0, "reason", "Error", "message",
                          "cannot write the request into the Node");
        json_array_append_new(results, r ? r : json_null());
    }
    double deadline = kc_mono_now() + o->timeout_s;
    for (;;) {
        size_t pending = 0;
        for (i = 0; i < n; i++) {
            if (!json_is_null(json_array_get(results, i)))
                continue;
            json_t *r = answer_of(o, name_of(json_array_get(nodes, i)), id);
            if (r) {
                json_object_set_new(r, "node", json_string(name_of(json_array_get(nodes, i))));
                json_array_set_new(results, i, r);
            } else {
                pending++;
            }
        }
        if (!pending || kc_mono_now() > deadline)
            break;
        usleep(200 * 1000);
    }
    int code = 0;
    for (i = 0; i < n; i++) {
        json_t *r = json_array_get(results, i);
        if (json_is_null(r)) {
            r = json_pack("{s:s,s:b,s:s,s:s}", "node", name_of(json_array_get(nodes, i)), "ok", 0, "reason", "Timeout",
                          "message", "no answer from the node's agent (is it running, and a kubec agent?)");
            json_array_set_new(results, i, r);
        }
        if (!json_is_true(json_object_get(r, "ok")) && !json_is_true(json_object_get(r, "skipped")))
            code = 1;
        print_result(o, name_of(json_array_get(nodes, i)), r);
    }
    if (o->json)
        print_json(results);
    json_decref(results);
    json_decref(nodes);
    return code;
}

static int run_ls(struct cli *o)
{
    json_t *nodes = targets(o), *node, *img, *out = json_array();
    if (!nodes)
        return 1;
    size_t i, j;
    if (!o->json)
        printf("%-24s %-60s %-20s %s\n", "NODE", "IMAGE", "IMAGE ID", "SIZE");
    json_array_foreach(nodes, i, node)
    {
        json_array_foreach(json_object_get(json_object_get(node, "status"), "images"), j, img)
        {
            const char *tag = NULL, *dig = NULL, *s;
            size_t k;
            json_t *nm;
            json_array_foreach(json_object_get(img, "names"), k, nm)
            {
                s = json_string_value(nm);
                if (s && strchr(s, '@') && !dig)
                    dig = strchr(s, '@') + 1;
                else if (s && !strchr(s, '@') && !tag)
                    tag = s;
            }
            json_int_t size = json_integer_value(json_object_get(img, "sizeBytes"));
            json_array_append_new(out, json_pack("{s:s,s:s?,s:s?,s:I}", "node", name_of(node), "image", tag, "digest",
                                                 dig, "sizeBytes", size));
            if (!o->json)
                printf("%-24s %-60s %-20.19s %.1f MB\n", name_of(node), tag ? tag : "<none>", dig ? dig : "",
                       (double)size / 1e6);
        }
    }
    if (o->json)
        print_json(out);
    json_decref(out);
    json_decref(nodes);
    return 0;
}

int kc_image_cli_cluster(int argc, char **argv)
{
    struct cli o = {0};
    if (argc < 2 || parse(argc, argv, &o))
        return usage();
    const char *kc = o.kubeconfig ? o.kubeconfig : getenv("KUBECONFIG");
    if (!kc || !*kc)
        kc = "/var/lib/kubec/kubeconfig.yaml";
    struct kc_err err = {0};
    if (kc_client_http_from_kubeconfig(kc, 0, 0, "kubec-images/kubec", &o.c, &err)) {
        fprintf(stderr, "error: %s: %s\n", kc, err.message);
        return 1;
    }
    int rc = !strcmp(o.cmd, "ls") ? run_ls(&o) : run_request(&o);
    kc_client_free(o.c);
    return rc;
}
