/* Unit tests for the tokenizer: tiny SPM and BPE vocabularies, tokenizer.json, and llama.cpp's reference cases. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "error.h"
#include "meta.h"
#include "pretokenize.h"
#include "testutil.h"
#include "tokenizer.h"

/* ---- building vocabularies in memory ---- */

static void set_str_arr(struct moe_meta *m, const char *key, const char *const *s, size_t n)
{
	struct moe_value v = { .type = MOE_V_ARR };
	struct moe_str *a = calloc(n, sizeof *a);

	ck_assert_ptr_nonnull(a);
	for (size_t i = 0; i < n; i++) {
		a[i].len = strlen(s[i]);
		a[i].s = strdup(s[i]);
	}
	v.v.arr.type = MOE_V_STR;
	v.v.arr.n = n;
	v.v.arr.data = a;
	ck_assert_int_eq(moe_meta_set(m, key, &v), 0);
}

static void set_num_arr(struct moe_meta *m, const char *key, enum moe_vtype t,
	const void *data, size_t n)
{
	struct moe_value v = { .type = MOE_V_ARR };
	size_t es = moe_vtype_size(t);

	v.v.arr.type = t;
	v.v.arr.n = n;
	v.v.arr.data = malloc(n * es);
	memcpy(v.v.arr.data, data, n * es);
	ck_assert_int_eq(moe_meta_set(m, key, &v), 0);
}

/* SPM: <unk> <s> </s>, the 256 byte tokens, then pieces. */
static const char *const SPM_PIECES[] = {
	"\xe2\x96\x81", "a", "b", "c", "\342\226\201a", "ab", "\342\226\201ab", "bc",
	"\342\226\201abc", "<tool>",
};
static const float SPM_SCORES[] = { -1, -2, -2, -2, -3, -4, -5, -6, -7, 0 };

static struct moe_tokenizer *spm_tokenizer_named(const char *name)
{
	size_t n = 3 + 256 + sizeof SPM_PIECES / sizeof SPM_PIECES[0];
	const char **tok = calloc(n, sizeof *tok);
	char (*bytes)[8] = calloc(256, 8);
	float *score = calloc(n, sizeof *score);
	int32_t *type = calloc(n, sizeof *type);
	struct moe_tokenizer *t;
	struct moe_meta *m;

	ck_assert_int_eq(moe_meta_new(&m), 0);
	tok[0] = "<unk>", type[0] = 2;
	tok[1] = "<s>", type[1] = 3;
	tok[2] = "</s>", type[2] = 3;
	for (int b = 0; b < 256; b++) {
		snprintf(bytes[b], 8, "<0x%02X>", b);
		tok[3 + b] = bytes[b];
		type[3 + b] = 6;
	}
	for (size_t i = 0; i < sizeof SPM_PIECES / sizeof SPM_PIECES[0]; i++) {
		tok[259 + i] = SPM_PIECES[i];
		score[259 + i] = SPM_SCORES[i];
		type[259 + i] = 1;
	}
	type[n - 1] = 4;  /* "<tool>" is user-defined */
	ck_assert_int_eq(moe_meta_set_str(m, "tokenizer.ggml.model", "llama"), 0);
	set_str_arr(m, "tokenizer.ggml.tokens", tok, n);
	set_num_arr(m, "tokenizer.ggml.scores", MOE_V_F32, score, n);
	set_num_arr(m, "tokenizer.ggml.token_type", MOE_V_I32, type, n);
	ck_assert_int_eq(moe_meta_set_bool(m, "tokenizer.ggml.add_bos_token", 1), 0);
	if (name != NULL)
		ck_assert_int_eq(moe_meta_set_str(m, "general.name", name), 0);
	ck_assert_int_eq(moe_tokenizer_new_from_meta(&t, m), 0);
	moe_meta_free(m);
	free(tok);
	free(bytes);
	free(score);
	free(type);
	return t;
}

static struct moe_tokenizer *spm_tokenizer(void)
{
	return spm_tokenizer_named(NULL);
}

#define ID(x) (259 + (x))  /* index into SPM_PIECES */

static size_t enc(struct moe_tokenizer *t, const char *s, size_t len, int add, int parse,
	int32_t *ids, size_t cap)
{
	size_t n;

	ck_assert_int_eq(moe_tokenizer_encode(t, s, len, add, parse, ids, cap, &n), 0);
	return n;
}

