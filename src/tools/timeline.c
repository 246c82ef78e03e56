/* timeline.c — `kubec timeline deployment/NAME`: where one Deployment creation or rollout spent its
 * time (docs/timeline.md).
 *
 * Parses the command line, reads the model through the public API (timeline_model.c) and prints it
 * either as a terminal waterfall — one bar per stage scaled to the terminal width, the critical-path
 * duration of each stage (they sum to the total), per-pod p50/p99/max, and, for an unfinished
 * rollout, the stage it waits in with the last Event of that stage — or as JSON (-o json) with every
 * stamp per pod and the aggregates. Exit codes (tools.h): 0 Available, 1 error, 2 stuck, 3 in
 * progress. Single-threaded; output only on stdout/stderr.
 */
#include <libfyaml.h>
#include <jansson.h>
#include <langinfo.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "tools/timeline.h"
#include "tools/tools.h"
#include "util/timeutil.h"

#define EXIT_OK 0
#define EXIT_ERROR 1
#define EXIT_STUCK 2
#define EXIT_PROGRESS 3
#define DEFAULT_WIDTH 100
#define MIN_BAR 10
#define MAX_WIDTH 400
#define KUBECONFIG_MAX (4 << 20)

struct tl_opts {
    const char *name, *ns, *kubeconfig, *output;
    long revision;
    char ns_buf[KC_TL_NAME_MAX], cfg_buf[4096];
};

static int usage(FILE *f)
{
    fprintf(f, "Usage: kubec timeline deployment/NAME [-n NAMESPACE] [-o json] [--revision N] [--kubeconfig FILE]\n\n"
               "Shows where a Deployment's creation (or rollout) spent its time: accepted by the API, ReplicaSet\n"
               "created, each Pod created, scheduled, image pulled, container started, Ready, and the Deployment\n"
               "Available, from the kubec.io/timeline annotations (docs/timeline.md).\n\n"
               "Flags:\n"
               "  -n, --namespace NS   namespace (default: the kubeconfig context's, else \"default\")\n"
               "  -o, --output json    every stamp per pod and the aggregates as JSON\n"
               "  --revision N         the ReplicaSet of that revision (default: the newest)\n"
               "  --kubeconfig FILE    default $KUBECONFIG, else ~/.kube/config\n\n"
               "Exit status: 0 Available, 1 error, 2 stuck (a stage is failing), 3 still in progress.\n");
    return f == stdout ? EXIT_OK : EXIT_ERROR;
}

static int fail(const char *fmt, const char *a)
{
    fprintf(stderr, "error: ");
    fprintf(stderr, fmt, a);
    fputc('\n', stderr);
    return EXIT_ERROR;
}

/* "deployment/x", "deployments/x", "deploy/x", "deployment.apps/x", or "deployment x". */
static bool is_deployment_kind(const char *k, size_t n)
{
    static const char *const kinds[] = {"deployment", "deployments", "deploy", "deployment.apps",
                                        "deployments.apps", "deploy.apps"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strlen(kinds[i]) == n && !strncasecmp(k, kinds[i], n))
            return true;
    return false;
}

/* Value of "--flag V", "--flag=V", "-nV". Returns the value and advances *i, or NULL. */
static const char *flag_value(int argc, char **argv, int *i, const char *lng, const char *shrt)
{
    const char *a = argv[*i];
    size_t ll = strlen(lng);
    if (!strcmp(a, lng) || (shrt && !strcmp(a, shrt)))
        return *i + 1 < argc ? argv[++*i] : NULL;
    if (!strncmp(a, lng, ll) && a[ll] == '=')
        return a + ll + 1;
    if (shrt && !strncmp(a, shrt, 2) && a[2])
        return a + 2 + (a[2] == '=');
    return NULL;
}

static bool is_flag(const char *a, const char *lng, const char *shrt)
{
    size_t ll = strlen(lng);
    return !strcmp(a, lng) || (!strncmp(a, lng, ll) && a[ll] == '=') ||
           (shrt && !strncmp(a, shrt, 2));
}

