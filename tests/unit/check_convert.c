/* Tests of moe-convert's library: name tables, RoPE row order, stacking, subsets, casts, round trips. */
#include <dirent.h>
#include <math.h>
#include <sys/stat.h>

#include "ckpt.h"
#include "convert.h"
#include "error.h"
#include "fp8block.h"
#include "fpconv.h"
#include "hfconfig.h"
#include "namemap.h"
#include "safetensors.h"
#include "testutil.h"

/* One small config per family (HF form). */
static const char *configs[] = {
	"{\"model_type\":\"mixtral\",\"hidden_size\":32,\"intermediate_size\":48,"
	"\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
	"\"num_local_experts\":4,\"num_experts_per_tok\":2,\"vocab_size\":50,"
	"\"max_position_embeddings\":512,\"rms_norm_eps\":1e-5,\"rope_theta\":10000.0}",
	"{\"model_type\":\"qwen2_moe\",\"hidden_size\":32,\"intermediate_size\":64,"
	"\"moe_intermediate_size\":16,\"shared_expert_intermediate_size\":48,"
	"\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
	"\"num_experts\":6,\"num_experts_per_tok\":2,\"vocab_size\":50,"
	"\"max_position_embeddings\":512,\"rms_norm_eps\":1e-6,\"rope_theta\":1e6}",
	"{\"model_type\":\"qwen3_moe\",\"hidden_size\":32,\"head_dim\":16,\"moe_intermediate_size\":16,"
	"\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
	"\"num_experts\":8,\"num_experts_per_tok\":2,\"vocab_size\":50,\"norm_topk_prob\":true,"
	"\"max_position_embeddings\":512,\"rms_norm_eps\":1e-6,\"rope_theta\":1e6}",
	"{\"model_type\":\"olmoe\",\"hidden_size\":32,\"intermediate_size\":16,"
	"\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":4,"
	"\"num_experts\":8,\"num_experts_per_tok\":4,\"vocab_size\":50,"
	"\"max_position_embeddings\":512,\"rms_norm_eps\":1e-5,\"rope_theta\":10000.0}",
	"{\"model_type\":\"granitemoe\",\"hidden_size\":32,\"intermediate_size\":16,"
	"\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
	"\"num_local_experts\":4,\"num_experts_per_tok\":2,\"vocab_size\":50,"
	"\"max_position_embeddings\":512,\"rms_norm_eps\":1e-6,\"rope_theta\":10000.0,"
	"\"embedding_multiplier\":12.0,\"residual_multiplier\":0.22,\"attention_multiplier\":0.125,"
	"\"logits_scaling\":6.0,\"tie_word_embeddings\":true}",
	"{\"model_type\":\"deepseek\",\"hidden_size\":32,\"intermediate_size\":96,"
	"\"moe_intermediate_size\":16,\"n_shared_experts\":2,\"first_k_dense_replace\":1,"
	"\"num_hidden_layers\":3,\"num_attention_heads\":4,\"num_key_value_heads\":4,"
	"\"n_routed_experts\":8,\"num_experts_per_tok\":2,\"vocab_size\":50,"
	"\"max_position_embeddings\":512,\"rms_norm_eps\":1e-6,\"rope_theta\":10000.0}",
	"{\"model_type\":\"deepseek_v3\",\"hidden_size\":32,\"intermediate_size\":64,"
	"\"moe_intermediate_size\":16,\"n_shared_experts\":1,\"first_k_dense_replace\":1,"
	"\"num_hidden_layers\":3,\"num_attention_heads\":4,\"num_key_value_heads\":4,"
	"\"n_routed_experts\":8,\"num_experts_per_tok\":2,\"vocab_size\":50,"
	"\"q_lora_rank\":16,\"kv_lora_rank\":16,\"qk_nope_head_dim\":8,\"qk_rope_head_dim\":4,"
	"\"v_head_dim\":8,\"routed_scaling_factor\":2.5,\"norm_topk_prob\":true,"
	"\"scoring_func\":\"sigmoid\",\"topk_method\":\"noaux_tc\",\"n_group\":1,\"topk_group\":1,"
	"\"max_position_embeddings\":512,\"rms_norm_eps\":1e-6,\"rope_theta\":10000.0}",
};
#define NCONF (sizeof configs / sizeof configs[0])

