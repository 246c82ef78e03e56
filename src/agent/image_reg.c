/* image_reg.c — a client of the OCI distribution API v2 (GET manifests and blobs) over HTTPS.
 *
 * One struct kc_reg per pull: it keeps a libcurl easy handle (connections are reused between the
 * manifest and blob requests) and the Authorization header once obtained. Auth follows the registry's
 * WWW-Authenticate challenge on the first 401: "Basic" → the secret's username/password; "Bearer
 * realm=..,service=..,scope=.." → a token fetched from the realm (with the credentials if any).
 *
 * TLS: libcurl verifies against the system CAs; an SSL_CTX callback adds the per-registry CA file and
 * installs an OpenSSL verify callback that records the first failure (error, subject, issuer and
 * notAfter of the offending certificate) in r->tls, so that an expired certificate is reported with its
 * expiry date and an untrusted one with its issuer.
 *
 * Every failure is classified into a message a person understands (certificate expired, unknown
 * authority, unauthorized naming the secret, manifest unknown, unreachable, digest mismatch).
 * Threads: a kc_reg is used by one thread; the OpenSSL ex_data index is created once (pthread_once).
 */
#include "agent/image_int.h"
#include "util/jsonparse.h"

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ERRBODY_MAX (64 << 10)
#define TOKEN_MAX (64 << 10)
#define HDR_MAX 1024

static pthread_once_t ex_once = PTHREAD_ONCE_INIT;
static int ex_idx = -1;

