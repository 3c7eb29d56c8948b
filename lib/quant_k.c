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

/* Below this a group counts as all zero (ggml's GROUP_MAX_EPS). */
#define GROUP_MAX_EPS 1e-15f

/* Index of the element of largest magnitude (first one on ties). */
static int absmax_index(int n, const float *x)
{
	float amax = 0;
	int k = -1;

	for (int i = 0; i < n; i++) {
		if (fabsf(x[i]) > amax) {
			amax = fabsf(x[i]);
			k = i;
		}
	}
	return k;
}

/*
 * Symmetric n-level fit used by Q6_K (ggml's make_qx_quants with
 * rmse_type 1 and no importance weights): start from scale max/-nmax,
 * then try 18 nearby scales and keep the one with the best weighted
 * (w = x^2) least-squares fit. L receives levels + nmax.
 */
static void qx_sums(int n, int nmax, const float *x, float iscale,
	int8_t *L, float *sumlx, float *suml2)
{
	float slx = 0, sl2 = 0;

	for (int i = 0; i < n; i++) {
		int l = q_clamp(q_nearest_int(iscale * x[i]), -nmax, nmax - 1);
		float w = x[i] * x[i];

		if (L)
			L[i] = (int8_t)(l + nmax);
		slx += w * x[i] * (float)l;
		sl2 += w * (float)l * (float)l;
	}
	*sumlx = slx;
	*suml2 = sl2;
}

static float make_qx_quants(int n, int nmax, const float *x, int8_t *L)
{
	int k = absmax_index(n, x);
	float max, iscale, sumlx, suml2, scale, best;

	if (k < 0 || fabsf(x[k]) < GROUP_MAX_EPS) {
		memset(L, 0, (size_t)n);
		return 0.f;
	}
	max = x[k];
	iscale = (float)-nmax / max;
	qx_sums(n, nmax, x, iscale, L, &sumlx, &suml2);
	scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
	best = scale * sumlx;
	for (int is = -9; is <= 9; is++) {
		if (is == 0)
			continue;
		iscale = -((float)nmax + 0.1f * (float)is) / max;
		qx_sums(n, nmax, x, iscale, NULL, &sumlx, &suml2);
		if (suml2 > 0 && sumlx * sumlx > best * suml2) {
			qx_sums(n, nmax, x, iscale, L, &sumlx, &suml2);
			scale = sumlx / suml2;
			best = scale * sumlx;
		}
	}
	return scale;
}

/*
 * Q3_K's 4-level symmetric fit (make_q3_quants with do_rmse): after the
 * initial rounding, up to 5 passes move single elements to the level that
 * improves the weighted fit. L receives levels + nmax.
 */
