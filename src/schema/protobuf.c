/* protobuf.c — decoder of Kubernetes protobuf request bodies
 * (application/vnd.kubernetes.protobuf) into the JSON form of the object.
 *
 * The body is the magic "k8s\0", then runtime.Unknown
 *   { TypeMeta typeMeta = 1 { apiVersion = 1; kind = 2 }; bytes raw = 2;
 *     string contentEncoding = 3; string contentType = 4 }
 * and raw is the kind's message, decoded field by field against the schema
 * (docs/schema-format.md, "Protobuf decoding rules"). Unknown field numbers
 * are skipped, as protobuf readers do. Go structs embedded inline (a
 * Volume's VolumeSource) arrive as one nested message at an outer number;
 * their fields are written flat into the outer JSON object.
 *
 * Data structure: a bounded reader (struct pb) over the caller's bytes;
 * every read checks the remaining length first, so a truncated or malformed
 * body returns KC_EINVAL and never reads out of bounds. Nesting is limited
 * to KC_PB_MAX_DEPTH messages. Pure function of its inputs: thread-safe.
 */
#include "schema/schema_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/buf.h"
#include "util/jsonparse.h"

#define KC_PB_MAX_DEPTH 64

struct pb {
    const unsigned char *p, *end;
};

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

static int bad(struct kc_err *err, const char *what)
{
    return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "malformed protobuf body: %s", what);
}

static int rd_varint(struct pb *r, uint64_t *out, struct kc_err *err)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end)
            return bad(err, "truncated varint");
        unsigned char b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return bad(err, "varint longer than 10 bytes");
}

static int rd_fixed(struct pb *r, unsigned n, uint64_t *out, struct kc_err *err)
{
    if ((size_t)(r->end - r->p) < n)
        return bad(err, "truncated fixed-width value");
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += n;
    *out = v;
    return 0;
}

static int rd_len(struct pb *r, struct pb *sub, struct kc_err *err)
{
    uint64_t n = 0;
    int rc = rd_varint(r, &n, err);
    if (rc < 0)
        return rc;
    if (n > (uint64_t)(r->end - r->p))
        return bad(err, "length beyond the end of the message");
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return 0;
}

static int rd_tag(struct pb *r, int *num, int *wt, struct kc_err *err)
{
    uint64_t tag = 0;
    int rc = rd_varint(r, &tag, err);
    if (rc < 0)
        return rc;
    *wt = (int)(tag & 7);
    if ((tag >> 3) == 0 || (tag >> 3) > 536870911)
        return bad(err, "field number out of range");
    *num = (int)(tag >> 3);
    return 0;
}

static int skip_value(struct pb *r, int wt, struct kc_err *err)
{
    uint64_t v;
    struct pb sub;
    switch (wt) {
    case WT_VARINT: return rd_varint(r, &v, err);
    case WT_I64: return rd_fixed(r, 8, &v, err);
    case WT_LEN: return rd_len(r, &sub, err);
    case WT_I32: return rd_fixed(r, 4, &v, err);
    default: return bad(err, "unsupported wire type");
    }
}

/* ---------- special types ---------- */

static json_t *str_value(const struct pb *v, struct kc_err *err, int *rc)
{
    json_t *j = json_stringn((const char *)v->p, (size_t)(v->end - v->p));
    if (!j)
        *rc = bad(err, "string is not valid UTF-8");
    return j;
}