START_TEST(spm_merges_by_score)
{
	struct moe_tokenizer *t = spm_tokenizer();
	int32_t ids[16];
	size_t n;

	/* ▁+a (-3) first, then ▁a+b (-5), then ▁ab+c (-7) */
	n = enc(t, "abc", 3, 0, 0, ids, 16);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(ids[0], ID(8));
	/* a+b (-4) is merged before b+c could be, and "▁c" is no piece */
	n = enc(t, "cabc", 4, 0, 0, ids, 16);
	ck_assert_uint_eq(n, 4);
	ck_assert_int_eq(ids[0], ID(0));
	ck_assert_int_eq(ids[1], ID(3));
	ck_assert_int_eq(ids[2], ID(5));
	ck_assert_int_eq(ids[3], ID(3));
	n = enc(t, "bc", 2, 1, 0, ids, 16);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(ids[0], 1);       /* BOS */
	ck_assert_int_eq(ids[1], ID(0));   /* ▁ */
	ck_assert_int_eq(ids[2], ID(7));   /* bc */
	moe_tokenizer_free(t);
}
END_TEST

START_TEST(spm_byte_fallback_and_specials)
{
	struct moe_tokenizer *t = spm_tokenizer();
	int32_t ids[32];
	size_t n;

	/* "é" is no piece: its two UTF-8 bytes become <0xC3><0xA9> */
	n = enc(t, "a\xc3\xa9", 3, 0, 0, ids, 32);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(ids[0], ID(4));
	ck_assert_int_eq(ids[1], 3 + 0xc3);
	ck_assert_int_eq(ids[2], 3 + 0xa9);
	/* control "<s>" stays text unless parse_special; "<tool>" always splits
	 * and the text after it gets a space prefix again */
	n = enc(t, "<s>", 3, 0, 1, ids, 32);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(ids[0], 1);
	n = enc(t, "<s>", 3, 0, 0, ids, 32);
	ck_assert_uint_gt(n, 2);
	n = enc(t, "a<tool>a", 8, 0, 0, ids, 32);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(ids[0], ID(4));
	ck_assert_int_eq(ids[1], ID(9));
	ck_assert_int_eq(ids[2], ID(4));
	/* empty text: nothing, or BOS alone */
	ck_assert_uint_eq(enc(t, "", 0, 0, 0, ids, 32), 0);
	ck_assert_uint_eq(enc(t, "", 0, 1, 0, ids, 32), 1);
	ck_assert_int_eq(moe_tokenizer_special(t, MOE_TOK_BOS), 1);
	ck_assert_int_eq(moe_tokenizer_special(t, MOE_TOK_EOS), 2);
	ck_assert_int_eq(moe_tokenizer_special(t, MOE_TOK_UNK), 0);
	ck_assert(moe_tokenizer_is_eog(t, 2));
	ck_assert(!moe_tokenizer_is_eog(t, 1));
	moe_tokenizer_free(t);
}
END_TEST

/* Decoding every token of an encoding gives the text back (with the
 * leading space SPM adds). */
static void round_trip(struct moe_tokenizer *t, const char *s, const char *want)
{
	int32_t ids[256];
	char out[1024];
	size_t n = enc(t, s, strlen(s), 0, 0, ids, 256), o = 0;

	for (size_t i = 0; i < n; i++) {
		size_t k;

		ck_assert_int_eq(moe_tokenizer_decode_token(t, ids[i], out + o, sizeof out - o, &k), 0);
		o += k;
	}
	ck_assert_uint_eq(o, strlen(want));
	ck_assert(memcmp(out, want, o) == 0);
}

/* llama.cpp strips spaces after special tokens of Phi-3 models only. */
START_TEST(spm_phi3_rstrip)
{
	struct moe_tokenizer *t = spm_tokenizer();
	int32_t ids[16];
	size_t n;

	n = enc(t, "a<tool> a", 9, 0, 0, ids, 16);
	ck_assert_uint_eq(n, 4);
	ck_assert_int_eq(ids[2], ID(0));
	ck_assert_int_eq(ids[3], ID(4));
	moe_tokenizer_free(t);
	t = spm_tokenizer_named("Phi-3 mini");
	n = enc(t, "a<tool> a", 9, 0, 0, ids, 16);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(ids[0], ID(4));
	ck_assert_int_eq(ids[1], ID(9));
	ck_assert_int_eq(ids[2], ID(4));
	moe_tokenizer_free(t);
}
END_TEST

