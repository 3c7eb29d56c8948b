/* Tests of parameter accounting against published figures, tiny reference GGUFs, memory, KV cache and bounds. */
#include <math.h>

#include "arch_impl.h"
#include "params.h"
#include "testutil.h"

/* Which count a published figure is compared with. */
enum conv {
	ALL,      /* total / active incl. input embedding and head */
	NOEMB,    /* without the input embedding (head counted) */
	NONEMB,   /* without embedding and head */
	CKPT      /* everything a full checkpoint holds: + MTP + vision */
};

/* How the publisher states the figure. ROUND: the computed count must be
 * within 0.5% of it, or round to it at the figure's precision (a label
 * like "37B"). TRUNC: the publisher truncates (Qwen's "3.3B" for 3.35B),
 * so computed must lie in [figure, figure + unit). */
enum mode { ROUND, TRUNC };

struct published {
	const char *file;
	int active;        /* 0 total, 1 active */
	enum conv conv;
	double billions, unit;
	enum mode mode;
};

static const struct published examples[] = {
	/* Mistral: 46.7B total, 12.9B active, embedding and head included */
	{ "mixtral-8x7b.json", 0, ALL, 46.7, 0.1, ROUND },
	{ "mixtral-8x7b.json", 1, ALL, 12.9, 0.1, ROUND },
	{ "mixtral-8x22b.json", 0, ALL, 141, 1, ROUND },
	{ "mixtral-8x22b.json", 1, ALL, 39, 1, ROUND },
	/* Qwen3 model card: 30.5B total, 29.9B non-embedding, 3.3B activated (truncated) */
	{ "qwen3-30b-a3b.json", 0, ALL, 30.5, 0.1, TRUNC },
	{ "qwen3-30b-a3b.json", 0, NONEMB, 29.9, 0.1, TRUNC },
	{ "qwen3-30b-a3b.json", 1, ALL, 3.3, 0.1, TRUNC },
	/* DeepSeek-V3: 671B main model + 14B MTP = 685B in the checkpoint;
	 * "37B activated" is a truncated label (37.55B incl. embedding + head,
	 * 36.63B without the input embedding) */
	{ "deepseek-v3.json", 0, ALL, 671, 1, ROUND },
	{ "deepseek-v3.json", 0, CKPT, 685, 1, ROUND },
	{ "deepseek-v3.json", 1, ALL, 37, 1, TRUNC },
	/* OLMoE paper: 6.9B total, 1.3B active */
	{ "olmoe-1b-7b.json", 0, ALL, 6.9, 0.1, ROUND },
	{ "olmoe-1b-7b.json", 1, ALL, 1.3, 0.1, ROUND },
	/* Llama 4 Scout: 109B total including the vision encoder, 17B active */
	{ "llama-4-scout.json", 0, CKPT, 109, 1, ROUND },
	{ "llama-4-scout.json", 1, ALL, 17, 1, ROUND },
	/* gpt-oss model card: 116.83B total, 5.13B active without the input embedding */
	{ "gpt-oss-120b.json", 0, ALL, 116.83, 0.01, ROUND },
	{ "gpt-oss-120b.json", 1, NOEMB, 5.13, 0.01, ROUND },
	/* Qwen1.5-MoE-A2.7B: 14.3B total, 2.7B active */
	{ "qwen1.5-moe-a2.7b.json", 0, ALL, 14.3, 0.1, ROUND },
	{ "qwen1.5-moe-a2.7b.json", 1, ALL, 2.7, 0.1, ROUND },
};

