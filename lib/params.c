/* Parameter counts by component and layer, from the architecture or from tensors; memory and speed bounds. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "params.h"

void moe_params_init(struct moe_params *p)
{
	memset(p, 0, sizeof *p);
}

void moe_params_release(struct moe_params *p)
{
	free(p->layers);
	moe_params_init(p);
}

static int alloc_layers(struct moe_params *p, uint32_t n, struct moe_error *err)
{
	moe_params_release(p);
	if (n && (p->layers = calloc(n, sizeof *p->layers)) == NULL)
		return moe_error_set(err, MOE_ENOMEM, "out of memory");
	p->n_layers = n;
	return 0;
}

static uint64_t norm_w(const struct moe_arch *a, uint64_t width)
{
	return width * (a->norm_bias ? 2 : 1);
}

/* Standard attention projections (q, k, v, o) with their options. */
static uint64_t attn_std(const struct moe_arch *a, const struct moe_layer *L)
{
	uint64_t d = a->d_model, q = (uint64_t)L->n_head * L->head_dim,
		k = (uint64_t)L->n_head_kv * L->head_dim,
		v = (uint64_t)L->n_head_kv * L->head_dim_v,
		o = (uint64_t)L->n_head * L->head_dim_v;
	uint64_t n = d * (q * (L->q_gate ? 2 : 1) + k + v) + o * d;

	if (L->qkv_bias)
		n += q + k + v;
	if (L->o_bias)
		n += d;
	if (L->sinks)
		n += L->n_head;
	return n;
}

/* DeepSeek MLA: optional low-rank q, compressed kv with a decoupled rope key. */
static uint64_t attn_mla(const struct moe_arch *a, const struct moe_layer *L)
{
	uint64_t d = a->d_model, nh = L->n_head, qk = L->head_dim,
		nope = L->head_dim - L->qk_rope_dim, n;

	n = L->q_lora_rank ? d * L->q_lora_rank + (uint64_t)L->q_lora_rank * nh * qk
		: d * nh * qk;
	n += d * ((uint64_t)L->kv_lora_rank + L->qk_rope_dim);
	n += (uint64_t)L->kv_lora_rank * nh * (nope + L->head_dim_v);
	n += nh * L->head_dim_v * d;
	return n;
}

static uint64_t ffn_params(const struct moe_arch *a, uint64_t width, int bias)
{
	uint64_t d = a->d_model, n = (a->gated ? 3 : 2) * d * width;

	if (bias)
		n += (a->gated ? 2 : 1) * width + d;
	return n;
}

