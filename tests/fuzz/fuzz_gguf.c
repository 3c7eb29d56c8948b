/* libFuzzer harness: open arbitrary bytes as a checkpoint (GGUF seeds) and walk its tensors and metadata. */
#include <stddef.h>
#include <stdint.h>

#include "ckpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* keeps the walk from being optimized away */
static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moe_ckpt *ck;
	const struct moe_meta *m;
	uint64_t sum = 0;

	if (moe_ckpt_new(&ck) != 0)
		return 0;
	if (moe_ckpt_open_memory(ck, data, size, "fuzz") == 0) {
		for (size_t i = 0; i < moe_ckpt_ntensors(ck); i++) {
			const struct moe_tensor *t = moe_ckpt_tensor(ck, i);
			unsigned char b[16];
			const void *p;
			size_t n = t->nbytes < sizeof b ? (size_t)t->nbytes : sizeof b;
			sum += moe_tensor_numel(t) + t->offset;
			/* the loader promised the span is inside the input */
			if (n > 0 && moe_ckpt_read(ck, t, 0, b, n) == 0 &&
			    moe_ckpt_map(ck, t, &p) == 0)
				sum += ((const unsigned char *)p)[t->nbytes - 1] + b[0];
		}
		m = moe_ckpt_meta(ck);
		for (size_t i = 0; i < moe_meta_count(m); i++) {
			json_t *j = moe_value_to_json(moe_meta_at(m, i), 4);
			json_decref(j);
		}
	}
	moe_ckpt_free(ck);
	sink = sum;
	return 0;
}
