/* pki.c — the server's certificates, admin token and kubeconfig (see pki.h).
 *
 * Files in the data dir (created 0700 when missing):
 *   ca.crt (0644) ca.key (0600)            self-signed EC P-256 CA, 10 years
 *   serving.crt (0644) serving.key (0600)  serving cert signed by the CA, 1 year
 *   token (0600)                           admin bearer token, 64 hex chars
 * Every file is written atomically (temp file in the same dir, fsync,
 * rename, fsync of the dir), so a crash leaves either the old or the new
 * content. Pairs are written key first, certificate last: a crash between
 * the two leaves a certificate that does not match its key, which the next
 * start detects and repairs (serving) or treats as "no CA yet" (ca.crt
 * missing).
 *
 * Data structures: struct san_set, the names the serving certificate must
 * carry (defaults + host name + caller's extras, deduplicated, IPs already
 * in binary form). OpenSSL objects live only inside one call.
 *
 * Threads: none. Not safe to run concurrently on the same dir; the server
 * calls it once at start-up.
 */
#include "pki/pki.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "util/buf.h"

#define PKI_FILE_MAX (1 << 20)      /* largest cert/key/token file we read */
#define PKI_PATH_MAX 4096
#define PKI_EXTRA_SAN_MAX 64        /* extra SANs a caller may request */
#define PKI_SAN_MAX (PKI_EXTRA_SAN_MAX + 5)
#define PKI_NAME_MAX 253            /* longest DNS name */
#define PKI_TOKEN_MAX 1024          /* longest token accepted from the token file */
#define PKI_URL_MAX 2048
#define PKI_CA_DAYS 3650
#define PKI_SERVING_DAYS 365
#define PKI_RENEW_SECS (30L * 24 * 3600)
#define PKI_TOKEN_BYTES 32

struct san {
    char name[PKI_NAME_MAX + 1];
    unsigned char ip[16];
    int iplen; /* 4 or 16 for an IP SAN, 0 for a DNS SAN */
};

struct san_set {
    struct san v[PKI_SAN_MAX];
    size_t n;
};

/* ---- errors ------------------------------------------------------------ */

static int ossl_fail(struct kc_err *err, const char *what)
{
    char detail[256] = "";
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, detail, sizeof detail);
    ERR_clear_error();
    return kc_err_set(err, KC_EIO, 500, "InternalError", "pki: %s failed%s%s", what, *detail ? ": " : "", detail);
}

static int sys_fail(struct kc_err *err, const char *what, const char *path)
{
    int e = errno;
    return kc_err_set(err, KC_EIO, 500, "InternalError", "pki: %s %s: %s", what, path, strerror(e));
}

static int nomem(struct kc_err *err)
{
    return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "pki: out of memory");
}

/* ---- files ------------------------------------------------------------- */

static int path_join(char out[PKI_PATH_MAX], const char *dir, const char *name, struct kc_err *err)
{
    int n = snprintf(out, PKI_PATH_MAX, "%s/%s", dir, name);
    if (n < 0 || n >= PKI_PATH_MAX - 16) /* room for the temp suffix */
        return kc_err_set(err, KC_ETOOLARGE, 400, "BadRequest", "pki: path too long: %s", dir);
    return 0;
}

/* Reads a whole regular file of at most PKI_FILE_MAX bytes, NUL-terminated.
 * KC_ENOTFOUND when it does not exist. */