START_TEST(spm_decode)
{
	struct moe_tokenizer *t = spm_tokenizer();
	char buf[8];
	size_t n;

	round_trip(t, "ab c\xc3\xa9 \xff\x80x", " ab c\xc3\xa9 \xff\x80x");
	ck_assert_int_eq(moe_tokenizer_decode_token(t, 1, buf, sizeof buf, &n), 0);
	ck_assert_uint_eq(n, 0);   /* control tokens print nothing */
	ck_assert_int_eq(moe_tokenizer_decode_token(t, ID(8), buf, 2, &n), MOE_ERANGE);
	ck_assert_uint_eq(n, 4);
	ck_assert_int_eq(moe_tokenizer_decode_token(t, 100000, buf, 8, &n), MOE_EINVAL);
	ck_assert_int_eq(moe_tokenizer_decode_token(t, -1, buf, 8, &n), MOE_EINVAL);
	ck_assert_str_eq(moe_tokenizer_token_text(t, ID(4)), "\342\226\201a");
	ck_assert_ptr_null(moe_tokenizer_token_text(t, -5));
	moe_tokenizer_free(t);
}
END_TEST

START_TEST(encode_cap)
{
	struct moe_tokenizer *t = spm_tokenizer();
	int32_t ids[2] = { -7, -7 };
	size_t n;

	ck_assert_int_eq(moe_tokenizer_encode(t, "c c c", 5, 0, 0, NULL, 0, &n), MOE_ERANGE);
	ck_assert_uint_eq(n, 6);
	ck_assert_int_eq(moe_tokenizer_encode(t, "c c c", 5, 0, 0, ids, 1, &n), MOE_ERANGE);
	ck_assert_uint_eq(n, 6);
	ck_assert_int_eq(ids[0], ID(0));
	ck_assert_int_eq(ids[1], -7);
	moe_tokenizer_free(t);
}
END_TEST

/* BPE: byte-level alphabet for "a", "b", "c", " " (Ġ), merges by rank. */
static struct moe_tokenizer *bpe_tokenizer(const char *pre)
{
	static const char *const tok[] = {
		"a", "b", "c", "\xc4\xa0", "ab", "bc", "abc", "\304\240a", "<|endoftext|>",
		"1", "2", "12", "\xc3\x83", "\xc2\xa9",
	};
	static const char *const merges[] = {
		"b c", "a b", "ab c", "\xc4\xa0 a", "1 2",
	};
	size_t n = sizeof tok / sizeof tok[0];
	int32_t type[sizeof tok / sizeof tok[0]];
	struct moe_tokenizer *t;
	struct moe_meta *m;

	for (size_t i = 0; i < n; i++)
		type[i] = 1;
	type[8] = 3;
	ck_assert_int_eq(moe_meta_new(&m), 0);
	ck_assert_int_eq(moe_meta_set_str(m, "tokenizer.ggml.model", "gpt2"), 0);
	ck_assert_int_eq(moe_meta_set_str(m, "tokenizer.ggml.pre", pre), 0);
	set_str_arr(m, "tokenizer.ggml.tokens", tok, n);
	set_num_arr(m, "tokenizer.ggml.token_type", MOE_V_I32, type, n);
	set_str_arr(m, "tokenizer.ggml.merges", merges, sizeof merges / sizeof merges[0]);
	ck_assert_int_eq(moe_meta_set_u32(m, "tokenizer.ggml.eos_token_id", 8), 0);
	ck_assert_int_eq(moe_tokenizer_new_from_meta(&t, m), 0);
	moe_meta_free(m);
	return t;
}

