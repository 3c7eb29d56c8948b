/* Tables mapping config.json fields to GGUF {arch}.* keys, both ways. */
#include "hfconfig.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { OPT = 1, BOOL_ = 2 };

/* {arch}.<suffix> <-> config field (first present of cfg, alt). */
struct kv_map {
	const char *suffix;
	enum moe_vtype type;
	const char *cfg, *alt;
	unsigned flags;
};

/* Keys every family writes, in llama.cpp's order. */
static const struct kv_map common[] = {
	{ "block_count", MOE_V_U32, "num_hidden_layers", NULL, 0 },
	{ "context_length", MOE_V_U32, "max_position_embeddings", NULL, 0 },
	{ "embedding_length", MOE_V_U32, "hidden_size", NULL, 0 },
	{ "attention.head_count", MOE_V_U32, "num_attention_heads", NULL, 0 },
	{ "attention.layer_norm_rms_epsilon", MOE_V_F32, "rms_norm_eps", NULL, 0 },
	{ "rope.freq_base", MOE_V_F32, "rope_theta", NULL, OPT },
	{ "expert_count", MOE_V_U32, "num_local_experts", "num_experts", OPT },
	{ "expert_used_count", MOE_V_U32, "num_experts_per_tok", NULL, 0 },
	{ "vocab_size", MOE_V_U32, "vocab_size", NULL, 0 },
	{ "attention.head_count_kv", MOE_V_U32, "num_key_value_heads", NULL, OPT },
};

static const struct kv_map qwen2moe_kv[] = {
	{ "feed_forward_length", MOE_V_U32, "intermediate_size", NULL, 0 },
	{ "expert_feed_forward_length", MOE_V_U32, "moe_intermediate_size", NULL, 0 },
	{ "expert_shared_feed_forward_length", MOE_V_U32, "shared_expert_intermediate_size", NULL, 0 },
};

static const struct kv_map qwen3moe_kv[] = {
	{ "feed_forward_length", MOE_V_U32, "intermediate_size", NULL, OPT },
	{ "expert_feed_forward_length", MOE_V_U32, "moe_intermediate_size", NULL, 0 },
	{ "expert_weights_norm", MOE_V_BOOL, "norm_topk_prob", NULL, OPT | BOOL_ },
};

static const struct kv_map ffn_kv[] = {
	{ "feed_forward_length", MOE_V_U32, "intermediate_size", NULL, 0 },
};

static const struct kv_map granite_kv[] = {
	{ "feed_forward_length", MOE_V_U32, "intermediate_size", NULL, 0 },
	{ "embedding_scale", MOE_V_F32, "embedding_multiplier", NULL, 0 },
	{ "residual_scale", MOE_V_F32, "residual_multiplier", NULL, 0 },
	{ "attention.scale", MOE_V_F32, "attention_multiplier", NULL, 0 },
	{ "logit_scale", MOE_V_F32, "logits_scaling", NULL, 0 },
};

static const struct kv_map deepseek_kv[] = {
	{ "feed_forward_length", MOE_V_U32, "intermediate_size", NULL, 0 },
	{ "leading_dense_block_count", MOE_V_U32, "first_k_dense_replace", NULL, 0 },
	{ "expert_feed_forward_length", MOE_V_U32, "moe_intermediate_size", NULL, 0 },
	{ "expert_shared_count", MOE_V_U32, "n_shared_experts", NULL, 0 },
};

static const struct kv_map deepseek2_kv[] = {
	{ "feed_forward_length", MOE_V_U32, "intermediate_size", NULL, 0 },
	{ "leading_dense_block_count", MOE_V_U32, "first_k_dense_replace", NULL, 0 },
	{ "attention.q_lora_rank", MOE_V_U32, "q_lora_rank", NULL, OPT },
	{ "attention.kv_lora_rank", MOE_V_U32, "kv_lora_rank", NULL, 0 },
	{ "attention.value_length", MOE_V_U32, "v_head_dim", NULL, 0 },
	{ "rope.dimension_count", MOE_V_U32, "qk_rope_head_dim", NULL, 0 },
	{ "expert_feed_forward_length", MOE_V_U32, "moe_intermediate_size", NULL, 0 },
	{ "expert_shared_count", MOE_V_U32, "n_shared_experts", NULL, 0 },
	{ "expert_weights_scale", MOE_V_F32, "routed_scaling_factor", NULL, OPT },
	{ "expert_weights_norm", MOE_V_BOOL, "norm_topk_prob", NULL, OPT | BOOL_ },
	{ "expert_group_count", MOE_V_U32, "n_group", NULL, OPT },
	{ "expert_group_used_count", MOE_V_U32, "topk_group", NULL, OPT },
};

