/* Tokenizer: vocabularies from GGUF or tokenizer.json, llama.cpp's SPM and BPE merge loops, special tokens, decoding. */
#include "tokenizer.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "pretokenize.h"

/*
 * The algorithms follow llama.cpp b4748 (llama-vocab.cpp) so ids match it:
 *  - the text is first cut at special tokens (longest first; user-defined
 *    ones always, control/unknown ones with parse_special);
 *  - SPM: spaces become U+2581, a space is prepended to the first piece and
 *    after each special token, the piece is split into UTF-8 characters
 *    and the adjacent pair whose concatenation is the best-scoring token is
 *    merged first (leftmost on ties); characters left that are not tokens
 *    become <0xNN> byte tokens;
 *  - BPE: each pre-tokenizer word (byte-level encoded) is merged by merge
 *    rank (lowest first, leftmost on ties); a final piece that is not a
 *    token falls back to single-byte tokens where those exist.
 * Unigram (tokenizer.json only) follows Hugging Face tokenizers: the
 * segmentation with the highest total score (Viterbi), an unknown
 * character scoring the lowest piece score minus 10.
 */

#define MAX_TOKENS (1u << 24)
#define MAX_TOKEN_BYTES (1u << 16)
#define MAX_MERGES (1u << 24)
#define MAX_TEXT ((size_t)1 << 26)

/* llama_token_attr */
enum {
	A_UNKNOWN = 1 << 0, A_UNUSED = 1 << 1, A_NORMAL = 1 << 2, A_CONTROL = 1 << 3,
	A_USER = 1 << 4, A_BYTE = 1 << 5, A_LSTRIP = 1 << 7, A_RSTRIP = 1 << 8,
	A_EOG = 1 << 12  /* ours: ends generation */
};

enum kind { K_SPM, K_BPE, K_UGM };

struct entry {
	char *text;
	uint32_t len;
	uint16_t attr;
	float score;
};

struct merge {
	char *s;           /* left then right, no separator */
	uint32_t llen, rlen;
};

struct moe_tokenizer {
	struct moe_error err;
	enum kind kind;
	int byte_level;      /* BPE over GPT-2's byte alphabet */
	int escape_ws;       /* spaces become U+2581 (SPM, Metaspace) */
	int add_space_prefix;
	int byte_fallback;   /* unknown pieces become <0xNN> tokens */
	int ignore_merges;
	int add_bos, add_eos;
	int32_t bos, eos, unk, pad;
	float unk_score;     /* Unigram: an unknown character's score */
	size_t max_len;      /* longest token text, bytes */

	struct entry *tok;
	size_t n_tok;
	uint32_t *tmap;      /* open addressing: id + 1, 0 empty */
	size_t tmap_cap;

	struct merge *merges;
	size_t n_merges;
	uint32_t *mmap_;     /* rank + 1 */
	size_t mmap_cap;

	int32_t byte_tok[256];
	int32_t *special;    /* candidates for the special-token split */
	size_t n_special;
	struct moe_pretok *pre;
};

/* ---- handle and tables ---- */

static int fail(struct moe_tokenizer *t, int code, const char *fmt, const char *arg)
{
	return moe_error_set(&t->err, code, fmt, arg);
}

static int alloc_handle(struct moe_tokenizer **out)
{
	struct moe_tokenizer *t = calloc(1, sizeof *t);

	*out = t;
	if (t == NULL)
		return MOE_ENOMEM;
	t->bos = t->eos = t->unk = t->pad = -1;
	return 0;
}

void moe_tokenizer_free(struct moe_tokenizer *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n_tok; i++)
		free(t->tok[i].text);
	for (size_t i = 0; i < t->n_merges; i++)
		free(t->merges[i].s);
	free(t->tok);
	free(t->tmap);
	free(t->merges);
	free(t->mmap_);
	free(t->special);
	moe_pretok_free(t->pre);
	free(t);
}

const char *moe_tokenizer_errstr(const struct moe_tokenizer *t)
{
	return t ? moe_error_str(&t->err) : moe_strerror(MOE_ENOMEM);
}

static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

#define FNV0 0xcbf29ce484222325ull

static size_t table_cap(size_t n)
{
	size_t c = 16;

	while (c < 2 * n)
		c <<= 1;
	return c;
}

/* Id of the token s[0..n) whose hash is h, or -1. */
static int32_t find_token_h(const struct moe_tokenizer *t, const char *s, size_t n, uint64_t h)
{
	size_t m = t->tmap_cap - 1;

	if (t->tmap == NULL)
		return -1;
	for (size_t i = h & m;; i = (i + 1) & m) {
		uint32_t v = t->tmap[i];

		if (v == 0)
			return -1;
		if (t->tok[v - 1].len == n && memcmp(t->tok[v - 1].text, s, n) == 0)
			return (int32_t)(v - 1);
	}
}

static int32_t find_token(const struct moe_tokenizer *t, const char *s, size_t n)
{
	return find_token_h(t, s, n, fnv(FNV0, s, n));
}

/* Later duplicates win, as in llama.cpp's token_to_id map. */
static void index_tokens(struct moe_tokenizer *t)
{
	size_t m = t->tmap_cap - 1;

	for (size_t id = 0; id < t->n_tok; id++) {
		const struct entry *e = &t->tok[id];
		size_t i = fnv(FNV0, e->text, e->len) & m;

		for (;; i = (i + 1) & m) {
			uint32_t v = t->tmap[i];

			if (v == 0 || (t->tok[v - 1].len == e->len &&
			    memcmp(t->tok[v - 1].text, e->text, e->len) == 0))
				break;
		}
		t->tmap[i] = (uint32_t)id + 1;
	}
}

static uint64_t merge_hash(const char *l, size_t ln, const char *r, size_t rn)
{
	uint64_t h = fnv(FNV0, l, ln);

	h = (h ^ 0x1ff) * 0x100000001b3ull;
	return fnv(h, r, rn);
}

/* Rank of merging l and r, or -1. */
static int32_t find_merge(const struct moe_tokenizer *t, const char *l, size_t ln,
	const char *r, size_t rn)
{
	size_t m = t->mmap_cap - 1;

	if (t->mmap_ == NULL)
		return -1;
	for (size_t i = merge_hash(l, ln, r, rn) & m;; i = (i + 1) & m) {
		uint32_t v = t->mmap_[i];
		const struct merge *g;

		if (v == 0)
			return -1;
		g = &t->merges[v - 1];
		if (g->llen == ln && g->rlen == rn && memcmp(g->s, l, ln) == 0 &&
		    memcmp(g->s + ln, r, rn) == 0)
			return (int32_t)(v - 1);
	}
}