START_TEST(bpe_merge_priority)
{
	struct moe_tokenizer *t = bpe_tokenizer("gpt-2");
	int32_t ids[32];
	size_t n;

	/* "b c" (rank 0) wins over "a b" (rank 1): a + bc, and "abc" is never
	 * formed because "a bc" is no merge */
	n = enc(t, "abc", 3, 0, 0, ids, 32);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(ids[0], 0);
	ck_assert_int_eq(ids[1], 5);
	/* words are split first: " a" merges, "ab" then "c"? no: "b c" first */
	n = enc(t, "ab a", 4, 0, 0, ids, 32);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(ids[0], 4);
	ck_assert_int_eq(ids[1], 7);
	/* "é" = C3 A9 -> byte-level "Ã©" */
	n = enc(t, "\xc3\xa9", 2, 0, 0, ids, 32);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(ids[0], 12);
	ck_assert_int_eq(ids[1], 13);
	/* parse_special: "<|endoftext|>" is control */
	n = enc(t, "a<|endoftext|>", 14, 0, 1, ids, 32);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(ids[1], 8);
	ck_assert(moe_tokenizer_is_eog(t, 8));
	ck_assert_uint_eq(enc(t, "", 0, 1, 1, ids, 32), 0);
	round_trip(t, "ab a\xc3\xa9 c", "ab a\xc3\xa9 c");
	moe_tokenizer_free(t);
}
END_TEST

START_TEST(bpe_pre_tokenizers)
{
	struct moe_tokenizer *t = bpe_tokenizer("starcoder");
	int32_t ids[32];
	size_t n;

	/* starcoder splits digits one by one, so "12" is not merged */
	n = enc(t, "12", 2, 0, 0, ids, 32);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(ids[0], 9);
	ck_assert_int_eq(ids[1], 10);
	moe_tokenizer_free(t);
	t = bpe_tokenizer("gpt-2");
	n = enc(t, "12", 2, 0, 0, ids, 32);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(ids[0], 11);
	moe_tokenizer_free(t);
}
END_TEST

START_TEST(invalid_utf8)
{
	static const char *const pres[] = {
		"gpt-2", "default", "llama-bpe", "deepseek-llm", "deepseek-coder", "falcon",
		"qwen2", "deepseek-v3", "tekken", "bloom",
	};
	static const char bad[] = "a\xff\xc3(\xe2\x82 \xf0\x9f\x98 \xed\xa0\x80\xf7\xbf\xbf\xbf\n\n  1234 x";
	int32_t ids[256];

	for (size_t i = 0; i < sizeof pres / sizeof pres[0]; i++) {
		struct moe_tokenizer *t = bpe_tokenizer(pres[i]);

		enc(t, bad, sizeof bad - 1, 1, 1, ids, 256);
		moe_tokenizer_free(t);
	}
	{
		struct moe_tokenizer *t = spm_tokenizer();

		enc(t, bad, sizeof bad - 1, 1, 1, ids, 256);
		moe_tokenizer_free(t);
	}
}
END_TEST

START_TEST(bad_vocabularies)
{
	struct moe_tokenizer *t;
	struct moe_meta *m;
	float one = 0;

	ck_assert_int_eq(moe_meta_new(&m), 0);
	ck_assert_int_eq(moe_tokenizer_new_from_meta(&t, m), MOE_ENOENT);
	ck_assert_ptr_nonnull(strstr(moe_tokenizer_errstr(t), "tokenizer.ggml.model"));
	moe_tokenizer_free(t);
	ck_assert_int_eq(moe_meta_set_str(m, "tokenizer.ggml.model", "bert"), 0);
	ck_assert_int_eq(moe_tokenizer_new_from_meta(&t, m), MOE_EUNSUP);
	moe_tokenizer_free(t);
	ck_assert_int_eq(moe_meta_set_str(m, "tokenizer.ggml.model", "gpt2"), 0);
	ck_assert_int_eq(moe_meta_set_str(m, "tokenizer.ggml.pre", "no-such-pre"), 0);
	ck_assert_int_eq(moe_tokenizer_new_from_meta(&t, m), MOE_EUNSUP);
	ck_assert_ptr_nonnull(strstr(moe_tokenizer_errstr(t), "no-such-pre"));
	moe_tokenizer_free(t);
	ck_assert_int_eq(moe_meta_set_str(m, "tokenizer.ggml.model", "llama"), 0);
	ck_assert_int_eq(moe_tokenizer_new_from_meta(&t, m), MOE_ENOENT);
	moe_tokenizer_free(t);
	{
		static const char *const two[] = { "a", "b" };

		set_str_arr(m, "tokenizer.ggml.tokens", two, 2);
		set_num_arr(m, "tokenizer.ggml.scores", MOE_V_F32, &one, 1);
		ck_assert_int_eq(moe_tokenizer_new_from_meta(&t, m), MOE_EFORMAT);
		moe_tokenizer_free(t);
	}
	moe_meta_free(m);
}
END_TEST

