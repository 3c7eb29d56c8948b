/* ggml's non-linear 4-bit quantizers IQ4_NL (blocks of 32) and IQ4_XS (super-blocks of 256). */
#include "quant_impl.h"

/*
 * Byte layouts (fp16 little-endian):
 *   IQ4_NL  18 B: d, qs[16]                              value = d * K[q]
 *   IQ4_XS 136 B: d, scales_h (u16), scales_l[4], qs[128]
 *                 value = d * (ls - 32) * K[q], ls 6 bits per 32 values
 * Nibble byte j of each 32-value group holds element j (low) and j + 16
 * (high).
 */

/* The 16 levels K[] of both formats: a non-uniform grid, denser near zero,
 * fitted by ggml to normally distributed weights (kvalues_iq4nl). */
static const int8_t IQ4_LEVELS[16] = {
	-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113
};

#define NTRY 7  /* scales tried on each side of the initial one */

/* Index of the level nearest to v (ties to the upper level), by the same
 * comparisons as ggml's best_index_int8() so rounding agrees. */
static int nearest_level(float v)
{
	int lo = 0, hi = 15;

	if (v <= IQ4_LEVELS[0])
		return 0;
	if (v >= IQ4_LEVELS[15])
		return 15;
	while (hi - lo > 1) {
		int mid = (lo + hi) / 2;

		if (v < IQ4_LEVELS[mid])
			hi = mid;
		else
			lo = mid;
	}
	return v - IQ4_LEVELS[hi - 1] < IQ4_LEVELS[hi] - v ? hi - 1 : hi;
}

/* Weighted (w = x^2) sums for the levels chosen at inverse scale id. */
static void level_sums(const float *x, float id, float *sumqx, float *sumq2)
{
	float sqx = 0, sq2 = 0;

	for (int j = 0; j < 32; j++) {
		float q = IQ4_LEVELS[nearest_level(id * x[j])];
		float w = x[j] * x[j];

		sqx += w * q * x[j];
		sq2 += w * q * q;
	}
	*sumqx = sqx;
	*sumq2 = sq2;
}

/*
 * Best scale for one 32-value group: start with the largest-magnitude
 * value on level -127, then try 2 * NTRY + 1 other scales and keep the
 * best weighted least-squares fit. Returns 0 for an all-(near-)zero group.
 */
static float group_scale(const float *x)
{
	float amax = 0, max = 0, d, best, sumqx, sumq2;

	for (int j = 0; j < 32; j++) {
		if (fabsf(x[j]) > amax) {
			amax = fabsf(x[j]);
			max = x[j];
		}
	}
	if (amax < GROUP_MAX_EPS)
		return 0;
	d = -max / IQ4_LEVELS[0];
	level_sums(x, 1 / d, &sumqx, &sumq2);
	d = sumqx / sumq2;
	best = d * sumqx;
	for (int itry = -NTRY; itry <= NTRY; itry++) {
		level_sums(x, (float)(itry + IQ4_LEVELS[0]) / max, &sumqx, &sumq2);
		if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
			d = sumqx / sumq2;
			best = d * sumqx;
		}
	}
	return d;
}

static void pack_group(const float *x, float id, uint8_t *qs)
{
	for (int j = 0; j < 16; j++)
		qs[j] = (uint8_t)(nearest_level(id * x[j]) |
			nearest_level(id * x[j + 16]) << 4);
}

void moe_iq4_nl_quantize(const float *x, void *vy, int64_t nb)
{
	uint8_t *y = vy;

	for (int64_t i = 0; i < nb; i++, x += 32, y += 18) {
		float d = group_scale(x);

		q_put_f16(y, d);
		/* ggml requantizes with the unrounded scale, not the fp16 one */
		pack_group(x, d != 0 ? 1 / d : 0, y + 2);
	}
}

void moe_iq4_nl_dequantize(const void *vx, float *y, int64_t nb)
{
	const uint8_t *x = vx;

	for (int64_t i = 0; i < nb; i++, x += 18, y += 32) {
		float d = q_f32_from_le16(x);

		for (int j = 0; j < 16; j++) {
			y[j] = d * (float)IQ4_LEVELS[x[2 + j] & 0xf];
			y[j + 16] = d * (float)IQ4_LEVELS[x[2 + j] >> 4];
		}
	}
}

/* One IQ4_XS super-block: 8 group scales coded as 6-bit multiples of
 * d = -max_scale / 32, then every group requantized with its coded scale. */
