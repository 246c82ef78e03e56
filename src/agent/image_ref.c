/* image_ref.c — image references: parsing, validation and normalisation.
 *
 * Grammar (as the distribution reference grammar, which container runtimes apply):
 *   reference := name [ ":" tag ] [ "@" digest ]
 *   name      := [ domain "/" ] component ( "/" component )*
 *   domain    := the first component when it has a "." or ":" or is "localhost"
 *   component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
 *   tag       := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
 *   digest    := "sha256:" 64 lowercase hex digits
 * Normalisation: no domain → docker.io; a single docker.io component gets "library/"; neither tag nor
 * digest → ":latest". The whole name (domain/repo) is at most 255 characters.
 * No state, no threads.
 */
#include "agent/image_int.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static int invalid(struct kc_err *err, const char *s, const char *why)
{
    return kc_err_set(err, KC_EINVAL, 0, "InvalidImageName", "Failed to apply default image tag \"%.300s\": %s", s,
                      why);
}

bool kc_image_digest_valid(const char *d)
{
    if (strncmp(d, "sha256:", 7) != 0 || strlen(d) != 7 + 64)
        return false;
    for (const char *p = d + 7; *p; p++)
        if (!isdigit((unsigned char)*p) && !(*p >= 'a' && *p <= 'f'))
            return false;
    return true;
}

static bool alnum_lower(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* One path component between s and e. */
static bool component_valid(const char *s, const char *e)
{
    if (s == e || !alnum_lower(*s) || !alnum_lower(e[-1]))
        return false;
    for (const char *p = s; p < e; p++) {
        if (alnum_lower(*p))
            continue;
        if (*p == '.' || *p == '_') {
            /* "." and "_" alone, or "__"; always followed by alnum */
            if (*p == '_' && p[1] == '_')
                p++;
            if (!alnum_lower(p[1]))
                return false;
        } else if (*p == '-') {
            while (p[1] == '-')
                p++;
            if (!alnum_lower(p[1]))
                return false;
        } else {
            return false;
        }
    }
    return true;
}

static bool domain_valid(const char *s, const char *e)
{
    const char *colon = memchr(s, ':', (size_t)(e - s));
    const char *hend = colon ? colon : e;
    if (hend == s)
        return false;
    for (const char *p = s; p < hend; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-')
            return false;
    if (*s == '-' || *s == '.' || hend[-1] == '-' || hend[-1] == '.')
        return false;
    if (colon) {
        if (colon + 1 == e || e - colon > 6)
            return false;
        for (const char *p = colon + 1; p < e; p++)
            if (!isdigit((unsigned char)*p))
                return false;
    }
    return true;
}

static bool tag_valid(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (isalnum((unsigned char)c) || c == '_')
            continue;
        if (i > 0 && (c == '.' || c == '-'))
            continue;
        return false;
    }
    return true;
}

static bool is_domain(const char *s, const char *e)
{
    return memchr(s, '.', (size_t)(e - s)) || memchr(s, ':', (size_t)(e - s)) ||
           ((size_t)(e - s) == 9 && memcmp(s, "localhost", 9) == 0);
}

/* Splits "name[:tag]" (no digest) into domain, repo and tag. */
static int parse_name(const char *orig, char *nm, struct kc_image_ref *out, struct kc_err *err)
{
    char *slash = strrchr(nm, '/');
    char *colon = strrchr(slash ? slash : nm, ':');
    if (colon) {
        *colon = 0;
        if (!tag_valid(colon + 1))
            return invalid(err, orig, "invalid tag");
        snprintf(out->tag, sizeof out->tag, "%s", colon + 1);
    }
    char *first = strchr(nm, '/');
    const char *repo = nm;
    if (first && is_domain(nm, first)) {
        if (!domain_valid(nm, first))
            return invalid(err, orig, "invalid registry host");
        if ((size_t)(first - nm) >= sizeof out->domain)
            return invalid(err, orig, "registry host too long");
        memcpy(out->domain, nm, (size_t)(first - nm));
        out->domain[first - nm] = 0;
        repo = first + 1;
    } else {
        snprintf(out->domain, sizeof out->domain, "docker.io");
    }
    if (strcmp(out->domain, "index.docker.io") == 0)
        snprintf(out->domain, sizeof out->domain, "docker.io");
    if (!*repo)
        return invalid(err, orig, "empty repository name");
    for (const char *c = repo;;) {
        const char *e = strchr(c, '/');
        if (!e)
            e = c + strlen(c);
        if (!component_valid(c, e)) {
            for (const char *p = c; p < e; p++)
                if (isupper((unsigned char)*p))
                    return invalid(err, orig, "repository name must be lowercase");
            return invalid(err, orig, "invalid reference format");
        }
        if (!*e)
            break;
        c = e + 1;
    }
    bool lib = strcmp(out->domain, "docker.io") == 0 && !strchr(repo, '/');
    int n = snprintf(out->repo, sizeof out->repo, "%s%s", lib ? "library/" : "", repo);
    if (n < 0 || (size_t)n >= sizeof out->repo || strlen(out->domain) + 1 + strlen(out->repo) > 255)
        return invalid(err, orig, "repository name must not be more than 255 characters");
    return 0;
}

int kc_image_ref_parse(const char *s, struct kc_image_ref *out, struct kc_err *err)
{
    memset(out, 0, sizeof *out);
    if (!s || !*s)
        return invalid(err, "", "empty image name");
    size_t len = strlen(s);
    if (len >= KC_IMG_REF_MAX)
        return invalid(err, s, "reference too long");
    char nm[KC_IMG_REF_MAX];
    memcpy(nm, s, len + 1);
    for (size_t i = 0; i < len; i++)
        if (isspace((unsigned char)nm[i]) || (unsigned char)nm[i] < 0x20)
            return invalid(err, s, "invalid reference format");
    char *at = strchr(nm, '@');
    if (at) {
        *at = 0;
        if (!kc_image_digest_valid(at + 1))
            return invalid(err, s, "invalid digest (want sha256:<64 hex digits>)");
        snprintf(out->digest, sizeof out->digest, "%s", at + 1);
    }
    int rc = parse_name(s, nm, out, err);
    if (rc)
        return rc;
    if (!*out->tag && !*out->digest)
        snprintf(out->tag, sizeof out->tag, "latest");
    if (snprintf(out->name, sizeof out->name, "%s/%s%s%s%s%s", out->domain, out->repo, *out->tag ? ":" : "",
                 out->tag, *out->digest ? "@" : "", out->digest) >= (int)sizeof out->name)
        return invalid(err, s, "reference too long");
    return 0;
}

const char *kc_image_ref_api_host(const char *domain)
{
    return strcmp(domain, "docker.io") == 0 ? "registry-1.docker.io" : domain;
}
