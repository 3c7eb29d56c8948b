/* PLACEHOLDER until the sharded-index backend lands: fails honestly. */
#include "ckpt_impl.h"

int moe_index_load(struct moe_ckpt *ck, json_t *index, const char *dir)
{
	(void)index;
	(void)dir;
	return moe_error_set(&ck->err, MOE_EUNSUP, "index.json support is not built yet");
}
