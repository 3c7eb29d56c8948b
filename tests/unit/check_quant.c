/* Tests of the quantizers: hand-checked blocks, error bounds, dot products, and byte-exact ggml reference vectors. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "dtype.h"
#include "error.h"
#include "fpconv.h"
#include "quant.h"
#include "testutil.h"

/* The 16 types of $MOE_TEST_SHARED/ref/quant, with ggml's block geometry
 * (ref/README.md section 3) plus MXFP4 (ggml-common.h: 32 values, 17 B). */
static const struct {
	const char *name;
	uint32_t block, bytes;
} TYPES[] = {
	{ "Q4_0", 32, 18 }, { "Q4_1", 32, 20 }, { "Q5_0", 32, 22 },
	{ "Q5_1", 32, 24 }, { "Q8_0", 32, 34 }, { "Q2_K", 256, 84 },
	{ "Q3_K", 256, 110 }, { "Q4_K", 256, 144 }, { "Q5_K", 256, 176 },
	{ "Q6_K", 256, 210 }, { "IQ4_NL", 32, 18 }, { "IQ4_XS", 256, 136 },
	{ "TQ1_0", 256, 54 }, { "TQ2_0", 256, 66 }, { "BF16", 1, 2 },
	{ "F16", 1, 2 }, { "MXFP4", 32, 17 },
};
#define NTYPES (sizeof TYPES / sizeof TYPES[0])
#define NREF 16  /* the first NREF have reference vectors */

static uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* Deterministic pseudo-random normal(0, 1) values (splitmix64 + Box-Muller). */
static uint64_t rng_state;
static double uniform01(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return ((double)(z >> 11) + 0.5) / 9007199254740992.0;
}

static float gauss(void)
{
	return (float)(sqrt(-2 * log(uniform01())) * cos(6.283185307179586 * uniform01()));
}

static uint8_t *quantize(enum moe_dtype t, const float *x, int64_t rows, int64_t n)
{
	uint64_t nbytes;
	uint8_t *q;

	ck_assert_int_eq(moe_dtype_nbytes(t, (uint64_t)(rows * n), &nbytes), 0);
	q = malloc(nbytes + 1);
	ck_assert_ptr_nonnull(q);
	ck_assert_int_eq(moe_quantize_rows(t, x, q, rows, n), 0);
	return q;
}

