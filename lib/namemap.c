/* Family tables of tensor names for HF <-> GGUF conversion and a small pattern matcher. */
#include "namemap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define E(g, h, fl) { g, h, fl, -1, -1, 0 }
#define ATTN_NORM E("blk.{L}.attn_norm.weight", "model.layers.{L}.input_layernorm.weight", 0)
#define FFN_NORM E("blk.{L}.ffn_norm.weight", "model.layers.{L}.post_attention_layernorm.weight", 0)
#define TOP_EMBD E("token_embd.weight", "model.embed_tokens.weight", 0)
#define TOP_NORM E("output_norm.weight", "model.norm.weight", 0)
#define TOP_HEAD E("output.weight", "lm_head.weight", 0)
#define ATTN_QKVO(q, k) \
	E("blk.{L}.attn_q.weight", "model.layers.{L}.self_attn.q_proj.weight", q), \
	E("blk.{L}.attn_k.weight", "model.layers.{L}.self_attn.k_proj.weight", k), \
	E("blk.{L}.attn_v.weight", "model.layers.{L}.self_attn.v_proj.weight", 0), \
	E("blk.{L}.attn_output.weight", "model.layers.{L}.self_attn.o_proj.weight", 0)
/* experts under mlp.experts.{E}.{gate,up,down}_proj (Qwen, OLMoE, DeepSeek) */
#define MLP_EXPERTS \
	E("blk.{L}.ffn_gate_inp.weight", "model.layers.{L}.mlp.gate.weight", 0), \
	E("blk.{L}.ffn_gate_exps.weight", "model.layers.{L}.mlp.experts.{E}.gate_proj.weight", MOE_MAP_STACK), \
	E("blk.{L}.ffn_up_exps.weight", "model.layers.{L}.mlp.experts.{E}.up_proj.weight", MOE_MAP_STACK), \
	E("blk.{L}.ffn_down_exps.weight", "model.layers.{L}.mlp.experts.{E}.down_proj.weight", MOE_MAP_STACK)
#define DENSE_MLP \
	E("blk.{L}.ffn_gate.weight", "model.layers.{L}.mlp.gate_proj.weight", 0), \
	E("blk.{L}.ffn_up.weight", "model.layers.{L}.mlp.up_proj.weight", 0), \
	E("blk.{L}.ffn_down.weight", "model.layers.{L}.mlp.down_proj.weight", 0)
#define SHARED_EXPERTS(s) \
	E("blk.{L}.ffn_gate_shexp.weight", "model.layers.{L}.mlp." s ".gate_proj.weight", 0), \
	E("blk.{L}.ffn_up_shexp.weight", "model.layers.{L}.mlp." s ".up_proj.weight", 0), \
	E("blk.{L}.ffn_down_shexp.weight", "model.layers.{L}.mlp." s ".down_proj.weight", 0)

static const struct moe_name_match llama_tab[] = {
	TOP_EMBD, ATTN_NORM, ATTN_QKVO(MOE_MAP_PERMUTE_Q, MOE_MAP_PERMUTE_K), FFN_NORM,
	E("blk.{L}.ffn_gate_inp.weight", "model.layers.{L}.block_sparse_moe.gate.weight", 0),
	E("blk.{L}.ffn_gate_exps.weight", "model.layers.{L}.block_sparse_moe.experts.{E}.w1.weight", MOE_MAP_STACK),
	E("blk.{L}.ffn_up_exps.weight", "model.layers.{L}.block_sparse_moe.experts.{E}.w3.weight", MOE_MAP_STACK),
	E("blk.{L}.ffn_down_exps.weight", "model.layers.{L}.block_sparse_moe.experts.{E}.w2.weight", MOE_MAP_STACK),
	TOP_NORM, TOP_HEAD,
};

static const struct moe_name_match qwen2moe_tab[] = {
	TOP_EMBD, ATTN_NORM,
	E("blk.{L}.attn_q.weight", "model.layers.{L}.self_attn.q_proj.weight", 0),
	E("blk.{L}.attn_k.weight", "model.layers.{L}.self_attn.k_proj.weight", 0),
	E("blk.{L}.attn_v.weight", "model.layers.{L}.self_attn.v_proj.weight", 0),
	E("blk.{L}.attn_q.bias", "model.layers.{L}.self_attn.q_proj.bias", 0),
	E("blk.{L}.attn_k.bias", "model.layers.{L}.self_attn.k_proj.bias", 0),
	E("blk.{L}.attn_v.bias", "model.layers.{L}.self_attn.v_proj.bias", 0),
	E("blk.{L}.attn_output.weight", "model.layers.{L}.self_attn.o_proj.weight", 0),
	FFN_NORM, MLP_EXPERTS,
	E("blk.{L}.ffn_gate_inp_shexp.weight", "model.layers.{L}.mlp.shared_expert_gate.weight", MOE_MAP_SQUEEZE),
	SHARED_EXPERTS("shared_expert"),
	TOP_NORM, TOP_HEAD,
};

