/* moe-run: run a Mixture-of-Experts model on the CPU: generate or score text, dump logits, trace the routing. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "infer.h"
#include "model.h"
#include "output.h"
#include "perplexity.h"
#include "sampling.h"
#include "tokenizer.h"
#include "trace.h"

#define MAX_INPUT (64u << 20)   /* prompt / perplexity text */

struct opts {
	const char *model, *prompt, *prompt_file, *logits, *ppl, *trace;
	uint64_t n_predict, threads, ctx, batch, top_k_experts, seed;
	struct moe_sampler_params sp;
	int tokens, timings, ignore_eos;
};

/* Everything a run holds; freed by run_release(). */
struct run {
	const struct opts *o;
	struct moe_model *m;
	struct moe_infer *s;
	struct moe_tokenizer *tok;
	struct moe_output *lout, *tout;
	struct moe_trace_writer *tw;
	float *logits;            /* (n_batch, n_vocab) */
	int32_t *ids;             /* (n_ctx) the sequence so far */
	uint32_t n_ids;
	uint16_t *t_exp;          /* (n_moe, top_k) trace record */
	float *t_w, *t_p, *t_lse;
	double t_load, t_prompt, t_decode;
	uint32_t n_prompt, n_decoded;
};

static const char usage_text[] =
	"usage: moe-run [-h] [-b N] [-c N] [-f FILE] [-n N] [-p PROMPT] [-s SEED]\n"
	"               [-t N] [--ignore-eos] [--logits FILE] [--min-p P]\n"
	"               [--perplexity FILE] [--repeat-last-n N] [--repeat-penalty X]\n"
	"               [--temp T] [--timings] [--tokens] [--top-k N]\n"
	"               [--top-k-experts K] [--top-p P] [--trace FILE] [--version]\n"
	"               model\n";

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void run_release(struct run *r)
{
	moe_trace_writer_free(r->tw);
	moe_output_free(r->tout);
	moe_output_free(r->lout);
	moe_tokenizer_free(r->tok);
	moe_infer_free(r->s);
	moe_model_free(r->m);
	free(r->logits); free(r->ids);
	free(r->t_exp); free(r->t_w); free(r->t_p); free(r->t_lse);
}

/* Whole file (or stdin for NULL / "-"), NUL-terminated. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = path && strcmp(path, "-") ? fopen(path, "rb") : stdin;
	const char *name = path && strcmp(path, "-") ? path : "standard input";
	size_t cap = 1 << 16, n = 0;
	char *buf = NULL, *nb;

	if (f == NULL) {
		moe_cli_error(name, "%s", strerror(errno));
		return NULL;
	}
	for (;;) {
		if ((nb = realloc(buf, cap + 1)) == NULL) {
			moe_cli_error(name, "out of memory");
			goto fail;
		}
		buf = nb;
		n += fread(buf + n, 1, cap - n, f);
		if (n < cap)
			break;
		if (cap >= MAX_INPUT) {
			moe_cli_error(name, "input larger than %u MiB", MAX_INPUT >> 20);
			goto fail;
		}
		cap *= 2;
	}
	if (ferror(f)) {
		moe_cli_error(name, "read error");
		goto fail;
	}
	if (f != stdin)
		fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
fail:
	free(buf);
	if (f != stdin)
		fclose(f);
	return NULL;
}

/* Token ids of a text: numbers (--tokens) or the model's tokenizer. */
static int32_t *to_ids(struct run *r, const char *name, const char *text, size_t len, size_t *n)
{
	size_t cap = len / 2 + 2;
	int32_t *ids = malloc(cap * sizeof *ids);
	int rc;

	if (ids == NULL) {
		moe_cli_error(name, "out of memory");
		return NULL;
	}
	*n = 0;
	if (r->o->tokens) {
		const char *p = text;
		char *end;

		for (;;) {
			long v;

			while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',')
				p++;
			if (*p == '\0' || p >= text + len)
				break;
			errno = 0;
			v = strtol(p, &end, 10);
			if (end == p || errno || v < 0 || v >= (long)r->m->hp.n_vocab) {
				moe_cli_error(name, "bad token id '%.20s' (vocabulary of %u)", p, r->m->hp.n_vocab);
				free(ids);
				return NULL;
			}
			ids[(*n)++] = (int32_t)v;
			p = end;
		}
		return ids;
	}
	if (r->tok == NULL) {
		moe_cli_error(r->o->model, "no usable tokenizer in the model; give token ids with --tokens");
		free(ids);
		return NULL;
	}
	rc = moe_tokenizer_encode(r->tok, text, len, 1, 0, ids, cap, n);
	if (rc == MOE_ERANGE && *n > cap) {
		int32_t *more = realloc(ids, *n * sizeof *ids);

		if (more == NULL) {
			free(ids);
			moe_cli_error(name, "out of memory");
			return NULL;
		}
		ids = more;
		rc = moe_tokenizer_encode(r->tok, text, len, 1, 0, ids, *n, n);
	}
	if (rc != 0) {
		moe_cli_error(name, "%s", moe_strerror(rc));
		free(ids);
		return NULL;
	}
	return ids;
}

