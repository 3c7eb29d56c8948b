/* Streaming a conversion plan: rows in chunks, RoPE row order, dtype changes, GGUF/safetensors/shards. */
#include "convert_impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fp8block.h"
#include "fpconv.h"
#include "gguf.h"
#include "pool.h"
#include "quant.h"
#include "safetensors.h"
#include "shard.h"

#define CHUNK (4u << 20)   /* source bytes per read */

/* Where converted bytes go: one of the three writers. */
struct sink {
	int (*write)(void *w, const void *buf, size_t n);
	const char *(*errstr)(const void *w);
	void *w;
};

/* Per-thread row buffers and error sums. */
struct worker {
	float *f32, *back;          /* (row_len) */
	size_t cap, back_cap;
	struct moe_conv_stats st;
	int rc;
};

/* Buffers reused for every piece; sized for the largest chunk once. */
struct rowbuf {
	unsigned char *raw, *tmp, *out;
	float *scale;               /* block scales of the bands in a chunk */
	size_t raw_cap, tmp_cap, out_cap, scale_cap;
	struct worker *w;
	int nw;
	struct moe_pool *pool;
};

/* One chunk of rows, split across the workers. */
struct job {
	const struct moe_conversion *c;
	const struct otensor *t;
	const struct piece *p;
	const unsigned char *in;
	unsigned char *out;
	uint64_t r0, k;             /* absolute source row of the chunk, rows */
	size_t srb, drb;
	const float *scale;         /* scales of band r0 / 128 onwards */
	struct rowbuf *b;
};

static int grow(void **p, size_t *cap, size_t need)
{
	void *np;

	if (need <= *cap)
		return 0;
	if ((np = realloc(*p, need)) == NULL)
		return MOE_ENOMEM;
	*p = np;
	*cap = need;
	return 0;
}

static uint64_t row_bytes(enum moe_dtype t, uint64_t row_len)
{
	uint64_t b = 0;

	moe_dtype_nbytes(t, row_len, &b);
	return b;
}

/* HF rotates the two halves of each head, llama.cpp adjacent pairs:
 * GGUF row 2i+j of a head is HF row j*half+i. */
static void permute_rows(const unsigned char *in, unsigned char *out, uint64_t nrows,
	uint64_t per_head, size_t rb, int dir)
{
	uint64_t half = per_head / 2;

	for (uint64_t h = 0; h < nrows / per_head; h++)
		for (uint64_t i = 0; i < half; i++)
			for (uint64_t j = 0; j < 2; j++) {
				uint64_t g = h * per_head + 2 * i + j, f = h * per_head + j * half + i;
				uint64_t to = dir > 0 ? g : f, from = dir > 0 ? f : g;
				memcpy(out + to * rb, in + from * rb, rb);
			}
}

/* Scale rows of the 128-row bands that source rows [r, r + k) touch. */
static int fp8_scales(struct moe_conversion *c, struct rowbuf *b, const struct piece *p,
	uint64_t r, uint64_t k, uint64_t cols)
{
	uint64_t b0 = r / 128, nb = (r + k - 1) / 128 - b0 + 1, n = (cols + 127) / 128;
	int rc;

	if (grow((void **)&b->scale, &b->scale_cap, nb * n * sizeof(float)) != 0)
		return moe_error_set(&c->err, MOE_ENOMEM, "out of memory");
	if (p->scale->dtype != MOE_DT_F32 || moe_tensor_numel(p->scale) < (b0 + nb) * n)
		return moe_error_set(&c->err, MOE_EFORMAT, "tensor '%s' does not have the "
			"F32 (%llu, %llu) block scales its weight needs", p->scale->name,
			(unsigned long long)(b0 + nb), (unsigned long long)n);
	if ((rc = moe_ckpt_read(c->ck, p->scale, b0 * n * 4, b->scale, nb * n * 4)) != 0)
		return moe_error_set(&c->err, rc, "%s", moe_ckpt_errstr(c->ck));
	return 0;
}

