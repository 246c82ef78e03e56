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

/* Validates metadata.labels / metadata.annotations objects; appends upstream-style
 * field errors ("metadata.labels: Invalid value: \"...\": <msg>") into errs (a JSON
 * array of {"field","type","message","value"} causes) and returns the count added.
 * Annotations: keys qualified names, total size ≤ 256 KiB. */
int kc_validate_labels(json_t *labels, const char *path, json_t *errs);
int kc_validate_annotations(json_t *annotations, const char *path, json_t *errs);

/* resource.Quantity: parses "100m", "1.5Gi", "2e3", "1k" ... Returns 0 and
 * sets *milli (value × 1000, saturating) or -1 if s is not a quantity
 * (message: "quantities must match the regular expression
 * '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"). */
int kc_quantity_parse(const char *s, int64_t *milli);
/* Canonical form as upstream serializes it ("0.5" cpu → "500m", "1024Mi" stays "1Gi"). Caller's buffer. */
int kc_quantity_canonical(const char *s, char *out, size_t n);

#endif
