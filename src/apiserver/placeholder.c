/* placeholder.c — removed once the API server lands. */
int kc_apiserver_placeholder(void);
int kc_apiserver_placeholder(void) { return 0; }