static int parse_args(int argc, char **argv, struct tl_opts *o)
{
    const char *kind = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return usage(stdout), -1; /* help printed: exit 0 */
        if (is_flag(a, "--namespace", "-n")) {
            if (!(v = flag_value(argc, argv, &i, "--namespace", "-n")))
                return fail("flag needs an argument: %s", a);
            o->ns = v;
        } else if (is_flag(a, "--output", "-o")) {
            if (!(v = flag_value(argc, argv, &i, "--output", "-o")))
                return fail("flag needs an argument: %s", a);
            o->output = v;
        } else if (is_flag(a, "--kubeconfig", NULL)) {
            if (!(v = flag_value(argc, argv, &i, "--kubeconfig", NULL)))
                return fail("flag needs an argument: %s", a);
            o->kubeconfig = v;
        } else if (is_flag(a, "--revision", NULL)) {
            char *end;
            if (!(v = flag_value(argc, argv, &i, "--revision", NULL)))
                return fail("flag needs an argument: %s", a);
            o->revision = strtol(v, &end, 10);
            if (*end || o->revision < 0)
                return fail("invalid --revision \"%s\": want a non-negative integer", v);
        } else if (a[0] == '-' && a[1]) {
            return fail("unknown flag: %s", a);
        } else if (!kind && !o->name) {
            const char *slash = strchr(a, '/');
            if (slash) {
                if (!is_deployment_kind(a, (size_t)(slash - a)))
                    return fail("kubec timeline supports deployments only, not \"%s\"", a);
                o->name = slash + 1;
            } else {
                kind = a;
                if (!is_deployment_kind(a, strlen(a)))
                    return fail("kubec timeline supports deployments only, not \"%s\"", a);
            }
        } else if (kind && !o->name) {
            o->name = a;
        } else {
            return fail("unexpected argument \"%s\" (one deployment at a time)", a);
        }
    }
    if (!o->name || !*o->name)
        return fail("%s", "you must specify a deployment: kubec timeline deployment/NAME");
    if (strlen(o->name) >= KC_TL_NAME_MAX)
        return fail("%s", "deployment name too long");
    if (o->output && strcmp(o->output, "json"))
        return fail("unable to match a printer suitable for the output format \"%s\", allowed formats are: json",
                    o->output);
    return 0;
}

/* ---------- kubeconfig: which file, which default namespace ---------- */

static void pick_kubeconfig(struct tl_opts *o)
{
    if (o->kubeconfig)
        return;
    const char *env = getenv("KUBECONFIG"), *home = getenv("HOME");
    if (env && *env) {
        size_t n = strcspn(env, ":");
        snprintf(o->cfg_buf, sizeof o->cfg_buf, "%.*s", (int)n, env);
    } else {
        snprintf(o->cfg_buf, sizeof o->cfg_buf, "%s/.kube/config", home ? home : ".");
    }
    o->kubeconfig = o->cfg_buf;
}

static const char *yscalar(struct fy_node *map, const char *key, size_t *len)
{
    struct fy_node *n = map && fy_node_is_mapping(map) ? fy_node_mapping_lookup_by_string(map, key, FY_NT) : NULL;
    return n && fy_node_is_scalar(n) ? fy_node_get_scalar(n, len) : NULL;
}

/* The current context's namespace, as kubectl defaults to it; "default" otherwise. */
static void default_namespace(struct tl_opts *o)
{
    snprintf(o->ns_buf, sizeof o->ns_buf, "default");
    o->ns = o->ns_buf;
    /* read it ourselves: libfyaml reports an unreadable file on stderr even when quiet */
    char *text = NULL;
    size_t tlen = 0;
    FILE *f = fopen(o->kubeconfig, "r");
    if (f) {
        text = malloc(KUBECONFIG_MAX + 1);
        tlen = text ? fread(text, 1, KUBECONFIG_MAX + 1, f) : 0;
        fclose(f);
    }
    if (!text || tlen > KUBECONFIG_MAX) {
        free(text);
        return;
    }
    struct fy_parse_cfg cfg = {.flags = FYPCF_QUIET};
    struct fy_document *doc = fy_document_build_from_string(&cfg, text, tlen);
    struct fy_node *root = doc ? fy_document_root(doc) : NULL;
    size_t cl = 0, nl = 0;
    const char *cur = yscalar(root, "current-context", &cl);
    struct fy_node *seq = root && fy_node_is_mapping(root) ? fy_node_mapping_lookup_by_string(root, "contexts", FY_NT)
                                                           : NULL;
    void *it = NULL;
    struct fy_node *e;
    while (cur && seq && fy_node_is_sequence(seq) && (e = fy_node_sequence_iterate(seq, &it))) {
        const char *n = yscalar(e, "name", &nl);
        if (!n || nl != cl || strncmp(n, cur, cl))
            continue;
        const char *ns = yscalar(fy_node_mapping_lookup_by_string(e, "context", FY_NT), "namespace", &nl);
        if (ns && nl && nl < sizeof o->ns_buf)
            snprintf(o->ns_buf, sizeof o->ns_buf, "%.*s", (int)nl, ns);
        break;
    }
    fy_document_destroy(doc);
    free(text);
}

