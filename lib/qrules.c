/* Quantization type rules: classes, regexes, presets in the spirit of llama.cpp's mixes, row-length fallbacks. */
#include "qrules.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define MAX_RULES 64

struct rule {
	regex_t re;
	char *text;
	enum moe_dtype t;
};

struct moe_qrules {
	struct moe_error err;
	enum moe_dtype dflt;
	enum moe_dtype cls[MOE_COMP_COUNT];   /* MOE_DT_INVALID = not set */
	struct rule rules[MAX_RULES];
	int nrules;
	/* preset: a better type for some layers of some classes */
	enum moe_dtype more_bits;             /* MOE_DT_INVALID (0) = none */
	unsigned n_layers;
};

int moe_qrules_new(struct moe_qrules **out, enum moe_dtype dflt)
{
	struct moe_qrules *r = calloc(1, sizeof *r);

	if ((*out = r) == NULL)
		return MOE_ENOMEM;
	r->dflt = dflt;
	return 0;
}

void moe_qrules_free(struct moe_qrules *r)
{
	if (r == NULL)
		return;
	for (int i = 0; i < r->nrules; i++) {
		regfree(&r->rules[i].re);
		free(r->rules[i].text);
	}
	free(r);
}

const char *moe_qrules_errstr(const struct moe_qrules *r) { return moe_error_str(&r->err); }

void moe_qrules_set_default(struct moe_qrules *r, enum moe_dtype t)
{
	r->dflt = t;
}

int moe_qrules_set_class(struct moe_qrules *r, enum moe_comp comp, enum moe_dtype t)
{
	if ((unsigned)comp >= MOE_COMP_COUNT)
		return moe_error_set(&r->err, MOE_EINVAL, "no such tensor class");
	r->cls[comp] = t;
	return 0;
}

int moe_qrules_add_rule(struct moe_qrules *r, const char *spec)
{
	const char *eq = strrchr(spec, '=');
	struct rule *ru = &r->rules[r->nrules];
	enum moe_dtype t;

	if (eq == NULL || eq == spec)
		return moe_error_set(&r->err, MOE_EINVAL, "--rule '%s' is not REGEX=TYPE", spec);
	if ((t = moe_dtype_from_name(eq + 1)) == MOE_DT_INVALID)
		return moe_error_set(&r->err, MOE_EINVAL, "--rule '%s': unknown type '%s'", spec, eq + 1);
	if (r->nrules == MAX_RULES)
		return moe_error_set(&r->err, MOE_ERANGE, "more than %d rules", MAX_RULES);
	if ((ru->text = strndup(spec, (size_t)(eq - spec))) == NULL)
		return moe_error_set(&r->err, MOE_ENOMEM, "out of memory");
	if (regcomp(&ru->re, ru->text, REG_EXTENDED | REG_NOSUB) != 0) {
		free(ru->text);
		return moe_error_set(&r->err, MOE_EINVAL, "--rule '%s': bad regular expression", spec);
	}
	ru->t = t;
	r->nrules++;
	return 0;
}

const char *moe_qrules_presets(void)
{
	return "q8_0: everything Q8_0 (routers F32)\n"
		"q4_k_m: Q4_K; Q6_K for the output head, and for attn_v and ffn_down "
		"(dense, shared and routed) in the first and last eighth of the layers "
		"and every third layer between, as llama.cpp's Q4_K_M does\n"
		"q5_k_m: the same with Q5_K as the base type\n";
}

int moe_qrules_preset(struct moe_qrules *r, const char *name, unsigned n_layers)
{
	r->n_layers = n_layers;
	if (strcmp(name, "q8_0") == 0) {
		r->dflt = MOE_DT_Q8_0;
		return 0;
	}
	if (strcmp(name, "q4_k_m") == 0 || strcmp(name, "q5_k_m") == 0) {
		r->dflt = name[1] == '4' ? MOE_DT_Q4_K : MOE_DT_Q5_K;
		r->cls[MOE_COMP_HEAD] = MOE_DT_Q6_K;
		r->more_bits = MOE_DT_Q6_K;
		return 0;
	}
	return moe_error_set(&r->err, MOE_EINVAL, "unknown preset '%s' (q8_0, q4_k_m, q5_k_m)", name);
}

/* llama.cpp's use_more_bits: the first and last eighth, every third between. */
static int more_bits_layer(int i, unsigned n)
{
	int n8 = (int)n / 8;
	return i < n8 || i >= 7 * (int)n / 8 || (i - n8) % 3 == 2;
}

static int wants_more_bits(const struct moe_qrules *r, const struct moe_tensor *t,
	const struct moe_tclass *tc)
{
	if (r->more_bits == MOE_DT_INVALID || tc->layer < 0 ||
	    !more_bits_layer(tc->layer, r->n_layers))
		return 0;
	return strstr(t->name, "attn_v") || strstr(t->name, "v_proj") ||
		strstr(t->name, "ffn_down") || strstr(t->name, "down_proj") || strstr(t->name, ".w2.");
}

/* Nearest type whose block fits a row of n values. */
static enum moe_dtype fallback(enum moe_dtype t, uint64_t n)
{
	static const struct { enum moe_dtype from, to; } chain[] = {
		{ MOE_DT_Q2_K, MOE_DT_Q4_0 }, { MOE_DT_Q3_K, MOE_DT_Q4_0 }, { MOE_DT_Q4_K, MOE_DT_Q5_0 },
		{ MOE_DT_Q5_K, MOE_DT_Q5_1 }, { MOE_DT_Q6_K, MOE_DT_Q8_0 }, { MOE_DT_IQ4_XS, MOE_DT_IQ4_NL },
		{ MOE_DT_TQ1_0, MOE_DT_Q4_0 }, { MOE_DT_TQ2_0, MOE_DT_Q4_0 },
	};

	while (n % moe_dtype_block_size(t) != 0) {
		enum moe_dtype next = MOE_DT_F16;
		for (size_t i = 0; i < sizeof chain / sizeof chain[0]; i++)
			if (chain[i].from == t)
				next = chain[i].to;
		t = next;
	}
	return t;
}

enum moe_dtype moe_qrules_choose(const struct moe_qrules *r, const struct moe_tensor *t,
	char *note, size_t n)
{
	struct moe_tclass tc;
	enum moe_dtype want = MOE_DT_INVALID, got;
	uint64_t row = t->ndim ? t->shape[t->ndim - 1] : 1;

	note[0] = '\0';
	if (t->ndim < 2)
		return t->dtype;
	moe_tensor_classify(t->name, &tc);
	for (int i = 0; i < r->nrules && want == MOE_DT_INVALID; i++)
		if (regexec(&r->rules[i].re, t->name, 0, NULL, 0) == 0) {
			want = r->rules[i].t;
			snprintf(note, n, "rule '%s'", r->rules[i].text);
		}
	if (want == MOE_DT_INVALID && wants_more_bits(r, t, &tc))
		want = r->more_bits;
	if (want == MOE_DT_INVALID)
		want = r->cls[tc.comp];
	if (want == MOE_DT_INVALID && tc.comp == MOE_COMP_ROUTER)
		want = MOE_DT_F32;
	if (want == MOE_DT_INVALID)
		want = r->dflt;
	got = fallback(want, row);
	if (got != want)
		snprintf(note, n, "row of %llu is not a multiple of %s's %u: %s instead",
			(unsigned long long)row, moe_dtype_name(want), moe_dtype_block_size(want),
			moe_dtype_name(got));
	return got;
}
