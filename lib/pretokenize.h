/* Pre-tokenizers: llama.cpp's per-model word splitting of text before BPE (internal to libmoe). */
#ifndef MOE_PRETOKENIZE_H
#define MOE_PRETOKENIZE_H

#include <stddef.h>
#include <stdint.h>

/*
 * A moe_pretok is a list of split rules applied in turn, each one splitting
 * every piece the previous rules produced (llama.cpp's unicode_regex_split).
 * Text is first decoded to code points the way llama.cpp does it (an invalid
 * byte becomes U+FFFD); words are written back as UTF-8, and with byte_level
 * each byte is then mapped to GPT-2's printable code point.
 * Words returned by moe_pretok_split are owned by the caller.
 */
struct moe_pretok;

/* Word i is text[i ? end[i-1] : 0 .. end[i]). */
struct moe_pretok_words {
	char *text;
	size_t *end;
	size_t n;
};

/* Per-name defaults that llama.cpp ties to tokenizer.ggml.pre. */
#define MOE_PRE_IGNORE_MERGES 1u  /* a word that is a token is not merged */
#define MOE_PRE_ADD_BOS 2u        /* add_bos defaults to true */
#define MOE_PRE_NO_BOS 4u         /* no default BOS id */

struct moe_pre_info {
	const char *const *regex;
	size_t n_regex;
	unsigned flags;
};

/* The rules llama.cpp uses for a tokenizer.ggml.pre name: 0 or MOE_ENOENT. */
int moe_pretok_lookup(const char *name, struct moe_pre_info *out);

/* Compiles regexes (n may be 0: the text stays one word). On failure *out
 * is NULL and err gets the reason. */
int moe_pretok_new(struct moe_pretok **out, const char *const *regex, size_t n,
	int byte_level, char *err, size_t errlen);
void moe_pretok_free(struct moe_pretok *p);

/* MOE_ERANGE for texts over 512 MiB. */
int moe_pretok_split(const struct moe_pretok *p, const char *text, size_t len,
	struct moe_pretok_words *w);
void moe_pretok_words_release(struct moe_pretok_words *w);

/* GPT-2 byte-level alphabet: byte b as UTF-8 (1 or 2 bytes, returned), and
 * the byte a code point stands for (-1 if none). */
size_t moe_byte_to_unicode(uint8_t b, char out[2]);
int moe_unicode_to_byte(uint32_t cpt);

/* Decodes one code point at s[0..n) as llama.cpp does (no overlong or
 * surrogate checks); an invalid sequence yields U+FFFD and length 1. */
uint32_t moe_utf8_decode(const unsigned char *s, size_t n, size_t *len);

#endif
