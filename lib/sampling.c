/* Token sampling: penalty, truncation (top-k, top-p, min-p), temperature, and a splitmix64 draw. */
#include "sampling.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

struct cand {
	int32_t id;
	float logit;
	float p;
};

struct moe_sampler {
	struct moe_sampler_params p;
	uint32_t n_vocab;
	struct cand *c;          /* (n_vocab) candidates */
	unsigned char *seen;     /* (n_vocab) penalised already */
	uint64_t rng;
};

int moe_sampler_new(struct moe_sampler **out, const struct moe_sampler_params *p,
	uint32_t n_vocab)
{
	struct moe_sampler *s;

	*out = NULL;
	if (n_vocab == 0 || !(p->top_p > 0 && p->top_p <= 1) || !(p->min_p >= 0 && p->min_p <= 1) ||
	    !(p->repeat_penalty > 0) || isnan(p->temp))
		return MOE_EINVAL;
	if ((s = calloc(1, sizeof *s)) == NULL)
		return MOE_ENOMEM;
	s->c = calloc(n_vocab, sizeof *s->c);
	s->seen = calloc(n_vocab, 1);
	if (s->c == NULL || s->seen == NULL) {
		moe_sampler_free(s);
		return MOE_ENOMEM;
	}
	s->p = *p;
	s->n_vocab = n_vocab;
	s->rng = p->seed;
	*out = s;
	return 0;
}

void moe_sampler_free(struct moe_sampler *s)
{
	if (s == NULL)
		return;
	free(s->c);
	free(s->seen);
	free(s);
}

static double uniform01(struct moe_sampler *s)
{
	uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (double)(z >> 11) / 9007199254740992.0;
}

static int by_logit(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->logit != y->logit)
		return x->logit < y->logit ? 1 : -1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* Probabilities of the first n (sorted) candidates at temperature t. */
static void softmax(struct cand *c, size_t n, float t)
{
	double sum = 0;

	for (size_t i = 0; i < n; i++) {
		c[i].p = expf((c[i].logit - c[0].logit) / t);
		sum += c[i].p;
	}
	for (size_t i = 0; i < n; i++)
		c[i].p = (float)(c[i].p / sum);
}

int32_t moe_sampler_sample(struct moe_sampler *s, const float *logits,
	const int32_t *history, size_t n_hist)
{
	const struct moe_sampler_params *p = &s->p;
	size_t n = s->n_vocab, from = n_hist > p->repeat_last_n ? n_hist - p->repeat_last_n : 0;
	struct cand *c = s->c;
	double r, acc = 0;

	for (uint32_t i = 0; i < s->n_vocab; i++)
		c[i] = (struct cand){ (int32_t)i, logits[i], 0 };
	if (p->repeat_penalty != 1.0f) {
		for (size_t i = from; i < n_hist; i++) {
			int32_t t = history[i];

			if (t < 0 || (uint32_t)t >= s->n_vocab || s->seen[t])
				continue;
			s->seen[t] = 1;
			c[t].logit = c[t].logit > 0 ? c[t].logit / p->repeat_penalty : c[t].logit * p->repeat_penalty;
		}
		for (size_t i = from; i < n_hist; i++)
			if (history[i] >= 0 && (uint32_t)history[i] < s->n_vocab)
				s->seen[history[i]] = 0;
	}
	if (p->temp <= 0) {
		size_t best = 0;

		for (size_t i = 1; i < n; i++)
			if (c[i].logit > c[best].logit)
				best = i;
		return c[best].id;
	}
	qsort(c, n, sizeof *c, by_logit);
	if (p->top_k > 0 && p->top_k < n)
		n = p->top_k;
	if (p->top_p < 1.0f) {
		double cum = 0;

		softmax(c, n, 1.0f);
		for (size_t i = 0; i < n; i++) {
			cum += c[i].p;
			if (cum >= p->top_p) {
				n = i + 1;
				break;
			}
		}
	}
	if (p->min_p > 0.0f) {
		softmax(c, n, 1.0f);
		for (size_t i = 1; i < n; i++)
			if (c[i].p < p->min_p * c[0].p) {
				n = i;
				break;
			}
	}
	softmax(c, n, p->temp);
	r = uniform01(s);
	for (size_t i = 0; i < n; i++) {
		acc += c[i].p;
		if (r < acc)
			return c[i].id;
	}
	return c[n - 1].id;
}