static void ex_init(void)
{
    ex_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* What one request collects. */
struct sink {
    struct kc_buf *buf;      /* body (2xx) into memory, or */
    FILE *f;                 /* into a file */
    EVP_MD_CTX *md;          /* sha256 of the 2xx body */
    int64_t n, max;
    bool too_large;
    long status;
    struct kc_buf errbody;   /* body of an error response */
    char ctype[128], www_auth[HDR_MAX];
};

void kc_reg_init(struct kc_reg *r)
{
    memset(r, 0, sizeof *r);
    r->timeout_s = 30;
}

void kc_reg_release(struct kc_reg *r)
{
    if (r->curl)
        curl_easy_cleanup(r->curl);
    r->curl = NULL;
    free(r->authz);
    r->authz = NULL;
}

/* ---- TLS: extra CA and verification capture ---- */

static void asn1_time_str(const ASN1_TIME *t, char *out, size_t n)
{
    struct tm tm;
    if (!t || !ASN1_TIME_to_tm(t, &tm) || !strftime(out, n, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(out, n, "an unknown date");
}

static int verify_cb(int ok, X509_STORE_CTX *xs)
{
    if (ok)
        return ok;
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct kc_reg *r = ssl ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ex_idx) : NULL;
    if (r && !r->tls.error) {
        X509 *c = X509_STORE_CTX_get_current_cert(xs);
        r->tls.error = X509_STORE_CTX_get_error(xs);
        r->tls.depth = X509_STORE_CTX_get_error_depth(xs);
        if (c) {
            X509_NAME_oneline(X509_get_subject_name(c), r->tls.subject, sizeof r->tls.subject);
            X509_NAME_oneline(X509_get_issuer_name(c), r->tls.issuer, sizeof r->tls.issuer);
            asn1_time_str(X509_get0_notAfter(c), r->tls.not_after, sizeof r->tls.not_after);
        }
    }
    return ok;
}

static CURLcode ssl_ctx_cb(CURL *curl, void *sslctx, void *parm)
{
    struct kc_reg *r = parm;
    SSL_CTX *ctx = sslctx;
    SSL_CTX_set_ex_data(ctx, ex_idx, r);
    SSL_CTX_set_verify(ctx, SSL_CTX_get_verify_mode(ctx), verify_cb);
    if (!r->ca_present)
        return CURLE_OK;
    FILE *f = fopen(r->ca_file, "r");
    if (!f)
        return CURLE_OK; /* removed meanwhile: the verification failure will say so */
    X509_STORE *st = SSL_CTX_get_cert_store(ctx);
    X509 *c;
    while ((c = PEM_read_X509(f, NULL, NULL, NULL))) {
        X509_STORE_add_cert(st, c); /* a duplicate is harmless */
        X509_free(c);
    }
    ERR_clear_error();
    fclose(f);
    return CURLE_OK;
}

/* ---- one HTTP GET ---- */

static size_t hdr_cb(char *p, size_t sz, size_t nm, void *ud)
{
    struct sink *s = ud;
    size_t n = sz * nm;
    char line[HDR_MAX];
    size_t l = n < sizeof line - 1 ? n : sizeof line - 1;
    memcpy(line, p, l);
    line[l] = 0;
    line[strcspn(line, "\r\n")] = 0;
    if (strncmp(line, "HTTP/", 5) == 0) {
        const char *sp = strchr(line, ' ');
        s->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        s->ctype[0] = s->www_auth[0] = 0;
    } else if (strncasecmp(line, "content-type:", 13) == 0) {
        snprintf(s->ctype, sizeof s->ctype, "%s", line + 13 + strspn(line + 13, " \t"));
        s->ctype[strcspn(s->ctype, ";")] = 0;
    } else if (strncasecmp(line, "www-authenticate:", 17) == 0) {
        snprintf(s->www_auth, sizeof s->www_auth, "%s", line + 17 + strspn(line + 17, " \t"));
    }
    return n;
}

static size_t body_cb(char *p, size_t sz, size_t nm, void *ud)
{
    struct sink *s = ud;
    size_t n = sz * nm;
    if (s->status >= 300 && s->status < 400)
        return n; /* a redirect's body */
    if (s->status >= 400) {
        kc_buf_append(&s->errbody, p, n); /* truncated past ERRBODY_MAX: only for messages */
        return n;
    }
    if (s->n + (int64_t)n > s->max) {
        s->too_large = true;
        return 0;
    }
    s->n += (int64_t)n;
    if (s->md)
        EVP_DigestUpdate(s->md, p, n);
    if (s->buf)
        return kc_buf_append(s->buf, p, n) ? 0 : n;
    return fwrite(p, 1, n, s->f);
}

/* The failure of a request that got no HTTP answer, in words. */
static int transport_error(struct kc_reg *r, CURLcode cc, const char *ebuf, struct kc_err *err)
{
    const char *detail = *ebuf ? ebuf : curl_easy_strerror(cc);
    if (cc == CURLE_PEER_FAILED_VERIFICATION || r->tls.error) {
        int e = r->tls.error;
        if (e == X509_V_ERR_CERT_HAS_EXPIRED)
            return kc_err_set(err, KC_EIO, 0, "ErrImagePull",
                              "certificate expired: registry %s presented a certificate (%s) that expired on %s "
                              "(x509: certificate has expired or is not yet valid); renew the registry's certificate",
                              r->host, r->tls.subject, r->tls.not_after);
        if (e == X509_V_ERR_CERT_NOT_YET_VALID)
            return kc_err_set(err, KC_EIO, 0, "ErrImagePull",
                              "certificate not yet valid: registry %s presented a certificate (%s) whose validity "
                              "starts in the future; check the node's clock",
                              r->host, r->tls.subject);
        if (e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY || e == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
            e == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN || e == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE ||
            e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT)
            return kc_err_set(err, KC_EIO, 0, "ErrImagePull",
                              "x509: certificate signed by unknown authority: registry %s presented a certificate "
                              "issued by \"%s\", which is not among the system CAs %s%s%s",
                              r->host, r->tls.issuer,
                              !r->ca_file[0] ? "and no per-registry CA is configured on the node"
                                             : (r->ca_present ? "nor in " : "and the per-registry CA file "),
                              r->ca_file, r->ca_file[0] && !r->ca_present ? " does not exist" : "");
        if (e)
            return kc_err_set(err, KC_EIO, 0, "ErrImagePull",
                              "certificate of registry %s rejected: %s (certificate %s)", r->host,
                              X509_verify_cert_error_string(e), r->tls.subject);
        return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "certificate of registry %s rejected: %s", r->host,
                          detail);
    }
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "registry %s unreachable: timed out (%s)", r->host, detail);
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
        return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "registry %s unreachable: %s", r->host, detail);
    default:
        return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "request to registry %s failed: %s", r->host, detail);
    }
}