static float f16le(const uint8_t *p) { return moe_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

START_TEST(block_geometry_matches_dtype_table)
{
	for (size_t i = 0; i < NTYPES; i++) {
		enum moe_dtype t = moe_dtype_from_name(TYPES[i].name);

		ck_assert_msg(moe_quant_supported(t), "%s", TYPES[i].name);
		ck_assert_uint_eq(moe_dtype_block_size(t), TYPES[i].block);
		ck_assert_uint_eq(moe_dtype_block_bytes(t), TYPES[i].bytes);
	}
	ck_assert(moe_dequant_supported(MOE_DT_Q8_K));
	ck_assert(!moe_quant_supported(MOE_DT_Q8_K));
}
END_TEST

START_TEST(bad_arguments_are_refused)
{
	float x[64] = { 0 };
	uint8_t q[256];

	ck_assert_int_eq(moe_quantize_rows(MOE_DT_IQ2_XXS, x, q, 1, 256), MOE_EUNSUP);
	ck_assert_int_eq(moe_quantize_rows(MOE_DT_I32, x, q, 1, 4), MOE_EUNSUP);
	ck_assert_int_eq(moe_quantize_rows(MOE_DT_Q8_0, x, q, 1, 33), MOE_ERANGE);
	ck_assert_int_eq(moe_quantize_rows(MOE_DT_Q4_K, x, q, 1, 64), MOE_ERANGE);
	ck_assert_int_eq(moe_quantize_rows(MOE_DT_Q8_0, x, q, -1, 32), MOE_EINVAL);
	ck_assert_int_eq(moe_dequantize_row(MOE_DT_Q4_0, q, x, 48), MOE_ERANGE);
	ck_assert_int_eq(moe_dequantize_row(MOE_DT_IQ1_S, q, x, 256), MOE_EUNSUP);
	ck_assert_int_eq(moe_quantize_row_q8_0_act(x, q, 31), MOE_ERANGE);
	ck_assert_int_eq(moe_vec_dot(MOE_DT_TQ2_0, 256, q, q, x), MOE_EUNSUP);
	/* zero rows is a valid, empty job */
	ck_assert_int_eq(moe_quantize_rows(MOE_DT_Q8_0, x, q, 0, 32), 0);
}
END_TEST

START_TEST(zeros_stay_exact_zeros)
{
	float x[512] = { 0 }, y[512];

	for (size_t i = 0; i < NTYPES; i++) {
		enum moe_dtype t = moe_dtype_from_name(TYPES[i].name);
		uint8_t *q = quantize(t, x, 2, 256);

		ck_assert_int_eq(moe_dequantize_row(t, q, y, 512), 0);
		for (int j = 0; j < 512; j++)
			ck_assert_msg(y[j] == 0.0f, "%s [%d] = %g", TYPES[i].name, j, y[j]);
		free(q);
	}
}
END_TEST

/* Q8_0 of a constant block: d = c / 127, every quant 127, and back. */
START_TEST(q8_0_constant_and_outlier)
{
	float x[32], y[32];
	uint8_t q[34];

	for (int j = 0; j < 32; j++)
		x[j] = 1.0f;
	ck_assert_int_eq(moe_quantize_rows(MOE_DT_Q8_0, x, q, 1, 32), 0);
	ck_assert_uint_eq(q[0] | q[1] << 8, moe_f32_to_f16(1.0f / 127));
	for (int j = 0; j < 32; j++)
		ck_assert_int_eq((int8_t)q[2 + j], 127);
	/* one outlier: the others (0.5) become round(0.5 * 127 / 100) = 1 */
	for (int j = 0; j < 32; j++)
		x[j] = 0.5f;
	x[7] = -100.0f;
	ck_assert_int_eq(moe_quantize_rows(MOE_DT_Q8_0, x, q, 1, 32), 0);
	ck_assert_int_eq((int8_t)q[2 + 7], -127);
	ck_assert_int_eq((int8_t)q[2 + 0], 1);
	ck_assert_int_eq(moe_dequantize_row(MOE_DT_Q8_0, q, y, 32), 0);
	ck_assert(fabsf(y[7] + 100.0f) <= 100.0f * 0x1p-11f);
}
END_TEST

/* With amax = 127, d = 1: the reference quantizer rounds halves away from
 * zero, llama.cpp's runtime activation quantizer to even. */
START_TEST(q8_0_half_steps_reference_vs_runtime)
{
	float x[32] = { 127.0f, 2.5f, -2.5f, 3.5f, 0.5f, -0.5f, 1.5f };
	uint8_t r[34], a[34];
	const int want_ref[7] = { 127, 3, -3, 4, 1, -1, 2 };
	const int want_act[7] = { 127, 2, -2, 4, 0, 0, 2 };

	ck_assert_int_eq(moe_quantize_rows(MOE_DT_Q8_0, x, r, 1, 32), 0);
	ck_assert_int_eq(moe_quantize_row_q8_0_act(x, a, 32), 0);
	ck_assert_uint_eq(r[0] | r[1] << 8, 0x3c00);  /* d = 1.0 */
	ck_assert_uint_eq(a[0] | a[1] << 8, 0x3c00);
	for (int j = 0; j < 7; j++) {
		ck_assert_int_eq((int8_t)r[2 + j], want_ref[j]);
		ck_assert_int_eq((int8_t)a[2 + j], want_act[j]);
	}
}
END_TEST

/* Q4_0 puts the signed absmax on level -8: constant 1.0 gives d = -1/8
 * and quant 0 everywhere; a negative-only block keeps its extreme exact. */
START_TEST(q4_0_constant_and_negative_only)
{
	float x[32], y[32];
	uint8_t q[18];

	for (int j = 0; j < 32; j++)
		x[j] = 1.0f;
	ck_assert_int_eq(moe_quantize_rows(MOE_DT_Q4_0, x, q, 1, 32), 0);
	ck_assert_uint_eq(q[0] | q[1] << 8, 0xb000);  /* -0.125 */
	for (int j = 0; j < 16; j++)
		ck_assert_uint_eq(q[2 + j], 0);
	ck_assert_int_eq(moe_dequantize_row(MOE_DT_Q4_0, q, y, 32), 0);
	for (int j = 0; j < 32; j++)
		ck_assert(y[j] == 1.0f);
	for (int j = 0; j < 32; j++)
		x[j] = -(float)(j % 9);  /* 0 .. -8: exactly the levels with d = 1 */
	ck_assert_int_eq(moe_quantize_rows(MOE_DT_Q4_0, x, q, 1, 32), 0);
	ck_assert_int_eq(moe_dequantize_row(MOE_DT_Q4_0, q, y, 32), 0);
	for (int j = 0; j < 32; j++)
		ck_assert_msg(y[j] == x[j], "[%d] %g != %g", j, y[j], x[j]);
}
END_TEST

/* Q4_1 of 0, 1, ..., 15 (twice) is exact: min 0, d = 1. */
START_TEST(q4_1_and_q5_1_exact_ramps)
{
	float x[32], y[32];
	uint8_t q[24];

	for (int j = 0; j < 32; j++)
		x[j] = (float)(j % 16) - 3.0f;
	ck_assert_int_eq(moe_quantize_rows(MOE_DT_Q4_1, x, q, 1, 32), 0);
	ck_assert(f16le(q) == 1.0f && f16le(q + 2) == -3.0f);
	ck_assert_int_eq(moe_dequantize_row(MOE_DT_Q4_1, q, y, 32), 0);
	for (int j = 0; j < 32; j++)
		ck_assert(y[j] == x[j]);
	for (int j = 0; j < 32; j++)
		x[j] = (float)j * 0.5f;
	ck_assert_int_eq(moe_quantize_rows(MOE_DT_Q5_1, x, q, 1, 32), 0);
	ck_assert_int_eq(moe_dequantize_row(MOE_DT_Q5_1, q, y, 32), 0);
	for (int j = 0; j < 32; j++)
		ck_assert(y[j] == x[j]);
}
END_TEST

/* MXFP4 by hand: amax 6 gives e = floor(log2 6) - 2 + 127 = 127 (scale 1),
 * E2M1 codes 0..7 = 0, .5, 1, 1.5, 2, 3, 4, 6, bit 3 = sign; ties go to
 * the smaller magnitude; element j is the low nibble of byte j, element
 * j + 16 the high nibble. */
START_TEST(mxfp4_known_answers)
{
	float x[32] = { 6, 3, 1.5f, -0.5f, 0, 5, 2.5f, -5, 0.25f, -7, 1.25f };
	const int code[11] = { 7, 5, 3, 9, 0, 6, 4, 14, 0, 15, 2 };
	const float back[11] = { 6, 3, 1.5f, -0.5f, 0, 4, 2, -4, 0, -6, 1 };
	uint8_t q[17];
	float y[32];

	x[16] = -6;
	x[17] = 0.75f;
	ck_assert_int_eq(moe_quantize_rows(MOE_DT_MXFP4, x, q, 1, 32), 0);
	ck_assert_uint_eq(q[0], 127);
	for (int j = 0; j < 11; j++)
		ck_assert_msg((q[1 + j] & 0xf) == code[j], "[%d] %d", j, q[1 + j] & 0xf);
	ck_assert_uint_eq(q[1 + 0] >> 4, 15);  /* -6 */
	ck_assert_uint_eq(q[1 + 1] >> 4, 1);   /* 0.75: tie of 0.5 and 1 */
	ck_assert_int_eq(moe_dequantize_row(MOE_DT_MXFP4, q, y, 32), 0);
	for (int j = 0; j < 11; j++)
		ck_assert_msg(y[j] == back[j], "[%d] %g", j, y[j]);
	ck_assert(y[16] == -6 && y[17] == 0.5f);
	/* amax 8 -> e = 128 (scale 2): 8 is the code for 4 x 2 */
	for (int j = 0; j < 32; j++)
		x[j] = j == 5 ? -8.0f : 1.0f;
	ck_assert_int_eq(moe_quantize_rows(MOE_DT_MXFP4, x, q, 1, 32), 0);
	ck_assert_uint_eq(q[0], 128);
	ck_assert_uint_eq(q[1 + 5] & 0xf, 14);
	ck_assert_uint_eq(q[1 + 0] & 0xf, 1);  /* 1.0 = 0.5 x 2 */
	/* power-of-two boundaries: amax 4 -> e = 127, amax 3.5 -> e = 126 */
	x[5] = -4.0f;
	ck_assert_int_eq(moe_quantize_rows(MOE_DT_MXFP4, x, q, 1, 32), 0);
	ck_assert_uint_eq(q[0], 127);
	x[5] = 3.5f;
	ck_assert_int_eq(moe_quantize_rows(MOE_DT_MXFP4, x, q, 1, 32), 0);
	ck_assert_uint_eq(q[0], 126);
}
END_TEST

/* TQ2_0 / TQ1_0 of {+d, -d, 0, ...}: trits 2, 0, 1 in their packings. */
START_TEST(ternary_known_answers)
{
	float x[256] = { 0 }, y[256];
	uint8_t q[66];

	x[0] = 2.0f;
	x[32] = -2.0f;
	x[1] = 1.1f;   /* 0.55 rounds to +1 */
	x[2] = -0.9f;  /* rounds to 0 */
	ck_assert_int_eq(moe_quantize_rows(MOE_DT_TQ2_0, x, q, 1, 256), 0);
	ck_assert_uint_eq(q[0], 2 | 0 << 2 | 1 << 4 | 1 << 6);
	ck_assert_uint_eq(q[1], 2 | 1 << 2 | 1 << 4 | 1 << 6);
	ck_assert_uint_eq(q[2], 1 | 1 << 2 | 1 << 4 | 1 << 6);
	ck_assert(f16le(q + 64) == 2.0f);
	ck_assert_int_eq(moe_quantize_rows(MOE_DT_TQ1_0, x, q, 1, 256), 0);
	/* byte 0 digits (x[0], x[32], x[64], x[96], x[128]) = 2,0,1,1,1:
	 * n = 2*81 + 0*27 + 9 + 3 + 1 = 175, stored ceil(175 * 256 / 243) */
	ck_assert_uint_eq(q[0], (175 * 256 + 242) / 243);
	ck_assert_int_eq(moe_dequantize_row(MOE_DT_TQ1_0, q, y, 256), 0);
	ck_assert(y[0] == 2.0f && y[32] == -2.0f && y[1] == 2.0f && y[2] == 0.0f);
	for (int j = 3; j < 256; j++)
		if (j != 32)
			ck_assert(y[j] == 0.0f);
}
END_TEST

/* NaN, infinities, huge and subnormal inputs must not trip undefined
 * behaviour (run under -fsanitize=undefined,float-cast-overflow), and
 * blocks without them stay finite: values 512..767 are clean. */
START_TEST(non_finite_inputs_are_safe)
{
	enum { N = 768 };
	float x[N], y[N];

	for (int j = 0; j < N; j++)
		x[j] = (float)(j % 7) - 3.0f;
	x[3] = NAN;
	x[40] = INFINITY;
	x[300] = -INFINITY;
	x[301] = FLT_MAX;
	x[302] = -FLT_MAX;
	x[500] = 1e-45f;
	for (size_t i = 0; i < NTYPES; i++) {
		enum moe_dtype t = moe_dtype_from_name(TYPES[i].name);
		uint8_t *q = quantize(t, x, 1, N), a[1024];
		float dot;

		ck_assert_int_eq(moe_dequantize_row(t, q, y, N), 0);
		for (int j = 512; j < N; j++)
			ck_assert_msg(isfinite(y[j]), "%s [%d]", TYPES[i].name, j);
		if (moe_vec_dot_type(t) != MOE_DT_INVALID) {
			ck_assert_int_eq(moe_quantize_row_act(moe_vec_dot_type(t), x, a, N), 0);
			ck_assert_int_eq(moe_vec_dot(t, N, q, a, &dot), 0);
		}
		free(q);
	}
}
END_TEST

/* dequantize(quantize(x)) against per-type error bounds on normal data. */
static double rel_rmse(enum moe_dtype t, const float *x, int64_t n, float *y)
{
	uint8_t *q = quantize(t, x, 1, n);
	double se = 0, sx = 0;

	ck_assert_int_eq(moe_dequantize_row(t, q, y, n), 0);
	for (int64_t i = 0; i < n; i++) {
		se += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
		sx += (double)x[i] * x[i];
	}
	free(q);
	return sqrt(se / sx);
}

START_TEST(relative_rmse_bounds)
{
	/* measured on this data x 1.25 (MOE_TEST_VERBOSE=1 prints them); a
	 * broken kernel lands far above. Ternary types are meant for
	 * ternary weights, so normal data fits them badly. */
	static const struct { const char *name; double max; } B[] = {
		{ "Q8_0", 0.0066 }, { "Q5_0", 0.053 }, { "Q5_1", 0.046 },
		{ "Q4_0", 0.105 }, { "Q4_1", 0.096 }, { "IQ4_NL", 0.094 },
		{ "IQ4_XS", 0.095 }, { "Q6_K", 0.022 }, { "Q5_K", 0.044 },
		{ "Q4_K", 0.087 }, { "Q3_K", 0.19 }, { "Q2_K", 0.36 },
		{ "MXFP4", 0.14 }, { "BF16", 0.0021 }, { "F16", 0.00026 },
		{ "TQ2_0", 0.85 }, { "TQ1_0", 0.85 },
	};
	enum { N = 8192 };
	float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);

	rng_state = 42;
	for (int i = 0; i < N; i++)
		x[i] = gauss();
	for (size_t i = 0; i < sizeof B / sizeof B[0]; i++) {
		double e = rel_rmse(moe_dtype_from_name(B[i].name), x, N, y);

		if (getenv("MOE_TEST_VERBOSE"))
			fprintf(stderr, "%s %g\n", B[i].name, e);
		ck_assert_msg(e < B[i].max, "%s: %g", B[i].name, e);
	}
	free(x);
	free(y);
}
END_TEST

