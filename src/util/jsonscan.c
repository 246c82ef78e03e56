/* jsonscan.c — value lookup in JSON text (see jsonscan.h). */
#include "util/jsonscan.h"

#include <stdint.h>
#include <string.h>

static size_t ws(const char *s, size_t len, size_t i)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* The first '"' or backslash in s[i..len), or len: eight bytes at a time (the zero-byte test on x
 * xor the character; its lowest hit is exact), as strings are most of what the scans skip. */
static size_t find_quote_or_backslash(const char *s, size_t len, size_t i)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    for (; i + 8 <= len; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
        uint64_t hit = (((q - ones) & ~q) | ((b - ones) & ~b)) & highs;
        if (hit)
            return i + (size_t)(__builtin_ctzll(hit) >> 3);
    }
    while (i < len && s[i] != '"' && s[i] != '\\')
        i++;
    return i;
}

long kc_json_skip_string(const char *s, size_t len, size_t i)
{
    /* s[i] == '"' */
    for (i++;;) {
        i = find_quote_or_backslash(s, len, i);
        if (i >= len)
            return -1;
        if (s[i] == '"')
            return (long)(i + 1);
        i += 2; /* the escaped character */
    }
}

static long skip_string(const char *s, size_t len, size_t i) { return kc_json_skip_string(s, len, i); }

long kc_json_skip(const char *s, size_t len, size_t i)
{
    i = ws(s, len, i);
    if (i >= len)
        return -1;
    char c = s[i];
    if (c == '"')
        return skip_string(s, len, i);
    if (c == '{' || c == '[') {
        int depth = 0;
        for (; i < len; i++) {
            char d = s[i];
            if (d == '"') {
                long e = skip_string(s, len, i);
                if (e < 0)
                    return -1;
                i = (size_t)e - 1;
            } else if (d == '{' || d == '[') {
                depth++;
            } else if (d == '}' || d == ']') {
                if (--depth == 0)
                    return (long)(i + 1);
            }
        }
        return -1;
    }
    /* number, true, false, null */
    while (i < len && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\n' && s[i] != '\t' &&
           s[i] != '\r')
        i++;
    return (long)i;
}

/* s[i] is a member's key: sets (*kp, *kl) to its raw bytes and returns the offset of its value (after the
 * ':' and whitespace), or -1. */
static long member_key(const char *s, size_t len, size_t i, const char **kp, size_t *kl)
{
    if (i >= len || s[i] != '"')
        return -1;
    long ke = skip_string(s, len, i);
    if (ke < 0)
        return -1;
    *kp = s + i + 1;
    *kl = (size_t)ke - i - 2;
    i = ws(s, len, (size_t)ke);
    if (i >= len || s[i] != ':')
        return -1;
    return (long)ws(s, len, i + 1);
}

/* The object starting at s[i] (after whitespace): returns the offset of its first member's key, 0 if it
 * is empty ("{}"), -1 if it is not an object. (An object's first key is never at offset 0.) */
static long object_first(const char *s, size_t len, size_t i)
{
    i = ws(s, len, i);
    if (i >= len || s[i] != '{')
        return -1;
    i = ws(s, len, i + 1);
    return i < len && s[i] == '}' ? 0 : (long)i;
}

/* After a member's value, which ends at ve: the offset of the next member's key, 0 at the object's
 * end, -1 on malformed text. */
static long object_next(const char *s, size_t len, size_t ve)
{
    size_t i = ws(s, len, ve);
    if (i >= len)
        return -1;
    if (s[i] == '}')
        return 0;
    return s[i] == ',' ? (long)ws(s, len, i + 1) : -1;
}

/* Finds key (klen bytes) in the object starting at s[i] ('{'). Sets *vi to the value's start. */
static int find_key(const char *s, size_t len, size_t i, const char *key, size_t klen, size_t *vi)
{
    long at = object_first(s, len, i);
    while (at > 0) {
        const char *kp;
        size_t kl;
        long v = member_key(s, len, (size_t)at, &kp, &kl);
        if (v < 0)
            return -1;
        if (kl == klen && !memcmp(kp, key, klen)) {
            *vi = (size_t)v;
            return 0;
        }
        long ve = kc_json_skip(s, len, (size_t)v);
        if (ve < 0)
            return -1;
        at = object_next(s, len, (size_t)ve);
    }
    return -1;
}

int kc_json_keys(const char *s, size_t len, size_t i, struct kc_jkey *keys, size_t n)
{
    for (size_t k = 0; k < n; k++)
        keys[k].found = 0;
    long at = object_first(s, len, i);
    size_t found = 0;
    while (at > 0) {
        const char *kp;
        size_t kl;
        long v = member_key(s, len, (size_t)at, &kp, &kl);
        if (v < 0)
            return -1;
        long ve = kc_json_skip(s, len, (size_t)v);
        if (ve < 0)
            return -1;
        for (size_t k = 0; k < n; k++) {
            if (!keys[k].found && keys[k].klen == kl && !memcmp(keys[k].key, kp, kl)) {
                keys[k].found = 1;
                keys[k].off = (size_t)v;
                keys[k].len = (size_t)(ve - v);
                found++;
            }
        }
        if (found == n)
            return (int)found;
        at = object_next(s, len, (size_t)ve);
    }
    return at < 0 ? -1 : (int)found;
}

int kc_json_span(const char *s, size_t len, const char *path, size_t *off, size_t *vlen)
{
    size_t i = 0;
    const char *p = path;
    while (*p) {
        size_t n = strcspn(p, ".");
        size_t vi;
        if (find_key(s, len, i, p, n, &vi))
            return -1;
        i = vi;
        p += n;
        if (*p == '.')
            p++;
    }
    i = ws(s, len, i);
    long e = kc_json_skip(s, len, i);
    if (e < 0)
        return -1;
    *off = i;
    *vlen = (size_t)e - i;
    return 0;
}
