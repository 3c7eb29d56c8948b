/* Conversion planning: names, stacking, subsets, dtypes and metadata for the output. */
#include "convert_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hfconfig.h"
#include "tokconv.h"
#include "tensor_class.h"

#define MAX_IDS 65536   /* bound on layer/expert ids in subset lists */

struct otensor *moe_conv_add(struct moe_conversion *c, const char *name)
{
	struct otensor *t;

	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		t = realloc(c->t, cap * sizeof *t);
		if (t == NULL)
			goto oom;
		c->t = t;
		c->cap = cap;
	}
	t = &c->t[c->n];
	memset(t, 0, sizeof *t);
	if ((t->name = strdup(name)) == NULL)
		goto oom;
	c->n++;
	return t;
oom:
	moe_error_set(&c->err, MOE_ENOMEM, "out of memory");
	return NULL;
}

int moe_conv_piece(struct moe_conversion *c, struct otensor *t,
	const struct moe_tensor *src, uint64_t row0, uint64_t nrows)
{
	struct piece *p = realloc(t->p, (t->np + 1) * sizeof *p);

	if (p == NULL)
		return moe_error_set(&c->err, MOE_ENOMEM, "out of memory");
	t->p = p;
	p[t->np++] = (struct piece){ src, row0, nrows,
		src == c->cur_src ? c->cur_scale : NULL };
	return 0;
}

uint64_t moe_conv_row_len(const struct moe_tensor *t)
{
	if (t->ndim >= 2 || (t->ndim == 1 && moe_dtype_block_size(t->dtype) > 1))
		return t->shape[t->ndim - 1];
	return 1;
}

static uint64_t nrows_of(const struct moe_tensor *t)
{
	return moe_tensor_numel(t) / moe_conv_row_len(t);
}

uint32_t moe_conv_hp(const struct moe_conversion *c, const char *suffix, uint32_t dflt)
{
	uint64_t v;

	return moe_meta_get_arch_u64(c->kv, suffix, &v) == 0 && v <= UINT32_MAX ? (uint32_t)v : dflt;
}

/* "0-3,7" -> sorted unique ids below max; 0 or MOE_EINVAL. */
static int parse_ids(const char *s, uint32_t max, uint32_t **out, uint32_t *n)
{
	char *seen = calloc(max ? max : 1, 1);
	uint32_t cnt = 0;

	if (seen == NULL)
		return MOE_ENOMEM;
	while (*s) {
		char *end;
		unsigned long a, b;
		while (*s == ' ' || *s == ',' || *s == '\t')
			s++;
		if (*s == '\0')
			break;
		if (*s < '0' || *s > '9')
			goto bad;
		a = b = strtoul(s, &end, 10);
		if (*end == '-')
			b = strtoul(end + 1, &end, 10);
		if (a > b || b >= max || (*end && *end != ',' && *end != ' ' && *end != '\t'))
			goto bad;
		for (unsigned long i = a; i <= b; i++)
			seen[i] = 1;
		s = end;
	}
	for (uint32_t i = 0; i < max; i++)
		cnt += seen[i];
	if (cnt == 0)
		goto bad;
	if ((*out = malloc(cnt * sizeof **out)) == NULL) {
		free(seen);
		return MOE_ENOMEM;
	}
	*n = 0;
	for (uint32_t i = 0; i < max; i++)
		if (seen[i])
			(*out)[(*n)++] = i;
	free(seen);
	return 0;
bad:
	free(seen);
	return MOE_EINVAL;
}

static int parse_layers(struct moe_conversion *c)
{
	uint32_t *ids, n;
	int rc;

	if ((c->layer_map = malloc(c->n_layers * sizeof *c->layer_map)) == NULL)
		return moe_error_set(&c->err, MOE_ENOMEM, "out of memory");
	for (uint32_t i = 0; i < c->n_layers; i++)
		c->layer_map[i] = c->o.layers ? -1 : (int)i;
	if (c->o.layers == NULL)
		return 0;
	if ((rc = parse_ids(c->o.layers, c->n_layers, &ids, &n)) != 0)
		return moe_error_set(&c->err, rc, "--layers '%s': not a list of blocks "
			"0..%u (e.g. 0-3,7)", c->o.layers, c->n_layers - 1);
	for (uint32_t i = 0; i < n; i++)
		c->layer_map[ids[i]] = (int)i;
	free(ids);
	return 0;
}

/* One line of --experts: "L: ids" for block L, or "ids" for every block. */
static int expert_line(struct moe_conversion *c, const char *line)
{
	const char *colon = strchr(line, ':');
	uint32_t *ids, n, first = 0, last = c->n_layers;
	int rc;

	if (colon) {
		char *end;
		unsigned long l = strtoul(line, &end, 10);
		if (end == line || end != colon || l >= c->n_layers)
			return moe_error_set(&c->err, MOE_EINVAL,
				"--experts: '%s' does not name a block 0..%u", line, c->n_layers - 1);
		first = (uint32_t)l;
		last = first + 1;
		line = colon + 1;
	}
	if ((rc = parse_ids(line, c->n_expert, &ids, &n)) != 0)
		return moe_error_set(&c->err, rc, "--experts: '%s' is not a list of experts "
			"0..%u", line, c->n_expert - 1);
	for (uint32_t l = first; l < last; l++) {
		free(c->keep[l]);
		c->keep[l] = NULL;
		if ((c->keep[l] = malloc(n * sizeof *ids)) == NULL) {
			free(ids);
			return moe_error_set(&c->err, MOE_ENOMEM, "out of memory");
		}
		memcpy(c->keep[l], ids, n * sizeof *ids);
		c->nkeep[l] = n;
	}
	free(ids);
	return 0;
}

