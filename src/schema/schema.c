/* schema.c — parser of the schema description (docs/schema-format.md),
 * lookups, strategic-merge-patch callbacks, the unknown-field / JSON type
 * check and the pruning of unknown fields.
 *
 * Data structures: the parser copies the text once and cuts it into
 * NUL-terminated tokens in place, so all names point into that copy. Types
 * live in a growable array of struct kc_type_impl (schema_int.h); after all
 * text is read, field type names are resolved, then three sorted indexes are
 * built: types by name, kinds by (group, version, kind), and per type the
 * fields by JSON name and by (inline number, protobuf number), plus the
 * sorted list of the type's inline numbers. Every lookup is a binary
 * search — these sit on the request hot path.
 *
 * Threads: kc_schema_default() parses the embedded text once under
 * pthread_once; a parsed schema is never modified again, so any number of
 * threads may read it without locks.
 */
#include "schema/schema_int.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

#define KC_SCHEMA_MAX_TEXT (16u << 20)  /* 16 MiB of description is far beyond need */
#define KC_SCHEMA_MAX_FIELDS 4096       /* fields of one type (indexes are uint16_t) */
#define KC_CHECK_MAX_DEPTH 100          /* nesting walked by kc_schema_check */
#define KC_CHECK_MAX_PATH 2048          /* longest reported field path */
#define KC_CHECK_MAX_ERRORS 100         /* upstream's decoder also stops collecting at 100 */

/* ---------- small helpers ---------- */

const char *kc_schema_short_name(const char *defname)
{
    const char *dot = strrchr(defname, '.');
    return dot ? dot + 1 : defname;
}

static struct kc_type_impl *impl_of(const struct kc_type *t)
{
    return (struct kc_type_impl *)t;  /* pub is the first member */
}

static int perr(struct kc_err *err, unsigned line, const char *fmt, const char *a, const char *b)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, a ? a : "", b ? b : "");
    return kc_err_set(err, KC_EINVAL, 500, "InternalError", "schema line %u: %s", line, msg);
}

/* Returns the next whitespace-separated token of *p (NUL-terminated in
 * place), or NULL at the end of the line. A token starting with "desc="
 * takes the rest of the line. */
static char *next_token(char **p)
{
    char *s = *p;
    while (*s == ' ' || *s == '\t')
        s++;
    if (!*s) {
        *p = s;
        return NULL;
    }
    char *start = s;
    if (strncmp(s, "desc=", 5) == 0) {
        s += strlen(s);
    } else {
        while (*s && *s != ' ' && *s != '\t')
            s++;
        if (*s)
            *s++ = '\0';
    }
    *p = s;
    return start;
}

/* ---------- building types ---------- */

static int add_type(struct kc_schema *s, struct kc_type_impl **out)
{
    if (s->ntypes == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 64;
        struct kc_type_impl **n = realloc(s->types, ncap * sizeof *n);
        if (!n)
            return KC_ENOMEM;
        s->types = n;
        s->cap = ncap;
    }
    struct kc_type_impl *t = calloc(1, sizeof *t);
    if (!t)
        return KC_ENOMEM;
    s->types[s->ntypes++] = t;
    *out = t;
    return 0;
}

static int add_field(struct kc_type_impl *t, struct kc_field **out)
{
    if (t->pub.nfields == t->fcap) {
        size_t ncap = t->fcap ? t->fcap * 2 : 8;
        if (ncap > KC_SCHEMA_MAX_FIELDS)
            return KC_ETOOLARGE;
        struct kc_field *f = realloc(t->pub.fields, ncap * sizeof *f);
        if (!f)
            return KC_ENOMEM;
        t->pub.fields = f;
        const char **r = realloc(t->ref, ncap * sizeof *r);
        if (!r)
            return KC_ENOMEM;
        t->ref = r;
        unsigned *l = realloc(t->fline, ncap * sizeof *l);
        if (!l)
            return KC_ENOMEM;
        t->fline = l;
        bool *o = realloc(t->omitempty, ncap * sizeof *o);
        if (!o)
            return KC_ENOMEM;
        t->omitempty = o;
        t->fcap = ncap;
    }
    size_t i = t->pub.nfields++;
    memset(&t->pub.fields[i], 0, sizeof t->pub.fields[i]);
    t->ref[i] = NULL;
    t->omitempty[i] = false;
    *out = &t->pub.fields[i];
    return 0;
}

