/* moe-convert: safetensors / GGUF / PyTorch conversion with expert stacking, casts, shards, subsets, --init. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "cli.h"
#include "convert.h"
#include "error.h"

struct opts {
	struct moe_convert_opts c;
	const char *output;
	const char *format;
	const char *init;
	const char *experts_file;
	uint64_t max_shard;
	uint64_t seed;
	int dry_run;
	int force;
};

static const char usage_text[] =
	"usage: moe-convert [-hn] [--drop-tensors REGEX] [--dtype TYPE] [--experts LIST]\n"
	"                   [--experts-file FILE] [-f FORMAT] [--force] [--init CONFIG]\n"
	"                   [--layers LIST] [--max-shard-size SIZE] [--seed N] [--version]\n"
	"                   -o OUTPUT [input]\n";

static int output_is_dir(const struct opts *o)
{
	struct stat st;
	size_t n = strlen(o->output);

	return o->max_shard > 0 || (n > 1 && o->output[n - 1] == '/') ||
		(stat(o->output, &st) == 0 && S_ISDIR(st.st_mode));
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Output format: --format, else the output name; never the input's. */
static int pick_format(struct opts *o)
{
	const char *f = o->format;

	if (f == NULL && output_is_dir(o))
		f = "safetensors";
	else if (f == NULL && ends_with(o->output, ".gguf"))
		f = "gguf";
	else if (f == NULL && ends_with(o->output, ".safetensors"))
		f = "safetensors";
	if (f == NULL) {
		moe_cli_error(NULL, "cannot tell the output format from '%s': use --format "
			"gguf or --format safetensors", o->output);
		return -1;
	}
	if (strcmp(f, "gguf") == 0 && !output_is_dir(o))
		o->c.format = MOE_CONV_GGUF;
	else if (strcmp(f, "safetensors") == 0)
		o->c.format = MOE_CONV_SAFETENSORS;
	else {
		moe_cli_error(NULL, "--format: '%s' is not gguf or safetensors%s", f,
			output_is_dir(o) ? " (a directory output holds safetensors)" : "");
		return -1;
	}
	return 0;
}

