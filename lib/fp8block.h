/* Block-scaled FP8 weights (DeepSeek-V3 convention): F8_E4M3 values with one F32 scale per 128 x 128 tile. */
#ifndef MOE_FP8BLOCK_H
#define MOE_FP8BLOCK_H

#include <stdint.h>

/*
 * A (rows, cols) weight `w` is stored as F8_E4M3 together with
 * `w_scale_inv`, F32 of shape (ceil(rows / 128), ceil(cols / 128)):
 * w[r][c] = fp8(w[r][c]) * w_scale_inv[r / 128][c / 128] (one F32
 * multiply, as DeepSeek's weight_dequant kernel does). Edge tiles are
 * simply smaller.
 *
 * The functions work on one band of at most 128 rows that share a row of
 * scales, so a caller can stream a tensor band by band (or row by row
 * when dequantizing) without holding it whole. Buffers are the caller's;
 * nothing is allocated. Returns 0, MOE_EINVAL (negative sizes) or
 * MOE_ERANGE (a band taller than 128 rows).
 */
#define MOE_FP8_BLOCK 128

/* Shape of the scale tensor for a (rows, cols) weight. */
void moe_fp8block_scale_shape(int64_t rows, int64_t cols,
	int64_t *scale_rows, int64_t *scale_cols);

/*
 * Quantizes nrows <= 128 rows src (nrows, cols) F32 that form one band
 * (rows 128k .. 128k + nrows - 1 of the tensor) into dst (nrows, cols)
 * F8_E4M3 and that band's scale row scale_inv (ceil(cols / 128)).
 *
 * scale_inv = amax / 448 per tile, 448 being E4M3's largest finite value,
 * so the tile's largest magnitude maps to +-448 and nothing overflows;
 * values are then fp8(w / scale_inv), rounded to nearest even and
 * saturating. amax is taken over finite values only: an infinity
 * saturates to +-448 * scale_inv and a NaN stays NaN instead of
 * poisoning the whole tile. An all-zero (or non-finite) tile gets
 * scale_inv = 1, which dequantizes to exact zeros.
 */
int moe_fp8block_quantize_band(const float *src, int64_t nrows, int64_t cols,
	uint8_t *dst, float *scale_inv);

/*
 * Dequantizes nrows <= 128 rows src (nrows, cols) F8_E4M3 lying in one
 * band, given that band's scale row scale_inv (ceil(cols / 128)), into
 * dst (nrows, cols) F32. Any run of rows inside one band works, e.g. a
 * single row r with scale_inv = scales + (r / 128) * scale_cols.
 */
int moe_fp8block_dequantize_rows(const uint8_t *src, int64_t nrows, int64_t cols,
	const float *scale_inv, float *dst);

#endif
