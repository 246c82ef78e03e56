/* runc_logsrv.c — the agent's HTTPS API for container logs (see runc_logsrv.h for the contract).
 *
 * libmicrohttpd, thread per connection, TLS from a self-signed certificate made here with OpenSSL.
 * A log response is a socketpair: a feeder thread runs kc_runc_read_log writing into one end
 * (send with MSG_NOSIGNAL, so a client that leaves ends the feeder instead of killing the process),
 * and MHD streams the other end (MHD_create_response_from_pipe) until EOF.
 */
#include "agent/runc_logsrv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/runtime.h"

#define TOKEN_HEX 64
#define MAX_SANS 16

struct kc_logsrv {
    struct MHD_Daemon *d;
    int port;
    char token[TOKEN_HEX + 8];
    char *cert_pem, *key_pem;
    struct kc_logsrv_opts o;
};

/* ---------- files, token, certificate ---------- */

static char *read_text(const char *path, size_t max)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    char *b = calloc(1, max + 1);
    size_t n = b ? fread(b, 1, max, f) : 0;
    fclose(f);
    if (b)
        b[n] = 0;
    return b;
}

static int write_private(const char *path, const char *data, struct kc_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return kc_err_set(err, KC_EIO, 0, "InternalError", "write %.300s: %s", path, strerror(errno));
    size_t n = strlen(data);
    bool ok = write(fd, data, n) == (ssize_t)n;
    ok = !close(fd) && ok;
    return ok ? 0 : kc_err_set(err, KC_EIO, 0, "InternalError", "write %.300s", path);
}

static int load_token(struct kc_logsrv *s, const char *dir, struct kc_err *err)
{
    if (s->o.token && *s->o.token) {
        snprintf(s->token, sizeof s->token, "%.*s", TOKEN_HEX, s->o.token);
        return 0;
    }
    char path[600];
    snprintf(path, sizeof path, "%.500s/kubelet-token", dir);
    char *t = read_text(path, TOKEN_HEX);
    if (t && strlen(t) >= 32) {
        t[strcspn(t, "\r\n")] = 0;
        snprintf(s->token, sizeof s->token, "%s", t);
        free(t);
        return 0;
    }
    free(t);
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return kc_err_set(err, KC_EIO, 0, "InternalError", "no random bytes for the serving token");
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(s->token + 2 * i, 3, "%02x", raw[i]);
    return write_private(path, s->token, err);
}

static char *pem_of(int (*wr)(BIO *, void *), void *obj)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (b && wr(b, obj) > 0) {
        char *p;
        long n = BIO_get_mem_data(b, &p);
        out = n > 0 ? strndup(p, (size_t)n) : NULL;
    }
    BIO_free(b);
    return out;
}

static int wr_cert(BIO *b, void *x) { return PEM_write_bio_X509(b, x); }
static int wr_key(BIO *b, void *k) { return PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL); }

static int add_ext(X509 *x, int nid, const char *val)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, val);
    int ok = e && X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok;
}

/* Self-signed EC P-256 serving certificate valid for a year. */
static int make_cert(struct kc_logsrv *s, struct kc_err *err)
{
    char sans[2048] = "IP:127.0.0.1,DNS:localhost";
    char host[256] = "";
    if (!gethostname(host, sizeof host - 1) && *host && strlen(sans) + strlen(host) + 8 < sizeof sans)
        snprintf(sans + strlen(sans), sizeof sans - strlen(sans), ",DNS:%s", host);
    for (int i = 0; s->o.sans && s->o.sans[i] && i < MAX_SANS; i++) {
        struct in_addr a;
        const char *v = s->o.sans[i];
        if (strlen(sans) + strlen(v) + 8 < sizeof sans && strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789.-:") == strlen(v))
            snprintf(sans + strlen(sans), sizeof sans - strlen(sans), ",%s:%s", inet_pton(AF_INET, v, &a) == 1 ? "IP" : "DNS",
                     v);
    }
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    unsigned char serial[16];
    BIGNUM *bn = NULL;
    int ok = key && x && RAND_bytes(serial, sizeof serial) == 1;
    if (ok) {
        serial[0] &= 0x7f;
        bn = BN_bin2bn(serial, sizeof serial, NULL);
        X509_NAME *n = X509_get_subject_name(x);
        ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) && X509_set_version(x, X509_VERSION_3) &&
             X509_gmtime_adj(X509_getm_notBefore(x), -3600) && X509_gmtime_adj(X509_getm_notAfter(x), 365L * 86400) &&
             X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"kubec", -1, -1, 0) &&
             X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"kubec-agent", -1, -1, 0) &&
             X509_set_issuer_name(x, n) && X509_set_pubkey(x, key) && add_ext(x, NID_basic_constraints, "critical,CA:FALSE") &&
             add_ext(x, NID_ext_key_usage, "serverAuth") && add_ext(x, NID_subject_alt_name, sans) &&
             X509_sign(x, key, EVP_sha256()) > 0;
    }
    if (ok) {
        s->cert_pem = pem_of(wr_cert, x);
        s->key_pem = pem_of(wr_key, key);
        ok = s->cert_pem && s->key_pem;
    }
    BN_free(bn);
    X509_free(x);
    EVP_PKEY_free(key);
    return ok ? 0 : kc_err_set(err, KC_EIO, 0, "InternalError", "cannot create the agent's serving certificate");
}

