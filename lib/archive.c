/* PLACEHOLDER until the archive backend lands: fails honestly. */
#include "ckpt_impl.h"

int moe_archive_load(struct moe_ckpt *ck, struct moe_input *in)
{
	(void)in;
	return moe_error_set(&ck->err, MOE_EUNSUP, "archive support is not built yet");
}