static int parse_experts(struct moe_conversion *c)
{
	char *dup, *line, *save = NULL;
	int rc = 0;
	uint32_t k = 0, topk = moe_conv_hp(c, "expert_used_count", 0);

	if (c->o.experts == NULL)
		return 0;
	if (c->n_expert == 0)
		return moe_error_set(&c->err, MOE_EINVAL, "--experts: the model has no experts");
	c->keep = calloc(c->n_layers, sizeof *c->keep);
	c->nkeep = calloc(c->n_layers, sizeof *c->nkeep);
	if ((dup = strdup(c->o.experts)) == NULL || !c->keep || !c->nkeep) {
		free(dup);
		return moe_error_set(&c->err, MOE_ENOMEM, "out of memory");
	}
	for (line = strtok_r(dup, "\n;", &save); rc == 0 && line;
	     line = strtok_r(NULL, "\n;", &save))
		if (line[strspn(line, " \t\r")] != '\0' && line[strspn(line, " \t")] != '#')
			rc = expert_line(c, line);
	free(dup);
	/* GGUF has one expert count for all MoE layers */
	for (uint32_t l = moe_conv_hp(c, "leading_dense_block_count", 0);
	     rc == 0 && l < c->n_layers; l++) {
		uint32_t nk = c->keep[l] ? c->nkeep[l] : c->n_expert;
		if (c->layer_map[l] < 0)
			continue;
		if (k && nk != k)
			rc = moe_error_set(&c->err, MOE_EINVAL, "--experts: every block must keep "
				"the same number of experts (%u and %u)", k, nk);
		k = nk;
	}
	if (rc == 0 && topk > k)
		rc = moe_error_set(&c->err, MOE_EINVAL, "--experts: top-k %u exceeds the %u "
			"experts kept", topk, k);
	if (rc == 0 && moe_conv_hp(c, "expert_group_count", 1) > 1)
		rc = moe_error_set(&c->err, MOE_EUNSUP, "--experts: group-limited routing "
			"(%u groups) cannot keep a subset of experts",
			moe_conv_hp(c, "expert_group_count", 1));
	return rc;
}

/* Experts of source block l in output order. */
static uint32_t kept(const struct moe_conversion *c, int l, uint32_t i)
{
	return c->keep && l >= 0 && c->keep[l] ? c->keep[l][i] : i;
}

static uint32_t nkept(const struct moe_conversion *c, int l)
{
	return c->keep && l >= 0 && c->keep[l] ? c->nkeep[l] : c->n_expert;
}

/* New position of source expert e in block l, or -1 if dropped. */
static int expert_pos(const struct moe_conversion *c, int l, int e)
{
	for (uint32_t i = 0; i < nkept(c, l); i++)
		if (kept(c, l, i) == (uint32_t)e)
			return (int)i;
	return -1;
}

static int is_router(const struct moe_name_match *m)
{
	return strstr(m->gguf_pat, "ffn_gate_inp.weight") != NULL ||
		strstr(m->gguf_pat, "exp_probs_b") != NULL;
}

/* Does dim 0 of this tensor (on its side) index experts? */
static int experts_on_dim0(const struct moe_name_match *m, int gguf_side)
{
	if (is_router(m))
		return 1;
	if (gguf_side)
		return (m->flags & (MOE_MAP_STACK | MOE_MAP_HALF0 | MOE_MAP_HALF1 |
			MOE_MAP_EXPERT_DIM0)) != 0;
	return (m->flags & MOE_MAP_EXPERT_DIM0) != 0;
}

static void set_key(struct otensor *t, const struct moe_conversion *c,
	const struct moe_name_match *m, int layer, int expert)
{
	size_t first_block = 0;

	while (first_block < moe_family_nentries(c->fam) &&
	       !strstr(moe_family_entry(c->fam, first_block)->gguf_pat, "{L}"))
		first_block++;
	t->key[0] = layer >= 0 ? 1 : (m->index < (int)first_block ? 0 : 2);
	t->key[1] = layer;
	t->key[2] = m->index;
	t->key[3] = expert;
}

static void copy_shape(struct otensor *t, const struct moe_tensor *s)
{
	t->ndim = s->ndim;
	memcpy(t->shape, s->shape, sizeof t->shape);
	t->sdtype = s->dtype;
	t->row_len = moe_conv_row_len(s);
}

/* Expert-indexed rows of s (experts on dim 0) for the kept experts. */
static int expert_pieces(struct moe_conversion *c, struct otensor *t,
	const struct moe_tensor *s, int layer, uint64_t part0, uint64_t nparts)
{
	uint64_t per = nrows_of(s) / c->n_expert, sub = per / nparts;
	int rc = 0;

	if (s->shape[0] != c->n_expert)
		return moe_error_set(&c->err, MOE_EFORMAT, "tensor '%s' has %llu experts, "
			"not %u", s->name, (unsigned long long)s->shape[0], c->n_expert);
	for (uint32_t i = 0; rc == 0 && i < nkept(c, layer); i++)
		rc = moe_conv_piece(c, t, s, kept(c, layer, i) * per + part0 * sub, sub);
	return rc;
}

static const struct moe_tensor *find_src(const struct moe_conversion *c, const char *name)
{
	if (c->ck)
		return moe_ckpt_find(c->ck, name);
	for (size_t i = 0; i < c->nsrc; i++)
		if (strcmp(c->src[i].name, name) == 0)
			return &c->src[i];
	return NULL;
}

static int fmt(struct moe_conversion *c, const char *pat, int layer, int expert,
	char *buf, size_t n)
{
	if (moe_namemap_format(pat, layer, expert, buf, n) != 0)
		return moe_error_set(&c->err, MOE_ERANGE, "tensor name too long");
	return 0;
}