static int load_or_make_cert(struct kc_logsrv *s, const char *dir, struct kc_err *err)
{
    char cp[600], kp[600];
    snprintf(cp, sizeof cp, "%.500s/kubelet.crt", dir);
    snprintf(kp, sizeof kp, "%.500s/kubelet.key", dir);
    s->cert_pem = read_text(cp, 64 * 1024);
    s->key_pem = read_text(kp, 64 * 1024);
    if (s->cert_pem && s->key_pem && strstr(s->cert_pem, "BEGIN CERTIFICATE")) {
        BIO *b = BIO_new_mem_buf(s->cert_pem, -1);
        X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
        bool fresh = x && X509_cmp_time(X509_get0_notAfter(x), NULL) > 0;
        X509_free(x);
        BIO_free(b);
        if (fresh)
            return 0;
    }
    free(s->cert_pem);
    free(s->key_pem);
    s->cert_pem = s->key_pem = NULL;
    int rc = make_cert(s, err);
    if (!rc)
        rc = write_private(kp, s->key_pem, err);
    if (!rc)
        rc = write_private(cp, s->cert_pem, err);
    return rc;
}

/* ---------- requests ---------- */

struct feed {
    int fd;
    char uid[64], ctr[64];
    struct kc_log_req q;
    void *rt;
};

static int feed_write(void *ctx, const char *p, size_t n)
{
    struct feed *f = ctx;
    if (!n) { /* "still there?" */
        struct pollfd pf = {.fd = f->fd, .events = POLLOUT};
        return poll(&pf, 1, 0) == 1 && (pf.revents & (POLLHUP | POLLERR)) ? 1 : 0;
    }
    while (n) {
        ssize_t w = send(f->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return 1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void *feed_main(void *arg)
{
    struct feed *f = arg;
    struct kc_err err = {0};
    f->q.pod_uid = f->uid;
    f->q.container = f->ctr;
    kc_runc_read_log(f->rt, &f->q, feed_write, f, &err);
    close(f->fd);
    free(f);
    return NULL;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *reason, const char *msg)
{
    char body[1400];
    /* a Kubernetes Status, as the kubelet's errors are forwarded by the API server */
    json_t *st = json_pack("{s:s,s:s,s:{},s:s,s:s,s:s,s:i}", "kind", "Status", "apiVersion", "v1", "metadata",
                           "status", "Failure", "message", msg, "reason", reason, "code", (int)code);
    char *s = json_dumps(st, JSON_COMPACT);
    snprintf(body, sizeof body, "%s", s ? s : "{}");
    free(s);
    json_decref(st);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (code == 401)
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"kubec-agent\"");
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static bool authorized(struct kc_logsrv *s, struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7))
        return false;
    const char *t = h + 7;
    size_t n = strlen(s->token);
    if (strlen(t) != n)
        return false;
    unsigned char d = 0; /* constant time */
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(t[i] ^ s->token[i]);
    return d == 0;
}

static bool qbool(struct MHD_Connection *c, const char *k)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, k);
    return v && (!strcmp(v, "true") || !strcmp(v, "1"));
}

static int64_t qint(struct MHD_Connection *c, const char *k)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, k);
    if (!v || !*v)
        return -1;
    char *end;
    long long x = strtoll(v, &end, 10);
    return *end || x < 0 ? -2 : (int64_t)x;
}

static bool seg_ok(const char *s, size_t n)
{
    return n > 0 && n < 254 && !(n == 1 && s[0] == '.') && !(n == 2 && s[0] == '.' && s[1] == '.');
}