static const struct {
    const char *word;
    enum kc_ftype type;
} scalar_words[] = {
    {"string", KC_F_STRING},   {"int32", KC_F_INT32},         {"int64", KC_F_INT64},
    {"bool", KC_F_BOOL},       {"double", KC_F_DOUBLE},       {"bytes", KC_F_BYTES},
    {"time", KC_F_TIME},       {"microtime", KC_F_MICROTIME}, {"duration", KC_F_DURATION},
    {"quantity", KC_F_QUANTITY}, {"intorstring", KC_F_INTORSTRING}, {"raw", KC_F_RAW},
};

/* Sets f->type/list/map from a field type word; message types keep their
 * name in *ref for resolution after all files are read. */
static int parse_ftype(char *word, struct kc_field *f, const char **ref)
{
    if (strncmp(word, "[]", 2) == 0) {
        f->list = true;
        word += 2;
    } else if (strncmp(word, "map[", 4) == 0) {
        size_t n = strlen(word);
        if (n < 6 || word[n - 1] != ']')
            return -1;
        word[n - 1] = '\0';
        word += 4;
        f->map = true;
    }
    if (!*word || strncmp(word, "[]", 2) == 0 || strncmp(word, "map[", 4) == 0)
        return -1;  /* nested collections are not representable in protobuf */
    for (size_t i = 0; i < sizeof scalar_words / sizeof scalar_words[0]; i++) {
        if (strcmp(word, scalar_words[i].word) == 0) {
            f->type = scalar_words[i].type;
            return 0;
        }
    }
    f->type = KC_F_MESSAGE;
    *ref = word;
    return 0;
}

static int parse_strategy(const char *v, unsigned *out)
{
    if (strcmp(v, "merge") == 0)
        *out = KC_PS_MERGE;
    else if (strcmp(v, "retainKeys") == 0)
        *out = KC_PS_RETAIN_KEYS;
    else if (strcmp(v, "merge,retainKeys") == 0 || strcmp(v, "retainKeys,merge") == 0)
        *out = KC_PS_MERGE | KC_PS_RETAIN_KEYS;
    else
        return -1;
    return 0;
}

/* A protobuf field number: 1..2^29-1 (0 also allowed when zero_ok). */
static int parse_pbnum(const char *s, bool zero_ok, int *out)
{
    char *end;
    errno = 0;
    long n = strtol(s, &end, 10);
    if (errno || end == s || *end || n < (zero_ok ? 0 : 1) || n > 536870911)
        return -1;
    *out = (int)n;
    return 0;
}

static int parse_field_option(char *tok, struct kc_field *f, bool *omitempty, unsigned line, struct kc_err *err)
{
    if (strcmp(tok, "required") == 0) {
        f->required = true;
    } else if (strcmp(tok, "omitempty") == 0) {
        *omitempty = true;
    } else if (strncmp(tok, "strategy=", 9) == 0) {
        if (parse_strategy(tok + 9, &f->strategy) < 0)
            return perr(err, line, "bad option \"%s\" on field \"%s\"", tok, f->name);
    } else if (strncmp(tok, "key=", 4) == 0 && tok[4]) {
        f->merge_key = tok + 4;
    } else if (strncmp(tok, "listType=", 9) == 0) {
        const char *v = tok + 9;
        if (strcmp(v, "atomic") && strcmp(v, "set") && strcmp(v, "map"))
            return perr(err, line, "bad option \"%s\" on field \"%s\"", tok, f->name);
        f->list_type = v;
    } else if (strncmp(tok, "mapKeys=", 8) == 0 && tok[8]) {
        f->list_map_keys = tok + 8;
    } else if (strncmp(tok, "inline=", 7) == 0) {
        if (parse_pbnum(tok + 7, false, &f->inline_num) < 0)
            return perr(err, line, "bad option \"%s\" on field \"%s\"", tok, f->name);
    } else if (strncmp(tok, "desc=", 5) == 0) {
        f->description = tok + 5;
    } else {
        return perr(err, line, "bad option \"%s\" on field \"%s\"", tok, f->name);
    }
    return 0;
}

