/* selector.c — label selectors (see selector.h), after k8s.io/apimachinery pkg/labels.
 *
 * Parsing follows upstream's structure: a lexer turns the whole string into
 * tokens first, then a recursive-descent parser reads them with one token of
 * lookahead; "in"/"notin" count as identifiers where a value is expected.
 * Each requirement then goes through the same checks as upstream's
 * NewRequirement, whose errors are aggregated like upstream's
 * utilerrors.Aggregate ("[e1, e2]" for several). The messages are upstream's.
 *
 * Data: a selector is an array of requirements sorted by key (stable), each
 * with its key, operator and values (sorted and de-duplicated when parsed
 * from a string, kept as given from JSON, as upstream). A "nothing" flag
 * marks the selector built from a null metav1.LabelSelector. Immutable after
 * construction, so it may be shared between threads for matching.
 */
#include "meta/selector.h"
#include "meta/meta_internal.h"

#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

#define KC_SELECTOR_MAX_LEN 65536
#define KC_SELECTOR_MAX_VALUES 4096
#define MSG_MAX (16 * 1024)

enum op { OP_IN, OP_NOTIN, OP_EQ, OP_DEQ, OP_NEQ, OP_EXISTS, OP_DNE, OP_GT, OP_LT };

static const char BINARY_OPS[] = "in, notin, =, ==, !=, gt, lt";

struct req {
    char *key;
    enum op op;
    char **vals;
    size_t nvals;
};

struct kc_label_selector {
    bool nothing;
    size_t n;
    struct req *r;
};

/* ---- small helpers ---- */

static void req_free(struct req *r)
{
    free(r->key);
    for (size_t i = 0; i < r->nvals; i++)
        free(r->vals[i]);
    free(r->vals);
}