static int row_to_f32(const struct job *j, uint64_t r, const unsigned char *in, float *f)
{
	const struct otensor *t = j->t;

	if (j->p->scale) {
		uint64_t n = (t->row_len + 127) / 128;
		return moe_fp8block_dequantize_rows(in, 1, (int64_t)t->row_len,
			j->scale + (r / 128 - j->r0 / 128) * n, f);
	}
	if (moe_dtype_is_quantized(t->sdtype))
		return moe_dequantize_row(t->sdtype, in, f, (int64_t)t->row_len);
	return moe_cast(MOE_DT_F32, f, t->sdtype, in, t->row_len);
}

static int f32_to_row(const struct otensor *t, const float *f, unsigned char *out)
{
	if (moe_dtype_is_quantized(t->dtype))
		return moe_quantize_rows(t->dtype, f, out, 1, (int64_t)t->row_len);
	return moe_cast(t->dtype, out, MOE_DT_F32, f, t->row_len);
}

/* Adds one row's error (stored bytes decoded again vs the source values). */
static int measure(struct worker *w, const struct otensor *t, const unsigned char *out)
{
	int rc = moe_dtype_is_quantized(t->dtype)
		? moe_dequantize_row(t->dtype, out, w->back, (int64_t)t->row_len)
		: moe_cast(MOE_DT_F32, w->back, t->dtype, out, t->row_len);

	for (uint64_t i = 0; rc == 0 && i < t->row_len; i++) {
		double e = (double)w->back[i] - w->f32[i];
		w->st.sse += e * e;
		w->st.ssx += (double)w->f32[i] * w->f32[i];
		if (fabs(e) > w->st.max_abs || e != e)
			w->st.max_abs = e != e ? INFINITY : fabs(e);
	}
	w->st.n += t->row_len;
	return rc;
}

static void convert_rows(void *ctx, int ith, int nth)
{
	const struct job *j = ctx;
	struct worker *w = &j->b->w[ith];
	long lo, hi;

	moe_pool_split((long)j->k, ith, nth, &lo, &hi);
	for (long i = lo; i < hi && w->rc == 0; i++) {
		const unsigned char *in = j->in + (size_t)i * j->srb;
		unsigned char *out = j->out + (size_t)i * j->drb;
		w->rc = row_to_f32(j, j->r0 + (uint64_t)i, in, w->f32);
		if (w->rc == 0)
			w->rc = f32_to_row(j->t, w->f32, out);
		if (w->rc == 0 && j->c->o.stats)
			w->rc = measure(w, j->t, out);
	}
}

/* Converts one chunk on all workers; FP8 needs its scales read first. */
static int convert_chunk(struct moe_conversion *c, struct rowbuf *b, struct job *j)
{
	int rc = 0;

	if (j->p->scale && (rc = fp8_scales(c, b, j->p, j->r0, j->k, j->t->row_len)) != 0)
		return rc;
	j->scale = b->scale;
	for (int i = 0; i < b->nw; i++) {
		struct worker *w = &b->w[i];
		size_t need = j->t->row_len * sizeof(float);
		if (grow((void **)&w->f32, &w->cap, need) || grow((void **)&w->back, &w->back_cap, need))
			return moe_error_set(&c->err, MOE_ENOMEM, "out of memory");
	}
	if (b->pool)
		moe_pool_run(b->pool, convert_rows, j);
	else
		convert_rows(j, 0, 1);
	for (int i = 0; i < b->nw; i++)
		if (rc == 0 && (rc = b->w[i].rc) != 0)
			moe_error_set(&c->err, rc, "tensor '%s': cannot convert %s to %s",
				j->t->name, moe_dtype_name(j->t->sdtype), moe_dtype_name(j->t->dtype));
	return rc;
}

/* Source rows [r, r + k) of a piece into b->raw (generated or read). */
static int load_rows(struct moe_conversion *c, struct rowbuf *b, const struct otensor *t,
	const struct piece *p, uint64_t r, uint64_t k, size_t srb)
{
	int rc;

	if (p->src->file == MOE_GEN_FILE) {
		for (uint64_t i = 0; i < k; i++)
			moe_conv_init_row(c, p->src, p->row0 + r + i,
				(float *)(b->raw + i * srb), t->row_len);
		return 0;
	}
	rc = moe_ckpt_read(c->ck, p->src, (p->row0 + r) * srb, b->raw, k * srb);
	return rc ? moe_error_set(&c->err, rc, "%s", moe_ckpt_errstr(c->ck)) : 0;
}

