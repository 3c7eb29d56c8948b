/* The dtype table: names, ggml ids, block sizes and bytes per block. */
#include "dtype.h"

#include <strings.h>

#include "error.h"

struct dtype_info {
	const char *name;
	int ggml;           /* ggml type id or -1 */
	uint32_t block;     /* values per block */
	uint32_t bytes;     /* bytes per block */
	unsigned quant : 1;
	unsigned flt : 1;
};

/* Block layouts follow ggml-common.h: e.g. Q4_K = fp16 d, fp16 dmin,
 * 12 bytes of 6-bit scales, 128 bytes of nibbles = 144 bytes / 256 values. */
static const struct dtype_info table[MOE_DT_COUNT] = {
	[MOE_DT_INVALID] = { "INVALID", -1, 0, 0, 0, 0 },
	[MOE_DT_F64] = { "F64", 28, 1, 8, 0, 1 },
	[MOE_DT_F32] = { "F32", 0, 1, 4, 0, 1 },
	[MOE_DT_F16] = { "F16", 1, 1, 2, 0, 1 },
	[MOE_DT_BF16] = { "BF16", 30, 1, 2, 0, 1 },
	[MOE_DT_F8_E4M3] = { "F8_E4M3", -1, 1, 1, 0, 1 },
	[MOE_DT_F8_E5M2] = { "F8_E5M2", -1, 1, 1, 0, 1 },
	[MOE_DT_F8_E8M0] = { "F8_E8M0", -1, 1, 1, 0, 0 },
	[MOE_DT_I64] = { "I64", 27, 1, 8, 0, 0 },
	[MOE_DT_I32] = { "I32", 26, 1, 4, 0, 0 },
	[MOE_DT_I16] = { "I16", 25, 1, 2, 0, 0 },
	[MOE_DT_I8] = { "I8", 24, 1, 1, 0, 0 },
	[MOE_DT_U64] = { "U64", -1, 1, 8, 0, 0 },
	[MOE_DT_U32] = { "U32", -1, 1, 4, 0, 0 },
	[MOE_DT_U16] = { "U16", -1, 1, 2, 0, 0 },
	[MOE_DT_U8] = { "U8", -1, 1, 1, 0, 0 },
	[MOE_DT_BOOL] = { "BOOL", -1, 1, 1, 0, 0 },
	[MOE_DT_Q4_0] = { "Q4_0", 2, 32, 18, 1, 0 },
	[MOE_DT_Q4_1] = { "Q4_1", 3, 32, 20, 1, 0 },
	[MOE_DT_Q5_0] = { "Q5_0", 6, 32, 22, 1, 0 },
	[MOE_DT_Q5_1] = { "Q5_1", 7, 32, 24, 1, 0 },
	[MOE_DT_Q8_0] = { "Q8_0", 8, 32, 34, 1, 0 },
	[MOE_DT_Q8_1] = { "Q8_1", 9, 32, 36, 1, 0 },
	[MOE_DT_Q2_K] = { "Q2_K", 10, 256, 84, 1, 0 },
	[MOE_DT_Q3_K] = { "Q3_K", 11, 256, 110, 1, 0 },
	[MOE_DT_Q4_K] = { "Q4_K", 12, 256, 144, 1, 0 },
	[MOE_DT_Q5_K] = { "Q5_K", 13, 256, 176, 1, 0 },
	[MOE_DT_Q6_K] = { "Q6_K", 14, 256, 210, 1, 0 },
	[MOE_DT_Q8_K] = { "Q8_K", 15, 256, 292, 1, 0 },
	[MOE_DT_IQ2_XXS] = { "IQ2_XXS", 16, 256, 66, 1, 0 },
	[MOE_DT_IQ2_XS] = { "IQ2_XS", 17, 256, 74, 1, 0 },
	[MOE_DT_IQ3_XXS] = { "IQ3_XXS", 18, 256, 98, 1, 0 },
	[MOE_DT_IQ1_S] = { "IQ1_S", 19, 256, 50, 1, 0 },
	[MOE_DT_IQ4_NL] = { "IQ4_NL", 20, 32, 18, 1, 0 },
	[MOE_DT_IQ3_S] = { "IQ3_S", 21, 256, 110, 1, 0 },
	[MOE_DT_IQ2_S] = { "IQ2_S", 22, 256, 82, 1, 0 },
	[MOE_DT_IQ4_XS] = { "IQ4_XS", 23, 256, 136, 1, 0 },
	[MOE_DT_IQ1_M] = { "IQ1_M", 29, 256, 56, 1, 0 },
	[MOE_DT_TQ1_0] = { "TQ1_0", 34, 256, 54, 1, 0 },
	[MOE_DT_TQ2_0] = { "TQ2_0", 35, 256, 66, 1, 0 },
	[MOE_DT_MXFP4] = { "MXFP4", 39, 32, 17, 1, 0 },
	[MOE_DT_NVFP4] = { "NVFP4", 40, 64, 36, 1, 0 },
};

static int valid(enum moe_dtype t)
{
	return t > MOE_DT_INVALID && t < MOE_DT_COUNT;
}

const char *moe_dtype_name(enum moe_dtype t)
{
	return valid(t) ? table[t].name : "INVALID";
}

enum moe_dtype moe_dtype_from_name(const char *name)
{
	for (int t = 1; t < MOE_DT_COUNT; t++)
		if (strcasecmp(name, table[t].name) == 0)
			return (enum moe_dtype)t;
	return MOE_DT_INVALID;
}

uint32_t moe_dtype_block_size(enum moe_dtype t)
{
	return valid(t) ? table[t].block : 0;
}

uint32_t moe_dtype_block_bytes(enum moe_dtype t)
{
	return valid(t) ? table[t].bytes : 0;
}

int moe_dtype_is_quantized(enum moe_dtype t)
{
	return valid(t) && table[t].quant;
}

int moe_dtype_is_float(enum moe_dtype t)
{
	return valid(t) && table[t].flt;
}

int moe_dtype_to_ggml(enum moe_dtype t)
{
	return valid(t) ? table[t].ggml : -1;
}

enum moe_dtype moe_dtype_from_ggml(uint32_t id)
{
	for (int t = 1; t < MOE_DT_COUNT; t++)
		if (table[t].ggml >= 0 && (uint32_t)table[t].ggml == id)
			return (enum moe_dtype)t;
	return MOE_DT_INVALID;
}

int moe_dtype_nbytes(enum moe_dtype t, uint64_t n, uint64_t *out)
{
	uint64_t blocks;

	if (!valid(t) || n % table[t].block != 0)
		return MOE_ERANGE;
	blocks = n / table[t].block;
	if (blocks > UINT64_MAX / table[t].bytes)
		return MOE_ERANGE;
	*out = blocks * table[t].bytes;
	return 0;
}

int moe_shape_numel(int ndim, const uint64_t *shape, uint64_t *out)
{
	uint64_t n = 1;

	for (int i = 0; i < ndim; i++) {
		if (shape[i] != 0 && n > UINT64_MAX / shape[i])
			return MOE_ERANGE;
		n *= shape[i];
	}
	*out = n;
	return 0;
}