static int read_file(const char *path, char **out, struct kc_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return kc_err_set(err, KC_ENOTFOUND, 404, "NotFound", "pki: %s does not exist", path);
        return sys_fail(err, "open", path);
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = sys_fail(err, "stat", path);
        close(fd);
        return rc;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > PKI_FILE_MAX) {
        close(fd);
        return kc_err_set(err, KC_ETOOLARGE, 500, "InternalError",
                          "pki: %s is not a regular file of at most %d bytes", path, PKI_FILE_MAX);
    }
    size_t want = (size_t)st.st_size, got = 0;
    char *buf = malloc(want + 1);
    if (!buf) {
        close(fd);
        return nomem(err);
    }
    while (got < want) {
        ssize_t n = read(fd, buf + got, want - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int rc = sys_fail(err, "read", path);
            free(buf);
            close(fd);
            return rc;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    return 0;
}

/* fsync of the directory holding path, so the rename itself is durable.
 * Best effort: some file systems refuse fsync on directories. */
static void fsync_parent(const char *path)
{
    char dir[PKI_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Temp file beside path, exact mode (umask does not apply to fchmod),
 * fsync, rename over path. */
static int write_atomic(const char *path, const void *data, size_t len, mode_t mode, struct kc_err *err)
{
    char tmp[PKI_PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
    if (n < 0 || n >= (int)sizeof tmp)
        return kc_err_set(err, KC_ETOOLARGE, 400, "BadRequest", "pki: path too long: %s", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return sys_fail(err, "create", tmp);
    int rc = 0;
    if (fchmod(fd, mode) != 0)
        rc = sys_fail(err, "chmod", tmp);
    else if (write_all(fd, data, len) != 0)
        rc = sys_fail(err, "write", tmp);
    else if (fsync(fd) != 0)
        rc = sys_fail(err, "fsync", tmp);
    if (close(fd) != 0 && rc == 0)
        rc = sys_fail(err, "close", tmp);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = sys_fail(err, "rename", tmp);
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    fsync_parent(path);
    return 0;
}

/* mkdir -p; components we create get 0700. */
static int ensure_dir(const char *dir, struct kc_err *err)
{
    size_t len = strlen(dir);
    if (len == 0 || len >= PKI_PATH_MAX - 32)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "pki: data dir is empty or too long");
    char p[PKI_PATH_MAX];
    memcpy(p, dir, len + 1);
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            return sys_fail(err, "mkdir", p);
        *s = c;
        if (c == '\0')
            break;
    }
    struct stat st;
    if (stat(dir, &st) != 0)
        return sys_fail(err, "stat", dir);
    if (!S_ISDIR(st.st_mode))
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "pki: %s is not a directory", dir);
    return 0;
}

/* ---- PEM --------------------------------------------------------------- */

/* Never prompt on a terminal for a pass phrase: an encrypted key is an error. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return 0;
}

static char *bio_to_str(BIO *b)
{
    char *d = NULL;
    long n = BIO_get_mem_data(b, &d);
    return n > 0 ? strndup(d, (size_t)n) : NULL;
}

static char *cert_to_pem(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *s = NULL;
    if (b && PEM_write_bio_X509(b, x))
        s = bio_to_str(b);
    BIO_free(b);
    return s;
}

static char *key_to_pem(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *s = NULL;
    if (b && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL))
        s = bio_to_str(b);
    BIO_free(b);
    return s;
}

static X509 *pem_to_cert(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, no_passphrase, NULL) : NULL;
    BIO_free(b);
    return x;
}

static EVP_PKEY *pem_to_key(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL) : NULL;
    BIO_free(b);
    return k;
}

/* Frees s after wiping it: used for key material. */
static void free_secret(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

/* Writes the key (0600) then the certificate (0644). */
static int write_pair(const char *dir, const char *crt_name, const char *key_name, X509 *x, EVP_PKEY *k,
                      struct kc_err *err)
{
    char crt_path[PKI_PATH_MAX], key_path[PKI_PATH_MAX];
    int rc = path_join(crt_path, dir, crt_name, err);
    if (rc == 0)
        rc = path_join(key_path, dir, key_name, err);
    if (rc != 0)
        return rc;
    char *cpem = cert_to_pem(x), *kpem = key_to_pem(k);
    if (!cpem || !kpem)
        rc = ossl_fail(err, "PEM encoding");
    if (rc == 0)
        rc = write_atomic(key_path, kpem, strlen(kpem), 0600, err);
    if (rc == 0)
        rc = write_atomic(crt_path, cpem, strlen(cpem), 0644, err);
    free(cpem);
    free_secret(kpem);
    return rc;
}

/* ---- SANs -------------------------------------------------------------- */

static int dns_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > PKI_NAME_MAX)
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
              c == '_' || c == '*'))
            return 0;
    }
    return 1;
}

/* Adds name (a DNS name or an IP literal, IPv6 optionally in brackets)
 * unless already present. KC_EINVAL for anything else. */
