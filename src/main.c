#include <stdio.h>
int main(void) { puts("kubec"); return 0; }
