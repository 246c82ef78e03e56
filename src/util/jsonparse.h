/* jsonparse.h — a fast JSON parser that builds jansson values, and a deep copy without cycle checks.
 *
 * Why: jansson stays our JSON tree (mature, in Debian, the API every module already speaks), but its
 * parser reads the input one character at a time through a stream callback, copies every token
 * into a growing string buffer and checks UTF-8 per character: a 1.2 KiB Pod takes ~19 µs to parse,
 * of which building the tree (allocations, hash-table inserts) is only ~5 µs. This parser scans the
 * input in place (a string without escapes goes to json_stringn_nocheck straight from the input)
 * and builds the same values with the same jansson calls.
 *
 * Contract: kc_json_loadb accepts exactly what json_loadb accepts with the same flags and returns an
 * equal tree. Whatever it does not accept — malformed input, and also valid input on its rare slow
 * paths (a real number strtod cannot take whole, nesting deeper than jansson's 2,048 levels) — is
 * handed to json_loadb itself, so the error texts (line, column, position) are jansson's and an input
 * this parser is unsure about still gets jansson's answer. tests/unit/util/test_jsonparse.c checks the
 * equivalence against json_loadb on hand-written edge cases and on a few hundred thousand random
 * mutations of real objects.
 *
 * Flags handled here: JSON_REJECT_DUPLICATES, JSON_DECODE_ANY and JSON_ALLOW_NUL; with any other flag
 * the input goes straight to json_loadb.
 */
#ifndef KC_UTIL_JSONPARSE_H
#define KC_UTIL_JSONPARSE_H

#include <jansson.h>
#include <stddef.h>

json_t *kc_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *error);
/* The parser alone: NULL wherever kc_json_loadb would ask json_loadb (tests and benchmarks). */
json_t *kc_json_loadb_fast(const char *buf, size_t len, size_t flags);
/* NUL-terminated input. */
json_t *kc_json_loads(const char *s, size_t flags, json_error_t *error);

/* A deep copy of v (new reference; NULL for NULL, as json_deep_copy, or when memory runs out). Like json_deep_copy without its
 * cycle check, which formats every container's address with snprintf into a hash table (our values
 * are trees by construction): ~25 % cheaper on a Pod. */
json_t *kc_json_copy(const json_t *v);

#endif