/* Per-element bounds for the absmax types: Q8_0 |err| <= d/2, Q4_0 <= d
 * on the clamped side, plus the fp16 rounding of d (relative 2^-11, or
 * 2^-25 absolute in fp16's subnormal range) times the largest quant. */
START_TEST(q8_0_q4_0_elementwise_bounds)
{
	enum { N = 4096 };
	float x[N], y[N];
	uint8_t *q;

	rng_state = 7;
	for (int i = 0; i < N; i++)
		x[i] = gauss() * (float)pow(10.0, (double)(i / 32 % 7) - 3);
	q = quantize(MOE_DT_Q8_0, x, 1, N);
	ck_assert_int_eq(moe_dequantize_row(MOE_DT_Q8_0, q, y, N), 0);
	for (int i = 0; i < N; i++) {
		float d = f16le(q + 34 * (i / 32));

		ck_assert_msg(fabsf(x[i] - y[i]) <= d * (0.5f + 127 * 0x1p-11f) + 127 * 0x1p-25f, "%d", i);
	}
	free(q);
	q = quantize(MOE_DT_Q4_0, x, 1, N);
	ck_assert_int_eq(moe_dequantize_row(MOE_DT_Q4_0, q, y, N), 0);
	for (int i = 0; i < N; i++) {
		float d = fabsf(f16le(q + 18 * (i / 32)));

		ck_assert_msg(fabsf(x[i] - y[i]) <= d * (1.0f + 8 * 0x1p-11f) + 8 * 0x1p-25f, "%d", i);
	}
	free(q);
}
END_TEST

