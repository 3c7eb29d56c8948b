/* PLACEHOLDER until the PyTorch zip backend lands: fails honestly. */
#include "ckpt_impl.h"

int moe_torch_load(struct moe_ckpt *ck, int file)
{
	(void)file;
	return moe_error_set(&ck->err, MOE_EUNSUP, "PyTorch zip support is not built yet");
}
