/* Hugging Face <-> GGUF tensor names and layouts per model family, from one table each. */
#ifndef MOE_NAMEMAP_H
#define MOE_NAMEMAP_H

#include <stddef.h>

/*
 * A family pairs a GGUF architecture ("llama") with a Hugging Face
 * model_type ("mixtral"). Its table lists tensor name patterns on both
 * sides with "{L}" for the block and "{E}" for the expert index, and how
 * the data moves between them:
 *  - STACK: one HF tensor per expert <-> one GGUF 3-D tensor per layer
 *    (expert e is rows [e*R, (e+1)*R) of the stacked tensor);
 *  - PERMUTE_Q / PERMUTE_K: llama.cpp's "normal" RoPE pairs adjacent
 *    dimensions while HF rotates halves, so llama-style families reorder
 *    the rows of each q (and k) head on the way in;
 *  - HALF0 / HALF1: the GGUF tensor is the first / second half of every
 *    expert's rows of one fused HF tensor (GraniteMoE input_linear);
 *  - SQUEEZE: HF (1, n) is GGUF (n) (Qwen2-MoE shared-expert gate);
 *  - EXPERT_DIM0: the HF tensor is already stacked (GraniteMoE).
 * Everything returned points into static tables.
 */

enum {
	MOE_MAP_STACK = 1,
	MOE_MAP_PERMUTE_Q = 2,
	MOE_MAP_PERMUTE_K = 4,
	MOE_MAP_HALF0 = 8,
	MOE_MAP_HALF1 = 16,
	MOE_MAP_SQUEEZE = 32,     /* GGUF drops the HF tensor's leading 1 */
	MOE_MAP_EXPERT_DIM0 = 64  /* HF tensor already holds all experts on dim 0 */
};

struct moe_family;

struct moe_name_match {
	const char *gguf_pat;
	const char *hf_pat;
	unsigned flags;
	int layer;      /* -1 outside blocks */
	int expert;     /* -1 unless the name has {E} */
	int index;      /* position in the family table */
};

const struct moe_family *moe_family_by_gguf_arch(const char *arch);
const struct moe_family *moe_family_by_model_type(const char *model_type);
const char *moe_family_gguf_arch(const struct moe_family *f);
/* HF model_type written by the reverse conversion (deepseek2 -> deepseek_v3
 * when v3 is nonzero, else deepseek_v2). */
const char *moe_family_model_type(const struct moe_family *f, int v3);
/* HF "architectures" class name for the model_type. */
const char *moe_family_hf_class(const struct moe_family *f, int v3);
/* Comma-separated list of supported GGUF architectures / model types. */
const char *moe_family_list(void);

/* Matches a name on the HF (hf != 0) or GGUF side: 0 and *m filled, or
 * MOE_ENOENT. */
int moe_namemap_match(const struct moe_family *f, const char *name, int hf,
	struct moe_name_match *m);
/* Formats the other side's name for a match (expert -1 for stacked GGUF
 * names): 0, or MOE_ERANGE if it does not fit. */
int moe_namemap_format(const char *pat, int layer, int expert, char *out, size_t n);
/* Entries of the family table, in the GGUF order llama.cpp's writers use
 * within a block; for iteration by --init. */
size_t moe_family_nentries(const struct moe_family *f);
const struct moe_name_match *moe_family_entry(const struct moe_family *f, size_t i);

#endif
