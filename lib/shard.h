/* Sharded safetensors writer: a directory of model-0000K-of-0000N.safetensors plus index.json. */
#ifndef MOE_SHARD_H
#define MOE_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

/*
 * Same call sequence as moe_st_writer (safetensors.h): declare every tensor
 * in order, moe_shard_writer_begin_data() plans the shards, stream the data
 * in declaration order, moe_shard_writer_finish(). Tensors go to shards
 * greedily in order: a shard is closed when the next tensor would take its
 * data past max_bytes (a tensor larger than max_bytes gets a shard of its
 * own). Shards are named like Hugging Face's, written atomically one after
 * the other, and model.safetensors.index.json (metadata.total_size and a
 * weight_map with sorted keys) is written last, so a failed run leaves no
 * index and nothing that looks like a valid checkpoint.
 *
 * The writer owns everything it allocates; strings passed in are copied.
 */
struct moe_shard_writer;

enum {
	MOE_SHARD_FORCE = 1   /* replace existing shard and index files */
};

/* dir is created if absent (its parent must exist). */
int moe_shard_writer_new(struct moe_shard_writer **w, const char *dir,
	uint64_t max_bytes, unsigned flags);
void moe_shard_writer_free(struct moe_shard_writer *w);
const char *moe_shard_writer_errstr(const struct moe_shard_writer *w);

/* A "__metadata__" string entry written into every shard. */
int moe_shard_writer_set_meta(struct moe_shard_writer *w, const char *key,
	const char *value);
int moe_shard_writer_add_tensor(struct moe_shard_writer *w, const char *name,
	enum moe_dtype dtype, int ndim, const uint64_t *shape);
/* Assigns shards, checks that no output exists (without the force flag) and
 * opens the first shard. */
int moe_shard_writer_begin_data(struct moe_shard_writer *w);
int moe_shard_writer_write(struct moe_shard_writer *w, const void *buf, size_t n);
/* Commits the last shard and writes the index. */
int moe_shard_writer_finish(struct moe_shard_writer *w);

/* Number of shards, known after moe_shard_writer_begin_data(). */
size_t moe_shard_writer_nshards(const struct moe_shard_writer *w);

#endif
