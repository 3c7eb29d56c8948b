/* The feed-forward block: dense SwiGLU FFN, or the one MoE implementation (router, top-k, experts, shared expert). */
#include <math.h>
#include <string.h>

#include "infer_impl.h"

/*
 * Every family's MoE is this code with the family's settings from
 * moe_hparams: gating (softmax or sigmoid), a selection-only score bias
 * (exp_probs_b), group-limited choice, renormalisation, a weight scale,
 * and an optional shared FFN (with qwen2moe's sigmoid gate). The batch is
 * grouped by expert so each chosen expert's weights are read once per
 * call, and each token's expert outputs are summed in selection order, as
 * llama.cpp adds them.
 */

/* out (n, d) = down . (silu(gate . h) * (up . h)) with matrices e of the stacks. */
static void swiglu(struct moe_infer *s, const struct moe_mat *gate, const struct moe_mat *up,
	const struct moe_mat *down, uint32_t e, const float *h, uint32_t n, float *out)
{
	size_t nf = (size_t)n * gate->rows;

	moe_matmul(s, gate, e, h, n, s->g);
	moe_matmul(s, up, e, h, n, s->u);
	for (size_t i = 0; i < nf; i++)
		s->g[i] = moe_silu(s->g[i]) * s->u[i];
	moe_matmul(s, down, e, s->g, n, out);
}

/* probs (and lse) from router logits, ggml's softmax or sigmoid. */
static void gate_probs(const struct moe_hparams *hp, const float *lg, float *p, float *lse)
{
	uint32_t E = hp->n_expert;
	float max = -INFINITY;
	double sum = 0;

	for (uint32_t i = 0; i < E; i++)
		if (lg[i] > max)
			max = lg[i];
	for (uint32_t i = 0; i < E; i++) {
		float v = expf(lg[i] - max);

		sum += v;
		if (hp->gating == MOE_ROUTE_SOFTMAX)
			p[i] = v;
		else
			p[i] = 1.0f / (1.0f + expf(-lg[i]));
	}
	*lse = (float)(max + log(sum));
	if (hp->gating == MOE_ROUTE_SOFTMAX) {
		float inv = (float)(1.0 / sum);

		for (uint32_t i = 0; i < E; i++)
			p[i] *= inv;
	}
}

/* DeepSeek-V3 group-limited choice: keep the topk_group groups whose two
 * best scores sum highest; the other experts cannot be chosen. */
static void limit_groups(const struct moe_hparams *hp, float *score)
{
	uint32_t ng = hp->n_group, per = hp->n_expert / ng;
	float gs[256];   /* the loader allows at most 256 groups */
	unsigned char keep[256] = { 0 };

	for (uint32_t g = 0; g < ng; g++) {
		float a = -INFINITY, b = -INFINITY;

		for (uint32_t i = g * per; i < (g + 1) * per; i++)
			if (score[i] > a) {
				b = a;
				a = score[i];
			} else if (score[i] > b)
				b = score[i];
		gs[g] = per > 1 ? a + b : a;
	}
	for (uint32_t k = 0; k < hp->topk_group; k++) {
		uint32_t best = ng;

		for (uint32_t g = 0; g < ng; g++)
			if (!keep[g] && (best == ng || gs[g] > gs[best]))
				best = g;
		keep[best] = 1;
	}
	for (uint32_t g = 0; g < ng; g++)
		if (!keep[g])
			for (uint32_t i = g * per; i < (g + 1) * per; i++)
				score[i] = -INFINITY;
}

/* Chooses top_k experts of one token: ids (descending score, lowest id
 * first on ties) and their gate weights. */
static void choose(struct moe_infer *s, const struct moe_model_layer *L,
	const float *p, int32_t *sel, float *w)
{
	const struct moe_hparams *hp = &s->m->hp;
	uint32_t E = hp->n_expert, K = s->top_k;
	float *sc = s->score, sum = 0;

	/* NaN scores rank lowest; a chosen expert is marked NaN so that each
	 * expert is taken at most once per token, whatever the scores */
	for (uint32_t i = 0; i < E; i++) {
		sc[i] = L->probs_bias ? p[i] + L->probs_bias[i] : p[i];
		if (isnan(sc[i]))
			sc[i] = -INFINITY;
	}
	if (hp->n_group > 1)
		limit_groups(hp, sc);
	for (uint32_t k = 0; k < K; k++) {
		uint32_t best = E;

		for (uint32_t i = 0; i < E; i++)
			if (!isnan(sc[i]) && (best == E || sc[i] > sc[best]))
				best = i;
		sel[k] = (int32_t)best;
		w[k] = p[best];
		sc[best] = NAN;
	}
	if (hp->norm_topk) {
		for (uint32_t k = 0; k < K; k++)
			sum += w[k];
		for (uint32_t k = 0; k < K; k++)
			w[k] /= sum;
	}
	if (hp->weights_scale != 1.0f)
		for (uint32_t k = 0; k < K; k++)
			w[k] *= hp->weights_scale;
}

