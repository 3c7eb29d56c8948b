/* ggml's K-quants (super-blocks of 256 values): Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and Q8_K. */
#include "quant_impl.h"

/*
 * Byte layouts (fp16 little-endian):
 *   Q2_K  84 B: scales[16] (lo nibble scale, hi nibble min), qs[64], d, dmin
 *   Q3_K 110 B: hmask[32], qs[64], scales[12] (16 x 6 bit), d
 *   Q4_K 144 B: d, dmin, scales[12] (8 x 6-bit scale + 8 x 6-bit min), qs[128]
 *   Q5_K 176 B: d, dmin, scales[12], qh[32], qs[128]
 *   Q6_K 210 B: ql[128], qh[64], scales[16] (int8), d
 *   Q8_K 292 B: d (f32), qs[256] (int8), bsums[16] (int16, sums of 16 quants)
 * The 2-bit fields of Q2_K/Q3_K/Q6_K are laid out in 128-value halves:
 * byte l of a 32-byte group holds elements l, l+32, l+64, l+96.
 */

/* Packs 2-bit levels L[256] into qs[64] (four 32-value planes per half). */
static void pack_2bit(const uint8_t *L, uint8_t *qs)
{
	for (int j = 0; j < QK_K; j += 128)
		for (int l = 0; l < 32; l++)
			qs[j / 4 + l] = (uint8_t)(L[j + l] | L[j + l + 32] << 2 |
				L[j + l + 64] << 4 | L[j + l + 96] << 6);
}

/* ---- Q2_K ---- */

static const struct moe_qkx_params Q2K_FIT = { 3, -0.5f, 0.1f, 15, 1 };

/* Stores 4-bit sub-block scales (or mins, shift 4) relative to their max;
 * returns the fp16-rounded super-block factor max/15. */
static void q2k_scales(const float *v, uint8_t *scales, int shift, uint8_t *dst)
{
	float mx = 0;

	for (int j = 0; j < QK_K / 16; j++)
		if (v[j] > mx)
			mx = v[j];
	if (mx > 0) {
		float iscale = 15.f / mx;

		for (int j = 0; j < QK_K / 16; j++)
			scales[j] |= (uint8_t)((unsigned)q_nearest_int(iscale * v[j]) << shift);
		q_put_f16(dst, mx / 15.f);
	} else {
		q_put_f16(dst, 0.f);
	}
}

static void q2k_block(const float *x, uint8_t *y)
{
	uint8_t L[QK_K];
	float w[16], mins[QK_K / 16], scales[QK_K / 16];

	for (int j = 0; j < QK_K / 16; j++) {
		for (int l = 0; l < 16; l++)
			w[l] = fabsf(x[16 * j + l]);
		scales[j] = moe_make_qkx2_quants(16, &Q2K_FIT, x + 16 * j, w,
			L + 16 * j, &mins[j]);
	}
	memset(y, 0, 16);
	q2k_scales(scales, y, 0, y + 80);
	q2k_scales(mins, y, 4, y + 82);
	/* requantize with the scales as stored */
	for (int j = 0; j < QK_K / 16; j++) {
		float d = q_f32_from_le16(y + 80) * (float)(y[j] & 0xf), dm;

		if (d == 0)
			continue;
		dm = q_f32_from_le16(y + 82) * (float)(y[j] >> 4);
		for (int ii = 0; ii < 16; ii++)
			L[16 * j + ii] = (uint8_t)q_clamp(
				q_nearest_int((x[16 * j + ii] + dm) / d), 0, 3);
	}
	pack_2bit(L, y + 16);
}

void moe_q2_k_quantize(const float *x, void *vy, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
		q2k_block(x + i * QK_K, (uint8_t *)vy + i * 84);
}

