/* --init: the GGUF-side tensor layout of a family from its hyperparameters, and seeded random rows. */
#include "convert_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Hyperparameters the layout needs, read back from the GGUF keys. */
struct hp {
	uint64_t d, vocab, heads, kv_heads, hd, ff, n_expert, eff, shff;
	uint64_t lead, q_lora, kv_lora, qk, rope, vdim;
	const char *arch;
	int tied, qkv_bias, v3;
};

static void read_hp(const struct moe_conversion *c, json_t *config, struct hp *h)
{
	const char *arch = moe_family_gguf_arch(c->fam);
	json_t *sh = json_object_get(config, "n_shared_experts");

	memset(h, 0, sizeof *h);
	h->arch = arch;
	h->d = moe_conv_hp(c, "embedding_length", 0);
	h->vocab = moe_conv_hp(c, "vocab_size", 0);
	h->heads = moe_conv_hp(c, "attention.head_count", 1);
	h->kv_heads = moe_conv_hp(c, "attention.head_count_kv", (uint32_t)h->heads);
	h->hd = moe_conv_hp(c, "rope.dimension_count", (uint32_t)(h->d / h->heads));
	h->ff = moe_conv_hp(c, "feed_forward_length", 0);
	h->n_expert = moe_conv_hp(c, "expert_count", 0);
	h->eff = moe_conv_hp(c, "expert_feed_forward_length", (uint32_t)h->ff);
	h->shff = moe_conv_hp(c, "expert_shared_feed_forward_length",
		(uint32_t)(json_integer_value(sh) * (json_int_t)h->eff));
	h->lead = moe_conv_hp(c, "leading_dense_block_count", 0);
	h->q_lora = moe_conv_hp(c, "attention.q_lora_rank", 0);
	h->kv_lora = moe_conv_hp(c, "attention.kv_lora_rank", 0);
	h->qk = moe_conv_hp(c, "attention.key_length", 0);
	h->rope = h->hd;
	h->vdim = moe_conv_hp(c, "attention.value_length", 0);
	h->tied = json_is_true(json_object_get(config, "tie_word_embeddings"));
	h->qkv_bias = strcmp(arch, "qwen2moe") == 0;
	h->v3 = strcmp(arch, "deepseek2") == 0 &&
		json_is_string(json_object_get(config, "topk_method")) &&
		strcmp(json_string_value(json_object_get(config, "topk_method")), "noaux_tc") == 0;
}

#define SH1(a) (*nd = 1, s[0] = (a), 1)
#define SH2(a, b) (*nd = 2, s[0] = (a), s[1] = (b), 1)
#define SH3(a, b, e) (*nd = 3, s[0] = (a), s[1] = (b), s[2] = (e), 1)

/* MLA attention tensors of deepseek2. */
static int mla_shape(const struct hp *h, const char *n, uint64_t *s, int *nd)
{
	uint64_t q = h->heads * h->qk;

	if (!strcmp(n, "attn_q_a_norm.weight")) return h->q_lora ? SH1(h->q_lora) : 0;
	if (!strcmp(n, "attn_kv_a_norm.weight")) return SH1(h->kv_lora);
	if (!strcmp(n, "attn_q.weight")) return h->q_lora ? 0 : SH2(q, h->d);
	if (!strcmp(n, "attn_q_a.weight")) return h->q_lora ? SH2(h->q_lora, h->d) : 0;
	if (!strcmp(n, "attn_q_b.weight")) return h->q_lora ? SH2(q, h->q_lora) : 0;
	if (!strcmp(n, "attn_kv_a_mqa.weight")) return SH2(h->kv_lora + h->rope, h->d);
	if (!strcmp(n, "attn_kv_b.weight"))
		return SH2(h->heads * (h->qk - h->rope + h->vdim), h->kv_lora);
	if (!strcmp(n, "attn_output.weight")) return SH2(h->d, h->heads * h->vdim);
	return -1;
}

static int attn_shape(const struct hp *h, const char *n, uint64_t *s, int *nd)
{
	uint64_t q = h->heads * h->hd, kv = h->kv_heads * h->hd;
	int olmoe = !strcmp(h->arch, "olmoe");

	if (!strcmp(h->arch, "deepseek2"))
		return mla_shape(h, n, s, nd);
	if (!strcmp(n, "attn_q.weight")) return SH2(q, h->d);
	if (!strcmp(n, "attn_k.weight") || !strcmp(n, "attn_v.weight")) return SH2(kv, h->d);
	if (!strcmp(n, "attn_output.weight")) return SH2(h->d, q);
	if (!strcmp(n, "attn_q.bias")) return h->qkv_bias ? SH1(q) : 0;
	if (!strcmp(n, "attn_k.bias") || !strcmp(n, "attn_v.bias")) return h->qkv_bias ? SH1(kv) : 0;
	if (!strcmp(n, "attn_q_norm.weight")) return SH1(olmoe ? q : h->hd);
	if (!strcmp(n, "attn_k_norm.weight")) return SH1(olmoe ? kv : h->hd);
	return -1;
}

