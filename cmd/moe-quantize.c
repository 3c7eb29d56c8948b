/* moe-quantize: ggml-exact block quantization of a checkpoint with per-class rules, size and error reports. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "ckpt.h"
#include "cli.h"
#include "convert.h"
#include "error.h"
#include "qrules.h"

struct opts {
	struct moe_convert_opts c;
	struct moe_qrules *rules;
	const char *out;
	const char *preset;
	const char *format;
	int dry_run, force, json;
	char **notes;             /* per output tensor, from the rules */
	size_t nnotes;
};

static const char usage_text[] =
	"usage: moe-quantize [-hn] [--allow-requantize] [--attn TYPE] [--embed TYPE]\n"
	"                    [--experts TYPE] [-f FORMAT] [--force] [-j N] [--json]\n"
	"                    [--output TYPE] [--preset NAME] [--router TYPE]\n"
	"                    [--rule REGEX=TYPE] [--shared TYPE] [--stats] [-t TYPE]\n"
	"                    [--version] -o FILE [input]\n";

/* The convert engine asks for every tensor's type; the rules answer. */
static enum moe_dtype choose(void *ctx, const struct moe_tensor *t, enum moe_dtype planned)
{
	struct opts *o = ctx;
	char note[256], **nn;
	struct moe_tensor src = *t;
	enum moe_dtype d;

	(void)planned;
	d = moe_qrules_choose(o->rules, &src, note, sizeof note);
	if ((nn = realloc(o->notes, (o->nnotes + 1) * sizeof *nn)) != NULL) {
		o->notes = nn;
		o->notes[o->nnotes++] = note[0] ? strdup(note) : NULL;
	}
	return d;
}

struct cls_sum {
	uint64_t n, params, bytes;
};

static void size_report(struct moe_conversion *c, const struct opts *o)
{
	struct cls_sum sum[MOE_COMP_COUNT] = { { 0, 0, 0 } }, all = { 0, 0, 0 };
	struct moe_tensor t;
	struct moe_tclass tc;
	json_t *j = o->json ? json_object() : NULL, *cls = json_object(), *fb = json_array();

	for (size_t i = 0; i < moe_convert_ntensors(c); i++) {
		moe_convert_tensor(c, i, &t);
		moe_tensor_classify(t.name, &tc);
		sum[tc.comp].n++;
		sum[tc.comp].params += moe_tensor_numel(&t);
		sum[tc.comp].bytes += t.nbytes;
		all.n++, all.params += moe_tensor_numel(&t), all.bytes += t.nbytes;
		if (i < o->nnotes && o->notes[i] && strstr(o->notes[i], "instead")) {
			if (j)
				json_array_append_new(fb, json_pack("{s:s, s:s}", "tensor", t.name,
					"note", o->notes[i]));
			else
				printf("# %s: %s\n", t.name, o->notes[i]);
		}
	}
	if (!j)
		printf("%-16s %8s %14s %14s %7s\n", "class", "tensors", "params", "bytes", "bpw");
	for (int k = 0; k < MOE_COMP_COUNT; k++) {
		double bpw = sum[k].params ? 8.0 * (double)sum[k].bytes / (double)sum[k].params : 0;
		if (sum[k].n == 0)
			continue;
		if (j)
			json_object_set_new(cls, moe_comp_name((enum moe_comp)k), json_pack(
				"{s:I, s:I, s:I, s:f}", "tensors", (json_int_t)sum[k].n, "params",
				(json_int_t)sum[k].params, "bytes", (json_int_t)sum[k].bytes, "bpw", bpw));
		else
			printf("%-16s %8" PRIu64 " %14" PRIu64 " %14" PRIu64 " %7.3f\n",
				moe_comp_name((enum moe_comp)k), sum[k].n, sum[k].params, sum[k].bytes, bpw);
	}
	if (j) {
		json_object_set_new(j, "classes", cls);
		json_object_set_new(j, "fallbacks", fb);
		json_object_set_new(j, "total", json_pack("{s:I, s:I, s:I, s:f}", "tensors",
			(json_int_t)all.n, "params", (json_int_t)all.params, "bytes",
			(json_int_t)all.bytes, "bpw", all.params ? 8.0 * (double)all.bytes /
			(double)all.params : 0.0));
		json_dumpf(j, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
		putchar('\n');
		json_decref(j);
	} else {
		printf("%-16s %8" PRIu64 " %14" PRIu64 " %14" PRIu64 " %7.3f\n", "total", all.n,
			all.params, all.bytes, all.params ? 8.0 * (double)all.bytes / (double)all.params : 0);
		json_decref(cls);
		json_decref(fb);
	}
}

static void stats_report(struct moe_conversion *c, const struct opts *o)
{
	json_t *a = o->json ? json_array() : NULL;

	if (!a)
		printf("%-40s %-7s %12s %12s %9s\n", "tensor", "type", "rmse", "max_abs", "snr_db");
	for (size_t i = 0; i < moe_convert_ntensors(c); i++) {
		struct moe_tensor t;
		struct moe_conv_stats st;
		double rmse, snr;
		moe_convert_tensor(c, i, &t);
		moe_convert_stats(c, i, &st);
		rmse = st.n ? sqrt(st.sse / (double)st.n) : 0;
		snr = st.sse > 0 ? 10 * log10(st.ssx / st.sse) : INFINITY;
		if (a)
			json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:f, s:f, s:o}", "tensor",
				t.name, "type", moe_dtype_name(t.dtype), "source_type",
				moe_dtype_name(moe_convert_source_dtype(c, i)), "rmse", rmse, "max_abs",
				st.max_abs, "snr_db", isfinite(snr) ? json_real(snr) : json_null()));
		else
			printf("%-40s %-7s %12.6g %12.6g %9.2f\n", t.name, moe_dtype_name(t.dtype),
				rmse, st.max_abs, snr);
	}
	if (a) {
		json_dumpf(a, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(a);
	}
}

