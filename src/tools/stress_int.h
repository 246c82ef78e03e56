/* stress_int.h — internals of `kubec stress` shared by its files (not a public API).
 *
 *   stress_config.c  flags and job file → struct st_config; durations, thresholds, requests
 *   stress_stats.c   quantiles, throughput, timeline annotation parsing (pure functions, unit-tested)
 *   stress_api.c     instrumented API calls: client-side latency per verb, 429 / conflict / error counts
 *   stress_watch.c   the three label-selected watches (pods, replicasets, deployments) → per-object records
 *   stress_report.c  text summary, report.json, report.html with inline SVG
 *   stress.c         the run: namespaces, creators, progress, churn, thresholds, stuck pods, cleanup
 *
 * Times: every stage time is a wall-clock double (seconds since the epoch, microsecond precision) so
 * server timeline stamps and client observations compare directly; latencies are stage time minus the
 * moment the client sent the Deployment's create request.
 */
#ifndef KC_TOOLS_STRESS_INT_H
#define KC_TOOLS_STRESS_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "client/client.h"
#include "util/err.h"
#include "util/map.h"

#define ST_RUN_LABEL "kubec.io/stress-run"
#define ST_INDEX_LABEL "kubec.io/stress-index"
#define ST_TIMELINE_ANN "kubec.io/timeline"

#define ST_MAX_DEPLOYMENTS 100000
#define ST_MAX_REPLICAS 10000
#define ST_MAX_PODS 1000000 /* deployments × replicas */
#define ST_MAX_NAMESPACES 1000
#define ST_MAX_CONCURRENCY 512
#define ST_MAX_THRESHOLDS 32
#define ST_MAX_REQUESTS 8

/* ---------- stages ---------- */
enum st_stage {
    ST_ACCEPTED,  /* Deployment create accepted */
    ST_RS,        /* its ReplicaSet created */
    ST_POD,       /* Pod created */
    ST_SCHED,     /* Pod scheduled (bound) */
    ST_STARTED,   /* containers started */
    ST_READY,     /* Pod Ready */
    ST_AVAILABLE, /* Deployment Available (per Deployment) */
    ST_NSTAGES
};
extern const char *const st_stage_names[ST_NSTAGES];
/* Case-insensitive, with aliases (Accepted, RS, Created, Pod, ...). -1 if unknown. */
int st_stage_parse(const char *s);

/* where a stage time came from */
enum st_src { ST_SRC_NONE, ST_SRC_STAMP, ST_SRC_WATCH, ST_SRC_COND, ST_SRC_CLIENT, ST_NSRC };

enum st_metric { ST_P50, ST_P90, ST_P99, ST_MAX, ST_AVG, ST_NMETRICS };
extern const char *const st_metric_names[ST_NMETRICS]; /* "P50", ... */

struct st_threshold {
    int stage;     /* enum st_stage */
    int metric;    /* enum st_metric */
    double limit;  /* seconds */
};

struct st_request {
    char name[32];
    char value[32];
};

struct st_config {
    int deployments, replicas, namespaces, concurrency;
    double qps; /* creates/patches/deletes a second; 0 = unlimited */
    char image[256];
    char churn_image[256];
    struct st_request requests[ST_MAX_REQUESTS];
    int nrequests;
    char priority_class[254];
    char spread[254]; /* topology key; "" = none */
    double timeout;   /* seconds */
    double stuck_after; /* a run whose unready pods all wait on a failure reason this long ends early */
    double max_error_rate; /* errors / requests above this → exit 2 */
    bool keep, churn;
    bool json_out;
    char report_dir[1024];
    struct st_threshold th[ST_MAX_THRESHOLDS];
    int nth;
    char kubeconfig[1024];
    char job_file[1024];
};

/* "Ready:p99=2s,Scheduled:p99=500ms" appended to c->th. */
int st_parse_thresholds(struct st_config *c, const char *s, struct kc_err *err);
/* "cpu=10m,memory=16Mi" → c->requests. */
int st_parse_requests(struct st_config *c, const char *s, struct kc_err *err);
/* Defaults, then the job file (if -f), then flags. Returns 0, 1 for --help (printed), or KC_E*. */
int st_config_from_args(struct st_config *c, int argc, char **argv, struct kc_err *err);
void st_usage(FILE *f);
/* The configuration as JSON (for report.json). */
json_t *st_config_json(const struct st_config *c);

/* ---------- statistics ---------- */
struct st_summary {
    size_t count;
    double v[ST_NMETRICS]; /* seconds */
};
/* Sorts vals in place; nearest-rank quantiles. count 0 → all zero. */
void st_summarize(double *vals, size_t n, struct st_summary *out);
/* Largest number of events inside any window of width w (seconds); t sorted ascending. */
size_t st_peak_window(const double *t, size_t n, double w);
/* "2026-11-26T15:30:00.123456Z" → epoch seconds with the fraction; 0 or -1. */
int st_parse_time(const char *s, double *out);
/* Reads the kubec.io/timeline annotation of obj (metadata.annotations) into stamps indexed like names;
 * entries not present stay untouched. Returns how many stages it found. */
int st_timeline_get(json_t *obj, const char *const *names, size_t n, double *stamps);
/* "12.3ms", "1.52s", "850us" */
void st_fmt_dur(double s, char *out, size_t n);

/* ---------- API accounting ---------- */
enum st_verb { ST_V_CREATE, ST_V_GET, ST_V_LIST, ST_V_PATCH, ST_V_DELETE, ST_V_DELETECOLLECTION, ST_NVERBS };
extern const char *const st_verb_names[ST_NVERBS];

struct st_verbstat {
    double *lat; /* seconds, successful and failed calls alike */
    size_t n, cap;
    uint64_t total, ok, throttled, conflicts, errors;
};

