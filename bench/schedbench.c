/* schedbench.c — scheduling throughput of the algorithm (src/scheduler/framework.c) on a synthetic
 * snapshot: N nodes in 3 zones, M pending pods scheduled one after another, each assumed on its node
 * (as the scheduler does before binding). Scenarios: basic, topology spread (maxSkew 1 over zones,
 * DoNotSchedule), preemption (a full cluster of low-priority pods, then high-priority pods).
 * This measures the algorithm alone — no API round trips; the end-to-end figures come from
 * `kubec stress` (docs/stress.md).
 *
 *   build/bench/schedbench [nodes] [pods] [scenario]   (default 5000 10000, all scenarios)
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/framework.h"
#include "util/timeutil.h"

static json_t *mknode(int i)
{
    char name[32], zone[16];
    snprintf(name, sizeof name, "node-%d", i);
    snprintf(zone, sizeof zone, "zone-%c", 'a' + i % 3);
    return json_pack("{s:s,s:s,s:{s:s,s:{s:s,s:s}},s:{},s:{s:{s:s,s:s,s:s}}}", "apiVersion", "v1", "kind", "Node",
                     "metadata", "name", name, "labels", "kubernetes.io/hostname", name, "topology.kubernetes.io/zone",
                     zone, "spec", "status", "allocatable", "cpu", "32", "memory", "128Gi", "pods", "110");
}

static json_t *mkpod(int i, const char *app, int prio, const char *cpu, bool spread)
{
    char name[48];
    snprintf(name, sizeof name, "%s-%d", app, i);
    json_t *p = json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:s,s:{s:s}},s:{s:i,s:[{s:s,s:s,s:{s:{s:s,s:s}}}]}}",
                          "apiVersion", "v1", "kind", "Pod", "metadata", "name", name, "namespace", "default", "uid",
                          name, "creationTimestamp", "2026-01-01T00:00:00Z", "labels", "app", app, "spec", "priority",
                          prio, "containers", "name", "c", "image", "nginx", "resources", "requests", "cpu", cpu,
                          "memory", "64Mi");
    if (spread)
        json_object_set_new(json_object_get(p, "spec"), "topologySpreadConstraints",
                            json_pack("[{s:i,s:s,s:s,s:{s:{s:s}}}]", "maxSkew", 1, "topologyKey",
                                      "topology.kubernetes.io/zone", "whenUnsatisfiable", "DoNotSchedule",
                                      "labelSelector", "matchLabels", "app", app));
    return p;
}

static void run(const char *title, struct kc_snapshot *s, int pods, const char *app, int prio, const char *cpu,
                bool spread)
{
    unsigned rr = 0;
    int ok = 0, preempted = 0;
    double t0 = kc_mono_now();
    for (int i = 0; i < pods; i++) {
        json_t *pj = mkpod(i, app, prio, cpu, spread);
        struct kc_spod *p = kc_spod_new(pj);
        struct kc_sched_result r = {0};
        kc_schedule(s, p, &rr, &r);
        if (r.node >= 0) {
            json_object_set_new(json_object_get(pj, "spec"), "nodeName", json_string(s->nodes[r.node].name));
            kc_snode_add_pod(&s->nodes[r.node], kc_spod_new(pj));
            ok++;
        } else if (r.nominated >= 0) {
            /* evict the victims and place the pod, as the scheduler does once they are gone */
            struct kc_snode *n = &s->nodes[r.nominated];
            char uids[64][64];
            int nv = r.nvictims;
            for (int v = 0; v < nv; v++)
                snprintf(uids[v], sizeof uids[v], "%s", r.victims[v]->uid);
            for (int v = 0; v < nv; v++)
                kc_snode_remove_pod(n, uids[v]);
            json_object_set_new(json_object_get(pj, "spec"), "nodeName", json_string(n->name));
            kc_snode_add_pod(n, kc_spod_new(pj));
            preempted++;
        }
        kc_spod_free(p);
        json_decref(pj);
    }
    double dt = kc_mono_now() - t0;
    printf("%-34s %6d pods in %7.3f s  %9.0f pods/s  (scheduled %d, via preemption %d)\n", title, pods, dt,
           pods / dt, ok, preempted);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int nodes = argc > 1 ? atoi(argv[1]) : 5000;
    int pods = argc > 2 ? atoi(argv[2]) : 10000;
    int only = argc > 3 ? atoi(argv[3]) : -1; /* run one scenario: 0 basic, 1 spread, 2 preemption */
    printf("schedbench: %d nodes (3 zones, 32 cpu, 110 pods each), %d pending pods\n", nodes, pods);
    struct kc_snapshot s;
    for (int scenario = 0; scenario < 3; scenario++) {
        if (only >= 0 && scenario != only)
            continue;
        kc_snapshot_init(&s);
        for (int i = 0; i < nodes; i++) {
            json_t *n = mknode(i);
            kc_snapshot_set_node(&s, n);
            json_decref(n);
        }
        if (scenario == 0)
            run("basic", &s, pods, "web", 0, "100m", false);
        else if (scenario == 1)
            run("topology spread (zone, maxSkew 1)", &s, pods, "web", 0, "100m", true);
        else {
            /* fill every node's CPU with low-priority pods, then schedule high-priority ones */
            int fill = nodes * 2;
            run("  fill (low priority, 16 cpu each)", &s, fill, "low", 0, "16", false);
            run("preemption (high priority, 16 cpu)", &s, pods < nodes ? pods : nodes, "high", 1000, "16", false);
        }
        kc_snapshot_release(&s);
    }
    kc_schedule_thread_release();
    return 0;
}
