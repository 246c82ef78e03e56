/* test_pki.c — unit tests for src/pki: files and modes on first start,
 * reuse on later starts, chain verification and SANs with OpenSSL's own
 * verifier, re-issue rules (extra SAN, expiry, missing file), kubeconfig
 * read back by libfyaml and by a real kubectl when one is installed.
 * Each test works in its own mkdtemp directory and removes it afterwards.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libfyaml.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "pki/pki.h"

#define KUBECTL "/usr/lib/google-cloud-sdk/bin/kubectl.1.33"

struct fixture {
    char base[64];   /* mkdtemp dir, removed at teardown */
    char dir[128];   /* base/data: not created beforehand, pki must create it */
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->base, sizeof f->base, "/tmp/kc-pki-XXXXXX");
    if (!mkdtemp(f->base))
        return -1;
    snprintf(f->dir, sizeof f->dir, "%s/data", f->base);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    nftw(f->base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void path_in(char *out, size_t n, const struct fixture *f, const char *name)
{
    snprintf(out, n, "%s/%s", f->dir, name);
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return strdup(buf);
}

static X509 *cert_of(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_non_null(x);
    return x;
}

static void load(const struct fixture *f, const char *const *extra, struct kc_pki *p)
{
    struct kc_err err = {0};
    int rc = kc_pki_load_or_create(f->dir, extra, p, &err);
    if (rc != 0)
        fail_msg("kc_pki_load_or_create: %d %s", rc, err.message);
}

/* ---- tests ---- */

static void test_first_call_creates_files(void **state)
{
    struct fixture *f = *state;
    struct kc_pki p;
    load(f, NULL, &p);

    assert_int_equal(mode_of(f->dir), 0700);
    char path[256];
    static const struct {
        const char *name;
        mode_t mode;
    } files[] = {{"ca.crt", 0644}, {"ca.key", 0600}, {"serving.crt", 0644}, {"serving.key", 0600}, {"token", 0600}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        path_in(path, sizeof path, f, files[i].name);
        assert_int_equal(mode_of(path), files[i].mode);
    }

    assert_non_null(strstr(p.ca_pem, "-----BEGIN CERTIFICATE-----"));
    assert_non_null(strstr(p.cert_pem, "-----BEGIN CERTIFICATE-----"));
    assert_non_null(strstr(p.key_pem, "-----BEGIN PRIVATE KEY-----"));
    assert_int_equal(strlen(p.token), 64);
    assert_int_equal(strspn(p.token, "0123456789abcdef"), 64);

    /* The files hold what the struct says. */
    path_in(path, sizeof path, f, "ca.crt");
    char *s = slurp(path);
    assert_string_equal(s, p.ca_pem);
    free(s);
    path_in(path, sizeof path, f, "token");
    s = slurp(path);
    assert_string_equal(s, p.token);
    free(s);

    /* The keys are EC P-256. */
    BIO *b = BIO_new_mem_buf(p.key_pem, -1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_non_null(k);
    char group[64] = "";
    size_t glen = 0;
    assert_int_equal(EVP_PKEY_get_utf8_string_param(k, "group", group, sizeof group, &glen), 1);
    assert_string_equal(group, "prime256v1");
    EVP_PKEY_free(k);
    kc_pki_release(&p);
    assert_null(p.token);
}

static void test_second_call_reuses(void **state)
{
    struct fixture *f = *state;
    struct kc_pki a, b;
    load(f, NULL, &a);
    char path[256];
    path_in(path, sizeof path, f, "ca.key");
    char *cakey1 = slurp(path);
    load(f, NULL, &b);
    char *cakey2 = slurp(path);
    assert_string_equal(a.ca_pem, b.ca_pem);
    assert_string_equal(cakey1, cakey2);
    assert_string_equal(a.token, b.token);
    assert_string_equal(a.cert_pem, b.cert_pem);
    assert_string_equal(a.key_pem, b.key_pem);
    free(cakey1);
    free(cakey2);
    kc_pki_release(&a);
    kc_pki_release(&b);
}

static int verify_chain(const char *ca_pem, const char *cert_pem)
{
    X509 *ca = cert_of(ca_pem), *leaf = cert_of(cert_pem);
    X509_STORE *store = X509_STORE_new();
    X509_STORE_add_cert(store, ca);
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, leaf, NULL);
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
    int ok = X509_verify_cert(ctx);
    if (ok != 1)
        print_error("verify: %s\n", X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    X509_free(ca);
    X509_free(leaf);
    return ok;
}

static void test_serving_cert_verifies_and_has_sans(void **state)
{
    struct fixture *f = *state;
    struct kc_pki p;
    load(f, NULL, &p);
    assert_int_equal(verify_chain(p.ca_pem, p.cert_pem), 1);

    X509 *ca = cert_of(p.ca_pem), *leaf = cert_of(p.cert_pem);
    assert_int_not_equal(X509_check_ca(ca), 0);
    assert_int_equal(X509_check_ca(leaf), 0);
    assert_int_equal(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(leaf, "::1", 0), 1);
    assert_int_equal(X509_check_host(leaf, "localhost", 0, 0, NULL), 1);
    char host[256];
    if (gethostname(host, sizeof host) == 0 && host[0])
        assert_int_equal(X509_check_host(leaf, host, 0, 0, NULL), 1);
    assert_int_not_equal(X509_check_host(leaf, "not-this-host.example", 0, 0, NULL), 1);
    assert_int_not_equal(X509_check_ip_asc(leaf, "10.9.9.9", 0), 1);

    /* ~1 year, started an hour ago. */
    time_t in_300d = time(NULL) + 300L * 86400, in_400d = time(NULL) + 400L * 86400, now = time(NULL);
    assert_int_equal(X509_cmp_time(X509_get0_notAfter(leaf), &in_300d), 1);
    assert_int_equal(X509_cmp_time(X509_get0_notAfter(leaf), &in_400d), -1);
    assert_int_equal(X509_cmp_time(X509_get0_notBefore(leaf), &now), -1);
    /* Serials are random: CA and leaf differ. */
    assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(ca), X509_get0_serialNumber(leaf)), 0);
    X509_free(ca);
    X509_free(leaf);
    kc_pki_release(&p);
}