/* ---------- formatting ---------- */

static bool utf8_out(void)
{
    const char *cs = nl_langinfo(CODESET);
    return cs && (!strcasecmp(cs, "UTF-8") || !strcasecmp(cs, "utf8"));
}

/* v with three significant digits at most (never an exponent), trailing zeros dropped. */
static void fmt_num(double v, const char *unit, const char *sign, char *out, size_t n)
{
    char num[32];
    snprintf(num, sizeof num, v < 10 ? "%.2f" : v < 100 ? "%.1f" : "%.0f", v);
    char *dot = strchr(num, '.');
    if (dot) {
        char *e = num + strlen(num) - 1;
        while (e > dot && *e == '0')
            *e-- = 0;
        if (e == dot)
            *e = 0;
    }
    snprintf(out, n, "%s%s%s", sign, num, unit);
}

/* Go-style duration: 850µs, 12.3ms, 1.52s, 2m3.4s. */
static void fmt_dur(int64_t us, char *out, size_t n, bool utf8)
{
    const char *sign = us < 0 ? "-" : "";
    int64_t a = us < 0 ? -us : us;
    if (a < 1000) {
        snprintf(out, n, "%s%lld%s", sign, (long long)a, utf8 ? "µs" : "us");
    } else if (a < 1000000) {
        fmt_num((double)a / 1e3, "ms", sign, out, n);
    } else if (a < 60000000) {
        fmt_num((double)a / 1e6, "s", sign, out, n);
    } else {
        char s[16];
        fmt_num((double)(a % 60000000) / 1e6, "s", "", s, sizeof s);
        snprintf(out, n, "%s%lldm%.15s", sign, (long long)(a / 60000000), s);
    }
}

static int term_width(void)
{
    const char *c = getenv("COLUMNS");
    long w = c ? strtol(c, NULL, 10) : 0;
    struct winsize ws;
    if (w <= 0 && isatty(STDOUT_FILENO) && !ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) && ws.ws_col)
        w = ws.ws_col;
    if (w <= 0)
        w = DEFAULT_WIDTH;
    return w > MAX_WIDTH ? MAX_WIDTH : (int)w;
}

static void rfc3339(int64_t us, char *out, size_t n)
{
    struct timespec ts = {.tv_sec = (time_t)(us / 1000000), .tv_nsec = (long)(us % 1000000) * 1000};
    if (us < 0 && ts.tv_nsec) {
        ts.tv_sec--;
        ts.tv_nsec += 1000000000;
    }
    kc_time_rfc3339_micro(&ts, out, n);
}

/* Whether any time of the stage came from a coarse (second-precision) fallback. */
static bool coarse_stage(const struct kc_tl *tl, int s)
{
    const struct kc_tl_time *t = s == KC_TL_ACCEPTED ? &tl->accepted
                                 : s == KC_TL_RS_CREATED ? &tl->rs_created
                                 : s == KC_TL_AVAILABLE ? &tl->available
                                                        : NULL;
    if (t)
        return t->src && t->coarse;
    for (size_t i = 0; i < tl->npods; i++)
        if (tl->pods[i].t[s].src && tl->pods[i].t[s].coarse)
            return true;
    return false;
}

/* ---------- terminal output ---------- */