/* Real configs in ../shared/configs (README there gives the conventions). */
static const struct published shared[] = {
	{ "mixtral-8x7b-v0.1.json", 0, ALL, 46.7, 0.1, ROUND },
	{ "mixtral-8x7b-v0.1.json", 1, ALL, 12.9, 0.1, ROUND },
	{ "mixtral-8x22b-v0.1.json", 0, ALL, 141, 1, ROUND },
	{ "mixtral-8x22b-v0.1.json", 1, ALL, 39, 1, ROUND },
	{ "qwen3-30b-a3b.json", 0, ALL, 30.5, 0.1, TRUNC },
	{ "qwen3-30b-a3b.json", 0, NONEMB, 29.9, 0.1, TRUNC },
	{ "qwen3-30b-a3b.json", 1, ALL, 3.3, 0.1, TRUNC },
	{ "qwen3-235b-a22b.json", 0, ALL, 235, 1, TRUNC },
	{ "qwen3-235b-a22b.json", 1, ALL, 22, 1, TRUNC },
	{ "qwen3-coder-480b-a35b-instruct.json", 0, ALL, 480, 1, TRUNC },
	{ "qwen3-coder-480b-a35b-instruct.json", 1, ALL, 35, 1, TRUNC },
	{ "qwen1.5-moe-a2.7b-chat.json", 0, ALL, 14.3, 0.1, ROUND },
	{ "qwen1.5-moe-a2.7b-chat.json", 1, ALL, 2.7, 0.1, ROUND },
	{ "qwen2-57b-a14b.json", 0, ALL, 57, 1, ROUND },
	{ "qwen2-57b-a14b.json", 1, ALL, 14, 1, ROUND },
	{ "deepseek-v3.json", 0, ALL, 671, 1, ROUND },
	{ "deepseek-v3.json", 0, CKPT, 685, 1, ROUND },
	{ "deepseek-v3.json", 1, ALL, 37, 1, TRUNC },
	{ "deepseek-r1.json", 0, ALL, 671, 1, ROUND },
	{ "deepseek-r1.json", 1, ALL, 37, 1, TRUNC },
	{ "deepseek-v3.1.json", 0, ALL, 671, 1, ROUND },
	{ "deepseek-v3.1.json", 1, ALL, 37, 1, TRUNC },
	{ "deepseek-v3.deepseek-inference-format.json", 0, ALL, 671, 1, ROUND },
	{ "deepseek-v2.reconstructed.json", 0, ALL, 236, 1, ROUND },
	{ "deepseek-v2.reconstructed.json", 1, ALL, 21, 1, ROUND },
	{ "deepseek-v2.deepseek-inference-format.json", 0, ALL, 236, 1, ROUND },
	{ "deepseek-v2-lite-chat.json", 0, ALL, 15.7, 0.1, ROUND },
	{ "deepseek-v2-lite-chat.json", 1, NOEMB, 2.4, 0.1, TRUNC },
	{ "deepseek-v2-lite.deepseek-inference-format.json", 0, ALL, 15.7, 0.1, ROUND },
	{ "deepseek-moe-16b.json", 0, ALL, 16.4, 0.1, ROUND },
	{ "deepseek-moe-16b.json", 1, ALL, 2.8, 0.1, ROUND },
	{ "kimi-k2-instruct.json", 1, NOEMB, 32, 1, ROUND },
	{ "olmoe-1b-7b-0924.json", 0, ALL, 6.9, 0.1, ROUND },
	{ "olmoe-1b-7b-0924.json", 1, ALL, 1.3, 0.1, ROUND },
	{ "gpt-oss-120b.json", 0, ALL, 116.83, 0.01, ROUND },
	{ "gpt-oss-120b.json", 1, NOEMB, 5.13, 0.01, ROUND },
	{ "gpt-oss-20b.json", 0, ALL, 20.91, 0.01, ROUND },
	{ "gpt-oss-20b.json", 1, NOEMB, 3.61, 0.01, ROUND },
	/* text-only config: the 109B / 400B totals include the vision encoder */
	{ "llama-4-scout-17b-16e-instruct.json", 1, ALL, 17, 1, ROUND },
	{ "llama-4-maverick-17b-128e-instruct.json", 0, ALL, 400, 1, ROUND },
	{ "llama-4-maverick-17b-128e-instruct.json", 1, ALL, 17, 1, ROUND },
	{ "glm-4.5-air.derivative-intellect-3-base.json", 0, ALL, 106, 1, TRUNC },
	{ "glm-4.5-air.derivative-intellect-3-base.json", 1, NONEMB, 12, 1, ROUND },
	{ "glm-4.5.reconstructed.json", 1, NONEMB, 32, 1, ROUND },
	{ "glm-4.7.json", 1, NONEMB, 32, 1, ROUND },
	{ "minimax-m2.5.json", 1, NONEMB, 10, 1, ROUND },
	{ "minimax-m2.7.bf16-derivative.json", 1, NONEMB, 10, 1, ROUND },
	{ "dbrx-instruct.json", 0, ALL, 132, 1, ROUND },
	{ "dbrx-instruct.json", 1, ALL, 36, 1, ROUND },
	{ "jamba-v0.1.json", 0, ALL, 52, 1, ROUND },
	{ "jamba-v0.1.json", 1, ALL, 12, 1, ROUND },
	{ "hunyuan-a13b-instruct.json", 0, ALL, 80, 1, ROUND },
	{ "hunyuan-a13b-instruct.json", 1, ALL, 13, 1, ROUND },
	/* Qwen3-Next: 80B total, "A3B" non-embedding active */
	{ "qwen3-next-80b-a3b-thinking.json", 0, ALL, 80, 1, ROUND },
	{ "qwen3-next-80b-a3b-thinking.json", 1, NONEMB, 3, 1, ROUND },
	/* MiniCPM publishes non-embedding counts */
	{ "minicpm-moe-8x2b.json", 0, NONEMB, 13.6, 0.1, ROUND },
	{ "minicpm-moe-8x2b.json", 1, NONEMB, 4, 1, ROUND },
};

