/* libFuzzer harness: arbitrary bytes as config.json -> architecture -> parameter counts, memory, KV cache. */
#include <stddef.h>
#include <stdint.h>

#include "arch.h"
#include "params.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t je;
	json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
	struct moe_arch a;
	struct moe_params p;
	struct moe_error e = { 0 };

	if (j == NULL)
		return 0;
	moe_arch_init(&a);
	moe_params_init(&p);
	if (moe_arch_from_config(&a, j) == 0 && moe_params_from_arch(&p, &a, &e) == 0) {
		sink += p.total + p.active + moe_params_bytes(&p, MOE_DT_Q4_K, 2) +
			moe_kv_bytes(&a, 1u << 20, 2) + moe_kv_bytes_per_token(&a, 2);
	}
	moe_params_release(&p);
	moe_arch_release(&a);
	json_decref(j);
	return 0;
}