static char dir[] = "/tmp/moe-conv.XXXXXX";

static void setup(void) { ck_assert_ptr_nonnull(mkdtemp(dir)); }
static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
	strcpy(dir, "/tmp/moe-conv.XXXXXX");
}

static struct moe_convert_opts opts(enum moe_conv_format f)
{
	struct moe_convert_opts o = { .format = f, .dtype = MOE_DT_INVALID };
	return o;
}

/* Writes a conversion to dir/name (file) or dir/name/ (HF directory). */
static void write_conv(struct moe_conversion *c, const char *name, int as_dir)
{
	char path[512];
	struct moe_output *o;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (as_dir) {
		ck_assert_msg(moe_convert_write_dir(c, path, 0, 0) == 0, "%s", moe_convert_errstr(c));
		return;
	}
	ck_assert_int_eq(moe_output_open(&o, path, MOE_OUT_FORCE), 0);
	ck_assert_msg(moe_convert_write(c, o) == 0, "%s", moe_convert_errstr(c));
	ck_assert_int_eq(moe_output_commit(o), 0);
	moe_output_free(o);
}

static struct moe_ckpt *open_ck(const char *name)
{
	char path[512];
	struct moe_ckpt *ck;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	ck_assert_msg(moe_ckpt_open(ck, path) == 0, "%s: %s", path, moe_ckpt_errstr(ck));
	return ck;
}

static void init_to(const char *config, enum moe_conv_format f, const char *name, int as_dir)
{
	json_t *j = json_loads(config, 0, NULL);
	struct moe_convert_opts o = opts(f);
	struct moe_conversion *c;

	ck_assert_ptr_nonnull(j);
	ck_assert_msg(moe_convert_new_init(&c, j, 42, &o) == 0, "%s", moe_convert_errstr(c));
	write_conv(c, name, as_dir);
	moe_convert_free(c);
	json_decref(j);
}

static void convert(const char *from, enum moe_conv_format f, const char *to, int as_dir,
	const struct moe_convert_opts *o_in)
{
	struct moe_ckpt *ck = open_ck(from);
	struct moe_convert_opts o = o_in ? *o_in : opts(f);
	struct moe_conversion *c;

	o.format = f;
	ck_assert_msg(moe_convert_new(&c, ck, &o) == 0, "%s", moe_convert_errstr(c));
	write_conv(c, to, as_dir);
	moe_convert_free(c);
	moe_ckpt_free(ck);
}

static int files_equal(const char *a, const char *b)
{
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "cmp -s %s/%s %s/%s", dir, a, dir, b);
	return system(cmd) == 0;
}

/* Reads a whole tensor as F32. */
static float *tensor_f32(struct moe_ckpt *ck, const char *name, uint64_t *n)
{
	const struct moe_tensor *t = moe_ckpt_find(ck, name);
	void *raw;
	float *f;

	ck_assert_msg(t != NULL, "no tensor '%s'", name);
	*n = moe_tensor_numel(t);
	raw = malloc(t->nbytes);
	f = malloc(*n * sizeof *f);
	ck_assert_int_eq(moe_ckpt_read(ck, t, 0, raw, t->nbytes), 0);
	ck_assert_int_eq(moe_cast(MOE_DT_F32, f, t->dtype, raw, *n), 0);
	free(raw);
	return f;
}

