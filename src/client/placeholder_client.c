int kc_client_placeholder(void); int kc_client_placeholder(void){return 0;}