void kc_label_selector_free(struct kc_label_selector *sel)
{
    if (!sel)
        return;
    for (size_t i = 0; i < sel->n; i++)
        req_free(&sel->r[i]);
    free(sel->r);
    free(sel);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Go's strconv.ParseInt(s, 10, 64). */
static bool parse_i64(const char *s, int64_t *out)
{
    if (!*s)
        return false;
    const char *p = s;
    bool neg = false;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    if (!*p)
        return false;
    uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        unsigned d = (unsigned)(*p - '0');
        if (v > (lim - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

/* ---- aggregated field errors (upstream's field.ErrorList.ToAggregate) ---- */

struct errlist {
    size_t n;
    char *e[16];
};

static void errlist_add(struct errlist *l, struct kc_buf *b)
{
    char *s = kc_buf_steal(b, NULL);
    if (!s)
        return;
    for (size_t i = 0; i < l->n; i++) { /* the aggregate prints duplicates once */
        if (strcmp(l->e[i], s) == 0) {
            free(s);
            return;
        }
    }
    if (l->n < sizeof l->e / sizeof l->e[0])
        l->e[l->n++] = s;
    else
        free(s);
}

static void errlist_free(struct errlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->e[i]);
    l->n = 0;
}

/* Writes the aggregate's Error() into err (prefixed) and returns KC_EINVAL. */
static int errlist_report(struct errlist *l, const char *prefix, struct kc_err *err)
{
    struct kc_buf b;
    kc_buf_init(&b, MSG_MAX);
    kc_buf_puts(&b, prefix);
    if (l->n > 1)
        kc_buf_putc(&b, '[');
    for (size_t i = 0; i < l->n; i++) {
        if (i)
            kc_buf_puts(&b, ", ");
        kc_buf_puts(&b, l->e[i]);
    }
    if (l->n > 1)
        kc_buf_putc(&b, ']');
    int rc = kc_err_set(err, KC_EINVAL, 400, "BadRequest", "%s", b.data ? b.data : prefix);
    kc_buf_release(&b);
    errlist_free(l);
    return rc;
}

/* Go's json.Marshal of a []string (nil → null), HTML-safe as Go's encoder is. */
static void json_strings(struct kc_buf *b, char **v, size_t n, bool nil)
{
    if (nil) {
        kc_buf_puts(b, "null");
        return;
    }
    kc_buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            kc_buf_putc(b, ',');
        kc_buf_putc(b, '"');
        for (const unsigned char *p = (const unsigned char *)v[i]; *p; p++) {
            if (*p == '"' || *p == '\\')
                kc_buf_printf(b, "\\%c", *p);
            else if (*p == '\n')
                kc_buf_puts(b, "\\n");
            else if (*p == '\r')
                kc_buf_puts(b, "\\r");
            else if (*p == '\t')
                kc_buf_puts(b, "\\t");
            else if (*p < 0x20 || *p == '<' || *p == '>' || *p == '&')
                kc_buf_printf(b, "\\u%04x", *p);
            else
                kc_buf_putc(b, (char)*p);
        }
        kc_buf_putc(b, '"');
    }
    kc_buf_putc(b, ']');
}

/* "<field>: Invalid value: <value>: <detail>" with a string value (%q). */
static void invalid_str(struct errlist *l, const char *field, const char *value, const char *detail)
{
    struct kc_buf b;
    kc_buf_init(&b, MSG_MAX);
    kc_buf_printf(&b, "%s: Invalid value: ", field);
    kc_go_quote(&b, value, strlen(value));
    kc_buf_printf(&b, ": %s", detail);
    errlist_add(l, &b);
}

static void invalid_list(struct errlist *l, const char *field, char **v, size_t n, bool nil,
                         const char *detail)
{
    struct kc_buf b;
    kc_buf_init(&b, MSG_MAX);
    kc_buf_printf(&b, "%s: Invalid value: ", field);
    json_strings(&b, v, n, nil);
    kc_buf_printf(&b, ": %s", detail);
    errlist_add(l, &b);
}

/* validateLabelKey / validateLabelValue: all messages joined with "; ". */
static bool check_rule(struct errlist *l, const char *field, const char *value,
                       void (*rule)(const char *, struct kc_vmsgs *))
{
    struct kc_vmsgs m;
    rule(value, &m);
    if (m.n == 0)
        return true;
    struct kc_buf joined;
    kc_buf_init(&joined, MSG_MAX);
    kc_vmsgs_join(&m, "; ", &joined);
    invalid_str(l, field, value, joined.data ? joined.data : "");
    kc_buf_release(&joined);
    return false;
}

/* upstream's NewRequirement checks; `nil` says the values slice is nil (JSON without values). */
static void check_requirement(const struct req *r, bool nil, struct errlist *l)
{
    check_rule(l, "key", r->key, kc_rule_label_key);
    switch (r->op) {
    case OP_IN:
    case OP_NOTIN:
        if (r->nvals == 0)
            invalid_list(l, "values", r->vals, r->nvals, nil,
                         "for 'in', 'notin' operators, values set can't be empty");
        break;
    case OP_EQ:
    case OP_DEQ:
    case OP_NEQ:
        if (r->nvals != 1)
            invalid_list(l, "values", r->vals, r->nvals, nil,
                         "exact-match compatibility requires one single value");
        break;
    case OP_EXISTS:
    case OP_DNE:
        if (r->nvals != 0)
            invalid_list(l, "values", r->vals, r->nvals, nil,
                         "values set must be empty for exists and does not exist");
        break;
    case OP_GT:
    case OP_LT:
        if (r->nvals != 1)
            invalid_list(l, "values", r->vals, r->nvals, nil,
                         "for 'Gt', 'Lt' operators, exactly one value is required");
        for (size_t i = 0; i < r->nvals; i++) {
            int64_t v;
            char field[32];
            snprintf(field, sizeof field, "values[%zu]", i);
            if (!parse_i64(r->vals[i], &v))
                invalid_str(l, field, r->vals[i], "for 'Gt', 'Lt' operators, the value must be an integer");
        }
        break;
    }
    for (size_t i = 0; i < r->nvals; i++) {
        struct kc_buf f;
        kc_buf_init(&f, MSG_MAX);
        kc_buf_printf(&f, "values[%zu][%s]", i, r->key);
        check_rule(l, f.data ? f.data : "values", r->vals[i], kc_rule_label_value);
        kc_buf_release(&f);
    }
}

/* ---- selector assembly ---- */

static int sel_push(struct kc_label_selector *s, size_t *cap, struct req *r)
{
    if (s->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        struct req *p = realloc(s->r, nc * sizeof *p);
        if (!p)
            return KC_ENOMEM;
        s->r = p;
        *cap = nc;
    }
    s->r[s->n++] = *r;
    return 0;
}

/* Stable sort by key (insertion sort keeps equal keys in input order, as upstream's small sorts do). */
static void sel_sort(struct kc_label_selector *s)
{
    for (size_t i = 1; i < s->n; i++) {
        struct req t = s->r[i];
        size_t j = i;
        while (j > 0 && strcmp(s->r[j - 1].key, t.key) > 0) {
            s->r[j] = s->r[j - 1];
            j--;
        }
        s->r[j] = t;
    }
}

/* ---- lexer ---- */

enum tok {
    T_EOS, T_CPAR, T_COMMA, T_NOT, T_DEQ, T_EQ, T_GT, T_ID, T_IN, T_LT, T_NEQ, T_NOTIN, T_OPAR,
};

struct token {
    enum tok t;
    const char *lit;
    size_t len;
};

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
static bool is_special(char c)
{
    return c == '=' || c == '!' || c == '(' || c == ')' || c == ',' || c == '>' || c == '<';
}

static int special_token(const char *s, size_t n, enum tok *t)
{
    static const struct { const char *s; enum tok t; } T[] = {
        {")", T_CPAR}, {",", T_COMMA}, {"!", T_NOT}, {"==", T_DEQ}, {"=", T_EQ}, {">", T_GT},
        {"<", T_LT},   {"!=", T_NEQ},  {"(", T_OPAR},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        if (strlen(T[i].s) == n && memcmp(T[i].s, s, n) == 0) {
            *t = T[i].t;
            return 1;
        }
    }
    return 0;
}

/* Scans one token at *pos; special symbols take the longest operator they form. */
static struct token lex(const char *s, size_t *pos)
{
    while (is_ws(s[*pos]))
        (*pos)++;
    struct token k = {T_EOS, s + *pos, 0};
    if (!s[*pos])
        return k;
    size_t start = *pos;
    if (is_special(s[start])) {
        enum tok t, last = T_EOS;
        size_t lastlen = 0;
        for (size_t i = start; s[i] && is_special(s[i]); i++) {
            if (special_token(s + start, i - start + 1, &t)) {
                last = t;
                lastlen = i - start + 1;
            } else {
                break;
            }
        }
        /* every single special character is an operator, so lastlen ≥ 1 */
        *pos = start + lastlen;
        k.t = last;
        k.len = lastlen;
        return k;
    }
    while (s[*pos] && !is_special(s[*pos]) && !is_ws(s[*pos]))
        (*pos)++;
    k.len = *pos - start;
    if (k.len == 2 && memcmp(k.lit, "in", 2) == 0)
        k.t = T_IN;
    else if (k.len == 5 && memcmp(k.lit, "notin", 5) == 0)
        k.t = T_NOTIN;
    else
        k.t = T_ID;
    return k;
}

/* ---- parser ---- */

enum ctx { CTX_KEY_OP, CTX_VALUES };

struct parser {
    struct token *items;
    size_t n, pos;
};

static struct token peek(struct parser *p, enum ctx c)
{
    struct token k = p->items[p->pos];
    if (c == CTX_VALUES && (k.t == T_IN || k.t == T_NOTIN))
        k.t = T_ID;
    return k;
}

static struct token take(struct parser *p, enum ctx c)
{
    struct token k = peek(p, c);
    if (p->pos + 1 < p->n) /* the final T_EOS is never consumed past */
        p->pos++;
    return k;
}

static int fail(struct kc_err *err, const char *fmt, const struct token *k, const char *more)
{
    return kc_err_set(err, KC_EINVAL, 400, "BadRequest", fmt, (int)k->len, k->lit, more);
}

/* A growing, de-duplicated value set (upstream's sets.String). */
struct valset {
    char **v;
    size_t n, cap;
};

static int valset_add(struct valset *s, const char *lit, size_t len)
{
    for (size_t i = 0; i < s->n; i++)
        if (strlen(s->v[i]) == len && memcmp(s->v[i], lit, len) == 0)
            return 0;
    if (s->n >= KC_SELECTOR_MAX_VALUES)
        return KC_ETOOLARGE;
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 4;
        char **p = realloc(s->v, nc * sizeof *p);
        if (!p)
            return KC_ENOMEM;
        s->v = p;
        s->cap = nc;
    }
    s->v[s->n] = strndup(lit, len);
    if (!s->v[s->n])
        return KC_ENOMEM;
    s->n++;
    return 0;
}

static void valset_free(struct valset *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int parse_values(struct parser *p, struct valset *vs, struct kc_err *err)
{
    struct token k = take(p, CTX_VALUES);
    if (k.t != T_OPAR)
        return fail(err, "found '%.*s' expected: '('%s", &k, "");
    struct token first = peek(p, CTX_VALUES);
    if (first.t == T_CPAR) { /* "()" is the set {""} */
        take(p, CTX_VALUES);
        return valset_add(vs, "", 0);
    }
    if (first.t != T_ID && first.t != T_COMMA)
        return fail(err, "found '%.*s', expected: ',', ')' or identifier%s", &first, "");
    for (;;) {
        int rc = 0;
        k = take(p, CTX_VALUES);
        if (k.t == T_ID) {
            rc = valset_add(vs, k.lit, k.len);
            struct token nx = peek(p, CTX_VALUES);
            if (!rc && nx.t == T_CPAR)
                break;
            if (!rc && nx.t != T_COMMA)
                return fail(err, "found '%.*s', expected: ',' or ')'%s", &nx, "");
        } else if (k.t == T_COMMA) { /* empty values around commas: "(,", ",,", ",)" */
            if (vs->n == 0)
                rc = valset_add(vs, "", 0);
            struct token nx = peek(p, CTX_VALUES);
            if (!rc && nx.t == T_CPAR) {
                rc = valset_add(vs, "", 0);
                if (!rc)
                    break;
            }
            if (!rc && nx.t == T_COMMA)
                rc = valset_add(vs, "", 0);
        } else {
            return fail(err, "found '%.*s', expected: ',', or identifier%s", &k, "");
        }
        if (rc)
            return kc_err_set(err, rc, 400, "BadRequest", "too many values in label selector");
    }
    take(p, CTX_VALUES); /* the ')' just seen */
    return 0;
}

static int parse_requirement(struct parser *p, struct req *out, struct kc_err *err)
{
    memset(out, 0, sizeof *out);
    bool dne = false;
    struct token k = take(p, CTX_VALUES);
    if (k.t == T_NOT) {
        dne = true;
        k = take(p, CTX_VALUES);
    }
    if (k.t != T_ID)
        return fail(err, "unable to parse requirement: found '%.*s', expected: identifier%s", &k, "");
    char *key = strndup(k.lit, k.len);
    if (!key)
        return KC_ENOMEM;
    struct errlist l = {0};
    if (!check_rule(&l, "<nil>", key, kc_rule_label_key)) {
        free(key);
        return errlist_report(&l, "unable to parse requirement: ", err);
    }
    out->key = key;
    struct token nx = peek(p, CTX_VALUES);
    if (dne || nx.t == T_EOS || nx.t == T_COMMA) {
        out->op = dne ? OP_DNE : OP_EXISTS;
        return 0;
    }
    k = take(p, CTX_KEY_OP);
    switch (k.t) {
    case T_IN: out->op = OP_IN; break;
    case T_NOTIN: out->op = OP_NOTIN; break;
    case T_EQ: out->op = OP_EQ; break;
    case T_DEQ: out->op = OP_DEQ; break;
    case T_NEQ: out->op = OP_NEQ; break;
    case T_GT: out->op = OP_GT; break;
    case T_LT: out->op = OP_LT; break;
    default:
        return fail(err, "unable to parse requirement: found '%.*s', expected: %s", &k, BINARY_OPS);
    }
    struct valset vs = {0};
    int rc = 0;
    if (out->op == OP_IN || out->op == OP_NOTIN) {
        struct kc_err inner;
        kc_err_clear(&inner);
        rc = parse_values(p, &vs, &inner);
        if (rc) {
            valset_free(&vs);
            return kc_err_set(err, rc, 400, "BadRequest", "unable to parse requirement: %s", inner.message);
        }
    } else {
        nx = peek(p, CTX_VALUES);
        if (nx.t == T_EOS || nx.t == T_COMMA) {
            rc = valset_add(&vs, "", 0);
        } else {
            k = take(p, CTX_VALUES);
            if (k.t != T_ID)
                return fail(err, "unable to parse requirement: found '%.*s', expected: identifier%s", &k, "");
            rc = valset_add(&vs, k.lit, k.len);
        }
        if (rc) {
            valset_free(&vs);
            return KC_ENOMEM;
        }
    }
    if (vs.n > 1)
        qsort(vs.v, vs.n, sizeof *vs.v, cmp_str); /* sets.String.List() is sorted */
    out->vals = vs.v;
    out->nvals = vs.n;
    check_requirement(out, false, &l);
    if (l.n)
        return errlist_report(&l, "unable to parse requirement: ", err);
    return 0;
}

static int parse_all(struct parser *p, struct kc_label_selector *s, struct kc_err *err)
{
    size_t cap = 0;
    for (;;) {
        struct token k = peek(p, CTX_VALUES);
        if (k.t == T_EOS)
            return 0;
        if (k.t != T_ID && k.t != T_NOT)
            return fail(err, "found '%.*s', expected: !, identifier, or 'end of string'%s", &k, "");
        struct req r;
        int rc = parse_requirement(p, &r, err);
        if (!rc)
            rc = sel_push(s, &cap, &r);
        if (rc) {
            req_free(&r);
            return rc;
        }
        k = take(p, CTX_VALUES);
        if (k.t == T_EOS)
            return 0;
        if (k.t != T_COMMA)
            return fail(err, "found '%.*s', expected: ',' or 'end of string'%s", &k, "");
        struct token nx = peek(p, CTX_VALUES);
        if (nx.t != T_ID && nx.t != T_NOT)
            return fail(err, "found '%.*s', expected: identifier after ','%s", &nx, "");
    }
}

int kc_label_selector_parse(const char *s, struct kc_label_selector **out, struct kc_err *err)
{
    *out = NULL;
    if (!s)
        s = "";
    size_t len = strlen(s);
    if (len > KC_SELECTOR_MAX_LEN)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "label selector longer than %d bytes",
                          KC_SELECTOR_MAX_LEN);
    struct kc_label_selector *sel = calloc(1, sizeof *sel);
    struct parser p = {calloc(len + 1, sizeof(struct token)), 0, 0};
    if (!sel || !p.items) {
        free(sel);
        free(p.items);
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    }
    size_t pos = 0;
    do { /* every token but EOS consumes at least one byte: len + 1 slots suffice */
        p.items[p.n] = lex(s, &pos);
    } while (p.items[p.n++].t != T_EOS);
    int rc = parse_all(&p, sel, err);
    free(p.items);
    if (rc) {
        kc_label_selector_free(sel);
        return rc;
    }
    sel_sort(sel);
    *out = sel;
    return 0;
}

/* ---- metav1.LabelSelector ---- */

static int json_requirement(const char *key, enum op op, json_t *values, struct req *r,
                            struct kc_err *err)
{
    memset(r, 0, sizeof *r);
    r->op = op;
    r->key = strdup(key);
    if (!r->key)
        return KC_ENOMEM;
    size_t n = json_is_array(values) ? json_array_size(values) : 0;
    if (n > KC_SELECTOR_MAX_VALUES)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "too many values in label selector");
    if (n) {
        r->vals = calloc(n, sizeof *r->vals);
        if (!r->vals)
            return KC_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(values, i);
        if (!json_is_string(v))
            return kc_err_set(err, KC_EINVAL, 400, "BadRequest",
                              "matchExpressions values must be strings");
        r->vals[i] = strdup(json_string_value(v));
        if (!r->vals[i])
            return KC_ENOMEM;
        r->nvals++;
    }
    struct errlist l = {0};
    check_requirement(r, n == 0, &l);
    return l.n ? errlist_report(&l, "", err) : 0;
}

