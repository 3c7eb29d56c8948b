/* moe-quantize: quantize checkpoint tensors to ggml block formats (not implemented yet: says so and exits 1). */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"

static const char usage_text[] = "usage: moe-quantize [-h] [--version]\n";

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	moe_cli_init(argv[0]);
	argv[0] = (char *)moe_cli_progname();
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h': fputs(usage_text, stdout); return moe_cli_close_stdout(MOE_EXIT_OK);
		case 'V': moe_cli_version(); return moe_cli_close_stdout(MOE_EXIT_OK);
		default: fputs(usage_text, stderr); return MOE_EXIT_USAGE;
		}
	}
	moe_cli_error(NULL, "not implemented yet");
	return MOE_EXIT_FAIL;
}
