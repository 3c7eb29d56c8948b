/* Model loading: GGUF hyperparameters per family (llama.cpp's rules) and mapped weight views. */
#include "model.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"
#include "fpconv.h"
#include "meta.h"
#include "output.h"
#include "quant.h"

#define MAX_LAYERS 4096u
#define MAX_WIDTH (1u << 22)
#define MAX_VOCAB (1u << 26)
#define MAX_EXPERTS 65536u

static const struct {
	const char *name;
	enum moe_family fam;
} FAMILIES[] = {
	{ "llama", MOE_FAM_LLAMA }, { "qwen2moe", MOE_FAM_QWEN2MOE }, { "qwen3moe", MOE_FAM_QWEN3MOE },
	{ "olmoe", MOE_FAM_OLMOE }, { "granitemoe", MOE_FAM_GRANITEMOE },
	{ "deepseek", MOE_FAM_DEEPSEEK }, { "deepseek2", MOE_FAM_DEEPSEEK2 },
};
#define NFAM (sizeof FAMILIES / sizeof FAMILIES[0])

const char *moe_family_name(enum moe_family f)
{
	for (size_t i = 0; i < NFAM; i++)
		if (FAMILIES[i].fam == f)
			return FAMILIES[i].name;
	return "unknown";
}

int moe_model_new(struct moe_model **out)
{
	struct moe_model *m = calloc(1, sizeof *m);

	if (m == NULL)
		return MOE_ENOMEM;
	*out = m;
	return 0;
}

void moe_model_free(struct moe_model *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n_owned; i++)
		free(m->owned[i]);
	free(m->owned);
	free(m->layers);
	moe_ckpt_free(m->ck);
	free(m);
}

const char *moe_model_errstr(const struct moe_model *m)
{
	return moe_error_str(&m->err);
}

/* ---- metadata ---- */

/* "{arch}.{key}" as an integer; MOE_ENOENT leaves *out alone. */
static int key_u32(struct moe_model *m, const char *key, uint32_t *out, int required)
{
	char full[256];
	uint64_t v;
	int rc;

	snprintf(full, sizeof full, "%s.%s", m->hp.arch, key);
	rc = moe_meta_get_u64(moe_ckpt_meta(m->ck), full, &v);
	if (rc == MOE_ENOENT && !required)
		return 0;
	if (rc == MOE_ENOENT)
		return moe_error_set(&m->err, MOE_EFORMAT, "missing key '%s'", full);
	if (rc != 0 || v > MAX_VOCAB)
		return moe_error_set(&m->err, MOE_EFORMAT, "bad value for key '%s'", full);
	*out = (uint32_t)v;
	return 0;
}

static int key_f32(struct moe_model *m, const char *key, float *out, int required)
{
	char full[256];
	double v;
	int rc;

	snprintf(full, sizeof full, "%s.%s", m->hp.arch, key);
	rc = moe_meta_get_f64(moe_ckpt_meta(m->ck), full, &v);
	if (rc == MOE_ENOENT && !required)
		return 0;
	if (rc == MOE_ENOENT)
		return moe_error_set(&m->err, MOE_EFORMAT, "missing key '%s'", full);
	if (rc != 0 || !isfinite(v))
		return moe_error_set(&m->err, MOE_EFORMAT, "bad value for key '%s'", full);
	*out = (float)v;
	return 0;
}

/* ---- tensors ---- */

static const struct moe_tensor *find(struct moe_model *m, int il, const char *suffix)
{
	char name[128];

	if (il >= 0)
		snprintf(name, sizeof name, "blk.%d.%s", il, suffix);
	else
		snprintf(name, sizeof name, "%s", suffix);
	return moe_ckpt_find(m->ck, name);
}

