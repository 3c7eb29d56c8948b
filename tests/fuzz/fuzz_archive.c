/* libFuzzer harness: open arbitrary bytes as a PyTorch zip or an archive and read every tensor in storage order. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "ckpt_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

struct feed {
	const uint8_t *p;
	size_t n, pos;
};

/* hands out the input in odd-sized pieces, like a pipe */
static ssize_t feed_read(void *ctx, void *buf, size_t n)
{
	struct feed *f = ctx;
	size_t k = f->n - f->pos;

	if (k > n)
		k = n;
	if (k > 1021)
		k = 1021;
	memcpy(buf, f->p + f->pos, k);
	f->pos += k;
	return (ssize_t)k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moe_ckpt *ck;
	enum moe_sniff s = moe_sniff_bytes(data, size);
	uint64_t sum = 0;

	/* other formats have their own harnesses */
	if (s != MOE_SNIFF_ZIP && s != MOE_SNIFF_TAR && s != MOE_SNIFF_COMPRESSED)
		return -1;
	struct feed f = { data, size, 0 };
	struct moe_input *in;
	int rc;

	if (moe_ckpt_new(&ck) != 0)
		return 0;
	/* odd sizes go through a pipe-like input: the spool and forward-only paths */
	if (size % 2 && moe_input_open_fn(&in, "fuzz.pipe", feed_read, &f, -1) == 0)
		rc = moe_ckpt_load_input(ck, in, "fuzz.pipe");
	else
		rc = moe_ckpt_open_memory(ck, data, size, "fuzz.bin");
	if (rc == 0) {
		size_t n = moe_ckpt_ntensors(ck);
		size_t *idx = malloc((n ? n : 1) * sizeof *idx);
		if (idx) {
			moe_ckpt_storage_order(ck, idx);
			for (size_t i = 0; i < n; i++) {
				const struct moe_tensor *t = moe_ckpt_tensor(ck, idx[i]);
				unsigned char b[64];
				size_t k = t->nbytes < sizeof b ? (size_t)t->nbytes : sizeof b;
				/* a read may fail (the data is not checked at open) but cleanly */
				if (k && moe_ckpt_read(ck, t, 0, b, k) == 0)
					sum += b[k - 1];
				if (k && moe_ckpt_read(ck, t, t->nbytes - k, b, k) == 0)
					sum += b[0];
			}
			/* and backwards: files and archives go back by reopening */
			for (size_t i = n; i-- > 0;) {
				const struct moe_tensor *t = moe_ckpt_tensor(ck, idx[i]);
				unsigned char b[16];
				size_t k = t->nbytes < sizeof b ? (size_t)t->nbytes : sizeof b;
				if (k && moe_ckpt_read(ck, t, 0, b, k) == 0)
					sum += b[k - 1];
			}
			free(idx);
		}
	}
	sink = sum;
	moe_ckpt_free(ck);
	return 0;
}