START_TEST(name_tables_roundtrip)
{
	static const char *arches[] = { "llama", "qwen2moe", "qwen3moe", "olmoe",
		"granitemoe", "deepseek", "deepseek2" };
	for (size_t a = 0; a < sizeof arches / sizeof arches[0]; a++) {
		const struct moe_family *f = moe_family_by_gguf_arch(arches[a]);
		ck_assert_ptr_nonnull(f);
		for (size_t i = 0; i < moe_family_nentries(f); i++) {
			const struct moe_name_match *e = moe_family_entry(f, i);
			struct moe_name_match m;
			char hf[256], gg[256];
			if (e->flags & MOE_MAP_HALF1)
				continue;   /* the fused HF tensor maps to HALF0 first */
			ck_assert_int_eq(moe_namemap_format(e->hf_pat, 7, 3, hf, sizeof hf), 0);
			ck_assert_int_eq(moe_namemap_match(f, hf, 1, &m), 0);
			ck_assert_int_eq(m.layer, strstr(e->hf_pat, "{L}") ? 7 : -1);
			ck_assert_int_eq(m.expert, strstr(e->hf_pat, "{E}") ? 3 : -1);
			ck_assert_int_eq(moe_namemap_format(m.gguf_pat, m.layer, -1, gg, sizeof gg), 0);
			ck_assert_int_eq(moe_namemap_match(f, gg, 0, &m), 0);
			ck_assert_str_eq(m.gguf_pat, e->gguf_pat);
		}
	}
	ck_assert_ptr_eq(moe_family_by_model_type("kimi_k2"), moe_family_by_gguf_arch("deepseek2"));
	ck_assert_ptr_null(moe_family_by_model_type("dbrx"));
}
END_TEST

START_TEST(every_family_roundtrips)
{
	for (size_t i = 0; i < NCONF; i++) {
		char a[64], hf[64], b[64], hf2[64];
		snprintf(a, sizeof a, "a%zu.gguf", i);
		snprintf(hf, sizeof hf, "hf%zu", i);
		snprintf(b, sizeof b, "b%zu.gguf", i);
		snprintf(hf2, sizeof hf2, "hf%zu/x.safetensors", i);
		init_to(configs[i], MOE_CONV_GGUF, a, 0);
		convert(a, MOE_CONV_SAFETENSORS, hf, 1, NULL);
		convert(hf, MOE_CONV_GGUF, b, 0, NULL);
		ck_assert_msg(files_equal(a, b), "GGUF -> HF -> GGUF differs for config %zu", i);
		/* HF -> GGUF -> HF: the same safetensors again */
		convert(b, MOE_CONV_SAFETENSORS, hf2, 0, NULL);
		snprintf(a, sizeof a, "hf%zu/model.safetensors", i);
		ck_assert_msg(files_equal(a, hf2), "HF -> GGUF -> HF differs for config %zu", i);
	}
}
END_TEST

START_TEST(config_roundtrip_keeps_fields)
{
	for (size_t i = 0; i < NCONF; i++) {
		json_t *in = json_loads(configs[i], 0, NULL), *out = NULL, *v;
		const char *k, *mt = json_string_value(json_object_get(in, "model_type"));
		const struct moe_family *f = moe_family_by_model_type(mt);
		struct moe_meta *m;
		struct moe_error err = { 0, "" };

		ck_assert_int_eq(moe_meta_new(&m), 0);
		ck_assert_msg(moe_hfconfig_to_gguf(f, in, m, &err) == 0, "%s", err.msg);
		ck_assert_int_eq(moe_hfconfig_from_gguf(f, m, strcmp(mt, "deepseek_v3") == 0,
			json_is_true(json_object_get(in, "tie_word_embeddings")), &out, &err), 0);
		json_object_foreach(in, k, v) {
			json_t *w = json_object_get(out, k);
			ck_assert_msg(w != NULL, "%s: '%s' lost", mt, k);
			if (json_is_number(v))
				ck_assert_msg(fabs(json_number_value(v) - json_number_value(w)) <=
					1e-6 * fabs(json_number_value(v)), "%s: '%s' changed", mt, k);
			else
				ck_assert_msg(json_equal(v, w), "%s: '%s' changed", mt, k);
		}
		json_decref(out);
		json_decref(in);
		moe_meta_free(m);
	}
}
END_TEST

