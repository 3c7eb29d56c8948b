/* Internal: rounding helpers and per-type kernels shared by the lib/quant*.c files (not API). */
#ifndef MOE_QUANT_IMPL_H
#define MOE_QUANT_IMPL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "fpconv.h"

/*
 * Bit-exactness needs every a * b + c rounded twice, as in the build that
 * made ggml's reference data: a compiler allowed to fuse them into FMA
 * (clang's default, GCC in GNU mode with -march=native) changes the
 * K-quant and IQ4 scale searches. Forbid contraction in the kernels.
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/*
 * Every kernel works on `nb` consecutive blocks: ggml's reference
 * quantizers never look across blocks, so a tensor of rows is just a run
 * of blocks. Bit-exactness with ggml depends on doing the same float
 * operations in the same order, so the kernels keep ggml's arithmetic
 * (including its odd corners) and say so where it matters.
 */
typedef void (*moe_quant_fn)(const float *x, void *y, int64_t nb);
typedef void (*moe_dequant_fn)(const void *x, float *y, int64_t nb);

/* Values per block of the "super-block" K and IQ4_XS/TQ formats. */
#define QK_K 256

/* Below this a group's largest magnitude counts as all zero (ggml's
 * GROUP_MAX_EPS). */
#define GROUP_MAX_EPS 1e-15f

/*
 * ggml's nearest_int(): adding 1.5 * 2^23 puts the integer part of
 * |v| < 2^22 in the low mantissa bits, so the FPU's round-to-nearest-even
 * does the rounding. Ties therefore go to even, unlike roundf(). Outside
 * that range ggml returns garbage (it only asserts); we return the same
 * garbage so results stay identical, without undefined behaviour.
 */
static inline int q_nearest_int(float v)
{
	float t = v + 12582912.f;
	int32_t i;

	memcpy(&i, &t, 4);
	return (i & 0x007fffff) - 0x00400000;
}

/*
 * C's float-to-int conversion of an out-of-range value is undefined; on
 * x86 (where the reference data comes from) cvttss2si yields INT32_MIN.
 * ggml's `(int8_t)(x + 8.5f)` is that conversion followed by keeping the
 * low byte, which is what q_trunc_i8() reproduces.
 */
static inline int32_t q_trunc_i32(float v)
{
	if (!(v > -2147483648.f && v < 2147483648.f))
		return INT32_MIN;
	return (int32_t)v;
}

static inline int8_t q_trunc_i8(float v)
{
	uint8_t b = (uint8_t)((uint32_t)q_trunc_i32(v) & 0xff);

	return b < 128 ? (int8_t)b : (int8_t)(b - 256);
}

/* roundf(v) (halves away from zero) as an int, without the libm call
 * baseline x86-64 needs: v + 0.5 is exact in double, so truncating it is
 * exactly roundf. Out of range gives INT32_MIN like q_trunc_i32(). */
static inline int32_t q_round_away(float v)
{
	double d = (double)v;

	if (!(d > -2147483648.0 && d < 2147483648.0))
		return INT32_MIN;
	return (int32_t)(d + copysign(0.5, d));
}