static int json_expression(json_t *e, struct req *r, struct kc_err *err)
{
    memset(r, 0, sizeof *r);
    if (!json_is_object(e))
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "matchExpressions entries must be objects");
    json_t *jk = json_object_get(e, "key"), *jo = json_object_get(e, "operator");
    json_t *jv = json_object_get(e, "values");
    if ((jk && !json_is_string(jk)) || (jo && !json_is_string(jo)) ||
        (jv && !json_is_null(jv) && !json_is_array(jv)))
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest",
                          "matchExpressions entries need a string key and operator and a values array");
    const char *op = jo ? json_string_value(jo) : "";
    enum op o;
    if (strcmp(op, "In") == 0)
        o = OP_IN;
    else if (strcmp(op, "NotIn") == 0)
        o = OP_NOTIN;
    else if (strcmp(op, "Exists") == 0)
        o = OP_EXISTS;
    else if (strcmp(op, "DoesNotExist") == 0)
        o = OP_DNE;
    else {
        struct kc_buf b;
        kc_buf_init(&b, MSG_MAX);
        kc_go_quote(&b, op, strlen(op));
        kc_buf_puts(&b, " is not a valid label selector operator");
        int rc = kc_err_set(err, KC_EINVAL, 400, "BadRequest", "%s", b.data ? b.data : "bad operator");
        kc_buf_release(&b);
        return rc;
    }
    return json_requirement(jk ? json_string_value(jk) : "", o, jv, r, err);
}

