/* resources.c — THE table of kinds kubec serves: one row per resource.
 *
 * A row says everything the generic machinery needs: group/version/kind,
 * plural and short names, scope, subresources, which fields can be used in
 * field selectors (and how to read them from an object), defaulting and
 * validation hooks (admission.c) and the Table columns kubectl prints
 * (row functions below). Adding a kind is adding a row.
 */
#include "apiserver/internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "schema/schema.h"
#include "util/timeutil.h"
#include "util/jsonparse.h"

/* ---------- fields usable in field selectors (the cache indexes them; see cache.c) ---------- */

static const char *const pod_fields[] = {"spec.nodeName", "spec.schedulerName", "spec.serviceAccountName",
                                         "status.phase", "status.podIP", "status.nominatedNodeName", NULL};
static const char *const event_fields[] = {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                                           "involvedObject.uid", "involvedObject.apiVersion",
                                           "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                                           "reportingComponent", "source", "type", NULL};
static const char *const evk8s_fields[] = {"regarding.kind", "regarding.name", "regarding.namespace", "regarding.uid",
                                           "reason", "type", "reportingController", NULL};
static const char *const ns_fields[] = {"status.phase", NULL};
static const char *const node_fields[] = {"spec.unschedulable", NULL};
static const char *const secret_fields[] = {"type", NULL};
static const char *const rs_fields[] = {"status.replicas", NULL};

/* ---------- table rows ---------- */

static const char *dash(const char *s) { return s && *s ? s : "<none>"; }

static void age_cell(json_t *cells, json_t *o, const char *path, time_t now)
{
    const char *ts = kc_jstr(o, path);
    time_t t;
    char out[32];
    if (!ts || kc_time_parse(ts, &t) < 0) {
        json_array_append_new(cells, json_string("<unknown>"));
        return;
    }
    kc_time_human_duration((int64_t)(now - t), out, sizeof out);
    json_array_append_new(cells, json_string(out));
}

static json_int_t jint(json_t *o, const char *path) { return json_integer_value(kc_jget(o, path)); }

static void containers_cells(json_t *cells, json_t *podspec)
{
    struct kc_buf names, images;
    kc_buf_init(&names, 1 << 16);
    kc_buf_init(&images, 1 << 16);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(podspec, "containers"), i, c)
    {
        if (i) {
            kc_buf_putc(&names, ',');
            kc_buf_putc(&images, ',');
        }
        kc_buf_puts(&names, json_string_value(json_object_get(c, "name")) ?: "");
        kc_buf_puts(&images, json_string_value(json_object_get(c, "image")) ?: "");
    }
    json_array_append_new(cells, json_string(names.data ? names.data : ""));
    json_array_append_new(cells, json_string(images.data ? images.data : ""));
    kc_buf_release(&names);
    kc_buf_release(&images);
}

static void selector_cell(json_t *cells, json_t *sel)
{
    struct kc_buf b;
    kc_buf_init(&b, 1 << 16);
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(sel, "matchLabels"), k, v)
    {
        if (b.len)
            kc_buf_putc(&b, ',');
        kc_buf_printf(&b, "%s=%s", k, json_string_value(v) ?: "");
    }
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(sel, "matchExpressions"), i, e)
    {
        if (b.len)
            kc_buf_putc(&b, ',');
        const char *op = kc_jstr(e, "operator") ?: "";
        const char *key = kc_jstr(e, "key") ?: "";
        if (!strcmp(op, "Exists"))
            kc_buf_puts(&b, key);
        else if (!strcmp(op, "DoesNotExist"))
            kc_buf_printf(&b, "!%s", key);
        else {
            kc_buf_printf(&b, "%s %s (", key, !strcmp(op, "In") ? "in" : "notin");
            size_t j;
            json_t *val;
            json_array_foreach(json_object_get(e, "values"), j, val)
                kc_buf_printf(&b, "%s%s", j ? "," : "", json_string_value(val) ?: "");
            kc_buf_putc(&b, ')');
        }
    }
    json_array_append_new(cells, json_string(b.len ? b.data : "<none>"));
    kc_buf_release(&b);
}

