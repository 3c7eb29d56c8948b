/* GGUF format constants and the streaming GGUF writer (reading goes through moe_ckpt). */
#ifndef MOE_GGUF_H
#define MOE_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "meta.h"
#include "output.h"

/*
 * Files are read with moe_ckpt_open() (the GGUF backend, lib/gguf.c, has
 * the byte layout). A moe_gguf_writer writes GGUF v3 to a moe_output the
 * caller owns and commits after moe_gguf_writer_finish(); the writer keeps
 * a copy of the metadata and the tensor table, never tensor data, so its
 * memory does not depend on tensor sizes. The layout (KV in order, tensor
 * infos in add order, data in add order, each tensor padded to the
 * alignment, the last one too; a file without tensors is not padded after
 * its header) is the one gguf-py's GGUFWriter produces, and ggml's writer
 * for files with tensors, so a file read and written back with the same KV
 * and tensor order is byte-identical.
 */

#define MOE_GGUF_MAGIC "GGUF"
#define MOE_GGUF_VERSION 3              /* written; 2 and 3 are read */
#define MOE_GGUF_DEFAULT_ALIGNMENT 32   /* unless general.alignment says */
#define MOE_GGUF_ALIGNMENT_KEY "general.alignment"
#define MOE_GGUF_MAX_DIMS 4             /* GGML_MAX_DIMS */
#define MOE_GGUF_MAX_NAME 63            /* GGML_MAX_NAME - 1: longest name ggml loads */
#define MOE_GGUF_MAX_DEPTH 8            /* array nesting accepted and written */

struct moe_gguf_writer;

/* out stays owned by the caller and must outlive the writer. */
int moe_gguf_writer_new(struct moe_gguf_writer **w, struct moe_output *out);
void moe_gguf_writer_free(struct moe_gguf_writer *w);
const char *moe_gguf_writer_errstr(const struct moe_gguf_writer *w);

/* Copies every KV pair of m, in order (replacing any set before).
 * general.alignment, if present, must be a u32 power of two. */
int moe_gguf_writer_set_meta(struct moe_gguf_writer *w, const struct moe_meta *m);

/* Declares the next tensor; shape is outermost first (stored reversed as
 * ggml's ne[]). ndim 0..4, a dtype with a ggml id, a name of 1..63 bytes,
 * unique, and for block types a row length that is a multiple of the block. */
int moe_gguf_writer_add_tensor(struct moe_gguf_writer *w, const char *name,
	enum moe_dtype t, int ndim, const uint64_t *shape);

/* Writes the header, KV pairs, tensor infos and padding to the data section. */
int moe_gguf_writer_begin_data(struct moe_gguf_writer *w);

/* Tensor data, tensors in add order, in pieces of any size (a piece may
 * span tensors); padding is inserted after each tensor. More bytes than the
 * tensors take is an error. */
int moe_gguf_writer_write(struct moe_gguf_writer *w, const void *buf, size_t n);

/* Checks that every tensor got all its bytes; the file is then complete. */
int moe_gguf_writer_finish(struct moe_gguf_writer *w);

#endif
