/* pki.h — the server's certificates, admin token and kubeconfig.
 *
 * On first start kc_pki_load_or_create generates, in the data dir:
 *   ca.crt / ca.key          a self-signed CA (EC P-256, 10 years)
 *   serving.crt / serving.key a serving certificate signed by the CA, SANs
 *                             127.0.0.1, ::1, localhost, the host name and any
 *                             extra names given (1 year)
 *   token                     the admin bearer token (32 random bytes, hex)
 * Later starts reuse them (the serving certificate is re-issued when it is
 * missing, expires within 30 days, or lacks a requested SAN). Keys and the
 * token are written with mode 0600. OpenSSL is used because its X509 API
 * is the most widely known and is already a dependency of libcurl-openssl.
 */
#ifndef KC_PKI_PKI_H
#define KC_PKI_PKI_H

#include <stddef.h>

#include "util/err.h"

struct kc_pki {
    char *ca_pem;        /* CA certificate, PEM */
    char *cert_pem;      /* serving certificate, PEM (leaf only) */
    char *key_pem;       /* serving key, PEM */
    char *token;         /* admin bearer token */
};

/* extra_sans: NULL-terminated list of additional DNS names or IP literals, may be NULL. */
int kc_pki_load_or_create(const char *dir, const char *const *extra_sans, struct kc_pki *out, struct kc_err *err);
void kc_pki_release(struct kc_pki *p);

/* Writes a kubeconfig (cluster "kubec", user "admin", context "kubec",
 * current-context kubec) with the CA embedded (certificate-authority-data)
 * and the bearer token, to path with mode 0600 (atomically: temp + rename). */
int kc_pki_write_kubeconfig(const char *path, const char *server_url, const struct kc_pki *p, struct kc_err *err);

/* SHA-256 of the CA PEM as lowercase hex (65 bytes incl. NUL), for join tokens. */
void kc_pki_ca_hash(const struct kc_pki *p, char out[65]);

/* ---- node join tokens (jointoken.c), as k3s: K10<sha256 hex of ca.crt>::<node credential> ---- */
#include <stdbool.h>

/* Loads or creates <dir>/node-token (0600) for the ca.crt in dir: *token_out the full join token,
 * *cred_out the node credential after "::" ("node:<64 hex>"), the bearer token the API server accepts
 * with node rights. Both malloc'd. */
int kc_pki_join_token(const char *dir, char **token_out, char **cred_out, struct kc_err *err);
/* Splits a join token: hash (64 lowercase hex + NUL) and credential (at most credn-1 bytes). */
int kc_pki_join_parse(const char *token, char hash[65], char *cred, size_t credn, struct kc_err *err);
/* 0 if sha256(ca_pem[0..len)) is want_hash, else KC_EINVALID with a message naming both hashes. */
int kc_pki_join_verify_ca(const char *want_hash, const char *ca_pem, size_t len, struct kc_err *err);
void kc_pki_sha256_hex(const void *data, size_t len, char out[65]);
/* Whether a request (method, path with optional query) is allowed with a node credential: its Node
 * (any), pods (read, status, delete; no create), events, Leases in kube-node-lease, read-only access to
 * secrets/configmaps/services/... and discovery. Everything else is 403 (upstream's Node authorizer in
 * spirit; not yet scoped to the node's own objects). */
bool kc_pki_node_may(const char *method, const char *path);

#endif