/* Writes the output, or streams to /dev/null for --dry-run --stats. */
static int write_out(struct moe_conversion *c, const struct opts *o, const char *what)
{
	return moe_cli_write_conversion(c, o->dry_run ? "/dev/null" : o->out, o->force, what);
}

static unsigned block_count(struct moe_ckpt *ck)
{
	json_t *cfg = moe_ckpt_json(ck, "config");
	uint64_t n = 0;

	if (moe_meta_get_arch_u64(moe_ckpt_meta(ck), "block_count", &n) != 0 &&
	    json_is_integer(json_object_get(cfg, "num_hidden_layers"))) {
		n = (uint64_t)json_integer_value(json_object_get(cfg, "num_hidden_layers"));
	}
	return (unsigned)n;
}

static int run(struct opts *o, const char *input)
{
	struct moe_ckpt *ck = NULL;
	struct moe_conversion *c = NULL;
	struct moe_progress pr;
	const char *what = strcmp(input, "-") == 0 ? "<stdin>" : input;
	int rc = -1;

	if (moe_ckpt_new(&ck) != 0)
		goto out;
	if (moe_ckpt_open_seekable(ck, input) != 0) {
		moe_cli_error(what, "%s", moe_ckpt_errstr(ck));
		goto out;
	}
	if (o->preset && moe_qrules_preset(o->rules, o->preset, block_count(ck)) != 0) {
		moe_cli_error(NULL, "--preset: %s", moe_qrules_errstr(o->rules));
		goto out;
	}
	moe_progress_init(&pr, "quantizing", 0);
	o->c.progress = o->dry_run ? NULL : moe_progress_cb;
	o->c.progress_ctx = &pr;
	if (moe_convert_new(&c, ck, &o->c) != 0) {
		moe_cli_error(what, "%s", c ? moe_convert_errstr(c) : "out of memory");
		goto out;
	}
	if (!o->dry_run || o->c.stats) {
		if (write_out(c, o, what) != 0)
			goto out;
		moe_progress_finish(&pr);
	}
	if (o->dry_run)
		size_report(c, o);
	if (o->c.stats)
		stats_report(c, o);
	rc = 0;
out:
	moe_convert_free(c);
	moe_ckpt_free(ck);
	return rc;
}

/* "fp8" is E4M3 with 128 x 128 block scales (safetensors output only). */
static int type_arg(const char *opt, const char *s, enum moe_dtype *t)
{
	*t = strcasecmp(s, "fp8") == 0 ? MOE_DT_F8_E4M3 : moe_dtype_from_name(s);
	if (*t == MOE_DT_INVALID || (!moe_dtype_is_float(*t) && !moe_dtype_is_quantized(*t)) ||
	    *t == MOE_DT_F64 || *t == MOE_DT_F8_E5M2 ||
	    *t == MOE_DT_Q8_1 || *t == MOE_DT_Q8_K) {
		moe_cli_error(NULL, "%s: '%s' is not a type to quantize to (q8_0, q4_0, q4_1, "
			"q5_0, q5_1, q2_k .. q6_k, iq4_nl, iq4_xs, tq1_0, tq2_0, mxfp4, fp8, f16, bf16, f32)",
			opt, s);
		return -1;
	}
	return 0;
}

enum { OPT_REQ = 256, OPT_ATTN, OPT_EMBED, OPT_EXPERTS, OPT_FORCE, OPT_JSON, OPT_OUTPUT,
	OPT_PRESET, OPT_ROUTER, OPT_RULE, OPT_SHARED, OPT_STATS, OPT_VERSION };

