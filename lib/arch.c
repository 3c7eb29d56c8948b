/* Architecture description: lifecycle, GGUF-metadata and tensor-shape builders, checkpoint dispatch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch_impl.h"
#include "tensor_class.h"

void moe_arch_init(struct moe_arch *a)
{
	memset(a, 0, sizeof *a);
	a->routed_scale = 1.0;
}

void moe_arch_release(struct moe_arch *a)
{
	struct moe_error keep = a->err;

	free(a->family);
	free(a->model_type);
	free(a->layers);
	moe_arch_init(a);
	a->err = keep;
}

const char *moe_arch_errstr(const struct moe_arch *a)
{
	return moe_error_str(&a->err);
}

const char *moe_attn_kind_name(enum moe_attn_kind k)
{
	static const char *const names[MOE_ATTN_KIND_COUNT] = {
		"none", "mha", "gqa", "mla", "ssm"
	};

	return (unsigned)k < MOE_ATTN_KIND_COUNT ? names[k] : "none";
}

int moe_arch_alloc_layers(struct moe_arch *a, uint32_t n)
{
	if (n == 0 || n > MOE_ARCH_MAX_LAYERS)
		return moe_error_set(&a->err, MOE_ERANGE,
			"layer count %u out of range (1..%u)", n, MOE_ARCH_MAX_LAYERS);
	free(a->layers);
	if ((a->layers = calloc(n, sizeof *a->layers)) == NULL) {
		a->n_layers = 0;
		return moe_error_set(&a->err, MOE_ENOMEM, "out of memory");
	}
	a->n_layers = n;
	return 0;
}

int moe_arch_set_names(struct moe_arch *a, const char *family, const char *model_type)
{
	free(a->family);
	free(a->model_type);
	a->family = strdup(family);
	a->model_type = strdup(model_type);
	if (a->family == NULL || a->model_type == NULL)
		return moe_error_set(&a->err, MOE_ENOMEM, "out of memory");
	return 0;
}

void moe_arch_note_unknown(struct moe_arch *a, const char *what)
{
	size_t n = strlen(a->unknown);

	if (strstr(a->unknown, what))
		return;
	snprintf(a->unknown + n, sizeof a->unknown - n, "%s%s", n ? "; " : "", what);
}

static int width_ok(uint64_t w)
{
	return w <= MOE_ARCH_MAX_WIDTH;
}

/* Rough size of a layer in parameters, in floating point: a model whose
 * counts could overflow 64 bits is refused before it is counted. */
static double layer_bound(const struct moe_arch *a, const struct moe_layer *L)
{
	double d = a->d_model, hd = (double)L->head_dim + L->head_dim_v + L->qk_rope_dim;
	double attn = d * ((double)L->n_head + L->n_head_kv + L->q_lora_rank + L->kv_lora_rank) * hd
		+ ((double)L->q_lora_rank + L->kv_lora_rank) * L->n_head * hd;
	double ffn = 3 * d * ((double)L->d_ff + (double)L->n_expert * L->d_expert + L->d_shared);

	return 2 * attn + ffn + (double)L->attn_experts * 2 * d * L->n_head_kv * L->head_dim +
		(double)L->mixer_params + 16 * d;
}