/* Right-aligns s in w columns counting UTF-8 characters, not bytes (µ is two bytes, one column). */
static void print_right(const char *s, int w)
{
    int cols = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        cols += (*p & 0xC0) != 0x80;
    printf("%*s%s", w > cols ? w - cols : 0, "", s);
}

static void print_bar(const struct kc_tl_stat *st, int64_t span, int barw, bool utf8)
{
    char line[MAX_WIDTH * 4 + 1];
    size_t len = 0;
    int a = (int)(span > 0 ? st->start_us * barw / span : 0), b = (int)(span > 0 ? st->end_us * barw / span : 0);
    if (a < 0)
        a = 0;
    if (b > barw)
        b = barw;
    if (b <= a)
        b = a + 1 > barw ? barw : a + 1;
    if (a >= b)
        a = b - 1;
    const char *full = utf8 ? "█" : "#", *thin = utf8 ? "▏" : "|";
    bool point = st->end_us == st->start_us;
    for (int i = 0; i < b && len + 4 < sizeof line; i++) {
        const char *c = i < a ? " " : point ? thin : full;
        size_t cl = strlen(c);
        memcpy(line + len, c, cl);
        len += cl;
    }
    line[len] = 0;
    printf("%s", line);
}

static void print_waterfall(const struct kc_tl *tl, bool utf8)
{
    int width = term_width();
    int barw = width - 45; /* 44 columns of text before the bar, one spare at the end */
    if (barw < MIN_BAR)
        barw = MIN_BAR;
    int64_t span = tl->total_us;
    for (int s = 0; s < KC_TL_NSTAGES; s++)
        if (tl->stat[s].present && tl->stat[s].end_us > span)
            span = tl->stat[s].end_us;
    char tot[32];
    fmt_dur(span, tot, sizeof tot, utf8);
    printf("%-22s %9s %9s  0%*s\n", "STAGE", "AT", "DURATION", barw - 1, tot);
    bool any_coarse = false;
    for (int s = 0; s < KC_TL_NSTAGES; s++) {
        const struct kc_tl_stat *st = &tl->stat[s];
        char at[32] = "-", dur[32] = "-";
        if (s == KC_TL_ACCEPTED && !tl->first_rollout) {
            printf("%-22s %9s %9s  (rollout of revision %ld: starts at its ReplicaSet)\n", kc_tl_stage_label(s), "-",
                   "-", tl->revision);
            continue;
        }
        if (st->present)
            fmt_dur(st->end_us, at, sizeof at, utf8);
        if (st->crit_known)
            fmt_dur(st->crit_us, dur, sizeof dur, utf8);
        bool coarse = coarse_stage(tl, s);
        any_coarse |= coarse;
        printf("%-22s ", kc_tl_stage_label(s));
        print_right(at, 9);
        putchar(' ');
        print_right(dur, 8);
        printf("%c  ", coarse ? '~' : ' ');
        if (st->present)
            print_bar(st, span, barw, utf8);
        else
            printf(tl->block.stage == s ? "(waiting)" : "(not stamped)");
        putchar('\n');
    }
    if (any_coarse)
        printf("~ second-precision time from a fallback (no kubec.io/timeline stamp)\n");
}

static void print_pod_stats(const struct kc_tl *tl, bool utf8)
{
    printf("\n%-22s %6s %9s %9s %9s\n", "PER POD", "PODS", "P50", "P99", "MAX");
    for (int s = KC_TL_FIRST_POD_STAGE; s <= KC_TL_LAST_POD_STAGE; s++) {
        const struct kc_tl_stat *st = &tl->stat[s];
        char p50[32] = "-", p99[32] = "-", mx[32] = "-";
        if (st->n) {
            fmt_dur(st->p50_us, p50, sizeof p50, utf8);
            fmt_dur(st->p99_us, p99, sizeof p99, utf8);
            fmt_dur(st->max_us, mx, sizeof mx, utf8);
        }
        printf("%-22s %6zu ", kc_tl_stage_label(s), st->n);
        print_right(p50, 9);
        putchar(' ');
        print_right(p99, 9);
        putchar(' ');
        print_right(mx, 9);
        putchar('\n');
    }
}

