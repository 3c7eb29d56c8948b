/* moe-route-stats: routing statistics of MoE traces, trace conversion, mergeable partial state. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "input.h"
#include "output.h"
#include "route_report.h"
#include "route_stats.h"
#include "trace.h"

#define MAX_SIZES 65535

struct opts {
	struct moe_route_opts st;
	uint32_t sizes[MAX_SIZES];
	uint32_t n_sizes;
	int json, csv, partial, merge, force;
	enum moe_trace_format to;
	const char *svg, *out;
};

static const char usage_text[] =
	"usage: moe-route-stats [-fh] [-o file] [--cache-segment n] [--cache-sizes list]\n"
	"                       [--capacity-factors list] [--csv] [--group-size n] [--json]\n"
	"                       [--merge] [--no-cache] [--partial] [--svg file] [--to format]\n"
	"                       [--top-m m] [--top-tokens n] [--version] [--window n]\n"
	"                       [trace ...]\n";

static void usage(FILE *f)
{
	fputs(usage_text, f);
}

/* Comma- or space-separated list parsed with the strict number parsers. */
static int parse_list(const char *opt, const char *s, int real, double *d,
	uint32_t *u, uint32_t max_n, uint32_t *n)
{
	char *copy = strdup(s), *tok, *save = NULL;
	int rc = 0;

	*n = 0;
	if (copy == NULL)
		return -1;
	for (tok = strtok_r(copy, ", ", &save); tok && rc == 0; tok = strtok_r(NULL, ", ", &save)) {
		uint64_t v;
		if (*n == max_n) {
			moe_cli_error(NULL, "%s: more than %u values", opt, max_n);
			rc = -1;
		} else if (real) {
			rc = moe_cli_parse_double(opt, tok, 0.01, 1000, &d[*n]);
		} else if ((rc = moe_cli_parse_u64(opt, tok, 1, MOE_TRACE_MAX_EXPERTS, &v)) == 0) {
			u[*n] = (uint32_t)v;
		}
		if (rc == 0)
			++*n;
	}
	if (rc == 0 && *n == 0) {
		moe_cli_error(NULL, "%s: empty list", opt);
		rc = -1;
	}
	free(copy);
	return rc;
}

