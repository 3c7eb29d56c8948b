/* The forward pass: embeddings, blocks (attention + FFN/MoE), final norm and LM head, over a batch with a KV cache. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fpconv.h"
#include "infer_impl.h"
#include "quant.h"

/*
 * Block (all families): h = RMSNorm(x)*attn_norm; x += Attn(h);
 * h = RMSNorm(x)*ffn_norm; x += FFN_or_MoE(h). granitemoe scales the
 * embeddings, both residual branches and the logits. All buffers are
 * allocated in moe_infer_new(); evaluation allocates nothing.
 */

#define MAX_CTX (1u << 24)
#define MAX_BATCH 65536u

float moe_silu(float x)
{
	return x / (1.0f + expf(-x));
}

void moe_rmsnorm(float *y, const float *x, const float *w, uint32_t n, float eps)
{
	double sum = 0;
	float scale;

	for (uint32_t i = 0; i < n; i++)
		sum += (double)(x[i] * x[i]);
	scale = 1.0f / sqrtf((float)(sum / n) + eps);
	for (uint32_t i = 0; i < n; i++)
		y[i] = w ? x[i] * scale * w[i] : x[i] * scale;
}

static uint32_t umax(uint32_t a, uint32_t b) { return a > b ? a : b; }

void moe_infer_free(struct moe_infer *s)
{
	if (s == NULL)
		return;
	if (s->pool)
		moe_pool_free(s->pool);
	free(s->moe_layers); free(s->moe_index);
	free(s->kcache); free(s->vcache);
	free(s->x); free(s->h); free(s->o); free(s->y);
	free(s->q); free(s->k); free(s->v); free(s->att);
	free(s->qa); free(s->ckv); free(s->kvn); free(s->kvb);
	free(s->g); free(s->u);
	free(s->logit); free(s->prob); free(s->score);
	free(s->sel); free(s->wsel); free(s->lse);
	free(s->grp_off); free(s->grp_next); free(s->grp_row);
	free(s->xg); free(s->eout);
	free(s->rec_sel); free(s->rec_w); free(s->rec_prob); free(s->rec_lse);
	free(s->act); free(s->scratch); free(s->f16tab);
	free(s);
}

const char *moe_infer_errstr(const struct moe_infer *s)
{
	return moe_error_str(&s->err);
}

/* calloc of a*b*c elements of size sz with overflow check. */
static void *alloc3(size_t a, size_t b, size_t c, size_t sz, int *bad)
{
	void *p;

	if (b && a > SIZE_MAX / b) goto fail;
	a *= b;
	if (c && a > SIZE_MAX / c) goto fail;
	a *= c;
	if (sz && a > SIZE_MAX / sz) goto fail;
	if ((p = calloc(a ? a : 1, sz)) != NULL)
		return p;
fail:
	*bad = 1;
	return NULL;
}

