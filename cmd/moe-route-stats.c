/* moe-route-stats: not implemented yet; exits 1 without pretending to work. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int main(int argc, char **argv)
{
	moe_cli_init(argv[0]);
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		moe_cli_version();
		return moe_cli_close_stdout(MOE_EXIT_OK);
	}
	moe_cli_error(NULL, "not implemented yet");
	return MOE_EXIT_FAIL;
}