static uint64_t pick(const struct moe_params *p, int active, enum conv c)
{
	switch (c) {
	case ALL: return active ? p->active : p->total;
	case NOEMB: return active ? p->active_no_embed : p->total_no_embed;
	case NONEMB: return active ? p->active_nonembed : p->total_nonembed;
	default: return p->total_all;
	}
}

static int agrees(double got, const struct published *w)
{
	double want = w->billions;

	if (fabs(got - want) <= 0.005 * want)
		return 1;
	if (w->mode == TRUNC)
		return got >= want && got < want + w->unit;
	return fabs(got - want) <= w->unit / 2;
}

static void check_table(const char *dir, const struct published *tab, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char path[4600];
		json_error_t je;
		json_t *j;
		struct moe_arch a;
		struct moe_params p;
		struct moe_error e = { 0 };
		double got;

		snprintf(path, sizeof path, "%s/%s", dir, tab[i].file);
		j = json_load_file(path, 0, &je);
		ck_assert_msg(j != NULL, "%s: %s", path, je.text);
		moe_arch_init(&a);
		moe_params_init(&p);
		ck_assert_msg(moe_arch_from_config(&a, j) == 0, "%s: %s", path, moe_arch_errstr(&a));
		ck_assert_int_eq(moe_params_from_arch(&p, &a, &e), 0);
		got = (double)pick(&p, tab[i].active, tab[i].conv) / 1e9;
		if (getenv("MOE_TEST_VERBOSE"))
			fprintf(stderr, "%-48s %-6s conv %d: computed %.3fB published %gB (%+.2f%%)\n",
				tab[i].file, tab[i].active ? "active" : "total", tab[i].conv, got,
				tab[i].billions, 100 * (got - tab[i].billions) / tab[i].billions);
		ck_assert_msg(agrees(got, &tab[i]), "%s %s: computed %.3fB, published %gB",
			tab[i].file, tab[i].active ? "active" : "total", got, tab[i].billions);
		moe_params_release(&p);
		moe_arch_release(&a);
		json_decref(j);
	}
}

START_TEST(examples_match_published)
{
	check_table("examples/configs", examples, sizeof examples / sizeof examples[0]);
}
END_TEST

