/* Weight-matrix x activation products for every weight type, split over rows across the thread pool. */
#include <string.h>

#include "fpconv.h"
#include "infer_impl.h"
#include "quant.h"

/*
 * Like llama.cpp, activations are brought to the weight's "vec_dot type"
 * once per call: Q8_0/Q8_1/Q8_K blocks for quantized weights (x86 runtime
 * quantizers), F16/BF16-rounded values for F16/BF16 weights, untouched for
 * F32. Each worker then takes a slice of the weight rows and runs up to
 * TB tokens against each row while it is in registers or L1, so a matrix is
 * read from memory once per call whatever the batch size.
 *
 * The Q4_0 and Q8_0 kernels here sum blocks in the same order, with the
 * same float operations, as moe_vec_dot (lib/quant_dot.c), so results do not
 * depend on the kernel; other block types call moe_vec_dot directly. On
 * x86-64 the hot kernels are also built for AVX2 and picked at run time.
 */

#define TB 4   /* tokens per pass over a weight row */


#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_ADDRESS__)
#define HOT __attribute__((target_clones("avx2", "default")))
#else
#define HOT
#endif

typedef float v8f __attribute__((vector_size(32)));
typedef uint16_t v8u16 __attribute__((vector_size(16)));
typedef uint32_t v8u32 __attribute__((vector_size(32)));
typedef int8_t v16i8 __attribute__((vector_size(16)));
typedef uint8_t v16u8 __attribute__((vector_size(16)));
typedef int16_t v16i16 __attribute__((vector_size(32)));
typedef int16_t v8i16 __attribute__((vector_size(16)));
typedef int32_t v8i32 __attribute__((vector_size(32)));

struct job {
	struct moe_infer *s;
	const struct moe_mat *w;
	uint32_t e, n;
	const float *x;      /* (n, cols) F32 activations (or F16/BF16-rounded) */
	const uint8_t *a;    /* (n, a_row) quantized activations */
	size_t a_row;
	float *y;            /* (n, rows) */
};

/* out[t] = row . x[t] for nt <= TB tokens of x, ld floats apart: eight
 * lanes, then pairwise sums. */
HOT static void dot_f32(const float *row, const float *x, size_t ld, uint32_t nt,
	uint32_t n, float *out)
{
	v8f acc[TB] = { { 0 } };
	float tail[TB] = { 0 };
	uint32_t i = 0;

	for (; i + 8 <= n; i += 8) {
		v8f w;

		memcpy(&w, row + i, sizeof w);
		for (uint32_t t = 0; t < nt; t++) {
			v8f v;

			memcpy(&v, x + t * ld + i, sizeof v);
			acc[t] += w * v;
		}
	}
	for (; i < n; i++)
		for (uint32_t t = 0; t < nt; t++)
			tail[t] += row[i] * x[t * ld + i];
	for (uint32_t t = 0; t < nt; t++)
		out[t] = ((acc[t][0] + acc[t][1]) + (acc[t][2] + acc[t][3])) +
			((acc[t][4] + acc[t][5]) + (acc[t][6] + acc[t][7])) + tail[t];
}

/* dot_f32 for a BF16 row, widened eight values at a time (exact). */
HOT static void dot_bf16(const uint16_t *row, const float *x, size_t ld, uint32_t nt,
	uint32_t n, float *out)
{
	v8f acc[TB] = { { 0 } };
	float tail[TB] = { 0 };
	uint32_t i = 0;

	for (; i + 8 <= n; i += 8) {
		v8u16 h;
		v8u32 u;
		v8f w;

		memcpy(&h, row + i, sizeof h);
		u = __builtin_convertvector(h, v8u32) << 16;
		memcpy(&w, &u, sizeof w);
		for (uint32_t t = 0; t < nt; t++) {
			v8f v;

			memcpy(&v, x + t * ld + i, sizeof v);
			acc[t] += w * v;
		}
	}
	for (; i < n; i++) {
		float w = moe_bf16_to_f32(row[i]);

		for (uint32_t t = 0; t < nt; t++)
			tail[t] += w * x[t * ld + i];
	}
	for (uint32_t t = 0; t < nt; t++)
		out[t] = ((acc[t][0] + acc[t][1]) + (acc[t][2] + acc[t][3])) +
			((acc[t][4] + acc[t][5]) + (acc[t][6] + acc[t][7])) + tail[t];
}

