/* runc_imgreq.h — `kubec images pull|prune --node N` on the agent side: requests found in the Node's
 * images.kubec.io/request annotation are carried out and answered in images.kubec.io/result
 * (runc_imgreq.c). Internal to src/agent. */
#ifndef KC_AGENT_RUNC_IMGREQ_H
#define KC_AGENT_RUNC_IMGREQ_H

#include "agent/image.h"
#include "client/client.h"

#define KC_IMGREQ_ANN_REQUEST "images.kubec.io/request"
#define KC_IMGREQ_ANN_RESULT "images.kubec.io/result"

struct kc_imgreq;

/* Starts the poller of Node `node` (the store must outlive kc_imgreq_stop). */
int kc_imgreq_start(struct kc_client *c, const char *node, struct kc_image_store *images, struct kc_imgreq **out,
                    struct kc_err *err);
void kc_imgreq_stop(struct kc_imgreq *q);

#endif
