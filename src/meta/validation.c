/* validation.c — name, label and annotation rules of Kubernetes (see validation.h).
 *
 * The rules mirror k8s.io/apimachinery pkg/util/validation (DNS-1123 names,
 * "must be no more than N characters") and pkg/api/validate/content (label
 * keys and values, "must be no more than N bytes"), which is where upstream
 * takes each message from. The regular expressions upstream uses are tiny,
 * so they are hand-written matchers here; the regex text only appears in the
 * messages. Everything is stateless and thread-safe.
 */
#include "meta/validation.h"
#include "meta/meta_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

/* ---- fixed message texts (upstream wording, including its double spaces) ---- */

#define RE_DNS_LABEL "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
#define RE_DNS_SUBDOMAIN RE_DNS_LABEL "(\\." RE_DNS_LABEL ")*"
#define RE_LABEL_KEY "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
#define RE_LABEL_VALUE "(" RE_LABEL_KEY ")?"

static const char MSG_SUBDOMAIN[] =
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '" RE_DNS_SUBDOMAIN "')";
static const char MSG_DNS_LABEL[] =
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '" RE_DNS_LABEL "')";
static const char MSG_NO_DOTS[] = "must not contain dots";
static const char MSG_LABEL_KEY_RE[] =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation "
    "is '" RE_LABEL_KEY "')";
static const char MSG_LABEL_KEY_SLASHES[] =
    "a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '" RE_LABEL_KEY "') with an optional DNS subdomain prefix and '/' (e.g. "
    "'example.com/MyName')";
static const char MSG_LABEL_VALUE_RE[] =
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
    "'12345', regex used for validation is '" RE_LABEL_VALUE "')";
static const char MSG_EMPTY[] = "must be non-empty";
/* util/validation says "characters"; api/validate/content says "bytes". */
static const char MSG_MAX253_CHARS[] = "must be no more than 253 characters";
static const char MSG_MAX63_CHARS[] = "must be no more than 63 characters";
static const char MSG_MAX253_BYTES[] = "must be no more than 253 bytes";
static const char MSG_MAX63_BYTES[] = "must be no more than 63 bytes";

static void add(struct kc_vmsgs *m, const char *prefix, const char *text)
{
    if (m->n < KC_VMSGS_MAX)
        m->v[m->n++] = (struct kc_vmsg){prefix, text};
}

/* ---- matchers for the regular expressions ---- */

static bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
static bool is_alnum(char c) { return isascii((unsigned char)c) && isalnum((unsigned char)c); }

/* [a-z0-9]([-a-z0-9]*[a-z0-9])? over s[0..n) */
static bool match_dns_label(const char *s, size_t n)
{
    if (n == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
        return false;
    for (size_t i = 1; i + 1 < n; i++)
        if (!is_lower_alnum(s[i]) && s[i] != '-')
            return false;
    return true;
}

static bool match_dns_subdomain(const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (!match_dns_label(s + start, i - start))
                return false;
            start = i + 1;
        }
    }
    return true;
}

/* ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9] over s[0..n) */
static bool match_label_key(const char *s, size_t n)
{
    if (n == 0 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
        return false;
    for (size_t i = 1; i + 1 < n; i++)
        if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
            return false;
    return true;
}

/* ---- the rules (upstream's Is* functions) ---- */

static void subdomain_rule(const char *s, size_t n, const char *prefix, const char *maxmsg,
                           struct kc_vmsgs *m)
{
    if (n > 253)
        add(m, prefix, maxmsg);
    if (!match_dns_subdomain(s, n))
        add(m, prefix, MSG_SUBDOMAIN);
}

void kc_rule_dns1123_subdomain(const char *s, struct kc_vmsgs *m)
{
    m->n = 0;
    subdomain_rule(s, strlen(s), "", MSG_MAX253_CHARS, m);
}

void kc_rule_dns1123_label(const char *s, struct kc_vmsgs *m)
{
    size_t n = strlen(s);
    m->n = 0;
    if (n > 63)
        add(m, "", MSG_MAX63_CHARS);
    if (!match_dns_label(s, n))
        add(m, "", match_dns_subdomain(s, n) ? MSG_NO_DOTS : MSG_DNS_LABEL);
}

void kc_rule_label_key(const char *s, struct kc_vmsgs *m)
{
    m->n = 0;
    const char *slash = strchr(s, '/');
    const char *name = s;
    if (slash) {
        if (strchr(slash + 1, '/')) { /* more than two parts */
            add(m, "", MSG_LABEL_KEY_SLASHES);
            return;
        }
        size_t plen = (size_t)(slash - s);
        if (plen == 0)
            add(m, "prefix part ", MSG_EMPTY);
        else
            subdomain_rule(s, plen, "prefix part ", MSG_MAX253_BYTES, m);
        name = slash + 1;
    }
    size_t n = strlen(name);
    if (n == 0)
        add(m, "name part ", MSG_EMPTY);
    else if (n > 63)
        add(m, "name part ", MSG_MAX63_BYTES);
    if (!match_label_key(name, n))
        add(m, "name part ", MSG_LABEL_KEY_RE);
}

void kc_rule_label_value(const char *s, struct kc_vmsgs *m)
{
    size_t n = strlen(s);
    m->n = 0;
    if (n > 63)
        add(m, "", MSG_MAX63_BYTES);
    if (n > 0 && !match_label_key(s, n))
        add(m, "", MSG_LABEL_VALUE_RE);
}

int kc_vmsgs_join(const struct kc_vmsgs *m, const char *sep, struct kc_buf *b)
{
    int rc = 0;
    for (int i = 0; i < m->n && !rc; i++) {
        if (i > 0)
            rc = kc_buf_puts(b, sep);
        if (!rc)
            rc = kc_buf_puts(b, m->v[i].prefix);
        if (!rc)
            rc = kc_buf_puts(b, m->v[i].text);
    }
    return rc;
}

/* Length of the valid UTF-8 sequence at p (max bytes left), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
    size_t n;
    unsigned int cp;
    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xe0) == 0xc0) {
        n = 2;
        cp = p[0] & 0x1f;
    } else if ((p[0] & 0xf0) == 0xe0) {
        n = 3;
        cp = p[0] & 0x0f;
    } else if ((p[0] & 0xf8) == 0xf0) {
        n = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    /* reject overlong forms, surrogates and values past U+10FFFF */
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return n;
}

int kc_go_quote(struct kc_buf *b, const char *s, size_t len)
{
    int rc = kc_buf_putc(b, '"');
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (!rc && i < len) {
        unsigned char c = p[i];
        size_t n = utf8_seq(p + i, len - i);
        if (n > 1) {
            rc = kc_buf_append(b, p + i, n);
            i += n;
            continue;
        }
        i++;
        switch (c) {
        case '"': rc = kc_buf_puts(b, "\\\""); break;
        case '\\': rc = kc_buf_puts(b, "\\\\"); break;
        case '\a': rc = kc_buf_puts(b, "\\a"); break;
        case '\b': rc = kc_buf_puts(b, "\\b"); break;
        case '\f': rc = kc_buf_puts(b, "\\f"); break;
        case '\n': rc = kc_buf_puts(b, "\\n"); break;
        case '\r': rc = kc_buf_puts(b, "\\r"); break;
        case '\t': rc = kc_buf_puts(b, "\\t"); break;
        case '\v': rc = kc_buf_puts(b, "\\v"); break;
        default:
            if (n == 1 && c >= 0x20 && c < 0x7f)
                rc = kc_buf_putc(b, (char)c);
            else
                rc = kc_buf_printf(b, "\\x%02x", c);
        }
    }
    if (!rc)
        rc = kc_buf_putc(b, '"');
    return rc;
}

/* ---- public single-message API ---- */

/* One message: returned as is (static). Several: joined with "; " into msg. */
static const char *result(const struct kc_vmsgs *m, char *msg, size_t n)
{
    if (m->n == 0)
        return NULL;
    if (m->n == 1 && m->v[0].prefix[0] == 0)
        return m->v[0].text;
    if (!msg || n == 0)
        return m->v[0].text;
    size_t off = 0;
    msg[0] = 0;
    for (int i = 0; i < m->n && off < n; i++) {
        int w = snprintf(msg + off, n - off, "%s%s%s", i ? "; " : "", m->v[i].prefix, m->v[i].text);
        if (w < 0)
            break;
        off += (size_t)w;
    }
    return msg;
}

const char *kc_validate_dns1123_subdomain(const char *s, char *msg, size_t n)
{
    struct kc_vmsgs m;
    kc_rule_dns1123_subdomain(s ? s : "", &m);
    return result(&m, msg, n);
}

const char *kc_validate_dns1123_label(const char *s, char *msg, size_t n)
{
    struct kc_vmsgs m;
    kc_rule_dns1123_label(s ? s : "", &m);
    return result(&m, msg, n);
}

const char *kc_validate_qualified_name(const char *s, char *msg, size_t n)
{
    struct kc_vmsgs m;
    kc_rule_label_key(s ? s : "", &m);
    return result(&m, msg, n);
}