static void test_extra_san_reissues_serving_only(void **state)
{
    struct fixture *f = *state;
    struct kc_pki a, b, c, d;
    load(f, NULL, &a);
    const char *const extra[] = {"10.1.2.3", "api.example.test", "[fd00::7]", NULL};
    load(f, extra, &b);
    assert_string_equal(a.ca_pem, b.ca_pem);
    assert_string_equal(a.token, b.token);
    assert_string_not_equal(a.cert_pem, b.cert_pem);
    X509 *leaf = cert_of(b.cert_pem);
    assert_int_equal(X509_check_ip_asc(leaf, "10.1.2.3", 0), 1);
    assert_int_equal(X509_check_ip_asc(leaf, "fd00::7", 0), 1);
    assert_int_equal(X509_check_host(leaf, "api.example.test", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(leaf, "localhost", 0, 0, NULL), 1);
    X509_free(leaf);
    assert_int_equal(verify_chain(b.ca_pem, b.cert_pem), 1);

    /* Same request, or a subset of it: kept. */
    load(f, extra, &c);
    assert_string_equal(b.cert_pem, c.cert_pem);
    load(f, NULL, &d);
    assert_string_equal(b.cert_pem, d.cert_pem);
    kc_pki_release(&a);
    kc_pki_release(&b);
    kc_pki_release(&c);
    kc_pki_release(&d);
}

/* Re-signs the current serving cert with notAfter = now + days, in place. */
static void rewrite_serving_expiry(const struct fixture *f, const struct kc_pki *p, long days)
{
    char path[256];
    path_in(path, sizeof path, f, "ca.key");
    char *kpem = slurp(path);
    BIO *b = BIO_new_mem_buf(kpem, -1);
    EVP_PKEY *cakey = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    free(kpem);
    assert_non_null(cakey);
    X509 *leaf = cert_of(p->cert_pem);
    assert_non_null(X509_time_adj_ex(X509_getm_notAfter(leaf), (int)days, 0, NULL));
    assert_true(X509_sign(leaf, cakey, EVP_sha256()) > 0);
    path_in(path, sizeof path, f, "serving.crt");
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(PEM_write_X509(fp, leaf), 1);
    fclose(fp);
    X509_free(leaf);
    EVP_PKEY_free(cakey);
}

static void test_expiring_serving_cert_reissued(void **state)
{
    struct fixture *f = *state;
    struct kc_pki a, b, c;
    load(f, NULL, &a);

    /* 100 days left: still fine, kept. */
    rewrite_serving_expiry(f, &a, 100);
    char path[256];
    path_in(path, sizeof path, f, "serving.crt");
    char *pem100 = slurp(path);
    load(f, NULL, &b);
    assert_string_equal(b.cert_pem, pem100);

    /* 10 days left: re-issued for a year, CA kept. */
    rewrite_serving_expiry(f, &a, 10);
    load(f, NULL, &c);
    assert_string_equal(a.ca_pem, c.ca_pem);
    X509 *leaf = cert_of(c.cert_pem);
    time_t in_300d = time(NULL) + 300L * 86400;
    assert_int_equal(X509_cmp_time(X509_get0_notAfter(leaf), &in_300d), 1);
    X509_free(leaf);
    assert_int_equal(verify_chain(c.ca_pem, c.cert_pem), 1);
    free(pem100);
    kc_pki_release(&a);
    kc_pki_release(&b);
    kc_pki_release(&c);
}

static void test_missing_serving_cert_reissued(void **state)
{
    struct fixture *f = *state;
    struct kc_pki a, b;
    load(f, NULL, &a);
    char path[256];
    path_in(path, sizeof path, f, "serving.crt");
    assert_int_equal(unlink(path), 0);
    load(f, NULL, &b);
    assert_string_equal(a.ca_pem, b.ca_pem);
    assert_string_equal(a.token, b.token);
    assert_string_not_equal(a.cert_pem, b.cert_pem);
    assert_int_equal(mode_of(path), 0644);
    assert_int_equal(verify_chain(b.ca_pem, b.cert_pem), 1);
    kc_pki_release(&a);
    kc_pki_release(&b);
}

static void test_missing_ca_key_is_an_error(void **state)
{
    struct fixture *f = *state;
    struct kc_pki a, b;
    load(f, NULL, &a);
    char path[256];
    path_in(path, sizeof path, f, "ca.key");
    assert_int_equal(unlink(path), 0);
    struct kc_err err = {0};
    assert_int_equal(kc_pki_load_or_create(f->dir, NULL, &b, &err), KC_EIO);
    assert_non_null(strstr(err.message, "ca.key"));
    assert_null(b.ca_pem);
    /* ca.crt was not replaced behind the clients' back. */
    path_in(path, sizeof path, f, "ca.crt");
    char *s = slurp(path);
    assert_string_equal(s, a.ca_pem);
    free(s);
    kc_pki_release(&a);
}

static void test_bad_extra_san_rejected(void **state)
{
    struct fixture *f = *state;
    struct kc_pki p;
    struct kc_err err = {0};
    const char *const bad[] = {"ok.example", "two words", NULL};
    assert_int_equal(kc_pki_load_or_create(f->dir, bad, &p, &err), KC_EINVAL);
    assert_non_null(strstr(err.message, "two words"));
    const char *const bad2[] = {"a,DNS:evil", NULL};
    assert_int_equal(kc_pki_load_or_create(f->dir, bad2, &p, &err), KC_EINVAL);
}

static void test_user_token_kept(void **state)
{
    struct fixture *f = *state;
    struct kc_pki a, b;
    load(f, NULL, &a);
    char path[256];
    path_in(path, sizeof path, f, "token");
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("my-own-token\n", fp);
    fclose(fp);
    load(f, NULL, &b);
    assert_string_equal(b.token, "my-own-token");
    kc_pki_release(&a);
    kc_pki_release(&b);
}

static const char *scalar_at(struct fy_document *fyd, const char *path)
{
    struct fy_node *n = fy_node_by_path(fy_document_root(fyd), path, (size_t)-1, FYNWF_DONT_FOLLOW);
    if (!n)
        fail_msg("kubeconfig has no %s", path);
    const char *s = fy_node_get_scalar0(n);
    if (!s)
        fail_msg("kubeconfig %s is not a scalar", path);
    return s;
}

static void test_kubeconfig(void **state)
{
    struct fixture *f = *state;
    struct kc_pki p;
    load(f, NULL, &p);
    char kc[256];
    snprintf(kc, sizeof kc, "%s/kubeconfig", f->base);
    struct kc_err err = {0};
    assert_int_equal(kc_pki_write_kubeconfig(kc, "https://127.0.0.1:6443", &p, &err), 0);
    assert_int_equal(mode_of(kc), 0600);

    struct fy_document *fyd = fy_document_build_from_file(NULL, kc);
    assert_non_null(fyd);
    assert_string_equal(scalar_at(fyd, "/apiVersion"), "v1");
    assert_string_equal(scalar_at(fyd, "/kind"), "Config");
    assert_string_equal(scalar_at(fyd, "/current-context"), "kubec");
    assert_string_equal(scalar_at(fyd, "/clusters/0/name"), "kubec");
    assert_string_equal(scalar_at(fyd, "/clusters/0/cluster/server"), "https://127.0.0.1:6443");
    assert_string_equal(scalar_at(fyd, "/users/0/name"), "admin");
    assert_string_equal(scalar_at(fyd, "/users/0/user/token"), p.token);
    assert_string_equal(scalar_at(fyd, "/contexts/0/name"), "kubec");
    assert_string_equal(scalar_at(fyd, "/contexts/0/context/cluster"), "kubec");
    assert_string_equal(scalar_at(fyd, "/contexts/0/context/user"), "admin");
    const char *ca64 = scalar_at(fyd, "/clusters/0/cluster/certificate-authority-data");
    unsigned char *dec = calloc(1, strlen(ca64) + 1);
    int n = EVP_DecodeBlock(dec, (const unsigned char *)ca64, (int)strlen(ca64));
    assert_true(n >= (int)strlen(p.ca_pem));
    assert_memory_equal(dec, p.ca_pem, strlen(p.ca_pem));
    free(dec);
    fy_document_destroy(fyd);

    /* Overwriting keeps 0600 and leaves no temp files behind. */
    assert_int_equal(kc_pki_write_kubeconfig(kc, "https://[::1]:6443", &p, &err), 0);
    assert_int_equal(mode_of(kc), 0600);
    char pattern[256];
    snprintf(pattern, sizeof pattern, "ls -a %s | grep -c tmp", f->base);
    FILE *ls = popen(pattern, "r");
    char cnt[16] = "";
    assert_non_null(fgets(cnt, sizeof cnt, ls));
    pclose(ls);
    assert_string_equal(cnt, "0\n");

    /* A real client reads it. */
    if (access(KUBECTL, X_OK) != 0) {
        print_message("SKIP kubectl check: %s not installed\n", KUBECTL);
    } else {
        char cmd[512];
        snprintf(cmd, sizeof cmd,
                 "timeout 60 " KUBECTL " --kubeconfig %s config view --raw -o jsonpath='{.users[0].user.token}'", kc);
        FILE *pp = popen(cmd, "r");
        assert_non_null(pp);
        char out[256] = "";
        size_t got = fread(out, 1, sizeof out - 1, pp);
        out[got] = '\0';
        assert_int_equal(pclose(pp), 0);
        assert_string_equal(out, p.token);
        snprintf(cmd, sizeof cmd,
                 "timeout 60 " KUBECTL " --kubeconfig %s config view --raw -o jsonpath='{.clusters[0].cluster.server}'",
                 kc);
        pp = popen(cmd, "r");
        got = fread(out, 1, sizeof out - 1, pp);
        out[got] = '\0';
        assert_int_equal(pclose(pp), 0);
        assert_string_equal(out, "https://[::1]:6443");
    }

    /* Malformed input is refused, not written. */
    char bad[256];
    snprintf(bad, sizeof bad, "%s/bad-kubeconfig", f->base);
    assert_int_equal(kc_pki_write_kubeconfig(bad, "https://x\nevil: 1", &p, &err), KC_EINVAL);
    assert_int_equal(access(bad, F_OK), -1);
    kc_pki_release(&p);
}

static void test_ca_hash(void **state)
{
    (void)state;
    char abc[] = "abc";
    struct kc_pki p = {.ca_pem = abc};
    char out[65];
    kc_pki_ca_hash(&p, out);
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_call_creates_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_call_reuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serving_cert_verifies_and_has_sans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extra_san_reissues_serving_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiring_serving_cert_reissued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_serving_cert_reissued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_ca_key_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_extra_san_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_token_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubeconfig, setup, teardown),
        cmocka_unit_test(test_ca_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