/* ---- pre-tokenizers ---- */

/* Words of text under regex, joined with '|'. */
static char *words(const char *regex, const char *text)
{
	struct moe_pretok *p;
	struct moe_pretok_words w;
	char err[256], *out = malloc(4 * strlen(text) + 2), *o = out;

	ck_assert_int_eq(moe_pretok_new(&p, &regex, 1, 0, err, sizeof err), 0);
	ck_assert_int_eq(moe_pretok_split(p, text, strlen(text), &w), 0);
	for (size_t i = 0; i < w.n; i++) {
		size_t b = i ? w.end[i - 1] : 0;

		if (i)
			*o++ = '|';
		memcpy(o, w.text + b, w.end[i] - b);
		o += w.end[i] - b;
	}
	*o = '\0';
	moe_pretok_words_release(&w);
	moe_pretok_free(p);
	return out;
}

static const char LLAMA3_RE[] =
	"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char GPT2_RE[] =
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";

START_TEST(pretok_llama3)
{
	char *w = words(LLAMA3_RE, "Hello world's  123456\n\n x");

	ck_assert_str_eq(w, "Hello| world|'s| | |123|456|\n\n| x");
	free(w);
	w = words(GPT2_RE, "Hello world's  123456\n\n x");
	ck_assert_str_eq(w, "Hello| world|'s| | 123456|\n\n| x");
	free(w);
}
END_TEST

/* deepseek-v3's rules use \p{M} and \p{S} (collapsed like \p{L}). */
START_TEST(pretok_deepseek_v3)
{
	struct moe_pre_info info;
	struct moe_pretok *p;
	struct moe_pretok_words w;
	static const char text[] = "a+b e\xcc\x81x 12345";
	static const char *const want[] = { "a", "+b", " e\xcc\x81x", " ", "123", "45" };
	char err[256];

	ck_assert_int_eq(moe_pretok_lookup("deepseek-v3", &info), 0);
	ck_assert_int_eq(moe_pretok_new(&p, info.regex, info.n_regex, 0, err, sizeof err), 0);
	ck_assert_int_eq(moe_pretok_split(p, text, sizeof text - 1, &w), 0);
	ck_assert_uint_eq(w.n, 6);
	for (size_t i = 0; i < w.n; i++) {
		size_t b = i ? w.end[i - 1] : 0;

		ck_assert_uint_eq(w.end[i] - b, strlen(want[i]));
		ck_assert(memcmp(w.text + b, want[i], w.end[i] - b) == 0);
	}
	moe_pretok_words_release(&w);
	moe_pretok_free(p);
	ck_assert_int_eq(moe_pretok_lookup("no-such", &info), MOE_ENOENT);
}
END_TEST

/* The hand-written GPT-2 and Llama 3 splitters against the same patterns
 * run by the regex engine (wrapped so they are not recognised). */
START_TEST(pretok_custom_vs_regex)
{
	static const char *const texts[] = {
		"Hello world's  123456\n\n x", "  leading and trailing  ", "a\t\tb\r\n\r\nc",
		"I'M YOU'LL we'Re", "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xe4\xb8\x96\xe7\x95\x8c!!",
		"x\xc2\xa0\xc2\xa0y \xe2\x80\x83z", "\xf0\x9f\xa6\x99\xf0\x9f\xa6\x99 ok...\n", "3.14159 + 2e10 = ?",
		"   \n   \n", "a\xff\xfe b",
	};
	char wrapped3[sizeof LLAMA3_RE + 8], wrapped2[sizeof GPT2_RE + 8];

	snprintf(wrapped3, sizeof wrapped3, "(?:%s)", LLAMA3_RE);
	snprintf(wrapped2, sizeof wrapped2, "(?:%s)", GPT2_RE);
	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		char *a = words(LLAMA3_RE, texts[i]), *b = words(wrapped3, texts[i]);

		ck_assert_msg(strcmp(a, b) == 0, "llama3 '%s': '%s' vs '%s'", texts[i], a, b);
		free(a);
		free(b);
		a = words(GPT2_RE, texts[i]);
		b = words(wrapped2, texts[i]);
		ck_assert_msg(strcmp(a, b) == 0, "gpt2 '%s': '%s' vs '%s'", texts[i], a, b);
		free(a);
		free(b);
	}
}
END_TEST

