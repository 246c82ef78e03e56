/* apiserver.h — `kubec server`: the API server with its embedded store. */
#ifndef KC_APISERVER_APISERVER_H
#define KC_APISERVER_APISERVER_H

int kc_server_main(int argc, char **argv);

#endif
