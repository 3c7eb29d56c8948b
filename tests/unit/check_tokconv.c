/* Tests of tokenizer.json <-> GGUF vocabulary conversion. */
#include <dirent.h>

#include "ckpt.h"
#include "error.h"
#include "tokconv.h"
#include "testutil.h"

static const char gpt2_json[] =
	"{\"version\":\"1.0\",\"added_tokens\":[{\"id\":6,\"content\":\"<|end|>\",\"special\":true},"
	"{\"id\":7,\"content\":\"<tool>\",\"special\":false}],"
	"\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false},"
	"\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"\\u0120\":2,\"ab\":3,\"\\u0120a\":4,\"\\u0120ab\":5},"
	"\"merges\":[\"a b\",\"\\u0120 a\",[\"\\u0120a\",\"b\"]]}}";

static const char spm_json[] =
	"{\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true},"
	"{\"id\":1,\"content\":\"<s>\",\"special\":true},{\"id\":2,\"content\":\"</s>\",\"special\":true}],"
	"\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"unk_token\":\"<unk>\",\"vocab\":{\"<unk>\":0,"
	"\"<s>\":1,\"</s>\":2,\"<0x41>\":3,\"\\u2581\":4,\"t\":5,\"h\":6,\"th\":7,\"\\u2581th\":8},"
	"\"merges\":[\"t h\",\"\\u2581 th\"]}}";

static json_t *parse(const char *s)
{
	json_error_t e;
	json_t *j = json_loads(s, 0, &e);
	ck_assert_msg(j != NULL, "%s", e.text);
	return j;
}

static const struct moe_str *strs(const struct moe_meta *m, const char *key, uint64_t *n)
{
	const struct moe_value *v = moe_meta_find(m, key);
	ck_assert_ptr_nonnull(v);
	*n = v->v.arr.n;
	return v->v.arr.data;
}

