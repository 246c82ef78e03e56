/* jointoken.c — node join tokens (k3s style) and what a node credential may do (see pki.h).
 *
 *   <data dir>/node-token (0600):  K10<sha256 hex of ca.crt>::node:<64 hex>
 *
 * The part after "::" is the node credential: a bearer token the API server accepts with node rights
 * (kc_pki_node_may). The hash lets a joining agent verify the CA it fetches unauthenticated from
 * GET /cacerts (the bytes of ca.crt) before trusting it: whoever can answer with a CA of that hash is
 * the server the token came from. The secret is kept across restarts; the hash is recomputed from
 * ca.crt at every start (the file is rewritten if the CA changed).
 * Threads: none; called once at server start, kc_pki_node_may on any thread (pure).
 */
#include "pki/pki.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define JOIN_FILE_MAX 4096
#define CA_FILE_MAX (1 << 20)

/* Reads a whole small file (NUL-terminated) into *out; KC_ENOTFOUND if absent. */
static int slurp(const char *path, size_t max, char **out, size_t *len, struct kc_err *err)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? KC_ENOTFOUND
                               : kc_err_set(err, KC_EIO, 500, "InternalError", "%s: %s", path, strerror(errno));
    char *b = malloc(max + 1);
    size_t n = b ? fread(b, 1, max + 1, f) : 0;
    fclose(f);
    if (!b || n > max) {
        free(b);
        return kc_err_set(err, KC_EIO, 500, "InternalError", "%s: unreadable or larger than %zu bytes", path, max);
    }
    b[n] = 0;
    *out = b;
    if (len)
        *len = n;
    return 0;
}

void kc_pki_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    out[0] = 0;
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        return;
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int kc_pki_join_parse(const char *token, char hash[65], char *cred, size_t credn, struct kc_err *err)
{
    const char *sep = token ? strstr(token, "::") : NULL;
    if (!token || strncmp(token, "K10", 3) || !sep || sep - token != 3 + 64 || strlen(sep + 2) + 1 > credn ||
        !sep[2])
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest",
                          "malformed join token: want K10<sha256 of the server's CA, 64 hex>::<credential> "
                          "(the server writes it to <data dir>/node-token)");
    for (int i = 0; i < 64; i++) {
        char c = token[3 + i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "malformed join token: the CA hash is not lowercase hex");
        hash[i] = c;
    }
    hash[64] = 0;
    for (const char *p = sep + 2; *p; p++)
        if (*p < 0x21 || *p > 0x7e)
            return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "malformed join token: blank or control character");
    snprintf(cred, credn, "%s", sep + 2);
    return 0;
}

int kc_pki_join_verify_ca(const char *want_hash, const char *ca_pem, size_t len, struct kc_err *err)
{
    char got[65];
    kc_pki_sha256_hex(ca_pem, len, got);
    if (!got[0] || CRYPTO_memcmp(got, want_hash, 64) != 0)
        return kc_err_set(err, KC_EINVALID, 403, "Forbidden",
                          "the server's CA certificate has sha256 %s but the join token expects %.64s: refusing to "
                          "join (wrong server, a token of another cluster, or someone in between)",
                          got[0] ? got : "(none)", want_hash);
    return 0;
}