START_TEST(shared_configs_match_published)
{
	const char *sh = moe_test_shared();
	char dir[4200];

	if (sh == NULL)
		return;
	snprintf(dir, sizeof dir, "%s/configs", sh);
	if (access(dir, R_OK) != 0) {
		fprintf(stderr, "note: %s not found; skipping\n", dir);
		return;
	}
	check_table(dir, shared, sizeof shared / sizeof shared[0]);
}
END_TEST

/* Granite 1B-A400M's name gives labels, not counts: check the closed
 * form against the sum written out by hand instead. */
START_TEST(granite_by_hand)
{
	json_error_t je;
	json_t *j = json_load_file("examples/configs/granite-3.0-1b-a400m.json", 0, &je);
	struct moe_arch a;
	struct moe_params p;
	struct moe_error e = { 0 };
	const uint64_t d = 1024, V = 49155, L = 24, E = 32, k = 8, f = 512;
	const uint64_t attn = d * 1024 + 2 * d * 512 + 1024 * d, norms = 2 * d,
		router = d * E, expert = 3 * d * f;
	uint64_t total = V * d + L * (attn + norms + router + E * expert) + d;
	uint64_t active = V * d + L * (attn + norms + router + k * expert) + d;

	ck_assert_ptr_nonnull(j);
	moe_arch_init(&a);
	moe_params_init(&p);
	ck_assert_int_eq(moe_arch_from_config(&a, j), 0);
	ck_assert_int_eq(moe_params_from_arch(&p, &a, &e), 0);
	ck_assert_uint_eq(p.total, total);
	ck_assert_uint_eq(p.active, active);
	ck_assert_uint_eq(p.total_nonembed, total - V * d);
	/* tied: the head is the embedding, so "without input embedding" keeps it */
	ck_assert_uint_eq(p.total_no_embed, total);
	ck_assert_uint_eq(p.comp[MOE_COMP_HEAD], 0);
	ck_assert_uint_eq(p.n_moe_layers, 24);
	ck_assert_uint_eq(p.top_k, 8);
	ck_assert_uint_eq(p.n_layers, 24);
	/* tied: the head reads the whole table on every token */
	ck_assert_uint_eq(moe_params_bytes(&p, MOE_DT_BF16, 2), 2 * active);
	ck_assert_uint_eq(p.layers[5].total, attn + norms + router + E * expert);
	ck_assert_uint_eq(p.layers[5].active, attn + norms + router + k * expert);
	moe_params_release(&p);
	moe_arch_release(&a);
	json_decref(j);
}
END_TEST

/* Phi-3.5-MoE (no config in ../shared): Microsoft's model card gives
 * 41.9B total, 6.6B active; biased attention and head, LayerNorm. */
START_TEST(phimoe_published)
{
	json_t *j = json_pack("{s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:b,s:b}",
		"model_type", "phimoe", "hidden_size", 4096, "num_hidden_layers", 32,
		"num_attention_heads", 32, "num_key_value_heads", 8, "intermediate_size", 6400,
		"num_local_experts", 16, "num_experts_per_tok", 2, "vocab_size", 32064,
		"attention_bias", 1, "lm_head_bias", 1);
	const struct published total = { "phimoe", 0, ALL, 41.9, 0.1, ROUND },
		active = { "phimoe", 1, ALL, 6.6, 0.1, ROUND };
	struct moe_arch a;
	struct moe_params p;
	struct moe_error e = { 0 };

	moe_arch_init(&a);
	moe_params_init(&p);
	ck_assert_int_eq(moe_arch_from_config(&a, j), 0);
	ck_assert_int_eq(moe_params_from_arch(&p, &a, &e), 0);
	ck_assert_msg(agrees(p.total / 1e9, &total), "total %.3fB", p.total / 1e9);
	ck_assert_msg(agrees(p.active / 1e9, &active), "active %.3fB", p.active / 1e9);
	/* LayerNorm: weight and bias, two per layer and the final one */
	ck_assert_uint_eq(p.comp[MOE_COMP_NORM], (32 * 2 + 1) * 2 * 4096);
	ck_assert_uint_eq(p.comp[MOE_COMP_HEAD], 32064ull * 4096 + 32064);
	moe_params_release(&p);
	moe_arch_release(&a);
	json_decref(j);
}
END_TEST

