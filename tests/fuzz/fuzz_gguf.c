/* libFuzzer harness: open arbitrary bytes as a checkpoint (GGUF seeds) and walk its tensors and metadata. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ckpt_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* keeps the walk from being optimized away */
static volatile uint64_t sink;

struct src {
	const uint8_t *p;
	size_t n, pos;
};

/* A pipe of unknown size handing out short reads. */
static ssize_t src_read(void *ctx, void *buf, size_t n)
{
	struct src *s = ctx;
	size_t k = s->n - s->pos < 5 ? s->n - s->pos : 5;

	(void)n;
	memcpy(buf, s->p + s->pos, k);
	s->pos += k;
	return (ssize_t)k;
}

static void walk(struct moe_ckpt *ck)
{
	const struct moe_meta *m = moe_ckpt_meta(ck);
	uint64_t sum = 0;

	for (size_t i = 0; i < moe_ckpt_ntensors(ck); i++) {
		const struct moe_tensor *t = moe_ckpt_tensor(ck, i);
		unsigned char b[16];
		const void *p;
		size_t n = t->nbytes < sizeof b ? (size_t)t->nbytes : sizeof b;

		sum += moe_tensor_numel(t) + t->offset;
		/* a size-checked span must be readable and mappable to its end */
		if (n > 0 && moe_ckpt_read(ck, t, 0, b, n) == 0 &&
		    moe_ckpt_map(ck, t, &p) == 0)
			sum += ((const unsigned char *)p)[t->nbytes - 1] + b[0];
	}
	for (size_t i = 0; i < moe_meta_count(m); i++)
		json_decref(moe_value_to_json(moe_meta_at(m, i), 4));
	sink = sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moe_ckpt *ck;
	struct moe_input *in;
	struct src s = { data, size, 0 };

	if (moe_ckpt_new(&ck) != 0)
		return 0;
	if (moe_ckpt_open_memory(ck, data, size, "fuzz") == 0)
		walk(ck);
	moe_ckpt_free(ck);
	/* the forward-only path: no size to check counts against */
	if (size < 4 || memcmp(data, "GGUF", 4) != 0 || moe_ckpt_new(&ck) != 0)
		return 0;
	if (moe_input_open_fn(&in, "pipe", src_read, &s, -1) == 0 &&
	    moe_ckpt_load_input(ck, in, "pipe") == 0)
		sink += moe_ckpt_ntensors(ck) + moe_meta_count(moe_ckpt_meta(ck));
	moe_ckpt_free(ck);
	return 0;
}
