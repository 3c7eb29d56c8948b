/* Tests of the architecture description: config.json families, GGUF metadata, tensor shapes, bad inputs. */
#include <dirent.h>

#include "arch.h"
#include "error.h"
#include "testutil.h"

static json_t *load(const char *path)
{
	json_error_t je;
	json_t *j = json_load_file(path, 0, &je);

	ck_assert_msg(j != NULL, "%s: %s", path, je.text);
	return j;
}

static void build(struct moe_arch *a, const char *path)
{
	json_t *j = load(path);
	int rc;

	moe_arch_init(a);
	rc = moe_arch_from_config(a, j);
	ck_assert_msg(rc == 0, "%s: %s", path, moe_arch_errstr(a));
	json_decref(j);
}

static uint32_t count_ffn(const struct moe_arch *a, enum moe_ffn_kind k)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < a->n_layers; i++)
		n += a->layers[i].ffn == k;
	return n;
}

START_TEST(deepseek_v3_layout)
{
	struct moe_arch a;
	const struct moe_layer *L;

	build(&a, "examples/configs/deepseek-v3.json");
	ck_assert_str_eq(a.family, "deepseek_v3");
	ck_assert_str_eq(a.source, "config");
	ck_assert_uint_eq(a.n_layers, 61);
	ck_assert_uint_eq(a.n_mtp, 1);
	ck_assert_uint_eq(count_ffn(&a, MOE_FFN_DENSE), 3);
	ck_assert_uint_eq(count_ffn(&a, MOE_FFN_MOE), 58);
	ck_assert_int_eq(a.layers[2].ffn, MOE_FFN_DENSE);
	L = &a.layers[3];
	ck_assert_int_eq(L->attn, MOE_ATTN_MLA);
	ck_assert_uint_eq(L->q_lora_rank, 1536);
	ck_assert_uint_eq(L->kv_lora_rank, 512);
	ck_assert_uint_eq(L->qk_rope_dim, 64);
	ck_assert_uint_eq(L->head_dim, 192);
	ck_assert_uint_eq(L->head_dim_v, 128);
	ck_assert_uint_eq(L->n_expert, 256);
	ck_assert_uint_eq(L->top_k, 8);
	ck_assert_uint_eq(L->d_expert, 2048);
	ck_assert_uint_eq(L->n_shared, 1);
	ck_assert_uint_eq(L->d_shared, 2048);
	ck_assert(L->score_bias);
	ck_assert_int_eq(a.gating, MOE_GATE_SIGMOID);
	ck_assert(a.norm_topk);
	ck_assert(a.routed_scale == 2.5);
	ck_assert_uint_eq(a.n_group, 8);
	ck_assert_uint_eq(a.topk_group, 4);
	ck_assert_str_eq(moe_attn_kind_name(L->attn), "mla");
	ck_assert_ptr_eq(moe_arch_first_layer(&a, 1), &a.layers[3]);
	ck_assert_uint_eq(moe_arch_count(&a, MOE_COUNT_DENSE), 3);
	{
		json_t *j = moe_arch_to_json(&a);

		ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "attention"),
			"kind")), "mla");
		ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "moe"),
			"n_expert")), 256);
		json_decref(j);
	}
	moe_arch_release(&a);
	ck_assert_ptr_null(a.layers);
}
END_TEST

/* Qwen3-Next: gated full attention every 4th layer, Gated DeltaNet otherwise. */
START_TEST(qwen3_next_layout)
{
	struct moe_arch a;
	json_t *j = json_pack("{s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i}",
		"model_type", "qwen3_next", "hidden_size", 64, "num_hidden_layers", 8,
		"num_attention_heads", 4, "num_key_value_heads", 2, "head_dim", 32,
		"moe_intermediate_size", 16, "shared_expert_intermediate_size", 16,
		"num_experts", 8, "num_experts_per_tok", 2, "vocab_size", 100,
		"full_attention_interval", 4, "linear_num_key_heads", 2,
		"linear_num_value_heads", 4, "linear_key_head_dim", 8, "linear_value_head_dim", 8);

	moe_arch_init(&a);
	ck_assert_int_eq(moe_arch_from_config(&a, j), 0);
	ck_assert_int_eq(a.layers[3].attn, MOE_ATTN_GQA);
	ck_assert(a.layers[3].q_gate);
	ck_assert_int_eq(a.layers[0].attn, MOE_ATTN_SSM);
	/* qkvz 64*(32+64) + ba 64*8 + conv (2*16+32)*4 + dt/A 8 + norm 8 + out 32*64 */
	ck_assert_uint_eq(a.layers[0].mixer_params, 6144 + 512 + 256 + 8 + 8 + 2048);
	ck_assert(a.layers[0].shared_gate);
	moe_arch_release(&a);
	json_decref(j);
}
END_TEST