static int stream_piece(struct moe_conversion *c, struct rowbuf *b, const struct otensor *t,
	const struct piece *p, struct sink *s)
{
	size_t srb = row_bytes(t->sdtype, t->row_len), drb = row_bytes(t->dtype, t->row_len);
	uint64_t group = t->perm ? p->nrows / t->heads : 1, k;
	int same = t->sdtype == t->dtype && p->scale == NULL && !c->o.stats, rc;
	struct job j = { c, t, p, NULL, NULL, 0, 0, srb, drb, NULL, b };

	if (t->perm && (t->heads == 0 || p->nrows % t->heads || group % 2))
		return moe_error_set(&c->err, MOE_EFORMAT, "tensor '%s': %llu rows do not split "
			"into %u heads of even size", t->name, (unsigned long long)p->nrows, t->heads);
	k = CHUNK / (srb ? srb : 1) / group * group;
	if (k < group)
		k = group;
	if (grow((void **)&b->raw, &b->raw_cap, k * srb) || grow((void **)&b->tmp, &b->tmp_cap, k * srb) ||
	    grow((void **)&b->out, &b->out_cap, k * drb))
		return moe_error_set(&c->err, MOE_ENOMEM, "out of memory");
	for (uint64_t r = 0; r < p->nrows; r += k) {
		uint64_t kk = p->nrows - r < k ? p->nrows - r : k;
		if ((rc = load_rows(c, b, t, p, r, kk, srb)) != 0)
			return rc;
		j.in = b->raw;
		if (t->perm) {
			permute_rows(b->raw, b->tmp, kk, group, srb, t->perm);
			j.in = b->tmp;
		}
		j.out = b->out;
		j.r0 = p->row0 + r;
		j.k = kk;
		if (!same && (rc = convert_chunk(c, b, &j)) != 0)
			return rc;
		if ((rc = s->write(s->w, same ? j.in : b->out, kk * drb)) != 0)
			return moe_error_set(&c->err, rc, "%s", s->errstr(s->w));
		c->done += kk * drb;
		if (c->o.progress)
			c->o.progress(c->o.progress_ctx, c->done, c->total);
	}
	return 0;
}

/*
 * FP8 with 128 x 128 block scales: whole bands of 128 rows go through F32
 * to the band quantizer; the scales are kept for the weight_scale_inv
 * tensor that follows. One band is at most 128 rows x row_len floats.
 */
static int stream_fp8(struct moe_conversion *c, struct rowbuf *b, struct otensor *t,
	const struct piece *p, struct sink *s)
{
	size_t srb = row_bytes(t->sdtype, t->row_len), cols = t->row_len;
	uint64_t group = t->perm ? p->nrows / t->heads : 1, nsc = (cols + 127) / 128;
	struct job j = { c, t, p, NULL, NULL, 0, 0, srb, cols, NULL, b };
	struct worker *w = &b->w[0];
	float *band = NULL;
	uint8_t *q = NULL;
	int rc = 0;

	if (t->perm && 128 % group != 0)
		return moe_error_set(&c->err, MOE_EUNSUP, "tensor '%s': heads of %llu rows do "
			"not fit FP8 bands of 128", t->name, (unsigned long long)group);
	band = malloc(128 * cols * sizeof *band);
	q = malloc(128 * cols);
	t->scales = calloc(((p->nrows + 127) / 128) * nsc, sizeof *t->scales);
	if (!band || !q || !t->scales || grow((void **)&b->raw, &b->raw_cap, 128 * srb) ||
	    grow((void **)&b->tmp, &b->tmp_cap, 128 * srb) ||
	    grow((void **)&w->back, &w->back_cap, 128 * cols * sizeof(float)))
		rc = moe_error_set(&c->err, MOE_ENOMEM, "out of memory");
	for (uint64_t r = 0; rc == 0 && r < p->nrows; r += 128) {
		uint64_t k = p->nrows - r < 128 ? p->nrows - r : 128;
		float *sc = t->scales + (r / 128) * nsc;
		j.in = b->raw;
		if ((rc = load_rows(c, b, t, p, r, k, srb)) != 0)
			break;
		if (t->perm) {
			permute_rows(b->raw, b->tmp, k, group, srb, t->perm);
			j.in = b->tmp;
		}
		if (p->scale && (rc = fp8_scales(c, b, p, p->row0 + r, k, cols)) != 0)
			break;
		j.scale = b->scale;
		j.r0 = p->row0 + r;
		for (uint64_t i = 0; rc == 0 && i < k; i++)
			rc = row_to_f32(&j, p->row0 + r + i, j.in + i * srb, band + i * cols);
		if (rc == 0)
			rc = moe_fp8block_quantize_band(band, (int64_t)k, (int64_t)cols, q, sc);
		if (rc == 0 && c->o.stats &&
		    (rc = moe_fp8block_dequantize_rows(q, (int64_t)k, (int64_t)cols, sc, w->back)) == 0)
			for (uint64_t i = 0; i < k * cols; i++) {
				double e = (double)w->back[i] - band[i];
				t->st.sse += e * e;
				t->st.ssx += (double)band[i] * band[i];
				t->st.max_abs = fabs(e) > t->st.max_abs ? fabs(e) : t->st.max_abs;
				t->st.n++;
			}
		if (rc != 0) {
			if (c->err.code == 0)
				moe_error_set(&c->err, rc, "tensor '%s': cannot convert %s to FP8",
					t->name, moe_dtype_name(t->sdtype));
			break;
		}
		if ((rc = s->write(s->w, q, k * cols)) != 0) {
			moe_error_set(&c->err, rc, "%s", s->errstr(s->w));
			break;
		}
		c->done += k * cols;
		if (c->o.progress)
			c->o.progress(c->o.progress_ctx, c->done, c->total);
	}
	free(band);
	free(q);
	return rc ? c->err.code : 0;
}

