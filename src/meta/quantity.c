/* quantity.c — resource.Quantity parsing and canonical formatting (see validation.h).
 *
 * Mirrors k8s.io/apimachinery pkg/api/resource: the same hand scanner
 * (sign, digits, '.', digits, suffix letters, signed exponent digits), the
 * same suffix table, rounding of non-zero values up to 1n, the BinarySI cap
 * at 2^63-1, and the same canonical serialisation, including upstream's habit
 * of re-emitting the input verbatim when its int64 fast path judged it
 * canonical already (e.g. "100Mi", "+1Ki", "1e3").
 *
 * Numbers are kept as an exact decimal: a digit string (most significant
 * first, no leading zeros; length 0 means zero) times 10^exp with a 64-bit
 * exponent, so "1e999999999" needs no big expansion. Inputs are limited to
 * KC_QUANTITY_MAX_LEN bytes. Stateless and thread-safe.
 */
#include "meta/validation.h"

#include <stdio.h>
#include <string.h>

#include "util/err.h"

#define DEC_MAX (KC_QUANTITY_MAX_LEN + 64)

enum q_format { F_DECIMAL_EXPONENT, F_BINARY_SI, F_DECIMAL_SI };
enum q_error { Q_OK, Q_FORMAT, Q_NUMERIC, Q_SUFFIX };

struct dec {
    bool neg;
    int nd;
    unsigned char d[DEC_MAX]; /* digit values 0..9 */
    int64_t exp;
};

struct quantity {
    struct dec v;
    enum q_format format;
    bool reuse; /* upstream keeps the input string as its serialisation */
};

/* ---- scanner (parseQuantityString) ---- */

struct qscan {
    bool positive;
    const char *num, *denom, *value, *suffix;
    size_t num_len, denom_len, value_len, suffix_len;
};

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_suffix_char(char c) { return c && strchr("eEinumkKMGTP", c) != NULL; }

static enum q_error scan(const char *str, size_t end, struct qscan *q)
{
    memset(q, 0, sizeof *q);
    q->positive = true;
    q->denom = q->suffix = "";
    size_t pos = 0, i;
    if (pos < end && (str[0] == '-' || str[0] == '+')) {
        q->positive = str[0] == '+';
        pos++;
    }
    for (i = pos;; i++) { /* strip leading zeros */
        if (i >= end) {
            q->num = q->value = "0";
            q->num_len = q->value_len = 1;
            return Q_OK;
        }
        if (str[i] != '0')
            break;
        pos++;
    }
    for (i = pos;; i++) { /* numerator */
        if (i >= end) {
            q->num = str + pos, q->num_len = end - pos;
            q->value = str, q->value_len = end;
            return Q_OK;
        }
        if (!is_digit(str[i])) {
            q->num = str + pos, q->num_len = i - pos;
            pos = i;
            break;
        }
    }
    if (q->num_len == 0)
        q->num = "0", q->num_len = 1;
    if (pos < end && str[pos] == '.') { /* denominator */
        pos++;
        for (i = pos;; i++) {
            if (i >= end) {
                q->denom = str + pos, q->denom_len = end - pos;
                q->value = str, q->value_len = end;
                return Q_OK;
            }
            if (!is_digit(str[i])) {
                q->denom = str + pos, q->denom_len = i - pos;
                pos = i;
                break;
            }
        }
    }
    q->value = str, q->value_len = pos;
    size_t suffix_start = pos;
    for (i = pos;; i++) {
        if (i >= end) {
            q->suffix = str + suffix_start, q->suffix_len = end - suffix_start;
            return Q_OK;
        }
        if (!is_suffix_char(str[i])) {
            pos = i;
            break;
        }
    }
    if (pos < end && (str[pos] == '-' || str[pos] == '+'))
        pos++;
    for (i = pos;; i++) {
        if (i >= end) {
            q->suffix = str + suffix_start, q->suffix_len = end - suffix_start;
            return Q_OK;
        }
        if (!is_digit(str[i]))
            break;
    }
    return Q_FORMAT;
}

/* ---- suffixes ---- */

struct suffix_def {
    const char *s;
    int base, exp;
    enum q_format format;
};

static const struct suffix_def SUFFIXES[] = {
    {"", 10, 0, F_DECIMAL_SI},   {"n", 10, -9, F_DECIMAL_SI}, {"u", 10, -6, F_DECIMAL_SI},
    {"m", 10, -3, F_DECIMAL_SI}, {"k", 10, 3, F_DECIMAL_SI},  {"M", 10, 6, F_DECIMAL_SI},
    {"G", 10, 9, F_DECIMAL_SI},  {"T", 10, 12, F_DECIMAL_SI}, {"P", 10, 15, F_DECIMAL_SI},
    {"E", 10, 18, F_DECIMAL_SI}, {"Ki", 2, 10, F_BINARY_SI},  {"Mi", 2, 20, F_BINARY_SI},
    {"Gi", 2, 30, F_BINARY_SI},  {"Ti", 2, 40, F_BINARY_SI},  {"Pi", 2, 50, F_BINARY_SI},
    {"Ei", 2, 60, F_BINARY_SI},
};