static int class_opt(struct opts *o, int c, const char *arg)
{
	static const struct { int opt; enum moe_comp comp; const char *name; } m[] = {
		{ OPT_ATTN, MOE_COMP_ATTN, "--attn" }, { OPT_EMBED, MOE_COMP_EMBED, "--embed" },
		{ OPT_EXPERTS, MOE_COMP_EXPERTS, "--experts" }, { OPT_OUTPUT, MOE_COMP_HEAD, "--output" },
		{ OPT_ROUTER, MOE_COMP_ROUTER, "--router" }, { OPT_SHARED, MOE_COMP_SHARED, "--shared" },
	};
	enum moe_dtype t;

	for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
		if (m[i].opt == c) {
			if (type_arg(m[i].name, arg, &t) != 0)
				return -1;
			moe_qrules_set_class(o->rules, m[i].comp, t);
			if (m[i].comp == MOE_COMP_SHARED)   /* dense FFNs are always-on too */
				moe_qrules_set_class(o->rules, MOE_COMP_DENSE, t);
		}
	return 0;
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "allow-requantize", no_argument, NULL, OPT_REQ },
		{ "attn", required_argument, NULL, OPT_ATTN },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "embed", required_argument, NULL, OPT_EMBED },
		{ "experts", required_argument, NULL, OPT_EXPERTS },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "format", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "output", required_argument, NULL, OPT_OUTPUT },
		{ "preset", required_argument, NULL, OPT_PRESET },
		{ "router", required_argument, NULL, OPT_ROUTER },
		{ "rule", required_argument, NULL, OPT_RULE },
		{ "shared", required_argument, NULL, OPT_SHARED },
		{ "stats", no_argument, NULL, OPT_STATS },
		{ "threads", required_argument, NULL, 'j' },
		{ "type", required_argument, NULL, 't' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 }
	};
	enum moe_dtype t;
	uint64_t n;
	int c;

	while ((c = getopt_long(argc, argv, "f:hj:no:t:", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_REQ: o->c.allow_requantize = 1; break;
		case 'n': o->dry_run = 1; break;
		case OPT_FORCE: o->force = 1; break;
		case 'f': o->format = optarg; break;
		case 'h': fputs(usage_text, stdout); return -1;
		case 'j':
			if (moe_cli_parse_u64("-j", optarg, 1, 1024, &n))
				return MOE_EXIT_USAGE;
			o->c.threads = (int)n;
			break;
		case OPT_JSON: o->json = 1; break;
		case 'o': o->out = optarg; break;
		case OPT_PRESET: o->preset = optarg; break;
		case OPT_RULE:
			if (moe_qrules_add_rule(o->rules, optarg) != 0) {
				moe_cli_error(NULL, "%s", moe_qrules_errstr(o->rules));
				return MOE_EXIT_USAGE;
			}
			break;
		case OPT_STATS: o->c.stats = 1; break;
		case 't':
			if (type_arg("-t", optarg, &t) != 0)
				return MOE_EXIT_USAGE;
			moe_qrules_set_default(o->rules, t);
			break;
		case OPT_VERSION: moe_cli_version(); return -1;
		case '?': fputs(usage_text, stderr); return MOE_EXIT_USAGE;
		default:
			if (class_opt(o, c, optarg) != 0)
				return MOE_EXIT_USAGE;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = { .c = { .format = MOE_CONV_GGUF, .dtype = MOE_DT_INVALID } };
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	int rc;

	moe_cli_init(argv[0]);
	argv[0] = (char *)moe_cli_progname();
	o.c.threads = cores > 0 ? (int)cores : 1;
	o.c.choose = choose;
	o.c.choose_ctx = &o;
	if (moe_qrules_new(&o.rules, MOE_DT_Q8_0) != 0)
		return MOE_EXIT_FAIL;
	rc = parse(argc, argv, &o);
	if (rc == 0) {
		argc -= optind;
		argv += optind;
		if ((o.out == NULL && !o.dry_run) || argc > 1) {
			moe_cli_error(NULL, o.out == NULL ? "no output: give -o FILE or -o -"
				: "one input at a time");
			rc = MOE_EXIT_USAGE;
		} else if (o.format && strcmp(o.format, "gguf") && strcmp(o.format, "safetensors")) {
			moe_cli_error(NULL, "-f: '%s' is not gguf or safetensors", o.format);
			rc = MOE_EXIT_USAGE;
		} else if (argc == 0 && isatty(STDIN_FILENO)) {
			fputs(usage_text, stderr);
			rc = MOE_EXIT_USAGE;
		}
	}
	if (rc == 0) {
		if (o.format && strcmp(o.format, "safetensors") == 0)
			o.c.format = MOE_CONV_SAFETENSORS;
		rc = run(&o, argc ? argv[0] : "-") ? MOE_EXIT_FAIL : MOE_EXIT_OK;
		rc = moe_cli_close_stdout(rc);
	} else {
		rc = rc < 0 ? moe_cli_close_stdout(MOE_EXIT_OK) : rc;
	}
	for (size_t i = 0; i < o.nnotes; i++)
		free(o.notes[i]);
	free(o.notes);
	moe_qrules_free(o.rules);
	return rc;
}
