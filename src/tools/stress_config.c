/* stress_config.c — the configuration of a `kubec stress` run: defaults, then a job file (-f job.yaml,
 * the same fields as the flags), then the command-line flags (which win). Also the small parsers the
 * flags need: durations ("500ms"), thresholds ("Ready:p99=2s"), resource requests ("cpu=10m").
 *
 * Job file keys are the flag names without dashes, in kebab-case or camelCase (priority-class or
 * priorityClass); `threshold` may be a string or a list of strings; `requests` a string or a map.
 */
#include <ctype.h>
#include <libfyaml.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tools/stress_int.h"
#include "util/timeutil.h"

#define MAX_JOB_FILE (1u << 20)

const char *const st_stage_names[ST_NSTAGES] = {"CreateAccepted", "ReplicaSetCreated", "PodCreated", "Scheduled",
                                                "Started",        "Ready",             "Available"};
const char *const st_metric_names[ST_NMETRICS] = {"P50", "P90", "P99", "max", "avg"};

int st_stage_parse(const char *s)
{
    static const struct {
        const char *alias;
        int stage;
    } aliases[] = {{"accepted", ST_ACCEPTED}, {"create", ST_ACCEPTED},   {"rs", ST_RS},
                   {"replicaset", ST_RS},     {"created", ST_POD},       {"pod", ST_POD},
                   {"podcreated", ST_POD},    {"podscheduled", ST_SCHED}, {"start", ST_STARTED},
                   {"running", ST_STARTED},   {"podready", ST_READY}};
    for (int i = 0; i < ST_NSTAGES; i++)
        if (!strcasecmp(s, st_stage_names[i]))
            return i;
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (!strcasecmp(s, aliases[i].alias))
            return aliases[i].stage;
    return -1;
}

static int parse_metric(const char *s)
{
    for (int i = 0; i < ST_NMETRICS; i++)
        if (!strcasecmp(s, st_metric_names[i]))
            return i;
    if (!strcasecmp(s, "p95")) /* kube-burner users write P95; we keep P90 — say so rather than guess */
        return -2;
    return -1;
}

/* One "Stage:metric=duration". */
static int parse_one_threshold(struct st_config *c, const char *item, struct kc_err *err)
{
    char stage[64], metric[16], dur[32];
    const char *colon = strchr(item, ':'), *eq = colon ? strchr(colon, '=') : NULL;
    if (!colon || !eq || (size_t)(colon - item) >= sizeof stage || (size_t)(eq - colon - 1) >= sizeof metric ||
        strlen(eq + 1) >= sizeof dur)
        return kc_err_set(err, KC_EINVAL, 0, "BadRequest",
                          "threshold %s: want STAGE:METRIC=DURATION, e.g. Ready:p99=2s", item);
    snprintf(stage, sizeof stage, "%.*s", (int)(colon - item), item);
    snprintf(metric, sizeof metric, "%.*s", (int)(eq - colon - 1), colon + 1);
    snprintf(dur, sizeof dur, "%s", eq + 1);
    struct st_threshold t;
    t.stage = st_stage_parse(stage);
    if (t.stage < 0)
        return kc_err_set(err, KC_EINVAL, 0, "BadRequest",
                          "threshold %s: unknown stage %s (CreateAccepted, ReplicaSetCreated, PodCreated, "
                          "Scheduled, Started, Ready, Available)",
                          item, stage);
    t.metric = parse_metric(metric);
    if (t.metric < 0)
        return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "threshold %s: unknown metric %s (p50, p90, p99, max, avg)",
                          item, metric);
    if (kc_parse_duration(dur, &t.limit))
        return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "threshold %s: bad duration %s (e.g. 2s, 500ms)", item,
                          dur);
    if (c->nth >= ST_MAX_THRESHOLDS)
        return kc_err_set(err, KC_ETOOLARGE, 0, "BadRequest", "at most %d thresholds", ST_MAX_THRESHOLDS);
    c->th[c->nth++] = t;
    return 0;
}