static int san_add(struct san_set *set, const char *name, struct kc_err *err)
{
    struct san s;
    memset(&s, 0, sizeof s);
    size_t len = strlen(name);
    if (len == 0 || len > PKI_NAME_MAX)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "pki: SAN must be 1..%d characters", PKI_NAME_MAX);
    if (name[0] == '[' && len > 2 && name[len - 1] == ']')
        memcpy(s.name, name + 1, len - 2);
    else
        memcpy(s.name, name, len);
    if (inet_pton(AF_INET, s.name, s.ip) == 1)
        s.iplen = 4;
    else if (inet_pton(AF_INET6, s.name, s.ip) == 1)
        s.iplen = 16;
    else if (!dns_name_ok(s.name))
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "pki: SAN %.64s is neither an IP literal nor a DNS name",
                          name);
    for (size_t i = 0; i < set->n; i++) {
        const struct san *o = &set->v[i];
        if (o->iplen == s.iplen && (s.iplen ? memcmp(o->ip, s.ip, (size_t)s.iplen) == 0 : strcasecmp(o->name, s.name) == 0))
            return 0;
    }
    if (set->n >= PKI_SAN_MAX)
        return kc_err_set(err, KC_ETOOLARGE, 400, "BadRequest", "pki: more than %d extra SANs", PKI_EXTRA_SAN_MAX);
    set->v[set->n++] = s;
    return 0;
}

static int san_build(struct san_set *set, const char *const *extra, struct kc_err *err)
{
    static const char *const defaults[] = {"127.0.0.1", "::1", "localhost"};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof defaults / sizeof defaults[0]; i++)
        rc = san_add(set, defaults[i], err);
    char host[256];
    /* A host name that is no valid DNS name (or none at all) is skipped, not fatal. */
    if (rc == 0 && gethostname(host, sizeof host) == 0) {
        host[sizeof host - 1] = '\0';
        if (dns_name_ok(host))
            rc = san_add(set, host, err);
    }
    size_t n = 0;
    for (; rc == 0 && extra && extra[n]; n++) {
        if (n >= PKI_EXTRA_SAN_MAX)
            return kc_err_set(err, KC_ETOOLARGE, 400, "BadRequest", "pki: more than %d extra SANs", PKI_EXTRA_SAN_MAX);
        rc = san_add(set, extra[n], err);
    }
    return rc;
}

static GENERAL_NAME *san_to_general_name(const struct san *s)
{
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_STRING *str = s->iplen ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new();
    if (!g || !str)
        goto fail;
    if (s->iplen ? !ASN1_OCTET_STRING_set(str, s->ip, s->iplen) : !ASN1_STRING_set(str, s->name, -1))
        goto fail;
    GENERAL_NAME_set0_value(g, s->iplen ? GEN_IPADD : GEN_DNS, str);
    return g;
fail:
    ASN1_STRING_free(str);
    GENERAL_NAME_free(g);
    return NULL;
}

static int add_sans(X509 *x, const struct san_set *set)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    int ok = gens != NULL;
    for (size_t i = 0; ok && i < set->n; i++) {
        GENERAL_NAME *g = san_to_general_name(&set->v[i]);
        ok = g && sk_GENERAL_NAME_push(gens, g) > 0;
        if (!ok)
            GENERAL_NAME_free(g);
    }
    ok = ok && X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1;
    GENERAL_NAMES_free(gens);
    return ok ? 0 : -1;
}

static int gens_contain(const GENERAL_NAMES *gens, const struct san *s)
{
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        int type;
        const ASN1_STRING *v = GENERAL_NAME_get0_value(g, &type);
        size_t vlen = (size_t)ASN1_STRING_length(v);
        const unsigned char *d = ASN1_STRING_get0_data(v);
        if (s->iplen && type == GEN_IPADD && vlen == (size_t)s->iplen && memcmp(d, s->ip, vlen) == 0)
            return 1;
        if (!s->iplen && type == GEN_DNS && vlen == strlen(s->name) && strncasecmp((const char *)d, s->name, vlen) == 0)
            return 1;
    }
    return 0;
}

static int cert_has_sans(X509 *x, const struct san_set *set)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    if (!gens)
        return 0;
    int ok = 1;
    for (size_t i = 0; ok && i < set->n; i++)
        ok = gens_contain(gens, &set->v[i]);
    GENERAL_NAMES_free(gens);
    return ok;
}

/* ---- certificate building ---------------------------------------------- */

/* 16 random bytes, top bit cleared (a positive DER INTEGER within the
 * 20-octet limit of RFC 5280) and second bit set (never zero, fixed size). */
static int set_random_serial(X509 *x)
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1)
        return -1;
    b[0] = (unsigned char)((b[0] & 0x7f) | 0x40);
    BIGNUM *bn = BN_bin2bn(b, sizeof b, NULL);
    ASN1_INTEGER *ai = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    int ok = ai && X509_set_serialNumber(x, ai);
    ASN1_INTEGER_free(ai);
    BN_free(bn);
    return ok ? 0 : -1;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (!e)
        return -1;
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok ? 0 : -1;
}