/* "[E, R, C]" of an expected shape, "?" where any size is accepted. */
static void want_str(char *out, size_t len, uint32_t n_mat, uint32_t rows, uint32_t cols)
{
	char r[16] = "?", c[16] = "?";

	if (rows)
		snprintf(r, sizeof r, "%u", rows);
	if (cols)
		snprintf(c, sizeof c, "%u", cols);
	if (n_mat)
		snprintf(out, len, "[%u, %s, %s]", n_mat, r, c);
	else
		snprintf(out, len, "[%s, %s]", r, c);
}

static void shape_str(char *out, size_t len, int ndim, const uint64_t *shape)
{
	size_t at = (size_t)snprintf(out, len, "[");

	for (int i = 0; i < ndim && at < len; i++)
		at += (size_t)snprintf(out + at, len - at, "%s%llu", i ? ", " : "",
			(unsigned long long)shape[i]);
	if (at < len)
		snprintf(out + at, len - at, "]");
}

static int kernel_dtype(enum moe_dtype t)
{
	return t == MOE_DT_F32 || t == MOE_DT_F16 || t == MOE_DT_BF16 ||
		moe_vec_dot_type(t) != MOE_DT_INVALID;
}

/* Maps a matrix (n_mat 0) or a stack of n_mat matrices; rows/cols 0 accept
 * what the file has. Absent and optional: w->data stays NULL. */
static int get_mat(struct moe_model *m, struct moe_mat *w, int il, const char *suffix,
	uint32_t n_mat, uint32_t rows, uint32_t cols, int required)
{
	const struct moe_tensor *t = find(m, il, suffix);
	int nd = n_mat ? 3 : 2;
	uint64_t r, c, e;
	const void *p;
	uint32_t bs;
	int rc;

	memset(w, 0, sizeof *w);
	if (t == NULL) {
		if (!required)
			return 0;
		if (il >= 0)
			return moe_error_set(&m->err, MOE_ENOENT, "missing tensor 'blk.%d.%s'", il, suffix);
		return moe_error_set(&m->err, MOE_ENOENT, "missing tensor '%s'", suffix);
	}
	e = nd == 3 ? t->shape[0] : 1;
	r = t->shape[nd - 2];
	c = t->shape[nd - 1];
	if (t->ndim != nd || (n_mat && e != n_mat) || (rows && r != rows) || (cols && c != cols) ||
	    r == 0 || c == 0 || r > MAX_VOCAB || c > MAX_WIDTH) {
		char got[160], want[96];

		shape_str(got, sizeof got, t->ndim, t->shape);
		want_str(want, sizeof want, n_mat, rows, cols);
		return moe_error_set(&m->err, MOE_EFORMAT, "tensor '%s' has shape %s, expected %s",
			t->name, got, want);
	}
	if (!kernel_dtype(t->dtype))
		return moe_error_set(&m->err, MOE_EUNSUP, "tensor '%s': no kernel for type %s",
			t->name, moe_dtype_name(t->dtype));
	bs = moe_dtype_block_size(t->dtype);
	if (c % bs != 0)
		return moe_error_set(&m->err, MOE_EFORMAT,
			"tensor '%s': rows of %llu values are not whole %s blocks",
			t->name, (unsigned long long)c, moe_dtype_name(t->dtype));
	if ((rc = moe_ckpt_map(m->ck, t, &p)) != 0)
		return moe_error_set(&m->err, rc, "%s", moe_ckpt_errstr(m->ck));
	w->dt = t->dtype;
	w->data = p;
	w->n_mat = (uint32_t)e;
	w->rows = (uint32_t)r;
	w->cols = (uint32_t)c;
	w->row_bytes = (size_t)(c / bs) * moe_dtype_block_bytes(t->dtype);
	w->mat_bytes = w->row_bytes * w->rows;
	m->bytes_per_token += nd == 3 ? 0 : (uint64_t)w->mat_bytes;
	return 0;
}

static int own(struct moe_model *m, void *p)
{
	void **o = realloc(m->owned, (m->n_owned + 1) * sizeof *o);

	if (o == NULL) {
		free(p);
		return moe_error_set(&m->err, MOE_ENOMEM, "out of memory");
	}
	m->owned = o;
	m->owned[m->n_owned++] = p;
	return 0;
}