int moe_arch_finish(struct moe_arch *a)
{
	double size = 2.0 * (double)a->vocab * a->d_model + (double)a->vision_params;
	uint32_t i;

	if (a->d_model == 0 || !width_ok(a->d_model))
		return moe_error_set(&a->err, MOE_ERANGE, "hidden size %u out of range", a->d_model);
	if (a->vocab > MOE_ARCH_MAX_VOCAB || a->vocab_out > MOE_ARCH_MAX_VOCAB)
		return moe_error_set(&a->err, MOE_ERANGE, "vocabulary size out of range");
	if (a->n_mtp > MOE_ARCH_MAX_LAYERS)
		return moe_error_set(&a->err, MOE_ERANGE, "too many prediction modules");
	for (i = 0; i < a->n_layers; i++) {
		struct moe_layer *L = &a->layers[i];

		if (!width_ok(L->n_head) || !width_ok(L->n_head_kv) ||
			!width_ok(L->head_dim) || !width_ok(L->head_dim_v) ||
			!width_ok(L->q_lora_rank) || !width_ok(L->kv_lora_rank) ||
			!width_ok(L->d_ff) || !width_ok(L->d_expert) ||
			!width_ok(L->d_shared) || !width_ok(L->q_norm) || !width_ok(L->k_norm) ||
			L->n_expert > MOE_ARCH_MAX_EXPERTS || L->top_k > L->n_expert ||
			L->attn_experts > MOE_ARCH_MAX_EXPERTS || L->attn_top_k > L->attn_experts ||
			(L->attn == MOE_ATTN_MLA && L->qk_rope_dim > L->head_dim))
			return moe_error_set(&a->err, MOE_ERANGE,
				"layer %u: a size is out of range", i);
		size += layer_bound(a, L) * (i == a->n_layers - 1 ? 1.0 + a->n_mtp : 1.0);
		if (L->attn == MOE_ATTN_GQA || L->attn == MOE_ATTN_MHA) {
			if (L->n_head_kv == 0 || L->n_head_kv > L->n_head)
				L->n_head_kv = L->n_head;
			L->attn = L->n_head_kv == L->n_head ? MOE_ATTN_MHA : MOE_ATTN_GQA;
		}
	}
	/* 2^60 parameters: a million times the largest published model */
	if (!(size < 1152921504606846976.0))
		return moe_error_set(&a->err, MOE_ERANGE,
			"the described model is too large to count (about %.3g parameters)", size);
	return 0;
}

/* ---- GGUF metadata ---------------------------------------------------- */

struct gguf_ctx {
	struct moe_arch *a;
	const struct moe_meta *m;
	const char *arch;
	const struct moe_tensor *t;
	size_t nt;
};

static int gu(struct gguf_ctx *g, const char *key, uint64_t dflt, uint64_t *out)
{
	char k[160];
	int rc;

	snprintf(k, sizeof k, "%s.%s", g->arch, key);
	rc = moe_meta_get_u64(g->m, k, out);
	if (rc == MOE_ENOENT) {
		*out = dflt;
		return 0;
	}
	if (rc != 0 || *out > UINT32_MAX)
		return moe_error_set(&g->a->err, MOE_EFORMAT, "GGUF key '%s' is not a count", k);
	return 0;
}

static double gf(struct gguf_ctx *g, const char *key, double dflt)
{
	char k[160];
	double v;

	snprintf(k, sizeof k, "%s.%s", g->arch, key);
	return moe_meta_get_f64(g->m, k, &v) == 0 ? v : dflt;
}

static const struct moe_tensor *find_t(struct gguf_ctx *g, const char *fmt, uint32_t i)
{
	char name[128];
	size_t j;

	snprintf(name, sizeof name, fmt, i);
	for (j = 0; j < g->nt; j++)
		if (strcmp(g->t[j].name, name) == 0)
			return &g->t[j];
	return NULL;
}

static const struct {
	const char *gguf, *family;
} gguf_families[] = {
	{ "llama", "mixtral" }, { "qwen2moe", "qwen2_moe" }, { "qwen3moe", "qwen3_moe" },
	{ "olmoe", "olmoe" }, { "granitemoe", "granitemoe" }, { "deepseek", "deepseek" },
	{ "deepseek2", "deepseek_v2" }, { "glm4moe", "glm4_moe" }, { "gpt-oss", "gpt_oss" },
	{ "dbrx", "dbrx" }, { "phimoe", "phimoe" }, { "jamba", "jamba" },
	{ "llama4", "llama4" },
};