int kc_label_selector_from_json(json_t *ls, struct kc_label_selector **out, struct kc_err *err)
{
    *out = NULL;
    struct kc_label_selector *sel = calloc(1, sizeof *sel);
    if (!sel)
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    if (!ls || json_is_null(ls)) {
        sel->nothing = true;
        *out = sel;
        return 0;
    }
    int rc = 0;
    size_t cap = 0;
    json_t *ml = json_object_get(ls, "matchLabels"), *me = json_object_get(ls, "matchExpressions");
    if (!json_is_object(ls) || (ml && !json_is_null(ml) && !json_is_object(ml)) ||
        (me && !json_is_null(me) && !json_is_array(me)))
        rc = kc_err_set(err, KC_EINVAL, 400, "BadRequest",
                        "a label selector is an object with a matchLabels object and a matchExpressions array");
    const char *k;
    json_t *v;
    if (!rc && json_is_object(ml)) {
        json_object_foreach(ml, k, v) {
            struct req r;
            if (!json_is_string(v)) {
                rc = kc_err_set(err, KC_EINVAL, 400, "BadRequest", "matchLabels values must be strings");
                break;
            }
            json_t *one = json_pack("[O]", v);
            rc = one ? json_requirement(k, OP_EQ, one, &r, err) : KC_ENOMEM;
            json_decref(one);
            if (!rc)
                rc = sel_push(sel, &cap, &r);
            if (rc) {
                req_free(&r);
                break;
            }
        }
    }
    for (size_t i = 0; !rc && json_is_array(me) && i < json_array_size(me); i++) {
        struct req r;
        rc = json_expression(json_array_get(me, i), &r, err);
        if (!rc)
            rc = sel_push(sel, &cap, &r);
        if (rc)
            req_free(&r);
    }
    if (rc) {
        if (rc == KC_ENOMEM)
            kc_err_set(err, rc, 500, "InternalError", "out of memory");
        kc_label_selector_free(sel);
        return rc;
    }
    sel_sort(sel);
    *out = sel;
    return 0;
}