/* A 1-D vector of n values as F32 (widened once if stored narrower). */
static int get_vec(struct moe_model *m, const float **v, int il, const char *suffix,
	uint32_t n, int required)
{
	const struct moe_tensor *t = find(m, il, suffix);
	const void *p;
	float *f;
	int rc;

	*v = NULL;
	if (t == NULL) {
		if (!required)
			return 0;
		if (il >= 0)
			return moe_error_set(&m->err, MOE_ENOENT, "missing tensor 'blk.%d.%s'", il, suffix);
		return moe_error_set(&m->err, MOE_ENOENT, "missing tensor '%s'", suffix);
	}
	if (moe_tensor_numel(t) != n || (t->ndim != 1 && !(t->ndim == 2 && t->shape[0] == 1)))
		return moe_error_set(&m->err, MOE_EFORMAT,
			"tensor '%s' has %llu values, expected a vector of %u", t->name,
			(unsigned long long)moe_tensor_numel(t), n);
	if ((rc = moe_ckpt_map(m->ck, t, &p)) != 0)
		return moe_error_set(&m->err, rc, "%s", moe_ckpt_errstr(m->ck));
	m->bytes_per_token += t->nbytes;
	if (t->dtype == MOE_DT_F32 && ((uintptr_t)p & 3) == 0) {
		*v = p;
		return 0;
	}
	if ((f = malloc((size_t)n * sizeof *f)) == NULL)
		return moe_error_set(&m->err, MOE_ENOMEM, "out of memory");
	if (t->dtype == MOE_DT_F32)
		memcpy(f, p, (size_t)n * sizeof *f);
	else if (moe_cast(MOE_DT_F32, f, t->dtype, p, n) != 0) {
		free(f);
		return moe_error_set(&m->err, MOE_EUNSUP, "tensor '%s': type %s not supported for a vector",
			t->name, moe_dtype_name(t->dtype));
	}
	if ((rc = own(m, f)) != 0)
		return rc;
	*v = f;
	return 0;
}

/* ---- hyperparameters ---- */

