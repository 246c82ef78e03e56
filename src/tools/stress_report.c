/* stress_report.c — the outputs of `kubec stress`: the text summary (stdout), report.json (every figure,
 * the configuration, the server version, per-pod stage latencies) and report.html, a single file with
 * inline SVG plots (latency distribution per stage, pods Ready over time, Ready rate over time) and no
 * external resource, so it opens offline. Everything here reads a finished struct st_result.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tools/stress_int.h"
#include "util/buf.h"
#include "util/jsonparse.h"

#define MAX_PLOT_POINTS 400
#define MAX_RATE_BINS 120
#define HIST_BINS 30

static double ms(double s) { return round(s * 1e6) / 1e3; }

static json_t *summary_json(const struct st_summary *s)
{
    return json_pack("{s:I,s:f,s:f,s:f,s:f,s:f}", "count", (json_int_t)s->count, "P50", ms(s->v[ST_P50]), "P90",
                     ms(s->v[ST_P90]), "P99", ms(s->v[ST_P99]), "max", ms(s->v[ST_MAX]), "avg", ms(s->v[ST_AVG]));
}

/* Width of the rate bins: the smallest of a fixed ladder that keeps the plot under MAX_RATE_BINS. */
static double rate_bin(double span)
{
    static const double ladder[] = {0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 300, 600, 3600};
    for (size_t i = 0; i < sizeof ladder / sizeof ladder[0]; i++)
        if (span / ladder[i] <= MAX_RATE_BINS)
            return ladder[i];
    return 3600;
}

/* counts per bin of width w from 0; returns the number of bins (≤ MAX_RATE_BINS + 1) */
static size_t rate_bins(const struct st_result *r, double w, size_t *counts)
{
    size_t nb = 0;
    for (size_t i = 0; i < r->nready_rel; i++) {
        double t = r->ready_rel[i] < 0 ? 0 : r->ready_rel[i];
        size_t b = (size_t)(t / w);
        if (b > MAX_RATE_BINS)
            b = MAX_RATE_BINS;
        counts[b]++;
        if (b + 1 > nb)
            nb = b + 1;
    }
    return nb;
}

static json_t *series_json(const struct st_result *r)
{
    json_t *ready = json_array(), *rate = json_array();
    size_t n = r->nready_rel, step = n > MAX_PLOT_POINTS ? (n + MAX_PLOT_POINTS - 1) / MAX_PLOT_POINTS : 1;
    for (size_t i = 0; i < n; i += step)
        json_array_append_new(ready, json_pack("[f,I]", ms(r->ready_rel[i]), (json_int_t)(i + 1)));
    if (n && (n - 1) % step)
        json_array_append_new(ready, json_pack("[f,I]", ms(r->ready_rel[n - 1]), (json_int_t)n));
    double w = rate_bin(r->last_ready);
    size_t counts[MAX_RATE_BINS + 1] = {0};
    size_t nb = rate_bins(r, w, counts);
    for (size_t b = 0; b < nb; b++)
        json_array_append_new(rate, json_pack("[f,f]", ms(b * w), (double)counts[b] / w));
    return json_pack("{s:o,s:f,s:o}", "readyOverTime", ready, "rateBinMs", ms(w), "rateOverTime", rate);
}

static json_t *pods_json(struct st_state *s)
{
    json_t *pods = json_array();
    const char *key;
    void *v;
    pthread_mutex_lock(&s->mu);
    for (long i = kc_map_next(&s->pods, 0, &key, &v); i >= 0; i = kc_map_next(&s->pods, i + 1, &key, &v)) {
        struct st_pod *p = v;
        if (p->churn || p->index < 0)
            continue;
        double sent = s->d[p->index].sent;
        json_t *st = json_object();
        for (int k = ST_ACCEPTED; k <= ST_READY; k++)
            if (p->t[k])
                json_object_set_new(st, st_stage_names[k], json_real(ms(p->t[k] - sent)));
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:b,s:o}", "namespace", p->ns, "name", p->name, "deployment",
                              s->d[p->index].name, "node", p->node, "ready", p->ready, "stagesMs", st);
        if (!p->ready)
            json_object_set_new(o, "reason", json_string(p->reason));
        json_array_append_new(pods, o);
    }
    pthread_mutex_unlock(&s->mu);
    return pods;
}