const char *kc_validate_label_value(const char *s, char *msg, size_t n)
{
    struct kc_vmsgs m;
    kc_rule_label_value(s ? s : "", &m);
    return result(&m, msg, n);
}

/* ---- JSON causes ---- */

static int append_cause(json_t *errs, const char *reason, const char *message, const char *field)
{
    json_t *c = json_pack("{s:s, s:s, s:s}", "reason", reason, "message", message, "field", field);
    if (!c)
        return KC_ENOMEM;
    return json_array_append_new(errs, c) ? KC_ENOMEM : 0;
}

/* field.Invalid(path, value, text).ErrorBody(): `Invalid value: "<value>": <prefix><text>` */
static int append_invalid(json_t *errs, const char *field, const char *value,
                          const struct kc_vmsg *v)
{
    struct kc_buf b;
    kc_buf_init(&b, 64 * 1024 + strlen(value) * 4);
    int rc = kc_buf_puts(&b, "Invalid value: ");
    if (!rc)
        rc = kc_go_quote(&b, value, strlen(value));
    if (!rc)
        rc = kc_buf_printf(&b, ": %s%s", v->prefix, v->text);
    if (!rc)
        rc = append_cause(errs, "FieldValueInvalid", b.data, field);
    kc_buf_release(&b);
    return rc;
}

static int append_rule(json_t *errs, const char *field, const char *value, const char *checked,
                       void (*rule)(const char *, struct kc_vmsgs *))
{
    struct kc_vmsgs m;
    rule(checked, &m);
    int added = 0;
    for (int i = 0; i < m.n; i++)
        if (append_invalid(errs, field, value, &m.v[i]) == 0)
            added++;
    return added;
}

static int append_type_error(json_t *errs, const char *field, const char *what)
{
    char msg[160];
    snprintf(msg, sizeof msg, "Invalid value: \"%s\": must be a string", what);
    return append_cause(errs, "FieldValueTypeInvalid", msg, field) == 0 ? 1 : 0;
}

static const char *json_kind(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_INTEGER:
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    default: return "string";
    }
}

int kc_validate_labels(json_t *labels, const char *path, json_t *errs)
{
    const char *field = path ? path : "metadata.labels";
    if (!labels || json_is_null(labels))
        return 0;
    if (!json_is_object(labels))
        return append_type_error(errs, field, json_kind(labels));
    int added = 0;
    const char *k;
    json_t *v;
    json_object_foreach(labels, k, v) {
        added += append_rule(errs, field, k, k, kc_rule_label_key);
        if (!json_is_string(v)) {
            added += append_type_error(errs, field, json_kind(v));
            continue;
        }
        added += append_rule(errs, field, json_string_value(v), json_string_value(v),
                             kc_rule_label_value);
    }
    return added;
}

int kc_validate_annotations(json_t *annotations, const char *path, json_t *errs)
{
    const char *field = path ? path : "metadata.annotations";
    if (!annotations || json_is_null(annotations))
        return 0;
    if (!json_is_object(annotations))
        return append_type_error(errs, field, json_kind(annotations));
    int added = 0;
    size_t total = 0;
    const char *k;
    json_t *v;
    json_object_foreach(annotations, k, v) {
        /* upstream: QualifiedName except that case does not matter */
        size_t klen = strlen(k);
        char *lower = malloc(klen + 1);
        if (!lower)
            return added;
        for (size_t i = 0; i <= klen; i++)
            lower[i] = (char)tolower((unsigned char)k[i]);
        added += append_rule(errs, field, k, lower, kc_rule_label_key);
        free(lower);
        total += klen;
        if (json_is_string(v))
            total += json_string_length(v);
        else
            added += append_type_error(errs, field, json_kind(v));
    }
    if (total > KC_ANNOTATIONS_MAX_BYTES &&
        append_cause(errs, "FieldValueTooLong", "Too long: may not be more than 262144 bytes", field) == 0)
        added++;
    return added;
}

int kc_validate_append_causes(enum kc_name_rule rule, const char *value, const char *field, json_t *errs)
{
    void (*fn)(const char *, struct kc_vmsgs *);
    switch (rule) {
    case KC_RULE_DNS1123_SUBDOMAIN: fn = kc_rule_dns1123_subdomain; break;
    case KC_RULE_DNS1123_LABEL: fn = kc_rule_dns1123_label; break;
    case KC_RULE_QUALIFIED_NAME: fn = kc_rule_label_key; break;
    case KC_RULE_LABEL_VALUE: fn = kc_rule_label_value; break;
    default: return 0;
    }
    if (!value || !errs)
        return 0;
    return append_rule(errs, field ? field : "", value, value, fn);
}