static int parse_field_line(struct kc_type_impl *t, char *p, unsigned line, struct kc_err *err)
{
    char *name = next_token(&p), *ftype = next_token(&p), *num = next_token(&p);
    if (!name || !ftype || !num)
        return perr(err, line, "field line needs <jsonName> <fieldtype> <protoNumber>%s%s", NULL, NULL);
    struct kc_field *f;
    int rc = add_field(t, &f);
    if (rc == KC_ETOOLARGE)
        return perr(err, line, "too many fields in type \"%s\"%s", t->pub.name, NULL);
    if (rc < 0)
        return kc_err_set(err, rc, 500, "InternalError", "out of memory parsing the schema");
    size_t idx = t->pub.nfields - 1;
    t->fline[idx] = line;
    f->name = name;
    if (parse_ftype(ftype, f, &t->ref[idx]) < 0)
        return perr(err, line, "bad field type \"%s\" for field \"%s\"", ftype, name);
    if (parse_pbnum(num, true, &f->number) < 0)
        return perr(err, line, "bad protobuf number \"%s\" for field \"%s\"", num, name);
    for (char *tok; (tok = next_token(&p));)
        if ((rc = parse_field_option(tok, f, &t->omitempty[idx], line, err)) < 0)
            return rc;
    if (f->merge_key && !f->list)
        return perr(err, line, "key= on field \"%s\" which is not a list%s", name, NULL);
    if (f->inline_num && !f->number)
        return perr(err, line, "inline= on field \"%s\" without its protobuf number inside the embedded "
                               "message%s", name, NULL);
    return 0;
}

static int parse_gvk(struct kc_type_impl *t, char *v, unsigned line, struct kc_err *err)
{
    char *s1 = strchr(v, '/');
    char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    if (!s1 || !s2 || s1 == v || s2 == s1 + 1 || !s2[1] || strchr(s2 + 1, '/'))
        return perr(err, line, "bad gvk \"%s\" (want group/version/Kind)%s", v, NULL);
    *s1 = *s2 = '\0';
    t->pub.group = strcmp(v, "core") == 0 ? "" : v;
    t->pub.version = s1 + 1;
    t->pub.kind = s2 + 1;
    return 0;
}

static int parse_type_line(struct kc_schema *s, char *p, unsigned line, struct kc_type_impl **cur,
                           struct kc_err *err)
{
    char *kw = next_token(&p);
    if (!kw || strcmp(kw, "type") != 0)
        return perr(err, line, "expected \"type <name>\" or an indented field, got \"%s\"%s", kw, NULL);
    char *name = next_token(&p);
    if (!name || strncmp(name, "desc=", 5) == 0 || strncmp(name, "gvk=", 4) == 0)
        return perr(err, line, "type line without a name%s%s", NULL, NULL);
    struct kc_type_impl *t;
    if (add_type(s, &t) < 0)
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory parsing the schema");
    t->pub.name = name;
    t->line = line;
    for (char *tok; (tok = next_token(&p));) {
        int rc = 0;
        if (strncmp(tok, "gvk=", 4) == 0)
            rc = parse_gvk(t, tok + 4, line, err);
        else if (strncmp(tok, "desc=", 5) == 0)
            t->pub.description = tok + 5;
        else
            rc = perr(err, line, "bad option \"%s\" on type \"%s\"", tok, name);
        if (rc < 0)
            return rc;
    }
    *cur = t;
    return 0;
}

