/* Vocabulary conversion between tokenizer.json and GGUF: tokens, scores, types, merges, specials. */
#include "tokconv.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VOCAB (1u << 20)    /* token ids above this are refused (real vocabularies: < 300k) */

enum { T_NORMAL = 1, T_UNKNOWN = 2, T_CONTROL = 3, T_USER = 4, T_UNUSED = 5, T_BYTE = 6 };

struct vocab {
	struct moe_str *tok;     /* [n] */
	float *score;            /* [n] */
	int32_t *type;           /* [n] */
	uint64_t n;
};

static void vocab_free(struct vocab *v)
{
	for (uint64_t i = 0; v->tok && i < v->n; i++)
		free(v->tok[i].s);
	free(v->tok);
	free(v->score);
	free(v->type);
}

static int vocab_alloc(struct vocab *v, uint64_t n)
{
	v->n = n;
	v->tok = calloc(n, sizeof *v->tok);
	v->score = calloc(n, sizeof *v->score);
	v->type = calloc(n, sizeof *v->type);
	return v->tok && v->score && v->type ? 0 : MOE_ENOMEM;
}

static int set_tok(struct vocab *v, uint64_t id, const char *s, size_t len)
{
	free(v->tok[id].s);
	if ((v->tok[id].s = malloc(len + 1)) == NULL)
		return MOE_ENOMEM;
	memcpy(v->tok[id].s, s, len);
	v->tok[id].s[len] = '\0';
	v->tok[id].len = len;
	return 0;
}

static int is_byte_token(const char *s)
{
	return strlen(s) == 6 && strncmp(s, "<0x", 3) == 0 && s[5] == '>';
}

/* Highest id among vocab and added tokens, + 1. */
static uint64_t vocab_size(json_t *model, json_t *added)
{
	json_t *vocab = json_object_get(model, "vocab"), *v;
	const char *k;
	size_t i;
	uint64_t n = 0;

	if (json_is_object(vocab))
		json_object_foreach(vocab, k, v)
			if (json_is_integer(v) && (uint64_t)json_integer_value(v) + 1 > n)
				n = (uint64_t)json_integer_value(v) + 1;
	if (json_is_array(vocab))
		n = json_array_size(vocab);
	json_array_foreach(added, i, v) {
		json_t *id = json_object_get(v, "id");
		if (json_is_integer(id) && (uint64_t)json_integer_value(id) + 1 > n)
			n = (uint64_t)json_integer_value(id) + 1;
	}
	return n;
}

/* SentencePiece-style BPE: a token made by merge r scores -(r + 1), so the
 * best-scoring pair llama.cpp merges first is HF's lowest-ranked merge. */
static void scores_from_merges(struct vocab *v, json_t *vocab, json_t *merges)
{
	size_t r;
	json_t *m;

	json_array_foreach(merges, r, m) {
		char buf[1024];
		const char *a, *b;
		json_t *id;
		if (json_is_string(m)) {
			snprintf(buf, sizeof buf, "%s", json_string_value(m));
			char *sp = strchr(buf, ' ');
			if (sp == NULL)
				continue;
			memmove(sp, sp + 1, strlen(sp));
		} else if (json_is_array(m) && (a = json_string_value(json_array_get(m, 0))) &&
		           (b = json_string_value(json_array_get(m, 1)))) {
			snprintf(buf, sizeof buf, "%s%s", a, b);
		} else {
			continue;
		}
		id = json_object_get(vocab, buf);
		if (json_is_integer(id) && (uint64_t)json_integer_value(id) < v->n &&
		    v->score[json_integer_value(id)] == 0)
			v->score[json_integer_value(id)] = -(float)(r + 1);
	}
}

static int fill_bpe(struct vocab *v, json_t *model, int spm)
{
	json_t *vocab = json_object_get(model, "vocab"), *id;
	const char *k;

	json_object_foreach(vocab, k, id) {
		uint64_t i = (uint64_t)json_integer_value(id);
		if (!json_is_integer(id) || json_integer_value(id) < 0 || i >= v->n)
			return MOE_EFORMAT;
		if (set_tok(v, i, k, strlen(k)) != 0)
			return MOE_ENOMEM;
		v->type[i] = spm && is_byte_token(k) ? T_BYTE : T_NORMAL;
	}
	if (spm)
		scores_from_merges(v, vocab, json_object_get(model, "merges"));
	return 0;
}

