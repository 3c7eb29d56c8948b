/* Internal: the inference state shared by infer.c, matmul.c, rope.c, attention.c and moe_block.c (not installed). */
#ifndef MOE_INFER_IMPL_H
#define MOE_INFER_IMPL_H

#include "infer.h"
#include "pool.h"

/* No fused multiply-adds: every product is rounded before it is added, as
 * in the ggml kernels the quantized paths reproduce (GCC contracts inside
 * target_clones functions even in ISO C mode; clang contracts by default). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* Work buffers hold n_batch rows; widths are the largest any layer needs. */
struct moe_infer {
	struct moe_error err;
	const struct moe_model *m;
	struct moe_pool *pool;
	uint32_t n_ctx, n_batch, top_k, pos;
	uint32_t n_moe;
	uint32_t *moe_layers;      /* (n_moe) model layer of each MoE layer */
	int32_t *moe_index;        /* (n_layer) MoE index of a layer, -1 if dense */
	uint32_t cur_n;            /* tokens of the last eval */
	/* KV cache */
	size_t k_row, v_row;       /* floats per position: n_head_kv*head_k, n_head_kv*head_v */
	float *kcache;             /* (n_layer, n_ctx, k_row) */
	float *vcache;             /* (n_layer, n_ctx, v_row) */
	/* residual stream and scratch, (n_batch, width) */
	float *x, *h, *o;          /* width n_embd: residual, normed input, block output */
	float *y;                  /* n_embd: an expert's or shared FFN's output */
	float *q;                  /* n_head*head_k */
	float *k, *v;              /* k_row, v_row (MLA: per-head K and V rows) */
	float *att;                /* n_head*head_v */
	float *qa;                 /* q_lora */
	float *ckv;                /* kv_lora + qk_rope */
	float *kvn;                /* kv_lora (normalised c_kv) */
	float *kvb;                /* n_head*(qk_nope+head_v) */
	float *g, *u;              /* ff_max */
	/* MoE */
	float *logit, *prob;       /* (n_batch, n_expert) */
	float *score;              /* (n_expert) selection scores, one token at a time */
	int32_t *sel;              /* (n_batch, top_k) */
	float *wsel;               /* (n_batch, top_k) */
	float *lse;                /* (n_batch) */
	uint32_t *grp_off;         /* (n_expert + 1) start of each expert's rows */
	uint32_t *grp_next;        /* (n_expert) fill cursor per expert */
	uint32_t *grp_row;         /* (n_batch * top_k) token*top_k + slot per row */
	float *xg;                 /* (n_batch, n_embd) inputs of one expert, gathered */
	float *eout;               /* (n_batch, top_k, n_embd) each chosen expert's output */
	/* routing record of the last eval */
	int32_t *rec_sel;          /* (n_moe, n_batch, top_k) */
	float *rec_w;              /* (n_moe, n_batch, top_k) */
	float *rec_prob;           /* (n_moe, n_batch, n_expert) */
	float *rec_lse;            /* (n_moe, n_batch) */
	/* activations converted for a weight type, n_batch * top_k rows */
	uint8_t *act;
	size_t act_bytes;
	float *f16tab;             /* (65536) F16 bit pattern -> F32 */
	int avx2;                  /* the CPU runs the AVX2 integer kernels */
	float *scratch;            /* (n_threads, scratch_n) per-thread */
	size_t scratch_n;
};

/* y (n, w->rows) = x (n, w->cols) . W[e]^T, threads over rows. */
void moe_matmul(struct moe_infer *s, const struct moe_mat *w, uint32_t e,
	const float *x, uint32_t n, float *y);
/* y = x / rms(x) * w over n values (w NULL: no weight); ggml's RMSNorm. */
void moe_rmsnorm(float *y, const float *x, const float *w, uint32_t n, float eps);
/* Rotates the first n_rot values of n_heads heads (head_stride apart)
 * starting at x, for position pos; tmp holds n_rot floats. */
void moe_rope(const struct moe_hparams *hp, float *x, uint32_t n_heads,
	size_t head_stride, uint32_t n_rot, uint32_t pos, float *tmp);
/* ggml's SiLU. */
float moe_silu(float x);
/* Attention block of layer il over n tokens at s->pos..: h -> out (n, n_embd). */
void moe_attention(struct moe_infer *s, uint32_t il, const float *h, uint32_t n, float *out);
/* FFN or MoE block of layer il: h -> out (n, n_embd). */
void moe_ffn(struct moe_infer *s, uint32_t il, const float *h, uint32_t n, float *out);

#endif