/* models.json's per-component counts, by our component. */
static const struct {
	const char *key;
	enum moe_comp comp;
} ref_comps[] = {
	{ "token_embd", MOE_COMP_EMBED }, { "output", MOE_COMP_HEAD },
	{ "norms", MOE_COMP_NORM }, { "attention", MOE_COMP_ATTN },
	{ "router", MOE_COMP_ROUTER }, { "routed_experts", MOE_COMP_EXPERTS },
	{ "shared_experts", MOE_COMP_SHARED }, { "dense_ffn", MOE_COMP_DENSE },
};

static void tiny_one(const char *path, json_t *counts)
{
	uint64_t total = (uint64_t)json_integer_value(json_object_get(counts, "total"));
	uint64_t active = (uint64_t)json_integer_value(json_object_get(counts, "active_per_token"));

	struct moe_ckpt *ck;
	struct moe_arch a, at;
	struct moe_params pm, pt, pa;
	struct moe_error e = { 0 };
	int rc;

	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	rc = moe_ckpt_open(ck, path);
	if (rc == MOE_EUNSUP) {
		fprintf(stderr, "note: %s: %s; skipping\n", path, moe_ckpt_errstr(ck));
		moe_ckpt_free(ck);
		return;
	}
	ck_assert_msg(rc == 0, "%s: %s", path, moe_ckpt_errstr(ck));
	moe_arch_init(&a);
	moe_arch_init(&at);
	moe_params_init(&pm);
	moe_params_init(&pt);
	moe_params_init(&pa);
	/* metadata alone */
	ck_assert_msg(moe_arch_from_gguf(&a, moe_ckpt_meta(ck), NULL, 0) == 0, "%s: %s", path,
		moe_arch_errstr(&a));
	ck_assert_int_eq(moe_params_from_arch(&pm, &a, &e), 0);
	ck_assert_msg(pm.total == total && pm.active == active,
		"%s: metadata gives %llu / %llu", path, (unsigned long long)pm.total,
		(unsigned long long)pm.active);
	/* the tensors, classified by name */
	ck_assert_int_eq(moe_params_from_tensors(&pt, &a, moe_ckpt_tensor(ck, 0),
		moe_ckpt_ntensors(ck), &e), 0);
	ck_assert_msg(pt.total == total && pt.active == active,
		"%s: tensors give %llu / %llu", path, (unsigned long long)pt.total,
		(unsigned long long)pt.active);
	for (int k = 0; k < MOE_COMP_COUNT; k++)
		ck_assert_msg(pm.comp[k] == pt.comp[k], "%s: %s differs", path, moe_comp_name(k));
	ck_assert_msg(pt.comp[MOE_COMP_OTHER] == 0, "%s: unclassified tensors", path);
	for (size_t k = 0; k < sizeof ref_comps / sizeof ref_comps[0]; k++) {
		json_t *v = json_object_get(counts, ref_comps[k].key);

		ck_assert_msg(json_is_integer(v), "%s: no '%s' in models.json", path, ref_comps[k].key);
		ck_assert_msg(pt.comp[ref_comps[k].comp] == (uint64_t)json_integer_value(v),
			"%s: %s is %llu, models.json says %lld", path, ref_comps[k].key,
			(unsigned long long)pt.comp[ref_comps[k].comp],
			(long long)json_integer_value(v));
	}
	for (uint32_t i = 0; i < pm.n_layers; i++)
		ck_assert_uint_eq(pm.layers[i].total, pt.layers[i].total);
	/* the checkpoint's own best description (metadata + tensors) */
	ck_assert_int_eq(moe_arch_from_ckpt(&at, ck), 0);
	ck_assert_int_eq(moe_params_from_arch(&pa, &at, &e), 0);
	ck_assert_uint_eq(pa.total, total);
	ck_assert_uint_eq(pa.active, active);
	moe_params_release(&pa);
	/* tensor shapes alone: the total, but top-k is unknown */
	ck_assert_int_eq(moe_arch_from_tensors(&at, moe_ckpt_tensor(ck, 0), moe_ckpt_ntensors(ck)), 0);
	ck_assert_int_eq(moe_params_from_tensors(&pa, &at, moe_ckpt_tensor(ck, 0),
		moe_ckpt_ntensors(ck), &e), 0);
	ck_assert_uint_eq(pa.total, total);
	ck_assert_ptr_nonnull(strstr(at.unknown, "top-k"));
	moe_params_release(&pa);
	moe_params_release(&pm);
	moe_params_release(&pt);
	moe_arch_release(&a);
	moe_arch_release(&at);
	moe_ckpt_free(ck);
}