/* Performs GET url into s. Returns 0 once an HTTP answer arrived (s->status set). */
static int perform(struct kc_reg *r, const char *url, const char *accept, bool with_authz, const char *basic_user,
                   const char *basic_pass, struct sink *s, struct kc_err *err)
{
    pthread_once(&ex_once, ex_init);
    if (!r->curl && !(r->curl = curl_easy_init()))
        return kc_err_set(err, KC_ENOMEM, 0, "ErrImagePull", "out of memory");
    CURL *c = r->curl;
    curl_easy_reset(c);
    char ebuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *h = NULL;
    char line[HDR_MAX + 64];
    if (accept) {
        snprintf(line, sizeof line, "Accept: %s", accept);
        h = curl_slist_append(h, line);
    }
    if (with_authz && r->authz)
        h = curl_slist_append(h, r->authz);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    /* A stalled transfer fails; a large layer on a slow link does not. */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, r->timeout_s);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "kubec-agent/1");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, hdr_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
    curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, r);
    curl_easy_setopt(c, CURLOPT_CA_CACHE_TIMEOUT, 0L); /* the store is changed per registry: no sharing */
    if (basic_user) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, basic_user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, basic_pass ? basic_pass : "");
    }
    memset(&r->tls, 0, sizeof r->tls);
    CURLcode cc = curl_easy_perform(c);
    curl_slist_free_all(h);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    if (cc == CURLE_WRITE_ERROR && s->too_large)
        return kc_err_set(err, KC_ETOOLARGE, 0, "ErrImagePull", "registry %s: response to %s exceeds %lld bytes",
                          r->host, url, (long long)s->max);
    if (cc != CURLE_OK)
        return transport_error(r, cc, ebuf, err);
    return 0;
}

/* ---- auth ---- */

/* Value of param in a challenge ("Bearer realm=\"...\",service=\"...\""). */
static void challenge_param(const char *ch, const char *param, char *out, size_t n)
{
    out[0] = 0;
    size_t pl = strlen(param);
    for (const char *p = ch; (p = strcasestr(p, param)); p += pl) {
        if ((p != ch && p[-1] != ' ' && p[-1] != ',') || p[pl] != '=')
            continue;
        const char *v = p + pl + 1;
        size_t len;
        if (*v == '"') {
            v++;
            len = strcspn(v, "\"");
        } else {
            len = strcspn(v, ", ");
        }
        if (len >= n)
            len = n - 1;
        memcpy(out, v, len);
        out[len] = 0;
        return;
    }
}

static int unauthorized(struct kc_reg *r, struct kc_err *err)
{
    if (r->user)
        return kc_err_set(err, KC_EIO, 401, "ErrImagePull",
                          "unauthorized: registry %s rejected the credentials of user \"%s\" from secret \"%s\" for "
                          "repository %s; check the secret's username and password",
                          r->domain, r->user, r->secret ? r->secret : "?", r->repo);
    const char *un = r->secrets_unusable && *r->secrets_unusable ? r->secrets_unusable : NULL;
    if (r->secrets_given && *r->secrets_given)
        return kc_err_set(err, KC_EIO, 401, "ErrImagePull",
                          "unauthorized: registry %s requires authentication for repository %s and none of the pull "
                          "secrets (%s) has credentials for %s%s%s",
                          r->domain, r->repo, r->secrets_given, r->domain, un ? "; unusable: " : "", un ? un : "");
    if (un)
        return kc_err_set(err, KC_EIO, 401, "ErrImagePull",
                          "unauthorized: registry %s requires authentication for repository %s and the pod's "
                          "imagePullSecrets gave no credentials: %s",
                          r->domain, r->repo, un);
    return kc_err_set(err, KC_EIO, 401, "ErrImagePull",
                      "unauthorized: registry %s requires authentication for repository %s and no imagePullSecret "
                      "was given (add one to the pod or to its ServiceAccount)",
                      r->domain, r->repo);
}

static int set_authz(struct kc_reg *r, const char *scheme, const char *cred)
{
    size_t n = strlen(scheme) + strlen(cred) + 32;
    char *a = malloc(n);
    if (!a)
        return KC_ENOMEM;
    snprintf(a, n, "Authorization: %s %s", scheme, cred);
    free(r->authz);
    r->authz = a;
    return 0;
}

static int basic_authz(struct kc_reg *r, struct kc_err *err)
{
    char up[2 * 4096 + 2];
    int l = snprintf(up, sizeof up, "%s:%s", r->user, r->pass ? r->pass : "");
    if (l < 0 || (size_t)l >= sizeof up)
        return kc_err_set(err, KC_ETOOLARGE, 0, "ErrImagePull", "credentials of secret \"%s\" too long", r->secret);
    unsigned char b64[sizeof up / 3 * 4 + 8];
    EVP_EncodeBlock(b64, (const unsigned char *)up, l);
    if (set_authz(r, "Basic", (const char *)b64))
        return kc_err_set(err, KC_ENOMEM, 0, "ErrImagePull", "out of memory");
    return 0;
}