/* Splits the text into lines and feeds them to the line parsers. */
static int parse_lines(struct kc_schema *s, struct kc_err *err)
{
    struct kc_type_impl *cur = NULL;
    unsigned line = 0;
    for (char *p = s->text; *p;) {
        char *nl = strchr(p, '\n');
        char *next = nl ? nl + 1 : p + strlen(p);
        if (nl)
            *nl = '\0';
        line++;
        size_t n = strlen(p);
        while (n && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
            p[--n] = '\0';
        const char *q = p + strspn(p, " \t");
        int rc = 0;
        if (!*q || *q == '#') {
            /* blank or comment */
        } else if (q != p) {
            if (!cur)
                rc = perr(err, line, "field line before any type line%s%s", NULL, NULL);
            else
                rc = parse_field_line(cur, p, line, err);
        } else {
            rc = parse_type_line(s, p, line, &cur, err);
        }
        if (rc < 0)
            return rc;
        p = next;
    }
    return 0;
}

/* ---------- indexes ---------- */

static int cmp_type_name(const void *a, const void *b)
{
    const struct kc_type_impl *x = *(struct kc_type_impl *const *)a, *y = *(struct kc_type_impl *const *)b;
    return strcmp(x->pub.name, y->pub.name);
}

static int cmp_gvk3(const char *g1, const char *v1, const char *k1, const char *g2, const char *v2,
                    const char *k2)
{
    int c = strcmp(g1, g2);
    if (!c)
        c = strcmp(v1, v2);
    if (!c)
        c = strcmp(k1, k2);
    return c;
}

static int cmp_type_gvk(const void *a, const void *b)
{
    const struct kc_type *x = &(*(struct kc_type_impl *const *)a)->pub;
    const struct kc_type *y = &(*(struct kc_type_impl *const *)b)->pub;
    return cmp_gvk3(x->group, x->version, x->kind, y->group, y->version, y->kind);
}

/* qsort has no context argument; the field array being sorted is passed here.
 * Only used while building, under the caller's exclusive ownership. */
static __thread const struct kc_field *sort_fields;

static int cmp_field_name(const void *a, const void *b)
{
    return strcmp(sort_fields[*(const uint16_t *)a].name, sort_fields[*(const uint16_t *)b].name);
}

static int cmp_num(int x, int y)
{
    return (x > y) - (x < y);
}

static int cmp_field_num(const void *a, const void *b)
{
    const struct kc_field *x = &sort_fields[*(const uint16_t *)a], *y = &sort_fields[*(const uint16_t *)b];
    int c = cmp_num(x->inline_num, y->inline_num);
    return c ? c : cmp_num(x->number, y->number);
}

/* Collects the distinct inline numbers of t (by_num is sorted by them) and
 * checks none of them is also the number of a direct field: on the wire
 * one outer number cannot be both. */
static int index_inlines(struct kc_type_impl *t, struct kc_err *err)
{
    t->inlines = malloc((t->nnum ? t->nnum : 1) * sizeof *t->inlines);
    if (!t->inlines)
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory indexing the schema");
    t->ninlines = 0;
    for (size_t i = 0; i < t->nnum; i++) {
        const struct kc_field *f = &t->pub.fields[t->by_num[i]];
        if (!f->inline_num || (t->ninlines && t->inlines[t->ninlines - 1] == f->inline_num))
            continue;
        t->inlines[t->ninlines++] = f->inline_num;
        if (kc_type_field_num(&t->pub, f->inline_num)) {
            char num[16];
            snprintf(num, sizeof num, "%d", f->inline_num);
            return perr(err, t->fline[t->by_num[i]], "inline=%s is also a field number of type \"%s\"", num,
                        t->pub.name);
        }
    }
    return 0;
}

static int index_fields(struct kc_type_impl *t, struct kc_err *err)
{
    size_t n = t->pub.nfields;
    t->by_name = malloc((n ? n : 1) * sizeof *t->by_name);
    t->by_num = malloc((n ? n : 1) * sizeof *t->by_num);
    if (!t->by_name || !t->by_num)
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory indexing the schema");
    t->nnum = 0;
    for (size_t i = 0; i < n; i++) {
        t->by_name[i] = (uint16_t)i;
        if (t->pub.fields[i].number > 0)
            t->by_num[t->nnum++] = (uint16_t)i;
    }
    sort_fields = t->pub.fields;
    qsort(t->by_name, n, sizeof *t->by_name, cmp_field_name);
    qsort(t->by_num, t->nnum, sizeof *t->by_num, cmp_field_num);
    for (size_t i = 1; i < n; i++) {
        const struct kc_field *a = &t->pub.fields[t->by_name[i - 1]], *b = &t->pub.fields[t->by_name[i]];
        if (strcmp(a->name, b->name) == 0)
            return perr(err, t->fline[t->by_name[i]], "duplicate field \"%s\" in type \"%s\"", b->name,
                        t->pub.name);
    }
    for (size_t i = 1; i < t->nnum; i++) {
        const struct kc_field *a = &t->pub.fields[t->by_num[i - 1]], *b = &t->pub.fields[t->by_num[i]];
        if (a->number == b->number && a->inline_num == b->inline_num) {
            char num[32];
            if (b->inline_num)
                snprintf(num, sizeof num, "%d (inline=%d)", b->number, b->inline_num);
            else
                snprintf(num, sizeof num, "%d", b->number);
            return perr(err, t->fline[t->by_num[i]], "duplicate protobuf number %s in type \"%s\"", num,
                        t->pub.name);
        }
    }
    return index_inlines(t, err);
}

static int build_indexes(struct kc_schema *s, struct kc_err *err)
{
    size_t n = s->ntypes;
    s->sorted = malloc((n ? n : 1) * sizeof *s->sorted);
    s->kinds = malloc((n ? n : 1) * sizeof *s->kinds);
    if (!s->sorted || !s->kinds)
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory indexing the schema");
    s->nkinds = 0;
    for (size_t i = 0; i < n; i++) {
        s->sorted[i] = s->types[i];
        if (s->types[i]->pub.kind)
            s->kinds[s->nkinds++] = s->types[i];
    }
    qsort(s->sorted, n, sizeof *s->sorted, cmp_type_name);
    for (size_t i = 1; i < n; i++)
        if (strcmp(s->sorted[i - 1]->pub.name, s->sorted[i]->pub.name) == 0)
            return perr(err, s->sorted[i]->line, "duplicate type \"%s\"%s", s->sorted[i]->pub.name, NULL);
    qsort(s->kinds, s->nkinds, sizeof *s->kinds, cmp_type_gvk);
    for (size_t i = 1; i < s->nkinds; i++)
        if (cmp_type_gvk(&s->kinds[i - 1], &s->kinds[i]) == 0)
            return perr(err, s->kinds[i]->line, "duplicate gvk for kind \"%s\" (type \"%s\")", s->kinds[i]->pub.kind,
                        s->kinds[i]->pub.name);
    for (size_t i = 0; i < n; i++) {
        int rc = index_fields(s->types[i], err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Replaces each message field's type name by the type it names. */
static int resolve_refs(struct kc_schema *s, struct kc_err *err)
{
    for (size_t i = 0; i < s->ntypes; i++) {
        struct kc_type_impl *t = s->types[i];
        for (size_t j = 0; j < t->pub.nfields; j++) {
            if (!t->ref[j])
                continue;
            t->pub.fields[j].msg = kc_schema_type(s, t->ref[j]);
            if (!t->pub.fields[j].msg)
                return perr(err, t->fline[j], "unknown type \"%s\" (field \"%s\")", t->ref[j],
                            t->pub.fields[j].name);
        }
        free(t->ref);
        t->ref = NULL;
    }
    return 0;
}

/* ---------- patch callbacks ---------- */

static const void *ops_field_type(void *ctx, const void *type, const char *field)
{
    const struct kc_field *f = type ? kc_type_field(type, field) : NULL;
    return f ? (const void *)f->msg : NULL;
}

static unsigned ops_field_strategy(void *ctx, const void *type, const char *field)
{
    const struct kc_field *f = type ? kc_type_field(type, field) : NULL;
    return f ? f->strategy : KC_PS_REPLACE;
}

static const char *ops_merge_key(void *ctx, const void *type, const char *field)
{
    const struct kc_field *f = type ? kc_type_field(type, field) : NULL;
    return f ? f->merge_key : NULL;
}

/* ---------- public: parse / free / lookups ---------- */

int kc_schema_parse(const char *text, size_t len, struct kc_schema **out, struct kc_err *err)
{
    if (len > KC_SCHEMA_MAX_TEXT)
        return kc_err_set(err, KC_ETOOLARGE, 500, "InternalError", "schema text larger than %u bytes",
                          KC_SCHEMA_MAX_TEXT);
    struct kc_schema *s = calloc(1, sizeof *s);
    if (!s || !(s->text = malloc(len + 1))) {
        free(s);
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory parsing the schema");
    }
    memcpy(s->text, text, len);
    s->text[len] = '\0';
    if (memchr(text, '\0', len)) {
        kc_schema_free(s);
        return kc_err_set(err, KC_EINVAL, 500, "InternalError", "schema text contains a NUL byte");
    }
    int rc = parse_lines(s, err);
    if (!rc)
        rc = build_indexes(s, err);
    if (!rc)
        rc = resolve_refs(s, err);
    if (rc < 0) {
        kc_schema_free(s);
        return rc;
    }
    s->ops.ctx = s;
    s->ops.field_type = ops_field_type;
    s->ops.field_strategy = ops_field_strategy;
    s->ops.merge_key = ops_merge_key;
    *out = s;
    return 0;
}

void kc_schema_free(struct kc_schema *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->ntypes; i++) {
        struct kc_type_impl *t = s->types[i];
        free(t->pub.fields);
        free(t->by_name);
        free(t->by_num);
        free(t->inlines);
        free(t->ref);
        free(t->fline);
        free(t->omitempty);
        free(t);
    }
    free(s->types);
    free(s->sorted);
    free(s->kinds);
    free(s->text);
    free(s);
}

extern const char kc_schema_text[];
extern const size_t kc_schema_text_len;

static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static struct kc_schema *default_schema;

static void default_init(void)
{
    struct kc_err err = {0};
    if (kc_schema_parse(kc_schema_text, kc_schema_text_len, &default_schema, &err) < 0) {
        /* A malformed embedded schema is a build defect (the unit tests catch it). */
        fprintf(stderr, "kubec: embedded schema: %s\n", err.message);
        abort();
    }
}

const struct kc_schema *kc_schema_default(void)
{
    pthread_once(&default_once, default_init);
    return default_schema;
}

const struct kc_type *kc_schema_type(const struct kc_schema *s, const char *name)
{
    size_t lo = 0, hi = s->ntypes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, s->sorted[mid]->pub.name);
        if (!c)
            return &s->sorted[mid]->pub;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const struct kc_type *kc_schema_kind(const struct kc_schema *s, const char *group, const char *version,
                                     const char *kind)
{
    if (!group || strcmp(group, "core") == 0)
        group = "";
    size_t lo = 0, hi = s->nkinds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct kc_type *t = &s->kinds[mid]->pub;
        int c = cmp_gvk3(group, version, kind, t->group, t->version, t->kind);
        if (!c)
            return t;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const struct kc_field *kc_type_field(const struct kc_type *t, const char *json_name)
{
    const struct kc_type_impl *ti = impl_of(t);
    size_t lo = 0, hi = t->nfields;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct kc_field *f = &t->fields[ti->by_name[mid]];
        int c = strcmp(json_name, f->name);
        if (!c)
            return f;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const struct kc_field *kc_type_field_inline(const struct kc_type *t, int inline_num, int number)
{
    const struct kc_type_impl *ti = impl_of(t);
    size_t lo = 0, hi = ti->nnum;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct kc_field *f = &t->fields[ti->by_num[mid]];
        int c = cmp_num(inline_num, f->inline_num);
        if (!c)
            c = cmp_num(number, f->number);
        if (!c)
            return f;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const struct kc_field *kc_type_field_num(const struct kc_type *t, int number)
{
    return kc_type_field_inline(t, 0, number);
}

bool kc_type_is_inline_num(const struct kc_type *t, int number)
{
    const struct kc_type_impl *ti = impl_of(t);
    size_t lo = 0, hi = ti->ninlines;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_num(number, ti->inlines[mid]);
        if (!c)
            return true;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return false;
}

size_t kc_schema_ntypes(const struct kc_schema *s)
{
    return s->ntypes;
}

const struct kc_type *kc_schema_type_at(const struct kc_schema *s, size_t i)
{
    return i < s->ntypes ? &s->types[i]->pub : NULL;
}

bool kc_field_omitempty(const struct kc_type *t, const struct kc_field *f)
{
    const struct kc_type_impl *ti = impl_of(t);
    return f >= t->fields && f < t->fields + t->nfields && ti->omitempty[f - t->fields];
}

const struct kc_patch_schema *kc_schema_patch_ops(const struct kc_schema *s)
{
    return &s->ops;
}

/* ---------- kc_schema_check ---------- */

struct check {
    json_t *unknown, *type_errs;
    struct kc_buf path;
    int depth;
};

static size_t path_push_key(struct check *c, const char *key)
{
    size_t saved = c->path.len;
    if (c->path.len)
        kc_buf_putc(&c->path, '.');
    kc_buf_puts(&c->path, key);  /* over KC_CHECK_MAX_PATH the path is cut, not the walk */
    return saved;
}

static size_t path_push_index(struct check *c, size_t i)
{
    size_t saved = c->path.len;
    kc_buf_printf(&c->path, "[%zu]", i);
    return saved;
}

static void path_pop(struct check *c, size_t saved)
{
    c->path.len = saved;
    if (c->path.data)
        c->path.data[saved] = '\0';
}

static const char *path_str(struct check *c)
{
    return c->path.data ? c->path.data : "";
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER:
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "bool";
    default: return "null";
    }
}

/* The Go type name upstream's decoder would print for a value of f. */
static void go_type(const struct kc_field *f, bool elem, char *out, size_t n)
{
    static const char *const names[] = {
        [KC_F_STRING] = "string", [KC_F_INT32] = "int32", [KC_F_INT64] = "int64", [KC_F_BOOL] = "bool",
        [KC_F_DOUBLE] = "float64", [KC_F_BYTES] = "[]uint8", [KC_F_TIME] = "v1.Time",
        [KC_F_MICROTIME] = "v1.MicroTime", [KC_F_DURATION] = "v1.Duration",
        [KC_F_QUANTITY] = "resource.Quantity", [KC_F_INTORSTRING] = "intstr.IntOrString",
        [KC_F_RAW] = "runtime.RawExtension", [KC_F_MESSAGE] = "",
    };
    char base[160];
    if (f->type == KC_F_MESSAGE) {
        /* "io.k8s.api.apps.v1.DeploymentSpec" → "v1.DeploymentSpec" */
        const char *nm = f->msg->name, *last = strrchr(nm, '.');
        const char *prev = last;
        while (prev && prev > nm && prev[-1] != '.')
            prev--;
        snprintf(base, sizeof base, "%s", prev ? prev : nm);
    } else {
        snprintf(base, sizeof base, "%s", names[f->type]);
    }
    if (elem || (!f->list && !f->map))
        snprintf(out, n, "%s", base);
    else
        snprintf(out, n, "%s%s", f->list ? "[]" : "map[string]", base);
}

static void type_error(struct check *c, const struct kc_type *owner, const struct kc_field *f, bool elem,
                       const json_t *v)
{
    if (!c->type_errs || json_array_size(c->type_errs) >= KC_CHECK_MAX_ERRORS)
        return;
    char gt[200], msg[KC_CHECK_MAX_PATH + 400];
    go_type(f, elem, gt, sizeof gt);
    snprintf(msg, sizeof msg, "json: cannot unmarshal %s into Go struct field %s.%s of type %s", json_kind(v),
             kc_schema_short_name(owner->name), path_str(c), gt);
    json_array_append_new(c->type_errs, json_pack("{s:s, s:s}", "field", path_str(c), "message", msg));
}

static bool int_fits(const json_t *v, enum kc_ftype t)
{
    if (!json_is_integer(v))
        return false;
    json_int_t i = json_integer_value(v);
    return t == KC_F_INT64 || (i >= INT32_MIN && i <= INT32_MAX);
}

/* Whether a single (non-list, non-map) value has an acceptable JSON type. */
static bool scalar_ok(enum kc_ftype t, const json_t *v)
{
    switch (t) {
    case KC_F_STRING:
    case KC_F_BYTES:
    case KC_F_TIME:
    case KC_F_MICROTIME:
    case KC_F_DURATION: return json_is_string(v);
    case KC_F_INT32:
    case KC_F_INT64: return int_fits(v, t);
    case KC_F_BOOL: return json_is_boolean(v);
    case KC_F_DOUBLE: return json_is_number(v);
    case KC_F_QUANTITY: return json_is_string(v) || json_is_number(v);
    case KC_F_INTORSTRING: return json_is_string(v) || int_fits(v, KC_F_INT32);
    case KC_F_RAW: return true;
    case KC_F_MESSAGE: return json_is_object(v);
    }
    return false;
}

static void check_object(struct check *c, const struct kc_type *t, json_t *obj);

static void check_single(struct check *c, const struct kc_type *owner, const struct kc_field *f, bool elem,
                         json_t *v)
{
    if (json_is_null(v))
        return;  /* null means "unset" for every type */
    if (!scalar_ok(f->type, v)) {
        type_error(c, owner, f, elem, v);
        return;
    }
    if (f->type == KC_F_MESSAGE)
        check_object(c, f->msg, v);
}

static void check_field(struct check *c, const struct kc_type *owner, const struct kc_field *f, json_t *v)
{
    if (json_is_null(v))
        return;
    if (f->list) {
        if (!json_is_array(v)) {
            type_error(c, owner, f, false, v);
            return;
        }
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            size_t saved = path_push_index(c, i);
            check_single(c, owner, f, true, e);
            path_pop(c, saved);
        }
    } else if (f->map) {
        if (!json_is_object(v)) {
            type_error(c, owner, f, false, v);
            return;
        }
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e) {
            size_t saved = path_push_key(c, k);
            check_single(c, owner, f, true, e);
            path_pop(c, saved);
        }
    } else {
        check_single(c, owner, f, false, v);
    }
}

static void check_object(struct check *c, const struct kc_type *t, json_t *obj)
{
    if (++c->depth > KC_CHECK_MAX_DEPTH) {
        c->depth--;
        return;
    }
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        size_t saved = path_push_key(c, k);
        const struct kc_field *f = kc_type_field(t, k);
        if (!f) {
            if (c->unknown && json_array_size(c->unknown) < KC_CHECK_MAX_ERRORS) {
                char msg[KC_CHECK_MAX_PATH + 32];
                snprintf(msg, sizeof msg, "unknown field \"%s\"", path_str(c));
                json_array_append_new(c->unknown, json_string(msg));
            }
        } else {
            check_field(c, t, f, v);
        }
        path_pop(c, saved);
    }
    c->depth--;
}

void kc_schema_check(const struct kc_schema *s, const struct kc_type *t, json_t *obj, json_t *unknown,
                     json_t *type_errs)
{
    if (!t || !json_is_object(obj))
        return;
    struct check c = {.unknown = unknown, .type_errs = type_errs};
    kc_buf_init(&c.path, KC_CHECK_MAX_PATH);
    check_object(&c, t, obj);
    kc_buf_release(&c.path);
}

/* ---------- kc_schema_prune ---------- */

static void prune_object(const struct kc_type *t, json_t *obj, int depth);

/* Prunes one value of message field f (a list element, a map value or the
 * field itself); anything but an object is not ours to change. */
static void prune_value(const struct kc_field *f, json_t *v, int depth)
{
    if (f->type == KC_F_MESSAGE && json_is_object(v))
        prune_object(f->msg, v, depth);
}

static void prune_field(const struct kc_field *f, json_t *v, int depth)
{
    if (f->type != KC_F_MESSAGE)
        return;  /* scalars, specials and raw JSON hold no schema fields */
    if (f->list && json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
            prune_value(f, e, depth);
    } else if (f->map && json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e)
            prune_value(f, e, depth);
    } else if (!f->list && !f->map) {
        prune_value(f, v, depth);
    }
}

static void prune_object(const struct kc_type *t, json_t *obj, int depth)
{
    if (depth > KC_CHECK_MAX_DEPTH)
        return;
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(obj, tmp, k, v) {
        const struct kc_field *f = kc_type_field(t, k);
        if (!f)
            json_object_del(obj, k);
        else
            prune_field(f, v, depth + 1);
    }
}

void kc_schema_prune(const struct kc_schema *s, const struct kc_type *t, json_t *obj)
{
    (void)s;
    if (t && json_is_object(obj))
        prune_object(t, obj, 1);
}