START_TEST(rope_rows_and_stacking)
{
	struct moe_ckpt *g, *h;
	uint64_t n, hn;
	float *q, *hq, *gate, *w1;
	const uint64_t d = 32, hd = 8;

	init_to(configs[0], MOE_CONV_GGUF, "m.gguf", 0);
	convert("m.gguf", MOE_CONV_SAFETENSORS, "m.safetensors", 0, NULL);
	g = open_ck("m.gguf");
	h = open_ck("m.safetensors");
	q = tensor_f32(g, "blk.1.attn_q.weight", &n);
	hq = tensor_f32(h, "model.layers.1.self_attn.q_proj.weight", &hn);
	ck_assert_uint_eq(n, hn);
	/* GGUF row 2i+j of head h is HF row j*hd/2+i */
	for (uint64_t head = 0; head < 4; head++)
		for (uint64_t i = 0; i < hd / 2; i++)
			for (uint64_t j = 0; j < 2; j++)
				ck_assert(memcmp(q + (head * hd + 2 * i + j) * d,
					hq + (head * hd + j * hd / 2 + i) * d, d * 4) == 0);
	/* expert 3 of the stacked gate is HF experts.3.w1 */
	gate = tensor_f32(g, "blk.0.ffn_gate_exps.weight", &n);
	w1 = tensor_f32(h, "model.layers.0.block_sparse_moe.experts.3.w1.weight", &hn);
	ck_assert_uint_eq(n, 4 * hn);
	ck_assert(memcmp(gate + 3 * hn, w1, hn * 4) == 0);
	free(q); free(hq); free(gate); free(w1);
	moe_ckpt_free(g);
	moe_ckpt_free(h);
}
END_TEST

START_TEST(expert_and_layer_subsets)
{
	struct moe_convert_opts o = opts(MOE_CONV_GGUF);
	struct moe_ckpt *a, *b, *ck;
	struct moe_conversion *c;
	uint64_t n, m, u;
	float *src, *dst, *ra, *rb;

	init_to(configs[5], MOE_CONV_GGUF, "ds.gguf", 0);   /* deepseek: 1 dense + 2 MoE */
	o.experts = "1: 6 2 5\n2: 0 1 7";
	o.layers = "0,2";
	convert("ds.gguf", MOE_CONV_GGUF, "sub.gguf", 0, &o);
	a = open_ck("ds.gguf");
	b = open_ck("sub.gguf");
	ck_assert_int_eq(moe_meta_get_u64(moe_ckpt_meta(b), "deepseek.block_count", &u), 0);
	ck_assert_uint_eq(u, 2);
	ck_assert_int_eq(moe_meta_get_u64(moe_ckpt_meta(b), "deepseek.expert_count", &u), 0);
	ck_assert_uint_eq(u, 3);
	ck_assert_int_eq(moe_meta_get_u64(moe_ckpt_meta(b), "deepseek.leading_dense_block_count", &u), 0);
	ck_assert_uint_eq(u, 1);
	/* new block 1 is old block 2; its experts are old 0, 1, 7 */
	src = tensor_f32(a, "blk.2.ffn_up_exps.weight", &n);
	dst = tensor_f32(b, "blk.1.ffn_up_exps.weight", &m);
	ck_assert_uint_eq(m * 8, n * 3);
	ck_assert(memcmp(dst + 2 * (m / 3), src + 7 * (n / 8), m / 3 * 4) == 0);
	ra = tensor_f32(a, "blk.2.ffn_gate_inp.weight", &n);
	rb = tensor_f32(b, "blk.1.ffn_gate_inp.weight", &m);
	ck_assert(memcmp(rb + 2 * 32, ra + 7 * 32, 32 * 4) == 0);
	ck_assert_ptr_null(moe_ckpt_find(b, "blk.2.attn_q.weight"));
	free(src); free(dst); free(ra); free(rb);
	moe_ckpt_free(a);
	moe_ckpt_free(b);

	/* refusals: top-k above the kept count, lists out of range, unequal counts */
	ck = open_ck("ds.gguf");
	o.layers = NULL;
	o.experts = "3";
	ck_assert_int_eq(moe_convert_new(&c, ck, &o), MOE_EINVAL);
	ck_assert_ptr_nonnull(strstr(moe_convert_errstr(c), "top-k 2 exceeds the 1"));
	moe_convert_free(c);
	o.experts = "0-8";
	ck_assert_int_eq(moe_convert_new(&c, ck, &o), MOE_EINVAL);
	moe_convert_free(c);
	o.experts = "1: 0 1\n2: 0 1 2";
	ck_assert_int_eq(moe_convert_new(&c, ck, &o), MOE_EINVAL);
	ck_assert_ptr_nonnull(strstr(moe_convert_errstr(c), "same number"));
	moe_convert_free(c);
	o.experts = NULL;
	o.layers = "5";
	ck_assert_int_eq(moe_convert_new(&c, ck, &o), MOE_EINVAL);
	moe_convert_free(c);
	moe_ckpt_free(ck);
}
END_TEST

