/* libFuzzer harness: tokenize arbitrary bytes with small built-in vocabularies, and load arbitrary tokenizer.json. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "error.h"
#include "meta.h"
#include "tokenizer.h"

/*
 * Input byte 0 picks the case: a pre-tokenizer for a byte-level BPE vocab,
 * the SPM vocab, or "parse the rest as tokenizer.json"; bit 7 sets
 * parse_special. The rest is the text. Every id must decode.
 */

static const char *const PRES[] = {
	"default", "gpt-2", "llama-bpe", "deepseek-llm", "deepseek-coder", "deepseek-v3",
	"falcon", "starcoder", "qwen2", "tekken", "bloom", "viking", "chatglm-bpe",
};
#define N_PRE (sizeof PRES / sizeof PRES[0])

static void set_strs(struct moe_meta *m, const char *key, const char *const *s, size_t n)
{
	struct moe_value v = { .type = MOE_V_ARR };
	struct moe_str *a = calloc(n, sizeof *a);

	for (size_t i = 0; i < n; i++) {
		a[i].len = strlen(s[i]);
		a[i].s = strdup(s[i]);
	}
	v.v.arr.type = MOE_V_STR;
	v.v.arr.n = n;
	v.v.arr.data = a;
	moe_meta_set(m, key, &v);
}

static void set_i32s(struct moe_meta *m, const char *key, const int32_t *x, size_t n)
{
	struct moe_value v = { .type = MOE_V_ARR };

	v.v.arr.type = MOE_V_I32;
	v.v.arr.n = n;
	v.v.arr.data = malloc(n * sizeof *x);
	memcpy(v.v.arr.data, x, n * sizeof *x);
	moe_meta_set(m, key, &v);
}

static struct moe_tokenizer *make_bpe(const char *pre)
{
	static const char *const tok[] = {
		"a", "b", "\xc4\xa0", "ab", "\304\240a", "<|endoftext|>", "<tool>", "1", "12",
		"\xc3\x83", "\xc2\xa9", "\xc4\x8a", "\xc4\x8a\xc4\x8a", "\xc4\xa0\xc4\xa0",
	};
	static const char *const merges[] = {
		"a b", "\xc4\xa0 a", "1 2", "\xc4\x8a \xc4\x8a", "\xc4\xa0 \xc4\xa0", "nospace",
	};
	int32_t type[sizeof tok / sizeof tok[0]];
	struct moe_tokenizer *t = NULL;
	struct moe_meta *m;

	for (size_t i = 0; i < sizeof tok / sizeof tok[0]; i++)
		type[i] = 1;
	type[5] = 3;
	type[6] = 4;
	if (moe_meta_new(&m) != 0)
		abort();
	moe_meta_set_str(m, "tokenizer.ggml.model", "gpt2");
	moe_meta_set_str(m, "tokenizer.ggml.pre", pre);
	set_strs(m, "tokenizer.ggml.tokens", tok, sizeof tok / sizeof tok[0]);
	set_i32s(m, "tokenizer.ggml.token_type", type, sizeof tok / sizeof tok[0]);
	set_strs(m, "tokenizer.ggml.merges", merges, sizeof merges / sizeof merges[0]);
	if (moe_tokenizer_new_from_meta(&t, m) != 0)
		abort();
	moe_meta_free(m);
	return t;
}

static struct moe_tokenizer *make_spm(void)
{
	static char bytes[256][8];
	const char *tok[3 + 256 + 5] = { "<unk>", "<s>", "</s>" };
	int32_t type[3 + 256 + 5] = { 2, 3, 3 };
	static const char *const pieces[] = {
		"\xe2\x96\x81", "a", "\342\226\201a", "<tool>", "\xe2\x96\x81\xe2\x96\x81",
	};
	struct moe_tokenizer *t = NULL;
	struct moe_meta *m;

	for (int b = 0; b < 256; b++) {
		snprintf(bytes[b], 8, "<0x%02X>", b);
		tok[3 + b] = bytes[b];
		type[3 + b] = 6;
	}
	for (int i = 0; i < 5; i++) {
		tok[259 + i] = pieces[i];
		type[259 + i] = i == 3 ? 4 : 1;
	}
	if (moe_meta_new(&m) != 0)
		abort();
	moe_meta_set_str(m, "tokenizer.ggml.model", "llama");
	moe_meta_set_str(m, "general.name", "phi3-mini");
	set_strs(m, "tokenizer.ggml.tokens", tok, 264);
	set_i32s(m, "tokenizer.ggml.token_type", type, 264);
	if (moe_tokenizer_new_from_meta(&t, m) != 0)
		abort();
	moe_meta_free(m);
	return t;
}

static void run(const struct moe_tokenizer *t, const uint8_t *s, size_t n, int parse)
{
	int32_t ids[512];
	char buf[64];
	size_t k, got, len;
	int rc = moe_tokenizer_encode(t, (const char *)s, n, 1, parse, ids, 512, &k);

	if (rc != 0 && rc != MOE_ERANGE)  /* more than 512 ids */
		abort();
	got = k < 512 ? k : 512;
	for (size_t i = 0; i < got; i++) {
		rc = moe_tokenizer_decode_token(t, ids[i], buf, sizeof buf, &len);
		if (rc != 0 && !(rc == MOE_ERANGE && len > sizeof buf))
			abort();
	}
}

static void run_json(const uint8_t *s, size_t n)
{
	json_t *j = json_loadb((const char *)s, n, 0, NULL);
	struct moe_tokenizer *t = NULL;

	if (j == NULL)
		return;
	if (moe_tokenizer_new_from_hf_json(&t, j) == 0) {
		static const char text[] = "Hello  world\n\n 12345 \xc3\xa9\xff<s>";

		run(t, (const uint8_t *)text, sizeof text - 1, 1);
	}
	moe_tokenizer_free(t);
	json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct moe_tokenizer *bpe[N_PRE], *spm;
	unsigned sel;

	if (size == 0)
		return 0;
	if (spm == NULL) {
		spm = make_spm();
		for (size_t i = 0; i < N_PRE; i++)
			bpe[i] = make_bpe(PRES[i]);
	}
	sel = data[0] & 0x7f;
	if (sel < N_PRE)
		run(bpe[sel], data + 1, size - 1, data[0] >> 7);
	else if (sel == 0x7f)
		run_json(data + 1, size - 1);
	else
		run(spm, data + 1, size - 1, data[0] >> 7);
	return 0;
}