static int read_hparams(struct moe_model *m)
{
	struct moe_hparams *hp = &m->hp;
	const char *arch, *scaling = NULL;
	char key[256];
	float factor = 0.0f, yarn_log_mul = 0.0f, dummy;
	uint32_t n_shared = 0;
	int rc, b;

	if (moe_meta_get_str(moe_ckpt_meta(m->ck), "general.architecture", &arch) != 0)
		return moe_error_set(&m->err, MOE_EUNSUP,
			"no GGUF metadata 'general.architecture' (only GGUF models run)");
	hp->arch = arch;
	for (size_t i = 0; i < NFAM; i++)
		if (strcmp(arch, FAMILIES[i].name) == 0)
			hp->family = FAMILIES[i].fam;
	if (hp->family == 0)
		return moe_error_set(&m->err, MOE_EUNSUP,
			"architecture '%s' not supported (llama, qwen2moe, qwen3moe, olmoe, granitemoe, deepseek, deepseek2)", arch);
	if ((rc = key_u32(m, "block_count", &hp->n_layer, 1)) ||
	    (rc = key_u32(m, "embedding_length", &hp->n_embd, 1)) ||
	    (rc = key_u32(m, "attention.head_count", &hp->n_head, 1)) ||
	    (rc = key_f32(m, "attention.layer_norm_rms_epsilon", &hp->eps, 1)) ||
	    (rc = key_u32(m, "expert_count", &hp->n_expert, 1)) ||
	    (rc = key_u32(m, "expert_used_count", &hp->n_expert_used, 1)))
		return rc;
	if (hp->n_layer == 0 || hp->n_layer > MAX_LAYERS || hp->n_embd == 0 || hp->n_embd > MAX_WIDTH ||
	    hp->n_head == 0 || hp->n_head > hp->n_embd ||
	    hp->n_expert == 0 || hp->n_expert > MAX_EXPERTS ||
	    hp->n_expert_used == 0 || hp->n_expert_used > hp->n_expert)
		return moe_error_set(&m->err, MOE_EFORMAT,
			"implausible hyperparameters (%u layers, width %u, %u heads, %u of %u experts)",
			hp->n_layer, hp->n_embd, hp->n_head, hp->n_expert_used, hp->n_expert);
	hp->n_head_kv = hp->n_head;
	/* the default head width; key_length / value_length override it */
	hp->head_k = hp->head_v = hp->n_embd / hp->n_head;
	hp->rope_base = 10000.0f;
	hp->n_ctx_train = 4096;
	if ((rc = key_u32(m, "attention.head_count_kv", &hp->n_head_kv, 0)) ||
	    (rc = key_u32(m, "attention.key_length", &hp->head_k, 0)) ||
	    (rc = key_u32(m, "attention.value_length", &hp->head_v, 0)) ||
	    (rc = key_u32(m, "context_length", &hp->n_ctx_train, 0)) ||
	    (rc = key_f32(m, "rope.freq_base", &hp->rope_base, 0)) ||
	    (rc = key_u32(m, "feed_forward_length", &hp->n_ff, 0)) ||
	    (rc = key_u32(m, "expert_feed_forward_length", &hp->n_ff_exp, 0)))
		return rc;
	if (hp->n_head_kv == 0 || hp->n_head % hp->n_head_kv != 0 || hp->head_k == 0 ||
	    hp->head_v == 0 || hp->head_k > MAX_WIDTH / hp->n_head || hp->head_v > MAX_WIDTH / hp->n_head)
		return moe_error_set(&m->err, MOE_EFORMAT, "implausible attention shape (%u/%u heads of %u/%u)",
			hp->n_head, hp->n_head_kv, hp->head_k, hp->head_v);
	hp->n_rot = hp->head_k;
	if ((rc = key_u32(m, "rope.dimension_count", &hp->n_rot, 0)))
		return rc;

	/* RoPE scaling, as llama.cpp derives its cparams from the keys */
	snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
	(void)moe_meta_get_str(moe_ckpt_meta(m->ck), key, &scaling);
	if ((rc = key_f32(m, "rope.scaling.factor", &factor, 0)))
		return rc;
	hp->freq_scale = factor != 0.0f ? 1.0f / factor : 1.0f;
	hp->ext_factor = scaling && strcmp(scaling, "yarn") == 0 ? 1.0f : 0.0f;
	hp->attn_factor = 1.0f;
	hp->beta_fast = 32.0f;
	hp->beta_slow = 1.0f;
	hp->n_ctx_orig = hp->n_ctx_train;
	if ((rc = key_u32(m, "rope.scaling.original_context_length", &hp->n_ctx_orig, 0)))
		return rc;
	hp->kq_scale = 1.0f / sqrtf((float)hp->head_k);
	hp->weights_scale = 1.0f;
	hp->embd_scale = hp->residual_scale = hp->logit_scale = 1.0f;

	switch (hp->family) {
	case MOE_FAM_LLAMA:
		hp->norm_topk = 1;
		break;
	case MOE_FAM_QWEN2MOE:
		hp->rope_neox = 1;
		if ((rc = key_u32(m, "expert_shared_feed_forward_length", &hp->n_ff_shexp, 0)))
			return rc;
		break;
	case MOE_FAM_QWEN3MOE:   /* llama.cpp always renormalises qwen3moe's top-k */
		hp->rope_neox = 1;
		hp->norm_topk = 1;
		hp->qk_norm_per_head = 1;
		break;
	case MOE_FAM_OLMOE:
		hp->rope_neox = 1;
		if (hp->n_head_kv != hp->n_head)
			return moe_error_set(&m->err, MOE_EUNSUP, "olmoe needs as many kv heads as heads");
		break;
	case MOE_FAM_GRANITEMOE:
		hp->norm_topk = 1;
		if ((rc = key_f32(m, "embedding_scale", &hp->embd_scale, 0)) ||
		    (rc = key_f32(m, "residual_scale", &hp->residual_scale, 0)) ||
		    (rc = key_f32(m, "attention.scale", &hp->kq_scale, 0)) ||
		    (rc = key_f32(m, "logit_scale", &hp->logit_scale, 0)))
			return rc;
		if (hp->logit_scale == 0.0f)
			return moe_error_set(&m->err, MOE_EFORMAT, "logit_scale is 0");
		break;
	case MOE_FAM_DEEPSEEK:
		/* llama.cpp requires expert_weights_scale for deepseek but never applies it */
		if ((rc = key_u32(m, "leading_dense_block_count", &hp->n_dense_lead, 0)) ||
		    (rc = key_u32(m, "expert_shared_count", &n_shared, 0)) ||
		    (rc = key_f32(m, "expert_weights_scale", &dummy, 0)))
			return rc;
		hp->n_ff_shexp = n_shared * hp->n_ff_exp;
		break;
	case MOE_FAM_DEEPSEEK2: {
		uint32_t gating = 0;

		b = 0;
		if ((rc = key_u32(m, "leading_dense_block_count", &hp->n_dense_lead, 0)) ||
		    (rc = key_u32(m, "expert_shared_count", &n_shared, 0)) ||
		    (rc = key_f32(m, "expert_weights_scale", &hp->weights_scale, 0)) ||
		    (rc = key_u32(m, "expert_gating_func", &gating, 0)) ||
		    (rc = key_u32(m, "attention.q_lora_rank", &hp->q_lora, 0)) ||
		    (rc = key_u32(m, "attention.kv_lora_rank", &hp->kv_lora, 1)) ||
		    (rc = key_f32(m, "rope.scaling.yarn_log_multiplier", &yarn_log_mul, 0)) ||
		    (rc = key_u32(m, "expert_group_count", &hp->n_group, 0)) ||
		    (rc = key_u32(m, "expert_group_used_count", &hp->topk_group, 0)))
			return rc;
		snprintf(key, sizeof key, "%s.expert_weights_norm", arch);
		if (moe_meta_get_bool(moe_ckpt_meta(m->ck), key, &b) == 0)
			hp->norm_topk = b;
		hp->gating = gating == 2 ? MOE_ROUTE_SIGMOID : MOE_ROUTE_SOFTMAX;
		hp->n_ff_shexp = n_shared * hp->n_ff_exp;
		hp->qk_rope = hp->n_rot;
		if (hp->qk_rope >= hp->head_k || hp->qk_rope % 2 || hp->kv_lora == 0 || hp->kv_lora > MAX_WIDTH)
			return moe_error_set(&m->err, MOE_EFORMAT, "implausible MLA shape (key %u, rope %u, kv_lora %u)",
				hp->head_k, hp->qk_rope, hp->kv_lora);
		hp->qk_nope = hp->head_k - hp->qk_rope;
		/* deepseek2 scales the attention by mscale^2 and cancels ggml's
		 * YaRN magnitude correction through attn_factor */
		{
			float mscale = 1.0f + yarn_log_mul * logf(1.0f / hp->freq_scale);

			hp->kq_scale = mscale * mscale / sqrtf((float)hp->head_k);
			hp->attn_factor = 1.0f / (1.0f + 0.1f * logf(1.0f / hp->freq_scale));
		}
		if (hp->n_group && (hp->n_expert % hp->n_group || hp->topk_group == 0 ||
		    hp->topk_group > hp->n_group || hp->n_group > 256))
			return moe_error_set(&m->err, MOE_EFORMAT, "bad expert groups (%u of %u)",
				hp->topk_group, hp->n_group);
		break;
	}
	}
	if (hp->n_rot == 0 || hp->n_rot % 2 || hp->n_rot > hp->head_k)
		return moe_error_set(&m->err, MOE_EFORMAT, "bad rope.dimension_count %u", hp->n_rot);
	if (hp->n_dense_lead > hp->n_layer)
		return moe_error_set(&m->err, MOE_EFORMAT, "more leading dense layers than layers");
	return 0;
}

