/* schema_int.h — what schema.c, openapi.c and protobuf.c share privately.
 *
 * A parsed schema owns one copy of the description text; every string in
 * the public structs (names, options, descriptions) points into that copy.
 * Each public struct kc_type is the first member of a struct kc_type_impl
 * that adds the per-type field indexes, so a const struct kc_type * handed
 * out by the schema can be turned back into its implementation.
 */
#ifndef KC_SCHEMA_SCHEMA_INT_H
#define KC_SCHEMA_SCHEMA_INT_H

#include "schema/schema.h"

struct kc_type_impl {
    struct kc_type pub;      /* must stay first */
    unsigned line;           /* where the type was declared (for errors) */
    uint16_t *by_name;       /* field indexes sorted by JSON name */
    uint16_t *by_num;        /* field indexes (number > 0) sorted by (inline_num, number) */
    size_t nnum;
    int *inlines;            /* distinct inline_num values > 0, sorted */
    size_t ninlines;
    bool *omitempty;         /* per field: the `omitempty` option (protobuf zero values dropped) */
    const char **ref;        /* while parsing: the unresolved type name of each message field */
    unsigned *fline;         /* while parsing: the line of each field */
    size_t fcap;
};

struct kc_schema {
    char *text;                       /* owned copy of the description */
    struct kc_type_impl **types;      /* in declaration order */
    size_t ntypes, cap;
    struct kc_type_impl **sorted;     /* by name */
    struct kc_type_impl **kinds;      /* types with a gvk, sorted by (group, version, kind) */
    size_t nkinds;
    struct kc_patch_schema ops;
};

/* The Go-style type name of a definition: "io.k8s.api.apps.v1.DeploymentSpec" → "DeploymentSpec". */
const char *kc_schema_short_name(const char *defname);

#endif
