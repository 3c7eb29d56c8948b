/* Internal: helpers shared by the architecture builders (arch.c, arch_hf.c); not installed. */
#ifndef MOE_ARCH_IMPL_H
#define MOE_ARCH_IMPL_H

#include "arch.h"

/* Bounds on what a builder accepts from a file, so one bad field cannot
 * make the accounting overflow or allocate without limit. */
#define MOE_ARCH_MAX_LAYERS 4096u
#define MOE_ARCH_MAX_WIDTH (1u << 22)
#define MOE_ARCH_MAX_VOCAB (1u << 26)
#define MOE_ARCH_MAX_EXPERTS 65536u

int moe_arch_alloc_layers(struct moe_arch *a, uint32_t n);
int moe_arch_set_names(struct moe_arch *a, const char *family, const char *model_type);
/* Fills attention kinds from head counts and checks every width against
 * the bounds above; MOE_ERANGE with a->err set when one is out of range. */
int moe_arch_finish(struct moe_arch *a);
/* Appends "; what" to a->unknown. */
void moe_arch_note_unknown(struct moe_arch *a, const char *what);

#endif