/* Quantized dot products against the same sums done in double over the
 * dequantized rows: the blocks' integer sums are exact, so only float
 * accumulation differs. */
START_TEST(vec_dot_matches_dequantized_dot)
{
	static const enum moe_dtype W[] = {
		MOE_DT_Q4_0, MOE_DT_Q4_1, MOE_DT_Q5_0, MOE_DT_Q5_1, MOE_DT_Q8_0,
		MOE_DT_Q2_K, MOE_DT_Q3_K, MOE_DT_Q4_K, MOE_DT_Q5_K, MOE_DT_Q6_K,
		MOE_DT_IQ4_NL, MOE_DT_IQ4_XS, MOE_DT_MXFP4,
	};
	enum { N = 1024 };
	float w[N], a[N], wd[N], ad[N], got;
	uint8_t wq[2048], aq[2048];

	rng_state = 99;
	for (int i = 0; i < N; i++) {
		w[i] = gauss();
		a[i] = gauss() + 0.3f;
	}
	for (size_t k = 0; k < sizeof W / sizeof W[0]; k++) {
		enum moe_dtype at = moe_vec_dot_type(W[k]);
		double ref = 0, mag = 0;

		ck_assert_int_eq(moe_quantize_rows(W[k], w, wq, 1, N), 0);
		ck_assert_int_eq(moe_quantize_row_act(at, a, aq, N), 0);
		ck_assert_int_eq(moe_dequantize_row(W[k], wq, wd, N), 0);
		ck_assert_int_eq(moe_dequantize_row(at, aq, ad, N), 0);
		for (int i = 0; i < N; i++) {
			ref += (double)wd[i] * ad[i];
			mag += fabs((double)wd[i] * ad[i]);
		}
		ck_assert_int_eq(moe_vec_dot(W[k], N, wq, aq, &got), 0);
		/* Q4_1/Q5_1 use s = fp16(d * sum q) for the min term */
		ck_assert_msg(fabs(got - ref) <= 2e-3 * mag, "%s: %g vs %g",
			moe_dtype_name(W[k]), got, ref);
	}
}
END_TEST