/* ---- per-layer tensors ---- */

static int load_attention(struct moe_model *m, struct moe_model_layer *L, int il)
{
	const struct moe_hparams *hp = &m->hp;
	uint32_t d = hp->n_embd, nq = hp->n_head * hp->head_k;
	int rc;

	if ((rc = get_vec(m, &L->attn_norm, il, "attn_norm.weight", d, 1)))
		return rc;
	if (hp->family == MOE_FAM_DEEPSEEK2) {
		uint32_t kvb = hp->n_head * (hp->qk_nope + hp->head_v);

		if (find(m, il, "attn_q_a.weight")) {
			if ((rc = get_mat(m, &L->wq_a, il, "attn_q_a.weight", 0, 0, d, 1)) ||
			    (rc = get_vec(m, &L->q_a_norm, il, "attn_q_a_norm.weight", L->wq_a.rows, 1)) ||
			    (rc = get_mat(m, &L->wq_b, il, "attn_q_b.weight", 0, nq, L->wq_a.rows, 1)))
				return rc;
		} else if ((rc = get_mat(m, &L->wq, il, "attn_q.weight", 0, nq, d, 1)))
			return rc;
		if ((rc = get_mat(m, &L->wkv_a, il, "attn_kv_a_mqa.weight", 0, hp->kv_lora + hp->qk_rope, d, 1)) ||
		    (rc = get_vec(m, &L->kv_a_norm, il, "attn_kv_a_norm.weight", hp->kv_lora, 1)) ||
		    (rc = get_mat(m, &L->wkv_b, il, "attn_kv_b.weight", 0, kvb, hp->kv_lora, 1)))
			return rc;
	} else {
		uint32_t nk = hp->n_head_kv * hp->head_k, nv = hp->n_head_kv * hp->head_v;

		if ((rc = get_mat(m, &L->wq, il, "attn_q.weight", 0, nq, d, 1)) ||
		    (rc = get_mat(m, &L->wk, il, "attn_k.weight", 0, nk, d, 1)) ||
		    (rc = get_mat(m, &L->wv, il, "attn_v.weight", 0, nv, d, 1)) ||
		    (rc = get_vec(m, &L->bq, il, "attn_q.bias", nq, 0)) ||
		    (rc = get_vec(m, &L->bk, il, "attn_k.bias", nk, 0)) ||
		    (rc = get_vec(m, &L->bv, il, "attn_v.bias", nv, 0)))
			return rc;
		if (hp->family == MOE_FAM_OLMOE &&
		    ((rc = get_vec(m, &L->q_norm, il, "attn_q_norm.weight", nq, 1)) ||
		     (rc = get_vec(m, &L->k_norm, il, "attn_k_norm.weight", nk, 1))))
			return rc;
		if (hp->family == MOE_FAM_QWEN3MOE &&
		    ((rc = get_vec(m, &L->q_norm, il, "attn_q_norm.weight", hp->head_k, 1)) ||
		     (rc = get_vec(m, &L->k_norm, il, "attn_k_norm.weight", hp->head_k, 1))))
			return rc;
	}
	return get_mat(m, &L->wo, il, "attn_output.weight", 0, d, hp->n_head * hp->head_v, 1);
}