static int fill_unigram(struct vocab *v, json_t *model)
{
	json_t *vocab = json_object_get(model, "vocab"), *e;
	size_t i;

	json_array_foreach(vocab, i, e) {
		const char *s = json_string_value(json_array_get(e, 0));
		if (s == NULL || i >= v->n)
			return MOE_EFORMAT;
		if (set_tok(v, i, s, strlen(s)) != 0)
			return MOE_ENOMEM;
		v->score[i] = (float)json_number_value(json_array_get(e, 1));
		v->type[i] = is_byte_token(s) ? T_BYTE : T_NORMAL;
	}
	if (json_is_integer(json_object_get(model, "unk_id"))) {
		json_int_t u = json_integer_value(json_object_get(model, "unk_id"));
		if (u >= 0 && (uint64_t)u < v->n)
			v->type[u] = T_UNKNOWN;
	}
	return 0;
}

static int fill_added(struct vocab *v, json_t *added)
{
	size_t i;
	json_t *a;

	json_array_foreach(added, i, a) {
		json_t *id = json_object_get(a, "id");
		const char *s = json_string_value(json_object_get(a, "content"));
		uint64_t k = (uint64_t)json_integer_value(id);
		if (!json_is_integer(id) || s == NULL || k >= v->n)
			return MOE_EFORMAT;
		if (set_tok(v, k, s, strlen(s)) != 0)
			return MOE_ENOMEM;
		v->type[k] = json_is_true(json_object_get(a, "special")) ? T_CONTROL : T_USER;
	}
	for (uint64_t k = 0; k < v->n; k++)
		if (v->tok[k].s == NULL) {
			char buf[32];
			snprintf(buf, sizeof buf, "[PAD%llu]", (unsigned long long)k);
			if (set_tok(v, k, buf, strlen(buf)) != 0)
				return MOE_ENOMEM;
			v->type[k] = T_UNUSED;
		}
	return 0;
}

/* A special token's content from tokenizer_config.json ("<s>" or {"content": ...}). */
static const char *special_name(json_t *cfg, const char *key)
{
	json_t *v = json_object_get(cfg, key);

	return json_is_string(v) ? json_string_value(v)
		: json_string_value(json_object_get(v, "content"));
}

static int find_token(const struct vocab *v, const char *s)
{
	for (uint64_t i = 0; s && i < v->n; i++)
		if (strcmp(v->tok[i].s, s) == 0)
			return (int)i;
	return -1;
}

/* llama.cpp names its pre-tokenizers; recognise the common split regexes. */
static const char *pre_name(json_t *tok)
{
	json_t *pre = json_object_get(tok, "pre_tokenizer");
	char *dump = json_dumps(pre, JSON_COMPACT);
	const char *name = NULL;

	if (dump == NULL)
		return NULL;
	if (strstr(dump, "\\\\p{N}{1,3}"))
		name = "llama-bpe";
	else if (strstr(dump, "(?i:'s|'t|'re|'ve|'m|'ll|'d)") && strstr(dump, "\\\\p{N}|"))
		name = "qwen2";
	else if (strstr(dump, "\"ByteLevel\"") && !strstr(dump, "\"Split\""))
		name = "gpt-2";
	else if (strstr(dump, "\"Metaspace\"") || json_is_null(pre))
		name = "default";
	free(dump);
	return name;
}

static int put_merges(struct moe_meta *m, json_t *merges)
{
	size_t n = json_array_size(merges), i;
	struct moe_str *s = calloc(n ? n : 1, sizeof *s);
	json_t *e;

	if (s == NULL)
		return MOE_ENOMEM;
	json_array_foreach(merges, i, e) {
		char *buf = NULL;
		if (json_is_string(e))
			buf = strdup(json_string_value(e));
		else if (json_is_array(e) && asprintf(&buf, "%s %s",
		         json_string_value(json_array_get(e, 0)) ? json_string_value(json_array_get(e, 0)) : "",
		         json_string_value(json_array_get(e, 1)) ? json_string_value(json_array_get(e, 1)) : "") < 0)
			buf = NULL;
		if (buf == NULL) {
			for (size_t k = 0; k < i; k++)
				free(s[k].s);
			free(s);
			return MOE_EFORMAT;
		}
		s[i].s = buf;
		s[i].len = strlen(buf);
	}
	return moe_meta_set_array(m, "tokenizer.ggml.merges", MOE_V_STR, s, n);
}

