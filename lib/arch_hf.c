/* Per-family readers of Hugging Face config.json into a moe_arch, dispatched by model_type. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch_impl.h"

/* Reads a non-negative integral number; 1 if present, 0 if absent or null,
 * -1 if present but not a non-negative integer below 2^53. */
static int jnum_u(json_t *o, const char *key, uint64_t *out)
{
	json_t *v = json_object_get(o, key);
	double d;

	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return -1;
		*out = (uint64_t)json_integer_value(v);
		return 1;
	}
	if (!json_is_real(v))
		return -1;
	d = json_real_value(v);
	if (!(d >= 0 && d < 9007199254740992.0) || d != (double)(uint64_t)d)
		return -1;
	*out = (uint64_t)d;
	return 1;
}

static double jnum_f(json_t *o, const char *key, double dflt)
{
	json_t *v = json_object_get(o, key);

	return json_is_number(v) ? json_number_value(v) : dflt;
}

static int jbool(json_t *o, const char *key, int dflt)
{
	json_t *v = json_object_get(o, key);

	if (json_is_boolean(v))
		return json_is_true(v);
	if (json_is_integer(v))
		return json_integer_value(v) != 0;
	return dflt;
}

static const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* First present key of a NULL-terminated list; dflt when none is. */
static int get_u32(struct moe_arch *a, json_t *c, const char *const *keys,
	uint64_t dflt, int required, uint32_t *out)
{
	uint64_t v;
	int r;

	for (; *keys; keys++) {
		if ((r = jnum_u(c, *keys, &v)) < 0)
			return moe_error_set(&a->err, MOE_EFORMAT,
				"config.json: '%s' is not a non-negative integer", *keys);
		if (r == 1) {
			if (v > UINT32_MAX)
				return moe_error_set(&a->err, MOE_ERANGE,
					"config.json: '%s' is out of range", *keys);
			*out = (uint32_t)v;
			return 0;
		}
		if (keys[1] == NULL && required)
			return moe_error_set(&a->err, MOE_EFORMAT,
				"config.json: missing '%s'", *keys);
	}
	*out = (uint32_t)dflt;
	return 0;
}