/* One block's components; active holds what one token uses. */
static void layer_params(const struct moe_arch *a, uint32_t i, struct moe_layer_params *lp,
	uint64_t *active)
{
	const struct moe_layer *L = &a->layers[i];
	uint64_t d = a->d_model, *c = lp->comp, routed_act = 0;

	memset(lp, 0, sizeof *lp);
	memset(active, 0, sizeof(uint64_t) * MOE_COMP_COUNT);
	switch (L->attn) {
	case MOE_ATTN_MHA:
	case MOE_ATTN_GQA:
		if (L->attn_experts) {
			/* JetMoE MoA: shared kv projection, routed q/o experts */
			uint64_t kvp = (uint64_t)L->n_head_kv * L->head_dim,
				per = 2 * d * kvp;

			c[MOE_COMP_ATTN] = d * 2 * kvp + L->attn_experts * per +
				d * L->attn_experts + d;
			active[MOE_COMP_ATTN] = c[MOE_COMP_ATTN] -
				(uint64_t)(L->attn_experts - L->attn_top_k) * per;
			break;
		}
		c[MOE_COMP_ATTN] = attn_std(a, L) * (L->cross_attn ? 2 : 1);
		if (a->enc_dec && a->rel_buckets && (i == 0 || i == a->n_enc_layers))
			c[MOE_COMP_ATTN] += (uint64_t)a->rel_buckets * L->n_head;
		break;
	case MOE_ATTN_MLA:
		c[MOE_COMP_ATTN] = attn_mla(a, L);
		c[MOE_COMP_NORM] += L->q_lora_rank + L->kv_lora_rank;
		break;
	case MOE_ATTN_SSM:
		c[MOE_COMP_ATTN] = L->mixer_params;
		break;
	default:
		break;
	}
	if (L->attn_experts == 0)
		active[MOE_COMP_ATTN] = c[MOE_COMP_ATTN];
	c[MOE_COMP_NORM] += norm_w(a, d) * L->n_norms + L->q_norm + L->k_norm;
	if (L->ffn == MOE_FFN_DENSE)
		c[MOE_COMP_DENSE] = ffn_params(a, L->d_ff, L->ffn_bias);
	else if (L->ffn == MOE_FFN_MOE) {
		uint64_t per = ffn_params(a, L->d_expert, L->expert_bias);

		c[MOE_COMP_EXPERTS] = per * L->n_expert;
		routed_act = per * L->top_k;
		c[MOE_COMP_ROUTER] = d * L->n_expert +
			(L->router_bias ? L->n_expert : 0) +
			(L->score_bias ? L->n_expert : 0) + (L->shared_gate ? d : 0);
		c[MOE_COMP_SHARED] = L->d_shared ? ffn_params(a, L->d_shared, 0) : 0;
		if (L->attn_experts)
			c[MOE_COMP_DENSE] = d;  /* JetMoE's always-on MoE output bias */
	}
	active[MOE_COMP_NORM] = c[MOE_COMP_NORM];
	active[MOE_COMP_DENSE] = c[MOE_COMP_DENSE];
	active[MOE_COMP_ROUTER] = c[MOE_COMP_ROUTER];
	active[MOE_COMP_SHARED] = c[MOE_COMP_SHARED];
	active[MOE_COMP_EXPERTS] = routed_act;
	for (int k = 0; k < MOE_COMP_COUNT; k++) {
		lp->total += c[k];
		lp->active += active[k];
	}
}

/* Totals and the three conventions from comp[] / comp_active[]. */
static void sum_up(struct moe_params *p, const struct moe_arch *a, int tied)
{
	uint64_t emb = p->comp[MOE_COMP_EMBED], head = p->comp[MOE_COMP_HEAD], body = 0,
		body_act = 0;
	int k;

	for (k = 0; k < MOE_COMP_COUNT; k++) {
		if (k == MOE_COMP_EMBED || k == MOE_COMP_HEAD || k == MOE_COMP_MTP ||
			k == MOE_COMP_VISION)
			continue;
		body += p->comp[k];
		body_act += p->comp_active[k];
	}
	p->comp_active[MOE_COMP_EMBED] = emb;
	p->comp_active[MOE_COMP_HEAD] = head;
	p->total_nonembed = body;
	p->active_nonembed = body_act;
	/* a tied head is the embedding matrix: it counts where heads count */
	p->total_no_embed = body + (tied ? emb : head);
	p->active_no_embed = body_act + (tied ? emb : head);
	p->total = body + emb + head;
	p->active = body_act + emb + head;
	p->total_all = p->total + p->comp[MOE_COMP_MTP] + p->comp[MOE_COMP_VISION];
	p->embed_row = a ? a->d_model : 0;
}

static void moe_shape(struct moe_params *p, const struct moe_arch *a)
{
	uint32_t i;

	for (i = 0; i < a->n_layers; i++) {
		if (a->layers[i].ffn != MOE_FFN_MOE)
			continue;
		if (p->n_moe_layers++ == 0) {
			p->n_expert = a->layers[i].n_expert;
			p->top_k = a->layers[i].top_k;
		}
	}
}