static json_t *bytes_value(const struct pb *v, struct kc_err *err, int *rc)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = (size_t)(v->end - v->p);
    char *out = malloc((n + 2) / 3 * 4 + 1);
    if (!out) {
        *rc = kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t x = (uint32_t)v->p[i] << 16;
        if (i + 1 < n)
            x |= (uint32_t)v->p[i + 1] << 8;
        if (i + 2 < n)
            x |= v->p[i + 2];
        out[o++] = b64[(x >> 18) & 63];
        out[o++] = b64[(x >> 12) & 63];
        out[o++] = i + 1 < n ? b64[(x >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64[x & 63] : '=';
    }
    json_t *j = json_stringn(out, o);
    free(out);
    return j;
}

/* Reads the varint fields 1 and 2 of a small message (Time, Duration,
 * IntOrString's type/intVal) and the length-delimited field 3 / 1. */
struct small {
    int64_t f1, f2;
    bool has1;
    struct pb s1, s3;
    bool has_s1, has_s3;
};

static int read_small(struct pb v, struct small *m, struct kc_err *err)
{
    memset(m, 0, sizeof *m);
    while (v.p < v.end) {
        int num = 0, wt = 0, rc;
        uint64_t x = 0;
        if ((rc = rd_tag(&v, &num, &wt, err)) < 0)
            return rc;
        if (wt == WT_VARINT && (num == 1 || num == 2)) {
            if ((rc = rd_varint(&v, &x, err)) < 0)
                return rc;
            if (num == 1) {
                m->f1 = (int64_t)x;
                m->has1 = true;
            } else {
                m->f2 = (int64_t)x;
            }
        } else if (wt == WT_LEN && (num == 1 || num == 3)) {
            if ((rc = rd_len(&v, num == 1 ? &m->s1 : &m->s3, err)) < 0)
                return rc;
            if (num == 1)
                m->has_s1 = true;
            else
                m->has_s3 = true;
        } else if ((rc = skip_value(&v, wt, err)) < 0) {
            return rc;
        }
    }
    return 0;
}

#define GO_ZERO_TIME_SECONDS (-62135596800LL)

static json_t *time_value(const struct pb *v, bool micro, struct kc_err *err, int *rc)
{
    struct small m;
    if ((*rc = read_small(*v, &m, err)) < 0)
        return NULL;
    if (v->p == v->end || (m.f1 == GO_ZERO_TIME_SECONDS && m.f2 == 0))
        return NULL;  /* Go's zero time: the field is absent */
    /* years 1..9999, as RFC 3339 can express */
    if (m.f1 < GO_ZERO_TIME_SECONDS || m.f1 > 253402300799LL || m.f2 < 0 || m.f2 > 999999999) {
        *rc = bad(err, "time out of range");
        return NULL;
    }
    time_t t = (time_t)m.f1;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        *rc = bad(err, "time out of range");
        return NULL;
    }
    char buf[64];
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    if (micro)
        snprintf(buf + n, sizeof buf - n, ".%06dZ", (int)(m.f2 / 1000));
    else
        snprintf(buf + n, sizeof buf - n, "Z");
    return json_string(buf);
}

/* Appends "." and the digits of frac (prec digits wide) without trailing zeros. */
static void put_frac(struct kc_buf *b, uint64_t frac, int prec)
{
    if (!frac)
        return;
    char d[16];
    snprintf(d, sizeof d, "%0*llu", prec, (unsigned long long)frac);
    size_t n = strlen(d);
    while (n && d[n - 1] == '0')
        n--;
    kc_buf_putc(b, '.');
    kc_buf_append(b, d, n);
}

/* Formats nanoseconds the way Go's time.Duration.String does ("1m0s", "1.5s", "100ms"). */
static void fmt_duration(int64_t d, struct kc_buf *b)
{
    uint64_t u = d < 0 ? (uint64_t)0 - (uint64_t)d : (uint64_t)d;
    if (d < 0)
        kc_buf_putc(b, '-');
    if (u == 0) {
        kc_buf_puts(b, "0s");
    } else if (u < 1000000000ULL) {
        uint64_t scale = u < 1000 ? 1 : u < 1000000 ? 1000 : 1000000;
        int prec = u < 1000 ? 0 : u < 1000000 ? 3 : 6;
        kc_buf_printf(b, "%llu", (unsigned long long)(u / scale));
        put_frac(b, u % scale, prec);
        kc_buf_puts(b, u < 1000 ? "ns" : u < 1000000 ? "\xc2\xb5s" : "ms");
    } else {
        uint64_t secs = u / 1000000000ULL, frac = u % 1000000000ULL;
        if (secs >= 3600)
            kc_buf_printf(b, "%lluh", (unsigned long long)(secs / 3600));
        if (secs >= 60)
            kc_buf_printf(b, "%llum", (unsigned long long)(secs / 60 % 60));
        kc_buf_printf(b, "%llu", (unsigned long long)(secs % 60));
        put_frac(b, frac, 9);
        kc_buf_putc(b, 's');
    }
}