static void print_block(const struct kc_tl *tl)
{
    const struct kc_tl_block *b = &tl->block;
    if (b->stage < 0)
        return;
    printf("\n%s in stage \"%s\"", b->stuck ? "Stuck" : "In progress", kc_tl_stage_label(b->stage));
    if (b->stage >= KC_TL_FIRST_POD_STAGE && b->stage <= KC_TL_LAST_POD_STAGE)
        printf(": %zu/%ld pods waiting", b->pods, tl->replicas);
    putchar('\n');
    if (b->reason[0] && b->stage >= KC_TL_SCHEDULED && b->stage <= KC_TL_LAST_POD_STAGE)
        printf("%s %s: %s\n", !strcmp(b->reason, "Unschedulable") ? "Pods" : "Pods waiting in",
               b->reason, b->message[0] ? b->message : "(no event)");
    else if (b->reason[0])
        printf("%s: %s\n", b->reason, b->message[0] ? b->message : "(no event)");
    else if (b->message[0])
        printf("Last event: %s\n", b->message);
    if (b->error[0])
        printf("Last error: %s\n", b->error);
}

static void print_text(const struct kc_tl *tl)
{
    bool utf8 = utf8_out();
    char tot[32];
    size_t ready = 0;
    for (size_t i = 0; i < tl->npods; i++)
        ready += tl->pods[i].t[KC_TL_READY].src != 0;
    printf("Deployment %s/%s", tl->ns, tl->name);
    if (tl->rs_uid[0])
        printf(", revision %ld (ReplicaSet %s)", tl->revision, tl->rs_name);
    printf(": %zu/%ld pods Ready, %s\n\n", ready, tl->replicas, tl->complete ? "Available" : "not Available");
    print_waterfall(tl, utf8);
    print_pod_stats(tl, utf8);
    print_block(tl);
    fmt_dur(tl->total_us, tot, sizeof tot, utf8);
    const char *from = tl->first_rollout ? "Deployment accepted" : "ReplicaSet created";
    if (tl->complete && tl->crit_pod >= 0)
        printf("\nCritical pod: %s (its Ready made the Deployment Available)", tl->pods[tl->crit_pod].name);
    if (tl->complete)
        printf("\nTotal: %s, %s %s Deployment Available\n", tot, from, utf8 ? "→" : "->");
    else
        printf("\nElapsed: %s since %s, not Available yet\n", tot, from);
}

/* ---------- JSON output ---------- */

static json_t *time_json(const struct kc_tl *tl, const struct kc_tl_time *t)
{
    if (!t->src)
        return json_null();
    char ts[40];
    rfc3339(t->us, ts, sizeof ts);
    return json_pack("{s:s,s:I,s:s,s:b}", "time", ts, "offsetMicros", (json_int_t)(t->us - tl->origin_us), "source",
                     kc_tl_src_name(t->src), "secondPrecision", t->coarse);
}

static json_t *pods_json(const struct kc_tl *tl)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < tl->npods; i++) {
        const struct kc_tl_pod *p = &tl->pods[i];
        json_t *stages = json_object();
        for (int s = KC_TL_FIRST_POD_STAGE; s <= KC_TL_LAST_POD_STAGE; s++)
            json_object_set_new(stages, kc_tl_stage_key(s), time_json(tl, &p->t[s]));
        json_t *o = json_pack("{s:s,s:s,s:s?,s:o}", "name", p->name, "uid", p->uid, "node", p->node[0] ? p->node : NULL,
                              "stages", stages);
        if (p->waiting_reason[0])
            json_object_set_new(o, "waiting", json_pack("{s:s,s:s}", "reason", p->waiting_reason, "message",
                                                        p->msg && !p->unschedulable ? p->msg : ""));
        if (p->unschedulable)
            json_object_set_new(o, "unschedulable", json_string(p->msg ? p->msg : ""));
        json_array_append_new(arr, o);
    }
    return arr;
}