/* Splits s on commas (and spaces) and calls fn on every non-empty item. */
static int each_item(struct st_config *c, const char *s, int (*fn)(struct st_config *, const char *, struct kc_err *),
                     struct kc_err *err)
{
    char item[256];
    while (*s) {
        size_t n = strcspn(s, ", ");
        if (n >= sizeof item)
            return kc_err_set(err, KC_ETOOLARGE, 0, "BadRequest", "list item too long: %.40s...", s);
        if (n) {
            memcpy(item, s, n);
            item[n] = 0;
            int rc = fn(c, item, err);
            if (rc)
                return rc;
        }
        s += n;
        s += strspn(s, ", ");
    }
    return 0;
}

int st_parse_thresholds(struct st_config *c, const char *s, struct kc_err *err)
{
    return each_item(c, s, parse_one_threshold, err);
}

static int parse_one_request(struct st_config *c, const char *item, struct kc_err *err)
{
    const char *eq = strchr(item, '=');
    if (!eq || eq == item || !eq[1] || (size_t)(eq - item) >= sizeof c->requests[0].name ||
        strlen(eq + 1) >= sizeof c->requests[0].value)
        return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "requests %s: want NAME=QUANTITY, e.g. cpu=10m", item);
    if (c->nrequests >= ST_MAX_REQUESTS)
        return kc_err_set(err, KC_ETOOLARGE, 0, "BadRequest", "at most %d requests", ST_MAX_REQUESTS);
    struct st_request *r = &c->requests[c->nrequests++];
    snprintf(r->name, sizeof r->name, "%.*s", (int)(eq - item), item);
    snprintf(r->value, sizeof r->value, "%s", eq + 1);
    return 0;
}

int st_parse_requests(struct st_config *c, const char *s, struct kc_err *err)
{
    c->nrequests = 0;
    return each_item(c, s, parse_one_request, err);
}

void st_usage(FILE *f)
{
    fprintf(f,
            "Usage: kubec stress [flags] [-f job.yaml]\n\n"
            "Creates Deployments concurrently through the public API and measures the creation chain per pod:\n"
            "create accepted, ReplicaSet created, Pod created, scheduled, started, Ready, and per Deployment\n"
            "Available (from watches and the kubec.io/timeline annotation). Works against any cluster.\n\n"
            "Flags:\n"
            "  --kubeconfig FILE        default $KUBECONFIG, then ~/.kube/config\n"
            "  -f, --file FILE          job file (YAML) with the same fields; flags override it\n"
            "  --deployments N          Deployments to create (default 100)\n"
            "  --replicas R             replicas each (default 3)\n"
            "  --namespaces K           spread over K namespaces created for the run (default 1)\n"
            "  --concurrency C          creating threads (default 16)\n"
            "  --qps Q                  mutating requests a second (default 0 = unlimited)\n"
            "  --image IMAGE            container image (default registry.k8s.io/pause:3.9)\n"
            "  --requests LIST          container requests, e.g. cpu=10m,memory=16Mi\n"
            "  --priority-class NAME    priorityClassName of the pods\n"
            "  --spread zone|node|KEY   add a topologySpreadConstraint (maxSkew 1) on that topology key\n"
            "  --timeout D              give up waiting after D (default 10m)\n"
            "  --stuck-after D          end early once every unready pod has waited on a failure reason\n"
            "                           (ImagePullBackOff, CrashLoopBackOff, Unschedulable, ...) for D (default 10s)\n"
            "  --churn                  after Available: scale up 50%%, roll to a new image, delete\n"
            "  --churn-image IMAGE      the image of the churn rollout (default: same image, new template)\n"
            "  --keep                   do not delete what the run created\n"
            "  --threshold LIST         e.g. Ready:p99=2s,Scheduled:p99=500ms: a WARN line per breach, exit 1\n"
            "  --max-error-rate R       failed API calls / all calls above R → exit 2 (default 0.01)\n"
            "  -o, --output text|json   summary format on stdout (default text)\n"
            "  --report DIR             write DIR/report.json and DIR/report.html\n\n"
            "Exit codes: 0 passed; 1 a threshold was breached; 2 API errors above the rate (or the run could\n"
            "not start); 3 pods stuck or the timeout expired before everything was Ready/Available, or the\n"
            "cleanup did not finish.\n");
}