static int alloc_buffers(struct moe_infer *s, int nth)
{
	const struct moe_hparams *hp = &s->m->hp;
	size_t B = s->n_batch, K = s->top_k, E = hp->n_expert, d = hp->n_embd;
	uint32_t ff = umax(hp->n_ff, umax(hp->n_ff_exp, hp->n_ff_shexp));
	uint32_t q_lora = 0, nkvb = hp->n_head * (hp->qk_nope + hp->head_v);
	uint32_t cols;
	int bad = 0;

	for (uint32_t il = 0; il < hp->n_layer; il++)
		q_lora = umax(q_lora, s->m->layers[il].wq_a.rows);
	cols = umax((uint32_t)d, umax(ff, umax(hp->n_head * hp->head_v, umax(q_lora, hp->kv_lora))));
	s->k_row = (size_t)hp->n_head_kv * hp->head_k;
	s->v_row = (size_t)hp->n_head_kv * hp->head_v;
	s->kcache = alloc3(hp->n_layer, s->n_ctx, s->k_row, sizeof(float), &bad);
	s->vcache = alloc3(hp->n_layer, s->n_ctx, s->v_row, sizeof(float), &bad);
	s->x = alloc3(B, d, 1, sizeof(float), &bad);
	s->h = alloc3(B, d, 1, sizeof(float), &bad);
	s->o = alloc3(B, d, 1, sizeof(float), &bad);
	s->y = alloc3(B, d, 1, sizeof(float), &bad);
	s->q = alloc3(B, hp->n_head, hp->head_k, sizeof(float), &bad);
	s->k = alloc3(B, s->k_row, 1, sizeof(float), &bad);
	s->v = alloc3(B, s->v_row, 1, sizeof(float), &bad);
	s->att = alloc3(B, hp->n_head, hp->head_v, sizeof(float), &bad);
	s->qa = alloc3(B, q_lora, 1, sizeof(float), &bad);
	s->ckv = alloc3(B, hp->kv_lora + hp->qk_rope, 1, sizeof(float), &bad);
	s->kvn = alloc3(B, hp->kv_lora, 1, sizeof(float), &bad);
	s->kvb = alloc3(B, hp->family == MOE_FAM_DEEPSEEK2 ? nkvb : 0, 1, sizeof(float), &bad);
	s->g = alloc3(B, ff, 1, sizeof(float), &bad);
	s->u = alloc3(B, ff, 1, sizeof(float), &bad);
	s->logit = alloc3(B, E, 1, sizeof(float), &bad);
	s->prob = alloc3(B, E, 1, sizeof(float), &bad);
	s->score = alloc3(E, 1, 1, sizeof(float), &bad);
	s->sel = alloc3(B, K, 1, sizeof(int32_t), &bad);
	s->wsel = alloc3(B, K, 1, sizeof(float), &bad);
	s->lse = alloc3(B, 1, 1, sizeof(float), &bad);
	s->grp_off = alloc3(E + 1, 1, 1, sizeof(uint32_t), &bad);
	s->grp_next = alloc3(E, 1, 1, sizeof(uint32_t), &bad);
	s->grp_row = alloc3(B, K, 1, sizeof(uint32_t), &bad);
	s->xg = alloc3(B, d, 1, sizeof(float), &bad);
	s->eout = alloc3(B, K, d, sizeof(float), &bad);
	s->rec_sel = alloc3(s->n_moe, B, K, sizeof(int32_t), &bad);
	s->rec_w = alloc3(s->n_moe, B, K, sizeof(float), &bad);
	s->rec_prob = alloc3(s->n_moe, B, E, sizeof(float), &bad);
	s->rec_lse = alloc3(s->n_moe, B, 1, sizeof(float), &bad);
	/* converted activations take at most 4 bytes per value (+1 block) */
	s->act_bytes = (size_t)cols * 4 + 512;
	s->act = alloc3(B, s->act_bytes, 1, 1, &bad);
	s->scratch_n = umax(s->n_ctx, umax(cols, hp->head_k * 2));
	s->scratch = alloc3(nth, s->scratch_n, 1, sizeof(float), &bad);
	s->f16tab = alloc3(65536, 1, 1, sizeof(float), &bad);
	for (uint32_t i = 0; s->f16tab && i < 65536; i++)
		s->f16tab[i] = moe_f16_to_f32((uint16_t)i);
	return bad ? moe_error_set(&s->err, MOE_ENOMEM,
		"out of memory for a %u-position cache and %u-token batches", s->n_ctx, s->n_batch) : 0;
}

int moe_infer_new(struct moe_infer **out, const struct moe_model *m,
	const struct moe_infer_opts *o)
{
	const struct moe_hparams *hp = &m->hp;
	struct moe_infer *s;
	int rc;

	*out = NULL;
	if ((s = calloc(1, sizeof *s)) == NULL)
		return MOE_ENOMEM;
	*out = s;
	s->m = m;
	s->n_ctx = o->n_ctx ? o->n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
	s->n_batch = o->n_batch ? o->n_batch : 256;
	s->top_k = o->top_k ? o->top_k : hp->n_expert_used;
	if (o->n_threads < 1 || o->n_threads > 1024)
		return moe_error_set(&s->err, MOE_EINVAL, "thread count %d out of range 1..1024", o->n_threads);
	if (s->n_ctx > MAX_CTX || s->n_batch > MAX_BATCH)
		return moe_error_set(&s->err, MOE_ERANGE, "context %u or batch %u too large", s->n_ctx, s->n_batch);
	if (s->top_k > hp->n_expert || (hp->n_group > 1 &&
	    s->top_k > hp->topk_group * (hp->n_expert / hp->n_group)))
		return moe_error_set(&s->err, MOE_EINVAL, "cannot use %u experts per token (%u experts)",
			s->top_k, hp->n_expert);
	if ((s->moe_index = calloc(hp->n_layer, sizeof *s->moe_index)) == NULL ||
	    (s->moe_layers = calloc(hp->n_layer, sizeof *s->moe_layers)) == NULL)
		return moe_error_set(&s->err, MOE_ENOMEM, "out of memory");
	for (uint32_t il = 0; il < hp->n_layer; il++) {
		s->moe_index[il] = m->layers[il].is_moe ? (int32_t)s->n_moe : -1;
		if (m->layers[il].is_moe)
			s->moe_layers[s->n_moe++] = il;
	}
	if ((rc = alloc_buffers(s, o->n_threads)) != 0)
		return rc;
#if defined(__x86_64__) && defined(__GNUC__)
	s->avx2 = __builtin_cpu_supports("avx2");
#endif
	if ((rc = moe_pool_new(&s->pool, o->n_threads)) != 0)
		return moe_error_set(&s->err, rc, "cannot start %d threads", o->n_threads);
	return 0;
}

