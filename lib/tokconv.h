/* Hugging Face tokenizer.json <-> GGUF tokenizer.ggml.* metadata. */
#ifndef MOE_TOKCONV_H
#define MOE_TOKCONV_H

#include <jansson.h>

#include "error.h"
#include "meta.h"

/*
 * Forward: a tokenizer.json whose model is BPE (byte-level, GPT-2 style:
 * GGUF model "gpt2" with merges; or SentencePiece-style with byte
 * fallback: "llama", scores from merge ranks so llama.cpp's merge order
 * is HF's) or Unigram ("llama", its scores), plus tokenizer_config.json
 * (may be NULL) for the special tokens and add_bos/add_eos. The GGUF
 * pre-tokenizer name is recognised from the split regex where known
 * ("default" otherwise; *note says so). Keys are added to m.
 * Reverse: a tokenizer.json and tokenizer_config.json transformers loads
 * (merges recovered from the scores for "llama" vocabularies).
 * Nothing is kept; the caller owns the JSON objects returned.
 */
int moe_tokconv_to_gguf(json_t *tokenizer, json_t *tok_config, struct moe_meta *m,
	char *note, size_t n, struct moe_error *err);
int moe_tokconv_from_gguf(const struct moe_meta *m, json_t **tokenizer,
	json_t **tok_config, struct moe_error *err);

#endif