/* One F16 weight row widened to F32 in buf through the state's table. */
static const float *widen_row(const struct moe_infer *s, const struct moe_mat *w,
	const void *src, float *buf)
{
	const uint16_t *h = src;

	for (uint32_t i = 0; i < w->cols; i++)
		buf[i] = s->f16tab[h[i]];
	return buf;
}

static void run_float(void *ctx, int ith, int nth)
{
	struct job *j = ctx;
	const struct moe_mat *w = j->w;
	float *buf = j->s->scratch + (size_t)ith * j->s->scratch_n, out[TB];
	long lo, hi;

	moe_pool_split(w->rows, ith, nth, &lo, &hi);
	for (long r = lo; r < hi; r++) {
		const void *src = moe_mat_row(w, j->e, (uint32_t)r);
		const float *row = w->dt == MOE_DT_F16 ? widen_row(j->s, w, src, buf) : src;

		for (uint32_t t = 0; t < j->n; t += TB) {
			uint32_t nt = j->n - t < TB ? j->n - t : TB;

			if (w->dt == MOE_DT_BF16)
				dot_bf16(src, j->x + (size_t)t * w->cols, w->cols, nt, w->cols, out);
			else
				dot_f32(row, j->x + (size_t)t * w->cols, w->cols, nt, w->cols, out);
			for (uint32_t k = 0; k < nt; k++)
				j->y[(size_t)(t + k) * w->rows + r] = out[k];
		}
	}
}

/* Sum of the 32 products of a weight block (two halves of 16 signed
 * quants) and an activation block. Products of int8 values fit int16 in
 * pairs (|w| <= 128, |y| <= 127 from the activation quantizer), so each
 * half-sum of two products is exact in int16 before widening. */
static inline int isum32(v16i8 w0, v16i8 w1, const uint8_t *y)
{
	v16i8 y0, y1;
	v16i16 p;
	int16_t h[16];
	v8i32 lo, hi, sum;
	v8i16 a, b;

	memcpy(&y0, y, sizeof y0);
	memcpy(&y1, y + 16, sizeof y1);
	p = __builtin_convertvector(w0, v16i16) * __builtin_convertvector(y0, v16i16) +
		__builtin_convertvector(w1, v16i16) * __builtin_convertvector(y1, v16i16);
	memcpy(h, &p, sizeof h);
	memcpy(&a, h, sizeof a);
	memcpy(&b, h + 8, sizeof b);
	lo = __builtin_convertvector(a, v8i32);
	hi = __builtin_convertvector(b, v8i32);
	sum = lo + hi;
	return ((sum[0] + sum[1]) + (sum[2] + sum[3])) + ((sum[4] + sum[5]) + (sum[6] + sum[7]));
}

/* Q4_0 / Q8_0 rows against nt Q8_0 activation rows (a_row bytes apart):
 * per block, the weight quants are unpacked once for all tokens. */
