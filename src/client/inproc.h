/* inproc.h — the in-process transport: requests go straight to the API
 * server's dispatcher inside `kubec server` (implemented in src/apiserver/inproc.c,
 * so only code linked with kc_apiserver can call it). */
#ifndef KC_CLIENT_INPROC_H
#define KC_CLIENT_INPROC_H

struct kc_server;
struct kc_client;

struct kc_client *kc_client_inproc_new(struct kc_server *srv, double qps, int burst, const char *user_agent);

#endif
