/* Type dispatch for row quantization and dequantization (kernels live in lib/quant_*.c). */
#include "quant.h"

#include "error.h"
#include "quant_impl.h"

struct kernel {
	enum moe_dtype type;
	moe_quant_fn quantize;      /* NULL: dequantize only */
	moe_dequant_fn dequantize;
};

static void f16_quantize(const float *x, void *vy, int64_t n)
{
	uint8_t *y = vy;

	for (int64_t i = 0; i < n; i++)
		q_put_f16(y + 2 * i, x[i]);
}

static void f16_dequantize(const void *vx, float *y, int64_t n)
{
	const uint8_t *x = vx;

	for (int64_t i = 0; i < n; i++)
		y[i] = q_f32_from_le16(x + 2 * i);
}

static void bf16_quantize(const float *x, void *vy, int64_t n)
{
	uint8_t *y = vy;

	for (int64_t i = 0; i < n; i++) {
		uint16_t h = moe_f32_to_bf16(x[i]);

		y[2 * i] = (uint8_t)h;
		y[2 * i + 1] = (uint8_t)(h >> 8);
	}
}

static void bf16_dequantize(const void *vx, float *y, int64_t n)
{
	const uint8_t *x = vx;

	for (int64_t i = 0; i < n; i++)
		y[i] = moe_bf16_to_f32((uint16_t)(x[2 * i] | x[2 * i + 1] << 8));
}

static void f32_quantize(const float *x, void *y, int64_t n)
{
	memcpy(y, x, (size_t)n * 4);
}

static void f32_dequantize(const void *x, float *y, int64_t n)
{
	memcpy(y, x, (size_t)n * 4);
}

static const struct kernel KERNELS[] = {
	{ MOE_DT_F32, f32_quantize, f32_dequantize },
	{ MOE_DT_F16, f16_quantize, f16_dequantize },
	{ MOE_DT_BF16, bf16_quantize, bf16_dequantize },
	{ MOE_DT_Q4_0, moe_q4_0_quantize, moe_q4_0_dequantize },
	{ MOE_DT_Q4_1, moe_q4_1_quantize, moe_q4_1_dequantize },
	{ MOE_DT_Q5_0, moe_q5_0_quantize, moe_q5_0_dequantize },
	{ MOE_DT_Q5_1, moe_q5_1_quantize, moe_q5_1_dequantize },
	{ MOE_DT_Q8_0, moe_q8_0_quantize, moe_q8_0_dequantize },
	{ MOE_DT_Q8_1, NULL, moe_q8_1_dequantize },
	{ MOE_DT_Q2_K, moe_q2_k_quantize, moe_q2_k_dequantize },
	{ MOE_DT_Q3_K, moe_q3_k_quantize, moe_q3_k_dequantize },
	{ MOE_DT_Q4_K, moe_q4_k_quantize, moe_q4_k_dequantize },
	{ MOE_DT_Q5_K, moe_q5_k_quantize, moe_q5_k_dequantize },
	{ MOE_DT_Q6_K, moe_q6_k_quantize, moe_q6_k_dequantize },
	{ MOE_DT_Q8_K, NULL, moe_q8_k_dequantize },
	{ MOE_DT_IQ4_NL, moe_iq4_nl_quantize, moe_iq4_nl_dequantize },
	{ MOE_DT_IQ4_XS, moe_iq4_xs_quantize, moe_iq4_xs_dequantize },
	{ MOE_DT_TQ1_0, moe_tq1_0_quantize, moe_tq1_0_dequantize },
	{ MOE_DT_TQ2_0, moe_tq2_0_quantize, moe_tq2_0_dequantize },
	{ MOE_DT_MXFP4, moe_mxfp4_quantize, moe_mxfp4_dequantize },
};

static const struct kernel *find_kernel(enum moe_dtype t)
{
	for (size_t i = 0; i < sizeof KERNELS / sizeof KERNELS[0]; i++)
		if (KERNELS[i].type == t)
			return &KERNELS[i];
	return NULL;
}

int moe_quant_supported(enum moe_dtype t)
{
	const struct kernel *k = find_kernel(t);

	return k && k->quantize;
}

int moe_dequant_supported(enum moe_dtype t)
{
	return find_kernel(t) != NULL;
}

/* Blocks in n values of t, or a negative code. */
static int64_t whole_blocks(enum moe_dtype t, int64_t n)
{
	int64_t bs = moe_dtype_block_size(t);

	if (n < 0)
		return MOE_EINVAL;
	if (bs == 0 || n % bs != 0)
		return MOE_ERANGE;
	return n / bs;
}

int moe_quantize_rows(enum moe_dtype t, const float *src, void *dst,
	int64_t nrows, int64_t n_per_row)
{
	const struct kernel *k = find_kernel(t);
	int64_t nb;

	if (!k || !k->quantize)
		return MOE_EUNSUP;
	if (nrows < 0)
		return MOE_EINVAL;
	nb = whole_blocks(t, n_per_row);
	if (nb < 0)
		return (int)nb;
	if (nb != 0 && nrows > INT64_MAX / nb)
		return MOE_ERANGE;
	k->quantize(src, dst, nb * nrows);
	return 0;
}

int moe_dequantize_row(enum moe_dtype t, const void *src, float *dst, int64_t n)
{
	const struct kernel *k = find_kernel(t);
	int64_t nb;

	if (!k)
		return MOE_EUNSUP;
	nb = whole_blocks(t, n);
	if (nb < 0)
		return (int)nb;
	k->dequantize(src, dst, nb);
	return 0;
}