static json_t *deployments_json(struct st_state *s)
{
    json_t *out = json_array();
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->nd; i++) {
        struct st_deploy *d = &s->d[i];
        if (!d->sent)
            continue;
        json_t *st = json_object();
        double acc = d->stamp[ST_ACCEPTED] ? d->stamp[ST_ACCEPTED] : d->accepted_client;
        double rs = d->stamp[ST_RS] ? d->stamp[ST_RS] : d->seen[ST_RS] ? d->seen[ST_RS] : d->cond[ST_RS];
        double av = d->stamp[ST_AVAILABLE] ? d->stamp[ST_AVAILABLE] : d->seen[ST_AVAILABLE] ? d->seen[ST_AVAILABLE]
                                                                                             : d->cond[ST_AVAILABLE];
        if (acc)
            json_object_set_new(st, "CreateAccepted", json_real(ms(acc - d->sent)));
        if (rs)
            json_object_set_new(st, "ReplicaSetCreated", json_real(ms(rs - d->sent)));
        if (d->available && av)
            json_object_set_new(st, "Available", json_real(ms(av - d->sent)));
        json_array_append_new(out, json_pack("{s:s,s:s,s:b,s:b,s:o}", "namespace", d->ns, "name", d->name, "created",
                                             d->created, "available", d->available, "stagesMs", st));
    }
    pthread_mutex_unlock(&s->mu);
    return out;
}

static const char *const src_names[ST_NSRC] = {"none", "timeline", "watch", "condition", "client"};

json_t *st_report_json(const struct st_config *c, const struct st_result *r, struct st_state *s)
{
    json_t *stages = json_object(), *quant = json_array();
    for (int st = 0; st < ST_NSTAGES; st++) {
        json_t *o = summary_json(&r->stage[st]);
        json_t *src = json_object();
        for (int k = 1; k < ST_NSRC; k++)
            if (r->stage_src[st][k])
                json_object_set_new(src, src_names[k], json_integer((json_int_t)r->stage_src[st][k]));
        json_object_set_new(o, "sources", src);
        json_object_set_new(o, "missing", json_integer((json_int_t)r->stage_missing[st]));
        json_object_set_new(o, "unit", json_string("ms"));
        json_object_set_new(stages, st_stage_names[st], o);
        json_t *q = summary_json(&r->stage[st]); /* kube-burner's podLatencyQuantilesMeasurement shape */
        json_object_set_new(q, "quantileName", json_string(st_stage_names[st]));
        json_object_set_new(q, "metricName", json_string("podLatencyQuantilesMeasurement"));
        json_array_append_new(quant, q);
    }
    json_t *api = json_object();
    for (int v = 0; v < ST_NVERBS; v++) {
        const struct st_apisum *a = &r->api[v];
        if (!a->total)
            continue;
        json_t *o = summary_json(&a->s);
        json_object_set_new(o, "requests", json_integer((json_int_t)a->total));
        json_object_set_new(o, "ok", json_integer((json_int_t)a->ok));
        json_object_set_new(o, "throttled429", json_integer((json_int_t)a->throttled));
        json_object_set_new(o, "conflicts409", json_integer((json_int_t)a->conflicts));
        json_object_set_new(o, "errors", json_integer((json_int_t)a->errors));
        json_object_set_new(api, st_verb_names[v], o);
    }
    json_t *th = json_array();
    for (int k = 0; k < c->nth; k++)
        json_array_append_new(th, json_pack("{s:s,s:s,s:f,s:f,s:b}", "stage", st_stage_names[c->th[k].stage],
                                            "metric", st_metric_names[c->th[k].metric], "thresholdMs",
                                            ms(c->th[k].limit), "valueMs", ms(r->th_value[k]), "passed",
                                            r->th_pass[k]));
    json_t *rss = json_object();
    if (r->rss_before >= 0)
        json_object_set_new(rss, "beforeBytes", json_real(r->rss_before));
    if (r->rss_after >= 0)
        json_object_set_new(rss, "afterBytes", json_real(r->rss_after));
    if (r->rss_peak >= 0)
        json_object_set_new(rss, "peakSampledBytes", json_real(r->rss_peak));
    json_t *doc = json_object();
#define SET(k, v) json_object_set_new(doc, k, v)
    SET("metricName", json_string("jobSummary"));
    SET("run", json_string(r->run));
    SET("exitCode", json_integer(r->exit_code));
    SET("passed", json_boolean(r->exit_code == 0));
    SET("timestamp", json_real(r->start));
    SET("endTimestamp", json_real(r->end));
    SET("elapsedSeconds", json_real(r->end - r->start));
    SET("config", st_config_json(c));
    SET("serverVersion", r->version ? json_incref(r->version) : json_null());
    SET("serverRSS", rss);
    SET("stages", stages);
    SET("quantiles", quant);
    SET("api", api);
    SET("thresholds", th);
    SET("throughput",
        json_pack("{s:I,s:I,s:I,s:i,s:i,s:f,s:f,s:f,s:f}", "podsExpected", (json_int_t)r->pods_expected, "podsSeen",
                  (json_int_t)r->pods_seen, "podsReady", (json_int_t)r->pods_ready, "deploymentsCreated",
                  r->deployments_created, "deploymentsAvailable", r->deployments_available,
                  "averagePodsReadyPerSecond", r->avg_rate, "peakPodsReadyPerSecond", r->peak_rate, "firstReadyMs",
                  ms(r->first_ready), "lastReadyMs", ms(r->last_ready)));
    SET("series", series_json(r));
    SET("stuck", json_pack("{s:I,s:O,s:O}", "count", (json_int_t)r->stuck, "byReason", r->stuck_reasons,
                           "examples", r->stuck_examples));
    SET("churn", r->churn ? json_incref(r->churn) : json_null());
    SET("cleanup", r->cleanup ? json_incref(r->cleanup) : json_null());
    SET("executionErrors", r->errors ? json_incref(r->errors) : json_array());
    SET("watch", json_pack("{s:I,s:I,s:I,s:I}", "events", (json_int_t)s->events, "bookmarks",
                           (json_int_t)s->bookmarks, "relists", (json_int_t)s->relists, "errors",
                           (json_int_t)s->watch_errors));
    SET("outcome", json_pack("{s:b,s:b,s:f,s:I}", "timedOut", r->timed_out, "interrupted", r->interrupted,
                             "errorRate", r->error_rate, "stuckPods", (json_int_t)r->stuck));
    SET("deployments", deployments_json(s));
    SET("pods", pods_json(s));
#undef SET
    return doc;
}

