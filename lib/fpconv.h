/* Exact conversions between F32 and the narrow float formats (F16, BF16, F8). */
#ifndef MOE_FPCONV_H
#define MOE_FPCONV_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

/*
 * All narrowing conversions round to nearest, ties to even, handle
 * subnormals, keep the sign of zero and keep NaN a NaN.
 * F16 and F8_E5M2 overflow to infinity. F8_E4M3 (the OCP "FN" variant:
 * no infinities, S.1111.111 is NaN, max 448) has no infinity, so overflow
 * either saturates to +-448 (sat != 0) or gives NaN (sat == 0, PyTorch's
 * behaviour); E5M2 with sat != 0 clamps to +-57344 instead of infinity.
 */
float moe_f16_to_f32(uint16_t h);
uint16_t moe_f32_to_f16(float f);
float moe_bf16_to_f32(uint16_t h);
uint16_t moe_f32_to_bf16(float f);
float moe_f8e4m3_to_f32(uint8_t b);
uint8_t moe_f32_to_f8e4m3(float f, int sat);
float moe_f8e5m2_to_f32(uint8_t b);
uint8_t moe_f32_to_f8e5m2(float f, int sat);
/* OCP E8M0 scale byte: 2^(b-127), 0xff is NaN. */
float moe_e8m0_to_f32(uint8_t b);

/*
 * Converts n values between float dtypes (F64, F32, F16, BF16, F8_E4M3,
 * F8_E5M2), through F32 (F64 narrows directly with one rounding).
 * F8 targets saturate. Returns 0 or MOE_EUNSUP for other types.
 */
int moe_cast(enum moe_dtype dst, void *out, enum moe_dtype src,
	const void *in, size_t n);

#endif