int kc_pki_join_token(const char *dir, char **token_out, char **cred_out, struct kc_err *err)
{
    char ca_path[4200], tok_path[4200], tmp[4300];
    if (snprintf(ca_path, sizeof ca_path, "%s/ca.crt", dir) >= (int)sizeof ca_path ||
        snprintf(tok_path, sizeof tok_path, "%s/node-token", dir) >= (int)sizeof tok_path)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "pki: data dir path too long");
    char *ca = NULL, *old = NULL;
    size_t calen = 0;
    int rc = slurp(ca_path, CA_FILE_MAX, &ca, &calen, err);
    if (rc == KC_ENOTFOUND)
        return kc_err_set(err, KC_ENOTFOUND, 500, "InternalError", "pki: %s missing", ca_path);
    if (rc)
        return rc;
    char hash[65], cred[200] = "", oh[65];
    kc_pki_sha256_hex(ca, calen, hash);
    free(ca);
    rc = slurp(tok_path, JOIN_FILE_MAX, &old, NULL, err);
    if (rc == 0) {
        old[strcspn(old, "\r\n")] = 0;
        if (kc_pki_join_parse(old, oh, cred, sizeof cred, err))
            cred[0] = 0; /* unreadable: a new secret */
        kc_err_clear(err);
        OPENSSL_cleanse(old, strlen(old));
        free(old);
    } else if (rc != KC_ENOTFOUND) {
        return rc;
    }
    kc_err_clear(err);
    if (!cred[0]) {
        unsigned char raw[32];
        if (RAND_bytes(raw, sizeof raw) != 1)
            return kc_err_set(err, KC_EIO, 500, "InternalError", "pki: no random bytes for the join token");
        int n = snprintf(cred, sizeof cred, "node:");
        for (size_t i = 0; i < sizeof raw; i++)
            n += snprintf(cred + n, sizeof cred - (size_t)n, "%02x", raw[i]);
        OPENSSL_cleanse(raw, sizeof raw);
    }
    char token[300];
    int tl = snprintf(token, sizeof token, "K10%s::%s", hash, cred);
    snprintf(tmp, sizeof tmp, "%s.tmp", tok_path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write(fd, token, (size_t)tl) == tl && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    if (!ok || rename(tmp, tok_path)) {
        unlink(tmp);
        return kc_err_set(err, KC_EIO, 500, "InternalError", "pki: cannot write %s: %s", tok_path, strerror(errno));
    }
    *token_out = strdup(token);
    *cred_out = strdup(cred);
    OPENSSL_cleanse(token, sizeof token);
    OPENSSL_cleanse(cred, sizeof cred);
    if (!*token_out || !*cred_out) {
        free(*token_out);
        free(*cred_out);
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    }
    return 0;
}

/* ---- what a node credential may do -------------------------------------------------------------- */

static bool one_of(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(s, *list))
            return true;
    return false;
}

bool kc_pki_node_may(const char *method, const char *path)
{
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    char seg[8][254];
    int n = 0;
    const char *p = path;
    while (*p == '/')
        p++;
    while (*p && n < 8) { /* split (a longer path than any API path is refused below) */
        size_t len = strcspn(p, "/?");
        if (len >= sizeof seg[0])
            return false;
        memcpy(seg[n], p, len);
        seg[n++][len] = 0;
        p += len;
        if (*p == '?')
            break;
        while (*p == '/')
            p++;
    }
    if (*p && *p != '?')
        return false;
    if (n == 0 || !strcmp(seg[0], "version") || !strcmp(seg[0], "openapi"))
        return get;
    int i; /* index of the first segment after the group/version */
    const char *group;
    if (!strcmp(seg[0], "api")) {
        group = "";
        i = 2;
    } else if (!strcmp(seg[0], "apis")) {
        group = n > 1 ? seg[1] : "";
        i = 3;
    } else {
        return false;
    }
    if (n <= i) /* discovery */
        return get;
    const char *ns = NULL, *res = seg[i];
    if (!strcmp(seg[i], "namespaces") && n >= i + 3) {
        ns = seg[i + 1];
        res = seg[i + 2];
        i += 2;
    }
    const char *sub = n > i + 2 ? seg[i + 2] : "";
    static const char *const readable[] = {"secrets", "configmaps", "services", "endpoints", "serviceaccounts",
                                           "persistentvolumeclaims", "persistentvolumes", "namespaces", "csinodes",
                                           "runtimeclasses", NULL};
    if (!*group && !strcmp(res, "nodes"))
        return true; /* register, status, heartbeats (NodeRestriction's own-node scoping: not yet) */
    if (!*group && !strcmp(res, "pods"))
        return strcmp(method, "POST") != 0 || !strcmp(sub, "eviction"); /* read, status, delete; no creation */
    if (!strcmp(res, "events") && (!*group || !strcmp(group, "events.k8s.io")))
        return true;
    if (!strcmp(group, "coordination.k8s.io") && !strcmp(res, "leases"))
        return ns && !strcmp(ns, "kube-node-lease");
    return get && one_of(res, readable);
}
