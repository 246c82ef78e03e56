/* body.c — request bodies to JSON: JSON, YAML (libfyaml) and Kubernetes protobuf.
 *
 * libfyaml is used for YAML because it is a complete YAML 1.2 parser that
 * can emit a document straight as JSON, so YAML bodies reuse the JSON path
 * (and its limits) after conversion.
 */
#include "apiserver/internal.h"

#include <libfyaml.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "schema/schema.h"
#include "util/jsonparse.h"

static bool ctype_is(const char *ct, const char *want)
{
    size_t n = strlen(want);
    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    return strncasecmp(ct, want, n) == 0 && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ');
}

bool kc_ctype_is(const char *ct, const char *want);
bool kc_ctype_is(const char *ct, const char *want) { return ctype_is(ct, want); }

static int yaml_to_json(const char *body, size_t len, json_t **out, struct kc_err *err)
{
    struct fy_parse_cfg cfg = {.flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2};
    struct fy_document *fyd = fy_document_build_from_string(&cfg, body, len);
    if (!fyd)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "the request body is not valid YAML");
    char *js = fy_emit_document_to_string(fyd, FYECF_MODE_JSON_ONELINE | FYECF_NO_ENDING_NEWLINE);
    fy_document_destroy(fyd);
    if (!js)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "the YAML request body could not be converted to JSON");
    int rc = kc_json_parse_body(js, strlen(js), out, err);
    free(js);
    return rc;
}

/* Decodes req's body according to its Content-Type. allow_yaml also accepts
 * application/yaml (upstream accepts YAML bodies for create/update). */
bool kc_req_has_body(const struct kc_req *req)
{
    return req->body_json || (req->body && req->body_len);
}

int kc_req_json(struct kc_req *req, json_t **out, struct kc_err *err)
{
    if (req->body_json) {
        *out = kc_json_copy(req->body_json);
        return *out ? 0 : kc_err_set(err, KC_ENOMEM, 500, "InternalError", "out of memory");
    }
    return kc_json_parse_body(req->body ? req->body : "", req->body_len, out, err);
}

int kc_decode_body(struct kc_req *req, json_t **out, struct kc_err *err)
{
    const char *ct = req->content_type;
    if (req->body_json) /* in-process: already a tree, whatever the content type says */
        return kc_req_json(req, out, err);
    if (!req->body || req->body_len == 0)
        return kc_err_set(err, KC_EINVAL, 400, "BadRequest", "the request body is empty");
    if (!ct || !*ct || ctype_is(ct, "application/json") || ctype_is(ct, "*/*"))
        return kc_json_parse_body(req->body, req->body_len, out, err);
    if (ctype_is(ct, "application/yaml") || ctype_is(ct, "application/apply-patch+yaml"))
        return yaml_to_json(req->body, req->body_len, out, err);
    if (ctype_is(ct, "application/vnd.kubernetes.protobuf")) {
        int rc = kc_protobuf_decode(kc_schema_default(), (const unsigned char *)req->body, req->body_len, out, err);
        if (rc && err && !err->code)
            err->code = 400;
        return rc;
    }
    return kc_err_set(err, KC_EINVAL, 415, "UnsupportedMediaType",
                      "the body of the request was in an unknown format - accepted media types include: "
                      "application/json, application/yaml, application/vnd.kubernetes.protobuf");
}
