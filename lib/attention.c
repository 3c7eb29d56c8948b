/* Self-attention with an F32 KV cache: grouped-query attention and DeepSeek's multi-head latent attention. */
#include <math.h>
#include <string.h>

#include "infer_impl.h"

/*
 * K and V rows are written to the cache at their positions first, so every
 * token of a batch attends to the cache alone (causally: token t at
 * position p sees positions 0..p). MLA is evaluated the way llama.cpp b4748
 * does it: the latent c_kv is expanded to full per-head K and V through
 * attn_kv_b before caching, with no weight absorption.
 */

struct att_job {
	struct moe_infer *s;
	uint32_t il, n;
	float scale;
};

/* One (token, head) pair: softmax(q . K^T * scale) . V into s->att. */
static void head_attend(struct att_job *j, uint32_t t, uint32_t h, float *sc)
{
	struct moe_infer *s = j->s;
	const struct moe_hparams *hp = &s->m->hp;
	uint32_t dk = hp->head_k, dv = hp->head_v, kvh = h / (hp->n_head / hp->n_head_kv);
	uint32_t last = s->pos + t;
	const float *q = s->q + (size_t)t * hp->n_head * dk + (size_t)h * dk;
	const float *kc = s->kcache + (size_t)j->il * s->n_ctx * s->k_row + (size_t)kvh * dk;
	const float *vc = s->vcache + (size_t)j->il * s->n_ctx * s->v_row + (size_t)kvh * dv;
	float *o = s->att + (size_t)t * hp->n_head * dv + (size_t)h * dv;
	float max = -INFINITY, inv;
	double sum = 0;

	for (uint32_t p = 0; p <= last; p++) {
		const float *k = kc + (size_t)p * s->k_row;
		float d = 0;

		for (uint32_t i = 0; i < dk; i++)
			d += q[i] * k[i];
		sc[p] = d * j->scale;
		if (sc[p] > max)
			max = sc[p];
	}
	/* ggml_soft_max: exp in float, sum in double, scaled by 1/sum */
	for (uint32_t p = 0; p <= last; p++) {
		sc[p] = expf(sc[p] - max);
		sum += sc[p];
	}
	inv = (float)(1.0 / sum);
	memset(o, 0, dv * sizeof *o);
	for (uint32_t p = 0; p <= last; p++) {
		const float *v = vc + (size_t)p * s->v_row;
		float w = sc[p] * inv;

		for (uint32_t i = 0; i < dv; i++)
			o[i] += w * v[i];
	}
}

static void run_attend(void *ctx, int ith, int nth)
{
	struct att_job *j = ctx;
	uint32_t nh = j->s->m->hp.n_head;
	float *sc = j->s->scratch + (size_t)ith * j->s->scratch_n;
	long lo, hi;

	moe_pool_split((long)j->n * nh, ith, nth, &lo, &hi);
	for (long i = lo; i < hi; i++)
		head_attend(j, (uint32_t)(i / nh), (uint32_t)(i % nh), sc);
}

static void add_bias(float *y, const float *b, uint32_t n, uint32_t width)
{
	if (b == NULL)
		return;
	for (uint32_t t = 0; t < n; t++)
		for (uint32_t i = 0; i < width; i++)
			y[(size_t)t * width + i] += b[i];
}

/* q, k, v for GQA families; K/V rows go to s->k / s->v. */
static void project_gqa(struct moe_infer *s, const struct moe_model_layer *L,
	const float *h, uint32_t n)
{
	const struct moe_hparams *hp = &s->m->hp;
	uint32_t nq = hp->n_head * hp->head_k;

	moe_matmul(s, &L->wq, 0, h, n, s->q);
	moe_matmul(s, &L->wk, 0, h, n, s->k);
	moe_matmul(s, &L->wv, 0, h, n, s->v);
	add_bias(s->q, L->bq, n, nq);
	add_bias(s->k, L->bk, n, (uint32_t)s->k_row);
	add_bias(s->v, L->bv, n, (uint32_t)s->v_row);
	for (uint32_t t = 0; t < n; t++) {
		float *q = s->q + (size_t)t * nq, *k = s->k + (size_t)t * s->k_row;

		if (L->q_norm && hp->qk_norm_per_head) {   /* qwen3moe */
			for (uint32_t hh = 0; hh < hp->n_head; hh++)
				moe_rmsnorm(q + hh * hp->head_k, q + hh * hp->head_k, L->q_norm, hp->head_k, hp->eps);
			for (uint32_t hh = 0; hh < hp->n_head_kv; hh++)
				moe_rmsnorm(k + hh * hp->head_k, k + hh * hp->head_k, L->k_norm, hp->head_k, hp->eps);
		} else if (L->q_norm) {   /* olmoe: over the whole projection */
			moe_rmsnorm(q, q, L->q_norm, nq, hp->eps);
			moe_rmsnorm(k, k, L->k_norm, (uint32_t)s->k_row, hp->eps);
		}
		moe_rope(hp, q, hp->n_head, hp->head_k, hp->n_rot, s->pos + t, s->scratch);
		moe_rope(hp, k, hp->n_head_kv, hp->head_k, hp->n_rot, s->pos + t, s->scratch);
	}
}

