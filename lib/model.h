/* A loaded MoE language model: hyperparameters and zero-copy weight views over a GGUF checkpoint. */
#ifndef MOE_MODEL_H
#define MOE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt.h"
#include "dtype.h"
#include "error.h"

/*
 * moe_model_open() opens a checkpoint, reads the hyperparameters of one of
 * the families llama.cpp runs (llama with experts = Mixtral, qwen2moe,
 * qwen3moe, olmoe, granitemoe, deepseek, deepseek2) from its GGUF metadata, and
 * points every weight at the mapped file: nothing is copied except 1-D
 * vectors stored in a narrow float type, which are widened to F32 once.
 * The model owns its checkpoint; every pointer it hands out lives until
 * moe_model_free(). After opening, the model is read-only and may be shared
 * by several moe_infer states (and threads).
 */

enum moe_family {
	MOE_FAM_LLAMA = 1,   /* Mixtral layout */
	MOE_FAM_QWEN2MOE,
	MOE_FAM_QWEN3MOE,
	MOE_FAM_OLMOE,
	MOE_FAM_GRANITEMOE,
	MOE_FAM_DEEPSEEK,    /* DeepSeekMoE v1 */
	MOE_FAM_DEEPSEEK2    /* V2, V2-Lite, V3 (MLA) */
};

enum moe_route_gate { MOE_ROUTE_SOFTMAX = 0, MOE_ROUTE_SIGMOID = 1 };

/* A weight matrix (or a stack of n_mat of them, e.g. experts) of any dtype
 * with a row kernel; rows are contiguous, row_bytes apart. */
struct moe_mat {
	enum moe_dtype dt;
	const uint8_t *data;   /* (n_mat, rows, cols) */
	uint32_t n_mat, rows, cols;
	size_t row_bytes;      /* bytes of one row of cols values */
	size_t mat_bytes;      /* rows * row_bytes */
};

/* Hyperparameters with llama.cpp's meaning; widths in elements. */
struct moe_hparams {
	enum moe_family family;
	const char *arch;            /* general.architecture (owned by the model) */
	uint32_t n_layer, n_embd, n_vocab;
	uint32_t n_head, n_head_kv;
	uint32_t head_k, head_v;     /* per-head q/k and v widths */
	uint32_t n_ctx_train;
	float eps;                   /* RMSNorm epsilon */
	/* RoPE */
	uint32_t n_rot;              /* rotated dims per head */
	int rope_neox;               /* pairs (i, i + n_rot/2) instead of (2i, 2i+1) */
	int qk_norm_per_head;        /* q/k RMSNorm per head (qwen3moe), else over the whole projection (olmoe) */
	float rope_base, freq_scale, ext_factor, attn_factor;
	float beta_fast, beta_slow;
	uint32_t n_ctx_orig;         /* YaRN original context */
	float kq_scale;              /* attention logit scale */
	/* FFN / MoE */
	uint32_t n_ff;               /* dense FFN width */
	uint32_t n_dense_lead;       /* leading dense layers (deepseek) */
	uint32_t n_expert, n_expert_used, n_ff_exp;
	uint32_t n_ff_shexp;         /* width of the shared FFN, 0 = none */
	enum moe_route_gate gating;
	int norm_topk;               /* renormalise the chosen weights */
	float weights_scale;         /* applied when != 1 (family rule) */
	uint32_t n_group, topk_group;/* group-limited routing, 0 = none */
	/* MLA (deepseek2) */
	uint32_t q_lora, kv_lora, qk_nope, qk_rope;
	/* granitemoe multipliers (1 elsewhere) */
	float embd_scale, residual_scale, logit_scale;
};

/* One block's weights; absent ones have data == NULL / NULL vectors. */
struct moe_model_layer {
	const float *attn_norm;      /* (n_embd) */
	struct moe_mat wq;           /* (n_head*head_k, n_embd); MLA lite */
	struct moe_mat wk, wv;       /* (n_head_kv*head_k|v, n_embd) */
	const float *bq, *bk, *bv;   /* qwen2moe biases */
	const float *q_norm, *k_norm;/* olmoe: (n_head*head_k), qwen3moe: (head_k) */
	struct moe_mat wq_a;         /* (q_lora, n_embd) */
	const float *q_a_norm;       /* (q_lora) */
	struct moe_mat wq_b;         /* (n_head*head_k, q_lora) */
	struct moe_mat wkv_a;        /* (kv_lora + qk_rope, n_embd) */
	const float *kv_a_norm;      /* (kv_lora) */
	struct moe_mat wkv_b;        /* (n_head*(qk_nope+head_v), kv_lora) */
	struct moe_mat wo;           /* (n_embd, n_head*head_v) */
	const float *ffn_norm;       /* (n_embd) */
	int is_moe;
	struct moe_mat gate, up, down;          /* dense: (n_ff, n_embd), (n_embd, n_ff) */
	struct moe_mat router;                  /* (n_expert, n_embd) */
	const float *probs_bias;                /* (n_expert) exp_probs_b, choosing only */
	struct moe_mat gate_exps, up_exps;      /* (n_expert, n_ff_exp, n_embd) */
	struct moe_mat down_exps;               /* (n_expert, n_embd, n_ff_exp) */
	struct moe_mat gate_sh, up_sh, down_sh; /* (n_ff_shexp, n_embd), (n_embd, n_ff_shexp) */
	const float *sh_gate;                   /* (n_embd) qwen2moe shared-expert gate */
};

struct moe_model {
	struct moe_error err;
	struct moe_ckpt *ck;
	struct moe_hparams hp;
	struct moe_mat tok_embd;     /* (n_vocab, n_embd) */
	const float *output_norm;    /* (n_embd) */
	struct moe_mat output;       /* (n_vocab, n_embd); token_embd when tied */
	struct moe_model_layer *layers; /* [n_layer] */
	uint64_t bytes_per_token;    /* weight bytes read per decoded token */
	void **owned;                /* widened vectors */
	size_t n_owned;
};

int moe_model_new(struct moe_model **out);
void moe_model_free(struct moe_model *m);
/* Opens path (anything moe_ckpt_open accepts, mappable, with GGUF
 * metadata). Errors name the missing or mis-shaped tensor or key. */
int moe_model_open(struct moe_model *m, const char *path);
/* Same over a checkpoint the caller opened (e.g. moe_ckpt_open_memory);
 * the model takes it over, also on failure. */
int moe_model_open_ckpt(struct moe_model *m, struct moe_ckpt *ck);
const char *moe_model_errstr(const struct moe_model *m);

/* Row r of matrix e of w. */
static inline const void *moe_mat_row(const struct moe_mat *w, uint32_t e, uint32_t r)
{
	return w->data + (size_t)e * w->mat_bytes + (size_t)r * w->row_bytes;
}

/* Name of a family as llama.cpp spells its architecture. */
const char *moe_family_name(enum moe_family f);

#endif