static int q3_refine_pass(int n, int nmax, const float *x, int8_t *L,
	float *sumlx, float *suml2)
{
	int changed = 0;

	for (int i = 0; i < n; i++) {
		float w = x[i] * x[i];
		float slx = *sumlx - w * x[i] * (float)L[i], sl2;
		int nl;

		if (!(slx > 0))
			continue;
		sl2 = *suml2 - w * (float)L[i] * (float)L[i];
		nl = q_clamp(q_nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
		if (nl == L[i])
			continue;
		slx += w * x[i] * (float)nl;
		sl2 += w * (float)nl * (float)nl;
		if (sl2 > 0 && slx * slx * *suml2 > *sumlx * *sumlx * sl2) {
			L[i] = (int8_t)nl;
			*sumlx = slx;
			*suml2 = sl2;
			changed++;
		}
	}
	return changed;
}

static float make_q3_quants(int n, int nmax, const float *x, int8_t *L)
{
	int k = absmax_index(n, x);
	float iscale, sumlx = 0, suml2 = 0;

	if (k < 0 || fabsf(x[k]) < GROUP_MAX_EPS) {
		memset(L, 0, (size_t)n);
		return 0.f;
	}
	iscale = (float)-nmax / x[k];
	for (int i = 0; i < n; i++) {
		int l = q_clamp(q_nearest_int(iscale * x[i]), -nmax, nmax - 1);
		float w = x[i] * x[i];

		L[i] = (int8_t)l;
		sumlx += w * x[i] * (float)l;
		suml2 += w * (float)l * (float)l;
	}
	for (int itry = 0; itry < 5; itry++)
		if (!q3_refine_pass(n, nmax, x, L, &sumlx, &suml2))
			break;
	for (int i = 0; i < n; i++)
		L[i] = (int8_t)(L[i] + nmax);
	return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/*
 * Asymmetric fit x ~ scale * L + min with min <= 0 (make_qkx2_quants):
 * start from the min/max range, then try nstep + 1 scales around it,
 * solving the weighted least-squares scale and min for each rounding and
 * keeping the one with the smallest weighted error (absolute error when
 * use_mad). Returns the scale; *the_min receives -min.
 */
struct qkx_params {
	int nmax;           /* top level: levels are 0..nmax */
	float rmin, rdelta; /* candidate is: iscale = (rmin + rdelta*is + nmax) / range */
	int nstep;          /* is = 0..nstep */
	int use_mad;        /* absolute instead of squared error */
};

static float qkx_error(int n, const float *x, const float *w,
	const uint8_t *L, float scale, float min, int use_mad)
{
	float err = 0;

	for (int i = 0; i < n; i++) {
		float diff = scale * (float)L[i] + min - x[i];

		diff = use_mad ? fabsf(diff) : diff * diff;
		err += w[i] * diff;
	}
	return err;
}

/* Sums of the fit over x (weights w): sum w, sum w x. */
struct qkx_sums {
	float w, x;
};

/*
 * One candidate of the scale search: levels Laux of x at inverse scale
 * iscale above min, then the weighted least-squares scale and min for
 * those levels (min clamped to <= 0). Returns 0 when the normal equations
 * are degenerate (D <= 0) and the candidate is skipped.
 */
static int qkx_candidate(int n, int nmax, const float *x, const float *w,
	const struct qkx_sums *s, float iscale, float min, uint8_t *Laux,
	float *scale, float *new_min)
{
	float sum_l = 0, sum_l2 = 0, sum_xl = 0, D;

	for (int i = 0; i < n; i++) {
		int l = q_clamp(q_nearest_int(iscale * (x[i] - min)), 0, nmax);

		Laux[i] = (uint8_t)l;
		sum_l += w[i] * (float)l;
		sum_l2 += w[i] * (float)l * (float)l;
		sum_xl += w[i] * (float)l * x[i];
	}
	D = s->w * sum_l2 - sum_l * sum_l;
	if (!(D > 0))
		return 0;
	*scale = (s->w * sum_xl - s->x * sum_l) / D;
	*new_min = (sum_l2 * s->x - sum_l * sum_xl) / D;
	if (*new_min > 0) {
		*new_min = 0;
		*scale = sum_xl / sum_l2;
	}
	return 1;
}

static float make_qkx2_quants(int n, const struct qkx_params *p,
	const float *x, const float *w, uint8_t *L, float *the_min)
{
	float min = x[0], max = x[0], iscale, scale, best;
	struct qkx_sums s = { w[0], w[0] * x[0] };
	uint8_t Laux[32];

	for (int i = 1; i < n; i++) {
		if (x[i] < min)
			min = x[i];
		if (x[i] > max)
			max = x[i];
		s.w += w[i];
		s.x += w[i] * x[i];
	}
	if (min > 0)
		min = 0;
	if (max == min) {
		memset(L, 0, (size_t)n);
		*the_min = -min;
		return 0.f;
	}
	iscale = (float)p->nmax / (max - min);
	scale = 1 / iscale;
	for (int i = 0; i < n; i++)
		L[i] = (uint8_t)q_clamp(q_nearest_int(iscale * (x[i] - min)), 0, p->nmax);
	best = qkx_error(n, x, w, L, scale, min, p->use_mad);
	/* as in ggml, later candidates start from the best min found so far */
	for (int is = 0; is <= p->nstep; is++) {
		float cs, cm, err;

		iscale = (p->rmin + p->rdelta * (float)is + (float)p->nmax) / (max - min);
		if (!qkx_candidate(n, p->nmax, x, w, &s, iscale, min, Laux, &cs, &cm))
			continue;
		err = qkx_error(n, x, w, Laux, cs, cm, p->use_mad);
		if (err < best) {
			memcpy(L, Laux, (size_t)n);
			best = err;
			scale = cs;
			min = cm;
		}
	}
	*the_min = -min;
	return scale;
}

/* Packs 2-bit levels L[256] into qs[64] (four 32-value planes per half). */
static void pack_2bit(const uint8_t *L, uint8_t *qs)
{
	for (int j = 0; j < QK_K; j += 128)
		for (int l = 0; l < 32; l++)
			qs[j / 4 + l] = (uint8_t)(L[j + l] | L[j + l + 32] << 2 |
				L[j + l + 64] << 4 | L[j + l + 96] << 6);
}

/* ---- Q2_K ---- */

static const struct qkx_params Q2K_FIT = { 3, -0.5f, 0.1f, 15, 1 };

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
		scales[j] = make_qkx2_quants(16, &Q2K_FIT, x + 16 * j, w,
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
		scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
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

static const struct qkx_params Q4K_FIT = { 15, -1.f, 0.1f, 20, 0 };
static const struct qkx_params Q5K_FIT = { 31, -0.5f, 0.1f, 15, 0 };

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
static void qk_fit_block(const float *x, const struct qkx_params *fit,
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
		scales[j] = make_qkx2_quants(32, fit, x + 32 * j, w, L + 32 * j, &mins[j]);
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
		scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
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
		int k = absmax_index(QK_K, x);
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