/* What GGUF keys do not say, by family; tensors (when given) override. */
static void gguf_family_defaults(struct gguf_ctx *g, struct moe_layer *L, uint32_t i)
{
	struct moe_arch *a = g->a;
	const char *f = a->family;
	const struct moe_tensor *t;

	if (strcmp(f, "qwen2_moe") == 0 || strcmp(f, "glm4_moe") == 0)
		L->qkv_bias = 1;
	if (strcmp(f, "qwen2_moe") == 0 && L->ffn == MOE_FFN_MOE && L->d_shared)
		L->shared_gate = 1;
	if (strcmp(f, "olmoe") == 0) {
		L->q_norm = L->n_head * L->head_dim;
		L->k_norm = L->n_head_kv * L->head_dim;
	}
	if (strcmp(f, "qwen3_moe") == 0)
		L->q_norm = L->k_norm = L->head_dim;
	if (strcmp(f, "gpt_oss") == 0) {
		L->qkv_bias = L->o_bias = L->sinks = 1;
		L->router_bias = L->expert_bias = 1;
	}
	if (L->ffn == MOE_FFN_MOE && a->gating == MOE_GATE_SIGMOID &&
		strcmp(f, "deepseek_v2") == 0)
		L->score_bias = 1;
	if (g->t == NULL)
		return;
	L->qkv_bias = find_t(g, "blk.%u.attn_q.bias", i) != NULL;
	L->o_bias = find_t(g, "blk.%u.attn_output.bias", i) != NULL;
	L->sinks = find_t(g, "blk.%u.attn_sinks.weight", i) != NULL ||
		find_t(g, "blk.%u.attn_sinks", i) != NULL;
	t = find_t(g, "blk.%u.attn_q_norm.weight", i);
	L->q_norm = t ? (uint32_t)moe_tensor_numel(t) : 0;
	t = find_t(g, "blk.%u.attn_k_norm.weight", i);
	L->k_norm = t ? (uint32_t)moe_tensor_numel(t) : 0;
	if (L->ffn == MOE_FFN_MOE) {
		L->score_bias = find_t(g, "blk.%u.exp_probs_b.bias", i) != NULL;
		L->shared_gate = find_t(g, "blk.%u.ffn_gate_inp_shexp.weight", i) != NULL;
		L->router_bias = find_t(g, "blk.%u.ffn_gate_inp.bias", i) != NULL;
		L->expert_bias = find_t(g, "blk.%u.ffn_up_exps.bias", i) != NULL;
	}
	if (L->attn == MOE_ATTN_MLA && find_t(g, "blk.%u.attn_q.weight", i))
		L->q_lora_rank = 0;
}

static int gguf_layers(struct gguf_ctx *g, uint64_t nl)
{
	struct moe_arch *a = g->a;
	uint64_t nh, nkv, kl, vl, ff, eff, e, k, nsh, shff, lead, step, ql, kvl, rope, win;
	const char *f;
	uint32_t i;
	int rc, shared_is_count;

	if ((rc = gu(g, "attention.head_count", 0, &nh)) != 0 ||
		(rc = gu(g, "attention.head_count_kv", nh, &nkv)) != 0 ||
		(rc = gu(g, "feed_forward_length", 0, &ff)) != 0 ||
		(rc = gu(g, "expert_feed_forward_length", ff, &eff)) != 0 ||
		(rc = gu(g, "expert_count", 0, &e)) != 0 ||
		(rc = gu(g, "expert_used_count", 0, &k)) != 0 ||
		(rc = gu(g, "expert_shared_count", 0, &nsh)) != 0 ||
		(rc = gu(g, "expert_shared_feed_forward_length", 0, &shff)) != 0 ||
		(rc = gu(g, "leading_dense_block_count", 0, &lead)) != 0 ||
		(rc = gu(g, "interleave_moe_layer_step", 1, &step)) != 0 ||
		(rc = gu(g, "attention.q_lora_rank", 0, &ql)) != 0 ||
		(rc = gu(g, "attention.kv_lora_rank", 0, &kvl)) != 0 ||
		(rc = gu(g, "rope.dimension_count", 0, &rope)) != 0 ||
		(rc = gu(g, "attention.sliding_window", 0, &win)) != 0)
		return rc;
	if (nh == 0)
		return moe_error_set(&a->err, MOE_EFORMAT,
			"GGUF: missing '%s.attention.head_count'", g->arch);
	if ((rc = gu(g, "attention.key_length", a->d_model / nh, &kl)) != 0 ||
		(rc = gu(g, "attention.value_length", kl, &vl)) != 0)
		return rc;
	if ((rc = moe_arch_alloc_layers(a, (uint32_t)nl)) != 0)
		return rc;
	f = a->family;
	/* DeepSeek's shared FFN is n_shared experts wide; Qwen2-MoE names
	 * its one shared expert's width directly. */
	shared_is_count = shff == 0;
	for (i = 0; i < nl; i++) {
		struct moe_layer *L = &a->layers[i];

		L->n_head = (uint32_t)nh;
		L->n_head_kv = (uint32_t)(nkv ? nkv : nh);
		L->head_dim = (uint32_t)kl;
		L->head_dim_v = (uint32_t)vl;
		L->n_norms = 2;
		L->attn = MOE_ATTN_GQA;
		if (kvl > 0) {
			L->attn = MOE_ATTN_MLA;
			L->q_lora_rank = (uint32_t)ql;
			L->kv_lora_rank = (uint32_t)kvl;
			L->qk_rope_dim = (uint32_t)rope;
		}
		if (win && (strcmp(f, "gpt_oss") != 0 || i % 2 == 0))
			L->window = (uint32_t)win;
		if (e > 0 && i >= lead && step > 0 && (i + 1) % step == 0) {
			if (k == 0 || k > e)
				return moe_error_set(&a->err, MOE_EFORMAT,
					"GGUF: bad expert counts (%llu experts, %llu used)",
					(unsigned long long)e, (unsigned long long)k);
			L->ffn = MOE_FFN_MOE;
			L->n_expert = (uint32_t)e;
			L->top_k = (uint32_t)k;
			L->d_expert = (uint32_t)eff;
			if (shared_is_count) {
				L->n_shared = (uint32_t)nsh;
				L->d_shared = nsh * eff > UINT32_MAX ? UINT32_MAX : (uint32_t)(nsh * eff);
			} else {
				L->n_shared = (uint32_t)(nsh ? nsh : 1);
				L->d_shared = (uint32_t)shff;
			}
			if (strcmp(f, "llama4") == 0) {
				L->n_shared = 1;
				L->d_shared = (uint32_t)eff;
			}
		} else if (ff > 0) {
			L->ffn = MOE_FFN_DENSE;
			L->d_ff = (uint32_t)ff;
		}
		gguf_family_defaults(g, L, i);
	}
	return 0;
}

