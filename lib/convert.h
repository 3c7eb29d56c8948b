/* Checkpoint conversion: plan output tensors from any input, then stream them to GGUF or safetensors. */
#ifndef MOE_CONVERT_H
#define MOE_CONVERT_H

#include <stdint.h>

#include <jansson.h>

#include "ckpt.h"
#include "output.h"

/*
 * moe_convert_new() plans a conversion without reading tensor data: every
 * output tensor is a list of row ranges of input tensors (expert stacking,
 * unstacking, GraniteMoE's fused gate/up halves and expert or layer subsets
 * are all row ranges), with an optional row permutation inside attention
 * heads (llama.cpp's RoPE layout) and a dtype conversion. Writing then
 * streams rows in chunks, so memory does not depend on tensor sizes.
 *
 * Names follow the target: GGUF gets llama.cpp names, safetensors gets
 * Hugging Face names, for the families in lib/namemap.h. A GGUF written to
 * safetensors carries its whole metadata (and tensor order) in
 * __metadata__ so that converting back gives the same GGUF.
 *
 * The conversion borrows ck, which must outlive it. Errors are kept on the
 * conversion (moe_convert_errstr).
 */
enum moe_conv_format { MOE_CONV_GGUF = 1, MOE_CONV_SAFETENSORS = 2 };

struct moe_convert_opts {
	enum moe_conv_format format;
	/* F32/F16/BF16 for float weights with two or more dimensions (norms,
	 * routers and 1-D tensors stay F32); MOE_DT_INVALID keeps types. */
	enum moe_dtype dtype;
	const char *layers;     /* "0-3,7": keep these blocks, renumbered */
	const char *experts;    /* "0,2,5" for every MoE layer, or lines "L: 0 2 5" */
	const char *drop;       /* POSIX extended regex: input tensors to leave out */
	/* Called once per output tensor after planning, with the type chosen
	 * so far; returns the type to store (a ggml block type quantizes the
	 * rows bit-exactly as ggml does). NULL keeps the choice. */
	enum moe_dtype (*choose)(void *ctx, const struct moe_tensor *t, enum moe_dtype planned);
	void *choose_ctx;
	int allow_requantize;   /* quantized input may go to another block type */
	int threads;            /* rows converted in parallel (0/1: one thread) */
	int stats;              /* measure the error of lossy types per tensor */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *progress_ctx;
};

struct moe_conversion;

int moe_convert_new(struct moe_conversion **out, struct moe_ckpt *ck,
	const struct moe_convert_opts *o);
/* A randomly initialised checkpoint with the layout config.json describes:
 * weights N(0, 1/sqrt(fan_in)), routers N(0, 3/sqrt(d)) so that routing is
 * decisive, norms 1. Deterministic for a seed, whatever the write order. */
int moe_convert_new_init(struct moe_conversion **out, json_t *config,
	uint64_t seed, const struct moe_convert_opts *o);
void moe_convert_free(struct moe_conversion *c);
const char *moe_convert_errstr(const struct moe_conversion *c);

/* Something the output cannot carry and the user should know ("" if none),
 * e.g. an unrecognised pre-tokenizer. */
const char *moe_convert_warning(const struct moe_conversion *c);

size_t moe_convert_ntensors(const struct moe_conversion *c);
/* Bytes of tensor data the output will hold. */
uint64_t moe_convert_bytes(const struct moe_conversion *c);

/* Describes output tensor i (name borrowed; file and offset unset). */
int moe_convert_tensor(const struct moe_conversion *c, size_t i, struct moe_tensor *out);

/* Error of output tensor i against its source, when opts.stats was set:
 * sums over all values of (out - in)^2 and in^2, the largest |out - in|. */
struct moe_conv_stats {
	double sse, ssx, max_abs;
	uint64_t n;
};
int moe_convert_stats(const struct moe_conversion *c, size_t i, struct moe_conv_stats *st);
/* Type of output tensor i's source (before conversion). */
enum moe_dtype moe_convert_source_dtype(const struct moe_conversion *c, size_t i);

/* Writes one file (GGUF or safetensors) to out; the caller commits. */
int moe_convert_write(struct moe_conversion *c, struct moe_output *out);
/* Writes a Hugging Face directory: model.safetensors (or shards of at most
 * max_shard bytes with an index, when max_shard > 0), config.json, and
 * tokenizer.json + tokenizer_config.json when there is a vocabulary.
 * flags: MOE_OUT_FORCE. */
int moe_convert_write_dir(struct moe_conversion *c, const char *dir,
	uint64_t max_shard, unsigned flags);

#endif
