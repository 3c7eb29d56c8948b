/* Row quantization, dequantization and quantized dot products, bit-exact with ggml's reference kernels. */
#ifndef MOE_QUANT_H
#define MOE_QUANT_H

#include <stdint.h>

#include "dtype.h"

/*
 * Stateless functions over caller-owned buffers; nothing is allocated and
 * nothing kept. Quantized data is ggml's block layout (moe_dtype_block_size
 * values in moe_dtype_block_bytes bytes, little-endian), so a tensor's
 * bytes are the concatenation of its rows' blocks.
 *
 * Results match ggml_quantize_chunk(type, src, dst, 0, nrows, n_per_row,
 * imatrix = NULL) and ggml's to_float byte for byte / bit for bit, NaN and
 * infinity included, for Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K
 * Q6_K IQ4_NL IQ4_XS TQ1_0 TQ2_0 F16 BF16 (and F32 as a copy). MXFP4
 * follows ggml's later quantize_row_mxfp4_ref (OCP MX shared exponent),
 * except that blocks with amax < 2^-125, where ggml's exponent byte wraps,
 * get exponent 0. Q8_K and Q8_1 are activation formats (moe_vec_dot).
 * The kernels are single-threaded and reentrant: callers parallelize by
 * giving threads disjoint rows.
 *
 * Errors: MOE_EUNSUP for a type without a kernel, MOE_ERANGE when a row
 * is not a whole number of blocks, MOE_EINVAL for negative counts.
 */

/* Nonzero if moe_quantize_rows() handles t. */
int moe_quant_supported(enum moe_dtype t);
/* Nonzero if moe_dequantize_row() handles t (also Q8_0..Q8_K). */
int moe_dequant_supported(enum moe_dtype t);

/* Quantizes nrows rows of n_per_row floats (src, (nrows, n_per_row)) into
 * dst, which must hold nrows * n_per_row / block_size blocks. */
int moe_quantize_rows(enum moe_dtype t, const float *src, void *dst,
	int64_t nrows, int64_t n_per_row);

/* Dequantizes n values (a whole number of blocks) of type t. */
int moe_dequantize_row(enum moe_dtype t, const void *src, float *dst, int64_t n);

/*
 * llama.cpp's x86 runtime activation quantizer for Q8_0 (what its matmuls
 * apply to F32 activations before a Q4_0/Q5_0/Q8_0 dot product): per 32
 * values d = amax / 127 stored as fp16, quants = round-half-to-even(x *
 * (127 / amax)). It differs from the reference Q8_0 quantizer (multiplier
 * 1 / d, half away from zero) at ties and occasionally by one step.
 */
int moe_quantize_row_q8_0_act(const float *x, void *dst, int64_t n);

/* Activation quantizer for a weight type's dot product:
 * moe_vec_dot_type() gives the activation type (Q8_0 for Q4_0, Q5_0,
 * Q8_0, IQ4_NL and MXFP4; Q8_1 for Q4_1/Q5_1; Q8_K for Q2_K..Q6_K and
 * IQ4_XS) and
 * moe_quantize_row_act() quantizes n floats into it the way llama.cpp's
 * x86 build does at run time. MOE_DT_INVALID / MOE_EUNSUP when t has no
 * dot product. */
enum moe_dtype moe_vec_dot_type(enum moe_dtype t);
int moe_quantize_row_act(enum moe_dtype act, const float *x, void *dst, int64_t n);

/*
 * Dot product of one weight row w (type t, n values) with one activation
 * row a (type moe_vec_dot_type(t)): integer sums per block, scaled by the
 * blocks' scales and accumulated in float block by block in the order of
 * ggml's generic (non-SIMD) vec_dot kernels.
 */
int moe_vec_dot(enum moe_dtype t, int64_t n, const void *w, const void *a,
	float *out);

#endif
