/* Internal: the checkpoint handle as format backends see it (not installed). */
#ifndef MOE_CKPT_IMPL_H
#define MOE_CKPT_IMPL_H

#include "ckpt.h"
#include "error.h"
#include "input.h"

/*
 * A backend parses one file's header from a moe_input and appends its
 * tensors (with .file set to the file index it was given) and metadata.
 * Data is read later through the file's moe_input (the default), or
 * through the backend's own ops for formats whose data is not a plain
 * span of that input (archive members, PyTorch zip storages).
 */
struct moe_ckpt_file {
	char *name;
	struct moe_input *in;   /* NULL once closed / for backends with own ops */
	void *priv;             /* backend state for this file */
	const struct moe_ckpt_fops *ops;
};

/* Per-file data access for backends that need it; NULL ops = plain
 * offset + length in f->in. */
struct moe_ckpt_fops {
	int (*read)(struct moe_ckpt *ck, struct moe_ckpt_file *f,
		const struct moe_tensor *t, uint64_t off, void *buf, size_t n);
	void (*release)(struct moe_ckpt_file *f);
};

struct moe_ckpt {
	struct moe_error err;
	enum moe_format format;
	unsigned source;
	struct moe_ckpt_file *files;
	size_t nfiles, capfiles;
	struct moe_tensor *tensors;
	size_t ntensors, captensors;
	struct moe_meta *meta;
	json_t *config, *generation_config, *tokenizer_config, *index;
	json_t *tokenizer;       /* tokenizer.json */
	uint64_t bytes_extra;   /* bytes read by backends outside file inputs */
	void *archive;          /* archive backend state, if any */
};

/* Adds a file (takes ownership of in, may be NULL); returns its index
 * or a negative code. */
int moe_ckpt_add_file(struct moe_ckpt *ck, const char *name, struct moe_input *in);
/* Appends a tensor: copies name; strides (if any) are taken over. Checks
 * ndim, dtype, that nbytes equals numel x dtype size for contiguous data
 * and rejects a duplicate name. Returns 0 or a code with ck->err set. */
int moe_ckpt_add_tensor(struct moe_ckpt *ck, const struct moe_tensor *t);
/* Merges a format's tensor-data format into ck->format. */
void moe_ckpt_set_format(struct moe_ckpt *ck, enum moe_format f);

/* Backends: parse one file whose first bytes are already known to match.
 * `file` is the index from moe_ckpt_add_file. The input is positioned at
 * its start. On success the input is left positioned anywhere. */
int moe_gguf_load(struct moe_ckpt *ck, int file);
int moe_safetensors_load(struct moe_ckpt *ck, int file);
int moe_torch_load(struct moe_ckpt *ck, int file);
/* Archives (tar, tar.gz, tar.zst, tar.xz, zip that is not a PyTorch
 * checkpoint): loads every checkpoint member and side JSON. */
int moe_archive_load(struct moe_ckpt *ck, struct moe_input *in);
/* index.json: the weight_map names shards relative to dir. */
int moe_index_load(struct moe_ckpt *ck, json_t *index, const char *dir);

/* Sniffing: what the first bytes of an input look like. */
enum moe_sniff {
	MOE_SNIFF_UNKNOWN, MOE_SNIFF_EMPTY, MOE_SNIFF_GGUF, MOE_SNIFF_SAFETENSORS,
	MOE_SNIFF_ZIP, MOE_SNIFF_TAR, MOE_SNIFF_COMPRESSED, MOE_SNIFF_JSON,
	MOE_SNIFF_LEGACY_TORCH
};
enum moe_sniff moe_sniff_bytes(const unsigned char *p, size_t n);

/* Opens one regular file or stream input as a checkpoint file, sniffing
 * it; used by the directory, index and archive loaders. */
int moe_ckpt_load_input(struct moe_ckpt *ck, struct moe_input *in, const char *name);

#endif