static int open_model(struct run *r)
{
	const struct opts *o = r->o;
	struct moe_infer_opts io = { (int)o->threads, (uint32_t)o->ctx, (uint32_t)o->batch,
		(uint32_t)o->top_k_experts };
	double t0 = now();
	int rc;

	if (moe_model_new(&r->m) != 0 || (rc = moe_model_open(r->m, o->model)) != 0) {
		moe_cli_error(o->model, "%s", r->m ? moe_model_errstr(r->m) : "out of memory");
		return -1;
	}
	if (moe_infer_new(&r->s, r->m, &io) != 0) {
		moe_cli_error(o->model, "%s", r->s ? moe_infer_errstr(r->s) : "out of memory");
		return -1;
	}
	if (moe_tokenizer_new_from_meta(&r->tok, moe_ckpt_meta(r->m->ck)) != 0) {
		moe_tokenizer_free(r->tok);
		r->tok = NULL;
	}
	r->t_load = now() - t0;
	r->logits = malloc((size_t)moe_infer_n_batch(r->s) * r->m->hp.n_vocab * sizeof *r->logits);
	r->ids = malloc((size_t)moe_infer_n_ctx(r->s) * sizeof *r->ids);
	if (r->logits == NULL || r->ids == NULL) {
		moe_cli_error(o->model, "out of memory");
		return -1;
	}
	return 0;
}

static int open_outputs(struct run *r)
{
	const struct opts *o = r->o;
	uint32_t nm = moe_infer_n_moe(r->s), K = moe_infer_top_k(r->s), E = r->m->hp.n_expert;

	if (o->logits && (moe_cli_refuse_tty(o->logits) != 0 ||
	    moe_output_open(&r->lout, o->logits, MOE_OUT_FORCE) != 0)) {
		if (r->lout == NULL && strcmp(o->logits, "-") != 0)
			moe_cli_error(o->logits, "cannot create the file");
		return -1;
	}
	if (o->trace) {
		uint32_t *layers = malloc((nm ? nm : 1) * sizeof *layers);
		const char *name = NULL;
		struct moe_trace_header h = { 0 };
		int rc;

		if (layers == NULL)
			return -1;
		for (uint32_t i = 0; i < nm; i++)
			layers[i] = moe_infer_moe_layer(r->s, i);
		(void)moe_meta_get_str(moe_ckpt_meta(r->m->ck), "general.name", &name);
		h.n_layers = r->m->hp.n_layer;
		h.n_moe = nm;
		h.moe_layers = layers;
		h.n_experts = E;
		h.top_k = K;
		h.flags = MOE_TRACE_PROBS | MOE_TRACE_LSE | (r->tok ? MOE_TRACE_TEXT : 0);
		h.model = name ? name : "";
		h.gating = r->m->hp.gating == MOE_ROUTE_SIGMOID ? "sigmoid" : "softmax";
		h.vocab = "";
		if (moe_output_open(&r->tout, o->trace, MOE_OUT_FORCE) != 0) {
			moe_cli_error(o->trace, "cannot create the file");
			free(layers);
			return -1;
		}
		rc = moe_trace_writer_new(&r->tw, r->tout, MOE_TRACE_JSONL, &h);
		free(layers);
		if (rc != 0) {
			moe_cli_error(o->trace, "%s", r->tw ? moe_trace_writer_errstr(r->tw) : moe_output_errstr(r->tout));
			return -1;
		}
		r->t_exp = malloc(((size_t)nm * K + 1) * sizeof *r->t_exp);
		r->t_w = malloc(((size_t)nm * K + 1) * sizeof *r->t_w);
		r->t_p = malloc(((size_t)nm * E + 1) * sizeof *r->t_p);
		r->t_lse = malloc(((size_t)nm + 1) * sizeof *r->t_lse);
		if (!r->t_exp || !r->t_w || !r->t_p || !r->t_lse) {
			moe_cli_error(o->trace, "out of memory");
			return -1;
		}
	}
	return 0;
}