enum { O_CACHE_SEGMENT = 256, O_CACHE_SIZES, O_CF, O_CSV, O_GROUP, O_JSON, O_MERGE,
	O_NO_CACHE, O_PARTIAL, O_SVG, O_TO, O_TOP_M, O_TOP_TOKENS, O_VERSION, O_WINDOW };

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "cache-segment", required_argument, NULL, O_CACHE_SEGMENT },
		{ "cache-sizes", required_argument, NULL, O_CACHE_SIZES },
		{ "capacity-factors", required_argument, NULL, O_CF },
		{ "csv", no_argument, NULL, O_CSV },
		{ "force", no_argument, NULL, 'f' },
		{ "group-size", required_argument, NULL, O_GROUP },
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, O_JSON },
		{ "merge", no_argument, NULL, O_MERGE },
		{ "no-cache", no_argument, NULL, O_NO_CACHE },
		{ "output", required_argument, NULL, 'o' },
		{ "partial", no_argument, NULL, O_PARTIAL },
		{ "svg", required_argument, NULL, O_SVG },
		{ "to", required_argument, NULL, O_TO },
		{ "top-m", required_argument, NULL, O_TOP_M },
		{ "top-tokens", required_argument, NULL, O_TOP_TOKENS },
		{ "version", no_argument, NULL, O_VERSION },
		{ "window", required_argument, NULL, O_WINDOW },
		{ NULL, 0, NULL, 0 }
	};
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "fho:", lo, NULL)) != -1) {
		switch (c) {
		case O_CACHE_SEGMENT:
			if (moe_cli_parse_u64("--cache-segment", optarg, 1, 1u << 24, &v))
				return MOE_EXIT_USAGE;
			o->st.cache_segment = (uint32_t)v;
			break;
		case O_CACHE_SIZES:
			if (parse_list("--cache-sizes", optarg, 0, NULL, o->sizes, MAX_SIZES, &o->n_sizes))
				return MOE_EXIT_USAGE;
			break;
		case O_CF:
			if (parse_list("--capacity-factors", optarg, 1, o->st.cf, NULL, MOE_ROUTE_MAX_CF, &o->st.n_cf))
				return MOE_EXIT_USAGE;
			break;
		case O_CSV: o->csv = 1; break;
		case 'f': o->force = 1; break;
		case O_GROUP:
			if (moe_cli_parse_u64("--group-size", optarg, 1, UINT32_MAX, &v))
				return MOE_EXIT_USAGE;
			o->st.group_size = (uint32_t)v;
			break;
		case 'h':
			usage(stdout);
			exit(moe_cli_close_stdout(MOE_EXIT_OK));
		case O_JSON: o->json = 1; break;
		case O_MERGE: o->merge = 1; break;
		case O_NO_CACHE: o->st.no_cache = 1; break;
		case 'o': o->out = optarg; break;
		case O_PARTIAL: o->partial = 1; break;
		case O_SVG: o->svg = optarg; break;
		case O_TO:
			if (strcmp(optarg, "jsonl") == 0)
				o->to = MOE_TRACE_JSONL;
			else if (strcmp(optarg, "bin") == 0)
				o->to = MOE_TRACE_BIN;
			else {
				moe_cli_error(NULL, "--to: '%s' is not jsonl or bin", optarg);
				return MOE_EXIT_USAGE;
			}
			break;
		case O_TOP_M:
			if (moe_cli_parse_u64("--top-m", optarg, 1, MOE_TRACE_MAX_EXPERTS, &v))
				return MOE_EXIT_USAGE;
			o->st.top_m = (uint32_t)v;
			break;
		case O_TOP_TOKENS:
			if (moe_cli_parse_u64("--top-tokens", optarg, 1, 1000000, &v))
				return MOE_EXIT_USAGE;
			o->st.top_tokens = (uint32_t)v;
			break;
		case O_VERSION:
			moe_cli_version();
			exit(moe_cli_close_stdout(MOE_EXIT_OK));
		case O_WINDOW:
			if (moe_cli_parse_u64("--window", optarg, 1, UINT64_MAX, &o->st.window))
				return MOE_EXIT_USAGE;
			break;
		default:
			usage(stderr);
			return MOE_EXIT_USAGE;
		}
	}
	if (o->json + o->csv + (o->partial || o->to) > 1 ||
	    (o->to && (o->merge || o->svg || argc - optind > 1)) ||
	    (o->st.window && (o->partial || o->merge)) ||
	    (o->out && !o->partial && !o->to) ||
	    (o->merge && optind == argc)) {
		moe_cli_error(NULL, "conflicting options (see --help)");
		usage(stderr);
		return MOE_EXIT_USAGE;
	}
	return MOE_EXIT_OK;
}

static int open_out(const struct opts *o, const char *path, struct moe_output **out)
{
	int rc = moe_output_open(out, path, o->force ? MOE_OUT_FORCE : 0);

	if (rc != 0)
		moe_cli_error(path, "%s", *out ? moe_output_errstr(*out) : "out of memory");
	return rc;
}

/* Reports an output failure (silent on a closed pipe); returns 1. */
static int out_error(struct moe_output *out)
{
	if (strcmp(moe_output_errstr(out), "broken pipe") != 0)
		moe_cli_error(moe_output_name(out), "%s", moe_output_errstr(out));
	return MOE_EXIT_FAIL;
}

static int finish_out(struct moe_output *out, int rc)
{
	if (rc == 0)
		rc = moe_output_commit(out);
	rc = rc ? out_error(out) : MOE_EXIT_OK;
	moe_output_free(out);
	return rc;
}

static int open_trace(const char *path, struct moe_input **in, struct moe_trace_reader **r)
{
	char err[256];

	*r = NULL;
	if (moe_input_open(in, path, err, sizeof err) != 0) {
		moe_cli_error(path, "%s", err);
		return -1;
	}
	if (moe_trace_reader_new(r, *in) != 0) {
		moe_cli_error(moe_input_name(*in), "%s", *r ? moe_trace_reader_errstr(*r) : "out of memory");
		return -1;
	}
	return 0;
}

static int convert(const struct opts *o, const char *path)
{
	const char *dest = o->out ? o->out : "-";
	struct moe_input *in = NULL;
	struct moe_trace_reader *r;
	struct moe_trace_writer *w = NULL;
	struct moe_output *out = NULL;
	const struct moe_trace_token *t;
	int rc = -1, st = MOE_EXIT_FAIL;

	if (o->to == MOE_TRACE_BIN && moe_cli_refuse_tty(dest))
		return MOE_EXIT_FAIL;
	if (open_trace(path, &in, &r) != 0 || open_out(o, dest, &out) != 0)
		goto done;
	if (moe_trace_writer_new(&w, out, o->to, moe_trace_reader_header(r)) != 0) {
		moe_cli_error(dest, "%s", w ? moe_trace_writer_errstr(w) : "out of memory");
		goto done;
	}
	while ((rc = moe_trace_read(r, &t)) > 0)
		if (moe_trace_write(w, t) != 0)
			break;
	if (rc < 0)
		moe_cli_error(moe_input_name(in), "%s", moe_trace_reader_errstr(r));
	else if (rc > 0 && strcmp(moe_trace_writer_errstr(w), "broken pipe") != 0)
		moe_cli_error(dest, "%s", moe_trace_writer_errstr(w));
	else if (rc == 0)
		st = finish_out(out, 0), out = NULL;
done:
	moe_trace_writer_free(w);
	moe_output_free(out);
	moe_trace_reader_free(r);
	moe_input_free(in);
	return st;
}