static const struct moe_name_match qwen3moe_tab[] = {
	TOP_EMBD, ATTN_NORM, ATTN_QKVO(0, 0),
	E("blk.{L}.attn_q_norm.weight", "model.layers.{L}.self_attn.q_norm.weight", 0),
	E("blk.{L}.attn_k_norm.weight", "model.layers.{L}.self_attn.k_norm.weight", 0),
	FFN_NORM, MLP_EXPERTS, TOP_NORM, TOP_HEAD,
};

static const struct moe_name_match olmoe_tab[] = {
	TOP_EMBD, ATTN_NORM, ATTN_QKVO(0, 0),
	E("blk.{L}.attn_q_norm.weight", "model.layers.{L}.self_attn.q_norm.weight", 0),
	E("blk.{L}.attn_k_norm.weight", "model.layers.{L}.self_attn.k_norm.weight", 0),
	FFN_NORM, MLP_EXPERTS, TOP_NORM, TOP_HEAD,
};

static const struct moe_name_match granitemoe_tab[] = {
	TOP_EMBD, ATTN_NORM, ATTN_QKVO(MOE_MAP_PERMUTE_Q, MOE_MAP_PERMUTE_K), FFN_NORM,
	E("blk.{L}.ffn_gate_inp.weight", "model.layers.{L}.block_sparse_moe.router.layer.weight", 0),
	E("blk.{L}.ffn_gate_exps.weight", "model.layers.{L}.block_sparse_moe.input_linear.weight",
		MOE_MAP_HALF0 | MOE_MAP_EXPERT_DIM0),
	E("blk.{L}.ffn_up_exps.weight", "model.layers.{L}.block_sparse_moe.input_linear.weight",
		MOE_MAP_HALF1 | MOE_MAP_EXPERT_DIM0),
	E("blk.{L}.ffn_down_exps.weight", "model.layers.{L}.block_sparse_moe.output_linear.weight",
		MOE_MAP_EXPERT_DIM0),
	TOP_NORM, TOP_HEAD,
};

static const struct moe_name_match deepseek_tab[] = {
	TOP_EMBD, ATTN_NORM, ATTN_QKVO(MOE_MAP_PERMUTE_Q, MOE_MAP_PERMUTE_K), FFN_NORM,
	DENSE_MLP, MLP_EXPERTS, SHARED_EXPERTS("shared_experts"), TOP_NORM, TOP_HEAD,
};

static const struct moe_name_match deepseek2_tab[] = {
	TOP_EMBD, ATTN_NORM,
	E("blk.{L}.attn_q_a_norm.weight", "model.layers.{L}.self_attn.q_a_layernorm.weight", 0),
	E("blk.{L}.attn_kv_a_norm.weight", "model.layers.{L}.self_attn.kv_a_layernorm.weight", 0),
	E("blk.{L}.attn_q.weight", "model.layers.{L}.self_attn.q_proj.weight", 0),
	E("blk.{L}.attn_q_a.weight", "model.layers.{L}.self_attn.q_a_proj.weight", 0),
	E("blk.{L}.attn_q_b.weight", "model.layers.{L}.self_attn.q_b_proj.weight", 0),
	E("blk.{L}.attn_kv_a_mqa.weight", "model.layers.{L}.self_attn.kv_a_proj_with_mqa.weight", 0),
	E("blk.{L}.attn_kv_b.weight", "model.layers.{L}.self_attn.kv_b_proj.weight", 0),
	E("blk.{L}.attn_output.weight", "model.layers.{L}.self_attn.o_proj.weight", 0),
	FFN_NORM, DENSE_MLP,
	E("blk.{L}.ffn_gate_inp.weight", "model.layers.{L}.mlp.gate.weight", 0),
	E("blk.{L}.exp_probs_b.bias", "model.layers.{L}.mlp.gate.e_score_correction_bias", 0),
	E("blk.{L}.ffn_gate_exps.weight", "model.layers.{L}.mlp.experts.{E}.gate_proj.weight", MOE_MAP_STACK),
	E("blk.{L}.ffn_up_exps.weight", "model.layers.{L}.mlp.experts.{E}.up_proj.weight", MOE_MAP_STACK),
	E("blk.{L}.ffn_down_exps.weight", "model.layers.{L}.mlp.experts.{E}.down_proj.weight", MOE_MAP_STACK),
	SHARED_EXPERTS("shared_experts"), TOP_NORM, TOP_HEAD,
};

struct moe_family {
	const char *arch;
	const char *model_type, *model_type_v3;
	const char *hf_class, *hf_class_v3;
	const struct moe_name_match *tab;
	size_t n;
};