START_TEST(byte_level_bpe_to_gguf)
{
	json_t *tok = parse(gpt2_json), *cfg = parse("{\"eos_token\":\"<|end|>\",\"add_bos_token\":false}");
	struct moe_meta *m;
	struct moe_error err = { 0, "" };
	const struct moe_value *ty;
	const struct moe_str *t, *mg;
	const char *s;
	char note[256];
	uint64_t n, id;

	ck_assert_int_eq(moe_meta_new(&m), 0);
	ck_assert_msg(moe_tokconv_to_gguf(tok, cfg, m, note, sizeof note, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(moe_meta_get_str(m, "tokenizer.ggml.model", &s), 0);
	ck_assert_str_eq(s, "gpt2");
	ck_assert_int_eq(moe_meta_get_str(m, "tokenizer.ggml.pre", &s), 0);
	ck_assert_str_eq(s, "gpt-2");
	t = strs(m, "tokenizer.ggml.tokens", &n);
	ck_assert_uint_eq(n, 8);
	ck_assert_str_eq(t[4].s, "\xc4\xa0" "a");
	ck_assert_str_eq(t[6].s, "<|end|>");
	mg = strs(m, "tokenizer.ggml.merges", &n);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(mg[2].s, "\xc4\xa0" "a b");     /* the array form too */
	ty = moe_meta_find(m, "tokenizer.ggml.token_type");
	ck_assert_int_eq(((int32_t *)ty->v.arr.data)[0], 1);
	ck_assert_int_eq(((int32_t *)ty->v.arr.data)[6], 3);   /* special: control */
	ck_assert_int_eq(((int32_t *)ty->v.arr.data)[7], 4);   /* added: user-defined */
	ck_assert_int_eq(moe_meta_get_u64(m, "tokenizer.ggml.eos_token_id", &id), 0);
	ck_assert_uint_eq(id, 6);
	ck_assert_str_eq(note, "");
	moe_meta_free(m);
	json_decref(tok);
	json_decref(cfg);
}
END_TEST

START_TEST(sentencepiece_bpe_scores_follow_merges)
{
	json_t *tok = parse(spm_json), *back = NULL, *bcfg = NULL, *merges;
	struct moe_meta *m;
	struct moe_error err = { 0, "" };
	const struct moe_value *sc, *ty;
	const char *s;
	char note[256];

	ck_assert_int_eq(moe_meta_new(&m), 0);
	ck_assert_int_eq(moe_tokconv_to_gguf(tok, NULL, m, note, sizeof note, &err), 0);
	ck_assert_int_eq(moe_meta_get_str(m, "tokenizer.ggml.model", &s), 0);
	ck_assert_str_eq(s, "llama");
	sc = moe_meta_find(m, "tokenizer.ggml.scores");
	ty = moe_meta_find(m, "tokenizer.ggml.token_type");
	/* "th" is merge 0 (score -1), "\u2581th" merge 1 (-2): th merges first */
	ck_assert(((float *)sc->v.arr.data)[7] == -1.0f);
	ck_assert(((float *)sc->v.arr.data)[8] == -2.0f);
	ck_assert_int_eq(((int32_t *)ty->v.arr.data)[0], 2);   /* unknown */
	ck_assert_int_eq(((int32_t *)ty->v.arr.data)[3], 6);   /* byte */
	/* and back: the merges come again from the scores, in that order */
	ck_assert_int_eq(moe_tokconv_from_gguf(m, &back, &bcfg, &err), 0);
	merges = json_object_get(json_object_get(back, "model"), "merges");
	ck_assert_uint_eq(json_array_size(merges), 2);
	ck_assert_str_eq(json_string_value(json_array_get(merges, 0)), "t h");
	ck_assert_str_eq(json_string_value(json_array_get(merges, 1)), "\xe2\x96\x81 th");
	ck_assert(json_is_true(json_object_get(json_object_get(back, "model"), "byte_fallback")));
	json_decref(back);
	json_decref(bcfg);
	moe_meta_free(m);
	json_decref(tok);
}
END_TEST

START_TEST(refusals)
{
	struct moe_meta *m;
	struct moe_error err = { 0, "" };
	json_t *t = parse("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}"), *a, *b;
	char note[256];

	ck_assert_int_eq(moe_meta_new(&m), 0);
	ck_assert_int_eq(moe_tokconv_to_gguf(t, NULL, m, note, sizeof note, &err), MOE_EUNSUP);
	ck_assert_ptr_nonnull(strstr(err.msg, "'WordPiece'"));
	json_decref(t);
	t = parse("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-5}}}");
	ck_assert_int_eq(moe_tokconv_to_gguf(t, NULL, m, note, sizeof note, &err), MOE_EFORMAT);
	json_decref(t);
	ck_assert_int_eq(moe_tokconv_from_gguf(m, &a, &b, &err), MOE_ENOENT);
	moe_meta_free(m);
}
END_TEST

/* The reference vocabularies survive GGUF -> tokenizer.json -> GGUF. */
START_TEST(reference_vocabularies_roundtrip)
{
	const char *shared = moe_test_shared();
	char dir[1024], path[1400];
	DIR *d;
	struct dirent *de;
	int seen = 0;

	if (shared == NULL)
		return;
	snprintf(dir, sizeof dir, "%s/ref/tokenizer", shared);
	ck_assert_ptr_nonnull(d = opendir(dir));
	while ((de = readdir(d)) != NULL) {
		struct moe_ckpt *ck;
		struct moe_meta *m;
		struct moe_error err = { 0, "" };
		json_t *tok, *cfg;
		const struct moe_str *a, *b;
		uint64_t na, nb;
		char note[256];
		if (strstr(de->d_name, ".gguf") == NULL || strstr(de->d_name, ".gguf.") != NULL)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		ck_assert_int_eq(moe_ckpt_new(&ck), 0);
		ck_assert_int_eq(moe_ckpt_open(ck, path), 0);
		ck_assert_msg(moe_tokconv_from_gguf(moe_ckpt_meta(ck), &tok, &cfg, &err) == 0,
			"%s: %s", de->d_name, err.msg);
		ck_assert_int_eq(moe_meta_new(&m), 0);
		ck_assert_msg(moe_tokconv_to_gguf(tok, cfg, m, note, sizeof note, &err) == 0,
			"%s: %s", de->d_name, err.msg);
		a = strs(moe_ckpt_meta(ck), "tokenizer.ggml.tokens", &na);
		b = strs(m, "tokenizer.ggml.tokens", &nb);
		ck_assert_uint_eq(na, nb);
		for (uint64_t i = 0; i < na; i++)
			ck_assert_msg(a[i].len == b[i].len && memcmp(a[i].s, b[i].s, a[i].len) == 0,
				"%s: token %llu", de->d_name, (unsigned long long)i);
		if (moe_meta_find(moe_ckpt_meta(ck), "tokenizer.ggml.merges")) {
			a = strs(moe_ckpt_meta(ck), "tokenizer.ggml.merges", &na);
			b = strs(m, "tokenizer.ggml.merges", &nb);
			ck_assert_uint_eq(na, nb);
			for (uint64_t i = 0; i < na; i++)
				ck_assert_str_eq(a[i].s, b[i].s);
		}
		json_decref(tok);
		json_decref(cfg);
		moe_meta_free(m);
		moe_ckpt_free(ck);
		seen++;
	}
	closedir(d);
	ck_assert_int_ge(seen, 9);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tokconv");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, byte_level_bpe_to_gguf);
	tcase_add_test(tc, sentencepiece_bpe_scores_follow_merges);
	tcase_add_test(tc, refusals);
	tcase_add_test(tc, reference_vocabularies_roundtrip);
	suite_add_tcase(s, tc);
	return moe_test_run(s);
}
