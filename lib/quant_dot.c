/* Runtime activation quantizers (Q8_0, Q8_1, Q8_K) and quantized-weight x quantized-activation dot products. */
#include "error.h"
#include "quant.h"
#include "quant_impl.h"

/*
 * llama.cpp never multiplies F32 activations with quantized weights: it
 * quantizes each activation row to the weight type's "vec_dot type" and
 * sums integer products block by block. On x86 its activation quantizers
 * for Q8_0/Q8_1 (AVX2 code) compute the multiplier as 127 / amax and round
 * half to even; that is what moe-run must reproduce, not the reference
 * quantizer used for weights.
 *
 * Q8_1 block (36 B): d, s = d * sum(qs) (both fp16), qs[32] (int8).
 */

/* Quants of one 32-value block the x86 way; returns d. */
static float act_block(const float *x, int8_t *q)
{
	float amax = 0.0f, d, id;

	for (int j = 0; j < 32; j++)
		if (fabsf(x[j]) > amax)
			amax = fabsf(x[j]);
	d = amax / 127.f;
	id = amax != 0.0f ? 127.f / amax : 0.0f;
	/* rintf rounds half to even in the default rounding mode, like
	 * _mm256_round_ps(_MM_ROUND_NEAREST); the clamp is the saturating
	 * int32 -> int8 packing, which only matters for NaN (INT32_MIN) */
	for (int j = 0; j < 32; j++)
		q[j] = (int8_t)q_clamp(q_trunc_i32(rintf(x[j] * id)), -128, 127);
	return d;
}

int moe_quantize_row_q8_0_act(const float *x, void *vy, int64_t n)
{
	uint8_t *y = vy;

	if (n < 0)
		return MOE_EINVAL;
	if (n % 32 != 0)
		return MOE_ERANGE;
	for (int64_t i = 0; i < n / 32; i++, x += 32, y += 34)
		q_put_f16(y, act_block(x, (int8_t *)(y + 2)));
	return 0;
}

static int quantize_q8_1_act(const float *x, void *vy, int64_t n)
{
	uint8_t *y = vy;

	if (n % 32 != 0)
		return MOE_ERANGE;
	for (int64_t i = 0; i < n / 32; i++, x += 32, y += 36) {
		float d = act_block(x, (int8_t *)(y + 4));
		int sum = 0;

		for (int j = 0; j < 32; j++)
			sum += (int8_t)y[4 + j];
		q_put_f16(y, d);
		q_put_f16(y + 2, d * (float)sum);
	}
	return 0;
}

void moe_q8_1_dequantize(const void *vx, float *y, int64_t nb)
{
	const uint8_t *x = vx;

	for (int64_t i = 0; i < nb; i++, x += 36, y += 32) {
		float d = q_f32_from_le16(x);

		for (int j = 0; j < 32; j++)
			y[j] = (float)(int8_t)x[4 + j] * d;
	}
}

enum moe_dtype moe_vec_dot_type(enum moe_dtype t)
{
	switch (t) {
	case MOE_DT_Q4_0: case MOE_DT_Q5_0: case MOE_DT_Q8_0: case MOE_DT_MXFP4:
	case MOE_DT_IQ4_NL:
		return MOE_DT_Q8_0;
	case MOE_DT_Q4_1: case MOE_DT_Q5_1:
		return MOE_DT_Q8_1;
	case MOE_DT_Q2_K: case MOE_DT_Q3_K: case MOE_DT_Q4_K: case MOE_DT_Q5_K:
	case MOE_DT_Q6_K: case MOE_DT_IQ4_XS:
		return MOE_DT_Q8_K;
	default:
		return MOE_DT_INVALID;
	}
}

int moe_quantize_row_act(enum moe_dtype act, const float *x, void *dst, int64_t n)
{
	if (n < 0)
		return MOE_EINVAL;
	switch (act) {
	case MOE_DT_Q8_0:
		return moe_quantize_row_q8_0_act(x, dst, n);
	case MOE_DT_Q8_1:
		return quantize_q8_1_act(x, dst, n);
	case MOE_DT_Q8_K:
		/* x86 llama.cpp uses the reference Q8_K quantizer at run time */
		if (n % QK_K != 0)
			return MOE_ERANGE;
		moe_q8_k_quantize(x, dst, n / QK_K);
		return 0;
	default:
		return MOE_EUNSUP;
	}
}

/* ---- 32-value blocks against Q8_0 / Q8_1 ---- */