static int load_ffn(struct moe_model *m, struct moe_model_layer *L, int il)
{
	struct moe_hparams *hp = &m->hp;
	uint32_t d = hp->n_embd, E = hp->n_expert;
	int rc;

	if ((rc = get_vec(m, &L->ffn_norm, il, "ffn_norm.weight", d, 1)))
		return rc;
	if ((uint32_t)il < hp->n_dense_lead) {
		if ((rc = get_mat(m, &L->gate, il, "ffn_gate.weight", 0, hp->n_ff, d, 1)) ||
		    (rc = get_mat(m, &L->up, il, "ffn_up.weight", 0, hp->n_ff, d, 1)) ||
		    (rc = get_mat(m, &L->down, il, "ffn_down.weight", 0, d, hp->n_ff, 1)))
			return rc;
		if (hp->n_ff == 0)
			return moe_error_set(&m->err, MOE_EFORMAT, "missing key '%s.feed_forward_length'", hp->arch);
		return 0;
	}
	L->is_moe = 1;
	if ((rc = get_mat(m, &L->router, il, "ffn_gate_inp.weight", 0, E, d, 1)) ||
	    (rc = get_mat(m, &L->gate_exps, il, "ffn_gate_exps.weight", E, hp->n_ff_exp, d, 1)))
		return rc;
	/* llama and olmoe keep the expert width in feed_forward_length (or only in the shapes) */
	if (hp->n_ff_exp == 0)
		hp->n_ff_exp = L->gate_exps.rows;
	if ((rc = get_mat(m, &L->up_exps, il, "ffn_up_exps.weight", E, hp->n_ff_exp, d, 1)) ||
	    (rc = get_mat(m, &L->down_exps, il, "ffn_down_exps.weight", E, d, hp->n_ff_exp, 1)) ||
	    (rc = get_vec(m, &L->probs_bias, il, "exp_probs_b.bias", E, 0)))
		return rc;
	m->bytes_per_token += (uint64_t)hp->n_expert_used *
		(L->gate_exps.mat_bytes + L->up_exps.mat_bytes + L->down_exps.mat_bytes);
	if (hp->family == MOE_FAM_QWEN2MOE || hp->n_ff_shexp) {
		int req = hp->family != MOE_FAM_QWEN2MOE;

		if ((rc = get_mat(m, &L->gate_sh, il, "ffn_gate_shexp.weight", 0, hp->n_ff_shexp, d, req)))
			return rc;
		if (L->gate_sh.data) {
			hp->n_ff_shexp = L->gate_sh.rows;
			if ((rc = get_mat(m, &L->up_sh, il, "ffn_up_shexp.weight", 0, hp->n_ff_shexp, d, 1)) ||
			    (rc = get_mat(m, &L->down_sh, il, "ffn_down_shexp.weight", 0, d, hp->n_ff_shexp, 1)))
				return rc;
		}
		if (hp->family == MOE_FAM_QWEN2MOE &&
		    (rc = get_vec(m, &L->sh_gate, il, "ffn_gate_inp_shexp.weight", d, L->gate_sh.data != NULL)))
			return rc;
	}
	return 0;
}