/* Widths computed from two fields saturate; moe_arch_finish rejects them. */
static uint32_t sat32(uint64_t v)
{
	return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

#define KEYS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define U32(c, out, dflt, req, ...) \
	do { if ((rc = get_u32(a, (c), KEYS(__VA_ARGS__), (dflt), (req), (out))) != 0) return rc; } while (0)

/* Sizes every decoder-only family shares; layers allocated and filled
 * with a plain attention + FFN-less layout the family then adjusts. */
static int base(struct moe_arch *a, json_t *c, int tie_default)
{
	uint32_t nl, nh, nkv, hd, vocab;
	uint64_t ctx = 0;
	uint32_t i;
	int rc;

	U32(c, &a->d_model, 0, 1, "d_model", "n_embd", "hidden_size");
	U32(c, &nl, 0, 1, "n_layers", "n_layer", "num_layers", "num_hidden_layers");
	U32(c, &nh, 0, 1, "n_heads", "n_head", "num_heads", "num_attention_heads");
	U32(c, &nkv, nh, 0, "num_key_value_heads");
	if (nh == 0 || a->d_model == 0)
		return moe_error_set(&a->err, MOE_EFORMAT,
			"config.json: hidden size and head count must be positive");
	U32(c, &hd, a->d_model / nh, 0, "head_dim", "d_kv", "kv_channels",
		"attention_head_dim");
	U32(c, &vocab, 0, 1, "vocab_size");
	if (jnum_u(c, "max_position_embeddings", &ctx) != 1 &&
		jnum_u(c, "max_seq_len", &ctx) != 1 && jnum_u(c, "n_positions", &ctx) != 1)
		ctx = 0;
	a->ctx = ctx;
	a->vocab = a->vocab_out = vocab;
	a->tied = (uint8_t)jbool(c, "tie_word_embeddings", tie_default);
	a->gated = 1;
	a->final_norm = 1;
	a->routed_scale = 1.0;
	if ((rc = moe_arch_alloc_layers(a, nl)) != 0)
		return rc;
	for (i = 0; i < nl; i++) {
		struct moe_layer *L = &a->layers[i];

		L->n_head = nh;
		L->n_head_kv = nkv ? nkv : nh;
		L->head_dim = L->head_dim_v = hd;
		L->n_norms = 2;
		L->attn = MOE_ATTN_GQA;
	}
	return 0;
}

/* Routed experts on layer L. */
static int set_moe(struct moe_arch *a, struct moe_layer *L,
	uint32_t n_expert, uint32_t top_k, uint32_t d_expert)
{
	if (n_expert == 0 || top_k == 0 || top_k > n_expert)
		return moe_error_set(&a->err, MOE_EFORMAT,
			"config.json: bad expert counts (%u experts, top-%u)",
			n_expert, top_k);
	L->ffn = MOE_FFN_MOE;
	L->n_expert = n_expert;
	L->top_k = top_k;
	L->d_expert = d_expert;
	return 0;
}

static void set_dense(struct moe_layer *L, uint32_t d_ff)
{
	L->ffn = MOE_FFN_DENSE;
	L->d_ff = d_ff;
}

static int mixtral_like_keys(struct moe_arch *a, json_t *c, const char *ekey,
	int tie_default)
{
	uint32_t e, k, dff, win, i;
	int rc;

	if ((rc = base(a, c, tie_default)) != 0)
		return rc;
	U32(c, &e, 0, 1, ekey);
	U32(c, &k, 2, 0, "num_experts_per_tok");
	U32(c, &dff, 0, 1, "intermediate_size");
	U32(c, &win, 0, 0, "sliding_window");
	a->norm_topk = 1;
	for (i = 0; i < a->n_layers; i++) {
		a->layers[i].window = win;
		if ((rc = set_moe(a, &a->layers[i], e, k, dff)) != 0)
			return rc;
	}
	return 0;
}

static int mixtral_like(struct moe_arch *a, json_t *c)
{
	return mixtral_like_keys(a, c, "num_local_experts", 0);
}

static int fam_mixtral(struct moe_arch *a, json_t *c)
{
	return mixtral_like(a, c);
}

static int fam_phimoe(struct moe_arch *a, json_t *c)
{
	uint32_t i;
	int rc, bias;

	if ((rc = mixtral_like(a, c)) != 0)
		return rc;
	bias = jbool(c, "attention_bias", 1);
	a->norm_bias = 1;
	a->head_bias = (uint8_t)jbool(c, "lm_head_bias", 1);
	for (i = 0; i < a->n_layers; i++)
		a->layers[i].qkv_bias = a->layers[i].o_bias = (uint8_t)bias;
	return 0;
}

static int fam_granitemoe(struct moe_arch *a, json_t *c)
{
	uint32_t i;
	int rc;

	if ((rc = base(a, c, 1)) != 0)
		return rc;
	{
		uint32_t e, k, dff;

		U32(c, &e, 0, 1, "num_local_experts");
		U32(c, &k, 0, 1, "num_experts_per_tok");
		U32(c, &dff, 0, 1, "intermediate_size");
		/* softmax over the top-k logits: weights sum to one */
		a->norm_topk = 1;
		for (i = 0; i < a->n_layers; i++) {
			a->layers[i].qkv_bias = a->layers[i].o_bias =
				(uint8_t)jbool(c, "attention_bias", 0);
			if ((rc = set_moe(a, &a->layers[i], e, k, dff)) != 0)
				return rc;
		}
	}
	return 0;
}

static int fam_olmoe(struct moe_arch *a, json_t *c)
{
	uint32_t e, k, dff, i;
	int rc;

	if ((rc = base(a, c, 0)) != 0)
		return rc;
	U32(c, &e, 0, 1, "num_experts");
	U32(c, &k, 0, 1, "num_experts_per_tok");
	U32(c, &dff, 0, 1, "intermediate_size");
	a->norm_topk = (uint8_t)jbool(c, "norm_topk_prob", 0);
	for (i = 0; i < a->n_layers; i++) {
		struct moe_layer *L = &a->layers[i];

		/* OLMoE normalises the whole q and k projections, not per head */
		L->q_norm = L->n_head * L->head_dim;
		L->k_norm = L->n_head_kv * L->head_dim;
		L->qkv_bias = L->o_bias = (uint8_t)jbool(c, "attention_bias", 0);
		if ((rc = set_moe(a, L, e, k, dff)) != 0)
			return rc;
	}
	return 0;
}

/* Is layer i listed in the JSON integer array `arr`? */
static int in_list(json_t *arr, uint32_t i)
{
	size_t j;
	json_t *v;

	json_array_foreach(arr, j, v)
		if (json_is_integer(v) && json_integer_value(v) == (json_int_t)i)
			return 1;
	return 0;
}

/* Qwen2-MoE / Qwen3-MoE: MoE every decoder_sparse_step unless listed in
 * mlp_only_layers; Qwen2 adds a gated shared expert and qkv biases. */
static int qwen_moe(struct moe_arch *a, json_t *c, int v3)
{
	uint32_t e, k, dmoe, dff, dsh, step, i;
	json_t *mlp_only = json_object_get(c, "mlp_only_layers");
	int rc;

	if ((rc = base(a, c, 0)) != 0)
		return rc;
	U32(c, &e, 0, 1, "num_experts");
	U32(c, &k, 0, 1, "num_experts_per_tok");
	U32(c, &dmoe, 0, 1, "moe_intermediate_size");
	U32(c, &dff, 0, 0, "intermediate_size");
	U32(c, &dsh, 0, 0, "shared_expert_intermediate_size");
	U32(c, &step, 1, 0, "decoder_sparse_step");
	a->norm_topk = (uint8_t)jbool(c, "norm_topk_prob", 0);
	for (i = 0; i < a->n_layers; i++) {
		struct moe_layer *L = &a->layers[i];

		L->qkv_bias = (uint8_t)(v3 ? jbool(c, "attention_bias", 0) : 1);
		if (v3)
			L->q_norm = L->k_norm = L->head_dim;
		if (!in_list(mlp_only, i) && step > 0 && (i + 1) % step == 0) {
			if ((rc = set_moe(a, L, e, k, dmoe)) != 0)
				return rc;
			if (dsh > 0) {
				L->n_shared = 1;
				L->d_shared = dsh;
				L->shared_gate = 1;
			}
		} else
			set_dense(L, dff);
	}
	return 0;
}

static int fam_qwen2_moe(struct moe_arch *a, json_t *c)
{
	return qwen_moe(a, c, 0);
}

static int fam_qwen3_moe(struct moe_arch *a, json_t *c)
{
	return qwen_moe(a, c, 1);
}

/* Qwen3-Next: every full_attention_interval-th layer is gated full
 * attention, the others Gated DeltaNet linear attention; MoE everywhere
 * with a gated shared expert. */
static int fam_qwen3_next(struct moe_arch *a, json_t *c)
{
	uint32_t every, nk, nv, dk, dv, conv, i;
	int rc;

	if ((rc = qwen_moe(a, c, 1)) != 0)
		return rc;
	U32(c, &every, 4, 0, "full_attention_interval");
	U32(c, &nk, 0, 1, "linear_num_key_heads");
	U32(c, &nv, 0, 1, "linear_num_value_heads");
	U32(c, &dk, 0, 1, "linear_key_head_dim");
	U32(c, &dv, 0, 1, "linear_value_head_dim");
	U32(c, &conv, 4, 0, "linear_conv_kernel_dim");
	if (every == 0 || nk > 65536 || nv > 65536 || dk > 65536 || dv > 65536 || conv > 1024)
		return moe_error_set(&a->err, MOE_ERANGE, "config.json: linear attention sizes out of range");
	for (i = 0; i < a->n_layers; i++) {
		struct moe_layer *L = &a->layers[i];
		uint64_t d = a->d_model, key = (uint64_t)nk * dk, val = (uint64_t)nv * dv;

		if ((i + 1) % every == 0) {
			L->q_gate = 1;
			continue;
		}
		/* in_proj_qkvz, in_proj_ba, depthwise conv over q/k/v, dt_bias,
		 * A_log, the gated head norm and out_proj */
		L->attn = MOE_ATTN_SSM;
		L->q_norm = L->k_norm = 0;
		L->mixer_params = d * (2 * key + 2 * val) + d * 2 * nv + (2 * key + val) * conv +
			2 * (uint64_t)nv + dv + val * d;
	}
	return 0;
}

/* DeepSeek-MoE (v1), V2, V3, Kimi-K2 and GLM-4.5 share the layout:
 * first_k_dense_replace dense layers, then MoE every moe_layer_freq with
 * shared experts of the expert width. */
static int deepseek_like(struct moe_arch *a, json_t *c, int mla, int glm)
{
	uint32_t e, k, dmoe, dff, nsh, kdense, freq, i, ql, kvl, nope, rope, vdim;
	const char *score = jstr(c, "scoring_func");
	const char *method = jstr(c, "topk_method");
	int rc;

	if ((rc = base(a, c, 0)) != 0)
		return rc;
	U32(c, &e, 0, 1, "n_routed_experts");
	U32(c, &k, 0, 1, "num_experts_per_tok");
	U32(c, &dmoe, 0, 1, "moe_intermediate_size");
	U32(c, &dff, 0, 1, "intermediate_size");
	U32(c, &nsh, 0, 0, "n_shared_experts");
	U32(c, &kdense, 0, 0, "first_k_dense_replace");
	U32(c, &freq, 1, 0, "moe_layer_freq");
	U32(c, &a->n_mtp, 0, 0, "num_nextn_predict_layers");
	U32(c, &a->n_group, 0, 0, "n_group");
	U32(c, &a->topk_group, 0, 0, "topk_group");
	U32(c, &ql, 0, 0, "q_lora_rank");
	U32(c, &kvl, 0, mla, "kv_lora_rank");
	U32(c, &nope, 0, mla, "qk_nope_head_dim");
	U32(c, &rope, 0, mla, "qk_rope_head_dim");
	U32(c, &vdim, 0, mla, "v_head_dim");
	a->gating = (score && strcmp(score, "sigmoid") == 0) || glm ?
		MOE_GATE_SIGMOID : MOE_GATE_SOFTMAX;
	a->norm_topk = (uint8_t)jbool(c, "norm_topk_prob", 0);
	a->routed_scale = jnum_f(c, "routed_scaling_factor", 1.0);
	if (a->n_group <= 1)
		a->n_group = a->topk_group = 0;
	for (i = 0; i < a->n_layers; i++) {
		struct moe_layer *L = &a->layers[i];

		if (mla) {
			L->attn = MOE_ATTN_MLA;
			L->q_lora_rank = ql;
			L->kv_lora_rank = kvl;
			L->qk_rope_dim = rope;
			L->head_dim = sat32((uint64_t)nope + rope);
			L->head_dim_v = vdim;
			L->n_head_kv = L->n_head;
		}
		if (glm) {
			L->qkv_bias = (uint8_t)jbool(c, "attention_bias", 0);
			if (jbool(c, "use_qk_norm", 0))
				L->q_norm = L->k_norm = L->head_dim;
		}
		if (i >= kdense && freq > 0 && i % freq == 0) {
			if ((rc = set_moe(a, L, e, k, dmoe)) != 0)
				return rc;
			L->n_shared = nsh;
			L->d_shared = sat32((uint64_t)nsh * dmoe);
			L->score_bias = (method && strcmp(method, "noaux_tc") == 0) || glm;
		} else
			set_dense(L, dff);
	}
	return 0;
}

static int fam_deepseek(struct moe_arch *a, json_t *c)
{
	return deepseek_like(a, c, 0, 0);
}

static int fam_deepseek_v2(struct moe_arch *a, json_t *c)
{
	return deepseek_like(a, c, 1, 0);
}

/* DeepSeek's own inference config (inference/configs/config_*.json):
 * the same model under other key names; renamed, then read as HF. */
static int fam_deepseek_infer(struct moe_arch *a, json_t *c)
{
	static const char *const ren[][2] = {
		{ "dim", "hidden_size" }, { "inter_dim", "intermediate_size" },
		{ "moe_inter_dim", "moe_intermediate_size" }, { "n_layers", "num_hidden_layers" },
		{ "n_dense_layers", "first_k_dense_replace" }, { "n_heads", "num_attention_heads" },
		{ "n_activated_experts", "num_experts_per_tok" }, { "n_expert_groups", "n_group" },
		{ "n_limited_groups", "topk_group" }, { "route_scale", "routed_scaling_factor" },
		{ "score_func", "scoring_func" },
	};
	json_t *h = json_deep_copy(c);
	const char *score;
	size_t i;
	int rc;

	if (h == NULL)
		return moe_error_set(&a->err, MOE_ENOMEM, "out of memory");
	for (i = 0; i < sizeof ren / sizeof ren[0]; i++) {
		json_t *v = json_object_get(h, ren[i][0]);

		if (v && json_object_set(h, ren[i][1], v) != 0) {
			json_decref(h);
			return moe_error_set(&a->err, MOE_ENOMEM, "out of memory");
		}
	}
	score = json_string_value(json_object_get(h, "scoring_func"));
	if (score && strcmp(score, "sigmoid") == 0)
		json_object_set_new(h, "topk_method", json_string("noaux_tc"));
	json_object_set_new(h, "norm_topk_prob", json_boolean(score && strcmp(score, "sigmoid") == 0));
	rc = deepseek_like(a, h, 1, 0);
	json_decref(h);
	return rc;
}

static int fam_glm4_moe(struct moe_arch *a, json_t *c)
{
	return deepseek_like(a, c, 0, 1);
}

/* Llama 4: settings live in text_config; MoE on every
 * interleave_moe_layer_step-th layer with one shared expert; three of
 * four layers use chunked attention. */
static int fam_llama4(struct moe_arch *a, json_t *top)
{
	json_t *c = json_object_get(top, "text_config");
	json_t *v = json_object_get(top, "vision_config");
	uint32_t e, k, dmoe, dmlp, step, chunk, i;
	int rc;

	if (!json_is_object(c))
		c = top;
	if ((rc = base(a, c, 0)) != 0)
		return rc;
	U32(c, &e, 0, 1, "num_local_experts");
	U32(c, &k, 1, 0, "num_experts_per_tok");
	U32(c, &dmoe, 0, 1, "intermediate_size");
	U32(c, &dmlp, dmoe, 0, "intermediate_size_mlp");
	U32(c, &step, 1, 0, "interleave_moe_layer_step");
	U32(c, &chunk, 0, 0, "attention_chunk_size");
	a->gating = MOE_GATE_SIGMOID;
	for (i = 0; i < a->n_layers; i++) {
		struct moe_layer *L = &a->layers[i];

		if ((i + 1) % 4 != 0)
			L->window = chunk;
		if (step > 0 && (i + 1) % step == 0) {
			if ((rc = set_moe(a, L, e, k, dmoe)) != 0)
				return rc;
			L->n_shared = 1;
			L->d_shared = dmoe;
		} else
			set_dense(L, dmlp);
	}
	if (json_is_object(v)) {
		/* Llama4VisionModel: patch embedding, class/position embeddings,
		 * pre/post LayerNorms, ViT blocks with biased projections, a
		 * pixel-shuffle MLP adapter and the projector into the text model. */
		uint32_t d, n, ff, patch, img, proj, pdim, ps;
		uint64_t np, blk, vp;
		double ratio;

		U32(v, &d, 0, 1, "hidden_size");
		U32(v, &n, 0, 1, "num_hidden_layers");
		U32(v, &ff, 0, 1, "intermediate_size");
		U32(v, &patch, 14, 0, "patch_size");
		U32(v, &img, 336, 0, "image_size");
		U32(v, &proj, 0, 1, "projector_output_dim");
		U32(v, &pdim, 0, 1, "projector_input_dim");
		U32(v, &ps, 3, 0, "num_channels");
		ratio = jnum_f(v, "pixel_shuffle_ratio", 0.5);
		if (patch == 0 || !(ratio >= 0.01 && ratio <= 1) || n > MOE_ARCH_MAX_LAYERS ||
			d > MOE_ARCH_MAX_WIDTH || ff > MOE_ARCH_MAX_WIDTH || img > 65536 ||
			patch > img || proj > MOE_ARCH_MAX_WIDTH || pdim > MOE_ARCH_MAX_WIDTH ||
			ps > 64)
			return moe_error_set(&a->err, MOE_EFORMAT,
				"config.json: bad vision_config");
		np = (uint64_t)(img / patch) * (img / patch) + 1;
		blk = 4 * ((uint64_t)d * d + d) + (uint64_t)d * ff + ff +
			(uint64_t)ff * d + d + 4 * (uint64_t)d;
		vp = (uint64_t)ps * patch * patch * d + d + np * d + 4 * (uint64_t)d +
			n * blk;
		{
			uint64_t in = (uint64_t)((double)d / (ratio * ratio) + 0.5);

			vp += in * pdim + (uint64_t)pdim * proj;
		}
		vp += (uint64_t)proj * a->d_model;
		a->vision_params = vp;
	}
	return 0;
}

/* gpt-oss: biased attention with per-head sinks, alternating sliding and
 * full attention, biased experts with a fused gate/up projection. */
static int fam_gpt_oss(struct moe_arch *a, json_t *c)
{
	json_t *types = json_object_get(c, "layer_types");
	uint32_t e, k, dff, win, i;
	int rc;

	if ((rc = base(a, c, 0)) != 0)
		return rc;
	U32(c, &e, 0, 1, "num_local_experts");
	U32(c, &k, 0, 1, "num_experts_per_tok", "experts_per_token");
	U32(c, &dff, 0, 1, "intermediate_size");
	U32(c, &win, 0, 0, "sliding_window");
	a->norm_topk = 1;   /* softmax over the top-k logits */
	for (i = 0; i < a->n_layers; i++) {
		struct moe_layer *L = &a->layers[i];
		const char *t = json_string_value(json_array_get(types, i));

		L->qkv_bias = L->o_bias = L->sinks = 1;
		if (t ? strcmp(t, "sliding_attention") == 0 : i % 2 == 0)
			L->window = win;
		if ((rc = set_moe(a, L, e, k, dff)) != 0)
			return rc;
		L->router_bias = L->expert_bias = 1;
	}
	return 0;
}

/* DBRX nests attention and FFN settings; LayerNorm without bias, fused qkv. */
static int fam_dbrx(struct moe_arch *a, json_t *c)
{
	json_t *at = json_object_get(c, "attn_config");
	json_t *ff = json_object_get(c, "ffn_config");
	uint32_t kv, e, k, dff, i;
	int rc;

	if (!json_is_object(at) || !json_is_object(ff))
		return moe_error_set(&a->err, MOE_EFORMAT,
			"config.json: dbrx needs attn_config and ffn_config objects");
	if ((rc = base(a, c, 0)) != 0)
		return rc;
	U32(at, &kv, 0, 1, "kv_n_heads");
	U32(ff, &e, 0, 1, "moe_num_experts");
	U32(ff, &k, 0, 1, "moe_top_k");
	U32(ff, &dff, 0, 1, "ffn_hidden_size");
	a->norm_topk = 1;
	for (i = 0; i < a->n_layers; i++) {
		a->layers[i].n_head_kv = kv;
		if ((rc = set_moe(a, &a->layers[i], e, k, dff)) != 0)
			return rc;
	}
	return 0;
}

/* JetMoE: mixture of attention heads (query/output experts, shared kv
 * projection) and an MoE FFN, both with an always-on output bias. */
static int fam_jetmoe(struct moe_arch *a, json_t *c)
{
	uint32_t e, k, dff, i;
	int rc;

	if ((rc = base(a, c, 1)) != 0)
		return rc;
	U32(c, &e, 0, 1, "moe_num_experts", "num_local_experts");
	U32(c, &k, 0, 1, "moe_top_k", "num_experts_per_tok");
	U32(c, &dff, 0, 1, "ffn_hidden_size", "intermediate_size");
	a->gated = (uint8_t)jbool(c, "glu", 1);
	for (i = 0; i < a->n_layers; i++) {
		struct moe_layer *L = &a->layers[i];

		L->attn_experts = e;
		L->attn_top_k = k;
		if ((rc = set_moe(a, L, e, k, dff)) != 0)
			return rc;
	}
	return 0;
}

/* Jamba: Mamba layers except every attn_layer_period-th; MoE every
 * expert_layer_period-th layer. */
static int fam_jamba(struct moe_arch *a, json_t *c)
{
	uint32_t e, k, dff, ap, ao, ep, eo, dconv, dstate, dtrank, expand, i;
	int rc, cbias, pbias;

	if ((rc = base(a, c, 0)) != 0)
		return rc;
	U32(c, &e, 0, 1, "num_experts");
	U32(c, &k, 0, 1, "num_experts_per_tok");
	U32(c, &dff, 0, 1, "intermediate_size");
	U32(c, &ap, 8, 0, "attn_layer_period");
	U32(c, &ao, 4, 0, "attn_layer_offset");
	U32(c, &ep, 2, 0, "expert_layer_period");
	U32(c, &eo, 1, 0, "expert_layer_offset");
	U32(c, &dconv, 4, 0, "mamba_d_conv");
	U32(c, &dstate, 16, 0, "mamba_d_state");
	U32(c, &dtrank, (a->d_model + 15) / 16, 0, "mamba_dt_rank");
	U32(c, &expand, 2, 0, "mamba_expand");
	if (expand > 64 || dconv > 1024 || dstate > MOE_ARCH_MAX_WIDTH ||
		dtrank > MOE_ARCH_MAX_WIDTH)
		return moe_error_set(&a->err, MOE_ERANGE, "config.json: mamba sizes out of range");
	cbias = jbool(c, "mamba_conv_bias", 1);
	pbias = jbool(c, "mamba_proj_bias", 0);
	if (ap == 0 || ep == 0)
		return moe_error_set(&a->err, MOE_EFORMAT,
			"config.json: jamba layer periods must be positive");
	for (i = 0; i < a->n_layers; i++) {
		struct moe_layer *L = &a->layers[i];

		if (i % ap != ao) {
			uint64_t di = (uint64_t)expand * a->d_model, d = a->d_model;

			/* in_proj, conv1d, x_proj, dt_proj, A_log, D, out_proj,
			 * and the dt/B/C inner RMSNorms */
			L->attn = MOE_ATTN_SSM;
			L->mixer_params = d * 2 * di + (pbias ? 2 * di : 0) +
				di * dconv + (cbias ? di : 0) +
				di * (dtrank + 2 * (uint64_t)dstate) +
				(uint64_t)dtrank * di + di +
				di * dstate + di + di * d + (pbias ? d : 0) +
				dtrank + 2 * (uint64_t)dstate;
		}
		if (i % ep == eo) {
			if ((rc = set_moe(a, L, e, k, dff)) != 0)
				return rc;
		} else
			set_dense(L, dff);
	}
	return 0;
}

/* Switch Transformers: T5 encoder-decoder, ReLU FFNs, top-1 experts on
 * every sparse_step-th block of each stack. */
static int fam_switch(struct moe_arch *a, json_t *c)
{
	uint32_t ne, nd, e, k, dff, es, ds, buckets, nh, hd, i;
	int rc;

	if ((rc = base(a, c, 1)) != 0)
		return rc;
	nh = a->layers[0].n_head;
	hd = a->layers[0].head_dim;
	U32(c, &ne, 0, 1, "num_layers");
	U32(c, &nd, ne, 0, "num_decoder_layers");
	U32(c, &e, 0, 1, "num_experts");
	U32(c, &k, 1, 0, "num_selected_experts");
	U32(c, &dff, 0, 1, "d_ff");
	U32(c, &es, 2, 0, "encoder_sparse_step");
	U32(c, &ds, 2, 0, "decoder_sparse_step");
	U32(c, &buckets, 32, 0, "relative_attention_num_buckets");
	if (ne + nd > MOE_ARCH_MAX_LAYERS)
		return moe_error_set(&a->err, MOE_ERANGE, "config.json: too many layers");
	if ((rc = moe_arch_alloc_layers(a, ne + nd)) != 0)
		return rc;
	a->enc_dec = 1;
	a->n_enc_layers = ne;
	a->rel_buckets = buckets;
	a->gated = (uint8_t)jbool(c, "is_gated_act", 0);
	for (i = 0; i < ne + nd; i++) {
		struct moe_layer *L = &a->layers[i];
		uint32_t j = i < ne ? i : i - ne, step = i < ne ? es : ds;

		L->n_head = L->n_head_kv = nh;
		L->head_dim = L->head_dim_v = hd;
		L->attn = MOE_ATTN_MHA;
		L->cross_attn = i >= ne;
		L->n_norms = i >= ne ? 3 : 2;
		if (step > 0 && (step == 1 || j % step == 1)) {
			if ((rc = set_moe(a, L, e, k, dff)) != 0)
				return rc;
		} else
			set_dense(L, dff);
	}
	return 0;
}


/* MiniMax-M2: GQA with full-width q/k RMSNorm, sigmoid routing with a
 * score-correction bias; its MTP modules are not in the main weights. */
static int fam_minimax_m2(struct moe_arch *a, json_t *c)
{
	uint32_t e, k, dff, dsh, i;
	int rc;

	if ((rc = base(a, c, 0)) != 0)
		return rc;
	U32(c, &e, 0, 1, "num_local_experts");
	U32(c, &k, 0, 1, "num_experts_per_tok");
	U32(c, &dff, 0, 1, "intermediate_size");
	U32(c, &dsh, 0, 0, "shared_intermediate_size");
	a->gating = MOE_GATE_SIGMOID;
	a->norm_topk = 1;
	for (i = 0; i < a->n_layers; i++) {
		struct moe_layer *L = &a->layers[i];

		if (jbool(c, "use_qk_norm", 0)) {
			L->q_norm = L->n_head * L->head_dim;
			L->k_norm = L->n_head_kv * L->head_dim;
		}
		if ((rc = set_moe(a, L, e, k, dff)) != 0)
			return rc;
		L->score_bias = (uint8_t)jbool(c, "use_routing_bias", 0);
		L->d_shared = dsh;
		L->n_shared = dsh ? 1 : 0;
	}
	return 0;
}

/* Element i of a per-layer list, or the scalar itself. */
static int list_u32(struct moe_arch *a, json_t *c, const char *key, uint32_t i,
	uint32_t *out)
{
	json_t *v = json_object_get(c, key);
	json_int_t x;

	if (json_is_array(v))
		v = json_array_get(v, i < json_array_size(v) ? i : json_array_size(v) - 1);
	if (!json_is_integer(v) || (x = json_integer_value(v)) < 0 || x > UINT32_MAX)
		return moe_error_set(&a->err, MOE_EFORMAT,
			"config.json: '%s' is missing or not a count for layer %u", key, i);
	*out = (uint32_t)x;
	return 0;
}

/* Hunyuan-A13B: per-layer lists for top-k, shared experts and expert
 * width; the shared MLP is intermediate_size x num_shared_expert wide. */
static int fam_hunyuan(struct moe_arch *a, json_t *c)
{
	uint32_t e, dff, i, k, nsh, dexp;
	int rc;

	if ((rc = base(a, c, 1)) != 0)
		return rc;
	U32(c, &e, 0, 1, "num_experts");
	U32(c, &dff, 0, 1, "intermediate_size");
	a->norm_topk = (uint8_t)jbool(c, "norm_topk_prob", 1);
	for (i = 0; i < a->n_layers; i++) {
		struct moe_layer *L = &a->layers[i];

		if ((rc = list_u32(a, c, "moe_topk", i, &k)) != 0 ||
			(rc = list_u32(a, c, "num_shared_expert", i, &nsh)) != 0 ||
			(rc = list_u32(a, c, "moe_intermediate_size", i, &dexp)) != 0)
			return rc;
		if (jbool(c, "use_qk_norm", 0))
			L->q_norm = L->k_norm = L->head_dim;
		L->qkv_bias = L->o_bias = (uint8_t)jbool(c, "attention_bias", 0);
		if ((rc = set_moe(a, L, e, k, dexp)) != 0)
			return rc;
		if (jbool(c, "use_mixed_mlp_moe", 0)) {
			L->n_shared = nsh;
			L->d_shared = sat32((uint64_t)nsh * dff);
		}
	}
	return 0;
}

/* MiniCPM: MoE only when num_experts is set (MiniCPM-MoE-8x2B). */
static int fam_minicpm(struct moe_arch *a, json_t *c)
{
	uint64_t e = 0;

	if (jnum_u(c, "num_experts", &e) != 1 || e == 0)
		return moe_error_set(&a->err, MOE_EUNSUP,
			"model_type 'minicpm' without num_experts is a dense model, not an MoE");
	return mixtral_like_keys(a, c, "num_experts", 1);
}

static const struct family {
	const char *model_type;
	const char *family;
	int (*build)(struct moe_arch *a, json_t *c);
} families[] = {
	{ "dbrx", "dbrx", fam_dbrx },
	{ "deepseek", "deepseek", fam_deepseek },
	{ "deepseek_v2", "deepseek_v2", fam_deepseek_v2 },
	{ "deepseek_v3", "deepseek_v3", fam_deepseek_v2 },
	{ "deepseek-inference", "deepseek_v2", fam_deepseek_infer },
	{ "glm4_moe", "glm4_moe", fam_glm4_moe },
	{ "gpt_oss", "gpt_oss", fam_gpt_oss },
	{ "granitemoe", "granitemoe", fam_granitemoe },
	{ "hunyuan", "hunyuan", fam_hunyuan },
	{ "jamba", "jamba", fam_jamba },
	{ "jetmoe", "jetmoe", fam_jetmoe },
	{ "kimi_k2", "deepseek_v3", fam_deepseek_v2 },
	{ "llama4", "llama4", fam_llama4 },
	{ "llama4_text", "llama4", fam_llama4 },
	{ "minicpm", "minicpm", fam_minicpm },
	{ "minimax_m2", "minimax_m2", fam_minimax_m2 },
	{ "mixtral", "mixtral", fam_mixtral },
	{ "olmoe", "olmoe", fam_olmoe },
	{ "phimoe", "phimoe", fam_phimoe },
	{ "qwen2_moe", "qwen2_moe", fam_qwen2_moe },
	{ "qwen3_moe", "qwen3_moe", fam_qwen3_moe },
	{ "qwen3_next", "qwen3_next", fam_qwen3_next },
	{ "switch_transformers", "switch_transformers", fam_switch },
};

const char *moe_arch_supported(void)
{
	return "dbrx, deepseek, deepseek_v2, deepseek_v3, glm4_moe, gpt_oss, "
		"granitemoe, hunyuan, jamba, jetmoe, kimi_k2, llama4, llama4_text, "
		"minicpm (MoE variant), minimax_m2, mixtral, olmoe, phimoe, qwen2_moe, "
		"qwen3_moe, qwen3_next, switch_transformers";
}

/* Configs without model_type: legacy JetMoE by its architectures, DeepSeek's
 * inference configs by their key names. */
static const char *guess_type(json_t *c)
{
	const char *arch = json_string_value(json_array_get(json_object_get(c, "architectures"), 0));

	if (arch && strcmp(arch, "JetMoEForCausalLM") == 0)
		return "jetmoe";
	if (json_object_get(c, "moe_inter_dim") && json_object_get(c, "dim"))
		return "deepseek-inference";
	return NULL;
}

int moe_arch_from_config(struct moe_arch *a, json_t *c)
{
	const char *mt;
	size_t i;
	int rc;

	moe_arch_release(a);
	if (!json_is_object(c))
		return moe_error_set(&a->err, MOE_EFORMAT, "config.json is not a JSON object");
	mt = jstr(c, "model_type");
	if ((mt == NULL || *mt == '\0') && (mt = guess_type(c)) == NULL)
		return moe_error_set(&a->err, MOE_EUNSUP,
			"config.json has no model_type (supported: %s)", moe_arch_supported());
	for (i = 0; i < sizeof families / sizeof families[0]; i++) {
		if (strcmp(families[i].model_type, mt) != 0)
			continue;
		if ((rc = moe_arch_set_names(a, families[i].family, mt)) != 0 ||
			(rc = families[i].build(a, c)) != 0 ||
			(rc = moe_arch_finish(a)) != 0) {
			struct moe_error keep = a->err;

			moe_arch_release(a);
			a->err = keep;
			return rc;
		}
		a->source = "config";
		return 0;
	}
	return moe_error_set(&a->err, MOE_EUNSUP,
		"unsupported model_type '%s' (supported: %s)", mt, moe_arch_supported());
}
