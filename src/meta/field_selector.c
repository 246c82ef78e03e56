/* field_selector.c — field selectors (see selector.h), after k8s.io/apimachinery pkg/fields.
 *
 * A field selector is a comma-separated list of terms `field=value`,
 * `field==value` or `field!=value`. Values escape '\', ',' and '=' with a
 * backslash; field names have no escaping, so a term splits at its first
 * operator. As upstream, the terms are sorted (as raw strings) before
 * parsing, empty terms are skipped, a term with empty field and empty value
 * ("=") selects everything and is dropped, and a missing field reads as "".
 *
 * Data: an array of terms {field, unescaped value, negated}. Immutable after
 * parsing, so it may be shared between threads.
 */
#include "meta/selector.h"
#include "meta/meta_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

#define KC_FIELD_SELECTOR_MAX_LEN 65536

struct fterm {
    char *field;
    char *value;
    bool neq;
};

struct kc_field_selector {
    size_t n;
    struct fterm *t;
};

void kc_field_selector_free(struct kc_field_selector *sel)
{
    if (!sel)
        return;
    for (size_t i = 0; i < sel->n; i++) {
        free(sel->t[i].field);
        free(sel->t[i].value);
    }
    free(sel->t);
    free(sel);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Length of the UTF-8 character at p (1 for a stray byte), for error texts. */
static size_t char_len(const unsigned char *p)
{
    size_t n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 1;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 1;
    return n;
}

/* UnescapeValue: "\\" "\," "\=" are the only escapes; bare ',' and '=' are errors. */
static int unescape(const char *s, char **out, struct kc_err *err)
{
    size_t n = strlen(s);
    char *v = malloc(n + 1);
    if (!v)
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\') {
            if (i + 1 == n) {
                free(v);
                return kc_err_set(err, KC_EINVAL, 400, "BadRequest",
                                  "invalid field selector: invalid escape sequence: \\");
            }
            char d = s[++i];
            if (d != '\\' && d != ',' && d != '=') {
                size_t cl = char_len((const unsigned char *)s + i);
                free(v);
                return kc_err_set(err, KC_EINVAL, 400, "BadRequest",
                                  "invalid field selector: invalid escape sequence: \\%.*s", (int)cl, s + i);
            }
            v[o++] = d;
        } else if (c == ',' || c == '=') {
            free(v);
            /* upstream prints the rune as a number (%v of a rune) */
            return kc_err_set(err, KC_EINVAL, 400, "BadRequest",
                              "invalid field selector: unescaped character in value: %d", c);
        } else {
            v[o++] = c;
        }
    }
    v[o] = 0;
    *out = v;
    return 0;
}

/* splitTerm: the first position where "!=", "==" or "=" starts. */
static const char *split_term(const char *t, size_t *oplen, bool *neq)
{
    for (const char *p = t; *p; p++) {
        if (p[0] == '!' && p[1] == '=') {
            *oplen = 2, *neq = true;
            return p;
        }
        if (p[0] == '=') {
            *oplen = p[1] == '=' ? 2 : 1, *neq = false;
            return p;
        }
    }
    return NULL;
}

/* splitTerms: split at commas not preceded by an escaping backslash. */
static int split_terms(char *s, char ***parts, size_t *np)
{
    size_t n = 1;
    bool slash = false;
    for (char *p = s; *p; p++) {
        if (slash)
            slash = false;
        else if (*p == '\\')
            slash = true;
        else if (*p == ',')
            n++;
    }
    char **v = calloc(n, sizeof *v);
    if (!v)
        return KC_ENOMEM;
    size_t k = 0;
    v[k++] = s;
    slash = false;
    for (char *p = s; *p; p++) {
        if (slash)
            slash = false;
        else if (*p == '\\')
            slash = true;
        else if (*p == ',') {
            *p = 0;
            v[k++] = p + 1;
        }
    }
    *parts = v;
    *np = n;
    return 0;
}