START_TEST(dtype_casts_keep_norms_and_routers)
{
	struct moe_convert_opts o = opts(MOE_CONV_GGUF);
	struct moe_ckpt *a, *b;
	uint64_t n, m;
	float *x, *y;

	init_to(configs[1], MOE_CONV_GGUF, "q.gguf", 0);
	o.dtype = MOE_DT_BF16;
	convert("q.gguf", MOE_CONV_GGUF, "q16.gguf", 0, &o);
	a = open_ck("q.gguf");
	b = open_ck("q16.gguf");
	ck_assert_int_eq(moe_ckpt_find(b, "blk.0.ffn_up_exps.weight")->dtype, MOE_DT_BF16);
	ck_assert_int_eq(moe_ckpt_find(b, "blk.0.ffn_gate_inp.weight")->dtype, MOE_DT_F32);
	ck_assert_int_eq(moe_ckpt_find(b, "blk.0.ffn_gate_inp_shexp.weight")->dtype, MOE_DT_F32);
	ck_assert_int_eq(moe_ckpt_find(b, "blk.0.attn_norm.weight")->dtype, MOE_DT_F32);
	x = tensor_f32(a, "blk.1.ffn_down_exps.weight", &n);
	y = tensor_f32(b, "blk.1.ffn_down_exps.weight", &m);
	for (uint64_t i = 0; i < n; i++)
		ck_assert(y[i] == moe_bf16_to_f32(moe_f32_to_bf16(x[i])));
	free(x); free(y);
	moe_ckpt_free(a);
	moe_ckpt_free(b);
}
END_TEST

