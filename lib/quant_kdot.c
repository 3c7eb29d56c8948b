/* Dot products of K-quant (and IQ4_XS) weight rows with Q8_K activation rows, in ggml's generic summation order. */
#include "error.h"
#include "quant_impl.h"

/*
 * ggml's generic K-quant kernels accumulate integer products in 8 lanes
 * (lane l takes elements l, l + 8, l + 16, ... of the super-block), scale
 * each lane by d_w * d_a into 8 float partial sums that run across all
 * super-blocks, subtract the min terms from the total as they go, and add
 * the 8 partial sums at the end. Reproducing that order makes our result
 * equal theirs bit for bit.
 *
 * Q8_K block: d (f32), qs[256] (int8), bsums[16] (int16 sums of 16 qs).
 */

struct lanes {
	float sums[8];
	float sumf;     /* running min terms */
};

static float q8k_d(const uint8_t *y)
{
	float d;

	memcpy(&d, y, 4);
	return d;
}

static int q8k_bsum(const uint8_t *y, int j)
{
	return (int16_t)(uint16_t)(y[260 + 2 * j] | y[261 + 2 * j] << 8);
}

/* Adds one super-block: values a[256] with one scale per `group` values. */
static void lanes_add(struct lanes *ln, const int8_t *a, const int *scales,
	int group, const uint8_t *y, float d)
{
	const int8_t *q8 = (const int8_t *)(y + 4);
	int32_t aux32[8] = { 0 };

	for (int j = 0; j < QK_K; j += 8)
		for (int l = 0; l < 8; l++)
			aux32[l] += scales[j / group] * (q8[j + l] * a[j + l]);
	for (int l = 0; l < 8; l++)
		ln->sums[l] += d * (float)aux32[l];
}

static float lanes_total(const struct lanes *ln)
{
	float s = ln->sumf;

	for (int l = 0; l < 8; l++)
		s += ln->sums[l];
	return s;
}

/* The 6-bit scales and mins of a Q4_K/Q5_K block (same packing). */
static void scale_min_k4(const uint8_t *q, int *sc, int *mn)
{
	for (int j = 0; j < 8; j++) {
		if (j < 4) {
			sc[j] = q[j] & 63;
			mn[j] = q[j + 4] & 63;
		} else {
			sc[j] = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
			mn[j] = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
		}
	}
}

/* Q4_K / Q5_K (qh == NULL for Q4_K): block layout d, dmin, scales[12],
 * [qh[32]], qs[128]. */
static void add_q45k(struct lanes *ln, const uint8_t *x, const uint8_t *qh,
	const uint8_t *qs, const uint8_t *y)
{
	int8_t a[QK_K];
	int sc[8], mn[8], sumi = 0;
	float dy = q8k_d(y);

	for (int j = 0; j < 4; j++)
		for (int l = 0; l < 32; l++) {
			a[64 * j + l] = (int8_t)(qs[32 * j + l] & 0xf);
			a[64 * j + 32 + l] = (int8_t)(qs[32 * j + l] >> 4);
			if (qh) {
				a[64 * j + l] += (int8_t)(((qh[l] >> (2 * j)) & 1) << 4);
				a[64 * j + 32 + l] += (int8_t)(((qh[l] >> (2 * j + 1)) & 1) << 4);
			}
		}
	scale_min_k4(x + 4, sc, mn);
	for (int j = 0; j < QK_K / 16; j++)
		sumi += q8k_bsum(y, j) * mn[j / 2];
	lanes_add(ln, a, sc, 32, y, q_f32_from_le16(x) * dy);
	ln->sumf -= q_f32_from_le16(x + 2) * dy * (float)sumi;
}