static enum MHD_Result container_logs(struct kc_logsrv *s, struct MHD_Connection *c, const char *rest)
{
    char part[3][254];
    const char *p = rest;
    for (int i = 0; i < 3; i++) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (!seg_ok(p, n) || (i < 2 && !e) || (i == 2 && e))
            return reply(c, 404, "NotFound", "expected /containerLogs/<namespace>/<pod>/<container>");
        memcpy(part[i], p, n);
        part[i][n] = 0;
        p = e ? e + 1 : p + n;
    }
    int64_t tail = qint(c, "tailLines"), limit = qint(c, "limitBytes");
    if (tail < -1 || limit < -1)
        return reply(c, 400, "BadRequest", "tailLines and limitBytes must be non-negative integers");
    struct feed *f = calloc(1, sizeof *f);
    if (!f)
        return reply(c, 500, "InternalError", "out of memory");
    if (s->o.pod_uid(s->o.ctx, part[0], part[1], f->uid, sizeof f->uid)) {
        free(f);
        char msg[600];
        snprintf(msg, sizeof msg, "pod %s/%s is not on this node", part[0], part[1]);
        return reply(c, 404, "NotFound", msg);
    }
    snprintf(f->ctr, sizeof f->ctr, "%.63s", part[2]);
    f->rt = s->o.runtime;
    f->q = (struct kc_log_req){.previous = qbool(c, "previous"), .follow = qbool(c, "follow"),
                               .timestamps = qbool(c, "timestamps"), .tail_lines = tail, .limit_bytes = limit};
    /* Fail early (404) when there is nothing: a probe read with limit 0. */
    f->fd = -1;
    struct kc_log_req probe = f->q;
    probe.pod_uid = f->uid;
    probe.container = f->ctr;
    probe.follow = false;
    probe.limit_bytes = 0;
    struct kc_err err = {0};
    int rc = kc_runc_read_log(s->o.runtime, &probe, feed_write, f, &err);
    if (rc) {
        free(f);
        return reply(c, rc == KC_ENOTFOUND ? 404 : 400, rc == KC_ENOTFOUND ? "NotFound" : "BadRequest", err.message);
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        free(f);
        return reply(c, 500, "InternalError", "socketpair failed");
    }
    f->fd = sv[1];
    struct MHD_Response *r = MHD_create_response_from_pipe(sv[0]);
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (!r || pthread_create(&t, &at, feed_main, f)) {
        pthread_attr_destroy(&at);
        if (r)
            MHD_destroy_response(r);
        else
            close(sv[0]);
        close(sv[1]);
        free(f);
        return reply(c, 500, "InternalError", "cannot stream the log");
    }
    pthread_attr_destroy(&at);
    MHD_add_response_header(r, "Content-Type", "text/plain");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version, (void)upload;
    struct kc_logsrv *s = cls;
    if (!*con_cls) { /* headers only on the first call */
        *con_cls = s;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (!authorized(s, c))
        return reply(c, 401, "Unauthorized", "Unauthorized");
    if (strcmp(method, "GET"))
        return reply(c, 405, "MethodNotAllowed", "only GET is served");
    if (!strcmp(url, "/healthz")) {
        struct MHD_Response *r = MHD_create_response_from_buffer(2, (void *)"ok", MHD_RESPMEM_PERSISTENT);
        enum MHD_Result ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (!strncmp(url, "/containerLogs/", 15))
        return container_logs(s, c, url + 15);
    return reply(c, 404, "NotFound", "the server could not find the requested resource");
}

/* ---------- start / stop ---------- */

int kc_logsrv_start(const struct kc_logsrv_opts *o, struct kc_logsrv **out, struct kc_err *err)
{
    if (!o || !o->pki_dir || !o->pod_uid || !o->runtime)
        return kc_err_set(err, KC_EINVAL, 0, "BadRequest", "log server: pki dir, pod lookup and runtime required");
    if (!MHD_is_feature_supported(MHD_FEATURE_TLS))
        return kc_err_set(err, KC_EIO, 0, "InternalError", "libmicrohttpd was built without TLS");
    struct kc_logsrv *s = calloc(1, sizeof *s);
    if (!s)
        return kc_err_set(err, KC_ENOMEM, 0, "InternalError", "out of memory");
    s->o = *o;
    mkdir(o->pki_dir, 0700);
    int rc = load_token(s, o->pki_dir, err);
    if (!rc)
        rc = load_or_make_cert(s, o->pki_dir, err);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(o->port < 0 ? 10250 : o->port))};
    if (!rc && inet_pton(AF_INET, o->listen_addr && *o->listen_addr ? o->listen_addr : "0.0.0.0", &sa.sin_addr) != 1)
        rc = kc_err_set(err, KC_EINVAL, 0, "BadRequest", "bad listen address %.100s", o->listen_addr);
    if (!rc) {
        s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS |
                                    MHD_USE_POLL,
                                0, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                                MHD_OPTION_HTTPS_MEM_KEY, s->key_pem, MHD_OPTION_HTTPS_MEM_CERT, s->cert_pem,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)0, MHD_OPTION_CONNECTION_LIMIT, (unsigned)256,
                                MHD_OPTION_END);
        if (!s->d)
            rc = kc_err_set(err, KC_EIO, 0, "InternalError", "cannot listen on %s:%d (in use?)",
                            o->listen_addr ? o->listen_addr : "0.0.0.0", o->port < 0 ? 10250 : o->port);
    }
    if (rc) {
        kc_logsrv_stop(s);
        return rc;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : o->port;
    *out = s;
    return 0;
}

int kc_logsrv_port(const struct kc_logsrv *s) { return s ? s->port : 0; }
const char *kc_logsrv_token(const struct kc_logsrv *s) { return s ? s->token : NULL; }
const char *kc_logsrv_cert(const struct kc_logsrv *s) { return s ? s->cert_pem : NULL; }

void kc_logsrv_stop(struct kc_logsrv *s)
{
    if (!s)
        return;
    if (s->d)
        MHD_stop_daemon(s->d);
    free(s->cert_pem);
    free(s->key_pem);
    free(s);
}