static json_t *special_value(enum kc_ftype t, const struct pb *v, struct kc_err *err, int *rc)
{
    struct small m;
    if ((*rc = read_small(*v, &m, err)) < 0)
        return NULL;
    switch (t) {
    case KC_F_DURATION: {
        struct kc_buf b;
        kc_buf_init(&b, 64);
        fmt_duration(m.f1, &b);
        json_t *j = json_string(b.data ? b.data : "0s");
        kc_buf_release(&b);
        return j;
    }
    case KC_F_QUANTITY:
        if (!m.has_s1 || m.s1.p == m.s1.end)
            return json_string("0");
        return str_value(&m.s1, err, rc);
    case KC_F_INTORSTRING:
        if (m.f1 == 1) {
            if (!m.has_s3)
                return json_string("");
            return str_value(&m.s3, err, rc);
        }
        return json_integer((int32_t)m.f2);
    case KC_F_RAW: {
        if (!m.has_s1 || m.s1.p == m.s1.end)
            return NULL;
        json_error_t je;
        json_t *j = kc_json_loadb((const char *)m.s1.p, (size_t)(m.s1.end - m.s1.p), JSON_DECODE_ANY, &je);
        if (!j)
            *rc = bad(err, "raw extension is not JSON");
        return j;
    }
    default:
        *rc = bad(err, "internal: not a special type");
        return NULL;
    }
}

/* ---------- messages ---------- */

static int decode_message(const struct kc_type *t, struct pb r, int depth, json_t **out, struct kc_err *err);

static bool is_varint_type(enum kc_ftype t)
{
    return t == KC_F_INT32 || t == KC_F_INT64 || t == KC_F_BOOL;
}

/* Decodes one scalar of a varint / fixed-width wire type. */
static json_t *num_value(enum kc_ftype t, uint64_t x)
{
    switch (t) {
    case KC_F_INT32: return json_integer((int32_t)(uint32_t)x);
    case KC_F_INT64: return json_integer((json_int_t)x);
    case KC_F_BOOL: return json_boolean(x != 0);
    default: {
        double d;
        memcpy(&d, &x, sizeof d);
        return json_real(d);
    }
    }
}

/* Decodes one value of field f whose payload starts at the reader. *val is
 * NULL (with 0 returned) when the value means "absent". `elem`: inside a
 * list or map, where empty strings are kept. */
static int decode_value(const struct kc_field *f, int wt, struct pb *r, bool elem, int depth, json_t **val,
                        struct kc_err *err)
{
    int rc = 0;
    uint64_t x = 0;
    struct pb v;
    *val = NULL;
    if (is_varint_type(f->type)) {
        if (wt != WT_VARINT)
            return bad(err, "wrong wire type for an integer field");
        if ((rc = rd_varint(r, &x, err)) < 0)
            return rc;
        *val = num_value(f->type, x);
        return 0;
    }
    if (f->type == KC_F_DOUBLE) {
        if (wt != WT_I64)
            return bad(err, "wrong wire type for a double field");
        if ((rc = rd_fixed(r, 8, &x, err)) < 0)
            return rc;
        *val = num_value(f->type, x);
        return 0;
    }
    if (wt != WT_LEN)
        return bad(err, "wrong wire type for a length-delimited field");
    if ((rc = rd_len(r, &v, err)) < 0)
        return rc;
    switch (f->type) {
    case KC_F_STRING:
        if (v.p == v.end && !elem)
            return 0;  /* Go writes empty strings; JSON omitempty would not */
        *val = str_value(&v, err, &rc);
        return rc;
    case KC_F_BYTES:
        if (v.p == v.end && !elem)
            return 0;
        *val = bytes_value(&v, err, &rc);
        return rc;
    case KC_F_TIME:
    case KC_F_MICROTIME:
        *val = time_value(&v, f->type == KC_F_MICROTIME, err, &rc);
        return rc;
    case KC_F_MESSAGE:
        return decode_message(f->msg, v, depth + 1, val, err);
    default:
        *val = special_value(f->type, &v, err, &rc);
        return rc;
    }
}

/* A packed run of varints / doubles for a repeated scalar field. */
static int decode_packed(const struct kc_field *f, struct pb *r, json_t *arr, struct kc_err *err)
{
    struct pb v;
    int rc = rd_len(r, &v, err);
    while (!rc && v.p < v.end) {
        uint64_t x = 0;
        rc = f->type == KC_F_DOUBLE ? rd_fixed(&v, 8, &x, err) : rd_varint(&v, &x, err);
        if (!rc && json_array_append_new(arr, num_value(f->type, x)) < 0)
            rc = kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    }
    return rc;
}

/* The value of a map entry written without one: the type's zero value. */
static json_t *missing_map_value(enum kc_ftype t)
{
    switch (t) {
    case KC_F_MESSAGE:
    case KC_F_RAW: return json_object();
    case KC_F_INT32:
    case KC_F_INT64:
    case KC_F_INTORSTRING: return json_integer(0);
    case KC_F_DOUBLE: return json_real(0);
    case KC_F_BOOL: return json_false();
    case KC_F_QUANTITY: return json_string("0");
    case KC_F_DURATION: return json_string("0s");
    default: return json_string("");
    }
}