/* A v3 certificate for key with subject O=kubec,CN=cn, valid from an hour
 * ago (tolerates clock skew between server and clients) for days. */
static X509 *new_cert(EVP_PKEY *key, const char *cn, long days)
{
    X509 *x = X509_new();
    if (!x)
        return NULL;
    X509_NAME *n = X509_get_subject_name(x);
    int ok = X509_set_version(x, X509_VERSION_3) && set_random_serial(x) == 0 &&
             X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
             X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL) &&
             X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"kubec", -1, -1, 0) &&
             X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0) &&
             X509_set_pubkey(x, key);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static int make_ca(EVP_PKEY **key_out, X509 **cert_out, struct kc_err *err)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = key ? new_cert(key, "kubec-ca", PKI_CA_DAYS) : NULL;
    X509V3_CTX ctx;
    int ok = x && X509_set_issuer_name(x, X509_get_subject_name(x));
    if (ok) {
        X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
        ok = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE") == 0 &&
             add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") == 0 &&
             add_ext(x, &ctx, NID_subject_key_identifier, "hash") == 0 &&
             add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") == 0 &&
             X509_sign(x, key, EVP_sha256()) > 0;
    }
    if (!ok) {
        X509_free(x);
        EVP_PKEY_free(key);
        return ossl_fail(err, "creating the CA");
    }
    *key_out = key;
    *cert_out = x;
    return 0;
}

static int make_serving(EVP_PKEY *ca_key, X509 *ca, const struct san_set *sans, EVP_PKEY **key_out, X509 **cert_out,
                        struct kc_err *err)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = key ? new_cert(key, "kubec-apiserver", PKI_SERVING_DAYS) : NULL;
    X509V3_CTX ctx;
    int ok = x && X509_set_issuer_name(x, X509_get_subject_name(ca));
    /* Never outlive the CA: clients would reject the chain anyway. */
    if (ok && ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(ca)) > 0)
        ok = X509_set1_notAfter(x, X509_get0_notAfter(ca));
    if (ok) {
        X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
        ok = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") == 0 &&
             add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature,keyEncipherment") == 0 &&
             add_ext(x, &ctx, NID_ext_key_usage, "serverAuth") == 0 &&
             add_ext(x, &ctx, NID_subject_key_identifier, "hash") == 0 &&
             add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") == 0 && add_sans(x, sans) == 0 &&
             X509_sign(x, ca_key, EVP_sha256()) > 0;
    }
    if (!ok) {
        X509_free(x);
        EVP_PKEY_free(key);
        return ossl_fail(err, "issuing the serving certificate");
    }
    *key_out = key;
    *cert_out = x;
    return 0;
}

/* ---- load or create ---------------------------------------------------- */

/* Reads and parses a cert + key pair. KC_ENOTFOUND when either file is
 * absent; *key_missing tells whether it was the key (the cert exists). */
static int load_pair(const char *dir, const char *crt_name, const char *key_name, X509 **x_out, EVP_PKEY **k_out,
                     int *key_missing, struct kc_err *err)
{
    *key_missing = 0;
    char crt_path[PKI_PATH_MAX], key_path[PKI_PATH_MAX];
    char *cpem = NULL, *kpem = NULL;
    int rc = path_join(crt_path, dir, crt_name, err);
    if (rc == 0)
        rc = path_join(key_path, dir, key_name, err);
    if (rc == 0)
        rc = read_file(crt_path, &cpem, err);
    if (rc == 0) {
        rc = read_file(key_path, &kpem, err);
        *key_missing = rc == KC_ENOTFOUND;
    }
    if (rc != 0) {
        free(cpem);
        return rc;
    }
    X509 *x = pem_to_cert(cpem);
    EVP_PKEY *k = x ? pem_to_key(kpem) : NULL;
    free(cpem);
    free_secret(kpem);
    if (!x || !k || X509_check_private_key(x, k) != 1) {
        X509_free(x);
        EVP_PKEY_free(k);
        ERR_clear_error();
        return kc_err_set(err, KC_EINVALID, 500, "InternalError",
                          "pki: %s / %s are not a matching PEM certificate and unencrypted key", crt_path, key_path);
    }
    *x_out = x;
    *k_out = k;
    return 0;
}