static int same_shape(const struct moe_trace_header *a, const struct moe_trace_header *b)
{
	return a->n_layers == b->n_layers && a->n_moe == b->n_moe && a->n_experts == b->n_experts &&
		a->top_k == b->top_k &&
		(a->flags & (MOE_TRACE_PROBS | MOE_TRACE_LSE)) == (b->flags & (MOE_TRACE_PROBS | MOE_TRACE_LSE)) &&
		memcmp(a->moe_layers, b->moe_layers, a->n_moe * sizeof *a->moe_layers) == 0;
}

/* Adds one trace to *s (created from the first header). 0 or -1. */
static int add_trace(const struct opts *o, const char *path, struct moe_route_stats **s)
{
	struct moe_input *in = NULL;
	struct moe_trace_reader *r;
	const struct moe_trace_token *t;
	int rc = -1;

	if (open_trace(path, &in, &r) != 0)
		goto done;
	if (*s == NULL && moe_route_stats_new(s, moe_trace_reader_header(r), &o->st) != 0) {
		moe_cli_error(path, "%s", *s ? moe_route_stats_errstr(*s) : "out of memory");
		goto done;
	}
	if (!same_shape(moe_route_stats_header(*s), moe_trace_reader_header(r))) {
		moe_cli_error(moe_input_name(in), "trace shape differs from the first input (layers, experts, top-k or recorded fields)");
		goto done;
	}
	while ((rc = moe_trace_read(r, &t)) > 0)
		if (moe_route_stats_add(*s, t) != 0) {
			moe_cli_error(moe_input_name(in), "%s", moe_route_stats_errstr(*s));
			rc = -1;
			goto done;
		}
	if (rc < 0)
		moe_cli_error(moe_input_name(in), "%s", moe_trace_reader_errstr(r));
	else if ((rc = moe_route_stats_flush(*s)) != 0)
		moe_cli_error(moe_input_name(in), "%s", moe_route_stats_errstr(*s));
done:
	moe_trace_reader_free(r);
	moe_input_free(in);
	return rc < 0 ? -1 : 0;
}

static int add_partial(const char *path, struct moe_route_stats **s)
{
	struct moe_input *in = NULL;
	struct moe_route_stats *p = NULL;
	char err[256];
	int rc = -1;

	if (moe_input_open(&in, path, err, sizeof err) != 0) {
		moe_cli_error(path, "%s", err);
		return -1;
	}
	if (moe_route_stats_load(&p, in) != 0)
		moe_cli_error(path, "%s", p ? moe_route_stats_errstr(p) : "out of memory");
	else if (*s == NULL)
		*s = p, p = NULL, rc = 0;
	else if (moe_route_stats_merge(*s, p) != 0)
		moe_cli_error(path, "%s", moe_route_stats_errstr(*s));
	else
		rc = 0;
	moe_route_stats_free(p);
	moe_input_free(in);
	return rc;
}

/* ---- text report ---- */

static void fmt(char *buf, size_t n, double v, const char *f)
{
	if (isnan(v))
		snprintf(buf, n, "-");
	else
		snprintf(buf, n, f, v);
}

/* One block character per expert, scaled to the layer's maximum. */
static void sparkline(const uint64_t *c, uint32_t n)
{
	static const char *const blk[8] = { "\u2581", "\u2582", "\u2583", "\u2584",
		"\u2585", "\u2586", "\u2587", "\u2588" };
	uint64_t max = 0;

	for (uint32_t e = 0; e < n; e++)
		if (c[e] > max)
			max = c[e];
	for (uint32_t e = 0; e < n && max; e++)
		fputs(c[e] ? blk[(c[e] * 7 + max / 2) / max] : " ", stdout);
}

