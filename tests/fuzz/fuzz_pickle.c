/* libFuzzer harness: run arbitrary bytes through the restricted unpickler and walk the result. */
#include <stddef.h>
#include <stdint.h>

#include "pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* keeps the walk from being optimized away */
static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moe_pickle *p;
	uint64_t sum = 0;

	if (moe_pickle_new(&p) != 0)
		return 0;
	if (moe_pickle_load(p, data, size) == 0) {
		for (size_t i = 0; i < moe_pickle_ntensors(p); i++) {
			const struct moe_pickle_tensor *t = moe_pickle_tensor(p, i);
			const struct moe_pickle_storage *s = moe_pickle_storage(p, t->storage);
			/* the view must stay inside its storage */
			uint64_t last = t->storage_offset;
			int empty = 0;
			if (s == NULL || t->ndim < 0 || t->ndim > MOE_PICKLE_MAX_DIMS)
				__builtin_trap();
			for (int d = 0; d < t->ndim; d++) {
				if (t->shape[d] == 0)
					empty = 1;
				else
					last += (t->shape[d] - 1) * (uint64_t)t->stride[d];
			}
			if (!empty && last >= s->numel)
				__builtin_trap();
			sum += t->name[0] + s->key[0];
		}
	} else if (moe_pickle_errstr(p)[0] == '\0') {
		__builtin_trap();
	}
	sink = sum;
	moe_pickle_free(p);
	return 0;
}
