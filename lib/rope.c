/* Rotary position embeddings as ggml computes them: normal and NeoX pairing, YaRN frequency blending. */
#include <math.h>

#include "infer_impl.h"

/* ggml_rope_yarn_corr_dim: the dimension whose wavelength spans n_rot_b
 * rotations over the original context. */
static float corr_dim(uint32_t n_dims, uint32_t n_ctx_orig, float n_rot_b, float base)
{
	return (float)n_dims * logf((float)n_ctx_orig / (n_rot_b * 2 * (float)M_PI)) / (2 * logf(base));
}

static float ramp(float low, float high, uint32_t i0)
{
	float y = ((float)(i0 / 2) - low) / fmaxf(0.001f, high - low);

	return 1 - fminf(1, fmaxf(0, y));
}

void moe_rope(const struct moe_hparams *hp, float *x, uint32_t n_heads,
	size_t head_stride, uint32_t n_rot, uint32_t pos, float *tmp)
{
	float theta_scale = powf(hp->rope_base, -2.0f / (float)n_rot);
	float theta = (float)pos, low = 0, high = 0;
	float *cs = tmp, *sn = tmp + n_rot / 2;

	if (hp->ext_factor != 0.0f) {
		low = fmaxf(0, floorf(corr_dim(n_rot, hp->n_ctx_orig, hp->beta_fast, hp->rope_base)));
		high = fminf((float)n_rot - 1, ceilf(corr_dim(n_rot, hp->n_ctx_orig, hp->beta_slow, hp->rope_base)));
	}
	/* theta is advanced by repeated multiplication, as ggml's cache does */
	for (uint32_t i0 = 0; i0 < n_rot; i0 += 2) {
		float interp = hp->freq_scale * theta, t = interp, mscale = hp->attn_factor;

		if (hp->ext_factor != 0.0f) {
			float mix = ramp(low, high, i0) * hp->ext_factor;

			t = interp * (1 - mix) + theta * mix;
			mscale *= 1.0f + 0.1f * logf(1.0f / hp->freq_scale);
		}
		cs[i0 / 2] = cosf(t) * mscale;
		sn[i0 / 2] = sinf(t) * mscale;
		theta *= theta_scale;
	}
	for (uint32_t h = 0; h < n_heads; h++) {
		float *v = x + h * head_stride;

		for (uint32_t i = 0; i < n_rot / 2; i++) {
			uint32_t a = hp->rope_neox ? i : 2 * i;
			uint32_t b = hp->rope_neox ? i + n_rot / 2 : 2 * i + 1;
			float x0 = v[a], x1 = v[b];

			v[a] = x0 * cs[i] - x1 * sn[i];
			v[b] = x0 * sn[i] + x1 * cs[i];
		}
	}
}
