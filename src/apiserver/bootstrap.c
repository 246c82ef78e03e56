/* bootstrap.c — objects the API server creates at start, as upstream's post-start hooks do:
 * the system PriorityClasses `system-node-critical` (2000001000) and `system-cluster-critical`
 * (2000000000) with upstream's descriptions (scheduling/bootstrap-system-priority-classes), so that
 * `kubectl get priorityclasses` lists them and pods resolve them like any other class.
 *
 * Runs once in the server's start-up thread, before the controllers and the scheduler start; goes
 * through the normal create path (admission included). An existing class is left as it is.
 */
#include "apiserver/internal.h"

#include <stdio.h>
#include <string.h>

#include "util/log.h"

static const struct kc_system_pc system_classes[] = {
    {"system-node-critical", 2000001000, "Used for system critical pods that must not be moved from their current node."},
    {"system-cluster-critical", 2000000000,
     "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary."},
};

const struct kc_system_pc *kc_system_priority_class(const char *name)
{
    for (size_t i = 0; name && i < sizeof system_classes / sizeof system_classes[0]; i++)
        if (!strcmp(system_classes[i].name, name))
            return &system_classes[i];
    return NULL;
}

void kc_bootstrap_system_priority_classes(struct kc_server *srv)
{
    const struct kc_resource *pcr = kc_resource_find("scheduling.k8s.io", "v1", "priorityclasses");
    if (!pcr)
        return;
    for (size_t i = 0; i < sizeof system_classes / sizeof system_classes[0]; i++) {
        char key[256];
        snprintf(key, sizeof key, "%s%s", pcr->storage_prefix, system_classes[i].name);
        struct kc_obj *o = kc_cache_get(pcr->storage, key);
        if (o) {
            kc_obj_unref(o);
            continue;
        }
        json_t *pc = json_pack("{s:s,s:s,s:{s:s},s:I,s:s,s:s}", "apiVersion", "scheduling.k8s.io/v1", "kind",
                               "PriorityClass", "metadata", "name", system_classes[i].name, "value",
                               system_classes[i].value, "description", system_classes[i].description,
                               "preemptionPolicy", "PreemptLowerPriority");
        struct kc_err err = {0};
        if (kc_server_create_json(srv, pcr, pc, &err) && err.code != 409)
            kc_warn("apiserver", "cannot create PriorityClass %s: %s", system_classes[i].name, err.message);
        json_decref(pc);
    }
}
