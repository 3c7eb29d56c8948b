/* libFuzzer harness: open arbitrary bytes as a safetensors checkpoint and touch every tensor and metadata entry. */
#include <stddef.h>
#include <stdint.h>

#include "ckpt_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* keeps the walk from being optimized away */
static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moe_ckpt *ck;
	const struct moe_meta *m;
	uint64_t sum = 0;

	/* other formats have their own harnesses */
	if (moe_sniff_bytes(data, size) != MOE_SNIFF_SAFETENSORS)
		return -1;
	if (moe_ckpt_new(&ck) != 0)
		return 0;
	if (moe_ckpt_open_memory(ck, data, size, "fuzz.safetensors") == 0) {
		for (size_t i = 0; i < moe_ckpt_ntensors(ck); i++) {
			const struct moe_tensor *t = moe_ckpt_tensor(ck, i);
			const void *p;
			unsigned char b[16];
			size_t n = t->nbytes < sizeof b ? (size_t)t->nbytes : sizeof b;

			sum += moe_tensor_numel(t) + t->offset;
			/* the loader promised the span is inside the input */
			if (n > 0 && (moe_ckpt_read(ck, t, t->nbytes - n, b, n) != 0 ||
			    moe_ckpt_map(ck, t, &p) != 0))
				__builtin_trap();
			if (n > 0)
				sum += ((const unsigned char *)p)[t->nbytes - 1] + b[n - 1];
		}
		m = moe_ckpt_meta(ck);
		for (size_t i = 0; i < moe_meta_count(m); i++)
			sum += moe_meta_at(m, i)->v.str.len;
	}
	moe_ckpt_free(ck);
	sink = sum;
	return 0;
}