/* Q8_1 activations carry s = fp16(d * sum of quants) for the Q4_1/Q5_1
 * min term; Q8_K keeps d as f32 and 16-value sums of its quants. */
START_TEST(activation_formats_by_hand)
{
	float x[256], y[256];
	uint8_t q[292];
	float d;

	for (int j = 0; j < 256; j++)
		x[j] = j < 32 ? 2.0f : (float)(j % 16) - 8.0f;
	ck_assert_int_eq(moe_quantize_row_act(MOE_DT_Q8_1, x, q, 32), 0);
	d = 2.0f / 127;
	ck_assert_uint_eq(q[0] | q[1] << 8, moe_f32_to_f16(d));
	ck_assert_uint_eq(q[2] | q[3] << 8, moe_f32_to_f16(d * 127 * 32));
	ck_assert_int_eq((int8_t)q[4], 127);
	ck_assert_int_eq(moe_quantize_row_act(MOE_DT_Q8_K, x + 0, q, 256), 0);
	memcpy(&d, q, 4);
	ck_assert(d == 1 / (-127.f / -8.0f));  /* first largest magnitude: -8 */
	ck_assert_int_eq((int8_t)q[4 + 32], -127);  /* x[32] = -8 */
	/* bsums[2] covers x[32..47] = -8..7: quants sum to round(-8 * 127/8) */
	ck_assert_int_eq((int16_t)(q[264] | q[265] << 8), -127);
	ck_assert_int_eq(moe_dequantize_row(MOE_DT_Q8_K, q, y, 256), 0);
	for (int j = 32; j < 256; j++)
		ck_assert(fabsf(y[j] - x[j]) <= 0.5f * d);
	ck_assert_int_eq(moe_quantize_row_act(MOE_DT_Q4_0, x, q, 32), MOE_EUNSUP);
}
END_TEST