/* Fetches a bearer token from the challenge's realm. */
static int bearer_token(struct kc_reg *r, const char *ch, struct kc_err *err)
{
    char realm[512], service[256], scope[512];
    challenge_param(ch, "realm", realm, sizeof realm);
    challenge_param(ch, "service", service, sizeof service);
    challenge_param(ch, "scope", scope, sizeof scope);
    if (!*realm)
        return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "registry %s sent a Bearer challenge without a realm",
                          r->host);
    if (!*scope)
        snprintf(scope, sizeof scope, "repository:%s:pull", r->repo);
    CURL *c = r->curl;
    char *es = curl_easy_escape(c, service, 0), *esc = curl_easy_escape(c, scope, 0);
    char url[2048];
    snprintf(url, sizeof url, "%s%sservice=%s&scope=%s", realm, strchr(realm, '?') ? "&" : "?", es ? es : "",
             esc ? esc : "");
    curl_free(es);
    curl_free(esc);
    struct kc_buf body;
    kc_buf_init(&body, TOKEN_MAX);
    struct sink s = {.buf = &body, .max = TOKEN_MAX};
    kc_buf_init(&s.errbody, ERRBODY_MAX);
    int rc = perform(r, url, "application/json", false, r->user, r->pass, &s, err);
    if (!rc && (s.status == 401 || s.status == 403))
        rc = unauthorized(r, err);
    else if (!rc && s.status != 200)
        rc = kc_err_set(err, KC_EIO, 0, "ErrImagePull", "token service %s of registry %s answered HTTP %ld", realm,
                        r->host, s.status);
    json_t *tok = rc ? NULL : kc_json_loadb(body.data ? body.data : "", body.len, 0, NULL);
    const char *t = json_string_value(json_object_get(tok, "token"));
    if (!t)
        t = json_string_value(json_object_get(tok, "access_token"));
    if (!rc && !t)
        rc = kc_err_set(err, KC_EIO, 0, "ErrImagePull", "token service %s of registry %s returned no token", realm,
                        r->host);
    if (!rc && set_authz(r, "Bearer", t))
        rc = kc_err_set(err, KC_ENOMEM, 0, "ErrImagePull", "out of memory");
    json_decref(tok);
    kc_buf_release(&body);
    kc_buf_release(&s.errbody);
    return rc;
}

static int authenticate(struct kc_reg *r, const char *ch, struct kc_err *err)
{
    if (strncasecmp(ch, "Bearer", 6) == 0)
        return bearer_token(r, ch, err);
    if (strncasecmp(ch, "Basic", 5) == 0) {
        if (!r->user)
            return unauthorized(r, err);
        return basic_authz(r, err);
    }
    return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "registry %s asks for unsupported authentication \"%.60s\"",
                      r->host, ch);
}

/* ---- GET with auth and status classification ---- */

/* errors[0].code of a registry error body. */
static void error_code(struct kc_buf *b, char *code, size_t cn, char *msg, size_t mn)
{
    code[0] = msg[0] = 0;
    json_t *j = b->data ? kc_json_loadb(b->data, b->len, 0, NULL) : NULL;
    json_t *e0 = json_array_get(json_object_get(j, "errors"), 0);
    snprintf(code, cn, "%s", json_string_value(json_object_get(e0, "code")) ?: "");
    snprintf(msg, mn, "%s", json_string_value(json_object_get(e0, "message")) ?: "");
    json_decref(j);
}

static int classify(struct kc_reg *r, const char *what, const char *ref, struct sink *s, struct kc_err *err)
{
    char code[64], msg[256];
    error_code(&s->errbody, code, sizeof code, msg, sizeof msg);
    switch (s->status) {
    case 401:
    case 403:
        return unauthorized(r, err);
    case 404:
        if (strcmp(code, "NAME_UNKNOWN") == 0)
            return kc_err_set(err, KC_ENOTFOUND, 404, "ErrImagePull",
                              "repository %s not found on registry %s (name unknown)", r->repo, r->domain);
        if (strcmp(what, "manifest") == 0)
            return kc_err_set(err, KC_ENOTFOUND, 404, "ErrImagePull",
                              "manifest unknown: %s%s%s not found on registry %s (no such tag or digest)", r->repo,
                              strncmp(ref, "sha256:", 7) ? ":" : "@", ref, r->domain);
        return kc_err_set(err, KC_ENOTFOUND, 404, "ErrImagePull", "blob unknown: %s of %s not found on registry %s",
                          ref, r->repo, r->domain);
    case 429:
        return kc_err_set(err, KC_EIO, 429, "ErrImagePull", "registry %s: too many requests (rate limited)",
                          r->domain);
    default:
        return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "registry %s answered HTTP %ld to the %s request for %s%s%s%s",
                          r->domain, s->status, what, ref, *code ? " (" : "", code, *code ? ")" : "");
    }
}

