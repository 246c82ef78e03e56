// placeholder
int kc_schema_placeholder(void); int kc_schema_placeholder(void){return 0;}
