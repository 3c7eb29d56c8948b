/* Tests of quantization rules and of whole-model quantization against llama-quantize's files. */
#include <sys/stat.h>

#include "ckpt.h"
#include "convert.h"
#include "error.h"
#include "qrules.h"
#include "testutil.h"

static struct moe_tensor tensor(const char *name, int ndim, uint64_t rows, uint64_t cols)
{
	struct moe_tensor t = { .name = (char *)name, .dtype = MOE_DT_F32, .ndim = ndim,
		.shape = { rows, cols } };
	if (ndim == 1)
		t.shape[0] = cols;
	return t;
}

static enum moe_dtype pick(struct moe_qrules *r, const char *name, int ndim,
	uint64_t rows, uint64_t cols, char *note)
{
	struct moe_tensor t = tensor(name, ndim, rows, cols);
	return moe_qrules_choose(r, &t, note, 256);
}

START_TEST(precedence)
{
	struct moe_qrules *r;
	char note[256];

	ck_assert_int_eq(moe_qrules_new(&r, MOE_DT_Q4_0), 0);
	/* 1-D tensors keep their type; routers stay F32; the rest the default */
	ck_assert_int_eq(pick(r, "blk.0.attn_norm.weight", 1, 0, 4096, note), MOE_DT_F32);
	ck_assert_int_eq(pick(r, "blk.0.ffn_gate_inp.weight", 2, 8, 4096, note), MOE_DT_F32);
	ck_assert_int_eq(pick(r, "blk.0.ffn_up_exps.weight", 2, 14336, 4096, note), MOE_DT_Q4_0);
	/* class overrides */
	ck_assert_int_eq(moe_qrules_set_class(r, MOE_COMP_ATTN, MOE_DT_Q8_0), 0);
	ck_assert_int_eq(moe_qrules_set_class(r, MOE_COMP_ROUTER, MOE_DT_F16), 0);
	ck_assert_int_eq(pick(r, "model.layers.3.self_attn.q_proj.weight", 2, 4096, 4096, note),
		MOE_DT_Q8_0);
	ck_assert_int_eq(pick(r, "model.layers.3.mlp.gate.weight", 2, 64, 2048, note), MOE_DT_F16);
	/* a rule beats the class */
	ck_assert_int_eq(moe_qrules_add_rule(r, "attn_v=q6_k"), 0);
	ck_assert_int_eq(pick(r, "blk.2.attn_v.weight", 2, 1024, 4096, note), MOE_DT_Q6_K);
	ck_assert_str_eq(note, "rule 'attn_v'");
	ck_assert_int_eq(moe_qrules_add_rule(r, "no-equals"), MOE_EINVAL);
	ck_assert_int_eq(moe_qrules_add_rule(r, "x=q9_9"), MOE_EINVAL);
	ck_assert_int_eq(moe_qrules_add_rule(r, "([=q4_0"), MOE_EINVAL);
	moe_qrules_free(r);
}
END_TEST

START_TEST(row_length_fallbacks)
{
	struct moe_qrules *r;
	char note[256];

	ck_assert_int_eq(moe_qrules_new(&r, MOE_DT_Q4_K), 0);
	ck_assert_int_eq(pick(r, "blk.0.ffn_down_exps.weight", 2, 64, 1408, note), MOE_DT_Q5_0);
	ck_assert_ptr_nonnull(strstr(note, "row of 1408 is not a multiple of Q4_K's 256: Q5_0"));
	ck_assert_int_eq(pick(r, "blk.0.ffn_down_exps.weight", 2, 64, 2048, note), MOE_DT_Q4_K);
	ck_assert_str_eq(note, "");
	moe_qrules_set_default(r, MOE_DT_Q6_K);
	ck_assert_int_eq(pick(r, "x.weight", 2, 4, 96, note), MOE_DT_Q8_0);
	ck_assert_int_eq(pick(r, "x.weight", 2, 4, 100, note), MOE_DT_F16);
	moe_qrules_free(r);
}
END_TEST

START_TEST(q4_k_m_preset_layers)
{
	struct moe_qrules *r;
	char note[256], name[64];
	/* 32 layers: more bits for 0..3, 28..31 and every third from 4 (6, 9, ...) */
	static const int want[32] = { 1, 1, 1, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1,
		0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 1, 1, 1, 1 };

	ck_assert_int_eq(moe_qrules_new(&r, MOE_DT_Q8_0), 0);
	ck_assert_int_eq(moe_qrules_preset(r, "q4_k_m", 32), 0);
	for (int l = 0; l < 32; l++) {
		snprintf(name, sizeof name, "blk.%d.ffn_down_exps.weight", l);
		ck_assert_int_eq(pick(r, name, 2, 4096, 14336, note),
			want[l] ? MOE_DT_Q6_K : MOE_DT_Q4_K);
		snprintf(name, sizeof name, "blk.%d.ffn_up_exps.weight", l);
		ck_assert_int_eq(pick(r, name, 2, 14336, 4096, note), MOE_DT_Q4_K);
	}
	ck_assert_int_eq(pick(r, "output.weight", 2, 32000, 4096, note), MOE_DT_Q6_K);
	ck_assert_int_eq(moe_qrules_preset(r, "q3_xxl", 32), MOE_EINVAL);
	moe_qrules_free(r);
}
END_TEST