/* Q8_0 x Q8_0 by hand: weights 1..32 with d = 1 (amax 127 in the last
 * block element), activations all 2 -> d = 2/127, quants 127. */
START_TEST(vec_dot_q8_0_by_hand)
{
	float w[32], a[32], got;
	uint8_t wq[34], aq[34];
	int isum = 0;

	for (int j = 0; j < 32; j++) {
		w[j] = (float)(j - 16);
		a[j] = 2.0f;
	}
	w[31] = 127.0f;
	ck_assert_int_eq(moe_quantize_rows(MOE_DT_Q8_0, w, wq, 1, 32), 0);
	ck_assert_int_eq(moe_quantize_row_q8_0_act(a, aq, 32), 0);
	for (int j = 0; j < 32; j++)
		isum += (int)w[j] * 127;
	ck_assert_int_eq(moe_vec_dot(MOE_DT_Q8_0, 32, wq, aq, &got), 0);
	ck_assert(bits(got) == bits((float)isum * (1.0f * moe_f16_to_f32(moe_f32_to_f16(2.0f / 127)))));
}
END_TEST

/* ---- byte-exact comparison with ggml's reference vectors ---- */

struct refset {
	struct moe_ckpt *in, *q, *dq;
};

static int open_ref(struct moe_ckpt **ck, const char *dir, const char *file)
{
	char path[4096];
	int rc;

	snprintf(path, sizeof path, "%s/ref/%s", dir, file);
	ck_assert_int_eq(moe_ckpt_new(ck), 0);
	rc = moe_ckpt_open(*ck, path);
	if (rc != 0 && rc != MOE_EUNSUP)
		ck_abort_msg("%s: %s", path, moe_ckpt_errstr(*ck));
	return rc;
}