struct fam_kv {
	const char *arch;
	const struct kv_map *kv;
	size_t n;
};

#define FK(a, t) { a, t, sizeof t / sizeof t[0] }
static const struct fam_kv fam_kv[] = {
	FK("llama", ffn_kv), FK("olmoe", ffn_kv), FK("qwen2moe", qwen2moe_kv),
	FK("qwen3moe", qwen3moe_kv), FK("granitemoe", granite_kv),
	FK("deepseek", deepseek_kv), FK("deepseek2", deepseek2_kv),
};

static const struct fam_kv *extras(const struct moe_family *f)
{
	for (size_t i = 0; i < sizeof fam_kv / sizeof fam_kv[0]; i++)
		if (strcmp(fam_kv[i].arch, moe_family_gguf_arch(f)) == 0)
			return &fam_kv[i];
	return NULL;
}

static json_t *cfg_get(json_t *c, const struct kv_map *k)
{
	json_t *v = json_object_get(c, k->cfg);

	if ((v == NULL || json_is_null(v)) && k->alt)
		v = json_object_get(c, k->alt);
	return json_is_null(v) ? NULL : v;
}

static int put(struct moe_meta *m, const char *arch, const char *suffix,
	enum moe_vtype type, double num, struct moe_error *err)
{
	char key[160];
	struct moe_value v = { .type = type };

	snprintf(key, sizeof key, "%s.%s", arch, suffix);
	if (type == MOE_V_F32)
		v.v.f = (float)num;
	else
		v.v.u = (uint64_t)num;
	if (moe_meta_set(m, key, &v) != 0)
		return moe_error_set(err, MOE_ENOMEM, "out of memory");
	return 0;
}

static int apply(const struct kv_map *kv, size_t n, const char *arch, json_t *c,
	struct moe_meta *m, struct moe_error *err)
{
	for (size_t i = 0; i < n; i++) {
		json_t *v = cfg_get(c, &kv[i]);
		double num;
		int rc;

		if (v == NULL) {
			if (kv[i].flags & OPT)
				continue;
			return moe_error_set(err, MOE_EFORMAT,
				"config.json has no '%s' (needed for %s.%s)", kv[i].cfg,
				arch, kv[i].suffix);
		}
		if (kv[i].flags & BOOL_) {
			if (!json_is_boolean(v))
				return moe_error_set(err, MOE_EFORMAT,
					"config.json: '%s' is not a boolean", kv[i].cfg);
			num = json_is_true(v);
		} else if (json_is_number(v)) {
			num = json_number_value(v);
			if (kv[i].type == MOE_V_U32 && (num < 0 || num > 4294967295.0 || num != floor(num)))
				return moe_error_set(err, MOE_EFORMAT,
					"config.json: '%s' is not a count", kv[i].cfg);
		} else {
			return moe_error_set(err, MOE_EFORMAT,
				"config.json: '%s' is not a number", kv[i].cfg);
		}
		if ((rc = put(m, arch, kv[i].suffix, kv[i].type, num, err)) != 0)
			return rc;
	}
	return 0;
}

static uint32_t cfg_u32(json_t *c, const char *key, uint32_t dflt)
{
	json_t *v = json_object_get(c, key);
	return json_is_integer(v) ? (uint32_t)json_integer_value(v) : dflt;
}

/* DeepSeek names the routed-expert count differently from the others. */
static int expert_count(json_t *c, const char *arch, struct moe_meta *m,
	struct moe_error *err)
{
	char key[160];
	json_t *v = json_object_get(c, "n_routed_experts");

	snprintf(key, sizeof key, "%s.expert_count", arch);
	if (moe_meta_find(m, key))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) <= 0)
		return moe_error_set(err, MOE_EFORMAT,
			"config.json has no expert count (num_local_experts, num_experts "
			"or n_routed_experts)");
	return put(m, arch, "expert_count", MOE_V_U32, (double)json_integer_value(v), err);
}

/* Keys computed from several fields or with family defaults. */
static int derived_to_gguf(const struct moe_family *f, json_t *c, struct moe_meta *m,
	struct moe_error *err)
{
	const char *arch = moe_family_gguf_arch(f);
	uint32_t heads = cfg_u32(c, "num_attention_heads", 1), d = cfg_u32(c, "hidden_size", 0);
	uint32_t head_dim = cfg_u32(c, "head_dim", heads ? d / heads : 0);
	int rc = 0;