int moe_params_from_arch(struct moe_params *p, const struct moe_arch *a, struct moe_error *err)
{
	uint64_t act[MOE_COMP_COUNT], mtp = 0;
	uint32_t i;
	int rc, k;

	if ((rc = alloc_layers(p, a->n_layers, err)) != 0)
		return rc;
	for (i = 0; i < a->n_layers; i++) {
		layer_params(a, i, &p->layers[i], act);
		for (k = 0; k < MOE_COMP_COUNT; k++) {
			p->comp[k] += p->layers[i].comp[k];
			p->comp_active[k] += act[k];
		}
	}
	p->comp[MOE_COMP_EMBED] = a->vocab * a->d_model;
	p->comp[MOE_COMP_HEAD] = a->tied ? 0 : a->vocab_out * a->d_model +
		(a->head_bias ? a->vocab_out : 0);
	if (a->final_norm) {
		uint64_t fn = norm_w(a, a->d_model) * (a->enc_dec ? 2 : 1);

		p->comp[MOE_COMP_NORM] += fn;
		p->comp_active[MOE_COMP_NORM] += fn;
	}
	if (a->n_mtp && a->n_layers) {
		/* DeepSeek-style module: a copy of the last block, enorm + hnorm,
		 * eh_proj (2d -> d), its own head norm, embedding and head. */
		uint64_t d = a->d_model;

		mtp = p->layers[a->n_layers - 1].total + 3 * norm_w(a, d) + 2 * d * d +
			2 * a->vocab * d;
		p->comp[MOE_COMP_MTP] = mtp * a->n_mtp;
	}
	p->comp[MOE_COMP_VISION] = a->vision_params;
	p->active_known = 1;
	moe_shape(p, a);
	sum_up(p, a, a->tied);
	return 0;
}

/* Block index of a tensor in the arch's numbering; -1 outside blocks. */
static int tensor_layer(const struct moe_arch *a, const struct moe_tclass *c)
{
	if (c->layer < 0)
		return -1;
	if (a && a->enc_dec && c->decoder)
		return (int)a->n_enc_layers + c->layer;
	return c->layer;
}

int moe_params_from_tensors(struct moe_params *p, const struct moe_arch *a,
	const struct moe_tensor *t, size_t n, struct moe_error *err)
{
	struct moe_tclass c;
	uint32_t nl = a ? a->n_layers : 0, i;
	uint64_t *routed_attn = NULL;
	size_t j;
	int rc, k;

	if (a == NULL) {
		for (j = 0; j < n; j++) {
			moe_tensor_classify(t[j].name, &c);
			if (c.layer >= 0 && c.comp != MOE_COMP_MTP && c.comp != MOE_COMP_VISION &&
				(uint32_t)c.layer + 1 > nl && c.layer < 65536)
				nl = (uint32_t)c.layer + 1;
		}
	}
	if ((rc = alloc_layers(p, nl, err)) != 0)
		return rc;
	if (nl && (routed_attn = calloc(nl, sizeof *routed_attn)) == NULL)
		return moe_error_set(err, MOE_ENOMEM, "out of memory");
	for (j = 0; j < n; j++) {
		uint64_t np = moe_tensor_numel(&t[j]);
		int li;

		moe_tensor_classify(t[j].name, &c);
		li = tensor_layer(a, &c);
		if (c.part == MOE_TP_SCALE) {
			p->scale_elems += np;
			continue;
		}
		if (c.part == MOE_TP_PACKED4)
			np *= 2;
		if (li >= 0 && (uint32_t)li >= nl && c.comp != MOE_COMP_VISION)
			c.comp = MOE_COMP_MTP;
		p->comp[c.comp] += np;
		if (li >= 0 && (uint32_t)li < nl && c.comp != MOE_COMP_MTP &&
			c.comp != MOE_COMP_VISION) {
			p->layers[li].comp[c.comp] += np;
			p->layers[li].total += np;
			if (c.comp == MOE_COMP_ATTN && a && a->layers[li].attn_experts &&
				strstr(t[j].name, "experts.") && !strstr(t[j].name, "router"))
				routed_attn[li] += np;
		}
	}
	p->active_known = a != NULL;
	for (i = 0; i < nl; i++) {
		struct moe_layer_params *lp = &p->layers[i];
		const struct moe_layer *L = a ? &a->layers[i] : NULL;
		uint64_t ex = lp->comp[MOE_COMP_EXPERTS], ex_act = ex;

		if (L && L->ffn == MOE_FFN_MOE && L->n_expert) {
			if (L->top_k == 0)
				p->active_known = 0;
			ex_act = ex / L->n_expert * L->top_k +
				(ex % L->n_expert) * L->top_k / L->n_expert;
		}
		for (k = 0; k < MOE_COMP_COUNT; k++)
			p->comp_active[k] += k == MOE_COMP_EXPERTS ? ex_act : lp->comp[k];
		lp->active = lp->total - (ex - ex_act);
		if (L && L->attn_experts) {
			uint64_t drop = routed_attn[i] -
				routed_attn[i] / L->attn_experts * L->attn_top_k;

			lp->active -= drop;
			p->comp_active[MOE_COMP_ATTN] -= drop;
		}
	}
	/* norms outside blocks (final norm) are always active */
	p->comp_active[MOE_COMP_NORM] = p->comp[MOE_COMP_NORM];
	free(routed_attn);
	if (a)
		moe_shape(p, a);
	/* no head tensor: the embedding doubles as the head */
	sum_up(p, a, p->comp[MOE_COMP_HEAD] == 0);
	if (!a)
		p->embed_row = 0;
	return 0;
}