/* ---- tokenizer.json ---- */

static struct moe_tokenizer *hf(const char *text, int want)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	struct moe_tokenizer *t;

	ck_assert_ptr_nonnull(j);
	ck_assert_int_eq(moe_tokenizer_new_from_hf_json(&t, j), want);
	json_decref(j);
	return t;
}

START_TEST(hf_byte_level)
{
	struct moe_tokenizer *t = hf(
		"{\"added_tokens\":[{\"id\":6,\"content\":\"<|end|>\",\"special\":true}],"
		"\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
		"{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\p{N}\"},\"behavior\":\"Isolated\",\"invert\":false},"
		"{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}]},"
		"\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"\\u0120\":2,\"ab\":3,\"\\u0120ab\":4,\"1\":5},"
		"\"merges\":[\"a b\",[\"\\u0120\",\"ab\"]]}}", 0);
	int32_t ids[16];
	size_t n;

	n = enc(t, "ab ab11<|end|>", 14, 0, 1, ids, 16);
	ck_assert_uint_eq(n, 5);
	ck_assert_int_eq(ids[0], 3);
	ck_assert_int_eq(ids[1], 4);
	ck_assert_int_eq(ids[2], 5);
	ck_assert_int_eq(ids[3], 5);
	ck_assert_int_eq(ids[4], 6);
	ck_assert(moe_tokenizer_is_eog(t, 6));
	round_trip(t, "ab ab", "ab ab");
	moe_tokenizer_free(t);
}
END_TEST

START_TEST(hf_metaspace)
{
	struct moe_tokenizer *t = hf(
		"{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":["
		"{\"type\":\"Prepend\",\"prepend\":\"\\u2581\"},"
		"{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\\u2581\"}]},"
		"\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":["
		"{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}]},"
		"\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true},"
		"{\"id\":1,\"content\":\"<s>\",\"special\":true}],"
		"\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"unk_token\":\"<unk>\","
		"\"vocab\":{\"<unk>\":0,\"<s>\":1,\"<0xC3>\":2,\"<0xA9>\":3,\"\\u2581\":4,\"a\":5,\"\\u2581a\":6},"
		"\"merges\":[\"\\u2581 a\"]}}", 0);
	int32_t ids[16];
	size_t n;

	n = enc(t, "a \xc3\xa9", 4, 1, 0, ids, 16);
	ck_assert_uint_eq(n, 5);
	ck_assert_int_eq(ids[0], 1);
	ck_assert_int_eq(ids[1], 6);
	ck_assert_int_eq(ids[2], 4);
	ck_assert_int_eq(ids[3], 2);
	ck_assert_int_eq(ids[4], 3);
	round_trip(t, "a \xc3\xa9", " a \xc3\xa9");
	moe_tokenizer_free(t);
}
END_TEST

START_TEST(hf_unigram)
{
	struct moe_tokenizer *t = hf(
		"{\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\","
		"\"prepend_scheme\":\"always\",\"split\":true},"
		"\"model\":{\"type\":\"Unigram\",\"unk_id\":0,\"vocab\":[[\"<unk>\",0],"
		"[\"\\u2581\",-2],[\"a\",-3],[\"b\",-3],[\"\\u2581a\",-1],[\"ab\",-1.5],[\"\\u2581ab\",-4]]}}", 0);
	int32_t ids[16];
	size_t n;

	/* ▁+ab (-3.5) beats ▁ab (-4) and ▁a+b (-4); "xy" is one fused unknown */
	n = enc(t, "ab xy", 5, 0, 0, ids, 16);
	ck_assert_uint_eq(n, 4);
	ck_assert_int_eq(ids[0], 1);
	ck_assert_int_eq(ids[1], 5);
	ck_assert_int_eq(ids[2], 1);
	ck_assert_int_eq(ids[3], 0);
	ck_assert_int_eq(moe_tokenizer_special(t, MOE_TOK_UNK), 0);
	round_trip(t, "ab a", " ab a");
	moe_tokenizer_free(t);
}
END_TEST

START_TEST(hf_unsupported)
{
	struct moe_tokenizer *t = hf("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}", MOE_EUNSUP);

	ck_assert_ptr_nonnull(strstr(moe_tokenizer_errstr(t), "WordPiece"));
	moe_tokenizer_free(t);
	moe_tokenizer_free(hf("{\"model\":{\"type\":\"Unigram\",\"vocab\":[[\"a\",0]]}}",
		MOE_EUNSUP));
	moe_tokenizer_free(hf("{\"normalizer\":{\"type\":\"Precompiled\"},"
		"\"model\":{\"type\":\"Unigram\",\"vocab\":[[\"a\",0]]}}", MOE_EUNSUP));
	moe_tokenizer_free(hf("{\"pre_tokenizer\":{\"type\":\"Metaspace\"},"
		"\"model\":{\"type\":\"Unigram\",\"vocab\":[[1,0]]}}", MOE_EFORMAT));
	moe_tokenizer_free(hf("[]", MOE_EFORMAT));
	moe_tokenizer_free(hf("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
		MOE_EUNSUP));
}
END_TEST

/* ---- llama.cpp's reference cases ---- */

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long len;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)len + 1)) != NULL) {
		*n = fread(buf, 1, (size_t)len, f);
		buf[*n] = '\0';
	}
	fclose(f);
	return buf;
}