/* The first of duplicate merges keeps its rank (llama.cpp's emplace). */
static int index_merges(struct moe_tokenizer *t)
{
	size_t m;

	t->mmap_cap = table_cap(t->n_merges);
	if ((t->mmap_ = calloc(t->mmap_cap, sizeof *t->mmap_)) == NULL)
		return MOE_ENOMEM;
	m = t->mmap_cap - 1;
	for (size_t k = 0; k < t->n_merges; k++) {
		const struct merge *g = &t->merges[k];
		size_t i = merge_hash(g->s, g->llen, g->s + g->llen, g->rlen) & m;

		if (g->llen == 0 || g->rlen == 0)
			continue;
		for (;; i = (i + 1) & m) {
			uint32_t v = t->mmap_[i];

			if (v == 0) {
				t->mmap_[i] = (uint32_t)k + 1;
				break;
			}
			if (t->merges[v - 1].llen == g->llen && t->merges[v - 1].rlen == g->rlen &&
			    memcmp(t->merges[v - 1].s, g->s, g->llen + g->rlen) == 0)
				break;
		}
	}
	return 0;
}

static int set_token(struct moe_tokenizer *t, size_t id, const char *s, size_t n)
{
	char name[32];

	if (n > MAX_TOKEN_BYTES)
		return moe_error_set(&t->err, MOE_ERANGE, "token %zu is %zu bytes long", id, n);
	if (n == 0) {
		/* llama.cpp names empty tokens so they stay distinct */
		n = (size_t)snprintf(name, sizeof name, "[EMPTY_%zu]", id);
		s = name;
	}
	free(t->tok[id].text);
	if ((t->tok[id].text = malloc(n + 1)) == NULL)
		return MOE_ENOMEM;
	memcpy(t->tok[id].text, s, n);
	t->tok[id].text[n] = '\0';
	t->tok[id].len = (uint32_t)n;
	return 0;
}

static int alloc_tokens(struct moe_tokenizer *t, uint64_t n)
{
	if (n == 0 || n > MAX_TOKENS)
		return moe_error_set(&t->err, MOE_ERANGE, "vocabulary of %llu tokens",
			(unsigned long long)n);
	if ((t->tok = calloc(n, sizeof *t->tok)) == NULL)
		return MOE_ENOMEM;
	t->n_tok = n;
	for (size_t i = 0; i < n; i++)
		t->tok[i].attr = A_NORMAL;
	return 0;
}

static int add_merge(struct moe_tokenizer *t, const char *l, size_t ln, const char *r, size_t rn)
{
	struct merge *g = &t->merges[t->n_merges];

	if (ln > MAX_TOKEN_BYTES || rn > MAX_TOKEN_BYTES)
		return moe_error_set(&t->err, MOE_ERANGE, "merge %zu is too long", t->n_merges);
	if ((g->s = malloc(ln + rn + 1)) == NULL)
		return MOE_ENOMEM;
	memcpy(g->s, l, ln);
	memcpy(g->s + ln, r, rn);
	g->s[ln + rn] = '\0';
	g->llen = (uint32_t)ln;
	g->rlen = (uint32_t)rn;
	t->n_merges++;
	return 0;
}

/* "left right", split at the first space after the first byte; without a
 * space both halves are empty (never matched), as in llama.cpp. */
static int add_merge_line(struct moe_tokenizer *t, const char *s, size_t n)
{
	const char *sp = n > 1 ? memchr(s + 1, ' ', n - 1) : NULL;

	if (sp == NULL)
		return add_merge(t, "", 0, "", 0);
	return add_merge(t, s, (size_t)(sp - s), sp + 1, n - (size_t)(sp - s) - 1);
}

/* Tokens whose text marks them as control tokens in llama.cpp even when the
 * file says otherwise; the first group also ends generation. Octal escapes:
 * \357\275\234 is U+FF5C (fullwidth bar), \342\226\201 is U+2581 (▁). */
static const char *const EOG_TEXTS[] = {
	"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
	"<|eom_id|>", "<EOT>", "_<EOT>",
	"<\357\275\234end\342\226\201of\342\226\201sentence\357\275\234>",
};
static const char *const FIM_TEXTS[] = {
	"<|fim_prefix|>", "<fim-prefix>", "<\357\275\234fim\342\226\201begin\357\275\234>",
	"<PRE>", "\342\226\201<PRE>", "<|fim_suffix|>", "<fim-suffix>",
	"<\357\275\234fim\342\226\201hole\357\275\234>", "<SUF>", "\342\226\201<SUF>",
	"<|fim_middle|>", "<fim-middle>", "<\357\275\234fim\342\226\201end\357\275\234>",
	"<MID>", "\342\226\201<MID>", "<|fim_pad|>", "<fim-pad>", "<PAD>",
	"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<|file_sep|>",
};

static void mark_texts(struct moe_tokenizer *t, const char *const *list, size_t n, uint16_t extra)
{
	for (size_t i = 0; i < n; i++) {
		int32_t id = find_token(t, list[i], strlen(list[i]));

		if (id >= 0) {
			if (!(t->tok[id].attr & A_CONTROL))
				t->tok[id].attr = A_CONTROL;
			t->tok[id].attr |= extra;
		}
	}
}

static int cmp_special(const void *a, const void *b, void *ctx)
{
	const struct moe_tokenizer *t = ctx;
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;

	if (t->tok[x].len != t->tok[y].len)
		return t->tok[x].len > t->tok[y].len ? -1 : 1;
	return x < y ? -1 : x > y;
}

static int contains(const char *hay, const char *needle)
{
	return hay != NULL && strstr(hay, needle) != NULL;
}

static void set_attr(struct moe_tokenizer *t, const char *text, uint16_t a, int on)
{
	int32_t id = find_token(t, text, strlen(text));

	if (id >= 0)
		t->tok[id].attr = on ? t->tok[id].attr | a : t->tok[id].attr & ~a;
}

/* Hash tables, longest token, byte tokens. */
static int index_vocab(struct moe_tokenizer *t)
{
	t->tmap_cap = table_cap(t->n_tok);
	if ((t->tmap = calloc(t->tmap_cap, sizeof *t->tmap)) == NULL)
		return MOE_ENOMEM;
	index_tokens(t);
	for (size_t i = 0; i < t->n_tok; i++)
		if (t->tok[i].len > t->max_len)
			t->max_len = t->tok[i].len;
	if (t->n_merges > 0 && index_merges(t) != 0)
		return MOE_ENOMEM;
	for (int b = 0; b < 256; b++) {
		char hex[8] = { '<', '0', 'x', "0123456789ABCDEF"[b >> 4],
			"0123456789ABCDEF"[b & 15], '>', 0 };
		char one = (char)b;
		int32_t id = find_token(t, hex, 6);

		/* llama.cpp falls back to the byte itself as a token */
		t->byte_tok[b] = id >= 0 ? id : find_token(t, &one, 1);
	}
	return 0;
}

