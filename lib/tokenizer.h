/* Text <-> token ids as llama.cpp computes them: SentencePiece, byte-level BPE and Unigram vocabularies from GGUF or tokenizer.json. */
#ifndef MOE_TOKENIZER_H
#define MOE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "meta.h"

/*
 * A moe_tokenizer copies everything it needs from the metadata or JSON it
 * was built from; strings it returns live until moe_tokenizer_free().
 * Encoding does not change the handle (several threads may encode at once).
 *
 * Supported vocabularies:
 *  - GGUF tokenizer.ggml.model "llama": SentencePiece BPE by scores, byte
 *    fallback through <0xNN> tokens, "▁" for spaces, add_space_prefix;
 *  - GGUF tokenizer.ggml.model "gpt2": byte-level BPE by merge rank, with
 *    the word splitting llama.cpp uses for tokenizer.ggml.pre (default,
 *    llama3/llama-bpe, deepseek-llm, deepseek-coder, deepseek-v3, falcon,
 *    gpt-2, mpt, olmo, starcoder, refact, qwen2, stablelm2, command-r,
 *    smollm, dbrx, poro, bloom, viking, tekken, jais, ...);
 *  - tokenizer.json with model.type "BPE": byte-level (pre_tokenizer
 *    ByteLevel, optionally after Split/Digits rules) or SentencePiece-like
 *    (Metaspace pre-tokenizer or Replace " " -> "▁" normalizer, byte
 *    fallback), added_tokens as special tokens (special: control, else
 *    user-defined);
 *  - tokenizer.json with model.type "Unigram" and Metaspace: Viterbi over
 *    the piece scores as Hugging Face tokenizers does, byte fallback.
 * WordPiece, GGUF "bert"/"t5"/"rwkv" vocabularies, and normalizers other
 * than Prepend/Replace to "▁" (NFC is taken as already applied) are refused
 * with MOE_EUNSUP.
 * Tokens of type control, user-defined and unknown are "special": text
 * equal to a user-defined token always becomes that token; control and
 * unknown tokens are matched only when asked (parse_special).
 */
struct moe_tokenizer;

/* Special ids; -1 when the vocabulary has none. */
enum moe_tok_special { MOE_TOK_BOS, MOE_TOK_EOS, MOE_TOK_UNK, MOE_TOK_PAD };

/*
 * Builds a tokenizer from GGUF keys tokenizer.ggml.* (model, pre, tokens,
 * scores, token_type, merges, *_token_id, add_bos_token, add_eos_token,
 * add_space_prefix). On failure other than MOE_ENOMEM, *out is a handle
 * that holds only the reason (moe_tokenizer_errstr); free it either way.
 */
int moe_tokenizer_new_from_meta(struct moe_tokenizer **out, const struct moe_meta *m);
/* Same from a parsed tokenizer.json (not kept). */
int moe_tokenizer_new_from_hf_json(struct moe_tokenizer **out, json_t *tokenizer_json);
void moe_tokenizer_free(struct moe_tokenizer *tok);
const char *moe_tokenizer_errstr(const struct moe_tokenizer *tok);

/*
 * Tokenizes text[0..len) (any bytes; invalid UTF-8 is not an error).
 * add_special adds BOS/EOS as the vocabulary asks; parse_special lets
 * control tokens written in the text ("<s>") become their ids.
 * *n receives the number of tokens; when it exceeds cap only the first cap
 * are stored and MOE_ERANGE is returned (cap 0 asks for the count).
 * Texts longer than 64 MiB are refused (MOE_ERANGE). The handle is not
 * written, so a failure leaves no message on it: report moe_strerror(rc).
 */
int moe_tokenizer_encode(const struct moe_tokenizer *tok, const char *text, size_t len,
	int add_special, int parse_special, int32_t *ids, size_t cap, size_t *n);

/*
 * The text a token stands for (llama's token_to_piece without special
 * tokens): "▁" -> space, <0xNN> -> that byte, byte-level BPE mapped back to
 * bytes; control and unknown tokens give nothing. Not NUL-terminated; *n
 * receives the length; if larger than cap, buf holds the first cap bytes
 * and MOE_ERANGE is returned. MOE_EINVAL for an id out of range.
 */
int moe_tokenizer_decode_token(const struct moe_tokenizer *tok, int32_t id,
	char *buf, size_t cap, size_t *n);

size_t moe_tokenizer_n_tokens(const struct moe_tokenizer *tok);
int32_t moe_tokenizer_special(const struct moe_tokenizer *tok, enum moe_tok_special which);
/* Nonzero for tokens that end generation (EOS, EOT, "<|im_end|>" ...). */
int moe_tokenizer_is_eog(const struct moe_tokenizer *tok, int32_t id);
/* The vocabulary string of id (NUL-terminated), NULL if out of range. */
const char *moe_tokenizer_token_text(const struct moe_tokenizer *tok, int32_t id);

#endif
