// placeholder
int kc_patch_placeholder(void); int kc_patch_placeholder(void){return 0;}