/* ---------- text ---------- */

static void fmt_bytes(double b, char *out, size_t n)
{
    if (b < 0)
        snprintf(out, n, "n/a");
    else
        snprintf(out, n, "%.1f MiB", b / (1024.0 * 1024.0));
}

void st_report_text(FILE *f, const struct st_config *c, const struct st_result *r)
{
    const char *ver = json_string_value(json_object_get(r->version, "gitVersion"));
    fprintf(f, "kubec stress run %s: %d Deployments x %d replicas, %d namespace(s), concurrency %d; server %s\n\n",
            r->run, c->deployments, c->replicas, c->namespaces, c->concurrency, ver ? ver : "?");
    fprintf(f, "%-18s %7s %9s %9s %9s %9s %9s\n", "STAGE", "COUNT", "P50", "P90", "P99", "MAX", "AVG");
    for (int st = 0; st < ST_NSTAGES; st++) {
        const struct st_summary *s = &r->stage[st];
        fprintf(f, "%-18s %7zu", st_stage_names[st], s->count);
        for (int m = 0; m < ST_NMETRICS; m++) {
            char d[24];
            st_fmt_dur(s->count ? s->v[m] : -1, d, sizeof d);
            fprintf(f, " %9s", d);
        }
        fputc('\n', f);
    }
    fprintf(f, "(latency from each Deployment's create request; Available per Deployment)\n\n");
    fprintf(f, "Pods Ready: %zu/%zu; Deployments Available: %d/%d\n", r->pods_ready, r->pods_expected,
            r->deployments_available, c->deployments);
    fprintf(f, "Throughput: average %.1f pods Ready/s (last Ready at %.2fs), peak %.0f pods/s (1 s window)\n",
            r->avg_rate, r->last_ready, r->peak_rate);
    char b[32], a[32], p[32];
    fmt_bytes(r->rss_before, b, sizeof b);
    fmt_bytes(r->rss_after, a, sizeof a);
    fmt_bytes(r->rss_peak, p, sizeof p);
    fprintf(f, "Server RSS: before %s, after %s, peak sampled %s\n\n", b, a, p);
    fprintf(f, "%-17s %8s %9s %9s %9s %9s %6s %9s %7s\n", "API (client)", "REQUESTS", "P50", "P90", "P99", "MAX",
            "429", "CONFLICT", "ERRORS");
    for (int v = 0; v < ST_NVERBS; v++) {
        const struct st_apisum *x = &r->api[v];
        if (!x->total)
            continue;
        fprintf(f, "%-17s %8llu", st_verb_names[v], (unsigned long long)x->total);
        for (int m = ST_P50; m <= ST_MAX; m++) {
            char d[24];
            st_fmt_dur(x->s.v[m], d, sizeof d);
            fprintf(f, " %9s", d);
        }
        fprintf(f, " %6llu %9llu %7llu\n", (unsigned long long)x->throttled, (unsigned long long)x->conflicts,
                (unsigned long long)x->errors);
    }
    for (int k = 0; k < c->nth; k++) {
        char v[24], l[24];
        st_fmt_dur(r->th_value[k], v, sizeof v);
        st_fmt_dur(c->th[k].limit, l, sizeof l);
        fprintf(f, "%sthreshold %s %s <= %s: %s (%s)\n", k ? "" : "\n", st_stage_names[c->th[k].stage],
                st_metric_names[c->th[k].metric], l, r->th_pass[k] ? "ok" : "BREACHED", v);
    }
    if (r->churn) {
        fprintf(f, "\nChurn:");
        const char *k;
        json_t *ph;
        json_object_foreach(r->churn, k, ph) fprintf(f, " %s %.2fs%s", k,
                                                     json_real_value(json_object_get(ph, "seconds")),
                                                     json_is_true(json_object_get(ph, "complete")) ? "" : " (incomplete)");
        fputc('\n', f);
    }
}