void moe_q2_k_dequantize(const void *vx, float *y, int64_t nb)
{
	const uint8_t *x = vx;

	for (int64_t i = 0; i < nb; i++, x += 84) {
		float d = q_f32_from_le16(x + 80), min = q_f32_from_le16(x + 82);
		const uint8_t *q = x + 16;
		int is = 0;

		for (int n = 0; n < QK_K; n += 128, q += 32)
			for (int shift = 0; shift < 8; shift += 2)
				for (int half = 0; half < 2; half++, is++) {
					float dl = d * (float)(x[is] & 0xf);
					float ml = min * (float)(x[is] >> 4);

					for (int l = 0; l < 16; l++)
						*y++ = dl * (float)((q[l + 16 * half] >> shift) & 3) - ml;
				}
	}
}

/* ---- Q3_K ---- */

static void q3k_set_scale(uint8_t *sc, int j, int l)
{
	if (j < 8)
		sc[j] = (uint8_t)(l & 0xf);
	else
		sc[j - 8] |= (uint8_t)((l & 0xf) << 4);
	sc[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
}

static void q3k_pack(int8_t *L, uint8_t *y)
{
	uint8_t U[QK_K];

	/* high bit of element j goes to hmask[j % 32], bit j / 32 */
	memset(y, 0, 32);
	for (int j = 0; j < QK_K; j++) {
		U[j] = (uint8_t)L[j];
		if (U[j] > 3) {
			y[j % 32] |= (uint8_t)(1u << (j / 32));
			U[j] -= 4;
		}
	}
	pack_2bit(U, y + 32);
}

static void q3k_block(const float *x, uint8_t *y)
{
	int8_t L[QK_K];
	float scales[QK_K / 16], max_scale = 0, amax = 0;
	uint8_t *sc = y + 96;

	for (int j = 0; j < QK_K / 16; j++) {
		scales[j] = moe_make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
		if (fabsf(scales[j]) > amax) {
			amax = fabsf(scales[j]);
			max_scale = scales[j];
		}
	}
	memset(sc, 0, 12);
	if (max_scale != 0) {
		float iscale = -32.f / max_scale;

		for (int j = 0; j < QK_K / 16; j++) {
			/* ggml keeps nearest_int() in an int8_t before clamping */
			int8_t l = (int8_t)(uint8_t)(q_nearest_int(iscale * scales[j]) & 0xff);

			q3k_set_scale(sc, j, q_clamp(l, -32, 31) + 32);
		}
		q_put_f16(y + 108, 1 / iscale);
	} else {
		q_put_f16(y + 108, 0.f);
	}
	for (int j = 0; j < QK_K / 16; j++) {
		float d = q_f32_from_le16(y + 108) * (float)(int8_t)q3k_scale(sc, j);

		if (d == 0)
			continue;
		for (int ii = 0; ii < 16; ii++)
			L[16 * j + ii] = (int8_t)(q_clamp(
				q_nearest_int(x[16 * j + ii] / d), -4, 3) + 4);
	}
	q3k_pack(L, y);
}

void moe_q3_k_quantize(const float *x, void *vy, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
		q3k_block(x + i * QK_K, (uint8_t *)vy + i * 110);
}

void moe_q3_k_dequantize(const void *vx, float *y, int64_t nb)
{
	const uint8_t *x = vx;

	for (int64_t i = 0; i < nb; i++, x += 110) {
		float d_all = q_f32_from_le16(x + 108);
		const uint8_t *hm = x, *q = x + 32;
		int is = 0, m = 0;

		for (int n = 0; n < QK_K; n += 128, q += 32)
			for (int shift = 0; shift < 8; shift += 2, m++)
				for (int half = 0; half < 2; half++, is++) {
					float dl = d_all * (float)q3k_scale(x + 96, is);

					for (int l = 16 * half; l < 16 * half + 16; l++) {
						int v = ((q[l] >> shift) & 3) - ((hm[l] >> m & 1) ? 0 : 4);

						*y++ = dl * (float)v;
					}
				}
	}
}

/* ---- Q4_K / Q5_K: 8 sub-blocks of 32 with 6-bit scales and mins ---- */

static const struct moe_qkx_params Q4K_FIT = { 15, -1.f, 0.1f, 20, 0 };
static const struct moe_qkx_params Q5K_FIT = { 31, -0.5f, 0.1f, 15, 0 };

static void get_scale_min_k4(int j, const uint8_t *q, int *d, int *m)
{
	if (j < 4) {
		*d = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*d = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
		*m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
	}
}

static void set_scale_min_k4(int j, uint8_t *q, int ls, int lm)
{
	if (j < 4) {
		q[j] = (uint8_t)ls;
		q[j + 4] = (uint8_t)lm;
	} else {
		q[j + 4] = (uint8_t)((ls & 0xf) | (lm & 0xf) << 4);
		q[j - 4] |= (uint8_t)((ls >> 4) << 6);
		q[j] |= (uint8_t)((lm >> 4) << 6);
	}
}

/*
 * Shared by Q4_K and Q5_K: fit each 32-value sub-block, store 6-bit
 * scales/mins relative to their maxima, then requantize every value with
 * the stored (fp16 x 6-bit) scale and min. hdr = d, dmin, scales[12].
 */
static void qk_fit_block(const float *x, const struct moe_qkx_params *fit,
	uint8_t *hdr, uint8_t *L)
{
	float w[32], mins[8], scales[8], max_scale = 0, max_min = 0;
	float inv_scale, inv_min;

	for (int j = 0; j < 8; j++) {
		float sum_x2 = 0, av_x;

		for (int l = 0; l < 32; l++)
			sum_x2 += x[32 * j + l] * x[32 * j + l];
		av_x = sqrtf(sum_x2 / 32);
		for (int l = 0; l < 32; l++)
			w[l] = av_x + fabsf(x[32 * j + l]);
		scales[j] = moe_make_qkx2_quants(32, fit, x + 32 * j, w, L + 32 * j, &mins[j]);
		if (scales[j] > max_scale)
			max_scale = scales[j];
		if (mins[j] > max_min)
			max_min = mins[j];
	}
	inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
	inv_min = max_min > 0 ? 63.f / max_min : 0.f;
	memset(hdr + 4, 0, 12);
	for (int j = 0; j < 8; j++) {
		/* ggml narrows nearest_int() to uint8_t before MIN(63, .) */
		int ls = q_min(63, q_nearest_int(inv_scale * scales[j]) & 0xff);
		int lm = q_min(63, q_nearest_int(inv_min * mins[j]) & 0xff);

		set_scale_min_k4(j, hdr + 4, ls, lm);
	}
	q_put_f16(hdr, max_scale / 63.f);
	q_put_f16(hdr + 2, max_min / 63.f);
	for (int j = 0; j < 8; j++) {
		int sc, m;
		float d, dm;

		get_scale_min_k4(j, hdr + 4, &sc, &m);
		d = q_f32_from_le16(hdr) * (float)sc;
		if (d == 0)
			continue;
		dm = q_f32_from_le16(hdr + 2) * (float)m;
		for (int ii = 0; ii < 32; ii++)
			L[32 * j + ii] = (uint8_t)q_clamp(
				q_nearest_int((x[32 * j + ii] + dm) / d), 0, fit->nmax);
	}
}

void moe_q4_k_quantize(const float *x, void *vy, int64_t nb)
{
	uint8_t L[QK_K];

	for (int64_t i = 0; i < nb; i++, x += QK_K) {
		uint8_t *y = (uint8_t *)vy + i * 144, *q = y + 16;

		qk_fit_block(x, &Q4K_FIT, y, L);
		for (int j = 0; j < QK_K; j += 64, q += 32)
			for (int l = 0; l < 32; l++)
				q[l] = (uint8_t)(L[j + l] | L[j + l + 32] << 4);
	}
}

void moe_q4_k_dequantize(const void *vx, float *y, int64_t nb)
{
	const uint8_t *x = vx;

	for (int64_t i = 0; i < nb; i++, x += 144) {
		float d = q_f32_from_le16(x), min = q_f32_from_le16(x + 2);
		const uint8_t *q = x + 16;

		for (int is = 0; is < 8; is += 2, q += 32) {
			int sc, m;
			float d1, m1, d2, m2;

			get_scale_min_k4(is, x + 4, &sc, &m);
			d1 = d * (float)sc;
			m1 = min * (float)m;
			get_scale_min_k4(is + 1, x + 4, &sc, &m);
			d2 = d * (float)sc;
			m2 = min * (float)m;
			for (int l = 0; l < 32; l++)
				*y++ = d1 * (float)(q[l] & 0xf) - m1;
			for (int l = 0; l < 32; l++)
				*y++ = d2 * (float)(q[l] >> 4) - m2;
		}
	}
}

void moe_q5_k_quantize(const float *x, void *vy, int64_t nb)
{
	uint8_t L[QK_K];

	for (int64_t i = 0; i < nb; i++, x += QK_K) {
		uint8_t *y = (uint8_t *)vy + i * 176, *qh = y + 16, *ql = y + 48;

		qk_fit_block(x, &Q5K_FIT, y, L);
		memset(qh, 0, 32);
		/* fifth bits: pair n/64 of bits in qh[j] holds elements n+j, n+j+32 */
		for (int n = 0, m1 = 1; n < QK_K; n += 64, m1 <<= 2, ql += 32)
			for (int j = 0; j < 32; j++) {
				int l1 = L[n + j], l2 = L[n + j + 32];

				if (l1 > 15) {
					l1 -= 16;
					qh[j] |= (uint8_t)m1;
				}
				if (l2 > 15) {
					l2 -= 16;
					qh[j] |= (uint8_t)(m1 << 1);
				}
				ql[j] = (uint8_t)(l1 | l2 << 4);
			}
	}
}

void moe_q5_k_dequantize(const void *vx, float *y, int64_t nb)
{
	const uint8_t *x = vx;

	for (int64_t i = 0; i < nb; i++, x += 176) {
		float d = q_f32_from_le16(x), min = q_f32_from_le16(x + 2);
		const uint8_t *qh = x + 16, *ql = x + 48;
		int u = 0;

		for (int is = 0; is < 8; is += 2, ql += 32, u += 2) {
			int sc, m;
			float d1, m1, d2, m2;

			get_scale_min_k4(is, x + 4, &sc, &m);
			d1 = d * (float)sc;
			m1 = min * (float)m;
			get_scale_min_k4(is + 1, x + 4, &sc, &m);
			d2 = d * (float)sc;
			m2 = min * (float)m;
			for (int l = 0; l < 32; l++)
				*y++ = d1 * (float)((ql[l] & 0xf) + ((qh[l] >> u & 1) ? 16 : 0)) - m1;
			for (int l = 0; l < 32; l++)
				*y++ = d2 * (float)((ql[l] >> 4) + ((qh[l] >> (u + 1) & 1) ? 16 : 0)) - m2;
		}
	}
}

/* ---- Q6_K ---- */

static void q6k_pack(const int8_t *L, uint8_t *y)
{
	uint8_t *ql = y, *qh = y + 128;

	for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32)
		for (int l = 0; l < 32; l++) {
			int q1 = L[j + l], q2 = L[j + l + 32];
			int q3 = L[j + l + 64], q4 = L[j + l + 96];

			ql[l] = (uint8_t)((q1 & 0xf) | (q3 & 0xf) << 4);
			ql[l + 32] = (uint8_t)((q2 & 0xf) | (q4 & 0xf) << 4);
			qh[l] = (uint8_t)(q1 >> 4 | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6);
		}
}