int moe_arch_from_gguf(struct moe_arch *a, const struct moe_meta *meta,
	const struct moe_tensor *tensors, size_t n)
{
	struct gguf_ctx g = { a, meta, NULL, tensors, n };
	const struct moe_value *tok;
	const char *fam = NULL;
	uint64_t nl, d, vocab, nextn, gfunc, ngroup, ngused, ctx;
	size_t i;
	int rc, b;

	moe_arch_release(a);
	if (meta == NULL || moe_meta_get_str(meta, "general.architecture", &g.arch) != 0)
		return moe_error_set(&a->err, MOE_EFORMAT,
			"GGUF metadata has no 'general.architecture'");
	for (i = 0; i < sizeof gguf_families / sizeof gguf_families[0]; i++)
		if (strcmp(gguf_families[i].gguf, g.arch) == 0)
			fam = gguf_families[i].family;
	{
		/* a "llama" GGUF is Mixtral only when it has experts */
		char k[160];
		uint64_t e = 0;

		snprintf(k, sizeof k, "%s.expert_count", g.arch);
		if (moe_meta_get_u64(meta, k, &e) != 0 || e == 0)
			fam = NULL;
	}
	if ((rc = moe_arch_set_names(a, fam ? fam : g.arch, g.arch)) != 0)
		goto fail;
	if ((rc = gu(&g, "block_count", 0, &nl)) != 0 ||
		(rc = gu(&g, "embedding_length", 0, &d)) != 0 ||
		(rc = gu(&g, "vocab_size", 0, &vocab)) != 0 ||
		(rc = gu(&g, "nextn_predict_layers", 0, &nextn)) != 0 ||
		(rc = gu(&g, "expert_gating_func", 1, &gfunc)) != 0 ||
		(rc = gu(&g, "expert_group_count", 0, &ngroup)) != 0 ||
		(rc = gu(&g, "expert_group_used_count", 0, &ngused)) != 0 ||
		(rc = gu(&g, "context_length", 0, &ctx)) != 0)
		goto fail;
	if (vocab == 0 && (tok = moe_meta_find(meta, "tokenizer.ggml.tokens")) != NULL &&
		tok->type == MOE_V_ARR)
		vocab = tok->v.arr.n;
	if (nl == 0 || d == 0) {
		rc = moe_error_set(&a->err, MOE_EFORMAT,
			"GGUF: missing '%s.block_count' or '%s.embedding_length'", g.arch, g.arch);
		goto fail;
	}
	if (nextn >= nl) {
		rc = moe_error_set(&a->err, MOE_EFORMAT, "GGUF: more prediction layers than blocks");
		goto fail;
	}
	a->d_model = (uint32_t)d;
	a->vocab = a->vocab_out = vocab;
	a->ctx = ctx;
	a->n_mtp = (uint32_t)nextn;
	a->gated = a->final_norm = 1;
	a->gating = gfunc == 2 ? MOE_GATE_SIGMOID : MOE_GATE_SOFTMAX;
	a->routed_scale = gf(&g, "expert_weights_scale", 1.0);
	if (a->routed_scale == 0)
		a->routed_scale = 1.0;
	a->n_group = (uint32_t)ngroup;
	a->topk_group = (uint32_t)ngused;
	/* llama.cpp renormalises top-k for these unless told otherwise */
	b = strcmp(a->family, "mixtral") == 0 || strcmp(a->family, "granitemoe") == 0 ||
		strcmp(a->family, "gpt_oss") == 0 || strcmp(a->family, "qwen3_moe") == 0;
	{
		char k[160];
		int v;

		snprintf(k, sizeof k, "%s.expert_weights_norm", g.arch);
		if (moe_meta_get_bool(meta, k, &v) == 0)
			b = v;
	}
	a->norm_topk = (uint8_t)b;
	a->tied = strcmp(a->family, "granitemoe") == 0;
	if (tensors) {
		const struct moe_tensor *emb = find_t(&g, "token_embd.weight", 0);

		a->tied = find_t(&g, "output.weight", 0) == NULL;
		if (emb && emb->ndim == 2 && vocab == 0)
			a->vocab = a->vocab_out = emb->shape[0];
	}
	if ((rc = gguf_layers(&g, nl - nextn)) != 0 || (rc = moe_arch_finish(a)) != 0)
		goto fail;
	if (a->vocab == 0)
		moe_arch_note_unknown(a, "vocabulary size");
	a->source = "gguf";
	return 0;
fail:
	{
		struct moe_error keep = a->err;

		moe_arch_release(a);
		a->err = keep;
	}
	return rc;
}