/* Shape (outermost first) of block tensor n in layer l: 1, or 0 absent. */
static int block_shape(const struct hp *h, const char *n, uint64_t l, uint64_t *s, int *nd)
{
	int moe = l >= h->lead, a;

	if (!strcmp(n, "attn_norm.weight") || !strcmp(n, "ffn_norm.weight")) return SH1(h->d);
	if ((a = attn_shape(h, n, s, nd)) >= 0) return a;
	if (!strcmp(n, "ffn_gate.weight") || !strcmp(n, "ffn_up.weight")) return moe ? 0 : SH2(h->ff, h->d);
	if (!strcmp(n, "ffn_down.weight")) return moe ? 0 : SH2(h->d, h->ff);
	if (!moe)
		return 0;
	if (!strcmp(n, "ffn_gate_inp.weight")) return SH2(h->n_expert, h->d);
	if (!strcmp(n, "exp_probs_b.bias")) return h->v3 ? SH1(h->n_expert) : 0;
	if (!strcmp(n, "ffn_gate_exps.weight") || !strcmp(n, "ffn_up_exps.weight"))
		return SH3(h->n_expert, h->eff, h->d);
	if (!strcmp(n, "ffn_down_exps.weight")) return SH3(h->n_expert, h->d, h->eff);
	if (!strcmp(n, "ffn_gate_inp_shexp.weight")) return SH1(h->d);
	if (!strcmp(n, "ffn_gate_shexp.weight") || !strcmp(n, "ffn_up_shexp.weight"))
		return h->shff ? SH2(h->shff, h->d) : 0;
	if (!strcmp(n, "ffn_down_shexp.weight")) return h->shff ? SH2(h->d, h->shff) : 0;
	return 0;
}

static int top_shape(const struct hp *h, const char *n, uint64_t *s, int *nd)
{
	if (!strcmp(n, "token_embd.weight")) return SH2(h->vocab, h->d);
	if (!strcmp(n, "output_norm.weight")) return SH1(h->d);
	if (!strcmp(n, "output.weight")) return h->tied ? 0 : SH2(h->vocab, h->d);
	return 0;
}

static int add_gen(struct moe_conversion *c, const char *name, const uint64_t *shape,
	int nd, size_t *cap)
{
	struct moe_tensor *t;

	if (c->nsrc == *cap) {
		*cap = *cap ? 2 * *cap : 64;
		if ((t = realloc(c->gen, *cap * sizeof *t)) == NULL)
			return moe_error_set(&c->err, MOE_ENOMEM, "out of memory");
		c->gen = t;
		c->src = t;
	}
	t = &c->gen[c->nsrc];
	memset(t, 0, sizeof *t);
	if ((t->name = strdup(name)) == NULL)
		return moe_error_set(&c->err, MOE_ENOMEM, "out of memory");
	t->dtype = MOE_DT_F32;
	t->ndim = nd;
	memcpy(t->shape, shape, (size_t)nd * sizeof *shape);
	t->file = MOE_GEN_FILE;
	c->nsrc++;
	return moe_dtype_nbytes(MOE_DT_F32, moe_tensor_numel(t), &t->nbytes) ? MOE_ERANGE : 0;
}

/*
 * A SentencePiece-style vocabulary that spells everything in bytes:
 * <unk>, <s>, </s>, the 256 byte tokens, then unused fillers up to the
 * model's vocabulary. Enough for llama.cpp and moe-run to take text.
 */