static void text_layers(const struct moe_route_stats *s, int tty)
{
	const struct moe_trace_header *h = moe_route_stats_header(s);

	printf("%5s %7s %6s %8s %6s %7s %5s %6s %7s %7s %7s %8s%s\n", "layer", "cv", "jain",
		"max/mean", "H/lnE", "eff.exp", "dead", "top-m", "aux", "z-loss", "jaccard",
		"consist", tty ? "  load" : "");
	for (uint32_t l = 0; l < h->n_moe; l++) {
		const uint64_t *c = moe_route_stats_load_counts(s, l);
		struct moe_route_balance b;
		double a1, ak, z;
		char f[9][16];
		moe_route_balance(c, h->n_experts, moe_route_stats_opts(s)->top_m, &b);
		if (moe_route_stats_aux_loss(s, l, &a1, &ak) != 0)
			a1 = NAN;
		if (moe_route_stats_z_loss(s, l, &z) != 0)
			z = NAN;
		fmt(f[0], 16, b.cv, "%.3f");
		fmt(f[1], 16, b.jain, "%.3f");
		fmt(f[2], 16, b.max_mean, "%.3f");
		fmt(f[3], 16, b.entropy_norm, "%.3f");
		fmt(f[4], 16, b.eff_experts, "%.2f");
		fmt(f[5], 16, b.top_m_share, "%.3f");
		fmt(f[6], 16, a1, "%.3f");
		fmt(f[7], 16, z, "%.3f");
		fmt(f[8], 16, moe_route_stats_jaccard(s, l), "%.3f");
		char cs[16];
		fmt(cs, sizeof cs, l ? moe_route_stats_consistency(s, l) : NAN, "%.3f");
		printf("%5u %7s %6s %8s %6s %7s %5u %6s %7s %7s %7s %8s", h->moe_layers[l], f[0], f[1],
			f[2], f[3], f[4], b.dead, f[5], f[6], f[7], f[8], cs);
		if (tty && h->n_experts <= 128) {
			fputs("  ", stdout);
			sparkline(c, h->n_experts);
		}
		putchar('\n');
	}
}

static void text_capacity(const struct moe_route_stats *s)
{
	const struct moe_trace_header *h = moe_route_stats_header(s);
	const struct moe_route_opts *o = moe_route_stats_opts(s);
	double all = (double)moe_route_stats_tokens(s) * h->top_k;
	char cf[32];

	printf("\ndropped assignments by capacity factor (groups of %u tokens)\n%5s", o->group_size, "layer");
	for (uint32_t c = 0; c < o->n_cf; c++)
		printf(" %9s", (snprintf(cf, sizeof cf, "CF %g", o->cf[c]), cf));
	putchar('\n');
	for (uint32_t l = 0; l < h->n_moe; l++) {
		printf("%5u", h->moe_layers[l]);
		for (uint32_t c = 0; c < o->n_cf; c++)
			printf(" %8.3f%%", all ? 100.0 * (double)moe_route_stats_drops(s, l)[c] / all : 0.0);
		putchar('\n');
	}
}

static void text_cache(const struct moe_route_stats *s, const struct opts *o, int tty)
{
	uint32_t E = moe_route_stats_header(s)->n_experts, n = o->n_sizes ? o->n_sizes : E;

	printf("\nexpert-cache hit rate, all layers (cold at each sequence and every %u tokens)\n"
		"%5s %7s %7s %7s\n", moe_route_stats_opts(s)->cache_segment, "size", "LRU", "LFU", "OPT");
	for (uint32_t i = 0; i < n; i++) {
		uint32_t c = o->n_sizes ? o->sizes[i] : i + 1;
		double v[3];
		for (int p = 0; p < 3; p++)
			v[p] = moe_route_report_hit_rate(s, p, c);
		printf("%5u %7.3f %7.3f %7.3f", c, v[0], v[1], v[2]);
		if (tty && !isnan(v[2]))
			printf("  %.*s", (int)lround(v[2] * 40),
				"########################################");
		putchar('\n');
	}
}

static void text_windows(const struct moe_route_stats *s)
{
	uint32_t n = moe_route_stats_header(s)->n_moe;

	printf("\nbalance per window (mean over layers)\n%6s %9s %7s %6s %6s\n",
		"window", "tokens", "cv", "jain", "H/lnE");
	for (size_t w = 0; w < moe_route_stats_windows(s); w++) {
		uint64_t t;
		const struct moe_route_balance *b = moe_route_stats_window(s, w, &t);
		double cv = 0, j = 0, hn = 0;
		for (uint32_t l = 0; l < n; l++)
			cv += b[l].cv, j += b[l].jain, hn += b[l].entropy_norm;
		printf("%6zu %9llu %7.3f %6.3f %6.3f\n", w, (unsigned long long)t, cv / n, j / n, hn / n);
	}
}