static int put_specials(struct moe_meta *m, const struct vocab *v, json_t *cfg)
{
	static const char *keys[][2] = { { "bos_token", "tokenizer.ggml.bos_token_id" },
		{ "eos_token", "tokenizer.ggml.eos_token_id" },
		{ "unk_token", "tokenizer.ggml.unknown_token_id" },
		{ "pad_token", "tokenizer.ggml.padding_token_id" } };
	json_t *ab = json_object_get(cfg, "add_bos_token"), *ae = json_object_get(cfg, "add_eos_token");

	for (int i = 0; i < 4; i++) {
		int id = find_token(v, special_name(cfg, keys[i][0]));
		if (id >= 0 && moe_meta_set_u32(m, keys[i][1], (uint32_t)id) != 0)
			return MOE_ENOMEM;
	}
	if ((json_is_boolean(ab) && moe_meta_set_bool(m, "tokenizer.ggml.add_bos_token", json_is_true(ab))) ||
	    (json_is_boolean(ae) && moe_meta_set_bool(m, "tokenizer.ggml.add_eos_token", json_is_true(ae))))
		return MOE_ENOMEM;
	return 0;
}

int moe_tokconv_to_gguf(json_t *tok, json_t *cfg, struct moe_meta *m,
	char *note, size_t n, struct moe_error *err)
{
	json_t *model = json_object_get(tok, "model"), *added = json_object_get(tok, "added_tokens");
	const char *type = json_string_value(json_object_get(model, "type")), *pre;
	int bpe = type && strcmp(type, "BPE") == 0, uni = type && strcmp(type, "Unigram") == 0;
	int spm = uni || (bpe && json_is_true(json_object_get(model, "byte_fallback")));
	struct vocab v = { 0 };
	uint64_t size = vocab_size(model, added);
	int rc, unk;

	note[0] = '\0';
	if (!bpe && !uni)
		return moe_error_set(err, MOE_EUNSUP, "tokenizer.json: model type '%s' is not "
			"BPE or Unigram", type ? type : "(none)");
	if (size == 0 || size > MAX_VOCAB)
		return moe_error_set(err, MOE_EFORMAT, "tokenizer.json: %llu tokens",
			(unsigned long long)size);
	if ((rc = vocab_alloc(&v, size)) == 0)
		rc = uni ? fill_unigram(&v, model) : fill_bpe(&v, model, spm);
	if (rc == 0)
		rc = fill_added(&v, added);
	if (rc == 0 && (unk = find_token(&v, json_string_value(json_object_get(model, "unk_token")))) >= 0)
		v.type[unk] = T_UNKNOWN;
	if (rc == 0)
		rc = moe_meta_set_str(m, "tokenizer.ggml.model", spm ? "llama" : "gpt2");
	if (rc == 0 && !spm) {
		pre = pre_name(tok);
		if (pre == NULL) {
			pre = "default";
			snprintf(note, n, "unrecognised pre-tokenizer: llama.cpp will split text its default way");
		}
		rc = moe_meta_set_str(m, "tokenizer.ggml.pre", pre);
		if (rc == 0)
			rc = put_merges(m, json_object_get(model, "merges"));
	}
	if (rc == 0 && (rc = moe_meta_set_array(m, "tokenizer.ggml.tokens", MOE_V_STR, v.tok, v.n)) == 0)
		v.tok = NULL;
	if (rc == 0 && spm && (rc = moe_meta_set_array(m, "tokenizer.ggml.scores", MOE_V_F32, v.score, v.n)) == 0)
		v.score = NULL;
	if (rc == 0 && (rc = moe_meta_set_array(m, "tokenizer.ggml.token_type", MOE_V_I32, v.type, v.n)) == 0)
		v.type = NULL;
	if (rc == 0) {
		struct vocab view = { (struct moe_str *)moe_meta_find(m, "tokenizer.ggml.tokens")->v.arr.data,
			NULL, NULL, size };
		rc = put_specials(m, &view, cfg);
	}
	vocab_free(&v);
	if (rc != 0)
		return moe_error_set(err, rc, "tokenizer.json: %s", rc == MOE_ENOMEM ?
			"out of memory" : "malformed vocabulary");
	return 0;
}

static const struct moe_value *arr(const struct moe_meta *m, const char *key, enum moe_vtype et)
{
	const struct moe_value *v = moe_meta_find(m, key);
	return v && v->type == MOE_V_ARR && v->v.arr.type == et ? v : NULL;
}