static int byte_vocab(struct moe_conversion *c, uint64_t vocab)
{
	struct moe_str *tok = calloc(vocab, sizeof *tok);
	float *score = calloc(vocab, sizeof *score);
	int32_t *type = calloc(vocab, sizeof *type);
	int rc = 0;

	if (tok == NULL || score == NULL || type == NULL)
		rc = MOE_ENOMEM;
	for (uint64_t i = 0; rc == 0 && i < vocab; i++) {
		char buf[32];
		if (i < 3)
			snprintf(buf, sizeof buf, "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
		else if (i < 259)
			snprintf(buf, sizeof buf, "<0x%02X>", (unsigned)(i - 3));
		else
			snprintf(buf, sizeof buf, "[PAD%llu]", (unsigned long long)i);
		type[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 5;
		if ((tok[i].s = strdup(buf)) == NULL)
			rc = MOE_ENOMEM;
		else
			tok[i].len = strlen(buf);
	}
	if (rc == 0) {
		rc = moe_meta_set_array(c->kv, "tokenizer.ggml.tokens", MOE_V_STR, tok, vocab);
		tok = NULL;
	}
	if (rc == 0) {
		rc = moe_meta_set_array(c->kv, "tokenizer.ggml.scores", MOE_V_F32, score, vocab);
		score = NULL;
	}
	if (rc == 0) {
		rc = moe_meta_set_array(c->kv, "tokenizer.ggml.token_type", MOE_V_I32, type, vocab);
		type = NULL;
	}
	if (rc == 0 && (moe_meta_set_str(c->kv, "tokenizer.ggml.model", "llama") ||
	    moe_meta_set_u32(c->kv, "tokenizer.ggml.bos_token_id", 1) ||
	    moe_meta_set_u32(c->kv, "tokenizer.ggml.eos_token_id", 2) ||
	    moe_meta_set_u32(c->kv, "tokenizer.ggml.unknown_token_id", 0) ||
	    moe_meta_set_bool(c->kv, "tokenizer.ggml.add_bos_token", 1) ||
	    moe_meta_set_bool(c->kv, "tokenizer.ggml.add_eos_token", 0)))
		rc = MOE_ENOMEM;
	for (uint64_t i = 0; tok && i < vocab; i++)
		free(tok[i].s);
	free(tok);
	free(score);
	free(type);
	return rc ? moe_error_set(&c->err, rc, "out of memory") : 0;
}

/* Top-level tensors before the blocks (embedding), then every block, then
 * the ones after (final norm, head): llama.cpp's order. */
int moe_conv_init_layout(struct moe_conversion *c, json_t *config)
{
	struct hp h;
	size_t cap = 0, n = moe_family_nentries(c->fam), first_blk = 0;
	uint32_t layers = moe_conv_hp(c, "block_count", 0);
	char name[256];

	read_hp(c, config, &h);
	if (h.d == 0 || h.vocab == 0 || layers == 0 || h.n_expert == 0)
		return moe_error_set(&c->err, MOE_EINVAL, "--init: config.json needs hidden_size, "
			"vocab_size, num_hidden_layers and an expert count");
	while (first_blk < n && strncmp(moe_family_entry(c->fam, first_blk)->gguf_pat,
	       "blk.{L}.", 8) != 0)
		first_blk++;
	for (int pass = 0; pass < 3; pass++)
		for (uint32_t l = 0; l < (pass == 1 ? layers : 1); l++)
			for (size_t i = 0; i < n; i++) {
				const char *pat = moe_family_entry(c->fam, i)->gguf_pat;
				int blk = strncmp(pat, "blk.{L}.", 8) == 0, nd = 0, rc;
				uint64_t s[MOE_MAX_DIMS];
				if ((pass == 1) != blk || (pass == 0 && i > first_blk) ||
				    (pass == 2 && i < first_blk))
					continue;
				if (!(blk ? block_shape(&h, pat + 8, l, s, &nd) : top_shape(&h, pat, s, &nd)))
					continue;
				moe_namemap_format(pat, (int)l, -1, name, sizeof name);
				if ((rc = add_gen(c, name, s, nd, &cap)) != 0)
					return rc;
			}
	return h.vocab >= 259 && h.vocab <= (1u << 20) ? byte_vocab(c, h.vocab) : 0;
}

/* splitmix64: a small, well-mixed generator; one stream per row. */
static uint64_t mix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

/* Mean and spread of a tensor's values by its role. */
static void init_spec(const struct moe_tensor *t, float *mean, float *std)
{
	const char *n = t->name;
	double fan_in = (double)t->shape[t->ndim - 1];

	*mean = 0;
	if (strstr(n, "norm")) {
		*mean = 1, *std = 0;
	} else if (strstr(n, "exp_probs_b")) {
		*std = 0.2f;
	} else if (strstr(n, ".bias")) {
		*std = 0.1f;
	} else if (!strcmp(n, "token_embd.weight")) {
		*std = 0.5f;
	} else if (!strcmp(n, "output.weight")) {
		*std = (float)(2 / sqrt(fan_in));
	} else if (strstr(n, "ffn_gate_inp.weight")) {
		*std = (float)(3 / sqrt(fan_in));   /* decisive routing */
	} else {
		*std = (float)(1 / sqrt(fan_in));
	}
}

void moe_conv_init_row(const struct moe_conversion *c, const struct moe_tensor *t,
	uint64_t row, float *out, uint64_t n)
{
	uint64_t st = c->seed ^ name_hash(t->name) ^ (row * 0xd1342543de82ef95ull);
	float mean, std;

	init_spec(t, &mean, &std);
	for (uint64_t i = 0; i < n; i += 2) {
		/* Box-Muller from two 53-bit uniforms in (0, 1] */
		double u1 = ((mix(&st) >> 11) + 1) * 0x1.0p-53, u2 = (mix(&st) >> 11) * 0x1.0p-53;
		double r = sqrt(-2 * log(u1));
		out[i] = mean + std * (float)(r * cos(2 * M_PI * u2));
		if (i + 1 < n)
			out[i + 1] = mean + std * (float)(r * sin(2 * M_PI * u2));
	}
}
