/* PLACEHOLDER until the GGUF backend lands: fails honestly. */
#include "ckpt_impl.h"

int moe_gguf_load(struct moe_ckpt *ck, int file)
{
	(void)file;
	return moe_error_set(&ck->err, MOE_EUNSUP, "GGUF support is not built yet");
}