/* One routing record per token of the last eval. */
static int write_trace(struct run *r, const int32_t *toks, uint32_t n, uint32_t pos0)
{
	uint32_t nm = moe_infer_n_moe(r->s), K = moe_infer_top_k(r->s), E = r->m->hp.n_expert;

	for (uint32_t t = 0; t < n; t++) {
		struct moe_trace_token tt = { 0, pos0 + t, toks[t], NULL, r->t_exp, r->t_w, r->t_p, r->t_lse };

		if (r->tok)
			tt.text = moe_tokenizer_token_text(r->tok, toks[t]);
		for (uint32_t i = 0; i < nm; i++) {
			struct moe_route rt;

			(void)moe_infer_route(r->s, i, t, &rt);
			for (uint32_t k = 0; k < K; k++) {
				r->t_exp[i * K + k] = (uint16_t)rt.selected[k];
				r->t_w[i * K + k] = rt.weights[k];
			}
			memcpy(r->t_p + (size_t)i * E, rt.probs, E * sizeof *r->t_p);
			r->t_lse[i] = rt.lse;
		}
		if (moe_trace_write(r->tw, &tt) != 0) {
			moe_cli_error(r->o->trace, "%s", moe_trace_writer_errstr(r->tw));
			return -1;
		}
	}
	return 0;
}

/* Evaluates n tokens (n <= n_batch), appending them to the sequence, and
 * writes their logits and routing when asked. */
static int eval(struct run *r, const int32_t *toks, uint32_t n)
{
	uint32_t pos0 = moe_infer_pos(r->s), nv = r->m->hp.n_vocab;
	int all = r->lout != NULL;

	if (moe_infer_eval(r->s, toks, n, r->logits, all) != 0) {
		moe_cli_error(r->o->model, "%s", moe_infer_errstr(r->s));
		return -1;
	}
	memcpy(r->ids + r->n_ids, toks, n * sizeof *toks);
	r->n_ids += n;
	if (r->lout && moe_output_write(r->lout, r->logits, (size_t)n * nv * sizeof *r->logits) != 0) {
		moe_cli_error(r->o->logits, "%s", moe_output_errstr(r->lout));
		return -1;
	}
	if (all)   /* the next token is drawn from the last row */
		memmove(r->logits, r->logits + (size_t)(n - 1) * nv, nv * sizeof *r->logits);
	return r->tw ? write_trace(r, toks, n, pos0) : 0;
}

/* Prints one generated token: 0, -2 when the reader closed the pipe, -1
 * on another write error (reported when stdout is closed). */
static int emit(struct run *r, int32_t id)
{
	char piece[256];
	size_t n = 0;

	if (r->o->trace && strcmp(r->o->trace, "-") == 0)
		return 0;   /* the trace has standard output */
	if (r->o->tokens)
		printf(r->n_decoded ? " %" PRId32 : "%" PRId32, id);
	else if (moe_tokenizer_decode_token(r->tok, id, piece, sizeof piece, &n) == 0 ||
		 n > sizeof piece)
		fwrite(piece, 1, n < sizeof piece ? n : sizeof piece, stdout);
	errno = 0;
	fflush(stdout);
	if (ferror(stdout))
		return errno == EPIPE ? -2 : -1;
	return 0;
}

