/* One description of an MoE model's architecture, built from config.json, GGUF metadata or tensors. */
#ifndef MOE_ARCH_H
#define MOE_ARCH_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ckpt.h"
#include "error.h"
#include "meta.h"

/*
 * A moe_arch is a caller-owned struct: moe_arch_init() empties it, a
 * builder fills it, moe_arch_release() frees the per-layer array. The
 * strings it holds (family, model_type) are copies it owns. Builders
 * leave the human detail of a failure in a->err (moe_arch_errstr()).
 *
 * Every width is in elements. A layer is what the checkpoint calls a
 * block; an encoder-decoder model lists its encoder blocks first.
 */

enum moe_attn_kind {
	MOE_ATTN_NONE = 0,  /* no token mixer */
	MOE_ATTN_MHA,       /* n_head_kv == n_head */
	MOE_ATTN_GQA,       /* n_head_kv < n_head (MQA when 1) */
	MOE_ATTN_MLA,       /* DeepSeek multi-head latent attention */
	MOE_ATTN_SSM,       /* state-space (Mamba) or linear attention (Gated DeltaNet) layer */
	MOE_ATTN_KIND_COUNT
};

enum moe_ffn_kind {
	MOE_FFN_NONE = 0,
	MOE_FFN_DENSE,
	MOE_FFN_MOE
};

enum moe_gating { MOE_GATE_SOFTMAX = 0, MOE_GATE_SIGMOID };

/* The sizes of one block that the accounting needs. */
struct moe_layer {
	enum moe_attn_kind attn;
	uint32_t n_head, n_head_kv;
	uint32_t head_dim;        /* q/k head width (MLA: qk_nope + qk_rope) */
	uint32_t head_dim_v;      /* v head width */
	uint32_t q_lora_rank;     /* MLA: 0 = plain q projection */
	uint32_t kv_lora_rank;    /* MLA: compressed kv width */
	uint32_t qk_rope_dim;     /* MLA: decoupled rope key width */
	uint32_t window;          /* sliding/chunked window, 0 = full context */
	uint32_t q_norm, k_norm;  /* widths of q/k norm weights, 0 = none */
	uint8_t qkv_bias, o_bias;
	uint8_t sinks;            /* one learnt sink logit per head (gpt-oss) */
	uint8_t q_gate;           /* q projection also yields an output gate (Qwen3-Next) */
	uint8_t cross_attn;       /* decoder block with encoder-decoder attention */
	uint32_t attn_experts;    /* JetMoE mixture of attention heads: experts (top-k below) */
	uint32_t attn_top_k;
	uint64_t mixer_params;    /* SSM/linear-attention params, per block */
	uint32_t n_norms;         /* d_model-wide norms in the block */
	enum moe_ffn_kind ffn;
	uint32_t d_ff;            /* dense FFN width */
	uint32_t n_expert, top_k; /* routed experts */
	uint32_t d_expert;        /* routed expert FFN width */
	uint32_t n_shared;        /* shared experts (reported count) */
	uint32_t d_shared;        /* total width of the always-on shared FFN */
	uint8_t shared_gate;      /* sigmoid gate on the shared expert (Qwen2-MoE) */
	uint8_t router_bias;      /* router has a bias vector */
	uint8_t score_bias;       /* score-correction bias (DeepSeek-V3 noaux_tc) */
	uint8_t expert_bias;      /* experts' projections have biases */
	uint8_t ffn_bias;         /* dense FFN projections have biases */
};

struct moe_arch {
	struct moe_error err;
	char *family;             /* normalised family, e.g. "deepseek_v3" */
	char *model_type;         /* as given (config model_type / GGUF arch) */
	const char *source;       /* "config", "gguf", "tensors" */
	uint32_t d_model;
	uint64_t vocab;           /* rows of the input embedding */
	uint64_t vocab_out;       /* rows of the output head */
	uint8_t tied;             /* head shares the embedding matrix */
	uint8_t gated;            /* FFNs have gate+up+down (else up+down) */
	uint8_t norm_bias;        /* norms are LayerNorm with bias */
	uint8_t final_norm;       /* norm before the head */
	uint8_t head_bias;        /* output head has a bias (PhiMoE) */
	uint8_t enc_dec;          /* encoder-decoder (Switch/T5) */
	uint32_t n_layers;        /* blocks of the main model */
	uint32_t n_enc_layers;    /* of which encoder blocks (enc_dec only) */
	uint32_t rel_buckets;     /* T5 relative position buckets (enc_dec) */
	struct moe_layer *layers; /* [n_layers] */
	uint32_t n_mtp;           /* multi-token-prediction modules */
	uint64_t vision_params;   /* vision tower, when known (else 0) */
	uint64_t ctx;             /* trained context length, 0 = unknown */
	/* routing, model-wide */
	enum moe_gating gating;
	uint8_t norm_topk;        /* renormalise the top-k weights */
	double routed_scale;      /* routed scaling factor (1 = none) */
	uint32_t n_group, topk_group; /* group-limited routing, 0 = none */
	/* what could not be determined (tensor-only builds), "; "-joined */
	char unknown[256];
};

void moe_arch_init(struct moe_arch *a);
void moe_arch_release(struct moe_arch *a);
const char *moe_arch_errstr(const struct moe_arch *a);

/* From a Hugging Face config.json object, dispatched on model_type.
 * MOE_EUNSUP names an unknown model_type and the supported list. */
int moe_arch_from_config(struct moe_arch *a, json_t *config);
/* From GGUF metadata (general.architecture + {arch}.* keys). tensors may be
 * NULL; when given, tensor presence settles what keys do not say (tied
 * head, biases, q/k norms). */
int moe_arch_from_gguf(struct moe_arch *a, const struct moe_meta *meta,
	const struct moe_tensor *tensors, size_t n);
/* From tensor names and shapes alone; a->unknown says what was guessed. */
int moe_arch_from_tensors(struct moe_arch *a, const struct moe_tensor *tensors,
	size_t n);
/* The best description a checkpoint offers: its config.json, else GGUF
 * metadata, else its tensors. */
int moe_arch_from_ckpt(struct moe_arch *a, const struct moe_ckpt *ck);

/* First layer with attention (moe 0) or with routed experts (moe 1);
 * NULL if none. */
const struct moe_layer *moe_arch_first_layer(const struct moe_arch *a, int moe);

enum moe_count { MOE_COUNT_MOE, MOE_COUNT_DENSE, MOE_COUNT_SSM, MOE_COUNT_WINDOWED };
/* Layers with an MoE / dense FFN, a state-space mixer, a window. */
uint32_t moe_arch_count(const struct moe_arch *a, enum moe_count what);

/* The description as a JSON object (documented in moe-inspect(1),
 * member "architecture"); the caller owns the reference. */
json_t *moe_arch_to_json(const struct moe_arch *a);

/* Comma-separated model_type values moe_arch_from_config accepts. */
const char *moe_arch_supported(void);
const char *moe_attn_kind_name(enum moe_attn_kind k);

#endif