/* A DeepSeek-V3-style FP8 weight with 128x128 block scales dequantises. */
START_TEST(fp8_block_weights_dequantise)
{
	enum { R = 200, C = 160 };
	static float w[R * C], back[R * C];
	static uint8_t q[R * C];
	float scale[2 * 2];
	struct moe_output *out;
	struct moe_st_writer *sw;
	uint64_t s1[2] = { R, C }, s2[2] = { 2, 2 }, n;
	char path[512];
	struct moe_ckpt *ck;
	float *y;

	for (int i = 0; i < R * C; i++)
		w[i] = sinf((float)i * 0.37f) * (i % 7 == 0 ? 30.0f : 1.0f);
	for (int b = 0; b < 2; b++) {
		int rows = b ? R - 128 : 128;
		ck_assert_int_eq(moe_fp8block_quantize_band(w + b * 128 * C, rows, C,
			q + b * 128 * C, scale + b * 2), 0);
		ck_assert_int_eq(moe_fp8block_dequantize_rows(q + b * 128 * C, rows, C,
			scale + b * 2, back + b * 128 * C), 0);
	}
	snprintf(path, sizeof path, "%s/fp8.safetensors", dir);
	ck_assert_int_eq(moe_output_open(&out, path, 0), 0);
	ck_assert_int_eq(moe_st_writer_new(&sw, out), 0);
	ck_assert_int_eq(moe_st_writer_add_tensor(sw, "lm_head.weight", MOE_DT_F8_E4M3, 2, s1), 0);
	ck_assert_int_eq(moe_st_writer_add_tensor(sw, "lm_head.weight_scale_inv", MOE_DT_F32, 2, s2), 0);
	ck_assert_int_eq(moe_st_writer_begin_data(sw), 0);
	ck_assert_int_eq(moe_st_writer_write(sw, q, sizeof q), 0);
	ck_assert_int_eq(moe_st_writer_write(sw, scale, sizeof scale), 0);
	ck_assert_int_eq(moe_st_writer_finish(sw), 0);
	ck_assert_int_eq(moe_output_commit(out), 0);
	moe_st_writer_free(sw);
	moe_output_free(out);

	{
		struct moe_convert_opts o = opts(MOE_CONV_SAFETENSORS);
		o.dtype = MOE_DT_F32;
		convert("fp8.safetensors", MOE_CONV_SAFETENSORS, "deq.safetensors", 0, &o);
	}
	ck = open_ck("deq.safetensors");
	ck_assert_uint_eq(moe_ckpt_ntensors(ck), 1);   /* the scales are consumed */
	y = tensor_f32(ck, "lm_head.weight", &n);
	ck_assert_uint_eq(n, R * C);
	ck_assert(memcmp(y, back, sizeof back) == 0);
	free(y);
	moe_ckpt_free(ck);
}
END_TEST

START_TEST(unknown_tensors_and_families)
{
	struct moe_convert_opts o = opts(MOE_CONV_GGUF);
	struct moe_conversion *c;
	struct moe_ckpt *ck;
	json_t *j = json_loads("{\"model_type\":\"dbrx\"}", 0, NULL);


	ck_assert_int_eq(moe_convert_new_init(&c, j, 1, &o), MOE_EUNSUP);
	ck_assert_ptr_nonnull(strstr(moe_convert_errstr(c), "'dbrx'"));
	moe_convert_free(c);
	json_decref(j);

	/* an HF file with a tensor the table does not know */
	init_to(configs[3], MOE_CONV_SAFETENSORS, "o", 1);
	ck = open_ck("o");
	o.format = MOE_CONV_SAFETENSORS;
	o.drop = "^model\\.norm\\.";
	ck_assert_int_eq(moe_convert_new(&c, ck, &o), 0);    /* dropping is fine */
	ck_assert_uint_eq(moe_convert_ntensors(c) + 1, moe_ckpt_ntensors(ck));
	moe_convert_free(c);
	o.drop = "([";
	ck_assert_int_eq(moe_convert_new(&c, ck, &o), MOE_EINVAL);
	moe_convert_free(c);
	moe_ckpt_free(ck);
}
END_TEST