double moe_params_sparsity(const struct moe_params *p)
{
	return p->total ? (double)p->active / (double)p->total : 0.0;
}

uint64_t moe_dtype_param_bytes(enum moe_dtype dt, uint64_t n)
{
	uint64_t bs = moe_dtype_block_size(dt), bb = moe_dtype_block_bytes(dt);

	if (bs == 0 || bb == 0)
		return 0;
	if (dt == MOE_DT_F8_E4M3 || dt == MOE_DT_F8_E5M2)
		return n + (n + 16383) / 16384 * 4;
	return (n + bs - 1) / bs * bb;
}

uint64_t moe_params_bytes(const struct moe_params *p, enum moe_dtype dt, int which)
{
	const uint64_t *c = which == 0 ? p->comp : p->comp_active;
	uint64_t b = 0;
	int k;

	for (k = 0; k < MOE_COMP_COUNT; k++) {
		uint64_t n = c[k];
		enum moe_dtype use = dt;

		if (k == MOE_COMP_MTP || k == MOE_COMP_VISION)
			continue;
		/* a lookup reads one row, but a tied head reads the whole table */
		if (k == MOE_COMP_EMBED && which == 2 && p->comp[MOE_COMP_HEAD] != 0)
			n = p->embed_row;
		if ((k == MOE_COMP_NORM || k == MOE_COMP_ROUTER) && moe_dtype_is_quantized(dt))
			use = MOE_DT_F32;
		b += moe_dtype_param_bytes(use, n);
	}
	return b;
}

static uint64_t kv_layer_per_token(const struct moe_layer *L, unsigned eb)
{
	switch (L->attn) {
	case MOE_ATTN_MHA:
	case MOE_ATTN_GQA:
		return (uint64_t)L->n_head_kv * (L->head_dim + L->head_dim_v) * eb;
	case MOE_ATTN_MLA:
		return ((uint64_t)L->kv_lora_rank + L->qk_rope_dim) * eb;
	default:
		return 0;
	}
}

uint64_t moe_kv_bytes(const struct moe_arch *a, uint64_t ctx, unsigned eb)
{
	uint64_t b = 0;
	uint32_t i;

	for (i = a->enc_dec ? a->n_enc_layers : 0; i < a->n_layers; i++) {
		const struct moe_layer *L = &a->layers[i];
		uint64_t tokens = L->window && L->window < ctx ? L->window : ctx;

		b += kv_layer_per_token(L, eb) * tokens;
	}
	return b;
}

uint64_t moe_kv_bytes_per_token(const struct moe_arch *a, unsigned eb)
{
	uint64_t b = 0;
	uint32_t i;

	for (i = a->enc_dec ? a->n_enc_layers : 0; i < a->n_layers; i++)
		if (a->layers[i].window == 0)
			b += kv_layer_per_token(&a->layers[i], eb);
	return b;
}

double moe_decode_bound(double bandwidth, uint64_t bytes)
{
	return bytes ? bandwidth / (double)bytes : 0.0;
}

static json_t *u64(uint64_t v)
{
	return json_integer((json_int_t)v);
}