/* The weight_scale_inv companion of an FP8 weight written just before. */
static int stream_scales(struct moe_conversion *c, const struct otensor *t, struct sink *s)
{
	const struct otensor *w = &c->t[t->scale_of - 1];
	size_t n = (size_t)(t->shape[0] * t->shape[1] * sizeof(float));
	int rc = s->write(s->w, w->scales, n);

	if (rc != 0)
		return moe_error_set(&c->err, rc, "%s", s->errstr(s->w));
	c->done += n;
	return 0;
}

static void rowbuf_release(struct rowbuf *b)
{
	for (int i = 0; b->w && i < b->nw; i++) {
		free(b->w[i].f32);
		free(b->w[i].back);
	}
	moe_pool_free(b->pool);
	free(b->w);
	free(b->raw);
	free(b->tmp);
	free(b->out);
	free(b->scale);
}

static int stream_tensor(struct moe_conversion *c, struct rowbuf *b, struct otensor *t,
	struct sink *s)
{
	int rc = 0;

	if (t->scale_of)
		return stream_scales(c, t, s);
	if (t->dtype == MOE_DT_F8_E4M3 && t->ndim >= 2)
		return stream_fp8(c, b, t, &t->p[0], s);
	for (size_t k = 0; rc == 0 && k < t->np; k++)
		rc = stream_piece(c, b, t, &t->p[k], s);
	return rc;
}

static int stream_all(struct moe_conversion *c, struct sink *s)
{
	struct rowbuf b = { 0 };
	int rc = 0;

	b.nw = c->o.threads > 1 ? c->o.threads : 1;
	if ((b.w = calloc((size_t)b.nw, sizeof *b.w)) == NULL ||
	    (b.nw > 1 && moe_pool_new(&b.pool, b.nw) != 0)) {
		rowbuf_release(&b);
		return moe_error_set(&c->err, MOE_ENOMEM, "cannot start %d threads", b.nw);
	}
	c->done = 0;
	for (size_t i = 0; rc == 0 && i < c->n; i++) {
		for (int k = 0; k < b.nw; k++)
			memset(&b.w[k].st, 0, sizeof b.w[k].st);
		rc = stream_tensor(c, &b, &c->t[i], s);
		for (int k = 0; k < b.nw; k++) {
			struct moe_conv_stats *d = &c->t[i].st, *w = &b.w[k].st;
			d->sse += w->sse;
			d->ssx += w->ssx;
			d->n += w->n;
			if (w->max_abs > d->max_abs)
				d->max_abs = w->max_abs;
		}
	}
	rowbuf_release(&b);
	return rc;
}

