int kc_controller_placeholder(void); int kc_controller_placeholder(void){return 0;}