void st_report_result(FILE *f, const struct st_result *r)
{
    static const char *const outcome[] = {"PASSED", "FAILED: thresholds breached", "FAILED: API errors",
                                          "FAILED: incomplete (stuck pods, timeout, or cleanup)"};
    json_t *cl = r->cleanup;
    if (cl)
        fprintf(f, "\nCleanup: %s in %.2fs\n", json_is_true(json_object_get(cl, "complete")) ? "done" : "NOT complete",
                json_real_value(json_object_get(cl, "seconds")));
    fprintf(f, "\nResult: %s (exit %d)\n", outcome[r->exit_code >= 0 && r->exit_code <= 3 ? r->exit_code : 3],
            r->exit_code);
}

/* ---------- HTML ---------- */

static void esc(struct kc_buf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': kc_buf_puts(b, "&lt;"); break;
        case '>': kc_buf_puts(b, "&gt;"); break;
        case '&': kc_buf_puts(b, "&amp;"); break;
        case '"': kc_buf_puts(b, "&quot;"); break;
        default: kc_buf_putc(b, *s);
        }
    }
}

#define W 420
#define H 220
#define ML 56
#define MR 12
#define MT 26
#define MB 34
#define PW (W - ML - MR)
#define PH (H - MT - MB)

static void svg_open(struct kc_buf *b, const char *id, const char *cls, const char *title)
{
    kc_buf_printf(b,
                  "<svg id=\"%s\" class=\"%s\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                  "viewBox=\"0 0 %d %d\" role=\"img\"><title>",
                  id, cls, W, H, W, H);
    esc(b, title);
    kc_buf_printf(b, "</title><rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>"
                     "<text x=\"%d\" y=\"16\" class=\"t\">",
                  W, H, ML);
    esc(b, title);
    kc_buf_printf(b, "</text><line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"ax\"/>"
                     "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"ax\"/>",
                  ML, MT, ML, MT + PH, ML, MT + PH, ML + PW, MT + PH);
}