static void set_perm(struct moe_conversion *c, struct otensor *t,
	const struct moe_name_match *m, int dir)
{
	if (m->flags & (MOE_MAP_PERMUTE_Q | MOE_MAP_PERMUTE_K)) {
		t->perm = dir;
		t->heads = m->flags & MOE_MAP_PERMUTE_Q ? moe_conv_hp(c, "attention.head_count", 1)
			: moe_conv_hp(c, "attention.head_count_kv",
				moe_conv_hp(c, "attention.head_count", 1));
	}
}

/* Whole tensor, or its kept experts when dim 0 indexes experts. */
static int whole_or_experts(struct moe_conversion *c, struct otensor *t,
	const struct moe_tensor *s, const struct moe_name_match *m, int gguf_side)
{
	if (m && m->layer >= 0 && c->keep && c->keep[m->layer] &&
	    experts_on_dim0(m, gguf_side)) {
		t->shape[0] = nkept(c, m->layer);
		return expert_pieces(c, t, s, m->layer, 0, 1);
	}
	return moe_conv_piece(c, t, s, 0, nrows_of(s));
}

/* Same side: one output per input, renumbered and cut to the subsets. */
static int plan_same(struct moe_conversion *c, const struct moe_tensor *s,
	const struct moe_name_match *m, long seq)
{
	char name[512];
	int nl = m && m->layer >= 0 ? c->layer_map[m->layer] : -1, ne = -1;
	struct otensor *t;

	if (m && m->layer >= 0 && nl < 0)
		return 0;
	if (m && m->expert >= 0 && (ne = expert_pos(c, m->layer, m->expert)) < 0)
		return 0;
	if (m && fmt(c, c->src_gguf ? m->gguf_pat : m->hf_pat, nl, ne, name, sizeof name))
		return c->err.code;
	if ((t = moe_conv_add(c, m ? name : s->name)) == NULL)
		return c->err.code;
	copy_shape(t, s);
	t->key[2] = seq;
	return whole_or_experts(c, t, s, m, c->src_gguf);
}

static struct otensor *find_out(struct moe_conversion *c, const char *name)
{
	for (size_t i = c->n; i-- > 0;)
		if (strcmp(c->t[i].name, name) == 0)
			return &c->t[i];
	return NULL;
}

/* HF per-expert tensor into its slot of the stacked GGUF tensor. */
static int stack_expert(struct moe_conversion *c, const struct moe_tensor *s,
	const struct moe_name_match *m, int nl)
{
	char name[512];
	int pos = expert_pos(c, m->layer, m->expert);
	struct otensor *t;

	if (pos < 0)
		return 0;
	if (m->expert >= (int)c->n_expert)
		return moe_error_set(&c->err, MOE_EFORMAT, "tensor '%s': expert %d of %u",
			s->name, m->expert, c->n_expert);
	if (fmt(c, m->gguf_pat, nl, -1, name, sizeof name))
		return c->err.code;
	if ((t = find_out(c, name)) == NULL) {
		if ((t = moe_conv_add(c, name)) == NULL)
			return c->err.code;
		t->ndim = s->ndim + 1;
		t->shape[0] = nkept(c, m->layer);
		memcpy(t->shape + 1, s->shape, (MOE_MAX_DIMS - 1) * sizeof *t->shape);
		t->sdtype = s->dtype;
		t->row_len = moe_conv_row_len(s);
		if ((t->p = calloc(t->shape[0], sizeof *t->p)) == NULL)
			return moe_error_set(&c->err, MOE_ENOMEM, "out of memory");
		t->np = t->shape[0];
		set_key(t, c, m, nl, -1);
	}
	if (t->sdtype != s->dtype || moe_conv_row_len(s) != t->row_len ||
	    memcmp(t->shape + 1, s->shape, (size_t)s->ndim * sizeof *s->shape) != 0)
		return moe_error_set(&c->err, MOE_EFORMAT,
			"tensor '%s' differs in shape or dtype from the other experts", s->name);
	t->p[pos] = (struct piece){ s, 0, nrows_of(s), c->cur_scale };
	return 0;
}

static int plan_to_gguf(struct moe_conversion *c, const struct moe_tensor *s,
	const struct moe_name_match *m)
{
	char name[512];
	int nl = m->layer >= 0 ? c->layer_map[m->layer] : -1, rc = 0;
	struct otensor *t;

	if (m->layer >= 0 && nl < 0)
		return 0;
	if (m->flags & MOE_MAP_STACK)
		return stack_expert(c, s, m, nl);
	for (int h = 0; h < ((m->flags & MOE_MAP_HALF0) ? 2 : 1) && rc == 0; h++) {
		const struct moe_name_match *e = moe_family_entry(c->fam, (size_t)(m->index + h));
		if (fmt(c, e->gguf_pat, nl, -1, name, sizeof name) ||
		    (t = moe_conv_add(c, name)) == NULL)
			return c->err.code;
		copy_shape(t, s);
		set_key(t, c, e, nl, -1);
		set_perm(c, t, m, +1);
		if (m->flags & MOE_MAP_HALF0) {
			t->shape[0] = nkept(c, m->layer);
			t->shape[1] /= 2;
			rc = expert_pieces(c, t, s, m->layer, (uint64_t)h, 2);
		} else {
			if ((m->flags & MOE_MAP_SQUEEZE) && t->ndim == 2 && t->shape[0] == 1) {
				t->ndim = 1;
				t->shape[0] = t->shape[1];
			}
			rc = whole_or_experts(c, t, s, m, 0);
		}
	}
	return rc;
}