static int get(struct kc_reg *r, const char *what, const char *ref, const char *accept, struct sink *s,
               struct kc_err *err)
{
    char url[1024];
    snprintf(url, sizeof url, "https://%s/v2/%s/%ss/%s", r->host, r->repo, what, ref);
    for (int attempt = 0;; attempt++) {
        s->status = 0;
        s->n = 0;
        if (s->buf)
            s->buf->len = 0;
        if (s->f && (fflush(s->f) || ftruncate(fileno(s->f), 0) || fseek(s->f, 0, SEEK_SET)))
            return kc_err_set(err, KC_EIO, 0, "ErrImagePull", "cannot rewrite a temporary blob file");
        if (s->md)
            EVP_DigestInit_ex(s->md, EVP_sha256(), NULL);
        s->errbody.len = 0;
        int rc = perform(r, url, accept, true, NULL, NULL, s, err);
        if (rc)
            return rc;
        if (s->status == 401 && attempt == 0 && s->www_auth[0]) {
            if ((rc = authenticate(r, s->www_auth, err)))
                return rc;
            continue;
        }
        if (s->status >= 200 && s->status < 300)
            return 0;
        return classify(r, what, ref, s, err);
    }
}

static void hexdigest(EVP_MD_CTX *md, char *out, size_t n)
{
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned hl = 0;
    EVP_DigestFinal_ex(md, h, &hl);
    size_t o = (size_t)snprintf(out, n, "sha256:");
    for (unsigned i = 0; i < hl && o + 2 < n; i++)
        o += (size_t)snprintf(out + o, n - o, "%02x", h[i]);
}

int kc_reg_manifest(struct kc_reg *r, const char *reference, struct kc_buf *body, char *ctype, size_t ctn,
                    char *digest, size_t dn, struct kc_err *err)
{
    static const char accept[] = "application/vnd.oci.image.index.v1+json, "
                                 "application/vnd.docker.distribution.manifest.list.v2+json, "
                                 "application/vnd.oci.image.manifest.v1+json, "
                                 "application/vnd.docker.distribution.manifest.v2+json";
    struct sink s = {.buf = body, .max = KC_IMG_MANIFEST_MAX, .md = EVP_MD_CTX_new()};
    if (!s.md)
        return kc_err_set(err, KC_ENOMEM, 0, "ErrImagePull", "out of memory");
    kc_buf_init(&s.errbody, ERRBODY_MAX);
    int rc = get(r, "manifest", reference, accept, &s, err);
    if (!rc) {
        snprintf(ctype, ctn, "%s", s.ctype);
        hexdigest(s.md, digest, dn);
    }
    EVP_MD_CTX_free(s.md);
    kc_buf_release(&s.errbody);
    return rc;
}

int kc_reg_blob(struct kc_reg *r, const char *digest, FILE *f, int64_t max, int64_t *size, struct kc_err *err)
{
    struct sink s = {.f = f, .max = max, .md = EVP_MD_CTX_new()};
    if (!s.md)
        return kc_err_set(err, KC_ENOMEM, 0, "ErrImagePull", "out of memory");
    kc_buf_init(&s.errbody, ERRBODY_MAX);
    int rc = get(r, "blob", digest, NULL, &s, err);
    if (!rc && fflush(f))
        rc = kc_err_set(err, KC_EIO, 0, "ErrImagePull", "cannot write blob %s: disk full?", digest);
    if (!rc) {
        char got[KC_IMG_DIGEST_MAX];
        hexdigest(s.md, got, sizeof got);
        if (strcmp(got, digest) != 0)
            rc = kc_err_set(err, KC_EIO, 0, "ErrImagePull",
                            "digest mismatch: blob %s of %s from registry %s hashed to %s; refused (the registry's "
                            "content is corrupt or was tampered with)",
                            digest, r->repo, r->domain, got);
        *size = s.n;
    }
    EVP_MD_CTX_free(s.md);
    kc_buf_release(&s.errbody);
    return rc;
}
