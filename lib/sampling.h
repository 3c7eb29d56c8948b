/* Choosing the next token from logits: greedy, or repetition penalty, top-k, top-p, min-p and temperature then a seeded draw. */
#ifndef MOE_SAMPLING_H
#define MOE_SAMPLING_H

#include <stddef.h>
#include <stdint.h>

/*
 * The steps run in llama.cpp's default order: repetition penalty over the
 * last repeat_last_n tokens, top-k, top-p, min-p, temperature, draw. A
 * temperature <= 0 is greedy (argmax, lowest id on ties) after the
 * penalty. The sampler owns a candidate buffer sized for the vocabulary
 * and its random state; sampling allocates nothing.
 */

struct moe_sampler_params {
	float temp;             /* <= 0: greedy */
	uint32_t top_k;         /* 0 = off */
	float top_p;            /* 1 = off */
	float min_p;            /* 0 = off */
	float repeat_penalty;   /* 1 = off */
	uint32_t repeat_last_n; /* tokens of history the penalty looks at */
	uint64_t seed;
};

struct moe_sampler;

int moe_sampler_new(struct moe_sampler **out, const struct moe_sampler_params *p,
	uint32_t n_vocab);
void moe_sampler_free(struct moe_sampler *s);
/* Next token given logits (n_vocab) and the tokens so far (history,
 * oldest first). logits are not modified. */
int32_t moe_sampler_sample(struct moe_sampler *s, const float *logits,
	const int32_t *history, size_t n_hist);

#endif