static void add_q3k(struct lanes *ln, const uint8_t *x, const uint8_t *y)
{
	int8_t a[QK_K];
	int sc[16];
	const uint8_t *hm = x, *q3 = x + 32;

	/* value = 2-bit quant - 4 unless its hmask bit is set */
	for (int n = 0, m = 0; n < QK_K; n += 128, q3 += 32)
		for (int shift = 0; shift < 8; shift += 2, m++)
			for (int l = 0; l < 32; l++)
				a[n + 16 * shift + l] = (int8_t)(((q3[l] >> shift) & 3) -
					((hm[l] >> m & 1) ? 0 : 4));
	for (int j = 0; j < 16; j++)
		sc[j] = q3k_scale(x + 96, j);
	lanes_add(ln, a, sc, 16, y, q_f32_from_le16(x + 108) * q8k_d(y));
}

static void add_q6k(struct lanes *ln, const uint8_t *x, const uint8_t *y)
{
	int8_t a[QK_K];
	int sc[16];
	const uint8_t *ql = x, *qh = x + 128;

	for (int n = 0; n < QK_K; n += 128, ql += 64, qh += 32)
		for (int l = 0; l < 32; l++) {
			a[n + l] = (int8_t)(((ql[l] & 0xf) | ((qh[l] >> 0) & 3) << 4) - 32);
			a[n + l + 32] = (int8_t)(((ql[l + 32] & 0xf) | ((qh[l] >> 2) & 3) << 4) - 32);
			a[n + l + 64] = (int8_t)(((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32);
			a[n + l + 96] = (int8_t)(((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32);
		}
	for (int j = 0; j < 16; j++)
		sc[j] = (int8_t)x[192 + j];
	lanes_add(ln, a, sc, 16, y, q_f32_from_le16(x + 208) * q8k_d(y));
}

/* Q2_K has its own order in ggml: one integer sum per super-block,
 * scaled once, with the min term subtracted in the same expression. */
static float dot_q2k(int64_t nb, const uint8_t *x, const uint8_t *y)
{
	float sumf = 0;

	for (int64_t i = 0; i < nb; i++, x += 84, y += 292) {
		const uint8_t *sc = x, *q2 = x + 16;
		const int8_t *q8 = (const int8_t *)(y + 4);
		int summs = 0, isum = 0, is = 0;
		float dall = q8k_d(y) * q_f32_from_le16(x + 80);
		float dmin = q8k_d(y) * q_f32_from_le16(x + 82);

		for (int j = 0; j < 16; j++)
			summs += q8k_bsum(y, j) * (sc[j] >> 4);
		for (int k = 0; k < 2; k++, q2 += 32)
			for (int shift = 0; shift < 8; shift += 2, q8 += 32)
				for (int half = 0; half < 2; half++, is++) {
					int isuml = 0;

					for (int l = 16 * half; l < 16 * half + 16; l++)
						isuml += q8[l] * ((q2[l] >> shift) & 3);
					isum += (sc[is] & 0xf) * isuml;
				}
		sumf += dall * (float)isum - dmin * (float)summs;
	}
	return sumf;
}

int moe_vec_dot_k(enum moe_dtype t, int64_t nb, const void *vw, const void *va,
	float *out)
{
	const uint8_t *x = vw, *y = va;
	struct lanes ln = { { 0 }, 0 };

	if (t == MOE_DT_Q2_K) {
		*out = dot_q2k(nb, x, y);
		return 0;
	}
	if (t == MOE_DT_IQ4_XS) {
		*out = moe_iq4_xs_vec_dot(nb, x, y);
		return 0;
	}
	for (int64_t i = 0; i < nb; i++, y += 292) {
		switch (t) {
		case MOE_DT_Q3_K:
			add_q3k(&ln, x + 110 * i, y);
			break;
		case MOE_DT_Q4_K:
			add_q45k(&ln, x + 144 * i, NULL, x + 144 * i + 16, y);
			break;
		case MOE_DT_Q5_K:
			add_q45k(&ln, x + 176 * i, x + 176 * i + 16, x + 176 * i + 48, y);
			break;
		case MOE_DT_Q6_K:
			add_q6k(&ln, x + 210 * i, y);
			break;
		default:
			return MOE_EUNSUP;
		}
	}
	*out = lanes_total(&ln);
	return 0;
}