/* q, K, V for MLA: K rows are per head [k_nope | k_rope], V rows per head v. */
static void project_mla(struct moe_infer *s, const struct moe_model_layer *L,
	const float *h, uint32_t n)
{
	const struct moe_hparams *hp = &s->m->hp;
	uint32_t nq = hp->n_head * hp->head_k, kvl = hp->kv_lora, crow = kvl + hp->qk_rope;
	uint32_t nope = hp->qk_nope, rope = hp->qk_rope, dv = hp->head_v;

	if (L->wq.data)
		moe_matmul(s, &L->wq, 0, h, n, s->q);
	else {
		uint32_t ql = L->wq_a.rows;

		moe_matmul(s, &L->wq_a, 0, h, n, s->qa);
		for (uint32_t t = 0; t < n; t++)
			moe_rmsnorm(s->qa + (size_t)t * ql, s->qa + (size_t)t * ql, L->q_a_norm, ql, hp->eps);
		moe_matmul(s, &L->wq_b, 0, s->qa, n, s->q);
	}
	moe_matmul(s, &L->wkv_a, 0, h, n, s->ckv);
	for (uint32_t t = 0; t < n; t++)
		moe_rmsnorm(s->kvn + (size_t)t * kvl, s->ckv + (size_t)t * crow, L->kv_a_norm, kvl, hp->eps);
	moe_matmul(s, &L->wkv_b, 0, s->kvn, n, s->kvb);
	for (uint32_t t = 0; t < n; t++) {
		float *kpe = s->ckv + (size_t)t * crow + kvl;
		const float *kv = s->kvb + (size_t)t * hp->n_head * (nope + dv);
		float *k = s->k + (size_t)t * s->k_row, *v = s->v + (size_t)t * s->v_row;

		moe_rope(hp, s->q + (size_t)t * nq + nope, hp->n_head, hp->head_k, rope, s->pos + t, s->scratch);
		moe_rope(hp, kpe, 1, rope, rope, s->pos + t, s->scratch);
		for (uint32_t hh = 0; hh < hp->n_head; hh++) {
			memcpy(k + (size_t)hh * hp->head_k, kv + (size_t)hh * (nope + dv), nope * sizeof *k);
			memcpy(k + (size_t)hh * hp->head_k + nope, kpe, rope * sizeof *k);
			memcpy(v + (size_t)hh * dv, kv + (size_t)hh * (nope + dv) + nope, dv * sizeof *v);
		}
	}
}

void moe_attention(struct moe_infer *s, uint32_t il, const float *h, uint32_t n, float *out)
{
	const struct moe_hparams *hp = &s->m->hp;
	const struct moe_model_layer *L = &s->m->layers[il];
	struct att_job j = { s, il, n, hp->kq_scale };

	if (hp->family == MOE_FAM_DEEPSEEK2)
		project_mla(s, L, h, n);
	else
		project_gqa(s, L, h, n);
	memcpy(s->kcache + ((size_t)il * s->n_ctx + s->pos) * s->k_row, s->k, (size_t)n * s->k_row * sizeof *s->k);
	memcpy(s->vcache + ((size_t)il * s->n_ctx + s->pos) * s->v_row, s->v, (size_t)n * s->v_row * sizeof *s->v);
	moe_pool_run_sized(s->pool, run_attend, &j,
		(double)n * hp->n_head * (s->pos + n) * (hp->head_k + hp->head_v));
	moe_matmul(s, &L->wo, 0, s->att, n, out);
}
