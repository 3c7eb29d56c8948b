/* Parameter accounting (closed form and from tensors), weight memory, KV cache and decode bounds. */
#ifndef MOE_PARAMS_H
#define MOE_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "arch.h"
#include "ckpt.h"
#include "dtype.h"
#include "tensor_class.h"

/*
 * A moe_params is caller-owned: moe_params_init(), fill it with
 * moe_params_from_arch() or moe_params_from_tensors(), then
 * moe_params_release() frees the per-layer array.
 *
 * Conventions (published figures use all three, so all are kept):
 *   total            embedding + head + every block (MTP and vision excluded)
 *   total_no_embed   without the input embedding; a tied head still counts
 *   total_nonembed   without input embedding and output head
 * and the same three for the parameters active per token: attention,
 * norms, routers, top-k of the routed experts, shared experts, dense
 * FFNs, plus the full embedding and head where the convention has them.
 * total_all adds multi-token-prediction modules and the vision tower:
 * what a complete checkpoint holds.
 */

struct moe_layer_params {
	uint64_t comp[MOE_COMP_COUNT];
	uint64_t total, active;
};

struct moe_params {
	uint64_t comp[MOE_COMP_COUNT];        /* every component, MTP and vision included */
	uint64_t comp_active[MOE_COMP_COUNT]; /* per token (MTP, vision: 0) */
	uint64_t total, total_no_embed, total_nonembed;
	uint64_t active, active_no_embed, active_nonembed;
	uint64_t total_all;
	uint64_t scale_elems;     /* from tensors: quantisation scales, not counted */
	uint64_t embed_row;       /* one embedding row (d_model) */
	int active_known;         /* 0 when top-k is unknown (tensors only) */
	uint32_t n_moe_layers;
	uint32_t n_expert, top_k; /* of the first MoE layer */
	uint32_t n_layers;
	struct moe_layer_params *layers; /* [n_layers] */
};

void moe_params_init(struct moe_params *p);
void moe_params_release(struct moe_params *p);

/* Closed form from the architecture. */
int moe_params_from_arch(struct moe_params *p, const struct moe_arch *a,
	struct moe_error *err);
/* From the tensors, each classified by name; a (may be NULL) gives the
 * block count beyond which blocks are MTP modules and the top-k that
 * makes the active count; without it active_known is 0. */
int moe_params_from_tensors(struct moe_params *p, const struct moe_arch *a,
	const struct moe_tensor *t, size_t n, struct moe_error *err);

/* JSON object of the counts (moe-inspect(1), "params_config" and
 * "params_tensors"); a names the layers' kinds. Caller owns it. */
json_t *moe_params_to_json(const struct moe_params *p, const struct moe_arch *a);
/* Array of sentences on why the closed form (cfg) and the tensors (ten)
 * differ: totals, embedding rows, head, MTP, vision, scale tensors. */
json_t *moe_params_differences(const struct moe_params *cfg, const struct moe_params *ten);

/* active / total (0 when total is 0). */
double moe_params_sparsity(const struct moe_params *p);

/* Bytes of n parameters stored as dt, block scales included: ggml types
 * by their block size, FP8 with one F32 scale per 128x128 block. */
uint64_t moe_dtype_param_bytes(enum moe_dtype dt, uint64_t n);

/* Weight bytes if matrices are stored as dt. For ggml block types norms
 * and routers stay F32 (as llama.cpp keeps them). which: 0 = total
 * (main model), 1 = active per token, 2 = read per decoded token (active,
 * but one embedding row instead of the whole table unless the head is
 * tied to it). */
uint64_t moe_params_bytes(const struct moe_params *p, enum moe_dtype dt, int which);

/* KV-cache bytes for a context of ctx tokens with elem_bytes per cached
 * value: standard attention caches k and v per kv head, MLA its
 * compressed latent plus the rope key, sliding/chunked layers at most
 * their window; state-space layers keep a fixed state (not counted). */
uint64_t moe_kv_bytes(const struct moe_arch *a, uint64_t ctx, unsigned elem_bytes);
/* Bytes per token of context for layers without a window. */
uint64_t moe_kv_bytes_per_token(const struct moe_arch *a, unsigned elem_bytes);

/* Decode upper bound in tokens/s: bandwidth (bytes/s) over bytes read per
 * token; 0 if bytes is 0. */
double moe_decode_bound(double bandwidth, uint64_t bytes_per_token);

#endif