static void q6k_block(const float *x, uint8_t *y)
{
	int8_t L[QK_K];
	float scales[QK_K / 16], max_scale = 0, max_abs = 0, iscale;
	int8_t *sc = (int8_t *)(y + 192);

	for (int ib = 0; ib < QK_K / 16; ib++) {
		scales[ib] = moe_make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
		if (fabsf(scales[ib]) > max_abs) {
			max_abs = fabsf(scales[ib]);
			max_scale = scales[ib];
		}
	}
	if (max_abs < GROUP_MAX_EPS) {
		memset(y, 0, 210);
		return;
	}
	iscale = -128.f / max_scale;
	q_put_f16(y + 208, 1 / iscale);
	for (int ib = 0; ib < QK_K / 16; ib++)
		sc[ib] = (int8_t)q_min(127, q_nearest_int(iscale * scales[ib]));
	for (int j = 0; j < QK_K / 16; j++) {
		float d = q_f32_from_le16(y + 208) * (float)sc[j];

		if (d == 0)
			continue;
		for (int ii = 0; ii < 16; ii++)
			L[16 * j + ii] = (int8_t)(q_clamp(
				q_nearest_int(x[16 * j + ii] / d), -32, 31) + 32);
	}
	q6k_pack(L, y);
}

void moe_q6_k_quantize(const float *x, void *vy, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
		q6k_block(x + i * QK_K, (uint8_t *)vy + i * 210);
}