static int generate(struct run *r)
{
	const struct opts *o = r->o;
	uint32_t nb = moe_infer_n_batch(r->s);
	struct moe_sampler *smp = NULL;
	struct moe_progress pr;
	struct moe_sampler_params sp = o->sp;
	char *text;
	size_t len, n;
	int32_t *prompt, eos = r->tok ? moe_tokenizer_special(r->tok, MOE_TOK_EOS) : -1;
	int rc = -1;
	double t0;

	if (o->prompt)
		text = strdup(o->prompt), len = strlen(o->prompt);
	else
		text = slurp(o->prompt_file, &len);
	if (text == NULL)
		return -1;
	prompt = to_ids(r, o->prompt_file ? o->prompt_file : "prompt", text, len, &n);
	free(text);
	if (prompt == NULL)
		return -1;
	if (n == 0 || n + o->n_predict > moe_infer_n_ctx(r->s)) {
		moe_cli_error("prompt", n ? "%zu tokens and %" PRIu64 " to generate do not fit a context of %u (see -c)"
			: "empty prompt", n, o->n_predict, moe_infer_n_ctx(r->s));
		goto out;
	}
	if (moe_sampler_new(&smp, &sp, r->m->hp.n_vocab) != 0) {
		moe_cli_error(NULL, "bad sampling parameters");
		goto out;
	}
	moe_progress_init(&pr, "prompt", n);
	t0 = now();
	for (size_t i = 0; i < n; i += nb) {
		if (eval(r, prompt + i, (uint32_t)(n - i < nb ? n - i : nb)) != 0)
			goto out;
		moe_progress_update(&pr, i + nb < n ? i + nb : n);
	}
	moe_progress_finish(&pr);
	r->t_prompt = now() - t0;
	r->n_prompt = (uint32_t)n;
	t0 = now();
	for (uint64_t i = 0; i < o->n_predict; i++) {
		int32_t id = moe_sampler_sample(smp, r->logits, r->ids, r->n_ids);

		if (!o->ignore_eos && r->tok && (id == eos || moe_tokenizer_is_eog(r->tok, id)))
			break;
		if ((rc = emit(r, id)) != 0)
			goto out;
		r->n_decoded++;
		if (eval(r, &id, 1) != 0)
			goto out;
	}
	r->t_decode = now() - t0;
	if (o->tokens && r->n_decoded && !(o->trace && strcmp(o->trace, "-") == 0))
		putchar('\n');
	rc = 0;
out:
	moe_sampler_free(smp);
	free(prompt);
	return rc;
}

static int perplexity(struct run *r)
{
	const struct opts *o = r->o;
	uint32_t nctx = moe_infer_n_ctx(r->s);
	struct moe_ppl acc = { 0, 0, 0 };
	struct moe_progress pr;
	size_t len, n;
	char *text = slurp(o->ppl, &len);
	int32_t *ids, bos = r->tok ? moe_tokenizer_special(r->tok, MOE_TOK_BOS) : -1;
	double t0 = now();

	if (text == NULL)
		return -1;
	ids = to_ids(r, o->ppl, text, len, &n);
	free(text);
	if (ids == NULL)
		return -1;
	if (o->tokens && n > 0)
		bos = ids[0];   /* a token file brings its own first token */
	if (n / nctx == 0) {
		moe_cli_error(o->ppl, "%zu tokens, fewer than one chunk of %u (see -c)", n, nctx);
		free(ids);
		return -1;
	}
	moe_progress_init(&pr, "perplexity", n / nctx);
	for (size_t c = 0; c < n / nctx; c++) {
		if (moe_perplexity_chunk(r->s, ids + c * nctx, nctx, bos, r->logits, &acc) != 0) {
			moe_cli_error(o->model, "%s", moe_infer_errstr(r->s));
			free(ids);
			return -1;
		}
		moe_progress_update(&pr, c + 1);
		printf("[%zu]%.4f\n", c + 1, moe_ppl_value(&acc));
	}
	moe_progress_finish(&pr);
	printf("Final estimate: PPL = %.4f +/- %.5f\n", moe_ppl_value(&acc), moe_ppl_stderr(&acc));
	r->t_prompt = now() - t0;
	r->n_prompt = (uint32_t)(n / nctx * nctx);
	free(ids);
	return 0;
}

/* Weight bytes one decoded token reads, with the experts per token used. */
static double bytes_per_token(const struct run *r)
{
	double b = (double)r->m->bytes_per_token;
	int extra = (int)moe_infer_top_k(r->s) - (int)r->m->hp.n_expert_used;

	for (uint32_t il = 0; il < r->m->hp.n_layer; il++) {
		const struct moe_model_layer *L = &r->m->layers[il];

		if (L->is_moe)
			b += extra * (double)(L->gate_exps.mat_bytes + L->up_exps.mat_bytes + L->down_exps.mat_bytes);
	}
	return b;
}