static void row_generic(json_t *o, json_t *cells, time_t now)
{
    json_array_append_new(cells, json_string(kc_jstr(o, "metadata.name") ?: ""));
    age_cell(cells, o, "metadata.creationTimestamp", now);
}

#define COL(n, t, f, d, p) {n, t, f, d, p}
#define NAMECOL COL("Name", "string", "name", "Name must be unique within a namespace.", 0)
#define AGECOL COL("Age", "string", "", "Time since the object was created.", 0)

static const struct kc_column cols_generic[] = {NAMECOL, AGECOL, {0}};

static const struct kc_column cols_ns[] = {NAMECOL, COL("Status", "string", "", "The phase of the namespace.", 0),
                                           AGECOL, {0}};
static void row_ns(json_t *o, json_t *cells, time_t now)
{
    json_array_append_new(cells, json_string(kc_jstr(o, "metadata.name") ?: ""));
    json_array_append_new(cells, json_string(kc_jstr(o, "status.phase") ?: "Active"));
    age_cell(cells, o, "metadata.creationTimestamp", now);
}

static const struct kc_column cols_deploy[] = {
    NAMECOL,
    COL("Ready", "string", "", "Number of the pod with ready state", 0),
    COL("Up-to-date", "string", "", "Total number of non-terminated pods targeted by this deployment that have the desired template spec.", 0),
    COL("Available", "string", "", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.", 0),
    AGECOL,
    COL("Containers", "string", "", "Names of each container in the template.", 1),
    COL("Images", "string", "", "Images referenced by each container in the template.", 1),
    COL("Selector", "string", "", "Label selector for pods.", 1),
    {0}};
static void row_deploy(json_t *o, json_t *cells, time_t now)
{
    char ready[48];
    snprintf(ready, sizeof ready, "%lld/%lld", (long long)jint(o, "status.readyReplicas"),
             (long long)jint(o, "spec.replicas"));
    json_array_append_new(cells, json_string(kc_jstr(o, "metadata.name") ?: ""));
    json_array_append_new(cells, json_string(ready));
    json_array_append_new(cells, json_integer(jint(o, "status.updatedReplicas")));
    json_array_append_new(cells, json_integer(jint(o, "status.availableReplicas")));
    age_cell(cells, o, "metadata.creationTimestamp", now);
    containers_cells(cells, kc_jget(o, "spec.template.spec"));
    selector_cell(cells, kc_jget(o, "spec.selector"));
}

static const struct kc_column cols_rs[] = {
    NAMECOL,
    COL("Desired", "integer", "", "Number of desired pods.", 0),
    COL("Current", "integer", "", "Number of actual replicas.", 0),
    COL("Ready", "integer", "", "Number of ready replicas.", 0),
    AGECOL,
    COL("Containers", "string", "", "Names of each container in the template.", 1),
    COL("Images", "string", "", "Images referenced by each container in the template.", 1),
    COL("Selector", "string", "", "Label selector for pods.", 1),
    {0}};
static void row_rs(json_t *o, json_t *cells, time_t now)
{
    json_array_append_new(cells, json_string(kc_jstr(o, "metadata.name") ?: ""));
    json_array_append_new(cells, json_integer(jint(o, "spec.replicas")));
    json_array_append_new(cells, json_integer(jint(o, "status.replicas")));
    json_array_append_new(cells, json_integer(jint(o, "status.readyReplicas")));
    age_cell(cells, o, "metadata.creationTimestamp", now);
    containers_cells(cells, kc_jget(o, "spec.template.spec"));
    selector_cell(cells, kc_jget(o, "spec.selector"));
}

static const struct kc_column cols_pod[] = {
    NAMECOL,
    COL("Ready", "string", "", "The aggregate readiness state of this pod for accepting traffic.", 0),
    COL("Status", "string", "", "The aggregate status of the containers in this pod.", 0),
    COL("Restarts", "string", "", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.", 0),
    AGECOL,
    COL("IP", "string", "", "IP address allocated to the pod.", 1),
    COL("Node", "string", "", "Name of the node the pod is assigned to.", 1),
    COL("Nominated Node", "string", "", "Name of the node where the pod is nominated to run.", 1),
    COL("Readiness Gates", "string", "", "Pod readiness gates.", 1),
    {0}};

/* The STATUS column as kubectl shows it: the phase, or the most telling container reason. */
static void pod_status_text(json_t *o, char *out, size_t n)
{
    const char *reason = kc_jstr(o, "status.reason") ?: kc_jstr(o, "status.phase") ?: "Pending";
    snprintf(out, n, "%s", reason);
    size_t i;
    json_t *cs;
    int init_total = (int)json_array_size(kc_jget(o, "spec.initContainers"));
    json_array_foreach(kc_jget(o, "status.initContainerStatuses"), i, cs)
    {
        const char *tr = kc_jstr(cs, "state.terminated.reason");
        json_t *term = kc_jget(cs, "state.terminated");
        if (term && jint(cs, "state.terminated.exitCode") == 0)
            continue;
        if (term) {
            snprintf(out, n, "Init:%s", tr ? tr : "Error");
            return;
        }
        const char *wr = kc_jstr(cs, "state.waiting.reason");
        if (wr && strcmp(wr, "PodInitializing") != 0)
            snprintf(out, n, "Init:%s", wr);
        else
            snprintf(out, n, "Init:%zu/%d", i, init_total);
        return;
    }
    bool running = false;
    json_array_foreach(kc_jget(o, "status.containerStatuses"), i, cs)
    {
        const char *wr = kc_jstr(cs, "state.waiting.reason");
        const char *tr = kc_jstr(cs, "state.terminated.reason");
        if (wr)
            snprintf(out, n, "%s", wr);
        else if (tr)
            snprintf(out, n, "%s", tr);
        else if (kc_jget(cs, "state.terminated"))
            snprintf(out, n, "%s", jint(cs, "state.terminated.signal") ? "Signal" : "ExitCode");
        else if (kc_jget(cs, "state.running") && json_is_true(json_object_get(cs, "ready")))
            running = true;
    }
    if (running && !strcmp(out, "Completed"))
        snprintf(out, n, "Running");
    if (kc_jget(o, "metadata.deletionTimestamp"))
        snprintf(out, n, "%s", !strcmp(kc_jstr(o, "status.reason") ?: "", "NodeLost") ? "Unknown" : "Terminating");
}

static void row_pod(json_t *o, json_t *cells, time_t now)
{
    size_t i;
    json_t *cs;
    int ready = 0, total = (int)json_array_size(kc_jget(o, "spec.containers"));
    long long restarts = 0;
    json_array_foreach(kc_jget(o, "status.containerStatuses"), i, cs)
    {
        if (json_is_true(json_object_get(cs, "ready")))
            ready++;
        restarts += json_integer_value(json_object_get(cs, "restartCount"));
    }
    char rd[32], st[128], rs[32];
    snprintf(rd, sizeof rd, "%d/%d", ready, total);
    pod_status_text(o, st, sizeof st);
    snprintf(rs, sizeof rs, "%lld", restarts);
    json_array_append_new(cells, json_string(kc_jstr(o, "metadata.name") ?: ""));
    json_array_append_new(cells, json_string(rd));
    json_array_append_new(cells, json_string(st));
    json_array_append_new(cells, json_string(rs));
    age_cell(cells, o, "metadata.creationTimestamp", now);
    json_array_append_new(cells, json_string(dash(kc_jstr(o, "status.podIP"))));
    json_array_append_new(cells, json_string(dash(kc_jstr(o, "spec.nodeName"))));
    json_array_append_new(cells, json_string(dash(kc_jstr(o, "status.nominatedNodeName"))));
    json_array_append_new(cells, json_string("<none>"));
}

static const struct kc_column cols_node[] = {
    NAMECOL,
    COL("Status", "string", "", "The status of the node", 0),
    COL("Roles", "string", "", "The roles of the node", 0),
    AGECOL,
    COL("Version", "string", "", "Kubelet Version reported by the node.", 0),
    COL("Internal-IP", "string", "", "List of internal IPs.", 1),
    COL("External-IP", "string", "", "List of external IPs.", 1),
    COL("OS-Image", "string", "", "OS Image reported by the node.", 1),
    COL("Kernel-Version", "string", "", "Kernel Version reported by the node.", 1),
    COL("Container-Runtime", "string", "", "Container Runtime Version reported by the node.", 1),
    {0}};
static void row_node(json_t *o, json_t *cells, time_t now)
{
    const char *ready = "Unknown";
    size_t i;
    json_t *c;
    json_array_foreach(kc_jget(o, "status.conditions"), i, c)
    {
        if (!strcmp(kc_jstr(c, "type") ?: "", "Ready"))
            ready = !strcmp(kc_jstr(c, "status") ?: "", "True") ? "Ready" : "NotReady";
    }
    char st[64];
    snprintf(st, sizeof st, "%s%s", ready, json_is_true(kc_jget(o, "spec.unschedulable")) ? ",SchedulingDisabled" : "");
    struct kc_buf roles;
    kc_buf_init(&roles, 4096);
    const char *k;
    json_t *v;
    json_object_foreach(kc_jget(o, "metadata.labels"), k, v)
    {
        const char *pfx = "node-role.kubernetes.io/";
        if (!strncmp(k, pfx, strlen(pfx))) {
            if (roles.len)
                kc_buf_putc(&roles, ',');
            kc_buf_puts(&roles, k + strlen(pfx));
        }
    }
    const char *iip = NULL, *eip = NULL;
    json_array_foreach(kc_jget(o, "status.addresses"), i, c)
    {
        const char *t = kc_jstr(c, "type") ?: "";
        if (!strcmp(t, "InternalIP") && !iip)
            iip = kc_jstr(c, "address");
        if (!strcmp(t, "ExternalIP") && !eip)
            eip = kc_jstr(c, "address");
    }
    json_array_append_new(cells, json_string(kc_jstr(o, "metadata.name") ?: ""));
    json_array_append_new(cells, json_string(st));
    json_array_append_new(cells, json_string(roles.len ? roles.data : "<none>"));
    age_cell(cells, o, "metadata.creationTimestamp", now);
    json_array_append_new(cells, json_string(kc_jstr(o, "status.nodeInfo.kubeletVersion") ?: ""));
    json_array_append_new(cells, json_string(dash(iip)));
    json_array_append_new(cells, json_string(dash(eip)));
    json_array_append_new(cells, json_string(kc_jstr(o, "status.nodeInfo.osImage") ?: "<unknown>"));
    json_array_append_new(cells, json_string(kc_jstr(o, "status.nodeInfo.kernelVersion") ?: "<unknown>"));
    json_array_append_new(cells, json_string(kc_jstr(o, "status.nodeInfo.containerRuntimeVersion") ?: "<unknown>"));
    kc_buf_release(&roles);
}

static const struct kc_column cols_event[] = {
    COL("Last Seen", "string", "", "Time since the most recent occurrence of the event.", 0),
    COL("Type", "string", "", "Type of the event.", 0),
    COL("Reason", "string", "", "Short, machine understandable reason for the event.", 0),
    COL("Object", "string", "", "The object this event is about.", 0),
    COL("Subobject", "string", "", "The part of the object this event is about.", 1),
    COL("Source", "string", "", "The component reporting this event.", 1),
    COL("Message", "string", "", "A human-readable description of the event.", 0),
    COL("First Seen", "string", "", "Time since the first occurrence of the event.", 1),
    COL("Count", "string", "", "How many times this event has been seen.", 1),
    COL("Name", "string", "name", "The name of the event object.", 1),
    {0}};
static void row_event(json_t *o, json_t *cells, time_t now)
{
    const char *last = kc_jstr(o, "lastTimestamp") ? "lastTimestamp"
                       : kc_jstr(o, "eventTime")   ? "eventTime"
                                                   : "metadata.creationTimestamp";
    const char *first = kc_jstr(o, "firstTimestamp") ? "firstTimestamp" : last;
    age_cell(cells, o, last, now);
    json_array_append_new(cells, json_string(kc_jstr(o, "type") ?: ""));
    json_array_append_new(cells, json_string(kc_jstr(o, "reason") ?: ""));
    char obj[512];
    char kind[128];
    snprintf(kind, sizeof kind, "%s", kc_jstr(o, "involvedObject.kind") ?: "");
    for (char *p = kind; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    snprintf(obj, sizeof obj, "%s/%s", kind, kc_jstr(o, "involvedObject.name") ?: "");
    json_array_append_new(cells, json_string(obj));
    json_array_append_new(cells, json_string(kc_jstr(o, "involvedObject.fieldPath") ?: ""));
    char src[256];
    snprintf(src, sizeof src, "%s%s%s", kc_jstr(o, "source.component") ?: kc_jstr(o, "reportingComponent") ?: "",
             kc_jstr(o, "source.host") ? ", " : "", kc_jstr(o, "source.host") ?: "");
    json_array_append_new(cells, json_string(src));
    json_array_append_new(cells, json_string(kc_jstr(o, "message") ?: ""));
    age_cell(cells, o, first, now);
    char cnt[24];
    snprintf(cnt, sizeof cnt, "%lld", (long long)(jint(o, "count") ? jint(o, "count") : 1));
    json_array_append_new(cells, json_string(cnt));
    json_array_append_new(cells, json_string(kc_jstr(o, "metadata.name") ?: ""));
}

static void row_evk8s(json_t *o, json_t *cells, time_t now)
{
    const char *last = kc_jstr(o, "deprecatedLastTimestamp") ? "deprecatedLastTimestamp"
                       : kc_jstr(o, "eventTime")             ? "eventTime"
                                                             : "metadata.creationTimestamp";
    age_cell(cells, o, last, now);
    json_array_append_new(cells, json_string(kc_jstr(o, "type") ?: ""));
    json_array_append_new(cells, json_string(kc_jstr(o, "reason") ?: ""));
    char obj[512], kind[128];
    snprintf(kind, sizeof kind, "%s", kc_jstr(o, "regarding.kind") ?: "");
    for (char *p = kind; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    snprintf(obj, sizeof obj, "%s/%s", kind, kc_jstr(o, "regarding.name") ?: "");
    json_array_append_new(cells, json_string(obj));
    json_array_append_new(cells, json_string(kc_jstr(o, "note") ?: ""));
}
static const struct kc_column cols_evk8s[] = {
    COL("Last Seen", "string", "", "Time since the most recent occurrence of the event.", 0),
    COL("Type", "string", "", "Type of the event.", 0),
    COL("Reason", "string", "", "Short, machine understandable reason for the event.", 0),
    COL("Object", "string", "", "The object this event is about.", 0),
    COL("Message", "string", "", "A human-readable description of the event.", 0),
    {0}};

static const struct kc_column cols_secret[] = {NAMECOL, COL("Type", "string", "", "The type of the secret", 0),
                                               COL("Data", "string", "", "The number of data entries.", 0), AGECOL,
                                               {0}};
static void row_secret(json_t *o, json_t *cells, time_t now)
{
    json_array_append_new(cells, json_string(kc_jstr(o, "metadata.name") ?: ""));
    json_array_append_new(cells, json_string(kc_jstr(o, "type") ?: "Opaque"));
    json_array_append_new(cells, json_integer((json_int_t)(json_object_size(json_object_get(o, "data")) +
                                                           json_object_size(json_object_get(o, "stringData")))));
    age_cell(cells, o, "metadata.creationTimestamp", now);
}

static const struct kc_column cols_cm[] = {NAMECOL, COL("Data", "string", "", "The number of data entries.", 0),
                                           AGECOL, {0}};
static void row_cm(json_t *o, json_t *cells, time_t now)
{
    json_array_append_new(cells, json_string(kc_jstr(o, "metadata.name") ?: ""));
    json_array_append_new(cells, json_integer((json_int_t)(json_object_size(json_object_get(o, "data")) +
                                                           json_object_size(json_object_get(o, "binaryData")))));
    age_cell(cells, o, "metadata.creationTimestamp", now);
}

static const struct kc_column cols_sa[] = {NAMECOL, COL("Secrets", "string", "", "Number of secrets.", 0), AGECOL,
                                           {0}};
static void row_sa(json_t *o, json_t *cells, time_t now)
{
    json_array_append_new(cells, json_string(kc_jstr(o, "metadata.name") ?: ""));
    json_array_append_new(cells, json_integer((json_int_t)json_array_size(json_object_get(o, "secrets"))));
    age_cell(cells, o, "metadata.creationTimestamp", now);
}

static const struct kc_column cols_pc[] = {
    NAMECOL, COL("Value", "integer", "", "The value of this priority class.", 0),
    COL("Global-Default", "boolean", "", "Whether this class is the default for pods without a class.", 0), AGECOL,
    COL("PreemptionPolicy", "string", "", "The policy for preempting pods with lower priority.", 0), {0}};
static void row_pc(json_t *o, json_t *cells, time_t now)
{
    json_array_append_new(cells, json_string(kc_jstr(o, "metadata.name") ?: ""));
    json_array_append_new(cells, json_integer(jint(o, "value")));
    json_array_append_new(cells, json_boolean(json_is_true(json_object_get(o, "globalDefault"))));
    age_cell(cells, o, "metadata.creationTimestamp", now);
    json_array_append_new(cells, json_string(kc_jstr(o, "preemptionPolicy") ?: "PreemptLowerPriority"));
}

static const struct kc_column cols_lease[] = {NAMECOL, COL("Holder", "string", "", "The holder of the lease.", 0),
                                              AGECOL, {0}};
static void row_lease(json_t *o, json_t *cells, time_t now)
{
    json_array_append_new(cells, json_string(kc_jstr(o, "metadata.name") ?: ""));
    json_array_append_new(cells, json_string(kc_jstr(o, "spec.holderIdentity") ?: ""));
    age_cell(cells, o, "metadata.creationTimestamp", now);
}

static const struct kc_column cols_svc[] = {
    NAMECOL,
    COL("Type", "string", "", "The type of the service.", 0),
    COL("Cluster-IP", "string", "", "The IP of the service.", 0),
    COL("External-IP", "string", "", "External IPs of the service.", 0),
    COL("Port(s)", "string", "", "The ports of the service.", 0),
    AGECOL,
    COL("Selector", "string", "", "The label selector of the service.", 1),
    {0}};
static void row_svc(json_t *o, json_t *cells, time_t now)
{
    json_array_append_new(cells, json_string(kc_jstr(o, "metadata.name") ?: ""));
    json_array_append_new(cells, json_string(kc_jstr(o, "spec.type") ?: "ClusterIP"));
    json_array_append_new(cells, json_string(kc_jstr(o, "spec.clusterIP") ?: "<none>"));
    json_array_append_new(cells, json_string("<none>"));
    struct kc_buf b;
    kc_buf_init(&b, 4096);
    size_t i;
    json_t *p;
    json_array_foreach(kc_jget(o, "spec.ports"), i, p)
        kc_buf_printf(&b, "%s%lld/%s", i ? "," : "", (long long)jint(p, "port"), kc_jstr(p, "protocol") ?: "TCP");
    json_array_append_new(cells, json_string(b.len ? b.data : "<none>"));
    age_cell(cells, o, "metadata.creationTimestamp", now);
    kc_buf_release(&b);
    struct kc_buf s;
    kc_buf_init(&s, 4096);
    const char *k;
    json_t *v;
    json_object_foreach(kc_jget(o, "spec.selector"), k, v)
        kc_buf_printf(&s, "%s%s=%s", s.len ? "," : "", k, json_string_value(v) ?: "");
    json_array_append_new(cells, json_string(s.len ? s.data : "<none>"));
    kc_buf_release(&s);
}

/* ---------- events.k8s.io/v1 Event ⇄ core/v1 Event ---------- */

/* Field pairs (events.k8s.io name, core name), as upstream's conversion. */
static const char *const ev_pairs[][2] = {
    {"regarding", "involvedObject"},      {"note", "message"},
    {"reportingController", "reportingComponent"}, {"reportingInstance", "reportingInstance"},
    {"deprecatedSource", "source"},       {"deprecatedFirstTimestamp", "firstTimestamp"},
    {"deprecatedLastTimestamp", "lastTimestamp"}, {"deprecatedCount", "count"},
    {"eventTime", "eventTime"},           {"series", "series"},
    {"action", "action"},                 {"reason", "reason"},
    {"related", "related"},               {"type", "type"},
};

static json_t *ev_convert(json_t *in, int from, const char *api_version)
{
    json_t *out = json_object();
    json_object_set_new(out, "kind", json_string("Event"));
    json_object_set_new(out, "apiVersion", json_string(api_version));
    json_t *m = json_object_get(in, "metadata");
    if (m)
        json_object_set(out, "metadata", m);
    for (size_t i = 0; i < sizeof ev_pairs / sizeof ev_pairs[0]; i++) {
        json_t *v = json_object_get(in, ev_pairs[i][from]);
        if (!v)
            continue;
        json_t *c = kc_json_copy(v);
        /* core series counts "count" + "lastObservedTime"; the same names in both */
        json_object_set_new(out, ev_pairs[i][1 - from], c);
    }
    return out;
}

static json_t *ev_to_storage(json_t *obj) { return ev_convert(obj, 0, "v1"); }
static json_t *ev_from_storage(json_t *stored) { return ev_convert(stored, 1, "events.k8s.io/v1"); }
static const char *ev_field(const char *f)
{
    static const char *const map[][2] = {{"regarding.kind", "involvedObject.kind"},
                                         {"regarding.name", "involvedObject.name"},
                                         {"regarding.namespace", "involvedObject.namespace"},
                                         {"regarding.uid", "involvedObject.uid"},
                                         {"reportingController", "reportingComponent"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(f, map[i][0]))
            return map[i][1];
    return f;
}

/* ---------- the table ---------- */

struct kc_resource kc_resources[] = {
    {.group = "", .version = "v1", .kind = "Namespace", .plural = "namespaces", .singular = "namespace",
     .short_names = {"ns"}, .namespaced = false, .subresources = KC_SUB_STATUS, .field_labels = ns_fields,
     .columns = cols_ns, .row = row_ns},
    {.group = "", .version = "v1", .kind = "Pod", .plural = "pods", .singular = "pod", .short_names = {"po"},
     .categories = {"all"}, .namespaced = true, .subresources = KC_SUB_STATUS | KC_SUB_BINDING | KC_SUB_EVICTION | KC_SUB_LOG,
     .field_labels = pod_fields, .columns = cols_pod, .row = row_pod},
    {.group = "", .version = "v1", .kind = "Node", .plural = "nodes", .singular = "node", .short_names = {"no"},
     .namespaced = false, .subresources = KC_SUB_STATUS, .field_labels = node_fields,
     .columns = cols_node, .row = row_node},
    {.group = "", .version = "v1", .kind = "Event", .plural = "events", .singular = "event", .short_names = {"ev"},
     .namespaced = true, .field_labels = event_fields, .columns = cols_event,
     .row = row_event},
    {.group = "", .version = "v1", .kind = "Secret", .plural = "secrets", .singular = "secret", .namespaced = true,
     .field_labels = secret_fields, .columns = cols_secret, .row = row_secret},
    {.group = "", .version = "v1", .kind = "ServiceAccount", .plural = "serviceaccounts",
     .singular = "serviceaccount", .short_names = {"sa"}, .namespaced = true, .columns = cols_sa, .row = row_sa},
    {.group = "", .version = "v1", .kind = "ConfigMap", .plural = "configmaps", .singular = "configmap",
     .short_names = {"cm"}, .namespaced = true, .columns = cols_cm, .row = row_cm},
    {.group = "", .version = "v1", .kind = "Service", .plural = "services", .singular = "service",
     .short_names = {"svc"}, .categories = {"all"}, .namespaced = true, .subresources = KC_SUB_STATUS,
     .columns = cols_svc, .row = row_svc},
    {.group = "apps", .version = "v1", .kind = "Deployment", .plural = "deployments", .singular = "deployment",
     .short_names = {"deploy"}, .categories = {"all"}, .namespaced = true,
     .subresources = KC_SUB_STATUS | KC_SUB_SCALE, .spec_generation = true, .columns = cols_deploy,
     .row = row_deploy},
    {.group = "apps", .version = "v1", .kind = "ReplicaSet", .plural = "replicasets", .singular = "replicaset",
     .short_names = {"rs"}, .categories = {"all"}, .namespaced = true,
     .subresources = KC_SUB_STATUS | KC_SUB_SCALE, .spec_generation = true, .field_labels = rs_fields,
     .columns = cols_rs, .row = row_rs},
    {.group = "scheduling.k8s.io", .version = "v1", .kind = "PriorityClass", .plural = "priorityclasses",
     .singular = "priorityclass", .short_names = {"pc"}, .namespaced = false, .columns = cols_pc, .row = row_pc},
    {.group = "coordination.k8s.io", .version = "v1", .kind = "Lease", .plural = "leases", .singular = "lease",
     .namespaced = true, .columns = cols_lease, .row = row_lease},
    {.group = "events.k8s.io", .version = "v1", .kind = "Event", .plural = "events", .singular = "event",
     .short_names = {"ev"}, .namespaced = true, .field_labels = evk8s_fields,
     .to_storage = ev_to_storage, .from_storage = ev_from_storage, .field_to_storage = ev_field,
     .columns = cols_evk8s, .row = row_evk8s},
};
const size_t kc_nresources = sizeof kc_resources / sizeof kc_resources[0];

void kc_resources_init(void)
{
    const struct kc_schema *s = kc_schema_default();
    for (size_t i = 0; i < kc_nresources; i++) {
        struct kc_resource *r = &kc_resources[i];
        if (*r->group)
            snprintf(r->api_version, sizeof r->api_version, "%s/%s", r->group, r->version);
        else
            snprintf(r->api_version, sizeof r->api_version, "%s", r->version);
        snprintf(r->list_kind, sizeof r->list_kind, "%sList", r->kind);
        /* events.k8s.io Events share core Events' storage (converted on the way in and out) */
        snprintf(r->storage_prefix, sizeof r->storage_prefix, "/registry/%s/", r->plural);
        if (!r->columns) {
            r->columns = cols_generic;
            r->row = row_generic;
        }
        r->schema = kc_schema_kind(s, *r->group ? r->group : "core", r->version, r->kind);
        if (!r->schema)
            r->schema = kc_schema_kind(s, r->group, r->version, r->kind);
    }
    kc_admission_init_resources();
}

const struct kc_resource *kc_resource_find(const char *group, const char *version, const char *plural)
{
    for (size_t i = 0; i < kc_nresources; i++) {
        const struct kc_resource *r = &kc_resources[i];
        if (!strcmp(r->group, group) && !strcmp(r->version, version) && !strcmp(r->plural, plural))
            return r;
    }
    return NULL;
}

const struct kc_resource *kc_resource_by_kind(const char *group, const char *kind)
{
    for (size_t i = 0; i < kc_nresources; i++) {
        const struct kc_resource *r = &kc_resources[i];
        if (!strcmp(r->group, group) && !strcmp(r->kind, kind))
            return r;
    }
    return NULL;
}

void kc_resource_qname(const struct kc_resource *r, char *out, size_t n)
{
    if (*r->group)
        snprintf(out, n, "%s.%s", r->plural, r->group);
    else
        snprintf(out, n, "%s", r->plural);
}