/* ---- tensors only ------------------------------------------------------ */

struct tlayer {
	uint64_t q, k, v, o;              /* projection output widths */
	uint64_t router_e;                /* experts seen in the router */
	uint64_t exp_ff, shared_ff, dense_ff;
	uint32_t max_expert;
	uint64_t qnorm, knorm, kv_a, kv_lora, q_lora;
	int mla, ssm, qbias;
};

/* Output width of a 2-D weight [out, in] (or stacked [E, out, in]). */
static uint64_t out_dim(const struct moe_tensor *t)
{
	if (t->ndim == 2)
		return t->shape[0];
	if (t->ndim == 3)
		return t->shape[1];
	return 0;
}

static int leaf_is(const char *name, const char *part)
{
	return strstr(name, part) != NULL;
}

static void scan_tensor(struct tlayer *tl, const struct moe_tensor *t,
	const struct moe_tclass *c)
{
	const char *n = t->name;

	switch (c->comp) {
	case MOE_COMP_ATTN:
		if (leaf_is(n, "kv_a"))
			tl->mla = 1, tl->kv_a = out_dim(t);
		else if (leaf_is(n, "q_a_proj") || leaf_is(n, "attn_q_a."))
			tl->q_lora = out_dim(t);
		else if (leaf_is(n, "q_proj.weight") || leaf_is(n, "attn_q.weight"))
			tl->q = out_dim(t);
		else if (leaf_is(n, "k_proj.weight") || leaf_is(n, "attn_k.weight"))
			tl->k = out_dim(t);
		else if (leaf_is(n, "v_proj.weight") || leaf_is(n, "attn_v.weight"))
			tl->v = out_dim(t);
		else if (leaf_is(n, "q_proj.bias") || leaf_is(n, "attn_q.bias"))
			tl->qbias = 1;
		else if (leaf_is(n, "mamba") || leaf_is(n, "ssm_") || leaf_is(n, "linear_attn"))
			tl->ssm = 1;
		break;
	case MOE_COMP_NORM:
		if (leaf_is(n, "q_norm") || leaf_is(n, "attn_q_norm"))
			tl->qnorm = moe_tensor_numel(t);
		else if (leaf_is(n, "k_norm") || leaf_is(n, "attn_k_norm"))
			tl->knorm = moe_tensor_numel(t);
		else if (leaf_is(n, "kv_a_layernorm") || leaf_is(n, "attn_kv_a_norm"))
			tl->kv_lora = moe_tensor_numel(t);
		break;
	case MOE_COMP_ROUTER:
		if (c->part == MOE_TP_WEIGHT && t->ndim == 2 && !leaf_is(n, "shexp") &&
			!leaf_is(n, "shared_expert_gate"))
			tl->router_e = t->shape[0];
		break;
	case MOE_COMP_EXPERTS:
		if (c->expert >= 0 && (uint32_t)c->expert + 1 > tl->max_expert)
			tl->max_expert = (uint32_t)c->expert + 1;
		if (c->part == MOE_TP_WEIGHT && (leaf_is(n, "up") || leaf_is(n, "w3")) &&
			!leaf_is(n, "gate_up"))
			tl->exp_ff = out_dim(t);
		break;
	case MOE_COMP_SHARED:
		if (c->part == MOE_TP_WEIGHT && leaf_is(n, "up"))
			tl->shared_ff = out_dim(t);
		break;
	case MOE_COMP_DENSE:
		if (c->part == MOE_TP_WEIGHT && (leaf_is(n, "up") || leaf_is(n, "w3")))
			tl->dense_ff = out_dim(t);
		break;
	default:
		break;
	}
}