/* Candidates for the special-token split, longest first. */
static int list_specials(struct moe_tokenizer *t)
{
	const uint16_t special = A_CONTROL | A_USER | A_UNKNOWN;

	for (size_t i = 0; i < t->n_tok; i++)
		t->n_special += (t->tok[i].attr & special) != 0;
	if ((t->special = malloc((t->n_special + 1) * sizeof *t->special)) == NULL)
		return MOE_ENOMEM;
	t->n_special = 0;
	for (size_t i = 0; i < t->n_tok; i++)
		if (t->tok[i].attr & special)
			t->special[t->n_special++] = (int32_t)i;
	qsort_r(t->special, t->n_special, sizeof *t->special, cmp_special, t);
	return 0;
}

/* llama.cpp's per-model strip rules (by general.name and pre-tokenizer). */
static void strip_rules(struct moe_tokenizer *t, const char *name, const char *pre)
{
	char lname[128] = "";

	for (size_t i = 0; name && name[i] && i + 1 < sizeof lname; i++)
		lname[i] = (char)tolower((unsigned char)name[i]), lname[i + 1] = '\0';
	if (contains(pre, "jina-v2-de") || contains(pre, "jina-v2-es") ||
	    contains(pre, "jina-v2-code")) {
		set_attr(t, "<mask>", A_LSTRIP, 1);
	} else if (contains(lname, "phi-3") || contains(lname, "phi3")) {
		for (size_t i = 0; i < t->n_special; i++)
			t->tok[t->special[i]].attr |= A_RSTRIP;
		set_attr(t, "</s>", A_RSTRIP, 1);
		set_attr(t, "<unk>", A_RSTRIP, 0);
		set_attr(t, "<s>", A_RSTRIP, 0);
		set_attr(t, "<|endoftext|>", A_RSTRIP, 0);
	}
}

/* Everything after the tokens are read, in llama.cpp's order. */
static int finish(struct moe_tokenizer *t, const char *name, const char *pre)
{
	int rc;

	if ((rc = index_vocab(t)) != 0)
		return rc;
	mark_texts(t, EOG_TEXTS, sizeof EOG_TEXTS / sizeof EOG_TEXTS[0], A_EOG);
	mark_texts(t, FIM_TEXTS, sizeof FIM_TEXTS / sizeof FIM_TEXTS[0], 0);
	if (t->eos >= 0)
		t->tok[t->eos].attr |= A_EOG;
	if ((rc = list_specials(t)) != 0)
		return rc;
	strip_rules(t, name, pre);
	return 0;
}

/* ---- GGUF metadata ---- */

static int get_arr(struct moe_tokenizer *t, const struct moe_meta *m, const char *key,
	enum moe_vtype want, uint64_t n, const struct moe_value **out)
{
	const struct moe_value *v = moe_meta_find(m, key);

	*out = NULL;
	if (v == NULL)
		return 0;
	if (v->type != MOE_V_ARR || (want != MOE_V_COUNT && v->v.arr.type != want))
		return fail(t, MOE_EFORMAT, "'%s' has the wrong type", key);
	if (n != 0 && v->v.arr.n != n)
		return fail(t, MOE_EFORMAT, "'%s' does not have one entry per token", key);
	*out = v;
	return 0;
}

static int64_t arr_int(const struct moe_value *v, size_t i)
{
	const unsigned char *p = v->v.arr.data;

	switch (v->v.arr.type) {
	case MOE_V_I8: return ((const int8_t *)p)[i];
	case MOE_V_U8: return p[i];
	case MOE_V_I16: return ((const int16_t *)p)[i];
	case MOE_V_U16: return ((const uint16_t *)p)[i];
	case MOE_V_I32: return ((const int32_t *)p)[i];
	case MOE_V_U32: return ((const uint32_t *)p)[i];
	case MOE_V_I64: return ((const int64_t *)p)[i];
	case MOE_V_U64: return (int64_t)((const uint64_t *)p)[i];
	default: return 0;
	}
}

static uint16_t type_to_attr(int64_t type)
{
	switch (type) {
	case 1: return A_NORMAL;
	case 2: return A_UNKNOWN;
	case 3: return A_CONTROL;
	case 4: return A_USER;
	case 5: return A_UNUSED;
	case 6: return A_BYTE;
	default: return 0;  /* undefined */
	}
}

static void meta_id(const struct moe_tokenizer *t, const struct moe_meta *m, const char *key,
	int32_t *id)
{
	uint64_t v;

	if (moe_meta_get_u64(m, key, &v) == 0 && v < t->n_tok)
		*id = (int32_t)v;
}

static void meta_bool(const struct moe_meta *m, const char *key, int *b)
{
	int v;

	if (moe_meta_get_bool(m, key, &v) == 0)
		*b = v;
}

/* tokenizer.ggml.model and .pre: the algorithm and llama.cpp's defaults. */
static int meta_model(struct moe_tokenizer *t, const struct moe_meta *m, const char **pre,
	struct moe_pre_info *info)
{
	const char *model = NULL;

	if (moe_meta_get_str(m, "tokenizer.ggml.model", &model) != 0)
		return fail(t, MOE_ENOENT, "no tokenizer: '%s' missing", "tokenizer.ggml.model");
	if (strcmp(model, "llama") == 0) {
		t->kind = K_SPM;
		t->escape_ws = t->add_space_prefix = t->byte_fallback = 1;
		t->add_bos = 1;
		t->bos = 1;
		t->eos = 2;
		t->unk = 0;
		return 0;
	}
	if (strcmp(model, "gpt2") != 0)
		return fail(t, MOE_EUNSUP, "tokenizer model '%s' is not supported", model);
	t->kind = K_BPE;
	t->byte_level = 1;
	t->bos = t->eos = 11;
	if (moe_meta_get_str(m, "tokenizer.ggml.pre", pre) != 0)
		*pre = "default";
	if (moe_pretok_lookup(*pre, info) != 0)
		return fail(t, MOE_EUNSUP, "unknown pre-tokenizer '%s'", *pre);
	t->ignore_merges = !!(info->flags & MOE_PRE_IGNORE_MERGES);
	t->add_bos = !!(info->flags & MOE_PRE_ADD_BOS);
	if (info->flags & MOE_PRE_NO_BOS)
		t->bos = -1;
	return 0;
}