HOT static void dot_q8act(const struct moe_infer *s, enum moe_dtype dt, const uint8_t *row,
	const uint8_t *a, size_t a_row, uint32_t nt, uint32_t n, float *out)
{
	const float *tab = s->f16tab;
	size_t wb = dt == MOE_DT_Q4_0 ? 18 : 34;
	float acc[TB] = { 0 };

	for (uint32_t b = 0; b < n / 32; b++, row += wb) {
		float dx = tab[row[0] | row[1] << 8];
		v16i8 w0, w1;

		if (dt == MOE_DT_Q4_0) {
			v16u8 q;

			memcpy(&q, row + 2, sizeof q);
			w0 = (v16i8)(q & 0x0f) - 8;
			w1 = (v16i8)(q >> 4) - 8;
		} else {
			memcpy(&w0, row + 2, sizeof w0);
			memcpy(&w1, row + 18, sizeof w1);
		}
		for (uint32_t t = 0; t < nt; t++) {
			const uint8_t *y = a + t * a_row + (size_t)b * 34;
			float dy = tab[y[0] | y[1] << 8];
			int is = isum32(w0, w1, y + 2);

			/* the float steps of moe_vec_dot's kernels, in their order */
			if (dt == MOE_DT_Q4_0)
				acc[t] += (float)is * dx * dy;
			else
				acc[t] += (float)is * (dx * dy);
		}
	}
	for (uint32_t t = 0; t < nt; t++)
		out[t] = acc[t];
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX2_KERNEL 1

/* dot_q8act with AVX2 integer instructions: the same integer block sums
 * (|w| <= 128 and |y| <= 127 keep maddubs' int16 pair sums exact), then
 * the same float steps block by block. */
__attribute__((target("avx2"))) static void dot_q8act_avx2(const struct moe_infer *s,
	enum moe_dtype dt, const uint8_t *row, const uint8_t *a, size_t a_row, uint32_t nt,
	uint32_t n, float *out)
{
	const float *tab = s->f16tab;
	const __m256i ones = _mm256_set1_epi16(1), low = _mm256_set1_epi8(0x0f), eight = _mm256_set1_epi8(8);
	size_t wb = dt == MOE_DT_Q4_0 ? 18 : 34;
	float acc[TB] = { 0 };

	for (uint32_t b = 0; b < n / 32; b++, row += wb) {
		float dx = tab[row[0] | row[1] << 8];
		__m256i w, aw;

		if (dt == MOE_DT_Q4_0) {
			__m128i q = _mm_loadu_si128((const __m128i *)(row + 2));
			__m256i qq = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);

			w = _mm256_sub_epi8(_mm256_and_si256(qq, low), eight);
		} else
			w = _mm256_loadu_si256((const __m256i *)(row + 2));
		aw = _mm256_sign_epi8(w, w);
		for (uint32_t t = 0; t < nt; t++) {
			const uint8_t *y = a + t * a_row + (size_t)b * 34;
			__m256i yv = _mm256_loadu_si256((const __m256i *)(y + 2));
			__m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(yv, w)), ones);
			__m128i h = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
			float dy = tab[y[0] | y[1] << 8];
			int is;

			h = _mm_hadd_epi32(h, h);
			h = _mm_hadd_epi32(h, h);
			is = _mm_cvtsi128_si32(h);
			if (dt == MOE_DT_Q4_0)
				acc[t] += (float)is * dx * dy;
			else
				acc[t] += (float)is * (dx * dy);
		}
	}
	for (uint32_t t = 0; t < nt; t++)
		out[t] = acc[t];
}
#endif

#ifdef HAVE_AVX2_KERNEL
#define dot_q8act_x86 dot_q8act_avx2
#else
#define dot_q8act_x86 dot_q8act
#endif

static void run_quant(void *ctx, int ith, int nth)
{
	struct job *j = ctx;
	const struct moe_mat *w = j->w;
	int fast = w->dt == MOE_DT_Q4_0 || w->dt == MOE_DT_Q8_0;
	float out[TB];
	long lo, hi;

	moe_pool_split(w->rows, ith, nth, &lo, &hi);
	for (long r = lo; r < hi; r++) {
		const void *row = moe_mat_row(w, j->e, (uint32_t)r);

		for (uint32_t t = 0; t < j->n; t += TB) {
			uint32_t nt = j->n - t < TB ? j->n - t : TB;
			const uint8_t *a = j->a + (size_t)t * j->a_row;

			if (fast && j->s->avx2)
				dot_q8act_x86(j->s, w->dt, row, a, j->a_row, nt, w->cols, out);
			else if (fast)
				dot_q8act(j->s, w->dt, row, a, j->a_row, nt, w->cols, out);
			else
				for (uint32_t k = 0; k < nt; k++)
					(void)moe_vec_dot(w->dt, w->cols, row, a + k * j->a_row, &out[k]);
			for (uint32_t k = 0; k < nt; k++)
				j->y[(size_t)(t + k) * w->rows + r] = out[k];
		}
	}
}

void moe_matmul(struct moe_infer *s, const struct moe_mat *w, uint32_t e,
	const float *x, uint32_t n, float *y)
{
	struct job j = { s, w, e, n, x, NULL, 0, y };

	if (w->dt == MOE_DT_F32) {
		moe_pool_run_sized(s->pool, run_float, &j, (double)n * w->rows * w->cols);
		return;
	}
	if (w->dt == MOE_DT_F16 || w->dt == MOE_DT_BF16) {
		/* llama.cpp rounds the activations to the weight type first */
		float *a = (float *)s->act;
		size_t nv = (size_t)n * w->cols;

		for (size_t i = 0; i < nv; i++)
			a[i] = w->dt == MOE_DT_BF16 ? moe_bf16_to_f32(moe_f32_to_bf16(x[i]))
				: s->f16tab[moe_f32_to_f16(x[i])];
		j.x = a;
		moe_pool_run_sized(s->pool, run_float, &j, (double)n * w->rows * w->cols);
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
		moe_pool_run_sized(s->pool, run_quant, &j, (double)n * w->rows * w->cols);
	}
}
