/* image_concurrent.c — N threads pull the same image into one store at once (e2e: coalescing).
 * usage: kc_image_concurrent STORE CA_DIR SECRET.json REF N
 * Prints {"ok": <pulls that succeeded>, "digests": [<distinct digests>], "errors": [...]}. */
#include "agent/image.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXT 32

static struct kc_image_store *store;
static json_t *auths;
static const char *ref;

struct res {
    int rc;
    struct kc_image_info info;
    struct kc_err err;
};

static void *worker(void *arg)
{
    struct res *r = arg;
    r->rc = kc_image_pull(store, ref, auths, false, &r->info, &r->err);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 6)
        return 2;
    int n = atoi(argv[5]);
    if (n < 1 || n > MAXT)
        return 2;
    ref = argv[4];
    struct kc_err err = {0};
    json_t *sec = json_load_file(argv[3], 0, NULL);
    auths = json_object();
    if (!sec || kc_image_auths_add_secret(auths, sec, &err))
        return fprintf(stderr, "secret: %s\n", err.message), 1;
    json_decref(sec);
    struct kc_image_store_opts o = {.root = argv[1], .registry_ca_dir = argv[2]};
    if (kc_image_store_open(&o, &store, &err))
        return fprintf(stderr, "open: %s\n", err.message), 1;
    pthread_t t[MAXT];
    struct res r[MAXT];
    memset(r, 0, sizeof r);
    for (int i = 0; i < n; i++)
        pthread_create(&t[i], NULL, worker, &r[i]);
    json_t *digests = json_array(), *errors = json_array();
    int ok = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        if (r[i].rc) {
            json_array_append_new(errors, json_string(r[i].err.message));
            continue;
        }
        ok++;
        bool seen = false;
        size_t j;
        json_t *d;
        json_array_foreach(digests, j, d) if (!strcmp(json_string_value(d), r[i].info.digest)) seen = true;
        if (!seen)
            json_array_append_new(digests, json_string(r[i].info.digest));
        json_decref(r[i].info.config);
    }
    json_t *out = json_pack("{s:i, s:o, s:o}", "ok", ok, "digests", digests, "errors", errors);
    char *s = json_dumps(out, JSON_COMPACT);
    printf("%s\n", s);
    free(s);
    json_decref(out);
    json_decref(auths);
    kc_image_store_close(store);
    return 0;
}