json_t *moe_params_to_json(const struct moe_params *p, const struct moe_arch *a)
{
	json_t *o = json_object(), *c = json_object(), *l = json_array();

	json_object_set_new(o, "total", u64(p->total));
	json_object_set_new(o, "active", p->active_known ? u64(p->active) : json_null());
	json_object_set_new(o, "total_no_embed", u64(p->total_no_embed));
	json_object_set_new(o, "active_no_embed", p->active_known ?
		u64(p->active_no_embed) : json_null());
	json_object_set_new(o, "total_nonembed", u64(p->total_nonembed));
	json_object_set_new(o, "active_nonembed", p->active_known ?
		u64(p->active_nonembed) : json_null());
	json_object_set_new(o, "total_all", u64(p->total_all));
	json_object_set_new(o, "sparsity", p->active_known ?
		json_real(moe_params_sparsity(p)) : json_null());
	json_object_set_new(o, "n_expert", u64(p->n_expert));
	json_object_set_new(o, "experts_per_token", u64(p->top_k));
	json_object_set_new(o, "scale_elements", u64(p->scale_elems));
	for (int k = 0; k < MOE_COMP_COUNT; k++)
		json_object_set_new(c, moe_comp_name(k), json_pack("{s:o,s:o}",
			"total", u64(p->comp[k]), "active", u64(p->comp_active[k])));
	json_object_set_new(o, "components", c);
	for (uint32_t i = 0; i < p->n_layers; i++) {
		const struct moe_layer *L = a && i < a->n_layers ? &a->layers[i] : NULL;

		json_array_append_new(l, json_pack("{s:i,s:s,s:s,s:o,s:o}", "index", (int)i,
			"attention", L ? moe_attn_kind_name(L->attn) : "none",
			"ffn", !L || L->ffn == MOE_FFN_NONE ? "none" :
				L->ffn == MOE_FFN_MOE ? "moe" : "dense",
			"total", u64(p->layers[i].total), "active", u64(p->layers[i].active)));
	}
	json_object_set_new(o, "layers", l);
	return o;
}

json_t *moe_params_differences(const struct moe_params *c, const struct moe_params *t)
{
	json_t *a = json_array();

	if (c->total != t->total) {
		char s[300];

		snprintf(s, sizeof s, "main-model total differs: %" PRIu64 " from the configuration, %"
			PRIu64 " from the tensors", c->total, t->total);
		json_array_append_new(a, json_string(s));
		if (c->comp[MOE_COMP_EMBED] != t->comp[MOE_COMP_EMBED])
			json_array_append_new(a, json_string(
				"the embedding has another row count than the configured vocabulary"));
		if (c->comp[MOE_COMP_HEAD] != t->comp[MOE_COMP_HEAD])
			json_array_append_new(a, json_string(t->comp[MOE_COMP_HEAD] == 0 ?
				"the checkpoint has no output head tensor (tied to the embedding)" :
				"the output head differs from the configuration (tied or vocabulary)"));
	}
	{
		/* name the first blocks that disagree: where to look */
		uint32_t i, shown = 0, n = c->n_layers < t->n_layers ? c->n_layers : t->n_layers;
		char s[300];

		for (i = 0; i < n && shown < 3; i++) {
			if (c->layers[i].total == t->layers[i].total)
				continue;
			snprintf(s, sizeof s, "layer %u: %" PRIu64 " from the configuration, %" PRIu64
				" from the tensors", i, c->layers[i].total, t->layers[i].total);
			json_array_append_new(a, json_string(s));
			shown++;
		}
		if (c->n_layers != t->n_layers) {
			snprintf(s, sizeof s, "%u layers in the configuration, %u in the tensors",
				c->n_layers, t->n_layers);
			json_array_append_new(a, json_string(s));
		}
	}
	if (c->comp[MOE_COMP_MTP] != t->comp[MOE_COMP_MTP])
		json_array_append_new(a, json_string(t->comp[MOE_COMP_MTP] ?
			"the checkpoint holds multi-token-prediction layers sized differently from the configuration" :
			"the configuration describes multi-token-prediction layers the checkpoint does not hold"));
	if (c->comp[MOE_COMP_VISION] != t->comp[MOE_COMP_VISION])
		json_array_append_new(a, json_string(t->comp[MOE_COMP_VISION] ?
			"the checkpoint holds a vision tower (counted apart from the language model)" :
			"the configuration describes a vision tower the checkpoint does not hold"));
	if (t->scale_elems)
		json_array_append_new(a, json_string(
			"quantisation scale tensors are not counted as parameters"));
	return a;
}