/* One map entry {key = 1; value = 2}. */
static int decode_map_entry(const struct kc_field *f, struct pb *r, json_t *obj, int depth, struct kc_err *err)
{
    struct pb e;
    int rc = rd_len(r, &e, err);
    if (rc < 0)
        return rc;
    json_t *key = NULL, *val = NULL;
    while (!rc && e.p < e.end) {
        int num = 0, wt = 0;
        if ((rc = rd_tag(&e, &num, &wt, err)) < 0)
            break;
        if (num == 1 && wt == WT_LEN) {
            struct pb k;
            if ((rc = rd_len(&e, &k, err)) < 0)
                break;
            json_decref(key);
            key = str_value(&k, err, &rc);
        } else if (num == 2) {
            json_decref(val);
            rc = decode_value(f, wt, &e, true, depth, &val, err);
        } else {
            rc = skip_value(&e, wt, err);
        }
    }
    if (!rc) {
        const char *k = key ? json_string_value(key) : "";
        if (!val)
            val = missing_map_value(f->type);
        if (json_object_set(obj, k, val) < 0)
            rc = kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    }
    json_decref(key);
    json_decref(val);
    return rc;
}

/* The container a repeated/map field accumulates into, created on first use. */
static json_t *container(json_t *obj, const struct kc_field *f)
{
    json_t *c = json_object_get(obj, f->name);
    if (!c) {
        c = f->map ? json_object() : json_array();
        if (json_object_set_new(obj, f->name, c) < 0)
            return NULL;
    }
    return c;
}

/* A zero number or false: what Go's omitempty leaves out of JSON. */
static bool is_zero_scalar(const json_t *v)
{
    return json_is_false(v) || (json_is_integer(v) && json_integer_value(v) == 0) ||
           (json_is_real(v) && json_real_value(v) == 0.0);
}

static int decode_field(const struct kc_type *t, const struct kc_field *f, int wt, struct pb *r, json_t *obj,
                        int depth, struct kc_err *err)
{
    if (f->map) {
        if (wt != WT_LEN)
            return bad(err, "wrong wire type for a map field");
        json_t *c = container(obj, f);
        return c ? decode_map_entry(f, r, c, depth, err)
                 : kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    }
    if (f->list) {
        json_t *c = container(obj, f);
        if (!c)
            return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
        if (wt == WT_LEN && (is_varint_type(f->type) || f->type == KC_F_DOUBLE))
            return decode_packed(f, r, c, err);
        json_t *v;
        int rc = decode_value(f, wt, r, true, depth, &v, err);
        if (rc < 0)
            return rc;
        if (!v)
            v = json_null();  /* a zero time inside a list */
        return json_array_append_new(c, v) < 0 ? kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory")
                                               : 0;
    }
    json_t *v;
    int rc = decode_value(f, wt, r, false, depth, &v, err);
    if (rc < 0 || !v)
        return rc;
    if (is_zero_scalar(v) && kc_field_omitempty(t, f)) {
        json_decref(v);
        return 0;
    }
    json_t *old = json_object_get(obj, f->name);
    if (old && json_is_object(old) && json_is_object(v)) {
        /* protobuf merges repeated occurrences of a singular message */
        rc = json_object_update(old, v) < 0 ? KC_ENOMEM : 0;
        json_decref(v);
        return rc;
    }
    return json_object_set_new(obj, f->name, v) < 0 ? kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory")
                                                    : 0;
}

/* Decodes the fields of one message of type t into obj. inline_num 0: t's
 * own message, where an outer number that carries an inline-embedded struct
 * (Volume's VolumeSource at 2) is read as a nested message whose fields are
 * t's fields with that inline number — they land flat in obj, as in JSON. */
static int decode_fields(const struct kc_type *t, int inline_num, struct pb r, json_t *obj, int depth,
                         struct kc_err *err)
{
    if (depth > KC_PB_MAX_DEPTH)
        return bad(err, "nesting too deep");
    int rc = 0;
    while (!rc && r.p < r.end) {
        int num = 0, wt = 0;
        if ((rc = rd_tag(&r, &num, &wt, err)) < 0)
            break;
        const struct kc_field *f = kc_type_field_inline(t, inline_num, num);
        if (f) {
            rc = decode_field(t, f, wt, &r, obj, depth, err);
        } else if (!inline_num && kc_type_is_inline_num(t, num)) {
            struct pb sub;
            if (wt != WT_LEN)
                return bad(err, "wrong wire type for an embedded message");
            if ((rc = rd_len(&r, &sub, err)) == 0)
                rc = decode_fields(t, num, sub, obj, depth + 1, err);
        } else {
            rc = skip_value(&r, wt, err);
        }
    }
    return rc;
}

