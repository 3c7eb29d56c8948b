/* ggml's original 32-value block quantizers: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0. */
#include <float.h>

#include "quant_impl.h"

/*
 * Byte layouts (little-endian fp16 first, then the quants):
 *   Q4_0 18 B: d, qs[16]             value = (q - 8) * d
 *   Q4_1 20 B: d, m, qs[16]          value = q * d + m
 *   Q5_0 22 B: d, qh[4], qs[16]      value = (q - 16) * d
 *   Q5_1 24 B: d, m, qh[4], qs[16]   value = q * d + m
 *   Q8_0 34 B: d, qs[32] (int8)      value = q * d
 * Nibble byte j holds element j (low) and element j + 16 (high); bit j of
 * qh is the fifth bit of element j.
 */
#define QK 32

/* The element of largest magnitude, keeping its sign (first one on ties):
 * Q4_0/Q5_0 map it to the most negative level so it is exact. */
static float signed_absmax(const float *x)
{
	float amax = 0.0f, max = 0.0f;

	for (int j = 0; j < QK; j++) {
		if (amax < fabsf(x[j])) {
			amax = fabsf(x[j]);
			max = x[j];
		}
	}
	return max;
}

static void min_max(const float *x, float *mn, float *mx)
{
	float lo = FLT_MAX, hi = -FLT_MAX;

	for (int j = 0; j < QK; j++) {
		if (x[j] < lo)
			lo = x[j];
		if (x[j] > hi)
			hi = x[j];
	}
	*mn = lo;
	*mx = hi;
}

static uint32_t load_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		(uint32_t)p[3] << 24;
}

static void store_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> 8 * i);
}

void moe_q4_0_quantize(const float *x, void *vy, int64_t nb)
{
	uint8_t *y = vy;

	for (int64_t i = 0; i < nb; i++, x += QK, y += 18) {
		float d = signed_absmax(x) / -8;
		float id = d != 0.0f ? 1.0f / d : 0.0f;

		q_put_f16(y, d);
		for (int j = 0; j < QK / 2; j++) {
			/* truncation after +8.5 rounds half up around the offset 8 */
			int lo = q_min(15, q_trunc_i8(x[j] * id + 8.5f));
			int hi = q_min(15, q_trunc_i8(x[j + QK / 2] * id + 8.5f));

			y[2 + j] = (uint8_t)(lo | hi << 4);
		}
	}
}

void moe_q4_0_dequantize(const void *vx, float *y, int64_t nb)
{
	const uint8_t *x = vx;

	for (int64_t i = 0; i < nb; i++, x += 18, y += QK) {
		float d = q_f32_from_le16(x);

		for (int j = 0; j < QK / 2; j++) {
			y[j] = (float)((x[2 + j] & 0x0f) - 8) * d;
			y[j + QK / 2] = (float)((x[2 + j] >> 4) - 8) * d;
		}
	}
}

void moe_q4_1_quantize(const float *x, void *vy, int64_t nb)
{
	uint8_t *y = vy;

	for (int64_t i = 0; i < nb; i++, x += QK, y += 20) {
		float mn, mx, d, id;

		min_max(x, &mn, &mx);
		d = (mx - mn) / 15;
		id = d != 0.0f ? 1.0f / d : 0.0f;
		q_put_f16(y, d);
		q_put_f16(y + 2, mn);
		for (int j = 0; j < QK / 2; j++) {
			int lo = q_min(15, q_trunc_i8((x[j] - mn) * id + 0.5f));
			int hi = q_min(15, q_trunc_i8((x[j + QK / 2] - mn) * id + 0.5f));

			y[4 + j] = (uint8_t)(lo | hi << 4);
		}
	}
}

void moe_q4_1_dequantize(const void *vx, float *y, int64_t nb)
{
	const uint8_t *x = vx;

	for (int64_t i = 0; i < nb; i++, x += 20, y += QK) {
		float d = q_f32_from_le16(x), m = q_f32_from_le16(x + 2);

		for (int j = 0; j < QK / 2; j++) {
			y[j] = (float)(x[4 + j] & 0x0f) * d + m;
			y[j + QK / 2] = (float)(x[4 + j] >> 4) * d + m;
		}
	}
}