/* tokens, scores, token_type. */
static int meta_tokens(struct moe_tokenizer *t, const struct moe_meta *m)
{
	const struct moe_value *toks, *scores, *types;
	int rc;

	if ((rc = get_arr(t, m, "tokenizer.ggml.tokens", MOE_V_STR, 0, &toks)) != 0)
		return rc;
	if (toks == NULL)
		return fail(t, MOE_ENOENT, "no tokenizer: '%s' missing", "tokenizer.ggml.tokens");
	if ((rc = alloc_tokens(t, toks->v.arr.n)) != 0 ||
	    (rc = get_arr(t, m, "tokenizer.ggml.scores", MOE_V_F32, t->n_tok, &scores)) != 0 ||
	    (rc = get_arr(t, m, "tokenizer.ggml.token_type", MOE_V_COUNT, t->n_tok, &types)) != 0)
		return rc;
	if (types && (moe_vtype_size(types->v.arr.type) == 0 ||
	    types->v.arr.type == MOE_V_F32 || types->v.arr.type == MOE_V_F64 ||
	    types->v.arr.type == MOE_V_BOOL))
		return fail(t, MOE_EFORMAT, "'%s' has the wrong type", "tokenizer.ggml.token_type");
	for (size_t i = 0; i < t->n_tok; i++) {
		const struct moe_str *s = &((const struct moe_str *)toks->v.arr.data)[i];

		if ((rc = set_token(t, i, s->s, s->len)) != 0)
			return rc;
		if (scores)
			t->tok[i].score = ((const float *)scores->v.arr.data)[i];
		if (types)
			t->tok[i].attr = type_to_attr(arr_int(types, i));
	}
	return 0;
}

static int meta_merges(struct moe_tokenizer *t, const struct moe_meta *m)
{
	const struct moe_value *merges;
	int rc;

	if ((rc = get_arr(t, m, "tokenizer.ggml.merges", MOE_V_STR, 0, &merges)) != 0 ||
	    merges == NULL)
		return rc;
	if (merges->v.arr.n > MAX_MERGES)
		return fail(t, MOE_ERANGE, "too many merges in '%s'", "tokenizer.ggml.merges");
	if ((t->merges = calloc(merges->v.arr.n + 1, sizeof *t->merges)) == NULL)
		return MOE_ENOMEM;
	for (size_t i = 0; i < merges->v.arr.n; i++) {
		const struct moe_str *s = &((const struct moe_str *)merges->v.arr.data)[i];

		if ((rc = add_merge_line(t, s->s, s->len)) != 0)
			return rc;
	}
	return 0;
}

/* Special ids (ignored when out of range, as llama.cpp does) and flags. */
static void meta_specials(struct moe_tokenizer *t, const struct moe_meta *m)
{
	meta_id(t, m, "tokenizer.ggml.bos_token_id", &t->bos);
	meta_id(t, m, "tokenizer.ggml.eos_token_id", &t->eos);
	meta_id(t, m, "tokenizer.ggml.unknown_token_id", &t->unk);
	meta_id(t, m, "tokenizer.ggml.padding_token_id", &t->pad);
	if (t->bos >= (int32_t)t->n_tok)
		t->bos = -1;
	if (t->eos >= (int32_t)t->n_tok)
		t->eos = -1;
	if (t->unk >= (int32_t)t->n_tok)
		t->unk = -1;
	meta_bool(m, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix);
	meta_bool(m, "tokenizer.ggml.add_bos_token", &t->add_bos);
	meta_bool(m, "tokenizer.ggml.add_eos_token", &t->add_eos);
}

static int load_meta(struct moe_tokenizer *t, const struct moe_meta *m)
{
	const char *pre = NULL, *name = NULL;
	struct moe_pre_info info = { 0 };
	char err[256];
	int rc;

	if ((rc = meta_model(t, m, &pre, &info)) != 0 || (rc = meta_tokens(t, m)) != 0 ||
	    (t->kind == K_BPE && (rc = meta_merges(t, m)) != 0))
		return rc;
	meta_specials(t, m);
	if (t->kind == K_BPE &&
	    (rc = moe_pretok_new(&t->pre, info.regex, info.n_regex, 1, err, sizeof err)) != 0)
		return fail(t, rc, "%s", err);
	moe_meta_get_str(m, "general.name", &name);
	return finish(t, name, pre);
}

int moe_tokenizer_new_from_meta(struct moe_tokenizer **out, const struct moe_meta *m)
{
	int rc = alloc_handle(out);

	if (rc != 0)
		return rc;
	rc = load_meta(*out, m);
	if (rc == MOE_ENOMEM) {
		moe_tokenizer_free(*out);
		*out = NULL;
	}
	return rc;
}

/* ---- tokenizer.json ---- */

static const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static int jtrue(json_t *o, const char *key)
{
	return json_is_true(json_object_get(o, key));
}

/* Collects the regexes of a pre_tokenizer (Split, Digits, ByteLevel,
 * Metaspace, or a Sequence of them). */
struct hf_pre {
	const char *regex[16];
	size_t n;
	int byte_level, metaspace, metaspace_prefix;
};

static const char GPT2_RE[] =
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";

static int hf_pre_add(struct moe_tokenizer *t, struct hf_pre *p, json_t *pt)
{
	const char *type = jstr(pt, "type");

	if (pt == NULL || json_is_null(pt))
		return 0;
	if (type == NULL)
		return fail(t, MOE_EFORMAT, "tokenizer.json: %s without a type", "pre_tokenizer");
	if (strcmp(type, "Sequence") == 0) {
		json_t *v;
		size_t i;
		int rc;

		json_array_foreach(json_object_get(pt, "pretokenizers"), i, v)
			if ((rc = hf_pre_add(t, p, v)) != 0)
				return rc;
		return 0;
	}
	if (p->n == sizeof p->regex / sizeof p->regex[0])
		return fail(t, MOE_EUNSUP, "tokenizer.json: %s", "too many pre-tokenizers");
	if (strcmp(type, "ByteLevel") == 0) {
		p->byte_level = 1;
		if (jtrue(pt, "add_prefix_space"))
			return fail(t, MOE_EUNSUP, "tokenizer.json: %s is not supported",
				"ByteLevel add_prefix_space");
		if (json_object_get(pt, "use_regex") == NULL || jtrue(pt, "use_regex"))
			p->regex[p->n++] = GPT2_RE;
		return 0;
	}
	if (strcmp(type, "Split") == 0) {
		json_t *pat = json_object_get(pt, "pattern");
		const char *re = jstr(pat, "Regex"), *beh = jstr(pt, "behavior");

		if (re == NULL || beh == NULL || strcmp(beh, "Isolated") != 0 || jtrue(pt, "invert"))
			return fail(t, MOE_EUNSUP, "tokenizer.json: %s is not supported",
				"Split other than an isolated regex");
		p->regex[p->n++] = re;
		return 0;
	}
	if (strcmp(type, "Digits") == 0) {
		p->regex[p->n++] = jtrue(pt, "individual_digits") ? "\\p{N}" : "\\p{N}+";
		return 0;
	}
	if (strcmp(type, "Metaspace") == 0) {
		const char *scheme = jstr(pt, "prepend_scheme");

		p->metaspace = 1;
		p->metaspace_prefix = scheme ? strcmp(scheme, "never") != 0 :
			json_object_get(pt, "add_prefix_space") == NULL || jtrue(pt, "add_prefix_space");
		return 0;
	}
	return fail(t, MOE_EUNSUP, "tokenizer.json: pre-tokenizer '%s' is not supported", type);
}

