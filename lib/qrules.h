/* Which quantization type each tensor gets: default, per-class overrides, regex rules, presets, fallbacks. */
#ifndef MOE_QRULES_H
#define MOE_QRULES_H

#include <stddef.h>

#include "ckpt.h"
#include "dtype.h"
#include "tensor_class.h"

/*
 * Order of decision for a tensor, first that applies:
 *  1. one-dimensional tensors (norms, biases, score-correction bias) keep
 *     their type: quantizing a vector saves nothing and costs accuracy;
 *  2. --rule REGEX=TYPE, first match wins;
 *  3. the class override (--router, --attn, --shared, --experts, --embed,
 *     --output) or the preset's choice for the class and layer;
 *  4. routers stay F32 unless 2 or 3 says otherwise (llama.cpp never
 *     quantizes ffn_gate_inp);
 *  5. the default type (-t).
 * A type whose block does not divide the row length falls back to the
 * nearest type that fits (Q4_K -> Q5_0, Q6_K -> Q8_0, ... -> F16), and
 * the note says so. The rules own copies of everything given to them.
 */
struct moe_qrules;

int moe_qrules_new(struct moe_qrules **out, enum moe_dtype dflt);
void moe_qrules_free(struct moe_qrules *r);
const char *moe_qrules_errstr(const struct moe_qrules *r);

/* The type of tensors no rule or class names (-t). */
void moe_qrules_set_default(struct moe_qrules *r, enum moe_dtype t);
/* Override for one component class (MOE_COMP_ROUTER, _ATTN, _SHARED,
 * _EXPERTS, _EMBED, _HEAD). */
int moe_qrules_set_class(struct moe_qrules *r, enum moe_comp comp, enum moe_dtype t);
/* "REGEX=TYPE" (POSIX extended). */
int moe_qrules_add_rule(struct moe_qrules *r, const char *spec);
/* A named mix: "q4_k_m", "q5_k_m", "q8_0" (see moe_qrules_presets). */
int moe_qrules_preset(struct moe_qrules *r, const char *name, unsigned n_layers);
/* "name: what it does" lines for the usage and man page. */
const char *moe_qrules_presets(void);

/* The type for t (source type t->dtype, shape outermost first); note
 * gets a short explanation when a fallback or a special rule applied,
 * else "". */
enum moe_dtype moe_qrules_choose(const struct moe_qrules *r, const struct moe_tensor *t,
	char *note, size_t n);

#endif
