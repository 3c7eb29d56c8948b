/* Weight-matrix x activation products for every weight type, split over rows across the thread pool. */
#include <string.h>

#include "fpconv.h"
#include "infer_impl.h"
#include "quant.h"

/*
 * Like llama.cpp, activations are brought to the weight's "vec_dot type"
 * once per call: Q8_0/Q8_1/Q8_K blocks for quantized weights (x86 runtime
 * quantizers), F16/BF16-rounded values for F16/BF16 weights, untouched for
 * F32. Each worker then takes a slice of the weight rows and runs every
 * token against each row while it is in cache, so a matrix is read once
 * per call whatever the batch size.
 */

struct job {
	struct moe_infer *s;
	const struct moe_mat *w;
	uint32_t e, n;
	const float *x;      /* (n, cols) F32 activations */
	const uint8_t *a;    /* (n, a_row) converted activations */
	size_t a_row;
	float *y;            /* (n, rows) */
};

/* Eight partial sums so the compiler can keep vector lanes busy. */
static float dot_f32(const float *a, const float *b, uint32_t n)
{
	float acc[8] = { 0 };
	uint32_t i = 0;

	for (; i + 8 <= n; i += 8)
		for (int j = 0; j < 8; j++)
			acc[j] += a[i + j] * b[i + j];
	for (; i < n; i++)
		acc[0] += a[i] * b[i];
	return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static void run_f32(void *ctx, int ith, int nth)
{
	struct job *j = ctx;
	const struct moe_mat *w = j->w;
	long lo, hi;

	moe_pool_split(w->rows, ith, nth, &lo, &hi);
	for (long r = lo; r < hi; r++) {
		const float *row = moe_mat_row(w, j->e, (uint32_t)r);

		for (uint32_t t = 0; t < j->n; t++)
			j->y[(size_t)t * w->rows + r] = dot_f32(row, j->x + (size_t)t * w->cols, w->cols);
	}
}

/* F16/BF16: widen each weight row once, against activations rounded to
 * the same type (stored as floats in j->a). */
static void run_half(void *ctx, int ith, int nth)
{
	struct job *j = ctx;
	const struct moe_mat *w = j->w;
	float *row = j->s->scratch + (size_t)ith * j->s->scratch_n;
	const float *a = (const float *)j->a;
	long lo, hi;

	moe_pool_split(w->rows, ith, nth, &lo, &hi);
	for (long r = lo; r < hi; r++) {
		(void)moe_cast(MOE_DT_F32, row, w->dt, moe_mat_row(w, j->e, (uint32_t)r), w->cols);
		for (uint32_t t = 0; t < j->n; t++)
			j->y[(size_t)t * w->rows + r] = dot_f32(row, a + (size_t)t * w->cols, w->cols);
	}
}

static void run_quant(void *ctx, int ith, int nth)
{
	struct job *j = ctx;
	const struct moe_mat *w = j->w;
	long lo, hi;

	moe_pool_split(w->rows, ith, nth, &lo, &hi);
	for (long r = lo; r < hi; r++) {
		const void *row = moe_mat_row(w, j->e, (uint32_t)r);

		for (uint32_t t = 0; t < j->n; t++)
			(void)moe_vec_dot(w->dt, w->cols, row, j->a + (size_t)t * j->a_row,
				&j->y[(size_t)t * w->rows + r]);
	}
}

void moe_matmul(struct moe_infer *s, const struct moe_mat *w, uint32_t e,
	const float *x, uint32_t n, float *y)
{
	struct job j = { s, w, e, n, x, NULL, 0, y };

	if (w->dt == MOE_DT_F32) {
		moe_pool_run(s->pool, run_f32, &j);
		return;
	}
	if (w->dt == MOE_DT_F16 || w->dt == MOE_DT_BF16) {
		float *a = (float *)s->act;
		uint16_t hbits;

		for (size_t i = 0; i < (size_t)n * w->cols; i++) {
			(void)moe_cast(w->dt, &hbits, MOE_DT_F32, &x[i], 1);
			(void)moe_cast(MOE_DT_F32, &a[i], w->dt, &hbits, 1);
		}
		j.a = s->act;
		moe_pool_run(s->pool, run_half, &j);
		return;
	}
	{
		enum moe_dtype at = moe_vec_dot_type(w->dt);
		uint64_t nb = 0;

		(void)moe_dtype_nbytes(at, w->cols, &nb);
		j.a_row = (size_t)nb;
		for (uint32_t t = 0; t < n; t++)
			(void)moe_quantize_row_act(at, x + (size_t)t * w->cols, s->act + t * j.a_row, w->cols);
		j.a = s->act;
		moe_pool_run(s->pool, run_quant, &j);
	}
}