/* GraniteMoE: the fused HF input_linear interleaves the gate and up
 * halves of every expert. */
static int fuse_halves(struct moe_conversion *c, const struct moe_tensor *s,
	const struct moe_name_match *m, struct otensor *t)
{
	char name[512];
	const struct moe_tensor *up;
	uint64_t per;
	int rc = 0;

	if (fmt(c, moe_family_entry(c->fam, (size_t)m->index + 1)->gguf_pat, m->layer, -1,
	    name, sizeof name))
		return c->err.code;
	if ((up = find_src(c, name)) == NULL)
		return moe_error_set(&c->err, MOE_ENOENT, "missing tensor '%s'", name);
	if (up->dtype != s->dtype || memcmp(up->shape, s->shape, sizeof s->shape) != 0)
		return moe_error_set(&c->err, MOE_EFORMAT, "tensors '%s' and '%s' differ in "
			"shape or dtype", s->name, name);
	per = nrows_of(s) / c->n_expert;
	t->shape[0] = nkept(c, m->layer);
	t->shape[1] *= 2;
	for (uint32_t i = 0; rc == 0 && i < nkept(c, m->layer); i++) {
		uint32_t e = kept(c, m->layer, i);
		rc = moe_conv_piece(c, t, s, e * per, per);
		if (rc == 0)
			rc = moe_conv_piece(c, t, up, e * per, per);
	}
	return rc;
}