static json_t *stages_json(const struct kc_tl *tl)
{
    json_t *arr = json_array();
    for (int s = 0; s < KC_TL_NSTAGES; s++) {
        const struct kc_tl_stat *st = &tl->stat[s];
        json_t *o = json_pack("{s:s,s:s,s:b}", "stage", kc_tl_stage_key(s), "label", kc_tl_stage_label(s), "present",
                              st->present);
        if (st->present) {
            json_object_set_new(o, "startMicros", json_integer(st->start_us));
            json_object_set_new(o, "endMicros", json_integer(st->end_us));
        }
        if (st->n)
            json_object_update_new(o, json_pack("{s:I,s:I,s:I,s:I}", "count", (json_int_t)st->n, "p50Micros",
                                                (json_int_t)st->p50_us, "p99Micros", (json_int_t)st->p99_us,
                                                "maxMicros", (json_int_t)st->max_us));
        json_object_set_new(o, "criticalMicros", st->crit_known ? json_integer(st->crit_us) : json_null());
        json_array_append_new(arr, o);
    }
    return arr;
}

static int print_json(const struct kc_tl *tl)
{
    char origin[40];
    rfc3339(tl->origin_us, origin, sizeof origin);
    json_t *rs = tl->rs_uid[0] ? json_pack("{s:s,s:s,s:I,s:o}", "name", tl->rs_name, "uid", tl->rs_uid, "revision",
                                           (json_int_t)tl->revision, "created", time_json(tl, &tl->rs_created))
                               : json_null();
    json_t *waiting = json_null();
    const struct kc_tl_block *b = &tl->block;
    if (b->stage >= 0)
        waiting = json_pack("{s:s,s:s,s:I,s:b,s:s,s:s,s:s}", "stage", kc_tl_stage_key(b->stage), "label",
                            kc_tl_stage_label(b->stage), "pods", (json_int_t)b->pods, "stuck", b->stuck, "reason",
                            b->reason, "message", b->message, "error", b->error);
    json_t *out = json_pack(
        "{s:{s:s,s:s,s:s,s:I,s:o,s:o},s:o,s:s,s:b,s:I,s:o,s:o,s:s?,s:o}", "deployment", "namespace", tl->ns, "name",
        tl->name, "uid", tl->uid, "replicas", (json_int_t)tl->replicas, "accepted", time_json(tl, &tl->accepted),
        "available", time_json(tl, &tl->available), "replicaSet", rs, "origin", origin, "complete", tl->complete,
        "totalMicros", (json_int_t)tl->total_us, "stages", stages_json(tl), "pods", pods_json(tl), "criticalPod",
        tl->crit_pod >= 0 ? tl->pods[tl->crit_pod].name : NULL, "waiting", waiting);
    if (!out)
        return fail("%s", "cannot build the JSON output");
    char *s = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(out);
    if (!s)
        return fail("%s", "cannot build the JSON output");
    puts(s);
    free(s);
    return 0;
}

/* ---------- entry ---------- */

/* kubectl's wording: "Error from server (NotFound): deployments.apps \"x\" not found" for API errors. */
static int report_error(const struct kc_err *err)
{
    if (err->reason[0] && err->code)
        fprintf(stderr, "Error from server (%s): %s\n", err->reason, err->message);
    else
        fprintf(stderr, "error: %s\n", err->message[0] ? err->message : "request failed");
    return EXIT_ERROR;
}

int kc_timeline_main(int argc, char **argv)
{
    setlocale(LC_CTYPE, "");
    struct tl_opts o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    pick_kubeconfig(&o);
    if (!o.ns || !*o.ns) /* -n "" means the default, as kubectl */
        default_namespace(&o);
    if (strlen(o.ns) >= KC_TL_NAME_MAX)
        return fail("%s", "namespace too long");
    struct kc_err err = {0};
    struct kc_client *c = NULL;
    if (kc_client_http_from_kubeconfig(o.kubeconfig, 0, 0, "kubec-timeline/kubec", &c, &err)) {
        fprintf(stderr, "error: %s\n", err.message);
        return EXIT_ERROR;
    }
    struct kc_tl tl;
    rc = kc_tl_collect(c, o.ns, o.name, o.revision, &tl, &err);
    kc_client_free(c);
    if (rc) {
        kc_tl_release(&tl);
        return report_error(&err);
    }
    int out = o.output ? print_json(&tl) : (print_text(&tl), 0);
    int code = out ? EXIT_ERROR : tl.complete ? EXIT_OK : tl.block.stuck ? EXIT_STUCK : EXIT_PROGRESS;
    kc_tl_release(&tl);
    fflush(stdout);
    return code;
}