	if (json_object_get(c, "num_key_value_heads") == NULL)
		rc = put(m, arch, "attention.head_count_kv", MOE_V_U32, heads, err);
	if (rc == 0 && (rc = expert_count(c, arch, m, err)) != 0)
		return rc;
	if (rc == 0 && json_object_get(c, "rope_theta") == NULL)
		rc = put(m, arch, "rope.freq_base", MOE_V_F32, 10000.0, err);
	if (rc != 0)
		return rc;
	if (strcmp(arch, "deepseek2") == 0) {
		json_t *rs = json_object_get(c, "rope_scaling");
		double mscale = json_number_value(json_object_get(rs, "mscale_all_dim"));
		const char *sf = json_string_value(json_object_get(c, "scoring_func"));
		uint32_t kl = cfg_u32(c, "qk_nope_head_dim", 0) + cfg_u32(c, "qk_rope_head_dim", 0);

		rc = put(m, arch, "attention.key_length", MOE_V_U32, kl, err);
		if (rc == 0)
			rc = put(m, arch, "expert_gating_func", MOE_V_U32,
				sf && strcmp(sf, "sigmoid") == 0 ? 2 : 1, err);
		if (rc == 0 && json_is_object(rs) && json_is_number(json_object_get(rs, "factor"))) {
			rc = moe_meta_set_str(m, "deepseek2.rope.scaling.type", "yarn");
			if (rc == 0)
				rc = put(m, arch, "rope.scaling.factor", MOE_V_F32,
					json_number_value(json_object_get(rs, "factor")), err);
			if (rc == 0)
				rc = put(m, arch, "rope.scaling.original_context_length", MOE_V_U32,
					cfg_u32(rs, "original_max_position_embeddings", 4096), err);
		}
		/* llama.cpp requires the key even without rope scaling */
		if (rc == 0)
			rc = put(m, arch, "rope.scaling.yarn_log_multiplier", MOE_V_F32,
				0.1 * (mscale > 0 ? mscale : 1.0), err);
		return rc;
	}
	rc = put(m, arch, "rope.dimension_count", MOE_V_U32, head_dim, err);
	if (rc == 0 && strcmp(arch, "qwen3moe") == 0) {
		rc = put(m, arch, "attention.key_length", MOE_V_U32, head_dim, err);
		if (rc == 0)
			rc = put(m, arch, "attention.value_length", MOE_V_U32, head_dim, err);
	}
	if (rc == 0 && strcmp(arch, "deepseek") == 0) {
		/* deepseek v1 reads this key but never applies it */
		rc = put(m, arch, "expert_weights_scale", MOE_V_F32, 1.0, err);
		if (rc == 0 && moe_meta_set_str(m, "deepseek.rope.scaling.type", "none") != 0)
			rc = moe_error_set(err, MOE_ENOMEM, "out of memory");
	}
	return rc;
}

int moe_hfconfig_to_gguf(const struct moe_family *f, json_t *config,
	struct moe_meta *m, struct moe_error *err)
{
	const struct fam_kv *x = extras(f);
	const char *arch = moe_family_gguf_arch(f);
	const char *name = json_string_value(json_object_get(config, "_name_or_path"));
	int rc;

	if (moe_meta_set_str(m, "general.architecture", arch) != 0 ||
	    (name && moe_meta_set_str(m, "general.name", name) != 0))
		return moe_error_set(err, MOE_ENOMEM, "out of memory");
	if ((rc = apply(common, sizeof common / sizeof common[0], arch, config, m, err)) != 0)
		return rc;
	if (x && (rc = apply(x->kv, x->n, arch, config, m, err)) != 0)
		return rc;
	return derived_to_gguf(f, config, m, err);
}

/* Reverse of one table: config fields from {arch}.* keys present. */
static int unapply(const struct kv_map *kv, size_t n, const char *arch,
	const struct moe_meta *m, json_t *c)
{
	for (size_t i = 0; i < n; i++) {
		char key[160];
		const struct moe_value *v;

		snprintf(key, sizeof key, "%s.%s", arch, kv[i].suffix);
		if ((v = moe_meta_find(m, key)) == NULL)
			continue;
		if (v->type == MOE_V_BOOL)
			json_object_set_new(c, kv[i].cfg, json_boolean(v->v.u));
		else if (v->type == MOE_V_F32 || v->type == MOE_V_F64)
			json_object_set_new(c, kv[i].cfg, json_real(v->v.f));
		else if (v->type == MOE_V_U32 || v->type == MOE_V_U64)
			json_object_set_new(c, kv[i].cfg, json_integer((json_int_t)v->v.u));
		else
			return MOE_EFORMAT;
	}
	return 0;
}

static double meta_f(const struct moe_meta *m, const char *arch, const char *suffix, double d)
{
	char key[160];
	double v;

	snprintf(key, sizeof key, "%s.%s", arch, suffix);
	return moe_meta_get_f64(m, key, &v) == 0 ? v : d;
}