static int parse_terms(const char *orig, char **parts, size_t np, struct kc_field_selector *sel,
                       struct kc_err *err)
{
    for (size_t i = 0; i < np; i++) {
        const char *part = parts[i];
        if (!*part)
            continue;
        size_t oplen;
        bool neq;
        const char *op = split_term(part, &oplen, &neq);
        if (!op)
            return kc_err_set(err, KC_EINVAL, 400, "BadRequest",
                              "invalid selector: '%s'; can't understand '%s'", orig, part);
        char *value = NULL;
        int rc = unescape(op + oplen, &value, err);
        if (rc)
            return rc;
        if (op == part && !*value) { /* Transform: empty field and value select everything */
            free(value);
            continue;
        }
        char *field = strndup(part, (size_t)(op - part));
        if (!field) {
            free(value);
            return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
        }
        sel->t[sel->n++] = (struct fterm){field, value, neq};
    }
    return 0;
}

int kc_field_selector_parse(const char *s, struct kc_field_selector **out, struct kc_err *err)
{
    *out = NULL;
    if (!s)
        s = "";
    if (strlen(s) > KC_FIELD_SELECTOR_MAX_LEN)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "field selector longer than %d bytes",
                          KC_FIELD_SELECTOR_MAX_LEN);
    struct kc_field_selector *sel = calloc(1, sizeof *sel);
    char *copy = strdup(s);
    char **parts = NULL;
    size_t np = 0;
    int rc = sel && copy ? 0 : KC_ENOMEM;
    if (!rc && *s)
        rc = split_terms(copy, &parts, &np);
    if (!rc && np) {
        sel->t = calloc(np, sizeof *sel->t);
        if (!sel->t)
            rc = KC_ENOMEM;
    }
    if (rc)
        kc_err_set(err, rc, 500, "InternalError", "out of memory");
    if (!rc && np) {
        qsort(parts, np, sizeof *parts, cmp_str);
        rc = parse_terms(s, parts, np, sel, err);
    }
    free(parts);
    free(copy);
    if (rc) {
        kc_field_selector_free(sel);
        return rc;
    }
    *out = sel;
    return 0;
}

int kc_field_selector_check(const struct kc_field_selector *sel, const char *const *allowed, struct kc_err *err)
{
    for (size_t i = 0; sel && i < sel->n; i++) {
        bool ok = false;
        for (size_t j = 0; allowed && allowed[j] && !ok; j++)
            ok = strcmp(allowed[j], sel->t[i].field) == 0;
        if (!ok)
            return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "field label not supported: %s",
                              sel->t[i].field);
    }
    return 0;
}

bool kc_field_selector_matches(const struct kc_field_selector *sel, kc_lookup_fn lookup, void *obj)
{
    for (size_t i = 0; sel && i < sel->n; i++) {
        const char *v = lookup(obj, sel->t[i].field);
        bool eq = strcmp(v ? v : "", sel->t[i].value) == 0;
        if (eq == sel->t[i].neq)
            return false;
    }
    return true;
}

const char *kc_field_selector_exact(const struct kc_field_selector *sel, const char *field)
{
    for (size_t i = 0; sel && i < sel->n; i++)
        if (!sel->t[i].neq && strcmp(sel->t[i].field, field) == 0)
            return sel->t[i].value;
    return NULL;
}

bool kc_field_selector_empty(const struct kc_field_selector *sel)
{
    return !sel || sel->n == 0;
}

/* EscapeValue: '\' first, then ',' and '='. */
static int put_escaped(struct kc_buf *b, const char *v)
{
    int rc = 0;
    for (; *v && !rc; v++) {
        if (*v == '\\' || *v == ',' || *v == '=')
            rc = kc_buf_putc(b, '\\');
        if (!rc)
            rc = kc_buf_putc(b, *v);
    }
    return rc;
}

char *kc_field_selector_string(const struct kc_field_selector *sel)
{
    struct kc_buf b;
    kc_buf_init(&b, KC_BUF_UNLIMITED);
    int rc = kc_buf_puts(&b, "");
    for (size_t i = 0; sel && !rc && i < sel->n; i++) {
        if (i)
            rc = kc_buf_putc(&b, ',');
        if (!rc)
            rc = kc_buf_printf(&b, "%s%s", sel->t[i].field, sel->t[i].neq ? "!=" : "=");
        if (!rc)
            rc = put_escaped(&b, sel->t[i].value);
    }
    if (rc) {
        kc_buf_release(&b);
        return NULL;
    }
    return kc_buf_steal(&b, NULL);
}
