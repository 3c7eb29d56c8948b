/* Tensor-name classification shared by accounting, quantizer and converter. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tensor_class.h"

static const char *const comp_names[MOE_COMP_COUNT] = {
	"other", "embedding", "attention", "norm", "router", "routed_experts",
	"shared_experts", "dense_ffn", "output_head", "mtp", "vision"
};

const char *moe_comp_name(enum moe_comp c)
{
	return (unsigned)c < MOE_COMP_COUNT ? comp_names[c] : "other";
}

/* Index after "key" when it is followed by digits and a dot; -1 if not. */
static int index_after(const char *s, const char *key, const char **end)
{
	const char *p = s;
	size_t kl = strlen(key);

	while ((p = strstr(p, key)) != NULL) {
		const char *q = p + kl;
		long v = 0;
		int nd = 0;

		if (p == s || p[-1] == '.') {
			while (isdigit((unsigned char)*q) && nd < 7)
				v = v * 10 + (*q++ - '0'), nd++;
			if (nd > 0 && (*q == '.' || *q == '\0')) {
				if (end)
					*end = q;
				return (int)v;
			}
		}
		p += kl;
	}
	return -1;
}

static int has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

static int ends_with(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);

	return n >= m && strcmp(s + n - m, suf) == 0;
}

/* Removes a trailing ".weight"/".bias"/scale suffix; sets the part. */
static void strip_part(char *s, enum moe_tpart *part)
{
	static const struct { const char *suf; enum moe_tpart part; } tab[] = {
		{ ".weight_scale_inv", MOE_TP_SCALE }, { "_scale_inv", MOE_TP_SCALE },
		{ ".weight_scale", MOE_TP_SCALE }, { ".input_scale", MOE_TP_SCALE },
		{ "_scales", MOE_TP_SCALE }, { "_blocks", MOE_TP_PACKED4 },
		{ ".weight", MOE_TP_WEIGHT }, { ".bias", MOE_TP_BIAS },
		{ "_bias", MOE_TP_BIAS },
	};
	size_t i, n = strlen(s);

	*part = MOE_TP_WEIGHT;
	for (i = 0; i < sizeof tab / sizeof tab[0]; i++) {
		if (ends_with(s, tab[i].suf)) {
			*part = tab[i].part;
			/* a score-correction bias keeps its name: it is a router part */
			if (strcmp(tab[i].suf, "_bias") != 0)
				s[n - strlen(tab[i].suf)] = '\0';
			return;
		}
	}
}

/* GGUF block tensors: blk.N.<leaf>[.E] */
static int classify_gguf(const char *leaf, struct moe_tclass *o)
{
	if (strstr(leaf, "norm"))
		o->comp = MOE_COMP_NORM;
	else if (has_prefix(leaf, "ffn_gate_inp") || has_prefix(leaf, "exp_probs_b"))
		o->comp = MOE_COMP_ROUTER;
	else if (strstr(leaf, "_exps")) {
		o->comp = MOE_COMP_EXPERTS;
		o->stacked = 1;
	} else if (strstr(leaf, "_shexp"))
		o->comp = MOE_COMP_SHARED;
	else if (has_prefix(leaf, "ffn_"))
		o->comp = o->expert >= 0 ? MOE_COMP_EXPERTS : MOE_COMP_DENSE;
	else if (has_prefix(leaf, "attn_") || has_prefix(leaf, "ssm_") ||
		has_prefix(leaf, "time_mix"))
		o->comp = MOE_COMP_ATTN;
	else
		return MOE_ENOENT;
	return 0;
}

static int any_of(const char *s, const char *const *subs)
{
	for (; *subs; subs++)
		if (strstr(s, *subs))
			return 1;
	return 0;
}

