/* jsonscan.h — find a value inside JSON text without building a tree.
 *
 * The watch cache receives every stored object as bytes; it needs only a handful of values from
 * each (metadata, labels, the fields field selectors use). Scanning for them is several times
 * cheaper than parsing the whole object with jansson and serialising it again (docs/bench.md).
 * Input must be valid JSON (it was validated when written); on malformed input the functions
 * return -1 rather than read past len.
 */
#ifndef KC_UTIL_JSONSCAN_H
#define KC_UTIL_JSONSCAN_H

#include <stddef.h>

/* Locates the value at a dotted path ("metadata.labels") in the JSON object text s[0..len).
 * Returns 0 and sets *off and *vlen to the value's span, or -1 if absent. Keys are compared as raw
 * bytes (our paths contain no characters that JSON escapes). */
int kc_json_span(const char *s, size_t len, const char *path, size_t *off, size_t *vlen);
/* Several keys of one object in one pass: the object starts at s[i] (after whitespace); each key's
 * span is recorded in its entry (found = 1, off/len relative to s). Returns the number found, or -1 if
 * s[i] is not a well-formed object. kc_json_span from the start for each key would skip the values
 * before it again each time; the watch cache looks up a dozen values per stored object. */
struct kc_jkey {
    const char *key;
    size_t klen;
    int found;
    size_t off, len;
};
int kc_json_keys(const char *s, size_t len, size_t i, struct kc_jkey *keys, size_t n);
/* s[i] is the '"' opening a string: returns the offset just past its closing quote, or -1. */
long kc_json_skip_string(const char *s, size_t len, size_t i);
/* Returns the offset just past the JSON value starting at s[i] (after leading whitespace), or -1. */
long kc_json_skip(const char *s, size_t len, size_t i);

#endif