/* DeepSeek-V3 ships a multi-token-prediction layer after the last block. */
START_TEST(mtp_layers_left_out_of_gguf)
{
	struct moe_convert_opts o = opts(MOE_CONV_GGUF);
	struct moe_st_writer *w;
	struct moe_output *out;
	struct moe_conversion *c;
	struct moe_ckpt *ck;
	uint64_t shape[1] = { 32 };
	static float zeros[32];
	char path[512];
	size_t plain;

	init_to(configs[6], MOE_CONV_SAFETENSORS, "v3", 1);
	ck = open_ck("v3");
	ck_assert_int_eq(moe_convert_new(&c, ck, &o), 0);
	plain = moe_convert_ntensors(c);
	moe_convert_free(c);
	moe_ckpt_free(ck);
	snprintf(path, sizeof path, "%s/v3/mtp.safetensors", dir);
	ck_assert_int_eq(moe_output_open(&out, path, 0), 0);
	ck_assert_int_eq(moe_st_writer_new(&w, out), 0);
	ck_assert_int_eq(moe_st_writer_add_tensor(w, "model.layers.3.enorm.weight", MOE_DT_F32, 1, shape), 0);
	ck_assert_int_eq(moe_st_writer_add_tensor(w, "model.layers.3.input_layernorm.weight", MOE_DT_F32, 1, shape), 0);
	ck_assert_int_eq(moe_st_writer_begin_data(w), 0);
	ck_assert_int_eq(moe_st_writer_write(w, zeros, sizeof zeros), 0);
	ck_assert_int_eq(moe_st_writer_write(w, zeros, sizeof zeros), 0);
	ck_assert_int_eq(moe_st_writer_finish(w), 0);
	ck_assert_int_eq(moe_output_commit(out), 0);
	moe_st_writer_free(w);
	moe_output_free(out);
	ck = open_ck("v3");
	ck_assert_int_eq(moe_convert_new(&c, ck, &o), 0);
	ck_assert_uint_eq(moe_convert_ntensors(c), plain);
	ck_assert_ptr_nonnull(strstr(moe_convert_warning(c), "left out 2 tensors of multi-token"));
	moe_convert_free(c);
	moe_ckpt_free(ck);
}
END_TEST

