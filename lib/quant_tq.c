/* ggml's ternary quantizers TQ1_0 and TQ2_0 (BitNet b1.58 / TriLM weights, values -1, 0, +1 times d). */
#include "quant_impl.h"

/*
 * Byte layouts of one 256-value block (fp16 d last, little-endian):
 *   TQ1_0 54 B: qs[48], qh[4], d   base-3 digits, 5 per byte (4 in qh)
 *   TQ2_0 66 B: qs[64], d          2 bits per value, 4 per byte
 * A TQ1_0 byte stores its digits as a fixed-point fraction,
 * ceil(n * 256 / 243) for the 5-digit number n, so that multiplying by 3
 * shifts the next digit into the top of a 16-bit product (see
 * tq1_digit()).
 */

static float amax_of(const float *x, int n)
{
	float amax = 0.0f;

	/* ggml's MAX(): keeps NaN once seen */
	for (int j = 0; j < n; j++)
		amax = amax > fabsf(x[j]) ? amax : fabsf(x[j]);
	return amax;
}

/* Ternary digit 0, 1, 2 for -1, 0, +1 (lroundf: halves away from zero). */
static int trit(float v, float id)
{
	return (int)lroundf(v * id) + 1;
}

/* Packs the digits of x[0], x[stride], ... (ndig of them, most significant
 * first) as ceil(n * 256 / 243), with pad extra zero digits appended. */
static uint8_t tq1_byte(const float *x, int stride, int ndig, int pad, float id)
{
	uint8_t q = 0;

	for (int n = 0; n < ndig; n++)
		q = (uint8_t)(q * 3 + trit(x[n * stride], id));
	for (int n = 0; n < pad; n++)
		q = (uint8_t)(q * 3);
	return (uint8_t)(((uint16_t)q * 256 + (243 - 1)) / 243);
}

void moe_tq1_0_quantize(const float *x, void *vy, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, x += QK_K) {
		uint8_t *y = (uint8_t *)vy + i * 54;
		float d = amax_of(x, QK_K);
		float id = d != 0.0f ? 1.0f / d : 0.0f;

		/* qs[0..31]: values 0..159, digit n of byte m is x[m + 32n] */
		for (int m = 0; m < 32; m++)
			y[m] = tq1_byte(x + m, 32, 5, 0, id);
		/* qs[32..47]: values 160..239 with stride 16 */
		for (int m = 0; m < 16; m++)
			y[32 + m] = tq1_byte(x + 160 + m, 16, 5, 0, id);
		/* qh[0..3]: values 240..255, four digits each */
		for (int j = 0; j < 4; j++)
			y[48 + j] = tq1_byte(x + 240 + j, 4, 4, 1, id);
		q_put_f16(y + 52, d);
	}
}

/* Digit n (0 = most significant) of a TQ1_0 byte. */
static int tq1_digit(uint8_t b, int n)
{
	static const uint8_t pow3[5] = { 1, 3, 9, 27, 81 };
	uint8_t q = (uint8_t)(b * pow3[n]);

	return ((uint16_t)q * 3) >> 8;
}

void moe_tq1_0_dequantize(const void *vx, float *y, int64_t nb)
{
	const uint8_t *x = vx;

	for (int64_t i = 0; i < nb; i++, x += 54) {
		float d = q_f32_from_le16(x + 52);

		for (int n = 0; n < 5; n++)
			for (int m = 0; m < 32; m++)
				*y++ = (float)(tq1_digit(x[m], n) - 1) * d;
		for (int n = 0; n < 5; n++)
			for (int m = 0; m < 16; m++)
				*y++ = (float)(tq1_digit(x[32 + m], n) - 1) * d;
		for (int n = 0; n < 4; n++)
			for (int j = 0; j < 4; j++)
				*y++ = (float)(tq1_digit(x[48 + j], n) - 1) * d;
	}
}

void moe_tq2_0_quantize(const float *x, void *vy, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, x += QK_K) {
		uint8_t *y = (uint8_t *)vy + i * 66;
		float d = amax_of(x, QK_K);
		float id = d != 0.0f ? 1.0f / d : 0.0f;

		/* byte m of each 32-byte half: x[m + 32n] in bits 2n..2n+1 */
		for (int j = 0; j < 64; j += 32)
			for (int m = 0; m < 32; m++) {
				unsigned q = 0;

				for (int n = 0; n < 4; n++)
					q += (unsigned)(trit(x[4 * j + m + 32 * n], id) & 3) << (2 * n);
				y[j + m] = (uint8_t)q;
			}
		q_put_f16(y + 64, d);
	}
}

void moe_tq2_0_dequantize(const void *vx, float *y, int64_t nb)
{
	const uint8_t *x = vx;

	for (int64_t i = 0; i < nb; i++, x += 66) {
		float d = q_f32_from_le16(x + 64);

		for (int j = 0; j < 64; j += 32)
			for (int l = 0; l < 4; l++)
				for (int m = 0; m < 32; m++)
					*y++ = (float)(((x[j + m] >> (2 * l)) & 3) - 1) * d;
	}
}
