/* selector.h — label selectors and field selectors, parsed once, matched many times.
 *
 * Label selector syntax (k8s.io/apimachinery/pkg/labels): comma-separated
 * requirements, each one of
 *     key  |  !key  |  key=v  |  key==v  |  key!=v  |  key in (a,b)  |  key notin (a,b)
 *     key>N | key<N   (integer comparisons, as upstream parses them)
 * Keys and values are validated as upstream does (qualified names, label
 * values); a parse failure fills err with upstream-style wording.
 *
 * Field selector syntax (k8s.io/apimachinery/pkg/fields): comma-separated
 *     field=v | field==v | field!=v     (backslash escapes \, \= \\ in values)
 * Which fields are allowed is decided per kind by the caller
 * (kc_field_selector_check).
 *
 * Limits: label and field selector strings over 65536 bytes and sets over
 * 4096 values are rejected with KC_EINVAL. Error texts are upstream's, e.g.
 *   unable to parse requirement: found '', expected: identifier
 *   found ',', expected: !, identifier, or 'end of string'
 *   unable to parse requirement: values[0][x]: Invalid value: "a@b": a valid label must be ...
 *   invalid selector: 'a'; can't understand 'a'
 *   invalid field selector: invalid escape sequence: \x
 *   "Foo" is not a valid label selector operator
 *
 * Matching asks the caller for values through a lookup callback so that the
 * objects need not be parsed JSON (the watch cache keeps labels and indexed
 * fields beside the bytes).
 */
#ifndef KC_META_SELECTOR_H
#define KC_META_SELECTOR_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "util/err.h"

struct kc_label_selector;
struct kc_field_selector;

/* Returns the value of label/field `key` of the object, or NULL if absent. */
typedef const char *(*kc_lookup_fn)(void *obj, const char *key);

/* Parses s (may be NULL or "" = matches everything). Returns 0 and a new
 * selector in *out (free with kc_label_selector_free), or KC_EINVAL + err. */
int kc_label_selector_parse(const char *s, struct kc_label_selector **out, struct kc_err *err);
/* Builds a selector from a metav1.LabelSelector JSON object
 * ({matchLabels:{}, matchExpressions:[{key,operator,values}]}); NULL json
 * matches nothing (as upstream's nil selector), {} matches everything. */
int kc_label_selector_from_json(json_t *ls, struct kc_label_selector **out, struct kc_err *err);
bool kc_label_selector_matches(const struct kc_label_selector *sel, kc_lookup_fn lookup, void *obj);
/* Matches against a JSON object of labels ({"app":"x"}); NULL = no labels. */
bool kc_label_selector_matches_json(const struct kc_label_selector *sel, json_t *labels);
bool kc_label_selector_empty(const struct kc_label_selector *sel);
/* Canonical string form, e.g. "app=my-app,tier in (a,b)" (caller frees). */
char *kc_label_selector_string(const struct kc_label_selector *sel);
void kc_label_selector_free(struct kc_label_selector *sel);
/* True for the selector of a null metav1.LabelSelector (matches nothing). */
bool kc_label_selector_nothing(const struct kc_label_selector *sel);
/* Upstream's RequiresExactMatch: if the first requirement on `key` is key=v,
 * key==v or key in (v) with one value, returns v (for index use), else NULL. */
const char *kc_label_selector_exact(const struct kc_label_selector *sel, const char *key);

int kc_field_selector_parse(const char *s, struct kc_field_selector **out, struct kc_err *err);
/* Checks every field named in sel is in the NULL-terminated `allowed` list;
 * otherwise KC_EINVAL with `field label not supported: <name>` (upstream's wording). */
int kc_field_selector_check(const struct kc_field_selector *sel, const char *const *allowed, struct kc_err *err);
bool kc_field_selector_matches(const struct kc_field_selector *sel, kc_lookup_fn lookup, void *obj);
/* If sel requires field == value exactly, returns the value (for index use), else NULL. */
const char *kc_field_selector_exact(const struct kc_field_selector *sel, const char *field);
void kc_field_selector_free(struct kc_field_selector *sel);
/* True if sel has no terms (NULL, "", ",", "="). */
bool kc_field_selector_empty(const struct kc_field_selector *sel);
/* Upstream's String(): terms in parse order (sorted), values re-escaped,
 * e.g. "metadata.name=a\\,b,status.phase!=Running" (caller frees). */
char *kc_field_selector_string(const struct kc_field_selector *sel);

#endif