/* Go's strconv.ParseInt(s, 10, 64). */
static bool parse_int64(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (i == n)
        return false;
    uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
    for (; i < n; i++) {
        if (!is_digit(s[i]))
            return false;
        unsigned dgt = (unsigned)(s[i] - '0');
        if (v > (lim - dgt) / 10)
            return false;
        v = v * 10 + dgt;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static bool interpret_suffix(const char *s, size_t n, int *base, int32_t *exp, enum q_format *f)
{
    for (size_t i = 0; i < sizeof SUFFIXES / sizeof SUFFIXES[0]; i++) {
        if (strlen(SUFFIXES[i].s) == n && memcmp(SUFFIXES[i].s, s, n) == 0) {
            *base = SUFFIXES[i].base, *exp = SUFFIXES[i].exp, *f = SUFFIXES[i].format;
            return true;
        }
    }
    int64_t e;
    if (n > 1 && (s[0] == 'e' || s[0] == 'E') && parse_int64(s + 1, n - 1, &e)) {
        *base = 10, *exp = (int32_t)e; /* upstream truncates to int32 too */
        *f = F_DECIMAL_EXPONENT;
        return true;
    }
    return false;
}

/* ---- decimal helpers ---- */

static void dec_trim_leading(struct dec *d)
{
    int z = 0;
    while (z < d->nd && d->d[z] == 0)
        z++;
    memmove(d->d, d->d + z, (size_t)(d->nd - z));
    d->nd -= z;
}

/* Moves trailing zero digits into the exponent. */
static void dec_normalize(struct dec *d)
{
    dec_trim_leading(d);
    while (d->nd > 0 && d->d[d->nd - 1] == 0) {
        d->nd--;
        d->exp++;
    }
    if (d->nd == 0)
        d->exp = 0;
}

static bool dec_mul_small(struct dec *d, unsigned m)
{
    unsigned carry = 0;
    for (int i = d->nd - 1; i >= 0; i--) {
        unsigned v = d->d[i] * m + carry;
        d->d[i] = (unsigned char)(v % 10);
        carry = v / 10;
    }
    while (carry) {
        if (d->nd >= DEC_MAX)
            return false;
        memmove(d->d + 1, d->d, (size_t)d->nd);
        d->d[0] = (unsigned char)(carry % 10);
        d->nd++;
        carry /= 10;
    }
    return true;
}

/* Adds one unit in the last place to the magnitude. */
static bool dec_inc(struct dec *d)
{
    for (int i = d->nd - 1; i >= 0; i--) {
        if (d->d[i] < 9) {
            d->d[i]++;
            return true;
        }
        d->d[i] = 0;
    }
    if (d->nd < 0 || d->nd >= DEC_MAX) /* nd < 0 never happens; said so that -O3's bounds check sees it */
        return false;
    memmove(d->d + 1, d->d, (size_t)d->nd);
    d->d[0] = 1;
    d->nd++;
    return true;
}

/* Rounds the magnitude away from zero to a multiple of 10^e; *exact tells if nothing was lost. */
static bool dec_round_up(struct dec *d, int64_t e, bool *exact)
{
    *exact = true;
    if (d->nd == 0 || d->exp >= e)
        return true;
    int64_t drop = e - d->exp;
    bool lost = false;
    if (drop >= d->nd) {
        for (int i = 0; i < d->nd; i++)
            lost |= d->d[i] != 0;
        d->nd = 0;
    } else {
        for (int64_t i = d->nd - drop; i < d->nd; i++)
            lost |= d->d[i] != 0;
        d->nd -= (int)drop;
    }
    d->exp = e;
    *exact = !lost;
    if (lost && d->nd == 0) {
        d->d[0] = 1;
        d->nd = 1;
        return true;
    }
    return lost ? dec_inc(d) : true;
}

/* Compares magnitudes of two normalized decimals. */
static int dec_cmp_mag(const struct dec *a, const struct dec *b)
{
    if (a->nd == 0 || b->nd == 0)
        return (a->nd != 0) - (b->nd != 0);
    int64_t ma = a->nd + a->exp, mb = b->nd + b->exp; /* position of the top digit */
    if (ma != mb)
        return ma < mb ? -1 : 1;
    int n = a->nd > b->nd ? a->nd : b->nd;
    for (int i = 0; i < n; i++) {
        int da = i < a->nd ? a->d[i] : 0, db = i < b->nd ? b->d[i] : 0;
        if (da != db)
            return da < db ? -1 : 1;
    }
    return 0;
}

static void dec_from_u64(struct dec *d, uint64_t v)
{
    unsigned char tmp[24];
    int n = 0;
    do { /* least significant digit first, reversed below (snprintf here was a tenth of a Pod's validation) */
        tmp[n++] = (unsigned char)(v % 10);
        v /= 10;
    } while (v);
    d->neg = false;
    d->nd = n;
    d->exp = 0;
    for (int i = 0; i < n; i++)
        d->d[i] = tmp[n - 1 - i];
    dec_normalize(d);
}

/* Magnitude as an integer if it fits in uint64 and has no fraction. */
static bool dec_to_u64(const struct dec *d, uint64_t *out)
{
    if (d->nd == 0) {
        *out = 0;
        return true;
    }
    if (d->exp < 0 || d->nd + d->exp > 20)
        return false;
    uint64_t v = 0;
    for (int64_t i = 0; i < d->nd + d->exp; i++) {
        unsigned dgt = i < d->nd ? d->d[i] : 0;
        if (v > (UINT64_MAX - dgt) / 10)
            return false;
        v = v * 10 + dgt;
    }
    *out = v;
    return true;
}

/* ---- ParseQuantity ---- */

static enum q_error quantity_parse(const char *str, struct quantity *q)
{
    size_t len = strlen(str);
    memset(q, 0, sizeof *q);
    if (len == 0 || len > KC_QUANTITY_MAX_LEN)
        return Q_FORMAT;
    if (strcmp(str, "0") == 0) {
        q->format = F_DECIMAL_SI;
        q->reuse = true;
        return Q_OK;
    }
    struct qscan s;
    enum q_error e = scan(str, len, &s);
    if (e)
        return e;
    int base;
    int32_t exponent;
    if (!interpret_suffix(s.suffix, s.suffix_len, &base, &exponent, &q->format))
        return Q_SUFFIX;

    /* upstream's int64 fast path: decides whether the input is kept verbatim,
     * and accepts a value without digits ("." or "-") as zero */
    int precision;
    int64_t scale = 0;
    uint64_t mant_shift = 0;
    if (q->format == F_BINARY_SI) {
        if (exponent >= 0 && s.denom_len == 0) {
            mant_shift = (uint64_t)exponent;
            precision = 15 - (int)s.num_len - exponent * 3 / 10 - 1;
        } else {
            precision = -1;
        }
    } else {
        scale = exponent;
        precision = 18 - (int)(s.num_len + s.denom_len);
    }
    bool fast = false;
    if (precision >= 0) {
        scale -= (int64_t)s.denom_len;
        if (scale >= -9) {
            char shifted[40];
            snprintf(shifted, sizeof shifted, "%.*s%.*s", (int)s.num_len, s.num, (int)s.denom_len,
                     s.denom);
            int64_t v = 0;
            parse_int64(shifted, strlen(shifted), &v); /* ≤ 18 digits: cannot fail */
            if (mant_shift < 63 && v <= (INT64_MAX >> mant_shift)) {
                fast = true;
                if (q->format == F_BINARY_SI)
                    q->reuse = (v & 7) != 0;
                else
                    q->reuse = scale % 3 == 0 && shifted[0] != '0' &&
                               !(strlen(shifted) >= 3 && strcmp(shifted + strlen(shifted) - 3, "000") == 0);
            }
        }
    }
    if (!fast) { /* inf.Dec.SetString needs at least one digit */
        bool digit = false;
        for (size_t i = 0; i < s.value_len; i++)
            digit |= is_digit(s.value[i]);
        if (!digit)
            return Q_NUMERIC;
    }

    /* the exact value */
    struct dec *d = &q->v;
    d->neg = !s.positive;
    for (size_t i = 0; i < s.num_len; i++)
        d->d[d->nd++] = (unsigned char)(s.num[i] - '0');
    for (size_t i = 0; i < s.denom_len; i++)
        d->d[d->nd++] = (unsigned char)(s.denom[i] - '0');
    d->exp = -(int64_t)s.denom_len + (base == 10 ? exponent : 0);
    dec_trim_leading(d);
    if (base == 2)
        for (int i = 0; i < exponent; i++)
            if (!dec_mul_small(d, 2))
                return Q_NUMERIC;
    dec_normalize(d);
    if (d->nd == 0) {
        d->neg = false;
        return Q_OK;
    }
    bool exact;
    if (!dec_round_up(d, -9, &exact))
        return Q_NUMERIC;
    dec_normalize(d);
    if (q->format == F_BINARY_SI) {
        struct dec lim, one;
        dec_from_u64(&lim, INT64_MAX);
        dec_from_u64(&one, 1);
        if (dec_cmp_mag(d, &lim) > 0) {
            bool neg = d->neg;
            *d = lim;
            d->neg = neg;
        }
        if (dec_cmp_mag(d, &one) < 0)
            q->format = F_DECIMAL_SI;
    }
    return Q_OK;
}

static const char *q_error_text(enum q_error e)
{
    switch (e) {
    case Q_OK: return NULL;
    case Q_NUMERIC: return "unable to parse numeric part of quantity";
    case Q_SUFFIX: return "unable to parse quantity's suffix";
    default: return KC_QUANTITY_FORMAT_ERROR;
    }
}

const char *kc_quantity_error(const char *s)
{
    struct quantity q;
    if (!s)
        return KC_QUANTITY_FORMAT_ERROR;
    return q_error_text(quantity_parse(s, &q));
}

/* MilliValue: value × 1000 rounded away from zero, saturating at the int64 range. */
int kc_quantity_parse(const char *s, int64_t *milli)
{
    struct quantity q;
    if (!s || quantity_parse(s, &q) != Q_OK)
        return -1;
    struct dec d = q.v;
    d.exp += 3;
    bool exact;
    if (!dec_round_up(&d, 0, &exact))
        return -1;
    uint64_t mag;
    int64_t v;
    if (!dec_to_u64(&d, &mag) || mag > (uint64_t)INT64_MAX + (d.neg ? 1 : 0))
        v = d.neg ? INT64_MIN : INT64_MAX;
    else
        v = d.neg ? (int64_t)(0 - mag) : (int64_t)mag;
    if (milli)
        *milli = v;
    return 0;
}

/* ---- canonical form (CanonicalizeBytes) ---- */

static int emit_digits(char *out, size_t n, size_t *off, const struct dec *d)
{
    size_t need = (size_t)d->nd + (d->neg ? 1 : 0);
    if (*off + need >= n)
        return KC_ETOOLARGE;
    if (d->neg)
        out[(*off)++] = '-';
    for (int i = 0; i < d->nd; i++)
        out[(*off)++] = (char)('0' + d->d[i]);
    out[*off] = 0;
    return 0;
}

static int emit(char *out, size_t n, const char *s)
{
    if (strlen(s) >= n)
        return KC_ETOOLARGE;
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

static int canonical_binary(const struct dec *v, char *out, size_t n)
{
    uint64_t mag = 0;
    dec_to_u64(v, &mag); /* capped at 2^63-1, integer: always fits */
    static const char *const bin[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
    int e = 0;
    while (mag % 1024 == 0 && e < 6) {
        mag /= 1024;
        e++;
    }
    char tmp[48];
    snprintf(tmp, sizeof tmp, "%s%llu%s", v->neg ? "-" : "", (unsigned long long)mag, bin[e]);
    return emit(out, n, tmp);
}

static const char *decimal_suffix(int64_t e)
{
    static const struct { int e; const char *s; } T[] = {
        {-9, "n"}, {-6, "u"}, {-3, "m"}, {0, ""}, {3, "k"}, {6, "M"},
        {9, "G"},  {12, "T"}, {15, "P"}, {18, "E"},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        if (T[i].e == e)
            return T[i].s;
    return ""; /* upstream emits no suffix when its table has none (e.g. 10^21) */
}

int kc_quantity_canonical(const char *s, char *out, size_t n)
{
    struct quantity q;
    if (!s || !out || quantity_parse(s, &q) != Q_OK)
        return KC_EINVAL;
    if (q.reuse)
        return emit(out, n, s);
    struct dec d = q.v;
    if (d.nd == 0)
        return emit(out, n, "0");
    enum q_format f = q.format;
    if (f == F_BINARY_SI) {
        struct dec k;
        dec_from_u64(&k, 1024);
        struct dec r = d;
        bool exact = true;
        if (dec_cmp_mag(&d, &k) < 0 || !dec_round_up(&r, 0, &exact) || !exact)
            f = F_DECIMAL_SI;
        else
            return canonical_binary(&d, out, n);
    }
    dec_normalize(&d);
    while (d.exp % 3 != 0) {
        if (!dec_mul_small(&d, 10))
            return KC_ETOOLARGE;
        d.exp--;
    }
    size_t off = 0;
    int rc = emit_digits(out, n, &off, &d);
    if (rc)
        return rc;
    char suf[24] = "";
    if (f == F_DECIMAL_SI)
        snprintf(suf, sizeof suf, "%s", decimal_suffix(d.exp));
    else if (d.exp != 0)
        snprintf(suf, sizeof suf, "e%d", (int32_t)d.exp);
    if (off + strlen(suf) >= n)
        return KC_ETOOLARGE;
    memcpy(out + off, suf, strlen(suf) + 1);
    return 0;
}
