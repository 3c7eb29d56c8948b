/* Scale searches of ggml's K-quant quantizers: make_qx_quants, make_q3_quants, make_qkx2_quants. */
#include "quant_impl.h"

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

float moe_make_qx_quants(int n, int nmax, const float *x, int8_t *L)
{
	int k = q_absmax_index(n, x);
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

float moe_make_q3_quants(int n, int nmax, const float *x, int8_t *L)
{
	int k = q_absmax_index(n, x);
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

float moe_make_qkx2_quants(int n, const struct moe_qkx_params *p,
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

