/* schema.h — one description of every kind kubec serves, and what is derived from it.
 *
 * The project owns a schema description (the .kcs files under schema/, embedded into the
 * binary at build time; format in docs/schema-format.md). From that one
 * description kubec derives, instead of keeping hand-made copies:
 *   - the OpenAPI v3 documents (/openapi/v3/...), with
 *     x-kubernetes-patch-merge-key / -patch-strategy / -list-type /
 *     -list-map-keys / x-kubernetes-group-version-kind, so that kubectl
 *     computes correct strategic merge patches and `kubectl explain` works;
 *   - the minimal OpenAPI v2 protobuf document kubectl 1.27/1.28 require;
 *   - the protobuf decoder for request bodies (application/vnd.kubernetes.protobuf);
 *   - the merge keys and strategies the strategic-merge-patch code needs
 *     (kc_schema_patch_ops);
 *   - unknown-field detection for fieldValidation=Strict|Warn;
 *   - type checks of JSON values (a string where an int32 belongs → 400/422).
 *
 * The schema is parsed once (kc_schema_default, thread-safe, ~µs) and is
 * immutable afterwards, so it is shared by all threads without locks.
 */
#ifndef KC_SCHEMA_SCHEMA_H
#define KC_SCHEMA_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "patch/patch.h"
#include "util/err.h"

enum kc_ftype {
    KC_F_STRING, KC_F_INT32, KC_F_INT64, KC_F_BOOL, KC_F_DOUBLE,
    KC_F_BYTES,        /* JSON: base64 string; proto: bytes */
    KC_F_TIME,         /* metav1.Time: JSON RFC3339 string; proto: message {int64 seconds=1; int32 nanos=2} */
    KC_F_MICROTIME,    /* metav1.MicroTime: as Time, JSON with microseconds */
    KC_F_DURATION,     /* metav1.Duration: JSON "1m0s" string; proto: message {int64 duration=1} (nanoseconds) */
    KC_F_QUANTITY,     /* resource.Quantity: JSON string (or number); proto: message {string string=1} */
    KC_F_INTORSTRING,  /* intstr.IntOrString: JSON int or string; proto: {int64 type=1; int32 intVal=2; string strVal=3} */
    KC_F_RAW,          /* runtime.RawExtension / free-form JSON: proto: message {bytes raw=1} holding JSON */
    KC_F_MESSAGE,      /* a described type (field->msg) */
};

struct kc_type;

struct kc_field {
    const char *name;          /* JSON name */
    int number;                /* protobuf field number (inside the embedded message when inline_num > 0) */
    int inline_num;            /* 0, or the outer field number of the Go struct embedded inline that holds
                                * this field: JSON flat in this object, protobuf nested in one message */
    enum kc_ftype type;        /* element/value type for lists and maps */
    const struct kc_type *msg; /* for KC_F_MESSAGE */
    bool list;                 /* JSON array / proto repeated */
    bool map;                  /* JSON object with string keys / proto map<string, T> */
    bool required;
    unsigned strategy;         /* enum kc_patch_strategy flags */
    const char *merge_key;     /* x-kubernetes-patch-merge-key, or NULL */
    const char *list_type;     /* x-kubernetes-list-type: atomic|set|map, or NULL */
    const char *list_map_keys; /* comma-separated x-kubernetes-list-map-keys, or NULL */
    const char *description;   /* our own words, may be NULL */
};

struct kc_type {
    const char *name;          /* e.g. "io.k8s.api.apps.v1.Deployment" (the OpenAPI definition name) */
    const char *group, *version, *kind; /* set for top-level kinds (gvk=...), else NULL */
    const char *description;
    struct kc_field *fields;
    size_t nfields;
};

struct kc_schema;

/* The embedded schema (parsed on first use). Aborts the process if the
 * embedded text is malformed — that is a build defect caught by the unit tests. */
const struct kc_schema *kc_schema_default(void);
/* Parses schema text (for tests). *out freed with kc_schema_free. */
int kc_schema_parse(const char *text, size_t len, struct kc_schema **out, struct kc_err *err);
void kc_schema_free(struct kc_schema *s);