static inline float q_f32_from_le16(const uint8_t *p)
{
	return moe_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

static inline void q_put_f16(uint8_t *p, float f)
{
	uint16_t h = moe_f32_to_f16(f);

	p[0] = (uint8_t)h;
	p[1] = (uint8_t)(h >> 8);
}

static inline int q_min(int a, int b) { return a < b ? a : b; }
static inline int q_max(int a, int b) { return a > b ? a : b; }
static inline int q_clamp(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* 6-bit signed scale j (-32..31) of a Q3_K block's 12 scale bytes: low
 * 4 bits in sc[0..7] (two per byte), high 2 bits in sc[8..11]. */
static inline int q3k_scale(const uint8_t *sc, int j)
{
	int lo = j < 8 ? sc[j] & 0xf : sc[j - 8] >> 4;
	int hi = (sc[8 + j % 4] >> (2 * (j / 4))) & 3;

	return (lo | hi << 4) - 32;
}

/* Index of the element of largest magnitude (first one on ties). */
static inline int q_absmax_index(int n, const float *x)
{
	float amax = 0;
	int k = -1;

	for (int i = 0; i < n; i++) {
		if (fabsf(x[i]) > amax) {
			amax = fabsf(x[i]);
			k = i;
		}
	}
	return k;
}

/*
 * The K-quants' per-group scale searches (quant_kfit.c), as ggml's
 * functions of the same names with the arguments our callers use:
 * make_qx_quants (rmse_type 1, no importance weights) and make_q3_quants
 * (do_rmse) return the signed scale and put levels + nmax in L;
 * make_qkx2_quants fits x ~ scale * L + min (min <= 0, L in 0..nmax,
 * weights w), returns the scale and stores -min in *the_min.
 */
struct moe_qkx_params {
	int nmax;           /* top level: levels are 0..nmax */
	float rmin, rdelta; /* candidate is: iscale = (rmin + rdelta*is + nmax) / range */
	int nstep;          /* is = 0..nstep */
	int use_mad;        /* absolute instead of squared error */
};
float moe_make_qx_quants(int n, int nmax, const float *x, int8_t *L);
float moe_make_q3_quants(int n, int nmax, const float *x, int8_t *L);
float moe_make_qkx2_quants(int n, const struct moe_qkx_params *p,
	const float *x, const float *w, uint8_t *L, float *the_min);

/* Legacy 32-value block formats (quant_legacy.c). */
void moe_q4_0_quantize(const float *x, void *y, int64_t nb);
void moe_q4_0_dequantize(const void *x, float *y, int64_t nb);
void moe_q4_1_quantize(const float *x, void *y, int64_t nb);
void moe_q4_1_dequantize(const void *x, float *y, int64_t nb);
void moe_q5_0_quantize(const float *x, void *y, int64_t nb);
void moe_q5_0_dequantize(const void *x, float *y, int64_t nb);
void moe_q5_1_quantize(const float *x, void *y, int64_t nb);
void moe_q5_1_dequantize(const void *x, float *y, int64_t nb);
void moe_q8_0_quantize(const float *x, void *y, int64_t nb);
void moe_q8_0_dequantize(const void *x, float *y, int64_t nb);

/* K-quants (quant_k.c). */
void moe_q2_k_quantize(const float *x, void *y, int64_t nb);
void moe_q2_k_dequantize(const void *x, float *y, int64_t nb);
void moe_q3_k_quantize(const float *x, void *y, int64_t nb);
void moe_q3_k_dequantize(const void *x, float *y, int64_t nb);
void moe_q4_k_quantize(const float *x, void *y, int64_t nb);
void moe_q4_k_dequantize(const void *x, float *y, int64_t nb);
void moe_q5_k_quantize(const float *x, void *y, int64_t nb);
void moe_q5_k_dequantize(const void *x, float *y, int64_t nb);
void moe_q6_k_quantize(const float *x, void *y, int64_t nb);
void moe_q6_k_dequantize(const void *x, float *y, int64_t nb);
void moe_q8_k_quantize(const float *x, void *y, int64_t nb);
void moe_q8_k_dequantize(const void *x, float *y, int64_t nb);

/* Activation formats and K-quant dot products (quant_dot.c, quant_kdot.c). */
void moe_q8_1_dequantize(const void *x, float *y, int64_t nb);
int moe_vec_dot_k(enum moe_dtype t, int64_t nb, const void *w, const void *a,
	float *out);

/* Non-linear 4-bit (quant_iq.c). */
void moe_iq4_nl_quantize(const float *x, void *y, int64_t nb);
void moe_iq4_nl_dequantize(const void *x, float *y, int64_t nb);
void moe_iq4_xs_quantize(const float *x, void *y, int64_t nb);
void moe_iq4_xs_dequantize(const void *x, float *y, int64_t nb);
float moe_iq4_nl_vec_dot(int64_t nb, const void *x, const void *y);
float moe_iq4_xs_vec_dot(int64_t nb, const void *x, const void *y);

/* Ternary (quant_tq.c). */
void moe_tq1_0_quantize(const float *x, void *y, int64_t nb);
void moe_tq1_0_dequantize(const void *x, float *y, int64_t nb);
void moe_tq2_0_quantize(const float *x, void *y, int64_t nb);
void moe_tq2_0_dequantize(const void *x, float *y, int64_t nb);

/* OCP microscaling FP4 (quant_mx.c). */
void moe_mxfp4_quantize(const float *x, void *y, int64_t nb);
void moe_mxfp4_dequantize(const void *x, float *y, int64_t nb);
float moe_mxfp4_vec_dot(int64_t nb, const void *x, const void *y);

#endif