static void set_defaults(struct st_config *c)
{
    memset(c, 0, sizeof *c);
    c->deployments = 100;
    c->replicas = 3;
    c->namespaces = 1;
    c->concurrency = 16;
    snprintf(c->image, sizeof c->image, "registry.k8s.io/pause:3.9");
    c->timeout = 600;
    c->stuck_after = 10;
    c->max_error_rate = 0.01;
    const char *kc = getenv("KUBECONFIG");
    const char *home = getenv("HOME");
    if (kc && *kc) {
        /* KUBECONFIG may list several files; the first is the one we read */
        snprintf(c->kubeconfig, sizeof c->kubeconfig, "%.*s", (int)strcspn(kc, ":"), kc);
    } else if (home) {
        snprintf(c->kubeconfig, sizeof c->kubeconfig, "%s/.kube/config", home);
    }
}

static int int_arg(const char *name, const char *v, int lo, int hi, int *out, struct kc_err *err)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < lo || x > hi)
        return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "--%s: want an integer in %d..%d, got %s", name, lo, hi,
                          v);
    *out = (int)x;
    return 0;
}

static int str_arg(const char *name, const char *v, char *out, size_t n, struct kc_err *err)
{
    if (strlen(v) >= n)
        return kc_err_set(err, KC_ETOOLARGE, 0, "BadRequest", "--%s: longer than %zu bytes", name, n - 1);
    memcpy(out, v, strlen(v) + 1);
    return 0;
}

static int bool_arg(const char *name, const char *v, bool *out, struct kc_err *err)
{
    if (!v || !strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes"))
        *out = true;
    else if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no"))
        *out = false;
    else
        return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "--%s: want true or false, got %s", name, v);
    return 0;
}

static int dur_arg(const char *name, const char *v, double *out, struct kc_err *err)
{
    if (kc_parse_duration(v, out))
        return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "--%s: bad duration %s (e.g. 90s, 10m)", name, v);
    return 0;
}

/* Canonical option name: "priorityClass" → "priority-class". */
static void canon(const char *in, char *out, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; in[i] && j + 2 < n; i++) {
        if (isupper((unsigned char)in[i])) {
            out[j++] = '-';
            out[j++] = (char)tolower((unsigned char)in[i]);
        } else {
            out[j++] = in[i] == '_' ? '-' : in[i];
        }
    }
    out[j] = 0;
}

/* Applies one option (canonical name, value; v NULL for a bare boolean flag). */
static int apply(struct st_config *c, const char *name, const char *v, struct kc_err *err)
{
    static const char *const bools[] = {"keep", "churn"};
    bool is_bool = false;
    for (size_t i = 0; i < 2; i++)
        is_bool |= !strcmp(name, bools[i]);
    if (!v && !is_bool)
        return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "--%s needs a value", name);
    if (!strcmp(name, "deployments"))
        return int_arg(name, v, 1, ST_MAX_DEPLOYMENTS, &c->deployments, err);
    if (!strcmp(name, "replicas"))
        return int_arg(name, v, 0, ST_MAX_REPLICAS, &c->replicas, err);
    if (!strcmp(name, "namespaces"))
        return int_arg(name, v, 1, ST_MAX_NAMESPACES, &c->namespaces, err);
    if (!strcmp(name, "concurrency"))
        return int_arg(name, v, 1, ST_MAX_CONCURRENCY, &c->concurrency, err);
    if (!strcmp(name, "qps")) {
        char *end;
        c->qps = strtod(v, &end);
        if (end == v || *end || !isfinite(c->qps) || c->qps < 0)
            return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "--qps: want a number >= 0, got %s", v);
        return 0;
    }
    if (!strcmp(name, "image"))
        return str_arg(name, v, c->image, sizeof c->image, err);
    if (!strcmp(name, "churn-image"))
        return str_arg(name, v, c->churn_image, sizeof c->churn_image, err);
    if (!strcmp(name, "requests"))
        return st_parse_requests(c, v, err);
    if (!strcmp(name, "priority-class"))
        return str_arg(name, v, c->priority_class, sizeof c->priority_class, err);
    if (!strcmp(name, "spread")) {
        const char *key = !strcmp(v, "zone")                          ? "topology.kubernetes.io/zone"
                          : !strcmp(v, "node") || !strcmp(v, "hostname") ? "kubernetes.io/hostname"
                                                                         : v;
        return str_arg(name, key, c->spread, sizeof c->spread, err);
    }
    if (!strcmp(name, "timeout"))
        return dur_arg(name, v, &c->timeout, err);
    if (!strcmp(name, "stuck-after"))
        return dur_arg(name, v, &c->stuck_after, err);
    if (!strcmp(name, "max-error-rate")) {
        char *end;
        c->max_error_rate = strtod(v, &end);
        if (end == v || *end || !(c->max_error_rate >= 0 && c->max_error_rate <= 1))
            return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "--max-error-rate: want 0..1, got %s", v);
        return 0;
    }
    if (!strcmp(name, "keep"))
        return bool_arg(name, v, &c->keep, err);
    if (!strcmp(name, "churn"))
        return bool_arg(name, v, &c->churn, err);
    if (!strcmp(name, "output") || !strcmp(name, "o")) {
        if (strcmp(v, "text") && strcmp(v, "json"))
            return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "-o: want text or json, got %s", v);
        c->json_out = !strcmp(v, "json");
        return 0;
    }
    if (!strcmp(name, "report"))
        return str_arg(name, v, c->report_dir, sizeof c->report_dir, err);
    if (!strcmp(name, "threshold") || !strcmp(name, "thresholds"))
        return st_parse_thresholds(c, v, err);
    if (!strcmp(name, "kubeconfig"))
        return str_arg(name, v, c->kubeconfig, sizeof c->kubeconfig, err);
    return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "unknown option %s (see kubec stress --help)", name);
}