/* Merges a SentencePiece vocabulary implies: every split of a piece into
 * two pieces, ordered by the piece's score (what transformers does). */
struct merge { uint32_t l, r; float score; uint32_t piece; };

static int cmp_merge(const void *a, const void *b)
{
	const struct merge *x = a, *y = b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	if (x->l != y->l)
		return x->l < y->l ? -1 : 1;
	return x->r < y->r ? -1 : x->r > y->r;
}

static json_t *merges_from_scores(const struct moe_str *tok, const float *score,
	const int32_t *type, uint64_t n, json_t *vocab)
{
	struct merge *ms = NULL;
	size_t cnt = 0, cap = 0;
	json_t *out = json_array();

	for (uint64_t i = 0; out && i < n; i++) {
		if (type && type[i] != T_NORMAL)
			continue;
		for (size_t k = 1; k < tok[i].len; k++) {
			char left[1024];
			json_t *l, *r;
			if (((unsigned char)tok[i].s[k] & 0xc0) == 0x80 || k >= sizeof left)
				continue;   /* not a character boundary */
			memcpy(left, tok[i].s, k);
			left[k] = '\0';
			if (!json_is_integer(l = json_object_get(vocab, left)) ||
			    !json_is_integer(r = json_object_get(vocab, tok[i].s + k)))
				continue;
			if (cnt == cap) {
				struct merge *nm = realloc(ms, (cap = cap ? 2 * cap : 1024) * sizeof *nm);
				if (nm == NULL) {
					free(ms);
					json_decref(out);
					return NULL;
				}
				ms = nm;
			}
			ms[cnt++] = (struct merge){ (uint32_t)json_integer_value(l),
				(uint32_t)json_integer_value(r), score[i], (uint32_t)i };
		}
	}
	if (cnt)
		qsort(ms, cnt, sizeof *ms, cmp_merge);
	for (size_t i = 0; out && i < cnt; i++) {
		char *s;
		if (asprintf(&s, "%s %s", tok[ms[i].l].s, tok[ms[i].r].s) < 0)
			break;
		json_array_append_new(out, json_string(s));
		free(s);
	}
	free(ms);
	return out;
}

static json_t *hf_model(const struct moe_meta *m, int spm, const struct moe_str *tok,
	uint64_t n, json_t *vocab)
{
	const struct moe_value *mg = arr(m, "tokenizer.ggml.merges", MOE_V_STR);
	const struct moe_value *sc = arr(m, "tokenizer.ggml.scores", MOE_V_F32);
	const struct moe_value *ty = arr(m, "tokenizer.ggml.token_type", MOE_V_I32);
	json_t *merges;
	uint64_t unk = 0;

	if (mg) {
		merges = json_array();
		for (uint64_t i = 0; merges && i < mg->v.arr.n; i++)
			json_array_append_new(merges, json_string(((struct moe_str *)mg->v.arr.data)[i].s));
	} else if (spm && sc) {
		merges = merges_from_scores(tok, sc->v.arr.data, ty ? ty->v.arr.data : NULL, n, vocab);
	} else {
		merges = json_array();
	}
	moe_meta_get_u64(m, "tokenizer.ggml.unknown_token_id", &unk);
	return json_pack("{s:s, s:n, s:o, s:n, s:n, s:b, s:b, s:o, s:o}", "type", "BPE",
		"dropout", "unk_token", spm && unk < n ? json_string(tok[unk].s) : json_null(),
		"continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", spm,
		"byte_fallback", spm, "vocab", json_incref(vocab), "merges", merges);
}

static json_t *added_tokens(const struct moe_meta *m, const struct moe_str *tok, uint64_t n)
{
	const struct moe_value *ty = arr(m, "tokenizer.ggml.token_type", MOE_V_I32);
	json_t *a = json_array();

	for (uint64_t i = 0; ty && a && i < n && i < ty->v.arr.n; i++) {
		int32_t t = ((int32_t *)ty->v.arr.data)[i];
		if (t != T_CONTROL && t != T_USER && t != T_UNKNOWN)
			continue;
		json_array_append_new(a, json_pack("{s:I, s:s, s:b, s:b, s:b, s:b, s:b}", "id",
			(json_int_t)i, "content", tok[i].s, "single_word", 0, "lstrip", 0,
			"rstrip", 0, "normalized", 0, "special", t != T_USER));
	}
	return a;
}