static const char *const VOCABS[] = {
	"llama-spm", "phi-3", "deepseek-llm", "deepseek-coder", "gpt-2", "falcon",
	"starcoder", "mpt", "refact",
};

/* Runs every case of one vocabulary; returns the number that match. */
static int run_vocab(const char *dir, const char *name, int *total)
{
	static const char SEP[] = "\n__ggml_vocab_test__\n";
	char path[4096];
	struct moe_ckpt *ck;
	struct moe_tokenizer *t;
	char *inp, *out, *ip, *op;
	size_t ni, no;
	int pass = 0;
	int32_t *ids = malloc(65536 * sizeof *ids);

	ck_assert(snprintf(path, sizeof path - 8, "%s/ggml-vocab-%s.gguf", dir, name) <
		(int)sizeof path - 8);
	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	ck_assert_msg(moe_ckpt_open(ck, path) == 0, "%s: %s", path, moe_ckpt_errstr(ck));
	ck_assert_msg(moe_tokenizer_new_from_meta(&t, moe_ckpt_meta(ck)) == 0, "%s: %s", path,
		moe_tokenizer_errstr(t));
	strcat(path, ".inp");
	inp = slurp(path, &ni);
	path[strlen(path) - 4] = '\0';
	strcat(path, ".out");
	out = slurp(path, &no);
	ck_assert(inp != NULL && out != NULL);
	*total = 0;
	for (ip = inp, op = out; ; ) {
		char *end = strstr(ip, SEP), *eol;
		size_t n, k = 0;
		int ok = 1;

		if (end == NULL)
			break;
		eol = strchr(op, '\n');
		ck_assert_ptr_nonnull(eol);
		*eol = '\0';
		ck_assert_int_eq(moe_tokenizer_encode(t, ip, (size_t)(end - ip), 0, 0, ids, 65536, &n), 0);
		for (char *s = op, *e; ; s = e) {
			long v = strtol(s, &e, 10);

			if (e == s)
				break;
			if (k >= n || ids[k] != v)
				ok = 0;
			k++;
		}
		ok &= k == n;
		if (!ok) {
			fprintf(stderr, "%s: case %d '%.*s': want [%s] got [", name, *total,
				(int)(end - ip), ip, op);
			for (size_t i = 0; i < n; i++)
				fprintf(stderr, "%s%d", i ? " " : "", ids[i]);
			fprintf(stderr, "]\n");
		}
		pass += ok;
		++*total;
		ip = end + sizeof SEP - 1;
		op = eol + 1;
	}
	free(inp);
	free(out);
	free(ids);
	moe_tokenizer_free(t);
	moe_ckpt_free(ck);
	return pass;
}