/* ../shared/ref/models: every model of models.json (README section 1),
 * with its quantised and dequantised copies, counted exactly from its
 * metadata and from its tensors. */
START_TEST(tiny_gguf_models)
{
	static const char *const variants[] = { "-f32", "-q8_0", "-q4_0",
		"-q8_0-dequant-f32", "-q4_0-dequant-f32" };
	const char *sh = moe_test_shared();
	char path[4600];
	json_error_t je;
	json_t *doc, *models, *m;
	size_t i;
	int seen = 0;

	if (sh == NULL)
		return;
	snprintf(path, sizeof path, "%s/ref/models/models.json", sh);
	doc = json_load_file(path, 0, &je);
	ck_assert_msg(doc != NULL, "%s: %s", path, je.text);
	models = json_object_get(doc, "models");
	json_array_foreach(models, i, m) {
		const char *stem = json_string_value(json_object_get(m, "name"));
		json_t *counts = json_object_get(m, "param_counts");

		ck_assert_ptr_nonnull(stem);
		ck_assert(json_is_object(counts));
		for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
			snprintf(path, sizeof path, "%s/ref/models/%s%s.gguf", sh, stem, variants[v]);
			if (access(path, R_OK) != 0)
				continue;
			tiny_one(path, counts);
			seen++;
		}
	}
	json_decref(doc);
	ck_assert_int_ge(seen, 8);
}
END_TEST

#define T(n, dt, ...) { .name = (char *)(n), .dtype = dt, \
	.ndim = (int)(sizeof((uint64_t[]){ __VA_ARGS__ }) / sizeof(uint64_t)), .shape = { __VA_ARGS__ } }