static enum moe_dtype choose(void *ctx, const struct moe_tensor *t, enum moe_dtype planned)
{
	char note[256];

	(void)planned;
	return moe_qrules_choose(ctx, t, note, sizeof note);
}

/* Our quantization of the F32 models equals llama-quantize --pure's, tensor by tensor. */
START_TEST(matches_llama_quantize)
{
	static const char *pairs[][3] = {
		{ "llama-moe-f32", "llama-moe-q8_0", "q8_0" }, { "llama-moe-f32", "llama-moe-q4_0", "q4_0" },
		{ "qwen2moe-f32", "qwen2moe-q8_0", "q8_0" }, { "qwen2moe-f32", "qwen2moe-q4_0", "q4_0" },
	};
	int done = 0;
	const char *shared = moe_test_shared();
	char path[1024], out[] = "/tmp/moe-q.XXXXXX";

	if (shared == NULL)
		return;
	ck_assert(mkstemp(out) >= 0);
	for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
		struct moe_ckpt *src, *ref, *ours;
		struct moe_qrules *r;
		struct moe_conversion *c;
		struct moe_output *o;
		struct moe_convert_opts opt = { .format = MOE_CONV_GGUF, .dtype = MOE_DT_INVALID,
			.choose = choose, .threads = 2 };

		snprintf(path, sizeof path, "%s/ref/models/%s.gguf", shared, pairs[i][1]);
		if (access(path, R_OK) != 0)
			continue;   /* another reference set may quantize other models */
		done++;
		ck_assert_int_eq(moe_qrules_new(&r, moe_dtype_from_name(pairs[i][2])), 0);
		opt.choose_ctx = r;
		snprintf(path, sizeof path, "%s/ref/models/%s.gguf", shared, pairs[i][0]);
		ck_assert_int_eq(moe_ckpt_new(&src), 0);
		ck_assert_int_eq(moe_ckpt_open(src, path), 0);
		ck_assert_msg(moe_convert_new(&c, src, &opt) == 0, "%s", moe_convert_errstr(c));
		ck_assert_int_eq(moe_output_open(&o, out, MOE_OUT_FORCE), 0);
		ck_assert_int_eq(moe_convert_write(c, o), 0);
		ck_assert_int_eq(moe_output_commit(o), 0);
		moe_output_free(o);
		snprintf(path, sizeof path, "%s/ref/models/%s.gguf", shared, pairs[i][1]);
		ck_assert_int_eq(moe_ckpt_new(&ref), 0);
		ck_assert_int_eq(moe_ckpt_open(ref, path), 0);
		ck_assert_int_eq(moe_ckpt_new(&ours), 0);
		ck_assert_int_eq(moe_ckpt_open(ours, out), 0);
		ck_assert_uint_eq(moe_ckpt_ntensors(ours), moe_ckpt_ntensors(ref));
		for (size_t k = 0; k < moe_ckpt_ntensors(ref); k++) {
			const struct moe_tensor *a = moe_ckpt_tensor(ref, k);
			const struct moe_tensor *b = moe_ckpt_find(ours, a->name);
			const void *pa, *pb;
			ck_assert_msg(b != NULL, "%s missing", a->name);
			ck_assert_msg(a->dtype == b->dtype, "%s: %s vs %s", a->name,
				moe_dtype_name(a->dtype), moe_dtype_name(b->dtype));
			ck_assert_int_eq(moe_ckpt_map(ref, a, &pa), 0);
			ck_assert_int_eq(moe_ckpt_map(ours, b, &pb), 0);
			ck_assert_msg(a->nbytes == b->nbytes && memcmp(pa, pb, a->nbytes) == 0,
				"%s: %s bytes differ from llama-quantize's", pairs[i][1], a->name);
		}
		moe_ckpt_free(ours);
		moe_ckpt_free(ref);
		moe_convert_free(c);
		moe_ckpt_free(src);
		moe_qrules_free(r);
	}
	unlink(out);
	if (done == 0)
		fprintf(stderr, "note: no llama-quantize reference models found; comparison skipped\n");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("qrules");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, precedence);
	tcase_add_test(tc, row_length_fallbacks);
	tcase_add_test(tc, q4_k_m_preset_layers);
	tcase_add_test(tc, matches_llama_quantize);
	suite_add_tcase(s, tc);
	return moe_test_run(s);
}
