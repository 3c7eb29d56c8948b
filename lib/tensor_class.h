/* Classifies a tensor by its name (Hugging Face or GGUF spelling) into a model component. */
#ifndef MOE_TENSOR_CLASS_H
#define MOE_TENSOR_CLASS_H

/*
 * Pure functions over names: nothing is allocated or kept. The accounting
 * (params.c), the quantizer and the converter share this one table so they
 * agree on what a router, an expert or a norm is.
 */

enum moe_comp {
	MOE_COMP_OTHER = 0,
	MOE_COMP_EMBED,     /* input token embedding (and T5's shared table) */
	MOE_COMP_ATTN,      /* token mixer: attention projections, MLA, state-space */
	MOE_COMP_NORM,      /* every normalisation weight/bias */
	MOE_COMP_ROUTER,    /* gate, its bias, score-correction bias, shared-expert gate */
	MOE_COMP_EXPERTS,   /* routed experts */
	MOE_COMP_SHARED,    /* always-active shared experts */
	MOE_COMP_DENSE,     /* FFN of a dense (non-MoE) layer */
	MOE_COMP_HEAD,      /* output projection (LM head) */
	MOE_COMP_MTP,       /* multi-token-prediction modules */
	MOE_COMP_VISION,    /* vision tower and multimodal projector */
	MOE_COMP_COUNT
};

/* What the tensor holds besides plain weights. */
enum moe_tpart {
	MOE_TP_WEIGHT = 0,
	MOE_TP_BIAS,
	MOE_TP_SCALE,       /* quantisation scales (FP8 *_scale_inv, MXFP4 *_scales): not parameters */
	MOE_TP_PACKED4      /* MXFP4 *_blocks: two 4-bit parameters per byte */
};

struct moe_tclass {
	enum moe_comp comp;
	enum moe_tpart part;
	int layer;     /* block index, -1 outside blocks */
	int expert;    /* expert index for per-expert tensors, else -1 */
	int stacked;   /* 1: holds all experts of a layer (GGUF *_exps, fused HF) */
	int decoder;   /* 1: in the decoder stack of an encoder-decoder model */
};

/* Fills out for name. Returns 0 when the name was recognised, MOE_ENOENT
 * when it was not (out is then MOE_COMP_OTHER with the layer it found). */
int moe_tensor_classify(const char *name, struct moe_tclass *out);

/* "embedding", "attention", "norm", "router", "routed_experts",
 * "shared_experts", "dense_ffn", "output_head", "mtp", "vision", "other". */
const char *moe_comp_name(enum moe_comp c);

#endif