/* Routes every token, then runs each chosen expert on its tokens. */
static void moe_experts(struct moe_infer *s, uint32_t il, const float *h, uint32_t n, float *out)
{
	const struct moe_hparams *hp = &s->m->hp;
	const struct moe_model_layer *L = &s->m->layers[il];
	uint32_t E = hp->n_expert, K = s->top_k, d = hp->n_embd;
	int32_t mi = s->moe_index[il];

	moe_matmul(s, &L->router, 0, h, n, s->logit);
	memset(s->grp_off, 0, (E + 1) * sizeof *s->grp_off);
	for (uint32_t t = 0; t < n; t++) {
		float *p = s->prob + (size_t)t * E;

		gate_probs(hp, s->logit + (size_t)t * E, p, &s->lse[t]);
		choose(s, L, p, s->sel + (size_t)t * K, s->wsel + (size_t)t * K);
		for (uint32_t k = 0; k < K; k++)
			s->grp_off[s->sel[(size_t)t * K + k] + 1]++;
	}
	for (uint32_t e = 0; e < E; e++)
		s->grp_off[e + 1] += s->grp_off[e];
	/* bucket (token, slot) rows by expert, tokens in order */
	memcpy(s->grp_next, s->grp_off, E * sizeof *s->grp_off);
	for (uint32_t i = 0; i < n * K; i++)
		s->grp_row[s->grp_next[s->sel[i]]++] = i;
	for (uint32_t e = 0; e < E; e++) {
		uint32_t lo = s->grp_off[e], c = s->grp_off[e + 1] - lo;

		if (c == 0)
			continue;
		for (uint32_t r = 0; r < c; r++)
			memcpy(s->xg + (size_t)r * d, h + (size_t)(s->grp_row[lo + r] / K) * d, d * sizeof *h);
		swiglu(s, &L->gate_exps, &L->up_exps, &L->down_exps, e, s->xg, c, s->y);
		for (uint32_t r = 0; r < c; r++)
			memcpy(s->eout + (size_t)s->grp_row[lo + r] * d, s->y + (size_t)r * d, d * sizeof *h);
	}
	for (uint32_t t = 0; t < n; t++) {
		float *o = out + (size_t)t * d;

		for (uint32_t k = 0; k < K; k++) {
			const float *eo = s->eout + ((size_t)t * K + k) * d;
			float w = s->wsel[(size_t)t * K + k];

			for (uint32_t i = 0; i < d; i++)
				o[i] = k == 0 ? eo[i] * w : o[i] + eo[i] * w;
		}
	}
	memcpy(s->rec_sel + (size_t)mi * s->n_batch * K, s->sel, (size_t)n * K * sizeof *s->sel);
	memcpy(s->rec_w + (size_t)mi * s->n_batch * K, s->wsel, (size_t)n * K * sizeof *s->wsel);
	memcpy(s->rec_prob + (size_t)mi * s->n_batch * E, s->prob, (size_t)n * E * sizeof *s->prob);
	memcpy(s->rec_lse + (size_t)mi * s->n_batch, s->lse, (size_t)n * sizeof *s->lse);
}

/* The always-on shared FFN added to the MoE output (gated for qwen2moe). */
static void shared_expert(struct moe_infer *s, const struct moe_model_layer *L,
	const float *h, uint32_t n, float *out)
{
	uint32_t d = s->m->hp.n_embd;

	swiglu(s, &L->gate_sh, &L->up_sh, &L->down_sh, 0, h, n, s->y);
	for (uint32_t t = 0; t < n; t++) {
		float g = 1.0f, *o = out + (size_t)t * d;
		const float *sh = s->y + (size_t)t * d;

		if (L->sh_gate) {
			const float *x = h + (size_t)t * d;
			float z = 0;

			for (uint32_t i = 0; i < d; i++)
				z += L->sh_gate[i] * x[i];
			g = moe_silu(z) / z;   /* llama.cpp's sigmoid, NaN at z == 0 */
		}
		for (uint32_t i = 0; i < d; i++)
			o[i] += sh[i] * g;
	}
}

void moe_ffn(struct moe_infer *s, uint32_t il, const float *h, uint32_t n, float *out)
{
	const struct moe_model_layer *L = &s->m->layers[il];

	if (!L->is_moe) {
		swiglu(s, &L->gate, &L->up, &L->down, 0, h, n, out);
		return;
	}
	moe_experts(s, il, h, n, out);
	if (L->gate_sh.data)
		shared_expert(s, L, h, n, out);
}