/* Fields transformers needs that have no GGUF key of their own. */
static void derived_from_gguf(const char *arch, const struct moe_meta *m, int v3,
	json_t *c)
{
	double heads = meta_f(m, arch, "attention.head_count", 1);
	double d = meta_f(m, arch, "embedding_length", 0);

	json_object_set_new(c, "hidden_act", json_string("silu"));
	if (strcmp(arch, "qwen3moe") == 0 || strcmp(arch, "llama") == 0)
		json_object_set_new(c, "head_dim", json_integer((json_int_t)
			meta_f(m, arch, "rope.dimension_count", d / heads)));
	if (strcmp(arch, "qwen2moe") == 0) {
		json_object_set_new(c, "decoder_sparse_step", json_integer(1));
		json_object_set_new(c, "mlp_only_layers", json_array());
		json_object_set_new(c, "norm_topk_prob", json_false());
	}
	if (strcmp(arch, "deepseek") == 0)
		json_object_set_new(c, "moe_layer_freq", json_integer(1));
	if (strcmp(arch, "deepseek2") == 0) {
		double kl = meta_f(m, arch, "attention.key_length", 0);
		double rope = meta_f(m, arch, "rope.dimension_count", 0);
		double ymul = meta_f(m, arch, "rope.scaling.yarn_log_multiplier", 0.1);
		double factor = meta_f(m, arch, "rope.scaling.factor", 0);

		json_object_set_new(c, "qk_nope_head_dim", json_integer((json_int_t)(kl - rope)));
		json_object_set_new(c, "moe_layer_freq", json_integer(1));
		json_object_set_new(c, "scoring_func", json_string(
			meta_f(m, arch, "expert_gating_func", 1) == 2 ? "sigmoid" : "softmax"));
		json_object_set_new(c, "topk_method", json_string(v3 ? "noaux_tc" : "greedy"));
		if (json_object_get(c, "q_lora_rank") == NULL)
			json_object_set_new(c, "q_lora_rank", json_null());
		if (json_object_get(c, "norm_topk_prob") == NULL)
			json_object_set_new(c, "norm_topk_prob", json_false());
		if (json_object_get(c, "n_group") == NULL)
			json_object_set_new(c, "n_group", json_integer(1));
		if (json_object_get(c, "topk_group") == NULL)
			json_object_set_new(c, "topk_group", json_integer(1));
		if (factor > 0)
			json_object_set_new(c, "rope_scaling", json_pack("{s:s, s:f, s:I, s:f, s:f}",
				"type", "yarn", "factor", factor, "original_max_position_embeddings",
				(json_int_t)meta_f(m, arch, "rope.scaling.original_context_length", 4096),
				"mscale", 1.0, "mscale_all_dim", ymul / 0.1));
		else
			json_object_set_new(c, "rope_scaling", json_null());
	}
}

/* The shared table spells the expert count Mixtral's way. */
static void rename_expert_count(const char *arch, json_t *c)
{
	json_t *n = json_object_get(c, "num_local_experts");
	const char *to = NULL;

	if (strncmp(arch, "deepseek", 8) == 0)
		to = "n_routed_experts";
	else if (strcmp(arch, "llama") != 0 && strcmp(arch, "granitemoe") != 0)
		to = "num_experts";
	if (n == NULL || to == NULL)
		return;
	json_object_set(c, to, n);
	json_object_del(c, "num_local_experts");
}

int moe_hfconfig_from_gguf(const struct moe_family *f, const struct moe_meta *m,
	int v3, int tied, json_t **out, struct moe_error *err)
{
	const char *arch = moe_family_gguf_arch(f);
	const struct fam_kv *x = extras(f);
	const char *name = NULL;
	json_t *c = json_pack("{s:[s], s:s}", "architectures",
		moe_family_hf_class(f, v3), "model_type", moe_family_model_type(f, v3));

	if (c == NULL)
		return moe_error_set(err, MOE_ENOMEM, "out of memory");
	if (unapply(common, sizeof common / sizeof common[0], arch, m, c) != 0 ||
	    (x && unapply(x->kv, x->n, arch, m, c) != 0)) {
		json_decref(c);
		return moe_error_set(err, MOE_EFORMAT,
			"GGUF metadata of '%s' has a key of an unexpected type", arch);
	}
	derived_from_gguf(arch, m, v3, c);
	rename_expert_count(arch, c);
	json_object_set_new(c, "tie_word_embeddings", json_boolean(tied));
	if (moe_meta_get_str(m, "general.name", &name) == 0)
		json_object_set_new(c, "_name_or_path", json_string(name));
	*out = c;
	return 0;
}