uint32_t moe_infer_pos(const struct moe_infer *s) { return s->pos; }
uint32_t moe_infer_n_ctx(const struct moe_infer *s) { return s->n_ctx; }
uint32_t moe_infer_n_batch(const struct moe_infer *s) { return s->n_batch; }
uint32_t moe_infer_top_k(const struct moe_infer *s) { return s->top_k; }
uint32_t moe_infer_n_moe(const struct moe_infer *s) { return s->n_moe; }
uint32_t moe_infer_n_vocab(const struct moe_infer *s) { return s->m->hp.n_vocab; }

void moe_infer_reset(struct moe_infer *s)
{
	s->pos = 0;
	s->cur_n = 0;
}

uint32_t moe_infer_moe_layer(const struct moe_infer *s, uint32_t i)
{
	return i < s->n_moe ? s->moe_layers[i] : 0;
}

int moe_infer_route(const struct moe_infer *s, uint32_t i, uint32_t tok, struct moe_route *r)
{
	size_t K = s->top_k, E = s->m->hp.n_expert, at = (size_t)i * s->n_batch + tok;

	if (i >= s->n_moe || tok >= s->cur_n)
		return MOE_ERANGE;
	r->selected = s->rec_sel + at * K;
	r->weights = s->rec_w + at * K;
	r->probs = s->rec_prob + at * E;
	r->lse = s->rec_lse[at];
	return 0;
}

/* Token rows of the embedding, widened to F32. */
static int embed(struct moe_infer *s, const int32_t *tokens, uint32_t n)
{
	const struct moe_model *m = s->m;
	const struct moe_mat *w = &m->tok_embd;
	uint32_t d = m->hp.n_embd;

	for (uint32_t t = 0; t < n; t++) {
		float *x = s->x + (size_t)t * d;
		const void *row;

		if (tokens[t] < 0 || (uint32_t)tokens[t] >= m->hp.n_vocab)
			return moe_error_set(&s->err, MOE_ERANGE, "token id %d out of range (vocabulary of %u)",
				tokens[t], m->hp.n_vocab);
		row = moe_mat_row(w, 0, (uint32_t)tokens[t]);
		if (w->dt == MOE_DT_F32)
			memcpy(x, row, d * sizeof *x);
		else if (moe_dtype_is_quantized(w->dt))
			(void)moe_dequantize_row(w->dt, row, x, d);
		else
			(void)moe_cast(MOE_DT_F32, x, w->dt, row, d);
		if (m->hp.embd_scale != 1.0f)
			for (uint32_t i = 0; i < d; i++)
				x[i] *= m->hp.embd_scale;
	}
	return 0;
}

static void residual_add(struct moe_infer *s, uint32_t n)
{
	size_t nd = (size_t)n * s->m->hp.n_embd;
	float rs = s->m->hp.residual_scale;

	for (size_t i = 0; i < nd; i++)
		s->x[i] += rs != 1.0f ? s->o[i] * rs : s->o[i];
}

int moe_infer_eval(struct moe_infer *s, const int32_t *tokens, uint32_t n,
	float *logits, int all_logits)
{
	const struct moe_model *m = s->m;
	const struct moe_hparams *hp = &m->hp;
	uint32_t d = hp->n_embd, first;
	int rc;

	if (n == 0 || n > s->n_batch)
		return moe_error_set(&s->err, MOE_ERANGE, "%u tokens in one call (batch size %u)", n, s->n_batch);
	if (n > s->n_ctx - s->pos)
		return moe_error_set(&s->err, MOE_ERANGE, "context full (%u positions)", s->n_ctx);
	s->cur_n = 0;
	if ((rc = embed(s, tokens, n)) != 0)
		return rc;
	for (uint32_t il = 0; il < hp->n_layer; il++) {
		const struct moe_model_layer *L = &m->layers[il];

		for (uint32_t t = 0; t < n; t++)
			moe_rmsnorm(s->h + (size_t)t * d, s->x + (size_t)t * d, L->attn_norm, d, hp->eps);
		moe_attention(s, il, s->h, n, s->o);
		residual_add(s, n);
		for (uint32_t t = 0; t < n; t++)
			moe_rmsnorm(s->h + (size_t)t * d, s->x + (size_t)t * d, L->ffn_norm, d, hp->eps);
		moe_ffn(s, il, s->h, n, s->o);
		residual_add(s, n);
	}
	s->pos += n;
	s->cur_n = n;
	if (logits == NULL)
		return 0;
	first = all_logits ? 0 : n - 1;
	for (uint32_t t = first; t < n; t++)
		moe_rmsnorm(s->h + (size_t)(t - first) * d, s->x + (size_t)t * d, m->output_norm, d, hp->eps);
	moe_matmul(s, &m->output, 0, s->h, n - first, logits);
	if (hp->logit_scale != 1.0f)
		for (size_t i = 0; i < (size_t)(n - first) * hp->n_vocab; i++)
			logits[i] /= hp->logit_scale;
	return 0;
}