START_TEST(family_layouts)
{
	struct moe_arch a;

	build(&a, "examples/configs/mixtral-8x7b.json");
	ck_assert_int_eq(a.layers[0].attn, MOE_ATTN_GQA);
	ck_assert_uint_eq(a.layers[0].n_head_kv, 8);
	ck_assert_uint_eq(count_ffn(&a, MOE_FFN_MOE), 32);
	ck_assert(!a.tied);
	moe_arch_release(&a);

	build(&a, "examples/configs/llama-4-scout.json");
	ck_assert_uint_eq(count_ffn(&a, MOE_FFN_MOE), 48);
	ck_assert_uint_eq(a.layers[0].n_shared, 1);
	ck_assert_uint_eq(a.layers[0].window, 8192);
	ck_assert_uint_eq(a.layers[3].window, 0);      /* every 4th layer global */
	ck_assert(a.vision_params > 800000000ull && a.vision_params < 1000000000ull);
	moe_arch_release(&a);

	build(&a, "examples/configs/gpt-oss-120b.json");
	ck_assert_uint_eq(a.layers[0].window, 128);
	ck_assert_uint_eq(a.layers[1].window, 0);
	ck_assert(a.layers[0].sinks && a.layers[0].expert_bias && a.layers[0].router_bias);
	moe_arch_release(&a);

	build(&a, "examples/configs/qwen1.5-moe-a2.7b.json");
	ck_assert(a.layers[0].qkv_bias && a.layers[0].shared_gate);
	ck_assert_uint_eq(a.layers[0].d_shared, 5632);
	ck_assert_int_eq(a.layers[0].attn, MOE_ATTN_MHA);
	moe_arch_release(&a);

	build(&a, "examples/configs/olmoe-1b-7b.json");
	ck_assert_uint_eq(a.layers[0].q_norm, 2048);
	moe_arch_release(&a);

	build(&a, "examples/configs/granite-3.0-1b-a400m.json");
	ck_assert(a.tied);
	ck_assert_uint_eq(a.vocab, 49155);
	moe_arch_release(&a);
}
END_TEST

/* Layouts of the hybrid and encoder-decoder families, from inline configs. */
START_TEST(hybrid_and_enc_dec)
{
	struct moe_arch a;
	json_t *j;

	moe_arch_init(&a);
	j = json_pack("{s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i}",
		"model_type", "jamba", "hidden_size", 64, "num_hidden_layers", 16,
		"num_attention_heads", 4, "num_key_value_heads", 2, "intermediate_size", 96,
		"num_experts", 4, "num_experts_per_tok", 2, "vocab_size", 100,
		"attn_layer_period", 8, "attn_layer_offset", 4, "expert_layer_period", 2,
		"expert_layer_offset", 1);
	ck_assert_int_eq(moe_arch_from_config(&a, j), 0);
	ck_assert_int_eq(a.layers[4].attn, MOE_ATTN_GQA);
	ck_assert_int_eq(a.layers[12].attn, MOE_ATTN_GQA);
	ck_assert_int_eq(a.layers[0].attn, MOE_ATTN_SSM);
	ck_assert(a.layers[0].mixer_params > 0);
	ck_assert_uint_eq(count_ffn(&a, MOE_FFN_MOE), 8);
	ck_assert_int_eq(a.layers[1].ffn, MOE_FFN_MOE);
	json_decref(j);

	j = json_pack("{s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i}",
		"model_type", "switch_transformers", "d_model", 32, "d_kv", 8, "num_heads", 4,
		"num_layers", 4, "num_decoder_layers", 4, "d_ff", 64, "num_experts", 8,
		"num_selected_experts", 1, "vocab_size", 50, "encoder_sparse_step", 2,
		"decoder_sparse_step", 2);
	ck_assert_int_eq(moe_arch_from_config(&a, j), 0);
	ck_assert(a.enc_dec);
	ck_assert_uint_eq(a.n_layers, 8);
	ck_assert_uint_eq(a.n_enc_layers, 4);
	ck_assert_uint_eq(count_ffn(&a, MOE_FFN_MOE), 4);
	ck_assert_int_eq(a.layers[1].ffn, MOE_FFN_MOE);
	ck_assert_int_eq(a.layers[0].ffn, MOE_FFN_DENSE);
	ck_assert(a.layers[5].cross_attn && !a.layers[1].cross_attn);
	json_decref(j);
	moe_arch_release(&a);
}
END_TEST

