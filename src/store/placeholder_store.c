// placeholder
int kc_store_placeholder(void); int kc_store_placeholder(void){return 0;}