static int gguf_w(void *w, const void *buf, size_t n) { return moe_gguf_writer_write(w, buf, n); }
static const char *gguf_e(const void *w) { return moe_gguf_writer_errstr(w); }
static int st_w(void *w, const void *buf, size_t n) { return moe_st_writer_write(w, buf, n); }
static const char *st_e(const void *w) { return moe_st_writer_errstr(w); }
static int shard_w(void *w, const void *buf, size_t n) { return moe_shard_writer_write(w, buf, n); }
static const char *shard_e(const void *w) { return moe_shard_writer_errstr(w); }

static int write_gguf(struct moe_conversion *c, struct moe_output *out)
{
	struct moe_gguf_writer *w;
	struct sink s = { gguf_w, gguf_e, NULL };
	int rc;

	if (!moe_meta_find(c->kv, "general.architecture"))
		return moe_error_set(&c->err, MOE_EUNSUP, "cannot write GGUF: the input's "
			"architecture is unknown (no GGUF metadata and no config.json of a "
			"supported model_type: %s)", moe_family_list());
	if ((rc = moe_gguf_writer_new(&w, out)) != 0)
		return moe_error_set(&c->err, rc, "out of memory");
	s.w = w;
	rc = moe_gguf_writer_set_meta(w, c->kv);
	for (size_t i = 0; rc == 0 && i < c->n; i++)
		rc = moe_gguf_writer_add_tensor(w, c->t[i].name, c->t[i].dtype, c->t[i].ndim,
			c->t[i].shape);
	if (rc == 0)
		rc = moe_gguf_writer_begin_data(w);
	if (rc != 0) {
		moe_error_set(&c->err, rc, "%s", moe_gguf_writer_errstr(w));
	} else if ((rc = stream_all(c, &s)) == 0 && (rc = moe_gguf_writer_finish(w)) != 0) {
		moe_error_set(&c->err, rc, "%s", moe_gguf_writer_errstr(w));
	}
	moe_gguf_writer_free(w);
	return rc;
}

/* __metadata__ entries: a GGUF's metadata and tensor order ride along so
 * that converting back gives the same file. */
static int st_metadata(struct moe_conversion *c,
	int (*set)(void *w, const char *k, const char *v), void *w)
{
	json_t *j = NULL;
	char *s;
	int rc = set(w, "format", "pt");

	if (rc != 0 || !c->src_gguf)
		return rc;
	if ((rc = moe_meta_to_typed_json(c->kv, &j)) != 0)
		return moe_error_set(&c->err, rc, "GGUF metadata holds a string that is not "
			"UTF-8 and cannot be carried into safetensors");
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	rc = s ? set(w, "gguf.metadata", s) : MOE_ENOMEM;
	free(s);
	if (rc == 0 && c->order) {
		s = json_dumps(c->order, JSON_COMPACT);
		rc = s ? set(w, "gguf.tensor_order", s) : MOE_ENOMEM;
		free(s);
	}
	return rc;
}

static int st_set(void *w, const char *k, const char *v) { return moe_st_writer_set_meta(w, k, v); }
static int shard_set(void *w, const char *k, const char *v) { return moe_shard_writer_set_meta(w, k, v); }

static int write_st(struct moe_conversion *c, struct moe_output *out)
{
	struct moe_st_writer *w;
	struct sink s = { st_w, st_e, NULL };
	int rc;

	if ((rc = moe_st_writer_new(&w, out)) != 0)
		return moe_error_set(&c->err, rc, "out of memory");
	s.w = w;
	rc = st_metadata(c, st_set, w);
	for (size_t i = 0; rc == 0 && i < c->n; i++)
		rc = moe_st_writer_add_tensor(w, c->t[i].name, c->t[i].dtype, c->t[i].ndim,
			c->t[i].shape);
	if (rc == 0)
		rc = moe_st_writer_begin_data(w);
	if (rc != 0) {
		if (c->err.code == 0)
			moe_error_set(&c->err, rc, "%s", moe_st_writer_errstr(w));
	} else if ((rc = stream_all(c, &s)) == 0 && (rc = moe_st_writer_finish(w)) != 0) {
		moe_error_set(&c->err, rc, "%s", moe_st_writer_errstr(w));
	}
	moe_st_writer_free(w);
	return rc;
}

int moe_convert_write(struct moe_conversion *c, struct moe_output *out)
{
	return c->dst_gguf ? write_gguf(c, out) : write_st(c, out);
}

