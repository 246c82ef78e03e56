/* meta_internal.h — helpers shared by the files of kc_meta, not a public API.
 *
 * Validation rules produce a short list of messages (upstream returns a
 * []string); each message is a fixed text with an optional fixed prefix
 * ("prefix part ", "name part "), so no allocation is needed to produce them.
 */
#ifndef KC_META_INTERNAL_H
#define KC_META_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

struct kc_vmsg {
    const char *prefix; /* "" or e.g. "name part " */
    const char *text;
};

#define KC_VMSGS_MAX 4

struct kc_vmsgs {
    int n;
    struct kc_vmsg v[KC_VMSGS_MAX];
};

/* The rules, as upstream's Is* functions: fill m with 0..4 messages. */
void kc_rule_dns1123_subdomain(const char *s, struct kc_vmsgs *m);
void kc_rule_dns1123_label(const char *s, struct kc_vmsgs *m);
void kc_rule_label_key(const char *s, struct kc_vmsgs *m);
void kc_rule_label_value(const char *s, struct kc_vmsgs *m);

/* Appends the messages joined by sep ("; " as upstream's strings.Join). */
int kc_vmsgs_join(const struct kc_vmsgs *m, const char *sep, struct kc_buf *b);

/* Appends s quoted the way Go's %q / strconv.Quote does (printable UTF-8
 * kept, controls and invalid bytes escaped), so messages read like upstream's. */
int kc_go_quote(struct kc_buf *b, const char *s, size_t len);

#endif