static const char *scalar(struct fy_node *n, char *buf, size_t cap)
{
    size_t len;
    const char *s = fy_node_get_scalar(n, &len);
    if (!s || len >= cap)
        return NULL;
    memcpy(buf, s, len);
    buf[len] = 0;
    return buf;
}

/* One job-file key: scalars go through apply(); threshold lists and request maps are expanded. */
static int apply_node(struct st_config *c, const char *name, struct fy_node *val, struct kc_err *err)
{
    char buf[1024];
    if (fy_node_is_scalar(val)) {
        if (!scalar(val, buf, sizeof buf))
            return kc_err_set(err, KC_ETOOLARGE, 0, "BadRequest", "job file: %s: value too long", name);
        return apply(c, name, buf, err);
    }
    void *it = NULL;
    struct fy_node *e;
    if (fy_node_is_sequence(val) && (!strcmp(name, "threshold") || !strcmp(name, "thresholds"))) {
        while ((e = fy_node_sequence_iterate(val, &it))) {
            if (!fy_node_is_scalar(e) || !scalar(e, buf, sizeof buf))
                return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "job file: threshold items are strings");
            int rc = st_parse_thresholds(c, buf, err);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (fy_node_is_mapping(val) && !strcmp(name, "requests")) {
        struct fy_node_pair *p;
        c->nrequests = 0;
        while ((p = fy_node_mapping_iterate(val, &it))) {
            char k[64], v[64], item[160];
            struct fy_node *kn = fy_node_pair_key(p), *vn = fy_node_pair_value(p);
            if (!kn || !vn || !fy_node_is_scalar(kn) || !fy_node_is_scalar(vn) || !scalar(kn, k, sizeof k) ||
                !scalar(vn, v, sizeof v))
                return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "job file: requests: want name: quantity");
            snprintf(item, sizeof item, "%s=%s", k, v);
            int rc = parse_one_request(c, item, err);
            if (rc)
                return rc;
        }
        return 0;
    }
    return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "job file: %s: want a scalar", name);
}

