/* image_tool.c — a stand-alone `kubec images ... --local DIR` for the e2e tests (argv[0] stands in for
 * "images"). */
#include "agent/image.h"

int main(int argc, char **argv)
{
    return kc_image_cli_main(argc, argv);
}