/* ---- matching ---- */

static bool has_value(const struct req *r, const char *v)
{
    for (size_t i = 0; i < r->nvals; i++)
        if (strcmp(r->vals[i], v) == 0)
            return true;
    return false;
}

static bool req_matches(const struct req *r, kc_lookup_fn lookup, void *obj)
{
    const char *v = lookup(obj, r->key);
    int64_t a, b;
    switch (r->op) {
    case OP_IN:
    case OP_EQ:
    case OP_DEQ: return v && has_value(r, v);
    case OP_NOTIN:
    case OP_NEQ: return !v || !has_value(r, v);
    case OP_EXISTS: return v != NULL;
    case OP_DNE: return v == NULL;
    case OP_GT:
    case OP_LT:
        if (!v || r->nvals != 1 || !parse_i64(v, &a) || !parse_i64(r->vals[0], &b))
            return false;
        return r->op == OP_GT ? a > b : a < b;
    }
    return false;
}

bool kc_label_selector_matches(const struct kc_label_selector *sel, kc_lookup_fn lookup, void *obj)
{
    if (!sel)
        return true;
    if (sel->nothing)
        return false;
    for (size_t i = 0; i < sel->n; i++)
        if (!req_matches(&sel->r[i], lookup, obj))
            return false;
    return true;
}