START_TEST(llama_cpp_cases)
{
	const char *shared = moe_test_shared();
	char dir[4096];
	int all_ok = 1;

	if (shared == NULL)
		return;
	snprintf(dir, sizeof dir, "%s/ref/tokenizer", shared);
	if (access(dir, R_OK) != 0) {
		fprintf(stderr, "note: %s not found; skipping llama.cpp tokenizer cases\n", dir);
		return;
	}
	for (size_t i = 0; i < sizeof VOCABS / sizeof VOCABS[0]; i++) {
		int total, pass = run_vocab(dir, VOCABS[i], &total);

		fprintf(stderr, "tokenizer cases: %-15s %d/%d\n", VOCABS[i], pass, total);
		all_ok &= pass == total && total == 46;
	}
	ck_assert(all_ok);
}
END_TEST

/* The tiny models' vocabulary: the greedy prompt and the perplexity text,
 * both tokenized by llama.cpp with BOS. */
static void check_model_text(struct moe_tokenizer *t, const char *text, size_t len, json_t *want)
{
	size_t n, nw = json_array_size(want);
	int32_t *ids = malloc((len + 2) * sizeof *ids);

	ck_assert_int_eq(moe_tokenizer_encode(t, text, len, 1, 0, ids, len + 2, &n), 0);
	ck_assert_uint_gt(nw, 0);
	ck_assert_uint_eq(n, nw);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(ids[i], json_integer_value(json_array_get(want, i)));
	free(ids);
}

START_TEST(model_vocab)
{
	const char *shared = moe_test_shared();
	char path[4096];
	struct moe_ckpt *ck;
	struct moe_tokenizer *t;
	json_t *greedy, *ppl;
	char *text;
	size_t len;

	if (shared == NULL)
		return;
	ck_assert_int_eq(moe_ckpt_new(&ck), 0);
	snprintf(path, sizeof path, "%s/ref/models/llama-moe-f32.gguf", shared);
	ck_assert_int_eq(moe_ckpt_open(ck, path), 0);
	ck_assert_int_eq(moe_tokenizer_new_from_meta(&t, moe_ckpt_meta(ck)), 0);
	snprintf(path, sizeof path, "%s/ref/models/llama-moe-f32.greedy.json", shared);
	ck_assert_ptr_nonnull(greedy = json_load_file(path, 0, NULL));
	text = (char *)json_string_value(json_object_get(greedy, "prompt_text"));
	ck_assert_ptr_nonnull(text);
	check_model_text(t, text, strlen(text), json_object_get(greedy, "prompt_tokens"));
	snprintf(path, sizeof path, "%s/ref/models/llama-moe-f32.perplexity.json", shared);
	ck_assert_ptr_nonnull(ppl = json_load_file(path, 0, NULL));
	snprintf(path, sizeof path, "%s/ref/models/ppl-text.txt", shared);
	ck_assert_ptr_nonnull(text = slurp(path, &len));
	check_model_text(t, text, len, json_object_get(ppl, "text_tokens"));
	free(text);
	json_decref(greedy);
	json_decref(ppl);
	moe_tokenizer_free(t);
	moe_ckpt_free(ck);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tokenizer");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, spm_merges_by_score);
	tcase_add_test(tc, spm_byte_fallback_and_specials);
	tcase_add_test(tc, spm_phi3_rstrip);
	tcase_add_test(tc, spm_decode);
	tcase_add_test(tc, encode_cap);
	tcase_add_test(tc, bpe_merge_priority);
	tcase_add_test(tc, bpe_pre_tokenizers);
	tcase_add_test(tc, invalid_utf8);
	tcase_add_test(tc, bad_vocabularies);
	tcase_add_test(tc, pretok_llama3);
	tcase_add_test(tc, pretok_custom_vs_regex);
	tcase_add_test(tc, pretok_deepseek_v3);
	tcase_add_test(tc, hf_byte_level);
	tcase_add_test(tc, hf_metaspace);
	tcase_add_test(tc, hf_unigram);
	tcase_add_test(tc, hf_unsupported);
	tcase_add_test(tc, llama_cpp_cases);
	tcase_add_test(tc, model_vocab);
	suite_add_tcase(s, tc);
	return moe_test_run(s);
}