/* Signed 4- or 5-bit weight quants of one block, offset removed. */
static void unpack_q4(const uint8_t *qs, int off, int *v)
{
	for (int j = 0; j < 16; j++) {
		v[j] = (qs[j] & 0x0f) - off;
		v[j + 16] = (qs[j] >> 4) - off;
	}
}

static void unpack_q5(const uint8_t *qh4, const uint8_t *qs, int off, int *v)
{
	uint32_t qh = (uint32_t)qh4[0] | (uint32_t)qh4[1] << 8 |
		(uint32_t)qh4[2] << 16 | (uint32_t)qh4[3] << 24;

	for (int j = 0; j < 16; j++) {
		v[j] = ((qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4) - off;
		v[j + 16] = ((qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4) - off;
	}
}

static int isum32(const int *v, const uint8_t *q8)
{
	int s = 0;

	for (int j = 0; j < 32; j++)
		s += v[j] * (int8_t)q8[j];
	return s;
}

static float dot_q4_0(int64_t nb, const uint8_t *x, const uint8_t *y)
{
	float sumf = 0;
	int v[32];

	for (int64_t i = 0; i < nb; i++, x += 18, y += 34) {
		unpack_q4(x + 2, 8, v);
		sumf += (float)isum32(v, y + 2) * q_f32_from_le16(x) * q_f32_from_le16(y);
	}
	return sumf;
}

static float dot_q5_0(int64_t nb, const uint8_t *x, const uint8_t *y)
{
	float sumf = 0;
	int v[32];

	for (int64_t i = 0; i < nb; i++, x += 22, y += 34) {
		unpack_q5(x + 2, x + 6, 16, v);
		sumf += (q_f32_from_le16(x) * q_f32_from_le16(y)) * (float)isum32(v, y + 2);
	}
	return sumf;
}

static float dot_q8_0(int64_t nb, const uint8_t *x, const uint8_t *y)
{
	float sumf = 0;

	for (int64_t i = 0; i < nb; i++, x += 34, y += 34) {
		int s = 0;

		for (int j = 0; j < 32; j++)
			s += (int8_t)x[2 + j] * (int8_t)y[2 + j];
		sumf += (float)s * (q_f32_from_le16(x) * q_f32_from_le16(y));
	}
	return sumf;
}

/* Q4_1/Q5_1: the min contributes m * s, s = d_y * sum(q_y) from Q8_1. */
static float dot_q4_1(int64_t nb, const uint8_t *x, const uint8_t *y)
{
	float sumf = 0;
	int v[32];

	for (int64_t i = 0; i < nb; i++, x += 20, y += 36) {
		unpack_q4(x + 4, 0, v);
		sumf += (q_f32_from_le16(x) * q_f32_from_le16(y)) * (float)isum32(v, y + 4) +
			q_f32_from_le16(x + 2) * q_f32_from_le16(y + 2);
	}
	return sumf;
}

static float dot_q5_1(int64_t nb, const uint8_t *x, const uint8_t *y)
{
	float sumf = 0;
	int v[32];

	for (int64_t i = 0; i < nb; i++, x += 24, y += 36) {
		unpack_q5(x + 4, x + 8, 0, v);
		sumf += (q_f32_from_le16(x) * q_f32_from_le16(y)) * (float)isum32(v, y + 4) +
			q_f32_from_le16(x + 2) * q_f32_from_le16(y + 2);
	}
	return sumf;
}

int moe_vec_dot(enum moe_dtype t, int64_t n, const void *w, const void *a,
	float *out)
{
	int64_t bs = moe_dtype_block_size(t);

	if (n < 0)
		return MOE_EINVAL;
	if (moe_vec_dot_type(t) == MOE_DT_INVALID)
		return MOE_EUNSUP;
	if (n % bs != 0 || n % moe_dtype_block_size(moe_vec_dot_type(t)) != 0)
		return MOE_ERANGE;
	switch (t) {
	case MOE_DT_Q4_0: *out = dot_q4_0(n / 32, w, a); return 0;
	case MOE_DT_Q4_1: *out = dot_q4_1(n / 32, w, a); return 0;
	case MOE_DT_Q5_0: *out = dot_q5_0(n / 32, w, a); return 0;
	case MOE_DT_Q5_1: *out = dot_q5_1(n / 32, w, a); return 0;
	case MOE_DT_Q8_0: *out = dot_q8_0(n / 32, w, a); return 0;
	case MOE_DT_MXFP4: *out = moe_mxfp4_vec_dot(n / 32, w, a); return 0;
	case MOE_DT_IQ4_NL: *out = moe_iq4_nl_vec_dot(n / 32, w, a); return 0;
	default: return moe_vec_dot_k(t, n / QK_K, w, a, out);
	}
}