/* The CA is created only when ca.crt is absent (first start, or a crash
 * before ca.crt was written). A ca.crt whose key is missing or does not
 * match is an error rather than a silent new CA: clients trust ca.crt. */
static int ca_load_or_create(const char *dir, X509 **ca, EVP_PKEY **ca_key, struct kc_err *err)
{
    int key_missing;
    int rc = load_pair(dir, "ca.crt", "ca.key", ca, ca_key, &key_missing, err);
    if (rc == KC_ENOTFOUND && key_missing)
        return kc_err_set(err, KC_EIO, 500, "InternalError",
                          "pki: %s/ca.crt exists but ca.key is missing; remove ca.crt to create a new CA", dir);
    if (rc != KC_ENOTFOUND)
        return rc;
    kc_err_clear(err);
    rc = make_ca(ca_key, ca, err);
    if (rc == 0)
        rc = write_pair(dir, "ca.crt", "ca.key", *ca, *ca_key, err);
    if (rc != 0) {
        X509_free(*ca);
        EVP_PKEY_free(*ca_key);
        *ca = NULL;
        *ca_key = NULL;
    }
    return rc;
}

/* Whether an existing serving cert may be kept: signed by this CA, matches
 * its key, valid now and for more than PKI_RENEW_SECS, carries every SAN. */
static int serving_reusable(X509 *ca, X509 *x, const struct san_set *sans)
{
    time_t limit = time(NULL) + PKI_RENEW_SECS;
    int ok = X509_check_issued(ca, x) == X509_V_OK && X509_verify(x, X509_get0_pubkey(ca)) == 1 &&
             X509_cmp_time(X509_get0_notBefore(x), NULL) == -1 &&
             X509_cmp_time(X509_get0_notAfter(x), &limit) == 1 && cert_has_sans(x, sans);
    ERR_clear_error();
    return ok;
}

static int serving_load_or_create(const char *dir, X509 *ca, EVP_PKEY *ca_key, const struct san_set *sans,
                                  struct kc_pki *out, struct kc_err *err)
{
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    int key_missing;
    int rc = load_pair(dir, "serving.crt", "serving.key", &x, &k, &key_missing, err);
    if (rc == KC_EIO || rc == KC_ENOMEM || rc == KC_ETOOLARGE)
        return rc; /* unreadable, not merely stale: do not paper over it */
    if (rc != 0 || !serving_reusable(ca, x, sans)) {
        X509_free(x);
        EVP_PKEY_free(k);
        x = NULL;
        k = NULL;
        kc_err_clear(err);
        rc = make_serving(ca_key, ca, sans, &k, &x, err);
        if (rc == 0)
            rc = write_pair(dir, "serving.crt", "serving.key", x, k, err);
    }
    if (rc == 0) {
        out->cert_pem = cert_to_pem(x);
        out->key_pem = key_to_pem(k);
        if (!out->cert_pem || !out->key_pem)
            rc = ossl_fail(err, "PEM encoding");
    }
    X509_free(x);
    EVP_PKEY_free(k);
    return rc;
}

static int token_valid(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > PKI_TOKEN_MAX)
        return 0;
    for (; *t; t++)
        if (*t < 0x21 || *t > 0x7e)
            return 0;
    return 1;
}

/* An existing token file is kept as it is (trailing white space trimmed),
 * so an admin may set their own; it must be printable ASCII without blanks. */
static int token_load_or_create(const char *dir, char **out, struct kc_err *err)
{
    char path[PKI_PATH_MAX];
    char *t = NULL;
    int rc = path_join(path, dir, "token", err);
    if (rc == 0)
        rc = read_file(path, &t, err);
    if (rc == 0) {
        size_t n = strlen(t);
        while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == '\r' || t[n - 1] == ' ' || t[n - 1] == '\t'))
            t[--n] = '\0';
        if (!token_valid(t)) {
            free_secret(t);
            return kc_err_set(err, KC_EINVALID, 500, "InternalError",
                              "pki: %s must hold 1..%d printable ASCII characters without blanks", path, PKI_TOKEN_MAX);
        }
        *out = t;
        return 0;
    }
    if (rc != KC_ENOTFOUND)
        return rc;
    kc_err_clear(err);
    unsigned char raw[PKI_TOKEN_BYTES];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return ossl_fail(err, "RAND_bytes");
    t = malloc(2 * PKI_TOKEN_BYTES + 1);
    if (!t)
        return nomem(err);
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(t + 2 * i, 3, "%02x", raw[i]);
    OPENSSL_cleanse(raw, sizeof raw);
    rc = write_atomic(path, t, 2 * PKI_TOKEN_BYTES, 0600, err);
    if (rc != 0) {
        free_secret(t);
        return rc;
    }
    *out = t;
    return 0;
}