/*
 * A Hugging Face checkpoint (safetensors, PyTorch, archive) is first
 * converted to an unlinked temporary GGUF in $TMPDIR, which is then
 * mapped: the engine reads llama.cpp's names and stacked experts only.
 * Memory stays flat; the disk holds one copy of the weights.
 */
static int via_gguf(struct moe_model *m, struct moe_ckpt **ck)
{
	struct moe_convert_opts o = { .format = MOE_CONV_GGUF, .dtype = MOE_DT_INVALID };
	const char *dir = getenv("TMPDIR");
	struct moe_conversion *c = NULL;
	struct moe_output *out = NULL;
	struct moe_input *in = NULL;
	struct moe_ckpt *g = NULL;
	char path[4096], eb[256];
	int fd, rc;

	snprintf(path, sizeof path, "%s/moe-run.XXXXXX", dir && *dir ? dir : "/tmp");
	if ((fd = mkostemp(path, O_CLOEXEC)) < 0)
		return moe_error_set(&m->err, MOE_EIO, "cannot create a temporary GGUF: %s",
			strerror(errno));
	unlink(path);
	if ((rc = moe_convert_new(&c, *ck, &o)) != 0)
		moe_error_set(&m->err, rc, "%s", c ? moe_convert_errstr(c) : "out of memory");
	else if ((rc = moe_output_open_fd(&out, fd, "temporary GGUF")) != 0)
		moe_error_set(&m->err, rc, "out of memory");
	else if ((rc = moe_convert_write(c, out)) != 0 || (rc = moe_output_commit(out)) != 0)
		moe_error_set(&m->err, rc, "%s", moe_convert_errstr(c));
	if (rc == 0) {
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		if ((rc = moe_input_open(&in, path, eb, sizeof eb)) != 0)
			moe_error_set(&m->err, rc, "temporary GGUF: %s", eb);
	}
	if (rc == 0 && (rc = moe_ckpt_new(&g)) == 0 &&
	    (rc = moe_ckpt_open_input(g, in, "temporary GGUF")) != 0)
		moe_error_set(&m->err, rc, "%s", moe_ckpt_errstr(g));
	moe_output_free(out);
	moe_convert_free(c);
	close(fd);
	if (rc != 0) {
		moe_ckpt_free(g);
		return rc;
	}
	moe_ckpt_free(*ck);
	*ck = g;
	return 0;
}