/* Names of the F32 reference models present (not the dequantized copies). */
static size_t ref_models(const char *shared, char names[][128], size_t max)
{
	char models_dir[1024];
	DIR *d;
	struct dirent *de;
	size_t n = 0;

	snprintf(models_dir, sizeof models_dir, "%s/ref/models", shared);
	if ((d = opendir(models_dir)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL && n < max) {
		size_t len = strlen(de->d_name);
		if (len > 9 && strcmp(de->d_name + len - 9, "-f32.gguf") == 0 &&
		    strstr(de->d_name, "dequant") == NULL && len - 5 < 128) {
			memcpy(names[n], de->d_name, len - 5);
			names[n++][len - 5] = '\0';
		}
	}
	closedir(d);
	return n;
}

START_TEST(reference_ggufs_roundtrip)
{
	static char models[64][128];
	const char *shared = moe_test_shared();
	char src[1024], cmd[2048];
	size_t nm;

	if (shared == NULL)
		return;
	nm = ref_models(shared, models, 64);
	ck_assert_uint_gt(nm, 0);
	for (size_t i = 0; i < nm; i++) {
		struct moe_ckpt *ck;
		struct moe_conversion *c;
		struct moe_convert_opts o = opts(MOE_CONV_SAFETENSORS);
		snprintf(src, sizeof src, "%s/ref/models/%s.gguf", shared, models[i]);
		ck_assert_int_eq(moe_ckpt_new(&ck), 0);
		ck_assert_int_eq(moe_ckpt_open(ck, src), 0);
		ck_assert_int_eq(moe_convert_new(&c, ck, &o), 0);
		write_conv(c, "ref-hf", 1);
		moe_convert_free(c);
		moe_ckpt_free(ck);
		convert("ref-hf", MOE_CONV_GGUF, "ref-back.gguf", 0, NULL);
		snprintf(cmd, sizeof cmd, "cmp -s %s %s/ref-back.gguf", src, dir);
		ck_assert_msg(system(cmd) == 0, "%s: GGUF -> HF -> GGUF differs", models[i]);
		snprintf(cmd, sizeof cmd, "rm -rf %s/ref-hf", dir);
		ck_assert_int_eq(system(cmd), 0);
	}
}
END_TEST

static int is_v3(const struct moe_ckpt *ck)
{
	for (size_t i = 0; i < moe_ckpt_ntensors(ck); i++)
		if (strstr(moe_ckpt_tensor(ck, i)->name, "exp_probs_b"))
			return 1;
	return 0;
}

/* Without the carried metadata, config.json alone must give llama.cpp's keys. */
START_TEST(reference_keys_from_config_alone)
{
	static char models[64][128];
	const char *shared = moe_test_shared();
	char src[1024];
	size_t nm;

	if (shared == NULL)
		return;
	nm = ref_models(shared, models, 64);
	for (size_t i = 0; i < nm; i++) {
		struct moe_ckpt *ref, *hf;
		struct moe_meta *m;
		struct moe_error err = { 0, "" };
		json_t *cfg = NULL;
		const char *arch;
		snprintf(src, sizeof src, "%s/ref/models/%s.gguf", shared, models[i]);
		ck_assert_int_eq(moe_ckpt_new(&ref), 0);
		ck_assert_int_eq(moe_ckpt_open(ref, src), 0);
		ck_assert_int_eq(moe_meta_get_str(moe_ckpt_meta(ref), "general.architecture", &arch), 0);
		ck_assert_int_eq(moe_hfconfig_from_gguf(moe_family_by_gguf_arch(arch),
			moe_ckpt_meta(ref), is_v3(ref),
			moe_ckpt_find(ref, "output.weight") == NULL, &cfg, &err), 0);
		ck_assert_int_eq(moe_meta_new(&m), 0);
		ck_assert_msg(moe_hfconfig_to_gguf(moe_family_by_gguf_arch(arch), cfg, m, &err) == 0,
			"%s: %s", models[i], err.msg);
		/* every architecture key of the reference comes back with its value */
		for (size_t k = 0; k < moe_meta_count(moe_ckpt_meta(ref)); k++) {
			const char *key = moe_meta_key(moe_ckpt_meta(ref), k);
			const struct moe_value *want = moe_meta_at(moe_ckpt_meta(ref), k), *got;
			if (strncmp(key, arch, strlen(arch)) != 0 || key[strlen(arch)] != '.')
				continue;
			got = moe_meta_find(m, key);
			ck_assert_msg(got != NULL, "%s: key '%s' not produced", models[i], key);
			ck_assert_msg(got->type == want->type, "%s: '%s' type", models[i], key);
			if (want->type == MOE_V_STR)
				ck_assert_str_eq(got->v.str.s, want->v.str.s);
			else if (want->type == MOE_V_F32)
				ck_assert_msg((float)got->v.f == (float)want->v.f, "%s: '%s' = %g, want %g",
					models[i], key, got->v.f, want->v.f);
			else
				ck_assert_msg(got->v.u == want->v.u, "%s: '%s' = %llu, want %llu", models[i],
					key, (unsigned long long)got->v.u, (unsigned long long)want->v.u);
		}
		moe_meta_free(m);
		json_decref(cfg);
		moe_ckpt_free(ref);
		(void)hf;
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("convert");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, name_tables_roundtrip);
	tcase_add_test(tc, every_family_roundtrips);
	tcase_add_test(tc, config_roundtrip_keeps_fields);
	tcase_add_test(tc, rope_rows_and_stacking);
	tcase_add_test(tc, expert_and_layer_subsets);
	tcase_add_test(tc, dtype_casts_keep_norms_and_routers);
	tcase_add_test(tc, fp8_block_weights_dequantise);
	tcase_add_test(tc, unknown_tensors_and_families);
	tcase_add_test(tc, mtp_layers_left_out_of_gguf);
	tcase_add_test(tc, reference_ggufs_roundtrip);
	tcase_add_test(tc, reference_keys_from_config_alone);
	suite_add_tcase(s, tc);
	return moe_test_run(s);
}
