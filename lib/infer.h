/* CPU inference over a moe_model: batched forward pass with a KV cache, threads, and per-token routing records. */
#ifndef MOE_INFER_H
#define MOE_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

/*
 * A moe_infer is one sequence being evaluated: its KV cache (F32, sized
 * once for n_ctx positions), work buffers for up to n_batch tokens per
 * call, and a thread pool. Nothing is allocated after moe_infer_new().
 * The model must outlive the state. Evaluation follows llama.cpp's graph
 * for each family (see lib/infer.c); quantized weights multiply activations
 * quantized the way llama.cpp's x86 build does (lib/matmul.c).
 */

struct moe_infer_opts {
	int n_threads;       /* >= 1 */
	uint32_t n_ctx;      /* KV cache positions; 0 = min(model's, 4096) */
	uint32_t n_batch;    /* most tokens per moe_infer_eval call; 0 = 256 */
	uint32_t top_k;      /* experts per token; 0 = the model's */
};

/* Routing of one token in one MoE layer, as llama.cpp computes it. */
struct moe_route {
	const int32_t *selected;  /* (top_k) expert ids, descending selection score */
	const float *weights;     /* (top_k) gate weights applied to each expert */
	const float *probs;       /* (n_expert) softmax or sigmoid of the router logits */
	float lse;                /* log-sum-exp of the router logits */
};

struct moe_infer;

int moe_infer_new(struct moe_infer **out, const struct moe_model *m,
	const struct moe_infer_opts *o);
void moe_infer_free(struct moe_infer *s);
const char *moe_infer_errstr(const struct moe_infer *s);

/*
 * Evaluates n tokens (1..n_batch) at positions pos .. pos+n-1, appending
 * them to the cache. logits receives (n, n_vocab) floats when all_logits,
 * else (1, n_vocab) for the last token; it may be NULL.
 */
int moe_infer_eval(struct moe_infer *s, const int32_t *tokens, uint32_t n,
	float *logits, int all_logits);
/* Next position (tokens in the cache). */
uint32_t moe_infer_pos(const struct moe_infer *s);
/* Empties the cache (a new sequence). */
void moe_infer_reset(struct moe_infer *s);
uint32_t moe_infer_n_ctx(const struct moe_infer *s);
uint32_t moe_infer_n_batch(const struct moe_infer *s);
uint32_t moe_infer_top_k(const struct moe_infer *s);
uint32_t moe_infer_n_vocab(const struct moe_infer *s);

/* MoE layers in model order: count and model layer index of each. */
uint32_t moe_infer_n_moe(const struct moe_infer *s);
uint32_t moe_infer_moe_layer(const struct moe_infer *s, uint32_t i);
/* Routing of token tok (0-based within the last eval call) in MoE layer
 * i; valid until the next eval. */
int moe_infer_route(const struct moe_infer *s, uint32_t i, uint32_t tok,
	struct moe_route *r);

#endif