/* Whole small text file (expert lists, config.json). */
static char *slurp(const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (f == NULL) {
		moe_cli_error(path, "%s", strerror(errno));
		return NULL;
	}
	for (;;) {
		if (len + 4096 + 1 > cap) {
			char *nb = cap > (64u << 20) ? NULL : realloc(buf, cap = cap * 2 + 8192);
			if (nb == NULL) {
				moe_cli_error(path, "file too large");
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
		}
		size_t r = fread(buf + len, 1, 4096, f);
		len += r;
		if (r == 0)
			break;
	}
	if (buf)
		buf[len] = '\0';
	if (f != stdin)
		fclose(f);
	return buf;
}

static void dry_run(struct moe_conversion *c)
{
	struct moe_tensor t;

	for (size_t i = 0; i < moe_convert_ntensors(c); i++) {
		moe_convert_tensor(c, i, &t);
		printf("%s\t%s\t[", t.name, moe_dtype_name(t.dtype));
		for (int d = 0; d < t.ndim; d++)
			printf("%s%" PRIu64, d ? ", " : "", t.shape[d]);
		printf("]\t%" PRIu64 "\n", t.nbytes);
	}
	printf("# %zu tensors, %" PRIu64 " bytes\n", moe_convert_ntensors(c), moe_convert_bytes(c));
}

static int write_out(struct moe_conversion *c, const struct opts *o, const char *what)
{
	if (!output_is_dir(o))
		return moe_cli_write_conversion(c, o->output, o->force, what);
	if (moe_convert_write_dir(c, o->output, o->max_shard, o->force ? MOE_OUT_FORCE : 0) != 0) {
		moe_cli_error(what, "%s", moe_convert_errstr(c));
		return -1;
	}
	return 0;
}

static int plan(struct opts *o, const char *input, struct moe_ckpt **ck,
	struct moe_conversion **c, const char **what)
{
	json_t *config = NULL;
	char *text;
	json_error_t je;
	int rc;

	*ck = NULL;
	if (o->init) {
		*what = o->init;
		if ((text = slurp(o->init)) == NULL)
			return -1;
		config = json_loads(text, JSON_REJECT_DUPLICATES, &je);
		free(text);
		if (!json_is_object(config)) {
			moe_cli_error(o->init, "invalid JSON at line %d: %s", je.line, je.text);
			json_decref(config);
			return -1;
		}
		rc = moe_convert_new_init(c, config, o->seed, &o->c);
		json_decref(config);
	} else {
		*what = strcmp(input, "-") == 0 ? "<stdin>" : input;
		if (moe_ckpt_new(ck) != 0)
			return -1;
		/* stacking experts reads out of order: a pipe goes to a temp file */
		if (moe_ckpt_open_seekable(*ck, input) != 0) {
			moe_cli_error(*what, "%s", moe_ckpt_errstr(*ck));
			return -1;
		}
		rc = moe_convert_new(c, *ck, &o->c);
	}
	if (rc != 0) {
		moe_cli_error(*what, "%s", *c ? moe_convert_errstr(*c) : "out of memory");
		return -1;
	}
	return 0;
}

static int run(struct opts *o, const char *input)
{
	struct moe_ckpt *ck = NULL;
	struct moe_conversion *c = NULL;
	struct moe_progress pr;
	const char *what = input;
	char *experts = NULL;
	int rc = -1;

	if (o->experts_file) {
		if ((experts = slurp(o->experts_file)) == NULL)
			return -1;
		o->c.experts = experts;
	}
	moe_progress_init(&pr, "converting", 0);
	o->c.progress = moe_progress_cb;
	o->c.progress_ctx = &pr;
	if (plan(o, input, &ck, &c, &what) == 0) {
		if (moe_convert_warning(c)[0])
			moe_cli_error(what, "warning: %s", moe_convert_warning(c));
		if (o->dry_run) {
			dry_run(c);
			rc = 0;
		} else {
			rc = write_out(c, o, what);
			moe_progress_finish(&pr);
		}
	}
	moe_convert_free(c);
	moe_ckpt_free(ck);
	free(experts);
	return rc;
}

static int parse_dtype(struct opts *o, const char *s)
{
	enum moe_dtype t = moe_dtype_from_name(s);

	if (t != MOE_DT_F32 && t != MOE_DT_F16 && t != MOE_DT_BF16) {
		moe_cli_error(NULL, "--dtype: '%s' is not f32, f16 or bf16", s);
		return -1;
	}
	o->c.dtype = t;
	return 0;
}

enum { OPT_DROP = 256, OPT_DTYPE, OPT_EXPERTS, OPT_EXPERTS_FILE, OPT_FORCE,
	OPT_INIT, OPT_LAYERS, OPT_MAXSHARD, OPT_SEED, OPT_VERSION };

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "drop-tensors", required_argument, NULL, OPT_DROP },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "dtype", required_argument, NULL, OPT_DTYPE },
		{ "experts", required_argument, NULL, OPT_EXPERTS },
		{ "experts-file", required_argument, NULL, OPT_EXPERTS_FILE },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "format", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "init", required_argument, NULL, OPT_INIT },
		{ "layers", required_argument, NULL, OPT_LAYERS },
		{ "max-shard-size", required_argument, NULL, OPT_MAXSHARD },
		{ "output", required_argument, NULL, 'o' },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	while ((c = getopt_long(argc, argv, "f:hno:", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_DROP: o->c.drop = optarg; break;
		case 'n': o->dry_run = 1; break;
		case OPT_DTYPE: if (parse_dtype(o, optarg)) return MOE_EXIT_USAGE; break;
		case OPT_EXPERTS: o->c.experts = optarg; break;
		case OPT_EXPERTS_FILE: o->experts_file = optarg; break;
		case OPT_FORCE: o->force = 1; break;
		case 'f': o->format = optarg; break;
		case 'h': fputs(usage_text, stdout); return -1;
		case OPT_INIT: o->init = optarg; break;
		case OPT_LAYERS: o->c.layers = optarg; break;
		case OPT_MAXSHARD:
			if (moe_cli_parse_size("--max-shard-size", optarg, &o->max_shard))
				return MOE_EXIT_USAGE;
			break;
		case 'o': o->output = optarg; break;
		case OPT_SEED:
			if (moe_cli_parse_u64("--seed", optarg, 0, UINT64_MAX, &o->seed))
				return MOE_EXIT_USAGE;
			break;
		case OPT_VERSION: moe_cli_version(); return -1;
		default: fputs(usage_text, stderr); return MOE_EXIT_USAGE;
		}
	}
	return 0;
}

/* Operands and option combinations; prints the problem. */
static int usage_problem(const struct opts *o, int nargs)
{
	const char *why = NULL;

	if (o->output == NULL && !o->dry_run)
		why = "no output: give -o FILE, -o DIR/ or -o -";
	else if (nargs > 1 || (o->init && nargs > 0))
		why = "one input at a time (none with --init)";
	else if (o->experts_file && o->c.experts)
		why = "--experts and --experts-file exclude each other";
	if (why) {
		moe_cli_error(NULL, "%s", why);
		return -1;
	}
	if (!o->init && nargs == 0 && isatty(STDIN_FILENO)) {
		fputs(usage_text, stderr);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = { .c = { .dtype = MOE_DT_INVALID } };
	int rc;

	moe_cli_init(argv[0]);
	argv[0] = (char *)moe_cli_progname();
	if ((rc = parse(argc, argv, &o)) != 0)
		return rc < 0 ? moe_cli_close_stdout(MOE_EXIT_OK) : rc;
	argc -= optind;
	argv += optind;
	if (usage_problem(&o, argc) != 0)
		return MOE_EXIT_USAGE;
	if (o.output == NULL)
		o.output = "-";   /* --dry-run writes nothing */
	if (pick_format(&o) != 0)
		return MOE_EXIT_USAGE;
	rc = run(&o, argc ? argv[0] : "-");
	return moe_cli_close_stdout(rc ? MOE_EXIT_FAIL : MOE_EXIT_OK);
}