static int decode_message(const struct kc_type *t, struct pb r, int depth, json_t **out, struct kc_err *err)
{
    if (depth > KC_PB_MAX_DEPTH)
        return bad(err, "nesting too deep");
    json_t *obj = json_object();
    if (!obj)
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    int rc = decode_fields(t, 0, r, obj, depth, err);
    if (rc < 0) {
        json_decref(obj);
        return rc;
    }
    *out = obj;
    return 0;
}

/* ---------- the runtime.Unknown envelope ---------- */

struct envelope {
    struct pb api_version, kind, raw, encoding;
};

static int read_typemeta(struct pb tm, struct envelope *e, struct kc_err *err)
{
    while (tm.p < tm.end) {
        int num = 0, wt = 0, rc;
        if ((rc = rd_tag(&tm, &num, &wt, err)) < 0)
            return rc;
        if (wt == WT_LEN && (num == 1 || num == 2))
            rc = rd_len(&tm, num == 1 ? &e->api_version : &e->kind, err);
        else
            rc = skip_value(&tm, wt, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int read_envelope(struct pb r, struct envelope *e, struct kc_err *err)
{
    memset(e, 0, sizeof *e);
    while (r.p < r.end) {
        int num = 0, wt = 0, rc;
        struct pb sub;
        if ((rc = rd_tag(&r, &num, &wt, err)) < 0)
            return rc;
        if (wt != WT_LEN) {
            if ((rc = skip_value(&r, wt, err)) < 0)
                return rc;
            continue;
        }
        if ((rc = rd_len(&r, &sub, err)) < 0)
            return rc;
        if (num == 1 && (rc = read_typemeta(sub, e, err)) < 0)
            return rc;
        if (num == 2)
            e->raw = sub;
        if (num == 3)
            e->encoding = sub;
    }
    return 0;
}

/* Copies a protobuf string into a bounded C string. */
static void pbstr(const struct pb *s, char *out, size_t n)
{
    size_t len = s->p ? (size_t)(s->end - s->p) : 0;
    if (len >= n)
        len = n - 1;
    if (len)
        memcpy(out, s->p, len);
    out[len] = '\0';
}

int kc_protobuf_decode(const struct kc_schema *s, const unsigned char *buf, size_t len, json_t **out,
                       struct kc_err *err)
{
    static const unsigned char magic[4] = {'k', '8', 's', 0};
    if (len < 4 || memcmp(buf, magic, 4) != 0)
        return bad(err, "missing the k8s\\0 prefix");
    struct envelope e;
    int rc = read_envelope((struct pb){buf + 4, buf + len}, &e, err);
    if (rc < 0)
        return rc;
    if (e.encoding.p && e.encoding.p != e.encoding.end)
        return kc_err_set(err, KC_EINVAL, 415, "UnsupportedMediaType",
                          "protobuf body with a contentEncoding is not supported");
    char api_version[256], kind[256];
    pbstr(&e.api_version, api_version, sizeof api_version);
    pbstr(&e.kind, kind, sizeof kind);
    if (!kind[0] || !api_version[0])
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "protobuf body without apiVersion and kind");
    char *slash = strchr(api_version, '/');
    const char *group = "", *version = api_version;
    if (slash) {
        *slash = '\0';
        group = api_version;
        version = slash + 1;
    }
    const struct kc_type *t = kc_schema_kind(s, group, version, kind);
    if (slash)
        *slash = '/';
    if (!t)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "protobuf body of unknown kind %s %s", api_version,
                          kind);
    json_t *body = NULL;
    rc = decode_message(t, e.raw.p ? e.raw : (struct pb){buf, buf}, 0, &body, err);
    if (rc < 0)
        return rc;
    json_t *obj = json_pack("{s:s, s:s}", "apiVersion", api_version, "kind", kind);
    if (!obj || json_object_update(obj, body) < 0) {
        json_decref(obj);
        json_decref(body);
        return kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    }
    json_decref(body);
    *out = obj;
    return 0;
}