static int load_job(struct st_config *c, const char *path, struct kc_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return kc_err_set(err, KC_EIO, 0, "BadRequest", "job file %s: cannot open", path);
    char *text = malloc(MAX_JOB_FILE + 1);
    size_t n = text ? fread(text, 1, MAX_JOB_FILE + 1, f) : 0;
    fclose(f);
    if (!text)
        return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
    if (n > MAX_JOB_FILE) {
        free(text);
        return kc_err_set(err, KC_ETOOLARGE, 0, "BadRequest", "job file %s: larger than 1 MiB", path);
    }
    text[n] = 0;
    struct fy_parse_cfg cfg = {.flags = FYPCF_QUIET};
    struct fy_document *doc = fy_document_build_from_string(&cfg, text, n);
    struct fy_node *root = doc ? fy_document_root(doc) : NULL;
    int rc = 0;
    if (!root || !fy_node_is_mapping(root)) {
        rc = kc_err_set(err, KC_EINVAL, 0, "BadRequest", "job file %s: want a YAML mapping of flag: value", path);
    } else {
        void *it = NULL;
        struct fy_node_pair *p;
        while (!rc && (p = fy_node_mapping_iterate(root, &it))) {
            char k[64], name[96];
            struct fy_node *kn = fy_node_pair_key(p), *vn = fy_node_pair_value(p);
            if (!kn || !vn || !fy_node_is_scalar(kn) || !scalar(kn, k, sizeof k)) {
                rc = kc_err_set(err, KC_EINVAL, 0, "BadRequest", "job file %s: bad key", path);
                break;
            }
            canon(k, name, sizeof name);
            if (!strcmp(name, "file") || !strcmp(name, "f"))
                continue;
            rc = apply_node(c, name, vn, err);
        }
    }
    fy_document_destroy(doc);
    free(text); /* the document was built from a copy-free string: destroy it first */
    return rc;
}

int st_config_from_args(struct st_config *c, int argc, char **argv, struct kc_err *err)
{
    set_defaults(c);
    /* the job file first, wherever -f appears, so flags override it */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            st_usage(stdout);
            return 1;
        }
        const char *v = NULL;
        if ((!strcmp(a, "-f") || !strcmp(a, "--file")) && i + 1 < argc)
            v = argv[++i];
        else if (!strncmp(a, "--file=", 7))
            v = a + 7;
        if (v) {
            int rc = str_arg("file", v, c->job_file, sizeof c->job_file, err);
            if (rc || (rc = load_job(c, v, err)))
                return rc;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            i++;
            continue;
        }
        if (!strncmp(a, "--file=", 7))
            continue;
        char name[64];
        const char *v = NULL;
        if (!strcmp(a, "-o")) {
            snprintf(name, sizeof name, "output");
        } else if (!strncmp(a, "--", 2) && a[2]) {
            const char *eq = strchr(a, '=');
            size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            if (n >= sizeof name)
                return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "unknown option %s", a);
            memcpy(name, a + 2, n);
            name[n] = 0;
            if (eq)
                v = eq + 1;
        } else {
            return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "unexpected argument %s (see kubec stress --help)",
                              a);
        }
        bool is_bool = !strcmp(name, "keep") || !strcmp(name, "churn");
        if (!v && !is_bool) {
            if (i + 1 >= argc)
                return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "%s needs a value", a);
            v = argv[++i];
        }
        int rc = apply(c, name, v, err);
        if (rc)
            return rc;
    }
    if ((long)c->deployments * c->replicas > ST_MAX_PODS)
        return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "--deployments × --replicas must be at most %d",
                          ST_MAX_PODS);
    if (!c->kubeconfig[0])
        return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "no kubeconfig: pass --kubeconfig or set KUBECONFIG");
    return 0;
}

json_t *st_config_json(const struct st_config *c)
{
    json_t *req = json_object();
    for (int i = 0; i < c->nrequests; i++)
        json_object_set_new(req, c->requests[i].name, json_string(c->requests[i].value));
    json_t *th = json_array();
    for (int i = 0; i < c->nth; i++) {
        char s[128];
        snprintf(s, sizeof s, "%s:%s=%gms", st_stage_names[c->th[i].stage], st_metric_names[c->th[i].metric],
                 c->th[i].limit * 1e3);
        json_array_append_new(th, json_string(s));
    }
    return json_pack("{s:i,s:i,s:i,s:i,s:f,s:s,s:s,s:o,s:s,s:s,s:f,s:f,s:f,s:b,s:b,s:s,s:s,s:o,s:s}", "deployments",
                     c->deployments, "replicas", c->replicas, "namespaces", c->namespaces, "concurrency",
                     c->concurrency, "qps", c->qps, "image", c->image, "churnImage", c->churn_image, "requests", req,
                     "priorityClass", c->priority_class, "spread", c->spread, "timeoutSeconds", c->timeout,
                     "stuckAfterSeconds", c->stuck_after, "maxErrorRate", c->max_error_rate, "keep", c->keep,
                     "churn", c->churn, "output", c->json_out ? "json" : "text", "report", c->report_dir,
                     "thresholds", th, "jobFile", c->job_file);
}