static void tensors_layer(struct moe_arch *a, struct moe_layer *L, const struct tlayer *tl)
{
	uint32_t hd = 128;

	if (tl->qnorm && tl->qnorm < tl->q && tl->q % tl->qnorm == 0)
		hd = (uint32_t)tl->qnorm;
	else if (tl->q && tl->q % 128 != 0)
		hd = 64;
	L->n_norms = 2;
	L->qkv_bias = (uint8_t)tl->qbias;
	L->q_norm = (uint32_t)tl->qnorm;
	L->k_norm = (uint32_t)tl->knorm;
	if (tl->ssm)
		L->attn = MOE_ATTN_SSM;
	else if (tl->mla) {
		L->attn = MOE_ATTN_MLA;
		L->kv_lora_rank = (uint32_t)tl->kv_lora;
		L->q_lora_rank = (uint32_t)tl->q_lora;
		L->qk_rope_dim = tl->kv_a > tl->kv_lora ? (uint32_t)(tl->kv_a - tl->kv_lora) : 0;
		L->head_dim = L->qk_rope_dim;   /* the non-rope part is not known */
		moe_arch_note_unknown(a, "MLA head count and widths");
	} else if (tl->q) {
		L->attn = MOE_ATTN_GQA;
		L->head_dim = L->head_dim_v = hd;
		L->n_head = (uint32_t)(tl->q / hd);
		L->n_head_kv = (uint32_t)(tl->k / hd);
		if (!(tl->qnorm && tl->qnorm < tl->q))
			moe_arch_note_unknown(a, "head width (guessed)");
	}
	if (tl->router_e || tl->max_expert) {
		L->ffn = MOE_FFN_MOE;
		L->n_expert = (uint32_t)(tl->router_e ? tl->router_e : tl->max_expert);
		L->d_expert = (uint32_t)tl->exp_ff;
		L->d_shared = (uint32_t)tl->shared_ff;
		L->n_shared = tl->shared_ff ? 1 : 0;
		moe_arch_note_unknown(a, "experts per token (top-k)");
	} else if (tl->dense_ff) {
		L->ffn = MOE_FFN_DENSE;
		L->d_ff = (uint32_t)tl->dense_ff;
	}
}

