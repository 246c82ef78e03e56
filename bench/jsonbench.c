/* jsonbench.c — JSON parse and deep-copy cost on objects the API server handles every request:
 * jansson's json_loadb / json_deep_copy against kc_json_loadb / kc_json_copy (util/jsonparse.h).
 *
 *   jsonbench [iterations=100000] [file.json ...]
 *
 * Without files it uses a 1.2 KiB Pod as apibench POSTs it and a 3.3 KiB Pod as the store holds one
 * (defaults, status, managedFields). Prints µs per operation and the speed-up; checks that both
 * parsers built equal trees first. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/jsonparse.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static const char BODY[] =
    "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"bench-1-c64-0-1234\",\"namespace\":\"default\","
    "\"labels\":{\"app\":\"web\",\"tier\":\"frontend\",\"pod-template-hash\":\"7c5ddbdf54\",\"bench\":\"apibench\"},"
    "\"annotations\":{\"kubectl.kubernetes.io/restartedAt\":\"2024-05-01T10:00:00Z\",\"prometheus.io/scrape\":\"true\","
    "\"prometheus.io/port\":\"9090\"}},\"spec\":{\"restartPolicy\":\"Always\",\"terminationGracePeriodSeconds\":30,"
    "\"dnsPolicy\":\"ClusterFirst\",\"serviceAccountName\":\"default\",\"containers\":[{\"name\":\"web\",\"image\":"
    "\"registry.example/web/frontend:1.27.3\",\"imagePullPolicy\":\"IfNotPresent\",\"args\":[\"--port=8080\","
    "\"--metrics-port=9090\"],\"ports\":[{\"name\":\"http\",\"containerPort\":8080,\"protocol\":\"TCP\"},{\"name\":"
    "\"metrics\",\"containerPort\":9090,\"protocol\":\"TCP\"}],\"env\":[{\"name\":\"LOG_LEVEL\",\"value\":\"info\"},"
    "{\"name\":\"POD_NAME\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":\"metadata.name\"}}}],\"resources\":{\"requests\":"
    "{\"cpu\":\"100m\",\"memory\":\"128Mi\"},\"limits\":{\"cpu\":\"500m\",\"memory\":\"256Mi\"}},\"readinessProbe\":"
    "{\"httpGet\":{\"path\":\"/healthz\",\"port\":8080},\"periodSeconds\":5},\"livenessProbe\":{\"httpGet\":{\"path\":"
    "\"/healthz\",\"port\":8080},\"initialDelaySeconds\":10},\"volumeMounts\":[{\"name\":\"config\",\"mountPath\":"
    "\"/etc/web\",\"readOnly\":true}]}],\"volumes\":[{\"name\":\"config\",\"configMap\":{\"name\":\"web-config\"}}]}}";

static void run(const char *name, const char *buf, size_t len, int iters)
{
    json_t *a = json_loadb(buf, len, 0, NULL), *b = kc_json_loadb_fast(buf, len, 0);
    if (!a || !b || !json_equal(a, b)) {
        fprintf(stderr, "jsonbench: %s: the parsers disagree or reject it\n", name);
        exit(1);
    }
    double t0 = now();
    for (int i = 0; i < iters; i++)
        json_decref(json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL));
    double t1 = now();
    for (int i = 0; i < iters; i++)
        json_decref(kc_json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL));
    double t2 = now();
    for (int i = 0; i < iters; i++)
        json_decref(json_deep_copy(a));
    double t3 = now();
    for (int i = 0; i < iters; i++)
        json_decref(kc_json_copy(a));
    double t4 = now();
    double pj = (t1 - t0) * 1e6 / iters, pk = (t2 - t1) * 1e6 / iters;
    double cj = (t3 - t2) * 1e6 / iters, ck = (t4 - t3) * 1e6 / iters;
    printf("%-22s %6zu B  parse: json_loadb %6.2f us  kc_json_loadb %6.2f us  (x%.1f, %.0f MB/s)   "
           "copy: json_deep_copy %5.2f us  kc_json_copy %5.2f us  (x%.1f)\n",
           name, len, pj, pk, pj / pk, (double)len / pk, cj, ck, cj / ck);
    json_decref(a);
    json_decref(b);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(b);
        return NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 100000;
    if (iters <= 0)
        iters = 100000;
    if (argc > 2) {
        for (int i = 2; i < argc; i++) {
            size_t len;
            char *b = slurp(argv[i], &len);
            if (!b) {
                fprintf(stderr, "jsonbench: cannot read %s\n", argv[i]);
                return 1;
            }
            run(argv[i], b, len, iters);
            free(b);
        }
        return 0;
    }
    run("pod (apibench body)", BODY, sizeof BODY - 1, iters);
    /* the stored form: defaults, status and managedFields added as the server does */
    json_t *p = json_loadb(BODY, sizeof BODY - 1, 0, NULL);
    json_t *m = json_object_get(p, "metadata");
    json_object_set_new(m, "uid", json_string("0b6f3c1e-9d1a-4c2e-8f6a-1d2e3f4a5b6c"));
    json_object_set_new(m, "resourceVersion", json_string("123456"));
    json_object_set_new(m, "creationTimestamp", json_string("2026-11-27T07:00:00Z"));
    json_object_set_new(m, "managedFields",
                        json_pack("[{s:s,s:s,s:s,s:s,s:s,s:{s:{s:{},s:{}},s:{s:{},s:{}}}}]", "manager", "kubectl",
                                  "operation", "Update", "apiVersion", "v1", "time", "2026-11-27T07:00:00Z", "fieldsType",
                                  "FieldsV1", "fieldsV1", "f:metadata", "f:labels", "f:annotations", "f:spec",
                                  "f:containers", "f:volumes"));
    json_object_set_new(p, "status",
                        json_pack("{s:s,s:[{s:s,s:s,s:n,s:s},{s:s,s:s,s:n,s:s}],s:s,s:s,s:s}", "phase", "Running",
                                  "conditions", "type", "Ready", "status", "True", "lastProbeTime",
                                  "lastTransitionTime", "2026-11-27T07:00:01Z", "type", "PodScheduled", "status",
                                  "True", "lastProbeTime", "lastTransitionTime", "2026-11-27T07:00:00Z", "hostIP",
                                  "10.0.0.12", "podIP", "10.88.0.7", "qosClass", "Burstable"));
    char *stored = json_dumps(p, JSON_COMPACT);
    run("pod (stored, status)", stored, strlen(stored), iters);
    free(stored);
    json_decref(p);
    return 0;
}
