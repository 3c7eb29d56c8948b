/* Hugging Face config.json <-> GGUF architecture metadata for the convertible families. */
#ifndef MOE_HFCONFIG_H
#define MOE_HFCONFIG_H

#include <jansson.h>

#include "error.h"
#include "meta.h"
#include "namemap.h"

/*
 * Forward: the keys llama.cpp expects ({arch}.block_count,
 * {arch}.expert_count, rope, norm epsilon, ...) from a config.json, added
 * to m after general.architecture (and general.name when the config has
 * _name_or_path). A required config field that is missing is an error
 * naming it.
 * Reverse: a config.json that transformers accepts for that family, from
 * the GGUF keys; v3 selects DeepSeek-V3 routing fields for deepseek2, tied
 * says the checkpoint has no separate output head.
 * Errors are written to err; nothing else is kept.
 */
int moe_hfconfig_to_gguf(const struct moe_family *f, json_t *config,
	struct moe_meta *m, struct moe_error *err);
int moe_hfconfig_from_gguf(const struct moe_family *f, const struct moe_meta *m,
	int v3, int tied, json_t **out, struct moe_error *err);

#endif