START_TEST(bad_configs)
{
	struct moe_arch a;
	json_t *j;

	moe_arch_init(&a);
	j = json_pack("{s:s}", "model_type", "llama");
	ck_assert_int_eq(moe_arch_from_config(&a, j), MOE_EUNSUP);
	ck_assert_ptr_nonnull(strstr(moe_arch_errstr(&a), "unsupported model_type 'llama'"));
	ck_assert_ptr_nonnull(strstr(moe_arch_errstr(&a), "mixtral"));
	json_decref(j);

	j = json_pack("{s:i}", "hidden_size", 5);
	ck_assert_int_eq(moe_arch_from_config(&a, j), MOE_EUNSUP);
	ck_assert_ptr_nonnull(strstr(moe_arch_errstr(&a), "no model_type"));
	json_decref(j);

	j = json_pack("[]");
	ck_assert_int_eq(moe_arch_from_config(&a, j), MOE_EFORMAT);
	json_decref(j);

	/* missing key, wrong types, impossible counts, absurd sizes */
	j = json_pack("{s:s,s:i,s:i,s:i,s:i,s:i}", "model_type", "mixtral",
		"num_hidden_layers", 2, "num_attention_heads", 4, "intermediate_size", 8,
		"num_local_experts", 4, "vocab_size", 10);
	ck_assert_int_eq(moe_arch_from_config(&a, j), MOE_EFORMAT);
	ck_assert_str_eq(moe_arch_errstr(&a), "config.json: missing 'hidden_size'");
	json_object_set_new(j, "hidden_size", json_string("big"));
	ck_assert_int_eq(moe_arch_from_config(&a, j), MOE_EFORMAT);
	json_object_set_new(j, "hidden_size", json_integer(-4));
	ck_assert_int_eq(moe_arch_from_config(&a, j), MOE_EFORMAT);
	json_object_set_new(j, "hidden_size", json_real(16.5));
	ck_assert_int_eq(moe_arch_from_config(&a, j), MOE_EFORMAT);
	json_object_set_new(j, "hidden_size", json_integer(16));
	json_object_set_new(j, "num_experts_per_tok", json_integer(5));
	ck_assert_int_eq(moe_arch_from_config(&a, j), MOE_EFORMAT);
	ck_assert_ptr_nonnull(strstr(moe_arch_errstr(&a), "bad expert counts"));
	json_object_set_new(j, "num_experts_per_tok", json_integer(2));
	ck_assert_int_eq(moe_arch_from_config(&a, j), 0);
	json_object_set_new(j, "num_hidden_layers", json_integer(1000000));
	ck_assert_int_eq(moe_arch_from_config(&a, j), MOE_ERANGE);
	json_object_set_new(j, "num_hidden_layers", json_integer(2));
	json_object_set_new(j, "hidden_size", json_integer(1 << 30));
	ck_assert_int_eq(moe_arch_from_config(&a, j), MOE_ERANGE);
	json_object_set_new(j, "hidden_size", json_integer(16));
	json_object_set_new(j, "vocab_size", json_integer(5000000000ll));
	ck_assert_int_eq(moe_arch_from_config(&a, j), MOE_ERANGE);
	ck_assert_ptr_null(a.layers);
	/* every width in range, yet too many parameters to count in 64 bits */
	json_object_set_new(j, "vocab_size", json_integer(10));
	json_object_set_new(j, "hidden_size", json_integer(4000000));
	json_object_set_new(j, "intermediate_size", json_integer(4000000));
	json_object_set_new(j, "num_local_experts", json_integer(60000));
	json_object_set_new(j, "num_hidden_layers", json_integer(4000));
	ck_assert_int_eq(moe_arch_from_config(&a, j), MOE_ERANGE);
	ck_assert_ptr_nonnull(strstr(moe_arch_errstr(&a), "too large to count"));
	json_decref(j);

	j = json_pack("{s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i}", "model_type", "minicpm",
		"hidden_size", 16, "num_hidden_layers", 2, "num_attention_heads", 4,
		"intermediate_size", 8, "vocab_size", 10, "num_key_value_heads", 4,
		"max_position_embeddings", 64);
	ck_assert_int_eq(moe_arch_from_config(&a, j), MOE_EUNSUP);
	ck_assert_ptr_nonnull(strstr(moe_arch_errstr(&a), "dense model"));
	json_decref(j);
	moe_arch_release(&a);
}
END_TEST