#define FAM(a, mt, mt3, c, c3, t) { a, mt, mt3, c, c3, t, sizeof t / sizeof t[0] }
static const struct moe_family families[] = {
	FAM("llama", "mixtral", NULL, "MixtralForCausalLM", NULL, llama_tab),
	FAM("qwen2moe", "qwen2_moe", NULL, "Qwen2MoeForCausalLM", NULL, qwen2moe_tab),
	FAM("qwen3moe", "qwen3_moe", NULL, "Qwen3MoeForCausalLM", NULL, qwen3moe_tab),
	FAM("olmoe", "olmoe", NULL, "OlmoeForCausalLM", NULL, olmoe_tab),
	FAM("granitemoe", "granitemoe", NULL, "GraniteMoeForCausalLM", NULL, granitemoe_tab),
	FAM("deepseek", "deepseek", NULL, "DeepseekForCausalLM", NULL, deepseek_tab),
	FAM("deepseek2", "deepseek_v2", "deepseek_v3", "DeepseekV2ForCausalLM",
		"DeepseekV3ForCausalLM", deepseek2_tab),
};
#define NFAM (sizeof families / sizeof families[0])

const struct moe_family *moe_family_by_gguf_arch(const char *arch)
{
	for (size_t i = 0; i < NFAM; i++)
		if (strcmp(families[i].arch, arch) == 0)
			return &families[i];
	return NULL;
}

const struct moe_family *moe_family_by_model_type(const char *mt)
{
	for (size_t i = 0; i < NFAM; i++)
		if (strcmp(families[i].model_type, mt) == 0 ||
		    (families[i].model_type_v3 && strcmp(families[i].model_type_v3, mt) == 0))
			return &families[i];
	/* Kimi K2 ships the DeepSeek-V3 architecture under its own name */
	if (strcmp(mt, "kimi_k2") == 0)
		return moe_family_by_gguf_arch("deepseek2");
	return NULL;
}

const char *moe_family_gguf_arch(const struct moe_family *f) { return f->arch; }

const char *moe_family_model_type(const struct moe_family *f, int v3)
{
	return v3 && f->model_type_v3 ? f->model_type_v3 : f->model_type;
}

const char *moe_family_hf_class(const struct moe_family *f, int v3)
{
	return v3 && f->hf_class_v3 ? f->hf_class_v3 : f->hf_class;
}

const char *moe_family_list(void)
{
	return "llama (mixtral), qwen2moe (qwen2_moe), qwen3moe (qwen3_moe), olmoe, "
		"granitemoe, deepseek, deepseek2 (deepseek_v2, deepseek_v3, kimi_k2)";
}

size_t moe_family_nentries(const struct moe_family *f) { return f->n; }
const struct moe_name_match *moe_family_entry(const struct moe_family *f, size_t i)
{
	return i < f->n ? &f->tab[i] : NULL;
}

/* Matches name against pat, capturing the numbers at {L} and {E}. */
static int match(const char *pat, const char *name, int *layer, int *expert)
{
	*layer = *expert = -1;
	while (*pat) {
		if (pat[0] == '{' && (pat[1] == 'L' || pat[1] == 'E') && pat[2] == '}') {
			long v = 0;
			int digits = 0;
			while (*name >= '0' && *name <= '9' && digits < 7) {
				v = v * 10 + (*name++ - '0');
				digits++;
			}
			if (digits == 0 || (*name >= '0' && *name <= '9'))
				return 0;
			*(pat[1] == 'L' ? layer : expert) = (int)v;
			pat += 3;
		} else if (*pat++ != *name++) {
			return 0;
		}
	}
	return *name == '\0';
}

int moe_namemap_match(const struct moe_family *f, const char *name, int hf,
	struct moe_name_match *m)
{
	for (size_t i = 0; i < f->n; i++) {
		int layer, expert;
		if (match(hf ? f->tab[i].hf_pat : f->tab[i].gguf_pat, name, &layer, &expert)) {
			*m = f->tab[i];
			m->layer = layer;
			m->expert = expert;
			m->index = (int)i;
			return 0;
		}
	}
	return MOE_ENOENT;
}

int moe_namemap_format(const char *pat, int layer, int expert, char *out, size_t n)
{
	size_t k = 0;

	while (*pat) {
		int w;
		if (pat[0] == '{' && (pat[1] == 'L' || pat[1] == 'E') && pat[2] == '}') {
			w = snprintf(out + k, n - k, "%d", pat[1] == 'L' ? layer : expert);
			pat += 3;
		} else {
			w = snprintf(out + k, n - k, "%c", *pat++);
		}
		if (w < 0 || (size_t)w >= n - k)
			return MOE_ERANGE;
		k += (size_t)w;
	}
	return 0;
}
