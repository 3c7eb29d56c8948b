/* Quantize and dequantize 128 x 128 block-scaled FP8 (E4M3) weights one band of rows at a time. */
#include "fp8block.h"

#include <math.h>

#include "error.h"
#include "fpconv.h"

#define E4M3_MAX 448.0f

void moe_fp8block_scale_shape(int64_t rows, int64_t cols,
	int64_t *scale_rows, int64_t *scale_cols)
{
	*scale_rows = (rows + MOE_FP8_BLOCK - 1) / MOE_FP8_BLOCK;
	*scale_cols = (cols + MOE_FP8_BLOCK - 1) / MOE_FP8_BLOCK;
}

static int check_band(int64_t nrows, int64_t cols)
{
	if (nrows < 0 || cols < 0)
		return MOE_EINVAL;
	if (nrows > MOE_FP8_BLOCK)
		return MOE_ERANGE;
	return 0;
}

/* Largest finite magnitude of columns [c0, c1) over the band's rows. */
static float tile_amax(const float *src, int64_t nrows, int64_t cols,
	int64_t c0, int64_t c1)
{
	float amax = 0.0f;

	for (int64_t r = 0; r < nrows; r++)
		for (int64_t c = c0; c < c1; c++) {
			float a = fabsf(src[r * cols + c]);

			if (a > amax && a != INFINITY)
				amax = a;
		}
	return amax;
}

int moe_fp8block_quantize_band(const float *src, int64_t nrows, int64_t cols,
	uint8_t *dst, float *scale_inv)
{
	int rc = check_band(nrows, cols);

	if (rc)
		return rc;
	for (int64_t c0 = 0, t = 0; c0 < cols; c0 += MOE_FP8_BLOCK, t++) {
		int64_t c1 = c0 + MOE_FP8_BLOCK < cols ? c0 + MOE_FP8_BLOCK : cols;
		float amax = tile_amax(src, nrows, cols, c0, c1);
		float s = amax > 0.0f ? amax / E4M3_MAX : 1.0f;

		scale_inv[t] = s;
		for (int64_t r = 0; r < nrows; r++)
			for (int64_t c = c0; c < c1; c++)
				dst[r * cols + c] = moe_f32_to_f8e4m3(src[r * cols + c] / s, 1);
	}
	return 0;
}

int moe_fp8block_dequantize_rows(const uint8_t *src, int64_t nrows, int64_t cols,
	const float *scale_inv, float *dst)
{
	int rc = check_band(nrows, cols);

	if (rc)
		return rc;
	for (int64_t r = 0; r < nrows; r++)
		for (int64_t c = 0; c < cols; c++)
			dst[r * cols + c] = moe_f8e4m3_to_f32(src[r * cols + c]) *
				scale_inv[c / MOE_FP8_BLOCK];
	return 0;
}
