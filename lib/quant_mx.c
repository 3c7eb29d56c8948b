/* MXFP4 (OCP Microscaling FP4, ggml type 39): 32 FP4 E2M1 values sharing one E8M0 power-of-two scale. */
#include "quant_impl.h"

/*
 * Byte layout of one 17-byte block: e (E8M0 exponent byte), qs[16];
 * byte j holds element j (low nibble) and element j + 16 (high nibble).
 * A nibble is an E2M1 code: sign bit 3, magnitudes 0, 0.5, 1, 1.5, 2, 3,
 * 4, 6. ggml stores them doubled as integers (below) and halves the
 * scale instead, so value = MXFP4_LEVELS[q] * 2^(e - 127) / 2.
 *
 * Shared exponent (as ggml's quantize_row_mxfp4_ref, and the OCP MX
 * spec's suggested conversion): e = floor(log2(amax)) - 2 + 127, where 2
 * is E2M1's largest exponent; so amax lands in [4, 8) x scale and values
 * above 6 x scale clamp to 6. Each value then takes the nearest level;
 * on a tie the lower index wins (the smaller magnitude), because ggml
 * scans the table in order with a strict "<".
 */
static const int8_t MXFP4_LEVELS[16] = {
	0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12
};

/* 2^(e - 128): half the E8M0 scale, exact also for e = 0, 1 (subnormal). */
static float e8m0_half(uint8_t e)
{
	uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
	float f;

	memcpy(&f, &bits, 4);
	return f;
}

/*
 * ggml computes the exponent byte as (uint8_t)(float) and so wraps for
 * amax < 2^-125 (undefined behaviour in C). We clamp to [0, 254]
 * instead: identical for every amax in [2^-125, 2^129), and tiny blocks
 * still quantize to their nearest representable values (or zero).
 */
static uint8_t shared_exponent(float amax)
{
	float e;

	if (!(amax > 0.0f))
		return 0;
	e = floorf(log2f(amax)) - 2 + 127;
	if (!(e >= 0.0f))
		return 0;
	return e > 254.0f ? 254 : (uint8_t)e;
}

static int nearest_fp4(float x, float d)
{
	int best = 0;
	float best_err = fabsf((float)MXFP4_LEVELS[0] * d - x);

	for (int i = 1; i < 16; i++) {
		float err = fabsf((float)MXFP4_LEVELS[i] * d - x);

		if (err < best_err) {
			best = i;
			best_err = err;
		}
	}
	return best;
}

void moe_mxfp4_quantize(const float *x, void *vy, int64_t nb)
{
	uint8_t *y = vy;

	for (int64_t i = 0; i < nb; i++, x += 32, y += 17) {
		float amax = 0.0f, d;

		for (int j = 0; j < 32; j++)
			if (amax < fabsf(x[j]))
				amax = fabsf(x[j]);
		y[0] = shared_exponent(amax);
		d = e8m0_half(y[0]);
		for (int j = 0; j < 16; j++)
			y[1 + j] = (uint8_t)(nearest_fp4(x[j], d) |
				nearest_fp4(x[j + 16], d) << 4);
	}
}

void moe_mxfp4_dequantize(const void *vx, float *y, int64_t nb)
{
	const uint8_t *x = vx;

	for (int64_t i = 0; i < nb; i++, x += 17, y += 32) {
		float d = e8m0_half(x[0]);

		for (int j = 0; j < 16; j++) {
			y[j] = (float)MXFP4_LEVELS[x[1 + j] & 0xf] * d;
			y[j + 16] = (float)MXFP4_LEVELS[x[1 + j] >> 4] * d;
		}
	}
}

/* Dot product with a Q8_0 activation row (ggml's generic
 * vec_dot_mxfp4_q8_0: the two scales are multiplied first). */
float moe_mxfp4_vec_dot(int64_t nb, const void *vx, const void *vy)
{
	const uint8_t *x = vx, *y = vy;
	float sumf = 0;

	for (int64_t i = 0; i < nb; i++, x += 17, y += 34) {
		float d = q_f32_from_le16(y) * e8m0_half(x[0]);
		int sumi = 0;

		for (int j = 0; j < 16; j++) {
			sumi += (int8_t)y[2 + j] * MXFP4_LEVELS[x[1 + j] & 0xf];
			sumi += (int8_t)y[2 + j + 16] * MXFP4_LEVELS[x[1 + j] >> 4];
		}
		sumf += d * (float)sumi;
	}
	return sumf;
}