int moe_model_open(struct moe_model *m, const char *path)
{
	struct moe_ckpt *ck;
	int rc;

	if (m->ck != NULL)
		return moe_error_set(&m->err, MOE_EINVAL, "model already open");
	if ((rc = moe_ckpt_new(&ck)) != 0)
		return moe_error_set(&m->err, rc, "out of memory");
	/* "-" (a pipe) is copied to a temporary file: the weights are mapped */
	if ((rc = moe_ckpt_open_seekable(ck, path)) != 0) {
		moe_error_set(&m->err, rc, "%s", moe_ckpt_errstr(ck));
		moe_ckpt_free(ck);
		return rc;
	}
	if (moe_ckpt_format(ck) != MOE_FMT_GGUF && (rc = via_gguf(m, &ck)) != 0) {
		moe_ckpt_free(ck);
		return rc;
	}
	return moe_model_open_ckpt(m, ck);
}

int moe_model_open_ckpt(struct moe_model *m, struct moe_ckpt *ck)
{
	struct moe_hparams *hp = &m->hp;
	uint32_t vocab = 0;
	int rc;

	if (m->ck != NULL) {
		moe_ckpt_free(ck);
		return moe_error_set(&m->err, MOE_EINVAL, "model already open");
	}
	m->ck = ck;
	if ((rc = read_hparams(m)) != 0)
		return rc;
	if ((rc = get_mat(m, &m->tok_embd, -1, "token_embd.weight", 0, 0, hp->n_embd, 1)) != 0)
		return rc;
	/* a token row is looked up, not multiplied: don't count all of it */
	m->bytes_per_token -= m->tok_embd.mat_bytes - m->tok_embd.row_bytes;
	hp->n_vocab = m->tok_embd.rows;
	if ((rc = key_u32(m, "vocab_size", &vocab, 0)) != 0)
		return rc;
	if (vocab && vocab != hp->n_vocab)
		return moe_error_set(&m->err, MOE_EFORMAT, "vocab_size %u but 'token_embd.weight' has %u rows",
			vocab, hp->n_vocab);
	if ((rc = get_vec(m, &m->output_norm, -1, "output_norm.weight", hp->n_embd, 1)) ||
	    (rc = get_mat(m, &m->output, -1, "output.weight", 0, hp->n_vocab, hp->n_embd, 0)))
		return rc;
	if (m->output.data == NULL) {   /* tied head */
		m->output = m->tok_embd;
		m->bytes_per_token += m->tok_embd.mat_bytes;
	}
	if ((m->layers = calloc(hp->n_layer, sizeof *m->layers)) == NULL)
		return moe_error_set(&m->err, MOE_ENOMEM, "out of memory");
	for (uint32_t il = 0; il < hp->n_layer; il++)
		if ((rc = load_attention(m, &m->layers[il], (int)il)) ||
		    (rc = load_ffn(m, &m->layers[il], (int)il)))
			return rc;
	return 0;
}