const struct kc_type *kc_schema_type(const struct kc_schema *s, const char *name);
const struct kc_type *kc_schema_kind(const struct kc_schema *s, const char *group, const char *version,
                                     const char *kind);
const struct kc_field *kc_type_field(const struct kc_type *t, const char *json_name);
/* The field with protobuf number `number` directly in t's message (not one
 * of an inline-embedded struct). */
const struct kc_field *kc_type_field_num(const struct kc_type *t, int number);
/* The field with number `number` inside the inline-embedded message at outer
 * field number `inline_num` of t (inline_num 0: same as kc_type_field_num). */
const struct kc_field *kc_type_field_inline(const struct kc_type *t, int inline_num, int number);
/* Whether outer field number `number` of t carries an inline-embedded message. */
bool kc_type_is_inline_num(const struct kc_type *t, int number);

/* All described types, in declaration order (for tools and tests). */
size_t kc_schema_ntypes(const struct kc_schema *s);
const struct kc_type *kc_schema_type_at(const struct kc_schema *s, size_t i);

/* Whether field f of t carries the `omitempty` option: a zero number or
 * false read from protobuf is dropped, as upstream's JSON would omit it. */
bool kc_field_omitempty(const struct kc_type *t, const struct kc_field *f);

/* Callbacks for kc_strategic_merge_patch; type pointers are const struct kc_type *. */
const struct kc_patch_schema *kc_schema_patch_ops(const struct kc_schema *s);

/* Unknown and duplicate-free field check for fieldValidation=Strict|Warn.
 * Walks obj against type t and appends one string per unknown field to
 * `unknown` (a JSON array), e.g. "unknown field \"spec.foo\"" — upstream's
 * wording: `strict decoding error: unknown field "spec.foo"`.
 * Also reports wrong JSON types (string where int belongs) into type_errs as
 * {"field": "spec.replicas", "message": "..."}; either array may be NULL. */
void kc_schema_check(const struct kc_schema *s, const struct kc_type *t, json_t *obj, json_t *unknown,
                     json_t *type_errs);

/* Removes from obj (an object of type t) every field the schema does not
 * describe, recursively through message fields, lists and maps of
 * messages; `raw` fields (free-form JSON) are left untouched, and so are
 * values of the wrong JSON type (kc_schema_check reports those). This is
 * what upstream does with unknown fields under fieldValidation=Ignore|Warn:
 * they are dropped, never stored. Nesting beyond 100 objects is left as is. */
void kc_schema_prune(const struct kc_schema *s, const struct kc_type *t, json_t *obj);

/* OpenAPI v3 document for one group-version ("" group = core): every kind of
 * that group-version with its paths (so kubectl sees the fieldValidation
 * parameter and x-kubernetes-group-version-kind) and components.schemas for
 * all reachable types. New reference. `kinds` describes which kinds are
 * served and how (see struct kc_openapi_kind). */
struct kc_openapi_kind {
    const char *group, *version, *kind, *plural;
    bool namespaced;
    const char *const *subresources; /* NULL-terminated, e.g. {"status","scale",NULL} */
};
json_t *kc_openapi_v3_doc(const struct kc_schema *s, const char *group, const char *version,
                          const struct kc_openapi_kind *kinds, size_t nkinds);
/* The gnostic openapi_v2.Document protobuf kubectl 1.27/1.28 require; static bytes. */
const unsigned char *kc_openapi_v2_pb(size_t *len);

/* Decodes a Kubernetes protobuf body: the 4-byte magic "k8s\0", then
 * runtime.Unknown {TypeMeta typeMeta=1 {apiVersion=1, kind=2}; bytes raw=2;
 * contentEncoding=3; contentType=4}, raw being the kind's message. Returns
 * the object as JSON with apiVersion and kind set. KC_EINVAL + err on
 * malformed input or an unknown kind. */
int kc_protobuf_decode(const struct kc_schema *s, const unsigned char *buf, size_t len, json_t **out,
                       struct kc_err *err);

#endif