static const char *json_lookup(void *obj, const char *key)
{
    json_t *v = obj ? json_object_get((json_t *)obj, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

bool kc_label_selector_matches_json(const struct kc_label_selector *sel, json_t *labels)
{
    return kc_label_selector_matches(sel, json_lookup, json_is_object(labels) ? labels : NULL);
}

bool kc_label_selector_empty(const struct kc_label_selector *sel)
{
    return !sel || (!sel->nothing && sel->n == 0);
}

bool kc_label_selector_nothing(const struct kc_label_selector *sel)
{
    return sel && sel->nothing;
}

const char *kc_label_selector_exact(const struct kc_label_selector *sel, const char *key)
{
    if (!sel || sel->nothing)
        return NULL;
    for (size_t i = 0; i < sel->n; i++) {
        const struct req *r = &sel->r[i];
        if (strcmp(r->key, key) != 0)
            continue;
        if ((r->op == OP_EQ || r->op == OP_DEQ || r->op == OP_IN) && r->nvals == 1)
            return r->vals[0];
        return NULL; /* upstream looks at the first requirement on the key only */
    }
    return NULL;
}

/* ---- String() ---- */

static int req_string(const struct req *r, struct kc_buf *b)
{
    int rc = 0;
    if (r->op == OP_DNE)
        rc = kc_buf_putc(b, '!');
    if (!rc)
        rc = kc_buf_puts(b, r->key);
    static const char *const OPSTR[] = {" in ", " notin ", "=", "==", "!=", "", "", ">", "<"};
    if (rc || r->op == OP_EXISTS || r->op == OP_DNE)
        return rc;
    rc = kc_buf_puts(b, OPSTR[r->op]);
    bool par = r->op == OP_IN || r->op == OP_NOTIN;
    if (!rc && par)
        rc = kc_buf_putc(b, '(');
    /* values print sorted, without changing the stored order (upstream's safeSort) */
    char **v = r->nvals ? malloc(r->nvals * sizeof *v) : NULL;
    if (r->nvals && !v)
        return KC_ENOMEM;
    if (v) {
        memcpy(v, r->vals, r->nvals * sizeof *v);
        qsort(v, r->nvals, sizeof *v, cmp_str);
    }
    for (size_t i = 0; !rc && i < r->nvals; i++) {
        if (i)
            rc = kc_buf_putc(b, ',');
        if (!rc)
            rc = kc_buf_puts(b, v[i]);
    }
    free(v);
    if (!rc && par)
        rc = kc_buf_putc(b, ')');
    return rc;
}

char *kc_label_selector_string(const struct kc_label_selector *sel)
{
    struct kc_buf b;
    kc_buf_init(&b, KC_BUF_UNLIMITED);
    int rc = kc_buf_puts(&b, "");
    for (size_t i = 0; sel && !sel->nothing && !rc && i < sel->n; i++) {
        if (i)
            rc = kc_buf_putc(&b, ',');
        if (!rc)
            rc = req_string(&sel->r[i], &b);
    }
    if (rc) {
        kc_buf_release(&b);
        return NULL;
    }
    return kc_buf_steal(&b, NULL);
}