static void print_timings(const struct run *r)
{
	double bpt = bytes_per_token(r);

	fprintf(stderr, "%s: load %.3f s\n", moe_cli_progname(), r->t_load);
	if (r->n_prompt)
		fprintf(stderr, "%s: prompt %u tokens in %.3f s, %.2f tokens/s\n", moe_cli_progname(),
			r->n_prompt, r->t_prompt, r->n_prompt / (r->t_prompt > 0 ? r->t_prompt : 1e-9));
	if (r->n_decoded) {
		double tps = r->n_decoded / (r->t_decode > 0 ? r->t_decode : 1e-9);

		fprintf(stderr, "%s: decode %u tokens in %.3f s, %.2f tokens/s\n", moe_cli_progname(),
			r->n_decoded, r->t_decode, tps);
		fprintf(stderr, "%s: %.1f MB of weights per token: %.2f GB/s effective; "
			"a memory bandwidth of B GB/s bounds decoding at B / %.4f tokens/s\n",
			moe_cli_progname(), bpt / 1e6, bpt * tps / 1e9, bpt / 1e9);
	}
}

static int finish_outputs(struct run *r)
{
	if (r->lout && moe_output_commit(r->lout) != 0) {
		moe_cli_error(r->o->logits, "%s", moe_output_errstr(r->lout));
		return -1;
	}
	if (r->tout && moe_output_commit(r->tout) != 0) {
		moe_cli_error(r->o->trace, "%s", moe_output_errstr(r->tout));
		return -1;
	}
	return 0;
}

static int run(const struct opts *o)
{
	struct run r = { .o = o };
	int rc = -1;

	if (open_model(&r) != 0 || open_outputs(&r) != 0)
		goto out;
	rc = o->ppl ? perplexity(&r) : generate(&r);
	if (rc == 0)
		rc = finish_outputs(&r);
	if (rc == 0 && o->timings)
		print_timings(&r);
out:
	run_release(&r);
	return rc;
}