void moe_q5_0_quantize(const float *x, void *vy, int64_t nb)
{
	uint8_t *y = vy;

	for (int64_t i = 0; i < nb; i++, x += QK, y += 22) {
		float d = signed_absmax(x) / -16;
		float id = d != 0.0f ? 1.0f / d : 0.0f;
		uint32_t qh = 0;

		q_put_f16(y, d);
		for (int j = 0; j < QK / 2; j++) {
			uint8_t lo = (uint8_t)q_min(31, q_trunc_i8(x[j] * id + 16.5f));
			uint8_t hi = (uint8_t)q_min(31, q_trunc_i8(x[j + QK / 2] * id + 16.5f));

			y[6 + j] = (uint8_t)((lo & 0x0f) | (hi & 0x0f) << 4);
			qh |= (uint32_t)((lo & 0x10) >> 4) << j;
			qh |= (uint32_t)((hi & 0x10) >> 4) << (j + QK / 2);
		}
		store_u32(y + 2, qh);
	}
}

void moe_q5_0_dequantize(const void *vx, float *y, int64_t nb)
{
	const uint8_t *x = vx;

	for (int64_t i = 0; i < nb; i++, x += 22, y += QK) {
		float d = q_f32_from_le16(x);
		uint32_t qh = load_u32(x + 2);

		for (int j = 0; j < QK / 2; j++) {
			int lo = (x[6 + j] & 0x0f) | (int)((qh >> j) << 4 & 0x10);
			int hi = (x[6 + j] >> 4) | (int)((qh >> (j + 12)) & 0x10);

			y[j] = (float)(lo - 16) * d;
			y[j + QK / 2] = (float)(hi - 16) * d;
		}
	}
}

void moe_q5_1_quantize(const float *x, void *vy, int64_t nb)
{
	uint8_t *y = vy;

	for (int64_t i = 0; i < nb; i++, x += QK, y += 24) {
		float mn, mx, d, id;
		uint32_t qh = 0;

		min_max(x, &mn, &mx);
		d = (mx - mn) / 31;
		id = d != 0.0f ? 1.0f / d : 0.0f;
		q_put_f16(y, d);
		q_put_f16(y + 2, mn);
		for (int j = 0; j < QK / 2; j++) {
			/* ggml has no clamp here: (max - min) * id + 0.5 < 32 */
			uint8_t lo = (uint8_t)q_trunc_i8((x[j] - mn) * id + 0.5f);
			uint8_t hi = (uint8_t)q_trunc_i8((x[j + QK / 2] - mn) * id + 0.5f);

			y[8 + j] = (uint8_t)((lo & 0x0f) | (hi & 0x0f) << 4);
			qh |= (uint32_t)((lo & 0x10) >> 4) << j;
			qh |= (uint32_t)((hi & 0x10) >> 4) << (j + QK / 2);
		}
		store_u32(y + 4, qh);
	}
}

void moe_q5_1_dequantize(const void *vx, float *y, int64_t nb)
{
	const uint8_t *x = vx;

	for (int64_t i = 0; i < nb; i++, x += 24, y += QK) {
		float d = q_f32_from_le16(x), m = q_f32_from_le16(x + 2);
		uint32_t qh = load_u32(x + 4);

		for (int j = 0; j < QK / 2; j++) {
			int lo = (x[8 + j] & 0x0f) | (int)((qh >> j) << 4 & 0x10);
			int hi = (x[8 + j] >> 4) | (int)((qh >> (j + 12)) & 0x10);

			y[j] = (float)lo * d + m;
			y[j + QK / 2] = (float)hi * d + m;
		}
	}
}

void moe_q8_0_quantize(const float *x, void *vy, int64_t nb)
{
	uint8_t *y = vy;

	for (int64_t i = 0; i < nb; i++, x += QK, y += 34) {
		float amax = 0.0f, d, id;

		/* ggml's MAX(): a NaN makes amax NaN, unlike fmaxf() */
		for (int j = 0; j < QK; j++) {
			float a = fabsf(x[j]);

			amax = amax > a ? amax : a;
		}
		d = amax / 127;
		id = d != 0.0f ? 1.0f / d : 0.0f;
		q_put_f16(y, d);
		/* roundf: halves away from zero (the runtime quantizer differs) */
		for (int j = 0; j < QK; j++)
			y[2 + j] = (uint8_t)(q_round_away(x[j] * id) & 0xff);
	}
}

void moe_q8_0_dequantize(const void *vx, float *y, int64_t nb)
{
	const uint8_t *x = vx;

	for (int64_t i = 0; i < nb; i++, x += 34, y += QK) {
		float d = q_f32_from_le16(x);

		for (int j = 0; j < QK; j++)
			y[j] = (float)(int8_t)x[2 + j] * d;
	}
}
