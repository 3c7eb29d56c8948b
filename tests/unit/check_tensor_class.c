/* Tests of tensor-name classification: HF and GGUF spellings of every supported family. */
#include "error.h"
#include "tensor_class.h"
#include "testutil.h"

static const struct {
	const char *name;
	enum moe_comp comp;
	int layer, expert, stacked;
	enum moe_tpart part;
} cases[] = {
	/* GGUF */
	{ "token_embd.weight", MOE_COMP_EMBED, -1, -1, 0, MOE_TP_WEIGHT },
	{ "output.weight", MOE_COMP_HEAD, -1, -1, 0, MOE_TP_WEIGHT },
	{ "output_norm.weight", MOE_COMP_NORM, -1, -1, 0, MOE_TP_WEIGHT },
	{ "blk.0.attn_norm.weight", MOE_COMP_NORM, 0, -1, 0, MOE_TP_WEIGHT },
	{ "blk.12.attn_q.weight", MOE_COMP_ATTN, 12, -1, 0, MOE_TP_WEIGHT },
	{ "blk.1.attn_q.bias", MOE_COMP_ATTN, 1, -1, 0, MOE_TP_BIAS },
	{ "blk.2.attn_kv_a_mqa.weight", MOE_COMP_ATTN, 2, -1, 0, MOE_TP_WEIGHT },
	{ "blk.2.attn_kv_a_norm.weight", MOE_COMP_NORM, 2, -1, 0, MOE_TP_WEIGHT },
	{ "blk.2.attn_q_a_norm.weight", MOE_COMP_NORM, 2, -1, 0, MOE_TP_WEIGHT },
	{ "blk.0.attn_k_norm.weight", MOE_COMP_NORM, 0, -1, 0, MOE_TP_WEIGHT },
	{ "blk.3.ffn_gate_inp.weight", MOE_COMP_ROUTER, 3, -1, 0, MOE_TP_WEIGHT },
	{ "blk.3.ffn_gate_inp_shexp.weight", MOE_COMP_ROUTER, 3, -1, 0, MOE_TP_WEIGHT },
	{ "blk.3.exp_probs_b.bias", MOE_COMP_ROUTER, 3, -1, 0, MOE_TP_BIAS },
	{ "blk.3.ffn_up_exps.weight", MOE_COMP_EXPERTS, 3, -1, 1, MOE_TP_WEIGHT },
	{ "blk.3.ffn_gate_up_exps.weight", MOE_COMP_EXPERTS, 3, -1, 1, MOE_TP_WEIGHT },
	{ "blk.3.ffn_down_exps.bias", MOE_COMP_EXPERTS, 3, -1, 1, MOE_TP_BIAS },
	{ "blk.3.ffn_down_shexp.weight", MOE_COMP_SHARED, 3, -1, 0, MOE_TP_WEIGHT },
	{ "blk.0.ffn_down.weight", MOE_COMP_DENSE, 0, -1, 0, MOE_TP_WEIGHT },
	{ "blk.5.ffn_gate.7.weight", MOE_COMP_EXPERTS, 5, 7, 0, MOE_TP_WEIGHT },
	{ "blk.4.ssm_in.weight", MOE_COMP_ATTN, 4, -1, 0, MOE_TP_WEIGHT },
	{ "blk.61.nextn.eh_proj.weight", MOE_COMP_MTP, 61, -1, 0, MOE_TP_WEIGHT },
	{ "v.blk.0.attn_q.weight", MOE_COMP_VISION, 0, -1, 0, MOE_TP_WEIGHT },
	{ "rope_freqs.weight", MOE_COMP_OTHER, -1, -1, 0, MOE_TP_WEIGHT },
	/* Mixtral / Llama-style HF */
	{ "model.embed_tokens.weight", MOE_COMP_EMBED, -1, -1, 0, MOE_TP_WEIGHT },
	{ "lm_head.weight", MOE_COMP_HEAD, -1, -1, 0, MOE_TP_WEIGHT },
	{ "model.norm.weight", MOE_COMP_NORM, -1, -1, 0, MOE_TP_WEIGHT },
	{ "model.layers.7.self_attn.k_proj.weight", MOE_COMP_ATTN, 7, -1, 0, MOE_TP_WEIGHT },
	{ "model.layers.7.post_attention_layernorm.weight", MOE_COMP_NORM, 7, -1, 0, MOE_TP_WEIGHT },
	{ "model.layers.7.block_sparse_moe.gate.weight", MOE_COMP_ROUTER, 7, -1, 0, MOE_TP_WEIGHT },
	{ "model.layers.7.block_sparse_moe.experts.5.w2.weight", MOE_COMP_EXPERTS, 7, 5, 0, MOE_TP_WEIGHT },
	/* Qwen / DeepSeek / GLM */
	{ "model.layers.0.mlp.gate.weight", MOE_COMP_ROUTER, 0, -1, 0, MOE_TP_WEIGHT },
	{ "model.layers.0.mlp.shared_expert_gate.weight", MOE_COMP_ROUTER, 0, -1, 0, MOE_TP_WEIGHT },
	{ "model.layers.0.mlp.shared_expert.up_proj.weight", MOE_COMP_SHARED, 0, -1, 0, MOE_TP_WEIGHT },
	{ "model.layers.9.mlp.shared_experts.down_proj.weight", MOE_COMP_SHARED, 9, -1, 0, MOE_TP_WEIGHT },
	{ "model.layers.9.mlp.experts.255.gate_proj.weight", MOE_COMP_EXPERTS, 9, 255, 0, MOE_TP_WEIGHT },
	{ "model.layers.9.mlp.experts.255.gate_proj.weight_scale_inv", MOE_COMP_EXPERTS, 9, 255, 0, MOE_TP_SCALE },
	{ "model.layers.9.mlp.gate.e_score_correction_bias", MOE_COMP_ROUTER, 9, -1, 0, MOE_TP_BIAS },
	{ "model.layers.0.mlp.down_proj.weight", MOE_COMP_DENSE, 0, -1, 0, MOE_TP_WEIGHT },
	{ "model.layers.0.self_attn.q_a_layernorm.weight", MOE_COMP_NORM, 0, -1, 0, MOE_TP_WEIGHT },
	{ "model.layers.0.self_attn.kv_a_proj_with_mqa.weight", MOE_COMP_ATTN, 0, -1, 0, MOE_TP_WEIGHT },
	{ "model.layers.0.self_attn.q_norm.weight", MOE_COMP_NORM, 0, -1, 0, MOE_TP_WEIGHT },
	{ "model.layers.61.eh_proj.weight", MOE_COMP_MTP, 61, -1, 0, MOE_TP_WEIGHT },
	{ "model.layers.61.shared_head.head.weight", MOE_COMP_MTP, 61, -1, 0, MOE_TP_WEIGHT },
	/* gpt-oss */
	{ "model.layers.3.mlp.router.bias", MOE_COMP_ROUTER, 3, -1, 0, MOE_TP_BIAS },
	{ "model.layers.3.mlp.experts.gate_up_proj_blocks", MOE_COMP_EXPERTS, 3, -1, 1, MOE_TP_PACKED4 },
	{ "model.layers.3.mlp.experts.gate_up_proj_scales", MOE_COMP_EXPERTS, 3, -1, 1, MOE_TP_SCALE },
	{ "model.layers.3.mlp.experts.down_proj_bias", MOE_COMP_EXPERTS, 3, -1, 1, MOE_TP_BIAS },
	{ "model.layers.3.self_attn.sinks", MOE_COMP_ATTN, 3, -1, 0, MOE_TP_WEIGHT },
	/* Llama 4 */
	{ "language_model.model.layers.1.feed_forward.router.weight", MOE_COMP_ROUTER, 1, -1, 0, MOE_TP_WEIGHT },
	{ "language_model.model.layers.1.feed_forward.experts.gate_up_proj", MOE_COMP_EXPERTS, 1, -1, 1, MOE_TP_WEIGHT },
	{ "language_model.model.layers.1.feed_forward.shared_expert.down_proj.weight", MOE_COMP_SHARED, 1, -1, 0, MOE_TP_WEIGHT },
	{ "language_model.model.layers.0.feed_forward.up_proj.weight", MOE_COMP_DENSE, 0, -1, 0, MOE_TP_WEIGHT },
	{ "language_model.lm_head.weight", MOE_COMP_HEAD, -1, -1, 0, MOE_TP_WEIGHT },
	{ "vision_model.model.layers.3.self_attn.q_proj.weight", MOE_COMP_VISION, 3, -1, 0, MOE_TP_WEIGHT },
	{ "multi_modal_projector.linear_1.weight", MOE_COMP_VISION, -1, -1, 0, MOE_TP_WEIGHT },
	/* DBRX, Granite, JetMoE, Jamba */
	{ "transformer.wte.weight", MOE_COMP_EMBED, -1, -1, 0, MOE_TP_WEIGHT },
	{ "transformer.blocks.4.norm_attn_norm.attn.Wqkv.weight", MOE_COMP_ATTN, 4, -1, 0, MOE_TP_WEIGHT },
	{ "transformer.blocks.4.norm_attn_norm.norm_2.weight", MOE_COMP_NORM, 4, -1, 0, MOE_TP_WEIGHT },
	{ "transformer.blocks.4.ffn.router.layer.weight", MOE_COMP_ROUTER, 4, -1, 0, MOE_TP_WEIGHT },
	{ "transformer.blocks.4.ffn.experts.mlp.w1", MOE_COMP_EXPERTS, 4, -1, 1, MOE_TP_WEIGHT },
	{ "transformer.norm_f.weight", MOE_COMP_NORM, -1, -1, 0, MOE_TP_WEIGHT },
	{ "model.layers.2.block_sparse_moe.input_linear.weight", MOE_COMP_EXPERTS, 2, -1, 1, MOE_TP_WEIGHT },
	{ "model.layers.2.block_sparse_moe.router.layer.weight", MOE_COMP_ROUTER, 2, -1, 0, MOE_TP_WEIGHT },
	{ "model.layers.2.mlp.input_linear.weight", MOE_COMP_EXPERTS, 2, -1, 1, MOE_TP_WEIGHT },
	{ "model.layers.2.self_attention.experts.input_linear.weight", MOE_COMP_ATTN, 2, -1, 0, MOE_TP_WEIGHT },
	{ "model.layers.2.mamba.in_proj.weight", MOE_COMP_ATTN, 2, -1, 0, MOE_TP_WEIGHT },
	{ "model.layers.2.mamba.dt_layernorm.weight", MOE_COMP_NORM, 2, -1, 0, MOE_TP_WEIGHT },
	{ "model.layers.3.feed_forward.experts.1.up_proj.weight", MOE_COMP_EXPERTS, 3, 1, 0, MOE_TP_WEIGHT },
	{ "model.layers.2.feed_forward.up_proj.weight", MOE_COMP_DENSE, 2, -1, 0, MOE_TP_WEIGHT },
	/* Switch Transformers */
	{ "shared.weight", MOE_COMP_EMBED, -1, -1, 0, MOE_TP_WEIGHT },
	{ "encoder.block.1.layer.1.mlp.router.classifier.weight", MOE_COMP_ROUTER, 1, -1, 0, MOE_TP_WEIGHT },
	{ "encoder.block.1.layer.1.mlp.experts.expert_3.wi.weight", MOE_COMP_EXPERTS, 1, 3, 0, MOE_TP_WEIGHT },
	{ "decoder.block.0.layer.2.mlp.wo.weight", MOE_COMP_DENSE, 0, -1, 0, MOE_TP_WEIGHT },
	{ "decoder.block.0.layer.1.EncDecAttention.k.weight", MOE_COMP_ATTN, 0, -1, 0, MOE_TP_WEIGHT },
	{ "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", MOE_COMP_ATTN, 0, -1, 0, MOE_TP_WEIGHT },
	{ "encoder.final_layer_norm.weight", MOE_COMP_NORM, -1, -1, 0, MOE_TP_WEIGHT },
};