static void iq4_xs_block(const float *x, uint8_t *y)
{
	float scales[8], max_scale = 0, amax_scale = 0, d, id;
	uint16_t sh = 0;

	for (int ib = 0; ib < 8; ib++) {
		scales[ib] = group_scale(x + 32 * ib);
		if (fabsf(scales[ib]) > amax_scale) {
			amax_scale = fabsf(scales[ib]);
			max_scale = scales[ib];
		}
	}
	/* all-zero blocks store d = -0.0 (0x8000), as ggml does */
	d = -max_scale / 32;
	q_put_f16(y, d);
	id = d != 0 ? 1 / d : 0.f;
	memset(y + 4, 0, 4);
	for (int ib = 0; ib < 8; ib++) {
		int l = q_clamp(q_nearest_int(id * scales[ib]), -32, 31);
		float dl = d * (float)l;

		pack_group(x + 32 * ib, dl != 0 ? 1 / dl : 0.f, y + 8 + 16 * ib);
		l += 32;
		y[4 + ib / 2] |= (uint8_t)((l & 0xf) << 4 * (ib % 2));
		sh |= (uint16_t)((l >> 4) << 2 * ib);
	}
	y[2] = (uint8_t)sh;
	y[3] = (uint8_t)(sh >> 8);
}

void moe_iq4_xs_quantize(const float *x, void *vy, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
		iq4_xs_block(x + i * QK_K, (uint8_t *)vy + i * 136);
}

void moe_iq4_xs_dequantize(const void *vx, float *y, int64_t nb)
{
	const uint8_t *x = vx;

	for (int64_t i = 0; i < nb; i++, x += 136) {
		float d = q_f32_from_le16(x);
		unsigned sh = x[2] | (unsigned)x[3] << 8;

		for (int ib = 0; ib < 8; ib++, y += 32) {
			int ls = ((x[4 + ib / 2] >> 4 * (ib % 2)) & 0xf) |
				(int)((sh >> 2 * ib) & 3) << 4;
			float dl = d * (float)(ls - 32);
			const uint8_t *qs = x + 8 + 16 * ib;

			for (int j = 0; j < 16; j++) {
				y[j] = dl * (float)IQ4_LEVELS[qs[j] & 0xf];
				y[j + 16] = dl * (float)IQ4_LEVELS[qs[j] >> 4];
			}
		}
	}
}

/* Dot product with a Q8_0 activation row (ggml's generic
 * vec_dot_iq4_nl_q8_0: both fp16 scales multiplied first). */
float moe_iq4_nl_vec_dot(int64_t nb, const void *vx, const void *vy)
{
	const uint8_t *x = vx, *y = vy;
	float sumf = 0;

	for (int64_t i = 0; i < nb; i++, x += 18, y += 34) {
		float d = q_f32_from_le16(y) * q_f32_from_le16(x);
		int sumi = 0;

		for (int j = 0; j < 16; j++) {
			sumi += (int8_t)y[2 + j] * IQ4_LEVELS[x[2 + j] & 0xf];
			sumi += (int8_t)y[2 + j + 16] * IQ4_LEVELS[x[2 + j] >> 4];
		}
		sumf += d * (float)sumi;
	}
	return sumf;
}

/* Dot product with a Q8_K activation row (292-byte blocks: f32 d,
 * qs[256], bsums[16]); one float term per 32-value group. */
float moe_iq4_xs_vec_dot(int64_t nb, const void *vx, const void *vy)
{
	const uint8_t *x = vx, *y = vy;
	float sumf = 0;

	for (int64_t i = 0; i < nb; i++, x += 136, y += 292) {
		float dy, d4d8;
		unsigned sh = x[2] | (unsigned)x[3] << 8;

		memcpy(&dy, y, 4);
		d4d8 = q_f32_from_le16(x) * dy;
		for (int ib = 0; ib < 8; ib++) {
			int ls = ((x[4 + ib / 2] >> 4 * (ib % 2)) & 0xf) |
				(int)((sh >> 2 * ib) & 3) << 4;
			const uint8_t *qs = x + 8 + 16 * ib;
			const int8_t *q8 = (const int8_t *)(y + 4 + 32 * ib);
			int sumi = 0;

			for (int j = 0; j < 16; j++) {
				sumi += q8[j] * IQ4_LEVELS[qs[j] & 0xf];
				sumi += q8[j + 16] * IQ4_LEVELS[qs[j] >> 4];
			}
			sumf += d4d8 * (float)(ls - 32) * (float)sumi;
		}
	}
	return sumf;
}