/* Hugging Face and other PyTorch-style dotted paths. */
static int classify_hf(const char *path, const char *leaf, struct moe_tclass *o)
{
	static const char *const embed[] = { "embed_tokens", "wte", "word_embeddings",
		"tok_embeddings", "embed_in", NULL };
	static const char *const attn[] = { "attn", "attention", "mamba", "mixer",
		"linear_attn", NULL };
	static const char *const shared[] = { "shared_expert", "shared_mlp",
		"shared_experts", NULL };
	static const char *const experts[] = { "experts", "block_sparse_moe",
		"mlp.input_linear", "mlp.output_linear", NULL };
	/* JetMoE's always-active MoE output bias (mlp.bias) lands here too */
	static const char *const dense[] = { "mlp", "feed_forward", "ffn",
		"densereludense", NULL };

	if (strstr(leaf, "norm") || strcmp(leaf, "ln_f") == 0 ||
		has_prefix(leaf, "ln_") || strcmp(leaf, "norm_f") == 0)
		o->comp = MOE_COMP_NORM;
	else if (any_of(leaf, embed) || (o->layer < 0 && strcmp(leaf, "shared") == 0))
		o->comp = MOE_COMP_EMBED;
	else if (strcmp(leaf, "lm_head") == 0 || strcmp(leaf, "embed_out") == 0)
		o->comp = MOE_COMP_HEAD;
	else if (any_of(path, attn))
		o->comp = MOE_COMP_ATTN;
	else if (strcmp(leaf, "gate") == 0 || strstr(path, "router") ||
		strstr(leaf, "e_score_correction") || strcmp(leaf, "shared_expert_gate") == 0)
		o->comp = MOE_COMP_ROUTER;
	else if (any_of(path, shared))
		o->comp = MOE_COMP_SHARED;
	else if (any_of(path, experts)) {
		o->comp = MOE_COMP_EXPERTS;
		o->stacked = o->expert < 0;
	} else if (any_of(path, dense))
		o->comp = MOE_COMP_DENSE;
	else
		return MOE_ENOENT;
	return 0;
}

static int is_vision(const char *s)
{
	static const char *const pre[] = { "vision_model.", "vision_tower.",
		"multi_modal_projector.", "model.vision", "visual.", "v.", "mm.",
		"vision_encoder.", "model.visual.", "model.multi_modal_projector.",
		"mm_projector.", NULL };
	const char *const *p;

	for (p = pre; *p; p++)
		if (has_prefix(s, *p))
			return 1;
	return 0;
}

static int is_mtp(const char *s, const char *leaf)
{
	return strstr(s, ".nextn.") || has_prefix(s, "mtp.") || strstr(s, ".mtp.") ||
		has_prefix(s, "model.mtp") || strcmp(leaf, "enorm") == 0 ||
		strcmp(leaf, "hnorm") == 0 || strcmp(leaf, "eh_proj") == 0 ||
		strstr(s, "shared_head.");
}

int moe_tensor_classify(const char *name, struct moe_tclass *out)
{
	char buf[512], *leaf, *path;
	const char *after = NULL;
	size_t i;
	int rc = 0, gguf;

	memset(out, 0, sizeof *out);
	out->layer = out->expert = -1;
	if (name == NULL)
		return MOE_EINVAL;
	snprintf(buf, sizeof buf, "%s", name);
	for (i = 0; buf[i]; i++)
		buf[i] = (char)tolower((unsigned char)buf[i]);
	strip_part(buf, &out->part);
	out->decoder = has_prefix(buf, "decoder.") || strstr(buf, ".decoder.") != NULL;
	gguf = has_prefix(buf, "blk.") || strchr(buf, '.') == NULL ||
		has_prefix(buf, "output") || has_prefix(buf, "token_embd");
	if ((out->layer = index_after(buf, "layers.", &after)) < 0 &&
		(out->layer = index_after(buf, "blk.", &after)) < 0 &&
		(out->layer = index_after(buf, "blocks.", &after)) < 0 &&
		(out->layer = index_after(buf, "block.", &after)) < 0 &&
		(out->layer = index_after(buf, "h.", &after)) < 0)
		after = NULL;
	if ((out->expert = index_after(buf, "experts.", NULL)) < 0)
		out->expert = index_after(buf, "expert_", NULL);
	path = after ? (char *)after + (*after == '.') : buf;
	leaf = strrchr(buf, '.');
	leaf = leaf ? leaf + 1 : buf;
	if (gguf && isdigit((unsigned char)*leaf) && leaf > buf + 1) {
		/* legacy per-expert GGUF: blk.N.ffn_gate.E.weight */
		out->expert = atoi(leaf);
		leaf[-1] = '\0';
		leaf = strrchr(buf, '.');
		leaf = leaf ? leaf + 1 : buf;
	}
	if (is_vision(buf))
		out->comp = MOE_COMP_VISION;
	else if (is_mtp(buf, leaf))
		out->comp = MOE_COMP_MTP;
	else if (gguf && out->layer < 0 && strcmp(leaf, "token_embd") == 0)
		out->comp = MOE_COMP_EMBED;
	else if (gguf && out->layer < 0 && strcmp(leaf, "output") == 0)
		out->comp = MOE_COMP_HEAD;
	else if (gguf && out->layer >= 0 && has_prefix(buf, "blk."))
		rc = classify_gguf(leaf, out);
	else
		rc = classify_hf(path, leaf, out);
	if (rc != 0)
		out->comp = MOE_COMP_OTHER;
	if (out->comp != MOE_COMP_EXPERTS)
		out->stacked = 0;
	return rc;
}
