/* table.c — server-side Tables (meta.k8s.io/v1 Table), which kubectl needs
 * for `get` output: column definitions from the resource row, one row per
 * object with rows[].object a PartialObjectMetadata (kubectl reads the
 * NAMESPACE column, --show-labels and -L from it). */
#include "apiserver/internal.h"

#include <string.h>

bool kc_accept_table(const char *accept)
{
    return accept && strstr(accept, "as=Table") && strstr(accept, "g=meta.k8s.io");
}

json_t *kc_table_new(const struct kc_resource *res, bool with_defs)
{
    json_t *t = json_pack("{s:s,s:s,s:{}}", "kind", "Table", "apiVersion", "meta.k8s.io/v1", "metadata");
    json_t *defs = json_array();
    for (const struct kc_column *c = res->columns; with_defs && c && c->name; c++)
        json_array_append_new(defs, json_pack("{s:s,s:s,s:s,s:s,s:i}", "name", c->name, "type", c->type, "format",
                                              c->format, "description", c->description, "priority", c->priority));
    json_object_set_new(t, "columnDefinitions", defs);
    json_object_set_new(t, "rows", json_array());
    return t;
}

void kc_table_add_row(json_t *table, const struct kc_resource *res, json_t *obj, time_t now)
{
    json_t *cells = json_array();
    res->row(obj, cells, now);
    json_t *meta = json_object_get(obj, "metadata");
    json_t *pom = json_pack("{s:s,s:s,s:O}", "kind", "PartialObjectMetadata", "apiVersion", "meta.k8s.io/v1",
                            "metadata", meta ? meta : json_object());
    json_array_append_new(json_object_get(table, "rows"), json_pack("{s:o,s:o}", "cells", cells, "object", pom));
}