static void axis_labels(struct kc_buf *b, const char *x0, const char *x1, const char *y1, const char *xname)
{
    kc_buf_printf(b, "<text x=\"%d\" y=\"%d\" class=\"l\">%s</text>", ML, MT + PH + 14, x0);
    kc_buf_printf(b, "<text x=\"%d\" y=\"%d\" class=\"l\" text-anchor=\"end\">%s</text>", ML + PW, MT + PH + 14, x1);
    kc_buf_printf(b, "<text x=\"%d\" y=\"%d\" class=\"l\" text-anchor=\"middle\">%s</text>", ML + PW / 2,
                  MT + PH + 28, xname);
    kc_buf_printf(b, "<text x=\"%d\" y=\"%d\" class=\"l\" text-anchor=\"end\">%s</text>", ML - 4, MT + 8, y1);
    kc_buf_printf(b, "<text x=\"%d\" y=\"%d\" class=\"l\" text-anchor=\"end\">0</text>", ML - 4, MT + PH);
}

/* Histogram of one stage's latencies with P50 / P99 markers. */
static void svg_hist(struct kc_buf *b, int st, const double *v, size_t n, const struct st_summary *s)
{
    char id[64], title[96];
    snprintf(id, sizeof id, "lat-%s", st_stage_names[st]);
    snprintf(title, sizeof title, "%s latency (%zu %s)", st_stage_names[st], n, st == ST_AVAILABLE ? "Deployments" : "pods");
    svg_open(b, id, "stage-hist", title);
    if (!n) {
        kc_buf_printf(b, "<text x=\"%d\" y=\"%d\" class=\"l\">no samples</text></svg>\n", ML + 10, MT + PH / 2);
        return;
    }
    double lo = v[0] < 0 ? v[0] : 0, hi = v[n - 1] > lo ? v[n - 1] : lo + 1e-3;
    size_t cnt[HIST_BINS] = {0}, top = 1;
    for (size_t i = 0; i < n; i++) {
        size_t k = (size_t)((v[i] - lo) / (hi - lo) * HIST_BINS);
        if (k >= HIST_BINS)
            k = HIST_BINS - 1;
        if (++cnt[k] > top)
            top = cnt[k];
    }
    double bw = (double)PW / HIST_BINS;
    for (int k = 0; k < HIST_BINS; k++) {
        if (!cnt[k])
            continue;
        double h = (double)cnt[k] / (double)top * PH;
        kc_buf_printf(b, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>", ML + k * bw + 0.5,
                      MT + PH - h, bw - 1, h);
    }
    static const int marks[] = {ST_P50, ST_P99};
    for (int m = 0; m < 2; m++) {
        double x = ML + (s->v[marks[m]] - lo) / (hi - lo) * PW;
        char d[24];
        st_fmt_dur(s->v[marks[m]], d, sizeof d);
        bool right = x > ML + PW - 90; /* near the right edge: label on the line's left */
        kc_buf_printf(b,
                      "<line class=\"q\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>"
                      "<text class=\"l\" x=\"%.1f\" y=\"%d\" text-anchor=\"%s\">%s %s</text>",
                      x, MT, x, MT + PH, right ? x - 3 : x + 3, MT + 10 + 11 * m, right ? "end" : "start",
                      st_metric_names[marks[m]], d);
    }
    char x0[24], x1[24], y1[24];
    st_fmt_dur(lo, x0, sizeof x0);
    st_fmt_dur(hi, x1, sizeof x1);
    snprintf(y1, sizeof y1, "%zu", top);
    axis_labels(b, x0, x1, y1, "latency from the Deployment's create request");
    kc_buf_puts(b, "</svg>\n");
}

