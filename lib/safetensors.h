/* Streaming safetensors writer: header from the tensor list, then data in order. */
#ifndef MOE_SAFETENSORS_H
#define MOE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "output.h"

/*
 * Use: moe_st_writer_new(), moe_st_writer_set_meta() and
 * moe_st_writer_add_tensor() for every tensor, moe_st_writer_begin_data()
 * (writes the header), moe_st_writer_write() with every tensor's bytes in
 * add order (in any chunking), moe_st_writer_finish() (checks that every
 * byte arrived), then the caller commits the output. Memory use depends on
 * the number of tensors, never on their sizes.
 *
 * The writer does not own the moe_output: the caller opens it, commits it
 * after moe_st_writer_finish() succeeded, and frees it. Errors are kept on
 * the writer (moe_st_writer_errstr); after one, every call returns it.
 *
 * The header is compact JSON with "__metadata__" first, then the tensors
 * in add order, padded with spaces to a multiple of 8 bytes as the
 * reference writer does; tensors are laid out back to back in add order.
 */
struct moe_st_writer;

int moe_st_writer_new(struct moe_st_writer **w, struct moe_output *out);
void moe_st_writer_free(struct moe_st_writer *w);
const char *moe_st_writer_errstr(const struct moe_st_writer *w);

/* A "__metadata__" string entry (replaces an earlier value of key). */
int moe_st_writer_set_meta(struct moe_st_writer *w, const char *key, const char *value);
/* Declares the next tensor; only plain dtypes (F64 ... BOOL) are allowed. */
int moe_st_writer_add_tensor(struct moe_st_writer *w, const char *name,
	enum moe_dtype dtype, int ndim, const uint64_t *shape);
/* Writes the header; no more tensors or metadata after this. */
int moe_st_writer_begin_data(struct moe_st_writer *w);
/* Appends n bytes of tensor data; more than the tensors hold is an error. */
int moe_st_writer_write(struct moe_st_writer *w, const void *buf, size_t n);
/* Checks that every tensor got all its bytes; the caller then commits. */
int moe_st_writer_finish(struct moe_st_writer *w);

/* Bytes of the header (8-byte length + padded JSON), known after
 * moe_st_writer_begin_data(). */
uint64_t moe_st_writer_header_bytes(const struct moe_st_writer *w);

#endif
