/* Chunked perplexity scoring over a moe_infer state, matching llama-perplexity's arithmetic. */
#include "perplexity.h"

#include <math.h>

#include "error.h"

/* -log softmax(logits)[tok], summed in double as llama-perplexity does. */
static double nll_of(const float *lg, uint32_t nv, int32_t tok)
{
	float max = lg[0];
	double sum = 0;

	for (uint32_t i = 1; i < nv; i++)
		if (lg[i] > max)
			max = lg[i];
	for (uint32_t i = 0; i < nv; i++)
		sum += exp((double)(lg[i] - max));
	return log(sum) - (double)(lg[tok] - max);
}

int moe_perplexity_chunk(struct moe_infer *s, int32_t *chunk, uint32_t n_ctx,
	int32_t bos, float *logits, struct moe_ppl *acc)
{
	uint32_t nb = moe_infer_n_batch(s), first = n_ctx / 2;
	uint32_t nv = moe_infer_n_vocab(s);
	int rc;

	if (n_ctx < 2 || n_ctx > moe_infer_n_ctx(s))
		return MOE_ERANGE;
	moe_infer_reset(s);
	for (uint32_t b = 0; b < n_ctx; b += nb) {
		uint32_t n = n_ctx - b < nb ? n_ctx - b : nb;
		int32_t saved = chunk[b];

		if (b == 0 && bos >= 0)
			chunk[0] = bos;
		rc = moe_infer_eval(s, chunk + b, n, logits, 1);
		chunk[b] = saved;
		if (rc != 0)
			return rc;
		for (uint32_t t = 0; t < n; t++) {
			uint32_t pos = b + t;
			double v;

			if (pos < first || pos + 1 >= n_ctx)
				continue;
			v = nll_of(logits + (size_t)t * nv, nv, chunk[pos + 1]);
			acc->nll += v;
			acc->nll2 += v * v;
			acc->count++;
		}
	}
	return 0;
}

double moe_ppl_value(const struct moe_ppl *a)
{
	return a->count ? exp(a->nll / (double)a->count) : 0;
}

double moe_ppl_stderr(const struct moe_ppl *a)
{
	double mean, var;

	if (a->count < 2)
		return 0;
	mean = a->nll / (double)a->count;
	var = a->nll2 / (double)a->count - mean * mean;
	return var > 0 ? sqrt(var / (double)(a->count - 1)) * exp(mean) : 0;
}