/* Normalizers llama-style SentencePiece BPE uses: Prepend("▁"), Replace(" ", "▁"). */
static int hf_norm(struct moe_tokenizer *t, json_t *n, int *escape, int *prefix)
{
	const char *type = jstr(n, "type");

	if (n == NULL || json_is_null(n))
		return 0;
	if (type && strcmp(type, "Sequence") == 0) {
		json_t *v;
		size_t i;
		int rc;

		json_array_foreach(json_object_get(n, "normalizers"), i, v)
			if ((rc = hf_norm(t, v, escape, prefix)) != 0)
				return rc;
		return 0;
	}
	if (type && strcmp(type, "Prepend") == 0 && jstr(n, "prepend") &&
	    strcmp(jstr(n, "prepend"), "\xe2\x96\x81") == 0) {
		*prefix = 1;
		return 0;
	}
	if (type && strcmp(type, "Replace") == 0 && jstr(n, "content") &&
	    strcmp(jstr(n, "content"), "\xe2\x96\x81") == 0 &&
	    jstr(json_object_get(n, "pattern"), "String") &&
	    strcmp(jstr(json_object_get(n, "pattern"), "String"), " ") == 0) {
		*escape = 1;
		return 0;
	}
	if (type && strcmp(type, "NFC") == 0)
		return 0;  /* a no-op on the composed text prompts usually are */
	return fail(t, MOE_EUNSUP, "tokenizer.json: normalizer '%s' is not supported",
		type ? type : "?");
}

static void mark_byte(struct moe_tokenizer *t, size_t id)
{
	const char *k = t->tok[id].text;

	if (t->byte_fallback && t->tok[id].len == 6 && strncmp(k, "<0x", 3) == 0 && k[5] == '>')
		t->tok[id].attr = A_BYTE;
}

/* model.vocab: {"piece": id} (BPE) or [["piece", score]] (Unigram), then
 * added_tokens on top. */
static int hf_vocab(struct moe_tokenizer *t, json_t *vocab, json_t *added)
{
	uint64_t n = 0;
	const char *key;
	json_t *v;
	size_t i;
	int rc;

	if (json_is_array(vocab))
		n = json_array_size(vocab);
	json_object_foreach(vocab, key, v)
		if (json_is_integer(v) && json_integer_value(v) >= 0 &&
		    (uint64_t)json_integer_value(v) >= n)
			n = (uint64_t)json_integer_value(v) + 1;
	json_array_foreach(added, i, v) {
		json_t *id = json_object_get(v, "id");

		if (!json_is_integer(id) || json_integer_value(id) < 0 || !jstr(v, "content"))
			return fail(t, MOE_EFORMAT, "tokenizer.json: %s", "bad added token");
		if ((uint64_t)json_integer_value(id) >= n)
			n = (uint64_t)json_integer_value(id) + 1;
	}
	if ((rc = alloc_tokens(t, n)) != 0)
		return rc;
	json_object_foreach(vocab, key, v) {
		json_int_t id = json_integer_value(v);

		if (!json_is_integer(v) || id < 0)
			return fail(t, MOE_EFORMAT, "tokenizer.json: bad id for '%s'", key);
		if ((rc = set_token(t, (size_t)id, key, strlen(key))) != 0)
			return rc;
		mark_byte(t, (size_t)id);
	}
	json_array_foreach(vocab, i, v) {
		json_t *piece = json_array_get(v, 0), *score = json_array_get(v, 1);

		if (!json_is_string(piece) || !json_is_number(score))
			return fail(t, MOE_EFORMAT, "tokenizer.json: %s", "bad Unigram piece");
		rc = set_token(t, i, json_string_value(piece), json_string_length(piece));
		if (rc != 0)
			return rc;
		t->tok[i].score = (float)json_number_value(score);
		mark_byte(t, i);
	}
	json_array_foreach(added, i, v) {
		json_int_t id = json_integer_value(json_object_get(v, "id"));
		const char *c = jstr(v, "content");

		if ((rc = set_token(t, (size_t)id, c, strlen(c))) != 0)
			return rc;
		t->tok[id].attr = jtrue(v, "special") ? A_CONTROL : A_USER;
		if (jtrue(v, "lstrip"))
			t->tok[id].attr |= A_LSTRIP;
		if (jtrue(v, "rstrip"))
			t->tok[id].attr |= A_RSTRIP;
	}
	for (size_t k = 0; k < t->n_tok; k++)
		if (t->tok[k].text == NULL) {
			if ((rc = set_token(t, k, "", 0)) != 0)
				return rc;
			t->tok[k].attr = A_UNUSED;
		}
	return 0;
}

