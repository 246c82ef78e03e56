int kc_pki_placeholder(void); int kc_pki_placeholder(void){return 0;}