static int write_shards(struct moe_conversion *c, const char *dir, uint64_t max,
	unsigned flags)
{
	struct moe_shard_writer *w;
	struct sink s = { shard_w, shard_e, NULL };
	int rc;

	if ((rc = moe_shard_writer_new(&w, dir, max, flags & MOE_OUT_FORCE ?
	    MOE_SHARD_FORCE : 0)) != 0)
		return moe_error_set(&c->err, rc, "%s", w ? moe_shard_writer_errstr(w)
			: "out of memory");
	s.w = w;
	rc = st_metadata(c, shard_set, w);
	for (size_t i = 0; rc == 0 && i < c->n; i++)
		rc = moe_shard_writer_add_tensor(w, c->t[i].name, c->t[i].dtype, c->t[i].ndim,
			c->t[i].shape);
	if (rc == 0)
		rc = moe_shard_writer_begin_data(w);
	if (rc != 0) {
		if (c->err.code == 0)
			moe_error_set(&c->err, rc, "%s", moe_shard_writer_errstr(w));
	} else if ((rc = stream_all(c, &s)) == 0 && (rc = moe_shard_writer_finish(w)) != 0) {
		moe_error_set(&c->err, rc, "%s", moe_shard_writer_errstr(w));
	}
	moe_shard_writer_free(w);
	return rc;
}

/* dir/name written atomically through a moe_output. */
static int write_file(struct moe_conversion *c, const char *dir, const char *name,
	unsigned flags, struct moe_output **o)
{
	char *path;
	int rc;

	if (asprintf(&path, "%s/%s", dir, name) < 0)
		return moe_error_set(&c->err, MOE_ENOMEM, "out of memory");
	rc = moe_output_open(o, path, flags);
	if (rc != 0)
		moe_error_set(&c->err, rc, "%s: %s", path, *o ? moe_output_errstr(*o)
			: "out of memory");
	free(path);
	return rc;
}

static int write_json(struct moe_conversion *c, const char *dir, const char *name,
	json_t *j, unsigned flags)
{
	struct moe_output *o = NULL;
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	int rc = s ? write_file(c, dir, name, flags, &o) : MOE_ENOMEM;

	if (rc == 0 && ((rc = moe_output_write(o, s, strlen(s))) != 0 ||
	    (rc = moe_output_write(o, "\n", 1)) != 0 || (rc = moe_output_commit(o)) != 0))
		moe_error_set(&c->err, rc, "%s: %s", name, moe_output_errstr(o));
	moe_output_free(o);
	free(s);
	return rc;
}

/* The JSON files of a model directory, after its tensors. */
static int write_side_files(struct moe_conversion *c, const char *dir, unsigned flags)
{
	int rc = write_json(c, dir, "config.json", c->config, flags);

	if (rc == 0 && c->tok_out)
		rc = write_json(c, dir, "tokenizer.json", c->tok_out, flags);
	if (rc == 0 && c->tokcfg_out)
		rc = write_json(c, dir, "tokenizer_config.json", c->tokcfg_out, flags);
	return rc;
}

int moe_convert_write_dir(struct moe_conversion *c, const char *dir,
	uint64_t max_shard, unsigned flags)
{
	struct moe_output *o = NULL;
	int rc;

	if (c->dst_gguf)
		return moe_error_set(&c->err, MOE_EINVAL, "a directory holds safetensors, not GGUF");
	if (c->config == NULL)
		return moe_error_set(&c->err, MOE_EUNSUP, "no config.json can be written for "
			"this input (unknown family); write one safetensors file instead");
	if (mkdir(dir, 0777) != 0 && errno != EEXIST)
		return moe_error_set(&c->err, MOE_EIO, "%s: %s", dir, strerror(errno));
	if (max_shard > 0) {
		rc = write_shards(c, dir, max_shard, flags);
	} else if ((rc = write_file(c, dir, "model.safetensors", flags, &o)) == 0 &&
	           (rc = write_st(c, o)) == 0 && (rc = moe_output_commit(o)) != 0) {
		moe_error_set(&c->err, rc, "model.safetensors: %s", moe_output_errstr(o));
	}
	moe_output_free(o);
	return rc ? rc : write_side_files(c, dir, flags);
}