int kc_pki_load_or_create(const char *dir, const char *const *extra_sans, struct kc_pki *out, struct kc_err *err)
{
    memset(out, 0, sizeof *out);
    if (!dir)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "pki: no data dir");
    struct san_set *sans = calloc(1, sizeof *sans);
    if (!sans)
        return nomem(err);
    X509 *ca = NULL;
    EVP_PKEY *ca_key = NULL;
    int rc = san_build(sans, extra_sans, err);
    if (rc == 0)
        rc = ensure_dir(dir, err);
    if (rc == 0)
        rc = ca_load_or_create(dir, &ca, &ca_key, err);
    if (rc == 0 && !(out->ca_pem = cert_to_pem(ca)))
        rc = ossl_fail(err, "PEM encoding");
    if (rc == 0)
        rc = serving_load_or_create(dir, ca, ca_key, sans, out, err);
    if (rc == 0)
        rc = token_load_or_create(dir, &out->token, err);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    free(sans);
    if (rc != 0)
        kc_pki_release(out);
    return rc;
}

void kc_pki_release(struct kc_pki *p)
{
    if (!p)
        return;
    free(p->ca_pem);
    free(p->cert_pem);
    free_secret(p->key_pem);
    free_secret(p->token);
    memset(p, 0, sizeof *p);
}

/* ---- kubeconfig -------------------------------------------------------- */

static int printable_ascii(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (; *s; s++)
        if (*s < 0x21 || *s > 0x7e)
            return 0;
    return 1;
}

static char *base64(const char *s)
{
    size_t n = strlen(s);
    unsigned char *o = malloc(4 * ((n + 2) / 3) + 1);
    if (o)
        EVP_EncodeBlock(o, (const unsigned char *)s, (int)n);
    return (char *)o;
}

/* Strings are emitted as JSON string literals, which YAML reads as
 * double-quoted scalars: no URL or token can break the document. */
int kc_pki_write_kubeconfig(const char *path, const char *server_url, const struct kc_pki *p, struct kc_err *err)
{
    if (!path || !*path || !p || !p->ca_pem || !p->token)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "pki: kubeconfig needs a path, a CA and a token");
    if (!server_url || !printable_ascii(server_url, PKI_URL_MAX))
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest",
                          "pki: server URL must be 1..%d printable ASCII characters", PKI_URL_MAX);
    if (strlen(p->ca_pem) > PKI_FILE_MAX || !printable_ascii(p->token, PKI_TOKEN_MAX))
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "pki: CA or token malformed");
    char *ca64 = base64(p->ca_pem);
    if (!ca64)
        return nomem(err);
    struct kc_buf b;
    kc_buf_init(&b, 2 * PKI_FILE_MAX + 16384);
    int rc = kc_buf_puts(&b, "apiVersion: v1\nkind: Config\nclusters:\n- name: kubec\n  cluster:\n    server: ");
    rc = rc ? rc : kc_buf_json_str(&b, server_url);
    rc = rc ? rc : kc_buf_printf(&b, "\n    certificate-authority-data: %s\n", ca64);
    rc = rc ? rc : kc_buf_puts(&b, "users:\n- name: admin\n  user:\n    token: ");
    rc = rc ? rc : kc_buf_json_str(&b, p->token);
    rc = rc ? rc
            : kc_buf_puts(&b, "\ncontexts:\n- name: kubec\n  context:\n    cluster: kubec\n    user: admin\n"
                              "current-context: kubec\npreferences: {}\n");
    free(ca64);
    if (rc != 0)
        rc = kc_err_set(err, rc, 500, "InternalError", "pki: building the kubeconfig failed");
    else
        rc = write_atomic(path, b.data, b.len, 0600, err);
    if (b.data)
        OPENSSL_cleanse(b.data, b.len);
    kc_buf_release(&b);
    return rc;
}

void kc_pki_ca_hash(const struct kc_pki *p, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    out[0] = '\0';
    if (!p || !p->ca_pem)
        return;
    if (EVP_Digest(p->ca_pem, strlen(p->ca_pem), md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        ERR_clear_error();
        return;
    }
    for (unsigned int i = 0; i < mdlen; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}