static void svg_ready(struct kc_buf *b, const struct st_result *r)
{
    svg_open(b, "ready-over-time", "series", "Pods Ready over time");
    size_t n = r->nready_rel;
    double span = r->last_ready > 0 ? r->last_ready : 1;
    if (n) {
        size_t step = n > MAX_PLOT_POINTS ? (n + MAX_PLOT_POINTS - 1) / MAX_PLOT_POINTS : 1;
        kc_buf_printf(b, "<polyline class=\"line\" points=\"%d,%d", ML, MT + PH);
        for (size_t i = 0; i < n; i += step) {
            double t = r->ready_rel[i] < 0 ? 0 : r->ready_rel[i];
            kc_buf_printf(b, " %.1f,%.1f", ML + t / span * PW, MT + PH - (double)(i + 1) / (double)n * PH);
        }
        kc_buf_printf(b, " %d,%d\"/>", ML + PW, MT);
    }
    char x1[24], y1[24];
    st_fmt_dur(span, x1, sizeof x1);
    snprintf(y1, sizeof y1, "%zu", n);
    axis_labels(b, "0", x1, y1, "time since the first create request");
    kc_buf_puts(b, "</svg>\n");
}

static void svg_rate(struct kc_buf *b, const struct st_result *r)
{
    svg_open(b, "rate-over-time", "series", "Pods Ready per second over time");
    double w = rate_bin(r->last_ready);
    size_t counts[MAX_RATE_BINS + 1] = {0};
    size_t nb = rate_bins(r, w, counts), top = 1;
    for (size_t k = 0; k < nb; k++)
        if (counts[k] > top)
            top = counts[k];
    double bw = nb ? (double)PW / (double)nb : PW;
    for (size_t k = 0; k < nb; k++) {
        double h = (double)counts[k] / (double)top * PH;
        kc_buf_printf(b, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>",
                      ML + (double)k * bw + 0.5, MT + PH - h, bw > 1.5 ? bw - 1 : bw, h);
    }
    char x1[24], y1[32], name[80];
    st_fmt_dur(nb * w, x1, sizeof x1);
    snprintf(y1, sizeof y1, "%.0f/s", (double)top / w);
    snprintf(name, sizeof name, "time since the first create request (bins of %gs)", w);
    axis_labels(b, "0", x1, y1, name);
    kc_buf_puts(b, "</svg>\n");
}

static void html_table_row(struct kc_buf *b, const char *name, const struct st_summary *s)
{
    kc_buf_printf(b, "<tr><td>%s</td><td>%zu</td>", name, s->count);
    for (int m = 0; m < ST_NMETRICS; m++) {
        char d[24];
        st_fmt_dur(s->count ? s->v[m] : -1, d, sizeof d);
        kc_buf_printf(b, "<td>%s</td>", d);
    }
    kc_buf_puts(b, "</tr>");
}