enum { OPT_IGNORE_EOS = 256, OPT_LOGITS, OPT_MIN_P, OPT_PPL, OPT_REPEAT_LAST_N,
	OPT_REPEAT_PENALTY, OPT_TEMP, OPT_TIMINGS, OPT_TOKENS, OPT_TOP_K,
	OPT_TOP_K_EXPERTS, OPT_TOP_P, OPT_TRACE, OPT_VERSION };

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "batch-size", required_argument, NULL, 'b' },
		{ "ctx-size", required_argument, NULL, 'c' },
		{ "file", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "ignore-eos", no_argument, NULL, OPT_IGNORE_EOS },
		{ "logits", required_argument, NULL, OPT_LOGITS },
		{ "min-p", required_argument, NULL, OPT_MIN_P },
		{ "n-predict", required_argument, NULL, 'n' },
		{ "perplexity", required_argument, NULL, OPT_PPL },
		{ "prompt", required_argument, NULL, 'p' },
		{ "repeat-last-n", required_argument, NULL, OPT_REPEAT_LAST_N },
		{ "repeat-penalty", required_argument, NULL, OPT_REPEAT_PENALTY },
		{ "seed", required_argument, NULL, 's' },
		{ "temp", required_argument, NULL, OPT_TEMP },
		{ "threads", required_argument, NULL, 't' },
		{ "timings", no_argument, NULL, OPT_TIMINGS },
		{ "tokens", no_argument, NULL, OPT_TOKENS },
		{ "top-k", required_argument, NULL, OPT_TOP_K },
		{ "top-k-experts", required_argument, NULL, OPT_TOP_K_EXPERTS },
		{ "top-p", required_argument, NULL, OPT_TOP_P },
		{ "trace", required_argument, NULL, OPT_TRACE },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 }
	};
	struct opts o = { 0 };
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t u;
	double d;
	int c, bad = 0;

	moe_cli_init(argv[0]);
	argv[0] = (char *)moe_cli_progname();
	o.n_predict = 32;
	o.threads = ncpu > 0 ? (uint64_t)(ncpu < 64 ? ncpu : 64) : 1;
	o.batch = 256;
	o.seed = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
	o.sp = (struct moe_sampler_params){ 0.8f, 40, 0.95f, 0.05f, 1.0f, 64, 0 };
	while ((c = getopt_long(argc, argv, "b:c:f:hn:p:s:t:", longopts, NULL)) != -1) {
		switch (c) {
		case 'b': bad |= moe_cli_parse_u64("-b", optarg, 1, 65536, &o.batch); break;
		case 'c': bad |= moe_cli_parse_u64("-c", optarg, 2, 1u << 24, &o.ctx); break;
		case 'f': o.prompt_file = optarg; break;
		case 'h': fputs(usage_text, stdout); return moe_cli_close_stdout(MOE_EXIT_OK);
		case 'n': bad |= moe_cli_parse_u64("-n", optarg, 0, 1u << 24, &o.n_predict); break;
		case 'p': o.prompt = optarg; break;
		case 's': bad |= moe_cli_parse_u64("-s", optarg, 0, UINT64_MAX, &o.seed); break;
		case 't': bad |= moe_cli_parse_u64("-t", optarg, 1, 1024, &o.threads); break;
		case OPT_IGNORE_EOS: o.ignore_eos = 1; break;
		case OPT_LOGITS: o.logits = optarg; break;
		case OPT_MIN_P: bad |= moe_cli_parse_double("--min-p", optarg, 0, 1, &d); o.sp.min_p = (float)d; break;
		case OPT_PPL: o.ppl = optarg; break;
		case OPT_REPEAT_LAST_N:
			bad |= moe_cli_parse_u64("--repeat-last-n", optarg, 0, 1u << 24, &u);
			o.sp.repeat_last_n = (uint32_t)u;
			break;
		case OPT_REPEAT_PENALTY:
			bad |= moe_cli_parse_double("--repeat-penalty", optarg, 0.01, 100, &d);
			o.sp.repeat_penalty = (float)d;
			break;
		case OPT_TEMP: bad |= moe_cli_parse_double("--temp", optarg, 0, 100, &d); o.sp.temp = (float)d; break;
		case OPT_TIMINGS: o.timings = 1; break;
		case OPT_TOKENS: o.tokens = 1; break;
		case OPT_TOP_K:
			bad |= moe_cli_parse_u64("--top-k", optarg, 0, UINT32_MAX, &u);
			o.sp.top_k = (uint32_t)u;
			break;
		case OPT_TOP_K_EXPERTS: bad |= moe_cli_parse_u64("--top-k-experts", optarg, 1, 65536, &o.top_k_experts); break;
		case OPT_TOP_P: bad |= moe_cli_parse_double("--top-p", optarg, 1e-6, 1, &d); o.sp.top_p = (float)d; break;
		case OPT_TRACE: o.trace = optarg; break;
		case OPT_VERSION: moe_cli_version(); return moe_cli_close_stdout(MOE_EXIT_OK);
		default: fputs(usage_text, stderr); return MOE_EXIT_USAGE;
		}
	}
	if (bad)
		return MOE_EXIT_USAGE;
	if (argc - optind != 1 || (o.prompt && o.prompt_file) || (o.ppl && (o.prompt || o.prompt_file || o.logits || o.trace))) {
		fputs(usage_text, stderr);
		return MOE_EXIT_USAGE;
	}
	if (o.logits && o.trace && strcmp(o.logits, "-") == 0 && strcmp(o.trace, "-") == 0) {
		moe_cli_error(NULL, "--logits and --trace cannot both write to standard output");
		return MOE_EXIT_USAGE;
	}
	o.model = argv[optind];
	o.sp.seed = o.seed;
	if (!o.ppl && !o.prompt && (o.prompt_file == NULL || strcmp(o.prompt_file, "-") == 0) &&
	    isatty(STDIN_FILENO)) {
		fputs(usage_text, stderr);
		return MOE_EXIT_USAGE;
	}
	if (o.ppl && o.ctx == 0)
		o.ctx = 512;   /* llama-perplexity's default chunk */
	switch (run(&o)) {
	case 0: return moe_cli_close_stdout(MOE_EXIT_OK);
	case -2: return MOE_EXIT_FAIL;   /* the reader went away: stay silent */
	default: return moe_cli_close_stdout(MOE_EXIT_FAIL);
	}
}