int moe_arch_from_tensors(struct moe_arch *a, const struct moe_tensor *t, size_t n)
{
	struct tlayer *tl = NULL;
	struct moe_tclass c;
	uint32_t nl = 0, i;
	size_t j;
	int rc, head = 0;

	moe_arch_release(a);
	for (j = 0; j < n; j++) {
		moe_tensor_classify(t[j].name, &c);
		if (c.comp == MOE_COMP_MTP || c.comp == MOE_COMP_VISION || c.layer < 0)
			continue;
		if ((uint32_t)c.layer >= MOE_ARCH_MAX_LAYERS)
			return moe_error_set(&a->err, MOE_ERANGE, "tensor '%s': layer index too large",
				t[j].name);
		if ((uint32_t)c.layer + 1 > nl)
			nl = (uint32_t)c.layer + 1;
	}
	if (nl == 0)
		return moe_error_set(&a->err, MOE_EFORMAT, "no transformer blocks among the tensor names");
	if ((rc = moe_arch_set_names(a, "unknown", "unknown")) != 0 ||
		(rc = moe_arch_alloc_layers(a, nl)) != 0)
		goto fail;
	if ((tl = calloc(nl, sizeof *tl)) == NULL) {
		rc = moe_error_set(&a->err, MOE_ENOMEM, "out of memory");
		goto fail;
	}
	for (j = 0; j < n; j++) {
		moe_tensor_classify(t[j].name, &c);
		if (c.comp == MOE_COMP_EMBED && t[j].ndim == 2 && c.layer < 0) {
			a->vocab = t[j].shape[0];
			a->d_model = (uint32_t)(t[j].shape[1] <= UINT32_MAX ? t[j].shape[1] : 0);
		} else if (c.comp == MOE_COMP_HEAD && t[j].ndim == 2) {
			a->vocab_out = t[j].shape[0];
			head = 1;
		} else if (c.layer >= 0 && c.comp != MOE_COMP_MTP && c.comp != MOE_COMP_VISION)
			scan_tensor(&tl[c.layer], &t[j], &c);
	}
	for (j = 0; j < n && a->d_model == 0; j++) {
		/* no embedding (a shard, a pruned file): the head gives the width */
		moe_tensor_classify(t[j].name, &c);
		if (c.comp == MOE_COMP_HEAD && t[j].ndim == 2 && t[j].shape[1] <= UINT32_MAX)
			a->d_model = (uint32_t)t[j].shape[1];
	}
	if (a->d_model == 0) {
		rc = moe_error_set(&a->err, MOE_EFORMAT, "no embedding or output head among the tensors");
		goto fail;
	}
	if (a->vocab == 0)
		moe_arch_note_unknown(a, "input embedding (absent)");
	a->tied = !head && a->vocab;
	if (!head)
		a->vocab_out = a->vocab;
	a->gated = a->final_norm = 1;
	for (i = 0; i < nl; i++)
		tensors_layer(a, &a->layers[i], &tl[i]);
	moe_arch_note_unknown(a, "routing function");
	if ((rc = moe_arch_finish(a)) != 0)
		goto fail;
	free(tl);
	a->source = "tensors";
	return 0;
fail:
	free(tl);
	{
		struct moe_error keep = a->err;

		moe_arch_release(a);
		a->err = keep;
	}
	return rc;
}

int moe_arch_from_ckpt(struct moe_arch *a, const struct moe_ckpt *ck)
{
	json_t *config = moe_ckpt_json(ck, "config");
	const struct moe_meta *m = moe_ckpt_meta(ck);
	const char *s;
	size_t n = moe_ckpt_ntensors(ck);
	const struct moe_tensor *t = n ? moe_ckpt_tensor(ck, 0) : NULL;

	if (config)
		return moe_arch_from_config(a, config);
	if (m && moe_meta_get_str(m, "general.architecture", &s) == 0)
		return moe_arch_from_gguf(a, m, t, n);
	return moe_arch_from_tensors(a, t, n);
}

/* ---- queries and JSON form --------------------------------------------- */

