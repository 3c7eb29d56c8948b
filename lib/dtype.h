/* Element types: safetensors/PyTorch dtypes and every ggml block type, with sizes. */
#ifndef MOE_DTYPE_H
#define MOE_DTYPE_H

#include <stddef.h>
#include <stdint.h>

/*
 * One enum for all element types the tools meet. Plain types have a block
 * size of 1; ggml quantized types store `block_size` values in `block_bytes`
 * bytes. Every GGUF can therefore be listed and sized even where no tool
 * computes with its type.
 */
enum moe_dtype {
	MOE_DT_INVALID = 0,
	/* plain element types (safetensors names) */
	MOE_DT_F64, MOE_DT_F32, MOE_DT_F16, MOE_DT_BF16,
	MOE_DT_F8_E4M3, MOE_DT_F8_E5M2, MOE_DT_F8_E8M0,
	MOE_DT_I64, MOE_DT_I32, MOE_DT_I16, MOE_DT_I8,
	MOE_DT_U64, MOE_DT_U32, MOE_DT_U16, MOE_DT_U8, MOE_DT_BOOL,
	/* ggml block types */
	MOE_DT_Q4_0, MOE_DT_Q4_1, MOE_DT_Q5_0, MOE_DT_Q5_1, MOE_DT_Q8_0,
	MOE_DT_Q8_1, MOE_DT_Q2_K, MOE_DT_Q3_K, MOE_DT_Q4_K, MOE_DT_Q5_K,
	MOE_DT_Q6_K, MOE_DT_Q8_K, MOE_DT_IQ2_XXS, MOE_DT_IQ2_XS,
	MOE_DT_IQ3_XXS, MOE_DT_IQ1_S, MOE_DT_IQ4_NL, MOE_DT_IQ3_S,
	MOE_DT_IQ2_S, MOE_DT_IQ4_XS, MOE_DT_IQ1_M, MOE_DT_TQ1_0,
	MOE_DT_TQ2_0, MOE_DT_MXFP4, MOE_DT_NVFP4,
	MOE_DT_COUNT
};

/* Canonical name: safetensors spelling for plain types ("F32", "BF16",
 * "F8_E4M3"), ggml spelling for block types ("Q4_K", "MXFP4"). */
const char *moe_dtype_name(enum moe_dtype t);

/* Case-insensitive lookup of a canonical name (also "f16", "q8_0");
 * MOE_DT_INVALID if unknown. */
enum moe_dtype moe_dtype_from_name(const char *name);

/* Values per block (1 for plain types) and bytes per block. */
uint32_t moe_dtype_block_size(enum moe_dtype t);
uint32_t moe_dtype_block_bytes(enum moe_dtype t);

/* Nonzero for ggml block-quantized types. */
int moe_dtype_is_quantized(enum moe_dtype t);

/* Nonzero for F64/F32/F16/BF16/F8 types (what moe_cast handles). */
int moe_dtype_is_float(enum moe_dtype t);

/* ggml type id of t, or -1 if ggml has none (U16, F8...). */
int moe_dtype_to_ggml(enum moe_dtype t);

/* moe_dtype of a ggml type id; MOE_DT_INVALID if unknown or removed. */
enum moe_dtype moe_dtype_from_ggml(uint32_t id);

/*
 * Bytes taken by n values of t. Returns 0 and sets *out, or MOE_ERANGE when
 * n is not a whole number of blocks, MOE_ERANGE on overflow.
 */
int moe_dtype_nbytes(enum moe_dtype t, uint64_t n, uint64_t *out);

/* Product of dims with overflow check: 0 or MOE_ERANGE. */
int moe_shape_numel(int ndim, const uint64_t *shape, uint64_t *out);

#endif