struct st_api {
    struct kc_client *c;
    pthread_mutex_t mu;
    struct st_verbstat v[ST_NVERBS];
    /* token bucket for mutating calls (--qps) */
    double qps, tokens, last;
};
void st_api_init(struct st_api *a, struct kc_client *c, double qps);
void st_api_release(struct st_api *a);
/* One JSON call, timed and counted under verb. HTTP status in *code (0 = transport failure). Mutating
 * verbs wait for the --qps bucket first (the wait is not counted as latency). */
int st_api_call(struct st_api *a, enum st_verb verb, const char *method, const char *path, const char *ctype,
                json_t *body, json_t **out, int *code, struct kc_err *err);
/* Raw GET (e.g. /metrics), timed under ST_V_GET. Caller frees *body. */
int st_api_get_raw(struct st_api *a, const char *path, char **body, struct kc_err *err);
uint64_t st_api_errors(struct st_api *a, uint64_t *requests);

/* ---------- per-object records (filled by the watches) ---------- */
struct st_pod {
    char ns[64], name[254], node[254];
    int index;  /* Deployment index, -1 unknown */
    bool churn; /* created after the creation phase */
    bool ready, deleted;
    double t[ST_NSTAGES];  /* chosen stage time (epoch s), 0 = unknown */
    unsigned char src[ST_NSTAGES];
    double stamp[ST_NSTAGES], seen[ST_NSTAGES], cond[ST_NSTAGES];
    char reason[64]; /* why it is not Ready (waiting reason, Unschedulable, phase) */
};

struct st_deploy {
    char ns[64], name[64];
    double sent, accepted_client; /* create request sent / answered (client wall clock) */
    bool created, failed, available;
    double stamp[ST_NSTAGES], seen[ST_NSTAGES], cond[ST_NSTAGES];
    int64_t generation, observed; /* from the watch */
    int64_t want_gen;             /* generation of our last churn patch (from its answer) */
    int replicas, updated, ready_replicas, available_replicas;
};

struct st_state {
    pthread_mutex_t mu;
    struct st_deploy *d; /* [cfg.deployments] */
    int nd;
    struct kc_map pods; /* "ns/name" → struct st_pod* */
    size_t max_pods;
    atomic_int created, available, pods_ready, pods_seen;
    atomic_bool churn_phase;
    double last_ready; /* wall time of the last Ready transition (for stuck detection) */
    double *ready_times; /* creation-phase pods: when they turned Ready (arrival), for the progress rate */
    size_t nready_times, cap_ready_times;
    uint64_t events, bookmarks, relists, watch_errors;
};

struct st_watches;
/* Starts the three watches (all namespaces, labelSelector run label) after listing the current
 * resourceVersion, so no event of the run is missed. */
int st_watches_start(struct st_api *a, struct st_state *s, const char *run, struct st_watches **out,
                     struct kc_err *err);
void st_watches_stop(struct st_watches *w);
/* Fills t[] / src[] of every pod from stamp → watch arrival → condition, and the Deployment stages. */
void st_state_finalize(struct st_state *s);
void st_state_release(struct st_state *s);

double st_wall_now(void);

/* ---------- the report ---------- */
struct st_apisum {
    struct st_summary s;
    uint64_t total, ok, throttled, conflicts, errors;
};

struct st_result {
    char run[32];
    double start, end;        /* wall: first create sent, end of the measured phase */
    double create_phase_end;  /* when everything was Available (or the run stopped) */
    json_t *version;          /* /version body or NULL */
    double rss_before, rss_after, rss_peak; /* bytes, -1 unknown */
    struct st_summary stage[ST_NSTAGES];
    size_t stage_src[ST_NSTAGES][ST_NSRC];
    size_t stage_missing[ST_NSTAGES];
    size_t pods_expected, pods_seen, pods_ready;
    int deployments_created, deployments_available;
    double avg_rate, peak_rate, first_ready, last_ready; /* pods/s; seconds after start */
    struct st_apisum api[ST_NVERBS];
    double error_rate;
    /* thresholds evaluated */
    double th_value[ST_MAX_THRESHOLDS];
    bool th_pass[ST_MAX_THRESHOLDS];
    /* stuck pods */
    size_t stuck;
    json_t *stuck_reasons; /* {reason: count} */
    json_t *stuck_examples; /* [ "ns/name (node): reason" ] */
    bool timed_out, interrupted;
    json_t *churn;   /* phases, or NULL */
    json_t *cleanup; /* {seconds, complete, remaining} or NULL */
    json_t *errors;  /* execution errors (strings) */
    int exit_code;
    /* per-pod latencies for plots: vals[stage] sorted seconds */
    double *vals[ST_NSTAGES];
    size_t nvals[ST_NSTAGES];
    double *ready_rel; /* sorted Ready times relative to start */
    size_t nready_rel;
};

/* report.json document (every figure, the configuration, per-pod stages). */
json_t *st_report_json(const struct st_config *c, const struct st_result *r, struct st_state *s);
/* The summary (stages, throughput, RSS, API, thresholds, churn); st_report_result adds cleanup and the
 * outcome line once cleanup is over. */
void st_report_text(FILE *f, const struct st_config *c, const struct st_result *r);
void st_report_result(FILE *f, const struct st_result *r);
/* Writes DIR/report.json and DIR/report.html (creates DIR). */
int st_report_write(const char *dir, const struct st_config *c, const struct st_result *r, json_t *doc,
                    struct kc_err *err);
/* The HTML (with inline SVG) as a malloc'd string. */
char *st_report_html(const struct st_config *c, const struct st_result *r, json_t *doc);

#endif
