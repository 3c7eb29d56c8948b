/* A checkpoint of any supported format seen as one list of tensors plus metadata. */
#ifndef MOE_CKPT_H
#define MOE_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "dtype.h"
#include "input.h"
#include "meta.h"

/*
 * moe_ckpt_open() sniffs its input by content: a GGUF file, a safetensors
 * file, a PyTorch zip (.bin/.pt/.pth), a model directory (sharded
 * safetensors with or without index.json, shards of any format), an
 * index.json, a tar/tar.gz/tar.zst/zip archive holding any of these, a bare
 * config.json, or "-" (standard input, any of the above as a stream).
 *
 * Shape convention (everywhere in libmoe): row-major, outermost dimension
 * first, as numpy/PyTorch/safetensors write it. GGUF stores ggml's ne[]
 * innermost first; the GGUF backend reverses it, so a ggml tensor with
 * ne = {n_embd, n_ff, n_expert} is shape {n_expert, n_ff, n_embd} here.
 *
 * Everything returned (tensors, names, metadata, JSON) stays owned by the
 * handle and lives until moe_ckpt_free().
 */

#define MOE_MAX_DIMS 8

struct moe_tensor {
	char *name;
	enum moe_dtype dtype;
	int ndim;
	uint64_t shape[MOE_MAX_DIMS];  /* outermost first */
	uint64_t nbytes;               /* bytes of the (contiguous) data */
	uint32_t file;                 /* index into the checkpoint's files */
	uint64_t offset;               /* data offset within that file or member */
	/* Element strides (outermost first) when the stored data is a
	 * non-contiguous view (PyTorch); NULL when contiguous. Reads always
	 * return contiguous data. */
	int64_t *strides;
};

enum moe_format {
	MOE_FMT_UNKNOWN = 0,
	MOE_FMT_GGUF,
	MOE_FMT_SAFETENSORS,
	MOE_FMT_TORCH,        /* PyTorch zip (torch.save) */
	MOE_FMT_CONFIG,       /* config.json only: no tensors */
	MOE_FMT_MIXED         /* directory with shards of several formats */
};

/* Where the checkpoint came from, beyond its tensor format. */
enum {
	MOE_SRC_DIR = 1,      /* a directory of shards */
	MOE_SRC_INDEX = 2,    /* listed by an index.json */
	MOE_SRC_ARCHIVE = 4,  /* inside a tar/zip archive */
	MOE_SRC_STREAM = 8    /* read forward only (pipe, archive member) */
};

struct moe_ckpt;

int moe_ckpt_new(struct moe_ckpt **out);
void moe_ckpt_free(struct moe_ckpt *ck);
int moe_ckpt_open(struct moe_ckpt *ck, const char *path);
/* The same, but standard input that is a pipe is first copied to an
 * unlinked temporary file (moe_input_spool), for readers that need the
 * tensors in another order than the stream's. */
int moe_ckpt_open_seekable(struct moe_ckpt *ck, const char *path);
/* Opens a checkpoint held in memory (tests and fuzzers); not copied. */
int moe_ckpt_open_memory(struct moe_ckpt *ck, const void *buf, size_t n,
	const char *name);
/* Opens a checkpoint from an input the caller opened (e.g. spooled stdin);
 * takes ownership of in, also on failure. */
int moe_ckpt_open_input(struct moe_ckpt *ck, struct moe_input *in, const char *name);
const char *moe_ckpt_errstr(const struct moe_ckpt *ck);

enum moe_format moe_ckpt_format(const struct moe_ckpt *ck);
unsigned moe_ckpt_source(const struct moe_ckpt *ck);
const char *moe_format_name(enum moe_format f);

size_t moe_ckpt_ntensors(const struct moe_ckpt *ck);
const struct moe_tensor *moe_ckpt_tensor(const struct moe_ckpt *ck, size_t i);
const struct moe_tensor *moe_ckpt_find(const struct moe_ckpt *ck, const char *name);
/* Number of elements of t (product of its shape). */
uint64_t moe_tensor_numel(const struct moe_tensor *t);

size_t moe_ckpt_nfiles(const struct moe_ckpt *ck);
/* Path of file i (shard, or "archive.tar:member"). */
const char *moe_ckpt_file_name(const struct moe_ckpt *ck, size_t i);

/* Format metadata: GGUF KV pairs, safetensors __metadata__ strings. */
const struct moe_meta *moe_ckpt_meta(const struct moe_ckpt *ck);
/* Side JSON files found next to (or inside the archive with) the
 * checkpoint: "config", "generation_config", "tokenizer_config",
 * "tokenizer" (tokenizer.json), "index". NULL if absent. */
json_t *moe_ckpt_json(const struct moe_ckpt *ck, const char *which);

/*
 * Reads n bytes of t's (contiguous) data starting at byte off. On
 * forward-only inputs tensors must be read in storage order
 * (moe_ckpt_storage_order), else MOE_ESEEK.
 */
int moe_ckpt_read(struct moe_ckpt *ck, const struct moe_tensor *t,
	uint64_t off, void *buf, size_t n);
/* Pointer to t's data when it is a contiguous span of a mapped file;
 * MOE_ESEEK otherwise (streams, archive members, strided views). */
int moe_ckpt_map(struct moe_ckpt *ck, const struct moe_tensor *t,
	const void **p);
/* Tensor indices sorted by (file, offset): the order a single forward pass
 * can read them in. idx must hold moe_ckpt_ntensors() entries. */
void moe_ckpt_storage_order(const struct moe_ckpt *ck, size_t *idx);
/* Bytes read from storage so far (headers and data, not mmap). */
uint64_t moe_ckpt_bytes_read(const struct moe_ckpt *ck);

#endif
