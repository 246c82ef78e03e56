/* server_child.h — runs `kubec server` as a child process for client tests
 * (binary from the KUBEC_BIN compile definition, a free port, a mkdtemp
 * data dir; its log goes to DIR/server.log). */
#ifndef KC_TEST_SERVER_CHILD_H
#define KC_TEST_SERVER_CHILD_H

#include <stdbool.h>
#include <sys/types.h>

#include "client/client.h"

struct child_server {
    char dir[64];
    int port;
    pid_t pid;
    char kubeconfig[128];
};

int free_port(void);
/* Creates the data dir (if dir is empty) and starts the server on port (0 = a free one); waits until it answers. */
bool child_start(struct child_server *s, int port);
/* SIGTERM and wait. */
void child_stop(struct child_server *s);
/* Stops and removes the data dir. */
void child_destroy(struct child_server *s);
/* A client from the server's kubeconfig. */
struct kc_client *child_client(struct child_server *s);
/* Contents of DIR/name (malloc'd, NUL-terminated) or NULL. */
char *child_file(struct child_server *s, const char *name);

#endif