static void text_top_tokens(const struct moe_route_stats *s)
{
	const struct moe_trace_header *h = moe_route_stats_header(s);

	printf("\nmost frequent tokens per expert (token id, 'text' when known, count)\n");
	for (uint32_t l = 0; l < h->n_moe; l++) {
		struct moe_token_entry *e;
		size_t n;
		if (moe_route_stats_top_tokens(s, l, &e, &n) != 0)
			n = 0;
		for (size_t i = 0; i < n; i++) {
			const char *t = moe_route_stats_token_text(s, e[i].token);
			if (i == 0 || e[i].expert != e[i - 1].expert)
				printf("%slayer %u expert %u:", i ? "\n" : "", h->moe_layers[l], e[i].expert);
			printf(" %u", e[i].token);
			if (t)
				printf(" '%s'", t);
			printf(" %llu", (unsigned long long)e[i].count);
		}
		if (n)
			putchar('\n');
		free(e);
	}
}

static void text_report(const struct moe_route_stats *s, const struct opts *o)
{
	const struct moe_trace_header *h = moe_route_stats_header(s);
	int tty = isatty(STDOUT_FILENO);

	printf("model '%s': %u layers, %u MoE, %u experts, top-%u, %llu tokens\n\n", h->model,
		h->n_layers, h->n_moe, h->n_experts, h->top_k,
		(unsigned long long)moe_route_stats_tokens(s));
	text_layers(s, tty);
	text_capacity(s);
	if (moe_route_stats_cache(s, 0, 0))
		text_cache(s, o, tty);
	if (moe_route_stats_windows(s))
		text_windows(s);
	if (moe_route_stats_opts(s)->top_tokens)
		text_top_tokens(s);
}

/* ---- output ---- */

static int write_with(const struct opts *o, const char *path, const struct moe_route_stats *s,
	int (*fn)(const struct moe_route_stats *, const struct moe_route_report *, struct moe_output *))
{
	struct moe_route_report rep = { o->sizes, o->n_sizes };
	struct moe_output *out;

	if (open_out(o, path, &out) != 0) {
		moe_output_free(out);
		return MOE_EXIT_FAIL;
	}
	return finish_out(out, fn(s, &rep, out));
}

static int save_partial(const struct moe_route_stats *s,
	const struct moe_route_report *rep, struct moe_output *out)
{
	(void)rep;
	return moe_route_stats_save(s, out);
}

static int report(const struct opts *o, const struct moe_route_stats *s)
{
	uint32_t E = moe_route_stats_header(s)->n_experts;
	int st = MOE_EXIT_OK;

	for (uint32_t i = 0; i < o->n_sizes; i++)
		if (o->sizes[i] > E) {
			moe_cli_error(NULL, "--cache-sizes: %u exceeds the %u experts", o->sizes[i], E);
			return MOE_EXIT_FAIL;
		}
	if (o->svg && (st = write_with(o, o->svg, s, moe_route_report_svg)) != 0)
		return st;
	if (o->partial)
		return write_with(o, o->out ? o->out : "-", s, save_partial);
	if (o->json)
		return write_with(o, "-", s, moe_route_report_json);
	if (o->csv)
		return write_with(o, "-", s, moe_route_report_csv);
	text_report(s, o);
	return MOE_EXIT_OK;
}

int main(int argc, char **argv)
{
	static struct opts o;
	struct moe_route_stats *s = NULL;
	char *stdin_only[] = { "-" };
	char **inputs;
	int n, st;

	moe_cli_init(argv[0]);
	moe_route_opts_init(&o.st);
	if ((st = parse_args(argc, argv, &o)) != 0)
		return st;
	inputs = argv + optind;
	n = argc - optind;
	if (n == 0) {
		if (isatty(STDIN_FILENO)) {
			usage(stderr);
			return MOE_EXIT_USAGE;
		}
		inputs = stdin_only;
		n = 1;
	}
	if (o.to)
		return moe_cli_close_stdout(convert(&o, inputs[0]));
	for (int i = 0; i < n; i++)
		if ((o.merge ? add_partial(inputs[i], &s) : add_trace(&o, inputs[i], &s)) != 0)
			st = MOE_EXIT_FAIL;
	if (st == MOE_EXIT_OK && s)
		st = report(&o, s);
	moe_route_stats_free(s);
	return moe_cli_close_stdout(st);
}