/* Every real config.json in ../shared/configs builds and has MoE layers. */
START_TEST(shared_configs_build)
{
	const char *sh = moe_test_shared();
	char dir[4096], path[4600];
	struct dirent *de;
	DIR *d;
	int n = 0;

	if (sh == NULL)
		return;
	snprintf(dir, sizeof dir, "%s/configs", sh);
	if ((d = opendir(dir)) == NULL) {
		fprintf(stderr, "note: %s not found; skipping\n", dir);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		struct moe_arch a;
		json_t *j;
		size_t len = strlen(de->d_name);
		int rc;

		if (len < 5 || strcmp(de->d_name + len - 5, ".json") != 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		j = load(path);
		moe_arch_init(&a);
		rc = moe_arch_from_config(&a, j);
		ck_assert_msg(rc == 0, "%s: %s", de->d_name, moe_arch_errstr(&a));
		ck_assert_msg(count_ffn(&a, MOE_FFN_MOE) > 0, "%s: no MoE layer", de->d_name);
		moe_arch_release(&a);
		json_decref(j);
		n++;
	}
	closedir(d);
	ck_assert_int_ge(n, 30);
}
END_TEST

/* A GGUF-style metadata set built in memory: keys the builder reads. */
static struct moe_meta *tiny_meta(const char *arch)
{
	struct moe_meta *m;
	char k[128];

	ck_assert_int_eq(moe_meta_new(&m), 0);
	moe_meta_set_str(m, "general.architecture", arch);
#define SETU(key, v) do { snprintf(k, sizeof k, "%s." key, arch); moe_meta_set_u32(m, k, v); } while (0)
	SETU("block_count", 3);
	SETU("embedding_length", 64);
	SETU("attention.head_count", 4);
	SETU("attention.head_count_kv", 4);
	SETU("expert_count", 16);
	SETU("expert_used_count", 4);
	SETU("vocab_size", 320);
	SETU("feed_forward_length", 128);
	SETU("expert_feed_forward_length", 32);
	SETU("leading_dense_block_count", 1);
	SETU("expert_shared_count", 2);
#undef SETU
	return m;
}

START_TEST(gguf_metadata)
{
	struct moe_arch a;
	struct moe_meta *m = tiny_meta("deepseek");

	moe_arch_init(&a);
	ck_assert_int_eq(moe_arch_from_gguf(&a, m, NULL, 0), 0);
	ck_assert_str_eq(a.family, "deepseek");
	ck_assert_str_eq(a.source, "gguf");
	ck_assert_int_eq(a.layers[0].ffn, MOE_FFN_DENSE);
	ck_assert_uint_eq(a.layers[0].d_ff, 128);
	ck_assert_uint_eq(a.layers[1].d_shared, 64);
	ck_assert_uint_eq(a.layers[2].n_expert, 16);
	/* MLA whose rope part is wider than the key */
	moe_meta_set_u32(m, "deepseek.attention.kv_lora_rank", 16);
	moe_meta_set_u32(m, "deepseek.attention.key_length", 8);
	moe_meta_set_u32(m, "deepseek.rope.dimension_count", 16);
	ck_assert_int_eq(moe_arch_from_gguf(&a, m, NULL, 0), MOE_ERANGE);
	moe_meta_remove(m, "deepseek.attention.kv_lora_rank");
	ck_assert_int_eq(moe_arch_from_gguf(&a, m, NULL, 0), 0);
	moe_meta_set_u32(m, "deepseek.expert_used_count", 17);
	ck_assert_int_eq(moe_arch_from_gguf(&a, m, NULL, 0), MOE_EFORMAT);
	moe_meta_set_str(m, "deepseek.block_count", "three");
	ck_assert_int_eq(moe_arch_from_gguf(&a, m, NULL, 0), MOE_EFORMAT);
	moe_meta_remove(m, "general.architecture");
	ck_assert_int_eq(moe_arch_from_gguf(&a, m, NULL, 0), MOE_EFORMAT);
	ck_assert_ptr_nonnull(strstr(moe_arch_errstr(&a), "general.architecture"));
	ck_assert_int_eq(moe_arch_from_gguf(&a, NULL, NULL, 0), MOE_EFORMAT);
	moe_meta_free(m);
	/* a dense llama GGUF keeps its own name */
	m = tiny_meta("llama");
	moe_meta_remove(m, "llama.expert_count");
	ck_assert_int_eq(moe_arch_from_gguf(&a, m, NULL, 0), 0);
	ck_assert_str_eq(a.family, "llama");
	ck_assert_int_eq(a.layers[2].ffn, MOE_FFN_DENSE);
	moe_meta_set_u32(m, "llama.expert_count", 16);
	ck_assert_int_eq(moe_arch_from_gguf(&a, m, NULL, 0), 0);
	ck_assert_str_eq(a.family, "mixtral");
	moe_meta_free(m);
	moe_arch_release(&a);
}
END_TEST

#define T2(n, r, c) { .name = (char *)(n), .dtype = MOE_DT_F32, .ndim = 2, .shape = { r, c } }
#define T1(n, r) { .name = (char *)(n), .dtype = MOE_DT_F32, .ndim = 1, .shape = { r } }
#define T3(n, e, r, c) { .name = (char *)(n), .dtype = MOE_DT_F32, .ndim = 3, .shape = { e, r, c } }

START_TEST(from_tensor_shapes)
{
	static const struct moe_tensor t[] = {
		T2("model.embed_tokens.weight", 100, 64),
		T2("model.layers.0.self_attn.q_proj.weight", 256, 64),
		T2("model.layers.0.self_attn.k_proj.weight", 128, 64),
		T2("model.layers.0.self_attn.v_proj.weight", 128, 64),
		T2("model.layers.0.self_attn.o_proj.weight", 64, 256),
		T1("model.layers.0.self_attn.q_norm.weight", 64),
		T2("model.layers.0.mlp.gate.weight", 8, 64),
		T2("model.layers.0.mlp.experts.0.up_proj.weight", 32, 64),
		T2("model.layers.1.mlp.up_proj.weight", 96, 64),
		T2("lm_head.weight", 100, 64),
	};
	static const struct moe_tensor g[] = {
		T2("token_embd.weight", 320, 64),
		T3("blk.0.ffn_up_exps.weight", 8, 128, 64),
		T2("blk.0.ffn_gate_inp.weight", 8, 64),
		T2("blk.0.attn_q.weight", 64, 64),
		T2("blk.0.attn_k.weight", 32, 64),
	};
	static const struct moe_tensor none[] = { T2("foo", 2, 2) };
	struct moe_arch a;

	moe_arch_init(&a);
	ck_assert_int_eq(moe_arch_from_tensors(&a, t, sizeof t / sizeof t[0]), 0);
	ck_assert_str_eq(a.source, "tensors");
	ck_assert_uint_eq(a.d_model, 64);
	ck_assert_uint_eq(a.vocab, 100);
	ck_assert(!a.tied);
	ck_assert_uint_eq(a.n_layers, 2);
	ck_assert_int_eq(a.layers[0].ffn, MOE_FFN_MOE);
	ck_assert_uint_eq(a.layers[0].n_expert, 8);
	ck_assert_uint_eq(a.layers[0].d_expert, 32);
	ck_assert_uint_eq(a.layers[0].head_dim, 64);   /* from the per-head q norm */
	ck_assert_uint_eq(a.layers[0].n_head, 4);
	ck_assert_uint_eq(a.layers[0].n_head_kv, 2);
	ck_assert_int_eq(a.layers[1].ffn, MOE_FFN_DENSE);
	ck_assert_uint_eq(a.layers[1].d_ff, 96);
	ck_assert_ptr_nonnull(strstr(a.unknown, "top-k"));
	ck_assert_int_eq(moe_arch_from_tensors(&a, g, sizeof g / sizeof g[0]), 0);
	ck_assert(a.tied);
	ck_assert_uint_eq(a.layers[0].n_expert, 8);
	ck_assert_uint_eq(a.layers[0].d_expert, 128);
	ck_assert_int_eq(moe_arch_from_tensors(&a, none, 1), MOE_EFORMAT);
	ck_assert_int_eq(moe_arch_from_tensors(&a, g + 1, 2), MOE_EFORMAT);
	ck_assert_ptr_nonnull(strstr(moe_arch_errstr(&a), "embedding or output head"));
	moe_arch_release(&a);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("arch");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, deepseek_v3_layout);
	tcase_add_test(tc, family_layouts);
	tcase_add_test(tc, qwen3_next_layout);
	tcase_add_test(tc, hybrid_and_enc_dec);
	tcase_add_test(tc, bad_configs);
	tcase_add_test(tc, shared_configs_build);
	tcase_add_test(tc, gguf_metadata);
	tcase_add_test(tc, from_tensor_shapes);
	suite_add_tcase(s, tc);
	return moe_test_run(s);
}
