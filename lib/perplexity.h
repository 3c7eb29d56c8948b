/* Perplexity of a token sequence the way llama-perplexity computes it: fixed chunks, second halves scored. */
#ifndef MOE_PERPLEXITY_H
#define MOE_PERPLEXITY_H

#include <stdint.h>

#include "infer.h"

/*
 * The sequence is cut into floor(n / n_ctx) chunks of n_ctx tokens (the
 * tail is dropped). Each chunk is evaluated from an empty cache with its
 * first token replaced by bos (when bos >= 0), and positions n_ctx/2 ..
 * n_ctx-2 add -log softmax(logits)[next token] to the sums. chunk[0] is
 * replaced during the call and restored before it returns. logits is the
 * caller's buffer of (min(n_ctx, n_batch), n_vocab) floats.
 */
struct moe_ppl {
	double nll, nll2;     /* sums of -log p and its square */
	uint64_t count;       /* scored positions */
};

int moe_perplexity_chunk(struct moe_infer *s, int32_t *chunk, uint32_t n_ctx,
	int32_t bos, float *logits, struct moe_ppl *acc);
/* exp(mean nll), and llama-perplexity's "+/-" figure (0 if undefined). */
double moe_ppl_value(const struct moe_ppl *a);
double moe_ppl_stderr(const struct moe_ppl *a);

#endif