/* MTP blocks past the main model, FP8 scales, MXFP4 packing, vision. */
START_TEST(tensor_accounting_details)
{
	static const struct moe_tensor t[] = {
		T("model.embed_tokens.weight", MOE_DT_BF16, 10, 4),
		T("model.layers.0.mlp.gate.weight", MOE_DT_BF16, 2, 4),
		T("model.layers.0.mlp.experts.0.up_proj.weight", MOE_DT_F8_E4M3, 8, 4),
		T("model.layers.0.mlp.experts.1.up_proj.weight", MOE_DT_F8_E4M3, 8, 4),
		T("model.layers.0.mlp.experts.1.up_proj.weight_scale_inv", MOE_DT_F32, 1, 1),
		T("model.layers.1.mlp.experts.gate_up_proj_blocks", MOE_DT_U8, 2, 8, 1, 16),
		T("model.layers.1.mlp.experts.gate_up_proj_scales", MOE_DT_U8, 2, 8, 1),
		T("model.layers.2.eh_proj.weight", MOE_DT_BF16, 4, 8),
		T("model.layers.2.self_attn.o_proj.weight", MOE_DT_BF16, 4, 4),
		T("vision_model.patch.weight", MOE_DT_BF16, 3, 3),
		T("lm_head.weight", MOE_DT_BF16, 10, 4),
	};
	struct moe_arch a;
	struct moe_params p;
	struct moe_error e = { 0 };

	moe_arch_init(&a);
	moe_params_init(&p);
	ck_assert_int_eq(moe_arch_alloc_layers(&a, 2), 0);
	a.d_model = 4;
	for (int i = 0; i < 2; i++) {
		a.layers[i].ffn = MOE_FFN_MOE;
		a.layers[i].n_expert = 2;
		a.layers[i].top_k = 1;
	}
	ck_assert_int_eq(moe_params_from_tensors(&p, &a, t, sizeof t / sizeof t[0], &e), 0);
	ck_assert_uint_eq(p.scale_elems, 1 + 16);
	ck_assert_uint_eq(p.comp[MOE_COMP_EXPERTS], 64 + 2 * 8 * 16 * 2);
	ck_assert_uint_eq(p.comp[MOE_COMP_MTP], 32 + 16);
	ck_assert_uint_eq(p.comp[MOE_COMP_VISION], 9);
	ck_assert_uint_eq(p.total, 40 + 8 + 64 + 512 + 40);
	ck_assert_uint_eq(p.total_all, p.total + 48 + 9);
	/* layer 0: 2 experts, top-1 -> half of them; layer 1: stacked, top-1 of 2 */
	ck_assert_uint_eq(p.layers[0].active, 8 + 32);
	ck_assert_uint_eq(p.layers[1].active, 256);
	ck_assert(p.active_known);
	/* JSON form: members and per-layer rows */
	{
		json_t *j = moe_params_to_json(&p, &a), *d;

		ck_assert_int_eq(json_integer_value(json_object_get(j, "total")), (json_int_t)p.total);
		ck_assert_int_eq(json_array_size(json_object_get(j, "layers")), 2);
		ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(
			json_object_get(j, "components"), "mtp"), "total")), 48);
		json_decref(j);
		d = moe_params_differences(&p, &p);
		ck_assert_int_eq(json_array_size(d), 1);   /* the scale tensors */
		json_decref(d);
		{
			struct moe_params q = p;
			struct moe_layer_params ql[2] = { p.layers[0], p.layers[1] };

			q.layers = ql;
			q.total += 5;
			ql[1].total += 5;
			d = moe_params_differences(&q, &p);
			ck_assert_int_eq(json_array_size(d), 3);
			ck_assert_ptr_nonnull(strstr(json_string_value(json_array_get(d, 1)), "layer 1: "));
			json_decref(d);
		}
	}
	moe_params_release(&p);
	/* without an arch: no top-k, and block 2 is a block like the others */
	ck_assert_int_eq(moe_params_from_tensors(&p, NULL, t, sizeof t / sizeof t[0], &e), 0);
	ck_assert(!p.active_known);
	{
		json_t *j = moe_params_to_json(&p, NULL);

		ck_assert(json_is_null(json_object_get(j, "active")));
		json_decref(j);
	}
	ck_assert_uint_eq(p.n_layers, 3);
	ck_assert_uint_eq(p.comp[MOE_COMP_MTP], 32);
	moe_params_release(&p);
	moe_arch_release(&a);
}
END_TEST