const struct moe_layer *moe_arch_first_layer(const struct moe_arch *a, int moe)
{
	for (uint32_t i = 0; i < a->n_layers; i++)
		if (moe ? a->layers[i].ffn == MOE_FFN_MOE :
			a->layers[i].attn != MOE_ATTN_NONE && a->layers[i].attn != MOE_ATTN_SSM)
			return &a->layers[i];
	return NULL;
}

uint32_t moe_arch_count(const struct moe_arch *a, enum moe_count what)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < a->n_layers; i++)
		n += what == MOE_COUNT_MOE ? a->layers[i].ffn == MOE_FFN_MOE :
			what == MOE_COUNT_DENSE ? a->layers[i].ffn == MOE_FFN_DENSE :
			what == MOE_COUNT_SSM ? a->layers[i].attn == MOE_ATTN_SSM :
			a->layers[i].window != 0;
	return n;
}

static json_t *u64(uint64_t v)
{
	return json_integer((json_int_t)v);
}

json_t *moe_arch_to_json(const struct moe_arch *a)
{
	const struct moe_layer *at = moe_arch_first_layer(a, 0), *m = moe_arch_first_layer(a, 1);
	json_t *o = json_object(), *x;

	json_object_set_new(o, "family", json_string(a->family));
	json_object_set_new(o, "model_type", json_string(a->model_type));
	json_object_set_new(o, "source", json_string(a->source));
	json_object_set_new(o, "d_model", u64(a->d_model));
	json_object_set_new(o, "n_layers", u64(a->n_layers));
	json_object_set_new(o, "n_moe_layers", u64(moe_arch_count(a, MOE_COUNT_MOE)));
	json_object_set_new(o, "n_dense_layers", u64(moe_arch_count(a, MOE_COUNT_DENSE)));
	json_object_set_new(o, "n_ssm_layers", u64(moe_arch_count(a, MOE_COUNT_SSM)));
	json_object_set_new(o, "encoder_layers", u64(a->enc_dec ? a->n_enc_layers : 0));
	json_object_set_new(o, "vocab", u64(a->vocab));
	json_object_set_new(o, "tied_embeddings", json_boolean(a->tied));
	json_object_set_new(o, "context_length", u64(a->ctx));
	json_object_set_new(o, "mtp_layers", u64(a->n_mtp));
	json_object_set_new(o, "vision_params", u64(a->vision_params));
	if (at) {
		x = json_object();
		json_object_set_new(x, "kind", json_string(moe_attn_kind_name(at->attn)));
		json_object_set_new(x, "n_head", u64(at->n_head));
		json_object_set_new(x, "n_head_kv", u64(at->n_head_kv));
		json_object_set_new(x, "head_dim", u64(at->head_dim));
		json_object_set_new(x, "head_dim_v", u64(at->head_dim_v));
		json_object_set_new(x, "q_lora_rank", u64(at->q_lora_rank));
		json_object_set_new(x, "kv_lora_rank", u64(at->kv_lora_rank));
		json_object_set_new(x, "qk_rope_dim", u64(at->qk_rope_dim));
		json_object_set_new(x, "windowed_layers", u64(moe_arch_count(a, MOE_COUNT_WINDOWED)));
		json_object_set_new(o, "attention", x);
	}
	if (m) {
		x = json_object();
		json_object_set_new(x, "n_expert", u64(m->n_expert));
		json_object_set_new(x, "top_k", u64(m->top_k));
		json_object_set_new(x, "d_expert", u64(m->d_expert));
		json_object_set_new(x, "n_shared", u64(m->n_shared));
		json_object_set_new(x, "d_shared", u64(m->d_shared));
		json_object_set_new(x, "shared_gate", json_boolean(m->shared_gate));
		json_object_set_new(x, "gating", json_string(a->gating == MOE_GATE_SIGMOID ?
			"sigmoid" : "softmax"));
		json_object_set_new(x, "norm_topk", json_boolean(a->norm_topk));
		json_object_set_new(x, "routed_scale", json_real(a->routed_scale));
		json_object_set_new(x, "n_group", u64(a->n_group));
		json_object_set_new(x, "topk_group", u64(a->topk_group));
		json_object_set_new(x, "score_bias", json_boolean(m->score_bias));
		json_object_set_new(o, "moe", x);
	}
	json_object_set_new(o, "unknown", json_string(a->unknown));
	return o;
}
