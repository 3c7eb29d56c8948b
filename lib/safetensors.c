/* PLACEHOLDER until the safetensors backend lands: fails honestly. */
#include "ckpt_impl.h"

int moe_safetensors_load(struct moe_ckpt *ck, int file)
{
	(void)file;
	return moe_error_set(&ck->err, MOE_EUNSUP, "safetensors support is not built yet");
}