static json_t *tok_config(const struct moe_meta *m, const struct moe_str *tok, uint64_t n)
{
	static const char *keys[][2] = { { "bos_token", "tokenizer.ggml.bos_token_id" },
		{ "eos_token", "tokenizer.ggml.eos_token_id" },
		{ "unk_token", "tokenizer.ggml.unknown_token_id" },
		{ "pad_token", "tokenizer.ggml.padding_token_id" } };
	json_t *c = json_pack("{s:s, s:b}", "tokenizer_class", "PreTrainedTokenizerFast",
		"clean_up_tokenization_spaces", 0);
	int b;

	for (int i = 0; c && i < 4; i++) {
		uint64_t id;
		if (moe_meta_get_u64(m, keys[i][1], &id) == 0 && id < n)
			json_object_set_new(c, keys[i][0], json_string(tok[id].s));
	}
	if (moe_meta_get_bool(m, "tokenizer.ggml.add_bos_token", &b) == 0)
		json_object_set_new(c, "add_bos_token", json_boolean(b));
	if (moe_meta_get_bool(m, "tokenizer.ggml.add_eos_token", &b) == 0)
		json_object_set_new(c, "add_eos_token", json_boolean(b));
	return c;
}

int moe_tokconv_from_gguf(const struct moe_meta *m, json_t **tokenizer,
	json_t **tok_cfg, struct moe_error *err)
{
	const struct moe_value *tv = arr(m, "tokenizer.ggml.tokens", MOE_V_STR);
	const char *model = NULL;
	const struct moe_str *tok;
	json_t *vocab, *mj;
	int spm;

	*tokenizer = *tok_cfg = NULL;
	if (moe_meta_get_str(m, "tokenizer.ggml.model", &model) != 0 || tv == NULL)
		return moe_error_set(err, MOE_ENOENT, "no tokenizer in the GGUF metadata");
	spm = strcmp(model, "llama") == 0;
	if (!spm && strcmp(model, "gpt2") != 0)
		return moe_error_set(err, MOE_EUNSUP, "tokenizer model '%s' has no tokenizer.json "
			"form here (llama and gpt2 do)", model);
	tok = tv->v.arr.data;
	if ((vocab = json_object()) == NULL)
		return moe_error_set(err, MOE_ENOMEM, "out of memory");
	for (uint64_t i = 0; i < tv->v.arr.n; i++)
		json_object_set_new(vocab, tok[i].s, json_integer((json_int_t)i));
	mj = hf_model(m, spm, tok, tv->v.arr.n, vocab);
	json_decref(vocab);
	*tokenizer = json_pack("{s:s, s:n, s:n, s:o, s:o, s:o, s:n, s:o, s:o}", "version", "1.0",
		"truncation", "padding", "added_tokens", added_tokens(m, tok, tv->v.arr.n),
		"normalizer", spm ? json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}, s:s}]}", "type",
			"Sequence", "normalizers", "type", "Prepend", "prepend", "\xe2\x96\x81", "type",
			"Replace", "pattern", "String", " ", "content", "\xe2\x96\x81") : json_null(),
		"pre_tokenizer", spm ? json_null() : json_pack("{s:s, s:b, s:b, s:b}", "type",
			"ByteLevel", "add_prefix_space", 0, "trim_offsets", 1, "use_regex", 1),
		"post_processor",
		"decoder", spm ? json_pack("{s:s, s:[{s:s, s:{s:s}, s:s}, {s:s}, {s:s}, {s:s, s:s, s:i, s:i}]}",
			"type", "Sequence", "decoders", "type", "Replace", "pattern", "String", "\xe2\x96\x81",
			"content", " ", "type", "ByteFallback", "type", "Fuse", "type", "Strip", "content",
			" ", "start", 1, "stop", 0) : json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel",
			"add_prefix_space", 1, "trim_offsets", 1, "use_regex", 1),
		"model", mj);
	*tok_cfg = tok_config(m, tok, tv->v.arr.n);
	if (*tokenizer == NULL || *tok_cfg == NULL) {
		json_decref(*tokenizer);
		json_decref(*tok_cfg);
		*tokenizer = *tok_cfg = NULL;
		return moe_error_set(err, MOE_ENOMEM, "out of memory");
	}
	return 0;
}
