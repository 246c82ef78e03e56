// placeholder
int kc_meta_placeholder(void); int kc_meta_placeholder(void){return 0;}