char *st_report_html(const struct st_config *c, const struct st_result *r, json_t *doc)
{
    struct kc_buf b;
    kc_buf_init(&b, KC_BUF_UNLIMITED);
    const char *ver = json_string_value(json_object_get(r->version, "gitVersion"));
    kc_buf_printf(&b,
                  "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>kubec stress %s</title>"
                  "<style>body{font:14px sans-serif;margin:20px;color:#222}table{border-collapse:collapse;margin:8px 0}"
                  "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
                  ".plots{display:flex;flex-wrap:wrap;gap:10px}svg{border:1px solid #ddd}"
                  "svg .ax{stroke:#444}svg .bar{fill:#4a7fc1}svg .line{fill:none;stroke:#c14a4a;stroke-width:2}"
                  "svg .q{stroke:#c14a4a;stroke-dasharray:4 3}svg .t{font:bold 13px sans-serif}svg .l{font:11px sans-serif;fill:#333}"
                  ".fail{color:#b00;font-weight:bold}.ok{color:#070}</style></head><body>\n",
                  r->run);
    kc_buf_printf(&b, "<h1>kubec stress run %s</h1><p>%d Deployments &times; %d replicas in %d namespace(s), "
                      "concurrency %d, image <code>",
                  r->run, c->deployments, c->replicas, c->namespaces, c->concurrency);
    esc(&b, c->image);
    kc_buf_puts(&b, "</code>; server ");
    esc(&b, ver ? ver : "?");
    kc_buf_printf(&b, ". Result: <span class=\"%s\">exit %d</span>. Pods Ready %zu/%zu, Deployments Available "
                      "%d/%d; throughput average %.1f pods/s, peak %.0f pods/s.</p>\n",
                  r->exit_code ? "fail" : "ok", r->exit_code, r->pods_ready, r->pods_expected,
                  r->deployments_available, c->deployments, r->avg_rate, r->peak_rate);
    kc_buf_puts(&b, "<h2>Per-stage latency</h2><table id=\"stages\"><tr><th>stage</th><th>count</th><th>P50</th>"
                    "<th>P90</th><th>P99</th><th>max</th><th>avg</th></tr>");
    for (int st = 0; st < ST_NSTAGES; st++)
        html_table_row(&b, st_stage_names[st], &r->stage[st]);
    kc_buf_puts(&b, "</table>\n<div class=\"plots\">\n");
    for (int st = 0; st < ST_NSTAGES; st++)
        svg_hist(&b, st, r->vals[st], r->nvals[st], &r->stage[st]);
    kc_buf_puts(&b, "</div>\n<h2>Throughput</h2><div class=\"plots\">\n");
    svg_ready(&b, r);
    svg_rate(&b, r);
    kc_buf_puts(&b, "</div>\n<h2>API calls (client side)</h2><table id=\"api\"><tr><th>verb</th><th>count</th>"
                    "<th>P50</th><th>P90</th><th>P99</th><th>max</th><th>avg</th></tr>");
    for (int v = 0; v < ST_NVERBS; v++)
        if (r->api[v].total)
            html_table_row(&b, st_verb_names[v], &r->api[v].s);
    kc_buf_puts(&b, "</table>\n");
    if (c->nth) {
        kc_buf_puts(&b, "<h2>Thresholds</h2><ul>");
        for (int k = 0; k < c->nth; k++) {
            char v[24], l[24];
            st_fmt_dur(r->th_value[k], v, sizeof v);
            st_fmt_dur(c->th[k].limit, l, sizeof l);
            kc_buf_printf(&b, "<li class=\"%s\">%s %s %s (limit %s)</li>", r->th_pass[k] ? "ok" : "fail",
                          st_stage_names[c->th[k].stage], st_metric_names[c->th[k].metric], v, l);
        }
        kc_buf_puts(&b, "</ul>\n");
    }
    if (r->stuck) {
        kc_buf_printf(&b, "<h2 class=\"fail\">%zu stuck pods</h2><ul>", r->stuck);
        const char *reason;
        json_t *n;
        json_object_foreach(r->stuck_reasons, reason, n)
        {
            kc_buf_puts(&b, "<li>");
            esc(&b, reason);
            kc_buf_printf(&b, ": %lld</li>", (long long)json_integer_value(n));
        }
        kc_buf_puts(&b, "</ul>\n");
    }
    /* everything else: the report's summary fields, minus the per-object arrays */
    json_t *brief = kc_json_copy(doc);
    json_object_del(brief, "pods");
    json_object_del(brief, "deployments");
    json_object_del(brief, "series");
    char *s = json_dumps(brief, JSON_INDENT(1));
    json_decref(brief);
    kc_buf_puts(&b, "<h2>Summary (report.json without the per-object lists)</h2><pre id=\"summary\">");
    esc(&b, s ? s : "");
    free(s);
    kc_buf_puts(&b, "</pre></body></html>\n");
    return kc_buf_steal(&b, NULL);
}

static int write_file(const char *dir, const char *name, const char *data, struct kc_err *err)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return kc_err_set(err, KC_EIO, 0, "InternalError", "%s: %s", path, strerror(errno));
    size_t n = strlen(data);
    bool ok = fwrite(data, 1, n, f) == n;
    ok &= fclose(f) == 0;
    return ok ? 0 : kc_err_set(err, KC_EIO, 0, "InternalError", "%s: write failed", path);
}

int st_report_write(const char *dir, const struct st_config *c, const struct st_result *r, json_t *doc,
                    struct kc_err *err)
{
    if (mkdir(dir, 0755) && errno != EEXIST)
        return kc_err_set(err, KC_EIO, 0, "InternalError", "--report %s: %s", dir, strerror(errno));
    char *js = json_dumps(doc, JSON_INDENT(1));
    char *html = st_report_html(c, r, doc);
    int rc = !js || !html ? kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory")
                          : write_file(dir, "report.json", js, err);
    if (!rc)
        rc = write_file(dir, "report.html", html, err);
    free(js);
    free(html);
    return rc;
}
