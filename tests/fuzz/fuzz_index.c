/* libFuzzer harness: open arbitrary bytes as model.safetensors.index.json next to three real shards. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt_impl.h"
#include "shard.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char name[128];
static volatile uint64_t sink;

static void cleanup(void)
{
	char cmd[128];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz_index: could not remove %s\n", dir);
}

/* Three one-tensor shards (a, b, c: 16, 8 and 24 bytes) in a fresh
 * directory; the index under test resolves shard names against it. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const unsigned char data[40];
	struct moe_shard_writer *w;
	uint64_t s8 = 8, s2[2] = { 2, 3 };

	(void)argc;
	(void)argv;
	snprintf(dir, sizeof dir, "/tmp/moe-fuzz-index.XXXXXX");
	if (mkdtemp(dir) == NULL || moe_shard_writer_new(&w, dir, 16, 0) != 0)
		abort();
	if (moe_shard_writer_set_meta(w, "format", "pt") != 0 ||
	    moe_shard_writer_add_tensor(w, "a", MOE_DT_F16, 1, &s8) != 0 ||
	    moe_shard_writer_add_tensor(w, "b", MOE_DT_U8, 1, &s8) != 0 ||
	    moe_shard_writer_add_tensor(w, "c", MOE_DT_F32, 2, s2) != 0 ||
	    moe_shard_writer_begin_data(w) != 0 ||
	    moe_shard_writer_write(w, data, 16 + 8 + 24 - 8) != 0 ||
	    moe_shard_writer_write(w, data, 8) != 0 ||
	    moe_shard_writer_finish(w) != 0)
		abort();
	moe_shard_writer_free(w);
	snprintf(name, sizeof name, "%s/model.safetensors.index.json", dir);
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moe_ckpt *ck;
	uint64_t sum = 0;

	if (moe_sniff_bytes(data, size) != MOE_SNIFF_JSON)
		return -1;
	if (moe_ckpt_new(&ck) != 0)
		return 0;
	if (moe_ckpt_open_memory(ck, data, size, name) == 0)
		for (size_t i = 0; i < moe_ckpt_ntensors(ck); i++) {
			const struct moe_tensor *t = moe_ckpt_tensor(ck, i);
			unsigned char b[8];
			size_t n = t->nbytes < sizeof b ? (size_t)t->nbytes : sizeof b;

			if (moe_ckpt_read(ck, t, 0, b, n) != 0)
				__builtin_trap();
			sum += t->offset + strlen(moe_ckpt_file_name(ck, t->file));
		}
	moe_ckpt_free(ck);
	sink = sum;
	return 0;
}
