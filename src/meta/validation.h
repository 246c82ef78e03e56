/* validation.h — the name, label and quantity rules of Kubernetes
 * (k8s.io/apimachinery/pkg/util/validation and api/resource).
 *
 * Each kc_validate_* returns NULL when the value is valid, or a static
 * message in upstream's wording (e.g. "a lowercase RFC 1123 subdomain must
 * consist of lower case alphanumeric characters, '-' or '.', and must start
 * and end with an alphanumeric character (e.g. 'example.com', regex used for
 * validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')").
 * Messages may be built into the caller's buffer `msg` of size n, and the
 * return value then points to it.
 *
 * Wording follows upstream at kubernetes 1.35+: DNS-1123 names say "must be
 * no more than 253/63 characters" (pkg/util/validation); label keys and
 * values say "must be no more than 63 bytes" (pkg/api/validate/content).
 * Where upstream returns several messages for one value (e.g. too long AND
 * bad characters), the single-string functions join them with "; " (as
 * upstream's label selector parser does) into msg (truncated to n; with no
 * buffer, the first message alone is returned); the JSON functions below emit
 * one cause per message, as upstream's ValidateLabels does. Thread-safe.
 */
#ifndef KC_META_VALIDATION_H
#define KC_META_VALIDATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* DNS-1123 subdomain (≤ 253): names of most objects (Deployment, Pod, ConfigMap, ...). */
const char *kc_validate_dns1123_subdomain(const char *s, char *msg, size_t n);
/* DNS-1123 label (≤ 63): Namespace names, container names. */
const char *kc_validate_dns1123_label(const char *s, char *msg, size_t n);
/* Qualified name (label/annotation keys): [prefix/]name, name ≤ 63, prefix a DNS subdomain. */
const char *kc_validate_qualified_name(const char *s, char *msg, size_t n);
/* Label value: ≤ 63, empty or alnum at both ends, [-_.A-Za-z0-9] inside. */
const char *kc_validate_label_value(const char *s, char *msg, size_t n);

/* Validates metadata.labels / metadata.annotations objects and appends one
 * Kubernetes StatusCause per problem to the JSON array errs; returns the
 * number appended. path is the cause's "field" (NULL = "metadata.labels" /
 * "metadata.annotations"). Causes, exactly:
 *   bad key or value (upstream field.Invalid(path, bad, msg)):
 *     {"reason":"FieldValueInvalid",
 *      "message":"Invalid value: \"<bad key or value, Go %q quoting>\": <msg>",
 *      "field":"<path>"}
 *     e.g. "Invalid value: \"-x\": name part must consist of alphanumeric ..."
 *   annotations whose keys+values exceed 262144 bytes (field.TooLong):
 *     {"reason":"FieldValueTooLong",
 *      "message":"Too long: may not be more than 262144 bytes","field":"<path>"}
 *     (upstream's wording since 1.33; older servers said "must have at most 262144 bytes")
 *   a non-string value, or labels/annotations not an object (kubec only; upstream
 *   fails earlier, while decoding):
 *     {"reason":"FieldValueTypeInvalid",
 *      "message":"Invalid value: \"<json type>\": must be a string","field":"<path>"}
 * Annotation keys are checked as qualified names after lowercasing (upstream:
 * case does not matter); labels and annotations may be NULL or JSON null. */
#define KC_ANNOTATIONS_MAX_BYTES 262144
int kc_validate_labels(json_t *labels, const char *path, json_t *errs);
int kc_validate_annotations(json_t *annotations, const char *path, json_t *errs);

/* resource.Quantity, as k8s.io/apimachinery/pkg/api/resource parses it:
 * <sign><digits>[.<digits>]<suffix>, suffix one of "" n u m k M G T P E
 * (decimal), Ki Mi Gi Ti Pi Ei (binary) or e<int>/E<int> (exponent). Non-zero
 * values below 1n round up to 1n; binary values cap at 2^63-1. Inputs longer
 * than KC_QUANTITY_MAX_LEN bytes are rejected (upstream has no limit). */
#define KC_QUANTITY_MAX_LEN 256
#define KC_QUANTITY_FORMAT_ERROR \
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"

/* Returns 0 and sets *milli (if non-NULL) to the value × 1000, rounded away
 * from zero and saturated at INT64_MIN/INT64_MAX (upstream's MilliValue
 * overflows instead), or -1 if s is not a quantity. */
int kc_quantity_parse(const char *s, int64_t *milli);
/* NULL if s is a quantity, else upstream's error text: KC_QUANTITY_FORMAT_ERROR,
 * "unable to parse quantity's suffix" or "unable to parse numeric part of quantity". */
const char *kc_quantity_error(const char *s);
/* Canonical form as upstream serializes it into out (size n): "0.5" → "500m",
 * "1000m" → "1", "1024Mi" → "1Gi", "1.5Gi" → "1536Mi", "2000" → "2k",
 * "12e2" → "1200", "1e4" → "10e3" (exponent inputs keep the e form, with an
 * exponent that is a multiple of 3). Inputs upstream considers canonical already
 * are copied verbatim (e.g. "100Mi", "1e3", and quirks like "+1Ki", "01").
 * Returns 0, KC_EINVAL (not a quantity) or KC_ETOOLARGE (n too small). */
int kc_quantity_canonical(const char *s, char *out, size_t n);

/* Appends the causes of one name rule (one FieldValueInvalid cause per upstream
 * message, same shape as above) for `value` at `field`; returns the count. Lets
 * callers report metadata.name like upstream's ValidateObjectMeta does. */
enum kc_name_rule {
    KC_RULE_DNS1123_SUBDOMAIN,
    KC_RULE_DNS1123_LABEL,
    KC_RULE_QUALIFIED_NAME,
    KC_RULE_LABEL_VALUE,
};
int kc_validate_append_causes(enum kc_name_rule rule, const char *value, const char *field, json_t *errs);

#endif