START_TEST(bytes_kv_and_bounds)
{
	json_error_t je;
	json_t *j;
	struct moe_arch a;
	struct moe_params p;
	struct moe_error e = { 0 };

	ck_assert_uint_eq(moe_dtype_param_bytes(MOE_DT_F32, 10), 40);
	ck_assert_uint_eq(moe_dtype_param_bytes(MOE_DT_BF16, 10), 20);
	ck_assert_uint_eq(moe_dtype_param_bytes(MOE_DT_Q8_0, 64), 68);
	ck_assert_uint_eq(moe_dtype_param_bytes(MOE_DT_Q4_0, 32), 18);
	ck_assert_uint_eq(moe_dtype_param_bytes(MOE_DT_Q4_K, 256), 144);
	ck_assert_uint_eq(moe_dtype_param_bytes(MOE_DT_Q6_K, 256), 210);
	ck_assert_uint_eq(moe_dtype_param_bytes(MOE_DT_Q2_K, 256), 84);
	ck_assert_uint_eq(moe_dtype_param_bytes(MOE_DT_MXFP4, 32), 17);
	ck_assert_uint_eq(moe_dtype_param_bytes(MOE_DT_F8_E4M3, 16384), 16384 + 4);

	j = json_load_file("examples/configs/mixtral-8x7b.json", 0, &je);
	moe_arch_init(&a);
	moe_params_init(&p);
	ck_assert_int_eq(moe_arch_from_config(&a, j), 0);
	json_decref(j);
	ck_assert_int_eq(moe_params_from_arch(&p, &a, &e), 0);
	/* 32 layers x 8 kv heads x (128 + 128) x 2 bytes */
	ck_assert_uint_eq(moe_kv_bytes_per_token(&a, 2), 131072);
	ck_assert_uint_eq(moe_kv_bytes(&a, 1000, 2), 131072000);
	ck_assert_uint_eq(moe_params_bytes(&p, MOE_DT_BF16, 0), 2 * p.total);
	ck_assert_uint_eq(moe_params_bytes(&p, MOE_DT_BF16, 1), 2 * p.active);
	ck_assert_uint_eq(moe_params_bytes(&p, MOE_DT_BF16, 2),
		2 * (p.active - p.comp[MOE_COMP_EMBED] + 4096));
	/* Q4_K: norms and routers stay F32 */
	ck_assert_uint_eq(moe_params_bytes(&p, MOE_DT_Q4_K, 0),
		(p.total - p.comp[MOE_COMP_NORM] - p.comp[MOE_COMP_ROUTER]) / 256 * 144 +
		4 * (p.comp[MOE_COMP_NORM] + p.comp[MOE_COMP_ROUTER]));
	ck_assert(fabs(moe_decode_bound(1e12, 1000000000) - 1000.0) < 1e-9);
	ck_assert(moe_decode_bound(1e12, 0) == 0.0);
	ck_assert(fabs(moe_params_sparsity(&p) - (double)p.active / p.total) < 1e-12);
	moe_params_release(&p);
	moe_arch_release(&a);

	/* MLA caches its latent: 61 x (512 + 64) x 2 bytes */
	j = json_load_file("examples/configs/deepseek-v3.json", 0, &je);
	ck_assert_int_eq(moe_arch_from_config(&a, j), 0);
	json_decref(j);
	ck_assert_uint_eq(moe_kv_bytes_per_token(&a, 2), 61 * 576 * 2);
	moe_arch_release(&a);

	/* gpt-oss: 18 sliding layers hold at most 128 tokens */
	j = json_load_file("examples/configs/gpt-oss-120b.json", 0, &je);
	ck_assert_int_eq(moe_arch_from_config(&a, j), 0);
	json_decref(j);
	ck_assert_uint_eq(moe_kv_bytes_per_token(&a, 2), 18 * 8 * 128 * 2);
	ck_assert_uint_eq(moe_kv_bytes(&a, 1000, 2), 18 * 2048ull * 1000 + 18 * 2048ull * 128);
	ck_assert_uint_eq(moe_kv_bytes(&a, 100, 2), 36 * 2048ull * 100);
	moe_arch_release(&a);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("params");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, examples_match_published);
	tcase_add_test(tc, shared_configs_match_published);
	tcase_add_test(tc, granite_by_hand);
	tcase_add_test(tc, phimoe_published);
	tcase_add_test(tc, tiny_gguf_models);
	tcase_add_test(tc, tensor_accounting_details);
	tcase_add_test(tc, bytes_kv_and_bounds);
	suite_add_tcase(s, tc);
	return moe_test_run(s);
}