static void *read_all(struct moe_ckpt *ck, const struct moe_tensor *t)
{
	void *buf = malloc(t->nbytes ? t->nbytes : 1);

	ck_assert_ptr_nonnull(buf);
	ck_assert_msg(moe_ckpt_read(ck, t, 0, buf, t->nbytes) == 0, "%s: %s",
		t->name, moe_ckpt_errstr(ck));
	return buf;
}

/* Compares one input tensor's quantization and dequantization; returns
 * the number of differing bytes + values. */
static long compare_tensor(enum moe_dtype t, struct refset *r,
	const struct moe_tensor *ti)
{
	const struct moe_tensor *tq = moe_ckpt_find(r->q, ti->name);
	const struct moe_tensor *td = moe_ckpt_find(r->dq, ti->name);
	int64_t n = (int64_t)ti->shape[ti->ndim - 1];
	int64_t rows = (int64_t)moe_tensor_numel(ti) / n;
	float *x, *y, *yref;
	uint8_t *qref, *q;
	long bad = 0;

	ck_assert_msg(tq && td, "%s missing in %s", ti->name, moe_dtype_name(t));
	ck_assert_int_eq(tq->dtype, t);
	ck_assert_int_eq(td->dtype, MOE_DT_F32);
	x = read_all(r->in, ti);
	qref = read_all(r->q, tq);
	yref = read_all(r->dq, td);
	q = quantize(t, x, rows, n);
	for (uint64_t b = 0; b < tq->nbytes; b++)
		bad += q[b] != qref[b];
	y = malloc((size_t)(rows * n) * sizeof *y);
	ck_assert_int_eq(moe_dequantize_row(t, qref, y, rows * n), 0);
	for (int64_t i = 0; i < rows * n; i++)
		bad += bits(y[i]) != bits(yref[i]);
	if (bad)
		fprintf(stderr, "%s %s: %ld differences\n", moe_dtype_name(t), ti->name, bad);
	free(x);
	free(qref);
	free(yref);
	free(q);
	free(y);
	return bad;
}

START_TEST(reference_vectors_match_exactly)
{
	const char *dir = moe_test_shared();
	const char *name = TYPES[_i].name;
	enum moe_dtype t = moe_dtype_from_name(name);
	struct refset r = { NULL, NULL, NULL };
	char file[64];
	long bad = 0;
	int ntensors = 0;

	if (!dir)
		return;
	if (open_ref(&r.in, dir, "quant/quant-input.gguf") == MOE_EUNSUP) {
		fprintf(stderr, "note: %s: GGUF reading not available; skipping reference check\n", name);
		moe_ckpt_free(r.in);
		return;
	}
	snprintf(file, sizeof file, "quant/quant-%s.gguf", name);
	ck_assert_int_eq(open_ref(&r.q, dir, file), 0);
	snprintf(file, sizeof file, "quant/dequant-%s.gguf", name);
	ck_assert_int_eq(open_ref(&r.dq, dir, file), 0);
	for (size_t i = 0; i < moe_ckpt_ntensors(r.in); i++) {
		const struct moe_tensor *ti = moe_ckpt_tensor(r.in, i);

		if (ti->dtype != MOE_DT_F32 || ti->ndim < 1 || ti->shape[ti->ndim - 1] == 0)
			continue;
		bad += compare_tensor(t, &r, ti);
		ntensors++;
	}
	ck_assert_int_gt(ntensors, 0);
	if (getenv("MOE_TEST_VERBOSE"))
		fprintf(stderr, "%s: %d tensors, %ld differences\n", name, ntensors, bad);
	ck_assert_msg(bad == 0, "%s: %ld differences", name, bad);
	moe_ckpt_free(r.in);
	moe_ckpt_free(r.q);
	moe_ckpt_free(r.dq);
}
END_TEST