void moe_q6_k_dequantize(const void *vx, float *y, int64_t nb)
{
	const uint8_t *x = vx;

	for (int64_t i = 0; i < nb; i++, x += 210) {
		float d = q_f32_from_le16(x + 208);
		const uint8_t *ql = x, *qh = x + 128;
		const int8_t *sc = (const int8_t *)(x + 192);

		for (int n = 0; n < QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8)
			for (int l = 0; l < 32; l++) {
				int is = l / 16;
				int q1 = ((ql[l] & 0xf) | ((qh[l] >> 0) & 3) << 4) - 32;
				int q2 = ((ql[l + 32] & 0xf) | ((qh[l] >> 2) & 3) << 4) - 32;
				int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
				int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;

				y[l] = d * (float)sc[is] * (float)q1;
				y[l + 32] = d * (float)sc[is + 2] * (float)q2;
				y[l + 64] = d * (float)sc[is + 4] * (float)q3;
				y[l + 96] = d * (float)sc[is + 6] * (float)q4;
			}
	}
}

/* ---- Q8_K: the activation format K-quant dot products use ---- */

static void put_f32(uint8_t *p, float f)
{
	memcpy(p, &f, 4);
}

void moe_q8_k_quantize(const float *x, void *vy, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, x += QK_K) {
		uint8_t *y = (uint8_t *)vy + i * 292;
		int k = q_absmax_index(QK_K, x);
		float iscale;

		memset(y, 0, 292);
		if (k < 0)
			continue;
		/* -127 rather than -128 keeps every quant in [-127, 127] */
		iscale = -127.f / x[k];
		for (int j = 0; j < QK_K; j++)
			y[4 + j] = (uint8_t)q_min(127, q_nearest_int(iscale * x[j]));
		for (int j = 0; j < QK_K / 16; j++) {
			int sum = 0;

			for (int ii = 0; ii < 16; ii++)
				sum += (int8_t)y[4 + 16 * j + ii];
			y[260 + 2 * j] = (uint8_t)(sum & 0xff);
			y[261 + 2 * j] = (uint8_t)((sum >> 8) & 0xff);
		}
		put_f32(y, 1 / iscale);
	}
}

void moe_q8_k_dequantize(const void *vx, float *y, int64_t nb)
{
	const uint8_t *x = vx;

	for (int64_t i = 0; i < nb; i++, x += 292) {
		float d;

		memcpy(&d, x, 4);
		for (int j = 0; j < QK_K; j++)
			*y++ = d * (float)(int8_t)x[4 + j];
	}
}
