int kc_agent_placeholder(void); int kc_agent_placeholder(void){return 0;}