/*
 * llama-quantize --pure made the Q8_0/Q4_0 copies of two reference
 * models; their quantized tensors (3-D expert stacks included, quantized
 * row by row) must equal ours, and ggml's dequantized copies ours.
 */
static const struct { const char *f32, *quant; } MODELS[] = {
	{ "llama-moe-f32", "llama-moe-q8_0" }, { "llama-moe-f32", "llama-moe-q4_0" },
	{ "qwen2moe-f32", "qwen2moe-q8_0" }, { "qwen2moe-f32", "qwen2moe-q4_0" },
};

START_TEST(reference_models_match_exactly)
{
	const char *dir = moe_test_shared();
	struct refset r = { NULL, NULL, NULL };
	char file[128];
	long bad = 0;
	int nq = 0;

	if (!dir)
		return;
	{
		char path[1024];
		snprintf(path, sizeof path, "%s/ref/models/%s.gguf", dir, MODELS[_i].quant);
		if (access(path, R_OK) != 0) {
			fprintf(stderr, "note: %s not in this reference set; skipped\n", path);
			return;
		}
	}
	snprintf(file, sizeof file, "models/%s.gguf", MODELS[_i].f32);
	if (open_ref(&r.in, dir, file) == MOE_EUNSUP) {
		fprintf(stderr, "note: GGUF reading not available; skipping model check\n");
		moe_ckpt_free(r.in);
		return;
	}
	snprintf(file, sizeof file, "models/%s.gguf", MODELS[_i].quant);
	ck_assert_int_eq(open_ref(&r.q, dir, file), 0);
	snprintf(file, sizeof file, "models/%s-dequant-f32.gguf", MODELS[_i].quant);
	ck_assert_int_eq(open_ref(&r.dq, dir, file), 0);
	for (size_t i = 0; i < moe_ckpt_ntensors(r.q); i++) {
		const struct moe_tensor *tq = moe_ckpt_tensor(r.q, i);
		const struct moe_tensor *ti = moe_ckpt_find(r.in, tq->name);

		if (!moe_dtype_is_quantized(tq->dtype))
			continue;
		ck_assert_msg(ti != NULL, "%s", tq->name);
		bad += compare_tensor(tq->dtype, &r, ti);
		nq++;
	}
	ck_assert_int_gt(nq, 0);
	if (getenv("MOE_TEST_VERBOSE"))
		fprintf(stderr, "%s: %d tensors, %ld differences\n", MODELS[_i].quant, nq, bad);
	ck_assert_msg(bad == 0, "%s: %ld differences", MODELS[_i].quant, bad);
	moe_ckpt_free(r.in);
	moe_ckpt_free(r.q);
	moe_ckpt_free(r.dq);
}
END_TEST

static Suite *quant_suite(void)
{
	Suite *s = suite_create("quant");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, block_geometry_matches_dtype_table);
	tcase_add_test(tc, bad_arguments_are_refused);
	tcase_add_test(tc, zeros_stay_exact_zeros);
	tcase_add_test(tc, q8_0_constant_and_outlier);
	tcase_add_test(tc, q8_0_half_steps_reference_vs_runtime);
	tcase_add_test(tc, q4_0_constant_and_negative_only);
	tcase_add_test(tc, q4_1_and_q5_1_exact_ramps);
	tcase_add_test(tc, mxfp4_known_answers);
	tcase_add_test(tc, ternary_known_answers);
	tcase_add_test(tc, non_finite_inputs_are_safe);
	tcase_add_test(tc, relative_rmse_bounds);
	tcase_add_test(tc, q8_0_q4_0_elementwise_bounds);
	tcase_add_test(tc, vec_dot_matches_dequantized_dot);
	tcase_add_test(tc, vec_dot_q8_0_by_hand);
	tcase_add_test(tc, activation_formats_by_hand);
	tcase_add_loop_test(tc, reference_vectors_match_exactly, 0, NREF);
	tcase_add_loop_test(tc, reference_models_match_exactly, 0,
		sizeof MODELS / sizeof MODELS[0]);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return moe_test_run(quant_suite());
}