static int hf_merges(struct moe_tokenizer *t, json_t *merges)
{
	size_t n = json_array_size(merges), i;
	json_t *v;
	int rc;

	if (n > MAX_MERGES)
		return fail(t, MOE_ERANGE, "tokenizer.json: %s", "too many merges");
	if ((t->merges = calloc(n + 1, sizeof *t->merges)) == NULL)
		return MOE_ENOMEM;
	json_array_foreach(merges, i, v) {
		if (json_is_string(v)) {
			rc = add_merge_line(t, json_string_value(v), json_string_length(v));
		} else if (json_array_size(v) == 2 && json_is_string(json_array_get(v, 0)) &&
			   json_is_string(json_array_get(v, 1))) {
			json_t *l = json_array_get(v, 0), *r = json_array_get(v, 1);

			rc = add_merge(t, json_string_value(l), json_string_length(l),
				json_string_value(r), json_string_length(r));
		} else {
			return fail(t, MOE_EFORMAT, "tokenizer.json: %s", "bad merge");
		}
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* BOS/EOS from a TemplateProcessing post-processor ("<s> $A"). */
static void hf_template(struct moe_tokenizer *t, json_t *pp)
{
	json_t *single = json_object_get(pp, "single"), *v;
	int seen_seq = 0;
	size_t i;

	if (pp == NULL || jstr(pp, "type") == NULL || strcmp(jstr(pp, "type"), "TemplateProcessing") != 0)
		return;
	json_array_foreach(single, i, v) {
		const char *id = jstr(json_object_get(v, "SpecialToken"), "id");
		int32_t tok;

		if (json_object_get(v, "Sequence") != NULL) {
			seen_seq = 1;
			continue;
		}
		if (id == NULL || (tok = find_token(t, id, strlen(id))) < 0)
			continue;
		if (seen_seq) {
			t->add_eos = 1;
			t->eos = tok;
		} else {
			t->add_bos = 1;
			t->bos = tok;
		}
	}
}

/* Unigram: the unknown piece's text, and the score of an unknown
 * character (lowest piece score minus 10, as Hugging Face does). */
static const char *unigram_unk(struct moe_tokenizer *t, json_t *unk_id)
{
	for (size_t i = 0; i < t->n_tok; i++)
		if (i == 0 || t->tok[i].score < t->unk_score)
			t->unk_score = t->tok[i].score;
	t->unk_score -= 10;
	if (json_is_integer(unk_id) && json_integer_value(unk_id) >= 0 &&
	    (uint64_t)json_integer_value(unk_id) < t->n_tok)
		return t->tok[json_integer_value(unk_id)].text;
	return NULL;
}

static int load_hf(struct moe_tokenizer *t, json_t *j)
{
	json_t *model = json_object_get(j, "model");
	const char *type = jstr(model, "type"), *unk = jstr(model, "unk_token");
	struct hf_pre pre = { 0 };
	int escape = 0, prefix = 0, rc;
	char err[256];

	if (!json_is_object(j) || !json_is_object(model))
		return fail(t, MOE_EFORMAT, "tokenizer.json: %s", "no model object");
	if (type == NULL && json_is_object(json_object_get(model, "vocab")) &&
	    json_object_get(model, "merges") != NULL)
		type = "BPE";
	if (type == NULL || (strcmp(type, "BPE") != 0 && strcmp(type, "Unigram") != 0))
		return fail(t, MOE_EUNSUP, "tokenizer.json: model type '%s' is not supported",
			type ? type : "?");
	t->kind = strcmp(type, "BPE") == 0 ? K_BPE : K_UGM;
	if (t->kind == K_BPE ? !json_is_object(json_object_get(model, "vocab")) :
	    !json_is_array(json_object_get(model, "vocab")))
		return fail(t, MOE_EFORMAT, "tokenizer.json: %s", "model.vocab has the wrong type");
	if ((rc = hf_pre_add(t, &pre, json_object_get(j, "pre_tokenizer"))) != 0 ||
	    (rc = hf_norm(t, json_object_get(j, "normalizer"), &escape, &prefix)) != 0)
		return rc;
	t->byte_fallback = jtrue(model, "byte_fallback");
	t->ignore_merges = jtrue(model, "ignore_merges");
	if (pre.byte_level && t->kind == K_BPE) {
		t->byte_level = 1;
	} else if (pre.metaspace || escape) {
		t->escape_ws = 1;
		t->add_space_prefix = pre.metaspace ? pre.metaspace_prefix : prefix;
	} else {
		return fail(t, MOE_EUNSUP, "tokenizer.json: %s is not supported",
			t->kind == K_BPE ? "BPE without ByteLevel or Metaspace" :
			"Unigram without Metaspace");
	}
	if ((rc = hf_vocab(t, json_object_get(model, "vocab"), json_object_get(j, "added_tokens"))) != 0 ||
	    (t->kind == K_BPE && (rc = hf_merges(t, json_object_get(model, "merges"))) != 0))
		return rc;
	if (t->kind == K_UGM)
		unk = unigram_unk(t, json_object_get(model, "unk_id"));
	if (t->byte_level) {
		rc = moe_pretok_new(&t->pre, pre.regex, pre.n, 1, err, sizeof err);
		if (rc != 0)
			return fail(t, rc, "%s", err);
	}
	if ((rc = finish(t, NULL, NULL)) != 0)
		return rc;
	if (unk != NULL)
		t->unk = find_token(t, unk, strlen(unk));
	hf_template(t, json_object_get(j, "post_processor"));
	if (t->eos >= 0)
		t->tok[t->eos].attr |= A_EOG;
	return 0;
}

int moe_tokenizer_new_from_hf_json(struct moe_tokenizer **out, json_t *tokenizer_json)
{
	int rc = alloc_handle(out);

	if (rc != 0)
		return rc;
	rc = load_hf(*out, tokenizer_json);
	if (rc == MOE_ENOMEM) {
		moe_tokenizer_free(*out);
		*out = NULL;
	}
	return rc;
}

/* ---- encoding ---- */

struct ids {
	int32_t *v;
	size_t cap, n;
};

static void put(struct ids *o, int32_t id)
{
	if (o->n < o->cap)
		o->v[o->n] = id;
	o->n++;
}

/* Piece of text (id < 0) or a special token. */
struct frag {
	size_t off, len;
	int32_t id;
};

/* Cuts every text fragment at occurrences of special token id. */
static size_t split_at(const struct moe_tokenizer *t, const char *text, int32_t id,
	const struct frag *in, size_t n_in, struct frag *out)
{
	const struct entry *e = &t->tok[id];
	size_t n = 0;

	for (size_t i = 0; i < n_in; i++) {
		size_t off = in[i].off, len = in[i].len;

		if (in[i].id >= 0) {
			out[n++] = in[i];
			continue;
		}
		while (len > 0) {
			const char *m = memmem(text + off, len, e->text, e->len);
			size_t at, llen, roff, rlen;

			if (m == NULL) {
				out[n++] = (struct frag){ off, len, -1 };
				break;
			}
			at = (size_t)(m - text);
			llen = at - off;
			if (e->attr & A_LSTRIP)
				while (llen > 0 && isspace((unsigned char)text[off + llen - 1]))
					llen--;
			if (llen > 0)
				out[n++] = (struct frag){ off, llen, -1 };
			out[n++] = (struct frag){ at, e->len, id };
			roff = at + e->len;
			rlen = off + len - roff;
			if (e->attr & A_RSTRIP)
				while (rlen > 0 && isspace((unsigned char)text[roff])) {
					roff++;
					rlen--;
				}
			off = roff;
			len = rlen;
		}
	}
	return n;
}

/* Work area for the merge loops, sized for the longest piece. */
struct sym {
	size_t off, n;
	int prev, next;
};

struct bigram {
	int left, right;
	float score;
	int32_t rank;
	size_t size;
};

struct work {
	struct sym *sym;
	struct bigram *heap;  /* 3 entries per symbol: seeds + 2 per merge */
	size_t cap;           /* symbols sym can hold */
	size_t n_heap;
	int by_rank;
};

/* Makes room for a piece of n bytes (at most n symbols). */
static int work_reserve(struct work *w, size_t n)
{
	void *p;

	if (n <= w->cap)
		return 0;
	if ((p = realloc(w->sym, n * sizeof *w->sym)) == NULL)
		return MOE_ENOMEM;
	w->sym = p;
	if ((p = realloc(w->heap, 3 * n * sizeof *w->heap)) == NULL)
		return MOE_ENOMEM;
	w->heap = p;
	w->cap = n;
	return 0;
}

static int before(const struct work *w, const struct bigram *a, const struct bigram *b)
{
	if (w->by_rank) {
		if (a->rank != b->rank)
			return a->rank < b->rank;
	} else if (a->score != b->score) {
		return a->score > b->score;
	}
	return a->left < b->left;
}

static void heap_push(struct work *w, struct bigram b)
{
	size_t i = w->n_heap++;

	while (i > 0 && before(w, &b, &w->heap[(i - 1) / 2])) {
		w->heap[i] = w->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	w->heap[i] = b;
}

static struct bigram heap_pop(struct work *w)
{
	struct bigram top = w->heap[0], last = w->heap[--w->n_heap];
	size_t i = 0, n = w->n_heap;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= n)
			break;
		if (c + 1 < n && before(w, &w->heap[c + 1], &w->heap[c]))
			c++;
		if (!before(w, &w->heap[c], &last))
			break;
		w->heap[i] = w->heap[c];
		i = c;
	}
	if (n > 0)
		w->heap[i] = last;
	return top;
}

static void try_bigram(const struct moe_tokenizer *t, struct work *w, const char *s,
	int left, int right)
{
	const struct sym *l, *r;
	struct bigram b = { left, right, 0, 0, 0 };

	if (left < 0 || right < 0)
		return;
	l = &w->sym[left];
	r = &w->sym[right];
	b.size = l->n + r->n;
	if (w->by_rank) {
		b.rank = find_merge(t, s + l->off, l->n, s + r->off, r->n);
		if (b.rank < 0)
			return;
	} else {
		int32_t id = find_token(t, s + l->off, b.size);

		if (id < 0)
			return;
		b.score = t->tok[id].score;
	}
	heap_push(w, b);
}

/* Merges s[0..n) into symbols; returns the index of the first one (-1 if
 * n is 0). Symbols are byte ranges of s, chained by next. */
static int merge_loop(const struct moe_tokenizer *t, struct work *w, const char *s, size_t n)
{
	static const unsigned char len8[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
	int count = 0;

	for (size_t off = 0; off < n; count++) {
		size_t k = len8[(unsigned char)s[off] >> 4];

		if (k > n - off)
			k = n - off;
		w->sym[count] = (struct sym){ off, k, count - 1, off + k == n ? -1 : count + 1 };
		off += k;
	}
	w->n_heap = 0;
	for (int i = 1; i < count; i++)
		try_bigram(t, w, s, i - 1, i);
	while (w->n_heap > 0) {
		struct bigram b = heap_pop(w);
		struct sym *l = &w->sym[b.left], *r = &w->sym[b.right];

		if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
			continue;
		l->n += r->n;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			w->sym[r->next].prev = b.left;
		try_bigram(t, w, s, l->prev, b.left);
		try_bigram(t, w, s, b.left, l->next);
	}
	return count > 0 ? 0 : -1;
}

static void put_byte(const struct moe_tokenizer *t, struct ids *o, unsigned char c)
{
	int32_t id = t->byte_tok[c];

	if (id < 0)
		id = t->unk;
	if (id >= 0)
		put(o, id);
}

/* Emits the merged symbols: tokens, else byte tokens or unknown. */
static void emit_syms(const struct moe_tokenizer *t, const struct work *w, int first,
	const char *s, struct ids *o)
{
	for (int i = first; i >= 0; i = w->sym[i].next) {
		const struct sym *y = &w->sym[i];
		int32_t id;

		if (y->n == 0)
			continue;
		if ((id = find_token(t, s + y->off, y->n)) >= 0) {
			put(o, id);
		} else if (t->byte_level) {
			/* llama.cpp looks each byte of the encoded piece up as a token */
			for (size_t k = 0; k < y->n; k++)
				if ((id = find_token(t, s + y->off + k, 1)) >= 0)
					put(o, id);
		} else if (t->byte_fallback) {
			for (size_t k = 0; k < y->n; k++)
				put_byte(t, o, (unsigned char)s[y->off + k]);
		} else if (t->unk >= 0) {
			put(o, t->unk);
		}
	}
}

static int encode_word(const struct moe_tokenizer *t, struct work *w, const char *s, size_t n,
	struct ids *o)
{
	int32_t id;

	if (n == 0)
		return 0;
	if (t->ignore_merges && (id = find_token(t, s, n)) >= 0) {
		put(o, id);
		return 0;
	}
	if (work_reserve(w, n) != 0)
		return MOE_ENOMEM;
	emit_syms(t, w, merge_loop(t, w, s, n), s, o);
	return 0;
}

/* Best path ending at a byte offset. */
struct vnode {
	double score;
	size_t start;
	int32_t id;     /* -1: an unknown character */
	int reached;
};

static size_t char_len(const char *s, size_t n)
{
	static const unsigned char len8[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
	size_t k = len8[(unsigned char)s[0] >> 4];

	return k < n ? k : n;
}

static void vrelax(struct vnode *v, size_t from, size_t to, double score, int32_t id)
{
	double c = v[from].score + score;

	if (!v[to].reached || c > v[to].score)
		v[to] = (struct vnode){ c, from, id, 1 };
}

/* Unigram: highest-scoring segmentation of s[0..n) (shorter pieces win
 * ties, as they are tried first), unknown runs fused into one unk or, with
 * byte fallback, written as byte tokens. */
static int viterbi(const struct moe_tokenizer *t, const char *s, size_t n, struct ids *o)
{
	struct vnode *v = calloc(n + 1, sizeof *v);
	size_t *path, np = 0;

	if (v == NULL)
		return MOE_ENOMEM;
	v[0].reached = 1;
	for (size_t pos = 0; pos < n; pos += char_len(s + pos, n - pos)) {
		size_t cl = char_len(s + pos, n - pos);
		int single = 0;
		uint64_t h = FNV0;

		/* the hash grows with the prefix, so each length costs O(1) */
		for (size_t len = 1; len <= t->max_len && pos + len <= n; len++) {
			int32_t id = find_token_h(t, s + pos, len, h = fnv(h, s + pos + len - 1, 1));

			if (id < 0 || id == t->unk || (t->tok[id].attr & A_UNUSED))
				continue;
			vrelax(v, pos, pos + len, t->tok[id].score, id);
			single |= len == cl;
		}
		if (!single)
			vrelax(v, pos, pos + cl, t->unk_score, -1);
	}
	/* walk back from the end, then emit in text order */
	path = malloc((n + 1) * sizeof *path);
	if (path == NULL) {
		free(v);
		return MOE_ENOMEM;
	}
	for (size_t at = n; at > 0; at = v[at].start)
		path[np++] = at;
	for (size_t i = np; i-- > 0;) {
		size_t end = path[i], start = v[end].start;

		if (v[end].id >= 0) {
			put(o, v[end].id);
		} else if (t->byte_fallback) {
			for (size_t b = start; b < end; b++)
				put_byte(t, o, (unsigned char)s[b]);
		} else if (t->unk >= 0 && !(i + 1 < np && v[path[i + 1]].id < 0)) {
			put(o, t->unk);  /* consecutive unknowns fuse */
		}
	}
	free(path);
	free(v);
	return 0;
}

/* SentencePiece-style piece: optional leading space, spaces as U+2581. */
static int encode_escaped(const struct moe_tokenizer *t, struct work *w, const char *s,
	size_t n, int prefix, struct ids *o)
{
	char *buf = malloc(3 * (n + 1));
	size_t k = 0;

	if (buf == NULL)
		return MOE_ENOMEM;
	if (prefix) {
		memcpy(buf, "\xe2\x96\x81", 3);
		k = 3;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] == ' ') {
			memcpy(buf + k, "\xe2\x96\x81", 3);
			k += 3;
		} else {
			buf[k++] = s[i];
		}
	}
	if (t->kind == K_UGM) {
		int rc = viterbi(t, buf, k, o);

		free(buf);
		return rc;
	}
	if (work_reserve(w, k) != 0) {
		free(buf);
		return MOE_ENOMEM;
	}
	emit_syms(t, w, merge_loop(t, w, buf, k), buf, o);
	free(buf);
	return 0;
}

static int encode_bpe(const struct moe_tokenizer *t, struct work *w, const char *s, size_t n,
	struct ids *o)
{
	struct moe_pretok_words words;
	int rc;

	if (t->pre == NULL)
		return encode_word(t, w, s, n, o);
	if ((rc = moe_pretok_split(t->pre, s, n, &words)) != 0)
		return rc;
	for (size_t i = 0; i < words.n && rc == 0; i++) {
		size_t b = i ? words.end[i - 1] : 0;

		rc = encode_word(t, w, words.text + b, words.end[i] - b, o);
	}
	moe_pretok_words_release(&words);
	return rc;
}

int moe_tokenizer_encode(const struct moe_tokenizer *t, const char *text, size_t len,
	int add_special, int parse_special, int32_t *ids, size_t cap, size_t *n)
{
	struct ids o = { ids, ids ? cap : 0, 0 };
	struct frag *a = NULL, *b = NULL;
	struct work w = { 0 };
	size_t na = 0;
	int rc = MOE_ENOMEM, prev_special = 1;

	*n = 0;
	if (len > MAX_TEXT)
		return MOE_ERANGE;
	if (text == NULL && len > 0)
		return MOE_EINVAL;
	/* each special token cut adds at most two fragments per match byte */
	a = malloc((2 * len + 2) * sizeof *a);
	b = malloc((2 * len + 2) * sizeof *b);
	if (a == NULL || b == NULL)
		goto out;
	if (len > 0)
		a[na++] = (struct frag){ 0, len, -1 };
	for (size_t i = 0; i < t->n_special && na > 0; i++) {
		int32_t id = t->special[i];
		struct frag *tmp;

		if (!parse_special && (t->tok[id].attr & (A_CONTROL | A_UNKNOWN)))
			continue;
		na = split_at(t, text, id, a, na, b);
		tmp = a;
		a = b;
		b = tmp;
	}
	w.by_rank = t->kind == K_BPE;
	if (add_special && t->add_bos && t->bos >= 0)
		put(&o, t->bos);
	rc = 0;
	for (size_t i = 0; i < na && rc == 0; i++) {
		const struct frag *f = &a[i];

		if (f->id >= 0) {
			put(&o, f->id);
			prev_special = 1;
			continue;
		}
		if (t->escape_ws)
			rc = encode_escaped(t, &w, text + f->off, f->len,
				t->add_space_prefix && prev_special, &o);
		else
			rc = encode_bpe(t, &w, text + f->off, f->len, &o);
		prev_special = 0;
	}
	if (rc == 0 && add_special && t->add_eos && t->eos >= 0)
		put(&o, t->eos);
	if (rc == 0) {
		*n = o.n;
		if (o.n > cap)
			rc = MOE_ERANGE;
	}
out:
	free(a);
	free(b);
	free(w.sym);
	free(w.heap);
	return rc;
}

/* ---- decoding and queries ---- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Appends to a caller buffer, counting what does not fit. */
struct sink {
	char *buf;
	size_t cap, n;
};

static void sput(struct sink *k, const char *s, size_t n)
{
	if (k->n < k->cap)
		memcpy(k->buf + k->n, s, n < k->cap - k->n ? n : k->cap - k->n);
	k->n += n;
}

int moe_tokenizer_decode_token(const struct moe_tokenizer *t, int32_t id,
	char *buf, size_t cap, size_t *n)
{
	struct sink k = { buf, buf ? cap : 0, 0 };
	const struct entry *e;

	*n = 0;
	if (id < 0 || (size_t)id >= t->n_tok)
		return MOE_EINVAL;
	e = &t->tok[id];
	if (e->attr & A_USER) {
		sput(&k, e->text, e->len);
	} else if (e->attr & A_BYTE && e->len == 6 && hexval(e->text[3]) >= 0 &&
		   hexval(e->text[4]) >= 0) {
		char c = (char)(hexval(e->text[3]) << 4 | hexval(e->text[4]));

		sput(&k, &c, 1);
	} else if ((e->attr & A_NORMAL) && t->byte_level) {
		for (size_t i = 0, len; i < e->len; i += len) {
			uint32_t c = moe_utf8_decode((const unsigned char *)e->text + i,
				e->len - i, &len);
			int byte = moe_unicode_to_byte(c);
			char b = (char)byte;

			if (byte >= 0)
				sput(&k, &b, 1);
			else
				sput(&k, e->text + i, len);
		}
	} else if (e->attr & A_NORMAL) {
		for (size_t i = 0; i < e->len; i++) {
			if (i + 3 <= e->len && memcmp(e->text + i, "\xe2\x96\x81", 3) == 0) {
				sput(&k, " ", 1);
				i += 2;
			} else {
				sput(&k, e->text + i, 1);
			}
		}
	}
	*n = k.n;
	return k.n > cap ? MOE_ERANGE : 0;
}

size_t moe_tokenizer_n_tokens(const struct moe_tokenizer *t)
{
	return t->n_tok;
}

int32_t moe_tokenizer_special(const struct moe_tokenizer *t, enum moe_tok_special which)
{
	switch (which) {
	case MOE_TOK_BOS: return t->bos;
	case MOE_TOK_EOS: return t->eos;
	case MOE_TOK_UNK: return t->unk;
	case MOE_TOK_PAD: return t->pad;
	}
	return -1;
}

int moe_tokenizer_is_eog(const struct moe_tokenizer *t, int32_t id)
{
	return id >= 0 && (size_t)id < t->n_tok && (t->tok[id].attr & A_EOG) != 0;
}

const char *moe_tokenizer_token_text(const struct moe_tokenizer *t, int32_t id)
{
	return id >= 0 && (size_t)id < t->n_tok ? t->tok[id].text : NULL;
}