static int plan_to_hf(struct moe_conversion *c, const struct moe_tensor *s,
	const struct moe_name_match *m)
{
	char name[512];
	int nl = m->layer >= 0 ? c->layer_map[m->layer] : -1, rc = 0;
	struct otensor *t;

	if ((m->layer >= 0 && nl < 0) || (m->flags & MOE_MAP_HALF1))
		return 0;
	if (m->flags & MOE_MAP_STACK) {
		uint64_t per = nrows_of(s) / c->n_expert;
		for (uint32_t i = 0; rc == 0 && i < nkept(c, m->layer); i++) {
			if (fmt(c, m->hf_pat, nl, (int)i, name, sizeof name) ||
			    (t = moe_conv_add(c, name)) == NULL)
				return c->err.code;
			copy_shape(t, s);
			t->ndim = s->ndim - 1;
			memmove(t->shape, t->shape + 1, (MOE_MAX_DIMS - 1) * sizeof *t->shape);
			set_key(t, c, m, nl, (int)i);
			rc = moe_conv_piece(c, t, s, kept(c, m->layer, i) * per, per);
		}
		return rc;
	}
	if (fmt(c, m->hf_pat, nl, -1, name, sizeof name) || (t = moe_conv_add(c, name)) == NULL)
		return c->err.code;
	copy_shape(t, s);
	set_key(t, c, m, nl, -1);
	set_perm(c, t, m, -1);
	if (m->flags & MOE_MAP_HALF0)
		return fuse_halves(c, s, m, t);
	if ((m->flags & MOE_MAP_SQUEEZE) && t->ndim == 1) {
		t->ndim = 2;
		t->shape[1] = t->shape[0];
		t->shape[0] = 1;
	}
	return whole_or_experts(c, t, s, m, 1);
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* FP8 weights come with a weight_scale_inv tensor: both make one output. */
static const struct moe_tensor *fp8_scale(const struct moe_conversion *c,
	const struct moe_tensor *s)
{
	char name[600];

	if (s->dtype != MOE_DT_F8_E4M3)
		return NULL;
	snprintf(name, sizeof name, "%s_scale_inv", s->name);
	return find_src(c, name);
}

static int is_consumed_scale(const struct moe_conversion *c, const struct moe_tensor *s)
{
	char name[600];
	size_t n = strlen(s->name);
	const struct moe_tensor *w;

	if (!ends_with(s->name, "_scale_inv") || n - 10 >= sizeof name)
		return 0;
	memcpy(name, s->name, n - 10);
	name[n - 10] = '\0';
	w = find_src(c, name);
	return w && w->dtype == MOE_DT_F8_E4M3;
}

/* Records the GGUF name a source tensor keeps (for the order carried in
 * safetensors metadata). */
static int note_order(struct moe_conversion *c, const struct moe_name_match *m)
{
	char name[512];
	int nl = m->layer >= 0 ? c->layer_map[m->layer] : -1;

	if (m->layer >= 0 && nl < 0)
		return 0;
	if (fmt(c, m->gguf_pat, nl, -1, name, sizeof name))
		return c->err.code;
	return json_array_append_new(c->order, json_string(name)) == 0 ? 0
		: moe_error_set(&c->err, MOE_ENOMEM, "out of memory");
}

static int plan_mapped(struct moe_conversion *c, const struct moe_tensor *s, long seq)
{
	struct moe_name_match m;
	int rc;

	if (c->fam == NULL || moe_namemap_match(c->fam, s->name, !c->src_gguf, &m) != 0) {
		if (c->src_gguf != c->dst_gguf)
			return moe_error_set(&c->err, MOE_EUNSUP, "tensor '%s' has no %s name in "
				"family '%s' (leave it out with --drop-tensors)", s->name,
				c->dst_gguf ? "GGUF" : "Hugging Face",
				c->fam ? moe_family_gguf_arch(c->fam) : "unknown");
		if (c->o.layers || c->o.experts)
			return moe_error_set(&c->err, MOE_EUNSUP, "tensor '%s' is not part of "
				"a known family layout, so subsets cannot place it", s->name);
		return plan_same(c, s, NULL, seq);
	}
	if (c->src_gguf && !c->dst_gguf && (rc = note_order(c, &m)) != 0)
		return rc;
	if (c->src_gguf == c->dst_gguf)
		return plan_same(c, s, &m, seq);
	return c->dst_gguf ? plan_to_gguf(c, s, &m) : plan_to_hf(c, s, &m);
}

/* Plans the outputs of one input tensor; FP8 weights bring their scales. */
static int plan_one(struct moe_conversion *c, const struct moe_tensor *s, long seq)
{
	int rc;

	c->cur_src = s;
	c->cur_scale = fp8_scale(c, s);
	rc = plan_mapped(c, s, seq);
	c->cur_src = c->cur_scale = NULL;
	return rc;
}

static int missing_experts(struct moe_conversion *c)
{
	for (size_t i = 0; i < c->n; i++)
		for (size_t k = 0; k < c->t[i].np; k++)
			if (c->t[i].p[k].src == NULL)
				return moe_error_set(&c->err, MOE_ENOENT, "missing expert %zu of "
					"tensor '%s'", k, c->t[i].name);
	return 0;
}

static int cmp_key(const void *a, const void *b)
{
	const struct otensor *x = a, *y = b;

	for (int i = 0; i < 5; i++)
		if (x->key[i] != y->key[i])
			return x->key[i] < y->key[i] ? -1 : 1;
	return 0;
}

/* The order a GGUF from safetensors metadata had, if it names every tensor. */
static void apply_carried_order(struct moe_conversion *c)
{
	size_t i;
	json_t *v;

	if (!c->dst_gguf || c->src_gguf || !json_is_array(c->order) ||
	    json_array_size(c->order) != c->n)
		return;
	for (size_t k = 0; k < c->n; k++)
		c->t[k].key[0] = -1;
	json_array_foreach(c->order, i, v) {
		struct otensor *t = json_is_string(v) ? find_out(c, json_string_value(v)) : NULL;
		if (t == NULL)
			return;   /* keys left partly set: sorted below by what is known */
		t->key[0] = 0;
		t->key[1] = (long)i;
	}
	for (size_t k = 0; k < c->n; k++)
		c->t[k].key[2] = c->t[k].key[3] = 0;
}

static int is_router_name(const char *name)
{
	struct moe_tclass tc;

	return moe_tensor_classify(name, &tc) == 0 && tc.comp == MOE_COMP_ROUTER;
}

/* Output dtype of each tensor (llama.cpp keeps norms and routers F32). */
static int choose_dtypes(struct moe_conversion *c)
{
	for (size_t i = 0; i < c->n; i++) {
		struct otensor *t = &c->t[i];
		int fp8 = t->np && t->p[0].scale;
		enum moe_dtype d = c->o.dtype;
		if (d != MOE_DT_INVALID && (t->ndim < 2 || is_router_name(t->name)))
			d = MOE_DT_F32;
		if (!moe_dtype_is_float(t->sdtype) && !moe_dtype_is_quantized(t->sdtype))
			d = MOE_DT_INVALID;   /* integers and bools are copied */
		t->dtype = d != MOE_DT_INVALID ? d : fp8 ? MOE_DT_BF16 : t->sdtype;
		if (c->o.choose) {
			struct moe_tensor desc = { .name = t->name, .dtype = t->sdtype,
				.ndim = t->ndim };
			memcpy(desc.shape, t->shape, sizeof desc.shape);
			t->dtype = c->o.choose(c->o.choose_ctx, &desc, t->dtype);
		}
		if (moe_dtype_is_quantized(t->sdtype) && moe_dtype_is_quantized(t->dtype) &&
		    t->dtype != t->sdtype && !c->o.allow_requantize)
			return moe_error_set(&c->err, MOE_EINVAL, "tensor '%s' is already %s: "
				"requantizing to %s compounds the error (allow it with "
				"--allow-requantize)", t->name, moe_dtype_name(t->sdtype),
				moe_dtype_name(t->dtype));
		if (!c->dst_gguf && moe_dtype_is_quantized(t->dtype))
			return moe_error_set(&c->err, MOE_EUNSUP, "tensor '%s' is %s, which "
				"safetensors cannot hold (use --dtype f32, f16 or bf16)", t->name,
				moe_dtype_name(t->dtype));
		if (c->dst_gguf && moe_dtype_to_ggml(t->dtype) < 0)
			return moe_error_set(&c->err, MOE_EUNSUP, "tensor '%s' is %s, which GGUF "
				"cannot hold (use --dtype)", t->name, moe_dtype_name(t->dtype));
	}
	return 0;
}

/* Block-scaled FP8 weights (DeepSeek-V3's layout) get a weight_scale_inv
 * tensor right after them, filled while the weight is written. */
static int add_fp8_scales(struct moe_conversion *c)
{
	size_t extra = 0, k = 0;
	struct otensor *nt;

	for (size_t i = 0; i < c->n; i++)
		extra += c->t[i].dtype == MOE_DT_F8_E4M3 && c->t[i].ndim >= 2;
	if (extra == 0)
		return 0;
	if ((nt = calloc(c->n + extra, sizeof *nt)) == NULL)
		return moe_error_set(&c->err, MOE_ENOMEM, "out of memory");
	for (size_t i = 0; i < c->n; i++) {
		struct otensor *w = &c->t[i], *sc;
		uint64_t rows = 0, cols = w->shape[w->ndim - 1];
		nt[k++] = *w;
		if (w->dtype != MOE_DT_F8_E4M3 || w->ndim < 2)
			continue;
		moe_shape_numel(w->ndim - 1, w->shape, &rows);
		sc = &nt[k++];
		if (asprintf(&sc->name, "%s_scale_inv", w->name) < 0)
			sc->name = NULL;
		sc->dtype = sc->sdtype = MOE_DT_F32;
		sc->ndim = 2;
		sc->shape[0] = (rows + 127) / 128;
		sc->shape[1] = (cols + 127) / 128;
		sc->row_len = sc->shape[1];
		sc->scale_of = k - 1;   /* 1 + index of the weight, placed just before */
		if (sc->name == NULL || w->np != 1) {
			free(c->t);
			c->t = nt;
			c->n = k;
			return sc->name == NULL ? moe_error_set(&c->err, MOE_ENOMEM, "out of memory")
				: moe_error_set(&c->err, MOE_EUNSUP, "tensor '%s' is assembled from "
				"several inputs and cannot be block-quantized to FP8", w->name);
		}
	}
	free(c->t);
	c->t = nt;
	c->n = c->cap = k;
	return 0;
}

static int put_u32(struct moe_conversion *c, const char *suffix, uint32_t v)
{
	const char *arch;
	char key[160];

	if (moe_meta_get_str(c->kv, "general.architecture", &arch) != 0)
		return 0;
	snprintf(key, sizeof key, "%s.%s", arch, suffix);
	return moe_meta_set_u32(c->kv, key, v) == 0 ? 0
		: moe_error_set(&c->err, MOE_ENOMEM, "out of memory");
}

/* Block and expert counts after --layers/--experts, in both key styles. */
static int update_counts(struct moe_conversion *c, json_t *cfg)
{
	uint32_t blocks = 0, lead = moe_conv_hp(c, "leading_dense_block_count", 0), nlead = 0;
	uint32_t experts = c->n_expert;
	static const char *ecount[] = { "num_local_experts", "num_experts", "n_routed_experts" };
	int rc = 0;

	for (uint32_t l = 0; l < c->n_layers; l++)
		if (c->layer_map[l] >= 0) {
			blocks++;
			nlead += l < lead;
			if (l >= lead && c->keep)
				experts = nkept(c, (int)l);
		}
	if (c->o.layers && (rc = put_u32(c, "block_count", blocks)) == 0 && lead)
		rc = put_u32(c, "leading_dense_block_count", nlead);
	if (rc == 0 && c->o.experts)
		rc = put_u32(c, "expert_count", experts);
	if (rc != 0 || cfg == NULL)
		return rc;
	if (c->o.layers) {
		json_object_set_new(cfg, "num_hidden_layers", json_integer(blocks));
		if (json_object_get(cfg, "first_k_dense_replace"))
			json_object_set_new(cfg, "first_k_dense_replace", json_integer(nlead));
	}
	for (int i = 0; c->o.experts && i < 3; i++)
		if (json_object_get(cfg, ecount[i]))
			json_object_set_new(cfg, ecount[i], json_integer(experts));
	return 0;
}

/* llama.cpp's general.file_type from the type holding the most bytes. */
static int set_file_type(struct moe_conversion *c)
{
	static const struct { enum moe_dtype t; uint32_t ftype; } ft[] = {
		{ MOE_DT_F32, 0 }, { MOE_DT_F16, 1 }, { MOE_DT_Q4_0, 2 }, { MOE_DT_Q4_1, 3 },
		{ MOE_DT_Q8_0, 7 }, { MOE_DT_Q5_0, 8 }, { MOE_DT_Q5_1, 9 }, { MOE_DT_Q2_K, 10 },
		{ MOE_DT_Q3_K, 12 }, { MOE_DT_Q4_K, 15 }, { MOE_DT_Q5_K, 17 }, { MOE_DT_Q6_K, 18 },
		{ MOE_DT_IQ4_NL, 25 }, { MOE_DT_IQ4_XS, 30 }, { MOE_DT_BF16, 32 },
		{ MOE_DT_TQ1_0, 36 }, { MOE_DT_TQ2_0, 37 }, { MOE_DT_MXFP4, 38 },
	};
	uint64_t bytes[MOE_DT_COUNT] = { 0 }, best = 0;
	enum moe_dtype top = MOE_DT_F32;

	for (size_t i = 0; i < c->n; i++) {
		uint64_t b = 0;
		if (c->t[i].ndim < 2)
			continue;
		moe_dtype_nbytes(c->t[i].dtype, c->t[i].row_len, &b);
		bytes[c->t[i].dtype] += b;
	}
	for (int t = 1; t < MOE_DT_COUNT; t++) {
		if (bytes[t] > best)
			best = bytes[t], top = (enum moe_dtype)t;
		/* llama.cpp marks files holding ggml block types this way */
		if (bytes[t] && moe_dtype_is_quantized((enum moe_dtype)t) &&
		    moe_meta_set_u32(c->kv, "general.quantization_version", 2) != 0)
			return moe_error_set(&c->err, MOE_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < sizeof ft / sizeof ft[0]; i++)
		if (ft[i].t == top)
			return moe_meta_set_u32(c->kv, "general.file_type", ft[i].ftype) == 0 ? 0
				: moe_error_set(&c->err, MOE_ENOMEM, "out of memory");
	return 0;
}

/* tokenizer.json for a Hugging Face output: the input's, or made from
 * the GGUF vocabulary. */
static int output_tokenizer(struct moe_conversion *c)
{
	int rc;

	if (c->dst_gguf)
		return 0;
	if (!c->src_gguf && c->ck) {
		c->tok_out = json_incref(moe_ckpt_json(c->ck, "tokenizer"));
		c->tokcfg_out = json_incref(moe_ckpt_json(c->ck, "tokenizer_config"));
		return 0;
	}
	if (!moe_meta_find(c->kv, "tokenizer.ggml.model"))
		return 0;
	rc = moe_tokconv_from_gguf(c->kv, &c->tok_out, &c->tokcfg_out, &c->err);
	if (rc == MOE_EUNSUP) {
		snprintf(c->warning, sizeof c->warning, "%.200s; no tokenizer.json written", c->err.msg);
		moe_error_clear(&c->err);
		rc = 0;
	}
	return rc;
}

static int output_meta(struct moe_conversion *c, json_t *config_in)
{
	int rc;

	if (!c->dst_gguf) {
		if (c->src_gguf && c->ck && c->fam) {
			rc = moe_hfconfig_from_gguf(c->fam, c->kv, c->v3, c->tied, &c->config, &c->err);
			if (rc != 0)
				return rc;
		} else if (config_in) {
			c->config = json_deep_copy(config_in);
		}
	}
	if ((rc = update_counts(c, c->config)) != 0 || (rc = output_tokenizer(c)) != 0)
		return rc;
	return c->dst_gguf && moe_meta_find(c->kv, "general.architecture")
		? set_file_type(c) : 0;
}

/* GGUF metadata of the source: its own, carried in safetensors metadata,
 * or made from config.json. */
static int source_kv(struct moe_conversion *c, json_t *config)
{
	const struct moe_meta *m = c->ck ? moe_ckpt_meta(c->ck) : NULL;
	const char *carried = NULL, *order = NULL, *arch = NULL, *mt;

	if (moe_meta_new(&c->kv) != 0)
		return moe_error_set(&c->err, MOE_ENOMEM, "out of memory");
	if (c->src_gguf && c->ck) {
		for (size_t i = 0; i < moe_meta_count(m); i++) {
			struct moe_value v;
			if (moe_value_copy(&v, moe_meta_at(m, i)) != 0 ||
			    moe_meta_set(c->kv, moe_meta_key(m, i), &v) != 0)
				return moe_error_set(&c->err, MOE_ENOMEM, "out of memory");
		}
	} else if (m && moe_meta_get_str(m, "gguf.metadata", &carried) == 0) {
		json_t *j = json_loads(carried, 0, NULL);
		int rc = j ? moe_meta_from_typed_json(c->kv, j) : MOE_EFORMAT;
		json_decref(j);
		if (rc != 0)
			return moe_error_set(&c->err, rc, "metadata 'gguf.metadata' is damaged");
		if (moe_meta_get_str(m, "gguf.tensor_order", &order) == 0)
			c->order = json_loads(order, 0, NULL);
	}
	if (moe_meta_get_str(c->kv, "general.architecture", &arch) == 0)
		c->fam = moe_family_by_gguf_arch(arch);
	else if ((mt = json_string_value(json_object_get(config, "model_type"))) != NULL &&
	         (c->fam = moe_family_by_model_type(mt)) != NULL) {
		int rc = moe_hfconfig_to_gguf(c->fam, config, c->kv, &c->err);
		json_t *tok = c->ck ? moe_ckpt_json(c->ck, "tokenizer") : NULL;
		if (rc == 0 && tok)
			rc = moe_tokconv_to_gguf(tok, moe_ckpt_json(c->ck, "tokenizer_config"), c->kv,
				c->warning, sizeof c->warning, &c->err);
		return rc;
	}
	return 0;
}

static long detect(const struct moe_conversion *c, const char *needle)
{
	for (size_t i = 0; i < c->nsrc; i++)
		if (strstr(c->src[i].name, needle))
			return 1;
	return 0;
}

/* DeepSeek-V3's multi-token-prediction layer sits after the last block;
 * GGUF has no place for it. */
static int is_mtp(const struct moe_conversion *c, const struct moe_tensor *s)
{
	struct moe_tclass tc;

	if (c->src_gguf || !c->dst_gguf || c->n_layers == 0)
		return 0;
	moe_tensor_classify(s->name, &tc);
	return tc.comp == MOE_COMP_MTP || tc.layer >= (int)c->n_layers;
}

static int plan(struct moe_conversion *c, json_t *config)
{
	size_t mtp = 0;
	int rc;

	c->n_layers = moe_conv_hp(c, "block_count", 0);
	c->n_expert = moe_conv_hp(c, "expert_count", 0);
	c->v3 = detect(c, "exp_probs_b") || detect(c, "e_score_correction_bias") ||
		moe_conv_hp(c, "expert_gating_func", 1) == 2;
	c->tied = c->src_gguf && find_src(c, "output.weight") == NULL;
	if (c->o.drop) {
		if (regcomp(&c->drop, c->o.drop, REG_EXTENDED | REG_NOSUB) != 0)
			return moe_error_set(&c->err, MOE_EINVAL,
				"--drop-tensors: '%s' is not a valid regular expression", c->o.drop);
		c->has_drop = 1;
	}
	if ((c->o.layers || c->o.experts) && c->n_layers == 0)
		return moe_error_set(&c->err, MOE_EINVAL, "subsets need the model's block "
			"count, and this checkpoint's architecture is unknown");
	if (!c->src_gguf && !c->dst_gguf) {
		json_decref(c->order);
		c->order = NULL;
	}
	if (c->src_gguf && !c->dst_gguf && (c->order = json_array()) == NULL)
		return moe_error_set(&c->err, MOE_ENOMEM, "out of memory");
	if ((rc = parse_layers(c)) != 0 || (rc = parse_experts(c)) != 0)
		return rc;
	for (size_t i = 0; i < c->nsrc; i++) {
		const struct moe_tensor *s = &c->src[i];
		if ((c->has_drop && regexec(&c->drop, s->name, 0, NULL, 0) == 0) ||
		    ends_with(s->name, ".rotary_emb.inv_freq") || is_consumed_scale(c, s))
			continue;
		if (is_mtp(c, s)) {
			mtp++;
			continue;
		}
		if ((rc = plan_one(c, s, (long)i)) != 0)
			return rc;
	}
	if (mtp)
		snprintf(c->warning, sizeof c->warning, "left out %zu tensors of multi-token-"
			"prediction layers, which llama.cpp does not run", mtp);
	if ((rc = missing_experts(c)) != 0)
		return rc;
	for (size_t i = 0; i < c->n; i++)
		c->t[i].key[4] = (long)i;
	apply_carried_order(c);
	qsort(c->t, c->n, sizeof *c->t, cmp_key);
	if ((rc = choose_dtypes(c)) != 0 || (rc = add_fp8_scales(c)) != 0 ||
	    (rc = output_meta(c, config)) != 0)
		return rc;
	for (size_t i = 0; i < c->n; i++) {
		uint64_t b = 0, numel = 0;
		moe_shape_numel(c->t[i].ndim, c->t[i].shape, &numel);
		if (moe_dtype_nbytes(c->t[i].dtype, numel, &b) != 0)
			return moe_error_set(&c->err, MOE_ERANGE, "tensor '%s' cannot be %s",
				c->t[i].name, moe_dtype_name(c->t[i].dtype));
		c->total += b;
	}
	return 0;
}

static int conv_alloc(struct moe_conversion **out, const struct moe_convert_opts *o)
{
	if ((*out = calloc(1, sizeof **out)) == NULL)
		return MOE_ENOMEM;
	(*out)->o = *o;
	(*out)->dst_gguf = o->format == MOE_CONV_GGUF;
	return 0;
}

int moe_convert_new(struct moe_conversion **out, struct moe_ckpt *ck,
	const struct moe_convert_opts *o)
{
	struct moe_conversion *c;
	json_t *config = moe_ckpt_json(ck, "config");
	int rc;

	if ((rc = conv_alloc(out, o)) != 0)
		return rc;
	c = *out;
	c->ck = ck;
	c->nsrc = moe_ckpt_ntensors(ck);
	c->src = c->nsrc ? moe_ckpt_tensor(ck, 0) : NULL;
	c->src_gguf = moe_ckpt_format(ck) == MOE_FMT_GGUF;
	if (c->nsrc == 0)
		return moe_error_set(&c->err, MOE_EINVAL, "input has no tensors");
	if ((rc = source_kv(c, config)) != 0)
		return rc;
	return plan(c, config);
}

int moe_convert_new_init(struct moe_conversion **out, json_t *config,
	uint64_t seed, const struct moe_convert_opts *o)
{
	struct moe_conversion *c;
	const char *mt = json_string_value(json_object_get(config, "model_type"));
	int rc;

	if ((rc = conv_alloc(out, o)) != 0)
		return rc;
	c = *out;
	c->seed = seed;
	c->src_gguf = 1;
	if (mt == NULL || (c->fam = moe_family_by_model_type(mt)) == NULL)
		return moe_error_set(&c->err, MOE_EUNSUP, "--init: model_type '%s' is not one "
			"of %s", mt ? mt : "(none)", moe_family_list());
	if (moe_meta_new(&c->kv) != 0)
		return moe_error_set(&c->err, MOE_ENOMEM, "out of memory");
	if ((rc = moe_hfconfig_to_gguf(c->fam, config, c->kv, &c->err)) != 0 ||
	    (rc = moe_conv_init_layout(c, config)) != 0)
		return rc;
	return plan(c, config);
}

void moe_convert_free(struct moe_conversion *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++) {
		free(c->t[i].name);
		free(c->t[i].p);
		free(c->t[i].scales);
	}
	for (size_t i = 0; c->gen && i < c->nsrc; i++)
		free(c->gen[i].name);
	for (uint32_t l = 0; c->keep && l < c->n_layers; l++)
		free(c->keep[l]);
	if (c->has_drop)
		regfree(&c->drop);
	free(c->keep);
	free(c->nkeep);
	free(c->layer_map);
	free(c->gen);
	free(c->t);
	moe_meta_free(c->kv);
	json_decref(c->config);
	json_decref(c->order);
	json_decref(c->tok_out);
	json_decref(c->tokcfg_out);
	free(c);
}

const char *moe_convert_errstr(const struct moe_conversion *c) { return moe_error_str(&c->err); }
const char *moe_convert_warning(const struct moe_conversion *c) { return c->warning; }
size_t moe_convert_ntensors(const struct moe_conversion *c) { return c->n; }
uint64_t moe_convert_bytes(const struct moe_conversion *c) { return c->total; }

int moe_convert_tensor(const struct moe_conversion *c, size_t i, struct moe_tensor *out)
{
	const struct otensor *t;
	uint64_t numel = 0;

	if (i >= c->n)
		return MOE_EINVAL;
	t = &c->t[i];
	memset(out, 0, sizeof *out);
	out->name = t->name;
	out->dtype = t->dtype;
	out->ndim = t->ndim;
	memcpy(out->shape, t->shape, sizeof out->shape);
	moe_shape_numel(t->ndim, t->shape, &numel);
	return moe_dtype_nbytes(t->dtype, numel, &out->nbytes);
}

int moe_convert_stats(const struct moe_conversion *c, size_t i, struct moe_conv_stats *st)
{
	if (i >= c->n)
		return MOE_EINVAL;
	*st = c->t[i].st;
	return 0;
}

enum moe_dtype moe_convert_source_dtype(const struct moe_conversion *c, size_t i)
{
	return i < c->n ? c->t[i].sdtype : MOE_DT_INVALID;
}