START_TEST(table)
{
	struct moe_tclass c;
	int rc = moe_tensor_classify(cases[_i].name, &c);

	ck_assert_msg(c.comp == cases[_i].comp, "%s: component %s, want %s", cases[_i].name,
		moe_comp_name(c.comp), moe_comp_name(cases[_i].comp));
	ck_assert_int_eq(rc, cases[_i].comp == MOE_COMP_OTHER ? MOE_ENOENT : 0);
	ck_assert_msg(c.layer == cases[_i].layer, "%s: layer %d", cases[_i].name, c.layer);
	ck_assert_msg(c.expert == cases[_i].expert, "%s: expert %d", cases[_i].name, c.expert);
	ck_assert_msg(c.stacked == cases[_i].stacked, "%s: stacked %d", cases[_i].name, c.stacked);
	ck_assert_msg(c.part == cases[_i].part, "%s: part %d", cases[_i].name, (int)c.part);
}
END_TEST

START_TEST(decoder_flag_and_edges)
{
	struct moe_tclass c;
	char longname[2048];

	ck_assert_int_eq(moe_tensor_classify("decoder.block.3.layer.0.SelfAttention.q.weight", &c), 0);
	ck_assert_int_eq(c.decoder, 1);
	ck_assert_int_eq(moe_tensor_classify("encoder.block.3.layer.0.SelfAttention.q.weight", &c), 0);
	ck_assert_int_eq(c.decoder, 0);
	ck_assert_int_eq(moe_tensor_classify(NULL, &c), MOE_EINVAL);
	ck_assert_int_eq(moe_tensor_classify("", &c), MOE_ENOENT);
	ck_assert_int_eq(c.comp, MOE_COMP_OTHER);
	ck_assert_int_eq(moe_tensor_classify("something.else", &c), MOE_ENOENT);
	/* huge layer numbers are not taken as indices */
	moe_tensor_classify("blk.123456789012.attn_q.weight", &c);
	ck_assert_int_eq(c.layer, -1);
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	ck_assert_int_eq(moe_tensor_classify(longname, &c), MOE_ENOENT);
	ck_assert_str_eq(moe_comp_name(MOE_COMP_EXPERTS), "routed_experts");
	ck_assert_str_eq(moe_comp_name(MOE_COMP_COUNT), "other");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tensor_class");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, table, 0, (int)(sizeof cases / sizeof cases[0]));
	tcase_add_test(tc, decoder_flag_and_edges);
	suite_add_tcase(s, tc);
	return moe_test_run(s);
}
